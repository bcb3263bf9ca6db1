//! The `symmetric` target: the receiving side of an established session on the symmetric
//! path only (chain steps, skipped message keys, transactional decryption), with no
//! Diffie-Hellman work per input, so that it runs thousands of inputs a second.
//!
//! The fixture (made once per process, per mode) is a conversation that left Bob past one
//! of Alice's chains with messages missing, and Alice's messages on two chains encrypted in
//! advance (the *pool*):
//!
//! - chain 0: Alice's initial message, which Bob accepted (not in the pool: parsing an
//!   initial message decompresses the identity key in it, which costs more than the rest
//!   of its decryption; the `session` target sends initial messages);
//! - chain 1: a normal chain, its first message accepted;
//! - chain 2: Alice's current chain, its first message accepted (Bob's DH ratchet step to it
//!   stored the missing keys of chain 1 as skipped keys, SPEC.md §6.6).
//!
//! After that, Bob sent once more (so his sending chain is active: sending needs no DH step
//! either). Every message of the pool therefore decrypts without a DH ratchet step: late
//! ones from the skipped-key store, chain 2's from its chain key (skipping ahead stores
//! keys). An input loads Bob from his stored state and applies operations decoded with
//! `arbitrary` ([`SymOp`]): deliver a pool message, a corrupted copy (one bit flipped,
//! truncated, two messages spliced), Bob sending, reload (plain or sealed), lower limits.
//! The first input byte selects header encryption (bit 0).
//!
//! It asserts: an accepted message is byte-for-byte a pool message not accepted before and
//! decrypts to its plaintext; a rejection leaves Bob's `to_bytes()` unchanged; a fresh
//! genuine message is accepted (unless the limits were lowered: then only `TooFarAhead`,
//! `DuplicateOrExpired` or `DecryptionFailed` may refuse it); Bob's stored skipped keys are
//! exactly the ones a model of the chains predicts (with the default limits); Bob's
//! messages are normal messages of the right kind and padded length; and at the end the
//! last message of each chain not yet accepted decrypts.

use std::sync::OnceLock;

use crate::decode_message::check_message_layout;
use crate::prelude::*;

/// How many messages of each of Alice's chains the pool holds.
pub(crate) const CHAIN_LENGTHS: [usize; 3] = [1, 5, 8];
/// The most operations the `symmetric` target runs for one input.
const MAX_SYM_OPS: usize = 64;
/// The application context of the target's sealed reloads.
const SYM_CONTEXT: &[u8] = b"fuzz: symmetric";
/// Bob's limits in the fixture: low enough that a corrupted message number costs at most
/// a few dozen chain steps before it is refused (and rolled back), high enough that the
/// pool never reaches them.
pub(crate) const FIXTURE_LIMITS: Limits = Limits::new(32, 64);
/// The most reloads an input makes (later `Reload` operations do nothing): loading a
/// session computes its ratchet public key, a scalar multiplication that costs more than
/// the rest of an input.
const MAX_RELOADS: usize = 2;

/// One message of the pool.
pub(crate) struct PoolMessage {
    /// Which of Alice's chains (0, 1, 2) and the message number in it.
    pub(crate) chain: usize,
    pub(crate) n: usize,
    pub(crate) wire: Vec<u8>,
    pub(crate) plaintext: Vec<u8>,
}

/// Bob's stored state and Alice's messages, for one header mode.
pub(crate) struct SymmetricFixture {
    pub(crate) bob_state: Vec<u8>,
    /// The ratchet public key of each of Alice's chains (header-in-the-clear mode).
    pub(crate) chain_keys: Vec<[u8; 32]>,
    /// Alice's messages of chains 1 and 2; the first of each Bob has accepted.
    pub(crate) pool: Vec<PoolMessage>,
}

/// The fixture of each mode: index 0 plain, 1 header-encrypted.
pub(crate) fn symmetric_fixture(header_encryption: bool) -> &'static SymmetricFixture {
    static FIXTURES: OnceLock<[SymmetricFixture; 2]> = OnceLock::new();
    let fixtures =
        FIXTURES.get_or_init(|| [make_symmetric_fixture(false), make_symmetric_fixture(true)]);
    &fixtures[usize::from(header_encryption)]
}

/// The plaintext of message `n` of chain `chain`: lengths vary around Padmé's minimum.
fn pool_plaintext(chain: usize, n: usize) -> Vec<u8> {
    let len = (chain * 29 + n * 13) % 90;
    (0..len).map(|i| (chain * 64 + n * 7 + i) as u8).collect()
}

/// Alice sends chain `chain` of the pool.
fn alice_sends_chain(a: &mut Session, chain: usize, rng: &mut ChaCha20Rng) -> Vec<PoolMessage> {
    (0..CHAIN_LENGTHS[chain])
        .map(|n| {
            let plaintext = pool_plaintext(chain, n);
            PoolMessage {
                chain,
                n,
                wire: a.encrypt(&plaintext, rng).unwrap(),
                plaintext,
            }
        })
        .collect()
}

fn make_symmetric_fixture(header_encryption: bool) -> SymmetricFixture {
    let fx = fixture();
    let mut rng = rng(0x5eed_0003 + u64::from(header_encryption));
    let options = if header_encryption {
        he_options()
    } else {
        SessionOptions::new()
    };
    let mut a = Session::initiate(&fx.alice, &fx.bundle, &options, &mut rng).unwrap();
    let initial = alice_sends_chain(&mut a, 0, &mut rng);
    let mut b = Session::respond(
        &fx.bob,
        bob_spk,
        bob_opk,
        &initial[0].wire,
        &SessionOptions::new(),
    )
    .unwrap()
    .session;
    let mut pool = Vec::new();
    for chain in 1..CHAIN_LENGTHS.len() {
        let reply = b.encrypt(b"reply", &mut rng).unwrap();
        assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
        let messages = alice_sends_chain(&mut a, chain, &mut rng);
        assert_eq!(b.decrypt(&messages[0].wire).unwrap(), messages[0].plaintext);
        pool.extend(messages);
    }
    // Bob's sending chain becomes active (his DH step happens here, not per input).
    b.encrypt(b"active", &mut rng).unwrap();
    b.set_limits(FIXTURE_LIMITS).unwrap();
    let chain_keys = (0..CHAIN_LENGTHS.len())
        .map(|chain| {
            let first = initial
                .iter()
                .chain(&pool)
                .find(|m| m.chain == chain)
                .unwrap();
            let parsed = Message::parse(&first.wire).unwrap();
            parsed.ratchet_key().map_or([0; 32], |k| k.to_bytes())
        })
        .collect();
    let skipped: usize = CHAIN_LENGTHS[..2].iter().map(|l| l - 1).sum();
    assert_eq!(b.stored_skipped_keys(), skipped);
    SymmetricFixture {
        bob_state: b.to_bytes().to_vec(),
        chain_keys,
        pool,
    }
}

/// One step of the `symmetric` target. Message indices are taken modulo the pool's size.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymOp {
    /// Bob receives pool message `msg`.
    Deliver {
        /// Pool index.
        msg: u8,
    },
    /// Bob receives pool message `msg` with one bit flipped.
    FlipBit {
        /// Pool index.
        msg: u8,
        /// Bit position, modulo the message's length in bits.
        bit: u16,
    },
    /// Bob receives pool message `msg` cut short at `at` (if it is longer).
    Truncate {
        /// Pool index.
        msg: u8,
        /// New length.
        at: u16,
    },
    /// Bob receives `a` up to `at` followed by `b` from `at` on.
    Splice {
        /// Pool index of the head.
        a: u8,
        /// Pool index of the tail.
        b: u8,
        /// Cut position.
        at: u16,
    },
    /// Bob encrypts a `len`-byte plaintext on his active sending chain.
    BobSends {
        /// Plaintext length.
        len: u8,
    },
    /// Bob's session is replaced by its stored encoding, loaded back (sealed first, if
    /// `sealed`).
    Reload {
        /// Whether to go through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// Lowers Bob's limits (`max_skip = 255` stands for one above the hard cap, which must
    /// be refused).
    SetLimits {
        /// New `max_skip`.
        max_skip: u8,
        /// New `max_stored_skipped`.
        max_stored: u8,
    },
}

/// The number of [`SymOp`] variants (`arbitrary` picks one of them from a `u32`).
pub(crate) const SYM_OP_VARIANTS: u64 = 7;

/// Decodes the `symmetric` target's input (after the mode byte) into at most
/// [`MAX_SYM_OPS`] operations.
pub fn sym_ops_from_bytes(data: &[u8]) -> Vec<SymOp> {
    decode_ops(data, MAX_SYM_OPS)
}

/// Bob, the pool, and what he accepted so far.
struct Receiver {
    fx: &'static SymmetricFixture,
    bob: Session,
    header_encryption: bool,
    /// By pool index: accepted (the first message of every chain was, in the fixture).
    accepted: Vec<bool>,
    /// Set once Bob's limits were lowered (keys may have been evicted since).
    relaxed: bool,
    /// By pool index: a late message Bob refused after lowered limits (its key evicted).
    gone: Vec<bool>,
    reloads: usize,
    rng: ChaCha20Rng,
}

impl Receiver {
    fn new(header_encryption: bool) -> Receiver {
        let fx = symmetric_fixture(header_encryption);
        let bob = copy_session(&fx.bob_state, fixture().bob.public_key());
        assert_eq!(bob.is_header_encrypted(), header_encryption);
        Receiver {
            fx,
            bob,
            header_encryption,
            accepted: fx.pool.iter().map(|m| m.n == 0).collect(),
            relaxed: false,
            gone: vec![false; fx.pool.len()],
            reloads: 0,
            rng: rng(0x5E11),
        }
    }

    fn pick(&self, msg: u8) -> usize {
        usize::from(msg) % self.fx.pool.len()
    }

    /// The skipped keys Bob must hold: every message of the chain he has moved past (1) not
    /// accepted yet, and every message of chain 2 below the highest accepted one
    /// and not accepted (SPEC.md §6.6).
    fn expected_skipped(&self) -> usize {
        let pool = &self.fx.pool;
        let highest = pool
            .iter()
            .zip(&self.accepted)
            .filter(|(m, accepted)| m.chain == 2 && **accepted)
            .map(|(m, _)| m.n)
            .max()
            .unwrap_or(0);
        pool.iter()
            .zip(&self.accepted)
            .filter(|(m, accepted)| !**accepted && (m.chain < 2 || m.n < highest))
            .count()
    }

    /// Whether Bob would try a DH ratchet step on `bytes` (header in the clear only): a
    /// ratchet key other than the current chain's, unless it and the message number name a
    /// skipped key he holds (or may hold: once lowered limits evicted keys, every late
    /// message counts as unknown). Such bytes are left to the `session` target. With an encrypted
    /// header Bob only tries the header keys he holds, so nothing is left out.
    fn would_ratchet(&self, bytes: &[u8]) -> bool {
        let at = match bytes.get(1) {
            _ if self.header_encryption => return false,
            Some(&TYPE_NORMAL) => 2,
            Some(&TYPE_INITIAL) => INITIAL_FIELDS_END,
            _ => return false,
        };
        let Some(header) = bytes.get(at..at + PLAIN_HEADER) else {
            return false;
        };
        let n = u32::from_be_bytes(header[36..40].try_into().unwrap()) as usize;
        match self
            .fx
            .chain_keys
            .iter()
            .position(|k| k[..] == header[..32])
        {
            Some(2) => false,
            // Lowered limits evicted keys, and which ones is not modelled here.
            Some(_) if self.bob.stored_skipped_keys() < self.expected_skipped() => true,
            Some(chain) => !self
                .fx
                .pool
                .iter()
                .zip(self.accepted.iter().zip(&self.gone))
                .any(|(m, (accepted, gone))| m.chain == chain && m.n == n && !accepted && !gone),
            None => true,
        }
    }

    /// Bob receives `bytes`; returns whether he accepted them.
    fn deliver(&mut self, bytes: &[u8]) -> bool {
        if self.would_ratchet(bytes) {
            return false;
        }
        let genuine = self.fx.pool.iter().position(|m| m.wire == bytes);
        match decrypt_checked(&mut self.bob, bytes) {
            Ok(plaintext) => {
                let Some(i) = genuine else {
                    panic!("Bob accepted bytes Alice never sent: {}", hex(bytes));
                };
                assert!(!self.accepted[i], "Bob accepted pool message {i} twice");
                assert_eq!(plaintext, self.fx.pool[i].plaintext, "message {i}");
                self.accepted[i] = true;
                true
            }
            Err(e) => {
                if let Some(i) = genuine.filter(|i| !self.accepted[*i]) {
                    assert!(
                        self.relaxed
                            && matches!(
                                e,
                                Error::TooFarAhead
                                    | Error::DuplicateOrExpired
                                    | Error::DecryptionFailed
                            ),
                        "Bob rejected fresh pool message {i} with {e:?}"
                    );
                    // A late message whose key the lowered limits evicted: its ratchet key
                    // is no longer known, so delivering it again is a DH step (left out).
                    self.gone[i] |= self.fx.pool[i].chain < 2 && e != Error::TooFarAhead;
                }
                false
            }
        }
    }

    fn apply(&mut self, op: SymOp) {
        match op {
            SymOp::Deliver { msg } => {
                let i = self.pick(msg);
                self.deliver(&self.fx.pool[i].wire);
            }
            SymOp::FlipBit { msg, bit } => {
                let mut bytes = self.fx.pool[self.pick(msg)].wire.clone();
                let bit = usize::from(bit) % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.deliver(&bytes);
            }
            SymOp::Truncate { msg, at } => {
                let wire = &self.fx.pool[self.pick(msg)].wire;
                self.deliver(&wire[..usize::from(at).min(wire.len())]);
            }
            SymOp::Splice { a, b, at } => {
                let (head, tail) = (&self.fx.pool[self.pick(a)], &self.fx.pool[self.pick(b)]);
                let at = usize::from(at).min(head.wire.len());
                let mut bytes = head.wire[..at].to_vec();
                bytes.extend_from_slice(tail.wire.get(at..).unwrap_or(&[]));
                self.deliver(&bytes);
            }
            SymOp::BobSends { len } => self.bob_sends(len),
            SymOp::Reload { sealed } => self.reload(sealed),
            SymOp::SetLimits {
                max_skip,
                max_stored,
            } => self.set_limits(max_skip, max_stored),
        }
        if !self.relaxed {
            assert_eq!(
                self.bob.stored_skipped_keys(),
                self.expected_skipped(),
                "Bob's skipped keys disagree with the chains after {op:?}"
            );
        }
    }

    /// Bob's message on his active chain: a normal message of his mode, its body his
    /// plaintext padded by his policy (SPEC.md §4.9), and sending left his receiving side
    /// alone.
    fn bob_sends(&mut self, len: u8) {
        let plaintext = vec![0x5a; usize::from(len)];
        let skipped = self.bob.stored_skipped_keys();
        let wire = self.bob.encrypt(&plaintext, &mut self.rng).unwrap();
        let parsed = Message::parse(&wire).unwrap();
        check_message_layout(&parsed, &wire);
        assert!(
            matches!(parsed, Message::Normal(_)),
            "Bob sent an initial message"
        );
        assert_eq!(parsed.is_header_encrypted(), self.header_encryption);
        assert_eq!(
            parsed.ciphertext_len(),
            encoded_length(self.bob.padding(), plaintext.len()) + TAG
        );
        assert_eq!(self.bob.stored_skipped_keys(), skipped);
    }

    fn reload(&mut self, sealed: bool) {
        if self.reloads == MAX_RELOADS {
            return;
        }
        self.reloads += 1;
        let bytes = self.bob.to_bytes();
        let loaded = if sealed {
            let key = &fixture().storage_key;
            let blob = key.seal(&self.bob, SYM_CONTEXT, &mut self.rng).unwrap();
            key.open_session(&blob, SYM_CONTEXT, self.bob.local_identity())
                .unwrap()
        } else {
            reload_session(&bytes, self.bob.local_identity())
        };
        assert_eq!(*loaded.to_bytes(), *bytes);
        assert_eq!(loaded.limits(), self.bob.limits());
        assert_eq!(loaded.stored_skipped_keys(), self.bob.stored_skipped_keys());
        self.bob = loaded;
    }

    fn set_limits(&mut self, max_skip: u8, max_stored: u8) {
        let valid = max_skip != u8::MAX;
        let limits = Limits::new(
            if valid {
                u32::from(max_skip)
            } else {
                MAX_SKIP_CAP + 1
            },
            u32::from(max_stored),
        );
        let before = self.bob.to_bytes();
        match self.bob.set_limits(limits) {
            Ok(()) => {
                assert!(valid, "limits above the cap accepted");
                assert_eq!(self.bob.limits(), limits);
                assert!(self.bob.stored_skipped_keys() <= usize::from(max_stored));
                self.relaxed = true;
            }
            Err(e) => {
                assert!(!valid, "valid limits refused: {e:?}");
                assert_eq!(e, Error::InvalidLimits);
                assert_eq!(
                    *self.bob.to_bytes(),
                    *before,
                    "refused limits changed state"
                );
            }
        }
    }

    /// With the fixture's limits back, Bob still receives on both of Alice's chains: the
    /// last message of each not accepted yet is accepted (or, if keys may have been
    /// evicted, refused as the limits allow), and his skipped keys are still the model's.
    /// (One message per chain: every decryption here is paid by every input.)
    fn finish(mut self) {
        self.bob.set_limits(FIXTURE_LIMITS).unwrap();
        for chain in [2, 1] {
            let last = (0..self.fx.pool.len())
                .rev()
                .find(|&i| self.fx.pool[i].chain == chain && !self.accepted[i] && !self.gone[i]);
            if let Some(i) = last {
                let accepted = self.deliver(&self.fx.pool[i].wire);
                assert!(accepted || self.relaxed, "pool message {i} refused");
            }
        }
        if !self.relaxed {
            assert_eq!(self.bob.stored_skipped_keys(), self.expected_skipped());
        }
    }
}

/// Bob's established session receiving Alice's messages from two chains, intact,
/// corrupted, duplicated and in any order, with reloads and lowered limits, and sending on
/// his active chain: no DH ratchet step per input (see the module documentation). Bit 0
/// of the first byte selects header encryption; the rest is decoded into [`SymOp`]s.
pub fn symmetric(data: &[u8]) {
    let (mode, ops) = data.split_first().map_or((0, data), |(m, rest)| (*m, rest));
    let mut r = Receiver::new(mode & 1 == 1);
    for op in sym_ops_from_bytes(ops) {
        r.apply(op);
    }
    r.finish();
}
