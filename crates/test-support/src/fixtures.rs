//! Alice and Bob: identities, prekey stores, bundles, and session pairs at the usual points
//! of their life, in every mode (X3DH or PQXDH, header encryption or not).
//!
//! Two shapes serve two styles of test: [`Party`], [`Offer`] and [`Pair`] (each side a
//! party with its own store, messages delivered through helpers), and [`Parties`] with the
//! `*_pair` functions (Bob's store only, the sessions handed back as a tuple).

use doubleratchet::{
    Accepted, Error, IdentityKeyPair, Limits, LocalDevice, OneTimePreKey, OneTimePreKeyPublic,
    PreKeyBundle, Session, SessionOptions, SignedPreKey, SignedPreKeyPublic,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind, PqPreKeyPublic};
use rand_chacha::ChaCha20Rng;

use crate::rng::{rng, text};
use doubleratchet::OneTimePreKeyId;

/// The creation time [`bundle_of`] and [`pq_bundle_of`] give the public parts they build:
/// a bundle does not carry it (SPEC.md §5.4, §5.9), so any value gives the same bytes.
const BUNDLE_PART_CREATED: u64 = 0;

/// The bundle of `identity`'s own keys `spk` and `opk`, built as a server builds it: from
/// the public parts (SPEC.md §5.9, §5.10) with [`PreKeyBundle::assemble`], which verifies
/// the signed prekey under `identity`. Its encoding is the one the device's own
/// [`LocalDevice::bundle`] gives for the same keys.
///
/// Panics if `spk` is not signed by `identity` (or a key's id is 0): a test that wants a
/// bundle that does not verify has to forge it explicitly (for example by patching the
/// bytes of [`PreKeyBundle::to_bytes`]), not get one by passing the wrong identity.
#[track_caller]
pub fn bundle_of(
    identity: &IdentityKeyPair,
    spk: &SignedPreKey,
    opk: Option<&OneTimePreKey>,
) -> PreKeyBundle {
    let signed = SignedPreKeyPublic::from_key(spk, BUNDLE_PART_CREATED)
        .expect("bundle_of: the signed prekey's id is 0");
    let one_time = opk.map(|k| {
        OneTimePreKeyPublic::from_key(k).expect("bundle_of: the one-time prekey's id is 0")
    });
    PreKeyBundle::assemble(identity.public_key(), &signed, one_time.as_ref())
        .expect("bundle_of: the signed prekey is not signed by this identity")
}

/// [`bundle_of`] with the post-quantum prekey `pq` (one-time or last-resort, by
/// [`PqPreKey::kind`]): a PQXDH bundle, built with
/// [`PreKeyBundle::with_post_quantum`], which verifies `pq`'s signature under `identity`.
///
/// Panics if a key is not signed by `identity` (or an id is 0), as [`bundle_of`].
#[cfg(feature = "pqxdh")]
#[track_caller]
pub fn pq_bundle_of(
    identity: &IdentityKeyPair,
    spk: &SignedPreKey,
    opk: Option<&OneTimePreKey>,
    pq: &PqPreKey,
) -> PreKeyBundle {
    let part = match pq.kind() {
        PqPreKeyKind::OneTime => PqPreKeyPublic::one_time(pq),
        PqPreKeyKind::LastResort => PqPreKeyPublic::last_resort(pq, BUNDLE_PART_CREATED),
    }
    .expect("pq_bundle_of: the post-quantum prekey's id is 0");
    bundle_of(identity, spk, opk)
        .with_post_quantum(&part)
        .expect("pq_bundle_of: the post-quantum prekey is not signed by this identity")
}

/// The local device of `identity`, created at time 0: the identity is copied (through its
/// storage encoding), so the caller keeps using it, and the RNG is drawn from exactly as a
/// device created with that identity draws.
pub fn device_of<R: doubleratchet::rand_core::TryCryptoRng + ?Sized>(
    identity: &IdentityKeyPair,
    rng: &mut R,
) -> Result<LocalDevice, Error> {
    let copy = IdentityKeyPair::from_bytes(&identity.to_bytes())?;
    LocalDevice::from_identity(copy, 0, rng)
}

/// A user of the crate: an identity and a prekey store.
pub struct Party {
    /// The long-term identity.
    pub identity: IdentityKeyPair,
    /// The party's prekey store.
    pub store: LocalDevice,
}

impl Party {
    /// A new identity with a new store.
    pub fn new(rng: &mut ChaCha20Rng) -> Party {
        let identity = IdentityKeyPair::generate(rng).unwrap();
        let store = device_of(&identity, rng).unwrap();
        Party { identity, store }
    }

    /// A freshly published bundle with a new one-time prekey, as a peer receives it (through
    /// its encoding).
    pub fn bundle(&mut self, rng: &mut ChaCha20Rng) -> PreKeyBundle {
        let id = self
            .store
            .generate_one_time_prekeys(1, rng)
            .unwrap()
            .created[0];
        let bundle = self.store.bundle(Some(id)).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// A last-resort bundle without a one-time prekey.
    pub fn bundle_without_one_time_prekey(&self) -> PreKeyBundle {
        let bundle = self.store.bundle(None).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// Accepts a session from an initial message through the prekey store.
    pub fn accept(&mut self, message: &[u8]) -> Result<Accepted, Error> {
        self.store.accept(message, &SessionOptions::new())
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
        let mut a =
            Session::initiate(&alice.identity, &bundle, &SessionOptions::new(), &mut rng).unwrap();
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
    pub fn one_time_prekey(&self) -> OneTimePreKeyId {
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
    pub store: LocalDevice,
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
        let mut store = device_of(&bob, rng).unwrap();
        let first = store.generate_one_time_prekeys(4, rng).unwrap().created[0];
        let bundle = if post_quantum {
            pq_bundle(&mut store, first, rng)
        } else {
            store.bundle(Some(first)).unwrap()
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
        Session::initiate(&self.alice, &self.bundle, &SessionOptions::new(), rng).unwrap()
    }

    /// Alice's new session with Bob, header-encrypted (SPEC.md §4.8) or not. Draws from
    /// the RNG exactly as [`Parties::initiate`].
    pub fn initiate_in_mode(&self, header_encryption: bool, rng: &mut ChaCha20Rng) -> Session {
        let options = if header_encryption {
            SessionOptions::new().header_encryption()
        } else {
            SessionOptions::new()
        };
        let session = Session::initiate(&self.alice, &self.bundle, &options, rng).unwrap();
        assert_eq!(session.is_header_encrypted(), header_encryption);
        session
    }

    /// Bob accepts an initial message through his store (which deletes the one-time
    /// prekey it used), with the given limits.
    pub fn accept(&mut self, message: &[u8], limits: Limits) -> Result<(Session, Vec<u8>), Error> {
        let accepted = self
            .store
            .accept(message, &SessionOptions::new().limits(limits))?;
        Ok((accepted.session, accepted.plaintext))
    }
}

#[cfg(feature = "pqxdh")]
fn pq_bundle(
    store: &mut LocalDevice,
    one_time: OneTimePreKeyId,
    rng: &mut ChaCha20Rng,
) -> PreKeyBundle {
    let pq = store.generate_pq_one_time_prekeys(1, rng).unwrap().created[0];
    store.pq_bundle(Some(one_time), Some(pq)).unwrap()
}

#[cfg(not(feature = "pqxdh"))]
fn pq_bundle(_: &mut LocalDevice, _: OneTimePreKeyId, _: &mut ChaCha20Rng) -> PreKeyBundle {
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
