//! Double Ratchet §3.4 (`RatchetEncrypt`) and §3.5 (`RatchetDecrypt`, `TrySkippedMessageKeys`,
//! `SkipMessageKeys`, `DHRatchet`), and their header-encrypted forms of §4.5-§4.6;
//! SPEC.md §4.
//!
//! Every operation is a plan and a commit. Decryption ([`RatchetState::decrypt`],
//! [`RatchetState::decrypt_he`]) first plans every change (checks the bounds, derives keys
//! into local values), then authenticates the message, and only then commits the plan; any
//! error leaves the state exactly as it was. Encryption plans
//! ([`RatchetState::plan_send`]), the session encrypts, then commits
//! ([`RatchetState::commit_send`]). The responder's first decryption
//! ([`ResponderStart::receive`], [`ResponderStart::receive_he`]) plans the same DH ratchet
//! step and turns the start into a [`RatchetState`] only once the message authenticates.
//!
//! The state's types and their storage encoding are in [`state`], the skipped-key store in
//! [`skipped`], the KDF chains in [`kdf`] and header encryption in [`header`].

pub(crate) mod header;
pub(crate) mod kdf;
pub(crate) mod skipped;
pub(crate) mod state;

use alloc::vec::Vec;
use core::mem;

use rand_core::TryCryptoRng;
use x25519_dalek::PublicKey;
use zeroize::Zeroize;

use self::header::{initial_header_keys, HeaderKey, HEADER_NONCE_LENGTH};
use self::kdf::{ChainKey, MessageKey, RootKey};
use self::skipped::{SkippedKeys, Staged};
use self::state::{HeaderKeys, Mode, ReceivingChain, SendingChain};
pub(crate) use self::state::{RatchetState, ResponderStart};
use crate::error::Error;
use crate::format::{ENCRYPTED_HEADER_LENGTH, MAX_SKIPPED_HEADER_KEYS, TAG_LENGTH};
use crate::keys::{diffie_hellman, fill_random, x25519_public_from_bytes, RatchetKeyPair};
use crate::padding::decoded_length;

/// A message header (§3.1 `HEADER(dh_pair, pn, n)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) dh: [u8; 32],
    pub(crate) pn: u32,
    pub(crate) n: u32,
}

/// Everything a successful decryption will change, computed before it is authenticated.
struct ReceivePlan {
    /// A DH ratchet step.
    step: Option<StepPlan>,
    /// `CKr` and `Nr` after this message.
    chain: ReceivingChain,
    mk: MessageKey,
    /// Keys skipped over, in chain order (old chain first), as runs.
    skipped: Vec<Staged>,
    /// Header-encrypted mode: `(HK, ratchet key)` of the chains that get skipped keys.
    header_keys: Vec<(HeaderKey, [u8; 32])>,
}

/// The receiving half of `DHRatchet` (§3.5, §4.6 `DHRatchetHE`): the new `RK` and `DHr`,
/// and in header-encrypted mode the header keys.
struct StepPlan {
    rk: RootKey,
    dhr: PublicKey,
    header: Option<HeaderStep>,
}

/// `HKs = NHKs; HKr = NHKr; NHKr` from `KDF_RK_HE` (Double Ratchet §4.6 `DHRatchetHE`).
struct HeaderStep {
    hks: HeaderKey,
    hkr: HeaderKey,
    nhkr: HeaderKey,
}

/// What a receiving DH ratchet step reads: the state, or the responder's start.
struct StepFrom<'a> {
    dhs: &'a RatchetKeyPair,
    rk: &'a RootKey,
    /// The receiving chain the step ends, if any.
    ending: Option<Ending<'a>>,
    /// Header-encrypted mode: `NHKs` and `NHKr`.
    next_header_keys: Option<(&'a HeaderKey, &'a HeaderKey)>,
    max_skip: u32,
}

/// A receiving chain a DH ratchet step ends: `DHr`, `CKr`/`Nr`, and `HKr` in
/// header-encrypted mode.
struct Ending<'a> {
    dhr: &'a PublicKey,
    chain: &'a ReceivingChain,
    hkr: Option<&'a HeaderKey>,
}

/// The receiving chain a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// The current receiving chain (`DHr`, `HKr`).
    Current,
    /// The peer's next chain: a DH ratchet step (new ratchet key, `NHKr`).
    Next,
}

/// Which key a message needs in one session, found with every bound checked and no key
/// derived (SPEC.md §6.6): what a record weighs before it tries a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A stored skipped key: one AEAD open, no derivation.
    Stored,
    /// The current receiving chain: at most `max_skip + 1` chain steps.
    Current,
    /// A new chain: one DH, one root step and at most `2 * max_skip + 1` chain steps.
    Next,
}

/// A session's verdict on a message, from weighing it without deriving a key (SPEC.md
/// §6.6).
pub(crate) struct Weight {
    /// The session holds the message's chain: it is where the message belongs.
    pub(crate) held: bool,
    /// The message's header (opened, in header-encrypted mode) and the key it needs, or
    /// why the session cannot decrypt it.
    pub(crate) route: Result<(Header, Route), Error>,
}

/// A header opened by one of the state's header keys, and which.
struct Opened {
    header: Header,
    /// Opened by the header key of a chain with stored skipped keys.
    by_skipped: bool,
    /// Otherwise: `HKr` (the current chain) or `NHKr` (the next).
    chain: Chain,
}

/// Everything one send changes, computed before anything is changed (§3.4
/// `RatchetEncrypt`), and what the caller needs to encrypt the message.
pub(crate) struct SendPlan {
    /// Completing a deferred DH ratchet step (§6.5): the new `DHs`, `RK` and, in
    /// header-encrypted mode, `NHKs`.
    step: Option<SendStep>,
    /// `CKs` after this message's chain step.
    cks: ChainKey,
    /// `Ns` after this message.
    ns: u32,
    pub(crate) header: Header,
    pub(crate) mk: MessageKey,
    /// Header-encrypted mode: `HKs` and the nonce to encrypt the header with.
    pub(crate) hks: Option<(HeaderKey, [u8; HEADER_NONCE_LENGTH])>,
}

/// The sending half of `DHRatchet`, deferred until the first send after a receive.
struct SendStep {
    dhs: RatchetKeyPair,
    rk: RootKey,
    nhks: Option<HeaderKey>,
}

impl RatchetState {
    /// §3.4 `RatchetEncrypt` (§4.5 `RatchetEncryptHE`) up to the encryption itself, without
    /// changing the state: completes a deferred DH ratchet step if one is pending (§6.5)
    /// and steps the sending chain. The caller encrypts, then [`commit_send`]s the plan, so
    /// a failure anywhere before the commit changes nothing.
    ///
    /// Randomness: the new `DHs` (only when completing a deferred step), then in
    /// header-encrypted mode the header nonce (SPEC.md §2.5).
    ///
    /// [`commit_send`]: RatchetState::commit_send
    pub(crate) fn plan_send<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<SendPlan, Error> {
        // The chain step reads the current `CKs` in place (no copy of it to wipe).
        let ((cks, mk), n, step) = match &self.sending {
            SendingChain::Active { n: u32::MAX, .. } => return Err(Error::ChainExhausted),
            SendingChain::Active { ck, n } => (ck.step(), *n, None),
            SendingChain::Deferred => {
                let (ck, step) = self.plan_send_step(rng)?;
                (ck.step(), 0, Some(step))
            }
        };
        let hks = match &self.mode {
            Mode::HeaderEncrypted(he) => {
                let mut nonce = [0u8; HEADER_NONCE_LENGTH];
                fill_random(rng, &mut nonce)?;
                Some((he.hks.clone(), nonce))
            }
            Mode::Plain => None,
        };
        let dhs = step.as_ref().map_or(&self.dhs, |step| &step.dhs);
        let header = Header {
            dh: dhs.public().to_bytes(),
            pn: self.pn,
            n,
        };
        Ok(SendPlan {
            step,
            cks,
            ns: n + 1,
            header,
            mk,
            hks,
        })
    }

    /// The deferred half of `DHRatchet`: `DHs = GENERATE_DH()`;
    /// `RK, CKs (, NHKs) = KDF_RK(_HE)(RK, DH(DHs, DHr))`.
    fn plan_send_step<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<(ChainKey, SendStep), Error> {
        let dhs = RatchetKeyPair::generate(rng)?;
        let dh_out = diffie_hellman(&dhs.secret, &self.dhr)?;
        let (rk, ck, nhks) = match &self.mode {
            Mode::HeaderEncrypted(_) => {
                let (rk, ck, nhks) = self.rk.ratchet_he(&dh_out);
                (rk, ck, Some(nhks))
            }
            Mode::Plain => {
                let (rk, ck) = self.rk.ratchet(&dh_out);
                (rk, ck, None)
            }
        };
        Ok((ck, SendStep { dhs, rk, nhks }))
    }

    /// Applies a [`SendPlan`] once its message is encrypted.
    pub(crate) fn commit_send(&mut self, plan: SendPlan) {
        if let Some(step) = plan.step {
            self.dhs = step.dhs;
            self.rk = step.rk;
            if let (Mode::HeaderEncrypted(he), Some(nhks)) = (&mut self.mode, step.nhks) {
                he.nhks = nhks;
            }
        }
        self.sending = SendingChain::Active {
            ck: plan.cks,
            n: plan.ns,
        };
    }

    /// Which key a message with this cleartext header needs (§3.5), with every bound
    /// checked and nothing derived (SPEC.md §4.4, §6.6): a stored skipped key, the current
    /// receiving chain, or a DH ratchet step to a new chain.
    pub(crate) fn route(&self, header: &Header) -> Result<Route, Error> {
        if self.is_header_encrypted() {
            return Err(Error::WrongSession);
        }
        if self.skipped.get(&header.dh, header.n).is_some() {
            return Ok(Route::Stored);
        }
        if self.dhr.as_bytes() == &header.dh {
            self.check_current(header)?;
            Ok(Route::Current)
        } else {
            check_step(&self.step_from(), header)?;
            Ok(Route::Next)
        }
    }

    /// §3.5 `RatchetDecrypt` for a cleartext header, transactional. `body` is ciphertext
    /// followed by the 16-byte tag; `aad` is the associated data the sender authenticated.
    pub(crate) fn decrypt(
        &mut self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let route = self.route(header)?;
        self.decrypt_weighed(header, route, aad, body)
    }

    /// The header of a header-encrypted message and which key it needs (§4.6
    /// `DecryptHeader`): the header keys of stored skipped keys, then `HKr`, then `NHKr` (at
    /// most `MAX_SKIPPED_HEADER_KEYS + 2` trial decryptions of the 40-byte header), then
    /// the bounds. No message key is derived.
    pub(crate) fn route_he(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> Result<(Header, Route), Error> {
        let opened = self.open_header(sealed, header_aad)?;
        self.route_opened(opened)
    }

    /// How a message weighs in this state (SPEC.md §6.6): whether the state holds the
    /// message's chain (its ratchet key is `DHr` or has stored skipped keys), and its route.
    pub(crate) fn weigh(&self, header: &Header) -> Weight {
        Weight {
            held: self.dhr.as_bytes() == &header.dh || self.skipped.has_chain(&header.dh),
            route: self.route(header).map(|route| (*header, route)),
        }
    }

    /// [`RatchetState::weigh`] for an encrypted header: the state holds the message if one of
    /// its header keys opens the header.
    pub(crate) fn weigh_he(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> Weight {
        let (held, opened) = self.try_open_header(sealed, header_aad);
        Weight {
            held,
            route: opened.and_then(|opened| self.route_opened(opened)),
        }
    }

    /// `TrySkippedMessageKeysHE`'s header trial, then `DecryptHeader` (`HKr`, then `NHKr`).
    fn open_header(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> Result<Opened, Error> {
        self.try_open_header(sealed, header_aad).1
    }

    /// [`RatchetState::open_header`], and whether one of the header keys opened the header
    /// (also when what it opened is then refused: a stored pair's header key opening a
    /// header with another ratchet key settles it, SPEC.md §10.1).
    fn try_open_header(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> (bool, Result<Opened, Error>) {
        let Mode::HeaderEncrypted(he) = &self.mode else {
            return (false, Err(Error::WrongSession));
        };
        match he.open_skipped(sealed, header_aad) {
            Ok(Some(header)) => {
                return (
                    true,
                    Ok(Opened {
                        header,
                        by_skipped: true,
                        chain: Chain::Current,
                    }),
                )
            }
            Err(e) => return (true, Err(e)),
            Ok(None) => {}
        }
        match he.open_current_or_next(sealed, header_aad) {
            Ok((header, chain)) => (
                true,
                Ok(Opened {
                    header,
                    by_skipped: false,
                    chain,
                }),
            ),
            Err(e) => (false, Err(e)),
        }
    }

    /// The key an opened header needs, with the bounds checked.
    fn route_opened(&self, opened: Opened) -> Result<(Header, Route), Error> {
        let Opened {
            header,
            by_skipped,
            chain,
        } = opened;
        let current = self.dhr.to_bytes();
        if by_skipped {
            if self.skipped.get(&header.dh, header.n).is_some() {
                return Ok((header, Route::Stored));
            }
            // Not stored: a later message of the current chain, or a duplicate.
            if current != header.dh {
                return Err(Error::DuplicateOrExpired);
            }
            self.check_current(&header)?;
            return Ok((header, Route::Current));
        }
        // The header key says which chain; the ratchet key must agree.
        if (current == header.dh) != (chain == Chain::Current) {
            return Err(Error::DecryptionFailed);
        }
        match chain {
            Chain::Current => {
                self.check_current(&header)?;
                Ok((header, Route::Current))
            }
            Chain::Next => {
                check_step(&self.step_from(), &header)?;
                Ok((header, Route::Next))
            }
        }
    }

    /// §4.6 `RatchetDecryptHE`, transactional: `sealed` is the encrypted header, which
    /// authenticates `header_aad`; `aad` is the body's associated data.
    pub(crate) fn decrypt_he(
        &mut self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (header, route) = self.route_he(sealed, header_aad)?;
        self.decrypt_weighed(&header, route, aad, body)
    }

    /// Decrypts, transactionally, a message whose header and route were found in this same
    /// state (by [`RatchetState::route`], [`RatchetState::route_he`] or weighing, so that a
    /// header-encrypted header is not opened twice): a stored key is deleted once it
    /// decrypts; otherwise the plan is committed once the message authenticates.
    pub(crate) fn decrypt_weighed(
        &mut self,
        header: &Header,
        route: Route,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (ciphertext, tag) = split_tag(body)?;
        let chain = match route {
            Route::Stored => {
                let mk = self
                    .skipped
                    .get(&header.dh, header.n)
                    .ok_or(Error::Internal)?;
                let plaintext = open(mk, aad, ciphertext, &tag)?;
                self.skipped.remove(&header.dh, header.n);
                self.forget_empty_header_keys();
                return Ok(plaintext);
            }
            Route::Current => Chain::Current,
            Route::Next => Chain::Next,
        };
        let plan = self.plan_receive(header, chain)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag)?;
        self.commit(plan);
        Ok(plaintext)
    }

    /// Computes the public key of `DHs` if this state was loaded without it and its next
    /// message goes on the current sending chain (a deferred chain generates a new `DHs`),
    /// so that every send after the first costs no base-point multiplication. Changes no
    /// stored state.
    pub(crate) fn prepare_send(&mut self) {
        if matches!(self.sending, SendingChain::Active { .. }) {
            self.dhs.cache_public();
        }
    }

    /// The public key of `DHs`, the ratchet key of the messages this state sends.
    pub(crate) fn sending_ratchet_key(&self) -> [u8; 32] {
        self.dhs.public().to_bytes()
    }

    /// The bounds of a message in the current receiving chain (§4.4), checked before any
    /// key is derived; returns `Nr` after the message.
    fn check_current(&self, header: &Header) -> Result<(&ReceivingChain, u32), Error> {
        // The initiator's DHr starts as the responder's signed prekey, which never sends:
        // no chain, nothing to decrypt.
        let chain = self.receiving.as_ref().ok_or(Error::DecryptionFailed)?;
        if header.n < chain.n {
            return Err(Error::DuplicateOrExpired);
        }
        if header.n - chain.n > self.limits.max_skip {
            return Err(Error::TooFarAhead);
        }
        let nr = header.n.checked_add(1).ok_or(Error::TooFarAhead)?;
        Ok((chain, nr))
    }

    /// The checks and derivations of §3.5 / §4.6, without changing `self`.
    fn plan_receive(&self, header: &Header, chain: Chain) -> Result<ReceivePlan, Error> {
        match chain {
            Chain::Current => self.plan_current(header),
            Chain::Next => {
                let (step, mut plan) = plan_step(&self.step_from(), header)?;
                plan.step = Some(step);
                Ok(plan)
            }
        }
    }

    /// A message in the current receiving chain: skip to its key.
    fn plan_current(&self, header: &Header) -> Result<ReceivePlan, Error> {
        let (chain, nr) = self.check_current(header)?;
        let mut run = Staged::new(header.dh, chain.n, (header.n - chain.n) as usize);
        let (ck, mk) = skip_to(&chain.ck, chain.n, header.n, &mut run);
        let mut header_keys = Vec::new();
        if let Some(hkr) = self.hkr() {
            if !run.keys.is_empty() {
                header_keys.push((hkr.clone(), header.dh));
            }
        }
        Ok(ReceivePlan {
            step: None,
            chain: ReceivingChain { ck, n: nr },
            mk,
            // No allocation for the usual message, the chain's next: an empty run stores
            // nothing.
            skipped: if run.keys.is_empty() {
                Vec::new()
            } else {
                alloc::vec![run]
            },
            header_keys,
        })
    }

    /// `HKr`, in header-encrypted mode once the peer has replied.
    fn hkr(&self) -> Option<&HeaderKey> {
        match &self.mode {
            Mode::HeaderEncrypted(he) => he.hkr.as_ref(),
            Mode::Plain => None,
        }
    }

    fn step_from(&self) -> StepFrom<'_> {
        StepFrom {
            dhs: &self.dhs,
            rk: &self.rk,
            ending: self.receiving.as_ref().map(|chain| Ending {
                dhr: &self.dhr,
                chain,
                hkr: self.hkr(),
            }),
            next_header_keys: match &self.mode {
                Mode::HeaderEncrypted(he) => Some((&he.nhks, &he.nhkr)),
                Mode::Plain => None,
            },
            max_skip: self.limits.max_skip,
        }
    }

    fn commit(&mut self, plan: ReceivePlan) {
        if let Some(step) = plan.step {
            // The receiving half of DHRatchet; the sending half is deferred to the next send.
            if let SendingChain::Active { n, .. } =
                mem::replace(&mut self.sending, SendingChain::Deferred)
            {
                self.pn = n;
            }
            self.dhr = step.dhr;
            self.rk = step.rk;
            if let (Mode::HeaderEncrypted(he), Some(hs)) = (&mut self.mode, step.header) {
                he.hks = hs.hks;
                he.hkr = Some(hs.hkr);
                he.nhkr = hs.nhkr;
            }
        }
        self.receiving = Some(plan.chain);
        self.store_skipped(plan.skipped, plan.header_keys);
    }

    /// SPEC.md §4.6 step 5: stores every staged run in order, then bounds the store once;
    /// in header-encrypted mode records the header keys of their chains, at most
    /// [`MAX_SKIPPED_HEADER_KEYS`] (the oldest chain's keys are forgotten entirely).
    fn store_skipped(&mut self, runs: Vec<Staged>, header_keys: Vec<(HeaderKey, [u8; 32])>) {
        for run in runs {
            self.skipped.insert_run(run);
        }
        self.skipped
            .evict_to(self.limits.max_stored_skipped as usize);
        if let Mode::HeaderEncrypted(he) = &mut self.mode {
            he.add_skipped(header_keys, &mut self.skipped);
        }
        self.forget_empty_header_keys();
    }

    /// Evicts the oldest skipped keys beyond `cap` (and header keys left without any).
    pub(crate) fn evict_skipped_to(&mut self, cap: usize) {
        self.skipped.evict_to(cap);
        self.forget_empty_header_keys();
    }

    /// Drops the header keys of chains with no stored skipped key left.
    fn forget_empty_header_keys(&mut self) {
        if let Mode::HeaderEncrypted(he) = &mut self.mode {
            let skipped = &self.skipped;
            he.skipped.retain(|(_, dh)| skipped.has_chain(dh));
        }
    }
}

impl HeaderKeys {
    /// `TrySkippedMessageKeysHE`'s header trial: the header, if a stored chain's header key
    /// opens it. The ratchet key inside must be that chain's.
    fn open_skipped(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> Result<Option<Header>, Error> {
        for (hk, dh) in &self.skipped {
            if let Some(header) = hk.open(sealed, header_aad) {
                if header.dh != *dh {
                    return Err(Error::DecryptionFailed);
                }
                return Ok(Some(header));
            }
        }
        Ok(None)
    }

    /// `DecryptHeader`: `HKr` (the current chain), then `NHKr` (a DH ratchet step).
    fn open_current_or_next(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
    ) -> Result<(Header, Chain), Error> {
        if let Some(header) = self.hkr.as_ref().and_then(|hk| hk.open(sealed, header_aad)) {
            return Ok((header, Chain::Current));
        }
        match self.nhkr.open(sealed, header_aad) {
            Some(header) => Ok((header, Chain::Next)),
            None => Err(Error::DecryptionFailed),
        }
    }

    /// Records the header keys of chains that got skipped keys (each chain once), then
    /// bounds them, deleting the skipped keys of the chains whose header key is forgotten.
    fn add_skipped(&mut self, header_keys: Vec<(HeaderKey, [u8; 32])>, keys: &mut SkippedKeys) {
        for (hk, dh) in header_keys {
            if !self.skipped.iter().any(|(_, d)| *d == dh) {
                self.skipped.push_back((hk, dh));
            }
        }
        while self.skipped.len() > MAX_SKIPPED_HEADER_KEYS {
            if let Some((_, dh)) = self.skipped.pop_front() {
                keys.remove_chain(&dh);
            }
        }
    }
}

impl ResponderStart {
    /// §3.5 `RatchetDecrypt` of the initial message's cleartext header: the DH ratchet step
    /// to the initiator's first ratchet key. Yields the responder's [`RatchetState`] and the
    /// plaintext once the message authenticates.
    pub(crate) fn receive(
        self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<(RatchetState, Vec<u8>), Error> {
        let (ciphertext, tag) = split_tag(body)?;
        let (step, plan) = plan_step(&self.step_from(None), header)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag)?;
        Ok((self.into_state(step, plan), plaintext))
    }

    /// §4.4 `RatchetInitBobHE` (`NHKs = NHKB`, `NHKr = HKA`), then §4.6
    /// `RatchetDecryptHE` of the initial message, whose header opens under `NHKr`.
    pub(crate) fn receive_he(
        self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
        aad: &[u8],
        body: &[u8],
    ) -> Result<(RatchetState, Vec<u8>), Error> {
        let (hka, nhkb) = initial_header_keys(&self.sk);
        let (ciphertext, tag) = split_tag(body)?;
        let header = hka
            .open(sealed, header_aad)
            .ok_or(Error::DecryptionFailed)?;
        let (step, plan) = plan_step(&self.step_from(Some((&nhkb, &hka))), &header)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag)?;
        Ok((self.into_state(step, plan), plaintext))
    }

    fn step_from<'a>(
        &'a self,
        next_header_keys: Option<(&'a HeaderKey, &'a HeaderKey)>,
    ) -> StepFrom<'a> {
        StepFrom {
            dhs: &self.dhs,
            rk: &self.sk,
            ending: None,
            next_header_keys,
            max_skip: self.limits.max_skip,
        }
    }

    /// The state after the first receiving step: `DHr`, `RK` and the receiving chain from
    /// the step, the sending half deferred, and in header-encrypted mode
    /// `HKs = NHKs = NHKB`, `HKr = HKA`.
    fn into_state(self, step: StepPlan, plan: ReceivePlan) -> RatchetState {
        let mode = match step.header {
            Some(hs) => Mode::HeaderEncrypted(HeaderKeys {
                nhks: hs.hks.clone(),
                hks: hs.hks,
                hkr: Some(hs.hkr),
                nhkr: hs.nhkr,
                skipped: Default::default(),
            }),
            None => Mode::Plain,
        };
        let mut state = RatchetState {
            dhs: self.dhs,
            dhr: step.dhr,
            rk: step.rk,
            sending: SendingChain::Deferred,
            receiving: Some(plan.chain),
            pn: 0,
            skipped: SkippedKeys::default(),
            limits: self.limits,
            mode,
        };
        state.store_skipped(plan.skipped, plan.header_keys);
        state
    }
}

/// The checks of a DH ratchet step to the chain of `header` (SPEC.md §4.4), before any key
/// is derived: the peer's ratchet key and `Nr` after the message.
fn check_step(from: &StepFrom<'_>, header: &Header) -> Result<(PublicKey, u32), Error> {
    // A message carrying our own ratchet key is one of ours reflected back, never the
    // peer's.
    if header.dh == from.dhs.public().to_bytes() {
        return Err(Error::DecryptionFailed);
    }
    if let Some(end) = &from.ending {
        if header.pn > end.chain.n && header.pn - end.chain.n > from.max_skip {
            return Err(Error::TooFarAhead);
        }
    }
    if header.n > from.max_skip {
        return Err(Error::TooFarAhead);
    }
    let nr = header.n.checked_add(1).ok_or(Error::TooFarAhead)?;
    Ok((x25519_public_from_bytes(&header.dh)?, nr))
}

/// §3.5 `DHRatchet`'s receiving half (§4.6 `DHRatchetHE`) and the skipping around it,
/// planned: `SkipMessageKeys(PN)` on the chain being ended, the root step, then the skip
/// to the message's key in the new chain. Both bounds are checked before any key is
/// derived (SPEC.md §4.4).
fn plan_step(from: &StepFrom<'_>, header: &Header) -> Result<(StepPlan, ReceivePlan), Error> {
    let (remote, nr) = check_step(from, header)?;
    let dh_out = diffie_hellman(&from.dhs.secret, &remote)?;
    let mut skipped = Vec::new();
    let mut header_keys = Vec::new();
    if let Some(end) = &from.ending {
        end.skip_rest(header.pn, &mut skipped, &mut header_keys);
    }
    let (rk, ck, header_step) = from.root_step(&dh_out, header, &mut header_keys);
    let mut run = Staged::new(header.dh, 0, header.n as usize);
    let (ck, mk) = skip_to(&ck, 0, header.n, &mut run);
    if !run.keys.is_empty() {
        skipped.push(run);
    }
    let step = StepPlan {
        rk,
        dhr: remote,
        header: header_step,
    };
    let plan = ReceivePlan {
        step: None,
        chain: ReceivingChain { ck, n: nr },
        mk,
        skipped,
        header_keys,
    };
    Ok((step, plan))
}

impl StepFrom<'_> {
    /// `RK, CKr = KDF_RK(RK, DH(DHs, DHr))`, or in header-encrypted mode
    /// `RK, CKr, NHKr = KDF_RK_HE(..)` with `HKs = NHKs`, `HKr = NHKr`; a new chain that
    /// will hold skipped keys records `HKr` for them.
    fn root_step(
        &self,
        dh_out: &[u8; 32],
        header: &Header,
        header_keys: &mut Vec<(HeaderKey, [u8; 32])>,
    ) -> (RootKey, ChainKey, Option<HeaderStep>) {
        let Some((nhks, nhkr)) = self.next_header_keys else {
            let (rk, ck) = self.rk.ratchet(dh_out);
            return (rk, ck, None);
        };
        let (rk, ck, next) = self.rk.ratchet_he(dh_out);
        if header.n > 0 {
            header_keys.push((nhkr.clone(), header.dh));
        }
        let step = HeaderStep {
            hks: nhks.clone(),
            hkr: nhkr.clone(),
            nhkr: next,
        };
        (rk, ck, Some(step))
    }
}

impl Ending<'_> {
    /// `SkipMessageKeys(state, PN)` on the chain being ended: stages its keys up to `pn`
    /// and, in header-encrypted mode, its header key.
    fn skip_rest(
        &self,
        pn: u32,
        skipped: &mut Vec<Staged>,
        header_keys: &mut Vec<(HeaderKey, [u8; 32])>,
    ) {
        if pn <= self.chain.n {
            return;
        }
        let dh = self.dhr.to_bytes();
        let mut run = Staged::new(dh, self.chain.n, (pn - self.chain.n) as usize);
        let (_, last) = skip_to(&self.chain.ck, self.chain.n, pn - 1, &mut run);
        run.keys.push(Some(last));
        skipped.push(run);
        if let Some(hkr) = self.hkr {
            header_keys.push((hkr.clone(), dh));
        }
    }
}

/// Splits `ciphertext || tag`.
fn split_tag(body: &[u8]) -> Result<(&[u8], [u8; TAG_LENGTH]), Error> {
    let ct_len = body.len().checked_sub(TAG_LENGTH).ok_or(Error::Truncated)?;
    let (ciphertext, tag) = body.split_at(ct_len);
    let mut tag_bytes = [0u8; TAG_LENGTH];
    tag_bytes.copy_from_slice(tag);
    Ok((ciphertext, tag_bytes))
}

/// Advances `ck` (at index `from`) to index `to`, storing the keys of `from..to` in
/// `run`, and returns the chain key after `to` and the message key at `to`. `ck` itself is
/// read in place, not copied. Requires `from <= to`; callers bound `to - from` by
/// `max_skip`.
fn skip_to(ck: &ChainKey, from: u32, to: u32, run: &mut Staged) -> (ChainKey, MessageKey) {
    let (mut ck, mut mk) = ck.step();
    for _ in from..to {
        run.keys.push(Some(mk));
        (ck, mk) = ck.step();
    }
    (ck, mk)
}

/// `DECRYPT(mk, ciphertext, aad)`, then the plaintext decoding of SPEC.md §4.9.
fn open(
    mk: &MessageKey,
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LENGTH],
) -> Result<Vec<u8>, Error> {
    let mut plaintext = ciphertext.to_vec();
    mk.open_in_place(aad, &mut plaintext, tag)?;
    match decoded_length(&plaintext) {
        Ok(len) => {
            plaintext.truncate(len);
            Ok(plaintext)
        }
        Err(e) => {
            plaintext.zeroize();
            Err(e)
        }
    }
}
