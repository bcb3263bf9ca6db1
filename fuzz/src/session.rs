//! The `session` target: an Alice/Bob pair driven by operations on a hostile network.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::decode_message::check_message_layout;
use crate::prelude::*;

/// The most genuine initial messages whose acceptance [`ACCEPTED`] keeps.
const MAX_ACCEPTED: usize = 4096;

/// Bob's session as accepting a genuine initial message left it, stored, and the plaintext.
struct BobStart {
    state: Vec<u8>,
    plaintext: Vec<u8>,
}

thread_local! {
    /// Bob's acceptance of each genuine initial message met so far, by PQXDH mode and
    /// message bytes. The fixture and Alice's sessions are the same for every input, so the
    /// same bytes always give the same acceptance; it was checked when first computed.
    static ACCEPTED: RefCell<HashMap<(bool, Vec<u8>), BobStart>> = RefCell::new(HashMap::new());
}

/// One of the two parties.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The initiator.
    Alice,
    /// The responder.
    Bob,
}

impl Side {
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Alice => Side::Bob,
            Side::Bob => Side::Alice,
        }
    }

    pub(crate) fn index(self) -> usize {
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
    decode_ops(data, MAX_OPS)
}

/// A message as sent, and whether its addressee has accepted it.
pub(crate) struct Sent {
    from: Side,
    wire: Vec<u8>,
    plaintext: Vec<u8>,
    accepted: bool,
}

/// Bytes on the network, addressed to `to`.
#[derive(Clone)]
pub(crate) struct Packet {
    to: Side,
    bytes: Vec<u8>,
}

pub(crate) struct Harness {
    /// Whether the session is header-encrypted (SPEC.md §4.8).
    header_encryption: bool,
    /// Whether the session is agreed with PQXDH (SPEC.md §3.6).
    post_quantum: bool,
    /// Each side's padding policy (SPEC.md §4.9), by [`Side::index`].
    padding: [Padding; 2],
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

pub(crate) fn slot<'s>(
    alice: &'s mut Session,
    bob: &'s mut Option<Session>,
    side: Side,
) -> Option<&'s mut Session> {
    match side {
        Side::Alice => Some(alice),
        Side::Bob => bob.as_mut(),
    }
}

pub(crate) fn plaintext_for(index: usize, len: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (index as u8).wrapping_mul(37) ^ i.wrapping_mul(11))
        .collect()
}

/// Alice's fresh session in the given modes, stored. Without the `pqxdh` feature every
/// session is classical.
pub(crate) fn fresh_alice(header_encryption: bool, post_quantum: bool) -> (&'static [u8], bool) {
    let fx = fixture();
    #[cfg(feature = "pqxdh")]
    if post_quantum {
        let fresh = if header_encryption {
            &fx.pq.fresh_alice_he
        } else {
            &fx.pq.fresh_alice
        };
        return (fresh, true);
    }
    let _ = post_quantum;
    let fresh = if header_encryption {
        &fx.fresh_alice_he
    } else {
        &fx.fresh_alice
    };
    (fresh, false)
}

impl Harness {
    fn new(header_encryption: bool, post_quantum: bool, padding: [Padding; 2]) -> Harness {
        let (fresh, post_quantum) = fresh_alice(header_encryption, post_quantum);
        let mut alice = copy_session(fresh, fixture().alice.public_key());
        assert_eq!(alice.is_header_encrypted(), header_encryption);
        assert_eq!(alice.is_post_quantum(), post_quantum);
        assert_eq!(alice.padding(), Padding::Padme, "the default policy");
        alice.set_padding(padding[Side::Alice.index()]);
        Harness {
            header_encryption,
            post_quantum,
            padding,
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
        let padding = s.padding();
        assert_eq!(
            padding,
            self.padding[from.index()],
            "{from:?}'s padding policy"
        );
        let initial = s.awaiting_reply();
        let wire = s.encrypt(&plaintext, rng).unwrap();
        if !initial {
            check_message_layout(&Message::parse(&wire).unwrap(), &wire);
        }
        // The type byte names the kind the session must send (SPEC.md §5.1), and the body
        // is the plaintext encoded under the sender's policy, and the tag. Read from the
        // bytes: parsing an initial message decompresses the identity key in it, the
        // costliest check of a send (the `decode_message` target checks that layout).
        let (kind, fields) = match (initial, self.post_quantum, self.header_encryption) {
            (false, _, false) => (TYPE_NORMAL, 0),
            (false, _, true) => (TYPE_NORMAL_HE, 0),
            (true, false, false) => (TYPE_INITIAL, X3DH_FIELDS),
            (true, false, true) => (TYPE_INITIAL_HE, X3DH_FIELDS),
            (true, true, false) => (TYPE_INITIAL_PQ, X3DH_FIELDS + PQ_FIELDS),
            (true, true, true) => (TYPE_INITIAL_PQ_HE, X3DH_FIELDS + PQ_FIELDS),
        };
        assert_eq!(
            wire[..2],
            [WIRE_VERSION, kind],
            "{from:?} sent the wrong kind"
        );
        let header = if self.header_encryption {
            SEALED_HEADER
        } else {
            PLAIN_HEADER
        };
        assert_eq!(
            wire.len() - (2 + fields + header),
            encoded_length(padding, plaintext.len()) + TAG
        );
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
        // The message these bytes are, if they are exactly one the peer sent.
        let genuine = self
            .sent
            .iter()
            .position(|m| m.from == to.other() && m.wire == bytes);
        let result = match slot(&mut self.alice, &mut self.bob, to) {
            Some(s) => decrypt_checked(s, bytes),
            None => self.bob_starts(bytes).map(|(mut bob, plaintext)| {
                // Accepting takes the default policy; Bob then sets his own.
                assert_eq!(bob.padding(), Padding::Padme);
                bob.set_padding(self.padding[Side::Bob.index()]);
                self.bob = Some(bob);
                plaintext
            }),
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

    /// Bob, without a session yet, starts one from `bytes` (an initial message): his
    /// session, checked against Alice's, and the plaintext. Accepting runs X3DH (or PQXDH)
    /// and is the costliest step of an input, and the fixture is the same for every input:
    /// so Bob's acceptance of a genuine message is computed and checked once per process
    /// (by [`bob_accepts`](Self::bob_accepts)), and later loaded from its stored form
    /// ([`ACCEPTED`]). Anything else is handed to Bob's keys every time.
    fn bob_starts(&mut self, bytes: &[u8]) -> Result<(Session, Vec<u8>), Error> {
        let fx = fixture();
        let key = (self.post_quantum, bytes.to_vec());
        let known = ACCEPTED.with(|memo| {
            memo.borrow().get(&key).map(|start| {
                let bob = copy_session(&start.state, fx.bob.public_key());
                (bob, start.plaintext.clone())
            })
        });
        let (session, plaintext) = match known {
            Some(known) => known,
            None => {
                let accepted = self.bob_accepts(bytes)?;
                // Alice's bundle names Bob's first one-time prekey (of both kinds with
                // PQXDH): consumed, so no replay record and nothing to notice.
                assert_eq!(accepted.used_one_time_prekey, Some(fx.opk_ids[0]));
                assert_eq!(accepted.notice, None);
                #[cfg(feature = "pqxdh")]
                if self.post_quantum {
                    assert_eq!(
                        accepted.used_post_quantum_prekey,
                        Some(fx.pq.one_time_ids[0])
                    );
                }
                if !self.post_quantum {
                    assert_eq!(accepted.used_post_quantum_prekey, None);
                }
                ACCEPTED.with(|memo| {
                    let mut memo = memo.borrow_mut();
                    if memo.len() < MAX_ACCEPTED {
                        let state = accepted.session.to_bytes().to_vec();
                        let plaintext = accepted.plaintext.clone();
                        memo.insert(key, BobStart { state, plaintext });
                    }
                });
                (accepted.session, accepted.plaintext)
            }
        };
        assert_eq!(session.is_post_quantum(), self.post_quantum);
        assert_eq!(session.id(), self.alice.id());
        assert_eq!(session.role(), Role::Responder);
        assert_eq!(session.remote_identity(), fx.alice.public_key());
        assert_eq!(session.is_header_encrypted(), self.header_encryption);
        Ok((session, plaintext))
    }

    /// Bob accepts a session from `bytes`: through his store with PQXDH (a copy in the
    /// fixture's state, which must be unchanged on error, and lose the one-time prekeys on
    /// success), else through `Session::respond`.
    fn bob_accepts(&mut self, bytes: &[u8]) -> Result<Accepted, Error> {
        let fx = fixture();
        if !self.post_quantum {
            return Session::respond(&fx.bob, bob_spk, bob_opk, bytes, &SessionOptions::new());
        }
        with_bob_store(|store| {
            let before = store.to_bytes();
            let result = store.accept(bytes, &SessionOptions::new());
            match &result {
                Ok(accepted) => {
                    if let Some(id) = accepted.used_one_time_prekey {
                        assert!(store.one_time_prekey(id).is_none());
                    }
                    #[cfg(feature = "pqxdh")]
                    if let Some(id) = accepted.used_post_quantum_prekey {
                        assert!(store.pq_prekey(id).is_none(), "PQ one-time prekey kept");
                    }
                }
                Err(e) => assert_eq!(
                    *store.to_bytes(),
                    *before,
                    "a refused message ({e:?}) changed the store"
                ),
            }
            result
        })
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
                        // Sealed for the place this side's session is stored: the blob
                        // opens with that context only.
                        let context = SESSION_CONTEXTS[side.index()];
                        let key = &fx.storage_key;
                        let blob = key.seal(&*s, context, seal_rng).unwrap();
                        let local = *s.local_identity();
                        for other in [SESSION_CONTEXTS[side.other().index()], b""] {
                            assert_eq!(
                                key.open_session(&blob, other, &local).err(),
                                Some(Error::DecryptionFailed),
                                "a sealed session opened with another context"
                            );
                        }
                        key.open_session(&blob, context, &local).unwrap()
                    } else {
                        reload(s)
                    };
                    assert_eq!(*loaded.to_bytes(), *bytes);
                    assert_eq!(loaded.id(), s.id());
                    assert_eq!(loaded.role(), s.role());
                    assert_eq!(loaded.awaiting_reply(), s.awaiting_reply());
                    assert_eq!(loaded.limits(), s.limits());
                    assert_eq!(loaded.padding(), s.padding());
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
                let limits = Limits::new(
                    if valid {
                        u32::from(max_skip)
                    } else {
                        MAX_SKIP_CAP + 1
                    },
                    u32::from(max_stored),
                );
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
/// fresh unmodified message is accepted (unless the fuzzer lowered the limits), every
/// message's body is its plaintext padded by its sender's policy, and at the end both
/// sides still talk. Bit 0 of the first byte selects header encryption, bit 1 PQXDH (Bob
/// then accepts through his prekey store), bit 2 Alice sending without padding and bit 3
/// Bob sending without padding (otherwise each pads with Padmé, the default); the rest is
/// decoded into [`Op`]s.
pub fn session(data: &[u8]) {
    let (mode, ops) = data.split_first().map_or((0, data), |(m, rest)| (*m, rest));
    let policy = |unpadded: bool| {
        if unpadded {
            Padding::None
        } else {
            Padding::Padme
        }
    };
    let padding = [policy(mode & 4 == 4), policy(mode & 8 == 8)];
    let mut h = Harness::new(mode & 1 == 1, mode & 2 == 2, padding);
    for op in ops_from_bytes(ops) {
        h.apply(op);
    }
    h.finish();
}
