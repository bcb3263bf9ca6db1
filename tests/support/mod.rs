//! Helpers shared by `persistence.rs`, `golden.rs` and `properties.rs`: seeded RNGs, the
//! two parties of a conversation with the responder's prekey store, session pairs at the
//! usual points of their life, and reload helpers that check the storage encoding is
//! canonical (loading then storing gives back the very same bytes).
//!
//! Not every test file uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use doubleratchet::{Error, IdentityKeyPair, Limits, Message, PreKeyBundle, PreKeyStore, Session};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The deterministic RNG every test uses.
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Alice (the initiator), Bob (the responder), Bob's prekey store and the bundle Alice
/// fetched (Bob's current signed prekey and his first one-time prekey).
pub(crate) struct Parties {
    pub(crate) alice: IdentityKeyPair,
    pub(crate) bob: IdentityKeyPair,
    pub(crate) store: PreKeyStore,
    pub(crate) bundle: PreKeyBundle,
}

impl Parties {
    /// Generates both identities and a store with four one-time prekeys.
    pub(crate) fn new(rng: &mut ChaCha20Rng) -> Self {
        Self::with_kind(rng, false)
    }

    /// As [`Parties::new`]; with `post_quantum` (and the `pqxdh` feature) the store also
    /// holds a one-time post-quantum prekey and the bundle is a PQXDH bundle.
    pub(crate) fn with_kind(rng: &mut ChaCha20Rng, post_quantum: bool) -> Self {
        let alice = IdentityKeyPair::generate(rng).unwrap();
        let bob = IdentityKeyPair::generate(rng).unwrap();
        let mut store = PreKeyStore::new(&bob, rng).unwrap();
        let first = store.generate_one_time_prekeys(4, rng).unwrap()[0].id();
        let bundle = if post_quantum {
            pq_bundle(&bob, &mut store, first, rng)
        } else {
            store.bundle(&bob, Some(first)).unwrap()
        };
        // The bundle travels through the server as bytes.
        let bundle = PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap();
        Parties {
            alice,
            bob,
            store,
            bundle,
        }
    }

    /// Alice's new session with Bob.
    pub(crate) fn initiate(&self, rng: &mut ChaCha20Rng) -> Session {
        Session::initiate(&self.alice, &self.bundle, rng).unwrap()
    }

    /// Bob accepts an initial message through his store (which deletes the one-time
    /// prekey it used), with the given limits.
    pub(crate) fn accept(
        &mut self,
        message: &[u8],
        limits: Limits,
    ) -> Result<(Session, Vec<u8>), Error> {
        let accepted = self.store.accept_with_limits(&self.bob, message, limits)?;
        Ok((accepted.session, accepted.plaintext))
    }
}

#[cfg(feature = "pqxdh")]
fn pq_bundle(
    bob: &IdentityKeyPair,
    store: &mut PreKeyStore,
    one_time: u32,
    rng: &mut ChaCha20Rng,
) -> PreKeyBundle {
    let pq = store.generate_pq_one_time_prekeys(bob, 1, rng).unwrap()[0].id();
    store.pq_bundle(bob, Some(one_time), Some(pq)).unwrap()
}

#[cfg(not(feature = "pqxdh"))]
fn pq_bundle(
    _: &IdentityKeyPair,
    _: &mut PreKeyStore,
    _: u32,
    _: &mut ChaCha20Rng,
) -> PreKeyBundle {
    panic!("PQXDH sessions need the `pqxdh` feature")
}

/// Alice has sent one initial message and Bob has accepted it; Alice still awaits a reply.
pub(crate) fn accepted_pair(seed: u64) -> (Parties, Session, Session, ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut parties = Parties::new(&mut rng);
    let mut a = parties.initiate(&mut rng);
    let first = a.encrypt(b"first", &mut rng).unwrap();
    let (b, plaintext) = parties.accept(&first, Limits::default()).unwrap();
    assert_eq!(plaintext, b"first");
    (parties, a, b, rng)
}

/// A session pair where Alice has decrypted Bob's reply, so both sides send normal
/// messages.
pub(crate) fn established_pair(seed: u64) -> (Parties, Session, Session, ChaCha20Rng) {
    let (parties, mut a, mut b, mut rng) = accepted_pair(seed);
    let reply = b.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    assert!(!a.awaiting_reply());
    (parties, a, b, rng)
}

/// The session's storage encoding as a plain vector.
pub(crate) fn stored(session: &Session) -> Vec<u8> {
    session.to_bytes().to_vec()
}

/// Loads `bytes` as a session and checks that storing it again gives the same bytes.
pub(crate) fn load(bytes: &[u8]) -> Session {
    let session = Session::from_bytes(bytes).unwrap();
    assert_eq!(
        &session.to_bytes()[..],
        bytes,
        "re-encoding a loaded session changed its bytes"
    );
    session
}

/// Stores and loads a session (what an app does between two messages).
pub(crate) fn reload(session: &Session) -> Session {
    load(&session.to_bytes())
}

/// Whether the message is an initial (prekey) message.
pub(crate) fn is_initial(message: &[u8]) -> bool {
    matches!(Message::parse(message).unwrap(), Message::Initial(_))
}

/// The header fields of a message: sender's ratchet key, `N`, `PN`.
pub(crate) fn header(message: &[u8]) -> ([u8; 32], u32, u32) {
    let parsed = Message::parse(message).unwrap();
    (
        *parsed.ratchet_key().unwrap(),
        parsed.message_number().unwrap(),
        parsed.previous_chain_length().unwrap(),
    )
}
