//! The `respond` target: `Session::respond` and `LocalDevice::accept` on initial messages.

use crate::prelude::*;

/// Field layout of a classical initial message, for the field-replacing mode of
/// `respond`: `(offset, width)`; the last field (ciphertext and tag) runs to the end. The
/// X3DH fields: version, type, `IK_A`, `EK_A`, SPK id, OPK flag, OPK id (8-byte ids).
pub(crate) const INITIAL_FIELDS: &[(usize, usize)] = &[
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
pub(crate) const INITIAL_HE_FIELDS: &[(usize, usize)] = &[
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
pub(crate) const INITIAL_PQ_FIELDS: &[(usize, usize)] = &[
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
pub(crate) const INITIAL_PQ_HE_FIELDS: &[(usize, usize)] = &[
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
/// `LocalDevice::accept` with Bob's store (which also holds post-quantum one-time and
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

pub(crate) fn split_u16(data: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*head), rest))
}

pub(crate) fn check_respond(candidate: &[u8], derived_from_genuine: bool) {
    let fx = fixture();
    let genuine = fx.initial.iter().find(|g| g.wire == candidate);
    let parsed = Message::parse(candidate);
    let post_quantum = match &parsed {
        Ok(Message::Initial(m)) => m.post_quantum_prekey_id(),
        _ => None,
    };
    let options = SessionOptions::new();
    let used = match Session::respond(&fx.bob, bob_spk, bob_opk, candidate, &options) {
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
            // `respond` has no store: nothing to record, notice or write.
            assert_eq!(accepted.notice, None);
            assert_eq!(accepted.replay_record, None);
            assert!(!accepted.store_keys_changed);
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
                let r = Session::respond(&fx.bob, bob_spk, |_| None, candidate, &options);
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

/// A session Bob accepted from `candidate` (by `respond` or his store) is a working
/// responder session of the message's kind: the same message again is a duplicate, it
/// stores and loads, and (for a genuine message) its reply decrypts at Alice.
pub(crate) fn check_accepted(accepted: Accepted, candidate: &[u8], genuine: Option<&Genuine>) {
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
    let mut s = reload(&s);
    let reply = s.encrypt(b"reply", &mut rng(3)).unwrap();
    assert!(matches!(Message::parse(&reply), Ok(Message::Normal(_))));
    if let Some(g) = genuine {
        let mut a = reload_session(&g.alice_state, fx.alice.public_key());
        assert!(a.awaiting_reply());
        assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"reply");
        assert!(!a.awaiting_reply());
    }
}

/// What [`check_store_accept`] must see.
pub(crate) enum Expect {
    /// Either outcome is possible.
    Unknown,
    /// Accepted, using this one-time prekey.
    Accept(Option<OneTimePreKeyId>),
    /// Refused.
    Refuse,
}

/// The post-quantum prekey an initial message names, and whether `store` holds it as a
/// one-time key.
pub(crate) fn pq_prekey_named(store: &LocalDevice, message: &[u8]) -> Option<(PqPreKeyId, bool)> {
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

/// `LocalDevice::accept` of `message` on `store` (SPEC.md §8): on error the store is
/// byte-identical; on success the one-time prekeys used (classical, post-quantum) are
/// gone and nothing else is, a session that consumed none left a replay record under the
/// signed prekey it named (which was not full), the notice is exactly what SPEC.md §8.3
/// says (the current signed prekey's records reached the replay capacity: a switch to the
/// standby, or `SignedPreKeyFull` without one), and the same message is refused next time
/// (`UnknownOneTimePreKey` / `UnknownPqPreKey` for a consumed key, `DuplicateOrExpired` for
/// a recorded one) without changing the store. `StoreFull` only for a message that
/// consumes no one-time prekey and names a full signed prekey. Returns the store's answer.
pub(crate) fn check_store_accept(
    store: &mut LocalDevice,
    message: &[u8],
    expected: Expect,
) -> Result<Accepted, Error> {
    let before = store.to_bytes();
    let view = store_view(&before);
    let one_time_before = store.one_time_prekeys().count();
    let records_before = store.replay_records();
    let pq_named = pq_prekey_named(store, message);
    #[cfg(feature = "pqxdh")]
    let pq_one_time_before = store.pq_one_time_prekeys().count();
    let fields = match Message::parse(message) {
        Ok(Message::Initial(m)) => Some((m.signed_prekey_id(), m.base_key().to_bytes())),
        _ => None,
    };
    match store.accept(message, &SessionOptions::new()) {
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
            // The journal entry (SPEC.md §8.4): the record added, exactly when one was, and
            // whether the whole store must be written.
            let record = accepted.replay_record;
            assert_eq!(
                record.map(|r| (r.signed_prekey_id(), r.base_key().to_bytes())),
                consumed_nothing.then_some((spk, base_key)),
                "wrong replay record"
            );
            assert_eq!(
                accepted.store_keys_changed,
                !consumed_nothing || expected_notice.is_some(),
                "wrong store_keys_changed"
            );
            if let Some(record) = record {
                let encoded = record.to_bytes();
                assert_eq!(encoded[..2], [STORAGE_VERSION, 0x29]);
                assert_eq!(ReplayRecord::from_bytes(&encoded), Ok(record));
                // Replaying the journal on the store as it was gives the store as it is,
                // with the same notice.
                let mut journaled = LocalDevice::from_bytes(&before).unwrap();
                assert_eq!(
                    journaled.apply_replay_records(&[record]),
                    Ok(expected_notice)
                );
                assert_eq!(
                    *journaled.to_bytes(),
                    *after,
                    "a journaled replay record gives another store"
                );
            }
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
            let replay = store.accept(message, &SessionOptions::new());
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
