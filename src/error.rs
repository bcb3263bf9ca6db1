//! The crate's error type (SPEC.md §10).
//!
//! Every failure is a value of [`Error`]; nothing in this crate panics on input from the
//! network or from storage. Decryption failures are deliberately coarse
//! ([`Error::DecryptionFailed`]) so that they are no oracle about which check failed.
//! [`Error::kind`] groups the variants by what an app does about them ([`ErrorKind`]).

use core::fmt;

use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};

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
    /// A signature does not verify: a prekey bundle's or a published prekey's under its
    /// identity key, a decryption-error request's, a device list's under its account key,
    /// or a device link's under the device's identity key; a group message's under its
    /// chain's signing key, or a distribution's sender binding (SPEC.md §11).
    InvalidSignature,
    /// An initial message names a signed prekey id the responder does not have.
    UnknownSignedPreKey(SignedPreKeyId),
    /// An initial message names a one-time prekey id the responder does not have (it may
    /// have been used already).
    UnknownOneTimePreKey(OneTimePreKeyId),
    /// An initial message names a post-quantum prekey id the responder does not have (a
    /// one-time one may have been used already), or needs one where none was offered.
    UnknownPqPreKey(PqPreKeyId),
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
    /// The pinned identity key for this contact differs from the one offered (or, from a
    /// [`Contact`](crate::Contact), the account key given differs from the pinned one).
    IdentityMismatch,
    /// The message is further ahead in its chain (or names a longer previous chain) than
    /// the session's `max_skip` allows. From [`Group::decrypt`](crate::Group::decrypt): more
    /// than [`MAX_GROUP_JUMP`](crate::MAX_GROUP_JUMP) ahead of the sender's chain; ask the
    /// sender for a fresh distribution, which moves the chain on (SPEC.md §11.4).
    TooFarAhead,
    /// The message's number is below the next expected one in the current receiving chain
    /// and its key is not stored: it was already decrypted, or its skipped key was evicted.
    /// (A replayed message from an older chain is [`Error::DecryptionFailed`].) Also a
    /// replayed initial message refused by a [`LocalDevice`](crate::LocalDevice)'s replay
    /// records.
    DuplicateOrExpired,
    /// The message does not authenticate under the key the session derives for it. From
    /// [`Group::decrypt`](crate::Group::decrypt), after a valid signature: the sender gave
    /// this device another chain key than the message used (SPEC.md §11.7); drop it.
    DecryptionFailed,
    /// The random number generator failed.
    RandomnessUnavailable,
    /// A sending chain reached its maximum length (2^32 - 1 messages). From a
    /// [`Group`](crate::Group): call [`Group::rotate`](crate::Group::rotate).
    ChainExhausted,
    /// Limits above the hard caps.
    InvalidLimits,
    /// A prekey store is full, or its id space is exhausted.
    StoreFull,
    /// A [`SessionRecord`](crate::SessionRecord) has no session to send on: none was
    /// ever made, or the last sending session was archived (by a decryption-error request,
    /// SPEC.md §6.8, or by the app). Also a normal message given to a record without any
    /// session.
    NoSession,
    /// A [`SessionRecord`](crate::SessionRecord) was given a device, or a decryption-error
    /// request was addressed to, a local identity other than the record's own. Also a
    /// [`Contact`](crate::Contact) call naming the local device itself, a record restored
    /// into the wrong contact, and a [`DeviceLink`](crate::DeviceLink) or list of another
    /// account given to an [`Account`](crate::Account); a [`Group`](crate::Group) given
    /// [`MemberChains`](crate::MemberChains) of another group or member, or its own device
    /// as a member.
    WrongRecord,
    /// A device not in the newest device list of its account (SPEC.md §9.5): removed, or
    /// the list held is older than the device. Also
    /// [`Account::remove_device`](crate::Account::remove_device) of a device not listed.
    UnknownDevice(crate::DeviceId),
    /// A device list under the pinned account key whose counter is not higher than the
    /// newest one held: a replayed or reordered list (SPEC.md §9.5).
    StaleDeviceList,
    /// Another device list under the pinned account key with the same counter as the one
    /// held: the account key signed two lists with one counter (an account restored from an
    /// old copy, or a stolen account key) (SPEC.md §9.5).
    ForkedDeviceList,
    /// A device id or identity key listed twice, or an identity key equal to the account
    /// key (SPEC.md §9.4); a group member added or listed twice.
    DuplicateDevice,
    /// An account already lists [`MAX_DEVICES`](crate::MAX_DEVICES) devices, or a group
    /// [`MAX_GROUP_MEMBERS`](crate::MAX_GROUP_MEMBERS) members.
    TooManyDevices,
    /// A group message or distribution names another group than the [`Group`](crate::Group)
    /// given it (SPEC.md §11.5).
    WrongGroup,
    /// A group distribution or message from a device that is not (or no longer) a member of
    /// the group, or [`Group::remove_member`](crate::Group::remove_member) of a device that
    /// is not one (SPEC.md §11.4).
    NotGroupMember,
    /// A group message on a sender chain the member's chains do not hold: its distribution
    /// has not arrived (or was lost). (A chain evicted lately is
    /// [`Error::DuplicateOrExpired`]; one evicted long ago, whose id was forgotten, is this.)
    /// (SPEC.md §11.5)
    UnknownChain,
    /// A group distribution naming a chain id already held with another signing key, or with
    /// another chain key than the held chain's at that iteration: it never replaces the held
    /// chain (SPEC.md §11.4).
    ConflictingChain,
    /// An internal invariant of this crate failed: a bug, never the result of any input.
    /// The operation changed nothing; please report it.
    Internal,
}

/// What an app does about an [`Error`]: the groups of [`Error::kind`].
///
/// Whatever the kind, the call that failed changed nothing: the session, prekeys or other
/// object it was made on are exactly as they were. The kind says what to do next. Kinds
/// may be added: treat one your app does not know like [`ErrorKind::DropMessage`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed, forged, a replay, or refused by the app's own policy
    /// ([`SessionOptions`](crate::SessionOptions)): discard it. A received message is
    /// dropped (anyone can send such a message, so log it at most); a fetched prekey bundle
    /// is not used (fetch it again later); a stored blob is corrupt or of a format this
    /// build does not read.
    DropMessage,
    /// This session cannot decrypt the message, but another one may: route an initial
    /// message by its [`InitialMessage::session_id`](crate::InitialMessage::session_id),
    /// and try a normal message on the contact's other sessions, most recently used first
    /// (a failed decryption changes nothing). Drop the message when no session decrypts
    /// it: a forged message fails this way in every session. A
    /// [`SessionRecord`](crate::SessionRecord) has already done this routing: from it, the
    /// error means no session it tried decrypted the message.
    TryAnotherSession,
    /// This session cannot go on: start a new one with the contact
    /// ([`SessionRecord::initiate`](crate::SessionRecord::initiate) or
    /// [`Session::initiate`](crate::Session::initiate) from a freshly fetched bundle) and
    /// send on it; keep the old one to decrypt messages still in flight.
    Reinitiate,
    /// The device's prekeys need attention: a prekey store is full, or an initial message
    /// (or a bundle the app asked its store for) names a prekey the device no longer
    /// holds, so the sender used an old bundle. Retire, rotate or generate prekeys as the
    /// variant says, and publish the current ones so that the server hands out only
    /// prekeys the device holds. An initial message refused this way starts no session:
    /// drop it; its sender has to fetch a new bundle. Prekey ids in an initial message are
    /// not authenticated, so anyone can cause this: rate-limit the work it triggers.
    ReplenishPreKeys,
    /// The contact's identity key is not the one the app pinned: the contact reinstalled
    /// or changed devices, or someone (the server, for example) substituted the key. Do not
    /// continue silently: tell the user, and pin the new key only after they compare
    /// [safety numbers](crate::SafetyNumber).
    VerifyIdentity,
    /// A temporary failure of the platform (the random number generator): retry the same
    /// call later.
    RetryLater,
    /// The app called this crate wrongly (arguments out of range, a message given to a
    /// call meant for another kind of message): a bug in the app to fix, not an input to
    /// drop.
    FixCall,
    /// A device is not in the newest device list the app holds for its account: it was
    /// removed, or the list is out of date. Fetch the account's newest list
    /// ([`Contact::update_devices`](crate::Contact::update_devices)), then retry; drop the
    /// message if the device is still not listed.
    RefreshDevices,
    /// A group message on a sender chain whose distribution has not arrived: keep the
    /// message and retry once the sender's distribution arrived (it comes over the pairwise
    /// session), or ask the sender to send it again; drop the message if it never comes.
    AwaitDistribution,
    /// A bug in this crate (an internal invariant failed; no input causes it): please
    /// report it.
    Bug,
}

impl Error {
    /// What the app does about this error.
    ///
    /// | variant | kind | why |
    /// |---|---|---|
    /// | [`Truncated`](Error::Truncated) | [`DropMessage`](ErrorKind::DropMessage) | malformed input: it ends early |
    /// | [`TrailingData`](Error::TrailingData) | [`DropMessage`](ErrorKind::DropMessage) | malformed input: it goes on after its end |
    /// | [`InvalidEncoding`](Error::InvalidEncoding) | [`DropMessage`](ErrorKind::DropMessage) | malformed input: a field holds a forbidden value |
    /// | [`UnsupportedVersion`](Error::UnsupportedVersion) | [`DropMessage`](ErrorKind::DropMessage) | a format version this build does not read (the sender's software is newer, or far older) |
    /// | [`UnexpectedType`](Error::UnexpectedType) | [`DropMessage`](ErrorKind::DropMessage) | not the kind of object the call reads |
    /// | [`TooLarge`](Error::TooLarge) | [`DropMessage`](ErrorKind::DropMessage) | above a size limit (from [`Session::encrypt`](crate::Session::encrypt): split the plaintext) |
    /// | [`InvalidPublicKey`](Error::InvalidPublicKey) | [`DropMessage`](ErrorKind::DropMessage) | a key no honest peer sends, whatever the session |
    /// | [`NonContributoryKey`](Error::NonContributoryKey) | [`DropMessage`](ErrorKind::DropMessage) | a key no honest peer sends, whatever the session |
    /// | [`InvalidSignature`](Error::InvalidSignature) | [`DropMessage`](ErrorKind::DropMessage) | a forged or corrupted bundle, request, device list, device link, group message or distribution: not signed by the key it carries (that key itself is not in question) |
    /// | [`UnknownSignedPreKey`](Error::UnknownSignedPreKey) | [`ReplenishPreKeys`](ErrorKind::ReplenishPreKeys) | seen only by the device that owns the prekeys: the sender used a bundle with a signed prekey this device no longer holds (retired, or lost in a restore) |
    /// | [`UnknownOneTimePreKey`](Error::UnknownOneTimePreKey) | [`ReplenishPreKeys`](ErrorKind::ReplenishPreKeys) | as above for a one-time prekey (consumed, evicted, or lost in a restore) |
    /// | [`UnknownPqPreKey`](Error::UnknownPqPreKey) | [`ReplenishPreKeys`](ErrorKind::ReplenishPreKeys) | as above for a post-quantum prekey |
    /// | [`PostQuantumRequired`](Error::PostQuantumRequired) | [`DropMessage`](ErrorKind::DropMessage) | refused by the app's own policy, which worked as meant: the call was right, the input is not acceptable |
    /// | [`HeaderEncryptionRequired`](Error::HeaderEncryptionRequired) | [`DropMessage`](ErrorKind::DropMessage) | refused by the app's own policy, as above |
    /// | [`NotInitialMessage`](Error::NotInitialMessage) | [`FixCall`](ErrorKind::FixCall) | a normal message given to a call that starts a session: route messages with [`Message::parse`](crate::Message::parse) |
    /// | [`WrongSession`](Error::WrongSession) | [`TryAnotherSession`](ErrorKind::TryAnotherSession) | a message of another session or of the other header mode (a bundle or message of the local identity itself: nothing to try, drop it) |
    /// | [`IdentityMismatch`](Error::IdentityMismatch) | [`VerifyIdentity`](ErrorKind::VerifyIdentity) | the contact's identity key differs from the pinned one |
    /// | [`TooFarAhead`](Error::TooFarAhead) | [`TryAnotherSession`](ErrorKind::TryAnotherSession) | checked before authentication: without header encryption, another session's message can look far ahead (its ratchet key is new to this session); from a group: ask the sender for a fresh distribution |
    /// | [`DuplicateOrExpired`](Error::DuplicateOrExpired) | [`DropMessage`](ErrorKind::DropMessage) | a replay, or a message whose key this session already used or evicted: no other session holds it |
    /// | [`DecryptionFailed`](Error::DecryptionFailed) | [`TryAnotherSession`](ErrorKind::TryAnotherSession) | forged, or encrypted under another session's keys (also a sealed blob opened under another key or context); from a group, after a valid signature: the sender misbehaved, drop it |
    /// | [`RandomnessUnavailable`](Error::RandomnessUnavailable) | [`RetryLater`](ErrorKind::RetryLater) | the RNG failed; the call changed nothing |
    /// | [`ChainExhausted`](Error::ChainExhausted) | [`Reinitiate`](ErrorKind::Reinitiate) | the sending chain is at its last message number, and stays there until the peer replies (a group's: `Group::rotate`) |
    /// | [`InvalidLimits`](Error::InvalidLimits) | [`FixCall`](ErrorKind::FixCall) | limits or a replay capacity out of range (or a stored session blob holding such limits: corrupt) |
    /// | [`StoreFull`](Error::StoreFull) | [`ReplenishPreKeys`](ErrorKind::ReplenishPreKeys) | a prekey store is at a cap: retire old signed prekeys, rotate a full one, generate fewer (from [`Account`](crate::Account): its counter is at `u64::MAX`, a crafted stored account: make a new account) |
    /// | [`NoSession`](Error::NoSession) | [`Reinitiate`](ErrorKind::Reinitiate) | a record with no sending session (none yet, or archived after a decryption-error request): fetch a bundle and initiate |
    /// | [`WrongRecord`](Error::WrongRecord) | [`FixCall`](ErrorKind::FixCall) | a device, or a request, of another local identity than the record's |
    /// | [`UnknownDevice`](Error::UnknownDevice) | [`RefreshDevices`](ErrorKind::RefreshDevices) | the device is not in the newest list held: fetch the account's list, then retry or drop |
    /// | [`StaleDeviceList`](Error::StaleDeviceList) | [`DropMessage`](ErrorKind::DropMessage) | an old list replayed (by the server, say): keep the newer one |
    /// | [`ForkedDeviceList`](Error::ForkedDeviceList) | [`VerifyIdentity`](ErrorKind::VerifyIdentity) | the account key signed two lists with one counter: keep the held list and warn the user (the contact restored an old account copy, or lost its account key) |
    /// | [`DuplicateDevice`](Error::DuplicateDevice) | [`FixCall`](ErrorKind::FixCall) | the device is already in the list |
    /// | [`TooManyDevices`](Error::TooManyDevices) | [`FixCall`](ErrorKind::FixCall) | remove a device first |
    /// | [`WrongGroup`](Error::WrongGroup) | [`DropMessage`](ErrorKind::DropMessage) | a message or distribution of another group: not for this one |
    /// | [`NotGroupMember`](Error::NotGroupMember) | [`DropMessage`](ErrorKind::DropMessage) | from a device that is not a member (removed, or never added); from [`Group::remove_member`](crate::Group::remove_member), a call mistake |
    /// | [`UnknownChain`](Error::UnknownChain) | [`AwaitDistribution`](ErrorKind::AwaitDistribution) | the sender's distribution for this chain has not arrived |
    /// | [`ConflictingChain`](Error::ConflictingChain) | [`DropMessage`](ErrorKind::DropMessage) | a chain id already held with another signing key or chain key: the held chain stays |
    /// | [`Internal`](Error::Internal) | [`Bug`](ErrorKind::Bug) | an invariant of this crate failed |
    ///
    /// An error is of kind [`ErrorKind::TryAnotherSession`] exactly when a message of
    /// another session can cause it: the format and key checks and the duplicate check give
    /// the same answer in every session; a failed authentication and the skip bound
    /// (checked before authentication) do not.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        // No wildcard: a new variant does not compile until it is classified here.
        match self {
            Error::Truncated
            | Error::TrailingData
            | Error::InvalidEncoding
            | Error::UnsupportedVersion(_)
            | Error::UnexpectedType(_)
            | Error::TooLarge
            | Error::InvalidPublicKey
            | Error::NonContributoryKey
            | Error::InvalidSignature
            | Error::PostQuantumRequired
            | Error::HeaderEncryptionRequired
            | Error::DuplicateOrExpired
            | Error::StaleDeviceList
            | Error::WrongGroup
            | Error::NotGroupMember
            | Error::ConflictingChain => ErrorKind::DropMessage,
            Error::UnknownChain => ErrorKind::AwaitDistribution,
            Error::WrongSession | Error::TooFarAhead | Error::DecryptionFailed => {
                ErrorKind::TryAnotherSession
            }
            Error::ChainExhausted | Error::NoSession => ErrorKind::Reinitiate,
            Error::UnknownSignedPreKey(_)
            | Error::UnknownOneTimePreKey(_)
            | Error::UnknownPqPreKey(_)
            | Error::StoreFull => ErrorKind::ReplenishPreKeys,
            Error::IdentityMismatch | Error::ForkedDeviceList => ErrorKind::VerifyIdentity,
            Error::RandomnessUnavailable => ErrorKind::RetryLater,
            Error::NotInitialMessage
            | Error::InvalidLimits
            | Error::WrongRecord
            | Error::DuplicateDevice
            | Error::TooManyDevices => ErrorKind::FixCall,
            Error::UnknownDevice(_) => ErrorKind::RefreshDevices,
            Error::Internal => ErrorKind::Bug,
        }
    }
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
            Error::InvalidSignature => f.write_str("invalid signature"),
            Error::UnknownSignedPreKey(id) => write!(f, "unknown signed prekey {id}"),
            Error::UnknownOneTimePreKey(id) => write!(f, "unknown one-time prekey {id}"),
            Error::UnknownPqPreKey(id) => write!(f, "unknown post-quantum prekey {id}"),
            Error::PostQuantumRequired => f.write_str("post-quantum key agreement required"),
            Error::HeaderEncryptionRequired => f.write_str("header encryption required"),
            Error::NotInitialMessage => f.write_str("not an initial message"),
            Error::WrongSession => f.write_str("message belongs to another session"),
            Error::IdentityMismatch => {
                f.write_str("identity or account key differs from the pinned one")
            }
            Error::TooFarAhead => f.write_str("message skips more keys than allowed"),
            Error::DuplicateOrExpired => f.write_str("message already received or expired"),
            Error::DecryptionFailed => f.write_str("decryption failed"),
            Error::RandomnessUnavailable => f.write_str("random number generator failed"),
            Error::ChainExhausted => f.write_str("sending chain exhausted"),
            Error::InvalidLimits => f.write_str("invalid session limits"),
            Error::StoreFull => f.write_str("prekey store is full"),
            Error::NoSession => f.write_str("the record has no session to use"),
            Error::WrongRecord => f.write_str("belongs to another local identity or account"),
            Error::UnknownDevice(id) => write!(f, "device {id} is not in the newest device list"),
            Error::StaleDeviceList => f.write_str("device list is not newer than the one held"),
            Error::ForkedDeviceList => {
                f.write_str("another device list with the same counter as the one held")
            }
            Error::DuplicateDevice => f.write_str("device already listed"),
            Error::TooManyDevices => f.write_str("too many devices for one account"),
            Error::WrongGroup => f.write_str("message or distribution of another group"),
            Error::NotGroupMember => f.write_str("device is not a member of the group"),
            Error::UnknownChain => f.write_str("no distribution held for this sender chain"),
            Error::ConflictingChain => {
                f.write_str("chain id already held with another signing key")
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// Declares [`ALL`] (every variant once, with the kind it must have) and [`listed`],
    /// from one list: `listed` matches with no wildcard, so a new variant does not compile
    /// until it is added to the list, which adds it to `ALL` as well.
    macro_rules! every_variant {
        ($($name:ident $(($payload:expr))? => $kind:ident,)*) => {
            const ALL: &[(Error, ErrorKind)] =
                &[$((Error::$name $(($payload))?, ErrorKind::$kind)),*];

            fn listed(error: Error) -> bool {
                match error {
                    $(Error::$name $((every_variant!(@any $payload)))? => true,)*
                }
            }
        };
        (@any $payload:expr) => {
            _
        };
    }

    // The ids are arbitrary.
    every_variant! {
        Truncated => DropMessage,
        TrailingData => DropMessage,
        InvalidEncoding => DropMessage,
        UnsupportedVersion(1) => DropMessage,
        UnexpectedType(0x7F) => DropMessage,
        TooLarge => DropMessage,
        InvalidPublicKey => DropMessage,
        NonContributoryKey => DropMessage,
        InvalidSignature => DropMessage,
        UnknownSignedPreKey(SignedPreKeyId::from_u64(7)) => ReplenishPreKeys,
        UnknownOneTimePreKey(OneTimePreKeyId::from_u64(7)) => ReplenishPreKeys,
        UnknownPqPreKey(PqPreKeyId::from_u64(7)) => ReplenishPreKeys,
        PostQuantumRequired => DropMessage,
        HeaderEncryptionRequired => DropMessage,
        NotInitialMessage => FixCall,
        WrongSession => TryAnotherSession,
        IdentityMismatch => VerifyIdentity,
        TooFarAhead => TryAnotherSession,
        DuplicateOrExpired => DropMessage,
        DecryptionFailed => TryAnotherSession,
        RandomnessUnavailable => RetryLater,
        ChainExhausted => Reinitiate,
        InvalidLimits => FixCall,
        StoreFull => ReplenishPreKeys,
        NoSession => Reinitiate,
        WrongRecord => FixCall,
        UnknownDevice(crate::DeviceId::new(7)) => RefreshDevices,
        StaleDeviceList => DropMessage,
        ForkedDeviceList => VerifyIdentity,
        DuplicateDevice => FixCall,
        TooManyDevices => FixCall,
        WrongGroup => DropMessage,
        NotGroupMember => DropMessage,
        UnknownChain => AwaitDistribution,
        ConflictingChain => DropMessage,
        Internal => Bug,
    }

    #[test]
    fn every_variant_is_listed_once() {
        for (i, (error, _)) in ALL.iter().enumerate() {
            assert!(listed(*error));
            let same = ALL
                .iter()
                .filter(|(e, _)| core::mem::discriminant(e) == core::mem::discriminant(error));
            assert_eq!(same.count(), 1, "{error:?} (entry {i}) is listed twice");
        }
    }

    #[test]
    fn every_variant_has_its_kind() {
        for (error, kind) in ALL {
            assert_eq!(error.kind(), *kind, "{error:?}");
        }
    }

    #[test]
    fn every_variant_displays_a_distinct_message() {
        let messages: Vec<String> = ALL.iter().map(|(e, _)| e.to_string()).collect();
        for ((error, _), message) in ALL.iter().zip(&messages) {
            assert!(!message.is_empty(), "{error:?}");
            let same = messages.iter().filter(|m| *m == message).count();
            assert_eq!(same, 1, "{error:?} prints like another variant: {message}");
        }
    }

    #[test]
    fn payloads_appear_in_the_message() {
        for (error, _) in ALL {
            let message = error.to_string();
            match error {
                Error::UnsupportedVersion(_) => assert!(message.ends_with(" 1"), "{message}"),
                Error::UnexpectedType(_) => assert!(message.ends_with(" 127"), "{message}"),
                Error::UnknownSignedPreKey(_)
                | Error::UnknownOneTimePreKey(_)
                | Error::UnknownPqPreKey(_) => assert!(message.ends_with(" 7"), "{message}"),
                Error::UnknownDevice(_) => assert!(message.starts_with("device 7 "), "{message}"),
                _ => {}
            }
        }
    }
}
