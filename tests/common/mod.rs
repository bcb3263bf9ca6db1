//! Helpers shared by the integration tests: seeded RNGs, parties with prekey stores,
//! sessions at well-defined points of their life, wire-format offsets for editing
//! messages byte by byte, and a peer that routes incoming messages the way the crate's
//! documentation (SPEC.md §6.3-§6.4) tells an app to.
#![allow(dead_code)]

use doubleratchet::rand_core::{TryCryptoRng, TryRng};
use doubleratchet::{
    Accepted, Error, IdentityKeyPair, Message, PreKeyBundle, PreKeyStore, Session, SessionId,
};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Byte offsets of the wire formats (SPEC.md §5.2-§5.4).
pub(crate) mod layout {
    /// Type byte of a normal message.
    pub(crate) const TYPE_NORMAL: u8 = 0x01;
    /// Type byte of an initial message.
    pub(crate) const TYPE_INITIAL: u8 = 0x02;

    /// Normal message: sender's ratchet key, `PN`, `N`, ciphertext.
    pub(crate) const NORMAL_DH: usize = 2;
    pub(crate) const NORMAL_PN: usize = 34;
    pub(crate) const NORMAL_N: usize = 38;
    pub(crate) const NORMAL_BODY: usize = 42;

    /// Initial message: `IK_A`, `EK_A`, prekey ids (u64), then the ratchet header.
    pub(crate) const INITIAL_IK: usize = 2;
    pub(crate) const INITIAL_EK: usize = 34;
    pub(crate) const INITIAL_SPK_ID: usize = 66;
    pub(crate) const INITIAL_OPK_FLAG: usize = 74;
    pub(crate) const INITIAL_OPK_ID: usize = 75;
    pub(crate) const INITIAL_DH: usize = 83;
    pub(crate) const INITIAL_PN: usize = 115;
    pub(crate) const INITIAL_N: usize = 119;
    pub(crate) const INITIAL_BODY: usize = 123;

    /// Prekey bundle (ids are u64).
    pub(crate) const BUNDLE_IK: usize = 2;
    pub(crate) const BUNDLE_SPK_ID: usize = 34;
    pub(crate) const BUNDLE_SPK: usize = 42;
    pub(crate) const BUNDLE_SIGNATURE: usize = 74;
    pub(crate) const BUNDLE_OPK_FLAG: usize = 138;
    pub(crate) const BUNDLE_OPK_ID: usize = 139;
    pub(crate) const BUNDLE_OPK: usize = 147;
    /// Length of a classical bundle.
    pub(crate) const BUNDLE_END: usize = 179;

    /// Tag length of every ciphertext.
    pub(crate) const TAG: usize = 16;
}

/// A deterministic RNG for one test.
pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A uniform index below `n` (`n > 0`); the tiny modulo bias does not matter here.
pub(crate) fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Fisher-Yates shuffle driven by the seeded RNG.
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut ChaCha20Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

/// A distinct, recognisable plaintext for message `i` from `who`.
pub(crate) fn text(who: &str, i: usize) -> Vec<u8> {
    format!("{who} #{i}: {}", "x".repeat(i % 7)).into_bytes()
}

/// The session's full storage encoding, to compare states byte for byte.
pub(crate) fn state(session: &Session) -> Vec<u8> {
    session.to_bytes().to_vec()
}

/// Asserts that `session` rejects `message` with exactly `expected` and that its storage
/// encoding is byte-identical afterwards.
#[track_caller]
pub(crate) fn assert_rejected(session: &mut Session, message: &[u8], expected: Error) {
    let before = state(session);
    assert_eq!(session.decrypt(message), Err(expected));
    assert!(
        state(session).as_slice() == before.as_slice(),
        "session changed by a rejected message ({expected:?})"
    );
}

/// Offset of the ratchet header (the sender's ratchet key) in a message of either type.
pub(crate) fn header_offset(message: &[u8]) -> usize {
    if message[1] == layout::TYPE_INITIAL {
        layout::INITIAL_DH
    } else {
        layout::NORMAL_DH
    }
}

/// Reads a big-endian u32 at `at`.
pub(crate) fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

/// Writes a big-endian u32 at `at`.
pub(crate) fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian u64 (a prekey id) at `at`.
pub(crate) fn get_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Writes a big-endian u64 (a prekey id) at `at`.
pub(crate) fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// A copy of `message` with its header fields replaced where given (a forgery: the header
/// is authenticated, so such a message can only fail to decrypt).
pub(crate) fn forge_header(
    message: &[u8],
    dh: Option<[u8; 32]>,
    pn: Option<u32>,
    n: Option<u32>,
) -> Vec<u8> {
    let mut out = message.to_vec();
    let h = header_offset(message);
    if let Some(dh) = dh {
        out[h..h + 32].copy_from_slice(&dh);
    }
    if let Some(pn) = pn {
        put_u32(&mut out, h + 32, pn);
    }
    if let Some(n) = n {
        put_u32(&mut out, h + 36, n);
    }
    out
}

/// The `N` of a message of either type.
pub(crate) fn message_number(message: &[u8]) -> u32 {
    get_u32(message, header_offset(message) + 36)
}

/// The `PN` of a message of either type.
pub(crate) fn previous_chain_length(message: &[u8]) -> u32 {
    get_u32(message, header_offset(message) + 32)
}

/// The sender's ratchet key of a message of either type.
pub(crate) fn ratchet_key(message: &[u8]) -> [u8; 32] {
    let h = header_offset(message);
    let mut k = [0u8; 32];
    k.copy_from_slice(&message[h..h + 32]);
    k
}

/// A user of the crate: an identity and a prekey store.
pub(crate) struct Party {
    pub(crate) identity: IdentityKeyPair,
    pub(crate) store: PreKeyStore,
}

impl Party {
    pub(crate) fn new(rng: &mut ChaCha20Rng) -> Party {
        let identity = IdentityKeyPair::generate(rng).unwrap();
        let store = PreKeyStore::new(&identity, rng).unwrap();
        Party { identity, store }
    }

    /// A freshly published bundle with a new one-time prekey, as a peer receives it (through
    /// its encoding).
    pub(crate) fn bundle(&mut self, rng: &mut ChaCha20Rng) -> PreKeyBundle {
        let id = self.store.generate_one_time_prekeys(1, rng).unwrap()[0].id();
        let bundle = self.store.bundle(&self.identity, Some(id)).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// A last-resort bundle without a one-time prekey.
    pub(crate) fn bundle_without_one_time_prekey(&self) -> PreKeyBundle {
        let bundle = self.store.bundle(&self.identity, None).unwrap();
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }

    /// Accepts a session from an initial message through the prekey store.
    pub(crate) fn accept(&mut self, message: &[u8]) -> Result<Accepted, Error> {
        self.store.accept(&self.identity, message)
    }

    /// The store's encoding, to compare before and after a rejected message.
    pub(crate) fn store_state(&self) -> Vec<u8> {
        self.store.to_bytes().to_vec()
    }
}

/// Alice has initiated a session from Bob's freshly published bundle (with a one-time
/// prekey) and encrypted her first, initial message, which Bob has not seen yet.
pub(crate) struct Offer {
    pub(crate) alice: Party,
    pub(crate) bob: Party,
    pub(crate) bundle: PreKeyBundle,
    /// Alice's session.
    pub(crate) a: Session,
    /// Alice's first message.
    pub(crate) first: Vec<u8>,
    pub(crate) rng: ChaCha20Rng,
}

impl Offer {
    pub(crate) fn new(seed: u64) -> Offer {
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
    pub(crate) fn one_time_prekey(&self) -> u64 {
        self.bundle.one_time_prekey_id().unwrap()
    }

    /// Bob accepts the first message through his prekey store.
    pub(crate) fn accepted(mut self) -> Pair {
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
pub(crate) struct Pair {
    pub(crate) alice: Party,
    pub(crate) bob: Party,
    /// Alice's session (the initiator).
    pub(crate) a: Session,
    /// Bob's session (the responder).
    pub(crate) b: Session,
    pub(crate) rng: ChaCha20Rng,
}

impl Pair {
    /// Alice has initiated from Bob's bundle and sent one initial message, which Bob has
    /// accepted. Alice is still awaiting a reply; Bob has not sent anything.
    pub(crate) fn started(seed: u64) -> Pair {
        Offer::new(seed).accepted()
    }

    /// Both sides have sent and received: Bob replied to Alice's first message and Alice
    /// answered with a normal message on a new ratchet key, which Bob decrypted. Both
    /// have a sending and a receiving chain and no skipped keys.
    pub(crate) fn established(seed: u64) -> Pair {
        let mut p = Pair::started(seed);
        p.deliver_b_to_a(b"reply");
        p.deliver_a_to_b(b"answer");
        assert!(!p.a.awaiting_reply());
        p
    }

    pub(crate) fn a_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.a.encrypt(plaintext, &mut self.rng).unwrap()
    }

    pub(crate) fn b_sends(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.b.encrypt(plaintext, &mut self.rng).unwrap()
    }

    /// Alice encrypts and Bob decrypts at once; returns the wire message.
    #[track_caller]
    pub(crate) fn deliver_a_to_b(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let m = self.a_sends(plaintext);
        assert_eq!(self.b.decrypt(&m).unwrap(), plaintext);
        m
    }

    /// Bob encrypts and Alice decrypts at once; returns the wire message.
    #[track_caller]
    pub(crate) fn deliver_b_to_a(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let m = self.b_sends(plaintext);
        assert_eq!(self.a.decrypt(&m).unwrap(), plaintext);
        m
    }

    /// `rounds` ratchet round trips (each a DH ratchet step on both sides).
    pub(crate) fn ping_pong(&mut self, rounds: usize) {
        for i in 0..rounds {
            self.deliver_a_to_b(&text("ping", i));
            self.deliver_b_to_a(&text("pong", i));
        }
    }
}

/// A party's sessions with one contact, managed as SPEC.md §6.3-§6.4 describe: initial
/// messages are routed by session id (an unknown id creates a session through the prekey
/// store), normal messages are tried on the sessions newest first, and messages are sent
/// on the *sending session*: the first one, which a decryption on another session S
/// replaces when S has the smaller session id or also decrypted the previous message.
pub(crate) struct Peer {
    pub(crate) party: Party,
    /// Oldest first.
    pub(crate) sessions: Vec<Session>,
    /// Index of the session messages are sent on.
    pub(crate) sending: Option<usize>,
    /// Index of the session that most recently decrypted a message.
    pub(crate) last_received: Option<usize>,
}

impl Peer {
    pub(crate) fn new(rng: &mut ChaCha20Rng) -> Peer {
        Peer {
            party: Party::new(rng),
            sessions: Vec::new(),
            sending: None,
            last_received: None,
        }
    }

    /// SPEC.md §6.4: after session `i` decrypted a message, keep or switch the sending
    /// session.
    fn received_on(&mut self, i: usize) {
        let switch = match self.sending {
            None => true,
            Some(current) => {
                current != i
                    && (self.sessions[i].id() < self.sessions[current].id()
                        || self.last_received == Some(i))
            }
        };
        if switch {
            self.sending = Some(i);
        }
        self.last_received = Some(i);
    }

    /// Starts a session from the contact's bundle.
    pub(crate) fn initiate(&mut self, bundle: &PreKeyBundle, rng: &mut ChaCha20Rng) {
        let s = Session::initiate(&self.party.identity, bundle, rng).unwrap();
        self.sessions.push(s);
        self.sending = Some(self.sessions.len() - 1);
    }

    /// The session messages are sent on.
    pub(crate) fn sending_index(&self) -> Option<usize> {
        self.sending
    }

    pub(crate) fn sending_session(&self) -> Option<&Session> {
        self.sending_index().map(|i| &self.sessions[i])
    }

    pub(crate) fn can_send(&self) -> bool {
        !self.sessions.is_empty()
    }

    pub(crate) fn send(&mut self, plaintext: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        let i = self.sending_index().expect("no session to send on");
        self.sessions[i].encrypt(plaintext, rng).unwrap()
    }

    /// Routes and decrypts one incoming message. Checks along the way that every failed
    /// attempt left its session byte-identical, which is what makes trying safe.
    pub(crate) fn receive(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match Message::parse(message)? {
            Message::Initial(m) => {
                let id: SessionId = m.session_id(self.party.identity.public_key());
                match self.sessions.iter().position(|s| s.id() == id) {
                    Some(i) => {
                        let pt = self.sessions[i].decrypt(message)?;
                        self.received_on(i);
                        Ok(pt)
                    }
                    None => {
                        let accepted = self.party.accept(message)?;
                        assert_eq!(accepted.session.id(), id);
                        self.sessions.push(accepted.session);
                        self.received_on(self.sessions.len() - 1);
                        Ok(accepted.plaintext)
                    }
                }
            }
            Message::Normal(_) => {
                let mut last_error = Error::DecryptionFailed;
                for i in (0..self.sessions.len()).rev() {
                    let before = state(&self.sessions[i]);
                    match self.sessions[i].decrypt(message) {
                        Ok(pt) => {
                            self.received_on(i);
                            return Ok(pt);
                        }
                        Err(e) => {
                            assert!(
                                state(&self.sessions[i]).as_slice() == before.as_slice(),
                                "failed trial decryption changed session {i}"
                            );
                            last_error = e;
                        }
                    }
                }
                Err(last_error)
            }
        }
    }
}

/// The error of [`FailingRng`].
#[derive(Debug)]
pub(crate) struct RngDown;

impl core::fmt::Display for RngDown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("rng down")
    }
}

impl core::error::Error for RngDown {}

/// Serves `working_draws` requests from a real generator, then fails every request.
pub(crate) struct FailingRng {
    working_draws: usize,
    inner: ChaCha20Rng,
}

impl FailingRng {
    pub(crate) fn new(working_draws: usize) -> FailingRng {
        // Every instance draws different bytes: two sessions given the same ratchet key
        // would see each other's messages as reflections.
        static NEXT_SEED: AtomicU64 = AtomicU64::new(9_000);
        FailingRng {
            working_draws,
            inner: rng(NEXT_SEED.fetch_add(1, Ordering::Relaxed)),
        }
    }

    fn draw(&mut self) -> Result<(), RngDown> {
        match self.working_draws.checked_sub(1) {
            Some(left) => {
                self.working_draws = left;
                Ok(())
            }
            None => Err(RngDown),
        }
    }
}

impl TryRng for FailingRng {
    type Error = RngDown;

    fn try_next_u32(&mut self) -> Result<u32, RngDown> {
        self.draw()?;
        Ok(self.inner.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, RngDown> {
        self.draw()?;
        Ok(self.inner.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RngDown> {
        self.draw()?;
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

impl TryCryptoRng for FailingRng {}
