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

// `seal_in_place` encrypts `buf` in place and returns the tag (`Error::Internal` only: the
// inputs are bounded far below RFC 8452's limits); `open_in_place` verifies the tag and
// decrypts in place (`Error::DecryptionFailed` if the tag does not verify, `buf` then
// holding the ciphertext it held before the call). Both are the crypto interface's.
pub(crate) use crate::backend::{aead_open as open_in_place, aead_seal as seal_in_place};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

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
