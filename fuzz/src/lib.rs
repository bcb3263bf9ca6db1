//! The logic of the `doubleratchet` fuzz targets, one `pub fn NAME(data: &[u8])` per
//! target, and the generator of their seed corpora ([`seeds`]).
//!
//! This file is compiled twice: as the `doubleratchet_fuzz` library that the cargo-fuzz
//! binaries in `fuzz/fuzz_targets/` call, and as a module of the main crate's
//! `tests/fuzz_corpus.rs`, which replays the corpora through the same functions. It must
//! therefore not use `libfuzzer_sys`, and it depends only on crates both builds have:
//! `doubleratchet`, `arbitrary` and `rand_chacha`.
//!
//! A target panics exactly when it finds a bug: a panic inside the crate, or a broken
//! assertion about the protocol. Every assertion here is a documented promise of the
//! crate's API or a property of the cryptography (an AEAD forgery, a signature forgery or
//! a hash collision is taken as impossible).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use doubleratchet::{
    Accepted, Error, IdentityKey, IdentityKeyPair, Limits, Message, OneTimePreKey, Padding,
    PreKeyBundle, PreKeyStore, Role, SafetyNumber, ScanResult, Session, SessionOptions,
    SignedPreKey, StorageKey, StoreNotice, BUNDLE_LENGTH, BUNDLE_VERSION, MAX_PLAINTEXT_SIZE,
    MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, MAX_SEAL_CONTEXT_LENGTH, MAX_SIGNED_PREKEYS,
    MAX_SKIP_CAP, PADME_MINIMUM, SAFETY_NUMBER_LENGTH, SAFETY_NUMBER_VERSION, STORAGE_VERSION,
    WIRE_VERSION,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind, KEM_CIPHERTEXT_LENGTH, PQ_BUNDLE_LENGTH};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A fuzz target's logic: panics exactly when it finds a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary in `fuzz/fuzz_targets/` and of its corpus
/// directory `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_message", decode_message),
    ("session", session),
    ("respond", respond),
    ("load", load),
    ("bundle", bundle),
    ("safety_number", safety_number),
];

/// The most operations the `session` target runs for one input.
const MAX_OPS: usize = 64;
/// Length of an AES-256-GCM-SIV tag.
const TAG: usize = 16;
/// The end marker after every plaintext, before its padding (SPEC.md §4.9).
const END_MARKER_LEN: usize = 1;
/// Message layout (SPEC.md §5): `version | type | [initial fields] | header | ciphertext`.
/// An initial message's X3DH fields: `IK_A`, `EK_A`, SPK id, OPK flag and id (every prekey
/// id is 8 bytes, big-endian: profile v2 part 2).
const X3DH_FIELDS: usize = 32 + 32 + 8 + 1 + 8;
/// Where an initial message's X3DH fields sit: `IK_A` 2..34, `EK_A` 34..66, the signed
/// prekey id 66..74, the one-time prekey flag 74 and id 75..83.
const INITIAL_SPK_ID: core::ops::Range<usize> = 66..74;
const INITIAL_OPK_FLAG: usize = 74;
const INITIAL_OPK_ID: core::ops::Range<usize> = 75..83;
/// Where the ratchet header (or PQXDH's fields) of an initial message starts.
const INITIAL_FIELDS_END: usize = 2 + X3DH_FIELDS;
/// PQXDH's additional fields: the post-quantum prekey id and the ML-KEM-768 ciphertext.
const PQ_FIELDS: usize = 8 + 1088;
/// A ratchet header in the clear: `DHs | PN | N`.
const PLAIN_HEADER: usize = 32 + 4 + 4;
/// An encrypted ratchet header: nonce, the sealed plain header, tag.
const SEALED_HEADER: usize = 12 + PLAIN_HEADER + TAG;
/// Framing lengths of the two classical kinds, for the `respond` target's field table.
const INITIAL_PREFIX: usize = 2 + X3DH_FIELDS + PLAIN_HEADER;
/// Where a PQXDH initial message's ratchet header starts (SPEC.md §5.3): after the X3DH
/// fields, the post-quantum prekey id (bytes 83..91) and the KEM ciphertext (91..1179).
const PQ_HEADER_START: usize = 2 + X3DH_FIELDS + PQ_FIELDS;
const PQ_ID: core::ops::Range<usize> = 83..91;
const KEM_CT: core::ops::Range<usize> = 91..PQ_HEADER_START;
/// Type bytes of the message kinds.
const TYPE_NORMAL: u8 = 0x01;
const TYPE_INITIAL: u8 = 0x02;
const TYPE_INITIAL_PQ: u8 = 0x03;
const TYPE_NORMAL_HE: u8 = 0x04;
const TYPE_INITIAL_HE: u8 = 0x05;
const TYPE_INITIAL_PQ_HE: u8 = 0x06;
/// Byte ranges of a prekey bundle's fields (SPEC.md §5.4, 8-byte ids).
const BUNDLE_SPK_ID: core::ops::Range<usize> = 34..42;
const BUNDLE_SPK: core::ops::Range<usize> = 42..74;
const BUNDLE_OPK_FLAG: usize = 138;
const BUNDLE_OPK_ID: core::ops::Range<usize> = 139..147;
const BUNDLE_OPK: core::ops::Range<usize> = 147..179;
/// A PQXDH bundle's (type `0x11`) post-quantum fields: id, ML-KEM-768 key, signature.
#[cfg(feature = "pqxdh")]
const BUNDLE_PQ_ID: core::ops::Range<usize> = 179..187;
#[cfg(feature = "pqxdh")]
const BUNDLE_PQ_KEY: core::ops::Range<usize> = 187..1371;
#[cfg(feature = "pqxdh")]
const BUNDLE_PQ_SIGNATURE: core::ops::Range<usize> = 1371..1435;
const TYPE_BUNDLE: u8 = 0x10;
const TYPE_BUNDLE_PQ: u8 = 0x11;
/// Stored session types (SPEC.md §7.1) and the post-quantum flag of type `0x28`.
const TYPE_SESSION: u8 = 0x20;
const TYPE_SESSION_PQ: u8 = 0x25;
const TYPE_SESSION_HE: u8 = 0x28;
/// A stored session's padding byte (SPEC.md §7.1): after version, type, role, the two
/// identities and `EK_A`, the pending flag and prekey ids and the limits. Type `0x28` has a
/// flags byte after the role; a PQXDH session awaiting its reply stores the post-quantum
/// prekey id and KEM ciphertext before the limits.
const SESSION_PADDING: usize = 3 + 3 * 32 + (1 + 8 + 1 + 8) + 8;
const SESSION_PENDING_FLAG: usize = 3 + 3 * 32;
/// The safety number's byte form type (SPEC.md §9.1).
const TYPE_SAFETY_NUMBER: u8 = 0x40;
/// The stored prekey store (type `0x24`, SPEC.md §7.5): header `version | type | replay
/// capacity (u32) | next sequence (u64) | current id (u64) | s (u32)`, then the signed
/// prekeys with their records; a stored signed prekey (`0x22`), one-time prekey (`0x23`)
/// and post-quantum prekey (`0x26`) are `version | type | id (8) | ...`.
const STORE_SIGNED: usize = 2 + 4 + 8 + 8 + 4;
const STORED_SPK: usize = 2 + 8 + 32 + 64;
const STORED_OPK: usize = 2 + 8 + 32;
const STORED_PQ_PREKEY: usize = 2 + 8 + 1 + 64 + 64;
/// The application contexts the `load` target opens sealed input with (its seeds are
/// sealed with one or the other).
const LOAD_CONTEXTS: [&[u8]; 2] = [b"fuzz: load", b""];
/// The context each side's session is sealed with in the `session` target's `Reload`.
const SESSION_CONTEXTS: [&[u8]; 2] = [b"fuzz: alice's session", b"fuzz: bob's session"];

// ---------------------------------------------------------------------------------------
// Fixture: fixed identities, prekeys and genuine messages, made once per process.
// ---------------------------------------------------------------------------------------

/// A genuine initial message from Alice to Bob, with what it encrypts and Alice's session
/// after sending it (so a reply to it can be checked).
struct Genuine {
    header_encryption: bool,
    /// A PQXDH initial message (type `0x03` or `0x06`).
    post_quantum: bool,
    /// Alice's padding policy when she sent it.
    padding: Padding,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    alice_state: Vec<u8>,
}

/// Everything the targets share; all derived from fixed seeds, so every run and every
/// build sees the same keys.
struct Fixture {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    /// Alice's own signed prekey (only for a bundle of Alice's own, which she must refuse).
    alice_spk: SignedPreKey,
    carol: IdentityKeyPair,
    carol_spk: SignedPreKey,
    carol_opk: OneTimePreKey,
    /// Bob's prekeys: a current and a standby signed prekey and three one-time prekeys;
    /// with PQXDH also two one-time post-quantum prekeys and a last-resort one. Every id is
    /// drawn by the store (random, never 0).
    store: PreKeyStore,
    /// Bob's one-time prekey ids in the order generated (sequence numbers 0, 1, 2); his
    /// published bundle names the first.
    opk_ids: Vec<u64>,
    /// `store.to_bytes()`: every check that changes a store loads its own copy from this.
    store_bytes: Vec<u8>,
    /// Bob's store before it had post-quantum prekeys (type `0x24`), for the `load` seeds.
    classical_store_bytes: Vec<u8>,
    /// Bob's published bundle, naming his first one-time prekey.
    bundle: PreKeyBundle,
    /// Bob's last-resort bundle, without a one-time prekey.
    bundle_no_opk: PreKeyBundle,
    storage_key: StorageKey,
    /// Genuine initial messages: four classical sessions of Alice's (with and without a
    /// one-time prekey, then header-encrypted, then without padding); with PQXDH then four
    /// PQXDH ones (one-time and last-resort post-quantum prekey, each with the header in the
    /// clear and encrypted).
    initial: Vec<Genuine>,
    /// Short conversations (classical, then header-encrypted, then both sides without
    /// padding), for the `load` target: messages and their plaintexts.
    probes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Session states from those conversations, for the `load` seeds: mode prefix, name,
    /// encoding.
    states: Vec<(&'static str, &'static str, Vec<u8>)>,
    /// A fresh session of Alice's with Bob's bundle, stored: the `session` target's start
    /// (loading it is cheaper than running X3DH for every input); classical, and
    /// header-encrypted.
    fresh_alice: Vec<u8>,
    fresh_alice_he: Vec<u8>,
    /// The safety number of Alice and Bob (the `safety_number` target's local number).
    safety_number: SafetyNumber,
    #[cfg(feature = "pqxdh")]
    pq: PqFixture,
}

/// The PQXDH part of the fixture.
#[cfg(feature = "pqxdh")]
struct PqFixture {
    /// Bob's one-time post-quantum prekey ids in the order generated, and his last-resort
    /// one's.
    one_time_ids: Vec<u64>,
    last_resort_id: u64,
    /// Bob's PQXDH bundle naming his first one-time prekey and his first one-time
    /// post-quantum prekey.
    bundle: PreKeyBundle,
    /// Bob's PQXDH last-resort bundle: no one-time prekey, the last-resort PQ prekey.
    bundle_last_resort: PreKeyBundle,
    /// Carol's post-quantum prekey and PQXDH bundle (a third party's).
    carol_pq: PqPreKey,
    carol_bundle: PreKeyBundle,
    /// Bob's store after accepting two last-resort sessions: it holds replay records.
    store_with_records: Vec<u8>,
    /// Alice's fresh PQXDH sessions with `bundle`, stored: classical header, encrypted.
    fresh_alice: Vec<u8>,
    fresh_alice_he: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0001);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let alice_spk = SignedPreKey::generate(&alice, 1, &mut rng).unwrap();
    let carol_spk = SignedPreKey::generate(&carol, 5, &mut rng).unwrap();
    let carol_opk = OneTimePreKey::generate(9, &mut rng).unwrap();
    let mut store = PreKeyStore::new(&bob, &mut rng).unwrap();
    let opk_ids: Vec<u64> = store
        .generate_one_time_prekeys(3, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    let ordered: Vec<u64> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(ordered, opk_ids, "oldest first");
    assert!(opk_ids.iter().all(|id| *id != 0));
    let bundle = store.bundle(&bob, Some(opk_ids[0])).unwrap();
    let bundle_no_opk = store.bundle(&bob, None).unwrap();
    // The byte ranges this file reads a bundle's fields from.
    let encoded = bundle.to_bytes();
    let spk = store.current_signed_prekey();
    assert_eq!(encoded.len(), BUNDLE_LENGTH);
    assert_eq!(encoded[BUNDLE_SPK], spk.public_key());
    assert_eq!(encoded[BUNDLE_SPK_ID], spk.id().to_be_bytes());
    assert_eq!(encoded[BUNDLE_OPK_FLAG], 1);
    assert_eq!(encoded[BUNDLE_OPK_ID], opk_ids[0].to_be_bytes());
    let opk = store.one_time_prekey(opk_ids[0]).unwrap();
    assert_eq!(encoded[BUNDLE_OPK], opk.public_key());
    let classical_store_bytes = store.to_bytes().to_vec();
    assert_eq!(classical_store_bytes[1], 0x24);
    let view = store_view(&classical_store_bytes);
    assert_eq!(view.current, spk.id());
    assert!(view.standby.is_some());

    let mut storage_key_bytes = [0u8; 32];
    storage_key_bytes
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = 0xA0 ^ i as u8);
    let storage_key = StorageKey::from_bytes(storage_key_bytes);

    let mut initial = Vec::new();
    for (b, header_encryption, padding, plaintexts) in [
        (
            &bundle,
            false,
            Padding::Padme,
            &[&b"first"[..], b"", b"a somewhat longer third message"][..],
        ),
        (
            &bundle_no_opk,
            false,
            Padding::Padme,
            &[&b"last resort"[..]][..],
        ),
        (
            &bundle,
            true,
            Padding::Padme,
            &[&b"sealed header"[..], b"again"][..],
        ),
        (&bundle, false, Padding::None, &[&b"unpadded"[..]][..]),
    ] {
        let options = if header_encryption {
            he_options()
        } else {
            SessionOptions::new()
        };
        let mut a = Session::initiate_with(&alice, b, &options.padding(padding), &mut rng).unwrap();
        assert_eq!(a.padding(), padding);
        for p in plaintexts {
            let wire = a.encrypt(p, &mut rng).unwrap();
            initial.push(Genuine {
                header_encryption,
                post_quantum: false,
                padding,
                wire,
                plaintext: p.to_vec(),
                alice_state: a.to_bytes().to_vec(),
            });
        }
    }

    // `initial[3]` is the classical message without a one-time prekey (the `load` target's
    // probe for replay records).
    assert_eq!(one_time_prekey_of(&initial[3].wire), None);
    assert!(!initial[3].post_quantum);

    // A conversation in each mode: Alice's initial message, Bob's two replies (Alice gets
    // the second), Alice's answer on a new chain. In the last, neither side pads.
    let mut states = Vec::new();
    let mut probes = Vec::new();
    for (mode, options) in [
        ("", SessionOptions::new()),
        ("he-", he_options()),
        ("nopad-", SessionOptions::new().padding(Padding::None)),
    ] {
        let mut a = Session::initiate_with(&alice, &bundle, &options, &mut rng).unwrap();
        let m1 = a.encrypt(b"hello bob", &mut rng).unwrap();
        states.push((mode, "alice-awaiting-reply", a.to_bytes().to_vec()));
        let accepted = Session::respond(
            &bob,
            |id| store.signed_prekey(id),
            |id| store.one_time_prekey(id),
            &m1,
        )
        .unwrap();
        let mut b = accepted.session;
        // `Session::respond` takes no options: Bob's policy is the default until set.
        assert_eq!(b.padding(), Padding::Padme);
        b.set_padding(a.padding());
        let r1 = b.encrypt(b"hello alice", &mut rng).unwrap();
        let r2 = b.encrypt(b"and again", &mut rng).unwrap();
        states.push((mode, "bob-after-reply", b.to_bytes().to_vec()));
        assert_eq!(a.decrypt(&r2).unwrap(), b"and again");
        let a1 = a.encrypt(b"new chain", &mut rng).unwrap();
        states.push((mode, "alice-one-skipped", a.to_bytes().to_vec()));
        assert_eq!(b.decrypt(&a1).unwrap(), b"new chain");
        states.push((mode, "bob-after-ratchet", b.to_bytes().to_vec()));
        probes.push((m1, b"hello bob".to_vec()));
        probes.push((r1, b"hello alice".to_vec()));
        probes.push((a1, b"new chain".to_vec()));
    }
    let fresh_alice = Session::initiate(&alice, &bundle, &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    let fresh_alice_he = Session::initiate_with(&alice, &bundle, &he_options(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();

    // Everything post-quantum comes from its own RNG, so that the classical fixture is the
    // same with and without the `pqxdh` feature.
    #[cfg(feature = "pqxdh")]
    let pq = make_pq_fixture(
        &alice,
        &bob,
        &carol,
        &carol_spk,
        &mut store,
        &mut initial,
        &mut states,
        &mut probes,
    );
    let store_bytes = store.to_bytes().to_vec();
    let safety_number = SafetyNumber::new(alice.public_key(), bob.public_key());

    Fixture {
        alice,
        bob,
        alice_spk,
        carol,
        carol_spk,
        carol_opk,
        store,
        opk_ids,
        store_bytes,
        classical_store_bytes,
        bundle,
        bundle_no_opk,
        storage_key,
        initial,
        probes,
        states,
        fresh_alice,
        fresh_alice_he,
        safety_number,
        #[cfg(feature = "pqxdh")]
        pq,
    }
}

/// Adds Bob's post-quantum prekeys to his store, PQXDH genuine initial messages, and PQXDH
/// conversations (states and probes), all from a separate RNG.
#[cfg(feature = "pqxdh")]
#[allow(clippy::too_many_arguments)]
fn make_pq_fixture(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
    carol: &IdentityKeyPair,
    carol_spk: &SignedPreKey,
    store: &mut PreKeyStore,
    initial: &mut Vec<Genuine>,
    states: &mut Vec<(&'static str, &'static str, Vec<u8>)>,
    probes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> PqFixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0002);
    let one_time_ids: Vec<u64> = store
        .generate_pq_one_time_prekeys(bob, 2, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    let ordered: Vec<u64> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
    assert_eq!(ordered, one_time_ids, "oldest first");
    let last_resort_id = store.rotate_pq_last_resort_prekey(bob, &mut rng).unwrap();
    assert!(!one_time_ids.contains(&last_resort_id));
    let opk_ids: Vec<u64> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    let (opk_id, pq_id) = (opk_ids[0], one_time_ids[0]);
    let bundle = store.pq_bundle(bob, Some(opk_id), Some(pq_id)).unwrap();
    let bundle_last_resort = store.pq_bundle(bob, None, None).unwrap();
    let bundle_he = store
        .pq_bundle(bob, Some(opk_ids[1]), Some(one_time_ids[1]))
        .unwrap();
    // The byte ranges this file reads a PQXDH bundle's and message's fields from.
    assert_eq!(PQ_FIELDS, 8 + KEM_CIPHERTEXT_LENGTH);
    let encoded = bundle.to_bytes();
    assert_eq!(encoded.len(), PQ_BUNDLE_LENGTH);
    assert_eq!(encoded[1], TYPE_BUNDLE_PQ);
    assert_eq!(encoded[BUNDLE_PQ_ID], pq_id.to_be_bytes());
    let key = store.pq_prekey(pq_id).unwrap();
    assert_eq!(encoded[BUNDLE_PQ_KEY], key.public_key()[..]);
    assert_eq!(encoded[BUNDLE_PQ_SIGNATURE], key.signature());
    assert_eq!(
        bundle_last_resort.post_quantum_prekey_id(),
        Some(last_resort_id)
    );

    for (b, header_encryption, plaintexts) in [
        (&bundle, false, &[&b"pq first"[..], b"pq second"][..]),
        (&bundle_last_resort, false, &[&b"pq last resort"[..]][..]),
        (&bundle_he, true, &[&b"pq sealed"[..]][..]),
        (
            &bundle_last_resort,
            true,
            &[&b"pq sealed last resort"[..]][..],
        ),
    ] {
        let options = if header_encryption {
            he_options()
        } else {
            SessionOptions::new()
        };
        let mut a = Session::initiate_with(alice, b, &options, &mut rng).unwrap();
        assert!(a.is_post_quantum());
        for p in plaintexts {
            let wire = a.encrypt(p, &mut rng).unwrap();
            initial.push(Genuine {
                header_encryption,
                post_quantum: true,
                padding: Padding::Padme,
                wire,
                plaintext: p.to_vec(),
                alice_state: a.to_bytes().to_vec(),
            });
        }
    }

    // A last-resort conversation in each header mode, accepted by one copy of Bob's store,
    // which then holds two replay records.
    let mut bob_store = PreKeyStore::from_bytes(&store.to_bytes()).unwrap();
    for (mode, options) in [("pq-", SessionOptions::new()), ("he-pq-", he_options())] {
        let mut a = Session::initiate_with(alice, &bundle_last_resort, &options, &mut rng).unwrap();
        let m1 = a.encrypt(b"hello pq bob", &mut rng).unwrap();
        states.push((mode, "alice-awaiting-reply", a.to_bytes().to_vec()));
        let accepted = bob_store.accept(bob, &m1).unwrap();
        assert_eq!(accepted.used_post_quantum_prekey, Some(last_resort_id));
        assert_eq!(accepted.notice, None);
        let mut b = accepted.session;
        let r1 = b.encrypt(b"hello pq alice", &mut rng).unwrap();
        let r2 = b.encrypt(b"pq again", &mut rng).unwrap();
        states.push((mode, "bob-after-reply", b.to_bytes().to_vec()));
        assert_eq!(a.decrypt(&r2).unwrap(), b"pq again");
        let a1 = a.encrypt(b"pq new chain", &mut rng).unwrap();
        states.push((mode, "alice-one-skipped", a.to_bytes().to_vec()));
        assert_eq!(b.decrypt(&a1).unwrap(), b"pq new chain");
        states.push((mode, "bob-after-ratchet", b.to_bytes().to_vec()));
        probes.push((m1, b"hello pq bob".to_vec()));
        probes.push((r1, b"hello pq alice".to_vec()));
        probes.push((a1, b"pq new chain".to_vec()));
    }
    assert_eq!(bob_store.replay_records(), 2);
    let store_with_records = bob_store.to_bytes().to_vec();

    let carol_pq = PqPreKey::generate(carol, 4, PqPreKeyKind::OneTime, &mut rng).unwrap();
    let carol_bundle =
        PreKeyBundle::new(carol, carol_spk, None).with_post_quantum_prekey(&carol_pq);
    let fresh_alice = Session::initiate(alice, &bundle, &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    let fresh_alice_he = Session::initiate_with(alice, &bundle, &he_options(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    PqFixture {
        one_time_ids,
        last_resort_id,
        bundle,
        bundle_last_resort,
        carol_pq,
        carol_bundle,
        store_with_records,
        fresh_alice,
        fresh_alice_he,
    }
}

/// A copy of Bob's prekey store, to change.
fn bob_store() -> PreKeyStore {
    PreKeyStore::from_bytes(&fixture().store_bytes).unwrap()
}

thread_local! {
    /// A copy of Bob's store in its fixture state, kept between [`with_bob_store`] calls:
    /// loading one derives every post-quantum key pair from its seed, which dominates the
    /// cost of a `respond` input.
    static BOB_STORE: RefCell<Option<PreKeyStore>> = const { RefCell::new(None) };
}

/// Runs `f` on a copy of Bob's store in its fixture state. The copy is kept for the next
/// call only if `f` returns and the store still encodes exactly as the fixture's (every
/// refusal must leave it so), so a call never sees what another changed.
fn with_bob_store<T>(f: impl FnOnce(&mut PreKeyStore) -> T) -> T {
    let mut store = BOB_STORE
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(bob_store);
    let out = f(&mut store);
    if *store.to_bytes() == *fixture().store_bytes {
        BOB_STORE.with(|cell| *cell.borrow_mut() = Some(store));
    }
    out
}

/// Bob's signed prekey lookup.
fn bob_spk(id: u64) -> Option<&'static SignedPreKey> {
    fixture().store.signed_prekey(id)
}

/// Bob's one-time prekey lookup.
fn bob_opk(id: u64) -> Option<&'static OneTimePreKey> {
    fixture().store.one_time_prekey(id)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The initiator's options for a header-encrypted session.
fn he_options() -> SessionOptions<'static> {
    SessionOptions::new().header_encryption()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The length of a `len`-byte plaintext encoded under `padding` (SPEC.md §4.9): the
/// plaintext and the end marker (`L = len + 1`); with Padmé, zero bytes up to
/// `padme(max(L, 64))`, at most `MAX_ENCODED_PLAINTEXT = MAX_PLAINTEXT_SIZE + 1`.
fn encoded_length(padding: Padding, len: usize) -> usize {
    let l = len + END_MARKER_LEN;
    match padding {
        Padding::None => l,
        Padding::Padme => padme(l.max(PADME_MINIMUM)).min(MAX_PLAINTEXT_SIZE + END_MARKER_LEN),
        other => panic!("no encoding known for {other:?}"),
    }
}

/// Padmé (SPEC.md §4.9), `l >= 2`: `E = floor(log2 l)`, `S = floor(log2 E) + 1`; `l`
/// rounded up to a multiple of `2^(E - S)`.
fn padme(l: usize) -> usize {
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let mask = (1usize << (e - s)) - 1;
    (l + mask) & !mask
}

/// The stored byte of a padding policy (SPEC.md §7.1).
fn padding_byte(padding: Padding) -> u8 {
    match padding {
        Padding::None => 0x00,
        Padding::Padme => 0x01,
        other => panic!("no stored byte known for {other:?}"),
    }
}

/// The other policy.
fn other_padding(padding: Padding) -> Padding {
    match padding {
        Padding::None => Padding::Padme,
        _ => Padding::None,
    }
}

/// Where a loaded session's encoding keeps its padding byte.
fn session_padding_offset(encoding: &[u8]) -> usize {
    let (flags, post_quantum) = match encoding[1] {
        TYPE_SESSION => (0, false),
        TYPE_SESSION_PQ => (0, true),
        TYPE_SESSION_HE => (1, encoding[3] == 0x03),
        t => panic!("not a stored session: type {t:#04x}"),
    };
    let awaiting = encoding[SESSION_PENDING_FLAG + flags] == 1;
    let pending_pq = if post_quantum && awaiting {
        PQ_FIELDS
    } else {
        0
    };
    SESSION_PADDING + flags + pending_pq
}

/// Loads `bytes` as a session and checks it re-encodes to exactly `bytes`.
fn reload_session(bytes: &[u8]) -> Session {
    let s = Session::from_bytes(bytes)
        .unwrap_or_else(|e| panic!("a session's own encoding does not load: {e:?}"));
    assert_eq!(*s.to_bytes(), bytes, "session re-encodes differently");
    s
}

/// Decrypts `message`; on error, checks the session is unchanged.
fn decrypt_checked(s: &mut Session, message: &[u8]) -> Result<Vec<u8>, Error> {
    let before = s.to_bytes();
    let result = s.decrypt(message);
    if let Err(e) = &result {
        assert_eq!(
            *s.to_bytes(),
            *before,
            "a rejected message ({e:?}) changed the session: {}",
            hex(message)
        );
    }
    result
}

// ---------------------------------------------------------------------------------------
// decode_message
// ---------------------------------------------------------------------------------------

/// `Message::parse` and `PreKeyBundle::from_bytes`: whatever decodes re-encodes to exactly
/// the input, its accessors agree with the bytes, and failures are the documented errors.
pub fn decode_message(data: &[u8]) {
    match Message::parse(data) {
        Ok(m) => check_message_layout(&m, data),
        Err(e) => assert!(
            matches!(
                e,
                Error::TooLarge
                    | Error::Truncated
                    | Error::UnsupportedVersion(_)
                    | Error::UnexpectedType(_)
                    | Error::InvalidEncoding
                    | Error::InvalidPublicKey
            ),
            "undocumented parse error {e:?}"
        ),
    }
    check_bundle_encoding(data);
}

/// A parsed message against its bytes (SPEC.md §5): the type byte names the kind
/// (normal or initial, classical or PQXDH, header in the clear or encrypted), every
/// field sits where the layout puts it, and the encoding is exactly the input.
fn check_message_layout(m: &Message<'_>, data: &[u8]) {
    assert_eq!(m.to_bytes(), data, "message re-encodes differently");
    assert_eq!(Message::parse(data).as_ref(), Ok(m));
    assert_eq!(data[0], WIRE_VERSION);
    let he = m.is_header_encrypted();
    let (kind, fields_len) = match m {
        Message::Normal(_) => (if he { TYPE_NORMAL_HE } else { TYPE_NORMAL }, 0),
        Message::Initial(i) => {
            assert_eq!(i.is_header_encrypted(), he);
            assert_eq!(i.identity_key().as_bytes(), &data[2..34]);
            assert_eq!(i.base_key(), &data[34..66]);
            assert_eq!(i.signed_prekey_id().to_be_bytes(), data[INITIAL_SPK_ID]);
            match i.one_time_prekey_id() {
                Some(id) => {
                    assert_eq!(data[INITIAL_OPK_FLAG], 1);
                    assert_eq!(id.to_be_bytes(), data[INITIAL_OPK_ID]);
                }
                None => assert_eq!(data[INITIAL_OPK_FLAG..INITIAL_FIELDS_END], [0; 9]),
            }
            // The session id is a function of the message and the responder.
            let bob = fixture().bob.public_key();
            assert_eq!(i.session_id(bob), i.session_id(bob));
            let pq = i.post_quantum_prekey_id();
            assert_eq!(i.is_post_quantum(), pq.is_some());
            if let Some(id) = pq {
                assert_eq!(id.to_be_bytes(), data[PQ_ID]);
                check_kem_ciphertext_layout(m, data);
            }
            let kind = match (pq.is_some(), he) {
                (false, false) => TYPE_INITIAL,
                (true, false) => TYPE_INITIAL_PQ,
                (false, true) => TYPE_INITIAL_HE,
                (true, true) => TYPE_INITIAL_PQ_HE,
            };
            let pq_len = if pq.is_some() { PQ_FIELDS } else { 0 };
            (kind, X3DH_FIELDS + pq_len)
        }
    };
    assert_eq!(data[1], kind);
    let header_len = if he { SEALED_HEADER } else { PLAIN_HEADER };
    let prefix = 2 + fields_len + header_len;
    assert_eq!(m.ciphertext_len(), data.len() - prefix);
    assert!(m.ciphertext_len() >= TAG);
    let header = &data[prefix - header_len..prefix];
    if he {
        assert_eq!(m.ratchet_key(), None);
        assert_eq!(m.message_number(), None);
        assert_eq!(m.previous_chain_length(), None);
    } else {
        assert_eq!(m.ratchet_key().map(|k| &k[..]), Some(&header[..32]));
        let pn = m.previous_chain_length().map(u32::to_be_bytes);
        assert_eq!(pn.as_ref().map(|b| &b[..]), Some(&header[32..36]));
        let n = m.message_number().map(u32::to_be_bytes);
        assert_eq!(n.as_ref().map(|b| &b[..]), Some(&header[36..40]));
    }
}

/// A PQXDH initial message's KEM ciphertext is the opaque bytes 91..1179 (SPEC.md §5.3):
/// changing them changes the message but no other field (the ids, the session id, the
/// ratchet header, the ciphertext length), and the post-quantum prekey id is bytes 83..91.
fn check_kem_ciphertext_layout(m: &Message<'_>, data: &[u8]) {
    let Message::Initial(i) = m else {
        unreachable!("only initial messages have a KEM ciphertext")
    };
    let bob = fixture().bob.public_key();
    let mut changed = data.to_vec();
    changed[KEM_CT.start] ^= 0x01;
    changed[KEM_CT.end - 1] ^= 0x80;
    changed[PQ_ID.end - 1] ^= 0x01;
    let parsed = Message::parse(&changed)
        .unwrap_or_else(|e| panic!("a changed KEM ciphertext does not parse: {e:?}"));
    assert_ne!(&parsed, m);
    let Message::Initial(c) = &parsed else {
        panic!("a changed KEM ciphertext changed the message kind");
    };
    assert_eq!(
        c.post_quantum_prekey_id(),
        i.post_quantum_prekey_id().map(|id| id ^ 1)
    );
    assert_eq!(c.identity_key(), i.identity_key());
    assert_eq!(c.base_key(), i.base_key());
    assert_eq!(c.signed_prekey_id(), i.signed_prekey_id());
    assert_eq!(c.one_time_prekey_id(), i.one_time_prekey_id());
    assert_eq!(c.session_id(bob), i.session_id(bob));
    assert_eq!(c.is_header_encrypted(), i.is_header_encrypted());
    assert_eq!(parsed.ratchet_key(), m.ratchet_key());
    assert_eq!(parsed.message_number(), m.message_number());
    assert_eq!(parsed.previous_chain_length(), m.previous_chain_length());
    assert_eq!(parsed.ciphertext_len(), m.ciphertext_len());
    assert_eq!(parsed.to_bytes(), changed);
}

/// `PreKeyBundle::from_bytes`: strict, exactly re-encoding, and its accessors agree with
/// the layout (SPEC.md §5.4; type `0x11` for a PQXDH bundle).
fn check_bundle_encoding(data: &[u8]) -> Option<PreKeyBundle> {
    match PreKeyBundle::from_bytes(data) {
        Ok(b) => {
            assert_eq!(b.to_bytes(), data, "bundle re-encodes differently");
            assert_eq!(PreKeyBundle::from_bytes(&b.to_bytes()).as_ref(), Ok(&b));
            assert_eq!(data[0], BUNDLE_VERSION);
            assert_eq!(b.identity_key().as_bytes(), &data[2..34]);
            assert_eq!(b.signed_prekey_id().to_be_bytes(), data[BUNDLE_SPK_ID]);
            match b.one_time_prekey_id() {
                Some(id) => {
                    assert_eq!(data[BUNDLE_OPK_FLAG], 1);
                    assert_eq!(id.to_be_bytes(), data[BUNDLE_OPK_ID]);
                }
                None => assert!(data[BUNDLE_OPK_FLAG..BUNDLE_OPK.end]
                    .iter()
                    .all(|b| *b == 0)),
            }
            if b.is_post_quantum() {
                assert_eq!(data[1], TYPE_BUNDLE_PQ);
                #[cfg(feature = "pqxdh")]
                {
                    assert_eq!(data.len(), PQ_BUNDLE_LENGTH);
                    let id = b.post_quantum_prekey_id().unwrap();
                    assert_eq!(id.to_be_bytes(), data[BUNDLE_PQ_ID]);
                }
            } else {
                assert_eq!(data[1], TYPE_BUNDLE);
                assert_eq!(data.len(), BUNDLE_LENGTH);
            }
            Some(b)
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Truncated
                        | Error::TrailingData
                        | Error::UnsupportedVersion(_)
                        | Error::UnexpectedType(_)
                        | Error::InvalidEncoding
                        | Error::InvalidPublicKey
                ),
                "undocumented bundle error {e:?}"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// session
// ---------------------------------------------------------------------------------------

/// One of the two parties.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The initiator.
    Alice,
    /// The responder.
    Bob,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Alice => Side::Bob,
            Side::Bob => Side::Alice,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Alice => 0,
            Side::Bob => 1,
        }
    }
}

/// One step of the `session` target. Packet indices are taken modulo the number of
/// packets in flight (an operation on an empty network does nothing), message indices
/// modulo the number of messages sent.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Alice encrypts a `len`-byte plaintext and puts it on the network.
    AliceSends {
        /// Plaintext length.
        len: u8,
    },
    /// Bob encrypts a `len`-byte plaintext (once he has a session).
    BobSends {
        /// Plaintext length.
        len: u8,
    },
    /// Takes a packet off the network and hands it to its addressee.
    Deliver {
        /// Packet index.
        idx: u8,
    },
    /// Loses a packet.
    Drop {
        /// Packet index.
        idx: u8,
    },
    /// Puts a second copy of a packet on the network.
    Duplicate {
        /// Packet index.
        idx: u8,
    },
    /// Puts a copy of an already sent message back on the network (a replay).
    Replay {
        /// Message index.
        msg: u8,
    },
    /// Swaps two packets.
    Reorder {
        /// Packet index.
        a: u8,
        /// Packet index.
        b: u8,
    },
    /// Cuts a packet short at `at` (if it is longer).
    Truncate {
        /// Packet index.
        idx: u8,
        /// New length.
        at: u16,
    },
    /// Flips one bit of a packet.
    FlipBit {
        /// Packet index.
        idx: u8,
        /// Bit position, modulo the packet's length in bits.
        bit: u16,
    },
    /// Adds a packet made of `a` up to `at` and `b` from `at` on, addressed as `a`.
    Splice {
        /// Packet index of the head.
        a: u8,
        /// Packet index of the tail.
        b: u8,
        /// Cut position.
        at: u16,
    },
    /// Takes a packet off the network and hands it back to its sender.
    Reflect {
        /// Packet index.
        idx: u8,
    },
    /// Replaces a session by its stored encoding, loaded back (sealed under the storage
    /// key first, if `sealed`).
    Reload {
        /// Whose session.
        side: Side,
        /// Whether to go through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// Lowers a session's limits (`max_skip = 255` stands for one above the hard cap,
    /// which must be refused).
    SetLimits {
        /// Whose session.
        side: Side,
        /// New `max_skip`.
        max_skip: u8,
        /// New `max_stored_skipped`.
        max_stored: u8,
    },
}

/// Decodes the `session` target's input into at most [`MAX_OPS`] operations.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// A message as sent, and whether its addressee has accepted it.
struct Sent {
    from: Side,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    accepted: bool,
}

/// Bytes on the network, addressed to `to`.
#[derive(Clone)]
struct Packet {
    to: Side,
    bytes: Vec<u8>,
}

struct Harness {
    /// Whether the session is header-encrypted (SPEC.md §4.8).
    header_encryption: bool,
    /// Whether the session is agreed with PQXDH (SPEC.md §3.6).
    post_quantum: bool,
    /// Each side's padding policy (SPEC.md §4.9), by [`Side::index`].
    padding: [Padding; 2],
    alice: Session,
    /// Bob has a session once an initial message reached him.
    bob: Option<Session>,
    /// With PQXDH, Bob accepts through his prekey store (`Session::respond` is classical
    /// only); without, through `Session::respond` and the fixture's keys.
    store: Option<PreKeyStore>,
    rngs: [ChaCha20Rng; 2],
    seal_rng: ChaCha20Rng,
    sent: Vec<Sent>,
    net: Vec<Packet>,
    /// Set once a side's limits were lowered: from then on a fresh message may be refused
    /// as too far ahead, or because its skipped key was evicted.
    relaxed: [bool; 2],
    /// Alice has decrypted a message from Bob, so she no longer sends initial messages.
    alice_heard_back: bool,
}

fn slot<'s>(
    alice: &'s mut Session,
    bob: &'s mut Option<Session>,
    side: Side,
) -> Option<&'s mut Session> {
    match side {
        Side::Alice => Some(alice),
        Side::Bob => bob.as_mut(),
    }
}

fn plaintext_for(index: usize, len: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (index as u8).wrapping_mul(37) ^ i.wrapping_mul(11))
        .collect()
}

/// Alice's fresh session in the given modes, stored. Without the `pqxdh` feature every
/// session is classical.
fn fresh_alice(header_encryption: bool, post_quantum: bool) -> (&'static [u8], bool) {
    let fx = fixture();
    #[cfg(feature = "pqxdh")]
    if post_quantum {
        let fresh = if header_encryption {
            &fx.pq.fresh_alice_he
        } else {
            &fx.pq.fresh_alice
        };
        return (fresh, true);
    }
    let _ = post_quantum;
    let fresh = if header_encryption {
        &fx.fresh_alice_he
    } else {
        &fx.fresh_alice
    };
    (fresh, false)
}

impl Harness {
    fn new(header_encryption: bool, post_quantum: bool, padding: [Padding; 2]) -> Harness {
        let (fresh, post_quantum) = fresh_alice(header_encryption, post_quantum);
        let mut alice = reload_session(fresh);
        assert_eq!(alice.is_header_encrypted(), header_encryption);
        assert_eq!(alice.is_post_quantum(), post_quantum);
        assert_eq!(alice.padding(), Padding::Padme, "the default policy");
        alice.set_padding(padding[Side::Alice.index()]);
        Harness {
            header_encryption,
            post_quantum,
            padding,
            alice,
            bob: None,
            store: post_quantum.then(bob_store),
            rngs: [rng(0xA11CE), rng(0xB0B)],
            seal_rng: rng(0x5EA1),
            sent: Vec::new(),
            net: Vec::new(),
            relaxed: [false; 2],
            alice_heard_back: false,
        }
    }

    /// Encrypts a fresh message from `from`; `None` if `from` has no session yet.
    fn send(&mut self, from: Side, len: u8) -> Option<Vec<u8>> {
        let index = self.sent.len();
        let plaintext = plaintext_for(index, len);
        let rng = &mut self.rngs[from.index()];
        let s = slot(&mut self.alice, &mut self.bob, from)?;
        assert_eq!(
            s.awaiting_reply(),
            from == Side::Alice && !self.alice_heard_back,
            "awaiting_reply disagrees with what {from:?} received"
        );
        let padding = s.padding();
        assert_eq!(
            padding,
            self.padding[from.index()],
            "{from:?}'s padding policy"
        );
        let wire = s.encrypt(&plaintext, rng).unwrap();
        let parsed = Message::parse(&wire).unwrap();
        check_message_layout(&parsed, &wire);
        assert_eq!(
            matches!(parsed, Message::Initial(_)),
            s.awaiting_reply(),
            "{from:?} sent the wrong kind of message"
        );
        assert_eq!(parsed.is_header_encrypted(), self.header_encryption);
        if let Message::Initial(m) = &parsed {
            assert_eq!(m.is_post_quantum(), self.post_quantum);
        }
        // The body is the plaintext encoded under the sender's policy, and the tag.
        assert_eq!(
            parsed.ciphertext_len(),
            encoded_length(padding, plaintext.len()) + TAG
        );
        self.sent.push(Sent {
            from,
            wire: wire.clone(),
            plaintext,
            accepted: false,
        });
        self.net.push(Packet {
            to: from.other(),
            bytes: wire.clone(),
        });
        Some(wire)
    }

    /// Hands `bytes` to `to` and checks the outcome; returns whether it was accepted.
    fn deliver(&mut self, to: Side, bytes: &[u8]) -> bool {
        let fx = fixture();
        // The message these bytes are, if they are exactly one the peer sent.
        let genuine = self
            .sent
            .iter()
            .position(|m| m.from == to.other() && m.wire == bytes);
        let result = match slot(&mut self.alice, &mut self.bob, to) {
            Some(s) => decrypt_checked(s, bytes),
            None => match self.bob_accepts(bytes) {
                Ok(accepted) => {
                    // Alice's bundle names Bob's first one-time prekey (of both kinds with
                    // PQXDH): consumed, so no replay record and nothing to notice.
                    assert_eq!(accepted.used_one_time_prekey, Some(fx.opk_ids[0]));
                    assert_eq!(accepted.notice, None);
                    #[cfg(feature = "pqxdh")]
                    if self.post_quantum {
                        assert_eq!(
                            accepted.used_post_quantum_prekey,
                            Some(fx.pq.one_time_ids[0])
                        );
                    }
                    if !self.post_quantum {
                        assert_eq!(accepted.used_post_quantum_prekey, None);
                    }
                    assert_eq!(accepted.session.is_post_quantum(), self.post_quantum);
                    assert_eq!(accepted.session.id(), self.alice.id());
                    assert_eq!(accepted.session.role(), Role::Responder);
                    assert_eq!(accepted.session.remote_identity(), fx.alice.public_key());
                    assert_eq!(
                        accepted.session.is_header_encrypted(),
                        self.header_encryption
                    );
                    // Accepting takes the default policy; Bob then sets his own.
                    let mut bob = accepted.session;
                    assert_eq!(bob.padding(), Padding::Padme);
                    bob.set_padding(self.padding[Side::Bob.index()]);
                    self.bob = Some(bob);
                    Ok(accepted.plaintext)
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(plaintext) => {
                let Some(i) = genuine else {
                    panic!("{to:?} accepted bytes its peer never sent: {}", hex(bytes));
                };
                let m = &mut self.sent[i];
                assert!(!m.accepted, "{to:?} accepted message {i} twice");
                assert_eq!(plaintext, m.plaintext, "message {i} decrypted wrongly");
                m.accepted = true;
                if to == Side::Alice {
                    self.alice_heard_back = true;
                }
                true
            }
            Err(e) => {
                if let Some(i) = genuine.filter(|i| !self.sent[*i].accepted) {
                    // A fresh, unmodified message: only limits the fuzzer lowered excuse it.
                    assert!(
                        self.relaxed[to.index()]
                            && matches!(
                                e,
                                Error::TooFarAhead
                                    | Error::DuplicateOrExpired
                                    | Error::DecryptionFailed
                            ),
                        "{to:?} rejected fresh message {i} with {e:?}"
                    );
                }
                false
            }
        }
    }

    /// Bob, without a session yet, accepts one from `bytes`: through his store with PQXDH
    /// (which must be unchanged on error, and lose the one-time prekeys on success), else
    /// through `Session::respond`.
    fn bob_accepts(&mut self, bytes: &[u8]) -> Result<Accepted, Error> {
        let fx = fixture();
        let Some(store) = self.store.as_mut() else {
            return Session::respond(&fx.bob, bob_spk, bob_opk, bytes);
        };
        let before = store.to_bytes();
        let result = store.accept(&fx.bob, bytes);
        match &result {
            Ok(accepted) => {
                if let Some(id) = accepted.used_one_time_prekey {
                    assert!(store.one_time_prekey(id).is_none());
                }
                #[cfg(feature = "pqxdh")]
                if let Some(id) = accepted.used_post_quantum_prekey {
                    assert!(store.pq_prekey(id).is_none(), "PQ one-time prekey kept");
                }
            }
            Err(e) => assert_eq!(
                *store.to_bytes(),
                *before,
                "a refused message ({e:?}) changed the store"
            ),
        }
        result
    }

    fn packet(&self, idx: u8) -> Option<usize> {
        (!self.net.is_empty()).then(|| usize::from(idx) % self.net.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::AliceSends { len } => {
                self.send(Side::Alice, len);
            }
            Op::BobSends { len } => {
                self.send(Side::Bob, len);
            }
            Op::Deliver { idx } => {
                if let Some(i) = self.packet(idx) {
                    let p = self.net.remove(i);
                    self.deliver(p.to, &p.bytes);
                }
            }
            Op::Reflect { idx } => {
                if let Some(i) = self.packet(idx) {
                    let p = self.net.remove(i);
                    self.deliver(p.to.other(), &p.bytes);
                }
            }
            Op::Drop { idx } => {
                if let Some(i) = self.packet(idx) {
                    self.net.remove(i);
                }
            }
            Op::Duplicate { idx } => {
                if let Some(i) = self.packet(idx) {
                    self.net.push(self.net[i].clone());
                }
            }
            Op::Replay { msg } => {
                if !self.sent.is_empty() {
                    let m = &self.sent[usize::from(msg) % self.sent.len()];
                    self.net.push(Packet {
                        to: m.from.other(),
                        bytes: m.wire.clone(),
                    });
                }
            }
            Op::Reorder { a, b } => {
                if let (Some(a), Some(b)) = (self.packet(a), self.packet(b)) {
                    self.net.swap(a, b);
                }
            }
            Op::Truncate { idx, at } => {
                if let Some(i) = self.packet(idx) {
                    self.net[i].bytes.truncate(usize::from(at));
                }
            }
            Op::FlipBit { idx, bit } => {
                if let Some(i) = self.packet(idx) {
                    let bytes = &mut self.net[i].bytes;
                    if !bytes.is_empty() {
                        let bit = usize::from(bit) % (bytes.len() * 8);
                        bytes[bit / 8] ^= 1 << (bit % 8);
                    }
                }
            }
            Op::Splice { a, b, at } => {
                if let (Some(a), Some(b)) = (self.packet(a), self.packet(b)) {
                    let head = &self.net[a].bytes;
                    let tail = &self.net[b].bytes;
                    let at = usize::from(at).min(head.len());
                    let mut bytes = head[..at].to_vec();
                    bytes.extend_from_slice(tail.get(at..).unwrap_or(&[]));
                    let to = self.net[a].to;
                    self.net.push(Packet { to, bytes });
                }
            }
            Op::Reload { side, sealed } => {
                let fx = fixture();
                let seal_rng = &mut self.seal_rng;
                if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                    let bytes = s.to_bytes();
                    let loaded = if sealed {
                        // Sealed for the place this side's session is stored: the blob
                        // opens with that context only.
                        let context = SESSION_CONTEXTS[side.index()];
                        let key = &fx.storage_key;
                        let blob = key.seal(&*s, context, seal_rng).unwrap();
                        for other in [SESSION_CONTEXTS[side.other().index()], b""] {
                            assert_eq!(
                                key.open::<Session>(&blob, other).err(),
                                Some(Error::DecryptionFailed),
                                "a sealed session opened with another context"
                            );
                        }
                        key.open::<Session>(&blob, context).unwrap()
                    } else {
                        reload_session(&bytes)
                    };
                    assert_eq!(*loaded.to_bytes(), *bytes);
                    assert_eq!(loaded.id(), s.id());
                    assert_eq!(loaded.role(), s.role());
                    assert_eq!(loaded.awaiting_reply(), s.awaiting_reply());
                    assert_eq!(loaded.limits(), s.limits());
                    assert_eq!(loaded.padding(), s.padding());
                    assert_eq!(loaded.stored_skipped_keys(), s.stored_skipped_keys());
                    *s = loaded;
                }
            }
            Op::SetLimits {
                side,
                max_skip,
                max_stored,
            } => {
                let valid = max_skip != u8::MAX;
                let limits = Limits {
                    max_skip: if valid {
                        u32::from(max_skip)
                    } else {
                        MAX_SKIP_CAP + 1
                    },
                    max_stored_skipped: u32::from(max_stored),
                };
                if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                    let before = s.to_bytes();
                    match s.set_limits(limits) {
                        Ok(()) => {
                            assert!(valid, "limits above the cap accepted");
                            assert_eq!(s.limits(), limits);
                            assert!(s.stored_skipped_keys() <= usize::from(max_stored));
                            self.relaxed[side.index()] = true;
                        }
                        Err(e) => {
                            assert!(!valid, "valid limits refused: {e:?}");
                            assert_eq!(e, Error::InvalidLimits);
                            assert_eq!(*s.to_bytes(), *before, "refused limits changed state");
                        }
                    }
                }
            }
        }
    }

    /// Both sides still work: with default limits back, fresh messages delivered in order
    /// both ways decrypt (Alice, Bob, Alice again: each side completes a ratchet step).
    fn finish(mut self) {
        for side in [Side::Alice, Side::Bob] {
            if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                s.set_limits(Limits::default()).unwrap();
            }
        }
        if self.bob.is_none() {
            let wire = self.send(Side::Alice, 3).unwrap();
            assert!(
                self.deliver(Side::Bob, &wire),
                "Bob cannot start the session"
            );
        }
        for (from, len) in [(Side::Alice, 0), (Side::Bob, 17), (Side::Alice, 1)] {
            let wire = self.send(from, len).unwrap();
            assert!(
                self.deliver(from.other(), &wire),
                "{:?} cannot decrypt a fresh message",
                from.other()
            );
        }
        let bob = self.bob.as_ref().unwrap();
        assert!(!self.alice.awaiting_reply());
        assert_eq!(self.alice.id(), bob.id());
        assert_eq!(self.alice.remote_identity(), bob.local_identity());
        assert_eq!(bob.remote_identity(), self.alice.local_identity());
    }
}

/// A real Alice/Bob pair driven by up to 64 operations on an unreliable, hostile network:
/// every accepted plaintext is exactly what was sent for that message, nothing is accepted
/// twice, no modified bytes are accepted, every rejection leaves the session unchanged, a
/// fresh unmodified message is accepted (unless the fuzzer lowered the limits), every
/// message's body is its plaintext padded by its sender's policy, and at the end both
/// sides still talk. Bit 0 of the first byte selects header encryption, bit 1 PQXDH (Bob
/// then accepts through his prekey store), bit 2 Alice sending without padding and bit 3
/// Bob sending without padding (otherwise each pads with Padmé, the default); the rest is
/// decoded into [`Op`]s.
pub fn session(data: &[u8]) {
    let (mode, ops) = data.split_first().map_or((0, data), |(m, rest)| (*m, rest));
    let policy = |unpadded: bool| {
        if unpadded {
            Padding::None
        } else {
            Padding::Padme
        }
    };
    let padding = [policy(mode & 4 == 4), policy(mode & 8 == 8)];
    let mut h = Harness::new(mode & 1 == 1, mode & 2 == 2, padding);
    for op in ops_from_bytes(ops) {
        h.apply(op);
    }
    h.finish();
}

// ---------------------------------------------------------------------------------------
// respond
// ---------------------------------------------------------------------------------------

/// Field layout of a classical initial message, for the field-replacing mode of
/// `respond`: `(offset, width)`; the last field (ciphertext and tag) runs to the end. The
/// X3DH fields: version, type, `IK_A`, `EK_A`, SPK id, OPK flag, OPK id (8-byte ids).
const INITIAL_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (INITIAL_SPK_ID.start, 8),
    (INITIAL_OPK_FLAG, 1),
    (INITIAL_OPK_ID.start, 8),
    (INITIAL_FIELDS_END, 32),
    (INITIAL_FIELDS_END + 32, 4),
    (INITIAL_FIELDS_END + 36, 4),
    (INITIAL_PREFIX, usize::MAX),
];
/// The same for an initial message with an encrypted header: nonce, sealed header, tag.
const INITIAL_HE_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (INITIAL_SPK_ID.start, 8),
    (INITIAL_OPK_FLAG, 1),
    (INITIAL_OPK_ID.start, 8),
    (INITIAL_FIELDS_END, 12),
    (INITIAL_FIELDS_END + 12, PLAIN_HEADER),
    (INITIAL_FIELDS_END + 12 + PLAIN_HEADER, TAG),
    (INITIAL_FIELDS_END + SEALED_HEADER, usize::MAX),
];
/// The same for a PQXDH initial message (type `0x03`): the X3DH fields, the post-quantum
/// prekey id, the KEM ciphertext (whole, and its first 16 bytes), the ratchet header.
const INITIAL_PQ_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (INITIAL_SPK_ID.start, 8),
    (INITIAL_OPK_FLAG, 1),
    (INITIAL_OPK_ID.start, 8),
    (PQ_ID.start, 8),
    (KEM_CT.start, KEM_CT.end - KEM_CT.start),
    (KEM_CT.start, 16),
    (PQ_HEADER_START, 32),
    (PQ_HEADER_START + 32, 4),
    (PQ_HEADER_START + 36, 4),
    (PQ_HEADER_START + PLAIN_HEADER, usize::MAX),
];
/// The same for a header-encrypted PQXDH initial message (type `0x06`).
const INITIAL_PQ_HE_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (INITIAL_SPK_ID.start, 8),
    (INITIAL_OPK_FLAG, 1),
    (INITIAL_OPK_ID.start, 8),
    (PQ_ID.start, 8),
    (KEM_CT.start, KEM_CT.end - KEM_CT.start),
    (KEM_CT.start, 16),
    (PQ_HEADER_START, 12),
    (PQ_HEADER_START + 12, PLAIN_HEADER),
    (PQ_HEADER_START + 12 + PLAIN_HEADER, TAG),
    (PQ_HEADER_START + SEALED_HEADER, usize::MAX),
];

/// `Session::respond` for Bob (fixed identity, signed prekey, one-time prekeys) and
/// `PreKeyStore::accept` with Bob's store (which also holds post-quantum one-time and
/// last-resort prekeys) on attacker-controlled bytes. The first byte picks a mode: 0 the
/// rest as a message; 1 a genuine initial message (classical or PQXDH, picked by the next
/// byte) overwritten at an offset; 2 one of its fields replaced; 3 bits of it flipped.
/// Never panics; accepts exactly the genuine messages (in modes 1-3; PQXDH ones in every
/// mode); what it accepts is a working session; `Session::respond` refuses every PQXDH
/// message with `UnknownPqPreKey`; and the store agrees with `respond` on classical
/// messages, accepts the genuine PQXDH ones, leaves itself byte-identical on error, deletes
/// the one-time prekeys (of both kinds) it used, and refuses a replay.
pub fn respond(data: &[u8]) {
    let fx = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = mode % 4;
    let candidate = if mode == 0 {
        rest.to_vec()
    } else {
        let Some((&pick, rest)) = rest.split_first() else {
            return;
        };
        let base = &fx.initial[usize::from(pick) % fx.initial.len()];
        let mut m = base.wire.clone();
        match mode {
            1 => {
                let Some((off, patch)) = split_u16(rest) else {
                    return;
                };
                let off = usize::from(off) % (m.len() + 1);
                let end = (off + patch.len()).min(m.len());
                m[off..end].copy_from_slice(&patch[..end - off]);
                m.extend_from_slice(&patch[end - off..]);
            }
            2 => {
                let Some((&field, value)) = rest.split_first() else {
                    return;
                };
                let table = match (base.post_quantum, base.header_encryption) {
                    (false, false) => INITIAL_FIELDS,
                    (false, true) => INITIAL_HE_FIELDS,
                    (true, false) => INITIAL_PQ_FIELDS,
                    (true, true) => INITIAL_PQ_HE_FIELDS,
                };
                let (off, width) = table[usize::from(field) % table.len()];
                if width == usize::MAX {
                    m.truncate(off);
                    m.extend_from_slice(value);
                } else {
                    let mut v = value.to_vec();
                    v.resize(width, 0);
                    m[off..off + width].copy_from_slice(&v);
                }
            }
            _ => {
                for pair in rest.chunks_exact(2) {
                    let bit = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (m.len() * 8);
                    m[bit / 8] ^= 1 << (bit % 8);
                }
            }
        }
        m
    };
    check_respond(&candidate, mode != 0);
}

fn split_u16(data: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*head), rest))
}

fn check_respond(candidate: &[u8], derived_from_genuine: bool) {
    let fx = fixture();
    let genuine = fx.initial.iter().find(|g| g.wire == candidate);
    let parsed = Message::parse(candidate);
    let post_quantum = match &parsed {
        Ok(Message::Initial(m)) => m.post_quantum_prekey_id(),
        _ => None,
    };
    let used = match Session::respond(&fx.bob, bob_spk, bob_opk, candidate) {
        Ok(accepted) => {
            assert!(
                post_quantum.is_none(),
                "Session::respond accepted a PQXDH message"
            );
            if derived_from_genuine {
                assert!(
                    genuine.is_some(),
                    "accepted a modified initial message: {}",
                    hex(candidate)
                );
            }
            let used = accepted.used_one_time_prekey;
            check_accepted(accepted, candidate, genuine);
            Some(used)
        }
        Err(e) => {
            if let Some(id) = post_quantum {
                // `Session::respond` is classical only.
                assert_eq!(e, Error::UnknownPqPreKey(id));
            } else if genuine.is_some() {
                panic!("a genuine initial message was rejected: {e:?}");
            }
            None
        }
    };

    // A deleted one-time prekey refuses the message before any key agreement.
    if let Ok(Message::Initial(m)) = &parsed {
        if let Some(id) = m.one_time_prekey_id() {
            if m.identity_key() != fx.bob.public_key()
                && bob_spk(m.signed_prekey_id()).is_some()
                && !m.is_post_quantum()
            {
                let r = Session::respond(&fx.bob, bob_spk, |_| None, candidate);
                assert_eq!(r.err(), Some(Error::UnknownOneTimePreKey(id)));
            }
        }
    }

    // The prekey store agrees with `Session::respond` on classical messages; it accepts
    // exactly the genuine PQXDH messages (nothing else can be forged); and a replay of
    // what it accepted never creates a second session.
    let expected = match (used, post_quantum) {
        (Some(used), _) => Expect::Accept(used),
        (None, None) => Expect::Refuse,
        (None, Some(_)) if genuine.is_some() => {
            Expect::Accept(genuine.and_then(|g| one_time_prekey_of(&g.wire)))
        }
        (None, Some(_)) if derived_from_genuine => Expect::Refuse,
        (None, Some(_)) => Expect::Unknown,
    };
    let accepted = with_bob_store(|store| check_store_accept(store, candidate, expected));
    if let Ok(accepted) = accepted {
        if post_quantum.is_some() {
            check_accepted(accepted, candidate, genuine);
        }
    }
}

/// The classical one-time prekey an initial message names.
fn one_time_prekey_of(message: &[u8]) -> Option<u64> {
    match Message::parse(message) {
        Ok(Message::Initial(m)) => m.one_time_prekey_id(),
        _ => None,
    }
}

/// A session Bob accepted from `candidate` (by `respond` or his store) is a working
/// responder session of the message's kind: the same message again is a duplicate, it
/// stores and loads, and (for a genuine message) its reply decrypts at Alice.
fn check_accepted(accepted: Accepted, candidate: &[u8], genuine: Option<&Genuine>) {
    let fx = fixture();
    let parsed = Message::parse(candidate).unwrap();
    let Message::Initial(m) = parsed else {
        panic!("accepted a message that is not an initial message");
    };
    // The body is the plaintext encoded under the sender's policy, and the tag.
    let body = |padding| encoded_length(padding, accepted.plaintext.len()) + TAG;
    match genuine {
        Some(g) => {
            assert_eq!(accepted.plaintext, g.plaintext);
            assert_eq!(parsed.ciphertext_len(), body(g.padding));
        }
        None => assert!(
            [Padding::Padme, Padding::None]
                .into_iter()
                .any(|p| parsed.ciphertext_len() == body(p)),
            "a body of {} bytes for a {}-byte plaintext",
            parsed.ciphertext_len(),
            accepted.plaintext.len()
        ),
    }
    assert_eq!(accepted.used_one_time_prekey, m.one_time_prekey_id());
    assert_eq!(
        accepted.used_post_quantum_prekey,
        m.post_quantum_prekey_id()
    );
    let mut s = accepted.session;
    assert_eq!(s.role(), Role::Responder);
    assert!(!s.awaiting_reply());
    assert_eq!(s.remote_identity(), m.identity_key());
    assert_eq!(s.local_identity(), fx.bob.public_key());
    assert_eq!(s.id(), m.session_id(fx.bob.public_key()));
    assert_eq!(s.is_post_quantum(), m.is_post_quantum());
    assert_eq!(s.is_header_encrypted(), m.is_header_encrypted());
    // The same message again is a duplicate.
    assert_eq!(
        decrypt_checked(&mut s, candidate),
        Err(Error::DuplicateOrExpired)
    );
    let mut s = reload_session(&s.to_bytes());
    let reply = s.encrypt(b"reply", &mut rng(3)).unwrap();
    assert!(matches!(Message::parse(&reply), Ok(Message::Normal(_))));
    if let Some(g) = genuine {
        let mut a = reload_session(&g.alice_state);
        assert!(a.awaiting_reply());
        assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"reply");
        assert!(!a.awaiting_reply());
    }
}

/// What [`check_store_accept`] must see.
enum Expect {
    /// Either outcome is possible.
    Unknown,
    /// Accepted, using this one-time prekey.
    Accept(Option<u64>),
    /// Refused.
    Refuse,
}

/// The post-quantum prekey an initial message names, and whether `store` holds it as a
/// one-time key.
fn pq_prekey_named(store: &PreKeyStore, message: &[u8]) -> Option<(u64, bool)> {
    let Ok(Message::Initial(m)) = Message::parse(message) else {
        return None;
    };
    let id = m.post_quantum_prekey_id()?;
    #[cfg(feature = "pqxdh")]
    let one_time = store
        .pq_prekey(id)
        .is_some_and(|k| k.kind() == PqPreKeyKind::OneTime);
    #[cfg(not(feature = "pqxdh"))]
    let one_time = {
        let _ = store;
        false
    };
    Some((id, one_time))
}

/// `PreKeyStore::accept` of `message` on `store` (SPEC.md §8): on error the store is
/// byte-identical; on success the one-time prekeys used (classical, post-quantum) are
/// gone and nothing else is, a session that consumed none left a replay record under the
/// signed prekey it named (which was not full), the notice is exactly what SPEC.md §8.3
/// says (the current signed prekey's records reached the replay capacity: a switch to the
/// standby, or `SignedPreKeyFull` without one), and the same message is refused next time
/// (`UnknownOneTimePreKey` / `UnknownPqPreKey` for a consumed key, `DuplicateOrExpired` for
/// a recorded one) without changing the store. `StoreFull` only for a message that
/// consumes no one-time prekey and names a full signed prekey. Returns the store's answer.
fn check_store_accept(
    store: &mut PreKeyStore,
    message: &[u8],
    expected: Expect,
) -> Result<Accepted, Error> {
    let fx = fixture();
    let before = store.to_bytes();
    let view = store_view(&before);
    let one_time_before = store.one_time_prekeys().count();
    let records_before = store.replay_records();
    let pq_named = pq_prekey_named(store, message);
    #[cfg(feature = "pqxdh")]
    let pq_one_time_before = store.pq_one_time_prekeys().count();
    let fields = match Message::parse(message) {
        Ok(Message::Initial(m)) => Some((m.signed_prekey_id(), *m.base_key())),
        _ => None,
    };
    match store.accept(&fx.bob, message) {
        Ok(accepted) => {
            match expected {
                Expect::Unknown => {}
                Expect::Accept(used) => assert_eq!(accepted.used_one_time_prekey, used),
                Expect::Refuse => {
                    panic!("the store accepted what must be refused: {}", hex(message))
                }
            }
            assert_eq!(
                accepted.used_post_quantum_prekey,
                pq_named.map(|(id, _)| id)
            );
            let opk = accepted.used_one_time_prekey;
            if let Some(id) = opk {
                assert!(store.one_time_prekey(id).is_none());
            }
            assert_eq!(
                store.one_time_prekeys().count() + usize::from(opk.is_some()),
                one_time_before
            );
            let pq_one_time = pq_named.filter(|(_, one_time)| *one_time).map(|(id, _)| id);
            #[cfg(feature = "pqxdh")]
            {
                assert_eq!(
                    store.pq_one_time_prekeys().count() + usize::from(pq_one_time.is_some()),
                    pq_one_time_before
                );
                if let Some((id, one_time)) = pq_named {
                    assert_eq!(
                        store.pq_prekey(id).is_none(),
                        one_time,
                        "a post-quantum one-time prekey was kept, or a last-resort one deleted"
                    );
                }
            }
            let consumed_nothing = opk.is_none() && pq_one_time.is_none();
            assert_eq!(
                store.replay_records(),
                records_before + usize::from(consumed_nothing),
                "wrong replay records"
            );
            let after = store.to_bytes();
            let view_after = store_view(&after);
            let (spk, base_key) = fields.unwrap();
            let capacity = view.capacity as usize;
            // The notice (SPEC.md §8.3), and the signed prekeys after it.
            let expected_notice = if consumed_nothing {
                let named = view.records(spk).unwrap();
                assert!(
                    named.len() < capacity,
                    "accepted under a full signed prekey"
                );
                assert!(!named.contains(&base_key));
                let recorded = view_after.records(spk).unwrap();
                assert_eq!(recorded.len(), named.len() + 1);
                assert!(recorded.contains(&base_key), "the base key is not recorded");
                let current = view_after.records(view.current).unwrap().len();
                (current >= capacity).then_some(match view.standby {
                    Some(standby) => StoreNotice::SignedPreKeySwitched {
                        previous: view.current,
                        current: standby,
                    },
                    None => StoreNotice::SignedPreKeyFull { id: view.current },
                })
            } else {
                None
            };
            assert_eq!(accepted.notice, expected_notice, "wrong notice");
            match expected_notice {
                Some(StoreNotice::SignedPreKeySwitched { previous, current }) => {
                    assert_eq!(view_after.current, current);
                    assert_eq!(store.current_signed_prekey().id(), current);
                    assert!(store.signed_prekey(previous).is_some());
                    assert_eq!(view_after.standby, None);
                }
                _ => {
                    assert_eq!(view_after.current, view.current);
                    assert_eq!(view_after.standby, view.standby);
                }
            }
            let replay = store.accept(&fx.bob, message);
            let refused_as_expected = match replay.as_ref().err() {
                Some(Error::UnknownOneTimePreKey(id)) => opk == Some(*id),
                Some(Error::UnknownPqPreKey(id)) => pq_one_time == Some(*id),
                Some(Error::DuplicateOrExpired) => consumed_nothing,
                _ => false,
            };
            assert!(
                refused_as_expected,
                "a replayed initial message was not refused as it should be: {:?}",
                replay.map(|a| a.session)
            );
            assert_eq!(
                *store.to_bytes(),
                *after,
                "refused replay changed the store"
            );
            Ok(accepted)
        }
        Err(e) => {
            assert!(
                !matches!(expected, Expect::Accept(_)),
                "the store refused what it must accept: {e:?}"
            );
            assert_eq!(
                *store.to_bytes(),
                *before,
                "refused message changed the store"
            );
            if e == Error::StoreFull {
                let (spk, base_key) = fields.expect("StoreFull for a message that does not parse");
                let records = view
                    .records(spk)
                    .expect("StoreFull for an unknown signed prekey");
                assert!(
                    records.len() >= view.capacity as usize,
                    "StoreFull, not full"
                );
                assert!(
                    !records.contains(&base_key),
                    "StoreFull for a recorded base key"
                );
                let one_time = Message::parse(message)
                    .ok()
                    .and_then(|_| one_time_prekey_of(message));
                assert!(one_time.is_none(), "StoreFull with a one-time prekey");
                assert!(
                    pq_named.is_none_or(|(_, one_time)| !one_time),
                    "StoreFull with a one-time post-quantum prekey"
                );
            }
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The stored prekey store, field by field
// ---------------------------------------------------------------------------------------

/// A stored prekey store (type `0x24`, SPEC.md §7.5), read field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreView {
    capacity: u32,
    next_sequence: u64,
    current: u64,
    /// Each accepted signed prekey's id and replay records, in stored order (by id).
    signed: Vec<(u64, Vec<[u8; 32]>)>,
    /// Where the standby slot (its flag) starts.
    standby_at: usize,
    standby: Option<u64>,
    /// `(sequence, id)` of each one-time prekey, in stored order (by id).
    one_time: Vec<(u64, u64)>,
    pq_current: Option<u64>,
    /// `(sequence, id, kind byte)` of each post-quantum prekey, in stored order (by id).
    pq: Vec<(u64, u64, u8)>,
}

impl StoreView {
    /// The replay records of an accepted signed prekey.
    fn records(&self, id: u64) -> Option<&[[u8; 32]]> {
        self.signed
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| &r[..])
    }

    /// One-time prekey ids, oldest (lowest sequence number) first.
    fn one_time_by_age(&self) -> Vec<u64> {
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
fn store_view(bytes: &[u8]) -> StoreView {
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
fn without_standby(bytes: &[u8]) -> Vec<u8> {
    let at = store_view(bytes).standby_at;
    let mut out = bytes.to_vec();
    out[at..at + 1 + STORED_SPK].fill(0);
    out
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

/// Every stored type's `from_bytes` (with PQXDH also `PqPreKey`), and `StorageKey::open`
/// of each with a fixed key and each of two application contexts: whatever loads
/// re-encodes to exactly the input; a session's stored type (`0x20`, `0x25`, `0x28` and
/// its flags) agrees with its modes; at most one type (and context) accepts any input; and
/// a loaded session or prekey store (`0x24`) can be used, stays consistent, and stores
/// again.
pub fn load(data: &[u8]) {
    let fx = fixture();
    let mut loaded = 0;
    if let Ok(s) = Session::from_bytes(data) {
        assert_eq!(*s.to_bytes(), data, "session re-encodes differently");
        check_session_type(&s, data);
        exercise_session(s);
        loaded += 1;
    }
    if let Ok(k) = IdentityKeyPair::from_bytes(data) {
        assert_eq!(*k.to_bytes(), data, "identity re-encodes differently");
        loaded += 1;
    }
    if let Ok(k) = SignedPreKey::from_bytes(data) {
        assert_eq!(*k.to_bytes(), data, "signed prekey re-encodes differently");
        loaded += 1;
    }
    if let Ok(k) = OneTimePreKey::from_bytes(data) {
        assert_eq!(
            *k.to_bytes(),
            data,
            "one-time prekey re-encodes differently"
        );
        loaded += 1;
    }
    if let Ok(store) = PreKeyStore::from_bytes(data) {
        assert_eq!(
            *store.to_bytes(),
            data,
            "prekey store re-encodes differently"
        );
        exercise_store(store);
        loaded += 1;
    }
    #[cfg(feature = "pqxdh")]
    if let Ok(k) = PqPreKey::from_bytes(data) {
        assert_eq!(
            *k.to_bytes(),
            data,
            "post-quantum prekey re-encodes differently"
        );
        let kind = match k.kind() {
            PqPreKeyKind::OneTime => 0x01,
            PqPreKeyKind::LastResort => 0x02,
        };
        // version, type, id (8 bytes), kind, seed (64), signature (64).
        assert_eq!(data.len(), STORED_PQ_PREKEY);
        assert_eq!(data[10], kind);
        assert_eq!(k.id().to_be_bytes(), data[2..10]);
        assert_eq!(k.signature(), data[75..139]);
        loaded += 1;
    }
    assert!(loaded <= 1, "{loaded} types load the same bytes");

    let key = &fx.storage_key;
    let mut opened = 0;
    for context in LOAD_CONTEXTS {
        if let Ok(s) = key.open::<Session>(data, context) {
            check_session_type(&s, &s.to_bytes());
            check_reseal(&s, &s.to_bytes(), context, |b, c| {
                key.open::<Session>(b, c).map(|s| s.to_bytes().to_vec())
            });
            exercise_session(s);
            opened += 1;
        }
        if let Ok(k) = key.open::<IdentityKeyPair>(data, context) {
            check_reseal(&k, &k.to_bytes(), context, |b, c| {
                key.open::<IdentityKeyPair>(b, c)
                    .map(|k| k.to_bytes().to_vec())
            });
            opened += 1;
        }
        if let Ok(k) = key.open::<SignedPreKey>(data, context) {
            check_reseal(&k, &k.to_bytes(), context, |b, c| {
                key.open::<SignedPreKey>(b, c)
                    .map(|k| k.to_bytes().to_vec())
            });
            opened += 1;
        }
        if let Ok(k) = key.open::<OneTimePreKey>(data, context) {
            check_reseal(&k, &k.to_bytes(), context, |b, c| {
                key.open::<OneTimePreKey>(b, c)
                    .map(|k| k.to_bytes().to_vec())
            });
            opened += 1;
        }
        if let Ok(store) = key.open::<PreKeyStore>(data, context) {
            check_reseal(&store, &store.to_bytes(), context, |b, c| {
                key.open::<PreKeyStore>(b, c).map(|s| s.to_bytes().to_vec())
            });
            exercise_store(store);
            opened += 1;
        }
        #[cfg(feature = "pqxdh")]
        if let Ok(k) = key.open::<PqPreKey>(data, context) {
            check_reseal(&k, &k.to_bytes(), context, |b, c| {
                key.open::<PqPreKey>(b, c).map(|k| k.to_bytes().to_vec())
            });
            opened += 1;
        }
    }
    assert!(
        opened <= 1,
        "{opened} types or contexts open the same sealed bytes"
    );
    // A context longer than MAX_SEAL_CONTEXT_LENGTH is refused before anything is read.
    let too_long = [0x6c; MAX_SEAL_CONTEXT_LENGTH + 1];
    assert_eq!(
        key.open::<Session>(data, &too_long).err(),
        Some(Error::TooLarge)
    );
}

/// A stored session's type byte names its modes (SPEC.md §7.1): `0x20` classical, `0x25`
/// PQXDH, `0x28` header-encrypted with flags byte 3 (`0x02` X3DH, `0x03` PQXDH).
fn check_session_type(s: &Session, encoding: &[u8]) {
    let (post_quantum, header_encrypted) = match encoding[1] {
        TYPE_SESSION => (false, false),
        TYPE_SESSION_PQ => (true, false),
        TYPE_SESSION_HE => {
            assert!(matches!(encoding[3], 0x02 | 0x03), "bad flags loaded");
            (encoding[3] == 0x03, true)
        }
        t => panic!("a session loaded from type {t:#04x}"),
    };
    assert_eq!(s.is_post_quantum(), post_quantum, "wrong post-quantum mode");
    assert_eq!(
        s.is_header_encrypted(),
        header_encrypted,
        "wrong header mode"
    );
    assert_eq!(
        encoding[session_padding_offset(encoding)],
        padding_byte(s.padding()),
        "the padding byte disagrees with the loaded policy"
    );
}

/// Seals `object` (whose encoding is `encoded`) again for `context` and opens it with
/// `open(blob, context)`, which returns the opened object's encoding: the same encoding
/// comes back; the blob opens as no other type, and with no other context (the other load
/// context, the context one byte longer).
fn check_reseal<T: doubleratchet::Storable>(
    object: &T,
    encoded: &[u8],
    context: &[u8],
    open: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>, Error>,
) {
    let key = &fixture().storage_key;
    let blob = key.seal(object, context, &mut rng(4)).unwrap();
    let reopened =
        open(&blob, context).unwrap_or_else(|e| panic!("a fresh seal does not open: {e:?}"));
    assert_eq!(reopened, encoded);
    let longer = [context, &[0u8][..]].concat();
    for other in LOAD_CONTEXTS
        .iter()
        .copied()
        .filter(|c| *c != context)
        .chain([&longer[..]])
    {
        assert_eq!(
            open(&blob, other).err(),
            Some(Error::DecryptionFailed),
            "a sealed blob opened with another context"
        );
    }
    let opens = [
        key.open::<Session>(&blob, context).is_ok(),
        key.open::<IdentityKeyPair>(&blob, context).is_ok(),
        key.open::<SignedPreKey>(&blob, context).is_ok(),
        key.open::<OneTimePreKey>(&blob, context).is_ok(),
        key.open::<PreKeyStore>(&blob, context).is_ok(),
        #[cfg(feature = "pqxdh")]
        key.open::<PqPreKey>(&blob, context).is_ok(),
    ];
    let count = opens.iter().filter(|o| **o).count();
    assert_eq!(count, 1, "a sealed blob opens as {count} types");
}

/// Uses a loaded (possibly fuzzer-made) session: nothing panics, rejected messages leave
/// it unchanged, accepted probes decrypt to their plaintext, and every state it reaches
/// stores and loads again.
fn exercise_session(mut s: Session) {
    let fx = fixture();
    assert!(!s.awaiting_reply() || s.role() == Role::Initiator);
    let _ = format!("{s:?}");
    for (wire, plaintext) in &fx.probes {
        if let Ok(p) = decrypt_checked(&mut s, wire) {
            assert_eq!(&p, plaintext, "a probe decrypted to something else");
        }
        reload_session(&s.to_bytes());
    }
    // The other padding policy changes the padding byte and nothing else, and stores and
    // loads; then the session's own policy again.
    let before = s.to_bytes();
    let at = session_padding_offset(&before);
    let padding = s.padding();
    s.set_padding(other_padding(padding));
    let other = reload_session(&s.to_bytes());
    assert_eq!(other.padding(), other_padding(padding));
    let mut expected = before.to_vec();
    expected[at] = padding_byte(other_padding(padding));
    assert_eq!(
        *s.to_bytes(),
        expected,
        "set_padding changed more than its byte"
    );
    s.set_padding(padding);
    assert_eq!(*s.to_bytes(), *before);
    let probe = b"probe";
    match s.encrypt(probe, &mut rng(5)) {
        Ok(wire) => {
            let parsed = Message::parse(&wire).unwrap();
            check_message_layout(&parsed, &wire);
            assert_eq!(
                parsed.ciphertext_len(),
                encoded_length(padding, probe.len()) + TAG,
                "the probe is not padded as the session's policy says"
            );
            assert_eq!(
                matches!(parsed, Message::Initial(_)),
                s.awaiting_reply(),
                "message type disagrees with awaiting_reply"
            );
            assert_eq!(parsed.is_header_encrypted(), s.is_header_encrypted());
            if let Message::Initial(m) = parsed {
                assert_eq!(m.is_post_quantum(), s.is_post_quantum());
            }
        }
        Err(e) => assert_eq!(e, Error::ChainExhausted),
    }
    reload_session(&s.to_bytes());
    s.set_limits(Limits {
        max_skip: 2,
        max_stored_skipped: 1,
    })
    .unwrap();
    assert!(s.stored_skipped_keys() <= 1);
    reload_session(&s.to_bytes());
}

/// Uses a loaded (possibly fuzzer-made) prekey store (SPEC.md §8): what its API reports
/// agrees with its stored fields; refused changes leave it unchanged; probes (with and
/// without a one-time prekey, PQXDH) are accepted or refused by the store rules, with the
/// notices of SPEC.md §8.3; one-time prekey generation, the standby, the replay capacity,
/// rotation, retirement and `after_restore` do what SPEC.md §8 says; and every state it
/// reaches stores and loads again.
fn exercise_store(mut store: PreKeyStore) {
    let fx = fixture();
    let _ = format!("{store:?}");
    let view = store_view(&store.to_bytes());
    check_store_agrees(&store, &view);
    let current_id = store.current_signed_prekey().id();
    let first_opk = store.one_time_prekeys().next().map(OneTimePreKey::id);
    let b = store.bundle(&fx.bob, first_opk).unwrap();
    assert_eq!(b.signed_prekey_id(), current_id);
    assert_eq!(b.one_time_prekey_id(), first_opk);
    // Neither the current signed prekey nor the standby can be retired, and a replay
    // capacity outside 1 ..= 1024 is refused.
    let before = store.to_bytes();
    assert!(!store.retire_signed_prekey(current_id));
    if let Some(standby) = view.standby {
        assert!(!store.retire_signed_prekey(standby));
    }
    for capacity in [0, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY + 1] {
        assert_eq!(
            store.set_replay_capacity(capacity),
            Err(Error::InvalidLimits)
        );
    }
    assert_eq!(
        *store.to_bytes(),
        *before,
        "a refused change changed the store"
    );

    // A classical probe with a one-time prekey, one without (a replay record), and PQXDH.
    let _ = check_store_accept(&mut store, &fx.probes[0].0, Expect::Unknown);
    let _ = check_store_accept(&mut store, &fx.initial[3].wire, Expect::Unknown);
    #[cfg(feature = "pqxdh")]
    exercise_pq_store(&mut store);

    exercise_one_time_generation(&mut store);
    exercise_signed_prekeys(&mut store);
    let view = store_view(&store.to_bytes());
    if view.one_time.len() <= 4 && view.pq.len() <= 4 {
        exercise_after_restore(&store);
    }
    let bytes = store.to_bytes();
    let again = PreKeyStore::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("a store's own encoding does not load: {e:?}"));
    assert_eq!(*again.to_bytes(), *bytes);
}

/// The store's accessors agree with its stored fields.
fn check_store_agrees(store: &PreKeyStore, view: &StoreView) {
    assert_eq!(store.current_signed_prekey().id(), view.current);
    for (id, _) in &view.signed {
        assert_eq!(store.signed_prekey(*id).map(SignedPreKey::id), Some(*id));
    }
    assert_eq!(
        store.standby_signed_prekey().map(SignedPreKey::id),
        view.standby
    );
    if let Some(standby) = view.standby {
        assert!(
            store.signed_prekey(standby).is_none(),
            "the standby is accepted"
        );
    }
    assert_eq!(store.replay_capacity(), view.capacity);
    let records: usize = view.signed.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(store.replay_records(), records);
    let one_time: Vec<u64> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(
        one_time,
        view.one_time_by_age(),
        "one-time prekeys, oldest first"
    );
    #[cfg(feature = "pqxdh")]
    {
        let mut aged: Vec<(u64, u64)> = view
            .pq
            .iter()
            .filter(|(_, _, kind)| *kind == 0x01)
            .map(|(s, id, _)| (*s, *id))
            .collect();
        aged.sort_unstable();
        let by_age: Vec<u64> = aged.into_iter().map(|(_, id)| id).collect();
        let pq: Vec<u64> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
        assert_eq!(pq, by_age, "post-quantum one-time prekeys, oldest first");
    }
}

/// `generate_one_time_prekeys`: new ids (never 0, none held) with the next sequence
/// numbers, newest last; or `StoreFull` beyond the cap, without change.
fn exercise_one_time_generation(store: &mut PreKeyStore) {
    let before = store.to_bytes();
    let view = store_view(&before);
    let held = view.one_time_by_age();
    match store.generate_one_time_prekeys(2, &mut rng(6)) {
        Ok(fresh) => {
            let ids: Vec<u64> = fresh.iter().map(|k| k.id()).collect();
            assert_eq!(ids.len(), 2);
            assert!(ids[0] != ids[1] && ids.iter().all(|id| *id != 0 && !held.contains(id)));
            let after = store_view(&store.to_bytes());
            assert_eq!(after.one_time_by_age(), [&held[..], &ids[..]].concat());
            for (i, id) in ids.iter().enumerate() {
                let sequence = after.one_time.iter().find(|(_, k)| k == id).unwrap().0;
                assert_eq!(sequence, view.next_sequence + i as u64);
            }
            assert_eq!(after.next_sequence, view.next_sequence + 2);
        }
        Err(e) => {
            // Beyond the cap, or (a crafted store) out of sequence numbers.
            assert_eq!(e, Error::StoreFull);
            assert!(
                held.len() + 2 > doubleratchet::MAX_ONE_TIME_PREKEYS
                    || view.next_sequence.checked_add(2).is_none()
            );
            assert_eq!(
                *store.to_bytes(),
                *before,
                "failed generation changed store"
            );
        }
    }
}

/// The standby (SPEC.md §8.2, §8.3): `replenish_standby`, a replay capacity that fills the
/// current signed prekey (the switch, or `SignedPreKeyFull`), and `rotate_signed_prekey`
/// then `retire_signed_prekey`.
fn exercise_signed_prekeys(store: &mut PreKeyStore) {
    let fx = fixture();
    let before = store.to_bytes();
    let view = store_view(&before);
    let held = view.signed.len() + usize::from(view.standby.is_some());
    match store.replenish_standby(&fx.bob, &mut rng(7)) {
        Ok(false) => {
            assert!(view.standby.is_some());
            assert_eq!(*store.to_bytes(), *before);
        }
        Ok(true) => {
            assert!(view.standby.is_none());
            let after = store_view(&store.to_bytes());
            let standby = after.standby.expect("a standby after replenish_standby");
            assert!(view.signed.iter().all(|(id, _)| *id != standby));
            assert_eq!((after.current, &after.signed), (view.current, &view.signed));
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert!(view.standby.is_none() && held >= MAX_SIGNED_PREKEYS);
            assert_eq!(*store.to_bytes(), *before, "failed replenish changed store");
        }
    }

    // A capacity equal to the current signed prekey's records fills it (if it has any).
    let view = store_view(&store.to_bytes());
    let current_records = view.records(view.current).unwrap().len() as u32;
    let capacity = current_records.clamp(1, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY);
    let expected = (current_records >= capacity).then_some(match view.standby {
        Some(standby) => StoreNotice::SignedPreKeySwitched {
            previous: view.current,
            current: standby,
        },
        None => StoreNotice::SignedPreKeyFull { id: view.current },
    });
    assert_eq!(store.set_replay_capacity(capacity), Ok(expected));
    assert_eq!(store.replay_capacity(), capacity);
    let after = store_view(&store.to_bytes());
    assert_eq!(
        after.signed.len(),
        view.signed.len()
            + usize::from(matches!(
                expected,
                Some(StoreNotice::SignedPreKeySwitched { .. })
            ))
    );
    match expected {
        Some(StoreNotice::SignedPreKeySwitched { current, .. }) => {
            assert_eq!(after.current, current);
            assert_eq!(after.standby, None);
        }
        _ => assert_eq!((after.current, after.standby), (view.current, view.standby)),
    }

    // Rotation: the standby (or a new key) becomes current, a new standby is drawn, the
    // old current stays accepted until retired, which drops its records.
    let before = store.to_bytes();
    let view = store_view(&before);
    let held = view.signed.len() + usize::from(view.standby.is_some());
    match store.rotate_signed_prekey(&fx.bob, &mut rng(8)) {
        Ok(id) => {
            match view.standby {
                Some(standby) => assert_eq!(id, standby),
                None => assert!(id != 0 && view.signed.iter().all(|(i, _)| *i != id)),
            }
            assert_eq!(store.current_signed_prekey().id(), id);
            assert!(store.signed_prekey(view.current).is_some());
            let after = store_view(&store.to_bytes());
            let standby = after.standby.expect("a standby after rotation");
            assert!(standby != id && after.signed.iter().all(|(i, _)| *i != standby));
            assert_eq!(after.signed.len(), view.signed.len() + 1);
            let records = store.replay_records();
            let old = view.records(view.current).unwrap().len();
            assert!(store.retire_signed_prekey(view.current));
            assert!(store.signed_prekey(view.current).is_none());
            assert_eq!(store.replay_records() + old, records);
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            let needed = if view.standby.is_some() { 1 } else { 2 };
            assert!(held + needed > MAX_SIGNED_PREKEYS);
            assert_eq!(*store.to_bytes(), *before, "failed rotation changed store");
        }
    }
}

/// `after_restore` on a copy (SPEC.md §8.2): every prekey replaced (a new current and
/// standby signed prekey, as many one-time prekeys of each kind, a last-resort one if one
/// was current), the replay capacity and the sequence counter carried over, everything old
/// dropped with its records.
fn exercise_after_restore(store: &PreKeyStore) {
    let fx = fixture();
    let bytes = store.to_bytes();
    let old = store_view(&bytes);
    let mut copy = PreKeyStore::from_bytes(&bytes).unwrap();
    let old_pq_one_time = old.pq.iter().filter(|(_, _, k)| *k == 0x01).count();
    let generated = old.one_time.len() + old_pq_one_time + usize::from(old.pq_current.is_some());
    let restored = match copy.after_restore(&fx.bob, &mut rng(9)) {
        Ok(restored) => restored,
        Err(e) => {
            // Only a crafted store whose sequence counter cannot issue as many numbers.
            assert_eq!(e, Error::StoreFull);
            assert!(old.next_sequence.checked_add(generated as u64).is_none());
            assert_eq!(
                *copy.to_bytes(),
                *bytes,
                "a failed after_restore changed the store"
            );
            return;
        }
    };
    let new = store_view(&copy.to_bytes());
    check_store_agrees(&copy, &new);
    assert_eq!(restored.signed_prekey, new.current);
    assert_eq!(new.signed.len(), 1);
    assert!(new.signed[0].1.is_empty(), "records carried over");
    assert!(new.standby.is_some());
    assert_eq!(new.capacity, old.capacity);
    for (id, _) in &old.signed {
        assert!(
            copy.signed_prekey(*id).is_none(),
            "an old signed prekey survived"
        );
    }
    assert_eq!(restored.one_time_prekeys.len(), old.one_time.len());
    assert_eq!(new.one_time_by_age(), restored.one_time_prekeys);
    for (_, id) in &old.one_time {
        assert!(
            copy.one_time_prekey(*id).is_none(),
            "an old one-time prekey survived"
        );
    }
    assert_eq!(restored.pq_one_time_prekeys.len(), old_pq_one_time);
    assert_eq!(
        restored.pq_last_resort_prekey.is_some(),
        old.pq_current.is_some()
    );
    assert_eq!(new.pq_current, restored.pq_last_resort_prekey);
    assert_eq!(new.next_sequence, old.next_sequence + generated as u64);
    // A message naming an old signed prekey is now refused by its signed prekey.
    let probe = &fx.initial[3].wire;
    if let Ok(Message::Initial(m)) = Message::parse(probe) {
        let before = copy.to_bytes();
        assert_eq!(
            copy.accept(&fx.bob, probe).err(),
            Some(Error::UnknownSignedPreKey(m.signed_prekey_id()))
        );
        assert_eq!(*copy.to_bytes(), *before);
    }
    let again = PreKeyStore::from_bytes(&copy.to_bytes()).unwrap();
    assert_eq!(*again.to_bytes(), *copy.to_bytes());
}

/// The post-quantum half of a loaded store (SPEC.md §7.5, §8): its PQXDH bundle names a
/// one-time post-quantum prekey or the current last-resort one; a PQXDH probe is accepted
/// or refused by the store rules; generation and rotation succeed or fail with
/// `StoreFull` without change; the current last-resort prekey cannot be retired.
#[cfg(feature = "pqxdh")]
fn exercise_pq_store(store: &mut PreKeyStore) {
    let fx = fixture();
    let first_pq = store.pq_one_time_prekeys().next().map(PqPreKey::id);
    let current_last_resort = match store.pq_bundle(&fx.bob, None, None) {
        Ok(b) => {
            let id = b.post_quantum_prekey_id().unwrap();
            let k = store.pq_prekey(id).expect("the bundle's key is held");
            assert_eq!(k.kind(), PqPreKeyKind::LastResort);
            assert_eq!(b.to_bytes()[BUNDLE_PQ_KEY], k.public_key()[..]);
            Some(id)
        }
        Err(e) => {
            assert_eq!(e, Error::UnknownPqPreKey(0));
            None
        }
    };
    if let Some(id) = first_pq {
        let b = store.pq_bundle(&fx.bob, None, Some(id)).unwrap();
        assert_eq!(b.post_quantum_prekey_id(), Some(id));
    }
    if let Some(id) = current_last_resort {
        assert!(!store.retire_pq_last_resort_prekey(id));
        assert_eq!(
            store.pq_bundle(&fx.bob, None, Some(id)).err(),
            Some(Error::UnknownPqPreKey(id)),
            "a last-resort prekey published as a one-time one"
        );
    }

    // The last-resort PQXDH probe (no one-time prekey of either kind).
    let probe = fx
        .probes
        .iter()
        .find(|(w, _)| w.get(1) == Some(&TYPE_INITIAL_PQ));
    if let Some((wire, _)) = probe {
        let _ = check_store_accept(store, wire, Expect::Unknown);
    }

    let before = store.to_bytes();
    let count_before = store.pq_one_time_prekeys().count();
    match store.generate_pq_one_time_prekeys(&fx.bob, 1, &mut rng(12)) {
        Ok(fresh) => {
            assert_eq!(fresh.len(), 1);
            let id = fresh[0].id();
            assert_eq!(store.pq_one_time_prekeys().count(), count_before + 1);
            assert_eq!(
                store.pq_prekey(id).map(PqPreKey::kind),
                Some(PqPreKeyKind::OneTime)
            );
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert_eq!(
                *store.to_bytes(),
                *before,
                "failed generation changed store"
            );
        }
    }
    let before = store.to_bytes();
    match store.rotate_pq_last_resort_prekey(&fx.bob, &mut rng(13)) {
        Ok(id) => {
            let b = store.pq_bundle(&fx.bob, None, None).unwrap();
            assert_eq!(b.post_quantum_prekey_id(), Some(id));
            if let Some(old) = current_last_resort {
                assert!(store.retire_pq_last_resort_prekey(old));
                assert!(store.pq_prekey(old).is_none());
            }
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert_eq!(*store.to_bytes(), *before, "failed rotation changed store");
        }
    }
}

// ---------------------------------------------------------------------------------------
// bundle
// ---------------------------------------------------------------------------------------

/// `PreKeyBundle::from_bytes` and `verify`, and `Session::initiate` (classical and
/// header-encrypted) with a fixed Alice on every bundle, classical (`0x10`) or PQXDH
/// (`0x11`): what parses re-encodes to exactly the input; Alice refuses exactly the bundles
/// that do not verify and her own, and a classical one when she requires PQXDH; the
/// session she makes is post-quantum exactly for a PQXDH bundle and sends initial messages
/// naming the bundle's prekeys; and when the bundle is Bob's, Bob accepts (by
/// `Session::respond`, or his prekey store for PQXDH) exactly when its prekeys are his,
/// and his reply decrypts.
pub fn bundle(data: &[u8]) {
    let Some(b) = check_bundle_encoding(data) else {
        return;
    };
    let fx = fixture();
    // The policy is checked before the bundle is otherwise used.
    let required = SessionOptions::new().require_post_quantum();
    if !b.is_post_quantum() {
        let r = Session::initiate_with(&fx.alice, &b, &required, &mut rng(8));
        assert_eq!(r.err(), Some(Error::PostQuantumRequired));
    }
    #[cfg(feature = "pqxdh")]
    if b.is_post_quantum() && b.verify().is_ok() {
        check_pq_signature(&b, data);
    }
    for header_encryption in [false, true] {
        check_initiate(&b, data, header_encryption);
    }
}

/// A verified PQXDH bundle: its post-quantum signature covers exactly `0x0A || ek`
/// (SPEC.md §3.6), so a changed signature fails and a changed post-quantum id does not.
#[cfg(feature = "pqxdh")]
fn check_pq_signature(b: &PreKeyBundle, data: &[u8]) {
    let mut bad_signature = data.to_vec();
    bad_signature[BUNDLE_PQ_SIGNATURE.start] ^= 1;
    let changed = PreKeyBundle::from_bytes(&bad_signature).unwrap();
    assert_eq!(changed.verify(), Err(Error::InvalidSignature));
    let mut other_id = data.to_vec();
    other_id[BUNDLE_PQ_ID.end - 1] ^= 1;
    let changed = PreKeyBundle::from_bytes(&other_id).unwrap();
    assert_eq!(
        changed.post_quantum_prekey_id(),
        b.post_quantum_prekey_id().map(|id| id ^ 1)
    );
    assert_eq!(changed.verify(), Ok(()));
}

fn check_initiate(b: &PreKeyBundle, data: &[u8], header_encryption: bool) {
    let fx = fixture();
    let own = b.identity_key() == fx.alice.public_key();
    let verified = b.verify();
    let initiated = if header_encryption {
        Session::initiate_with(&fx.alice, b, &he_options(), &mut rng(8))
    } else {
        Session::initiate(&fx.alice, b, &mut rng(8))
    };
    let mut a = match (verified, initiated) {
        (Ok(()), Ok(a)) => {
            assert!(!own, "Alice started a session with herself");
            a
        }
        (Ok(()), Err(e)) => {
            assert!(own, "a verified bundle was refused: {e:?}");
            assert_eq!(e, Error::WrongSession);
            return;
        }
        (Err(v), Ok(_)) => panic!("a bundle that does not verify ({v:?}) was used"),
        (Err(v), Err(e)) => {
            assert_eq!(v, Error::InvalidSignature);
            assert_eq!(e, if own { Error::WrongSession } else { v });
            return;
        }
    };
    assert_eq!(a.role(), Role::Initiator);
    assert!(a.awaiting_reply());
    assert_eq!(a.remote_identity(), b.identity_key());
    assert_eq!(a.is_header_encrypted(), header_encryption);
    assert_eq!(a.is_post_quantum(), b.is_post_quantum());
    let wire = a.encrypt(b"hello bundle", &mut rng(9)).unwrap();
    let parsed = Message::parse(&wire).unwrap();
    check_message_layout(&parsed, &wire);
    let Message::Initial(m) = parsed else {
        panic!("the first message is not an initial message");
    };
    assert_eq!(m.identity_key(), fx.alice.public_key());
    assert_eq!(m.signed_prekey_id(), b.signed_prekey_id());
    assert_eq!(m.one_time_prekey_id(), b.one_time_prekey_id());
    assert_eq!(m.session_id(b.identity_key()), a.id());
    assert_eq!(m.is_post_quantum(), b.is_post_quantum());
    #[cfg(feature = "pqxdh")]
    assert_eq!(m.post_quantum_prekey_id(), b.post_quantum_prekey_id());
    assert_eq!(m.is_header_encrypted(), header_encryption);

    if b.identity_key() != fx.bob.public_key() {
        return;
    }
    let spk_id = b.signed_prekey_id();
    let key_at = |range: core::ops::Range<usize>| <[u8; 32]>::try_from(&data[range]).unwrap();
    let spk_matches = bob_spk(spk_id).map(SignedPreKey::public_key) == Some(key_at(BUNDLE_SPK));
    let opk_matches = match b.one_time_prekey_id() {
        None => true,
        Some(id) => bob_opk(id).map(OneTimePreKey::public_key) == Some(key_at(BUNDLE_OPK)),
    };
    // With PQXDH, Bob accepts through his store, which also holds the post-quantum prekeys.
    let (result, pq_matches, pq_unknown) = if let Some(id) = m.post_quantum_prekey_id() {
        // `Session::respond` is classical only.
        let r = Session::respond(&fx.bob, bob_spk, bob_opk, &wire);
        assert_eq!(r.err(), Some(Error::UnknownPqPreKey(id)));
        #[cfg(feature = "pqxdh")]
        let held = fx
            .store
            .pq_prekey(id)
            .map(|k| k.public_key()[..] == data[BUNDLE_PQ_KEY]);
        #[cfg(not(feature = "pqxdh"))]
        let held: Option<bool> = None;
        let pq_matches = held == Some(true);
        let expected = if spk_matches && opk_matches && pq_matches {
            Expect::Accept(b.one_time_prekey_id())
        } else {
            Expect::Refuse
        };
        let r = with_bob_store(|store| check_store_accept(store, &wire, expected));
        (r, pq_matches, held.is_none().then_some(id))
    } else {
        (
            Session::respond(&fx.bob, bob_spk, bob_opk, &wire),
            true,
            None,
        )
    };
    let all_match = spk_matches && opk_matches && pq_matches;
    match result {
        Ok(accepted) => {
            assert!(all_match, "Bob accepted a bundle not his");
            assert_eq!(accepted.plaintext, b"hello bundle");
            assert_eq!(accepted.used_one_time_prekey, b.one_time_prekey_id());
            assert_eq!(
                accepted.used_post_quantum_prekey,
                m.post_quantum_prekey_id()
            );
            let mut s = accepted.session;
            assert_eq!(s.id(), a.id());
            assert_eq!(s.is_header_encrypted(), header_encryption);
            assert_eq!(s.is_post_quantum(), b.is_post_quantum());
            let reply = s.encrypt(b"hi alice", &mut rng(10)).unwrap();
            assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"hi alice");
        }
        Err(e) => {
            assert!(!all_match, "Bob refused his own bundle: {e:?}");
            if bob_spk(spk_id).is_none() {
                assert_eq!(e, Error::UnknownSignedPreKey(spk_id));
            } else if let Some(id) = b.one_time_prekey_id().filter(|id| bob_opk(*id).is_none()) {
                assert_eq!(e, Error::UnknownOneTimePreKey(id));
            } else if let Some(id) = pq_unknown {
                assert_eq!(e, Error::UnknownPqPreKey(id));
            } else {
                assert_eq!(e, Error::DecryptionFailed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// safety_number
// ---------------------------------------------------------------------------------------

/// `SafetyNumber::compare_scanned` of Alice and Bob's safety number on arbitrary scanned
/// bytes (SPEC.md §9.1): never panics; exactly the local byte form is `Match`; any other
/// 66 bytes of version `0x01` and type `0x40` are `Mismatch`; a first byte `v` other than
/// `0x01` is `DifferentVersion(v)` whatever the length; everything else (empty, wrong
/// length or type) is `Malformed`. And when the input's first two 32-byte slices parse as
/// identity keys `a` and `b`, `SafetyNumber::new(a, b) == SafetyNumber::new(b, a)`, and
/// its forms are well made.
pub fn safety_number(data: &[u8]) {
    let local = &fixture().safety_number;
    let local_bytes = local.to_bytes();
    let expected = match data.first() {
        _ if data == local_bytes => ScanResult::Match,
        None => ScanResult::Malformed,
        Some(&v) if v != SAFETY_NUMBER_VERSION => ScanResult::DifferentVersion(v),
        Some(_) if data.len() == SAFETY_NUMBER_LENGTH && data[1] == TYPE_SAFETY_NUMBER => {
            ScanResult::Mismatch
        }
        Some(_) => ScanResult::Malformed,
    };
    assert_eq!(
        local.compare_scanned(data),
        expected,
        "scanned {}",
        hex(data)
    );

    let key = |range: core::ops::Range<usize>| {
        let bytes = <&[u8; 32]>::try_from(data.get(range)?).ok()?;
        IdentityKey::from_bytes(bytes).ok()
    };
    if let (Some(a), Some(b)) = (key(0..32), key(32..64)) {
        check_safety_number_pair(&a, &b);
    }
}

/// The safety number of two identity keys is the same in either order, matches its own
/// byte form, and has the documented forms: 66 bytes `0x01 || 0x40 || ...`, and 12 groups
/// of 5 digits. For Alice and Bob it is the local number.
fn check_safety_number_pair(a: &IdentityKey, b: &IdentityKey) {
    let fx = fixture();
    let ab = SafetyNumber::new(a, b);
    let ba = SafetyNumber::new(b, a);
    assert_eq!(ab, ba, "the safety number depends on the order of the keys");
    let bytes = ab.to_bytes();
    assert_eq!(bytes, ba.to_bytes());
    assert_eq!(bytes[..2], [SAFETY_NUMBER_VERSION, TYPE_SAFETY_NUMBER]);
    assert_eq!(ba.compare_scanned(&bytes), ScanResult::Match);
    let digits = ab.to_digits();
    assert_eq!(digits, ba.to_digits());
    assert_eq!(digits.len(), 12 * 5 + 11);
    assert!(digits
        .split(' ')
        .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    let pair = [fx.alice.public_key(), fx.bob.public_key()];
    if (pair == [a, b] || pair == [b, a]) != (ab == fx.safety_number) {
        panic!("Alice and Bob's number found for other keys, or not for theirs");
    }
}

// ---------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------

/// One seed file: `fuzz/corpus/<target>/seed-<name>`.
pub struct Seed {
    /// The target's name (a key of [`TARGETS`]).
    pub target: &'static str,
    /// The file name after `seed-`.
    pub name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// Encodes operations in the input format of the `session` target, the inverse of
/// [`ops_from_bytes`] (checked by [`seeds`]): `arbitrary` picks an enum variant `i` of `n`
/// from a little-endian `u32` `v` as `(v * n) >> 32`, and reads integers little-endian.
fn ops_to_bytes(ops: &[Op]) -> Vec<u8> {
    fn variant(out: &mut Vec<u8>, i: u64, n: u64) {
        let v = (i << 32).div_ceil(n);
        out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
    }
    fn side(out: &mut Vec<u8>, s: Side) {
        variant(out, s.index() as u64, 2);
    }
    const N: u64 = 13;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::AliceSends { len } => {
                variant(&mut out, 0, N);
                out.push(len);
            }
            Op::BobSends { len } => {
                variant(&mut out, 1, N);
                out.push(len);
            }
            Op::Deliver { idx } => {
                variant(&mut out, 2, N);
                out.push(idx);
            }
            Op::Drop { idx } => {
                variant(&mut out, 3, N);
                out.push(idx);
            }
            Op::Duplicate { idx } => {
                variant(&mut out, 4, N);
                out.push(idx);
            }
            Op::Replay { msg } => {
                variant(&mut out, 5, N);
                out.push(msg);
            }
            Op::Reorder { a, b } => {
                variant(&mut out, 6, N);
                out.extend_from_slice(&[a, b]);
            }
            Op::Truncate { idx, at } => {
                variant(&mut out, 7, N);
                out.push(idx);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::FlipBit { idx, bit } => {
                variant(&mut out, 8, N);
                out.push(idx);
                out.extend_from_slice(&bit.to_le_bytes());
            }
            Op::Splice { a, b, at } => {
                variant(&mut out, 9, N);
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::Reflect { idx } => {
                variant(&mut out, 10, N);
                out.push(idx);
            }
            Op::Reload { side: s, sealed } => {
                variant(&mut out, 11, N);
                side(&mut out, s);
                out.push(u8::from(sealed));
            }
            Op::SetLimits {
                side: s,
                max_skip,
                max_stored,
            } => {
                variant(&mut out, 12, N);
                side(&mut out, s);
                out.extend_from_slice(&[max_skip, max_stored]);
            }
        }
    }
    out
}

fn session_scripts() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    vec![
        (
            "ping-pong",
            vec![
                AliceSends { len: 5 },
                Deliver { idx: 0 },
                BobSends { len: 7 },
                Deliver { idx: 0 },
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                BobSends { len: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "out-of-order",
            vec![
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                Deliver { idx: 2 },
                Duplicate { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 9 },
                BobSends { len: 9 },
                Deliver { idx: 2 },
                AliceSends { len: 1 },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Deliver { idx: 0 },
                Replay { msg: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "first-message-lost",
            vec![
                AliceSends { len: 2 },
                AliceSends { len: 2 },
                Drop { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 6 },
                Deliver { idx: 0 },
                AliceSends { len: 8 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "tamper",
            vec![
                AliceSends { len: 16 },
                Duplicate { idx: 0 },
                FlipBit { idx: 0, bit: 300 },
                Deliver { idx: 0 },
                Truncate { idx: 0, at: 140 },
                Duplicate { idx: 0 },
                Deliver { idx: 1 },
                AliceSends { len: 16 },
                Splice {
                    a: 0,
                    b: 1,
                    at: 130,
                },
                Deliver { idx: 2 },
                Deliver { idx: 1 },
                BobSends { len: 1 },
                Reflect { idx: 1 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "storage-and-limits",
            vec![
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Bob,
                    sealed: true,
                },
                BobSends { len: 3 },
                BobSends { len: 3 },
                BobSends { len: 3 },
                SetLimits {
                    side: Side::Alice,
                    max_skip: 1,
                    max_stored: 1,
                },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Alice,
                    sealed: false,
                },
                SetLimits {
                    side: Side::Bob,
                    max_skip: 255,
                    max_stored: 0,
                },
                Reorder { a: 0, b: 1 },
                Deliver { idx: 0 },
            ],
        ),
    ]
}

/// The seed corpora: small valid inputs for every target, all derived from fixed seeds,
/// so regenerating them gives the same bytes. Panics if an encoding helper of this file
/// disagrees with the crate or with `arbitrary`.
pub fn seeds() -> Vec<Seed> {
    // This file's plaintext encoding agrees with SPEC.md §4.9's examples and bounds.
    for (len, padme) in [(0, 64), (63, 64), (64, 72), (100, 104), (1000, 1024)] {
        assert_eq!(encoded_length(Padding::Padme, len), padme, "Padmé of {len}");
        assert_eq!(encoded_length(Padding::None, len), len + 1);
    }
    // SPEC.md §4.9 with part 2's largest prefix (1247 bytes): 2^20 - 1247 - 16 - 1.
    assert_eq!(MAX_PLAINTEXT_SIZE, 1_047_312);
    for padding in [Padding::Padme, Padding::None] {
        assert_eq!(encoded_length(padding, MAX_PLAINTEXT_SIZE), 1_047_313);
    }
    assert_eq!(
        [
            WIRE_VERSION,
            BUNDLE_VERSION,
            STORAGE_VERSION,
            SAFETY_NUMBER_VERSION
        ],
        [0x02, 0x02, 0x02, 0x01]
    );
    let fx = fixture();
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_string(),
            data,
        });
    };

    // decode_message: each message kind, and bundles. `fx.initial` holds three classical
    // messages with a one-time prekey, one without, two header-encrypted ones, then one
    // without padding; `fx.probes` a classical conversation, then a header-encrypted one,
    // then one without padding.
    add(
        "decode_message",
        "initial-with-opk",
        fx.initial[0].wire.clone(),
    );
    add(
        "decode_message",
        "initial-no-opk",
        fx.initial[3].wire.clone(),
    );
    add("decode_message", "initial-he", fx.initial[4].wire.clone());
    add("decode_message", "normal", fx.probes[1].0.clone());
    add("decode_message", "normal-he", fx.probes[4].0.clone());
    add("decode_message", "bundle", fx.bundle.to_bytes());
    #[cfg(feature = "pqxdh")]
    {
        let pq = |he: bool| fx.initial[genuine_pq(he, true)].wire.clone();
        add("decode_message", "initial-pq", pq(false));
        add("decode_message", "initial-pq-he", pq(true));
        add("decode_message", "bundle-pq", fx.pq.bundle.to_bytes());
    }

    // session: scripts in the target's input format.
    for (name, ops) in session_scripts() {
        let bytes = ops_to_bytes(&ops);
        assert_eq!(
            ops_from_bytes(&bytes),
            ops,
            "ops encoding of {name} is wrong"
        );
        // The first byte is the mode: bit 0 header encryption, bit 1 PQXDH, bit 2 Alice
        // and bit 3 Bob without padding.
        for (mode, prefix) in [
            (0u8, ""),
            (1, "he-"),
            (2, "pq-"),
            (3, "he-pq-"),
            (4, "nopad-alice-"),
            (0b1011, "he-pq-nopad-bob-"),
        ] {
            let data = [&[mode][..], &bytes].concat();
            add("session", &format!("{prefix}{name}"), data);
        }
    }

    // respond: one input per mode.
    let with_mode = |mode: u8, rest: &[u8]| [&[mode][..], rest].concat();
    add("respond", "raw-with-opk", with_mode(0, &fx.initial[0].wire));
    add("respond", "raw-no-opk", with_mode(0, &fx.initial[3].wire));
    add("respond", "raw-he", with_mode(0, &fx.initial[4].wire));
    let unpadded = fx
        .initial
        .iter()
        .position(|g| g.padding == Padding::None)
        .unwrap();
    assert_eq!(unpadded, 6);
    add(
        "respond",
        "raw-unpadded",
        with_mode(0, &fx.initial[unpadded].wire),
    );
    add(
        "respond",
        "field-sealed-header",
        with_mode(2, &[4, 8, 0xff]),
    );
    // The one-time prekey flag (byte 74) of a message that has one, overwritten by 1.
    add(
        "respond",
        "overwrite",
        with_mode(1, &[2, INITIAL_OPK_FLAG as u8, 0, 1]),
    );
    // The id of Bob's second one-time prekey (held, but not the one Alice used).
    let field_opk_id = [&[0u8, 6][..], &fx.opk_ids[1].to_be_bytes()].concat();
    add("respond", "field-opk-id", with_mode(2, &field_opk_id));
    add(
        "respond",
        "bit-flips",
        with_mode(3, &[1, 0x10, 0x02, 0x80, 0x03]),
    );
    // PQXDH: a one-time and a last-resort post-quantum prekey, a sealed header; then the
    // modes on PQXDH messages (picked by index into `fx.initial`).
    #[cfg(feature = "pqxdh")]
    {
        let one_time = genuine_pq(false, true);
        let last_resort = genuine_pq(false, false);
        let sealed = genuine_pq(true, true);
        let pick = |i: usize| u8::try_from(i).unwrap();
        add(
            "respond",
            "raw-pq-one-time",
            with_mode(0, &fx.initial[one_time].wire),
        );
        add(
            "respond",
            "raw-pq-last-resort",
            with_mode(0, &fx.initial[last_resort].wire),
        );
        add(
            "respond",
            "raw-pq-he",
            with_mode(0, &fx.initial[sealed].wire),
        );
        // The id of Bob's first one-time post-quantum prekey on a last-resort message:
        // decapsulation with the wrong key.
        let pq_field_id = [
            &[pick(last_resort), 7][..],
            &fx.pq.one_time_ids[0].to_be_bytes(),
        ]
        .concat();
        add("respond", "pq-field-id", with_mode(2, &pq_field_id));
        add(
            "respond",
            "pq-field-kem",
            with_mode(2, &[pick(one_time), 9, 0xff]),
        );
        add(
            "respond",
            "pq-he-field-sealed-header",
            with_mode(2, &[pick(sealed), 11, 0xff]),
        );
        add(
            "respond",
            "pq-overwrite",
            with_mode(1, &[pick(last_resort), 0x00, 0x04, 0xaa]),
        );
        // Bit 0 of the KEM ciphertext's first byte (91), and a bit in its middle.
        let first_kem_bit = u16::try_from(KEM_CT.start * 8).unwrap().to_le_bytes();
        add(
            "respond",
            "pq-bit-flips",
            with_mode(
                3,
                &[pick(sealed), first_kem_bit[0], first_kem_bit[1], 0x00, 0x24],
            ),
        );
    }

    // load: every stored type, plain and sealed (with the first load context, a few with the
    // empty one).
    let key = &fx.storage_key;
    let [context, empty] = LOAD_CONTEXTS;
    let mut seal_rng = rng(11);
    for (mode, name, state) in fx.states.iter().filter(|(m, _, _)| !m.contains("pq")) {
        let s = Session::from_bytes(state).unwrap();
        if *mode == "nopad-" {
            // Sessions without padding (padding byte 0x00): two states, not sealed.
            assert_eq!(s.padding(), Padding::None);
            if matches!(*name, "alice-awaiting-reply" | "bob-after-ratchet") {
                add("load", &format!("{mode}session-{name}"), state.clone());
            }
            continue;
        }
        add("load", &format!("{mode}session-{name}"), state.clone());
        // Alice's states sealed with the load context, Bob's with the empty one.
        let c = if name.starts_with("alice") {
            context
        } else {
            empty
        };
        add(
            "load",
            &format!("sealed-{mode}session-{name}"),
            key.seal(&s, c, &mut seal_rng).unwrap(),
        );
    }
    add("load", "identity", fx.carol.to_bytes().to_vec());
    add(
        "load",
        "sealed-identity",
        key.seal(&fx.carol, context, &mut seal_rng).unwrap(),
    );
    add("load", "signed-prekey", fx.carol_spk.to_bytes().to_vec());
    add(
        "load",
        "sealed-signed-prekey",
        key.seal(&fx.carol_spk, context, &mut seal_rng).unwrap(),
    );
    add("load", "one-time-prekey", fx.carol_opk.to_bytes().to_vec());
    add(
        "load",
        "sealed-one-time-prekey",
        key.seal(&fx.carol_opk, empty, &mut seal_rng).unwrap(),
    );
    // Bob's classical store: a current and a standby signed prekey, three one-time
    // prekeys (sequence numbers 0..=2), no records.
    add("load", "prekey-store", fx.classical_store_bytes.clone());
    let classical_store = PreKeyStore::from_bytes(&fx.classical_store_bytes).unwrap();
    add(
        "load",
        "sealed-prekey-store",
        key.seal(&classical_store, context, &mut seal_rng).unwrap(),
    );
    // The same without its standby and with replay capacity 1: the `load` target's
    // probe without a one-time prekey fills the current signed prekey
    // (`SignedPreKeyFull`).
    let mut no_standby = without_standby(&fx.classical_store_bytes);
    no_standby[2..6].copy_from_slice(&1u32.to_be_bytes());
    add("load", "prekey-store-no-standby", no_standby);
    // Replay records under two signed prekeys: replay capacity 2, two sessions without a
    // one-time prekey filled the first (the store switched to its standby), a third left a
    // record under the second, a new standby; one-time prekeys generated since.
    let records = store_with_records(&fx.classical_store_bytes);
    add(
        "load",
        "sealed-prekey-store-records",
        key.seal(&records, context, &mut seal_rng).unwrap(),
    );
    add("load", "prekey-store-records", records.to_bytes().to_vec());
    // PQXDH: stored sessions (type 0x25, and 0x28 with the PQXDH flag), a post-quantum
    // prekey (0x26), stores with post-quantum prekeys and replay records (0x24); some
    // sealed. Not every state: PQXDH states awaiting a reply are 1.4 KB.
    #[cfg(feature = "pqxdh")]
    {
        let mut seal_rng = rng(14);
        for (mode, name, state) in &fx.states {
            if !mode.contains("pq") {
                continue;
            }
            let keep = matches!(
                (*mode, *name),
                (
                    "pq-",
                    "alice-awaiting-reply" | "bob-after-reply" | "alice-one-skipped"
                ) | ("he-pq-", "alice-awaiting-reply" | "bob-after-ratchet")
            );
            if keep {
                add("load", &format!("{mode}session-{name}"), state.clone());
            }
            if (*mode, *name) == ("pq-", "bob-after-reply") {
                let s = Session::from_bytes(state).unwrap();
                add(
                    "load",
                    &format!("sealed-{mode}session-{name}"),
                    key.seal(&s, context, &mut seal_rng).unwrap(),
                );
            }
        }
        add("load", "pq-prekey", fx.pq.carol_pq.to_bytes().to_vec());
        add(
            "load",
            "sealed-pq-prekey",
            key.seal(&fx.pq.carol_pq, context, &mut seal_rng).unwrap(),
        );
        add("load", "prekey-store-pq", fx.store_bytes.clone());
        add(
            "load",
            "sealed-prekey-store-pq",
            key.seal(&fx.store, empty, &mut seal_rng).unwrap(),
        );
        add(
            "load",
            "prekey-store-replay-records",
            fx.pq.store_with_records.clone(),
        );
    }

    // bundle: Bob's (with and without a one-time prekey), a third party's, Alice's own,
    // and one with a broken signature.
    add("bundle", "bob", fx.bundle.to_bytes());
    add("bundle", "bob-last-resort", fx.bundle_no_opk.to_bytes());
    add(
        "bundle",
        "carol",
        PreKeyBundle::new(&fx.carol, &fx.carol_spk, Some(&fx.carol_opk)).to_bytes(),
    );
    add(
        "bundle",
        "alice-own",
        PreKeyBundle::new(&fx.alice, &fx.alice_spk, None).to_bytes(),
    );
    let mut forged = fx.bundle.to_bytes();
    forged[BUNDLE_SPK.end] ^= 1;
    add("bundle", "bad-signature", forged);
    // PQXDH bundles: Bob's (one-time and last-resort post-quantum prekey), a third party's,
    // one with a broken post-quantum signature.
    #[cfg(feature = "pqxdh")]
    {
        add("bundle", "bob-pq", fx.pq.bundle.to_bytes());
        add(
            "bundle",
            "bob-pq-last-resort",
            fx.pq.bundle_last_resort.to_bytes(),
        );
        add("bundle", "carol-pq", fx.pq.carol_bundle.to_bytes());
        let mut forged = fx.pq.bundle.to_bytes();
        forged[BUNDLE_PQ_SIGNATURE.start + 3] ^= 1;
        add("bundle", "bob-pq-bad-signature", forged);
    }

    // safety_number: the genuine byte form, one that differs, one of a future version,
    // and Alice's and Bob's identity keys (which the target computes the number of).
    let genuine = fx.safety_number.to_bytes();
    add("safety_number", "genuine", genuine.to_vec());
    let mut mismatch = genuine;
    mismatch[40] ^= 1;
    add("safety_number", "mismatch", mismatch.to_vec());
    let mut future = genuine;
    future[0] = SAFETY_NUMBER_VERSION + 1;
    add("safety_number", "future-version", future.to_vec());
    let keys = [
        fx.alice.public_key().as_bytes(),
        fx.bob.public_key().as_bytes(),
    ]
    .map(|k| &k[..])
    .concat();
    add("safety_number", "keys", keys);
    out
}

/// Bob's classical store (`store_bytes`) with replay records under two signed prekeys:
/// replay capacity 2; two sessions without a one-time prekey fill the current signed
/// prekey, so the store switches to its standby; a new standby; a third session leaves a
/// record under the second; two more one-time prekeys.
fn store_with_records(store_bytes: &[u8]) -> PreKeyStore {
    let fx = fixture();
    let mut store = PreKeyStore::from_bytes(store_bytes).unwrap();
    let mut rng = rng(15);
    assert_eq!(store.set_replay_capacity(2), Ok(None));
    let first = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    let without_opk = store.bundle(&fx.bob, None).unwrap();
    for i in 0..2 {
        let mut a = Session::initiate(&fx.alice, &without_opk, &mut rng).unwrap();
        let m = a.encrypt(b"record", &mut rng).unwrap();
        let notice = store.accept(&fx.bob, &m).unwrap().notice;
        let expected = (i == 1).then_some(StoreNotice::SignedPreKeySwitched {
            previous: first,
            current: standby,
        });
        assert_eq!(notice, expected);
    }
    assert!(store.replenish_standby(&fx.bob, &mut rng).unwrap());
    let second = store.bundle(&fx.bob, None).unwrap();
    let mut a = Session::initiate(&fx.alice, &second, &mut rng).unwrap();
    let m = a.encrypt(b"record", &mut rng).unwrap();
    assert_eq!(store.accept(&fx.bob, &m).unwrap().notice, None);
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    let view = store_view(&store.to_bytes());
    assert_eq!(view.signed.len(), 2);
    assert_eq!(view.records(first).map(<[_]>::len), Some(2));
    assert_eq!(view.records(standby).map(<[_]>::len), Some(1));
    store
}

/// The index in `fixture().initial` of the first genuine PQXDH message with the header
/// encrypted or not, naming a one-time or a last-resort post-quantum prekey.
#[cfg(feature = "pqxdh")]
fn genuine_pq(header_encryption: bool, one_time: bool) -> usize {
    let fx = fixture();
    fx.initial
        .iter()
        .position(|g| {
            let Ok(Message::Initial(m)) = Message::parse(&g.wire) else {
                return false;
            };
            let id = m.post_quantum_prekey_id();
            g.post_quantum
                && g.header_encryption == header_encryption
                && id.is_some()
                && (id == Some(fx.pq.last_resort_id)) != one_time
        })
        .unwrap()
}
