//! Scenario 7: proxies travel.
//!
//! A [`Bundle`] of one proxy of each kind goes to a child as its spawn
//! argument (with each start method), through a `Pipe` (and back), and
//! through a `Queue`. The child uses every proxy; the test process sees
//! every effect, and the proxies that came back work and name the same
//! objects. A proxy received as another type (other type parameters,
//! another kind, another registered type) through a `Queue`, a `Pipe` or
//! a `Channel` is a decode error, and the channel goes on working. A
//! process that has used a proxy forks (`StartMethod::Fork`): parent and
//! child go on using it at once, each getting its own answers.

use super::*;
use crate::wire;
use multiproc::connection::{Client, Listener};
use multiproc::manager::{
    DictProxy, EventProxy, ListProxy, LockProxy, NamespaceProxy, Proxy, QueueProxy, ValueProxy,
};
use multiproc::{Connection, Pipe, Queue, RecvTimeoutError};
use serde::de::DeserializeOwned;

/// One proxy of each kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Bundle {
    dict: DictProxy<String, u64>,
    list: ListProxy<u32>,
    ns: NamespaceProxy,
    queue: QueueProxy<String>,
    lock: LockProxy,
    event: EventProxy,
    value: ValueProxy<Vec<u8>>,
    counter: Proxy<Counter>,
}

impl Bundle {
    fn new(m: &Manager) -> Bundle {
        Bundle {
            dict: m.dict().unwrap(),
            list: m.list().unwrap(),
            ns: m.namespace().unwrap(),
            queue: m.queue().unwrap(),
            lock: m.lock().unwrap(),
            event: m.event().unwrap(),
            value: m.value(&vec![0]).unwrap(),
            counter: m.create::<Counter>(0).unwrap(),
        }
    }

    /// What a child does with the bundle it received, tagged `tag`.
    fn use_all(&self, tag: u64) {
        self.dict.insert(&format!("child {tag}"), &tag).unwrap();
        self.list.extend([1, 2, 3]).unwrap();
        self.ns.set(&format!("tag{tag}"), &tag).unwrap();
        self.queue.put(&format!("from child {tag}")).unwrap();
        let g = self.lock.try_acquire().unwrap().expect("the lock is free");
        g.release().unwrap();
        self.event.set().unwrap();
        let mut v = self.value.get().unwrap();
        v.push(tag as u8);
        self.value.set(&v).unwrap();
        self.counter.call(CounterOp::Add(tag)).unwrap();
    }

    /// Checks, in the test process, what [`use_all`](Bundle::use_all) did.
    fn check(&self, tag: u64, what: &str) {
        assert_eq!(
            self.dict.get(&format!("child {tag}")).unwrap(),
            Some(tag),
            "{what}"
        );
        assert_eq!(self.list.to_vec().unwrap(), [1, 2, 3], "{what}");
        assert_eq!(
            self.ns.get::<u64>(&format!("tag{tag}")).unwrap(),
            Some(tag),
            "{what}"
        );
        assert_eq!(
            self.queue.try_get().unwrap(),
            Some(format!("from child {tag}")),
            "{what}"
        );
        assert!(self.event.is_set().unwrap(), "{what}");
        assert_eq!(self.value.get().unwrap(), [0, tag as u8], "{what}");
        assert_eq!(self.counter.call(CounterOp::Get).unwrap(), tag, "{what}");
        assert!(
            self.lock.try_acquire().unwrap().is_some(),
            "{what}: the lock was left held"
        );
    }
}

fn child_by_arg((b, tag): (Bundle, u64)) {
    b.use_all(tag);
}

fn child_by_pipe(conn: Connection<Bundle>) {
    let b = conn
        .recv_timeout(JOIN)
        .expect("the bundle through the pipe");
    b.use_all(2);
    conn.send(b).expect("sending the bundle back");
}

fn child_by_queue(q: Queue<Bundle>) {
    q.get_timeout(JOIN)
        .expect("the bundle through the queue")
        .use_all(3);
}

#[test]
fn proxies_travel_as_arguments_pipes_and_queues() {
    fault_test("proxies_travel_as_arguments_pipes_and_queues", || {
        let m = counter_manager(StartMethod::ForkServer);
        for (tag, method) in [(10, StartMethod::ForkServer), (11, StartMethod::Spawn)] {
            let b = Bundle::new(&m);
            Kid::spawn(builder(method), child_by_arg, (b.clone(), tag)).finish("by argument");
            b.check(tag, &format!("as a {method:?} spawn argument"));
        }

        let b = Bundle::new(&m);
        let (here, there) = Pipe::new::<Bundle>().unwrap();
        let mut k = Kid::spawn(builder(StartMethod::ForkServer), child_by_pipe, there);
        here.send(b.clone()).unwrap();
        let back = here.recv_timeout(JOIN).expect("the bundle back");
        k.finish("by pipe");
        b.check(2, "through a pipe");
        // The proxies that came back name the same objects.
        assert_eq!(
            wire::wire_of(&back.dict, &m).id,
            wire::wire_of(&b.dict, &m).id
        );
        back.dict.insert(&"back".into(), &99).unwrap();
        assert_eq!(b.dict.get(&"back".into()).unwrap(), Some(99));
        assert_eq!(back.counter.call(CounterOp::Add(1)).unwrap(), 3);

        let b = Bundle::new(&m);
        let q = Queue::<Bundle>::new().unwrap();
        let mut k = Kid::spawn(builder(StartMethod::Spawn), child_by_queue, q.clone());
        q.put(b.clone()).unwrap();
        k.finish("by queue");
        b.check(3, "through a queue");
    });
}

use crate::common::Swap;

/// Another registered type, for a proxy of the wrong registered type.
struct Other;

impl Managed for Other {
    const TYPE_ID: &'static str = "tests.Other";
    type Init = ();
    type Request = ();
    type Response = ();
    fn new((): ()) -> Other {
        Other
    }
    fn handle(&mut self, (): ()) {}
}

/// Sends `sent` as an `S`, receives it as an `R` through a queue, a pipe
/// and a channel: each must be a decode error, and each channel must then
/// carry an `R` that is one.
fn wrong_type<S, R>(sent: S, right: R, what: &str)
where
    S: Serialize + Clone + std::fmt::Debug + Send + 'static,
    R: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + 'static,
{
    let codec = |r: Result<Swap<S, R>, RecvTimeoutError>, route: &str| match r {
        Err(RecvTimeoutError::Failed(f)) if f.is_codec() => eprintln!("{what} ({route}): {f}"),
        Ok(x) => panic!("{what} ({route}): decoded as the wrong type: {x:?}"),
        Err(e) => panic!("{what} ({route}): expected a decode error, got {e}"),
    };
    let q = Queue::<Swap<S, R>>::new().unwrap();
    q.put(Swap::Sent(sent.clone())).unwrap();
    codec(q.get_timeout(JOIN), "queue");
    q.put(Swap::Got(right.clone())).unwrap();
    assert!(
        matches!(q.get_timeout(JOIN), Ok(Swap::Got(_))),
        "{what}: the queue after"
    );

    let (a, b) = Pipe::new::<Swap<S, R>>().unwrap();
    a.send(Swap::Sent(sent.clone())).unwrap();
    codec(b.recv_timeout(JOIN), "pipe");
    a.send(Swap::Got(right.clone())).unwrap();
    assert!(
        matches!(b.recv_timeout(JOIN), Ok(Swap::Got(_))),
        "{what}: the pipe after"
    );

    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), b"k").unwrap();
    let address = listener.address().clone();
    let server = std::thread::spawn(move || -> Result<(), Error> {
        let mut ch = listener.accept_timeout(JOIN)?;
        ch.send(&sent)?;
        ch.send(&right)?;
        Ok(())
    });
    let mut ch = Client::connect(&address, b"k").unwrap();
    let e = ch
        .recv_timeout::<R>(JOIN)
        .expect_err("a proxy of the wrong type over a channel");
    assert!(e.is_decode(), "{what} (channel): {e}");
    eprintln!("{what} (channel): {e}");
    ch.recv_timeout::<R>(JOIN).expect("the channel after");
    server.join().unwrap().unwrap();
}

#[test]
fn a_proxy_received_as_the_wrong_type_is_a_decode_error() {
    fault_test(
        "a_proxy_received_as_the_wrong_type_is_a_decode_error",
        || {
            let m = Manager::builder()
                .register::<Counter>()
                .register::<Other>()
                .start()
                .unwrap();
            let d = m.dict::<u32, u32>().unwrap();
            wrong_type(
                d.clone(),
                m.dict::<String, u32>().unwrap(),
                "dict<u32,u32> as dict<String,u32>",
            );
            wrong_type(d.clone(), m.list::<u32>().unwrap(), "dict as list");
            wrong_type(
                m.queue::<u32>().unwrap(),
                m.queue::<u64>().unwrap(),
                "queue<u32> as queue<u64>",
            );
            wrong_type(
                m.value(&1u8).unwrap(),
                m.value(&1i8).unwrap(),
                "value<u8> as value<i8>",
            );
            wrong_type(m.lock().unwrap(), m.event().unwrap(), "lock as event");
            wrong_type(
                m.create::<Counter>(0).unwrap(),
                m.create::<Other>(()).unwrap(),
                "Proxy<Counter> as Proxy<Other>",
            );
            // The object is untouched by all that.
            d.insert(&1, &1).unwrap();
            assert_eq!(d.items().unwrap(), [(1, 1)]);
        },
    );
}

/// In a fork-server child (single-threaded, so it may fork): uses the dict
/// (so this process has an idle connection to the server), then forks a
/// child that uses the same proxy while this process goes on using it.
/// Each must get its own answers: the fork child may not use the
/// connections it inherited.
fn fork_driver(d: DictProxy<u32, u32>) -> u32 {
    assert_eq!(d.insert(&0, &0).unwrap(), None);
    let forked = {
        let d = d.clone();
        move || {
            for i in 1..200 {
                assert_eq!(d.insert(&i, &(i * 2)).unwrap(), None, "fork child");
                assert_eq!(d.get(&i).unwrap(), Some(i * 2), "fork child");
            }
            199u32
        }
    };
    let mut child = multiproc::Process::builder()
        .start_method(StartMethod::Fork)
        .fork(forked)
        .expect("forking");
    for i in 1000..1200 {
        assert_eq!(d.insert(&i, &(i * 3)).unwrap(), None, "fork parent");
        assert_eq!(d.get(&i).unwrap(), Some(i * 3), "fork parent");
    }
    child.join_timeout(JOIN).expect("the fork child")
}

#[test]
fn proxies_survive_a_fork() {
    fault_test("proxies_survive_a_fork", || {
        let m = Manager::start().unwrap();
        let d = m.dict::<u32, u32>().unwrap();
        let n = Kid::spawn(builder(StartMethod::ForkServer), fork_driver, d.clone())
            .finish("the fork driver");
        assert_eq!(n, 199);
        assert_eq!(d.len().unwrap(), 400);
        assert_eq!(d.get(&1199).unwrap(), Some(3597));
    });
}
