//! X3DH §2 (keys, bundle) and §3 (the protocol): the prekey bundle with its signature, and
//! the derivation of `SK` and `AD` by both parties (SPEC.md §3).
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
//! SK  = HKDF(salt = 0^32, IKM = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info = X3DH_INFO, L = 32)
//! AD  = IK_A || IK_B     (the two 32-byte Ed25519 public keys, not X3DH's Encode; SPEC.md §13)
//! ```
//!
//! The initiator verifies the bundle's signature (§3.2) before computing any DH.

use ed25519_dalek::Signature;
use rand_core::TryCryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::backend;
use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::TYPE_BUNDLE_PQ;
use crate::format::{AD_LENGTH, BUNDLE_VERSION, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, TYPE_BUNDLE};
#[cfg(feature = "pqxdh")]
use crate::ids::PqPreKeyId;
use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use crate::keys::{
    diffie_hellman, diffie_hellman_many, encode_x25519, random_x25519, x25519_public, IdentityKey,
    IdentityKeyPair, OneTimePreKey, SignedPreKey, X25519PublicKey,
};
#[cfg(feature = "pqxdh")]
use crate::pq::{
    encapsulate, encode_kem, kem_public_from_bytes, KemCiphertext, PqPreKey, KEM_PUBLIC_KEY_LENGTH,
};
#[cfg(feature = "pqxdh")]
use crate::publish::PqPreKeyPublic;
use crate::publish::{OneTimePreKeyPublic, SignedPreKeyPublic};
use crate::ratchet::kdf::{hkdf_sha256, RootKey};
#[cfg(feature = "pqxdh")]
use alloc::boxed::Box;

/// The bundle types this build reads.
#[cfg(feature = "pqxdh")]
const BUNDLE_TYPES: &[u8] = &[TYPE_BUNDLE, TYPE_BUNDLE_PQ];
#[cfg(not(feature = "pqxdh"))]
const BUNDLE_TYPES: &[u8] = &[TYPE_BUNDLE];

pub use crate::format::BUNDLE_LENGTH;
#[cfg(feature = "pqxdh")]
use crate::format::PQXDH_INFO;
#[cfg(feature = "pqxdh")]
pub use crate::format::PQ_BUNDLE_LENGTH;
use crate::format::{SESSION_ID_LABEL, X3DH_INFO};

/// The associated data `AD = IK_A || IK_B`.
pub(crate) type AssociatedData = [u8; AD_LENGTH];

/// A stable, public identifier of a session: `SHA-256(label || IK_A || IK_B || EK_A)`
/// (SPEC.md §3.5). Both parties compute the same value, and the responder can compute it
/// from any initial message, so an app can route initial messages to a session it
/// already has.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 32]);

impl SessionId {
    pub(crate) fn derive(
        initiator: &IdentityKey,
        responder: &IdentityKey,
        base_key: &[u8; 32],
    ) -> Self {
        SessionId(backend::sha256(&[
            SESSION_ID_LABEL,
            initiator.as_bytes(),
            responder.as_bytes(),
            base_key,
        ]))
    }

    /// An identifier read back from storage.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionId(bytes)
    }

    /// The 32 bytes of the identifier.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A responder's published prekey bundle (X3DH §3.1, PQXDH §3.2): identity key, signed
/// prekey with its id and signature, optionally one one-time prekey with its id, and (for
/// PQXDH) a signed ML-KEM-768 prekey with its id. All public.
#[derive(Clone, PartialEq, Eq)]
pub struct PreKeyBundle {
    identity: IdentityKey,
    signed_prekey_id: SignedPreKeyId,
    signed_prekey: X25519PublicKey,
    signature: [u8; SIGNATURE_LENGTH],
    one_time_prekey: Option<(OneTimePreKeyId, X25519PublicKey)>,
    #[cfg(feature = "pqxdh")]
    post_quantum: Option<PqBundleKey>,
}

/// The post-quantum part of a bundle: `PQPK` id, encapsulation key, signature.
#[cfg(feature = "pqxdh")]
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PqBundleKey {
    pub(crate) id: PqPreKeyId,
    pub(crate) public: Box<[u8; KEM_PUBLIC_KEY_LENGTH]>,
    pub(crate) signature: [u8; SIGNATURE_LENGTH],
}

/// The initiator's post-quantum output: the `PQPK` id used and the KEM ciphertext.
#[cfg(feature = "pqxdh")]
pub(crate) type PqInitiation = (PqPreKeyId, KemCiphertext);

impl PreKeyBundle {
    /// Builds the bundle of the local device's own keys (no verification: the signatures
    /// are the device's own). Pass `None` for a bundle without a one-time prekey (X3DH
    /// allows it when the server has run out). Servers and apps assemble bundles from
    /// public parts with [`PreKeyBundle::assemble`].
    pub(crate) fn new(
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPreKey,
        one_time_prekey: Option<&OneTimePreKey>,
    ) -> Self {
        PreKeyBundle {
            identity: *identity.public_key(),
            signed_prekey_id: signed_prekey.id(),
            signed_prekey: signed_prekey.public_key(),
            signature: signed_prekey.signature(),
            one_time_prekey: one_time_prekey.map(|k| (k.id(), k.public_key())),
            #[cfg(feature = "pqxdh")]
            post_quantum: None,
        }
    }

    /// Adds the local device's own signed post-quantum prekey, making this a PQXDH bundle
    /// (SPEC.md §3.6), without verification (see [`PreKeyBundle::new`]).
    #[cfg(feature = "pqxdh")]
    pub(crate) fn with_post_quantum_prekey(mut self, prekey: &PqPreKey) -> Self {
        self.post_quantum = Some(PqBundleKey {
            id: prekey.id(),
            public: Box::new(*prekey.public_key()),
            signature: prekey.signature(),
        });
        self
    }

    /// Assembles a bundle from a device's published public parts (SPEC.md §8.5), as a
    /// server does for each request: the identity key, the current signed prekey and
    /// optionally one one-time prekey. Verifies the signed prekey's signature under
    /// `identity` (strict Ed25519, SPEC.md §2.3). For a PQXDH bundle, add the post-quantum
    /// prekey with `PreKeyBundle::with_post_quantum` (feature `pqxdh`).
    ///
    /// The bundle's encoding is the one [`PreKeyBundle::to_bytes`] gives for the same keys
    /// however it was built (the signed prekey's creation time is not part of it).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if the signed prekey is not signed by `identity`.
    pub fn assemble(
        identity: &IdentityKey,
        signed_prekey: &SignedPreKeyPublic,
        one_time_prekey: Option<&OneTimePreKeyPublic>,
    ) -> Result<Self, Error> {
        signed_prekey.verify(identity)?;
        Ok(PreKeyBundle {
            identity: *identity,
            signed_prekey_id: signed_prekey.id(),
            signed_prekey: signed_prekey.public_key(),
            signature: signed_prekey.signature(),
            one_time_prekey: one_time_prekey.map(|k| (k.id(), k.public_key())),
            #[cfg(feature = "pqxdh")]
            post_quantum: None,
        })
    }

    /// Adds a post-quantum prekey (one-time or last-resort) to an assembled bundle, making
    /// it a PQXDH bundle (SPEC.md §3.6, §8.5), after verifying its signature under the
    /// bundle's identity key (strict Ed25519). A post-quantum prekey the bundle already
    /// has is replaced.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if the prekey is not signed by the bundle's identity
    /// key; the bundle is dropped.
    #[cfg(feature = "pqxdh")]
    pub fn with_post_quantum(mut self, prekey: &PqPreKeyPublic) -> Result<Self, Error> {
        prekey.verify(&self.identity)?;
        self.post_quantum = Some(PqBundleKey {
            id: prekey.id(),
            public: Box::new(*prekey.public_key()),
            signature: prekey.signature(),
        });
        Ok(self)
    }

    /// The post-quantum prekey's id, if this is a PQXDH bundle.
    #[cfg(feature = "pqxdh")]
    pub fn post_quantum_prekey_id(&self) -> Option<PqPreKeyId> {
        self.post_quantum.as_ref().map(|k| k.id)
    }

    /// Whether the bundle carries a post-quantum prekey (so sessions made from it use PQXDH).
    pub fn is_post_quantum(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        {
            self.post_quantum.is_some()
        }
        #[cfg(not(feature = "pqxdh"))]
        {
            false
        }
    }

    /// The responder's identity key.
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity
    }

    /// The signed prekey's id.
    pub fn signed_prekey_id(&self) -> SignedPreKeyId {
        self.signed_prekey_id
    }

    /// The signed prekey's X25519 public key (`SPK_B`).
    pub fn signed_prekey(&self) -> X25519PublicKey {
        self.signed_prekey
    }

    /// The signed prekey's signature, `Sig(IK_B, 0x05 || SPK_B)` (SPEC.md §2.3), as
    /// carried: [`PreKeyBundle::verify`] checks it.
    pub fn signed_prekey_signature(&self) -> [u8; SIGNATURE_LENGTH] {
        self.signature
    }

    /// The one-time prekey's id, if the bundle has one.
    pub fn one_time_prekey_id(&self) -> Option<OneTimePreKeyId> {
        self.one_time_prekey.map(|(id, _)| id)
    }

    /// The one-time prekey's X25519 public key (`OPK_B`), if the bundle has one.
    pub fn one_time_prekey(&self) -> Option<X25519PublicKey> {
        self.one_time_prekey.map(|(_, key)| key)
    }

    /// The post-quantum prekey's ML-KEM-768 encapsulation key, if this is a PQXDH bundle.
    #[cfg(feature = "pqxdh")]
    pub fn post_quantum_prekey(&self) -> Option<&[u8; KEM_PUBLIC_KEY_LENGTH]> {
        self.post_quantum.as_ref().map(|k| &*k.public)
    }

    /// The post-quantum prekey's signature, `Sig(IK_B, 0x0A || ek)` (SPEC.md §3.6), if this
    /// is a PQXDH bundle, as carried: [`PreKeyBundle::verify`] checks it.
    #[cfg(feature = "pqxdh")]
    pub fn post_quantum_prekey_signature(&self) -> Option<[u8; SIGNATURE_LENGTH]> {
        self.post_quantum.as_ref().map(|k| k.signature)
    }

    /// The signed prekey's X25519 public key.
    pub(crate) fn signed_prekey_bytes(&self) -> [u8; 32] {
        self.signed_prekey.to_bytes()
    }

    /// Verifies the signed prekey's signature, and the post-quantum prekey's if present,
    /// under the identity key with strict Ed25519 verification (SPEC.md §3.2, §3.6).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if either does not verify.
    pub fn verify(&self) -> Result<(), Error> {
        verify_signed_prekey(&self.identity, &self.signed_prekey, &self.signature)?;
        #[cfg(feature = "pqxdh")]
        if let Some(pq) = &self.post_quantum {
            verify_pq_prekey(&self.identity, &pq.public, &pq.signature)?;
        }
        Ok(())
    }

    /// The bundle's encoding (SPEC.md §5.4): [`BUNDLE_LENGTH`] bytes of type `0x10`, or
    /// for a PQXDH bundle `PQ_BUNDLE_LENGTH` bytes of type `0x11`.
    pub fn to_bytes(&self) -> alloc::vec::Vec<u8> {
        #[cfg(feature = "pqxdh")]
        let (kind, len) = match self.post_quantum {
            Some(_) => (TYPE_BUNDLE_PQ, PQ_BUNDLE_LENGTH),
            None => (TYPE_BUNDLE, BUNDLE_LENGTH),
        };
        #[cfg(not(feature = "pqxdh"))]
        let (kind, len) = (TYPE_BUNDLE, BUNDLE_LENGTH);
        let mut out = alloc::vec::Vec::with_capacity(len);
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(kind);
        out.put(self.identity.as_bytes());
        out.put_u64(self.signed_prekey_id.to_u64());
        out.put(self.signed_prekey.as_bytes());
        out.put(&self.signature);
        match &self.one_time_prekey {
            Some((id, key)) => {
                out.put_u8(1);
                out.put_u64(id.to_u64());
                out.put(key.as_bytes());
            }
            None => out.put_optional(None, 8 + 32),
        }
        #[cfg(feature = "pqxdh")]
        if let Some(pq) = &self.post_quantum {
            out.put_u64(pq.id.to_u64());
            out.put(&pq.public[..]);
            out.put(&pq.signature);
        }
        out
    }

    /// Parses a bundle strictly and validates its keys. The signature is checked by
    /// [`PreKeyBundle::verify`], which [`Session::initiate`](crate::Session::initiate) calls.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] or [`Error::InvalidPublicKey`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let kind = crate::wire::read_version_and_type_of(&mut r, BUNDLE_VERSION, BUNDLE_TYPES)?;
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let signed_prekey_id = SignedPreKeyId::from_u64(r.u64()?);
        let signed_prekey = X25519PublicKey::from_bytes(&r.array()?)?;
        let signature = r.array()?;
        let one_time_prekey = match r.optional::<40>()? {
            Some(field) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&field[..8]);
                let mut key = [0u8; 32];
                key.copy_from_slice(&field[8..]);
                let key = X25519PublicKey::from_bytes(&key)?;
                Some((OneTimePreKeyId::from_u64(u64::from_be_bytes(id)), key))
            }
            None => None,
        };
        #[cfg(feature = "pqxdh")]
        let post_quantum = if kind == TYPE_BUNDLE_PQ {
            let id = PqPreKeyId::from_u64(r.u64()?);
            let public = Box::new(r.array::<KEM_PUBLIC_KEY_LENGTH>()?);
            kem_public_from_bytes(&public)?;
            let signature = r.array()?;
            Some(PqBundleKey {
                id,
                public,
                signature,
            })
        } else {
            None
        };
        #[cfg(not(feature = "pqxdh"))]
        let _ = kind;
        r.finish()?;
        Ok(PreKeyBundle {
            identity,
            signed_prekey_id,
            signed_prekey,
            signature,
            one_time_prekey,
            #[cfg(feature = "pqxdh")]
            post_quantum,
        })
    }
}

impl core::fmt::Debug for PreKeyBundle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyBundle")
            .field("identity", &self.identity)
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id())
            .field("post_quantum", &self.is_post_quantum())
            .finish_non_exhaustive()
    }
}

/// Checks `Sig(IK, 0x05 || SPK)` with strict Ed25519 verification (SPEC.md §2.3).
pub(crate) fn verify_signed_prekey(
    identity: &IdentityKey,
    key: &X25519PublicKey,
    signature: &[u8; SIGNATURE_LENGTH],
) -> Result<(), Error> {
    let message = encode_x25519(&PublicKey::from(key.to_bytes()));
    identity
        .verifying_key()
        .verify_strict(&message, &Signature::from_bytes(signature))
        .map_err(|_| Error::InvalidSignature)
}

/// Checks `Sig(IK, 0x0A || ek)` with strict Ed25519 verification (SPEC.md §3.6).
#[cfg(feature = "pqxdh")]
pub(crate) fn verify_pq_prekey(
    identity: &IdentityKey,
    key: &[u8; KEM_PUBLIC_KEY_LENGTH],
    signature: &[u8; SIGNATURE_LENGTH],
) -> Result<(), Error> {
    identity
        .verifying_key()
        .verify_strict(&encode_kem(key), &Signature::from_bytes(signature))
        .map_err(|_| Error::InvalidSignature)
}

/// The output of X3DH: the shared secret `SK`.
pub(crate) struct Agreement {
    pub(crate) sk: RootKey,
}

/// `AD = IK_A || IK_B` (X3DH §3.3, with the raw Ed25519 keys: SPEC.md §3.3, §13): the
/// initiator's identity key first.
pub(crate) fn associated_data(initiator: &IdentityKey, responder: &IdentityKey) -> AssociatedData {
    let mut ad = [0u8; AD_LENGTH];
    ad[..PUBLIC_KEY_LENGTH].copy_from_slice(initiator.as_bytes());
    ad[PUBLIC_KEY_LENGTH..].copy_from_slice(responder.as_bytes());
    ad
}

/// `SK = HKDF(0^32, F || DH1 || DH2 || DH3 [|| DH4] [|| SS], info, 32)` with `F = 0xFF^32`
/// (X3DH §2.2, PQXDH §2.2): the X3DH info without a KEM secret, the PQXDH info with one.
fn derive(dhs: &[&[u8; 32]], kem_secret: Option<&[u8; 32]>) -> Agreement {
    let mut ikm = Zeroizing::new([0u8; 32 * 6]);
    ikm[..32].fill(0xFF);
    let mut len = 32;
    for part in dhs.iter().copied().chain(kem_secret) {
        ikm[len..len + 32].copy_from_slice(part);
        len += 32;
    }
    let info = match kem_secret {
        #[cfg(feature = "pqxdh")]
        Some(_) => PQXDH_INFO,
        _ => X3DH_INFO,
    };
    let okm = hkdf_sha256::<32>(&[0u8; 32], &ikm[..len], info);
    Agreement { sk: RootKey(*okm) }
}

/// What the initiator needs to build its initial messages.
pub(crate) struct Initiation {
    pub(crate) agreement: Agreement,
    /// `EK_A`'s public key; the secret is erased.
    pub(crate) base_key: PublicKey,
    /// For PQXDH: the `PQPK` id and the KEM ciphertext.
    #[cfg(feature = "pqxdh")]
    pub(crate) post_quantum: Option<PqInitiation>,
}

/// X3DH §3.3 / PQXDH §3.3, initiator side: verifies the bundle (both signatures), then
/// generates `EK_A`, computes the DHs, and for a PQXDH bundle encapsulates to `PQPK_B`.
pub(crate) fn initiate<R: TryCryptoRng + ?Sized>(
    identity: &IdentityKeyPair,
    bundle: &PreKeyBundle,
    rng: &mut R,
) -> Result<Initiation, Error> {
    bundle.verify()?;
    let ephemeral = random_x25519(rng)?;
    #[cfg(feature = "pqxdh")]
    if let Some(pq) = &bundle.post_quantum {
        let (ciphertext, shared) = encapsulate(&pq.public, rng)?;
        let agreement = agree_initiator(identity, bundle, &ephemeral, Some(&shared))?;
        return Ok(Initiation {
            agreement,
            base_key: x25519_public(&ephemeral),
            post_quantum: Some((pq.id, ciphertext)),
        });
    }
    let agreement = agree_initiator(identity, bundle, &ephemeral, None)?;
    Ok(Initiation {
        agreement,
        base_key: x25519_public(&ephemeral),
        #[cfg(feature = "pqxdh")]
        post_quantum: None,
    })
}

/// The DHs and derivation of X3DH §3.3 for a given `EK_A` and, for PQXDH, the KEM shared
/// secret (the bundle is already verified).
pub(crate) fn agree_initiator(
    identity: &IdentityKeyPair,
    bundle: &PreKeyBundle,
    ephemeral: &StaticSecret,
    kem_secret: Option<&[u8; 32]>,
) -> Result<Agreement, Error> {
    let spk = PublicKey::from(bundle.signed_prekey.to_bytes());
    let dh1 = diffie_hellman(identity.dh_secret(), &spk)?;
    // DH2, DH3 (and DH4) share `EK_A`: one call, so that a backend can share its work.
    match &bundle.one_time_prekey {
        Some((_, opk)) => {
            let opk = PublicKey::from(opk.to_bytes());
            let [dh2, dh3, dh4] =
                diffie_hellman_many(ephemeral, [bundle.identity.x25519(), &spk, &opk])?;
            Ok(derive(&[&dh1, &dh2, &dh3, &dh4], kem_secret))
        }
        None => {
            let [dh2, dh3] = diffie_hellman_many(ephemeral, [bundle.identity.x25519(), &spk])?;
            Ok(derive(&[&dh1, &dh2, &dh3], kem_secret))
        }
    }
}

/// X3DH §3.4 / PQXDH §3.4, responder side. `kem_secret` is PQXDH's decapsulated `SS`.
pub(crate) fn respond(
    identity: &IdentityKeyPair,
    signed_prekey: &SignedPreKey,
    one_time_prekey: Option<&OneTimePreKey>,
    initiator: &IdentityKey,
    base_key: &PublicKey,
    kem_secret: Option<&[u8; 32]>,
) -> Result<Agreement, Error> {
    // DH1 and DH3 share the signed prekey: one call, so that a backend can share its work.
    let [dh1, dh3] = diffie_hellman_many(signed_prekey.secret(), [initiator.x25519(), base_key])?;
    let dh2 = diffie_hellman(identity.dh_secret(), base_key)?;
    match one_time_prekey {
        Some(opk) => {
            let dh4 = diffie_hellman(opk.secret(), base_key)?;
            Ok(derive(&[&dh1, &dh2, &dh3, &dh4], kem_secret))
        }
        None => Ok(derive(&[&dh1, &dh2, &dh3], kem_secret)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn setup(
        with_opk: bool,
    ) -> (
        IdentityKeyPair,
        IdentityKeyPair,
        SignedPreKey,
        OneTimePreKey,
        PreKeyBundle,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let alice = IdentityKeyPair::generate(&mut rng).unwrap();
        let bob = IdentityKeyPair::generate(&mut rng).unwrap();
        let spk = SignedPreKey::generate(&bob, 1.into(), &mut rng).unwrap();
        let opk = OneTimePreKey::generate(9.into(), &mut rng).unwrap();
        let bundle = PreKeyBundle::new(&bob, &spk, with_opk.then_some(&opk));
        (alice, bob, spk, opk, bundle)
    }

    #[test]
    fn both_sides_agree_with_and_without_opk() {
        for with_opk in [true, false] {
            let (alice, bob, spk, opk, bundle) = setup(with_opk);
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            let init = initiate(&alice, &bundle, &mut rng).unwrap();
            let (a, ek) = (init.agreement, init.base_key);
            let b = respond(
                &bob,
                &spk,
                with_opk.then_some(&opk),
                alice.public_key(),
                &ek,
                None,
            )
            .unwrap();
            assert_eq!(a.sk.0, b.sk.0);
            let ad = associated_data(alice.public_key(), bob.public_key());
            assert_eq!(&ad[..32], alice.public_key().as_bytes());
        }
    }

    #[test]
    fn bundle_round_trip_and_strictness() {
        let (_, _, _, _, bundle) = setup(true);
        let bytes = bundle.to_bytes();
        assert_eq!(bytes.len(), BUNDLE_LENGTH);
        assert_eq!(PreKeyBundle::from_bytes(&bytes).unwrap(), bundle);
        for len in 0..bytes.len() {
            assert_eq!(
                PreKeyBundle::from_bytes(&bytes[..len]),
                Err(Error::Truncated)
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(PreKeyBundle::from_bytes(&longer), Err(Error::TrailingData));
        let (_, _, _, _, no_opk) = setup(false);
        let mut b = no_opk.to_bytes();
        assert_eq!(PreKeyBundle::from_bytes(&b).unwrap(), no_opk);
        // Absent OPK with a non-zero id is not a valid encoding.
        b[BUNDLE_LENGTH - 33] = 1;
        assert_eq!(PreKeyBundle::from_bytes(&b), Err(Error::InvalidEncoding));
    }

    #[test]
    fn bad_signature_is_rejected_before_any_dh() {
        let (alice, _, _, _, bundle) = setup(true);
        let mut bytes = bundle.to_bytes();
        bytes[2 + 32 + 8 + 32] ^= 1; // first signature byte (after IK_B, the id and SPK_B)
        let forged = PreKeyBundle::from_bytes(&bytes).unwrap();
        assert_eq!(forged.verify(), Err(Error::InvalidSignature));
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        assert!(matches!(
            initiate(&alice, &forged, &mut rng),
            Err(Error::InvalidSignature)
        ));
    }
}
