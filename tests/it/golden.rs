//! Golden files of the storage format: one file per persisted type at the current format
//! version (profile v2: storage, bundle and wire version `0x02`, with part 2's 64-bit
//! prekey ids, prekey store layout and sealing context), in `tests/golden/` (see its
//! README.md).
//!
//! `golden_files` loads each file, checks that it re-encodes byte for byte, that the
//! objects fit together (the bundle and prekeys belong to the stored identity, both
//! sessions are the same session), and that each stored session still decrypts the
//! message stored next to it to the expected plaintext; the sealed session is there twice,
//! sealed with the empty context and with an application context. A change to the storage
//! format that breaks these files needs a new format version, not new files.
//!
//! `header_encrypted_golden_files` does the same for the header-encrypted session (type
//! `0x28`, flags `0x02`) and its sealed form; `post_quantum_golden_files` (with the `pqxdh`
//! feature) for the PQXDH sessions (type `0x25`, and type `0x28` with flags `0x03`), the
//! post-quantum prekey (`0x26`), the prekey store with post-quantum keys and replay records
//! (type `0x2A`, the local device) and the PQXDH bundle (`0x11`); `padding_none_golden_files`
//! for sessions whose padding policy is `Padding::None` (stored padding byte `0x00`; every
//! other stored session has the default, Padmé, `0x01`); `prekey_store_golden_files` for a
//! prekey store with replay records under two signed prekeys, a standby and one-time
//! prekeys with sequence numbers, the initial messages it refuses and accepts, and the
//! store sealed with a context. Every stored store is read field by field (`store_view`),
//! every sealed blob is checked against the construction of SPEC.md §7.6 with the
//! `aes-gcm-siv` crate (`check_sealed_construction`).
//!
//! `session_record_golden_files` checks a session record (type `0x2B`, SPEC.md §7.8) field
//! by field: Bob's record with a sending session, an archived header-encrypted session and
//! an archived retired one, skipped keys, the last decrypting session and the last reset;
//! each of its sessions decrypts the message stored for it (with the §6.4 rule applied
//! after it), the stored last reset still refuses a stale request and rate-limits a new
//! one, and the record sealed with a context opens with that context only.
//!
//! `publish_golden_files` checks the publishing formats (SPEC.md §5.9-§5.12): the public
//! parts of the stand-alone signed and one-time prekeys (types `0x13`, `0x14`) and an
//! upload set (`0x12`) holding them, field by field against the SPEC's layout and lengths,
//! each re-encoding byte for byte, the set's parts equal to the stand-alone parts, and the
//! bundle assembled from the parts equal to the bundle of the same keys (and, for the golden
//! devices `prekey_store.bin` and `pq_prekey_store.bin`, to the device's own bundle);
//! `post_quantum_publish_golden_files` (with `pqxdh`) does the same for the post-quantum
//! parts of each kind (`0x15`) and an upload set with them.
//!
//! `account_golden_files` and `contact_golden_files` check a stored account (type `0x2C`,
//! SPEC.md §7.9) and a stored contact (type `0x2D`, §7.10) field by field, with the device
//! list they embed (§9.4: layout, each device's link signature verified with
//! `ed25519-dalek` over `DEVICE_LINK_LABEL || account key || device id`, and the list
//! signature over `DEVICE_LIST_LABEL || signed part`); each re-encodes byte for byte, keeps
//! working after
//! loading (the account signs its next list, the contact's post-quantum memory refuses a
//! classical bundle), and is there sealed with a context too.
//!
//! `group_golden_files` checks a stored group (type `0x2E`, SPEC.md §7.11) and a member's
//! stored chains (type `0x2F`, §7.12: five chains, a retired id, kept keys) field by field;
//! each re-encodes byte for byte, the group encrypts exactly the next message stored next to
//! it (its commitment, ciphertext and signature recomputed with the primitive crates) and
//! gives a distribution whose sender binding verifies, the chains decrypt that message and
//! the one stored next to them with a kept key, and both are there sealed with a context.
//!
//! The files are generated deterministically from seeded RNGs by
//! `doubleratchet_test_support::golden::generate`; `tools/vectors` checks that the committed
//! files are what it generates (`cargo run -p doubleratchet-vectors`) and writes them with
//! `--write` (README.md, "Regenerating the generated files").

use doubleratchet::SessionOptions;
use doubleratchet::{
    Error, IdentityKeyPair, LocalDevice, Message, OneTimePreKey, Padding, PreKeyBundle, Role,
    Session, SignedPreKey, StorageKey, StoreNotice, BUNDLE_LENGTH, BUNDLE_VERSION, PADME_MINIMUM,
    STORAGE_VERSION, WIRE_VERSION,
};
use doubleratchet::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
use doubleratchet::{OneTimePreKeyPublic, SignedPreKeyPublic, UploadSet};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind, PqPreKeyPublic, PQ_BUNDLE_LENGTH};
use doubleratchet::{RecordLimits, RecordStatus, ResetOutcome, SessionRecord};
use doubleratchet_test_support::golden::{
    all_files, generate, read, rng_for_context_seal, rng_for_he_seal, rng_for_seal,
    rng_for_store_seal, storage_key, FILES, HE_FILES, HE_HEADER_KEYS, HE_NEXT, HE_SEALED_NEXT,
    HE_SKIPPED, INITIATOR_NEXT, PADDING_NONE_FILES, PADDING_NONE_INITIATOR_NEXT,
    PADDING_NONE_RESPONDER_NEXT, RESPONDER_NEXT, RESPONDER_SKIPPED, SESSION_CONTEXT, STORE_CONTEXT,
    STORE_FILES, STORE_NEXT, STORE_REPLAY_CAPACITY,
};
use doubleratchet_test_support::golden::{
    record_limits, rng_for_record_seal, RECORD_ARCHIVED_NEXT, RECORD_CONTEXT, RECORD_CREATED,
    RECORD_FILES, RECORD_NEXT, RECORD_RESET, RECORD_RETIRED_NEXT, RECORD_SKIPPED,
};
use doubleratchet_test_support::golden::{
    rng_for_account_seal, rng_for_contact_seal, ACCOUNT_CONTEXT, ACCOUNT_COUNTER, ACCOUNT_FILES,
    BOB_DEVICE_ID, BOB_REMOVED_DEVICE_ID, BOB_SECOND_DEVICE_ID, CONTACT_CONTEXT, CONTACT_FILES,
};
use doubleratchet_test_support::golden::{
    rng_for_group_seal, rng_for_member_chains_seal, GROUP_CONTEXT, GROUP_FILES, GROUP_NEXT,
    MEMBER_CHAINS_CONTEXT, MEMBER_CHAINS_NEXT, MEMBER_CHAINS_SKIPPED,
};
#[cfg(feature = "pqxdh")]
use doubleratchet_test_support::golden::{
    HE_PQ_HEADER_KEYS, HE_PQ_NEXT, HE_PQ_SKIPPED, LAST_RESORT_CREATED, PQ_FILES, PQ_INITIATOR_NEXT,
    PQ_PUBLISH_FILES, PQ_RESPONDER_NEXT, PQ_RESPONDER_SKIPPED, PUBLISH_PQ_ONE_TIME_IDS,
};
use doubleratchet_test_support::golden::{
    PUBLISH_FILES, PUBLISH_ONE_TIME_ID, SIGNED_PREKEY_CREATED,
};
#[cfg(feature = "pqxdh")]
use doubleratchet_test_support::pq_bundle_of;
use doubleratchet_test_support::storage::{
    STATE_AWAITING_REPLY, STATE_ONE_TIME_PREKEY, STATE_RECEIVING_CHAIN, STATE_SENDING_CHAIN,
};
use doubleratchet_test_support::{
    bundle_of, device_of, load, padding_offset, ratchet_view, rng, stored, Cursor,
};

/// The format version every golden file is at: storage (SPEC.md §7), bundle (§5.4) and
/// wire (§5.2-§5.3) version `0x02` of profile v2. (The v1 files were dropped with v1,
/// which was never released.)
const FORMAT_VERSION: u8 = 0x02;

/// Where a stored session's pending fields start (SPEC.md §7.1): after the version, the
/// type, the state flags, the remote identity key and `EK_A` (2 x 32). (The local identity
/// key is not stored: the loading device passes its own.) Type `0x28` has a flags byte
/// after the state flags, which moves every later offset by one.
const PENDING_OFFSET: usize = 3 + 2 * 32;
/// The pending fields of an X3DH initiator awaiting its reply with a one-time prekey (state
/// flags `0x02 | 0x04`): the signed and the one-time prekey id.
const PENDING_LENGTH: usize = 8 + 8;
/// A stored session's padding byte without pending fields: after the limits (4 + 4). An
/// initiator awaiting its reply has its pending fields before the limits.
const PADDING_OFFSET: usize = PENDING_OFFSET + 8;
/// A stored session (type `0x20`) with neither chain key, pending fields nor skipped keys:
/// the fields up to the padding byte, the padding byte, `RK`, `DHs`, `DHr` (3 x 32), `Ns`,
/// `Nr`, `PN` and the count of skipped keys (4 x 4).
const SESSION_BASE_LENGTH: usize = PADDING_OFFSET + 1 + 3 * 32 + 4 * 4;
/// A chain key (`CKs`, `CKr`): stored only when its bit of the state flags is set.
const CHAIN_KEY_LENGTH: usize = 32;
/// A session between two established chains, without skipped keys (type `0x20`).
const SESSION_LENGTH: usize = SESSION_BASE_LENGTH + 2 * CHAIN_KEY_LENGTH;
/// An X3DH initiator awaiting its reply, with a one-time prekey: its sending chain and the
/// two prekey ids.
const INITIATOR_LENGTH: usize = SESSION_BASE_LENGTH + CHAIN_KEY_LENGTH + PENDING_LENGTH;
/// A session whose last step was a receiving DH ratchet step (a responder that has not
/// sent yet, an initiator that has received since it last sent): `CKr` only, its sending
/// chain derived at its next send.
const RECEIVED_LENGTH: usize = SESSION_BASE_LENGTH + CHAIN_KEY_LENGTH;
/// What a header-encrypted session (type `0x28`) without skipped keys adds: a flags byte,
/// `HKs`, `HKr` (each a flag and 32 bytes), `NHKs`, `NHKr` and a count.
const HE_LENGTH: usize = 1 + 2 * 33 + 2 * 32 + 4;
/// What a PQXDH session awaiting its reply stores in addition: the post-quantum prekey id
/// and the KEM ciphertext.
#[cfg(feature = "pqxdh")]
const PQ_PENDING_LENGTH: usize = 8 + 1088;
/// The state flags of a stored session (SPEC.md §7.1, byte 2): the responder's session.
/// (The other bits are those of `doubleratchet_test_support::storage`.)
const STATE_RESPONDER: u8 = 0x01;
/// Stored prekeys (SPEC.md §7.3, §7.4, §3.6), each `version | type | id (8 bytes) | ...`.
const SIGNED_PREKEY_LENGTH: usize = 2 + 8 + 32 + 64;
const ONE_TIME_PREKEY_LENGTH: usize = 2 + 8 + 32;
const PQ_PREKEY_LENGTH: usize = 2 + 8 + 1 + 64 + 64;
/// The publishing formats (SPEC.md §5.9-§5.12), each `version | type | ...`: a signed
/// prekey's public part (id, `SPK`, signature, creation time), a one-time prekey's (id,
/// `OPK`), a post-quantum prekey's (id, kind, `ek`, signature, creation time), and an
/// upload set without one-time prekeys (`IK`, the signed part, the last-resort flag and
/// part or zeros, the two counts).
const SIGNED_PREKEY_PUBLIC_LENGTH: usize = 2 + 8 + 32 + 64 + 8;
const ONE_TIME_PREKEY_PUBLIC_LENGTH: usize = 2 + 8 + 32;
const PQ_PREKEY_PUBLIC_LENGTH: usize = 2 + 8 + 1 + 1184 + 64 + 8;
const UPLOAD_SET_FIXED_LENGTH: usize =
    2 + 32 + SIGNED_PREKEY_PUBLIC_LENGTH + 1 + PQ_PREKEY_PUBLIC_LENGTH + 4 + 4;
/// Where an upload set's fields sit (SPEC.md §5.12): the signed prekey's part, the
/// last-resort flag, the last-resort part (or zeros), and the one-time prekeys' count
/// (their parts follow it).
const SET_SIGNED: core::ops::Range<usize> = 34..34 + SIGNED_PREKEY_PUBLIC_LENGTH;
const SET_LAST_RESORT_FLAG: usize = 148;
const SET_LAST_RESORT: core::ops::Range<usize> = 149..149 + PQ_PREKEY_PUBLIC_LENGTH;
const SET_ONE_TIME_COUNT: core::ops::Range<usize> = 1416..1420;
/// The stored padding byte of each policy.
const PADDING_NONE_BYTE: u8 = 0x00;
const PADDING_PADME_BYTE: u8 = 0x01;
/// Length of the AEAD tag after every message body.
const TAG: usize = 16;
/// Every golden plaintext is shorter than 64 bytes, so Padmé (the default policy) pads it
/// to the 64-byte minimum (SPEC.md §4.9): every such body is 64 + 16 bytes on the wire.
const PADME_BODY: usize = 64 + TAG;

/// The version byte a golden file starts with: its format family's (SPEC.md §5.1). The
/// public prekey parts and upload sets (§5.9-§5.12) are of the bundle family.
fn family_version(name: &str) -> u8 {
    if name.ends_with("_message.bin") {
        WIRE_VERSION
    } else if name.contains("bundle") || name.contains("_public") || name.contains("upload_set") {
        BUNDLE_VERSION
    } else {
        STORAGE_VERSION
    }
}

/// Reads the files of a group and checks that they are at the current format version,
/// which is the one the files pin.
fn check_versions(names: &[&str]) {
    assert_eq!(
        [STORAGE_VERSION, BUNDLE_VERSION, WIRE_VERSION],
        [FORMAT_VERSION; 3],
        "the golden files pin version 0x02 of storage, bundles and messages"
    );
    for name in names {
        let bytes = read(name);
        assert_eq!(
            bytes[0],
            family_version(name),
            "{name}: not at the current format version"
        );
        assert_eq!(bytes[0], FORMAT_VERSION, "{name}");
    }
}

/// Checks that `bytes` parse as a message that encodes back to the same bytes, of type
/// `kind`.
fn check_message(name: &str, bytes: &[u8], kind: u8) {
    assert_eq!(bytes[1], kind, "{name}: message type");
    assert_eq!(Message::parse(bytes).unwrap().to_bytes(), bytes, "{name}");
}

/// Checks that the message's body (encoded plaintext and tag, SPEC.md §4.9) is `body`
/// bytes long.
fn check_body(name: &str, bytes: &[u8], body: usize) {
    assert_eq!(
        Message::parse(bytes).unwrap().ciphertext_len(),
        body,
        "{name}: body length"
    );
}

/// A stored local device (type `0x2A`; SPEC.md §7.5), field by field.
#[derive(Debug)]
struct StoreView {
    capacity: u32,
    one_time_cap: u32,
    next_sequence: u64,
    current: SignedPreKeyId,
    /// Each accepted signed prekey's id, creation time, replacement time and replay
    /// records, as stored.
    signed: Vec<SignedView>,
    standby: Option<SignedPreKeyId>,
    /// `(sequence, published, id)` of each one-time prekey, as stored.
    one_time: Vec<(u64, bool, OneTimePreKeyId)>,
    pq_current: Option<PqPreKeyId>,
    /// `(sequence, published, id, kind byte, created, superseded)` of each post-quantum
    /// prekey, as stored.
    pq: Vec<PqView>,
}

/// One stored signed prekey entry.
#[derive(Debug)]
struct SignedView {
    id: SignedPreKeyId,
    created: u64,
    superseded: Option<u64>,
    records: Vec<[u8; 32]>,
}

/// One stored post-quantum prekey entry: sequence, published, id, kind byte, times.
type PqView = (u64, bool, PqPreKeyId, u8, u64, Option<u64>);

impl StoreView {
    /// The records of the accepted signed prekey `id`.
    fn records(&self, id: SignedPreKeyId) -> &[[u8; 32]] {
        &self.signed.iter().find(|e| e.id == id).unwrap().records
    }

    /// The accepted signed prekeys' ids, as stored (ascending).
    fn signed_ids(&self) -> Vec<SignedPreKeyId> {
        self.signed.iter().map(|e| e.id).collect()
    }

    /// The one-time prekeys' ids, oldest (lowest sequence number) first.
    fn one_time_by_age(&self) -> Vec<OneTimePreKeyId> {
        let mut aged = self.one_time.clone();
        aged.sort_unstable();
        aged.into_iter().map(|(_, _, id)| id).collect()
    }

    /// The one-time prekeys' sequence numbers, ascending.
    fn one_time_sequences(&self) -> Vec<u64> {
        let mut sequences: Vec<u64> = self.one_time.iter().map(|(s, _, _)| *s).collect();
        sequences.sort_unstable();
        sequences
    }
}

/// Reads a stored local device; panics on anything but the layout below, to the last
/// byte, and checks the rules every stored device keeps: ids never 0 and strictly
/// increasing, records strictly increasing, the current id among the accepted signed
/// prekeys and the only one without a replacement time, the standby not among them,
/// sequence numbers distinct and below the next one.
///
/// ```text
/// 02 | 2A | 02 21 seed(32) | capacity u32 | one-time cap u32 | next sequence u64
/// current id u64 | s u32
/// s x { 02 22 id(8) secret(32) sig(64) | created u64 | replaced flag | u64 | r u32 | r x EK_A(32) }
/// standby flag | 02 22 id(8) secret(32) sig(64) | created u64, or 114 zeros
/// t u32 | t x { sequence u64 | published u8 | 02 23 id(8) secret(32) }
/// current PQ last-resort flag | id u64 (zero if absent)
/// q u32 | q x { sequence u64 | published u8 | 02 26 id(8) kind(1) seed(64) sig(64)
///               | created u64 | replaced flag | u64 }
/// ```
fn store_view(bytes: &[u8]) -> StoreView {
    /// A stored key of type `kind` and `len` bytes: its id.
    fn key(r: &mut Cursor<'_>, kind: u8, len: usize) -> u64 {
        let key = r.take(len);
        assert_eq!(key[..2], [STORAGE_VERSION, kind]);
        u64::from_be_bytes(key[2..10].try_into().unwrap())
    }
    fn increasing(ids: impl Iterator<Item = u64>) {
        let ids: Vec<u64> = ids.collect();
        assert!(ids.iter().all(|id| *id != 0), "id 0");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
    }
    fn optional(r: &mut Cursor<'_>) -> Option<u64> {
        let flag = r.take(1)[0];
        let value = r.u64();
        match flag {
            0 => {
                assert_eq!(value, 0);
                None
            }
            1 => Some(value),
            other => panic!("flag {other}"),
        }
    }
    fn published(r: &mut Cursor<'_>) -> bool {
        match r.take(1)[0] {
            0 => false,
            1 => true,
            other => panic!("published flag {other}"),
        }
    }

    let mut r = Cursor(bytes, 0);
    assert_eq!(r.take(2), [STORAGE_VERSION, 0x2A]);
    assert_eq!(r.take(2), [STORAGE_VERSION, 0x21]);
    r.take(32);
    let capacity = r.u32();
    let one_time_cap = r.u32();
    let next_sequence = r.u64();
    let current = SignedPreKeyId::from_u64(r.u64());
    let s = r.u32();
    let signed: Vec<SignedView> = (0..s)
        .map(|_| {
            let id = SignedPreKeyId::from_u64(key(&mut r, 0x22, SIGNED_PREKEY_LENGTH));
            let created = r.u64();
            let superseded = optional(&mut r);
            let count = r.u32();
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
    let standby = match r.take(1)[0] {
        0 => {
            assert_eq!(
                r.take(SIGNED_PREKEY_LENGTH + 8),
                [0; SIGNED_PREKEY_LENGTH + 8]
            );
            None
        }
        1 => {
            let id = key(&mut r, 0x22, SIGNED_PREKEY_LENGTH);
            r.u64();
            Some(SignedPreKeyId::from_u64(id))
        }
        other => panic!("standby flag {other}"),
    };
    let t = r.u32();
    let one_time: Vec<(u64, bool, OneTimePreKeyId)> = (0..t)
        .map(|_| {
            let sequence = r.u64();
            let published = published(&mut r);
            let id = key(&mut r, 0x23, ONE_TIME_PREKEY_LENGTH);
            (sequence, published, OneTimePreKeyId::from_u64(id))
        })
        .collect();
    let pq_current = optional(&mut r).map(PqPreKeyId::from_u64);
    let q = r.u32();
    let pq: Vec<PqView> = (0..q)
        .map(|_| {
            let sequence = r.u64();
            let published = published(&mut r);
            let key = r.take(PQ_PREKEY_LENGTH);
            assert_eq!(key[..2], [STORAGE_VERSION, 0x26]);
            let id = PqPreKeyId::from_u64(u64::from_be_bytes(key[2..10].try_into().unwrap()));
            let kind = key[10];
            let created = r.u64();
            let superseded = optional(&mut r);
            (sequence, published, id, kind, created, superseded)
        })
        .collect();
    assert_eq!(r.1, bytes.len(), "bytes after the layout of SPEC.md §7.5");

    increasing(signed.iter().map(|e| e.id.to_u64()));
    increasing(one_time.iter().map(|(_, _, id)| id.to_u64()));
    increasing(pq.iter().map(|p| p.2.to_u64()));
    assert!(signed.iter().any(|e| e.id == current), "current");
    assert!(
        signed
            .iter()
            .all(|e| (e.id == current) == e.superseded.is_none()),
        "only the current signed prekey has no replacement time"
    );
    if let Some(standby) = standby {
        assert!(standby.to_u64() != 0 && signed.iter().all(|e| e.id != standby));
    }
    let mut sequences: Vec<u64> = one_time
        .iter()
        .map(|(s, _, _)| *s)
        .chain(pq.iter().map(|p| p.0))
        .collect();
    sequences.sort_unstable();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequences");
    assert!(sequences.iter().all(|s| *s < next_sequence), "sequences");
    StoreView {
        capacity,
        one_time_cap,
        next_sequence,
        current,
        signed,
        standby,
        one_time,
        pq_current,
        pq,
    }
}

/// The base key `EK_A` of an initial message.
fn base_key(message: &[u8]) -> [u8; 32] {
    match Message::parse(message).unwrap() {
        Message::Initial(m) => m.base_key().to_bytes(),
        _ => panic!("not an initial message"),
    }
}

/// Checks a loaded session's padding policy against the byte stored for it.
fn check_padding(name: &str, bytes: &[u8], session: &Session, padding: Padding) {
    let byte = match padding {
        Padding::None => PADDING_NONE_BYTE,
        Padding::Padme => PADDING_PADME_BYTE,
        other => panic!("{name}: no stored byte known for {other:?}"),
    };
    assert_eq!(bytes[padding_offset(bytes)], byte, "{name}: padding byte");
    assert_eq!(session.padding(), padding, "{name}: padding policy");
}

#[test]
fn golden_files() {
    check_versions(&FILES);

    // Keys and the store: load and re-encode byte for byte.
    let identity_bytes = read("identity.bin");
    assert_eq!(identity_bytes.len(), 34);
    let bob = IdentityKeyPair::from_bytes(&identity_bytes).unwrap();
    assert_eq!(&bob.to_bytes()[..], &identity_bytes[..]);
    let alice_bytes = read("alice_identity.bin");
    let alice = IdentityKeyPair::from_bytes(&alice_bytes).unwrap();
    assert_eq!(&alice.to_bytes()[..], &alice_bytes[..]);

    // Stand-alone prekeys with explicit ids, 8 bytes big-endian after version and type.
    let spk_bytes = read("signed_prekey.bin");
    assert_eq!(spk_bytes.len(), SIGNED_PREKEY_LENGTH);
    assert_eq!(spk_bytes[1..10], [0x22, 0, 0, 0, 0, 0, 0, 0, 7]);
    let spk = SignedPreKey::from_bytes(&spk_bytes).unwrap();
    assert_eq!(&spk.to_bytes()[..], &spk_bytes[..]);
    assert_eq!(spk.id(), SignedPreKeyId::from_u64(7));

    let opk_bytes = read("one_time_prekey.bin");
    assert_eq!(opk_bytes.len(), ONE_TIME_PREKEY_LENGTH);
    assert_eq!(opk_bytes[1..10], [0x23, 0, 0, 0, 0, 0, 0, 0, 42]);
    let opk = OneTimePreKey::from_bytes(&opk_bytes).unwrap();
    assert_eq!(&opk.to_bytes()[..], &opk_bytes[..]);
    assert_eq!(opk.id(), OneTimePreKeyId::from_u64(42));
    // The stand-alone prekeys are signed by the stored identity.
    bundle_of(&bob, &spk, Some(&opk)).verify().unwrap();

    let bundle_bytes = read("bundle.bin");
    assert_eq!(bundle_bytes.len(), BUNDLE_LENGTH);
    assert_eq!(BUNDLE_LENGTH, 179);
    let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();
    assert_eq!(bundle.to_bytes(), bundle_bytes);
    bundle.verify().unwrap();
    assert_eq!(bundle.identity_key(), bob.public_key());
    let bundle_spk = bundle.signed_prekey_id();
    let bundle_opk = bundle.one_time_prekey_id().unwrap();
    assert_eq!(bundle_bytes[34..42], bundle_spk.to_u64().to_be_bytes());
    assert_eq!(bundle_bytes[138], 1);
    assert_eq!(bundle_bytes[139..147], bundle_opk.to_u64().to_be_bytes());

    // Bob's store after the session and a rotation: the bundle's signed prekey is still
    // accepted, the standby became current, a new standby was drawn; the bundle's one-time
    // prekey (sequence number 1 of 0..=4) was used.
    let store_bytes = read("prekey_store.bin");
    let view = store_view(&store_bytes);
    let store = LocalDevice::from_bytes(&store_bytes).unwrap();
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    let current = store.current_signed_prekey().id();
    assert_ne!(current, bundle_spk);
    assert_eq!(view.current, current);
    assert!(store.signed_prekey(bundle_spk).is_some());
    let mut accepted = [bundle_spk, current];
    accepted.sort_unstable();
    let signed = view.signed_ids();
    assert_eq!(signed, accepted);
    let standby = store.standby_signed_prekey().unwrap().id();
    assert_eq!(view.standby, Some(standby));
    assert!(
        store.signed_prekey(standby).is_none(),
        "a standby is not accepted"
    );
    // The session used a one-time prekey: no replay record.
    assert_eq!(store.replay_records(), 0);
    assert!(view.signed.iter().all(|e| e.records.is_empty()));
    assert_eq!(view.capacity, 1024);
    assert_eq!(store.replay_capacity(), 1024);
    assert_eq!(view.next_sequence, 5);
    assert_eq!(
        view.one_time_sequences(),
        [0, 2, 3, 4],
        "the one-time prekey of sequence number 1 was used by the session"
    );
    let one_time: Vec<_> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(one_time, view.one_time_by_age(), "oldest first");
    assert!(!one_time.contains(&bundle_opk));
    assert!(store.one_time_prekey(bundle_opk).is_none());
    assert_eq!((view.pq_current, view.pq.len()), (None, 0));

    // The fresh initiator (default padding, Padmé) decrypts Bob's first reply.
    let initiator_bytes = read("session_initiator.bin");
    assert_eq!(initiator_bytes.len(), INITIATOR_LENGTH);
    assert_eq!(INITIATOR_LENGTH, 236);
    assert_eq!(
        initiator_bytes[2],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    assert_eq!(initiator_bytes[3..35], bob.public_key().as_bytes()[..]);
    assert_eq!(
        initiator_bytes[PENDING_OFFSET..PENDING_OFFSET + 8],
        bundle_spk.to_u64().to_be_bytes()
    );
    assert_eq!(
        initiator_bytes[PENDING_OFFSET + 8..PENDING_OFFSET + 16],
        bundle_opk.to_u64().to_be_bytes()
    );
    assert_eq!(
        padding_offset(&initiator_bytes),
        PADDING_OFFSET + PENDING_LENGTH
    );
    let mut initiator = load(&initiator_bytes, alice.public_key());
    check_padding("initiator", &initiator_bytes, &initiator, Padding::Padme);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());
    let reply = read("session_initiator.next_message.bin");
    check_message("reply", &reply, 0x01);
    assert_eq!(PADME_MINIMUM, 64);
    check_body("reply", &reply, PADME_BODY);
    assert_eq!(initiator.decrypt(&reply).unwrap(), INITIATOR_NEXT);
    assert!(!initiator.awaiting_reply());
    assert_eq!(initiator.decrypt(&reply), Err(Error::DuplicateOrExpired));

    // The responder with skipped keys decrypts a1-0 with one of them.
    // It has not sent yet: CKr only, its sending chain waits for its first send.
    let responder_bytes = read("session_responder_with_skipped.bin");
    assert_eq!(responder_bytes[2], STATE_RESPONDER | STATE_RECEIVING_CHAIN);
    assert_eq!(responder_bytes[3..35], alice.public_key().as_bytes()[..]);
    assert_eq!(
        responder_bytes.len(),
        RECEIVED_LENGTH + 68 * RESPONDER_SKIPPED
    );
    assert_eq!(padding_offset(&responder_bytes), PADDING_OFFSET);
    let mut responder = load(&responder_bytes, bob.public_key());
    check_padding("responder", &responder_bytes, &responder, Padding::Padme);
    assert_eq!(responder.role(), Role::Responder);
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.local_identity(), bob.public_key());
    assert_eq!(responder.remote_identity(), alice.public_key());
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED);
    let next = read("session_responder_with_skipped.next_message.bin");
    check_message("responder next message", &next, 0x01);
    check_body("responder next message", &next, PADME_BODY);
    assert_eq!(responder.decrypt(&next).unwrap(), RESPONDER_NEXT);
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED - 1);
    assert_eq!(responder.decrypt(&next), Err(Error::DuplicateOrExpired));

    // The sealed session is the responder session, sealed under the fixed key with the
    // empty context.
    let sealed = read("sealed_session.bin");
    assert_eq!(sealed.len(), 15 + responder_bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x20]);
    check_sealed_construction("sealed session", &sealed, &responder_bytes, b"");
    let mut opened = storage_key()
        .open_session(&sealed, b"", bob.public_key())
        .unwrap();
    assert_eq!(stored(&opened), responder_bytes);
    // Sealing is deterministic given the nonce RNG.
    assert_eq!(
        storage_key()
            .seal(&opened, b"", &mut rng_for_seal())
            .unwrap(),
        sealed
    );
    let next = read("sealed_session.next_message.bin");
    check_body("sealed next message", &next, PADME_BODY);
    assert_eq!(opened.decrypt(&next).unwrap(), b"golden: a1-1");
    assert_eq!(
        StorageKey::from_bytes([0; 32])
            .open_session(&sealed, b"", bob.public_key())
            .err(),
        Some(Error::DecryptionFailed)
    );
    assert_eq!(
        storage_key()
            .open_session(&sealed, b"\0", bob.public_key())
            .err(),
        Some(Error::DecryptionFailed),
        "sealed with the empty context"
    );

    // The same session sealed with an application context: it opens with that context
    // only.
    let sealed = read("sealed_session_with_context.bin");
    assert_eq!(sealed.len(), 15 + responder_bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x20]);
    check_sealed_construction(
        "sealed session with context",
        &sealed,
        &responder_bytes,
        SESSION_CONTEXT,
    );
    let mut opened = storage_key()
        .open_session(&sealed, SESSION_CONTEXT, bob.public_key())
        .unwrap();
    assert_eq!(stored(&opened), responder_bytes);
    assert_eq!(
        storage_key()
            .seal(&opened, SESSION_CONTEXT, &mut rng_for_context_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound_with(SESSION_CONTEXT, |context| {
        storage_key()
            .open_session(&sealed, context, bob.public_key())
            .map(|_| ())
    });
    let next = read("sealed_session.next_message.bin");
    assert_eq!(opened.decrypt(&next).unwrap(), b"golden: a1-1");
}

/// A sealed golden blob opens with its own context only: not with the empty one, nor one
/// a byte shorter or longer, nor one with a byte changed.
fn check_context_is_bound<T: doubleratchet::Openable + std::fmt::Debug>(
    sealed: &[u8],
    context: &[u8],
) {
    check_context_is_bound_with(context, |other| {
        storage_key().open::<T>(sealed, other).map(|_| ())
    });
}

/// [`check_context_is_bound`] with the blob opened by `open` (given the context): for a
/// sealed session, which opens with the loading device's identity key.
fn check_context_is_bound_with(context: &[u8], open: impl Fn(&[u8]) -> Result<(), Error>) {
    assert!(!context.is_empty());
    let longer = [context, &[0u8][..]].concat();
    let changed: Vec<u8> = context
        .iter()
        .enumerate()
        .map(|(i, b)| if i == 0 { b ^ 1 } else { *b })
        .collect();
    for other in [&b""[..], &context[..context.len() - 1], &longer, &changed] {
        assert_eq!(
            open(other).err(),
            Some(Error::DecryptionFailed),
            "opened with {other:?}"
        );
    }
}

/// A sealed golden blob is `version | 0x30 | T | nonce | AES-256-GCM-SIV(K, nonce, AD,
/// obj)` with `AD = "doubleratchet v2 sealed" || version || 0x30 || T || u32(len(context))
/// || context` (SPEC.md §7.6, profile v2 part 2), checked with the `aes-gcm-siv` crate.
fn check_sealed_construction(name: &str, sealed: &[u8], plain: &[u8], context: &[u8]) {
    use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
    use aes_gcm_siv::{Aes256GcmSiv, Nonce};

    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let cipher = Aes256GcmSiv::new_from_slice(&key).unwrap();
    let mut aad = b"doubleratchet v2 sealed".to_vec();
    aad.extend_from_slice(&sealed[..3]);
    aad.extend_from_slice(&(context.len() as u32).to_be_bytes());
    aad.extend_from_slice(context);
    let nonce: [u8; 12] = sealed[3..15].try_into().unwrap();
    let opened = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed[15..],
                aad: &aad,
            },
        )
        .unwrap_or_else(|_| panic!("{name}: not the construction of SPEC.md §7.6"));
    assert_eq!(opened, plain, "{name}");
}

#[test]
fn header_encrypted_golden_files() {
    check_versions(&HE_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // Bob's header-encrypted session: type 0x28, flags 0x02 (X3DH, header encryption).
    let session_bytes = read("he_session_responder_with_skipped.bin");
    assert_eq!(session_bytes[1], 0x28);
    assert_eq!(session_bytes[3], 0x02);
    // SPEC.md §7.1: Bob has not sent since Alice's last chain reached him (CKr only): 220
    // + 135 bytes, 68 per skipped key, 64 per skipped-chain header key.
    assert_eq!(session_bytes[2], STATE_RESPONDER | STATE_RECEIVING_CHAIN);
    assert_eq!(session_bytes[4..36], alice.public_key().as_bytes()[..]);
    assert_eq!(RECEIVED_LENGTH + HE_LENGTH, 355);
    assert_eq!(
        session_bytes.len(),
        RECEIVED_LENGTH + HE_LENGTH + 68 * HE_SKIPPED + 64 * HE_HEADER_KEYS
    );
    assert_eq!(padding_offset(&session_bytes), PADDING_OFFSET + 1);
    let mut session = load(&session_bytes, bob.public_key());
    check_padding("he session", &session_bytes, &session, Padding::Padme);
    assert!(session.is_header_encrypted());
    assert!(!session.is_post_quantum());
    assert_eq!(session.role(), Role::Responder);
    assert!(!session.awaiting_reply());
    assert_eq!(session.local_identity(), bob.public_key());
    assert_eq!(session.remote_identity(), alice.public_key());
    assert_eq!(session.stored_skipped_keys(), HE_SKIPPED);
    // Three chains of Alice's have keys: the first and second (ended), and the current one.
    let view = ratchet_view(&session_bytes);
    let mut chains: Vec<[u8; 32]> = view.skipped.iter().map(|(dh, _)| *dh).collect();
    chains.dedup();
    assert_eq!(view.header_key_chains, chains);
    let numbers: Vec<u32> = view.skipped.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 2, 3, 0, 1, 0]);

    // a1-0 is of the second chain: its header decrypts under that chain's stored header
    // key, its body with the stored message key.
    let next = read("he_session_responder_with_skipped.next_message.bin");
    check_message("he next message", &next, 0x04);
    check_body("he next message", &next, PADME_BODY);
    assert_eq!(session.decrypt(&next).unwrap(), HE_NEXT);
    assert_eq!(session.stored_skipped_keys(), HE_SKIPPED - 1);
    // The chain still has a key (a1-1), so its header key is kept: a replay is a duplicate.
    let before = stored(&session);
    assert_eq!(session.decrypt(&next), Err(Error::DuplicateOrExpired));
    assert_eq!(stored(&session), before);

    // The sealed session is the same session, sealed under the fixed key.
    let sealed = read("he_sealed_session.bin");
    assert_eq!(sealed.len(), 15 + session_bytes.len() + 16);
    assert_eq!(sealed[1], 0x30);
    assert_eq!(
        sealed[2], 0x20,
        "every session is sealed as object type 0x20"
    );
    check_sealed_construction("he sealed session", &sealed, &session_bytes, b"");
    let mut opened = storage_key()
        .open_session(&sealed, b"", bob.public_key())
        .unwrap();
    assert_eq!(stored(&opened), session_bytes);
    assert_eq!(
        storage_key()
            .seal(&opened, b"", &mut rng_for_he_seal())
            .unwrap(),
        sealed
    );
    // a0-0, an initial message (type 0x05) of the first chain, kept since the session began.
    let next = read("he_sealed_session.next_message.bin");
    check_message("he sealed next message", &next, 0x05);
    check_body("he sealed next message", &next, PADME_BODY);
    assert_eq!(opened.decrypt(&next).unwrap(), HE_SEALED_NEXT);
    assert_eq!(opened.stored_skipped_keys(), HE_SKIPPED - 1);
    assert_eq!(
        StorageKey::from_bytes([0; 32])
            .open_session(&sealed, b"", bob.public_key())
            .err(),
        Some(Error::DecryptionFailed)
    );
}

#[test]
fn padding_none_golden_files() {
    check_versions(&PADDING_NONE_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    // Without padding a body is the plaintext, the 0x80 end marker and the tag.
    let unpadded = |plaintext: &[u8]| plaintext.len() + 1 + TAG;

    // Alice's fresh session with the policy Padding::None: type 0x20, 236 bytes, padding
    // byte 0x00 after her pending fields and the limits.
    let initiator_bytes = read("padding_none_session_initiator.bin");
    assert_eq!(initiator_bytes.len(), INITIATOR_LENGTH);
    assert_eq!(initiator_bytes[1], 0x20);
    assert_eq!(
        initiator_bytes[2],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    assert_eq!(
        padding_offset(&initiator_bytes),
        PADDING_OFFSET + PENDING_LENGTH
    );
    let initiator = load(&initiator_bytes, alice.public_key());
    check_padding("initiator", &initiator_bytes, &initiator, Padding::None);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());

    // Its first message is a0-0, byte for byte (a fresh initiator's first send draws no
    // randomness), without padding; Bob's stored session holds its key.
    let a0 = read("padding_none_session_responder_with_skipped.next_message.bin");
    check_message("a0-0", &a0, 0x02);
    check_body("a0-0", &a0, unpadded(PADDING_NONE_RESPONDER_NEXT));
    let mut sender = load(&initiator_bytes, alice.public_key());
    assert_eq!(
        sender
            .encrypt(PADDING_NONE_RESPONDER_NEXT, &mut rng(0))
            .unwrap(),
        a0
    );
    // The same session with the padding byte 0x01 is the same session with Padmé: the
    // same message padded to 64 bytes, and back to Padding::None the very same bytes.
    let padme_bytes = {
        let mut b = initiator_bytes.clone();
        b[PADDING_OFFSET + PENDING_LENGTH] = PADDING_PADME_BYTE;
        b
    };
    let mut padme = load(&padme_bytes, alice.public_key());
    check_padding("initiator as Padmé", &padme_bytes, &padme, Padding::Padme);
    let padded = padme
        .encrypt(PADDING_NONE_RESPONDER_NEXT, &mut rng(0))
        .unwrap();
    check_body("a0-0 padded", &padded, PADME_BODY);
    let framing = a0.len() - unpadded(PADDING_NONE_RESPONDER_NEXT);
    assert_eq!(
        padded[..framing],
        a0[..framing],
        "the same framing and header"
    );
    let mut back = load(&padme_bytes, alice.public_key());
    back.set_padding(Padding::None);
    assert_eq!(stored(&back), initiator_bytes);

    // Bob's first reply, sent without padding, decrypts at the stored initiator.
    let mut initiator = initiator;
    let reply = read("padding_none_session_initiator.next_message.bin");
    check_message("reply", &reply, 0x01);
    check_body("reply", &reply, unpadded(PADDING_NONE_INITIATOR_NEXT));
    assert_eq!(
        initiator.decrypt(&reply).unwrap(),
        PADDING_NONE_INITIATOR_NEXT
    );
    assert!(!initiator.awaiting_reply());
    assert_eq!(initiator.padding(), Padding::None);

    // Bob's session with the policy Padding::None, holding the key of a0-0.
    // (It has sent since: both chains.)
    let responder_bytes = read("padding_none_session_responder_with_skipped.bin");
    assert_eq!(responder_bytes.len(), SESSION_LENGTH + 68);
    assert_eq!(responder_bytes[1], 0x20);
    assert_eq!(
        responder_bytes[2],
        STATE_RESPONDER | STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN
    );
    let mut responder = load(&responder_bytes, bob.public_key());
    check_padding("responder", &responder_bytes, &responder, Padding::None);
    assert_eq!(responder.role(), Role::Responder);
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.local_identity(), bob.public_key());
    assert_eq!(responder.stored_skipped_keys(), 1);
    // The receiver's policy plays no part in decoding: a copy of it decrypts the padded
    // form of a0-0 (the same message key) to the same plaintext.
    assert_eq!(
        load(&responder_bytes, bob.public_key())
            .decrypt(&padded)
            .unwrap(),
        PADDING_NONE_RESPONDER_NEXT
    );
    assert_eq!(responder.decrypt(&a0).unwrap(), PADDING_NONE_RESPONDER_NEXT);
    assert_eq!(responder.stored_skipped_keys(), 0);
    assert_eq!(responder.decrypt(&a0), Err(Error::DuplicateOrExpired));
    // Its next message is unpadded too.
    let m = responder
        .encrypt(b"golden padding none: b0-1", &mut rng(1))
        .unwrap();
    check_body("b0-1", &m, unpadded(b"golden padding none: b0-1"));
    assert_eq!(initiator.decrypt(&m).unwrap(), b"golden padding none: b0-1");
}

#[cfg(feature = "pqxdh")]
#[test]
fn post_quantum_golden_files() {
    check_versions(&PQ_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // The stand-alone post-quantum prekey: type 0x26, 139 bytes (id 9 in 8 bytes, then
    // the kind, 0x02 last-resort), signed by Bob.
    let pq_bytes = read("pq_prekey.bin");
    assert_eq!(pq_bytes.len(), PQ_PREKEY_LENGTH);
    assert_eq!(pq_bytes[1..11], [0x26, 0, 0, 0, 0, 0, 0, 0, 9, 0x02]);
    let pq_prekey = PqPreKey::from_bytes(&pq_bytes).unwrap();
    assert_eq!(&pq_prekey.to_bytes()[..], &pq_bytes[..]);
    assert_eq!(pq_prekey.id(), PqPreKeyId::from_u64(9));
    assert_eq!(pq_prekey.kind(), PqPreKeyKind::LastResort);
    let spk = SignedPreKey::from_bytes(&read("signed_prekey.bin")).unwrap();
    pq_bundle_of(&bob, &spk, None, &pq_prekey).verify().unwrap();

    // The PQXDH bundle Alice used: type 0x11, 1435 bytes, the store's first one-time
    // prekey and first one-time post-quantum prekey (both used since).
    let bundle_bytes = read("pq_bundle.bin");
    assert_eq!(bundle_bytes.len(), PQ_BUNDLE_LENGTH);
    assert_eq!(PQ_BUNDLE_LENGTH, 1435);
    assert_eq!(bundle_bytes[1], 0x11);
    let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();
    assert_eq!(bundle.to_bytes(), bundle_bytes);
    bundle.verify().unwrap();
    assert!(bundle.is_post_quantum());
    assert_eq!(bundle.identity_key(), bob.public_key());
    let bundle_opk = bundle.one_time_prekey_id().unwrap();
    let bundle_pq = bundle.post_quantum_prekey_id().unwrap();
    assert_eq!(bundle_bytes[139..147], bundle_opk.to_u64().to_be_bytes());
    assert_eq!(bundle_bytes[179..187], bundle_pq.to_u64().to_be_bytes());

    // Alice's fresh PQXDH session (type 0x25, 1332 bytes: it repeats the post-quantum
    // prekey id and the KEM ciphertext while awaiting a reply) decrypts Bob's first reply.
    let initiator_bytes = read("pq_session_initiator.bin");
    assert_eq!(initiator_bytes.len(), INITIATOR_LENGTH + PQ_PENDING_LENGTH);
    assert_eq!(initiator_bytes.len(), 1332);
    assert_eq!(initiator_bytes[1], 0x25);
    assert_eq!(
        initiator_bytes[2],
        STATE_AWAITING_REPLY | STATE_ONE_TIME_PREKEY | STATE_SENDING_CHAIN
    );
    // The pending fields: the signed prekey id, the one-time prekey id, the post-quantum
    // prekey id, the KEM ciphertext.
    assert_eq!(
        initiator_bytes[PENDING_OFFSET + 8..PENDING_OFFSET + 16],
        bundle_opk.to_u64().to_be_bytes()
    );
    let pq_id = PENDING_OFFSET + PENDING_LENGTH;
    assert_eq!(
        initiator_bytes[pq_id..pq_id + 8],
        bundle_pq.to_u64().to_be_bytes()
    );
    let mut initiator = load(&initiator_bytes, alice.public_key());
    // The padding byte follows the post-quantum id, the KEM ciphertext and the limits.
    assert_eq!(
        padding_offset(&initiator_bytes),
        PADDING_OFFSET + PENDING_LENGTH + 8 + 1088
    );
    check_padding("pq initiator", &initiator_bytes, &initiator, Padding::Padme);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.is_post_quantum());
    assert!(!initiator.is_header_encrypted());
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());
    let reply = read("pq_session_initiator.next_message.bin");
    check_message("pq reply", &reply, 0x01);
    check_body("pq reply", &reply, PADME_BODY);
    assert_eq!(initiator.decrypt(&reply).unwrap(), PQ_INITIATOR_NEXT);
    assert!(!initiator.awaiting_reply());
    // No longer awaiting a reply: the pending fields, the ciphertext with them, are gone
    // from the stored form; the sending chain waits for Alice's next send.
    let replied = stored(&initiator);
    assert_eq!(replied[2], STATE_RECEIVING_CHAIN);
    assert_eq!(replied.len(), RECEIVED_LENGTH);
    assert_eq!(initiator.decrypt(&reply), Err(Error::DuplicateOrExpired));

    // Bob's PQXDH session (type 0x25, responder) decrypts a0-0, an initial message (type
    // 0x03) whose key it holds.
    let responder_bytes = read("pq_session_responder.bin");
    assert_eq!(responder_bytes[1], 0x25);
    assert_eq!(
        responder_bytes[2],
        STATE_RESPONDER | STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN
    );
    assert_eq!(
        responder_bytes.len(),
        SESSION_LENGTH + 68 * PQ_RESPONDER_SKIPPED
    );
    let mut responder = load(&responder_bytes, bob.public_key());
    check_padding("pq responder", &responder_bytes, &responder, Padding::Padme);
    assert_eq!(responder.role(), Role::Responder);
    assert!(responder.is_post_quantum());
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.stored_skipped_keys(), PQ_RESPONDER_SKIPPED);
    let next = read("pq_session_responder.next_message.bin");
    check_message("pq initial message", &next, 0x03);
    check_body("pq initial message", &next, PADME_BODY);
    assert_eq!(responder.decrypt(&next).unwrap(), PQ_RESPONDER_NEXT);
    assert_eq!(responder.decrypt(&next), Err(Error::DuplicateOrExpired));

    // Alice's header-encrypted PQXDH session: type 0x28, flags 0x03.
    let he_bytes = read("he_pq_session_initiator_with_skipped.bin");
    assert_eq!(he_bytes[1], 0x28);
    assert_eq!(he_bytes[3], 0x03);
    assert_eq!(he_bytes[2], STATE_RECEIVING_CHAIN);
    assert_eq!(
        he_bytes.len(),
        RECEIVED_LENGTH + HE_LENGTH + 68 * HE_PQ_SKIPPED + 64 * HE_PQ_HEADER_KEYS
    );
    let mut he = load(&he_bytes, alice.public_key());
    check_padding("he pq session", &he_bytes, &he, Padding::Padme);
    assert!(he.is_header_encrypted());
    assert!(he.is_post_quantum());
    assert_eq!(he.role(), Role::Initiator);
    assert!(!he.awaiting_reply());
    assert_eq!(he.local_identity(), alice.public_key());
    let view = ratchet_view(&he_bytes);
    let numbers: Vec<u32> = view.skipped.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 1, 0]);
    assert_eq!(
        view.header_key_chains,
        [view.skipped[0].0, view.skipped[2].0]
    );
    let next = read("he_pq_session_initiator_with_skipped.next_message.bin");
    check_message("he pq next message", &next, 0x04);
    check_body("he pq next message", &next, PADME_BODY);
    assert_eq!(he.decrypt(&next).unwrap(), HE_PQ_NEXT);
    assert_eq!(he.stored_skipped_keys(), HE_PQ_SKIPPED - 1);
    assert_eq!(he.decrypt(&next), Err(Error::DuplicateOrExpired));

    // Bob's store: type 0x2A, the local device (0x24 and 0x27 are retired), with replay
    // records and post-quantum keys.
    let store_bytes = read("pq_prekey_store.bin");
    assert_eq!(store_bytes[1], 0x2A);
    let view = store_view(&store_bytes);
    let mut store = LocalDevice::from_bytes(&store_bytes).unwrap();
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    // Both records sit under the one accepted signed prekey, the current one, which the
    // bundle names; a standby waits.
    assert_eq!(store.replay_records(), 2);
    assert_eq!(view.signed.len(), 1);
    assert_eq!(view.current, bundle.signed_prekey_id());
    assert_eq!(view.records(view.current).len(), 2);
    assert!(view.standby.is_some());
    // Sequence numbers: one-time prekeys 0..=2, one-time post-quantum prekeys 3, 4, the
    // last-resort one 5; the first of each kind was used.
    assert_eq!(view.next_sequence, 6);
    assert_eq!(view.one_time_sequences(), [1, 2]);
    let one_time: Vec<_> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(one_time, view.one_time_by_age());
    assert!(
        !one_time.contains(&bundle_opk),
        "the bundle's one-time prekey was used"
    );
    let mut pq_sequences: Vec<(u64, u8)> = view.pq.iter().map(|p| (p.0, p.3)).collect();
    pq_sequences.sort_unstable();
    assert_eq!(pq_sequences, [(4, 0x01), (5, 0x02)]);
    let pq_one_time: Vec<_> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
    assert_eq!(pq_one_time.len(), 1);
    assert_ne!(
        pq_one_time[0], bundle_pq,
        "post-quantum prekey {bundle_pq} was used"
    );
    let last_resort_id = view.pq_current.unwrap();
    assert_eq!(
        store.pq_prekey(last_resort_id).map(PqPreKey::kind),
        Some(PqPreKeyKind::LastResort)
    );
    // The store publishes the same last-resort key it was stored with.
    let last_resort = store.pq_bundle(None, None).unwrap();
    assert_eq!(last_resort.post_quantum_prekey_id(), Some(last_resort_id));
    last_resort.verify().unwrap();
    // The replay record survived: the initial message of the header-encrypted PQXDH session,
    // made from the last-resort key, cannot make a second session.
    let replayed = read("pq_prekey_store.replayed_message.bin");
    check_message("replayed initial message", &replayed, 0x06);
    check_body("replayed initial message", &replayed, PADME_BODY);
    assert!(view.records(view.current).contains(&base_key(&replayed)));
    assert_eq!(
        store.accept(&replayed, &SessionOptions::new()).err(),
        Some(Error::DuplicateOrExpired)
    );
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    // The stored keys are the published ones: a new PQXDH session from the remaining
    // one-time prekeys of both kinds is accepted, and both keys are then deleted.
    let message = read("pq_prekey_store.next_message.bin");
    check_message("next session's initial message", &message, 0x03);
    check_body("next session's initial message", &message, PADME_BODY);
    let accepted = store.accept(&message, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.plaintext, b"golden pq: next session");
    assert_eq!(accepted.used_one_time_prekey, Some(one_time[0]));
    assert_eq!(accepted.used_post_quantum_prekey, Some(pq_one_time[0]));
    assert_eq!(accepted.notice, None);
    assert!(accepted.session.is_post_quantum());
    assert_eq!(store.pq_one_time_prekeys().count(), 0);
    assert_eq!(
        store.accept(&message, &SessionOptions::new()).err(),
        Some(Error::UnknownOneTimePreKey(one_time[0]))
    );
}

#[test]
fn prekey_store_golden_files() {
    check_versions(&STORE_FILES);
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // Replay capacity 2, two accepted signed prekeys: the first full (2 records), the
    // current one with 1; a standby; one-time prekeys of sequence numbers 0, 2, 3, 4, 5.
    let store_bytes = read("prekey_store_with_records.bin");
    assert_eq!(store_bytes[..2], [FORMAT_VERSION, 0x2A]);
    let view = store_view(&store_bytes);
    assert_eq!(view.capacity, STORE_REPLAY_CAPACITY);
    assert_eq!(view.signed.len(), 2);
    let full = view
        .signed
        .iter()
        .find(|e| e.id != view.current)
        .unwrap()
        .id;
    assert_eq!(view.records(full).len(), 2);
    assert_eq!(view.records(view.current).len(), 1);
    let standby = view.standby.unwrap();
    assert_eq!(view.next_sequence, 6);
    assert_eq!(view.one_time_sequences(), [0, 2, 3, 4, 5]);
    assert_eq!((view.pq_current, view.pq.len()), (None, 0));
    assert_eq!(
        store_bytes.len(),
        2 + 34
            + 4
            + 4
            + 8
            + 8
            + 4
            + 2 * (SIGNED_PREKEY_LENGTH + 8 + 9 + 4)
            + 3 * 32
            + 1
            + SIGNED_PREKEY_LENGTH
            + 8
            + 4
            + 5 * (9 + ONE_TIME_PREKEY_LENGTH)
            + 9
            + 4
    );

    let mut store = LocalDevice::from_bytes(&store_bytes).unwrap();
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    assert_eq!(store.identity_key(), bob.public_key());
    assert_eq!(store.replay_capacity(), STORE_REPLAY_CAPACITY);
    assert_eq!(store.replay_records(), 3);
    assert_eq!(store.one_time_prekey_cap(), view.one_time_cap);
    assert_eq!(store.current_signed_prekey().id(), view.current);
    let current = view.signed.iter().find(|e| e.id == view.current).unwrap();
    assert_eq!(store.current_signed_prekey_created(), current.created);
    assert!(store.signed_prekey(full).is_some());
    assert_eq!(
        store.standby_signed_prekey().map(SignedPreKey::id),
        Some(standby)
    );
    let one_time: Vec<_> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(one_time, view.one_time_by_age(), "oldest first");

    // A recorded initial message (under the full signed prekey) is a replay.
    let replayed = read("prekey_store_with_records.replayed_message.bin");
    check_message("replayed message", &replayed, 0x02);
    check_body("replayed message", &replayed, PADME_BODY);
    assert!(view.records(full).contains(&base_key(&replayed)));
    assert_eq!(
        store.accept(&replayed, &SessionOptions::new()).err(),
        Some(Error::DuplicateOrExpired)
    );
    // A new session under the full signed prekey without a one-time prekey is refused.
    let refused = read("prekey_store_with_records.full_message.bin");
    check_message("refused message", &refused, 0x02);
    assert!(!view.records(full).contains(&base_key(&refused)));
    assert_eq!(
        store.accept(&refused, &SessionOptions::new()).err(),
        Some(Error::StoreFull)
    );
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    // The next session under the current signed prekey fills it: the store switches to
    // the stored standby and says so.
    let next = read("prekey_store_with_records.next_message.bin");
    check_message("next message", &next, 0x02);
    check_body("next message", &next, PADME_BODY);
    let accepted = store.accept(&next, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.plaintext, STORE_NEXT);
    assert_eq!(accepted.used_one_time_prekey, None);
    assert_eq!(
        accepted.notice,
        Some(StoreNotice::SignedPreKeySwitched {
            previous: view.current,
            current: standby,
        })
    );
    assert_eq!(store.current_signed_prekey().id(), standby);
    assert!(store.standby_signed_prekey().is_none());
    assert_eq!(store.replay_records(), 4);
    // Replayed, it is a duplicate (checked before the signed prekey's fill).
    assert_eq!(
        store.accept(&next, &SessionOptions::new()).err(),
        Some(Error::DuplicateOrExpired)
    );

    // The same store sealed with an application context.
    let sealed = read("sealed_prekey_store_with_context.bin");
    assert_eq!(sealed.len(), 15 + store_bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x2A]);
    check_sealed_construction("sealed store", &sealed, &store_bytes, STORE_CONTEXT);
    let opened = storage_key()
        .open::<LocalDevice>(&sealed, STORE_CONTEXT)
        .unwrap();
    assert_eq!(&opened.to_bytes()[..], &store_bytes[..]);
    assert_eq!(
        storage_key()
            .seal(&opened, STORE_CONTEXT, &mut rng_for_store_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound::<LocalDevice>(&sealed, STORE_CONTEXT);
    assert_eq!(
        storage_key()
            .open::<LocalDevice>(&sealed, SESSION_CONTEXT)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

/// A stored session record (type `0x2B`, SPEC.md §7.8), field by field.
#[derive(Debug)]
struct RecordView {
    local: [u8; 32],
    remote: [u8; 32],
    /// `max_archived`, `max_trials`, `max_stored_skipped`.
    bounds: [u32; 3],
    /// `unacknowledged_after`, `reset_interval`.
    ages: [u64; 2],
    last_decrypted: Option<[u8; 32]>,
    /// The last reset's request time and record time.
    last_reset: Option<(u64, u64)>,
    has_sending: bool,
    /// Each entry in stored order (the sending session first): its time, retired flag and
    /// session encoding.
    entries: Vec<(u64, bool, Vec<u8>)>,
}

/// Reads a stored session record; panics on anything but the layout below, to the last
/// byte (flags `0x00` or `0x01`, zeros after an absent optional field).
///
/// ```text
/// 02 | 2B | IK_local (32) | IK_remote (32)
/// max_archived u32 | max_trials u32 | max_stored_skipped u32
/// unacknowledged_after u64 | reset_interval u64
/// flag | last decrypting session id (32) | flag | request time u64 | record time u64
/// sending flag | a u32
/// (sending flag + a) x { created u64 | retired flag | len u32 | session (len) }
/// ```
fn record_view(bytes: &[u8]) -> RecordView {
    fn flag(r: &mut Cursor<'_>) -> bool {
        match r.u8() {
            0 => false,
            1 => true,
            other => panic!("flag {other}"),
        }
    }
    fn optional<const N: usize>(r: &mut Cursor<'_>) -> Option<[u8; N]> {
        let present = flag(r);
        let value: [u8; N] = r.take(N).try_into().unwrap();
        if present {
            Some(value)
        } else {
            assert_eq!(value, [0; N], "bytes of an absent field");
            None
        }
    }

    let mut r = Cursor(bytes, 0);
    assert_eq!(r.take(2), [STORAGE_VERSION, 0x2B]);
    let local = r.take(32).try_into().unwrap();
    let remote = r.take(32).try_into().unwrap();
    let bounds = [r.u32(), r.u32(), r.u32()];
    let ages = [r.u64(), r.u64()];
    let last_decrypted = optional::<32>(&mut r);
    let last_reset = optional::<16>(&mut r).map(|b| {
        (
            u64::from_be_bytes(b[..8].try_into().unwrap()),
            u64::from_be_bytes(b[8..].try_into().unwrap()),
        )
    });
    let has_sending = flag(&mut r);
    let archived = r.u32() as usize;
    assert_eq!(r.1, 149, "RECORD_FIXED_LENGTH");
    let entries = (0..usize::from(has_sending) + archived)
        .map(|_| {
            let created = r.u64();
            let retired = flag(&mut r);
            let len = r.u32() as usize;
            (created, retired, r.take(len).to_vec())
        })
        .collect();
    assert_eq!(r.1, bytes.len(), "bytes after the layout of SPEC.md §7.8");
    RecordView {
        local,
        remote,
        bounds,
        ages,
        last_decrypted,
        last_reset,
        has_sending,
        entries,
    }
}

/// Loads a stored record and checks that storing it again gives the same bytes.
#[track_caller]
fn load_record(bytes: &[u8]) -> SessionRecord {
    let record = SessionRecord::from_bytes(bytes).unwrap();
    assert_eq!(&record.to_bytes()[..], bytes, "re-encoding a loaded record");
    record
}

#[test]
fn session_record_golden_files() {
    check_versions(&RECORD_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // Bob's record with Alice's device: the sending session s3, then the archived s2
    // (header-encrypted) and s1 (retired), each made by Bob at its own time.
    let bytes = read("session_record.bin");
    let view = record_view(&bytes);
    assert_eq!(&view.local, bob.public_key().as_bytes());
    assert_eq!(&view.remote, alice.public_key().as_bytes());
    let limits = record_limits();
    assert_eq!(
        view.bounds,
        [
            limits.max_archived,
            limits.max_trials,
            limits.max_stored_skipped
        ]
    );
    assert_eq!(view.bounds, [8, 2, 100]);
    assert_eq!(view.ages, [7 * 86_400, 600]);
    // The request time of the reset was cleared when s2, then s3, became the sending
    // session (SPEC.md §6.8); the record's time of it stays for the rate limit.
    assert_eq!(view.last_reset, Some((0, RECORD_RESET.1)));
    assert!(view.has_sending);
    let created: Vec<u64> = view.entries.iter().map(|e| e.0).collect();
    assert_eq!(
        created,
        [RECORD_CREATED[2], RECORD_CREATED[1], RECORD_CREATED[0]]
    );
    let retired: Vec<bool> = view.entries.iter().map(|e| e.1).collect();
    assert_eq!(retired, [false, false, true]);
    let kinds: Vec<u8> = view.entries.iter().map(|e| e.2[1]).collect();
    assert_eq!(kinds, [0x20, 0x28, 0x20]);
    // Each loads with the record's local identity (Bob's), which its sessions do not
    // store.
    let sessions: Vec<Session> = view
        .entries
        .iter()
        .map(|e| load(&e.2, bob.public_key()))
        .collect();
    let [s3, s2, s1] = [0, 1, 2].map(|i| sessions[i].id());
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(session.local_identity(), bob.public_key(), "session {i}");
        assert_eq!(session.remote_identity(), alice.public_key(), "session {i}");
        assert_eq!(session.role(), Role::Initiator, "session {i}");
        assert!(!session.awaiting_reply(), "session {i}");
        check_padding(
            "record session",
            &view.entries[i].2,
            session,
            Padding::Padme,
        );
    }
    let skipped: Vec<usize> = sessions.iter().map(Session::stored_skipped_keys).collect();
    assert_eq!(skipped, [2, 2, 0]);
    assert_eq!(skipped.iter().sum::<usize>(), RECORD_SKIPPED);
    assert!(sessions[1].is_header_encrypted());
    assert_eq!(ratchet_view(&view.entries[1].2).header_key_chains.len(), 1);
    assert_eq!(view.last_decrypted, Some(*s3.as_bytes()));
    // s3 and s2 have received since they last sent (CKr only), s1 has both chains.
    let states: Vec<u8> = view.entries.iter().map(|e| e.2[2]).collect();
    assert_eq!(
        states,
        [
            STATE_RECEIVING_CHAIN,
            STATE_RECEIVING_CHAIN,
            STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN
        ]
    );
    assert_eq!(
        bytes.len(),
        149 + 3 * 13
            + (RECEIVED_LENGTH + 2 * 68)
            + (RECEIVED_LENGTH + HE_LENGTH + 2 * 68 + 64)
            + SESSION_LENGTH
    );

    let record = load_record(&bytes);
    assert_eq!(record.local_identity(), bob.public_key());
    assert_eq!(record.remote_identity(), alice.public_key());
    assert_eq!(record.limits(), limits);
    assert_eq!(record.len(), 3);
    assert_eq!(record.session_ids().collect::<Vec<_>>(), [s3, s2, s1]);
    assert_eq!(record.sending_session().unwrap().id(), s3);
    assert_eq!(record.stored_skipped_keys(), RECORD_SKIPPED);
    assert_eq!(record.status(RECORD_CREATED[2]), RecordStatus::Ready);

    // s3's a0-0, with a skipped key of the sending session: nothing moves.
    let next = read("session_record.next_message.bin");
    check_message("record next message", &next, 0x01);
    check_body("record next message", &next, PADME_BODY);
    let mut record = load_record(&bytes);
    assert_eq!(record.decrypt(&next).unwrap(), RECORD_NEXT);
    assert_eq!(record.session_ids().collect::<Vec<_>>(), [s3, s2, s1]);
    assert_eq!(record.stored_skipped_keys(), RECORD_SKIPPED - 1);
    // Replayed, it fails and changes nothing. (s3 refuses it while weighing, as a
    // duplicate; the retired s1, with cleartext headers and another ratchet key, is then
    // its only candidate, tried as a new chain: `DecryptionFailed`, SPEC.md §6.6 steps
    // 4-6.)
    let after = record.to_bytes();
    assert!(matches!(
        record.decrypt(&next),
        Err(Error::DecryptionFailed | Error::DuplicateOrExpired)
    ));
    assert_eq!(
        record.to_bytes(),
        after,
        "a failed decryption changes nothing"
    );

    // s2's a0-0 (header-encrypted), with a skipped key and its chain's header key of the
    // archived session: s2's id is smaller than s3's, so s2 becomes the sending session
    // (SPEC.md §6.4 clause 2) and s3 the most recently used archived one.
    let archived = read("session_record.archived_message.bin");
    check_message("record archived message", &archived, 0x04);
    check_body("record archived message", &archived, PADME_BODY);
    let mut record = load_record(&bytes);
    assert_eq!(record.decrypt(&archived).unwrap(), RECORD_ARCHIVED_NEXT);
    assert!(s2 < s3);
    assert_eq!(record.session_ids().collect::<Vec<_>>(), [s2, s3, s1]);
    assert_eq!(record.sending_session().unwrap().id(), s2);
    assert_eq!(record.stored_skipped_keys(), RECORD_SKIPPED - 1);

    // s1's a0-1, the next message of the retired session's receiving chain: it decrypts,
    // and s1 becomes the most recently used archived session, never the sending one.
    let retired = read("session_record.retired_message.bin");
    check_message("record retired message", &retired, 0x01);
    check_body("record retired message", &retired, PADME_BODY);
    let mut record = load_record(&bytes);
    assert_eq!(record.decrypt(&retired).unwrap(), RECORD_RETIRED_NEXT);
    assert_eq!(record.session_ids().collect::<Vec<_>>(), [s3, s1, s2]);
    let after = record.to_bytes();
    assert!(matches!(
        record.decrypt(&retired),
        Err(Error::DecryptionFailed | Error::DuplicateOrExpired)
    ));
    assert_eq!(record.to_bytes(), after);

    // The stored last reset: a request no newer than its (cleared) request time is stale; a
    // newer one within `reset_interval` (600 s) of it is rate-limited; after it, this
    // request (which names a ratchet key of Alice's, not Bob's sending session) changes
    // nothing either.
    let alice_device = device_of(&alice, &mut rng(1)).unwrap();
    let requester = SessionRecord::new(
        alice.public_key(),
        bob.public_key(),
        RecordLimits::default(),
    )
    .unwrap();
    let (request_time, at) = RECORD_RESET;
    let request = |time: u64| {
        requester
            .decryption_error(&alice_device, &next, time)
            .unwrap()
    };
    let mut record = load_record(&bytes);
    for (time, now, outcome) in [
        (0, at + 10_000, ResetOutcome::Stale),
        (request_time, at + 599, ResetOutcome::RateLimited),
        (request_time, at + 600, ResetOutcome::NotSending),
    ] {
        assert_eq!(
            record.handle_decryption_error(&request(time), now),
            Ok(outcome)
        );
        assert_eq!(&record.to_bytes()[..], &bytes[..]);
    }

    // The record sealed with an application context.
    let sealed = read("sealed_session_record_with_context.bin");
    assert_eq!(sealed.len(), 15 + bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x2B]);
    check_sealed_construction("sealed record", &sealed, &bytes, RECORD_CONTEXT);
    let mut opened = storage_key()
        .open::<SessionRecord>(&sealed, RECORD_CONTEXT)
        .unwrap();
    assert_eq!(&opened.to_bytes()[..], &bytes[..]);
    assert_eq!(
        storage_key()
            .seal(&opened, RECORD_CONTEXT, &mut rng_for_record_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound::<SessionRecord>(&sealed, RECORD_CONTEXT);
    assert_eq!(
        storage_key()
            .open_session(&sealed, RECORD_CONTEXT, bob.public_key())
            .err(),
        Some(Error::UnexpectedType(0x2B)),
        "a sealed record is not a sealed session"
    );
    assert_eq!(opened.decrypt(&next).unwrap(), RECORD_NEXT);
}

/// The `u32` at `range` of `bytes` (big-endian, SPEC.md §5.1).
fn u32_at(bytes: &[u8], range: core::ops::Range<usize>) -> usize {
    u32::from_be_bytes(bytes[range].try_into().unwrap()) as usize
}

/// The bundle of SPEC.md §5.4 (type `0x10`), field by field, of the identity `ik`, the
/// signed prekey `spk` and, if given, the one-time prekey `opk`: what a device's own
/// bundle of those keys is.
fn expected_bundle(ik: &[u8; 32], spk: &SignedPreKey, opk: Option<&OneTimePreKey>) -> Vec<u8> {
    let mut out = vec![BUNDLE_VERSION, 0x10];
    out.extend_from_slice(ik);
    out.extend_from_slice(&spk.id().to_u64().to_be_bytes());
    out.extend_from_slice(spk.public_key().as_bytes());
    out.extend_from_slice(&spk.signature());
    match opk {
        Some(k) => {
            out.push(1);
            out.extend_from_slice(&k.id().to_u64().to_be_bytes());
            out.extend_from_slice(k.public_key().as_bytes());
        }
        None => out.extend_from_slice(&[0; 1 + 8 + 32]),
    }
    out
}

#[test]
fn publish_golden_files() {
    check_versions(&PUBLISH_FILES);
    assert_eq!(
        (
            SIGNED_PREKEY_PUBLIC_LENGTH,
            ONE_TIME_PREKEY_PUBLIC_LENGTH,
            PQ_PREKEY_PUBLIC_LENGTH,
            UPLOAD_SET_FIXED_LENGTH
        ),
        (114, 42, 1267, 1424),
        "the lengths of SPEC.md §5.9-§5.12"
    );
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    let spk = SignedPreKey::from_bytes(&read("signed_prekey.bin")).unwrap();
    let opk = OneTimePreKey::from_bytes(&read("one_time_prekey.bin")).unwrap();

    // The stand-alone signed prekey's public part: type 0x13, 114 bytes, with the
    // creation time its stored form does not have.
    let signed_bytes = read("signed_prekey_public.bin");
    assert_eq!(signed_bytes.len(), SIGNED_PREKEY_PUBLIC_LENGTH);
    assert_eq!(
        signed_bytes[..10],
        [BUNDLE_VERSION, 0x13, 0, 0, 0, 0, 0, 0, 0, 7]
    );
    assert_eq!(signed_bytes[10..42], *spk.public_key().as_bytes());
    assert_eq!(signed_bytes[42..106], spk.signature());
    assert_eq!(signed_bytes[106..], SIGNED_PREKEY_CREATED.to_be_bytes());
    let signed = SignedPreKeyPublic::from_bytes(&signed_bytes).unwrap();
    assert_eq!(signed.to_bytes(), signed_bytes);
    assert_eq!(
        signed,
        SignedPreKeyPublic::from_key(&spk, SIGNED_PREKEY_CREATED).unwrap()
    );
    assert_eq!(
        (signed.id(), signed.public_key(), signed.created()),
        (spk.id(), spk.public_key(), SIGNED_PREKEY_CREATED)
    );

    // The stand-alone one-time prekey's public part: type 0x14, 42 bytes, id and key.
    let one_time_bytes = read("one_time_prekey_public.bin");
    assert_eq!(one_time_bytes.len(), ONE_TIME_PREKEY_PUBLIC_LENGTH);
    assert_eq!(
        one_time_bytes[..10],
        [BUNDLE_VERSION, 0x14, 0, 0, 0, 0, 0, 0, 0, 42]
    );
    assert_eq!(one_time_bytes[10..], *opk.public_key().as_bytes());
    let one_time = OneTimePreKeyPublic::from_bytes(&one_time_bytes).unwrap();
    assert_eq!(one_time.to_bytes(), one_time_bytes);
    assert_eq!(one_time, OneTimePreKeyPublic::from_key(&opk).unwrap());

    // The classical upload set: type 0x12, 1424 + 42·2 bytes; Bob's identity key, the two
    // parts above byte for byte, no last-resort key (flag 0, 1267 zeros), one-time
    // prekeys 42 then 43, no post-quantum one-time prekeys.
    let set_bytes = read("upload_set.bin");
    assert_eq!(
        set_bytes.len(),
        UPLOAD_SET_FIXED_LENGTH + 2 * ONE_TIME_PREKEY_PUBLIC_LENGTH
    );
    assert_eq!(set_bytes[..2], [BUNDLE_VERSION, 0x12]);
    assert_eq!(set_bytes[2..34], *bob.public_key().as_bytes());
    assert_eq!(set_bytes[SET_SIGNED], signed_bytes[..]);
    assert_eq!(set_bytes[SET_LAST_RESORT_FLAG], 0);
    assert!(set_bytes[SET_LAST_RESORT].iter().all(|b| *b == 0));
    assert_eq!(u32_at(&set_bytes, SET_ONE_TIME_COUNT), 2);
    let first = SET_ONE_TIME_COUNT.end;
    let second = first + ONE_TIME_PREKEY_PUBLIC_LENGTH;
    let end = second + ONE_TIME_PREKEY_PUBLIC_LENGTH;
    assert_eq!(set_bytes[first..second], one_time_bytes[..]);
    let mut header = vec![BUNDLE_VERSION, 0x14];
    header.extend_from_slice(&PUBLISH_ONE_TIME_ID.to_be_bytes());
    assert_eq!(set_bytes[second..second + 10], header[..]);
    assert_eq!(u32_at(&set_bytes, end..end + 4), 0);
    let set = UploadSet::from_bytes(&set_bytes).unwrap();
    assert_eq!(set.to_bytes(), set_bytes);
    assert_eq!(set.identity_key(), bob.public_key());
    assert_eq!(set.signed_prekey(), &signed);
    let ids: Vec<u64> = set
        .one_time_prekeys()
        .iter()
        .map(|k| k.id().to_u64())
        .collect();
    assert_eq!(ids, [42, PUBLISH_ONE_TIME_ID], "oldest first, as listed");
    assert_eq!(set.one_time_prekeys()[0], one_time);
    assert_eq!(
        OneTimePreKeyPublic::from_bytes(&set_bytes[second..end]).as_ref(),
        Ok(&set.one_time_prekeys()[1])
    );
    #[cfg(feature = "pqxdh")]
    {
        assert!(set.pq_last_resort_prekey().is_none());
        assert!(set.pq_one_time_prekeys().is_empty());
    }
    // One value, one encoding: the set built from the parts is the same bytes.
    let built = UploadSet::new(
        bob.public_key(),
        signed.clone(),
        set.one_time_prekeys().to_vec(),
    )
    .unwrap();
    assert_eq!(built, set);
    assert_eq!(built.to_bytes(), set_bytes);
    // Every signature is checked under the set's identity key: under Alice's, the signed
    // prekey's fails. The creation time is not signed: changed, the set still parses, with
    // the other time (a server compares it byte for byte, SPEC.md §8.5).
    let mut foreign = set_bytes.clone();
    foreign[2..34].copy_from_slice(alice.public_key().as_bytes());
    assert_eq!(
        UploadSet::from_bytes(&foreign).err(),
        Some(Error::InvalidSignature)
    );
    let mut retimed = set_bytes.clone();
    retimed[SET_SIGNED.end - 1] ^= 1;
    let retimed = UploadSet::from_bytes(&retimed).unwrap();
    assert_eq!(retimed.signed_prekey().created(), SIGNED_PREKEY_CREATED ^ 1);
    assert_ne!(retimed.signed_prekey(), &signed);
    // A build without PQXDH reads no set with post-quantum prekeys (SPEC.md §5.12).
    #[cfg(not(feature = "pqxdh"))]
    assert_eq!(
        UploadSet::from_bytes(&read("pq_upload_set.bin")).err(),
        Some(Error::InvalidEncoding)
    );

    // Assembled from the golden parts, the bundle is the one the device's own keys make
    // (SPEC.md §5.4, field by field), with and without the one-time prekey, whatever the
    // creation time (a bundle does not carry it).
    let ik = bob.public_key().as_bytes();
    for (one_time, opk) in [(Some(&one_time), Some(&opk)), (None, None)] {
        let bundle =
            PreKeyBundle::assemble(set.identity_key(), set.signed_prekey(), one_time).unwrap();
        bundle.verify().unwrap();
        assert_eq!(bundle.to_bytes(), expected_bundle(ik, &spk, opk));
        let other_time = SignedPreKeyPublic::from_key(&spk, 0).unwrap();
        let again = PreKeyBundle::assemble(bob.public_key(), &other_time, one_time).unwrap();
        assert_eq!(again, bundle);
    }
    // Not under another identity.
    assert_eq!(
        PreKeyBundle::assemble(alice.public_key(), &signed, Some(&one_time)).err(),
        Some(Error::InvalidSignature)
    );

    // The same holds for the golden device: `bundle.bin` named the signed prekey Bob's
    // stored device still accepts (its one-time prekey was used since), and the device's
    // own bundle of its current keys is the one assembled from their public parts.
    let store = LocalDevice::from_bytes(&read("prekey_store.bin")).unwrap();
    let golden = read("bundle.bin");
    let then = PreKeyBundle::from_bytes(&golden)
        .unwrap()
        .signed_prekey_id();
    let then = SignedPreKeyPublic::from_key(store.signed_prekey(then).unwrap(), 0).unwrap();
    let assembled = PreKeyBundle::assemble(store.identity_key(), &then, None)
        .unwrap()
        .to_bytes();
    assert_eq!(assembled[..138], golden[..138]);
    assert_eq!(assembled[138..], [0; 1 + 8 + 32]);
    let current = SignedPreKeyPublic::from_key(
        store.current_signed_prekey(),
        store.current_signed_prekey_created(),
    )
    .unwrap();
    let oldest = store.one_time_prekeys().next().unwrap();
    let oldest_part = OneTimePreKeyPublic::from_key(oldest).unwrap();
    assert_eq!(
        PreKeyBundle::assemble(store.identity_key(), &current, Some(&oldest_part)).unwrap(),
        store.bundle(Some(oldest.id())).unwrap()
    );
}

#[cfg(feature = "pqxdh")]
#[test]
fn post_quantum_publish_golden_files() {
    check_versions(&PQ_PUBLISH_FILES);
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    let spk = SignedPreKey::from_bytes(&read("signed_prekey.bin")).unwrap();
    let pq_prekey = PqPreKey::from_bytes(&read("pq_prekey.bin")).unwrap();
    let signed = SignedPreKeyPublic::from_bytes(&read("signed_prekey_public.bin")).unwrap();
    let one_time_bytes = read("one_time_prekey_public.bin");
    let one_time = OneTimePreKeyPublic::from_bytes(&one_time_bytes).unwrap();

    // The stand-alone last-resort key's public part: type 0x15, 1267 bytes, id 9, kind
    // 0x02, the key and signature of its stored form, and its creation time.
    let last_resort_bytes = read("pq_prekey_public_last_resort.bin");
    assert_eq!(last_resort_bytes.len(), PQ_PREKEY_PUBLIC_LENGTH);
    assert_eq!(
        last_resort_bytes[..11],
        [BUNDLE_VERSION, 0x15, 0, 0, 0, 0, 0, 0, 0, 9, 0x02]
    );
    assert_eq!(last_resort_bytes[11..1195], pq_prekey.public_key()[..]);
    assert_eq!(last_resort_bytes[1195..1259], pq_prekey.signature());
    assert_eq!(last_resort_bytes[1259..], LAST_RESORT_CREATED.to_be_bytes());
    let last_resort = PqPreKeyPublic::from_bytes(&last_resort_bytes).unwrap();
    assert_eq!(last_resort.to_bytes(), last_resort_bytes);
    assert_eq!(
        last_resort,
        PqPreKeyPublic::last_resort(&pq_prekey, LAST_RESORT_CREATED).unwrap()
    );
    assert_eq!(
        (last_resort.kind(), last_resort.created()),
        (PqPreKeyKind::LastResort, Some(LAST_RESORT_CREATED))
    );

    // A one-time post-quantum prekey's public part: kind 0x01 and a zero time field.
    let pq_one_time_bytes = read("pq_prekey_public_one_time.bin");
    assert_eq!(pq_one_time_bytes.len(), PQ_PREKEY_PUBLIC_LENGTH);
    let id = PUBLISH_PQ_ONE_TIME_IDS[0].to_be_bytes();
    assert_eq!(pq_one_time_bytes[..2], [BUNDLE_VERSION, 0x15]);
    assert_eq!(pq_one_time_bytes[2..10], id);
    assert_eq!(pq_one_time_bytes[10], 0x01);
    assert_eq!(pq_one_time_bytes[1259..], [0; 8]);
    let pq_one_time = PqPreKeyPublic::from_bytes(&pq_one_time_bytes).unwrap();
    assert_eq!(pq_one_time.to_bytes(), pq_one_time_bytes);
    assert_eq!(
        (pq_one_time.kind(), pq_one_time.created()),
        (PqPreKeyKind::OneTime, None)
    );
    // A time on a one-time key is not an encoding (SPEC.md §5.11).
    let mut timed = pq_one_time_bytes.clone();
    timed[PQ_PREKEY_PUBLIC_LENGTH - 1] = 1;
    assert_eq!(
        PqPreKeyPublic::from_bytes(&timed).err(),
        Some(Error::InvalidEncoding)
    );

    // The upload set with post-quantum prekeys: 1424 + 42·1 + 1267·2 bytes; the last-resort
    // part after the flag 0x01, one-time prekey 42, then one-time post-quantum prekeys 10
    // and 11, each the standalone part's bytes.
    let set_bytes = read("pq_upload_set.bin");
    let n = 1;
    let m = PUBLISH_PQ_ONE_TIME_IDS.len();
    assert_eq!(
        set_bytes.len(),
        UPLOAD_SET_FIXED_LENGTH + n * ONE_TIME_PREKEY_PUBLIC_LENGTH + m * PQ_PREKEY_PUBLIC_LENGTH
    );
    assert_eq!(set_bytes.len(), 4000);
    assert_eq!(set_bytes[..2], [BUNDLE_VERSION, 0x12]);
    assert_eq!(set_bytes[2..34], *bob.public_key().as_bytes());
    assert_eq!(set_bytes[SET_SIGNED], signed.to_bytes()[..]);
    assert_eq!(set_bytes[SET_LAST_RESORT_FLAG], 1);
    assert_eq!(set_bytes[SET_LAST_RESORT], last_resort_bytes[..]);
    assert_eq!(u32_at(&set_bytes, SET_ONE_TIME_COUNT), n);
    let c = SET_ONE_TIME_COUNT.end + n * ONE_TIME_PREKEY_PUBLIC_LENGTH;
    assert_eq!(set_bytes[SET_ONE_TIME_COUNT.end..c], one_time_bytes[..]);
    assert_eq!(u32_at(&set_bytes, c..c + 4), m);
    let first = c + 4;
    assert_eq!(
        set_bytes[first..first + PQ_PREKEY_PUBLIC_LENGTH],
        pq_one_time_bytes[..]
    );
    let set = UploadSet::from_bytes(&set_bytes).unwrap();
    assert_eq!(set.to_bytes(), set_bytes);
    assert_eq!(set.identity_key(), bob.public_key());
    assert_eq!(set.signed_prekey(), &signed);
    assert_eq!(set.one_time_prekeys(), [one_time]);
    assert_eq!(set.pq_last_resort_prekey(), Some(&last_resort));
    let ids: Vec<u64> = set
        .pq_one_time_prekeys()
        .iter()
        .map(|k| k.id().to_u64())
        .collect();
    assert_eq!(ids, PUBLISH_PQ_ONE_TIME_IDS, "oldest first, as listed");
    assert_eq!(set.pq_one_time_prekeys()[0], pq_one_time);
    let second = &set.pq_one_time_prekeys()[1];
    assert_eq!(second.kind(), PqPreKeyKind::OneTime);
    assert_eq!(
        second.to_bytes(),
        set_bytes[first + PQ_PREKEY_PUBLIC_LENGTH..]
    );
    let built = UploadSet::new(bob.public_key(), signed.clone(), vec![one_time])
        .unwrap()
        .with_post_quantum(
            Some(last_resort.clone()),
            set.pq_one_time_prekeys().to_vec(),
        )
        .unwrap();
    assert_eq!(built.to_bytes(), set_bytes);
    // A one-time key in the last-resort place is refused.
    let mut swapped = set_bytes.clone();
    swapped[SET_LAST_RESORT].copy_from_slice(&pq_one_time_bytes);
    assert_eq!(
        UploadSet::from_bytes(&swapped).err(),
        Some(Error::InvalidEncoding)
    );

    // Every post-quantum part makes a PQXDH bundle that verifies: the classical bundle of
    // the same keys with type 0x11, then the part's id, key and signature (SPEC.md §5.4).
    let opk = OneTimePreKey::from_bytes(&read("one_time_prekey.bin")).unwrap();
    let classical = expected_bundle(bob.public_key().as_bytes(), &spk, Some(&opk));
    for part in set
        .pq_last_resort_prekey()
        .into_iter()
        .chain(set.pq_one_time_prekeys())
    {
        let bundle =
            PreKeyBundle::assemble(set.identity_key(), set.signed_prekey(), Some(&one_time))
                .unwrap()
                .with_post_quantum(part)
                .unwrap();
        bundle.verify().unwrap();
        let bytes = bundle.to_bytes();
        assert_eq!(bytes.len(), PQ_BUNDLE_LENGTH);
        assert_eq!(bytes[..2], [BUNDLE_VERSION, 0x11]);
        assert_eq!(bytes[2..BUNDLE_LENGTH], classical[2..]);
        assert_eq!(bytes[179..187], part.id().to_u64().to_be_bytes());
        assert_eq!(bytes[187..1371], part.public_key()[..]);
        assert_eq!(bytes[1371..], part.signature());
    }
    // The last-resort key's bundle is the one of its stored form.
    assert_eq!(
        PreKeyBundle::assemble(bob.public_key(), &signed, Some(&one_time))
            .unwrap()
            .with_post_quantum(&last_resort)
            .unwrap(),
        pq_bundle_of(&bob, &spk, Some(&opk), &pq_prekey)
    );

    // The golden PQXDH device: its last-resort bundle is the one assembled from the public
    // parts of its current signed prekey (the one `pq_bundle.bin` names) and its current
    // last-resort key.
    let store = LocalDevice::from_bytes(&read("pq_prekey_store.bin")).unwrap();
    let golden = read("pq_bundle.bin");
    let device = store.pq_bundle(None, None).unwrap();
    let last_resort_id = device.post_quantum_prekey_id().unwrap();
    let key = store.pq_prekey(last_resort_id).unwrap();
    let signed = SignedPreKeyPublic::from_key(
        store.current_signed_prekey(),
        store.current_signed_prekey_created(),
    )
    .unwrap();
    let assembled = PreKeyBundle::assemble(store.identity_key(), &signed, None)
        .unwrap()
        .with_post_quantum(&PqPreKeyPublic::last_resort(key, 0).unwrap())
        .unwrap();
    assert_eq!(assembled, device);
    assert_eq!(assembled.to_bytes()[..138], golden[..138]);
}

#[test]
fn golden_generator_is_deterministic() {
    let first = generate();
    let second = generate();
    assert_eq!(first.len(), all_files().len());
    for ((name, bytes), (name2, bytes2)) in first.iter().zip(&second) {
        assert_eq!(name, name2);
        assert_eq!(bytes, bytes2, "{name}");
    }
    let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, all_files());
}

/// A device list's `(account key, counter, [(device id, identity key)])`.
type ListView = ([u8; 32], u64, Vec<(u32, [u8; 32])>);

/// The device list embedded in a stored account or contact (SPEC.md §9.4), field by field,
/// after checking its layout, each device's link signature (strict Ed25519 by the device's
/// identity key over `DEVICE_LINK_LABEL || account key || u32 device id`) and the list's
/// signature (strict Ed25519 by the account key over `DEVICE_LIST_LABEL || the bytes before
/// it`).
fn device_list_view(name: &str, list: &[u8]) -> ListView {
    use ed25519_dalek::{Signature, VerifyingKey};
    let mut r = Cursor(list, 0);
    assert_eq!(r.u8(), BUNDLE_VERSION, "{name}: list version");
    assert_eq!(r.u8(), 0x16, "{name}: list type");
    let account: [u8; 32] = r.take(32).try_into().unwrap();
    let counter = r.u64();
    let n = usize::from(r.u8());
    assert!(n <= doubleratchet::MAX_DEVICES, "{name}");
    let devices: Vec<(u32, [u8; 32])> = (0..n)
        .map(|_| {
            let id = r.u32();
            let key: [u8; 32] = r.take(32).try_into().unwrap();
            let link: [u8; 64] = r.take(64).try_into().unwrap();
            VerifyingKey::from_bytes(&key)
                .unwrap()
                .verify_strict(
                    &[
                        &b"doubleratchet v2 device link"[..],
                        &account[..],
                        &id.to_be_bytes(),
                    ]
                    .concat(),
                    &Signature::from_bytes(&link),
                )
                .unwrap_or_else(|_| panic!("{name}: the link signature of device {id}"));
            (id, key)
        })
        .collect();
    assert!(
        devices.windows(2).all(|w| w[0].0 < w[1].0),
        "{name}: ids strictly ascending"
    );
    let signed = list.len() - 64;
    assert_eq!(signed, 43 + 100 * n, "{name}: list length");
    let signature: [u8; 64] = r.take(64).try_into().unwrap();
    assert_eq!(r.1, list.len(), "{name}: nothing after the signature");
    VerifyingKey::from_bytes(&account)
        .unwrap()
        .verify_strict(
            &[&b"doubleratchet v2 device list"[..], &list[..signed]].concat(),
            &Signature::from_bytes(&signature),
        )
        .unwrap_or_else(|_| panic!("{name}: the list's signature"));
    (account, counter, devices)
}

/// `u32 len || list` at `at` in a stored account or contact: the list, which must end the
/// object.
fn embedded_list<'a>(name: &str, bytes: &'a [u8], at: usize) -> &'a [u8] {
    let len = u32_at(bytes, at..at + 4);
    assert_eq!(
        bytes.len(),
        at + 4 + len,
        "{name}: the list ends the object"
    );
    &bytes[at + 4..]
}

#[test]
fn account_golden_files() {
    use doubleratchet::{Account, DeviceId, DeviceList};
    use ed25519_dalek::SigningKey;
    check_versions(&ACCOUNT_FILES);
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // SPEC.md §7.9: version, type, the account key's seed, `len`, the list.
    let bytes = read("account.bin");
    assert_eq!(bytes[..2], [STORAGE_VERSION, 0x2C]);
    let seed: [u8; 32] = bytes[2..34].try_into().unwrap();
    let account_key = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let list = embedded_list("account.bin", &bytes, 34);
    assert_eq!(bytes.len(), 38 + 107 + 2 * 100);
    let (key, counter, devices) = device_list_view("account.bin", list);
    assert_eq!(
        key, account_key,
        "the list is signed by the stored seed's key"
    );
    assert_eq!(counter, ACCOUNT_COUNTER);
    assert_eq!(devices.len(), 2);
    assert_eq!(
        devices[1],
        (BOB_DEVICE_ID, *bob.public_key().as_bytes()),
        "Bob's device (identity.bin)"
    );
    assert_eq!(devices[0].0, BOB_SECOND_DEVICE_ID);

    let account = Account::from_bytes(&bytes).unwrap();
    assert_eq!(
        &account.to_bytes()[..],
        &bytes[..],
        "re-encoding the account"
    );
    assert_eq!(account.account_key().as_bytes(), &account_key);
    let held = account.device_list();
    assert_eq!(held.to_bytes(), list);
    assert_eq!(held.counter(), ACCOUNT_COUNTER);
    let listed: Vec<(u32, [u8; 32])> = held
        .devices()
        .map(|(id, key)| (id.get(), *key.as_bytes()))
        .collect();
    assert_eq!(listed, devices);
    assert_eq!(
        held.identity(DeviceId::new(BOB_DEVICE_ID)),
        Some(bob.public_key())
    );
    assert_eq!(held.identity(DeviceId::new(BOB_REMOVED_DEVICE_ID)), None);
    assert_eq!(DeviceList::from_bytes(list).unwrap(), *held);
    // Bob's device's entry carries the link his device makes (deterministic: SPEC.md §9.4).
    let bob_link = device_of(&bob, &mut rng(1))
        .unwrap()
        .link(account.account_key(), DeviceId::new(BOB_DEVICE_ID));
    assert_eq!(held.links()[1], bob_link, "Bob's device's link");

    // The loaded account signs its next list with the stored key and the next counter.
    let mut next = Account::from_bytes(&bytes).unwrap();
    let new_identity = IdentityKeyPair::generate(&mut rng(1)).unwrap();
    let new_device = device_of(&new_identity, &mut rng(2)).unwrap();
    let link = new_device.link(next.account_key(), DeviceId::new(BOB_REMOVED_DEVICE_ID - 1));
    let signed = next.add_device(&link).unwrap().to_bytes();
    let (key, counter, devices) = device_list_view("the next list", &signed);
    assert_eq!(
        (key, counter, devices.len()),
        (account_key, ACCOUNT_COUNTER + 1, 3)
    );
    assert_eq!(
        next.remove_device(DeviceId::new(BOB_REMOVED_DEVICE_ID))
            .err(),
        Some(Error::UnknownDevice(DeviceId::new(BOB_REMOVED_DEVICE_ID)))
    );

    // The account sealed with an application context.
    let sealed = read("sealed_account_with_context.bin");
    assert_eq!(sealed.len(), 15 + bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x2C]);
    check_sealed_construction("sealed account", &sealed, &bytes, ACCOUNT_CONTEXT);
    let opened = storage_key()
        .open::<Account>(&sealed, ACCOUNT_CONTEXT)
        .unwrap();
    assert_eq!(&opened.to_bytes()[..], &bytes[..]);
    assert_eq!(
        storage_key()
            .seal(&opened, ACCOUNT_CONTEXT, &mut rng_for_account_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound::<Account>(&sealed, ACCOUNT_CONTEXT);
    assert_eq!(
        storage_key()
            .open::<doubleratchet::Contact>(&sealed, ACCOUNT_CONTEXT)
            .err(),
        Some(Error::UnexpectedType(0x2C)),
        "a sealed account is not a sealed contact"
    );
}

#[test]
fn contact_golden_files() {
    use doubleratchet::{Contact, DeviceId, DeviceUpdate, Trust};
    check_versions(&CONTACT_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    let account = read("account.bin");
    let account_list = embedded_list("account.bin", &account, 34);

    // SPEC.md §7.10: version, type, the local identity, trust, post-quantum memory, the
    // record limits (as in §7.8), `len`, the list.
    let bytes = read("contact.bin");
    assert_eq!(bytes[..2], [STORAGE_VERSION, 0x2D]);
    assert_eq!(
        &bytes[2..34],
        alice.public_key().as_bytes(),
        "local identity"
    );
    assert_eq!(bytes[34], 0x00, "trust: first use");
    assert_eq!(bytes[35], 0x01, "post-quantum memory set");
    let limits = record_limits();
    let mut encoded_limits = Vec::new();
    encoded_limits.extend_from_slice(&limits.max_archived.to_be_bytes());
    encoded_limits.extend_from_slice(&limits.max_trials.to_be_bytes());
    encoded_limits.extend_from_slice(&limits.max_stored_skipped.to_be_bytes());
    encoded_limits.extend_from_slice(&limits.unacknowledged_after.to_be_bytes());
    encoded_limits.extend_from_slice(&limits.reset_interval.to_be_bytes());
    assert_eq!(bytes[36..64], encoded_limits[..], "record limits");
    let list = embedded_list("contact.bin", &bytes, 64);
    assert_eq!(list, account_list, "the list of account.bin");
    let (account_key, counter, devices) = device_list_view("contact.bin", list);
    assert_eq!(counter, ACCOUNT_COUNTER);

    let contact = Contact::from_bytes(&bytes).unwrap();
    assert_eq!(
        &contact.to_bytes()[..],
        &bytes[..],
        "re-encoding the contact"
    );
    assert_eq!(contact.account_key().as_bytes(), &account_key);
    assert_eq!(contact.local_identity(), alice.public_key());
    assert_eq!(contact.trust(), Trust::FirstUse);
    assert!(contact.requires_post_quantum());
    assert_eq!(contact.limits(), limits);
    assert_eq!(contact.device_list().counter(), ACCOUNT_COUNTER);
    let listed: Vec<(u32, [u8; 32])> = contact
        .device_list()
        .devices()
        .map(|(id, key)| (id.get(), *key.as_bytes()))
        .collect();
    assert_eq!(listed, devices);
    assert_eq!(
        contact.records().count(),
        0,
        "records are stored on their own"
    );

    // The loaded contact keeps its rules: the held list changes nothing, a classical bundle
    // of Bob's device is refused (the post-quantum memory), an unlisted device is unknown.
    let mut loaded = Contact::from_bytes(&bytes).unwrap();
    assert_eq!(
        loaded.update_devices(contact.device_list()),
        Ok(DeviceUpdate::Unchanged)
    );
    let alice_device = device_of(&alice, &mut rng(1)).unwrap();
    let classical = PreKeyBundle::from_bytes(&read("bundle.bin")).unwrap();
    assert_eq!(classical.identity_key(), bob.public_key());
    let options = SessionOptions::new();
    assert_eq!(
        loaded
            .initiate(
                &alice_device,
                DeviceId::new(BOB_DEVICE_ID),
                &classical,
                &options,
                0,
                &mut rng(2)
            )
            .err(),
        Some(Error::PostQuantumRequired)
    );
    assert_eq!(
        loaded
            .initiate(
                &alice_device,
                DeviceId::new(BOB_REMOVED_DEVICE_ID),
                &classical,
                &options,
                0,
                &mut rng(2)
            )
            .err(),
        Some(Error::UnknownDevice(DeviceId::new(BOB_REMOVED_DEVICE_ID)))
    );
    assert_eq!(
        &loaded.to_bytes()[..],
        &bytes[..],
        "a failed call changes nothing"
    );

    // The contact sealed with an application context.
    let sealed = read("sealed_contact_with_context.bin");
    assert_eq!(sealed.len(), 15 + bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x2D]);
    check_sealed_construction("sealed contact", &sealed, &bytes, CONTACT_CONTEXT);
    let opened = storage_key()
        .open::<Contact>(&sealed, CONTACT_CONTEXT)
        .unwrap();
    assert_eq!(&opened.to_bytes()[..], &bytes[..]);
    assert_eq!(
        storage_key()
            .seal(&opened, CONTACT_CONTEXT, &mut rng_for_contact_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound::<Contact>(&sealed, CONTACT_CONTEXT);
    assert_eq!(
        storage_key()
            .open::<doubleratchet::Account>(&sealed, CONTACT_CONTEXT)
            .err(),
        Some(Error::UnexpectedType(0x2D)),
        "a sealed contact is not a sealed account"
    );
}

/// `group.bin` (SPEC.md §7.11), `member_chains.bin` (§7.12), the messages stored next to them
/// and both sealed with a context: read field by field, re-encoded byte for byte, and still
/// working (the group encrypts exactly its stored next message, the chains decrypt both
/// messages, one with a kept key of the newest chain).
#[test]
fn group_golden_files() {
    use doubleratchet::{DistributionOutcome, Group, GroupId, GroupMessage, MemberChains};
    use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
    check_versions(&GROUP_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    let verify = |key: &[u8; 32], message: &[u8], signature: &[u8]| {
        VerifyingKey::from_bytes(key)
            .unwrap()
            .verify_strict(
                message,
                &Signature::from_bytes(signature.try_into().unwrap()),
            )
            .is_ok()
    };

    // SPEC.md §7.11: version, type, group id, the local identity, padding, the sending chain
    // (id, next iteration, chain key, signing seed), `m`, the members.
    let bytes = read("group.bin");
    assert_eq!(bytes[..2], [STORAGE_VERSION, 0x2E]);
    assert_eq!(bytes.len(), 147 + 2 * 32, "two other members");
    let group_id: [u8; 32] = bytes[2..34].try_into().unwrap();
    assert_eq!(
        &bytes[34..66],
        alice.public_key().as_bytes(),
        "Alice's group"
    );
    assert_eq!(bytes[66], PADDING_PADME_BYTE, "padding: Padme, the default");
    let chain_id = u64::from_be_bytes(bytes[67..75].try_into().unwrap());
    assert_eq!(
        u32_at(&bytes, 75..79),
        3,
        "next iteration: a6-0..a6-2 were sent"
    );
    let chain_key: [u8; 32] = bytes[79..111].try_into().unwrap();
    let seed: [u8; 32] = bytes[111..143].try_into().unwrap();
    let signing_key = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    assert_eq!(u32_at(&bytes, 143..147), 2);
    let members: Vec<[u8; 32]> = bytes[147..]
        .chunks(32)
        .map(|k| k.try_into().unwrap())
        .collect();
    assert!(members[0] < members[1], "members strictly ascending");
    assert!(members.contains(bob.public_key().as_bytes()));
    let carol = *members
        .iter()
        .find(|m| *m != bob.public_key().as_bytes())
        .unwrap();

    let group = Group::from_bytes(&bytes).unwrap();
    assert_eq!(&group.to_bytes()[..], &bytes[..], "re-encoding the group");
    assert_eq!(group.id().as_bytes(), &group_id);
    assert_eq!(group.own_identity(), alice.public_key());
    assert_eq!(group.chain_id(), chain_id);
    assert_eq!(group.iteration(), 3);
    assert_eq!(group.padding(), Padding::Padme);
    let listed: Vec<[u8; 32]> = group.members().iter().map(|m| *m.as_bytes()).collect();
    assert_eq!(listed, members);
    // Its distribution (SPEC.md §11.2): the chain key at iteration 3, the seed's public key,
    // and the binding to Alice's identity.
    let distribution = group.distribution().to_bytes();
    assert_eq!(distribution.len(), 174);
    assert_eq!(&distribution[..2], &[WIRE_VERSION, 0x09]);
    assert_eq!(&distribution[2..34], &group_id);
    assert_eq!(&distribution[34..42], &chain_id.to_be_bytes());
    assert_eq!(&distribution[42..46], &3u32.to_be_bytes());
    assert_eq!(&distribution[46..78], &chain_key);
    assert_eq!(&distribution[78..110], &signing_key);
    let binding = [
        &b"doubleratchet v2 group sender"[..],
        &group_id,
        &chain_id.to_be_bytes(),
        &signing_key,
        alice.public_key().as_bytes(),
    ]
    .concat();
    assert!(
        verify(&signing_key, &binding, &distribution[110..]),
        "binding"
    );

    // The stored group encrypts exactly the stored next message (deterministic, §11.3):
    // iteration 3 under the stored chain key, signed by the stored seed.
    let next = read("group.next_message.bin");
    let mut sending = Group::from_bytes(&bytes).unwrap();
    assert_eq!(sending.encrypt(GROUP_NEXT).unwrap(), next);
    assert_eq!(sending.iteration(), 4);
    assert_eq!(next.len(), 158 + 64, "Padme: the 64-byte minimum");
    let parsed = GroupMessage::parse(&next).unwrap();
    assert_eq!(parsed.group_id().as_bytes(), &group_id);
    assert_eq!(parsed.chain_id(), chain_id);
    assert_eq!(parsed.iteration(), 3);
    // KDF_GCK of the stored chain key (SPEC.md §11.1), with the hmac crate.
    let hmac = |input: u8| -> [u8; 32] {
        use aes_gcm_siv::aead::KeyInit;
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&chain_key).unwrap();
        mac.update(&[input]);
        mac.finalize().into_bytes().into()
    };
    assert_eq!(
        &next[46..78],
        &hmac(0x04),
        "the key commitment of iteration 3"
    );
    assert!(verify(
        &signing_key,
        &next[..next.len() - 64],
        &next[next.len() - 64..]
    ));
    {
        use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
        let opened = aes_gcm_siv::Aes256GcmSiv::new_from_slice(&hmac(0x03))
            .unwrap()
            .decrypt(
                &aes_gcm_siv::Nonce::from([0u8; 12]),
                Payload {
                    msg: &next[78..next.len() - 64],
                    aad: &next[..78],
                },
            )
            .unwrap();
        assert_eq!(&opened[..GROUP_NEXT.len()], GROUP_NEXT);
        assert_eq!(opened[GROUP_NEXT.len()], 0x80);
    }

    // SPEC.md §7.12: version, type, group id, the member, `r`, `c`, the retired ids, the
    // chains (id, signing key, next, chain key, `k`, skipped keys).
    let chains_bytes = read("member_chains.bin");
    assert_eq!(chains_bytes[..2], [STORAGE_VERSION, 0x2F]);
    assert_eq!(&chains_bytes[2..34], &group_id);
    assert_eq!(
        &chains_bytes[34..66],
        alice.public_key().as_bytes(),
        "Alice's chains"
    );
    assert_eq!(
        (chains_bytes[66], chains_bytes[67]),
        (1, 5),
        "one retired id, five chains"
    );
    let retired = u64::from_be_bytes(chains_bytes[68..76].try_into().unwrap());
    let mut r = Cursor(&chains_bytes, 76);
    let mut chains_view = Vec::new();
    for _ in 0..5 {
        let id = r.u64();
        let key: [u8; 32] = r.take(32).try_into().unwrap();
        let next = r.u32();
        let _chain_key = r.take(32);
        let k = r.u32() as usize;
        let skipped: Vec<u32> = (0..k)
            .map(|_| {
                let i = r.u32();
                let _keys = r.take(64);
                assert!(i < next);
                i
            })
            .collect();
        chains_view.push((id, key, next, skipped));
    }
    assert_eq!(r.1, chains_bytes.len(), "nothing after the last chain");
    assert!(
        chains_view.iter().all(|c| c.0 != retired),
        "retired ids are not held"
    );
    let newest = chains_view.last().unwrap();
    assert_eq!(
        (newest.0, newest.1, newest.2, newest.3.clone()),
        (chain_id, signing_key, 3, vec![0, 1]),
        "the newest chain is group.bin's, at iteration 3, with a6-0 and a6-1 kept"
    );
    assert_eq!(
        chains_view[0].3,
        [0, 2],
        "the oldest chain (a2) keeps a2-0 and a2-2"
    );
    assert!(chains_view[1..4].iter().all(|c| c.2 == 0 && c.3.is_empty()));
    let chains = MemberChains::from_bytes(&chains_bytes).unwrap();
    assert_eq!(
        &chains.to_bytes()[..],
        &chains_bytes[..],
        "re-encoding the chains"
    );
    assert_eq!(chains.group_id().as_bytes(), &group_id);
    assert_eq!(chains.member(), alice.public_key());
    assert_eq!(chains.stored_skipped(), MEMBER_CHAINS_SKIPPED);
    let ids: Vec<u64> = chains.chain_ids().collect();
    assert_eq!(ids, chains_view.iter().map(|c| c.0).collect::<Vec<_>>());

    // Bob's side: a group of the same id with Alice as a member decrypts both messages; a
    // failed call changes nothing.
    let bobs = Group::new(
        GroupId::from_bytes(group_id),
        bob.public_key(),
        &[
            *alice.public_key(),
            doubleratchet::IdentityKey::from_bytes(&carol).unwrap(),
        ],
        &mut rng(1),
    )
    .unwrap();
    let mut loaded = MemberChains::from_bytes(&chains_bytes).unwrap();
    let kept = read("member_chains.next_message.bin");
    assert_eq!(
        bobs.decrypt(&mut loaded, &kept).unwrap(),
        MEMBER_CHAINS_NEXT
    );
    assert_eq!(loaded.stored_skipped(), MEMBER_CHAINS_SKIPPED - 1);
    assert_eq!(
        bobs.decrypt(&mut loaded, &kept).err(),
        Some(Error::DuplicateOrExpired)
    );
    assert_eq!(bobs.decrypt(&mut loaded, &next).unwrap(), GROUP_NEXT);
    assert_eq!(loaded.stored_skipped(), MEMBER_CHAINS_SKIPPED - 1);
    let mut fresh = MemberChains::from_bytes(&chains_bytes).unwrap();
    assert_eq!(
        bobs.decrypt(&mut fresh, &next).unwrap(),
        GROUP_NEXT,
        "in any order"
    );
    // The stored group's distribution is known to the chains; a rotated chain is added and
    // evicts the oldest (a2).
    assert_eq!(
        bobs.process_distribution(alice.public_key(), &distribution, &mut fresh),
        Ok(DistributionOutcome::Known)
    );
    let rotated = sending.rotate(&mut rng(2)).unwrap().to_bytes();
    assert_eq!(
        bobs.process_distribution(alice.public_key(), &rotated, &mut fresh),
        Ok(DistributionOutcome::Added {
            evicted: Some(chains_view[0].0)
        })
    );

    // Both sealed with an application context.
    for (name, plain, context, object_type) in [
        ("sealed_group_with_context.bin", &bytes, GROUP_CONTEXT, 0x2E),
        (
            "sealed_member_chains_with_context.bin",
            &chains_bytes,
            MEMBER_CHAINS_CONTEXT,
            0x2F,
        ),
    ] {
        let sealed = read(name);
        assert_eq!(sealed.len(), 15 + plain.len() + 16, "{name}");
        assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, object_type], "{name}");
        check_sealed_construction(name, &sealed, plain, context);
    }
    let sealed = read("sealed_group_with_context.bin");
    let opened = storage_key().open::<Group>(&sealed, GROUP_CONTEXT).unwrap();
    assert_eq!(&opened.to_bytes()[..], &bytes[..]);
    assert_eq!(
        storage_key()
            .seal(&opened, GROUP_CONTEXT, &mut rng_for_group_seal())
            .unwrap(),
        sealed
    );
    check_context_is_bound::<Group>(&sealed, GROUP_CONTEXT);
    assert_eq!(
        storage_key()
            .open::<MemberChains>(&sealed, GROUP_CONTEXT)
            .err(),
        Some(Error::UnexpectedType(0x2E)),
        "a sealed group is not sealed member chains"
    );
    let sealed = read("sealed_member_chains_with_context.bin");
    let opened = storage_key()
        .open::<MemberChains>(&sealed, MEMBER_CHAINS_CONTEXT)
        .unwrap();
    assert_eq!(&opened.to_bytes()[..], &chains_bytes[..]);
    assert_eq!(
        storage_key()
            .seal(
                &opened,
                MEMBER_CHAINS_CONTEXT,
                &mut rng_for_member_chains_seal()
            )
            .unwrap(),
        sealed
    );
    check_context_is_bound::<MemberChains>(&sealed, MEMBER_CHAINS_CONTEXT);
    assert_eq!(
        storage_key()
            .open::<Group>(&sealed, MEMBER_CHAINS_CONTEXT)
            .err(),
        Some(Error::UnexpectedType(0x2F)),
        "sealed member chains are not a sealed group"
    );
}
