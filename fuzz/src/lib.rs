//! The logic of the `doubleratchet` fuzz targets, one `pub fn NAME(data: &[u8])` per
//! target, and the generator of their seed corpora ([`seeds`]).
//!
//! This file is compiled twice: as the `doubleratchet_fuzz` library that the cargo-fuzz
//! binaries in `fuzz/fuzz_targets/` call, and as a module of the main crate's
//! `tests/fuzz_corpus.rs`, which replays the corpora through the same functions. It must
//! therefore not use `libfuzzer_sys`, and it depends only on crates both builds have:
//! `doubleratchet`, `arbitrary` and `rand_chacha`.
//!
//! A target panics exactly when it finds a bug: a panic inside the crate, or a broken
//! assertion about the protocol. Every assertion here is a documented promise of the
//! crate's API or a property of the cryptography (an AEAD forgery, a signature forgery or
//! a hash collision is taken as impossible).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use doubleratchet::{
    Error, IdentityKeyPair, Limits, Message, OneTimePreKey, PreKeyBundle, PreKeyStore, Role,
    Session, SessionOptions, SignedPreKey, StorageKey, BUNDLE_LENGTH, MAX_SKIP_CAP, VERSION,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A fuzz target's logic: panics exactly when it finds a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary in `fuzz/fuzz_targets/` and of its corpus
/// directory `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_message", decode_message),
    ("session", session),
    ("respond", respond),
    ("load", load),
    ("bundle", bundle),
];

/// The most operations the `session` target runs for one input.
const MAX_OPS: usize = 64;
/// Length of an AES-GCM tag.
const TAG: usize = 16;
/// Message layout (SPEC.md §5): `version | type | [initial fields] | header | ciphertext`.
/// An initial message's X3DH fields: `IK_A`, `EK_A`, SPK id, OPK flag and id.
const X3DH_FIELDS: usize = 32 + 32 + 4 + 1 + 4;
/// PQXDH's additional fields: the post-quantum prekey id and the ML-KEM-768 ciphertext.
const PQ_FIELDS: usize = 4 + 1088;
/// A ratchet header in the clear: `DHs | PN | N`.
const PLAIN_HEADER: usize = 32 + 4 + 4;
/// An encrypted ratchet header: nonce, the sealed plain header, tag.
const SEALED_HEADER: usize = 12 + PLAIN_HEADER + TAG;
/// Framing lengths of the two classical kinds, for the `respond` target's field table.
const INITIAL_PREFIX: usize = 2 + X3DH_FIELDS + PLAIN_HEADER;
/// Type bytes of the message kinds.
const TYPE_NORMAL: u8 = 0x01;
const TYPE_INITIAL: u8 = 0x02;
const TYPE_INITIAL_PQ: u8 = 0x03;
const TYPE_NORMAL_HE: u8 = 0x04;
const TYPE_INITIAL_HE: u8 = 0x05;
const TYPE_INITIAL_PQ_HE: u8 = 0x06;
/// Byte ranges of a prekey bundle's fields (SPEC.md §5.4).
const BUNDLE_SPK_ID: core::ops::Range<usize> = 34..38;
const BUNDLE_SPK: core::ops::Range<usize> = 38..70;
const BUNDLE_OPK_FLAG: usize = 134;
const BUNDLE_OPK_ID: core::ops::Range<usize> = 135..139;
const BUNDLE_OPK: core::ops::Range<usize> = 139..171;
/// The one-time prekey ids Bob's store holds, and the one his published bundle names.
const BOB_OPK_IDS: core::ops::RangeInclusive<u32> = 1..=3;
const BUNDLE_OPK_ID_VALUE: u32 = 1;

// ---------------------------------------------------------------------------------------
// Fixture: fixed identities, prekeys and genuine messages, made once per process.
// ---------------------------------------------------------------------------------------

/// A genuine initial message from Alice to Bob, with what it encrypts and Alice's session
/// after sending it (so a reply to it can be checked).
struct Genuine {
    header_encryption: bool,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    alice_state: Vec<u8>,
}

/// Everything the targets share; all derived from fixed seeds, so every run and every
/// build sees the same keys.
struct Fixture {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    /// Alice's own signed prekey (only for a bundle of Alice's own, which she must refuse).
    alice_spk: SignedPreKey,
    carol: IdentityKeyPair,
    carol_spk: SignedPreKey,
    carol_opk: OneTimePreKey,
    /// Bob's prekeys: signed prekey 1 and one-time prekeys 1..=3.
    store: PreKeyStore,
    /// Bob's published bundle, naming one-time prekey 1.
    bundle: PreKeyBundle,
    /// Bob's last-resort bundle, without a one-time prekey.
    bundle_no_opk: PreKeyBundle,
    storage_key: StorageKey,
    /// Initial messages from two of Alice's sessions, with and without a one-time prekey.
    initial: Vec<Genuine>,
    /// Short conversations (classical, then header-encrypted), for the `load` target:
    /// messages and their plaintexts.
    probes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Session states from those conversations, for the `load` seeds: mode prefix, name,
    /// encoding.
    states: Vec<(&'static str, &'static str, Vec<u8>)>,
    /// A fresh session of Alice's with Bob's bundle, stored: the `session` target's start
    /// (loading it is cheaper than running X3DH for every input); classical, and
    /// header-encrypted.
    fresh_alice: Vec<u8>,
    fresh_alice_he: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0001);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let alice_spk = SignedPreKey::generate(&alice, 1, &mut rng).unwrap();
    let carol_spk = SignedPreKey::generate(&carol, 5, &mut rng).unwrap();
    let carol_opk = OneTimePreKey::generate(9, &mut rng).unwrap();
    let mut store = PreKeyStore::new(&bob, &mut rng).unwrap();
    let ids: Vec<u32> = store
        .generate_one_time_prekeys(3, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    assert_eq!(ids, BOB_OPK_IDS.collect::<Vec<_>>());
    let bundle = store.bundle(&bob, Some(BUNDLE_OPK_ID_VALUE)).unwrap();
    let bundle_no_opk = store.bundle(&bob, None).unwrap();
    // The byte ranges this file reads a bundle's fields from.
    let encoded = bundle.to_bytes();
    let spk = store.current_signed_prekey().unwrap();
    assert_eq!(encoded.len(), BUNDLE_LENGTH);
    assert_eq!(encoded[BUNDLE_SPK], spk.public_key());
    assert_eq!(encoded[BUNDLE_SPK_ID], spk.id().to_be_bytes());
    assert_eq!(encoded[BUNDLE_OPK_FLAG], 1);
    assert_eq!(encoded[BUNDLE_OPK_ID], BUNDLE_OPK_ID_VALUE.to_be_bytes());
    let opk = store.one_time_prekey(BUNDLE_OPK_ID_VALUE).unwrap();
    assert_eq!(encoded[BUNDLE_OPK], opk.public_key());

    let mut storage_key_bytes = [0u8; 32];
    storage_key_bytes
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = 0xA0 ^ i as u8);
    let storage_key = StorageKey::from_bytes(storage_key_bytes);

    let mut initial = Vec::new();
    for (b, header_encryption, plaintexts) in [
        (
            &bundle,
            false,
            &[&b"first"[..], b"", b"a somewhat longer third message"][..],
        ),
        (&bundle_no_opk, false, &[&b"last resort"[..]][..]),
        (&bundle, true, &[&b"sealed header"[..], b"again"][..]),
    ] {
        let options = if header_encryption {
            he_options()
        } else {
            SessionOptions::new()
        };
        let mut a = Session::initiate_with(&alice, b, &options, &mut rng).unwrap();
        for p in plaintexts {
            let wire = a.encrypt(p, &mut rng).unwrap();
            initial.push(Genuine {
                header_encryption,
                wire,
                plaintext: p.to_vec(),
                alice_state: a.to_bytes().to_vec(),
            });
        }
    }

    // A conversation in each mode: Alice's initial message, Bob's two replies (Alice gets
    // the second), Alice's answer on a new chain.
    let mut states = Vec::new();
    let mut probes = Vec::new();
    for (mode, options) in [("", SessionOptions::new()), ("he-", he_options())] {
        let mut a = Session::initiate_with(&alice, &bundle, &options, &mut rng).unwrap();
        let m1 = a.encrypt(b"hello bob", &mut rng).unwrap();
        states.push((mode, "alice-awaiting-reply", a.to_bytes().to_vec()));
        let accepted = Session::respond(
            &bob,
            |id| store.signed_prekey(id),
            |id| store.one_time_prekey(id),
            &m1,
        )
        .unwrap();
        let mut b = accepted.session;
        let r1 = b.encrypt(b"hello alice", &mut rng).unwrap();
        let r2 = b.encrypt(b"and again", &mut rng).unwrap();
        states.push((mode, "bob-after-reply", b.to_bytes().to_vec()));
        assert_eq!(a.decrypt(&r2).unwrap(), b"and again");
        let a1 = a.encrypt(b"new chain", &mut rng).unwrap();
        states.push((mode, "alice-one-skipped", a.to_bytes().to_vec()));
        assert_eq!(b.decrypt(&a1).unwrap(), b"new chain");
        states.push((mode, "bob-after-ratchet", b.to_bytes().to_vec()));
        probes.push((m1, b"hello bob".to_vec()));
        probes.push((r1, b"hello alice".to_vec()));
        probes.push((a1, b"new chain".to_vec()));
    }
    let fresh_alice = Session::initiate(&alice, &bundle, &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();
    let fresh_alice_he = Session::initiate_with(&alice, &bundle, &he_options(), &mut rng)
        .unwrap()
        .to_bytes()
        .to_vec();

    Fixture {
        alice,
        bob,
        alice_spk,
        carol,
        carol_spk,
        carol_opk,
        store,
        bundle,
        bundle_no_opk,
        storage_key,
        initial,
        probes,
        states,
        fresh_alice,
        fresh_alice_he,
    }
}

/// Bob's signed prekey lookup.
fn bob_spk(id: u32) -> Option<&'static SignedPreKey> {
    fixture().store.signed_prekey(id)
}

/// Bob's one-time prekey lookup.
fn bob_opk(id: u32) -> Option<&'static OneTimePreKey> {
    fixture().store.one_time_prekey(id)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The initiator's options for a header-encrypted session.
fn he_options() -> SessionOptions<'static> {
    SessionOptions::new().header_encryption()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads `bytes` as a session and checks it re-encodes to exactly `bytes`.
fn reload_session(bytes: &[u8]) -> Session {
    let s = Session::from_bytes(bytes)
        .unwrap_or_else(|e| panic!("a session's own encoding does not load: {e:?}"));
    assert_eq!(*s.to_bytes(), bytes, "session re-encodes differently");
    s
}

/// Decrypts `message`; on error, checks the session is unchanged.
fn decrypt_checked(s: &mut Session, message: &[u8]) -> Result<Vec<u8>, Error> {
    let before = s.to_bytes();
    let result = s.decrypt(message);
    if let Err(e) = &result {
        assert_eq!(
            *s.to_bytes(),
            *before,
            "a rejected message ({e:?}) changed the session: {}",
            hex(message)
        );
    }
    result
}

// ---------------------------------------------------------------------------------------
// decode_message
// ---------------------------------------------------------------------------------------

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
fn check_message_layout(m: &Message<'_>, data: &[u8]) {
    assert_eq!(m.to_bytes(), data, "message re-encodes differently");
    assert_eq!(Message::parse(data).as_ref(), Ok(m));
    assert_eq!(data[0], VERSION);
    let he = m.is_header_encrypted();
    let (kind, fields_len) = match m {
        Message::Normal(_) => (if he { TYPE_NORMAL_HE } else { TYPE_NORMAL }, 0),
        Message::Initial(i) => {
            assert_eq!(i.is_header_encrypted(), he);
            assert_eq!(i.identity_key().as_bytes(), &data[2..34]);
            assert_eq!(i.base_key(), &data[34..66]);
            assert_eq!(i.signed_prekey_id().to_be_bytes(), data[66..70]);
            match i.one_time_prekey_id() {
                Some(id) => {
                    assert_eq!(data[70], 1);
                    assert_eq!(id.to_be_bytes(), data[71..75]);
                }
                None => assert_eq!(data[70..75], [0; 5]),
            }
            // The session id is a function of the message and the responder.
            let bob = fixture().bob.public_key();
            assert_eq!(i.session_id(bob), i.session_id(bob));
            let pq = i.post_quantum_prekey_id();
            assert_eq!(i.is_post_quantum(), pq.is_some());
            if let Some(id) = pq {
                assert_eq!(id.to_be_bytes(), data[75..79]);
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
        assert_eq!(m.ratchet_key().map(|k| &k[..]), Some(&header[..32]));
        let pn = m.previous_chain_length().map(u32::to_be_bytes);
        assert_eq!(pn.as_ref().map(|b| &b[..]), Some(&header[32..36]));
        let n = m.message_number().map(u32::to_be_bytes);
        assert_eq!(n.as_ref().map(|b| &b[..]), Some(&header[36..40]));
    }
}

/// `PreKeyBundle::from_bytes`: strict, and exactly re-encoding.
fn check_bundle_encoding(data: &[u8]) -> Option<PreKeyBundle> {
    match PreKeyBundle::from_bytes(data) {
        Ok(b) => {
            assert_eq!(b.to_bytes(), data, "bundle re-encodes differently");
            assert!(b.is_post_quantum() || data.len() == BUNDLE_LENGTH);
            assert_eq!(PreKeyBundle::from_bytes(&b.to_bytes()).as_ref(), Ok(&b));
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

// ---------------------------------------------------------------------------------------
// session
// ---------------------------------------------------------------------------------------

/// One of the two parties.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The initiator.
    Alice,
    /// The responder.
    Bob,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Alice => Side::Bob,
            Side::Bob => Side::Alice,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Alice => 0,
            Side::Bob => 1,
        }
    }
}

/// One step of the `session` target. Packet indices are taken modulo the number of
/// packets in flight (an operation on an empty network does nothing), message indices
/// modulo the number of messages sent.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Alice encrypts a `len`-byte plaintext and puts it on the network.
    AliceSends {
        /// Plaintext length.
        len: u8,
    },
    /// Bob encrypts a `len`-byte plaintext (once he has a session).
    BobSends {
        /// Plaintext length.
        len: u8,
    },
    /// Takes a packet off the network and hands it to its addressee.
    Deliver {
        /// Packet index.
        idx: u8,
    },
    /// Loses a packet.
    Drop {
        /// Packet index.
        idx: u8,
    },
    /// Puts a second copy of a packet on the network.
    Duplicate {
        /// Packet index.
        idx: u8,
    },
    /// Puts a copy of an already sent message back on the network (a replay).
    Replay {
        /// Message index.
        msg: u8,
    },
    /// Swaps two packets.
    Reorder {
        /// Packet index.
        a: u8,
        /// Packet index.
        b: u8,
    },
    /// Cuts a packet short at `at` (if it is longer).
    Truncate {
        /// Packet index.
        idx: u8,
        /// New length.
        at: u16,
    },
    /// Flips one bit of a packet.
    FlipBit {
        /// Packet index.
        idx: u8,
        /// Bit position, modulo the packet's length in bits.
        bit: u16,
    },
    /// Adds a packet made of `a` up to `at` and `b` from `at` on, addressed as `a`.
    Splice {
        /// Packet index of the head.
        a: u8,
        /// Packet index of the tail.
        b: u8,
        /// Cut position.
        at: u16,
    },
    /// Takes a packet off the network and hands it back to its sender.
    Reflect {
        /// Packet index.
        idx: u8,
    },
    /// Replaces a session by its stored encoding, loaded back (sealed under the storage
    /// key first, if `sealed`).
    Reload {
        /// Whose session.
        side: Side,
        /// Whether to go through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// Lowers a session's limits (`max_skip = 255` stands for one above the hard cap,
    /// which must be refused).
    SetLimits {
        /// Whose session.
        side: Side,
        /// New `max_skip`.
        max_skip: u8,
        /// New `max_stored_skipped`.
        max_stored: u8,
    },
}

/// Decodes the `session` target's input into at most [`MAX_OPS`] operations.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// A message as sent, and whether its addressee has accepted it.
struct Sent {
    from: Side,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    accepted: bool,
}

/// Bytes on the network, addressed to `to`.
#[derive(Clone)]
struct Packet {
    to: Side,
    bytes: Vec<u8>,
}

struct Harness {
    /// Whether the session is header-encrypted (SPEC.md §4.8).
    header_encryption: bool,
    alice: Session,
    /// Bob has a session once an initial message reached him.
    bob: Option<Session>,
    rngs: [ChaCha20Rng; 2],
    seal_rng: ChaCha20Rng,
    sent: Vec<Sent>,
    net: Vec<Packet>,
    /// Set once a side's limits were lowered: from then on a fresh message may be refused
    /// as too far ahead, or because its skipped key was evicted.
    relaxed: [bool; 2],
    /// Alice has decrypted a message from Bob, so she no longer sends initial messages.
    alice_heard_back: bool,
}

fn slot<'s>(
    alice: &'s mut Session,
    bob: &'s mut Option<Session>,
    side: Side,
) -> Option<&'s mut Session> {
    match side {
        Side::Alice => Some(alice),
        Side::Bob => bob.as_mut(),
    }
}

fn plaintext_for(index: usize, len: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (index as u8).wrapping_mul(37) ^ i.wrapping_mul(11))
        .collect()
}

impl Harness {
    fn new(header_encryption: bool) -> Harness {
        let fx = fixture();
        let fresh = if header_encryption {
            &fx.fresh_alice_he
        } else {
            &fx.fresh_alice
        };
        let alice = reload_session(fresh);
        assert_eq!(alice.is_header_encrypted(), header_encryption);
        Harness {
            header_encryption,
            alice,
            bob: None,
            rngs: [rng(0xA11CE), rng(0xB0B)],
            seal_rng: rng(0x5EA1),
            sent: Vec::new(),
            net: Vec::new(),
            relaxed: [false; 2],
            alice_heard_back: false,
        }
    }

    /// Encrypts a fresh message from `from`; `None` if `from` has no session yet.
    fn send(&mut self, from: Side, len: u8) -> Option<Vec<u8>> {
        let index = self.sent.len();
        let plaintext = plaintext_for(index, len);
        let rng = &mut self.rngs[from.index()];
        let s = slot(&mut self.alice, &mut self.bob, from)?;
        assert_eq!(
            s.awaiting_reply(),
            from == Side::Alice && !self.alice_heard_back,
            "awaiting_reply disagrees with what {from:?} received"
        );
        let wire = s.encrypt(&plaintext, rng).unwrap();
        let parsed = Message::parse(&wire).unwrap();
        check_message_layout(&parsed, &wire);
        assert_eq!(
            matches!(parsed, Message::Initial(_)),
            s.awaiting_reply(),
            "{from:?} sent the wrong kind of message"
        );
        assert_eq!(parsed.is_header_encrypted(), self.header_encryption);
        assert_eq!(parsed.ciphertext_len(), plaintext.len() + TAG);
        self.sent.push(Sent {
            from,
            wire: wire.clone(),
            plaintext,
            accepted: false,
        });
        self.net.push(Packet {
            to: from.other(),
            bytes: wire.clone(),
        });
        Some(wire)
    }

    /// Hands `bytes` to `to` and checks the outcome; returns whether it was accepted.
    fn deliver(&mut self, to: Side, bytes: &[u8]) -> bool {
        let fx = fixture();
        // The message these bytes are, if they are exactly one the peer sent.
        let genuine = self
            .sent
            .iter()
            .position(|m| m.from == to.other() && m.wire == bytes);
        let result = match slot(&mut self.alice, &mut self.bob, to) {
            Some(s) => decrypt_checked(s, bytes),
            None => match Session::respond(&fx.bob, bob_spk, bob_opk, bytes) {
                Ok(accepted) => {
                    assert_eq!(accepted.used_one_time_prekey, Some(BUNDLE_OPK_ID_VALUE));
                    assert_eq!(accepted.session.id(), self.alice.id());
                    assert_eq!(accepted.session.role(), Role::Responder);
                    assert_eq!(accepted.session.remote_identity(), fx.alice.public_key());
                    assert_eq!(
                        accepted.session.is_header_encrypted(),
                        self.header_encryption
                    );
                    self.bob = Some(accepted.session);
                    Ok(accepted.plaintext)
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(plaintext) => {
                let Some(i) = genuine else {
                    panic!("{to:?} accepted bytes its peer never sent: {}", hex(bytes));
                };
                let m = &mut self.sent[i];
                assert!(!m.accepted, "{to:?} accepted message {i} twice");
                assert_eq!(plaintext, m.plaintext, "message {i} decrypted wrongly");
                m.accepted = true;
                if to == Side::Alice {
                    self.alice_heard_back = true;
                }
                true
            }
            Err(e) => {
                if let Some(i) = genuine.filter(|i| !self.sent[*i].accepted) {
                    // A fresh, unmodified message: only limits the fuzzer lowered excuse it.
                    assert!(
                        self.relaxed[to.index()]
                            && matches!(
                                e,
                                Error::TooFarAhead
                                    | Error::DuplicateOrExpired
                                    | Error::DecryptionFailed
                            ),
                        "{to:?} rejected fresh message {i} with {e:?}"
                    );
                }
                false
            }
        }
    }

    fn packet(&self, idx: u8) -> Option<usize> {
        (!self.net.is_empty()).then(|| usize::from(idx) % self.net.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::AliceSends { len } => {
                self.send(Side::Alice, len);
            }
            Op::BobSends { len } => {
                self.send(Side::Bob, len);
            }
            Op::Deliver { idx } => {
                if let Some(i) = self.packet(idx) {
                    let p = self.net.remove(i);
                    self.deliver(p.to, &p.bytes);
                }
            }
            Op::Reflect { idx } => {
                if let Some(i) = self.packet(idx) {
                    let p = self.net.remove(i);
                    self.deliver(p.to.other(), &p.bytes);
                }
            }
            Op::Drop { idx } => {
                if let Some(i) = self.packet(idx) {
                    self.net.remove(i);
                }
            }
            Op::Duplicate { idx } => {
                if let Some(i) = self.packet(idx) {
                    self.net.push(self.net[i].clone());
                }
            }
            Op::Replay { msg } => {
                if !self.sent.is_empty() {
                    let m = &self.sent[usize::from(msg) % self.sent.len()];
                    self.net.push(Packet {
                        to: m.from.other(),
                        bytes: m.wire.clone(),
                    });
                }
            }
            Op::Reorder { a, b } => {
                if let (Some(a), Some(b)) = (self.packet(a), self.packet(b)) {
                    self.net.swap(a, b);
                }
            }
            Op::Truncate { idx, at } => {
                if let Some(i) = self.packet(idx) {
                    self.net[i].bytes.truncate(usize::from(at));
                }
            }
            Op::FlipBit { idx, bit } => {
                if let Some(i) = self.packet(idx) {
                    let bytes = &mut self.net[i].bytes;
                    if !bytes.is_empty() {
                        let bit = usize::from(bit) % (bytes.len() * 8);
                        bytes[bit / 8] ^= 1 << (bit % 8);
                    }
                }
            }
            Op::Splice { a, b, at } => {
                if let (Some(a), Some(b)) = (self.packet(a), self.packet(b)) {
                    let head = &self.net[a].bytes;
                    let tail = &self.net[b].bytes;
                    let at = usize::from(at).min(head.len());
                    let mut bytes = head[..at].to_vec();
                    bytes.extend_from_slice(tail.get(at..).unwrap_or(&[]));
                    let to = self.net[a].to;
                    self.net.push(Packet { to, bytes });
                }
            }
            Op::Reload { side, sealed } => {
                let fx = fixture();
                let seal_rng = &mut self.seal_rng;
                if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                    let bytes = s.to_bytes();
                    let loaded = if sealed {
                        let blob = fx.storage_key.seal(&*s, seal_rng).unwrap();
                        fx.storage_key.open::<Session>(&blob).unwrap()
                    } else {
                        reload_session(&bytes)
                    };
                    assert_eq!(*loaded.to_bytes(), *bytes);
                    assert_eq!(loaded.id(), s.id());
                    assert_eq!(loaded.role(), s.role());
                    assert_eq!(loaded.awaiting_reply(), s.awaiting_reply());
                    assert_eq!(loaded.limits(), s.limits());
                    assert_eq!(loaded.stored_skipped_keys(), s.stored_skipped_keys());
                    *s = loaded;
                }
            }
            Op::SetLimits {
                side,
                max_skip,
                max_stored,
            } => {
                let valid = max_skip != u8::MAX;
                let limits = Limits {
                    max_skip: if valid {
                        u32::from(max_skip)
                    } else {
                        MAX_SKIP_CAP + 1
                    },
                    max_stored_skipped: u32::from(max_stored),
                };
                if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                    let before = s.to_bytes();
                    match s.set_limits(limits) {
                        Ok(()) => {
                            assert!(valid, "limits above the cap accepted");
                            assert_eq!(s.limits(), limits);
                            assert!(s.stored_skipped_keys() <= usize::from(max_stored));
                            self.relaxed[side.index()] = true;
                        }
                        Err(e) => {
                            assert!(!valid, "valid limits refused: {e:?}");
                            assert_eq!(e, Error::InvalidLimits);
                            assert_eq!(*s.to_bytes(), *before, "refused limits changed state");
                        }
                    }
                }
            }
        }
    }

    /// Both sides still work: with default limits back, fresh messages delivered in order
    /// both ways decrypt (Alice, Bob, Alice again: each side completes a ratchet step).
    fn finish(mut self) {
        for side in [Side::Alice, Side::Bob] {
            if let Some(s) = slot(&mut self.alice, &mut self.bob, side) {
                s.set_limits(Limits::default()).unwrap();
            }
        }
        if self.bob.is_none() {
            let wire = self.send(Side::Alice, 3).unwrap();
            assert!(
                self.deliver(Side::Bob, &wire),
                "Bob cannot start the session"
            );
        }
        for (from, len) in [(Side::Alice, 0), (Side::Bob, 17), (Side::Alice, 1)] {
            let wire = self.send(from, len).unwrap();
            assert!(
                self.deliver(from.other(), &wire),
                "{:?} cannot decrypt a fresh message",
                from.other()
            );
        }
        let bob = self.bob.as_ref().unwrap();
        assert!(!self.alice.awaiting_reply());
        assert_eq!(self.alice.id(), bob.id());
        assert_eq!(self.alice.remote_identity(), bob.local_identity());
        assert_eq!(bob.remote_identity(), self.alice.local_identity());
    }
}

/// A real Alice/Bob pair driven by up to 64 operations on an unreliable, hostile network:
/// every accepted plaintext is exactly what was sent for that message, nothing is accepted
/// twice, no modified bytes are accepted, every rejection leaves the session unchanged, a
/// fresh unmodified message is accepted (unless the fuzzer lowered the limits), and at the
/// end both sides still talk. Bit 0 of the first byte selects header encryption; the rest
/// is decoded into [`Op`]s.
pub fn session(data: &[u8]) {
    let (mode, ops) = data.split_first().map_or((0, data), |(m, rest)| (*m, rest));
    let mut h = Harness::new(mode & 1 == 1);
    for op in ops_from_bytes(ops) {
        h.apply(op);
    }
    h.finish();
}

// ---------------------------------------------------------------------------------------
// respond
// ---------------------------------------------------------------------------------------

/// Field layout of a classical initial message, for the field-replacing mode of
/// `respond`: `(offset, width)`; the last field (ciphertext and tag) runs to the end.
const INITIAL_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (66, 4),
    (70, 1),
    (71, 4),
    (75, 32),
    (107, 4),
    (111, 4),
    (INITIAL_PREFIX, usize::MAX),
];
/// The same for an initial message with an encrypted header: nonce, sealed header, tag.
const INITIAL_HE_FIELDS: &[(usize, usize)] = &[
    (0, 1),
    (1, 1),
    (2, 32),
    (34, 32),
    (66, 4),
    (70, 1),
    (71, 4),
    (75, 12),
    (87, PLAIN_HEADER),
    (87 + PLAIN_HEADER, TAG),
    (2 + X3DH_FIELDS + SEALED_HEADER, usize::MAX),
];

/// `Session::respond` for Bob (fixed identity, signed prekey, one-time prekeys) on
/// attacker-controlled bytes. The first byte picks a mode: 0 the rest as a message; 1 a
/// genuine initial message overwritten at an offset; 2 one of its fields replaced; 3 bits
/// of it flipped. Never panics; accepts exactly the genuine messages (in modes 1-3);
/// what it accepts is a working session; and `PreKeyStore::accept` agrees, leaves the
/// store unchanged on error, and deletes the one-time prekey it used.
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
                let table = if base.header_encryption {
                    INITIAL_HE_FIELDS
                } else {
                    INITIAL_FIELDS
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

fn split_u16(data: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*head), rest))
}

fn check_respond(candidate: &[u8], derived_from_genuine: bool) {
    let fx = fixture();
    let genuine = fx.initial.iter().find(|g| g.wire == candidate);
    let result = Session::respond(&fx.bob, bob_spk, bob_opk, candidate);
    let used = match result {
        Ok(accepted) => {
            if derived_from_genuine {
                assert!(
                    genuine.is_some(),
                    "accepted a modified initial message: {}",
                    hex(candidate)
                );
            }
            let parsed = Message::parse(candidate).unwrap();
            let Message::Initial(m) = parsed else {
                panic!("accepted a message that is not an initial message");
            };
            assert_eq!(accepted.plaintext.len() + TAG, parsed.ciphertext_len());
            if let Some(g) = genuine {
                assert_eq!(accepted.plaintext, g.plaintext);
            }
            assert_eq!(accepted.used_one_time_prekey, m.one_time_prekey_id());
            let mut s = accepted.session;
            assert_eq!(s.role(), Role::Responder);
            assert!(!s.awaiting_reply());
            assert_eq!(s.remote_identity(), m.identity_key());
            assert_eq!(s.local_identity(), fx.bob.public_key());
            assert_eq!(s.id(), m.session_id(fx.bob.public_key()));
            // The same message again is a duplicate.
            assert_eq!(
                decrypt_checked(&mut s, candidate),
                Err(Error::DuplicateOrExpired)
            );
            let mut s = reload_session(&s.to_bytes());
            let reply = s.encrypt(b"reply", &mut rng(3)).unwrap();
            assert!(matches!(Message::parse(&reply), Ok(Message::Normal(_))));
            if let Some(g) = genuine {
                let mut a = reload_session(&g.alice_state);
                assert!(a.awaiting_reply());
                assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"reply");
                assert!(!a.awaiting_reply());
            }
            Some(m.one_time_prekey_id())
        }
        Err(e) => {
            if genuine.is_some() {
                panic!("a genuine initial message was rejected: {e:?}");
            }
            None
        }
    };

    // A deleted one-time prekey refuses the message before any key agreement.
    if let Ok(Message::Initial(m)) = Message::parse(candidate) {
        if let Some(id) = m.one_time_prekey_id() {
            if m.identity_key() != fx.bob.public_key() && bob_spk(m.signed_prekey_id()).is_some() {
                let r = Session::respond(&fx.bob, bob_spk, |_| None, candidate);
                assert_eq!(r.err(), Some(Error::UnknownOneTimePreKey(id)));
            }
        }
    }

    // The prekey store agrees with `Session::respond` on classical messages, and a replay
    // of what it accepted never creates a second session.
    let store_bytes = fx.store.to_bytes();
    let mut store = PreKeyStore::from_bytes(&store_bytes).unwrap();
    let expected = match used {
        Some(used) => Expect::Accept(used),
        None => Expect::Refuse,
    };
    check_store_accept(&mut store, candidate, expected);
}

/// What [`check_store_accept`] must see.
enum Expect {
    /// Either outcome is possible.
    Unknown,
    /// Accepted, using this one-time prekey.
    Accept(Option<u32>),
    /// Refused.
    Refuse,
}

/// `PreKeyStore::accept` of `message` on `store`: on error the store is unchanged; on
/// success the one-time prekey used is gone and the same message is refused next time.
fn check_store_accept(store: &mut PreKeyStore, message: &[u8], expected: Expect) {
    let fx = fixture();
    let before = store.to_bytes();
    match store.accept(&fx.bob, message) {
        Ok(accepted) => {
            match expected {
                Expect::Unknown => {}
                Expect::Accept(used) => assert_eq!(accepted.used_one_time_prekey, used),
                Expect::Refuse => panic!("the store accepted what respond refused"),
            }
            if let Some(id) = accepted.used_one_time_prekey {
                assert!(store.one_time_prekey(id).is_none());
            }
            let after = store.to_bytes();
            let replay = store.accept(&fx.bob, message);
            assert!(
                matches!(
                    replay.as_ref().err(),
                    Some(Error::UnknownOneTimePreKey(_) | Error::DuplicateOrExpired)
                ),
                "a replayed initial message was not refused: {replay:?}"
            );
            assert_eq!(
                *store.to_bytes(),
                *after,
                "refused replay changed the store"
            );
        }
        Err(e) => {
            assert!(
                !matches!(expected, Expect::Accept(_)),
                "the store refused what respond accepted: {e:?}"
            );
            assert_eq!(
                *store.to_bytes(),
                *before,
                "refused message changed the store"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

/// Every stored type's `from_bytes`, and `StorageKey::open` of each with a fixed key:
/// whatever loads re-encodes to exactly the input; at most one type accepts any input; and
/// a loaded session or prekey store can be used, stays consistent, and stores again.
pub fn load(data: &[u8]) {
    let fx = fixture();
    let mut loaded = 0;
    if let Ok(s) = Session::from_bytes(data) {
        assert_eq!(*s.to_bytes(), data, "session re-encodes differently");
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
    assert!(loaded <= 1, "{loaded} types load the same bytes");

    let key = &fx.storage_key;
    let mut opened = 0;
    if let Ok(s) = key.open::<Session>(data) {
        check_reseal(&s, &s.to_bytes(), |b| {
            key.open::<Session>(b).map(|s| s.to_bytes().to_vec())
        });
        exercise_session(s);
        opened += 1;
    }
    if let Ok(k) = key.open::<IdentityKeyPair>(data) {
        check_reseal(&k, &k.to_bytes(), |b| {
            key.open::<IdentityKeyPair>(b)
                .map(|k| k.to_bytes().to_vec())
        });
        opened += 1;
    }
    if let Ok(k) = key.open::<SignedPreKey>(data) {
        check_reseal(&k, &k.to_bytes(), |b| {
            key.open::<SignedPreKey>(b).map(|k| k.to_bytes().to_vec())
        });
        opened += 1;
    }
    if let Ok(k) = key.open::<OneTimePreKey>(data) {
        check_reseal(&k, &k.to_bytes(), |b| {
            key.open::<OneTimePreKey>(b).map(|k| k.to_bytes().to_vec())
        });
        opened += 1;
    }
    if let Ok(store) = key.open::<PreKeyStore>(data) {
        check_reseal(&store, &store.to_bytes(), |b| {
            key.open::<PreKeyStore>(b).map(|s| s.to_bytes().to_vec())
        });
        exercise_store(store);
        opened += 1;
    }
    assert!(opened <= 1, "{opened} types open the same sealed bytes");
}

/// Seals `object` (whose encoding is `encoded`) again and opens it with `open`, which
/// returns the opened object's encoding: the same encoding comes back, and the blob opens
/// as no other type.
fn check_reseal<T: doubleratchet::Storable>(
    object: &T,
    encoded: &[u8],
    open: impl Fn(&[u8]) -> Result<Vec<u8>, Error>,
) {
    let key = &fixture().storage_key;
    let blob = key.seal(object, &mut rng(4)).unwrap();
    let reopened = open(&blob).unwrap_or_else(|e| panic!("a fresh seal does not open: {e:?}"));
    assert_eq!(reopened, encoded);
    let opens = [
        key.open::<Session>(&blob).is_ok(),
        key.open::<IdentityKeyPair>(&blob).is_ok(),
        key.open::<SignedPreKey>(&blob).is_ok(),
        key.open::<OneTimePreKey>(&blob).is_ok(),
        key.open::<PreKeyStore>(&blob).is_ok(),
    ];
    let count = opens.iter().filter(|o| **o).count();
    assert_eq!(count, 1, "a sealed blob opens as {count} types");
}

/// Uses a loaded (possibly fuzzer-made) session: nothing panics, rejected messages leave
/// it unchanged, accepted probes decrypt to their plaintext, and every state it reaches
/// stores and loads again.
fn exercise_session(mut s: Session) {
    let fx = fixture();
    assert!(!s.awaiting_reply() || s.role() == Role::Initiator);
    let _ = format!("{s:?}");
    for (wire, plaintext) in &fx.probes {
        if let Ok(p) = decrypt_checked(&mut s, wire) {
            assert_eq!(&p, plaintext, "a probe decrypted to something else");
        }
        reload_session(&s.to_bytes());
    }
    match s.encrypt(b"probe", &mut rng(5)) {
        Ok(wire) => {
            let parsed = Message::parse(&wire).unwrap();
            assert_eq!(
                matches!(parsed, Message::Initial(_)),
                s.awaiting_reply(),
                "message type disagrees with awaiting_reply"
            );
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

/// Uses a loaded (possibly fuzzer-made) prekey store: errors leave it unchanged, and every
/// state it reaches stores and loads again.
fn exercise_store(mut store: PreKeyStore) {
    let fx = fixture();
    let _ = format!("{store:?}");
    let current = store
        .current_signed_prekey()
        .expect("a loaded store has its current key");
    let current_id = current.id();
    assert!(store.signed_prekey(current_id).is_some());
    let first_opk = store.one_time_prekeys().next().map(OneTimePreKey::id);
    let b = store.bundle(&fx.bob, first_opk).unwrap();
    assert_eq!(b.signed_prekey_id(), current_id);
    assert_eq!(b.one_time_prekey_id(), first_opk);
    assert!(!store.retire_signed_prekey(current_id));

    check_store_accept(&mut store, &fx.probes[0].0, Expect::Unknown);

    let before = store.to_bytes();
    let count_before = store.one_time_prekeys().count();
    match store.generate_one_time_prekeys(2, &mut rng(6)) {
        Ok(fresh) => {
            let ids: Vec<u32> = fresh.iter().map(|k| k.id()).collect();
            assert_eq!(ids.len(), 2);
            assert_eq!(store.one_time_prekeys().count(), count_before + 2);
            for id in ids {
                assert!(store.one_time_prekey(id).is_some());
            }
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
    match store.rotate_signed_prekey(&fx.bob, &mut rng(7)) {
        Ok(id) => {
            assert_eq!(
                store.current_signed_prekey().map(SignedPreKey::id),
                Some(id)
            );
            assert!(store.retire_signed_prekey(current_id) || current_id == id);
        }
        Err(e) => {
            assert_eq!(e, Error::StoreFull);
            assert_eq!(*store.to_bytes(), *before, "failed rotation changed store");
        }
    }
    let bytes = store.to_bytes();
    let again = PreKeyStore::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("a store's own encoding does not load: {e:?}"));
    assert_eq!(*again.to_bytes(), *bytes);
}

// ---------------------------------------------------------------------------------------
// bundle
// ---------------------------------------------------------------------------------------

/// `PreKeyBundle::from_bytes` and `verify`, and `Session::initiate` (classical and
/// header-encrypted) with a fixed Alice on every bundle: Alice refuses exactly the bundles
/// that do not verify and her own; the session she makes sends initial messages naming the
/// bundle's prekeys; and when the bundle is Bob's, Bob accepts exactly when its prekeys are
/// his, and his reply decrypts.
pub fn bundle(data: &[u8]) {
    let Some(b) = check_bundle_encoding(data) else {
        return;
    };
    for header_encryption in [false, true] {
        check_initiate(&b, data, header_encryption);
    }
}

fn check_initiate(b: &PreKeyBundle, data: &[u8], header_encryption: bool) {
    let fx = fixture();
    let own = b.identity_key() == fx.alice.public_key();
    let verified = b.verify();
    let initiated = if header_encryption {
        Session::initiate_with(&fx.alice, b, &he_options(), &mut rng(8))
    } else {
        Session::initiate(&fx.alice, b, &mut rng(8))
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
    assert_eq!(m.is_header_encrypted(), header_encryption);

    if b.identity_key() != fx.bob.public_key() {
        return;
    }
    if m.is_post_quantum() {
        // `Session::respond` is classical only.
        let r = Session::respond(&fx.bob, bob_spk, bob_opk, &wire);
        assert!(matches!(r.err(), Some(Error::UnknownPqPreKey(_))));
        return;
    }
    let spk_id = b.signed_prekey_id();
    let key_at = |range: core::ops::Range<usize>| <[u8; 32]>::try_from(&data[range]).unwrap();
    let spk_matches = bob_spk(spk_id).map(SignedPreKey::public_key) == Some(key_at(BUNDLE_SPK));
    let opk_matches = match b.one_time_prekey_id() {
        None => true,
        Some(id) => bob_opk(id).map(OneTimePreKey::public_key) == Some(key_at(BUNDLE_OPK)),
    };
    match Session::respond(&fx.bob, bob_spk, bob_opk, &wire) {
        Ok(accepted) => {
            assert!(spk_matches && opk_matches, "Bob accepted a bundle not his");
            assert_eq!(accepted.plaintext, b"hello bundle");
            let mut s = accepted.session;
            assert_eq!(s.id(), a.id());
            assert_eq!(s.is_header_encrypted(), header_encryption);
            let reply = s.encrypt(b"hi alice", &mut rng(10)).unwrap();
            assert_eq!(decrypt_checked(&mut a, &reply).unwrap(), b"hi alice");
        }
        Err(e) => {
            assert!(
                !(spk_matches && opk_matches),
                "Bob refused his own bundle: {e:?}"
            );
            if bob_spk(spk_id).is_none() {
                assert_eq!(e, Error::UnknownSignedPreKey(spk_id));
            } else if let Some(id) = b.one_time_prekey_id().filter(|id| bob_opk(*id).is_none()) {
                assert_eq!(e, Error::UnknownOneTimePreKey(id));
            } else {
                assert_eq!(e, Error::DecryptionFailed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------

/// One seed file: `fuzz/corpus/<target>/seed-<name>`.
pub struct Seed {
    /// The target's name (a key of [`TARGETS`]).
    pub target: &'static str,
    /// The file name after `seed-`.
    pub name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// Encodes operations in the input format of the `session` target, the inverse of
/// [`ops_from_bytes`] (checked by [`seeds`]): `arbitrary` picks an enum variant `i` of `n`
/// from a little-endian `u32` `v` as `(v * n) >> 32`, and reads integers little-endian.
fn ops_to_bytes(ops: &[Op]) -> Vec<u8> {
    fn variant(out: &mut Vec<u8>, i: u64, n: u64) {
        let v = (i << 32).div_ceil(n);
        out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
    }
    fn side(out: &mut Vec<u8>, s: Side) {
        variant(out, s.index() as u64, 2);
    }
    const N: u64 = 13;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::AliceSends { len } => {
                variant(&mut out, 0, N);
                out.push(len);
            }
            Op::BobSends { len } => {
                variant(&mut out, 1, N);
                out.push(len);
            }
            Op::Deliver { idx } => {
                variant(&mut out, 2, N);
                out.push(idx);
            }
            Op::Drop { idx } => {
                variant(&mut out, 3, N);
                out.push(idx);
            }
            Op::Duplicate { idx } => {
                variant(&mut out, 4, N);
                out.push(idx);
            }
            Op::Replay { msg } => {
                variant(&mut out, 5, N);
                out.push(msg);
            }
            Op::Reorder { a, b } => {
                variant(&mut out, 6, N);
                out.extend_from_slice(&[a, b]);
            }
            Op::Truncate { idx, at } => {
                variant(&mut out, 7, N);
                out.push(idx);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::FlipBit { idx, bit } => {
                variant(&mut out, 8, N);
                out.push(idx);
                out.extend_from_slice(&bit.to_le_bytes());
            }
            Op::Splice { a, b, at } => {
                variant(&mut out, 9, N);
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&at.to_le_bytes());
            }
            Op::Reflect { idx } => {
                variant(&mut out, 10, N);
                out.push(idx);
            }
            Op::Reload { side: s, sealed } => {
                variant(&mut out, 11, N);
                side(&mut out, s);
                out.push(u8::from(sealed));
            }
            Op::SetLimits {
                side: s,
                max_skip,
                max_stored,
            } => {
                variant(&mut out, 12, N);
                side(&mut out, s);
                out.extend_from_slice(&[max_skip, max_stored]);
            }
        }
    }
    out
}

fn session_scripts() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    vec![
        (
            "ping-pong",
            vec![
                AliceSends { len: 5 },
                Deliver { idx: 0 },
                BobSends { len: 7 },
                Deliver { idx: 0 },
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                BobSends { len: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "out-of-order",
            vec![
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                AliceSends { len: 4 },
                Deliver { idx: 2 },
                Duplicate { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 9 },
                BobSends { len: 9 },
                Deliver { idx: 2 },
                AliceSends { len: 1 },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Deliver { idx: 0 },
                Replay { msg: 0 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "first-message-lost",
            vec![
                AliceSends { len: 2 },
                AliceSends { len: 2 },
                Drop { idx: 0 },
                Deliver { idx: 0 },
                BobSends { len: 6 },
                Deliver { idx: 0 },
                AliceSends { len: 8 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "tamper",
            vec![
                AliceSends { len: 16 },
                Duplicate { idx: 0 },
                FlipBit { idx: 0, bit: 300 },
                Deliver { idx: 0 },
                Truncate { idx: 0, at: 140 },
                Duplicate { idx: 0 },
                Deliver { idx: 1 },
                AliceSends { len: 16 },
                Splice {
                    a: 0,
                    b: 1,
                    at: 130,
                },
                Deliver { idx: 2 },
                Deliver { idx: 1 },
                BobSends { len: 1 },
                Reflect { idx: 1 },
                Deliver { idx: 0 },
            ],
        ),
        (
            "storage-and-limits",
            vec![
                AliceSends { len: 3 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Bob,
                    sealed: true,
                },
                BobSends { len: 3 },
                BobSends { len: 3 },
                BobSends { len: 3 },
                SetLimits {
                    side: Side::Alice,
                    max_skip: 1,
                    max_stored: 1,
                },
                Deliver { idx: 2 },
                Deliver { idx: 0 },
                Reload {
                    side: Side::Alice,
                    sealed: false,
                },
                SetLimits {
                    side: Side::Bob,
                    max_skip: 255,
                    max_stored: 0,
                },
                Reorder { a: 0, b: 1 },
                Deliver { idx: 0 },
            ],
        ),
    ]
}

/// The seed corpora: small valid inputs for every target, all derived from fixed seeds,
/// so regenerating them gives the same bytes. Panics if an encoding helper of this file
/// disagrees with the crate or with `arbitrary`.
pub fn seeds() -> Vec<Seed> {
    let fx = fixture();
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_string(),
            data,
        });
    };

    // decode_message: each message kind, and bundles. `fx.initial` holds three classical
    // messages with a one-time prekey, one without, then two header-encrypted ones;
    // `fx.probes` a classical conversation, then a header-encrypted one.
    add(
        "decode_message",
        "initial-with-opk",
        fx.initial[0].wire.clone(),
    );
    add(
        "decode_message",
        "initial-no-opk",
        fx.initial[3].wire.clone(),
    );
    add("decode_message", "initial-he", fx.initial[4].wire.clone());
    add("decode_message", "normal", fx.probes[1].0.clone());
    add("decode_message", "normal-he", fx.probes[4].0.clone());
    add("decode_message", "bundle", fx.bundle.to_bytes());

    // session: scripts in the target's input format.
    for (name, ops) in session_scripts() {
        let bytes = ops_to_bytes(&ops);
        assert_eq!(
            ops_from_bytes(&bytes),
            ops,
            "ops encoding of {name} is wrong"
        );
        // The first byte is the mode: classical, then header-encrypted.
        for (mode, prefix) in [(0u8, ""), (1, "he-")] {
            let data = [&[mode][..], &bytes].concat();
            add("session", &format!("{prefix}{name}"), data);
        }
    }

    // respond: one input per mode.
    let with_mode = |mode: u8, rest: &[u8]| [&[mode][..], rest].concat();
    add("respond", "raw-with-opk", with_mode(0, &fx.initial[0].wire));
    add("respond", "raw-no-opk", with_mode(0, &fx.initial[3].wire));
    add("respond", "raw-he", with_mode(0, &fx.initial[4].wire));
    add(
        "respond",
        "field-sealed-header",
        with_mode(2, &[4, 8, 0xff]),
    );
    add("respond", "overwrite", with_mode(1, &[2, 70, 0, 1]));
    add("respond", "field-opk-id", with_mode(2, &[0, 6, 0, 0, 0, 2]));
    add(
        "respond",
        "bit-flips",
        with_mode(3, &[1, 0x10, 0x02, 0x80, 0x03]),
    );

    // load: every stored type, plain and sealed.
    let key = &fx.storage_key;
    let mut seal_rng = rng(11);
    for (mode, name, state) in &fx.states {
        let s = Session::from_bytes(state).unwrap();
        add("load", &format!("{mode}session-{name}"), state.clone());
        add(
            "load",
            &format!("sealed-{mode}session-{name}"),
            key.seal(&s, &mut seal_rng).unwrap(),
        );
    }
    add("load", "identity", fx.carol.to_bytes().to_vec());
    add(
        "load",
        "sealed-identity",
        key.seal(&fx.carol, &mut seal_rng).unwrap(),
    );
    add("load", "signed-prekey", fx.carol_spk.to_bytes().to_vec());
    add(
        "load",
        "sealed-signed-prekey",
        key.seal(&fx.carol_spk, &mut seal_rng).unwrap(),
    );
    add("load", "one-time-prekey", fx.carol_opk.to_bytes().to_vec());
    add(
        "load",
        "sealed-one-time-prekey",
        key.seal(&fx.carol_opk, &mut seal_rng).unwrap(),
    );
    add("load", "prekey-store", fx.store.to_bytes().to_vec());
    add(
        "load",
        "sealed-prekey-store",
        key.seal(&fx.store, &mut seal_rng).unwrap(),
    );

    // bundle: Bob's (with and without a one-time prekey), a third party's, Alice's own,
    // and one with a broken signature.
    add("bundle", "bob", fx.bundle.to_bytes());
    add("bundle", "bob-last-resort", fx.bundle_no_opk.to_bytes());
    add(
        "bundle",
        "carol",
        PreKeyBundle::new(&fx.carol, &fx.carol_spk, Some(&fx.carol_opk)).to_bytes(),
    );
    add(
        "bundle",
        "alice-own",
        PreKeyBundle::new(&fx.alice, &fx.alice_spk, None).to_bytes(),
    );
    let mut forged = fx.bundle.to_bytes();
    forged[BUNDLE_SPK.end] ^= 1;
    add("bundle", "bad-signature", forged);
    out
}
