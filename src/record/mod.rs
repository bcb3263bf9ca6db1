//! Session records (SPEC.md §6.3-§6.8): every session with one remote device identity,
//! kept the way §6 says an app keeps them, so that the app does not write the routing and
//! the choice of sending session itself.
//!
//! A [`SessionRecord`] holds at most one *sending session* (§6.4) and a bounded archive of
//! the others, most recently used first (§6.7). It encrypts on the sending session, routes
//! every incoming message (§6.3: an initial message by its session id; a normal message by
//! weighing every session without deriving a key, then trying a bounded number of them,
//! §6.6), accepts new sessions from the local device's prekeys, and moves the sending
//! session by the §6.4 rule, so simultaneous initiation converges without app code.
//!
//! Times are the app's (seconds, as for [`LocalDevice`]): there is no clock in `no_std`.
//! They date sessions, so that the record can report an initiator session that has waited
//! too long for a reply (§6.7), and rate-limit the decryption-error requests of §6.8
//! (`reset.rs`). The storage encoding (§7.8) is in `storage.rs`.

mod reset;
mod storage;

use alloc::boxed::Box;
use alloc::vec::Vec;

use rand_core::TryCryptoRng;

pub use self::reset::ResetOutcome;
use crate::error::Error;
use crate::format::{
    DEFAULT_MAX_ARCHIVED, DEFAULT_MAX_TRIALS, DEFAULT_RECORD_STORED_SKIPPED, MAX_ARCHIVED_CAP,
    MAX_RECORD_STORED_SKIPPED_CAP,
};
use crate::keys::IdentityKey;
use crate::prekeys::{LocalDevice, ReplayRecord, StoreNotice};
use crate::ratchet::{Header, Route};
use crate::session::{Session, SessionOptions};
use crate::wire::{Message, NormalMessage, WireHeader};
use crate::x3dh::{PreKeyBundle, SessionId};

const DAY: u64 = 24 * 60 * 60;

/// The bounds and ages of a [`SessionRecord`] (SPEC.md §6.6-§6.8).
///
/// Start from [`RecordLimits::default`] and change what you need; the fields are public to
/// read:
///
/// ```
/// use doubleratchet::RecordLimits;
///
/// let limits = RecordLimits::default().with_max_archived(10).with_max_trials(2);
/// assert_eq!(limits.max_archived, 10);
/// # assert_eq!(limits.validate(), Ok(()));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordLimits {
    /// At most this many archived sessions (default [`DEFAULT_MAX_ARCHIVED`], from 1 to
    /// [`MAX_ARCHIVED_CAP`]); adding one more evicts the least recently used (SPEC.md
    /// §6.7).
    pub max_archived: u32,
    /// At most this many sessions derive keys for one message (default
    /// [`DEFAULT_MAX_TRIALS`], from 1 to `MAX_ARCHIVED_CAP + 1`): the work budget of SPEC.md
    /// §6.6.
    pub max_trials: u32,
    /// At most this many skipped keys stored by all the record's sessions together (default
    /// [`DEFAULT_RECORD_STORED_SKIPPED`], at most [`MAX_RECORD_STORED_SKIPPED_CAP`]); beyond
    /// it the least recently used sessions lose their oldest keys first (SPEC.md §6.7).
    pub max_stored_skipped: u32,
    /// An initiator session still awaiting its first reply more than this many seconds
    /// after it was made is reported as [`RecordStatus::Unacknowledged`] (default 30 days).
    pub unacknowledged_after: u64,
    /// At most one reset by a decryption-error request per this many seconds (default one
    /// hour, SPEC.md §6.8).
    pub reset_interval: u64,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_archived: DEFAULT_MAX_ARCHIVED,
            max_trials: DEFAULT_MAX_TRIALS,
            max_stored_skipped: DEFAULT_RECORD_STORED_SKIPPED,
            unacknowledged_after: 30 * DAY,
            reset_interval: 60 * 60,
        }
    }
}

impl RecordLimits {
    /// These limits with [`RecordLimits::max_archived`] set to `n`.
    #[must_use]
    pub const fn with_max_archived(mut self, n: u32) -> Self {
        self.max_archived = n;
        self
    }

    /// These limits with [`RecordLimits::max_trials`] set to `n`.
    #[must_use]
    pub const fn with_max_trials(mut self, n: u32) -> Self {
        self.max_trials = n;
        self
    }

    /// These limits with [`RecordLimits::max_stored_skipped`] set to `n`.
    #[must_use]
    pub const fn with_max_stored_skipped(mut self, n: u32) -> Self {
        self.max_stored_skipped = n;
        self
    }

    /// These limits with [`RecordLimits::unacknowledged_after`] set to `seconds`.
    #[must_use]
    pub const fn with_unacknowledged_after(mut self, seconds: u64) -> Self {
        self.unacknowledged_after = seconds;
        self
    }

    /// These limits with [`RecordLimits::reset_interval`] set to `seconds`.
    #[must_use]
    pub const fn with_reset_interval(mut self, seconds: u64) -> Self {
        self.reset_interval = seconds;
        self
    }

    /// Checks the limits against the hard caps.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] for an archive bound of 0 (the session that just decrypted
    /// or was accepted must stay) or above [`MAX_ARCHIVED_CAP`], a trial bound of 0 or
    /// above `MAX_ARCHIVED_CAP + 1`, or more than
    /// [`MAX_RECORD_STORED_SKIPPED_CAP`] skipped keys.
    pub const fn validate(&self) -> Result<(), Error> {
        if self.max_archived == 0
            || self.max_archived > MAX_ARCHIVED_CAP
            || self.max_trials == 0
            || self.max_trials > MAX_ARCHIVED_CAP + 1
            || self.max_stored_skipped > MAX_RECORD_STORED_SKIPPED_CAP
        {
            return Err(Error::InvalidLimits);
        }
        Ok(())
    }
}

/// Where a record stands for sending (SPEC.md §6.7), from [`SessionRecord::status`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// No sending session: none was made yet, or it was archived. Fetch the contact's
    /// bundle and [`SessionRecord::initiate`] (or wait for the contact's initial message).
    NoSession,
    /// The sending session has a reply from the peer (or was accepted from the peer's
    /// initial message).
    Ready,
    /// The sending session was initiated at `since` and has no reply yet: messages sent on
    /// it are initial messages (SPEC.md §6.2).
    AwaitingReply {
        /// When the session was initiated (the app's time).
        since: u64,
    },
    /// As [`RecordStatus::AwaitingReply`], for longer than
    /// [`RecordLimits::unacknowledged_after`]: the peer may never have received it (its
    /// prekeys were gone, its device was reset). Fetch a new bundle and initiate again.
    Unacknowledged {
        /// When the session was initiated (the app's time).
        since: u64,
    },
}

/// What [`SessionRecord::receive`] returns: the plaintext, which session decrypted it, and
/// what the local device did if the message started a new session.
#[non_exhaustive]
#[must_use = "the record (and, for a new session, the device) must be stored and the plaintext delivered"]
pub struct Received {
    /// The decrypted message.
    pub plaintext: Vec<u8>,
    /// The session that decrypted it.
    pub session_id: SessionId,
    /// Whether the message started a new session from the device's prekeys. The device
    /// changed (a one-time prekey deleted, or a replay record added): store the record
    /// first, then the device (SPEC.md §8.4).
    pub new_session: bool,
    /// As [`Accepted::notice`](crate::Accepted::notice), for a new session.
    pub notice: Option<StoreNotice>,
    /// As [`Accepted::replay_record`](crate::Accepted::replay_record), for a new session.
    pub replay_record: Option<ReplayRecord>,
    /// As [`Accepted::store_keys_changed`](crate::Accepted::store_keys_changed), for a new
    /// session.
    pub store_keys_changed: bool,
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Received")
            .field("plaintext_len", &self.plaintext.len())
            .field("session_id", &self.session_id)
            .field("new_session", &self.new_session)
            .field("notice", &self.notice)
            .field("replay_record", &self.replay_record)
            .field("store_keys_changed", &self.store_keys_changed)
            .finish_non_exhaustive()
    }
}

/// Every session with one remote device identity (SPEC.md §6.3-§6.8): the sending session
/// and a bounded archive, with the routing of incoming messages and the §6.4 choice of the
/// sending session built in.
///
/// Every method that takes a message, a bundle or a request either succeeds or returns an
/// [`Error`] and leaves the record exactly as it was. Store the record (with
/// [`SessionRecord::to_bytes`], or sealed with [`StorageKey`](crate::StorageKey)) after
/// every successful call that changes it, before a message leaves or a plaintext is shown.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct SessionRecord {
    local: IdentityKey,
    remote: IdentityKey,
    limits: RecordLimits,
    /// The sending session (SPEC.md §6.4). Entries are boxed so that reordering the
    /// archive moves pointers, never copies of session secrets.
    sending: Option<Box<Entry>>,
    /// The other sessions, most recently used first. Boxed on purpose (not what
    /// `clippy::vec_box` assumes): reordering moves pointers, not session secrets.
    #[allow(clippy::vec_box)]
    archived: Vec<Box<Entry>>,
    /// The session the previous decrypted message used (SPEC.md §6.4, clause 2).
    last_decrypted: Option<SessionId>,
    /// The last reset by a decryption-error request (SPEC.md §6.8).
    last_reset: Option<ResetMark>,
}

/// One session of a record.
#[cfg_attr(fuzzing, derive(Clone))]
struct Entry {
    session: Session,
    /// The session's id (SPEC.md §3.5), a hash computed once when the entry is made.
    id: SessionId,
    /// When the session was added to the record (the app's time).
    created: u64,
    /// Archived by a decryption-error request or by the app: it still decrypts, but never
    /// becomes the sending session again.
    retired: bool,
}

/// A reset by a decryption-error request: the request's time, and the record's time when
/// it acted (SPEC.md §6.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ResetMark {
    request_time: u64,
    at: u64,
}

/// Where a session sits in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Sending,
    Archived(usize),
}

impl Entry {
    fn new(session: Session, created: u64, retired: bool) -> Box<Self> {
        Box::new(Entry {
            id: session.id(),
            session,
            created,
            retired,
        })
    }
}

impl SessionRecord {
    /// An empty record for the sessions between `local` (this device's identity) and
    /// `remote` (one device of a contact).
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] for limits out of range ([`RecordLimits::validate`]);
    /// [`Error::WrongRecord`] if the two identities are the same.
    pub fn new(
        local: &IdentityKey,
        remote: &IdentityKey,
        limits: RecordLimits,
    ) -> Result<Self, Error> {
        limits.validate()?;
        if local == remote {
            return Err(Error::WrongRecord);
        }
        Ok(SessionRecord {
            local: *local,
            remote: *remote,
            limits,
            sending: None,
            archived: Vec::new(),
            last_decrypted: None,
            last_reset: None,
        })
    }

    /// Starts a new session from the contact's `bundle` (see [`Session::initiate`]) and
    /// makes it the sending session (SPEC.md §6.4, clause 1); the previous sending session
    /// is archived and keeps decrypting, and can become the sending session again by the
    /// §6.4 rule (SPEC.md §6.6). To replace it for good (after a restore, to re-key), call
    /// [`SessionRecord::archive_sending_session`] first. Returns the new session's id.
    ///
    /// # Errors
    /// [`Error::WrongRecord`] for a device of another identity than the record's local
    /// one; [`Error::IdentityMismatch`] for a bundle of another identity than the record's
    /// remote one (a changed identity key: verify it before making a new record); any
    /// error of [`Session::initiate`]. The record is then unchanged.
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        &mut self,
        device: &LocalDevice,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        now: u64,
        rng: &mut R,
    ) -> Result<SessionId, Error> {
        self.check_device(device)?;
        if bundle.identity_key() != &self.remote {
            return Err(Error::IdentityMismatch);
        }
        let session = device.initiate(bundle, options, rng)?;
        let entry = Entry::new(session, now, false);
        let id = entry.id;
        self.install_sending(entry);
        Ok(id)
    }

    /// Encrypts on the sending session (see [`Session::encrypt`]).
    ///
    /// # Errors
    /// [`Error::NoSession`] without a sending session ([`SessionRecord::status`]); any
    /// error of [`Session::encrypt`]. The record is then unchanged.
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let entry = self.sending.as_mut().ok_or(Error::NoSession)?;
        entry.session.encrypt(plaintext, rng)
    }

    /// Decrypts a message with the record's sessions (SPEC.md §6.3, §6.6): an initial
    /// message with the session of its id; a normal message with the session that holds its
    /// key, or the first of a bounded number of sessions that can take a new chain. The
    /// session that decrypts becomes the most recently used, and the sending session by
    /// the §6.4 rule.
    ///
    /// An initial message of a session the record does not hold needs the local device's
    /// prekeys: use [`SessionRecord::receive`].
    ///
    /// # Errors
    /// Parse errors; [`Error::IdentityMismatch`] for an initial message from another
    /// identity than the record's remote one; [`Error::WrongSession`] for an initial
    /// message of a session the record does not hold; [`Error::NoSession`] for a normal
    /// message to an empty record, or to a record without a session of the message's
    /// header mode ([`Error::WrongSession`]); otherwise the error of the first session
    /// tried, or, if none could be tried, of the session that holds the message's chain (a
    /// replay: [`Error::DuplicateOrExpired`]), or else of the first session weighed
    /// (SPEC.md §6.6). The record is then unchanged.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.decrypt_held(message).map(|(_, plaintext)| plaintext)
    }

    /// [`SessionRecord::decrypt`], with the id of the session that decrypted.
    fn decrypt_held(&mut self, message: &[u8]) -> Result<(SessionId, Vec<u8>), Error> {
        let (slot, id, plaintext) = match Message::parse(message)? {
            Message::Normal(m) => self.decrypt_normal(&m)?,
            Message::Initial(m) => {
                if m.identity_key() != &self.remote {
                    return Err(Error::IdentityMismatch);
                }
                let slot = self
                    .find(&m.session_id(&self.local))
                    .ok_or(Error::WrongSession)?;
                let entry = self.entry_mut(slot)?;
                (slot, entry.id, entry.session.decrypt(message)?)
            }
        };
        self.promote(slot, id, false);
        self.bound_skipped();
        Ok((id, plaintext))
    }

    /// Decrypts any message, as [`SessionRecord::decrypt`], and accepts an initial message
    /// of a session the record does not hold as a new session from `device`'s prekeys (see
    /// [`LocalDevice::accept`]). A new session becomes the sending session if the record
    /// has none, or by the §6.4 rule.
    ///
    /// # Errors
    /// [`Error::WrongRecord`] for a device of another identity; the errors of
    /// [`SessionRecord::decrypt`] and [`LocalDevice::accept`]. The record and the device
    /// are then unchanged.
    pub fn receive(
        &mut self,
        device: &mut LocalDevice,
        message: &[u8],
        options: &SessionOptions,
        now: u64,
    ) -> Result<Received, Error> {
        self.check_device(device)?;
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return self.received_by(message),
        };
        if initial.identity_key() != &self.remote {
            return Err(Error::IdentityMismatch);
        }
        if self.find(&initial.session_id(&self.local)).is_some() {
            return self.received_by(message);
        }
        let accepted = device.accept(message, options)?;
        let entry = Entry::new(accepted.session, now, false);
        let session_id = entry.id;
        self.archived.insert(0, entry);
        self.promote(Slot::Archived(0), session_id, true);
        self.bound_archive();
        self.bound_skipped();
        Ok(Received {
            plaintext: accepted.plaintext,
            session_id,
            new_session: true,
            notice: accepted.notice,
            replay_record: accepted.replay_record,
            store_keys_changed: accepted.store_keys_changed,
        })
    }

    /// [`SessionRecord::decrypt`], as a [`Received`] without a new session.
    fn received_by(&mut self, message: &[u8]) -> Result<Received, Error> {
        let (session_id, plaintext) = self.decrypt_held(message)?;
        Ok(Received {
            plaintext,
            session_id,
            new_session: false,
            notice: None,
            replay_record: None,
            store_keys_changed: false,
        })
    }

    /// SPEC.md §6.6: weighs the sessions of the message's header mode without deriving a
    /// key, then tries at most `max_trials` of them, each transactionally.
    fn decrypt_normal(
        &mut self,
        message: &NormalMessage<'_>,
    ) -> Result<(Slot, SessionId, Vec<u8>), Error> {
        if self.is_empty() {
            return Err(Error::NoSession);
        }
        let (candidates, weighed_error) = self.weigh(message);
        let mut tried_error = None;
        let trials = self.limits.max_trials as usize;
        for (slot, header, route) in candidates.into_iter().take(trials) {
            let entry = self.entry_mut(slot)?;
            match entry.session.decrypt_weighed(message, &header, route) {
                Ok(plaintext) => return Ok((slot, entry.id, plaintext)),
                Err(e) => {
                    tried_error.get_or_insert(e);
                }
            }
        }
        Err(tried_error
            .or(weighed_error)
            .unwrap_or(Error::DecryptionFailed))
    }

    /// The sessions worth trying for `message`, in order, with the header and route
    /// weighing found for each, and the error to report if none decrypts it (SPEC.md §6.6).
    /// Only sessions of the message's header mode are weighed, the sending session first,
    /// then the archive most recently used first. The first session that holds the
    /// message's chain (its ratchet key is the current receiving one or has stored keys; in
    /// header-encrypted mode, one of its header keys opens the header) is where the message
    /// belongs: weighing stops there, and that session is the only candidate (or its error
    /// the answer). Otherwise every session whose bounds admit a new chain is a candidate,
    /// and the first error met is the answer.
    fn weigh(&self, message: &NormalMessage<'_>) -> (Vec<(Slot, Header, Route)>, Option<Error>) {
        let encrypted = matches!(message.header, WireHeader::Encrypted { .. });
        let mut new_chain = Vec::new();
        let mut error = None;
        let mut weighed = false;
        for (slot, entry) in self.entries() {
            if entry.session.is_header_encrypted() != encrypted {
                continue;
            }
            weighed = true;
            let weight = entry.session.weigh(message);
            match (weight.held, weight.route) {
                (false, Ok((header, Route::Next))) => new_chain.push((slot, header, Route::Next)),
                // A stored key or the current chain is held by definition.
                (_, Ok((header, route))) => return (alloc::vec![(slot, header, route)], None),
                (true, Err(e)) => return (Vec::new(), Some(e)),
                (false, Err(e)) => {
                    error.get_or_insert(e);
                }
            }
        }
        if !weighed {
            return (Vec::new(), Some(Error::WrongSession));
        }
        (new_chain, error)
    }

    /// SPEC.md §6.4, clause 2, after the session in `slot` decrypted a message (or, with
    /// `accepted`, was just accepted from the device's prekeys): it becomes the sending
    /// session if it is not retired and its id is smaller than the sending session's, or
    /// the previous message also decrypted with it; with no sending session, only a session
    /// just accepted takes the place (an archived one stays archived: the place was emptied
    /// on purpose, §6.8). Otherwise it becomes the most recently used archived session.
    /// `id` is the session's.
    fn promote(&mut self, slot: Slot, id: SessionId, accepted: bool) {
        let previous = self.last_decrypted.replace(id);
        let entry = match slot {
            Slot::Archived(index) if index < self.archived.len() => self.archived.remove(index),
            // The sending session stays (and an archived slot is always in range: nothing
            // moves between weighing and the decryption).
            _ => return,
        };
        let switch = !entry.retired
            && match &self.sending {
                None => accepted,
                Some(sending) => id < sending.id || previous == Some(id),
            };
        if switch {
            self.sending_changed();
            if let Some(demoted) = self.sending.replace(entry) {
                self.archived.insert(0, demoted);
            }
        } else {
            self.archived.insert(0, entry);
        }
    }

    /// The sending session changes: a reset's request time no longer counts (SPEC.md §6.8:
    /// it concerned the session before).
    fn sending_changed(&mut self) {
        if let Some(mark) = &mut self.last_reset {
            mark.request_time = 0;
        }
    }

    /// Makes `entry` the sending session (SPEC.md §6.4, clause 1), archiving the previous
    /// one as the most recently used.
    fn install_sending(&mut self, entry: Box<Entry>) {
        // The last decrypting session no longer counts for clause 2: the new session sends
        // until a message decrypts with another one (SPEC.md §6.6).
        self.last_decrypted = None;
        self.sending_changed();
        if let Some(previous) = self.sending.replace(entry) {
            self.archived.insert(0, previous);
        }
        self.bound_archive();
        self.bound_skipped();
    }

    /// Evicts the least recently used archived sessions beyond `max_archived` (SPEC.md
    /// §6.7).
    fn bound_archive(&mut self) {
        let cap = self.limits.max_archived as usize;
        while self.archived.len() > cap {
            if let Some(evicted) = self.archived.pop() {
                if self.last_decrypted == Some(evicted.id) {
                    self.last_decrypted = None;
                }
            }
        }
    }

    /// Keeps at most `max_stored_skipped` skipped keys in the whole record: the least
    /// recently used archived sessions lose their oldest keys first, the sending session
    /// last (SPEC.md §6.7).
    fn bound_skipped(&mut self) {
        let cap = self.limits.max_stored_skipped as usize;
        let mut total = self.stored_skipped_keys();
        let order = self.archived.iter_mut().rev().chain(self.sending.as_mut());
        for entry in order {
            if total <= cap {
                break;
            }
            let held = entry.session.stored_skipped_keys();
            entry
                .session
                .evict_skipped_to(held.saturating_sub(total - cap));
            total -= held - entry.session.stored_skipped_keys();
        }
    }

    /// Archives the sending session as retired: it keeps decrypting, but never sends again
    /// (SPEC.md §6.4, §6.8). Returns its id; the record then has no sending session until
    /// the app initiates a new one or the contact starts one (no archived session takes
    /// the place).
    pub fn archive_sending_session(&mut self) -> Option<SessionId> {
        let mut entry = self.sending.take()?;
        entry.retired = true;
        let id = entry.id;
        self.archived.insert(0, entry);
        self.bound_archive();
        Some(id)
    }

    /// Where the record stands for sending at the app's time `now` (SPEC.md §6.7).
    pub fn status(&self, now: u64) -> RecordStatus {
        let Some(entry) = &self.sending else {
            return RecordStatus::NoSession;
        };
        if !entry.session.awaiting_reply() {
            return RecordStatus::Ready;
        }
        let since = entry.created;
        if now.saturating_sub(since) > self.limits.unacknowledged_after {
            RecordStatus::Unacknowledged { since }
        } else {
            RecordStatus::AwaitingReply { since }
        }
    }

    /// The sending session, if any.
    pub fn sending_session(&self) -> Option<&Session> {
        self.sending.as_ref().map(|e| &e.session)
    }

    /// Every session, the sending session first, then the archived ones most recently used
    /// first (to read them: the record alone encrypts and decrypts).
    pub fn sessions(&self) -> impl Iterator<Item = &Session> + '_ {
        self.entries().map(|(_, e)| &e.session)
    }

    /// The ids of every session, in the order of [`SessionRecord::sessions`].
    pub fn session_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.entries().map(|(_, e)| e.id)
    }

    /// How many sessions the record holds, the sending one included.
    pub fn len(&self) -> usize {
        self.archived.len() + usize::from(self.sending.is_some())
    }

    /// Whether the record holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many skipped message keys the record's sessions store together.
    pub fn stored_skipped_keys(&self) -> usize {
        self.entries()
            .map(|(_, e)| e.session.stored_skipped_keys())
            .sum()
    }

    /// This device's identity key.
    pub fn local_identity(&self) -> &IdentityKey {
        &self.local
    }

    /// The remote device's identity key.
    pub fn remote_identity(&self) -> &IdentityKey {
        &self.remote
    }

    /// The record's limits.
    pub fn limits(&self) -> RecordLimits {
        self.limits
    }

    /// Changes the record's limits; lower bounds evict at once (the least recently used
    /// archived sessions, then the oldest skipped keys, SPEC.md §6.7).
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] above the hard caps; the record is then unchanged.
    pub fn set_limits(&mut self, limits: RecordLimits) -> Result<(), Error> {
        limits.validate()?;
        self.limits = limits;
        self.bound_archive();
        self.bound_skipped();
        Ok(())
    }

    /// Every session with its slot: the sending one first, then the archive in order.
    fn entries(&self) -> impl Iterator<Item = (Slot, &Entry)> + '_ {
        let sending = self.sending.iter().map(|e| (Slot::Sending, &**e));
        let archived = self
            .archived
            .iter()
            .enumerate()
            .map(|(i, e)| (Slot::Archived(i), &**e));
        sending.chain(archived)
    }

    fn find(&self, id: &SessionId) -> Option<Slot> {
        self.entries()
            .find(|(_, e)| e.id == *id)
            .map(|(slot, _)| slot)
    }

    fn entry_mut(&mut self, slot: Slot) -> Result<&mut Entry, Error> {
        let entry = match slot {
            Slot::Sending => self.sending.as_deref_mut(),
            Slot::Archived(i) => self.archived.get_mut(i).map(|e| &mut **e),
        };
        entry.ok_or(Error::Internal)
    }

    fn check_device(&self, device: &LocalDevice) -> Result<(), Error> {
        if device.identity_key() == &self.local {
            Ok(())
        } else {
            Err(Error::WrongRecord)
        }
    }
}

impl core::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("remote_identity", &self.remote)
            .field("sending", &self.sending.as_ref().map(|e| e.id))
            .field("archived", &self.archived.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
