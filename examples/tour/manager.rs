//! Sections 27 to 29 of the tour: managers (shared objects in a server
//! process, used through proxies).

use super::{ms, section};
use multiproc::manager::{DictProxy, EventProxy, LockProxy, Managed, ValueProxy};
use multiproc::{Manager, Process};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ADDS: u64 = 25;

/// Section 27's children: store `i → i²`, then add 1 to the shared total
/// `ADDS` times, each read-modify-write under the managed lock.
fn square_and_count(
    (squares, total, lock, i): (DictProxy<u32, u32>, ValueProxy<u64>, LockProxy, u32),
) {
    squares.insert(&i, &(i * i)).expect("insert");
    for _ in 0..ADDS {
        let _held = lock.acquire().expect("acquire");
        total.set(&(total.get().expect("get") + 1)).expect("set");
    }
}

/// Section 27's victim: takes the lock, says so, and waits to be killed.
fn die_holding((lock, holding): (LockProxy, EventProxy)) {
    let _held = lock.acquire().expect("acquire");
    holding.set().expect("set");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Section 28's registered type: a word count that lives in the server.
#[derive(Default)]
struct WordCount(BTreeMap<String, u64>);

/// What a [`WordCount`] proxy can ask.
#[derive(Serialize, Deserialize)]
enum WordOp {
    /// Counts these words; answers the new counts of those words.
    Add(Vec<String>),
    /// Answers every count.
    All,
}

impl Managed for WordCount {
    const TYPE_ID: &'static str = "WordCount";
    type Init = ();
    type Request = WordOp;
    type Response = Vec<(String, u64)>;

    fn new((): ()) -> WordCount {
        WordCount::default()
    }

    fn handle(&mut self, op: WordOp) -> Vec<(String, u64)> {
        match op {
            WordOp::Add(words) => words
                .into_iter()
                .map(|w| {
                    let n = self.0.entry(w.clone()).or_default();
                    *n += 1;
                    (w, *n)
                })
                .collect(),
            WordOp::All => self.0.iter().map(|(w, n)| (w.clone(), *n)).collect(),
        }
    }
}

/// Section 28's children: count the words of one line.
fn count_words((counts, line): (multiproc::manager::Proxy<WordCount>, String)) {
    let words = line.split_whitespace().map(str::to_owned).collect();
    counts.call(WordOp::Add(words)).expect("call");
}

/// Section 29's child: knows only an address and a key (as a program on
/// another machine would); connects, squares the jobs of the queue named
/// `jobs` until `None`, puts the squares on `results`; returns how many.
fn remote_worker((address, authkey): (String, Vec<u8>)) -> u32 {
    let address = address.parse().expect("address");
    let manager = Manager::connect(&address, &authkey).expect("connect");
    let jobs = manager.named("jobs").queue::<Option<u64>>().expect("jobs");
    let results = manager
        .named("results")
        .queue::<(u64, u64)>()
        .expect("results");
    let mut done = 0;
    while let Some(x) = jobs.get_timeout(Duration::from_secs(10)).expect("a job") {
        results.put(&(x, x * x)).expect("put");
        done += 1;
    }
    done
}

pub(super) fn tour() {
    section(
        27,
        "Manager: a dict, a value and a lock in a server process",
        "Manager::start() starts a server; its proxies go to children like any argument. Each call is one \
         request,\n   done whole; a read-modify-write takes a LockProxy.",
    );
    let t = Instant::now();
    let manager = Manager::start().expect("Manager::start");
    println!(
        "   server pid {} at {} (started in {})",
        manager.pid().expect("ours"),
        manager.address(),
        ms(t.elapsed())
    );
    let squares = manager.dict::<u32, u32>().expect("dict");
    let total = manager.value(&0u64).expect("value");
    let lock = manager.lock().expect("lock");
    let t = Instant::now();
    let mut kids: Vec<Process<()>> = (0..4)
        .map(|i| {
            let arg = (squares.clone(), total.clone(), lock.clone(), i);
            Process::spawn(square_and_count, arg).expect("spawn")
        })
        .collect();
    for k in &mut kids {
        k.join().expect("join");
    }
    let mut items = squares.items().expect("items");
    items.sort_unstable();
    println!("   4 children stored i → i²: {items:?}");
    let n = total.get().expect("get");
    println!(
        "   and added 1 to a ValueProxy {ADDS} times each under the LockProxy: {n} ({})",
        ms(t.elapsed())
    );
    assert_eq!(items, [(0, 0), (1, 1), (2, 4), (3, 9)]);
    assert_eq!(n, 4 * ADDS);

    let holding = manager.event().expect("event");
    let mut victim = Process::spawn(die_holding, (lock.clone(), holding.clone())).expect("spawn");
    assert!(holding.wait_timeout(Duration::from_secs(30)).expect("wait"));
    victim.kill().expect("kill");
    let t = Instant::now();
    let guard = lock
        .acquire_timeout(Duration::from_secs(30))
        .expect("acquire")
        .expect("the server releases a dead holder's lock");
    println!(
        "   a child killed holding the lock: the next acquire got it after {}, previous_owner_died = {}",
        ms(t.elapsed()),
        guard.previous_owner_died()
    );
    assert!(guard.previous_owner_died());
    guard.release().expect("release");
    let _ = victim.join();
    drop(manager);
    let err = squares.len().expect_err("the server is gone");
    println!("   manager dropped: the server exits, and a proxy says {err}");
    assert!(err.is_disconnected());

    section(
        28,
        "Registered types (Managed)",
        "Your own type lives in the server (Python's BaseManager.register): register it on the builder, \
         create it,\n   call it; handle() runs one request at a time per object, so no lock is needed.",
    );
    let manager = Manager::builder()
        .register::<WordCount>()
        .start()
        .expect("start");
    let counts = manager.create::<WordCount>(()).expect("create");
    let lines = ["the cat sat", "the dog sat", "the end"];
    let mut kids: Vec<Process<()>> = lines
        .iter()
        .map(|l| Process::spawn(count_words, (counts.clone(), l.to_string())).expect("spawn"))
        .collect();
    for k in &mut kids {
        k.join().expect("join");
    }
    let all = counts.call(WordOp::All).expect("call");
    println!("   3 children counted {lines:?}:\n   {all:?}");
    let the = all.iter().find(|(w, _)| w == "the").map(|&(_, n)| n);
    assert_eq!(the, Some(3));
    assert_eq!(all.iter().map(|(_, n)| n).sum::<u64>(), 8);
    drop(manager);

    section(
        29,
        "A manager over TCP, and Manager::connect",
        "A server on 127.0.0.1 (port 0: any free port) with an authkey; clients that know only the address \
         and\n   the key connect and find objects by name: Python's BaseManager(address, authkey).connect().",
    );
    let authkey = b"tour secret".to_vec();
    let manager = Manager::builder()
        .address("127.0.0.1:0".parse().expect("address"))
        .authkey(&authkey)
        .start()
        .expect("start");
    let address = manager.address().to_string();
    println!("   serving at {address}");
    let refused = Manager::connect(manager.address(), b"wrong").expect_err("a wrong key");
    println!("   connect with a wrong key: {refused}");
    assert!(refused.is_authentication_failure());
    let jobs = manager.named("jobs").queue::<Option<u64>>().expect("jobs");
    let results = manager
        .named("results")
        .queue::<(u64, u64)>()
        .expect("results");
    for x in 1..=6 {
        jobs.put(&Some(x)).expect("put");
    }
    jobs.put(&None).expect("put");
    jobs.put(&None).expect("put");
    let t = Instant::now();
    let mut kids: Vec<Process<u32>> = (0..2)
        .map(|_| Process::spawn(remote_worker, (address.clone(), authkey.clone())).expect("spawn"))
        .collect();
    let done: Vec<u32> = kids.iter_mut().map(|k| k.join().expect("join")).collect();
    let mut got: Vec<(u64, u64)> = (0..6)
        .map(|_| {
            results
                .get_timeout(Duration::from_secs(10))
                .expect("a result")
        })
        .collect();
    got.sort_unstable();
    println!(
        "   2 children connected by address and took {done:?} jobs from \"jobs\"; \"results\": {got:?} ({})",
        ms(t.elapsed())
    );
    assert_eq!(done.iter().sum::<u32>(), 6);
    assert_eq!(got, (1..=6).map(|x| (x, x * x)).collect::<Vec<_>>());
    assert!(jobs.is_empty().expect("len"));
    manager.shutdown().expect("shutdown");
}
