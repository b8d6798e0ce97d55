use super::frame::{self, inline_frame_bytes, parse_for_fuzz};
use super::*;
use crate::sys::socket::seqpacket_pair;
use std::os::fd::{AsFd, AsRawFd};

#[test]
fn smoke_value_round_trip() {
    let (bytes, fds) = encode(&(1u32, "two".to_string(), vec![3u8; 5])).unwrap();
    assert!(fds.is_empty());
    let back: (u32, String, Vec<u8>) = decode(&bytes, fds).unwrap();
    assert_eq!(back, (1, "two".into(), vec![3; 5]));
}

#[test]
fn trailing_bytes_are_refused() {
    let (mut bytes, _) = encode(&7u32).unwrap();
    bytes.push(0);
    assert!(matches!(
        decode::<u32>(&bytes, vec![]),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn fd_travels_through_the_handle_table() {
    let null = Fd::from(crate::sys::open_dev_null().unwrap());
    let (bytes, fds) = encode(&(5u8, &null)).unwrap();
    assert_eq!(fds.len(), 1);
    let (n, back): (u8, Fd) = decode(&bytes, fds).unwrap();
    assert_eq!(n, 5);
    assert_ne!(
        back.as_raw_fd(),
        null.as_raw_fd(),
        "the receiver owns a new descriptor"
    );
}

/// Small values are encoded on the stack, larger ones start again into a
/// vector: either way the handle table holds each handle once.
#[test]
fn encode_with_small_and_large_values_keep_one_handle_each() {
    let null = Fd::from(crate::sys::open_dev_null().unwrap());
    for len in [0usize, 100, SMALL - 20, SMALL, 4 * SMALL, 100_000] {
        let value = (&null, vec![7u8; len], &null);
        let (bytes, fds) = encode_with(&value, |b, fds| (b.to_vec(), fds)).unwrap();
        assert_eq!(fds.len(), 2, "{len} bytes");
        let (a, v, b): (Fd, Vec<u8>, Fd) = decode(&bytes, fds).unwrap();
        assert_eq!(v.len(), len);
        assert_ne!(a.as_raw_fd(), b.as_raw_fd());
    }
}

/// Shown with `Display` (`collect_str`, formatted apart before it is
/// written): past the stack buffer, the value must still go through.
struct Shown(String);

impl serde::Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[test]
fn encode_with_a_collected_string_across_the_stack_buffer() {
    for pad in [0usize, 300, SMALL - 60, 2000] {
        let value = (vec![0u8; pad], Shown("x".repeat(100)));
        let (bytes, fds) = encode_with(&value, |b, fds| (b.to_vec(), fds)).unwrap();
        let (v, s): (Vec<u8>, String) = decode(&bytes, fds).unwrap();
        assert_eq!((v.len(), s.len()), (pad, 100));
    }
}

/// Each of `items` through an [`EachWriter`].
fn encode_each_strict<T: serde::Serialize>(items: &[T]) -> Result<each::Parts, WireError> {
    let mut w = EachWriter::default();
    for item in items {
        w.push(item)?;
    }
    Ok(w.into_parts())
}

/// [`decode_run_into`] into a vector holding one earlier value: the run's
/// values, or `None` (and the earlier value alone left).
fn decode_run<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
    ends: &[u32],
) -> Option<Vec<T>> {
    let mut out = vec![T::default()];
    // Lengths from the ends (an end before the previous one: a length
    // that cannot fit).
    let mut last = 0;
    let lengths: Vec<usize> = ends
        .iter()
        .map(|&e| {
            let len = (e as usize).checked_sub(last).unwrap_or(usize::MAX);
            last = e as usize;
            len
        })
        .collect();
    if decode_run_into(bytes, lengths.into_iter(), &mut out) {
        out.remove(0);
        return Some(out);
    }
    assert_eq!(out.len(), 1, "a failed run leaves the vector as it was");
    None
}

/// One pass over values written back to back: all of them, each ending
/// where the table says, or `None` (then the caller decodes them one by
/// one).
#[test]
fn decode_run_takes_all_or_none() {
    let (bytes, fds, ends) = encode_each_strict(&[1u32, 300, 70_000]).unwrap();
    assert!(fds.is_empty());
    assert_eq!(ends, [1, 3, 6]);
    assert_eq!(decode_run::<u32>(&bytes, &ends), Some(vec![1, 300, 70_000]));
    assert_eq!(
        decode_run::<u32>(&bytes, &ends[..2]),
        None,
        "bytes left over"
    );
    assert_eq!(
        decode_run::<u32>(&bytes, &[1, 3, 6, 7]),
        None,
        "too few bytes"
    );
    assert_eq!(
        decode_run::<u32>(&bytes, &[1, 4, 6]),
        None,
        "an end elsewhere"
    );
    assert_eq!(decode_run::<bool>(&[1, 7], &[1, 2]), None, "a bad value");
    assert_eq!(decode_run::<()>(&[], &[0, 0, 0]), Some(vec![(), (), ()]));
    let mut fds: Vec<Fd> = Vec::new();
    assert!(
        !decode_run_into(&[0], [1].into_iter(), &mut fds),
        "a handle with no table"
    );
}

/// A value that reads past its end into its neighbour, which then decodes
/// too (the shifts cancel out): caught by the ends, not handed to a task.
#[test]
fn decode_run_checks_each_end() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Default)]
    struct Shifty {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        a: Option<u8>,
        #[serde(skip_deserializing)]
        b: u8,
    }
    let items = [Shifty { a: Some(5), b: 1 }, Shifty { a: None, b: 9 }];
    let (bytes, _, ends) = encode_each_strict(&items).unwrap();
    assert_eq!(decode_run::<Shifty>(&bytes, &ends), None);
}

#[test]
fn bad_or_reused_handle_index_is_an_error_not_a_panic() {
    // Index 0 with an empty table.
    let bytes = postcard::to_allocvec(&0u32).unwrap();
    let err = decode::<Fd>(&bytes, vec![]).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    // The same index twice.
    let null = crate::sys::open_dev_null().unwrap();
    let bytes = postcard::to_allocvec(&(0u32, 0u32)).unwrap();
    let err = decode::<(Fd, Fd)>(&bytes, vec![null]).unwrap_err();
    assert!(err.to_string().contains("used twice"), "{err}");
}

#[test]
fn fd_refuses_foreign_serializers() {
    let null = Fd::from(crate::sys::open_dev_null().unwrap());
    assert!(postcard::to_allocvec(&null).is_err());
}

#[test]
fn small_and_large_frames_cross_a_socket() {
    let (a, b) = seqpacket_pair().unwrap();
    for size in [0usize, 10, frame::INLINE_MAX - 10, frame::INLINE_MAX * 4] {
        let data = vec![0xabu8; size];
        frame::send_value(a.as_fd(), &42u16, &data).unwrap();
        let mut f = frame::recv(b.as_fd(), false).unwrap().unwrap();
        assert_eq!(f.envelope::<u16>().unwrap(), 42);
        let back: Vec<u8> = f.decode_payload().unwrap();
        assert_eq!(back.len(), size);
    }
    drop(a);
    assert!(frame::recv(b.as_fd(), false).unwrap().is_none());
}

#[test]
fn garbage_frames_give_errors() {
    let good = inline_frame_bytes(&1u8, &"payload");
    assert_eq!(
        parse_for_fuzz::<u8, String>(&good).unwrap(),
        (1, "payload".to_string())
    );
    // Every truncation of a good frame is refused cleanly.
    for cut in 0..good.len() {
        assert!(
            parse_for_fuzz::<u8, String>(&good[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // A lying payload length.
    let mut lying = good.clone();
    lying[12] = 0xff;
    assert!(parse_for_fuzz::<u8, String>(&lying).is_err());
    // Enormous lengths do not allocate or overflow.
    let mut huge = good.clone();
    huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse_for_fuzz::<u8, String>(&huge).is_err());
    // A memfd frame without its descriptor.
    let mut memfd = good[..20].to_vec();
    memfd[4] = 1;
    assert!(parse_for_fuzz::<u8, String>(&memfd).is_err());
    // Wrong payload type.
    assert!(parse_for_fuzz::<u8, String>(&inline_frame_bytes(&1u8, &vec![0xffu8; 3])).is_err());
}
