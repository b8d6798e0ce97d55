//! Scenario 9: registered types and refused configurations.
//!
//! A panicking method fails that call with [`Error::is_panic`], carrying
//! the message (and the server's pid); the object stays, as the panic left
//! it, and the server and its other objects go on; the same from a child
//! process. A panicking constructor fails `create` the same way. Creating
//! a type the server has not registered, or a different type under a
//! registered name, is [`Error::is_misuse`]; so are the `Fork` start
//! method and an empty authkey. Named values of a registered type are
//! shared, and typed.

use super::*;
use multiproc::manager::Proxy;

/// A type whose constructor panics when asked to.
struct Fragile;

impl Managed for Fragile {
    const TYPE_ID: &'static str = "tests.Fragile";
    type Init = bool;
    type Request = ();
    type Response = u8;
    fn new(panic: bool) -> Fragile {
        assert!(!panic, "Fragile::new was told to panic");
        Fragile
    }
    fn handle(&mut self, (): ()) -> u8 {
        7
    }
}

/// Never registered anywhere.
struct Unregistered;

impl Managed for Unregistered {
    const TYPE_ID: &'static str = "tests.Unregistered";
    type Init = ();
    type Request = ();
    type Response = ();
    fn new((): ()) -> Unregistered {
        Unregistered
    }
    fn handle(&mut self, (): ()) {}
}

/// Not the [`Counter`], under the `Counter`'s name.
struct Impostor;

impl Managed for Impostor {
    const TYPE_ID: &'static str = Counter::TYPE_ID;
    type Init = u64;
    type Request = String;
    type Response = u64;
    fn new(_: u64) -> Impostor {
        Impostor
    }
    fn handle(&mut self, _: String) -> u64 {
        0
    }
}

/// A child that makes the counter panic, then adds to it.
fn child_panics(c: Proxy<Counter>) -> (bool, Option<String>, u64) {
    let e = c
        .call(CounterOp::Panic("boom in a child".into()))
        .unwrap_err();
    let after = c.call(CounterOp::Add(1)).unwrap();
    (e.is_panic(), e.panic_message().map(str::to_owned), after)
}

#[test]
fn a_panicking_method_fails_that_call_only() {
    fault_test("a_panicking_method_fails_that_call_only", || {
        let m = Manager::builder()
            .register::<Counter>()
            .register::<Fragile>()
            .start()
            .unwrap();
        let pid = server_pid(&m);
        let c = m.create::<Counter>(5).unwrap();
        let d = m.dict::<u8, u8>().unwrap();
        d.insert(&1, &1).unwrap();

        let e = c.call(CounterOp::Panic("boom 7".into())).unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert_eq!(e.panic_message(), Some("boom 7"), "{e}");
        assert_eq!(e.pid(), Some(pid), "the panic names the server");
        let location = e.panic_location().unwrap_or_default();
        assert!(
            location.contains("main.rs"),
            "the panic's location: {location:?}"
        );
        // The object stays, as the panic left it (5 + 1000).
        assert_eq!(c.call(CounterOp::Get).unwrap(), 1005);
        assert_eq!(c.call(CounterOp::Add(1)).unwrap(), 1006);

        let r = Kid::spawn(builder(StartMethod::ForkServer), child_panics, c.clone())
            .finish("the panicking child");
        assert_eq!(r, (true, Some("boom in a child".into()), 2007));

        // Many panics in a row leave the server as it was.
        for i in 0..5 {
            assert!(
                c.call(CounterOp::Panic(format!("again {i}")))
                    .unwrap_err()
                    .is_panic()
            );
        }
        assert_eq!(c.call(CounterOp::Get).unwrap(), 7007);

        // A panicking constructor.
        let e = m.create::<Fragile>(true).map(drop).unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert_eq!(e.panic_message(), Some("Fragile::new was told to panic"));
        assert_eq!(m.create::<Fragile>(false).unwrap().call(()).unwrap(), 7);
        let e = m.named("f").create::<Fragile>(true).map(drop).unwrap_err();
        assert!(e.is_panic(), "{e}");
        assert_eq!(
            m.named("f")
                .create::<Fragile>(false)
                .unwrap()
                .call(())
                .unwrap(),
            7
        );

        assert!(running(pid), "the server died of a panic");
        assert_eq!(server_pid(&m), pid);
        assert_eq!(d.items().unwrap(), [(1, 1)]);
    });
}

#[test]
fn unregistered_and_mismatched_types_are_misuse() {
    manager_test("unregistered_and_mismatched_types_are_misuse", || {
        let m = counter_manager(StartMethod::ForkServer);
        let e = m.create::<Unregistered>(()).map(drop).unwrap_err();
        assert!(e.is_misuse(), "an unregistered type: {e}");
        let e = m
            .named("u")
            .create::<Unregistered>(())
            .map(drop)
            .unwrap_err();
        assert!(e.is_misuse(), "an unregistered named type: {e}");
        let e = m.create::<Impostor>(0).map(drop).unwrap_err();
        assert!(e.is_misuse(), "another type under a registered name: {e}");

        // A manager with nothing registered refuses the counter.
        let plain = Manager::start().unwrap();
        let e = plain.create::<Counter>(0).map(drop).unwrap_err();
        assert!(e.is_misuse(), "a type registered elsewhere: {e}");

        // Named values of a registered type are shared and typed; the
        // second `init` is ignored.
        let a = m.named("c").create::<Counter>(1).unwrap();
        let b = m.named("c").create::<Counter>(100).unwrap();
        a.call(CounterOp::Add(1)).unwrap();
        assert_eq!(b.call(CounterOp::Get).unwrap(), 2);
        let e = m.named("c").dict::<u8, u8>().map(drop).unwrap_err();
        assert!(e.is_misuse(), "a dict under a counter's name: {e}");
        let e = m.named("c").create::<Impostor>(0).map(drop).unwrap_err();
        assert!(e.is_misuse(), "an impostor under a counter's name: {e}");
    });
}

#[test]
fn fork_start_method_and_empty_authkey_are_refused() {
    manager_test("fork_start_method_and_empty_authkey_are_refused", || {
        let e = Manager::builder()
            .start_method(StartMethod::Fork)
            .start()
            .unwrap_err();
        assert!(e.is_misuse(), "a Fork manager: {e}");
        let e = Manager::builder().authkey(b"").start().unwrap_err();
        assert!(e.is_misuse(), "an empty authkey: {e}");
        // Nothing was left running by either refusal.
        assert!(common::my_zombies().is_empty());
    });
}
