//! The facade (SPEC.md §6): a [`Session`] is created by the initiator from a prekey bundle
//! ([`Session::initiate`]) or by the responder from an initial message
//! ([`Session::respond`]), and then encrypts and decrypts messages.
//!
//! Until the initiator has decrypted a reply, every message it sends is an initial message
//! carrying the X3DH fields, so the loss of the first message does not lose the session
//! (SPEC.md §6.2). The responder's session accepts those later initial messages when they
//! belong to it (same `IK_A` and `EK_A`).
//!
//! The session's phase is its type: [`Origin`] says which side created it and holds, for
//! the initiator awaiting its first reply, the fields its initial messages repeat. Creation
//! is in `create.rs`, the options in `options.rs`, the storage encoding (SPEC.md §7.1) in
//! `storage.rs`.

mod create;
mod options;
mod storage;

use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use alloc::vec::Vec;

use rand_core::TryCryptoRng;

pub use self::create::Accepted;
pub(crate) use self::create::ResponderKeys;
pub use self::options::SessionOptions;
use crate::error::Error;
use crate::format::{
    AD_LENGTH, HE_NORMAL_PREFIX_LENGTH, MAX_PLAINTEXT_SIZE, MAX_PREFIX_LENGTH,
    NORMAL_PREFIX_LENGTH, TAG_LENGTH,
};
use crate::keys::IdentityKey;
use crate::padding::Padding;
use crate::ratchet::state::Limits;
use crate::ratchet::{Header, RatchetState, Route, SendPlan, Weight};
use crate::wire::{
    prefix_length, write_framing, write_header, InitialFields, Message, NormalMessage, WireHeader,
};
#[cfg(feature = "pqxdh")]
use crate::x3dh::PqInitiation;
use crate::x3dh::{self, SessionId};

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
// Only under `--cfg fuzzing` (which cargo-fuzz sets) is a session `Clone`, so that a fuzz
// target can copy a prepared session per input instead of loading it; a normal build has no
// way to duplicate a session except through its storage encoding.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Session {
    ratchet: RatchetState,
    /// The side that created the session, with what that side keeps.
    origin: Origin,
    local_identity: IdentityKey,
    remote_identity: IdentityKey,
    /// `EK_A`, the initiator's ephemeral public key.
    base_key: [u8; 32],
    /// How the plaintexts this session sends are padded (SPEC.md §4.9).
    padding: Padding,
}

/// Which side created the session, and whether it was agreed with PQXDH (SPEC.md §3.6).
#[cfg_attr(fuzzing, derive(Clone))]
enum Origin {
    Initiator(InitiatorPhase),
    Responder { post_quantum: bool },
}

/// The initiator's phase (SPEC.md §6.2): it sends initial messages until it has decrypted
/// a reply.
#[cfg_attr(fuzzing, derive(Clone))]
enum InitiatorPhase {
    AwaitingReply(PendingInitial),
    Replied { post_quantum: bool },
}

/// What the initiator repeats in every initial message until its first reply (SPEC.md §6.2).
#[cfg_attr(fuzzing, derive(Clone))]
struct PendingInitial {
    signed_prekey_id: SignedPreKeyId,
    one_time_prekey_id: Option<OneTimePreKeyId>,
    /// PQXDH: the `PQPK` id and KEM ciphertext; its presence makes the session post-quantum.
    #[cfg(feature = "pqxdh")]
    post_quantum: Option<PqInitiation>,
}

impl PendingInitial {
    fn is_post_quantum(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        return self.post_quantum.is_some();
        #[cfg(not(feature = "pqxdh"))]
        return false;
    }

    /// The X3DH fields of an initial message (SPEC.md §5.2).
    fn fields(&self, identity: IdentityKey, base_key: [u8; 32]) -> InitialFields<'_> {
        InitialFields {
            identity,
            base_key,
            signed_prekey_id: self.signed_prekey_id,
            one_time_prekey_id: self.one_time_prekey_id,
            #[cfg(feature = "pqxdh")]
            post_quantum: self.post_quantum.as_ref().map(|(id, ct)| (*id, &**ct)),
            #[cfg(not(feature = "pqxdh"))]
            post_quantum: None,
        }
    }
}

impl Origin {
    fn role(&self) -> Role {
        match self {
            Origin::Initiator(_) => Role::Initiator,
            Origin::Responder { .. } => Role::Responder,
        }
    }

    fn is_post_quantum(&self) -> bool {
        match self {
            Origin::Initiator(InitiatorPhase::AwaitingReply(pending)) => pending.is_post_quantum(),
            Origin::Initiator(InitiatorPhase::Replied { post_quantum })
            | Origin::Responder { post_quantum } => *post_quantum,
        }
    }

    fn pending(&self) -> Option<&PendingInitial> {
        match self {
            Origin::Initiator(InitiatorPhase::AwaitingReply(pending)) => Some(pending),
            _ => None,
        }
    }

    /// A reply proves the responder has the session: stop sending initial messages.
    fn replied(&mut self) {
        if let Origin::Initiator(phase) = self {
            if let InitiatorPhase::AwaitingReply(pending) = phase {
                let post_quantum = pending.is_post_quantum();
                *phase = InitiatorPhase::Replied { post_quantum };
            }
        }
    }
}

/// The longest prefix of a normal message, plain or header-encrypted.
const SHORT_PREFIX: usize = if NORMAL_PREFIX_LENGTH > HE_NORMAL_PREFIX_LENGTH {
    NORMAL_PREFIX_LENGTH
} else {
    HE_NORMAL_PREFIX_LENGTH
};

/// A message's associated data `AD || prefix` (SPEC.md §4.1): on the stack, at its size,
/// for a normal message's prefix (every message on an established session); on the heap
/// for an initial message's, which can be up to [`MAX_PREFIX_LENGTH`] bytes (one
/// allocation next to a handshake's X25519 and ML-KEM work).
enum Aad {
    Short {
        bytes: [u8; AD_LENGTH + SHORT_PREFIX],
        len: usize,
    },
    Long(Vec<u8>),
}

impl Aad {
    /// `AD || prefix`.
    ///
    /// # Errors
    /// [`Error::Internal`] for a prefix longer than the longest framing, which no message
    /// this crate writes or parses has.
    fn new(ad: &[u8; AD_LENGTH], prefix: &[u8]) -> Result<Self, Error> {
        if prefix.len() > MAX_PREFIX_LENGTH {
            return Err(Error::Internal);
        }
        let len = AD_LENGTH + prefix.len();
        if prefix.len() <= SHORT_PREFIX {
            let mut bytes = [0u8; AD_LENGTH + SHORT_PREFIX];
            bytes[..AD_LENGTH].copy_from_slice(ad);
            bytes[AD_LENGTH..len].copy_from_slice(prefix);
            Ok(Aad::Short { bytes, len })
        } else {
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(ad);
            bytes.extend_from_slice(prefix);
            Ok(Aad::Long(bytes))
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Aad::Short { bytes, len } => &bytes[..*len],
            Aad::Long(bytes) => bytes,
        }
    }

    /// In header-encrypted mode, the header's associated data: `AD ||` the `framing` bytes
    /// before the header.
    fn header_part(&self, framing: usize) -> Result<&[u8], Error> {
        self.as_slice()
            .get(..AD_LENGTH + framing)
            .ok_or(Error::Internal)
    }
}

impl Session {
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
    /// [`Error::TooLarge`] above [`MAX_PLAINTEXT_SIZE`],
    /// [`Error::RandomnessUnavailable`], [`Error::ChainExhausted`].
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        if plaintext.len() > MAX_PLAINTEXT_SIZE {
            return Err(Error::TooLarge);
        }
        self.ratchet.prepare_send();
        let plan = self.ratchet.plan_send(rng)?;
        let message = self.seal_message(&plan, plaintext)?;
        self.ratchet.commit_send(plan);
        Ok(message)
    }

    /// Frames and encrypts one message with the keys of `plan` (SPEC.md §4.5, §4.8, §5).
    fn seal_message(&self, plan: &SendPlan, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let fields = self
            .origin
            .pending()
            .map(|p| p.fields(self.local_identity, self.base_key));
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
                let Origin::Responder { post_quantum } = self.origin else {
                    return Err(Error::WrongSession);
                };
                if m.fields.identity != self.remote_identity
                    || m.fields.base_key != self.base_key
                    || m.fields.post_quantum.is_some() != post_quantum
                    || m.is_header_encrypted() != self.is_header_encrypted()
                {
                    return Err(Error::WrongSession);
                }
                self.decrypt_ratchet(&m.inner)
            }
        }
    }

    /// How `message` weighs in this session (SPEC.md §6.6): whether the session holds its
    /// chain, and which key it needs, with every bound checked and no message key derived
    /// (a header-encrypted header is opened to find out).
    pub(crate) fn weigh(&self, message: &NormalMessage<'_>) -> Weight {
        match &message.header {
            WireHeader::Plain(header) => self.ratchet.weigh(header),
            WireHeader::Encrypted {
                sealed,
                aad_len: framing,
            } => {
                let part = self
                    .aad(message.prefix)
                    .and_then(|aad| Ok(self.ratchet.weigh_he(sealed, aad.header_part(*framing)?)));
                part.unwrap_or_else(|e| Weight {
                    held: false,
                    route: Err(e),
                })
            }
        }
    }

    /// The ratchet public key of the messages this session sends (`DHs`).
    pub(crate) fn sending_ratchet_key(&self) -> [u8; 32] {
        self.ratchet.sending_ratchet_key()
    }

    /// Decrypts a normal message whose header and route [`Session::weigh`] found in this
    /// same state, transactionally.
    pub(crate) fn decrypt_weighed(
        &mut self,
        message: &NormalMessage<'_>,
        header: &Header,
        route: Route,
    ) -> Result<Vec<u8>, Error> {
        let aad = self.aad(message.prefix)?;
        let plaintext =
            self.ratchet
                .decrypt_weighed(header, route, aad.as_slice(), message.body)?;
        self.origin.replied();
        Ok(plaintext)
    }

    /// Decrypts the ratchet part of a message (normal, or an initial message's inner part
    /// once its X3DH fields were matched), transactionally.
    fn decrypt_ratchet(&mut self, message: &NormalMessage<'_>) -> Result<Vec<u8>, Error> {
        let aad = self.aad(message.prefix)?;
        let plaintext = match &message.header {
            WireHeader::Plain(header) => {
                self.ratchet.decrypt(header, aad.as_slice(), message.body)?
            }
            WireHeader::Encrypted {
                sealed,
                aad_len: framing,
            } => self.ratchet.decrypt_he(
                sealed,
                aad.header_part(*framing)?,
                aad.as_slice(),
                message.body,
            )?,
        };
        self.origin.replied();
        Ok(plaintext)
    }

    /// `AD || prefix` on the stack.
    fn aad(&self, prefix: &[u8]) -> Result<Aad, Error> {
        Aad::new(&self.associated_data(), prefix)
    }

    /// The two identities in X3DH order: `(IK_A, IK_B)`.
    fn initiator_and_responder(&self) -> (&IdentityKey, &IdentityKey) {
        match self.origin.role() {
            Role::Initiator => (&self.local_identity, &self.remote_identity),
            Role::Responder => (&self.remote_identity, &self.local_identity),
        }
    }

    /// `AD = IK_A || IK_B` (X3DH §3.3).
    fn associated_data(&self) -> [u8; AD_LENGTH] {
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
        self.ratchet.is_header_encrypted()
    }

    /// Whether the session was agreed with PQXDH (SPEC.md §3.6).
    pub fn is_post_quantum(&self) -> bool {
        self.origin.is_post_quantum()
    }

    /// Which side created the session.
    pub fn role(&self) -> Role {
        self.origin.role()
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
        self.origin.pending().is_some()
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
        self.ratchet.limits()
    }

    /// Changes the session's out-of-order limits. Lowering `max_stored_skipped` evicts the
    /// oldest stored keys at once.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] above the hard caps; the session is then unchanged.
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), Error> {
        self.ratchet.set_limits(limits)
    }

    /// Evicts the oldest skipped keys beyond `cap` (a record's bound, SPEC.md §6.7).
    pub(crate) fn evict_skipped_to(&mut self, cap: usize) {
        self.ratchet.evict_skipped_to(cap);
    }

    /// How many skipped message keys the session currently stores.
    pub fn stored_skipped_keys(&self) -> usize {
        self.ratchet.stored_skipped_keys()
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("role", &self.role())
            .field("post_quantum", &self.is_post_quantum())
            .field("remote_identity", &self.remote_identity)
            .finish_non_exhaustive()
    }
}
