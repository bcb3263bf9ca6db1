//! The `load` target: every stored type's `from_bytes` and `StorageKey::open`.

use crate::decode_message::check_message_layout;
use crate::prelude::*;
use crate::respond::{check_store_accept, Expect};

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
pub(crate) fn check_session_type(s: &Session, encoding: &[u8]) {
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
pub(crate) fn check_reseal<T: doubleratchet::Storable>(
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
pub(crate) fn exercise_session(mut s: Session) {
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
pub(crate) fn exercise_store(mut store: PreKeyStore) {
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
pub(crate) fn check_store_agrees(store: &PreKeyStore, view: &StoreView) {
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
pub(crate) fn exercise_one_time_generation(store: &mut PreKeyStore) {
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
pub(crate) fn exercise_signed_prekeys(store: &mut PreKeyStore) {
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
pub(crate) fn exercise_after_restore(store: &PreKeyStore) {
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
pub(crate) fn exercise_pq_store(store: &mut PreKeyStore) {
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
