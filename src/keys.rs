//! Typed keys: X3DH §2.4 (identity, signed prekey, one-time prekeys, ephemeral keys),
//! §2.1-§2.2 (Ed25519 identity keys used for X25519 via the birational map, `Encode`,
//! `DH`), and the Double Ratchet's ratchet key pairs (DR §3.2 `DHs`). SPEC.md §2.
//!
//! Every secret lives in a type that zeroizes itself on drop and has no `Debug` output
//! that could print it. Public keys are validated when they are read:
//!
//! * an identity key must decompress to an Edwards point, be canonically encoded and not
//!   be of small order (SPEC.md §2.1);
//! * an X25519 public key must be canonical (high bit clear, value below 2^255 - 19) and
//!   must not be one of the small-order u-coordinates (SPEC.md §2.2).
//!
//! Each Diffie-Hellman output is also checked: an all-zero output is
//! [`Error::NonContributoryKey`], never a key. The X25519 operations (DH and public keys
//! from secrets) are computed by the crypto interface (`backend`); `x25519-dalek`'s
//! `StaticSecret` and `PublicKey` only hold the bytes here. Ed25519 and the SHA-512 of the
//! identity seed stay in this module.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::TryCryptoRng;
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::backend;
use crate::error::Error;
use crate::ids::{OneTimePreKeyId, SignedPreKeyId};

pub use crate::format::{PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
/// The prefix byte of `Encode(PK)` for an X25519 public key (X3DH §2.2), signed in a
/// signed prekey's signature.
pub(crate) const X25519_ENCODING_PREFIX: u8 = 0x05;

/// Fills `out` from a cryptographic RNG, mapping its failure to a typed error.
pub(crate) fn fill_random<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    out: &mut [u8],
) -> Result<(), Error> {
    rng.try_fill_bytes(out)
        .map_err(|_| Error::RandomnessUnavailable)
}

/// The canonical encodings of the X25519 u-coordinates of small order (on the curve or its
/// twist): 0, 1, the two points of order 8, and p - 1. With a canonical encoding required,
/// these are all of them; a test checks each against the curve arithmetic.
const SMALL_ORDER_U: [[u8; 32]; 5] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// SPEC.md §2.2: is `u` (little-endian) a canonical field element below p = 2^255 - 19?
fn is_canonical_u(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    // u >= p exactly when u = 2^255 - 19 + k for k in 0..19: top byte 0x7f, the middle
    // bytes 0xff, and the low byte >= 0xed.
    let at_least_p = u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff) && u[0] >= 0xed;
    !at_least_p
}

/// Parses an X25519 public key read from the network or storage (SPEC.md §2.2).
pub(crate) fn x25519_public_from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
    if !is_canonical_u(bytes) || SMALL_ORDER_U.iter().any(|low| low == bytes) {
        return Err(Error::InvalidPublicKey);
    }
    Ok(PublicKey::from(*bytes))
}

/// An X25519 public key (a signed or one-time prekey, a base key, a ratchet key), validated
/// when it was made (SPEC.md §2.2): canonical and not of small order. The one type this
/// crate returns for every X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519PublicKey([u8; 32]);

impl X25519PublicKey {
    /// Parses and validates a 32-byte X25519 public key (SPEC.md §2.2).
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] for a non-canonical or small-order encoding.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        x25519_public_from_bytes(bytes)?;
        Ok(X25519PublicKey(*bytes))
    }

    /// The 32-byte little-endian u-coordinate.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32-byte little-endian u-coordinate.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Wraps a key this crate computed.
    pub(crate) fn from_trusted(public: &PublicKey) -> Self {
        X25519PublicKey(public.to_bytes())
    }

    /// Wraps bytes that passed [`x25519_public_from_bytes`] when they were read.
    pub(crate) fn from_validated(bytes: [u8; 32]) -> Self {
        X25519PublicKey(bytes)
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// X25519 with the contributory check of SPEC.md §2.2: an all-zero output is an error.
/// Computed by the crypto interface (`backend`); `x25519-dalek`'s types only hold the bytes.
#[inline]
pub(crate) fn diffie_hellman(
    secret: &StaticSecret,
    public: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, Error> {
    backend::x25519(secret.as_bytes(), public.as_bytes())
}

/// [`diffie_hellman`] of one secret with each of `publics`, in order (the backend may
/// share work between them).
pub(crate) fn diffie_hellman_many<const N: usize>(
    secret: &StaticSecret,
    publics: [&PublicKey; N],
) -> Result<[Zeroizing<[u8; 32]>; N], Error> {
    backend::x25519_many(secret.as_bytes(), publics.map(PublicKey::as_bytes))
}

/// The X25519 public key of `secret`, computed by the crypto interface.
#[inline]
pub(crate) fn x25519_public(secret: &StaticSecret) -> PublicKey {
    PublicKey::from(backend::x25519_public(secret.as_bytes()))
}

/// Generates a fresh X25519 secret from the caller's RNG.
pub(crate) fn random_x25519<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<StaticSecret, Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    fill_random(rng, bytes.as_mut())?;
    Ok(StaticSecret::from(*bytes))
}

/// A contact's long-term public identity key (X3DH `IK`): an Ed25519 public key, also used
/// for X25519 through its Montgomery form.
///
/// Constructed only from a validated encoding, so every `IdentityKey` is a canonical,
/// non-small-order point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    bytes: [u8; 32],
    verifying: VerifyingKey,
    montgomery: PublicKey,
}

impl IdentityKey {
    /// Parses and validates a 32-byte compressed Ed25519 point (SPEC.md §2.1).
    ///
    /// # Errors
    /// [`Error::InvalidPublicKey`] if the bytes do not decompress, are not the canonical
    /// encoding of the point, or the point has small order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let verifying = VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidPublicKey)?;
        // Canonical encoding: y < p. (A set sign bit with x = 0 is possible only for
        // y = 1 and y = -1, both of small order, which `is_weak` rejects.)
        let mut y = *bytes;
        y[31] &= 0x7f;
        if verifying.is_weak() || !is_canonical_u(&y) {
            return Err(Error::InvalidPublicKey);
        }
        Ok(Self::from_verifying(verifying))
    }

    fn from_verifying(verifying: VerifyingKey) -> Self {
        IdentityKey {
            bytes: verifying.to_bytes(),
            montgomery: PublicKey::from(verifying.to_montgomery().to_bytes()),
            verifying,
        }
    }

    /// The 32-byte compressed Edwards encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// The 32-byte compressed Edwards encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    pub(crate) fn x25519(&self) -> &PublicKey {
        &self.montgomery
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKey(")?;
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A long-term identity key pair (X3DH `IK`): an Ed25519 signing key whose X25519 form is
/// used in the key agreement (SPEC.md §2.1).
///
/// The X25519 private scalar is `clamp(SHA-512(seed)[0..32])`, the scalar Ed25519 itself
/// uses, so the X25519 public key is the Montgomery form of the Ed25519 public key.
pub struct IdentityKeyPair {
    seed: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    dh: StaticSecret,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a new identity key pair from a cryptographic RNG.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(rng, seed.as_mut())?;
        Ok(Self::from_seed(&seed))
    }

    /// Rebuilds a key pair from its 32-byte Ed25519 seed (RFC 8032 private key).
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let mut h = Sha512::digest(seed);
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&h[..32]);
        h.as_mut_slice().zeroize();
        let public = IdentityKey::from_verifying(signing.verifying_key());
        IdentityKeyPair {
            seed: Zeroizing::new(*seed),
            signing,
            dh: StaticSecret::from(*scalar),
            public,
        }
    }

    /// The Ed25519 seed (for the storage format only).
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public half, to publish in a prekey bundle.
    pub fn public_key(&self) -> &IdentityKey {
        &self.public
    }

    /// Ed25519 signature over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LENGTH] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// `Encode(PK)` of X3DH §2.2 for an X25519 key: `0x05 || u`.
pub(crate) fn encode_x25519(public: &PublicKey) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = X25519_ENCODING_PREFIX;
    out[1..].copy_from_slice(public.as_bytes());
    out
}

/// A medium-term signed prekey (X3DH `SPK`): an X25519 key pair with an id, signed by the
/// identity key (SPEC.md §2.3).
pub struct SignedPreKey {
    id: SignedPreKeyId,
    secret: StaticSecret,
    public: PublicKey,
    signature: [u8; SIGNATURE_LENGTH],
}

impl SignedPreKey {
    /// Generates a signed prekey with the given id, signed by `identity`.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(
        identity: &IdentityKeyPair,
        id: SignedPreKeyId,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let secret = random_x25519(rng)?;
        Ok(Self::from_secret(identity, id, secret))
    }

    pub(crate) fn from_secret(
        identity: &IdentityKeyPair,
        id: SignedPreKeyId,
        secret: StaticSecret,
    ) -> Self {
        let public = x25519_public(&secret);
        let signature = identity.sign(&encode_x25519(&public));
        SignedPreKey {
            id,
            secret,
            public,
            signature,
        }
    }

    /// Rebuilds a stored signed prekey; the signature is kept as stored.
    pub(crate) fn from_parts(
        id: SignedPreKeyId,
        secret: StaticSecret,
        signature: [u8; SIGNATURE_LENGTH],
    ) -> Self {
        SignedPreKey {
            id,
            public: x25519_public(&secret),
            secret,
            signature,
        }
    }

    /// The id an initiator names in its initial message.
    pub fn id(&self) -> SignedPreKeyId {
        self.id
    }

    /// The X25519 public key.
    pub fn public_key(&self) -> X25519PublicKey {
        X25519PublicKey::from_trusted(&self.public)
    }

    /// The Ed25519 signature over `0x05 || public_key`.
    pub fn signature(&self) -> [u8; SIGNATURE_LENGTH] {
        self.signature
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for SignedPreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A one-time prekey (X3DH `OPK`): an X25519 key pair with an id, used for at most one
/// session (SPEC.md §2.4).
pub struct OneTimePreKey {
    id: OneTimePreKeyId,
    secret: StaticSecret,
    public: PublicKey,
}

impl OneTimePreKey {
    /// Generates a one-time prekey with the given id.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(
        id: OneTimePreKeyId,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Ok(Self::from_secret(id, random_x25519(rng)?))
    }

    pub(crate) fn from_secret(id: OneTimePreKeyId, secret: StaticSecret) -> Self {
        OneTimePreKey {
            id,
            public: x25519_public(&secret),
            secret,
        }
    }

    /// The id an initiator names in its initial message.
    pub fn id(&self) -> OneTimePreKeyId {
        self.id
    }

    /// The X25519 public key.
    pub fn public_key(&self) -> X25519PublicKey {
        X25519PublicKey::from_trusted(&self.public)
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for OneTimePreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePreKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A Double Ratchet key pair (`DHs`, §3.2): an X25519 secret and its public key.
pub(crate) struct RatchetKeyPair {
    pub(crate) secret: StaticSecret,
    /// The public key, if computed: a key pair loaded from storage (where only the secret
    /// is kept, SPEC.md §7.1) computes it when it is first needed, so that loading a
    /// session to receive on its current chain costs no base-point multiplication.
    public: Option<PublicKey>,
}

impl RatchetKeyPair {
    pub(crate) fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let secret = random_x25519(rng)?;
        Ok(RatchetKeyPair {
            public: Some(x25519_public(&secret)),
            secret,
        })
    }

    /// A key pair whose public half is already known (`public` must be `secret`'s).
    pub(crate) fn from_parts(secret: StaticSecret, public: PublicKey) -> Self {
        RatchetKeyPair {
            secret,
            public: Some(public),
        }
    }

    /// A stored secret: its public key is computed when first needed.
    pub(crate) fn from_stored_secret(secret: StaticSecret) -> Self {
        RatchetKeyPair {
            secret,
            public: None,
        }
    }

    /// The public key (computed from the secret if it was not yet).
    pub(crate) fn public(&self) -> PublicKey {
        self.public.unwrap_or_else(|| x25519_public(&self.secret))
    }

    /// Computes and keeps the public key, so that later calls of
    /// [`RatchetKeyPair::public`] are free. Changes no stored state.
    pub(crate) fn cache_public(&mut self) {
        if self.public.is_none() {
            self.public = Some(x25519_public(&self.secret));
        }
    }
}

impl Clone for RatchetKeyPair {
    fn clone(&self) -> Self {
        RatchetKeyPair {
            secret: self.secret.clone(),
            public: self.public,
        }
    }
}

pub(crate) use self::storage::{
    read_one_time_prekey, read_signed_prekey, read_x25519_secret, write_one_time_prekey,
    write_signed_prekey,
};

/// The storage encodings of the long-term keys (SPEC.md §7.2-§7.4): the stored header of
/// SPEC.md §7 (version, type), then the secret material. Loading is strict, and returns
/// secret encodings in [`Zeroizing`] buffers allocated once at their exact size.
mod storage {
    use alloc::vec::Vec;

    use x25519_dalek::StaticSecret;
    use zeroize::Zeroizing;

    use super::{IdentityKeyPair, OneTimePreKey, SignedPreKey};
    use crate::codec::{Reader, Writer};
    use crate::error::Error;
    use crate::format::{
        IDENTITY_KEY_PAIR_LENGTH, ONE_TIME_PREKEY_LENGTH, SIGNED_PREKEY_LENGTH, TYPE_IDENTITY,
        TYPE_ONE_TIME_PREKEY, TYPE_SIGNED_PREKEY,
    };
    use crate::seal::{read_stored_header, read_whole, write_stored_header};

    /// A stored X25519 secret: 32 bytes.
    pub(crate) fn read_x25519_secret(r: &mut Reader<'_>) -> Result<StaticSecret, Error> {
        let bytes = Zeroizing::new(r.array::<32>()?);
        Ok(StaticSecret::from(*bytes))
    }

    impl IdentityKeyPair {
        /// The storage encoding (SPEC.md §7.2): version, type `0x21`, the 32-byte Ed25519
        /// seed.
        pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
            let mut out = Zeroizing::new(Vec::with_capacity(IDENTITY_KEY_PAIR_LENGTH));
            write_stored_header(&mut out, TYPE_IDENTITY);
            out.put(self.seed());
            out
        }

        /// Loads a stored identity key pair.
        ///
        /// # Errors
        /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
        /// [`Error::UnexpectedType`].
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
            read_whole(bytes, |r| {
                read_stored_header(r, TYPE_IDENTITY)?;
                let seed = Zeroizing::new(r.array::<32>()?);
                Ok(IdentityKeyPair::from_seed(&seed))
            })
        }
    }

    impl SignedPreKey {
        /// The storage encoding (SPEC.md §7.3): version, type `0x22`, id, secret, signature.
        pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
            let mut out = Zeroizing::new(Vec::with_capacity(SIGNED_PREKEY_LENGTH));
            write_signed_prekey(&mut out, self);
            out
        }

        /// Loads a stored signed prekey.
        ///
        /// # Errors
        /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
        /// [`Error::UnexpectedType`].
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
            read_whole(bytes, read_signed_prekey)
        }
    }

    /// Appends a signed prekey's storage encoding (also inside the prekey store, §7.5).
    pub(crate) fn write_signed_prekey(out: &mut Vec<u8>, key: &SignedPreKey) {
        write_stored_header(out, TYPE_SIGNED_PREKEY);
        out.put_u64(key.id().to_u64());
        out.put(key.secret().as_bytes());
        out.put(&key.signature());
    }

    /// Reads a signed prekey's storage encoding.
    pub(crate) fn read_signed_prekey(r: &mut Reader<'_>) -> Result<SignedPreKey, Error> {
        read_stored_header(r, TYPE_SIGNED_PREKEY)?;
        let id = crate::ids::SignedPreKeyId::from_u64(r.u64()?);
        let secret = read_x25519_secret(r)?;
        let signature = r.array()?;
        Ok(SignedPreKey::from_parts(id, secret, signature))
    }

    impl OneTimePreKey {
        /// The storage encoding (SPEC.md §7.4): version, type `0x23`, id, secret.
        pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
            let mut out = Zeroizing::new(Vec::with_capacity(ONE_TIME_PREKEY_LENGTH));
            write_one_time_prekey(&mut out, self);
            out
        }

        /// Loads a stored one-time prekey.
        ///
        /// # Errors
        /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
        /// [`Error::UnexpectedType`].
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
            read_whole(bytes, read_one_time_prekey)
        }
    }

    /// Appends a one-time prekey's storage encoding (also inside the prekey store, §7.5).
    pub(crate) fn write_one_time_prekey(out: &mut Vec<u8>, key: &OneTimePreKey) {
        write_stored_header(out, TYPE_ONE_TIME_PREKEY);
        out.put_u64(key.id().to_u64());
        out.put(key.secret().as_bytes());
    }

    /// Reads a one-time prekey's storage encoding.
    pub(crate) fn read_one_time_prekey(r: &mut Reader<'_>) -> Result<OneTimePreKey, Error> {
        read_stored_header(r, TYPE_ONE_TIME_PREKEY)?;
        let id = crate::ids::OneTimePreKeyId::from_u64(r.u64()?);
        Ok(OneTimePreKey::from_secret(id, read_x25519_secret(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn identity_x25519_form_matches_montgomery_map() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..8 {
            let id = IdentityKeyPair::generate(&mut rng).unwrap();
            let derived = x25519_public(id.dh_secret());
            assert_eq!(derived.as_bytes(), id.public_key().x25519().as_bytes());
        }
    }

    #[test]
    fn identity_dh_agrees_both_ways() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = IdentityKeyPair::generate(&mut rng).unwrap();
        let b = IdentityKeyPair::generate(&mut rng).unwrap();
        let ab = diffie_hellman(a.dh_secret(), b.public_key().x25519()).unwrap();
        let ba = diffie_hellman(b.dh_secret(), a.public_key().x25519()).unwrap();
        assert_eq!(*ab, *ba);
    }

    #[test]
    fn small_order_table_is_small_order() {
        // Each listed u gives an all-zero X25519 output for any scalar.
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for u in SMALL_ORDER_U {
            let s = random_x25519(&mut rng).unwrap();
            let raw = <backend::Active as backend::Crypto>::x25519(s.as_bytes(), &u).unwrap();
            assert_eq!(*raw, [0u8; 32]);
            assert_eq!(x25519_public_from_bytes(&u), Err(Error::InvalidPublicKey));
        }
    }

    #[test]
    fn small_order_table_is_complete_for_the_curve() {
        // The Montgomery forms of the Edwards 8-torsion points are all in the table.
        use curve25519_dalek::edwards::CompressedEdwardsY;
        // (0, -1) has order 2; its multiples with order-8 generators give the rest.
        let mut y = [0u8; 32];
        y[0] = 0xec;
        y[1..31].fill(0xff);
        y[31] = 0x7f;
        let order2 = CompressedEdwardsY(y).decompress().unwrap();
        // An order-8 point: the canonical encoding of a torsion generator.
        let t8 = CompressedEdwardsY([
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ])
        .decompress()
        .unwrap();
        assert!(t8.is_small_order());
        assert!(order2.is_small_order());
        let mut p = t8;
        for _ in 0..8 {
            let u = p.to_montgomery().to_bytes();
            assert!(SMALL_ORDER_U.contains(&u), "missing {u:02x?}");
            p += t8;
        }
    }

    #[test]
    fn non_canonical_u_rejected() {
        let mut high = [9u8; 32];
        high[31] |= 0x80;
        assert_eq!(
            x25519_public_from_bytes(&high),
            Err(Error::InvalidPublicKey)
        );
        // p + 2 = 0xef ff .. 7f
        let mut p_plus_2 = [0xffu8; 32];
        p_plus_2[0] = 0xef;
        p_plus_2[31] = 0x7f;
        assert_eq!(
            x25519_public_from_bytes(&p_plus_2),
            Err(Error::InvalidPublicKey)
        );
        // p - 2 is canonical (and not small order).
        let mut p_minus_2 = p_plus_2;
        p_minus_2[0] = 0xeb;
        assert!(x25519_public_from_bytes(&p_minus_2).is_ok());
    }

    #[test]
    fn identity_key_validation() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let id = IdentityKeyPair::generate(&mut rng).unwrap();
        let bytes = id.public_key().to_bytes();
        assert_eq!(IdentityKey::from_bytes(&bytes).unwrap(), *id.public_key());
        // The identity point (y = 1) is of small order.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(
            IdentityKey::from_bytes(&ident),
            Err(Error::InvalidPublicKey)
        );
        // y = 2 does not decompress (not on the curve).
        let mut y2 = [0u8; 32];
        y2[0] = 2;
        assert_eq!(IdentityKey::from_bytes(&y2), Err(Error::InvalidPublicKey));
        // A non-canonical y (y + p) of a valid point: flip to y >= p when possible is rare,
        // so use the sign bit of x = 0 points instead: (0, -1) with the sign bit set.
        let mut neg_one_signed = [0xffu8; 32];
        neg_one_signed[0] = 0xec;
        neg_one_signed[31] = 0xff;
        assert_eq!(
            IdentityKey::from_bytes(&neg_one_signed),
            Err(Error::InvalidPublicKey)
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let id = IdentityKeyPair::generate(&mut rng).unwrap();
        let spk = SignedPreKey::generate(&id, SignedPreKeyId::from_u64(1), &mut rng).unwrap();
        let opk = OneTimePreKey::generate(OneTimePreKeyId::from_u64(2), &mut rng).unwrap();
        let seed_hex: alloc::string::String = id
            .seed()
            .iter()
            .map(|b| alloc::format!("{b:02x}"))
            .collect();
        let all = alloc::format!("{id:?} {spk:?} {opk:?}");
        assert!(!all.contains(&seed_hex));
        assert!(!all.contains(&alloc::format!("{:?}", spk.secret().to_bytes())));
    }
}
