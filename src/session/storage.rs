//! The storage encoding of a session (SPEC.md §7.1, types `0x20`, `0x25`, `0x28`): the
//! session's own fields (the state flags, the remote identity, `EK_A`, the initiator's
//! pending fields, the padding byte), around the ratchet state's part
//! ([`RatchetState::write`], with the limits, skipped keys and header keys).
//!
//! Nothing is stored twice or stored that can be derived: the local identity key is the
//! loading device's own (the caller passes it), the `DHs` public key is recomputed, and
//! absent fields (chain keys, the pending fields) take no bytes, their presence being bits
//! of the one flags byte. A session between two established chains is 252 bytes.
//!
//! Loading checks each field as it is read, in the order of SPEC.md §7.1's table; a
//! combination the session's types cannot hold is refused with the error SPEC.md §10.1
//! names for it. (Flag combinations the API never produces but the types can hold, such
//! as an awaiting initiator with a receiving chain, load as stored: SPEC.md §7.1.)

use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{InitiatorPhase, Origin, PendingInitial, Role, Session};
use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::KEM_CIPHERTEXT_LENGTH;
use crate::format::{
    PQ_PENDING_LENGTH, SESSION_BASE_LENGTH, SESSION_FIXED_LENGTH, STORAGE_VERSION, TYPE_SESSION,
    TYPE_SESSION_HE, TYPE_SESSION_PQ,
};
use crate::keys::{x25519_public_from_bytes, IdentityKey};
use crate::padding::Padding;
use crate::ratchet::state::{Limits, RATCHET_FIXED_LENGTH};
use crate::ratchet::RatchetState;
use crate::seal::{stored_reader, write_stored_header};
use crate::wire::read_version_and_type_of;

/// The session types this build reads.
#[cfg(feature = "pqxdh")]
const SESSION_TYPES: &[u8] = &[TYPE_SESSION, TYPE_SESSION_PQ, TYPE_SESSION_HE];
#[cfg(not(feature = "pqxdh"))]
const SESSION_TYPES: &[u8] = &[TYPE_SESSION, TYPE_SESSION_HE];

/// Flags byte of a type `0x28` session: agreed with PQXDH.
const FLAG_POST_QUANTUM: u8 = 0x01;
/// Flags byte of a type `0x28` session: header-encrypted (always set).
const FLAG_HEADER_ENCRYPTED: u8 = 0x02;

/// State flags (byte 2, SPEC.md §7.1): the responder's session (clear: the initiator's).
const STATE_RESPONDER: u8 = 0x01;
/// State flags: an initiator awaiting its first reply; the pending fields follow `EK_A`.
const STATE_AWAITING_REPLY: u8 = 0x02;
/// State flags: the pending fields name a one-time prekey (only with
/// [`STATE_AWAITING_REPLY`]).
const STATE_ONE_TIME_PREKEY: u8 = 0x04;
/// State flags: `CKs` is stored.
const STATE_SENDING_CHAIN: u8 = 0x08;
/// State flags: `CKr` is stored.
const STATE_RECEIVING_CHAIN: u8 = 0x10;
const STATE_KNOWN: u8 = STATE_RESPONDER
    | STATE_AWAITING_REPLY
    | STATE_ONE_TIME_PREKEY
    | STATE_SENDING_CHAIN
    | STATE_RECEIVING_CHAIN;

/// Length of the session's fields before the pending fields: version, type, the state
/// flags, the remote identity key and `EK_A`.
const SESSION_HEAD_LENGTH: usize = 2 + 1 + 32 * 2;
// SPEC.md §7.1: a stored session with no skipped keys, no pending fields and no chain keys
// is its head, the limits, the padding byte and the ratchet state.
const _: () = assert!(SESSION_BASE_LENGTH == SESSION_HEAD_LENGTH + 8 + 1 + RATCHET_FIXED_LENGTH);
const _: () = assert!(SESSION_FIXED_LENGTH == SESSION_BASE_LENGTH + 2 * 32 + PENDING_LENGTH);

/// The pending fields of a classical initiator awaiting its reply, at their longest: the
/// signed prekey id and the one-time prekey id.
const PENDING_LENGTH: usize = 8 + 8;

impl Session {
    /// The storage encoding of the whole session (SPEC.md §7.1), including its skipped-key
    /// store and limits. Store it after every successful `encrypt` or `decrypt`.
    ///
    /// The local identity key is not in it: load with [`Session::from_bytes`] and the same
    /// device's identity key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let pending = self.origin.pending();
        let header_encrypted = self.ratchet.is_header_encrypted();
        let len = SESSION_HEAD_LENGTH
            + pending.map_or(0, PendingInitial::stored_length)
            + 8
            + 1
            + self.ratchet.stored_length()
            + usize::from(header_encrypted);
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let post_quantum = self.origin.is_post_quantum();
        let kind = match (header_encrypted, post_quantum) {
            (true, _) => TYPE_SESSION_HE,
            (false, true) => TYPE_SESSION_PQ,
            (false, false) => TYPE_SESSION,
        };
        write_stored_header(&mut out, kind);
        out.put_u8(self.state_flags());
        if header_encrypted {
            let pq = if post_quantum { FLAG_POST_QUANTUM } else { 0 };
            out.put_u8(FLAG_HEADER_ENCRYPTED | pq);
        }
        out.put(self.remote_identity.as_bytes());
        out.put(&self.base_key);
        if let Some(pending) = pending {
            pending.write(&mut out);
        }
        self.ratchet.limits().write(&mut out);
        out.put_u8(self.padding.to_byte());
        self.ratchet.write(&mut out);
        debug_assert_eq!(out.len(), len);
        out
    }

    /// The state flags byte (SPEC.md §7.1): role, pending fields, stored chain keys.
    fn state_flags(&self) -> u8 {
        let mut flags = 0;
        if self.origin.role() == Role::Responder {
            flags |= STATE_RESPONDER;
        }
        if let Some(pending) = self.origin.pending() {
            flags |= STATE_AWAITING_REPLY;
            if pending.one_time_prekey_id.is_some() {
                flags |= STATE_ONE_TIME_PREKEY;
            }
        }
        let (sending, receiving) = self.ratchet.stored_chains();
        if sending {
            flags |= STATE_SENDING_CHAIN;
        }
        if receiving {
            flags |= STATE_RECEIVING_CHAIN;
        }
        flags
    }

    /// Loads a session stored by [`Session::to_bytes`], validating every field (SPEC.md
    /// §7.1). `local` is the identity key of the device loading it, the one the session
    /// was agreed with: the stored form does not repeat it. Another key is not detected
    /// here (it is not stored to compare with); such a session's messages fail to
    /// authenticate on both sides, as its associated data differs from the peer's.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`]
    /// (including a stored remote identity equal to `local`), [`Error::InvalidPublicKey`]
    /// or [`Error::InvalidLimits`].
    pub fn from_bytes(bytes: &[u8], local: &IdentityKey) -> Result<Self, Error> {
        Self::load(bytes, local, None)
    }

    /// Loads a session stored inside a session record (SPEC.md §7.8), whose two identity
    /// keys the record has read and validated: the session's stored remote identity key
    /// must be the record's, byte for byte ([`Error::InvalidEncoding`] otherwise), and is
    /// not validated a second time.
    pub(crate) fn from_record_bytes(
        bytes: &[u8],
        local: &IdentityKey,
        remote: &IdentityKey,
    ) -> Result<Self, Error> {
        Self::load(bytes, local, Some(remote))
    }

    fn load(
        bytes: &[u8],
        local: &IdentityKey,
        known_remote: Option<&IdentityKey>,
    ) -> Result<Self, Error> {
        let mut r = stored_reader(bytes)?;
        let kind = read_version_and_type_of(&mut r, STORAGE_VERSION, SESSION_TYPES)?;
        let state = r.u8()?;
        let role = read_role(state)?;
        let (post_quantum, header_encrypted) = read_flags(&mut r, kind)?;
        let remote_bytes: [u8; 32] = r.array()?;
        let remote_identity = match known_remote {
            Some(remote) if remote.as_bytes() == &remote_bytes => *remote,
            Some(_) => return Err(Error::InvalidEncoding),
            None => IdentityKey::from_bytes(&remote_bytes)?,
        };
        if *local == remote_identity {
            return Err(Error::InvalidEncoding);
        }
        let base_key: [u8; 32] = r.array()?;
        x25519_public_from_bytes(&base_key)?;
        let pending = read_pending(&mut r, state, post_quantum)?;
        let origin = Origin::from_parts(role, post_quantum, pending)?;
        let limits = Limits::read(&mut r)?;
        let padding = Padding::from_byte(r.u8()?)?;
        let chains = (
            state & STATE_SENDING_CHAIN != 0,
            state & STATE_RECEIVING_CHAIN != 0,
        );
        let ratchet = RatchetState::read(&mut r, limits, chains, header_encrypted)?;
        r.finish()?;
        Ok(Session {
            ratchet,
            origin,
            local_identity: *local,
            remote_identity,
            base_key,
            padding,
        })
    }
}

impl Origin {
    /// The stored role, agreement and pending fields: only an initiator awaits a reply
    /// ([`Error::InvalidEncoding`] otherwise); a pending PQXDH initiator's KEM fields were
    /// read with the pending fields, so their presence is its agreement.
    fn from_parts(
        role: Role,
        post_quantum: bool,
        pending: Option<PendingInitial>,
    ) -> Result<Self, Error> {
        match (role, pending) {
            (Role::Initiator, Some(pending)) => {
                Ok(Origin::Initiator(InitiatorPhase::AwaitingReply(pending)))
            }
            (Role::Initiator, None) => {
                Ok(Origin::Initiator(InitiatorPhase::Replied { post_quantum }))
            }
            (Role::Responder, None) => Ok(Origin::Responder { post_quantum }),
            (Role::Responder, Some(_)) => Err(Error::InvalidEncoding),
        }
    }
}

/// The role from the state flags, after refusing the bits no session sets: an unknown
/// bit, and a one-time prekey without pending fields. (A responder with pending fields is
/// refused by [`Origin::from_parts`].)
fn read_role(state: u8) -> Result<Role, Error> {
    if state & !STATE_KNOWN != 0
        || (state & STATE_ONE_TIME_PREKEY != 0 && state & STATE_AWAITING_REPLY == 0)
    {
        return Err(Error::InvalidEncoding);
    }
    Ok(if state & STATE_RESPONDER != 0 {
        Role::Responder
    } else {
        Role::Initiator
    })
}

/// `(post_quantum, header_encrypted)` from the type and, for type `0x28`, the flags byte.
fn read_flags(r: &mut Reader<'_>, kind: u8) -> Result<(bool, bool), Error> {
    match kind {
        TYPE_SESSION_HE => match r.u8()? {
            FLAG_HEADER_ENCRYPTED => Ok((false, true)),
            #[cfg(feature = "pqxdh")]
            f if f == FLAG_HEADER_ENCRYPTED | FLAG_POST_QUANTUM => Ok((true, true)),
            _ => Err(Error::InvalidEncoding),
        },
        TYPE_SESSION_PQ => Ok((true, false)),
        _ => Ok((false, false)),
    }
}

impl PendingInitial {
    /// Length of the pending fields [`PendingInitial::write`] writes.
    fn stored_length(&self) -> usize {
        let one_time = if self.one_time_prekey_id.is_some() {
            8
        } else {
            0
        };
        let post_quantum = if self.is_post_quantum() {
            PQ_PENDING_LENGTH
        } else {
            0
        };
        8 + one_time + post_quantum
    }

    /// The signed prekey id, the one-time prekey id if there is one (the state flags say),
    /// and for PQXDH the `PQPK` id and KEM ciphertext.
    fn write(&self, out: &mut Vec<u8>) {
        out.put_u64(self.signed_prekey_id.to_u64());
        if let Some(id) = self.one_time_prekey_id {
            out.put_u64(id.to_u64());
        }
        #[cfg(feature = "pqxdh")]
        if let Some((id, ciphertext)) = &self.post_quantum {
            out.put_u64(id.to_u64());
            out.put(&ciphertext[..]);
        }
    }
}

fn read_pending(
    r: &mut Reader<'_>,
    state: u8,
    post_quantum: bool,
) -> Result<Option<PendingInitial>, Error> {
    if state & STATE_AWAITING_REPLY == 0 {
        return Ok(None);
    }
    let signed_prekey_id = SignedPreKeyId::from_u64(r.u64()?);
    let one_time_prekey_id = if state & STATE_ONE_TIME_PREKEY != 0 {
        Some(OneTimePreKeyId::from_u64(r.u64()?))
    } else {
        None
    };
    // A PQXDH session awaiting its reply also repeats its KEM ciphertext.
    #[cfg(feature = "pqxdh")]
    let post_quantum = if post_quantum {
        let id = crate::ids::PqPreKeyId::from_u64(r.u64()?);
        let ciphertext = alloc::boxed::Box::new(r.array::<KEM_CIPHERTEXT_LENGTH>()?);
        Some((id, ciphertext))
    } else {
        None
    };
    #[cfg(not(feature = "pqxdh"))]
    let _ = post_quantum;
    Ok(Some(PendingInitial {
        signed_prekey_id,
        one_time_prekey_id,
        #[cfg(feature = "pqxdh")]
        post_quantum,
    }))
}
