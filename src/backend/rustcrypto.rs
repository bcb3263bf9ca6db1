//! The [`Crypto`] implementation on the dalek and RustCrypto crates: `x25519-dalek`
//! (X25519), `hmac`, `hkdf` and `sha2` (HMAC-SHA-256, HKDF-SHA-256, SHA-256) and
//! `aes-gcm-siv` (AES-256-GCM-SIV). Every crate is built with its `zeroize` feature, so
//! the key schedules, HMAC states and X25519 secrets made here are wiped when dropped.
//!
//! `aes-gcm-siv` decrypts before it verifies and, when the tag does not verify,
//! re-encrypts the buffer: the caller's buffer then holds the ciphertext again, as
//! [`Crypto::aead_open`] requires (tested in `aead`).

use aes_gcm_siv::aead::{AeadInOut, KeyInit as _};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use hkdf::Hkdf;
use hmac::digest::FixedOutput;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::{Crypto, HmacSha256};
use crate::error::Error;
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

/// The dalek / RustCrypto implementation.
pub(crate) struct RustCrypto;

/// `hmac`'s HMAC-SHA-256. Its state is two SHA-256 cores (inner and outer) and a block
/// buffer, each of which wipes itself when dropped (`sha2`'s and `block-buffer`'s
/// `zeroize` features, which this crate turns on); `hmac` does not mark the whole type
/// `ZeroizeOnDrop`, so this wrapper does, and the core's marker is checked below.
#[derive(Clone)]
pub(crate) struct HmacState(Hmac<Sha256>);

impl ZeroizeOnDrop for HmacState {}
const _: fn() = || {
    fn wipes_on_drop<T: ZeroizeOnDrop>() {}
    wipes_on_drop::<sha2::block_api::Sha256VarCore>();
    wipes_on_drop::<StaticSecret>();
};

impl HmacSha256 for HmacState {
    #[inline]
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    #[inline]
    fn finalize_into(self, out: &mut [u8; 32]) {
        // Straight into the caller's buffer: no intermediate copy of the tag to wipe.
        FixedOutput::finalize_into(self.0, out.into());
    }
}

/// HMAC-SHA-256 keyed with its 64-byte key block, built as RFC 2104 §2 does (a key longer
/// than the block is hashed first, a shorter one padded with zeros): the same function,
/// and a keying that cannot fail.
fn hmac_from_block(key: &[u8]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <Hmac<Sha256> as hmac::KeyInit>::new(&(*block).into())
}

fn cipher(key: &[u8; 32]) -> Result<Aes256GcmSiv, Error> {
    // Keyed from the slice, so no copy of the key is left in a temporary array; a 32-byte
    // key is always valid.
    Aes256GcmSiv::new_from_slice(key).map_err(|_| Error::Internal)
}

impl Crypto for RustCrypto {
    type Hmac = HmacState;

    #[inline]
    fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
        // `StaticSecret` wipes itself when dropped. Building it takes the scalar by value,
        // a stack temporary Rust cannot wipe; dalek's own multiplication makes the same
        // kind of copy, so calling dalek directly (as before this interface) left as many.
        let secret = StaticSecret::from(*secret);
        let shared = secret.diffie_hellman(&PublicKey::from(*public));
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    #[inline]
    fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
        PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
    }

    #[inline]
    fn hmac_sha256(key: &[u8]) -> HmacState {
        // `new_from_slice` accepts every key length for HMAC, so the fallback (the same
        // function, keyed by hand) is never taken.
        HmacState(
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| hmac_from_block(key)),
        )
    }

    fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), Error> {
        Hkdf::<Sha256>::new(Some(salt), ikm)
            .expand(info, okm)
            .map_err(|_| Error::Internal)
    }

    fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in parts {
            h.update(part);
        }
        h.finalize().into()
    }

    #[inline]
    fn aead_seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LENGTH], Error> {
        let tag = cipher(key)?
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into())
            .map_err(|_| Error::Internal)?;
        Ok(tag.into())
    }

    #[inline]
    fn aead_open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LENGTH],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LENGTH],
    ) -> Result<(), Error> {
        cipher(key)?
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
            .map_err(|_| Error::DecryptionFailed)
    }
}
