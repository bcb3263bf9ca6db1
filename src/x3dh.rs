//! X3DH §2 (keys, bundle) and §3 (the protocol): the prekey bundle with its signature, and
//! the derivation of `SK` and `AD` by both parties (SPEC.md §3).
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
//! SK  = HKDF(salt = 0^32, IKM = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info = X3DH_INFO, L = 32)
//! AD  = IK_A || IK_B     (the two 32-byte Ed25519 public keys, not X3DH's Encode; SPEC.md §12)
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
use crate::keys::{
    diffie_hellman, encode_x25519, random_x25519, x25519_public, x25519_public_from_bytes,
    IdentityKey, IdentityKeyPair, OneTimePreKey, SignedPreKey,
};
#[cfg(feature = "pqxdh")]
use crate::pq::{
    encapsulate, encode_kem, kem_public_from_bytes, KemCiphertext, PqPreKey, KEM_PUBLIC_KEY_LENGTH,
};
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
    signed_prekey_id: u64,
    signed_prekey: [u8; 32],
    signature: [u8; SIGNATURE_LENGTH],
    one_time_prekey: Option<(u64, [u8; 32])>,
    #[cfg(feature = "pqxdh")]
    post_quantum: Option<PqBundleKey>,
}

/// The post-quantum part of a bundle: `PQPK` id, encapsulation key, signature.
#[cfg(feature = "pqxdh")]
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PqBundleKey {
    pub(crate) id: u64,
    pub(crate) public: Box<[u8; KEM_PUBLIC_KEY_LENGTH]>,
    pub(crate) signature: [u8; SIGNATURE_LENGTH],
}

/// The initiator's post-quantum output: the `PQPK` id used and the KEM ciphertext.
#[cfg(feature = "pqxdh")]
pub(crate) type PqInitiation = (u64, KemCiphertext);

impl PreKeyBundle {
    /// Assembles the bundle a responder publishes. Pass `None` for a bundle without a
    /// one-time prekey (X3DH allows it when the server has run out).
    pub fn new(
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

    /// Adds a signed post-quantum prekey, making this a PQXDH bundle (SPEC.md §3.6).
    #[cfg(feature = "pqxdh")]
    pub fn with_post_quantum_prekey(mut self, prekey: &PqPreKey) -> Self {
        self.post_quantum = Some(PqBundleKey {
            id: prekey.id(),
            public: Box::new(*prekey.public_key()),
            signature: prekey.signature(),
        });
        self
    }

    /// The post-quantum prekey's id, if this is a PQXDH bundle.
    #[cfg(feature = "pqxdh")]
    pub fn post_quantum_prekey_id(&self) -> Option<u64> {
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
    pub fn signed_prekey_id(&self) -> u64 {
        self.signed_prekey_id
    }

    /// The one-time prekey's id, if the bundle has one.
    pub fn one_time_prekey_id(&self) -> Option<u64> {
        self.one_time_prekey.map(|(id, _)| id)
    }

    /// The signed prekey's X25519 public key.
    pub(crate) fn signed_prekey_bytes(&self) -> [u8; 32] {
        self.signed_prekey
    }

    /// Verifies the signed prekey's signature, and the post-quantum prekey's if present,
    /// under the identity key with strict Ed25519 verification (SPEC.md §3.2, §3.6).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if either does not verify.
    pub fn verify(&self) -> Result<(), Error> {
        let verifying = self.identity.verifying_key();
        let signature = Signature::from_bytes(&self.signature);
        let message = encode_x25519(&PublicKey::from(self.signed_prekey));
        verifying
            .verify_strict(&message, &signature)
            .map_err(|_| Error::InvalidSignature)?;
        #[cfg(feature = "pqxdh")]
        if let Some(pq) = &self.post_quantum {
            let signature = Signature::from_bytes(&pq.signature);
            verifying
                .verify_strict(&encode_kem(&pq.public), &signature)
                .map_err(|_| Error::InvalidSignature)?;
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
        out.put_u64(self.signed_prekey_id);
        out.put(&self.signed_prekey);
        out.put(&self.signature);
        match &self.one_time_prekey {
            Some((id, key)) => {
                out.put_u8(1);
                out.put_u64(*id);
                out.put(key);
            }
            None => out.put_optional(None, 8 + 32),
        }
        #[cfg(feature = "pqxdh")]
        if let Some(pq) = &self.post_quantum {
            out.put_u64(pq.id);
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
        let signed_prekey_id = r.u64()?;
        let signed_prekey: [u8; 32] = r.array()?;
        x25519_public_from_bytes(&signed_prekey)?;
        let signature = r.array()?;
        let one_time_prekey = match r.optional::<40>()? {
            Some(field) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&field[..8]);
                let mut key = [0u8; 32];
                key.copy_from_slice(&field[8..]);
                x25519_public_from_bytes(&key)?;
                Some((u64::from_be_bytes(id), key))
            }
            None => None,
        };
        #[cfg(feature = "pqxdh")]
        let post_quantum = if kind == TYPE_BUNDLE_PQ {
            let id = r.u64()?;
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

/// The output of X3DH: the shared secret `SK`.
pub(crate) struct Agreement {
    pub(crate) sk: RootKey,
}

/// `AD = IK_A || IK_B` (X3DH §3.3, with the raw Ed25519 keys: SPEC.md §3.3, §12): the
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
    let spk = x25519_public_from_bytes(&bundle.signed_prekey)?;
    let dh1 = diffie_hellman(identity.dh_secret(), &spk)?;
    let dh2 = diffie_hellman(ephemeral, bundle.identity.x25519())?;
    let dh3 = diffie_hellman(ephemeral, &spk)?;
    match &bundle.one_time_prekey {
        Some((_, opk)) => {
            let opk = x25519_public_from_bytes(opk)?;
            let dh4 = diffie_hellman(ephemeral, &opk)?;
            Ok(derive(&[&dh1, &dh2, &dh3, &dh4], kem_secret))
        }
        None => Ok(derive(&[&dh1, &dh2, &dh3], kem_secret)),
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
    let dh1 = diffie_hellman(signed_prekey.secret(), initiator.x25519())?;
    let dh2 = diffie_hellman(identity.dh_secret(), base_key)?;
    let dh3 = diffie_hellman(signed_prekey.secret(), base_key)?;
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
        let spk = SignedPreKey::generate(&bob, 1, &mut rng).unwrap();
        let opk = OneTimePreKey::generate(9, &mut rng).unwrap();
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
