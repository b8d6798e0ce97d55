//! The encoder writes exactly postcard's bytes, for every kind of value.

use super::{EncodeError, Fixed, encode_to};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::mem::MaybeUninit;

/// Asserts that `value` encodes to postcard's bytes, into a vector (after
/// bytes already there) and into a fixed buffer of exactly its size; one
/// byte less is `Full`.
fn same<T: Serialize + ?Sized + std::fmt::Debug>(value: &T) {
    let want = postcard::to_allocvec(value).expect("postcard encodes it");
    let mut got = vec![0xAA];
    encode_to(value, &mut got).expect("encodes");
    assert_eq!(&got[1..], &want[..], "{value:?}");
    let mut buf = vec![MaybeUninit::uninit(); want.len()];
    let mut fixed = Fixed::new(&mut buf);
    encode_to(value, &mut fixed).expect("fits exactly");
    assert_eq!(fixed.written(), &want[..], "{value:?} in a fixed buffer");
    if !want.is_empty() {
        let mut short = vec![MaybeUninit::uninit(); want.len() - 1];
        let mut fixed = Fixed::new(&mut short);
        assert!(
            matches!(encode_to(value, &mut fixed), Err(EncodeError::Full)),
            "{value:?} in a buffer a byte short"
        );
    }
}

#[test]
fn integers_at_every_varint_boundary() {
    for shift in 0..64 {
        for delta in [-1i128, 0, 1] {
            let v = (1i128 << shift) + delta;
            if let Ok(v) = u64::try_from(v) {
                same(&v);
                same(&(v as u32));
                same(&(v as u16));
                same(&(v as u8));
                same(&(v as i64));
                same(&(v as i32));
                same(&(v as i16));
                same(&(v as i8));
                same(&(v as i64).wrapping_neg());
                same(&(v as u128));
                same(&(v as i128));
                same(&(v as i128).wrapping_neg());
            }
        }
    }
    for v in [u64::MAX, u64::MAX - 1] {
        same(&v);
    }
    same(&u128::MAX);
    same(&i128::MIN);
    same(&i128::MAX);
    same(&i64::MIN);
    same(&i32::MIN);
    same(&i16::MIN);
    same(&i8::MIN);
    same(&usize::MAX);
    same(&isize::MIN);
}

#[test]
fn random_integers() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let v = seed >> (seed % 64);
        same(&v);
        same(&(v as i64));
        same(&((u128::from(v) << 64) | u128::from(seed)));
    }
}

#[test]
fn floats_bools_chars_and_strings() {
    for f in [
        0.0f64,
        -0.0,
        1.5,
        f64::NAN,
        f64::INFINITY,
        f64::MIN_POSITIVE,
    ] {
        same(&f);
        same(&(f as f32));
    }
    same(&true);
    same(&false);
    for c in ['a', 'é', '€', '𝄞', '\0'] {
        same(&c);
    }
    same("");
    same("hello");
    same(&"x".repeat(200));
    same(&"é".repeat(10_000));
}

#[derive(Debug, Serialize)]
struct Unit;

#[derive(Debug, Serialize)]
struct Newtype(u32);

#[derive(Debug, Serialize)]
struct Pair(i16, String);

#[derive(Debug, Serialize)]
struct Record {
    a: u8,
    b: Option<u64>,
    c: Vec<Pair>,
    d: (bool, char, f32),
    e: BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Serialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Named { name: String, sides: u8 },
}

#[test]
fn structs_enums_options_and_collections() {
    same(&());
    same(&Unit);
    same(&Newtype(300));
    same(&Pair(-5, "five".into()));
    same(&None::<u8>);
    same(&Some(Some(7u8)));
    same(&vec![Shape::Empty, Shape::Circle(1.0), Shape::Rect(3, 4)]);
    same(&Shape::Named {
        name: "tri".into(),
        sides: 3,
    });
    let mut e = BTreeMap::new();
    e.insert("k".to_owned(), vec![1, -1, 1 << 20]);
    e.insert(String::new(), vec![]);
    same(&Record {
        a: 255,
        b: Some(u64::MAX),
        c: vec![Pair(1, "x".into()); 3],
        d: (true, 'z', -2.5),
        e,
    });
    same(&[0u8; 16]);
    same(&vec![0u8; 300]);
    same(&(0..1000u64).collect::<Vec<_>>());
    // A variant index past one varint byte.
    #[derive(Debug)]
    struct Far;
    impl Serialize for Far {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_newtype_variant("Far", 200, "v", &1u8)
        }
    }
    same(&Far);
}

impl Clone for Pair {
    fn clone(&self) -> Self {
        Pair(self.0, self.1.clone())
    }
}

#[test]
fn bytes_and_collected_strings() {
    #[derive(Debug)]
    struct Bytes(Vec<u8>);
    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
    same(&Bytes(vec![]));
    same(&Bytes((0..=255).collect()));
    #[derive(Debug)]
    struct Shown(u64);
    impl Serialize for Shown {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("<{}>", self.0))
        }
    }
    same(&Shown(12345));
}

#[test]
fn errors_are_kept_not_hidden() {
    #[derive(Debug)]
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no, not this one"))
        }
    }
    let mut out = Vec::new();
    let e = encode_to(&(1u8, Fails), &mut out).unwrap_err();
    assert_eq!(e.to_string(), "no, not this one");
    // A sequence that does not say its length: refused, as by postcard.
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3u8).filter(|_| true))
        }
    }
    assert!(postcard::to_allocvec(&Unsized).is_err());
    let e = encode_to(&Unsized, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("length"), "{e}");
}
