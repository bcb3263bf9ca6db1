//! `Error::kind` on real failures (SPEC.md §10): a message of another session of the
//! contact fails with an error of kind `TryAnotherSession` wherever it stands in its chain
//! and in both header modes, so trying the contact's sessions in turn finds its own; an
//! error of any other kind means that no session will decrypt the message.

use doubleratchet::{Error, ErrorKind, Limits, Session};
use doubleratchet_test_support::{accepted_pair_in_mode, established_pair_in_mode, FailingRng};

/// The guide's loop ("Handling errors"): the contact's sessions in order, on to the next
/// one only after an error of kind `TryAnotherSession`. Returns the index of the session
/// that decrypted the message.
fn decrypt_from_contact(
    sessions: &mut [Session],
    message: &[u8],
) -> Result<(usize, Vec<u8>), Error> {
    let mut last = Error::WrongSession;
    for (i, session) in sessions.iter_mut().enumerate() {
        match session.decrypt(message) {
            Ok(plaintext) => return Ok((i, plaintext)),
            Err(err) if err.kind() == ErrorKind::TryAnotherSession => last = err,
            Err(err) => return Err(err),
        }
    }
    Err(last)
}

/// Messages of one session at every kind of position: the next in the chain, skipped
/// ahead, further ahead than a small `max_skip`, and in a new chain after a ratchet step
/// (`PN` above that `max_skip`).
fn messages_in_every_position(a: &mut Session, b: &mut Session, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = doubleratchet_test_support::rng(seed);
    let mut out = Vec::new();
    for i in 0..8u8 {
        out.push(a.encrypt(&[i], &mut rng).unwrap());
    }
    // A ratchet step: Bob replies (having received only the first), Alice decrypts it.
    assert_eq!(b.decrypt(&out[0]).unwrap(), [0]);
    let reply = b.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    out.push(a.encrypt(b"new chain", &mut rng).unwrap());
    out
}

#[test]
fn another_sessions_message_is_try_another_session_in_every_position() {
    for header_encryption in [false, true] {
        let (_, mut a1, mut b1, _) = established_pair_in_mode(31, false, header_encryption);
        let (_, _, mut b2, _) = established_pair_in_mode(32, false, header_encryption);
        // A small `max_skip`, so that a foreign message can exceed it cheaply.
        b2.set_limits(Limits::new(4, Limits::default().max_stored_skipped))
            .unwrap();

        let messages = messages_in_every_position(&mut a1, &mut b1, 33);
        let before = b2.to_bytes();
        let mut seen = Vec::new();
        for m in &messages {
            let err = b2.decrypt(m).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TryAnotherSession, "{err:?}");
            seen.push(err);
        }
        assert!(
            *b2.to_bytes() == *before,
            "failed decryptions change nothing"
        );
        if header_encryption {
            // The header key settles it: nothing is read from a foreign header.
            assert!(
                seen.iter().all(|e| *e == Error::DecryptionFailed),
                "{seen:?}"
            );
        } else {
            // The bounds are checked before a cleartext header is authenticated.
            assert!(seen.contains(&Error::TooFarAhead), "{seen:?}");
            assert!(seen.contains(&Error::DecryptionFailed), "{seen:?}");
        }

        // Tried in turn, every message but the first (which Bob already has) finds its
        // session, the second one.
        let mut sessions = [b2, b1];
        for (i, m) in messages.iter().enumerate().skip(1) {
            let (index, _) = decrypt_from_contact(&mut sessions, m).unwrap();
            assert_eq!(index, 1, "message {i}");
        }
    }
}

#[test]
fn the_other_header_mode_and_another_initial_message_are_wrong_session() {
    let (_, mut plain_a, mut plain_b, mut rng) = established_pair_in_mode(34, false, false);
    let (_, mut he_a, mut he_b, _) = established_pair_in_mode(35, false, true);
    let plain = plain_a.encrypt(b"plain", &mut rng).unwrap();
    let encrypted = he_a.encrypt(b"encrypted", &mut rng).unwrap();
    assert_eq!(he_b.decrypt(&plain), Err(Error::WrongSession));
    assert_eq!(plain_b.decrypt(&encrypted), Err(Error::WrongSession));

    // An initial message of another session: route it by its session id instead.
    let (_, mut other_a, _, mut other_rng) = accepted_pair_in_mode(36, false, false);
    let initial = other_a.encrypt(b"still initial", &mut other_rng).unwrap();
    let err = plain_b.decrypt(&initial).unwrap_err();
    assert_eq!(err, Error::WrongSession);
    assert_eq!(err.kind(), ErrorKind::TryAnotherSession);
}

#[test]
fn a_replay_or_a_malformed_message_stops_the_search() {
    let (_, mut a1, mut b1, mut rng) = established_pair_in_mode(37, false, false);
    let (_, _, b2, _) = established_pair_in_mode(38, false, false);
    let m = a1.encrypt(b"once", &mut rng).unwrap();
    assert_eq!(b1.decrypt(&m).unwrap(), b"once");

    // The other session cannot tell (it goes on); the own session knows it is a replay.
    let mut sessions = [b2, b1];
    let err = decrypt_from_contact(&mut sessions, &m).unwrap_err();
    assert_eq!(err, Error::DuplicateOrExpired);
    assert_eq!(err.kind(), ErrorKind::DropMessage);

    // Malformed: the same in every session, so the first one ends the search.
    for garbage in [&b""[..], &[0x02, 0x01], &[0x7E; 40]] {
        let err = decrypt_from_contact(&mut sessions, garbage).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DropMessage, "{err:?}");
    }
}

#[test]
fn a_failing_rng_is_retry_later_and_the_retry_works() {
    // Alice has received Bob's reply: her next message needs a new ratchet key.
    let (_, mut a, mut b, mut rng) = established_pair_in_mode(39, false, false);
    let err = a.encrypt(b"later", &mut FailingRng::new(0)).unwrap_err();
    assert_eq!(err, Error::RandomnessUnavailable);
    assert_eq!(err.kind(), ErrorKind::RetryLater);
    let m = a.encrypt(b"later", &mut rng).unwrap();
    assert_eq!(b.decrypt(&m).unwrap(), b"later");
}
