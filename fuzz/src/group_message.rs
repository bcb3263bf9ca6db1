//! The `group_message` target: hostile bytes as a group message (SPEC.md §11.3) and as a
//! sender-key distribution (§11.2), given to a fixed receiver.
//!
//! The receiver is B in the fixture's group ([`group_fixture`]): members A and C, D an
//! outsider. B holds A's chains (five chains, one retired; chain 4 at iteration 6 with
//! skipped keys 0, 1, 3 and 4; chain 5 distributed at iteration 2; chain 6 pending), C's
//! (one chain at the last iterations before 2^32 - 1, one skipped key), and two copies of
//! A's chains that must never be used: under the outsider D's key and in another group.
//!
//! The input is used as:
//!
//! 1. a group message: `GroupMessage::parse` refuses exactly as SPEC.md §11.3 says, or
//!    parses with the fields at their offsets; `Group::decrypt` against each of B's chains
//!    gives exactly what the reference receiver ([`expect_decrypt`]) says: the error of
//!    the first step of §11.5 that fails (with the chains byte-identical), or the
//!    plaintext and exactly the chains §11.5 step 9 makes. So a message decrypts only if a
//!    sender made it with a plaintext (the fixture's genuine messages and the ones A's
//!    chain 4 made by hand), under the chain's genuine keys, once;
//! 2. the same message signed again by the chain it names, when that is a sender's chain
//!    (so that altered framing, commitments, ciphertexts and tags get past the signature):
//!    decrypted by the chain owner's chains, against the reference receiver (only an
//!    unaltered message decrypts);
//! 3. a distribution: `Distribution::from_bytes` refuses as §11.2 says or re-encodes to
//!    exactly the input; `Group::process_distribution` from A into A's chains, from C into
//!    C's, from D (not a member), from A into the other group's chains, from C into A's
//!    chains and from D into the other group's, each against the reference receiver
//!    ([`expect_distribution`]: `Added` with the oldest chain evicted and retired,
//!    `Advanced` with the skipped keys kept (or, beyond `MAX_GROUP_JUMP`, the chain key
//!    taken unchecked), `Known` with nothing changed, or the first error of §11.4, with the
//!    chains byte-identical). When a chain is added or advanced, every message the fixture
//!    holds of that chain id is then decrypted by the new chains, against the reference
//!    receiver.

use std::cell::RefCell;

use crate::group_fixture::*;
use crate::prelude::*;
use doubleratchet::{Distribution, DistributionOutcome, GroupMessage, MemberChains};

thread_local! {
    /// The receiver's chains in their fixture state, kept between inputs while unchanged.
    static SLOTS: RefCell<Vec<Option<MemberChains>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a copy of the fixture's chains slot `slot`. The copy is kept for the next
/// input only if it still encodes as the fixture's.
pub(crate) fn with_slot<T>(slot: usize, f: impl FnOnce(&mut MemberChains) -> T) -> T {
    let fx = group_fixture();
    let mut chains = SLOTS
        .with(|s| s.borrow_mut().get_mut(slot).and_then(Option::take))
        .unwrap_or_else(|| MemberChains::from_bytes(&fx.slots[slot].bytes).unwrap());
    let out = f(&mut chains);
    if *chains.to_bytes() == *fx.slots[slot].bytes {
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < fx.slots.len() {
                s.resize_with(fx.slots.len(), || None);
            }
            s[slot] = Some(chains);
        });
    }
    out
}

/// `GroupMessage::parse` agrees with SPEC.md §11.3.
fn check_parse(data: &[u8]) {
    let parsed = GroupMessage::parse(data);
    match (expected_message_parse(data), parsed) {
        (Ok(()), Ok(m)) => {
            assert_eq!(m.group_id().as_bytes()[..], data[MESSAGE_GROUP]);
            assert_eq!(m.chain_id(), be_u64(data, MESSAGE_CHAIN));
            assert_eq!(m.iteration(), be_u32(data, MESSAGE_ITERATION));
            let _ = format!("{m:?}");
        }
        (Err(e), Err(got)) => assert_eq!(got, e, "GroupMessage::parse"),
        (expected, got) => panic!("GroupMessage::parse gave {got:?}, expected {expected:?}"),
    }
}

/// `Distribution::from_bytes` agrees with SPEC.md §11.2; what parses re-encodes exactly.
fn check_distribution_parse(data: &[u8]) -> bool {
    match (
        expected_distribution_parse(data),
        Distribution::from_bytes(data),
    ) {
        (Ok(()), Ok(d)) => {
            assert_eq!(*d.to_bytes(), data, "a distribution re-encodes differently");
            assert_eq!(d.group_id().as_bytes()[..], data[DIST_GROUP]);
            assert_eq!(d.chain_id(), be_u64(data, DIST_CHAIN));
            assert_eq!(d.iteration(), be_u32(data, DIST_ITERATION));
            assert_eq!(d.signing_key().as_bytes()[..], data[DIST_SIGNING]);
            let _ = format!("{d:?}");
            true
        }
        (Err(e), Err(got)) => {
            assert_eq!(got, e, "Distribution::from_bytes");
            false
        }
        (expected, got) => panic!(
            "Distribution::from_bytes gave {:?}, expected {expected:?}",
            got.map(|_| ())
        ),
    }
}

/// Decrypts, with `chains`, every message of the fixture of chain `id` (in the order they
/// were made), each against the reference receiver.
pub(crate) fn decrypt_chain_messages(
    group: &doubleratchet::Group,
    chains: &mut MemberChains,
    id: u64,
) {
    let fx = group_fixture();
    for (_, m) in &fx.messages {
        if be_u64(m, MESSAGE_CHAIN) == id {
            let _ = group_decrypt_checked(group, chains, m, fx.registry.signer(m), &fx.registry);
        }
    }
}

/// The target: see the module documentation.
pub fn group_message(data: &[u8]) {
    let fx = group_fixture();
    let reg = &fx.registry;
    let receiver = &fx.receiver;

    // 1. As a message, against each of the receiver's chains.
    check_parse(data);
    let signer = reg.signer(data);
    for slot in 0..fx.slots.len() {
        with_slot(slot, |chains| {
            let _ = group_decrypt_checked(receiver, chains, data, signer, reg);
        });
    }

    // 2. Signed again by the chain it names.
    if expected_message_parse(data).is_ok() {
        if let Some(table) = reg.chains.get(&be_u64(data, MESSAGE_CHAIN)) {
            let resigned = table.sign(&data[..data.len() - SIGNATURE]);
            let slot = if table.owner == *fx.keys[C].as_bytes() {
                SLOT_C
            } else {
                SLOT_A
            };
            if resigned != data {
                with_slot(slot, |chains| {
                    let _ = group_decrypt_checked(
                        receiver,
                        chains,
                        &resigned,
                        Some(table.signing),
                        reg,
                    );
                });
            }
        }
    }

    // 3. As a distribution.
    if check_distribution_parse(data) {
        // Each slot from its own sender (A, C, the outsider D, A into the other group's
        // chains); then C into A's chains and D into the other group's.
        let pairs = fx.slots.iter().enumerate().map(|(i, s)| (s.sender, i));
        for (sender, slot) in pairs.chain([(C, SLOT_A), (D, SLOT_OTHER_GROUP)]) {
            with_slot(slot, |chains| {
                let outcome = distribution_checked(receiver, &fx.keys[sender], chains, data, reg);
                if matches!(
                    outcome,
                    Ok(DistributionOutcome::Added { .. } | DistributionOutcome::Advanced)
                ) {
                    decrypt_chain_messages(receiver, chains, be_u64(data, DIST_CHAIN));
                    let bytes = chains.to_bytes();
                    let loaded = MemberChains::from_bytes(&bytes).unwrap();
                    assert_eq!(*loaded.to_bytes(), *bytes);
                }
            });
        }
    }
}
