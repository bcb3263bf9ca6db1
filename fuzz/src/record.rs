//! The `record` target: Alice's session record with Bob (SPEC.md §6.3-§6.8), driven by
//! operations on its messages, its decryption-error requests and its limits.
//!
//! The fixture (made once per process) is a record of Alice's holding several sessions
//! with Bob, of both header modes, and Bob's messages on them encrypted in advance (the
//! *pool*):
//!
//! - simultaneous initiation (SPEC.md §6.4): Alice initiates `s1` (header in the clear)
//!   from Bob's bundle while Bob initiates `s2` (header-encrypted) from hers; her record
//!   accepts `s2` from Bob's first initial message (`receive`);
//! - Bob answers on both; Alice answers on her sending session, Bob again on both (new
//!   chains where he received her answer); her record takes some of it, so that its
//!   sessions hold skipped keys;
//! - a re-initiation: Alice starts `s3` (header-encrypted), which becomes her sending
//!   session; Bob accepts it and answers, twice (two chains);
//! - Bob starts `s4` (header in the clear, from Alice's last-resort bundle: her device keeps
//!   a replay record when it accepts) and `s5` (header-encrypted, from a one-time prekey),
//!   whose initial messages have not reached her: `receive` makes new sessions from them;
//! - with PQXDH, Alice also starts `s6` from Bob's PQXDH bundle, and Bob answers.
//!
//! The pool also holds the messages the record took while the fixture was made (as
//! replays), and the decryption-error requests (SPEC.md §6.8) Bob signed for Alice's
//! messages at two times (with PQXDH also for `s6`'s at a third, and for all of them at a
//! fourth), one Carol signed, and one Bob addressed to Carol. The record is
//! loaded once per process and cloned per input (`--cfg fuzzing`; elsewhere loaded), and
//! Alice's device (for `receive`, `initiate`, `decryption_error`) kept while unchanged.
//!
//! An input is a list of [`RecordOp`]s, decoded with `arbitrary`. After every operation:
//!
//! - the record's encoding is read field by field (SPEC.md §7.8) and agrees with its API
//!   (identities, limits, the sending session and its encoding, `len`, `session_ids`,
//!   `status`), and the record is within its limits (`len() <= max_archived + 1`,
//!   `stored_skipped_keys() <= max_stored_skipped`, ids distinct, the last decrypting
//!   session one of its own, the sending session not retired);
//! - a changed encoding loads (`from_bytes`) and stores again to the same bytes;
//! - every failed call left the encoding (and Alice's device) byte-identical;
//! - the record's order of sessions, retired flags, times, last decrypting session and
//!   last reset are what a model of SPEC.md §6.4, §6.6 step 7, §6.7 and §6.8 predicts;
//! - a plaintext comes only from a pool message (byte for byte), is that message's
//!   plaintext, from its session, once; Alice's own messages and altered bytes never
//!   decrypt; an unaltered pool message not accepted before is accepted if its session is
//!   in the record (unless the fuzzer lowered the limits), and a new session is accepted
//!   from an initial message of a session the record never held (`receive`, options
//!   permitting) whatever the limits;
//! - a genuine request has exactly the outcome of SPEC.md §6.8 (a model of the last reset,
//!   the rate limit and the session it names); an altered one is always refused; a
//!   retired session never becomes the sending session again;
//! - Alice's messages are of her sending session's kind and padded length, and Bob's side
//!   of that session decrypts them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use crate::decode_message::check_message_layout;
use crate::prelude::*;
use crate::session::plaintext_for;
use doubleratchet_test_support::device_of;

/// A session id's 32 bytes.
pub(crate) type Id = [u8; 32];

/// The most operations the `record` target runs for one input.
const MAX_RECORD_OPS: usize = 64;
/// The most reloads and initiations an input makes (later ones do nothing): loading a
/// record loads every session in it, and initiating runs X3DH.
const MAX_RELOADS: usize = 2;
const MAX_INITIATIONS: usize = 3;
/// The time (the app's, in seconds) the fixture ends at: every input's clock starts there.
const FIXTURE_END: u64 = 10_000;

/// The record's limits in the fixture: the defaults, except that every candidate session
/// is tried (so that a fresh pool message of a session the record holds is always
/// accepted, SPEC.md §6.6), until the fuzzer lowers them.
pub(crate) fn fixture_limits() -> RecordLimits {
    RecordLimits::default().with_max_trials(MAX_ARCHIVED_CAP + 1)
}

/// One of Bob's messages to Alice.
pub(crate) struct PoolMessage {
    /// Which session and chain, and the message's place in it (`s1-chain1-0`).
    pub(crate) label: String,
    pub(crate) session: Id,
    pub(crate) wire: Vec<u8>,
    pub(crate) plaintext: Vec<u8>,
    pub(crate) initial: bool,
    pub(crate) header_encrypted: bool,
    pub(crate) post_quantum: bool,
    /// Alice's record accepted it while the fixture was made.
    pub(crate) accepted: bool,
}

/// A genuine decryption-error request (SPEC.md §6.8), signed by its requester.
pub(crate) struct PoolRequest {
    /// The failed message it names and its time (`s3-initial-at-2000`), or `carol-...`,
    /// `to-carol-...`.
    pub(crate) label: String,
    pub(crate) wire: Vec<u8>,
}

/// Alice's record and everything around it (see the module documentation).
pub(crate) struct RecordFixture {
    /// Alice's record, stored (loaded per input without `--cfg fuzzing`).
    #[cfg_attr(fuzzing, allow(dead_code))]
    pub(crate) record: Vec<u8>,
    /// The same, loaded (cloned per input).
    #[cfg(fuzzing)]
    prepared: SessionRecord,
    /// Alice's device, stored (two one-time prekeys, one used by `s2`).
    pub(crate) device: Vec<u8>,
    pub(crate) pool: Vec<PoolMessage>,
    /// Every message Alice sent while the fixture was made, in order.
    pub(crate) alice_sent: Vec<Vec<u8>>,
    /// The ratchet key (`DHs`) of Alice's last message on each of her sessions with the
    /// header in the clear: what a request's ratchet key is compared with (SPEC.md §6.8).
    pub(crate) sent_keys: Vec<(Id, [u8; 32])>,
    pub(crate) requests: Vec<PoolRequest>,
    /// Bob's side of every session, stored, by id.
    pub(crate) bob: Vec<(Id, Vec<u8>)>,
    /// Stored records along the way (the `record_load` seeds): name and encoding.
    pub(crate) snapshots: Vec<(String, Vec<u8>)>,
}

impl RecordFixture {
    /// The index of the pool message labelled `label`.
    pub(crate) fn message(&self, label: &str) -> usize {
        self.pool
            .iter()
            .position(|m| m.label == label)
            .unwrap_or_else(|| panic!("no pool message {label}"))
    }

    /// The index of the request labelled `label`.
    pub(crate) fn request(&self, label: &str) -> usize {
        self.requests
            .iter()
            .position(|r| r.label == label)
            .unwrap_or_else(|| panic!("no request {label}"))
    }

    /// A copy of Alice's record as the fixture left it.
    fn copy_record(&self) -> SessionRecord {
        #[cfg(fuzzing)]
        {
            self.prepared.clone()
        }
        #[cfg(not(fuzzing))]
        reload_record(&self.record)
    }
}

pub(crate) fn record_fixture() -> &'static RecordFixture {
    static FIXTURE: OnceLock<RecordFixture> = OnceLock::new();
    FIXTURE.get_or_init(make_record_fixture)
}

thread_local! {
    /// Alice's device in its fixture state, kept between inputs while unchanged (loading
    /// one derives every key pair in it).
    static ALICE_DEVICE: RefCell<Option<LocalDevice>> = const { RefCell::new(None) };
}

/// A copy of Alice's device in its fixture state.
pub(crate) fn take_alice_device() -> LocalDevice {
    ALICE_DEVICE
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_else(|| LocalDevice::from_bytes(&record_fixture().device).unwrap())
}

/// Gives back a device of [`take_alice_device`]: kept for the next input only if it is
/// still in its fixture state.
pub(crate) fn return_alice_device(device: LocalDevice) {
    if *device.to_bytes() == *record_fixture().device {
        ALICE_DEVICE.with(|cell| *cell.borrow_mut() = Some(device));
    }
}

/// Loads `bytes` as a record and checks it stores the same bytes.
pub(crate) fn reload_record(bytes: &[u8]) -> SessionRecord {
    let r = SessionRecord::from_bytes(bytes)
        .unwrap_or_else(|e| panic!("a record's own encoding does not load: {e:?}"));
    assert_eq!(*r.to_bytes(), bytes, "record re-encodes differently");
    r
}

/// The plaintext of pool message `k` of `label`: lengths vary around Padmé's minimum.
fn pool_plaintext(label: &str, k: usize) -> Vec<u8> {
    let seed = label.bytes().fold(0usize, |h, b| h * 31 + usize::from(b)) % 251;
    let len = (seed + k * 13) % 90;
    (0..len).map(|i| (seed + k * 7 + i) as u8).collect()
}

/// The record being made, Alice's device, Bob's sessions, and what was sent.
struct Builder {
    record: SessionRecord,
    alice: LocalDevice,
    bob: Vec<Session>,
    pool: Vec<PoolMessage>,
    alice_sent: Vec<Vec<u8>>,
    sent_keys: BTreeMap<Id, [u8; 32]>,
    /// Alice's messages by label, for the requests.
    failed: Vec<(String, Vec<u8>)>,
}

impl Builder {
    fn bob_of(&mut self, id: Id) -> &mut Session {
        self.bob
            .iter_mut()
            .find(|s| *s.id().as_bytes() == id)
            .expect("Bob has the session")
    }

    /// Alice's record initiates from `bundle`, sends its first message, and `bob` accepts it.
    fn alice_initiates(
        &mut self,
        bob: &mut LocalDevice,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        now: u64,
        label: &str,
        rng: &mut ChaCha20Rng,
    ) -> Id {
        let id = *self
            .record
            .initiate(&self.alice, bundle, options, now, rng)
            .unwrap()
            .as_bytes();
        assert_eq!(self.sending(), Some(id), "an initiated session sends");
        let plaintext = format!("alice: {label}").into_bytes();
        let wire = self.record.encrypt(&plaintext, rng).unwrap();
        self.sent(id, label, &wire);
        let accepted = bob.accept(&wire, &SessionOptions::new()).unwrap();
        assert_eq!(accepted.plaintext, plaintext);
        assert_eq!(*accepted.session.id().as_bytes(), id);
        self.bob.push(accepted.session);
        id
    }

    /// Alice sends on her record's sending session; Bob's side of it decrypts.
    fn alice_sends(&mut self, label: &str, rng: &mut ChaCha20Rng) {
        let id = self.sending().unwrap();
        let plaintext = format!("alice: {label}").into_bytes();
        let wire = self.record.encrypt(&plaintext, rng).unwrap();
        self.sent(id, label, &wire);
        assert_eq!(self.bob_of(id).decrypt(&wire).unwrap(), plaintext);
    }

    fn sent(&mut self, id: Id, label: &str, wire: &[u8]) {
        if let Some(key) = Message::parse(wire).unwrap().ratchet_key() {
            self.sent_keys.insert(id, key.to_bytes());
        }
        self.alice_sent.push(wire.to_vec());
        self.failed.push((label.to_string(), wire.to_vec()));
    }

    fn sending(&self) -> Option<Id> {
        self.record.sending_session().map(|s| *s.id().as_bytes())
    }

    /// Bob initiates from Alice's `bundle`.
    fn bob_initiates(
        &mut self,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        rng: &mut ChaCha20Rng,
    ) -> Id {
        let s = Session::initiate(&fixture().bob, bundle, options, rng).unwrap();
        let id = *s.id().as_bytes();
        self.bob.push(s);
        id
    }

    /// Bob sends `n` messages on his side of session `id`: pool messages, returned by index.
    fn bob_sends(&mut self, id: Id, label: &str, n: usize, rng: &mut ChaCha20Rng) -> Vec<usize> {
        (0..n)
            .map(|k| {
                let plaintext = pool_plaintext(label, k);
                let bob = self.bob_of(id);
                let post_quantum = bob.is_post_quantum();
                let wire = bob.encrypt(&plaintext, rng).unwrap();
                let parsed = Message::parse(&wire).unwrap();
                self.pool.push(PoolMessage {
                    label: format!("{label}-{k}"),
                    session: id,
                    initial: matches!(parsed, Message::Initial(_)),
                    header_encrypted: parsed.is_header_encrypted(),
                    post_quantum,
                    wire,
                    plaintext,
                    accepted: false,
                });
                self.pool.len() - 1
            })
            .collect()
    }

    /// Alice's record receives pool message `i` (a new session for an initial message of
    /// a session it does not hold).
    fn deliver(&mut self, i: usize, now: u64) {
        let m = &mut self.pool[i];
        let got = self
            .record
            .receive(&mut self.alice, &m.wire, &SessionOptions::new(), now)
            .unwrap();
        assert_eq!(got.plaintext, m.plaintext);
        assert_eq!(*got.session_id.as_bytes(), m.session);
        m.accepted = true;
    }

    fn snapshot(&self, name: &str, snapshots: &mut Vec<(String, Vec<u8>)>) {
        snapshots.push((name.to_string(), self.record.to_bytes().to_vec()));
    }
}

fn make_record_fixture() -> RecordFixture {
    let fx = fixture();
    let mut rng = rng(0x5eed_0005);
    let (alice_key, bob_key) = (fx.alice.public_key(), fx.bob.public_key());
    let mut alice = device_of(&fx.alice, &mut rng).unwrap();
    let alice_opks = alice
        .generate_one_time_prekeys(2, &mut rng)
        .unwrap()
        .created;
    // Bob's classical device (the fixture's, before it had post-quantum prekeys).
    let mut bob = LocalDevice::from_bytes(&fx.classical_store_bytes).unwrap();
    let mut b = Builder {
        record: SessionRecord::new(alice_key, bob_key, fixture_limits()).unwrap(),
        alice,
        bob: Vec::new(),
        pool: Vec::new(),
        alice_sent: Vec::new(),
        sent_keys: BTreeMap::new(),
        failed: Vec::new(),
    };
    let mut snapshots = Vec::new();
    b.snapshot("empty", &mut snapshots);

    // Simultaneous initiation: Alice from Bob's bundle (header in the clear), Bob from hers
    // (header-encrypted); her record accepts his session from his first initial message.
    let bundle = bob.bundle(Some(fx.opk_ids[0])).unwrap();
    let s1 = b.alice_initiates(
        &mut bob,
        &bundle,
        &SessionOptions::new(),
        1_000,
        "s1-initial",
        &mut rng,
    );
    let alice_bundle = b.alice.bundle(Some(alice_opks[0])).unwrap();
    let s2 = b.bob_initiates(&alice_bundle, &he_options(), &mut rng);
    let s2_initial = b.bob_sends(s2, "s2-initial", 3, &mut rng);
    b.deliver(s2_initial[0], 1_100);
    assert_eq!(b.record.len(), 2);
    b.snapshot("simultaneous", &mut snapshots);

    // Bob answers on s1; the record takes his second message (the first becomes a skipped
    // key). Alice answers twice on her sending session, and Bob sends on both sessions
    // again (a new chain on the one she answered on); the record takes a later message of
    // each, which stores more skipped keys.
    let s1_chain1 = b.bob_sends(s1, "s1-chain1", 4, &mut rng);
    b.deliver(s1_chain1[1], 1_200);
    b.alice_sends("answer-1", &mut rng);
    b.alice_sends("answer-2", &mut rng);
    let s1_chain2 = b.bob_sends(s1, "s1-chain2", 3, &mut rng);
    let s2_more = b.bob_sends(s2, "s2-more", 3, &mut rng);
    b.deliver(s1_chain2[2], 1_300);
    b.deliver(s2_more[1], 1_400);

    // A re-initiation: Alice starts a header-encrypted session, which becomes her sending
    // session; Bob accepts it and answers; she answers once; Bob answers on a new chain.
    let bundle = bob.bundle(Some(fx.opk_ids[1])).unwrap();
    let s3 = b.alice_initiates(
        &mut bob,
        &bundle,
        &he_options(),
        5_000,
        "s3-initial",
        &mut rng,
    );
    let s3_chain1 = b.bob_sends(s3, "s3-chain1", 3, &mut rng);
    b.deliver(s3_chain1[0], 5_100);
    b.alice_sends("s3-answer", &mut rng);
    b.bob_sends(s3, "s3-chain2", 2, &mut rng);
    assert_eq!(b.sending(), Some(s3));

    // Bob starts two sessions whose initial messages have not arrived: from Alice's
    // last-resort bundle (header in the clear), and from her other one-time prekey
    // (header-encrypted).
    let last_resort = b.alice.bundle(None).unwrap();
    let s4 = b.bob_initiates(&last_resort, &SessionOptions::new(), &mut rng);
    b.bob_sends(s4, "s4-initial", 2, &mut rng);
    let one_time = b.alice.bundle(Some(alice_opks[1])).unwrap();
    let s5 = b.bob_initiates(&one_time, &he_options(), &mut rng);
    b.bob_sends(s5, "s5-initial", 1, &mut rng);

    assert_eq!(b.record.len(), 3);
    assert!(b.record.stored_skipped_keys() >= 4);
    b.snapshot("fixture", &mut snapshots);

    // Decryption-error requests: Bob's for each of Alice's messages at two times, Carol's
    // (another identity than the record's contact), and Bob's to Carol (another recipient).
    let mut requests = Vec::new();
    let bob_view = SessionRecord::new(bob_key, alice_key, RecordLimits::default()).unwrap();
    for (label, failed) in &b.failed {
        for time in [2_000, 6_000] {
            requests.push(PoolRequest {
                label: format!("{label}-at-{time}"),
                wire: bob_view.decryption_error(&bob, failed, time).unwrap(),
            });
        }
    }
    let carol = device_of(&fx.carol, &mut rng).unwrap();
    let carol_key = fx.carol.public_key();
    let answer = &b.failed.iter().find(|(l, _)| l == "s3-answer").unwrap().1;
    let carols = SessionRecord::new(carol_key, alice_key, RecordLimits::default()).unwrap();
    requests.push(PoolRequest {
        label: "carol".into(),
        wire: carols.decryption_error(&carol, answer, 3_000).unwrap(),
    });
    let to_carol = SessionRecord::new(bob_key, carol_key, RecordLimits::default()).unwrap();
    requests.push(PoolRequest {
        label: "to-carol".into(),
        wire: to_carol.decryption_error(&bob, answer, 3_000).unwrap(),
    });

    // Stored shapes for the `record_load` seeds: after a reset (a retired session, the last
    // reset, no sending session), and with small limits (evictions).
    let mut reset = reload_record(&b.record.to_bytes());
    let request = &requests
        .iter()
        .find(|r| r.label == "s3-initial-at-2000")
        .unwrap()
        .wire;
    let outcome = reset.handle_decryption_error(request, 5_500).unwrap();
    assert_eq!(outcome, ResetOutcome::Reset(SessionIdOf(s3).get(&reset)));
    snapshots.push(("reset".into(), reset.to_bytes().to_vec()));
    let mut small = reload_record(&b.record.to_bytes());
    small
        .set_limits(
            RecordLimits::default()
                .with_max_archived(1)
                .with_max_trials(1)
                .with_max_stored_skipped(2),
        )
        .unwrap();
    assert_eq!(small.len(), 2);
    snapshots.push(("small-limits".into(), small.to_bytes().to_vec()));

    // PQXDH, from its own RNG (the classical part is the same in both builds): Alice starts
    // a session from Bob's PQXDH bundle, and Bob answers.
    #[cfg(feature = "pqxdh")]
    {
        let mut rng = doubleratchet_test_support::rng(0x5eed_0006);
        let mut bob_pq = bob_store();
        let bundle = bob_pq
            .pq_bundle(Some(fx.opk_ids[2]), Some(fx.pq.one_time_ids[1]))
            .unwrap();
        let before = b.failed.len();
        let s6 = b.alice_initiates(
            &mut bob_pq,
            &bundle,
            &SessionOptions::new(),
            7_000,
            "s6-initial",
            &mut rng,
        );
        assert!(b.record.sending_session().unwrap().is_post_quantum());
        let s6_chain1 = b.bob_sends(s6, "s6-chain1", 3, &mut rng);
        b.deliver(s6_chain1[1], 7_100);
        // Bob's request for Alice's PQXDH initial message at 8000, and for each of her
        // messages at 9000 (later than every classical one).
        let (label, failed) = &b.failed[before];
        requests.push(PoolRequest {
            label: format!("{label}-at-8000"),
            wire: bob_view.decryption_error(&bob, failed, 8_000).unwrap(),
        });
        for (label, failed) in &b.failed {
            requests.push(PoolRequest {
                label: format!("{label}-at-9000"),
                wire: bob_view.decryption_error(&bob, failed, 9_000).unwrap(),
            });
        }
        assert_eq!(b.record.len(), 4);
        b.snapshot("pq-fixture", &mut snapshots);
    }

    let record = b.record.to_bytes().to_vec();
    let device = b.alice.to_bytes().to_vec();
    RecordFixture {
        #[cfg(fuzzing)]
        prepared: reload_record(&record),
        record,
        device,
        pool: b.pool,
        alice_sent: b.alice_sent,
        sent_keys: b.sent_keys.into_iter().collect(),
        requests,
        bob: b
            .bob
            .iter()
            .map(|s| (*s.id().as_bytes(), s.to_bytes().to_vec()))
            .collect(),
        snapshots,
    }
}

/// A session id as the record reports it, by its bytes.
struct SessionIdOf(Id);

impl SessionIdOf {
    fn get(&self, record: &SessionRecord) -> SessionId {
        record
            .session_ids()
            .find(|id| *id.as_bytes() == self.0)
            .expect("the record holds the session")
    }
}

// ---------------------------------------------------------------------------------------
// The record's shape, read from its encoding, and the model of SPEC.md §6.4-§6.8
// ---------------------------------------------------------------------------------------

/// One session of a record as its encoding stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryShape {
    pub(crate) id: Id,
    pub(crate) created: u64,
    pub(crate) retired: bool,
}

/// What of a record the model predicts: its sessions in order, their times and retired
/// flags, the last decrypting session, the last reset (request time, record time) and the
/// limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) sending: Option<EntryShape>,
    pub(crate) archived: Vec<EntryShape>,
    pub(crate) last_decrypted: Option<Id>,
    pub(crate) last_reset: Option<(u64, u64)>,
    pub(crate) limits: RecordLimits,
}

impl Shape {
    pub(crate) fn entries(&self) -> impl Iterator<Item = &EntryShape> + '_ {
        self.sending.iter().chain(&self.archived)
    }

    pub(crate) fn contains(&self, id: Id) -> bool {
        self.entries().any(|e| e.id == id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sending.is_none() && self.archived.is_empty()
    }

    /// SPEC.md §6.6 step 7 after session `id` (held) decrypted a message; `accepted`: it
    /// was just accepted from the device's prekeys (only such a session fills an empty
    /// sending place).
    pub(crate) fn promote(&mut self, id: Id, accepted: bool) {
        let previous = self.last_decrypted.replace(id);
        if self.sending.is_some_and(|s| s.id == id) {
            return;
        }
        let at = self
            .archived
            .iter()
            .position(|e| e.id == id)
            .expect("the decrypting session is held");
        let entry = self.archived.remove(at);
        let switch = !entry.retired
            && match self.sending {
                None => accepted,
                Some(sending) => id < sending.id || previous == Some(id),
            };
        let demoted = if switch {
            self.sending_changed();
            self.sending.replace(entry)
        } else {
            Some(entry)
        };
        if let Some(e) = demoted {
            self.archived.insert(0, e);
        }
    }

    /// SPEC.md §6.8: when the sending session changes, the last reset's request time is
    /// forgotten (set to 0).
    fn sending_changed(&mut self) {
        if let Some((request_time, _)) = &mut self.last_reset {
            *request_time = 0;
        }
    }

    /// SPEC.md §6.7: the least recently used archived sessions beyond `max_archived` are
    /// dropped, and with them the memory of the last decrypting session if it was one.
    pub(crate) fn bound_archive(&mut self) {
        while self.archived.len() > self.limits.max_archived as usize {
            let evicted = self.archived.pop().unwrap();
            if self.last_decrypted == Some(evicted.id) {
                self.last_decrypted = None;
            }
        }
    }

    /// SPEC.md §6.4 clause 1: a new session sends; the previous sending session becomes the
    /// most recently used archived one.
    pub(crate) fn install_sending(&mut self, entry: EntryShape) {
        self.last_decrypted = None;
        self.sending_changed();
        if let Some(previous) = self.sending.replace(entry) {
            self.archived.insert(0, previous);
        }
        self.bound_archive();
    }

    /// SPEC.md §6.8: the sending session becomes the most recently used archived session,
    /// retired.
    pub(crate) fn archive_sending(&mut self) -> Option<Id> {
        let mut entry = self.sending.take()?;
        entry.retired = true;
        self.archived.insert(0, entry);
        self.bound_archive();
        Some(entry.id)
    }
}

/// Reads `bytes`, the encoding of `record`, field by field (SPEC.md §7.8) and checks it
/// against the record's API (at the app's time `now`) and against what the record's
/// operations keep true; returns its shape.
pub(crate) fn shape_of(record: &SessionRecord, bytes: &[u8], now: u64) -> Shape {
    assert_eq!(bytes[..2], [STORAGE_VERSION, TYPE_SESSION_RECORD]);
    assert_eq!(bytes[RECORD_LOCAL], record.local_identity().as_bytes()[..]);
    assert_eq!(
        bytes[RECORD_REMOTE],
        record.remote_identity().as_bytes()[..]
    );
    assert_ne!(record.local_identity(), record.remote_identity());
    let limits = record.limits();
    assert_eq!(limits.validate(), Ok(()), "a record holds invalid limits");
    assert_eq!(
        (
            be_u32(bytes, RECORD_MAX_ARCHIVED),
            be_u32(bytes, RECORD_MAX_TRIALS),
            be_u32(bytes, RECORD_MAX_STORED_SKIPPED),
            be_u64(bytes, RECORD_UNACKNOWLEDGED_AFTER),
            be_u64(bytes, RECORD_RESET_INTERVAL),
        ),
        (
            limits.max_archived,
            limits.max_trials,
            limits.max_stored_skipped,
            limits.unacknowledged_after,
            limits.reset_interval,
        ),
        "the stored limits disagree with limits()"
    );
    let last_decrypted = optional_32(bytes, RECORD_LAST_DECRYPTED);
    let last_reset = match bytes[RECORD_LAST_RESET] {
        0 => {
            assert_eq!(bytes[RECORD_LAST_RESET + 1..RECORD_HAS_SENDING], [0; 16]);
            None
        }
        1 => Some((
            be_u64(bytes, RECORD_LAST_RESET + 1),
            be_u64(bytes, RECORD_LAST_RESET + 9),
        )),
        flag => panic!("last reset flag {flag:#04x}"),
    };
    let has_sending = match bytes[RECORD_HAS_SENDING] {
        0 => false,
        1 => true,
        flag => panic!("sending flag {flag:#04x}"),
    };
    let sending = record.sending_session();
    assert_eq!(has_sending, sending.is_some());
    let count = be_u32(bytes, RECORD_ARCHIVED_COUNT) as usize;
    let ids: Vec<Id> = record.session_ids().map(|id| *id.as_bytes()).collect();
    assert_eq!(ids.len(), record.len());
    assert_eq!(record.len(), count + usize::from(has_sending));
    assert_eq!(record.is_empty(), ids.is_empty());
    let mut at = RECORD_ENTRIES;
    let mut entries = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let created = be_u64(bytes, at);
        let retired = match bytes[at + 8] {
            0 => false,
            1 => true,
            flag => panic!("retired flag {flag:#04x}"),
        };
        let length = be_u32(bytes, at + 9) as usize;
        let start = at + RECORD_ENTRY_OVERHEAD;
        if let (0, Some(s)) = (i, sending) {
            assert!(!retired, "the sending session is retired");
            assert_eq!(s.id().as_bytes(), id);
            assert_eq!(
                *s.to_bytes(),
                bytes[start..start + length],
                "the sending session's encoding"
            );
        }
        entries.push(EntryShape {
            id: *id,
            created,
            retired,
        });
        at = start + length;
    }
    assert_eq!(at, bytes.len(), "bytes after the last entry");

    // What every record operation keeps true (SPEC.md §6.6, §6.7, §7.8).
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "two sessions with one id");
    }
    if let Some(last) = &last_decrypted {
        assert!(
            ids.contains(last),
            "the last decrypting session is not held"
        );
    }
    assert!(
        count <= limits.max_archived as usize,
        "{count} archived sessions, limit {}",
        limits.max_archived
    );
    assert!(
        record.stored_skipped_keys() <= limits.max_stored_skipped as usize,
        "{} skipped keys stored, limit {}",
        record.stored_skipped_keys(),
        limits.max_stored_skipped
    );
    let mut entries = entries.into_iter();
    let shape = Shape {
        sending: if has_sending { entries.next() } else { None },
        archived: entries.collect(),
        last_decrypted,
        last_reset,
        limits,
    };
    // status (SPEC.md §6.7).
    let expected = match (shape.sending, sending) {
        (Some(_), Some(s)) if !s.awaiting_reply() => RecordStatus::Ready,
        (Some(e), Some(_)) if now.saturating_sub(e.created) > limits.unacknowledged_after => {
            RecordStatus::Unacknowledged { since: e.created }
        }
        (Some(e), Some(_)) => RecordStatus::AwaitingReply { since: e.created },
        _ => RecordStatus::NoSession,
    };
    assert_eq!(record.status(now), expected, "status at {now}");
    shape
}

thread_local! {
    /// Record encodings checked to load and store again.
    static VERIFIED: RefCell<HashSet<Vec<u8>>> = RefCell::new(HashSet::new());
}

/// The most encodings [`VERIFIED`] remembers.
const MAX_VERIFIED: usize = 8192;

/// A record's encoding as last checked, and its shape.
pub(crate) struct Tracker {
    pub(crate) bytes: Vec<u8>,
    pub(crate) shape: Shape,
}

impl Tracker {
    pub(crate) fn new(record: &SessionRecord, now: u64) -> Tracker {
        let mut t = Tracker {
            bytes: Vec::new(),
            shape: Shape {
                sending: None,
                archived: Vec::new(),
                last_decrypted: None,
                last_reset: None,
                limits: RecordLimits::default(),
            },
        };
        t.observe(record, now);
        t
    }

    /// Reads the record after an operation: its encoding checked ([`shape_of`]) and, if it
    /// changed, loaded and stored again (the same bytes, the same shape and API). Loading
    /// a record loads every session in it, the costliest check of a step, and inputs
    /// reach the same states again and again: each encoding is loaded once per process
    /// (at most [`MAX_VERIFIED`] of them are remembered).
    fn observe(&mut self, record: &SessionRecord, now: u64) {
        let bytes = record.to_bytes().to_vec();
        self.shape = shape_of(record, &bytes, now);
        if !VERIFIED.with(|v| v.borrow().contains(&bytes)) {
            let loaded = reload_record(&bytes);
            assert_eq!(shape_of(&loaded, &bytes, now), self.shape);
            VERIFIED.with(|v| {
                let mut v = v.borrow_mut();
                if v.len() == MAX_VERIFIED {
                    v.clear();
                }
                v.insert(bytes.clone());
            });
        }
        self.bytes = bytes;
    }

    /// Runs `op` on `record` and observes it; a failed `op` must leave the encoding
    /// byte-identical. Returns the shape before and the result.
    pub(crate) fn step<T>(
        &mut self,
        record: &mut SessionRecord,
        now: u64,
        what: &str,
        op: impl FnOnce(&mut SessionRecord) -> Result<T, Error>,
    ) -> (Shape, Result<T, Error>) {
        let before = self.shape.clone();
        let before_bytes = std::mem::take(&mut self.bytes);
        let result = op(record);
        self.observe(record, now);
        if let Err(e) = &result {
            assert!(
                self.bytes == before_bytes,
                "{what} failed ({e:?}) but changed the record"
            );
            assert_ne!(*e, Error::Internal, "{what}: internal error");
        }
        (before, result)
    }

    /// The record's shape is `expected`.
    pub(crate) fn expect(&self, expected: &Shape, what: &str) {
        assert_eq!(
            self.shape, *expected,
            "the record disagrees with the model after {what}"
        );
    }
}

/// What a request does to a record (SPEC.md §6.8), with session ids as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Reset(Id),
    Stale,
    RateLimited,
    NotSending,
}

pub(crate) fn outcome(result: Result<ResetOutcome, Error>) -> Result<Outcome, Error> {
    result.map(|o| match o {
        ResetOutcome::Reset(id) => Outcome::Reset(*id.as_bytes()),
        ResetOutcome::Stale => Outcome::Stale,
        ResetOutcome::RateLimited => Outcome::RateLimited,
        ResetOutcome::NotSending => Outcome::NotSending,
        other => panic!("an outcome unknown to SPEC.md §6.8: {other:?}"),
    })
}

/// The outcomes SPEC.md §6.8 allows for `request`, a genuine (validly signed) request, at
/// the record's time `now`, on a record of shape `s` between `local` and `remote`.
/// `named_by_key(sending, key)` tells whether `key` is session `sending`'s `DHs` (`None`:
/// unknown, both answers allowed).
pub(crate) fn request_outcomes(
    s: &Shape,
    local: &IdentityKey,
    remote: &IdentityKey,
    request: &[u8],
    now: u64,
    named_by_key: impl Fn(Id, [u8; 32]) -> Option<bool>,
) -> Vec<Result<Outcome, Error>> {
    assert_eq!(request.len(), REQUEST_LENGTH);
    if request[REQUEST_RECIPIENT] != local.as_bytes()[..] {
        return vec![Err(Error::WrongRecord)];
    }
    if request[REQUEST_REQUESTER] != remote.as_bytes()[..] {
        return vec![Err(Error::IdentityMismatch)];
    }
    let time = be_u64(request, REQUEST_TIME.start);
    if let Some((request_time, at)) = s.last_reset {
        if time <= request_time {
            return vec![Ok(Outcome::Stale)];
        }
        if now.saturating_sub(at) < s.limits.reset_interval {
            return vec![Ok(Outcome::RateLimited)];
        }
    }
    let Some(sending) = s.sending else {
        return vec![Ok(Outcome::NotSending)];
    };
    let named = match (
        optional_32(request, REQUEST_SESSION_ID),
        optional_32(request, REQUEST_RATCHET_KEY),
    ) {
        (Some(id), _) => Some(id == sending.id),
        (None, Some(key)) => named_by_key(sending.id, key),
        // Naming nothing, a request made before the sending session entered the record is
        // about an earlier one (the requester's clock against the record's).
        (None, None) => Some(time >= sending.created),
    };
    match named {
        Some(true) => vec![Ok(Outcome::Reset(sending.id))],
        Some(false) => vec![Ok(Outcome::NotSending)],
        None => vec![Ok(Outcome::Reset(sending.id)), Ok(Outcome::NotSending)],
    }
}

/// Whether `e` is an error a record may give for bytes from the network (SPEC.md §10):
/// never a bug, a wrong call, a retry or a reinitiation (except `NoSession` for a normal
/// message to a record without sessions).
pub(crate) fn network_error(e: Error, empty: bool) -> bool {
    matches!(
        e.kind(),
        ErrorKind::DropMessage
            | ErrorKind::TryAnotherSession
            | ErrorKind::VerifyIdentity
            | ErrorKind::ReplenishPreKeys
    ) || (e == Error::NoSession && empty)
}

// ---------------------------------------------------------------------------------------
// The target
// ---------------------------------------------------------------------------------------

/// One step of the `record` target. Pool indices are taken modulo the pool's size.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    /// The record receives pool message `msg` (`receive` with Alice's device, or
    /// `decrypt`). `options` bit 0 requires header encryption, bit 1 PQXDH, of a new
    /// session.
    Deliver {
        /// Pool index.
        msg: u8,
        /// `receive` rather than `decrypt`.
        receive: bool,
        /// The session options' bits.
        options: u8,
    },
    /// Pool message `msg` with one bit flipped.
    FlipBit {
        /// Pool index.
        msg: u8,
        /// Bit position, modulo the message's length in bits.
        bit: u16,
        /// `receive` rather than `decrypt`.
        receive: bool,
    },
    /// Pool message `msg` cut short at `at` (if it is longer).
    Truncate {
        /// Pool index.
        msg: u8,
        /// New length.
        at: u16,
        /// `receive` rather than `decrypt`.
        receive: bool,
    },
    /// Pool message `a` up to `at` followed by pool message `b` from `at` on.
    Splice {
        /// Pool index of the head.
        a: u8,
        /// Pool index of the tail.
        b: u8,
        /// Cut position.
        at: u16,
        /// `receive` rather than `decrypt`.
        receive: bool,
    },
    /// One of Alice's own messages, back to her record.
    Reflect {
        /// Index among Alice's messages (the fixture's, then this input's).
        msg: u8,
        /// `receive` rather than `decrypt`.
        receive: bool,
    },
    /// Alice encrypts a `len`-byte plaintext on her sending session; Bob's side of it (if
    /// he has one) decrypts it.
    Encrypt {
        /// Plaintext length.
        len: u8,
    },
    /// The record handles genuine request `req`.
    Request {
        /// Request index.
        req: u8,
    },
    /// The record handles request `req` with one bit flipped.
    CorruptRequest {
        /// Request index.
        req: u8,
        /// Bit position, modulo the request's length in bits.
        bit: u16,
    },
    /// The record makes a request for pool message `msg` (with one bit flipped, if
    /// `flip`), which Bob's record verifies.
    MakeRequest {
        /// Pool index.
        msg: u8,
        /// A bit to flip first.
        flip: Option<u16>,
    },
    /// `archive_sending_session`.
    Archive,
    /// `set_limits` (`max_stored_skipped = 65535` stands for one above the cap; times are
    /// in minutes).
    SetLimits {
        /// `max_archived` (0 or above 64: refused).
        max_archived: u8,
        /// `max_trials` (0 or above 65: refused).
        max_trials: u8,
        /// `max_stored_skipped`.
        max_stored_skipped: u16,
        /// `unacknowledged_after`, in minutes.
        unacknowledged_after: u16,
        /// `reset_interval`, in minutes.
        reset_interval: u16,
    },
    /// Alice initiates a new session from Bob's last-resort bundle (classical or PQXDH).
    Initiate {
        /// With header encryption.
        header_encryption: bool,
        /// From Bob's PQXDH bundle (with the `pqxdh` feature).
        post_quantum: bool,
    },
    /// The record is replaced by its stored encoding, loaded back (sealed first, if
    /// `sealed`).
    Reload {
        /// Whether to go through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// The app's clock moves by `minutes` (back, if negative; not below 0).
    Tick {
        /// Minutes.
        minutes: i16,
    },
}

/// The number of [`RecordOp`] variants (`arbitrary` picks one of them from a `u32`).
pub(crate) const RECORD_OP_VARIANTS: u64 = 14;

/// Decodes the `record` target's input into at most [`MAX_RECORD_OPS`] operations.
pub fn record_ops_from_bytes(data: &[u8]) -> Vec<RecordOp> {
    decode_ops(data, MAX_RECORD_OPS)
}

/// A session of Bob's, as the fixture stored it.
fn bob_state(id: Id) -> Option<&'static [u8]> {
    record_fixture()
        .bob
        .iter()
        .find(|(b, _)| *b == id)
        .map(|(_, s)| &s[..])
}

/// The session options of [`RecordOp::Deliver`].
fn receive_options(bits: u8) -> SessionOptions {
    let mut options = SessionOptions::new();
    if bits & 1 == 1 {
        options = options.require_header_encryption();
    }
    if bits & 2 == 2 {
        options = options.require_post_quantum();
    }
    options
}

/// Alice's record and device, the model's state, and Bob's sessions.
struct Harness {
    fx: &'static RecordFixture,
    record: SessionRecord,
    device: Option<LocalDevice>,
    device_bytes: Vec<u8>,
    tracker: Tracker,
    now: u64,
    /// By pool index: accepted (in the fixture or by this input).
    accepted: Vec<bool>,
    /// Every session the record has held (it must never accept one of them again).
    ever: HashSet<Id>,
    /// Every session retired (it must never send again).
    retired: HashSet<Id>,
    /// Set once the fuzzer lowered the limits: sessions may then not be tried, and keys may
    /// have been evicted.
    relaxed: bool,
    /// The ratchet key of Alice's last message on each session with the header in the
    /// clear.
    sent_keys: HashMap<Id, [u8; 32]>,
    /// Bob's side of each session, as far as this input used it.
    bob: HashMap<Id, Session>,
    alice_sent: Vec<Vec<u8>>,
    rng: ChaCha20Rng,
    reloads: usize,
    initiations: usize,
}

impl Harness {
    fn new() -> Harness {
        let fx = record_fixture();
        let record = fx.copy_record();
        let tracker = Tracker::new(&record, FIXTURE_END);
        let mut ever = HashSet::new();
        ever.extend(tracker.shape.entries().map(|e| e.id));
        Harness {
            fx,
            record,
            device: Some(take_alice_device()),
            device_bytes: fx.device.clone(),
            tracker,
            now: FIXTURE_END,
            accepted: fx.pool.iter().map(|m| m.accepted).collect(),
            ever,
            retired: HashSet::new(),
            relaxed: false,
            sent_keys: fx.sent_keys.iter().copied().collect(),
            bob: HashMap::new(),
            alice_sent: fx.alice_sent.clone(),
            rng: rng(0x2EC0),
            reloads: 0,
            initiations: 0,
        }
    }

    fn pick(&self, i: u8) -> usize {
        usize::from(i) % self.fx.pool.len()
    }

    fn device(&mut self) -> &mut LocalDevice {
        self.device.as_mut().unwrap()
    }

    /// The device is unchanged (after anything but a new session).
    fn device_unchanged(&mut self, what: &str) {
        let bytes = self.device().to_bytes();
        assert!(*bytes == *self.device_bytes, "{what} changed the device");
    }

    /// Checks that the record still holds together after an operation: a retired session
    /// never sends; every session held is remembered.
    fn after(&mut self) {
        if let Some(s) = self.tracker.shape.sending {
            assert!(
                !self.retired.contains(&s.id),
                "a retired session sends again"
            );
        }
        self.ever.extend(self.tracker.shape.entries().map(|e| e.id));
    }

    /// The record receives `bytes` (with `receive` and the session options of `options`,
    /// or with `decrypt`).
    fn deliver(&mut self, bytes: &[u8], receive: bool, options: u8) {
        let fx = self.fx;
        let now = self.now;
        let genuine = fx.pool.iter().position(|m| m.wire == bytes);
        let device = self.device.as_mut().unwrap();
        let (before, result) = self.tracker.step(&mut self.record, now, "delivery", |r| {
            if receive {
                r.receive(device, bytes, &receive_options(options), now)
                    .map(|got| {
                        if got.new_session {
                            // The device deleted the one-time prekey the message names, or
                            // kept a replay record if it names none (SPEC.md §8.3).
                            let one_time = one_time_prekey_of(bytes).is_some();
                            assert_eq!(got.replay_record.is_some(), !one_time);
                            assert!(got.store_keys_changed || !one_time);
                        } else {
                            assert!(got.notice.is_none() && got.replay_record.is_none());
                            assert!(!got.store_keys_changed);
                        }
                        (
                            got.plaintext,
                            Some(*got.session_id.as_bytes()),
                            got.new_session,
                        )
                    })
            } else {
                r.decrypt(bytes).map(|p| (p, None, false))
            }
        });
        match result {
            Ok((plaintext, session, new_session)) => {
                let Some(i) = genuine else {
                    panic!("the record decrypted bytes Bob never sent: {}", hex(bytes));
                };
                let m = &fx.pool[i];
                assert!(!self.accepted[i], "pool message {} accepted twice", m.label);
                assert_eq!(plaintext, m.plaintext, "pool message {}", m.label);
                let held = before.contains(m.session);
                assert!(
                    held || (receive && m.initial && !self.ever.contains(&m.session)),
                    "pool message {} accepted without its session (held before: {})",
                    m.label,
                    self.ever.contains(&m.session)
                );
                assert_eq!(new_session, !held, "new_session for {}", m.label);
                if let Some(session) = session {
                    assert_eq!(session, m.session, "the session that took {}", m.label);
                }
                let mut expected = before;
                if !held {
                    expected.archived.insert(
                        0,
                        EntryShape {
                            id: m.session,
                            created: now,
                            retired: false,
                        },
                    );
                }
                expected.promote(m.session, !held);
                expected.bound_archive();
                self.tracker
                    .expect(&expected, &format!("accepting {}", m.label));
                self.accepted[i] = true;
                if new_session {
                    self.ever.insert(m.session);
                    let bytes = self.device().to_bytes().to_vec();
                    assert!(
                        bytes != self.device_bytes,
                        "a new session left the device as it was"
                    );
                    self.device_bytes = bytes;
                } else {
                    self.device_unchanged("a delivery without a new session");
                }
            }
            Err(e) => {
                self.device_unchanged("a refused delivery");
                assert!(
                    network_error(e, before.is_empty()),
                    "a delivery refused with {e:?}"
                );
                if let Some(i) = genuine.filter(|i| !self.accepted[*i]) {
                    let m = &fx.pool[i];
                    let held = before.contains(m.session);
                    let opts_allow = (options & 1 == 0 || m.header_encrypted)
                        && (options & 2 == 0 || m.post_quantum);
                    let new = receive && m.initial && !held && !self.ever.contains(&m.session);
                    assert!(
                        !(new && opts_allow),
                        "a new session from pool message {} refused: {e:?}",
                        m.label
                    );
                    assert!(
                        !held || self.relaxed,
                        "fresh pool message {} of a held session refused: {e:?}",
                        m.label
                    );
                }
            }
        }
    }

    /// Alice encrypts on her sending session.
    fn encrypt(&mut self, len: u8) {
        let plaintext = plaintext_for(self.alice_sent.len(), len);
        let sending = self.record.sending_session().map(|s| {
            (
                *s.id().as_bytes(),
                s.awaiting_reply(),
                s.is_header_encrypted(),
                s.is_post_quantum(),
                s.padding(),
            )
        });
        let skipped = self.record.stored_skipped_keys();
        let rng = &mut self.rng;
        let (before, result) = self
            .tracker
            .step(&mut self.record, self.now, "encrypt", |r| {
                r.encrypt(&plaintext, rng)
            });
        match result {
            Ok(wire) => {
                let (id, awaiting, header_encrypted, post_quantum, padding) =
                    sending.expect("encrypted without a sending session");
                let parsed = Message::parse(&wire).unwrap();
                check_message_layout(&parsed, &wire);
                assert_eq!(parsed.is_header_encrypted(), header_encrypted);
                assert_eq!(
                    parsed.ciphertext_len(),
                    encoded_length(padding, plaintext.len()) + TAG
                );
                match &parsed {
                    Message::Initial(m) => {
                        assert!(awaiting, "an initial message from a session with a reply");
                        assert_eq!(m.is_post_quantum(), post_quantum);
                        let responder = fixture().bob.public_key();
                        assert_eq!(*m.session_id(responder).as_bytes(), id);
                    }
                    Message::Normal(_) => assert!(!awaiting, "a normal message awaiting a reply"),
                    other => panic!("an unknown kind of message: {other:?}"),
                }
                match parsed.ratchet_key() {
                    Some(key) => self.sent_keys.insert(id, key.to_bytes()),
                    None => self.sent_keys.remove(&id),
                };
                self.tracker.expect(&before, "encrypt");
                assert_eq!(self.record.stored_skipped_keys(), skipped);
                if let Some(bob) = self.bob_session(id) {
                    let got = bob
                        .decrypt(&wire)
                        .unwrap_or_else(|e| panic!("Bob cannot decrypt Alice's message: {e:?}"));
                    assert_eq!(got, plaintext, "Bob decrypted something else");
                }
                self.alice_sent.push(wire);
            }
            Err(e) => {
                assert!(sending.is_none(), "encrypt failed: {e:?}");
                assert_eq!(e, Error::NoSession);
            }
        }
    }

    /// Bob's side of session `id`, if he has one.
    fn bob_session(&mut self, id: Id) -> Option<&mut Session> {
        match self.bob.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Some(e.insert(copy_session(bob_state(id)?, fixture().bob.public_key())))
            }
        }
    }

    /// The record handles `bytes` as a decryption-error request.
    fn request(&mut self, bytes: &[u8]) {
        let now = self.now;
        let genuine = self.fx.requests.iter().position(|r| r.wire == bytes);
        let before_bytes = self.tracker.bytes.clone();
        let (before, result) = self.tracker.step(&mut self.record, now, "a request", |r| {
            r.handle_decryption_error(bytes, now)
        });
        let result = outcome(result);
        let Some(i) = genuine else {
            let e = result.expect_err("an altered request was acted on");
            assert!(
                matches!(e.kind(), ErrorKind::DropMessage | ErrorKind::VerifyIdentity)
                    || e == Error::WrongRecord,
                "an altered request refused with {e:?}"
            );
            return;
        };
        let sent_keys = &self.sent_keys;
        let allowed = request_outcomes(
            &before,
            self.record.local_identity(),
            self.record.remote_identity(),
            bytes,
            now,
            |sending, key| Some(sent_keys.get(&sending) == Some(&key)),
        );
        let label = &self.fx.requests[i].label;
        assert!(
            allowed.contains(&result),
            "request {label}: {result:?}, expected {allowed:?}"
        );
        if let Ok(Outcome::Reset(id)) = result {
            let mut expected = before;
            assert_eq!(expected.archive_sending(), Some(id));
            expected.last_reset = Some((be_u64(bytes, REQUEST_TIME.start), now));
            self.tracker.expect(&expected, &format!("request {label}"));
            self.retired.insert(id);
        } else {
            // Only a reset changes the record.
            assert!(
                self.tracker.bytes == before_bytes,
                "request {label} ({result:?}) changed the record"
            );
        }
    }

    /// The record makes a request for `bytes`, which Bob's record verifies.
    fn make_request(&mut self, bytes: &[u8]) {
        let now = self.now;
        let device = self.device.as_ref().unwrap();
        let (before, result) = self
            .tracker
            .step(&mut self.record, now, "decryption_error", |r| {
                r.decryption_error(device, bytes, now)
            });
        // Making a request changes nothing.
        self.tracker.expect(&before, "decryption_error");
        let fx = fixture();
        let (alice, bob) = (fx.alice.public_key(), fx.bob.public_key());
        match result {
            Ok(request) => {
                let parsed = Message::parse(bytes).expect("a request for bytes that do not parse");
                assert_eq!(request.len(), REQUEST_LENGTH);
                assert_eq!(request[..2], [WIRE_VERSION, TYPE_DECRYPTION_ERROR]);
                assert_eq!(request[REQUEST_REQUESTER], alice.as_bytes()[..]);
                assert_eq!(request[REQUEST_RECIPIENT], bob.as_bytes()[..]);
                let session_id = match &parsed {
                    Message::Initial(m) => {
                        assert_eq!(m.identity_key(), bob, "a request for another identity");
                        Some(*m.session_id(alice).as_bytes())
                    }
                    _ => None,
                };
                assert_eq!(optional_32(&request, REQUEST_SESSION_ID), session_id);
                assert_eq!(
                    optional_32(&request, REQUEST_RATCHET_KEY),
                    parsed.ratchet_key().map(|k| k.to_bytes())
                );
                assert_eq!(be_u64(&request, REQUEST_TIME.start), now);
                // Bob (without a sending session) verifies it; Alice's record refuses it.
                let mut bobs = SessionRecord::new(bob, alice, RecordLimits::default()).unwrap();
                assert_eq!(
                    bobs.handle_decryption_error(&request, now),
                    Ok(ResetOutcome::NotSending)
                );
                let (_, own) = self
                    .tracker
                    .step(&mut self.record, now, "own request", |r| {
                        r.handle_decryption_error(&request, now)
                    });
                assert_eq!(own, Err(Error::WrongRecord));
            }
            Err(e) => {
                let parses = Message::parse(bytes);
                match parses {
                    Ok(Message::Initial(m)) => {
                        assert_eq!(e, Error::IdentityMismatch);
                        assert_ne!(m.identity_key(), bob);
                    }
                    Ok(_) => panic!("no request for a normal message: {e:?}"),
                    Err(parse) => assert_eq!(e, parse),
                }
            }
        }
    }

    fn archive(&mut self) {
        let (before, result) =
            self.tracker
                .step(&mut self.record, self.now, "archive_sending_session", |r| {
                    Ok(r.archive_sending_session().map(|id| *id.as_bytes()))
                });
        let mut expected = before;
        let id = expected.archive_sending();
        assert_eq!(result, Ok(id));
        self.tracker.expect(&expected, "archive_sending_session");
        self.retired.extend(id);
    }

    fn set_limits(&mut self, op: RecordOp) {
        let RecordOp::SetLimits {
            max_archived,
            max_trials,
            max_stored_skipped,
            unacknowledged_after,
            reset_interval,
        } = op
        else {
            unreachable!()
        };
        let stored = if max_stored_skipped == u16::MAX {
            MAX_RECORD_STORED_SKIPPED_CAP + 1
        } else {
            u32::from(max_stored_skipped)
        };
        let limits = RecordLimits::default()
            .with_max_archived(u32::from(max_archived))
            .with_max_trials(u32::from(max_trials))
            .with_max_stored_skipped(stored)
            .with_unacknowledged_after(u64::from(unacknowledged_after) * 60)
            .with_reset_interval(u64::from(reset_interval) * 60);
        let valid = (1..=MAX_ARCHIVED_CAP).contains(&u32::from(max_archived))
            && (1..=MAX_ARCHIVED_CAP + 1).contains(&u32::from(max_trials))
            && stored <= MAX_RECORD_STORED_SKIPPED_CAP;
        assert_eq!(limits.validate().is_ok(), valid, "validate() of {limits:?}");
        let (before, result) = self
            .tracker
            .step(&mut self.record, self.now, "set_limits", |r| {
                r.set_limits(limits)
            });
        match result {
            Ok(()) => {
                assert!(valid, "limits above the caps accepted: {limits:?}");
                assert_eq!(self.record.limits(), limits);
                let mut expected = before;
                expected.limits = limits;
                expected.bound_archive();
                self.tracker.expect(&expected, "set_limits");
                let fixture = fixture_limits();
                self.relaxed |= limits.max_archived < fixture.max_archived
                    || limits.max_trials < fixture.max_trials
                    || limits.max_stored_skipped < fixture.max_stored_skipped;
            }
            Err(e) => {
                assert!(!valid, "valid limits refused: {e:?}");
                assert_eq!(e, Error::InvalidLimits);
            }
        }
    }

    fn initiate(&mut self, header_encryption: bool, post_quantum: bool) {
        if self.initiations == MAX_INITIATIONS {
            return;
        }
        self.initiations += 1;
        let fx = fixture();
        #[cfg(feature = "pqxdh")]
        let bundle = if post_quantum {
            &fx.pq.bundle_last_resort
        } else {
            &fx.bundle_no_opk
        };
        #[cfg(not(feature = "pqxdh"))]
        let bundle = {
            let _ = post_quantum;
            &fx.bundle_no_opk
        };
        let options = if header_encryption {
            he_options()
        } else {
            SessionOptions::new()
        };
        let now = self.now;
        let device = self.device.as_ref().unwrap();
        let rng = &mut self.rng;
        let (before, result) = self.tracker.step(&mut self.record, now, "initiate", |r| {
            r.initiate(device, bundle, &options, now, rng)
        });
        let id = *result.expect("initiate failed").as_bytes();
        assert!(!self.ever.contains(&id), "a new session with an old id");
        let s = self.record.sending_session().unwrap();
        assert!(s.awaiting_reply());
        assert_eq!(s.is_header_encrypted(), header_encryption);
        assert_eq!(s.is_post_quantum(), cfg!(feature = "pqxdh") && post_quantum);
        let mut expected = before;
        expected.install_sending(EntryShape {
            id,
            created: now,
            retired: false,
        });
        self.tracker.expect(&expected, "initiate");
        self.device_unchanged("initiate");
    }

    fn reload(&mut self, sealed: bool) {
        if self.reloads == MAX_RELOADS {
            return;
        }
        self.reloads += 1;
        let bytes = self.record.to_bytes();
        let loaded = if sealed {
            let key = &fixture().storage_key;
            let blob = key
                .seal(&self.record, RECORD_CONTEXT, &mut self.rng)
                .unwrap();
            assert_eq!(
                key.open::<SessionRecord>(&blob, b"").err(),
                Some(Error::DecryptionFailed),
                "a sealed record opened with another context"
            );
            assert_eq!(
                key.open_session(&blob, RECORD_CONTEXT, self.record.local_identity())
                    .err(),
                Some(Error::UnexpectedType(TYPE_SESSION_RECORD)),
                "a sealed record opened as a session"
            );
            key.open::<SessionRecord>(&blob, RECORD_CONTEXT).unwrap()
        } else {
            reload_record(&bytes)
        };
        assert_eq!(*loaded.to_bytes(), *bytes);
        assert_eq!(loaded.limits(), self.record.limits());
        assert_eq!(
            loaded.stored_skipped_keys(),
            self.record.stored_skipped_keys()
        );
        self.record = loaded;
    }

    fn apply(&mut self, op: RecordOp) {
        let fx = self.fx;
        match op {
            RecordOp::Deliver {
                msg,
                receive,
                options,
            } => {
                let i = self.pick(msg);
                self.deliver(&fx.pool[i].wire, receive, options);
            }
            RecordOp::FlipBit { msg, bit, receive } => {
                let mut bytes = fx.pool[self.pick(msg)].wire.clone();
                let bit = usize::from(bit) % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.deliver(&bytes, receive, 0);
            }
            RecordOp::Truncate { msg, at, receive } => {
                let wire = &fx.pool[self.pick(msg)].wire;
                self.deliver(&wire[..usize::from(at).min(wire.len())], receive, 0);
            }
            RecordOp::Splice { a, b, at, receive } => {
                let (head, tail) = (&fx.pool[self.pick(a)].wire, &fx.pool[self.pick(b)].wire);
                let at = usize::from(at).min(head.len());
                let mut bytes = head[..at].to_vec();
                bytes.extend_from_slice(tail.get(at..).unwrap_or(&[]));
                self.deliver(&bytes, receive, 0);
            }
            RecordOp::Reflect { msg, receive } => {
                let own = self.alice_sent[usize::from(msg) % self.alice_sent.len()].clone();
                self.deliver(&own, receive, 0);
            }
            RecordOp::Encrypt { len } => self.encrypt(len),
            RecordOp::Request { req } => {
                let i = usize::from(req) % fx.requests.len();
                self.request(&fx.requests[i].wire);
            }
            RecordOp::CorruptRequest { req, bit } => {
                let mut bytes = fx.requests[usize::from(req) % fx.requests.len()]
                    .wire
                    .clone();
                let bit = usize::from(bit) % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.request(&bytes);
            }
            RecordOp::MakeRequest { msg, flip } => {
                let mut bytes = fx.pool[self.pick(msg)].wire.clone();
                if let Some(bit) = flip {
                    let bit = usize::from(bit) % (bytes.len() * 8);
                    bytes[bit / 8] ^= 1 << (bit % 8);
                }
                self.make_request(&bytes);
            }
            RecordOp::Archive => self.archive(),
            RecordOp::SetLimits { .. } => self.set_limits(op),
            RecordOp::Initiate {
                header_encryption,
                post_quantum,
            } => self.initiate(header_encryption, post_quantum),
            RecordOp::Reload { sealed } => self.reload(sealed),
            RecordOp::Tick { minutes } => {
                self.now = self.now.saturating_add_signed(i64::from(minutes) * 60);
                // Only `status` depends on the clock.
                let shape = shape_of(&self.record, &self.tracker.bytes, self.now);
                assert_eq!(shape, self.tracker.shape);
            }
        }
        self.after();
    }

    /// With no lowered limits, the last pool message not accepted yet whose session the
    /// record holds is accepted (checked by `deliver`); the device is given back.
    fn finish(mut self) {
        if !self.relaxed {
            let last = (0..self.fx.pool.len()).rev().find(|&i| {
                !self.accepted[i] && self.tracker.shape.contains(self.fx.pool[i].session)
            });
            if let Some(i) = last {
                self.deliver(&self.fx.pool[i].wire, false, 0);
                assert!(self.accepted[i]);
            }
        }
        return_alice_device(self.device.take().unwrap());
    }
}

/// Alice's record with Bob holding several sessions (simultaneous initiation, a
/// re-initiation, both header modes, PQXDH with the feature), driven by up to 64
/// [`RecordOp`]s: deliveries of Bob's messages (intact, altered, replayed, in any order,
/// through `receive` or `decrypt`), her own messages reflected, sending, decryption-error
/// requests made and handled (genuine and altered), archiving, limits, new sessions,
/// reloads and the clock. See the module documentation for what it asserts.
pub fn record(data: &[u8]) {
    let mut h = Harness::new();
    for op in record_ops_from_bytes(data) {
        h.apply(op);
    }
    h.finish();
}
