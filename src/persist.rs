//! The storage format (SPEC.md §7): versioned binary encodings of sessions, identity key
//! pairs and prekeys, and sealing of any of them under an application key.
//!
//! Every encoding starts with the version byte and an object type byte, so that one kind of
//! object is never read as another. Loading is strict: truncated, extended, corrupted,
//! wrong-type and future-version input is a typed [`Error`]; no length field is trusted
//! before it has been checked against the bytes actually present.
//!
//! Encodings of secret material are returned in [`Zeroizing`] buffers, allocated once at
//! their exact size so that no copy is left behind by a reallocation.

use alloc::vec::Vec;

use rand_core::TryCryptoRng;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::aead::{self, NONCE_LENGTH, TAG_LENGTH};
use crate::codec::{Reader, Writer};
use crate::error::Error;
#[cfg(feature = "pqxdh")]
use crate::format::TYPE_PQ_PREKEY;
use crate::format::{
    STORAGE_VERSION, TYPE_IDENTITY, TYPE_ONE_TIME_PREKEY, TYPE_PREKEY_STORE, TYPE_SEALED,
    TYPE_SESSION, TYPE_SESSION_HE, TYPE_SESSION_PQ, TYPE_SIGNED_PREKEY,
};
use crate::keys::{
    fill_random, x25519_public_from_bytes, IdentityKey, IdentityKeyPair, OneTimePreKey,
    RatchetKeyPair, SignedPreKey,
};
use crate::padding::Padding;
use crate::ratchet::header::HeaderKey;
use crate::ratchet::kdf::{ChainKey, MessageKey, RootKey};
use crate::ratchet::skipped::{SkippedKeys, Staged};
use crate::ratchet::state::{HeaderKeys, Limits, MAX_SKIPPED_HEADER_KEYS, MAX_STORED_SKIPPED_CAP};
use crate::ratchet::RatchetState;
use crate::session::{PendingInitial, Role, Session};
use crate::wire::{read_version_and_type, read_version_and_type_of};
#[cfg(feature = "pqxdh")]
use alloc::boxed::Box;
use alloc::collections::VecDeque;

/// The session types this build reads.
#[cfg(feature = "pqxdh")]
const SESSION_TYPES: &[u8] = &[TYPE_SESSION, TYPE_SESSION_PQ, TYPE_SESSION_HE];
#[cfg(not(feature = "pqxdh"))]
const SESSION_TYPES: &[u8] = &[TYPE_SESSION, TYPE_SESSION_HE];

/// Flags byte of a type `0x28` session: agreed with PQXDH.
const FLAG_POST_QUANTUM: u8 = 0x01;
/// Flags byte of a type `0x28` session: header-encrypted (always set).
const FLAG_HEADER_ENCRYPTED: u8 = 0x02;
/// Extra length of a header-encrypted session: the flags byte, `HKs` and `HKr` (optional),
/// `NHKs`, `NHKr`, and the count of skipped-chain header keys.
const HE_FIXED_LENGTH: usize = 1 + 33 + 33 + 32 + 32 + 4;
/// Length of one stored skipped-chain header key: the header key and the ratchet key.
const HE_ENTRY_LENGTH: usize = 32 + 32;

/// Length of a stored session with no skipped keys.
pub(crate) const SESSION_FIXED_LENGTH: usize =
    2 + 1 + 32 * 3 + (1 + 8 + 1 + 8) + 8 + 1 + 32 + 32 + 3 * 33 + 12 + 4;
/// Length of one stored skipped key: ratchet key, N, message key.
pub(crate) const SKIPPED_ENTRY_LENGTH: usize = 32 + 4 + 32;
/// Extra length of a PQXDH session awaiting its first reply: `PQPK` id and KEM ciphertext.
pub(crate) const PQ_PENDING_LENGTH: usize = 8 + 1088;
/// The largest stored object: a header-encrypted PQXDH session awaiting its first reply,
/// holding [`MAX_STORED_SKIPPED_CAP`] skipped keys and the most skipped-chain header keys.
pub const MAX_STORED_SIZE: usize = SESSION_FIXED_LENGTH
    + PQ_PENDING_LENGTH
    + SKIPPED_ENTRY_LENGTH * MAX_STORED_SKIPPED_CAP as usize
    + HE_FIXED_LENGTH
    + HE_ENTRY_LENGTH * MAX_SKIPPED_HEADER_KEYS;
/// Length of a sealed blob's framing: version, type, object type, nonce.
const SEALED_HEADER_LENGTH: usize = 3 + NONCE_LENGTH;
/// Domain label prefixed to a sealed blob's associated data (SPEC.md §7.6).
const SEALED_AD_LABEL: &[u8] = b"doubleratchet v2 sealed";
/// The longest application context [`StorageKey::seal`] and [`StorageKey::open`] take.
pub const MAX_SEAL_CONTEXT_LENGTH: usize = 1024;
const SEALED_AAD_CAPACITY: usize = SEALED_AD_LABEL.len() + 3 + 4 + MAX_SEAL_CONTEXT_LENGTH;

/// A sealed blob's associated data, built on the stack.
struct SealedAad {
    bytes: [u8; SEALED_AAD_CAPACITY],
    len: usize,
}

impl SealedAad {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

const ROLE_INITIATOR: u8 = 0x01;
const ROLE_RESPONDER: u8 = 0x02;

fn header(out: &mut Vec<u8>, object_type: u8) {
    out.put_u8(STORAGE_VERSION);
    out.put_u8(object_type);
}

/// SPEC.md §7: any stored input longer than [`MAX_STORED_SIZE`] is `TooLarge`, before
/// anything else is read.
pub(crate) fn stored_reader(bytes: &[u8]) -> Result<Reader<'_>, Error> {
    if bytes.len() > MAX_STORED_SIZE {
        return Err(Error::TooLarge);
    }
    Ok(Reader::new(bytes))
}

/// Reads one stored object that must span all of `bytes`.
fn read_whole<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut r = stored_reader(bytes)?;
    let object = read(&mut r)?;
    r.finish()?;
    Ok(object)
}

fn read_x25519_secret(r: &mut Reader<'_>) -> Result<StaticSecret, Error> {
    let bytes = Zeroizing::new(r.array::<32>()?);
    Ok(StaticSecret::from(*bytes))
}

fn read_key32(r: &mut Reader<'_>) -> Result<Zeroizing<[u8; 32]>, Error> {
    Ok(Zeroizing::new(r.array::<32>()?))
}

impl IdentityKeyPair {
    /// The storage encoding (SPEC.md §7.2): version, type `0x21`, the 32-byte Ed25519 seed.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(34));
        header(&mut out, TYPE_IDENTITY);
        out.put(self.seed());
        out
    }

    /// Loads a stored identity key pair.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
    /// [`Error::UnexpectedType`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = stored_reader(bytes)?;
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_IDENTITY)?;
        let seed = read_key32(&mut r)?;
        r.finish()?;
        Ok(IdentityKeyPair::from_seed(&seed))
    }
}

impl SignedPreKey {
    /// The storage encoding (SPEC.md §7.3): version, type `0x22`, id, secret, signature.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SIGNED_PREKEY_LENGTH));
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        header(out, TYPE_SIGNED_PREKEY);
        out.put_u64(self.id());
        out.put(self.secret().as_bytes());
        out.put(&self.signature());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, STORAGE_VERSION, TYPE_SIGNED_PREKEY)?;
        let id = r.u64()?;
        let secret = read_x25519_secret(r)?;
        let signature = r.array()?;
        Ok(SignedPreKey::from_parts(id, secret, signature))
    }

    /// Loads a stored signed prekey.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
    /// [`Error::UnexpectedType`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        read_whole(bytes, Self::read)
    }
}

impl OneTimePreKey {
    /// The storage encoding (SPEC.md §7.4): version, type `0x23`, id, secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(ONE_TIME_PREKEY_LENGTH));
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        header(out, TYPE_ONE_TIME_PREKEY);
        out.put_u64(self.id());
        out.put(self.secret().as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, STORAGE_VERSION, TYPE_ONE_TIME_PREKEY)?;
        let id = r.u64()?;
        Ok(OneTimePreKey::from_secret(id, read_x25519_secret(r)?))
    }

    /// Loads a stored one-time prekey.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnsupportedVersion`] or
    /// [`Error::UnexpectedType`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        read_whole(bytes, Self::read)
    }
}

#[cfg(feature = "pqxdh")]
impl crate::pq::PqPreKey {
    /// The storage encoding (SPEC.md §7.7): version, type `0x26`, id, kind, the 64-byte
    /// ML-KEM seed, signature.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(PQ_PREKEY_LENGTH));
        self.write(&mut out);
        out
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        header(out, TYPE_PQ_PREKEY);
        out.put_u64(self.id());
        out.put_u8(self.kind().to_byte());
        out.put(self.seed());
        out.put(&self.signature());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        read_version_and_type(r, STORAGE_VERSION, TYPE_PQ_PREKEY)?;
        let id = r.u64()?;
        let kind = crate::pq::PqPreKeyKind::from_byte(r.u8()?)?;
        let seed = Zeroizing::new(r.array::<64>()?);
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

/// Length of a stored post-quantum prekey.
#[cfg(feature = "pqxdh")]
pub(crate) const PQ_PREKEY_LENGTH: usize = 2 + 8 + 1 + 64 + 64;

impl Session {
    /// The storage encoding of the whole session (SPEC.md §7.1), including its skipped-key
    /// store and limits. Store it after every successful `encrypt` or `decrypt`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let st = &self.ratchet;
        let pq_pending = self.post_quantum && self.pending_initial.is_some();
        let len = SESSION_FIXED_LENGTH
            + SKIPPED_ENTRY_LENGTH * st.skipped.len()
            + if pq_pending { PQ_PENDING_LENGTH } else { 0 }
            + st.he
                .as_ref()
                .map_or(0, |he| HE_FIXED_LENGTH + HE_ENTRY_LENGTH * he.skipped.len());
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let kind = match (&st.he, self.post_quantum) {
            (Some(_), _) => TYPE_SESSION_HE,
            (None, true) => TYPE_SESSION_PQ,
            (None, false) => TYPE_SESSION,
        };
        header(&mut out, kind);
        out.put_u8(match self.role {
            Role::Initiator => ROLE_INITIATOR,
            Role::Responder => ROLE_RESPONDER,
        });
        if kind == TYPE_SESSION_HE {
            let pq = if self.post_quantum {
                FLAG_POST_QUANTUM
            } else {
                0
            };
            out.put_u8(FLAG_HEADER_ENCRYPTED | pq);
        }
        out.put(self.local_identity.as_bytes());
        out.put(self.remote_identity.as_bytes());
        out.put(&self.base_key);
        match &self.pending_initial {
            Some(p) => {
                out.put_u8(1);
                out.put_u64(p.signed_prekey_id);
                out.put_optional(
                    p.one_time_prekey_id
                        .map(u64::to_be_bytes)
                        .as_ref()
                        .map(|b| &b[..]),
                    8,
                );
                #[cfg(feature = "pqxdh")]
                if let Some((id, ciphertext)) = &p.post_quantum {
                    out.put_u64(*id);
                    out.put(&ciphertext[..]);
                }
            }
            None => out.put_optional(None, 8 + 1 + 8),
        }
        out.put_u32(st.limits.max_skip);
        out.put_u32(st.limits.max_stored_skipped);
        out.put_u8(self.padding.to_byte());
        out.put(&st.rk.0);
        out.put(st.dhs.secret.as_bytes());
        out.put_optional(st.dhr.as_ref().map(|k| &k.as_bytes()[..]), 32);
        out.put_optional(st.cks.as_ref().map(|k| &k.0[..]), 32);
        out.put_optional(st.ckr.as_ref().map(|k| &k.0[..]), 32);
        out.put_u32(st.ns);
        out.put_u32(st.nr);
        out.put_u32(st.pn);
        // Bounded by MAX_STORED_SKIPPED_CAP, far below u32::MAX.
        out.put_u32(st.skipped.len() as u32);
        for ((dh, n), key) in st.skipped.iter_oldest_first() {
            out.put(&dh);
            out.put_u32(n);
            out.put(&key.0);
        }
        if let Some(he) = &st.he {
            out.put_optional(he.hks.as_ref().map(|k| &k.0[..]), 32);
            out.put_optional(he.hkr.as_ref().map(|k| &k.0[..]), 32);
            out.put(&he.nhks.0);
            out.put(&he.nhkr.0);
            // Bounded by MAX_SKIPPED_HEADER_KEYS.
            out.put_u32(he.skipped.len() as u32);
            for (hk, dh) in &he.skipped {
                out.put(&hk.0);
                out.put(dh);
            }
        }
        out
    }

    /// Loads a stored session, validating every field (SPEC.md §7.1).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`],
    /// [`Error::InvalidPublicKey`] or [`Error::InvalidLimits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = stored_reader(bytes)?;
        let kind = read_version_and_type_of(&mut r, STORAGE_VERSION, SESSION_TYPES)?;
        let role = match r.u8()? {
            ROLE_INITIATOR => Role::Initiator,
            ROLE_RESPONDER => Role::Responder,
            _ => return Err(Error::InvalidEncoding),
        };
        let (post_quantum, header_encrypted) = match kind {
            TYPE_SESSION_HE => match r.u8()? {
                FLAG_HEADER_ENCRYPTED => (false, true),
                #[cfg(feature = "pqxdh")]
                f if f == FLAG_HEADER_ENCRYPTED | FLAG_POST_QUANTUM => (true, true),
                _ => return Err(Error::InvalidEncoding),
            },
            TYPE_SESSION_PQ => (true, false),
            _ => (false, false),
        };
        let local_identity = IdentityKey::from_bytes(&r.array()?)?;
        let remote_identity = IdentityKey::from_bytes(&r.array()?)?;
        if local_identity == remote_identity {
            return Err(Error::InvalidEncoding);
        }
        let base_key: [u8; 32] = r.array()?;
        x25519_public_from_bytes(&base_key)?;
        let pending = r.optional::<17>()?;
        let pending_initial = match pending {
            Some(p) => {
                let mut pr = Reader::new(&p);
                let signed_prekey_id = pr.u64()?;
                let one_time_prekey_id = pr.optional::<8>()?.map(u64::from_be_bytes);
                // A PQXDH session awaiting its reply also repeats its KEM ciphertext.
                #[cfg(feature = "pqxdh")]
                let post_quantum = if post_quantum {
                    let id = r.u64()?;
                    let ciphertext = Box::new(r.array::<1088>()?);
                    Some((id, ciphertext))
                } else {
                    None
                };
                Some(PendingInitial {
                    signed_prekey_id,
                    one_time_prekey_id,
                    #[cfg(feature = "pqxdh")]
                    post_quantum,
                })
            }
            None => None,
        };
        if pending_initial.is_some() && role != Role::Initiator {
            return Err(Error::InvalidEncoding);
        }
        let limits = Limits {
            max_skip: r.u32()?,
            max_stored_skipped: r.u32()?,
        }
        .validate()?;
        let padding = Padding::from_byte(r.u8()?)?;
        let rk = RootKey(*read_key32(&mut r)?);
        let dhs = RatchetKeyPair::from_secret(read_x25519_secret(&mut r)?);
        let dhr = match r.optional::<32>()? {
            Some(k) => Some(x25519_public_from_bytes(&k)?),
            None => None,
        };
        let cks = r.optional::<32>()?.map(ChainKey);
        let ckr = r.optional::<32>()?.map(ChainKey);
        let ns = r.u32()?;
        let nr = r.u32()?;
        let pn = r.u32()?;
        // Every state the ratchet reaches: a chain counter is zero while its chain is
        // absent, and a session the API hands out always knows the peer's ratchet key.
        if dhr.is_none() || (cks.is_none() && ns != 0) || (ckr.is_none() && nr != 0) {
            return Err(Error::InvalidEncoding);
        }
        let count = r.u32()?;
        if count > limits.max_stored_skipped {
            return Err(Error::InvalidEncoding);
        }
        // The entries must be present before any is read; a session without header
        // encryption ends with them.
        let entries = count as usize * SKIPPED_ENTRY_LENGTH;
        if r.remaining() < entries {
            return Err(Error::Truncated);
        }
        if !header_encrypted && r.remaining() > entries {
            return Err(Error::TrailingData);
        }
        let entries = r.take(entries)?;
        let entry = |i: usize| {
            let e = &entries[i * SKIPPED_ENTRY_LENGTH..(i + 1) * SKIPPED_ENTRY_LENGTH];
            let mut dh = [0u8; 32];
            dh.copy_from_slice(&e[..32]);
            let mut n = [0u8; 4];
            n.copy_from_slice(&e[32..36]);
            (dh, u32::from_be_bytes(n), &e[36..])
        };
        // Runs: from each entry, the following ones with the same ratchet key and
        // consecutive N, each allocated once at its size.
        let mut skipped = SkippedKeys::default();
        let total = count as usize;
        let mut at = 0;
        while at < total {
            let (dh, first, _) = entry(at);
            x25519_public_from_bytes(&dh)?;
            let mut len = 1;
            while at + len < total {
                let (next_dh, next_n, _) = entry(at + len);
                if next_dh != dh || Some(next_n) != first.checked_add(len as u32) {
                    break;
                }
                len += 1;
            }
            let mut run = Staged::new(dh, first, len);
            for i in 0..len {
                let (_, n, key) = entry(at + i);
                if skipped.get(&dh, n).is_some() {
                    return Err(Error::InvalidEncoding);
                }
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(key);
                run.keys.push(Some(MessageKey(bytes)));
            }
            skipped.insert_run(run);
            at += len;
        }
        let he = if header_encrypted {
            Some(read_header_keys(&mut r, &skipped)?)
        } else {
            None
        };
        r.finish()?;
        Ok(Session {
            ratchet: RatchetState {
                dhs,
                dhr,
                rk,
                cks,
                ckr,
                ns,
                nr,
                pn,
                skipped,
                limits,
                he,
            },
            role,
            local_identity,
            remote_identity,
            base_key,
            post_quantum,
            pending_initial,
            padding,
        })
    }
}

/// The header-encryption block of a type `0x28` session (SPEC.md §7.1).
fn read_header_keys(r: &mut Reader<'_>, skipped: &SkippedKeys) -> Result<HeaderKeys, Error> {
    // Every session the API hands out has `HKs` (the responder sets it when it decrypts
    // the initial message); one without it could never send.
    let hks = Some(
        r.optional::<32>()?
            .map(HeaderKey)
            .ok_or(Error::InvalidEncoding)?,
    );
    let hkr = r.optional::<32>()?.map(HeaderKey);
    let nhks = HeaderKey(*read_key32(r)?);
    let nhkr = HeaderKey(*read_key32(r)?);
    let count = r.u32()? as usize;
    if count > MAX_SKIPPED_HEADER_KEYS {
        return Err(Error::InvalidEncoding);
    }
    let mut entries: VecDeque<(HeaderKey, [u8; 32])> = VecDeque::with_capacity(count);
    for _ in 0..count {
        let hk = HeaderKey(*read_key32(r)?);
        let dh: [u8; 32] = r.array()?;
        // Each names a distinct chain that still has stored skipped keys.
        if !skipped.has_chain(&dh) || entries.iter().any(|(_, d)| *d == dh) {
            return Err(Error::InvalidEncoding);
        }
        entries.push_back((hk, dh));
    }
    Ok(HeaderKeys {
        hks,
        hkr,
        nhks,
        nhkr,
        skipped: entries,
    })
}

mod private {
    /// Implemented by the types a [`StorageKey`](super::StorageKey) can seal. Not
    /// implementable outside this crate.
    #[allow(unreachable_pub)]
    pub trait Sealed: Sized {
        /// The object type byte.
        const OBJECT_TYPE: u8;
        /// The storage encoding.
        fn encode(&self) -> zeroize::Zeroizing<alloc::vec::Vec<u8>>;
        /// Strict decoding of the storage encoding.
        fn decode(bytes: &[u8]) -> Result<Self, crate::Error>;
    }
}

/// The objects [`StorageKey::seal`] and [`StorageKey::open`] accept: [`Session`],
/// [`IdentityKeyPair`], [`SignedPreKey`], [`OneTimePreKey`],
/// [`PreKeyStore`](crate::PreKeyStore) and (with `pqxdh`) `PqPreKey`. Sealed: no other type can implement it.
pub trait Storable: private::Sealed {}

macro_rules! storable {
    ($ty:ty, $tag:expr) => {
        impl private::Sealed for $ty {
            const OBJECT_TYPE: u8 = $tag;
            fn encode(&self) -> Zeroizing<Vec<u8>> {
                self.to_bytes()
            }
            fn decode(bytes: &[u8]) -> Result<Self, Error> {
                <$ty>::from_bytes(bytes)
            }
        }
        impl Storable for $ty {}
    };
}

storable!(Session, TYPE_SESSION);
storable!(IdentityKeyPair, TYPE_IDENTITY);
storable!(SignedPreKey, TYPE_SIGNED_PREKEY);
storable!(OneTimePreKey, TYPE_ONE_TIME_PREKEY);
storable!(crate::prekeys::PreKeyStore, TYPE_PREKEY_STORE);
#[cfg(feature = "pqxdh")]
storable!(crate::pq::PqPreKey, TYPE_PQ_PREKEY);

/// A 32-byte application key that seals stored objects (SPEC.md §7.6), so that sessions
/// and keys can be kept in a database the app does not fully trust.
///
/// Sealing is AES-256-GCM-SIV with a fresh random 96-bit nonce per blob; the associated
/// data binds the format version, the object type and the application context (where the
/// blob lives), so a sealed identity can never be opened as a session, nor one contact's
/// session in another contact's row. Seal at most 2^32 blobs under one key; should a nonce ever repeat
/// (an RNG rolled back with a VM snapshot), GCM-SIV reveals only whether the two blobs were
/// equal, never the key stream or the authentication key.
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// Wraps 32 bytes of key material (for example from the platform keystore).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StorageKey(Zeroizing::new(bytes))
    }

    /// Generates a new random key.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(rng, key.as_mut())?;
        Ok(StorageKey(key))
    }

    /// `AD = SEALED_AD_LABEL || version || 0x30 || T || len(context) (u32) || context`.
    fn associated_data(object_type: u8, context: &[u8]) -> Result<SealedAad, Error> {
        if context.len() > MAX_SEAL_CONTEXT_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut aad = SealedAad {
            bytes: [0u8; SEALED_AAD_CAPACITY],
            len: SEALED_AD_LABEL.len() + 3 + 4 + context.len(),
        };
        let mut out = &mut aad.bytes[..];
        for part in [
            SEALED_AD_LABEL,
            &[STORAGE_VERSION, TYPE_SEALED, object_type],
            // At most MAX_SEAL_CONTEXT_LENGTH, checked above.
            &(context.len() as u32).to_be_bytes(),
            context,
        ] {
            let (head, rest) = out.split_at_mut(part.len());
            head.copy_from_slice(part);
            out = rest;
        }
        Ok(aad)
    }

    /// Seals `object` for the place it will be stored, named by `context` (for example the
    /// contact id and row key): `version | 0x30 | object type | nonce(12) | ciphertext ||
    /// tag(16)`. The context is bound into the associated data and not stored: the blob
    /// opens only with the same context, so a blob copied into another row does not open.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a context longer than [`MAX_SEAL_CONTEXT_LENGTH`];
    /// [`Error::RandomnessUnavailable`] if the RNG fails.
    pub fn seal<T: Storable, R: TryCryptoRng + ?Sized>(
        &self,
        object: &T,
        context: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let aad = Self::associated_data(T::OBJECT_TYPE, context)?;
        let plaintext = object.encode();
        let mut nonce = [0u8; NONCE_LENGTH];
        fill_random(rng, &mut nonce)?;
        let mut out = Vec::with_capacity(SEALED_HEADER_LENGTH + plaintext.len() + TAG_LENGTH);
        out.put_u8(STORAGE_VERSION);
        out.put_u8(TYPE_SEALED);
        out.put_u8(T::OBJECT_TYPE);
        out.put(&nonce);
        out.put(&plaintext);
        let tag = aead::seal_in_place(
            &self.0,
            &nonce,
            aad.as_slice(),
            &mut out[SEALED_HEADER_LENGTH..],
        )?;
        out.put(&tag);
        Ok(out)
    }

    /// Opens a blob made by [`StorageKey::seal`] for the same object type and context.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (the blob, or a context longer than [`MAX_SEAL_CONTEXT_LENGTH`]),
    /// [`Error::Truncated`], [`Error::UnsupportedVersion`], [`Error::UnexpectedType`] (not a
    /// sealed blob, or a different object type), [`Error::DecryptionFailed`] (wrong key,
    /// another context, or any altered byte: an AEAD cannot tell which), or any error of
    /// the object's own `from_bytes`.
    pub fn open<T: Storable>(&self, sealed: &[u8], context: &[u8]) -> Result<T, Error> {
        if sealed.len() > SEALED_HEADER_LENGTH + MAX_STORED_SIZE + TAG_LENGTH {
            return Err(Error::TooLarge);
        }
        if context.len() > MAX_SEAL_CONTEXT_LENGTH {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(sealed);
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_SEALED)?;
        let object_type = r.u8()?;
        if object_type != T::OBJECT_TYPE {
            return Err(Error::UnexpectedType(object_type));
        }
        let nonce = r.array::<NONCE_LENGTH>()?;
        if r.remaining() < TAG_LENGTH {
            return Err(Error::Truncated);
        }
        let body = r.rest();
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LENGTH);
        let mut tag_bytes = [0u8; TAG_LENGTH];
        tag_bytes.copy_from_slice(tag);
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        aead::open_in_place(
            &self.0,
            &nonce,
            Self::associated_data(object_type, context)?.as_slice(),
            plaintext.as_mut_slice(),
            &tag_bytes,
        )?;
        T::decode(&plaintext)
    }
}

impl core::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StorageKey").finish_non_exhaustive()
    }
}

/// Helpers the prekey store shares with the other stored types.
pub(crate) fn write_signed_prekey(out: &mut Vec<u8>, key: &SignedPreKey) {
    key.write(out);
}

pub(crate) fn read_signed_prekey(r: &mut Reader<'_>) -> Result<SignedPreKey, Error> {
    SignedPreKey::read(r)
}

pub(crate) fn write_one_time_prekey(out: &mut Vec<u8>, key: &OneTimePreKey) {
    key.write(out);
}

pub(crate) fn read_one_time_prekey(r: &mut Reader<'_>) -> Result<OneTimePreKey, Error> {
    OneTimePreKey::read(r)
}

pub(crate) const SIGNED_PREKEY_LENGTH: usize = 2 + 8 + 32 + 64;
pub(crate) const ONE_TIME_PREKEY_LENGTH: usize = 2 + 8 + 32;
