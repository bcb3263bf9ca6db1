#![no_std]
#![doc = include_str!("guide.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod account;
mod aead;
mod backend;
mod codec;
mod error;
mod fingerprint;
mod format;
mod group;
mod ids;
mod keys;
mod padding;
#[cfg(feature = "pqxdh")]
mod pq;
mod prekeys;
mod publish;
mod ratchet;
mod record;
#[cfg(test)]
mod rfc_vectors;
mod seal;
mod session;
mod wire;
mod x3dh;

pub use crate::account::{
    encrypt_to_devices, Account, AccountKey, Contact, Delivery, DeviceId, DeviceLink, DeviceList,
    DeviceUpdate, IdentityChange, Trust,
};
pub use crate::error::{Error, ErrorKind};
pub use crate::fingerprint::{
    SafetyNumber, ScanResult, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_LENGTH,
};
#[cfg(feature = "pqxdh")]
pub use crate::format::MAX_UPLOAD_PQ_PREKEYS;
pub use crate::format::{BUNDLE_VERSION, SAFETY_NUMBER_VERSION, STORAGE_VERSION, WIRE_VERSION};
pub use crate::format::{
    DEFAULT_MAX_ARCHIVED, DEFAULT_MAX_TRIALS, DEFAULT_RECORD_STORED_SKIPPED, MAX_ARCHIVED_CAP,
    MAX_RECORD_SIZE, MAX_RECORD_STORED_SKIPPED_CAP,
};
pub use crate::format::{
    DEFAULT_MAX_SKIP, DEFAULT_MAX_STORED_SKIPPED, MAX_SEAL_CONTEXT_LENGTH, MAX_SKIPPED_HEADER_KEYS,
    MAX_SKIP_CAP, MAX_STORED_SIZE, MAX_STORED_SKIPPED_CAP,
};
pub use crate::format::{
    GROUP_ID_LENGTH, MAX_GROUP_JUMP, MAX_GROUP_MEMBERS, MAX_GROUP_SKIPPED, MAX_MEMBER_CHAINS,
    MAX_RETIRED_CHAINS,
};
pub use crate::format::{MAX_DEVICES, MAX_UPLOAD_ONE_TIME_PREKEYS};
pub use crate::group::{
    Distribution, DistributionOutcome, Group, GroupId, GroupMessage, MemberChains,
};
pub use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
pub use crate::keys::{
    IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey, X25519PublicKey, PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH,
};
pub use crate::padding::{Padding, PADME_MINIMUM};
#[cfg(feature = "pqxdh")]
pub use crate::pq::{PqPreKey, PqPreKeyKind, KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH};
pub use crate::prekeys::{
    Generated, LocalDevice, Maintenance, PreKeyPolicy, ReplayRecord, Restored, StoreNotice,
    DEFAULT_ONE_TIME_PREKEY_CAP, MAX_ONE_TIME_PREKEYS, MAX_PQ_LAST_RESORT_PREKEYS,
    MAX_PQ_ONE_TIME_PREKEYS, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, MAX_SIGNED_PREKEYS,
};
#[cfg(feature = "pqxdh")]
pub use crate::publish::PqPreKeyPublic;
pub use crate::publish::{OneTimePreKeyPublic, SignedPreKeyPublic, UploadSet};
pub use crate::ratchet::state::Limits;
pub use crate::record::{Received, RecordLimits, RecordStatus, ResetOutcome, SessionRecord};
pub use crate::seal::{Openable, Storable, StorageKey};
pub use crate::session::{Accepted, Role, Session, SessionOptions};
pub use crate::wire::{
    InitialMessage, Message, NormalMessage, MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE,
};
#[cfg(feature = "pqxdh")]
pub use crate::x3dh::PQ_BUNDLE_LENGTH;
pub use crate::x3dh::{PreKeyBundle, SessionId, BUNDLE_LENGTH};

/// The random number generator traits this crate's API takes (`rand_core` 0.10).
pub use rand_core;

/// The operating system's random number generator: a
/// [`TryCryptoRng`](rand_core::TryCryptoRng) to pass wherever this crate asks for an RNG,
/// as `&mut OsRng`.
///
/// It holds no state: every call draws from the operating system (through the `getrandom`
/// crate). A failure is [`Error::RandomnessUnavailable`], never a panic, and the call that
/// needed the randomness changed nothing, so it can be retried. Without the `std` feature
/// (on `no_std` targets), pass any other `TryCryptoRng`.
///
/// ```
/// use doubleratchet::rand_core::TryRng;
/// use doubleratchet::{Error, IdentityKeyPair, OsRng};
///
/// let identity = IdentityKeyPair::generate(&mut OsRng)?;
/// // Drawn directly, its error is this crate's too.
/// let mut nonce = [0u8; 12];
/// let drawn: Result<(), Error> = OsRng.try_fill_bytes(&mut nonce);
/// drawn?;
/// # let _ = identity;
/// # Ok::<(), Error>(())
/// ```
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

#[cfg(feature = "std")]
impl rand_core::TryRng for OsRng {
    type Error = Error;

    fn try_next_u32(&mut self) -> Result<u32, Error> {
        getrandom::SysRng
            .try_next_u32()
            .map_err(|_| Error::RandomnessUnavailable)
    }

    fn try_next_u64(&mut self) -> Result<u64, Error> {
        getrandom::SysRng
            .try_next_u64()
            .map_err(|_| Error::RandomnessUnavailable)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        getrandom::SysRng
            .try_fill_bytes(dst)
            .map_err(|_| Error::RandomnessUnavailable)
    }
}

#[cfg(feature = "std")]
impl rand_core::TryCryptoRng for OsRng {}

/// The protocol specification, `SPEC.md`: every construction, constant, encoding and limit
/// of this crate, precisely enough for an independent implementation to interoperate.
///
#[doc = include_str!("../SPEC.md")]
pub mod spec {}

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
