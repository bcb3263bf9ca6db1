//! PQXDH (SPEC.md §3.6, §5.3, §5.4, §7, §8): sessions over ML-KEM-768 prekeys, the
//! require-post-quantum policy, signature and key checks, one-time and last-resort
//! post-quantum prekeys with replay protection, persistence, and message sizes.
#![cfg(feature = "pqxdh")]

use doubleratchet::PqPreKeyId;
use doubleratchet::{
    Accepted, Error, IdentityKeyPair, Limits, LocalDevice, Message, Padding, PqPreKey,
    PqPreKeyKind, PqPreKeyPublic, PreKeyBundle, Session, SessionOptions, StorageKey, StoreNotice,
    BUNDLE_LENGTH, BUNDLE_VERSION, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, PQ_BUNDLE_LENGTH,
    STORAGE_VERSION, WIRE_VERSION,
};
use doubleratchet_test_support::device_of;
use doubleratchet_test_support::storage::{
    STATE_AWAITING_REPLY, STATE_RECEIVING_CHAIN, STATE_SENDING_CHAIN,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

struct Bob {
    identity: IdentityKeyPair,
    store: LocalDevice,
}

fn bob(rng: &mut ChaCha20Rng) -> Bob {
    let identity = IdentityKeyPair::generate(rng).unwrap();
    let mut store = device_of(&identity, rng).unwrap();
    store.generate_one_time_prekeys(3, rng).unwrap();
    store.generate_pq_one_time_prekeys(2, rng).unwrap();
    store.rotate_pq_last_resort_prekey(0, rng).unwrap();
    Bob { identity, store }
}

fn first_pq_one_time(b: &Bob) -> PqPreKeyId {
    b.store.pq_one_time_prekeys().next().unwrap().id()
}

fn round_trips(a: &mut Session, b: &mut Session, rng: &mut ChaCha20Rng, rounds: usize) {
    for i in 0..rounds {
        let m = b.encrypt(format!("b{i}").as_bytes(), rng).unwrap();
        assert_eq!(a.decrypt(&m).unwrap(), format!("b{i}").as_bytes());
        let m = a.encrypt(format!("a{i}").as_bytes(), rng).unwrap();
        assert_eq!(b.decrypt(&m).unwrap(), format!("a{i}").as_bytes());
    }
}

#[test]
fn pqxdh_session_with_one_time_keys() {
    let mut rng = ChaCha20Rng::seed_from_u64(700);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let opk = b.store.one_time_prekeys().next().unwrap().id();
    let pq = first_pq_one_time(&b);
    let bundle = b.store.pq_bundle(Some(opk), Some(pq)).unwrap();
    let encoded = bundle.to_bytes();
    assert_eq!(encoded.len(), PQ_BUNDLE_LENGTH);
    assert_eq!(encoded[0], BUNDLE_VERSION);
    assert_eq!(encoded[1], 0x11);
    let bundle = PreKeyBundle::from_bytes(&encoded).unwrap();
    assert!(bundle.is_post_quantum());
    assert_eq!(bundle.post_quantum_prekey_id(), Some(pq));

    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    assert!(a.is_post_quantum());
    let lost = a.encrypt(b"first (lost for a while)", &mut rng).unwrap();
    let second = a.encrypt(b"second", &mut rng).unwrap();
    assert_eq!(second[0], WIRE_VERSION);
    assert_eq!(second[1], 0x03);
    // The 1219-byte framing, the plaintext padded to Padmé's 64-byte minimum, the tag.
    assert_eq!(second.len(), 1219 + 64 + 16);
    let Message::Initial(parsed) = Message::parse(&second).unwrap() else {
        panic!("expected an initial message")
    };
    assert!(parsed.is_post_quantum());
    assert_eq!(parsed.post_quantum_prekey_id(), Some(pq));
    assert_eq!(
        Message::parse(&second).unwrap().ciphertext_len(),
        second.len() - 1219
    );

    let accepted = b.store.accept(&second, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.plaintext, b"second");
    assert_eq!(accepted.used_one_time_prekey, Some(opk));
    assert_eq!(accepted.used_post_quantum_prekey, Some(pq));
    assert!(
        b.store.pq_prekey(pq).is_none(),
        "one-time PQ prekey deleted"
    );
    assert_eq!(b.store.replay_records(), 0);
    let mut s = accepted.session;
    assert!(s.is_post_quantum());
    assert_eq!(s.id(), a.id());
    // The lost first message is routed to the existing session and decrypts there.
    assert_eq!(s.decrypt(&lost).unwrap(), b"first (lost for a while)");
    // A replay to the store fails: both one-time prekeys are gone.
    assert_eq!(
        b.store.accept(&second, &SessionOptions::new()).unwrap_err(),
        Error::UnknownOneTimePreKey(opk)
    );
    round_trips(&mut a, &mut s, &mut rng, 5);
    assert!(!a.awaiting_reply());
}

#[test]
fn last_resort_replay_is_refused_and_records_are_bounded_by_rotation() {
    let mut rng = ChaCha20Rng::seed_from_u64(701);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    // No classical one-time prekey, and the last-resort PQ prekey.
    let bundle = b.store.pq_bundle(None, None).unwrap();
    let last_resort = bundle.post_quantum_prekey_id().unwrap();
    assert_eq!(
        b.store.pq_prekey(last_resort).unwrap().kind(),
        PqPreKeyKind::LastResort
    );
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let first = a.encrypt(b"hello", &mut rng).unwrap();
    let accepted = b.store.accept(&first, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.used_post_quantum_prekey, Some(last_resort));
    assert!(
        b.store.pq_prekey(last_resort).is_some(),
        "last-resort key kept"
    );
    assert_eq!(b.store.replay_records(), 1);

    // The same initial message again: refused, and the store is unchanged.
    let before = b.store.to_bytes();
    assert_eq!(
        b.store.accept(&first, &SessionOptions::new()).unwrap_err(),
        Error::DuplicateOrExpired
    );
    assert_eq!(*b.store.to_bytes(), *before);
    // A later initial message of the same session: also refused by the store (it belongs
    // to the existing session, which decrypts it).
    let again = a.encrypt(b"again", &mut rng).unwrap();
    assert_eq!(
        b.store.accept(&again, &SessionOptions::new()).unwrap_err(),
        Error::DuplicateOrExpired
    );
    let mut s = accepted.session;
    assert_eq!(s.decrypt(&again).unwrap(), b"again");

    // A second, independent session on the same last-resort key is fine.
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut c = Session::initiate(&carol, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let from_carol = c.encrypt(b"hi from carol", &mut rng).unwrap();
    let _accepted = b.store.accept(&from_carol, &SessionOptions::new()).unwrap();
    assert_eq!(b.store.replay_records(), 2);

    // Both records are held by the signed prekey the messages named, not by the
    // last-resort post-quantum prekey.
    let signed = bundle.signed_prekey_id();
    assert_eq!(b.store.current_signed_prekey().id(), signed);

    // Rotating and retiring the last-resort key drops no record (records belong to signed
    // prekeys); a replay of an old message then names a key that no longer exists.
    let new_last_resort = b.store.rotate_pq_last_resort_prekey(0, &mut rng).unwrap();
    assert_ne!(new_last_resort, last_resort);
    assert!(b.store.retire_pq_last_resort_prekey(last_resort));
    assert!(
        !b.store.retire_pq_last_resort_prekey(new_last_resort),
        "current one stays"
    );
    assert_eq!(b.store.replay_records(), 2);
    let before = b.store.to_bytes();
    assert_eq!(
        b.store.accept(&first, &SessionOptions::new()).unwrap_err(),
        Error::UnknownPqPreKey(last_resort)
    );
    assert_eq!(*b.store.to_bytes(), *before);

    // Rotating and retiring the signed prekey drops its records; the replay then names a
    // signed prekey that no longer exists (checked first).
    b.store.rotate_signed_prekey(0, &mut rng).unwrap();
    assert!(b.store.retire_signed_prekey(signed));
    assert_eq!(b.store.replay_records(), 0);
    for replay in [&first, &from_carol] {
        assert_eq!(
            b.store.accept(replay, &SessionOptions::new()).unwrap_err(),
            Error::UnknownSignedPreKey(signed)
        );
    }
}

/// A new initiator's first message on `bundle`, and what Bob's store made of it.
fn offer(
    b: &mut Bob,
    bundle: &PreKeyBundle,
    rng: &mut ChaCha20Rng,
) -> (Vec<u8>, Result<Accepted, Error>) {
    let initiator = IdentityKeyPair::generate(rng).unwrap();
    let mut a = Session::initiate(&initiator, bundle, &SessionOptions::new(), rng).unwrap();
    let m = a.encrypt(b"hi", rng).unwrap();
    let result = b.store.accept(&m, &SessionOptions::new());
    (m, result)
}

/// Replay records are bounded per signed prekey (SPEC.md §8.3): sessions on the last-resort
/// post-quantum prekey record their base key under the signed prekey they named; when the
/// current one carries `replay_capacity` records the store switches to its standby and
/// says so, refuses further record-making sessions on the full one (those consuming a
/// one-time prekey still pass), and without a standby asks for a rotation.
#[test]
fn last_resort_records_fill_the_signed_prekey_and_switch_to_the_standby() {
    let mut rng = ChaCha20Rng::seed_from_u64(709);
    let mut b = bob(&mut rng);
    assert_eq!(
        b.store.replay_capacity(),
        MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY
    );
    let before = b.store.to_bytes();
    for bad in [0, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY + 1] {
        assert_eq!(b.store.set_replay_capacity(bad), Err(Error::InvalidLimits));
    }
    assert_eq!(*b.store.to_bytes(), *before);
    assert_eq!(b.store.set_replay_capacity(2), Ok(None));
    assert_eq!(b.store.replay_capacity(), 2);

    let first_spk = b.store.current_signed_prekey().id();
    let standby = b.store.standby_signed_prekey().unwrap().id();
    assert_ne!(first_spk, standby);
    let last_resort = b.store.pq_bundle(None, None).unwrap();
    let one_time = b
        .store
        .pq_bundle(None, Some(first_pq_one_time(&b)))
        .unwrap();
    assert_eq!(last_resort.signed_prekey_id(), first_spk);
    assert_eq!(one_time.signed_prekey_id(), first_spk);

    // Two sessions on the last-resort key fill the signed prekey: the second switches.
    let (m1, accepted) = offer(&mut b, &last_resort, &mut rng);
    assert_eq!(accepted.unwrap().notice, None);
    assert_eq!(b.store.replay_records(), 1);
    let (m2, accepted) = offer(&mut b, &last_resort, &mut rng);
    assert_eq!(
        accepted.unwrap().notice,
        Some(StoreNotice::SignedPreKeySwitched {
            previous: first_spk,
            current: standby,
        })
    );
    assert_eq!(b.store.replay_records(), 2);
    assert_eq!(b.store.current_signed_prekey().id(), standby);
    assert!(b.store.standby_signed_prekey().is_none());
    assert!(b.store.signed_prekey(first_spk).is_some(), "still accepted");

    // The full signed prekey: a replay is a replay, a new record-making session is
    // StoreFull; neither changes the store.
    let before = b.store.to_bytes();
    for replay in [&m1, &m2] {
        assert_eq!(
            b.store.accept(replay, &SessionOptions::new()).unwrap_err(),
            Error::DuplicateOrExpired
        );
    }
    let (_, refused) = offer(&mut b, &last_resort, &mut rng);
    assert_eq!(refused.unwrap_err(), Error::StoreFull);
    assert_eq!(*b.store.to_bytes(), *before);
    // A session that consumes a one-time post-quantum prekey makes no record: accepted.
    let (_, accepted) = offer(&mut b, &one_time, &mut rng);
    let accepted = accepted.unwrap();
    assert_eq!(accepted.notice, None);
    assert_eq!(
        accepted.used_post_quantum_prekey,
        one_time.post_quantum_prekey_id()
    );
    assert_eq!(b.store.replay_records(), 2);

    // The new current signed prekey, without a standby: filling it asks for a rotation.
    let current = b.store.pq_bundle(None, None).unwrap();
    assert_eq!(current.signed_prekey_id(), standby);
    assert_eq!(offer(&mut b, &current, &mut rng).1.unwrap().notice, None);
    assert_eq!(
        offer(&mut b, &current, &mut rng).1.unwrap().notice,
        Some(StoreNotice::SignedPreKeyFull { id: standby })
    );
    assert_eq!(b.store.current_signed_prekey().id(), standby);
    assert_eq!(b.store.replay_records(), 4);
    assert_eq!(
        offer(&mut b, &current, &mut rng).1.unwrap_err(),
        Error::StoreFull
    );

    // Rotating (no standby: a new key is drawn, then a new standby) lets sessions in again.
    let rotated = b.store.rotate_signed_prekey(0, &mut rng).unwrap();
    assert!(rotated != first_spk && rotated != standby);
    let next_standby = b.store.standby_signed_prekey().unwrap().id();
    assert!(![first_spk, standby, rotated].contains(&next_standby));
    let fresh = b.store.pq_bundle(None, None).unwrap();
    assert_eq!(offer(&mut b, &fresh, &mut rng).1.unwrap().notice, None);
    assert_eq!(b.store.replay_records(), 5);

    // The capacity and the records survive storage.
    let stored = b.store.to_bytes();
    let reloaded = LocalDevice::from_bytes(&stored).unwrap();
    assert_eq!(reloaded.replay_capacity(), 2);
    assert_eq!(reloaded.replay_records(), 5);
    assert_eq!(*reloaded.to_bytes(), *stored);

    // Retiring the full signed prekeys drops their records.
    assert!(b.store.retire_signed_prekey(first_spk));
    assert!(b.store.retire_signed_prekey(standby));
    assert_eq!(b.store.replay_records(), 1);
    assert_eq!(
        b.store.accept(&m1, &SessionOptions::new()).unwrap_err(),
        Error::UnknownSignedPreKey(first_spk)
    );
}

#[test]
fn classical_bundle_without_one_time_prekey_is_replay_protected_too() {
    let mut rng = ChaCha20Rng::seed_from_u64(702);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let bundle = b.store.bundle(None).unwrap();
    assert_eq!(bundle.to_bytes().len(), BUNDLE_LENGTH);
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    assert!(!a.is_post_quantum());
    let first = a.encrypt(b"x", &mut rng).unwrap();
    let _accepted = b.store.accept(&first, &SessionOptions::new()).unwrap();
    assert_eq!(
        b.store.accept(&first, &SessionOptions::new()).unwrap_err(),
        Error::DuplicateOrExpired
    );
    // Retiring the signed prekey drops the record; the replay then names a retired key.
    let old = bundle.signed_prekey_id();
    b.store.rotate_signed_prekey(0, &mut rng).unwrap();
    assert!(b.store.retire_signed_prekey(old));
    assert_eq!(b.store.replay_records(), 0);
    assert_eq!(
        b.store.accept(&first, &SessionOptions::new()).unwrap_err(),
        Error::UnknownSignedPreKey(old)
    );
}

#[test]
fn require_post_quantum_policy() {
    let mut rng = ChaCha20Rng::seed_from_u64(703);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let strict = SessionOptions::new().require_post_quantum();
    let classical = b.store.bundle(None).unwrap();
    assert_eq!(
        Session::initiate(&alice, &classical, &strict, &mut rng).unwrap_err(),
        Error::PostQuantumRequired
    );
    let pq = b.store.pq_bundle(None, None).unwrap();
    assert!(Session::initiate(&alice, &pq, &strict, &mut rng)
        .unwrap()
        .is_post_quantum());

    // Responder side: a classical initial message is refused before any key is touched.
    let mut a = Session::initiate(&alice, &classical, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"classical", &mut rng).unwrap();
    let before = b.store.to_bytes();
    assert_eq!(
        b.store.accept(&m, &strict).unwrap_err(),
        Error::PostQuantumRequired
    );
    assert_eq!(*b.store.to_bytes(), *before);
    // Without the policy it is accepted.
    assert!(!b
        .store
        .accept(&m, &SessionOptions::new())
        .unwrap()
        .session
        .is_post_quantum());
}

#[test]
fn pq_bundle_signature_and_key_checks() {
    let mut rng = ChaCha20Rng::seed_from_u64(704);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let b = bob(&mut rng);
    let bundle = b
        .store
        .pq_bundle(None, Some(first_pq_one_time(&b)))
        .unwrap()
        .to_bytes();
    // A flipped bit in the PQ signature, and in the KEM key (signature no longer matches).
    // PQ_BUNDLE_LENGTH = 179 (the classical bundle) + PQPK id (8) + ek (1184) + sig (64).
    assert_eq!(bundle.len(), 1435);
    for offset in [1371, 1371 + 63, 187, 187 + 600] {
        let mut forged = bundle.clone();
        forged[offset] ^= 0x01;
        match PreKeyBundle::from_bytes(&forged) {
            Ok(parsed) => {
                assert_eq!(
                    parsed.verify(),
                    Err(Error::InvalidSignature),
                    "offset {offset}"
                );
                assert_eq!(
                    Session::initiate(&alice, &parsed, &SessionOptions::new(), &mut rng)
                        .unwrap_err(),
                    Error::InvalidSignature
                );
            }
            // A flip that breaks the FIPS 203 modulus check is caught when parsing.
            Err(e) => assert_eq!(e, Error::InvalidPublicKey, "offset {offset}"),
        }
    }
    // A KEM key with coefficients >= q is rejected when parsing.
    let mut bad_key = bundle.clone();
    bad_key[187..187 + 1152].fill(0xFF);
    assert_eq!(
        PreKeyBundle::from_bytes(&bad_key).unwrap_err(),
        Error::InvalidPublicKey
    );
    // A validly signed PQ key, but signed by a different identity: the bundle's identity
    // does not match the signer. Assembling such a bundle from public parts is refused...
    let mallory = IdentityKeyPair::generate(&mut rng).unwrap();
    let foreign = PqPreKey::generate(
        &mallory,
        PqPreKeyId::from_u64(99),
        PqPreKeyKind::OneTime,
        &mut rng,
    )
    .unwrap();
    let foreign = PqPreKeyPublic::one_time(&foreign).unwrap();
    assert_eq!(
        b.store
            .bundle(None)
            .unwrap()
            .with_post_quantum(&foreign)
            .err(),
        Some(Error::InvalidSignature)
    );
    // ...and one spliced in the bytes (Bob's bundle with Mallory's id, key and signature
    // in place of his PQ prekey's) parses, but neither verifies nor starts a session.
    let mut spliced = bundle.clone();
    spliced[179..187].copy_from_slice(&99u64.to_be_bytes());
    spliced[187..1371].copy_from_slice(foreign.public_key());
    spliced[1371..].copy_from_slice(&foreign.signature());
    let spliced = PreKeyBundle::from_bytes(&spliced).unwrap();
    assert_eq!(spliced.post_quantum_prekey_id(), Some(foreign.id()));
    assert_eq!(spliced.verify(), Err(Error::InvalidSignature));
    assert_eq!(
        Session::initiate(&alice, &spliced, &SessionOptions::new(), &mut rng).unwrap_err(),
        Error::InvalidSignature
    );
    // Every truncation and an extension are rejected.
    for len in 0..bundle.len() {
        assert!(
            PreKeyBundle::from_bytes(&bundle[..len]).is_err(),
            "len {len}"
        );
    }
    let mut longer = bundle.clone();
    longer.push(0);
    assert_eq!(
        PreKeyBundle::from_bytes(&longer).unwrap_err(),
        Error::TrailingData
    );
}

#[test]
fn tampered_kem_ciphertext_fails_without_creating_anything() {
    let mut rng = ChaCha20Rng::seed_from_u64(705);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let bundle = b
        .store
        .pq_bundle(None, Some(first_pq_one_time(&b)))
        .unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"pq", &mut rng).unwrap();
    let before = b.store.to_bytes();
    // The KEM ciphertext follows the X3DH fields (2 + 81 bytes) and the PQPK id (8):
    // bytes 91..1179. Its first, a middle and its last byte.
    for offset in [91, 500, 1178] {
        let mut tampered = m.clone();
        tampered[offset] ^= 0x40;
        assert_eq!(
            b.store
                .accept(&tampered, &SessionOptions::new())
                .unwrap_err(),
            Error::DecryptionFailed
        );
        assert_eq!(*b.store.to_bytes(), *before);
    }
    // `Session::respond` has no post-quantum prekey lookup: it refuses PQXDH messages.
    assert_eq!(
        Session::respond(&b.identity, |_| None, |_| None, &m, &SessionOptions::new()).unwrap_err(),
        Error::UnknownPqPreKey(bundle.post_quantum_prekey_id().unwrap())
    );
    // A classical session never accepts a PQXDH initial message, and vice versa.
    let classical = b.store.bundle(None).unwrap();
    let mut c = Session::initiate(&alice, &classical, &SessionOptions::new(), &mut rng).unwrap();
    let cm = c.encrypt(b"c", &mut rng).unwrap();
    let mut cs = b.store.accept(&cm, &SessionOptions::new()).unwrap().session;
    assert_eq!(cs.decrypt(&m).unwrap_err(), Error::WrongSession);
}

#[test]
fn persistence_of_pq_state() {
    let mut rng = ChaCha20Rng::seed_from_u64(706);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let bundle = b
        .store
        .pq_bundle(None, Some(first_pq_one_time(&b)))
        .unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let m1 = a.encrypt(b"one", &mut rng).unwrap();

    // The initiator awaiting its reply: type 0x25, its sending chain and pending fields (the
    // signed prekey id; no one-time prekey in this bundle; the PQ prekey id and the KEM
    // ciphertext): 188 + 32 + 8 + 8 + 1088 = 1324 bytes (1332 with a one-time prekey),
    // and it still sends the same KEM ciphertext after a reload.
    let saved = a.to_bytes();
    assert_eq!(saved[0], STORAGE_VERSION);
    assert_eq!(saved[1], 0x25);
    assert_eq!(saved[2], STATE_AWAITING_REPLY | STATE_SENDING_CHAIN);
    assert_eq!(saved.len(), 1324);
    let mut reloaded = Session::from_bytes(&saved, alice.public_key()).unwrap();
    assert_eq!(*reloaded.to_bytes(), *saved);
    let m2 = reloaded.encrypt(b"two", &mut rng).unwrap();
    assert_eq!(m1[..1179], m2[..1179]);
    for len in 0..saved.len() {
        assert!(
            Session::from_bytes(&saved[..len], alice.public_key()).is_err(),
            "len {len}"
        );
    }

    // The store with PQ keys and a replay record (a session on the last-resort key): type
    // 0x2A (0x24 and 0x27 are retired), round trip, every truncation.
    let accepted = b.store.accept(&m2, &SessionOptions::new()).unwrap();
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let last_resort = b.store.pq_bundle(None, None).unwrap();
    let mut c = Session::initiate(&carol, &last_resort, &SessionOptions::new(), &mut rng).unwrap();
    let _accepted = b
        .store
        .accept(&c.encrypt(b"c", &mut rng).unwrap(), &SessionOptions::new())
        .unwrap();
    assert_eq!(b.store.replay_records(), 1);
    let store_bytes = b.store.to_bytes();
    assert_eq!(store_bytes[0], STORAGE_VERSION);
    assert_eq!(store_bytes[1], 0x2A);
    let store = LocalDevice::from_bytes(&store_bytes).unwrap();
    assert_eq!(*store.to_bytes(), *store_bytes);
    for len in (0..store_bytes.len()).step_by(7) {
        assert!(
            LocalDevice::from_bytes(&store_bytes[..len]).is_err(),
            "len {len}"
        );
    }

    // The responder's PQ session round trips too, and keeps working.
    let mut s = accepted.session;
    let saved_s = s.to_bytes();
    assert_eq!(saved_s[1], 0x25);
    s = Session::from_bytes(&saved_s, b.identity.public_key()).unwrap();
    assert_eq!(s.decrypt(&m1).unwrap(), b"one");
    round_trips(&mut reloaded, &mut s, &mut rng, 3);
    let replied = reloaded.to_bytes();
    assert_eq!(replied[2], STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN);
    assert_eq!(replied.len(), 252, "no KEM ciphertext once replied");

    // A single PQ prekey, stored and sealed.
    let key = PqPreKey::generate(
        &b.identity,
        PqPreKeyId::from_u64(5),
        PqPreKeyKind::LastResort,
        &mut rng,
    )
    .unwrap();
    let bytes = key.to_bytes();
    // Version, type, id (8), kind, seed (64), signature (64).
    assert_eq!(bytes.len(), 139);
    assert_eq!(bytes[0], STORAGE_VERSION);
    let back = PqPreKey::from_bytes(&bytes).unwrap();
    assert_eq!(back.public_key(), key.public_key());
    assert_eq!(back.kind(), PqPreKeyKind::LastResort);
    let mut bad_kind = bytes.to_vec();
    assert_eq!(bytes[2..10], 5u64.to_be_bytes());
    assert_eq!(bytes[10], 0x02, "last-resort kind");
    bad_kind[10] = 3;
    assert_eq!(
        PqPreKey::from_bytes(&bad_kind).unwrap_err(),
        Error::InvalidEncoding
    );
    let storage = StorageKey::generate(&mut rng).unwrap();
    let context = b"bob/pq-prekey/5";
    let sealed = storage.seal(&key, context, &mut rng).unwrap();
    let opened: PqPreKey = storage.open(&sealed, context).unwrap();
    assert_eq!(opened.public_key(), key.public_key());
    assert_eq!(
        storage
            .open_session(&sealed, context, b.identity.public_key())
            .unwrap_err(),
        Error::UnexpectedType(0x26)
    );
    // Another row's context does not open it.
    assert_eq!(
        storage
            .open::<PqPreKey>(&sealed, b"bob/pq-prekey/6")
            .unwrap_err(),
        Error::DecryptionFailed
    );
}

/// Sizes of initial messages under both padding policies, for a 64-byte plaintext (L = 65:
/// Padmé's bucket is 72 bytes, `Padding::None` adds only the end marker); prints the sizes
/// the closing note reports (run with `--nocapture`).
#[test]
fn message_sizes() {
    let mut rng = ChaCha20Rng::seed_from_u64(707);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let b = bob(&mut rng);
    let opk = b.store.one_time_prekeys().next().unwrap().id();
    let classical = b.store.bundle(Some(opk)).unwrap();
    let pq = b
        .store
        .pq_bundle(Some(opk), Some(first_pq_one_time(&b)))
        .unwrap();
    // Prekey ids are 8 bytes: 179 and 1435 bytes.
    assert_eq!(classical.to_bytes().len(), 179);
    assert_eq!(pq.to_bytes().len(), 1435);
    let mut sizes = Vec::new();
    for (padding, encoded) in [(Padding::Padme, 72), (Padding::None, 65)] {
        let options = SessionOptions::new().padding(padding);
        let mut x = Session::initiate(&alice, &classical, &options, &mut rng).unwrap();
        let mut p = Session::initiate(&alice, &pq, &options, &mut rng).unwrap();
        let xm = x.encrypt(&[0u8; 64], &mut rng).unwrap();
        let pm = p.encrypt(&[0u8; 64], &mut rng).unwrap();
        assert_eq!(xm.len(), 123 + encoded + 16);
        assert_eq!(pm.len(), 1219 + encoded + 16);
        sizes.push((xm.len(), pm.len(), 42 + encoded + 16));
    }
    println!(
        "bundle: X3DH {} bytes, PQXDH {} bytes; initial message with 64-byte plaintext (Padmé / none): X3DH {} / {} bytes, PQXDH {} / {} bytes; normal message: {} / {} bytes",
        classical.to_bytes().len(),
        pq.to_bytes().len(),
        sizes[0].0,
        sizes[1].0,
        sizes[0].1,
        sizes[1].1,
        sizes[0].2,
        sizes[1].2,
    );
}

/// A PQXDH initial message whose cleartext `N` is above `max_skip` is refused as
/// `TooFarAhead` before any key agreement (no decapsulation): the store, with both of its
/// one-time prekeys, is unchanged. An unknown post-quantum prekey is reported first.
#[test]
fn pqxdh_initial_message_too_far_ahead_is_refused_before_key_agreement() {
    let mut rng = ChaCha20Rng::seed_from_u64(708);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut b = bob(&mut rng);
    let opk = b.store.one_time_prekeys().next().unwrap().id();
    let pq = first_pq_one_time(&b);
    let bundle = b.store.pq_bundle(Some(opk), Some(pq)).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let first = a.encrypt(b"first", &mut rng).unwrap();
    // The ratchet header follows the 1179 bytes of framing, X3DH and PQXDH fields: DH, PN,
    // N.
    const N: usize = 1179 + 32 + 4;
    assert_eq!(first[N..N + 4], [0; 4]);
    let max_skip = Limits::default().max_skip;
    let forge = |n: u32| {
        let mut m = first.clone();
        m[N..N + 4].copy_from_slice(&n.to_be_bytes());
        m
    };
    let before = b.store.to_bytes();
    for n in [max_skip + 1, u32::MAX] {
        assert_eq!(
            b.store
                .accept(&forge(n), &SessionOptions::new())
                .unwrap_err(),
            Error::TooFarAhead
        );
        assert_eq!(*b.store.to_bytes(), *before);
    }
    assert_eq!(
        b.store
            .accept(&forge(max_skip), &SessionOptions::new())
            .unwrap_err(),
        Error::DecryptionFailed
    );
    // The post-quantum prekey id (8 bytes) follows the framing and X3DH fields (83 bytes);
    // the KEM ciphertext, 1088 bytes, follows it.
    let mut unknown = forge(max_skip + 1);
    assert_eq!(unknown[83..91], pq.to_u64().to_be_bytes());
    unknown[83..91].copy_from_slice(&77u64.to_be_bytes());
    assert_eq!(
        b.store
            .accept(&unknown, &SessionOptions::new())
            .unwrap_err(),
        Error::UnknownPqPreKey(PqPreKeyId::from_u64(77))
    );
    assert_eq!(*b.store.to_bytes(), *before);
    assert!(b.store.one_time_prekey(opk).is_some());
    assert!(b.store.pq_prekey(pq).is_some());
    let accepted = b.store.accept(&first, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.plaintext, b"first");
    assert_eq!(accepted.used_post_quantum_prekey, Some(pq));
}
