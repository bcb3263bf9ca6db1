//! The one AEAD of profile v2 (SPEC.md §1, §4.1, §4.8, §7.6): AES-256-GCM-SIV (RFC 8452)
//! with a 12-byte nonce and a 16-byte tag appended to the ciphertext.
//!
//! GCM-SIV is nonce-misuse resistant: encrypting twice under the same key and nonce reveals
//! only whether the two (associated data, plaintext) pairs were equal, never a keystream or
//! the authentication key. That is what makes a session restored from an older copy safe
//! to use (SPEC.md §4.1): its next message key repeats one already used.
//!
//! GCM-SIV decrypts before it can verify. The crypto interface (`backend`) requires that a
//! failed open leave the caller's buffer holding the ciphertext again, so no
//! unauthenticated plaintext byte leaves this module (tested below, through the active
//! implementation).

use crate::backend;
use crate::error::Error;
// Re-exported for the modules that still import them from here; the registry owns them.
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

/// Encrypts `buf` in place under `key` and `nonce` with associated data `aad`; returns the
/// tag.
///
/// # Errors
/// [`Error::Internal`] only: the inputs are bounded far below RFC 8452's limits.
#[inline]
pub(crate) fn seal_in_place(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LENGTH], Error> {
    backend::aead_seal(key, nonce, aad, buf)
}

/// Verifies `tag` and decrypts `buf` in place.
///
/// # Errors
/// [`Error::DecryptionFailed`] if the tag does not verify; `buf` then holds the ciphertext
/// it held before the call.
#[inline]
pub(crate) fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LENGTH],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LENGTH],
) -> Result<(), Error> {
    backend::aead_open(key, nonce, aad, buf, tag)
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
