//! The sender chain of a group (SPEC.md §11.1): a hash ratchet like the Double Ratchet's
//! symmetric-key ratchet (`KDF_CK`, SPEC.md §4.1), with constants of its own and a third
//! output, the key commitment:
//!
//! ```text
//! mk  = HMAC-SHA-256(ck, 0x03)     message key: AES-256-GCM-SIV key, zero nonce
//! cm  = HMAC-SHA-256(ck, 0x04)     key commitment, carried in the signed message
//! ck' = HMAC-SHA-256(ck, 0x05)     next chain key
//! ```
//!
//! The HMAC key schedule of `ck` is computed once per step and shared by the three outputs.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::aead;
use crate::backend::{self, HmacSha256 as _};
use crate::error::Error;
use crate::format::{KEY_LENGTH, NONCE_LENGTH, TAG_LENGTH};

/// `ENCRYPT`'s fixed nonce: each message key encrypts one message (as in SPEC.md §4.1).
const MESSAGE_NONCE: [u8; NONCE_LENGTH] = [0u8; NONCE_LENGTH];
/// The HMAC input deriving the message key.
const MESSAGE_KEY_INPUT: u8 = 0x03;
/// The HMAC input deriving the key commitment.
const COMMITMENT_INPUT: u8 = 0x04;
/// The HMAC input deriving the next chain key.
const CHAIN_KEY_INPUT: u8 = 0x05;

/// A sender chain key at some iteration.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct GroupChainKey(pub(crate) [u8; KEY_LENGTH]);

/// The keys of one group message: the message key and its commitment.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct GroupMessageKeys {
    pub(crate) key: [u8; KEY_LENGTH],
    pub(crate) commitment: [u8; KEY_LENGTH],
}

impl GroupChainKey {
    /// One step: the next chain key and this iteration's message keys.
    pub(crate) fn step(&self) -> (GroupChainKey, GroupMessageKeys) {
        let keyed = backend::hmac_sha256(&self.0);
        let mut keys = GroupMessageKeys {
            key: [0; KEY_LENGTH],
            commitment: [0; KEY_LENGTH],
        };
        let mut next = GroupChainKey([0; KEY_LENGTH]);
        let mut h = keyed.clone();
        h.update(&[MESSAGE_KEY_INPUT]);
        h.finalize_into(&mut keys.key);
        let mut h = keyed.clone();
        h.update(&[COMMITMENT_INPUT]);
        h.finalize_into(&mut keys.commitment);
        let mut h = keyed;
        h.update(&[CHAIN_KEY_INPUT]);
        h.finalize_into(&mut next.0);
        (next, keys)
    }

    /// The next chain key only: for iterations whose keys are not kept.
    pub(crate) fn advance(&self) -> GroupChainKey {
        let mut next = GroupChainKey([0; KEY_LENGTH]);
        let mut h = backend::hmac_sha256(&self.0);
        h.update(&[CHAIN_KEY_INPUT]);
        h.finalize_into(&mut next.0);
        next
    }
}

impl GroupMessageKeys {
    /// Encrypts `buf` in place under the message key and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LENGTH], Error> {
        aead::seal_in_place(&self.key, &MESSAGE_NONCE, aad, buf)
    }

    /// Verifies `tag` and decrypts `buf` in place; on failure `buf` is left as ciphertext.
    pub(crate) fn open_in_place(
        &self,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LENGTH],
    ) -> Result<(), Error> {
        aead::open_in_place(&self.key, &MESSAGE_NONCE, aad, buf, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three outputs are the single-shot HMACs of SPEC.md §11.1, and `advance` agrees
    /// with `step`.
    #[test]
    fn step_matches_the_definition() {
        let ck = GroupChainKey([0x42; 32]);
        let (next, keys) = ck.step();
        let once =
            |input: u8| *<backend::Active as backend::Crypto>::hmac_sha256_once(&ck.0, &[input]);
        assert_eq!(keys.key, once(0x03));
        assert_eq!(keys.commitment, once(0x04));
        assert_eq!(next.0, once(0x05));
        assert_eq!(ck.advance().0, next.0);
        // Distinct from the pairwise KDF_CK's outputs.
        assert_ne!(keys.key, once(0x01));
        assert_ne!(next.0, once(0x02));
    }
}
