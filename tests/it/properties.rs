//! Property tests (proptest) of sessions and their persistence:
//!
//! * (a) any delivery order of up to 60 messages from one sender, mixed with DH ratchet
//!   steps, decrypts every message to the plaintext sent;
//! * (b) every single-bit flip of a message is rejected and leaves the receiving session
//!   (or the responder's prekey store) byte for byte unchanged;
//! * (c) storing and reloading both sessions at any point of a random conversation (in
//!   which either side may switch its padding policy) changes nothing: the same plaintexts,
//!   the same errors and, with a cloned RNG, the same ciphertext bytes and stored states;
//! * (d) random operation sequences (send either way, deliver, drop, duplicate, reload,
//!   switch the padding policy) agree with a small model of the receiver: a message
//!   decrypts iff it was not delivered before and is within the session's limits
//!   (including eviction of skipped keys), to the plaintext sent; otherwise the error is
//!   the one the model predicts.
//!
//! Each is also run for header-encrypted sessions (SPEC.md §4.8), whose messages carry no
//! header in the clear: the tests read a message's header from its sender's stored state
//! (`doubleratchet_test_support::sent_header`). Their model (d) follows `decrypt_he`: the header keys of
//! earlier chains are kept only while their chain has skipped keys, and at most
//! `MAX_SKIPPED_HEADER_KEYS` of them (adding one more drops the oldest chain's keys), so a
//! message of an earlier chain whose header key is gone is `DecryptionFailed`, one whose
//! header key is kept but whose key is not is `DuplicateOrExpired`. The model checks the
//! exact list of stored skipped keys and of stored header keys after every operation; a
//! dedicated property drives a receiver past that bound.
//!
//! Every message sent in (c) and (d) has exactly the size its sender's padding policy
//! gives (SPEC.md §4.9), and the receiver decodes either policy.
//!
//! Case counts are kept small: the file takes about 48 s of CPU time in a debug build,
//! most of it in the bit flips (padded messages are longer), so about half that on two
//! cores.

use std::collections::VecDeque;

use doubleratchet::SessionOptions;
use doubleratchet::{
    Error, IdentityKeyPair, Limits, LocalDevice, Message, Padding, Session, MAX_SKIPPED_HEADER_KEYS,
};
use doubleratchet_test_support::{
    accepted_pair_in_mode, is_initial, reload, rng, sent_header, stored, view, Header, Parties,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rand_chacha::ChaCha20Rng;

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
        delivery_order_case(seed, false, false, &ratchets, &order, &lens)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn any_delivery_order_decrypts_header_encrypted(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        (ratchets, order) in messages_and_order(),
        lens in vec(0usize..40, 60),
    ) {
        // Every chain but the last may keep skipped keys until the end, each with its
        // header key: stay within the bound on those (a dedicated property goes past it).
        let mut steps = 0;
        let ratchets: Vec<bool> = ratchets
            .iter()
            .map(|r| {
                steps += usize::from(*r);
                *r && steps < MAX_SKIPPED_HEADER_KEYS
            })
            .collect();
        delivery_order_case(seed, post_quantum, true, &ratchets, &order, &lens)?;
    }
}

/// Alice sends `ratchets.len()` messages, a round trip (delivered at once) before each
/// marked one; Bob receives them in `order`.
fn delivery_order_case(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
    ratchets: &[bool],
    order: &[usize],
    lens: &[usize],
) -> Result<(), TestCaseError> {
    let mut rng = rng(seed);
    let mut parties = Parties::with_kind(&mut rng, post_quantum);
    let mut a = parties.initiate_in_mode(header_encryption, &mut rng);
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
        let message = a.encrypt(&p, &mut rng).unwrap();
        let (dh, _, _) = sent_header(&a, &message);
        held.push((message, p, dh));
    }
    for &i in order {
        let (message, sent, _) = &held[i];
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
    prop_assert_eq!(bob.is_header_encrypted(), header_encryption);
    // Every skipped key was used by the message it was kept for (and in header-encrypted
    // mode no header key of an earlier chain is left).
    prop_assert_eq!(bob.stored_skipped_keys(), 0);
    prop_assert_eq!(view(bob).header_key_chains.len(), 0);
    // And every message is now a replay, rejected without any change: a duplicate in the
    // last chain, and in any earlier chain (whose keys are all gone) a failed decryption.
    let before = stored(bob);
    let last_chain = held.last().unwrap().2;
    for (i, (message, _, dh)) in held.iter().enumerate() {
        let expected = if *dh == last_chain {
            Error::DuplicateOrExpired
        } else {
            Error::DecryptionFailed
        };
        prop_assert_eq!(bob.decrypt(message).unwrap_err(), expected, "message {}", i);
        prop_assert_eq!(&stored(bob), &before);
    }
    Ok(())
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
        let held = Held { round_trips, to_alice, held_count, target, deliver_first, len };
        bit_flip_case(seed, false, false, &held, false)?;
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// As above in header-encrypted mode, where the target may also be a message of an
    /// earlier chain, found through its chain's stored header key.
    #[test]
    fn every_bit_flip_is_rejected_and_changes_nothing_header_encrypted(
        seed in any::<u64>(),
        // Rarely PQXDH: its initial messages are ten times as long, as is flipping them.
        post_quantum in rarely_post_quantum(),
        round_trips in 0usize..3,
        to_alice in any::<bool>(),
        held_count in 1usize..5,
        target in any::<Index>(),
        deliver_first in vec(any::<bool>(), 5),
        len in 0usize..24,
        old_chain in any::<bool>(),
    ) {
        let held = Held { round_trips, to_alice, held_count, target, deliver_first, len };
        bit_flip_case(seed, post_quantum, true, &held, old_chain)?;
    }
}

/// Where the flipped message comes from: after `round_trips` round trips, one side sends
/// `held_count` messages, of which the receiver first gets those marked in
/// `deliver_first` (never the target).
#[derive(Debug)]
struct Held {
    round_trips: usize,
    to_alice: bool,
    held_count: usize,
    target: Index,
    deliver_first: Vec<bool>,
    len: usize,
}

/// With `old_chain`, the conversation then moves on (a new message of the target's chain
/// reaches the receiver, a reply, and a message of a new chain), so that the target
/// belongs to an earlier chain whose key the receiver stores.
fn bit_flip_case(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
    h: &Held,
    old_chain: bool,
) -> Result<(), TestCaseError> {
    let (_, mut a, mut b, mut rng) = accepted_pair_in_mode(seed, post_quantum, header_encryption);
    for _ in 0..h.round_trips {
        let m = a.encrypt(b"a", &mut rng).unwrap();
        b.decrypt(&m).unwrap();
        let m = b.encrypt(b"b", &mut rng).unwrap();
        a.decrypt(&m).unwrap();
    }
    let (sender, receiver) = if h.to_alice {
        (&mut b, &mut a)
    } else {
        (&mut a, &mut b)
    };
    // Each message with its header, read from the sender's state right after it was sent.
    let held: Vec<(Vec<u8>, Vec<u8>, Header)> = (0..h.held_count)
        .map(|i| {
            let p = plaintext("h", i, h.len);
            let m = sender.encrypt(&p, &mut rng).unwrap();
            let header = sent_header(sender, &m);
            (m, p, header)
        })
        .collect();
    let target = h.target.index(h.held_count);
    let target_header = held[target].2;
    for (i, (m, p, _)) in held.iter().enumerate() {
        if i != target && h.deliver_first[i] {
            prop_assert_eq!(&receiver.decrypt(m).unwrap(), p);
        }
    }
    if old_chain {
        let m = sender.encrypt(b"fresh", &mut rng).unwrap();
        prop_assert_eq!(receiver.decrypt(&m).unwrap(), b"fresh");
        let m = receiver.encrypt(b"back", &mut rng).unwrap();
        prop_assert_eq!(sender.decrypt(&m).unwrap(), b"back");
        let m = sender.encrypt(b"new chain", &mut rng).unwrap();
        prop_assert_eq!(receiver.decrypt(&m).unwrap(), b"new chain");
        let (dh, n, _) = target_header;
        let v = view(receiver);
        prop_assert_ne!(v.dhr, dh, "the target's chain is still the receiving chain");
        prop_assert!(v.skipped.contains(&(dh, n)));
        if header_encryption {
            prop_assert!(v.header_key_chains.contains(&dh));
        }
    }
    let before = stored(receiver);
    let (message, sent, _) = &held[target];
    for bit in 0..message.len() * 8 {
        let mut flipped = message.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = receiver.decrypt(&flipped);
        prop_assert!(result.is_err(), "bit {} accepted", bit);
        prop_assert_eq!(
            &stored(receiver),
            &before,
            "bit {} changed the session",
            bit
        );
    }
    // The untouched message still decrypts: no attempt used up its key.
    prop_assert_eq!(&receiver.decrypt(message).unwrap(), sent);
    Ok(())
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
        store_bit_flip_case(seed, false, index, len)?;
    }
}

proptest! {
    // As above (a header-encrypted initial message is 28 bytes longer): one case.
    #![proptest_config(config(1))]

    #[test]
    fn every_bit_flip_of_a_header_encrypted_initial_message_is_rejected_by_the_store(
        seed in any::<u64>(),
        index in 0usize..3,
        len in 0usize..16,
    ) {
        store_bit_flip_case(seed, true, index, len)?;
    }
}

/// Alice's `index`-th initial message, every bit flipped in turn, given to Bob's store.
fn store_bit_flip_case(
    seed: u64,
    header_encryption: bool,
    index: usize,
    len: usize,
) -> Result<(), TestCaseError> {
    let mut rng = rng(seed);
    let mut parties = Parties::new(&mut rng);
    let mut a = parties.initiate_in_mode(header_encryption, &mut rng);
    let mut messages: Vec<Vec<u8>> = (0..=index)
        .map(|i| a.encrypt(&plaintext("i", i, len), &mut rng).unwrap())
        .collect();
    let message = messages.pop().unwrap();
    prop_assert_eq!(message[1], if header_encryption { 0x05 } else { 0x02 });
    let before = parties.store.to_bytes().to_vec();
    for bit in 0..message.len() * 8 {
        let mut flipped = message.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = parties.store.accept(&flipped, &SessionOptions::new());
        prop_assert!(result.is_err(), "bit {} accepted", bit);
        prop_assert_eq!(&parties.store.to_bytes()[..], &before[..], "bit {}", bit);
    }
    let accepted = parties
        .store
        .accept(&message, &SessionOptions::new())
        .unwrap();
    prop_assert_eq!(accepted.plaintext, plaintext("i", index, len));
    prop_assert_eq!(accepted.session.is_header_encrypted(), header_encryption);
    Ok(())
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
    /// Deliver the newest message in flight from Alice (`true`) or from Bob.
    DeliverNewest { a_to_b: bool },
    /// Store and load Alice's (`true`) or Bob's session.
    Reload { alice: bool },
    /// Alice (`true`) or Bob switches the padding of the messages she or he sends.
    SetPadding { alice: bool, none: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<bool>(), 0usize..24).prop_map(|(a_to_b, len)| Op::Send { a_to_b, len }),
        5 => any::<Index>().prop_map(Op::Deliver),
        1 => any::<Index>().prop_map(Op::Drop),
        1 => any::<Index>().prop_map(Op::Duplicate),
        1 => any::<bool>().prop_map(|alice| Op::Reload { alice }),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(alice, none)| Op::SetPadding { alice, none }),
    ]
}

/// The body of a message with a `len`-byte plaintext, tag included (SPEC.md §4.9): the
/// plaintext and its end marker, under Padmé padded to at least 64 bytes (the plaintexts
/// here are all shorter than 64 bytes).
fn body_length(padding: Padding, len: usize) -> usize {
    assert!(len < 64);
    let encoded = if padding == Padding::None {
        len + 1
    } else {
        64
    };
    encoded + 16
}

#[derive(Debug, Clone)]
struct Sent {
    a_to_b: bool,
    bytes: Vec<u8>,
    /// `(ratchet key, N, PN)`, from the sender's state (the wire shows them only without
    /// header encryption).
    header: Header,
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
    store: LocalDevice,
    rng: ChaCha20Rng,
    a: Session,
    b: Option<Session>,
    limits_b: Limits,
    sent: Vec<Sent>,
}

impl World {
    fn new(
        seed: u64,
        post_quantum: bool,
        header_encryption: bool,
        limits_a: Limits,
        limits_b: Limits,
    ) -> World {
        let mut rng = rng(seed);
        let parties = Parties::with_kind(&mut rng, post_quantum);
        let mut a = parties.initiate_in_mode(header_encryption, &mut rng);
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
            store: LocalDevice::from_bytes(&self.store.to_bytes()).unwrap(),
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
                .accept(&message.bytes, &SessionOptions::new().limits(self.limits_b))
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
                assert_eq!(
                    Message::parse(&bytes).unwrap().ciphertext_len(),
                    body_length(sender.padding(), plaintext.len())
                );
                let header = sent_header(sender, &bytes);
                self.sent.push(Sent {
                    a_to_b: *a_to_b,
                    bytes: bytes.clone(),
                    header,
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
            Op::DeliverNewest { a_to_b } => {
                let newest = (0..self.sent.len()).rev().find(|i| {
                    let s = &self.sent[*i];
                    s.a_to_b == *a_to_b && !s.delivered && !s.dropped
                });
                match newest {
                    Some(i) => Outcome::Received(i, self.receive(i)),
                    None => Outcome::Nothing,
                }
            }
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
            Op::SetPadding { alice, none } => {
                let padding = if *none { Padding::None } else { Padding::Padme };
                let session = if *alice {
                    Some(&mut self.a)
                } else {
                    self.b.as_mut()
                };
                if let Some(session) = session {
                    session.set_padding(padding);
                }
                Outcome::Nothing
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

/// PQXDH in a quarter of the cases (only with the `pqxdh` feature).
fn rarely_post_quantum() -> impl Strategy<Value = bool> {
    if cfg!(feature = "pqxdh") {
        prop::bool::weighted(0.25).boxed()
    } else {
        Just(false).boxed()
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        prop::sample::select(vec![0u32, 1, 2, 3, 5, 8, 1000]),
        prop::sample::select(vec![0u32, 1, 2, 4, 2000]),
    )
        .prop_map(|(max_skip, max_stored_skipped)| Limits::new(max_skip, max_stored_skipped))
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
        reload_case(seed, post_quantum, false, limits_a, limits_b, &ops, split)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn reloading_at_any_point_changes_nothing_header_encrypted(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        limits_a in limits(),
        limits_b in limits(),
        ops in vec(op(), 1..80),
        split in any::<Index>(),
    ) {
        reload_case(seed, post_quantum, true, limits_a, limits_b, &ops, split)?;
    }
}

/// Runs `ops` on one world; at `split`, continues on a copy made of stored bytes too, and
/// requires both to do exactly the same.
fn reload_case(
    seed: u64,
    post_quantum: bool,
    header_encryption: bool,
    limits_a: Limits,
    limits_b: Limits,
    ops: &[Op],
    split: Index,
) -> Result<(), TestCaseError> {
    let split = split.index(ops.len() + 1);
    let mut original = World::new(seed, post_quantum, header_encryption, limits_a, limits_b);
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
    prop_assert_eq!(original.a.is_header_encrypted(), header_encryption);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (d) Model
// ---------------------------------------------------------------------------------------

/// The receiving side of a session, as SPEC.md §4.4/§4.6 describe it: the current chain
/// (the sender's ratchet key and its position among the sender's keys), the next message
/// number, and the skipped keys in insertion order. In header-encrypted mode (§4.8) also
/// the chains whose header keys are kept, oldest first.
struct Receiver {
    limits: Limits,
    header_encrypted: bool,
    current: Option<([u8; 32], usize)>,
    nr: u32,
    skipped: VecDeque<([u8; 32], u32)>,
    header_key_chains: VecDeque<[u8; 32]>,
}

impl Receiver {
    fn new(limits: Limits, header_encrypted: bool) -> Receiver {
        Receiver {
            limits,
            header_encrypted,
            current: None,
            nr: 0,
            skipped: VecDeque::new(),
            header_key_chains: VecDeque::new(),
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
        if self.header_encrypted {
            return self.receive_he(dh, chain, n, pn);
        }
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

    /// [`Receiver::receive`] in header-encrypted mode: the header must first decrypt, under
    /// a kept header key of a chain with skipped keys, `HKr` (the current chain) or `NHKr`
    /// (the sender's next chain); no other header key exists.
    fn receive_he(&mut self, dh: [u8; 32], chain: usize, n: u32, pn: u32) -> Result<(), Error> {
        let current = self.current.map(|(key, _)| key);
        let on_current_chain = if self.header_key_chains.contains(&dh) {
            if let Some(at) = self.skipped.iter().position(|s| *s == (dh, n)) {
                self.skipped.remove(at);
                self.forget_empty_chains();
                return Ok(());
            }
            // Its header key is kept but its key is not: a duplicate, unless it is a later
            // message of the current chain.
            if current != Some(dh) {
                return Err(Error::DuplicateOrExpired);
            }
            true
        } else if current == Some(dh) {
            true
        } else if chain == self.current.map_or(0, |(_, c)| c + 1) {
            false
        } else {
            // An earlier chain whose header key is gone.
            return Err(Error::DecryptionFailed);
        };
        let max_skip = self.limits.max_skip;
        let mut skipped = Vec::new();
        let mut chains = Vec::new();
        if on_current_chain {
            if n < self.nr {
                return Err(Error::DuplicateOrExpired);
            }
            if n - self.nr > max_skip {
                return Err(Error::TooFarAhead);
            }
            skipped.extend((self.nr..n).map(|i| (dh, i)));
            if n > self.nr {
                chains.push(dh);
            }
        } else {
            if self.current.is_some() && pn > self.nr && pn - self.nr > max_skip {
                return Err(Error::TooFarAhead);
            }
            if n > max_skip {
                return Err(Error::TooFarAhead);
            }
            if let Some(key) = current {
                if pn > self.nr {
                    skipped.extend((self.nr..pn).map(|i| (key, i)));
                    chains.push(key);
                }
            }
            skipped.extend((0..n).map(|i| (dh, i)));
            if n > 0 {
                chains.push(dh);
            }
            self.current = Some((dh, chain));
        }
        self.nr = n + 1;
        for index in skipped {
            self.store(index);
        }
        for key in chains {
            if !self.header_key_chains.contains(&key) {
                self.header_key_chains.push_back(key);
            }
        }
        // The bound: the oldest chain's header key goes, and every key of that chain.
        while self.header_key_chains.len() > MAX_SKIPPED_HEADER_KEYS {
            let oldest = self.header_key_chains.pop_front().unwrap();
            self.skipped.retain(|(key, _)| *key != oldest);
        }
        self.forget_empty_chains();
        Ok(())
    }

    /// A chain's header key is kept only while some key of the chain is.
    fn forget_empty_chains(&mut self) {
        let skipped = &self.skipped;
        self.header_key_chains
            .retain(|key| skipped.iter().any(|(k, _)| k == key));
    }

    /// Requires the session's stored skipped keys and header keys to be the model's, in
    /// the same order.
    fn check(&self, session: &Session, step: usize) -> Result<(), TestCaseError> {
        let v = view(session);
        prop_assert_eq!(
            session.stored_skipped_keys(),
            self.skipped.len(),
            "step {}",
            step
        );
        prop_assert_eq!(
            &v.skipped,
            &Vec::from(self.skipped.clone()),
            "step {}",
            step
        );
        prop_assert_eq!(
            &v.header_key_chains,
            &Vec::from(self.header_key_chains.clone()),
            "step {}",
            step
        );
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
        let world = World::new(seed, post_quantum, false, limits_a, limits_b);
        model_case(world, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn operations_agree_with_the_model_header_encrypted(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        limits_a in limits(),
        limits_b in limits(),
        ops in vec(op(), 1..120),
    ) {
        let world = World::new(seed, post_quantum, true, limits_a, limits_b);
        model_case(world, &ops)?;
    }
}

/// One round of a flood of new chains from `a_to_b`'s sender: one message held back, the
/// next delivered (so its chain keeps one skipped key and its header key), and a reply
/// delivered (so the sender's next message starts a new chain).
fn new_chain_with_a_lost_message(a_to_b: bool, len: usize) -> [Op; 5] {
    [
        Op::Send { a_to_b, len },
        Op::Send { a_to_b, len },
        Op::DeliverNewest { a_to_b },
        Op::Send {
            a_to_b: !a_to_b,
            len,
        },
        Op::DeliverNewest { a_to_b: !a_to_b },
    ]
}

proptest! {
    #![proptest_config(config(6))]

    /// More chains with skipped keys than `MAX_SKIPPED_HEADER_KEYS` at one receiver, some
    /// random operations among them, then the held-back messages delivered in any order:
    /// the oldest chains' keys are gone (`DecryptionFailed`), the others decrypt.
    #[test]
    fn header_keys_beyond_the_bound_drop_the_oldest_chains(
        seed in any::<u64>(),
        post_quantum in post_quantum(),
        to_alice in any::<bool>(),
        extra in 1usize..12,
        noise in vec((any::<Index>(), op()), 0..6),
        finale in vec(prop_oneof![
            4 => any::<Index>().prop_map(Op::Deliver),
            1 => any::<Index>().prop_map(Op::Duplicate),
            1 => any::<bool>().prop_map(|alice| Op::Reload { alice }),
        ], 40..60),
    ) {
        let a_to_b = !to_alice;
        let chains = MAX_SKIPPED_HEADER_KEYS + extra;
        let mut ops = Vec::new();
        if to_alice {
            // Bob's session must exist before he can send.
            ops.extend([Op::Send { a_to_b: true, len: 1 }, Op::DeliverNewest { a_to_b: true }]);
        }
        for i in 0..chains {
            ops.extend(new_chain_with_a_lost_message(a_to_b, i % 7));
        }
        // Random operations anywhere in the flood.
        for (at, op) in &noise {
            ops.insert(at.index(ops.len() + 1), op.clone());
        }
        ops.extend(finale);
        let world = World::new(seed, post_quantum, true, Limits::default(), Limits::default());
        let most = model_case(world, &ops)?;
        // The bound was reached (each random operation can take at most one chain's key).
        prop_assert!(most + noise.len() >= MAX_SKIPPED_HEADER_KEYS, "{}", most);
        prop_assert!(most <= MAX_SKIPPED_HEADER_KEYS);
    }
}

/// Runs `ops` on `world`, checking every result against a model of each receiver; returns
/// the most header keys of earlier chains either session held at once.
fn model_case(mut world: World, ops: &[Op]) -> Result<usize, TestCaseError> {
    let header_encrypted = world.a.is_header_encrypted();
    let post_quantum = world.a.is_post_quantum();
    let limits_a = world.a.limits();
    let limits_b = world.limits_b;
    let mut model_a = Receiver::new(limits_a, header_encrypted);
    let mut model_b = Receiver::new(limits_b, header_encrypted);
    let mut chains_a = Chains::default();
    let mut chains_b = Chains::default();
    // Alice sends initial messages until she has decrypted something.
    let mut a_received = false;
    let mut chain_of = Vec::new();
    let mut most_header_keys = 0;
    for (step, op) in ops.iter().enumerate() {
        match world.apply(op) {
            Outcome::Sent(bytes) => {
                let last = world.sent.last().unwrap();
                let (dh, _, _) = last.header;
                if last.a_to_b {
                    prop_assert_eq!(is_initial(&bytes), !a_received, "step {}", step);
                    chain_of.push(chains_a.index(dh));
                } else {
                    prop_assert!(!is_initial(&bytes));
                    chain_of.push(chains_b.index(dh));
                }
                // The message type says the mode, and nothing else of the header.
                let normal = if header_encrypted { 0x04 } else { 0x01 };
                prop_assert!(is_initial(&bytes) || bytes[1] == normal);
            }
            Outcome::Received(i, result) => {
                let message = &world.sent[i];
                let (dh, n, pn) = message.header;
                let model = if message.a_to_b {
                    &mut model_b
                } else {
                    &mut model_a
                };
                let expected = model.receive(dh, chain_of[i], n, pn);
                match (&result, expected) {
                    (Ok(plaintext), Ok(())) => {
                        prop_assert_eq!(plaintext, &message.plaintext, "step {}", step);
                        if !message.a_to_b {
                            a_received = true;
                        }
                    }
                    (Err(got), Err(want)) => prop_assert_eq!(*got, want, "step {}: {:?}", step, op),
                    (got, want) => {
                        prop_assert!(
                        false,
                        "step {} {:?}: message {} (n {}, pn {}, chain {}) gave {:?}, model {:?}",
                        step, op, i, n, pn, chain_of[i], got, want
                    )
                    }
                }
                // A duplicate never decrypts.
                if matches!(op, Op::Duplicate(_)) {
                    prop_assert!(result.is_err());
                }
            }
            Outcome::Nothing | Outcome::Reloaded => {}
        }
        model_a.check(&world.a, step)?;
        most_header_keys = most_header_keys.max(model_a.header_key_chains.len());
        prop_assert_eq!(world.a.awaiting_reply(), !a_received);
        if let Some(b) = &world.b {
            model_b.check(b, step)?;
            most_header_keys = most_header_keys.max(model_b.header_key_chains.len());
            prop_assert_eq!(b.limits(), limits_b);
            prop_assert_eq!(b.is_post_quantum(), post_quantum);
            prop_assert_eq!(b.is_header_encrypted(), header_encrypted);
        }
        prop_assert_eq!(world.a.limits(), limits_a);
    }
    Ok(most_header_keys)
}
