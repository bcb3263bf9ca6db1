//! The crate's one crypto interface: every X25519, HMAC-SHA-256, HKDF-SHA-256, SHA-256 and
//! AES-256-GCM-SIV operation of the protocol code goes through the functions of this
//! module (SPEC.md §1 fixes the primitives; §2.2 the X25519 checks).
//!
//! [`Crypto`] is implemented by a zero-sized type and selected at compile time by
//! [`Active`]: static dispatch, nothing to configure at run time, no cost over calling the
//! crates directly (the same idea as rustls' `CryptoProvider`, without its dynamic part).
//! Its signatures take and return byte arrays only, so an implementation can be replaced
//! without touching the protocol code. Secret outputs come back in [`Zeroizing`] buffers
//! or are written into the caller's buffer; the incremental HMAC state wipes itself when
//! dropped. Keys are always bytes the protocol code drew from the caller's RNG: no
//! implementation generates a key with a random generator of its own, so every
//! implementation gives byte-identical outputs (the vectors and golden files are checked
//! under each).
//!
//! # The implementations
//!
//! - [`rustcrypto::RustCrypto`], the default (pure Rust, `no_std`): `x25519-dalek`,
//!   `hmac`, `hkdf`, `sha2`, `aes-gcm-siv`.
//! - [`awslc::AwsLc`], with the `aws-lc` feature (`std` only, AWS-LC through `aws-lc-rs`):
//!   each primitive from whichever implementation was faster on the project's machine,
//!   measured one primitive at a time (x86-64, no target-specific flags):
//!
//!   | primitive | RustCrypto / dalek | AWS-LC | taken from |
//!   |---|---|---|---|
//!   | X25519 (one DH, key import included) | 45 µs | 22.5 µs | AWS-LC |
//!   | AES-256-GCM-SIV, 64-byte message (key setup included) | 0.64 µs | 0.20 µs | AWS-LC |
//!   | HMAC-SHA-256, two tags under one key (`KDF_CK`) | 0.28 µs | 0.56 µs | RustCrypto |
//!
//!   HKDF-SHA-256 and SHA-256 are HMAC's and SHA-256's and stay with RustCrypto too, and
//!   so does every method the trait implements by default. X3DH, which is mostly X25519,
//!   is the part that gains (`benches/backends.sh` compares the two backends).
//!
//! What stays outside: Ed25519 signing and verification and the Edwards-to-Montgomery map
//! of identity keys (`keys`), the SHA-512 of identity seeds (`keys`) and of safety numbers
//! (`fingerprint`), and ML-KEM-768 (`pq`). Ed25519 stays on `ed25519-dalek` under every
//! backend: SPEC.md's verification is `verify_strict` (a canonical S below the group
//! order, and no small-order public key or R), and AWS-LC's `ED25519_verify` checks S
//! but accepts small-order points, so moving it would accept signatures the default
//! build refuses. The checks that belong to the protocol, not to a primitive (an
//! all-zero DH output is an error, SPEC.md §2.2; the output lengths), are made here,
//! once, for every implementation.
//!
//! A unit test below scans `src/` and fails if code outside this module names one of the
//! routed primitives' crates (`aws-lc-rs` included) or calls X25519 directly; with the
//! `aws-lc` feature, others check AWS-LC against the default implementation on edge
//! inputs (non-canonical and low-order u-coordinates, failed opens).

use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

#[cfg(feature = "aws-lc")]
mod awslc;
mod rustcrypto;

/// The implementation this build uses: [`rustcrypto::RustCrypto`] by default,
/// [`awslc::AwsLc`] with the `aws-lc` feature.
#[cfg(not(feature = "aws-lc"))]
pub(crate) type Active = rustcrypto::RustCrypto;
/// The implementation this build uses: [`rustcrypto::RustCrypto`] by default,
/// [`awslc::AwsLc`] with the `aws-lc` feature.
#[cfg(feature = "aws-lc")]
pub(crate) type Active = awslc::AwsLc;

/// An incremental HMAC-SHA-256 computation. Cloning a keyed state reuses its key schedule;
/// every state is wiped when dropped.
pub(crate) trait HmacSha256: Clone + ZeroizeOnDrop {
    /// Appends `data` to the message.
    fn update(&mut self, data: &[u8]);
    /// Writes the 32-byte tag into `out` and consumes the state.
    fn finalize_into(self, out: &mut [u8; 32]);
}

/// The primitives of SPEC.md §1, as one implementation provides them. Associated functions
/// only: an implementation is a zero-sized type.
pub(crate) trait Crypto {
    /// The incremental HMAC-SHA-256 state of this implementation.
    type Hmac: HmacSha256;

    /// X25519 (RFC 7748) of the secret scalar `secret` (clamped by the function) and the
    /// u-coordinate `public`, without the all-zero check (made by [`x25519`]).
    ///
    /// # Errors
    /// An implementation that checks the output itself may return
    /// [`Error::NonContributoryKey`].
    fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error>;

    /// X25519 of one secret scalar with each of `publics`, in order, without the all-zero
    /// check (made by [`x25519_many`]): the DHs of X3DH that share a secret. The default
    /// calls [`Crypto::x25519`] for each; an implementation that must import the scalar
    /// before using it (AWS-LC) imports it once.
    ///
    /// # Errors
    /// As [`Crypto::x25519`].
    fn x25519_many<const N: usize>(
        secret: &[u8; 32],
        publics: [&[u8; 32]; N],
    ) -> Result<[Zeroizing<[u8; 32]>; N], Error> {
        let mut out: [Zeroizing<[u8; 32]>; N] = core::array::from_fn(|_| Zeroizing::new([0u8; 32]));
        for (shared, public) in out.iter_mut().zip(publics) {
            *shared = Self::x25519(secret, public)?;
        }
        Ok(out)
    }

    /// The X25519 public key (u-coordinate) of the secret scalar `secret`.
    fn x25519_public(secret: &[u8; 32]) -> [u8; 32];

    /// An HMAC-SHA-256 state keyed with `key` (any length, RFC 2104).
    fn hmac_sha256(key: &[u8]) -> Self::Hmac;

    /// `HMAC(key, data)` in one call. (No step of profile v2 MACs a single message with
    /// a fresh key today; the tests and RFC vectors use it.)
    #[cfg_attr(not(test), allow(dead_code))]
    fn hmac_sha256_once(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = Self::hmac_sha256(key);
        mac.update(data);
        let mut out = Zeroizing::new([0u8; 32]);
        mac.finalize_into(&mut out);
        out
    }

    /// `HMAC(key, [first])` into `out_first` and `HMAC(key, [second])` into `out_second`:
    /// two MACs of one-byte messages under one 32-byte key, the two outputs of `KDF_CK`
    /// (SPEC.md §4.1), the one HMAC of every message. The default computes the key schedule
    /// once and clones it; an implementation may compute the same two tags faster (the
    /// RustCrypto one fuses them on the SHA-256 compression function).
    fn hmac_sha256_byte_pair(
        key: &[u8; 32],
        (first, second): (u8, u8),
        out_first: &mut [u8; 32],
        out_second: &mut [u8; 32],
    ) {
        let keyed = Self::hmac_sha256(key);
        let mut mac = keyed.clone();
        mac.update(&[first]);
        mac.finalize_into(out_first);
        let mut mac = keyed;
        mac.update(&[second]);
        mac.finalize_into(out_second);
    }

    /// HKDF-SHA-256 (RFC 5869): extract with `salt` (an empty salt is 32 zero bytes) and
    /// `ikm`, then expand with `info` to fill `okm`.
    ///
    /// # Errors
    /// [`Error::Internal`] if `okm` is longer than 255 · 32 bytes.
    fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), Error>;

    /// SHA-256 (FIPS 180-4) of the concatenation of `parts`.
    fn sha256(parts: &[&[u8]]) -> [u8; 32];

    /// AES-256-GCM-SIV (RFC 8452): encrypts `buf` in place, returns the tag.
    ///
    /// # Errors
    /// [`Error::Internal`] only: the crate's inputs are far below RFC 8452's limits.
    fn aead_seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LENGTH], Error>;

    /// AES-256-GCM-SIV: verifies `tag` and decrypts `buf` in place.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] if the tag does not verify; `buf` then holds the
    /// ciphertext it held before the call (no unauthenticated plaintext is released).
    fn aead_open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LENGTH],
    ) -> Result<(), Error>;
}

/// The HMAC-SHA-256 state type of the active implementation.
pub(crate) type Hmac = <Active as Crypto>::Hmac;

/// `DH(secret, public)` with the contributory check of SPEC.md §1, §2.2: an all-zero
/// output is [`Error::NonContributoryKey`], never a key.
#[inline]
pub(crate) fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let shared = Active::x25519(secret, public)?;
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(Error::NonContributoryKey);
    }
    Ok(shared)
}

/// `DH(secret, public)` for each of `publics`, in order, each with the contributory check
/// of [`x25519`].
#[inline]
pub(crate) fn x25519_many<const N: usize>(
    secret: &[u8; 32],
    publics: [&[u8; 32]; N],
) -> Result<[Zeroizing<[u8; 32]>; N], Error> {
    let shared = Active::x25519_many(secret, publics)?;
    for dh in &shared {
        if bool::from(dh.ct_eq(&[0u8; 32])) {
            return Err(Error::NonContributoryKey);
        }
    }
    Ok(shared)
}

/// The X25519 public key of `secret`.
#[inline]
pub(crate) fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    Active::x25519_public(secret)
}

/// An HMAC-SHA-256 state keyed with `key`.
#[inline]
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac {
    Active::hmac_sha256(key)
}

/// `(HMAC(key, [first]), HMAC(key, [second]))` into the two outputs (see
/// [`Crypto::hmac_sha256_byte_pair`]).
#[inline]
pub(crate) fn hmac_sha256_byte_pair(
    key: &[u8; 32],
    messages: (u8, u8),
    out_first: &mut [u8; 32],
    out_second: &mut [u8; 32],
) {
    Active::hmac_sha256_byte_pair(key, messages, out_first, out_second);
}

/// `HKDF(salt, ikm, info, N)` (SPEC.md §1).
#[inline]
pub(crate) fn hkdf_sha256<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32, "HKDF-SHA-256 output is at most 8160 bytes") };
    let mut okm = Zeroizing::new([0u8; N]);
    if Active::hkdf_sha256(salt, ikm, info, okm.as_mut()).is_err() {
        // Unreachable: the length is checked at compile time above. Never hand out a
        // partial output.
        okm.as_mut().fill(0);
    }
    okm
}

/// SHA-256 of the concatenation of `parts`.
#[inline]
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    Active::sha256(parts)
}

/// AES-256-GCM-SIV encryption in place; returns the tag.
#[inline]
pub(crate) fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LENGTH], Error> {
    Active::aead_seal(key, nonce, aad, buf)
}

/// AES-256-GCM-SIV decryption in place (see [`Crypto::aead_open`]).
#[inline]
pub(crate) fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LENGTH],
) -> Result<(), Error> {
    Active::aead_open(key, nonce, aad, buf, tag)
}

#[cfg(test)]
mod tests;
