//! Peer comparison of group messaging: doubleratchet's sender keys (SPEC.md §11, `Group`)
//! against vodozemac's Megolm (the Matrix group ratchet), 64-byte plaintexts. Each group
//! measures `ours` and `vodozemac` in the same run; after criterion's output, `main` prints
//! `ours / vodozemac` from this run's samples (fastest sample, and median), which
//! `benches/support/timing.rs` records as it times every workload.
//!
//! ```text
//! cargo bench -j2 --manifest-path benches/compare/Cargo.toml --bench megolm
//! cargo bench -j2 --manifest-path benches/compare/Cargo.toml --bench megolm -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `megolm_encrypt`: ours is `Group::encrypt` (returns the message's bytes: one chain
//!   step, AES-256-GCM-SIV, an Ed25519 signature); vodozemac's is
//!   `megolm::GroupSession::encrypt` then `MegolmMessage::to_bytes` (the ratchet's HMAC
//!   steps, HKDF of the AES key, MAC key and IV, AES-256-CBC, HMAC-SHA-256 truncated to
//!   8 bytes, an Ed25519 signature).
//! - `megolm_decrypt`: the sender's next message, from its bytes, decrypted in order by a
//!   receiver that holds the sender's chain: ours is `Group::decrypt` with the sender's
//!   [`MemberChains`], vodozemac's `MegolmMessage::from_bytes` then
//!   `InboundGroupSession::decrypt` (an inbound session made from the sender's session
//!   key). The messages of a batch are encrypted before the batch is timed. Both verify the
//!   signature with ed25519-dalek's `verify_strict`.
//!
//! vodozemac uses Megolm v1 (`SessionConfig::version_1`), the configuration Matrix deploys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use doubleratchet::{Group as ChatGroup, GroupId, IdentityKeyPair, MemberChains};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vodozemac::megolm::{GroupSession, InboundGroupSession, MegolmMessage, SessionConfig};

// Shared with benches/ratchet.rs and olm.rs, which also use `bench`, `Timer::iter` and
// throughputs.
#[allow(dead_code)]
#[path = "../../support/timing.rs"]
mod timing;
use timing::{fastest_and_median, sample_size, samples, time, Group, Timer};

const SMALL: usize = 64;
/// At most this many messages are decrypted per timed batch.
const BATCH: u64 = 500;

/// Alice's group, Bob's group, and Alice's chains as Bob holds them (after her
/// distribution).
fn ours(seed: u64) -> (ChatGroup, ChatGroup, MemberChains) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let id = GroupId::from_bytes([0x47; 32]);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let sender = ChatGroup::new(id, alice.public_key(), &[*bob.public_key()], &mut rng).unwrap();
    let receiver = ChatGroup::new(id, bob.public_key(), &[*alice.public_key()], &mut rng).unwrap();
    let mut chains = MemberChains::new(&id, alice.public_key());
    let _ = receiver
        .process_distribution(
            alice.public_key(),
            &sender.distribution().to_bytes(),
            &mut chains,
        )
        .unwrap();
    (sender, receiver, chains)
}

/// Alice's outbound Megolm session and Bob's inbound one, from her session key.
fn megolm() -> (GroupSession, InboundGroupSession) {
    let sender = GroupSession::new(SessionConfig::version_1());
    let receiver = InboundGroupSession::new(&sender.session_key(), SessionConfig::version_1());
    (sender, receiver)
}

/// One message per iteration, made by `send` (untimed, a batch at a time) and given, in
/// order, to `receive` (timed).
fn bench_in_order<O>(
    g: &mut Group<'_>,
    name: &str,
    mut send: impl FnMut() -> Vec<u8>,
    mut receive: impl FnMut(&[u8]) -> O,
) {
    g.bench_param(name, SMALL, |b: &mut Timer<'_, '_>| {
        b.iter_custom(|iters| {
            let per_batch = iters.div_ceil(10).clamp(1, BATCH);
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_batch);
                let messages: Vec<Vec<u8>> = (0..n).map(|_| send()).collect();
                let mut outputs = Vec::with_capacity(messages.len());
                let start = Instant::now();
                for m in &messages {
                    outputs.push(receive(black_box(m)));
                }
                total += start.elapsed();
                drop(black_box(outputs));
                left -= n;
            }
            total
        });
    });
}

fn messages(c: &mut Criterion) {
    let pt = [0x5au8; SMALL];

    let mut g = Group::new(c, "megolm_encrypt");
    let (mut sender, _, _) = ours(1);
    g.bench_param("ours", SMALL, |b| {
        b.iter_batched(
            || (),
            |()| sender.encrypt(black_box(&pt)).unwrap(),
            BatchSize::SmallInput,
        );
    });
    let (mut session, _) = megolm();
    g.bench_param("vodozemac", SMALL, |b| {
        b.iter_batched(
            || (),
            |()| session.encrypt(black_box(pt)).to_bytes(),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let mut g = Group::new(c, "megolm_decrypt");
    let (mut sender, receiver, mut chains) = ours(2);
    let check = sender.encrypt(&pt).unwrap();
    assert_eq!(receiver.decrypt(&mut chains, &check).unwrap(), pt);
    bench_in_order(
        &mut g,
        "ours",
        || sender.encrypt(&pt).unwrap(),
        |m| receiver.decrypt(&mut chains, m).unwrap(),
    );
    let (mut session, mut inbound) = megolm();
    let check = session.encrypt(pt).to_bytes();
    let decrypted = inbound
        .decrypt(&MegolmMessage::from_bytes(&check).unwrap())
        .unwrap();
    assert_eq!(decrypted.plaintext, pt);
    bench_in_order(
        &mut g,
        "vodozemac",
        || session.encrypt(pt).to_bytes(),
        |m| {
            inbound
                .decrypt(&MegolmMessage::from_bytes(m).unwrap())
                .unwrap()
                .plaintext
        },
    );
    g.finish();
}

/// `(workload, group)`.
const ROWS: &[(&str, &str)] = &[
    ("group encrypt 64 B", "megolm_encrypt"),
    ("group decrypt 64 B", "megolm_decrypt"),
];

/// Prints each workload's fastest sample for both libraries, `ours / vodozemac` on them and
/// on the medians.
fn report() {
    let samples = samples();
    let keep = sample_size();
    let mut lines = Vec::new();
    for (name, group) in ROWS {
        let stats =
            |who: &str| fastest_and_median(samples.get(&format!("{group}/{who}/{SMALL}"))?, keep);
        let (Some(ours), Some(theirs)) = (stats("ours"), stats("vodozemac")) else {
            continue;
        };
        lines.push(format!(
            "{name:<20} {:>11} {:>11} {:>7.3} {:>11} {:>11} {:>9.3}",
            time(ours.0),
            time(theirs.0),
            ours.0 / theirs.0,
            time(ours.1),
            time(theirs.1),
            ours.1 / theirs.1,
        ));
    }
    if lines.is_empty() {
        println!("\ncomparison: this run measured none of its workloads");
        return;
    }
    println!(
        "\nThis run's samples (the last {keep} of each); fastest sample of each, and medians:\n"
    );
    println!(
        "{:<20} {:>11} {:>11} {:>7} {:>11} {:>11} {:>9}",
        "workload", "ours", "vodozemac", "ours/vz", "ours med", "vz med", "med o/v"
    );
    for line in lines {
        println!("{line}");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    messages(&mut c);
    c.final_summary();
    report();
}
