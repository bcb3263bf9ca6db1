//! Session creation (SPEC.md §6.1-§6.2): the initiator from a prekey bundle (X3DH / PQXDH
//! §3.3, Double Ratchet §3.3 `RatchetInitAlice`), the responder from an initial message
//! (X3DH / PQXDH §3.4, `RatchetInitBob`, then the first decryption).

use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use super::{Aad, InitiatorPhase, Origin, PendingInitial, Session, SessionOptions};
use crate::error::Error;
use crate::ids::{OneTimePreKeyId, PqPreKeyId, SignedPreKeyId};
use crate::keys::{
    x25519_public_from_bytes, IdentityKeyPair, OneTimePreKey, RatchetKeyPair, SignedPreKey,
};
use crate::padding::Padding;
#[cfg(feature = "pqxdh")]
use crate::pq::PqPreKey;
use crate::prekeys::{ReplayRecord, StoreNotice};
use crate::ratchet::state::Limits;
use crate::ratchet::{RatchetState, ResponderStart};
use crate::wire::{InitialFields, InitialMessage, Message, WireHeader};
use crate::x3dh::{self, PreKeyBundle};

/// What [`Session::respond`] returns: the new session, the first plaintext, and the
/// one-time prekey the initiator used, which the app must now delete.
#[non_exhaustive]
#[must_use = "the session must be stored and the plaintext delivered"]
pub struct Accepted {
    /// The responder's new session.
    pub session: Session,
    /// The plaintext of the initial message.
    pub plaintext: Vec<u8>,
    /// The id of the one-time prekey consumed by this session, if any.
    /// [`LocalDevice::accept`](crate::LocalDevice::accept) has deleted it; an app that
    /// keeps its prekeys itself ([`Session::respond`]) must delete it so it is never used
    /// again. The server dropped it when it handed it out (SPEC.md §8.5).
    pub used_one_time_prekey: Option<OneTimePreKeyId>,
    /// The id of the post-quantum prekey the initiator used (PQXDH only). A one-time one
    /// has been deleted by [`LocalDevice::accept`](crate::LocalDevice::accept), and the
    /// server dropped it when it handed it out (SPEC.md §8.5); a last-resort one stays.
    pub used_post_quantum_prekey: Option<PqPreKeyId>,
    /// Set by [`LocalDevice::accept`](crate::LocalDevice::accept) when the store needs the
    /// app to act (publish a new signed prekey, or rotate); always `None` from
    /// [`Session::respond`].
    pub notice: Option<StoreNotice>,
    /// The replay record [`LocalDevice::accept`](crate::LocalDevice::accept) added (a
    /// session that consumed no one-time prekey), for an app that journals records instead
    /// of rewriting the whole store after every accept (SPEC.md §8.4).
    pub replay_record: Option<ReplayRecord>,
    /// Whether the accept changed the store beyond adding [`Accepted::replay_record`] (it
    /// deleted a one-time prekey or switched signed prekeys): a journaling app must then
    /// write the whole store. Always `false` from [`Session::respond`].
    pub store_keys_changed: bool,
}

impl core::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("used_one_time_prekey", &self.used_one_time_prekey)
            .field("used_post_quantum_prekey", &self.used_post_quantum_prekey)
            .field("notice", &self.notice)
            .field("replay_record", &self.replay_record)
            .field("store_keys_changed", &self.store_keys_changed)
            .finish_non_exhaustive()
    }
}

/// The responder's private keys an initial message names, found by the caller.
pub(crate) struct ResponderKeys<'k> {
    pub(crate) signed_prekey: &'k SignedPreKey,
    pub(crate) one_time_prekey: Option<&'k OneTimePreKey>,
    #[cfg(feature = "pqxdh")]
    pub(crate) post_quantum_prekey: Option<&'k PqPreKey>,
}

impl Session {
    /// Starts a session with the owner of `bundle` (X3DH §3.3 or, for a bundle with a
    /// post-quantum prekey, PQXDH §3.3; Double Ratchet §3.3) under `options`
    /// ([`SessionOptions::default()`] pins nothing and accepts classical X3DH).
    ///
    /// The policies are checked first, in this order, before the bundle is otherwise used:
    /// the pinned identity ([`Error::IdentityMismatch`]: warn the user that the contact's key
    /// changed, or that someone, for example the server, substituted it), PQXDH if required
    /// ([`Error::PostQuantumRequired`]), the limits ([`Error::InvalidLimits`]). Then the
    /// bundle's signatures are verified. The returned session sends initial messages until
    /// it decrypts the peer's first reply.
    ///
    /// # Errors
    /// The policy errors above, [`Error::WrongSession`] for the local identity's own
    /// bundle, [`Error::InvalidSignature`] for a bundle whose signature does not verify,
    /// [`Error::NonContributoryKey`] and [`Error::RandomnessUnavailable`].
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        options: &SessionOptions,
        rng: &mut R,
    ) -> Result<Session, Error> {
        let header_encrypted = options.wants_header_encryption();
        let limits = options.check(
            bundle.identity_key(),
            bundle.is_post_quantum(),
            header_encrypted,
        )?;
        if bundle.identity_key() == identity.public_key() {
            return Err(Error::WrongSession);
        }
        let initiation = x3dh::initiate(identity, bundle, rng)?;
        let dhs = RatchetKeyPair::generate(rng)?;
        let spk = x25519_public_from_bytes(&bundle.signed_prekey_bytes())?;
        let sk = initiation.agreement.sk;
        let ratchet = if header_encrypted {
            RatchetState::init_initiator_he(sk, dhs, spk, limits)?
        } else {
            RatchetState::init_initiator(sk, dhs, spk, limits)?
        };
        let pending = PendingInitial {
            signed_prekey_id: bundle.signed_prekey_id(),
            one_time_prekey_id: bundle.one_time_prekey_id(),
            #[cfg(feature = "pqxdh")]
            post_quantum: initiation.post_quantum,
        };
        Ok(Session {
            ratchet,
            origin: Origin::Initiator(InitiatorPhase::AwaitingReply(pending)),
            local_identity: *identity.public_key(),
            remote_identity: *bundle.identity_key(),
            base_key: initiation.base_key.to_bytes(),
            padding: options.padding_policy(),
        })
    }

    /// Low level: accepts a session from a classical initial message (X3DH §3.4) with prekeys
    /// the caller keeps itself. Prefer [`LocalDevice::accept`](crate::LocalDevice::accept),
    /// which owns the prekeys, handles PQXDH, deletes consumed one-time prekeys and refuses
    /// replays; this call does none of that.
    ///
    /// `signed_prekey` and `one_time_prekey` look up the responder's prekeys by the ids the
    /// message names; returning `None` rejects the message. `options` apply as in
    /// `LocalDevice::accept` (pin, header encryption required, limits, padding); a PQXDH
    /// message is [`Error::UnknownPqPreKey`]. On success the caller must delete the one-time
    /// prekey reported in [`Accepted::used_one_time_prekey`], so that a replayed initial
    /// message fails with [`Error::UnknownOneTimePreKey`] instead of creating a second
    /// session; a message that used no one-time prekey can be replayed unless the caller
    /// records its base key.
    ///
    /// To decrypt a later initial message of a session that already exists, call
    /// [`Session::decrypt`] on that session instead: route by
    /// [`InitialMessage::session_id`](crate::InitialMessage::session_id).
    ///
    /// # Errors
    /// Any parse error, [`Error::NotInitialMessage`], the policy errors of
    /// [`SessionOptions`], [`Error::UnknownPqPreKey`] (a PQXDH message),
    /// [`Error::UnknownSignedPreKey`], [`Error::UnknownOneTimePreKey`],
    /// [`Error::WrongSession`] (a message from the local identity),
    /// [`Error::NonContributoryKey`], or any error of [`Session::decrypt`].
    pub fn respond<'k>(
        identity: &IdentityKeyPair,
        signed_prekey: impl FnOnce(SignedPreKeyId) -> Option<&'k SignedPreKey>,
        one_time_prekey: impl FnOnce(OneTimePreKeyId) -> Option<&'k OneTimePreKey>,
        message: &[u8],
        options: &SessionOptions,
    ) -> Result<Accepted, Error> {
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return Err(Error::NotInitialMessage),
        };
        let fields = &initial.fields;
        let limits = options.check(
            &fields.identity,
            initial.is_post_quantum(),
            initial.is_header_encrypted(),
        )?;
        if let Some((id, _)) = fields.post_quantum {
            return Err(Error::UnknownPqPreKey(id));
        }
        let keys = ResponderKeys {
            signed_prekey: signed_prekey(fields.signed_prekey_id)
                .ok_or(Error::UnknownSignedPreKey(fields.signed_prekey_id))?,
            one_time_prekey: match fields.one_time_prekey_id {
                Some(id) => Some(one_time_prekey(id).ok_or(Error::UnknownOneTimePreKey(id))?),
                None => None,
            },
            #[cfg(feature = "pqxdh")]
            post_quantum_prekey: None,
        };
        Self::accept_initial(identity, &keys, &initial, limits, options.padding_policy())
    }

    /// X3DH §3.4 / PQXDH §3.4 with the keys already looked up, then the first decryption.
    /// Nothing outside the returned value is changed. Plan: the checks before any DH or KEM
    /// work, then the key agreement into a [`ResponderStart`]; commit: the first decryption
    /// turns it into the session.
    pub(crate) fn accept_initial(
        identity: &IdentityKeyPair,
        keys: &ResponderKeys<'_>,
        initial: &InitialMessage<'_>,
        limits: Limits,
        padding: Padding,
    ) -> Result<Accepted, Error> {
        check_initial(identity, initial, limits)?;
        let start = agree(identity, keys, &initial.fields, limits)?;
        let (ratchet, plaintext) = receive_first(identity, start, initial)?;
        let fields = &initial.fields;
        let session = Session {
            ratchet,
            origin: Origin::Responder {
                post_quantum: fields.post_quantum.is_some(),
            },
            local_identity: *identity.public_key(),
            remote_identity: fields.identity,
            base_key: fields.base_key,
            padding,
        };
        Ok(Accepted {
            session,
            plaintext,
            used_one_time_prekey: fields.one_time_prekey_id,
            used_post_quantum_prekey: fields.post_quantum.map(|(id, _)| id),
            notice: None,
            replay_record: None,
            store_keys_changed: false,
        })
    }
}

/// The checks on an initial message before any DH or KEM work: not from the local
/// identity, and a cleartext header's counter bounded (SPEC.md §4.4: a new session's first
/// chain may skip at most `max_skip` keys). An encrypted header cannot be read before the
/// key agreement that yields its key.
fn check_initial(
    identity: &IdentityKeyPair,
    initial: &InitialMessage<'_>,
    limits: Limits,
) -> Result<(), Error> {
    if initial.fields.identity == *identity.public_key() {
        return Err(Error::WrongSession);
    }
    if let WireHeader::Plain(header) = &initial.inner.header {
        if header.n > limits.max_skip || header.n == u32::MAX {
            return Err(Error::TooFarAhead);
        }
    }
    Ok(())
}

/// X3DH §3.4 / PQXDH §3.4, responder side, then §3.3 `RatchetInitBob`: `DHs` is the signed
/// prekey pair, `RK = SK`.
fn agree(
    identity: &IdentityKeyPair,
    keys: &ResponderKeys<'_>,
    fields: &InitialFields<'_>,
    limits: Limits,
) -> Result<ResponderStart, Error> {
    let base_key = x25519_public_from_bytes(&fields.base_key)?;
    #[cfg(feature = "pqxdh")]
    let kem_secret = match (fields.post_quantum, keys.post_quantum_prekey) {
        (Some((_, ciphertext)), Some(key)) => Some(key.decapsulate(ciphertext)),
        (Some((id, _)), None) => return Err(Error::UnknownPqPreKey(id)),
        (None, None) => None,
        // The caller looks a post-quantum prekey up only for a PQXDH message; the store
        // decides what was consumed from the keys it passed, so a mismatch is a bug.
        (None, Some(_)) => return Err(Error::Internal),
    };
    #[cfg(not(feature = "pqxdh"))]
    let kem_secret: Option<zeroize::Zeroizing<[u8; 32]>> = None;
    let agreement = x3dh::respond(
        identity,
        keys.signed_prekey,
        keys.one_time_prekey,
        &fields.identity,
        &base_key,
        kem_secret.as_deref(),
    )?;
    // The signed prekey's public half is known: no base-point multiplication.
    let dhs = RatchetKeyPair::from_parts(
        keys.signed_prekey.secret().clone(),
        x25519_dalek::PublicKey::from(keys.signed_prekey.public_key().to_bytes()),
    );
    Ok(ResponderStart::new(agreement.sk, dhs, limits))
}

/// The initial message's ratchet message, decrypted by the responder's start (SPEC.md
/// §6.2); the session's mode follows the message's.
fn receive_first(
    identity: &IdentityKeyPair,
    start: ResponderStart,
    initial: &InitialMessage<'_>,
) -> Result<(RatchetState, Vec<u8>), Error> {
    let message = &initial.inner;
    // AD = IK_A || IK_B: the initiator's identity first.
    let ad = x3dh::associated_data(&initial.fields.identity, identity.public_key());
    let aad = Aad::new(&ad, message.prefix)?;
    match &message.header {
        WireHeader::Plain(header) => start.receive(header, aad.as_slice(), message.body),
        WireHeader::Encrypted { sealed, aad_len } => start.receive_he(
            sealed,
            aad.header_part(*aad_len)?,
            aad.as_slice(),
            message.body,
        ),
    }
}
