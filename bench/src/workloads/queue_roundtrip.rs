//! `queue_roundtrip`: the parent puts a 16-byte message on one [`Queue`], a child that is
//! waiting for it gets it and puts it on a second queue, where the parent gets it back; reports
//! the mean microseconds per round trip, against Python's two `mp.Queue`s doing the same, and
//! against the futex and spin ping-pongs (one row each, as `pipe_roundtrip`).

use multiproc::{Process, Queue};

use super::peer::{self, PeerResult};
use super::pipe_roundtrip::raw_round_trips;
use super::{Better, Ctx, Row, Workload, mean_micros};
use crate::raw_ipc::{Msg, msg};

pub const WORKLOAD: Workload = Workload {
    name: "queue_roundtrip",
    about: "put 16 bytes on a Queue, a waiting child puts them on another (us per round trip)",
    run,
};

const UNIT: &str = "us";
const VARIANT: &str = "put";
const WARMUP: usize = 100;

fn echo((requests, replies, rounds): (Queue<Msg>, Queue<Msg>, usize)) -> PeerResult {
    for _ in 0..rounds {
        let m = requests.get().map_err(|e| format!("get: {e}"))?;
        replies.put(m).map_err(|e| format!("put: {e}"))?;
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(20_000, 2_000);
    let n_python = ctx.pick(10_000, 1_000).to_string();
    let bounds = raw_round_trips(ctx, name);

    ctx.progress(name, VARIANT, "multiproc");
    let value = ctx.check(name, VARIANT, "multiproc", measure(n));

    ctx.progress(name, VARIANT, "python");
    let args = ["--n", &n_python, "--warmup", &WARMUP.to_string()];
    let python = ctx.python(name, &args, UNIT);

    bounds
        .into_iter()
        .map(|(bound, raw)| Row {
            workload: name,
            variant: VARIANT.to_string(),
            unit: UNIT,
            better: Better::Lower,
            value,
            python,
            raw,
            bound,
        })
        .collect()
}

fn measure(n: usize) -> Result<f64, String> {
    let requests = Queue::<Msg>::new().map_err(|e| format!("Queue::new: {e}"))?;
    let replies = Queue::<Msg>::new().map_err(|e| format!("Queue::new: {e}"))?;
    // One round before the warm-up, its reply awaited with a timeout: a child that failed to
    // start must not hang the bench (a Queue does not notice that its peer is gone).
    let child = Process::spawn(echo, (requests.clone(), replies.clone(), 1 + WARMUP + n))
        .map_err(|e| format!("spawn: {e}"))?;
    let first = requests
        .put(msg(0))
        .map_err(|e| format!("put: {e}"))
        .and_then(|()| {
            (replies.get_timeout(peer::FIRST_MESSAGE_TIMEOUT))
                .map_err(|e| format!("first get: {e}"))
        });
    if let Err(e) = first {
        return peer::settle(child, Err(e));
    }
    let mut i = 0;
    let micros = mean_micros(WARMUP, n, || {
        i += 1;
        requests.put(msg(i)).map_err(|e| format!("put: {e}"))?;
        match replies.get().map_err(|e| format!("get: {e}"))? {
            echoed if echoed == msg(i) => Ok(()),
            _ => Err(format!("round trip {i}: the echo differs from the message")),
        }
    });
    peer::settle(child, micros)
}
