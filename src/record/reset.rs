//! Decryption-error requests (SPEC.md §6.8, type `0x07`): when a device cannot decrypt a
//! message from a contact (it lost its state, or restored an older copy), it sends the
//! sender a small request signed with its identity key; the sender's record archives the
//! broken sending session, so that the app starts a new one. A request acts at most once
//! per [`RecordLimits::reset_interval`](super::RecordLimits::reset_interval), never twice
//! for the same or an older request time, and only on the session it names.

use alloc::vec::Vec;

use ed25519_dalek::Signature;

use super::{ResetMark, SessionRecord};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    DECRYPTION_ERROR_LABEL, DECRYPTION_ERROR_LENGTH, MAX_MESSAGE_SIZE, PUBLIC_KEY_LENGTH,
    SIGNATURE_LENGTH, TYPE_DECRYPTION_ERROR, WIRE_VERSION,
};
use crate::keys::{x25519_public_from_bytes, IdentityKey};
use crate::prekeys::LocalDevice;
use crate::wire::{read_version_and_type, Message, WireHeader};
use crate::x3dh::SessionId;

/// Length of the signed part of a request: everything before the signature.
const SIGNED_LENGTH: usize = DECRYPTION_ERROR_LENGTH - SIGNATURE_LENGTH;

/// What [`SessionRecord::handle_decryption_error`] did with a valid request.
#[non_exhaustive]
#[must_use = "a reset leaves the record without a sending session: store it and initiate"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetOutcome {
    /// The sending session was archived (it still decrypts, but never sends again). Store
    /// the record, fetch the contact's bundle and [`SessionRecord::initiate`].
    Reset(SessionId),
    /// The request is not newer than the last one acted on (a replay, or reordered): nothing
    /// changed.
    Stale,
    /// A request was acted on less than
    /// [`RecordLimits::reset_interval`](super::RecordLimits::reset_interval) ago: nothing
    /// changed.
    RateLimited,
    /// The request names a session other than the sending one (already replaced; a request
    /// naming no session: made before the sending session entered the record), or the
    /// record has no sending session: nothing changed.
    NotSending,
}

/// A parsed request (SPEC.md §6.8).
struct Request {
    requester: IdentityKey,
    recipient: IdentityKey,
    session_id: Option<[u8; 32]>,
    ratchet_key: Option<[u8; 32]>,
    time: u64,
    signature: [u8; SIGNATURE_LENGTH],
    /// The bytes the signature covers, after the label.
    signed: [u8; SIGNED_LENGTH],
}

impl Request {
    /// Strict parsing: size, version, type, then the fields in order, each key validated.
    fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, WIRE_VERSION, TYPE_DECRYPTION_ERROR)?;
        let requester = IdentityKey::from_bytes(&r.array()?)?;
        let recipient = IdentityKey::from_bytes(&r.array()?)?;
        let session_id = r.optional::<32>()?;
        let ratchet_key = r.optional::<PUBLIC_KEY_LENGTH>()?;
        if let Some(key) = &ratchet_key {
            x25519_public_from_bytes(key)?;
        }
        let time = r.u64()?;
        let signature = r.array()?;
        r.finish()?;
        // Exactly DECRYPTION_ERROR_LENGTH bytes were read.
        let signed = bytes
            .get(..SIGNED_LENGTH)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::Internal)?;
        Ok(Request {
            requester,
            recipient,
            session_id,
            ratchet_key,
            time,
            signature,
            signed,
        })
    }

    /// `verify_strict(IK_requester, label || signed part, signature)`.
    fn verify(&self) -> Result<(), Error> {
        let message = signed_message(&self.signed);
        self.requester
            .verifying_key()
            .verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| Error::InvalidSignature)
    }
}

/// `DECRYPTION_ERROR_LABEL || signed part`, what the signature covers.
fn signed_message(signed: &[u8; SIGNED_LENGTH]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DECRYPTION_ERROR_LABEL.len() + SIGNED_LENGTH);
    message.put(DECRYPTION_ERROR_LABEL);
    message.put(signed);
    message
}

impl SessionRecord {
    /// A decryption-error request (SPEC.md §6.8) for `failed`, a message from this record's
    /// contact that no session could decrypt: send it to the contact, whose record then
    /// archives the session the message came from and starts a new one. Signed with
    /// `device`'s identity key; `now` is the app's time, which the contact's record uses to
    /// refuse replays (send at most one request per contact per
    /// [`RecordLimits::reset_interval`](super::RecordLimits::reset_interval)).
    ///
    /// The request names the failed message's session id (an initial message) or ratchet
    /// key (a cleartext header), so that it resets only that session; a header-encrypted
    /// normal message names neither, and the request then resets whichever session the
    /// contact sends on. The record does not change.
    ///
    /// # Errors
    /// [`Error::WrongRecord`] for a device of another identity; parse errors of `failed`
    /// (a message that does not parse is no evidence of lost state: drop it);
    /// [`Error::IdentityMismatch`] for an initial message from another identity.
    pub fn decryption_error(
        &self,
        device: &LocalDevice,
        failed: &[u8],
        now: u64,
    ) -> Result<Vec<u8>, Error> {
        self.check_device(device)?;
        let (session_id, header) = match Message::parse(failed)? {
            Message::Normal(m) => (None, m.header),
            Message::Initial(m) => {
                if m.identity_key() != &self.remote {
                    return Err(Error::IdentityMismatch);
                }
                (Some(m.session_id(&self.local)), m.inner.header)
            }
        };
        let ratchet_key = match header {
            WireHeader::Plain(h) => Some(h.dh),
            WireHeader::Encrypted { .. } => None,
        };
        let mut out = Vec::with_capacity(DECRYPTION_ERROR_LENGTH);
        out.put_u8(WIRE_VERSION);
        out.put_u8(TYPE_DECRYPTION_ERROR);
        out.put(self.local.as_bytes());
        out.put(self.remote.as_bytes());
        out.put_optional(session_id.as_ref().map(|id| &id.as_bytes()[..]), 32);
        out.put_optional(ratchet_key.as_ref().map(|k| &k[..]), PUBLIC_KEY_LENGTH);
        out.put_u64(now);
        let signed: &[u8; SIGNED_LENGTH] =
            out.as_slice().try_into().map_err(|_| Error::Internal)?;
        let signature = device.identity_pair().sign(&signed_message(signed));
        out.put(&signature);
        Ok(out)
    }

    /// Acts on a decryption-error request from the contact (SPEC.md §6.8): if it is valid,
    /// newer than the last one acted on, outside the rate limit, and names the sending
    /// session (or, from a header-encrypted session, names none and was made no earlier
    /// than the sending session entered the record), the sending session is
    /// archived as retired ([`ResetOutcome::Reset`]); the app then initiates a new one.
    /// `now` is the app's time.
    ///
    /// # Errors
    /// Parse errors ([`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`],
    /// [`Error::InvalidPublicKey`]); [`Error::WrongRecord`] for a request addressed to
    /// another identity; [`Error::IdentityMismatch`] for a request from another identity
    /// than the record's contact; [`Error::InvalidSignature`]. The record is then unchanged.
    pub fn handle_decryption_error(
        &mut self,
        request: &[u8],
        now: u64,
    ) -> Result<ResetOutcome, Error> {
        let request = Request::parse(request)?;
        if request.recipient != self.local {
            return Err(Error::WrongRecord);
        }
        if request.requester != self.remote {
            return Err(Error::IdentityMismatch);
        }
        request.verify()?;
        if let Some(mark) = self.last_reset {
            if request.time <= mark.request_time {
                return Ok(ResetOutcome::Stale);
            }
            // A clock that went back counts as no time elapsed.
            if now.saturating_sub(mark.at) < self.limits.reset_interval {
                return Ok(ResetOutcome::RateLimited);
            }
        }
        let Some(sending) = self.sending.as_deref() else {
            return Ok(ResetOutcome::NotSending);
        };
        let named = match (request.session_id, request.ratchet_key) {
            (Some(id), _) => id == *sending.id.as_bytes(),
            (None, Some(key)) => key == sending.session.sending_ratchet_key(),
            // Naming nothing, it can only be told apart by its time: a request made before
            // the sending session entered the record is about an earlier one.
            (None, None) => request.time >= sending.created,
        };
        if !named {
            return Ok(ResetOutcome::NotSending);
        }
        let id = self.archive_sending_session().ok_or(Error::Internal)?;
        self.last_reset = Some(ResetMark {
            request_time: request.time,
            at: now,
        });
        Ok(ResetOutcome::Reset(id))
    }
}
