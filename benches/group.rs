//! Criterion benchmarks of group messaging with sender keys (SPEC.md §11, issue 18), all in
//! one criterion group, `group`, so that every figure and every ratio below comes from one
//! run of one process:
//!
//! - `group/encrypt`: `Group::encrypt` of a 64-byte plaintext by a device whose group has
//!   1,000 other member devices (the cost does not depend on the count: one chain step, one
//!   AEAD encryption, one Ed25519 signature).
//! - `group/decrypt`: `Group::decrypt` of the sender's next message (64 bytes), from its
//!   bytes, by a member whose [`MemberChains`] hold the sender's chain; the messages of a
//!   batch are encrypted in order before it is timed and decrypted in that order, so each
//!   is the chain's next iteration (no skipped key, no clone of the chains).
//! - `group/decrypt_floor`: the same messages' cryptography built from the crates the
//!   library uses, nothing around it: ed25519-dalek `verify_strict` over the same bytes,
//!   one HMAC-SHA-256 key schedule of the chain key with its three outputs (`mk`, `cm`,
//!   `ck'`), the commitment compared, and AES-256-GCM-SIV (aes-gcm-siv) open of the 72-byte
//!   encoded plaintext with the 78-byte prefix as AAD. It starts from the distribution's
//!   chain key and decrypts real group messages, so it provably does the work of §11.5.
//! - `group/fanout/n` (n = 10, 100, 1,000): what a group message costs without sender
//!   keys: the same 64-byte plaintext sent to `n` members over `n` pairwise sessions,
//!   [`Session::encrypt`] once per session. Every session is established and has already
//!   sent on its current sending chain (`Pair::established`: Alice's answer after Bob's
//!   reply), so each member costs one chain step, one AEAD encryption and the framing,
//!   never a DH ratchet step; `main` checks afterwards that every session still sends on
//!   the ratchet key and previous chain length it had before the benchmarks.
//! - `group/max_jump`: decrypting a message `MAX_GROUP_JUMP` (25,000) iterations ahead of
//!   the chain's next one, the most a message may cost (§11.5): 23,000 chain steps
//!   stepped over, 2,000 kept as skipped keys, then the message's; the chains are restored
//!   from bytes (untimed) before every iteration, with no skipped key stored.
//!   `group/max_jump_floor`: the same chain steps (one HMAC for each step stepped over,
//!   three for each kept), `verify_strict` and the AEAD open.
//!
//! ```text
//! cargo bench -j2 --bench group -- --noplot     # about 45 s with the settings below
//! cargo bench -j2 --bench group -- fanout
//! ```
//!
//! The warm-up (1 s) and measurement (3 s) times are set below and can be overridden on the
//! command line (`--warm-up-time`, `--measurement-time`). As in `benches/ratchet.rs`, every
//! workload is timed by `benches/support/timing.rs`, which keeps each sample; after
//! criterion's own output `main` prints each benchmark's fastest sample and median and the
//! ratios the issue asks for, from this run: the send cost of fan-out to 1,000 members
//! against one group message (target: at least 50x), the crossover (the smallest member
//! count `n` at which fan-out costs more than one group message, from the per-member cost
//! of fan-out to 10), decrypt against its floor (target: at most 1.2x), and the maximal
//! jump.
//!
//! On a shared machine the load can change between two criterion benchmarks, which are
//! measured one after the other (about 4 s each), and move a ratio of two of them. So after
//! criterion's measurements, when they included `encrypt`, `fanout/1000`, `decrypt` and
//! `decrypt_floor`, the bench also times the six workloads of the ratios (encrypt, fan-out
//! to 10, 100 and 1,000, decrypt, its floor) in 200 *interleaved rounds*: each round times
//! each workload once (20 group messages, or about 1,000 pairwise messages), in an order
//! that rotates from round to round, on the same states as the benchmarks; `main` prints
//! the medians over the rounds of each time and of each round's ratios, so that the two
//! sides of a ratio are measured within milliseconds of each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use criterion::{BatchSize, Criterion};
use doubleratchet::{
    DistributionOutcome, Error, Group as ChatGroup, GroupId, GroupMessage, IdentityKeyPair,
    MemberChains, Session, MAX_GROUP_JUMP, MAX_GROUP_SKIPPED,
};
use doubleratchet_test_support::{header, Pair};
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

// Shared with benches/ratchet.rs, which also uses `bench_param`'s throughputs.
#[allow(dead_code)]
#[path = "support/timing.rs"]
mod timing;
use timing::{fastest_and_median, sample_size, samples, time, Group, Timer};

/// The plaintext size of every message.
const SMALL: usize = 64;
/// Its encoded length (Padmé, SPEC.md §4.9): what the AEAD encrypts.
const ENCODED_SMALL: usize = 72;
/// Member counts of the fan-out (and the other member devices of the sending group).
const FANOUT: [usize; 3] = [10, 100, 1_000];
/// The group message's framing before the ciphertext (SPEC.md §11.3): the AAD.
const PREFIX: usize = 78;
const TAG: usize = 16;
const SIGNATURE: usize = 64;
/// A 64-byte plaintext's group message.
const MESSAGE_LENGTH: usize = PREFIX + ENCODED_SMALL + TAG + SIGNATURE;
/// At most this many messages are decrypted per timed batch.
const BATCH: u64 = 500;

// ---------------------------------------------------------------------------------------
// The library's side.
// ---------------------------------------------------------------------------------------

/// A sender and a receiver in one group: the sender's `Group`, the receiver's `Group` and
/// the sender's chains as the receiver holds them (after the sender's distribution).
struct Members {
    sender: ChatGroup,
    receiver: ChatGroup,
    chains: MemberChains,
    /// The sender's distribution, as sent (SPEC.md §11.2).
    distribution: Vec<u8>,
}

fn members(seed: u64, others: usize) -> Members {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let id = GroupId::from_bytes([0x47; 32]);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    // Alice's group: Bob and `others - 1` more member devices.
    let mut alice_members = vec![*bob.public_key()];
    for _ in 1..others {
        alice_members.push(*IdentityKeyPair::generate(&mut rng).unwrap().public_key());
    }
    let sender = ChatGroup::new(id, alice.public_key(), &alice_members, &mut rng).unwrap();
    assert_eq!(sender.members().len(), others);
    let receiver = ChatGroup::new(id, bob.public_key(), &[*alice.public_key()], &mut rng).unwrap();
    let distribution = sender.distribution().to_bytes().to_vec();
    let mut chains = MemberChains::new(&id, alice.public_key());
    let outcome = receiver
        .process_distribution(alice.public_key(), &distribution, &mut chains)
        .unwrap();
    assert_eq!(outcome, DistributionOutcome::Added { evicted: None });
    Members {
        sender,
        receiver,
        chains,
        distribution,
    }
}

/// `n` established pairwise sessions, the sending side of each: its next `encrypt` is a
/// plain chain step (it has already sent on its current sending chain).
fn fanout_sessions(n: usize) -> Vec<Session> {
    (0..n)
        .map(|i| Pair::established(1_000 + i as u64).a)
        .collect()
}

/// The ratchet key and previous chain length a session sends on.
fn sending_on(session: &mut Session, rng: &mut ChaCha20Rng) -> ([u8; 32], u32) {
    let (dh, _, pn) = header(&session.encrypt(&[0x5a; SMALL], rng).unwrap());
    (dh, pn)
}

// ---------------------------------------------------------------------------------------
// The floor: the same primitives, with nothing around them.
// ---------------------------------------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

/// The receiver's floor state: the chain key at the next iteration and the chain's signing
/// key, from the distribution's bytes.
struct FloorChain {
    ck: [u8; 32],
    signing: VerifyingKey,
}

impl FloorChain {
    fn new(distribution: &[u8]) -> Self {
        FloorChain {
            ck: distribution[46..78].try_into().unwrap(),
            signing: VerifyingKey::from_bytes(distribution[78..110].try_into().unwrap()).unwrap(),
        }
    }
}

/// `KDF_GCK`: three HMAC-SHA-256 under one key schedule of `ck`: `(mk, cm, ck')`.
fn kdf_gck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(ck).unwrap();
    let mut for_message = keyed.clone();
    for_message.update(&[0x03]);
    let mut for_commitment = keyed.clone();
    for_commitment.update(&[0x04]);
    let mut for_chain = keyed;
    for_chain.update(&[0x05]);
    (
        for_message.finalize().into_bytes().into(),
        for_commitment.finalize().into_bytes().into(),
        for_chain.finalize().into_bytes().into(),
    )
}

/// `ck'` only: the step over an iteration whose keys are not kept.
fn advance(ck: &[u8; 32]) -> [u8; 32] {
    let mut h = <HmacSha256 as KeyInit>::new_from_slice(ck).unwrap();
    h.update(&[0x05]);
    h.finalize().into_bytes().into()
}

/// Verify, commitment, open: what a receiver must do with the keys of `message` (a 64-byte
/// plaintext's group message); panics if anything fails, so the floor always does the
/// whole work of a successful decryption. Returns the encoded plaintext.
fn floor_open(
    signing: &VerifyingKey,
    mk: &[u8; 32],
    cm: &[u8; 32],
    message: &[u8],
) -> [u8; ENCODED_SMALL] {
    let (signed, signature) = message.split_at(message.len() - SIGNATURE);
    signing
        .verify_strict(
            signed,
            &Signature::from_bytes(signature.try_into().unwrap()),
        )
        .unwrap();
    assert_eq!(cm, &message[46..PREFIX]);
    let mut buf: [u8; ENCODED_SMALL] = message[PREFIX..PREFIX + ENCODED_SMALL].try_into().unwrap();
    let tag: [u8; TAG] = message[PREFIX + ENCODED_SMALL..signed.len()]
        .try_into()
        .unwrap();
    Aes256GcmSiv::new_from_slice(mk)
        .unwrap()
        .decrypt_inout_detached(
            &Nonce::from([0u8; 12]),
            &message[..PREFIX],
            (&mut buf[..]).into(),
            &Tag::from(tag),
        )
        .expect("floor ciphertext authenticates");
    buf
}

/// The floor of a decryption of the chain's next message.
fn floor_decrypt(chain: &mut FloorChain, message: &[u8]) -> [u8; ENCODED_SMALL] {
    let (mk, cm, next) = kdf_gck(&chain.ck);
    let pt = floor_open(&chain.signing, &mk, &cm, message);
    chain.ck = next;
    pt
}

/// The floor of a decryption `MAX_GROUP_JUMP` ahead: the chain steps of §11.5 step 7 (the
/// skipped keys kept are derived, not stored), verify, commitment, open.
fn floor_jump(chain: &FloorChain, message: &[u8]) -> ([u8; ENCODED_SMALL], [u8; 32]) {
    let jump = MAX_GROUP_JUMP as usize;
    let mut ck = chain.ck;
    for _ in 0..jump - MAX_GROUP_SKIPPED {
        ck = advance(&ck);
    }
    for _ in 0..MAX_GROUP_SKIPPED {
        let (mk, cm, next) = kdf_gck(&ck);
        black_box((&mk, &cm));
        ck = next;
    }
    let (mk, cm, next) = kdf_gck(&ck);
    (floor_open(&chain.signing, &mk, &cm, message), next)
}

// ---------------------------------------------------------------------------------------
// The workloads.
// ---------------------------------------------------------------------------------------

/// One 64-byte message of `sender`'s chain per iteration, decrypted in order by `decrypt`:
/// the messages of a batch are encrypted before the batch is timed.
fn bench_in_order<O>(
    g: &mut Group<'_>,
    name: &str,
    sender: &mut ChatGroup,
    mut decrypt: impl FnMut(&[u8]) -> O,
) {
    let pt = [0x5au8; SMALL];
    g.bench(name, |b: &mut Timer<'_, '_>| {
        b.iter_custom(|iters| {
            let per_batch = iters.div_ceil(10).clamp(1, BATCH);
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_batch);
                let messages: Vec<Vec<u8>> = (0..n).map(|_| sender.encrypt(&pt).unwrap()).collect();
                let mut outputs = Vec::with_capacity(messages.len());
                let start = Instant::now();
                for m in &messages {
                    outputs.push(decrypt(black_box(m)));
                }
                total += start.elapsed();
                drop(black_box(outputs));
                left -= n;
            }
            total
        });
    });
}

/// The message `MAX_GROUP_JUMP` ahead of `m.chains`' next iteration, checked: the chains
/// decrypt it, and the one after it is `TooFarAhead`.
fn jump_message(m: &mut Members) -> Vec<u8> {
    let pt = [0x5au8; SMALL];
    let first = m.sender.iteration();
    for _ in 0..MAX_GROUP_JUMP {
        m.sender.encrypt(&pt).unwrap();
    }
    let jump = m.sender.encrypt(&pt).unwrap();
    let beyond = m.sender.encrypt(&pt).unwrap();
    assert_eq!(
        GroupMessage::parse(&jump).unwrap().iteration(),
        first + MAX_GROUP_JUMP
    );
    let saved = m.chains.to_bytes();
    let mut chains = MemberChains::from_bytes(&saved).unwrap();
    assert_eq!(
        m.receiver.decrypt(&mut chains, &beyond),
        Err(Error::TooFarAhead)
    );
    assert_eq!(m.receiver.decrypt(&mut chains, &jump).unwrap(), pt);
    assert_eq!(chains.stored_skipped(), MAX_GROUP_SKIPPED);
    jump
}

fn group(c: &mut Criterion) -> Option<Vec<Round>> {
    let pt = [0x5au8; SMALL];
    // The sending device of `encrypt`, in a group of 1,000 other member devices.
    let mut big = members(1, FANOUT[2]);
    let sample = big.sender.encrypt(&pt).unwrap();
    assert_eq!(sample.len(), MESSAGE_LENGTH);
    assert_eq!(big.receiver.decrypt(&mut big.chains, &sample).unwrap(), pt);

    let mut ours = members(2, 1);
    let mut floor = members(3, 1);
    let mut floor_chain = FloorChain::new(&floor.distribution);
    // The floor decrypts what the library decrypts.
    let check = floor.sender.encrypt(&pt).unwrap();
    let encoded = floor_decrypt(&mut floor_chain, &check);
    assert_eq!((&encoded[..SMALL], encoded[SMALL]), (&pt[..], 0x80));

    let mut jump = members(4, 1);
    let jump_message = jump_message(&mut jump);
    let jump_saved = jump.chains.to_bytes();
    let jump_floor = FloorChain::new(&jump.distribution);
    assert_eq!(floor_jump(&jump_floor, &jump_message).0[..SMALL], pt);

    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut sessions = fanout_sessions(FANOUT[2]);
    let before: Vec<_> = sessions
        .iter_mut()
        .map(|s| sending_on(s, &mut rng))
        .collect();

    let mut g = Group::new(c, "group");
    g.bench("encrypt", |b| {
        b.iter_batched(
            || (),
            |()| big.sender.encrypt(black_box(&pt)).unwrap(),
            BatchSize::SmallInput,
        );
    });
    for n in FANOUT {
        g.bench_param("fanout", n, |b| {
            b.iter_batched(
                || (),
                |()| {
                    sessions[..n]
                        .iter_mut()
                        .map(|s| s.encrypt(black_box(&pt), &mut rng).unwrap())
                        .collect::<Vec<_>>()
                },
                BatchSize::SmallInput,
            );
        });
    }
    let Members {
        sender,
        receiver,
        chains,
        ..
    } = &mut ours;
    bench_in_order(&mut g, "decrypt", sender, |m| {
        receiver.decrypt(chains, m).unwrap()
    });
    bench_in_order(&mut g, "decrypt_floor", &mut floor.sender, |m| {
        floor_decrypt(&mut floor_chain, m)
    });
    g.bench("max_jump", |b| {
        b.iter_batched(
            || MemberChains::from_bytes(&jump_saved).unwrap(),
            |mut chains| {
                let pt = jump.receiver.decrypt(&mut chains, &jump_message).unwrap();
                (chains, pt)
            },
            BatchSize::SmallInput,
        );
    });
    g.bench("max_jump_floor", |b| {
        b.iter_batched(
            || (),
            |()| floor_jump(&jump_floor, &jump_message),
            BatchSize::SmallInput,
        );
    });
    g.finish();

    // The interleaved rounds, only after a run that measured their four workloads.
    let measured = {
        let samples = samples();
        ROUND_IDS
            .iter()
            .all(|id| samples.get(*id).is_some_and(|s| s.len() >= 10))
    };
    let rounds = measured.then(|| {
        let Members {
            sender,
            receiver,
            chains,
            ..
        } = &mut ours;
        let mut workloads = Workloads {
            group: &mut big.sender,
            sessions: &mut sessions,
            rng: &mut rng,
            ours_sender: sender,
            receiver,
            chains,
            floor_sender: &mut floor.sender,
            floor_chain: &mut floor_chain,
        };
        (0..ROUNDS).map(|r| workloads.round(r)).collect()
    });

    // No DH ratchet step was timed: every session still sends on the ratchet key and
    // previous chain length it had before.
    for (i, (s, was)) in sessions.iter_mut().zip(&before).enumerate() {
        assert_eq!(&sending_on(s, &mut rng), was, "session {i} made a DH step");
    }
    rounds
}

// ---------------------------------------------------------------------------------------
// Interleaved rounds: the compared workloads timed one after the other, round after round.
// ---------------------------------------------------------------------------------------

/// The benchmarks whose workloads the rounds time again.
const ROUND_IDS: [&str; 4] = [
    "group/encrypt",
    "group/fanout/1000",
    "group/decrypt",
    "group/decrypt_floor",
];
/// Rounds after criterion's measurements.
const ROUNDS: usize = 200;
/// Group messages encrypted, or decrypted, per workload and round.
const PER_ROUND: usize = 20;
/// What one round measures, per operation (one group message, or one fan-out), in ns:
/// group encrypt, fan-out to 10, 100 and 1,000, group decrypt, decrypt floor.
type Round = [f64; 6];

/// The state the rounds work on: that of the criterion benchmarks, continued.
struct Workloads<'a> {
    group: &'a mut ChatGroup,
    sessions: &'a mut [Session],
    rng: &'a mut ChaCha20Rng,
    ours_sender: &'a mut ChatGroup,
    receiver: &'a ChatGroup,
    chains: &'a mut MemberChains,
    floor_sender: &'a mut ChatGroup,
    floor_chain: &'a mut FloorChain,
}

impl Workloads<'_> {
    /// One round: the six workloads, starting with workload `r mod 6`, so that each takes
    /// every place in the order equally often. Outputs are dropped, and the messages to
    /// decrypt made, outside the timed parts.
    fn round(&mut self, r: usize) -> Round {
        let mut out = [0.0; 6];
        for k in 0..6 {
            let w = (r + k) % 6;
            out[w] = self.time(w);
        }
        out
    }

    fn time(&mut self, workload: usize) -> f64 {
        let pt = [0x5au8; SMALL];
        match workload {
            0 => {
                let mut kept = Vec::with_capacity(PER_ROUND);
                let start = Instant::now();
                for _ in 0..PER_ROUND {
                    kept.push(self.group.encrypt(black_box(&pt)).unwrap());
                }
                let t = start.elapsed();
                drop(black_box(kept));
                t.as_nanos() as f64 / PER_ROUND as f64
            }
            1..=3 => {
                let n = FANOUT[workload - 1];
                // Repeated to about 1,000 messages per round.
                let times = (1_000 / n).max(1);
                let mut kept = Vec::with_capacity(times);
                let start = Instant::now();
                for _ in 0..times {
                    kept.push(
                        self.sessions[..n]
                            .iter_mut()
                            .map(|s| s.encrypt(black_box(&pt), self.rng).unwrap())
                            .collect::<Vec<_>>(),
                    );
                }
                let t = start.elapsed();
                drop(black_box(kept));
                t.as_nanos() as f64 / times as f64
            }
            4 => {
                let messages: Vec<Vec<u8>> = (0..PER_ROUND)
                    .map(|_| self.ours_sender.encrypt(&pt).unwrap())
                    .collect();
                let mut kept = Vec::with_capacity(PER_ROUND);
                let start = Instant::now();
                for m in &messages {
                    kept.push(self.receiver.decrypt(self.chains, black_box(m)).unwrap());
                }
                let t = start.elapsed();
                drop(black_box(kept));
                t.as_nanos() as f64 / PER_ROUND as f64
            }
            _ => {
                let messages: Vec<Vec<u8>> = (0..PER_ROUND)
                    .map(|_| self.floor_sender.encrypt(&pt).unwrap())
                    .collect();
                let mut kept = Vec::with_capacity(PER_ROUND);
                let start = Instant::now();
                for m in &messages {
                    kept.push(floor_decrypt(self.floor_chain, black_box(m)));
                }
                let t = start.elapsed();
                drop(black_box(kept));
                t.as_nanos() as f64 / PER_ROUND as f64
            }
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The rounds' medians: of each workload's time, and of each round's ratios.
fn report_rounds(rounds: &[Round]) {
    let col = |i: usize| median(rounds.iter().map(|r| r[i]).collect());
    let ratio = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!(
        "\nInterleaved rounds ({} rounds after criterion's measurements, the six workloads \
         in rotating order each round); medians over the rounds:",
        rounds.len()
    );
    let names = [
        "group encrypt 64 B",
        "fan-out 10",
        "fan-out 100",
        "fan-out 1000",
        "group decrypt 64 B",
        "decrypt floor",
    ];
    for (i, name) in names.iter().enumerate() {
        println!("  {name:<22} {:>11}", time(col(i)));
    }
    for (i, n) in FANOUT.iter().enumerate() {
        let per_round = ratio(&|r| r[i + 1] / r[0]);
        println!(
            "  fan-out {n:>5} / group encrypt: median of the rounds' ratios {per_round:>8.2}x, \
             ratio of the medians {:>8.2}x",
            col(i + 1) / col(0)
        );
    }
    let crossovers: Vec<f64> = rounds
        .iter()
        .map(|r| crossover(r[0], r[1] / 10.0) as f64)
        .collect();
    println!(
        "  crossover (from fan-out 10): median of the rounds' {}, from the medians {}",
        median(crossovers),
        crossover(col(0), col(1) / 10.0)
    );
    println!(
        "  group decrypt / floor: median of the rounds' ratios {:.3}x, ratio of the medians \
         {:.3}x",
        ratio(&|r| r[4] / r[5]),
        col(4) / col(5)
    );
}

// ---------------------------------------------------------------------------------------
// The report: ratios from this run's samples.
// ---------------------------------------------------------------------------------------

/// The smallest member count at which fan-out, at `per_member` a member, costs more than
/// one group message costing `group`.
fn crossover(group: f64, per_member: f64) -> u64 {
    (group / per_member).floor() as u64 + 1
}

/// Prints every benchmark's fastest sample and median, and the ratios of the issue, on
/// both statistics.
fn report() {
    let samples = samples();
    let keep = sample_size();
    let stats = |id: &str| fastest_and_median(samples.get(id)?, keep);
    println!("\nThis run's samples (the last {keep} of each benchmark): fastest, median\n");
    let ids = [
        ("group encrypt 64 B", "group/encrypt".to_string()),
        ("group decrypt 64 B", "group/decrypt".into()),
        ("decrypt floor", "group/decrypt_floor".into()),
        ("fan-out 10", "group/fanout/10".into()),
        ("fan-out 100", "group/fanout/100".into()),
        ("fan-out 1000", "group/fanout/1000".into()),
        ("max jump (25,000)", "group/max_jump".into()),
        ("max jump floor", "group/max_jump_floor".into()),
    ];
    println!("{:<22} {:>11} {:>11}", "workload", "fastest", "median");
    for (name, id) in &ids {
        if let Some((fast, median)) = stats(id) {
            println!("{name:<22} {:>11} {:>11}", time(fast), time(median));
        }
    }
    // (label, statistic index: 0 fastest, 1 median)
    for (label, pick) in [("medians", 1usize), ("fastest samples", 0)] {
        let get = |id: &str| stats(id).map(|s| if pick == 0 { s.0 } else { s.1 });
        println!("\nRatios on the {label}:");
        let encrypt = get("group/encrypt");
        if let Some(e) = encrypt {
            for n in FANOUT {
                if let Some(f) = get(&format!("group/fanout/{n}")) {
                    let per = f / n as f64;
                    let verdict = if n == 1_000 {
                        if f / e >= 50.0 {
                            "  (target >= 50x: met)"
                        } else {
                            "  (target >= 50x: NOT met)"
                        }
                    } else {
                        ""
                    };
                    println!(
                        "  fan-out {n:>5} / group encrypt: {:>8.2}x   per member {:>9}, \
                         crossover at this per-member cost: {}{verdict}",
                        f / e,
                        time(per),
                        crossover(e, per),
                    );
                }
            }
            if let Some(f) = get("group/fanout/10") {
                println!(
                    "  crossover (from fan-out 10): fan-out to n members costs more than one \
                     group encrypt from n = {}",
                    crossover(e, f / 10.0)
                );
            }
        }
        if let (Some(d), Some(f)) = (get("group/decrypt"), get("group/decrypt_floor")) {
            let verdict = if d / f <= 1.2 { "met" } else { "NOT met" };
            println!(
                "  group decrypt / floor: {:.3}x (target <= 1.2x: {verdict})",
                d / f
            );
        }
        if let (Some(j), Some(f)) = (get("group/max_jump"), get("group/max_jump_floor")) {
            println!("  max jump: {} (floor {}, {:.3}x)", time(j), time(f), j / f);
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rounds = group(&mut c);
    c.final_summary();
    report();
    if let Some(rounds) = rounds {
        report_rounds(&rounds);
    }
}
