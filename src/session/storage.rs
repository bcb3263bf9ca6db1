//! The storage encoding of a session (SPEC.md §7.1, types `0x20`, `0x25`, `0x28`): the
//! session's own fields (role, flags, identities, `EK_A`, the initiator's pending fields,
//! the padding byte), around the ratchet state's part ([`RatchetState::write`], with the
//! limits, skipped keys and header keys).
//!
//! Loading checks each field as it is read, in the order of SPEC.md §7.1's table; a
//! combination the session's types cannot hold is refused with the error SPEC.md §10.1
//! names for it.

use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{InitiatorPhase, Origin, PendingInitial, Role, Session};
use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::KEM_CIPHERTEXT_LENGTH;
use crate::format::{
    PQ_PENDING_LENGTH, SESSION_FIXED_LENGTH, STORAGE_VERSION, TYPE_SESSION, TYPE_SESSION_HE,
    TYPE_SESSION_PQ,
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

const ROLE_INITIATOR: u8 = 0x01;
const ROLE_RESPONDER: u8 = 0x02;

/// Length of the session's fields before the limits: version, type, role, the identities,
/// `EK_A`, the pending flag, signed prekey id and optional one-time prekey id.
const SESSION_HEAD_LENGTH: usize = 2 + 1 + 32 * 3 + (1 + 8 + 1 + 8);
// SPEC.md §7.1: a stored session with no skipped keys is its head, the limits, the padding
// byte and the ratchet state.
const _: () = assert!(SESSION_FIXED_LENGTH == SESSION_HEAD_LENGTH + 8 + 1 + RATCHET_FIXED_LENGTH);

impl Session {
    /// The storage encoding of the whole session (SPEC.md §7.1), including its skipped-key
    /// store and limits. Store it after every successful `encrypt` or `decrypt`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let pending = self.origin.pending();
        let header_encrypted = self.ratchet.is_header_encrypted();
        let len = SESSION_HEAD_LENGTH
            + 8
            + 1
            + self.ratchet.stored_length()
            + usize::from(header_encrypted)
            + if pending.is_some_and(PendingInitial::is_post_quantum) {
                PQ_PENDING_LENGTH
            } else {
                0
            };
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let post_quantum = self.origin.is_post_quantum();
        let kind = match (header_encrypted, post_quantum) {
            (true, _) => TYPE_SESSION_HE,
            (false, true) => TYPE_SESSION_PQ,
            (false, false) => TYPE_SESSION,
        };
        write_stored_header(&mut out, kind);
        out.put_u8(match self.origin.role() {
            Role::Initiator => ROLE_INITIATOR,
            Role::Responder => ROLE_RESPONDER,
        });
        if header_encrypted {
            let pq = if post_quantum { FLAG_POST_QUANTUM } else { 0 };
            out.put_u8(FLAG_HEADER_ENCRYPTED | pq);
        }
        out.put(self.local_identity.as_bytes());
        out.put(self.remote_identity.as_bytes());
        out.put(&self.base_key);
        write_pending(&mut out, pending);
        self.ratchet.limits().write(&mut out);
        out.put_u8(self.padding.to_byte());
        self.ratchet.write(&mut out);
        out
    }

    /// Loads a stored session, validating every field (SPEC.md §7.1).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`],
    /// [`Error::InvalidPublicKey`] or [`Error::InvalidLimits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = stored_reader(bytes)?;
        let kind = read_version_and_type_of(&mut r, STORAGE_VERSION, SESSION_TYPES)?;
        let role = read_role(&mut r)?;
        let (post_quantum, header_encrypted) = read_flags(&mut r, kind)?;
        let local_identity = IdentityKey::from_bytes(&r.array()?)?;
        let remote_identity = IdentityKey::from_bytes(&r.array()?)?;
        if local_identity == remote_identity {
            return Err(Error::InvalidEncoding);
        }
        let base_key: [u8; 32] = r.array()?;
        x25519_public_from_bytes(&base_key)?;
        let pending = read_pending(&mut r, post_quantum)?;
        let origin = Origin::from_parts(role, post_quantum, pending)?;
        let limits = Limits::read(&mut r)?;
        let padding = Padding::from_byte(r.u8()?)?;
        let ratchet = RatchetState::read(&mut r, limits, header_encrypted)?;
        r.finish()?;
        Ok(Session {
            ratchet,
            origin,
            local_identity,
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

fn read_role(r: &mut Reader<'_>) -> Result<Role, Error> {
    match r.u8()? {
        ROLE_INITIATOR => Ok(Role::Initiator),
        ROLE_RESPONDER => Ok(Role::Responder),
        _ => Err(Error::InvalidEncoding),
    }
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

/// The awaiting-reply flag, the ids, and for PQXDH the `PQPK` id and KEM ciphertext.
fn write_pending(out: &mut Vec<u8>, pending: Option<&PendingInitial>) {
    let Some(p) = pending else {
        out.put_optional(None, 8 + 1 + 8);
        return;
    };
    out.put_u8(1);
    out.put_u64(p.signed_prekey_id.to_u64());
    let one_time = p.one_time_prekey_id.map(|id| id.to_u64().to_be_bytes());
    out.put_optional(one_time.as_ref().map(|b| &b[..]), 8);
    #[cfg(feature = "pqxdh")]
    if let Some((id, ciphertext)) = &p.post_quantum {
        out.put_u64(id.to_u64());
        out.put(&ciphertext[..]);
    }
}

fn read_pending(r: &mut Reader<'_>, post_quantum: bool) -> Result<Option<PendingInitial>, Error> {
    let Some(p) = r.optional::<17>()? else {
        return Ok(None);
    };
    let mut pr = Reader::new(&p);
    let signed_prekey_id = SignedPreKeyId::from_u64(pr.u64()?);
    let one_time_prekey_id = pr
        .optional::<8>()?
        .map(|b| OneTimePreKeyId::from_u64(u64::from_be_bytes(b)));
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
