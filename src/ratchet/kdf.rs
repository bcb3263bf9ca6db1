//! Double Ratchet §5.2 (recommended cryptographic algorithms), as fixed by SPEC.md §4.1:
//!
//! * `KDF_RK(rk, dh_out)`: HKDF-SHA-256 with salt = `rk`, IKM = `dh_out`,
//!   info = [`ROOT_INFO`], 64 bytes of output split into `(rk', ck)`.
//! * `KDF_CK(ck)`: `mk = HMAC-SHA-256(ck, 0x01)`, `ck' = HMAC-SHA-256(ck, 0x02)`.
//! * `ENCRYPT(mk, plaintext, AAD)`: AES-256-GCM-SIV (RFC 8452) keyed by `mk` itself with
//!   the all-zero nonce, a 16-byte tag appended to the ciphertext. `mk` is a single-use PRF
//!   output; if a restored state uses it again, GCM-SIV reveals only whether the two
//!   (AAD, plaintext) pairs were equal (\[DR\] §5.2 asks for this misuse resistance).
//!
//! The HMAC, HKDF and AEAD are those of the crypto interface (`backend`); the labels and
//! lengths come from the registry (`format`).

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead;
use crate::backend;
use crate::error::Error;
use crate::format::ROOT_INFO;
use crate::format::{NONCE_LENGTH, TAG_LENGTH};

/// The fixed nonce of `ENCRYPT`: each message key encrypts one message.
const MESSAGE_NONCE: [u8; NONCE_LENGTH] = [0u8; NONCE_LENGTH];

/// A 32-byte root key (`RK`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

/// A 32-byte chain key (`CKs` or `CKr`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey(pub(crate) [u8; 32]);

/// A 32-byte message key (`mk`), used for exactly one message.
#[cfg_attr(fuzzing, derive(Clone))]
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey(pub(crate) [u8; 32]);

impl RootKey {
    /// `KDF_RK(rk, dh_out) -> (rk', ck)`.
    pub(crate) fn ratchet(&self, dh_out: &[u8; 32]) -> (RootKey, ChainKey) {
        let okm = hkdf_sha256::<64>(&self.0, dh_out, ROOT_INFO);
        let mut rk = RootKey([0u8; 32]);
        let mut ck = ChainKey([0u8; 32]);
        rk.0.copy_from_slice(&okm[..32]);
        ck.0.copy_from_slice(&okm[32..]);
        (rk, ck)
    }
}

impl ChainKey {
    /// `KDF_CK(ck) -> (ck', mk)`: `mk = HMAC(ck, 0x01)`, `ck' = HMAC(ck, 0x02)`, in one
    /// call of the crypto interface that computes the HMAC key schedule once for both and
    /// writes the two keys straight into their wiping types.
    pub(crate) fn step(&self) -> (ChainKey, MessageKey) {
        let mut mk = MessageKey([0u8; 32]);
        let mut ck = ChainKey([0u8; 32]);
        backend::hmac_sha256_byte_pair(&self.0, (0x01, 0x02), &mut mk.0, &mut ck.0);
        (ck, mk)
    }
}

impl MessageKey {
    /// Encrypts `buf` in place and returns the tag. `ENCRYPT(mk, plaintext, aad)`.
    ///
    /// # Errors
    /// [`Error::Internal`] only (the AEAD's length limits are far above ours).
    pub(crate) fn seal_in_place(
        &self,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LENGTH], Error> {
        aead::seal_in_place(&self.0, &MESSAGE_NONCE, aad, buf)
    }

    /// Verifies `tag` and decrypts `buf` in place. `DECRYPT(mk, ciphertext, aad)`.
    /// On failure `buf` is left as ciphertext.
    pub(crate) fn open_in_place(
        &self,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LENGTH],
    ) -> Result<(), Error> {
        aead::open_in_place(&self.0, &MESSAGE_NONCE, aad, buf, tag)
    }
}

/// HKDF-SHA-256 (RFC 5869) with the given salt, IKM and info, returning `N` bytes.
#[inline]
pub(crate) fn hkdf_sha256<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; N]> {
    backend::hkdf_sha256::<N>(salt, ikm, info)
}

/// The stored encodings of the keys (SPEC.md §7.1): the raw 32 bytes, or the optional
/// encoding of §5 (a presence byte, then the key or 32 zero bytes).
mod storage {
    use alloc::vec::Vec;

    use zeroize::Zeroizing;

    use super::{ChainKey, MessageKey, RootKey};
    use crate::codec::{Reader, Writer};
    use crate::error::Error;

    impl RootKey {
        pub(crate) fn write(&self, out: &mut Vec<u8>) {
            out.put(&self.0);
        }

        pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
            let bytes = Zeroizing::new(r.array::<32>()?);
            Ok(RootKey(*bytes))
        }
    }

    impl ChainKey {
        pub(crate) fn write(&self, out: &mut Vec<u8>) {
            out.put(&self.0);
        }

        pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
            let bytes = Zeroizing::new(r.array::<32>()?);
            Ok(ChainKey(*bytes))
        }
    }

    impl MessageKey {
        pub(crate) fn write(&self, out: &mut Vec<u8>) {
            out.put(&self.0);
        }

        pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
            let bytes = Zeroizing::new(r.array::<32>()?);
            Ok(MessageKey(*bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_step_matches_definition() {
        let ck = ChainKey([7u8; 32]);
        let (next, mk) = ck.step();
        let mac =
            |data: u8| <backend::Active as backend::Crypto>::hmac_sha256_once(&[7u8; 32], &[data]);
        assert_eq!(mk.0, *mac(1));
        assert_eq!(next.0, *mac(2));
    }

    #[test]
    fn root_step_matches_definition() {
        let rk = RootKey([1u8; 32]);
        let (rk2, ck) = rk.ratchet(&[2u8; 32]);
        let okm = hkdf_sha256::<64>(&[1u8; 32], &[2u8; 32], ROOT_INFO);
        assert_eq!(rk2.0, okm[..32]);
        assert_eq!(ck.0, okm[32..]);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut buf = *b"attack at dawn";
        let tag = MessageKey([3u8; 32])
            .seal_in_place(b"ad", &mut buf)
            .unwrap();
        assert_ne!(&buf, b"attack at dawn");
        let mk = MessageKey([3u8; 32]);
        let mut wrong_ad = buf;
        assert_eq!(
            mk.open_in_place(b"AD", &mut wrong_ad, &tag),
            Err(Error::DecryptionFailed)
        );
        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        let mut copy = buf;
        assert_eq!(
            mk.open_in_place(b"ad", &mut copy, &bad_tag),
            Err(Error::DecryptionFailed)
        );
        mk.open_in_place(b"ad", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"attack at dawn");
    }
}
