//! Whole conversations through the public API: alternating and bursty traffic, seeded random
//! interleavings with reordering and reloads, lost messages (the first initial message
//! included), late initial messages, 10 000 shuffled messages, the skipped-key store's
//! eviction order, simultaneous initiation through session records (SPEC.md §6.4), and the
//! prekey store's lifecycle (one-time prekey consumption, signed prekey rotation,
//! last-resort bundles), and the padding policy of SPEC.md §4.9 (sizes on the wire under
//! both policies, a per-session setting that takes effect at once and is stored).

use doubleratchet::{
    Error, IdentityKeyPair, Limits, LocalDevice, Message, Padding, Role, Session, SessionId,
    SessionOptions, StorageKey, MAX_PLAINTEXT_SIZE, PADME_MINIMUM, STORAGE_VERSION,
};
use doubleratchet_test_support::layout::{
    INITIAL_BODY, NORMAL_BODY, TAG, TYPE_INITIAL, TYPE_NORMAL,
};
use doubleratchet_test_support::{
    assert_rejected, below, message_number, padding_offset, previous_chain_length, ratchet_key,
    rng, shuffle, text, Offer, Pair, Party, Peer,
};

#[test]
fn alternating_conversation() {
    let mut p = Pair::started(1);
    assert_eq!(p.a.role(), Role::Initiator);
    assert_eq!(p.b.role(), Role::Responder);
    assert_eq!(p.a.id(), p.b.id());
    assert_eq!(p.a.remote_identity(), p.bob.identity.public_key());
    assert_eq!(p.b.remote_identity(), p.alice.identity.public_key());
    assert_eq!(p.a.local_identity(), p.alice.identity.public_key());
    assert_eq!(p.b.local_identity(), p.bob.identity.public_key());
    assert!(p.a.awaiting_reply());
    assert!(!p.b.awaiting_reply());

    let mut seen_keys = Vec::new();
    for i in 0..100 {
        let from_b = p.deliver_b_to_a(&text("bob", i));
        assert!(!p.a.awaiting_reply());
        let from_a = p.deliver_a_to_b(&text("alice", i));
        for m in [&from_b, &from_a] {
            // Strict alternation: every message starts a new ratchet step, whose previous
            // chain held one message (Bob's first reply has no previous chain).
            assert_eq!(m[1], TYPE_NORMAL);
            assert_eq!(message_number(m), 0);
            let expected_pn = u32::from(!(i == 0 && m == &from_b));
            assert_eq!(previous_chain_length(m), expected_pn);
            seen_keys.push(ratchet_key(m));
        }
    }
    let count = seen_keys.len();
    seen_keys.sort_unstable();
    seen_keys.dedup();
    assert_eq!(seen_keys.len(), count, "a ratchet key was reused");
    assert_eq!(p.a.stored_skipped_keys(), 0);
    assert_eq!(p.b.stored_skipped_keys(), 0);
    assert_eq!(p.a.id(), p.b.id());
}

#[test]
fn bursts_in_order() {
    let mut p = Pair::established(2);
    let mut r = rng(20);
    // Each side's previous chain length, which the next burst must carry as PN. Both
    // already sent exactly one message on their current chains.
    let (mut a_prev, mut b_prev) = (1u32, 1u32);
    for round in 0..40 {
        let len = 1 + below(&mut r, 12);
        // Alice spoke last, so Bob's burst comes first.
        let alice_turn = round % 2 == 1;
        for k in 0..len {
            let pt = text(if alice_turn { "alice" } else { "bob" }, round * 100 + k);
            let m = if alice_turn {
                p.deliver_a_to_b(&pt)
            } else {
                p.deliver_b_to_a(&pt)
            };
            assert_eq!(message_number(&m), k as u32);
            assert_eq!(
                previous_chain_length(&m),
                if alice_turn { a_prev } else { b_prev }
            );
        }
        if alice_turn {
            a_prev = len as u32;
        } else {
            b_prev = len as u32;
        }
    }
    assert_eq!(p.a.stored_skipped_keys(), 0);
    assert_eq!(p.b.stored_skipped_keys(), 0);
}

/// One in-flight message and the plaintext it must decrypt to.
struct InFlight {
    wire: Vec<u8>,
    plaintext: Vec<u8>,
}

/// Delivers the in-flight message at `index` to `to` and checks its plaintext.
fn deliver(to: &mut Peer, queue: &mut Vec<InFlight>, index: usize) {
    let m = queue.remove(index);
    assert_eq!(to.receive(&m.wire).unwrap(), m.plaintext);
}

/// Reloads the record of `peer` from its storage encoding.
fn reload(peer: &mut Peer) {
    peer.reload();
}

#[test]
fn random_interleavings_with_reordering_and_reloads() {
    // Up to this many of the oldest in-flight messages compete for the next delivery.
    const REORDER_WINDOW: usize = 6;
    for seed in 0..12u64 {
        let mut r = rng(300 + seed);
        let mut alice = Peer::new(&mut r);
        let mut bob = Peer::new(&mut r);
        let bundle = bob.party.bundle(&mut r);
        alice.initiate(&bundle, &mut r);
        let mut to_bob: Vec<InFlight> = Vec::new();
        let mut to_alice: Vec<InFlight> = Vec::new();
        let mut sent = 0usize;
        for step in 0..300 {
            match below(&mut r, 9) {
                0..=1 => {
                    let plaintext = text("alice", step);
                    let wire = alice.send(&plaintext, &mut r);
                    to_bob.push(InFlight { wire, plaintext });
                    sent += 1;
                }
                2..=3 if bob.can_send() => {
                    let plaintext = text("bob", step);
                    let wire = bob.send(&plaintext, &mut r);
                    to_alice.push(InFlight { wire, plaintext });
                    sent += 1;
                }
                4..=5 if !to_bob.is_empty() => {
                    let i = below(&mut r, to_bob.len().min(REORDER_WINDOW));
                    deliver(&mut bob, &mut to_bob, i);
                }
                6..=7 if !to_alice.is_empty() => {
                    let i = below(&mut r, to_alice.len().min(REORDER_WINDOW));
                    deliver(&mut alice, &mut to_alice, i);
                }
                8 => {
                    reload(&mut alice);
                    reload(&mut bob);
                }
                _ => {}
            }
        }
        // Drain whatever is still in flight, still out of order.
        while !to_bob.is_empty() || !to_alice.is_empty() {
            if !to_bob.is_empty() {
                let i = below(&mut r, to_bob.len());
                deliver(&mut bob, &mut to_bob, i);
            }
            if !to_alice.is_empty() {
                let i = below(&mut r, to_alice.len());
                deliver(&mut alice, &mut to_alice, i);
            }
        }
        assert!(sent > 50, "seed {seed}: too little traffic");
        assert_eq!(alice.session_count(), 1, "seed {seed}");
        assert_eq!(bob.session_count(), 1, "seed {seed}");
        assert_eq!(alice.sending_id(), bob.sending_id());
        for peer in [&alice, &bob] {
            let record = peer.record().unwrap();
            assert_eq!(record.stored_skipped_keys(), 0, "seed {seed}");
        }
    }
}

#[test]
fn out_of_order_within_one_chain_and_across_ratchet_steps() {
    let mut p = Pair::established(4);

    // One chain, delivered backwards.
    let msgs: Vec<_> = (0..30).map(|i| p.a_sends(&text("a", i))).collect();
    for (k, m) in msgs.iter().enumerate().rev() {
        assert_eq!(p.b.decrypt(m).unwrap(), text("a", k));
        assert_eq!(p.b.stored_skipped_keys(), k);
    }

    // Two of Alice's chains: the older one arrives after the newer one.
    let chain1: Vec<_> = (0..5).map(|i| p.a_sends(&text("c1", i))).collect();
    p.deliver_b_to_a(b"turn");
    let chain2: Vec<_> = (0..5).map(|i| p.a_sends(&text("c2", i))).collect();
    assert_ne!(ratchet_key(&chain1[0]), ratchet_key(&chain2[0]));
    // Alice's previous chain: "answer", the 30 reversed messages and chain 1.
    assert_eq!(previous_chain_length(&chain2[0]), 36);
    for i in [4, 2, 0, 3, 1] {
        assert_eq!(p.b.decrypt(&chain2[i]).unwrap(), text("c2", i));
    }
    // All of chain 1 was skipped through PN when chain 2 began.
    assert_eq!(p.b.stored_skipped_keys(), 5);
    for i in [3, 0, 4, 1, 2] {
        assert_eq!(p.b.decrypt(&chain1[i]).unwrap(), text("c1", i));
    }
    assert_eq!(p.b.stored_skipped_keys(), 0);
    p.ping_pong(3);
}

#[test]
fn lost_messages_never_delivered() {
    let mut p = Pair::established(5);
    let mut r = rng(50);
    let (mut lost_to_a, mut lost_to_b) = (0usize, 0usize);
    let mut delivered = 0usize;
    for round in 0..60 {
        let alice_turn = round % 2 == 0;
        for k in 0..1 + below(&mut r, 6) {
            let pt = text("burst", round * 10 + k);
            let m = if alice_turn {
                p.a_sends(&pt)
            } else {
                p.b_sends(&pt)
            };
            if below(&mut r, 3) == 0 {
                // Lost forever.
                if alice_turn {
                    lost_to_b += 1;
                } else {
                    lost_to_a += 1;
                }
                continue;
            }
            let receiver = if alice_turn { &mut p.b } else { &mut p.a };
            assert_eq!(receiver.decrypt(&m).unwrap(), pt);
            delivered += 1;
        }
    }
    // One delivered message each way: every lost key is now behind a received one (through
    // N in its chain or PN of the next), so each is stored exactly once.
    p.deliver_a_to_b(b"final a");
    p.deliver_b_to_a(b"final b");
    assert!(lost_to_a > 10 && lost_to_b > 10 && delivered > 60);
    assert_eq!(p.a.stored_skipped_keys(), lost_to_a);
    assert_eq!(p.b.stored_skipped_keys(), lost_to_b);
}

#[test]
fn lost_first_initial_message_is_recovered() {
    let Offer {
        mut bob,
        bundle,
        mut a,
        first,
        mut rng,
        ..
    } = Offer::new(6);
    let r = &mut rng;
    let opk = bundle.one_time_prekey_id().unwrap();
    let second = a.encrypt(b"second", r).unwrap();
    let third = a.encrypt(b"third", r).unwrap();
    for m in [&first, &second, &third] {
        assert_eq!(m[1], TYPE_INITIAL);
    }

    // The first is lost (for now); Bob accepts from the second.
    let accepted = Session::respond(
        &bob.identity,
        |id| bob.store.signed_prekey(id),
        |id| bob.store.one_time_prekey(id),
        &second,
        &SessionOptions::new(),
    )
    .unwrap();
    assert_eq!(accepted.plaintext, b"second");
    assert_eq!(accepted.used_one_time_prekey, Some(opk));
    assert!(bob.store.remove_one_time_prekey(opk));
    let mut b = accepted.session;
    assert_eq!(b.id(), a.id());
    assert_eq!(b.stored_skipped_keys(), 1);

    // The conversation moves on by a ratchet step on each side before the rest arrives.
    let reply = b.encrypt(b"got it", r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"got it");
    let normal = a.encrypt(b"fourth", r).unwrap();
    assert_eq!(normal[1], TYPE_NORMAL);
    assert_eq!(b.decrypt(&normal).unwrap(), b"fourth");
    assert_eq!(b.stored_skipped_keys(), 2); // N = 0 (first) and N = 2 (third, via PN)

    // The late initial messages route to Bob's session by their session id.
    for (m, pt) in [(&first, &b"first"[..]), (&third, &b"third"[..])] {
        let Message::Initial(parsed) = Message::parse(m).unwrap() else {
            panic!("not an initial message");
        };
        assert_eq!(parsed.session_id(bob.identity.public_key()), b.id());
        assert_eq!(b.decrypt(m).unwrap(), pt);
        // A replay from a chain that is no longer current cannot be told from a forgery:
        // DecryptionFailed (SPEC.md §4.7), not DuplicateOrExpired.
        assert_rejected(&mut b, m, Error::DecryptionFailed);
    }
    assert_eq!(b.stored_skipped_keys(), 0);
}

#[test]
fn later_initial_messages_decrypt_after_the_one_time_prekey_is_deleted() {
    let Offer {
        mut bob,
        bundle,
        mut a,
        first,
        mut rng,
        ..
    } = Offer::new(7);
    let r = &mut rng;
    let opk = bundle.one_time_prekey_id().unwrap();
    let mut initial = vec![first];
    initial.extend((1..6).map(|i| a.encrypt(&text("init", i), r).unwrap()));

    let accepted = bob.accept(&initial[0]).unwrap();
    assert_eq!(accepted.used_one_time_prekey, Some(opk));
    assert!(bob.store.one_time_prekey(opk).is_none());
    let mut b = accepted.session;

    // A later initial message cannot create a second session any more...
    let store_before = bob.store_state();
    assert_eq!(
        bob.accept(&initial[1]).map(|_| ()),
        Err(Error::UnknownOneTimePreKey(opk))
    );
    assert_eq!(bob.store_state(), store_before);
    // ...but decrypts on the session it belongs to, before and after ratchet steps.
    assert_eq!(b.decrypt(&initial[2]).unwrap(), text("init", 2));
    let reply = b.encrypt(b"reply", r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"reply");
    let later = a.encrypt(b"normal", r).unwrap();
    assert_eq!(b.decrypt(&later).unwrap(), b"normal");
    let back = b.encrypt(b"second reply", r).unwrap();
    assert_eq!(a.decrypt(&back).unwrap(), b"second reply");
    for i in [5, 1, 4, 3] {
        let Message::Initial(parsed) = Message::parse(&initial[i]).unwrap() else {
            panic!("not an initial message");
        };
        assert_eq!(parsed.session_id(bob.identity.public_key()), b.id());
        assert_eq!(parsed.one_time_prekey_id(), Some(opk));
        assert_eq!(b.decrypt(&initial[i]).unwrap(), text("init", i));
    }
    assert_eq!(b.stored_skipped_keys(), 0);
}

#[test]
fn ten_thousand_messages_shuffled_within_the_window() {
    const COUNT: usize = 10_000;
    let mut p = Pair::established(8);
    let wide = Limits::new(COUNT as u32, COUNT as u32);
    p.b.set_limits(wide).unwrap();
    assert_eq!(p.b.limits(), wide);
    let mut msgs: Vec<(usize, Vec<u8>)> = (0..COUNT)
        .map(|i| (i, p.a_sends(&i.to_be_bytes())))
        .collect();
    let mut r = rng(80);
    shuffle(&mut msgs, &mut r);
    let mut max_stored = 0;
    for (i, m) in &msgs {
        assert_eq!(p.b.decrypt(m).unwrap(), i.to_be_bytes());
        max_stored = max_stored.max(p.b.stored_skipped_keys());
    }
    assert!(max_stored > COUNT / 2, "the shuffle barely reordered");
    assert_eq!(p.b.stored_skipped_keys(), 0);
    for (_, m) in msgs.iter().take(20) {
        assert_rejected(&mut p.b, m, Error::DuplicateOrExpired);
    }
    p.ping_pong(2);
}

#[test]
fn store_eviction_drops_the_oldest_key_first() {
    let mut p = Pair::established(9);
    p.b.set_limits(Limits::new(1000, 5)).unwrap();
    // Alice's current chain is at N = 1; these are N = 1..=11.
    let msgs: Vec<_> = (0..11).map(|i| p.a_sends(&text("a", i))).collect();
    assert_eq!(p.b.decrypt(&msgs[10]).unwrap(), text("a", 10));
    // Ten keys were skipped; only the five newest are kept.
    assert_eq!(p.b.stored_skipped_keys(), 5);
    for m in &msgs[..5] {
        assert_rejected(&mut p.b, m, Error::DuplicateOrExpired);
    }
    for (i, m) in msgs.iter().enumerate().take(10).skip(5) {
        assert_eq!(p.b.decrypt(m).unwrap(), text("a", i));
    }
    assert_eq!(p.b.stored_skipped_keys(), 0);

    // Across chains and a reload: the older chain's keys go first when the bound is lowered.
    p.b.set_limits(Limits::default()).unwrap();
    let x: Vec<_> = (0..4).map(|i| p.a_sends(&text("x", i))).collect();
    assert_eq!(p.b.decrypt(&x[3]).unwrap(), text("x", 3));
    p.deliver_b_to_a(b"turn");
    let y: Vec<_> = (0..4).map(|i| p.a_sends(&text("y", i))).collect();
    assert_eq!(p.b.decrypt(&y[3]).unwrap(), text("y", 3));
    assert_eq!(p.b.stored_skipped_keys(), 6);
    let mut b = Session::from_bytes(&p.b.to_bytes(), p.b.local_identity()).unwrap();
    b.set_limits(Limits::new(1000, 4)).unwrap();
    assert_eq!(b.stored_skipped_keys(), 4);
    // x[0] and x[1] were evicted. Their chain is no longer the current one, so the session
    // cannot tell them from forgeries: DecryptionFailed (SPEC.md §4.7), not
    // DuplicateOrExpired.
    assert_rejected(&mut b, &x[0], Error::DecryptionFailed);
    assert_rejected(&mut b, &x[1], Error::DecryptionFailed);
    assert_eq!(b.decrypt(&x[2]).unwrap(), text("x", 2));
    for (i, m) in y.iter().enumerate().take(3) {
        assert_eq!(b.decrypt(m).unwrap(), text("y", i));
    }
    assert_eq!(b.stored_skipped_keys(), 0);
}

/// Sets up simultaneous initiation: both peers start a session from the other's bundle and
/// send an initial message before either receives anything; then both receive.
fn simultaneous_start(seed: u64) -> (Peer, Peer, rand_chacha::ChaCha20Rng) {
    let mut r = rng(seed);
    let mut alice = Peer::new(&mut r);
    let mut bob = Peer::new(&mut r);
    let bundle_b = bob.party.bundle(&mut r);
    let bundle_a = alice.party.bundle(&mut r);
    alice.initiate(&bundle_b, &mut r);
    bob.initiate(&bundle_a, &mut r);
    let from_a = alice.send(b"hi bob", &mut r);
    let from_b = bob.send(b"hi alice", &mut r);
    assert_eq!(from_a[1], TYPE_INITIAL);
    assert_eq!(from_b[1], TYPE_INITIAL);
    assert_eq!(alice.receive(&from_b).unwrap(), b"hi alice");
    assert_eq!(bob.receive(&from_a).unwrap(), b"hi bob");
    for peer in [&alice, &bob] {
        assert_eq!(peer.session_count(), 2);
        let roles: Vec<Role> = peer.sessions().iter().map(Session::role).collect();
        assert!(roles.contains(&Role::Initiator) && roles.contains(&Role::Responder));
    }
    // Each side's initiated session pairs with the other's accepted one.
    let initiated = session_of_role(&alice, Role::Initiator);
    assert_eq!(initiated, session_of_role(&bob, Role::Responder));
    assert_eq!(
        session_of_role(&alice, Role::Responder),
        session_of_role(&bob, Role::Initiator)
    );
    assert_ne!(initiated, session_of_role(&alice, Role::Responder));
    (alice, bob, r)
}

/// The id of `peer`'s only session of `role`.
fn session_of_role(peer: &Peer, role: Role) -> SessionId {
    let ids: Vec<SessionId> = peer
        .sessions()
        .iter()
        .filter(|s| s.role() == role)
        .map(Session::id)
        .collect();
    assert_eq!(ids.len(), 1);
    ids[0]
}

fn converged(alice: &Peer, bob: &Peer) -> bool {
    alice.sending_id().is_some() && alice.sending_id() == bob.sending_id()
}

#[test]
fn simultaneous_initiation_converges_and_keeps_working() {
    let (mut alice, mut bob, mut r) = simultaneous_start(10);
    // Each side received one initial message on the session it accepted; the side whose
    // accepted session has the smaller id switched to it, the other kept its own, so both
    // already send on the session with the smaller id.
    assert!(converged(&alice, &bob));
    let preferred = alice.sending_session().unwrap().id();
    assert!(alice
        .record()
        .unwrap()
        .session_ids()
        .all(|id| preferred <= id));

    for round in 0..60 {
        let alice_turn = round % 2 == 0;
        for k in 0..1 + below(&mut r, 3) {
            let pt = text("round", round * 10 + k);
            if alice_turn {
                let m = alice.send(&pt, &mut r);
                assert_eq!(bob.receive(&m).unwrap(), pt);
            } else {
                let m = bob.send(&pt, &mut r);
                assert_eq!(alice.receive(&m).unwrap(), pt);
            }
            assert!(converged(&alice, &bob), "round {round}");
        }
    }

    // The other pair keeps working too: one message on it decrypts and moves nobody.
    let other = |p: &Peer| {
        let record = p.record().unwrap();
        record.session_ids().find(|id| *id != preferred).unwrap()
    };
    let pt = b"on the other session".to_vec();
    let i = other(&bob);
    assert_eq!(i, other(&alice));
    let m = bob.send_on(i, &pt, &mut r);
    assert_eq!(alice.receive(&m).unwrap(), pt);
    assert!(converged(&alice, &bob));
    let m = alice.send(b"and back", &mut r);
    assert_eq!(bob.receive(&m).unwrap(), b"and back");
    assert!(converged(&alice, &bob));
    // Two messages in a row on the other session (as from a peer that abandoned the
    // preferred one) move the receiver over.
    for k in 0..2 {
        let pt = text("abandon", k);
        let m = bob.send_on(i, &pt, &mut r);
        assert_eq!(alice.receive(&m).unwrap(), pt);
    }
    assert_ne!(alice.sending_session().unwrap().id(), preferred);
    for round in 0..20 {
        let m = alice.send(&text("a", round), &mut r);
        assert_eq!(bob.receive(&m).unwrap(), text("a", round));
        let m = bob.send(&text("b", round), &mut r);
        assert_eq!(alice.receive(&m).unwrap(), text("b", round));
    }
    assert!(converged(&alice, &bob));
    for peer in [&alice, &bob] {
        assert_eq!(peer.session_count(), 2);
    }
}

#[test]
fn simultaneous_initiation_with_crossing_and_random_traffic() {
    for seed in 0..6u64 {
        let (mut alice, mut bob, mut r) = simultaneous_start(1000 + seed);
        let mut to_bob: Vec<InFlight> = Vec::new();
        let mut to_alice: Vec<InFlight> = Vec::new();
        for step in 0..200 {
            match below(&mut r, 4) {
                0 => {
                    let plaintext = text("alice", step);
                    let wire = alice.send(&plaintext, &mut r);
                    to_bob.push(InFlight { wire, plaintext });
                }
                1 => {
                    let plaintext = text("bob", step);
                    let wire = bob.send(&plaintext, &mut r);
                    to_alice.push(InFlight { wire, plaintext });
                }
                2 if !to_bob.is_empty() => {
                    let i = below(&mut r, to_bob.len().min(3));
                    deliver(&mut bob, &mut to_bob, i);
                }
                3 if !to_alice.is_empty() => {
                    let i = below(&mut r, to_alice.len().min(3));
                    deliver(&mut alice, &mut to_alice, i);
                }
                _ => {}
            }
        }
        while let Some(m) = to_bob.first() {
            assert_eq!(bob.receive(&m.wire).unwrap(), m.plaintext);
            to_bob.remove(0);
        }
        while let Some(m) = to_alice.first() {
            assert_eq!(alice.receive(&m.wire).unwrap(), m.plaintext);
            to_alice.remove(0);
        }
        // One message each way, in turn, and the two sides agree on one session.
        let m = alice.send(b"settle", &mut r);
        assert_eq!(bob.receive(&m).unwrap(), b"settle");
        let m = bob.send(b"settled", &mut r);
        assert_eq!(alice.receive(&m).unwrap(), b"settled");
        assert!(converged(&alice, &bob), "seed {seed}");
        assert_eq!(alice.session_count(), 2);
        assert_eq!(bob.session_count(), 2);
    }
}

/// Both sides send, then both receive, every round: the strictest crossing. Returns in
/// how many of the 20 rounds the two sides ended on the same sending session.
fn crossing_rounds(alice: &mut Peer, bob: &mut Peer, r: &mut rand_chacha::ChaCha20Rng) -> usize {
    let mut rounds_converged = 0;
    for round in 0..20 {
        let from_a = alice.send(&text("a", round), r);
        let from_b = bob.send(&text("b", round), r);
        assert_eq!(bob.receive(&from_a).unwrap(), text("a", round));
        assert_eq!(alice.receive(&from_b).unwrap(), text("b", round));
        rounds_converged += usize::from(converged(alice, bob));
    }
    rounds_converged
}

#[test]
fn simultaneous_initiation_with_strictly_crossing_traffic_keeps_working() {
    let (mut alice, mut bob, mut r) = simultaneous_start(14);
    crossing_rounds(&mut alice, &mut bob, &mut r);
    // One non-crossing exchange settles both sides on one session.
    let m = alice.send(b"settle", &mut r);
    assert_eq!(bob.receive(&m).unwrap(), b"settle");
    assert!(converged(&alice, &bob));
    let m = bob.send(b"settled", &mut r);
    assert_eq!(alice.receive(&m).unwrap(), b"settled");
    assert!(converged(&alice, &bob));
}

/// SPEC.md §6.4 promises convergence within a round trip. A rule of "send on the session
/// that most recently decrypted a message" never converges when traffic always crosses
/// (each side sends before it receives the other's message): each side switches to the
/// session the other just left, every round. The smaller-id rule converges.
#[test]
fn simultaneous_initiation_converges_within_a_round_trip_even_when_crossing() {
    let (mut alice, mut bob, mut r) = simultaneous_start(14);
    assert_eq!(
        crossing_rounds(&mut alice, &mut bob, &mut r),
        20,
        "the two sides must agree on one sending session in every crossing round"
    );
}

#[test]
fn prekey_store_accept_consumes_the_one_time_prekey() {
    let Offer {
        mut bob,
        bundle,
        mut a,
        first,
        mut rng,
        ..
    } = Offer::new(11);
    let r = &mut rng;
    let opk = bundle.one_time_prekey_id().unwrap();
    bob.store.generate_one_time_prekeys(3, r).unwrap();
    assert_eq!(bob.store.one_time_prekeys().count(), 4);

    let accepted = bob.accept(&first).unwrap();
    assert_eq!(accepted.plaintext, b"first");
    assert_eq!(accepted.used_one_time_prekey, Some(opk));
    assert!(bob.store.one_time_prekey(opk).is_none());
    assert_eq!(bob.store.one_time_prekeys().count(), 3);
    let mut b = accepted.session;

    // A replay cannot create a second session, and changes nothing.
    let before = bob.store_state();
    assert_eq!(
        bob.accept(&first).map(|_| ()),
        Err(Error::UnknownOneTimePreKey(opk))
    );
    assert_eq!(bob.store_state(), before);
    // The store survives a reload with the key still gone.
    let mut reloaded = LocalDevice::from_bytes(&bob.store.to_bytes()).unwrap();
    assert_eq!(
        reloaded.accept(&first, &SessionOptions::new()).map(|_| ()),
        Err(Error::UnknownOneTimePreKey(opk))
    );
    let reply = b.encrypt(b"hi", r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"hi");
}

#[test]
fn signed_prekey_rotation_and_retirement() {
    let mut r = rng(12);
    let alice = Party::new(&mut r);
    let carol = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let old_bundle = bob.bundle(&mut r);
    let old_bundle_2 = bob.bundle(&mut r);
    let old_spk = old_bundle.signed_prekey_id();
    assert_eq!(bob.store.current_signed_prekey().id(), old_spk);
    // The standby is neither published nor accepted. Rotating draws a fresh key that
    // becomes current; the standby is kept for a switch and cannot be retired.
    let standby = bob.store.standby_signed_prekey().unwrap().id();
    assert!(bob.store.signed_prekey(standby).is_none());
    let new_spk = bob.store.rotate_signed_prekey(0, &mut r).unwrap();
    assert_ne!(old_spk, new_spk);
    assert_ne!(new_spk, standby);
    assert_eq!(bob.store.current_signed_prekey().id(), new_spk);
    assert_eq!(bob.store.standby_signed_prekey().unwrap().id(), standby);
    assert!(!bob.store.retire_signed_prekey(standby));
    let new_bundle = bob.bundle(&mut r);
    assert_eq!(new_bundle.signed_prekey_id(), new_spk);

    // Made from the old bundle after the rotation: still accepted.
    let mut a =
        Session::initiate(&alice.identity, &old_bundle, &SessionOptions::new(), &mut r).unwrap();
    let m = a.encrypt(b"old spk", &mut r).unwrap();
    let accepted = bob.accept(&m).unwrap();
    assert_eq!(accepted.plaintext, b"old spk");
    assert_eq!(accepted.session.id(), a.id());

    // The current key cannot be retired; the old one can, once.
    assert!(!bob.store.retire_signed_prekey(new_spk));
    assert!(bob.store.retire_signed_prekey(old_spk));
    assert!(!bob.store.retire_signed_prekey(old_spk));
    assert!(bob.store.signed_prekey(old_spk).is_none());

    // Another message made from the old key is now refused, and the store is unchanged
    // (its one-time prekey is kept).
    let mut c = Session::initiate(
        &carol.identity,
        &old_bundle_2,
        &SessionOptions::new(),
        &mut r,
    )
    .unwrap();
    let m = c.encrypt(b"too late", &mut r).unwrap();
    let before = bob.store_state();
    assert_eq!(
        bob.accept(&m).map(|_| ()),
        Err(Error::UnknownSignedPreKey(old_spk))
    );
    assert_eq!(bob.store_state(), before);
    assert!(bob
        .store
        .one_time_prekey(old_bundle_2.one_time_prekey_id().unwrap())
        .is_some());

    // The new bundle works.
    let mut c =
        Session::initiate(&carol.identity, &new_bundle, &SessionOptions::new(), &mut r).unwrap();
    let m = c.encrypt(b"new spk", &mut r).unwrap();
    let mut b = bob.accept(&m).unwrap().session;
    let back = b.encrypt(b"ok", &mut r).unwrap();
    assert_eq!(c.decrypt(&back).unwrap(), b"ok");
}

#[test]
fn bundle_without_one_time_prekey() {
    let mut r = rng(13);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let bundle = bob.bundle_without_one_time_prekey();
    assert_eq!(bundle.one_time_prekey_id(), None);
    let mut a =
        Session::initiate(&alice.identity, &bundle, &SessionOptions::new(), &mut r).unwrap();
    let first = a.encrypt(b"last resort", &mut r).unwrap();
    let Message::Initial(parsed) = Message::parse(&first).unwrap() else {
        panic!("not an initial message");
    };
    assert_eq!(parsed.one_time_prekey_id(), None);
    assert_eq!(
        first[doubleratchet_test_support::layout::INITIAL_OPK_FLAG],
        0
    );

    let one_time_before = bob.store.one_time_prekeys().count();
    let accepted = bob.accept(&first).unwrap();
    assert_eq!(accepted.plaintext, b"last resort");
    assert_eq!(accepted.used_one_time_prekey, None);
    assert_eq!(bob.store.one_time_prekeys().count(), one_time_before);
    let mut b = accepted.session;
    for i in 0..10 {
        let m = b.encrypt(&text("b", i), &mut r).unwrap();
        assert_eq!(a.decrypt(&m).unwrap(), text("b", i));
        let m = a.encrypt(&text("a", i), &mut r).unwrap();
        assert_eq!(b.decrypt(&m).unwrap(), text("a", i));
    }

    // No one-time prekey was consumed, so the store remembers the session instead
    // (SPEC.md §8): a replay cannot create a second session, and changes nothing.
    let before = bob.store_state();
    assert_eq!(
        bob.accept(&first).map(|_| ()),
        Err(Error::DuplicateOrExpired)
    );
    assert_eq!(bob.store_state(), before);
    let reloaded = LocalDevice::from_bytes(&bob.store.to_bytes()).unwrap();
    let mut bob_reloaded = Party {
        identity: IdentityKeyPair::from_bytes(&bob.identity.to_bytes()).unwrap(),
        store: reloaded,
    };
    assert_eq!(
        bob_reloaded.accept(&first).map(|_| ()),
        Err(Error::DuplicateOrExpired)
    );
}

// ---------------------------------------------------------------------------------------
// Padding (SPEC.md §4.9)
// ---------------------------------------------------------------------------------------

/// The encoded length of a `len`-byte plaintext, written from the formula: the plaintext
/// and its end marker (`L = len + 1`); under Padmé, `max(L, 64)` rounded up to a multiple
/// of `2^(E - S)` with `E = floor(log2 L)`, `S = floor(log2 E) + 1`, at most the largest
/// encoded plaintext.
fn encoded_length(padding: Padding, len: usize) -> usize {
    let l = len + 1;
    if padding == Padding::None {
        return l;
    }
    let l = l.max(64);
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let unit = 1usize << (e - s);
    (l.div_ceil(unit) * unit).min(MAX_PLAINTEXT_SIZE + 1)
}

/// Plaintext lengths and their encoded lengths under Padmé and without padding.
const SIZES: [(usize, usize, usize); 10] = [
    (0, 64, 1),
    (1, 64, 2),
    (63, 64, 64),
    (64, 72, 65),
    (100, 104, 101),
    (1000, 1024, 1001),
    (1023, 1024, 1024),
    (1024, 1088, 1025),
    (65_536, 67_584, 65_537),
    (1_040_000, 1_047_313, 1_040_001),
];

#[test]
fn sizes_on_the_wire_follow_the_padding_policy() {
    assert_eq!(PADME_MINIMUM, 64);
    for (len, padme, none) in SIZES {
        assert_eq!(encoded_length(Padding::Padme, len), padme, "len {len}");
        assert_eq!(encoded_length(Padding::None, len), none, "len {len}");
    }

    // Initial messages, from sessions created with either policy.
    let mut r = rng(900);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    for padding in [Padding::Padme, Padding::None] {
        for (len, _, _) in &SIZES[..8] {
            let bundle = bob.bundle(&mut r);
            let options = SessionOptions::new().padding(padding);
            let mut a = Session::initiate(&alice.identity, &bundle, &options, &mut r).unwrap();
            assert_eq!(a.padding(), padding);
            let plaintext = vec![0x42; *len];
            let m = a.encrypt(&plaintext, &mut r).unwrap();
            assert_eq!(m[1], TYPE_INITIAL);
            assert_eq!(
                m.len(),
                INITIAL_BODY + encoded_length(padding, *len) + TAG,
                "{padding:?}, {len} bytes"
            );
            assert_eq!(bob.accept(&m).unwrap().plaintext, plaintext);
        }
    }

    // Normal messages both ways, every length up to 300 and the table's, each side
    // switching policy on its own: the receiver decodes either.
    let mut p = Pair::established(901);
    let lengths = (0..=300).chain(SIZES[..9].iter().map(|(len, _, _)| *len));
    for (i, len) in lengths.enumerate() {
        let plaintext: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        for (a_sends, padding) in [
            (true, Padding::Padme),
            (false, Padding::None),
            (true, Padding::None),
            (false, Padding::Padme),
        ] {
            let m = if a_sends {
                p.a.set_padding(padding);
                p.deliver_a_to_b(&plaintext)
            } else {
                p.b.set_padding(padding);
                p.deliver_b_to_a(&plaintext)
            };
            assert_eq!(m[1], TYPE_NORMAL);
            assert_eq!(
                m.len(),
                NORMAL_BODY + encoded_length(padding, len) + TAG,
                "{padding:?}, {len} bytes"
            );
        }
    }
    // Padmé's top bucket is clipped to the largest encoded plaintext, which the largest
    // plaintext fills with its end marker alone.
    p.a.set_padding(Padding::Padme);
    let (len, padme, _) = SIZES[9];
    let m = p.deliver_a_to_b(&vec![0x33; len]);
    assert_eq!(padme, MAX_PLAINTEXT_SIZE + 1);
    assert_eq!(m.len(), NORMAL_BODY + padme + TAG);
    // Below Padmé's minimum every plaintext looks alike.
    let short: Vec<usize> = (0..PADME_MINIMUM)
        .map(|len| p.deliver_a_to_b(&vec![0x11; len]).len())
        .collect();
    assert!(short
        .iter()
        .all(|l| *l == NORMAL_BODY + PADME_MINIMUM + TAG));
}

#[test]
fn padding_policy_is_per_session_takes_effect_at_once_and_is_stored() {
    // The default is Padmé, whichever way a session is made; options choose otherwise.
    let mut o = Offer::new(910);
    assert_eq!(o.a.padding(), Padding::Padme);
    let none = SessionOptions::new().padding(Padding::None);
    let responded = Session::respond(
        &o.bob.identity,
        |id| o.bob.store.signed_prekey(id),
        |id| o.bob.store.one_time_prekey(id),
        &o.first,
        &SessionOptions::new(),
    )
    .unwrap();
    assert_eq!(responded.session.padding(), Padding::Padme);
    let accepted = o.bob.store.accept(&o.first, &none).unwrap();
    let mut p = Pair {
        alice: o.alice,
        bob: o.bob,
        a: o.a,
        b: accepted.session,
        rng: o.rng,
    };
    assert_eq!(p.b.padding(), Padding::None);
    assert_eq!(p.deliver_b_to_a(b"12345").len(), NORMAL_BODY + 6 + TAG);

    // A change applies to the very next message, initial messages included, and the
    // peer's policy stays its own.
    let m = p.deliver_a_to_b(b"12345");
    assert_eq!(m.len(), NORMAL_BODY + PADME_MINIMUM + TAG);
    p.a.set_padding(Padding::None);
    assert_eq!(p.a.padding(), Padding::None);
    assert_eq!(p.deliver_a_to_b(b"12345").len(), NORMAL_BODY + 6 + TAG);
    p.b.set_padding(Padding::Padme);
    assert_eq!(
        p.deliver_b_to_a(b"12345").len(),
        NORMAL_BODY + PADME_MINIMUM + TAG
    );
    assert_eq!(p.deliver_a_to_b(b"12345").len(), NORMAL_BODY + 6 + TAG);
    let mut q = Offer::new(911);
    q.a.set_padding(Padding::None);
    let second = q.a.encrypt(b"12345", &mut q.rng).unwrap();
    assert_eq!(second.len(), INITIAL_BODY + 6 + TAG);
    let mut b = q.bob.accept(&second).unwrap().session;
    assert_eq!(b.decrypt(&q.first).unwrap(), b"first");

    // The policy is stored (SPEC.md §7.1: one byte after max_stored_skipped, offset 75 of
    // a classical session between two chains): the two encodings differ in that byte
    // alone, and each loads back to its policy.
    let alice = *p.alice.identity.public_key();
    let with_none = p.a.to_bytes().to_vec();
    p.a.set_padding(Padding::Padme);
    let with_padme = p.a.to_bytes().to_vec();
    assert_eq!(with_none[0], STORAGE_VERSION);
    assert_eq!(with_none.len(), 252);
    let at = padding_offset(&with_none);
    assert_eq!(at, 75);
    assert_eq!((with_none[at], with_padme[at]), (0x00, 0x01));
    let differing: Vec<usize> = (0..with_none.len())
        .filter(|&i| with_none[i] != with_padme[i])
        .collect();
    assert_eq!(differing, [at]);
    for (bytes, padding, encoded) in [
        (&with_none, Padding::None, 6),
        (&with_padme, Padding::Padme, PADME_MINIMUM),
    ] {
        let mut a = Session::from_bytes(bytes, &alice).unwrap();
        assert_eq!(a.padding(), padding);
        assert_eq!(&a.to_bytes()[..], &bytes[..]);
        let m = a.encrypt(b"12345", &mut p.rng).unwrap();
        assert_eq!(m.len(), NORMAL_BODY + encoded + TAG);
    }
    // Sealed too.
    let key = StorageKey::from_bytes([3; 32]);
    p.a.set_padding(Padding::None);
    let context = b"bob/sessions/1";
    let sealed = key.seal(&p.a, context, &mut p.rng).unwrap();
    let mut opened = key.open_session(&sealed, context, &alice).unwrap();
    assert_eq!(opened.padding(), Padding::None);
    assert_eq!(
        opened.encrypt(b"12345", &mut p.rng).unwrap().len(),
        NORMAL_BODY + 6 + TAG
    );
    // Any other policy byte is refused.
    for byte in [0x02, 0x80, 0xff] {
        let mut bad = with_none.clone();
        bad[at] = byte;
        assert_eq!(
            Session::from_bytes(&bad, &alice).map(|_| ()),
            Err(Error::InvalidEncoding)
        );
    }
    // The session the stored copies came from goes on as if nothing happened.
    p.a = Session::from_bytes(&with_none, &alice).unwrap();
    p.ping_pong(2);
}
