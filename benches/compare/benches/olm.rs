//! Peer comparison: doubleratchet against vodozemac's Olm (the Matrix Double Ratchet), on
//! the workloads both have. Each group measures `ours` and `vodozemac` in the same run;
//! after criterion's output, `main` prints `ours / vodozemac` from this run's samples
//! (fastest sample, and median), which `benches/support/timing.rs` records as it times
//! every workload.
//!
//! ```text
//! cargo bench -j2 --manifest-path benches/compare/Cargo.toml
//! cargo bench -j2 --manifest-path benches/compare/Cargo.toml -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Both sides are measured wire to wire: our `encrypt` returns the message's bytes and our
//! `decrypt` and `respond` parse them, so vodozemac's figures include `to_parts` after
//! `encrypt` and `from_parts` / `PreKeyMessage::from_bytes` before `decrypt` and
//! `create_inbound_session`. vodozemac uses Olm v1 (`SessionConfig::version_1`, AES-256-CBC
//! with HMAC-SHA-256, the MAC truncated to 8 bytes), the configuration Matrix deploys.
//! vodozemac draws its randomness from `rand::rng()` (not injectable); ours from
//! `ChaCha20Rng`, as in `benches/ratchet.rs`.
//!
//! After criterion's measurements, when they included 64 B or 64 KiB encrypt+decrypt or
//! ping-pong, `main` times those three workloads again in interleaved rounds, ours and
//! vodozemac's alternately, and prints how many times faster ours is (medians over the
//! rounds) with the targets of issue 19 for the backend of this build: `--features aws-lc`
//! builds the library on its AWS-LC backend.
//!
//! What differs in the handshake: Olm's 3DH has no signed prekey, so
//! `create_outbound_session` verifies no signature and does 3 X25519, where our
//! `initiate` verifies the bundle's Ed25519 signature and does 4 X25519 (one-time prekey)
//! plus the first DH ratchet step. The `initiate_verified` group adds the Ed25519 strict
//! verification a Matrix client does on the signed one-time key before calling vodozemac.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;

use criterion::{BatchSize, Criterion, Throughput};
use doubleratchet::{
    IdentityKeyPair, OneTimePreKey, OneTimePreKeyPublic, PreKeyBundle, Session, SignedPreKey,
    SignedPreKeyPublic,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vodozemac::olm::{Account, OlmMessage, PreKeyMessage, SessionConfig};
use vodozemac::Curve25519PublicKey;

// Shared with benches/ratchet.rs, which also uses `Timer::iter` and `Timer::iter_custom`.
#[allow(dead_code)]
#[path = "../../support/timing.rs"]
mod timing;
use doubleratchet::OneTimePreKeyId;
use doubleratchet::SessionOptions;
use doubleratchet::SignedPreKeyId;
use timing::{
    fastest_and_median, interleaved_rounds, per_op, report_rounds, sample_size, samples, time,
    Group, Ratio,
};

const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 64 * 1024];
const SMALL: usize = 64;

// ---------------------------------------------------------------------------------------
// Ours.
// ---------------------------------------------------------------------------------------

struct Parties {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    spk: SignedPreKey,
    opk: OneTimePreKey,
    bundle: PreKeyBundle,
}

fn parties(rng: &mut ChaCha20Rng) -> Parties {
    let alice = IdentityKeyPair::generate(rng).unwrap();
    let bob = IdentityKeyPair::generate(rng).unwrap();
    let spk = SignedPreKey::generate(&bob, SignedPreKeyId::from_u64(1), rng).unwrap();
    let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(7), rng).unwrap();
    // The bundle a server would hand out: assembled from Bob's public parts, which
    // checks the signed prekey's signature once here, outside every measurement (the
    // creation time is not part of a bundle).
    let signed = SignedPreKeyPublic::from_key(&spk, 0).expect("signed prekey id 1 is not 0");
    let one_time = OneTimePreKeyPublic::from_key(&opk).expect("one-time prekey id 7 is not 0");
    let bundle = PreKeyBundle::assemble(bob.public_key(), &signed, Some(&one_time))
        .expect("Bob's signed prekey is signed by Bob");
    Parties {
        alice,
        bob,
        spk,
        opk,
        bundle,
    }
}

fn respond(p: &Parties, initial: &[u8]) -> Session {
    Session::respond(
        &p.bob,
        |_| Some(&p.spk),
        |_| Some(&p.opk),
        initial,
        &SessionOptions::new(),
    )
    .unwrap()
    .session
}

/// Handshake complete, and Alice has a sending chain Bob is receiving on.
fn ours_established(seed: u64) -> (Session, Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let p = parties(&mut rng);
    let mut alice =
        Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng).unwrap();
    let initial = alice.encrypt(b"hello", &mut rng).unwrap();
    let mut bob = respond(&p, &initial);
    let reply = bob.encrypt(b"hi", &mut rng).unwrap();
    alice.decrypt(&reply).unwrap();
    let first = alice.encrypt(b"first on the chain", &mut rng).unwrap();
    bob.decrypt(&first).unwrap();
    (alice, bob, rng)
}

// ---------------------------------------------------------------------------------------
// vodozemac.
// ---------------------------------------------------------------------------------------

fn one_time_key(account: &mut Account) -> Curve25519PublicKey {
    account.generate_one_time_keys(1).created[0]
}

fn prekey_message(message: OlmMessage) -> PreKeyMessage {
    match message {
        OlmMessage::PreKey(m) => m,
        OlmMessage::Normal(_) => panic!("expected a pre-key message"),
    }
}

/// The same point as `ours_established`.
fn olm_established() -> (vodozemac::olm::Session, vodozemac::olm::Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    let otk = one_time_key(&mut bob);
    let mut a = alice
        .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
        .unwrap();
    let initial = prekey_message(a.encrypt(b"hello").unwrap());
    let mut b = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &initial)
        .unwrap()
        .session;
    let reply = b.encrypt(b"hi").unwrap();
    a.decrypt(&reply).unwrap();
    let first = a.encrypt(b"first on the chain").unwrap();
    b.decrypt(&first).unwrap();
    (a, b)
}

fn olm_send(session: &mut vodozemac::olm::Session, pt: &[u8]) -> (usize, Vec<u8>) {
    session.encrypt(pt).unwrap().to_parts()
}

fn olm_receive(session: &mut vodozemac::olm::Session, wire: &(usize, Vec<u8>)) -> Vec<u8> {
    let message = OlmMessage::from_parts(wire.0, &wire.1).unwrap();
    session.decrypt(&message).unwrap()
}

// ---------------------------------------------------------------------------------------
// Workloads.
// ---------------------------------------------------------------------------------------

fn batch(size: usize) -> BatchSize {
    if size > 1024 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    }
}

fn handshake(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let p = parties(&mut rng);
    let alice = Account::new();
    let bob = RefCell::new(Account::new());
    let otk = one_time_key(&mut bob.borrow_mut());
    let bob_identity = bob.borrow().curve25519_key();

    let mut g = Group::new(c, "initiate");
    g.bench("ours", |b| {
        b.iter_batched(
            || (),
            |()| Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench("vodozemac", |b| {
        b.iter_batched(
            || (),
            |()| {
                alice
                    .create_outbound_session(SessionConfig::version_1(), bob_identity, otk)
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();

    let mut g = Group::new(c, "initiate_verified");
    let bob_signing = bob.borrow().ed25519_key();
    let signature = bob.borrow().sign(otk.as_bytes());
    g.bench("ours", |b| {
        b.iter_batched(
            || (),
            |()| Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng).unwrap(),
            BatchSize::SmallInput,
        );
    });
    g.bench("vodozemac", |b| {
        b.iter_batched(
            || (),
            |()| {
                bob_signing.verify(otk.as_bytes(), &signature).unwrap();
                alice
                    .create_outbound_session(SessionConfig::version_1(), bob_identity, otk)
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();

    // Accepting consumes the one-time key, so each vodozemac iteration gets a fresh one
    // (generated in the untimed setup). Ours does not consume its prekeys (the app's
    // `LocalDevice` does), so it accepts the same message every time.
    let mut g = Group::new(c, "respond");
    let initial = Session::initiate(&p.alice, &p.bundle, &SessionOptions::new(), &mut rng)
        .unwrap()
        .encrypt(&[0x5au8; SMALL], &mut rng)
        .unwrap();
    g.bench("ours", |b| {
        b.iter_batched(|| (), |()| respond(&p, &initial), BatchSize::PerIteration);
    });
    let alice_identity = alice.curve25519_key();
    g.bench("vodozemac", |b| {
        b.iter_batched(
            || {
                let otk = one_time_key(&mut bob.borrow_mut());
                let mut session = alice
                    .create_outbound_session(SessionConfig::version_1(), bob_identity, otk)
                    .unwrap();
                prekey_message(session.encrypt([0x5au8; SMALL]).unwrap()).to_bytes()
            },
            |bytes| {
                let message = PreKeyMessage::from_bytes(&bytes).unwrap();
                bob.borrow_mut()
                    .create_inbound_session(SessionConfig::version_1(), alice_identity, &message)
                    .unwrap()
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn messages(c: &mut Criterion) {
    let mut g = Group::new(c, "encrypt");
    for size in SIZES {
        let pt = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let (mut alice, _, mut rng) = ours_established(2);
        g.bench_param("ours", size, |b| {
            b.iter_batched(
                || (),
                |()| alice.encrypt(&pt, &mut rng).unwrap(),
                batch(size),
            );
        });
        let (mut alice, _) = olm_established();
        g.bench_param("vodozemac", size, |b| {
            b.iter_batched(|| (), |()| olm_send(&mut alice, &pt), batch(size));
        });
    }
    g.finish();

    let mut g = Group::new(c, "decrypt");
    for size in SIZES {
        let pt = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let (mut alice, mut bob, mut rng) = ours_established(3);
        g.bench_param("ours", size, |b| {
            b.iter_batched(
                || alice.encrypt(&pt, &mut rng).unwrap(),
                |m| bob.decrypt(&m).unwrap(),
                batch(size),
            );
        });
        let (mut alice, mut bob) = olm_established();
        g.bench_param("vodozemac", size, |b| {
            b.iter_batched(
                || olm_send(&mut alice, &pt),
                |m| olm_receive(&mut bob, &m),
                batch(size),
            );
        });
    }
    g.finish();

    let mut g = Group::new(c, "encrypt_decrypt");
    for size in SIZES {
        let pt = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let (mut alice, mut bob, mut rng) = ours_established(4);
        g.bench_param("ours", size, |b| {
            b.iter_batched(
                || (),
                |()| bob.decrypt(&alice.encrypt(&pt, &mut rng).unwrap()).unwrap(),
                batch(size),
            );
        });
        let (mut alice, mut bob) = olm_established();
        g.bench_param("vodozemac", size, |b| {
            b.iter_batched(
                || (),
                |()| olm_receive(&mut bob, &olm_send(&mut alice, &pt)),
                batch(size),
            );
        });
    }
    g.finish();
}

/// Turns alternate, so every message is a DH ratchet step on both sides. One iteration is
/// one message, encrypted and decrypted.
fn ping_pong(c: &mut Criterion) {
    let pt = [0x5au8; SMALL];
    let mut g = Group::new(c, "ping_pong");
    let (mut alice, mut bob, mut rng) = ours_established(5);
    let mut bobs_turn = true;
    g.bench("ours", |b| {
        b.iter_batched(
            || (),
            |()| {
                let (from, to) = if bobs_turn {
                    (&mut bob, &mut alice)
                } else {
                    (&mut alice, &mut bob)
                };
                bobs_turn = !bobs_turn;
                to.decrypt(&from.encrypt(&pt, &mut rng).unwrap()).unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    let (mut alice, mut bob) = olm_established();
    let mut bobs_turn = true;
    g.bench("vodozemac", |b| {
        b.iter_batched(
            || (),
            |()| {
                let (from, to) = if bobs_turn {
                    (&mut bob, &mut alice)
                } else {
                    (&mut alice, &mut bob)
                };
                bobs_turn = !bobs_turn;
                olm_receive(to, &olm_send(from, &pt))
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------

/// `(workload, group, size, target for ours / vodozemac)`.
const ROWS: &[(&str, &str, Option<usize>, Option<f64>)] = &[
    ("initiate (outbound session)", "initiate", None, None),
    (
        "initiate, signature checked",
        "initiate_verified",
        None,
        None,
    ),
    ("respond (inbound session)", "respond", None, None),
    ("encrypt 64 B", "encrypt", Some(64), None),
    ("encrypt 1 KiB", "encrypt", Some(1024), None),
    ("encrypt 16 KiB", "encrypt", Some(16384), None),
    ("encrypt 64 KiB", "encrypt", Some(65536), None),
    ("decrypt 64 B", "decrypt", Some(64), None),
    ("decrypt 1 KiB", "decrypt", Some(1024), None),
    ("decrypt 16 KiB", "decrypt", Some(16384), None),
    ("decrypt 64 KiB", "decrypt", Some(65536), None),
    (
        "encrypt+decrypt 64 B",
        "encrypt_decrypt",
        Some(64),
        Some(0.2),
    ),
    ("encrypt+decrypt 1 KiB", "encrypt_decrypt", Some(1024), None),
    (
        "encrypt+decrypt 16 KiB",
        "encrypt_decrypt",
        Some(16384),
        None,
    ),
    (
        "encrypt+decrypt 64 KiB",
        "encrypt_decrypt",
        Some(65536),
        Some(0.25),
    ),
    ("ping-pong, per message", "ping_pong", None, Some(1.0)),
];

/// Prints each workload's fastest sample for both libraries, `ours / vodozemac` on them (the
/// verdict is on it), and the same ratio on the medians. See `benches/ratchet.rs` and
/// BENCHMARKS.md for why the fastest sample.
fn report() {
    let samples = samples();
    let keep = sample_size();
    let mut lines = Vec::new();
    for (name, group, size, target) in ROWS {
        let stats = |who: &str| {
            let id = size.map_or(format!("{group}/{who}"), |s| format!("{group}/{who}/{s}"));
            fastest_and_median(samples.get(&id)?, keep)
        };
        let (Some(ours), Some(theirs)) = (stats("ours"), stats("vodozemac")) else {
            continue;
        };
        let ratio = ours.0 / theirs.0;
        let verdict = match target {
            Some(t) if ratio <= *t => format!("<= {t:.2}: met"),
            Some(t) => format!("<= {t:.2}: NOT met"),
            None => String::new(),
        };
        lines.push(format!(
            "{name:<28} {:>11} {:>11} {ratio:>7.3} {:>7.2}x {:>9.3}  {verdict}",
            time(ours.0),
            time(theirs.0),
            theirs.0 / ours.0,
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
        "{:<28} {:>11} {:>11} {:>7} {:>8} {:>9}  target (on the fastest)",
        "workload", "ours", "vodozemac", "ours/vz", "speedup", "median o/v"
    );
    for line in lines {
        println!("{line}");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    handshake(&mut c);
    messages(&mut c);
    ping_pong(&mut c);
    c.final_summary();
    report();
    let measured = {
        let samples = samples();
        ROUND_TRIGGERS.iter().any(|id| samples.contains_key(*id))
    };
    if measured {
        rounds();
    }
}

// ---------------------------------------------------------------------------------------
// Interleaved rounds (issue 19): ours and vodozemac timed milliseconds apart.
// ---------------------------------------------------------------------------------------

/// The benchmarks after which `main` runs the rounds (any of them measured in this run).
const ROUND_TRIGGERS: [&str; 6] = [
    "encrypt_decrypt/ours/64",
    "encrypt_decrypt/vodozemac/64",
    "encrypt_decrypt/ours/65536",
    "encrypt_decrypt/vodozemac/65536",
    "ping_pong/ours",
    "ping_pong/vodozemac",
];
/// Rounds after criterion's measurements.
const ROUNDS: usize = 200;
/// Operations per workload and round: 64-byte messages, 64 KiB messages, ping-pong
/// messages.
const REPS_SMALL: usize = 50;
const REPS_LARGE: usize = 3;
const REPS_PING_PONG: usize = 10;

/// Whether this build's doubleratchet uses its AWS-LC backend (this crate's `aws-lc`
/// feature), which decides the targets of issue 19 that apply.
const AWS_LC: bool = cfg!(feature = "aws-lc");

/// Six workloads in [`ROUNDS`] interleaved rounds: encrypt+decrypt of 64 B and of 64 KiB
/// on an established chain, and a ping-pong message, each ours and vodozemac's (wire to
/// wire, as the criterion benchmarks). Fresh sessions of their own; outputs are dropped
/// outside the timed parts. Prints the medians and how many times faster ours is, with
/// the targets of issue 19 for this build's backend: with the default backend 64 B at
/// least 8x; with `--features aws-lc` 64 B at least 12x, ping-pong at least 1.5x and
/// 64 KiB at least 6x.
fn rounds() {
    let small_pt = [0x5au8; SMALL];
    let large_pt = vec![0x5au8; 64 * 1024];
    let (mut sa, mut sb, mut srng) = ours_established(12);
    let (mut la, mut lb, mut lrng) = ours_established(13);
    let (mut pa, mut pb, mut prng) = ours_established(14);
    let (mut vsa, mut vsb) = olm_established();
    let (mut vla, mut vlb) = olm_established();
    let (mut vpa, mut vpb) = olm_established();
    let (mut ours_turn, mut their_turn) = (true, true);

    let mut ours_small = || {
        per_op(vec![(); REPS_SMALL], |()| {
            sb.decrypt(&sa.encrypt(&small_pt, &mut srng).unwrap())
                .unwrap()
        })
    };
    let mut olm_small = || {
        per_op(vec![(); REPS_SMALL], |()| {
            olm_receive(&mut vsb, &olm_send(&mut vsa, &small_pt))
        })
    };
    let mut ours_large = || {
        per_op(vec![(); REPS_LARGE], |()| {
            lb.decrypt(&la.encrypt(&large_pt, &mut lrng).unwrap())
                .unwrap()
        })
    };
    let mut olm_large = || {
        per_op(vec![(); REPS_LARGE], |()| {
            olm_receive(&mut vlb, &olm_send(&mut vla, &large_pt))
        })
    };
    let mut ours_ping = || {
        per_op(vec![(); REPS_PING_PONG], |()| {
            let (from, to) = if ours_turn {
                (&mut pb, &mut pa)
            } else {
                (&mut pa, &mut pb)
            };
            ours_turn = !ours_turn;
            to.decrypt(&from.encrypt(&small_pt, &mut prng).unwrap())
                .unwrap()
        })
    };
    let mut olm_ping = || {
        per_op(vec![(); REPS_PING_PONG], |()| {
            let (from, to) = if their_turn {
                (&mut vpb, &mut vpa)
            } else {
                (&mut vpa, &mut vpb)
            };
            their_turn = !their_turn;
            olm_receive(to, &olm_send(from, &small_pt))
        })
    };
    let mut workloads: [&mut dyn FnMut() -> f64; 6] = [
        &mut ours_small,
        &mut olm_small,
        &mut ours_large,
        &mut olm_large,
        &mut ours_ping,
        &mut olm_ping,
    ];
    // A few untimed rounds first (caches, branch predictors, the allocator's free lists).
    interleaved_rounds(5, &mut workloads);
    let rows = interleaved_rounds(ROUNDS, &mut workloads);
    let (small, ping, large) = if AWS_LC {
        (12.0, Some(1.5), Some(6.0))
    } else {
        (8.0, None, None)
    };
    println!(
        "\nBackend: {}; issue 19's targets for it: 64 B at least {small}x faster{}{}.",
        if AWS_LC {
            "AWS-LC (--features aws-lc)"
        } else {
            "default (RustCrypto)"
        },
        ping.map_or(String::new(), |t| format!(", ping-pong at least {t}x")),
        large.map_or(String::new(), |t| format!(", 64 KiB at least {t}x")),
    );
    report_rounds(
        "ours against vodozemac",
        &rows,
        &[
            "encrypt+decrypt 64 B, ours",
            "encrypt+decrypt 64 B, vodozemac",
            "encrypt+decrypt 64 KiB, ours",
            "encrypt+decrypt 64 KiB, vodozemac",
            "ping-pong per message, ours",
            "ping-pong per message, vodozemac",
        ],
        &[
            ("encrypt+decrypt 64 B", 0, 1, Ratio::FasterBy(Some(small))),
            ("encrypt+decrypt 64 KiB", 2, 3, Ratio::FasterBy(large)),
            ("ping-pong per message", 4, 5, Ratio::FasterBy(ping)),
        ],
    );
}
