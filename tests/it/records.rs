//! Session records (SPEC.md §6.3-§6.8, §7.8), through the public API:
//!
//! - simultaneous initiation with crossing, reordered, dropped and replayed traffic on
//!   random seeded schedules, in every mode (X3DH, header encryption, PQXDH): every
//!   delivered message decrypts exactly once and both sides settle on one sending session
//!   within a round trip (§6.4);
//! - the archive: least-recently-used eviction, `len()` bounded, an evicted session's late
//!   message refused without change, and the record-wide skipped-key bound (§6.7);
//! - the work budget of §6.6 under a hostile flood (the record unchanged by every refused
//!   input), the trial bound's order (sending, then archived most recently used first), and
//!   a message whose chain a session holds tried only there;
//! - decryption-error requests (§6.8): lost state, old copies, every outcome and every
//!   refusal, re-initiation, and the retired session that still decrypts but never sends;
//! - the status of an unacknowledged session (§6.7);
//! - property tests: any sequence of record operations survives storing and loading at
//!   every step with identical behaviour, and a refused input changes nothing;
//! - hostile stored records (§7.8) and sealed records (§7.6).
//!
//! Every schedule is seeded; the whole module runs in a few seconds in a debug build.

use std::collections::HashSet;

use doubleratchet::{
    Error, ErrorKind, LocalDevice, PreKeyBundle, RecordLimits, RecordStatus, ResetOutcome, Role,
    Session, SessionId, SessionOptions, SessionRecord, StorageKey, DEFAULT_MAX_ARCHIVED,
    DEFAULT_MAX_TRIALS, DEFAULT_RECORD_STORED_SKIPPED, MAX_ARCHIVED_CAP, MAX_MESSAGE_SIZE,
    MAX_RECORD_SIZE, MAX_RECORD_STORED_SKIPPED_CAP, WIRE_VERSION,
};
use doubleratchet_test_support::record::{
    Mode, StoredEntry, StoredRecord, ARCHIVED_COUNT, ENTRIES, HAS_SENDING, LAST_DECRYPTED,
    LAST_RESET, LOCAL, MAX_ARCHIVED, MAX_STORED_SKIPPED, MAX_TRIALS, REMOTE,
};
use doubleratchet_test_support::{
    below, device_of, forge_header, put_u32, rng, text, ChaCha20Rng, Party, Peer,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The record's storage encoding, to compare states byte for byte.
fn bytes(record: &SessionRecord) -> Vec<u8> {
    record.to_bytes().to_vec()
}

/// Stores and loads `record`, checking that the loaded record stores the same bytes.
#[track_caller]
fn reloaded(record: &SessionRecord) -> SessionRecord {
    let stored = record.to_bytes();
    let loaded = SessionRecord::from_bytes(&stored).unwrap();
    assert_eq!(
        loaded.to_bytes()[..],
        stored[..],
        "reloading changed the record"
    );
    loaded
}

/// A copy of `record` (through its encoding) with `limits`.
#[track_caller]
fn copy_with(record: &SessionRecord, limits: RecordLimits) -> SessionRecord {
    let mut copy = reloaded(record);
    copy.set_limits(limits).unwrap();
    copy
}

/// Asserts that `op` fails with `expected` and leaves `record` byte-identical.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    record: &mut SessionRecord,
    expected: Error,
    op: impl FnOnce(&mut SessionRecord) -> Result<T, Error>,
) {
    let before = bytes(record);
    assert_eq!(op(record).map(|_| ()), Err(expected));
    assert!(
        bytes(record) == before,
        "refused with {expected:?} but changed the record"
    );
}

/// Runs `op` on `record`, which must fail and leave `record` (and `device`)
/// byte-identical; returns the error.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    record: &mut SessionRecord,
    device: &mut LocalDevice,
    op: impl FnOnce(&mut SessionRecord, &mut LocalDevice) -> Result<T, Error>,
) -> Error {
    let before = bytes(record);
    let device_before = device.to_bytes().to_vec();
    let result = op(record, device);
    let Err(e) = result else {
        panic!("accepted: {result:?}");
    };
    assert!(
        bytes(record) == before,
        "refused with {e:?} but changed the record"
    );
    assert!(
        device.to_bytes()[..] == device_before[..],
        "refused with {e:?} but changed the device"
    );
    e
}

/// The kinds an input from the network may be refused with by a record that has sessions:
/// never a bug, a wrong call, a retry or a reinitiation.
fn sensible(e: Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::DropMessage
            | ErrorKind::TryAnotherSession
            | ErrorKind::VerifyIdentity
            | ErrorKind::ReplenishPreKeys
    )
}

/// Alice's record with Bob, holding sessions Alice initiated, and Bob's side of each as a
/// plain [`Session`] so that a test can send on any of them.
struct Contact {
    alice: LocalDevice,
    bob: LocalDevice,
    record: SessionRecord,
    bob_sessions: Vec<Session>,
    r: ChaCha20Rng,
}

impl Contact {
    fn new(seed: u64, limits: RecordLimits) -> Contact {
        let mut r = rng(seed);
        let alice = LocalDevice::new(0, &mut r).unwrap();
        let bob = LocalDevice::new(0, &mut r).unwrap();
        let record = SessionRecord::new(alice.identity_key(), bob.identity_key(), limits).unwrap();
        assert!(record.is_empty());
        Contact {
            alice,
            bob,
            record,
            bob_sessions: Vec::new(),
            r,
        }
    }

    /// Alice initiates a session in `mode` at `now` (it becomes her sending session) and
    /// Bob accepts its first message.
    fn add(&mut self, mode: Mode, now: u64) -> SessionId {
        let bundle = mode.bundle(&mut self.bob, &mut self.r);
        let id = self
            .record
            .initiate(&self.alice, &bundle, &mode.options(), now, &mut self.r)
            .unwrap();
        assert_eq!(self.record.sending_session().unwrap().id(), id);
        assert_eq!(
            self.record.status(now),
            RecordStatus::AwaitingReply { since: now }
        );
        let first = self.record.encrypt(b"first", &mut self.r).unwrap();
        let accepted = self.bob.accept(&first, &SessionOptions::new()).unwrap();
        assert_eq!(accepted.session.id(), id);
        assert_eq!(accepted.plaintext, b"first");
        assert_eq!(
            accepted.session.is_header_encrypted(),
            mode.header_encrypted()
        );
        assert_eq!(accepted.session.is_post_quantum(), mode.post_quantum());
        self.bob_sessions.push(accepted.session);
        id
    }

    /// [`Contact::add`], then Bob replies and Alice's record decrypts the reply (on the
    /// sending session, so the order of the record does not change).
    fn add_established(&mut self, mode: Mode, now: u64) -> SessionId {
        let id = self.add(mode, now);
        let reply = self.bob_sends(id, b"reply");
        assert_eq!(self.record.decrypt(&reply).unwrap(), b"reply");
        assert_eq!(self.record.status(now), RecordStatus::Ready);
        id
    }

    /// Bob encrypts on his side of session `id`.
    fn bob_sends(&mut self, id: SessionId, plaintext: &[u8]) -> Vec<u8> {
        let session = self.bob_sessions.iter_mut().find(|s| s.id() == id).unwrap();
        session.encrypt(plaintext, &mut self.r).unwrap()
    }

    /// Where session `id` stands in the record's order: 0 for the sending session, then the
    /// archived ones most recently used first.
    fn position(&self, id: SessionId) -> usize {
        self.record.session_ids().position(|s| s == id).unwrap()
    }

    fn ids(&self) -> Vec<SessionId> {
        self.record.session_ids().collect()
    }
}

// ---------------------------------------------------------------------------------------
// Basic API
// ---------------------------------------------------------------------------------------

#[test]
fn limits_default_builders_and_caps() {
    let d = RecordLimits::default();
    assert_eq!(d.max_archived, DEFAULT_MAX_ARCHIVED);
    assert_eq!(d.max_trials, DEFAULT_MAX_TRIALS);
    assert_eq!(d.max_stored_skipped, DEFAULT_RECORD_STORED_SKIPPED);
    assert_eq!(d.unacknowledged_after, 30 * 24 * 60 * 60);
    assert_eq!(d.reset_interval, 60 * 60);
    assert_eq!(d.validate(), Ok(()));
    let l = d
        .with_max_archived(MAX_ARCHIVED_CAP)
        .with_max_trials(MAX_ARCHIVED_CAP + 1)
        .with_max_stored_skipped(MAX_RECORD_STORED_SKIPPED_CAP)
        .with_unacknowledged_after(7)
        .with_reset_interval(u64::MAX);
    assert_eq!(l.validate(), Ok(()));
    assert_eq!(
        (l.max_archived, l.max_trials, l.max_stored_skipped),
        (
            MAX_ARCHIVED_CAP,
            MAX_ARCHIVED_CAP + 1,
            MAX_RECORD_STORED_SKIPPED_CAP
        )
    );
    assert_eq!((l.unacknowledged_after, l.reset_interval), (7, u64::MAX));
    assert_eq!(d.with_max_archived(1).validate(), Ok(()));
    assert_eq!(d.with_max_stored_skipped(0).validate(), Ok(()));
    for bad in [
        d.with_max_archived(0),
        d.with_max_archived(MAX_ARCHIVED_CAP + 1),
        d.with_max_trials(0),
        d.with_max_trials(MAX_ARCHIVED_CAP + 2),
        d.with_max_stored_skipped(MAX_RECORD_STORED_SKIPPED_CAP + 1),
    ] {
        assert_eq!(bad.validate(), Err(Error::InvalidLimits), "{bad:?}");
    }
}

#[test]
fn new_record_and_misuse_is_refused_without_change() {
    let mut r = rng(1);
    let mut alice = LocalDevice::new(0, &mut r).unwrap();
    let mut bob = LocalDevice::new(0, &mut r).unwrap();
    let mut carol = LocalDevice::new(0, &mut r).unwrap();
    let limits = RecordLimits::default();
    assert_eq!(
        SessionRecord::new(alice.identity_key(), alice.identity_key(), limits).map(|_| ()),
        Err(Error::WrongRecord)
    );
    assert_eq!(
        SessionRecord::new(
            alice.identity_key(),
            bob.identity_key(),
            limits.with_max_trials(0)
        )
        .map(|_| ()),
        Err(Error::InvalidLimits)
    );
    let mut ab = SessionRecord::new(alice.identity_key(), bob.identity_key(), limits).unwrap();
    assert_eq!(ab.local_identity(), alice.identity_key());
    assert_eq!(ab.remote_identity(), bob.identity_key());
    assert_eq!(ab.limits(), limits);
    assert_eq!(
        (ab.len(), ab.is_empty(), ab.stored_skipped_keys()),
        (0, true, 0)
    );
    assert_eq!(ab.status(0), RecordStatus::NoSession);
    assert!(ab.sending_session().is_none());
    assert_eq!(ab.archive_sending_session(), None);
    let opts = SessionOptions::new();

    // An empty record: nothing to send on, no session for a normal message.
    assert_refused(&mut ab, Error::NoSession, |rec| {
        rec.encrypt(b"x", &mut rng(2))
    });
    let mut cb = SessionRecord::new(carol.identity_key(), bob.identity_key(), limits).unwrap();
    let carol_bundle = Mode::Classical.bundle(&mut carol, &mut r);
    let bob_bundle = Mode::Classical.bundle(&mut bob, &mut r);
    cb.initiate(&carol, &bob_bundle, &opts, 0, &mut r).unwrap();
    let carols_initial = cb.encrypt(b"to bob", &mut r).unwrap();
    let mut b_session = bob.accept(&carols_initial, &opts).unwrap().session;
    let normal_from_bob = b_session.encrypt(b"to carol", &mut r).unwrap();
    assert_refused(&mut ab, Error::NoSession, |rec| {
        rec.decrypt(&normal_from_bob)
    });

    // The wrong device, the wrong contact's bundle, invalid limits.
    let bob_bundle = Mode::Classical.bundle(&mut bob, &mut r);
    assert_refused(&mut ab, Error::WrongRecord, |rec| {
        rec.initiate(&carol, &bob_bundle, &opts, 0, &mut rng(3))
    });
    assert_refused(&mut ab, Error::IdentityMismatch, |rec| {
        rec.initiate(&alice, &carol_bundle, &opts, 0, &mut rng(3))
    });
    assert_refused(&mut ab, Error::InvalidLimits, |rec| {
        rec.set_limits(limits.with_max_archived(MAX_ARCHIVED_CAP + 1))
    });
    // A session option refuses the bundle: nothing is added.
    assert_refused(&mut ab, Error::PostQuantumRequired, |rec| {
        let options = SessionOptions::new().require_post_quantum();
        rec.initiate(&alice, &bob_bundle, &options, 0, &mut rng(3))
    });
    assert_eq!(
        refused(&mut ab, &mut carol, |rec, dev| rec.receive(
            dev,
            &carols_initial,
            &opts,
            0
        )),
        Error::WrongRecord
    );

    // Carol's initial message is from another identity than the record's contact.
    let mut ac = SessionRecord::new(alice.identity_key(), carol.identity_key(), limits).unwrap();
    let mut ba = SessionRecord::new(bob.identity_key(), alice.identity_key(), limits).unwrap();
    ba.initiate(
        &bob,
        &Mode::Classical.bundle(&mut alice, &mut r),
        &opts,
        0,
        &mut r,
    )
    .unwrap();
    let bobs_initial = ba.encrypt(b"to alice", &mut r).unwrap();
    assert_eq!(
        refused(&mut ac, &mut alice, |rec, dev| rec.receive(
            dev,
            &bobs_initial,
            &opts,
            0
        )),
        Error::IdentityMismatch
    );
    assert_refused(&mut ac, Error::IdentityMismatch, |rec| {
        rec.decrypt(&bobs_initial)
    });
    // `decrypt` routes an initial message only to a session the record holds.
    assert_refused(&mut ab, Error::WrongSession, |rec| {
        rec.decrypt(&bobs_initial)
    });

    // `receive` accepts it as a new session, which becomes the sending session.
    let got = ab.receive(&mut alice, &bobs_initial, &opts, 5).unwrap();
    assert_eq!(got.plaintext, b"to alice");
    assert!(got.new_session);
    assert_eq!(got.notice, None);
    assert_eq!(Some(got.session_id), ab.sending_session().map(Session::id));
    assert_eq!(ab.sending_session().unwrap().role(), Role::Responder);
    assert_eq!(ab.status(5), RecordStatus::Ready);
    // Its Debug shows the length, never the plaintext.
    let shown = format!("{got:?}");
    assert!(
        shown.contains("plaintext_len") && !shown.contains("116, 111"),
        "{shown}"
    );
    // The same message again reaches the session (not the prekeys): a replay, refused.
    let e = refused(&mut ab, &mut alice, |rec, dev| {
        rec.receive(dev, &bobs_initial, &opts, 5)
    });
    assert_eq!(e, Error::DuplicateOrExpired);
    // A later initial message of the same session: no new session.
    let again = ba.encrypt(b"again", &mut r).unwrap();
    let got = ab.receive(&mut alice, &again, &opts, 6).unwrap();
    assert!(!got.new_session);
    assert_eq!((got.plaintext.as_slice(), ab.len()), (&b"again"[..], 1));
    // A message that does not parse.
    assert_eq!(
        refused(&mut ab, &mut alice, |rec, dev| rec.receive(
            dev,
            &[],
            &opts,
            6
        )),
        Error::Truncated
    );
    let shown = format!("{ab:?}");
    assert!(
        shown.starts_with("SessionRecord") && shown.contains("limits"),
        "{shown}"
    );
}

#[test]
fn received_reports_the_device_changes_of_a_new_session() {
    let mut r = rng(2);
    let mut alice = LocalDevice::new(0, &mut r).unwrap();
    let bob = LocalDevice::new(0, &mut r).unwrap();
    let opts = SessionOptions::new();
    let mut ab = SessionRecord::new(
        alice.identity_key(),
        bob.identity_key(),
        RecordLimits::default(),
    )
    .unwrap();
    let mut ba = SessionRecord::new(
        bob.identity_key(),
        alice.identity_key(),
        RecordLimits::default(),
    )
    .unwrap();
    // A bundle without a one-time prekey: the device keeps a replay record instead.
    let bundle = PreKeyBundle::from_bytes(&alice.bundle(None).unwrap().to_bytes()).unwrap();
    ba.initiate(&bob, &bundle, &opts, 0, &mut r).unwrap();
    let m = ba.encrypt(b"last resort", &mut r).unwrap();
    let got = ab.receive(&mut alice, &m, &opts, 0).unwrap();
    assert!(got.new_session);
    assert!(got.replay_record.is_some());
    assert_eq!(alice.replay_records(), 1);
}

// ---------------------------------------------------------------------------------------
// 1. Simultaneous initiation on random schedules
// ---------------------------------------------------------------------------------------

/// One message on its way and the plaintext it must decrypt to.
#[derive(Clone)]
struct InFlight {
    wire: Vec<u8>,
    plaintext: Vec<u8>,
}

/// Delivers the in-flight message at `i` of `queue` to `to`: it must decrypt to its
/// plaintext. Keeps it in `delivered` for replays.
#[track_caller]
fn deliver(to: &mut Peer, queue: &mut Vec<InFlight>, i: usize, delivered: &mut Vec<InFlight>) {
    let m = queue.remove(i);
    match to.receive(&m.wire) {
        Ok(plaintext) => assert_eq!(plaintext, m.plaintext),
        Err(e) => panic!("an honest message was refused: {e:?}"),
    }
    delivered.push(m);
}

/// After every step: the record-wide bounds hold and the record reloads to the same bytes.
#[track_caller]
fn check_bounds(peer: &Peer) {
    if let Some(record) = peer.record() {
        let limits = record.limits();
        assert!(record.len() <= limits.max_archived as usize + 1);
        assert!(record.stored_skipped_keys() <= limits.max_stored_skipped as usize);
        assert_eq!(record.session_ids().count(), record.len());
    }
}

/// Both send on the same session.
fn converged(alice: &Peer, bob: &Peer) -> bool {
    alice.sending_id().is_some() && alice.sending_id() == bob.sending_id()
}

/// Both sides initiate before either receives anything; then each side's messages are
/// sent, delivered out of order (from a small window), dropped, replayed, and the records
/// reloaded, on a random schedule. Every delivered message decrypts to its plaintext the
/// first time and is refused (changing nothing) every later time; once the network is
/// drained and one message went each way, both send on the same session, and stay there.
fn simultaneous_random_schedule(mode: Mode, seed: u64) {
    const WINDOW: usize = 4;
    let mut r = rng(seed);
    let mut alice = Peer::with_options(&mut r, mode.options(), RecordLimits::default());
    let mut bob = Peer::with_options(&mut r, mode.options(), RecordLimits::default());
    let bundle_b = mode.bundle(&mut bob.party.store, &mut r);
    let bundle_a = mode.bundle(&mut alice.party.store, &mut r);
    let id_a = alice.initiate(&bundle_b, &mut r);
    let id_b = bob.initiate(&bundle_a, &mut r);
    assert_ne!(id_a, id_b);
    let (mut to_alice, mut to_bob) = (Vec::new(), Vec::new());
    let (mut at_alice, mut at_bob) = (Vec::new(), Vec::new());
    let (mut sent, mut dropped) = (0usize, 0usize);
    for step in 0..200 {
        match below(&mut r, 14) {
            0..=2 => {
                let plaintext = text("alice", step);
                let wire = alice.send(&plaintext, &mut r);
                to_bob.push(InFlight { wire, plaintext });
                sent += 1;
            }
            3..=5 => {
                let plaintext = text("bob", step);
                let wire = bob.send(&plaintext, &mut r);
                to_alice.push(InFlight { wire, plaintext });
                sent += 1;
            }
            6..=7 if !to_bob.is_empty() => {
                let i = below(&mut r, to_bob.len().min(WINDOW));
                deliver(&mut bob, &mut to_bob, i, &mut at_bob);
            }
            8..=9 if !to_alice.is_empty() => {
                let i = below(&mut r, to_alice.len().min(WINDOW));
                deliver(&mut alice, &mut to_alice, i, &mut at_alice);
            }
            10 => {
                let queue = if below(&mut r, 2) == 0 {
                    &mut to_bob
                } else {
                    &mut to_alice
                };
                if !queue.is_empty() {
                    let i = below(&mut r, queue.len());
                    queue.remove(i);
                    dropped += 1;
                }
            }
            11 if !at_bob.is_empty() => {
                // A replay: refused, and (checked by `Peer::receive`) nothing changes.
                let m = &at_bob[below(&mut r, at_bob.len())];
                let e = bob.receive(&m.wire).unwrap_err();
                assert!(sensible(e), "{e:?}");
            }
            12 if !at_alice.is_empty() => {
                let m = &at_alice[below(&mut r, at_alice.len())];
                let e = alice.receive(&m.wire).unwrap_err();
                assert!(sensible(e), "{e:?}");
            }
            13 => {
                alice.reload();
                bob.reload();
            }
            _ => {}
        }
        check_bounds(&alice);
        check_bounds(&bob);
    }
    assert!(sent > 50, "seed {seed}: too little traffic");
    assert!(dropped > 0, "seed {seed}: nothing dropped");
    // Drain the network, still out of order.
    while !to_bob.is_empty() || !to_alice.is_empty() {
        if !to_bob.is_empty() {
            let i = below(&mut r, to_bob.len().min(WINDOW));
            deliver(&mut bob, &mut to_bob, i, &mut at_bob);
        }
        if !to_alice.is_empty() {
            let i = below(&mut r, to_alice.len().min(WINDOW));
            deliver(&mut alice, &mut to_alice, i, &mut at_alice);
        }
    }
    // Exactly once: every delivered message is refused now.
    for m in &at_bob {
        bob.receive(&m.wire).unwrap_err();
    }
    for m in &at_alice {
        alice.receive(&m.wire).unwrap_err();
    }
    // One round trip settles both on one session (SPEC.md §6.4).
    let m = alice.send(b"settle", &mut r);
    assert_eq!(bob.receive(&m).unwrap(), b"settle");
    let m = bob.send(b"settled", &mut r);
    assert_eq!(alice.receive(&m).unwrap(), b"settled");
    assert!(converged(&alice, &bob), "{mode:?} seed {seed}");
    let settled = alice.sending_id().unwrap();
    assert!(settled == id_a || settled == id_b);
    for k in 0..12 {
        let pt = text("after", k);
        if below(&mut r, 2) == 0 {
            let m = alice.send(&pt, &mut r);
            assert_eq!(bob.receive(&m).unwrap(), pt);
        } else {
            let m = bob.send(&pt, &mut r);
            assert_eq!(alice.receive(&m).unwrap(), pt);
        }
        assert_eq!(alice.sending_id(), Some(settled), "{mode:?} seed {seed}");
        assert_eq!(bob.sending_id(), Some(settled), "{mode:?} seed {seed}");
    }
    for peer in [&alice, &bob] {
        let s = peer.sending_session().unwrap();
        assert_eq!(s.is_header_encrypted(), mode.header_encrypted());
        assert_eq!(s.is_post_quantum(), mode.post_quantum());
        assert!((1..=2).contains(&peer.session_count()));
        assert_eq!(peer.record().unwrap().status(0), RecordStatus::Ready);
    }
}

#[test]
fn simultaneous_initiation_random_schedules_classical() {
    for seed in 0..8 {
        simultaneous_random_schedule(Mode::Classical, 100 + seed);
    }
}

#[test]
fn simultaneous_initiation_random_schedules_header_encrypted() {
    for seed in 0..8 {
        simultaneous_random_schedule(Mode::HeaderEncrypted, 200 + seed);
    }
}

#[cfg(feature = "pqxdh")]
#[test]
fn simultaneous_initiation_random_schedules_post_quantum() {
    for seed in 0..4 {
        simultaneous_random_schedule(Mode::PostQuantum, 300 + seed);
        simultaneous_random_schedule(Mode::PostQuantumHeaderEncrypted, 400 + seed);
    }
}

/// Both send, then both receive, every round: each side's records agree on the sending
/// session after every round (the smaller id), in every mode.
#[test]
fn simultaneous_initiation_strictly_crossing_converges_every_round() {
    for (k, mode) in Mode::all().into_iter().enumerate() {
        let mut r = rng(500 + k as u64);
        let mut alice = Peer::with_options(&mut r, mode.options(), RecordLimits::default());
        let mut bob = Peer::with_options(&mut r, mode.options(), RecordLimits::default());
        let bundle_b = mode.bundle(&mut bob.party.store, &mut r);
        let bundle_a = mode.bundle(&mut alice.party.store, &mut r);
        let smaller = alice
            .initiate(&bundle_b, &mut r)
            .min(bob.initiate(&bundle_a, &mut r));
        for round in 0..12 {
            let from_a = alice.send(&text("a", round), &mut r);
            let from_b = bob.send(&text("b", round), &mut r);
            assert_eq!(bob.receive(&from_a).unwrap(), text("a", round));
            assert_eq!(alice.receive(&from_b).unwrap(), text("b", round));
            assert_eq!(alice.sending_id(), Some(smaller), "{mode:?} round {round}");
            assert_eq!(bob.sending_id(), Some(smaller), "{mode:?} round {round}");
        }
        assert_eq!((alice.session_count(), bob.session_count()), (2, 2));
    }
}

// ---------------------------------------------------------------------------------------
// 2. The archive and the skipped-key bound (SPEC.md §6.7)
// ---------------------------------------------------------------------------------------

#[test]
fn archive_evicts_the_least_recently_used_session() {
    for mode in [Mode::Classical, Mode::HeaderEncrypted] {
        let limits = RecordLimits::default().with_max_archived(3);
        let mut c = Contact::new(20, limits);
        let ids: Vec<SessionId> = (0..4).map(|i| c.add_established(mode, i)).collect();
        // Newest first: the last initiated sends, the others are archived in order.
        assert_eq!(c.ids(), vec![ids[3], ids[2], ids[1], ids[0]]);
        assert_eq!(c.record.len(), 4);
        // Bob writes on the oldest session (its chain is known: it is tried whatever its
        // position), which makes it the most recently used.
        let m = c.bob_sends(ids[0], b"still here");
        assert_eq!(c.record.decrypt(&m).unwrap(), b"still here");
        assert!(c.position(ids[0]) <= 1, "{mode:?}");
        // Bob's late message on session 1, kept for after its eviction.
        let late = c.bob_sends(ids[1], b"late");
        // One more session: the least recently used (1, not the oldest 0) is evicted.
        let newest = c.add_established(mode, 10);
        assert_eq!(c.record.len(), 4, "{mode:?}");
        assert!(!c.ids().contains(&ids[1]), "{mode:?}");
        for kept in [ids[0], ids[2], ids[3], newest] {
            assert!(c.ids().contains(&kept), "{mode:?}");
        }
        c.record = reloaded(&c.record);
        // The evicted session's late message: no session holds its chain or opens its
        // header, and the ones that could take a new chain do not authenticate it.
        assert_refused(&mut c.record, Error::DecryptionFailed, |rec| {
            rec.decrypt(&late)
        });
        let e = refused(&mut c.record, &mut c.alice, |rec, dev| {
            rec.receive(dev, &late, &SessionOptions::new(), 11)
        });
        assert_eq!(e, Error::DecryptionFailed);
        // The kept sessions still work.
        let m = c.bob_sends(ids[2], b"fine");
        assert_eq!(c.record.decrypt(&m).unwrap(), b"fine");
        // Lowering the bound evicts at once, least recently used first.
        let before = c.ids();
        c.record.set_limits(limits.with_max_archived(1)).unwrap();
        assert_eq!(c.ids(), before[..2].to_vec(), "{mode:?}");
        c.record = reloaded(&c.record);
        // No archive at all is refused: the session just used must stay.
        let bytes = c.record.to_bytes();
        assert_eq!(
            c.record.set_limits(limits.with_max_archived(0)),
            Err(Error::InvalidLimits)
        );
        assert_eq!(*c.record.to_bytes(), *bytes, "{mode:?}");
        // Archiving the sending session into a full archive evicts the least recently used.
        assert_eq!(c.record.archive_sending_session(), Some(before[0]));
        assert_eq!(c.ids(), before[..1].to_vec(), "{mode:?}");
        assert!(c.record.sending_session().is_none());
        assert_eq!(c.record.status(0), RecordStatus::NoSession);
        c.record = reloaded(&c.record);
    }
}

/// A record at the archive cap, every session header-encrypted (and PQXDH if built) and
/// awaiting its first reply (the longest sessions short of skipped keys), stays within
/// `MAX_RECORD_SIZE` and loads.
#[test]
fn a_record_at_the_archive_cap_is_within_the_size_limit() {
    #[cfg(feature = "pqxdh")]
    let mode = Mode::PostQuantumHeaderEncrypted;
    #[cfg(not(feature = "pqxdh"))]
    let mode = Mode::HeaderEncrypted;
    let limits = RecordLimits::default().with_max_archived(MAX_ARCHIVED_CAP);
    let mut c = Contact::new(24, limits);
    for i in 0..=u64::from(MAX_ARCHIVED_CAP) {
        c.add(mode, i);
    }
    assert_eq!(c.record.len(), MAX_ARCHIVED_CAP as usize + 1);
    c.add(mode, 100);
    assert_eq!(c.record.len(), MAX_ARCHIVED_CAP as usize + 1);
    let stored = c.record.to_bytes();
    assert!(
        stored.len() <= MAX_RECORD_SIZE,
        "{} > {MAX_RECORD_SIZE}",
        stored.len()
    );
    let _ = reloaded(&c.record);
}

/// `receive` accepts a new session from the device's prekeys (consuming a one-time
/// prekey) and reports it in `Received::session_id`; the record then holds it, even when it
/// does not become the sending session (SPEC.md §6.4) and the archive is at its smallest
/// bound: an archive bound of 0, which would evict it at once, is refused.
#[test]
fn a_session_accepted_by_receive_is_held_by_the_record() {
    let mut r = rng(25);
    let mut alice = LocalDevice::new(0, &mut r).unwrap();
    let mut bob = LocalDevice::new(0, &mut r).unwrap();
    let opts = SessionOptions::new();
    assert_eq!(
        SessionRecord::new(
            alice.identity_key(),
            bob.identity_key(),
            RecordLimits::default().with_max_archived(0)
        )
        .unwrap_err(),
        Error::InvalidLimits
    );
    let limits = RecordLimits::default().with_max_archived(1);
    let mut ab = SessionRecord::new(alice.identity_key(), bob.identity_key(), limits).unwrap();
    let sending = ab
        .initiate(
            &alice,
            &Mode::Classical.bundle(&mut bob, &mut r),
            &opts,
            0,
            &mut r,
        )
        .unwrap();
    // Bob starts a session whose id is larger than Alice's sending session's.
    let mut b = loop {
        let s = bob
            .initiate(&Mode::Classical.bundle(&mut alice, &mut r), &opts, &mut r)
            .unwrap();
        if s.id() > sending {
            break s;
        }
    };
    let first = b.encrypt(b"first", &mut r).unwrap();
    let got = ab.receive(&mut alice, &first, &opts, 1).unwrap();
    assert!(got.new_session);
    assert!(
        ab.session_ids().any(|id| id == got.session_id),
        "the accepted session is not in the record"
    );
    let second = b.encrypt(b"second", &mut r).unwrap();
    assert_eq!(
        ab.receive(&mut alice, &second, &opts, 2).unwrap().plaintext,
        b"second"
    );
}

#[test]
fn an_evicted_responder_session_cannot_come_back_through_the_prekeys() {
    let mut r = rng(21);
    let mut alice = LocalDevice::new(0, &mut r).unwrap();
    let mut bob = LocalDevice::new(0, &mut r).unwrap();
    let opts = SessionOptions::new();
    let limits = RecordLimits::default().with_max_archived(1);
    let mut ab = SessionRecord::new(alice.identity_key(), bob.identity_key(), limits).unwrap();
    // Bob initiates; Alice accepts; Bob never hears back, so he keeps sending initial
    // messages.
    let mut b = bob
        .initiate(&Mode::Classical.bundle(&mut alice, &mut r), &opts, &mut r)
        .unwrap();
    let first = b.encrypt(b"first", &mut r).unwrap();
    let got = ab.receive(&mut alice, &first, &opts, 0).unwrap();
    assert!(got.new_session);
    let accepted = got.session_id;
    // Alice starts two sessions of her own: Bob's is evicted.
    for _ in 0..2 {
        ab.initiate(
            &alice,
            &Mode::Classical.bundle(&mut bob, &mut r),
            &opts,
            1,
            &mut r,
        )
        .unwrap();
    }
    assert_eq!(ab.len(), 2);
    assert!(!ab.session_ids().any(|id| id == accepted));
    // Bob's next initial message cannot start the session again: its one-time prekey is
    // gone. Nothing changes.
    let second = b.encrypt(b"second", &mut r).unwrap();
    let e = refused(&mut ab, &mut alice, |rec, dev| {
        rec.receive(dev, &second, &opts, 2)
    });
    assert!(matches!(e, Error::UnknownOneTimePreKey(_)), "{e:?}");
    assert_refused(&mut ab, Error::WrongSession, |rec| rec.decrypt(&second));
}

#[test]
fn record_wide_skipped_key_bound_evicts_archived_sessions_first() {
    const CAP: u32 = 10;
    for mode in [Mode::Classical, Mode::HeaderEncrypted] {
        let limits = RecordLimits::default().with_max_stored_skipped(CAP);
        let mut c = Contact::new(22, limits);
        let s1 = c.add_established(mode, 0);
        let s2 = c.add_established(mode, 1);
        // Bob sends 9 on each session's chain; Alice receives only the last of each:
        // 8 skipped keys each, 16 in all, above the bound of 10.
        let on1: Vec<Vec<u8>> = (1..=9).map(|i| c.bob_sends(s1, &text("s1", i))).collect();
        let on2: Vec<Vec<u8>> = (1..=9).map(|i| c.bob_sends(s2, &text("s2", i))).collect();
        assert_eq!(c.record.decrypt(&on1[8]).unwrap(), text("s1", 9));
        assert_eq!(c.record.stored_skipped_keys(), 8);
        assert_eq!(c.record.decrypt(&on2[8]).unwrap(), text("s2", 9));
        assert_eq!(c.record.stored_skipped_keys(), CAP as usize, "{mode:?}");
        // Whichever became the sending session kept its 8 keys; the archived one lost
        // its 6 oldest (SPEC.md §6.7).
        let sending = c.record.sending_session().unwrap().id();
        assert_eq!(c.record.sending_session().unwrap().stored_skipped_keys(), 8);
        let stored = StoredRecord::of(&c.record);
        let archived = &stored.sessions()[1];
        assert_eq!(archived.stored_skipped_keys(), 2, "{mode:?}");
        let (kept, trimmed) = if sending == s1 {
            (&on1, &on2)
        } else {
            (&on2, &on1)
        };
        let trimmed_tag = if sending == s1 { "s2" } else { "s1" };
        let kept_tag = if sending == s1 { "s1" } else { "s2" };
        c.record = reloaded(&c.record);
        // The archived session's oldest six are gone, its newest two decrypt.
        for (i, m) in trimmed.iter().enumerate().take(8) {
            if i < 6 {
                let e = refused(&mut c.record, &mut c.alice, |rec, dev| {
                    rec.receive(dev, m, &SessionOptions::new(), 2)
                });
                assert!(sensible(e), "{e:?}");
            } else {
                assert_eq!(c.record.decrypt(m).unwrap(), text(trimmed_tag, i + 1));
            }
            assert!(c.record.stored_skipped_keys() <= CAP as usize);
        }
        for (i, m) in kept.iter().enumerate().take(8) {
            assert_eq!(c.record.decrypt(m).unwrap(), text(kept_tag, i + 1));
        }
        assert_eq!(c.record.stored_skipped_keys(), 0);

        // Lowering the bound evicts at once.
        let more: Vec<Vec<u8>> = (10..=15).map(|i| c.bob_sends(s1, &text("s1", i))).collect();
        assert_eq!(c.record.decrypt(&more[5]).unwrap(), text("s1", 15));
        assert_eq!(c.record.stored_skipped_keys(), 5);
        c.record
            .set_limits(limits.with_max_stored_skipped(2))
            .unwrap();
        assert_eq!(c.record.stored_skipped_keys(), 2);
        c.record = reloaded(&c.record);
        assert_eq!(c.record.decrypt(&more[4]).unwrap(), text("s1", 14));
        c.record
            .set_limits(limits.with_max_stored_skipped(0))
            .unwrap();
        assert_eq!(c.record.stored_skipped_keys(), 0);
        let e = refused(&mut c.record, &mut c.alice, |rec, dev| {
            rec.receive(dev, &more[3], &SessionOptions::new(), 3)
        });
        assert!(sensible(e), "{e:?}");
    }
}

/// Random bursts on four sessions, delivered partly and out of order, against a small
/// record-wide bound: after every operation the bound holds, every decryption gives its
/// own plaintext, and every refusal changes nothing.
#[test]
fn record_wide_skipped_key_bound_holds_after_every_operation() {
    for (k, mode) in [Mode::Classical, Mode::HeaderEncrypted]
        .into_iter()
        .enumerate()
    {
        let cap = 12u32;
        let mut c = Contact::new(
            23 + k as u64,
            RecordLimits::default().with_max_stored_skipped(cap),
        );
        let ids: Vec<SessionId> = (0..4).map(|i| c.add_established(mode, i)).collect();
        let mut pending: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let (mut ok, mut refusals) = (0, 0);
        for step in 0..150 {
            if below(&mut c.r, 3) == 0 || pending.is_empty() {
                let id = ids[below(&mut c.r, ids.len())];
                for j in 0..1 + below(&mut c.r, 6) {
                    let pt = text("burst", step * 10 + j);
                    pending.push((c.bob_sends(id, &pt), pt));
                }
            } else {
                let (m, pt) = pending.remove(below(&mut c.r, pending.len()));
                let before = bytes(&c.record);
                match c.record.decrypt(&m) {
                    Ok(got) => {
                        assert_eq!(got, pt);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(sensible(e), "{e:?}");
                        assert!(bytes(&c.record) == before);
                        refusals += 1;
                    }
                }
            }
            assert!(
                c.record.stored_skipped_keys() <= cap as usize,
                "{mode:?} step {step}"
            );
            if step % 25 == 0 {
                c.record = reloaded(&c.record);
            }
        }
        assert!(
            ok > 20 && refusals > 0,
            "{mode:?}: {ok} decrypted, {refusals} refused"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. The work budget (SPEC.md §6.6)
// ---------------------------------------------------------------------------------------

/// Without header encryption, a new chain (here: Bob's first reply) can belong to any
/// session, so the sessions are tried in order (sending, then archived most recently used
/// first) and at most `max_trials` of them: the reply on the session at position `p`
/// decrypts exactly when `max_trials > p`; a refusal changes nothing.
#[test]
fn trial_bound_follows_the_record_order() {
    let mut c = Contact::new(30, RecordLimits::default());
    let ids: Vec<SessionId> = (0..4).map(|i| c.add(Mode::Classical, i)).collect();
    assert_eq!(c.ids(), vec![ids[3], ids[2], ids[1], ids[0]]);
    let replies: Vec<Vec<u8>> = ids.iter().map(|id| c.bob_sends(*id, b"reply")).collect();
    for (i, id) in ids.iter().enumerate() {
        let p = c.position(*id);
        for trials in 1..=4u32 {
            let mut copy = copy_with(&c.record, RecordLimits::default().with_max_trials(trials));
            if trials as usize > p {
                assert_eq!(
                    copy.decrypt(&replies[i]).unwrap(),
                    b"reply",
                    "p {p} trials {trials}"
                );
            } else {
                assert_refused(&mut copy, Error::DecryptionFailed, |rec| {
                    rec.decrypt(&replies[i])
                });
            }
        }
    }
    // The example of the brief: the second session in order needs two trials.
    let second = c.ids()[1];
    let reply = &replies[ids.iter().position(|id| *id == second).unwrap()];
    let mut one = copy_with(&c.record, RecordLimits::default().with_max_trials(1));
    let mut two = copy_with(&c.record, RecordLimits::default().with_max_trials(2));
    assert_refused(&mut one, Error::DecryptionFailed, |rec| rec.decrypt(reply));
    assert_eq!(two.decrypt(reply).unwrap(), b"reply");
    // It was decrypted by the second session, which is now the most recently used archived
    // one, or the sending one if its id is the smaller.
    let first = c.ids()[0];
    let expected = if second < first {
        vec![second, first]
    } else {
        vec![first, second]
    };
    assert_eq!(two.session_ids().take(2).collect::<Vec<_>>(), expected);
}

/// With header encryption only the session whose header key opens the header is tried, so
/// even one trial reaches the last session.
#[test]
fn header_encrypted_messages_need_one_trial_wherever_their_session_is() {
    let mut c = Contact::new(31, RecordLimits::default().with_max_trials(1));
    let ids: Vec<SessionId> = (0..4).map(|i| c.add(Mode::HeaderEncrypted, i)).collect();
    // The oldest, last in order, first.
    for id in ids.iter() {
        assert!(c.position(*id) <= 3);
        let m = c.bob_sends(*id, b"reply");
        assert_eq!(c.record.decrypt(&m).unwrap(), b"reply");
    }
}

/// Alice's record with five sessions (in `mode`) where session `ids[0]` holds Bob's chain
/// (current receiving chain, with the keys of messages 1 and 2 stored) and stands at
/// position 3 of the order; sessions `ids[3]` has had no reply yet. Returns the contact, the
/// ids, and Bob's messages 0..=3 on `ids[0]`'s chain (0 and 3 decrypted).
fn known_chain_setup(mode: Mode, seed: u64) -> (Contact, Vec<SessionId>, Vec<Vec<u8>>) {
    let mut c = Contact::new(seed, RecordLimits::default().with_max_trials(5));
    let mut ids: Vec<SessionId> = (0..4).map(|i| c.add(mode, i)).collect();
    let chain: Vec<Vec<u8>> = (0..=3)
        .map(|i| c.bob_sends(ids[0], &text("m", i)))
        .collect();
    assert_eq!(c.record.decrypt(&chain[0]).unwrap(), text("m", 0));
    // Out of order: the keys of 1 and 2 are stored.
    assert_eq!(c.record.decrypt(&chain[3]).unwrap(), text("m", 3));
    // A new sending session (SPEC.md §6.4 clause 1), then replies on two others: session 0
    // falls back to position 3.
    ids.push(c.add(mode, 5));
    for id in [ids[1], ids[2]] {
        let m = c.bob_sends(id, b"reply");
        assert_eq!(c.record.decrypt(&m).unwrap(), b"reply");
    }
    assert_eq!(c.position(ids[0]), 3, "{mode:?}");
    assert!(c.position(ids[3]) >= 3, "{mode:?}");
    c.record
        .set_limits(RecordLimits::default().with_max_trials(1))
        .unwrap();
    (c, ids, chain)
}

/// A message of a chain a session already holds (a stored skipped key, or its current
/// receiving chain) is tried only on that session, so one trial is enough wherever the
/// session stands; a new chain at a similar position is not reached with one trial.
#[test]
fn a_known_chain_is_tried_only_where_it_is_held() {
    let (mut c, ids, chain) = known_chain_setup(Mode::Classical, 32);
    // Control: Bob's first reply on session 3 starts a new chain; with one trial only the
    // sending session is tried.
    let new_chain = c.bob_sends(ids[3], b"reply");
    assert_refused(&mut c.record, Error::DecryptionFailed, |rec| {
        rec.decrypt(&new_chain)
    });
    // Stored keys, found at position 3 with one trial.
    let mut copy = reloaded(&c.record);
    assert_eq!(copy.decrypt(&chain[2]).unwrap(), text("m", 2));
    let mut copy = reloaded(&c.record);
    assert_eq!(copy.decrypt(&chain[1]).unwrap(), text("m", 1));
    // The current chain, at position 3 with one trial.
    let next = c.bob_sends(ids[0], b"m4");
    assert_eq!(c.position(ids[0]), 3);
    assert_eq!(c.record.decrypt(&next).unwrap(), b"m4");
    // Now the most recently used: the new chain of session 3 still needs its trials.
    assert!(c.position(ids[0]) <= 1);
    assert!(c.position(ids[3]) > 0);
    assert_refused(&mut c.record, Error::DecryptionFailed, |rec| {
        rec.decrypt(&new_chain)
    });
}

/// In a record of one session, a replay of a message of its current chain is
/// `DuplicateOrExpired` (SPEC.md §4.6, §4.7; `a_replay_in_a_record_of_one_session_is_a_replay`).
/// A record with more sessions should give the same answer, and try no other session, when
/// the chain is held by a session that is not first in order: `weigh` documents that "a
/// session that holds the message's chain (a stored key, the current receiving chain ...)
/// is where the message belongs: if any does, only those are tried".
#[test]
fn a_replay_on_a_held_chain_is_refused_as_a_replay_wherever_its_session_stands() {
    let (mut c, _, chain) = known_chain_setup(Mode::Classical, 33);
    for m in [&chain[0], &chain[3]] {
        assert_refused(&mut c.record, Error::DuplicateOrExpired, |rec| {
            rec.decrypt(m)
        });
    }
}

/// As above with header encryption: only the holding session opens the header, so no
/// other session is tried, but the error reported is the first weighed session's.
#[test]
fn a_header_encrypted_replay_is_refused_as_a_replay_wherever_its_session_stands() {
    let (mut c, _, chain) = known_chain_setup(Mode::HeaderEncrypted, 34);
    for m in [&chain[0], &chain[3]] {
        assert_refused(&mut c.record, Error::DuplicateOrExpired, |rec| {
            rec.decrypt(m)
        });
    }
}

/// `decrypt_normal` "weighs every session of the message's header mode": a session of the
/// other mode should not decide the error. A cleartext message too far ahead on the chain of
/// a classical session, in a record whose sending session is header-encrypted, should be
/// `TooFarAhead` as in a record of classical sessions only.
#[test]
fn a_session_of_the_other_mode_does_not_decide_the_error() {
    let mut c = Contact::new(35, RecordLimits::default());
    let plain = c.add_established(Mode::Classical, 0);
    c.add_established(Mode::HeaderEncrypted, 1);
    assert!(c.record.sending_session().unwrap().is_header_encrypted());
    let m = c.bob_sends(plain, b"x");
    let far = forge_header(&m, None, None, Some(5000));
    assert_refused(&mut c.record, Error::TooFarAhead, |rec| rec.decrypt(&far));
}

/// The same replays in a record of one session: `DuplicateOrExpired`.
#[test]
fn a_replay_in_a_record_of_one_session_is_a_replay() {
    for mode in [Mode::Classical, Mode::HeaderEncrypted] {
        let mut c = Contact::new(34, RecordLimits::default());
        let id = c.add(mode, 0);
        let chain: Vec<Vec<u8>> = (0..=2).map(|i| c.bob_sends(id, &text("m", i))).collect();
        for (i, m) in chain.iter().enumerate() {
            assert_eq!(c.record.decrypt(m).unwrap(), text("m", i));
        }
        for m in &chain {
            assert_refused(&mut c.record, Error::DuplicateOrExpired, |rec| {
                rec.decrypt(m)
            });
        }
    }
}

/// A random valid X25519 public key (a ratchet key no session has seen).
fn random_ratchet_key(r: &mut ChaCha20Rng) -> [u8; 32] {
    let mut secret = [0u8; 32];
    for chunk in secret.chunks_mut(8) {
        chunk.copy_from_slice(&(below(r, usize::MAX) as u64).to_be_bytes());
    }
    curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(secret).to_bytes()
}

/// Five established sessions in `mode` with `trials` trials, and everything a hostile
/// network can send: garbage, oversized and truncated input, other message types, replays
/// of every message already decrypted, every byte of undelivered messages flipped, forged
/// headers (too far ahead, a new ratchet key), a genuinely too-far-ahead message, messages
/// of sessions the record does not hold. Every input is refused by `decrypt` and by
/// `receive` with a sensible kind (the exact error where the routing decides it), and the
/// record and the device are byte-identical afterwards; then the honest messages still
/// decrypt.
fn hostile_flood(mode: Mode, trials: u32, seed: u64) {
    let mut c = Contact::new(seed, RecordLimits::default().with_max_trials(trials));
    let ids: Vec<SessionId> = (0..5).map(|i| c.add_established(mode, i)).collect();
    let mut seen = Vec::new();
    for id in &ids {
        for k in 0..3 {
            let m = c.bob_sends(*id, &text("history", k));
            assert_eq!(c.record.decrypt(&m).unwrap(), text("history", k));
            seen.push(m);
        }
    }
    let fresh: Vec<Vec<u8>> = ids.iter().map(|id| c.bob_sends(*id, b"fresh")).collect();
    let sending = c.record.sending_session().unwrap().id();

    // (input, the exact error of `decrypt` if the routing decides it)
    let mut hostile: Vec<(Vec<u8>, Option<Error>)> = vec![
        (vec![], Some(Error::Truncated)),
        (vec![WIRE_VERSION], Some(Error::Truncated)),
        (vec![WIRE_VERSION, 0x01], Some(Error::Truncated)),
        (vec![9, 0x01, 0, 0], Some(Error::UnsupportedVersion(9))),
        (
            vec![WIRE_VERSION, 0x7f, 0, 0],
            Some(Error::UnexpectedType(0x7f)),
        ),
        (
            [&[WIRE_VERSION, 0x01][..], &vec![7u8; MAX_MESSAGE_SIZE]].concat(),
            Some(Error::TooLarge),
        ),
    ];
    for len in [3usize, 20, 41, 42, 58, 60, 100, 200] {
        for kind in [0x01u8, 0x02, 0x04, 0x05] {
            let mut g = vec![WIRE_VERSION, kind];
            g.extend((0..len).map(|_| below(&mut c.r, 256) as u8));
            hostile.push((g, None));
        }
    }
    for m in &seen {
        hostile.push((m.clone(), None));
    }
    for (k, m) in fresh.iter().enumerate() {
        // Every byte of the first message, every third byte of the others.
        let stride = if k == 0 { 1 } else { 3 };
        for i in (k % stride..m.len()).step_by(stride) {
            let mut f = m.clone();
            f[i] ^= 1 << (i % 8);
            hostile.push((f, None));
        }
        for len in [0, 1, 2, 10, 41, 42, m.len() - 17, m.len() - 1] {
            hostile.push((m[..len].to_vec(), None));
        }
        hostile.push(([&m[..], &[0]].concat(), Some(Error::DecryptionFailed)));
    }
    // A message Bob genuinely sends 1002 places ahead on the sending session's chain: its
    // session refuses it before deriving any key, and so does every other.
    let mut far = Vec::new();
    for k in 0..1002 {
        far = c.bob_sends(sending, &text("far", k));
    }
    hostile.push((far, Some(Error::TooFarAhead)));
    if !mode.header_encrypted() {
        let m = &fresh[0];
        let new_key = random_ratchet_key(&mut c.r);
        // Far ahead on a held chain, a long previous chain, a new chain no session holds.
        hostile.push((
            forge_header(m, None, None, Some(5000)),
            Some(Error::TooFarAhead),
        ));
        hostile.push((
            forge_header(m, Some(new_key), Some(0), Some(1001)),
            Some(Error::TooFarAhead),
        ));
        hostile.push((
            forge_header(m, Some(new_key), Some(u32::MAX), Some(0)),
            Some(Error::TooFarAhead),
        ));
        hostile.push((
            forge_header(m, Some(new_key), Some(0), Some(0)),
            Some(Error::DecryptionFailed),
        ));
        hostile.push((
            forge_header(m, Some(new_key), Some(3), Some(7)),
            Some(Error::DecryptionFailed),
        ));
        hostile.push((forge_header(m, Some([0u8; 32]), None, None), None));
    }
    // Messages of sessions the record does not hold: Bob's initial messages of a session he
    // starts (decrypt does not accept sessions; receive would, so it is given a corrupted
    // one), in both modes, and that session's normal messages.
    for other in [Mode::Classical, Mode::HeaderEncrypted] {
        let bundle = Mode::Classical.bundle(&mut c.alice, &mut c.r);
        let mut b = c.bob.initiate(&bundle, &other.options(), &mut c.r).unwrap();
        let initial = b.encrypt(b"new", &mut c.r).unwrap();
        let mut corrupted = initial.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        hostile.push((corrupted, Some(Error::WrongSession)));
        let mut a = c
            .alice
            .initiate(
                &Mode::Classical.bundle(&mut c.bob, &mut c.r),
                &other.options(),
                &mut c.r,
            )
            .unwrap();
        let first = a.encrypt(b"x", &mut c.r).unwrap();
        // Alice's own initial message, reflected: from the record's own identity.
        hostile.push((first, Some(Error::IdentityMismatch)));
    }
    // A decryption-error request is no message.
    let request = c.record.decryption_error(&c.alice, &fresh[0], 1).unwrap();
    hostile.push((request, Some(Error::UnexpectedType(0x07))));

    let opts = SessionOptions::new();
    let mut kinds = HashSet::new();
    for (i, (input, exact)) in hostile.iter().enumerate() {
        let e = refused(&mut c.record, &mut c.alice, |rec, _| rec.decrypt(input));
        assert!(sensible(e), "{mode:?} input {i}: {e:?}");
        if let Some(expected) = exact {
            assert_eq!(e, *expected, "{mode:?} trials {trials} input {i}");
        }
        let e = refused(&mut c.record, &mut c.alice, |rec, dev| {
            rec.receive(dev, input, &opts, 2)
        });
        assert!(sensible(e), "{mode:?} input {i}: {e:?}");
        kinds.insert(e);
    }
    assert!(kinds.len() >= 5, "{kinds:?}");
    // The honest messages still decrypt.
    for m in &fresh {
        assert_eq!(c.record.decrypt(m).unwrap(), b"fresh");
    }
}

#[test]
fn hostile_flood_changes_nothing_classical() {
    hostile_flood(Mode::Classical, DEFAULT_MAX_TRIALS, 40);
    hostile_flood(Mode::Classical, 1, 41);
}

#[test]
fn hostile_flood_changes_nothing_header_encrypted() {
    hostile_flood(Mode::HeaderEncrypted, DEFAULT_MAX_TRIALS, 42);
    hostile_flood(Mode::HeaderEncrypted, 1, 43);
}

// ---------------------------------------------------------------------------------------
// 4. Decryption-error requests (SPEC.md §6.8)
// ---------------------------------------------------------------------------------------

/// Offsets in a decryption-error request (type `0x07`, 204 bytes).
const REQ_REQUESTER: usize = 2;
const REQ_RECIPIENT: usize = 34;
const REQ_SESSION_FLAG: usize = 66;
const REQ_KEY_FLAG: usize = 99;
const REQ_TIME: usize = 132;
const REQ_SIGNATURE: usize = 140;
const REQ_LENGTH: usize = 204;

/// Alice and Bob, each with a device and a record with the other, and one session Alice
/// initiated, replied to by Bob: both records are ready.
struct Duo {
    alice: Party,
    bob: Party,
    ab: SessionRecord,
    ba: SessionRecord,
    r: ChaCha20Rng,
}

impl Duo {
    fn new(seed: u64, mode: Mode) -> Duo {
        let mut r = rng(seed);
        let alice = Party::new(&mut r);
        let mut bob = Party::new(&mut r);
        let limits = RecordLimits::default();
        let (a, b) = (alice.store.identity_key(), bob.store.identity_key());
        let mut ab = SessionRecord::new(a, b, limits).unwrap();
        let mut ba = SessionRecord::new(b, a, limits).unwrap();
        let bundle = mode.bundle(&mut bob.store, &mut r);
        ab.initiate(&alice.store, &bundle, &mode.options(), 0, &mut r)
            .unwrap();
        let hi = ab.encrypt(b"hi", &mut r).unwrap();
        let got = ba
            .receive(&mut bob.store, &hi, &SessionOptions::new(), 0)
            .unwrap();
        assert!(got.new_session);
        let hello = ba.encrypt(b"hello", &mut r).unwrap();
        assert_eq!(ab.decrypt(&hello).unwrap(), b"hello");
        assert_eq!(ab.status(0), RecordStatus::Ready);
        Duo {
            alice,
            bob,
            ab,
            ba,
            r,
        }
    }
}

/// Asserts that `record` answers `request` at `now` with `expected`, and, unless that is a
/// reset, does not change.
#[track_caller]
fn assert_outcome(record: &mut SessionRecord, request: &[u8], now: u64, expected: ResetOutcome) {
    let before = bytes(record);
    assert_eq!(record.handle_decryption_error(request, now), Ok(expected));
    if !matches!(expected, ResetOutcome::Reset(_)) {
        assert!(bytes(record) == before, "{expected:?} changed the record");
    }
}

/// Bob loses his state (same identity, a new device and an empty record) and cannot decrypt
/// Alice's next message; his request makes Alice's record retire the session once; the
/// same request again is stale, a newer one within the interval rate-limited; Alice
/// initiates again and the conversation resumes; the retired session still decrypts Bob's
/// late messages but never sends again.
#[test]
fn decryption_error_after_lost_state_resets_once_and_the_conversation_resumes() {
    for (k, mode) in Mode::all().into_iter().enumerate() {
        let mut d = Duo::new(50 + k as u64, mode);
        let opts = SessionOptions::new();
        let old = d.ab.sending_session().unwrap().id();
        // Messages Bob sent before losing his state, still on their way.
        let late: Vec<Vec<u8>> = (0..5)
            .map(|i| d.ba.encrypt(&text("late", i), &mut d.r).unwrap())
            .collect();
        let mut bob2 = device_of(&d.bob.identity, &mut d.r).unwrap();
        let mut ba2 = SessionRecord::new(
            bob2.identity_key(),
            d.alice.store.identity_key(),
            RecordLimits::default(),
        )
        .unwrap();
        let m = d.ab.encrypt(b"lost", &mut d.r).unwrap();
        assert_eq!(
            refused(&mut ba2, &mut bob2, |rec, dev| rec
                .receive(dev, &m, &opts, 100)),
            Error::NoSession
        );
        // The request: only from the record's own device, only for a message that parses.
        assert_eq!(
            ba2.decryption_error(&d.alice.store, &m, 100).map(|_| ()),
            Err(Error::WrongRecord)
        );
        assert_eq!(
            ba2.decryption_error(&bob2, &m[..10], 100).map(|_| ()),
            Err(Error::Truncated)
        );
        let request = ba2.decryption_error(&bob2, &m, 100).unwrap();
        assert_eq!(request.len(), REQ_LENGTH);
        assert_eq!(&request[..2], &[WIRE_VERSION, 0x07]);
        // A cleartext header names its ratchet key, an encrypted one nothing.
        assert_eq!(request[REQ_SESSION_FLAG], 0);
        assert_eq!(request[REQ_KEY_FLAG], u8::from(!mode.header_encrypted()));

        // Alice acts once.
        assert_outcome(&mut d.ab, &request, 1000, ResetOutcome::Reset(old));
        assert_eq!(d.ab.status(1000), RecordStatus::NoSession);
        assert!(d.ab.sending_session().is_none());
        assert_eq!(d.ab.len(), 1, "the retired session is kept");
        assert_refused(&mut d.ab, Error::NoSession, |rec| {
            rec.encrypt(b"x", &mut rng(0))
        });
        d.ab = reloaded(&d.ab);
        assert_outcome(&mut d.ab, &request, 1001, ResetOutcome::Stale);
        assert_outcome(&mut d.ab, &request, u64::MAX, ResetOutcome::Stale);
        // Another request of the same time (over another message) is stale too.
        let m2 = d.ab.encrypt(b"lost too", &mut d.r);
        assert_eq!(m2.map(|_| ()), Err(Error::NoSession));
        let same_time = ba2.decryption_error(&bob2, &late[0], 100).unwrap();
        // (A header-encrypted message names nothing: the very same request.)
        assert_eq!(same_time == request, mode.header_encrypted());
        assert_outcome(&mut d.ab, &same_time, 1_000_000, ResetOutcome::Stale);
        let newer = ba2.decryption_error(&bob2, &m, 101).unwrap();
        assert_outcome(&mut d.ab, &newer, 1000 + 3599, ResetOutcome::RateLimited);
        assert_outcome(&mut d.ab, &newer, 10, ResetOutcome::RateLimited);
        // Past the interval, with no sending session: nothing to reset.
        assert_outcome(&mut d.ab, &newer, 1000 + 3600, ResetOutcome::NotSending);

        // The retired session still decrypts what Bob sent before, and does not send
        // again, even after two messages in a row (SPEC.md §6.4 clause 2).
        for (i, l) in late[..2].iter().enumerate() {
            assert_eq!(d.ab.decrypt(l).unwrap(), text("late", i));
            assert_eq!(d.ab.status(1100), RecordStatus::NoSession);
        }
        // Alice initiates again from Bob's new bundle; Bob accepts; they talk.
        let bundle = mode.bundle(&mut bob2, &mut d.r);
        let new =
            d.ab.initiate(&d.alice.store, &bundle, &mode.options(), 2000, &mut d.r)
                .unwrap();
        assert_ne!(new, old);
        assert_eq!(
            d.ab.status(2000),
            RecordStatus::AwaitingReply { since: 2000 }
        );
        let again = d.ab.encrypt(b"again", &mut d.r).unwrap();
        let got = ba2.receive(&mut bob2, &again, &opts, 2000).unwrap();
        assert!(got.new_session);
        assert_eq!(
            (got.plaintext.as_slice(), got.session_id),
            (&b"again"[..], new)
        );
        let reply = ba2.encrypt(b"welcome back", &mut d.r).unwrap();
        assert_eq!(d.ab.decrypt(&reply).unwrap(), b"welcome back");
        assert_eq!(d.ab.status(2001), RecordStatus::Ready);
        for (i, l) in late.iter().enumerate().skip(2) {
            assert_eq!(d.ab.decrypt(l).unwrap(), text("late", i));
            assert_eq!(d.ab.sending_session().unwrap().id(), new, "{mode:?}");
        }
        d.ab = reloaded(&d.ab);
        for i in 0..4 {
            let m = d.ab.encrypt(&text("a", i), &mut d.r).unwrap();
            assert_eq!(ba2.decrypt(&m).unwrap(), text("a", i));
            let m = ba2.encrypt(&text("b", i), &mut d.r).unwrap();
            assert_eq!(d.ab.decrypt(&m).unwrap(), text("b", i));
        }
        // The newer request, past the interval: it names the old session's ratchet key, so
        // it resets nothing; from a header-encrypted session it names nothing, but it was
        // made before the new session entered Alice's record, so it resets nothing either
        // (SPEC.md §6.8).
        assert_outcome(&mut d.ab, &newer, 1000 + 3600, ResetOutcome::NotSending);
    }
}

/// Bob restores his record from an old copy: Alice's messages on a newer chain fail for
/// him; his request names her current ratchet key and resets her sending session; Alice
/// initiates again and Bob's old copy accepts the new session.
#[test]
fn decryption_error_from_a_record_restored_from_an_old_copy() {
    let mut d = Duo::new(60, Mode::Classical);
    let snapshot = bytes(&d.ba);
    let old = d.ab.sending_session().unwrap().id();
    for i in 0..2 {
        let m = d.ab.encrypt(&text("a", i), &mut d.r).unwrap();
        assert_eq!(d.ba.decrypt(&m).unwrap(), text("a", i));
        let m = d.ba.encrypt(&text("b", i), &mut d.r).unwrap();
        assert_eq!(d.ab.decrypt(&m).unwrap(), text("b", i));
    }
    let m = d.ab.encrypt(b"newer chain", &mut d.r).unwrap();
    let mut restored = SessionRecord::from_bytes(&snapshot).unwrap();
    assert_refused(&mut restored, Error::DecryptionFailed, |rec| {
        rec.decrypt(&m)
    });
    let request = restored.decryption_error(&d.bob.store, &m, 7).unwrap();
    assert_eq!(request[REQ_KEY_FLAG], 1);
    assert_outcome(&mut d.ab, &request, 50, ResetOutcome::Reset(old));
    let bundle = Mode::Classical.bundle(&mut d.bob.store, &mut d.r);
    let new =
        d.ab.initiate(
            &d.alice.store,
            &bundle,
            &SessionOptions::new(),
            60,
            &mut d.r,
        )
        .unwrap();
    let m = d.ab.encrypt(b"fresh start", &mut d.r).unwrap();
    let got = restored
        .receive(&mut d.bob.store, &m, &SessionOptions::new(), 60)
        .unwrap();
    assert_eq!(
        (got.plaintext.as_slice(), got.session_id),
        (&b"fresh start"[..], new)
    );
    let m = restored.encrypt(b"ok", &mut d.r).unwrap();
    assert_eq!(d.ab.decrypt(&m).unwrap(), b"ok");
    assert_eq!(d.ab.sending_session().unwrap().id(), new);
}

/// An initial message Bob cannot accept (his prekeys are gone): the request names its
/// session, which Alice resets only if she still sends on it.
#[test]
fn decryption_error_for_an_initial_message_names_its_session() {
    let mut r = rng(61);
    let alice = Party::new(&mut r);
    let mut bob = Party::new(&mut r);
    let (a, b) = (*alice.store.identity_key(), *bob.store.identity_key());
    let (a, b) = (&a, &b);
    let mut ab = SessionRecord::new(a, b, RecordLimits::default()).unwrap();
    let bundle = Mode::Classical.bundle(&mut bob.store, &mut r);
    let s1 = ab
        .initiate(&alice.store, &bundle, &SessionOptions::new(), 0, &mut r)
        .unwrap();
    let initial = ab.encrypt(b"hi", &mut r).unwrap();
    // Bob's device was reset: same identity, new prekeys.
    let mut bob2 = device_of(&bob.identity, &mut r).unwrap();
    let mut ba2 = SessionRecord::new(b, a, RecordLimits::default()).unwrap();
    let e = refused(&mut ba2, &mut bob2, |rec, dev| {
        rec.receive(dev, &initial, &SessionOptions::new(), 5)
    });
    assert!(matches!(e, Error::UnknownSignedPreKey(_)), "{e:?}");
    let request = ba2.decryption_error(&bob2, &initial, 5).unwrap();
    assert_eq!(request[REQ_SESSION_FLAG], 1);
    assert_eq!(&request[REQ_SESSION_FLAG + 1..REQ_KEY_FLAG], s1.as_bytes());
    // Alice, who has since started a second session: not the one she sends on.
    let mut ab2 = reloaded(&ab);
    let s2 = ab2
        .initiate(
            &alice.store,
            &Mode::Classical.bundle(&mut bob.store, &mut r),
            &SessionOptions::new(),
            1,
            &mut r,
        )
        .unwrap();
    assert_ne!(s1, s2);
    assert_outcome(&mut ab2, &request, 10, ResetOutcome::NotSending);
    // Alice still on it.
    assert_outcome(&mut ab, &request, 10, ResetOutcome::Reset(s1));
    // An initial message from another identity is no evidence for this record.
    let carol = Party::new(&mut r);
    let mut cb =
        SessionRecord::new(carol.store.identity_key(), b, RecordLimits::default()).unwrap();
    cb.initiate(
        &carol.store,
        &Mode::Classical.bundle(&mut bob.store, &mut r),
        &SessionOptions::new(),
        0,
        &mut r,
    )
    .unwrap();
    let from_carol = cb.encrypt(b"hi bob", &mut r).unwrap();
    assert_eq!(
        ba2.decryption_error(&bob2, &from_carol, 5).map(|_| ()),
        Err(Error::IdentityMismatch)
    );
}

/// Every request that is not exactly a valid one, signed by the record's contact and
/// addressed to the record's device, is refused with a typed error and changes nothing.
#[test]
fn decryption_error_requests_are_authenticated_and_parsed_strictly() {
    let mut d = Duo::new(62, Mode::Classical);
    let carol = Party::new(&mut d.r);
    let (a, b, c) = (
        *d.alice.store.identity_key(),
        *d.bob.store.identity_key(),
        *carol.store.identity_key(),
    );
    let m = d.ab.encrypt(b"m", &mut d.r).unwrap();
    let valid = d.ba.decryption_error(&d.bob.store, &m, 50).unwrap();
    assert_eq!(&valid[REQ_REQUESTER..REQ_RECIPIENT], b.as_bytes());
    assert_eq!(&valid[REQ_RECIPIENT..REQ_SESSION_FLAG], a.as_bytes());
    assert_eq!(&valid[REQ_TIME..REQ_SIGNATURE], &50u64.to_be_bytes());

    let record = &mut d.ab;
    // From another identity, to another identity.
    let ca = SessionRecord::new(&c, &a, RecordLimits::default()).unwrap();
    let from_carol = ca.decryption_error(&carol.store, &m, 50).unwrap();
    assert_refused(record, Error::IdentityMismatch, |rec| {
        rec.handle_decryption_error(&from_carol, 60)
    });
    let bc = SessionRecord::new(&b, &c, RecordLimits::default()).unwrap();
    let to_carol = bc.decryption_error(&d.bob.store, &m, 50).unwrap();
    assert_refused(record, Error::WrongRecord, |rec| {
        rec.handle_decryption_error(&to_carol, 60)
    });
    let own = record.decryption_error(&d.alice.store, &m, 50).unwrap();
    assert_refused(record, Error::WrongRecord, |rec| {
        rec.handle_decryption_error(&own, 60)
    });

    // Forged: any bit of the signature, of the time, of the optional fields.
    for bit in 0..8 * (REQ_LENGTH - REQ_SIGNATURE) {
        let mut f = valid.clone();
        f[REQ_SIGNATURE + bit / 8] ^= 1 << (bit % 8);
        assert_refused(record, Error::InvalidSignature, |rec| {
            rec.handle_decryption_error(&f, 60)
        });
    }
    for i in REQ_TIME..REQ_SIGNATURE {
        let mut f = valid.clone();
        f[i] ^= 0x10;
        assert_refused(record, Error::InvalidSignature, |rec| {
            rec.handle_decryption_error(&f, 60)
        });
    }
    let mut f = valid.clone();
    f[REQ_SESSION_FLAG] = 1;
    assert_refused(record, Error::InvalidSignature, |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    let mut f = valid.clone();
    f[REQ_KEY_FLAG] = 0;
    assert_refused(record, Error::InvalidEncoding, |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    let mut f = valid.clone();
    f[REQ_SESSION_FLAG + 5] = 1;
    assert_refused(record, Error::InvalidEncoding, |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    for flag in [REQ_SESSION_FLAG, REQ_KEY_FLAG] {
        let mut f = valid.clone();
        f[flag] = 2;
        assert_refused(record, Error::InvalidEncoding, |rec| {
            rec.handle_decryption_error(&f, 60)
        });
    }
    let mut f = valid.clone();
    f[REQ_KEY_FLAG + 1..REQ_TIME].fill(0);
    assert_refused(record, Error::InvalidPublicKey, |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    // Identity keys: another key (its owner is not the contact, or the recipient is not
    // this device) or no key at all.
    for i in REQ_REQUESTER..REQ_SESSION_FLAG {
        let mut f = valid.clone();
        f[i] ^= 1 << (i % 8);
        let before = bytes(record);
        let e = record.handle_decryption_error(&f, 60).unwrap_err();
        let allowed = if i < REQ_RECIPIENT {
            [Error::InvalidPublicKey, Error::IdentityMismatch]
        } else {
            [Error::InvalidPublicKey, Error::WrongRecord]
        };
        assert!(allowed.contains(&e), "byte {i}: {e:?}");
        assert!(bytes(record) == before);
    }
    // Framing.
    for len in 0..REQ_LENGTH {
        assert_refused(record, Error::Truncated, |rec| {
            rec.handle_decryption_error(&valid[..len], 60)
        });
    }
    let trailing = [&valid[..], &[0]].concat();
    assert_refused(record, Error::TrailingData, |rec| {
        rec.handle_decryption_error(&trailing, 60)
    });
    let mut f = valid.clone();
    f[0] = 9;
    assert_refused(record, Error::UnsupportedVersion(9), |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    let mut f = valid.clone();
    f[1] = 0x01;
    assert_refused(record, Error::UnexpectedType(0x01), |rec| {
        rec.handle_decryption_error(&f, 60)
    });
    assert_refused(record, Error::UnexpectedType(0x01), |rec| {
        rec.handle_decryption_error(&m, 60)
    });
    let huge = [&valid[..], &vec![0u8; MAX_MESSAGE_SIZE]].concat();
    assert_refused(record, Error::TooLarge, |rec| {
        rec.handle_decryption_error(&huge, 60)
    });

    // After all that, the valid request still acts.
    let id = record.sending_session().unwrap().id();
    assert_outcome(record, &valid, 60, ResetOutcome::Reset(id));
}

// ---------------------------------------------------------------------------------------
// 5. Unacknowledged sessions (SPEC.md §6.7)
// ---------------------------------------------------------------------------------------

#[test]
fn status_reports_an_unacknowledged_session_until_a_reply() {
    let limits = RecordLimits::default().with_unacknowledged_after(50);
    let mut c = Contact::new(70, limits);
    assert_eq!(c.record.status(100), RecordStatus::NoSession);
    let first = c.add(Mode::Classical, 100);
    let awaiting = RecordStatus::AwaitingReply { since: 100 };
    let unacknowledged = RecordStatus::Unacknowledged { since: 100 };
    assert_eq!(c.record.status(100), awaiting);
    assert_eq!(c.record.status(150), awaiting);
    assert_eq!(c.record.status(151), unacknowledged);
    assert_eq!(c.record.status(u64::MAX), unacknowledged);
    // A clock that went back.
    assert_eq!(c.record.status(0), awaiting);
    // The time is stored; sending does not change it.
    c.record = reloaded(&c.record);
    let _ = c.record.encrypt(b"anyone?", &mut c.r).unwrap();
    assert_eq!(c.record.status(151), unacknowledged);
    // The threshold is the record's limit.
    c.record
        .set_limits(limits.with_unacknowledged_after(10))
        .unwrap();
    assert_eq!(c.record.status(111), unacknowledged);
    assert_eq!(c.record.status(110), awaiting);
    c.record.set_limits(limits).unwrap();
    // The app initiates again: the new session dates from now.
    let second = c.add(Mode::Classical, 300);
    assert_eq!(
        c.record.status(350),
        RecordStatus::AwaitingReply { since: 300 }
    );
    assert_eq!(
        c.record.status(351),
        RecordStatus::Unacknowledged { since: 300 }
    );
    // A reply on the sending session: ready, whatever the time.
    let reply = c.bob_sends(second, b"here");
    assert_eq!(c.record.decrypt(&reply).unwrap(), b"here");
    assert_eq!(c.record.status(u64::MAX), RecordStatus::Ready);
    // A reply on the first one too: still ready.
    let reply = c.bob_sends(first, b"me too");
    assert_eq!(c.record.decrypt(&reply).unwrap(), b"me too");
    assert_eq!(c.record.status(u64::MAX), RecordStatus::Ready);
    // The responder's side is ready at once.
    let mut r = rng(71);
    let mut alice = LocalDevice::new(0, &mut r).unwrap();
    let bob = LocalDevice::new(0, &mut r).unwrap();
    let mut ab = SessionRecord::new(alice.identity_key(), bob.identity_key(), limits).unwrap();
    let mut b = bob
        .initiate(
            &Mode::Classical.bundle(&mut alice, &mut r),
            &SessionOptions::new(),
            &mut r,
        )
        .unwrap();
    let m = b.encrypt(b"hi", &mut r).unwrap();
    assert!(
        ab.receive(&mut alice, &m, &SessionOptions::new(), 5)
            .unwrap()
            .new_session
    );
    assert_eq!(ab.status(u64::MAX), RecordStatus::Ready);
}

// ---------------------------------------------------------------------------------------
// 6. Properties: storing and loading at every step, refusals change nothing
// ---------------------------------------------------------------------------------------

/// One operation of a random run; `bool` picks the side (Alice `true`, Bob `false`).
#[derive(Clone, Debug)]
enum Op {
    /// Encrypt on the side's sending session (or be refused: no session).
    Send(bool),
    /// Deliver one of the messages on their way to the side.
    Deliver(bool, Index),
    /// Lose one of them.
    Drop(bool, Index),
    /// Deliver again a message the side decrypted.
    Replay(bool, Index),
    /// Initiate a new session from a fresh bundle of the other side, with header
    /// encryption or not.
    Initiate(bool, bool),
    /// A corrupted copy of a message the side has seen or will see, or garbage.
    Hostile(bool, Index, u8),
    /// Archive the side's sending session.
    Archive(bool),
    /// New limits: max archived, max trials, max stored skipped.
    SetLimits(bool, u32, u32, u32),
    /// The side asks the other to reset over a message it received.
    Request(bool, Index),
    /// The side's clock moves on.
    Tick(bool, u16),
}

fn op() -> impl Strategy<Value = Op> {
    let side = any::<bool>;
    prop_oneof![
        4 => side().prop_map(Op::Send),
        4 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Deliver(s, i)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Drop(s, i)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Replay(s, i)),
        1 => (side(), any::<bool>()).prop_map(|(s, he)| Op::Initiate(s, he)),
        2 => (side(), any::<Index>(), any::<u8>()).prop_map(|(s, i, k)| Op::Hostile(s, i, k)),
        1 => side().prop_map(Op::Archive),
        1 => (side(), 1u32..4, 1u32..4, 0u32..24).prop_map(|(s, a, t, k)| Op::SetLimits(s, a, t, k)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Request(s, i)),
        1 => (side(), any::<u16>()).prop_map(|(s, t)| Op::Tick(s, t)),
    ]
}

/// One side of a random run.
struct RunSide {
    device: LocalDevice,
    record: SessionRecord,
    /// Messages on their way to this side, with their plaintexts.
    inbox: Vec<(Vec<u8>, Vec<u8>)>,
    /// Messages this side decrypted.
    decrypted: Vec<Vec<u8>>,
    /// Every message delivered to this side.
    delivered: Vec<Vec<u8>>,
    now: u64,
}

/// Stores and loads `record`; the loaded record must store the same bytes.
fn reload_checked(record: &SessionRecord) -> Result<SessionRecord, TestCaseError> {
    let stored = record.to_bytes();
    let loaded = SessionRecord::from_bytes(&stored)
        .map_err(|e| TestCaseError::fail(format!("a stored record does not load: {e:?}")))?;
    prop_assert_eq!(&loaded.to_bytes()[..], &stored[..]);
    Ok(loaded)
}

/// Runs `ops` from `seed`. With `reload`, both records are replaced by their reloaded
/// copies before every operation. Returns the transcript: every outcome and both records'
/// bytes after every operation. Checks along the way that every refusal left the record
/// (and the device) byte-identical, that a decrypted message gives its own plaintext and
/// never decrypts twice, and that the record's bounds hold.
fn run_ops(ops: &[Op], seed: u64, reload: bool) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let mut r = rng(seed);
    let mut sides = Vec::new();
    let alice = LocalDevice::new(0, &mut r).unwrap();
    let bob = LocalDevice::new(0, &mut r).unwrap();
    for (local, remote) in [(&alice, &bob), (&bob, &alice)] {
        let record = SessionRecord::new(
            local.identity_key(),
            remote.identity_key(),
            RecordLimits::default(),
        )
        .unwrap();
        sides.push(record);
    }
    let mut sides: Vec<RunSide> = [alice, bob]
        .into_iter()
        .zip(sides)
        .map(|(device, record)| RunSide {
            device,
            record,
            inbox: Vec::new(),
            decrypted: Vec::new(),
            delivered: Vec::new(),
            now: 0,
        })
        .collect();
    // Alice starts, so that there is traffic from the first operation.
    let bundle = Mode::Classical.bundle(&mut sides[1].device, &mut r);
    let a = &mut sides[0];
    a.record
        .initiate(&a.device, &bundle, &SessionOptions::new(), 0, &mut r)
        .unwrap();

    let opts = SessionOptions::new();
    let mut transcript = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        if reload {
            for side in &mut sides {
                side.record = reload_checked(&side.record)?;
            }
        }
        let (me, other) = match op {
            Op::Send(a)
            | Op::Deliver(a, _)
            | Op::Drop(a, _)
            | Op::Replay(a, _)
            | Op::Initiate(a, _)
            | Op::Hostile(a, _, _)
            | Op::Archive(a)
            | Op::SetLimits(a, ..)
            | Op::Request(a, _)
            | Op::Tick(a, _) => {
                if *a {
                    (0, 1)
                } else {
                    (1, 0)
                }
            }
        };
        // Deliveries, drops, replays and requests need a message: take the other side's
        // if this one has none.
        let (me, other) = match op {
            Op::Deliver(..) | Op::Drop(..) if sides[me].inbox.is_empty() => (other, me),
            Op::Replay(..) if sides[me].decrypted.is_empty() => (other, me),
            Op::Request(..) if sides[me].delivered.is_empty() => (other, me),
            Op::Send(_) if sides[me].record.sending_session().is_none() => (other, me),
            _ => (me, other),
        };
        let before = bytes(&sides[me].record);
        let device_before = sides[me].device.to_bytes().to_vec();
        let outcome: String = match op {
            Op::Send(_) => {
                let plaintext = text("p", step);
                match sides[me].record.encrypt(&plaintext, &mut r) {
                    Ok(wire) => {
                        sides[other].inbox.push((wire, plaintext));
                        "sent".into()
                    }
                    Err(e) => {
                        prop_assert_eq!(e, Error::NoSession);
                        prop_assert_eq!(sides[me].record.status(0), RecordStatus::NoSession);
                        prop_assert!(bytes(&sides[me].record) == before);
                        format!("{e:?}")
                    }
                }
            }
            Op::Deliver(_, i) if !sides[me].inbox.is_empty() => {
                let side = &mut sides[me];
                let (wire, plaintext) = side.inbox.remove(i.index(side.inbox.len()));
                side.delivered.push(wire.clone());
                match side
                    .record
                    .receive(&mut side.device, &wire, &opts, side.now)
                {
                    Ok(got) => {
                        prop_assert_eq!(&got.plaintext, &plaintext);
                        side.decrypted.push(wire);
                        format!("{:?} {}", got.session_id, got.new_session)
                    }
                    Err(e) => {
                        prop_assert!(bytes(&side.record) == before, "{:?} changed the record", e);
                        prop_assert!(side.device.to_bytes()[..] == device_before[..]);
                        format!("{e:?}")
                    }
                }
            }
            Op::Drop(_, i) if !sides[me].inbox.is_empty() => {
                let len = sides[me].inbox.len();
                sides[me].inbox.remove(i.index(len));
                "dropped".into()
            }
            Op::Replay(_, i) if !sides[me].decrypted.is_empty() => {
                let side = &mut sides[me];
                let wire = side.decrypted[i.index(side.decrypted.len())].clone();
                let result = side
                    .record
                    .receive(&mut side.device, &wire, &opts, side.now);
                prop_assert!(result.is_err(), "a message decrypted twice");
                prop_assert!(bytes(&side.record) == before);
                prop_assert!(side.device.to_bytes()[..] == device_before[..]);
                format!("{:?}", result.err())
            }
            Op::Initiate(_, he) => {
                let bundle = Mode::Classical.bundle(&mut sides[other].device, &mut r);
                let options = if *he {
                    SessionOptions::new().header_encryption()
                } else {
                    SessionOptions::new()
                };
                let side = &mut sides[me];
                let id = side
                    .record
                    .initiate(&side.device, &bundle, &options, side.now, &mut r)
                    .unwrap();
                prop_assert_eq!(side.record.sending_session().map(Session::id), Some(id));
                format!("{id:?}")
            }
            Op::Hostile(_, i, kind) => {
                let side = &mut sides[me];
                let seen: Vec<&Vec<u8>> = side
                    .inbox
                    .iter()
                    .map(|(w, _)| w)
                    .chain(&side.decrypted)
                    .collect();
                let input = if seen.is_empty() || kind % 4 == 3 {
                    let mut g = vec![
                        WIRE_VERSION,
                        [0x01, 0x02, 0x04, 0x05][usize::from(*kind % 4)],
                    ];
                    g.extend((0..i.index(200)).map(|_| below(&mut r, 256) as u8));
                    g
                } else {
                    let base = seen[i.index(seen.len())];
                    let at = usize::from(*kind) * 7 % base.len();
                    if kind % 4 == 0 {
                        base[..at].to_vec()
                    } else {
                        let mut f = base.clone();
                        f[at] ^= 1 << (kind % 8);
                        f
                    }
                };
                let result = side
                    .record
                    .receive(&mut side.device, &input, &opts, side.now);
                let Err(e) = result else {
                    return Err(TestCaseError::fail("a corrupted message was accepted"));
                };
                prop_assert!(sensible(e) || e == Error::NoSession, "{:?}", e);
                prop_assert!(bytes(&side.record) == before);
                prop_assert!(side.device.to_bytes()[..] == device_before[..]);
                format!("{e:?}")
            }
            Op::Archive(_) => {
                let archived = sides[me].record.archive_sending_session();
                prop_assert_eq!(sides[me].record.status(0), RecordStatus::NoSession);
                format!("{archived:?}")
            }
            Op::SetLimits(_, archived, trials, skipped) => {
                let limits = RecordLimits::default()
                    .with_max_archived(*archived)
                    .with_max_trials(*trials)
                    .with_max_stored_skipped(*skipped);
                sides[me].record.set_limits(limits).unwrap();
                prop_assert_eq!(sides[me].record.limits(), limits);
                "limits".into()
            }
            Op::Request(_, i) if !sides[me].delivered.is_empty() => {
                let side = &sides[me];
                let failed = &side.delivered[i.index(side.delivered.len())];
                let request = side
                    .record
                    .decryption_error(&side.device, failed, side.now)
                    .unwrap();
                let now = sides[other].now;
                let target = &mut sides[other].record;
                let target_before = bytes(target);
                match target.handle_decryption_error(&request, now) {
                    Ok(ResetOutcome::Reset(id)) => {
                        prop_assert_eq!(target.status(now), RecordStatus::NoSession);
                        prop_assert!(
                            target.session_ids().any(|s| s == id)
                                || target.limits().max_archived == 0
                        );
                        format!("reset {id:?}")
                    }
                    result => {
                        prop_assert!(
                            bytes(target) == target_before,
                            "{:?} changed the record",
                            result
                        );
                        format!("{result:?}")
                    }
                }
            }
            Op::Tick(_, dt) => {
                sides[me].now += u64::from(*dt) * 16;
                "tick".into()
            }
            _ => "nothing".into(),
        };
        for side in &sides {
            let record = &side.record;
            let limits = record.limits();
            prop_assert!(record.len() <= limits.max_archived as usize + 1);
            prop_assert!(record.stored_skipped_keys() <= limits.max_stored_skipped as usize);
            reload_checked(record)?;
        }
        transcript.push(outcome.into_bytes());
        for side in &sides {
            transcript.push(bytes(&side.record));
        }
    }
    Ok(transcript)
}

/// Few cases, a fixed seed (the same cases every run), and no regression files written
/// into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x2b),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(40))]

    /// Any sequence of record operations: every record state reloads to the same bytes, a
    /// refusal changes nothing, and a run whose records are stored and loaded before every
    /// operation behaves exactly as one that keeps them in memory (same outcomes, same
    /// ciphertexts, same stored bytes).
    #[test]
    fn any_operations_survive_reloading_with_identical_behaviour(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let kept = run_ops(&ops, seed, false)?;
        let reloaded = run_ops(&ops, seed, true)?;
        prop_assert_eq!(kept.len(), reloaded.len());
        for (i, (a, b)) in kept.iter().zip(&reloaded).enumerate() {
            prop_assert!(a == b, "the runs differ at transcript entry {}", i);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 7. Hostile stored records (SPEC.md §7.8)
// ---------------------------------------------------------------------------------------

/// Alice's record with Bob with every field of SPEC.md §7.8 in use: a sending session and
/// archived ones (one header-encrypted and retired by a decryption-error request), stored
/// skipped keys, the last decrypting session and the last reset.
fn rich_record() -> Contact {
    let mut c = Contact::new(80, RecordLimits::default().with_max_archived(5));
    let s0 = c.add_established(Mode::Classical, 1);
    let s1 = c.add_established(Mode::HeaderEncrypted, 2);
    let m = c.record.encrypt(b"to bob", &mut c.r).unwrap();
    let bob_record = SessionRecord::new(
        c.bob.identity_key(),
        c.alice.identity_key(),
        RecordLimits::default(),
    )
    .unwrap();
    let request = bob_record.decryption_error(&c.bob, &m, 9).unwrap();
    assert_eq!(
        c.record.handle_decryption_error(&request, 10),
        Ok(ResetOutcome::Reset(s1))
    );
    let s2 = c.add_established(Mode::Classical, 11);
    let burst: Vec<Vec<u8>> = (0..4).map(|i| c.bob_sends(s0, &text("b", i))).collect();
    assert_eq!(c.record.decrypt(&burst[3]).unwrap(), text("b", 3));
    let m = c.bob_sends(s2, b"last");
    assert_eq!(c.record.decrypt(&m).unwrap(), b"last");
    let stored = StoredRecord::of(&c.record);
    assert!(stored.has_sending());
    assert_eq!(stored.entries.len(), 3);
    assert_eq!(stored.entries.iter().filter(|e| e.retired).count(), 1);
    assert_eq!(stored.fixed[LAST_DECRYPTED], 1);
    assert_eq!(stored.fixed[LAST_RESET], 1);
    assert_eq!(c.record.stored_skipped_keys(), 3);
    c
}

/// A loader's answer to hostile bytes: an error other than `Internal`, or a record whose
/// encoding is exactly the bytes (so no two encodings load to one record).
#[track_caller]
fn load_or_refuse(bytes: &[u8]) -> Result<SessionRecord, Error> {
    let result = SessionRecord::from_bytes(bytes);
    match &result {
        Ok(record) => assert!(
            record.to_bytes()[..] == bytes[..],
            "a non-canonical encoding loaded"
        ),
        Err(e) => assert_ne!(*e, Error::Internal),
    }
    result
}

#[test]
fn stored_record_truncations_and_trailing_bytes_are_refused() {
    let c = rich_record();
    let stored = bytes(&c.record);
    for len in 0..stored.len() {
        assert_eq!(
            SessionRecord::from_bytes(&stored[..len]).map(|_| ()),
            Err(Error::Truncated),
            "length {len} of {}",
            stored.len()
        );
    }
    for extra in [&[0u8][..], &[1], &[0; 40]] {
        let long = [&stored[..], extra].concat();
        assert_eq!(
            SessionRecord::from_bytes(&long).map(|_| ()),
            Err(Error::TrailingData)
        );
    }
    assert_eq!(
        SessionRecord::from_bytes(&vec![0u8; MAX_RECORD_SIZE + 1]).map(|_| ()),
        Err(Error::TooLarge)
    );
    // Other stored objects are not records.
    let session = StoredRecord::of(&c.record).entries[0].session.clone();
    assert_eq!(
        SessionRecord::from_bytes(&session).map(|_| ()),
        Err(Error::UnexpectedType(session[1]))
    );
    let device = c.alice.to_bytes();
    assert_eq!(
        SessionRecord::from_bytes(&device).map(|_| ()),
        Err(Error::UnexpectedType(device[1]))
    );
    let mut f = stored.clone();
    f[0] ^= 0x40;
    assert_eq!(
        SessionRecord::from_bytes(&f).map(|_| ()),
        Err(Error::UnsupportedVersion(f[0]))
    );
}

/// Every bit of the fixed fields flipped: refused, except in the limits (within the caps and
/// above what the record holds) and the times of the last reset, which any value is; a
/// record that loads stores the same bytes. Bits flipped across the whole encoding never
/// panic.
#[test]
fn stored_record_bit_flips_are_refused_or_canonical() {
    let c = rich_record();
    let stored = bytes(&c.record);
    let may_load = |i: usize| {
        (MAX_ARCHIVED..LAST_DECRYPTED).contains(&i) || (LAST_RESET + 1..HAS_SENDING).contains(&i)
    };
    let mut loaded = 0;
    for i in 0..ENTRIES {
        for bit in 0..8 {
            let mut f = stored.clone();
            f[i] ^= 1 << bit;
            match load_or_refuse(&f) {
                Ok(_) => {
                    assert!(may_load(i), "byte {i} bit {bit} loaded");
                    loaded += 1;
                }
                Err(e) => match i {
                    0 => assert_eq!(e, Error::UnsupportedVersion(f[0])),
                    1 => assert_eq!(e, Error::UnexpectedType(f[1])),
                    _ => {}
                },
            }
        }
    }
    assert!(loaded > 100, "{loaded}");
    for i in (ENTRIES..stored.len()).step_by(3) {
        let mut f = stored.clone();
        f[i] ^= 1 << (i % 8);
        let _ = load_or_refuse(&f);
    }
}

/// A stored session does not hold the local identity key (SPEC.md §7.1): the record's
/// entries load with the record's own local identity, which the record stores once, in
/// its fixed fields. Loaded with the remote identity instead, an entry is refused.
#[test]
fn embedded_sessions_load_with_the_records_local_identity() {
    let c = rich_record();
    let encoded = bytes(&c.record);
    let stored = StoredRecord::parse(&encoded);
    let local = *c.record.local_identity();
    let remote = *c.record.remote_identity();
    assert_eq!(&stored.local(), c.alice.identity_key());
    assert_eq!(stored.local(), local);
    let key = local.to_bytes();
    assert_eq!(
        encoded.windows(32).filter(|w| *w == key).count(),
        1,
        "the local identity key is stored once, in the record's fixed fields"
    );
    assert_eq!(encoded[LOCAL..REMOTE], key);
    let ids: Vec<SessionId> = c.record.session_ids().collect();
    assert_eq!(ids.len(), stored.entries.len());
    for (i, entry) in stored.entries.iter().enumerate() {
        assert!(!entry.session.windows(32).any(|w| w == key), "entry {i}");
        let session = Session::from_bytes(&entry.session, &local).unwrap();
        assert_eq!(session.local_identity(), &local, "entry {i}");
        assert_eq!(session.remote_identity(), &remote, "entry {i}");
        assert_eq!(session.id(), ids[i], "entry {i}");
        assert_eq!(&session.to_bytes()[..], &entry.session[..], "entry {i}");
        assert_eq!(stored.session(i).id(), ids[i], "entry {i}");
        assert_eq!(
            Session::from_bytes(&entry.session, &remote).map(|_| ()),
            Err(Error::InvalidEncoding),
            "entry {i} loaded with the remote identity"
        );
    }
    assert_eq!(
        stored
            .sessions()
            .iter()
            .map(Session::id)
            .collect::<Vec<_>>(),
        ids
    );
}

#[test]
fn stored_records_breaking_the_record_invariants_are_refused() {
    let mut c = rich_record();
    let good = StoredRecord::of(&c.record);
    assert_eq!(good.load().map(|r| bytes(&r)), Ok(bytes(&c.record)));
    let refused_with = |s: &StoredRecord| s.load().map(|_| ()).unwrap_err();

    // A session between other identities: Alice and Carol, or Bob's own view.
    let mut r = rng(81);
    let mut carol = LocalDevice::new(0, &mut r).unwrap();
    let mut with_carol = c
        .alice
        .initiate(
            &Mode::Classical.bundle(&mut carol, &mut r),
            &SessionOptions::new(),
            &mut r,
        )
        .unwrap();
    let _ = with_carol.encrypt(b"x", &mut r).unwrap();
    for (k, foreign) in [
        with_carol.to_bytes().to_vec(),
        c.bob_sessions[0].to_bytes().to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..good.entries.len() {
            let mut s = good.clone();
            s.entries[i].session = foreign.clone();
            assert_eq!(
                refused_with(&s),
                Error::InvalidEncoding,
                "foreign {k} at entry {i}"
            );
        }
    }
    // Local and remote identities swapped, or the same.
    let mut s = good.clone();
    let (local, remote) = (
        s.fixed[LOCAL..REMOTE].to_vec(),
        s.fixed[REMOTE..MAX_ARCHIVED].to_vec(),
    );
    s.fixed[LOCAL..REMOTE].copy_from_slice(&remote);
    s.fixed[REMOTE..MAX_ARCHIVED].copy_from_slice(&local);
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    let mut s = good.clone();
    s.fixed[REMOTE..MAX_ARCHIVED].copy_from_slice(&local);
    assert_eq!(refused_with(&s), Error::InvalidEncoding);

    // The same session twice: archived twice, or sending and archived.
    for i in 0..good.entries.len() {
        let mut s = good.clone();
        let copy = s.entries[i].clone();
        s.entries.push(StoredEntry {
            retired: i != 0 && copy.retired,
            ..copy
        });
        s.set_counts(true);
        assert_eq!(refused_with(&s), Error::InvalidEncoding, "entry {i} twice");
    }
    // More archived sessions than the record's limit allows.
    let mut s = good.clone();
    put_u32(&mut s.fixed, MAX_ARCHIVED, good.entries.len() as u32 - 2);
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    // The counts disagree with the entries.
    let mut s = good.clone();
    put_u32(&mut s.fixed, ARCHIVED_COUNT, good.entries.len() as u32);
    assert_eq!(refused_with(&s), Error::Truncated);
    let mut s = good.clone();
    s.fixed[HAS_SENDING] = 0;
    assert_eq!(refused_with(&s), Error::TrailingData);
    s.fixed[HAS_SENDING] = 2;
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    // The sending session retired; a retired flag that is no flag.
    let mut s = good.clone();
    s.entries[0].retired = true;
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    let mut bad_flag = good.to_bytes();
    bad_flag[ENTRIES + 8] = 2;
    assert_eq!(
        SessionRecord::from_bytes(&bad_flag).map(|_| ()),
        Err(Error::InvalidEncoding)
    );
    // An archived session un-retired, or retired: both are records the operations can
    // make.
    for i in 1..good.entries.len() {
        let mut s = good.clone();
        s.entries[i].retired = !s.entries[i].retired;
        assert!(s.load().is_ok(), "entry {i}");
    }
    // The last decrypting session names no session of the record.
    let mut s = good.clone();
    s.fixed[LAST_DECRYPTED + 1] ^= 1;
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    let mut s = good.clone();
    s.fixed[LAST_DECRYPTED] = 0;
    assert_eq!(
        refused_with(&s),
        Error::InvalidEncoding,
        "absent with a non-zero id"
    );
    s.fixed[LAST_DECRYPTED + 1..LAST_RESET].fill(0);
    assert!(s.load().is_ok(), "absent");
    let mut s = good.clone();
    s.fixed[LAST_RESET] = 0;
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    // Limits above the caps, or below what the record holds.
    for (at, value) in [
        (MAX_ARCHIVED, MAX_ARCHIVED_CAP + 1),
        (MAX_TRIALS, 0),
        (MAX_TRIALS, MAX_ARCHIVED_CAP + 2),
        (MAX_STORED_SKIPPED, MAX_RECORD_STORED_SKIPPED_CAP + 1),
        (MAX_STORED_SKIPPED, u32::MAX),
    ] {
        let mut s = good.clone();
        put_u32(&mut s.fixed, at, value);
        assert_eq!(refused_with(&s), Error::InvalidLimits, "{at} = {value}");
    }
    let mut s = good.clone();
    put_u32(
        &mut s.fixed,
        MAX_STORED_SKIPPED,
        c.record.stored_skipped_keys() as u32 - 1,
    );
    assert_eq!(refused_with(&s), Error::InvalidEncoding);
    // An entry's length that overruns, or cuts its session short.
    let mut long = good.to_bytes();
    let len_at = ENTRIES + 9;
    let len = u32::from_be_bytes(long[len_at..len_at + 4].try_into().unwrap());
    put_u32(&mut long, len_at, len + 1);
    assert!(SessionRecord::from_bytes(&long).is_err());
    put_u32(&mut long, len_at, u32::MAX);
    assert_eq!(
        SessionRecord::from_bytes(&long).map(|_| ()),
        Err(Error::Truncated)
    );
    put_u32(&mut long, len_at, len - 1);
    assert!(SessionRecord::from_bytes(&long).is_err());

    // The good one, after all of it.
    c.record = good.load().unwrap();
    let m = c.bob_sends(c.bob_sessions[0].id(), b"still");
    assert_eq!(c.record.decrypt(&m).unwrap(), b"still");
}

// ---------------------------------------------------------------------------------------
// 8. Sealing (SPEC.md §7.6)
// ---------------------------------------------------------------------------------------

#[test]
fn sealed_records_open_only_with_their_key_and_context() {
    let mut c = rich_record();
    let key = StorageKey::generate(&mut c.r).unwrap();
    let sealed = key
        .seal(&c.record, b"contact 7 / device 2", &mut c.r)
        .unwrap();
    let mut opened: SessionRecord = key.open(&sealed, b"contact 7 / device 2").unwrap();
    assert_eq!(bytes(&opened), bytes(&c.record));
    let id = c.bob_sessions[0].id();
    let m = c.bob_sends(id, b"after opening");
    assert_eq!(opened.decrypt(&m).unwrap(), b"after opening");

    let wrong_context = key.open::<SessionRecord>(&sealed, b"contact 8 / device 2");
    assert_eq!(wrong_context.map(|_| ()), Err(Error::DecryptionFailed));
    let other_key = StorageKey::generate(&mut c.r).unwrap();
    let wrong_key = other_key.open::<SessionRecord>(&sealed, b"contact 7 / device 2");
    assert_eq!(wrong_key.map(|_| ()), Err(Error::DecryptionFailed));
    let as_session = key.open_session(&sealed, b"contact 7 / device 2", c.record.local_identity());
    assert_eq!(as_session.map(|_| ()), Err(Error::UnexpectedType(0x2B)));
    let sealed_session = key
        .seal(&c.bob_sessions[0], b"contact 7 / device 2", &mut c.r)
        .unwrap();
    let as_record = key.open::<SessionRecord>(&sealed_session, b"contact 7 / device 2");
    assert_eq!(
        as_record.map(|_| ()),
        Err(Error::UnexpectedType(sealed_session[2]))
    );
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let tampered = key.open::<SessionRecord>(&flipped, b"contact 7 / device 2");
    assert_eq!(tampered.map(|_| ()), Err(Error::DecryptionFailed));
}

// ---------------------------------------------------------------------------------------
// Replacing the sending session (SPEC.md §6.6 step 7, §6.8)
// ---------------------------------------------------------------------------------------

/// A session the app initiates stays the sending session when a late message of the
/// previous one arrives, unless that one's id is smaller: `initiate` forgets the last
/// decrypting session, so clause 2's "the previous message also decrypted with it" cannot
/// undo the new session at once.
#[test]
fn initiate_is_not_undone_by_a_late_message_of_the_previous_session() {
    let mut c = Contact::new(41, RecordLimits::default());
    let old = c.add_established(Mode::Classical, 0);
    // The previous message decrypted with `old`; now Alice starts a new session whose id is
    // smaller than `old`'s (drawn until it is), so clause 2's id condition is false.
    let new = loop {
        let id = c.add(Mode::Classical, 1);
        if id < old {
            break id;
        }
    };
    let late = c.bob_sends(old, b"late");
    assert_eq!(c.record.decrypt(&late).unwrap(), b"late");
    assert_eq!(c.record.sending_session().unwrap().id(), new);
    // A second message on `old` in a row moves the sending session (clause 2).
    let again = c.bob_sends(old, b"again");
    assert_eq!(c.record.decrypt(&again).unwrap(), b"again");
    assert_eq!(c.record.sending_session().unwrap().id(), old);
}

/// With no sending session (after `archive_sending_session` or a reset), a late message of
/// an archived session does not make it the sending session again; a session accepted from
/// the contact's new initial message does.
#[test]
fn an_emptied_sending_place_is_filled_only_by_a_new_session() {
    let mut d = Duo::new(42, Mode::Classical);
    let mut r = rng(4242);
    // Alice has an older session too: Bob initiated one she accepted, then hers became
    // sending again.
    let bundle = Mode::Classical.bundle(&mut d.alice.store, &mut r);
    let bob_old =
        d.ba.initiate(&d.bob.store, &bundle, &SessionOptions::new(), 1, &mut r)
            .unwrap();
    let m = d.ba.encrypt(b"from bob", &mut r).unwrap();
    let got =
        d.ab.receive(&mut d.alice.store, &m, &SessionOptions::new(), 1)
            .unwrap();
    assert_eq!(got.session_id, bob_old);
    let retired = d.ab.archive_sending_session().unwrap();
    assert!(d.ab.sending_session().is_none());
    // A late message on a non-retired archived session: decrypted, but no sending session.
    let late = d.ba.encrypt(b"late", &mut r).unwrap();
    let expected_id = d.ba.sending_session().unwrap().id();
    assert!(expected_id == bob_old || expected_id == retired);
    assert_eq!(d.ab.decrypt(&late).unwrap(), b"late");
    assert!(d.ab.sending_session().is_none());
    assert_eq!(d.ab.status(2), RecordStatus::NoSession);
    assert_eq!(d.ab.encrypt(b"x", &mut r).unwrap_err(), Error::NoSession);
    // Bob starts a new session: accepted, it takes the place.
    let bundle = Mode::Classical.bundle(&mut d.alice.store, &mut r);
    let fresh =
        d.ba.initiate(&d.bob.store, &bundle, &SessionOptions::new(), 3, &mut r)
            .unwrap();
    let m = d.ba.encrypt(b"new", &mut r).unwrap();
    let got =
        d.ab.receive(&mut d.alice.store, &m, &SessionOptions::new(), 3)
            .unwrap();
    assert!(got.new_session);
    assert_eq!(d.ab.sending_session().unwrap().id(), fresh);
    let _ = reloaded(&d.ab);
}

/// A request dated far ahead (a requester with a wrong clock) does not make every later
/// request stale: the request time of a reset counts only until the sending session
/// changes.
#[test]
fn a_future_dated_request_does_not_lock_out_later_ones() {
    let mut d = Duo::new(43, Mode::Classical);
    let mut r = rng(4343);
    let m = d.ab.encrypt(b"lost", &mut r).unwrap();
    let future =
        d.ba.decryption_error(&d.bob.store, &m, u64::MAX - 1)
            .unwrap();
    assert!(matches!(
        d.ab.handle_decryption_error(&future, 100).unwrap(),
        ResetOutcome::Reset(_)
    ));
    let bundle = Mode::Classical.bundle(&mut d.bob.store, &mut r);
    let new =
        d.ab.initiate(&d.alice.store, &bundle, &SessionOptions::new(), 200, &mut r)
            .unwrap();
    // Bob, his clock right again, cannot accept the new session's first message either.
    let first = d.ab.encrypt(b"again", &mut r).unwrap();
    let request = d.ba.decryption_error(&d.bob.store, &first, 300).unwrap();
    assert_outcome(&mut d.ab, &request, 100 + 3599, ResetOutcome::RateLimited);
    assert_outcome(&mut d.ab, &request, 100 + 3600, ResetOutcome::Reset(new));
    // The same request again is stale.
    assert_outcome(&mut d.ab, &request, 100 + 7200, ResetOutcome::Stale);
}
