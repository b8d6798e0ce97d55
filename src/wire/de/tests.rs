//! The decoder accepts and refuses what postcard's deserializer does, with
//! the same values and the same bytes left over.

use super::Decoder;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

thread_local! {
    /// Inputs both sides read (the random test must not pass only because
    /// everything is refused).
    static READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Ours against postcard's on `bytes`: both refuse, or both read the same
/// value and leave the same rest.
fn agree<T: DeserializeOwned + Debug>(bytes: &[u8]) {
    let theirs = postcard::take_from_bytes::<T>(bytes);
    let mut d = Decoder::new(bytes);
    let ours = T::deserialize(&mut d);
    match (theirs, ours) {
        (Ok((want, rest)), Ok(got)) => {
            // By `Debug`: a NaN is not equal to itself.
            assert_eq!(
                format!("{got:?}"),
                format!("{want:?}"),
                "{bytes:?} as {}",
                std::any::type_name::<T>()
            );
            assert_eq!(d.rest(), rest, "{bytes:?}: bytes left");
            READ.with(|r| r.set(r.get() + 1));
        }
        (Err(_), Err(_)) => {}
        (theirs, ours) => panic!(
            "{bytes:?} as {}: postcard {theirs:?}, ours {ours:?}",
            std::any::type_name::<T>()
        ),
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u16),
    Named { name: String, sides: i8 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    a: u8,
    b: Option<i64>,
    c: Vec<(bool, char)>,
    d: BTreeMap<u16, String>,
    e: [u8; 3],
    f: (),
    g: i128,
    h: f32,
}

/// Every type against random bytes (short, with the values that matter:
/// 0, 1, 0x7f, 0x80, 0xff and UTF-8 lead bytes, more often).
fn all_agree(bytes: &[u8]) {
    agree::<bool>(bytes);
    agree::<u8>(bytes);
    agree::<i8>(bytes);
    agree::<u16>(bytes);
    agree::<i16>(bytes);
    agree::<u32>(bytes);
    agree::<i32>(bytes);
    agree::<u64>(bytes);
    agree::<i64>(bytes);
    agree::<u128>(bytes);
    agree::<i128>(bytes);
    agree::<usize>(bytes);
    agree::<char>(bytes);
    agree::<String>(bytes);
    agree::<Option<u16>>(bytes);
    agree::<Option<Option<()>>>(bytes);
    agree::<Vec<u32>>(bytes);
    agree::<Vec<Option<char>>>(bytes);
    agree::<(u8, String, bool)>(bytes);
    agree::<[u8; 4]>(bytes);
    agree::<BTreeMap<u8, bool>>(bytes);
    agree::<Shape>(bytes);
    agree::<Vec<Shape>>(bytes);
    agree::<Record>(bytes);
    // Floats: compared by bits (NaN != NaN).
    let bits = |b: &[u8]| {
        let theirs = postcard::take_from_bytes::<f64>(b).map(|(v, r)| (v.to_bits(), r));
        let mut d = Decoder::new(b);
        let ours = f64::deserialize(&mut d).map(|v| (v.to_bits(), d.rest()));
        assert_eq!(theirs.ok(), ours.ok(), "{b:?} as f64");
    };
    bits(bytes);
}

#[test]
fn random_bytes_are_read_alike() {
    let mut seed = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const SPECIAL: [u8; 10] = [0, 1, 2, 3, 0x7f, 0x80, 0x81, 0xff, 0xc3, 0xf0];
    for _ in 0..30_000 {
        let len = (next() % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 3 == 0 {
                    SPECIAL[(r >> 8) as usize % SPECIAL.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect();
        all_agree(&bytes);
    }
    let read = READ.with(|r| r.get());
    assert!(read > 100_000, "only {read} inputs read by both");
}

/// A `Deserialize` that goes on after an element fails reads on from
/// where postcard would: the refused varint's bytes are used up.
#[test]
fn a_refused_varint_is_used_up() {
    #[derive(Debug)]
    struct Forgiving(Option<u64>, u8);
    impl<'de> Deserialize<'de> for Forgiving {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Forgiving, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Forgiving;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("two")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Forgiving, A::Error> {
                    let a = seq.next_element::<u64>().ok().flatten();
                    let b = seq.next_element::<u8>()?.unwrap_or(0);
                    Ok(Forgiving(a, b))
                }
            }
            d.deserialize_tuple(2, V)
        }
    }
    let mut too_long = vec![0xffu8; 10];
    too_long.extend([5, 6]);
    let mut too_large = vec![0xffu8; 9];
    too_large.extend([2, 5, 6]);
    for bytes in [too_long, too_large] {
        agree::<Forgiving>(&bytes);
        let f = Forgiving::deserialize(&mut Decoder::new(&bytes)).unwrap();
        assert_eq!((f.0, f.1), (None, 5), "{bytes:?}");
        // Near the end (under 10 bytes left) too.
        agree::<Forgiving>(&bytes[..bytes.len() - 1]);
    }
}

#[test]
fn varints_at_their_limits_are_read_alike() {
    // Every length of continuation, with every last byte that matters.
    for len in 0..21 {
        for last in [0u8, 1, 2, 3, 4, 0x0f, 0x10, 0x7f, 0x80] {
            let mut bytes = vec![0xffu8; len];
            bytes.push(last);
            bytes.push(0);
            all_agree(&bytes);
        }
    }
}

#[test]
fn encoded_values_come_back() {
    fn back<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: T) {
        let bytes = postcard::to_allocvec(&v).unwrap();
        let mut d = Decoder::new(&bytes);
        assert_eq!(T::deserialize(&mut d).unwrap(), v);
        assert!(d.rest().is_empty());
        agree::<T>(&bytes);
    }
    back(Shape::Named {
        name: "tri".into(),
        sides: -3,
    });
    back(vec![Shape::Empty, Shape::Circle(1.5), Shape::Rect(7, 9)]);
    let mut d = BTreeMap::new();
    d.insert(300u16, "é€𝄞".to_owned());
    back(Record {
        a: 255,
        b: Some(i64::MIN),
        c: vec![(true, '𝄞'), (false, 'a')],
        d,
        e: [1, 2, 3],
        f: (),
        g: i128::MIN,
        h: -0.5,
    });
    back((u128::MAX, i16::MIN, u32::MAX, usize::MAX));
}

#[test]
fn custom_messages_are_kept() {
    #[derive(Debug)]
    struct Picky;
    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
            let v = u8::deserialize(d)?;
            Err(serde::de::Error::custom(format!("not {v}")))
        }
    }
    let e = Picky::deserialize(&mut Decoder::new(&[7])).unwrap_err();
    assert_eq!(e.to_string(), "not 7");
}
