//! Helpers shared by `persistence.rs`, `golden.rs` and `properties.rs`: seeded RNGs, the
//! two parties of a conversation with the responder's prekey store, session pairs at the
//! usual points of their life, reload helpers that check the storage encoding is
//! canonical (loading then storing gives back the very same bytes), and a reader of the
//! ratchet fields of a stored session (SPEC.md §7.1), which is how the tests see the
//! header of a header-encrypted message and the skipped keys a session holds.
//!
//! Not every test file uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use curve25519_dalek::montgomery::MontgomeryPoint;
use doubleratchet::{
    Error, IdentityKeyPair, Limits, Message, PreKeyBundle, PreKeyStore, Session, SessionOptions,
};
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

    /// Alice's new session with Bob, header-encrypted (SPEC.md §4.8) or not. Draws from
    /// the RNG exactly as [`Parties::initiate`].
    pub(crate) fn initiate_in_mode(
        &self,
        header_encryption: bool,
        rng: &mut ChaCha20Rng,
    ) -> Session {
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
    panic!("PQXDH sessions need the `pqxdh` feature")
}

/// Alice has sent one initial message and Bob has accepted it; Alice still awaits a reply.
pub(crate) fn accepted_pair(seed: u64) -> (Parties, Session, Session, ChaCha20Rng) {
    accepted_pair_in_mode(seed, false, false)
}

/// [`accepted_pair`] agreed with PQXDH or X3DH, in header-encrypted mode or not.
/// `accepted_pair_in_mode(seed, false, false)` is `accepted_pair(seed)`.
pub(crate) fn accepted_pair_in_mode(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
) -> (Parties, Session, Session, ChaCha20Rng) {
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

/// A message header: the sender's ratchet key, `N`, `PN`.
pub(crate) type Header = ([u8; 32], u32, u32);

/// The header fields of a message: sender's ratchet key, `N`, `PN`.
pub(crate) fn header(message: &[u8]) -> Header {
    let parsed = Message::parse(message).unwrap();
    (
        *parsed.ratchet_key().unwrap(),
        parsed.message_number().unwrap(),
        parsed.previous_chain_length().unwrap(),
    )
}

/// The ratchet fields of a stored session, read from its storage encoding (SPEC.md §7.1,
/// types `0x20`, `0x25` and `0x28`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RatchetView {
    /// The public key of `DHs`, recomputed from the stored secret (X25519 of the base
    /// point): the ratchet key of the session's messages in its current sending chain.
    pub(crate) dhs_public: [u8; 32],
    /// `DHr`: the ratchet key of the current receiving chain.
    pub(crate) dhr: [u8; 32],
    pub(crate) has_cks: bool,
    pub(crate) has_ckr: bool,
    pub(crate) ns: u32,
    pub(crate) nr: u32,
    pub(crate) pn: u32,
    /// The stored skipped keys' indices `(ratchet key, N)`, oldest first.
    pub(crate) skipped: Vec<([u8; 32], u32)>,
    /// Header-encrypted sessions: the ratchet keys of the chains whose header keys are
    /// stored for their skipped keys, oldest first. Empty otherwise.
    pub(crate) header_key_chains: Vec<[u8; 32]>,
}

/// Reads [`RatchetView`] from a stored session; panics on anything but a well-formed
/// encoding that the layout of SPEC.md §7.1 accounts for to the last byte.
pub(crate) fn ratchet_view(bytes: &[u8]) -> RatchetView {
    struct Cursor<'a>(&'a [u8], usize);
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let out = &self.0[self.1..self.1 + n];
            self.1 += n;
            out
        }
        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }
        fn u32(&mut self) -> u32 {
            u32::from_be_bytes(self.take(4).try_into().unwrap())
        }
        fn key(&mut self) -> [u8; 32] {
            self.take(32).try_into().unwrap()
        }
        fn optional(&mut self) -> bool {
            match self.u8() {
                0 => {
                    assert_eq!(self.take(32), [0; 32]);
                    false
                }
                1 => {
                    self.take(32);
                    true
                }
                other => panic!("optional flag {other}"),
            }
        }
    }

    let mut r = Cursor(bytes, 0);
    // The layout below is that of storage version 0x02 (profile v2).
    assert_eq!(r.u8(), 0x02, "version");
    let kind = r.u8();
    r.u8(); // role
    let (post_quantum, header_encrypted) = match kind {
        0x20 => (false, false),
        0x25 => (true, false),
        0x28 => match r.u8() {
            0x02 => (false, true),
            0x03 => (true, true),
            flags => panic!("flags {flags:#04x}"),
        },
        other => panic!("not a stored session: type {other:#04x}"),
    };
    r.take(3 * 32); // identities, EK_A
    let awaiting = r.u8() == 1;
    r.take(8 + 1 + 8); // prekey ids
    if post_quantum && awaiting {
        r.take(8 + 1088);
    }
    r.take(4 + 4); // limits
    assert!(matches!(r.u8(), 0x00 | 0x01), "padding policy");
    r.take(32); // RK
    let dhs_secret = r.key();
    assert_eq!(r.u8(), 1, "DHr is always present");
    let dhr = r.key();
    let has_cks = r.optional();
    let has_ckr = r.optional();
    let (ns, nr, pn) = (r.u32(), r.u32(), r.u32());
    let count = r.u32() as usize;
    let skipped = (0..count)
        .map(|_| {
            let dh = r.key();
            let n = r.u32();
            r.take(32);
            (dh, n)
        })
        .collect();
    let mut header_key_chains = Vec::new();
    if header_encrypted {
        r.optional(); // HKs
        r.optional(); // HKr
        r.take(64); // NHKs, NHKr
        let h = r.u32() as usize;
        for _ in 0..h {
            r.take(32);
            header_key_chains.push(r.key());
        }
    }
    assert_eq!(r.1, bytes.len(), "bytes after the layout of SPEC.md §7.1");
    RatchetView {
        dhs_public: MontgomeryPoint::mul_base_clamped(dhs_secret).to_bytes(),
        dhr,
        has_cks,
        has_ckr,
        ns,
        nr,
        pn,
        skipped,
        header_key_chains,
    }
}

/// [`ratchet_view`] of a live session.
pub(crate) fn view(session: &Session) -> RatchetView {
    ratchet_view(&session.to_bytes())
}

/// The header `(ratchet key, N, PN)` of the message `sender` has just encrypted, read from
/// the sender's stored state: the only way to see it in header-encrypted mode. For a
/// message with a cleartext header, also checks that it agrees with the header on the wire.
pub(crate) fn sent_header(sender: &Session, message: &[u8]) -> Header {
    let v = view(sender);
    assert!(v.has_cks && v.ns > 0, "the sender has not just sent");
    let sent = (v.dhs_public, v.ns - 1, v.pn);
    if !sender.is_header_encrypted() {
        assert_eq!(header(message), sent);
    }
    sent
}
