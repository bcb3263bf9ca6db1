//! A stored prekey store (SPEC.md §7.5) read field by field, independently of the crate's
//! loader.

use crate::prelude::*;

/// A stored prekey store (type `0x24`, SPEC.md §7.5), read field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreView {
    pub(crate) capacity: u32,
    pub(crate) next_sequence: u64,
    pub(crate) current: u64,
    /// Each accepted signed prekey's id and replay records, in stored order (by id).
    pub(crate) signed: Vec<(u64, Vec<[u8; 32]>)>,
    /// Where the standby slot (its flag) starts.
    pub(crate) standby_at: usize,
    pub(crate) standby: Option<u64>,
    /// `(sequence, id)` of each one-time prekey, in stored order (by id).
    pub(crate) one_time: Vec<(u64, u64)>,
    pub(crate) pq_current: Option<u64>,
    /// `(sequence, id, kind byte)` of each post-quantum prekey, in stored order (by id).
    pub(crate) pq: Vec<(u64, u64, u8)>,
}

impl StoreView {
    /// The replay records of an accepted signed prekey.
    pub(crate) fn records(&self, id: u64) -> Option<&[[u8; 32]]> {
        self.signed
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| &r[..])
    }

    /// One-time prekey ids, oldest (lowest sequence number) first.
    pub(crate) fn one_time_by_age(&self) -> Vec<u64> {
        let mut aged = self.one_time.clone();
        aged.sort_unstable();
        aged.into_iter().map(|(_, id)| id).collect()
    }
}

/// Reads the encoding of a store that loaded (or that a store wrote): the layout of
/// SPEC.md §7.5 to the last byte, and every rule the loader enforces (ids never 0 and
/// strictly increasing, records strictly increasing, the current id accepted, the standby
/// not, at most 16 signed prekeys counting it, sequence numbers distinct and below the
/// next one). Panics otherwise: the store wrote, or loaded, an encoding it must refuse.
pub(crate) fn store_view(bytes: &[u8]) -> StoreView {
    struct Cursor<'a>(&'a [u8], usize);
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let out = &self.0[self.1..self.1 + n];
            self.1 += n;
            out
        }
        fn u32(&mut self) -> u32 {
            u32::from_be_bytes(self.take(4).try_into().unwrap())
        }
        fn u64(&mut self) -> u64 {
            u64::from_be_bytes(self.take(8).try_into().unwrap())
        }
        /// A stored key of type `kind` and `len` bytes: its id and its bytes.
        fn key(&mut self, kind: u8, len: usize) -> (u64, &[u8]) {
            let key = self.take(len);
            assert_eq!(key[..2], [STORAGE_VERSION, kind], "a stored key's header");
            (u64::from_be_bytes(key[2..10].try_into().unwrap()), key)
        }
    }
    fn increasing(what: &str, ids: impl Iterator<Item = u64>) {
        let ids: Vec<u64> = ids.collect();
        assert!(ids.iter().all(|id| *id != 0), "{what}: id 0");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{what}: ids not increasing"
        );
    }

    let mut r = Cursor(bytes, 0);
    assert_eq!(r.take(2), [STORAGE_VERSION, 0x24], "a store's header");
    let capacity = r.u32();
    assert!((1..=MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY).contains(&capacity));
    let next_sequence = r.u64();
    let current = r.u64();
    let s = r.u32();
    assert_eq!(r.1, STORE_SIGNED);
    assert!((1..=MAX_SIGNED_PREKEYS as u32).contains(&s));
    let signed: Vec<(u64, Vec<[u8; 32]>)> = (0..s)
        .map(|_| {
            let (id, _) = r.key(0x22, STORED_SPK);
            let count = r.u32();
            assert!(count <= MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY);
            let records: Vec<[u8; 32]> =
                (0..count).map(|_| r.take(32).try_into().unwrap()).collect();
            assert!(records.windows(2).all(|w| w[0] < w[1]), "records");
            (id, records)
        })
        .collect();
    let standby_at = r.1;
    let standby = match r.take(1)[0] {
        0 => {
            assert!(r.take(STORED_SPK).iter().all(|b| *b == 0), "absent standby");
            None
        }
        1 => Some(r.key(0x22, STORED_SPK).0),
        flag => panic!("standby flag {flag}"),
    };
    let t = r.u32();
    let one_time: Vec<(u64, u64)> = (0..t)
        .map(|_| (r.u64(), r.key(0x23, STORED_OPK).0))
        .collect();
    let flag = r.take(1)[0];
    let id = r.u64();
    let pq_current = match flag {
        0 => {
            assert_eq!(id, 0, "absent last-resort id");
            None
        }
        1 => Some(id),
        flag => panic!("last-resort flag {flag}"),
    };
    let q = r.u32();
    let pq: Vec<(u64, u64, u8)> = (0..q)
        .map(|_| {
            let sequence = r.u64();
            let (id, key) = r.key(0x26, STORED_PQ_PREKEY);
            (sequence, id, key[10])
        })
        .collect();
    assert_eq!(r.1, bytes.len(), "bytes after a store's layout");

    increasing("signed", signed.iter().map(|(id, _)| *id));
    increasing("one-time", one_time.iter().map(|(_, id)| *id));
    increasing("post-quantum", pq.iter().map(|(_, id, _)| *id));
    assert!(
        signed.iter().any(|(id, _)| *id == current),
        "current not accepted"
    );
    if let Some(standby) = standby {
        assert!(standby != 0 && signed.iter().all(|(id, _)| *id != standby));
    }
    assert!(signed.len() + usize::from(standby.is_some()) <= MAX_SIGNED_PREKEYS);
    let mut sequences: Vec<u64> = one_time
        .iter()
        .map(|(s, _)| *s)
        .chain(pq.iter().map(|(s, _, _)| *s))
        .collect();
    sequences.sort_unstable();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "duplicate sequence"
    );
    assert!(
        sequences.iter().all(|s| *s < next_sequence),
        "sequence too large"
    );
    if let Some(id) = pq_current {
        assert!(pq.iter().any(|(_, i, kind)| *i == id && *kind == 0x02));
    }
    StoreView {
        capacity,
        next_sequence,
        current,
        signed,
        standby_at,
        standby,
        one_time,
        pq_current,
        pq,
    }
}

/// A store's encoding without its standby (flag 0, zeros): the state after a switch.
pub(crate) fn without_standby(bytes: &[u8]) -> Vec<u8> {
    let at = store_view(bytes).standby_at;
    let mut out = bytes.to_vec();
    out[at..at + 1 + STORED_SPK].fill(0);
    out
}
