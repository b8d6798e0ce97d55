//! `pipe_throughput`: a child sends 16-byte messages into a one-way [`Pipe`] as fast as it can,
//! the parent receives them; reports million messages per second for `send` (typed, encoded)
//! and `send_bytes` (raw bytes), against Python's `Pipe(duplex=False)` doing the same and a raw
//! shared-memory ring between two processes.

use multiproc::{Connection, Never, Pipe, Process};
use serde::{Deserialize, Serialize};

use super::peer::{self, PeerResult};
use super::{Better, Ctx, Row, Workload};
use crate::raw_ipc::{self, Msg, msg};

pub const WORKLOAD: Workload = Workload {
    name: "pipe_throughput",
    about: "a child sends 16-byte messages into a one-way Pipe, the parent receives them (million msg/s)",
    run,
};

const UNIT: &str = "Mmsg/s";

/// Which pair of methods moves the messages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Api {
    /// `send` / `recv` of a `[u8; 16]` (Python: `send` / `recv`, which pickle).
    Send,
    /// `send_bytes` / `recv_bytes` (the same in Python).
    SendBytes,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Send => "send",
            Api::SendBytes => "send_bytes",
        }
    }
}

fn produce((writer, n, api): (Connection<Msg, Never>, u64, Api)) -> PeerResult {
    for i in 0..=n {
        match api {
            Api::Send => writer.send(msg(i)).map_err(|e| format!("send {i}: {e}"))?,
            Api::SendBytes => writer
                .send_bytes(&msg(i))
                .map_err(|e| format!("send_bytes {i}: {e}"))?,
        }
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(10_000_000, 1_000_000) as u64;
    let n_python = ctx.pick(300_000, 30_000).to_string();
    let n_raw = ctx.pick(50_000_000, 5_000_000) as u64;

    // One raw bound for both variants: the same messages through the same ring.
    ctx.progress(name, "*", "raw");
    let measured = raw_ipc::spsc_ring_rate(n_raw).map(|rate| rate / 1e6);
    let raw = ctx.check(name, "*", "raw", measured);

    let mut rows = Vec::new();
    for api in [Api::Send, Api::SendBytes] {
        let variant = api.name();
        ctx.progress(name, variant, "multiproc");
        let value = ctx.check(name, variant, "multiproc", measure(api, n));

        ctx.progress(name, variant, "python");
        let python = ctx.python(name, &["--api", variant, "--n", &n_python], UNIT);

        rows.push(Row {
            workload: name,
            variant: variant.to_string(),
            unit: UNIT,
            better: Better::Higher,
            value,
            python,
            raw,
            bound: raw_ipc::RING_BOUND,
        });
    }
    rows
}

fn measure(api: Api, n: u64) -> Result<f64, String> {
    let (reader, writer) = Pipe::simplex::<Msg>().map_err(|e| format!("Pipe::simplex: {e}"))?;
    let child = Process::spawn(produce, (writer, n, api)).map_err(|e| format!("spawn: {e}"))?;
    // A pipe's `recv` fails when the child is gone: no timeout needed.
    let recv = || match api {
        Api::Send => reader.recv().map_err(|e| format!("recv: {e}")),
        Api::SendBytes => {
            let bytes = reader
                .recv_bytes()
                .map_err(|e| format!("recv_bytes: {e}"))?;
            Msg::try_from(bytes.as_slice())
                .map_err(|_| format!("recv_bytes: {} bytes, not 16", bytes.len()))
        }
    };
    let rate = peer::receive_rate(recv(), n, recv);
    peer::settle(child, rate)
}
