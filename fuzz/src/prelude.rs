//! The names every module of this crate uses: the API of the crate under test, the RNG, and
//! this crate's shared layout, fixture and store reader.

pub(crate) use arbitrary::{Arbitrary, Unstructured};
pub(crate) use doubleratchet::{
    Accepted, Error, IdentityKey, IdentityKeyPair, Limits, LocalDevice, Message, OneTimePreKey,
    OneTimePreKeyId, Padding, PqPreKeyId, PreKeyBundle, PreKeyPolicy, ReplayRecord, Role,
    SafetyNumber, ScanResult, Session, SessionOptions, SignedPreKey, SignedPreKeyId, StorageKey,
    StoreNotice, BUNDLE_LENGTH, BUNDLE_VERSION, MAX_MESSAGE_SIZE, MAX_ONE_TIME_PREKEYS,
    MAX_PLAINTEXT_SIZE, MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS,
    MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, MAX_SEAL_CONTEXT_LENGTH, MAX_SIGNED_PREKEYS,
    MAX_SKIP_CAP, PADME_MINIMUM, SAFETY_NUMBER_LENGTH, SAFETY_NUMBER_VERSION, STORAGE_VERSION,
    WIRE_VERSION,
};
pub(crate) use doubleratchet::{
    ErrorKind, RecordLimits, RecordStatus, ResetOutcome, SessionId, SessionRecord,
    MAX_ARCHIVED_CAP, MAX_RECORD_SIZE, MAX_RECORD_STORED_SKIPPED_CAP,
};
pub(crate) use doubleratchet::{OneTimePreKeyPublic, SignedPreKeyPublic, UploadSet};
#[cfg(feature = "pqxdh")]
pub(crate) use doubleratchet::{
    PqPreKey, PqPreKeyKind, PqPreKeyPublic, KEM_CIPHERTEXT_LENGTH, PQ_BUNDLE_LENGTH,
};
pub(crate) use rand_chacha::rand_core::SeedableRng;
pub(crate) use rand_chacha::ChaCha20Rng;

pub(crate) use crate::fixture::*;
pub(crate) use crate::layout::*;
pub(crate) use crate::store_view::*;
