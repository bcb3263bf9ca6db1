//! [`SessionOptions`]: the policies a new session is created under (SPEC.md §9.2 pinning,
//! §3.6 PQXDH required, §4.8 header encryption, §4.4 limits, §4.9 padding).

use crate::error::Error;
use crate::keys::IdentityKey;
use crate::padding::Padding;
use crate::ratchet::state::Limits;

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
///     .limits(Limits::new(100, 500));
/// # let _ = options;
/// ```
#[must_use]
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    pinned: Option<IdentityKey>,
    require_post_quantum: bool,
    header_encryption: bool,
    require_header_encryption: bool,
    limits: Limits,
    padding: Padding,
}

impl SessionOptions {
    /// The defaults: no pin, classical or post-quantum, no header encryption, default
    /// limits, [`Padding::Padme`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the peer's identity key to be `pinned` (SPEC.md §9.2); any other key is
    /// [`Error::IdentityMismatch`] before any session exists.
    pub fn pin(mut self, pinned: &IdentityKey) -> Self {
        self.pinned = Some(*pinned);
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

    /// Whether these options make an initiator's session header-encrypted.
    pub(crate) fn wants_header_encryption(&self) -> bool {
        self.header_encryption
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
        if self.pinned.is_some_and(|pinned| pinned != *peer) {
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
