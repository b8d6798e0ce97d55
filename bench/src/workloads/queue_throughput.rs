//! `queue_throughput`: a child puts 16-byte messages on a [`Queue`] as fast as it can, the
//! parent gets them; reports million messages per second, against Python's `mp.Queue` and a
//! raw shared-memory ring between two processes. Variant `put` uses an unbounded queue,
//! `bounded` a queue of [`BOUND`] messages (Python's `Queue(maxsize=BOUND)`), where the producer
//! keeps meeting the bound.

use multiproc::{Process, Queue};

use super::peer::{self, PeerResult};
use super::{Better, Ctx, Row, Workload};
use crate::raw_ipc::{self, Msg, msg};

pub const WORKLOAD: Workload = Workload {
    name: "queue_throughput",
    about: "a child puts 16-byte messages on a Queue, the parent gets them (million msg/s)",
    run,
};

const UNIT: &str = "Mmsg/s";
const VARIANT: &str = "put";
const BOUNDED: &str = "bounded";
/// The bound of the `bounded` variant.
pub const BOUND: usize = 4096;

fn produce((queue, n): (Queue<Msg>, u64)) -> PeerResult {
    for i in 0..=n {
        queue.put(msg(i)).map_err(|e| format!("put {i}: {e}"))?;
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(10_000_000, 1_000_000) as u64;
    let n_python = ctx.pick(300_000, 30_000).to_string();
    let n_raw = ctx.pick(50_000_000, 5_000_000) as u64;

    ctx.progress(name, VARIANT, "raw");
    let measured = raw_ipc::spsc_ring_rate(n_raw).map(|rate| rate / 1e6);
    let raw = ctx.check(name, VARIANT, "raw", measured);

    let mut rows = Vec::new();
    for (variant, bound) in [(VARIANT, None), (BOUNDED, Some(BOUND))] {
        ctx.progress(name, variant, "multiproc");
        let value = ctx.check(name, variant, "multiproc", measure(n, bound));

        ctx.progress(name, variant, "python");
        let maxsize = bound.unwrap_or(0).to_string();
        let python = ctx.python(name, &["--n", &n_python, "--maxsize", &maxsize], UNIT);

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

fn measure(n: u64, bound: Option<usize>) -> Result<f64, String> {
    let queue = match bound {
        Some(b) => Queue::<Msg>::bounded(b),
        None => Queue::<Msg>::new(),
    }
    .map_err(|e| format!("Queue: {e}"))?;
    let child = Process::spawn(produce, (queue.clone(), n)).map_err(|e| format!("spawn: {e}"))?;
    let first = queue
        .get_timeout(peer::FIRST_MESSAGE_TIMEOUT)
        .map_err(|e| format!("first get: {e}"));
    let rate = peer::receive_rate(first, n, || queue.get().map_err(|e| format!("get: {e}")));
    peer::settle(child, rate)
}
