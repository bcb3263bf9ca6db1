//! Double Ratchet §3.4 (`RatchetEncrypt`) and §3.5 (`RatchetDecrypt`, `TrySkippedMessageKeys`,
//! `SkipMessageKeys`, `DHRatchet`), and their header-encrypted forms of §4.5-§4.6;
//! SPEC.md §4.
//!
//! Decryption is transactional: [`RatchetState::decrypt`] first plans every change (checks the
//! bounds, derives keys into local values), then authenticates the message, and only then
//! commits the plan. Any error leaves the state exactly as it was.

pub(crate) mod header;
pub(crate) mod kdf;
pub(crate) mod skipped;
pub(crate) mod state;

use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use x25519_dalek::PublicKey;
use zeroize::Zeroize;

use self::header::{HeaderKey, ENCRYPTED_HEADER_LENGTH, HEADER_NONCE_LENGTH};
use self::kdf::{ChainKey, MessageKey, RootKey};
use self::skipped::Staged;
pub(crate) use self::state::RatchetState;
use self::state::MAX_SKIPPED_HEADER_KEYS;
use crate::aead::TAG_LENGTH;
use crate::error::Error;
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
    /// A DH ratchet step: the new root key and the new `DHr`.
    step: Option<(RootKey, PublicKey)>,
    ckr: ChainKey,
    nr: u32,
    mk: MessageKey,
    /// Keys skipped over, in chain order (old chain first), as runs.
    skipped: Vec<Staged>,
    /// Header-encrypted mode: the header keys after a DH ratchet step.
    he_step: Option<HeaderStep>,
    /// Header-encrypted mode: `(HK, ratchet key)` of the chains that get skipped keys.
    header_keys: Vec<(HeaderKey, [u8; 32])>,
}

/// `HKs = NHKs; HKr = NHKr; NHKr` from `KDF_RK_HE` (Double Ratchet §4.6 `DHRatchetHE`).
struct HeaderStep {
    hks: HeaderKey,
    hkr: HeaderKey,
    nhkr: HeaderKey,
}

/// The receiving chain a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// The current receiving chain (`DHr`, `HKr`).
    Current,
    /// The peer's next chain: a DH ratchet step (new ratchet key, `NHKr`).
    Next,
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
        let (chain, step) = match &self.cks {
            Some(_) if self.ns == u32::MAX => return Err(Error::ChainExhausted),
            Some(ck) => (ck.clone(), None),
            None => {
                // Deferred half of DHRatchet: DHs = GENERATE_DH();
                // RK, CKs (, NHKs) = KDF_RK(_HE)(RK, DH(DHs, DHr)).
                let dhs = RatchetKeyPair::generate(rng)?;
                // Every session handed out knows DHr (the loader refuses one without).
                let dhr = self.dhr.as_ref().ok_or(Error::Internal)?;
                let dh_out = diffie_hellman(&dhs.secret, dhr)?;
                let (rk, ck, nhks) = match &self.he {
                    Some(_) => {
                        let (rk, ck, nhks) = self.rk.ratchet_he(&dh_out);
                        (rk, ck, Some(nhks))
                    }
                    None => {
                        let (rk, ck) = self.rk.ratchet(&dh_out);
                        (rk, ck, None)
                    }
                };
                (ck, Some(SendStep { dhs, rk, nhks }))
            }
        };
        let hks = match &self.he {
            Some(he) => {
                // Every header-encrypted session handed out has HKs (the responder's is set
                // by the initial message it was created from; the loader refuses one without).
                let hks = he.hks.clone().ok_or(Error::Internal)?;
                let mut nonce = [0u8; HEADER_NONCE_LENGTH];
                fill_random(rng, &mut nonce)?;
                Some((hks, nonce))
            }
            None => None,
        };
        let (cks, mk) = chain.step();
        let (dhs, n) = match &step {
            Some(step) => (&step.dhs, 0),
            None => (&self.dhs, self.ns),
        };
        let header = Header {
            dh: dhs.public.to_bytes(),
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

    /// Applies a [`SendPlan`] once its message is encrypted.
    pub(crate) fn commit_send(&mut self, plan: SendPlan) {
        if let Some(step) = plan.step {
            self.dhs = step.dhs;
            self.rk = step.rk;
            if let (Some(he), Some(nhks)) = (&mut self.he, step.nhks) {
                he.nhks = nhks;
            }
        }
        self.cks = Some(plan.cks);
        self.ns = plan.ns;
    }

    /// §3.5 `RatchetDecrypt` for a cleartext header, transactional. `body` is ciphertext
    /// followed by the 16-byte tag; `aad` is the associated data the sender authenticated.
    pub(crate) fn decrypt(
        &mut self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        if self.he.is_some() {
            return Err(Error::WrongSession);
        }
        let (ciphertext, tag) = split_tag(body)?;

        // TrySkippedMessageKeys.
        if let Some(mk) = self.skipped.get(&header.dh, header.n) {
            let plaintext = open(mk, aad, ciphertext, &tag)?;
            self.skipped.remove(&header.dh, header.n);
            return Ok(plaintext);
        }

        let chain = if self.dhr.as_ref().map(PublicKey::as_bytes) == Some(&header.dh) {
            Chain::Current
        } else {
            Chain::Next
        };
        let plan = self.plan_receive(header, chain)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag)?;
        self.commit(plan);
        Ok(plaintext)
    }

    /// §4.6 `RatchetDecryptHE`, transactional: `sealed` is the encrypted header, which
    /// authenticates `header_aad`; `aad` is the body's associated data. Tries the header
    /// keys of stored skipped keys, then `HKr`, then `NHKr`: at most
    /// `MAX_SKIPPED_HEADER_KEYS + 2` trial decryptions.
    pub(crate) fn decrypt_he(
        &mut self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        header_aad: &[u8],
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let he = self.he.as_ref().ok_or(Error::WrongSession)?;
        let (ciphertext, tag) = split_tag(body)?;
        let current = self.dhr.as_ref().map(PublicKey::as_bytes);

        // TrySkippedMessageKeysHE.
        let mut found = None;
        for (hk, dh) in &he.skipped {
            if let Some(header) = hk.open(sealed, header_aad) {
                if header.dh != *dh {
                    return Err(Error::DecryptionFailed);
                }
                found = Some(header);
                break;
            }
        }
        if let Some(header) = found {
            if let Some(mk) = self.skipped.get(&header.dh, header.n) {
                let plaintext = open(mk, aad, ciphertext, &tag)?;
                self.skipped.remove(&header.dh, header.n);
                self.forget_empty_header_keys();
                return Ok(plaintext);
            }
            // Not stored: a later message of the current chain, or a duplicate.
            if current != Some(&header.dh) {
                return Err(Error::DuplicateOrExpired);
            }
        }

        // DecryptHeader: HKr, then NHKr.
        let (header, chain) = match found {
            Some(header) => (header, Chain::Current),
            None => match he.hkr.as_ref().and_then(|hk| hk.open(sealed, header_aad)) {
                Some(header) => (header, Chain::Current),
                None => match he.nhkr.open(sealed, header_aad) {
                    Some(header) => (header, Chain::Next),
                    None => return Err(Error::DecryptionFailed),
                },
            },
        };
        // The header key says which chain; the ratchet key must agree.
        let is_current = current == Some(&header.dh);
        if is_current != (chain == Chain::Current) {
            return Err(Error::DecryptionFailed);
        }
        let plan = self.plan_receive(&header, chain)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag)?;
        self.commit(plan);
        Ok(plaintext)
    }

    /// The checks and derivations of §3.5 / §4.6, without changing `self`.
    fn plan_receive(&self, header: &Header, chain: Chain) -> Result<ReceivePlan, Error> {
        let max_skip = self.limits.max_skip;
        let mut skipped = Vec::new();
        let mut header_keys = Vec::new();

        if chain == Chain::Current {
            // A message in the current receiving chain. The initiator's DHr starts as the
            // responder's signed prekey, which never sends: no chain, nothing to decrypt.
            let ckr = self.ckr.as_ref().ok_or(Error::DecryptionFailed)?;
            if header.n < self.nr {
                return Err(Error::DuplicateOrExpired);
            }
            if header.n - self.nr > max_skip {
                return Err(Error::TooFarAhead);
            }
            let nr = header.n.checked_add(1).ok_or(Error::TooFarAhead)?;
            let mut run = Staged::new(header.dh, self.nr, (header.n - self.nr) as usize);
            let (ckr, mk) = skip_to(ckr.clone(), self.nr, header.n, &mut run);
            if let Some(hkr) = self.he.as_ref().and_then(|he| he.hkr.as_ref()) {
                if !run.keys.is_empty() {
                    header_keys.push((hkr.clone(), header.dh));
                }
            }
            skipped.push(run);
            return Ok(ReceivePlan {
                step: None,
                ckr,
                nr,
                mk,
                skipped,
                he_step: None,
                header_keys,
            });
        }

        // A new ratchet key: DHRatchet. A message carrying our own ratchet key is one of
        // ours reflected back, never the peer's.
        if header.dh == self.dhs.public.to_bytes() {
            return Err(Error::DecryptionFailed);
        }
        // Both bounds are checked before any key is derived (SPEC.md §4.4).
        if self.ckr.is_some() && header.pn > self.nr && header.pn - self.nr > max_skip {
            return Err(Error::TooFarAhead);
        }
        if header.n > max_skip {
            return Err(Error::TooFarAhead);
        }
        let nr = header.n.checked_add(1).ok_or(Error::TooFarAhead)?;
        let remote = x25519_public_from_bytes(&header.dh)?;
        let dh_out = diffie_hellman(&self.dhs.secret, &remote)?;

        // SkipMessageKeys(state, header.pn) on the chain being ended.
        if let (Some(ckr), Some(old)) = (&self.ckr, &self.dhr) {
            if header.pn > self.nr {
                let count = (header.pn - self.nr) as usize;
                let mut run = Staged::new(old.to_bytes(), self.nr, count);
                let (_, last) = skip_to(ckr.clone(), self.nr, header.pn - 1, &mut run);
                run.keys.push(Some(last));
                skipped.push(run);
                if let Some(hkr) = self.he.as_ref().and_then(|he| he.hkr.as_ref()) {
                    header_keys.push((hkr.clone(), old.to_bytes()));
                }
            }
        }
        let (rk, ckr, he_step) = match &self.he {
            Some(he) => {
                let (rk, ckr, nhkr) = self.rk.ratchet_he(&dh_out);
                let step = HeaderStep {
                    hks: he.nhks.clone(),
                    hkr: he.nhkr.clone(),
                    nhkr,
                };
                if header.n > 0 {
                    header_keys.push((step.hkr.clone(), header.dh));
                }
                (rk, ckr, Some(step))
            }
            None => {
                let (rk, ckr) = self.rk.ratchet(&dh_out);
                (rk, ckr, None)
            }
        };
        let mut run = Staged::new(header.dh, 0, header.n as usize);
        let (ckr, mk) = skip_to(ckr, 0, header.n, &mut run);
        skipped.push(run);
        Ok(ReceivePlan {
            step: Some((rk, remote)),
            ckr,
            nr,
            mk,
            skipped,
            he_step,
            header_keys,
        })
    }

    fn commit(&mut self, plan: ReceivePlan) {
        let ReceivePlan {
            step,
            ckr,
            nr,
            mk: _,
            skipped,
            he_step,
            header_keys,
        } = plan;
        if let Some((rk, remote)) = step {
            // The receiving half of DHRatchet; the sending half is deferred to the next send.
            if self.cks.take().is_some() {
                self.pn = self.ns;
                self.ns = 0;
            }
            self.dhr = Some(remote);
            self.rk = rk;
        }
        if let (Some(he), Some(hs)) = (&mut self.he, he_step) {
            he.hks = Some(hs.hks);
            he.hkr = Some(hs.hkr);
            he.nhkr = hs.nhkr;
        }
        self.ckr = Some(ckr);
        self.nr = nr;
        // SPEC.md §4.6 step 5: every staged run in order, then the bound, once.
        for run in skipped {
            self.skipped.insert_run(run);
        }
        self.skipped
            .evict_to(self.limits.max_stored_skipped as usize);
        if let Some(he) = &mut self.he {
            for (hk, dh) in header_keys {
                if !he.skipped.iter().any(|(_, d)| *d == dh) {
                    he.skipped.push_back((hk, dh));
                }
            }
            // Bound the header keys kept: forget the oldest chain's keys entirely.
            while he.skipped.len() > MAX_SKIPPED_HEADER_KEYS {
                if let Some((_, dh)) = he.skipped.pop_front() {
                    self.skipped.remove_chain(&dh);
                }
            }
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
        if let Some(he) = &mut self.he {
            let skipped = &self.skipped;
            he.skipped.retain(|(_, dh)| skipped.has_chain(dh));
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
/// `run`, and returns the chain key after `to` and the message key at `to`.
/// Requires `from <= to`; callers bound `to - from` by `max_skip`.
fn skip_to(mut ck: ChainKey, from: u32, to: u32, run: &mut Staged) -> (ChainKey, MessageKey) {
    let mut i = from;
    loop {
        let (next, mk) = ck.step();
        ck = next;
        if i >= to {
            return (ck, mk);
        }
        run.keys.push(Some(mk));
        i += 1;
    }
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
