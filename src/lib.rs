#![no_std]
#![doc = include_str!("guide.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod aead;
mod backend;
mod codec;
mod error;
mod fingerprint;
mod format;
mod keys;
mod padding;
#[cfg(feature = "pqxdh")]
mod pq;
mod prekeys;
mod ratchet;
#[cfg(test)]
mod rfc_vectors;
mod seal;
mod session;
mod wire;
mod x3dh;

pub use crate::error::Error;
pub use crate::fingerprint::{
    SafetyNumber, ScanResult, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_LENGTH,
};
pub use crate::format::{BUNDLE_VERSION, SAFETY_NUMBER_VERSION, STORAGE_VERSION, WIRE_VERSION};
pub use crate::format::{
    DEFAULT_MAX_SKIP, DEFAULT_MAX_STORED_SKIPPED, MAX_SEAL_CONTEXT_LENGTH, MAX_SKIPPED_HEADER_KEYS,
    MAX_SKIP_CAP, MAX_STORED_SIZE, MAX_STORED_SKIPPED_CAP,
};
pub use crate::keys::{
    IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH,
};
pub use crate::padding::{Padding, PADME_MINIMUM};
#[cfg(feature = "pqxdh")]
pub use crate::pq::{PqPreKey, PqPreKeyKind, KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH};
pub use crate::prekeys::{
    PreKeyStore, ReplayRecord, Restored, StoreNotice, MAX_ONE_TIME_PREKEYS,
    MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
    MAX_SIGNED_PREKEYS,
};
pub use crate::ratchet::state::Limits;
pub use crate::seal::{Storable, StorageKey};
pub use crate::session::{Accepted, Role, Session, SessionOptions};
pub use crate::wire::{
    InitialMessage, Message, NormalMessage, MAX_MESSAGE_SIZE, MAX_PLAINTEXT_SIZE,
};
#[cfg(feature = "pqxdh")]
pub use crate::x3dh::PQ_BUNDLE_LENGTH;
pub use crate::x3dh::{PreKeyBundle, SessionId, BUNDLE_LENGTH};

/// The random number generator traits this crate's API takes (`rand_core` 0.10).
pub use rand_core;

/// The operating system's random number generator (`getrandom::SysRng`), a
/// [`TryCryptoRng`](rand_core::TryCryptoRng) to pass wherever this crate asks for an RNG.
/// Its failure surfaces as [`Error::RandomnessUnavailable`], never as a panic.
#[cfg(feature = "std")]
pub use getrandom::SysRng as OsRng;

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
