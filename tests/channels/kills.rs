//! Section 4: lock holders killed.

use super::*;

// ---------------------------------------------------- 4. lock holders killed
//
// A queue's producers share one robust lock and its consumers another; a
// process killed while it holds one (SIGKILL at a random moment of a tight
// `put` or `get` loop lands there a good part of the time: about half the
// consumer kills take a message with them, see below) must not wedge the
// others. What a kill may cost:
// - a producer killed in `put`: nothing that any `put` returned for; its
//   last `put`, cut short before the record was published, never happened;
// - a consumer killed in `get`: at most the one message it was taking (a
//   `get` cut short before it moved the head leaves the message for the
//   next consumer; after, the message died with it), and of course the
//   message it had taken and not yet passed on.
// After every kill the parent puts and gets within 1 s, and the queue's two
// views of its length (positions and counts) agree.

/// Kills per scenario: 20, or `CHANNELS_KILLS` (for stress runs).
fn kills() -> u32 {
    std::env::var("CHANNELS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// A message of the kill scenarios: `(tag, sequence number)` (the tag names
/// a producer, or the consumer that forwarded it) and, in the carrier
/// variants, a descriptor, which sends the message through the socket
/// beside the ring (with a carrier record in the ring).
type Carried = (u32, u32, Option<Fd>);
/// The tag that tells the counting consumer to stop.
const STOP: u32 = u32::MAX;
/// The tag of the parent's probe message.
const PROBE: u32 = u32::MAX - 1;
/// Messages the surviving producer puts while its sibling is killed.
const SURVIVOR_PUTS: u32 = 50_000;
/// Messages put for the consumers of a consumer-kill round: more than the
/// two of them take in the longest delay before the kill.
const FILL: u32 = 50_000;
/// As [`FILL`], for messages carrying a descriptor (slower).
const FILL_CARRIERS: u32 = 5_000;

/// A descriptor of /dev/null if `carriers` (which sends the message
/// through the socket beside the ring, a carrier record in the ring).
fn maybe_fd(carriers: bool) -> Option<Fd> {
    carriers.then(|| Fd::from(std::fs::File::open("/dev/null").expect("/dev/null")))
}

/// Puts `(tag, 0..)` in a tight loop until killed; says "ready" after the
/// first put.
fn put_forever((q, tag, carriers, ready): (Queue<Carried>, u32, bool, Fd)) {
    q.put((tag, 0, maybe_fd(carriers))).expect("put");
    say_ready(ready);
    for seq in 1.. {
        q.put((tag, seq, maybe_fd(carriers))).expect("put");
    }
}

/// Puts `(tag, 0..n)`.
fn put_carried((q, tag, n, carriers): (Queue<Carried>, u32, u32, bool)) {
    for seq in 0..n {
        q.put((tag, seq, maybe_fd(carriers))).expect("put");
    }
}

/// What the counting consumer saw: per tag, how many; and every departure
/// from `0, 1, 2, ...` per tag (a loss, a duplicate, a reordering) or
/// failed `get` (the first ten).
type Counts = (Vec<(u32, u32)>, Vec<String>);

fn count_until_stop(q: Queue<Carried>) -> Counts {
    let mut next = std::collections::BTreeMap::<u32, u32>::new();
    let mut anomalies = Vec::new();
    loop {
        match q.get_timeout(JOIN) {
            Ok((STOP, _, _)) => return (next.into_iter().collect(), anomalies),
            Ok((tag, seq, _)) => {
                let want = next.entry(tag).or_insert(0);
                if seq != *want && anomalies.len() < 10 {
                    anomalies.push(format!("tag {tag}: got {seq}, expected {want}"));
                }
                *want = seq + 1;
            }
            Err(RecvTimeoutError::Failed(f)) => {
                if anomalies.len() < 10 {
                    anomalies.push(format!("get failed: {f}"));
                }
            }
            Err(e) => panic!("counting consumer: {e}"),
        }
    }
}

/// The parent's check that a queue works after a kill: a put and a get,
/// each within 1 s.
fn probe(m: Method, q: &Queue<Carried>, round: u32) {
    let t = Instant::now();
    q.put_timeout((PROBE, round, None), secs(1))
        .unwrap_or_else(|e| panic!("{m:?}: round {round}: probe put: {e}"));
    match q.get_timeout(secs(1)) {
        Ok((PROBE, r, None)) if r == round => {}
        other => panic!(
            "{m:?}: round {round}: probe get: {:?}",
            other.map(|(tag, seq, _)| (tag, seq))
        ),
    }
    assert!(
        t.elapsed() < secs(1),
        "{m:?}: round {round}: probe took {:?}",
        t.elapsed()
    );
    // Both views agree: the positions (is_empty) and the counts (len),
    // which a death between their two stores leaves off by one until
    // the next put recounts.
    assert!(q.is_empty(), "{m:?}: round {round}: not empty");
    assert_eq!(q.len(), 0, "{m:?}: round {round}: len");
}

/// Producers killed in the middle of `put`, [`kills`] times: each round a
/// victim puts in a tight loop (so that it holds the producers' lock, or
/// grows the ring holding both locks, a good part of the time), a survivor
/// puts [`SURVIVOR_PUTS`] messages beside it, and one consumer counts; the
/// victim is killed after a random delay.
///
/// What may be lost: nothing that a `put` returned for. The victim's last
/// `put`, cut short, was never committed, so the consumer sees the victim's
/// messages `0..k` with no gap, and all of the survivor's.
fn producer_killed_with(m: Method, carriers: bool) {
    let before = warm_baseline(m);
    {
        let what = if carriers {
            "producer_killed_carriers"
        } else {
            "producer_killed"
        };
        let mut rng = Rng::seeded(&format!("{m:?}: {what}"));
        let q = Queue::<Carried>::new().unwrap();
        let survivor_puts = if carriers {
            FILL_CARRIERS
        } else {
            SURVIVOR_PUTS
        };
        let mut victims = 0u64;
        for round in 0..kills() {
            let (victim_tag, survivor_tag) = (2 * round, 2 * round + 1);
            let mut counter = Kid::spawn(builder(m), count_until_stop, q.clone());
            let (reader, writer) = common::pipe();
            let mut v = Kid::spawn(
                victim(m),
                put_forever,
                (q.clone(), victim_tag, carriers, Fd::from(writer)),
            );
            let mut s = Kid::spawn(
                builder(m),
                put_carried,
                (q.clone(), survivor_tag, survivor_puts, carriers),
            );
            let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
            assert_eq!(line.expect("the victim never said ready"), "ready", "{m:?}");
            std::thread::sleep(Duration::from_micros(rng.below(10_000)));
            v.kill_and_reap("victim producer");
            let killed = Instant::now();
            s.finish("surviving producer");
            // The consumer empties the queue without another put to wake it.
            assert!(
                eventually(secs(10), || q.is_empty()),
                "{m:?}: round {round}: {} messages left 10 s after the kill",
                q.len()
            );
            q.put_timeout((STOP, 0, None), secs(1)).expect("stop");
            let (counts, anomalies) = counter.finish("counting consumer");
            let after = killed.elapsed();
            assert!(
                anomalies.is_empty(),
                "{m:?}: {what} round {round}: {anomalies:?}"
            );
            let count = |tag| {
                counts
                    .iter()
                    .find(|(t, _)| *t == tag)
                    .map_or(0, |(_, n)| *n)
            };
            assert_eq!(
                count(survivor_tag),
                survivor_puts,
                "{m:?}: round {round}: {counts:?}"
            );
            assert!(count(victim_tag) >= 1, "{m:?}: round {round}: {counts:?}");
            assert_eq!(counts.len(), 2, "{m:?}: round {round}: {counts:?}");
            assert!(
                after < secs(10),
                "{m:?}: round {round}: {after:?} to recover"
            );
            victims += u64::from(count(victim_tag));
            probe(m, &q, round);
        }
        eprintln!(
            "{m:?}: {} producers killed ({what}) after {victims} puts in all; none lost",
            kills()
        );
    }
    before.assert_no_leaks(&format!("{m:?}: producer killed"));
}

fn producer_killed(m: Method) {
    producer_killed_with(m, false);
}

fn producer_killed_carriers(m: Method) {
    producer_killed_with(m, true);
}

/// Takes from `q` and puts on `out` as `(who, seq)` until killed; says
/// "ready" after the first.
fn forward_forever((q, out, who, ready): (Queue<Carried>, Queue<Carried>, u32, Fd)) {
    let (_, seq, _) = q.get_timeout(JOIN).expect("get");
    out.put((who, seq, None)).expect("put");
    say_ready(ready);
    loop {
        let (_, seq, _) = q.get_timeout(JOIN).expect("get");
        out.put((who, seq, None)).expect("put");
    }
}

/// Takes from `q` and puts on `out` as `(who, seq)` until a stop message;
/// returns the errors of `get` it saw on the way (the first ten).
fn forward_until_stop((q, out, who): (Queue<Carried>, Queue<Carried>, u32)) -> Vec<String> {
    let mut errors = Vec::new();
    loop {
        match q.get_timeout(JOIN) {
            Ok((STOP, _, _)) => return errors,
            Ok((_, seq, _)) => out.put((who, seq, None)).expect("put"),
            Err(RecvTimeoutError::Failed(f)) if errors.len() < 10 => errors.push(f.to_string()),
            Err(RecvTimeoutError::Failed(_)) => {}
            Err(e) => panic!("surviving consumer: {e}"),
        }
    }
}

/// Consumers killed in the middle of `get`, [`kills`] times: each round a
/// producer child puts [`FILL`] numbered messages, a victim and a survivor
/// take them in tight loops and forward each to `out`; the victim is killed
/// after a random delay, the survivor takes the rest, then a stop message.
/// With `carriers`, every message carries a descriptor, so that the victim
/// also dies while it takes a message's socket part.
///
/// What may be lost: the one message the victim had taken and not yet
/// forwarded, that is at most one per kill: its `get` cut short either left
/// the message in `q` or took it with it; between `get` and the `put` on
/// `out`, or in a `put` on `out` cut short (never committed), it held it.
/// Nothing is duplicated, each consumer's share stays in order, and the
/// survivor's `get`s never fail.
fn consumer_killed_with(m: Method, carriers: bool) {
    let before = warm_baseline(m);
    {
        let what = if carriers {
            "consumer_killed_carriers"
        } else {
            "consumer_killed"
        };
        let mut rng = Rng::seeded(&format!("{m:?}: {what}"));
        let q = Queue::<Carried>::new().unwrap();
        let out = Queue::<Carried>::new().unwrap();
        let fill = if carriers { FILL_CARRIERS } else { FILL };
        let mut lost_in_all = 0;
        for round in 0..kills() {
            let mut producer =
                Kid::spawn(builder(m), put_carried, (q.clone(), round, fill, carriers));
            let (reader, writer) = common::pipe();
            let mut v = Kid::spawn(
                victim(m),
                forward_forever,
                (q.clone(), out.clone(), 0, Fd::from(writer)),
            );
            // The survivor starts once the victim has taken a message: on a
            // loaded machine it could otherwise take them all first.
            let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
            assert_eq!(line.expect("the victim never said ready"), "ready", "{m:?}");
            let mut s = Kid::spawn(builder(m), forward_until_stop, (q.clone(), out.clone(), 1));
            std::thread::sleep(Duration::from_micros(rng.below(10_000)));
            v.kill_and_reap("victim consumer");
            let killed = Instant::now();
            producer.finish("producer");
            q.put_timeout((STOP, 0, None), secs(1)).expect("stop");
            let errors = s.finish("surviving consumer");
            let after = killed.elapsed();
            assert!(
                errors.is_empty(),
                "{m:?}: {what} round {round}: the survivor's gets failed: {errors:?}"
            );
            assert!(
                after < secs(10),
                "{m:?}: round {round}: {after:?} to recover"
            );
            assert!(q.is_empty(), "{m:?}: round {round}: {} left", q.len());

            let mut hits = vec![0u8; fill as usize];
            let mut last = [None::<u32>; 2];
            let mut taken = [0u32; 2];
            loop {
                match out.try_get() {
                    Ok((who, seq, _)) => {
                        let w = who as usize;
                        assert!(
                            last[w].is_none_or(|l| l < seq),
                            "{m:?}: round {round}: consumer {who} got {seq} after {:?}",
                            last[w]
                        );
                        last[w] = Some(seq);
                        taken[w] += 1;
                        hits[seq as usize] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("{m:?}: round {round}: draining: {e}"),
                }
            }
            let lost: Vec<usize> = (0..fill as usize).filter(|&i| hits[i] == 0).collect();
            let dup: Vec<usize> = (0..fill as usize).filter(|&i| hits[i] > 1).collect();
            assert!(dup.is_empty(), "{m:?}: round {round}: duplicated {dup:?}");
            assert!(
                lost.len() <= 1,
                "{m:?}: {what} round {round}: {} lost for one kill: {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            );
            assert!(taken[0] >= 1, "{m:?}: round {round}: {taken:?}");
            lost_in_all += lost.len();
            probe(m, &q, round);
            probe(m, &out, round);
        }
        eprintln!(
            "{m:?}: {} consumers killed ({what}); {lost_in_all} messages lost with them",
            kills()
        );
    }
    before.assert_no_leaks(&format!("{m:?}: consumer killed"));
}

fn consumer_killed(m: Method) {
    consumer_killed_with(m, false);
}

fn consumer_killed_carriers(m: Method) {
    consumer_killed_with(m, true);
}

#[test]
fn producer_killed_forkserver() {
    channel_test("producer_killed", Method::ForkServer, producer_killed);
}

#[test]
fn producer_killed_spawn() {
    channel_test("producer_killed", Method::Spawn, producer_killed);
}

#[test]
fn producer_killed_fork() {
    channel_test("producer_killed", Method::Fork, producer_killed);
}

#[test]
fn producer_killed_carriers_forkserver() {
    channel_test(
        "producer_killed_carriers",
        Method::ForkServer,
        producer_killed_carriers,
    );
}

#[test]
fn producer_killed_carriers_spawn() {
    channel_test(
        "producer_killed_carriers",
        Method::Spawn,
        producer_killed_carriers,
    );
}

#[test]
fn producer_killed_carriers_fork() {
    channel_test(
        "producer_killed_carriers",
        Method::Fork,
        producer_killed_carriers,
    );
}

#[test]
fn consumer_killed_forkserver() {
    channel_test("consumer_killed", Method::ForkServer, consumer_killed);
}

#[test]
fn consumer_killed_spawn() {
    channel_test("consumer_killed", Method::Spawn, consumer_killed);
}

#[test]
fn consumer_killed_fork() {
    channel_test("consumer_killed", Method::Fork, consumer_killed);
}

// A consumer killed between taking a carrier record and receiving its
// frame from the socket: the record is consumed first, so the frame is an
// orphan (lower id) that the next consumer drops; only that one message is
// lost. (Before that order, every later carrier message failed.)

#[test]
fn consumer_killed_carriers_forkserver() {
    channel_test(
        "consumer_killed_carriers",
        Method::ForkServer,
        consumer_killed_carriers,
    );
}

#[test]
fn consumer_killed_carriers_spawn() {
    channel_test(
        "consumer_killed_carriers",
        Method::Spawn,
        consumer_killed_carriers,
    );
}

#[test]
fn consumer_killed_carriers_fork() {
    channel_test(
        "consumer_killed_carriers",
        Method::Fork,
        consumer_killed_carriers,
    );
}

/// Waits in `get` until killed; says "ready" first.
fn get_until_killed((q, ready): (Queue<u32>, Fd)) {
    say_ready(ready);
    let _ = q.get_timeout(JOIN);
}

/// The CPU time this process spent in `get_timeout(timeout_ms)` on an empty
/// queue, in microseconds (and whether it timed out).
fn idle_get_cpu((q, timeout_ms): (Queue<u32>, u64)) -> (bool, u64) {
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain system call filling a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
    };
    let start = cpu();
    let timed_out = q.get_timeout(ms(timeout_ms)) == Err(RecvTimeoutError::Timeout);
    (timed_out, cpu() - start)
}

/// A consumer killed while it sleeps in `get` (the commonest way to stop an
/// idle worker) must not leave the queue believing someone still sleeps:
/// the next process that waits on the empty queue should sleep, not spin.
fn killed_sleeper(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<u32>::new().unwrap();
        let (reader, writer) = common::pipe();
        let mut v = Kid::spawn(victim(m), get_until_killed, (q.clone(), Fd::from(writer)));
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(
            line.expect("the sleeper never said ready"),
            "ready",
            "{m:?}"
        );
        // Past its spin, asleep in poll.
        std::thread::sleep(ms(100));
        v.kill_and_reap("sleeping consumer");
        for i in 0..20_000 {
            q.put(i).unwrap();
            assert_eq!(q.try_get(), Ok(i), "{m:?}");
        }
        let mut waiter = Kid::spawn(builder(m), idle_get_cpu, (q.clone(), 1000));
        let (timed_out, cpu_us) = waiter.finish("idle waiter");
        eprintln!("{m:?}: idle waiter used {cpu_us} µs of CPU");
        assert!(timed_out, "{m:?}");
        assert!(
            cpu_us < 300_000,
            "{m:?}: a get_timeout(1 s) on an empty queue used {} ms of CPU",
            cpu_us / 1000
        );
    }
    before.assert_no_leaks(&format!("{m:?}: killed sleeper"));
}

#[test]
fn killed_sleeper_forkserver() {
    channel_test("killed_sleeper", Method::ForkServer, killed_sleeper);
}
