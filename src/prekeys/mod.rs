//! The responder's prekey lifecycle (X3DH §3.2 and §4.2, PQXDH §3.2; SPEC.md §8).
//!
//! * Prekey ids are random 64-bit values, never 0, unique within the store, so a store
//!   restored from an older copy practically never issues an id a server still holds.
//!   Eviction age comes from a stored sequence number, not from the ids.
//! * Accepting an initial message deletes the one-time prekeys it consumed or, where it
//!   consumed none, records the initiator's base key under the signed prekey it used, so
//!   that a replayed initial message can never create a second session.
//! * Replay records are bounded per signed prekey. When the current signed prekey's records
//!   fill, the store switches to a standby signed prekey generated at the previous rotation
//!   (accepting takes no RNG) and tells the app to publish it ([`StoreNotice`]).
//! * [`LocalDevice::after_restore`] replaces every prekey of a store the app knows it
//!   restored from an older copy.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use crate::error::Error;
use crate::format::ID_DRAWS;
pub use crate::format::{
    DEFAULT_ONE_TIME_PREKEY_CAP, MAX_ONE_TIME_PREKEYS, MAX_PQ_LAST_RESORT_PREKEYS,
    MAX_PQ_ONE_TIME_PREKEYS, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, MAX_SIGNED_PREKEYS,
};
use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
use crate::keys::{fill_random, IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey};
#[cfg(feature = "pqxdh")]
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::session::{Session, SessionOptions};
use crate::x3dh::PreKeyBundle;

mod accept;
mod maintain;
#[cfg(feature = "pqxdh")]
mod post_quantum;
mod storage;
mod upload;

pub use accept::ReplayRecord;
pub use maintain::{Maintenance, PreKeyPolicy};

/// Something the app must act on after [`LocalDevice::accept`] or
/// [`LocalDevice::set_replay_capacity`] (SPEC.md §8.3).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreNotice {
    /// The current signed prekey's replay records filled, so the store made its standby
    /// signed prekey current. Upload it ([`LocalDevice::upload_set`]), and call
    /// [`LocalDevice::maintain`] so that the next switch finds a standby. Messages
    /// that name `previous` and consume no one-time prekey are refused from now on
    /// ([`Error::StoreFull`]); those that consume one are still accepted.
    SignedPreKeySwitched {
        /// The signed prekey whose records filled.
        previous: SignedPreKeyId,
        /// The signed prekey now current.
        current: SignedPreKeyId,
    },
    /// The current signed prekey's replay records filled and there was no standby: new
    /// sessions without a one-time prekey are refused ([`Error::StoreFull`]) until the app
    /// calls [`LocalDevice::rotate_signed_prekey`] and uploads the new key
    /// ([`LocalDevice::upload_set`]); [`LocalDevice::maintain`] does not rotate a full key
    /// before it is due.
    SignedPreKeyFull {
        /// The signed prekey whose records filled.
        id: SignedPreKeyId,
    },
}

/// What [`LocalDevice::after_restore`] generated: every id the app must publish, in place
/// of every prekey of this device the server holds.
#[non_exhaustive]
#[must_use = "what a restore did must be acted on (publish, re-upload)"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The new current signed prekey.
    pub signed_prekey: SignedPreKeyId,
    /// The new one-time prekeys, as many as the store held before.
    pub one_time_prekeys: Vec<OneTimePreKeyId>,
    /// The new one-time post-quantum prekeys, as many as the store held before.
    pub pq_one_time_prekeys: Vec<PqPreKeyId>,
    /// The new last-resort post-quantum prekey, if the store had one.
    pub pq_last_resort_prekey: Option<PqPreKeyId>,
}

/// A signed prekey still accepted, with the base keys of the sessions accepted with it
/// that consumed no one-time prekey, and its times (SPEC.md §8).
struct SignedEntry {
    // Boxed, like every secret the store holds: moving an entry (a switch, a rotation)
    // moves a pointer and leaves no copy of the key in freed memory.
    key: Box<SignedPreKey>,
    /// When the key was generated (app time, seconds since the Unix epoch).
    created: u64,
    /// When it stopped being current; `None` for the current key, and for one that a
    /// switch inside `accept` (which has no clock) replaced, until the next `maintain`.
    superseded: Option<u64>,
    records: BTreeSet<[u8; 32]>,
}

/// The standby signed prekey with its generation time.
struct Standby {
    key: Box<SignedPreKey>,
    created: u64,
}

/// A one-time key with the sequence number that orders keys by age, and whether it has
/// been published (SPEC.md §8.5).
struct Aged<K> {
    sequence: u64,
    published: bool,
    // Boxed so that rebalancing the map moves a pointer, leaving no copy of the secret in a
    // freed node.
    key: Box<K>,
}

/// The times of a last-resort post-quantum prekey, as [`SignedEntry`]'s.
#[cfg(feature = "pqxdh")]
#[derive(Clone, Copy)]
struct Times {
    created: u64,
    superseded: Option<u64>,
}

/// The post-quantum half of a local device's prekeys.
#[cfg(feature = "pqxdh")]
#[derive(Default)]
struct PqKeys {
    current_last_resort: Option<PqPreKeyId>,
    /// One-time and last-resort keys, by id (ids are unique across both kinds).
    keys: BTreeMap<PqPreKeyId, Aged<PqPreKey>>,
    /// The times of every last-resort key held.
    last_resort_times: BTreeMap<PqPreKeyId, Times>,
}

#[cfg(feature = "pqxdh")]
impl PqKeys {
    fn count(&self, kind: PqPreKeyKind) -> usize {
        self.keys.values().filter(|k| k.key.kind() == kind).count()
    }
}

/// One device's keys (SPEC.md §8): its identity key pair and every prekey it has
/// published or will publish. The signed prekeys still accepted (each with its replay
/// records and times), a standby signed prekey, the one-time prekeys with their published
/// state, and the post-quantum prekeys.
///
/// It owns the identity, so every prekey it signs and every bundle it builds is under that
/// identity; no call can pair the prekeys with another one. Persist it with
/// [`LocalDevice::to_bytes`] (or seal it) after every change, in the same transaction as a
/// session [`LocalDevice::accept`] created (SPEC.md §8.4).
pub struct LocalDevice {
    identity: IdentityKeyPair,
    /// The signed prekey to publish.
    current: Box<SignedEntry>,
    /// Earlier signed prekeys, still accepted until retired.
    previous: BTreeMap<SignedPreKeyId, Box<SignedEntry>>,
    /// Made current when the current one's records fill.
    standby: Option<Standby>,
    one_time: BTreeMap<OneTimePreKeyId, Aged<OneTimePreKey>>,
    /// The sequence number the next one-time key gets.
    next_sequence: u64,
    /// Replay records one signed prekey may carry.
    replay_capacity: u32,
    /// How many unused one-time prekeys of each kind are kept; generating more evicts the
    /// oldest.
    one_time_cap: u32,
    #[cfg(feature = "pqxdh")]
    pq: PqKeys,
}

/// What generating one-time prekeys did: the new ids, to publish, and the oldest unused
/// ones evicted to stay within the cap ([`LocalDevice::one_time_prekey_cap`]), which the
/// server should drop (an initial message naming one now fails with
/// [`Error::UnknownOneTimePreKey`] or [`Error::UnknownPqPreKey`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated<I> {
    /// The new prekeys' ids, oldest first.
    pub created: Vec<I>,
    /// The evicted prekeys' ids, oldest first.
    pub evicted: Vec<I>,
}

/// Draws a prekey id: 8 bytes from the RNG read big-endian, drawn again if 0 or `taken`
/// (SPEC.md §8.1).
fn draw_id<I: Copy, R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    make: fn(u64) -> I,
    taken: impl Fn(I) -> bool,
) -> Result<I, Error> {
    for _ in 0..ID_DRAWS {
        let mut bytes = [0u8; 8];
        fill_random(rng, &mut bytes)?;
        let value = u64::from_be_bytes(bytes);
        if value != 0 && !taken(make(value)) {
            return Ok(make(value));
        }
    }
    Err(Error::RandomnessUnavailable)
}

impl LocalDevice {
    /// A new device: a fresh identity key pair, a current and a standby signed prekey
    /// created at `now` (seconds since the Unix epoch, the app's clock), no one-time
    /// prekeys, and the default replay capacity and one-time prekey cap.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn new<R: TryCryptoRng + ?Sized>(now: u64, rng: &mut R) -> Result<Self, Error> {
        let identity = IdentityKeyPair::generate(rng)?;
        Self::from_identity(identity, now, rng)
    }

    /// [`LocalDevice::new`] for an identity key pair the app already has (one it kept from
    /// before it used this type, or one restored from its own backup).
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn from_identity<R: TryCryptoRng + ?Sized>(
        identity: IdentityKeyPair,
        now: u64,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let current_id = draw_id(rng, SignedPreKeyId::from_u64, |_| false)?;
        let current = Box::new(SignedPreKey::generate(&identity, current_id, rng)?);
        let standby_id = draw_id(rng, SignedPreKeyId::from_u64, |id| id == current_id)?;
        let standby = Box::new(SignedPreKey::generate(&identity, standby_id, rng)?);
        Ok(LocalDevice {
            identity,
            current: SignedEntry::new(current, now),
            previous: BTreeMap::new(),
            standby: Some(Standby {
                key: standby,
                created: now,
            }),
            one_time: BTreeMap::new(),
            next_sequence: 0,
            replay_capacity: MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
            one_time_cap: DEFAULT_ONE_TIME_PREKEY_CAP,
            #[cfg(feature = "pqxdh")]
            pq: PqKeys::default(),
        })
    }

    /// This device's identity key, the public half of the key pair it owns.
    pub fn identity_key(&self) -> &IdentityKey {
        self.identity.public_key()
    }

    /// The identity key pair, for signing within the crate.
    pub(crate) fn identity_pair(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// Starts a session with the owner of `bundle` under this device's identity: see
    /// [`Session::initiate`].
    ///
    /// # Errors
    /// As [`Session::initiate`].
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        &self,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        rng: &mut R,
    ) -> Result<Session, Error> {
        Session::initiate(&self.identity, bundle, options, rng)
    }

    /// Whether `id` names a signed prekey held (accepted or standby).
    fn signed_id_taken(&self, id: SignedPreKeyId) -> bool {
        self.signed_entry(id).is_some() || self.standby.as_ref().is_some_and(|s| s.key.id() == id)
    }

    /// How many signed prekeys are held: current, previous and standby.
    fn signed_count(&self) -> usize {
        1 + self.previous.len() + usize::from(self.standby.is_some())
    }

    /// The accepted signed prekey `id`, with its replay records.
    fn signed_entry(&self, id: SignedPreKeyId) -> Option<&SignedEntry> {
        if self.current.key.id() == id {
            Some(&self.current)
        } else {
            self.previous.get(&id).map(|e| &**e)
        }
    }

    fn signed_entry_mut(&mut self, id: SignedPreKeyId) -> Option<&mut SignedEntry> {
        if self.current.key.id() == id {
            Some(&mut self.current)
        } else {
            self.previous.get_mut(&id).map(|e| &mut **e)
        }
    }

    /// Generates `count` one-time prekeys with fresh random ids, unpublished. If the device
    /// would then hold more than [`LocalDevice::one_time_prekey_cap`], the oldest are
    /// evicted first (by the stored sequence number, SPEC.md §8.1), published or not.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if `count` alone exceeds the cap;
    /// [`Error::RandomnessUnavailable`]. On error nothing is added or evicted.
    pub fn generate_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        count: usize,
        rng: &mut R,
    ) -> Result<Generated<OneTimePreKeyId>, Error> {
        let cap = self.cap(MAX_ONE_TIME_PREKEYS);
        if count > cap {
            return Err(Error::StoreFull);
        }
        self.check_sequence_room(count)?;
        // Staged boxed, so that moving them into the map leaves no copy in the Vec's buffer.
        let mut fresh: Vec<Box<OneTimePreKey>> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = draw_id(rng, OneTimePreKeyId::from_u64, |id| {
                self.one_time.contains_key(&id) || fresh.iter().any(|k| k.id() == id)
            })?;
            fresh.push(Box::new(OneTimePreKey::generate(id, rng)?));
        }
        let excess = (self.one_time.len() + count).saturating_sub(cap);
        let evicted = evict_oldest(&mut self.one_time, excess, |_| true);
        let created: Vec<OneTimePreKeyId> = fresh.iter().map(|k| k.id()).collect();
        for key in fresh {
            let sequence = self.take_sequence();
            self.one_time.insert(key.id(), Aged::new(sequence, key));
        }
        Ok(Generated { created, evicted })
    }

    /// The most unused one-time prekeys of each kind the device keeps (default
    /// [`DEFAULT_ONE_TIME_PREKEY_CAP`]; never more than [`MAX_ONE_TIME_PREKEYS`], or
    /// [`MAX_PQ_ONE_TIME_PREKEYS`] post-quantum ones).
    pub fn one_time_prekey_cap(&self) -> u32 {
        self.one_time_cap
    }

    /// Sets [`LocalDevice::one_time_prekey_cap`] (1 ..= [`MAX_ONE_TIME_PREKEYS`]). Keys
    /// already held beyond it stay until the next generation evicts them.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] outside the range; the device is then unchanged.
    pub fn set_one_time_prekey_cap(&mut self, cap: u32) -> Result<(), Error> {
        if cap == 0 || cap as usize > MAX_ONE_TIME_PREKEYS {
            return Err(Error::InvalidLimits);
        }
        self.one_time_cap = cap;
        Ok(())
    }

    /// The cap for a kind whose hard maximum is `max`.
    fn cap(&self, max: usize) -> usize {
        (self.one_time_cap as usize).min(max)
    }

    /// [`Error::StoreFull`] unless `count` more sequence numbers can be issued (only a
    /// stored device crafted near 2^64 runs out).
    fn check_sequence_room(&self, count: usize) -> Result<(), Error> {
        u64::try_from(count)
            .ok()
            .and_then(|c| self.next_sequence.checked_add(c))
            .map(|_| ())
            .ok_or(Error::StoreFull)
    }

    /// The next sequence number; callers check [`check_sequence_room`] first.
    ///
    /// [`check_sequence_room`]: LocalDevice::check_sequence_room
    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.saturating_add(1);
        sequence
    }

    /// Rotates the signed prekey now: a new key created at `now` becomes current (the
    /// standby is kept for a switch, or generated if there is none). The previous one stays
    /// accepted until retired ([`LocalDevice::maintain`] retires it after the policy's grace
    /// period, or [`LocalDevice::retire_signed_prekey`]). Returns the new current id, to
    /// publish. [`LocalDevice::maintain`] calls this when the current key is too old.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if [`MAX_SIGNED_PREKEYS`] would be exceeded (retire some
    /// first); [`Error::RandomnessUnavailable`]. On error the device is unchanged.
    pub fn rotate_signed_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<SignedPreKeyId, Error> {
        let needed = if self.standby.is_some() { 1 } else { 2 };
        if self.signed_count() + needed > MAX_SIGNED_PREKEYS {
            return Err(Error::StoreFull);
        }
        let next = self.fresh_signed_prekey(None, rng)?;
        let fresh_standby = match self.standby {
            Some(_) => None,
            None => Some(Standby {
                key: self.fresh_signed_prekey(Some(next.id()), rng)?,
                created: now,
            }),
        };
        // Every draw is done: from here on nothing fails.
        let standby = self.standby.take().or(fresh_standby);
        Ok(self.install_signed(next, now, Some(now), standby))
    }

    fn fresh_signed_prekey<R: TryCryptoRng + ?Sized>(
        &self,
        also_taken: Option<SignedPreKeyId>,
        rng: &mut R,
    ) -> Result<Box<SignedPreKey>, Error> {
        let id = draw_id(rng, SignedPreKeyId::from_u64, |id| {
            self.signed_id_taken(id) || also_taken == Some(id)
        })?;
        Ok(Box::new(SignedPreKey::generate(&self.identity, id, rng)?))
    }

    /// Makes `current` (generated at `created`) the current signed prekey; the previous
    /// current one stays accepted, superseded at `superseded` (unknown inside `accept`), and
    /// `standby` becomes the standby. Returns the new current id. This is the one rotation
    /// mechanism: a scheduled rotation and a switch to the standby both go through it.
    fn install_signed(
        &mut self,
        current: Box<SignedPreKey>,
        created: u64,
        superseded: Option<u64>,
        standby: Option<Standby>,
    ) -> SignedPreKeyId {
        let id = current.id();
        let mut old = core::mem::replace(&mut self.current, SignedEntry::new(current, created));
        old.superseded = superseded;
        self.previous.insert(old.key.id(), old);
        self.standby = standby;
        id
    }

    /// Stops accepting a signed prekey, and forgets the replay records of sessions made
    /// with it (a replay naming it now fails with [`Error::UnknownSignedPreKey`]). The
    /// current one and the standby cannot be retired. Returns whether a key was removed.
    pub fn retire_signed_prekey(&mut self, id: SignedPreKeyId) -> bool {
        self.previous.remove(&id).is_some()
    }

    /// The current signed prekey, the one to publish.
    pub fn current_signed_prekey(&self) -> &SignedPreKey {
        &self.current.key
    }

    /// When the current signed prekey was generated (the app's time).
    pub fn current_signed_prekey_created(&self) -> u64 {
        self.current.created
    }

    /// The standby signed prekey, if any. It is not accepted (nor published) until it
    /// becomes current.
    pub fn standby_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.standby.as_ref().map(|s| &*s.key)
    }

    /// The earlier signed prekeys still accepted (not current, not standby), by id: the
    /// candidates for retiring.
    pub fn previous_signed_prekeys(&self) -> impl Iterator<Item = &SignedPreKey> + '_ {
        self.previous.values().map(|e| &*e.key)
    }

    /// A signed prekey still accepted, by id.
    pub fn signed_prekey(&self, id: SignedPreKeyId) -> Option<&SignedPreKey> {
        self.signed_entry(id).map(|e| &*e.key)
    }

    /// An unused one-time prekey, by id.
    pub fn one_time_prekey(&self, id: OneTimePreKeyId) -> Option<&OneTimePreKey> {
        self.one_time.get(&id).map(|e| &*e.key)
    }

    /// The unused one-time prekeys, oldest first.
    pub fn one_time_prekeys(&self) -> impl Iterator<Item = &OneTimePreKey> + '_ {
        oldest_first(&self.one_time, |_| true).into_iter()
    }

    /// The unused one-time prekeys not yet marked published, oldest first.
    pub fn unpublished_one_time_prekeys(&self) -> impl Iterator<Item = &OneTimePreKey> + '_ {
        oldest_first(&self.one_time, |e| !e.published).into_iter()
    }

    /// Whether the one-time prekey `id` is held and marked published.
    pub fn is_one_time_prekey_published(&self, id: OneTimePreKeyId) -> bool {
        self.one_time.get(&id).is_some_and(|e| e.published)
    }

    /// Marks one-time prekeys published (the server has them). Ids not held are skipped.
    /// Returns how many were newly marked.
    pub fn mark_one_time_prekeys_published(&mut self, ids: &[OneTimePreKeyId]) -> usize {
        mark_published(&mut self.one_time, ids)
    }

    /// Deletes a one-time prekey; returns whether it was present.
    pub fn remove_one_time_prekey(&mut self, id: OneTimePreKeyId) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// How many replay records the device holds, over all signed prekeys (SPEC.md §8.3).
    pub fn replay_records(&self) -> usize {
        self.current.records.len()
            + self
                .previous
                .values()
                .map(|e| e.records.len())
                .sum::<usize>()
    }

    /// How many replay records one signed prekey may carry before the device switches to
    /// its standby.
    pub fn replay_capacity(&self) -> u32 {
        self.replay_capacity
    }

    /// Sets how many replay records one signed prekey may carry (1 ..=
    /// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`]). Records already held are kept (they still
    /// refuse replays); if the current signed prekey is now full, the device switches as
    /// [`LocalDevice::accept`] would.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] outside the range; the device is then unchanged.
    pub fn set_replay_capacity(&mut self, capacity: u32) -> Result<Option<StoreNotice>, Error> {
        if capacity == 0 || capacity > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY {
            return Err(Error::InvalidLimits);
        }
        self.replay_capacity = capacity;
        Ok(self.switch_if_full())
    }

    /// The classical bundle of this device: the current signed prekey and, if given, the
    /// one-time prekey `one_time_id`. `None` gives a last-resort bundle without one. (A
    /// server assembles bundles from uploaded public parts instead.)
    ///
    /// # Errors
    /// [`Error::UnknownOneTimePreKey`] if `one_time_id` is not held.
    pub fn bundle(&self, one_time_id: Option<OneTimePreKeyId>) -> Result<PreKeyBundle, Error> {
        let opk = match one_time_id {
            Some(id) => Some(
                self.one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        Ok(PreKeyBundle::new(
            &self.identity,
            self.current_signed_prekey(),
            opk,
        ))
    }
}

impl<K> Aged<K> {
    fn new(sequence: u64, key: Box<K>) -> Self {
        Aged {
            sequence,
            published: false,
            key,
        }
    }
}

/// The keys of `map` that pass `keep`, oldest (lowest sequence) first.
fn oldest_first<I, K>(map: &BTreeMap<I, Aged<K>>, keep: impl Fn(&Aged<K>) -> bool) -> Vec<&K> {
    let mut aged: Vec<&Aged<K>> = map.values().filter(|e| keep(e)).collect();
    aged.sort_unstable_by_key(|e| e.sequence);
    aged.into_iter().map(|e| &*e.key).collect()
}

/// Removes the `count` oldest keys of `map` (by sequence) that pass `among`; returns their
/// ids, oldest first.
fn evict_oldest<I: Copy + Ord, K>(
    map: &mut BTreeMap<I, Aged<K>>,
    count: usize,
    among: impl Fn(&K) -> bool,
) -> Vec<I> {
    if count == 0 {
        return Vec::new();
    }
    let mut by_age: Vec<(u64, I)> = map
        .iter()
        .filter(|(_, e)| among(&e.key))
        .map(|(id, e)| (e.sequence, *id))
        .collect();
    by_age.sort_unstable();
    by_age.truncate(count);
    by_age
        .into_iter()
        .map(|(_, id)| {
            map.remove(&id);
            id
        })
        .collect()
}

/// Marks the held keys among `ids` published; returns how many changed.
fn mark_published<I: Ord, K>(map: &mut BTreeMap<I, Aged<K>>, ids: &[I]) -> usize {
    let mut marked = 0;
    for id in ids {
        if let Some(entry) = map.get_mut(id) {
            marked += usize::from(!entry.published);
            entry.published = true;
        }
    }
    marked
}

impl SignedEntry {
    fn new(key: Box<SignedPreKey>, created: u64) -> Box<Self> {
        Box::new(SignedEntry {
            key,
            created,
            superseded: None,
            records: BTreeSet::new(),
        })
    }
}

impl core::fmt::Debug for LocalDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("LocalDevice");
        d.field("identity", self.identity.public_key())
            .field("current_signed", &self.current.key.id())
            .field("signed_prekeys", &(1 + self.previous.len()))
            .field("standby", &self.standby.as_ref().map(|s| s.key.id()))
            .field("one_time_prekeys", &self.one_time.len())
            .field("replay_records", &self.replay_records());
        #[cfg(feature = "pqxdh")]
        d.field("pq_prekeys", &self.pq.keys.len())
            .field("pq_last_resort", &self.pq.current_last_resort);
        d.finish_non_exhaustive()
    }
}
