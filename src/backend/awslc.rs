//! The [`Crypto`] implementation of the `aws-lc` feature: X25519 and AES-256-GCM-SIV from
//! AWS-LC through `aws-lc-rs`'s safe API; HMAC-SHA-256, HKDF-SHA-256 and SHA-256 from
//! [`RustCrypto`], which is faster at the short inputs of this protocol on the machines
//! measured (see the module documentation of `backend`).
//!
//! Keys come in as bytes and are imported: AWS-LC's own random generator is never used
//! (every secret is drawn from the caller's RNG by the protocol code), so this backend and
//! the default one give byte-identical outputs for the same RNG (the vectors and golden
//! files prove it under both; `backend::tests` cross-checks the two on edge inputs).
//!
//! # X25519
//!
//! `agreement::PrivateKey::from_private_key` imports the scalar as AWS-LC's
//! `EVP_PKEY_new_raw_private_key`, which also computes its public key (a fixed-base
//! multiplication, about a fifth of each DH's time here, that `aws-lc-rs`'s safe API has
//! no way to skip; the interface takes the scalar afresh for every DH); the peer's
//! u-coordinate is imported raw (no validation: every 32-byte string is accepted, as RFC
//! 7748 requires), and `agreement::agree` runs `EVP_PKEY_derive`. AWS-LC clamps the scalar,
//! ignores the top bit of the u-coordinate and reduces it modulo p, as RFC 7748 and
//! `x25519-dalek` do, but *refuses* an all-zero output (a low-order point) instead of
//! returning it. Whenever AWS-LC refuses anything, this backend returns what
//! [`RustCrypto`] computes for the same input: for a low-order point that is the all-zero
//! output, which the shared check in `backend::x25519` turns into
//! [`Error::NonContributoryKey`], exactly as on the default backend. So both backends
//! return the same `Result` for every input, whatever the reason for a refusal.
//!
//! # AES-256-GCM-SIV
//!
//! `aead::LessSafeKey` with `AES_256_GCM_SIV` (the nonce is the caller's; profile v2 is
//! built for GCM-SIV's misuse resistance). AWS-LC decrypts into the output before it checks
//! the tag and leaves the unauthenticated result there when the check fails; the contract
//! of [`Crypto::aead_open`] is that `buf` then holds its ciphertext again, so the
//! ciphertext is copied before the call and copied back on failure. (Ciphertext is public:
//! the copy needs no wiping.)
//!
//! # What is wiped
//!
//! Rust side: the shared secret comes back from `aws-lc-rs` in a `Zeroizing` vector and is
//! copied into the caller's `Zeroizing` array; no other Rust copy of a secret is made
//! here. C side: every `EVP_PKEY` (the private scalar, as AWS-LC's `X25519_KEY`) and every
//! `EVP_AEAD_CTX` (the AES-256 key schedule) is released through `OPENSSL_free`, which
//! overwrites the whole allocation with `OPENSSL_cleanse` before freeing it, and AWS-LC
//! wipes the clamped copy of the scalar that its X25519 makes on the stack. Not wiped by
//! AWS-LC: the per-nonce record keys that GCM-SIV derives from the key and the nonce
//! (the POLYVAL key and the round keys of the encryption key), which stay in its stack
//! frames until overwritten. They open only the one message (or header) of that key and
//! nonce, and do not give the key they were derived from.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use zeroize::Zeroizing;

use super::rustcrypto::RustCrypto;
use super::Crypto;
use crate::error::Error;
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

/// The AWS-LC implementation (X25519, AES-256-GCM-SIV), with RustCrypto's hashes and MACs.
pub(crate) struct AwsLc;

/// Ciphertexts up to this length are backed up on the stack by [`AwsLc::aead_open`]; longer
/// ones in a heap buffer. (Headers and short messages are well below it.)
const STACK_BACKUP: usize = 512;

/// The AEAD key, or `None` if AWS-LC cannot make one (it always can for 32 bytes, short of
/// memory).
fn aead_key(key: &[u8; 32]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM_SIV, key)
        .ok()
        .map(LessSafeKey::new)
}

/// X25519 on AWS-LC, or `None` where AWS-LC refuses (see the module documentation).
pub(super) fn x25519_aws_lc(secret: &[u8; 32], public: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    let key = PrivateKey::from_private_key(&X25519, secret).ok()?;
    agree(&key, public)
}

/// X25519 of an imported scalar, or `None` where AWS-LC refuses.
fn agree(key: &PrivateKey, public: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    agreement::agree(key, UnparsedPublicKey::new(&X25519, public), (), |shared| {
        let mut out = Zeroizing::new([0u8; 32]);
        if shared.len() != out.len() {
            return Err(());
        }
        out.copy_from_slice(shared);
        Ok(out)
    })
    .ok()
}

/// The X25519 public key on AWS-LC, or `None` where AWS-LC refuses.
pub(super) fn x25519_public_aws_lc(secret: &[u8; 32]) -> Option<[u8; 32]> {
    let public = PrivateKey::from_private_key(&X25519, secret)
        .ok()?
        .compute_public_key()
        .ok()?;
    public.as_ref().try_into().ok()
}

impl Crypto for AwsLc {
    type Hmac = <RustCrypto as Crypto>::Hmac;

    #[inline]
    fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
        match x25519_aws_lc(secret, public) {
            Some(shared) => Ok(shared),
            // A low-order point (or a failed allocation): the default backend's answer.
            None => RustCrypto::x25519(secret, public),
        }
    }

    fn x25519_many<const N: usize>(
        secret: &[u8; 32],
        publics: [&[u8; 32]; N],
    ) -> Result<[Zeroizing<[u8; 32]>; N], Error> {
        // One import (one fixed-base multiplication of AWS-LC's) for the N DHs.
        let key = PrivateKey::from_private_key(&X25519, secret).ok();
        let mut out: [Zeroizing<[u8; 32]>; N] = core::array::from_fn(|_| Zeroizing::new([0u8; 32]));
        for (shared, public) in out.iter_mut().zip(publics) {
            *shared = match key.as_ref().and_then(|key| agree(key, public)) {
                Some(dh) => dh,
                // Where AWS-LC refuses: the default backend's answer, as in `x25519`.
                None => RustCrypto::x25519(secret, public)?,
            };
        }
        Ok(out)
    }

    #[inline]
    fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
        x25519_public_aws_lc(secret).unwrap_or_else(|| RustCrypto::x25519_public(secret))
    }

    #[inline]
    fn hmac_sha256(key: &[u8]) -> Self::Hmac {
        RustCrypto::hmac_sha256(key)
    }

    #[inline]
    fn hmac_sha256_once(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
        RustCrypto::hmac_sha256_once(key, data)
    }

    #[inline]
    fn hmac_sha256_byte_pair(
        key: &[u8; 32],
        messages: (u8, u8),
        out_first: &mut [u8; 32],
        out_second: &mut [u8; 32],
    ) {
        RustCrypto::hmac_sha256_byte_pair(key, messages, out_first, out_second);
    }

    #[inline]
    fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), Error> {
        RustCrypto::hkdf_sha256(salt, ikm, info, okm)
    }

    #[inline]
    fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        RustCrypto::sha256(parts)
    }

    #[inline]
    fn aead_seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LENGTH], Error> {
        let key = aead_key(key).ok_or(Error::Internal)?;
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| Error::Internal)?;
        tag.as_ref().try_into().map_err(|_| Error::Internal)
    }

    fn aead_open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LENGTH],
    ) -> Result<(), Error> {
        let key = aead_key(key).ok_or(Error::Internal)?;
        // The ciphertext, to put back if the tag does not verify.
        let mut on_stack = [0u8; STACK_BACKUP];
        let on_heap;
        let backup: &[u8] = match on_stack.get_mut(..buf.len()) {
            Some(copy) => {
                copy.copy_from_slice(buf);
                copy
            }
            None => {
                on_heap = buf.to_vec();
                &on_heap
            }
        };
        let opened = key.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            tag,
            buf,
        );
        if opened.is_err() {
            buf.copy_from_slice(backup);
            return Err(Error::DecryptionFailed);
        }
        Ok(())
    }
}
