//! Property tests (proptest) of sessions and their persistence:
//!
//! * (a) any delivery order of up to 60 messages from one sender, mixed with DH ratchet
//!   steps, decrypts every message to the plaintext sent;
//! * (b) every single-bit flip of a message is rejected and leaves the receiving session
//!   (or the responder's prekey store) byte for byte unchanged;
//! * (c) storing and reloading both sessions at any point of a random conversation changes
//!   nothing: the same plaintexts, the same errors and, with a cloned RNG, the same
//!   ciphertext bytes and stored states;
//! * (d) random operation sequences (send either way, deliver, drop, duplicate, reload)
//!   agree with a small model of the receiver: a message decrypts iff it was not delivered
//!   before and is within the session's limits (including eviction of skipped keys), to
//!   the plaintext sent; otherwise the error is the one the model predicts.
//!
//! Case counts are kept small so the file runs in well under 30 s in a debug build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;

use doubleratchet::{Error, IdentityKeyPair, Limits, PreKeyStore, Session};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use rand_chacha::ChaCha20Rng;
use support::{accepted_pair, header, is_initial, reload, rng, stored, Parties};

/// Few cases, and no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A plaintext that names its message, padded to `len` bytes or more.
fn plaintext(tag: &str, i: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{tag}{i}:").into_bytes();
    p.extend((0..len).map(|j| (i + j) as u8));
    p
}

// ---------------------------------------------------------------------------------------
// (a) Any delivery order
// ---------------------------------------------------------------------------------------

/// `n` messages, for each whether a DH ratchet step comes before it, and a delivery order.
fn messages_and_order() -> impl Strategy<Value = (Vec<bool>, Vec<usize>)> {
    (1usize..=60).prop_flat_map(|n| {
        (
            vec(prop::bool::weighted(0.2), n),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn any_delivery_order_decrypts(
        seed in any::<u64>(),
        (ratchets, order) in messages_and_order(),
        lens in vec(0usize..40, 60),
    ) {
        let mut rng = rng(seed);
        let mut parties = Parties::new(&mut rng);
        let mut a = parties.initiate(&mut rng);
        let mut b: Option<Session> = None;
        let mut held = Vec::new();
        for (i, ratchet) in ratchets.iter().enumerate() {
            if *ratchet {
                // A round trip delivered at once: Bob's reply carries a new ratchet key, so
                // Alice's next message starts a new sending chain.
                let ping = a.encrypt(b"ping", &mut rng).unwrap();
                let bob = match &mut b {
                    Some(bob) => {
                        prop_assert_eq!(bob.decrypt(&ping).unwrap(), b"ping");
                        bob
                    }
                    None => b.insert(parties.accept(&ping, Limits::default()).unwrap().0),
                };
                let pong = bob.encrypt(b"pong", &mut rng).unwrap();
                prop_assert_eq!(a.decrypt(&pong).unwrap(), b"pong");
            }
            let p = plaintext("m", i, lens[i]);
            held.push((a.encrypt(&p, &mut rng).unwrap(), p));
        }
        for i in order {
            let (message, sent) = &held[i];
            let got = match &mut b {
                Some(bob) => bob.decrypt(message).unwrap(),
                None => {
                    // No round trip: Bob's session comes from whichever message is first.
                    prop_assert!(is_initial(message));
                    let (session, got) = parties.accept(message, Limits::default()).unwrap();
                    b = Some(session);
                    got
                }
            };
            prop_assert_eq!(&got, sent, "message {}", i);
        }
        let bob = b.as_mut().unwrap();
        // Every skipped key was used by the message it was kept for.
        prop_assert_eq!(bob.stored_skipped_keys(), 0);
        // And every message is now a replay, rejected without any change.
        let before = stored(bob);
        for (message, _) in &held {
            let err = bob.decrypt(message).unwrap_err();
            prop_assert!(
                matches!(err, Error::DuplicateOrExpired | Error::DecryptionFailed),
                "{:?}", err
            );
            prop_assert_eq!(&stored(bob), &before);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (b) Bit flips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(24))]

    /// A message held back in a live conversation (in the current chain, ahead of it, in a
    /// new chain, or with its key in the skipped store), with every bit flipped in turn.
    #[test]
    fn every_bit_flip_is_rejected_and_changes_nothing(
        seed in any::<u64>(),
        round_trips in 0usize..3,
        to_alice in any::<bool>(),
        held_count in 1usize..5,
        target in any::<Index>(),
        deliver_first in vec(any::<bool>(), 5),
        len in 0usize..24,
    ) {
        let (_, mut a, mut b, mut rng) = accepted_pair(seed);
        for _ in 0..round_trips {
            let m = a.encrypt(b"a", &mut rng).unwrap();
            b.decrypt(&m).unwrap();
            let m = b.encrypt(b"b", &mut rng).unwrap();
            a.decrypt(&m).unwrap();
        }
        let (sender, receiver) = if to_alice { (&mut b, &mut a) } else { (&mut a, &mut b) };
        let held: Vec<(Vec<u8>, Vec<u8>)> = (0..held_count)
            .map(|i| {
                let p = plaintext("h", i, len);
                (sender.encrypt(&p, &mut rng).unwrap(), p)
            })
            .collect();
        let target = target.index(held_count);
        for (i, (m, p)) in held.iter().enumerate() {
            if i != target && deliver_first[i] {
                prop_assert_eq!(&receiver.decrypt(m).unwrap(), p);
            }
        }
        let before = stored(receiver);
        let (message, sent) = &held[target];
        for bit in 0..message.len() * 8 {
            let mut flipped = message.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = receiver.decrypt(&flipped);
            prop_assert!(result.is_err(), "bit {} accepted", bit);
            prop_assert_eq!(&stored(receiver), &before, "bit {} changed the session", bit);
        }
        // The untouched message still decrypts: no attempt used up its key.
        prop_assert_eq!(&receiver.decrypt(message).unwrap(), sent);
    }
}

proptest! {
    // Each case runs X3DH for about a thousand flipped messages.
    #![proptest_config(config(3))]

    /// An initial message given to the responder's prekey store, every bit flipped in turn:
    /// no session is created and the store (with its one-time prekey) is unchanged.
    #[test]
    fn every_bit_flip_of_an_initial_message_is_rejected_by_the_store(
        seed in any::<u64>(),
        index in 0usize..3,
        len in 0usize..16,
    ) {
        let mut rng = rng(seed);
        let mut parties = Parties::new(&mut rng);
        let mut a = parties.initiate(&mut rng);
        let mut messages: Vec<Vec<u8>> = (0..=index)
            .map(|i| a.encrypt(&plaintext("i", i, len), &mut rng).unwrap())
            .collect();
        let message = messages.pop().unwrap();
        let before = parties.store.to_bytes().to_vec();
        for bit in 0..message.len() * 8 {
            let mut flipped = message.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = parties.store.accept(&parties.bob, &flipped);
            prop_assert!(result.is_err(), "bit {} accepted", bit);
            prop_assert_eq!(&parties.store.to_bytes()[..], &before[..], "bit {}", bit);
        }
        let accepted = parties.store.accept(&parties.bob, &message).unwrap();
        prop_assert_eq!(accepted.plaintext, plaintext("i", index, len));
    }
}

// ---------------------------------------------------------------------------------------
// A conversation driven by operations, shared by (c) and (d)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Alice -> Bob (`true`) or Bob -> Alice; Bob can send once his session exists.
    Send { a_to_b: bool, len: usize },
    /// Deliver one of the messages in flight (sent, not yet decrypted, not dropped).
    Deliver(Index),
    /// Lose one of the messages in flight for good.
    Drop(Index),
    /// Deliver again one of the messages already decrypted.
    Duplicate(Index),
    /// Store and load Alice's (`true`) or Bob's session.
    Reload { alice: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<bool>(), 0usize..24).prop_map(|(a_to_b, len)| Op::Send { a_to_b, len }),
        5 => any::<Index>().prop_map(Op::Deliver),
        1 => any::<Index>().prop_map(Op::Drop),
        1 => any::<Index>().prop_map(Op::Duplicate),
        1 => any::<bool>().prop_map(|alice| Op::Reload { alice }),
    ]
}

#[derive(Debug, Clone)]
struct Sent {
    a_to_b: bool,
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
    delivered: bool,
    dropped: bool,
}

/// What an operation did, to compare two runs.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Nothing,
    Sent(Vec<u8>),
    Received(usize, Result<Vec<u8>, Error>),
    Reloaded,
}

struct World {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    store: PreKeyStore,
    rng: ChaCha20Rng,
    a: Session,
    b: Option<Session>,
    limits_b: Limits,
    sent: Vec<Sent>,
}

impl World {
    fn new(seed: u64, post_quantum: bool, limits_a: Limits, limits_b: Limits) -> World {
        let mut rng = rng(seed);
        let parties = Parties::with_kind(&mut rng, post_quantum);
        let mut a = parties.initiate(&mut rng);
        assert_eq!(a.is_post_quantum(), post_quantum);
        a.set_limits(limits_a).unwrap();
        World {
            alice: parties.alice,
            bob: parties.bob,
            store: parties.store,
            rng,
            a,
            b: None,
            limits_b,
            sent: Vec::new(),
        }
    }

    /// A copy made only of stored bytes (and a clone of the RNG state).
    fn reloaded(&self) -> World {
        World {
            alice: IdentityKeyPair::from_bytes(&self.alice.to_bytes()).unwrap(),
            bob: IdentityKeyPair::from_bytes(&self.bob.to_bytes()).unwrap(),
            store: PreKeyStore::from_bytes(&self.store.to_bytes()).unwrap(),
            rng: self.rng.clone(),
            a: reload(&self.a),
            b: self.b.as_ref().map(reload),
            limits_b: self.limits_b,
            sent: self.sent.clone(),
        }
    }

    fn stored_state(&self) -> (Vec<u8>, Option<Vec<u8>>, Vec<u8>) {
        (
            stored(&self.a),
            self.b.as_ref().map(stored),
            self.store.to_bytes().to_vec(),
        )
    }

    fn pick(&self, index: &Index, wanted: impl Fn(&Sent) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.sent.len())
            .filter(|i| wanted(&self.sent[*i]))
            .collect();
        (!candidates.is_empty()).then(|| candidates[index.index(candidates.len())])
    }

    /// Delivers message `i` to its receiver; a failure must change nothing.
    fn receive(&mut self, i: usize) -> Result<Vec<u8>, Error> {
        let before = self.stored_state();
        let message = &self.sent[i];
        let result = if !message.a_to_b {
            self.a.decrypt(&message.bytes)
        } else if let Some(b) = &mut self.b {
            b.decrypt(&message.bytes)
        } else {
            // Bob's first message: routed to his store, which makes his session.
            self.store
                .accept_with_limits(&self.bob, &message.bytes, self.limits_b)
                .map(|accepted| {
                    self.b = Some(accepted.session);
                    accepted.plaintext
                })
        };
        match &result {
            Ok(_) => self.sent[i].delivered = true,
            Err(e) => assert_eq!(
                self.stored_state(),
                before,
                "a failed delivery ({e:?}) changed state"
            ),
        }
        result
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Send { a_to_b, len } => {
                let plaintext = plaintext(if *a_to_b { "ab" } else { "ba" }, self.sent.len(), *len);
                let sender = if *a_to_b {
                    Some(&mut self.a)
                } else {
                    self.b.as_mut()
                };
                let Some(sender) = sender else {
                    return Outcome::Nothing;
                };
                let bytes = sender.encrypt(&plaintext, &mut self.rng).unwrap();
                self.sent.push(Sent {
                    a_to_b: *a_to_b,
                    bytes: bytes.clone(),
                    plaintext,
                    delivered: false,
                    dropped: false,
                });
                Outcome::Sent(bytes)
            }
            Op::Deliver(index) => match self.pick(index, |s| !s.delivered && !s.dropped) {
                Some(i) => Outcome::Received(i, self.receive(i)),
                None => Outcome::Nothing,
            },
            Op::Drop(index) => {
                if let Some(i) = self.pick(index, |s| !s.delivered && !s.dropped) {
                    self.sent[i].dropped = true;
                }
                Outcome::Nothing
            }
            Op::Duplicate(index) => match self.pick(index, |s| s.delivered) {
                Some(i) => Outcome::Received(i, self.receive(i)),
                None => Outcome::Nothing,
            },
            Op::Reload { alice: true } => {
                self.a = reload(&self.a);
                Outcome::Reloaded
            }
            Op::Reload { alice: false } => {
                if let Some(b) = &self.b {
                    self.b = Some(reload(b));
                }
                Outcome::Reloaded
            }
        }
    }
}

/// Classical X3DH or PQXDH (only with the `pqxdh` feature).
fn post_quantum() -> impl Strategy<Value = bool> {
    if cfg!(feature = "pqxdh") {
        any::<bool>().boxed()
    } else {
        Just(false).boxed()
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        prop::sample::select(vec![0u32, 1, 2, 3, 5, 8, 1000]),
        prop::sample::select(vec![0u32, 1, 2, 4, 2000]),
    )
        .prop_map(|(max_skip, max_stored_skipped)| Limits {
            max_skip,
            max_stored_skipped,
        })
}

// ---------------------------------------------------------------------------------------
// (c) Reload at any point
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn reloading_at_any_point_changes_nothing(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        limits_a in limits(),
        limits_b in limits(),
        ops in vec(op(), 1..80),
        split in any::<Index>(),
    ) {
        let split = split.index(ops.len() + 1);
        let mut original = World::new(seed, post_quantum, limits_a, limits_b);
        for op in &ops[..split] {
            original.apply(op);
        }
        // Everything the app would store, loaded again; the RNG cloned.
        let mut copy = original.reloaded();
        prop_assert_eq!(copy.stored_state(), original.stored_state());
        for (step, op) in ops[split..].iter().enumerate() {
            let expected = original.apply(op);
            let got = copy.apply(op);
            prop_assert_eq!(&got, &expected, "step {} after the reload: {:?}", step, op);
            prop_assert_eq!(copy.stored_state(), original.stored_state());
        }
    }
}

// ---------------------------------------------------------------------------------------
// (d) Model
// ---------------------------------------------------------------------------------------

/// The receiving side of a session, as SPEC.md §4.4/§4.6 describe it: the current chain
/// (the sender's ratchet key and its position among the sender's keys), the next message
/// number, and the skipped keys in insertion order.
struct Receiver {
    limits: Limits,
    current: Option<([u8; 32], usize)>,
    nr: u32,
    skipped: VecDeque<([u8; 32], u32)>,
}

impl Receiver {
    fn new(limits: Limits) -> Receiver {
        Receiver {
            limits,
            current: None,
            nr: 0,
            skipped: VecDeque::new(),
        }
    }

    fn store(&mut self, index: ([u8; 32], u32)) {
        self.skipped.push_back(index);
        while self.skipped.len() > self.limits.max_stored_skipped as usize {
            self.skipped.pop_front();
        }
    }

    /// The predicted result of receiving a message with ratchet key `dh` (the sender's
    /// `chain`-th key), number `n` and previous chain length `pn`; commits on success.
    fn receive(&mut self, dh: [u8; 32], chain: usize, n: u32, pn: u32) -> Result<(), Error> {
        if let Some(at) = self.skipped.iter().position(|s| *s == (dh, n)) {
            self.skipped.remove(at);
            return Ok(());
        }
        let max_skip = self.limits.max_skip;
        if let Some((key, _)) = self.current {
            if key == dh {
                if n < self.nr {
                    return Err(Error::DuplicateOrExpired);
                }
                if n - self.nr > max_skip {
                    return Err(Error::TooFarAhead);
                }
                for i in self.nr..n {
                    self.store((dh, i));
                }
                self.nr = n + 1;
                return Ok(());
            }
        }
        if self.current.is_some() && pn > self.nr && pn - self.nr > max_skip {
            return Err(Error::TooFarAhead);
        }
        if n > max_skip {
            return Err(Error::TooFarAhead);
        }
        if let Some((key, current_chain)) = self.current {
            // A key older than the current one: its chain is gone.
            if chain < current_chain {
                return Err(Error::DecryptionFailed);
            }
            for i in self.nr..pn {
                self.store((key, i));
            }
        }
        for i in 0..n {
            self.store((dh, i));
        }
        self.current = Some((dh, chain));
        self.nr = n + 1;
        Ok(())
    }
}

/// The order of a sender's ratchet keys, as they first appear in its messages.
#[derive(Default)]
struct Chains(Vec<[u8; 32]>);

impl Chains {
    fn index(&mut self, dh: [u8; 32]) -> usize {
        match self.0.iter().position(|k| *k == dh) {
            Some(i) => i,
            None => {
                self.0.push(dh);
                self.0.len() - 1
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn operations_agree_with_the_model(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        limits_a in limits(),
        limits_b in limits(),
        ops in vec(op(), 1..120),
    ) {
        let mut world = World::new(seed, post_quantum, limits_a, limits_b);
        let mut model_a = Receiver::new(limits_a);
        let mut model_b = Receiver::new(limits_b);
        let mut chains_a = Chains::default();
        let mut chains_b = Chains::default();
        // Alice sends initial messages until she has decrypted something.
        let mut a_received = false;
        let mut chain_of = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            match world.apply(op) {
                Outcome::Sent(bytes) => {
                    let last = world.sent.last().unwrap();
                    let (dh, _, _) = header(&bytes);
                    if last.a_to_b {
                        prop_assert_eq!(is_initial(&bytes), !a_received, "step {}", step);
                        chain_of.push(chains_a.index(dh));
                    } else {
                        prop_assert!(!is_initial(&bytes));
                        chain_of.push(chains_b.index(dh));
                    }
                }
                Outcome::Received(i, result) => {
                    let message = &world.sent[i];
                    let (dh, n, pn) = header(&message.bytes);
                    let model = if message.a_to_b { &mut model_b } else { &mut model_a };
                    let expected = model.receive(dh, chain_of[i], n, pn);
                    match (&result, expected) {
                        (Ok(plaintext), Ok(())) => {
                            prop_assert_eq!(plaintext, &message.plaintext, "step {}", step);
                            if !message.a_to_b {
                                a_received = true;
                            }
                        }
                        (Err(got), Err(want)) => prop_assert_eq!(*got, want, "step {}: {:?}", step, op),
                        (got, want) => prop_assert!(
                            false,
                            "step {} {:?}: message {} (n {}, pn {}, chain {}) gave {:?}, model {:?}",
                            step, op, i, n, pn, chain_of[i], got, want
                        ),
                    }
                    // A duplicate never decrypts.
                    if matches!(op, Op::Duplicate(_)) {
                        prop_assert!(result.is_err());
                    }
                }
                Outcome::Nothing | Outcome::Reloaded => {}
            }
            prop_assert_eq!(world.a.stored_skipped_keys(), model_a.skipped.len(), "step {}", step);
            prop_assert_eq!(world.a.awaiting_reply(), !a_received);
            if let Some(b) = &world.b {
                prop_assert_eq!(b.stored_skipped_keys(), model_b.skipped.len(), "step {}", step);
                prop_assert_eq!(b.limits(), limits_b);
                prop_assert_eq!(b.is_post_quantum(), post_quantum);
            }
            prop_assert_eq!(world.a.limits(), limits_a);
        }
    }
}
