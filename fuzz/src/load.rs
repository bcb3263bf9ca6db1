//! The `load` target: every stored type's `from_bytes` and `StorageKey::open` (a session
//! record's only as far as no other type may load its bytes: the `record_load` target
//! checks the records themselves).

use crate::decode_message::check_message_layout;
use crate::prelude::*;
use crate::respond::{check_store_accept, Expect};

/// Every stored type's `from_bytes` (with PQXDH also `PqPreKey`), and `StorageKey::open`
/// of each (`open_session` for a session) with a fixed key and each of two application
/// contexts: whatever loads re-encodes to exactly the input; a session (which does not
/// store its local identity) is loaded for Alice and for Bob, and the two loads agree
/// ([`load_fixture_session`]); a session's stored type (`0x20`, `0x25`, `0x28` and its
/// flags) and state flags agree with its modes; at most one type (and context) accepts any
/// input; and
/// a loaded session or local device (`0x2A`) can be used, stays consistent, and stores
/// again.
pub fn load(data: &[u8]) {
    let fx = fixture();
    let mut loaded = 0;
    // A stored session does not hold its local identity: loaded for Alice and for Bob
    // (the fixture's devices), which must agree.
    if let Ok(s) = load_fixture_session(Some(data), |local| Session::from_bytes(data, local)) {
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
    if let Ok(store) = LocalDevice::from_bytes(data) {
        assert_eq!(
            *store.to_bytes(),
            data,
            "local device re-encodes differently"
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
        assert_eq!(k.id().to_u64().to_be_bytes(), data[2..10]);
        assert_eq!(k.signature(), data[75..139]);
        loaded += 1;
    }
    // A session record (`0x2B`): the `record_load` target checks what loads; here only
    // that no other type loads the same bytes.
    if SessionRecord::from_bytes(data).is_ok() {
        loaded += 1;
    }
    assert!(loaded <= 1, "{loaded} types load the same bytes");

    let key = &fx.storage_key;
    let mut opened = 0;
    for context in LOAD_CONTEXTS {
        if let Ok(s) = load_fixture_session(None, |local| key.open_session(data, context, local)) {
            check_session_type(&s, &s.to_bytes());
            let local = *s.local_identity();
            check_reseal(&s, &s.to_bytes(), context, |b, c| {
                key.open_session(b, c, &local)
                    .map(|s| s.to_bytes().to_vec())
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
        if let Ok(store) = key.open::<LocalDevice>(data, context) {
            check_reseal(&store, &store.to_bytes(), context, |b, c| {
                key.open::<LocalDevice>(b, c).map(|s| s.to_bytes().to_vec())
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
    for context in LOAD_CONTEXTS {
        if key.open::<SessionRecord>(data, context).is_ok() {
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
        key.open_session(data, &too_long, fx.alice.public_key())
            .err(),
        Some(Error::TooLarge)
    );
}

/// A stored session's type byte names its modes (SPEC.md §7.1): `0x20` classical, `0x25`
/// PQXDH, `0x28` header-encrypted with flags byte 3 (`0x02` X3DH, `0x03` PQXDH); its state
/// flags byte (2) its role and whether it awaits a reply; its remote identity and padding
/// byte sit where the flags put them.
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
    // The state flags byte: role and pending fields as the API reports them, no unknown
    // bit, a one-time prekey only in pending fields.
    let state = encoding[SESSION_STATE];
    let known = STATE_RESPONDER
        | STATE_AWAITING_REPLY
        | STATE_ONE_TIME_PREKEY
        | STATE_SENDING_CHAIN
        | STATE_RECEIVING_CHAIN;
    assert_eq!(state & !known, 0, "unknown state flags loaded");
    assert_eq!(
        state & STATE_RESPONDER != 0,
        s.role() == Role::Responder,
        "the state flags disagree with the role"
    );
    assert_eq!(
        state & STATE_AWAITING_REPLY != 0,
        s.awaiting_reply(),
        "the state flags disagree with awaiting_reply"
    );
    assert!(state & STATE_ONE_TIME_PREKEY == 0 || s.awaiting_reply());
    assert_eq!(
        encoding[session_remote_range(encoding)],
        s.remote_identity().as_bytes()[..],
        "the remote identity is not where SPEC.md §7.1 puts it"
    );
    assert_ne!(s.remote_identity(), s.local_identity());
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
        opens_as_session(&blob, context),
        key.open::<IdentityKeyPair>(&blob, context).is_ok(),
        key.open::<SignedPreKey>(&blob, context).is_ok(),
        key.open::<OneTimePreKey>(&blob, context).is_ok(),
        key.open::<LocalDevice>(&blob, context).is_ok(),
        key.open::<SessionRecord>(&blob, context).is_ok(),
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
        reload(&s);
    }
    // The other padding policy changes the padding byte and nothing else, and stores and
    // loads; then the session's own policy again.
    let before = s.to_bytes();
    let at = session_padding_offset(&before);
    let padding = s.padding();
    s.set_padding(other_padding(padding));
    let other = reload(&s);
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
    reload(&s);
    s.set_limits(Limits::new(2, 1)).unwrap();
    assert!(s.stored_skipped_keys() <= 1);
    reload(&s);
}

/// A day, in seconds (the unit of [`PreKeyPolicy`]'s defaults: rotate after 7, retire 30
/// after a replacement).
const DAY: u64 = 24 * 60 * 60;

/// Uses a loaded (possibly fuzzer-made) local device (SPEC.md §8): what its API reports
/// agrees with its stored fields; refused changes leave it unchanged; probes (with and
/// without a one-time prekey, PQXDH) are accepted or refused by the store rules, with the
/// notices of SPEC.md §8.3; one-time prekey generation (and eviction beyond the cap), the
/// replay capacity, `maintain`, rotation, retirement and `after_restore` do what SPEC.md §8
/// says; and every state it reaches stores and loads again. The device's clock is the
/// latest time it stores, so no stored time lies in the future (except where a check
/// turns the clock back on purpose).
pub(crate) fn exercise_store(mut store: LocalDevice) {
    let fx = fixture();
    let _ = format!("{store:?}");
    let bytes = store.to_bytes();
    let view = store_view(&bytes);
    check_store_agrees(&store, &view);
    // The retired prekey store type loads as nothing.
    let mut retired = bytes.to_vec();
    retired[1] = TYPE_RETIRED_PREKEY_STORE;
    assert_eq!(
        LocalDevice::from_bytes(&retired).err(),
        Some(Error::UnexpectedType(TYPE_RETIRED_PREKEY_STORE))
    );
    let now = view.latest_time();
    let current_id = store.current_signed_prekey().id();
    let first_opk = store.one_time_prekeys().next().map(OneTimePreKey::id);
    let b = store.bundle(first_opk).unwrap();
    assert_eq!(b.identity_key(), store.identity_key());
    assert_eq!(b.signed_prekey_id(), current_id);
    assert_eq!(b.one_time_prekey_id(), first_opk);
    // No stored one-time prekey has id 0.
    let zero = OneTimePreKeyId::from_u64(0);
    assert_eq!(
        store.bundle(Some(zero)).err(),
        Some(Error::UnknownOneTimePreKey(zero))
    );
    // Neither the current signed prekey nor the standby can be retired, and a replay
    // capacity outside 1 ..= 1024 or a one-time prekey cap outside 1 ..= 16384 is refused.
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
    for cap in [0, MAX_ONE_TIME_PREKEYS as u32 + 1] {
        assert_eq!(
            store.set_one_time_prekey_cap(cap),
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
    exercise_pq_store(&mut store, now);

    exercise_one_time_generation(&mut store);
    exercise_signed_prekeys(&mut store, now);
    let view = store_view(&store.to_bytes());
    if view.one_time.len() <= 4 && view.pq.len() <= 4 {
        exercise_after_restore(&store, now);
        exercise_clock(&store, now);
    }
    check_reloads(&store);
}

/// The device's encoding reads field by field and loads again, to the same bytes (an app
/// persists it after every change, SPEC.md §8.4).
pub(crate) fn check_reloads(store: &LocalDevice) {
    let bytes = store.to_bytes();
    store_view(&bytes);
    let again = LocalDevice::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("a device's own encoding does not load: {e:?}"));
    assert_eq!(*again.to_bytes(), *bytes);
}

/// The device's accessors agree with its stored fields.
pub(crate) fn check_store_agrees(store: &LocalDevice, view: &StoreView) {
    let identity = IdentityKeyPair::from_bytes(&view.identity).unwrap();
    assert_eq!(store.identity_key(), identity.public_key());
    assert_eq!(store.current_signed_prekey().id(), view.current);
    assert_eq!(
        store.current_signed_prekey_created(),
        view.current_entry().created
    );
    for e in &view.signed {
        assert_eq!(store.signed_prekey(e.id).map(SignedPreKey::id), Some(e.id));
    }
    let previous: Vec<SignedPreKeyId> = store
        .previous_signed_prekeys()
        .map(SignedPreKey::id)
        .collect();
    let stored: Vec<SignedPreKeyId> = view
        .signed_ids()
        .into_iter()
        .filter(|id| *id != view.current)
        .collect();
    assert_eq!(previous, stored, "the previous signed prekeys, by id");
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
    assert_eq!(store.one_time_prekey_cap(), view.one_time_cap);
    let records: usize = view.signed.iter().map(|e| e.records.len()).sum();
    assert_eq!(store.replay_records(), records);
    let one_time: Vec<OneTimePreKeyId> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(
        one_time,
        view.one_time_by_age(),
        "one-time prekeys, oldest first"
    );
    let unpublished: Vec<OneTimePreKeyId> = store
        .unpublished_one_time_prekeys()
        .map(OneTimePreKey::id)
        .collect();
    let stored: Vec<OneTimePreKeyId> = view
        .one_time_by_age()
        .into_iter()
        .filter(|id| {
            let k = view.one_time.iter().find(|k| k.id == *id).unwrap();
            !k.published
        })
        .collect();
    assert_eq!(unpublished, stored, "unpublished one-time prekeys");
    for k in &view.one_time {
        assert_eq!(store.is_one_time_prekey_published(k.id), k.published);
    }
    #[cfg(feature = "pqxdh")]
    {
        let pq: Vec<PqPreKeyId> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
        assert_eq!(
            pq,
            view.pq_one_time_by_age(),
            "post-quantum one-time prekeys, oldest first"
        );
        let unpublished: Vec<PqPreKeyId> = store
            .unpublished_pq_one_time_prekeys()
            .map(PqPreKey::id)
            .collect();
        let stored: Vec<PqPreKeyId> = view
            .pq_one_time_by_age()
            .into_iter()
            .filter(|id| !view.pq(*id).unwrap().published)
            .collect();
        assert_eq!(unpublished, stored, "unpublished post-quantum prekeys");
        for k in &view.pq {
            let kind = match store.pq_prekey(k.id).map(PqPreKey::kind) {
                Some(PqPreKeyKind::OneTime) => PQ_ONE_TIME,
                Some(PqPreKeyKind::LastResort) => PQ_LAST_RESORT,
                other => panic!("stored post-quantum prekey {} is {other:?}", k.id),
            };
            assert_eq!(kind, k.kind);
        }
        assert_eq!(
            store.current_pq_last_resort_prekey().map(PqPreKey::id),
            view.pq_current
        );
    }
}

/// `generate_one_time_prekeys`: new ids (never 0, none held) with the next sequence
/// numbers, unpublished, newest last, the oldest evicted beyond the device's cap; or
/// `StoreFull` (more than the cap at once, or a crafted device out of sequence numbers),
/// without change. Then marking them published.
pub(crate) fn exercise_one_time_generation(store: &mut LocalDevice) {
    let before = store.to_bytes();
    let view = store_view(&before);
    let held = view.one_time_by_age();
    let cap = (view.one_time_cap as usize).min(MAX_ONE_TIME_PREKEYS);
    match store.generate_one_time_prekeys(2, &mut rng(6)) {
        Ok(generated) => {
            let ids = generated.created;
            assert_eq!(ids.len(), 2);
            assert!(
                ids[0] != ids[1] && ids.iter().all(|id| id.to_u64() != 0 && !held.contains(id))
            );
            let excess = (held.len() + 2).saturating_sub(cap);
            assert_eq!(generated.evicted, held[..excess], "not the oldest evicted");
            let after = store_view(&store.to_bytes());
            assert_eq!(
                after.one_time_by_age(),
                [&held[excess..], &ids[..]].concat()
            );
            for (i, id) in ids.iter().enumerate() {
                let k = after.one_time.iter().find(|k| k.id == *id).unwrap();
                assert_eq!(k.sequence, view.next_sequence + i as u64);
                assert!(!k.published);
            }
            assert_eq!(after.next_sequence, view.next_sequence + 2);
            assert_eq!(store.mark_one_time_prekeys_published(&ids), 2);
            assert_eq!(store.mark_one_time_prekeys_published(&ids), 0);
            assert!(ids.iter().all(|id| store.is_one_time_prekey_published(*id)));
            check_store_agrees(store, &store_view(&store.to_bytes()));
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert!(2 > cap || view.next_sequence.checked_add(2).is_none());
            assert_eq!(
                *store.to_bytes(),
                *before,
                "failed generation changed store"
            );
        }
    }
}

/// The signed prekeys (SPEC.md §8.3, §8.5): `maintain` at the device's time (a missing
/// standby is generated, whatever is due rotates or retires), a replay capacity that fills
/// the current signed prekey (the switch, or `SignedPreKeyFull`), and `rotate_signed_prekey`
/// (a new current key, the standby kept) then `retire_signed_prekey`.
pub(crate) fn exercise_signed_prekeys(store: &mut LocalDevice, now: u64) {
    check_maintain(store, now, &PreKeyPolicy::default());

    // A capacity equal to the current signed prekey's records fills it (if it has any).
    let view = store_view(&store.to_bytes());
    let current_records = view.current_entry().records.len() as u32;
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
        Some(StoreNotice::SignedPreKeySwitched { previous, current }) => {
            assert_eq!(after.current, current);
            assert_eq!(after.standby, None);
            // The standby keeps its creation time; the switch has no clock, so the previous
            // key's replacement time is unknown until the next `maintain`.
            let entry = after.current_entry();
            assert_eq!(Some(entry.created), view.standby_created);
            assert!(entry.records.is_empty());
            let old = after.signed(previous).unwrap();
            assert_eq!(old.superseded, None);
            assert_eq!(old.records, view.current_entry().records);
        }
        _ => assert_eq!((after.current, after.standby), (view.current, view.standby)),
    }
    // The app persists the device after the switch (SPEC.md §8.4): it loads again.
    check_reloads(store);

    // Rotation: a new key becomes current, the standby is kept (or generated), the old
    // current stays accepted, replaced now, until retired, which drops its records.
    let before = store.to_bytes();
    let view = store_view(&before);
    match store.rotate_signed_prekey(now, &mut rng(8)) {
        Ok(id) => {
            assert!(id.to_u64() != 0 && view.signed(id).is_none() && view.standby != Some(id));
            assert_eq!(store.current_signed_prekey().id(), id);
            assert!(store.signed_prekey(view.current).is_some());
            let after = store_view(&store.to_bytes());
            let entry = after.current_entry();
            assert_eq!((entry.created, entry.superseded), (now, None));
            assert!(entry.records.is_empty());
            let old = after.signed(view.current).unwrap();
            assert_eq!(old.superseded, Some(now));
            assert_eq!(old.records, view.current_entry().records);
            for e in view.signed.iter().filter(|e| e.id != view.current) {
                assert_eq!(after.signed(e.id), Some(e), "rotation changed an old key");
            }
            assert_eq!(after.signed.len(), view.signed.len() + 1);
            match view.standby {
                Some(standby) => {
                    assert_eq!(after.standby, Some(standby), "rotation used the standby");
                    assert_eq!(after.standby_created, view.standby_created);
                }
                None => {
                    let standby = after.standby.expect("a standby after rotation");
                    assert!(standby != id && view.signed(standby).is_none());
                    assert_eq!(after.standby_created, Some(now));
                }
            }
            let records = store.replay_records();
            let old = view.current_entry().records.len();
            assert!(store.retire_signed_prekey(view.current));
            assert!(store.signed_prekey(view.current).is_none());
            assert_eq!(store.replay_records() + old, records);
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            let needed = if view.standby.is_some() { 1 } else { 2 };
            assert!(view.signed_count() + needed > MAX_SIGNED_PREKEYS);
            assert_eq!(*store.to_bytes(), *before, "failed rotation changed store");
        }
    }
}

/// `maintain` on a copy with the clock moved: 30 days on (everything due rotates and
/// retires), then back to 0 (every later time is clamped, nothing rotates or retires
/// early), then a policy that rotates and retires at once.
pub(crate) fn exercise_clock(store: &LocalDevice, now: u64) {
    let mut copy = LocalDevice::from_bytes(&store.to_bytes()).unwrap();
    check_maintain(
        &mut copy,
        now.saturating_add(30 * DAY),
        &PreKeyPolicy::default(),
    );
    check_maintain(&mut copy, 0, &PreKeyPolicy::default());
    check_maintain(&mut copy, now, &PreKeyPolicy::new(0, 0));
    check_reloads(&copy);
}

/// `maintain(now, policy)` against a model of SPEC.md §8.5 (issue 15): stored times later
/// than `now` are clamped to it (`clock_went_backwards`) and an unknown replacement time
/// becomes `now`; replaced signed (and last-resort) prekeys replaced at least
/// `retire_after` ago are retired; the current one rotates (a fresh key created `now`, the
/// old one replaced `now`) when it is at least `rotate_after` old or was created after
/// `now` (its published creation time cannot change under its id), the longest-replaced
/// ones retired first if the device would hold more than 16; a missing standby is
/// generated; likewise the last-resort post-quantum prekey. `StoreFull` only when a due
/// last-resort rotation finds no sequence number; the device is then unchanged.
pub(crate) fn check_maintain(store: &mut LocalDevice, now: u64, policy: &PreKeyPolicy) {
    let before = store.to_bytes();
    let old = store_view(&before);
    let result = store.maintain(now, policy, &mut rng(16));
    let rotation_due = |created: u64| created > now || now - created >= policy.rotate_after;
    let lr_due = old
        .pq_current
        .is_some_and(|id| rotation_due(old.pq(id).unwrap().created));
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert!(lr_due && old.next_sequence == u64::MAX, "maintain: {e:?}");
            assert_eq!(
                *store.to_bytes(),
                *before,
                "failed maintain changed the device"
            );
            return;
        }
    };
    let after = store_view(&store.to_bytes());
    let mut expected = old.clone();
    let mut backwards = false;
    let mut clamp = |t: u64| {
        backwards |= t > now;
        t.min(now)
    };

    // Times settle.
    for e in &mut expected.signed {
        e.created = clamp(e.created);
        if e.id != old.current {
            e.superseded = Some(clamp(e.superseded.unwrap_or(now)));
        }
    }
    expected.standby_created = expected.standby_created.map(&mut clamp);
    for k in expected.pq.iter_mut().filter(|k| k.kind == PQ_LAST_RESORT) {
        k.created = clamp(k.created);
        if Some(k.id) != old.pq_current {
            k.superseded = Some(clamp(k.superseded.unwrap_or(now)));
        }
    }
    let due = |superseded: Option<u64>| {
        superseded.is_some_and(|t| now.saturating_sub(t) >= policy.retire_after)
    };

    // Signed prekeys: retire what is due, make room, rotate, replenish the standby.
    let mut retired: Vec<SignedPreKeyId> = expected
        .signed
        .iter()
        .filter(|e| e.id != old.current && due(e.superseded))
        .map(|e| e.id)
        .collect();
    expected.signed.retain(|e| !retired.contains(&e.id));
    let rotate = rotation_due(old.current_entry().created);
    let adding = usize::from(rotate) + usize::from(old.standby.is_none());
    while expected.signed_count() + adding > MAX_SIGNED_PREKEYS {
        let Some(oldest) = expected
            .signed
            .iter()
            .filter(|e| e.id != old.current)
            .min_by_key(|e| (e.superseded, e.id))
            .map(|e| e.id)
        else {
            break;
        };
        expected.signed.retain(|e| e.id != oldest);
        retired.push(oldest);
    }
    assert_eq!(
        report.retired_signed_prekeys, retired,
        "retired signed prekeys"
    );
    match (rotate, report.rotated_signed_prekey) {
        (true, Some(id)) => {
            assert!(id.to_u64() != 0 && old.signed(id).is_none() && old.standby != Some(id));
            for e in &mut expected.signed {
                if e.id == old.current {
                    e.superseded = Some(now);
                }
            }
            expected.signed.push(SignedView {
                id,
                created: now,
                superseded: None,
                records: Vec::new(),
            });
            expected.signed.sort_unstable_by_key(|e| e.id);
            expected.current = id;
        }
        (false, None) => {}
        (rotate, rotated) => panic!("rotation due: {rotate}, rotated: {rotated:?}"),
    }
    assert_eq!(report.replenished_standby, old.standby.is_none());
    if old.standby.is_none() {
        let standby = after.standby.expect("no standby after maintain");
        assert!(
            standby.to_u64() != 0
                && old.signed(standby).is_none()
                && Some(standby) != report.rotated_signed_prekey
        );
        expected.standby = Some(standby);
        expected.standby_created = Some(now);
    }

    // Last-resort post-quantum prekeys: retire what is due (and the longest-replaced one if
    // a rotation needs its place), then rotate.
    #[cfg(feature = "pqxdh")]
    {
        let mut replaced: Vec<(Option<u64>, PqPreKeyId)> = expected
            .pq
            .iter()
            .filter(|k| k.kind == PQ_LAST_RESORT && Some(k.id) != old.pq_current)
            .map(|k| (k.superseded, k.id))
            .collect();
        replaced.sort_unstable();
        let full = old.pq_of(PQ_LAST_RESORT).count() >= MAX_PQ_LAST_RESORT_PREKEYS;
        let retired: Vec<PqPreKeyId> = replaced
            .iter()
            .enumerate()
            .filter(|(i, (superseded, _))| due(*superseded) || (*i == 0 && full && lr_due))
            .map(|(_, (_, id))| *id)
            .collect();
        assert_eq!(report.retired_pq_last_resort_prekeys, retired);
        expected.pq.retain(|k| !retired.contains(&k.id));
        match (lr_due, report.rotated_pq_last_resort_prekey) {
            (true, Some(id)) => {
                assert!(id.to_u64() != 0 && old.pq(id).is_none());
                for k in &mut expected.pq {
                    if Some(k.id) == old.pq_current {
                        k.superseded = Some(now);
                    }
                }
                expected.pq.push(PqView {
                    sequence: old.next_sequence,
                    published: false,
                    id,
                    kind: PQ_LAST_RESORT,
                    created: now,
                    superseded: None,
                });
                expected.pq.sort_unstable_by_key(|k| k.id);
                expected.pq_current = Some(id);
                expected.next_sequence = old.next_sequence + 1;
            }
            (false, None) => {}
            (due, rotated) => panic!("last-resort rotation due: {due}, rotated: {rotated:?}"),
        }
    }
    assert_eq!(
        report.clock_went_backwards, backwards,
        "clock_went_backwards"
    );
    #[cfg(feature = "pqxdh")]
    let pq_rotated = report.rotated_pq_last_resort_prekey.is_some();
    #[cfg(not(feature = "pqxdh"))]
    let pq_rotated = false;
    assert_eq!(
        report.needs_upload(),
        report.rotated_signed_prekey.is_some() || pq_rotated
    );
    expected.standby_at = after.standby_at;
    assert_eq!(
        after, expected,
        "maintain({now}) did not do what the model says"
    );
    check_store_agrees(store, &after);
}

/// `after_restore` on a copy (SPEC.md §8.2): every prekey replaced (a new current and
/// standby signed prekey created now, as many one-time prekeys of each kind as held (at
/// most the cap), a last-resort one if one was current), the identity, replay capacity,
/// one-time prekey cap and sequence counter carried over, everything old dropped with its
/// records, nothing published.
pub(crate) fn exercise_after_restore(store: &LocalDevice, now: u64) {
    let fx = fixture();
    let bytes = store.to_bytes();
    let old = store_view(&bytes);
    let mut copy = LocalDevice::from_bytes(&bytes).unwrap();
    let old_pq_one_time = old.pq_of(PQ_ONE_TIME).count();
    let held = old.one_time.len() + old_pq_one_time + usize::from(old.pq_current.is_some());
    let restored = match copy.after_restore(now, &mut rng(9)) {
        Ok(restored) => restored,
        Err(e) => {
            // Only a crafted store whose sequence counter cannot issue as many numbers.
            assert_eq!(e, Error::StoreFull);
            assert!(old.next_sequence.checked_add(held as u64).is_none());
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
    assert_eq!(new.identity, old.identity, "the identity changed");
    assert_eq!(restored.signed_prekey, new.current);
    assert_eq!(new.signed.len(), 1);
    let current = new.current_entry();
    assert_eq!((current.created, current.superseded), (now, None));
    assert!(current.records.is_empty(), "records carried over");
    assert!(new.standby.is_some());
    assert_eq!(new.standby_created, Some(now));
    assert_eq!(new.capacity, old.capacity);
    assert_eq!(new.one_time_cap, old.one_time_cap);
    for e in &old.signed {
        assert!(
            copy.signed_prekey(e.id).is_none(),
            "an old signed prekey survived"
        );
    }
    let cap = old.one_time_cap as usize;
    let one_time = old.one_time.len().min(cap.min(MAX_ONE_TIME_PREKEYS));
    assert_eq!(restored.one_time_prekeys.len(), one_time);
    assert_eq!(new.one_time_by_age(), restored.one_time_prekeys);
    for k in &old.one_time {
        assert!(
            copy.one_time_prekey(k.id).is_none(),
            "an old one-time prekey survived"
        );
    }
    let pq_one_time = old_pq_one_time.min(cap.min(MAX_PQ_ONE_TIME_PREKEYS));
    assert_eq!(restored.pq_one_time_prekeys.len(), pq_one_time);
    assert_eq!(new.pq_one_time_by_age(), restored.pq_one_time_prekeys);
    assert_eq!(
        restored.pq_last_resort_prekey.is_some(),
        old.pq_current.is_some()
    );
    assert_eq!(new.pq_current, restored.pq_last_resort_prekey);
    for k in &new.pq {
        assert!(
            old.pq(k.id).is_none(),
            "an old post-quantum prekey survived"
        );
        if k.kind == PQ_LAST_RESORT {
            assert_eq!((k.created, k.superseded), (now, None));
        }
    }
    assert!(new.one_time.iter().all(|k| !k.published));
    assert!(new.pq.iter().all(|k| !k.published));
    let generated = one_time + pq_one_time + usize::from(old.pq_current.is_some());
    assert_eq!(new.next_sequence, old.next_sequence + generated as u64);
    // A message naming an old signed prekey is now refused by its signed prekey.
    let probe = &fx.initial[3].wire;
    if let Ok(Message::Initial(m)) = Message::parse(probe) {
        let before = copy.to_bytes();
        assert_eq!(
            copy.accept(probe, &SessionOptions::new()).err(),
            Some(Error::UnknownSignedPreKey(m.signed_prekey_id()))
        );
        assert_eq!(*copy.to_bytes(), *before);
    }
    check_reloads(&copy);
}

/// The post-quantum half of a loaded device (SPEC.md §7.5, §8): its PQXDH bundle names a
/// one-time post-quantum prekey or the current last-resort one; a PQXDH probe is accepted
/// or refused by the store rules; generation (evicting the oldest beyond the cap) and
/// rotation (the old last-resort key replaced now) succeed or fail with `StoreFull` without
/// change; the current last-resort prekey cannot be retired.
#[cfg(feature = "pqxdh")]
pub(crate) fn exercise_pq_store(store: &mut LocalDevice, now: u64) {
    let fx = fixture();
    let first_pq = store.pq_one_time_prekeys().next().map(PqPreKey::id);
    let current_last_resort = match store.pq_bundle(None, None) {
        Ok(b) => {
            let id = b.post_quantum_prekey_id().unwrap();
            let k = store.pq_prekey(id).expect("the bundle's key is held");
            assert_eq!(k.kind(), PqPreKeyKind::LastResort);
            assert_eq!(b.to_bytes()[BUNDLE_PQ_KEY], k.public_key()[..]);
            Some(id)
        }
        Err(e) => {
            assert_eq!(e, Error::UnknownPqPreKey(PqPreKeyId::from_u64(0)));
            None
        }
    };
    assert_eq!(
        store.current_pq_last_resort_prekey().map(PqPreKey::id),
        current_last_resort
    );
    if let Some(id) = first_pq {
        let b = store.pq_bundle(None, Some(id)).unwrap();
        assert_eq!(b.post_quantum_prekey_id(), Some(id));
    }
    if let Some(id) = current_last_resort {
        assert!(!store.retire_pq_last_resort_prekey(id));
        assert!(!store.remove_pq_one_time_prekey(id));
        assert_eq!(
            store.pq_bundle(None, Some(id)).err(),
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
    let view = store_view(&before);
    let held = view.pq_one_time_by_age();
    let cap = (view.one_time_cap as usize).min(MAX_PQ_ONE_TIME_PREKEYS);
    match store.generate_pq_one_time_prekeys(1, &mut rng(12)) {
        Ok(generated) => {
            assert_eq!(generated.created.len(), 1);
            let id = generated.created[0];
            assert!(id.to_u64() != 0 && view.pq(id).is_none());
            let excess = (held.len() + 1).saturating_sub(cap);
            assert_eq!(generated.evicted, held[..excess], "not the oldest evicted");
            let after = store_view(&store.to_bytes());
            assert_eq!(
                after.pq_one_time_by_age(),
                [&held[excess..], &[id]].concat()
            );
            let k = after.pq(id).unwrap();
            assert_eq!((k.sequence, k.published), (view.next_sequence, false));
            assert_eq!(after.next_sequence, view.next_sequence + 1);
            assert_eq!(
                store.pq_prekey(id).map(PqPreKey::kind),
                Some(PqPreKeyKind::OneTime)
            );
            let last_resort: Vec<&PqView> = view.pq_of(PQ_LAST_RESORT).collect();
            assert_eq!(after.pq_of(PQ_LAST_RESORT).collect::<Vec<_>>(), last_resort);
            assert_eq!(store.mark_pq_prekeys_published(&[id]), 1);
            assert!(store
                .unpublished_pq_one_time_prekeys()
                .all(|k| k.id() != id));
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert!(view.next_sequence == u64::MAX);
            assert_eq!(
                *store.to_bytes(),
                *before,
                "failed generation changed store"
            );
        }
    }
    let before = store.to_bytes();
    let view = store_view(&before);
    match store.rotate_pq_last_resort_prekey(now, &mut rng(13)) {
        Ok(id) => {
            assert!(id.to_u64() != 0 && view.pq(id).is_none());
            let b = store.pq_bundle(None, None).unwrap();
            assert_eq!(b.post_quantum_prekey_id(), Some(id));
            let after = store_view(&store.to_bytes());
            assert_eq!(after.pq_current, Some(id));
            let k = after.pq(id).unwrap();
            assert_eq!(
                (k.sequence, k.kind, k.created, k.superseded),
                (view.next_sequence, PQ_LAST_RESORT, now, None)
            );
            if let Some(old) = current_last_resort {
                assert_eq!(after.pq(old).unwrap().superseded, Some(now));
                assert!(store.retire_pq_last_resort_prekey(old));
                assert!(store.pq_prekey(old).is_none());
            }
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert!(
                view.pq_of(PQ_LAST_RESORT).count() >= MAX_PQ_LAST_RESORT_PREKEYS
                    || view.next_sequence == u64::MAX
            );
            assert_eq!(*store.to_bytes(), *before, "failed rotation changed store");
        }
    }
}
