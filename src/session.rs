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

use crate::aead::TAG_LENGTH;
use crate::error::Error;
use crate::keys::{
    x25519_public_from_bytes, IdentityKey, IdentityKeyPair, OneTimePreKey, RatchetKeyPair,
    SignedPreKey,
};
use crate::padding::Padding;
#[cfg(feature = "pqxdh")]
use crate::pq::PqPreKey;
use crate::prekeys::{ReplayRecord, StoreNotice};
use crate::ratchet::state::Limits;
use crate::ratchet::{RatchetState, SendPlan};
use crate::wire::{
    prefix_length, write_framing, write_header, InitialFields, InitialMessage, Message,
    NormalMessage, WireHeader, MAX_PLAINTEXT_SIZE, MAX_PREFIX_LENGTH,
};
#[cfg(feature = "pqxdh")]
use crate::x3dh::PqInitiation;
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
    /// Whether the session was agreed with PQXDH.
    pub(crate) post_quantum: bool,
    /// The initiator's key-agreement fields, kept while initial messages are sent.
    pub(crate) pending_initial: Option<PendingInitial>,
    /// How the plaintexts this session sends are padded (SPEC.md §4.9).
    pub(crate) padding: Padding,
}

/// What the initiator repeats in every initial message until its first reply (SPEC.md §6.2).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PendingInitial {
    pub(crate) signed_prekey_id: u64,
    pub(crate) one_time_prekey_id: Option<u64>,
    /// PQXDH: the `PQPK` id and KEM ciphertext.
    #[cfg(feature = "pqxdh")]
    pub(crate) post_quantum: Option<PqInitiation>,
}

/// How a session is created: the identity key pinned for the contact, whether PQXDH is
/// required, the out-of-order [`Limits`] and the [`Padding`] of the plaintexts it sends.
/// The default pins nothing, accepts classical X3DH, and uses the default limits and
/// padding (Padmé).
///
/// ```
/// # use doubleratchet::{IdentityKeyPair, Limits, OsRng, SessionOptions};
/// # let contact = IdentityKeyPair::generate(&mut OsRng).unwrap();
/// let options = SessionOptions::new()
///     .pin(contact.public_key())
///     .require_post_quantum()
///     .limits(Limits { max_skip: 100, max_stored_skipped: 500 });
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions<'a> {
    pinned: Option<&'a IdentityKey>,
    require_post_quantum: bool,
    header_encryption: bool,
    require_header_encryption: bool,
    limits: Limits,
    padding: Padding,
}

impl<'a> SessionOptions<'a> {
    /// The defaults: no pin, classical or post-quantum, no header encryption, default
    /// limits, [`Padding::Padme`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the peer's identity key to be `pinned` (SPEC.md §9.2); any other key is
    /// [`Error::IdentityMismatch`] before any session exists.
    pub fn pin(mut self, pinned: &'a IdentityKey) -> Self {
        self.pinned = Some(pinned);
        self
    }

    /// Requires PQXDH: a classical bundle or initial message is
    /// [`Error::PostQuantumRequired`] (SPEC.md §3.6).
    pub fn require_post_quantum(mut self) -> Self {
        self.require_post_quantum = true;
        self
    }

    /// Initiator: create the session in header-encrypted mode (SPEC.md §4.8), so that its
    /// messages' ratchet keys and counters are encrypted. The mode is fixed for the
    /// session's life and visible in its message types. The responder follows the mode
    /// of the initial message.
    pub fn header_encryption(mut self) -> Self {
        self.header_encryption = true;
        self
    }

    /// Responder: refuse an initial message of a session without header encryption with
    /// [`Error::HeaderEncryptionRequired`]. (An initiator asking for this gets header
    /// encryption.)
    pub fn require_header_encryption(mut self) -> Self {
        self.header_encryption = true;
        self.require_header_encryption = true;
        self
    }

    /// The new session's out-of-order limits (validated when the session is created).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How the new session pads the plaintexts it sends (SPEC.md §4.9); the default is
    /// [`Padding::Padme`]. Receiving needs no setting.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// The padding policy these options give a new session.
    pub(crate) fn padding_policy(&self) -> Padding {
        self.padding
    }

    /// Checks the identity, PQ, header-encryption and limit policies against a peer's
    /// key-agreement input.
    pub(crate) fn check(
        &self,
        peer: &IdentityKey,
        post_quantum: bool,
        header_encrypted: bool,
    ) -> Result<Limits, Error> {
        if self.pinned.is_some_and(|pinned| pinned != peer) {
            return Err(Error::IdentityMismatch);
        }
        if self.require_post_quantum && !post_quantum {
            return Err(Error::PostQuantumRequired);
        }
        if self.require_header_encryption && !header_encrypted {
            return Err(Error::HeaderEncryptionRequired);
        }
        self.limits.validate()
    }
}

/// A message's associated data `AD || prefix` (SPEC.md §4.1), built on the stack.
struct Aad {
    bytes: [u8; 64 + MAX_PREFIX_LENGTH],
    len: usize,
}

impl Aad {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
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
    pub used_one_time_prekey: Option<u64>,
    /// The id of the post-quantum prekey the initiator used (PQXDH only). A one-time one
    /// has been deleted by [`PreKeyStore::accept`](crate::PreKeyStore::accept); delete it
    /// from the server too.
    pub used_post_quantum_prekey: Option<u64>,
    /// Set by [`PreKeyStore::accept`](crate::PreKeyStore::accept) when the store needs the
    /// app to act (publish a new signed prekey, or rotate); always `None` from
    /// [`Session::respond`].
    pub notice: Option<StoreNotice>,
    /// The replay record [`PreKeyStore::accept`](crate::PreKeyStore::accept) added (a
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
    /// post-quantum prekey, PQXDH §3.3; Double Ratchet §3.3), with default options.
    ///
    /// The bundle's signatures are verified before any other use of it. The returned
    /// session sends initial messages until it decrypts the peer's first reply.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] for a bundle whose signature does not verify,
    /// [`Error::WrongSession`] for the local identity's own bundle,
    /// [`Error::InvalidPublicKey`], [`Error::NonContributoryKey`] and
    /// [`Error::RandomnessUnavailable`].
    pub fn initiate<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        rng: &mut R,
    ) -> Result<Session, Error> {
        Self::initiate_with(identity, bundle, &SessionOptions::new(), rng)
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
        Self::initiate_with(identity, bundle, &SessionOptions::new().pin(pinned), rng)
    }

    /// [`Session::initiate`] with explicit [`SessionOptions`]. The policies are checked, in
    /// this order, before the bundle is otherwise used: the pinned identity
    /// ([`Error::IdentityMismatch`]), PQXDH if required ([`Error::PostQuantumRequired`]),
    /// the limits ([`Error::InvalidLimits`]).
    ///
    /// # Errors
    /// As above, then as [`Session::initiate`].
    pub fn initiate_with<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        options: &SessionOptions<'_>,
        rng: &mut R,
    ) -> Result<Session, Error> {
        let header_encrypted = options.header_encryption;
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
        let mut ratchet = if header_encrypted {
            RatchetState::init_initiator_he(sk, dhs, spk)?
        } else {
            RatchetState::init_initiator(sk, dhs, spk)?
        };
        ratchet.limits = limits;
        Ok(Session {
            ratchet,
            role: Role::Initiator,
            local_identity: *identity.public_key(),
            remote_identity: *bundle.identity_key(),
            base_key: initiation.base_key.to_bytes(),
            post_quantum: bundle.is_post_quantum(),
            pending_initial: Some(PendingInitial {
                signed_prekey_id: bundle.signed_prekey_id(),
                one_time_prekey_id: bundle.one_time_prekey_id(),
                #[cfg(feature = "pqxdh")]
                post_quantum: initiation.post_quantum,
            }),
            padding: options.padding,
        })
    }

    /// Accepts a session from a classical initial message (X3DH §3.4), with the default
    /// [`Limits`]. For PQXDH initial messages, and to have one-time prekeys deleted for you,
    /// use [`PreKeyStore::accept`](crate::PreKeyStore::accept).
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
    /// [`Error::UnknownOneTimePreKey`], [`Error::UnknownPqPreKey`] (a PQXDH message),
    /// [`Error::WrongSession`] (a message from the local identity),
    /// [`Error::NonContributoryKey`], or any error of [`Session::decrypt`].
    pub fn respond<'k>(
        identity: &IdentityKeyPair,
        signed_prekey: impl FnOnce(u64) -> Option<&'k SignedPreKey>,
        one_time_prekey: impl FnOnce(u64) -> Option<&'k OneTimePreKey>,
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
        signed_prekey: impl FnOnce(u64) -> Option<&'k SignedPreKey>,
        one_time_prekey: impl FnOnce(u64) -> Option<&'k OneTimePreKey>,
        message: &[u8],
        limits: Limits,
    ) -> Result<Accepted, Error> {
        let limits = limits.validate()?;
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return Err(Error::NotInitialMessage),
        };
        let fields = &initial.fields;
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
        Self::accept_initial(identity, &keys, &initial, limits, Padding::default())
    }

    /// X3DH §3.4 / PQXDH §3.4 with the keys already looked up, then the first decryption.
    /// Nothing outside the returned value is changed.
    pub(crate) fn accept_initial(
        identity: &IdentityKeyPair,
        keys: &ResponderKeys<'_>,
        initial: &InitialMessage<'_>,
        limits: Limits,
        padding: Padding,
    ) -> Result<Accepted, Error> {
        let fields = &initial.fields;
        if fields.identity == *identity.public_key() {
            return Err(Error::WrongSession);
        }
        // A cleartext header's counter is bounded before any DH or KEM work (SPEC.md
        // §4.4): a new session's first chain may skip at most max_skip keys. (An encrypted
        // header cannot be read before the key agreement that yields its key.)
        if let WireHeader::Plain(header) = &initial.inner.header {
            if header.n > limits.max_skip || header.n == u32::MAX {
                return Err(Error::TooFarAhead);
            }
        }
        let base_key = x25519_public_from_bytes(&fields.base_key)?;
        #[cfg(feature = "pqxdh")]
        let kem_secret = match (fields.post_quantum, keys.post_quantum_prekey) {
            (Some((_, ciphertext)), Some(key)) => Some(key.decapsulate(ciphertext)),
            (None, None) => None,
            (Some((id, _)), None) => return Err(Error::UnknownPqPreKey(id)),
            // The caller looks a post-quantum prekey up only for a PQXDH message.
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
        let dhs = RatchetKeyPair {
            secret: keys.signed_prekey.secret().clone(),
            public: x25519_dalek::PublicKey::from(keys.signed_prekey.public_key()),
        };
        let mut ratchet = if initial.is_header_encrypted() {
            RatchetState::init_responder_he(agreement.sk, dhs)
        } else {
            RatchetState::init_responder(agreement.sk, dhs)
        };
        ratchet.limits = limits;
        let mut session = Session {
            ratchet,
            role: Role::Responder,
            local_identity: *identity.public_key(),
            remote_identity: fields.identity,
            base_key: fields.base_key,
            post_quantum: fields.post_quantum.is_some(),
            pending_initial: None,
            padding,
        };
        let plaintext = session.decrypt_ratchet(&initial.inner)?;
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

    /// Encrypts `plaintext` (Double Ratchet §3.4, §4.5), padded as the session's
    /// [`Padding`] says (SPEC.md §4.9). Randomness is used when this send completes a DH
    /// ratchet step, and in header-encrypted mode for every header's nonce. On any error the
    /// session is unchanged.
    ///
    /// Encrypting from an older copy of the session (a restored backup, a crash before the
    /// last save) repeats message keys already used; the AEAD is misuse-resistant, so this
    /// reveals only whether two such messages had equal plaintexts (SPEC.md §4.1).
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
        let plan = self.ratchet.plan_send(rng)?;
        let message = self.seal_message(&plan, plaintext)?;
        self.ratchet.commit_send(plan);
        Ok(message)
    }

    /// Frames and encrypts one message with the keys of `plan` (SPEC.md §4.5, §4.8, §5).
    fn seal_message(&self, plan: &SendPlan, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let fields = self.pending_initial.as_ref().map(|p| InitialFields {
            identity: self.local_identity,
            base_key: self.base_key,
            signed_prekey_id: p.signed_prekey_id,
            one_time_prekey_id: p.one_time_prekey_id,
            #[cfg(feature = "pqxdh")]
            post_quantum: p.post_quantum.as_ref().map(|(id, ct)| (*id, &**ct)),
            #[cfg(not(feature = "pqxdh"))]
            post_quantum: None,
        });
        let encrypted = plan.hks.is_some();
        let capacity = prefix_length(fields.as_ref(), encrypted)
            + self.padding.encoded_length(plaintext.len())
            + TAG_LENGTH;
        let mut out = Vec::with_capacity(capacity);
        write_framing(&mut out, fields.as_ref(), encrypted);
        match &plan.hks {
            Some((hks, nonce)) => {
                // HENCRYPT(HKs, header) with AD || framing as its associated data.
                let sealed = hks.seal(&plan.header, nonce, self.aad(&out)?.as_slice())?;
                out.extend_from_slice(&sealed);
            }
            None => write_header(&mut out, &WireHeader::Plain(plan.header)),
        }
        let prefix_len = out.len();
        let aad = self.aad(&out)?;
        self.padding.encode_into(&mut out, plaintext);
        let tag = plan
            .mk
            .seal_in_place(aad.as_slice(), &mut out[prefix_len..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a message of this session (Double Ratchet §3.5), normal or initial.
    ///
    /// # Errors
    /// Any parse error; [`Error::WrongSession`] for an initial message of another session
    /// and for a message of the other header mode (header-encrypted to a plain session or
    /// the reverse); [`Error::TooFarAhead`], [`Error::DuplicateOrExpired`],
    /// [`Error::DecryptionFailed`] (including an authenticated plaintext that does not
    /// decode, SPEC.md §4.9), [`Error::NonContributoryKey`]. On any error the session is
    /// unchanged.
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match Message::parse(message)? {
            Message::Normal(m) => self.decrypt_ratchet(&m),
            Message::Initial(m) => {
                // Only the responder's session receives initial messages, and only its own:
                // same IK_A, same EK_A, same key agreement (X3DH or PQXDH).
                if self.role != Role::Responder
                    || m.fields.identity != self.remote_identity
                    || m.fields.base_key != self.base_key
                    || m.fields.post_quantum.is_some() != self.post_quantum
                    || m.is_header_encrypted() != self.is_header_encrypted()
                {
                    return Err(Error::WrongSession);
                }
                self.decrypt_ratchet(&m.inner)
            }
        }
    }

    fn decrypt_ratchet(&mut self, message: &NormalMessage<'_>) -> Result<Vec<u8>, Error> {
        let aad = self.aad(message.prefix)?;
        let plaintext = match &message.header {
            WireHeader::Plain(header) => {
                self.ratchet.decrypt(header, aad.as_slice(), message.body)?
            }
            WireHeader::Encrypted {
                sealed,
                aad_len: framing,
            } => {
                // The header's associated data: AD || the framing before the header.
                let header_aad = aad.as_slice().get(..64 + framing).ok_or(Error::Internal)?;
                self.ratchet
                    .decrypt_he(sealed, header_aad, aad.as_slice(), message.body)?
            }
        };
        // A reply proves the responder has the session: stop sending initial messages.
        self.pending_initial = None;
        Ok(plaintext)
    }

    /// `AD || prefix` on the stack.
    ///
    /// # Errors
    /// [`Error::Internal`] for a prefix longer than the longest framing, which no message
    /// this crate writes or parses has.
    fn aad(&self, prefix: &[u8]) -> Result<Aad, Error> {
        let len = 64 + prefix.len();
        let mut aad = Aad {
            bytes: [0u8; 64 + MAX_PREFIX_LENGTH],
            len,
        };
        let bytes = aad.bytes.get_mut(..len).ok_or(Error::Internal)?;
        bytes[..64].copy_from_slice(&self.associated_data());
        bytes[64..].copy_from_slice(prefix);
        Ok(aad)
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

    /// Whether the session encrypts its message headers (SPEC.md §4.8).
    pub fn is_header_encrypted(&self) -> bool {
        self.ratchet.he.is_some()
    }

    /// Whether the session was agreed with PQXDH (SPEC.md §3.6).
    pub fn is_post_quantum(&self) -> bool {
        self.post_quantum
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

    /// How this session pads the plaintexts it sends (SPEC.md §4.9).
    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// Changes how this session pads the plaintexts it sends from now on. The peer needs
    /// no change: every padded plaintext decodes the same way.
    pub fn set_padding(&mut self, padding: Padding) {
        self.padding = padding;
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
            .evict_skipped_to(limits.max_stored_skipped as usize);
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
            .field("post_quantum", &self.post_quantum)
            .field("remote_identity", &self.remote_identity)
            .finish_non_exhaustive()
    }
}
