//! PQXDH's post-quantum prekeys (PQXDH §2.4, §3.2; SPEC.md §3.6): ML-KEM-768 (FIPS 203)
//! key pairs with an id, signed by the identity key, one-time or last-resort.
//!
//! ```text
//! EncodeKEM(PQPK) = 0x0A || ek              (1 + 1184 bytes)
//! PQPK signature  = Ed25519-Sign(IK, EncodeKEM(PQPK))
//! (CT, SS)        = ML-KEM-768.Encaps(ek)  (CT: 1088 bytes, SS: 32 bytes)
//! ```
//!
//! A decapsulation key is stored as its 64-byte FIPS 203 seed `d || z`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use ml_kem::{Decapsulate, DecapsulationKey768, EncapsulationKey768, KeyExport, B32};
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::ids::PqPreKeyId;
use crate::keys::{fill_random, IdentityKeyPair, SIGNATURE_LENGTH};

pub(crate) use crate::format::KEM_SEED_LENGTH;
pub use crate::format::{KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH};
/// The prefix byte of `EncodeKEM(PQPK)` for ML-KEM-768.
pub(crate) const KEM_ENCODING_PREFIX: u8 = 0x0A;

/// Whether a post-quantum prekey is used once or reused until rotated (PQXDH §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PqPreKeyKind {
    /// Used for at most one session, then deleted.
    OneTime,
    /// Published when no one-time post-quantum prekey is left; reused until the app
    /// rotates and retires it. The prekey store records the initial messages it accepted
    /// with it, so a replay cannot create a second session.
    LastResort,
}

impl PqPreKeyKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            PqPreKeyKind::OneTime => 0x01,
            PqPreKeyKind::LastResort => 0x02,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            0x01 => Ok(PqPreKeyKind::OneTime),
            0x02 => Ok(PqPreKeyKind::LastResort),
            _ => Err(Error::InvalidEncoding),
        }
    }
}

/// `EncodeKEM(PQPK) = 0x0A || ek`, the message the identity key signs.
pub(crate) fn encode_kem(public: &[u8; KEM_PUBLIC_KEY_LENGTH]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + KEM_PUBLIC_KEY_LENGTH);
    out.push(KEM_ENCODING_PREFIX);
    out.extend_from_slice(public);
    out
}

/// Parses and validates an ML-KEM-768 encapsulation key (FIPS 203 §7.2 modulus check).
pub(crate) fn kem_public_from_bytes(
    bytes: &[u8; KEM_PUBLIC_KEY_LENGTH],
) -> Result<EncapsulationKey768, Error> {
    let key = ml_kem::Key::<EncapsulationKey768>::from(*bytes);
    EncapsulationKey768::new(&key).map_err(|_| Error::InvalidPublicKey)
}

/// A KEM ciphertext, boxed: it is 1088 bytes.
pub(crate) type KemCiphertext = Box<[u8; KEM_CIPHERTEXT_LENGTH]>;

/// `(CT, SS) = Encaps(ek)` with 32 bytes of randomness from the caller's RNG.
pub(crate) fn encapsulate<R: TryCryptoRng + ?Sized>(
    public: &[u8; KEM_PUBLIC_KEY_LENGTH],
    rng: &mut R,
) -> Result<(KemCiphertext, Zeroizing<[u8; 32]>), Error> {
    let ek = kem_public_from_bytes(public)?;
    let mut m = Zeroizing::new([0u8; 32]);
    fill_random(rng, m.as_mut())?;
    let m = Zeroizing::new(B32::from(*m));
    let (ct, ss) = ek.encapsulate_deterministic(&m);
    let ss = Zeroizing::new(ss);
    let mut ciphertext = Box::new([0u8; KEM_CIPHERTEXT_LENGTH]);
    ciphertext.copy_from_slice(&ct);
    let mut shared = Zeroizing::new([0u8; 32]);
    shared.copy_from_slice(&ss);
    Ok((ciphertext, shared))
}

/// A signed post-quantum prekey (PQXDH `PQSPK` / `PQOPK`): an ML-KEM-768 key pair with an
/// id and a kind, signed by the identity key (SPEC.md §3.6).
pub struct PqPreKey {
    id: PqPreKeyId,
    kind: PqPreKeyKind,
    seed: Zeroizing<[u8; KEM_SEED_LENGTH]>,
    decapsulation: DecapsulationKey768,
    public: Box<[u8; KEM_PUBLIC_KEY_LENGTH]>,
    signature: [u8; SIGNATURE_LENGTH],
}

impl PqPreKey {
    /// Generates a post-quantum prekey with the given id and kind, signed by `identity`.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        id: PqPreKeyId,
        kind: PqPreKeyKind,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LENGTH]);
        fill_random(rng, seed.as_mut())?;
        let mut key = Self::from_parts(id, kind, &seed, [0u8; SIGNATURE_LENGTH]);
        key.signature = identity.sign(&encode_kem(&key.public));
        Ok(key)
    }

    /// Rebuilds a stored key from its seed; the signature is kept as stored.
    pub(crate) fn from_parts(
        id: PqPreKeyId,
        kind: PqPreKeyKind,
        seed: &[u8; KEM_SEED_LENGTH],
        signature: [u8; SIGNATURE_LENGTH],
    ) -> Self {
        let decapsulation = DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed));
        let mut public = Box::new([0u8; KEM_PUBLIC_KEY_LENGTH]);
        public.copy_from_slice(&decapsulation.encapsulation_key().to_bytes());
        PqPreKey {
            id,
            kind,
            seed: Zeroizing::new(*seed),
            decapsulation,
            public,
            signature,
        }
    }

    /// The id an initiator names in its initial message.
    pub fn id(&self) -> PqPreKeyId {
        self.id
    }

    /// One-time or last-resort.
    pub fn kind(&self) -> PqPreKeyKind {
        self.kind
    }

    /// The ML-KEM-768 encapsulation key.
    pub fn public_key(&self) -> &[u8; KEM_PUBLIC_KEY_LENGTH] {
        &self.public
    }

    /// The Ed25519 signature over `0x0A || public_key`.
    pub fn signature(&self) -> [u8; SIGNATURE_LENGTH] {
        self.signature
    }

    pub(crate) fn seed(&self) -> &[u8; KEM_SEED_LENGTH] {
        &self.seed
    }

    /// `SS = Decaps(dk, CT)`. ML-KEM's implicit rejection makes this infallible: a wrong
    /// ciphertext yields an unrelated secret, and the first message then fails to decrypt.
    pub(crate) fn decapsulate(
        &self,
        ciphertext: &[u8; KEM_CIPHERTEXT_LENGTH],
    ) -> Zeroizing<[u8; 32]> {
        let ct = ml_kem::ml_kem_768::Ciphertext::from(*ciphertext);
        let ss = Zeroizing::new(self.decapsulation.decapsulate(&ct));
        let mut shared = Zeroizing::new([0u8; 32]);
        shared.copy_from_slice(&ss);
        shared
    }
}

impl fmt::Debug for PqPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqPreKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The storage encoding of a post-quantum prekey (SPEC.md §7.7).
mod storage {
    use alloc::vec::Vec;

    use zeroize::Zeroizing;

    use super::{PqPreKey, PqPreKeyKind, KEM_SEED_LENGTH};
    use crate::codec::{Reader, Writer};
    use crate::error::Error;
    use crate::format::{PQ_PREKEY_LENGTH, TYPE_PQ_PREKEY};
    use crate::seal::{read_stored_header, read_whole, write_stored_header};

    impl PqPreKey {
        /// The storage encoding (SPEC.md §7.7): version, type `0x26`, id, kind, the 64-byte
        /// ML-KEM seed, signature.
        pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
            let mut out = Zeroizing::new(Vec::with_capacity(PQ_PREKEY_LENGTH));
            self.write(&mut out);
            out
        }

        /// Appends the storage encoding (also inside the prekey store, §7.5).
        pub(crate) fn write(&self, out: &mut Vec<u8>) {
            write_stored_header(out, TYPE_PQ_PREKEY);
            out.put_u64(self.id().to_u64());
            out.put_u8(self.kind().to_byte());
            out.put(self.seed());
            out.put(&self.signature());
        }

        /// Reads the storage encoding.
        pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
            read_stored_header(r, TYPE_PQ_PREKEY)?;
            let id = crate::ids::PqPreKeyId::from_u64(r.u64()?);
            let kind = PqPreKeyKind::from_byte(r.u8()?)?;
            let seed = Zeroizing::new(r.array::<KEM_SEED_LENGTH>()?);
            let signature = r.array()?;
            Ok(Self::from_parts(id, kind, &seed, signature))
        }

        /// Loads a stored post-quantum prekey.
        ///
        /// # Errors
        /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`],
        /// [`Error::UnexpectedType`] or [`Error::InvalidEncoding`].
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
            read_whole(bytes, Self::read)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn encapsulation_round_trip_and_reload() {
        let mut rng = ChaCha20Rng::seed_from_u64(70);
        let id = IdentityKeyPair::generate(&mut rng).unwrap();
        let key = PqPreKey::generate(
            &id,
            PqPreKeyId::from_u64(5),
            PqPreKeyKind::OneTime,
            &mut rng,
        )
        .unwrap();
        let (ct, ss) = encapsulate(key.public_key(), &mut rng).unwrap();
        assert_eq!(*key.decapsulate(&ct), *ss);
        let reloaded =
            PqPreKey::from_parts(key.id(), PqPreKeyKind::OneTime, key.seed(), key.signature());
        assert_eq!(reloaded.public_key(), key.public_key());
        assert_eq!(*reloaded.decapsulate(&ct), *ss);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_ne!(*key.decapsulate(&bad), *ss);
    }

    #[test]
    fn invalid_encapsulation_key_rejected() {
        // Coefficients must be below q = 3329: 0xFF..FF encodes 4095.
        let bad = [0xFFu8; KEM_PUBLIC_KEY_LENGTH];
        assert!(matches!(
            kem_public_from_bytes(&bad),
            Err(Error::InvalidPublicKey)
        ));
    }
}
