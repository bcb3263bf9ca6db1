//! The one AEAD of profile v2 (SPEC.md §1, §4.1, §4.8, §7.6): AES-256-GCM-SIV (RFC 8452)
//! with a 12-byte nonce and a 16-byte tag appended to the ciphertext.
//!
//! GCM-SIV is nonce-misuse resistant: encrypting twice under the same key and nonce reveals
//! only whether the two (associated data, plaintext) pairs were equal, never a keystream or
//! the authentication key. That is what makes a session restored from an older copy safe
//! to use (SPEC.md §4.1): its next message key repeats one already used.
//!
//! GCM-SIV decrypts before it can verify. The `aes-gcm-siv` crate re-encrypts the buffer when
//! the tag does not verify, so on failure the caller's buffer holds the ciphertext again and
//! no unauthenticated plaintext byte leaves this module (tested below).

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};

use crate::error::Error;

/// Length of the tag appended to every ciphertext.
pub(crate) const TAG_LENGTH: usize = 16;
/// Length of a nonce.
pub(crate) const NONCE_LENGTH: usize = 12;

fn cipher(key: &[u8; 32]) -> Result<Aes256GcmSiv, Error> {
    // Keyed from the slice, so no copy of the key is left in a temporary array; a 32-byte
    // key is always valid.
    Aes256GcmSiv::new_from_slice(key).map_err(|_| Error::Internal)
}

/// Encrypts `buf` in place under `key` and `nonce` with associated data `aad`; returns the
/// tag.
///
/// # Errors
/// [`Error::Internal`] only: the inputs are bounded far below RFC 8452's limits.
pub(crate) fn seal_in_place(
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

/// Verifies `tag` and decrypts `buf` in place.
///
/// # Errors
/// [`Error::DecryptionFailed`] if the tag does not verify; `buf` then holds the ciphertext
/// it held before the call.
pub(crate) fn open_in_place(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8452 Appendix C.2 (AEAD_AES_256_GCM_SIV), the vector with an 8-byte plaintext
    /// and no associated data.
    #[test]
    fn rfc_8452_vector() {
        let mut key = [0u8; 32];
        key[0] = 0x01;
        let mut nonce = [0u8; 12];
        nonce[0] = 0x03;
        let mut buf = [0x01, 0, 0, 0, 0, 0, 0, 0];
        let tag = seal_in_place(&key, &nonce, &[], &mut buf).unwrap();
        assert_eq!(buf, [0xc2, 0xef, 0x32, 0x8e, 0x5c, 0x71, 0xc8, 0x3b]);
        assert_eq!(
            tag,
            [
                0x84, 0x31, 0x22, 0x13, 0x0f, 0x73, 0x64, 0xb7, 0x61, 0xe0, 0xb9, 0x74, 0x27, 0xe3,
                0xdf, 0x28
            ]
        );
        open_in_place(&key, &nonce, &[], &mut buf, &tag).unwrap();
        assert_eq!(buf, [0x01, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn failed_open_leaves_the_ciphertext() {
        let key = [9u8; 32];
        let nonce = [0u8; 12];
        let mut buf = *b"no plaintext byte may leak from a failed open";
        let tag = seal_in_place(&key, &nonce, b"ad", &mut buf).unwrap();
        let ciphertext = buf;
        for (aad, flip) in [(&b"AD"[..], 0usize), (&b"ad"[..], 1)] {
            let mut bad_tag = tag;
            bad_tag[0] ^= flip as u8;
            let mut attempt = ciphertext;
            assert_eq!(
                open_in_place(&key, &nonce, aad, &mut attempt, &bad_tag),
                Err(Error::DecryptionFailed)
            );
            assert_eq!(attempt, ciphertext);
        }
        open_in_place(&key, &nonce, b"ad", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"no plaintext byte may leak from a failed open");
    }
}
