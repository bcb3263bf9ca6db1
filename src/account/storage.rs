//! The storage encodings of accounts (SPEC.md §7.9, type `0x2C`) and contacts (§7.10, type
//! `0x2D`). Both embed the device list in its published encoding (§9.4), whose signature is
//! verified again on load: a stored list is as hostile as a fetched one.

use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{Account, Contact, DeviceList, Trust};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    ACCOUNT_FIXED_LENGTH, MAX_ACCOUNT_SIZE, MAX_CONTACT_SIZE, TYPE_ACCOUNT, TYPE_CONTACT,
};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::record::RecordLimits;
use crate::seal::{read_stored_header, write_stored_header};

/// Appends `u32 len || list`.
fn write_list(out: &mut Vec<u8>, list: &DeviceList) {
    let bytes = list.to_bytes();
    // At most MAX_DEVICE_LIST_LENGTH (1 707).
    out.put_u32(bytes.len() as u32);
    out.put(&bytes);
}

/// Reads `u32 len || list`: the list must span exactly `len` bytes.
fn read_list(r: &mut Reader<'_>) -> Result<DeviceList, Error> {
    let len = r.u32()? as usize;
    if len > r.remaining() {
        return Err(Error::Truncated);
    }
    DeviceList::from_bytes(r.take(len)?)
}

/// Refuses input above `max` before anything is read.
fn bounded(bytes: &[u8], max: usize) -> Result<Reader<'_>, Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge);
    }
    Ok(Reader::new(bytes))
}

impl Account {
    /// The storage encoding (SPEC.md §7.9): the account key's seed and the newest list.
    /// Secret: store it sealed ([`StorageKey`](crate::StorageKey)).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let list = self.list.to_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(ACCOUNT_FIXED_LENGTH + list.len()));
        write_stored_header(&mut out, TYPE_ACCOUNT);
        out.put(self.key.seed());
        out.put_u32(list.len() as u32);
        out.put(&list);
        out
    }

    /// Loads a stored account (SPEC.md §7.9).
    ///
    /// # Errors
    /// [`Error::TooLarge`] above `MAX_ACCOUNT_SIZE`; [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::UnsupportedVersion`], [`Error::UnexpectedType`];
    /// any error of [`DeviceList::from_bytes`] for the list; [`Error::InvalidEncoding`] for a
    /// list signed by another key than the account's.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = bounded(bytes, MAX_ACCOUNT_SIZE)?;
        read_stored_header(&mut r, TYPE_ACCOUNT)?;
        let seed = Zeroizing::new(r.array::<32>()?);
        let key = IdentityKeyPair::from_seed(&seed);
        let list = read_list(&mut r)?;
        r.finish()?;
        if list.account_key().ed25519() != key.public_key() {
            return Err(Error::InvalidEncoding);
        }
        Ok(Account { key, list })
    }
}

impl Contact {
    /// The storage encoding of the contact's own state (SPEC.md §7.10): this device's
    /// identity, the trust, the post-quantum memory, the record limits and the newest list.
    /// The records are stored on their own
    /// ([`SessionRecord::to_bytes`](crate::SessionRecord::to_bytes)).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(MAX_CONTACT_SIZE));
        write_stored_header(&mut out, TYPE_CONTACT);
        out.put(self.local_identity().as_bytes());
        out.put_u8(match self.trust() {
            Trust::FirstUse => 0,
            Trust::Verified => 1,
        });
        out.put_u8(u8::from(self.requires_post_quantum()));
        self.limits().write(&mut out);
        write_list(&mut out, self.device_list());
        out
    }

    /// Loads a contact's own state (SPEC.md §7.10), without records: put each stored record
    /// back with [`Contact::restore_record`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] above `MAX_CONTACT_SIZE`; [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::UnsupportedVersion`], [`Error::UnexpectedType`],
    /// [`Error::InvalidPublicKey`]; [`Error::InvalidEncoding`] for a trust or flag byte out
    /// of range; [`Error::InvalidLimits`]; any error of [`DeviceList::from_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = bounded(bytes, MAX_CONTACT_SIZE)?;
        read_stored_header(&mut r, TYPE_CONTACT)?;
        let local = IdentityKey::from_bytes(&r.array()?)?;
        let trust = match r.u8()? {
            0 => Trust::FirstUse,
            1 => Trust::Verified,
            _ => return Err(Error::InvalidEncoding),
        };
        let post_quantum = r.flag()?;
        let limits = RecordLimits::read(&mut r)?;
        let list = read_list(&mut r)?;
        r.finish()?;
        Ok(Contact::from_parts(
            local,
            trust,
            post_quantum,
            limits,
            list,
        ))
    }
}
