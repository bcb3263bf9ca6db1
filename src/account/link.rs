//! Device links (SPEC.md §9.4, type `0x17`): a device's consent to be listed in an account,
//! an Ed25519 signature by the device's identity key over
//! `DEVICE_LINK_LABEL || account key || device id`. A device list carries the link of every
//! device it names, so that an account can list only devices that agreed to be its own: no
//! account can claim another user's device identity key (an unknown-key-share, where the
//! victim's messages would be shown under the claiming account).

use core::fmt;

use ed25519_dalek::Signature;

use super::{AccountKey, DeviceId};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    BUNDLE_VERSION, DEVICE_LINK_LABEL, DEVICE_LINK_LENGTH, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH,
    TYPE_DEVICE_LINK,
};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::prekeys::LocalDevice;
use crate::wire::read_version_and_type;

/// Length of what a link signature covers after the label: account key and device id.
const LINKED_LENGTH: usize = PUBLIC_KEY_LENGTH + 4;

/// A device's signed consent to be device `id` of the account `account` (SPEC.md §9.4):
/// made by the device ([`LocalDevice::link`]), carried to the device that manages the
/// account (in a QR code, say: [`DeviceLink::to_bytes`]), which lists it with
/// [`Account::add_device`](crate::Account::add_device). Every `DeviceLink` value holds a
/// valid signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceLink {
    account: AccountKey,
    id: DeviceId,
    identity: IdentityKey,
    signature: [u8; SIGNATURE_LENGTH],
}

impl DeviceLink {
    /// Signs the link of the device of `identity` as device `id` of `account`.
    pub(crate) fn sign(identity: &IdentityKeyPair, account: &AccountKey, id: DeviceId) -> Self {
        DeviceLink {
            account: *account,
            id,
            identity: *identity.public_key(),
            signature: identity.sign(&linked_message(account, id)),
        }
    }

    /// Checks a link signature read from a device list or a link's encoding.
    pub(crate) fn verified(
        account: &AccountKey,
        id: DeviceId,
        identity: &IdentityKey,
        signature: &[u8; SIGNATURE_LENGTH],
    ) -> Result<Self, Error> {
        identity
            .verifying_key()
            .verify_strict(
                &linked_message(account, id),
                &Signature::from_bytes(signature),
            )
            .map_err(|_| Error::InvalidSignature)?;
        Ok(DeviceLink {
            account: *account,
            id,
            identity: *identity,
            signature: *signature,
        })
    }

    /// Parses a link (SPEC.md §9.4, `DEVICE_LINK_LENGTH` = 134 bytes) and verifies its
    /// signature under the identity key it carries.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above 134 bytes, checked first; [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidPublicKey`] (the account key, then the
    /// identity key), [`Error::Truncated`], [`Error::TrailingData`]; then
    /// [`Error::InvalidEncoding`] for an identity key equal to the account key; then
    /// [`Error::InvalidSignature`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > DEVICE_LINK_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, BUNDLE_VERSION, TYPE_DEVICE_LINK)?;
        let account = AccountKey::from_bytes(&r.array()?)?;
        let id = DeviceId(r.u32()?);
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let signature = r.array()?;
        r.finish()?;
        if identity == *account.ed25519() {
            return Err(Error::InvalidEncoding);
        }
        Self::verified(&account, id, &identity, &signature)
    }

    /// The encoding (SPEC.md §9.4): version, type `0x17`, account key, device id, identity
    /// key, signature.
    pub fn to_bytes(&self) -> [u8; DEVICE_LINK_LENGTH] {
        let mut out = alloc::vec::Vec::with_capacity(DEVICE_LINK_LENGTH);
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_DEVICE_LINK);
        out.put(self.account.as_bytes());
        out.put_u32(self.id.0);
        out.put(self.identity.as_bytes());
        out.put(&self.signature);
        let mut bytes = [0u8; DEVICE_LINK_LENGTH];
        bytes.copy_from_slice(&out);
        bytes
    }

    /// The account the device consents to.
    pub fn account_key(&self) -> &AccountKey {
        &self.account
    }

    /// The device's id in that account.
    pub fn device_id(&self) -> DeviceId {
        self.id
    }

    /// The device's identity key.
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity
    }

    pub(crate) fn signature(&self) -> &[u8; SIGNATURE_LENGTH] {
        &self.signature
    }
}

/// `DEVICE_LINK_LABEL || account key || device id`: what a device's identity key signs.
fn linked_message(
    account: &AccountKey,
    id: DeviceId,
) -> [u8; DEVICE_LINK_LABEL.len() + LINKED_LENGTH] {
    let mut message = [0u8; DEVICE_LINK_LABEL.len() + LINKED_LENGTH];
    let (label, rest) = message.split_at_mut(DEVICE_LINK_LABEL.len());
    label.copy_from_slice(DEVICE_LINK_LABEL);
    rest[..PUBLIC_KEY_LENGTH].copy_from_slice(account.as_bytes());
    rest[PUBLIC_KEY_LENGTH..].copy_from_slice(&id.0.to_be_bytes());
    message
}

impl LocalDevice {
    /// This device's consent to be device `id` of the account `account` (SPEC.md §9.4): give
    /// it to the device that manages the account, which adds it with
    /// [`Account::add_device`](crate::Account::add_device). Draws no randomness (Ed25519
    /// signatures are deterministic).
    pub fn link(&self, account: &AccountKey, id: DeviceId) -> DeviceLink {
        DeviceLink::sign(self.identity_pair(), account, id)
    }
}

impl fmt::Debug for DeviceLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceLink")
            .field("account", &self.account)
            .field("id", &self.id)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}
