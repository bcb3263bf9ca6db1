//! Criterion benchmarks of session records (SPEC.md §6.6): what a [`SessionRecord`] costs
//! on top of the one [`Session`] that does the work, each workload next to its *baseline*,
//! the same work on a bare session of the same state, measured in the same run.
//!
//! - `record_decrypt`: a 64-byte normal message on the record's sending session, on a bare
//!   session, a record holding only that session, and a record holding it and
//!   `DEFAULT_MAX_ARCHIVED` (40) archived sessions (the routing weighs every session, then
//!   decrypts with the one that holds the chain); every session has received one message.
//!   `record_decrypt_he`: the same in header-encrypted mode, where weighing tries to open
//!   the header with every session's header keys (`HKr`, `NHKr`); `record_decrypt_he_32`:
//!   the same with every session holding `MAX_SKIPPED_HEADER_KEYS` (32) header-key pairs of
//!   chains with skipped keys, which every session tries first (§4.8).
//! - `record_worst_case`: the work budget of §6.6 reached: a hostile normal message with a
//!   cleartext header, a fresh ratchet key, `PN = Nr + max_skip` and `N = max_skip`, that
//!   every session weighs as a new chain, so that the first `max_trials` (3) sessions each
//!   do a DH, `2 · max_skip + 1` chain steps and an AEAD open that fails; against the same
//!   message on one bare session. `record_worst_case_he`: a header-encrypted message of
//!   another session, which no header key of the 41 sessions opens (34 trial decryptions
//!   of the header in each, the record of `record_decrypt_he_32`); against one bare
//!   session.
//!
//! ```text
//! cargo bench -j2 --bench record -- --noplot    # about 75 s; then the table of ratios
//! cargo bench -j2 --bench record -- worst_case
//! ```
//!
//! The warm-up (1 s) and measurement (3 s) times are set below and can be overridden on the
//! command line (`--warm-up-time`, `--measurement-time`). As in `benches/ratchet.rs`, every
//! workload is timed by `benches/support/timing.rs`, which keeps each sample; after
//! criterion's own output `main` prints each benchmark's fastest sample and median and
//! their ratios to the baseline's, all from this run.
//!
//! The messages of `record_decrypt*` are all on one chain of the peer, so that no DH ratchet
//! step is timed: the messages of a batch are encrypted before the batch is timed (the
//! plaintexts are dropped after it), and before the chain reaches `max_skip` messages the
//! receiver replies and decrypts the first message of the peer's next chain, untimed, so
//! that every timed message has `N < max_skip` and the archived sessions always weigh it
//! the same way (as a possible new chain). The bare session, the one-session record and the
//! full record start from copies of the same states (through their storage encodings) and
//! receive the same pattern of messages. The worst cases change nothing (a failed
//! decryption leaves a session and a record as they were), so the same message is decrypted
//! again and again with nothing rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use doubleratchet::{
    Error, LocalDevice, RecordLimits, Session, SessionOptions, SessionRecord, DEFAULT_MAX_ARCHIVED,
    DEFAULT_MAX_SKIP, DEFAULT_MAX_TRIALS, MAX_SKIPPED_HEADER_KEYS,
};
use doubleratchet_test_support::record::StoredRecord;
use doubleratchet_test_support::{forge_header, header, ratchet_view};
use rand_chacha::rand_core::{SeedableRng, TryRng};
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};

// Shared with benches/ratchet.rs, which also uses `Timer::iter_batched`, `bench_param` and
// throughputs.
#[allow(dead_code)]
#[path = "support/timing.rs"]
mod timing;
use timing::{fastest_and_median, sample_size, samples, time, Group, Timer};

/// The plaintext size of every message.
const SMALL: usize = 64;
/// Sessions in a full record: the sending one and `DEFAULT_MAX_ARCHIVED` archived ones.
const SESSIONS: usize = DEFAULT_MAX_ARCHIVED as usize + 1;
/// At most this many messages are decrypted per timed batch...
const BATCH: u64 = 500;
/// ... and the peer's chain is restarted (untimed) before it would reach this many
/// messages, so that every timed message has `N < max_skip`.
const CHAIN: u64 = DEFAULT_MAX_SKIP as u64;

// ---------------------------------------------------------------------------------------
// Building the records.
// ---------------------------------------------------------------------------------------

/// Bob's record with Alice's device: `SESSIONS` sessions, each initiated by Bob (the last
/// is the sending session, the others archived, most recently made first), and Alice's
/// side of each, in the same order as the record's entries (sending first).
struct Built {
    record: SessionRecord,
    alice: Vec<Session>,
    rng: ChaCha20Rng,
}

/// How the sessions of a built record were used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Each session has received one message from Alice: its receiving chain is at
    /// `Nr = 1`, it stores no skipped key.
    Plain,
    /// The same, header-encrypted: no stored header-key pair.
    HeaderEncrypted,
    /// Header-encrypted, after `MAX_SKIPPED_HEADER_KEYS` round trips in which Bob skipped
    /// one message of each of Alice's chains: each session stores that many header-key
    /// pairs (and skipped keys), and Bob's reply was the last message.
    HeaderKeys,
}

/// Builds the record.
fn build(seed: u64, shape: Shape) -> Built {
    let header_encrypted = shape != Shape::Plain;
    let options = if header_encrypted {
        SessionOptions::new().header_encryption()
    } else {
        SessionOptions::new()
    };
    let options = &options;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let bob = LocalDevice::new(0, &mut rng).unwrap();
    let mut alice_device = LocalDevice::new(0, &mut rng).unwrap();
    let bundle = alice_device.bundle(None).unwrap();
    let mut record = SessionRecord::new(
        bob.identity_key(),
        alice_device.identity_key(),
        RecordLimits::default(),
    )
    .unwrap();
    let pt = [0x5au8; SMALL];
    let mut alice = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        record
            .initiate(&bob, &bundle, options, i as u64, &mut rng)
            .unwrap();
        let initial = record.encrypt(&pt, &mut rng).unwrap();
        let mut a = alice_device
            .accept(&initial, &SessionOptions::new())
            .unwrap()
            .session;
        if shape == Shape::HeaderKeys {
            for _ in 0..MAX_SKIPPED_HEADER_KEYS {
                let _skipped = a.encrypt(&pt, &mut rng).unwrap();
                let m = a.encrypt(&pt, &mut rng).unwrap();
                record.decrypt(&m).unwrap();
                let reply = record.encrypt(&pt, &mut rng).unwrap();
                a.decrypt(&reply).unwrap();
            }
        } else {
            let reply = a.encrypt(&pt, &mut rng).unwrap();
            record.decrypt(&reply).unwrap();
        }
        alice.push(a);
    }
    alice.reverse();
    assert_eq!(record.len(), SESSIONS);
    let stored = StoredRecord::of(&record);
    for (i, (entry, a)) in stored.entries.iter().zip(&alice).enumerate() {
        assert_eq!(stored.session(i).id(), a.id());
        let view = ratchet_view(&entry.session);
        if shape == Shape::HeaderKeys {
            assert_eq!(view.header_key_chains.len(), MAX_SKIPPED_HEADER_KEYS);
        } else {
            assert_eq!((view.nr, view.header_key_chains.len()), (1, 0));
        }
    }
    Built { record, alice, rng }
}

/// A copy of `session` (through its storage encoding).
fn copy(session: &Session) -> Session {
    Session::from_bytes(&session.to_bytes(), session.local_identity()).unwrap()
}

/// `built`'s record reduced to its sending session.
fn sending_only(record: &SessionRecord) -> SessionRecord {
    let mut stored = StoredRecord::of(record);
    stored.entries.truncate(1);
    stored.set_counts(true);
    stored.load().unwrap()
}

/// A valid X25519 public key no session has seen, drawn as the library draws key pairs.
fn fresh_ratchet_key(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rng.try_fill_bytes(&mut bytes).unwrap();
    PublicKey::from(&StaticSecret::from(bytes)).to_bytes()
}

// ---------------------------------------------------------------------------------------
// The workloads.
// ---------------------------------------------------------------------------------------

/// What receives Alice's messages: a bare session or a record (generic, so the timed loop
/// has no dispatch).
trait Receiver {
    fn encrypt(&mut self, pt: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8>;
    fn decrypt(&mut self, message: &[u8]) -> Vec<u8>;
}

impl Receiver for Session {
    fn encrypt(&mut self, pt: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        Session::encrypt(self, pt, rng).unwrap()
    }
    fn decrypt(&mut self, message: &[u8]) -> Vec<u8> {
        Session::decrypt(self, message).unwrap()
    }
}

impl Receiver for SessionRecord {
    fn encrypt(&mut self, pt: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        SessionRecord::encrypt(self, pt, rng).unwrap()
    }
    fn decrypt(&mut self, message: &[u8]) -> Vec<u8> {
        SessionRecord::decrypt(self, message).unwrap()
    }
}

/// The receiver replies and Alice starts a new chain, whose first message the receiver
/// decrypts: untimed, so that a timed message never makes a DH ratchet step.
fn restart_chain<R: Receiver>(
    receiver: &mut R,
    alice: &mut Session,
    rng: &mut ChaCha20Rng,
    pt: &[u8],
) {
    let reply = receiver.encrypt(pt, rng);
    alice.decrypt(&reply).unwrap();
    let first = alice.encrypt(pt, rng).unwrap();
    receiver.decrypt(&first);
}

/// One 64-byte message from Alice's current chain per iteration, decrypted by `receiver`;
/// see the file's documentation for the batches and the chain restarts.
fn bench_chain<R: Receiver>(
    g: &mut Group<'_>,
    name: &str,
    mut receiver: R,
    mut alice: Session,
    seed: u64,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let pt = [0x5au8; SMALL];
    restart_chain(&mut receiver, &mut alice, &mut rng, &pt);
    let mut on_chain = 1u64;
    g.bench(name, |b: &mut Timer<'_, '_>| {
        b.iter_custom(|iters| {
            let per_batch = iters.div_ceil(10).clamp(1, BATCH);
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_batch);
                if on_chain + n >= CHAIN {
                    restart_chain(&mut receiver, &mut alice, &mut rng, &pt);
                    on_chain = 1;
                }
                let messages: Vec<Vec<u8>> = (0..n)
                    .map(|_| alice.encrypt(&pt, &mut rng).unwrap())
                    .collect();
                let mut outputs = Vec::with_capacity(messages.len());
                let start = Instant::now();
                for m in &messages {
                    outputs.push(receiver.decrypt(black_box(m)));
                }
                total += start.elapsed();
                drop(black_box(outputs));
                on_chain += n;
                left -= n;
            }
            total
        });
    });
}

/// `record_decrypt` (plain) or `record_decrypt_he*`: the sending session's next message on
/// a bare session, a one-session record and the full record.
fn decrypt_group(c: &mut Criterion, group: &'static str, built: &Built, seed: u64) {
    let sending = built.record.sending_session().unwrap();
    let alice = &built.alice[0];
    let mut g = Group::new(c, group);
    bench_chain(&mut g, "session", copy(sending), copy(alice), seed);
    bench_chain(
        &mut g,
        "record_1",
        sending_only(&built.record),
        copy(alice),
        seed,
    );
    let full = SessionRecord::from_bytes(&built.record.to_bytes()).unwrap();
    bench_chain(&mut g, "record_41", full, copy(alice), seed);
    g.finish();
}

/// The hostile message of `record_worst_case`: a real message of Alice's (so its body is a
/// real 64-byte message's) with a fresh ratchet key, `PN = 1 + max_skip` (every session's
/// receiving chain is at `Nr = 1`) and `N = max_skip`. Checks that it is exactly at the
/// bounds, that every session of the record, as a bare session, fails on it with
/// `DecryptionFailed` after doing the work (not `TooFarAhead` before it), and that the
/// record fails with `DecryptionFailed` and stays as it was.
fn hostile_message(built: &mut Built) -> Vec<u8> {
    let mut alice = copy(&built.alice[0]);
    let template = alice.encrypt(&[0x5au8; SMALL], &mut built.rng).unwrap();
    let dh = fresh_ratchet_key(&mut built.rng);
    let max_skip = DEFAULT_MAX_SKIP;
    let forge = |pn: u32, n: u32| forge_header(&template, Some(dh), Some(pn), Some(n));
    let hostile = forge(1 + max_skip, max_skip);
    assert_eq!(header(&hostile), (dh, max_skip, 1 + max_skip));
    let stored = StoredRecord::of(&built.record);
    for (i, mut session) in stored.sessions().into_iter().enumerate() {
        assert_eq!(
            session.limits().max_skip,
            max_skip,
            "session {i}: default limits"
        );
        assert_eq!(
            session.decrypt(&hostile),
            Err(Error::DecryptionFailed),
            "session {i}"
        );
        // One more message on either chain is beyond the bound, refused before any work.
        for beyond in [
            forge(2 + max_skip, max_skip),
            forge(1 + max_skip, max_skip + 1),
        ] {
            assert_eq!(session.decrypt(&beyond), Err(Error::TooFarAhead));
        }
    }
    let before = built.record.to_bytes();
    assert_eq!(built.record.limits().max_trials, DEFAULT_MAX_TRIALS);
    assert_eq!(built.record.decrypt(&hostile), Err(Error::DecryptionFailed));
    assert_eq!(&*built.record.to_bytes(), &*before);
    hostile
}

/// `record_worst_case`: the hostile message on one bare session and on the full record.
fn worst_case(c: &mut Criterion, built: &mut Built) {
    let hostile = hostile_message(built);
    let mut session = copy(built.record.sending_session().unwrap());
    let mut record = SessionRecord::from_bytes(&built.record.to_bytes()).unwrap();
    let mut g = Group::new(c, "record_worst_case");
    g.bench("session", |b| {
        b.iter(|| session.decrypt(black_box(&hostile)).unwrap_err());
    });
    g.bench("record_41", |b| {
        b.iter(|| record.decrypt(black_box(&hostile)).unwrap_err());
    });
    g.finish();
}

/// `record_worst_case_he`: a header-encrypted normal message of a session the record does
/// not hold (made by the same two devices' kind of session, from another seed), which no
/// header key opens: each session tries its 32 stored header-key pairs, `HKr` and `NHKr`.
fn worst_case_he(c: &mut Criterion, built: &Built) {
    let stranger = stranger_he(99);
    let stored = StoredRecord::of(&built.record);
    for (i, mut session) in stored.sessions().into_iter().enumerate() {
        assert_eq!(
            session.decrypt(&stranger),
            Err(Error::DecryptionFailed),
            "session {i}"
        );
    }
    let mut session = copy(built.record.sending_session().unwrap());
    let mut record = SessionRecord::from_bytes(&built.record.to_bytes()).unwrap();
    let before = record.to_bytes();
    assert_eq!(record.decrypt(&stranger), Err(Error::DecryptionFailed));
    assert_eq!(&*record.to_bytes(), &*before);
    let mut g = Group::new(c, "record_worst_case_he");
    g.bench("session", |b| {
        b.iter(|| session.decrypt(black_box(&stranger)).unwrap_err());
    });
    g.bench("record_41", |b| {
        b.iter(|| record.decrypt(black_box(&stranger)).unwrap_err());
    });
    g.finish();
}

/// A normal header-encrypted message (type `0x04`) of a session between two other devices.
fn stranger_he(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let options = SessionOptions::new().header_encryption();
    let carol = LocalDevice::new(0, &mut rng).unwrap();
    let mut dave = LocalDevice::new(0, &mut rng).unwrap();
    let mut c = carol
        .initiate(&dave.bundle(None).unwrap(), &options, &mut rng)
        .unwrap();
    let initial = c.encrypt(b"hello", &mut rng).unwrap();
    let mut d = dave.accept(&initial, &options).unwrap().session;
    let m = d.encrypt(&[0x5au8; SMALL], &mut rng).unwrap();
    assert_eq!(m[1], 0x04, "a normal header-encrypted message");
    m
}

// ---------------------------------------------------------------------------------------
// The report: ratios from this run's samples.
// ---------------------------------------------------------------------------------------

/// `(workload, benchmark, its baseline)`.
const ROWS: &[(&str, &str, &str)] = &[
    (
        "decrypt, record of 1",
        "record_decrypt/record_1",
        "record_decrypt/session",
    ),
    (
        "decrypt, record of 41",
        "record_decrypt/record_41",
        "record_decrypt/session",
    ),
    (
        "HE decrypt, record of 1",
        "record_decrypt_he/record_1",
        "record_decrypt_he/session",
    ),
    (
        "HE decrypt, record of 41",
        "record_decrypt_he/record_41",
        "record_decrypt_he/session",
    ),
    (
        "HE 32 keys, record of 1",
        "record_decrypt_he_32/record_1",
        "record_decrypt_he_32/session",
    ),
    (
        "HE 32 keys, record of 41",
        "record_decrypt_he_32/record_41",
        "record_decrypt_he_32/session",
    ),
    (
        "worst case, record of 41",
        "record_worst_case/record_41",
        "record_worst_case/session",
    ),
    (
        "HE worst case, record of 41",
        "record_worst_case_he/record_41",
        "record_worst_case_he/session",
    ),
];

/// Prints, for every benchmark of this run that has a row, its fastest sample and median,
/// its baseline's, and their ratios.
fn report() {
    let samples = samples();
    let keep = sample_size();
    let stats = |id: &str| fastest_and_median(samples.get(id)?, keep);
    let mut lines = Vec::new();
    for (name, ours, baseline) in ROWS {
        let (Some((ours_fast, ours_median)), Some((base_fast, base_median))) =
            (stats(ours), stats(baseline))
        else {
            continue;
        };
        lines.push(format!(
            "{name:<28} {:>11} {:>11} {:>8.2}x {:>11} {:>11} {:>8.2}x",
            time(ours_fast),
            time(base_fast),
            ours_fast / base_fast,
            time(ours_median),
            time(base_median),
            ours_median / base_median,
        ));
    }
    if lines.is_empty() {
        println!("\nratio report: this run measured no workload with its baseline");
        return;
    }
    println!(
        "\nThis run's samples (the last {keep} of each benchmark); ratios are record / bare \
         session:\n"
    );
    println!(
        "{:<28} {:>11} {:>11} {:>9} {:>11} {:>11} {:>9}",
        "workload", "fastest", "baseline", "ratio", "median", "baseline", "ratio"
    );
    for line in lines {
        println!("{line}");
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut plain = build(1, Shape::Plain);
    let he = build(2, Shape::HeaderEncrypted);
    let he_keys = build(5, Shape::HeaderKeys);
    decrypt_group(&mut c, "record_decrypt", &plain, 3);
    decrypt_group(&mut c, "record_decrypt_he", &he, 4);
    decrypt_group(&mut c, "record_decrypt_he_32", &he_keys, 6);
    worst_case(&mut c, &mut plain);
    worst_case_he(&mut c, &he_keys);
    c.final_summary();
    report();
}
