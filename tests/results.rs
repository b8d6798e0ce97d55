//! What a child returns: any serde type, and large results, for each start
//! method (Fork driven from inside a fork-server child).

mod common;

use common::{JOIN, Method, run_with};
use multiproc::{Process, ProcessBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

fn builder(m: Method) -> ProcessBuilder {
    Process::builder().start_method(m.start_method())
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: i64,
    y: f64,
    label: String,
    tags: Vec<String>,
    unit: (),
    pair: (u8, char),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Empty,
    Circle { center: Point, radius: f64 },
    Polygon(Vec<Point>),
    Named(String, u16),
}

type Nested = Option<Result<Option<Vec<Result<u8, String>>>, String>>;

fn point(seed: i64) -> Point {
    Point {
        x: seed * -3,
        y: seed as f64 / 7.0,
        label: format!("point {seed} — ünïcödé ✓"),
        tags: (0..seed).map(|i| format!("tag{i}")).collect(),
        unit: (),
        pair: (seed as u8, 'λ'),
    }
}

fn make_point(seed: i64) -> Point {
    point(seed)
}

fn make_shapes(n: u16) -> Vec<Shape> {
    vec![
        Shape::Empty,
        Shape::Circle {
            center: point(n as i64),
            radius: 1.5,
        },
        Shape::Polygon((0..n as i64).map(point).collect()),
        Shape::Named("named".repeat(n as usize), n),
    ]
}

fn make_map(n: u32) -> HashMap<String, Vec<u32>> {
    (0..n)
        .map(|i| (format!("key-{i}"), (0..i).collect()))
        .collect()
}

fn make_string(n: usize) -> String {
    "multiproc ✓ ".repeat(n)
}

fn nested_values() -> Vec<Nested> {
    vec![
        None,
        Some(Err("outer error".to_owned())),
        Some(Ok(None)),
        Some(Ok(Some(vec![]))),
        Some(Ok(Some(vec![Ok(1), Err("inner".to_owned()), Ok(255)]))),
    ]
}

fn make_nested(i: usize) -> Nested {
    nested_values()[i].clone()
}

fn echo_map(m: HashMap<String, Shape>) -> HashMap<String, Shape> {
    m
}

fn unit(_: ()) {}

/// Deterministic pseudo-random bytes (xorshift64), fast even in debug.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = seed | 1;
    for word in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    v
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(0x0100_0000_01b3);
    }
    for b in tail {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const BIG: usize = 64 << 20;

fn make_big(seed: u64) -> Vec<u8> {
    pattern(BIG, seed)
}

fn serde_types(m: Method) {
    let mut p = builder(m).spawn(make_point, 5).unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), point(5), "{m:?}: struct");

    let mut p = builder(m).spawn(make_shapes, 4).unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), make_shapes(4), "{m:?}: enum");

    let mut p = builder(m).spawn(make_map, 50).unwrap();
    assert_eq!(
        p.join_timeout(JOIN).unwrap(),
        make_map(50),
        "{m:?}: HashMap"
    );

    let mut p = builder(m).spawn(make_string, 1000).unwrap();
    assert_eq!(
        p.join_timeout(JOIN).unwrap(),
        make_string(1000),
        "{m:?}: String"
    );

    for (i, expected) in nested_values().into_iter().enumerate() {
        let mut p = builder(m).spawn(make_nested, i).unwrap();
        assert_eq!(
            p.join_timeout(JOIN).unwrap(),
            expected,
            "{m:?}: nested Option/Result #{i}"
        );
    }

    // Serde types both ways: as argument and as result.
    let arg: HashMap<String, Shape> = make_shapes(3)
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("shape{i}"), s))
        .collect();
    let mut p = builder(m).spawn(echo_map, arg.clone()).unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), arg, "{m:?}: echo");

    let mut p = builder(m).spawn(unit, ()).unwrap();
    p.join_timeout(JOIN).unwrap();
    assert!(p.exitcode().unwrap().success(), "{m:?}");
}

fn big_result(m: Method) {
    let expected = checksum(&pattern(BIG, 99));
    let mut p = builder(m).spawn(make_big, 99).unwrap();
    let got = p
        .join_timeout(JOIN)
        .unwrap_or_else(|e| panic!("{m:?}: {e}"));
    assert_eq!(got.len(), BIG, "{m:?}: length of the 64 MiB result");
    assert_eq!(
        checksum(&got),
        expected,
        "{m:?}: checksum of the 64 MiB result"
    );
    assert!(p.exitcode().unwrap().success(), "{m:?}");
}

#[test]
fn serde_types_forkserver() {
    run_with(Method::ForkServer, serde_types);
}

#[test]
fn serde_types_spawn() {
    run_with(Method::Spawn, serde_types);
}

#[test]
fn serde_types_fork() {
    run_with(Method::Fork, serde_types);
}

#[test]
fn big_result_forkserver() {
    run_with(Method::ForkServer, big_result);
}

#[test]
fn big_result_spawn() {
    run_with(Method::Spawn, big_result);
}

#[test]
fn big_result_fork() {
    run_with(Method::Fork, big_result);
}
