//! Accounts with several devices (SPEC.md §9.3-§9.6): every device has its own identity key
//! (sessions stay per device identity, in [`SessionRecord`](crate::SessionRecord)s); an
//! account has an Ed25519 *account key* that signs a versioned list of its devices
//! ([`DeviceList`], `list.rs`).
//!
//! * [`Account`] is the account key pair with the newest list it signed, kept by the
//!   device that manages the account (adds and removes devices).
//! * [`Contact`] (`contact.rs`) is another account (or the user's own, for its other
//!   devices) as one local device sees it: the pinned account key, the newest valid list,
//!   and one session record per listed device; it refuses replayed lists, unlisted devices
//!   and, once the contact offered post-quantum prekeys, classical bundles, and reports a
//!   list under another account key as an [`IdentityChange`] the app must accept.
//! * `storage.rs` holds the storage encodings of both (§7.9, §7.10).

mod contact;
mod link;
mod list;
mod storage;

use core::fmt;

use rand_core::TryCryptoRng;

pub use self::contact::{
    encrypt_to_devices, Contact, Delivery, DeviceUpdate, IdentityChange, Trust,
};
pub use self::link::DeviceLink;
pub use self::list::DeviceList;
use crate::error::Error;
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::prekeys::LocalDevice;

/// A device's number within its account (SPEC.md §9.3): chosen by the account's manager,
/// unique within one list. It names the device to the server (its mailbox and bundle) and
/// in the list; the device's identity key is what sessions authenticate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(u32);

impl DeviceId {
    /// The device id `id`.
    pub const fn new(id: u32) -> Self {
        DeviceId(id)
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An account's public key (SPEC.md §9.3): an Ed25519 key that signs the account's device
/// lists, validated as an identity key is (§2.1). Contacts pin it; safety numbers between
/// accounts are computed from it ([`SafetyNumber::of_accounts`](crate::SafetyNumber::of_accounts)).
///
/// A distinct type from [`IdentityKey`], so that an account key is never used where a
/// device's identity key is meant, nor the other way round.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountKey(IdentityKey);

impl AccountKey {
    /// Parses and validates a 32-byte compressed Ed25519 point (SPEC.md §2.1).
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] as for [`IdentityKey::from_bytes`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        IdentityKey::from_bytes(bytes).map(AccountKey)
    }

    /// The 32-byte compressed Edwards encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32-byte compressed Edwards encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key as the Ed25519 key type the rest of the crate verifies with.
    pub(crate) fn ed25519(&self) -> &IdentityKey {
        &self.0
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// An account (SPEC.md §9.3): the account key pair and the newest device list it signed.
///
/// Kept by the device that manages the account; it signs a new list, with a counter one
/// higher, each time a device is added or removed. Publish the new list
/// ([`DeviceList::to_bytes`]) to the server for contacts to fetch, and store the account
/// ([`Account::to_bytes`], sealed with a [`StorageKey`](crate::StorageKey)) *before*
/// publishing, so that a crash never leaves a published list whose counter the stored
/// account would sign again.
pub struct Account {
    /// The account key pair: an Ed25519 key, kept in the type of the crate's other Ed25519
    /// key pairs (its X25519 form is never used).
    key: IdentityKeyPair,
    list: DeviceList,
}

impl Account {
    /// A new account managed by `device`: a fresh account key and a list (counter 1) holding
    /// `device` alone, as device `id`, with its link ([`LocalDevice::link`]).
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn new<R: TryCryptoRng + ?Sized>(
        device: &LocalDevice,
        id: DeviceId,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let key = IdentityKeyPair::generate(rng)?;
        let link = device.link(&AccountKey(*key.public_key()), id);
        let list = DeviceList::sign(&key, 1, alloc::vec![link])?;
        Ok(Account { key, list })
    }

    /// The account key, for contacts to pin.
    pub fn account_key(&self) -> &AccountKey {
        self.list.account_key()
    }

    /// The newest list this account signed.
    pub fn device_list(&self) -> &DeviceList {
        &self.list
    }

    /// Adds the device of `link` (made by the new device with [`LocalDevice::link`] for this
    /// account, and carried here out of band) and signs a new list with the next counter;
    /// returns it. Store the account, then publish the list.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if the counter is at `u64::MAX` (checked first);
    /// [`Error::WrongRecord`] for a link made for another account;
    /// [`Error::TooManyDevices`] beyond [`MAX_DEVICES`](crate::MAX_DEVICES);
    /// [`Error::DuplicateDevice`] if the id or the identity key is already listed (or the
    /// identity key is the account key). The account is then unchanged.
    pub fn add_device(&mut self, link: &DeviceLink) -> Result<&DeviceList, Error> {
        let mut devices = self.list.links().to_vec();
        devices.push(*link);
        self.resign(devices)
    }

    /// Removes a device and signs a new list with the next counter; returns it. Contacts
    /// that take the new list refuse the device from then on. Store the account, then
    /// publish the list.
    ///
    /// # Errors
    /// [`Error::UnknownDevice`] if `id` is not listed (here a mistake in the call, whatever
    /// its kind says); [`Error::StoreFull`] if the counter is at `u64::MAX`. The account is
    /// then unchanged.
    pub fn remove_device(&mut self, id: DeviceId) -> Result<&DeviceList, Error> {
        let mut devices = self.list.links().to_vec();
        let before = devices.len();
        devices.retain(|l| l.device_id() != id);
        if devices.len() == before {
            return Err(Error::UnknownDevice(id));
        }
        self.resign(devices)
    }

    /// Takes `published`, a newer list this account signed, as its own (SPEC.md §9.3): after
    /// the account was restored from an older copy, fetch the account's newest list from the
    /// server and adopt it *before* adding or removing a device, or the account would sign
    /// counters it already used (a contact holding the newer list refuses the new one, and
    /// a contact holding an older list may take back a device that was removed). Returns
    /// whether the list was newer; the held list itself changes nothing.
    ///
    /// # Errors
    /// [`Error::WrongRecord`] for a list under another account key;
    /// [`Error::StaleDeviceList`] for an older list; [`Error::ForkedDeviceList`] for another
    /// list with the held counter. The account is then unchanged.
    pub fn adopt(&mut self, published: &DeviceList) -> Result<bool, Error> {
        if published.account_key() != self.account_key() {
            return Err(Error::WrongRecord);
        }
        if *published == self.list {
            return Ok(false);
        }
        match published.counter().cmp(&self.list.counter()) {
            core::cmp::Ordering::Less => Err(Error::StaleDeviceList),
            core::cmp::Ordering::Equal => Err(Error::ForkedDeviceList),
            core::cmp::Ordering::Greater => {
                self.list = published.clone();
                Ok(true)
            }
        }
    }

    /// Signs `devices` with the next counter and makes it the account's list.
    fn resign(&mut self, devices: alloc::vec::Vec<DeviceLink>) -> Result<&DeviceList, Error> {
        let counter = self.list.counter().checked_add(1).ok_or(Error::StoreFull)?;
        self.list = DeviceList::sign(&self.key, counter, devices)?;
        Ok(&self.list)
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}
