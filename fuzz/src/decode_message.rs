//! The `decode_message` target: `Message::parse` and `PreKeyBundle::from_bytes` on
//! arbitrary bytes.

use crate::prelude::*;

/// `Message::parse` and `PreKeyBundle::from_bytes`: whatever decodes re-encodes to exactly
/// the input, its accessors agree with the bytes, and failures are the documented errors.
pub fn decode_message(data: &[u8]) {
    match Message::parse(data) {
        Ok(m) => check_message_layout(&m, data),
        Err(e) => assert!(
            matches!(
                e,
                Error::TooLarge
                    | Error::Truncated
                    | Error::UnsupportedVersion(_)
                    | Error::UnexpectedType(_)
                    | Error::InvalidEncoding
                    | Error::InvalidPublicKey
            ),
            "undocumented parse error {e:?}"
        ),
    }
    check_bundle_encoding(data);
}

/// A parsed message against its bytes (SPEC.md §5): the type byte names the kind
/// (normal or initial, classical or PQXDH, header in the clear or encrypted), every
/// field sits where the layout puts it, and the encoding is exactly the input.
pub(crate) fn check_message_layout(m: &Message<'_>, data: &[u8]) {
    assert_eq!(m.to_bytes(), data, "message re-encodes differently");
    assert_eq!(Message::parse(data).as_ref(), Ok(m));
    assert_eq!(data[0], WIRE_VERSION);
    let he = m.is_header_encrypted();
    let (kind, fields_len) = match m {
        Message::Normal(_) => (if he { TYPE_NORMAL_HE } else { TYPE_NORMAL }, 0),
        Message::Initial(i) => {
            assert_eq!(i.is_header_encrypted(), he);
            assert_eq!(i.identity_key().as_bytes(), &data[2..34]);
            assert_eq!(i.base_key().as_bytes(), &data[34..66]);
            assert_eq!(
                i.signed_prekey_id().to_u64().to_be_bytes(),
                data[INITIAL_SPK_ID]
            );
            match i.one_time_prekey_id() {
                Some(id) => {
                    assert_eq!(data[INITIAL_OPK_FLAG], 1);
                    assert_eq!(id.to_u64().to_be_bytes(), data[INITIAL_OPK_ID]);
                }
                None => assert_eq!(data[INITIAL_OPK_FLAG..INITIAL_FIELDS_END], [0; 9]),
            }
            // The session id is a function of the message and the responder.
            let bob = fixture().bob.public_key();
            assert_eq!(i.session_id(bob), i.session_id(bob));
            let pq = i.post_quantum_prekey_id();
            assert_eq!(i.is_post_quantum(), pq.is_some());
            if let Some(id) = pq {
                assert_eq!(id.to_u64().to_be_bytes(), data[PQ_ID]);
                check_kem_ciphertext_layout(m, data);
            }
            let kind = match (pq.is_some(), he) {
                (false, false) => TYPE_INITIAL,
                (true, false) => TYPE_INITIAL_PQ,
                (false, true) => TYPE_INITIAL_HE,
                (true, true) => TYPE_INITIAL_PQ_HE,
            };
            let pq_len = if pq.is_some() { PQ_FIELDS } else { 0 };
            (kind, X3DH_FIELDS + pq_len)
        }
        _ => panic!("Message::parse returned a message type this target does not know"),
    };
    assert_eq!(data[1], kind);
    let header_len = if he { SEALED_HEADER } else { PLAIN_HEADER };
    let prefix = 2 + fields_len + header_len;
    assert_eq!(m.ciphertext_len(), data.len() - prefix);
    assert!(m.ciphertext_len() >= TAG);
    let header = &data[prefix - header_len..prefix];
    if he {
        assert_eq!(m.ratchet_key(), None);
        assert_eq!(m.message_number(), None);
        assert_eq!(m.previous_chain_length(), None);
    } else {
        assert_eq!(
            m.ratchet_key().map(|k| k.to_bytes()),
            Some(<[u8; 32]>::try_from(&header[..32]).unwrap())
        );
        let pn = m.previous_chain_length().map(u32::to_be_bytes);
        assert_eq!(pn.as_ref().map(|b| &b[..]), Some(&header[32..36]));
        let n = m.message_number().map(u32::to_be_bytes);
        assert_eq!(n.as_ref().map(|b| &b[..]), Some(&header[36..40]));
    }
}

/// A PQXDH initial message's KEM ciphertext is the opaque bytes 91..1179 (SPEC.md §5.3):
/// changing them changes the message but no other field (the ids, the session id, the
/// ratchet header, the ciphertext length), and the post-quantum prekey id is bytes 83..91.
pub(crate) fn check_kem_ciphertext_layout(m: &Message<'_>, data: &[u8]) {
    let Message::Initial(i) = m else {
        unreachable!("only initial messages have a KEM ciphertext")
    };
    let bob = fixture().bob.public_key();
    let mut changed = data.to_vec();
    changed[KEM_CT.start] ^= 0x01;
    changed[KEM_CT.end - 1] ^= 0x80;
    changed[PQ_ID.end - 1] ^= 0x01;
    let parsed = Message::parse(&changed)
        .unwrap_or_else(|e| panic!("a changed KEM ciphertext does not parse: {e:?}"));
    assert_ne!(&parsed, m);
    let Message::Initial(c) = &parsed else {
        panic!("a changed KEM ciphertext changed the message kind");
    };
    assert_eq!(
        c.post_quantum_prekey_id(),
        i.post_quantum_prekey_id()
            .map(|id| PqPreKeyId::from_u64(id.to_u64() ^ 1))
    );
    assert_eq!(c.identity_key(), i.identity_key());
    assert_eq!(c.base_key(), i.base_key());
    assert_eq!(c.signed_prekey_id(), i.signed_prekey_id());
    assert_eq!(c.one_time_prekey_id(), i.one_time_prekey_id());
    assert_eq!(c.session_id(bob), i.session_id(bob));
    assert_eq!(c.is_header_encrypted(), i.is_header_encrypted());
    assert_eq!(parsed.ratchet_key(), m.ratchet_key());
    assert_eq!(parsed.message_number(), m.message_number());
    assert_eq!(parsed.previous_chain_length(), m.previous_chain_length());
    assert_eq!(parsed.ciphertext_len(), m.ciphertext_len());
    assert_eq!(parsed.to_bytes(), changed);
}

/// `PreKeyBundle::from_bytes`: strict, exactly re-encoding, and its accessors agree with
/// the layout (SPEC.md §5.4; type `0x11` for a PQXDH bundle).
pub(crate) fn check_bundle_encoding(data: &[u8]) -> Option<PreKeyBundle> {
    match PreKeyBundle::from_bytes(data) {
        Ok(b) => {
            assert_eq!(b.to_bytes(), data, "bundle re-encodes differently");
            assert_eq!(PreKeyBundle::from_bytes(&b.to_bytes()).as_ref(), Ok(&b));
            assert_eq!(data[0], BUNDLE_VERSION);
            assert_eq!(b.identity_key().as_bytes(), &data[2..34]);
            assert_eq!(
                b.signed_prekey_id().to_u64().to_be_bytes(),
                data[BUNDLE_SPK_ID]
            );
            match b.one_time_prekey_id() {
                Some(id) => {
                    assert_eq!(data[BUNDLE_OPK_FLAG], 1);
                    assert_eq!(id.to_u64().to_be_bytes(), data[BUNDLE_OPK_ID]);
                }
                None => assert!(data[BUNDLE_OPK_FLAG..BUNDLE_OPK.end]
                    .iter()
                    .all(|b| *b == 0)),
            }
            if b.is_post_quantum() {
                assert_eq!(data[1], TYPE_BUNDLE_PQ);
                #[cfg(feature = "pqxdh")]
                {
                    assert_eq!(data.len(), PQ_BUNDLE_LENGTH);
                    let id = b.post_quantum_prekey_id().unwrap();
                    assert_eq!(id.to_u64().to_be_bytes(), data[BUNDLE_PQ_ID]);
                }
            } else {
                assert_eq!(data[1], TYPE_BUNDLE);
                assert_eq!(data.len(), BUNDLE_LENGTH);
            }
            Some(b)
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Truncated
                        | Error::TrailingData
                        | Error::UnsupportedVersion(_)
                        | Error::UnexpectedType(_)
                        | Error::InvalidEncoding
                        | Error::InvalidPublicKey
                ),
                "undocumented bundle error {e:?}"
            );
            None
        }
    }
}
