//! A result message's outcome table: where each task's outcome ends in
//! the body that follows it.
//!
//! Written by the worker ([`put_table`]), checked by the pool's manager
//! ([`outcome_count`]) and read in place by the caller ([`split_outcomes`]).

use crate::wire;
use serde::de::DeserializeOwned;

/// Appends a chunk's outcome table for outcomes ending at `ends`: their
/// count (`u64`, little-endian), then each one's length, all in one width
/// (a byte saying 1, 2 or 4, then the lengths, little-endian). A byte per
/// small result, where a postcard `Vec<u32>` of ends took three, and read
/// in place ([`split_outcomes`]), where that one was decoded into a vector
/// by the manager and again by the caller.
pub(crate) fn put_table(msg: &mut Vec<u8>, ends: &[u32]) {
    let lengths = || {
        let mut last = 0;
        ends.iter().map(move |&end| {
            let len = end.saturating_sub(last);
            last = end;
            len
        })
    };
    let longest = lengths().max().unwrap_or(0);
    msg.extend_from_slice(&(ends.len() as u64).to_le_bytes());
    if longest <= u32::from(u8::MAX) {
        msg.push(1);
        msg.extend(lengths().map(|len| len as u8));
    } else if longest <= u32::from(u16::MAX) {
        msg.push(2);
        msg.extend(lengths().flat_map(|len| (len as u16).to_le_bytes()));
    } else {
        msg.push(4);
        msg.extend(lengths().flat_map(u32::to_le_bytes));
    }
}

/// A chunk's outcome table, read in place (see [`put_table`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table<'a> {
    width: usize,
    lengths: &'a [u8],
}

impl<'a> Table<'a> {
    /// The number of outcomes.
    pub(crate) fn len(&self) -> usize {
        self.lengths.len() / self.width
    }

    /// Decodes `body` as bare values of these lengths, onto `out` (see
    /// [`wire::decode_run_into`]); one loop per width, with no width to
    /// look at per value.
    pub(crate) fn decode_run<R: DeserializeOwned>(&self, body: &[u8], out: &mut Vec<R>) -> bool {
        let lengths = self.lengths;
        match self.width {
            1 => wire::decode_run_into(body, lengths.iter().map(|&b| usize::from(b)), out),
            2 => {
                let two = lengths.chunks_exact(2);
                let lens = two.map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])));
                wire::decode_run_into(body, lens, out)
            }
            _ => {
                let four = lengths.chunks_exact(4);
                let lens = four.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize);
                wire::decode_run_into(body, lens, out)
            }
        }
    }

    /// Where each outcome ends in the body.
    pub(crate) fn ends(&self) -> Ends<'a> {
        Ends {
            lengths: self.lengths.chunks_exact(self.width),
            at: 0,
        }
    }
}

/// The ends of a [`Table`]'s outcomes, in order.
pub(crate) struct Ends<'a> {
    lengths: std::slice::ChunksExact<'a, u8>,
    at: usize,
}

impl Iterator for Ends<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let len = match *self.lengths.next()? {
            [a] => u32::from(a),
            [a, b] => u32::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        };
        self.at += len as usize;
        Some(self.at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lengths.size_hint()
    }
}

impl ExactSizeIterator for Ends<'_> {}

/// Splits a result's rest into its outcome table and body, checking that
/// the table is whole and that its lengths add up to the body's.
pub(crate) fn split_outcomes(rest: &[u8]) -> Result<(Table<'_>, &[u8]), String> {
    let bad = |what: &str| format!("a result message's outcome table is {what}");
    let (count, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("cut short"))?;
    let (&width, rest) = rest.split_first().ok_or_else(|| bad("cut short"))?;
    if ![1, 2, 4].contains(&width) {
        return Err(bad("of an unknown width"));
    }
    let width = usize::from(width);
    let bytes = usize::try_from(u64::from_le_bytes(*count))
        .ok()
        .and_then(|n| n.checked_mul(width))
        .filter(|&bytes| bytes <= rest.len())
        .ok_or_else(|| bad("longer than its message"))?;
    let (lengths, body) = rest.split_at(bytes);
    let table = Table { width, lengths };
    // Checked: on a 32-bit target, four-byte lengths can add up past
    // `usize`.
    let sum = match width {
        // (In `u64`, which a message's bytes cannot overflow: a loop the
        // compiler vectorizes, as it would not a checked one.)
        1 => usize::try_from(lengths.iter().map(|&b| u64::from(b)).sum::<u64>()).ok(),
        _ => lengths.chunks_exact(width).try_fold(0usize, |sum, c| {
            let len = c.iter().rev().fold(0u32, |v, &b| v << 8 | u32::from(b));
            sum.checked_add(len as usize)
        }),
    };
    if sum != Some(body.len()) {
        return Err(bad("at odds with its body's length"));
    }
    Ok((table, body))
}

/// The number of outcomes in a result's rest, if its table is sound (see
/// [`split_outcomes`]; the manager's check, before it hands the message on).
pub(crate) fn outcome_count(rest: &[u8]) -> Option<usize> {
    split_outcomes(rest).ok().map(|(table, _)| table.len())
}

#[cfg(test)]
mod tests {
    use super::{outcome_count, put_table, split_outcomes};

    /// Garbage never panics the table's reader, and whatever it accepts
    /// reads back whole: as many ends as it counts, the last one the
    /// body's length.
    #[test]
    fn a_garbage_table_is_refused_or_read_whole() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && len >= 9 {
                // A plausible head: a small count and a known width.
                bytes[..8].copy_from_slice(&(next() % 8).to_le_bytes());
                bytes[8] = [1, 2, 4][(next() % 3) as usize];
            }
            if let Ok((table, body)) = split_outcomes(&bytes) {
                let ends: Vec<usize> = table.ends().collect();
                assert_eq!(ends.len(), table.len());
                assert_eq!(ends.last().copied().unwrap_or(0), body.len());
                assert!(ends.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }

    #[test]
    fn a_results_rest_splits_into_its_table_and_body() {
        for ends in [
            vec![3u32, 7, 10],
            vec![0, 300, 300, 301],
            vec![70_000, 70_001],
        ] {
            let mut rest = Vec::new();
            put_table(&mut rest, &ends);
            let body = vec![7u8; *ends.last().unwrap() as usize];
            rest.extend_from_slice(&body);
            assert_eq!(outcome_count(&rest), Some(ends.len()));
            let (table, got) = split_outcomes(&rest).unwrap();
            assert_eq!(table.ends().len(), ends.len());
            let read: Vec<usize> = table.ends().collect();
            let want: Vec<usize> = ends.iter().map(|&e| e as usize).collect();
            assert_eq!(read, want);
            assert_eq!(got, body);
            // A byte more or less of body: refused.
            assert_eq!(outcome_count(&rest[..rest.len() - 1]), None);
            rest.push(0);
            assert_eq!(outcome_count(&rest), None);
        }
        let mut empty = Vec::new();
        put_table(&mut empty, &[]);
        assert_eq!(outcome_count(&empty), Some(0));
        // Cut short, an unknown width, a count past the message (or past
        // any size: it must not overflow).
        assert_eq!(outcome_count(&[]), None);
        assert_eq!(outcome_count(&[1, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(outcome_count(&[1, 0, 0, 0, 0, 0, 0, 0, 3, 0]), None);
        assert_eq!(outcome_count(&[2, 0, 0, 0, 0, 0, 0, 0, 1, 0]), None);
        assert_eq!(outcome_count(&[0xff; 12]), None);
        assert!(split_outcomes(&[0xff; 3]).is_err());
    }
}
