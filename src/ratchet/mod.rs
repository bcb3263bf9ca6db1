//! Double Ratchet §3.4 (`RatchetEncrypt`) and §3.5 (`RatchetDecrypt`, `TrySkippedMessageKeys`,
//! `SkipMessageKeys`, `DHRatchet`), SPEC.md §4.
//!
//! Decryption is transactional: [`RatchetState::decrypt`] first plans every change (checks the
//! bounds, derives keys into local values), then authenticates the message, and only then
//! commits the plan. Any error leaves the state exactly as it was.

pub(crate) mod kdf;
pub(crate) mod skipped;
pub(crate) mod state;

use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use x25519_dalek::PublicKey;

use self::kdf::{ChainKey, MessageKey, RootKey, TAG_LENGTH};
pub(crate) use self::state::RatchetState;
use crate::error::Error;
use crate::keys::{diffie_hellman, x25519_public_from_bytes, RatchetKeyPair};

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
    /// Keys skipped over, in chain order (old chain first): `(ratchet key, N, mk)`.
    skipped: Vec<([u8; 32], u32, MessageKey)>,
}

impl RatchetState {
    /// §3.4 `RatchetEncrypt` up to the encryption itself: completes a deferred DH ratchet
    /// step if one is pending (§6.5), then advances the sending chain.
    /// Returns the header and the message key; the caller encrypts.
    pub(crate) fn next_sending_key<R: TryCryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<(Header, MessageKey), Error> {
        let chain = match &self.cks {
            Some(ck) => {
                if self.ns == u32::MAX {
                    return Err(Error::ChainExhausted);
                }
                ck.clone()
            }
            None => {
                // Deferred half of DHRatchet: DHs = GENERATE_DH(); RK, CKs = KDF_RK(RK, DH(DHs, DHr)).
                let dhr = self.dhr.ok_or(Error::WrongSession)?;
                let dhs = RatchetKeyPair::generate(rng)?;
                let dh_out = diffie_hellman(&dhs.secret, &dhr)?;
                let (rk, ck) = self.rk.ratchet(&dh_out);
                self.dhs = dhs;
                self.rk = rk;
                self.ns = 0;
                ck
            }
        };
        let (next, mk) = chain.step();
        let header = Header {
            dh: self.dhs.public.to_bytes(),
            pn: self.pn,
            n: self.ns,
        };
        self.cks = Some(next);
        self.ns += 1;
        Ok((header, mk))
    }

    /// §3.5 `RatchetDecrypt`, transactional. `body` is ciphertext followed by the 16-byte
    /// tag; `aad` is the associated data the sender authenticated.
    pub(crate) fn decrypt(
        &mut self,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let ct_len = body.len().checked_sub(TAG_LENGTH).ok_or(Error::Truncated)?;
        let (ciphertext, tag) = body.split_at(ct_len);
        let mut tag_bytes = [0u8; TAG_LENGTH];
        tag_bytes.copy_from_slice(tag);

        // TrySkippedMessageKeys.
        if let Some(mk) = self.skipped.get(&header.dh, header.n) {
            let plaintext = open(mk, aad, ciphertext, &tag_bytes)?;
            self.skipped.remove(&header.dh, header.n);
            return Ok(plaintext);
        }

        let plan = self.plan_receive(header)?;
        let plaintext = open(&plan.mk, aad, ciphertext, &tag_bytes)?;
        self.commit(plan);
        Ok(plaintext)
    }

    /// The checks and derivations of §3.5, without changing `self`.
    fn plan_receive(&self, header: &Header) -> Result<ReceivePlan, Error> {
        let max_skip = self.limits.max_skip;
        let mut skipped = Vec::new();
        let current = self.dhr.as_ref().map(PublicKey::as_bytes);

        if current == Some(&header.dh) {
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
            let (ckr, mk) = skip_to(ckr.clone(), self.nr, header.n, &header.dh, &mut skipped);
            return Ok(ReceivePlan {
                step: None,
                ckr,
                nr,
                mk,
                skipped,
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
                let (_, last) = skip_to(
                    ckr.clone(),
                    self.nr,
                    header.pn - 1,
                    old.as_bytes(),
                    &mut skipped,
                );
                skipped.push((old.to_bytes(), header.pn - 1, last));
            }
        }
        let (rk, ckr) = self.rk.ratchet(&dh_out);
        let (ckr, mk) = skip_to(ckr, 0, header.n, &header.dh, &mut skipped);
        Ok(ReceivePlan {
            step: Some((rk, remote)),
            ckr,
            nr,
            mk,
            skipped,
        })
    }

    fn commit(&mut self, plan: ReceivePlan) {
        let ReceivePlan {
            step,
            ckr,
            nr,
            mk: _,
            skipped,
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
        self.ckr = Some(ckr);
        self.nr = nr;
        let cap = self.limits.max_stored_skipped as usize;
        for (dh, n, key) in skipped {
            self.skipped.insert(dh, n, key, cap);
        }
    }
}

/// Advances `ck` (at index `from`) to index `to`, storing the keys of `from..to` in
/// `skipped`, and returns the chain key after `to` and the message key at `to`.
/// Requires `from <= to`; callers bound `to - from` by `max_skip`.
fn skip_to(
    mut ck: ChainKey,
    from: u32,
    to: u32,
    dh: &[u8; 32],
    skipped: &mut Vec<([u8; 32], u32, MessageKey)>,
) -> (ChainKey, MessageKey) {
    let mut i = from;
    loop {
        let (next, mk) = ck.step();
        ck = next;
        if i >= to {
            return (ck, mk);
        }
        skipped.push((*dh, i, mk));
        i += 1;
    }
}

fn open(
    mk: &MessageKey,
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LENGTH],
) -> Result<Vec<u8>, Error> {
    let mut plaintext = ciphertext.to_vec();
    mk.open_in_place(aad, &mut plaintext, tag)?;
    Ok(plaintext)
}
