//! Header-encrypted sessions (SPEC.md §4.8, §5.2-§5.3 types 0x04-0x06, §7.1 type 0x28):
//! conversations with loss and reordering across ratchet steps, nothing of the header in
//! the clear, transactional rejection of every tampered byte, the bound on stored header
//! keys, persistence, the mode policies, and message sizes and the stored policy under both
//! padding policies (SPEC.md §4.9).

use doubleratchet_test_support::FailingRng;

use doubleratchet::OneTimePreKeyId;
use doubleratchet::{
    Error, IdentityKeyPair, Limits, LocalDevice, Message, Padding, Session, SessionOptions,
    MAX_SKIPPED_HEADER_KEYS, PADME_MINIMUM, STORAGE_VERSION, WIRE_VERSION,
};
use doubleratchet_test_support::storage::{STATE_RECEIVING_CHAIN, STATE_SENDING_CHAIN};
use doubleratchet_test_support::{device_of, padding_offset};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Pair {
    a: Session,
    b: Session,
    rng: ChaCha20Rng,
}

/// The key agreements to run: PQXDH cases only with the `pqxdh` feature.
const PQ_MODES: &[bool] = if cfg!(feature = "pqxdh") {
    &[false, true]
} else {
    &[false]
};

/// A PQXDH bundle of `store` (with its current last-resort post-quantum prekey, made if
/// missing) and the one-time prekey `opk`.
#[cfg(feature = "pqxdh")]
fn pq_bundle(
    store: &mut LocalDevice,
    opk: Option<OneTimePreKeyId>,
    rng: &mut ChaCha20Rng,
) -> doubleratchet::PreKeyBundle {
    if store.pq_bundle(opk, None).is_err() {
        store.rotate_pq_last_resort_prekey(0, rng).unwrap();
    }
    store.pq_bundle(opk, None).unwrap()
}

#[cfg(not(feature = "pqxdh"))]
fn pq_bundle(
    _: &mut LocalDevice,
    _: Option<OneTimePreKeyId>,
    _: &mut ChaCha20Rng,
) -> doubleratchet::PreKeyBundle {
    unreachable!("PQXDH cases run only with the pqxdh feature (PQ_MODES)")
}

/// A header-encrypted session pair that has exchanged one message each way.
fn pair(seed: u64, post_quantum: bool) -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(1, &mut rng).unwrap();
    let opk = store.one_time_prekeys().next().map(|k| k.id());
    let bundle = if post_quantum {
        pq_bundle(&mut store, opk, &mut rng)
    } else {
        store.bundle(opk).unwrap()
    };
    let options = SessionOptions::new().header_encryption();
    let mut a = Session::initiate(&alice, &bundle, &options, &mut rng).unwrap();
    assert!(a.is_header_encrypted());
    let first = a.encrypt(b"hello", &mut rng).unwrap();
    assert_eq!(first[1], if post_quantum { 0x06 } else { 0x05 });
    let accepted = store.accept(&first, &SessionOptions::new()).unwrap();
    assert_eq!(accepted.plaintext, b"hello");
    let mut b = accepted.session;
    assert!(b.is_header_encrypted());
    assert_eq!(b.is_post_quantum(), post_quantum);
    let reply = b.encrypt(b"hi", &mut rng).unwrap();
    assert_eq!(reply[1], 0x04);
    assert_eq!(a.decrypt(&reply).unwrap(), b"hi");
    Pair { a, b, rng }
}

fn bytes(s: &Session) -> Vec<u8> {
    s.to_bytes().to_vec()
}

#[test]
fn conversation_both_modes_with_ratchet_steps() {
    for &pq in PQ_MODES {
        let mut p = pair(900 + u64::from(pq), pq);
        // SPEC.md §7.1: 188 bytes, 32 per stored chain key and 135 for header encryption
        // once both header keys are set, nothing skipped. Alice has received Bob's reply
        // (her sending chain waits for her next send); Bob has both chains.
        let (a, b) = (p.a.to_bytes(), p.b.to_bytes());
        assert_eq!(a[2], STATE_RECEIVING_CHAIN);
        assert_eq!(a.len(), 188 + 32 + 135);
        assert_eq!(b[2], 0x01 | STATE_SENDING_CHAIN | STATE_RECEIVING_CHAIN);
        assert_eq!(b.len(), 252 + 135);
        for round in 0..10u8 {
            for k in 0..=round % 3 {
                let m = p.a.encrypt(&[round, k], &mut p.rng).unwrap();
                assert_eq!(m[1], 0x04);
                assert!(Message::parse(&m).unwrap().is_header_encrypted());
                assert_eq!(Message::parse(&m).unwrap().ratchet_key(), None);
                assert_eq!(p.b.decrypt(&m).unwrap(), [round, k]);
            }
            let m = p.b.encrypt(&[round], &mut p.rng).unwrap();
            assert_eq!(p.a.decrypt(&m).unwrap(), [round]);
        }
    }
}

#[test]
fn header_is_not_visible_on_the_wire() {
    let mut p = pair(910, false);
    // In plain mode two messages of one chain carry the same 32-byte ratchet key; with
    // header encryption they share no 32-byte window at all (and no counter in the clear).
    let m1 = p.a.encrypt(b"one", &mut p.rng).unwrap();
    let m2 = p.a.encrypt(b"two", &mut p.rng).unwrap();
    for window in m1[2..].windows(32) {
        assert!(
            !m2.windows(32).any(|w| w == window),
            "messages share 32 bytes"
        );
    }
    // Size: version, type, nonce(12) + sealed header(40) + tag(16), ciphertext (the
    // plaintext padded to Padmé's 64-byte minimum), tag.
    assert_eq!(m1[0], WIRE_VERSION);
    assert_eq!(m1.len(), 2 + 68 + PADME_MINIMUM + 16);
    assert_eq!(m2.len(), m1.len());
    assert_eq!(p.b.decrypt(&m2).unwrap(), b"two");
    assert_eq!(p.b.decrypt(&m1).unwrap(), b"one");
}

#[test]
fn out_of_order_and_loss_across_steps() {
    let mut p = pair(920, false);
    // Alice sends 5 on her current chain; Bob receives 4, 1 and replies (ratchet step);
    // Alice sends 3 on a new chain; Bob receives them, then the late 0, 2 of the old chain.
    let old: Vec<Vec<u8>> = (0..5u8)
        .map(|i| p.a.encrypt(&[i], &mut p.rng).unwrap())
        .collect();
    assert_eq!(p.b.decrypt(&old[4]).unwrap(), [4]);
    assert_eq!(p.b.decrypt(&old[1]).unwrap(), [1]);
    let r = p.b.encrypt(b"r", &mut p.rng).unwrap();
    assert_eq!(p.a.decrypt(&r).unwrap(), b"r");
    let new: Vec<Vec<u8>> = (10..13u8)
        .map(|i| p.a.encrypt(&[i], &mut p.rng).unwrap())
        .collect();
    assert_eq!(p.b.decrypt(&new[2]).unwrap(), [12]);
    assert_eq!(p.b.decrypt(&new[0]).unwrap(), [10]);
    assert_eq!(p.b.decrypt(&old[0]).unwrap(), [0]);
    assert_eq!(p.b.decrypt(&old[2]).unwrap(), [2]);
    assert_eq!(p.b.decrypt(&new[1]).unwrap(), [11]);
    // old[3] is lost; its key stays stored. Replays fail and change nothing.
    assert_eq!(p.b.stored_skipped_keys(), 1);
    for m in old.iter().chain(&new).filter(|m| **m != old[3]) {
        let before = bytes(&p.b);
        let e = p.b.decrypt(m).unwrap_err();
        assert!(
            matches!(e, Error::DuplicateOrExpired | Error::DecryptionFailed),
            "{e:?}"
        );
        assert_eq!(bytes(&p.b), before);
    }
    assert_eq!(p.b.decrypt(&old[3]).unwrap(), [3]);
    assert_eq!(p.b.stored_skipped_keys(), 0);
}

#[test]
fn lost_first_message_and_routing_by_session_id() {
    let mut rng = ChaCha20Rng::seed_from_u64(930);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    let bundle = store.bundle(None).unwrap();
    let options = SessionOptions::new().header_encryption();
    let mut a = Session::initiate(&alice, &bundle, &options, &mut rng).unwrap();
    let lost = a.encrypt(b"lost", &mut rng).unwrap();
    let second = a.encrypt(b"second", &mut rng).unwrap();
    let mut b = store
        .accept(&second, &SessionOptions::new())
        .unwrap()
        .session;
    let Message::Initial(initial) = Message::parse(&lost).unwrap() else {
        panic!("not initial")
    };
    assert!(initial.is_header_encrypted());
    assert_eq!(initial.session_id(bob.public_key()), b.id());
    assert_eq!(b.decrypt(&lost).unwrap(), b"lost");
    // The store refuses both (replay records: no one-time prekey was used).
    assert_eq!(
        store.accept(&lost, &SessionOptions::new()).unwrap_err(),
        Error::DuplicateOrExpired
    );
}

#[test]
fn every_flipped_bit_is_rejected_and_changes_nothing() {
    let mut p = pair(940, false);
    // A message on the current chain, and one that starts a new chain.
    let same_chain = p.b.encrypt(b"same chain", &mut p.rng).unwrap();
    let m = p.a.encrypt(b"x", &mut p.rng).unwrap();
    assert_eq!(p.b.decrypt(&m).unwrap(), b"x");
    let new_chain = p.b.encrypt(b"new chain", &mut p.rng).unwrap();
    for message in [&same_chain, &new_chain] {
        let before = bytes(&p.a);
        for bit in 0..message.len() * 8 {
            let mut tampered = message.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(p.a.decrypt(&tampered).is_err(), "bit {bit}");
            assert_eq!(bytes(&p.a), before, "bit {bit} changed the session");
        }
        for len in 0..message.len() {
            assert!(p.a.decrypt(&message[..len]).is_err());
        }
    }
    assert_eq!(p.a.decrypt(&same_chain).unwrap(), b"same chain");
    assert_eq!(p.a.decrypt(&new_chain).unwrap(), b"new chain");
}

#[test]
fn stored_header_keys_are_bounded() {
    let mut p = pair(950, false);
    // Every round, Bob skips one message of his chain, so Alice keeps a skipped key (and
    // its chain's header key) per round. After more rounds than the bound, only the newest
    // MAX_SKIPPED_HEADER_KEYS chains keep their keys.
    let rounds = MAX_SKIPPED_HEADER_KEYS + 8;
    let mut lost = Vec::new();
    for i in 0..rounds {
        let skipped = p.b.encrypt(&[0, i as u8], &mut p.rng).unwrap();
        let m = p.b.encrypt(&[1, i as u8], &mut p.rng).unwrap();
        assert_eq!(p.a.decrypt(&m).unwrap(), [1, i as u8]);
        lost.push(skipped);
        let m = p.a.encrypt(b"ack", &mut p.rng).unwrap();
        assert_eq!(p.b.decrypt(&m).unwrap(), b"ack");
    }
    assert_eq!(p.a.stored_skipped_keys(), MAX_SKIPPED_HEADER_KEYS);
    // The oldest chains' keys are gone; the newest still decrypt.
    for (i, m) in lost.iter().enumerate() {
        let before = bytes(&p.a);
        if i < rounds - MAX_SKIPPED_HEADER_KEYS {
            assert_eq!(p.a.decrypt(m).unwrap_err(), Error::DecryptionFailed);
            assert_eq!(bytes(&p.a), before);
        } else {
            assert_eq!(p.a.decrypt(m).unwrap(), [0, i as u8]);
        }
    }
    assert_eq!(p.a.stored_skipped_keys(), 0);
}

#[test]
fn persistence_round_trips_at_every_step() {
    for &pq in PQ_MODES {
        let mut p = pair(960 + u64::from(pq), pq);
        let mut pending = Vec::new();
        for i in 0..30u8 {
            match p.rng.next_u32() % 4 {
                0 => pending.push(p.a.encrypt(&[i], &mut p.rng).unwrap()),
                1 => {
                    let m = p.b.encrypt(&[i], &mut p.rng).unwrap();
                    assert_eq!(p.a.decrypt(&m).unwrap(), [i]);
                }
                _ => {
                    if let Some(m) = pending.pop() {
                        // Delivered newest first: older ones become skipped keys.
                        p.b.decrypt(&m).unwrap();
                    }
                }
            }
            for s in [&mut p.a, &mut p.b] {
                let saved = s.to_bytes();
                assert_eq!(saved[0], STORAGE_VERSION);
                assert_eq!(saved[1], 0x28);
                assert_eq!(saved[3], if pq { 0x03 } else { 0x02 });
                let reloaded = Session::from_bytes(&saved, s.local_identity()).unwrap();
                assert_eq!(*reloaded.to_bytes(), *saved);
                *s = reloaded;
            }
        }
        let saved = p.b.to_bytes();
        let bob = *p.b.local_identity();
        for len in 0..saved.len() {
            assert!(
                Session::from_bytes(&saved[..len], &bob).is_err(),
                "len {len}"
            );
        }
        let mut longer = saved.to_vec();
        longer.push(0);
        assert_eq!(
            Session::from_bytes(&longer, &bob).unwrap_err(),
            Error::TrailingData
        );
        let mut bad_flags = saved.to_vec();
        bad_flags[3] = 0x01;
        assert_eq!(
            Session::from_bytes(&bad_flags, &bob).unwrap_err(),
            Error::InvalidEncoding
        );
        while let Some(m) = pending.pop() {
            p.b.decrypt(&m).unwrap();
        }
    }
}

#[test]
fn mode_policies_and_mixing() {
    let mut rng = ChaCha20Rng::seed_from_u64(970);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = device_of(&bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(4, &mut rng).unwrap();
    let ids: Vec<_> = store.one_time_prekeys().map(|k| k.id()).collect();
    // A responder requiring header encryption refuses a plain initial message.
    let mut plain = Session::initiate(
        &alice,
        &store.bundle(Some(ids[0])).unwrap(),
        &SessionOptions::new(),
        &mut rng,
    )
    .unwrap();
    assert!(!plain.is_header_encrypted());
    let m = plain.encrypt(b"plain", &mut rng).unwrap();
    let strict = SessionOptions::new().require_header_encryption();
    let before = store.to_bytes();
    assert_eq!(
        store.accept(&m, &strict).unwrap_err(),
        Error::HeaderEncryptionRequired
    );
    assert_eq!(*store.to_bytes(), *before);
    let mut plain_b = store.accept(&m, &SessionOptions::new()).unwrap().session;
    // A header-encrypted session and a plain one never accept each other's messages.
    let he_options = SessionOptions::new().header_encryption();
    let mut he = Session::initiate(
        &alice,
        &store.bundle(Some(ids[1])).unwrap(),
        &he_options,
        &mut rng,
    )
    .unwrap();
    let he_first = he.encrypt(b"he", &mut rng).unwrap();
    let mut he_b = store.accept(&he_first, &strict).unwrap().session;
    let plain_reply = plain_b.encrypt(b"p", &mut rng).unwrap();
    let he_reply = he_b.encrypt(b"h", &mut rng).unwrap();
    assert_eq!(he.decrypt(&plain_reply).unwrap_err(), Error::WrongSession);
    assert_eq!(plain.decrypt(&he_reply).unwrap_err(), Error::WrongSession);
    assert_eq!(he.decrypt(&he_reply).unwrap(), b"h");
    assert_eq!(plain.decrypt(&plain_reply).unwrap(), b"p");
    // An initial message of one mode never decrypts on a session of the other.
    assert_eq!(he_b.decrypt(&m).unwrap_err(), Error::WrongSession);
}

#[test]
fn limits_apply_in_header_encrypted_mode() {
    let mut p = pair(980, false);
    p.b.set_limits(Limits::new(5, 3)).unwrap();
    let ms: Vec<Vec<u8>> = (0..8u8)
        .map(|i| p.a.encrypt(&[i], &mut p.rng).unwrap())
        .collect();
    let before = bytes(&p.b);
    assert_eq!(p.b.decrypt(&ms[7]).unwrap_err(), Error::TooFarAhead);
    assert_eq!(bytes(&p.b), before);
    assert_eq!(p.b.decrypt(&ms[5]).unwrap(), [5]);
    assert_eq!(p.b.stored_skipped_keys(), 3);
    assert_eq!(p.b.decrypt(&ms[1]).unwrap_err(), Error::DuplicateOrExpired);
    assert_eq!(p.b.decrypt(&ms[4]).unwrap(), [4]);
}

#[test]
fn failing_rng_changes_nothing_in_header_encrypted_mode() {
    let mut p = pair(990, false);
    // Alice's next send completes a ratchet step (a DHs draw, then the header nonce); a
    // send on an existing chain draws only the nonce. A failure at any draw is an error
    // and leaves the session as it was.
    for working in [0, 1] {
        let before = bytes(&p.a);
        assert_eq!(
            p.a.encrypt(b"x", &mut FailingRng::new(working))
                .unwrap_err(),
            Error::RandomnessUnavailable
        );
        assert_eq!(bytes(&p.a), before, "{working} working draws");
    }
    let m = p.a.encrypt(b"step", &mut FailingRng::new(2)).unwrap();
    assert_eq!(p.b.decrypt(&m).unwrap(), b"step");
    let before = bytes(&p.a);
    assert_eq!(
        p.a.encrypt(b"y", &mut FailingRng::new(0)).unwrap_err(),
        Error::RandomnessUnavailable
    );
    assert_eq!(bytes(&p.a), before);
    let m = p.a.encrypt(b"same chain", &mut FailingRng::new(1)).unwrap();
    assert_eq!(p.b.decrypt(&m).unwrap(), b"same chain");
}

/// Found by the `load` fuzz target: a stored header-encrypted session without `HKs` used to
/// load and then could never send. SPEC.md §7.1 requires `HKs`.
#[test]
fn stored_session_without_sending_header_key_is_refused() {
    let p = pair(995, false);
    let mut stored = bytes(&p.a);
    // Alice has received Bob's reply: CKr is stored, CKs waits for her next send.
    assert_eq!(stored[2], STATE_RECEIVING_CHAIN);
    assert_eq!(stored.len(), 188 + 32 + 135);
    // After the padding byte: RK, DHs, DHr, CKr, Ns, Nr, PN, then the skipped-key count
    // (zero), then HKs: flag + key.
    let count = padding_offset(&stored) + 1 + 3 * 32 + 32 + 12;
    assert_eq!(count, 217);
    assert_eq!(stored[count..count + 4], [0; 4]);
    let hks = count + 4;
    assert_eq!(stored[hks], 1);
    stored[hks..hks + 33].fill(0);
    assert_eq!(
        Session::from_bytes(&stored, p.a.local_identity()).unwrap_err(),
        Error::InvalidEncoding
    );
}

/// Sizes on the wire under both padding policies (SPEC.md §4.9): the framing (with the
/// 68-byte sealed header), the encoded plaintext, the tag. Padmé pads the marked
/// plaintext to at least 64 bytes and then to its bucket (72 for 65, 1024 for 1001);
/// `Padding::None` adds only the end marker.
#[test]
fn sizes_on_the_wire_under_both_padding_policies() {
    const CASES: [(Padding, usize, usize); 8] = [
        (Padding::Padme, 0, 64),
        (Padding::Padme, 63, 64),
        (Padding::Padme, 64, 72),
        (Padding::Padme, 1000, 1024),
        (Padding::None, 0, 1),
        (Padding::None, 63, 64),
        (Padding::None, 64, 65),
        (Padding::None, 1000, 1001),
    ];
    for &pq in PQ_MODES {
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + u64::from(pq));
        let alice = IdentityKeyPair::generate(&mut rng).unwrap();
        let bob = IdentityKeyPair::generate(&mut rng).unwrap();
        let mut store = device_of(&bob, &mut rng).unwrap();
        if pq {
            pq_bundle(&mut store, None, &mut rng);
        }
        // Initial messages: IK_A, EK_A, prekey ids (and the PQ prekey id and KEM
        // ciphertext) before the sealed header.
        let initial_prefix = if pq { 1247 } else { 151 };
        let mut b: Option<Session> = None;
        let mut a = None;
        for (padding, len, encoded) in CASES {
            let plaintext = vec![0xa5; len];
            let options = SessionOptions::new().header_encryption().padding(padding);
            let bundle = if pq {
                pq_bundle(&mut store, None, &mut rng)
            } else {
                store.bundle(None).unwrap()
            };
            let mut s = Session::initiate(&alice, &bundle, &options, &mut rng).unwrap();
            assert_eq!(s.padding(), padding);
            let m = s.encrypt(&plaintext, &mut rng).unwrap();
            assert_eq!(m[1], if pq { 0x06 } else { 0x05 });
            assert_eq!(m.len(), initial_prefix + encoded + 16, "{padding:?} {len}");
            let accepted = store.accept(&m, &SessionOptions::new()).unwrap();
            assert_eq!(accepted.plaintext, plaintext);
            // The responder's policy is its own: the default, whatever the sender's.
            assert_eq!(accepted.session.padding(), Padding::Padme);
            if b.is_none() {
                b = Some(accepted.session);
                a = Some(s);
            }
        }
        // Normal messages: version, type, the sealed header.
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        let reply = b.encrypt(b"reply", &mut rng).unwrap();
        assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
        for (padding, len, encoded) in CASES {
            let plaintext = vec![0x5a; len];
            for a_sends in [true, false] {
                let (sender, receiver) = if a_sends {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                sender.set_padding(padding);
                let m = sender.encrypt(&plaintext, &mut rng).unwrap();
                assert_eq!(m[1], 0x04);
                assert_eq!(m.len(), 2 + 68 + encoded + 16, "{padding:?} {len}");
                assert_eq!(receiver.decrypt(&m).unwrap(), plaintext);
            }
        }
    }
}

/// The padding policy is stored in a header-encrypted session (type 0x28: after the flags
/// byte and the limits, at offset 76 of a session without pending fields) and survives a
/// reload.
#[test]
fn padding_policy_is_stored_in_header_encrypted_sessions() {
    let mut p = pair(1010, false);
    assert_eq!(p.a.padding(), Padding::Padme);
    let padme = bytes(&p.a);
    let at = padding_offset(&padme);
    assert_eq!(at, 76);
    assert_eq!(padme[at], 0x01);
    p.a.set_padding(Padding::None);
    let none = bytes(&p.a);
    assert_eq!(none[at], 0x00);
    let differing: Vec<usize> = (0..padme.len()).filter(|&i| padme[i] != none[i]).collect();
    assert_eq!(differing, [at]);
    let alice = *p.a.local_identity();
    let mut reloaded = Session::from_bytes(&none, &alice).unwrap();
    assert_eq!(reloaded.padding(), Padding::None);
    assert_eq!(bytes(&reloaded), none);
    let m = reloaded.encrypt(&[1; 10], &mut p.rng).unwrap();
    assert_eq!(m.len(), 2 + 68 + 11 + 16);
    assert_eq!(p.b.decrypt(&m).unwrap(), [1; 10]);
    let mut bad = none.clone();
    bad[at] = 0x02;
    assert_eq!(
        Session::from_bytes(&bad, &alice).unwrap_err(),
        Error::InvalidEncoding
    );
}
