//! The shared fixture: fixed identities, prekeys, genuine messages and session states,
//! made once per process from fixed RNG seeds, and the checks every target uses on a
//! session (`reload_session`, `decrypt_checked`).

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::prelude::*;
use doubleratchet_test_support::device_of;
#[cfg(feature = "pqxdh")]
use doubleratchet_test_support::pq_bundle_of;

/// A genuine initial message from Alice to Bob, with what it encrypts and Alice's session
/// after sending it (so a reply to it can be checked).
pub(crate) struct Genuine {
    pub(crate) header_encryption: bool,
    /// A PQXDH initial message (type `0x03` or `0x06`).
    pub(crate) post_quantum: bool,
    /// Alice's padding policy when she sent it.
    pub(crate) padding: Padding,
    pub(crate) wire: Vec<u8>,
    pub(crate) plaintext: Vec<u8>,
    pub(crate) alice_state: Vec<u8>,
}

/// Everything the targets share; all derived from fixed seeds, so every run and every
/// build sees the same keys.
pub(crate) struct Fixture {
    pub(crate) alice: IdentityKeyPair,
    pub(crate) bob: IdentityKeyPair,
    /// Alice's own signed prekey (only for a bundle of Alice's own, which she must refuse).
    pub(crate) alice_spk: SignedPreKey,
    pub(crate) carol: IdentityKeyPair,
    pub(crate) carol_spk: SignedPreKey,
    pub(crate) carol_opk: OneTimePreKey,
    /// Bob's prekeys: a current and a standby signed prekey and three one-time prekeys;
    /// with PQXDH also two one-time post-quantum prekeys and a last-resort one. Every id is
    /// drawn by the store (random, never 0).
    pub(crate) store: LocalDevice,
    /// Bob's one-time prekey ids in the order generated (sequence numbers 0, 1, 2); his
    /// published bundle names the first.
    pub(crate) opk_ids: Vec<OneTimePreKeyId>,
    /// `store.to_bytes()`: every check that changes a store loads its own copy from this.
    pub(crate) store_bytes: Vec<u8>,
    /// Bob's store before it had post-quantum prekeys (type `0x2A`), for the `load` seeds.
    pub(crate) classical_store_bytes: Vec<u8>,
    /// Bob's published bundle, naming his first one-time prekey.
    pub(crate) bundle: PreKeyBundle,
    /// Bob's last-resort bundle, without a one-time prekey.
    pub(crate) bundle_no_opk: PreKeyBundle,
    pub(crate) storage_key: StorageKey,
    /// Genuine initial messages: four classical sessions of Alice's (with and without a
    /// one-time prekey, then header-encrypted, then without padding); with PQXDH then four
    /// PQXDH ones (one-time and last-resort post-quantum prekey, each with the header in the
    /// clear and encrypted).
    pub(crate) initial: Vec<Genuine>,
    /// Short conversations (classical, then header-encrypted, then both sides without
    /// padding), for the `load` target: messages and their plaintexts.
    pub(crate) probes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Session states from those conversations, for the `load` seeds: mode prefix, name,
    /// encoding.
    pub(crate) states: Vec<(&'static str, &'static str, Vec<u8>)>,
    /// A fresh session of Alice's with Bob's bundle, stored: the `session` target's start
    /// (loading it is cheaper than running X3DH for every input); classical, and
    /// header-encrypted.
    pub(crate) fresh_alice: Vec<u8>,
    pub(crate) fresh_alice_he: Vec<u8>,
    /// The safety number of Alice and Bob (the `safety_number` target's local number).
    pub(crate) safety_number: SafetyNumber,
    #[cfg(feature = "pqxdh")]
    pub(crate) pq: PqFixture,
}

/// The PQXDH part of the fixture.
#[cfg(feature = "pqxdh")]
pub(crate) struct PqFixture {
    /// Bob's one-time post-quantum prekey ids in the order generated, and his last-resort
    /// one's.
    pub(crate) one_time_ids: Vec<PqPreKeyId>,
    pub(crate) last_resort_id: PqPreKeyId,
    /// Bob's PQXDH bundle naming his first one-time prekey and his first one-time
    /// post-quantum prekey.
    pub(crate) bundle: PreKeyBundle,
    /// Bob's PQXDH last-resort bundle: no one-time prekey, the last-resort PQ prekey.
    pub(crate) bundle_last_resort: PreKeyBundle,
    /// Carol's post-quantum prekey and PQXDH bundle (a third party's).
    pub(crate) carol_pq: PqPreKey,
    pub(crate) carol_bundle: PreKeyBundle,
    /// Bob's store after accepting two last-resort sessions: it holds replay records.
    pub(crate) store_with_records: Vec<u8>,
    /// Alice's fresh PQXDH sessions with `bundle`, stored: classical header, encrypted.
    pub(crate) fresh_alice: Vec<u8>,
    pub(crate) fresh_alice_he: Vec<u8>,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

pub(crate) fn make_fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0001);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let alice_spk = SignedPreKey::generate(&alice, SignedPreKeyId::from_u64(1), &mut rng).unwrap();
    let carol_spk = SignedPreKey::generate(&carol, SignedPreKeyId::from_u64(5), &mut rng).unwrap();
    let carol_opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(9), &mut rng).unwrap();
    // Bob's device: a copy of his identity, created at time 0 (the same draws as a store
    // made for that identity before the device owned it).
    let mut store = device_of(&bob, &mut rng).unwrap();
    assert_eq!(store.identity_key(), bob.public_key());
    let generated = store.generate_one_time_prekeys(3, &mut rng).unwrap();
    assert!(generated.evicted.is_empty());
    let opk_ids = generated.created;
    let ordered: Vec<OneTimePreKeyId> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(ordered, opk_ids, "oldest first");
    assert!(opk_ids.iter().all(|id| id.to_u64() != 0));
    let bundle = store.bundle(Some(opk_ids[0])).unwrap();
    let bundle_no_opk = store.bundle(None).unwrap();
    // The byte ranges this file reads a bundle's fields from.
    let encoded = bundle.to_bytes();
    let spk = store.current_signed_prekey();
    assert_eq!(encoded.len(), BUNDLE_LENGTH);
    assert_eq!(encoded[BUNDLE_SPK], *spk.public_key().as_bytes());
    assert_eq!(encoded[BUNDLE_SPK_ID], spk.id().to_u64().to_be_bytes());
    assert_eq!(encoded[BUNDLE_OPK_FLAG], 1);
    assert_eq!(encoded[BUNDLE_OPK_ID], opk_ids[0].to_u64().to_be_bytes());
    let opk = store.one_time_prekey(opk_ids[0]).unwrap();
    assert_eq!(encoded[BUNDLE_OPK], *opk.public_key().as_bytes());
    let classical_store_bytes = store.to_bytes().to_vec();
    assert_eq!(classical_store_bytes[1], TYPE_LOCAL_DEVICE);
    assert_eq!(
        IdentityKeyPair::from_bytes(&classical_store_bytes[DEVICE_IDENTITY])
            .unwrap()
            .public_key(),
        bob.public_key(),
        "the device stores its identity"
    );
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
        let mut a = Session::initiate(&alice, b, &options.padding(padding), &mut rng).unwrap();
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
        let mut a = Session::initiate(&alice, &bundle, &options, &mut rng).unwrap();
        let m1 = a.encrypt(b"hello bob", &mut rng).unwrap();
        states.push((mode, "alice-awaiting-reply", a.to_bytes().to_vec()));
        let accepted = Session::respond(
            &bob,
            |id| store.signed_prekey(id),
            |id| store.one_time_prekey(id),
            &m1,
            &SessionOptions::new(),
        )
        .unwrap();
        let mut b = accepted.session;
        // Bob's options are the default: his padding policy is Padmé until set.
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
    let fresh_alice = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    let fresh_alice_he = Session::initiate(&alice, &bundle, &he_options(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();

    // Everything post-quantum comes from its own RNG, so that the classical fixture is the
    // same with and without the `pqxdh` feature.
    #[cfg(feature = "pqxdh")]
    let pq = make_pq_fixture(
        &alice,
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
pub(crate) fn make_pq_fixture(
    alice: &IdentityKeyPair,
    carol: &IdentityKeyPair,
    carol_spk: &SignedPreKey,
    store: &mut LocalDevice,
    initial: &mut Vec<Genuine>,
    states: &mut Vec<(&'static str, &'static str, Vec<u8>)>,
    probes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> PqFixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0002);
    let generated = store.generate_pq_one_time_prekeys(2, &mut rng).unwrap();
    assert!(generated.evicted.is_empty());
    let one_time_ids = generated.created;
    let ordered: Vec<PqPreKeyId> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
    assert_eq!(ordered, one_time_ids, "oldest first");
    let last_resort_id = store.rotate_pq_last_resort_prekey(0, &mut rng).unwrap();
    assert!(!one_time_ids.contains(&last_resort_id));
    let opk_ids: Vec<OneTimePreKeyId> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    let (opk_id, pq_id) = (opk_ids[0], one_time_ids[0]);
    let bundle = store.pq_bundle(Some(opk_id), Some(pq_id)).unwrap();
    let bundle_last_resort = store.pq_bundle(None, None).unwrap();
    let bundle_he = store
        .pq_bundle(Some(opk_ids[1]), Some(one_time_ids[1]))
        .unwrap();
    // The byte ranges this file reads a PQXDH bundle's and message's fields from.
    assert_eq!(PQ_FIELDS, 8 + KEM_CIPHERTEXT_LENGTH);
    let encoded = bundle.to_bytes();
    assert_eq!(encoded.len(), PQ_BUNDLE_LENGTH);
    assert_eq!(encoded[1], TYPE_BUNDLE_PQ);
    assert_eq!(encoded[BUNDLE_PQ_ID], pq_id.to_u64().to_be_bytes());
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
        let mut a = Session::initiate(alice, b, &options, &mut rng).unwrap();
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
    let mut bob_store = LocalDevice::from_bytes(&store.to_bytes()).unwrap();
    for (mode, options) in [("pq-", SessionOptions::new()), ("he-pq-", he_options())] {
        let mut a = Session::initiate(alice, &bundle_last_resort, &options, &mut rng).unwrap();
        let m1 = a.encrypt(b"hello pq bob", &mut rng).unwrap();
        states.push((mode, "alice-awaiting-reply", a.to_bytes().to_vec()));
        let accepted = bob_store.accept(&m1, &SessionOptions::new()).unwrap();
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

    let carol_pq = PqPreKey::generate(
        carol,
        PqPreKeyId::from_u64(4),
        PqPreKeyKind::OneTime,
        &mut rng,
    )
    .unwrap();
    let carol_bundle = pq_bundle_of(carol, carol_spk, None, &carol_pq);
    let fresh_alice = Session::initiate(alice, &bundle, &SessionOptions::new(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    let fresh_alice_he = Session::initiate(alice, &bundle, &he_options(), &mut rng)
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

/// A copy of Bob's device (his prekey store), to change.
pub(crate) fn bob_store() -> LocalDevice {
    LocalDevice::from_bytes(&fixture().store_bytes).unwrap()
}

thread_local! {
    /// A copy of Bob's store in its fixture state, kept between [`with_bob_store`] calls:
    /// loading one derives every post-quantum key pair from its seed, which dominates the
    /// cost of a `respond` input.
    static BOB_STORE: RefCell<Option<LocalDevice>> = const { RefCell::new(None) };
}

/// Runs `f` on a copy of Bob's store in its fixture state. The copy is kept for the next
/// call only if `f` returns and the store still encodes exactly as the fixture's (every
/// refusal must leave it so), so a call never sees what another changed.
pub(crate) fn with_bob_store<T>(f: impl FnOnce(&mut LocalDevice) -> T) -> T {
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
pub(crate) fn bob_spk(id: SignedPreKeyId) -> Option<&'static SignedPreKey> {
    fixture().store.signed_prekey(id)
}

/// Bob's one-time prekey lookup.
pub(crate) fn bob_opk(id: OneTimePreKeyId) -> Option<&'static OneTimePreKey> {
    fixture().store.one_time_prekey(id)
}

/// The seeded RNG of every fixture and input, and lowercase hex for failure messages: the
/// ones every test of this repository uses.
pub(crate) use doubleratchet_test_support::{hex::encode as hex, rng};

/// The initiator's options for a header-encrypted session.
pub(crate) fn he_options() -> SessionOptions {
    SessionOptions::new().header_encryption()
}

/// Loads `bytes` as a session of the device whose identity key is `local` (a stored
/// session does not hold it, SPEC.md §7.1) and checks it re-encodes to exactly `bytes`.
pub(crate) fn reload_session(bytes: &[u8], local: &IdentityKey) -> Session {
    let s = Session::from_bytes(bytes, local)
        .unwrap_or_else(|e| panic!("a session's own encoding does not load: {e:?}"));
    assert_eq!(*s.to_bytes(), bytes, "session re-encodes differently");
    assert_eq!(s.local_identity(), local);
    s
}

/// Stores `s` and loads it again for its own device ([`reload_session`]).
pub(crate) fn reload(s: &Session) -> Session {
    reload_session(&s.to_bytes(), s.local_identity())
}

/// The identity keys the targets load stored sessions of unknown origin with (arbitrary
/// bytes, a sealed blob): Alice's and Bob's, the devices of every session of the fixture
/// (each is Alice's with Bob or Bob's with Alice).
pub(crate) fn session_locals() -> [&'static IdentityKey; 2] {
    let fx = fixture();
    [fx.alice.public_key(), fx.bob.public_key()]
}

/// The identity key of the device a fixture state belongs to, by its name (`alice-*` or
/// `bob-*`).
pub(crate) fn state_owner(name: &str) -> &'static IdentityKey {
    let fx = fixture();
    if name.starts_with("alice") {
        fx.alice.public_key()
    } else {
        assert!(name.starts_with("bob"), "a state of no one: {name}");
        fx.bob.public_key()
    }
}

/// Loads a stored session of unknown origin for each of [`session_locals`] with `load`
/// (`Session::from_bytes`, or `StorageKey::open_session` of a sealed blob) and returns the
/// first session that loads (Alice's, then Bob's). The local key is not stored, so the two
/// loads agree: both load the same encoding, each with its own local identity, or both
/// fail with the same error, except that a session whose stored remote identity is the
/// local key is `InvalidEncoding` for that key (SPEC.md §7.1). `plain` is the stored form
/// when the caller has it (not sealed): then a disagreement is also checked against its
/// remote identity field.
pub(crate) fn load_fixture_session(
    plain: Option<&[u8]>,
    load: impl Fn(&IdentityKey) -> Result<Session, Error>,
) -> Result<Session, Error> {
    let locals = session_locals();
    let results = locals.map(load);
    // A load for `locals[i]` that is refused because the session is `locals[i]`'s own peer
    // naming itself: `InvalidEncoding`, and the stored remote identity is that key.
    let refused_as_own = |i: usize| {
        assert_eq!(
            results[i].as_ref().err(),
            Some(&Error::InvalidEncoding),
            "the two local keys disagree on a stored session"
        );
        if let Some(bytes) = plain {
            assert_eq!(
                bytes[session_remote_range(bytes)],
                locals[i].as_bytes()[..],
                "InvalidEncoding for one local key only, whose remote identity is another"
            );
        }
    };
    match (&results[0], &results[1]) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                *a.to_bytes(),
                *b.to_bytes(),
                "the local key changed the session"
            );
            assert_ne!(a.remote_identity(), locals[0]);
            assert_ne!(b.remote_identity(), locals[1]);
        }
        (Ok(s), Err(_)) => {
            assert_eq!(s.remote_identity(), locals[1]);
            refused_as_own(1);
        }
        (Err(_), Ok(s)) => {
            assert_eq!(s.remote_identity(), locals[0]);
            refused_as_own(0);
        }
        (Err(a), Err(b)) if a == b => {}
        (Err(_), Err(_)) => {
            // One key is the stored remote identity (refused as soon as it is read), the
            // other fails later.
            let own = if results[0].as_ref().err() == Some(&Error::InvalidEncoding) {
                0
            } else {
                1
            };
            refused_as_own(own);
        }
    }
    for (result, local) in results.iter().zip(locals) {
        if let Ok(s) = result {
            assert_eq!(s.local_identity(), local);
        }
    }
    let [alice, bob] = results;
    alice.or(bob)
}

/// Whether a stored session of unknown origin loads for either of [`session_locals`].
pub(crate) fn loads_as_session(bytes: &[u8]) -> bool {
    session_locals()
        .iter()
        .any(|local| Session::from_bytes(bytes, local).is_ok())
}

/// Whether a sealed blob opens as a session (`StorageKey::open_session`) for either of
/// [`session_locals`].
pub(crate) fn opens_as_session(blob: &[u8], context: &[u8]) -> bool {
    let key = &fixture().storage_key;
    session_locals()
        .iter()
        .any(|local| key.open_session(blob, context, local).is_ok())
}

/// Decodes a stateful target's input into at most `max` operations with `arbitrary`,
/// stopping at the first that does not decode.
pub(crate) fn decode_ops<T: for<'a> Arbitrary<'a>>(data: &[u8], max: usize) -> Vec<T> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < max && !u.is_empty() {
        match T::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// A fresh copy of the session `bytes` encode (a prepared fixture state) for the device
/// whose identity key is `local`, as [`reload_session`] gives. Under `--cfg fuzzing`
/// (cargo-fuzz's builds, where `Session` is `Clone`) each encoding is loaded and checked
/// once per process, at most [`MAX_PREPARED`] of them, and then cloned: a load costs an
/// X25519 base-point multiplication and identity-key decompressions, a clone a few copies.
pub(crate) fn copy_session(bytes: &[u8], local: &IdentityKey) -> Session {
    #[cfg(fuzzing)]
    {
        use std::collections::HashMap;
        thread_local! {
            static PREPARED: RefCell<HashMap<Vec<u8>, Session>> = RefCell::new(HashMap::new());
        }
        // Each prepared encoding is one device's: a copy for another device is loaded.
        let prepared = PREPARED.with(|p| {
            p.borrow()
                .get(bytes)
                .filter(|s| s.local_identity() == local)
                .cloned()
        });
        if let Some(s) = prepared {
            return s;
        }
        let s = reload_session(bytes, local);
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_PREPARED && !p.contains_key(bytes) {
                p.insert(bytes.to_vec(), s.clone());
            }
        });
        s
    }
    #[cfg(not(fuzzing))]
    reload_session(bytes, local)
}

/// The most encodings [`copy_session`] keeps loaded.
#[cfg(fuzzing)]
const MAX_PREPARED: usize = 8192;

/// Decrypts `message`; on error, checks the session is unchanged.
pub(crate) fn decrypt_checked(s: &mut Session, message: &[u8]) -> Result<Vec<u8>, Error> {
    // Under cargo-fuzz a copy is cheaper than an encoding, and only a rejection needs one
    // encoded; elsewhere the encoding is the copy.
    #[cfg(fuzzing)]
    let before = s.clone();
    #[cfg(not(fuzzing))]
    let before = s.to_bytes();
    let result = s.decrypt(message);
    if let Err(e) = &result {
        #[cfg(fuzzing)]
        let before = before.to_bytes();
        assert_eq!(
            *s.to_bytes(),
            *before,
            "a rejected message ({e:?}) changed the session: {}",
            hex(message)
        );
    }
    result
}
