//! The crate's one crypto interface: every X25519, HMAC-SHA-256, HKDF-SHA-256, SHA-256 and
//! AES-256-GCM-SIV operation of the protocol code goes through the functions of this
//! module (SPEC.md §1 fixes the primitives; §2.2 the X25519 checks).
//!
//! [`Crypto`] is implemented by a zero-sized type and selected at compile time by
//! [`Active`]: static dispatch, nothing to configure at run time, no cost over calling the
//! crates directly (the same idea as rustls' `CryptoProvider`, without its dynamic part).
//! Its signatures take and return byte arrays only, so another implementation (for
//! example one on AWS-LC) can replace [`rustcrypto::RustCrypto`] without touching the
//! protocol code. Secret outputs come back in [`Zeroizing`] buffers or are written into
//! the caller's buffer; the incremental HMAC state wipes itself when dropped.
//!
//! What stays outside: Ed25519 signing and verification and the Edwards-to-Montgomery map
//! of identity keys (`keys`), the SHA-512 of identity seeds (`keys`) and of safety numbers
//! (`fingerprint`), and ML-KEM-768 (`pq`). The checks that belong to the protocol, not
//! to a primitive (an all-zero DH output is an error, SPEC.md §2.2; the output lengths),
//! are made here, once, for every implementation.
//!
//! A unit test below scans `src/` and fails if code outside this module names one of the
//! routed primitives' crates or calls X25519 directly.

use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

mod rustcrypto;

/// The implementation this build uses.
pub(crate) type Active = rustcrypto::RustCrypto;

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
