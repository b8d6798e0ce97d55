//! `pipe_roundtrip`: the parent sends a 16-byte message on a duplex [`Pipe`], a child that is
//! waiting for it sends it straight back; reports the mean microseconds per round trip for
//! `send` (typed, encoded) and `send_bytes` (raw bytes), against Python's duplex `Pipe` doing the
//! same, and against two raw bounds, one row each: the futex ping-pong (both sides sleep) and the
//! spin ping-pong (both sides stay awake).

use multiproc::{Connection, Pipe, Process};
use serde::{Deserialize, Serialize};

use super::peer::{self, PeerResult};
use super::{Better, Ctx, Row, Workload, mean_micros};
use crate::raw_ipc::{self, Msg, PingPong, msg};

pub const WORKLOAD: Workload = Workload {
    name: "pipe_roundtrip",
    about: "send 16 bytes on a duplex Pipe, a waiting child echoes them (us per round trip)",
    run,
};

const UNIT: &str = "us";
const WARMUP: usize = 100;

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

    fn send(self, conn: &Connection<Msg>, m: Msg) -> Result<(), String> {
        match self {
            Api::Send => conn.send(m).map_err(|e| format!("send: {e}")),
            Api::SendBytes => conn.send_bytes(&m).map_err(|e| format!("send_bytes: {e}")),
        }
    }

    fn recv(self, conn: &Connection<Msg>) -> Result<Msg, String> {
        match self {
            Api::Send => conn.recv().map_err(|e| format!("recv: {e}")),
            Api::SendBytes => {
                let bytes = conn.recv_bytes().map_err(|e| format!("recv_bytes: {e}"))?;
                Msg::try_from(bytes.as_slice())
                    .map_err(|_| format!("recv_bytes: {} bytes, not 16", bytes.len()))
            }
        }
    }
}

fn echo((conn, rounds, api): (Connection<Msg>, usize, Api)) -> PeerResult {
    for _ in 0..rounds {
        api.send(&conn, api.recv(&conn)?)?;
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(20_000, 2_000);
    let n_python = ctx.pick(10_000, 1_000).to_string();
    let warmup = WARMUP.to_string();
    let bounds = raw_round_trips(ctx, name);

    let mut rows = Vec::new();
    for api in [Api::Send, Api::SendBytes] {
        let variant = api.name();
        ctx.progress(name, variant, "multiproc");
        let value = ctx.check(name, variant, "multiproc", measure(api, n));

        ctx.progress(name, variant, "python");
        let args = ["--api", variant, "--n", &n_python, "--warmup", &warmup];
        let python = ctx.python(name, &args, UNIT);

        for &(bound, raw) in &bounds {
            rows.push(Row {
                workload: name,
                variant: variant.to_string(),
                unit: UNIT,
                better: Better::Lower,
                value,
                python,
                raw,
                bound,
            });
        }
    }
    rows
}

/// The two raw round-trip bounds, `(name, microseconds)`, for the rows of a round-trip
/// workload: the futex ping-pong first, then the spin ping-pong.
pub fn raw_round_trips(ctx: &mut Ctx, workload: &str) -> [(&'static str, Option<f64>); 2] {
    [PingPong::Futex, PingPong::Spin].map(|how| {
        let n = match how {
            PingPong::Futex => ctx.pick(20_000, 2_000),
            PingPong::Spin => ctx.pick(200_000, 20_000),
        };
        ctx.progress(workload, how.name(), "raw");
        let measured = raw_ipc::ping_pong_micros(how, WARMUP as u64, n as u64);
        (how.name(), ctx.check(workload, how.name(), "raw", measured))
    })
}

fn measure(api: Api, n: usize) -> Result<f64, String> {
    let (conn, child_end) = Pipe::new::<Msg>().map_err(|e| format!("Pipe::new: {e}"))?;
    let child =
        Process::spawn(echo, (child_end, WARMUP + n, api)).map_err(|e| format!("spawn: {e}"))?;
    let mut i = 0;
    let micros = mean_micros(WARMUP, n, || {
        i += 1;
        api.send(&conn, msg(i))?;
        match api.recv(&conn)? {
            echoed if echoed == msg(i) => Ok(()),
            _ => Err(format!("round trip {i}: the echo differs from the message")),
        }
    });
    peer::settle(child, micros)
}
