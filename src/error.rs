//! The crate's error type.
//!
//! Every failure is a value of [`Error`]; nothing in this crate panics on input from the
//! network or from storage. Decryption failures are deliberately coarse
//! ([`Error::DecryptionFailed`]) so that they are no oracle about which check failed.

use core::fmt;

/// Everything that can go wrong in this crate.
///
/// Whenever a [`Session`](crate::Session) method returns an error, the session is exactly
/// as it was before the call.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The input ended before its format said it would.
    Truncated,
    /// The input continued after its format said it would end.
    TrailingData,
    /// A field holds a value its format forbids (an unknown flag value, non-zero padding,
    /// a count out of range, ...).
    InvalidEncoding,
    /// The version byte names a version this build does not implement.
    UnsupportedVersion(u8),
    /// The type byte names no known object or message type, or a different one than the
    /// operation expects.
    UnexpectedType(u8),
    /// The input is larger than [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE) (or, for a
    /// plaintext, larger than [`MAX_PLAINTEXT_SIZE`](crate::MAX_PLAINTEXT_SIZE)).
    TooLarge,
    /// A public key was rejected: an identity key that does not decompress, is not
    /// canonically encoded or has small order, or an X25519 key that is not canonical or
    /// has small order.
    InvalidPublicKey,
    /// A Diffie-Hellman output was all zeros (the peer's key is non-contributory).
    NonContributoryKey,
    /// A prekey bundle's signature does not verify under its identity key.
    InvalidSignature,
    /// An initial message names a signed prekey id the responder does not have.
    UnknownSignedPreKey(u64),
    /// An initial message names a one-time prekey id the responder does not have (it may
    /// have been used already).
    UnknownOneTimePreKey(u64),
    /// An initial message names a post-quantum prekey id the responder does not have (a
    /// one-time one may have been used already), or needs one where none was offered.
    UnknownPqPreKey(u64),
    /// PQXDH is required by the [`SessionOptions`](crate::SessionOptions), but the bundle
    /// or initial message is classical X3DH.
    PostQuantumRequired,
    /// Header encryption is required by the [`SessionOptions`](crate::SessionOptions), but
    /// the initial message starts a session without it.
    HeaderEncryptionRequired,
    /// [`Session::respond`](crate::Session::respond) was given a message that is not an
    /// initial message.
    NotInitialMessage,
    /// An initial message belongs to a different session than the one asked to decrypt it,
    /// or was sent by the local identity to itself, or a message's header mode (encrypted
    /// or not) differs from the session's.
    WrongSession,
    /// The pinned identity key for this contact differs from the one offered.
    IdentityMismatch,
    /// The message is further ahead in its chain (or names a longer previous chain) than
    /// the session's `max_skip` allows.
    TooFarAhead,
    /// The message's number is below the next expected one in the current receiving chain
    /// and its key is not stored: it was already decrypted, or its skipped key was evicted.
    /// (A replayed message from an older chain is [`Error::DecryptionFailed`].) Also a
    /// replayed initial message refused by a [`PreKeyStore`](crate::PreKeyStore)'s replay
    /// records.
    DuplicateOrExpired,
    /// The message does not authenticate under the key the session derives for it.
    DecryptionFailed,
    /// The random number generator failed.
    RandomnessUnavailable,
    /// A sending chain reached its maximum length (2^32 - 1 messages).
    ChainExhausted,
    /// Limits above the hard caps.
    InvalidLimits,
    /// A prekey store is full, or its id space is exhausted.
    StoreFull,
    /// An internal invariant of this crate failed: a bug, never the result of any input.
    /// The operation changed nothing; please report it.
    Internal,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("input is truncated"),
            Error::TrailingData => f.write_str("input has trailing data"),
            Error::InvalidEncoding => f.write_str("input has an invalid field value"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Error::UnexpectedType(t) => write!(f, "unexpected object or message type {t}"),
            Error::TooLarge => f.write_str("input exceeds the maximum size"),
            Error::InvalidPublicKey => f.write_str("invalid public key"),
            Error::NonContributoryKey => f.write_str("non-contributory Diffie-Hellman output"),
            Error::InvalidSignature => f.write_str("invalid prekey signature"),
            Error::UnknownSignedPreKey(id) => write!(f, "unknown signed prekey {id}"),
            Error::UnknownOneTimePreKey(id) => write!(f, "unknown one-time prekey {id}"),
            Error::UnknownPqPreKey(id) => write!(f, "unknown post-quantum prekey {id}"),
            Error::PostQuantumRequired => f.write_str("post-quantum key agreement required"),
            Error::HeaderEncryptionRequired => f.write_str("header encryption required"),
            Error::NotInitialMessage => f.write_str("not an initial message"),
            Error::WrongSession => f.write_str("message belongs to another session"),
            Error::IdentityMismatch => f.write_str("identity key differs from the pinned one"),
            Error::TooFarAhead => f.write_str("message skips more keys than allowed"),
            Error::DuplicateOrExpired => f.write_str("message already received or expired"),
            Error::DecryptionFailed => f.write_str("decryption failed"),
            Error::RandomnessUnavailable => f.write_str("random number generator failed"),
            Error::ChainExhausted => f.write_str("sending chain exhausted"),
            Error::InvalidLimits => f.write_str("invalid session limits"),
            Error::StoreFull => f.write_str("prekey store is full"),
            Error::Internal => f.write_str("internal error (a bug in doubleratchet)"),
        }
    }
}

impl core::error::Error for Error {}

// The error stays small and `Copy` (issue 13): a tag and at most one `u64` of data.
const _: () = assert!(core::mem::size_of::<Error>() <= 16);
const _: () = {
    const fn is_copy<T: Copy>() {}
    is_copy::<Error>();
};
