//! Sealing of stored objects under an application key (SPEC.md §7.6), and the framing
//! every stored object shares (SPEC.md §7): the version and type bytes, the
//! [`MAX_STORED_SIZE`] bound checked before anything else is read, and strict loading of
//! an object that must span its whole input.
//!
//! Each stored type owns its encoding beside its definition: [`Session`]
//! (`session/storage.rs`, §7.1), [`IdentityKeyPair`], [`SignedPreKey`] and
//! [`OneTimePreKey`] (`keys.rs`, §7.2-§7.4), the prekey store (`prekeys.rs`, §7.5) and
//! `PqPreKey` (`pq.rs`, §7.7).
//!
//! ```text
//! sealed = version || 0x30 || T || nonce(12) || AES-256-GCM-SIV(key, nonce, AD, object) || tag(16)
//! AD     = "doubleratchet v2 sealed" || version || 0x30 || T || len(context) (u32) || context
//! ```

use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::aead;
use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::TYPE_PQ_PREKEY;
use crate::format::{
    MAX_SEAL_CONTEXT_LENGTH, MAX_STORED_SIZE, NONCE_LENGTH, SEALED_AD_LABEL, SEALED_HEADER_LENGTH,
    STORAGE_VERSION, TAG_LENGTH, TYPE_IDENTITY, TYPE_LOCAL_DEVICE, TYPE_ONE_TIME_PREKEY,
    TYPE_SEALED, TYPE_SESSION, TYPE_SESSION_RECORD, TYPE_SIGNED_PREKEY,
};
use crate::keys::{fill_random, IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey};
use crate::session::Session;
use crate::wire::read_version_and_type;

const SEALED_AAD_CAPACITY: usize = SEALED_AD_LABEL.len() + 3 + 4 + MAX_SEAL_CONTEXT_LENGTH;

/// Appends the stored header of SPEC.md §7: `STORAGE_VERSION`, then the object type.
pub(crate) fn write_stored_header(out: &mut Vec<u8>, object_type: u8) {
    out.put_u8(STORAGE_VERSION);
    out.put_u8(object_type);
}

/// Reads the stored header of SPEC.md §7: [`Error::UnsupportedVersion`] for another
/// version, [`Error::UnexpectedType`] for another object type.
pub(crate) fn read_stored_header(r: &mut Reader<'_>, object_type: u8) -> Result<(), Error> {
    read_version_and_type(r, STORAGE_VERSION, object_type)
}

/// SPEC.md §7: any stored input longer than [`MAX_STORED_SIZE`] is `TooLarge`, before
/// anything else is read.
pub(crate) fn stored_reader(bytes: &[u8]) -> Result<Reader<'_>, Error> {
    if bytes.len() > MAX_STORED_SIZE {
        return Err(Error::TooLarge);
    }
    Ok(Reader::new(bytes))
}

/// Reads one stored object that must span all of `bytes` ([`Error::TrailingData`]).
pub(crate) fn read_whole<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut r = stored_reader(bytes)?;
    let object = read(&mut r)?;
    r.finish()?;
    Ok(object)
}

/// A sealed blob's associated data, built on the stack.
struct SealedAad {
    bytes: [u8; SEALED_AAD_CAPACITY],
    len: usize,
}

impl SealedAad {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

mod private {
    /// Implemented by the types a [`StorageKey`](super::StorageKey) can seal. Not
    /// implementable outside this crate.
    #[allow(unreachable_pub)]
    pub trait Sealed: Sized {
        /// The object type byte.
        const OBJECT_TYPE: u8;
        /// The storage encoding.
        fn encode(&self) -> zeroize::Zeroizing<alloc::vec::Vec<u8>>;
    }

    /// Implemented by the sealable types that load from their bytes alone.
    #[allow(unreachable_pub)]
    pub trait Decode: Sealed {
        /// Strict decoding of the storage encoding.
        fn decode(bytes: &[u8]) -> Result<Self, crate::Error>;
    }
}

/// The objects [`StorageKey::seal`] accepts: [`Session`], [`IdentityKeyPair`],
/// [`SignedPreKey`], [`OneTimePreKey`], [`LocalDevice`](crate::LocalDevice),
/// [`SessionRecord`](crate::SessionRecord), [`Account`](crate::Account),
/// [`Contact`](crate::Contact), [`Group`](crate::Group),
/// [`MemberChains`](crate::MemberChains) and (with `pqxdh`) `PqPreKey`. Sealed: no other
/// type can implement it.
pub trait Storable: private::Sealed {}

/// The [`Storable`] objects [`StorageKey::open`] loads from their bytes alone: all but
/// [`Session`], whose stored form leaves out the local identity key (SPEC.md §7.1) and
/// which [`StorageKey::open_session`] opens. Sealed: no other type can implement it.
pub trait Openable: Storable + private::Decode {}

macro_rules! storable {
    ($ty:ty, $tag:expr) => {
        impl private::Sealed for $ty {
            const OBJECT_TYPE: u8 = $tag;
            fn encode(&self) -> Zeroizing<Vec<u8>> {
                self.to_bytes()
            }
        }
        impl Storable for $ty {}
    };
}

macro_rules! openable {
    ($ty:ty, $tag:expr) => {
        storable!($ty, $tag);
        impl private::Decode for $ty {
            fn decode(bytes: &[u8]) -> Result<Self, Error> {
                <$ty>::from_bytes(bytes)
            }
        }
        impl Openable for $ty {}
    };
}

storable!(Session, TYPE_SESSION);
openable!(IdentityKeyPair, TYPE_IDENTITY);
openable!(SignedPreKey, TYPE_SIGNED_PREKEY);
openable!(OneTimePreKey, TYPE_ONE_TIME_PREKEY);
openable!(crate::prekeys::LocalDevice, TYPE_LOCAL_DEVICE);
openable!(crate::record::SessionRecord, TYPE_SESSION_RECORD);
openable!(crate::account::Account, crate::format::TYPE_ACCOUNT);
openable!(crate::account::Contact, crate::format::TYPE_CONTACT);
openable!(crate::group::Group, crate::format::TYPE_GROUP);
openable!(
    crate::group::MemberChains,
    crate::format::TYPE_MEMBER_CHAINS
);
#[cfg(feature = "pqxdh")]
openable!(crate::pq::PqPreKey, TYPE_PQ_PREKEY);

/// A 32-byte application key that seals stored objects (SPEC.md §7.6), so that sessions
/// and keys can be kept in a database the app does not fully trust.
///
/// Sealing is AES-256-GCM-SIV with a fresh random 96-bit nonce per blob; the associated
/// data binds the format version, the object type and the application context (where the
/// blob lives), so a sealed identity can never be opened as a session, nor one contact's
/// session in another contact's row. Seal at most 2^32 blobs under one key; should a nonce ever repeat
/// (an RNG rolled back with a VM snapshot), GCM-SIV reveals only whether the two blobs were
/// equal, never the key stream or the authentication key.
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// Wraps 32 bytes of key material (for example from the platform keystore).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StorageKey(Zeroizing::new(bytes))
    }

    /// Generates a new random key.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(rng, key.as_mut())?;
        Ok(StorageKey(key))
    }

    /// `AD = SEALED_AD_LABEL || version || 0x30 || T || len(context) (u32) || context`.
    fn associated_data(object_type: u8, context: &[u8]) -> Result<SealedAad, Error> {
        if context.len() > MAX_SEAL_CONTEXT_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut aad = SealedAad {
            bytes: [0u8; SEALED_AAD_CAPACITY],
            len: SEALED_AD_LABEL.len() + 3 + 4 + context.len(),
        };
        let mut out = &mut aad.bytes[..];
        for part in [
            SEALED_AD_LABEL,
            &[STORAGE_VERSION, TYPE_SEALED, object_type],
            // At most MAX_SEAL_CONTEXT_LENGTH, checked above.
            &(context.len() as u32).to_be_bytes(),
            context,
        ] {
            let (head, rest) = out.split_at_mut(part.len());
            head.copy_from_slice(part);
            out = rest;
        }
        Ok(aad)
    }

    /// Seals `object` for the place it will be stored, named by `context` (for example the
    /// contact id and row key): `version | 0x30 | object type | nonce(12) | ciphertext ||
    /// tag(16)`. The context is bound into the associated data and not stored: the blob
    /// opens only with the same context, so a blob copied into another row does not open.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a context longer than [`MAX_SEAL_CONTEXT_LENGTH`];
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn seal<T: Storable, R: TryCryptoRng + ?Sized>(
        &self,
        object: &T,
        context: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let aad = Self::associated_data(T::OBJECT_TYPE, context)?;
        let plaintext = object.encode();
        let mut nonce = [0u8; NONCE_LENGTH];
        fill_random(rng, &mut nonce)?;
        let mut out = Vec::with_capacity(SEALED_HEADER_LENGTH + plaintext.len() + TAG_LENGTH);
        out.put_u8(STORAGE_VERSION);
        out.put_u8(TYPE_SEALED);
        out.put_u8(T::OBJECT_TYPE);
        out.put(&nonce);
        out.put(&plaintext);
        let tag = aead::seal_in_place(
            &self.0,
            &nonce,
            aad.as_slice(),
            &mut out[SEALED_HEADER_LENGTH..],
        )?;
        out.put(&tag);
        Ok(out)
    }

    /// Opens a blob made by [`StorageKey::seal`] for the same object type and context.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (the blob, or a context longer than [`MAX_SEAL_CONTEXT_LENGTH`]),
    /// [`Error::Truncated`], [`Error::UnsupportedVersion`], [`Error::UnexpectedType`] (not a
    /// sealed blob, or a different object type), [`Error::DecryptionFailed`] (wrong key,
    /// another context, or any altered byte: an AEAD cannot tell which), or any error of
    /// the object's own `from_bytes`.
    pub fn open<T: Openable>(&self, sealed: &[u8], context: &[u8]) -> Result<T, Error> {
        T::decode(&self.open_bytes(sealed, context, T::OBJECT_TYPE)?)
    }

    /// Opens a [`Session`] sealed by [`StorageKey::seal`] with the same context, for the
    /// device whose identity key is `local` (see [`Session::from_bytes`]).
    ///
    /// # Errors
    /// As [`StorageKey::open`], with the errors of [`Session::from_bytes`].
    pub fn open_session(
        &self,
        sealed: &[u8],
        context: &[u8],
        local: &IdentityKey,
    ) -> Result<Session, Error> {
        Session::from_bytes(&self.open_bytes(sealed, context, TYPE_SESSION)?, local)
    }

    /// The plaintext of a sealed blob of `expected` object type (SPEC.md §7.6).
    fn open_bytes(
        &self,
        sealed: &[u8],
        context: &[u8],
        expected: u8,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if sealed.len() > SEALED_HEADER_LENGTH + MAX_STORED_SIZE + TAG_LENGTH {
            return Err(Error::TooLarge);
        }
        if context.len() > MAX_SEAL_CONTEXT_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(sealed);
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_SEALED)?;
        let object_type = r.u8()?;
        if object_type != expected {
            return Err(Error::UnexpectedType(object_type));
        }
        let nonce = r.array::<NONCE_LENGTH>()?;
        if r.remaining() < TAG_LENGTH {
            return Err(Error::Truncated);
        }
        let body = r.rest();
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LENGTH);
        let mut tag_bytes = [0u8; TAG_LENGTH];
        tag_bytes.copy_from_slice(tag);
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        aead::open_in_place(
            &self.0,
            &nonce,
            Self::associated_data(object_type, context)?.as_slice(),
            plaintext.as_mut_slice(),
            &tag_bytes,
        )?;
        Ok(plaintext)
    }
}

impl core::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StorageKey").finish_non_exhaustive()
    }
}
