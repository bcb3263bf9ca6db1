//! A stored local device (SPEC.md §7.5, type `0x2A`) read field by field, independently of
//! the crate's loader.

use crate::prelude::*;

/// An accepted signed prekey of a stored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedView {
    pub(crate) id: SignedPreKeyId,
    /// When it was generated (app time).
    pub(crate) created: u64,
    /// When it stopped being current: absent for the current one, and for one that a switch
    /// inside `accept` (which has no clock) replaced, until the next `maintain`.
    pub(crate) superseded: Option<u64>,
    /// Its replay records, increasing.
    pub(crate) records: Vec<[u8; 32]>,
}

/// A one-time prekey of a stored device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OneTimeView {
    pub(crate) sequence: u64,
    pub(crate) published: bool,
    pub(crate) id: OneTimePreKeyId,
}

/// A post-quantum prekey of a stored device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PqView {
    pub(crate) sequence: u64,
    pub(crate) published: bool,
    pub(crate) id: PqPreKeyId,
    /// The stored kind byte: `0x01` one-time, `0x02` last-resort.
    pub(crate) kind: u8,
    /// A last-resort key's times (0 and absent for a one-time key).
    pub(crate) created: u64,
    pub(crate) superseded: Option<u64>,
}

/// The kind byte of a one-time and of a last-resort post-quantum prekey.
pub(crate) const PQ_ONE_TIME: u8 = 0x01;
pub(crate) const PQ_LAST_RESORT: u8 = 0x02;

/// A stored local device (type `0x2A`, SPEC.md §7.5), read field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreView {
    /// The stored identity key pair (`version | 0x21 | seed`).
    pub(crate) identity: Vec<u8>,
    pub(crate) capacity: u32,
    pub(crate) one_time_cap: u32,
    pub(crate) next_sequence: u64,
    pub(crate) current: SignedPreKeyId,
    /// Each accepted signed prekey, in stored order (by id).
    pub(crate) signed: Vec<SignedView>,
    /// Where the standby slot (its flag) starts.
    pub(crate) standby_at: usize,
    pub(crate) standby: Option<SignedPreKeyId>,
    pub(crate) standby_created: Option<u64>,
    /// Each one-time prekey, in stored order (by id).
    pub(crate) one_time: Vec<OneTimeView>,
    pub(crate) pq_current: Option<PqPreKeyId>,
    /// Each post-quantum prekey, in stored order (by id).
    pub(crate) pq: Vec<PqView>,
}

impl StoreView {
    /// An accepted signed prekey.
    pub(crate) fn signed(&self, id: SignedPreKeyId) -> Option<&SignedView> {
        self.signed.iter().find(|e| e.id == id)
    }

    /// The replay records of an accepted signed prekey.
    pub(crate) fn records(&self, id: SignedPreKeyId) -> Option<&[[u8; 32]]> {
        self.signed(id).map(|e| &e.records[..])
    }

    /// The accepted signed prekey ids, in stored order.
    pub(crate) fn signed_ids(&self) -> Vec<SignedPreKeyId> {
        self.signed.iter().map(|e| e.id).collect()
    }

    /// The current signed prekey's entry.
    pub(crate) fn current_entry(&self) -> &SignedView {
        self.signed(self.current)
            .expect("the current signed prekey is accepted")
    }

    /// One-time prekey ids, oldest (lowest sequence number) first.
    pub(crate) fn one_time_by_age(&self) -> Vec<OneTimePreKeyId> {
        let mut aged = self.one_time.clone();
        aged.sort_unstable_by_key(|k| k.sequence);
        aged.into_iter().map(|k| k.id).collect()
    }

    /// One-time post-quantum prekey ids, oldest first.
    pub(crate) fn pq_one_time_by_age(&self) -> Vec<PqPreKeyId> {
        let mut aged: Vec<PqView> = self
            .pq
            .iter()
            .filter(|k| k.kind == PQ_ONE_TIME)
            .copied()
            .collect();
        aged.sort_unstable_by_key(|k| k.sequence);
        aged.into_iter().map(|k| k.id).collect()
    }

    /// The post-quantum prekeys of one kind.
    pub(crate) fn pq_of(&self, kind: u8) -> impl Iterator<Item = &PqView> + '_ {
        self.pq.iter().filter(move |k| k.kind == kind)
    }

    pub(crate) fn pq(&self, id: PqPreKeyId) -> Option<&PqView> {
        self.pq.iter().find(|k| k.id == id)
    }

    /// How many signed prekeys the device holds, the standby included.
    pub(crate) fn signed_count(&self) -> usize {
        self.signed.len() + usize::from(self.standby.is_some())
    }

    /// The latest time stored anywhere (0 for none): from it on, no stored time lies in the
    /// future.
    pub(crate) fn latest_time(&self) -> u64 {
        let signed = self
            .signed
            .iter()
            .flat_map(|e| [Some(e.created), e.superseded]);
        let pq = self.pq.iter().flat_map(|k| [Some(k.created), k.superseded]);
        signed
            .chain(pq)
            .chain([self.standby_created])
            .flatten()
            .max()
            .unwrap_or(0)
    }
}

/// Reads the encoding of a device that loaded (or that a device wrote): the layout of
/// SPEC.md §7.5 to the last byte, and every rule the loader enforces (ids never 0 and
/// strictly increasing, records strictly increasing, the current id accepted and without a
/// replacement time, the standby not accepted, at most 16 signed prekeys counting it,
/// counts within their maxima, sequence numbers distinct and below the next one, one-time
/// post-quantum prekeys without times, the current last-resort one held and the only one
/// without a replacement time, absent fields all zero). Panics otherwise: the device
/// wrote, or loaded, an encoding it must refuse.
///
/// One rule is the design's (issue 15), not the loader's: an earlier signed prekey may lack
/// its replacement time, since a switch to the standby inside `accept` has no clock and the
/// next `maintain` stamps it.
pub(crate) fn store_view(bytes: &[u8]) -> StoreView {
    struct Cursor<'a>(&'a [u8], usize);
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let out = &self.0[self.1..self.1 + n];
            self.1 += n;
            out
        }
        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }
        fn flag(&mut self, what: &str) -> bool {
            match self.u8() {
                0 => false,
                1 => true,
                other => panic!("{what}: flag {other}"),
            }
        }
        fn u32(&mut self) -> u32 {
            u32::from_be_bytes(self.take(4).try_into().unwrap())
        }
        fn u64(&mut self) -> u64 {
            u64::from_be_bytes(self.take(8).try_into().unwrap())
        }
        /// An optional time: flag, then a u64 that is 0 when absent.
        fn time(&mut self, what: &str) -> Option<u64> {
            let at = self.1;
            let present = self.flag(what);
            let t = self.u64();
            assert_eq!(self.1 - at, OPTIONAL_TIME);
            assert!(present || t == 0, "{what}: an absent time is not zero");
            present.then_some(t)
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
    assert_eq!(
        r.take(2),
        [STORAGE_VERSION, TYPE_LOCAL_DEVICE],
        "a device's header"
    );
    let identity = r.take(STORED_IDENTITY).to_vec();
    assert_eq!(
        identity[..2],
        [STORAGE_VERSION, 0x21],
        "the identity's header"
    );
    let capacity = r.u32();
    assert!((1..=MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY).contains(&capacity));
    let one_time_cap = r.u32();
    assert!((1..=MAX_ONE_TIME_PREKEYS as u32).contains(&one_time_cap));
    let next_sequence = r.u64();
    let current = SignedPreKeyId::from_u64(r.u64());
    let s = r.u32();
    assert_eq!(r.1, STORE_SIGNED);
    assert!((1..=MAX_SIGNED_PREKEYS as u32).contains(&s));
    let signed: Vec<SignedView> = (0..s)
        .map(|_| {
            let id = SignedPreKeyId::from_u64(r.key(0x22, STORED_SPK).0);
            let created = r.u64();
            let superseded = r.time("a signed prekey's replacement");
            let count = r.u32();
            assert!(count <= MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY);
            let records: Vec<[u8; 32]> =
                (0..count).map(|_| r.take(32).try_into().unwrap()).collect();
            assert!(records.windows(2).all(|w| w[0] < w[1]), "records");
            SignedView {
                id,
                created,
                superseded,
                records,
            }
        })
        .collect();
    let standby_at = r.1;
    let (standby, standby_created) = if r.flag("standby") {
        let id = SignedPreKeyId::from_u64(r.key(0x22, STORED_SPK).0);
        (Some(id), Some(r.u64()))
    } else {
        assert!(
            r.take(STANDBY_SLOT - 1).iter().all(|b| *b == 0),
            "absent standby"
        );
        (None, None)
    };
    let t = r.u32();
    assert!(t as usize <= MAX_ONE_TIME_PREKEYS);
    let one_time: Vec<OneTimeView> = (0..t)
        .map(|_| OneTimeView {
            sequence: r.u64(),
            published: r.flag("published"),
            id: OneTimePreKeyId::from_u64(r.key(0x23, STORED_OPK).0),
        })
        .collect();
    let pq_current = r
        .time("the current last-resort id")
        .map(PqPreKeyId::from_u64);
    let q = r.u32();
    assert!(q as usize <= MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS);
    let pq: Vec<PqView> = (0..q)
        .map(|_| {
            let sequence = r.u64();
            let published = r.flag("published");
            let (id, key) = r.key(0x26, STORED_PQ_PREKEY);
            let kind = key[10];
            let created = r.u64();
            let superseded = r.time("a last-resort prekey's replacement");
            PqView {
                sequence,
                published,
                id: PqPreKeyId::from_u64(id),
                kind,
                created,
                superseded,
            }
        })
        .collect();
    assert_eq!(r.1, bytes.len(), "bytes after a device's layout");

    increasing("signed", signed.iter().map(|e| e.id.to_u64()));
    increasing("one-time", one_time.iter().map(|k| k.id.to_u64()));
    increasing("post-quantum", pq.iter().map(|k| k.id.to_u64()));
    for e in &signed {
        if e.id == current {
            assert_eq!(e.superseded, None, "the current signed prekey was replaced");
        }
    }
    assert!(
        signed.iter().any(|e| e.id == current),
        "current not accepted"
    );
    if let Some(standby) = standby {
        assert!(standby.to_u64() != 0 && signed.iter().all(|e| e.id != standby));
    }
    assert!(signed.len() + usize::from(standby.is_some()) <= MAX_SIGNED_PREKEYS);
    let mut sequences: Vec<u64> = one_time
        .iter()
        .map(|k| k.sequence)
        .chain(pq.iter().map(|k| k.sequence))
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
    for k in &pq {
        match k.kind {
            PQ_ONE_TIME => assert!(
                k.created == 0 && k.superseded.is_none(),
                "a one-time post-quantum prekey with times"
            ),
            PQ_LAST_RESORT => assert_eq!(
                pq_current == Some(k.id),
                k.superseded.is_none(),
                "a last-resort prekey's replacement time disagrees with the current one"
            ),
            kind => panic!("post-quantum kind {kind:#04x}"),
        }
    }
    assert!(pq.iter().filter(|k| k.kind == PQ_ONE_TIME).count() <= MAX_PQ_ONE_TIME_PREKEYS);
    assert!(pq.iter().filter(|k| k.kind == PQ_LAST_RESORT).count() <= MAX_PQ_LAST_RESORT_PREKEYS);
    if let Some(id) = pq_current {
        assert!(pq.iter().any(|k| k.id == id && k.kind == PQ_LAST_RESORT));
    }
    #[cfg(not(feature = "pqxdh"))]
    assert!(
        pq_current.is_none() && pq.is_empty(),
        "post-quantum prekeys in a build without PQXDH"
    );
    StoreView {
        identity,
        capacity,
        one_time_cap,
        next_sequence,
        current,
        signed,
        standby_at,
        standby,
        standby_created,
        one_time,
        pq_current,
        pq,
    }
}

/// A device's encoding without its standby (flag 0, zeros): the state after a switch.
pub(crate) fn without_standby(bytes: &[u8]) -> Vec<u8> {
    let at = store_view(bytes).standby_at;
    let mut out = bytes.to_vec();
    out[at..at + STANDBY_SLOT].fill(0);
    out
}
