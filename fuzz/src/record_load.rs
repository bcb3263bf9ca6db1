//! The `record_load` target: `SessionRecord::from_bytes` and `StorageKey::open` of a
//! stored session record (SPEC.md §7.8, type `0x2B`).

use crate::load::check_reseal;
use crate::prelude::*;
use crate::record::{
    network_error, outcome, record_fixture, request_outcomes, return_alice_device, shape_of,
    take_alice_device, EntryShape, Outcome, Tracker,
};

/// `SessionRecord::from_bytes` of the input, and `StorageKey::open::<SessionRecord>` with a
/// fixed key and each of the `load` target's two contexts: nothing panics; what loads
/// stores again to exactly the input (a record has one encoding) and loads as no other
/// type; a sealed record opens with its context only and as no other type; and a loaded
/// record agrees with its encoding field by field, is within its limits, holds sessions
/// that load on their own, and can be used ([`exercise_record`]).
pub fn record_load(data: &[u8]) {
    let fx = fixture();
    match SessionRecord::from_bytes(data) {
        Ok(r) => {
            assert_eq!(*r.to_bytes(), data, "a record re-encodes differently");
            assert!(data.len() <= MAX_RECORD_SIZE);
            // No other stored type loads a record's encoding.
            assert!(!loads_as_session(data));
            assert!(IdentityKeyPair::from_bytes(data).is_err());
            assert!(SignedPreKey::from_bytes(data).is_err());
            assert!(OneTimePreKey::from_bytes(data).is_err());
            assert!(LocalDevice::from_bytes(data).is_err());
            #[cfg(feature = "pqxdh")]
            assert!(PqPreKey::from_bytes(data).is_err());
            check_loaded(&r, data);
            exercise_record(r);
        }
        Err(e) => {
            assert_ne!(e, Error::Internal);
            if data.len() > MAX_RECORD_SIZE {
                assert_eq!(e, Error::TooLarge);
            }
        }
    }

    let key = &fx.storage_key;
    let mut opened = 0;
    for context in LOAD_CONTEXTS {
        if let Ok(r) = key.open::<SessionRecord>(data, context) {
            let bytes = r.to_bytes();
            check_loaded(&r, &bytes);
            check_reseal(&r, &bytes, context, |b, c| {
                key.open::<SessionRecord>(b, c)
                    .map(|r| r.to_bytes().to_vec())
            });
            exercise_record(r);
            opened += 1;
        }
    }
    assert!(opened <= 1, "a sealed record opens with {opened} contexts");
}

/// A loaded record agrees with `bytes`, its encoding, field by field ([`shape_of`], with
/// its status at times 0 and `u64::MAX`), and every session in it loads and stores on its
/// own, between the record's two identities, with the id and in the order `session_ids`
/// gives, and together they store the record's skipped keys.
pub(crate) fn check_loaded(r: &SessionRecord, bytes: &[u8]) {
    let _ = format!("{r:?}");
    let shape = shape_of(r, bytes, 0);
    assert_eq!(shape_of(r, bytes, u64::MAX), shape);
    assert!(r.len() <= r.limits().max_archived as usize + 1);
    let mut at = RECORD_ENTRIES;
    let mut skipped = 0;
    let ids: Vec<SessionId> = r.session_ids().collect();
    for (entry, id) in shape.entries().zip(&ids) {
        let length = be_u32(bytes, at + 9) as usize;
        let start = at + RECORD_ENTRY_OVERHEAD;
        // A stored session does not hold its local identity: the record's.
        let s = reload_session(&bytes[start..start + length], r.local_identity());
        assert_eq!(s.id(), *id);
        assert_eq!(entry.id, *id.as_bytes());
        assert_eq!(s.local_identity(), r.local_identity());
        assert_eq!(s.remote_identity(), r.remote_identity());
        skipped += s.stored_skipped_keys();
        at = start + length;
    }
    assert_eq!(ids.len(), shape.entries().count());
    assert_eq!(skipped, r.stored_skipped_keys());
}

/// The latest time a record stores (session times, the last reset), as its clock.
fn latest_time(shape: &crate::record::Shape) -> u64 {
    shape
        .entries()
        .map(|e: &EntryShape| e.created)
        .chain(shape.last_reset.map(|(_, at)| at))
        .max()
        .unwrap_or(0)
}

/// Uses a loaded (possibly fuzzer-made) record: Bob's messages of the `record` target's
/// fixture (decrypt, and one new session through `receive` when the record is Alice's),
/// sending, genuine decryption-error requests, archiving the sending session and lower
/// limits. After every call the record is checked as the `record` target checks it
/// ([`Tracker`]: its encoding, its limits, stored and loaded again when it changed, a
/// failed call left it unchanged) and agrees with the model of SPEC.md §6.4-§6.8; a
/// decrypted message has its plaintext.
pub(crate) fn exercise_record(mut r: SessionRecord) {
    let rfx = record_fixture();
    let fx = fixture();
    let now = latest_time(&shape_of(&r, &r.to_bytes(), 0));
    let mut t = Tracker::new(&r, now);

    // The first message of every batch of Bob's (every session, both header modes).
    let probes: Vec<usize> = (0..rfx.pool.len())
        .filter(|&i| rfx.pool[i].label.ends_with("-0"))
        .collect();
    for &i in &probes {
        decrypt_probe(&mut r, &mut t, now, i);
    }

    // A new session through `receive`, if the record is Alice's.
    if r.local_identity() == fx.alice.public_key() {
        let mut device = take_alice_device();
        let m = &rfx.pool[rfx.message("s4-initial-1")];
        let (before, result) = t.step(&mut r, now, "receive", |r| {
            r.receive(&mut device, &m.wire, &SessionOptions::new(), now)
        });
        match result {
            Ok(got) => {
                assert_eq!(got.plaintext, m.plaintext);
                let id = *got.session_id.as_bytes();
                let mut expected = before.clone();
                if got.new_session {
                    assert!(!before.contains(id));
                    expected.archived.insert(
                        0,
                        EntryShape {
                            id,
                            created: now,
                            retired: false,
                        },
                    );
                } else {
                    assert!(before.contains(id));
                }
                expected.promote(id, got.new_session);
                expected.bound_archive();
                t.expect(&expected, "receive");
            }
            Err(e) => assert!(network_error(e, before.is_empty()), "{e:?}"),
        }
        return_alice_device(device);
    }

    // Sending.
    let sending = r.sending_session().map(Session::awaiting_reply);
    let (before, result) = t.step(&mut r, now, "encrypt", |r| {
        r.encrypt(b"probe", &mut rng(0x2EC1))
    });
    match result {
        Ok(wire) => {
            let awaiting = sending.expect("encrypted without a sending session");
            let parsed = Message::parse(&wire).unwrap();
            assert_eq!(matches!(parsed, Message::Initial(_)), awaiting);
            t.expect(&before, "encrypt");
        }
        Err(e) => assert!(
            (sending.is_none() && e == Error::NoSession)
                || (sending.is_some() && e == Error::ChainExhausted),
            "encrypt: {e:?}"
        ),
    }

    // Genuine requests, naming a session id, a ratchet key (whether it is the sending
    // session's is not known here: both outcomes are allowed), nothing; from Carol; to
    // Carol.
    for label in [
        "s1-initial-at-2000",
        "answer-1-at-6000",
        "s3-answer-at-2000",
        "carol",
        "to-carol",
    ] {
        let request = &rfx.requests[rfx.request(label)].wire;
        let (before, result) = t.step(&mut r, now, "a request", |r| {
            r.handle_decryption_error(request, now)
        });
        let result = outcome(result);
        let allowed = request_outcomes(
            &before,
            r.local_identity(),
            r.remote_identity(),
            request,
            now,
            |_, _| None,
        );
        assert!(
            allowed.contains(&result),
            "request {label}: {result:?}, expected {allowed:?}"
        );
        let mut expected = before;
        if let Ok(Outcome::Reset(id)) = result {
            assert_eq!(expected.archive_sending(), Some(id));
            expected.last_reset = Some((be_u64(request, REQUEST_TIME.start), now));
        }
        t.expect(&expected, label);
    }

    // Archiving the sending session, then lower limits (evicting sessions and keys).
    let (before, result) = t.step(&mut r, now, "archive_sending_session", |r| {
        Ok(r.archive_sending_session().map(|id| *id.as_bytes()))
    });
    let mut expected = before;
    assert_eq!(result, Ok(expected.archive_sending()));
    t.expect(&expected, "archive_sending_session");
    let limits = r
        .limits()
        .with_max_archived(1)
        .with_max_trials(1)
        .with_max_stored_skipped(1);
    let (before, result) = t.step(&mut r, now, "set_limits", |r| r.set_limits(limits));
    assert_eq!(result, Ok(()));
    let mut expected = before;
    expected.limits = limits;
    expected.bound_archive();
    t.expect(&expected, "set_limits");
    if let Some(&i) = probes.last() {
        decrypt_probe(&mut r, &mut t, now, i);
    }
}

/// The record decrypts pool message `i` of the `record` target's fixture: its plaintext,
/// through a session it held, moved as SPEC.md §6.6 step 7 says; or refused with a network
/// error and unchanged.
fn decrypt_probe(r: &mut SessionRecord, t: &mut Tracker, now: u64, i: usize) {
    let m = &record_fixture().pool[i];
    let (before, result) = t.step(r, now, "decrypt", |r| r.decrypt(&m.wire));
    match result {
        Ok(plaintext) => {
            assert_eq!(plaintext, m.plaintext, "pool message {}", m.label);
            let id = t.shape.last_decrypted.expect("no last decrypting session");
            assert!(before.contains(id), "decrypted by a session not held");
            if m.initial {
                assert_eq!(id, m.session, "an initial message routed elsewhere");
            }
            let mut expected = before;
            expected.promote(id, false);
            expected.bound_archive();
            t.expect(&expected, &format!("decrypting {}", m.label));
        }
        Err(e) => assert!(
            network_error(e, before.is_empty()),
            "{} refused with {e:?}",
            m.label
        ),
    }
}
