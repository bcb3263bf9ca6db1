//! Persistence tests for the storage format (SPEC.md §7) and sealing.
//!
//! * Round trips of every stored type (sessions at several points of their life, identity
//!   key pairs, signed and one-time prekeys, prekey stores, bundles): loading and storing
//!   again gives the very same bytes, and the loaded object behaves exactly like the
//!   original (same ciphertexts with a cloned RNG, same plaintexts, same errors). Prekey
//!   ids are 64-bit (profile v2, part 2), in every layout.
//! * The local device (type `0x2A`, SPEC.md §7.5: the identity key pair and the prekeys,
//!   read and built field by field with [`StoreLayout`]): replay records under two signed
//!   prekeys, the replay capacity, the one-time prekey cap, the signed prekeys' times, the
//!   standby, the published flags and the sequence numbers survive storing; the loader
//!   refuses id 0, ids not strictly increasing, records not strictly increasing or not
//!   valid X25519 keys, more than 1024 records, a standby with an accepted id, more than 16
//!   signed prekeys counting the standby, duplicated or too large sequence numbers, a
//!   current id not accepted, a replacement time on the current signed prekey, a non-zero
//!   absent standby or time, each with its typed error (a previous signed prekey without a
//!   replacement time, as a switch inside `accept` leaves it, loads); a store at every cap
//!   loads and fits `MAX_STORED_SIZE`.
//! * Strict loading: every truncation, an appended byte, a wrong type byte (part 1's store
//!   type `0x27` and the retired `0x24` included), any other version byte (a future one, or
//!   v1's `0x01`) and corrupted fields (the padding byte included) are each rejected with a
//!   specific [`Error`], never a panic, and a giant count fails fast without allocating for
//!   it.
//! * The padding policy (SPEC.md §4.9) is stored with the session, in its own byte right
//!   after `max_stored_skipped`, and round-trips.
//! * The session layout (SPEC.md §7.1, read with [`SessionLayout`]): no local identity key
//!   (a session loads with the loading device's, and refuses one equal to the stored remote
//!   identity; with another device's it loads and then decrypts nothing), and a state
//!   flags byte whose combinations no session has are refused, absent fields taking no
//!   bytes; the sizes are pinned (252 bytes between two established chains, 236 for an
//!   X3DH initiator awaiting its reply with a one-time prekey).
//! * Sealing under a [`StorageKey`] for an application context: round trips, every flipped
//!   bit, every truncation, the wrong key, object-type confusion and another context
//!   (another one, the empty one, one a byte longer) are rejected; a context over
//!   `MAX_SEAL_CONTEXT_LENGTH` is `TooLarge` for seal and open; the blob is the construction
//!   of SPEC.md §7.6, checked with the `aes-gcm-siv` crate.
//! * Replay after reload and an app-like loop that stores the sessions after every message.
//! * The measured sizes of stored sessions (`storage_sizes`, run with `--nocapture`).

use std::time::{Duration, Instant};

use doubleratchet::{
    Error, IdentityKey, IdentityKeyPair, Limits, LocalDevice, Message, OneTimePreKey,
    OneTimePreKeyId, Padding, PreKeyBundle, PreKeyPolicy, Role, Session, SessionOptions,
    SignedPreKey, SignedPreKeyId, SignedPreKeyPublic, StorageKey, StoreNotice, BUNDLE_LENGTH,
    BUNDLE_VERSION, DEFAULT_MAX_STORED_SKIPPED, DEFAULT_ONE_TIME_PREKEY_CAP, MAX_ONE_TIME_PREKEYS,
    MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
    MAX_SEAL_CONTEXT_LENGTH, MAX_SIGNED_PREKEYS, MAX_SKIP_CAP, MAX_STORED_SIZE,
    MAX_STORED_SKIPPED_CAP, STORAGE_VERSION,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyId, PqPreKeyKind};
use doubleratchet_test_support::storage::{
    STATE_AWAITING_REPLY, STATE_ONE_TIME_PREKEY, STATE_RECEIVING_CHAIN, STATE_SENDING_CHAIN,
};
use doubleratchet_test_support::{
    accepted_pair, accepted_pair_in_mode, assert_rejected, established_pair,
    established_pair_in_mode, is_initial, load, reload, rng, stored, Parties,
};
use doubleratchet_test_support::{bundle_of, device_of, padding_offset, ratchet_view};
use rand_chacha::ChaCha20Rng;

// ---------------------------------------------------------------------------------------
// The stored session layout (SPEC.md §7.1), checked by `session_layout_matches_spec`.
// ---------------------------------------------------------------------------------------

const TYPE_SESSION: u8 = 0x20;
const TYPE_IDENTITY: u8 = 0x21;
const TYPE_SIGNED_PREKEY: u8 = 0x22;
const TYPE_ONE_TIME_PREKEY: u8 = 0x23;
/// A local device: identity key pair and prekeys (SPEC.md §7.5).
const TYPE_LOCAL_DEVICE: u8 = 0x2A;
/// Part 2's type of a prekey store (before the local device embedded its identity):
/// retired, never released.
const RETIRED_TYPE_PREKEY_STORE: u8 = 0x24;
const TYPE_BUNDLE: u8 = 0x10;
const TYPE_SEALED: u8 = 0x30;
// The post-quantum (PQXDH) variants; a stored session of either type loads with the same
// loader, and seals under the object type 0x20.
const TYPE_SESSION_PQ: u8 = 0x25;
/// Part 1's type of a prekey store with replay records or post-quantum state: no type any
/// more (every local device is stored as `0x2A`).
const RETIRED_TYPE_PREKEY_STORE_PQ: u8 = 0x27;
const TYPE_BUNDLE_PQ: u8 = 0x11;
/// A session with header encryption, read by the same loader.
const TYPE_SESSION_HE: u8 = 0x28;
#[cfg(feature = "pqxdh")]
const TYPE_PQ_PREKEY: u8 = 0x26;

/// The state flags (profile v2, SPEC.md §7.1): `0x01` responder (clear: initiator), `0x02`
/// awaiting the first reply (the pending fields are stored), `0x04` the pending fields
/// name a one-time prekey, `0x08` `CKs` stored, `0x10` `CKr` stored.
const STATE: usize = 2;
const STATE_RESPONDER: u8 = 0x01;
/// The bits no session sets.
const STATE_UNKNOWN: u8 = !(STATE_RESPONDER
    | STATE_AWAITING_REPLY
    | STATE_ONE_TIME_PREKEY
    | STATE_SENDING_CHAIN
    | STATE_RECEIVING_CHAIN);
/// The local identity key is not stored (the loading device passes its own): the remote
/// one follows the state flags.
const REMOTE_IDENTITY: usize = 3;
const BASE_KEY: usize = 35;
/// The pending fields of an initiator awaiting its reply: `SPK id (8) | OPK id (8, only
/// with 0x04)` (and for PQXDH the post-quantum prekey id and KEM ciphertext); absent
/// otherwise.
const PENDING: usize = 67;
/// One skipped key: ratchet key, `N`, message key.
const ENTRY: usize = 32 + 4 + 32;
/// A chain key (`CKs`, `CKr`), stored only when its state flag is set.
const CHAIN_KEY: usize = 32;
/// A stored session (type `0x20`) with neither chain key, pending fields nor skipped keys:
/// version, type, state flags, `IK_remote`, `EK_A`, limits, padding byte, `RK`, `DHs`,
/// `DHr`, `Ns`, `Nr`, `PN`, the count.
const SESSION_BASE: usize = 3 + 2 * 32 + 8 + 1 + 3 * 32 + 3 * 4 + 4;
/// A session between two established chains (both chain keys), not awaiting a reply.
const SESSION_ESTABLISHED: usize = SESSION_BASE + 2 * CHAIN_KEY;
/// The longest stored session without skipped keys or post-quantum part: both chain keys
/// and both prekey ids.
const SESSION_FIXED: usize = SESSION_ESTABLISHED + 8 + 8;

/// What a PQXDH session awaiting its reply stores in addition: the post-quantum prekey id
/// (8 bytes) and the KEM ciphertext.
const PQ_PENDING: usize = 8 + 1088;
/// A header-encrypted session (type `0x28`) has a flags byte after the state flags, so each
/// later field sits one byte later; after the skipped keys it stores `HKs`, `HKr` (each a
/// flag and 32 bytes), `NHKs`, `NHKr` and the count of skipped-chain header keys.
const HE_SHIFT: usize = 1;
const HE_FIXED: usize = 2 * 33 + 2 * 32 + 4;

/// Where the fields of one stored session sit (SPEC.md §7.1): they move with its type (the
/// flags byte of `0x28`) and with its state flags (pending fields, chain keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SessionLayout {
    /// 1 for type `0x28`, else 0.
    shift: usize,
    /// The length of the pending fields.
    pending: usize,
    cks: bool,
    ckr: bool,
}

impl SessionLayout {
    /// The layout the type and state flags of `bytes` announce.
    fn of(bytes: &[u8]) -> Self {
        let (shift, post_quantum) = match bytes[1] {
            TYPE_SESSION => (0, false),
            TYPE_SESSION_PQ => (0, true),
            TYPE_SESSION_HE => (HE_SHIFT, bytes[3] == 0x03),
            other => panic!("not a session: {other:#x}"),
        };
        let state = bytes[STATE];
        let pending = if state & STATE_AWAITING_REPLY == 0 {
            0
        } else {
            8 + if state & STATE_ONE_TIME_PREKEY != 0 {
                8
            } else {
                0
            } + if post_quantum { PQ_PENDING } else { 0 }
        };
        SessionLayout {
            shift,
            pending,
            cks: state & STATE_SENDING_CHAIN != 0,
            ckr: state & STATE_RECEIVING_CHAIN != 0,
        }
    }

    fn pending(&self) -> usize {
        PENDING + self.shift
    }
    fn max_skip(&self) -> usize {
        self.pending() + self.pending
    }
    fn max_stored(&self) -> usize {
        self.max_skip() + 4
    }
    fn padding(&self) -> usize {
        self.max_skip() + 8
    }
    fn root_key(&self) -> usize {
        self.padding() + 1
    }
    fn dhs(&self) -> usize {
        self.root_key() + 32
    }
    fn dhr(&self) -> usize {
        self.dhs() + 32
    }
    /// Where `CKs` is (or, if absent, would be).
    fn cks(&self) -> usize {
        self.dhr() + 32
    }
    /// Where `CKr` is (or, if absent, would be).
    fn ckr(&self) -> usize {
        self.cks() + if self.cks { CHAIN_KEY } else { 0 }
    }
    fn ns(&self) -> usize {
        self.ckr() + if self.ckr { CHAIN_KEY } else { 0 }
    }
    fn nr(&self) -> usize {
        self.ns() + 4
    }
    fn pn(&self) -> usize {
        self.ns() + 8
    }
    fn count(&self) -> usize {
        self.ns() + 12
    }
    /// The first skipped key; also the length of a type `0x20` or `0x25` session without
    /// skipped keys.
    fn entries(&self) -> usize {
        self.ns() + 16
    }
}

/// The layout of a stored session.
fn layout(bytes: &[u8]) -> SessionLayout {
    SessionLayout::of(bytes)
}

// ---------------------------------------------------------------------------------------
// The stored local device layout (type `0x2A`; SPEC.md §7.5)
// ---------------------------------------------------------------------------------------

/// `version | 0x2A | identity key pair (0x21, 34) | replay capacity (u32) | one-time cap
/// (u32) | next sequence (u64) | current SPK id (u64) | s (u32)`, then `s x { SPK (0x22,
/// 106) | created (u64) | replaced flag | u64 | r (u32) | r x EK_A (32) }`, the standby
/// slot `flag | SPK (106) | created (u64)` (zeros if absent), `t (u32) | t x { sequence
/// (u64) | published (u8) | OPK (0x23, 42) }`, the current post-quantum last-resort id
/// `flag | u64`, `q (u32) | q x { sequence (u64) | published (u8) | PQ prekey (0x26, 139)
/// | created (u64) | replaced flag | u64 }`.
const STORE_IDENTITY: usize = 2;
const STORE_CAPACITY: usize = STORE_IDENTITY + IDENTITY;
const STORE_ONE_TIME_CAP: usize = STORE_CAPACITY + 4;
const STORE_NEXT_SEQUENCE: usize = STORE_ONE_TIME_CAP + 4;
const STORE_CURRENT: usize = STORE_NEXT_SEQUENCE + 8;
const STORE_SIGNED_COUNT: usize = STORE_CURRENT + 8;
const STORE_SIGNED: usize = STORE_SIGNED_COUNT + 4;
/// A stored identity key pair (`0x21`): version, type, seed.
const IDENTITY: usize = 2 + 32;
/// A stored signed prekey (`0x22`): version, type, id (8), secret, signature.
const SPK: usize = 2 + 8 + 32 + 64;
/// A stored one-time prekey (`0x23`): version, type, id (8), secret.
const OPK: usize = 2 + 8 + 32;
/// A stored post-quantum prekey (`0x26`): version, type, id (8), kind, seed, signature.
const PQ_PREKEY: usize = 2 + 8 + 1 + 64 + 64;
/// One replay record: an initiator's base key `EK_A`.
const RECORD: usize = 32;
/// A creation time and an optional replacement time: `u64 | flag | u64`.
const TIMES: usize = 8 + 1 + 8;
/// The standby slot: flag, signed prekey, creation time.
const STANDBY_SLOT: usize = 1 + SPK + 8;
/// A stored one-time prekey entry: sequence, published flag, key.
const ONE_TIME_ENTRY: usize = 8 + 1 + OPK;
/// A stored post-quantum prekey entry: sequence, published flag, key, times.
const PQ_ENTRY: usize = 8 + 1 + PQ_PREKEY + TIMES;

/// The id of a stored signed, one-time or post-quantum prekey encoding.
fn id_of(encoding: &[u8]) -> u64 {
    get_u64(encoding, 2)
}

/// An optional time as stored: `(flag, value)`.
type OptionalTime = (u8, u64);
const ABSENT: OptionalTime = (0, 0);

fn at(time: u64) -> OptionalTime {
    (1, time)
}

/// One accepted signed prekey as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SignedLayout {
    key: Vec<u8>,
    created: u64,
    /// When it stopped being current; absent for the current one.
    superseded: OptionalTime,
    records: Vec<[u8; 32]>,
}

impl SignedLayout {
    fn id(&self) -> u64 {
        id_of(&self.key)
    }
}

/// One one-time (or post-quantum) prekey as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AgedLayout {
    sequence: u64,
    published: u8,
    key: Vec<u8>,
    /// Post-quantum keys only: the creation time and the replacement time (0 and absent
    /// for a one-time post-quantum key).
    created: u64,
    superseded: OptionalTime,
}

impl AgedLayout {
    /// An unpublished key with this sequence number (and no times).
    fn new(sequence: u64, key: Vec<u8>) -> Self {
        AgedLayout {
            sequence,
            published: 0,
            key,
            created: 0,
            superseded: ABSENT,
        }
    }

    fn id(&self) -> u64 {
        id_of(&self.key)
    }
}

/// A stored local device, field by field: what [`StoreLayout::parse`] reads and
/// [`StoreLayout::encode`] writes (counts from the lengths), so that a test can change one
/// field of a valid store, or build one no API call makes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StoreLayout {
    /// The embedded identity key pair's encoding.
    identity: Vec<u8>,
    capacity: u32,
    one_time_cap: u32,
    next_sequence: u64,
    current: u64,
    /// Each accepted signed prekey with its times and replay records.
    signed: Vec<SignedLayout>,
    standby_flag: u8,
    /// The standby slot after the flag: the standby's encoding and creation time, or
    /// 114 zero bytes if absent.
    standby: Vec<u8>,
    one_time: Vec<AgedLayout>,
    pq_current_flag: u8,
    pq_current: u64,
    pq: Vec<AgedLayout>,
}

/// A standby slot (after the flag) holding `key` created at `created`.
fn standby_slot(key: &[u8], created: u64) -> Vec<u8> {
    [key, &created.to_be_bytes()[..]].concat()
}

impl StoreLayout {
    /// Reads a well-formed store; panics on anything but the layout above, to the last
    /// byte.
    fn parse(bytes: &[u8]) -> Self {
        let mut at = 0;
        let mut take = |n: usize| {
            let out = bytes[at..at + n].to_vec();
            at += n;
            out
        };
        assert_eq!(take(2), [STORAGE_VERSION, TYPE_LOCAL_DEVICE]);
        let identity = take(IDENTITY);
        assert_eq!(identity[..2], [STORAGE_VERSION, TYPE_IDENTITY]);
        let capacity = get_u32(&take(4), 0);
        let one_time_cap = get_u32(&take(4), 0);
        let next_sequence = get_u64(&take(8), 0);
        let current = get_u64(&take(8), 0);
        let s = get_u32(&take(4), 0);
        fn optional(b: &[u8]) -> OptionalTime {
            (b[0], get_u64(b, 1))
        }
        let signed = (0..s)
            .map(|_| {
                let key = take(SPK);
                let created = get_u64(&take(8), 0);
                let superseded = optional(&take(9));
                let r = get_u32(&take(4), 0);
                let records = (0..r).map(|_| take(RECORD).try_into().unwrap()).collect();
                SignedLayout {
                    key,
                    created,
                    superseded,
                    records,
                }
            })
            .collect();
        let standby_flag = take(1)[0];
        let standby = take(SPK + 8);
        let t = get_u32(&take(4), 0);
        let one_time = (0..t)
            .map(|_| {
                let sequence = get_u64(&take(8), 0);
                let published = take(1)[0];
                AgedLayout {
                    published,
                    ..AgedLayout::new(sequence, take(OPK))
                }
            })
            .collect();
        let pq_current_flag = take(1)[0];
        let pq_current = get_u64(&take(8), 0);
        let q = get_u32(&take(4), 0);
        let pq = (0..q)
            .map(|_| AgedLayout {
                sequence: get_u64(&take(8), 0),
                published: take(1)[0],
                key: take(PQ_PREKEY),
                created: get_u64(&take(8), 0),
                superseded: optional(&take(9)),
            })
            .collect();
        assert_eq!(at, bytes.len(), "bytes after the store layout");
        StoreLayout {
            identity,
            capacity,
            one_time_cap,
            next_sequence,
            current,
            signed,
            standby_flag,
            standby,
            one_time,
            pq_current_flag,
            pq_current,
            pq,
        }
    }

    fn encode(&self) -> Vec<u8> {
        fn put_optional(out: &mut Vec<u8>, (flag, value): OptionalTime) {
            out.push(flag);
            out.extend_from_slice(&value.to_be_bytes());
        }
        let mut out = vec![STORAGE_VERSION, TYPE_LOCAL_DEVICE];
        out.extend_from_slice(&self.identity);
        out.extend_from_slice(&self.capacity.to_be_bytes());
        out.extend_from_slice(&self.one_time_cap.to_be_bytes());
        out.extend_from_slice(&self.next_sequence.to_be_bytes());
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&(self.signed.len() as u32).to_be_bytes());
        for entry in &self.signed {
            out.extend_from_slice(&entry.key);
            out.extend_from_slice(&entry.created.to_be_bytes());
            put_optional(&mut out, entry.superseded);
            out.extend_from_slice(&(entry.records.len() as u32).to_be_bytes());
            for record in &entry.records {
                out.extend_from_slice(record);
            }
        }
        out.push(self.standby_flag);
        out.extend_from_slice(&self.standby);
        out.extend_from_slice(&(self.one_time.len() as u32).to_be_bytes());
        for entry in &self.one_time {
            out.extend_from_slice(&entry.sequence.to_be_bytes());
            out.push(entry.published);
            out.extend_from_slice(&entry.key);
        }
        out.push(self.pq_current_flag);
        out.extend_from_slice(&self.pq_current.to_be_bytes());
        out.extend_from_slice(&(self.pq.len() as u32).to_be_bytes());
        for entry in &self.pq {
            out.extend_from_slice(&entry.sequence.to_be_bytes());
            out.push(entry.published);
            out.extend_from_slice(&entry.key);
            out.extend_from_slice(&entry.created.to_be_bytes());
            put_optional(&mut out, entry.superseded);
        }
        out
    }

    fn standby_id(&self) -> Option<u64> {
        (self.standby_flag == 1).then(|| id_of(&self.standby))
    }

    fn one_time_ids(&self) -> Vec<u64> {
        self.one_time.iter().map(AgedLayout::id).collect()
    }

    fn signed_ids(&self) -> Vec<u64> {
        self.signed.iter().map(SignedLayout::id).collect()
    }

    fn signed_ids_sorted(&self) -> Vec<u64> {
        let mut ids = self.signed_ids();
        ids.sort_unstable();
        ids
    }

    /// The accepted signed prekey `id`.
    fn signed_entry(&mut self, id: u64) -> &mut SignedLayout {
        self.signed.iter_mut().find(|e| e.id() == id).unwrap()
    }

    /// Makes the accepted signed prekey `id` current, the current one replaced at `time`.
    fn make_current(&mut self, id: u64, time: u64) {
        let old = self.current;
        self.signed_entry(old).superseded = at(time);
        self.signed_entry(id).superseded = ABSENT;
        self.current = id;
    }

    /// Sets the current id to `id` (which may name no accepted signed prekey), the one
    /// current until now replaced at time 0: only the current id is wrong.
    fn retarget(&mut self, id: u64) {
        let old = self.current;
        self.signed_entry(old).superseded = at(0);
        self.current = id;
    }

    /// Where the standby slot starts in [`StoreLayout::encode`]'s output.
    fn standby_at(&self) -> usize {
        STORE_SIGNED
            + self
                .signed
                .iter()
                .map(|e| SPK + TIMES + 4 + RECORD * e.records.len())
                .sum::<usize>()
    }

    /// Where the one-time count starts.
    fn one_time_count_at(&self) -> usize {
        self.standby_at() + STANDBY_SLOT
    }
}

/// The stored padding byte of each policy (SPEC.md §7.1).
const PADDING_NONE: u8 = 0x00;
const PADDING_PADME: u8 = 0x01;

/// The version byte of v1, the previous profile: every object of it is refused.
const V1: u8 = 0x01;

/// Sealed framing: version, 0x30, object type, 12-byte nonce; then the 16-byte tag.
const SEALED_HEADER: usize = 15;
const TAG: usize = 16;

/// The version byte of a blob of this type: bundles are wire objects with their own
/// version (SPEC.md §5.1), every other type is stored.
fn version_of(type_byte: u8) -> u8 {
    match type_byte {
        TYPE_BUNDLE | TYPE_BUNDLE_PQ => BUNDLE_VERSION,
        _ => STORAGE_VERSION,
    }
}

/// The stored byte of a padding policy.
fn padding_byte(padding: Padding) -> u8 {
    match padding {
        Padding::None => PADDING_NONE,
        Padding::Padme => PADDING_PADME,
        other => panic!("no stored byte known for {other:?}"),
    }
}

/// Public keys that every parser must refuse.
fn invalid_x25519_keys() -> Vec<[u8; 32]> {
    let mut high_bit = [9u8; 32];
    high_bit[31] |= 0x80;
    let mut p_plus_2 = [0xffu8; 32];
    p_plus_2[0] = 0xef;
    p_plus_2[31] = 0x7f;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut p_minus_1 = [0xffu8; 32];
    p_minus_1[0] = 0xec;
    p_minus_1[31] = 0x7f;
    vec![[0u8; 32], one, p_minus_1, high_bit, p_plus_2]
}

fn invalid_identity_keys() -> Vec<[u8; 32]> {
    // The neutral point (small order), y = 2 (not on the curve), and (0, -1) encoded with
    // the sign bit set (not canonical).
    let mut neutral = [0u8; 32];
    neutral[0] = 1;
    let mut y2 = [0u8; 32];
    y2[0] = 2;
    let mut neg_one_signed = [0xffu8; 32];
    neg_one_signed[0] = 0xec;
    vec![neutral, y2, neg_one_signed]
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

fn with(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    edit(&mut out);
    out
}

/// Loads a stored session for the device whose identity key is `local`.
fn load_session(bytes: &[u8], local: &IdentityKey) -> Result<Session, Error> {
    Session::from_bytes(bytes, local)
}

/// The outcome of loading, without the loaded value (so results of different types
/// compare).
fn outcome<T>(result: Result<T, Error>) -> Result<(), Error> {
    result.map(drop)
}

/// Every loader of a stored type, by the type byte it expects. `local` is the identity key
/// of the device loading it, which only the session loader takes (a stored session does not
/// hold it).
fn load_as(type_byte: u8, bytes: &[u8], local: &IdentityKey) -> Result<(), Error> {
    match type_byte {
        TYPE_SESSION | TYPE_SESSION_PQ | TYPE_SESSION_HE => {
            outcome(Session::from_bytes(bytes, local))
        }
        TYPE_IDENTITY => outcome(IdentityKeyPair::from_bytes(bytes)),
        TYPE_SIGNED_PREKEY => outcome(SignedPreKey::from_bytes(bytes)),
        TYPE_ONE_TIME_PREKEY => outcome(OneTimePreKey::from_bytes(bytes)),
        TYPE_LOCAL_DEVICE => outcome(LocalDevice::from_bytes(bytes)),
        TYPE_BUNDLE | TYPE_BUNDLE_PQ => outcome(PreKeyBundle::from_bytes(bytes)),
        #[cfg(feature = "pqxdh")]
        TYPE_PQ_PREKEY => outcome(PqPreKey::from_bytes(bytes)),
        other => panic!("no loader for type {other:#x}"),
    }
}

/// One type byte per loader.
const LOADER_TYPES: &[u8] = &[
    TYPE_SESSION,
    TYPE_IDENTITY,
    TYPE_SIGNED_PREKEY,
    TYPE_ONE_TIME_PREKEY,
    TYPE_LOCAL_DEVICE,
    TYPE_BUNDLE,
    #[cfg(feature = "pqxdh")]
    TYPE_PQ_PREKEY,
];

/// The type bytes the loader of `type_byte` accepts (in this build).
fn same_loader(type_byte: u8) -> &'static [u8] {
    match type_byte {
        #[cfg(feature = "pqxdh")]
        TYPE_SESSION | TYPE_SESSION_PQ | TYPE_SESSION_HE => {
            &[TYPE_SESSION, TYPE_SESSION_PQ, TYPE_SESSION_HE]
        }
        #[cfg(feature = "pqxdh")]
        TYPE_BUNDLE | TYPE_BUNDLE_PQ => &[TYPE_BUNDLE, TYPE_BUNDLE_PQ],
        // One type for every store, with or without post-quantum state or replay records.
        TYPE_LOCAL_DEVICE => &[TYPE_LOCAL_DEVICE],
        #[cfg(not(feature = "pqxdh"))]
        TYPE_SESSION | TYPE_SESSION_HE => &[TYPE_SESSION, TYPE_SESSION_HE],
        TYPE_IDENTITY => &[TYPE_IDENTITY],
        TYPE_SIGNED_PREKEY => &[TYPE_SIGNED_PREKEY],
        TYPE_ONE_TIME_PREKEY => &[TYPE_ONE_TIME_PREKEY],
        #[cfg(not(feature = "pqxdh"))]
        TYPE_BUNDLE => &[TYPE_BUNDLE],
        #[cfg(feature = "pqxdh")]
        TYPE_PQ_PREKEY => &[TYPE_PQ_PREKEY],
        other => panic!("no loader for type {other:#x}"),
    }
}

/// The application context the sealed samples are sealed for (the place the app stores
/// them); [`seal_context_is_bound`] checks that it is bound into the blob.
const CONTEXT: &[u8] = b"contacts/7/session";

/// Opens a sealed blob with [`CONTEXT`] as the type with the given object type byte, a
/// session for the device whose identity key is `local`.
fn open_as(
    key: &StorageKey,
    type_byte: u8,
    sealed: &[u8],
    local: &IdentityKey,
) -> Result<Vec<u8>, Error> {
    open_in(key, type_byte, sealed, CONTEXT, local)
}

/// Opens a sealed blob with `context` as the type with the given object type byte, a
/// session for the device whose identity key is `local`.
fn open_in(
    key: &StorageKey,
    type_byte: u8,
    sealed: &[u8],
    context: &[u8],
    local: &IdentityKey,
) -> Result<Vec<u8>, Error> {
    match type_byte {
        TYPE_SESSION => key.open_session(sealed, context, local).map(|s| stored(&s)),
        TYPE_IDENTITY => key
            .open::<IdentityKeyPair>(sealed, context)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_SIGNED_PREKEY => key
            .open::<SignedPreKey>(sealed, context)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_ONE_TIME_PREKEY => key
            .open::<OneTimePreKey>(sealed, context)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_LOCAL_DEVICE => key
            .open::<LocalDevice>(sealed, context)
            .map(|k| k.to_bytes().to_vec()),
        #[cfg(feature = "pqxdh")]
        TYPE_PQ_PREKEY => key
            .open::<PqPreKey>(sealed, context)
            .map(|k| k.to_bytes().to_vec()),
        other => panic!("no sealed type {other:#x}"),
    }
}

/// The object types of sealed blobs (a PQXDH or header-encrypted session seals as 0x20).
const SEALABLE_TYPES: &[u8] = &[
    TYPE_SESSION,
    TYPE_IDENTITY,
    TYPE_SIGNED_PREKEY,
    TYPE_ONE_TIME_PREKEY,
    TYPE_LOCAL_DEVICE,
    #[cfg(feature = "pqxdh")]
    TYPE_PQ_PREKEY,
];

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// A conversation where both sides hold skipped keys from two chains each, and the
/// messages not yet delivered.
struct Skipped {
    a: Session,
    b: Session,
    rng: ChaCha20Rng,
    /// Undelivered messages to Bob and to Alice, with their plaintexts.
    to_b: Vec<(Vec<u8>, Vec<u8>)>,
    to_a: Vec<(Vec<u8>, Vec<u8>)>,
}

fn send(
    from: &mut Session,
    rng: &mut ChaCha20Rng,
    prefix: &str,
    count: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let plaintext = format!("{prefix}{i}").into_bytes();
            (from.encrypt(&plaintext, rng).unwrap(), plaintext)
        })
        .collect()
}

fn conversation_with_skipped_keys(seed: u64) -> Skipped {
    let mut rng = rng(seed);
    let mut parties = Parties::new(&mut rng);
    let mut a = parties.initiate(&mut rng);
    // Alice's first chain: five initial messages; Bob's session is made from the fourth.
    let mut chain_a0 = send(&mut a, &mut rng, "a0-", 5);
    let (first, plaintext) = chain_a0.remove(3);
    let (mut b, got) = parties.accept(&first, Limits::default()).unwrap();
    assert_eq!(got, plaintext);
    assert_eq!(b.stored_skipped_keys(), 3);
    // Bob's first chain: Alice receives only the third of four.
    let mut chain_b0 = send(&mut b, &mut rng, "b0-", 4);
    let (m, p) = chain_b0.remove(2);
    assert_eq!(a.decrypt(&m).unwrap(), p);
    assert_eq!(a.stored_skipped_keys(), 2);
    // Alice's second chain: Bob receives only the third of four, which also stores the
    // key of a0-4 (through PN).
    let mut chain_a1 = send(&mut a, &mut rng, "a1-", 4);
    assert!(!is_initial(&chain_a1[0].0));
    let (m, p) = chain_a1.remove(2);
    assert_eq!(b.decrypt(&m).unwrap(), p);
    assert_eq!(b.stored_skipped_keys(), 6);
    // Bob's second chain: Alice receives the second of three (stores b0-3 and b1-0).
    let mut chain_b1 = send(&mut b, &mut rng, "b1-", 3);
    let (m, p) = chain_b1.remove(1);
    assert_eq!(a.decrypt(&m).unwrap(), p);
    assert_eq!(a.stored_skipped_keys(), 4);
    let to_b = chain_a0.into_iter().chain(chain_a1).collect();
    let to_a = chain_b0.into_iter().chain(chain_b1).collect();
    Skipped {
        a,
        b,
        rng,
        to_b,
        to_a,
    }
}

/// Sessions at the points of their life the storage format must capture.
fn sample_sessions() -> Vec<(&'static str, Session)> {
    let mut rng = rng(100);
    let parties = Parties::new(&mut rng);
    let fresh_initiator = parties.initiate(&mut rng);

    let (_, mut awaiting, fresh_responder, mut rng) = accepted_pair(101);
    awaiting.encrypt(b"second", &mut rng).unwrap();

    let (_, established, _, _) = established_pair(102);

    let mut rng = doubleratchet_test_support::rng(103);
    let parties = Parties::new(&mut rng);
    let bundle = parties.store.bundle(None).unwrap();
    let no_one_time_prekey =
        Session::initiate(&parties.alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();

    let (_, mut limited, _, _) = established_pair(104);
    limited.set_limits(Limits::new(7, 3)).unwrap();
    let (_, mut at_caps, _, _) = established_pair(105);
    at_caps
        .set_limits(Limits::new(MAX_SKIP_CAP, MAX_STORED_SKIPPED_CAP))
        .unwrap();

    let skipped = conversation_with_skipped_keys(106);

    // Sessions with the padding policy Padding::None: Alice's (awaiting a reply) and the
    // responder session Bob makes from her first message.
    let mut rng = doubleratchet_test_support::rng(110);
    let mut parties = Parties::new(&mut rng);
    let no_padding = SessionOptions::new().padding(Padding::None);
    let mut unpadded_initiator =
        Session::initiate(&parties.alice, &parties.bundle, &no_padding, &mut rng).unwrap();
    let first = unpadded_initiator.encrypt(b"unpadded", &mut rng).unwrap();
    let unpadded_responder = parties.store.accept(&first, &no_padding).unwrap().session;
    vec![
        ("fresh initiator", fresh_initiator),
        ("fresh responder", fresh_responder),
        ("initiator awaiting a reply", awaiting),
        ("established initiator", established),
        ("initiator without one-time prekey", no_one_time_prekey),
        ("custom limits", limited),
        ("limits at the caps", at_caps),
        ("responder with skipped keys", skipped.b),
        ("initiator with skipped keys", skipped.a),
        ("initiator without padding", unpadded_initiator),
        ("responder without padding", unpadded_responder),
    ]
}

/// The sample session of that name.
fn sample_session(name: &str) -> Session {
    sample_sessions()
        .into_iter()
        .find_map(|(n, s)| (n == name).then_some(s))
        .unwrap()
}

/// [`sample_store`] with the ids it drew.
struct SampleStore {
    bob: IdentityKeyPair,
    store: LocalDevice,
    /// The signed prekey that was current before the rotation, still accepted.
    first_signed: SignedPreKeyId,
    /// The unused one-time prekeys, oldest first (the ones with sequence numbers 0, 1, 2,
    /// 4, ..., 9: the fourth generated was removed).
    one_time: Vec<OneTimePreKeyId>,
}

/// A local device with two accepted signed prekeys (the second current), a standby, and
/// nine one-time prekeys (ten generated, the fourth removed); no replay records.
fn sample_store_with_ids(seed: u64) -> SampleStore {
    let mut rng = rng(seed);
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    let first_signed = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    let mut one_time: Vec<OneTimePreKeyId> = store
        .generate_one_time_prekeys(10, &mut rng)
        .unwrap()
        .created;
    assert!(store.remove_one_time_prekey(one_time.remove(3)));
    // A fresh signed prekey becomes current; the standby is kept.
    let rotated = store.rotate_signed_prekey(0, &mut rng).unwrap();
    assert!(rotated != first_signed && rotated != standby);
    assert!(store.signed_prekey(first_signed).is_some());
    assert_eq!(store.standby_signed_prekey().unwrap().id(), standby);
    SampleStore {
        bob,
        store,
        first_signed,
        one_time,
    }
}

/// [`sample_store_with_ids`] without the ids.
fn sample_store(seed: u64) -> (IdentityKeyPair, LocalDevice) {
    let s = sample_store_with_ids(seed);
    (s.bob, s.store)
}

/// A prekey store whose replay records sit under two signed prekeys: replay capacity 2;
/// two sessions without a one-time prekey filled the first signed prekey, so the store
/// switched to its standby; a third one left a record under the second; a new standby was
/// generated; two one-time prekeys of five were used (sequence numbers 0 and 3).
struct RecordsStore {
    bob: IdentityKeyPair,
    alice: IdentityKeyPair,
    store: LocalDevice,
    /// The signed prekey whose records filled (no longer current, still accepted).
    full: SignedPreKeyId,
    /// The current signed prekey, with one record.
    current: SignedPreKeyId,
    /// An initial message the store recorded under `full`, and one under `current`.
    recorded: [Vec<u8>; 2],
    /// An initial message naming `full` without a one-time prekey, not recorded.
    unrecorded_for_full: Vec<u8>,
    rng: ChaCha20Rng,
}

fn records_store(seed: u64) -> RecordsStore {
    let mut rng = rng(seed);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    assert_eq!(store.set_replay_capacity(2), Ok(None));
    let one_time: Vec<OneTimePreKeyId> = store
        .generate_one_time_prekeys(5, &mut rng)
        .unwrap()
        .created;
    let full = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    let last_resort = store.bundle(None).unwrap();
    let first_message = |rng: &mut ChaCha20Rng| {
        let mut a = Session::initiate(&alice, &last_resort, &SessionOptions::new(), rng).unwrap();
        a.encrypt(b"no one-time prekey", rng).unwrap()
    };
    let m1 = first_message(&mut rng);
    let m2 = first_message(&mut rng);
    let unrecorded_for_full = first_message(&mut rng);
    assert_eq!(
        store.accept(&m1, &SessionOptions::new()).unwrap().notice,
        None
    );
    assert_eq!(
        store.accept(&m2, &SessionOptions::new()).unwrap().notice,
        Some(StoreNotice::SignedPreKeySwitched {
            previous: full,
            current: standby
        })
    );
    assert_eq!(store.current_signed_prekey().id(), standby);
    assert!(store.standby_signed_prekey().is_none());
    assert!(store
        .maintain(0, &PreKeyPolicy::default(), &mut rng)
        .map(|m| m.replenished_standby)
        .unwrap());
    // A session under the new current signed prekey, and two that consume one-time prekeys.
    let bundle = store.bundle(None).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m3 = a.encrypt(b"under the second", &mut rng).unwrap();
    assert_eq!(
        store.accept(&m3, &SessionOptions::new()).unwrap().notice,
        None
    );
    for id in [one_time[0], one_time[3]] {
        let bundle = store.bundle(Some(id)).unwrap();
        let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
        let m = a.encrypt(b"one-time", &mut rng).unwrap();
        let accepted = store.accept(&m, &SessionOptions::new()).unwrap();
        assert_eq!(accepted.used_one_time_prekey, Some(id));
        assert_eq!(accepted.notice, None);
    }
    assert_eq!(store.replay_records(), 3);
    RecordsStore {
        bob,
        alice,
        store,
        full,
        current: standby,
        recorded: [m1, m3],
        unrecorded_for_full,
        rng,
    }
}

/// PQXDH objects: sessions (the initiator awaiting its reply carries the KEM ciphertext),
/// a prekey store with post-quantum prekeys and a replay record (type 0x2A, as every
/// store), post-quantum prekeys of both kinds, and a PQXDH bundle.
#[cfg(feature = "pqxdh")]
struct PqSamples {
    initiator_awaiting: Session,
    initiator_established: Session,
    responder: Session,
    store: LocalDevice,
    one_time: PqPreKey,
    last_resort: PqPreKey,
    bundle: PreKeyBundle,
}

#[cfg(feature = "pqxdh")]
fn pq_samples(seed: u64) -> PqSamples {
    let mut rng = rng(seed);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    let one_time = store
        .generate_one_time_prekeys(2, &mut rng)
        .unwrap()
        .created[0];
    store.generate_pq_one_time_prekeys(2, &mut rng).unwrap();
    store.rotate_pq_last_resort_prekey(0, &mut rng).unwrap();
    let pq_one_time = store.pq_one_time_prekeys().next().unwrap().id();
    let bundle = store.pq_bundle(Some(one_time), Some(pq_one_time)).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    assert!(a.is_post_quantum());
    let first = a.encrypt(b"pq first", &mut rng).unwrap();
    let initiator_awaiting = reload(&a);
    let mut responder = store
        .accept(&first, &SessionOptions::new())
        .unwrap()
        .session;
    let reply = responder.encrypt(b"pq reply", &mut rng).unwrap();
    a.decrypt(&reply).unwrap();
    // A last-resort session (no one-time prekey of either kind): the store records it.
    let last_resort_bundle = store.pq_bundle(None, None).unwrap();
    let mut other = Session::initiate(
        &alice,
        &last_resort_bundle,
        &SessionOptions::new(),
        &mut rng,
    )
    .unwrap();
    let m = other.encrypt(b"last resort", &mut rng).unwrap();
    let _accepted = store.accept(&m, &SessionOptions::new()).unwrap();
    assert_eq!(store.replay_records(), 1);
    PqSamples {
        initiator_awaiting,
        initiator_established: a,
        responder,
        store,
        one_time: PqPreKey::generate(
            &bob,
            PqPreKeyId::from_u64(9),
            PqPreKeyKind::OneTime,
            &mut rng,
        )
        .unwrap(),
        last_resort: PqPreKey::generate(
            &bob,
            PqPreKeyId::from_u64(10),
            PqPreKeyKind::LastResort,
            &mut rng,
        )
        .unwrap(),
        bundle,
    }
}

/// The identity key of a device that made none of the samples: what the loaders of the
/// types other than sessions are given (they do not use it).
fn stranger() -> IdentityKey {
    *IdentityKeyPair::generate(&mut rng(0x5747))
        .unwrap()
        .public_key()
}

/// One valid blob of every loadable type, with its type byte and the identity key of the
/// device that loads it (a session's own local identity; [`stranger`] for the others).
fn sample_blobs() -> Vec<(String, u8, Vec<u8>, IdentityKey)> {
    let mut sessions: Vec<(String, u8, Vec<u8>, IdentityKey)> = sample_sessions()
        .into_iter()
        .map(|(name, s)| {
            let local = *s.local_identity();
            (format!("session: {name}"), TYPE_SESSION, stored(&s), local)
        })
        .collect();
    let mut blobs: Vec<(String, u8, Vec<u8>)> = Vec::new();
    let mut rng = rng(107);
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let spk = SignedPreKey::generate(
        &id,
        SignedPreKeyId::from_u64(0xdead_beef_0bad_cafe),
        &mut rng,
    )
    .unwrap();
    let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(u64::MAX), &mut rng).unwrap();
    let (bob, store) = sample_store(108);
    let empty_store = device_of(&bob, &mut rng).unwrap();
    // Published one-time prekeys, and times other than 0: maintenance a while after the
    // device was made rotates the signed prekey and retires the one replaced before.
    let (_, mut maintained) = sample_store(112);
    let published: Vec<OneTimePreKeyId> = maintained
        .one_time_prekeys()
        .take(4)
        .map(OneTimePreKey::id)
        .collect();
    assert_eq!(maintained.mark_one_time_prekeys_published(&published), 4);
    let done = maintained
        .maintain(1_700_000_000, &PreKeyPolicy::default(), &mut rng)
        .unwrap();
    assert!(done.rotated_signed_prekey.is_some());
    assert_eq!(done.retired_signed_prekeys.len(), 1);
    let records = records_store(110);
    let mut no_standby = records_store(111).store;
    let switched = no_standby.set_replay_capacity(1).unwrap();
    assert!(matches!(
        switched,
        Some(StoreNotice::SignedPreKeySwitched { .. })
    ));
    assert!(no_standby.standby_signed_prekey().is_none());
    blobs.push(("identity".into(), TYPE_IDENTITY, id.to_bytes().to_vec()));
    blobs.push((
        "signed prekey".into(),
        TYPE_SIGNED_PREKEY,
        spk.to_bytes().to_vec(),
    ));
    blobs.push((
        "one-time prekey".into(),
        TYPE_ONE_TIME_PREKEY,
        opk.to_bytes().to_vec(),
    ));
    blobs.push((
        "prekey store".into(),
        TYPE_LOCAL_DEVICE,
        store.to_bytes().to_vec(),
    ));
    blobs.push((
        "empty prekey store".into(),
        TYPE_LOCAL_DEVICE,
        empty_store.to_bytes().to_vec(),
    ));
    blobs.push((
        "prekey store with records under two signed prekeys".into(),
        TYPE_LOCAL_DEVICE,
        records.store.to_bytes().to_vec(),
    ));
    blobs.push((
        "prekey store without a standby".into(),
        TYPE_LOCAL_DEVICE,
        no_standby.to_bytes().to_vec(),
    ));
    blobs.push((
        "local device with published prekeys and times".into(),
        TYPE_LOCAL_DEVICE,
        maintained.to_bytes().to_vec(),
    ));
    let seventh = store.one_time_prekeys().nth(6).unwrap().id();
    blobs.push((
        "bundle".into(),
        TYPE_BUNDLE,
        store.bundle(Some(seventh)).unwrap().to_bytes(),
    ));
    blobs.push((
        "bundle without one-time prekey".into(),
        TYPE_BUNDLE,
        store.bundle(None).unwrap().to_bytes(),
    ));
    #[cfg(feature = "pqxdh")]
    {
        let pq = pq_samples(109);
        for (name, session) in [
            ("PQXDH initiator awaiting a reply", &pq.initiator_awaiting),
            ("PQXDH established initiator", &pq.initiator_established),
            ("PQXDH responder", &pq.responder),
        ] {
            sessions.push((
                format!("session: {name}"),
                TYPE_SESSION_PQ,
                stored(session),
                *session.local_identity(),
            ));
        }
        blobs.push((
            "PQXDH prekey store".into(),
            TYPE_LOCAL_DEVICE,
            pq.store.to_bytes().to_vec(),
        ));
        blobs.push((
            "one-time PQ prekey".into(),
            TYPE_PQ_PREKEY,
            pq.one_time.to_bytes().to_vec(),
        ));
        blobs.push((
            "last-resort PQ prekey".into(),
            TYPE_PQ_PREKEY,
            pq.last_resort.to_bytes().to_vec(),
        ));
        blobs.push(("PQXDH bundle".into(), TYPE_BUNDLE_PQ, pq.bundle.to_bytes()));
    }
    let stranger = stranger();
    sessions.extend(
        blobs
            .into_iter()
            .map(|(name, type_byte, bytes)| (name, type_byte, bytes, stranger)),
    );
    for (name, type_byte, bytes, _) in &sessions {
        assert_eq!(bytes[1], *type_byte, "{name}");
    }
    sessions
}

// ---------------------------------------------------------------------------------------
// Session round trips
// ---------------------------------------------------------------------------------------

#[test]
fn session_layout_matches_spec() {
    for (name, session) in sample_sessions() {
        let bytes = stored(&session);
        let count = session.stored_skipped_keys();
        let l = layout(&bytes);
        assert_eq!(bytes[0], STORAGE_VERSION, "{name}");
        assert_eq!(bytes[1], TYPE_SESSION, "{name}");
        // The state flags: the role, the pending fields, the chain keys stored, and no
        // other bit.
        let state = bytes[STATE];
        assert_eq!(state & STATE_UNKNOWN, 0, "{name}");
        assert_eq!(
            state & STATE_RESPONDER != 0,
            session.role() == Role::Responder,
            "{name}"
        );
        assert_eq!(
            state & STATE_AWAITING_REPLY != 0,
            session.awaiting_reply(),
            "{name}"
        );
        if state & STATE_ONE_TIME_PREKEY != 0 {
            assert!(session.awaiting_reply(), "{name}");
        }
        // The pending fields are there only while awaiting: 8 bytes per prekey id.
        let pending = if session.awaiting_reply() {
            8 + if state & STATE_ONE_TIME_PREKEY != 0 {
                8
            } else {
                0
            }
        } else {
            0
        };
        assert_eq!(l.pending, pending, "{name}");
        let chains = usize::from(l.cks) + usize::from(l.ckr);
        assert_eq!(
            bytes.len(),
            SESSION_BASE + CHAIN_KEY * chains + pending + ENTRY * count,
            "{name}"
        );
        assert_eq!(
            bytes[REMOTE_IDENTITY..BASE_KEY],
            session.remote_identity().to_bytes(),
            "{name}"
        );
        // The local identity key is not stored anywhere in it.
        let local = session.local_identity().to_bytes();
        assert!(!bytes.windows(32).any(|w| w == local), "{name}");
        assert_eq!(
            get_u32(&bytes, l.max_skip()),
            session.limits().max_skip,
            "{name}"
        );
        assert_eq!(
            get_u32(&bytes, l.max_stored()),
            session.limits().max_stored_skipped,
            "{name}"
        );
        assert_eq!(l.padding(), padding_offset(&bytes), "{name}");
        assert_eq!(
            bytes[l.padding()],
            padding_byte(session.padding()),
            "{name}"
        );
        // Every session knows the peer's ratchet key: no flag, always 32 bytes.
        let view = ratchet_view(&bytes);
        assert_eq!(view.dhr[..], bytes[l.dhr()..l.dhr() + 32], "{name}");
        assert_eq!((view.has_cks, view.has_ckr), (l.cks, l.ckr), "{name}");
        // A counter of an absent chain is zero.
        if !l.cks {
            assert_eq!(get_u32(&bytes, l.ns()), 0, "{name}");
        }
        if !l.ckr {
            assert_eq!(get_u32(&bytes, l.nr()), 0, "{name}");
        }
        assert_eq!(get_u32(&bytes, l.count()) as usize, count, "{name}");
        assert_eq!(l.entries() + ENTRY * count, bytes.len(), "{name}");
    }
}

#[test]
fn every_session_reencodes_byte_identically() {
    for (name, session) in sample_sessions() {
        let bytes = stored(&session);
        let loaded = Session::from_bytes(&bytes, session.local_identity()).unwrap();
        assert_eq!(stored(&loaded), bytes, "{name}");
        assert_eq!(loaded.id(), session.id(), "{name}");
        assert_eq!(loaded.role(), session.role(), "{name}");
        assert_eq!(loaded.awaiting_reply(), session.awaiting_reply(), "{name}");
        assert_eq!(loaded.limits(), session.limits(), "{name}");
        assert_eq!(loaded.padding(), session.padding(), "{name}");
        assert_eq!(loaded.local_identity(), session.local_identity(), "{name}");
        assert_eq!(
            loaded.remote_identity(),
            session.remote_identity(),
            "{name}"
        );
        assert_eq!(
            loaded.stored_skipped_keys(),
            session.stored_skipped_keys(),
            "{name}"
        );
        // Twice round the loop is still the same bytes.
        assert_eq!(stored(&reload(&loaded)), bytes, "{name}");
    }
}

/// Encrypting with the same RNG state gives the same message from both sessions, and
/// leaves them in the same stored state.
fn assert_same_encryption(
    original: &mut Session,
    loaded: &mut Session,
    rng: &mut ChaCha20Rng,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut rng2 = rng.clone();
    let m1 = original.encrypt(plaintext, rng).unwrap();
    let m2 = loaded.encrypt(plaintext, &mut rng2).unwrap();
    assert_eq!(m1, m2, "a loaded session encrypts differently");
    assert_eq!(stored(original), stored(loaded));
    m1
}

fn assert_same_decryption(
    original: &mut Session,
    loaded: &mut Session,
    message: &[u8],
) -> Result<Vec<u8>, Error> {
    let r1 = original.decrypt(message);
    let r2 = loaded.decrypt(message);
    assert_eq!(r1, r2, "a loaded session decrypts differently");
    assert_eq!(stored(original), stored(loaded));
    r1
}

#[test]
fn fresh_initiator_round_trip_behaves_identically() {
    let mut rng = rng(1);
    let mut parties = Parties::new(&mut rng);
    let mut a = parties.initiate(&mut rng);
    let bytes = stored(&a);
    // An initiator (0x01 clear) awaiting its reply, naming a one-time prekey, with its
    // sending chain: the base length, CKs and the two prekey ids (236 bytes).
    assert_eq!(
        bytes[STATE],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    assert_eq!(bytes.len(), SESSION_BASE + CHAIN_KEY + 8 + 8);
    assert_eq!(bytes.len(), 236);
    assert_eq!(
        get_u64(&bytes, PENDING),
        parties.bundle.signed_prekey_id().to_u64()
    );
    assert_eq!(
        Some(get_u64(&bytes, PENDING + 8)),
        parties
            .bundle
            .one_time_prekey_id()
            .map(OneTimePreKeyId::to_u64)
    );
    let l = layout(&bytes);
    assert_eq!(PENDING + 16, l.max_skip());
    assert!(l.cks && !l.ckr);
    let mut a2 = load(&bytes, parties.alice.public_key());
    assert!(a2.awaiting_reply());

    let first = assert_same_encryption(&mut a, &mut a2, &mut rng, b"hello");
    assert!(is_initial(&first));
    let (mut b, plaintext) = parties.accept(&first, Limits::default()).unwrap();
    assert_eq!(plaintext, b"hello");
    let reply = b.encrypt(b"hi", &mut rng).unwrap();
    assert_eq!(
        assert_same_decryption(&mut a, &mut a2, &reply).unwrap(),
        b"hi"
    );
    assert!(!a2.awaiting_reply());
    let m = assert_same_encryption(&mut a, &mut a2, &mut rng, b"normal now");
    assert!(!is_initial(&m));
    assert_eq!(b.decrypt(&m).unwrap(), b"normal now");
}

#[test]
fn fresh_responder_round_trip_behaves_identically() {
    let (_, mut a, mut b, mut rng) = accepted_pair(2);
    let bytes = stored(&b);
    // After respond: a receiving chain, the sending half of the ratchet step deferred
    // (CKs not stored), no pending fields (the limits follow EK_A): 220 bytes.
    assert_eq!(bytes[STATE], STATE_RESPONDER | STATE_RECEIVING_CHAIN);
    assert_eq!(bytes.len(), SESSION_BASE + CHAIN_KEY);
    let l = layout(&bytes);
    assert_eq!(l.max_skip(), PENDING);
    assert!(!l.cks && l.ckr);
    assert_eq!(get_u32(&bytes, l.ns()), 0);
    assert_eq!(get_u32(&bytes, l.nr()), 1);
    let mut b2 = load(&bytes, b.local_identity());
    assert_eq!(b2.role(), Role::Responder);
    assert_eq!(b2.id(), a.id());

    // A later initial message of the same session decrypts on both.
    let m = a.encrypt(b"still initial", &mut rng).unwrap();
    assert!(is_initial(&m));
    assert_eq!(
        assert_same_decryption(&mut b, &mut b2, &m).unwrap(),
        b"still initial"
    );
    let reply = assert_same_encryption(&mut b, &mut b2, &mut rng, b"reply");
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    // And the replayed initial message is rejected identically.
    assert_eq!(
        assert_same_decryption(&mut b, &mut b2, &m),
        Err(Error::DuplicateOrExpired)
    );
}

#[test]
fn session_with_skipped_keys_round_trip_behaves_identically() {
    let Skipped {
        mut a,
        mut b,
        mut rng,
        to_b,
        to_a,
        ..
    } = conversation_with_skipped_keys(3);
    for (session, inbox, skipped) in [(&mut b, &to_b, 6), (&mut a, &to_a, 4)] {
        let bytes = stored(session);
        let l = layout(&bytes);
        assert_eq!(get_u32(&bytes, l.count()), skipped);
        assert_eq!(bytes.len(), l.entries() + ENTRY * skipped as usize);
        let mut loaded = load(&bytes, session.local_identity());
        assert_eq!(loaded.stored_skipped_keys(), skipped as usize);
        // Deliver the held messages in a scrambled order; both sessions agree on each.
        let mut order: Vec<usize> = (0..inbox.len()).collect();
        order.reverse();
        order.rotate_left(2);
        let mut expected_skipped = skipped as usize;
        for i in order {
            let (message, plaintext) = &inbox[i];
            assert_eq!(
                &assert_same_decryption(session, &mut loaded, message).unwrap(),
                plaintext
            );
            // Every held message but the last (the next one of the newest chain) was
            // decrypted with a stored key, which is now deleted.
            if i + 1 != inbox.len() {
                expected_skipped -= 1;
            }
            assert_eq!(session.stored_skipped_keys(), expected_skipped);
            // Reload the copy after every message, as an app would.
            loaded = reload(&loaded);
        }
        assert_eq!(expected_skipped, 0);
        // Every replay now fails the same way on both.
        for (message, _) in inbox {
            assert!(assert_same_decryption(session, &mut loaded, message).is_err());
        }
    }
    // The conversation goes on from the loaded states.
    let mut a2 = reload(&a);
    let mut b2 = reload(&b);
    for i in 0..5u8 {
        let m = assert_same_encryption(&mut a, &mut a2, &mut rng, &[i]);
        assert_eq!(assert_same_decryption(&mut b, &mut b2, &m).unwrap(), [i]);
        let m = assert_same_encryption(&mut b, &mut b2, &mut rng, &[i, i]);
        assert_eq!(assert_same_decryption(&mut a, &mut a2, &m).unwrap(), [i, i]);
    }
}

#[test]
fn awaiting_reply_state_round_trips() {
    // Awaiting: the pending X3DH fields are stored and every message stays initial.
    let (_, mut a, mut b, mut rng) = accepted_pair(4);
    for i in 0..3u8 {
        a = reload(&a);
        assert!(a.awaiting_reply());
        let m = a.encrypt(&[i], &mut rng).unwrap();
        assert!(
            is_initial(&m),
            "a reloaded awaiting session must keep sending initial messages"
        );
        assert_eq!(b.decrypt(&m).unwrap(), [i]);
    }
    let bytes = stored(&a);
    assert_ne!(bytes[STATE] & STATE_AWAITING_REPLY, 0);
    assert_eq!(layout(&bytes).pending, 8 + 8);
    // Not awaiting: after the reply the flags are clear and the fields gone, and stay so.
    let reply = b.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    let bytes = stored(&a);
    assert_eq!(
        bytes[STATE] & (STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY),
        0
    );
    assert_eq!(layout(&bytes).pending, 0);
    assert_eq!(padding_offset(&bytes), PENDING + 8);
    let mut a = load(&bytes, a.local_identity());
    assert!(!a.awaiting_reply());
    let m = a.encrypt(b"normal", &mut rng).unwrap();
    assert!(!is_initial(&m));
    assert_eq!(b.decrypt(&m).unwrap(), b"normal");

    // Without a one-time prekey the pending OPK field is absent (its flag clear, no bytes):
    // the limits follow the signed prekey id.
    let mut rng = doubleratchet_test_support::rng(5);
    let mut parties = Parties::new(&mut rng);
    let bundle = parties.store.bundle(None).unwrap();
    let a = Session::initiate(&parties.alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let bytes = stored(&a);
    assert_eq!(bytes[STATE], STATE_AWAITING_REPLY | STATE_SENDING_CHAIN);
    assert_eq!(layout(&bytes).pending, 8);
    assert_eq!(get_u64(&bytes, PENDING), bundle.signed_prekey_id().to_u64());
    assert_eq!(bytes.len(), SESSION_BASE + CHAIN_KEY + 8);
    let mut a = load(&bytes, parties.alice.public_key());
    let m = a.encrypt(b"no opk", &mut rng).unwrap();
    let (_, plaintext) = parties.accept(&m, Limits::default()).unwrap();
    assert_eq!(plaintext, b"no opk");
}

#[test]
fn custom_limits_round_trip_and_still_apply() {
    let (_, mut a, mut b, mut rng) = established_pair(6);
    let limits = Limits::new(7, 3);
    b.set_limits(limits).unwrap();
    let bytes = stored(&b);
    let l = layout(&bytes);
    assert_eq!(get_u32(&bytes, l.max_skip()), 7);
    assert_eq!(get_u32(&bytes, l.max_stored()), 3);
    let mut b2 = load(&bytes, b.local_identity());
    assert_eq!(b2.limits(), limits);
    let held: Vec<Vec<u8>> = (0..10u8)
        .map(|i| a.encrypt(&[i], &mut rng).unwrap())
        .collect();
    // Nine keys ahead is more than max_skip = 7 on both.
    assert_eq!(
        assert_same_decryption(&mut b, &mut b2, &held[9]),
        Err(Error::TooFarAhead)
    );
    // Seven ahead is fine; only the newest three skipped keys are kept.
    assert_eq!(
        assert_same_decryption(&mut b, &mut b2, &held[7]).unwrap(),
        [7]
    );
    assert_eq!(b2.stored_skipped_keys(), 3);
    let mut b2 = reload(&b2);
    assert_eq!(
        assert_same_decryption(&mut b, &mut b2, &held[3]),
        Err(Error::DuplicateOrExpired)
    );
    for (i, message) in (4u8..).zip(&held[4..7]) {
        assert_eq!(
            assert_same_decryption(&mut b, &mut b2, message).unwrap(),
            [i]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Key and store round trips
// ---------------------------------------------------------------------------------------

#[test]
fn identity_key_pair_round_trip_behaves_identically() {
    let mut rng = rng(7);
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let bytes = id.to_bytes().to_vec();
    assert_eq!(bytes.len(), 34);
    assert_eq!(bytes[..2], [STORAGE_VERSION, TYPE_IDENTITY]);
    let loaded = IdentityKeyPair::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.to_bytes().to_vec(), bytes);
    assert_eq!(loaded.public_key(), id.public_key());
    // Same signatures (Ed25519 is deterministic) ...
    let mut r1 = rng.clone();
    let mut r2 = rng.clone();
    let spk1 = SignedPreKey::generate(&id, SignedPreKeyId::from_u64(9), &mut r1).unwrap();
    let spk2 = SignedPreKey::generate(&loaded, SignedPreKeyId::from_u64(9), &mut r2).unwrap();
    assert_eq!(spk1.to_bytes().to_vec(), spk2.to_bytes().to_vec());
    // ... and the same X3DH: identical sessions from the same RNG state.
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob_spk = SignedPreKey::generate(&bob, SignedPreKeyId::from_u64(1), &mut rng).unwrap();
    let bundle = bundle_of(&bob, &bob_spk, None);
    let mut r1 = rng.clone();
    let mut r2 = rng.clone();
    let s1 = Session::initiate(&id, &bundle, &SessionOptions::new(), &mut r1).unwrap();
    let s2 = Session::initiate(&loaded, &bundle, &SessionOptions::new(), &mut r2).unwrap();
    assert_eq!(stored(&s1), stored(&s2));
}

#[test]
fn signed_and_one_time_prekey_round_trips_behave_identically() {
    let mut rng = rng(8);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let spk_id = SignedPreKeyId::from_u64(0x0102_0304_0506_0708);
    let spk = SignedPreKey::generate(&bob, spk_id, &mut rng).unwrap();
    let opk_id = OneTimePreKeyId::from_u64(0x0a0b_0c0d_0e0f_1011);
    let opk = OneTimePreKey::generate(opk_id, &mut rng).unwrap();

    // Ids are 64-bit, big-endian (profile v2, part 2): 2 + 8 + 32 + 64 = 106 bytes.
    let spk_bytes = spk.to_bytes().to_vec();
    assert_eq!(spk_bytes.len(), 2 + 8 + 32 + 64);
    assert_eq!(spk_bytes.len(), SPK);
    assert_eq!(
        spk_bytes[..10],
        [STORAGE_VERSION, TYPE_SIGNED_PREKEY, 1, 2, 3, 4, 5, 6, 7, 8]
    );
    let spk2 = SignedPreKey::from_bytes(&spk_bytes).unwrap();
    assert_eq!(spk2.to_bytes().to_vec(), spk_bytes);
    assert_eq!(spk2.id(), spk.id());
    assert_eq!(spk2.public_key(), spk.public_key());
    assert_eq!(spk2.signature(), spk.signature());

    let opk_bytes = opk.to_bytes().to_vec();
    assert_eq!(opk_bytes.len(), 2 + 8 + 32);
    assert_eq!(opk_bytes.len(), OPK);
    assert_eq!(
        opk_bytes[..10],
        [
            STORAGE_VERSION,
            TYPE_ONE_TIME_PREKEY,
            10,
            11,
            12,
            13,
            14,
            15,
            16,
            17
        ]
    );
    let opk2 = OneTimePreKey::from_bytes(&opk_bytes).unwrap();
    assert_eq!(opk2.to_bytes().to_vec(), opk_bytes);
    assert_eq!(opk2.id(), opk.id());
    assert_eq!(opk2.public_key(), opk.public_key());

    // The loaded keys make the same bundle, and accept a session made from the original's.
    let bundle = bundle_of(&bob, &spk, Some(&opk));
    let bundle2 = bundle_of(&bob, &spk2, Some(&opk2));
    assert_eq!(bundle.to_bytes(), bundle2.to_bytes());
    bundle2.verify().unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"to the loaded keys", &mut rng).unwrap();
    let accepted = Session::respond(
        &bob,
        |id| (id == spk2.id()).then_some(&spk2),
        |id| (id == opk2.id()).then_some(&opk2),
        &m,
        &SessionOptions::new(),
    )
    .unwrap();
    assert_eq!(accepted.plaintext, b"to the loaded keys");
    assert_eq!(accepted.used_one_time_prekey, Some(opk.id()));
    assert_eq!(accepted.session.id(), a.id());
}

#[test]
fn prekey_store_round_trip_behaves_identically() {
    let SampleStore {
        bob,
        mut store,
        first_signed,
        one_time,
    } = sample_store_with_ids(9);
    let bytes = store.to_bytes().to_vec();
    // Header (version, type, identity, replay capacity, one-time cap, next sequence,
    // current id, s), two signed prekeys with their times and no records, the standby with
    // its creation time, nine one-time prekeys with their sequence numbers and published
    // flags, and an empty post-quantum part.
    assert_eq!(
        bytes.len(),
        2 + IDENTITY
            + 4
            + 4
            + 8
            + 8
            + 4
            + 2 * (SPK + TIMES + 4)
            + STANDBY_SLOT
            + 4
            + 9 * ONE_TIME_ENTRY
            + 9
            + 4
    );
    assert_eq!(bytes[..2], [STORAGE_VERSION, TYPE_LOCAL_DEVICE]);
    let layout = StoreLayout::parse(&bytes);
    assert_eq!(layout.encode(), bytes);
    // The device's identity key pair, as `IdentityKeyPair::to_bytes` stores it.
    assert_eq!(layout.identity, bob.to_bytes().to_vec());
    assert_eq!(
        bytes[STORE_IDENTITY..STORE_IDENTITY + IDENTITY],
        bob.to_bytes()[..]
    );
    assert_eq!(store.identity_key(), bob.public_key());
    assert_eq!(layout.capacity, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY);
    assert_eq!(get_u32(&bytes, STORE_CAPACITY), layout.capacity);
    assert_eq!(layout.one_time_cap, DEFAULT_ONE_TIME_PREKEY_CAP);
    assert_eq!(layout.one_time_cap, store.one_time_prekey_cap());
    assert_eq!(get_u32(&bytes, STORE_ONE_TIME_CAP), layout.one_time_cap);
    assert_eq!(get_u64(&bytes, STORE_NEXT_SEQUENCE), layout.next_sequence);
    assert_eq!(get_u64(&bytes, STORE_CURRENT), layout.current);
    assert_eq!(get_u32(&bytes, STORE_SIGNED_COUNT), 2);
    assert_eq!(
        bytes[STORE_SIGNED..STORE_SIGNED + 2],
        [STORAGE_VERSION, TYPE_SIGNED_PREKEY]
    );
    assert_eq!(layout.next_sequence, 10);
    assert_eq!(layout.current, store.current_signed_prekey().id().to_u64());
    // Times: every key was made at time 0 (`device_of`, `rotate_signed_prekey(0, ..)`); the
    // first signed prekey was replaced at 0, the current one has no replacement time.
    for entry in &layout.signed {
        assert_eq!(entry.created, 0);
        let replaced = if entry.id() == layout.current {
            ABSENT
        } else {
            at(0)
        };
        assert_eq!(entry.superseded, replaced);
    }
    assert_eq!(layout.signed_ids_sorted(), layout.signed_ids());
    let sequences: Vec<u64> = layout.one_time.iter().map(|e| e.sequence).collect();
    let mut by_id: Vec<u64> = one_time.iter().map(|id| id.to_u64()).collect();
    by_id.sort_unstable();
    assert_eq!(layout.one_time_ids(), by_id, "stored by id");
    // None published yet.
    assert!(layout.one_time.iter().all(|e| e.published == 0));
    // The sequence numbers of the stored keys: 0..=9 without the removed fourth.
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert_eq!(layout.standby_flag, 1);
    assert_eq!(
        layout.standby_id(),
        Some(store.standby_signed_prekey().unwrap().id().to_u64())
    );
    assert_eq!(
        get_u64(&layout.standby, SPK),
        0,
        "the standby's creation time"
    );

    let mut store2 = LocalDevice::from_bytes(&bytes).unwrap();
    assert_eq!(store2.to_bytes().to_vec(), bytes);
    assert_eq!(
        store2.current_signed_prekey().id(),
        store.current_signed_prekey().id()
    );
    assert!(store2.signed_prekey(first_signed).is_some());
    assert_eq!(
        store2.standby_signed_prekey().map(SignedPreKey::id),
        store.standby_signed_prekey().map(SignedPreKey::id)
    );
    assert_eq!(store2.replay_capacity(), store.replay_capacity());
    let ids = |s: &LocalDevice| {
        s.one_time_prekeys()
            .map(OneTimePreKey::id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&store2), ids(&store));
    // Oldest first: the order they were generated in, from the stored sequence numbers.
    assert_eq!(ids(&store2), one_time);
    let sixth = one_time[5];
    assert_eq!(
        store2.bundle(Some(sixth)).unwrap().to_bytes(),
        store.bundle(Some(sixth)).unwrap().to_bytes()
    );
    // Both accept the same initial message into the same session and the same store.
    let mut rng = rng(10);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bundle = store.bundle(Some(sixth)).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"hi store", &mut rng).unwrap();
    let s1 = store.accept(&m, &SessionOptions::new()).unwrap();
    let s2 = store2.accept(&m, &SessionOptions::new()).unwrap();
    assert_eq!(s1.plaintext, s2.plaintext);
    assert_eq!(s1.notice, s2.notice);
    assert_eq!(stored(&s1.session), stored(&s2.session));
    assert_eq!(store.to_bytes().to_vec(), store2.to_bytes().to_vec());
    // The consumed one-time prekey stays consumed after a reload.
    let mut store3 = LocalDevice::from_bytes(&store2.to_bytes()).unwrap();
    assert!(store3.one_time_prekey(sixth).is_none());
    assert_eq!(
        store3
            .accept(&m, &SessionOptions::new())
            .map(|acc| acc.plaintext),
        Err(Error::UnknownOneTimePreKey(sixth))
    );
    // After a reload the store goes on as the original: the same RNG draws the same new
    // ids (never 0, none held), with the next sequence numbers, and the same rotation.
    let mut rng2 = rng.clone();
    let fresh: Vec<OneTimePreKeyId> = store3
        .generate_one_time_prekeys(2, &mut rng)
        .unwrap()
        .created;
    let fresh2: Vec<OneTimePreKeyId> = store
        .generate_one_time_prekeys(2, &mut rng2)
        .unwrap()
        .created;
    assert_eq!(fresh, fresh2);
    for id in &fresh {
        assert!(id.to_u64() != 0 && !one_time.contains(id));
    }
    assert_eq!(ids(&store3)[ids(&store3).len() - 2..], fresh[..]);
    let layout = StoreLayout::parse(&store3.to_bytes());
    assert_eq!(layout.next_sequence, 12);
    // The same rotation: a fresh current signed prekey (never 0, none held), the standby
    // kept.
    let standby = store3.standby_signed_prekey().unwrap().id();
    let held: Vec<SignedPreKeyId> = store3
        .previous_signed_prekeys()
        .map(SignedPreKey::id)
        .chain([store3.current_signed_prekey().id(), standby])
        .collect();
    let rotated = store3.rotate_signed_prekey(0, &mut rng).unwrap();
    assert!(rotated.to_u64() != 0 && !held.contains(&rotated));
    assert_eq!(store3.current_signed_prekey().id(), rotated);
    assert_eq!(store3.standby_signed_prekey().unwrap().id(), standby);
    assert_eq!(store.rotate_signed_prekey(0, &mut rng2).unwrap(), rotated);
    assert_eq!(store3.to_bytes().to_vec(), store.to_bytes().to_vec());
    assert!(store3.signed_prekey(first_signed).is_some());
}

/// Replay records under two signed prekeys, the replay capacity, the standby and the
/// sequence numbers survive storing: the loaded store refuses the same replays
/// (`DuplicateOrExpired`) and the same full signed prekey (`StoreFull`), switches to its
/// standby at the same record, and stores to the same bytes at every step.
#[test]
fn prekey_store_with_replay_records_round_trips_behaves_identically() {
    let RecordsStore {
        bob,
        alice,
        mut store,
        full,
        current,
        recorded,
        unrecorded_for_full,
        mut rng,
    } = records_store(40);
    let bytes = store.to_bytes().to_vec();
    let layout = StoreLayout::parse(&bytes);
    assert_eq!(layout.encode(), bytes);
    assert_eq!(layout.identity, bob.to_bytes().to_vec());
    assert_eq!(layout.capacity, 2);
    assert_eq!(layout.current, current.to_u64());
    // Two accepted signed prekeys, strictly increasing by id, with 2 and 1 records.
    let records: Vec<(u64, usize)> = layout
        .signed
        .iter()
        .map(|e| (e.id(), e.records.len()))
        .collect();
    let mut expected = vec![(full.to_u64(), 2), (current.to_u64(), 1)];
    expected.sort_unstable();
    assert_eq!(records, expected);
    for entry in &layout.signed {
        assert!(
            entry.records.windows(2).all(|w| w[0] < w[1]),
            "records sorted"
        );
    }
    // The full one was replaced by the switch inside `accept` (no clock), then stamped by
    // the maintenance that followed (at time 0); the current one has no replacement time.
    let mut l = layout.clone();
    assert_eq!(l.signed_entry(full.to_u64()).superseded, at(0));
    assert_eq!(l.signed_entry(current.to_u64()).superseded, ABSENT);
    // The records are the initiators' base keys.
    let base_key = |m: &[u8]| match Message::parse(m).unwrap() {
        Message::Initial(i) => i.base_key().to_bytes(),
        _ => panic!("not an initial message"),
    };
    let under = |id: SignedPreKeyId| {
        layout
            .signed
            .iter()
            .find(|e| e.id() == id.to_u64())
            .map(|e| e.records.clone())
            .unwrap()
    };
    assert!(under(full).contains(&base_key(&recorded[0])));
    assert_eq!(under(current), [base_key(&recorded[1])]);
    let standby = SignedPreKeyId::from_u64(layout.standby_id().unwrap());
    assert_ne!(standby, full);
    assert_ne!(standby, current);
    // Five one-time prekeys were generated (sequence numbers 0..=4), two used.
    assert_eq!(layout.next_sequence, 5);
    let mut sequences: Vec<u64> = layout.one_time.iter().map(|e| e.sequence).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, [1, 2, 4]);

    let mut loaded = LocalDevice::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.to_bytes().to_vec(), bytes);
    assert_eq!(loaded.replay_capacity(), 2);
    assert_eq!(loaded.replay_records(), 3);
    assert_eq!(loaded.current_signed_prekey().id(), current);
    assert_eq!(
        loaded.standby_signed_prekey().map(SignedPreKey::id),
        Some(standby)
    );
    // Both refuse the recorded messages, and a new session under the full signed prekey,
    // without changing.
    for m in &recorded {
        assert_eq!(
            store.accept(m, &SessionOptions::new()).err(),
            Some(Error::DuplicateOrExpired)
        );
        assert_eq!(
            loaded.accept(m, &SessionOptions::new()).err(),
            Some(Error::DuplicateOrExpired)
        );
    }
    for s in [&mut store, &mut loaded] {
        assert_eq!(
            s.accept(&unrecorded_for_full, &SessionOptions::new()).err(),
            Some(Error::StoreFull)
        );
    }
    assert_eq!(loaded.to_bytes().to_vec(), bytes);
    assert_eq!(store.to_bytes().to_vec(), bytes);
    // The next session without a one-time prekey fills the current signed prekey: both
    // switch to the stored standby, with the same notice.
    let bundle = loaded.bundle(None).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"fills the second", &mut rng).unwrap();
    let n1 = store.accept(&m, &SessionOptions::new()).unwrap();
    let n2 = loaded.accept(&m, &SessionOptions::new()).unwrap();
    let switched = Some(StoreNotice::SignedPreKeySwitched {
        previous: current,
        current: standby,
    });
    assert_eq!(n1.notice, switched);
    assert_eq!(n2.notice, switched);
    assert_eq!(stored(&n1.session), stored(&n2.session));
    assert_eq!(loaded.to_bytes().to_vec(), store.to_bytes().to_vec());
    let loaded = LocalDevice::from_bytes(&loaded.to_bytes()).unwrap();
    assert_eq!(loaded.current_signed_prekey().id(), standby);
    assert!(loaded.standby_signed_prekey().is_none());
    let mut layout = StoreLayout::parse(&loaded.to_bytes());
    assert_eq!(layout.standby_flag, 0);
    assert_eq!(layout.standby, [0u8; SPK + 8]);
    assert_eq!(layout.signed.len(), 3);
    // The switch inside `accept` has no clock: the replaced one has no replacement time
    // yet, which loads (until maintenance stamps it, SPEC.md §8.5) ...
    assert_eq!(layout.signed_entry(current.to_u64()).superseded, ABSENT);
    assert_eq!(layout.current, standby.to_u64());
    // ... and the next maintenance stamps it with its `now`.
    let mut maintained = loaded;
    maintained
        .maintain(1_000, &PreKeyPolicy::default(), &mut rng)
        .unwrap();
    let mut layout = StoreLayout::parse(&maintained.to_bytes());
    assert_eq!(layout.signed_entry(current.to_u64()).superseded, at(1_000));
    assert_eq!(layout.signed_entry(full.to_u64()).superseded, at(0));
    assert_eq!(layout.signed_entry(standby.to_u64()).superseded, ABSENT);
    let again = LocalDevice::from_bytes(&maintained.to_bytes()).unwrap();
    assert!(*again.to_bytes() == *maintained.to_bytes());
}

#[test]
fn bundle_round_trip() {
    let (bob, store) = sample_store(11);
    let third = store.one_time_prekeys().nth(2).unwrap().id();
    for one_time in [Some(third), None] {
        let bundle = store.bundle(one_time).unwrap();
        let bytes = bundle.to_bytes();
        assert_eq!(bytes.len(), BUNDLE_LENGTH);
        assert_eq!(BUNDLE_LENGTH, 179);
        assert_eq!(bytes[..2], [BUNDLE_VERSION, TYPE_BUNDLE]);
        let loaded = PreKeyBundle::from_bytes(&bytes).unwrap();
        assert_eq!(loaded, bundle);
        assert_eq!(loaded.to_bytes(), bytes);
        assert_eq!(loaded.one_time_prekey_id(), one_time);
        assert_eq!(
            loaded.signed_prekey_id(),
            store.current_signed_prekey().id()
        );
        assert_eq!(
            bytes[34..42],
            store.current_signed_prekey().id().to_u64().to_be_bytes()
        );
        assert_eq!(loaded.identity_key(), bob.public_key());
        loaded.verify().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Strict loading
// ---------------------------------------------------------------------------------------

#[test]
fn every_truncation_is_rejected() {
    for (name, type_byte, bytes, local) in sample_blobs() {
        assert!(load_as(type_byte, &bytes, &local).is_ok(), "{name}");
        for len in 0..bytes.len() {
            assert_eq!(
                load_as(type_byte, &bytes[..len], &local),
                Err(Error::Truncated),
                "{name}: truncated to {len} of {} bytes",
                bytes.len()
            );
        }
    }
}

#[test]
fn appended_bytes_are_rejected() {
    for (name, type_byte, bytes, local) in sample_blobs() {
        for extra in [&[0u8][..], &[0xff], &[0; ENTRY], &[1; 1000]] {
            let longer = [&bytes[..], extra].concat();
            assert_eq!(
                load_as(type_byte, &longer, &local),
                Err(Error::TrailingData),
                "{name} + {} bytes",
                extra.len()
            );
        }
    }
}

#[test]
fn wrong_type_byte_is_rejected() {
    for (name, type_byte, bytes, local) in sample_blobs() {
        for other in 0..=u8::MAX {
            if same_loader(type_byte).contains(&other) {
                continue; // see `sibling_type_bytes_are_typed_errors_or_canonical`
            }
            let changed = with(&bytes, |b| b[1] = other);
            assert_eq!(
                load_as(type_byte, &changed, &local),
                Err(Error::UnexpectedType(other)),
                "{name} with type {other:#x}"
            );
        }
        // Loaded as any other type, unchanged.
        for &loader in LOADER_TYPES {
            if !same_loader(loader).contains(&type_byte) {
                assert_eq!(
                    load_as(loader, &bytes, &local),
                    Err(Error::UnexpectedType(type_byte)),
                    "{name} loaded as {loader:#x}"
                );
            }
        }
    }
}

/// A loader that reads two layouts (classical and PQXDH sessions, and bundles),
/// given the other one's type byte: a typed error, or (where the layouts coincide, as for
/// a session not awaiting its reply) a valid object that stores back to the same bytes.
#[test]
fn sibling_type_bytes_are_typed_errors_or_canonical() {
    let mut loaded = 0;
    for (name, type_byte, bytes, local) in sample_blobs() {
        for &sibling in same_loader(type_byte) {
            if sibling == type_byte {
                continue;
            }
            let changed = with(&bytes, |b| b[1] = sibling);
            let reencoded = match type_byte {
                TYPE_SESSION | TYPE_SESSION_PQ | TYPE_SESSION_HE => {
                    Session::from_bytes(&changed, &local).map(|s| stored(&s))
                }
                _ => PreKeyBundle::from_bytes(&changed).map(|b| b.to_bytes()),
            };
            match reencoded {
                Ok(again) => {
                    loaded += 1;
                    assert_eq!(again, changed, "{name} as {sibling:#x}");
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        Error::Truncated
                            | Error::TrailingData
                            | Error::InvalidEncoding
                            | Error::InvalidPublicKey
                            | Error::InvalidLimits
                    ),
                    "{name} as {sibling:#x}: {e:?}"
                ),
            }
        }
    }
    if cfg!(feature = "pqxdh") {
        assert!(loaded > 0);
    }
}

#[test]
fn other_version_byte_is_rejected() {
    for (name, type_byte, bytes, local) in sample_blobs() {
        assert_eq!(bytes[0], version_of(type_byte), "{name}");
        for version in (0..=u8::MAX).filter(|v| *v != version_of(type_byte)) {
            let changed = with(&bytes, |b| b[0] = version);
            assert_eq!(
                load_as(type_byte, &changed, &local),
                Err(Error::UnsupportedVersion(version)),
                "{name} with version {version}"
            );
        }
    }
}

/// Every object of v1 (version byte `0x01`, the previous profile, never released) is
/// refused by its version byte before anything else is read: stored objects, bundles, a
/// session in v1's own layout (without the padding byte) and sealed blobs.
#[test]
fn v1_objects_are_unsupported_version_1() {
    assert_eq!([STORAGE_VERSION, BUNDLE_VERSION], [0x02, 0x02]);
    for (name, type_byte, bytes, local) in sample_blobs() {
        let v1 = with(&bytes, |b| b[0] = V1);
        assert_eq!(
            load_as(type_byte, &v1, &local),
            Err(Error::UnsupportedVersion(1)),
            "{name}"
        );
    }
    // A session in v1's layout: 296 bytes without skipped keys: a role byte (1 initiator,
    // 2 responder), the local and remote identities and EK_A, the pending block (a
    // responder's is all zeros: flag, 4-byte SPK id, flag, 4-byte OPK id), the limits and
    // no padding byte, RK, DHs, then DHr, CKs and CKr each as a flag and 32 bytes, the
    // counters, the skipped keys. Built from this responder's v2 fields.
    let (bytes, local) = skipped_session_bytes();
    let l = layout(&bytes);
    let v1_parts: [&[u8]; 13] = [
        &[V1, TYPE_SESSION, 2][..],
        local.as_bytes(),
        &bytes[REMOTE_IDENTITY..PENDING],
        &[0; 1 + 4 + 1 + 4],
        &bytes[l.max_skip()..l.padding()],
        &bytes[l.root_key()..l.dhr()],
        &[1],
        &bytes[l.dhr()..l.cks()],
        &[1],
        &bytes[l.cks()..l.ckr()],
        &[1],
        &bytes[l.ckr()..l.ns()],
        &bytes[l.ns()..],
    ];
    let v1_layout = v1_parts.concat();
    assert_eq!(v1_layout.len(), 296 + 6 * ENTRY);
    assert_eq!(
        load_session(&v1_layout, &local).err(),
        Some(Error::UnsupportedVersion(1))
    );
    // Relabelled 0x02 it is not a v2 session (every field after the type misplaced).
    assert!(load_session(&with(&v1_layout, |b| b[0] = STORAGE_VERSION), &local).is_err());
    // Sealed blobs of v1.
    let mut rng = rng(32);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, _, sealed, local) in sealed_samples(&key, &mut rng) {
        let v1 = with(&sealed, |b| b[0] = V1);
        assert_eq!(
            open_as(&key, type_byte, &v1, &local),
            Err(Error::UnsupportedVersion(1)),
            "{name}"
        );
    }
}

/// A stored session's padding byte for each kind: classical, header-encrypted (a flags
/// byte earlier in the layout), and with PQXDH a session awaiting its reply (the KEM
/// ciphertext before the limits), with the header in the clear and encrypted.
fn padding_samples(seed: u64) -> Vec<(&'static str, Session, usize)> {
    let (_, _, classical, _) = accepted_pair(seed);
    let (_, header_encrypted, _, _) = accepted_pair_in_mode(seed + 1, false, true);
    assert!(header_encrypted.is_header_encrypted());
    // Bob's classical session (a responder, no pending fields): the padding byte right
    // after the limits, at 75.
    let padding = PENDING + 8;
    assert_eq!(padding, 75);
    // Alice's header-encrypted session, awaiting a reply (her sending chain, both prekey
    // ids), holds no skipped keys: 236 + 135 = 371 bytes, the padding byte after the flags
    // byte and the pending fields.
    let he_bytes = stored(&header_encrypted);
    assert_eq!(
        he_bytes[STATE],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    assert_eq!(
        he_bytes.len(),
        SESSION_BASE + CHAIN_KEY + 16 + HE_SHIFT + HE_FIXED
    );
    assert_eq!(SESSION_BASE + CHAIN_KEY + 16 + HE_SHIFT + HE_FIXED, 371);
    #[allow(unused_mut)]
    let mut samples = vec![
        ("classical", classical, padding),
        (
            "header-encrypted",
            header_encrypted,
            padding + HE_SHIFT + 16,
        ),
    ];
    #[cfg(feature = "pqxdh")]
    for (name, header_encryption) in [
        ("PQXDH awaiting a reply", false),
        ("header-encrypted PQXDH awaiting a reply", true),
    ] {
        let (_, a, _, _) = accepted_pair_in_mode(seed + 2, true, header_encryption);
        assert!(a.awaiting_reply() && a.is_post_quantum());
        let shift = if header_encryption { HE_SHIFT } else { 0 };
        samples.push((name, a, padding + shift + 16 + PQ_PENDING));
    }
    samples
}

/// The padding policy round-trips through its stored byte in every session kind: the
/// default is Padmé (`0x01`), `set_padding(Padding::None)` changes that byte (`0x00`) and
/// nothing else, a loaded session has the stored policy and pads as it says, and sealing
/// keeps it. Sessions made with `SessionOptions::padding` are in `sample_sessions`.
#[test]
fn padding_byte_round_trips() {
    let key = StorageKey::from_bytes([0x33; 32]);
    let mut seal_rng = rng(34);
    for (name, mut session, at) in padding_samples(33) {
        assert_eq!(session.padding(), Padding::Padme, "{name}: the default");
        let local = *session.local_identity();
        let padme = stored(&session);
        assert_eq!(at, layout(&padme).padding(), "{name}");
        assert_eq!(at, padding_offset(&padme), "{name}");
        assert_eq!(padme[at], PADDING_PADME, "{name}");
        session.set_padding(Padding::None);
        assert_eq!(session.padding(), Padding::None);
        let none = stored(&session);
        assert_eq!(none[at], PADDING_NONE, "{name}");
        assert_eq!(with(&padme, |b| b[at] = PADDING_NONE), none, "{name}");
        assert_eq!(load(&padme, &local).padding(), Padding::Padme, "{name}");
        let mut loaded = load(&none, &local);
        assert_eq!(loaded.padding(), Padding::None, "{name}");
        let opened = key
            .open_session(
                &key.seal(&loaded, CONTEXT, &mut seal_rng).unwrap(),
                CONTEXT,
                &local,
            )
            .unwrap();
        assert_eq!(opened.padding(), Padding::None, "{name}");
        assert_eq!(stored(&opened), none, "{name}");

        // The loaded session sends what the original sends: the plaintext, the end
        // marker and the tag, unpadded.
        let plaintext = b"padding";
        let m = assert_same_encryption(&mut session, &mut loaded, &mut rng(35), plaintext);
        let body = Message::parse(&m).unwrap().ciphertext_len();
        assert_eq!(body, plaintext.len() + 1 + TAG, "{name}");
        // Back to Padmé: the byte is 0x01 again, and the next message is padded to 64.
        loaded.set_padding(Padding::Padme);
        let mut loaded = reload(&loaded);
        assert_eq!(stored(&loaded)[at], PADDING_PADME, "{name}");
        let m = loaded.encrypt(plaintext, &mut rng(36)).unwrap();
        let body = Message::parse(&m).unwrap().ciphertext_len();
        assert_eq!(body, 64 + TAG, "{name}");
    }
}

/// The padding byte is `0x00` or `0x01`; any other value is `InvalidEncoding`, in every
/// session kind.
#[test]
fn padding_byte_other_than_none_or_padme_is_invalid_encoding() {
    let mut blobs: Vec<(&str, Vec<u8>, usize, IdentityKey)> = padding_samples(37)
        .into_iter()
        .map(|(name, session, at)| (name, stored(&session), at, *session.local_identity()))
        .collect();
    let (skipped, local) = skipped_session_bytes();
    let at = layout(&skipped).padding();
    blobs.push(("with skipped keys", skipped, at, local));
    let unpadded = sample_session("responder without padding");
    let bytes = stored(&unpadded);
    let at = layout(&bytes).padding();
    blobs.push(("without padding", bytes, at, *unpadded.local_identity()));
    for (name, bytes, at, local) in blobs {
        for value in 0..=u8::MAX {
            let changed = with(&bytes, |b| b[at] = value);
            match value {
                PADDING_NONE => {
                    assert_eq!(load(&changed, &local).padding(), Padding::None, "{name}")
                }
                PADDING_PADME => {
                    assert_eq!(load(&changed, &local).padding(), Padding::Padme, "{name}")
                }
                _ => assert_eq!(
                    load_session(&changed, &local).err(),
                    Some(Error::InvalidEncoding),
                    "{name}: padding byte {value:#04x}"
                ),
            }
        }
    }
}

/// The stored session with skipped keys used by the corruption tests (Bob's: a responder
/// with both chains, 6 skipped keys), and the identity key it loads with.
fn skipped_session_bytes() -> (Vec<u8>, IdentityKey) {
    let b = conversation_with_skipped_keys(12).b;
    let bytes = stored(&b);
    assert_eq!(
        bytes[STATE],
        STATE_RESPONDER | STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN
    );
    assert_eq!(get_u32(&bytes, layout(&bytes).count()), 6);
    (bytes, *b.local_identity())
}

/// Alice's stored session once she has Bob's reply (her receiving chain, her sending chain
/// deferred), and the identity key it loads with.
fn established_initiator_bytes() -> (Vec<u8>, IdentityKey) {
    let (_, a, _, _) = established_pair(13);
    (stored(&a), *a.local_identity())
}

/// A sample session's stored bytes and the identity key it loads with.
fn sample_bytes(name: &str) -> (Vec<u8>, IdentityKey) {
    let session = sample_session(name);
    (stored(&session), *session.local_identity())
}

#[test]
fn session_corrupt_state_flags_are_rejected() {
    let (responder, bob) = skipped_session_bytes();
    let (initiator, alice) = sample_bytes("initiator awaiting a reply");
    assert_eq!(
        initiator[STATE],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    let (established, established_local) = established_initiator_bytes();
    assert_eq!(established[STATE], STATE_RECEIVING_CHAIN);
    // A bit no session sets, on its own or with the valid ones.
    for (name, bytes, local) in [
        ("responder", &responder, &bob),
        ("initiator awaiting", &initiator, &alice),
        ("established initiator", &established, &established_local),
    ] {
        for bit in (0..8).map(|i| 1u8 << i).filter(|b| b & STATE_UNKNOWN != 0) {
            for value in [bit, bytes[STATE] | bit, 0xff] {
                assert_eq!(
                    load_session(&with(bytes, |b| b[STATE] = value), local).err(),
                    Some(Error::InvalidEncoding),
                    "{name}: state flags {value:#04x}"
                );
            }
        }
        // A one-time prekey without pending fields (0x04 without 0x02).
        let value = (bytes[STATE] & !STATE_AWAITING_REPLY) | STATE_ONE_TIME_PREKEY;
        assert_eq!(
            load_session(&with(bytes, |b| b[STATE] = value), local).err(),
            Some(Error::InvalidEncoding),
            "{name}: state flags {value:#04x}"
        );
    }
    // A responder never has pending initial-message fields (0x01 with 0x02), whether the
    // flag is added to a responder or the role of an initiator awaiting a reply is flipped.
    assert_eq!(
        load_session(
            &with(&responder, |b| b[STATE] |= STATE_AWAITING_REPLY),
            &bob
        )
        .err(),
        Some(Error::InvalidEncoding)
    );
    assert_eq!(
        load_session(&with(&initiator, |b| b[STATE] |= STATE_RESPONDER), &alice).err(),
        Some(Error::InvalidEncoding)
    );
    // Every value of the state flags: the bytes' own loads; the combinations no session
    // has are InvalidEncoding; the others describe another layout of the same bytes, which
    // is a typed error or (where it happens to fit) a canonical encoding.
    for (name, bytes, local) in [
        ("responder", &responder, &bob),
        ("initiator awaiting", &initiator, &alice),
        ("established initiator", &established, &established_local),
    ] {
        for value in 0..=u8::MAX {
            let changed = with(bytes, |b| b[STATE] = value);
            let impossible = value & STATE_UNKNOWN != 0
                || (value & STATE_ONE_TIME_PREKEY != 0 && value & STATE_AWAITING_REPLY == 0)
                || (value & STATE_RESPONDER != 0 && value & STATE_AWAITING_REPLY != 0);
            match load_session(&changed, local) {
                Ok(session) => {
                    assert!(!impossible, "{name}: state flags {value:#04x} loaded");
                    assert_eq!(stored(&session), changed, "{name}: {value:#04x}");
                }
                Err(e) if impossible => {
                    assert_eq!(e, Error::InvalidEncoding, "{name}: {value:#04x}")
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        Error::InvalidEncoding
                            | Error::InvalidLimits
                            | Error::InvalidPublicKey
                            | Error::Truncated
                            | Error::TrailingData
                    ),
                    "{name}: state flags {value:#04x}: {e:?}"
                ),
            }
        }
    }
    // An absent field takes no bytes: the flag of a chain key (or of the one-time prekey
    // id) set without its bytes reads the next fields in its place.
    let (fresh_responder, fresh_bob) = sample_bytes("fresh responder");
    assert_eq!(fresh_responder[STATE] & STATE_SENDING_CHAIN, 0);
    assert_eq!(fresh_responder.len(), SESSION_BASE + CHAIN_KEY);
    assert_eq!(
        load_session(
            &with(&fresh_responder, |b| b[STATE] |= STATE_SENDING_CHAIN),
            &fresh_bob
        )
        .err(),
        Some(Error::Truncated)
    );
    // With the bytes inserted where the layout puts them, the same flag loads: a canonical
    // session with that field.
    let l = layout(&fresh_responder);
    let with_cks = with(&fresh_responder, |b| {
        b[STATE] |= STATE_SENDING_CHAIN;
        b.splice(l.cks()..l.cks(), [0x3c; CHAIN_KEY]);
    });
    assert_eq!(stored(&load(&with_cks, &fresh_bob)), with_cks);
    let (no_opk, no_opk_alice) = sample_bytes("initiator without one-time prekey");
    assert_eq!(no_opk[STATE], STATE_AWAITING_REPLY | STATE_SENDING_CHAIN);
    let with_opk = with(&no_opk, |b| {
        b[STATE] |= STATE_ONE_TIME_PREKEY;
        b.splice(PENDING + 8..PENDING + 8, 42u64.to_be_bytes());
    });
    assert_eq!(layout(&with_opk).pending, 16);
    assert_eq!(stored(&load(&with_opk, &no_opk_alice)), with_opk);
    // And the reverse: a field's bytes left in place without its flag are read as the
    // next fields, and refused.
    assert!(load_session(
        &with(&initiator, |b| b[STATE] &= !STATE_ONE_TIME_PREKEY),
        &alice
    )
    .is_err());
}

#[test]
fn session_inconsistent_ratchet_state_is_rejected() {
    let (established, alice) = established_initiator_bytes();
    let l = layout(&established);
    // There is no absent peer ratchet key: DHr is always 32 bytes, and all zeros is not a
    // public key.
    let no_dhr = with(&established, |b| b[l.dhr()..l.dhr() + 32].fill(0));
    assert_eq!(
        load_session(&no_dhr, &alice).err(),
        Some(Error::InvalidPublicKey)
    );
    // An absent chain with a non-zero counter: CKs not stored with Ns != 0, CKr not stored
    // with Nr != 0.
    let (fresh_responder, bob) = sample_bytes("fresh responder");
    let l = layout(&fresh_responder);
    assert!(!l.cks);
    let bad = with(&fresh_responder, |b| put_u32(b, l.ns(), 1));
    assert_eq!(load_session(&bad, &bob).err(), Some(Error::InvalidEncoding));
    let (fresh_initiator, fresh_alice) = sample_bytes("fresh initiator");
    let l = layout(&fresh_initiator);
    assert!(l.cks && !l.ckr);
    let bad = with(&fresh_initiator, |b| put_u32(b, l.nr(), 1));
    assert_eq!(
        load_session(&bad, &fresh_alice).err(),
        Some(Error::InvalidEncoding)
    );
    // The same counters with their chains stored load.
    load(
        &with(&fresh_initiator, |b| put_u32(b, l.ns(), 1)),
        &fresh_alice,
    );
    // Identical local and remote identities: loaded with the stored remote identity as
    // the local one.
    let remote =
        IdentityKey::from_bytes(established[REMOTE_IDENTITY..BASE_KEY].try_into().unwrap())
            .unwrap();
    assert_eq!(
        load_session(&established, &remote).err(),
        Some(Error::InvalidEncoding)
    );
}

/// A stored session does not hold the local identity key, so loading cannot tell another
/// device's key from the right one: such a session loads, and then authenticates nothing
/// (its associated data differs from the peer's): every message either way is
/// `DecryptionFailed`, without a panic and without changing it. The right key still works.
#[test]
fn session_loaded_with_another_devices_key_fails_to_decrypt() {
    let carol = *IdentityKeyPair::generate(&mut rng(57))
        .unwrap()
        .public_key();
    let mut modes = vec![(false, false), (false, true)];
    if cfg!(feature = "pqxdh") {
        modes.extend([(true, false), (true, true)]);
    }
    for (post_quantum, header_encryption) in modes {
        let (_, mut a, b, mut rng) = established_pair_in_mode(58, post_quantum, header_encryption);
        let bytes = stored(&b);
        let mut wrong = load(&bytes, &carol);
        assert_eq!(wrong.local_identity(), &carol);
        assert_eq!(wrong.remote_identity(), b.remote_identity());
        let m = a.encrypt(b"to bob", &mut rng).unwrap();
        assert_rejected(&mut wrong, &m, Error::DecryptionFailed);
        // What it sends does not authenticate at Alice's either.
        let before = stored(&a);
        let from_wrong = wrong.encrypt(b"not bob", &mut rng).unwrap();
        assert_eq!(a.decrypt(&from_wrong), Err(Error::DecryptionFailed));
        assert_eq!(
            stored(&a),
            before,
            "post-quantum {post_quantum}, header encryption {header_encryption}"
        );
        // Bob's own copy, loaded with his key, decrypts Alice's message.
        let mut right = load(&bytes, b.local_identity());
        assert_eq!(right.decrypt(&m).unwrap(), b"to bob");
    }
}

#[test]
fn session_invalid_public_keys_are_rejected() {
    let (bytes, local) = skipped_session_bytes();
    let l = layout(&bytes);
    for key in invalid_identity_keys() {
        let at = REMOTE_IDENTITY;
        let bad = with(&bytes, |b| b[at..at + 32].copy_from_slice(&key));
        assert_eq!(
            load_session(&bad, &local).err(),
            Some(Error::InvalidPublicKey),
            "at {at}"
        );
    }
    for key in invalid_x25519_keys() {
        for at in [BASE_KEY, l.dhr(), l.entries(), l.entries() + 5 * ENTRY] {
            let bad = with(&bytes, |b| b[at..at + 32].copy_from_slice(&key));
            assert_eq!(
                load_session(&bad, &local).err(),
                Some(Error::InvalidPublicKey),
                "key {key:02x?} at {at}"
            );
        }
    }
}

#[test]
fn session_limits_above_caps_are_rejected() {
    let (bytes, local) = established_initiator_bytes();
    let l = layout(&bytes);
    for (at, cap) in [
        (l.max_skip(), MAX_SKIP_CAP),
        (l.max_stored(), MAX_STORED_SKIPPED_CAP),
    ] {
        for value in [cap + 1, u32::MAX] {
            let bad = with(&bytes, |b| put_u32(b, at, value));
            assert_eq!(
                load_session(&bad, &local).err(),
                Some(Error::InvalidLimits),
                "{value} at {at}"
            );
        }
        let at_cap = with(&bytes, |b| put_u32(b, at, cap));
        load(&at_cap, &local);
    }
    // Zero limits are valid.
    let zero = with(&bytes, |b| b[l.max_skip()..l.padding()].fill(0));
    assert_eq!(load(&zero, &local).limits(), Limits::new(0, 0));
}

#[test]
fn session_skipped_key_count_is_checked() {
    let (bytes, local) = skipped_session_bytes();
    let l = layout(&bytes);
    let count_at = l.count();
    // Above max_stored_skipped (the default 2000), up to u32::MAX.
    for count in [
        DEFAULT_MAX_STORED_SKIPPED + 1,
        MAX_STORED_SKIPPED_CAP + 1,
        u32::MAX,
    ] {
        let bad = with(&bytes, |b| put_u32(b, count_at, count));
        assert_eq!(
            load_session(&bad, &local).err(),
            Some(Error::InvalidEncoding),
            "count {count}"
        );
    }
    // The stored limit lowered below the six stored keys.
    let bad = with(&bytes, |b| put_u32(b, l.max_stored(), 5));
    assert_eq!(
        load_session(&bad, &local).err(),
        Some(Error::InvalidEncoding)
    );
    load(&with(&bytes, |b| put_u32(b, l.max_stored(), 6)), &local);
    // Inconsistent with the length.
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, count_at, 7)), &local).err(),
        Some(Error::Truncated)
    );
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, count_at, 5)), &local).err(),
        Some(Error::TrailingData)
    );
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, count_at, 0)), &local).err(),
        Some(Error::TrailingData)
    );
    assert_eq!(
        load_session(
            &with(&bytes, |b| put_u32(b, count_at, DEFAULT_MAX_STORED_SKIPPED)),
            &local
        )
        .err(),
        Some(Error::Truncated)
    );
    // Dropping whole entries consistently with the count is a valid (smaller) session.
    let mut fewer = bytes[..l.entries() + 2 * ENTRY].to_vec();
    put_u32(&mut fewer, count_at, 2);
    assert_eq!(load(&fewer, &local).stored_skipped_keys(), 2);
}

#[test]
fn session_duplicate_skipped_entries_are_rejected() {
    let (bytes, local) = skipped_session_bytes();
    let entries = layout(&bytes).entries();
    // The same entry twice.
    let bad = with(&bytes, |b| {
        let first = b[entries..entries + ENTRY].to_vec();
        b[entries + 3 * ENTRY..entries + 4 * ENTRY].copy_from_slice(&first);
    });
    assert_eq!(
        load_session(&bad, &local).err(),
        Some(Error::InvalidEncoding)
    );
    // The same (ratchet key, N) index with a different message key.
    let bad = with(&bytes, |b| {
        let index = b[entries..entries + 36].to_vec();
        b[entries + ENTRY..entries + ENTRY + 36].copy_from_slice(&index);
    });
    assert_ne!(
        bad[entries + 36..entries + ENTRY],
        bad[entries + ENTRY + 36..entries + 2 * ENTRY]
    );
    assert_eq!(
        load_session(&bad, &local).err(),
        Some(Error::InvalidEncoding)
    );
    // Same key, different N: fine.
    let ok = with(&bytes, |b| {
        let index = b[entries..entries + 32].to_vec();
        b[entries + ENTRY..entries + ENTRY + 32].copy_from_slice(&index);
        put_u32(b, entries + ENTRY + 32, 4_000_000);
    });
    load(&ok, &local);
}

#[test]
fn giant_counts_fail_fast() {
    let (bytes, local) = skipped_session_bytes();
    let l = layout(&bytes);
    let start = Instant::now();
    // count = u32::MAX with every limit at its cap: rejected on the count alone.
    let bad = with(&bytes[..l.entries()], |b| {
        put_u32(b, l.max_stored(), MAX_STORED_SKIPPED_CAP);
        put_u32(b, l.count(), u32::MAX);
    });
    assert_eq!(
        load_session(&bad, &local).err(),
        Some(Error::InvalidEncoding)
    );
    // The largest count the limits allow, without the entries: rejected on the length
    // before any entry is read or any room is reserved for them.
    let bad = with(&bytes[..l.entries()], |b| {
        put_u32(b, l.max_stored(), MAX_STORED_SKIPPED_CAP);
        put_u32(b, l.count(), MAX_STORED_SKIPPED_CAP);
    });
    assert_eq!(load_session(&bad, &local).err(), Some(Error::Truncated));
    // Larger than any stored session can be.
    let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
    assert_eq!(load_session(&huge, &local).err(), Some(Error::TooLarge));
    // The prekey store's counts: one-time prekeys, signed prekeys, replay records of a
    // signed prekey, post-quantum prekeys.
    let (_, store) = sample_store(14);
    let store_bytes = store.to_bytes().to_vec();
    let layout = StoreLayout::parse(&store_bytes);
    let one_time_count_at = layout.one_time_count_at();
    assert_eq!(get_u32(&store_bytes, one_time_count_at), 9);
    let records_at = STORE_SIGNED + SPK + TIMES;
    assert_eq!(get_u32(&store_bytes, records_at), 0);
    let pq_count_at = one_time_count_at + 4 + 9 * ONE_TIME_ENTRY + 9;
    assert_eq!(pq_count_at + 4, store_bytes.len());
    let load_store = |b: &[u8]| LocalDevice::from_bytes(b).err();
    for (what, at, counts, at_cap) in [
        ("one-time", one_time_count_at, [u32::MAX, 16_385], 16_384),
        ("signed", STORE_SIGNED_COUNT, [u32::MAX, 17], 16),
        ("records", records_at, [u32::MAX, 1_025], 1_024),
    ] {
        for count in counts {
            let bad = with(&store_bytes, |b| put_u32(b, at, count));
            assert_eq!(
                load_store(&bad),
                Some(Error::InvalidEncoding),
                "{what} {count}"
            );
        }
        // The largest count allowed, without its entries: refused on the length before
        // any room is reserved for them.
        let bad = with(&store_bytes[..at + 4], |b| put_u32(b, at, at_cap));
        assert_eq!(load_store(&bad), Some(Error::Truncated), "{what} {at_cap}");
    }
    for count in [u32::MAX, 1_041] {
        let bad = with(&store_bytes, |b| put_u32(b, pq_count_at, count));
        assert_eq!(load_store(&bad), Some(Error::InvalidEncoding), "q {count}");
    }
    let bad = with(&store_bytes[..pq_count_at + 4], |b| {
        put_u32(b, pq_count_at, 1_040)
    });
    let expected = if cfg!(feature = "pqxdh") {
        Error::Truncated
    } else {
        // A build without PQXDH loads only an empty post-quantum part.
        Error::InvalidEncoding
    };
    assert_eq!(load_store(&bad), Some(expected));
    // Generous: a load that reserved memory per claimed entry would abort or take far longer.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

/// Every single-byte change of a stored session either is rejected with an error fitting
/// the field it hits, or loads into a session that stores back to exactly the changed
/// bytes (the encoding is canonical: no two encodings of one state).
#[test]
fn session_byte_mutations_are_typed_errors_or_canonical() {
    let (bytes, local) = skipped_session_bytes();
    // Bob's responder session: no pending fields, both chain keys.
    let l = layout(&bytes);
    assert_eq!(l.pending, 0);
    assert!(l.cks && l.ckr);
    let entries = l.entries();
    let mut accepted = 0;
    for at in 0..bytes.len() {
        let allowed: &[Error] = match at {
            0 => &[Error::UnsupportedVersion(0)],
            1 => &[],
            // Unknown bits, or a responder awaiting a reply (a flipped role loads as an
            // initiator that has replied, the same bytes).
            STATE => &[Error::InvalidEncoding],
            REMOTE_IDENTITY..BASE_KEY => &[Error::InvalidPublicKey],
            BASE_KEY..PENDING => &[Error::InvalidPublicKey],
            _ if (l.max_skip()..l.padding()).contains(&at) => {
                &[Error::InvalidLimits, Error::InvalidEncoding]
            }
            // 0x00 and 0x01 are the two policies; anything else is not an encoding.
            _ if at == l.padding() => &[Error::InvalidEncoding],
            // Secrets: RK, DHs; any value loads.
            _ if (l.root_key()..l.dhr()).contains(&at) => &[],
            _ if (l.dhr()..l.cks()).contains(&at) => &[Error::InvalidPublicKey],
            // CKs and CKr, secrets.
            _ if (l.cks()..l.ns()).contains(&at) => &[],
            // Ns and Nr count the chains stored, with any value.
            _ if (l.ns()..l.pn()).contains(&at) => &[],
            _ if (l.pn()..l.count()).contains(&at) => &[],
            _ if (l.count()..entries).contains(&at) => &[
                Error::InvalidEncoding,
                Error::Truncated,
                Error::TrailingData,
            ],
            _ if (at - entries) % ENTRY < 32 => &[Error::InvalidPublicKey, Error::InvalidEncoding],
            _ if (at - entries) % ENTRY < 36 => &[Error::InvalidEncoding],
            _ => &[],
        };
        for mask in [0x01u8, 0x02, 0x40, 0x80, 0xff] {
            let changed = with(&bytes, |b| b[at] ^= mask);
            match Session::from_bytes(&changed, &local) {
                Ok(session) => {
                    accepted += 1;
                    assert_eq!(
                        stored(&session),
                        changed,
                        "byte {at} ^ {mask:#x}: not canonical"
                    );
                }
                Err(Error::UnsupportedVersion(_)) if at == 0 => {}
                Err(Error::UnexpectedType(t)) if at == 1 => assert_eq!(t, TYPE_SESSION ^ mask),
                Err(e) => assert!(
                    allowed.contains(&e),
                    "byte {at} ^ {mask:#x}: unexpected {e:?}"
                ),
            }
        }
    }
    // Secret bytes and counters have no redundancy, so many changes load.
    assert!(accepted > 1000, "{accepted}");
}

/// A valid replay record (a canonical X25519 public key of no small order), strictly
/// increasing in `i`.
fn record(i: u32) -> [u8; 32] {
    let mut key = [0x5a; 32];
    key[..4].copy_from_slice(&i.to_be_bytes());
    key[31] = 0x2a;
    key
}

/// A stored signed prekey of Bob's with the given id.
fn signed_prekey_bytes(bob: &IdentityKeyPair, id: u64, rng: &mut ChaCha20Rng) -> Vec<u8> {
    SignedPreKey::generate(bob, SignedPreKeyId::from_u64(id), rng)
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// A stored one-time prekey with the given id (any 32 bytes are a secret).
fn one_time_prekey_bytes(id: u64) -> Vec<u8> {
    let mut out = vec![STORAGE_VERSION, TYPE_ONE_TIME_PREKEY];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[(id as u8) | 1; 32]);
    out
}

/// A stored post-quantum prekey with the given id and kind byte (`0x01` one-time, `0x02`
/// last-resort); any 64 bytes are a seed, and the signature is kept as stored.
fn pq_prekey_bytes(id: u64, kind: u8) -> Vec<u8> {
    let mut out = vec![STORAGE_VERSION, 0x26];
    out.extend_from_slice(&id.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&[id as u8; 64]);
    out.extend_from_slice(&[0x55; 64]);
    out
}

/// The store of [`records_store`], field by field: two accepted signed prekeys with 2 and 1
/// records, a standby, three one-time prekeys (sequence numbers 1, 2, 4; next 5).
fn records_layout(seed: u64) -> (IdentityKeyPair, StoreLayout) {
    let r = records_store(seed);
    let layout = StoreLayout::parse(&r.store.to_bytes());
    assert_eq!(layout.signed.len(), 2);
    assert_eq!(layout.standby_flag, 1);
    assert_eq!(layout.one_time.len(), 3);
    assert_eq!(layout.next_sequence, 5);
    (r.bob, layout)
}

/// Loads the changed layout: `Ok` if it loads (and then it must re-encode to the same
/// bytes), else the error.
fn load_layout(layout: &StoreLayout) -> Result<LocalDevice, Error> {
    let bytes = layout.encode();
    let store = LocalDevice::from_bytes(&bytes)?;
    assert_eq!(store.to_bytes().to_vec(), bytes, "not canonical");
    Ok(store)
}

fn changed(layout: &StoreLayout, edit: impl FnOnce(&mut StoreLayout)) -> StoreLayout {
    let mut out = layout.clone();
    edit(&mut out);
    out
}

/// Changes the id of a stored prekey encoding.
fn set_id(encoding: &mut [u8], id: u64) {
    put_u64(encoding, 2, id);
}

/// Checks each case's typed error.
fn check_cases(cases: Vec<(&str, StoreLayout, Error)>) {
    for (name, layout, expected) in cases {
        assert_eq!(load_layout(&layout).err(), Some(expected), "{name}");
    }
}

#[test]
fn prekey_store_corruptions_are_rejected() {
    let (_, base) = records_layout(15);
    let bytes = base.encode();
    load_layout(&base).unwrap();
    let load = |b: &[u8]| LocalDevice::from_bytes(b).err();
    let one_time_count_at = base.one_time_count_at();
    let one_time_at = one_time_count_at + 4;
    let signed_at = |i: usize| {
        STORE_SIGNED
            + base.signed[..i]
                .iter()
                .map(|e| SPK + TIMES + 4 + RECORD * e.records.len())
                .sum::<usize>()
    };
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "no signed prekey",
            with(&bytes, |b| put_u32(b, STORE_SIGNED_COUNT, 0)),
            Error::InvalidEncoding,
        ),
        (
            "17 signed prekeys",
            with(&bytes, |b| put_u32(b, STORE_SIGNED_COUNT, 17)),
            Error::InvalidEncoding,
        ),
        (
            // The standby flag (1) is then read as a signed prekey's version.
            "signed count one too many",
            with(&bytes, |b| put_u32(b, STORE_SIGNED_COUNT, 3)),
            Error::UnsupportedVersion(1),
        ),
        (
            // The current id may then be missing; else the second signed prekey's version
            // (2) is read as the standby flag.
            "signed count one too few",
            with(&bytes, |b| put_u32(b, STORE_SIGNED_COUNT, 1)),
            Error::InvalidEncoding,
        ),
        (
            // The post-quantum part (13 zero bytes) is then read as a sequence number, a
            // published flag and a key whose version byte is 0.
            "one-time count + 1",
            with(&bytes, |b| put_u32(b, one_time_count_at, 4)),
            Error::UnsupportedVersion(0),
        ),
        (
            // The third key's sequence number is then read as the post-quantum part's
            // absent flag, with non-zero bytes after it.
            "one-time count - 1",
            with(&bytes, |b| put_u32(b, one_time_count_at, 2)),
            Error::InvalidEncoding,
        ),
        (
            "signed prekey with a future version",
            with(&bytes, |b| b[signed_at(1)] = STORAGE_VERSION + 1),
            Error::UnsupportedVersion(STORAGE_VERSION + 1),
        ),
        (
            "signed prekey of v1",
            with(&bytes, |b| b[signed_at(1)] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "standby of v1",
            with(&bytes, |b| b[base.standby_at() + 1] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "one-time prekey of v1",
            with(&bytes, |b| b[one_time_at + 2 * ONE_TIME_ENTRY + 8 + 1] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "one-time prekey where a signed prekey belongs",
            with(&bytes, |b| b[STORE_SIGNED + 1] = TYPE_ONE_TIME_PREKEY),
            Error::UnexpectedType(TYPE_ONE_TIME_PREKEY),
        ),
        (
            "one-time prekey type as the standby",
            with(&bytes, |b| b[base.standby_at() + 2] = TYPE_ONE_TIME_PREKEY),
            Error::UnexpectedType(TYPE_ONE_TIME_PREKEY),
        ),
        (
            "signed prekey type where a one-time prekey belongs",
            with(&bytes, |b| b[one_time_at + 8 + 1 + 1] = TYPE_SIGNED_PREKEY),
            Error::UnexpectedType(TYPE_SIGNED_PREKEY),
        ),
        (
            "part 1's store type 0x27",
            with(&bytes, |b| b[1] = RETIRED_TYPE_PREKEY_STORE_PQ),
            Error::UnexpectedType(RETIRED_TYPE_PREKEY_STORE_PQ),
        ),
        (
            "the retired prekey store type 0x24",
            with(&bytes, |b| b[1] = RETIRED_TYPE_PREKEY_STORE),
            Error::UnexpectedType(RETIRED_TYPE_PREKEY_STORE),
        ),
        (
            "identity key pair with a future version",
            with(&bytes, |b| b[STORE_IDENTITY] = STORAGE_VERSION + 1),
            Error::UnsupportedVersion(STORAGE_VERSION + 1),
        ),
        (
            "identity key pair of v1",
            with(&bytes, |b| b[STORE_IDENTITY] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "signed prekey type where the identity key pair belongs",
            with(&bytes, |b| b[STORE_IDENTITY + 1] = TYPE_SIGNED_PREKEY),
            Error::UnexpectedType(TYPE_SIGNED_PREKEY),
        ),
        (
            // Without the embedded identity (part 2's layout), the replay capacity's first
            // byte is read as the identity's version.
            "no identity key pair",
            with(&bytes, |b| {
                b.drain(STORE_IDENTITY..STORE_IDENTITY + IDENTITY);
            }),
            Error::UnsupportedVersion(0),
        ),
    ];
    for (name, bad, expected) in cases {
        assert_eq!(load(&bad), Some(expected), "{name}");
    }
}

/// Stored ids are never 0 and strictly increasing, for signed, one-time and post-quantum
/// prekeys; the current id names an accepted signed prekey.
#[test]
fn prekey_store_ids_are_checked() {
    let (_, base) = records_layout(41);
    let spk0 = base.signed[0].id();
    let spk1 = base.signed[1].id();
    assert!(spk0 < spk1);
    let other_current = if base.current == spk0 { spk1 } else { spk0 };
    let cases = vec![
        (
            "signed prekey id 0",
            changed(&base, |l| {
                if l.current == spk0 {
                    l.current = 0;
                }
                set_id(&mut l.signed[0].key, 0);
            }),
            Error::InvalidEncoding,
        ),
        (
            "the same signed prekey id twice",
            changed(&base, |l| set_id(&mut l.signed[1].key, spk0)),
            Error::InvalidEncoding,
        ),
        (
            "signed prekeys in decreasing order",
            changed(&base, |l| l.signed.swap(0, 1)),
            Error::InvalidEncoding,
        ),
        (
            "one-time prekey id 0",
            changed(&base, |l| set_id(&mut l.one_time[0].key, 0)),
            Error::InvalidEncoding,
        ),
        (
            "the same one-time prekey twice",
            changed(&base, |l| l.one_time[1].key = l.one_time[0].key.clone()),
            Error::InvalidEncoding,
        ),
        (
            "the same one-time prekey id twice",
            changed(&base, |l| {
                let id = l.one_time[0].id();
                set_id(&mut l.one_time[1].key, id);
            }),
            Error::InvalidEncoding,
        ),
        (
            "one-time prekeys in decreasing order",
            changed(&base, |l| l.one_time.swap(1, 2)),
            Error::InvalidEncoding,
        ),
        (
            "current id not among the signed prekeys",
            changed(&base, |l| l.retarget(spk1 + 1)),
            Error::InvalidEncoding,
        ),
        (
            "current id 0",
            changed(&base, |l| l.retarget(0)),
            Error::InvalidEncoding,
        ),
        (
            "current id is the standby's",
            changed(&base, |l| l.retarget(l.standby_id().unwrap())),
            Error::InvalidEncoding,
        ),
    ];
    check_cases(cases);
    // Either accepted signed prekey may be the current one; the other stays accepted.
    let store = load_layout(&changed(&base, |l| l.make_current(other_current, 7))).unwrap();
    assert_eq!(store.current_signed_prekey().id().to_u64(), other_current);
    assert!(
        store
            .signed_prekey(SignedPreKeyId::from_u64(spk0))
            .is_some()
            && store
                .signed_prekey(SignedPreKeyId::from_u64(spk1))
                .is_some()
    );
    // The largest id is an id.
    let store = load_layout(&changed(&base, |l| {
        if l.current == spk1 {
            l.current = u64::MAX;
        }
        set_id(&mut l.signed[1].key, u64::MAX);
        let last = l.one_time.len() - 1;
        set_id(&mut l.one_time[last].key, u64::MAX);
    }))
    .unwrap();
    assert!(store
        .signed_prekey(SignedPreKeyId::from_u64(u64::MAX))
        .is_some());
    assert!(store
        .one_time_prekey(OneTimePreKeyId::from_u64(u64::MAX))
        .is_some());
}

/// The replay records of a signed prekey: at most `MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`,
/// strictly increasing, each a valid X25519 public key; the replay capacity is 1 ..= 1024.
#[test]
fn prekey_store_replay_records_are_checked() {
    let (_, base) = records_layout(42);
    let full = base
        .signed
        .iter()
        .position(|e| e.records.len() == 2)
        .unwrap();
    let mut cases = vec![
        (
            "the same record twice",
            changed(&base, |l| {
                l.signed[full].records[1] = l.signed[full].records[0]
            }),
            Error::InvalidEncoding,
        ),
        (
            "records in decreasing order",
            changed(&base, |l| l.signed[full].records.swap(0, 1)),
            Error::InvalidEncoding,
        ),
        (
            "1025 records",
            changed(&base, |l| {
                l.signed[full].records = (0..=MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY)
                    .map(record)
                    .collect();
            }),
            Error::InvalidEncoding,
        ),
        (
            "replay capacity 0",
            changed(&base, |l| l.capacity = 0),
            Error::InvalidEncoding,
        ),
        (
            "replay capacity 1025",
            changed(&base, |l| {
                l.capacity = MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY + 1;
            }),
            Error::InvalidEncoding,
        ),
        (
            "replay capacity u32::MAX",
            changed(&base, |l| l.capacity = u32::MAX),
            Error::InvalidEncoding,
        ),
    ];
    for key in invalid_x25519_keys() {
        for at in 0..2 {
            cases.push((
                "a record that is not a valid X25519 key",
                changed(&base, |l| l.signed[full].records[at] = key),
                Error::InvalidPublicKey,
            ));
        }
    }
    check_cases(cases);
    assert_eq!(MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, 1024);
    // 1024 records load, under every signed prekey, and the capacity may be 1 or 1024.
    let at_cap = changed(&base, |l| {
        for entry in &mut l.signed {
            entry.records = (0..MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY)
                .map(record)
                .collect();
        }
    });
    let store = load_layout(&at_cap).unwrap();
    assert_eq!(store.replay_records(), 2 * 1024);
    for capacity in [1, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY] {
        let store = load_layout(&changed(&base, |l| l.capacity = capacity)).unwrap();
        assert_eq!(store.replay_capacity(), capacity);
    }
    // A loaded record refuses its initial message; a store whose current signed prekey
    // is full refuses a new session without a one-time prekey (records above the
    // capacity are kept, as `set_replay_capacity` keeps them).
    let mut store = load_layout(&changed(&base, |l| l.capacity = 1)).unwrap();
    let mut rng = rng(43);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bundle = store.bundle(None).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"full", &mut rng).unwrap();
    assert_eq!(
        store.accept(&m, &SessionOptions::new()).err(),
        Some(Error::StoreFull)
    );
}

/// The standby slot: absent means flag 0 and 114 zero bytes (a signed prekey and its
/// creation time); a present standby's id is none of the accepted ones (and not 0); at
/// most 16 signed prekeys counting it.
#[test]
fn prekey_store_standby_is_checked() {
    let (bob, base) = records_layout(44);
    let accepted = base.signed_ids();
    let absent = changed(&base, |l| {
        l.standby_flag = 0;
        l.standby = vec![0; SPK + 8];
    });
    let store = load_layout(&absent).unwrap();
    assert!(store.standby_signed_prekey().is_none());
    let mut cases = vec![];
    for id in &accepted {
        cases.push((
            "standby with an accepted id",
            changed(&base, |l| set_id(&mut l.standby, *id)),
            Error::InvalidEncoding,
        ));
    }
    for at in 0..SPK + 8 {
        cases.push((
            "absent standby with a non-zero byte",
            changed(&absent, |l| l.standby[at] = 1),
            Error::InvalidEncoding,
        ));
    }
    for flag in 2..=u8::MAX {
        cases.push((
            "standby flag other than 0 or 1",
            changed(&base, |l| l.standby_flag = flag),
            Error::InvalidEncoding,
        ));
    }
    check_cases(cases);
    // Any creation time loads.
    for created in [1, u64::MAX] {
        let key = base.standby[..SPK].to_vec();
        load_layout(&changed(&base, |l| l.standby = standby_slot(&key, created))).unwrap();
    }

    // At most 16 signed prekeys, counting the standby.
    let mut rng = rng(45);
    let mut ids: Vec<u64> = (1..=17).map(|i| i * 1_000_003).collect();
    ids.sort_unstable();
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| signed_prekey_bytes(&bob, *id, &mut rng))
        .collect();
    // The first is current; the others were replaced in decreasing order of id (the
    // last one the longest ago).
    let with_signed = |count: usize, standby: bool| {
        changed(&base, |l| {
            l.signed = keys[..count]
                .iter()
                .enumerate()
                .map(|(i, k)| SignedLayout {
                    key: k.clone(),
                    created: 0,
                    superseded: if i == 0 { ABSENT } else { at(100 - i as u64) },
                    records: vec![],
                })
                .collect();
            l.current = ids[0];
            if standby {
                l.standby_flag = 1;
                l.standby = standby_slot(&keys[16], 0);
            } else {
                l.standby_flag = 0;
                l.standby = vec![0; SPK + 8];
            }
        })
    };
    assert_eq!(MAX_SIGNED_PREKEYS, 16);
    // With 16 held, maintenance makes room for the standby by retiring the
    // longest-replaced signed prekey (not the lowest id), and reports it.
    let mut store = load_layout(&with_signed(16, false)).unwrap();
    let done = store
        .maintain(1_000, &PreKeyPolicy::default(), &mut rng)
        .unwrap();
    assert!(done.replenished_standby);
    assert_eq!(
        done.retired_signed_prekeys,
        [SignedPreKeyId::from_u64(ids[15])]
    );
    assert_eq!(done.rotated_signed_prekey, None);
    assert!(store
        .signed_prekey(SignedPreKeyId::from_u64(ids[15]))
        .is_none());
    assert!(ids[..15]
        .iter()
        .all(|id| store.signed_prekey(SignedPreKeyId::from_u64(*id)).is_some()));
    assert!(store.standby_signed_prekey().is_some());
    let layout = StoreLayout::parse(&store.to_bytes());
    assert_eq!(layout.signed.len(), 15);
    assert_eq!(layout.standby_flag, 1);
    load_layout(&layout).unwrap();
    load_layout(&with_signed(15, true)).unwrap();
    check_cases(vec![
        (
            "16 signed prekeys and a standby",
            with_signed(16, true),
            Error::InvalidEncoding,
        ),
        (
            "17 signed prekeys",
            changed(&with_signed(16, false), |l| {
                l.signed.push(SignedLayout {
                    key: keys[16].clone(),
                    created: 0,
                    superseded: at(0),
                    records: vec![],
                });
            }),
            Error::InvalidEncoding,
        ),
    ]);
}

/// A standby with id 0: 0 is never an id (SPEC.md §8.1), for the standby as for every
/// other prekey. (Were it loaded, it would become current at the next switch, and the
/// store would then encode a signed prekey with id 0, which does not load.)
#[test]
fn prekey_store_standby_id_0_is_refused() {
    let (_, base) = records_layout(46);
    check_cases(vec![(
        "standby id 0",
        changed(&base, |l| set_id(&mut l.standby, 0)),
        Error::InvalidEncoding,
    )]);
}

/// The fields a local device adds to a stored store (SPEC.md §7.5): the one-time prekey
/// cap (1 ..= 16 384), the signed prekeys' times (a replacement time on a previous one
/// only; an absent time all zeros; any value loads) and the one-time prekeys' published
/// flags (0 or 1).
#[test]
fn prekey_store_cap_times_and_published_flags_are_checked() {
    let (_, base) = records_layout(51);
    let current = base.current;
    let previous = base
        .signed_ids()
        .into_iter()
        .find(|id| *id != current)
        .unwrap();
    let mut cases = vec![
        (
            "one-time prekey cap 0",
            changed(&base, |l| l.one_time_cap = 0),
            Error::InvalidEncoding,
        ),
        (
            "one-time prekey cap 16 385",
            changed(&base, |l| l.one_time_cap = MAX_ONE_TIME_PREKEYS as u32 + 1),
            Error::InvalidEncoding,
        ),
        (
            "one-time prekey cap u32::MAX",
            changed(&base, |l| l.one_time_cap = u32::MAX),
            Error::InvalidEncoding,
        ),
        (
            "the current signed prekey with a replacement time",
            changed(&base, |l| l.signed_entry(current).superseded = at(5)),
            Error::InvalidEncoding,
        ),
        (
            "an absent replacement time with non-zero bytes",
            changed(&base, |l| l.signed_entry(current).superseded = (0, 5)),
            Error::InvalidEncoding,
        ),
    ];
    for flag in 2..=u8::MAX {
        cases.push((
            "replacement time flag other than 0 or 1",
            changed(&base, |l| l.signed_entry(previous).superseded = (flag, 5)),
            Error::InvalidEncoding,
        ));
        cases.push((
            "published flag other than 0 or 1",
            changed(&base, |l| l.one_time[1].published = flag),
            Error::InvalidEncoding,
        ));
    }
    check_cases(cases);
    for cap in [1, MAX_ONE_TIME_PREKEYS as u32] {
        let store = load_layout(&changed(&base, |l| l.one_time_cap = cap)).unwrap();
        assert_eq!(store.one_time_prekey_cap(), cap);
    }
    // Any times load (the app's clock may be anything).
    let store = load_layout(&changed(&base, |l| {
        l.signed_entry(current).created = u64::MAX;
        l.signed_entry(previous).created = 3;
        l.signed_entry(previous).superseded = at(u64::MAX);
    }))
    .unwrap();
    assert_eq!(store.current_signed_prekey_created(), u64::MAX);

    // A previous signed prekey without a replacement time (a switch inside `accept`, which
    // has no clock, leaves it so) loads; the next maintenance stamps it with its `now`.
    let unstamped = changed(&base, |l| l.signed_entry(previous).superseded = ABSENT);
    let mut store = load_layout(&unstamped).unwrap();
    let mut rng = rng(52);
    store
        .maintain(77, &PreKeyPolicy::default(), &mut rng)
        .unwrap();
    let mut layout = StoreLayout::parse(&store.to_bytes());
    assert_eq!(layout.signed_entry(previous).superseded, at(77));

    // Published flags load, and say which one-time prekeys are published.
    let layout = changed(&base, |l| l.one_time[1].published = 1);
    let store = load_layout(&layout).unwrap();
    let id = OneTimePreKeyId::from_u64(layout.one_time[1].id());
    assert!(store.is_one_time_prekey_published(id));
    assert_eq!(store.unpublished_one_time_prekeys().count(), 2);
    // And `mark_one_time_prekeys_published` stores exactly that flag.
    let mut store = records_store(53).store;
    let id = store.one_time_prekeys().nth(1).unwrap().id();
    assert_eq!(store.mark_one_time_prekeys_published(&[id]), 1);
    let layout = StoreLayout::parse(&store.to_bytes());
    for entry in &layout.one_time {
        assert_eq!(entry.published == 1, entry.id() == id.to_u64());
    }
    load_layout(&layout).unwrap();
}

/// Sequence numbers: each below the stored next sequence, all distinct (one-time and
/// post-quantum prekeys together); they, not the ids, order the one-time prekeys.
#[test]
fn prekey_store_sequence_numbers_are_checked() {
    let (_, base) = records_layout(47);
    let sequences: Vec<u64> = base.one_time.iter().map(|e| e.sequence).collect();
    let highest = *sequences.iter().max().unwrap();
    assert_eq!(highest, 4);
    let at = |seq: u64| sequences.iter().position(|s| *s == seq).unwrap();
    let cases = vec![
        (
            "a duplicated sequence number",
            changed(&base, |l| l.one_time[1].sequence = l.one_time[0].sequence),
            Error::InvalidEncoding,
        ),
        (
            "a sequence number equal to the next sequence",
            changed(&base, |l| l.one_time[at(4)].sequence = 5),
            Error::InvalidEncoding,
        ),
        (
            "a sequence number of u64::MAX",
            changed(&base, |l| l.one_time[0].sequence = u64::MAX),
            Error::InvalidEncoding,
        ),
        (
            "next sequence not above every sequence number",
            changed(&base, |l| l.next_sequence = 4),
            Error::InvalidEncoding,
        ),
        (
            "next sequence 0 with keys",
            changed(&base, |l| l.next_sequence = 0),
            Error::InvalidEncoding,
        ),
    ];
    check_cases(cases);
    // Unused sequence numbers are fine (keys were consumed), and so is any next sequence
    // above them.
    load_layout(&changed(&base, |l| l.one_time[at(4)].sequence = 3)).unwrap();
    load_layout(&changed(&base, |l| l.next_sequence = u64::MAX)).unwrap();
    // The oldest first is by sequence number: reversed sequence numbers reverse the order.
    let ids = base.one_time_ids();
    let reversed = changed(&base, |l| {
        let n = l.one_time.len() as u64;
        for (i, entry) in l.one_time.iter_mut().enumerate() {
            entry.sequence = n - 1 - i as u64;
        }
    });
    let store = load_layout(&reversed).unwrap();
    let order: Vec<u64> = store.one_time_prekeys().map(|k| k.id().to_u64()).collect();
    assert_eq!(order, ids.iter().rev().copied().collect::<Vec<_>>());
    let forward = changed(&base, |l| {
        for (i, entry) in l.one_time.iter_mut().enumerate() {
            entry.sequence = i as u64;
        }
    });
    let store = load_layout(&forward).unwrap();
    let order: Vec<u64> = store.one_time_prekeys().map(|k| k.id().to_u64()).collect();
    assert_eq!(order, ids);
}

/// The post-quantum part of a stored store (SPEC.md §7.5): ids never 0 and strictly
/// increasing, sequence numbers shared with the one-time prekeys, the current last-resort
/// id naming a held last-resort key, at most 1024 one-time and 16 last-resort keys.
#[cfg(feature = "pqxdh")]
#[test]
fn prekey_store_post_quantum_part_is_checked() {
    let (_, classical) = records_layout(48);
    // Sequence numbers 0 and 3 are free (their one-time prekeys were used). A one-time key
    // has no times; the current last-resort key a creation time and no replacement time.
    let last_resort = |sequence: u64, id: u64, created: u64, superseded: OptionalTime| AgedLayout {
        created,
        superseded,
        ..AgedLayout::new(sequence, pq_prekey_bytes(id, 0x02))
    };
    let base = changed(&classical, |l| {
        l.pq = vec![
            AgedLayout::new(0, pq_prekey_bytes(7, 0x01)),
            last_resort(3, 9, 1_000, ABSENT),
        ];
        l.pq_current_flag = 1;
        l.pq_current = 9;
    });
    let store = load_layout(&base).unwrap();
    assert_eq!(
        store.pq_prekey(PqPreKeyId::from_u64(9)).map(PqPreKey::kind),
        Some(PqPreKeyKind::LastResort)
    );
    let ids: Vec<u64> = store
        .pq_one_time_prekeys()
        .map(|k| k.id().to_u64())
        .collect();
    assert_eq!(ids, [7]);
    // A replaced last-resort key carries its replacement time.
    let with_previous = changed(&base, |l| {
        l.pq.push(last_resort(5, 10, 0, at(1_000)));
        l.next_sequence = 6;
    });
    let store = load_layout(&with_previous).unwrap();
    assert!(store.pq_prekey(PqPreKeyId::from_u64(10)).is_some());
    // Published flags load.
    let published = changed(&base, |l| {
        for entry in &mut l.pq {
            entry.published = 1;
        }
    });
    let store = load_layout(&published).unwrap();
    assert_eq!(store.unpublished_pq_one_time_prekeys().count(), 0);
    let one_time_sequence = classical.one_time[0].sequence;
    let mut cases = vec![
        (
            "post-quantum prekey id 0",
            changed(&base, |l| set_id(&mut l.pq[0].key, 0)),
            Error::InvalidEncoding,
        ),
        (
            "the same post-quantum prekey id twice",
            changed(&base, |l| set_id(&mut l.pq[1].key, 7)),
            Error::InvalidEncoding,
        ),
        (
            "post-quantum prekeys in decreasing order",
            changed(&base, |l| l.pq.swap(0, 1)),
            Error::InvalidEncoding,
        ),
        (
            "a sequence number of a one-time prekey again",
            changed(&base, |l| l.pq[0].sequence = one_time_sequence),
            Error::InvalidEncoding,
        ),
        (
            "a duplicated post-quantum sequence number",
            changed(&base, |l| l.pq[1].sequence = 0),
            Error::InvalidEncoding,
        ),
        (
            "a post-quantum sequence number equal to the next sequence",
            changed(&base, |l| l.pq[1].sequence = 5),
            Error::InvalidEncoding,
        ),
        (
            "current last-resort id not held",
            changed(&base, |l| l.pq_current = 8),
            Error::InvalidEncoding,
        ),
        (
            "current last-resort id names a one-time key",
            changed(&base, |l| l.pq_current = 7),
            Error::InvalidEncoding,
        ),
        (
            "absent current last-resort id with non-zero bytes",
            changed(&base, |l| l.pq_current_flag = 0),
            Error::InvalidEncoding,
        ),
        (
            "17 last-resort keys",
            changed(&base, |l| {
                l.pq = (1..=17)
                    .map(|i| {
                        let replaced = if i == 17 { ABSENT } else { at(0) };
                        last_resort(i, i, 0, replaced)
                    })
                    .collect();
                l.next_sequence = 18;
                l.one_time.clear();
                l.pq_current = 17;
            }),
            Error::InvalidEncoding,
        ),
    ];
    cases.extend([
        (
            "a one-time post-quantum prekey with a creation time",
            changed(&base, |l| l.pq[0].created = 1),
            Error::InvalidEncoding,
        ),
        (
            "a one-time post-quantum prekey with a replacement time",
            changed(&base, |l| l.pq[0].superseded = at(1)),
            Error::InvalidEncoding,
        ),
        (
            "the current last-resort key with a replacement time",
            changed(&base, |l| l.pq[1].superseded = at(1_000)),
            Error::InvalidEncoding,
        ),
        (
            "a replaced last-resort key without a replacement time",
            changed(&with_previous, |l| l.pq[2].superseded = ABSENT),
            Error::InvalidEncoding,
        ),
        (
            "an absent replacement time with non-zero bytes",
            changed(&with_previous, |l| l.pq[1].superseded = (0, 1)),
            Error::InvalidEncoding,
        ),
    ]);
    for flag in 2..=u8::MAX {
        cases.push((
            "post-quantum published flag other than 0 or 1",
            changed(&base, |l| l.pq[0].published = flag),
            Error::InvalidEncoding,
        ));
        cases.push((
            "replacement time flag other than 0 or 1",
            changed(&with_previous, |l| l.pq[2].superseded = (flag, 1_000)),
            Error::InvalidEncoding,
        ));
    }
    for flag in 2..=u8::MAX {
        cases.push((
            "current last-resort flag other than 0 or 1",
            changed(&base, |l| l.pq_current_flag = flag),
            Error::InvalidEncoding,
        ));
    }
    check_cases(cases);
    // No current last-resort key: flag and id zero (the one held was replaced).
    let store = load_layout(&changed(&base, |l| {
        l.pq_current_flag = 0;
        l.pq_current = 0;
        l.pq[1].superseded = at(2_000);
    }))
    .unwrap();
    assert_eq!(
        store.pq_bundle(None, None).err(),
        Some(Error::UnknownPqPreKey(PqPreKeyId::from_u64(0)))
    );
}

/// A build without PQXDH loads a store only if its post-quantum part is empty.
#[cfg(not(feature = "pqxdh"))]
#[test]
fn prekey_store_post_quantum_part_needs_the_feature() {
    let (_, base) = records_layout(48);
    check_cases(vec![
        (
            "a post-quantum prekey",
            changed(&base, |l| {
                l.pq = vec![AgedLayout::new(0, pq_prekey_bytes(7, 0x01))];
            }),
            Error::InvalidEncoding,
        ),
        (
            "a current last-resort id",
            changed(&base, |l| {
                l.pq_current_flag = 1;
                l.pq_current = 7;
            }),
            Error::InvalidEncoding,
        ),
    ]);
}

/// The largest store: every cap reached (16 signed prekeys each carrying 1024 replay
/// records; or 15 and a standby; 16 384 one-time prekeys; with PQXDH 1024 one-time and 16
/// last-resort post-quantum prekeys) loads, stores back to the same bytes, and is at most
/// `MAX_STORED_SIZE` (SPEC.md §7.5). Built from bytes: generating 16 384 keys through the
/// API would take long in a debug build.
#[test]
fn prekey_store_at_every_cap_fits_max_stored_size() {
    let (bob, base) = records_layout(49);
    let mut rng = rng(50);
    let signed: Vec<Vec<u8>> = (1..=MAX_SIGNED_PREKEYS as u64 + 1)
        .map(|id| signed_prekey_bytes(&bob, id, &mut rng))
        .collect();
    let records: Vec<[u8; 32]> = (0..MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY)
        .map(record)
        .collect();
    // Every other one published.
    let one_time: Vec<AgedLayout> = (1..=MAX_ONE_TIME_PREKEYS as u64)
        .map(|id| AgedLayout {
            published: (id % 2) as u8,
            ..AgedLayout::new(id - 1, one_time_prekey_bytes(id))
        })
        .collect();
    // The signed prekeys with ids 1 ..= `count`, each full; `current` has no replacement
    // time, the others were replaced in order.
    let signed_entries = |count: usize, current: u64| -> Vec<SignedLayout> {
        signed[..count]
            .iter()
            .map(|k| SignedLayout {
                key: k.clone(),
                created: id_of(k),
                superseded: if id_of(k) == current {
                    ABSENT
                } else {
                    at(id_of(k) + 1)
                },
                records: records.clone(),
            })
            .collect()
    };
    #[allow(unused_mut)]
    let mut largest = changed(&base, |l| {
        l.capacity = MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY;
        l.one_time_cap = MAX_ONE_TIME_PREKEYS as u32;
        l.signed = signed_entries(MAX_SIGNED_PREKEYS, MAX_SIGNED_PREKEYS as u64);
        l.current = MAX_SIGNED_PREKEYS as u64;
        l.standby_flag = 0;
        l.standby = vec![0; SPK + 8];
        l.one_time = one_time.clone();
        l.next_sequence = MAX_ONE_TIME_PREKEYS as u64;
    });
    #[cfg(feature = "pqxdh")]
    {
        let first = MAX_ONE_TIME_PREKEYS as u64;
        largest.pq = (1..=(MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS) as u64)
            .map(|id| {
                let kind = if id as usize <= MAX_PQ_ONE_TIME_PREKEYS {
                    0x01
                } else {
                    0x02
                };
                let entry = AgedLayout::new(first + id - 1, pq_prekey_bytes(id, kind));
                if kind == 0x01 {
                    return entry;
                }
                // Last-resort keys: the last one current, the others replaced.
                let last = (MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS) as u64;
                AgedLayout {
                    published: 1,
                    created: id,
                    superseded: if id == last { ABSENT } else { at(id + 1) },
                    ..entry
                }
            })
            .collect();
        largest.pq_current_flag = 1;
        largest.pq_current = largest.pq.len() as u64;
        largest.next_sequence += largest.pq.len() as u64;
    }
    // The other full shape: 15 accepted signed prekeys and a standby (which carries no
    // records), so a few records fewer.
    let with_standby = changed(&largest, |l| {
        l.signed = signed_entries(MAX_SIGNED_PREKEYS - 1, 1);
        l.current = 1;
        l.standby_flag = 1;
        l.standby = standby_slot(&signed[MAX_SIGNED_PREKEYS], 99);
    });
    let pq_part = if cfg!(feature = "pqxdh") {
        (MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS) * PQ_ENTRY
    } else {
        0
    };
    let expected = 2
        + IDENTITY
        + 4
        + 4
        + 8
        + 8
        + 4
        + MAX_SIGNED_PREKEYS * (SPK + TIMES + 4 + 1024 * RECORD)
        + STANDBY_SLOT
        + 4
        + MAX_ONE_TIME_PREKEYS * ONE_TIME_ENTRY
        + 9
        + 4
        + pq_part;
    let start = Instant::now();
    for (name, layout, len) in [
        ("16 signed prekeys", &largest, expected),
        (
            "15 signed prekeys and a standby",
            &with_standby,
            expected - (SPK + TIMES + 4 + 1024 * RECORD),
        ),
    ] {
        let bytes = layout.encode();
        assert_eq!(bytes.len(), len, "{name}");
        assert!(
            bytes.len() <= MAX_STORED_SIZE,
            "{name}: {} bytes",
            bytes.len()
        );
        let store = LocalDevice::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(*store.to_bytes() == *bytes, "{name}: not canonical");
        assert_eq!(store.one_time_prekeys().count(), MAX_ONE_TIME_PREKEYS);
        assert_eq!(
            store.unpublished_one_time_prekeys().count(),
            MAX_ONE_TIME_PREKEYS / 2
        );
        assert_eq!(store.one_time_prekey_cap(), MAX_ONE_TIME_PREKEYS as u32);
        assert_eq!(
            store.replay_records(),
            layout.signed.len() * MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize
        );
        #[cfg(feature = "pqxdh")]
        assert_eq!(store.pq_one_time_prekeys().count(), MAX_PQ_ONE_TIME_PREKEYS);
    }
    println!(
        "largest prekey store: {expected} bytes (MAX_STORED_SIZE {MAX_STORED_SIZE}); \
         loaded twice in {:?}",
        start.elapsed()
    );
    // One more of anything is refused.
    #[cfg_attr(not(feature = "pqxdh"), allow(unused_mut))]
    let mut over = vec![
        (
            "16 384 + 1 one-time prekeys",
            changed(&largest, |l| {
                let id = MAX_ONE_TIME_PREKEYS as u64 + 1;
                l.one_time
                    .push(AgedLayout::new(l.next_sequence, one_time_prekey_bytes(id)));
                l.next_sequence += 1;
            }),
            Error::InvalidEncoding,
        ),
        (
            "one-time prekey cap 16 384 + 1",
            changed(&largest, |l| l.one_time_cap += 1),
            Error::InvalidEncoding,
        ),
        (
            "1025 replay records",
            changed(&largest, |l| {
                l.signed[0]
                    .records
                    .push(record(MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY));
            }),
            Error::InvalidEncoding,
        ),
    ];
    #[cfg(feature = "pqxdh")]
    over.push((
        "1024 + 1 one-time post-quantum prekeys",
        changed(&largest, |l| {
            // The last of the last-resort keys becomes a one-time key (without times), the
            // current one another last-resort key (without a replacement time).
            let last = l.pq.len() - 1;
            l.pq[last].key[10] = 0x01;
            l.pq[last].created = 0;
            l.pq[last].superseded = ABSENT;
            l.pq[last - 1].superseded = ABSENT;
            l.pq_current -= 1;
        }),
        Error::InvalidEncoding,
    ));
    check_cases(over);
}

#[test]
fn bundle_corruptions_are_rejected() {
    let (_, store) = sample_store(16);
    let second = store.one_time_prekeys().nth(1).unwrap().id();
    let with_opk = store.bundle(Some(second)).unwrap().to_bytes();
    let without = store.bundle(None).unwrap().to_bytes();
    // SPEC.md §5.4 with 8-byte ids: identity, SPK id (34..42), SPK, signature, OPK flag,
    // OPK id (139..147), OPK.
    const IDENTITY: usize = 2;
    const SPK_KEY: usize = 42;
    const SIGNATURE: usize = 74;
    const OPK_FLAG: usize = 138;
    const OPK_KEY: usize = 147;
    assert_eq!(with_opk[OPK_FLAG], 1);
    assert_eq!(
        with_opk[OPK_FLAG + 1..OPK_KEY],
        second.to_u64().to_be_bytes()
    );
    assert_eq!(without[OPK_FLAG..], [0u8; 1 + 8 + 32]);
    for key in invalid_identity_keys() {
        let bad = with(&with_opk, |b| {
            b[IDENTITY..IDENTITY + 32].copy_from_slice(&key)
        });
        assert_eq!(PreKeyBundle::from_bytes(&bad), Err(Error::InvalidPublicKey));
    }
    for key in invalid_x25519_keys() {
        for at in [SPK_KEY, OPK_KEY] {
            let bad = with(&with_opk, |b| b[at..at + 32].copy_from_slice(&key));
            assert_eq!(PreKeyBundle::from_bytes(&bad), Err(Error::InvalidPublicKey));
        }
    }
    for flag in 2..=u8::MAX {
        let bad = with(&with_opk, |b| b[OPK_FLAG] = flag);
        assert_eq!(PreKeyBundle::from_bytes(&bad), Err(Error::InvalidEncoding));
    }
    let bad = with(&without, |b| b[BUNDLE_LENGTH - 1] = 9);
    assert_eq!(PreKeyBundle::from_bytes(&bad), Err(Error::InvalidEncoding));
    // A bad signature parses (the bundle is public data) but never starts a session.
    let forged = PreKeyBundle::from_bytes(&with(&with_opk, |b| b[SIGNATURE + 10] ^= 4)).unwrap();
    assert_eq!(forged.verify(), Err(Error::InvalidSignature));
    let mut rng = rng(17);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    assert_eq!(
        Session::initiate(&alice, &forged, &SessionOptions::new(), &mut rng).err(),
        Some(Error::InvalidSignature)
    );
}

#[test]
fn unsealed_key_blobs_have_no_integrity() {
    // Documents why keys at rest should be sealed: the plain encodings of secrets carry
    // no check, so a changed secret byte loads as a different key.
    let mut rng = rng(18);
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let changed = with(&id.to_bytes(), |b| b[10] ^= 1);
    let loaded = IdentityKeyPair::from_bytes(&changed).unwrap();
    assert_ne!(loaded.public_key(), id.public_key());
    // A signed prekey's signature is kept as stored, not checked on load: a changed secret
    // loads with the old signature over the old public key, so the public part it gives
    // no longer verifies, and a bundle assembled from it is refused.
    let spk = SignedPreKey::generate(&id, SignedPreKeyId::from_u64(1), &mut rng).unwrap();
    let changed = SignedPreKey::from_bytes(&with(&spk.to_bytes(), |b| b[40] ^= 1)).unwrap();
    assert_eq!(changed.signature(), spk.signature());
    assert_ne!(changed.public_key(), spk.public_key());
    let part = SignedPreKeyPublic::from_key(&changed, 0).unwrap();
    assert_eq!(
        PreKeyBundle::assemble(id.public_key(), &part, None).err(),
        Some(Error::InvalidSignature)
    );
}

/// SPEC.md §7: "the whole input is at most `MAX_STORED_SIZE` ... or `TooLarge`".
#[test]
fn oversized_session_blob_is_too_large() {
    let (bytes, local) = skipped_session_bytes();
    let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
    assert_eq!(load_session(&huge, &local).err(), Some(Error::TooLarge));
    // Exactly MAX_STORED_SIZE is not refused for its size.
    let max = with(&bytes, |b| b.resize(MAX_STORED_SIZE, 0));
    assert_eq!(load_session(&max, &local).err(), Some(Error::TrailingData));
}

/// The same rule for the other stored types (SPEC.md §7 states it for every stored
/// object). Minimal repro:
/// `IdentityKeyPair::from_bytes(&[valid 34 bytes, then zeros up to MAX_STORED_SIZE + 1])`
/// returns `Err(TrailingData)`, not `Err(TooLarge)`; the same for `SignedPreKey`,
/// `OneTimePreKey` and `LocalDevice`. Only `Session::from_bytes` (and `StorageKey::open`)
/// check the size first.
#[test]
fn oversized_stored_objects_are_too_large() {
    for (name, type_byte, bytes, local) in sample_blobs() {
        if type_byte == TYPE_BUNDLE || type_byte == TYPE_BUNDLE_PQ {
            continue; // a wire object (SPEC.md §5), not a stored one
        }
        let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
        assert_eq!(
            load_as(type_byte, &huge, &local),
            Err(Error::TooLarge),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// One sealed blob of every sealable type, with its object type, plain encoding, and the
/// identity key of the device that opens it (a session's own local identity, [`stranger`]
/// for the others).
fn sealed_samples(key: &StorageKey, rng: &mut ChaCha20Rng) -> Vec<SealedSample> {
    let mut out: Vec<(String, u8, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut sessions = Vec::new();
    for (name, session) in sample_sessions() {
        let sealed = key.seal(&session, CONTEXT, rng).unwrap();
        sessions.push((
            format!("session: {name}"),
            TYPE_SESSION,
            stored(&session),
            sealed,
            *session.local_identity(),
        ));
    }
    let id = IdentityKeyPair::generate(rng).unwrap();
    let spk = SignedPreKey::generate(&id, SignedPreKeyId::from_u64(5), rng).unwrap();
    let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(6), rng).unwrap();
    let (_, store) = sample_store(19);
    out.push((
        "identity".into(),
        TYPE_IDENTITY,
        id.to_bytes().to_vec(),
        key.seal(&id, CONTEXT, rng).unwrap(),
    ));
    out.push((
        "signed prekey".into(),
        TYPE_SIGNED_PREKEY,
        spk.to_bytes().to_vec(),
        key.seal(&spk, CONTEXT, rng).unwrap(),
    ));
    out.push((
        "one-time prekey".into(),
        TYPE_ONE_TIME_PREKEY,
        opk.to_bytes().to_vec(),
        key.seal(&opk, CONTEXT, rng).unwrap(),
    ));
    out.push((
        "prekey store".into(),
        TYPE_LOCAL_DEVICE,
        store.to_bytes().to_vec(),
        key.seal(&store, CONTEXT, rng).unwrap(),
    ));
    #[cfg(feature = "pqxdh")]
    {
        let pq = pq_samples(30);
        for (name, session) in [
            ("PQXDH initiator awaiting a reply", &pq.initiator_awaiting),
            ("PQXDH responder", &pq.responder),
        ] {
            let sealed = key.seal(session, CONTEXT, rng).unwrap();
            sessions.push((
                format!("session: {name}"),
                TYPE_SESSION,
                stored(session),
                sealed,
                *session.local_identity(),
            ));
        }
        out.push((
            "PQXDH prekey store".into(),
            TYPE_LOCAL_DEVICE,
            pq.store.to_bytes().to_vec(),
            key.seal(&pq.store, CONTEXT, rng).unwrap(),
        ));
        out.push((
            "PQ prekey".into(),
            TYPE_PQ_PREKEY,
            pq.one_time.to_bytes().to_vec(),
            key.seal(&pq.one_time, CONTEXT, rng).unwrap(),
        ));
    }
    let stranger = stranger();
    sessions.extend(
        out.into_iter()
            .map(|(name, type_byte, plain, sealed)| (name, type_byte, plain, sealed, stranger)),
    );
    sessions
}

/// A sealed sample: name, object type, plain encoding, sealed blob, the opener's identity.
type SealedSample = (String, u8, Vec<u8>, Vec<u8>, IdentityKey);

#[test]
fn seal_open_round_trips_every_type() {
    let mut rng = rng(20);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, plain, sealed, local) in sealed_samples(&key, &mut rng) {
        assert_eq!(
            sealed[..3],
            [STORAGE_VERSION, TYPE_SEALED, type_byte],
            "{name}"
        );
        assert_eq!(sealed.len(), SEALED_HEADER + plain.len() + TAG, "{name}");
        // The plaintext does not appear in the blob.
        assert!(
            !sealed
                .windows(32)
                .any(|w| plain.windows(32).any(|p| p == w) && w.iter().any(|b| *b != 0)),
            "{name}"
        );
        assert_eq!(
            open_as(&key, type_byte, &sealed, &local).unwrap(),
            plain,
            "{name}"
        );
    }
    // A fresh nonce per seal; the same RNG state gives the same blob.
    let (_, a, _, _) = established_pair(21);
    let mut r1 = rng.clone();
    let s1 = key.seal(&a, CONTEXT, &mut rng).unwrap();
    let s2 = key.seal(&a, CONTEXT, &mut rng).unwrap();
    assert_ne!(s1[3..15], s2[3..15]);
    assert_eq!(key.seal(&a, CONTEXT, &mut r1).unwrap(), s1);
    // A session opened from a sealed blob goes on with the conversation.
    let (_, mut a, mut b, mut rng) = established_pair(22);
    let sealed_b = key.seal(&b, CONTEXT, &mut rng).unwrap();
    let m = a.encrypt(b"after sealing", &mut rng).unwrap();
    let mut opened = key
        .open_session(&sealed_b, CONTEXT, b.local_identity())
        .unwrap();
    assert_eq!(
        assert_same_decryption(&mut b, &mut opened, &m).unwrap(),
        b"after sealing"
    );
}

#[test]
fn every_bit_flip_of_a_sealed_blob_is_rejected() {
    let mut rng = rng(23);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, _, sealed, local) in sealed_samples(&key, &mut rng) {
        for at in 0..sealed.len() {
            for bit in 0..8 {
                let flipped = with(&sealed, |b| b[at] ^= 1 << bit);
                let expected = match at {
                    0 => Error::UnsupportedVersion(STORAGE_VERSION ^ (1 << bit)),
                    1 => Error::UnexpectedType(TYPE_SEALED ^ (1 << bit)),
                    2 => Error::UnexpectedType(type_byte ^ (1 << bit)),
                    _ => Error::DecryptionFailed,
                };
                assert_eq!(
                    open_as(&key, type_byte, &flipped, &local),
                    Err(expected),
                    "{name}: byte {at} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_of_a_sealed_blob_is_rejected() {
    let mut rng = rng(24);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, _, sealed, local) in sealed_samples(&key, &mut rng) {
        for len in 0..sealed.len() {
            let expected = if len < SEALED_HEADER + TAG {
                Error::Truncated
            } else {
                Error::DecryptionFailed
            };
            assert_eq!(
                open_as(&key, type_byte, &sealed[..len], &local),
                Err(expected),
                "{name}: {len} bytes"
            );
        }
        for extra in [&[0u8][..], &[0; 16]] {
            assert_eq!(
                open_as(&key, type_byte, &[&sealed[..], extra].concat(), &local),
                Err(Error::DecryptionFailed),
                "{name} + {} bytes",
                extra.len()
            );
        }
    }
}

#[test]
fn sealed_blob_under_the_wrong_key_or_type_is_rejected() {
    let mut rng = rng(25);
    let key = StorageKey::generate(&mut rng).unwrap();
    let other = StorageKey::from_bytes([7; 32]);
    for (name, type_byte, plain, sealed, local) in sealed_samples(&key, &mut rng) {
        assert_eq!(
            open_as(&other, type_byte, &sealed, &local),
            Err(Error::DecryptionFailed),
            "{name}"
        );
        for &as_type in SEALABLE_TYPES.iter().filter(|t| **t != type_byte) {
            // Opened as another type: refused on the object type byte.
            assert_eq!(
                open_as(&key, as_type, &sealed, &local),
                Err(Error::UnexpectedType(type_byte)),
                "{name} as {as_type:#x}"
            );
            // The attacker rewrites the object type byte: the associated data no longer
            // matches, so it does not authenticate.
            let rewritten = with(&sealed, |b| b[2] = as_type);
            assert_eq!(
                open_as(&key, as_type, &rewritten, &local),
                Err(Error::DecryptionFailed),
                "{name} rewritten as {as_type:#x}"
            );
        }
        // A plain encoding is not a sealed blob, and a sealed blob is not a plain one.
        assert_eq!(
            open_as(&key, type_byte, &plain, &local),
            Err(Error::UnexpectedType(plain[1])),
            "{name}"
        );
        assert_eq!(
            load_as(type_byte, &sealed, &local),
            Err(Error::UnexpectedType(TYPE_SEALED)),
            "{name}"
        );
    }
    // The named case: an identity opened as a session (of the device of that identity).
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let sealed = key.seal(&id, CONTEXT, &mut rng).unwrap();
    assert_eq!(
        key.open_session(&sealed, CONTEXT, id.public_key()).err(),
        Some(Error::UnexpectedType(TYPE_IDENTITY))
    );
    let rewritten = with(&sealed, |b| b[2] = TYPE_SESSION);
    assert_eq!(
        key.open_session(&rewritten, CONTEXT, id.public_key()).err(),
        Some(Error::DecryptionFailed)
    );
    // Oversized input is refused before anything else.
    let huge = with(&sealed, |b| {
        b.resize(SEALED_HEADER + MAX_STORED_SIZE + TAG + 1, 0)
    });
    assert_eq!(
        key.open_session(&huge, CONTEXT, id.public_key()).err(),
        Some(Error::TooLarge)
    );
}

/// The application context is bound into a sealed blob's associated data and not stored
/// (profile v2, part 2): the blob opens only with the very context it was sealed with.
/// Another context, the empty one instead of a non-empty one (or the reverse), or a
/// context one byte longer or shorter is `DecryptionFailed`; a context longer than
/// `MAX_SEAL_CONTEXT_LENGTH` is `TooLarge`, for seal and for open.
#[test]
fn seal_context_is_bound() {
    assert_eq!(MAX_SEAL_CONTEXT_LENGTH, 1024);
    let mut rng = rng(51);
    let key = StorageKey::generate(&mut rng).unwrap();
    let longer = [CONTEXT, &[0u8][..]].concat();
    let longer_other = [CONTEXT, &b"x"[..]].concat();
    let flipped = with(CONTEXT, |c| c[0] ^= 1);
    let others: Vec<&[u8]> = vec![
        b"",
        b"\0",
        b"contacts/8/session",
        &CONTEXT[..CONTEXT.len() - 1],
        &longer,
        &longer_other,
        &flipped,
    ];
    for (name, type_byte, plain, sealed, local) in sealed_samples(&key, &mut rng) {
        assert_eq!(
            open_in(&key, type_byte, &sealed, CONTEXT, &local).unwrap(),
            plain
        );
        for other in &others {
            assert_eq!(
                open_in(&key, type_byte, &sealed, other, &local),
                Err(Error::DecryptionFailed),
                "{name} opened with {other:?}"
            );
        }
    }
    // The empty context is a context like any other: a blob sealed with it opens with it
    // only.
    let (_, a, _, _) = established_pair(52);
    let alice = *a.local_identity();
    let empty = key.seal(&a, b"", &mut rng).unwrap();
    assert_eq!(
        stored(&key.open_session(&empty, b"", &alice).unwrap()),
        stored(&a)
    );
    for other in [&b"\0"[..], b" ", CONTEXT] {
        assert_eq!(
            key.open_session(&empty, other, &alice).err(),
            Some(Error::DecryptionFailed),
            "{other:?}"
        );
    }
    // Not stored: with the same nonce, blobs for two contexts have the same length and
    // framing, and differ in the ciphertext and tag.
    let mut r1 = rng.clone();
    let mut r2 = rng.clone();
    let long = vec![0xc7; MAX_SEAL_CONTEXT_LENGTH];
    let s1 = key.seal(&a, b"", &mut r1).unwrap();
    let s2 = key.seal(&a, &long, &mut r2).unwrap();
    assert_eq!(s1.len(), SEALED_HEADER + stored(&a).len() + TAG);
    assert_eq!(s1.len(), s2.len());
    assert_eq!(s1[..SEALED_HEADER], s2[..SEALED_HEADER]);
    assert_ne!(s1[SEALED_HEADER..], s2[SEALED_HEADER..]);
    // The longest context: 1024 bytes seal and open; one byte more is TooLarge.
    assert_eq!(
        stored(&key.open_session(&s2, &long, &alice).unwrap()),
        stored(&a)
    );
    let too_long = vec![0xc7; MAX_SEAL_CONTEXT_LENGTH + 1];
    assert_eq!(
        key.seal(&a, &too_long, &mut rng).err(),
        Some(Error::TooLarge)
    );
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let (_, store) = sample_store(53);
    assert_eq!(
        key.seal(&id, &too_long, &mut rng).err(),
        Some(Error::TooLarge)
    );
    assert_eq!(
        key.seal(&store, &too_long, &mut rng).err(),
        Some(Error::TooLarge)
    );
    assert_eq!(
        key.open_session(&s2, &too_long, &alice).err(),
        Some(Error::TooLarge)
    );
    for (name, type_byte, plain, sealed, local) in sealed_samples(&key, &mut rng) {
        assert_eq!(
            open_in(&key, type_byte, &sealed, &too_long, &local),
            Err(Error::TooLarge),
            "{name}"
        );
        // Checked before anything else is read: a truncated blob, a plain encoding, a
        // blob of another object type, a wrong version.
        for bad in [
            &sealed[..0],
            &sealed[..SEALED_HEADER],
            &plain[..],
            &with(&sealed, |b| b[0] = V1)[..],
            &with(&sealed, |b| b[2] ^= 0x0f)[..],
        ] {
            assert_eq!(
                open_in(&key, type_byte, bad, &too_long, &local),
                Err(Error::TooLarge),
                "{name}"
            );
        }
    }
    // An oversized blob is TooLarge whatever the context.
    let huge = with(&s1, |b| {
        b.resize(SEALED_HEADER + MAX_STORED_SIZE + TAG + 1, 0)
    });
    for context in [&b""[..], &long, &too_long] {
        assert_eq!(
            key.open_session(&huge, context, &alice).err(),
            Some(Error::TooLarge)
        );
    }
    // A blob made for one row does not open as another row's: the app's copy-paste
    // attack the context exists for.
    let row_a = key.seal(&a, b"contacts/1/session", &mut rng).unwrap();
    assert_eq!(
        key.open_session(&row_a, b"contacts/2/session", &alice)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

/// The sealed blob is exactly the construction of SPEC.md §7.6 with the context (profile
/// v2, part 2): `version | 0x30 | T | nonce | AES-256-GCM-SIV(K, nonce, AD, obj)` with
/// `AD = "doubleratchet v2 sealed" || version || 0x30 || T || u32(len(context)) ||
/// context`, checked with the `aes-gcm-siv` crate directly.
#[test]
fn sealed_blob_is_the_spec_construction() {
    use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
    use aes_gcm_siv::{Aes256GcmSiv, Nonce};

    let key_bytes = [0x42u8; 32];
    let key = StorageKey::from_bytes(key_bytes);
    let cipher = Aes256GcmSiv::new_from_slice(&key_bytes).unwrap();
    let check = |name: &str, type_byte: u8, plain: &[u8], sealed: &[u8], context: &[u8]| {
        assert_eq!(
            sealed[..3],
            [STORAGE_VERSION, TYPE_SEALED, type_byte],
            "{name}"
        );
        let mut aad = b"doubleratchet v2 sealed".to_vec();
        aad.extend_from_slice(&[STORAGE_VERSION, TYPE_SEALED, type_byte]);
        aad.extend_from_slice(&(context.len() as u32).to_be_bytes());
        aad.extend_from_slice(context);
        let nonce: [u8; 12] = sealed[3..SEALED_HEADER].try_into().unwrap();
        let open = |aad: &[u8]| {
            cipher.decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[SEALED_HEADER..],
                    aad,
                },
            )
        };
        assert_eq!(open(&aad).unwrap(), plain, "{name}");
        // Without the context's length, or without the context, it does not open.
        let without_length = [&aad[..aad.len() - context.len() - 4], context].concat();
        assert!(open(&without_length).is_err(), "{name}");
        if !context.is_empty() {
            assert!(open(&aad[..aad.len() - context.len()]).is_err(), "{name}");
        }
    };
    let mut rng = rng(54);
    for (name, type_byte, plain, sealed, _) in sealed_samples(&key, &mut rng) {
        check(&name, type_byte, &plain, &sealed, CONTEXT);
    }
    let (_, a, _, _) = established_pair(55);
    let (_, store) = sample_store(56);
    let long = vec![0x99; MAX_SEAL_CONTEXT_LENGTH];
    for context in [&b""[..], &long] {
        let sealed = key.seal(&a, context, &mut rng).unwrap();
        check("session", TYPE_SESSION, &stored(&a), &sealed, context);
        let sealed = key.seal(&store, context, &mut rng).unwrap();
        check(
            "store",
            TYPE_LOCAL_DEVICE,
            &store.to_bytes(),
            &sealed,
            context,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Replay after reload, and the app loop
// ---------------------------------------------------------------------------------------

/// Reloading an older stored state brings back the keys it held, so a message decrypted
/// since then decrypts again. That is inherent to storing state: the app must store the
/// session after every successful `decrypt` (and `encrypt`), before acting on the
/// plaintext, and must never load an older copy. Loading the state stored after the
/// message rejects it.
#[test]
fn replay_after_reload_of_old_state() {
    let Skipped {
        mut a,
        mut b,
        mut rng,
        to_b,
        ..
    } = conversation_with_skipped_keys(26);
    let bob = *b.local_identity();
    // (1) The next message of the current chain (a1-3).
    let (next, plaintext) = &to_b[6];
    let before = stored(&b);
    assert_eq!(&b.decrypt(next).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(
        &load(&before, &bob).decrypt(next).unwrap(),
        plaintext,
        "old state decrypts again"
    );
    assert_eq!(
        load(&after, &bob).decrypt(next),
        Err(Error::DuplicateOrExpired)
    );
    // (2) A message decrypted with a stored skipped key of the current chain (a1-0).
    let (skipped_current, plaintext) = &to_b[4];
    let before = stored(&b);
    assert_eq!(&b.decrypt(skipped_current).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(
        get_u32(&after, layout(&after).count()) + 1,
        get_u32(&before, layout(&before).count())
    );
    assert_eq!(
        &load(&before, &bob).decrypt(skipped_current).unwrap(),
        plaintext
    );
    assert_eq!(
        load(&after, &bob).decrypt(skipped_current),
        Err(Error::DuplicateOrExpired)
    );
    // (3) A message of an older chain: with its key gone, it looks like a new ratchet key
    // that does not authenticate, so the error is DecryptionFailed, not DuplicateOrExpired.
    let (old_chain, plaintext) = &to_b[0]; // a0-0, an initial message
    let before = stored(&b);
    assert_eq!(&b.decrypt(old_chain).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(&load(&before, &bob).decrypt(old_chain).unwrap(), plaintext);
    let mut reloaded = load(&after, &bob);
    assert_eq!(reloaded.decrypt(old_chain), Err(Error::DecryptionFailed));
    // The failed attempt changed nothing.
    assert_eq!(stored(&reloaded), after);
    // (4) The first message of a new chain from Alice.
    let m = a.encrypt(b"new chain", &mut rng).unwrap();
    let before = stored(&b);
    assert_eq!(b.decrypt(&m).unwrap(), b"new chain");
    let after = stored(&b);
    let (lb, la) = (layout(&before), layout(&after));
    assert_ne!(before[lb.dhr()..lb.cks()], after[la.dhr()..la.cks()]);
    assert_eq!(load(&before, &bob).decrypt(&m).unwrap(), b"new chain");
    assert_eq!(
        load(&after, &bob).decrypt(&m),
        Err(Error::DuplicateOrExpired)
    );
}

/// `open` loads what `save` stored, for the device whose identity key it is given.
fn app_loop(
    seed: u64,
    save: impl Fn(&Session, &mut ChaCha20Rng) -> Vec<u8>,
    open: impl Fn(&[u8], &IdentityKey) -> Session,
) {
    let (_, a, b, mut rng) = accepted_pair(seed);
    // What the app knows of its own device, beside the stored bytes.
    let (alice, bob) = (*a.local_identity(), *b.local_identity());
    // The app keeps only the stored bytes between messages.
    let mut stored_a = save(&a, &mut rng);
    let mut stored_b = save(&b, &mut rng);
    drop((a, b));
    let mut sent = [0usize; 2];
    let mut step = 0u64;
    while sent[0] < 200 || sent[1] < 200 {
        // Bursts of one to three messages in a direction, alternating.
        let a_to_b = (step.is_multiple_of(2) && sent[0] < 200) || sent[1] >= 200;
        let burst = 1 + (step * 7 % 3) as usize;
        for _ in 0..burst {
            let (from_store, to_store, count, from, to) = if a_to_b {
                (&mut stored_a, &mut stored_b, &mut sent[0], &alice, &bob)
            } else {
                (&mut stored_b, &mut stored_a, &mut sent[1], &bob, &alice)
            };
            if *count >= 200 {
                break;
            }
            let plaintext = format!("{} #{count}", if a_to_b { "a->b" } else { "b->a" });
            let mut sender = open(from_store, from);
            let message = sender.encrypt(plaintext.as_bytes(), &mut rng).unwrap();
            *from_store = save(&sender, &mut rng);
            let mut receiver = open(to_store, to);
            assert_eq!(receiver.decrypt(&message).unwrap(), plaintext.as_bytes());
            *to_store = save(&receiver, &mut rng);
            // The stored receiver rejects the message it has already processed.
            assert!(open(to_store, to).decrypt(&message).is_err());
            *count += 1;
        }
        step += 1;
    }
    let a = open(&stored_a, &alice);
    let b = open(&stored_b, &bob);
    assert_eq!(a.id(), b.id());
    assert_eq!(a.stored_skipped_keys(), 0);
    assert_eq!(b.stored_skipped_keys(), 0);
    assert!(!a.awaiting_reply());
}

#[test]
fn app_loop_stores_after_every_message() {
    app_loop(27, |s, _| stored(s), load);
}

#[test]
fn app_loop_with_sealed_storage() {
    let key = StorageKey::from_bytes([0x5a; 32]);
    app_loop(
        28,
        |s, rng| key.seal(s, CONTEXT, rng).unwrap(),
        |blob, local| key.open_session(blob, CONTEXT, local).unwrap(),
    );
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

/// Prints the measured sizes (run with `--nocapture`) and checks them.
#[test]
fn storage_sizes() {
    let mut rng = rng(29);
    let mut parties = Parties::new(&mut rng);
    let mut a = parties.initiate(&mut rng);
    let fresh_initiator = stored(&a).len();
    let first = a.encrypt(b"hello", &mut rng).unwrap();
    let (mut b, _) = parties.accept(&first, Limits::default()).unwrap();
    let fresh_responder = stored(&b).len();

    // 1,000 messages each way, alternating in bursts of 1-4 (so with ratchet steps).
    let mut count = [0u32; 2];
    let mut turn = 0u32;
    while count[1] < 1000 {
        for _ in 0..=(turn % 4) {
            if count[1] < 1000 {
                let m = b.encrypt(b"from b", &mut rng).unwrap();
                assert_eq!(a.decrypt(&m).unwrap(), b"from b");
                count[1] += 1;
            }
        }
        for _ in 0..=((turn + 2) % 4) {
            if count[0] < 999 {
                let m = a.encrypt(b"from a", &mut rng).unwrap();
                assert_eq!(b.decrypt(&m).unwrap(), b"from a");
                count[0] += 1;
            }
        }
        turn += 1;
    }
    assert_eq!(count, [999, 1000]); // plus "hello"
    let after_1000_a = stored(&a).len();
    let after_1000_b = stored(&b).len();

    // Skipped keys: b holds back 1,000 then 2,000 then more.
    let held: Vec<Vec<u8>> = (0..2_010)
        .map(|_| a.encrypt(b"held", &mut rng).unwrap())
        .collect();
    b.decrypt(&held[10]).unwrap();
    let with_10 = stored(&b).len();
    let per_key = (with_10 - after_1000_b) / 10;
    b.decrypt(&held[1_010]).unwrap();
    assert_eq!(b.stored_skipped_keys(), 1_009);
    b.decrypt(&held[2_009]).unwrap();
    assert_eq!(b.stored_skipped_keys(), 2_000);
    let at_cap = stored(&b).len();
    // Past the cap the oldest keys go; the size stays.
    for _ in 0..500 {
        a.encrypt(b"more", &mut rng).unwrap();
    }
    let m = a.encrypt(b"last", &mut rng).unwrap();
    b.decrypt(&m).unwrap();
    assert_eq!(b.stored_skipped_keys(), DEFAULT_MAX_STORED_SKIPPED as usize);
    assert_eq!(stored(&b).len(), at_cap);
    let key = StorageKey::from_bytes([1; 32]);
    let sealed_at_cap = key.seal(&b, CONTEXT, &mut rng).unwrap().len();
    let loaded = load(&stored(&b), b.local_identity());
    assert_eq!(loaded.stored_skipped_keys(), 2_000);

    println!("stored session sizes (bytes):");
    println!("  fresh initiator:                         {fresh_initiator}");
    println!("  fresh responder:                         {fresh_responder}");
    println!("  after 1,000 messages each way:           initiator {after_1000_a}, responder {after_1000_b}");
    println!("  per stored skipped key:                  {per_key}");
    println!("  at the default cap of 2,000 skipped keys: {at_cap} (sealed: {sealed_at_cap})");
    println!("  MAX_STORED_SIZE:                         {MAX_STORED_SIZE}");
    #[cfg(feature = "pqxdh")]
    {
        let pq = pq_samples(31);
        let awaiting = stored(&pq.initiator_awaiting).len();
        let responder = stored(&pq.responder).len();
        let established = stored(&pq.initiator_established).len();
        println!("  PQXDH initiator awaiting its reply:      {awaiting}");
        println!("  PQXDH responder / established initiator: {responder} / {established}");
        // Awaiting: CKs, both prekey ids, the post-quantum prekey id and KEM ciphertext.
        assert_eq!(awaiting, SESSION_BASE + CHAIN_KEY + 16 + PQ_PENDING);
        assert_eq!(awaiting, 1332);
        // The responder has sent its reply (both chains); the initiator has received it
        // (its sending chain deferred to its next send).
        assert_eq!(responder, SESSION_ESTABLISHED);
        assert_eq!(established, SESSION_BASE + CHAIN_KEY);
    }

    // What is stored depends on the state: the fresh initiator's sending chain and prekey
    // ids, the fresh responder's receiving chain alone; after the exchange Alice (who sent
    // last) has both chains, Bob (who received last) his receiving chain.
    assert_eq!(fresh_initiator, SESSION_BASE + CHAIN_KEY + 16);
    assert_eq!(fresh_responder, SESSION_BASE + CHAIN_KEY);
    assert_eq!(after_1000_a, SESSION_ESTABLISHED);
    assert_eq!(after_1000_b, SESSION_BASE + CHAIN_KEY);
    assert_eq!(per_key, ENTRY);
    assert_eq!(with_10, after_1000_b + 10 * ENTRY);
    assert_eq!(at_cap, after_1000_b + 2_000 * ENTRY);
    assert_eq!(sealed_at_cap, at_cap + SEALED_HEADER + TAG);
    // At least the largest session of this layout: a PQXDH initiator awaiting its reply
    // (with both chain keys and both prekey ids at most) with 100,000 skipped keys (session
    // kinds with more state may raise it further).
    const { assert!(MAX_STORED_SIZE >= SESSION_FIXED + PQ_PENDING + 100_000 * ENTRY) };
}

/// The sizes the layout of SPEC.md §7.1 gives, pinned: a session between two established
/// chains is 252 bytes (188 without chain keys, pending fields or skipped keys, 32 per
/// chain key), an X3DH initiator awaiting its reply with a one-time prekey 236 (its sending
/// chain and the two prekey ids), and header encryption adds 135 (the flags byte and the
/// header-key block).
#[test]
fn stored_session_sizes_are_pinned() {
    assert_eq!(SESSION_BASE, 188);
    assert_eq!(SESSION_ESTABLISHED, 252);
    assert_eq!(SESSION_FIXED, 268);
    assert_eq!(HE_SHIFT + HE_FIXED, 135);

    // Established: Bob has received Alice's first message and sent his reply. Alice, who
    // received it, derives her sending chain at her next send; once she has sent and Bob
    // has replied (before she receives that reply), both sides hold both chains.
    let (_, mut a, mut b, mut rng) = established_pair(59);
    let bytes = stored(&b);
    assert_eq!(
        bytes[STATE],
        STATE_RESPONDER | STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN
    );
    assert_eq!(bytes.len(), 252);
    let m = a.encrypt(b"a", &mut rng).unwrap();
    b.decrypt(&m).unwrap();
    let reply = b.encrypt(b"b", &mut rng).unwrap();
    for (name, session) in [("alice", &a), ("bob", &b)] {
        let bytes = stored(session);
        assert_eq!(
            bytes[STATE] & (STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN),
            STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN,
            "{name}"
        );
        assert_eq!(bytes.len(), 252, "{name}");
        assert_eq!(stored(&load(&bytes, session.local_identity())), bytes);
    }
    // Receiving a new chain defers the sending one again: 220 until the next send.
    a.decrypt(&reply).unwrap();
    assert_eq!(stored(&a)[STATE], STATE_RECEIVING_CHAIN);
    assert_eq!(stored(&a).len(), 252 - 32);

    // An X3DH initiator awaiting its reply, with a one-time prekey.
    let (_, a, _, _) = accepted_pair(60);
    let bytes = stored(&a);
    assert_eq!(
        bytes[STATE],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    assert_eq!(bytes.len(), 236);
    assert_eq!(stored(&load(&bytes, a.local_identity())), bytes);

    // Header-encrypted: 135 more.
    let (_, _, b, _) = established_pair_in_mode(61, false, true);
    let bytes = stored(&b);
    assert_eq!(bytes[1], TYPE_SESSION_HE);
    assert_eq!(bytes.len(), 252 + 135);
    let (_, a, _, _) = accepted_pair_in_mode(62, false, true);
    assert_eq!(stored(&a).len(), 236 + 135);
}
