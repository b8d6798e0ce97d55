//! Scenario 10: the basic dict scenario with each start method of the
//! server (ForkServer, the default, and Spawn): children started with
//! each method insert squares into a shared dict, and the test process
//! sees them all; the server ends with its manager, and nothing leaks.
//! Also: values larger than a connection's ring, and big batches.

use super::*;
use multiproc::manager::DictProxy;

fn square((d, i): (DictProxy<u32, u32>, u32)) -> Option<u32> {
    d.insert(&i, &(i * i)).unwrap()
}

fn basic_dict(method: StartMethod) {
    let m = Manager::builder().start_method(method).start().unwrap();
    let pid = server_pid(&m);
    let d = m.dict::<u32, u32>().unwrap();
    let mut kids: Vec<Kid<Option<u32>>> = (0..4)
        .map(|i| {
            let child_method = [StartMethod::ForkServer, StartMethod::Spawn][i as usize % 2];
            Kid::spawn(builder(child_method), square, (d.clone(), i))
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.finish("a squaring child"), None, "a key inserted twice");
    }
    let mut items = d.items().unwrap();
    items.sort_unstable();
    assert_eq!(items, [(0, 0), (1, 1), (2, 4), (3, 9)], "{method:?}");
    assert_eq!(d.set_default(&3, &0).unwrap(), 9);
    assert_eq!(d.remove(&0).unwrap(), Some(0));
    assert_eq!(d.len().unwrap(), 3);
    drop(m);
    assert!(
        gone_within(pid, GONE_WITHIN).is_some(),
        "{method:?}: the server lives on"
    );
    assert_gone(d.len(), "the dict after its manager");
}

#[test]
fn basic_dict_forkserver() {
    fault_test("basic_dict_forkserver", || {
        basic_dict(StartMethod::ForkServer)
    });
}

#[test]
fn basic_dict_spawn() {
    fault_test("basic_dict_spawn", || basic_dict(StartMethod::Spawn));
}

/// Values larger than a pipe's ring (256 KiB: they stream through it) and
/// many items in one request, over a local (shared-memory) connection and
/// over TCP, both ways.
#[test]
fn large_values_and_batches() {
    fault_test("large_values_and_batches", || {
        let tcp = Manager::builder()
            .address("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap();
        for (label, m) in [("local", Manager::start().unwrap()), ("tcp", tcp)] {
            let big: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 251) as u8).collect();
            let v = m.value(&big).unwrap();
            assert_eq!(v.get().unwrap(), big, "{label}: a 2 MiB value");
            let mut other = big.clone();
            other.reverse();
            assert_eq!(v.swap(&other).unwrap(), big, "{label}");
            assert_eq!(v.get().unwrap(), other, "{label}");

            let d = m.dict::<u32, String>().unwrap();
            d.update((0..2_000).map(|i| (i, format!("item {i}"))))
                .unwrap();
            let items = d.items().unwrap();
            assert_eq!(items.len(), 2_000, "{label}");
            assert!(
                items
                    .iter()
                    .enumerate()
                    .all(|(i, (k, v))| *k == i as u32 && *v == format!("item {i}"))
            );
        }
    });
}
