//! A party's sessions with one contact, kept in a [`SessionRecord`] as SPEC.md §6.3-§6.4
//! tell an app to.

use doubleratchet::{
    Error, IdentityKey, Message, PreKeyBundle, RecordLimits, Session, SessionId, SessionOptions,
    SessionRecord,
};
use rand_chacha::ChaCha20Rng;

use crate::fixtures::Party;
use crate::record::StoredRecord;

/// A party and its [`SessionRecord`] with one contact, made when the first session is
/// (initiated from the contact's bundle, or accepted from the contact's initial message).
/// The record routes incoming messages and chooses the sending session (SPEC.md §6.4);
/// this wrapper adds the checks a test wants on every call: a failed `receive` leaves the
/// record and the device byte-identical.
pub struct Peer {
    /// The party's identity and prekey store.
    pub party: Party,
    /// The options of every session the peer initiates or accepts.
    pub options: SessionOptions,
    /// The limits of the record, when it is made.
    pub limits: RecordLimits,
    /// The app's time passed to the record.
    pub now: u64,
    record: Option<SessionRecord>,
}

impl Peer {
    /// A new party without sessions, with the default options and limits.
    pub fn new(rng: &mut ChaCha20Rng) -> Peer {
        Peer::with_options(rng, SessionOptions::new(), RecordLimits::default())
    }

    /// A new party without sessions whose sessions are made with `options` and whose record
    /// has `limits`.
    pub fn with_options(
        rng: &mut ChaCha20Rng,
        options: SessionOptions,
        limits: RecordLimits,
    ) -> Peer {
        Peer {
            party: Party::new(rng),
            options,
            limits,
            now: 0,
            record: None,
        }
    }

    /// The record, once a session was made.
    pub fn record(&self) -> Option<&SessionRecord> {
        self.record.as_ref()
    }

    /// The record, once a session was made.
    pub fn record_mut(&mut self) -> Option<&mut SessionRecord> {
        self.record.as_mut()
    }

    /// Starts a session from the contact's bundle; it becomes the sending session.
    pub fn initiate(&mut self, bundle: &PreKeyBundle, rng: &mut ChaCha20Rng) -> SessionId {
        let device = &self.party.store;
        let record = record_with(
            &mut self.record,
            device.identity_key(),
            bundle.identity_key(),
            self.limits,
        );
        record
            .initiate(device, bundle, &self.options, self.now, rng)
            .unwrap()
    }

    /// The session messages are sent on.
    pub fn sending_session(&self) -> Option<&Session> {
        self.record.as_ref()?.sending_session()
    }

    /// The id of the session messages are sent on.
    pub fn sending_id(&self) -> Option<SessionId> {
        self.sending_session().map(Session::id)
    }

    /// Whether the peer has a session to send on.
    pub fn can_send(&self) -> bool {
        self.sending_session().is_some()
    }

    /// How many sessions the record holds.
    pub fn session_count(&self) -> usize {
        self.record.as_ref().map_or(0, SessionRecord::len)
    }

    /// Copies of every session, the sending one first, then the archived ones most recently
    /// used first (read from the record's storage encoding).
    pub fn sessions(&self) -> Vec<Session> {
        self.record
            .as_ref()
            .map_or_else(Vec::new, |r| StoredRecord::of(r).sessions())
    }

    /// Encrypts on the sending session.
    #[track_caller]
    pub fn send(&mut self, plaintext: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        let record = self.record.as_mut().expect("no session to send on");
        record.encrypt(plaintext, rng).unwrap()
    }

    /// Encrypts on session `id` of the record even if it is not the sending one, as a peer
    /// that abandoned the sending session would. The record has no call for that, so the
    /// session is edited in the record's storage encoding (SPEC.md §7.8).
    #[track_caller]
    pub fn send_on(&mut self, id: SessionId, plaintext: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
        let record = self.record.as_mut().expect("no record");
        let mut stored = StoredRecord::of(record);
        let i = stored.position(id).expect("no such session");
        let mut session = stored.session(i);
        let message = session.encrypt(plaintext, rng).unwrap();
        stored.entries[i].session = session.to_bytes().to_vec();
        *record = stored.load().unwrap();
        message
    }

    /// Routes and decrypts one incoming message with the record (accepting a new session
    /// from the prekey store for an initial message of a session it does not hold). Checks
    /// that a failure left the record and the device byte-identical.
    pub fn receive(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if self.record.is_none() {
            match Message::parse(message)? {
                Message::Initial(m) => {
                    let local = self.party.store.identity_key();
                    record_with(&mut self.record, local, m.identity_key(), self.limits);
                }
                _ => return Err(Error::NoSession),
            }
        }
        let (options, now) = (self.options, self.now);
        let Some(record) = self.record.as_mut() else {
            return Err(Error::NoSession);
        };
        let record_before = record.to_bytes();
        let device_before = self.party.store.to_bytes();
        match record.receive(&mut self.party.store, message, &options, now) {
            Ok(received) => Ok(received.plaintext),
            Err(e) => {
                assert!(
                    record.to_bytes()[..] == record_before[..],
                    "a failed receive ({e:?}) changed the record"
                );
                assert!(
                    self.party.store.to_bytes()[..] == device_before[..],
                    "a failed receive ({e:?}) changed the device"
                );
                Err(e)
            }
        }
    }

    /// Stores and reloads the record (what an app does between two messages), checking
    /// that the reloaded record stores the same bytes.
    pub fn reload(&mut self) {
        if let Some(record) = self.record.as_mut() {
            let bytes = record.to_bytes();
            *record = SessionRecord::from_bytes(&bytes).unwrap();
            assert_eq!(
                record.to_bytes()[..],
                bytes[..],
                "reloading changed the record"
            );
        }
    }
}

/// The record between `local` and `remote` in `slot`, made with `limits` if there is none yet.
fn record_with<'a>(
    slot: &'a mut Option<SessionRecord>,
    local: &IdentityKey,
    remote: &IdentityKey,
    limits: RecordLimits,
) -> &'a mut SessionRecord {
    let record = slot.get_or_insert_with(|| SessionRecord::new(local, remote, limits).unwrap());
    assert_eq!(record.remote_identity(), remote, "one contact per peer");
    record
}
