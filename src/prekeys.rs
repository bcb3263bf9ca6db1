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
//! * [`PreKeyStore::after_restore`] replaces every prekey of a store the app knows it
//!   restored from an older copy.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::PQ_PREKEY_LENGTH;
use crate::format::{
    ID_DRAWS, ONE_TIME_PREKEY_LENGTH, REPLAY_RECORD_LENGTH, SIGNED_PREKEY_LENGTH, STORAGE_VERSION,
    STORE_REPLAY_RECORD_LENGTH, TYPE_PREKEY_STORE, TYPE_REPLAY_RECORD,
};
pub use crate::format::{
    MAX_ONE_TIME_PREKEYS, MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS,
    MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, MAX_SIGNED_PREKEYS,
};
use crate::keys::{
    fill_random, read_one_time_prekey, read_signed_prekey, write_one_time_prekey,
    write_signed_prekey, x25519_public_from_bytes, IdentityKey, IdentityKeyPair, OneTimePreKey,
    SignedPreKey,
};
#[cfg(feature = "pqxdh")]
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::ratchet::state::Limits;
use crate::session::{Accepted, ResponderKeys, Session, SessionOptions};
use crate::wire::{read_version_and_type, InitialFields, Message};
use crate::x3dh::PreKeyBundle;

/// Something the app must act on after [`PreKeyStore::accept`] or
/// [`PreKeyStore::set_replay_capacity`] (SPEC.md §8.3).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreNotice {
    /// The current signed prekey's replay records filled, so the store made its standby
    /// signed prekey current. Publish a bundle with the new one, and call
    /// [`PreKeyStore::replenish_standby`] so that the next switch finds a standby. Messages
    /// that name `previous` and consume no one-time prekey are refused from now on
    /// ([`Error::StoreFull`]); those that consume one are still accepted.
    SignedPreKeySwitched {
        /// The signed prekey whose records filled.
        previous: u64,
        /// The signed prekey now current.
        current: u64,
    },
    /// The current signed prekey's replay records filled and there was no standby: new
    /// sessions without a one-time prekey are refused ([`Error::StoreFull`]) until the app
    /// calls [`PreKeyStore::rotate_signed_prekey`] and publishes the new bundle.
    SignedPreKeyFull {
        /// The signed prekey whose records filled.
        id: u64,
    },
}

/// What [`PreKeyStore::after_restore`] generated: every id the app must publish, in place
/// of every prekey of this device the server holds.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The new current signed prekey.
    pub signed_prekey: u64,
    /// The new one-time prekeys, as many as the store held before.
    pub one_time_prekeys: Vec<u64>,
    /// The new one-time post-quantum prekeys, as many as the store held before.
    pub pq_one_time_prekeys: Vec<u64>,
    /// The new last-resort post-quantum prekey, if the store had one.
    pub pq_last_resort_prekey: Option<u64>,
}

/// A signed prekey still accepted, with the base keys of the sessions accepted with it
/// that consumed no one-time prekey.
struct SignedEntry {
    // Boxed, like every secret the store holds: moving an entry (a switch, a rotation)
    // moves a pointer and leaves no copy of the key in freed memory.
    key: Box<SignedPreKey>,
    records: BTreeSet<[u8; 32]>,
}

/// A one-time key with the sequence number that orders keys by age.
struct Aged<K> {
    sequence: u64,
    // Boxed so that rebalancing the map moves a pointer, leaving no copy of the secret in a
    // freed node.
    key: Box<K>,
}

/// The post-quantum half of a prekey store.
#[cfg(feature = "pqxdh")]
#[derive(Default)]
struct PqKeys {
    current_last_resort: Option<u64>,
    /// One-time and last-resort keys, by id (ids are unique across both kinds).
    keys: BTreeMap<u64, Aged<PqPreKey>>,
}

#[cfg(feature = "pqxdh")]
impl PqKeys {
    fn count(&self, kind: PqPreKeyKind) -> usize {
        self.keys.values().filter(|k| k.key.kind() == kind).count()
    }
}

/// A responder's private prekeys: the signed prekeys still accepted (each with its replay
/// records), a standby signed prekey, the unused one-time prekeys and the post-quantum
/// prekeys. Persist it with [`PreKeyStore::to_bytes`] (or seal it) after every change, in
/// the same transaction as a session [`PreKeyStore::accept`] created (SPEC.md §8.4).
pub struct PreKeyStore {
    /// The signed prekey to publish.
    current: Box<SignedEntry>,
    /// Earlier signed prekeys, still accepted until retired.
    previous: BTreeMap<u64, Box<SignedEntry>>,
    /// Generated at the last rotation; made current when the current one's records fill.
    standby: Option<Box<SignedPreKey>>,
    one_time: BTreeMap<u64, Aged<OneTimePreKey>>,
    /// The sequence number the next one-time key gets.
    next_sequence: u64,
    /// Replay records one signed prekey may carry.
    replay_capacity: u32,
    #[cfg(feature = "pqxdh")]
    pq: PqKeys,
}

/// Draws a prekey id: 8 bytes from the RNG read big-endian, drawn again if 0 or `taken`
/// (SPEC.md §8.1).
fn draw_id<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    taken: impl Fn(u64) -> bool,
) -> Result<u64, Error> {
    for _ in 0..ID_DRAWS {
        let mut bytes = [0u8; 8];
        fill_random(rng, &mut bytes)?;
        let id = u64::from_be_bytes(bytes);
        if id != 0 && !taken(id) {
            return Ok(id);
        }
    }
    Err(Error::RandomnessUnavailable)
}

impl PreKeyStore {
    /// A new store with a current and a standby signed prekey, no one-time prekeys, and
    /// the default replay capacity.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn new<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let current_id = draw_id(rng, |_| false)?;
        let current = Box::new(SignedPreKey::generate(identity, current_id, rng)?);
        let standby_id = draw_id(rng, |id| id == current_id)?;
        let standby = Box::new(SignedPreKey::generate(identity, standby_id, rng)?);
        Ok(PreKeyStore {
            current: SignedEntry::new(current),
            previous: BTreeMap::new(),
            standby: Some(standby),
            one_time: BTreeMap::new(),
            next_sequence: 0,
            replay_capacity: MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
            #[cfg(feature = "pqxdh")]
            pq: PqKeys::default(),
        })
    }

    /// Whether `id` names a signed prekey held (accepted or standby).
    fn signed_id_taken(&self, id: u64) -> bool {
        self.signed_entry(id).is_some() || self.standby.as_ref().is_some_and(|s| s.id() == id)
    }

    /// How many signed prekeys are held: current, previous and standby.
    fn signed_count(&self) -> usize {
        1 + self.previous.len() + usize::from(self.standby.is_some())
    }

    /// The accepted signed prekey `id`, with its replay records.
    fn signed_entry(&self, id: u64) -> Option<&SignedEntry> {
        if self.current.key.id() == id {
            Some(&self.current)
        } else {
            self.previous.get(&id).map(|e| &**e)
        }
    }

    fn signed_entry_mut(&mut self, id: u64) -> Option<&mut SignedEntry> {
        if self.current.key.id() == id {
            Some(&mut self.current)
        } else {
            self.previous.get_mut(&id).map(|e| &mut **e)
        }
    }

    /// Generates `count` one-time prekeys with fresh random ids and returns them, to
    /// publish their public halves.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if the store would hold more than [`MAX_ONE_TIME_PREKEYS`];
    /// [`Error::RandomnessUnavailable`]. On error nothing is added.
    pub fn generate_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<&OneTimePreKey>, Error> {
        if self.one_time.len().saturating_add(count) > MAX_ONE_TIME_PREKEYS {
            return Err(Error::StoreFull);
        }
        self.check_sequence_room(count)?;
        // Staged boxed, so that moving them into the map leaves no copy in the Vec's buffer.
        let mut fresh: Vec<Box<OneTimePreKey>> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = draw_id(rng, |id| {
                self.one_time.contains_key(&id) || fresh.iter().any(|k| k.id() == id)
            })?;
            fresh.push(Box::new(OneTimePreKey::generate(id, rng)?));
        }
        let ids: Vec<u64> = fresh.iter().map(|k| k.id()).collect();
        for key in fresh {
            let sequence = self.take_sequence();
            self.one_time.insert(key.id(), Aged { sequence, key });
        }
        Ok(ids
            .iter()
            .filter_map(|id| self.one_time_prekey(*id))
            .collect())
    }

    /// [`Error::StoreFull`] unless `count` more sequence numbers can be issued (only a
    /// stored store crafted near 2^64 runs out).
    fn check_sequence_room(&self, count: usize) -> Result<(), Error> {
        u64::try_from(count)
            .ok()
            .and_then(|c| self.next_sequence.checked_add(c))
            .map(|_| ())
            .ok_or(Error::StoreFull)
    }

    /// The next sequence number; callers check [`check_sequence_room`] first.
    ///
    /// [`check_sequence_room`]: PreKeyStore::check_sequence_room
    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.saturating_add(1);
        sequence
    }

    /// Rotates the signed prekey: the standby becomes current (or, without one, a new key
    /// does), and a new standby is generated. The previous ones stay accepted until
    /// [`PreKeyStore::retire_signed_prekey`]. Returns the new current id, to publish.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if [`MAX_SIGNED_PREKEYS`] would be exceeded (retire some
    /// first); [`Error::RandomnessUnavailable`]. On error the store is unchanged.
    pub fn rotate_signed_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<u64, Error> {
        let needed = if self.standby.is_some() { 1 } else { 2 };
        if self.signed_count() + needed > MAX_SIGNED_PREKEYS {
            return Err(Error::StoreFull);
        }
        let next = match &self.standby {
            Some(_) => None,
            None => Some(self.fresh_signed_prekey(identity, None, rng)?),
        };
        let taken = next.as_ref().map(|k| k.id());
        let standby = self.fresh_signed_prekey(identity, taken, rng)?;
        let current = match (self.standby.take(), next) {
            (Some(key), _) | (None, Some(key)) => key,
            (None, None) => return Err(Error::Internal),
        };
        Ok(self.install_signed(current, Some(standby)))
    }

    /// Generates a standby signed prekey if the store has none (after a
    /// [`StoreNotice::SignedPreKeySwitched`]). Returns whether it generated one.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if [`MAX_SIGNED_PREKEYS`] are held; [`Error::RandomnessUnavailable`].
    pub fn replenish_standby<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<bool, Error> {
        if self.standby.is_some() {
            return Ok(false);
        }
        if self.signed_count() >= MAX_SIGNED_PREKEYS {
            return Err(Error::StoreFull);
        }
        self.standby = Some(self.fresh_signed_prekey(identity, None, rng)?);
        Ok(true)
    }

    fn fresh_signed_prekey<R: TryCryptoRng + ?Sized>(
        &self,
        identity: &IdentityKeyPair,
        also_taken: Option<u64>,
        rng: &mut R,
    ) -> Result<Box<SignedPreKey>, Error> {
        let id = draw_id(rng, |id| self.signed_id_taken(id) || also_taken == Some(id))?;
        Ok(Box::new(SignedPreKey::generate(identity, id, rng)?))
    }

    /// Makes `current` the current signed prekey (the previous current one stays accepted)
    /// and `standby` the standby; returns the new current id.
    fn install_signed(
        &mut self,
        current: Box<SignedPreKey>,
        standby: Option<Box<SignedPreKey>>,
    ) -> u64 {
        let id = current.id();
        let old = core::mem::replace(&mut self.current, SignedEntry::new(current));
        self.previous.insert(old.key.id(), old);
        self.standby = standby;
        id
    }

    /// Stops accepting a signed prekey, and forgets the replay records of sessions made
    /// with it (a replay naming it now fails with [`Error::UnknownSignedPreKey`]). The
    /// current one and the standby cannot be retired. Returns whether a key was removed.
    pub fn retire_signed_prekey(&mut self, id: u64) -> bool {
        self.previous.remove(&id).is_some()
    }

    /// The current signed prekey, the one to publish.
    pub fn current_signed_prekey(&self) -> &SignedPreKey {
        &self.current.key
    }

    /// The standby signed prekey, if any. It is not accepted (nor published) until it
    /// becomes current.
    pub fn standby_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.standby.as_deref()
    }

    /// The earlier signed prekeys still accepted (not current, not standby), by id: the
    /// candidates for [`PreKeyStore::retire_signed_prekey`].
    pub fn previous_signed_prekeys(&self) -> impl Iterator<Item = &SignedPreKey> + '_ {
        self.previous.values().map(|e| &*e.key)
    }

    /// A signed prekey still accepted, by id.
    pub fn signed_prekey(&self, id: u64) -> Option<&SignedPreKey> {
        self.signed_entry(id).map(|e| &*e.key)
    }

    /// An unused one-time prekey, by id.
    pub fn one_time_prekey(&self, id: u64) -> Option<&OneTimePreKey> {
        self.one_time.get(&id).map(|e| &*e.key)
    }

    /// The unused one-time prekeys, oldest first.
    pub fn one_time_prekeys(&self) -> impl Iterator<Item = &OneTimePreKey> + '_ {
        let mut aged: Vec<&Aged<OneTimePreKey>> = self.one_time.values().collect();
        aged.sort_unstable_by_key(|e| e.sequence);
        aged.into_iter().map(|e| &*e.key)
    }

    /// Deletes a one-time prekey; returns whether it was present.
    pub fn remove_one_time_prekey(&mut self, id: u64) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// How many replay records the store holds, over all signed prekeys (SPEC.md §8.3).
    pub fn replay_records(&self) -> usize {
        self.current.records.len()
            + self
                .previous
                .values()
                .map(|e| e.records.len())
                .sum::<usize>()
    }

    /// How many replay records one signed prekey may carry before the store switches to
    /// its standby.
    pub fn replay_capacity(&self) -> u32 {
        self.replay_capacity
    }

    /// Sets how many replay records one signed prekey may carry (1 ..=
    /// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`]). Records already held are kept (they still
    /// refuse replays); if the current signed prekey is now full, the store switches as
    /// [`PreKeyStore::accept`] would.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] outside the range; the store is then unchanged.
    pub fn set_replay_capacity(&mut self, capacity: u32) -> Result<Option<StoreNotice>, Error> {
        if capacity == 0 || capacity > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY {
            return Err(Error::InvalidLimits);
        }
        self.replay_capacity = capacity;
        Ok(self.switch_if_full())
    }

    /// The classical bundle to publish: the current signed prekey and, if given and
    /// present, the one-time prekey `one_time_id`. `None` gives a last-resort bundle
    /// without one.
    ///
    /// # Errors
    /// [`Error::UnknownOneTimePreKey`] if `one_time_id` is not in the store.
    pub fn bundle(
        &self,
        identity: &IdentityKeyPair,
        one_time_id: Option<u64>,
    ) -> Result<PreKeyBundle, Error> {
        let opk = match one_time_id {
            Some(id) => Some(
                self.one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        Ok(PreKeyBundle::new(
            identity,
            self.current_signed_prekey(),
            opk,
        ))
    }
}

impl SignedEntry {
    fn new(key: Box<SignedPreKey>) -> Box<Self> {
        Box::new(SignedEntry {
            key,
            records: BTreeSet::new(),
        })
    }
}

/// What accepting one initial message will change in the store, decided before the
/// session is created.
struct AcceptPlan {
    one_time: Option<u64>,
    #[cfg(feature = "pqxdh")]
    pq_one_time: Option<u64>,
    /// `(signed prekey, EK_A)` of a session that consumes no one-time prekey.
    record: Option<(u64, [u8; 32])>,
}

impl AcceptPlan {
    /// Whether the plan deletes a one-time prekey (a switch is reported separately).
    fn changes_keys(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        let pq = self.pq_one_time.is_some();
        #[cfg(not(feature = "pqxdh"))]
        let pq = false;
        self.one_time.is_some() || pq
    }
}

/// One replay record (SPEC.md §8.3): the base key `EK_A` of a session accepted without a
/// one-time prekey, under the signed prekey it named. Public data (both are public keys or
/// ids); an app that journals records stores [`ReplayRecord::to_bytes`] per accept and
/// hands them back with [`PreKeyStore::apply_replay_records`] (SPEC.md §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayRecord {
    signed_prekey_id: u64,
    base_key: [u8; 32],
}

impl ReplayRecord {
    /// Length of the encoding: version, type `0x29`, signed prekey id (8), `EK_A` (32).
    pub const LENGTH: usize = REPLAY_RECORD_LENGTH;

    /// The signed prekey the session was accepted with.
    pub fn signed_prekey_id(&self) -> u64 {
        self.signed_prekey_id
    }

    /// The initiator's base key `EK_A`.
    pub fn base_key(&self) -> &[u8; 32] {
        &self.base_key
    }

    /// The storage encoding (SPEC.md §8.4): `version || 0x29 || signed prekey id (u64) ||
    /// EK_A (32)`. Journals are storage, so records carry the storage version like every
    /// stored object.
    pub fn to_bytes(&self) -> [u8; Self::LENGTH] {
        let mut out = [0u8; Self::LENGTH];
        out[0] = STORAGE_VERSION;
        out[1] = TYPE_REPLAY_RECORD;
        out[2..10].copy_from_slice(&self.signed_prekey_id.to_be_bytes());
        out[10..].copy_from_slice(&self.base_key);
        out
    }

    /// Parses [`ReplayRecord::to_bytes`].
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::InvalidEncoding`] (id 0),
    /// [`Error::InvalidPublicKey`] (`EK_A` fails the X25519 validation of SPEC.md §2.2).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_REPLAY_RECORD)?;
        let signed_prekey_id = r.u64()?;
        let base_key: [u8; 32] = r.array()?;
        r.finish()?;
        if signed_prekey_id == 0 {
            return Err(Error::InvalidEncoding);
        }
        x25519_public_from_bytes(&base_key)?;
        Ok(ReplayRecord {
            signed_prekey_id,
            base_key,
        })
    }
}

impl PreKeyStore {
    /// Adds journaled replay records (SPEC.md §8.4) to a store loaded from an older write:
    /// records already held, and records of signed prekeys no longer held (retired since),
    /// are skipped, so replaying a journal twice is harmless. A record under the standby
    /// signed prekey proves the live store had switched to it: the switch is made first.
    /// If the current signed prekey is then full, the store switches as
    /// [`PreKeyStore::accept`] would.
    ///
    /// # Errors
    /// [`Error::InvalidEncoding`] if a signed prekey would carry more than
    /// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`] records; the store is then unchanged.
    pub fn apply_replay_records(
        &mut self,
        records: &[ReplayRecord],
    ) -> Result<Option<StoreNotice>, Error> {
        // A record under the standby proves the live store had switched to it (the standby
        // takes no records): the switch is replayed first, even if the whole-store write
        // that should have followed it was lost.
        let standby_id = self.standby.as_ref().map(|s| s.id());
        let names_standby =
            standby_id.is_some_and(|id| records.iter().any(|r| r.signed_prekey_id == id));
        let none = BTreeSet::new();
        let mut added: BTreeMap<u64, BTreeSet<[u8; 32]>> = BTreeMap::new();
        for record in records {
            let held = match self.signed_entry(record.signed_prekey_id) {
                Some(entry) => &entry.records,
                None if names_standby && standby_id == Some(record.signed_prekey_id) => &none,
                None => continue,
            };
            if held.contains(&record.base_key) {
                continue;
            }
            let fresh = added.entry(record.signed_prekey_id).or_default();
            fresh.insert(record.base_key);
            if held.len() + fresh.len() > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize {
                return Err(Error::InvalidEncoding);
            }
        }
        if added.is_empty() {
            // Nothing new: the store is exactly what was written, switch state included.
            return Ok(None);
        }
        let switched = match (names_standby, self.standby.take()) {
            (true, Some(standby)) => {
                let previous = self.current.key.id();
                let current = self.install_signed(standby, None);
                Some(StoreNotice::SignedPreKeySwitched { previous, current })
            }
            (_, standby) => {
                self.standby = standby;
                None
            }
        };
        for (id, fresh) in added {
            if let Some(entry) = self.signed_entry_mut(id) {
                entry.records.extend(fresh);
            }
        }
        Ok(self.switch_if_full().or(switched))
    }

    /// Accepts a session from an initial message with default [`SessionOptions`]; see
    /// [`PreKeyStore::accept_with`].
    ///
    /// # Errors
    /// As [`PreKeyStore::accept_with`]; on error the store is unchanged.
    pub fn accept(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
    ) -> Result<Accepted, Error> {
        self.accept_with(identity, message, &SessionOptions::new())
    }

    /// [`PreKeyStore::accept`] for a message that claims to come from a contact whose
    /// identity key the app has pinned. An initial message carrying any other identity key
    /// is [`Error::IdentityMismatch`], reported before any key is used or deleted.
    ///
    /// # Errors
    /// Parse errors, [`Error::IdentityMismatch`], then as [`PreKeyStore::accept`]; on error
    /// the store is unchanged.
    pub fn accept_pinned(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
        pinned: &IdentityKey,
    ) -> Result<Accepted, Error> {
        self.accept_with(identity, message, &SessionOptions::new().pin(pinned))
    }

    /// [`PreKeyStore::accept`] with explicit session [`Limits`].
    ///
    /// # Errors
    /// As [`PreKeyStore::accept_with`]; on error the store is unchanged.
    pub fn accept_with_limits(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
        limits: Limits,
    ) -> Result<Accepted, Error> {
        self.accept_with(identity, message, &SessionOptions::new().limits(limits))
    }

    /// Accepts a session from an initial message (X3DH §3.4 or PQXDH §3.4) and, on success
    /// only, deletes the one-time prekeys it used ([`Accepted::used_one_time_prekey`],
    /// [`Accepted::used_post_quantum_prekey`]) or, if it used none, records its base key
    /// under the signed prekey it named, so that the same initial message is refused next
    /// time. A record that fills the current signed prekey switches the store to its
    /// standby ([`Accepted::notice`]).
    ///
    /// Plan, then commit: every check (SPEC.md §10.1) and the whole key agreement and
    /// first decryption happen before the store changes.
    ///
    /// # Errors
    /// Parse errors, [`Error::NotInitialMessage`], the option errors of
    /// [`SessionOptions`] (pin, PQXDH, header encryption, limits),
    /// [`Error::UnknownSignedPreKey`], [`Error::UnknownOneTimePreKey`],
    /// [`Error::UnknownPqPreKey`], [`Error::DuplicateOrExpired`] (a replayed initial message
    /// that consumed no one-time prekey), [`Error::StoreFull`] (its signed prekey carries
    /// [`PreKeyStore::replay_capacity`] records), [`Error::WrongSession`], or any error of
    /// [`Session::decrypt`](crate::Session::decrypt). On error the store is unchanged.
    pub fn accept_with(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
        options: &SessionOptions<'_>,
    ) -> Result<Accepted, Error> {
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return Err(Error::NotInitialMessage),
        };
        let limits = options.check(
            &initial.fields.identity,
            initial.is_post_quantum(),
            initial.is_header_encrypted(),
        )?;
        let keys = self.responder_keys(&initial.fields)?;
        let plan = self.plan_accept(&initial.fields, &keys)?;
        let mut accepted =
            Session::accept_initial(identity, &keys, &initial, limits, options.padding_policy())?;
        accepted.store_keys_changed = plan.changes_keys();
        accepted.replay_record = plan
            .record
            .map(|(signed_prekey_id, base_key)| ReplayRecord {
                signed_prekey_id,
                base_key,
            });
        accepted.notice = self.commit_accept(plan);
        accepted.store_keys_changed |= accepted.notice.is_some();
        Ok(accepted)
    }

    /// The prekeys an initial message names (SPEC.md §10.1: signed, one-time, post-quantum).
    fn responder_keys(&self, fields: &InitialFields<'_>) -> Result<ResponderKeys<'_>, Error> {
        let signed_prekey = self
            .signed_prekey(fields.signed_prekey_id)
            .ok_or(Error::UnknownSignedPreKey(fields.signed_prekey_id))?;
        let one_time_prekey = match fields.one_time_prekey_id {
            Some(id) => Some(
                self.one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        #[cfg(feature = "pqxdh")]
        let post_quantum_prekey = match fields.post_quantum {
            Some((id, _)) => Some(self.pq_prekey(id).ok_or(Error::UnknownPqPreKey(id))?),
            None => None,
        };
        #[cfg(not(feature = "pqxdh"))]
        if let Some((id, _)) = fields.post_quantum {
            return Err(Error::UnknownPqPreKey(id));
        }
        Ok(ResponderKeys {
            signed_prekey,
            one_time_prekey,
            #[cfg(feature = "pqxdh")]
            post_quantum_prekey,
        })
    }

    /// Which one-time keys the session consumes, or the replay record it needs; refuses a
    /// recorded base key and a full signed prekey.
    fn plan_accept(
        &self,
        fields: &InitialFields<'_>,
        keys: &ResponderKeys<'_>,
    ) -> Result<AcceptPlan, Error> {
        #[cfg(feature = "pqxdh")]
        let pq_one_time = keys
            .post_quantum_prekey
            .filter(|k| k.kind() == PqPreKeyKind::OneTime)
            .map(PqPreKey::id);
        #[cfg(not(feature = "pqxdh"))]
        let pq_one_time: Option<u64> = None;
        let record = match (fields.one_time_prekey_id, pq_one_time) {
            (None, None) => Some((keys.signed_prekey.id(), fields.base_key)),
            _ => None,
        };
        if let Some((spk, base_key)) = record {
            let entry = self.signed_entry(spk).ok_or(Error::Internal)?;
            if entry.records.contains(&base_key) {
                return Err(Error::DuplicateOrExpired);
            }
            if entry.records.len() >= self.replay_capacity as usize {
                return Err(Error::StoreFull);
            }
        }
        Ok(AcceptPlan {
            one_time: fields.one_time_prekey_id,
            #[cfg(feature = "pqxdh")]
            pq_one_time,
            record,
        })
    }

    fn commit_accept(&mut self, plan: AcceptPlan) -> Option<StoreNotice> {
        if let Some(id) = plan.one_time {
            self.one_time.remove(&id);
        }
        #[cfg(feature = "pqxdh")]
        if let Some(id) = plan.pq_one_time {
            self.pq.keys.remove(&id);
        }
        let (spk, base_key) = plan.record?;
        self.signed_entry_mut(spk)?.records.insert(base_key);
        self.switch_if_full()
    }

    /// SPEC.md §8.3: once the current signed prekey carries `replay_capacity` records, the
    /// standby becomes current; without a standby the app is told to rotate.
    fn switch_if_full(&mut self) -> Option<StoreNotice> {
        if self.current.records.len() < self.replay_capacity as usize {
            return None;
        }
        let previous = self.current.key.id();
        match self.standby.take() {
            Some(standby) => {
                let current = self.install_signed(standby, None);
                Some(StoreNotice::SignedPreKeySwitched { previous, current })
            }
            None => Some(StoreNotice::SignedPreKeyFull { id: previous }),
        }
    }

    /// For a store the app knows it restored from an older copy (a backup, a crash before
    /// the last save): replaces every prekey, so that nothing the older copy revives can be
    /// used (SPEC.md §8.2). A new current and standby signed prekey; as many new one-time
    /// prekeys (and one-time post-quantum prekeys) as were held; a new last-resort
    /// post-quantum prekey if one was held. Every earlier prekey is dropped with its replay
    /// records: one-time prekeys the older copy revives, and signed prekeys whose records
    /// of sessions accepted after the copy was taken are lost.
    ///
    /// The app then publishes the ids in [`Restored`] and has the server drop every other
    /// prekey of this device. Initiators holding an earlier bundle get
    /// [`Error::UnknownSignedPreKey`] (or `UnknownOneTimePreKey`) and must fetch a new one.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`]; [`Error::StoreFull`] only for a stored store
    /// crafted with its sequence counter near 2^64. The store is then unchanged.
    pub fn after_restore<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<Restored, Error> {
        #[cfg(feature = "pqxdh")]
        let pq_needed = self.pq.count(PqPreKeyKind::OneTime)
            + usize::from(self.pq.current_last_resort.is_some());
        #[cfg(not(feature = "pqxdh"))]
        let pq_needed = 0;
        // Checked before any draw, like every StoreFull (SPEC.md §2.5).
        self.check_sequence_room(self.one_time.len() + pq_needed)?;
        let mut fresh = PreKeyStore::new(identity, rng)?;
        fresh.replay_capacity = self.replay_capacity;
        fresh.next_sequence = self.next_sequence;
        let one_time_prekeys = fresh
            .generate_one_time_prekeys(self.one_time.len(), rng)?
            .iter()
            .map(|k| k.id())
            .collect();
        #[cfg(feature = "pqxdh")]
        let (pq_one_time_prekeys, pq_last_resort_prekey) = {
            let count = self.pq.count(PqPreKeyKind::OneTime);
            let ids = fresh
                .generate_pq_one_time_prekeys(identity, count, rng)?
                .iter()
                .map(|k| k.id())
                .collect();
            let last_resort = match self.pq.current_last_resort {
                Some(_) => Some(fresh.rotate_pq_last_resort_prekey(identity, rng)?),
                None => None,
            };
            (ids, last_resort)
        };
        #[cfg(not(feature = "pqxdh"))]
        let (pq_one_time_prekeys, pq_last_resort_prekey) = (Vec::new(), None);
        let signed_prekey = fresh.current.key.id();
        *self = fresh;
        Ok(Restored {
            signed_prekey,
            one_time_prekeys,
            pq_one_time_prekeys,
            pq_last_resort_prekey,
        })
    }
}

impl PreKeyStore {
    /// The storage encoding (SPEC.md §7.5, type `0x24`).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_length()));
        out.put_u8(STORAGE_VERSION);
        out.put_u8(TYPE_PREKEY_STORE);
        out.put_u32(self.replay_capacity);
        out.put_u64(self.next_sequence);
        out.put_u64(self.current.key.id());
        // Every count is bounded by a MAX_* constant, far below u32::MAX.
        out.put_u32(1 + self.previous.len() as u32);
        let mut signed: Vec<&SignedEntry> = self.previous.values().map(|e| &**e).collect();
        signed.push(&self.current);
        signed.sort_unstable_by_key(|e| e.key.id());
        for entry in signed {
            write_signed_prekey(&mut out, &entry.key);
            out.put_u32(entry.records.len() as u32);
            for base_key in &entry.records {
                out.put(base_key);
            }
        }
        match &self.standby {
            Some(key) => {
                out.put_u8(1);
                write_signed_prekey(&mut out, key);
            }
            None => out.put_optional(None, SIGNED_PREKEY_LENGTH),
        }
        out.put_u32(self.one_time.len() as u32);
        for entry in self.one_time.values() {
            out.put_u64(entry.sequence);
            write_one_time_prekey(&mut out, &entry.key);
        }
        self.write_post_quantum(&mut out);
        out
    }

    fn encoded_length(&self) -> usize {
        #[cfg(feature = "pqxdh")]
        let pq = self.pq.keys.len() * (8 + PQ_PREKEY_LENGTH);
        #[cfg(not(feature = "pqxdh"))]
        let pq = 0;
        2 + 4
            + 8
            + 8
            + 4
            + (1 + self.previous.len()) * (SIGNED_PREKEY_LENGTH + 4)
            + self.replay_records() * STORE_REPLAY_RECORD_LENGTH
            + 1
            + SIGNED_PREKEY_LENGTH
            + 4
            + self.one_time.len() * (8 + ONE_TIME_PREKEY_LENGTH)
            + 9
            + 4
            + pq
    }

    #[cfg(feature = "pqxdh")]
    fn write_post_quantum(&self, out: &mut Vec<u8>) {
        out.put_optional(
            self.pq
                .current_last_resort
                .map(u64::to_be_bytes)
                .as_ref()
                .map(|b| &b[..]),
            8,
        );
        out.put_u32(self.pq.keys.len() as u32);
        for entry in self.pq.keys.values() {
            out.put_u64(entry.sequence);
            entry.key.write(out);
        }
    }

    #[cfg(not(feature = "pqxdh"))]
    fn write_post_quantum(&self, out: &mut Vec<u8>) {
        out.put_optional(None, 8);
        out.put_u32(0);
    }

    /// Loads a stored prekey store, validating every count, id, record and sequence number
    /// (SPEC.md §7.5).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`]
    /// or [`Error::InvalidPublicKey`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = crate::seal::stored_reader(bytes)?;
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_PREKEY_STORE)?;
        let replay_capacity = r.u32()?;
        if replay_capacity == 0 || replay_capacity > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY {
            return Err(Error::InvalidEncoding);
        }
        let next_sequence = r.u64()?;
        let current_id = r.u64()?;
        let (current, previous) = read_signed_entries(&mut r, current_id)?;
        let standby = match r.flag()? {
            true => Some(Box::new(read_signed_prekey(&mut r)?)),
            false => {
                r.take(SIGNED_PREKEY_LENGTH)?
                    .iter()
                    .all(|b| *b == 0)
                    .then_some(())
                    .ok_or(Error::InvalidEncoding)?;
                None
            }
        };
        let mut store = PreKeyStore {
            current,
            previous,
            standby,
            one_time: BTreeMap::new(),
            next_sequence,
            replay_capacity,
            #[cfg(feature = "pqxdh")]
            pq: PqKeys::default(),
        };
        if store
            .standby
            .as_ref()
            .is_some_and(|s| s.id() == 0 || store.signed_entry(s.id()).is_some())
            || store.signed_count() > MAX_SIGNED_PREKEYS
        {
            return Err(Error::InvalidEncoding);
        }
        let mut sequences = BTreeSet::new();
        store.one_time = read_aged(
            &mut r,
            MAX_ONE_TIME_PREKEYS,
            next_sequence,
            &mut sequences,
            read_one_time_prekey,
        )?;
        store.read_post_quantum(&mut r, &mut sequences)?;
        r.finish()?;
        Ok(store)
    }

    #[cfg(feature = "pqxdh")]
    fn read_post_quantum(
        &mut self,
        r: &mut Reader<'_>,
        sequences: &mut BTreeSet<u64>,
    ) -> Result<(), Error> {
        let current_last_resort = r.optional::<8>()?.map(u64::from_be_bytes);
        let max = MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS;
        let keys = read_aged(r, max, self.next_sequence, sequences, PqPreKey::read)?;
        self.pq = PqKeys {
            current_last_resort,
            keys,
        };
        let is_last_resort = |id: u64| {
            self.pq_prekey(id)
                .is_some_and(|k| k.kind() == PqPreKeyKind::LastResort)
        };
        if self.pq.count(PqPreKeyKind::OneTime) > MAX_PQ_ONE_TIME_PREKEYS
            || self.pq.count(PqPreKeyKind::LastResort) > MAX_PQ_LAST_RESORT_PREKEYS
            || current_last_resort.is_some_and(|id| !is_last_resort(id))
        {
            return Err(Error::InvalidEncoding);
        }
        Ok(())
    }

    /// A build without PQXDH loads a store only if its post-quantum part is empty.
    #[cfg(not(feature = "pqxdh"))]
    fn read_post_quantum(
        &mut self,
        r: &mut Reader<'_>,
        _sequences: &mut BTreeSet<u64>,
    ) -> Result<(), Error> {
        if r.optional::<8>()?.is_some() || r.u32()? != 0 {
            return Err(Error::InvalidEncoding);
        }
        Ok(())
    }
}

/// The accepted signed prekeys with their replay records: `s` (1 ..= 16), then each
/// signed prekey, strictly increasing by id, with `r` (at most
/// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`]) base keys, strictly increasing. The current
/// id must be among them.
#[allow(clippy::type_complexity)]
fn read_signed_entries(
    r: &mut Reader<'_>,
    current_id: u64,
) -> Result<(Box<SignedEntry>, BTreeMap<u64, Box<SignedEntry>>), Error> {
    let count = r.u32()? as usize;
    if count == 0 || count > MAX_SIGNED_PREKEYS {
        return Err(Error::InvalidEncoding);
    }
    let mut entries: BTreeMap<u64, Box<SignedEntry>> = BTreeMap::new();
    for _ in 0..count {
        let key = read_signed_prekey(r)?;
        check_increasing(key.id(), entries.keys().next_back())?;
        let records = r.u32()?;
        if records > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY {
            return Err(Error::InvalidEncoding);
        }
        let mut entry = SignedEntry::new(Box::new(key));
        for _ in 0..records {
            let base_key: [u8; 32] = r.array()?;
            x25519_public_from_bytes(&base_key)?;
            if entry.records.last().is_some_and(|last| *last >= base_key) {
                return Err(Error::InvalidEncoding);
            }
            entry.records.insert(base_key);
        }
        entries.insert(entry.key.id(), entry);
    }
    let current = entries.remove(&current_id).ok_or(Error::InvalidEncoding)?;
    Ok((current, entries))
}

/// A count (at most `max`), then that many `sequence (u64) || key`, strictly increasing by
/// id, each sequence below `next_sequence` and distinct from every other read.
fn read_aged<K>(
    r: &mut Reader<'_>,
    max: usize,
    next_sequence: u64,
    sequences: &mut BTreeSet<u64>,
    read: impl Fn(&mut Reader<'_>) -> Result<K, Error>,
) -> Result<BTreeMap<u64, Aged<K>>, Error>
where
    K: HasId,
{
    let count = r.u32()? as usize;
    if count > max {
        return Err(Error::InvalidEncoding);
    }
    let mut keys = BTreeMap::new();
    for _ in 0..count {
        let sequence = r.u64()?;
        let key = read(r)?;
        check_increasing(key.id(), keys.keys().next_back())?;
        if sequence >= next_sequence || !sequences.insert(sequence) {
            return Err(Error::InvalidEncoding);
        }
        keys.insert(
            key.id(),
            Aged {
                sequence,
                key: Box::new(key),
            },
        );
    }
    Ok(keys)
}

/// Prekey types with an id.
trait HasId {
    fn id(&self) -> u64;
}

impl HasId for OneTimePreKey {
    fn id(&self) -> u64 {
        OneTimePreKey::id(self)
    }
}

#[cfg(feature = "pqxdh")]
impl HasId for PqPreKey {
    fn id(&self) -> u64 {
        PqPreKey::id(self)
    }
}

/// Stored ids are never 0 and strictly increasing.
fn check_increasing(id: u64, last: Option<&u64>) -> Result<(), Error> {
    if id == 0 || last.is_some_and(|last| *last >= id) {
        return Err(Error::InvalidEncoding);
    }
    Ok(())
}

#[cfg(feature = "pqxdh")]
impl PreKeyStore {
    /// Generates `count` one-time post-quantum prekeys with fresh random ids, signed by
    /// `identity`, and returns them, to publish their public halves.
    ///
    /// # Errors
    /// [`Error::StoreFull`] beyond [`MAX_PQ_ONE_TIME_PREKEYS`];
    /// [`Error::RandomnessUnavailable`]. On error nothing is added.
    pub fn generate_pq_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<&PqPreKey>, Error> {
        let held = self.pq.count(PqPreKeyKind::OneTime);
        if held.saturating_add(count) > MAX_PQ_ONE_TIME_PREKEYS {
            return Err(Error::StoreFull);
        }
        self.check_sequence_room(count)?;
        // Staged boxed, so that moving them into the map leaves no copy in the Vec's buffer.
        let mut fresh: Vec<Box<PqPreKey>> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = draw_id(rng, |id| {
                self.pq.keys.contains_key(&id) || fresh.iter().any(|k| k.id() == id)
            })?;
            fresh.push(Box::new(PqPreKey::generate(
                identity,
                id,
                PqPreKeyKind::OneTime,
                rng,
            )?));
        }
        let ids: Vec<u64> = fresh.iter().map(|k| k.id()).collect();
        for key in fresh {
            self.insert_pq(key);
        }
        Ok(ids.iter().filter_map(|id| self.pq_prekey(*id)).collect())
    }

    fn insert_pq(&mut self, key: Box<PqPreKey>) {
        let sequence = self.take_sequence();
        self.pq.keys.insert(key.id(), Aged { sequence, key });
    }

    /// Generates a new last-resort post-quantum prekey and makes it current. Earlier ones
    /// stay accepted until [`PreKeyStore::retire_pq_last_resort_prekey`]. Returns its id.
    ///
    /// # Errors
    /// [`Error::StoreFull`] beyond [`MAX_PQ_LAST_RESORT_PREKEYS`];
    /// [`Error::RandomnessUnavailable`].
    pub fn rotate_pq_last_resort_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<u64, Error> {
        if self.pq.count(PqPreKeyKind::LastResort) >= MAX_PQ_LAST_RESORT_PREKEYS {
            return Err(Error::StoreFull);
        }
        self.check_sequence_room(1)?;
        let id = draw_id(rng, |id| self.pq.keys.contains_key(&id))?;
        let key = Box::new(PqPreKey::generate(
            identity,
            id,
            PqPreKeyKind::LastResort,
            rng,
        )?);
        self.insert_pq(key);
        self.pq.current_last_resort = Some(id);
        Ok(id)
    }

    /// Stops accepting a last-resort post-quantum prekey. The current one cannot be
    /// retired. Returns whether a key was removed. (Replay records belong to signed
    /// prekeys: a replay naming a retired last-resort key fails with
    /// [`Error::UnknownPqPreKey`].)
    pub fn retire_pq_last_resort_prekey(&mut self, id: u64) -> bool {
        let retirable = self.pq.current_last_resort != Some(id)
            && self
                .pq_prekey(id)
                .is_some_and(|k| k.kind() == PqPreKeyKind::LastResort);
        retirable && self.pq.keys.remove(&id).is_some()
    }

    /// A post-quantum prekey (either kind) still accepted, by id.
    pub fn pq_prekey(&self, id: u64) -> Option<&PqPreKey> {
        self.pq.keys.get(&id).map(|e| &*e.key)
    }

    /// The unused one-time post-quantum prekeys, oldest first.
    pub fn pq_one_time_prekeys(&self) -> impl Iterator<Item = &PqPreKey> + '_ {
        let mut aged: Vec<&Aged<PqPreKey>> = self
            .pq
            .keys
            .values()
            .filter(|e| e.key.kind() == PqPreKeyKind::OneTime)
            .collect();
        aged.sort_unstable_by_key(|e| e.sequence);
        aged.into_iter().map(|e| &*e.key)
    }

    /// Deletes a one-time post-quantum prekey; returns whether it was present.
    pub fn remove_pq_one_time_prekey(&mut self, id: u64) -> bool {
        let one_time = self
            .pq_prekey(id)
            .is_some_and(|k| k.kind() == PqPreKeyKind::OneTime);
        one_time && self.pq.keys.remove(&id).is_some()
    }

    /// The PQXDH bundle to publish: [`PreKeyStore::bundle`] plus the one-time
    /// post-quantum prekey `pq_one_time_id`, or with `None` the current last-resort one.
    ///
    /// # Errors
    /// [`Error::UnknownOneTimePreKey`], or [`Error::UnknownPqPreKey`] if the named one-time
    /// post-quantum prekey is not held or no last-resort one exists (id 0 then).
    pub fn pq_bundle(
        &self,
        identity: &IdentityKeyPair,
        one_time_id: Option<u64>,
        pq_one_time_id: Option<u64>,
    ) -> Result<PreKeyBundle, Error> {
        let pq = match pq_one_time_id {
            Some(id) => self
                .pq_prekey(id)
                .filter(|k| k.kind() == PqPreKeyKind::OneTime)
                .ok_or(Error::UnknownPqPreKey(id))?,
            None => self
                .pq
                .current_last_resort
                .and_then(|id| self.pq_prekey(id))
                .ok_or(Error::UnknownPqPreKey(0))?,
        };
        Ok(self
            .bundle(identity, one_time_id)?
            .with_post_quantum_prekey(pq))
    }
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("PreKeyStore");
        d.field("current_signed", &self.current.key.id())
            .field("signed_prekeys", &(1 + self.previous.len()))
            .field("standby", &self.standby.as_ref().map(|s| s.id()))
            .field("one_time_prekeys", &self.one_time.len())
            .field("replay_records", &self.replay_records());
        #[cfg(feature = "pqxdh")]
        d.field("pq_prekeys", &self.pq.keys.len())
            .field("pq_last_resort", &self.pq.current_last_resort);
        d.finish_non_exhaustive()
    }
}
