//! The responder's prekey lifecycle (X3DH §3.2 and §4.2, PQXDH §3.2; SPEC.md §8):
//! batches of one-time prekeys with unique ids, signed prekey rotation with the previous
//! keys still accepted until retired, post-quantum one-time and last-resort prekeys, and
//! acceptance of initial messages that deletes the one-time prekeys it consumed, or, where
//! it consumed none, records the initiator's base key, so that a replayed initial message
//! can never create a second session.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::STORAGE_VERSION;
use crate::keys::{IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey};
#[cfg(feature = "pqxdh")]
use crate::persist::PQ_PREKEY_LENGTH;
use crate::persist::{
    read_one_time_prekey, read_signed_prekey, write_one_time_prekey, write_signed_prekey,
    ONE_TIME_PREKEY_LENGTH, SIGNED_PREKEY_LENGTH, TYPE_PREKEY_STORE, TYPE_PREKEY_STORE_PQ,
};
#[cfg(feature = "pqxdh")]
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::ratchet::state::Limits;
use crate::session::{Accepted, ResponderKeys, Session, SessionOptions};
use crate::wire::{read_version_and_type_of, Message};
use crate::x3dh::PreKeyBundle;

/// The most signed prekeys a store keeps (the current one and those not yet retired).
pub const MAX_SIGNED_PREKEYS: usize = 16;
/// The most unused one-time prekeys a store keeps.
pub const MAX_ONE_TIME_PREKEYS: usize = 16_384;
/// The most unused one-time post-quantum prekeys a store keeps (each holds an expanded
/// ML-KEM-768 key in memory).
pub const MAX_PQ_ONE_TIME_PREKEYS: usize = 1_024;
/// The most last-resort post-quantum prekeys a store keeps (the current one and those not
/// yet retired).
pub const MAX_PQ_LAST_RESORT_PREKEYS: usize = 16;
/// The most replay records a store keeps: one per session accepted without consuming a
/// one-time prekey of either kind. When full, such sessions are refused with
/// [`Error::StoreFull`] until the app rotates and retires its signed (or last-resort)
/// prekey, which drops the records made with it.
pub const MAX_REPLAY_RECORDS: usize = 16_384;

/// Length of one stored replay record: `EK_A`, signed prekey id, optional last-resort id.
const REPLAY_RECORD_LENGTH: usize = 32 + 4 + 1 + 4;

/// Which long-lived prekeys a session that consumed no one-time prekey was accepted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplayRecord {
    signed_prekey_id: u32,
    last_resort_id: Option<u32>,
}

/// The post-quantum half of a prekey store.
#[cfg(feature = "pqxdh")]
struct PqKeys {
    next_id: u32,
    current_last_resort: Option<u32>,
    /// One-time and last-resort keys, by id (ids are unique across both kinds).
    keys: BTreeMap<u32, Box<PqPreKey>>,
}

#[cfg(feature = "pqxdh")]
impl PqKeys {
    fn new() -> Self {
        PqKeys {
            next_id: 1,
            current_last_resort: None,
            keys: BTreeMap::new(),
        }
    }

    fn count(&self, kind: PqPreKeyKind) -> usize {
        self.keys.values().filter(|k| k.kind() == kind).count()
    }

    fn is_initial(&self) -> bool {
        self.next_id == 1 && self.current_last_resort.is_none() && self.keys.is_empty()
    }
}

/// A responder's private prekeys: the signed prekeys still accepted, the unused one-time
/// prekeys, the post-quantum prekeys, and the replay records. Persist it with
/// [`PreKeyStore::to_bytes`] (or seal it) after every change.
pub struct PreKeyStore {
    current_signed: u32,
    next_signed_id: u32,
    next_one_time_id: u32,
    // Secrets are boxed so that rebalancing the maps moves pointers, never leaving copies
    // of key material behind in freed nodes.
    signed: BTreeMap<u32, Box<SignedPreKey>>,
    one_time: BTreeMap<u32, Box<OneTimePreKey>>,
    /// `EK_A` of every live session accepted without a one-time prekey.
    replay: BTreeMap<[u8; 32], ReplayRecord>,
    #[cfg(feature = "pqxdh")]
    pq: PqKeys,
}

impl PreKeyStore {
    /// A new store with one signed prekey (id 1) and no one-time prekeys.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn new<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let spk = SignedPreKey::generate(identity, 1, rng)?;
        let mut signed = BTreeMap::new();
        signed.insert(1, Box::new(spk));
        Ok(PreKeyStore {
            current_signed: 1,
            next_signed_id: 2,
            next_one_time_id: 1,
            signed,
            one_time: BTreeMap::new(),
            replay: BTreeMap::new(),
            #[cfg(feature = "pqxdh")]
            pq: PqKeys::new(),
        })
    }

    /// Generates `count` one-time prekeys with fresh ids (never reused by this store) and
    /// returns them, to publish their public halves.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if the store would hold more than [`MAX_ONE_TIME_PREKEYS`] or
    /// the id space is exhausted; [`Error::RandomnessUnavailable`]. On error nothing is added.
    pub fn generate_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<&OneTimePreKey>, Error> {
        let (first, end) = id_range(
            self.next_one_time_id,
            count,
            self.one_time.len(),
            MAX_ONE_TIME_PREKEYS,
        )?;
        let mut fresh = Vec::with_capacity(count);
        for id in first..end {
            fresh.push(OneTimePreKey::generate(id, rng)?);
        }
        for key in fresh {
            self.one_time.insert(key.id(), Box::new(key));
        }
        self.next_one_time_id = end;
        Ok(self.one_time.range(first..end).map(|(_, k)| &**k).collect())
    }

    /// Generates a new signed prekey and makes it current. The previous ones stay accepted
    /// until [`PreKeyStore::retire_signed_prekey`]. Returns the new id.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if [`MAX_SIGNED_PREKEYS`] are held (retire some first) or the id
    /// space is exhausted; [`Error::RandomnessUnavailable`].
    pub fn rotate_signed_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<u32, Error> {
        let (id, next) = id_range(
            self.next_signed_id,
            1,
            self.signed.len(),
            MAX_SIGNED_PREKEYS,
        )?;
        let spk = SignedPreKey::generate(identity, id, rng)?;
        self.signed.insert(id, Box::new(spk));
        self.current_signed = id;
        self.next_signed_id = next;
        Ok(id)
    }

    /// Stops accepting a signed prekey, and forgets the replay records of sessions made
    /// with it (a replay naming it now fails anyway). The current one cannot be retired.
    /// Returns whether a key was removed.
    pub fn retire_signed_prekey(&mut self, id: u32) -> bool {
        if id == self.current_signed || self.signed.remove(&id).is_none() {
            return false;
        }
        self.replay.retain(|_, r| r.signed_prekey_id != id);
        true
    }

    /// The current signed prekey, the one to publish.
    pub fn current_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.signed.get(&self.current_signed).map(|k| &**k)
    }

    /// A signed prekey still accepted, by id.
    pub fn signed_prekey(&self, id: u32) -> Option<&SignedPreKey> {
        self.signed.get(&id).map(|k| &**k)
    }

    /// An unused one-time prekey, by id.
    pub fn one_time_prekey(&self, id: u32) -> Option<&OneTimePreKey> {
        self.one_time.get(&id).map(|k| &**k)
    }

    /// The unused one-time prekeys, by increasing id.
    pub fn one_time_prekeys(&self) -> impl Iterator<Item = &OneTimePreKey> + '_ {
        self.one_time.values().map(|k| &**k)
    }

    /// Deletes a one-time prekey; returns whether it was present.
    pub fn remove_one_time_prekey(&mut self, id: u32) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// How many replay records the store holds (SPEC.md §8).
    pub fn replay_records(&self) -> usize {
        self.replay.len()
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
        one_time_id: Option<u32>,
    ) -> Result<PreKeyBundle, Error> {
        let spk = self
            .current_signed_prekey()
            .ok_or(Error::UnknownSignedPreKey(self.current_signed))?;
        let opk = match one_time_id {
            Some(id) => Some(
                self.one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        Ok(PreKeyBundle::new(identity, spk, opk))
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
    /// [`Accepted::used_post_quantum_prekey`]) or, if it used none, records its base key so
    /// that the same initial message is refused next time.
    ///
    /// The options are checked first, before any key is looked up: the pinned identity
    /// ([`Error::IdentityMismatch`]), PQXDH if required ([`Error::PostQuantumRequired`]),
    /// the limits ([`Error::InvalidLimits`]).
    ///
    /// # Errors
    /// Parse errors, [`Error::NotInitialMessage`], the option errors above,
    /// [`Error::UnknownSignedPreKey`], [`Error::UnknownOneTimePreKey`],
    /// [`Error::UnknownPqPreKey`], [`Error::DuplicateOrExpired`] (a replayed initial message
    /// that consumed no one-time prekey), [`Error::StoreFull`] (no room for its replay
    /// record), [`Error::WrongSession`], or any error of
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
        let fields = &initial.fields;
        let limits = options.check(
            &fields.identity,
            initial.is_post_quantum(),
            initial.is_header_encrypted(),
        )?;

        let keys = ResponderKeys {
            signed_prekey: self
                .signed
                .get(&fields.signed_prekey_id)
                .ok_or(Error::UnknownSignedPreKey(fields.signed_prekey_id))?,
            one_time_prekey: match fields.one_time_prekey_id {
                Some(id) => Some(
                    self.one_time
                        .get(&id)
                        .ok_or(Error::UnknownOneTimePreKey(id))?,
                ),
                None => None,
            },
            #[cfg(feature = "pqxdh")]
            post_quantum_prekey: match fields.post_quantum {
                Some((id, _)) => Some(self.pq.keys.get(&id).ok_or(Error::UnknownPqPreKey(id))?),
                None => None,
            },
        };
        #[cfg(not(feature = "pqxdh"))]
        if let Some((id, _)) = fields.post_quantum {
            return Err(Error::UnknownPqPreKey(id));
        }

        // A session that consumes a one-time prekey of either kind cannot be replayed: the
        // key is deleted below. Any other needs a replay record (SPEC.md §8).
        #[cfg(feature = "pqxdh")]
        let (pq_one_time, last_resort_id) = match keys.post_quantum_prekey {
            Some(k) if k.kind() == PqPreKeyKind::OneTime => (Some(k.id()), None),
            Some(k) => (None, Some(k.id())),
            None => (None, None),
        };
        #[cfg(not(feature = "pqxdh"))]
        let (pq_one_time, last_resort_id): (Option<u32>, Option<u32>) = (None, None);
        let needs_record = fields.one_time_prekey_id.is_none() && pq_one_time.is_none();
        if needs_record {
            if self.replay.contains_key(&fields.base_key) {
                return Err(Error::DuplicateOrExpired);
            }
            if self.replay.len() >= MAX_REPLAY_RECORDS {
                return Err(Error::StoreFull);
            }
        }

        let accepted =
            Session::accept_initial(identity, &keys, &initial, limits, options.padding_policy())?;

        // Commit.
        if let Some(id) = fields.one_time_prekey_id {
            self.one_time.remove(&id);
        }
        #[cfg(feature = "pqxdh")]
        if let Some(id) = pq_one_time {
            self.pq.keys.remove(&id);
        }
        if needs_record {
            self.replay.insert(
                fields.base_key,
                ReplayRecord {
                    signed_prekey_id: fields.signed_prekey_id,
                    last_resort_id,
                },
            );
        }
        Ok(accepted)
    }

    /// The storage encoding (SPEC.md §7.5): type `0x24` while the store has no replay
    /// records and no post-quantum state, type `0x27` otherwise.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let extended = self.is_extended();
        #[cfg(feature = "pqxdh")]
        let pq_len = self.pq.keys.len() * PQ_PREKEY_LENGTH;
        #[cfg(not(feature = "pqxdh"))]
        let pq_len = 0;
        let len = 2
            + 4 * 3
            + 4
            + self.signed.len() * SIGNED_PREKEY_LENGTH
            + 4
            + self.one_time.len() * ONE_TIME_PREKEY_LENGTH
            + if extended {
                4 + self.replay.len() * REPLAY_RECORD_LENGTH + 4 + 5 + 4 + pq_len
            } else {
                0
            };
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.put_u8(STORAGE_VERSION);
        out.put_u8(if extended {
            TYPE_PREKEY_STORE_PQ
        } else {
            TYPE_PREKEY_STORE
        });
        out.put_u32(self.current_signed);
        out.put_u32(self.next_signed_id);
        out.put_u32(self.next_one_time_id);
        // Every count is bounded by a MAX_* constant, far below u32::MAX.
        out.put_u32(self.signed.len() as u32);
        for key in self.signed.values() {
            write_signed_prekey(&mut out, key);
        }
        out.put_u32(self.one_time.len() as u32);
        for key in self.one_time.values() {
            write_one_time_prekey(&mut out, key);
        }
        if extended {
            out.put_u32(self.replay.len() as u32);
            for (base_key, record) in &self.replay {
                out.put(base_key);
                out.put_u32(record.signed_prekey_id);
                out.put_optional(
                    record
                        .last_resort_id
                        .map(u32::to_be_bytes)
                        .as_ref()
                        .map(|b| &b[..]),
                    4,
                );
            }
            #[cfg(feature = "pqxdh")]
            {
                out.put_u32(self.pq.next_id);
                out.put_optional(
                    self.pq
                        .current_last_resort
                        .map(u32::to_be_bytes)
                        .as_ref()
                        .map(|b| &b[..]),
                    4,
                );
                out.put_u32(self.pq.keys.len() as u32);
                for key in self.pq.keys.values() {
                    key.write(&mut out);
                }
            }
            #[cfg(not(feature = "pqxdh"))]
            {
                out.put_u32(1);
                out.put_optional(None, 4);
                out.put_u32(0);
            }
        }
        out
    }

    fn is_extended(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        if !self.pq.is_initial() {
            return true;
        }
        !self.replay.is_empty()
    }

    /// Loads a stored prekey store, validating counts, ids and their order.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`] or [`Error::InvalidEncoding`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = crate::persist::stored_reader(bytes)?;
        let kind = read_version_and_type_of(
            &mut r,
            STORAGE_VERSION,
            &[TYPE_PREKEY_STORE, TYPE_PREKEY_STORE_PQ],
        )?;
        let current_signed = r.u32()?;
        let next_signed_id = r.u32()?;
        let next_one_time_id = r.u32()?;
        let signed_count = r.u32()? as usize;
        if signed_count == 0 || signed_count > MAX_SIGNED_PREKEYS {
            return Err(Error::InvalidEncoding);
        }
        let mut signed = BTreeMap::new();
        for _ in 0..signed_count {
            let key = read_signed_prekey(&mut r)?;
            check_id_order(key.id(), next_signed_id, signed.keys().next_back())?;
            signed.insert(key.id(), Box::new(key));
        }
        if !signed.contains_key(&current_signed) {
            return Err(Error::InvalidEncoding);
        }
        let one_time_count = r.u32()? as usize;
        if one_time_count > MAX_ONE_TIME_PREKEYS {
            return Err(Error::InvalidEncoding);
        }
        let mut one_time = BTreeMap::new();
        for _ in 0..one_time_count {
            let key = read_one_time_prekey(&mut r)?;
            check_id_order(key.id(), next_one_time_id, one_time.keys().next_back())?;
            one_time.insert(key.id(), Box::new(key));
        }
        let mut store = PreKeyStore {
            current_signed,
            next_signed_id,
            next_one_time_id,
            signed,
            one_time,
            replay: BTreeMap::new(),
            #[cfg(feature = "pqxdh")]
            pq: PqKeys::new(),
        };
        if kind == TYPE_PREKEY_STORE_PQ {
            store.read_extension(&mut r)?;
            // One encoding per state: a store without the extension's content is `0x24`.
            if !store.is_extended() {
                return Err(Error::InvalidEncoding);
            }
        }
        r.finish()?;
        Ok(store)
    }

    /// The `0x27` part after the one-time prekeys: replay records, then post-quantum keys.
    fn read_extension(&mut self, r: &mut Reader<'_>) -> Result<(), Error> {
        let replay_count = r.u32()? as usize;
        if replay_count > MAX_REPLAY_RECORDS {
            return Err(Error::InvalidEncoding);
        }
        for _ in 0..replay_count {
            let base_key: [u8; 32] = r.array()?;
            crate::keys::x25519_public_from_bytes(&base_key)?;
            let signed_prekey_id = r.u32()?;
            let last_resort_id = r.optional::<4>()?.map(u32::from_be_bytes);
            if !self.signed.contains_key(&signed_prekey_id)
                || self
                    .replay
                    .keys()
                    .next_back()
                    .is_some_and(|last| *last >= base_key)
            {
                return Err(Error::InvalidEncoding);
            }
            self.replay.insert(
                base_key,
                ReplayRecord {
                    signed_prekey_id,
                    last_resort_id,
                },
            );
        }
        let pq_next_id = r.u32()?;
        let current_last_resort = r.optional::<4>()?.map(u32::from_be_bytes);
        let pq_count = r.u32()? as usize;
        #[cfg(feature = "pqxdh")]
        {
            if pq_count > MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS {
                return Err(Error::InvalidEncoding);
            }
            self.pq.next_id = pq_next_id;
            self.pq.current_last_resort = current_last_resort;
            for _ in 0..pq_count {
                let key = PqPreKey::read(r)?;
                check_id_order(key.id(), pq_next_id, self.pq.keys.keys().next_back())?;
                self.pq.keys.insert(key.id(), Box::new(key));
            }
            if self.pq.count(PqPreKeyKind::OneTime) > MAX_PQ_ONE_TIME_PREKEYS
                || self.pq.count(PqPreKeyKind::LastResort) > MAX_PQ_LAST_RESORT_PREKEYS
            {
                return Err(Error::InvalidEncoding);
            }
            let is_last_resort = |id: u32| {
                self.pq
                    .keys
                    .get(&id)
                    .is_some_and(|k| k.kind() == PqPreKeyKind::LastResort)
            };
            if current_last_resort.is_some_and(|id| !is_last_resort(id))
                || self
                    .replay
                    .values()
                    .filter_map(|r| r.last_resort_id)
                    .any(|id| !is_last_resort(id))
            {
                return Err(Error::InvalidEncoding);
            }
        }
        #[cfg(not(feature = "pqxdh"))]
        {
            // A build without PQXDH can only load a store without post-quantum state.
            if pq_next_id != 1
                || current_last_resort.is_some()
                || pq_count != 0
                || self.replay.values().any(|r| r.last_resort_id.is_some())
            {
                return Err(Error::InvalidEncoding);
            }
        }
        Ok(())
    }
}

#[cfg(feature = "pqxdh")]
impl PreKeyStore {
    /// Generates `count` one-time post-quantum prekeys with fresh ids, signed by
    /// `identity`, and returns them, to publish their public halves.
    ///
    /// # Errors
    /// [`Error::StoreFull`] beyond [`MAX_PQ_ONE_TIME_PREKEYS`] or when the id space is
    /// exhausted; [`Error::RandomnessUnavailable`]. On error nothing is added.
    pub fn generate_pq_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<&PqPreKey>, Error> {
        let held = self.pq.count(PqPreKeyKind::OneTime);
        let (first, end) = id_range(self.pq.next_id, count, held, MAX_PQ_ONE_TIME_PREKEYS)?;
        let mut fresh = Vec::with_capacity(count);
        for id in first..end {
            fresh.push(PqPreKey::generate(
                identity,
                id,
                PqPreKeyKind::OneTime,
                rng,
            )?);
        }
        for key in fresh {
            self.pq.keys.insert(key.id(), Box::new(key));
        }
        self.pq.next_id = end;
        Ok(self.pq.keys.range(first..end).map(|(_, k)| &**k).collect())
    }

    /// Generates a new last-resort post-quantum prekey and makes it current. Earlier ones
    /// stay accepted until [`PreKeyStore::retire_pq_last_resort_prekey`]. Returns its id.
    ///
    /// # Errors
    /// [`Error::StoreFull`] beyond [`MAX_PQ_LAST_RESORT_PREKEYS`] or when the id space is
    /// exhausted; [`Error::RandomnessUnavailable`].
    pub fn rotate_pq_last_resort_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Result<u32, Error> {
        let held = self.pq.count(PqPreKeyKind::LastResort);
        let (id, next) = id_range(self.pq.next_id, 1, held, MAX_PQ_LAST_RESORT_PREKEYS)?;
        let key = PqPreKey::generate(identity, id, PqPreKeyKind::LastResort, rng)?;
        self.pq.keys.insert(id, Box::new(key));
        self.pq.current_last_resort = Some(id);
        self.pq.next_id = next;
        Ok(id)
    }

    /// Stops accepting a last-resort post-quantum prekey and forgets the replay records
    /// made with it. The current one cannot be retired. Returns whether a key was removed.
    pub fn retire_pq_last_resort_prekey(&mut self, id: u32) -> bool {
        let retirable = self.pq.current_last_resort != Some(id)
            && self
                .pq
                .keys
                .get(&id)
                .is_some_and(|k| k.kind() == PqPreKeyKind::LastResort);
        if !retirable {
            return false;
        }
        self.pq.keys.remove(&id);
        self.replay.retain(|_, r| r.last_resort_id != Some(id));
        true
    }

    /// A post-quantum prekey (either kind) still accepted, by id.
    pub fn pq_prekey(&self, id: u32) -> Option<&PqPreKey> {
        self.pq.keys.get(&id).map(|k| &**k)
    }

    /// The unused one-time post-quantum prekeys, by increasing id.
    pub fn pq_one_time_prekeys(&self) -> impl Iterator<Item = &PqPreKey> + '_ {
        self.pq
            .keys
            .values()
            .map(|k| &**k)
            .filter(|k| k.kind() == PqPreKeyKind::OneTime)
    }

    /// Deletes a one-time post-quantum prekey; returns whether it was present.
    pub fn remove_pq_one_time_prekey(&mut self, id: u32) -> bool {
        let one_time = self
            .pq
            .keys
            .get(&id)
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
        one_time_id: Option<u32>,
        pq_one_time_id: Option<u32>,
    ) -> Result<PreKeyBundle, Error> {
        let pq = match pq_one_time_id {
            Some(id) => self
                .pq_one_time_prekeys()
                .find(|k| k.id() == id)
                .ok_or(Error::UnknownPqPreKey(id))?,
            None => self
                .pq
                .current_last_resort
                .and_then(|id| self.pq.keys.get(&id))
                .ok_or(Error::UnknownPqPreKey(0))?,
        };
        Ok(self
            .bundle(identity, one_time_id)?
            .with_post_quantum_prekey(pq))
    }
}

/// Reserves `count` ids from `next`, with `held` keys of a kind already stored and at
/// most `max` allowed: returns `(first, end)`.
fn id_range(next: u32, count: usize, held: usize, max: usize) -> Result<(u32, u32), Error> {
    if held.saturating_add(count) > max {
        return Err(Error::StoreFull);
    }
    let end = u32::try_from(count)
        .ok()
        .and_then(|c| next.checked_add(c))
        .ok_or(Error::StoreFull)?;
    Ok((next, end))
}

/// Stored ids are strictly increasing and below the next id the store would issue.
fn check_id_order(id: u32, next: u32, last: Option<&u32>) -> Result<(), Error> {
    if id >= next || last.is_some_and(|last| *last >= id) {
        return Err(Error::InvalidEncoding);
    }
    Ok(())
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("PreKeyStore");
        d.field("current_signed", &self.current_signed)
            .field("signed_prekeys", &self.signed.len())
            .field("one_time_prekeys", &self.one_time.len())
            .field("replay_records", &self.replay.len());
        #[cfg(feature = "pqxdh")]
        d.field("pq_prekeys", &self.pq.keys.len())
            .field("pq_last_resort", &self.pq.current_last_resort);
        d.finish_non_exhaustive()
    }
}
