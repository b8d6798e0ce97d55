//! Replays the fuzz corpora as regular tests: the frame decoder's
//! (`fuzz/corpus/frame/`) and, at the end, the connection channel's frame
//! reader's (`fuzz/corpus/channel_frame/`) and a manager server's request path
//! (`fuzz/corpus/manager_request/`), each the same way. For `frame`: every committed input goes through the same calls as the
//! fuzz target (`fuzz/fuzz_targets/frame.rs`), and the named seeds, built
//! here, must be committed unchanged and decode to their known values (or be
//! refused), so that a broken decoder fails this test without a fuzzer.
//!
//! After a change to the frame layout, rewrite the named seeds with
//! `cargo test --test fuzz_corpus -- --ignored write_named_seeds`.

#[path = "../fuzz/common/channel_frame.rs"]
mod channel_frame;
#[path = "../fuzz/common/frame.rs"]
mod frame;
#[path = "../fuzz/common/manager_request.rs"]
mod manager_request;

use frame::{Decoded, Nested, decode_all};
use multiproc::inline_frame_bytes;
use std::fs;
use std::panic;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame")
}

/// A value a named seed decodes to, with the type pair it decodes as.
#[derive(Debug, Clone)]
enum Value {
    U8String(u8, String),
    U32Vec(u32, Vec<u64>),
    Nested(Nested),
}

impl Value {
    fn frame(&self) -> Vec<u8> {
        match self {
            Value::U8String(e, p) => inline_frame_bytes(e, p),
            Value::U32Vec(e, p) => inline_frame_bytes(e, p),
            Value::Nested((e, p)) => inline_frame_bytes(e, p),
        }
    }

    fn assert_decoded(&self, name: &str, got: &Decoded) {
        match self {
            Value::U8String(e, p) => {
                assert_eq!(got.u8_string, Some((*e, p.clone())), "{name}")
            }
            Value::U32Vec(e, p) => assert_eq!(got.u32_vec, Some((*e, p.clone())), "{name}"),
            Value::Nested(v) => assert_eq!(got.nested.as_ref(), Some(v), "{name}"),
        }
    }
}

/// A committed input whose outcome is known: `Some` value, or refused by
/// every type pair.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    decodes_to: Option<Value>,
}

fn valid(name: &'static str, value: Value) -> Seed {
    Seed {
        name,
        bytes: value.frame(),
        decodes_to: Some(value),
    }
}

fn refused(name: &'static str, bytes: Vec<u8>) -> Seed {
    Seed {
        name,
        bytes,
        decodes_to: None,
    }
}

/// A frame with the header fields given, followed by `body`.
fn raw(magic: &[u8; 4], storage: u8, env_len: u32, payload_len: u64, body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.extend_from_slice(&[storage, 0, 0, 0]);
    v.extend_from_slice(&env_len.to_le_bytes());
    v.extend_from_slice(&payload_len.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// An inline frame with truthful lengths around already-encoded bytes.
fn inline(env: &[u8], payload: &[u8]) -> Vec<u8> {
    raw(
        b"MPF1",
        0,
        env.len() as u32,
        payload.len() as u64,
        &[env, payload].concat(),
    )
}

fn seeds() -> Vec<Seed> {
    // Envelope 1u8 (1 byte), payload "payload" (length byte + 7 bytes).
    let good = inline_frame_bytes(&1u8, &"payload");
    let body = &good[20..];
    let with_storage = |storage: u8, bytes: &[u8]| {
        let mut v = bytes.to_vec();
        v[4] = storage;
        v
    };
    let varint_2_pow_56 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    vec![
        valid("valid-u8-string", Value::U8String(1, "payload".into())),
        valid("valid-u8-empty-string", Value::U8String(0, String::new())),
        valid(
            "valid-u8-unicode",
            Value::U8String(255, "héllo, wörld ✓".into()),
        ),
        valid(
            "valid-u32-vec",
            Value::U32Vec(7, vec![0, 1, 127, 128, 1 << 32, u64::MAX]),
        ),
        valid("valid-u32-vec-empty", Value::U32Vec(u32::MAX, Vec::new())),
        valid(
            "valid-nested-some",
            Value::Nested(("call".into(), (3, Some(vec![1, 2, 3])))),
        ),
        valid(
            "valid-nested-none",
            Value::Nested((String::new(), (0, None))),
        ),
        valid(
            "valid-nested-long",
            Value::Nested(("x".repeat(300), (200, Some(vec![0xab; 1000])))),
        ),
        refused("empty", Vec::new()),
        refused("header-short", good[..19].to_vec()),
        refused("header-only", good[..20].to_vec()),
        refused("truncated-body", good[..good.len() - 1].to_vec()),
        refused("trailing-byte", [&good[..], &[0]].concat()),
        refused("wrong-magic", raw(b"MPF2", 0, 1, 8, body)),
        refused("magic-big-endian", raw(b"1FPM", 0, 1, 8, body)),
        refused("lying-payload-len-long", raw(b"MPF1", 0, 1, 9, body)),
        refused("lying-payload-len-short", raw(b"MPF1", 0, 1, 7, body)),
        refused("lying-split-env-2", raw(b"MPF1", 0, 2, 7, body)),
        refused("lying-split-env-0", raw(b"MPF1", 0, 0, 9, body)),
        refused("huge-env-len", raw(b"MPF1", 0, u32::MAX, 8, body)),
        refused("huge-payload-len", raw(b"MPF1", 0, 1, u64::MAX, body)),
        refused(
            "lengths-past-isize-max",
            raw(b"MPF1", 0, 1, isize::MAX as u64, body),
        ),
        refused(
            "trailing-in-payload",
            raw(b"MPF1", 0, 1, 9, &[body, &[0]].concat()),
        ),
        refused("memfd-no-descriptor", with_storage(1, &good[..20])),
        refused("memfd-with-body", with_storage(1, &good)),
        refused("unknown-storage-2", with_storage(2, &good)),
        refused("unknown-storage-255", with_storage(255, &good)),
        refused("bad-utf8", inline(&[1], &[2, 0xff, 0xfe])),
        refused("bad-option-tag", inline(&[1, b'x'], &[3, 2])),
        refused(
            "vec-count-huge",
            inline(&[7], &[&varint_2_pow_56[..], &[0]].concat()),
        ),
        refused(
            "varint-overlong",
            inline(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &[0]),
        ),
        refused("fd-index-missing", inline(&[0], &[5])),
    ]
}

#[test]
fn smoke() {
    let bytes = fs::read(corpus_dir().join("valid-u8-string")).unwrap();
    assert_eq!(
        decode_all(&bytes).u8_string,
        Some((1, "payload".to_string()))
    );
}

#[test]
fn every_corpus_input_decodes_without_panic() {
    let mut inputs = 0;
    let mut failed = Vec::new();
    for entry in fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        inputs += 1;
        if panic::catch_unwind(|| decode_all(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(inputs > 0, "the corpus {} is empty", corpus_dir().display());
    assert!(failed.is_empty(), "inputs that panicked: {failed:#?}");
}

#[test]
fn named_seeds_are_committed_unchanged() {
    for seed in seeds() {
        let on_disk = fs::read(corpus_dir().join(seed.name)).unwrap_or_default();
        assert!(
            on_disk == seed.bytes,
            "fuzz/corpus/frame/{} is missing or stale: rewrite the named seeds with \
             `cargo test --test fuzz_corpus -- --ignored write_named_seeds`",
            seed.name
        );
    }
}

#[test]
fn named_seeds_decode_to_known_values() {
    for seed in seeds() {
        let got = decode_all(&seed.bytes);
        match &seed.decodes_to {
            Some(value) => value.assert_decoded(seed.name, &got),
            None => assert_eq!(got, Decoded::default(), "{} was not refused", seed.name),
        }
    }
}

/// Writes the named seeds into the corpus (the inputs the fuzzer found stay).
#[test]
#[ignore = "rewrites fuzz/corpus/{frame,channel_frame,manager_request}; run by hand after a frame or request layout change"]
fn write_named_seeds() {
    fs::create_dir_all(corpus_dir()).unwrap();
    for seed in seeds() {
        fs::write(corpus_dir().join(seed.name), &seed.bytes).unwrap();
    }
    fs::create_dir_all(channel_corpus_dir()).unwrap();
    for seed in channel_seeds() {
        fs::write(channel_corpus_dir().join(seed.name), seed.bytes).unwrap();
    }
    fs::create_dir_all(manager_corpus_dir()).unwrap();
    for (name, bytes) in multiproc::manager::manager_request_seeds() {
        fs::write(manager_corpus_dir().join(name), bytes).unwrap();
    }
}

// The connection channel's frame reader (`fuzz/corpus/channel_frame/`).

fn channel_corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/channel_frame")
}

/// A named seed of the channel corpus: its bytes, the frames it reads as
/// under the limit `channel_frame::MAX`, and whether the stream ends with
/// an error.
struct ChannelSeed {
    name: &'static str,
    bytes: Vec<u8>,
    frames: Vec<Vec<u8>>,
    fails: bool,
}

fn cseed(name: &'static str, bytes: Vec<u8>, frames: Vec<Vec<u8>>, fails: bool) -> ChannelSeed {
    ChannelSeed {
        name,
        bytes,
        frames,
        fails,
    }
}

fn channel_seeds() -> Vec<ChannelSeed> {
    use multiproc::channel_frame_bytes as stream;
    let max = channel_frame::MAX;
    let at_limit = vec![0x5a; max];
    let over_limit = vec![0x5a; max + 1];
    let three: [&[u8]; 3] = [b"one", b"", b"three"];
    let good = stream(&[b"hello"]);
    vec![
        cseed("empty", Vec::new(), vec![], false),
        cseed("one-frame", good.clone(), vec![b"hello".to_vec()], false),
        cseed("empty-frame", stream(&[b""]), vec![vec![]], false),
        cseed(
            "three-frames",
            stream(&three),
            three.iter().map(|f| f.to_vec()).collect(),
            false,
        ),
        cseed(
            "at-limit",
            stream(&[&at_limit]),
            vec![at_limit.clone()],
            false,
        ),
        cseed("over-limit", stream(&[&over_limit]), vec![], true),
        cseed(
            "length-u32-max",
            u32::MAX.to_le_bytes().to_vec(),
            vec![],
            true,
        ),
        cseed("header-short", vec![5, 0, 0], vec![], true),
        cseed("body-short", good[..good.len() - 1].to_vec(), vec![], true),
        cseed(
            "good-then-huge",
            [&good[..], &[0xff; 4]].concat(),
            vec![b"hello".to_vec()],
            true,
        ),
        cseed(
            "good-then-header-short",
            [&good[..], &[1]].concat(),
            vec![b"hello".to_vec()],
            true,
        ),
    ]
}

#[test]
fn every_channel_corpus_input_reads_without_panic() {
    let mut inputs = 0;
    let mut failed = Vec::new();
    for entry in fs::read_dir(channel_corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        inputs += 1;
        if panic::catch_unwind(|| channel_frame::parse_all(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        inputs > 0,
        "the corpus {} is empty",
        channel_corpus_dir().display()
    );
    assert!(failed.is_empty(), "inputs that panicked: {failed:#?}");
}

#[test]
fn channel_named_seeds_are_committed_and_read_as_known() {
    for ChannelSeed {
        name,
        bytes,
        frames,
        fails,
    } in channel_seeds()
    {
        let on_disk = fs::read(channel_corpus_dir().join(name)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "fuzz/corpus/channel_frame/{name} is missing or stale: rewrite the named seeds with \
             `cargo test --test fuzz_corpus -- --ignored write_named_seeds`"
        );
        let (got, end) = channel_frame::parse_all(&bytes);
        assert_eq!(got, frames, "{name}");
        assert_eq!(end.is_some(), fails, "{name}: {end:?}");
    }
}

// A manager server's request path (`fuzz/corpus/manager_request/`).

fn manager_corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/manager_request")
}

#[test]
fn every_manager_corpus_input_is_answered_without_panic() {
    let mut inputs = 0;
    let mut failed = Vec::new();
    for entry in fs::read_dir(manager_corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        inputs += 1;
        if panic::catch_unwind(|| manager_request::run(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        inputs > 0,
        "the corpus {} is empty",
        manager_corpus_dir().display()
    );
    assert!(failed.is_empty(), "inputs that panicked: {failed:#?}");
}

#[test]
fn manager_named_seeds_are_committed_and_answer_as_known() {
    for (name, bytes) in multiproc::manager::manager_request_seeds() {
        let committed = fs::read(manager_corpus_dir().join(name))
            .unwrap_or_else(|e| panic!("seed {name} is not committed: {e}"));
        assert_eq!(
            committed, bytes,
            "seed {name} changed: rewrite the named seeds"
        );
        let replies = manager_request::run(&bytes);
        assert!(
            replies.iter().all(|r| !r.starts_with("undecodable")),
            "{name}: {replies:?}"
        );
        let want = multiproc::manager::manager_request_seed_replies(name);
        if !want.is_empty() {
            assert_eq!(replies, want, "{name}");
        }
    }
}
