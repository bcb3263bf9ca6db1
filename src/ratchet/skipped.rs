//! Double Ratchet §3.5 (`MKSKIPPED`) and §2.6: the store of message keys skipped over by
//! out-of-order delivery, with the bound of SPEC.md §4.4.
//!
//! Keys are stored in *runs*: the consecutive keys one decryption skipped over in one
//! chain, `(ratchet key, first N, keys)`, allocated once at their exact size, so a key's
//! bytes never move after derivation. Runs are indexed by `(ratchet key, first N)` and
//! ordered by age. Lookup and deletion are O(log runs); storing a run is O(log runs) for
//! the whole run, not per key. A used or evicted key is zeroized in place.
//!
//! The stored form (SPEC.md §7.1) lists the keys oldest first, one entry per key; loading
//! rebuilds the runs from consecutive entries ([`SkippedKeys::read`]).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::kdf::MessageKey;
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::keys::x25519_public_from_bytes;

use crate::format::SKIPPED_ENTRY_LENGTH;

/// The index of a skipped key: the sender's ratchet public key and the message number.
pub(crate) type SkippedIndex = ([u8; 32], u32);

/// Consecutive skipped keys of one chain, message numbers `first .. first + keys.len()`.
#[cfg_attr(fuzzing, derive(Clone))]
struct Run {
    sequence: u64,
    keys: Box<[Option<MessageKey>]>,
    /// Slots before `next` are empty (used or evicted).
    next: usize,
    live: usize,
}

/// Keys being derived by one decryption, before it commits: a run in the making.
pub(crate) struct Staged {
    dh: [u8; 32],
    first: u32,
    pub(super) keys: Vec<Option<MessageKey>>,
}

impl Staged {
    /// A run for `count` keys from `first`; the capacity is exact, so pushing never moves
    /// a key.
    pub(crate) fn new(dh: [u8; 32], first: u32, count: usize) -> Self {
        Staged {
            dh,
            first,
            keys: Vec::with_capacity(count),
        }
    }
}

#[cfg_attr(fuzzing, derive(Clone))]
#[derive(Default)]
pub(crate) struct SkippedKeys {
    /// `(ratchet key, first N) -> run`; the runs of one ratchet key never overlap.
    runs: BTreeMap<SkippedIndex, Run>,
    /// `run sequence -> (ratchet key, first N)`, oldest first.
    by_age: BTreeMap<u64, SkippedIndex>,
    next_sequence: u64,
    len: usize,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The run that would hold `(dh, n)`, and the key's slot in it.
    fn locate(&self, dh: &[u8; 32], n: u32) -> Option<(SkippedIndex, usize)> {
        let (&(run_dh, first), run) = self.runs.range(..=(*dh, n)).next_back()?;
        if run_dh != *dh {
            return None;
        }
        let slot = (n - first) as usize;
        (slot < run.keys.len()).then_some(((run_dh, first), slot))
    }

    pub(crate) fn get(&self, dh: &[u8; 32], n: u32) -> Option<&MessageKey> {
        let (index, slot) = self.locate(dh, n)?;
        self.runs.get(&index)?.keys[slot].as_ref()
    }

    /// Deletes a key after use (§3.5: "delete the message key").
    pub(crate) fn remove(&mut self, dh: &[u8; 32], n: u32) {
        let Some((index, slot)) = self.locate(dh, n) else {
            return;
        };
        let Some(run) = self.runs.get_mut(&index) else {
            return;
        };
        if run.keys[slot].is_some() {
            // Dropped in place: the key is zeroized where it lies.
            run.keys[slot] = None;
            run.live -= 1;
            self.len -= 1;
        }
        if run.live == 0 {
            self.drop_run(index);
        }
    }

    fn drop_run(&mut self, index: SkippedIndex) {
        if let Some(run) = self.runs.remove(&index) {
            self.len -= run.live;
            self.by_age.remove(&run.sequence);
        }
    }

    /// Whether any key of the chain with ratchet key `dh` is stored.
    pub(crate) fn has_chain(&self, dh: &[u8; 32]) -> bool {
        self.runs.range((*dh, 0)..=(*dh, u32::MAX)).next().is_some()
    }

    /// Deletes every stored key of the chain with ratchet key `dh`.
    pub(crate) fn remove_chain(&mut self, dh: &[u8; 32]) {
        let doomed: Vec<SkippedIndex> = self
            .runs
            .range((*dh, 0)..=(*dh, u32::MAX))
            .map(|(index, _)| *index)
            .collect();
        for index in doomed {
            self.drop_run(index);
        }
    }

    /// Stores the keys of a staged run (in chain order), after deleting any earlier run of
    /// the same ratchet key that it overlaps. The caller bounds the store afterwards with
    /// [`SkippedKeys::evict_to`], once every run of a decryption is in (SPEC.md §4.6 step 5).
    pub(crate) fn insert_run(&mut self, staged: Staged) {
        let Staged { dh, first, keys } = staged;
        let live = keys.iter().filter(|k| k.is_some()).count();
        if live == 0 {
            return;
        }
        // Only a peer reusing an old ratchet key makes runs of one key overlap: the newer
        // keys replace the older run(s).
        let end = first.saturating_add(keys.len() as u32);
        while let Some((&(d, f), run)) = self.runs.range(..(dh, end)).next_back() {
            if d != dh || u64::from(f) + run.keys.len() as u64 <= u64::from(first) {
                break;
            }
            self.drop_run((d, f));
        }
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.runs.insert(
            (dh, first),
            Run {
                sequence,
                keys: keys.into_boxed_slice(),
                next: 0,
                live,
            },
        );
        self.by_age.insert(sequence, (dh, first));
        self.len += live;
    }

    /// Stores one key.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, dh: [u8; 32], n: u32, key: MessageKey, cap: usize) {
        let mut staged = Staged::new(dh, n, 1);
        staged.keys.push(Some(key));
        self.insert_run(staged);
        self.evict_to(cap);
    }

    /// Evicts the oldest keys until at most `cap` remain.
    pub(crate) fn evict_to(&mut self, cap: usize) {
        while self.len > cap {
            let Some((_, &index)) = self.by_age.first_key_value() else {
                break;
            };
            let Some(run) = self.runs.get_mut(&index) else {
                break;
            };
            while run.next < run.keys.len() && run.keys[run.next].is_none() {
                run.next += 1;
            }
            if run.next < run.keys.len() {
                run.keys[run.next] = None;
                run.next += 1;
                run.live -= 1;
                self.len -= 1;
            }
            if run.live == 0 {
                self.drop_run(index);
            }
        }
    }

    /// The stored keys, oldest first (the order the storage format records).
    pub(crate) fn iter_oldest_first(
        &self,
    ) -> impl Iterator<Item = (SkippedIndex, &MessageKey)> + '_ {
        self.by_age
            .values()
            .filter_map(move |index| self.runs.get(index).map(|run| (index, run)))
            .flat_map(|(&(dh, first), run)| {
                run.keys
                    .iter()
                    .enumerate()
                    .skip(run.next)
                    .filter_map(move |(i, k)| k.as_ref().map(|k| ((dh, first + i as u32), k)))
            })
    }
}

/// The stored encoding (SPEC.md §7.1): the count `k`, then `k` entries oldest first, each
/// `ratchet key (32) || N (u32) || message key (32)`.
impl SkippedKeys {
    /// Length of the entries [`SkippedKeys::write`] writes after the count.
    pub(crate) fn stored_length(&self) -> usize {
        SKIPPED_ENTRY_LENGTH * self.len
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        // Bounded by MAX_STORED_SKIPPED_CAP, far below u32::MAX.
        out.put_u32(self.len as u32);
        for ((dh, n), key) in self.iter_oldest_first() {
            out.put(&dh);
            out.put_u32(n);
            key.write(out);
        }
    }

    /// Reads the stored keys: at most `cap` of them ([`Error::InvalidEncoding`]), all
    /// present before any is read ([`Error::Truncated`]); when they are the `last` field
    /// of the object, nothing may follow them ([`Error::TrailingData`]). Every ratchet key
    /// passes SPEC.md §2.2 and no `(ratchet key, N)` appears twice
    /// ([`Error::InvalidEncoding`]).
    pub(crate) fn read(r: &mut Reader<'_>, cap: u32, last: bool) -> Result<Self, Error> {
        let count = r.u32()?;
        if count > cap {
            return Err(Error::InvalidEncoding);
        }
        let length = count as usize * SKIPPED_ENTRY_LENGTH;
        if r.remaining() < length {
            return Err(Error::Truncated);
        }
        if last && r.remaining() > length {
            return Err(Error::TrailingData);
        }
        Self::from_entries(r.take(length)?, count as usize)
    }

    /// Rebuilds the runs: from each entry, the following ones with the same ratchet key and
    /// consecutive N form one run, allocated once at its size.
    fn from_entries(entries: &[u8], total: usize) -> Result<Self, Error> {
        let mut skipped = SkippedKeys::default();
        let mut at = 0;
        while at < total {
            let ((dh, first), _) = stored_entry(entries, at)?;
            x25519_public_from_bytes(&dh)?;
            let len = stored_run_length(entries, at, total, (dh, first))?;
            let mut run = Staged::new(dh, first, len);
            for i in at..at + len {
                let ((_, n), mut key) = stored_entry(entries, i)?;
                if skipped.get(&dh, n).is_some() {
                    return Err(Error::InvalidEncoding);
                }
                run.keys.push(Some(MessageKey::read(&mut key)?));
            }
            skipped.insert_run(run);
            at += len;
        }
        Ok(skipped)
    }
}

/// Stored entry `i`: its `(ratchet key, N)` and a reader at its message key.
fn stored_entry(entries: &[u8], i: usize) -> Result<(SkippedIndex, Reader<'_>), Error> {
    let entry = entries
        .get(i * SKIPPED_ENTRY_LENGTH..(i + 1) * SKIPPED_ENTRY_LENGTH)
        .unwrap_or_default();
    let mut r = Reader::new(entry);
    let dh = r.array::<32>()?;
    let n = r.u32()?;
    Ok(((dh, n), r))
}

/// How many entries from `at` continue the run that starts there: same ratchet key,
/// consecutive N.
fn stored_run_length(
    entries: &[u8],
    at: usize,
    total: usize,
    (dh, first): SkippedIndex,
) -> Result<usize, Error> {
    let mut len = 1;
    while at + len < total {
        let ((next_dh, next_n), _) = stored_entry(entries, at + len)?;
        if next_dh != dh || Some(next_n) != first.checked_add(len as u32) {
            break;
        }
        len += 1;
    }
    Ok(len)
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
        let order: Vec<u32> = s.iter_oldest_first().map(|((_, n), _)| n).collect();
        assert_eq!(order, [2, 4]);
        s.insert([2; 32], 0, key(9), 3);
        s.insert([2; 32], 1, key(9), 3);
        let order: Vec<u32> = s.iter_oldest_first().map(|((_, n), _)| n).collect();
        assert_eq!(order, [4, 0, 1]);
        s.evict_to(0);
        assert_eq!(s.len(), 0);
        assert_eq!(s.by_age.len(), 0);
    }

    #[test]
    fn runs_lookup_evict_and_overlap() {
        let mut s = SkippedKeys::default();
        let mut staged = Staged::new([1; 32], 10, 5);
        for i in 0..5u8 {
            staged.keys.push(Some(key(i)));
        }
        s.insert_run(staged);
        assert_eq!(s.len(), 5);
        assert_eq!(s.get(&[1; 32], 12).unwrap().0, [2; 32]);
        assert!(s.get(&[1; 32], 15).is_none());
        assert!(s.get(&[1; 32], 9).is_none());
        assert!(s.get(&[2; 32], 12).is_none());
        s.remove(&[1; 32], 10);
        s.evict_to(3);
        let order: Vec<u32> = s.iter_oldest_first().map(|((_, n), _)| n).collect();
        assert_eq!(order, [12, 13, 14]);
        let mut staged = Staged::new([1; 32], 13, 1);
        staged.keys.push(Some(key(7)));
        s.insert_run(staged);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&[1; 32], 13).unwrap().0, [7; 32]);
    }
}
