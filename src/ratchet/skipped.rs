//! Double Ratchet §3.5 (`MKSKIPPED`) and §2.6: the store of message keys skipped over by
//! out-of-order delivery, with the bound of SPEC.md §4.4.
//!
//! Keys are indexed by `(ratchet public key, N)`; lookup, insertion and deletion are
//! O(log n). When the store holds `max_stored_skipped` keys, inserting one more evicts the
//! oldest (the one inserted first). Each key is boxed so that rebalancing the maps moves
//! pointers, never key bytes, and is zeroized when it is used, evicted or dropped.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

use super::kdf::MessageKey;

/// The index of a skipped key: the sender's ratchet public key and the message number.
pub(crate) type SkippedIndex = ([u8; 32], u32);

#[derive(Default)]
pub(crate) struct SkippedKeys {
    /// `(ratchet key, N) -> (insertion sequence, key)`.
    by_index: BTreeMap<SkippedIndex, (u64, Box<MessageKey>)>,
    /// `insertion sequence -> (ratchet key, N)`, oldest first.
    by_age: BTreeMap<u64, SkippedIndex>,
    next_sequence: u64,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.by_index.len()
    }

    pub(crate) fn get(&self, dh: &[u8; 32], n: u32) -> Option<&MessageKey> {
        self.by_index.get(&(*dh, n)).map(|(_, key)| &**key)
    }

    /// Deletes a key after use (§3.5: "delete the message key").
    pub(crate) fn remove(&mut self, dh: &[u8; 32], n: u32) {
        if let Some((sequence, _key)) = self.by_index.remove(&(*dh, n)) {
            self.by_age.remove(&sequence);
        }
    }

    /// Whether any key of the chain with ratchet key `dh` is stored.
    pub(crate) fn has_chain(&self, dh: &[u8; 32]) -> bool {
        self.by_index
            .range((*dh, 0)..=(*dh, u32::MAX))
            .next()
            .is_some()
    }

    /// Deletes every stored key of the chain with ratchet key `dh`.
    pub(crate) fn remove_chain(&mut self, dh: &[u8; 32]) {
        let doomed: alloc::vec::Vec<(u64, SkippedIndex)> = self
            .by_index
            .range((*dh, 0)..=(*dh, u32::MAX))
            .map(|(index, (sequence, _))| (*sequence, *index))
            .collect();
        for (sequence, index) in doomed {
            self.by_index.remove(&index);
            self.by_age.remove(&sequence);
        }
    }

    /// Stores a key, then evicts the oldest keys until at most `cap` remain.
    pub(crate) fn insert(&mut self, dh: [u8; 32], n: u32, key: MessageKey, cap: usize) {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        if let Some((old_sequence, _old)) = self.by_index.insert((dh, n), (sequence, Box::new(key)))
        {
            // Not reachable through the ratchet (an index is derived once), but keep the
            // two maps consistent regardless.
            self.by_age.remove(&old_sequence);
        }
        self.by_age.insert(sequence, (dh, n));
        self.evict_to(cap);
    }

    /// Evicts the oldest keys until at most `cap` remain.
    pub(crate) fn evict_to(&mut self, cap: usize) {
        while self.by_index.len() > cap {
            match self.by_age.pop_first() {
                Some((_, index)) => {
                    self.by_index.remove(&index);
                }
                None => break,
            }
        }
    }

    /// The stored keys, oldest first (the order the storage format records).
    pub(crate) fn iter_oldest_first(
        &self,
    ) -> impl Iterator<Item = (&SkippedIndex, &MessageKey)> + '_ {
        self.by_age.values().filter_map(move |index| {
            self.by_index
                .get_key_value(index)
                .map(|(index, (_, key))| (index, &**key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MessageKey {
        MessageKey([b; 32])
    }

    #[test]
    fn lookup_remove_and_evict_oldest() {
        let mut s = SkippedKeys::default();
        for n in 0..5u32 {
            s.insert([1; 32], n, key(n as u8), 3);
        }
        assert_eq!(s.len(), 3);
        assert!(s.get(&[1; 32], 0).is_none());
        assert!(s.get(&[1; 32], 1).is_none());
        assert_eq!(s.get(&[1; 32], 2).unwrap().0, [2; 32]);
        s.remove(&[1; 32], 3);
        assert_eq!(s.len(), 2);
        let order: alloc::vec::Vec<u32> = s.iter_oldest_first().map(|((_, n), _)| *n).collect();
        assert_eq!(order, [2, 4]);
        s.insert([2; 32], 0, key(9), 3);
        s.insert([2; 32], 1, key(9), 3);
        let order: alloc::vec::Vec<u32> = s.iter_oldest_first().map(|((_, n), _)| *n).collect();
        assert_eq!(order, [4, 0, 1]);
        s.evict_to(0);
        assert_eq!(s.len(), 0);
        assert_eq!(s.by_age.len(), 0);
    }
}
