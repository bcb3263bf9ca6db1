//! The `publish` target: what a device uploads and a server stores (SPEC.md §5.9-§5.12),
//! and a server that follows the rules of SPEC.md §8.5.
//!
//! Every input is used twice:
//!
//! 1. as the encoding of each publishing type (a signed prekey's public part `0x13`, a
//!    one-time prekey's `0x14`, a post-quantum prekey's `0x15`, an upload set `0x12`):
//!    nothing panics, what parses re-encodes to exactly the input and parses again to the
//!    same value, its accessors agree with the layout, an upload set's parts are the parts
//!    its slices parse to and every signature in it verifies under its identity key, and
//!    failures are the documented errors (the framing ones exactly);
//! 2. as a list of operations ([`PublishOp`], decoded with `arbitrary`) against a model
//!    server ([`Server`], written from SPEC.md §8.5, not from the crate): devices (Bob, and
//!    Carol, another identity) build upload sets from a fixed pool of keys, some of which
//!    share ids or are signed by the other identity, through the crate's constructors
//!    (`UploadSet::new`, `with_post_quantum`), optionally damage the bytes, and send them;
//!    bundles are requested; sets are sent again; one-time prekeys are evicted.
//!
//! It asserts: the constructors accept or refuse exactly as SPEC.md §5.12 says, with the
//! documented error; an undamaged set parses back to itself, one under the other identity
//! key is `InvalidSignature`; the server applies a set whole or refuses it whole (a refused
//! set changes nothing), an accepted set is accepted again without change (idempotence),
//! and so is the last accepted set sent again after any bundle requests and evictions; no
//! one-time prekey id of either kind is ever handed out twice, and every id a bundle names
//! (signed, one-time, post-quantum) always names the same key; every bundle handed out
//! verifies with `PreKeyBundle::verify`, re-encodes, and carries the server's current
//! signed prekey, the oldest queued one-time prekeys, and the last-resort post-quantum
//! prekey exactly when no one-time post-quantum prekey is queued; the server's queues never
//! hold a repeated id, an id handed out or dropped, or more than its bound.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use crate::prelude::*;

/// The most operations one input runs: an upload or a bundle request verifies several
/// signatures.
const MAX_PUBLISH_OPS: usize = 24;
/// The number of variants of [`PublishOp`] (for the seeds' encoder).
pub(crate) const PUBLISH_OP_VARIANTS: u64 = 4;
/// The creation times a part may carry (an operation picks one): the server never
/// compares them, but a different one under the same id is a different part.
const CREATED: [u64; 3] = [1_767_225_600, 1_767_225_600 + 86_400, 0];
/// The model server's bound on each queue of one-time prekeys (SPEC.md §8.5 lets a server
/// bound them, dropping the oldest): small, so that inputs reach it.
const ONE_TIME_BOUND: usize = 4;
#[cfg(feature = "pqxdh")]
const PQ_ONE_TIME_BOUND: usize = 3;

/// One operation of the stateful part.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOp {
    /// A device builds an upload set from the pool and sends it to the server.
    Upload {
        /// Carol's identity key instead of Bob's.
        carol: bool,
        /// The signed prekey: pool index (modulo the pool's size).
        signed: u8,
        /// The creation time of the signed and last-resort parts: index into the three
        /// times (modulo 3).
        created: u8,
        /// The one-time prekeys: bit `i` takes pool key `i`.
        one_time: u8,
        /// Rotates both lists of one-time prekeys by this much (the listed order is the
        /// order the server hands them out).
        rotate: u8,
        /// The last-resort post-quantum prekey: 0 none, else pool index + 1 (modulo).
        last_resort: u8,
        /// The one-time post-quantum prekeys: bit `i` takes pool key `i`.
        pq_one_time: u8,
        /// A bit of the encoded set flipped before it is sent (modulo its length in bits).
        flip: Option<u16>,
        /// The set's identity key replaced by the other device's before it is sent.
        swap_identity: bool,
    },
    /// The last set the server accepted, sent again as bytes (its response was lost).
    Resend,
    /// A bundle request.
    Fetch,
    /// The device reports a one-time prekey it evicted (SPEC.md §8.5: the server drops it
    /// and remembers its id).
    Evict {
        /// A post-quantum one-time prekey rather than a classical one.
        pq: bool,
        /// Pool index (modulo the pool's size).
        key: u8,
    },
}

/// Decodes the stateful part's operations from the input.
pub fn publish_ops_from_bytes(data: &[u8]) -> Vec<PublishOp> {
    decode_ops(data, MAX_PUBLISH_OPS)
}

/// Bob's and Carol's identity keys, and the pool of prekeys the devices build sets from,
/// each with the index of the identity that signed it (0 Bob, 1 Carol). Ids collide on
/// purpose: Carol's first signed prekey has the id of Bob's; the last classical one-time
/// prekey has the id of the first with another key; Bob's third last-resort key has the id
/// of his first one-time post-quantum prekey.
pub(crate) struct PublishFixture {
    pub(crate) identities: [IdentityKey; 2],
    pub(crate) signed: Vec<(SignedPreKey, usize)>,
    pub(crate) one_time: Vec<OneTimePreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pub(crate) pq: Vec<(PqPreKey, usize)>,
}

pub(crate) fn publish_fixture() -> &'static PublishFixture {
    static FIXTURE: OnceLock<PublishFixture> = OnceLock::new();
    FIXTURE.get_or_init(make_publish_fixture)
}

fn make_publish_fixture() -> PublishFixture {
    let fx = fixture();
    let mut rng = rng(0x5eed_0010);
    let owners = [&fx.bob, &fx.carol];
    let signed = [(11, 0), (12, 0), (13, 0), (11, 1)]
        .into_iter()
        .map(|(id, owner)| {
            let id = SignedPreKeyId::from_u64(id);
            let key = SignedPreKey::generate(owners[owner], id, &mut rng).unwrap();
            (key, owner)
        })
        .collect();
    let one_time = [21, 22, 23, 24, 25, 21]
        .into_iter()
        .map(|id| {
            let key = OneTimePreKey::generate(OneTimePreKeyId::from_u64(id), &mut rng).unwrap();
            OneTimePreKeyPublic::from_key(&key).unwrap()
        })
        .collect();
    #[cfg(feature = "pqxdh")]
    let pq = {
        use PqPreKeyKind::{LastResort, OneTime};
        let keys: Vec<(PqPreKey, usize)> = [
            (31, OneTime, 0),
            (32, OneTime, 0),
            (33, OneTime, 0),
            (41, LastResort, 0),
            (42, LastResort, 0),
            (31, LastResort, 0),
            (34, OneTime, 1),
            (43, LastResort, 1),
        ]
        .into_iter()
        .map(|(id, kind, owner)| {
            let id = PqPreKeyId::from_u64(id);
            let key = PqPreKey::generate(owners[owner], id, kind, &mut rng).unwrap();
            (key, owner)
        })
        .collect();
        // A part of the other kind is a caller's bug, not a part.
        for (key, _) in &keys {
            match key.kind() {
                OneTime => assert_eq!(
                    PqPreKeyPublic::last_resort(key, 0).err(),
                    Some(Error::Internal)
                ),
                LastResort => {
                    assert_eq!(PqPreKeyPublic::one_time(key).err(), Some(Error::Internal))
                }
            }
        }
        keys
    };
    PublishFixture {
        identities: [*fx.bob.public_key(), *fx.carol.public_key()],
        signed,
        one_time,
        #[cfg(feature = "pqxdh")]
        pq,
    }
}

/// The target: the input as each publishing type, then as operations against a server.
pub fn publish(data: &[u8]) {
    check_signed_part(data);
    check_one_time_part(data);
    #[cfg(feature = "pqxdh")]
    check_pq_part(data);
    check_upload_set(data);
    let mut run = Run::new();
    for op in publish_ops_from_bytes(data) {
        run.apply(op);
        run.server.check_invariants();
    }
}

// ---------------------------------------------------------------------------------------
// Part 1: the encodings.
// ---------------------------------------------------------------------------------------

/// The big-endian `u64` at `range`.
fn u64_at(data: &[u8], range: core::ops::Range<usize>) -> u64 {
    u64::from_be_bytes(data[range].try_into().unwrap())
}

/// The big-endian `u32` at `at`, as a count.
fn u32_at(data: &[u8], at: usize) -> usize {
    u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize
}

/// What every strict parser of an object of type `kind` must say about bytes it refuses
/// by their framing: `TooLarge` for a set above `MAX_MESSAGE_SIZE`, `Truncated` when the
/// version or type is missing, `UnsupportedVersion`, `UnexpectedType`, and for a part
/// `InvalidEncoding` for id 0; otherwise a documented error (`signed`: an error of a
/// signature check is one of them).
fn check_framing<T>(data: &[u8], kind: u8, result: &Result<T, Error>, signed: bool) {
    let expected = match data {
        _ if data.len() > MAX_MESSAGE_SIZE && kind == TYPE_UPLOAD_SET => Some(Error::TooLarge),
        [] | [BUNDLE_VERSION] => Some(Error::Truncated),
        [v, ..] if *v != BUNDLE_VERSION => Some(Error::UnsupportedVersion(*v)),
        [_, t, ..] if *t != kind => Some(Error::UnexpectedType(*t)),
        // A part's id follows its type, and 0 names no key (SPEC.md §5.9-§5.11).
        _ if kind != TYPE_UPLOAD_SET && data.len() >= 10 && u64_at(data, 2..10) == 0 => {
            Some(Error::InvalidEncoding)
        }
        _ => None,
    };
    match (expected, result) {
        (Some(e), r) => assert_eq!(r.as_ref().err(), Some(&e), "type {kind:#04x}"),
        (None, Ok(_)) => {}
        (None, Err(e)) => assert!(
            matches!(
                e,
                Error::Truncated
                    | Error::TrailingData
                    | Error::InvalidEncoding
                    | Error::InvalidPublicKey
            ) || (signed && *e == Error::InvalidSignature)
                // A part inside a set fails with its own framing errors (SPEC.md §5.12).
                || (kind == TYPE_UPLOAD_SET
                    && matches!(e, Error::UnsupportedVersion(_) | Error::UnexpectedType(_))),
            "undocumented error {e:?} for type {kind:#04x}"
        ),
    }
}

/// A fixed-length part: it parses only at its length, and bytes after a part that parses
/// are `TrailingData`.
fn check_fixed_length<T>(
    data: &[u8],
    len: usize,
    parse: impl Fn(&[u8]) -> Result<T, Error>,
    result: &Result<T, Error>,
) {
    if result.is_ok() {
        assert_eq!(data.len(), len, "a part of another length parsed");
    }
    if data.len() > len && parse(&data[..len]).is_ok() {
        assert_eq!(result.as_ref().err(), Some(&Error::TrailingData));
    }
}

/// A signed prekey's public part (SPEC.md §5.9).
fn check_signed_part(data: &[u8]) {
    let result = SignedPreKeyPublic::from_bytes(data);
    check_framing(data, TYPE_SIGNED_PREKEY_PUBLIC, &result, false);
    check_fixed_length(
        data,
        SIGNED_PREKEY_PUBLIC,
        SignedPreKeyPublic::from_bytes,
        &result,
    );
    if let Ok(part) = result {
        check_signed_layout(&part, data);
    }
}

/// A parsed signed prekey part against its bytes.
fn check_signed_layout(part: &SignedPreKeyPublic, data: &[u8]) {
    assert_eq!(part.to_bytes(), data, "signed part re-encodes differently");
    assert_eq!(SignedPreKeyPublic::from_bytes(data).as_ref(), Ok(part));
    assert_eq!(data[..2], [BUNDLE_VERSION, TYPE_SIGNED_PREKEY_PUBLIC]);
    assert_eq!(part.id().to_u64(), u64_at(data, 2..10));
    assert_ne!(part.id().to_u64(), 0, "id 0 parsed");
    assert_eq!(part.public_key().as_bytes(), &data[10..42]);
    assert_eq!(part.signature()[..], data[42..106]);
    assert_eq!(part.created(), u64_at(data, 106..114));
}

/// A one-time prekey's public part (SPEC.md §5.10).
fn check_one_time_part(data: &[u8]) {
    let result = OneTimePreKeyPublic::from_bytes(data);
    check_framing(data, TYPE_ONE_TIME_PREKEY_PUBLIC, &result, false);
    check_fixed_length(
        data,
        ONE_TIME_PREKEY_PUBLIC,
        OneTimePreKeyPublic::from_bytes,
        &result,
    );
    if let Ok(part) = result {
        check_one_time_layout(&part, data);
    }
}

fn check_one_time_layout(part: &OneTimePreKeyPublic, data: &[u8]) {
    assert_eq!(
        part.to_bytes(),
        data,
        "one-time part re-encodes differently"
    );
    assert_eq!(OneTimePreKeyPublic::from_bytes(data).as_ref(), Ok(part));
    assert_eq!(data[..2], [BUNDLE_VERSION, TYPE_ONE_TIME_PREKEY_PUBLIC]);
    assert_eq!(part.id().to_u64(), u64_at(data, 2..10));
    assert_ne!(part.id().to_u64(), 0, "id 0 parsed");
    assert_eq!(part.public_key().as_bytes(), &data[10..42]);
}

/// A post-quantum prekey's public part (SPEC.md §5.11).
#[cfg(feature = "pqxdh")]
fn check_pq_part(data: &[u8]) {
    let result = PqPreKeyPublic::from_bytes(data);
    check_framing(data, TYPE_PQ_PREKEY_PUBLIC, &result, false);
    check_fixed_length(data, PQ_PREKEY_PUBLIC, PqPreKeyPublic::from_bytes, &result);
    // A kind other than one-time (0x01) and last-resort (0x02) is not an encoding.
    if data.len() == PQ_PREKEY_PUBLIC
        && data[..2] == [BUNDLE_VERSION, TYPE_PQ_PREKEY_PUBLIC]
        && !matches!(data[PQ_PART_KIND], 1 | 2)
    {
        assert_eq!(result.as_ref().err(), Some(&Error::InvalidEncoding));
    }
    if let Ok(part) = result {
        check_pq_layout(&part, data);
    }
}

#[cfg(feature = "pqxdh")]
fn check_pq_layout(part: &PqPreKeyPublic, data: &[u8]) {
    assert_eq!(
        part.to_bytes(),
        data,
        "post-quantum part re-encodes differently"
    );
    assert_eq!(PqPreKeyPublic::from_bytes(data).as_ref(), Ok(part));
    assert_eq!(data[..2], [BUNDLE_VERSION, TYPE_PQ_PREKEY_PUBLIC]);
    assert_eq!(part.id().to_u64(), u64_at(data, 2..10));
    assert_ne!(part.id().to_u64(), 0, "id 0 parsed");
    assert_eq!(part.public_key()[..], data[PQ_PART_KEY]);
    assert_eq!(part.signature()[..], data[PQ_PART_SIGNATURE]);
    let created = u64_at(data, PQ_PART_CREATED);
    match (part.kind(), data[PQ_PART_KIND]) {
        (PqPreKeyKind::OneTime, 0x01) => {
            assert_eq!(created, 0, "a one-time key with a time parsed");
            assert_eq!(part.created(), None);
        }
        (PqPreKeyKind::LastResort, 0x02) => assert_eq!(part.created(), Some(created)),
        (kind, byte) => panic!("kind byte {byte:#04x} parsed as {kind:?}"),
    }
}

/// An upload set (SPEC.md §5.12).
fn check_upload_set(data: &[u8]) {
    let result = UploadSet::from_bytes(data);
    check_framing(data, TYPE_UPLOAD_SET, &result, true);
    if let Ok(set) = result {
        check_set_layout(&set, data);
    }
}

/// A parsed upload set against its bytes: length, identity, each part where the layout
/// puts it (and equal to what its slice parses to), the flag and zeros of an absent
/// last-resort key, ids distinct within each kind (post-quantum ones across both kinds),
/// every signature valid under the identity key, and the set the constructors build from
/// its parts is the same value and bytes.
fn check_set_layout(set: &UploadSet, data: &[u8]) {
    assert_eq!(set.to_bytes(), data, "upload set re-encodes differently");
    assert_eq!(data[..2], [BUNDLE_VERSION, TYPE_UPLOAD_SET]);
    assert_eq!(set.identity_key().as_bytes(), &data[SET_IK]);
    let signed = SignedPreKeyPublic::from_bytes(&data[SET_SIGNED]);
    assert_eq!(signed.as_ref(), Ok(set.signed_prekey()));
    check_signed_layout(set.signed_prekey(), &data[SET_SIGNED]);
    #[cfg(feature = "pqxdh")]
    let (last_resort, pq_one_time) = (set.pq_last_resort_prekey(), set.pq_one_time_prekeys());
    #[cfg(not(feature = "pqxdh"))]
    let last_resort: Option<()> = None;
    match last_resort {
        None => {
            assert_eq!(data[SET_LAST_RESORT_FLAG], 0);
            assert!(data[SET_LAST_RESORT].iter().all(|b| *b == 0));
        }
        #[cfg(feature = "pqxdh")]
        Some(key) => {
            assert_eq!(data[SET_LAST_RESORT_FLAG], 1);
            assert_eq!(key.kind(), PqPreKeyKind::LastResort);
            check_pq_layout(key, &data[SET_LAST_RESORT]);
        }
        #[cfg(not(feature = "pqxdh"))]
        Some(()) => unreachable!(),
    }
    let n = u32_at(data, SET_ONE_TIME_COUNT.start);
    assert_eq!(n, set.one_time_prekeys().len());
    let mut at = SET_ONE_TIME_COUNT.end;
    let mut ids = BTreeSet::new();
    for part in set.one_time_prekeys() {
        check_one_time_layout(part, &data[at..at + ONE_TIME_PREKEY_PUBLIC]);
        assert!(
            ids.insert(part.id().to_u64()),
            "a repeated one-time id parsed"
        );
        at += ONE_TIME_PREKEY_PUBLIC;
    }
    let m = u32_at(data, at);
    at += 4;
    #[cfg(not(feature = "pqxdh"))]
    assert_eq!(m, 0, "a build without PQXDH read post-quantum prekeys");
    #[cfg(feature = "pqxdh")]
    {
        assert_eq!(m, pq_one_time.len());
        let mut pq_ids: BTreeSet<u64> = last_resort.map(|k| k.id().to_u64()).into_iter().collect();
        for part in pq_one_time {
            assert_eq!(part.kind(), PqPreKeyKind::OneTime);
            check_pq_layout(part, &data[at..at + PQ_PREKEY_PUBLIC]);
            assert!(pq_ids.insert(part.id().to_u64()), "a repeated PQ id parsed");
            at += PQ_PREKEY_PUBLIC;
        }
    }
    assert_eq!(at, data.len());
    assert_eq!(
        data.len(),
        UPLOAD_SET_FIXED + ONE_TIME_PREKEY_PUBLIC * n + PQ_PREKEY_PUBLIC * m
    );
    // Every signature verifies under the set's identity key: a bundle assembled from the
    // parts verifies.
    let bundle = PreKeyBundle::assemble(
        set.identity_key(),
        set.signed_prekey(),
        set.one_time_prekeys().first(),
    )
    .unwrap_or_else(|e| panic!("a parsed set's signed prekey does not assemble: {e:?}"));
    #[cfg(feature = "pqxdh")]
    for part in last_resort.into_iter().chain(pq_one_time) {
        let b = bundle
            .clone()
            .with_post_quantum(part)
            .unwrap_or_else(|e| panic!("a parsed set's post-quantum prekey: {e:?}"));
        assert_eq!(b.verify(), Ok(()));
    }
    assert_eq!(bundle.verify(), Ok(()));
    // One value, one encoding: the constructors build the same set from its parts.
    let built = UploadSet::new(
        set.identity_key(),
        set.signed_prekey().clone(),
        set.one_time_prekeys().to_vec(),
    );
    #[cfg(feature = "pqxdh")]
    let built = built.and_then(|s| s.with_post_quantum(last_resort.cloned(), pq_one_time.to_vec()));
    assert_eq!(built.as_ref(), Ok(set));
}

// ---------------------------------------------------------------------------------------
// Part 2: a server following SPEC.md §8.5.
// ---------------------------------------------------------------------------------------

/// Why the server refused a set (SPEC.md §8.5, "Accepting an upload set", rules 1-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Rule 1: another identity key.
    Identity,
    /// Rule 2: a changed current signed prekey, or one the current one replaced.
    SignedPreKey,
    /// Rule 3: a changed current last-resort key, one it replaced, or a one-time id.
    #[cfg(feature = "pqxdh")]
    LastResort,
    /// Rule 4: a held one-time id with other bytes, or (post-quantum) a last-resort id.
    OneTimeId,
}

/// One device's state at a server that follows SPEC.md §8.5 ("State per device").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Server {
    identity: Option<IdentityKey>,
    signed: Option<SignedPreKeyPublic>,
    replaced_signed: BTreeSet<u64>,
    /// Queued one-time prekeys, oldest first, and the ids handed out or dropped.
    one_time: VecDeque<OneTimePreKeyPublic>,
    gone: BTreeSet<u64>,
    #[cfg(feature = "pqxdh")]
    last_resort: Option<PqPreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    replaced_last_resort: BTreeSet<u64>,
    #[cfg(feature = "pqxdh")]
    pq_one_time: VecDeque<PqPreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pq_gone: BTreeSet<u64>,
}

/// What a bundle request handed out: the bundle, and the parts it was assembled from.
pub(crate) struct HandedOut {
    bundle: PreKeyBundle,
    one_time: Option<OneTimePreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pq: Option<PqPreKeyPublic>,
}

impl Server {
    /// Compares a parsed set with the state (rules 1-4) and applies all of it, or refuses
    /// all of it and changes nothing.
    pub(crate) fn offer(&mut self, set: &UploadSet) -> Result<(), Refused> {
        if self.identity.is_some_and(|ik| ik != *set.identity_key()) {
            return Err(Refused::Identity);
        }
        let signed = set.signed_prekey();
        let same_id_other_bytes = self
            .signed
            .as_ref()
            .is_some_and(|c| c.id() == signed.id() && c != signed);
        if same_id_other_bytes || self.replaced_signed.contains(&signed.id().to_u64()) {
            return Err(Refused::SignedPreKey);
        }
        #[cfg(feature = "pqxdh")]
        self.check_pq(set)?;
        let held_otherwise = set
            .one_time_prekeys()
            .iter()
            .any(|k| self.one_time.iter().any(|h| h.id() == k.id() && h != k));
        if held_otherwise {
            return Err(Refused::OneTimeId);
        }

        // Apply.
        self.identity = Some(*set.identity_key());
        if let Some(old) = self.signed.replace(signed.clone()) {
            if old.id() != signed.id() {
                self.replaced_signed.insert(old.id().to_u64());
            }
        }
        for key in set.one_time_prekeys() {
            let id = key.id().to_u64();
            if !self.one_time.iter().any(|h| h.id() == key.id()) && !self.gone.contains(&id) {
                self.one_time.push_back(*key);
            }
        }
        while self.one_time.len() > ONE_TIME_BOUND {
            let dropped = self.one_time.pop_front().unwrap();
            self.gone.insert(dropped.id().to_u64());
        }
        #[cfg(feature = "pqxdh")]
        self.apply_pq(set);
        Ok(())
    }

    /// Rules 3 and 4 for post-quantum prekeys, which share one id space.
    #[cfg(feature = "pqxdh")]
    fn check_pq(&self, set: &UploadSet) -> Result<(), Refused> {
        let current = self.last_resort.as_ref();
        if let Some(key) = set.pq_last_resort_prekey() {
            let id = key.id().to_u64();
            if current.is_some_and(|c| c.id() == key.id() && c != key)
                || self.replaced_last_resort.contains(&id)
                || self.pq_one_time.iter().any(|h| h.id() == key.id())
                || self.pq_gone.contains(&id)
            {
                return Err(Refused::LastResort);
            }
        }
        for key in set.pq_one_time_prekeys() {
            let id = key.id().to_u64();
            let held_otherwise = self
                .pq_one_time
                .iter()
                .any(|h| h.id() == key.id() && h != key);
            let last_resort_id = current.is_some_and(|c| c.id() == key.id())
                || self.replaced_last_resort.contains(&id);
            if held_otherwise || last_resort_id {
                return Err(Refused::OneTimeId);
            }
        }
        Ok(())
    }

    #[cfg(feature = "pqxdh")]
    fn apply_pq(&mut self, set: &UploadSet) {
        if let Some(key) = set.pq_last_resort_prekey() {
            if let Some(old) = self.last_resort.replace(key.clone()) {
                if old.id() != key.id() {
                    self.replaced_last_resort.insert(old.id().to_u64());
                }
            }
        }
        for key in set.pq_one_time_prekeys() {
            let id = key.id().to_u64();
            if !self.pq_one_time.iter().any(|h| h.id() == key.id()) && !self.pq_gone.contains(&id) {
                self.pq_one_time.push_back(key.clone());
            }
        }
        while self.pq_one_time.len() > PQ_ONE_TIME_BOUND {
            let dropped = self.pq_one_time.pop_front().unwrap();
            self.pq_gone.insert(dropped.id().to_u64());
        }
    }

    /// A bundle request ("Handing out a bundle"): nothing without a signed prekey;
    /// otherwise the oldest queued one-time prekey of each kind (removed, its id
    /// remembered), or the last-resort post-quantum prekey, assembled (which verifies
    /// every signature again). `Some(Err(..))` would be stored data that does not verify.
    pub(crate) fn bundle(&mut self) -> Option<Result<HandedOut, Error>> {
        let identity = self.identity?;
        let signed = self.signed.clone()?;
        let one_time = self.one_time.pop_front();
        if let Some(key) = &one_time {
            self.gone.insert(key.id().to_u64());
        }
        let bundle = match PreKeyBundle::assemble(&identity, &signed, one_time.as_ref()) {
            Ok(bundle) => bundle,
            Err(e) => return Some(Err(e)),
        };
        #[cfg(feature = "pqxdh")]
        let (bundle, pq) = {
            let pq = match self.pq_one_time.pop_front() {
                Some(key) => {
                    self.pq_gone.insert(key.id().to_u64());
                    Some(key)
                }
                None => self.last_resort.clone(),
            };
            match &pq {
                Some(key) => match bundle.with_post_quantum(key) {
                    Ok(bundle) => (bundle, pq),
                    Err(e) => return Some(Err(e)),
                },
                None => (bundle, None),
            }
        };
        Some(Ok(HandedOut {
            bundle,
            one_time,
            #[cfg(feature = "pqxdh")]
            pq,
        }))
    }

    /// The device evicted the one-time prekey `id` of one kind: a held key is dropped and
    /// its id remembered, as a key dropped for the bound ("with the same effect"). An id
    /// the server does not hold changes nothing (it may be a last-resort key's: the kinds
    /// share one id space, and remembering it would refuse that key's next upload).
    pub(crate) fn evict(&mut self, pq: bool, id: u64) {
        if pq {
            #[cfg(feature = "pqxdh")]
            if let Some(at) = self.pq_one_time.iter().position(|k| k.id().to_u64() == id) {
                self.pq_one_time.remove(at);
                self.pq_gone.insert(id);
            }
        } else if let Some(at) = self.one_time.iter().position(|k| k.id().to_u64() == id) {
            self.one_time.remove(at);
            self.gone.insert(id);
        }
    }

    /// What holds after every operation: no queued id repeats, is handed out or dropped,
    /// or (post-quantum) is a last-resort id; the queues are within their bounds; the
    /// current keys are not among those they replaced.
    pub(crate) fn check_invariants(&self) {
        let ids: Vec<u64> = self.one_time.iter().map(|k| k.id().to_u64()).collect();
        let distinct: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "a one-time id queued twice");
        assert!(distinct.is_disjoint(&self.gone), "a handed-out id queued");
        assert!(ids.len() <= ONE_TIME_BOUND);
        if let Some(signed) = &self.signed {
            assert!(!self.replaced_signed.contains(&signed.id().to_u64()));
            assert!(self.identity.is_some());
        }
        #[cfg(feature = "pqxdh")]
        {
            let ids: Vec<u64> = self.pq_one_time.iter().map(|k| k.id().to_u64()).collect();
            let distinct: BTreeSet<u64> = ids.iter().copied().collect();
            assert_eq!(distinct.len(), ids.len(), "a PQ one-time id queued twice");
            assert!(
                distinct.is_disjoint(&self.pq_gone),
                "a handed-out PQ id queued"
            );
            assert!(distinct.is_disjoint(&self.replaced_last_resort));
            assert!(ids.len() <= PQ_ONE_TIME_BOUND);
            assert!(self
                .pq_one_time
                .iter()
                .all(|k| k.kind() == PqPreKeyKind::OneTime));
            if let Some(key) = &self.last_resort {
                let id = key.id().to_u64();
                assert_eq!(key.kind(), PqPreKeyKind::LastResort);
                assert!(!distinct.contains(&id) && !self.pq_gone.contains(&id));
                assert!(!self.replaced_last_resort.contains(&id));
            }
        }
    }
}

/// The expected result of a constructor: `InvalidEncoding` for a structural problem,
/// else `InvalidSignature` for a key another identity signed, else success.
fn expected(structural: bool, foreign_signer: bool) -> Result<(), Error> {
    if structural {
        Err(Error::InvalidEncoding)
    } else if foreign_signer {
        Err(Error::InvalidSignature)
    } else {
        Ok(())
    }
}

/// Whether `ids` repeats an id.
fn repeats(ids: impl IntoIterator<Item = u64>) -> bool {
    let mut seen = BTreeSet::new();
    !ids.into_iter().all(|id| seen.insert(id))
}

/// The indices of the pool keys (of `len`) whose bit is set in `mask`, rotated left by
/// `rotate`.
fn pick(len: usize, mask: u8, rotate: u8) -> Vec<usize> {
    let mut picked: Vec<usize> = (0..len.min(8)).filter(|i| mask >> i & 1 == 1).collect();
    if !picked.is_empty() {
        let by = usize::from(rotate) % picked.len();
        picked.rotate_left(by);
    }
    picked
}

/// The server and what the devices and the harness have seen.
struct Run {
    fx: &'static PublishFixture,
    server: Server,
    /// The last set the server accepted, as sent, and as parsed.
    last_accepted: Option<(Vec<u8>, UploadSet)>,
    /// Every one-time prekey id handed out, of each kind.
    handed: BTreeSet<u64>,
    #[cfg(feature = "pqxdh")]
    pq_handed: BTreeSet<u64>,
    /// The key each id named in a bundle handed out, by kind: an id never names two keys.
    signed_keys: BTreeMap<u64, [u8; 32]>,
    #[cfg(feature = "pqxdh")]
    pq_keys: BTreeMap<u64, Vec<u8>>,
}

impl Run {
    fn new() -> Run {
        Run {
            fx: publish_fixture(),
            server: Server::default(),
            last_accepted: None,
            handed: BTreeSet::new(),
            #[cfg(feature = "pqxdh")]
            pq_handed: BTreeSet::new(),
            signed_keys: BTreeMap::new(),
            #[cfg(feature = "pqxdh")]
            pq_keys: BTreeMap::new(),
        }
    }

    fn apply(&mut self, op: PublishOp) {
        match op {
            PublishOp::Upload {
                carol,
                signed,
                created,
                one_time,
                rotate,
                last_resort,
                pq_one_time,
                flip,
                swap_identity,
            } => {
                let who = usize::from(carol);
                let created = CREATED[usize::from(created) % CREATED.len()];
                let Some(set) = self.build(
                    who,
                    usize::from(signed),
                    created,
                    (one_time, pq_one_time, rotate),
                    last_resort,
                ) else {
                    return;
                };
                let mut bytes = set.to_bytes();
                if swap_identity {
                    bytes[SET_IK].copy_from_slice(self.fx.identities[1 - who].as_bytes());
                }
                if let Some(bit) = flip {
                    let bit = usize::from(bit) % (bytes.len() * 8);
                    bytes[bit / 8] ^= 1 << (bit % 8);
                }
                let parsed = UploadSet::from_bytes(&bytes);
                check_framing(&bytes, TYPE_UPLOAD_SET, &parsed, true);
                match (swap_identity, flip) {
                    (false, None) => assert_eq!(parsed.as_ref(), Ok(&set), "round trip"),
                    (true, None) => assert_eq!(
                        parsed.as_ref().err(),
                        Some(&Error::InvalidSignature),
                        "a set under another identity key parsed"
                    ),
                    _ => {}
                }
                let Ok(parsed) = parsed else {
                    return;
                };
                check_set_layout(&parsed, &bytes);
                self.offer(&bytes, &parsed);
            }
            PublishOp::Resend => {
                let Some((bytes, set)) = self.last_accepted.clone() else {
                    return;
                };
                // Since it was accepted, the server has only handed out bundles, dropped
                // evicted keys, or refused sets: it accepts it again and nothing changes.
                assert_eq!(UploadSet::from_bytes(&bytes).as_ref(), Ok(&set));
                let before = self.server.clone();
                assert_eq!(self.server.offer(&set), Ok(()), "a resent set was refused");
                assert_eq!(self.server, before, "a resent set changed the server");
            }
            PublishOp::Fetch => self.fetch(),
            PublishOp::Evict { pq, key } => {
                let key = usize::from(key);
                let id = if pq {
                    match self.pq_pool_id(key) {
                        Some(id) => id,
                        None => return,
                    }
                } else {
                    self.fx.one_time[key % self.fx.one_time.len()].id().to_u64()
                };
                let before = self.server.clone();
                self.server.evict(pq, id);
                let held = |server: &Server| {
                    if pq {
                        #[cfg(feature = "pqxdh")]
                        return server.pq_one_time.iter().any(|k| k.id().to_u64() == id);
                    }
                    server.one_time.iter().any(|k| !pq && k.id().to_u64() == id)
                };
                assert!(!held(&self.server), "an evicted key is still queued");
                if !held(&before) {
                    assert_eq!(
                        self.server, before,
                        "evicting a key not held changed the server"
                    );
                }
            }
        }
    }

    /// The id of post-quantum pool key `key` (modulo the pool's size); `None` without
    /// PQXDH.
    fn pq_pool_id(&self, key: usize) -> Option<u64> {
        #[cfg(feature = "pqxdh")]
        return Some(self.fx.pq[key % self.fx.pq.len()].0.id().to_u64());
        #[cfg(not(feature = "pqxdh"))]
        {
            let _ = key;
            None
        }
    }

    /// Builds device `who`'s upload set with the crate's constructors, checking each result
    /// against SPEC.md §5.12; `None` if a constructor (rightly) refused.
    fn build(
        &self,
        who: usize,
        signed: usize,
        created: u64,
        (one_time, pq_one_time, rotate): (u8, u8, u8),
        last_resort: u8,
    ) -> Option<UploadSet> {
        let fx = self.fx;
        let identity = &fx.identities[who];
        let (spk, signer) = &fx.signed[signed % fx.signed.len()];
        let signed = SignedPreKeyPublic::from_key(spk, created).unwrap();
        let one_time: Vec<OneTimePreKeyPublic> = pick(fx.one_time.len(), one_time, rotate)
            .into_iter()
            .map(|i| fx.one_time[i])
            .collect();
        let result = UploadSet::new(identity, signed, one_time.clone());
        let structural = repeats(one_time.iter().map(|k| k.id().to_u64()));
        assert_eq!(
            result.as_ref().err(),
            expected(structural, *signer != who).err().as_ref(),
            "UploadSet::new"
        );
        let set = result.ok()?;
        #[cfg(not(feature = "pqxdh"))]
        let _ = (last_resort, pq_one_time);
        #[cfg(feature = "pqxdh")]
        let set = {
            let part = |(key, signer): &(PqPreKey, usize)| {
                let part = match key.kind() {
                    PqPreKeyKind::OneTime => PqPreKeyPublic::one_time(key),
                    PqPreKeyKind::LastResort => PqPreKeyPublic::last_resort(key, created),
                };
                (part.unwrap(), *signer)
            };
            let last_resort = match last_resort {
                0 => None,
                i => Some(part(&fx.pq[usize::from(i - 1) % fx.pq.len()])),
            };
            let pq_one_time: Vec<(PqPreKeyPublic, usize)> = pick(fx.pq.len(), pq_one_time, rotate)
                .into_iter()
                .map(|i| part(&fx.pq[i]))
                .collect();
            let all = || last_resort.iter().chain(&pq_one_time);
            let structural = last_resort
                .as_ref()
                .is_some_and(|(k, _)| k.kind() != PqPreKeyKind::LastResort)
                || pq_one_time
                    .iter()
                    .any(|(k, _)| k.kind() != PqPreKeyKind::OneTime)
                || repeats(all().map(|(k, _)| k.id().to_u64()));
            let foreign = all().any(|(_, signer)| *signer != who);
            let result = set.with_post_quantum(
                last_resort.as_ref().map(|(k, _)| k.clone()),
                pq_one_time.iter().map(|(k, _)| k.clone()).collect(),
            );
            assert_eq!(
                result.as_ref().err(),
                expected(structural, foreign).err().as_ref(),
                "UploadSet::with_post_quantum"
            );
            result.ok()?
        };
        Some(set)
    }

    /// The server is offered a parsed set: applied whole, or refused with nothing changed.
    fn offer(&mut self, bytes: &[u8], set: &UploadSet) {
        let before = self.server.clone();
        match self.server.offer(set) {
            Err(refused) => {
                assert_eq!(
                    self.server, before,
                    "a set refused ({refused:?}) changed the server"
                );
                if before.identity.is_some_and(|ik| ik != *set.identity_key()) {
                    assert_eq!(refused, Refused::Identity);
                }
            }
            Ok(()) => {
                let server = &self.server;
                assert_eq!(server.identity.as_ref(), Some(set.identity_key()));
                assert_eq!(server.signed.as_ref(), Some(set.signed_prekey()));
                for key in set.one_time_prekeys() {
                    let id = key.id().to_u64();
                    assert!(
                        server.one_time.contains(key) || server.gone.contains(&id),
                        "one-time prekey {id} neither queued nor handed out"
                    );
                }
                #[cfg(feature = "pqxdh")]
                {
                    if let Some(key) = set.pq_last_resort_prekey() {
                        assert_eq!(server.last_resort.as_ref(), Some(key));
                    }
                    for key in set.pq_one_time_prekeys() {
                        let id = key.id().to_u64();
                        assert!(server.pq_one_time.contains(key) || server.pq_gone.contains(&id));
                    }
                }
                // The same set again (its response lost): accepted, and nothing changes.
                let after = self.server.clone();
                assert_eq!(
                    self.server.offer(set),
                    Ok(()),
                    "an accepted set, sent again"
                );
                assert_eq!(
                    self.server, after,
                    "an accepted set, sent again, changed the server"
                );
                self.last_accepted = Some((bytes.to_vec(), set.clone()));
            }
        }
    }

    /// A bundle request, checked against the server's state before it.
    fn fetch(&mut self) {
        let before = self.server.clone();
        let handed = match self.server.bundle() {
            None => {
                assert!(
                    before.signed.is_none(),
                    "no bundle for a device with a signed prekey"
                );
                assert_eq!(self.server, before);
                return;
            }
            Some(Err(e)) => panic!("the server's stored parts do not assemble: {e:?}"),
            Some(Ok(handed)) => handed,
        };
        let b = &handed.bundle;
        assert_eq!(b.verify(), Ok(()), "a bundle handed out does not verify");
        let bytes = b.to_bytes();
        assert_eq!(PreKeyBundle::from_bytes(&bytes).as_ref(), Ok(b));
        assert_eq!(Some(b.identity_key()), before.identity.as_ref());
        let signed = before.signed.as_ref().unwrap();
        assert_eq!(b.signed_prekey_id(), signed.id());
        assert_eq!(b.signed_prekey(), signed.public_key());
        assert_eq!(b.signed_prekey_signature(), signed.signature());
        let key = *signed.public_key().as_bytes();
        let named = self.signed_keys.entry(signed.id().to_u64()).or_insert(key);
        assert_eq!(
            *named,
            key,
            "signed prekey id {} named two keys",
            signed.id().to_u64()
        );

        // The oldest queued one-time prekey, handed out once only.
        assert_eq!(handed.one_time.as_ref(), before.one_time.front());
        assert_eq!(b.one_time_prekey_id(), handed.one_time.map(|k| k.id()));
        assert_eq!(b.one_time_prekey(), handed.one_time.map(|k| k.public_key()));
        if let Some(key) = &handed.one_time {
            let id = key.id().to_u64();
            assert!(
                self.handed.insert(id),
                "one-time prekey {id} handed out twice"
            );
        }

        #[cfg(feature = "pqxdh")]
        {
            assert_eq!(b.is_post_quantum(), handed.pq.is_some());
            match &handed.pq {
                Some(key) => {
                    let id = key.id().to_u64();
                    assert_eq!(b.post_quantum_prekey_id(), Some(key.id()));
                    assert_eq!(b.post_quantum_prekey(), Some(key.public_key()));
                    assert_eq!(b.post_quantum_prekey_signature(), Some(key.signature()));
                    let named = self.pq_keys.entry(id).or_insert(key.public_key().to_vec());
                    assert_eq!(named[..], key.public_key()[..], "PQ id {id} named two keys");
                    match key.kind() {
                        PqPreKeyKind::OneTime => {
                            assert_eq!(Some(key), before.pq_one_time.front());
                            assert!(self.pq_handed.insert(id), "PQ prekey {id} handed out twice");
                        }
                        PqPreKeyKind::LastResort => {
                            assert!(before.pq_one_time.is_empty(), "last resort too early");
                            assert_eq!(Some(key), before.last_resort.as_ref());
                            assert!(!self.pq_handed.contains(&id));
                        }
                    }
                }
                None => {
                    assert!(before.pq_one_time.is_empty() && before.last_resort.is_none());
                }
            }
        }
    }
}
