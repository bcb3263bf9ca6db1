//! Persistence tests for the storage format (SPEC.md §7) and sealing.
//!
//! * Round trips of every stored type (sessions at several points of their life, identity
//!   key pairs, signed and one-time prekeys, prekey stores, bundles): loading and storing
//!   again gives the very same bytes, and the loaded object behaves exactly like the
//!   original (same ciphertexts with a cloned RNG, same plaintexts, same errors).
//! * Strict loading: every truncation, an appended byte, a wrong type byte, any other
//!   version byte (a future one, or v1's `0x01`) and corrupted fields (the padding byte
//!   included) are each rejected with a specific [`Error`], never a panic, and a giant
//!   count fails fast without allocating for it.
//! * The padding policy (SPEC.md §4.9) is stored with the session, in its own byte right
//!   after `max_stored_skipped`, and round-trips.
//! * Sealing under a [`StorageKey`]: round trips, every flipped bit, every truncation, the
//!   wrong key and object-type confusion are rejected.
//! * Replay after reload and an app-like loop that stores the sessions after every message.
//! * The measured sizes of stored sessions (`storage_sizes`, run with `--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use doubleratchet::{
    Error, IdentityKeyPair, Limits, Message, OneTimePreKey, Padding, PreKeyBundle, PreKeyStore,
    Role, Session, SessionOptions, SignedPreKey, StorageKey, BUNDLE_LENGTH, BUNDLE_VERSION,
    DEFAULT_MAX_STORED_SKIPPED, MAX_SKIP_CAP, MAX_STORED_SIZE, MAX_STORED_SKIPPED_CAP,
    STORAGE_VERSION,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind};
use rand_chacha::ChaCha20Rng;
use support::{
    accepted_pair, accepted_pair_in_mode, established_pair, is_initial, load, reload, rng, stored,
    Parties,
};

// ---------------------------------------------------------------------------------------
// The stored session layout (SPEC.md §7.1), checked by `session_layout_matches_spec`.
// ---------------------------------------------------------------------------------------

const TYPE_SESSION: u8 = 0x20;
const TYPE_IDENTITY: u8 = 0x21;
const TYPE_SIGNED_PREKEY: u8 = 0x22;
const TYPE_ONE_TIME_PREKEY: u8 = 0x23;
const TYPE_PREKEY_STORE: u8 = 0x24;
const TYPE_BUNDLE: u8 = 0x10;
const TYPE_SEALED: u8 = 0x30;
// The post-quantum (PQXDH) variants; a stored session or store of either type loads with
// the same loader, and seals under the object type 0x20 or 0x24.
const TYPE_SESSION_PQ: u8 = 0x25;
const TYPE_PREKEY_STORE_PQ: u8 = 0x27;
const TYPE_BUNDLE_PQ: u8 = 0x11;
/// A session with header encryption, read by the same loader.
const TYPE_SESSION_HE: u8 = 0x28;
#[cfg(feature = "pqxdh")]
const TYPE_PQ_PREKEY: u8 = 0x26;

const ROLE: usize = 2;
const LOCAL_IDENTITY: usize = 3;
const REMOTE_IDENTITY: usize = 35;
const BASE_KEY: usize = 67;
const PENDING_FLAG: usize = 99;
const PENDING_SPK: usize = 100;
const PENDING_OPK_FLAG: usize = 104;
const PENDING_OPK: usize = 105;
const MAX_SKIP: usize = 109;
const MAX_STORED: usize = 113;
/// The padding policy (profile v2): `0x00` none, `0x01` Padmé; every later field moved
/// by one byte.
const PADDING: usize = 117;
const ROOT_KEY: usize = 118;
const DHS: usize = 150;
const DHR_FLAG: usize = 182;
const CKS_FLAG: usize = 215;
const CKR_FLAG: usize = 248;
const NS: usize = 281;
const NR: usize = 285;
const PN: usize = 289;
const COUNT: usize = 293;
const ENTRIES: usize = 297;
const ENTRY: usize = 32 + 4 + 32;
const SESSION_FIXED: usize = ENTRIES;

/// What a PQXDH session awaiting its reply stores in addition: the post-quantum prekey id
/// and the KEM ciphertext.
const PQ_PENDING: usize = 4 + 1088;
/// A header-encrypted session (type `0x28`) has a flags byte after the role, so each of
/// its fields sits one byte later; after the skipped keys it stores `HKs`, `HKr` (each a
/// flag and 32 bytes), `NHKs`, `NHKr` and the count of skipped-chain header keys.
const HE_SHIFT: usize = 1;
const HE_FIXED: usize = 2 * 33 + 2 * 32 + 4;

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

fn with(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    edit(&mut out);
    out
}

fn load_session(bytes: &[u8]) -> Result<Session, Error> {
    Session::from_bytes(bytes)
}

/// The outcome of loading, without the loaded value (so results of different types
/// compare).
fn outcome<T>(result: Result<T, Error>) -> Result<(), Error> {
    result.map(drop)
}

/// Every loader of a stored type, by the type byte it expects.
fn load_as(type_byte: u8, bytes: &[u8]) -> Result<(), Error> {
    match type_byte {
        TYPE_SESSION | TYPE_SESSION_PQ | TYPE_SESSION_HE => outcome(Session::from_bytes(bytes)),
        TYPE_IDENTITY => outcome(IdentityKeyPair::from_bytes(bytes)),
        TYPE_SIGNED_PREKEY => outcome(SignedPreKey::from_bytes(bytes)),
        TYPE_ONE_TIME_PREKEY => outcome(OneTimePreKey::from_bytes(bytes)),
        TYPE_PREKEY_STORE | TYPE_PREKEY_STORE_PQ => outcome(PreKeyStore::from_bytes(bytes)),
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
    TYPE_PREKEY_STORE,
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
        // A build without PQXDH still reads a 0x27 store without post-quantum state.
        TYPE_PREKEY_STORE | TYPE_PREKEY_STORE_PQ => &[TYPE_PREKEY_STORE, TYPE_PREKEY_STORE_PQ],
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

/// Opens a sealed blob as the type with the given object type byte.
fn open_as(key: &StorageKey, type_byte: u8, sealed: &[u8]) -> Result<Vec<u8>, Error> {
    match type_byte {
        TYPE_SESSION => key.open::<Session>(sealed).map(|s| stored(&s)),
        TYPE_IDENTITY => key
            .open::<IdentityKeyPair>(sealed)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_SIGNED_PREKEY => key
            .open::<SignedPreKey>(sealed)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_ONE_TIME_PREKEY => key
            .open::<OneTimePreKey>(sealed)
            .map(|k| k.to_bytes().to_vec()),
        TYPE_PREKEY_STORE => key
            .open::<PreKeyStore>(sealed)
            .map(|k| k.to_bytes().to_vec()),
        #[cfg(feature = "pqxdh")]
        TYPE_PQ_PREKEY => key.open::<PqPreKey>(sealed).map(|k| k.to_bytes().to_vec()),
        other => panic!("no sealed type {other:#x}"),
    }
}

/// The object types of sealed blobs (a PQXDH session seals as 0x20, a 0x27 store as 0x24).
const SEALABLE_TYPES: &[u8] = &[
    TYPE_SESSION,
    TYPE_IDENTITY,
    TYPE_SIGNED_PREKEY,
    TYPE_ONE_TIME_PREKEY,
    TYPE_PREKEY_STORE,
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

    let mut rng = support::rng(103);
    let parties = Parties::new(&mut rng);
    let bundle = PreKeyBundle::new(
        &parties.bob,
        parties.store.current_signed_prekey().unwrap(),
        None,
    );
    let no_one_time_prekey = Session::initiate(&parties.alice, &bundle, &mut rng).unwrap();

    let (_, mut limited, _, _) = established_pair(104);
    limited
        .set_limits(Limits {
            max_skip: 7,
            max_stored_skipped: 3,
        })
        .unwrap();
    let (_, mut at_caps, _, _) = established_pair(105);
    at_caps
        .set_limits(Limits {
            max_skip: MAX_SKIP_CAP,
            max_stored_skipped: MAX_STORED_SKIPPED_CAP,
        })
        .unwrap();

    let skipped = conversation_with_skipped_keys(106);

    // Sessions with the padding policy Padding::None: Alice's (awaiting a reply) and the
    // responder session Bob makes from her first message.
    let mut rng = support::rng(110);
    let mut parties = Parties::new(&mut rng);
    let no_padding = SessionOptions::new().padding(Padding::None);
    let mut unpadded_initiator =
        Session::initiate_with(&parties.alice, &parties.bundle, &no_padding, &mut rng).unwrap();
    let first = unpadded_initiator.encrypt(b"unpadded", &mut rng).unwrap();
    let unpadded_responder = parties
        .store
        .accept_with(&parties.bob, &first, &no_padding)
        .unwrap()
        .session;
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

/// A prekey store with two signed prekeys (the second current) and nine one-time prekeys.
fn sample_store(seed: u64) -> (IdentityKeyPair, PreKeyStore) {
    let mut rng = rng(seed);
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = PreKeyStore::new(&bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(10, &mut rng).unwrap();
    assert!(store.remove_one_time_prekey(4));
    assert_eq!(store.rotate_signed_prekey(&bob, &mut rng).unwrap(), 2);
    (bob, store)
}

/// PQXDH objects: sessions (the initiator awaiting its reply carries the KEM ciphertext),
/// a prekey store with post-quantum prekeys and a replay record (type 0x27), post-quantum
/// prekeys of both kinds, and a PQXDH bundle.
#[cfg(feature = "pqxdh")]
struct PqSamples {
    initiator_awaiting: Session,
    initiator_established: Session,
    responder: Session,
    store: PreKeyStore,
    one_time: PqPreKey,
    last_resort: PqPreKey,
    bundle: PreKeyBundle,
}

#[cfg(feature = "pqxdh")]
fn pq_samples(seed: u64) -> PqSamples {
    let mut rng = rng(seed);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = PreKeyStore::new(&bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    store
        .generate_pq_one_time_prekeys(&bob, 2, &mut rng)
        .unwrap();
    store.rotate_pq_last_resort_prekey(&bob, &mut rng).unwrap();
    let pq_one_time = store.pq_one_time_prekeys().next().unwrap().id();
    let bundle = store.pq_bundle(&bob, Some(1), Some(pq_one_time)).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &mut rng).unwrap();
    assert!(a.is_post_quantum());
    let first = a.encrypt(b"pq first", &mut rng).unwrap();
    let initiator_awaiting = reload(&a);
    let mut responder = store.accept(&bob, &first).unwrap().session;
    let reply = responder.encrypt(b"pq reply", &mut rng).unwrap();
    a.decrypt(&reply).unwrap();
    // A last-resort session (no one-time prekey of either kind): the store records it.
    let last_resort_bundle = store.pq_bundle(&bob, None, None).unwrap();
    let mut other = Session::initiate(&alice, &last_resort_bundle, &mut rng).unwrap();
    let m = other.encrypt(b"last resort", &mut rng).unwrap();
    store.accept(&bob, &m).unwrap();
    assert_eq!(store.replay_records(), 1);
    PqSamples {
        initiator_awaiting,
        initiator_established: a,
        responder,
        store,
        one_time: PqPreKey::generate(&bob, 9, PqPreKeyKind::OneTime, &mut rng).unwrap(),
        last_resort: PqPreKey::generate(&bob, 10, PqPreKeyKind::LastResort, &mut rng).unwrap(),
        bundle,
    }
}

/// One valid blob of every loadable type, with its type byte.
fn sample_blobs() -> Vec<(String, u8, Vec<u8>)> {
    let mut blobs: Vec<(String, u8, Vec<u8>)> = sample_sessions()
        .into_iter()
        .map(|(name, s)| (format!("session: {name}"), TYPE_SESSION, stored(&s)))
        .collect();
    let mut rng = rng(107);
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let spk = SignedPreKey::generate(&id, 0xdead_beef, &mut rng).unwrap();
    let opk = OneTimePreKey::generate(u32::MAX, &mut rng).unwrap();
    let (bob, store) = sample_store(108);
    let empty_store = PreKeyStore::new(&bob, &mut rng).unwrap();
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
        TYPE_PREKEY_STORE,
        store.to_bytes().to_vec(),
    ));
    blobs.push((
        "empty prekey store".into(),
        TYPE_PREKEY_STORE,
        empty_store.to_bytes().to_vec(),
    ));
    blobs.push((
        "bundle".into(),
        TYPE_BUNDLE,
        store.bundle(&bob, Some(7)).unwrap().to_bytes(),
    ));
    blobs.push((
        "bundle without one-time prekey".into(),
        TYPE_BUNDLE,
        store.bundle(&bob, None).unwrap().to_bytes(),
    ));
    #[cfg(feature = "pqxdh")]
    {
        let pq = pq_samples(109);
        for (name, session) in [
            ("PQXDH initiator awaiting a reply", &pq.initiator_awaiting),
            ("PQXDH established initiator", &pq.initiator_established),
            ("PQXDH responder", &pq.responder),
        ] {
            blobs.push((format!("session: {name}"), TYPE_SESSION_PQ, stored(session)));
        }
        blobs.push((
            "PQXDH prekey store".into(),
            TYPE_PREKEY_STORE_PQ,
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
    for (name, type_byte, bytes) in &blobs {
        assert_eq!(bytes[1], *type_byte, "{name}");
    }
    blobs
}

// ---------------------------------------------------------------------------------------
// Session round trips
// ---------------------------------------------------------------------------------------

#[test]
fn session_layout_matches_spec() {
    for (name, session) in sample_sessions() {
        let bytes = stored(&session);
        let count = session.stored_skipped_keys();
        assert_eq!(bytes.len(), SESSION_FIXED + ENTRY * count, "{name}");
        assert_eq!(bytes[0], STORAGE_VERSION, "{name}");
        assert_eq!(bytes[1], TYPE_SESSION, "{name}");
        let role = match session.role() {
            Role::Initiator => 1,
            Role::Responder => 2,
        };
        assert_eq!(bytes[ROLE], role, "{name}");
        assert_eq!(
            bytes[LOCAL_IDENTITY..REMOTE_IDENTITY],
            session.local_identity().to_bytes(),
            "{name}"
        );
        assert_eq!(
            bytes[REMOTE_IDENTITY..BASE_KEY],
            session.remote_identity().to_bytes(),
            "{name}"
        );
        assert_eq!(
            bytes[PENDING_FLAG],
            u8::from(session.awaiting_reply()),
            "{name}"
        );
        assert_eq!(
            get_u32(&bytes, MAX_SKIP),
            session.limits().max_skip,
            "{name}"
        );
        assert_eq!(
            get_u32(&bytes, MAX_STORED),
            session.limits().max_stored_skipped,
            "{name}"
        );
        assert_eq!(bytes[PADDING], padding_byte(session.padding()), "{name}");
        assert_eq!(
            bytes[DHR_FLAG], 1,
            "{name}: every session knows the peer's key"
        );
        assert_eq!(get_u32(&bytes, COUNT) as usize, count, "{name}");
    }
}

#[test]
fn every_session_reencodes_byte_identically() {
    for (name, session) in sample_sessions() {
        let bytes = stored(&session);
        let loaded = Session::from_bytes(&bytes).unwrap();
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
    assert_eq!(bytes.len(), SESSION_FIXED);
    assert_eq!(bytes[ROLE], 1);
    assert_eq!(bytes[PENDING_FLAG], 1);
    assert_eq!(
        get_u32(&bytes, PENDING_SPK),
        parties.bundle.signed_prekey_id()
    );
    assert_eq!(bytes[PENDING_OPK_FLAG], 1);
    assert_eq!(
        Some(get_u32(&bytes, PENDING_OPK)),
        parties.bundle.one_time_prekey_id()
    );
    assert_eq!(bytes[CKS_FLAG], 1);
    assert_eq!(bytes[CKR_FLAG], 0);
    let mut a2 = load(&bytes);
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
    assert_eq!(bytes.len(), SESSION_FIXED);
    assert_eq!(bytes[ROLE], 2);
    assert_eq!(bytes[PENDING_FLAG], 0);
    assert_eq!(bytes[PENDING_FLAG..MAX_SKIP], [0u8; 10]);
    // After respond: a receiving chain, the sending half of the ratchet step deferred.
    assert_eq!(bytes[CKS_FLAG], 0);
    assert_eq!(bytes[CKR_FLAG], 1);
    assert_eq!(get_u32(&bytes, NR), 1);
    let mut b2 = load(&bytes);
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
        assert_eq!(get_u32(&bytes, COUNT), skipped);
        assert_eq!(bytes.len(), SESSION_FIXED + ENTRY * skipped as usize);
        let mut loaded = load(&bytes);
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
    assert_eq!(bytes[PENDING_FLAG], 1);
    // Not awaiting: after the reply the flag and its fields are zero, and stay so.
    let reply = b.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    let bytes = stored(&a);
    assert_eq!(bytes[PENDING_FLAG..MAX_SKIP], [0u8; 10]);
    let mut a = load(&bytes);
    assert!(!a.awaiting_reply());
    let m = a.encrypt(b"normal", &mut rng).unwrap();
    assert!(!is_initial(&m));
    assert_eq!(b.decrypt(&m).unwrap(), b"normal");

    // Without a one-time prekey the pending OPK field is absent (flag and id zero).
    let mut rng = support::rng(5);
    let mut parties = Parties::new(&mut rng);
    let spk = parties.store.current_signed_prekey().unwrap();
    let bundle = PreKeyBundle::new(&parties.bob, spk, None);
    let a = Session::initiate(&parties.alice, &bundle, &mut rng).unwrap();
    let bytes = stored(&a);
    assert_eq!(bytes[PENDING_FLAG], 1);
    assert_eq!(bytes[PENDING_OPK_FLAG..MAX_SKIP], [0u8; 5]);
    let mut a = load(&bytes);
    let m = a.encrypt(b"no opk", &mut rng).unwrap();
    let (_, plaintext) = parties.accept(&m, Limits::default()).unwrap();
    assert_eq!(plaintext, b"no opk");
}

#[test]
fn custom_limits_round_trip_and_still_apply() {
    let (_, mut a, mut b, mut rng) = established_pair(6);
    let limits = Limits {
        max_skip: 7,
        max_stored_skipped: 3,
    };
    b.set_limits(limits).unwrap();
    let bytes = stored(&b);
    assert_eq!(get_u32(&bytes, MAX_SKIP), 7);
    assert_eq!(get_u32(&bytes, MAX_STORED), 3);
    let mut b2 = load(&bytes);
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
    let spk1 = SignedPreKey::generate(&id, 9, &mut r1).unwrap();
    let spk2 = SignedPreKey::generate(&loaded, 9, &mut r2).unwrap();
    assert_eq!(spk1.to_bytes().to_vec(), spk2.to_bytes().to_vec());
    // ... and the same X3DH: identical sessions from the same RNG state.
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob_spk = SignedPreKey::generate(&bob, 1, &mut rng).unwrap();
    let bundle = PreKeyBundle::new(&bob, &bob_spk, None);
    let mut r1 = rng.clone();
    let mut r2 = rng.clone();
    let s1 = Session::initiate(&id, &bundle, &mut r1).unwrap();
    let s2 = Session::initiate(&loaded, &bundle, &mut r2).unwrap();
    assert_eq!(stored(&s1), stored(&s2));
}

#[test]
fn signed_and_one_time_prekey_round_trips_behave_identically() {
    let mut rng = rng(8);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let spk = SignedPreKey::generate(&bob, 0x0102_0304, &mut rng).unwrap();
    let opk = OneTimePreKey::generate(0x0a0b_0c0d, &mut rng).unwrap();

    let spk_bytes = spk.to_bytes().to_vec();
    assert_eq!(spk_bytes.len(), 2 + 4 + 32 + 64);
    assert_eq!(
        spk_bytes[..6],
        [STORAGE_VERSION, TYPE_SIGNED_PREKEY, 1, 2, 3, 4]
    );
    let spk2 = SignedPreKey::from_bytes(&spk_bytes).unwrap();
    assert_eq!(spk2.to_bytes().to_vec(), spk_bytes);
    assert_eq!(spk2.id(), spk.id());
    assert_eq!(spk2.public_key(), spk.public_key());
    assert_eq!(spk2.signature(), spk.signature());

    let opk_bytes = opk.to_bytes().to_vec();
    assert_eq!(opk_bytes.len(), 2 + 4 + 32);
    assert_eq!(
        opk_bytes[..6],
        [STORAGE_VERSION, TYPE_ONE_TIME_PREKEY, 10, 11, 12, 13]
    );
    let opk2 = OneTimePreKey::from_bytes(&opk_bytes).unwrap();
    assert_eq!(opk2.to_bytes().to_vec(), opk_bytes);
    assert_eq!(opk2.id(), opk.id());
    assert_eq!(opk2.public_key(), opk.public_key());

    // The loaded keys make the same bundle, and accept a session made from the original's.
    let bundle = PreKeyBundle::new(&bob, &spk, Some(&opk));
    let bundle2 = PreKeyBundle::new(&bob, &spk2, Some(&opk2));
    assert_eq!(bundle.to_bytes(), bundle2.to_bytes());
    bundle2.verify().unwrap();
    let mut a = Session::initiate(&alice, &bundle, &mut rng).unwrap();
    let m = a.encrypt(b"to the loaded keys", &mut rng).unwrap();
    let accepted = Session::respond(
        &bob,
        |id| (id == spk2.id()).then_some(&spk2),
        |id| (id == opk2.id()).then_some(&opk2),
        &m,
    )
    .unwrap();
    assert_eq!(accepted.plaintext, b"to the loaded keys");
    assert_eq!(accepted.used_one_time_prekey, Some(opk.id()));
    assert_eq!(accepted.session.id(), a.id());
}

#[test]
fn prekey_store_round_trip_behaves_identically() {
    let (bob, mut store) = sample_store(9);
    let bytes = store.to_bytes().to_vec();
    // Header, three ids, two signed prekeys, nine one-time prekeys.
    assert_eq!(bytes.len(), 2 + 12 + 4 + 2 * 102 + 4 + 9 * 38);
    assert_eq!(bytes[..2], [STORAGE_VERSION, TYPE_PREKEY_STORE]);
    let mut store2 = PreKeyStore::from_bytes(&bytes).unwrap();
    assert_eq!(store2.to_bytes().to_vec(), bytes);
    assert_eq!(
        store2.current_signed_prekey().unwrap().id(),
        store.current_signed_prekey().unwrap().id()
    );
    assert!(store2.signed_prekey(1).is_some());
    let ids = |s: &PreKeyStore| {
        s.one_time_prekeys()
            .map(OneTimePreKey::id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&store2), ids(&store));
    assert_eq!(ids(&store2), [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    assert_eq!(
        store2.bundle(&bob, Some(6)).unwrap().to_bytes(),
        store.bundle(&bob, Some(6)).unwrap().to_bytes()
    );
    // Both accept the same initial message into the same session and the same store.
    let mut rng = rng(10);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bundle = store.bundle(&bob, Some(6)).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &mut rng).unwrap();
    let m = a.encrypt(b"hi store", &mut rng).unwrap();
    let s1 = store.accept(&bob, &m).unwrap();
    let s2 = store2.accept(&bob, &m).unwrap();
    assert_eq!(s1.plaintext, s2.plaintext);
    assert_eq!(stored(&s1.session), stored(&s2.session));
    assert_eq!(store.to_bytes().to_vec(), store2.to_bytes().to_vec());
    // The consumed one-time prekey stays consumed after a reload.
    let mut store3 = PreKeyStore::from_bytes(&store2.to_bytes()).unwrap();
    assert!(store3.one_time_prekey(6).is_none());
    assert_eq!(
        store3.accept(&bob, &m).map(|acc| acc.plaintext),
        Err(Error::UnknownOneTimePreKey(6))
    );
    // Ids are never reused after a reload.
    let fresh: Vec<u32> = store3
        .generate_one_time_prekeys(2, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    assert_eq!(fresh, [11, 12]);
    assert_eq!(store3.rotate_signed_prekey(&bob, &mut rng).unwrap(), 3);
}

#[test]
fn bundle_round_trip() {
    let (bob, store) = sample_store(11);
    for one_time in [Some(3), None] {
        let bundle = store.bundle(&bob, one_time).unwrap();
        let bytes = bundle.to_bytes();
        assert_eq!(bytes.len(), BUNDLE_LENGTH);
        assert_eq!(bytes[..2], [BUNDLE_VERSION, TYPE_BUNDLE]);
        let loaded = PreKeyBundle::from_bytes(&bytes).unwrap();
        assert_eq!(loaded, bundle);
        assert_eq!(loaded.to_bytes(), bytes);
        assert_eq!(loaded.one_time_prekey_id(), one_time);
        assert_eq!(loaded.signed_prekey_id(), 2);
        assert_eq!(loaded.identity_key(), bob.public_key());
        loaded.verify().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Strict loading
// ---------------------------------------------------------------------------------------

#[test]
fn every_truncation_is_rejected() {
    for (name, type_byte, bytes) in sample_blobs() {
        assert!(load_as(type_byte, &bytes).is_ok(), "{name}");
        for len in 0..bytes.len() {
            assert_eq!(
                load_as(type_byte, &bytes[..len]),
                Err(Error::Truncated),
                "{name}: truncated to {len} of {} bytes",
                bytes.len()
            );
        }
    }
}

#[test]
fn appended_bytes_are_rejected() {
    for (name, type_byte, bytes) in sample_blobs() {
        for extra in [&[0u8][..], &[0xff], &[0; ENTRY], &[1; 1000]] {
            let longer = [&bytes[..], extra].concat();
            assert_eq!(
                load_as(type_byte, &longer),
                Err(Error::TrailingData),
                "{name} + {} bytes",
                extra.len()
            );
        }
    }
}

#[test]
fn wrong_type_byte_is_rejected() {
    for (name, type_byte, bytes) in sample_blobs() {
        for other in 0..=u8::MAX {
            if same_loader(type_byte).contains(&other) {
                continue; // see `sibling_type_bytes_are_typed_errors_or_canonical`
            }
            let changed = with(&bytes, |b| b[1] = other);
            assert_eq!(
                load_as(type_byte, &changed),
                Err(Error::UnexpectedType(other)),
                "{name} with type {other:#x}"
            );
        }
        // Loaded as any other type, unchanged.
        for &loader in LOADER_TYPES {
            if !same_loader(loader).contains(&type_byte) {
                assert_eq!(
                    load_as(loader, &bytes),
                    Err(Error::UnexpectedType(type_byte)),
                    "{name} loaded as {loader:#x}"
                );
            }
        }
    }
}

/// A loader that reads two layouts (classical and PQXDH sessions, stores and bundles),
/// given the other one's type byte: a typed error, or (where the layouts coincide, as for
/// a session not awaiting its reply) a valid object that stores back to the same bytes.
#[test]
fn sibling_type_bytes_are_typed_errors_or_canonical() {
    let mut loaded = 0;
    for (name, type_byte, bytes) in sample_blobs() {
        for &sibling in same_loader(type_byte) {
            if sibling == type_byte {
                continue;
            }
            let changed = with(&bytes, |b| b[1] = sibling);
            let reencoded = match type_byte {
                TYPE_SESSION | TYPE_SESSION_PQ | TYPE_SESSION_HE => {
                    Session::from_bytes(&changed).map(|s| stored(&s))
                }
                TYPE_PREKEY_STORE | TYPE_PREKEY_STORE_PQ => {
                    PreKeyStore::from_bytes(&changed).map(|s| s.to_bytes().to_vec())
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
    for (name, type_byte, bytes) in sample_blobs() {
        assert_eq!(bytes[0], version_of(type_byte), "{name}");
        for version in (0..=u8::MAX).filter(|v| *v != version_of(type_byte)) {
            let changed = with(&bytes, |b| b[0] = version);
            assert_eq!(
                load_as(type_byte, &changed),
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
    for (name, type_byte, bytes) in sample_blobs() {
        let v1 = with(&bytes, |b| b[0] = V1);
        assert_eq!(
            load_as(type_byte, &v1),
            Err(Error::UnsupportedVersion(1)),
            "{name}"
        );
    }
    // A session in v1's layout: 296 bytes without skipped keys, no padding byte.
    let bytes = skipped_session_bytes();
    let v1_layout = with(&bytes, |b| {
        b[0] = V1;
        b.remove(PADDING);
    });
    assert_eq!(v1_layout.len(), 296 + 6 * ENTRY);
    assert_eq!(
        load_session(&v1_layout).err(),
        Some(Error::UnsupportedVersion(1))
    );
    // Relabelled 0x02 it is not a v2 session (a field short, every later one misplaced).
    assert!(load_session(&with(&v1_layout, |b| b[0] = STORAGE_VERSION)).is_err());
    // Sealed blobs of v1.
    let mut rng = rng(32);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, _, sealed) in sealed_samples(&key, &mut rng) {
        let v1 = with(&sealed, |b| b[0] = V1);
        assert_eq!(
            open_as(&key, type_byte, &v1),
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
    // Alice's header-encrypted session, awaiting a reply, holds no skipped keys: 432 bytes.
    assert_eq!(
        stored(&header_encrypted).len(),
        SESSION_FIXED + HE_SHIFT + HE_FIXED
    );
    assert_eq!(SESSION_FIXED + HE_SHIFT + HE_FIXED, 432);
    #[allow(unused_mut)]
    let mut samples = vec![
        ("classical", classical, PADDING),
        ("header-encrypted", header_encrypted, PADDING + HE_SHIFT),
    ];
    #[cfg(feature = "pqxdh")]
    for (name, header_encryption) in [
        ("PQXDH awaiting a reply", false),
        ("header-encrypted PQXDH awaiting a reply", true),
    ] {
        let (_, a, _, _) = accepted_pair_in_mode(seed + 2, true, header_encryption);
        assert!(a.awaiting_reply() && a.is_post_quantum());
        let shift = if header_encryption { HE_SHIFT } else { 0 };
        samples.push((name, a, PADDING + shift + PQ_PENDING));
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
        let padme = stored(&session);
        assert_eq!(padme[at], PADDING_PADME, "{name}");
        session.set_padding(Padding::None);
        assert_eq!(session.padding(), Padding::None);
        let none = stored(&session);
        assert_eq!(none[at], PADDING_NONE, "{name}");
        assert_eq!(with(&padme, |b| b[at] = PADDING_NONE), none, "{name}");
        assert_eq!(load(&padme).padding(), Padding::Padme, "{name}");
        let mut loaded = load(&none);
        assert_eq!(loaded.padding(), Padding::None, "{name}");
        let opened = key
            .open::<Session>(&key.seal(&loaded, &mut seal_rng).unwrap())
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
    let mut blobs: Vec<(&str, Vec<u8>, usize)> = padding_samples(37)
        .into_iter()
        .map(|(name, session, at)| (name, stored(&session), at))
        .collect();
    blobs.push(("with skipped keys", skipped_session_bytes(), PADDING));
    let unpadded = stored(&sample_session("responder without padding"));
    blobs.push(("without padding", unpadded, PADDING));
    for (name, bytes, at) in blobs {
        for value in 0..=u8::MAX {
            let changed = with(&bytes, |b| b[at] = value);
            match value {
                PADDING_NONE => assert_eq!(load(&changed).padding(), Padding::None, "{name}"),
                PADDING_PADME => assert_eq!(load(&changed).padding(), Padding::Padme, "{name}"),
                _ => assert_eq!(
                    load_session(&changed).err(),
                    Some(Error::InvalidEncoding),
                    "{name}: padding byte {value:#04x}"
                ),
            }
        }
    }
}

/// The stored session with skipped keys used by the corruption tests, and its skipped-key
/// count (6).
fn skipped_session_bytes() -> Vec<u8> {
    let bytes = stored(&conversation_with_skipped_keys(12).b);
    assert_eq!(get_u32(&bytes, COUNT), 6);
    bytes
}

fn established_initiator_bytes() -> Vec<u8> {
    let (_, a, _, _) = established_pair(13);
    stored(&a)
}

#[test]
fn session_corrupt_role_and_flags_are_rejected() {
    let responder = skipped_session_bytes();
    let initiator = stored(&sample_session("initiator awaiting a reply"));
    assert_eq!(initiator[PENDING_FLAG], 1);
    for role in (0..=u8::MAX).filter(|r| *r != 1 && *r != 2) {
        assert_eq!(
            load_session(&with(&responder, |b| b[ROLE] = role)).err(),
            Some(Error::InvalidEncoding),
            "role {role}"
        );
    }
    for flag_at in [PENDING_FLAG, DHR_FLAG, CKS_FLAG, CKR_FLAG] {
        for value in 2..=u8::MAX {
            assert_eq!(
                load_session(&with(&responder, |b| b[flag_at] = value)).err(),
                Some(Error::InvalidEncoding),
                "flag at {flag_at} = {value}"
            );
        }
    }
    for value in 2..=u8::MAX {
        assert_eq!(
            load_session(&with(&initiator, |b| b[PENDING_OPK_FLAG] = value)).err(),
            Some(Error::InvalidEncoding),
            "pending OPK flag {value}"
        );
    }
    // An absent field must be all zeros.
    assert_eq!(
        load_session(&with(&responder, |b| b[PENDING_SPK + 3] = 1)).err(),
        Some(Error::InvalidEncoding)
    );
    let no_opk = stored(&sample_session("initiator without one-time prekey"));
    assert_eq!(no_opk[PENDING_OPK_FLAG], 0);
    assert_eq!(
        load_session(&with(&no_opk, |b| b[PENDING_OPK + 3] = 1)).err(),
        Some(Error::InvalidEncoding)
    );
    let fresh_responder = stored(&sample_session("fresh responder"));
    assert_eq!(fresh_responder[CKS_FLAG], 0);
    assert_eq!(
        load_session(&with(&fresh_responder, |b| b[CKS_FLAG + 32] = 1)).err(),
        Some(Error::InvalidEncoding)
    );
    // A responder never has pending initial-message fields.
    assert_eq!(
        load_session(&with(&responder, |b| b[PENDING_FLAG] = 1)).err(),
        Some(Error::InvalidEncoding)
    );
    // Flipping an initiator's role to responder while it is awaiting a reply.
    assert_eq!(
        load_session(&with(&initiator, |b| b[ROLE] = 2)).err(),
        Some(Error::InvalidEncoding)
    );
}

#[test]
fn session_inconsistent_ratchet_state_is_rejected() {
    let established = established_initiator_bytes();
    // Absent peer ratchet key.
    let no_dhr = with(&established, |b| b[DHR_FLAG..DHR_FLAG + 33].fill(0));
    assert_eq!(load_session(&no_dhr).err(), Some(Error::InvalidEncoding));
    // An absent chain with a non-zero counter.
    let fresh_responder = stored(&sample_session("fresh responder"));
    let bad = with(&fresh_responder, |b| put_u32(b, NS, 1));
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    let fresh_initiator = stored(&sample_session("fresh initiator"));
    assert_eq!(fresh_initiator[CKR_FLAG], 0);
    let bad = with(&fresh_initiator, |b| put_u32(b, NR, 1));
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    // Identical local and remote identities.
    let bad = with(&established, |b| {
        let local: [u8; 32] = b[LOCAL_IDENTITY..REMOTE_IDENTITY].try_into().unwrap();
        b[REMOTE_IDENTITY..BASE_KEY].copy_from_slice(&local);
    });
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
}

#[test]
fn session_invalid_public_keys_are_rejected() {
    let bytes = skipped_session_bytes();
    for key in invalid_identity_keys() {
        for at in [LOCAL_IDENTITY, REMOTE_IDENTITY] {
            let bad = with(&bytes, |b| b[at..at + 32].copy_from_slice(&key));
            assert_eq!(
                load_session(&bad).err(),
                Some(Error::InvalidPublicKey),
                "at {at}"
            );
        }
    }
    for key in invalid_x25519_keys() {
        for at in [BASE_KEY, DHR_FLAG + 1, ENTRIES, ENTRIES + 5 * ENTRY] {
            let bad = with(&bytes, |b| b[at..at + 32].copy_from_slice(&key));
            assert_eq!(
                load_session(&bad).err(),
                Some(Error::InvalidPublicKey),
                "key {key:02x?} at {at}"
            );
        }
    }
}

#[test]
fn session_limits_above_caps_are_rejected() {
    let bytes = established_initiator_bytes();
    for (at, cap) in [
        (MAX_SKIP, MAX_SKIP_CAP),
        (MAX_STORED, MAX_STORED_SKIPPED_CAP),
    ] {
        for value in [cap + 1, u32::MAX] {
            let bad = with(&bytes, |b| put_u32(b, at, value));
            assert_eq!(
                load_session(&bad).err(),
                Some(Error::InvalidLimits),
                "{value} at {at}"
            );
        }
        let at_cap = with(&bytes, |b| put_u32(b, at, cap));
        load(&at_cap);
    }
    // Zero limits are valid.
    let zero = with(&bytes, |b| b[MAX_SKIP..PADDING].fill(0));
    assert_eq!(
        load(&zero).limits(),
        Limits {
            max_skip: 0,
            max_stored_skipped: 0
        }
    );
}

#[test]
fn session_skipped_key_count_is_checked() {
    let bytes = skipped_session_bytes();
    // Above max_stored_skipped (the default 2000), up to u32::MAX.
    for count in [
        DEFAULT_MAX_STORED_SKIPPED + 1,
        MAX_STORED_SKIPPED_CAP + 1,
        u32::MAX,
    ] {
        let bad = with(&bytes, |b| put_u32(b, COUNT, count));
        assert_eq!(
            load_session(&bad).err(),
            Some(Error::InvalidEncoding),
            "count {count}"
        );
    }
    // The stored limit lowered below the six stored keys.
    let bad = with(&bytes, |b| put_u32(b, MAX_STORED, 5));
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    load(&with(&bytes, |b| put_u32(b, MAX_STORED, 6)));
    // Inconsistent with the length.
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, COUNT, 7))).err(),
        Some(Error::Truncated)
    );
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, COUNT, 5))).err(),
        Some(Error::TrailingData)
    );
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(b, COUNT, 0))).err(),
        Some(Error::TrailingData)
    );
    assert_eq!(
        load_session(&with(&bytes, |b| put_u32(
            b,
            COUNT,
            DEFAULT_MAX_STORED_SKIPPED
        )))
        .err(),
        Some(Error::Truncated)
    );
    // Dropping whole entries consistently with the count is a valid (smaller) session.
    let mut fewer = bytes[..ENTRIES + 2 * ENTRY].to_vec();
    put_u32(&mut fewer, COUNT, 2);
    assert_eq!(load(&fewer).stored_skipped_keys(), 2);
}

#[test]
fn session_duplicate_skipped_entries_are_rejected() {
    let bytes = skipped_session_bytes();
    // The same entry twice.
    let bad = with(&bytes, |b| {
        let first = b[ENTRIES..ENTRIES + ENTRY].to_vec();
        b[ENTRIES + 3 * ENTRY..ENTRIES + 4 * ENTRY].copy_from_slice(&first);
    });
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    // The same (ratchet key, N) index with a different message key.
    let bad = with(&bytes, |b| {
        let index = b[ENTRIES..ENTRIES + 36].to_vec();
        b[ENTRIES + ENTRY..ENTRIES + ENTRY + 36].copy_from_slice(&index);
    });
    assert_ne!(
        bad[ENTRIES + 36..ENTRIES + ENTRY],
        bad[ENTRIES + ENTRY + 36..ENTRIES + 2 * ENTRY]
    );
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    // Same key, different N: fine.
    let ok = with(&bytes, |b| {
        let index = b[ENTRIES..ENTRIES + 32].to_vec();
        b[ENTRIES + ENTRY..ENTRIES + ENTRY + 32].copy_from_slice(&index);
        put_u32(b, ENTRIES + ENTRY + 32, 4_000_000);
    });
    load(&ok);
}

#[test]
fn giant_counts_fail_fast() {
    let bytes = skipped_session_bytes();
    let start = Instant::now();
    // count = u32::MAX with every limit at its cap: rejected on the count alone.
    let bad = with(&bytes[..ENTRIES], |b| {
        put_u32(b, MAX_STORED, MAX_STORED_SKIPPED_CAP);
        put_u32(b, COUNT, u32::MAX);
    });
    assert_eq!(load_session(&bad).err(), Some(Error::InvalidEncoding));
    // The largest count the limits allow, without the entries: rejected on the length
    // before any entry is read or any room is reserved for them.
    let bad = with(&bytes[..ENTRIES], |b| {
        put_u32(b, MAX_STORED, MAX_STORED_SKIPPED_CAP);
        put_u32(b, COUNT, MAX_STORED_SKIPPED_CAP);
    });
    assert_eq!(load_session(&bad).err(), Some(Error::Truncated));
    // Larger than any stored session can be.
    let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
    assert_eq!(load_session(&huge).err(), Some(Error::TooLarge));
    // The prekey store's counts.
    let (_, store) = sample_store(14);
    let store_bytes = store.to_bytes().to_vec();
    let one_time_count_at = 18 + 2 * 102;
    for count in [u32::MAX, 16_385] {
        let bad = with(&store_bytes, |b| put_u32(b, one_time_count_at, count));
        assert_eq!(
            PreKeyStore::from_bytes(&bad).err(),
            Some(Error::InvalidEncoding)
        );
    }
    let bad = with(&store_bytes, |b| put_u32(b, one_time_count_at, 16_384));
    assert_eq!(PreKeyStore::from_bytes(&bad).err(), Some(Error::Truncated));
    let bad = with(&store_bytes, |b| put_u32(b, 14, u32::MAX));
    assert_eq!(
        PreKeyStore::from_bytes(&bad).err(),
        Some(Error::InvalidEncoding)
    );
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
    let bytes = skipped_session_bytes();
    let mut accepted = 0;
    for at in 0..bytes.len() {
        let allowed: &[Error] = match at {
            0 => &[Error::UnsupportedVersion(0)],
            1 => &[],
            ROLE => &[Error::InvalidEncoding],
            LOCAL_IDENTITY..BASE_KEY => &[Error::InvalidPublicKey],
            BASE_KEY..PENDING_FLAG => &[Error::InvalidPublicKey],
            PENDING_FLAG..MAX_SKIP => &[Error::InvalidEncoding],
            MAX_SKIP..PADDING => &[Error::InvalidLimits, Error::InvalidEncoding],
            // 0x00 and 0x01 are the two policies; anything else is not an encoding.
            PADDING => &[Error::InvalidEncoding],
            // Secrets: any value loads.
            ROOT_KEY..DHS | DHS..DHR_FLAG => &[],
            DHR_FLAG => &[Error::InvalidEncoding],
            x if x > DHR_FLAG && x < CKS_FLAG => &[Error::InvalidPublicKey],
            CKS_FLAG..NS => &[Error::InvalidEncoding],
            NS..PN => &[Error::InvalidEncoding],
            PN..COUNT => &[],
            COUNT..ENTRIES => &[
                Error::InvalidEncoding,
                Error::Truncated,
                Error::TrailingData,
            ],
            _ if (at - ENTRIES) % ENTRY < 32 => &[Error::InvalidPublicKey, Error::InvalidEncoding],
            _ if (at - ENTRIES) % ENTRY < 36 => &[Error::InvalidEncoding],
            _ => &[],
        };
        for mask in [0x01u8, 0x02, 0x40, 0x80, 0xff] {
            let changed = with(&bytes, |b| b[at] ^= mask);
            match Session::from_bytes(&changed) {
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

#[test]
fn prekey_store_corruptions_are_rejected() {
    let (_, store) = sample_store(15);
    let bytes = store.to_bytes().to_vec();
    const CURRENT: usize = 2;
    const NEXT_SIGNED: usize = 6;
    const NEXT_ONE_TIME: usize = 10;
    const SIGNED_COUNT: usize = 14;
    const SIGNED: usize = 18;
    const SPK: usize = 102;
    const ONE_TIME_COUNT: usize = SIGNED + 2 * SPK;
    const ONE_TIME: usize = ONE_TIME_COUNT + 4;
    const OPK: usize = 38;
    assert_eq!(get_u32(&bytes, CURRENT), 2);
    assert_eq!(get_u32(&bytes, NEXT_SIGNED), 3);
    assert_eq!(get_u32(&bytes, NEXT_ONE_TIME), 11);
    assert_eq!(get_u32(&bytes, SIGNED_COUNT), 2);
    assert_eq!(get_u32(&bytes, ONE_TIME_COUNT), 9);
    let load = |b: &[u8]| PreKeyStore::from_bytes(b).err();
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "no signed prekey",
            with(&bytes, |b| put_u32(b, SIGNED_COUNT, 0)),
            Error::InvalidEncoding,
        ),
        (
            "17 signed prekeys",
            with(&bytes, |b| put_u32(b, SIGNED_COUNT, 17)),
            Error::InvalidEncoding,
        ),
        (
            // The one-time count's first byte is then read as a signed prekey's version.
            "signed count one too many",
            with(&bytes, |b| put_u32(b, SIGNED_COUNT, 3)),
            Error::UnsupportedVersion(0),
        ),
        (
            // The second signed prekey's header is then read as the one-time count.
            "signed count one too few",
            with(&bytes, |b| put_u32(b, SIGNED_COUNT, 1)),
            Error::InvalidEncoding,
        ),
        (
            "one-time count + 1",
            with(&bytes, |b| put_u32(b, ONE_TIME_COUNT, 10)),
            Error::Truncated,
        ),
        (
            "one-time count - 1",
            with(&bytes, |b| put_u32(b, ONE_TIME_COUNT, 8)),
            Error::TrailingData,
        ),
        (
            "current not stored",
            with(&bytes, |b| put_u32(b, CURRENT, 7)),
            Error::InvalidEncoding,
        ),
        (
            "signed id not below next",
            with(&bytes, |b| put_u32(b, NEXT_SIGNED, 2)),
            Error::InvalidEncoding,
        ),
        (
            "one-time id not below next",
            with(&bytes, |b| put_u32(b, NEXT_ONE_TIME, 10)),
            Error::InvalidEncoding,
        ),
        (
            "signed prekeys out of order",
            with(&bytes, |b| {
                let first = b[SIGNED..SIGNED + SPK].to_vec();
                b.copy_within(SIGNED + SPK..SIGNED + 2 * SPK, SIGNED);
                b[SIGNED + SPK..SIGNED + 2 * SPK].copy_from_slice(&first);
            }),
            Error::InvalidEncoding,
        ),
        (
            "duplicate one-time prekey",
            with(&bytes, |b| {
                b.copy_within(ONE_TIME..ONE_TIME + OPK, ONE_TIME + OPK)
            }),
            Error::InvalidEncoding,
        ),
        (
            "duplicate one-time id",
            with(&bytes, |b| {
                b.copy_within(ONE_TIME + 2..ONE_TIME + 6, ONE_TIME + OPK + 2)
            }),
            Error::InvalidEncoding,
        ),
        (
            "signed prekey with a future version",
            with(&bytes, |b| b[SIGNED + SPK] = STORAGE_VERSION + 1),
            Error::UnsupportedVersion(STORAGE_VERSION + 1),
        ),
        (
            "signed prekey of v1",
            with(&bytes, |b| b[SIGNED + SPK] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "one-time prekey of v1",
            with(&bytes, |b| b[ONE_TIME + 2 * OPK] = V1),
            Error::UnsupportedVersion(V1),
        ),
        (
            "one-time prekey where a signed prekey belongs",
            with(&bytes, |b| b[SIGNED + 1] = TYPE_ONE_TIME_PREKEY),
            Error::UnexpectedType(TYPE_ONE_TIME_PREKEY),
        ),
        (
            "signed prekey type where a one-time prekey belongs",
            with(&bytes, |b| b[ONE_TIME + 4 * OPK + 1] = TYPE_SIGNED_PREKEY),
            Error::UnexpectedType(TYPE_SIGNED_PREKEY),
        ),
    ];
    for (name, bad, expected) in cases {
        assert_eq!(load(&bad), Some(expected), "{name}");
    }
}

#[test]
fn bundle_corruptions_are_rejected() {
    let (bob, store) = sample_store(16);
    let with_opk = store.bundle(&bob, Some(2)).unwrap().to_bytes();
    let without = store.bundle(&bob, None).unwrap().to_bytes();
    const IDENTITY: usize = 2;
    const SPK: usize = 38;
    const SIGNATURE: usize = 70;
    const OPK_FLAG: usize = 134;
    const OPK_KEY: usize = 139;
    for key in invalid_identity_keys() {
        let bad = with(&with_opk, |b| {
            b[IDENTITY..IDENTITY + 32].copy_from_slice(&key)
        });
        assert_eq!(PreKeyBundle::from_bytes(&bad), Err(Error::InvalidPublicKey));
    }
    for key in invalid_x25519_keys() {
        for at in [SPK, OPK_KEY] {
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
        Session::initiate(&alice, &forged, &mut rng).err(),
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
    // A signed prekey's signature is kept as stored, not checked on load.
    let spk = SignedPreKey::generate(&id, 1, &mut rng).unwrap();
    let changed = SignedPreKey::from_bytes(&with(&spk.to_bytes(), |b| b[40] ^= 1)).unwrap();
    assert_eq!(
        PreKeyBundle::new(&id, &changed, None).verify(),
        Err(Error::InvalidSignature)
    );
}

/// SPEC.md §7: "the whole input is at most `MAX_STORED_SIZE` ... or `TooLarge`".
#[test]
fn oversized_session_blob_is_too_large() {
    let bytes = skipped_session_bytes();
    let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
    assert_eq!(load_session(&huge).err(), Some(Error::TooLarge));
    // Exactly MAX_STORED_SIZE is not refused for its size.
    let max = with(&bytes, |b| b.resize(MAX_STORED_SIZE, 0));
    assert_eq!(load_session(&max).err(), Some(Error::TrailingData));
}

/// The same rule for the other stored types (SPEC.md §7 states it for every stored
/// object). Minimal repro:
/// `IdentityKeyPair::from_bytes(&[valid 34 bytes, then zeros up to MAX_STORED_SIZE + 1])`
/// returns `Err(TrailingData)`, not `Err(TooLarge)`; the same for `SignedPreKey`,
/// `OneTimePreKey` and `PreKeyStore`. Only `Session::from_bytes` (and `StorageKey::open`)
/// check the size first.
#[test]
fn oversized_stored_objects_are_too_large() {
    for (name, type_byte, bytes) in sample_blobs() {
        if type_byte == TYPE_BUNDLE || type_byte == TYPE_BUNDLE_PQ {
            continue; // a wire object (SPEC.md §5), not a stored one
        }
        let huge = with(&bytes, |b| b.resize(MAX_STORED_SIZE + 1, 0));
        assert_eq!(load_as(type_byte, &huge), Err(Error::TooLarge), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// One sealed blob of every sealable type, with its object type and plain encoding.
fn sealed_samples(key: &StorageKey, rng: &mut ChaCha20Rng) -> Vec<(String, u8, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, session) in sample_sessions() {
        let sealed = key.seal(&session, rng).unwrap();
        out.push((
            format!("session: {name}"),
            TYPE_SESSION,
            stored(&session),
            sealed,
        ));
    }
    let id = IdentityKeyPair::generate(rng).unwrap();
    let spk = SignedPreKey::generate(&id, 5, rng).unwrap();
    let opk = OneTimePreKey::generate(6, rng).unwrap();
    let (_, store) = sample_store(19);
    out.push((
        "identity".into(),
        TYPE_IDENTITY,
        id.to_bytes().to_vec(),
        key.seal(&id, rng).unwrap(),
    ));
    out.push((
        "signed prekey".into(),
        TYPE_SIGNED_PREKEY,
        spk.to_bytes().to_vec(),
        key.seal(&spk, rng).unwrap(),
    ));
    out.push((
        "one-time prekey".into(),
        TYPE_ONE_TIME_PREKEY,
        opk.to_bytes().to_vec(),
        key.seal(&opk, rng).unwrap(),
    ));
    out.push((
        "prekey store".into(),
        TYPE_PREKEY_STORE,
        store.to_bytes().to_vec(),
        key.seal(&store, rng).unwrap(),
    ));
    #[cfg(feature = "pqxdh")]
    {
        let pq = pq_samples(30);
        for (name, session) in [
            ("PQXDH initiator awaiting a reply", &pq.initiator_awaiting),
            ("PQXDH responder", &pq.responder),
        ] {
            let sealed = key.seal(session, rng).unwrap();
            out.push((
                format!("session: {name}"),
                TYPE_SESSION,
                stored(session),
                sealed,
            ));
        }
        out.push((
            "PQXDH prekey store".into(),
            TYPE_PREKEY_STORE,
            pq.store.to_bytes().to_vec(),
            key.seal(&pq.store, rng).unwrap(),
        ));
        out.push((
            "PQ prekey".into(),
            TYPE_PQ_PREKEY,
            pq.one_time.to_bytes().to_vec(),
            key.seal(&pq.one_time, rng).unwrap(),
        ));
    }
    out
}

#[test]
fn seal_open_round_trips_every_type() {
    let mut rng = rng(20);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, plain, sealed) in sealed_samples(&key, &mut rng) {
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
        assert_eq!(open_as(&key, type_byte, &sealed).unwrap(), plain, "{name}");
    }
    // A fresh nonce per seal; the same RNG state gives the same blob.
    let (_, a, _, _) = established_pair(21);
    let mut r1 = rng.clone();
    let s1 = key.seal(&a, &mut rng).unwrap();
    let s2 = key.seal(&a, &mut rng).unwrap();
    assert_ne!(s1[3..15], s2[3..15]);
    assert_eq!(key.seal(&a, &mut r1).unwrap(), s1);
    // A session opened from a sealed blob goes on with the conversation.
    let (_, mut a, mut b, mut rng) = established_pair(22);
    let sealed_b = key.seal(&b, &mut rng).unwrap();
    let m = a.encrypt(b"after sealing", &mut rng).unwrap();
    let mut opened = key.open::<Session>(&sealed_b).unwrap();
    assert_eq!(
        assert_same_decryption(&mut b, &mut opened, &m).unwrap(),
        b"after sealing"
    );
}

#[test]
fn every_bit_flip_of_a_sealed_blob_is_rejected() {
    let mut rng = rng(23);
    let key = StorageKey::generate(&mut rng).unwrap();
    for (name, type_byte, _, sealed) in sealed_samples(&key, &mut rng) {
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
                    open_as(&key, type_byte, &flipped),
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
    for (name, type_byte, _, sealed) in sealed_samples(&key, &mut rng) {
        for len in 0..sealed.len() {
            let expected = if len < SEALED_HEADER + TAG {
                Error::Truncated
            } else {
                Error::DecryptionFailed
            };
            assert_eq!(
                open_as(&key, type_byte, &sealed[..len]),
                Err(expected),
                "{name}: {len} bytes"
            );
        }
        for extra in [&[0u8][..], &[0; 16]] {
            assert_eq!(
                open_as(&key, type_byte, &[&sealed[..], extra].concat()),
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
    for (name, type_byte, plain, sealed) in sealed_samples(&key, &mut rng) {
        assert_eq!(
            open_as(&other, type_byte, &sealed),
            Err(Error::DecryptionFailed),
            "{name}"
        );
        for &as_type in SEALABLE_TYPES.iter().filter(|t| **t != type_byte) {
            // Opened as another type: refused on the object type byte.
            assert_eq!(
                open_as(&key, as_type, &sealed),
                Err(Error::UnexpectedType(type_byte)),
                "{name} as {as_type:#x}"
            );
            // The attacker rewrites the object type byte: the associated data no longer
            // matches, so it does not authenticate.
            let rewritten = with(&sealed, |b| b[2] = as_type);
            assert_eq!(
                open_as(&key, as_type, &rewritten),
                Err(Error::DecryptionFailed),
                "{name} rewritten as {as_type:#x}"
            );
        }
        // A plain encoding is not a sealed blob, and a sealed blob is not a plain one.
        assert_eq!(
            open_as(&key, type_byte, &plain),
            Err(Error::UnexpectedType(plain[1])),
            "{name}"
        );
        assert_eq!(
            load_as(type_byte, &sealed),
            Err(Error::UnexpectedType(TYPE_SEALED)),
            "{name}"
        );
    }
    // The named case: an identity opened as a session.
    let id = IdentityKeyPair::generate(&mut rng).unwrap();
    let sealed = key.seal(&id, &mut rng).unwrap();
    assert_eq!(
        key.open::<Session>(&sealed).err(),
        Some(Error::UnexpectedType(TYPE_IDENTITY))
    );
    let rewritten = with(&sealed, |b| b[2] = TYPE_SESSION);
    assert_eq!(
        key.open::<Session>(&rewritten).err(),
        Some(Error::DecryptionFailed)
    );
    // Oversized input is refused before anything else.
    let huge = with(&sealed, |b| {
        b.resize(SEALED_HEADER + MAX_STORED_SIZE + TAG + 1, 0)
    });
    assert_eq!(key.open::<Session>(&huge).err(), Some(Error::TooLarge));
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
    // (1) The next message of the current chain (a1-3).
    let (next, plaintext) = &to_b[6];
    let before = stored(&b);
    assert_eq!(&b.decrypt(next).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(
        &load(&before).decrypt(next).unwrap(),
        plaintext,
        "old state decrypts again"
    );
    assert_eq!(load(&after).decrypt(next), Err(Error::DuplicateOrExpired));
    // (2) A message decrypted with a stored skipped key of the current chain (a1-0).
    let (skipped_current, plaintext) = &to_b[4];
    let before = stored(&b);
    assert_eq!(&b.decrypt(skipped_current).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(get_u32(&after, COUNT) + 1, get_u32(&before, COUNT));
    assert_eq!(&load(&before).decrypt(skipped_current).unwrap(), plaintext);
    assert_eq!(
        load(&after).decrypt(skipped_current),
        Err(Error::DuplicateOrExpired)
    );
    // (3) A message of an older chain: with its key gone, it looks like a new ratchet key
    // that does not authenticate, so the error is DecryptionFailed, not DuplicateOrExpired.
    let (old_chain, plaintext) = &to_b[0]; // a0-0, an initial message
    let before = stored(&b);
    assert_eq!(&b.decrypt(old_chain).unwrap(), plaintext);
    let after = stored(&b);
    assert_eq!(&load(&before).decrypt(old_chain).unwrap(), plaintext);
    let mut reloaded = load(&after);
    assert_eq!(reloaded.decrypt(old_chain), Err(Error::DecryptionFailed));
    // The failed attempt changed nothing.
    assert_eq!(stored(&reloaded), after);
    // (4) The first message of a new chain from Alice.
    let m = a.encrypt(b"new chain", &mut rng).unwrap();
    let before = stored(&b);
    assert_eq!(b.decrypt(&m).unwrap(), b"new chain");
    let after = stored(&b);
    assert_ne!(before[DHR_FLAG..CKS_FLAG], after[DHR_FLAG..CKS_FLAG]);
    assert_eq!(load(&before).decrypt(&m).unwrap(), b"new chain");
    assert_eq!(load(&after).decrypt(&m), Err(Error::DuplicateOrExpired));
}

fn app_loop(
    seed: u64,
    save: impl Fn(&Session, &mut ChaCha20Rng) -> Vec<u8>,
    open: impl Fn(&[u8]) -> Session,
) {
    let (_, a, b, mut rng) = accepted_pair(seed);
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
            let (from_store, to_store, count) = if a_to_b {
                (&mut stored_a, &mut stored_b, &mut sent[0])
            } else {
                (&mut stored_b, &mut stored_a, &mut sent[1])
            };
            if *count >= 200 {
                break;
            }
            let plaintext = format!("{} #{count}", if a_to_b { "a->b" } else { "b->a" });
            let mut sender = open(from_store);
            let message = sender.encrypt(plaintext.as_bytes(), &mut rng).unwrap();
            *from_store = save(&sender, &mut rng);
            let mut receiver = open(to_store);
            assert_eq!(receiver.decrypt(&message).unwrap(), plaintext.as_bytes());
            *to_store = save(&receiver, &mut rng);
            // The stored receiver rejects the message it has already processed.
            assert!(open(to_store).decrypt(&message).is_err());
            *count += 1;
        }
        step += 1;
    }
    let a = open(&stored_a);
    let b = open(&stored_b);
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
        |s, rng| key.seal(s, rng).unwrap(),
        |blob| key.open::<Session>(blob).unwrap(),
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
    let sealed_at_cap = key.seal(&b, &mut rng).unwrap().len();
    let loaded = load(&stored(&b));
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
        assert_eq!(awaiting, SESSION_FIXED + PQ_PENDING);
        assert_eq!(responder, SESSION_FIXED);
        assert_eq!(established, SESSION_FIXED);
    }

    assert_eq!(fresh_initiator, SESSION_FIXED);
    assert_eq!(fresh_responder, SESSION_FIXED);
    assert_eq!(after_1000_a, SESSION_FIXED);
    assert_eq!(after_1000_b, SESSION_FIXED);
    assert_eq!(per_key, ENTRY);
    assert_eq!(with_10, SESSION_FIXED + 10 * ENTRY);
    assert_eq!(at_cap, SESSION_FIXED + 2_000 * ENTRY);
    assert_eq!(sealed_at_cap, at_cap + SEALED_HEADER + TAG);
    // At least the largest session of this layout: a PQXDH initiator awaiting its reply with
    // 100,000 skipped keys (session kinds with more state may raise it further).
    const { assert!(MAX_STORED_SIZE >= SESSION_FIXED + PQ_PENDING + 100_000 * ENTRY) };
}
