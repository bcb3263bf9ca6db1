//! A contact (SPEC.md §9.5-§9.6): another account, or the user's own for its other devices,
//! as one local device sees it. It pins the account key, holds the newest valid device list
//! and one [`SessionRecord`] per listed device, and applies the rules of §9.5: a list under
//! another account key is an [`IdentityChange`] that changes nothing until the app accepts
//! it; a list whose counter is not higher is refused; an unlisted device is refused; once
//! the contact offered post-quantum prekeys, a classical bundle is refused. Fan-out
//! ([`encrypt_to_devices`], §9.6) encrypts one plaintext to every listed device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroizing;

use super::{AccountKey, DeviceId, DeviceList};
use crate::error::Error;
use crate::fingerprint::SafetyNumber;
use crate::format::FAN_OUT_RANDOM_LENGTH;
use crate::keys::{fill_random, IdentityKey};
use crate::prekeys::LocalDevice;
use crate::record::{Received, RecordLimits, ResetOutcome, SessionRecord};
use crate::session::SessionOptions;
use crate::x3dh::{PreKeyBundle, SessionId};

/// How a contact's account key came to be pinned (SPEC.md §9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Trusted on first use: the key of the first list seen for the contact (or of an
    /// identity change the app accepted). Compare safety numbers to verify it.
    FirstUse,
    /// The app supplied the key as verified ([`Contact::verified`], or
    /// [`Contact::mark_verified`] after the users compared safety numbers).
    Verified,
}

/// What [`Contact::update_devices`] and [`Contact::accept_identity_change`] did.
#[non_exhaustive]
#[must_use = "store the contact (and delete the records of removed devices), or show the identity change"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUpdate {
    /// The list is the one the contact holds: nothing changed.
    Unchanged,
    /// The contact took the newer list. `added` are devices new to the list; `removed`
    /// devices left it, and their session records were dropped. (A device whose id stays
    /// with another identity key is in both.)
    Updated {
        /// Devices new to the list, by ascending id.
        added: Vec<DeviceId>,
        /// Devices no longer listed (their records are gone), by ascending id.
        removed: Vec<DeviceId>,
    },
    /// The list is signed by another account key than the pinned one: the contact did not
    /// change. Show the user the change (with safety numbers); only
    /// [`Contact::accept_identity_change`] takes the new key.
    IdentityChanged(IdentityChange),
}

/// A device list under another account key than the one a contact pinned (SPEC.md §9.5):
/// the contact reinstalled, or someone (the server, for example) substitutes an account.
/// It carries the old and new keys and the new list; nothing is created from it until the
/// app calls [`Contact::accept_identity_change`].
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityChange(Box<Change>);

/// The contents of an [`IdentityChange`], boxed so that [`DeviceUpdate`] stays small.
#[derive(Clone, PartialEq, Eq)]
struct Change {
    old: AccountKey,
    /// The counter of the list the contact held when the change was seen.
    held: u64,
    list: DeviceList,
}

impl IdentityChange {
    /// The account key the contact pinned.
    pub fn old_key(&self) -> &AccountKey {
        &self.0.old
    }

    /// The account key the new list is signed with.
    pub fn new_key(&self) -> &AccountKey {
        self.0.list.account_key()
    }

    /// The list signed with the new key.
    pub fn device_list(&self) -> &DeviceList {
        &self.0.list
    }

    /// The safety numbers between `own` (the user's account key) and the old and new keys,
    /// to show the user: `(old, new)`. Computed on each call (each costs 2 × 5200 SHA-512
    /// evaluations, SPEC.md §9.1), never by the crate on its own.
    pub fn safety_numbers(&self, own: &AccountKey) -> (SafetyNumber, SafetyNumber) {
        (
            SafetyNumber::of_accounts(own, self.old_key()),
            SafetyNumber::of_accounts(own, self.new_key()),
        )
    }
}

impl fmt::Debug for IdentityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityChange")
            .field("old", self.old_key())
            .field("new", self.new_key())
            .finish_non_exhaustive()
    }
}

/// One device's result of a fan-out ([`encrypt_to_devices`]).
#[must_use = "send each ciphertext to its device's mailbox"]
pub struct Delivery {
    /// The account of the device.
    pub account: AccountKey,
    /// The device.
    pub device: DeviceId,
    /// The message for the device, or why there is none: [`Error::NoSession`] for a device
    /// without a sending session (fetch its bundle and [`Contact::initiate`]), or the error
    /// of [`SessionRecord::encrypt`]. One device's error does not stop the others.
    pub result: Result<Vec<u8>, Error>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("account", &self.account)
            .field("device", &self.device)
            .field("result", &self.result.as_ref().map(Vec::len))
            .finish()
    }
}

/// Another account as one local device sees it (SPEC.md §9.5): the pinned account key, the
/// newest valid device list, and one [`SessionRecord`] per listed device.
///
/// For the user's own other devices, make a contact of the user's own account
/// ([`Contact::verified`] with the own account key): fan-out then reaches them, and the
/// local device itself is skipped.
///
/// Every method either succeeds or returns an [`Error`] and leaves the contact exactly as it
/// was. Persistence: [`Contact::to_bytes`] holds the contact's own state (key, trust,
/// post-quantum memory, limits, list); each record is stored on its own
/// ([`SessionRecord::to_bytes`], keyed by contact and [`DeviceId`]) and put back with
/// [`Contact::restore_record`], so that a message rewrites one record, not all of them.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Contact {
    local: IdentityKey,
    trust: Trust,
    /// The contact offered a post-quantum bundle once: classical bundles are refused.
    post_quantum: bool,
    limits: RecordLimits,
    list: DeviceList,
    /// Sorted by device id; each record's remote identity is the listed one.
    records: Vec<(DeviceId, SessionRecord)>,
}

impl Contact {
    /// A contact first seen through `list`: its account key is pinned on first use
    /// ([`Trust::FirstUse`]). `local` is this device's identity key; `limits` apply to every
    /// record the contact makes.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] ([`RecordLimits::validate`]).
    pub fn first_use(
        local: &IdentityKey,
        list: &DeviceList,
        limits: RecordLimits,
    ) -> Result<Self, Error> {
        Self::make(local, Trust::FirstUse, list, limits)
    }

    /// A contact whose account key the app has verified (compared safety numbers, scanned a
    /// code, or the user's own account): `list` must be signed by `account`.
    ///
    /// # Errors
    /// [`Error::IdentityMismatch`] for a list under another key; [`Error::InvalidLimits`].
    pub fn verified(
        local: &IdentityKey,
        account: &AccountKey,
        list: &DeviceList,
        limits: RecordLimits,
    ) -> Result<Self, Error> {
        if list.account_key() != account {
            return Err(Error::IdentityMismatch);
        }
        Self::make(local, Trust::Verified, list, limits)
    }

    fn make(
        local: &IdentityKey,
        trust: Trust,
        list: &DeviceList,
        limits: RecordLimits,
    ) -> Result<Self, Error> {
        limits.validate()?;
        Ok(Contact {
            local: *local,
            trust,
            post_quantum: false,
            limits,
            list: list.clone(),
            records: Vec::new(),
        })
    }

    /// The pinned account key.
    pub fn account_key(&self) -> &AccountKey {
        self.list.account_key()
    }

    /// How the account key was pinned.
    pub fn trust(&self) -> Trust {
        self.trust
    }

    /// Records that the users compared the safety number
    /// ([`SafetyNumber::of_accounts`](crate::SafetyNumber::of_accounts)) of `compared`, the
    /// account key the verification screen showed, and it matched.
    ///
    /// # Errors
    /// [`Error::IdentityMismatch`] if `compared` is no longer the pinned key (an identity
    /// change was accepted meanwhile): nothing changed; verify the new key.
    pub fn mark_verified(&mut self, compared: &AccountKey) -> Result<(), Error> {
        if compared != self.account_key() {
            return Err(Error::IdentityMismatch);
        }
        self.trust = Trust::Verified;
        Ok(())
    }

    /// This device's identity key.
    pub fn local_identity(&self) -> &IdentityKey {
        &self.local
    }

    /// The newest valid list.
    pub fn device_list(&self) -> &DeviceList {
        &self.list
    }

    /// The limits of the contact's records.
    pub fn limits(&self) -> RecordLimits {
        self.limits
    }

    /// Whether the contact once offered a post-quantum bundle, so that classical bundles
    /// are refused (SPEC.md §9.5).
    pub fn requires_post_quantum(&self) -> bool {
        self.post_quantum
    }

    /// The app's override of the post-quantum memory: classical bundles are accepted again
    /// (until the contact offers a post-quantum bundle again). Call it only on the user's
    /// explicit decision: a server that strips the post-quantum part of bundles gets
    /// classical sessions from then on.
    pub fn forget_post_quantum(&mut self) {
        self.post_quantum = false;
    }

    /// The record of device `id`, if the contact has one.
    pub fn record(&self, id: DeviceId) -> Option<&SessionRecord> {
        self.position(id).ok().map(|i| &self.records[i].1)
    }

    /// Every record, by ascending device id.
    pub fn records(&self) -> impl Iterator<Item = (DeviceId, &SessionRecord)> + '_ {
        self.records.iter().map(|(id, record)| (*id, record))
    }

    /// Takes the new list of the contact's account (SPEC.md §9.5). A list under the pinned
    /// key with a higher counter replaces the held one; the records of devices no longer
    /// listed (or listed with another identity key) are dropped: delete them from storage
    /// with the contact's new state, in one transaction.
    ///
    /// # Errors
    /// [`Error::StaleDeviceList`] for a list under the pinned key whose counter is lower
    /// than the held one's (a server replaying an old list must not re-add a removed
    /// device); [`Error::ForkedDeviceList`] for another list with the held counter (the
    /// account key signed two lists with one counter: restored from an old copy without
    /// [`Account::adopt`](crate::Account::adopt), or stolen). The contact is then
    /// unchanged. Not errors: the held list itself ([`DeviceUpdate::Unchanged`]) and a list
    /// under another key ([`DeviceUpdate::IdentityChanged`]).
    pub fn update_devices(&mut self, list: &DeviceList) -> Result<DeviceUpdate, Error> {
        if list.account_key() != self.account_key() {
            return Ok(DeviceUpdate::IdentityChanged(IdentityChange(Box::new(
                Change {
                    old: *self.account_key(),
                    held: self.list.counter(),
                    list: list.clone(),
                },
            ))));
        }
        if *list == self.list {
            return Ok(DeviceUpdate::Unchanged);
        }
        match list.counter().cmp(&self.list.counter()) {
            core::cmp::Ordering::Less => Err(Error::StaleDeviceList),
            core::cmp::Ordering::Equal => Err(Error::ForkedDeviceList),
            core::cmp::Ordering::Greater => Ok(self.replace_list(list)),
        }
    }

    /// Pins the new account key of `change` (trust on first use: [`Trust::FirstUse`] until
    /// [`Contact::mark_verified`]) and takes its list; the records of devices not listed
    /// with the same id and identity key in the new list are dropped. Call it only after the
    /// user accepted the change. The post-quantum memory stays.
    ///
    /// # Errors
    /// [`Error::StaleDeviceList`] if the contact changed since the change was seen (another
    /// key pinned, or a newer list taken under the old key: show the user the current state
    /// again). The contact is then unchanged.
    pub fn accept_identity_change(
        &mut self,
        change: IdentityChange,
    ) -> Result<DeviceUpdate, Error> {
        if change.old_key() != self.account_key() || change.0.held != self.list.counter() {
            return Err(Error::StaleDeviceList);
        }
        self.trust = Trust::FirstUse;
        Ok(self.replace_list(change.device_list()))
    }

    fn replace_list(&mut self, list: &DeviceList) -> DeviceUpdate {
        let in_list = |l: &DeviceList, id: DeviceId, key: &IdentityKey| l.identity(id) == Some(key);
        let added = list
            .devices()
            .filter(|(id, key)| !in_list(&self.list, *id, key))
            .map(|(id, _)| id)
            .collect();
        let removed = self
            .list
            .devices()
            .filter(|(id, key)| !in_list(list, *id, key))
            .map(|(id, _)| id)
            .collect();
        self.records
            .retain(|(id, record)| in_list(list, *id, record.remote_identity()));
        self.list = list.clone();
        DeviceUpdate::Updated { added, removed }
    }

    /// Starts a session with device `to` from its `bundle` (see
    /// [`SessionRecord::initiate`]), making the device's record if it has none.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not in the newest list;
    /// [`Error::IdentityMismatch`] for a bundle of another identity than the listed one (the
    /// server's bundle is not the listed device's: fetch the newest list, which may show an
    /// identity change); [`Error::PostQuantumRequired`] for a classical bundle once the
    /// contact offered a post-quantum one ([`Contact::forget_post_quantum`] overrides);
    /// [`Error::WrongRecord`] for the local device itself or a device of another identity
    /// than the contact's local one; any error of [`SessionRecord::initiate`]. The contact
    /// is then unchanged.
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        &mut self,
        device: &LocalDevice,
        to: DeviceId,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        now: u64,
        rng: &mut R,
    ) -> Result<SessionId, Error> {
        let identity = *self.list.identity(to).ok_or(Error::UnknownDevice(to))?;
        if bundle.identity_key() != &identity {
            return Err(Error::IdentityMismatch);
        }
        let post_quantum = bundle.is_post_quantum();
        if self.post_quantum && !post_quantum {
            return Err(Error::PostQuantumRequired);
        }
        let id = self.with_record(to, identity, |record| {
            record.initiate(device, bundle, options, now, rng)
        })?;
        self.post_quantum |= post_quantum;
        Ok(id)
    }

    /// Decrypts a message from device `from` (as the transport says) with its record, and
    /// accepts an initial message from it as a new session (see
    /// [`SessionRecord::receive`]), making the device's record if it has none.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not in the newest list (removed, or the list
    /// held is older: fetch the newest); [`Error::WrongRecord`] for the local device itself
    /// or a device of another identity; [`Error::IdentityMismatch`] for an initial message
    /// from another identity than the listed one; any error of [`SessionRecord::receive`].
    /// The contact and the device are then unchanged.
    pub fn receive(
        &mut self,
        device: &mut LocalDevice,
        from: DeviceId,
        message: &[u8],
        options: &SessionOptions,
        now: u64,
    ) -> Result<Received, Error> {
        let identity = *self.list.identity(from).ok_or(Error::UnknownDevice(from))?;
        self.with_record(from, identity, |record| {
            record.receive(device, message, options, now)
        })
    }

    /// Encrypts `plaintext` to every listed device but the local one: [`encrypt_to_devices`]
    /// with this contact alone.
    ///
    /// # Errors
    /// As [`encrypt_to_devices`].
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<Delivery>, Error> {
        encrypt_to_devices(&mut [self], plaintext, rng)
    }

    /// Encrypts `plaintext` to one listed device `to` only, on its record's sending
    /// session (SPEC.md §9.6): for what one device must get and the contact's other devices
    /// must not, such as a group [`Distribution`](crate::Distribution) (SPEC.md §11.2).
    /// Store the contact's record for `to` before sending the message.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not in the newest list; [`Error::WrongRecord`]
    /// for the local device itself; [`Error::NoSession`] for a device without a record;
    /// any error of [`SessionRecord::encrypt`]. The contact is then unchanged.
    pub fn encrypt_to<R: TryCryptoRng + ?Sized>(
        &mut self,
        to: DeviceId,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let identity = *self.list.identity(to).ok_or(Error::UnknownDevice(to))?;
        if identity == self.local {
            return Err(Error::WrongRecord);
        }
        let i = self.position(to).map_err(|_| Error::NoSession)?;
        self.records[i].1.encrypt(plaintext, rng)
    }

    /// A decryption-error request (SPEC.md §6.8) for `failed`, a message from device `from`
    /// that no session could decrypt: see [`SessionRecord::decryption_error`]. The contact
    /// does not change.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not listed; [`Error::WrongRecord`] for the local
    /// device itself; the errors of [`SessionRecord::decryption_error`].
    pub fn decryption_error(
        &self,
        device: &LocalDevice,
        from: DeviceId,
        failed: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, Error> {
        let identity = self.list.identity(from).ok_or(Error::UnknownDevice(from))?;
        match self.position(from) {
            Ok(i) => self.records[i].1.decryption_error(device, failed, now),
            Err(_) => SessionRecord::new(&self.local, identity, self.limits)?
                .decryption_error(device, failed, now),
        }
    }

    /// Acts on a decryption-error request from device `from` (SPEC.md §6.8): see
    /// [`SessionRecord::handle_decryption_error`]. A device without a record has no sending
    /// session ([`ResetOutcome::NotSending`](crate::ResetOutcome::NotSending), after the
    /// request is checked).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not listed; [`Error::WrongRecord`] for the local
    /// device itself; the errors of [`SessionRecord::handle_decryption_error`]. The contact is
    /// then unchanged.
    pub fn handle_decryption_error(
        &mut self,
        from: DeviceId,
        request: &[u8],
        now: u64,
    ) -> Result<ResetOutcome, Error> {
        let identity = *self.list.identity(from).ok_or(Error::UnknownDevice(from))?;
        match self.position(from) {
            Ok(i) => self.records[i].1.handle_decryption_error(request, now),
            Err(_) => SessionRecord::new(&self.local, &identity, self.limits)?
                .handle_decryption_error(request, now),
        }
    }

    /// Archives the sending session of device `to` (see
    /// [`SessionRecord::archive_sending_session`]), so that the next message to it needs a
    /// new session ([`Contact::initiate`]); returns its id, or `None` without one.
    pub fn archive_sending_session(&mut self, to: DeviceId) -> Option<SessionId> {
        let i = self.position(to).ok()?;
        self.records[i].1.archive_sending_session()
    }

    /// Puts back a record stored on its own (see the type's documentation) after
    /// [`Contact::from_bytes`]. Put back only what the contact's own records stored: a
    /// record changed outside the contact (a session initiated on it directly, say) has not
    /// been through the contact's rules (the post-quantum memory above all).
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] for a device not in the list; [`Error::WrongRecord`] for a
    /// record of another local identity, of another identity than the listed one, or for a
    /// device that already has a record. The contact is then unchanged.
    pub fn restore_record(&mut self, id: DeviceId, record: SessionRecord) -> Result<(), Error> {
        let identity = self.list.identity(id).ok_or(Error::UnknownDevice(id))?;
        if record.remote_identity() != identity || record.local_identity() != &self.local {
            return Err(Error::WrongRecord);
        }
        match self.position(id) {
            Ok(_) => Err(Error::WrongRecord),
            Err(i) => {
                self.records.insert(i, (id, record));
                Ok(())
            }
        }
    }

    fn position(&self, id: DeviceId) -> Result<usize, usize> {
        self.records.binary_search_by_key(&id, |(d, _)| *d)
    }

    /// Runs `f` on the record of device `id` (identity `identity`), made for the call if
    /// the contact has none and kept only if `f` succeeds.
    fn with_record<T>(
        &mut self,
        id: DeviceId,
        identity: IdentityKey,
        f: impl FnOnce(&mut SessionRecord) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.position(id) {
            Ok(i) => f(&mut self.records[i].1),
            Err(i) => {
                let mut record = SessionRecord::new(&self.local, &identity, self.limits)?;
                let out = f(&mut record)?;
                self.records.insert(i, (id, record));
                Ok(out)
            }
        }
    }

    pub(crate) fn from_parts(
        local: IdentityKey,
        trust: Trust,
        post_quantum: bool,
        limits: RecordLimits,
        list: DeviceList,
    ) -> Self {
        Contact {
            local,
            trust,
            post_quantum,
            limits,
            list,
            records: Vec::new(),
        }
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("account", self.account_key())
            .field("trust", &self.trust)
            .field("post_quantum", &self.post_quantum)
            .field("devices", &self.list.len())
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

/// Encrypts one plaintext to every listed device of every contact in `contacts` (pass the
/// user's own account as a contact to reach the user's other devices; the local device is
/// skipped), in order: one [`Delivery`] per device (SPEC.md §9.6).
///
/// All the randomness is drawn first (`FAN_OUT_RANDOM_LENGTH` bytes per device), so that a
/// failing RNG fails the whole call before any record changes. Then each device's record
/// encrypts on its own: a device without a sending session, or whose session fails, gets its
/// error in its `Delivery`, and the others are not affected. Store every contact whose
/// records changed (each record that encrypted) before sending the messages.
///
/// # Errors
/// [`Error::RandomnessUnavailable`] if the RNG fails (it is not called when there is no
/// target); nothing changed.
pub fn encrypt_to_devices<R: TryCryptoRng + ?Sized>(
    contacts: &mut [&mut Contact],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<Delivery>, Error> {
    let targets: usize = contacts
        .iter()
        .map(|c| c.list.devices().filter(|(_, k)| **k != c.local).count())
        .sum();
    let mut random = Zeroizing::new(alloc::vec![0u8; targets * FAN_OUT_RANDOM_LENGTH]);
    if targets > 0 {
        fill_random(rng, &mut random)?;
    }
    let mut chunks = random.chunks_exact(FAN_OUT_RANDOM_LENGTH);
    let mut deliveries = Vec::with_capacity(targets);
    for contact in contacts.iter_mut() {
        let account = *contact.account_key();
        let local = contact.local;
        let devices: Vec<(DeviceId, IdentityKey)> =
            contact.list.devices().map(|(d, k)| (d, *k)).collect();
        for (device, identity) in devices {
            if identity == local {
                continue;
            }
            let chunk = chunks.next().ok_or(Error::Internal)?;
            let result = match contact.position(device) {
                Ok(i) => contact.records[i]
                    .1
                    .encrypt(plaintext, &mut Drawn { bytes: chunk }),
                Err(_) => Err(Error::NoSession),
            };
            deliveries.push(Delivery {
                account,
                device,
                result,
            });
        }
    }
    Ok(deliveries)
}

/// Randomness drawn before a fan-out, served in order to one device's encryption. One
/// encryption needs at most `FAN_OUT_RANDOM_LENGTH` bytes (SPEC.md §2.5); running out is
/// [`Error::RandomnessUnavailable`] (never reached: a test checks the bound).
struct Drawn<'a> {
    bytes: &'a [u8],
}

impl TryRng for Drawn<'_> {
    type Error = Error;

    fn try_next_u32(&mut self) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        if dst.len() > self.bytes.len() {
            return Err(Error::RandomnessUnavailable);
        }
        let (now, rest) = self.bytes.split_at(dst.len());
        dst.copy_from_slice(now);
        self.bytes = rest;
        Ok(())
    }
}

impl TryCryptoRng for Drawn<'_> {}
