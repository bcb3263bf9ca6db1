//! The signed device list (SPEC.md §9.4, type `0x16`): an account's devices, each an id, an
//! identity key and the device's link signature (`link.rs`), under a counter that only
//! grows, signed by the account key over
//! `DEVICE_LIST_LABEL || the list's bytes before the signature`. The label keeps the
//! signature apart from every other signature in the protocol (a signed prekey signs
//! `0x05 || u`, a post-quantum prekey `0x0A || ek`, a decryption-error request its own
//! label), whatever key made it.

use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::Signature;

use super::{AccountKey, DeviceId, DeviceLink};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    BUNDLE_VERSION, DEVICE_LIST_ENTRY_LENGTH, DEVICE_LIST_FIXED_LENGTH, DEVICE_LIST_LABEL,
    MAX_DEVICES, MAX_DEVICE_LIST_LENGTH, SIGNATURE_LENGTH, TYPE_DEVICE_LIST,
};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::wire::read_version_and_type;

/// An account's list of devices (SPEC.md §9.4), with a valid signature by its account key:
/// every `DeviceList` value was either signed by this crate or parsed and verified by
/// [`DeviceList::from_bytes`].
///
/// What the list says is only as trusted as its account key: a
/// [`Contact`](crate::Contact) takes a list under the account key it pinned, refuses one
/// whose counter is not higher than the newest it holds, and reports one under another key
/// as an [`IdentityChange`](crate::IdentityChange).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceList {
    account: AccountKey,
    counter: u64,
    /// Sorted by id, ids and identity keys distinct, none the account key; each link is
    /// for this account.
    devices: Vec<DeviceLink>,
    signature: [u8; SIGNATURE_LENGTH],
}

impl DeviceList {
    /// Signs `devices` (any order; sorted here) under `counter` with the account key pair.
    pub(crate) fn sign(
        key: &IdentityKeyPair,
        counter: u64,
        mut devices: Vec<DeviceLink>,
    ) -> Result<Self, Error> {
        devices.sort_by_key(DeviceLink::device_id);
        let account = AccountKey(*key.public_key());
        check_devices(&account, counter, &devices)?;
        let mut list = DeviceList {
            account,
            counter,
            devices,
            signature: [0; SIGNATURE_LENGTH],
        };
        list.signature = key.sign(&signed_message(&list.signed_part()));
        Ok(list)
    }

    /// Parses a device list strictly and verifies its signature under the account key it
    /// carries (SPEC.md §9.4). Whether that key is the one the app expects is the
    /// [`Contact`](crate::Contact)'s question.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above the longest list (`MAX_DEVICE_LIST_LENGTH`), checked
    /// first; [`Error::UnsupportedVersion`], [`Error::UnexpectedType`],
    /// [`Error::InvalidPublicKey`], [`Error::Truncated`], [`Error::TrailingData`];
    /// [`Error::InvalidEncoding`] for a zero counter, more than [`MAX_DEVICES`] devices, ids
    /// not strictly ascending, an identity key listed twice or equal to the account key;
    /// then [`Error::InvalidSignature`] for the account's signature, then for each device's
    /// link signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_DEVICE_LIST_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, BUNDLE_VERSION, TYPE_DEVICE_LIST)?;
        let account = AccountKey::from_bytes(&r.array()?)?;
        let counter = r.u64()?;
        if counter == 0 {
            return Err(Error::InvalidEncoding);
        }
        let count = usize::from(r.u8()?);
        if count > MAX_DEVICES {
            return Err(Error::InvalidEncoding);
        }
        let mut read: Vec<(DeviceId, IdentityKey, [u8; SIGNATURE_LENGTH])> =
            Vec::with_capacity(count);
        for _ in 0..count {
            let id = DeviceId(r.u32()?);
            let identity = IdentityKey::from_bytes(&r.array()?)?;
            if read.last().is_some_and(|(last, _, _)| *last >= id) {
                return Err(Error::InvalidEncoding);
            }
            if identity == *account.ed25519() || read.iter().any(|(_, k, _)| *k == identity) {
                return Err(Error::InvalidEncoding);
            }
            read.push((id, identity, r.array()?));
        }
        let signature = r.array()?;
        r.finish()?;
        // The account's signature over the bytes read, then each device's link.
        let signed = bytes
            .get(..bytes.len() - SIGNATURE_LENGTH)
            .ok_or(Error::Internal)?;
        account
            .ed25519()
            .verifying_key()
            .verify_strict(&signed_message(signed), &Signature::from_bytes(&signature))
            .map_err(|_| Error::InvalidSignature)?;
        let devices = read
            .iter()
            .map(|(id, identity, link)| DeviceLink::verified(&account, *id, identity, link))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeviceList {
            account,
            counter,
            devices,
            signature,
        })
    }

    /// The encoding (SPEC.md §9.4), to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signed_part();
        out.put(&self.signature);
        out
    }

    /// The account key that signed the list.
    pub fn account_key(&self) -> &AccountKey {
        &self.account
    }

    /// The list's counter: each new list of an account has a higher one.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The devices, by ascending id.
    pub fn devices(&self) -> impl ExactSizeIterator<Item = (DeviceId, &IdentityKey)> + '_ {
        self.devices
            .iter()
            .map(|l| (l.device_id(), l.identity_key()))
    }

    /// The identity key of device `id`, if listed.
    pub fn identity(&self, id: DeviceId) -> Option<&IdentityKey> {
        self.devices().find(|(d, _)| *d == id).map(|(_, key)| key)
    }

    /// The id of the device with identity key `identity`, if listed.
    pub fn device_of(&self, identity: &IdentityKey) -> Option<DeviceId> {
        self.devices()
            .find(|(_, key)| *key == identity)
            .map(|(id, _)| id)
    }

    /// The number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the list has no device (an account that removed all of them).
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The devices' links, by ascending id.
    pub fn links(&self) -> &[DeviceLink] {
        &self.devices
    }

    /// Everything before the signature.
    fn signed_part(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            DEVICE_LIST_FIXED_LENGTH + DEVICE_LIST_ENTRY_LENGTH * self.devices.len(),
        );
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_DEVICE_LIST);
        out.put(self.account.as_bytes());
        out.put_u64(self.counter);
        // At most MAX_DEVICES (16), checked by every constructor.
        out.put_u8(self.devices.len() as u8);
        for link in &self.devices {
            out.put_u32(link.device_id().0);
            out.put(link.identity_key().as_bytes());
            out.put(link.signature());
        }
        out
    }
}

/// The rules of SPEC.md §9.4 a list must keep (sorted input).
fn check_devices(account: &AccountKey, counter: u64, devices: &[DeviceLink]) -> Result<(), Error> {
    if counter == 0 {
        return Err(Error::Internal);
    }
    if devices.iter().any(|l| l.account_key() != account) {
        return Err(Error::WrongRecord);
    }
    if devices.len() > MAX_DEVICES {
        return Err(Error::TooManyDevices);
    }
    for (i, link) in devices.iter().enumerate() {
        let (id, key) = (link.device_id(), link.identity_key());
        let earlier = &devices[..i];
        if key == account.ed25519()
            || earlier
                .iter()
                .any(|l| l.device_id() == id || l.identity_key() == key)
        {
            return Err(Error::DuplicateDevice);
        }
    }
    Ok(())
}

/// `DEVICE_LIST_LABEL || signed part`: what the account key signs.
fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DEVICE_LIST_LABEL.len() + signed.len());
    message.put(DEVICE_LIST_LABEL);
    message.put(signed);
    message
}

impl fmt::Debug for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceList")
            .field("account", &self.account)
            .field("counter", &self.counter)
            .field("devices", &self.devices().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
