//! Double Ratchet §3.2 (state variables) and §3.3 (initialization), with the deferred
//! ratchet key generation of §6.5, the header-encryption variables of §4.3-§4.4 and the
//! limits of §2.6 / §3.5 (SPEC.md §4.2-§4.4, §4.8); and the ratchet state's part of the
//! stored session (SPEC.md §7.1, from `max_skip` on).
//!
//! The phases are types, so the state the protocol cannot reach cannot be built:
//!
//! * [`ResponderStart`] is the responder before its first message (`RatchetInitBob`): no
//!   `DHr`, no chains. Its only operation is receiving the initial message, which yields a
//!   [`RatchetState`]; it can neither encrypt nor be stored.
//! * [`RatchetState`] always knows `DHr`. Its sending chain is [`SendingChain::Deferred`]
//!   after a receiving DH ratchet step (§6.5: the next encryption generates `DHs` and
//!   completes the step, so decryption never needs randomness). Its receiving chain is
//!   absent only for an initiator before the first reply.
//! * [`Mode::HeaderEncrypted`] always holds `HKs`.
//!
//! [`RatchetState::read`] checks every field as SPEC.md §7.1 lists it, in its order; the
//! chain constructors ([`SendingChain::from_parts`], [`ReceivingChain::from_parts`]) own
//! the counters' invariants, [`SkippedKeys::read`] those of the skipped keys.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use x25519_dalek::PublicKey;

use super::header::{initial_header_keys, HeaderKey};
use super::kdf::{ChainKey, RootKey};
use super::skipped::SkippedKeys;
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::keys::{diffie_hellman, read_x25519_secret, x25519_public_from_bytes, RatchetKeyPair};

use crate::format::{
    DEFAULT_MAX_SKIP, DEFAULT_MAX_STORED_SKIPPED, HEADER_KEY_PAIR_LENGTH, MAX_SKIPPED_HEADER_KEYS,
    MAX_SKIP_CAP, MAX_STORED_SKIPPED_CAP,
};

/// Length of [`RatchetState::write`]'s output without skipped keys, header-encryption
/// block nor chain keys: `RK`, `DHs`, `DHr`, `Ns`, `Nr`, `PN` and the skipped-key count.
/// Each chain key present (`CKs`, `CKr`; the session's flags byte says which) adds 32.
pub(crate) const RATCHET_FIXED_LENGTH: usize = 32 * 3 + 12 + 4;
/// Extra length of a header-encrypted state (SPEC.md §7.1, type `0x28`) after the flags
/// byte: `HKs`, `HKr` (optional encodings), `NHKs`, `NHKr` and the count of header-key pairs.
const HE_BLOCK_LENGTH: usize = crate::format::HE_FIXED_LENGTH - 1;

/// The per-session bounds on out-of-order delivery (SPEC.md §4.4).
///
/// A message more than `max_skip` keys ahead in its chain, or whose `PN` is more than
/// `max_skip` ahead in the chain it ends, is rejected before any key is derived. At most
/// `max_stored_skipped` skipped keys are stored; the oldest is evicted first.
///
/// Build one with [`Limits::new`] or [`Limits::default`]; the fields are public to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// Limits with the given `max_skip` and `max_stored_skipped`, unchecked: sessions check
    /// them when they are set ([`Limits::validate`]).
    #[must_use]
    pub const fn new(max_skip: u32, max_stored_skipped: u32) -> Self {
        Limits {
            max_skip,
            max_stored_skipped,
        }
    }

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

    /// SPEC.md §7.1: `max_skip`, `max_stored_skipped`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.put_u32(self.max_skip);
        out.put_u32(self.max_stored_skipped);
    }

    /// Reads and validates the stored limits ([`Error::InvalidLimits`] above the caps).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        Limits {
            max_skip: r.u32()?,
            max_stored_skipped: r.u32()?,
        }
        .validate()
    }
}

/// `CKs` and `Ns`: the sending chain, or the deferred half of a DH ratchet step.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) enum SendingChain {
    /// `CKs` and `Ns`, the number of the next message it sends.
    Active { ck: ChainKey, n: u32 },
    /// After a receiving DH ratchet step: the next send generates `DHs` and derives the
    /// chain (§6.5). `Ns` is 0.
    Deferred,
}

impl SendingChain {
    /// The stored `CKs` (optional) and `Ns`: `Ns` must be 0 while `CKs` is absent.
    pub(crate) fn from_parts(ck: Option<ChainKey>, n: u32) -> Result<Self, Error> {
        match ck {
            Some(ck) => Ok(SendingChain::Active { ck, n }),
            None if n == 0 => Ok(SendingChain::Deferred),
            None => Err(Error::InvalidEncoding),
        }
    }

    fn parts(&self) -> (Option<&ChainKey>, u32) {
        match self {
            SendingChain::Active { ck, n } => (Some(ck), *n),
            SendingChain::Deferred => (None, 0),
        }
    }
}

/// `CKr` and `Nr`: the chain of the peer's current ratchet key.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct ReceivingChain {
    pub(super) ck: ChainKey,
    /// `Nr`: the number of the next message expected in the chain.
    pub(super) n: u32,
}

impl ReceivingChain {
    /// The stored `CKr` (optional) and `Nr`: `Nr` must be 0 while `CKr` is absent.
    pub(crate) fn from_parts(ck: Option<ChainKey>, n: u32) -> Result<Option<Self>, Error> {
        match ck {
            Some(ck) => Ok(Some(ReceivingChain { ck, n })),
            None if n == 0 => Ok(None),
            None => Err(Error::InvalidEncoding),
        }
    }
}

/// Whether the session encrypts its headers (§4), with the header keys if it does.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) enum Mode {
    Plain,
    HeaderEncrypted(HeaderKeys),
}

/// The header-encryption state variables (Double Ratchet §4.3) and the header keys of the
/// chains that still have stored skipped message keys.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct HeaderKeys {
    /// `HKs`: encrypts our headers.
    pub(super) hks: HeaderKey,
    /// `HKr`: decrypts the peer's headers in the current receiving chain; absent for an
    /// initiator before the first reply.
    pub(super) hkr: Option<HeaderKey>,
    /// `NHKs`: becomes `HKs` at our next DH ratchet step.
    pub(super) nhks: HeaderKey,
    /// `NHKr`: decrypts the first header of the peer's next chain.
    pub(super) nhkr: HeaderKey,
    /// `(HK, ratchet key)` of earlier receiving chains with stored skipped keys, oldest
    /// first, at most [`MAX_SKIPPED_HEADER_KEYS`].
    pub(super) skipped: VecDeque<(HeaderKey, [u8; 32])>,
}

/// The state variables of §3.2, for a session that has its peer's ratchet key.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct RatchetState {
    /// `DHs`: our current ratchet key pair.
    pub(super) dhs: RatchetKeyPair,
    /// `DHr`: the peer's current ratchet public key.
    pub(super) dhr: PublicKey,
    /// `RK`.
    pub(super) rk: RootKey,
    /// `CKs`, `Ns`.
    pub(super) sending: SendingChain,
    /// `CKr`, `Nr`; `None` until the first message from the peer's current ratchet key.
    pub(super) receiving: Option<ReceivingChain>,
    /// `PN`.
    pub(super) pn: u32,
    /// `MKSKIPPED`.
    pub(super) skipped: SkippedKeys,
    pub(super) limits: Limits,
    pub(super) mode: Mode,
}

/// The responder before its first message (§3.3 `RatchetInitBob`): `DHs` = the signed
/// prekey pair, `RK = SK`, no `DHr` and no chains. It becomes a [`RatchetState`] by
/// receiving the initial message (`ratchet::ResponderStart::receive`); the header keys of
/// `RatchetInitBobHE` are derived from `SK` when the initial message is header-encrypted.
pub(crate) struct ResponderStart {
    pub(super) sk: RootKey,
    pub(super) dhs: RatchetKeyPair,
    pub(super) limits: Limits,
}

impl ResponderStart {
    /// §3.3 `RatchetInitBob` with the session's limits.
    pub(crate) fn new(sk: RootKey, dhs: RatchetKeyPair, limits: Limits) -> Self {
        ResponderStart { sk, dhs, limits }
    }
}

impl RatchetState {
    /// §3.3 `RatchetInitAlice`: `DHs` fresh, `DHr` = Bob's signed prekey,
    /// `RK, CKs = KDF_RK(SK, DH(DHs, DHr))`.
    pub(crate) fn init_initiator(
        sk: RootKey,
        dhs: RatchetKeyPair,
        remote: PublicKey,
        limits: Limits,
    ) -> Result<Self, Error> {
        let dh_out = diffie_hellman(&dhs.secret, &remote)?;
        let (rk, cks) = sk.ratchet(&dh_out);
        Ok(Self::initiator(dhs, remote, rk, cks, limits, Mode::Plain))
    }

    /// §4.4 `RatchetInitAliceHE`: as [`RatchetState::init_initiator`] with
    /// `RK, CKs, NHKs = KDF_RK_HE(SK, DH(DHs, DHr))`, `HKs = HKA`, `NHKr = NHKB`.
    pub(crate) fn init_initiator_he(
        sk: RootKey,
        dhs: RatchetKeyPair,
        remote: PublicKey,
        limits: Limits,
    ) -> Result<Self, Error> {
        let (hka, nhkb) = initial_header_keys(&sk);
        let dh_out = diffie_hellman(&dhs.secret, &remote)?;
        let (rk, cks, nhks) = sk.ratchet_he(&dh_out);
        let he = HeaderKeys {
            hks: hka,
            hkr: None,
            nhks,
            nhkr: nhkb,
            skipped: VecDeque::new(),
        };
        Ok(Self::initiator(
            dhs,
            remote,
            rk,
            cks,
            limits,
            Mode::HeaderEncrypted(he),
        ))
    }

    /// Alice's state after her first root step: sending chain set, nothing received yet.
    fn initiator(
        dhs: RatchetKeyPair,
        remote: PublicKey,
        rk: RootKey,
        cks: ChainKey,
        limits: Limits,
        mode: Mode,
    ) -> Self {
        RatchetState {
            dhs,
            dhr: remote,
            rk,
            sending: SendingChain::Active { ck: cks, n: 0 },
            receiving: None,
            pn: 0,
            skipped: SkippedKeys::default(),
            limits,
            mode,
        }
    }

    /// The session's out-of-order limits.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits; lowering `max_stored_skipped` evicts the oldest stored keys.
    pub(crate) fn set_limits(&mut self, limits: Limits) -> Result<(), Error> {
        self.limits = limits.validate()?;
        self.evict_skipped_to(limits.max_stored_skipped as usize);
        Ok(())
    }

    /// How many skipped message keys are stored.
    pub(crate) fn stored_skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Whether the state encrypts headers (§4).
    pub(crate) fn is_header_encrypted(&self) -> bool {
        matches!(self.mode, Mode::HeaderEncrypted(_))
    }

    /// Length of [`RatchetState::write`]'s output.
    pub(crate) fn stored_length(&self) -> usize {
        let (cks, ckr) = self.stored_chains();
        RATCHET_FIXED_LENGTH
            + 32 * (usize::from(cks) + usize::from(ckr))
            + self.skipped.stored_length()
            + match &self.mode {
                Mode::Plain => 0,
                Mode::HeaderEncrypted(he) => he.stored_length(),
            }
    }

    /// Which chain keys [`RatchetState::write`] writes: `(CKs, CKr)`. The session stores
    /// them in its flags byte (SPEC.md §7.1), before the ratchet state's fields.
    pub(crate) fn stored_chains(&self) -> (bool, bool) {
        (self.sending.parts().0.is_some(), self.receiving.is_some())
    }

    /// The ratchet state's fields of a stored session after the padding byte (SPEC.md
    /// §7.1): `RK`, `DHs`, `DHr`, `CKs` and `CKr` (each only if present, as
    /// [`RatchetState::stored_chains`] says), `Ns`, `Nr`, `PN`, the skipped keys and, in
    /// header-encrypted mode, the header keys. The session writes its flags byte, the
    /// limits ([`Limits::write`]) and its padding byte before them.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.rk.write(out);
        out.put(self.dhs.secret.as_bytes());
        out.put(self.dhr.as_bytes());
        let (cks, ns) = self.sending.parts();
        if let Some(ck) = cks {
            ck.write(out);
        }
        if let Some(receiving) = &self.receiving {
            receiving.ck.write(out);
        }
        out.put_u32(ns);
        out.put_u32(self.receiving.as_ref().map_or(0, |c| c.n));
        out.put_u32(self.pn);
        self.skipped.write(out);
        if let Mode::HeaderEncrypted(he) = &self.mode {
            he.write(out);
        }
    }

    /// Reads what [`RatchetState::write`] writes, checking each field as it is read
    /// (SPEC.md §7.1), for a session whose stored `limits` and flags (`chains`: whether
    /// `CKs` and `CKr` are stored) were read before. The session's type says whether it is
    /// `header_encrypted`; a state without header encryption ends the session, so bytes
    /// after its skipped keys are [`Error::TrailingData`].
    pub(crate) fn read(
        r: &mut Reader<'_>,
        limits: Limits,
        chains: (bool, bool),
        header_encrypted: bool,
    ) -> Result<Self, Error> {
        let rk = RootKey::read(r)?;
        // Its public key is computed when first needed (RatchetKeyPair::public).
        let dhs = RatchetKeyPair::from_stored_secret(read_x25519_secret(r)?);
        // A session the API hands out always knows the peer's ratchet key.
        let dhr = x25519_public_from_bytes(&r.array()?)?;
        let cks = if chains.0 {
            Some(ChainKey::read(r)?)
        } else {
            None
        };
        let ckr = if chains.1 {
            Some(ChainKey::read(r)?)
        } else {
            None
        };
        let (ns, nr, pn) = (r.u32()?, r.u32()?, r.u32()?);
        // Every state the ratchet reaches: a chain counter is zero while its chain is
        // absent.
        let sending = SendingChain::from_parts(cks, ns)?;
        let receiving = ReceivingChain::from_parts(ckr, nr)?;
        let skipped = SkippedKeys::read(r, limits.max_stored_skipped, !header_encrypted)?;
        let mode = match header_encrypted {
            true => Mode::HeaderEncrypted(HeaderKeys::read(r, &skipped)?),
            false => Mode::Plain,
        };
        Ok(RatchetState {
            dhs,
            dhr,
            rk,
            sending,
            receiving,
            pn,
            skipped,
            limits,
            mode,
        })
    }
}

impl HeaderKeys {
    fn stored_length(&self) -> usize {
        HE_BLOCK_LENGTH + HEADER_KEY_PAIR_LENGTH * self.skipped.len()
    }

    /// The header-encryption block of a type `0x28` session (SPEC.md §7.1).
    fn write(&self, out: &mut Vec<u8>) {
        HeaderKey::write_optional(Some(&self.hks), out);
        HeaderKey::write_optional(self.hkr.as_ref(), out);
        self.nhks.write(out);
        self.nhkr.write(out);
        // Bounded by MAX_SKIPPED_HEADER_KEYS.
        out.put_u32(self.skipped.len() as u32);
        for (hk, dh) in &self.skipped {
            hk.write(out);
            out.put(dh);
        }
    }

    /// Reads the block, rejecting each malformed field as soon as it is read. `HKs` must be
    /// present: every session handed out has it (the responder's is set by the initial
    /// message it was created from); one without it could never send.
    fn read(r: &mut Reader<'_>, skipped: &SkippedKeys) -> Result<Self, Error> {
        let hks = HeaderKey::read_optional(r)?.ok_or(Error::InvalidEncoding)?;
        let hkr = HeaderKey::read_optional(r)?;
        let nhks = HeaderKey::read(r)?;
        let nhkr = HeaderKey::read(r)?;
        let count = r.u32()? as usize;
        if count > MAX_SKIPPED_HEADER_KEYS {
            return Err(Error::InvalidEncoding);
        }
        let mut entries = VecDeque::with_capacity(count);
        for _ in 0..count {
            let hk = HeaderKey::read(r)?;
            let dh: [u8; 32] = r.array()?;
            // Each names a distinct chain that still has stored skipped keys.
            if !skipped.has_chain(&dh) || entries.iter().any(|(_, d)| *d == dh) {
                return Err(Error::InvalidEncoding);
            }
            entries.push_back((hk, dh));
        }
        Ok(HeaderKeys {
            hks,
            hkr,
            nhks,
            nhkr,
            skipped: entries,
        })
    }
}
