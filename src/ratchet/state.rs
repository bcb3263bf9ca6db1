//! Double Ratchet §3.2 (state variables) and §3.3 (initialization), with the deferred
//! ratchet key generation of §6.5 and the limits of §2.6 / §3.5 (SPEC.md §4.2-§4.4).
//!
//! Deferral: after a receiving DH ratchet step the state holds no sending chain
//! (`cks = None`); the next encryption generates the new ratchet key pair and completes the
//! step. Decryption therefore never needs randomness.

use x25519_dalek::PublicKey;

use alloc::collections::VecDeque;

use super::header::{initial_header_keys, HeaderKey};
use super::kdf::{ChainKey, RootKey};
use super::skipped::SkippedKeys;
use crate::error::Error;
use crate::keys::{diffie_hellman, RatchetKeyPair};

/// Default `MAX_SKIP`: how far ahead of the next expected message a message may be, in its
/// own chain or (through `PN`) in the chain it ends.
pub const DEFAULT_MAX_SKIP: u32 = 1000;
/// Default bound on the number of stored skipped message keys per session.
pub const DEFAULT_MAX_STORED_SKIPPED: u32 = 2000;
/// The largest `max_skip` a session accepts: it bounds the chain steps one message can cost.
pub const MAX_SKIP_CAP: u32 = 100_000;
/// The largest `max_stored_skipped` a session accepts: it bounds a session's memory.
pub const MAX_STORED_SKIPPED_CAP: u32 = 100_000;
/// In header-encrypted mode, the most header keys of earlier receiving chains a session
/// keeps for its stored skipped keys. It bounds the trial decryptions of one message at
/// `MAX_SKIPPED_HEADER_KEYS + 2` (SPEC.md §4.8).
pub const MAX_SKIPPED_HEADER_KEYS: usize = 32;

/// The per-session bounds on out-of-order delivery (SPEC.md §4.4).
///
/// A message more than `max_skip` keys ahead in its chain, or whose `PN` is more than
/// `max_skip` ahead in the chain it ends, is rejected before any key is derived. At most
/// `max_stored_skipped` skipped keys are stored; the oldest is evicted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// `MAX_SKIP`; at most [`MAX_SKIP_CAP`].
    pub max_skip: u32,
    /// Bound on stored skipped keys; at most [`MAX_STORED_SKIPPED_CAP`].
    pub max_stored_skipped: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_skip: DEFAULT_MAX_SKIP,
            max_stored_skipped: DEFAULT_MAX_STORED_SKIPPED,
        }
    }
}

impl Limits {
    /// Checks the limits against the hard caps.
    ///
    /// # Errors
    /// [`Error::InvalidLimits`] if either value exceeds its cap.
    pub fn validate(self) -> Result<Self, Error> {
        if self.max_skip > MAX_SKIP_CAP || self.max_stored_skipped > MAX_STORED_SKIPPED_CAP {
            return Err(Error::InvalidLimits);
        }
        Ok(self)
    }
}

/// The state variables of §3.2.
pub(crate) struct RatchetState {
    /// `DHs`: our current ratchet key pair.
    pub(crate) dhs: RatchetKeyPair,
    /// `DHr`: the peer's current ratchet public key (`None` only for a responder that has
    /// not yet processed a message, which the public API never exposes).
    pub(crate) dhr: Option<PublicKey>,
    /// `RK`.
    pub(crate) rk: RootKey,
    /// `CKs`; `None` while the sending half of a DH ratchet step is deferred.
    pub(crate) cks: Option<ChainKey>,
    /// `CKr`; `None` until the first message from the peer's current ratchet key.
    pub(crate) ckr: Option<ChainKey>,
    /// `Ns`, `Nr`, `PN`.
    pub(crate) ns: u32,
    pub(crate) nr: u32,
    pub(crate) pn: u32,
    /// `MKSKIPPED`.
    pub(crate) skipped: SkippedKeys,
    pub(crate) limits: Limits,
    /// The header keys, in header-encrypted mode (§4.3 of the Double Ratchet).
    pub(crate) he: Option<HeaderKeys>,
}

/// The header-encryption state variables (Double Ratchet §4.3) and the header keys of the
/// chains that still have stored skipped message keys.
pub(crate) struct HeaderKeys {
    /// `HKs`: encrypts our headers; absent only for a responder before its first send step.
    pub(crate) hks: Option<HeaderKey>,
    /// `HKr`: decrypts the peer's headers in the current receiving chain.
    pub(crate) hkr: Option<HeaderKey>,
    /// `NHKs`: becomes `HKs` at our next DH ratchet step.
    pub(crate) nhks: HeaderKey,
    /// `NHKr`: decrypts the first header of the peer's next chain.
    pub(crate) nhkr: HeaderKey,
    /// `(HK, ratchet key)` of earlier receiving chains with stored skipped keys, oldest
    /// first, at most [`MAX_SKIPPED_HEADER_KEYS`].
    pub(crate) skipped: VecDeque<(HeaderKey, [u8; 32])>,
}

impl RatchetState {
    /// §3.3 `RatchetInitAlice`: `DHs` fresh, `DHr` = Bob's signed prekey,
    /// `RK, CKs = KDF_RK(SK, DH(DHs, DHr))`.
    pub(crate) fn init_initiator(
        sk: RootKey,
        dhs: RatchetKeyPair,
        remote: PublicKey,
    ) -> Result<Self, Error> {
        let dh_out = diffie_hellman(&dhs.secret, &remote)?;
        let (rk, cks) = sk.ratchet(&dh_out);
        Ok(Self::initiator(dhs, remote, rk, cks, None))
    }

    /// Alice's state after her first root step: sending chain set, nothing received yet.
    fn initiator(
        dhs: RatchetKeyPair,
        remote: PublicKey,
        rk: RootKey,
        cks: ChainKey,
        he: Option<HeaderKeys>,
    ) -> Self {
        RatchetState {
            dhs,
            dhr: Some(remote),
            rk,
            cks: Some(cks),
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: SkippedKeys::default(),
            limits: Limits::default(),
            he,
        }
    }

    /// §4.4 `RatchetInitAliceHE`: as [`RatchetState::init_initiator`] with
    /// `RK, CKs, NHKs = KDF_RK_HE(SK, DH(DHs, DHr))`, `HKs = HKA`, `NHKr = NHKB`.
    pub(crate) fn init_initiator_he(
        sk: RootKey,
        dhs: RatchetKeyPair,
        remote: PublicKey,
    ) -> Result<Self, Error> {
        let (hka, nhkb) = initial_header_keys(&sk);
        let dh_out = diffie_hellman(&dhs.secret, &remote)?;
        let (rk, cks, nhks) = sk.ratchet_he(&dh_out);
        let he = HeaderKeys {
            hks: Some(hka),
            hkr: None,
            nhks,
            nhkr: nhkb,
            skipped: VecDeque::new(),
        };
        Ok(Self::initiator(dhs, remote, rk, cks, Some(he)))
    }

    /// §3.3 `RatchetInitBob`: `DHs` = the signed prekey pair, `RK = SK`, no chains yet.
    pub(crate) fn init_responder(sk: RootKey, dhs: RatchetKeyPair) -> Self {
        RatchetState {
            dhs,
            dhr: None,
            rk: sk,
            cks: None,
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            skipped: SkippedKeys::default(),
            limits: Limits::default(),
            he: None,
        }
    }

    /// §4.4 `RatchetInitBobHE`: as [`RatchetState::init_responder`] with `NHKs = NHKB`,
    /// `NHKr = HKA`.
    pub(crate) fn init_responder_he(sk: RootKey, dhs: RatchetKeyPair) -> Self {
        let (hka, nhkb) = initial_header_keys(&sk);
        let mut state = Self::init_responder(sk, dhs);
        state.he = Some(HeaderKeys {
            hks: None,
            hkr: None,
            nhks: nhkb,
            nhkr: hka,
            skipped: VecDeque::new(),
        });
        state
    }
}
