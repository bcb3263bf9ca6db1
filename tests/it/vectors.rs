//! Known-answer vectors of protocol profile v2: checks every file in `tests/vectors/` (see
//! its README.md), one test per file, so that one failure does not hide the others.
//!
//! * conversation files (`"kind": "conversation"`): (a) the library, driven from the
//!   recorded seeds through its public API, reproduces every message byte for byte, decrypts
//!   every message, and keeps each session's padding policy (also in its stored form); (b)
//!   every listed intermediate value (keys, DH outputs, `SK`, `AD`, session id, root and
//!   chain keys, message keys, encoded plaintexts, framing, ciphertexts) follows from the
//!   values it is derived from by the SPEC.md v2 formulas, recomputed here with the primitive
//!   crates only (`ENCRYPT` = AES-256-GCM-SIV under the message key with the zero nonce, over
//!   the encoded plaintext of SPEC.md §4.9), so the file can be trusted by an independent
//!   implementation;
//! * the reject files (`"kind": "reject"`): (c) every listed input is rejected by the library
//!   with the listed error, and a failed decryption (or a failed accept or respond) leaves
//!   the session (or the prekey store) usable;
//! * `padding_v2.json` (`"kind": "padding"`): (d) the plaintext encoding: every plaintext
//!   length's encoded length under both policies, recomputed and checked through the
//!   library (each message opened with its message key, derived here), `TooLarge` changing
//!   nothing, the encode and decode examples, the longest message, and the stored padding
//!   byte.
//!
//! PQXDH conversation files (those with a `pqxdh` object) are checked the same way, with the
//! ML-KEM-768 values recomputed with the `ml-kem` crate directly; they, the reject cases
//! based on them and `padding_v2.json` need the `pqxdh` feature (on by default) and are
//! skipped without it.
//!
//! Header-encrypted conversation files (those with a `header_encryption` object, SPEC.md
//! §4.8) are driven with `SessionOptions::new().header_encryption()`; besides the values
//! above, the header keys (`HKA`, `NHKB`, `KDF_RK_HE`'s third output), each message's 12-byte
//! header nonce (as an RNG draw), sealed header (AES-256-GCM-SIV) and body AAD are
//! recomputed, and the listed header-key states (`HKs`, `HKr`, `NHKs`, `NHKr`, the stored
//! header keys of skipped chains, `MKSKIPPED`) are checked against an independent simulation
//! of SPEC.md §4.8 that opens every sealed header by trial decryption, and against the
//! library's stored session (SPEC.md §7.1, type `0x28`) after every event.
//!
//! Regenerate the files with `cargo run --example generate_vectors`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use curve25519_dalek::edwards::CompressedEdwardsY;
use doubleratchet::{
    Accepted, Error, IdentityKeyPair, Message, OneTimePreKey, Padding, PreKeyBundle, PreKeyStore,
    Session, SessionOptions, SignedPreKey,
};
use doubleratchet_test_support::hex::decode as decode_hex;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{SeedableRng, TryRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

const DATE: &str = "2026-12-02";
const X3DH_INFO: &[u8] = b"doubleratchet v2 X3DH";
const ROOT_INFO: &[u8] = b"doubleratchet v2 root";
const SESSION_ID_LABEL: &[u8] = b"doubleratchet v2 session id";
const PQXDH_INFO: &[u8] = b"doubleratchet v2 PQXDH";
const HEADER_KEYS_INFO: &[u8] = b"doubleratchet v2 header keys";
const ROOT_HE_INFO: &[u8] = b"doubleratchet v2 root HE";
/// Profile v2: the version byte of messages, of bundles, of stored objects.
const WIRE_VERSION: u8 = 0x02;
const BUNDLE_VERSION: u8 = 0x02;
const STORAGE_VERSION: u8 = 0x02;
/// `ENCRYPT`'s nonce (SPEC.md §4.1, v2): the message key encrypts one message only.
const MESSAGE_NONCE: [u8; 12] = [0u8; 12];
/// SPEC.md §4.9 (v2): the end marker, Padmé's minimum, and the largest encoded plaintext
/// (`MAX_MESSAGE_SIZE - 1247 - 16`; 1247 is the longest framing, a type `0x06` message, with
/// the u64 prekey ids of profile v2 part 2).
const END_MARKER: u8 = 0x80;
const PADME_MINIMUM: usize = 64;
const MAX_MESSAGE_SIZE: usize = 1_048_576;
const MAX_ENCODED_PLAINTEXT: usize = MAX_MESSAGE_SIZE - LONGEST_PREFIX - 16;
/// The prefix of a type `0x06` message: `2 + 81 + 8 + 1088 + 68`.
const LONGEST_PREFIX: usize = 1247;
/// The prefix of a type `0x02` message: `2 + 81 + 40` (SPEC.md §5.3, u64 prekey ids).
const INITIAL_PREFIX: usize = 123;
/// A type `0x10` bundle (SPEC.md §5.4, u64 prekey ids), and a type `0x11` one.
const BUNDLE_LENGTH: usize = 179;
const PQ_BUNDLE_LENGTH: usize = 1435;
const MAX_PLAINTEXT_SIZE: usize = MAX_ENCODED_PLAINTEXT - 1;
/// A sealed header: nonce (12), encrypted `DHs || PN || N` (40), tag (16) (SPEC.md §4.8).
const SEALED_HEADER_LENGTH: usize = 12 + 40 + 16;
const KEM_PUBLIC_KEY_LENGTH: usize = 1184;
const KEM_CIPHERTEXT_LENGTH: usize = 1088;
/// The ML-KEM modulus q (FIPS 203).
const KEM_Q: u16 = 3329;

/// JSON keys whose values are prose or names rather than hex.
const TEXT_KEYS: &[&str] = &[
    "_comment",
    "kind",
    "generator",
    "command",
    "date",
    "spec",
    "library",
    "rng",
    "method",
    "x3dh_info",
    "pqxdh_info",
    "method_crates",
    "aead",
    "padding",
    "alice_padding",
    "bob_padding",
    "policy",
    "header_keys_info",
    "root_he_info",
    "opened_with",
    "post_quantum_prekey_kind",
    "root_info",
    "session_id_label",
    "name",
    "description",
    "setup",
    "op",
    "party",
    "purpose",
    "sender",
    "plaintext_utf8",
    "base_vector",
    "operation",
    "expected_error",
    "call",
    "bundle_from",
    "from",
];

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every `tests/vectors/*.json`, by file name.
fn load_all() -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        files.insert(name, value);
    }
    assert!(!files.is_empty(), "no vector files found");
    files
}

/// Whether a conversation file is PQXDH (SPEC.md §3.6).
fn is_pqxdh(v: &Value) -> bool {
    v["pqxdh"].is_object()
}

/// Whether a conversation file is header-encrypted (SPEC.md §4.8).
fn is_he(v: &Value) -> bool {
    let he = v["scenario"]["header_encryption"].as_bool() == Some(true);
    assert_eq!(he, v["header_encryption"].is_object(), "header_encryption");
    he
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing text field {key}"))
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing number field {key}"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    decode_hex(text(v, key))
}

fn b32(v: &Value, key: &str) -> [u8; 32] {
    bytes(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key} is not 32 bytes"))
}

fn arr(v: &Value, key: &str) -> Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("missing array {key}"))
        .clone()
}

// ---------------------------------------------------------------------------------------
// Primitives (SPEC.md §1, §4.1)
// ---------------------------------------------------------------------------------------

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

fn dh(private: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
    let out = x25519_dalek::x25519(*private, *public);
    assert_ne!(out, [0u8; 32], "non-contributory DH");
    out
}

fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*private, x25519_dalek::X25519_BASEPOINT_BYTES)
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut okm = vec![0u8; len];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .unwrap();
    okm
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn edwards_to_x25519(public: &[u8; 32]) -> [u8; 32] {
    CompressedEdwardsY(*public)
        .decompress()
        .unwrap()
        .to_montgomery()
        .to_bytes()
}

/// AES-256-GCM-SIV (RFC 8452) under `key`.
fn siv(key: &[u8]) -> Aes256GcmSiv {
    Aes256GcmSiv::new_from_slice(key).unwrap()
}

fn nonce(bytes: &[u8]) -> Nonce {
    Nonce::from(<[u8; 12]>::try_from(bytes).unwrap())
}

/// `ENCRYPT(mk, encoded, AAD)` (SPEC.md §4.1, v2): `ciphertext || tag`.
fn message_seal(mk: &[u8], aad: &[u8], encoded: &[u8]) -> Vec<u8> {
    siv(mk)
        .encrypt(&nonce(&MESSAGE_NONCE), Payload { msg: encoded, aad })
        .unwrap()
}

/// `DECRYPT(mk, ct, AAD)`: the encoded plaintext, or `None` if the tag does not verify.
fn message_open(mk: &[u8], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    siv(mk)
        .decrypt(&nonce(&MESSAGE_NONCE), Payload { msg: ct, aad })
        .ok()
}

/// `floor(log2 x)` for `x >= 1`, by halving.
fn log2_floor(mut x: usize) -> u32 {
    assert!(x >= 1);
    let mut k = 0;
    while x > 1 {
        x >>= 1;
        k += 1;
    }
    k
}

/// Padmé (SPEC.md §4.9) for `L >= 2`: `(E, S, z, padme(L))`.
fn padme(l: usize) -> (u32, u32, u32, usize) {
    let e = log2_floor(l);
    let s = log2_floor(e as usize) + 1;
    let z = e - s;
    let step = 1usize << z;
    (e, s, z, l.div_ceil(step) * step)
}

/// A session's padding policy, as the files name it.
fn policy(name: &str) -> Padding {
    match name {
        "padme" => Padding::Padme,
        "none" => Padding::None,
        other => panic!("unknown padding policy {other}"),
    }
}

/// The stored session's padding byte (SPEC.md §7.1, v2).
fn policy_byte(p: Padding) -> u8 {
    match p {
        Padding::None => 0x00,
        _ => 0x01,
    }
}

/// `encode(pt, policy)` (SPEC.md §4.9): `pt || 0x80 || 0x00^(P - L)`.
fn encode(pt: &[u8], p: Padding) -> Vec<u8> {
    let l = pt.len() + 1;
    let target = match p {
        Padding::None => l,
        _ => padme(l.max(PADME_MINIMUM)).3.min(MAX_ENCODED_PLAINTEXT),
    };
    let mut out = Vec::with_capacity(target);
    out.extend_from_slice(pt);
    out.push(END_MARKER);
    out.extend(std::iter::repeat_n(0u8, target - l));
    out
}

/// `decode(x)`: strip the trailing zeros, then the last byte must be the end marker.
fn decode(x: &[u8]) -> Option<Vec<u8>> {
    let mut end = x.len();
    while end > 0 && x[end - 1] == 0x00 {
        end -= 1;
    }
    (end > 0 && x[end - 1] == END_MARKER).then(|| x[..end - 1].to_vec())
}

/// The offset of a stored session's padding byte (SPEC.md §7.1, v2): right after
/// `max_stored_skipped`; type `0x28` has a flags byte after the role, and a PQXDH initiator
/// awaiting its reply keeps the post-quantum prekey id and KEM ciphertext before the limits.
fn stored_padding_offset(b: &[u8]) -> usize {
    assert_eq!(b[0], STORAGE_VERSION, "stored session version");
    let (he, pq) = match b[1] {
        0x20 => (false, false),
        0x25 => (false, true),
        0x28 => (true, b[3] & 0x01 == 0x01),
        other => panic!("stored session type {other:#04x}"),
    };
    let shift = usize::from(he);
    let awaiting = b[99 + shift] == 0x01;
    // 99 + the pending block (flag, signed prekey id u64, one-time flag, id u64) + limits.
    125 + shift
        + if awaiting && pq {
            8 + KEM_CIPHERTEXT_LENGTH
        } else {
            0
        }
}

/// The 768 12-bit coefficients of an ML-KEM-768 encapsulation key's `t` vector
/// (FIPS 203 `ByteDecode_12` of its first 1152 bytes).
fn kem_coefficients(ek: &[u8]) -> Vec<u16> {
    assert_eq!(ek.len(), KEM_PUBLIC_KEY_LENGTH);
    ek[..KEM_PUBLIC_KEY_LENGTH - 32]
        .chunks(3)
        .flat_map(|b| {
            let (b0, b1, b2) = (u16::from(b[0]), u16::from(b[1]), u16::from(b[2]));
            [b0 | ((b1 & 0x0F) << 8), (b1 >> 4) | (b2 << 4)]
        })
        .collect()
}

/// ML-KEM-768 (FIPS 203) from the `ml-kem` crate directly, not through the library.
#[cfg(feature = "pqxdh")]
mod kem {
    use ml_kem::{Decapsulate, DecapsulationKey768, EncapsulationKey768, KeyExport, B32};

    use super::{KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH};

    fn decapsulation_key(seed: &[u8]) -> DecapsulationKey768 {
        let seed: [u8; 64] = seed.try_into().unwrap();
        DecapsulationKey768::from_seed(ml_kem::Seed::from(seed))
    }

    /// `ek` of `ML-KEM.KeyGen_internal(d, z)` for the seed `d || z`.
    pub(super) fn public_key(seed: &[u8]) -> Vec<u8> {
        decapsulation_key(seed)
            .encapsulation_key()
            .to_bytes()
            .to_vec()
    }

    /// `(CT, SS) = ML-KEM.Encaps_internal(ek, m)`; `None` if `ek` fails the modulus check.
    pub(super) fn encapsulate(ek: &[u8], m: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let bytes: [u8; KEM_PUBLIC_KEY_LENGTH] = ek.try_into().ok()?;
        let ek = EncapsulationKey768::new(&ml_kem::Key::<EncapsulationKey768>::from(bytes)).ok()?;
        let m: [u8; 32] = m.try_into().ok()?;
        let (ct, ss) = ek.encapsulate_deterministic(&B32::from(m));
        Some((ct.to_vec(), ss.to_vec()))
    }

    /// `SS = ML-KEM.Decaps(dk, CT)`.
    pub(super) fn decapsulate(seed: &[u8], ct: &[u8]) -> Vec<u8> {
        let ct: [u8; KEM_CIPHERTEXT_LENGTH] = ct.try_into().unwrap();
        decapsulation_key(seed)
            .decapsulate(&ml_kem::ml_kem_768::Ciphertext::from(ct))
            .to_vec()
    }
}

/// Without the `pqxdh` feature no PQXDH file is checked ([`load`]).
#[cfg(not(feature = "pqxdh"))]
mod kem {
    pub(super) fn public_key(_: &[u8]) -> Vec<u8> {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn encapsulate(_: &[u8], _: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn decapsulate(_: &[u8], _: &[u8]) -> Vec<u8> {
        unreachable!("PQXDH needs the pqxdh feature")
    }
}

// ---------------------------------------------------------------------------------------
// The library, driven from a conversation file through the public API
// ---------------------------------------------------------------------------------------

/// Bob's post-quantum prekey in a PQXDH file: id and whether it is one-time.
#[derive(Clone, Copy)]
struct PqSpec {
    id: u64,
    one_time: bool,
}

struct Script {
    alice_seed: u64,
    bob_seed: u64,
    /// Prekey ids are u64 (profile v2 part 2), full-width in these files.
    signed_prekey_id: u64,
    one_time_prekey_id: Option<u64>,
    post_quantum: Option<PqSpec>,
    /// Alice initiates with `SessionOptions::new().header_encryption()` (SPEC.md §4.8).
    header_encryption: bool,
    /// Each party's padding policy (SPEC.md §4.9): Alice's is set with
    /// `SessionOptions::padding` unless it is the default; Bob's is the default.
    alice_padding: Padding,
    bob_padding: Padding,
    plaintexts: Vec<Vec<u8>>,
    /// `(op, party, message)`.
    events: Vec<(String, String, usize)>,
}

impl Script {
    fn from(v: &Value) -> Self {
        let s = &v["scenario"];
        Script {
            alice_seed: num(s, "alice_rng_seed"),
            bob_seed: num(s, "bob_rng_seed"),
            signed_prekey_id: num(s, "signed_prekey_id"),
            one_time_prekey_id: s["one_time_prekey_id"].as_u64(),
            post_quantum: s["post_quantum_prekey_id"].as_u64().map(|id| PqSpec {
                id,
                one_time: match text(s, "post_quantum_prekey_kind") {
                    "one_time" => true,
                    "last_resort" => false,
                    other => panic!("unknown post-quantum prekey kind {other}"),
                },
            }),
            header_encryption: match &s["header_encryption"] {
                Value::Null => false,
                Value::Bool(true) => true,
                other => panic!("header_encryption is {other}: true or absent"),
            },
            alice_padding: policy(text(s, "alice_padding")),
            bob_padding: policy(text(s, "bob_padding")),
            plaintexts: arr(v, "messages")
                .iter()
                .map(|m| bytes(m, "plaintext"))
                .collect(),
            events: arr(s, "events")
                .iter()
                .map(|e| {
                    (
                        text(e, "op").to_owned(),
                        text(e, "party").to_owned(),
                        usize::try_from(num(e, "message")).unwrap(),
                    )
                })
                .collect(),
        }
    }
}

struct World {
    bob_identity: IdentityKeyPair,
    spk: SignedPreKey,
    opk: Option<OneTimePreKey>,
    bundle: Vec<u8>,
    alice_rng: ChaCha20Rng,
    bob_rng: ChaCha20Rng,
    alice: Session,
    bob: Option<Session>,
    wire: Vec<Option<Vec<u8>>>,
    used_one_time_prekey: Option<u64>,
    /// PQXDH: Bob's prekey store, and its encoding as loaded.
    store: Option<PreKeyStore>,
    store_bytes: Vec<u8>,
    used_post_quantum_prekey: Option<u64>,
}

/// The library's PQXDH API (public items only).
#[cfg(feature = "pqxdh")]
mod library_pq {
    use doubleratchet::{
        IdentityKeyPair, OneTimePreKey, PqPreKey, PqPreKeyKind, PreKeyBundle, PreKeyStore,
        SignedPreKey,
    };
    use rand_chacha::ChaCha20Rng;

    use super::PqSpec;

    /// `PqPreKey::generate` from Bob's RNG, the PQXDH bundle, and Bob's prekey store loaded
    /// from the three keys' stored encodings in the SPEC.md §7.5 type `0x24` framing (a
    /// `PreKeyStore` draws its own random ids): capacity 1024, the signed prekey current
    /// without records, no standby, the one-time prekey with sequence 0, the post-quantum
    /// prekey with the next. Returns the bundle's bytes, the store, its bytes.
    pub(super) fn setup(
        spec: PqSpec,
        bob: &IdentityKeyPair,
        spk: &SignedPreKey,
        opk: Option<&OneTimePreKey>,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<u8>, PreKeyStore, Vec<u8>) {
        let kind = if spec.one_time {
            PqPreKeyKind::OneTime
        } else {
            PqPreKeyKind::LastResort
        };
        let pq = PqPreKey::generate(bob, spec.id, kind, rng).unwrap();
        let bundle = PreKeyBundle::new(bob, spk, opk).with_post_quantum_prekey(&pq);
        let mut bytes = vec![super::STORAGE_VERSION, 0x24];
        bytes.extend_from_slice(&1024u32.to_be_bytes());
        let next_sequence = u64::from(opk.is_some()) + 1;
        bytes.extend_from_slice(&next_sequence.to_be_bytes());
        bytes.extend_from_slice(&spk.id().to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&spk.to_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&[0u8; 107]);
        bytes.extend_from_slice(&u32::from(opk.is_some()).to_be_bytes());
        if let Some(k) = opk {
            bytes.extend_from_slice(&0u64.to_be_bytes());
            bytes.extend_from_slice(&k.to_bytes());
        }
        if spec.one_time {
            bytes.extend_from_slice(&[0u8; 9]);
        } else {
            bytes.push(0x01);
            bytes.extend_from_slice(&spec.id.to_be_bytes());
        }
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&(next_sequence - 1).to_be_bytes());
        bytes.extend_from_slice(&pq.to_bytes());
        let store = PreKeyStore::from_bytes(&bytes).unwrap();
        assert_eq!(&store.to_bytes()[..], &bytes[..], "store round trip");
        let published = store
            .pq_bundle(
                bob,
                opk.map(OneTimePreKey::id),
                spec.one_time.then_some(spec.id),
            )
            .unwrap();
        assert_eq!(published, bundle, "PreKeyStore::pq_bundle");
        (bundle.to_bytes(), store, bytes)
    }

    /// Whether the store still holds the post-quantum prekey `id`.
    pub(super) fn holds_pq_prekey(store: &PreKeyStore, id: u64) -> bool {
        store.pq_prekey(id).is_some()
    }
}

/// Without the `pqxdh` feature no PQXDH file is checked ([`load`]).
#[cfg(not(feature = "pqxdh"))]
mod library_pq {
    use doubleratchet::{IdentityKeyPair, OneTimePreKey, PreKeyStore, SignedPreKey};
    use rand_chacha::ChaCha20Rng;

    use super::PqSpec;

    pub(super) fn setup(
        _: PqSpec,
        _: &IdentityKeyPair,
        _: &SignedPreKey,
        _: Option<&OneTimePreKey>,
        _: &mut ChaCha20Rng,
    ) -> (Vec<u8>, PreKeyStore, Vec<u8>) {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn holds_pq_prekey(_: &PreKeyStore, _: u64) -> bool {
        unreachable!("PQXDH needs the pqxdh feature")
    }
}

impl World {
    fn setup(s: &Script) -> Self {
        let mut alice_rng = ChaCha20Rng::seed_from_u64(s.alice_seed);
        let mut bob_rng = ChaCha20Rng::seed_from_u64(s.bob_seed);
        let alice_identity = IdentityKeyPair::generate(&mut alice_rng).unwrap();
        let bob_identity = IdentityKeyPair::generate(&mut bob_rng).unwrap();
        let spk = SignedPreKey::generate(&bob_identity, s.signed_prekey_id, &mut bob_rng).unwrap();
        let opk = s
            .one_time_prekey_id
            .map(|id| OneTimePreKey::generate(id, &mut bob_rng).unwrap());
        let (bundle, store, store_bytes) = match s.post_quantum {
            Some(spec) => {
                let (bundle, store, bytes) =
                    library_pq::setup(spec, &bob_identity, &spk, opk.as_ref(), &mut bob_rng);
                (bundle, Some(store), bytes)
            }
            None => (
                PreKeyBundle::new(&bob_identity, &spk, opk.as_ref()).to_bytes(),
                None,
                Vec::new(),
            ),
        };
        let received = PreKeyBundle::from_bytes(&bundle).unwrap();
        let alice = if s.header_encryption || s.alice_padding != Padding::default() {
            let mut options = SessionOptions::new();
            if s.header_encryption {
                options = options.header_encryption();
            }
            if s.alice_padding != Padding::default() {
                options = options.padding(s.alice_padding);
            }
            Session::initiate_with(&alice_identity, &received, &options, &mut alice_rng).unwrap()
        } else {
            Session::initiate(&alice_identity, &received, &mut alice_rng).unwrap()
        };
        assert_eq!(alice.is_post_quantum(), s.post_quantum.is_some());
        assert_eq!(alice.is_header_encrypted(), s.header_encryption);
        assert_eq!(alice.padding(), s.alice_padding);
        World {
            bob_identity,
            spk,
            opk,
            bundle,
            alice_rng,
            bob_rng,
            alice,
            bob: None,
            wire: vec![None; s.plaintexts.len()],
            used_one_time_prekey: None,
            store,
            store_bytes,
            used_post_quantum_prekey: None,
        }
    }

    /// Bob's `PreKeyStore::accept` (PQXDH; `Session::respond` refuses PQXDH messages).
    fn accept(&mut self, message: &[u8]) -> Result<Accepted, Error> {
        let accepted = self
            .store
            .as_mut()
            .expect("accept needs a PQXDH file")
            .accept(&self.bob_identity, message)?;
        self.used_one_time_prekey = accepted.used_one_time_prekey;
        self.used_post_quantum_prekey = accepted.used_post_quantum_prekey;
        Ok(accepted)
    }

    /// Bob's `Session::respond` with the prekeys he still holds; the one-time prekey is
    /// deleted once used.
    fn respond(&mut self, message: &[u8]) -> Result<(Session, Vec<u8>), Error> {
        let spk = &self.spk;
        let opk = self.opk.as_ref();
        let accepted = Session::respond(
            &self.bob_identity,
            |id| (id == spk.id()).then_some(spk),
            |id| opk.filter(|k| k.id() == id),
            message,
        )?;
        if let Some(id) = accepted.used_one_time_prekey {
            assert_eq!(self.opk.as_ref().map(OneTimePreKey::id), Some(id));
            self.opk = None;
            self.used_one_time_prekey = Some(id);
        }
        Ok((accepted.session, accepted.plaintext))
    }

    fn session(&mut self, party: &str) -> &mut Session {
        match party {
            "alice" => &mut self.alice,
            "bob" => self.bob.as_mut().unwrap(),
            other => panic!("unknown party {other}"),
        }
    }

    /// Applies one event; returns the plaintext of a `respond` or `decrypt`.
    fn apply(&mut self, s: &Script, (op, party, i): &(String, String, usize)) -> Vec<u8> {
        match op.as_str() {
            "encrypt" => {
                let pt = &s.plaintexts[*i];
                let wire = match party.as_str() {
                    "alice" => self.alice.encrypt(pt, &mut self.alice_rng).unwrap(),
                    "bob" => self
                        .bob
                        .as_mut()
                        .unwrap()
                        .encrypt(pt, &mut self.bob_rng)
                        .unwrap(),
                    other => panic!("unknown party {other}"),
                };
                self.wire[*i] = Some(wire);
                Vec::new()
            }
            "respond" => {
                let wire = self.wire[*i].clone().unwrap();
                let (session, pt) = self.respond(&wire).unwrap();
                // The responder follows the mode of the initial message (SPEC.md §4.8); its
                // padding policy is the default.
                assert_eq!(session.is_header_encrypted(), s.header_encryption);
                assert_eq!(session.padding(), s.bob_padding);
                self.bob = Some(session);
                pt
            }
            "accept" => {
                let wire = self.wire[*i].clone().unwrap();
                let accepted = self.accept(&wire).unwrap();
                assert!(accepted.session.is_post_quantum());
                assert_eq!(accepted.session.is_header_encrypted(), s.header_encryption);
                assert_eq!(accepted.session.padding(), s.bob_padding);
                self.bob = Some(accepted.session);
                accepted.plaintext
            }
            "decrypt" => {
                let wire = self.wire[*i].clone().unwrap();
                self.session(party).decrypt(&wire).unwrap()
            }
            other => panic!("unknown op {other}"),
        }
    }

    fn replay(s: &Script, events: usize) -> Self {
        let mut world = World::setup(s);
        for e in &s.events[..events] {
            world.apply(s, e);
        }
        world
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn check_hex_fields(file: &str, key: &str, v: &Value) {
    match v {
        Value::String(s) if !TEXT_KEYS.contains(&key) => {
            let ok = s.len().is_multiple_of(2)
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            assert!(ok, "{file}: field {key} is not lowercase hex: {s:?}");
        }
        Value::Array(items) => items.iter().for_each(|i| check_hex_fields(file, key, i)),
        Value::Object(map) => map.iter().for_each(|(k, i)| check_hex_fields(file, k, i)),
        _ => {}
    }
}

/// The vector files of profile v2, each checked by its own test below.
const FILES: [&str; 11] = [
    "x3dh_ratchet_v2.json",
    "x3dh_ratchet_no_opk_v2.json",
    "pqxdh_ratchet_v2.json",
    "pqxdh_last_resort_v2.json",
    "x3dh_he_v2.json",
    "pqxdh_he_v2.json",
    "reject_v2.json",
    "reject_pqxdh_v2.json",
    "reject_he_v2.json",
    "padding_v2.json",
    "prekey_store_v2.json",
];

#[test]
fn files_are_well_formed() {
    let files = load_all();
    // Exactly the v2 files: no v1 file is left, and each file has its test.
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut expected = FILES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "the files in tests/vectors");
    for (name, v) in &files {
        let comment = arr(v, "_comment");
        assert!(
            !comment.is_empty()
                && comment
                    .iter()
                    .all(|c| c.as_str().is_some_and(|s| !s.is_empty())),
            "{name}: _comment"
        );
        assert!(
            comment.iter().any(|c| c.as_str().unwrap().contains(DATE)),
            "{name}: _comment names the date"
        );
        let p = &v["provenance"];
        assert_eq!(text(p, "date"), DATE, "{name}");
        assert_eq!(
            text(p, "generator"),
            "examples/generate_vectors.rs",
            "{name}"
        );
        assert!(text(p, "spec").contains("profile v2"), "{name}");
        assert!(text(p, "method_crates").contains("aes-gcm-siv"), "{name}");
        let kind = text(v, "kind");
        assert!(
            matches!(kind, "conversation" | "reject" | "padding" | "prekey_store"),
            "{name}: unknown kind"
        );
        assert_eq!(
            kind,
            if name.starts_with("reject") {
                "reject"
            } else if name.starts_with("padding") {
                "padding"
            } else if name.starts_with("prekey_store") {
                "prekey_store"
            } else {
                "conversation"
            },
            "{name}: kind"
        );
        check_hex_fields(name, "", v);
    }
    let conversations: Vec<&Value> = files
        .values()
        .filter(|v| v["kind"] == "conversation")
        .collect();
    assert!(conversations
        .iter()
        .any(|v| !v["bob"]["one_time_prekey"].is_null()));
    assert!(conversations
        .iter()
        .any(|v| v["bob"]["one_time_prekey"].is_null()));
    // The PQXDH files: one-time and last-resort post-quantum prekeys.
    let kinds: Vec<&str> = conversations
        .iter()
        .filter(|v| is_pqxdh(v))
        .map(|v| text(&v["bob"]["post_quantum_prekey"], "kind"))
        .collect();
    assert!(kinds.contains(&"one_time") && kinds.contains(&"last_resort"));
    for (name, v) in &files {
        if v["kind"] == "conversation" {
            assert_eq!(is_he(v), name.contains("_he_"), "{name}: header_encryption");
        }
    }
    // Both padding policies are used by some sender, and both sides of the first Padmé
    // bucket edge (63 and 64 bytes) appear.
    let mut policies = std::collections::BTreeSet::new();
    let mut lengths = std::collections::BTreeSet::new();
    for v in &conversations {
        for m in arr(v, "messages") {
            policies.insert(text(&m, "padding").to_owned());
            lengths.insert(bytes(&m, "plaintext").len());
        }
    }
    assert!(policies.contains("padme") && policies.contains("none"));
    assert!(lengths.contains(&63) && lengths.contains(&64) && lengths.contains(&0));
}

/// Loads one file of a kind; `None` (with a note) if this build cannot check it.
fn load(file: &str, kind: &str) -> Option<Value> {
    let v = load_all()
        .remove(file)
        .unwrap_or_else(|| panic!("{file} missing"));
    assert_eq!(text(&v, "kind"), kind, "{file}");
    if kind == "conversation" && is_pqxdh(&v) && !cfg!(feature = "pqxdh") {
        eprintln!("{file}: a PQXDH file, skipped without the pqxdh feature");
        return None;
    }
    Some(v)
}

/// (a) and (b) for one conversation file.
fn check_conversation(file: &str) {
    if let Some(v) = load(file, "conversation") {
        library_reproduces(file, &v);
        intermediate_values(file, &v);
    }
}

#[test]
fn x3dh_ratchet_v2() {
    check_conversation("x3dh_ratchet_v2.json");
}

#[test]
fn x3dh_ratchet_no_opk_v2() {
    check_conversation("x3dh_ratchet_no_opk_v2.json");
}

#[test]
fn pqxdh_ratchet_v2() {
    check_conversation("pqxdh_ratchet_v2.json");
}

#[test]
fn pqxdh_last_resort_v2() {
    check_conversation("pqxdh_last_resort_v2.json");
}

#[test]
fn x3dh_he_v2() {
    check_conversation("x3dh_he_v2.json");
}

#[test]
fn pqxdh_he_v2() {
    check_conversation("pqxdh_he_v2.json");
}

#[test]
fn reject_v2() {
    check_reject_file("reject_v2.json");
}

#[test]
fn reject_pqxdh_v2() {
    check_reject_file("reject_pqxdh_v2.json");
}

#[test]
fn reject_he_v2() {
    check_reject_file("reject_he_v2.json");
}

#[test]
fn padding_v2() {
    check_padding_file("padding_v2.json");
}

/// (a) The library reproduces the conversation from its seeds.
fn library_reproduces(name: &str, v: &Value) {
    let s = Script::from(v);
    let messages = arr(v, "messages");
    let mut world = World::setup(&s);
    assert_eq!(world.bundle, bytes(v, "bundle"), "{name}: bundle");
    // Header-encrypted: the library's header keys and skipped keys, as it stores them,
    // are the listed states (after setup, then after each event).
    let he_states = if is_he(v) {
        arr(&v["header_encryption"], "states")
    } else {
        Vec::new()
    };
    let library_state = |state: &Value, session: &Session, what: &str| {
        let stored = StoredHe::parse(&session.to_bytes());
        assert_eq!(
            stored,
            StoredHe::listed(state),
            "{name}: library state {what}"
        );
    };
    if let Some(first) = he_states.first() {
        assert!(first["after_event"].is_null() && text(first, "party") == "alice");
        library_state(first, &world.alice, "after setup");
    }
    let mut encrypted = 0;
    for (step, event) in s.events.iter().enumerate() {
        let pt = world.apply(&s, event);
        if s.header_encryption {
            let state = &he_states[step + 1];
            assert_eq!(num(state, "after_event"), step as u64, "{name}");
            assert_eq!(text(state, "party"), event.1, "{name}: event {step} party");
            library_state(
                state,
                world.session(&event.1),
                &format!("after event {step}"),
            );
        }
        // The acting party's padding policy, also as stored (SPEC.md §7.1, v2).
        let own = if event.1 == "alice" {
            s.alice_padding
        } else {
            s.bob_padding
        };
        let session = world.session(&event.1);
        assert_eq!(session.padding(), own, "{name}: event {step}: padding");
        let stored = session.to_bytes();
        assert_eq!(
            stored[stored_padding_offset(&stored)],
            policy_byte(own),
            "{name}: event {step}: stored padding byte"
        );
        let (op, _, i) = event;
        let m = &messages[*i];
        match op.as_str() {
            "encrypt" => {
                encrypted += 1;
                assert_eq!(
                    world.wire[*i].as_deref().unwrap(),
                    &bytes(m, "bytes")[..],
                    "{name}: event {step}: message {i} bytes"
                );
            }
            _ => assert_eq!(pt, bytes(m, "plaintext"), "{name}: event {step}: plaintext"),
        }
    }
    assert_eq!(encrypted, messages.len(), "{name}: every message is sent");
    assert_eq!(world.used_one_time_prekey, s.one_time_prekey_id, "{name}");
    assert_eq!(
        world.used_post_quantum_prekey,
        s.post_quantum.map(|p| p.id),
        "{name}"
    );
    assert_eq!(
        world.bob.as_ref().unwrap().is_post_quantum(),
        s.post_quantum.is_some()
    );
    if let Some(spec) = s.post_quantum {
        // Bob's store as loaded, and after accepting (SPEC.md §8): one-time prekeys of
        // both kinds deleted, a last-resort one kept with a replay record.
        assert_eq!(
            world.store_bytes,
            bytes(&v["bob"], "prekey_store"),
            "{name}: prekey store"
        );
        let store = world.store.as_ref().unwrap();
        if let Some(id) = s.one_time_prekey_id {
            assert!(store.one_time_prekey(id).is_none(), "{name}");
        }
        assert_eq!(
            library_pq::holds_pq_prekey(store, spec.id),
            !spec.one_time,
            "{name}"
        );
        let record = s.one_time_prekey_id.is_none() && !spec.one_time;
        assert_eq!(store.replay_records(), usize::from(record), "{name}");
        assert_eq!(
            store.to_bytes()[..],
            bytes(&v["bob"], "prekey_store_after_accept")[..],
            "{name}: prekey store after accept"
        );
    }
    let id = b32(&v["x3dh"], "session_id");
    assert_eq!(world.alice.id().as_bytes(), &id, "{name}: session id");
    assert_eq!(world.bob.as_ref().unwrap().id().as_bytes(), &id, "{name}");
    // The RNG streams were consumed exactly as rng_draws lists.
    let draws = &v["rng_draws"];
    for (party, rng, seed) in [
        ("alice", &mut world.alice_rng, s.alice_seed),
        ("bob", &mut world.bob_rng, s.bob_seed),
    ] {
        let mut fresh = ChaCha20Rng::seed_from_u64(seed);
        for draw in arr(draws, party) {
            let mut buf = vec![0u8; bytes(&draw, "bytes").len()];
            fresh.try_fill_bytes(&mut buf).unwrap();
        }
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fresh.try_fill_bytes(&mut a).unwrap();
        rng.try_fill_bytes(&mut b).unwrap();
        assert_eq!(a, b, "{name}: {party}'s RNG draws differ from rng_draws");
    }
    // Headers as the public parser sees them.
    for m in &messages {
        let wire = bytes(m, "bytes");
        let parsed = Message::parse(&wire).unwrap();
        if s.header_encryption {
            // Nothing of the header is visible (SPEC.md §4.8).
            assert!(parsed.is_header_encrypted(), "{name}");
            assert_eq!(parsed.ratchet_key(), None);
            assert_eq!(parsed.previous_chain_length(), None);
            assert_eq!(parsed.message_number(), None);
        } else {
            assert!(!parsed.is_header_encrypted(), "{name}");
            assert_eq!(parsed.ratchet_key().unwrap(), &b32(m, "ratchet_public"));
            assert_eq!(
                u64::from(parsed.previous_chain_length().unwrap()),
                num(m, "pn")
            );
            assert_eq!(u64::from(parsed.message_number().unwrap()), num(m, "n"));
        }
        assert_eq!(
            parsed.ciphertext_len(),
            bytes(m, "ciphertext").len() + bytes(m, "tag").len()
        );
        // The ciphertext is as long as the encoded plaintext (SPEC.md §4.9).
        assert_eq!(
            bytes(m, "ciphertext").len(),
            bytes(m, "encoded_plaintext").len(),
            "{name}"
        );
        assert_eq!(parsed.to_bytes(), wire);
        match (parsed, m["initial_fields"].is_null()) {
            (Message::Initial(init), false) => {
                let f = &m["initial_fields"];
                assert_eq!(init.identity_key().as_bytes(), &b32(f, "identity_key"));
                assert_eq!(init.base_key(), &b32(f, "base_key"));
                assert_eq!(init.signed_prekey_id(), num(f, "signed_prekey_id"));
                assert_eq!(
                    init.one_time_prekey_id(),
                    (num(f, "one_time_prekey_flag") == 1).then(|| num(f, "one_time_prekey_id"))
                );
                assert_eq!(init.is_post_quantum(), is_pqxdh(v));
                assert_eq!(
                    init.post_quantum_prekey_id(),
                    f["post_quantum_prekey_id"].as_u64()
                );
                let responder =
                    IdentityKeyPair::generate(&mut ChaCha20Rng::seed_from_u64(s.bob_seed)).unwrap();
                assert_eq!(init.session_id(responder.public_key()).as_bytes(), &id);
            }
            (Message::Normal(_), true) => {}
            _ => panic!("{name}: message kind"),
        }
    }
}

/// The header-encryption part of a session's state: `HKs`, `HKr`, `NHKs`, `NHKr`, the
/// stored `(header key, ratchet key)` pairs and `MKSKIPPED` `(ratchet key, N, mk)`, oldest
/// first.
#[derive(Debug, PartialEq, Eq)]
struct StoredHe {
    hks: Option<Vec<u8>>,
    hkr: Option<Vec<u8>>,
    nhks: Vec<u8>,
    nhkr: Vec<u8>,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    skipped: Vec<(Vec<u8>, u32, Vec<u8>)>,
}

impl StoredHe {
    /// From a stored header-encrypted session, SPEC.md §7.1 type `0x28`.
    fn parse(b: &[u8]) -> Self {
        assert_eq!(
            b[..2],
            [STORAGE_VERSION, 0x28],
            "a header-encrypted session"
        );
        let flags = b[3];
        assert_eq!(flags & !0x01, 0x02, "flags");
        // Role, flags, the identities and EK_A, then the awaiting-reply fields at 100..118
        // (u64 prekey ids; and the PQXDH initiator's post-quantum prekey id and KEM
        // ciphertext).
        let awaiting = b[100] == 0x01;
        let mut at = 118
            + if awaiting && flags & 0x01 == 0x01 {
                8 + KEM_CIPHERTEXT_LENGTH
            } else {
                0
            };
        // Limits, the padding byte (v2), RK, the DHs secret, DHr, CKs, CKr, Ns, Nr, PN.
        assert_eq!(at + 8, stored_padding_offset(b));
        at += 4 + 4 + 1 + 32 + 32 + 3 * 33 + 3 * 4;
        let u32_at = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let optional = |at: usize| match b[at] {
            0x00 => None,
            0x01 => Some(b[at + 1..at + 33].to_vec()),
            other => panic!("optional flag {other}"),
        };
        let k = u32_at(at) as usize;
        at += 4;
        let skipped = (0..k)
            .map(|j| {
                let e = at + 68 * j;
                (
                    b[e..e + 32].to_vec(),
                    u32_at(e + 32),
                    b[e + 36..e + 68].to_vec(),
                )
            })
            .collect();
        at += 68 * k;
        let (hks, hkr) = (optional(at), optional(at + 33));
        at += 66;
        let (nhks, nhkr) = (b[at..at + 32].to_vec(), b[at + 32..at + 64].to_vec());
        at += 64;
        let h = u32_at(at) as usize;
        at += 4;
        let pairs = (0..h)
            .map(|j| {
                let e = at + 64 * j;
                (b[e..e + 32].to_vec(), b[e + 32..e + 64].to_vec())
            })
            .collect();
        assert_eq!(at + 64 * h, b.len(), "stored session length");
        StoredHe {
            hks,
            hkr,
            nhks,
            nhkr,
            pairs,
            skipped,
        }
    }

    /// As listed in a file's `header_encryption.states`.
    fn listed(state: &Value) -> Self {
        let optional = |key: &str| state[key].as_str().map(decode_hex);
        StoredHe {
            hks: optional("hks"),
            hkr: optional("hkr"),
            nhks: bytes(state, "nhks"),
            nhkr: bytes(state, "nhkr"),
            pairs: arr(state, "skipped_header_keys")
                .iter()
                .map(|p| (bytes(p, "header_key"), bytes(p, "ratchet_key")))
                .collect(),
            skipped: arr(state, "skipped_message_keys")
                .iter()
                .map(|k| {
                    (
                        bytes(k, "ratchet_key"),
                        u32::try_from(num(k, "n")).unwrap(),
                        bytes(k, "message_key"),
                    )
                })
                .collect(),
        }
    }
}

fn check_identity(name: &str, who: &str, id: &Value) {
    let seed = b32(id, "seed");
    let sha512: Vec<u8> = Sha512::digest(seed).to_vec();
    assert_eq!(sha512, bytes(id, "sha512_of_seed"), "{name}: {who} SHA-512");
    let ed = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    assert_eq!(
        ed,
        b32(id, "ed25519_public"),
        "{name}: {who} Ed25519 public"
    );
    let x_private = clamp(sha512[..32].try_into().unwrap());
    assert_eq!(
        x_private,
        b32(id, "x25519_private"),
        "{name}: {who} X25519 private"
    );
    let x_public = b32(id, "x25519_public");
    assert_eq!(
        x25519_public(&x_private),
        x_public,
        "{name}: {who} X25519 public"
    );
    assert_eq!(
        edwards_to_x25519(&ed),
        x_public,
        "{name}: {who} Montgomery form"
    );
}

fn check_pair(name: &str, what: &str, k: &Value) -> ([u8; 32], [u8; 32]) {
    let private = b32(k, "private");
    let public = b32(k, "public");
    assert_eq!(x25519_public(&private), public, "{name}: {what} public key");
    (private, public)
}

/// (b) Every listed intermediate value follows from its inputs by the SPEC.md formulas.
fn intermediate_values(name: &str, v: &Value) {
    let c = &v["constants"];
    assert_eq!(text(c, "x3dh_info").as_bytes(), X3DH_INFO);
    assert_eq!(text(c, "root_info").as_bytes(), ROOT_INFO);
    assert_eq!(text(c, "session_id_label").as_bytes(), SESSION_ID_LABEL);
    // Profile v2: no per-message HKDF any more.
    assert!(c.get("message_info").is_none() && c.get("message_keys_salt").is_none());
    assert_eq!(bytes(c, "wire_version"), [WIRE_VERSION]);
    assert_eq!(bytes(c, "bundle_version"), [BUNDLE_VERSION]);
    assert_eq!(bytes(c, "storage_version"), [STORAGE_VERSION]);
    assert!(text(c, "aead").starts_with("AES-256-GCM-SIV"));
    assert_eq!(bytes(c, "message_nonce"), MESSAGE_NONCE);
    assert_eq!(bytes(c, "end_marker"), [END_MARKER]);
    assert_eq!(num(c, "padme_minimum"), PADME_MINIMUM as u64);
    assert_eq!(
        num(c, "max_encoded_plaintext"),
        MAX_ENCODED_PLAINTEXT as u64
    );
    assert_eq!(num(c, "max_plaintext_size"), MAX_PLAINTEXT_SIZE as u64);
    assert_eq!(bytes(c, "x3dh_salt"), [0u8; 32]);
    assert_eq!(bytes(c, "x3dh_ikm_prefix"), [0xFFu8; 32]);
    assert_eq!(bytes(c, "signature_prefix"), [0x05]);
    assert_eq!(bytes(c, "chain_message_key_byte"), [0x01]);
    assert_eq!(bytes(c, "chain_next_key_byte"), [0x02]);
    let pq = is_pqxdh(v);
    if pq {
        assert_eq!(text(c, "pqxdh_info").as_bytes(), PQXDH_INFO);
        assert_eq!(bytes(c, "kem_encoding_prefix"), [0x0A]);
    }
    let he = is_he(v);
    if he {
        assert_eq!(text(c, "header_keys_info").as_bytes(), HEADER_KEYS_INFO);
        assert_eq!(bytes(c, "header_keys_salt"), [0u8; 32]);
        assert_eq!(text(c, "root_he_info").as_bytes(), ROOT_HE_INFO);
    } else {
        assert!(c.get("header_keys_info").is_none() && c.get("root_he_info").is_none());
    }

    let s = Script::from(v);
    assert_eq!(s.post_quantum.is_some(), pq, "{name}: scenario");
    let (alice, bob) = (&v["alice"], &v["bob"]);
    let (pq_key, kem_step) = (&bob["post_quantum_prekey"], &v["pqxdh"]);

    // RNG draws, and which key each draw became (SPEC.md §2.5): for PQXDH, Bob's
    // 64-byte ML-KEM seed after his prekeys, Alice's `m` between EK_A and her first
    // ratchet key; later, each encrypt that starts a new sending chain draws the
    // sender's next ratchet key, and in header-encrypted mode every encrypt then draws
    // the message's 12-byte header nonce.
    let messages = arr(v, "messages");
    let root_steps = arr(v, "root_steps");
    let mut expected_draws: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    let alice_keys: Vec<Vec<u8>> = arr(alice, "ratchet_keys")
        .iter()
        .map(|k| bytes(k, "private"))
        .collect();
    let bob_keys: Vec<Vec<u8>> = arr(bob, "ratchet_keys")
        .iter()
        .map(|k| bytes(k, "private"))
        .collect();
    let mut alice_draws = vec![
        bytes(&alice["identity"], "seed"),
        bytes(&alice["ephemeral"], "private"),
    ];
    if pq {
        alice_draws.push(bytes(kem_step, "encapsulation_randomness_m"));
    }
    alice_draws.push(alice_keys[0].clone());
    let mut bob_draws = vec![
        bytes(&bob["identity"], "seed"),
        bytes(&bob["signed_prekey"], "private"),
    ];
    if !bob["one_time_prekey"].is_null() {
        bob_draws.push(bytes(&bob["one_time_prekey"], "private"));
    }
    if pq {
        bob_draws.push(bytes(pq_key, "seed"));
    }
    let mut chains_started = std::collections::BTreeSet::from([0u64]);
    let mut keys_used = [1usize, 0];
    for (op, party, i) in &s.events {
        if op != "encrypt" {
            continue;
        }
        let m = &messages[*i];
        let (draws, keys, used) = match party.as_str() {
            "alice" => (&mut alice_draws, &alice_keys, &mut keys_used[0]),
            _ => (&mut bob_draws, &bob_keys, &mut keys_used[1]),
        };
        let step = num(m, "root_step");
        if chains_started.insert(step) {
            let key = &keys[*used];
            let root = &root_steps[usize::try_from(step).unwrap()];
            assert_eq!(
                &bytes(root, "sender_ratchet_private"),
                key,
                "{name}: message {i} starts a chain with the sender's next ratchet key"
            );
            draws.push(key.clone());
            *used += 1;
        }
        if he {
            let nonce = bytes(&m["sealed_header"], "nonce");
            assert_eq!(nonce.len(), 12, "{name}: message {i} header nonce");
            draws.push(nonce);
        }
    }
    assert_eq!(
        keys_used,
        [alice_keys.len(), bob_keys.len()],
        "{name}: every ratchet key starts a chain"
    );
    expected_draws.insert("alice", alice_draws);
    expected_draws.insert("bob", bob_draws);
    for (party, seed) in [("alice", s.alice_seed), ("bob", s.bob_seed)] {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let listed = arr(&v["rng_draws"], party);
        assert_eq!(
            listed.len(),
            expected_draws[party].len(),
            "{name}: {party} draws"
        );
        for (i, draw) in listed.iter().enumerate() {
            let expected = &expected_draws[party][i];
            assert!(
                expected.len() == 32
                    || (pq && expected.len() == 64)
                    || (he && expected.len() == 12),
                "{name}: {party} draw {i} length"
            );
            let mut buf = vec![0u8; expected.len()];
            rng.try_fill_bytes(&mut buf).unwrap();
            assert_eq!(num(draw, "index"), i as u64);
            assert_eq!(buf, bytes(draw, "bytes"), "{name}: {party} draw {i}");
            assert_eq!(&buf, expected, "{name}: {party} draw {i} use");
        }
    }

    // Keys (SPEC.md §2).
    check_identity(name, "alice", &alice["identity"]);
    check_identity(name, "bob", &bob["identity"]);
    let ik_a = b32(&alice["identity"], "ed25519_public");
    let ik_b = b32(&bob["identity"], "ed25519_public");
    let ik_a_x = b32(&alice["identity"], "x25519_private");
    let ik_b_x = b32(&bob["identity"], "x25519_private");
    let spk_v = &bob["signed_prekey"];
    let (spk, spk_pub) = check_pair(name, "SPK", spk_v);
    let signed = cat(&[&[0x05], &spk_pub]);
    assert_eq!(bytes(spk_v, "signed_message"), signed);
    let signature: [u8; 64] = bytes(spk_v, "signature").try_into().unwrap();
    let bob_seed = b32(&bob["identity"], "seed");
    assert_eq!(
        SigningKey::from_bytes(&bob_seed).sign(&signed).to_bytes(),
        signature
    );
    VerifyingKey::from_bytes(&ik_b)
        .unwrap()
        .verify_strict(&signed, &Signature::from_bytes(&signature))
        .unwrap();
    let opk = (!bob["one_time_prekey"].is_null())
        .then(|| check_pair(name, "OPK", &bob["one_time_prekey"]));
    // PQXDH: the ML-KEM-768 prekey from its seed, signed over 0x0A || ek (SPEC.md §3.6).
    let kem_public = s.post_quantum.map(|spec| {
        assert_eq!(num(pq_key, "id"), spec.id, "{name}");
        assert_eq!(
            text(pq_key, "kind"),
            if spec.one_time {
                "one_time"
            } else {
                "last_resort"
            }
        );
        let seed = bytes(pq_key, "seed");
        assert_eq!(seed.len(), 64);
        assert_eq!(bytes(pq_key, "d"), seed[..32], "{name}: d");
        assert_eq!(bytes(pq_key, "z"), seed[32..], "{name}: z");
        let public = kem::public_key(&seed);
        assert_eq!(public, bytes(pq_key, "encapsulation_key"), "{name}: ek");
        assert!(
            kem_coefficients(&public).iter().all(|c| *c < KEM_Q),
            "{name}: ek coefficients"
        );
        let signed = cat(&[&[0x0A], &public]);
        assert_eq!(bytes(pq_key, "signed_message"), signed, "{name}: EncodeKEM");
        let signature: [u8; 64] = bytes(pq_key, "signature").try_into().unwrap();
        assert_eq!(
            SigningKey::from_bytes(&bob_seed).sign(&signed).to_bytes(),
            signature,
            "{name}: PQ prekey signature"
        );
        VerifyingKey::from_bytes(&ik_b)
            .unwrap()
            .verify_strict(&signed, &Signature::from_bytes(&signature))
            .unwrap();
        (spec, seed, public, signature)
    });
    let (ek, ek_pub) = check_pair(name, "EK_A", &alice["ephemeral"]);
    for k in arr(alice, "ratchet_keys")
        .iter()
        .chain(&arr(bob, "ratchet_keys"))
    {
        check_pair(name, "ratchet key", k);
    }

    // The bundle's layout (SPEC.md §5.4).
    let (flag, opk_id, opk_pub) = match (&opk, s.one_time_prekey_id) {
        (Some((_, public)), Some(id)) => (1u8, id, *public),
        (None, None) => (0u8, 0u64, [0u8; 32]),
        _ => panic!("{name}: one-time prekey id and key disagree"),
    };
    assert_eq!(num(spk_v, "id"), s.signed_prekey_id);
    let mut bundle = cat(&[
        &[BUNDLE_VERSION, if pq { 0x11 } else { 0x10 }],
        &ik_b,
        &s.signed_prekey_id.to_be_bytes(),
        &spk_pub,
        &signature,
        &[flag],
        &opk_id.to_be_bytes(),
        &opk_pub,
    ]);
    if let Some((spec, _, public, pq_signature)) = &kem_public {
        bundle.extend_from_slice(&spec.id.to_be_bytes());
        bundle.extend_from_slice(public);
        bundle.extend_from_slice(pq_signature);
        assert_eq!(bundle.len(), PQ_BUNDLE_LENGTH);
    } else {
        assert_eq!(bundle.len(), BUNDLE_LENGTH);
    }
    assert_eq!(bundle, bytes(v, "bundle"), "{name}: bundle");

    // PQXDH's KEM step (SPEC.md §3.6): Alice encapsulates with m, Bob decapsulates.
    let kem = kem_public.as_ref().map(|(spec, seed, public, _)| {
        assert_eq!(num(kem_step, "post_quantum_prekey_id"), spec.id);
        let m = bytes(kem_step, "encapsulation_randomness_m");
        let (ciphertext, shared_secret) = kem::encapsulate(public, &m).unwrap();
        assert_eq!(ciphertext.len(), KEM_CIPHERTEXT_LENGTH);
        assert_eq!(
            ciphertext,
            bytes(kem_step, "kem_ciphertext"),
            "{name}: KEM ciphertext"
        );
        assert_eq!(
            shared_secret,
            bytes(kem_step, "shared_secret"),
            "{name}: SS"
        );
        assert_eq!(
            kem::decapsulate(seed, &ciphertext),
            shared_secret,
            "{name}: Decaps"
        );
        (spec.id, ciphertext, shared_secret)
    });
    if !pq {
        assert!(v.get("pqxdh").is_none() && bob.get("prekey_store").is_none());
    }

    // PQXDH: Bob's stored prekey store from the seeds (SPEC.md §7.3-§7.5 type 0x24, §7.7),
    // as loaded and after the accept (SPEC.md §8.3): the one-time prekeys it consumed are
    // gone, or, consuming none (a last-resort post-quantum prekey and no classical one-time
    // prekey), it recorded EK_A under the signed prekey.
    if let Some((spec, seed, _, pq_signature)) = &kem_public {
        let store = |after_accept: bool| {
            let keep_opk = opk.is_some() && !after_accept;
            let keep_pq = !(spec.one_time && after_accept);
            let record = after_accept && opk.is_none() && !spec.one_time;
            let next_sequence = u64::from(opk.is_some()) + 1;
            let mut store = vec![STORAGE_VERSION, 0x24];
            store.extend_from_slice(&1024u32.to_be_bytes());
            store.extend_from_slice(&next_sequence.to_be_bytes());
            store.extend_from_slice(&s.signed_prekey_id.to_be_bytes());
            store.extend_from_slice(&1u32.to_be_bytes());
            store.extend_from_slice(&[STORAGE_VERSION, 0x22]);
            store.extend_from_slice(&s.signed_prekey_id.to_be_bytes());
            store.extend_from_slice(&spk);
            store.extend_from_slice(&signature);
            store.extend_from_slice(&u32::from(record).to_be_bytes());
            if record {
                store.extend_from_slice(&ek_pub);
            }
            store.extend_from_slice(&[0u8; 1 + 106]); // no standby
            store.extend_from_slice(&u32::from(keep_opk).to_be_bytes());
            if let (true, Some((opk, _))) = (keep_opk, &opk) {
                store.extend_from_slice(&0u64.to_be_bytes()); // sequence
                store.extend_from_slice(&[STORAGE_VERSION, 0x23]);
                store.extend_from_slice(&opk_id.to_be_bytes());
                store.extend_from_slice(opk);
            }
            if spec.one_time {
                store.extend_from_slice(&[0u8; 9]);
            } else {
                store.push(0x01);
                store.extend_from_slice(&spec.id.to_be_bytes());
            }
            store.extend_from_slice(&u32::from(keep_pq).to_be_bytes());
            if keep_pq {
                store.extend_from_slice(&(next_sequence - 1).to_be_bytes());
                store.extend_from_slice(&[STORAGE_VERSION, 0x26]);
                store.extend_from_slice(&spec.id.to_be_bytes());
                store.push(if spec.one_time { 0x01 } else { 0x02 });
                store.extend_from_slice(seed);
                store.extend_from_slice(pq_signature);
            }
            store
        };
        assert_eq!(
            store(false),
            bytes(bob, "prekey_store"),
            "{name}: prekey store"
        );
        assert_eq!(
            store(true),
            bytes(bob, "prekey_store_after_accept"),
            "{name}: prekey store after accept"
        );
    }

    // X3DH (SPEC.md §3.3-§3.5), from both sides.
    let x = &v["x3dh"];
    let ik_a_pub = b32(&alice["identity"], "x25519_public");
    let ik_b_pub = b32(&bob["identity"], "x25519_public");
    let dh1 = dh(&ik_a_x, &spk_pub);
    let dh2 = dh(&ek, &ik_b_pub);
    let dh3 = dh(&ek, &spk_pub);
    assert_eq!(dh1, dh(&spk, &ik_a_pub));
    assert_eq!(dh2, dh(&ik_b_x, &ek_pub));
    assert_eq!(dh3, dh(&spk, &ek_pub));
    assert_eq!(dh1, b32(x, "dh1"), "{name}: DH1");
    assert_eq!(dh2, b32(x, "dh2"), "{name}: DH2");
    assert_eq!(dh3, b32(x, "dh3"), "{name}: DH3");
    let mut ikm = cat(&[&[0xFF; 32], &dh1, &dh2, &dh3]);
    match &opk {
        Some((opk, opk_pub)) => {
            let dh4 = dh(&ek, opk_pub);
            assert_eq!(dh4, dh(opk, &ek_pub));
            assert_eq!(dh4, b32(x, "dh4"), "{name}: DH4");
            ikm.extend_from_slice(&dh4);
        }
        None => assert!(x["dh4"].is_null(), "{name}: DH4 without a one-time prekey"),
    }
    if let Some((_, _, shared_secret)) = &kem {
        ikm.extend_from_slice(shared_secret);
    }
    assert_eq!(ikm, bytes(x, "ikm"), "{name}: IKM");
    let info = if pq { PQXDH_INFO } else { X3DH_INFO };
    let sk = hkdf(&[0u8; 32], &ikm, info, 32);
    assert_eq!(sk, bytes(x, "sk"), "{name}: SK");
    let ad = cat(&[&ik_a, &ik_b]);
    assert_eq!(ad, bytes(x, "ad"), "{name}: AD");
    let session_id = Sha256::digest(cat(&[SESSION_ID_LABEL, &ik_a, &ik_b, &ek_pub])).to_vec();
    assert_eq!(session_id, bytes(x, "session_id"), "{name}: session id");

    // The root chain (SPEC.md §4.3, §4.5, §4.6).
    let roots = arr(v, "root_steps");
    let mut rk = sk.clone();
    let mut previous_sender_key = spk_pub;
    let mut ratchet_keys: BTreeMap<&str, Vec<[u8; 32]>> = BTreeMap::new();
    ratchet_keys.insert(
        "alice",
        arr(alice, "ratchet_keys")
            .iter()
            .map(|k| b32(k, "public"))
            .collect(),
    );
    ratchet_keys.insert(
        "bob",
        arr(bob, "ratchet_keys")
            .iter()
            .map(|k| b32(k, "public"))
            .collect(),
    );
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in roots.iter().enumerate() {
        assert_eq!(num(r, "index"), i as u64);
        let sender = text(r, "sender");
        assert_eq!(
            sender,
            if i % 2 == 0 { "alice" } else { "bob" },
            "{name}: turns"
        );
        assert_eq!(bytes(r, "rk_in"), rk, "{name}: root step {i} rk_in");
        let sender_private = b32(r, "sender_ratchet_private");
        let sender_public = b32(r, "sender_ratchet_public");
        let receiver_private = b32(r, "receiver_ratchet_private");
        let receiver_public = b32(r, "receiver_ratchet_public");
        assert_eq!(x25519_public(&sender_private), sender_public);
        assert_eq!(x25519_public(&receiver_private), receiver_public);
        // Each step's receiver key is the previous step's sender key (SPK_B first).
        assert_eq!(receiver_public, previous_sender_key, "{name}: step {i} DHr");
        // ... and each sender key is the sender's next generated ratchet key.
        let k = used.entry(sender).or_insert(0);
        assert_eq!(
            ratchet_keys[sender][*k], sender_public,
            "{name}: step {i} DHs"
        );
        *k += 1;
        let dh_output = dh(&sender_private, &receiver_public);
        assert_eq!(dh_output, dh(&receiver_private, &sender_public));
        assert_eq!(dh_output, b32(r, "dh_output"), "{name}: step {i} DH");
        // KDF_RK, or in header-encrypted mode KDF_RK_HE -> (rk', ck, nhk) (SPEC.md §4.8).
        let okm = if he {
            let okm = hkdf(&rk, &dh_output, ROOT_HE_INFO, 96);
            assert_eq!(
                okm[64..],
                bytes(r, "next_header_key")[..],
                "{name}: step {i} next header key"
            );
            okm
        } else {
            assert!(r.get("next_header_key").is_none(), "{name}");
            hkdf(&rk, &dh_output, ROOT_INFO, 64)
        };
        assert_eq!(okm[..32], bytes(r, "rk_out")[..], "{name}: step {i} rk_out");
        assert_eq!(
            okm[32..64],
            bytes(r, "chain_key")[..],
            "{name}: step {i} chain key"
        );
        rk = okm[..32].to_vec();
        previous_sender_key = sender_public;
    }
    assert_eq!(used.values().sum::<usize>(), roots.len());

    // Header keys (SPEC.md §4.8): (HKA, NHKB) from SK; the chain of root step j is sealed
    // under HKA (j = 0), NHKB (j = 1), or the next header key of step j - 2.
    let chain_header_keys: Vec<Vec<u8>> = if he {
        let h = &v["header_encryption"];
        let okm = hkdf(&[0u8; 32], &sk, HEADER_KEYS_INFO, 64);
        assert_eq!(okm[..32], bytes(h, "hka")[..], "{name}: HKA");
        assert_eq!(okm[32..], bytes(h, "nhkb")[..], "{name}: NHKB");
        let keys: Vec<Vec<u8>> = (0..roots.len())
            .map(|j| match j {
                0 => okm[..32].to_vec(),
                1 => okm[32..].to_vec(),
                j => bytes(&roots[j - 2], "next_header_key"),
            })
            .collect();
        let listed: Vec<Vec<u8>> = arr(h, "chain_header_keys")
            .iter()
            .map(|k| decode_hex(k.as_str().unwrap()))
            .collect();
        assert_eq!(listed, keys, "{name}: chain header keys");
        keys
    } else {
        assert!(v.get("header_encryption").is_none());
        Vec::new()
    };

    // Messages (SPEC.md §4.1, §4.5, §5.2, §5.3).
    let messages = arr(v, "messages");
    let mut chain_lengths: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &messages {
        *chain_lengths.entry(num(m, "root_step")).or_insert(0) += 1;
    }
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(num(m, "index"), i as u64);
        let sender = text(m, "sender");
        let step = num(m, "root_step");
        let root = &roots[usize::try_from(step).unwrap()];
        assert_eq!(text(root, "sender"), sender, "{name}: message {i} chain");
        assert_eq!(
            b32(m, "ratchet_public"),
            b32(root, "sender_ratchet_public"),
            "{name}: message {i} DHs"
        );
        let n = num(m, "n");
        let chain_key = bytes(m, "chain_key");
        if n == 0 {
            assert_eq!(
                chain_key,
                bytes(root, "chain_key"),
                "{name}: message {i} CK"
            );
        } else {
            let previous = messages
                .iter()
                .find(|p| num(p, "root_step") == step && num(p, "n") == n - 1)
                .unwrap();
            assert_eq!(
                chain_key,
                bytes(previous, "next_chain_key"),
                "{name}: {i} CK"
            );
        }
        // PN: the number of messages in the sender's previous sending chain.
        let previous_own_step = (0..step)
            .rev()
            .find(|j| text(&roots[usize::try_from(*j).unwrap()], "sender") == sender);
        let pn = previous_own_step.map_or(0, |j| chain_lengths.get(&j).copied().unwrap_or(0));
        assert_eq!(num(m, "pn"), pn, "{name}: message {i} PN");

        let mk = hmac(&chain_key, &[0x01]);
        assert_eq!(mk, bytes(m, "message_key"), "{name}: message {i} mk");
        assert_eq!(hmac(&chain_key, &[0x02]), bytes(m, "next_chain_key"));
        // Profile v2: the message key is the AEAD key itself.
        assert!(m.get("aes_key").is_none() && m.get("aes_nonce").is_none());

        let mut prefix = vec![WIRE_VERSION];
        let f = &m["initial_fields"];
        if f.is_null() {
            assert_eq!(text(m, "kind"), "normal");
            prefix.push(if he { 0x04 } else { 0x01 });
        } else {
            assert_eq!(text(m, "kind"), "initial");
            assert_eq!(
                sender, "alice",
                "{name}: only the initiator sends initial messages"
            );
            assert_eq!(b32(f, "identity_key"), ik_a);
            assert_eq!(b32(f, "base_key"), ek_pub);
            assert_eq!(num(f, "signed_prekey_id"), s.signed_prekey_id);
            assert_eq!(num(f, "one_time_prekey_flag"), u64::from(flag));
            assert_eq!(num(f, "one_time_prekey_id"), opk_id);
            prefix.push(match (pq, he) {
                (false, false) => 0x02,
                (true, false) => 0x03,
                (false, true) => 0x05,
                (true, true) => 0x06,
            });
            prefix.extend_from_slice(&ik_a);
            prefix.extend_from_slice(&ek_pub);
            prefix.extend_from_slice(&s.signed_prekey_id.to_be_bytes());
            prefix.push(flag);
            prefix.extend_from_slice(&opk_id.to_be_bytes());
            // PQXDH (type 0x03): every initial message repeats the PQ prekey id and CT.
            match &kem {
                Some((pq_id, ciphertext, _)) => {
                    assert_eq!(num(f, "post_quantum_prekey_id"), *pq_id);
                    assert_eq!(&bytes(f, "kem_ciphertext"), ciphertext);
                    prefix.extend_from_slice(&pq_id.to_be_bytes());
                    prefix.extend_from_slice(ciphertext);
                }
                None => assert!(f.get("kem_ciphertext").is_none()),
            }
        }
        let header = cat(&[
            &b32(m, "ratchet_public"),
            &u32::try_from(num(m, "pn")).unwrap().to_be_bytes(),
            &u32::try_from(n).unwrap().to_be_bytes(),
        ]);
        if he {
            // HENCRYPT(HKs, DHs || PN || N, AAD_h = AD || the framing) (SPEC.md §4.8),
            // under the header key of the message's chain, with the drawn nonce.
            let h = &m["sealed_header"];
            let hk = &chain_header_keys[usize::try_from(step).unwrap()];
            assert_eq!(&bytes(h, "header_key"), hk, "{name}: message {i} HKs");
            assert_eq!(bytes(h, "plaintext"), header, "{name}: message {i} header");
            let aad_h = cat(&[&ad, &prefix]);
            assert_eq!(bytes(h, "aad"), aad_h, "{name}: message {i} AAD_h");
            let header_nonce = bytes(h, "nonce");
            let encrypted = siv(hk)
                .encrypt(
                    &nonce(&header_nonce),
                    Payload {
                        msg: &header,
                        aad: &aad_h,
                    },
                )
                .unwrap();
            assert_eq!(
                encrypted[..40],
                bytes(h, "encrypted_header")[..],
                "{name}: message {i} encrypted header"
            );
            assert_eq!(
                encrypted[40..],
                bytes(h, "tag")[..],
                "{name}: message {i} header tag"
            );
            let sealed_header = cat(&[&header_nonce, &encrypted]);
            assert_eq!(sealed_header.len(), SEALED_HEADER_LENGTH);
            assert_eq!(bytes(h, "sealed"), sealed_header, "{name}: message {i}");
            prefix.extend_from_slice(&sealed_header);
        } else {
            assert!(m.get("sealed_header").is_none(), "{name}");
            prefix.extend_from_slice(&header);
        }
        assert_eq!(prefix, bytes(m, "prefix"), "{name}: message {i} prefix");
        let aad = cat(&[&ad, &prefix]);
        assert_eq!(aad, bytes(m, "aad"), "{name}: message {i} AAD");

        let pt = bytes(m, "plaintext");
        assert_eq!(pt, text(m, "plaintext_utf8").as_bytes());
        // encode(pt, the sender's policy) (SPEC.md §4.9), then
        // ENCRYPT = AES-256-GCM-SIV(mk, 0x00^12, AAD, encoded) (SPEC.md §4.1).
        let own = if sender == "alice" {
            s.alice_padding
        } else {
            s.bob_padding
        };
        assert_eq!(
            policy(text(m, "padding")),
            own,
            "{name}: message {i} policy"
        );
        let encoded = encode(&pt, own);
        assert_eq!(
            encoded,
            bytes(m, "encoded_plaintext"),
            "{name}: message {i} encoded plaintext"
        );
        assert_eq!(decode(&encoded), Some(pt.clone()), "{name}: message {i}");
        let sealed = message_seal(&mk, &aad, &encoded);
        let (ct, tag) = sealed.split_at(encoded.len());
        assert_eq!(
            ct,
            &bytes(m, "ciphertext")[..],
            "{name}: message {i} ciphertext"
        );
        assert_eq!(tag, &bytes(m, "tag")[..], "{name}: message {i} tag");
        assert_eq!(
            cat(&[&prefix, &sealed]),
            bytes(m, "bytes"),
            "{name}: message {i}"
        );
        let opened = message_open(&mk, &aad, &sealed).unwrap();
        assert_eq!(decode(&opened), Some(pt));
    }
    // Until Alice has decrypted a reply, her messages are initial (SPEC.md §6.2).
    let mut alice_has_reply = false;
    for (op, party, i) in &s.events {
        let kind = text(&messages[*i], "kind");
        match (op.as_str(), party.as_str()) {
            ("encrypt", "alice") => assert_eq!(
                kind,
                if alice_has_reply { "normal" } else { "initial" },
                "{name}: message {i} kind"
            ),
            ("decrypt", "alice") => alice_has_reply = true,
            _ => {}
        }
    }
    if he {
        check_header_key_states(name, v, &s, &spk_pub);
    }
}

/// One party's header-key state in the simulation of SPEC.md §4.8 ([DR] §4): the four
/// header keys, the ratchet keys, whether each chain exists, `Nr`, the stored
/// `(header key, ratchet key)` pairs and the indices `(ratchet key, N)` of `MKSKIPPED`.
#[derive(Clone)]
struct HeParty {
    hks: Option<Vec<u8>>,
    hkr: Option<Vec<u8>>,
    nhks: Vec<u8>,
    nhkr: Vec<u8>,
    dhs: [u8; 32],
    dhr: Option<[u8; 32]>,
    sending: bool,
    receiving: bool,
    nr: u32,
    pairs: Vec<(Vec<u8>, [u8; 32])>,
    skipped: Vec<([u8; 32], u32)>,
}

/// `HDECRYPT(hk, sealed, AAD_h)`: `(dh, pn, n)` if the header authenticates under `hk`.
fn open_header(hk: &[u8], sealed: &[u8], aad_h: &[u8]) -> Option<([u8; 32], u32, u32)> {
    let header = siv(hk)
        .decrypt(
            &nonce(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad: aad_h,
            },
        )
        .ok()?;
    let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    Some((header[..32].try_into().unwrap(), word(32), word(36)))
}

/// Replays the events with an independent simulation of the header-key state (SPEC.md §4.8,
/// opening every sealed header by trial decryption in the order stored pairs, `HKr`,
/// `NHKr`) and compares it with `header_encryption.states`. The root steps and messages
/// have been checked already; the simulation takes `KDF_RK_HE`'s third output from the root
/// step whose sender key the header carries.
fn check_header_key_states(name: &str, v: &Value, s: &Script, spk_pub: &[u8; 32]) {
    let h = &v["header_encryption"];
    let (hka, nhkb) = (bytes(h, "hka"), bytes(h, "nhkb"));
    let roots = arr(v, "root_steps");
    let messages = arr(v, "messages");
    let states = arr(h, "states");
    assert_eq!(
        states.len(),
        s.events.len() + 1,
        "{name}: one state per event"
    );
    let root_of = |sender_key: &[u8; 32]| {
        roots
            .iter()
            .find(|r| &b32(r, "sender_ratchet_public") == sender_key)
            .unwrap_or_else(|| panic!("{name}: no root step for a ratchet key"))
    };
    // RatchetInitAliceHE: HKs = HKA, NHKr = NHKB, (RK, CKs, NHKs) = KDF_RK_HE(SK, DH(DHs, SPK_B)).
    let first = &roots[0];
    let mut parties: BTreeMap<&str, HeParty> = BTreeMap::new();
    parties.insert(
        "alice",
        HeParty {
            hks: Some(hka.clone()),
            hkr: None,
            nhks: bytes(first, "next_header_key"),
            nhkr: nhkb.clone(),
            dhs: b32(first, "sender_ratchet_public"),
            dhr: Some(*spk_pub),
            sending: true,
            receiving: false,
            nr: 0,
            pairs: Vec::new(),
            skipped: Vec::new(),
        },
    );
    let compare = |p: &HeParty, opened: Option<String>, state: &Value, what: &str| {
        assert_eq!(
            state["opened_with"].as_str().map(str::to_owned),
            opened,
            "{name}: {what}: opened with"
        );
        let listed = StoredHe::listed(state);
        assert_eq!(listed.hks, p.hks, "{name}: {what}: HKs");
        assert_eq!(listed.hkr, p.hkr, "{name}: {what}: HKr");
        assert_eq!(listed.nhks, p.nhks, "{name}: {what}: NHKs");
        assert_eq!(listed.nhkr, p.nhkr, "{name}: {what}: NHKr");
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = p
            .pairs
            .iter()
            .map(|(hk, dh)| (hk.clone(), dh.to_vec()))
            .collect();
        assert_eq!(listed.pairs, pairs, "{name}: {what}: stored header keys");
        let skipped: Vec<(Vec<u8>, u32)> = listed
            .skipped
            .iter()
            .map(|(dh, n, _)| (dh.clone(), *n))
            .collect();
        let expected: Vec<(Vec<u8>, u32)> =
            p.skipped.iter().map(|(dh, n)| (dh.to_vec(), *n)).collect();
        assert_eq!(skipped, expected, "{name}: {what}: MKSKIPPED");
        // Each stored key is the message key of the message it was skipped over.
        for (dh, n, mk) in &listed.skipped {
            let m = messages
                .iter()
                .find(|m| &bytes(m, "ratchet_public") == dh && num(m, "n") == u64::from(*n))
                .unwrap();
            assert_eq!(mk, &bytes(m, "message_key"), "{name}: {what}: skipped key");
        }
    };
    assert!(states[0]["after_event"].is_null());
    assert_eq!(text(&states[0], "party"), "alice");
    compare(&parties["alice"], None, &states[0], "after setup");

    for (step, (op, party, i)) in s.events.iter().enumerate() {
        let m = &messages[*i];
        let sealed = bytes(&m["sealed_header"], "sealed");
        let aad_h = bytes(&m["sealed_header"], "aad");
        let header = (
            b32(m, "ratchet_public"),
            u32::try_from(num(m, "pn")).unwrap(),
            u32::try_from(num(m, "n")).unwrap(),
        );
        if matches!(op.as_str(), "respond" | "accept") {
            // RatchetInitBobHE: DHs = SPK_B, NHKs = NHKB, NHKr = HKA.
            parties.insert(
                "bob",
                HeParty {
                    hks: None,
                    hkr: None,
                    nhks: nhkb.clone(),
                    nhkr: hka.clone(),
                    dhs: *spk_pub,
                    dhr: None,
                    sending: false,
                    receiving: false,
                    nr: 0,
                    pairs: Vec::new(),
                    skipped: Vec::new(),
                },
            );
        }
        let p = parties.get_mut(party.as_str()).unwrap();
        let mut opened = None;
        if op == "encrypt" {
            if !p.sending {
                // The deferred half of DHRatchetHE: (RK, CKs, NHKs) = KDF_RK_HE(..).
                let root = root_of(&header.0);
                assert_eq!(text(root, "sender"), party, "{name}: event {step}");
                assert_eq!(
                    Some(b32(root, "receiver_ratchet_public")),
                    p.dhr,
                    "{name}: event {step}: DH with DHr"
                );
                p.nhks = bytes(root, "next_header_key");
                p.dhs = header.0;
                p.sending = true;
            }
            assert_eq!(header.0, p.dhs, "{name}: event {step}: DHs");
            assert_eq!(
                Some(bytes(&m["sealed_header"], "header_key")),
                p.hks,
                "{name}: event {step}: sealed under HKs"
            );
        } else {
            // 1. Stored pairs, oldest first; 2. HKr; 3. NHKr.
            let from_pair = p.pairs.iter().enumerate().find_map(|(j, (hk, dh))| {
                open_header(hk, &sealed, &aad_h).map(|opened| (j, *dh, opened))
            });
            let mut staged: Vec<(Vec<u8>, [u8; 32])> = Vec::new();
            let (dh, pn, n) = header;
            let stored = from_pair
                .as_ref()
                .and_then(|(_, _, (d, _, k))| p.skipped.iter().position(|e| *e == (*d, *k)));
            let chain = if let (Some((j, pair_dh, got)), Some(at)) = (&from_pair, stored) {
                assert_eq!(*got, header, "{name}: event {step}: header");
                assert_eq!(*pair_dh, dh);
                opened = Some(format!("skipped_header_key_{j}"));
                p.skipped.remove(at);
                None
            } else if let Some((j, pair_dh, got)) = &from_pair {
                // Its key is not stored: a later message of the current chain.
                assert_eq!(*got, header, "{name}: event {step}: header");
                assert_eq!(*pair_dh, dh);
                opened = Some(format!("skipped_header_key_{j}"));
                Some(false)
            } else if let Some(got) = p
                .hkr
                .as_ref()
                .and_then(|hk| open_header(hk, &sealed, &aad_h))
            {
                assert_eq!(got, header, "{name}: event {step}: header");
                opened = Some("HKr".into());
                Some(false)
            } else {
                let got = open_header(&p.nhkr, &sealed, &aad_h)
                    .unwrap_or_else(|| panic!("{name}: event {step}: no header key opens it"));
                assert_eq!(got, header, "{name}: event {step}: header");
                opened = Some("NHKr".into());
                Some(true)
            };
            if let Some(next) = chain {
                assert_eq!(p.dhr == Some(dh), !next, "{name}: event {step}: chain");
                if next {
                    // SkipMessageKeysHE(PN) on the ending chain, then DHRatchetHE.
                    if p.receiving && pn > p.nr {
                        let old = p.dhr.unwrap();
                        p.skipped.extend((p.nr..pn).map(|k| (old, k)));
                        if let Some(hkr) = &p.hkr {
                            staged.push((hkr.clone(), old));
                        }
                    }
                    let root = root_of(&dh);
                    assert_eq!(b32(root, "receiver_ratchet_public"), p.dhs, "{name}");
                    p.hks = Some(p.nhks.clone());
                    p.hkr = Some(std::mem::replace(
                        &mut p.nhkr,
                        bytes(root, "next_header_key"),
                    ));
                    p.sending = false;
                    p.receiving = true;
                    p.dhr = Some(dh);
                    p.nr = 0;
                }
                assert!(n >= p.nr, "{name}: event {step}: a duplicate");
                if n > p.nr {
                    p.skipped.extend((p.nr..n).map(|k| (dh, k)));
                    staged.push((p.hkr.clone().unwrap(), dh));
                }
                p.nr = n + 1;
            }
            for (hk, dh) in staged {
                if !p.pairs.iter().any(|(_, d)| *d == dh) {
                    p.pairs.push((hk, dh));
                }
            }
            assert!(p.pairs.len() <= 32);
            let skipped = p.skipped.clone();
            p.pairs.retain(|(_, d)| skipped.iter().any(|(e, _)| e == d));
        }
        let state = &states[step + 1];
        assert_eq!(num(state, "after_event"), step as u64, "{name}");
        assert_eq!(text(state, "party"), party, "{name}: event {step}");
        compare(
            &parties[party.as_str()],
            opened,
            state,
            &format!("after event {step}"),
        );
    }
}

/// (c) Every rejection case of one file fails with its expected error and changes nothing.
/// Every case is run, and all failing cases are reported together.
fn check_reject_file(file: &str) {
    let files = load_all();
    let reject = load(file, "reject").unwrap();
    let cases = arr(&reject, "cases");
    assert!(cases.len() >= 10, "{file}");
    let required: &[&str] = if file.contains("_he_") {
        &[
            "header_nonce_bit_flipped",
            "header_ciphertext_bit_flipped",
            "header_tag_bit_flipped",
            "body_tag_bit_flipped",
            "body_without_end_marker",
            "he_message_to_plain_session",
            "plain_message_to_he_session",
            "replayed_current_chain_message",
            "unsupported_version",
            "truncated",
        ]
    } else if file.contains("pqxdh") {
        &[
            "kem_ciphertext_bit_flipped",
            "pq_bundle_signature",
            "kem_key_coefficient",
            "unknown_pq_prekey",
            "body_without_end_marker",
            "n_too_far_ahead",
            "truncated",
        ]
    } else {
        &[
            "tag_bit_flipped",
            "wrong_ad",
            "truncated",
            "low_order_ratchet_key",
            "bundle_signature",
            "body_without_end_marker",
            "body_all_zero",
            "body_empty",
            "unsupported_version",
            "initial_n_too_far_ahead",
            "skipped_key_body_without_end_marker",
        ]
    };
    for required in required {
        assert!(
            cases.iter().any(|c| text(c, "name").contains(required)),
            "{file}: no {required} case"
        );
    }
    let mut names = std::collections::BTreeSet::new();
    let mut failed = Vec::new();
    let mut checked = 0;
    for case in &cases {
        let name = text(case, "name");
        assert!(
            names.insert(name.to_owned()),
            "{file}: duplicate case {name}"
        );
        let base = &files[text(case, "base_vector")];
        assert_eq!(text(base, "kind"), "conversation", "{file}: {name}: base");
        if is_pqxdh(base) && !cfg!(feature = "pqxdh") {
            continue;
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_reject_case(name, case, base);
        }));
        if run.is_err() {
            failed.push(name.to_owned());
        }
        checked += 1;
    }
    assert!(failed.is_empty(), "{file}: failing cases {failed:?}");
    assert!(checked >= 10 || !cfg!(feature = "pqxdh"), "{file}");
}

fn check_reject_case(name: &str, case: &Value, base: &Value) {
    let s = Script::from(base);
    let after = usize::try_from(num(case, "after_events")).unwrap();
    let input = bytes(case, "input");
    let expected = text(case, "expected_error");
    let mut world = World::replay(&s, after);
    let operation = text(case, "operation");
    let result = match operation {
        "initiate" => {
            let mut rng = ChaCha20Rng::seed_from_u64(s.alice_seed);
            let alice = IdentityKeyPair::generate(&mut rng).unwrap();
            PreKeyBundle::from_bytes(&input)
                .and_then(|b| Session::initiate(&alice, &b, &mut rng))
                .map(|_| ())
        }
        "respond" => world.respond(&input).map(|_| ()),
        "accept" => world.accept(&input).map(|_| ()),
        "decrypt" => world
            .session(text(case, "party"))
            .decrypt(&input)
            .map(|_| ()),
        other => panic!("{name}: unknown operation {other}"),
    };
    let got = match result {
        Ok(()) => "accepted".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    assert_eq!(got, expected, "reject case {name}");
    if let Some(i) = case["then_decrypts"].as_u64() {
        let i = usize::try_from(i).unwrap();
        let genuine = world.wire[i].clone().unwrap();
        let pt = match operation {
            // The failed accept changed nothing: the store still accepts the genuine message.
            "accept" => world.accept(&genuine).unwrap().plaintext,
            // The failed respond changed nothing: Bob still accepts the genuine message.
            "respond" => world.respond(&genuine).unwrap().1,
            _ => world
                .session(text(case, "party"))
                .decrypt(&genuine)
                .unwrap(),
        };
        assert_eq!(
            pt, s.plaintexts[i],
            "{name}: genuine message {i} after the failure"
        );
    }
}

/// Alice's first sending chain in a conversation file's setup: her messages' keys, derived
/// here from root step 0's chain key, open her messages (type `0x02`, 123-byte prefix).
struct AliceChain {
    ad: Vec<u8>,
    ck: Vec<u8>,
    n: u32,
}

impl AliceChain {
    fn of(base: &Value) -> Self {
        AliceChain {
            ad: bytes(&base["x3dh"], "ad"),
            ck: bytes(&arr(base, "root_steps")[0], "chain_key"),
            n: 0,
        }
    }

    /// The encoded plaintext of Alice's next message (KDF_CK, then DECRYPT).
    fn open(&mut self, wire: &[u8]) -> Vec<u8> {
        assert_eq!(wire[..2], [WIRE_VERSION, 0x02], "an initial message");
        let parsed = Message::parse(wire).unwrap();
        assert_eq!(parsed.message_number(), Some(self.n));
        let mk = hmac(&self.ck, &[0x01]);
        self.ck = hmac(&self.ck, &[0x02]);
        self.n += 1;
        let aad = cat(&[&self.ad, &wire[..INITIAL_PREFIX]]);
        message_open(&mk, &aad, &wire[INITIAL_PREFIX..])
            .expect("opens under the derived message key")
    }
}

/// (d) The plaintext encoding of SPEC.md §4.9 (v2), recomputed and checked through the
/// library.
fn check_padding_file(file: &str) {
    let v = load(file, "padding").unwrap();
    // Without the pqxdh feature, the parts based on a PQXDH file are skipped.
    let supported = |base: &Value| cfg!(feature = "pqxdh") || !is_pqxdh(base);
    let files = load_all();
    let c = &v["constants"];
    assert_eq!(bytes(c, "end_marker"), [END_MARKER]);
    assert_eq!(num(c, "padme_minimum"), PADME_MINIMUM as u64);
    assert_eq!(num(c, "max_message_size"), MAX_MESSAGE_SIZE as u64);
    assert_eq!(
        num(c, "max_encoded_plaintext"),
        num(c, "max_message_size") - num(c, "longest_prefix") - num(c, "tag_length")
    );
    assert_eq!(num(c, "longest_prefix"), LONGEST_PREFIX as u64);
    assert_eq!(num(c, "tag_length"), 16);
    assert_eq!(
        num(c, "max_encoded_plaintext"),
        MAX_ENCODED_PLAINTEXT as u64
    );
    assert_eq!(num(c, "max_plaintext_size"), MAX_PLAINTEXT_SIZE as u64);
    assert_eq!(MAX_PLAINTEXT_SIZE, 1_047_312);
    assert_eq!(MAX_PLAINTEXT_SIZE, doubleratchet::MAX_PLAINTEXT_SIZE);

    // Plaintext length -> encoded length, through Alice's session of the base.
    let eb = &v["encode_base"];
    let base = &files[text(eb, "base_vector")];
    let byte = bytes(eb, "plaintext_byte")[0];
    let s = Script::from(base);
    let mut world = World::setup(&s);
    let mut chain = AliceChain::of(base);
    let lengths = arr(&v, "lengths");
    for edge in [0, 62, 63, 64, 65, MAX_PLAINTEXT_SIZE] {
        assert!(
            lengths
                .iter()
                .any(|r| num(r, "plaintext_length") == edge as u64),
            "{file}: no {edge}-byte plaintext"
        );
    }
    for row in &lengths {
        let len = usize::try_from(num(row, "plaintext_length")).unwrap();
        let l = len + 1;
        assert_eq!(num(row, "l"), l as u64);
        let input = l.max(PADME_MINIMUM);
        assert_eq!(num(row, "padme_input"), input as u64);
        let (e, s_, z, padded) = padme(input);
        assert_eq!(num(row, "e"), u64::from(e), "{file}: {len}: E");
        assert_eq!(num(row, "s"), u64::from(s_), "{file}: {len}: S");
        assert_eq!(num(row, "z"), u64::from(z), "{file}: {len}: z");
        assert_eq!(num(row, "padme"), padded as u64, "{file}: {len}: padme");
        let pt = vec![byte; len];
        for (p, key) in [
            (Padding::Padme, "encoded_length_padme"),
            (Padding::None, "encoded_length_none"),
        ] {
            let expected = encode(&pt, p);
            assert_eq!(num(row, key), expected.len() as u64, "{file}: {len}: {key}");
            world.alice.set_padding(p);
            let wire = world.alice.encrypt(&pt, &mut world.alice_rng).unwrap();
            assert_eq!(
                wire.len(),
                INITIAL_PREFIX + expected.len() + 16,
                "{file}: {len}: {key}"
            );
            assert!(
                chain.open(&wire) == expected,
                "{file}: {len}: {key}: encoded"
            );
        }
    }

    // TooLarge changes nothing and draws nothing.
    for case in arr(&v, "too_large") {
        let what = text(&case, "description");
        let base = &files[text(&case, "base_vector")];
        if !supported(base) {
            continue;
        }
        let s = Script::from(base);
        let mut world = World::replay(&s, usize::try_from(num(&case, "after_events")).unwrap());
        let party = text(&case, "party");
        let session = world.session(party);
        let own = session.padding();
        session.set_padding(policy(text(&case, "policy")));
        let len = usize::try_from(num(&case, "plaintext_length")).unwrap();
        assert_eq!(len, MAX_PLAINTEXT_SIZE + 1);
        let (session, rng) = match party {
            "alice" => (&mut world.alice, &mut world.alice_rng),
            _ => (world.bob.as_mut().unwrap(), &mut world.bob_rng),
        };
        let got = session.encrypt(&vec![byte; len], rng).map(|_| ());
        assert_eq!(
            got.map_err(|e| format!("{e:?}")),
            Err(text(&case, "expected_error").to_owned()),
            "{file}: {what}"
        );
        session.set_padding(own);
        let i = usize::try_from(num(&case, "then_encrypts")).unwrap();
        let next = session.encrypt(&s.plaintexts[i], rng).unwrap();
        assert_eq!(
            next,
            bytes(&arr(base, "messages")[i], "bytes"),
            "{file}: {what}: the next message"
        );
    }

    // Encode examples: the first message of a fresh session, opened with message 0's key.
    let m0 = &arr(base, "messages")[0];
    for example in arr(&v, "encode_examples") {
        let p = policy(text(&example, "policy"));
        let pt = bytes(&example, "plaintext");
        let encoded = bytes(&example, "encoded");
        assert_eq!(encode(&pt, p), encoded, "{file}: encode example");
        assert_eq!(decode(&encoded), Some(pt.clone()));
        let mut world = World::setup(&s);
        world.alice.set_padding(p);
        let wire = world.alice.encrypt(&pt, &mut world.alice_rng).unwrap();
        assert_eq!(wire[..INITIAL_PREFIX], bytes(m0, "prefix")[..]);
        assert_eq!(
            message_open(
                &bytes(m0, "message_key"),
                &bytes(m0, "aad"),
                &wire[INITIAL_PREFIX..]
            ),
            Some(encoded),
            "{file}: encode example through the library"
        );
    }

    // Decode examples, through a base message re-encrypted under its own key.
    let db = &v["decode_base"];
    let base = &files[text(db, "base_vector")];
    let s = Script::from(base);
    let i = usize::try_from(num(db, "message")).unwrap();
    let m = &arr(base, "messages")[i];
    let party = text(db, "party");
    let after = usize::try_from(num(db, "after_events")).unwrap();
    for example in arr(&v, "decode_examples") {
        let name = text(&example, "name");
        let encoded = bytes(&example, "encoded");
        let expected = example["plaintext"].as_str().map(decode_hex);
        assert_eq!(decode(&encoded), expected, "{file}: decode example {name}");
        assert_eq!(
            example["expected_error"].as_str(),
            expected.is_none().then_some("DecryptionFailed"),
            "{file}: {name}"
        );
        let input = cat(&[
            &bytes(m, "prefix"),
            &message_seal(&bytes(m, "message_key"), &bytes(m, "aad"), &encoded),
        ]);
        let mut world = World::replay(&s, after);
        let got = world.session(party).decrypt(&input);
        match expected {
            Some(pt) => assert_eq!(got.unwrap(), pt, "{file}: decode example {name}"),
            None => {
                assert_eq!(
                    got.map_err(|e| format!("{e:?}")),
                    Err("DecryptionFailed".to_owned()),
                    "{file}: decode example {name}"
                );
                assert_eq!(
                    world.session(party).decrypt(&bytes(m, "bytes")).unwrap(),
                    s.plaintexts[i],
                    "{file}: decode example {name}: the genuine message after it"
                );
            }
        }
    }

    // The stored padding byte (SPEC.md §7.1, v2).
    for stored in arr(&v, "stored_sessions") {
        let base = &files[text(&stored, "base_vector")];
        if !supported(base) {
            continue;
        }
        let s = Script::from(base);
        let session = bytes(&stored, "session");
        let what = format!("{file}: {}", text(&stored, "description"));
        assert_eq!(session.len() as u64, num(&stored, "length"), "{what}");
        assert_eq!(session[1..2], bytes(&stored, "stored_type")[..], "{what}");
        let offset = stored_padding_offset(&session);
        assert_eq!(offset as u64, num(&stored, "padding_offset"), "{what}");
        let p = policy(text(&stored, "policy"));
        assert_eq!(session[offset], policy_byte(p), "{what}");
        // 305 bytes (u64 prekey ids; v2 part 1: 297) plus 68 per skipped key; a PQXDH
        // initiator awaiting its reply 1401; header-encrypted without skipped keys
        // 305 + 135 = 440.
        match (session[1], offset) {
            (0x20, 125) => assert!(
                session.len() >= 305 && (session.len() - 305).is_multiple_of(68),
                "{what}: length"
            ),
            (0x25, 1221) => assert_eq!(session.len(), 1401, "{what}: length"),
            (0x28, 126) => assert_eq!(session.len(), 440, "{what}: length"),
            other => panic!("{what}: {other:?}"),
        }
        let mut world = World::replay(&s, usize::try_from(num(&stored, "after_events")).unwrap());
        let party = text(&stored, "party");
        assert!(
            world.session(party).to_bytes()[..] == session[..],
            "{what}: the library's stored session"
        );
        let loaded = Session::from_bytes(&session).unwrap();
        assert_eq!(loaded.padding(), p, "{what}");
        assert!(loaded.to_bytes()[..] == session[..], "{what}: round trip");
        for rejected in arr(&stored, "rejected") {
            let at = usize::try_from(num(&rejected, "offset")).unwrap();
            let mut input = session.clone();
            input[at] = bytes(&rejected, "byte")[0];
            assert_eq!(
                Session::from_bytes(&input)
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                Err(text(&rejected, "expected_error").to_owned()),
                "{what}: {}",
                text(&rejected, "name")
            );
        }
    }

    // The longest plaintext in the longest framing: exactly MAX_MESSAGE_SIZE bytes.
    let lm = &v["longest_message"];
    let base = &files[text(lm, "base_vector")];
    if !supported(base) {
        eprintln!("{file}: the longest message is a PQXDH one, skipped without the pqxdh feature");
    } else {
        check_longest_message(file, &v, lm, base);
    }
}

/// The longest message of the padding file: the base's first message with the longest
/// plaintext, recomputed, produced by the library, and accepted by Bob's prekey store.
fn check_longest_message(file: &str, v: &Value, lm: &Value, base: &Value) {
    let c = &v["constants"];
    let s = Script::from(base);
    let q0 = &arr(base, "messages")[0];
    let prefix = bytes(q0, "prefix");
    assert_eq!(prefix.len() as u64, num(c, "longest_prefix"));
    let len = usize::try_from(num(lm, "plaintext_length")).unwrap();
    assert_eq!(len, MAX_PLAINTEXT_SIZE);
    let pt = vec![bytes(lm, "plaintext_byte")[0]; len];
    let encoded = encode(&pt, policy(text(lm, "policy")));
    assert_eq!(encoded.len() as u64, num(lm, "encoded_length"));
    let wire = cat(&[
        &prefix,
        &message_seal(&bytes(q0, "message_key"), &bytes(q0, "aad"), &encoded),
    ]);
    assert_eq!(wire.len() as u64, num(lm, "message_length"));
    assert_eq!(wire.len(), MAX_MESSAGE_SIZE);
    assert_eq!(Sha256::digest(&wire).to_vec(), bytes(lm, "message_sha256"));
    let mut world = World::setup(&s);
    let library = world.alice.encrypt(&pt, &mut world.alice_rng).unwrap();
    assert!(library == wire, "{file}: the library's longest message");
    assert!(
        world.accept(&wire).unwrap().plaintext == pt,
        "{file}: the longest message decrypts"
    );
}

// ---------------------------------------------------------------------------------------
// The prekey store (profile v2 part 2: SPEC.md §2.5 id draws, §7.5 type 0x24, §8.3)
// ---------------------------------------------------------------------------------------

#[test]
fn prekey_store_v2() {
    #[cfg(feature = "pqxdh")]
    store_check::check_store_file("prekey_store_v2.json");
    #[cfg(not(feature = "pqxdh"))]
    check_store_file("prekey_store_v2.json");
}

#[cfg(not(feature = "pqxdh"))]
fn check_store_file(file: &str) {
    let _ = load(file, "prekey_store").unwrap();
    eprintln!("{file}: its store holds post-quantum prekeys, skipped without the pqxdh feature");
}

/// The prekey store file's checks (its store holds post-quantum prekeys).
#[cfg(feature = "pqxdh")]
mod store_check {
    use super::*;

    /// Reads a stored object field by field.
    struct Cursor<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> &'a [u8] {
            let out = &self.b[self.at..self.at + n];
            self.at += n;
            out
        }

        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }

        fn u32(&mut self) -> u32 {
            u32::from_be_bytes(self.take(4).try_into().unwrap())
        }

        fn u64(&mut self) -> u64 {
            u64::from_be_bytes(self.take(8).try_into().unwrap())
        }

        fn a32(&mut self) -> [u8; 32] {
            self.take(32).try_into().unwrap()
        }
    }

    /// An accepted signed prekey: secret, signature, replay records in order.
    type SignedEntry = ([u8; 32], Vec<u8>, Vec<[u8; 32]>);
    /// A post-quantum prekey: sequence, kind byte, seed, signature.
    type PqEntry = (u64, u8, Vec<u8>, Vec<u8>);

    /// A prekey store as SPEC.md §7.5 (type `0x24`) stores it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct StoreState {
        capacity: u32,
        next_sequence: u64,
        current: u64,
        /// Accepted signed prekeys: id -> (secret, signature, replay records in order).
        signed: BTreeMap<u64, SignedEntry>,
        /// `(id, secret, signature)`.
        standby: Option<(u64, [u8; 32], Vec<u8>)>,
        /// id -> (sequence, secret).
        one_time: BTreeMap<u64, (u64, [u8; 32])>,
        pq_last_resort: Option<u64>,
        /// id -> (sequence, kind byte, seed, signature).
        pq: BTreeMap<u64, PqEntry>,
    }

    impl StoreState {
        /// Parses a valid stored store, asserting every rule of SPEC.md §7.5.
        fn parse(b: &[u8]) -> Self {
            let mut r = Cursor { b, at: 0 };
            assert_eq!(r.take(2), [STORAGE_VERSION, 0x24], "store version and type");
            let capacity = r.u32();
            assert!((1..=1024).contains(&capacity), "replay capacity");
            let next_sequence = r.u64();
            let current = r.u64();
            let s = r.u32();
            assert!((1..=16).contains(&s), "s");
            let mut signed = BTreeMap::new();
            let mut last = 0u64;
            for _ in 0..s {
                assert_eq!(r.take(2), [STORAGE_VERSION, 0x22]);
                let id = r.u64();
                assert!(id > last, "signed prekey ids: never 0, increasing");
                last = id;
                let secret = r.a32();
                let signature = r.take(64).to_vec();
                let count = r.u32();
                assert!(count <= 1024);
                let records: Vec<[u8; 32]> = (0..count).map(|_| r.a32()).collect();
                assert!(records.windows(2).all(|w| w[0] < w[1]), "records increase");
                signed.insert(id, (secret, signature, records));
            }
            assert!(signed.contains_key(&current), "the current id is held");
            let standby = match r.u8() {
                0 => {
                    assert!(r.take(106).iter().all(|x| *x == 0));
                    None
                }
                1 => {
                    assert_eq!(r.take(2), [STORAGE_VERSION, 0x22]);
                    let id = r.u64();
                    assert!(id != 0 && !signed.contains_key(&id), "standby id");
                    Some((id, r.a32(), r.take(64).to_vec()))
                }
                other => panic!("standby flag {other}"),
            };
            assert!(signed.len() + usize::from(standby.is_some()) <= 16);
            let mut sequences = std::collections::BTreeSet::new();
            let t = r.u32();
            let mut one_time = BTreeMap::new();
            let mut last = 0u64;
            for _ in 0..t {
                let sequence = r.u64();
                assert_eq!(r.take(2), [STORAGE_VERSION, 0x23]);
                let id = r.u64();
                assert!(id > last, "one-time prekey ids: never 0, increasing");
                last = id;
                assert!(sequence < next_sequence && sequences.insert(sequence));
                one_time.insert(id, (sequence, r.a32()));
            }
            let pq_last_resort = match r.u8() {
                0 => {
                    assert_eq!(r.u64(), 0);
                    None
                }
                1 => Some(r.u64()),
                other => panic!("last-resort flag {other}"),
            };
            let q = r.u32();
            let mut pq = BTreeMap::new();
            let mut last = 0u64;
            for _ in 0..q {
                let sequence = r.u64();
                assert_eq!(r.take(2), [STORAGE_VERSION, 0x26]);
                let id = r.u64();
                assert!(id > last, "post-quantum prekey ids: never 0, increasing");
                last = id;
                assert!(sequence < next_sequence && sequences.insert(sequence));
                let kind = r.u8();
                assert!(kind == 0x01 || kind == 0x02);
                pq.insert(
                    id,
                    (sequence, kind, r.take(64).to_vec(), r.take(64).to_vec()),
                );
            }
            if let Some(id) = pq_last_resort {
                assert_eq!(pq[&id].1, 0x02, "the current last-resort id names one");
            }
            assert_eq!(r.at, b.len(), "store length");
            StoreState {
                capacity,
                next_sequence,
                current,
                signed,
                standby,
                one_time,
                pq_last_resort,
                pq,
            }
        }

        /// The encoding (SPEC.md §7.5): the inverse of [`StoreState::parse`].
        fn encode(&self) -> Vec<u8> {
            let mut out = vec![STORAGE_VERSION, 0x24];
            out.extend_from_slice(&self.capacity.to_be_bytes());
            out.extend_from_slice(&self.next_sequence.to_be_bytes());
            out.extend_from_slice(&self.current.to_be_bytes());
            out.extend_from_slice(&(self.signed.len() as u32).to_be_bytes());
            for (id, (secret, signature, records)) in &self.signed {
                out.extend_from_slice(&[STORAGE_VERSION, 0x22]);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(secret);
                out.extend_from_slice(signature);
                out.extend_from_slice(&(records.len() as u32).to_be_bytes());
                records.iter().for_each(|r| out.extend_from_slice(r));
            }
            match &self.standby {
                Some((id, secret, signature)) => {
                    out.extend_from_slice(&[0x01, STORAGE_VERSION, 0x22]);
                    out.extend_from_slice(&id.to_be_bytes());
                    out.extend_from_slice(secret);
                    out.extend_from_slice(signature);
                }
                None => out.extend_from_slice(&[0u8; 107]),
            }
            out.extend_from_slice(&(self.one_time.len() as u32).to_be_bytes());
            for (id, (sequence, secret)) in &self.one_time {
                out.extend_from_slice(&sequence.to_be_bytes());
                out.extend_from_slice(&[STORAGE_VERSION, 0x23]);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(secret);
            }
            out.push(u8::from(self.pq_last_resort.is_some()));
            out.extend_from_slice(&self.pq_last_resort.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&(self.pq.len() as u32).to_be_bytes());
            for (id, (sequence, kind, seed, signature)) in &self.pq {
                out.extend_from_slice(&sequence.to_be_bytes());
                out.extend_from_slice(&[STORAGE_VERSION, 0x26]);
                out.extend_from_slice(&id.to_be_bytes());
                out.push(*kind);
                out.extend_from_slice(seed);
                out.extend_from_slice(signature);
            }
            out
        }
    }

    /// The store's operations recomputed here from SPEC.md §2.5, §8 and §8.3, drawing from the
    /// listed RNG values: an independent model of `PreKeyStore`.
    struct StoreModel {
        state: StoreState,
        /// Bob's draws not used yet, in order.
        draws: std::collections::VecDeque<Vec<u8>>,
        identity_seed: [u8; 32],
    }

    /// `(kind, previous or id, current)` of a notice, as the file lists it.
    type NoticeTuple = (String, u64, u64);

    impl StoreModel {
        /// An id draw (SPEC.md §2.5): 8 bytes big-endian, drawn again if 0 or `taken`.
        fn draw_id(&mut self, taken: impl Fn(u64) -> bool) -> u64 {
            for _ in 0..16 {
                let bytes = self.draws.pop_front().expect("an id draw");
                let id = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                if id != 0 && !taken(id) {
                    return id;
                }
            }
            panic!("RandomnessUnavailable");
        }

        fn draw<const N: usize>(&mut self) -> [u8; N] {
            self.draws
                .pop_front()
                .expect("a draw")
                .try_into()
                .expect("draw length")
        }

        fn sign(&self, message: &[u8]) -> Vec<u8> {
            SigningKey::from_bytes(&self.identity_seed)
                .sign(message)
                .to_bytes()
                .to_vec()
        }

        /// A signed prekey drawn as `id, secret`.
        fn signed_prekey(&mut self, taken: impl Fn(u64) -> bool) -> (u64, [u8; 32], Vec<u8>) {
            let id = self.draw_id(taken);
            let secret: [u8; 32] = self.draw();
            let signature = self.sign(&cat(&[&[0x05], &x25519_public(&secret)]));
            (id, secret, signature)
        }

        fn signed_taken(state: &StoreState, id: u64) -> bool {
            state.signed.contains_key(&id) || state.standby.as_ref().is_some_and(|s| s.0 == id)
        }

        fn new(identity_seed: [u8; 32], draws: Vec<Vec<u8>>) -> Self {
            let mut model = StoreModel {
                state: StoreState {
                    capacity: 1024,
                    next_sequence: 0,
                    current: 0,
                    signed: BTreeMap::new(),
                    standby: None,
                    one_time: BTreeMap::new(),
                    pq_last_resort: None,
                    pq: BTreeMap::new(),
                },
                draws: draws.into(),
                identity_seed,
            };
            let (id, secret, signature) = model.signed_prekey(|_| false);
            model.state.current = id;
            model
                .state
                .signed
                .insert(id, (secret, signature, Vec::new()));
            model.state.standby = Some(model.signed_prekey(|s| s == id));
            model
        }

        fn generate_one_time(&mut self, n: u64) -> Vec<u64> {
            let mut batch = Vec::new();
            for _ in 0..n {
                let held = self.state.one_time.clone();
                let drawn = batch.clone();
                let id = self.draw_id(|id| held.contains_key(&id) || drawn.contains(&id));
                let secret: [u8; 32] = self.draw();
                let sequence = self.state.next_sequence + batch.len() as u64;
                self.state.one_time.insert(id, (sequence, secret));
                batch.push(id);
            }
            self.state.next_sequence += n;
            batch
        }

        fn generate_pq(&mut self, n: u64, kind: u8) -> Vec<u64> {
            let mut batch = Vec::new();
            for _ in 0..n {
                let held = self.state.pq.clone();
                let drawn = batch.clone();
                let id = self.draw_id(|id| held.contains_key(&id) || drawn.contains(&id));
                let seed: [u8; 64] = self.draw();
                let signature = self.sign(&cat(&[&[0x0A], &kem::public_key(&seed)]));
                let sequence = self.state.next_sequence;
                self.state.next_sequence += 1;
                self.state
                    .pq
                    .insert(id, (sequence, kind, seed.to_vec(), signature));
                batch.push(id);
            }
            if kind == 0x02 {
                self.state.pq_last_resort = batch.last().copied();
            }
            batch
        }

        fn rotate_signed(&mut self) -> u64 {
            let (id, secret, signature) = match self.state.standby.take() {
                Some(standby) => standby,
                None => {
                    let state = self.state.clone();
                    self.signed_prekey(|s| Self::signed_taken(&state, s))
                }
            };
            let state = self.state.clone();
            let standby = self.signed_prekey(|s| s == id || Self::signed_taken(&state, s));
            self.state
                .signed
                .insert(id, (secret, signature, Vec::new()));
            self.state.current = id;
            self.state.standby = Some(standby);
            id
        }

        /// SPEC.md §8.3: the current signed prekey at capacity switches to the standby.
        fn switch_if_full(&mut self) -> Option<NoticeTuple> {
            let previous = self.state.current;
            if self.state.signed[&previous].2.len() < self.state.capacity as usize {
                return None;
            }
            match self.state.standby.take() {
                Some((id, secret, signature)) => {
                    self.state
                        .signed
                        .insert(id, (secret, signature, Vec::new()));
                    self.state.current = id;
                    Some(("signed_prekey_switched".into(), previous, id))
                }
                None => Some(("signed_prekey_full".into(), previous, previous)),
            }
        }

        /// The store's part of `accept` for a genuine initial message (SPEC.md §8, §8.3, §10.1):
        /// `Ok((notice, used one-time, used post-quantum))` or the error.
        #[allow(clippy::type_complexity)]
        fn accept(
            &mut self,
            message: &[u8],
        ) -> Result<(Option<NoticeTuple>, Option<u64>, Option<u64>), String> {
            let word = |at: usize| u64::from_be_bytes(message[at..at + 8].try_into().unwrap());
            let base_key: [u8; 32] = message[34..66].try_into().unwrap();
            let spk = word(66);
            let opk = (message[74] == 0x01).then(|| word(75));
            let pq = (message[1] == 0x03 || message[1] == 0x06).then(|| word(83));
            if !self.state.signed.contains_key(&spk) {
                return Err(format!("UnknownSignedPreKey({spk})"));
            }
            if let Some(id) = opk.filter(|id| !self.state.one_time.contains_key(id)) {
                return Err(format!("UnknownOneTimePreKey({id})"));
            }
            let pq_kind = match pq {
                Some(id) => match self.state.pq.get(&id) {
                    Some(key) => Some(key.1),
                    None => return Err(format!("UnknownPqPreKey({id})")),
                },
                None => None,
            };
            let consumes = opk.is_some() || pq_kind == Some(0x01);
            if !consumes {
                let records = &self.state.signed[&spk].2;
                if records.contains(&base_key) {
                    return Err("DuplicateOrExpired".into());
                }
                if records.len() >= self.state.capacity as usize {
                    return Err("StoreFull".into());
                }
            }
            if let Some(id) = opk {
                self.state.one_time.remove(&id);
            }
            if pq_kind == Some(0x01) {
                self.state.pq.remove(&pq.unwrap());
            }
            if consumes {
                return Ok((None, opk, pq));
            }
            let records = &mut self.state.signed.get_mut(&spk).unwrap().2;
            records.push(base_key);
            records.sort_unstable();
            Ok((self.switch_if_full(), None, pq))
        }
    }

    /// A notice as listed, or `None`.
    fn listed_notice(step: &Value) -> Option<NoticeTuple> {
        let n = &step["notice"];
        if n.is_null() {
            return None;
        }
        match text(n, "kind") {
            "signed_prekey_switched" => Some((
                "signed_prekey_switched".into(),
                num(n, "previous"),
                num(n, "current"),
            )),
            "signed_prekey_full" => Some(("signed_prekey_full".into(), num(n, "id"), num(n, "id"))),
            other => panic!("notice kind {other}"),
        }
    }

    /// The library's notice in the file's terms.
    fn library_notice(n: Option<doubleratchet::StoreNotice>) -> Option<NoticeTuple> {
        use doubleratchet::StoreNotice;
        n.map(|n| match n {
            StoreNotice::SignedPreKeySwitched { previous, current } => {
                ("signed_prekey_switched".into(), previous, current)
            }
            StoreNotice::SignedPreKeyFull { id } => ("signed_prekey_full".into(), id, id),
            other => panic!("unknown notice {other:?}"),
        })
    }

    /// (e) The prekey store file: (a) the library, driven from the seeds, reproduces every step
    /// (returned ids, notices, errors, `to_bytes`) and every flood message; (b) every stored
    /// store parses by SPEC.md §7.5 into exactly one encoding and equals this file's own model of
    /// the store's operations, run on the listed RNG draws (which are the seeds' streams).
    pub(super) fn check_store_file(file: &str) {
        let v = load(file, "prekey_store").unwrap();
        let c = &v["constants"];
        assert_eq!(bytes(c, "store_type"), [0x24]);
        assert_eq!(bytes(c, "retired_store_type"), [0x27]);
        assert_eq!(
            num(c, "max_replay_records_per_signed_prekey"),
            u64::from(doubleratchet::MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY)
        );
        assert_eq!(
            num(c, "max_signed_prekeys"),
            doubleratchet::MAX_SIGNED_PREKEYS as u64
        );
        let g = &v["generated"];
        let flood = &v["flood"];

        // The listed draws are the seeds' streams.
        let listed = |draws: &[Value], rng: &mut ChaCha20Rng| -> Vec<Vec<u8>> {
            draws
                .iter()
                .map(|d| {
                    let expected = bytes(d, "bytes");
                    let mut buf = vec![0u8; expected.len()];
                    rng.try_fill_bytes(&mut buf).unwrap();
                    assert_eq!(buf, expected, "{file}: draw {}", text(d, "purpose"));
                    buf
                })
                .collect()
        };
        let mut bob_stream = ChaCha20Rng::seed_from_u64(num(g, "bob_rng_seed"));
        let mut bob_draws = listed(&arr(g, "rng_draws"), &mut bob_stream);
        bob_draws.extend(listed(&arr(flood, "bob_rng_draws"), &mut bob_stream));
        let mut alice_stream = ChaCha20Rng::seed_from_u64(num(flood, "alice_rng_seed"));
        let alice_draws = listed(&arr(flood, "alice_rng_draws"), &mut alice_stream);

        // (b) the model, from IK_B's seed (the first draw) and the draws after it.
        let bob_seed: [u8; 32] = bob_draws[0].clone().try_into().unwrap();
        assert_eq!(b32(&g["bob_identity"], "seed"), bob_seed);
        let mut model: Option<StoreModel> = None;
        let mut rest = bob_draws[1..].to_vec();

        // (a) the library.
        let mut bob_rng = ChaCha20Rng::seed_from_u64(num(g, "bob_rng_seed"));
        let bob = IdentityKeyPair::generate(&mut bob_rng).unwrap();
        assert_eq!(
            bob.public_key().as_bytes(),
            &b32(&g["bob_identity"], "ed25519_public")
        );
        let mut store: Option<PreKeyStore> = None;
        let mut alice_rng = ChaCha20Rng::seed_from_u64(num(flood, "alice_rng_seed"));
        let alice = IdentityKeyPair::generate(&mut alice_rng).unwrap();
        assert_eq!(
            alice.public_key().as_bytes(),
            &b32(&flood["alice_identity"], "ed25519_public")
        );
        assert_eq!(
            b32(&flood["alice_identity"], "seed")[..],
            alice_draws[0][..]
        );
        let messages = arr(flood, "messages");
        let wire: Vec<Vec<u8>> = messages.iter().map(|m| bytes(m, "bytes")).collect();

        let steps: Vec<(bool, Value)> = arr(g, "steps")
            .into_iter()
            .map(|s| (false, s))
            .chain(arr(flood, "steps").into_iter().map(|s| (true, s)))
            .collect();
        let mut previous_store: Vec<u8> = Vec::new();
        let mut made = 0;
        let mut alice_draw = 1;
        for (in_flood, step) in &steps {
            let call = text(step, "call");
            let name = call.split('(').next().unwrap();
            let what = format!("{file}: step {} ({call})", num(step, "step"));
            let argument = step["argument"].as_u64();
            let returned: Option<Vec<u64>> = step["returned_ids"]
                .as_array()
                .map(|ids| ids.iter().map(|i| i.as_u64().unwrap()).collect());
            let listed_store = bytes(step, "store");
            // Library and model, side by side.
            let (library_ids, model_ids): (Option<Vec<u64>>, Option<Vec<u64>>) = match name {
                "PreKeyStore::new" => {
                    store = Some(PreKeyStore::new(&bob, &mut bob_rng).unwrap());
                    let m = StoreModel::new(bob_seed, std::mem::take(&mut rest));
                    let s = store.as_ref().unwrap();
                    let ids = vec![
                        s.current_signed_prekey().id(),
                        s.standby_signed_prekey().unwrap().id(),
                    ];
                    let model_ids = vec![m.state.current, m.state.standby.as_ref().unwrap().0];
                    model = Some(m);
                    (Some(ids), Some(model_ids))
                }
                "generate_one_time_prekeys" => {
                    let n = argument.unwrap();
                    let ids = store
                        .as_mut()
                        .unwrap()
                        .generate_one_time_prekeys(n as usize, &mut bob_rng)
                        .unwrap()
                        .iter()
                        .map(|k| k.id())
                        .collect();
                    (
                        Some(ids),
                        Some(model.as_mut().unwrap().generate_one_time(n)),
                    )
                }
                "generate_pq_one_time_prekeys" => {
                    let n = argument.unwrap();
                    let ids = store
                        .as_mut()
                        .unwrap()
                        .generate_pq_one_time_prekeys(&bob, n as usize, &mut bob_rng)
                        .unwrap()
                        .iter()
                        .map(|k| k.id())
                        .collect();
                    (
                        Some(ids),
                        Some(model.as_mut().unwrap().generate_pq(n, 0x01)),
                    )
                }
                "rotate_pq_last_resort_prekey" => {
                    let id = store
                        .as_mut()
                        .unwrap()
                        .rotate_pq_last_resort_prekey(&bob, &mut bob_rng)
                        .unwrap();
                    (
                        Some(vec![id]),
                        Some(model.as_mut().unwrap().generate_pq(1, 0x02)),
                    )
                }
                "rotate_signed_prekey" => {
                    let id = store
                        .as_mut()
                        .unwrap()
                        .rotate_signed_prekey(&bob, &mut bob_rng)
                        .unwrap();
                    (
                        Some(vec![id]),
                        Some(vec![model.as_mut().unwrap().rotate_signed()]),
                    )
                }
                "set_replay_capacity" => {
                    let n = u32::try_from(argument.unwrap()).unwrap();
                    let notice = store.as_mut().unwrap().set_replay_capacity(n).unwrap();
                    let m = model.as_mut().unwrap();
                    m.state.capacity = n;
                    let expected = m.switch_if_full();
                    assert_eq!(library_notice(notice), expected, "{what}: notice");
                    assert_eq!(listed_notice(step), expected, "{what}: listed notice");
                    (None, None)
                }
                "accept" => {
                    let i = usize::try_from(num(step, "message")).unwrap();
                    let got = store.as_mut().unwrap().accept(&bob, &wire[i]);
                    let expected = model.as_mut().unwrap().accept(&wire[i]);
                    match (got, expected) {
                        (Ok(accepted), Ok((notice, opk, pq))) => {
                            assert!(step["expected_error"].is_null(), "{what}");
                            assert_eq!(
                                accepted.plaintext,
                                text(&messages[i], "plaintext_utf8").as_bytes()
                            );
                            assert_eq!(library_notice(accepted.notice), notice, "{what}: notice");
                            assert_eq!(listed_notice(step), notice, "{what}: listed notice");
                            assert_eq!(accepted.used_one_time_prekey, opk, "{what}");
                            assert_eq!(accepted.used_post_quantum_prekey, pq, "{what}");
                            assert_eq!(step["used_one_time_prekey"].as_u64(), opk, "{what}");
                            assert_eq!(step["used_post_quantum_prekey"].as_u64(), pq, "{what}");
                        }
                        (Err(e), Err(expected)) => {
                            assert_eq!(format!("{e:?}"), expected, "{what}: library error");
                            assert_eq!(text(step, "expected_error"), expected, "{what}");
                            assert_eq!(listed_store, previous_store, "{what}: a failed accept");
                        }
                        (got, expected) => panic!(
                            "{what}: library {:?}, model {expected:?}",
                            got.map(|a| a.notice)
                        ),
                    }
                    (None, None)
                }
                "retire_signed_prekey" => {
                    let id = argument.unwrap();
                    let removed = store.as_mut().unwrap().retire_signed_prekey(id);
                    let m = model.as_mut().unwrap();
                    let expected = id != m.state.current && m.state.signed.remove(&id).is_some();
                    assert_eq!(removed, expected, "{what}");
                    assert_eq!(step["returned"].as_bool(), Some(expected), "{what}");
                    (None, None)
                }
                other => panic!("{what}: unknown call {other}"),
            };
            assert_eq!(library_ids, model_ids, "{what}: ids (library, model)");
            assert_eq!(returned, model_ids, "{what}: returned ids");
            let s = store.as_ref().unwrap();
            let m = model.as_ref().unwrap();
            assert_eq!(s.to_bytes()[..], listed_store[..], "{what}: library store");
            assert_eq!(m.state.encode(), listed_store, "{what}: model store");
            assert_eq!(StoreState::parse(&listed_store), m.state, "{what}: parsed");
            assert_eq!(num(step, "store_length"), listed_store.len() as u64);
            assert_eq!(num(step, "current_signed_prekey"), m.state.current);
            assert_eq!(s.current_signed_prekey().id(), m.state.current);
            let standby = m.state.standby.as_ref().map(|s| s.0);
            assert_eq!(step["standby_signed_prekey"].as_u64(), standby, "{what}");
            assert_eq!(s.standby_signed_prekey().map(SignedPreKey::id), standby);
            let records: usize = m.state.signed.values().map(|e| e.2.len()).sum();
            assert_eq!(num(step, "replay_records"), records as u64, "{what}");
            assert_eq!(s.replay_records(), records, "{what}");
            previous_store = listed_store;

            // Flood messages made right after this step, from bundles of the store as it is.
            if *in_flood {
                let step_index = num(step, "step");
                while made < messages.len()
                    && num(&messages[made], "made_after_flood_step") == step_index
                {
                    let msg = &messages[made];
                    let opk = msg["one_time_prekey_id"].as_u64();
                    let pq = msg["post_quantum_prekey_id"].as_u64();
                    let bundle = match (pq, msg["post_quantum_prekey_kind"].as_str()) {
                        (None, _) => s.bundle(&bob, opk).unwrap(),
                        (Some(id), Some("one_time")) => s.pq_bundle(&bob, opk, Some(id)).unwrap(),
                        (Some(id), Some("last_resort")) => {
                            let b = s.pq_bundle(&bob, opk, None).unwrap();
                            assert_eq!(b.post_quantum_prekey_id(), Some(id));
                            b
                        }
                        other => panic!("{file}: message {made}: {other:?}"),
                    };
                    let received = PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap();
                    let mut session = Session::initiate(&alice, &received, &mut alice_rng).unwrap();
                    let bytes_made = session
                        .encrypt(text(msg, "plaintext_utf8").as_bytes(), &mut alice_rng)
                        .unwrap();
                    assert_eq!(bytes_made, wire[made], "{file}: flood message {made}");
                    // The X3DH fields (SPEC.md §5.3): the store's current signed prekey, the
                    // offered keys, and EK_A from Alice's draw (then m for PQXDH, then DHs).
                    let w = &wire[made];
                    let word = |at: usize| u64::from_be_bytes(w[at..at + 8].try_into().unwrap());
                    assert_eq!(w[1], if pq.is_some() { 0x03 } else { 0x02 });
                    assert_eq!(word(66), m.state.current);
                    assert_eq!(num(msg, "signed_prekey_id"), m.state.current);
                    assert_eq!((w[74] == 0x01).then(|| word(75)), opk);
                    assert_eq!(pq.map(|_| word(83)), pq);
                    let ek: [u8; 32] = alice_draws[alice_draw].clone().try_into().unwrap();
                    assert_eq!(w[34..66], x25519_public(&ek), "{file}: EK_A of {made}");
                    assert_eq!(b32(msg, "base_key"), x25519_public(&ek));
                    alice_draw += if pq.is_some() { 3 } else { 2 };
                    made += 1;
                }
            }
        }
        assert_eq!(made, messages.len(), "{file}: every flood message made");
        assert_eq!(alice_draw, alice_draws.len(), "{file}: Alice's draws");
        assert!(
            model.unwrap().draws.is_empty(),
            "{file}: every Bob draw used"
        );
        // Every id drawn (an 8-byte draw) is non-zero and distinct: no draw was repeated.
        let ids: Vec<u64> = bob_draws
            .iter()
            .filter(|d| d.len() == 8)
            .map(|d| u64::from_be_bytes(d[..].try_into().unwrap()))
            .collect();
        let distinct: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        assert!(ids.len() >= 10 && distinct.len() == ids.len() && !distinct.contains(&0));
        // No draw beyond the listed ones, on either side.
        for (who, mut library, mut stream) in [
            ("Bob", bob_rng, bob_stream),
            ("Alice", alice_rng, alice_stream),
        ] {
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            library.try_fill_bytes(&mut x).unwrap();
            stream.try_fill_bytes(&mut y).unwrap();
            assert_eq!(x, y, "{file}: {who}'s draws");
        }
        // Every signature in the stores verifies under IK_B (SPEC.md §2.3, §3.6).
        let verifying =
            VerifyingKey::from_bytes(&b32(&g["bob_identity"], "ed25519_public")).unwrap();
        let last = StoreState::parse(&bytes(
            &arr(flood, "steps").last().unwrap().clone(),
            "store",
        ));
        for (secret, signature, _) in last.signed.values() {
            let sig = Signature::from_slice(signature).unwrap();
            verifying
                .verify_strict(&cat(&[&[0x05], &x25519_public(secret)]), &sig)
                .unwrap();
        }
        for (_, _, seed, signature) in last.pq.values() {
            let sig = Signature::from_slice(signature).unwrap();
            verifying
                .verify_strict(&cat(&[&[0x0A], &kem::public_key(seed)]), &sig)
                .unwrap();
        }

        // Stored stores that must not load.
        let rejects = arr(&v, "load_rejects");
        assert!(rejects.len() >= 10, "{file}");
        for case in &rejects {
            let got = match PreKeyStore::from_bytes(&bytes(case, "input")) {
                Ok(_) => "loaded".to_owned(),
                Err(e) => format!("{e:?}"),
            };
            assert_eq!(
                got,
                text(case, "expected_error"),
                "{file}: {}",
                text(case, "name")
            );
        }
        for required in ["0x27", "id_zero", "sequence", "records", "standby"] {
            assert!(
                rejects.iter().any(|c| text(c, "name").contains(required)),
                "{file}: no {required} load reject"
            );
        }
    }
}
