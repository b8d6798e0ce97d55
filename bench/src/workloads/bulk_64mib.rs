//! `bulk_64mib`: the parent sends one 64 MiB `Vec<u8>` on a duplex [`Pipe`], a child receives
//! it whole and acks; reports GiB/s of the best round for `send` (a typed `Vec<u8>`) and
//! `send_bytes` (raw bytes), against Python's `Pipe` doing the same and against an in-process
//! `memcpy` of 64 MiB.

use std::time::Instant;

use multiproc::{Connection, Pipe, Process};
use serde::{Deserialize, Serialize};

use super::peer::{self, PeerResult};
use super::{Better, Ctx, Row, Workload};
use crate::raw;

pub const WORKLOAD: Workload = Workload {
    name: "bulk_64mib",
    about: "send one 64 MiB Vec<u8> to a child, which acks once it has it all (GiB/s)",
    run,
};

const UNIT: &str = "GiB/s";
const SIZE: usize = 64 << 20;

/// Which pair of methods moves the buffer (the ack goes the same way back).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Api {
    /// `send` / `recv` of a `Vec<u8>` (Python: `send` / `recv` of `bytes`, which pickle).
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

/// The buffer: byte `i` is `i as u8`, so the receiver can check its length and last byte.
fn buffer() -> Vec<u8> {
    (0..SIZE).map(|i| i as u8).collect()
}

/// The ack: the length received, 8 bytes little-endian.
fn ack(len: usize) -> Vec<u8> {
    (len as u64).to_le_bytes().to_vec()
}

fn receive((conn, rounds, api): (Connection<Vec<u8>>, usize, Api)) -> PeerResult {
    for round in 0..rounds {
        let data = match api {
            Api::Send => conn.recv().map_err(|e| format!("recv: {e}"))?,
            Api::SendBytes => conn.recv_bytes().map_err(|e| format!("recv_bytes: {e}"))?,
        };
        if data.len() != SIZE || data.last() != Some(&((SIZE - 1) as u8)) {
            return Err(format!("round {round}: received {} bytes", data.len()));
        }
        match api {
            Api::Send => conn
                .send(ack(data.len()))
                .map_err(|e| format!("send: {e}"))?,
            Api::SendBytes => conn
                .send_bytes(&ack(data.len()))
                .map_err(|e| format!("send_bytes: {e}"))?,
        }
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let rounds = ctx.pick(10, 3);
    let rounds_arg = rounds.to_string();

    ctx.progress(name, "*", "raw");
    let raw = Some(raw::memcpy_gib_per_s(SIZE, rounds));

    let mut rows = Vec::new();
    for api in [Api::Send, Api::SendBytes] {
        let variant = api.name();
        ctx.progress(name, variant, "multiproc");
        let value = ctx.check(name, variant, "multiproc", measure(api, rounds));

        ctx.progress(name, variant, "python");
        let python = ctx.python(name, &["--api", variant, "--rounds", &rounds_arg], UNIT);

        rows.push(Row {
            workload: name,
            variant: variant.to_string(),
            unit: UNIT,
            better: Better::Higher,
            value,
            python,
            raw,
            bound: "memcpy",
        });
    }
    rows
}

/// GiB/s of the best of `rounds` transfers, after one unmeasured one. A round is timed from
/// `send` to the ack; preparing the buffer to send (a clone, for `send`) is not.
fn measure(api: Api, rounds: usize) -> Result<f64, String> {
    let data = buffer();
    let (conn, child_end) = Pipe::new::<Vec<u8>>().map_err(|e| format!("Pipe::new: {e}"))?;
    let child =
        Process::spawn(receive, (child_end, rounds + 1, api)).map_err(|e| format!("spawn: {e}"))?;
    let mut best = f64::INFINITY;
    let mut transfer = |round: usize| -> Result<(), String> {
        let acked = match api {
            Api::Send => {
                let owned = data.clone();
                let start = Instant::now();
                conn.send(owned).map_err(|e| format!("send: {e}"))?;
                let acked = conn.recv().map_err(|e| format!("recv: {e}"))?;
                (acked, start.elapsed())
            }
            Api::SendBytes => {
                let start = Instant::now();
                conn.send_bytes(&data)
                    .map_err(|e| format!("send_bytes: {e}"))?;
                let acked = conn.recv_bytes().map_err(|e| format!("recv_bytes: {e}"))?;
                (acked, start.elapsed())
            }
        };
        if acked.0 != ack(SIZE) {
            return Err(format!("round {round}: bad ack {:?}", acked.0));
        }
        if round > 0 {
            best = best.min(acked.1.as_secs_f64());
        }
        Ok(())
    };
    let outcome = (0..=rounds).try_for_each(&mut transfer);
    let outcome = outcome.map(|()| SIZE as f64 / f64::from(1u32 << 30) / best);
    peer::settle(child, outcome)
}
