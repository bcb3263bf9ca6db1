//! One device at scale (issue 19): a device keeping 10,000 contacts, each with a session
//! record (SPEC.md §6.6) sealed under the app's [`StorageKey`] (§7.6) in a map keyed by
//! contact, as an app keeps them in a table, receives a normal message from one of them:
//! look the sealed blob up, open it, decrypt the message with the record, seal the record
//! again and store it back. Measured: the time per received message, and apart, in the
//! same run, the time of each step (open, decrypt, seal); and, with a counting global
//! allocator, the size of the stored data and the heap the device uses.
//!
//! ```text
//! cargo bench -j2 --bench scale -- --noplot    # about a minute; then the tables
//! ```
//!
//! **Setup** (untimed, its duration printed): one local device; for each of the 10,000
//! contacts, a device of its own (its own identity and signed prekeys), to whose bundle the
//! local device starts a session in a new record (`SessionRecord::initiate`, X3DH without a
//! one-time prekey, no header encryption, default limits); the contact accepts the initial
//! message and replies, and the record decrypts the reply, so that every session is
//! established. The record is sealed with the contact's row key as context
//! (`record/<contact>/1`, the shape of `examples/messenger`), and the contact's side of the
//! session stays outside the map, as the contact's own device.
//!
//! **Messages**: the contacts take turns (round robin over all 10,000), so that every
//! received message is for another contact than the last thousands of messages: the blob
//! and the map's slot are not in a cache warmed by the previous message. Each message is
//! the contact's next message on its current chain (64 bytes of plaintext), so no message
//! makes a DH ratchet step (a message starting a new chain costs one X25519 key agreement
//! more). The messages of a batch are encrypted before the batch is timed, and the
//! plaintexts dropped after it.
//!
//! **Timed** (criterion group `scale`, timed by `benches/support/timing.rs`):
//! - `receive`: the whole receipt of one message, as `receive` below does it;
//! - `open`, `decrypt`, `seal`: the same receipt, timing only one step of it (with
//!   `Instant::now` around the step): `open` = the lookup and `StorageKey::open`;
//!   `decrypt` = `SessionRecord::decrypt`; `seal` = `StorageKey::seal`, the insertion into
//!   the map (dropping the old blob) and the dropping (zeroizing) of the record.
//!
//! **Heap** (before the timed part, with the counting allocator of
//! `doubleratchet_test_support::heap`: the bench crate forbids `unsafe` code, which a
//! `GlobalAlloc` implementation needs, so the allocator lives in the test-support crate and
//! this file only installs it): the bytes of the sealed blobs, the heap the map holds (the
//! heap a clone of it takes), the heap in use after setup, and, over one receipt per
//! contact, the peak heap, and for each message the peak's increase above the heap in use
//! before it and the number of allocations. The counting is then paused for the timed part
//! (the allocator still loads one flag per allocation and deallocation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use doubleratchet::{
    LocalDevice, RecordLimits, Session, SessionOptions, SessionRecord, StorageKey,
};
use doubleratchet_test_support::heap::CountingAlloc;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

// Shared with benches/ratchet.rs and benches/record.rs.
#[allow(dead_code)]
#[path = "support/timing.rs"]
mod timing;
use timing::{fastest_and_median, sample_size, samples, time, Group, Timer};

#[global_allocator]
static HEAP: CountingAlloc = CountingAlloc::new();

/// The contacts of the device.
const CONTACTS: u32 = 10_000;
/// The plaintext size of every message.
const SMALL: usize = 64;
/// At most this many messages per timed batch.
const BATCH: u64 = 500;
/// The command that runs this bench, printed with its output.
const COMMAND: &str = "cargo bench -j2 --bench scale -- --noplot";

// ---------------------------------------------------------------------------------------
// The device.
// ---------------------------------------------------------------------------------------

/// A contact, as the app's database keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ContactId(u32);

/// A row key (the sealing context), written on the stack.
struct RowKey {
    bytes: [u8; 32],
    len: usize,
}

impl RowKey {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl ContactId {
    /// The row key of the contact's record (its device 1): `record/<contact>/1`.
    fn row_key(self) -> RowKey {
        let mut bytes = [0u8; 32];
        let mut out = &mut bytes[..];
        write!(out, "record/{}/1", self.0).unwrap();
        let len = 32 - out.len();
        RowKey { bytes, len }
    }
}

/// The local device's state that receiving touches: the storage key and the sealed
/// records, by contact.
struct Device {
    key: StorageKey,
    records: HashMap<ContactId, Vec<u8>>,
    /// The RNG that draws the sealing nonces.
    rng: ChaCha20Rng,
}

/// The steps of a receipt, for [`Device::receive_with`]'s marks.
const OPENED: usize = 1;
const DECRYPTED: usize = 2;
const SEALED: usize = 3;

impl Device {
    /// Receives `message` from `contact`: returns the plaintext.
    fn receive(&mut self, contact: ContactId, message: &[u8]) -> Vec<u8> {
        self.receive_with(contact, message, |_| {})
    }

    /// [`Device::receive`], calling `mark(0)` before the first step and `mark(step)` after
    /// each ([`OPENED`], [`DECRYPTED`], [`SEALED`]).
    #[inline(always)]
    fn receive_with(
        &mut self,
        contact: ContactId,
        message: &[u8],
        mut mark: impl FnMut(usize),
    ) -> Vec<u8> {
        mark(0);
        let context = contact.row_key();
        let sealed = self.records.get(&contact).expect("a stored record");
        let mut record: SessionRecord = self.key.open(sealed, context.as_bytes()).unwrap();
        mark(OPENED);
        let plaintext = record.decrypt(message).unwrap();
        mark(DECRYPTED);
        let sealed = self
            .key
            .seal(&record, context.as_bytes(), &mut self.rng)
            .unwrap();
        self.records.insert(contact, sealed);
        drop(record);
        mark(SEALED);
        plaintext
    }
}

/// The contacts' side: each contact's session with the device, and whose turn is next.
struct Contacts {
    sessions: Vec<Session>,
    next: u32,
    rng: ChaCha20Rng,
}

impl Contacts {
    /// The next `n` messages, from the contacts in turn.
    fn messages(&mut self, n: u64) -> Vec<(ContactId, Vec<u8>)> {
        let pt = [0x5au8; SMALL];
        (0..n)
            .map(|_| {
                let contact = ContactId(self.next);
                self.next = (self.next + 1) % CONTACTS;
                let session = &mut self.sessions[contact.0 as usize];
                (contact, session.encrypt(&pt, &mut self.rng).unwrap())
            })
            .collect()
    }
}

/// The device and its contacts, every session established (see the file's documentation).
fn setup(seed: u64) -> (Device, Contacts) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let local = LocalDevice::new(0, &mut rng).unwrap();
    let key = StorageKey::generate(&mut rng).unwrap();
    let options = SessionOptions::new();
    let mut records = HashMap::new();
    let mut sessions = Vec::with_capacity(CONTACTS as usize);
    for i in 0..CONTACTS {
        let contact = ContactId(i);
        let mut theirs = LocalDevice::new(0, &mut rng).unwrap();
        let bundle = theirs.bundle(None).unwrap();
        let mut record = SessionRecord::new(
            local.identity_key(),
            theirs.identity_key(),
            RecordLimits::default(),
        )
        .unwrap();
        record
            .initiate(&local, &bundle, &options, 0, &mut rng)
            .unwrap();
        let initial = record.encrypt(b"hello", &mut rng).unwrap();
        let mut session = theirs.accept(&initial, &options).unwrap().session;
        let reply = session.encrypt(b"hello to you", &mut rng).unwrap();
        assert_eq!(record.decrypt(&reply).unwrap(), b"hello to you");
        let sealed = key
            .seal(&record, contact.row_key().as_bytes(), &mut rng)
            .unwrap();
        records.insert(contact, sealed);
        sessions.push(session);
    }
    let device = Device {
        key,
        records,
        rng: ChaCha20Rng::seed_from_u64(seed + 1),
    };
    let contacts = Contacts {
        sessions,
        next: 0,
        rng: ChaCha20Rng::seed_from_u64(seed + 2),
    };
    (device, contacts)
}

// ---------------------------------------------------------------------------------------
// The heap.
// ---------------------------------------------------------------------------------------

/// A byte count, with its unit.
fn bytes(n: f64) -> String {
    if n.abs() < 10_000.0 {
        format!("{n:.0} B")
    } else if n.abs() < 10e6 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.2} MiB", n / (1024.0 * 1024.0))
    }
}

/// The minimum, median and maximum of `values`.
fn spread<T: Copy + Ord>(values: &mut [T]) -> (T, T, T) {
    values.sort_unstable();
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

/// Measures and prints the stored data and the heap (see the file's documentation), one
/// receipt per contact.
fn heap_report(device: &mut Device, contacts: &mut Contacts) {
    assert!(HEAP.is_counting());
    let after_setup = HEAP.stats();
    let lengths: Vec<usize> = device.records.values().map(Vec::len).collect();
    let total: usize = lengths.iter().sum();
    let (shortest, longest) = (lengths.iter().min().unwrap(), lengths.iter().max().unwrap());
    let before_clone = HEAP.reset_peak();
    let copy = device.records.clone();
    let map_heap = HEAP.stats().current - before_clone.current;
    drop(copy);

    // One message per contact, encrypted before the round, and the room for the figures.
    let messages = contacts.messages(u64::from(CONTACTS));
    let count = messages.len();
    let mut peak_increase: Vec<isize> = Vec::with_capacity(count);
    let mut allocations: Vec<u64> = Vec::with_capacity(count);
    let mut allocated: Vec<u64> = Vec::with_capacity(count);
    let mut step_allocations: [Vec<u64>; 3] = std::array::from_fn(|_| Vec::with_capacity(count));
    let start = HEAP.reset_peak();
    let mut steady_peak = start.peak;
    for (contact, message) in &messages {
        let mut marks = [HEAP.reset_peak(); 4];
        let plaintext = device.receive_with(*contact, message, |step| marks[step] = HEAP.stats());
        drop(black_box(plaintext));
        let end = HEAP.stats();
        steady_peak = steady_peak.max(end.peak);
        peak_increase.push(end.peak - marks[0].current);
        allocations.push(end.allocations - marks[0].allocations);
        allocated.push(end.allocated - marks[0].allocated);
        for (step, counts) in step_allocations.iter_mut().enumerate() {
            counts.push(marks[step + 1].allocations - marks[step].allocations);
        }
    }
    drop(messages);
    let end = HEAP.stats();

    let n = lengths.len();
    println!("\nStored data and heap ({COMMAND}; counting allocator, before the timed part):\n");
    println!(
        "sealed records in the map       {n} blobs, {} in all, {:.1} B per contact \
         (shortest {shortest} B, longest {longest} B)",
        bytes(total as f64),
        total as f64 / n as f64,
    );
    println!(
        "heap held by the map            {} ({:.1} B per contact: blobs and table)",
        bytes(map_heap as f64),
        map_heap as f64 / n as f64
    );
    println!(
        "heap in use after setup         {} (the map, the contacts' 10,000 sessions kept \
         by the bench, the allocator's and criterion's own)",
        bytes(after_setup.current as f64)
    );
    println!(
        "steady state, {CONTACTS} receipts   heap in use {} before ({} more than after \
         setup: the messages to receive and the room for these figures), {} after the \
         messages are dropped ({:+.0} B), peak {}",
        bytes(start.current as f64),
        bytes((start.current - after_setup.current) as f64),
        bytes(end.current as f64),
        (end.current - after_setup.current) as f64,
        bytes(steady_peak as f64),
    );
    let (lo, median, hi) = spread(&mut peak_increase);
    println!(
        "peak increase per message       {} median (min {}, max {}) above the heap in \
         use before it",
        bytes(median as f64),
        bytes(lo as f64),
        bytes(hi as f64)
    );
    let (lo, median, hi) = spread(&mut allocations);
    let opened = spread(&mut step_allocations[0]).1;
    let decrypted = spread(&mut step_allocations[1]).1;
    let sealed = spread(&mut step_allocations[2]).1;
    println!(
        "allocations per message         {median} median (min {lo}, max {hi}): open \
         {opened}, decrypt {decrypted}, seal {sealed} (medians)"
    );
    let (lo, median, hi) = spread(&mut allocated);
    println!(
        "bytes allocated per message     {} median (min {}, max {}), all freed but the \
         new blob and the plaintext",
        bytes(median as f64),
        bytes(lo as f64),
        bytes(hi as f64)
    );
}

// ---------------------------------------------------------------------------------------
// The timed part.
// ---------------------------------------------------------------------------------------

/// `iters` receipts, from the contacts in turn, in batches encrypted before they are
/// timed; `timed` receives one message and returns the time it counts.
fn bench_messages(
    b: &mut Timer<'_, '_>,
    device: &mut Device,
    contacts: &mut Contacts,
    mut timed: impl FnMut(&mut Device, ContactId, &[u8], &mut Vec<Vec<u8>>) -> Duration,
) {
    b.iter_custom(|iters| {
        let per_batch = iters.div_ceil(10).clamp(1, BATCH);
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(per_batch);
            let messages = contacts.messages(n);
            let mut outputs = Vec::with_capacity(messages.len());
            for (contact, message) in &messages {
                total += timed(device, *contact, black_box(message), &mut outputs);
            }
            drop(black_box(outputs));
            left -= n;
        }
        total
    });
}

/// The criterion group `scale`.
fn timed_group(c: &mut Criterion, device: &mut Device, contacts: &mut Contacts) {
    let mut g = Group::new(c, "scale");
    g.throughput(Throughput::Elements(1));
    // The whole receipt: one `Instant` per batch.
    g.bench("receive", |b| {
        b.iter_custom(|iters| {
            let per_batch = iters.div_ceil(10).clamp(1, BATCH);
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(per_batch);
                let messages = contacts.messages(n);
                let mut outputs = Vec::with_capacity(messages.len());
                let start = Instant::now();
                for (contact, message) in &messages {
                    outputs.push(device.receive(*contact, black_box(message)));
                }
                total += start.elapsed();
                drop(black_box(outputs));
                left -= n;
            }
            total
        });
    });
    // Each step apart: the same receipt, with an `Instant` at each mark.
    for (name, step) in [("open", OPENED), ("decrypt", DECRYPTED), ("seal", SEALED)] {
        g.bench(name, |b| {
            bench_messages(b, device, contacts, |device, contact, message, outputs| {
                let mut at = [None; 4];
                let plaintext =
                    device.receive_with(contact, message, |i| at[i] = Some(Instant::now()));
                outputs.push(plaintext);
                at[step].unwrap() - at[step - 1].unwrap()
            });
        });
    }
    g.finish();
}

/// Prints each benchmark's fastest sample and median per message, and each step's share of
/// the whole receipt's median.
fn time_report() {
    let samples = samples();
    let keep = sample_size();
    let stats = |id: &str| fastest_and_median(samples.get(id)?, keep);
    let Some((_, whole)) = stats("scale/receive") else {
        println!("\ntime report: this run did not measure scale/receive");
        return;
    };
    println!(
        "\nTime per received message ({COMMAND}; {CONTACTS} sealed records; the last {keep} \
         samples of each benchmark):\n"
    );
    println!(
        "{:<34} {:>11} {:>11} {:>10}",
        "benchmark", "fastest", "median", "of receive"
    );
    let mut sum = (0.0, 0.0);
    for (id, name) in [
        ("scale/receive", "receive (whole)"),
        ("scale/open", "  open (lookup, open)"),
        ("scale/decrypt", "  decrypt (SessionRecord::decrypt)"),
        ("scale/seal", "  seal (seal, store, drop)"),
    ] {
        let Some((fastest, median)) = stats(id) else {
            continue;
        };
        if id != "scale/receive" {
            sum = (sum.0 + fastest, sum.1 + median);
        }
        println!(
            "{name:<34} {:>11} {:>11} {:>9.0}%",
            time(fastest),
            time(median),
            100.0 * median / whole
        );
    }
    if sum.1 > 0.0 {
        println!(
            "{:<34} {:>11} {:>11} {:>9.0}%",
            "  sum of the three",
            time(sum.0),
            time(sum.1),
            100.0 * sum.1 / whole
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    println!("{COMMAND}");
    let start = Instant::now();
    let (mut device, mut contacts) = setup(19);
    println!(
        "setup: {CONTACTS} contacts, each with its own identity and an established session, \
         in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    heap_report(&mut device, &mut contacts);
    HEAP.pause();
    println!();
    timed_group(&mut c, &mut device, &mut contacts);
    c.final_summary();
    time_report();
}
