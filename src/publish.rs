//! Publishing prekeys (X3DH §3.2, PQXDH §3.2; SPEC.md §5.9-§5.12, §8.5): what a device
//! uploads and a server stores, without any secret.
//!
//! ```text
//! signed prekey public part     (0x13)  id || SPK || Sig(IK, 0x05 || SPK) || created
//! one-time prekey public part   (0x14)  id || OPK
//! post-quantum prekey public    (0x15)  id || kind || ek || Sig(IK, 0x0A || ek) || created
//! upload set                    (0x12)  IK || signed part || [last-resort part] || n || n one-time parts || m || m PQ one-time parts
//! ```
//!
//! A public part alone has no identity, so its signature is not checked when it is parsed.
//! An [`UploadSet`] carries the identity and checks every signature when it is built or
//! parsed, so a server can store what it parses as is; [`PreKeyBundle::assemble`] checks
//! them again when it builds a bundle from stored parts (SPEC.md §8.5).
//!
//! [`PreKeyBundle::assemble`]: crate::PreKeyBundle::assemble

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;

use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    BUNDLE_VERSION, MAX_MESSAGE_SIZE, MAX_UPLOAD_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_PUBLIC_LENGTH,
    PQ_PREKEY_PUBLIC_LENGTH, SIGNATURE_LENGTH, SIGNED_PREKEY_PUBLIC_LENGTH,
    TYPE_ONE_TIME_PREKEY_PUBLIC, TYPE_SIGNED_PREKEY_PUBLIC, TYPE_UPLOAD_SET,
    UPLOAD_SET_FIXED_LENGTH,
};
#[cfg(feature = "pqxdh")]
use crate::format::{MAX_UPLOAD_PQ_PREKEYS, TYPE_PQ_PREKEY_PUBLIC};
use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use crate::keys::{IdentityKey, OneTimePreKey, SignedPreKey, X25519PublicKey};
use crate::wire::read_version_and_type;
use crate::x3dh::verify_signed_prekey;
#[cfg(feature = "pqxdh")]
use {
    crate::ids::PqPreKeyId,
    crate::pq::{kem_public_from_bytes, PqPreKey, PqPreKeyKind, KEM_PUBLIC_KEY_LENGTH},
    crate::x3dh::verify_pq_prekey,
    alloc::boxed::Box,
};

/// Reads a prekey id of a public part: 0 names no key a device issues (SPEC.md §8.1), so it
/// is `InvalidEncoding` here.
fn read_id(r: &mut Reader<'_>) -> Result<u64, Error> {
    match r.u64()? {
        0 => Err(Error::InvalidEncoding),
        id => Ok(id),
    }
}

/// Refuses id 0 when a public part is made from a local key.
fn nonzero(id: u64) -> Result<(), Error> {
    if id == 0 {
        Err(Error::InvalidEncoding)
    } else {
        Ok(())
    }
}

/// Reads one whole object with `read`, refusing bytes left over.
fn read_whole<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut r = Reader::new(bytes);
    let value = read(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// The public part of a signed prekey (X3DH `SPK`, SPEC.md §5.9): id, X25519 public key,
/// the identity key's signature over `0x05 || key`, and the creation time the device's
/// app gave it (seconds since the Unix epoch). What a device uploads and a server keeps as
/// the device's current signed prekey.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPreKeyPublic {
    id: SignedPreKeyId,
    key: X25519PublicKey,
    signature: [u8; SIGNATURE_LENGTH],
    created: u64,
}

impl SignedPreKeyPublic {
    /// The public part of a local signed prekey, created at `created` (seconds since the
    /// Unix epoch; the key itself does not store it).
    ///
    /// # Errors
    /// [`Error::InvalidEncoding`] if the key's id is 0 (no device issues it, SPEC.md §8.1).
    pub fn from_key(key: &SignedPreKey, created: u64) -> Result<Self, Error> {
        nonzero(key.id().to_u64())?;
        Ok(SignedPreKeyPublic {
            id: key.id(),
            key: key.public_key(),
            signature: key.signature(),
            created,
        })
    }

    /// The id an initiator names in its initial message (never 0).
    pub fn id(&self) -> SignedPreKeyId {
        self.id
    }

    /// The X25519 public key (`SPK`).
    pub fn public_key(&self) -> X25519PublicKey {
        self.key
    }

    /// The signature over `0x05 || public_key`, as carried: an [`UploadSet`] and
    /// [`PreKeyBundle::assemble`](crate::PreKeyBundle::assemble) check it.
    pub fn signature(&self) -> [u8; SIGNATURE_LENGTH] {
        self.signature
    }

    /// When the key was created, in seconds since the Unix epoch, as the device's app said.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Checks the signature under `identity` (strict Ed25519, SPEC.md §2.3).
    pub(crate) fn verify(&self, identity: &IdentityKey) -> Result<(), Error> {
        verify_signed_prekey(identity, &self.key, &self.signature)
    }

    /// The encoding (SPEC.md §5.9): `SIGNED_PREKEY_PUBLIC_LENGTH` = 114 bytes of type `0x13`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_PREKEY_PUBLIC_LENGTH);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_SIGNED_PREKEY_PUBLIC);
        out.put_u64(self.id.to_u64());
        out.put(self.key.as_bytes());
        out.put(&self.signature);
        out.put_u64(self.created);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, BUNDLE_VERSION, TYPE_SIGNED_PREKEY_PUBLIC)?;
        let id = SignedPreKeyId::from_u64(read_id(r)?);
        let key = X25519PublicKey::from_bytes(&r.array()?)?;
        let signature = r.array()?;
        let created = r.u64()?;
        Ok(SignedPreKeyPublic {
            id,
            key,
            signature,
            created,
        })
    }

    /// Parses the encoding strictly and validates the key. The signature is not checked:
    /// the part alone has no identity key.
    ///
    /// # Errors
    /// In the order of SPEC.md §10.1: [`Error::Truncated`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] (id 0),
    /// [`Error::InvalidPublicKey`], [`Error::TrailingData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        read_whole(bytes, Self::read)
    }
}

impl fmt::Debug for SignedPreKeyPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPreKeyPublic")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The public part of a one-time prekey (X3DH `OPK`, SPEC.md §5.10): id and X25519 public
/// key. Unsigned, as in X3DH.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OneTimePreKeyPublic {
    id: OneTimePreKeyId,
    key: X25519PublicKey,
}

impl OneTimePreKeyPublic {
    /// The public part of a local one-time prekey.
    ///
    /// # Errors
    /// [`Error::InvalidEncoding`] if the key's id is 0 (no device issues it, SPEC.md §8.1).
    pub fn from_key(key: &OneTimePreKey) -> Result<Self, Error> {
        nonzero(key.id().to_u64())?;
        Ok(OneTimePreKeyPublic {
            id: key.id(),
            key: key.public_key(),
        })
    }

    /// The id an initiator names in its initial message (never 0).
    pub fn id(&self) -> OneTimePreKeyId {
        self.id
    }

    /// The X25519 public key (`OPK`).
    pub fn public_key(&self) -> X25519PublicKey {
        self.key
    }

    /// The encoding (SPEC.md §5.10): `ONE_TIME_PREKEY_PUBLIC_LENGTH` = 42 bytes of type
    /// `0x14`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ONE_TIME_PREKEY_PUBLIC_LENGTH);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_ONE_TIME_PREKEY_PUBLIC);
        out.put_u64(self.id.to_u64());
        out.put(self.key.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, BUNDLE_VERSION, TYPE_ONE_TIME_PREKEY_PUBLIC)?;
        let id = OneTimePreKeyId::from_u64(read_id(r)?);
        let key = X25519PublicKey::from_bytes(&r.array()?)?;
        Ok(OneTimePreKeyPublic { id, key })
    }

    /// Parses the encoding strictly and validates the key.
    ///
    /// # Errors
    /// In the order of SPEC.md §10.1: [`Error::Truncated`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] (id 0),
    /// [`Error::InvalidPublicKey`], [`Error::TrailingData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        read_whole(bytes, Self::read)
    }
}

impl fmt::Debug for OneTimePreKeyPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePreKeyPublic")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish()
    }
}

/// The public part of a post-quantum prekey (PQXDH `PQOPK` or `PQSPK`, SPEC.md §5.11): id,
/// kind, ML-KEM-768 encapsulation key, the identity key's signature over `0x0A || ek`,
/// and, for a last-resort key, its creation time (seconds since the Unix epoch). A one-time
/// key carries no time, like a classical one-time prekey.
#[cfg(feature = "pqxdh")]
#[derive(Clone, PartialEq, Eq)]
pub struct PqPreKeyPublic {
    id: PqPreKeyId,
    /// The kind, with the creation time a last-resort key carries.
    kind: PqKind,
    key: Box<[u8; KEM_PUBLIC_KEY_LENGTH]>,
    signature: [u8; SIGNATURE_LENGTH],
}

/// The kind of a post-quantum public part; only a last-resort key has a creation time.
#[cfg(feature = "pqxdh")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PqKind {
    OneTime,
    LastResort { created: u64 },
}

#[cfg(feature = "pqxdh")]
impl PqPreKeyPublic {
    fn from_key(key: &PqPreKey, kind: PqKind) -> Result<Self, Error> {
        nonzero(key.id().to_u64())?;
        Ok(PqPreKeyPublic {
            id: key.id(),
            kind,
            key: Box::new(*key.public_key()),
            signature: key.signature(),
        })
    }

    /// The public part of a local one-time post-quantum prekey.
    ///
    /// # Errors
    /// [`Error::Internal`] if the key is a last-resort key (a caller's bug);
    /// [`Error::InvalidEncoding`] if its id is 0.
    pub fn one_time(key: &PqPreKey) -> Result<Self, Error> {
        if key.kind() != PqPreKeyKind::OneTime {
            return Err(Error::Internal);
        }
        Self::from_key(key, PqKind::OneTime)
    }

    /// The public part of a local last-resort post-quantum prekey created at `created`
    /// (seconds since the Unix epoch; the key itself does not store it).
    ///
    /// # Errors
    /// [`Error::Internal`] if the key is a one-time key (a caller's bug);
    /// [`Error::InvalidEncoding`] if its id is 0.
    pub fn last_resort(key: &PqPreKey, created: u64) -> Result<Self, Error> {
        if key.kind() != PqPreKeyKind::LastResort {
            return Err(Error::Internal);
        }
        Self::from_key(key, PqKind::LastResort { created })
    }

    /// The id an initiator names in its initial message (never 0). One-time and last-resort
    /// keys share one id space.
    pub fn id(&self) -> PqPreKeyId {
        self.id
    }

    /// One-time or last-resort.
    pub fn kind(&self) -> PqPreKeyKind {
        match self.kind {
            PqKind::OneTime => PqPreKeyKind::OneTime,
            PqKind::LastResort { .. } => PqPreKeyKind::LastResort,
        }
    }

    /// A last-resort key's creation time, in seconds since the Unix epoch, as the device's
    /// app said; `None` for a one-time key.
    pub fn created(&self) -> Option<u64> {
        match self.kind {
            PqKind::OneTime => None,
            PqKind::LastResort { created } => Some(created),
        }
    }

    /// The ML-KEM-768 encapsulation key.
    pub fn public_key(&self) -> &[u8; KEM_PUBLIC_KEY_LENGTH] {
        &self.key
    }

    /// The signature over `0x0A || public_key`, as carried: an [`UploadSet`] and
    /// [`PreKeyBundle::with_post_quantum`](crate::PreKeyBundle::with_post_quantum) check
    /// it.
    pub fn signature(&self) -> [u8; SIGNATURE_LENGTH] {
        self.signature
    }

    /// Checks the signature under `identity` (strict Ed25519, SPEC.md §3.6).
    pub(crate) fn verify(&self, identity: &IdentityKey) -> Result<(), Error> {
        verify_pq_prekey(identity, &self.key, &self.signature)
    }

    /// The encoding (SPEC.md §5.11): `PQ_PREKEY_PUBLIC_LENGTH` = 1267 bytes of type `0x15`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PQ_PREKEY_PUBLIC_LENGTH);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_PQ_PREKEY_PUBLIC);
        out.put_u64(self.id.to_u64());
        out.put_u8(self.kind().to_byte());
        out.put(&self.key[..]);
        out.put(&self.signature);
        out.put_u64(self.created().unwrap_or(0));
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, BUNDLE_VERSION, TYPE_PQ_PREKEY_PUBLIC)?;
        let id = PqPreKeyId::from_u64(read_id(r)?);
        let kind = PqPreKeyKind::from_byte(r.u8()?)?;
        let key = Box::new(r.array::<KEM_PUBLIC_KEY_LENGTH>()?);
        kem_public_from_bytes(&key)?;
        let signature = r.array()?;
        let kind = match (kind, r.u64()?) {
            (PqPreKeyKind::OneTime, 0) => PqKind::OneTime,
            // A one-time key has no creation time: the field is zero (SPEC.md §5.11).
            (PqPreKeyKind::OneTime, _) => return Err(Error::InvalidEncoding),
            (PqPreKeyKind::LastResort, created) => PqKind::LastResort { created },
        };
        Ok(PqPreKeyPublic {
            id,
            kind,
            key,
            signature,
        })
    }

    /// Parses the encoding strictly and validates the encapsulation key (FIPS 203 §7.2).
    /// The signature is not checked: the part alone has no identity key.
    ///
    /// # Errors
    /// In the order of SPEC.md §10.1: [`Error::Truncated`], [`Error::UnsupportedVersion`],
    /// [`Error::UnexpectedType`], [`Error::InvalidEncoding`] (id 0, unknown kind),
    /// [`Error::InvalidPublicKey`], [`Error::InvalidEncoding`] (a one-time key with a
    /// creation time), [`Error::TrailingData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        read_whole(bytes, Self::read)
    }
}

#[cfg(feature = "pqxdh")]
impl fmt::Debug for PqPreKeyPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqPreKeyPublic")
            .field("id", &self.id)
            .field("kind", &self.kind())
            .field("created", &self.created())
            .finish_non_exhaustive()
    }
}

/// What a device uploads to its server in one request (SPEC.md §5.12): its identity key,
/// its current signed prekey, a batch of one-time prekeys, and (with PQXDH) optionally its
/// current last-resort post-quantum prekey and a batch of one-time post-quantum prekeys.
///
/// Every value of this type is one a server may store as is (SPEC.md §8.5): no id repeats
/// within a kind (post-quantum ids across both kinds), no id is 0, the counts are within
/// [`MAX_UPLOAD_ONE_TIME_PREKEYS`](crate::MAX_UPLOAD_ONE_TIME_PREKEYS) and
/// `MAX_UPLOAD_PQ_PREKEYS`, and every signature verifies under the set's identity key.
/// One-time prekeys are listed in the order a server hands them out, oldest first.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadSet {
    identity: IdentityKey,
    signed_prekey: SignedPreKeyPublic,
    one_time_prekeys: Vec<OneTimePreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pq_last_resort_prekey: Option<PqPreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pq_one_time_prekeys: Vec<PqPreKeyPublic>,
}

/// Detects a repeated id among the parts of one kind.
struct Seen(BTreeSet<u64>);

impl Seen {
    fn new() -> Self {
        Seen(BTreeSet::new())
    }

    /// Records `id`; `InvalidEncoding` if it was recorded before.
    fn insert(&mut self, id: u64) -> Result<(), Error> {
        if self.0.insert(id) {
            Ok(())
        } else {
            Err(Error::InvalidEncoding)
        }
    }
}

impl UploadSet {
    /// Builds an upload set of classical prekeys for `identity` (with PQXDH, add
    /// post-quantum prekeys with `UploadSet::with_post_quantum`, feature `pqxdh`). `one_time_prekeys` are
    /// in the order the server should hand them out, oldest first.
    ///
    /// Accepts exactly what [`UploadSet::from_bytes`] would: the result's encoding parses.
    ///
    /// # Errors
    /// In this order: [`Error::InvalidEncoding`] if there are more than
    /// [`MAX_UPLOAD_ONE_TIME_PREKEYS`](crate::MAX_UPLOAD_ONE_TIME_PREKEYS) one-time
    /// prekeys or two share an id; [`Error::InvalidSignature`] if the signed prekey is not
    /// signed by `identity`.
    pub fn new(
        identity: &IdentityKey,
        signed_prekey: SignedPreKeyPublic,
        one_time_prekeys: Vec<OneTimePreKeyPublic>,
    ) -> Result<Self, Error> {
        if one_time_prekeys.len() > MAX_UPLOAD_ONE_TIME_PREKEYS {
            return Err(Error::InvalidEncoding);
        }
        let mut seen = Seen::new();
        for key in &one_time_prekeys {
            seen.insert(key.id().to_u64())?;
        }
        signed_prekey.verify(identity)?;
        Ok(UploadSet {
            identity: *identity,
            signed_prekey,
            one_time_prekeys,
            #[cfg(feature = "pqxdh")]
            pq_last_resort_prekey: None,
            #[cfg(feature = "pqxdh")]
            pq_one_time_prekeys: Vec::new(),
        })
    }

    /// Sets the set's post-quantum prekeys: optionally the device's current last-resort
    /// one, and one-time ones in the order the server should hand them out, oldest first.
    ///
    /// # Errors
    /// In this order: [`Error::InvalidEncoding`] if `last_resort` is a one-time key, if
    /// there are more than [`MAX_UPLOAD_PQ_PREKEYS`](crate::MAX_UPLOAD_PQ_PREKEYS)
    /// one-time keys, if one of them is a last-resort key, or if two keys (of either
    /// kind) share an id; [`Error::InvalidSignature`] if a key is not signed by the set's
    /// identity key (the last-resort one first, then the one-time ones in order). The set
    /// is dropped on error.
    #[cfg(feature = "pqxdh")]
    pub fn with_post_quantum(
        mut self,
        last_resort: Option<PqPreKeyPublic>,
        one_time: Vec<PqPreKeyPublic>,
    ) -> Result<Self, Error> {
        let mut seen = Seen::new();
        if let Some(key) = &last_resort {
            if key.kind() != PqPreKeyKind::LastResort {
                return Err(Error::InvalidEncoding);
            }
            seen.insert(key.id().to_u64())?;
        }
        if one_time.len() > MAX_UPLOAD_PQ_PREKEYS {
            return Err(Error::InvalidEncoding);
        }
        for key in &one_time {
            if key.kind() != PqPreKeyKind::OneTime {
                return Err(Error::InvalidEncoding);
            }
            seen.insert(key.id().to_u64())?;
        }
        for key in last_resort.iter().chain(&one_time) {
            key.verify(&self.identity)?;
        }
        self.pq_last_resort_prekey = last_resort;
        self.pq_one_time_prekeys = one_time;
        Ok(self)
    }

    /// The device's identity key, which signed every signed part of the set.
    pub fn identity_key(&self) -> &IdentityKey {
        &self.identity
    }

    /// The device's current signed prekey, with its creation time.
    pub fn signed_prekey(&self) -> &SignedPreKeyPublic {
        &self.signed_prekey
    }

    /// The one-time prekeys, oldest first (the order a server hands them out).
    pub fn one_time_prekeys(&self) -> &[OneTimePreKeyPublic] {
        &self.one_time_prekeys
    }

    /// The device's current last-resort post-quantum prekey, if the set carries it.
    #[cfg(feature = "pqxdh")]
    pub fn pq_last_resort_prekey(&self) -> Option<&PqPreKeyPublic> {
        self.pq_last_resort_prekey.as_ref()
    }

    /// The one-time post-quantum prekeys, oldest first (the order a server hands them out).
    #[cfg(feature = "pqxdh")]
    pub fn pq_one_time_prekeys(&self) -> &[PqPreKeyPublic] {
        &self.pq_one_time_prekeys
    }

    /// The encoding (SPEC.md §5.12): `1424 + 42·n + 1267·m` bytes of type `0x12`, at most
    /// `MAX_UPLOAD_SET_LENGTH` = 1 013 904.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[cfg(feature = "pqxdh")]
        let pq_one_time_len = self.pq_one_time_prekeys.len();
        #[cfg(not(feature = "pqxdh"))]
        let pq_one_time_len = 0;
        let len = UPLOAD_SET_FIXED_LENGTH
            + ONE_TIME_PREKEY_PUBLIC_LENGTH * self.one_time_prekeys.len()
            + PQ_PREKEY_PUBLIC_LENGTH * pq_one_time_len;
        let mut out = Vec::with_capacity(len);
        out.put_u8(BUNDLE_VERSION);
        out.put_u8(TYPE_UPLOAD_SET);
        out.put(self.identity.as_bytes());
        self.signed_prekey.write(&mut out);
        #[cfg(feature = "pqxdh")]
        match &self.pq_last_resort_prekey {
            Some(key) => {
                out.put_u8(1);
                key.write(&mut out);
            }
            None => out.put_optional(None, PQ_PREKEY_PUBLIC_LENGTH),
        }
        #[cfg(not(feature = "pqxdh"))]
        out.put_optional(None, PQ_PREKEY_PUBLIC_LENGTH);
        // The counts are bounded by the constructors (at most 16 384).
        out.put_u32(self.one_time_prekeys.len() as u32);
        for key in &self.one_time_prekeys {
            key.write(&mut out);
        }
        out.put_u32(pq_one_time_len as u32);
        #[cfg(feature = "pqxdh")]
        for key in &self.pq_one_time_prekeys {
            key.write(&mut out);
        }
        out
    }

    /// Reads a count and checks it against `max` and the bytes left (`width` each), before
    /// anything is allocated for it.
    fn read_count(r: &mut Reader<'_>, max: usize, width: usize) -> Result<usize, Error> {
        let count = r.u32()? as usize;
        if count > max {
            return Err(Error::InvalidEncoding);
        }
        if r.remaining() < count * width {
            return Err(Error::Truncated);
        }
        Ok(count)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, BUNDLE_VERSION, TYPE_UPLOAD_SET)?;
        let identity = IdentityKey::from_bytes(&r.array()?)?;
        let signed_prekey = SignedPreKeyPublic::read(r)?;
        #[cfg(feature = "pqxdh")]
        let mut pq_seen = Seen::new();
        #[cfg(feature = "pqxdh")]
        let pq_last_resort_prekey = if r.flag()? {
            let key = PqPreKeyPublic::read(r)?;
            if key.kind() != PqPreKeyKind::LastResort {
                return Err(Error::InvalidEncoding);
            }
            pq_seen.insert(key.id().to_u64())?;
            Some(key)
        } else {
            read_zeros(r, PQ_PREKEY_PUBLIC_LENGTH)?;
            None
        };
        #[cfg(not(feature = "pqxdh"))]
        {
            // This build reads no post-quantum part (SPEC.md §5.12).
            if r.flag()? {
                return Err(Error::InvalidEncoding);
            }
            read_zeros(r, PQ_PREKEY_PUBLIC_LENGTH)?;
        }
        let count = Self::read_count(
            r,
            MAX_UPLOAD_ONE_TIME_PREKEYS,
            ONE_TIME_PREKEY_PUBLIC_LENGTH,
        )?;
        let mut one_time_prekeys = Vec::with_capacity(count);
        let mut seen = Seen::new();
        for _ in 0..count {
            let key = OneTimePreKeyPublic::read(r)?;
            seen.insert(key.id().to_u64())?;
            one_time_prekeys.push(key);
        }
        #[cfg(feature = "pqxdh")]
        let pq_one_time_prekeys = {
            let count = Self::read_count(r, MAX_UPLOAD_PQ_PREKEYS, PQ_PREKEY_PUBLIC_LENGTH)?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                let key = PqPreKeyPublic::read(r)?;
                if key.kind() != PqPreKeyKind::OneTime {
                    return Err(Error::InvalidEncoding);
                }
                pq_seen.insert(key.id().to_u64())?;
                keys.push(key);
            }
            keys
        };
        #[cfg(not(feature = "pqxdh"))]
        if r.u32()? != 0 {
            return Err(Error::InvalidEncoding);
        }
        Ok(UploadSet {
            identity,
            signed_prekey,
            one_time_prekeys,
            #[cfg(feature = "pqxdh")]
            pq_last_resort_prekey,
            #[cfg(feature = "pqxdh")]
            pq_one_time_prekeys,
        })
    }

    /// Every signature under the set's identity key, in order: the signed prekey, the
    /// last-resort post-quantum prekey, the one-time post-quantum prekeys.
    fn verify(&self) -> Result<(), Error> {
        self.signed_prekey.verify(&self.identity)?;
        #[cfg(feature = "pqxdh")]
        for key in self
            .pq_last_resort_prekey
            .iter()
            .chain(&self.pq_one_time_prekeys)
        {
            key.verify(&self.identity)?;
        }
        Ok(())
    }

    /// Parses an upload set strictly, validates every key, refuses a repeated id, and
    /// verifies every signature under the set's identity key, so that a server can store
    /// what it returns as is (SPEC.md §8.5).
    ///
    /// # Errors
    /// In the order of SPEC.md §10.1: [`Error::TooLarge`] (above
    /// [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE)), [`Error::Truncated`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidPublicKey`],
    /// [`Error::InvalidEncoding`] (id 0, a count above its bound, a repeated id, a key of
    /// the wrong kind, non-zero padding), [`Error::TrailingData`], then
    /// [`Error::InvalidSignature`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(Error::TooLarge);
        }
        let set = read_whole(bytes, Self::read)?;
        set.verify()?;
        Ok(set)
    }
}

/// Reads `n` bytes that must all be zero (an absent optional field, SPEC.md §5.1).
fn read_zeros(r: &mut Reader<'_>, n: usize) -> Result<(), Error> {
    if r.take(n)?.iter().all(|b| *b == 0) {
        Ok(())
    } else {
        Err(Error::InvalidEncoding)
    }
}

impl fmt::Debug for UploadSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UploadSet");
        d.field("identity", &self.identity)
            .field("signed_prekey", &self.signed_prekey.id)
            .field("one_time_prekeys", &self.one_time_prekeys.len());
        #[cfg(feature = "pqxdh")]
        d.field(
            "pq_last_resort_prekey",
            &self.pq_last_resort_prekey.as_ref().map(|k| k.id),
        )
        .field("pq_one_time_prekeys", &self.pq_one_time_prekeys.len());
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{MAX_UPLOAD_SET_LENGTH, UPLOAD_SET_FIXED_LENGTH};
    use crate::keys::IdentityKeyPair;
    use crate::x3dh::PreKeyBundle;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// A device's keys: identity, a signed prekey, three one-time prekeys, and with PQXDH
    /// two one-time and one last-resort post-quantum prekeys.
    struct Device {
        identity: IdentityKeyPair,
        spk: SignedPreKey,
        opks: Vec<OneTimePreKey>,
        #[cfg(feature = "pqxdh")]
        pq_one_time: Vec<PqPreKey>,
        #[cfg(feature = "pqxdh")]
        pq_last_resort: PqPreKey,
    }

    const CREATED: u64 = 1_767_225_600;

    impl Device {
        fn new(seed: u64) -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let identity = IdentityKeyPair::generate(&mut rng).unwrap();
            let spk =
                SignedPreKey::generate(&identity, SignedPreKeyId::from_u64(seed + 1), &mut rng)
                    .unwrap();
            let opks = (0..3)
                .map(|i| {
                    OneTimePreKey::generate(OneTimePreKeyId::from_u64(100 + i), &mut rng).unwrap()
                })
                .collect();
            Device {
                #[cfg(feature = "pqxdh")]
                pq_one_time: (0..2)
                    .map(|i| {
                        let id = PqPreKeyId::from_u64(200 + i);
                        PqPreKey::generate(&identity, id, PqPreKeyKind::OneTime, &mut rng).unwrap()
                    })
                    .collect(),
                #[cfg(feature = "pqxdh")]
                pq_last_resort: PqPreKey::generate(
                    &identity,
                    PqPreKeyId::from_u64(300),
                    PqPreKeyKind::LastResort,
                    &mut rng,
                )
                .unwrap(),
                identity,
                spk,
                opks,
            }
        }

        fn ik(&self) -> IdentityKey {
            *self.identity.public_key()
        }

        fn signed(&self) -> SignedPreKeyPublic {
            SignedPreKeyPublic::from_key(&self.spk, CREATED).unwrap()
        }

        fn one_time(&self) -> Vec<OneTimePreKeyPublic> {
            let parts = self.opks.iter().map(OneTimePreKeyPublic::from_key);
            parts.collect::<Result<_, _>>().unwrap()
        }

        #[cfg(feature = "pqxdh")]
        fn pq_one_time(&self) -> Vec<PqPreKeyPublic> {
            let parts = self.pq_one_time.iter().map(PqPreKeyPublic::one_time);
            parts.collect::<Result<_, _>>().unwrap()
        }

        #[cfg(feature = "pqxdh")]
        fn pq_last_resort(&self) -> PqPreKeyPublic {
            PqPreKeyPublic::last_resort(&self.pq_last_resort, CREATED + 1).unwrap()
        }

        /// The device's full upload set.
        fn upload_set(&self) -> UploadSet {
            let set = UploadSet::new(&self.ik(), self.signed(), self.one_time()).unwrap();
            #[cfg(feature = "pqxdh")]
            let set = set
                .with_post_quantum(Some(self.pq_last_resort()), self.pq_one_time())
                .unwrap();
            set
        }
    }

    /// Every strict prefix is `Truncated`, one more byte `TrailingData`, another version
    /// `UnsupportedVersion`, another type (of the same family) `UnexpectedType`.
    fn check_strict<T: core::fmt::Debug>(bytes: &[u8], parse: impl Fn(&[u8]) -> Result<T, Error>) {
        for len in 0..bytes.len() {
            assert_eq!(parse(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(parse(&longer).err(), Some(Error::TrailingData));
        let mut other = bytes.to_vec();
        other[0] = 0x01;
        assert_eq!(parse(&other).err(), Some(Error::UnsupportedVersion(1)));
        for t in [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x22] {
            if t != bytes[1] {
                other = bytes.to_vec();
                other[1] = t;
                assert_eq!(parse(&other).err(), Some(Error::UnexpectedType(t)));
            }
        }
    }

    /// A canonical small-order X25519 u-coordinate (u = 1), refused by SPEC.md §2.2.
    const SMALL_ORDER: [u8; 32] = {
        let mut u = [0u8; 32];
        u[0] = 1;
        u
    };

    #[test]
    fn signed_part_round_trip_and_strictness() {
        let device = Device::new(1);
        let part = device.signed();
        assert_eq!(part.id(), device.spk.id());
        assert_eq!(part.public_key(), device.spk.public_key());
        assert_eq!(part.signature(), device.spk.signature());
        assert_eq!(part.created(), CREATED);
        let bytes = part.to_bytes();
        assert_eq!(bytes.len(), SIGNED_PREKEY_PUBLIC_LENGTH);
        assert_eq!(bytes[..2], [0x02, 0x13]);
        assert_eq!(SignedPreKeyPublic::from_bytes(&bytes).unwrap(), part);
        check_strict(&bytes, SignedPreKeyPublic::from_bytes);
        // The id: 0 is refused, as is a key failing §2.2; the creation time is any value.
        let mut bad = bytes.clone();
        bad[2..10].fill(0);
        assert_eq!(
            SignedPreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidEncoding)
        );
        bad = bytes.clone();
        bad[10..42].copy_from_slice(&SMALL_ORDER);
        assert_eq!(
            SignedPreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidPublicKey)
        );
        bad = bytes.clone();
        bad[106..].fill(0xFF);
        assert_eq!(
            SignedPreKeyPublic::from_bytes(&bad).unwrap().created(),
            u64::MAX
        );
        // A local key with id 0 has no public part.
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let zero = SignedPreKey::generate(&device.identity, SignedPreKeyId::from_u64(0), &mut rng)
            .unwrap();
        assert_eq!(
            SignedPreKeyPublic::from_key(&zero, 0),
            Err(Error::InvalidEncoding)
        );
    }

    #[test]
    fn one_time_part_round_trip_and_strictness() {
        let device = Device::new(3);
        let part = device.one_time()[0];
        assert_eq!(part.id(), device.opks[0].id());
        assert_eq!(part.public_key(), device.opks[0].public_key());
        let bytes = part.to_bytes();
        assert_eq!(bytes.len(), ONE_TIME_PREKEY_PUBLIC_LENGTH);
        assert_eq!(bytes[..2], [0x02, 0x14]);
        assert_eq!(OneTimePreKeyPublic::from_bytes(&bytes).unwrap(), part);
        check_strict(&bytes, OneTimePreKeyPublic::from_bytes);
        let mut bad = bytes.clone();
        bad[2..10].fill(0);
        assert_eq!(
            OneTimePreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidEncoding)
        );
        bad = bytes.clone();
        bad[10..].fill(0xFF); // not canonical
        assert_eq!(
            OneTimePreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidPublicKey)
        );
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let zero = OneTimePreKey::generate(OneTimePreKeyId::from_u64(0), &mut rng).unwrap();
        assert_eq!(
            OneTimePreKeyPublic::from_key(&zero),
            Err(Error::InvalidEncoding)
        );
    }

    #[cfg(feature = "pqxdh")]
    #[test]
    fn pq_part_round_trip_and_strictness() {
        let device = Device::new(5);
        let one_time = device.pq_one_time()[0].clone();
        let last_resort = device.pq_last_resort();
        assert_eq!(one_time.id(), device.pq_one_time[0].id());
        assert_eq!(one_time.kind(), PqPreKeyKind::OneTime);
        assert_eq!(one_time.created(), None);
        assert_eq!(one_time.public_key(), device.pq_one_time[0].public_key());
        assert_eq!(one_time.signature(), device.pq_one_time[0].signature());
        assert_eq!(last_resort.kind(), PqPreKeyKind::LastResort);
        assert_eq!(last_resort.created(), Some(CREATED + 1));
        for part in [&one_time, &last_resort] {
            let bytes = part.to_bytes();
            assert_eq!(bytes.len(), PQ_PREKEY_PUBLIC_LENGTH);
            assert_eq!(bytes[..2], [0x02, 0x15]);
            assert_eq!(&PqPreKeyPublic::from_bytes(&bytes).unwrap(), part);
            check_strict(&bytes, PqPreKeyPublic::from_bytes);
        }
        let bytes = one_time.to_bytes();
        let mut bad = bytes.clone();
        bad[2..10].fill(0);
        assert_eq!(
            PqPreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidEncoding)
        );
        for kind in [0x00, 0x03, 0xFF] {
            bad = bytes.clone();
            bad[10] = kind;
            assert_eq!(
                PqPreKeyPublic::from_bytes(&bad),
                Err(Error::InvalidEncoding)
            );
        }
        // Coefficients must be below q = 3329 (FIPS 203 §7.2).
        bad = bytes.clone();
        bad[11..11 + KEM_PUBLIC_KEY_LENGTH].fill(0xFF);
        assert_eq!(
            PqPreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidPublicKey)
        );
        // A one-time key carries no creation time; a last-resort key any.
        bad = bytes.clone();
        bad[PQ_PREKEY_PUBLIC_LENGTH - 1] = 1;
        assert_eq!(
            PqPreKeyPublic::from_bytes(&bad),
            Err(Error::InvalidEncoding)
        );
        bad = last_resort.to_bytes();
        bad[PQ_PREKEY_PUBLIC_LENGTH - 8..].fill(0);
        assert_eq!(PqPreKeyPublic::from_bytes(&bad).unwrap().created(), Some(0));
        // Local keys of the other kind are a caller's bug.
        assert_eq!(
            PqPreKeyPublic::one_time(&device.pq_last_resort),
            Err(Error::Internal)
        );
        assert_eq!(
            PqPreKeyPublic::last_resort(&device.pq_one_time[0], 0),
            Err(Error::Internal)
        );
    }

    #[test]
    fn assembled_bundle_is_the_bundle_of_the_same_keys() {
        let device = Device::new(7);
        let signed = device.signed();
        let one_time = device.one_time();
        for opk in [None, Some(0)] {
            let assembled =
                PreKeyBundle::assemble(&device.ik(), &signed, opk.map(|i| &one_time[i])).unwrap();
            let built =
                PreKeyBundle::new(&device.identity, &device.spk, opk.map(|i| &device.opks[i]));
            assert_eq!(assembled.to_bytes(), built.to_bytes());
            assert_eq!(assembled, built);
            assert_eq!(assembled.identity_key(), &device.ik());
            assert_eq!(assembled.signed_prekey_id(), signed.id());
            assert_eq!(assembled.signed_prekey(), signed.public_key());
            assert_eq!(assembled.signed_prekey_signature(), signed.signature());
            assert_eq!(
                assembled.one_time_prekey_id(),
                opk.map(|i| one_time[i].id())
            );
            assert_eq!(
                assembled.one_time_prekey(),
                opk.map(|i| one_time[i].public_key())
            );
            assert_eq!(assembled.verify(), Ok(()));
        }
        #[cfg(feature = "pqxdh")]
        for (part, key) in [
            (device.pq_one_time()[1].clone(), &device.pq_one_time[1]),
            (device.pq_last_resort(), &device.pq_last_resort),
        ] {
            let assembled = PreKeyBundle::assemble(&device.ik(), &signed, Some(&one_time[2]))
                .unwrap()
                .with_post_quantum(&part)
                .unwrap();
            let built = PreKeyBundle::new(&device.identity, &device.spk, Some(&device.opks[2]))
                .with_post_quantum_prekey(key);
            assert_eq!(assembled.to_bytes(), built.to_bytes());
            assert_eq!(assembled.post_quantum_prekey_id(), Some(part.id()));
            assert_eq!(assembled.post_quantum_prekey(), Some(part.public_key()));
            assert_eq!(
                assembled.post_quantum_prekey_signature(),
                Some(part.signature())
            );
        }
    }

    #[test]
    fn assemble_refuses_parts_signed_by_another_identity() {
        let device = Device::new(9);
        let other = Device::new(10);
        assert_eq!(
            PreKeyBundle::assemble(&other.ik(), &device.signed(), None),
            Err(Error::InvalidSignature)
        );
        // A one-time prekey is unsigned: any may be paired (the device refuses an id it
        // does not hold).
        assert!(
            PreKeyBundle::assemble(&device.ik(), &device.signed(), Some(&other.one_time()[0]))
                .is_ok()
        );
        #[cfg(feature = "pqxdh")]
        {
            let bundle = PreKeyBundle::assemble(&device.ik(), &device.signed(), None).unwrap();
            assert_eq!(
                bundle.clone().with_post_quantum(&other.pq_last_resort()),
                Err(Error::InvalidSignature)
            );
            assert_eq!(
                bundle.with_post_quantum(&other.pq_one_time()[0]),
                Err(Error::InvalidSignature)
            );
        }
    }

    /// The encoded set of `device` with its identity key's bytes replaced.
    fn with_identity(bytes: &[u8], identity: &IdentityKey) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[2..34].copy_from_slice(identity.as_bytes());
        out
    }

    #[test]
    fn upload_set_round_trip() {
        let device = Device::new(11);
        let set = device.upload_set();
        assert_eq!(set.identity_key(), &device.ik());
        assert_eq!(set.signed_prekey(), &device.signed());
        assert_eq!(set.one_time_prekeys(), &device.one_time()[..]);
        let bytes = set.to_bytes();
        assert_eq!(bytes[..2], [0x02, 0x12]);
        #[cfg(feature = "pqxdh")]
        {
            assert_eq!(set.pq_last_resort_prekey(), Some(&device.pq_last_resort()));
            assert_eq!(set.pq_one_time_prekeys(), &device.pq_one_time()[..]);
            assert_eq!(bytes.len(), UPLOAD_SET_FIXED_LENGTH + 3 * 42 + 2 * 1267);
        }
        #[cfg(not(feature = "pqxdh"))]
        assert_eq!(bytes.len(), UPLOAD_SET_FIXED_LENGTH + 3 * 42);
        assert_eq!(UploadSet::from_bytes(&bytes).unwrap(), set);
        // Without one-time prekeys (a new signed prekey alone), and without a last-resort key.
        let bare = UploadSet::new(&device.ik(), device.signed(), Vec::new()).unwrap();
        let bare_bytes = bare.to_bytes();
        assert_eq!(bare_bytes.len(), UPLOAD_SET_FIXED_LENGTH);
        assert_eq!(UploadSet::from_bytes(&bare_bytes).unwrap(), bare);
        #[cfg(feature = "pqxdh")]
        {
            let no_last_resort = bare.with_post_quantum(None, device.pq_one_time()).unwrap();
            let b = no_last_resort.to_bytes();
            assert!(b[148..1416].iter().all(|x| *x == 0));
            assert_eq!(UploadSet::from_bytes(&b).unwrap(), no_last_resort);
        }
    }

    #[test]
    fn upload_set_strictness() {
        let device = Device::new(13);
        let bytes = device.upload_set().to_bytes();
        check_strict(&bytes, UploadSet::from_bytes);
        let mut too_large = bytes.clone();
        too_large.resize(MAX_MESSAGE_SIZE + 1, 0);
        assert_eq!(UploadSet::from_bytes(&too_large), Err(Error::TooLarge));
        let mut bad = bytes.clone();
        bad[2..34].fill(0xFF); // not a point
        assert_eq!(UploadSet::from_bytes(&bad), Err(Error::InvalidPublicKey));
        // The signed part's own header, and its id 0.
        bad = bytes.clone();
        bad[35] = 0x14;
        assert_eq!(
            UploadSet::from_bytes(&bad),
            Err(Error::UnexpectedType(0x14))
        );
        bad = bytes.clone();
        bad[36..44].fill(0);
        assert_eq!(UploadSet::from_bytes(&bad), Err(Error::InvalidEncoding));
        // The last-resort flag: neither 0 nor 1.
        bad = bytes.clone();
        bad[148] = 2;
        assert_eq!(UploadSet::from_bytes(&bad), Err(Error::InvalidEncoding));
        // A one-time part with id 0 and a bad key.
        bad = bytes.clone();
        bad[1422..1430].fill(0);
        assert_eq!(UploadSet::from_bytes(&bad), Err(Error::InvalidEncoding));
        bad = bytes.clone();
        bad[1430..1462].copy_from_slice(&SMALL_ORDER);
        assert_eq!(UploadSet::from_bytes(&bad), Err(Error::InvalidPublicKey));
    }

    /// The fixed part of a set without a last-resort key, followed by `n` and `m` and no
    /// parts.
    fn counts_only(device: &Device, n: u32, m: u32) -> Vec<u8> {
        let mut out = UploadSet::new(&device.ik(), device.signed(), Vec::new())
            .unwrap()
            .to_bytes();
        out.truncate(UPLOAD_SET_FIXED_LENGTH - 8);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&m.to_be_bytes());
        out
    }

    #[test]
    fn counts_are_checked_before_allocating() {
        let device = Device::new(15);
        let max = MAX_UPLOAD_ONE_TIME_PREKEYS as u32;
        // Above the bound: refused whatever follows; within it: the bytes must be there.
        assert_eq!(
            UploadSet::from_bytes(&counts_only(&device, max + 1, 0)),
            Err(Error::InvalidEncoding)
        );
        assert_eq!(
            UploadSet::from_bytes(&counts_only(&device, u32::MAX, 0)),
            Err(Error::InvalidEncoding)
        );
        assert_eq!(
            UploadSet::from_bytes(&counts_only(&device, max, 0)),
            Err(Error::Truncated)
        );
        #[cfg(feature = "pqxdh")]
        {
            let max = MAX_UPLOAD_PQ_PREKEYS as u32;
            assert_eq!(
                UploadSet::from_bytes(&counts_only(&device, 0, max + 1)),
                Err(Error::InvalidEncoding)
            );
            assert_eq!(
                UploadSet::from_bytes(&counts_only(&device, 0, max)),
                Err(Error::Truncated)
            );
        }
        #[cfg(not(feature = "pqxdh"))]
        assert_eq!(
            UploadSet::from_bytes(&counts_only(&device, 0, 1)),
            Err(Error::InvalidEncoding)
        );
        // The builder's bound.
        let part = device.one_time()[0];
        let many = alloc::vec![part; MAX_UPLOAD_ONE_TIME_PREKEYS + 1];
        assert_eq!(
            UploadSet::new(&device.ik(), device.signed(), many),
            Err(Error::InvalidEncoding)
        );
        // The largest set fits in a message (also a compile-time assertion in `format`).
        assert_eq!(MAX_UPLOAD_SET_LENGTH, 1_013_904);
    }

    #[test]
    fn repeated_ids_are_refused() {
        let device = Device::new(17);
        let mut parts = device.one_time();
        parts[2] = OneTimePreKeyPublic {
            id: parts[0].id(),
            key: parts[2].public_key(),
        };
        assert_eq!(
            UploadSet::new(&device.ik(), device.signed(), parts.clone()),
            Err(Error::InvalidEncoding)
        );
        // The same in the encoding: the third part takes the first one's id.
        let mut bytes = device.upload_set().to_bytes();
        let first = 1420 + 2;
        let third = 1420 + 2 * 42 + 2;
        let id: [u8; 8] = bytes[first..first + 8].try_into().unwrap();
        bytes[third..third + 8].copy_from_slice(&id);
        assert_eq!(UploadSet::from_bytes(&bytes), Err(Error::InvalidEncoding));
        // Kinds are separate namespaces: a one-time prekey may have the signed prekey's id.
        let same_as_signed = OneTimePreKeyPublic {
            id: OneTimePreKeyId::from_u64(device.spk.id().to_u64()),
            key: parts[0].public_key(),
        };
        let set = UploadSet::new(&device.ik(), device.signed(), alloc::vec![same_as_signed]);
        assert_eq!(
            UploadSet::from_bytes(&set.unwrap().to_bytes()).map(|_| ()),
            Ok(())
        );
    }

    #[cfg(feature = "pqxdh")]
    #[test]
    fn pq_slots_hold_their_kind_and_ids_do_not_repeat() {
        let device = Device::new(19);
        let bare = || UploadSet::new(&device.ik(), device.signed(), Vec::new()).unwrap();
        let one_time = device.pq_one_time();
        let last_resort = device.pq_last_resort();
        let wrong = bare().with_post_quantum(Some(one_time[0].clone()), Vec::new());
        assert_eq!(wrong, Err(Error::InvalidEncoding));
        let wrong = bare().with_post_quantum(None, alloc::vec![last_resort.clone()]);
        assert_eq!(wrong, Err(Error::InvalidEncoding));
        let twice = bare().with_post_quantum(None, alloc::vec![one_time[0].clone(); 2]);
        assert_eq!(twice, Err(Error::InvalidEncoding));
        let many = alloc::vec![one_time[0].clone(); MAX_UPLOAD_PQ_PREKEYS + 1];
        assert_eq!(
            bare().with_post_quantum(None, many),
            Err(Error::InvalidEncoding)
        );
        // A one-time key with the last-resort key's id: same id space.
        let mut clash = one_time[0].clone();
        clash.id = last_resort.id();
        let clash_set = bare().with_post_quantum(Some(last_resort.clone()), alloc::vec![clash]);
        assert_eq!(clash_set, Err(Error::InvalidEncoding));
        // The same in the encoding: swap the last-resort part into the one-time list, and
        // the last-resort slot gets a one-time part.
        let set = bare()
            .with_post_quantum(Some(last_resort.clone()), one_time.clone())
            .unwrap();
        let bytes = set.to_bytes();
        let lr = 149..149 + PQ_PREKEY_PUBLIC_LENGTH;
        let first = UPLOAD_SET_FIXED_LENGTH..UPLOAD_SET_FIXED_LENGTH + PQ_PREKEY_PUBLIC_LENGTH;
        let mut swapped = bytes.clone();
        swapped[lr.clone()].copy_from_slice(&bytes[first.clone()]);
        assert_eq!(UploadSet::from_bytes(&swapped), Err(Error::InvalidEncoding));
        let mut swapped = bytes.clone();
        swapped[first].copy_from_slice(&bytes[lr]);
        assert_eq!(UploadSet::from_bytes(&swapped), Err(Error::InvalidEncoding));
    }

    #[test]
    fn upload_set_signed_by_another_identity_is_refused() {
        let device = Device::new(21);
        let other = Device::new(22);
        assert_eq!(
            UploadSet::new(&other.ik(), device.signed(), device.one_time()),
            Err(Error::InvalidSignature)
        );
        let bytes = device.upload_set().to_bytes();
        assert_eq!(
            UploadSet::from_bytes(&with_identity(&bytes, &other.ik())),
            Err(Error::InvalidSignature)
        );
        #[cfg(feature = "pqxdh")]
        {
            let bare = UploadSet::new(&device.ik(), device.signed(), Vec::new()).unwrap();
            assert_eq!(
                bare.clone()
                    .with_post_quantum(Some(other.pq_last_resort()), Vec::new()),
                Err(Error::InvalidSignature)
            );
            assert_eq!(
                bare.clone().with_post_quantum(None, other.pq_one_time()),
                Err(Error::InvalidSignature)
            );
            // In the encoding: another identity's one-time post-quantum key spliced in.
            let mut spliced = bytes.clone();
            let at = bytes.len() - PQ_PREKEY_PUBLIC_LENGTH;
            spliced[at..].copy_from_slice(&other.pq_one_time()[1].to_bytes());
            assert_eq!(
                UploadSet::from_bytes(&spliced),
                Err(Error::InvalidSignature)
            );
            spliced = bytes.clone();
            spliced[149..149 + PQ_PREKEY_PUBLIC_LENGTH]
                .copy_from_slice(&other.pq_last_resort().to_bytes());
            assert_eq!(
                UploadSet::from_bytes(&spliced),
                Err(Error::InvalidSignature)
            );
        }
    }
}
