//! The responder's prekey lifecycle (X3DH §3.2 and §4.2, SPEC.md §8): batches of
//! one-time prekeys with unique ids, signed prekey rotation with the previous keys still
//! accepted until retired, and acceptance of initial messages that deletes the one-time
//! prekey it consumed, so a replayed initial message cannot create a second session.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::keys::{IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey};
use crate::persist::{
    read_one_time_prekey, read_signed_prekey, write_one_time_prekey, write_signed_prekey,
    ONE_TIME_PREKEY_LENGTH, SIGNED_PREKEY_LENGTH, TYPE_PREKEY_STORE,
};
use crate::ratchet::state::Limits;
use crate::session::{Accepted, Session};
use crate::wire::{read_version_and_type, Message, VERSION};
use crate::x3dh::PreKeyBundle;

/// The most signed prekeys a store keeps (the current one and those not yet retired).
pub const MAX_SIGNED_PREKEYS: usize = 16;
/// The most unused one-time prekeys a store keeps.
pub const MAX_ONE_TIME_PREKEYS: usize = 16_384;

/// A responder's private prekeys: the signed prekeys still accepted and the unused
/// one-time prekeys. Persist it with [`PreKeyStore::to_bytes`] (or seal it) after every
/// change.
pub struct PreKeyStore {
    current_signed: u32,
    next_signed_id: u32,
    next_one_time_id: u32,
    signed: BTreeMap<u32, SignedPreKey>,
    one_time: BTreeMap<u32, OneTimePreKey>,
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
        signed.insert(1, spk);
        Ok(PreKeyStore {
            current_signed: 1,
            next_signed_id: 2,
            next_one_time_id: 1,
            signed,
            one_time: BTreeMap::new(),
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
        if self.one_time.len() + count > MAX_ONE_TIME_PREKEYS {
            return Err(Error::StoreFull);
        }
        let first = self.next_one_time_id;
        let end = u32::try_from(count)
            .ok()
            .and_then(|c| first.checked_add(c))
            .ok_or(Error::StoreFull)?;
        let mut fresh = Vec::with_capacity(count);
        for id in first..end {
            fresh.push(OneTimePreKey::generate(id, rng)?);
        }
        for key in fresh {
            self.one_time.insert(key.id(), key);
        }
        self.next_one_time_id = end;
        Ok(self.one_time.range(first..end).map(|(_, k)| k).collect())
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
        if self.signed.len() >= MAX_SIGNED_PREKEYS {
            return Err(Error::StoreFull);
        }
        let id = self.next_signed_id;
        let next = id.checked_add(1).ok_or(Error::StoreFull)?;
        let spk = SignedPreKey::generate(identity, id, rng)?;
        self.signed.insert(id, spk);
        self.current_signed = id;
        self.next_signed_id = next;
        Ok(id)
    }

    /// Stops accepting a signed prekey. The current one cannot be retired.
    /// Returns whether a key was removed.
    pub fn retire_signed_prekey(&mut self, id: u32) -> bool {
        id != self.current_signed && self.signed.remove(&id).is_some()
    }

    /// The current signed prekey, the one to publish.
    pub fn current_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.signed.get(&self.current_signed)
    }

    /// A signed prekey still accepted, by id.
    pub fn signed_prekey(&self, id: u32) -> Option<&SignedPreKey> {
        self.signed.get(&id)
    }

    /// An unused one-time prekey, by id.
    pub fn one_time_prekey(&self, id: u32) -> Option<&OneTimePreKey> {
        self.one_time.get(&id)
    }

    /// The unused one-time prekeys, by increasing id.
    pub fn one_time_prekeys(&self) -> impl Iterator<Item = &OneTimePreKey> + '_ {
        self.one_time.values()
    }

    /// Deletes a one-time prekey; returns whether it was present.
    pub fn remove_one_time_prekey(&mut self, id: u32) -> bool {
        self.one_time.remove(&id).is_some()
    }

    /// The bundle to publish: the current signed prekey and, if given and present, the
    /// one-time prekey `one_time_id`. `None` gives a last-resort bundle without one.
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
                self.one_time
                    .get(&id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        Ok(PreKeyBundle::new(identity, spk, opk))
    }

    /// Accepts a session from an initial message and, on success only, deletes the one-time
    /// prekey it used ([`Accepted::used_one_time_prekey`] says which).
    ///
    /// # Errors
    /// As [`Session::respond`]; on error the store is unchanged.
    pub fn accept(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
    ) -> Result<Accepted, Error> {
        self.accept_with_limits(identity, message, Limits::default())
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
        match Message::parse(message)? {
            Message::Initial(m) if m.identity_key() != pinned => Err(Error::IdentityMismatch),
            _ => self.accept(identity, message),
        }
    }

    /// [`PreKeyStore::accept`] with explicit session [`Limits`].
    ///
    /// # Errors
    /// As [`Session::respond_with_limits`]; on error the store is unchanged.
    pub fn accept_with_limits(
        &mut self,
        identity: &IdentityKeyPair,
        message: &[u8],
        limits: Limits,
    ) -> Result<Accepted, Error> {
        let accepted = Session::respond_with_limits(
            identity,
            |id| self.signed.get(&id),
            |id| self.one_time.get(&id),
            message,
            limits,
        )?;
        if let Some(id) = accepted.used_one_time_prekey {
            self.one_time.remove(&id);
        }
        Ok(accepted)
    }

    /// The storage encoding (SPEC.md §7.5).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let len = 2
            + 4 * 3
            + 4
            + self.signed.len() * SIGNED_PREKEY_LENGTH
            + 4
            + self.one_time.len() * ONE_TIME_PREKEY_LENGTH;
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.put_u8(VERSION);
        out.put_u8(TYPE_PREKEY_STORE);
        out.put_u32(self.current_signed);
        out.put_u32(self.next_signed_id);
        out.put_u32(self.next_one_time_id);
        // Both counts are bounded by the MAX_* constants, far below u32::MAX.
        out.put_u32(self.signed.len() as u32);
        for key in self.signed.values() {
            write_signed_prekey(&mut out, key);
        }
        out.put_u32(self.one_time.len() as u32);
        for key in self.one_time.values() {
            write_one_time_prekey(&mut out, key);
        }
        out
    }

    /// Loads a stored prekey store, validating counts, ids and their order.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] or [`Error::TooLarge`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, TYPE_PREKEY_STORE)?;
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
            // Strictly increasing ids, all below the next id to issue.
            if key.id() >= next_signed_id
                || signed
                    .keys()
                    .next_back()
                    .is_some_and(|last| *last >= key.id())
            {
                return Err(Error::InvalidEncoding);
            }
            signed.insert(key.id(), key);
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
            if key.id() >= next_one_time_id
                || one_time
                    .keys()
                    .next_back()
                    .is_some_and(|last| *last >= key.id())
            {
                return Err(Error::InvalidEncoding);
            }
            one_time.insert(key.id(), key);
        }
        r.finish()?;
        Ok(PreKeyStore {
            current_signed,
            next_signed_id,
            next_one_time_id,
            signed,
            one_time,
        })
    }
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyStore")
            .field("current_signed", &self.current_signed)
            .field("signed_prekeys", &self.signed.len())
            .field("one_time_prekeys", &self.one_time.len())
            .finish_non_exhaustive()
    }
}
