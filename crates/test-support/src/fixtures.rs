//! Alice and Bob: identities, prekey stores, bundles, and session pairs at the usual points
//! of their life, in every mode (X3DH or PQXDH, header encryption or not).
//!
//! Two shapes serve two styles of test: [`Party`], [`Offer`] and [`Pair`] (each side a
//! party with its own store, messages delivered through helpers), and [`Parties`] with the
//! `*_pair` functions (Bob's store only, the sessions handed back as a tuple).

use doubleratchet::{
    Accepted, Error, IdentityKeyPair, Limits, PreKeyBundle, PreKeyStore, Session, SessionOptions,
};
use rand_chacha::ChaCha20Rng;

use crate::rng::{rng, text};

/// A user of the crate: an identity and a prekey store.
pub struct Party {
    /// The long-term identity.
    pub identity: IdentityKeyPair,
    /// The party's prekey store.
    pub store: PreKeyStore,
}

impl Party {
    /// A new identity with a new store.
    pub fn new(rng: &mut ChaCha20Rng) -> Party {
        let identity = IdentityKeyPair::generate(rng).unwrap();
        let store = PreKeyStore::new(&identity, rng).unwrap();
        Party { identity, store }
    }

    /// A freshly published bundle with a new one-time prekey, as a peer receives it (through
    /// its encoding).
    pub fn bundle(&mut self, rng: &mut ChaCha20Rng) -> PreKeyBundle {
        let id = self.store.generate_one_time_prekeys(1, rng).unwrap()[0].id();
        let bundle = self.store.bundle(&self.identity, Some(id)).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// A last-resort bundle without a one-time prekey.
    pub fn bundle_without_one_time_prekey(&self) -> PreKeyBundle {
        let bundle = self.store.bundle(&self.identity, None).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// Accepts a session from an initial message through the prekey store.
    pub fn accept(&mut self, message: &[u8]) -> Result<Accepted, Error> {
        self.store.accept(&self.identity, message)
    }

    /// The store's encoding, to compare before and after a rejected message.
    pub fn store_state(&self) -> Vec<u8> {
        self.store.to_bytes().to_vec()
    }
}

/// Alice has initiated a session from Bob's freshly published bundle (with a one-time
/// prekey) and encrypted her first, initial message, which Bob has not seen yet.
pub struct Offer {
    /// The initiator.
    pub alice: Party,
    /// The responder.
    pub bob: Party,
    /// The bundle of Bob's that Alice used.
    pub bundle: PreKeyBundle,
    /// Alice's session.
    pub a: Session,
    /// Alice's first message.
    pub first: Vec<u8>,
    /// The RNG the fixture drew from, for what the test does next.
    pub rng: ChaCha20Rng,
}

impl Offer {
    /// The offer made from `seed`.
    pub fn new(seed: u64) -> Offer {
        let mut rng = rng(seed);
        let alice = Party::new(&mut rng);
        let mut bob = Party::new(&mut rng);
        let bundle = bob.bundle(&mut rng);
        let mut a = Session::initiate(&alice.identity, &bundle, &mut rng).unwrap();
        let first = a.encrypt(b"first", &mut rng).unwrap();
        Offer {
            alice,
            bob,
            bundle,
            a,
            first,
            rng,
        }
    }

    /// The id of the one-time prekey the offer uses.
    pub fn one_time_prekey(&self) -> u64 {
        self.bundle.one_time_prekey_id().unwrap()
    }

    /// Bob accepts the first message through his prekey store.
    pub fn accepted(mut self) -> Pair {
        let accepted = self.bob.accept(&self.first).unwrap();
        assert_eq!(accepted.plaintext, b"first");
        assert_eq!(accepted.used_one_time_prekey, Some(self.one_time_prekey()));
        Pair {
            alice: self.alice,
            bob: self.bob,
            a: self.a,
            b: accepted.session,
            rng: self.rng,
        }
    }
}

/// Alice and Bob with one session each.
pub struct Pair {
    /// The initiator.
    pub alice: Party,
    /// The responder.
    pub bob: Party,
    /// Alice's session (the initiator).
    pub a: Session,
    /// Bob's session (the responder).
    pub b: Session,
    /// The RNG the fixture drew from, for what the test does next.
    pub rng: ChaCha20Rng,
}

impl Pair {
    /// Alice has initiated from Bob's bundle and sent one initial message, which Bob has
    /// accepted. Alice is still awaiting a reply; Bob has not sent anything.
    pub fn started(seed: u64) -> Pair {
        Offer::new(seed).accepted()
    }

    /// Both sides have sent and received: Bob replied to Alice's first message and Alice
    /// answered with a normal message on a new ratchet key, which Bob decrypted. Both
    /// have a sending and a receiving chain and no skipped keys.
    pub fn established(seed: u64) -> Pair {
        let mut p = Pair::started(seed);
        p.deliver_b_to_a(b"reply");
        p.deliver_a_to_b(b"answer");
        assert!(!p.a.awaiting_reply());
        p
    }

    /// Alice encrypts; returns the wire message.
    pub fn a_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.a.encrypt(plaintext, &mut self.rng).unwrap()
    }

    /// Bob encrypts; returns the wire message.
    pub fn b_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.b.encrypt(plaintext, &mut self.rng).unwrap()
    }

    /// Alice encrypts and Bob decrypts at once; returns the wire message.
    #[track_caller]
    pub fn deliver_a_to_b(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let m = self.a_sends(plaintext);
        assert_eq!(self.b.decrypt(&m).unwrap(), plaintext);
        m
    }

    /// Bob encrypts and Alice decrypts at once; returns the wire message.
    #[track_caller]
    pub fn deliver_b_to_a(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let m = self.b_sends(plaintext);
        assert_eq!(self.a.decrypt(&m).unwrap(), plaintext);
        m
    }

    /// `rounds` ratchet round trips (each a DH ratchet step on both sides).
    pub fn ping_pong(&mut self, rounds: usize) {
        for i in 0..rounds {
            self.deliver_a_to_b(&text("ping", i));
            self.deliver_b_to_a(&text("pong", i));
        }
    }
}

/// Alice (the initiator), Bob (the responder), Bob's prekey store and the bundle Alice
/// fetched (Bob's current signed prekey and his first one-time prekey).
pub struct Parties {
    /// Alice's identity.
    pub alice: IdentityKeyPair,
    /// Bob's identity.
    pub bob: IdentityKeyPair,
    /// Bob's prekey store.
    pub store: PreKeyStore,
    /// The bundle Alice fetched, through its encoding.
    pub bundle: PreKeyBundle,
}

impl Parties {
    /// Generates both identities and a store with four one-time prekeys.
    pub fn new(rng: &mut ChaCha20Rng) -> Self {
        Self::with_kind(rng, false)
    }

    /// As [`Parties::new`]; with `post_quantum` the store also holds a one-time
    /// post-quantum prekey and the bundle is a PQXDH bundle (this needs the `pqxdh`
    /// feature of this crate).
    pub fn with_kind(rng: &mut ChaCha20Rng, post_quantum: bool) -> Self {
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
    pub fn initiate(&self, rng: &mut ChaCha20Rng) -> Session {
        Session::initiate(&self.alice, &self.bundle, rng).unwrap()
    }

    /// Alice's new session with Bob, header-encrypted (SPEC.md §4.8) or not. Draws from
    /// the RNG exactly as [`Parties::initiate`].
    pub fn initiate_in_mode(&self, header_encryption: bool, rng: &mut ChaCha20Rng) -> Session {
        let options = if header_encryption {
            SessionOptions::new().header_encryption()
        } else {
            SessionOptions::new()
        };
        let session = Session::initiate_with(&self.alice, &self.bundle, &options, rng).unwrap();
        assert_eq!(session.is_header_encrypted(), header_encryption);
        session
    }

    /// Bob accepts an initial message through his store (which deletes the one-time
    /// prekey it used), with the given limits.
    pub fn accept(&mut self, message: &[u8], limits: Limits) -> Result<(Session, Vec<u8>), Error> {
        let accepted = self.store.accept_with_limits(&self.bob, message, limits)?;
        Ok((accepted.session, accepted.plaintext))
    }
}

#[cfg(feature = "pqxdh")]
fn pq_bundle(
    bob: &IdentityKeyPair,
    store: &mut PreKeyStore,
    one_time: u64,
    rng: &mut ChaCha20Rng,
) -> PreKeyBundle {
    let pq = store.generate_pq_one_time_prekeys(bob, 1, rng).unwrap()[0].id();
    store.pq_bundle(bob, Some(one_time), Some(pq)).unwrap()
}

#[cfg(not(feature = "pqxdh"))]
fn pq_bundle(
    _: &IdentityKeyPair,
    _: &mut PreKeyStore,
    _: u64,
    _: &mut ChaCha20Rng,
) -> PreKeyBundle {
    panic!("PQXDH sessions need the `pqxdh` feature of doubleratchet-test-support")
}

/// A session pair with its parties and RNG: `(parties, alice's session, bob's session, rng)`.
pub type SessionPair = (Parties, Session, Session, ChaCha20Rng);

/// Alice has sent one initial message and Bob has accepted it; Alice still awaits a reply.
pub fn accepted_pair(seed: u64) -> SessionPair {
    accepted_pair_in_mode(seed, false, false)
}

/// [`accepted_pair`] agreed with PQXDH or X3DH, in header-encrypted mode or not.
/// `accepted_pair_in_mode(seed, false, false)` is `accepted_pair(seed)`.
pub fn accepted_pair_in_mode(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
) -> SessionPair {
    let mut rng = rng(seed);
    let mut parties = Parties::with_kind(&mut rng, post_quantum);
    let mut a = parties.initiate_in_mode(header_encryption, &mut rng);
    let first = a.encrypt(b"first", &mut rng).unwrap();
    let (b, plaintext) = parties.accept(&first, Limits::default()).unwrap();
    assert_eq!(plaintext, b"first");
    assert_eq!(b.is_header_encrypted(), header_encryption);
    assert_eq!(b.is_post_quantum(), post_quantum);
    (parties, a, b, rng)
}

/// A session pair where Alice has decrypted Bob's reply, so both sides send normal
/// messages.
pub fn established_pair(seed: u64) -> SessionPair {
    established_pair_in_mode(seed, false, false)
}

/// [`established_pair`] agreed with PQXDH or X3DH, in header-encrypted mode or not.
pub fn established_pair_in_mode(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
) -> SessionPair {
    let (parties, mut a, mut b, mut rng) =
        accepted_pair_in_mode(seed, post_quantum, header_encryption);
    let reply = b.encrypt(b"reply", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    assert!(!a.awaiting_reply());
    (parties, a, b, rng)
}
