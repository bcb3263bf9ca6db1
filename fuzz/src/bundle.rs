//! The `bundle` target: prekey bundles, verified and used to initiate.

use crate::decode_message::{check_bundle_encoding, check_message_layout};
use crate::prelude::*;
use crate::respond::{check_store_accept, Expect};

/// `PreKeyBundle::from_bytes` and `verify`, and `Session::initiate` (classical and
/// header-encrypted) with a fixed Alice on every bundle, classical (`0x10`) or PQXDH
/// (`0x11`): what parses re-encodes to exactly the input; Alice refuses exactly the bundles
/// that do not verify and her own, and a classical one when she requires PQXDH; the
/// session she makes is post-quantum exactly for a PQXDH bundle and sends initial messages
/// naming the bundle's prekeys; and when the bundle is Bob's, Bob accepts (by
/// `Session::respond`, or his prekey store for PQXDH) exactly when its prekeys are his,
/// and his reply decrypts.
pub fn bundle(data: &[u8]) {
    let Some(b) = check_bundle_encoding(data) else {
        return;
    };
    let fx = fixture();
    // The policy is checked before the bundle is otherwise used.
    let required = SessionOptions::new().require_post_quantum();
    if !b.is_post_quantum() {
        let r = Session::initiate(&fx.alice, &b, &required, &mut rng(8));
        assert_eq!(r.err(), Some(Error::PostQuantumRequired));
    }
    #[cfg(feature = "pqxdh")]
    if b.is_post_quantum() && b.verify().is_ok() {
        check_pq_signature(&b, data);
    }
    for header_encryption in [false, true] {
        check_initiate(&b, data, header_encryption);
    }
}

/// A verified PQXDH bundle: its post-quantum signature covers exactly `0x0A || ek`
/// (SPEC.md §3.6), so a changed signature fails and a changed post-quantum id does not.
#[cfg(feature = "pqxdh")]
pub(crate) fn check_pq_signature(b: &PreKeyBundle, data: &[u8]) {
    let mut bad_signature = data.to_vec();
    bad_signature[BUNDLE_PQ_SIGNATURE.start] ^= 1;
    let changed = PreKeyBundle::from_bytes(&bad_signature).unwrap();
    assert_eq!(changed.verify(), Err(Error::InvalidSignature));
    let mut other_id = data.to_vec();
    other_id[BUNDLE_PQ_ID.end - 1] ^= 1;
    let changed = PreKeyBundle::from_bytes(&other_id).unwrap();
    assert_eq!(
        changed.post_quantum_prekey_id(),
        b.post_quantum_prekey_id()
            .map(|id| PqPreKeyId::from_u64(id.to_u64() ^ 1))
    );
    assert_eq!(changed.verify(), Ok(()));
}

pub(crate) fn check_initiate(b: &PreKeyBundle, data: &[u8], header_encryption: bool) {
    let fx = fixture();
    let own = b.identity_key() == fx.alice.public_key();
    let verified = b.verify();
    let initiated = if header_encryption {
        Session::initiate(&fx.alice, b, &he_options(), &mut rng(8))
    } else {
        Session::initiate(&fx.alice, b, &SessionOptions::new(), &mut rng(8))
    };
    let mut a = match (verified, initiated) {
        (Ok(()), Ok(a)) => {
            assert!(!own, "Alice started a session with herself");
            a
        }
        (Ok(()), Err(e)) => {
            assert!(own, "a verified bundle was refused: {e:?}");
            assert_eq!(e, Error::WrongSession);
            return;
        }
        (Err(v), Ok(_)) => panic!("a bundle that does not verify ({v:?}) was used"),
        (Err(v), Err(e)) => {
            assert_eq!(v, Error::InvalidSignature);
            assert_eq!(e, if own { Error::WrongSession } else { v });
            return;
        }
    };
    assert_eq!(a.role(), Role::Initiator);
    assert!(a.awaiting_reply());
    assert_eq!(a.remote_identity(), b.identity_key());
    assert_eq!(a.is_header_encrypted(), header_encryption);
    assert_eq!(a.is_post_quantum(), b.is_post_quantum());
    let wire = a.encrypt(b"hello bundle", &mut rng(9)).unwrap();
    let parsed = Message::parse(&wire).unwrap();
    check_message_layout(&parsed, &wire);
    let Message::Initial(m) = parsed else {
        panic!("the first message is not an initial message");
    };
    assert_eq!(m.identity_key(), fx.alice.public_key());
    assert_eq!(m.signed_prekey_id(), b.signed_prekey_id());
    assert_eq!(m.one_time_prekey_id(), b.one_time_prekey_id());
    assert_eq!(m.session_id(b.identity_key()), a.id());
    assert_eq!(m.is_post_quantum(), b.is_post_quantum());
    #[cfg(feature = "pqxdh")]
    assert_eq!(m.post_quantum_prekey_id(), b.post_quantum_prekey_id());
    assert_eq!(m.is_header_encrypted(), header_encryption);

    if b.identity_key() != fx.bob.public_key() {
        return;
    }
    let spk_id = b.signed_prekey_id();
    let key_at = |range: core::ops::Range<usize>| <[u8; 32]>::try_from(&data[range]).unwrap();
    let spk_matches =
        bob_spk(spk_id).map(|k| k.public_key().to_bytes()) == Some(key_at(BUNDLE_SPK));
    let opk_matches = match b.one_time_prekey_id() {
        None => true,
        Some(id) => bob_opk(id).map(|k| k.public_key().to_bytes()) == Some(key_at(BUNDLE_OPK)),
    };
    // With PQXDH, Bob accepts through his store, which also holds the post-quantum prekeys.
    let (result, pq_matches, pq_unknown) = if let Some(id) = m.post_quantum_prekey_id() {
        // `Session::respond` is classical only.
        let r = Session::respond(&fx.bob, bob_spk, bob_opk, &wire, &SessionOptions::new());
        assert_eq!(r.err(), Some(Error::UnknownPqPreKey(id)));
        #[cfg(feature = "pqxdh")]
        let held = fx
            .store
            .pq_prekey(id)
            .map(|k| k.public_key()[..] == data[BUNDLE_PQ_KEY]);
        #[cfg(not(feature = "pqxdh"))]
        let held: Option<bool> = None;
        let pq_matches = held == Some(true);
        let expected = if spk_matches && opk_matches && pq_matches {
            Expect::Accept(b.one_time_prekey_id())
        } else {
            Expect::Refuse
        };
        let r = with_bob_store(|store| check_store_accept(store, &wire, expected));
        (r, pq_matches, held.is_none().then_some(id))
    } else {
        (
            Session::respond(&fx.bob, bob_spk, bob_opk, &wire, &SessionOptions::new()),
            true,
            None,
        )
    };
    let all_match = spk_matches && opk_matches && pq_matches;
    match result {
        Ok(accepted) => {
            assert!(all_match, "Bob accepted a bundle not his");
            assert_eq!(accepted.plaintext, b"hello bundle");
            assert_eq!(accepted.used_one_time_prekey, b.one_time_prekey_id());
            assert_eq!(
                accepted.used_post_quantum_prekey,
                m.post_quantum_prekey_id()
            );
            let mut s = accepted.session;
            assert_eq!(s.id(), a.id());
            assert_eq!(s.is_header_encrypted(), header_encryption);
            assert_eq!(s.is_post_quantum(), b.is_post_quantum());
            let reply = s.encrypt(b"hi alice", &mut rng(10)).unwrap();
            assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"hi alice");
        }
        Err(e) => {
            assert!(!all_match, "Bob refused his own bundle: {e:?}");
            if bob_spk(spk_id).is_none() {
                assert_eq!(e, Error::UnknownSignedPreKey(spk_id));
            } else if let Some(id) = b.one_time_prekey_id().filter(|id| bob_opk(*id).is_none()) {
                assert_eq!(e, Error::UnknownOneTimePreKey(id));
            } else if let Some(id) = pq_unknown {
                assert_eq!(e, Error::UnknownPqPreKey(id));
            } else {
                assert_eq!(e, Error::DecryptionFailed);
            }
        }
    }
}
