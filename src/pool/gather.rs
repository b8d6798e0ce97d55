//! Gathering the results of a `map` in input order.
//!
//! Results arrive chunk by chunk, mostly in order. A chunk whose tasks all
//! returned is decoded in one pass straight onto the end of the output
//! when it is next in line, else into a run of its own that waits for its
//! turn: no slot per task, no second pass to collect them (for a million
//! tiny results, those were a third of the caller's time).

use super::handle::{Call, Sink};
use crate::error::{Error, Kind};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Instant;

/// Waits for `total` results of `call`, in task order; the failures, if
/// any, are returned together once every task has finished.
pub(crate) fn gather<R: DeserializeOwned>(
    call: &Call,
    total: usize,
    deadline: Option<Instant>,
) -> Result<Vec<R>, Error> {
    let mut gathered = Gathered::new(total);
    while gathered.got < total {
        let arrivals = call.take_all(deadline);
        if arrivals.is_empty() {
            return Err(Error::timeout());
        }
        for a in arrivals {
            a.into_sink(&mut gathered);
        }
    }
    gathered.finish()
}

/// The results of a call of `total` tasks, as they arrive.
struct Gathered<R> {
    total: usize,
    /// The values of tasks `0..out.len()`, in order.
    out: Vec<R>,
    /// Values that arrived before their turn, by their first task.
    early: BTreeMap<usize, Vec<R>>,
    /// A bit per task with a result: the first one counts, another for the
    /// same task is dropped.
    done: Vec<u64>,
    got: usize,
    /// Once one task failed, values are no longer kept.
    failures: Vec<Error>,
}

impl<R> Gathered<R> {
    fn new(total: usize) -> Self {
        Gathered {
            total,
            out: Vec::with_capacity(total),
            early: BTreeMap::new(),
            done: vec![0; total.div_ceil(64)],
            got: 0,
            failures: Vec::new(),
        }
    }

    /// The words of `done` that tasks `first..end` fall in, with their bits.
    fn words(first: usize, end: usize) -> impl Iterator<Item = (usize, u64)> {
        let mut i = first;
        std::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let (word, bit) = (i / 64, i % 64);
            let n = (64 - bit).min(end - i);
            i += n;
            let ones = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            Some((word, ones << bit))
        })
    }

    /// Whether tasks `first..first + count` all exist and have no result.
    fn all_free(&self, first: usize, count: usize) -> bool {
        let Some(end) = first.checked_add(count).filter(|&end| end <= self.total) else {
            return false;
        };
        Self::words(first, end).all(|(w, bits)| self.done[w] & bits == 0)
    }

    /// Marks tasks `first..first + count` (checked free) as done.
    fn mark(&mut self, first: usize, count: usize) {
        for (w, bits) in Self::words(first, first + count) {
            self.done[w] |= bits;
        }
        self.got += count;
    }

    /// Files `values` (of tasks `first..`, marked): onto the output if it
    /// is their turn, then whatever waited for them; else to wait.
    fn place(&mut self, first: usize, mut values: Vec<R>) {
        if !self.failures.is_empty() || values.is_empty() {
            // (An empty run must not take the place of one waiting there.)
            return;
        }
        if first != self.out.len() {
            self.early.insert(first, values);
            return;
        }
        self.out.append(&mut values);
        self.catch_up();
    }

    fn catch_up(&mut self) {
        while let Some(mut next) = self.early.remove(&self.out.len()) {
            self.out.append(&mut next);
        }
    }

    fn finish(self) -> Result<Vec<R>, Error> {
        if !self.failures.is_empty() {
            return Err(Error::of_failures(self.failures));
        }
        if self.out.len() != self.total {
            return Err(Error::new(Kind::Decode(format!(
                "{} of {} results could be put in order",
                self.out.len(),
                self.total
            ))));
        }
        Ok(self.out)
    }
}

impl<R> Sink<R> for Gathered<R> {
    fn one(&mut self, index: usize, result: Result<R, Error>) {
        if !self.all_free(index, 1) {
            return;
        }
        self.mark(index, 1);
        match result {
            Ok(v) => self.place(index, vec![v]),
            Err(e) => {
                // The call fails: the values are no longer needed.
                self.out = Vec::new();
                self.early.clear();
                self.failures.push(e);
            }
        }
    }

    fn run(
        &mut self,
        first: usize,
        count: usize,
        decode: &mut dyn FnMut(&mut Vec<R>) -> bool,
    ) -> bool {
        if !self.all_free(first, count) {
            // Some of them are in already: one by one, keeping the first.
            return false;
        }
        if first == self.out.len() && self.failures.is_empty() {
            let before = self.out.len();
            if !decode(&mut self.out) {
                return false;
            }
            let added = self.out.len() - before;
            self.mark(first, added);
            self.catch_up();
            return true;
        }
        let mut values = Vec::with_capacity(count);
        if !decode(&mut values) {
            return false;
        }
        self.mark(first, values.len());
        self.place(first, values);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(g: &mut Gathered<u32>, first: usize, values: &[u32]) -> bool {
        g.run(first, values.len(), &mut |out| {
            out.extend_from_slice(values);
            true
        })
    }

    #[test]
    fn runs_in_any_order_come_out_in_task_order() {
        let mut g = Gathered::new(200);
        let all: Vec<u32> = (0..200).collect();
        assert!(run_of(&mut g, 130, &all[130..200]));
        assert!(run_of(&mut g, 0, &all[0..63]));
        g.one(63, Ok(63));
        assert!(run_of(&mut g, 64, &all[64..130]));
        assert_eq!(g.got, 200);
        assert!(g.early.is_empty());
        assert_eq!(g.finish().unwrap(), all);
    }

    #[test]
    fn a_second_result_for_a_task_is_dropped() {
        let mut g = Gathered::new(10);
        assert!(run_of(&mut g, 0, &[0, 1, 2, 3]));
        // Overlapping a run already in: refused as a run, so that it comes
        // one by one; each result already in keeps its first value.
        assert!(!run_of(&mut g, 2, &[20, 30, 40]));
        g.one(3, Ok(30));
        g.one(4, Ok(4));
        assert!(!run_of(&mut g, 8, &[8, 9, 10]), "past the last task");
        assert!(run_of(&mut g, 5, &[5, 6, 7, 8, 9]));
        g.one(9, Ok(90));
        g.one(11, Ok(11));
        assert_eq!(g.got, 10);
        assert_eq!(g.finish().unwrap(), (0..10).collect::<Vec<u32>>());
    }

    #[test]
    fn an_empty_run_takes_nothing_s_place() {
        let mut g = Gathered::new(8);
        assert!(run_of(&mut g, 4, &[4, 5, 6, 7]));
        assert!(run_of(&mut g, 4, &[]));
        assert!(run_of(&mut g, 0, &[0, 1, 2, 3]));
        assert_eq!(g.finish().unwrap(), (0..8).collect::<Vec<u32>>());
    }

    #[test]
    fn a_run_that_does_not_decode_is_not_counted() {
        let mut g: Gathered<u32> = Gathered::new(4);
        assert!(!g.run(0, 4, &mut |_| false));
        assert!(!g.run(2, 2, &mut |_| false));
        assert_eq!(g.got, 0);
        for i in 0..4 {
            g.one(i, Ok(i as u32));
        }
        assert_eq!(g.finish().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn failures_are_all_returned_and_values_dropped() {
        let mut g = Gathered::new(6);
        assert!(run_of(&mut g, 2, &[2, 3]));
        g.one(0, Err(Error::timeout().in_task(0)));
        assert!(g.early.is_empty());
        assert!(run_of(&mut g, 4, &[4, 5]));
        g.one(1, Err(Error::timeout().in_task(1)));
        assert_eq!(g.got, 6);
        let e = g.finish().unwrap_err();
        let failed: Vec<_> = e.failures().iter().map(|f| f.task_index()).collect();
        assert_eq!(failed, [Some(0), Some(1)]);
    }

    #[test]
    fn the_bits_of_a_range_cover_it_exactly() {
        for (first, end) in [
            (0, 0),
            (0, 1),
            (0, 64),
            (3, 64),
            (63, 65),
            (5, 200),
            (64, 128),
        ] {
            let mut bits = [0u64; 4];
            for (w, b) in Gathered::<u8>::words(first, end) {
                assert_eq!(bits[w] & b, 0, "a bit twice");
                bits[w] |= b;
            }
            for i in 0..256 {
                let set = bits[i / 64] >> (i % 64) & 1 == 1;
                assert_eq!(set, (first..end).contains(&i), "bit {i} of {first}..{end}");
            }
        }
    }
}
