//! The facade (SPEC.md §6): a [`Session`] is created by the initiator from a prekey bundle
//! ([`Session::initiate`]) or by the responder from an initial message
//! ([`Session::respond`]), and then encrypts and decrypts messages.
//!
//! Until the initiator has decrypted a reply, every message it sends is an initial message
//! carrying the X3DH fields, so the loss of the first message does not lose the session
//! (SPEC.md §6.2). The responder's session accepts those later initial messages when they
//! belong to it (same `IK_A` and `EK_A`).

use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use crate::error::Error;
use crate::keys::{
    x25519_public_from_bytes, IdentityKey, IdentityKeyPair, OneTimePreKey, RatchetKeyPair,
    SignedPreKey,
};
use crate::ratchet::kdf::TAG_LENGTH;
use crate::ratchet::state::Limits;
use crate::ratchet::RatchetState;
use crate::wire::{
    write_prefix, InitialFields, Message, NormalMessage, INITIAL_PREFIX_LENGTH, MAX_PLAINTEXT_SIZE,
    NORMAL_PREFIX_LENGTH,
};
use crate::x3dh::{self, PreKeyBundle, SessionId};

/// Which side of the X3DH exchange created the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the session from a prekey bundle ([`Session::initiate`]); "Alice".
    Initiator,
    /// Created the session from an initial message ([`Session::respond`]); "Bob".
    Responder,
}

/// An end-to-end encrypted session with one peer.
///
/// Every method that takes a message either succeeds and updates the session, or returns
/// an [`Error`] and leaves the session exactly as it was.
pub struct Session {
    pub(crate) ratchet: RatchetState,
    pub(crate) role: Role,
    pub(crate) local_identity: IdentityKey,
    pub(crate) remote_identity: IdentityKey,
    /// `EK_A`, the initiator's ephemeral public key.
    pub(crate) base_key: [u8; 32],
    /// The initiator's signed/one-time prekey ids, kept while initial messages are sent.
    pub(crate) pending_initial: Option<(u32, Option<u32>)>,
}

/// What [`Session::respond`] returns: the new session, the first plaintext, and the
/// one-time prekey the initiator used, which the app must now delete.
#[non_exhaustive]
pub struct Accepted {
    /// The responder's new session.
    pub session: Session,
    /// The plaintext of the initial message.
    pub plaintext: Vec<u8>,
    /// The id of the one-time prekey consumed by this session, if any. Delete it from the
    /// prekey store (and the server) so it is never used again.
    pub used_one_time_prekey: Option<u32>,
}

impl core::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("used_one_time_prekey", &self.used_one_time_prekey)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session with the owner of `bundle` (X3DH §3.3, Double Ratchet §3.3).
    ///
    /// The bundle's signature is verified before any other use of it. The returned session
    /// sends initial messages until it decrypts the peer's first reply.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] for a bundle whose signature does not verify,
    /// [`Error::WrongSession`] for the local identity's own bundle,
    /// [`Error::NonContributoryKey`] and [`Error::RandomnessUnavailable`].
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        rng: &mut R,
    ) -> Result<Session, Error> {
        if bundle.identity_key() == identity.public_key() {
            return Err(Error::WrongSession);
        }
        let (agreement, base_key) = x3dh::initiate(identity, bundle, rng)?;
        let dhs = RatchetKeyPair::generate(rng)?;
        let spk = x25519_public_from_bytes(&bundle.signed_prekey_bytes())?;
        let ratchet = RatchetState::init_initiator(agreement.sk, dhs, spk)?;
        Ok(Session {
            ratchet,
            role: Role::Initiator,
            local_identity: *identity.public_key(),
            remote_identity: *bundle.identity_key(),
            base_key: base_key.to_bytes(),
            pending_initial: Some((bundle.signed_prekey_id(), bundle.one_time_prekey_id())),
        })
    }

    /// [`Session::initiate`] for a contact whose identity key the app has pinned (first
    /// seen, or verified with a [`SafetyNumber`](crate::SafetyNumber)).
    ///
    /// A bundle carrying any other identity key is [`Error::IdentityMismatch`], reported
    /// before the bundle is otherwise used, so the app can warn the user that the contact's
    /// key changed (or that someone, for example the server, substituted it).
    ///
    /// # Errors
    /// [`Error::IdentityMismatch`], then as [`Session::initiate`].
    pub fn initiate_pinned<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        pinned: &IdentityKey,
        rng: &mut R,
    ) -> Result<Session, Error> {
        if bundle.identity_key() != pinned {
            return Err(Error::IdentityMismatch);
        }
        Self::initiate(identity, bundle, rng)
    }

    /// Accepts a session from an initial message (X3DH §3.4), with the default [`Limits`].
    ///
    /// `signed_prekey` and `one_time_prekey` look up the responder's prekeys by the ids the
    /// message names; returning `None` rejects the message. On success the caller must
    /// delete the one-time prekey reported in [`Accepted::used_one_time_prekey`]; an initial
    /// message naming a deleted one-time prekey then fails with
    /// [`Error::UnknownOneTimePreKey`], so a replayed initial message cannot create a
    /// second session.
    ///
    /// To decrypt a later initial message of a session that already exists, call
    /// [`Session::decrypt`] on that session instead: route by
    /// [`InitialMessage::session_id`](crate::InitialMessage::session_id).
    ///
    /// # Errors
    /// Any parse error, [`Error::NotInitialMessage`], [`Error::UnknownSignedPreKey`],
    /// [`Error::UnknownOneTimePreKey`], [`Error::WrongSession`] (a message from the local
    /// identity), [`Error::NonContributoryKey`], or any error of [`Session::decrypt`].
    pub fn respond<'k>(
        identity: &IdentityKeyPair,
        signed_prekey: impl FnOnce(u32) -> Option<&'k SignedPreKey>,
        one_time_prekey: impl FnOnce(u32) -> Option<&'k OneTimePreKey>,
        message: &[u8],
    ) -> Result<Accepted, Error> {
        Self::respond_with_limits(
            identity,
            signed_prekey,
            one_time_prekey,
            message,
            Limits::default(),
        )
    }

    /// [`Session::respond`] with explicit [`Limits`], which also apply to the initial
    /// message itself.
    ///
    /// # Errors
    /// As [`Session::respond`], and [`Error::InvalidLimits`].
    pub fn respond_with_limits<'k>(
        identity: &IdentityKeyPair,
        signed_prekey: impl FnOnce(u32) -> Option<&'k SignedPreKey>,
        one_time_prekey: impl FnOnce(u32) -> Option<&'k OneTimePreKey>,
        message: &[u8],
        limits: Limits,
    ) -> Result<Accepted, Error> {
        let limits = limits.validate()?;
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return Err(Error::NotInitialMessage),
        };
        let fields = &initial.fields;
        if fields.identity == *identity.public_key() {
            return Err(Error::WrongSession);
        }
        let spk = signed_prekey(fields.signed_prekey_id)
            .ok_or(Error::UnknownSignedPreKey(fields.signed_prekey_id))?;
        let opk = match fields.one_time_prekey_id {
            Some(id) => Some(one_time_prekey(id).ok_or(Error::UnknownOneTimePreKey(id))?),
            None => None,
        };
        let base_key = x25519_public_from_bytes(&fields.base_key)?;
        let agreement = x3dh::respond(identity, spk, opk, &fields.identity, &base_key)?;
        let mut ratchet = RatchetState::init_responder(
            agreement.sk,
            RatchetKeyPair::from_secret(spk.secret().clone()),
        );
        ratchet.limits = limits;
        let mut session = Session {
            ratchet,
            role: Role::Responder,
            local_identity: *identity.public_key(),
            remote_identity: fields.identity,
            base_key: fields.base_key,
            pending_initial: None,
        };
        let plaintext = session.decrypt_ratchet(&initial.inner)?;
        Ok(Accepted {
            session,
            plaintext,
            used_one_time_prekey: fields.one_time_prekey_id,
        })
    }

    /// Encrypts `plaintext` (Double Ratchet §3.4). Randomness is used only when this send
    /// completes a DH ratchet step.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`MAX_PLAINTEXT_SIZE`](crate::MAX_PLAINTEXT_SIZE),
    /// [`Error::RandomnessUnavailable`], [`Error::ChainExhausted`].
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        if plaintext.len() > MAX_PLAINTEXT_SIZE {
            return Err(Error::TooLarge);
        }
        let (header, mk) = self.ratchet.next_sending_key(rng)?;
        let fields = self.pending_initial.map(|(spk, opk)| InitialFields {
            identity: self.local_identity,
            base_key: self.base_key,
            signed_prekey_id: spk,
            one_time_prekey_id: opk,
        });
        let prefix_len = if fields.is_some() {
            INITIAL_PREFIX_LENGTH
        } else {
            NORMAL_PREFIX_LENGTH
        };
        let mut out = Vec::with_capacity(prefix_len + plaintext.len() + TAG_LENGTH);
        write_prefix(&mut out, fields.as_ref(), &header);
        let (aad, aad_len) = self.aad(&out);
        out.extend_from_slice(plaintext);
        let tag = mk.seal_in_place(&aad[..aad_len], &mut out[prefix_len..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a message of this session (Double Ratchet §3.5), normal or initial.
    ///
    /// # Errors
    /// Any parse error; [`Error::WrongSession`] for an initial message of another session;
    /// [`Error::TooFarAhead`], [`Error::DuplicateOrExpired`], [`Error::DecryptionFailed`],
    /// [`Error::NonContributoryKey`]. On any error the session is unchanged.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match Message::parse(message)? {
            Message::Normal(m) => self.decrypt_ratchet(&m),
            Message::Initial(m) => {
                // Only the responder's session receives initial messages, and only its own.
                if self.role != Role::Responder
                    || m.fields.identity != self.remote_identity
                    || m.fields.base_key != self.base_key
                {
                    return Err(Error::WrongSession);
                }
                self.decrypt_ratchet(&m.inner)
            }
        }
    }

    fn decrypt_ratchet(&mut self, message: &NormalMessage<'_>) -> Result<Vec<u8>, Error> {
        let (aad, aad_len) = self.aad(message.prefix);
        let plaintext = self
            .ratchet
            .decrypt(&message.header, &aad[..aad_len], message.body)?;
        // A reply proves the responder has the session: stop sending initial messages.
        self.pending_initial = None;
        Ok(plaintext)
    }

    /// `AD || prefix` on the stack; `prefix` is at most an initial message's framing.
    fn aad(&self, prefix: &[u8]) -> ([u8; 64 + INITIAL_PREFIX_LENGTH], usize) {
        let mut aad = [0u8; 64 + INITIAL_PREFIX_LENGTH];
        aad[..64].copy_from_slice(&self.associated_data());
        let len = 64 + prefix.len().min(INITIAL_PREFIX_LENGTH);
        aad[64..len].copy_from_slice(&prefix[..len - 64]);
        (aad, len)
    }

    /// The two identities in X3DH order: `(IK_A, IK_B)`.
    fn initiator_and_responder(&self) -> (&IdentityKey, &IdentityKey) {
        match self.role {
            Role::Initiator => (&self.local_identity, &self.remote_identity),
            Role::Responder => (&self.remote_identity, &self.local_identity),
        }
    }

    /// `AD = IK_A || IK_B` (X3DH §3.3).
    fn associated_data(&self) -> [u8; 64] {
        let (a, b) = self.initiator_and_responder();
        x3dh::associated_data(a, b)
    }

    /// The session's stable identifier (SPEC.md §3.5), the same on both sides.
    pub fn id(&self) -> SessionId {
        let (a, b) = self.initiator_and_responder();
        SessionId::derive(a, b, &self.base_key)
    }

    /// Which side created the session.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's identity key, as authenticated by X3DH. Compare it with the key pinned
    /// for this contact.
    pub fn remote_identity(&self) -> &IdentityKey {
        &self.remote_identity
    }

    /// The local identity key the session was made with.
    pub fn local_identity(&self) -> &IdentityKey {
        &self.local_identity
    }

    /// `true` while the initiator has not yet decrypted a reply, so every message it sends
    /// is an initial message.
    pub fn awaiting_reply(&self) -> bool {
        self.pending_initial.is_some()
    }

    /// The session's out-of-order limits.
    pub fn limits(&self) -> Limits {
        self.ratchet.limits
    }

    /// Changes the session's out-of-order limits. Lowering `max_stored_skipped` evicts the
    /// oldest stored keys at once.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] above the hard caps; the session is then unchanged.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), Error> {
        self.ratchet.limits = limits.validate()?;
        self.ratchet
            .skipped
            .evict_to(limits.max_stored_skipped as usize);
        Ok(())
    }

    /// How many skipped message keys the session currently stores.
    pub fn stored_skipped_keys(&self) -> usize {
        self.ratchet.skipped.len()
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("role", &self.role)
            .field("remote_identity", &self.remote_identity)
            .finish_non_exhaustive()
    }
}
