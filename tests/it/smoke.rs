//! End-to-end smoke test of the public API.
use doubleratchet::OneTimePreKeyId;
use doubleratchet::SessionOptions;
use doubleratchet::SignedPreKeyId;
use doubleratchet::*;
use doubleratchet_test_support::bundle_of;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn hello_both_ways() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let spk = SignedPreKey::generate(&bob, SignedPreKeyId::from_u64(1), &mut rng).unwrap();
    let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(7), &mut rng).unwrap();
    let bundle = PreKeyBundle::from_bytes(&bundle_of(&bob, &spk, Some(&opk)).to_bytes()).unwrap();
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let w1 = a.encrypt(b"hi", &mut rng).unwrap();
    // Profile v2: one version byte per format family, and every plaintext padded.
    assert_eq!(
        (
            WIRE_VERSION,
            BUNDLE_VERSION,
            STORAGE_VERSION,
            SAFETY_NUMBER_VERSION
        ),
        (0x02, 0x02, 0x02, 0x01)
    );
    assert_eq!(w1[0], WIRE_VERSION);
    assert_eq!(bundle.to_bytes()[0], BUNDLE_VERSION);
    assert_eq!(a.to_bytes()[0], STORAGE_VERSION);
    assert_eq!(
        SafetyNumber::of_session(&a).to_bytes()[0],
        SAFETY_NUMBER_VERSION
    );
    assert_eq!(a.padding(), Padding::Padme);
    assert_eq!(
        Message::parse(&w1).unwrap().ciphertext_len(),
        PADME_MINIMUM + 16
    );
    let w2 = a.encrypt(b"again", &mut rng).unwrap();
    let acc = Session::respond(
        &bob,
        |id| (id == 1.into()).then_some(&spk),
        |id| (id == 7.into()).then_some(&opk),
        &w2,
        &SessionOptions::new(),
    )
    .unwrap();
    assert_eq!(acc.plaintext, b"again");
    assert_eq!(acc.used_one_time_prekey, Some(7.into()));
    let mut b = acc.session;
    assert_eq!(b.id(), a.id());
    assert_eq!(b.decrypt(&w1).unwrap(), b"hi");
    assert_eq!(b.decrypt(&w1), Err(Error::DuplicateOrExpired));
    let r = b.encrypt(b"hello", &mut rng).unwrap();
    assert!(a.awaiting_reply());
    assert_eq!(a.decrypt(&r).unwrap(), b"hello");
    assert!(!a.awaiting_reply());
    for i in 0..5u8 {
        let m = a.encrypt(&[i], &mut rng).unwrap();
        assert_eq!(b.decrypt(&m).unwrap(), [i]);
        let m = b.encrypt(&[i, i], &mut rng).unwrap();
        assert_eq!(a.decrypt(&m).unwrap(), [i, i]);
    }
}
