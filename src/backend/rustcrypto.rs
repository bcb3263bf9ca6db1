//! The [`Crypto`] implementation on the dalek and RustCrypto crates: `x25519-dalek`
//! (X25519), `hmac`, `hkdf` and `sha2` (HMAC-SHA-256, HKDF-SHA-256, SHA-256) and
//! `aes-gcm-siv` (AES-256-GCM-SIV). Every crate is built with its `zeroize` feature, so
//! the key schedules, HMAC states and X25519 secrets made here are wiped when dropped.
//!
//! `aes-gcm-siv` decrypts before it verifies and, when the tag does not verify,
//! re-encrypts the buffer: the caller's buffer then holds the ciphertext again, as
//! [`Crypto::aead_open`] requires (tested in `aead`).

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use hkdf::Hkdf;
use hmac::digest::FixedOutput;
use hmac::{Hmac, Mac as _};
use sha2::block_api::compress256;
use sha2::{Digest as _, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
/// The message length, in bits, that ends an inner hash of a one-byte message (the key
/// block and the byte) and an outer hash (the key block and the inner hash).
const INNER_BITS: u64 = (64 + 1) * 8;
const OUTER_BITS: u64 = (64 + 32) * 8;

/// The working state of [`byte_pair`]: the chaining values after the inner and outer key
/// blocks (the key schedule), a hash in progress, and the block being compressed. Every
/// field holds key material at some point; all are wiped when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
struct BytePair {
    inner: [u32; 8],
    outer: [u32; 8],
    state: [u32; 8],
    block: [u8; 64],
}

impl BytePair {
    /// Compresses `self.block` into `self.state`.
    #[inline(always)]
    fn compress(&mut self) {
        compress256(&mut self.state, core::slice::from_ref(&self.block));
    }

    /// `HMAC(key, [byte])` from the key schedule, into `out`: one compression for the
    /// inner hash (the byte with its padding fits the block) and one for the outer (the
    /// 32-byte inner hash with its padding).
    #[inline(always)]
    fn mac(&mut self, byte: u8, out: &mut [u8; 32]) {
        self.block = [0u8; 64];
        self.block[0] = byte;
        self.block[1] = 0x80;
        self.block[56..].copy_from_slice(&INNER_BITS.to_be_bytes());
        self.state = self.inner;
        self.compress();
        // By reference: a by-value zip would leave an unwiped copy of the state.
        for (bytes, word) in self.block.chunks_exact_mut(4).zip(self.state.iter()) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        self.block[32] = 0x80;
        self.block[33..56].fill(0);
        self.block[56..].copy_from_slice(&OUTER_BITS.to_be_bytes());
        self.state = self.outer;
        self.compress();
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state.iter()) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
    }
}

/// HMAC-SHA-256 (RFC 2104) of two one-byte messages under one 32-byte key, on SHA-256's
/// compression function: two compressions for the key schedule (`key ^ ipad`, `key ^ opad`,
/// each one block), then two per tag, six in all, as `hmac` with a cloned key schedule
/// does, without its buffering, cloning and finalization around them. The blocks are
/// fixed: a 32-byte key fits one block, and both padded messages fit one block each.
fn byte_pair(key: &[u8; 32], (first, second): (u8, u8), out: [&mut [u8; 32]; 2]) {
    let mut s = BytePair {
        inner: SHA256_IV,
        outer: SHA256_IV,
        state: SHA256_IV,
        block: [0x36; 64],
    };
    for (b, k) in s.block.iter_mut().zip(key) {
        *b ^= k;
    }
    compress256(&mut s.inner, core::slice::from_ref(&s.block));
    // `key ^ opad` from `key ^ ipad`, byte by byte.
    for b in &mut s.block {
        *b ^= 0x36 ^ 0x5c;
    }
    compress256(&mut s.outer, core::slice::from_ref(&s.block));
    let [out_first, out_second] = out;
    s.mac(first, out_first);
    s.mac(second, out_second);
}

/// The cipher keyed with `key`, borrowed as the crate's key type, so no copy of the key is
/// left in a temporary array. Infallible, so the cipher (its round keys and POLYVAL key)
/// is built where it is used instead of being moved out of a `Result`.
#[inline(always)]
fn cipher(key: &[u8; 32]) -> Aes256GcmSiv {
    <Aes256GcmSiv as KeyInit>::new(key.into())
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

    #[inline]
    fn hmac_sha256_byte_pair(
        key: &[u8; 32],
        messages: (u8, u8),
        out_first: &mut [u8; 32],
        out_second: &mut [u8; 32],
    ) {
        byte_pair(key, messages, [out_first, out_second]);
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
        let tag = cipher(key)
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
        cipher(key)
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
            .map_err(|_| Error::DecryptionFailed)
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::{Rng as _, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use alloc::vec::Vec;

    use super::*;

    /// A [`Crypto`] that keeps the trait's default `hmac_sha256_byte_pair` (the `hmac`
    /// crate, one key schedule cloned), to check the fused one against.
    struct Defaults;

    impl Crypto for Defaults {
        type Hmac = HmacState;

        fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
            RustCrypto::x25519(secret, public)
        }

        fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
            RustCrypto::x25519_public(secret)
        }

        fn hmac_sha256(key: &[u8]) -> HmacState {
            RustCrypto::hmac_sha256(key)
        }

        fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), Error> {
            RustCrypto::hkdf_sha256(salt, ikm, info, okm)
        }

        fn sha256(parts: &[&[u8]]) -> [u8; 32] {
            RustCrypto::sha256(parts)
        }

        fn aead_seal(
            key: &[u8; 32],
            nonce: &[u8; NONCE_LENGTH],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LENGTH], Error> {
            RustCrypto::aead_seal(key, nonce, aad, buf)
        }

        fn aead_open(
            key: &[u8; 32],
            nonce: &[u8; NONCE_LENGTH],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LENGTH],
        ) -> Result<(), Error> {
            RustCrypto::aead_open(key, nonce, aad, buf, tag)
        }
    }

    /// `hmac`'s HMAC-SHA-256 of one byte, straight from the crate.
    fn reference(key: &[u8; 32], byte: u8) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
        mac.update(&[byte]);
        mac.finalize().into_bytes().into()
    }

    /// The fused pair equals two `hmac` HMACs, and the trait's default, on random keys and
    /// bytes and on the edge keys (all zeros, all ones, the pad bytes themselves).
    #[test]
    fn fused_byte_pair_is_hmac() {
        let mut rng = ChaCha20Rng::seed_from_u64(0x19);
        let mut keys: Vec<[u8; 32]> = [0x00, 0xff, 0x36, 0x5c, 0x6a]
            .iter()
            .map(|&b| [b; 32])
            .collect();
        for _ in 0..500 {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            keys.push(key);
        }
        for (i, key) in keys.iter().enumerate() {
            let pairs = [
                (0x01, 0x02),
                (0x02, 0x01),
                (0x00, 0xff),
                (i as u8, (i * 7) as u8),
            ];
            for (a, b) in pairs {
                let (mut fa, mut fb) = ([0u8; 32], [0u8; 32]);
                RustCrypto::hmac_sha256_byte_pair(key, (a, b), &mut fa, &mut fb);
                assert_eq!(fa, reference(key, a), "key {i}, byte {a:#04x}");
                assert_eq!(fb, reference(key, b), "key {i}, byte {b:#04x}");
                let (mut da, mut db) = ([0u8; 32], [0u8; 32]);
                Defaults::hmac_sha256_byte_pair(key, (a, b), &mut da, &mut db);
                assert_eq!((da, db), (fa, fb), "default, key {i}");
            }
        }
    }

    /// RFC 4231 test case 1's key (twenty `0x0b`), zero-padded to 32 bytes, which RFC 2104
    /// makes the same HMAC key, against `hmac`; and a fixed `KDF_CK` vector computed
    /// independently (Python's `hmac` module, key `0x00 .. 0x1f`, messages `0x01`, `0x02`).
    #[test]
    fn fused_byte_pair_fixed_vectors() {
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        RustCrypto::hmac_sha256_byte_pair(&key, (0x48, 0x01), &mut a, &mut b);
        assert_eq!(a, reference(&key, 0x48));
        assert_eq!(b, reference(&key, 0x01));
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        RustCrypto::hmac_sha256_byte_pair(&key, (0x01, 0x02), &mut a, &mut b);
        assert_eq!(
            a,
            hex("9b4c8120a4823a95f47cde17a244f4507244ee6e3957d1fab9fa29b44d3829b7")
        );
        assert_eq!(
            b,
            hex("4304c22c84a53755ab08ead8d97a8d429be5efa480682d7ad1da27f73e1fbe1d")
        );
    }

    fn hex(s: &str) -> [u8; 32] {
        core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
    }
}
