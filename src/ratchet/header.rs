//! Double Ratchet §4 (header encryption), as fixed by SPEC.md §4.8: header keys, the
//! extended root KDF, the initial header keys, and `HENCRYPT` / `HDECRYPT`.
//!
//! ```text
//! (HKA, NHKB)          = HKDF(salt = 0^32, IKM = SK, info = HEADER_KEYS_INFO, L = 64)
//! KDF_RK_HE(rk, dh)    = HKDF(salt = rk, IKM = dh, info = ROOT_HE_INFO, L = 96) -> (rk', ck, nhk)
//! HENCRYPT(hk, h, AAD) = nonce || AES-256-GCM-SIV(hk, nonce, AAD, DHs || PN || N)   nonce: 12 random bytes
//! ```
//!
//! Nonces: a header key encrypts the headers of one sending chain only (it is replaced by
//! the next header key at every DH ratchet step), so at most 2^32 - 1 headers. With
//! uniformly random 96-bit nonces the probability that two of `q` headers under one key
//! share a nonce is below `q^2 / 2^97`: 2^-33 for a chain of 2^32 messages, 2^-57 for a
//! chain of a million. GCM-SIV makes even a collision harmless but for one bit: whether the
//! two headers (and their associated data) were equal.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::kdf::{hkdf_sha256, ChainKey, RootKey};
use super::Header;
use crate::aead;
use crate::error::Error;
use crate::format::{
    ENCRYPTED_HEADER_LENGTH, HEADER_KEYS_INFO, HEADER_LENGTH, NONCE_LENGTH, ROOT_HE_INFO,
    TAG_LENGTH,
};

/// Length of a header nonce.
pub(crate) const HEADER_NONCE_LENGTH: usize = NONCE_LENGTH;

/// A 32-byte header key (`HKs`, `HKr`, `NHKs`, `NHKr`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct HeaderKey(pub(crate) [u8; 32]);

/// The two header keys both parties derive from `SK`: `HKA` (Alice's first sending
/// header key, Bob's first next-receiving one) and `NHKB` (Alice's first next-receiving
/// header key, Bob's first next-sending one).
pub(crate) fn initial_header_keys(sk: &RootKey) -> (HeaderKey, HeaderKey) {
    let okm = hkdf_sha256::<64>(&[0u8; 32], &sk.0, HEADER_KEYS_INFO);
    let mut a = HeaderKey([0u8; 32]);
    let mut b = HeaderKey([0u8; 32]);
    a.0.copy_from_slice(&okm[..32]);
    b.0.copy_from_slice(&okm[32..]);
    (a, b)
}

impl RootKey {
    /// `KDF_RK_HE(rk, dh_out) -> (rk', ck, nhk)`.
    pub(crate) fn ratchet_he(&self, dh_out: &[u8; 32]) -> (RootKey, ChainKey, HeaderKey) {
        let okm = hkdf_sha256::<96>(&self.0, dh_out, ROOT_HE_INFO);
        let mut rk = RootKey([0u8; 32]);
        let mut ck = ChainKey([0u8; 32]);
        let mut nhk = HeaderKey([0u8; 32]);
        rk.0.copy_from_slice(&okm[..32]);
        ck.0.copy_from_slice(&okm[32..64]);
        nhk.0.copy_from_slice(&okm[64..]);
        (rk, ck, nhk)
    }
}

impl HeaderKey {
    /// `HENCRYPT`: `nonce || AES-256-GCM-SIV(hk, nonce, aad, DHs || PN || N)`.
    pub(crate) fn seal(
        &self,
        header: &Header,
        nonce: &[u8; HEADER_NONCE_LENGTH],
        aad: &[u8],
    ) -> Result<[u8; ENCRYPTED_HEADER_LENGTH], Error> {
        let mut out = [0u8; ENCRYPTED_HEADER_LENGTH];
        out[..HEADER_NONCE_LENGTH].copy_from_slice(nonce);
        let body = &mut out[HEADER_NONCE_LENGTH..HEADER_NONCE_LENGTH + HEADER_LENGTH];
        body[..32].copy_from_slice(&header.dh);
        body[32..36].copy_from_slice(&header.pn.to_be_bytes());
        body[36..].copy_from_slice(&header.n.to_be_bytes());
        let tag = aead::seal_in_place(&self.0, nonce, aad, body)?;
        out[HEADER_NONCE_LENGTH + HEADER_LENGTH..].copy_from_slice(&tag);
        Ok(out)
    }

    /// `HDECRYPT`: the header if `sealed` authenticates under this key, else `None`.
    pub(crate) fn open(
        &self,
        sealed: &[u8; ENCRYPTED_HEADER_LENGTH],
        aad: &[u8],
    ) -> Option<Header> {
        let mut nonce = [0u8; HEADER_NONCE_LENGTH];
        nonce.copy_from_slice(&sealed[..HEADER_NONCE_LENGTH]);
        let mut body = Zeroizing::new([0u8; HEADER_LENGTH]);
        body.copy_from_slice(&sealed[HEADER_NONCE_LENGTH..HEADER_NONCE_LENGTH + HEADER_LENGTH]);
        let mut tag = [0u8; TAG_LENGTH];
        tag.copy_from_slice(&sealed[HEADER_NONCE_LENGTH + HEADER_LENGTH..]);
        aead::open_in_place(&self.0, &nonce, aad, body.as_mut_slice(), &tag).ok()?;
        let mut dh = [0u8; 32];
        dh.copy_from_slice(&body[..32]);
        let mut pn = [0u8; 4];
        pn.copy_from_slice(&body[32..36]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&body[36..]);
        Some(Header {
            dh,
            pn: u32::from_be_bytes(pn),
            n: u32::from_be_bytes(n),
        })
    }
}

/// The stored encoding of a header key (SPEC.md §7.1): the raw 32 bytes, or the optional
/// encoding of §5 (a presence byte, then the key or 32 zero bytes).
mod storage {
    use alloc::vec::Vec;

    use zeroize::Zeroizing;

    use super::HeaderKey;
    use crate::codec::{Reader, Writer};
    use crate::error::Error;

    impl HeaderKey {
        pub(crate) fn write(&self, out: &mut Vec<u8>) {
            out.put(&self.0);
        }

        pub(crate) fn write_optional(key: Option<&Self>, out: &mut Vec<u8>) {
            out.put_optional(key.map(|k| &k.0[..]), 32);
        }

        pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
            let bytes = Zeroizing::new(r.array::<32>()?);
            Ok(HeaderKey(*bytes))
        }

        pub(crate) fn read_optional(r: &mut Reader<'_>) -> Result<Option<Self>, Error> {
            Ok(r.optional::<32>()?.map(HeaderKey))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_key_separation() {
        let header = Header {
            dh: [7; 32],
            pn: 3,
            n: 9,
        };
        let hk = HeaderKey([1; 32]);
        let sealed = hk.seal(&header, &[2; 12], b"ad").unwrap();
        assert_eq!(hk.open(&sealed, b"ad"), Some(header));
        assert_eq!(hk.open(&sealed, b"AD"), None);
        assert_eq!(HeaderKey([2; 32]).open(&sealed, b"ad"), None);
        for i in 0..ENCRYPTED_HEADER_LENGTH {
            let mut bad = sealed;
            bad[i] ^= 1;
            assert_eq!(hk.open(&bad, b"ad"), None, "byte {i}");
        }
    }

    #[test]
    fn derivations_are_distinct() {
        let sk = RootKey([5; 32]);
        let (a, b) = initial_header_keys(&sk);
        assert_ne!(a.0, b.0);
        let (rk, ck, nhk) = sk.ratchet_he(&[6; 32]);
        let (rk_plain, ck_plain) = sk.ratchet(&[6; 32]);
        assert_ne!(rk.0, rk_plain.0);
        assert_ne!(ck.0, ck_plain.0);
        assert_ne!(nhk.0, a.0);
    }
}
