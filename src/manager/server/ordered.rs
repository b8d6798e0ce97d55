//! [`OrderedMap`]: a hash map that keeps insertion order, as Python's
//! `dict` does, with O(1) removal (a removed entry leaves a hole that a
//! later compaction closes).

use crate::manager::protocol::Blob;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct OrderedMap {
    index: HashMap<Blob, usize>,
    slots: Vec<Option<(Blob, Blob)>>,
}

impl OrderedMap {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn get(&self, k: &Blob) -> Option<&Blob> {
        self.index
            .get(k)
            .and_then(|&i| self.slots[i].as_ref())
            .map(|(_, v)| v)
    }

    /// Sets `k` to `v`, returning the previous value; a new key goes last.
    pub(crate) fn insert(&mut self, k: Blob, v: Blob) -> Option<Blob> {
        if let Some(&i) = self.index.get(&k) {
            let slot = self.slots[i].as_mut().expect("indexed slot is full");
            return Some(std::mem::replace(&mut slot.1, v));
        }
        self.index.insert(k.clone(), self.slots.len());
        self.slots.push(Some((k, v)));
        None
    }

    pub(crate) fn remove(&mut self, k: &Blob) -> Option<Blob> {
        let i = self.index.remove(k)?;
        let (_, v) = self.slots[i].take()?;
        if self.slots.len() > 32 && self.index.len() < self.slots.len() / 2 {
            self.compact();
        }
        Some(v)
    }

    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((k, _)) = slot {
                *self.index.get_mut(k).expect("every key is indexed") = i;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Blob, &Blob)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: u8) -> Blob {
        Blob(vec![x])
    }

    #[test]
    fn keeps_insertion_order_through_removals_and_compaction() {
        let mut m = OrderedMap::default();
        for i in 0..100 {
            assert_eq!(m.insert(b(i), b(i)), None);
        }
        assert_eq!(m.insert(b(5), b(50)), Some(b(5)));
        for i in (0..100).filter(|i| i % 3 != 0) {
            assert_eq!(m.remove(&b(i)), Some(if i == 5 { b(50) } else { b(i) }));
        }
        assert_eq!(m.remove(&b(1)), None);
        m.insert(b(200), b(0));
        let keys: Vec<u8> = m.iter().map(|(k, _)| k.0[0]).collect();
        let mut want: Vec<u8> = (0..100).filter(|i| i % 3 == 0).collect();
        want.push(200);
        assert_eq!(keys, want);
        assert_eq!(m.len(), want.len());
        assert_eq!(m.get(&b(99)), Some(&b(99)));
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.iter().count(), 0);
    }
}
