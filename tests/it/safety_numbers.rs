//! Safety numbers and pinned identities (SPEC.md §9): known-answer vectors computed
//! independently (tests/vectors/safety_numbers/generate.py), symmetry, sensitivity to
//! either key, scanned-form comparison, and the substituted-bundle scenario end to end.

use doubleratchet::SessionOptions;
use doubleratchet::{
    Error, IdentityKey, IdentityKeyPair, LocalDevice, PreKeyBundle, SafetyNumber, ScanResult,
    Session, SAFETY_NUMBER_LENGTH, SAFETY_NUMBER_VERSION,
};
use doubleratchet_test_support::device_of;
use doubleratchet_test_support::hex::decode as hex;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn key(s: &str) -> IdentityKey {
    IdentityKey::from_bytes(&hex(s).try_into().unwrap()).unwrap()
}

#[test]
fn known_answer_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/safety_numbers/safety_number_v1.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["iterations"], doubleratchet::SAFETY_NUMBER_ITERATIONS);
    // Profile v2 left safety numbers as they were: the same version byte, the same digits.
    assert_eq!(SAFETY_NUMBER_VERSION, 0x01);
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let a = key(case["identity_a"].as_str().unwrap());
        let b = key(case["identity_b"].as_str().unwrap());
        let number = SafetyNumber::new(&a, &b);
        assert_eq!(
            number.to_bytes().to_vec(),
            hex(case["bytes"].as_str().unwrap())
        );
        assert_eq!(number.to_bytes()[0], SAFETY_NUMBER_VERSION);
        assert_eq!(number.to_digits(), case["digits"].as_str().unwrap());
        assert_eq!(SafetyNumber::new(&b, &a), number);
    }
}

struct Party {
    identity: IdentityKeyPair,
    store: LocalDevice,
}

fn party(rng: &mut ChaCha20Rng) -> Party {
    let identity = IdentityKeyPair::generate(rng).unwrap();
    let mut store = device_of(&identity, rng).unwrap();
    store.generate_one_time_prekeys(4, rng).unwrap();
    Party { identity, store }
}

fn bundle(p: &Party) -> PreKeyBundle {
    let id = p.store.one_time_prekeys().next().map(|k| k.id());
    p.store.bundle(id).unwrap()
}

#[test]
fn same_number_on_both_sides_of_a_session() {
    let mut rng = ChaCha20Rng::seed_from_u64(81);
    let alice = party(&mut rng);
    let mut bob = party(&mut rng);
    let mut a = Session::initiate(
        &alice.identity,
        &bundle(&bob),
        &SessionOptions::new(),
        &mut rng,
    )
    .unwrap();
    let first = a.encrypt(b"hi", &mut rng).unwrap();
    let b = bob
        .store
        .accept(&first, &SessionOptions::new())
        .unwrap()
        .session;
    let on_alice = SafetyNumber::of_session(&a);
    let on_bob = SafetyNumber::of_session(&b);
    assert_eq!(on_alice, on_bob);
    assert_eq!(on_alice.to_digits(), on_bob.to_digits());
    assert_eq!(
        on_bob.compare_scanned(&on_alice.to_bytes()),
        ScanResult::Match
    );
}

#[test]
fn any_change_of_either_key_changes_the_number() {
    let mut rng = ChaCha20Rng::seed_from_u64(82);
    let keys: Vec<IdentityKey> = (0..6)
        .map(|_| *IdentityKeyPair::generate(&mut rng).unwrap().public_key())
        .collect();
    let base = SafetyNumber::new(&keys[0], &keys[1]);
    for other in &keys[2..] {
        let changed_a = SafetyNumber::new(other, &keys[1]);
        let changed_b = SafetyNumber::new(&keys[0], other);
        assert_ne!(changed_a.to_digits(), base.to_digits());
        assert_ne!(changed_b.to_digits(), base.to_digits());
        assert_eq!(
            base.compare_scanned(&changed_a.to_bytes()),
            ScanResult::Mismatch
        );
        assert_eq!(
            base.compare_scanned(&changed_b.to_bytes()),
            ScanResult::Mismatch
        );
    }
}

#[test]
fn malformed_scans_never_panic() {
    let mut rng = ChaCha20Rng::seed_from_u64(83);
    let a = *IdentityKeyPair::generate(&mut rng).unwrap().public_key();
    let b = *IdentityKeyPair::generate(&mut rng).unwrap().public_key();
    let number = SafetyNumber::new(&a, &b);
    let good = number.to_bytes();
    for len in 0..SAFETY_NUMBER_LENGTH {
        assert_eq!(number.compare_scanned(&good[..len]), ScanResult::Malformed);
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(number.compare_scanned(&long), ScanResult::Malformed);
    assert_eq!(good[0], SAFETY_NUMBER_VERSION);
    let mut future = good;
    future[0] = SAFETY_NUMBER_VERSION + 1;
    assert_eq!(
        number.compare_scanned(&future),
        ScanResult::DifferentVersion(SAFETY_NUMBER_VERSION + 1)
    );
    for byte in 1..SAFETY_NUMBER_LENGTH {
        let mut altered = good;
        altered[byte] ^= 0x80;
        let expected = if byte == 1 {
            ScanResult::Malformed
        } else {
            ScanResult::Mismatch
        };
        assert_eq!(number.compare_scanned(&altered), expected, "byte {byte}");
    }
}

/// The attack identity verification exists for: the server hands Alice a bundle of its
/// own (Mallory's) for Bob. Alice has Bob's key pinned, so no session is created; and if
/// she had not, comparing safety numbers with Bob exposes it.
#[test]
fn substituted_bundle_is_detected() {
    let mut rng = ChaCha20Rng::seed_from_u64(84);
    let alice = party(&mut rng);
    let mut bob = party(&mut rng);
    let mallory = party(&mut rng);
    let pinned_bob = *bob.identity.public_key();

    // With a pin: a typed outcome before any session exists.
    let forged = bundle(&mallory);
    assert_eq!(
        Session::initiate(
            &alice.identity,
            &forged,
            &SessionOptions::new().pin(&pinned_bob),
            &mut rng
        )
        .unwrap_err(),
        Error::IdentityMismatch
    );
    // The genuine bundle passes the same check.
    let mut a = Session::initiate(
        &alice.identity,
        &bundle(&bob),
        &SessionOptions::new().pin(&pinned_bob),
        &mut rng,
    )
    .unwrap();
    assert_eq!(a.remote_identity(), &pinned_bob);

    // Without a pin, Alice talks to Mallory; the safety numbers Alice and Bob compare differ.
    let mitm =
        Session::initiate(&alice.identity, &forged, &SessionOptions::new(), &mut rng).unwrap();
    let alice_sees = SafetyNumber::of_session(&mitm);
    let bob_sees = SafetyNumber::new(bob.identity.public_key(), alice.identity.public_key());
    assert_ne!(alice_sees.to_digits(), bob_sees.to_digits());
    assert_eq!(
        bob_sees.compare_scanned(&alice_sees.to_bytes()),
        ScanResult::Mismatch
    );

    // Bob's side: a pinned contact's key in an initial message is checked before the
    // one-time prekey is touched.
    let first = a.encrypt(b"hi", &mut rng).unwrap();
    let before = bob.store.to_bytes();
    let pinned_alice_wrong = *mallory.identity.public_key();
    assert_eq!(
        bob.store
            .accept(&first, &SessionOptions::new().pin(&pinned_alice_wrong))
            .unwrap_err(),
        Error::IdentityMismatch
    );
    assert_eq!(*bob.store.to_bytes(), *before);
    let accepted = bob
        .store
        .accept(
            &first,
            &SessionOptions::new().pin(alice.identity.public_key()),
        )
        .unwrap();
    assert_eq!(accepted.plaintext, b"hi");
}
