//! Regenerates the known-answer test vectors in `tests/vectors/`:
//!
//! * `x3dh_ratchet_v1.json`: X3DH with a one-time prekey, then a short in-order
//!   conversation (two initial messages, a reply, a DH ratchet step on each side).
//! * `x3dh_ratchet_no_opk_v1.json`: X3DH without a one-time prekey, with out-of-order
//!   delivery (an initial message overtaken by the next one, a message skipped within a
//!   chain, and one left behind in a chain the receiver has already ratcheted away from).
//! * `reject_v1.json`: inputs that must be rejected, with the expected error.
//! * `pqxdh_ratchet_v1.json`: PQXDH (SPEC.md §3.6) with a one-time classical prekey and a
//!   one-time ML-KEM-768 prekey, then a short in-order conversation.
//! * `pqxdh_last_resort_v1.json`: PQXDH without a classical one-time prekey, with a
//!   last-resort ML-KEM-768 prekey; Bob accepts the session from the second initial message.
//! * `reject_pqxdh_v1.json`: PQXDH inputs that must be rejected, with the expected error.
//!
//! Run with `cargo run --example generate_vectors`; add `--check` to compare with the
//! files on disk instead of writing them (exit status 1 on any difference). The PQXDH files
//! need the `pqxdh` feature (on by default); without it they are neither written nor checked.
//!
//! Every secret comes from `ChaCha20Rng::seed_from_u64` (rand_chacha 0.10) with the seeds
//! in [`SCENARIOS`]: one generator for Alice, one for Bob, each drawn from only by its owner.
//! The program drives the library's **public** API to produce the messages, and
//! independently recomputes every value from the SPEC.md v1 formulas with the primitive
//! crates (x25519-dalek, curve25519-dalek, ed25519-dalek, sha2, hkdf, hmac, aes-gcm, and
//! ml-kem for PQXDH's KEM), including every message's bytes. It writes nothing unless the
//! two agree byte for byte, and it checks each rejection case against the library before
//! writing it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use doubleratchet::{
    Error, IdentityKeyPair, OneTimePreKey, PreKeyBundle, PreKeyStore, Session, SignedPreKey,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{SeedableRng, TryRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

/// The date recorded in every file's provenance.
const DATE: &str = "2026-11-28";

// SPEC.md §1 constants.
const X3DH_INFO: &[u8] = b"doubleratchet v1 X3DH";
const ROOT_INFO: &[u8] = b"doubleratchet v1 root";
const MESSAGE_INFO: &[u8] = b"doubleratchet v1 message keys";
const SESSION_ID_LABEL: &[u8] = b"doubleratchet v1 session id";
const PQXDH_INFO: &[u8] = b"doubleratchet v1 PQXDH";

// SPEC.md §3.6, §5.3, §5.4: ML-KEM-768 sizes and `EncodeKEM`'s prefix byte.
const KEM_PUBLIC_KEY_LENGTH: usize = 1184;
const KEM_CIPHERTEXT_LENGTH: usize = 1088;
const KEM_SEED_LENGTH: usize = 64;
const KEM_ENCODING_PREFIX: u8 = 0x0A;
/// FIPS 203: the ML-KEM modulus; every coefficient of an encapsulation key is below it.
const KEM_Q: u16 = 3329;

/// The five canonical small-order X25519 u-coordinates (SPEC.md §2.2).
const SMALL_ORDER_U: [(&str, &str); 5] = [
    (
        "u = 0",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "u = 1",
        "0100000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "order 8 (e0eb..)",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    ),
    (
        "order 8 (5f9c..)",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    ),
    (
        "u = p - 1",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ),
];

/// The Ed25519 group order L, little-endian.
const GROUP_ORDER_L: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Party {
    Alice,
    Bob,
}

impl Party {
    fn index(self) -> usize {
        match self {
            Party::Alice => 0,
            Party::Bob => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Party::Alice => "alice",
            Party::Bob => "bob",
        }
    }
}

/// One step of a conversation script.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// The party encrypts message `i` (its plaintext is fixed by the scenario).
    Encrypt(Party, usize),
    /// Bob creates his session from initial message `i` (`Session::respond`).
    Respond(usize),
    /// Bob creates his session from PQXDH initial message `i` with his prekey store
    /// (`PreKeyStore::accept`; `Session::respond` refuses PQXDH messages).
    Accept(usize),
    /// The party decrypts message `i` with its session.
    Decrypt(Party, usize),
}

/// A post-quantum prekey's kind (SPEC.md §3.6, §7.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PqKind {
    OneTime,
    LastResort,
}

impl PqKind {
    /// The kind byte of the stored post-quantum prekey (SPEC.md §7.7).
    fn byte(self) -> u8 {
        match self {
            PqKind::OneTime => 0x01,
            PqKind::LastResort => 0x02,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PqKind::OneTime => "one_time",
            PqKind::LastResort => "last_resort",
        }
    }
}

/// Bob's post-quantum prekey in a PQXDH scenario.
#[derive(Clone, Copy, Debug)]
struct PqSpec {
    id: u32,
    kind: PqKind,
}

struct Scenario {
    file: &'static str,
    name: &'static str,
    description: &'static str,
    alice_seed: u64,
    bob_seed: u64,
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    /// PQXDH: Bob's post-quantum prekey (`None`: classical X3DH).
    post_quantum: Option<PqSpec>,
    /// Sender and plaintext of each message, by index.
    messages: &'static [(Party, &'static str)],
    script: &'static [Op],
}

use Op::{Accept, Decrypt, Encrypt, Respond};
use Party::{Alice, Bob};

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        file: "x3dh_ratchet_v1.json",
        name: "x3dh_with_one_time_prekey_in_order",
        description: "X3DH with a one-time prekey (DH1..DH4). Alice sends two initial messages; \
            Bob accepts the first and decrypts the second, replies (completing his deferred DH \
            ratchet step); Alice decrypts the reply and sends (her DH ratchet step, a normal \
            message with PN = 2); Bob replies twice (his second DH ratchet step; the second \
            reply has an empty plaintext). Delivery is in order.",
        alice_seed: 0xA11CE,
        bob_seed: 0xB0B,
        signed_prekey_id: 1,
        one_time_prekey_id: Some(7),
        post_quantum: None,
        messages: &[
            (Alice, "Hi Bob, this is Alice. (initial message 1 of 2)"),
            (
                Alice,
                "Still waiting for your reply. (initial message 2 of 2)",
            ),
            (Bob, "Hi Alice! Bob here."),
            (Alice, "Got your reply: this one starts my new ratchet key."),
            (Bob, "And this one starts mine."),
            (Bob, ""),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Respond(0),
            Decrypt(Bob, 1),
            Encrypt(Bob, 2),
            Decrypt(Alice, 2),
            Encrypt(Alice, 3),
            Decrypt(Bob, 3),
            Encrypt(Bob, 4),
            Encrypt(Bob, 5),
            Decrypt(Alice, 4),
            Decrypt(Alice, 5),
        ],
    },
    Scenario {
        file: "x3dh_ratchet_no_opk_v1.json",
        name: "x3dh_without_one_time_prekey_out_of_order",
        description: "X3DH without a one-time prekey (DH1..DH3 only; the initial messages carry \
            OPK flag 0 and id 0). Bob receives Alice's second initial message first (message 0's \
            key is stored as skipped) and then the first. Later Alice receives Bob's message 4 \
            but not 5, ratchets, and receives Bob's message 7 from his next chain (PN = 2), \
            which stores message 5's key; message 5 then arrives last.",
        alice_seed: 0xA11CE2,
        bob_seed: 0xB0B2,
        signed_prekey_id: 42,
        one_time_prekey_id: None,
        post_quantum: None,
        messages: &[
            (Alice, "First initial message (delivered second)."),
            (Alice, "Second initial message (delivered first)."),
            (Bob, "Reply 1."),
            (Alice, "Alice, new ratchet key."),
            (Bob, "Bob, new ratchet key, N = 0."),
            (Bob, "Bob, same chain, N = 1 (delivered last)."),
            (Alice, "Alice again, another ratchet key, PN = 1."),
            (Bob, "Bob, third ratchet key, PN = 2."),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Respond(1),
            Decrypt(Bob, 0),
            Encrypt(Bob, 2),
            Decrypt(Alice, 2),
            Encrypt(Alice, 3),
            Decrypt(Bob, 3),
            Encrypt(Bob, 4),
            Encrypt(Bob, 5),
            Decrypt(Alice, 4),
            Encrypt(Alice, 6),
            Decrypt(Bob, 6),
            Encrypt(Bob, 7),
            Decrypt(Alice, 7),
            Decrypt(Alice, 5),
        ],
    },
    Scenario {
        file: "pqxdh_ratchet_v1.json",
        name: "pqxdh_with_one_time_prekeys_in_order",
        description: "PQXDH (SPEC.md 3.6) with a one-time classical prekey (DH1..DH4) and a \
            one-time ML-KEM-768 prekey: SK = HKDF(IKM = 0xFF^32 || DH1 || DH2 || DH3 || DH4 || SS, \
            info = PQXDH_INFO). Alice sends two initial messages of type 0x03 (the same PQ prekey \
            id and KEM ciphertext in both); Bob accepts the first with PreKeyStore::accept \
            (deleting both one-time prekeys) and decrypts the second, replies (completing his \
            deferred DH ratchet step); Alice decrypts the reply and sends a normal message with a \
            new ratchet key (PN = 2); Bob replies from his next ratchet key (PN = 1). Delivery is \
            in order.",
        alice_seed: 0xA11CE3,
        bob_seed: 0xB0B3,
        signed_prekey_id: 3,
        one_time_prekey_id: Some(11),
        post_quantum: Some(PqSpec {
            id: 5,
            kind: PqKind::OneTime,
        }),
        messages: &[
            (
                Alice,
                "Hi Bob, post-quantum Alice here. (initial message 1 of 2)",
            ),
            (Alice, "Same KEM ciphertext again. (initial message 2 of 2)"),
            (Bob, "Hi Alice! PQXDH session accepted."),
            (Alice, "Reply received: new ratchet key, normal message."),
            (Bob, "And my new ratchet key."),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Accept(0),
            Decrypt(Bob, 1),
            Encrypt(Bob, 2),
            Decrypt(Alice, 2),
            Encrypt(Alice, 3),
            Decrypt(Bob, 3),
            Encrypt(Bob, 4),
            Decrypt(Alice, 4),
        ],
    },
    Scenario {
        file: "pqxdh_last_resort_v1.json",
        name: "pqxdh_last_resort_without_one_time_prekey",
        description: "PQXDH (SPEC.md 3.6) without a classical one-time prekey (DH1..DH3; OPK flag \
            0, id 0) and with a last-resort ML-KEM-768 prekey: SK = HKDF(IKM = 0xFF^32 || DH1 || \
            DH2 || DH3 || SS, info = PQXDH_INFO). Alice sends two initial messages of type 0x03; \
            Bob's prekey store accepts the session from the second (it keeps the last-resort \
            prekey and records EK_A against replay, SPEC.md 8) and then decrypts the first from a \
            skipped key; Bob replies; Alice decrypts the reply and sends a normal message with a \
            new ratchet key (PN = 2); Bob replies from his next ratchet key (PN = 1).",
        alice_seed: 0xA11CE4,
        bob_seed: 0xB0B4,
        signed_prekey_id: 4,
        one_time_prekey_id: None,
        post_quantum: Some(PqSpec {
            id: 9,
            kind: PqKind::LastResort,
        }),
        messages: &[
            (Alice, "First PQXDH initial message (delivered second)."),
            (Alice, "Second PQXDH initial message (delivered first)."),
            (Bob, "Accepted with my last-resort KEM key."),
            (Alice, "Alice, new ratchet key."),
            (Bob, "Bob, new ratchet key."),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Accept(1),
            Decrypt(Bob, 0),
            Encrypt(Bob, 2),
            Decrypt(Alice, 2),
            Encrypt(Alice, 3),
            Decrypt(Bob, 3),
            Encrypt(Bob, 4),
            Decrypt(Alice, 4),
        ],
    },
];

/// Whether this build can run a scenario: the PQXDH ones need the `pqxdh` feature.
fn supported(s: &Scenario) -> bool {
    s.post_quantum.is_none() || cfg!(feature = "pqxdh")
}

// ---------------------------------------------------------------------------------------
// Primitives, straight from SPEC.md §1-§4 (no library code)
// ---------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N, "hex length");
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// RFC 7748 §5 clamping.
fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

/// `DH(a, B)`: X25519, with the all-zero output an error (SPEC.md §1).
fn dh(private: &[u8; 32], public: &[u8; 32]) -> [u8; 32] {
    let out = x25519_dalek::x25519(*private, *public);
    assert_ne!(out, [0u8; 32], "non-contributory DH");
    out
}

fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*private, x25519_dalek::X25519_BASEPOINT_BYTES)
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut okm = [0u8; N];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .unwrap();
    okm
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn split(okm: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&okm[..32]);
    b.copy_from_slice(&okm[32..]);
    (a, b)
}

/// `KDF_RK(rk, dh) -> (rk', ck)`.
fn kdf_rk(rk: &[u8; 32], dh_out: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    split(&hkdf::<64>(rk, dh_out, ROOT_INFO))
}

/// `KDF_CK(ck) -> (mk, ck')`.
fn kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    (hmac(ck, &[0x01]), hmac(ck, &[0x02]))
}

/// The AES-256-GCM key and nonce of `ENCRYPT(mk, ..)`.
fn message_cipher(mk: &[u8; 32]) -> ([u8; 32], [u8; 12]) {
    let okm = hkdf::<44>(&[0u8; 32], mk, MESSAGE_INFO);
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    key.copy_from_slice(&okm[..32]);
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}

fn aes_gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(&Nonce::<U12>::from(*nonce), Payload { msg: pt, aad })
        .unwrap()
}

fn aes_gcm_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(&Nonce::<U12>::from(*nonce), Payload { msg: ct, aad })
        .ok()
}

fn ed25519_sign(seed: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(seed).sign(msg).to_bytes()
}

/// The X25519 (Montgomery u) form of an Ed25519 public key.
fn edwards_to_x25519(public: &[u8; 32]) -> [u8; 32] {
    CompressedEdwardsY(*public)
        .decompress()
        .unwrap()
        .to_montgomery()
        .to_bytes()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn arr32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap()
}

/// Fails with both encodings and the first differing offset.
fn assert_same(what: &str, independent: &[u8], library: &[u8]) {
    if independent != library {
        let first = independent
            .iter()
            .zip(library)
            .position(|(a, b)| a != b)
            .unwrap_or(independent.len().min(library.len()));
        panic!(
            "DISAGREEMENT in {what}: first difference at byte {first}\n  independent ({} bytes): {}\n  library     ({} bytes): {}",
            independent.len(),
            hex(independent),
            library.len(),
            hex(library)
        );
    }
}

/// The 768 12-bit coefficients of an ML-KEM-768 encapsulation key's `t` vector (FIPS 203
/// `ByteDecode_12` of its first 1152 bytes; the last 32 bytes are `rho`).
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

/// Writes coefficient `index` of an encapsulation key (the inverse of [`kem_coefficients`]).
fn set_kem_coefficient(ek: &[u8], index: usize, value: u16) -> Vec<u8> {
    assert!(value < 4096);
    let mut out = ek.to_vec();
    let at = 3 * (index / 2);
    if index.is_multiple_of(2) {
        out[at] = (value & 0xFF) as u8;
        out[at + 1] = (out[at + 1] & 0xF0) | (value >> 8) as u8;
    } else {
        out[at + 1] = (out[at + 1] & 0x0F) | ((value & 0x0F) << 4) as u8;
        out[at + 2] = (value >> 4) as u8;
    }
    out
}

/// ML-KEM-768 (FIPS 203) straight from the `ml-kem` crate, not through the library.
#[cfg(feature = "pqxdh")]
mod kem {
    use ml_kem::{Decapsulate, DecapsulationKey768, EncapsulationKey768, KeyExport, B32};

    use super::{KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH, KEM_SEED_LENGTH};

    /// `ek` of `ML-KEM.KeyGen_internal(d, z)` for the seed `d || z`.
    pub(super) fn public_key(seed: &[u8; KEM_SEED_LENGTH]) -> Vec<u8> {
        let dk = DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed));
        dk.encapsulation_key().to_bytes().to_vec()
    }

    /// `(CT, SS) = ML-KEM.Encaps_internal(ek, m)`; `None` if `ek` fails the modulus check.
    pub(super) fn encapsulate(ek: &[u8], m: &[u8; 32]) -> Option<(Vec<u8>, [u8; 32])> {
        let bytes: [u8; KEM_PUBLIC_KEY_LENGTH] = ek.try_into().ok()?;
        let ek = EncapsulationKey768::new(&ml_kem::Key::<EncapsulationKey768>::from(bytes)).ok()?;
        let (ct, ss) = ek.encapsulate_deterministic(&B32::from(*m));
        Some((ct.to_vec(), ss.into()))
    }

    /// `SS = ML-KEM.Decaps(dk, CT)` with `dk` from the seed (implicit rejection included).
    pub(super) fn decapsulate(seed: &[u8; KEM_SEED_LENGTH], ct: &[u8]) -> [u8; 32] {
        let dk = DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed));
        let ct: [u8; KEM_CIPHERTEXT_LENGTH] = ct.try_into().unwrap();
        dk.decapsulate(&ml_kem::ml_kem_768::Ciphertext::from(ct))
            .into()
    }
}

/// Without the `pqxdh` feature the PQXDH scenarios are skipped ([`supported`]), so these
/// are never called.
#[cfg(not(feature = "pqxdh"))]
mod kem {
    pub(super) fn public_key(_: &[u8; super::KEM_SEED_LENGTH]) -> Vec<u8> {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn encapsulate(_: &[u8], _: &[u8; 32]) -> Option<(Vec<u8>, [u8; 32])> {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn decapsulate(_: &[u8; super::KEM_SEED_LENGTH], _: &[u8]) -> [u8; 32] {
        unreachable!("PQXDH needs the pqxdh feature")
    }
}

// ---------------------------------------------------------------------------------------
// Independent model of the protocol (SPEC.md §2-§6)
// ---------------------------------------------------------------------------------------

/// A ChaCha20Rng whose 32-byte draws are recorded with their purpose.
struct Drawer {
    rng: ChaCha20Rng,
    draws: Vec<DrawJson>,
}

impl Drawer {
    fn new(seed: u64) -> Self {
        Drawer {
            rng: ChaCha20Rng::seed_from_u64(seed),
            draws: Vec::new(),
        }
    }

    fn draw(&mut self, purpose: String) -> [u8; 32] {
        self.draw_bytes(purpose)
    }

    /// One `try_fill_bytes` call of `N` bytes.
    fn draw_bytes<const N: usize>(&mut self, purpose: String) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.try_fill_bytes(&mut out).unwrap();
        self.draws.push(DrawJson {
            index: self.draws.len(),
            purpose,
            bytes: hex(&out),
        });
        out
    }
}

#[derive(Clone, Copy)]
struct KeyPair {
    private: [u8; 32],
    public: [u8; 32],
}

impl KeyPair {
    fn from_private(private: [u8; 32]) -> Self {
        KeyPair {
            private,
            public: x25519_public(&private),
        }
    }

    fn json(&self) -> KeyPairJson {
        KeyPairJson {
            private: hex(&self.private),
            public: hex(&self.public),
        }
    }
}

/// An identity key pair per SPEC.md §2.1.
struct Identity {
    seed: [u8; 32],
    sha512: [u8; 64],
    x25519_private: [u8; 32],
    ed25519_public: [u8; 32],
    x25519_public: [u8; 32],
}

impl Identity {
    fn from_seed(seed: [u8; 32]) -> Self {
        let sha512: [u8; 64] = Sha512::digest(seed).into();
        let low: [u8; 32] = arr32(&sha512[..32]);
        let ed25519_public = EdwardsPoint::mul_base_clamped(low).compress().to_bytes();
        // Cross-checks: ed25519-dalek's key derivation, and the two routes to the X25519
        // public key (scalar times the base point, and the birational map).
        assert_eq!(
            SigningKey::from_bytes(&seed).verifying_key().to_bytes(),
            ed25519_public
        );
        let x25519_private = clamp(low);
        let x25519_public = x25519_public(&x25519_private);
        assert_eq!(edwards_to_x25519(&ed25519_public), x25519_public);
        Identity {
            seed,
            sha512,
            x25519_private,
            ed25519_public,
            x25519_public,
        }
    }

    fn json(&self) -> IdentityJson {
        IdentityJson {
            seed: hex(&self.seed),
            ed25519_public: hex(&self.ed25519_public),
            sha512_of_seed: hex(&self.sha512),
            x25519_private: hex(&self.x25519_private),
            x25519_public: hex(&self.x25519_public),
        }
    }
}

/// The X3DH fields of an initial message (SPEC.md §5.3, bytes 2..75), and for PQXDH
/// (type `0x03`) the post-quantum prekey id and KEM ciphertext (bytes 75..1167).
#[derive(Clone, Copy)]
struct InitialFields {
    identity: [u8; 32],
    base_key: [u8; 32],
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    post_quantum: Option<(u32, [u8; KEM_CIPHERTEXT_LENGTH])>,
}

impl InitialFields {
    /// The message type: `0x03` for PQXDH, `0x02` otherwise.
    fn message_type(&self) -> u8 {
        if self.post_quantum.is_some() {
            0x03
        } else {
            0x02
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (flag, id) = match self.one_time_prekey_id {
            Some(id) => (1u8, id),
            None => (0u8, 0),
        };
        let mut out = cat(&[
            &self.identity,
            &self.base_key,
            &self.signed_prekey_id.to_be_bytes(),
            &[flag],
            &id.to_be_bytes(),
        ]);
        if let Some((pq_id, ciphertext)) = &self.post_quantum {
            out.extend_from_slice(&pq_id.to_be_bytes());
            out.extend_from_slice(ciphertext);
        }
        out
    }
}

/// PQXDH's post-quantum part (SPEC.md §3.6): Bob's ML-KEM-768 prekey and Alice's
/// encapsulation to it.
struct PqModel {
    id: u32,
    kind: PqKind,
    /// `d || z`, as drawn.
    seed: [u8; KEM_SEED_LENGTH],
    /// The encapsulation key `ek` (1184 bytes).
    public: Vec<u8>,
    /// `EncodeKEM(PQPK) = 0x0A || ek`, the message the identity key signs.
    signed_message: Vec<u8>,
    signature: [u8; 64],
    /// Alice's 32 bytes of encapsulation randomness.
    m: [u8; 32],
    ciphertext: [u8; KEM_CIPHERTEXT_LENGTH],
    shared_secret: [u8; 32],
    /// Bob's prekey store holding SPK_B, OPK_B and this key (SPEC.md §7.5, type 0x27).
    store: Vec<u8>,
}

/// The stored prekey store Bob accepts with (SPEC.md §7.3, §7.4, §7.5 type `0x27`, §7.7):
/// his signed prekey, his one-time prekey if any, his post-quantum prekey; no replay
/// records; every next id one above the id held (1 for an empty kind).
fn prekey_store_encoding(
    s: &Scenario,
    spk: &KeyPair,
    spk_signature: &[u8; 64],
    opk: Option<&KeyPair>,
    pq: &PqModel,
) -> Vec<u8> {
    let mut out = vec![0x01, 0x27];
    out.extend_from_slice(&s.signed_prekey_id.to_be_bytes());
    out.extend_from_slice(&(s.signed_prekey_id + 1).to_be_bytes());
    out.extend_from_slice(&s.one_time_prekey_id.map_or(1, |id| id + 1).to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x22]);
    out.extend_from_slice(&s.signed_prekey_id.to_be_bytes());
    out.extend_from_slice(&spk.private);
    out.extend_from_slice(spk_signature);
    match (s.one_time_prekey_id, opk) {
        (Some(id), Some(k)) => {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&[0x01, 0x23]);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&k.private);
        }
        _ => out.extend_from_slice(&0u32.to_be_bytes()),
    }
    out.extend_from_slice(&0u32.to_be_bytes()); // no replay records
    out.extend_from_slice(&(pq.id + 1).to_be_bytes());
    match pq.kind {
        PqKind::LastResort => {
            out.push(0x01);
            out.extend_from_slice(&pq.id.to_be_bytes());
        }
        PqKind::OneTime => out.extend_from_slice(&[0u8; 5]),
    }
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x26]);
    out.extend_from_slice(&pq.id.to_be_bytes());
    out.push(pq.kind.byte());
    out.extend_from_slice(&pq.seed);
    out.extend_from_slice(&pq.signature);
    out
}

/// The Double Ratchet state of SPEC.md §4.2.
struct Ratchet {
    rk: [u8; 32],
    dhs: Option<KeyPair>,
    dhr: Option<[u8; 32]>,
    cks: Option<[u8; 32]>,
    ckr: Option<[u8; 32]>,
    ns: u32,
    nr: u32,
    pn: u32,
    /// Root step that created the current sending chain.
    send_root: usize,
    /// `MKSKIPPED`: `(ratchet key, N) -> mk`.
    skipped: HashMap<([u8; 32], u32), [u8; 32]>,
    /// Present while the initiator awaits its first reply (SPEC.md §6.2).
    initial: Option<InitialFields>,
}

struct RootStep {
    sender: Party,
    rk_in: [u8; 32],
    sender_key: KeyPair,
    receiver_key: KeyPair,
    dh_output: [u8; 32],
    rk_out: [u8; 32],
    chain_key: [u8; 32],
}

struct MessageRecord {
    sender: Party,
    plaintext: Vec<u8>,
    root_step: usize,
    initial: Option<InitialFields>,
    ratchet_public: [u8; 32],
    pn: u32,
    n: u32,
    chain_key: [u8; 32],
    message_key: [u8; 32],
    next_chain_key: [u8; 32],
    aes_key: [u8; 32],
    aes_nonce: [u8; 12],
    prefix: Vec<u8>,
    aad: Vec<u8>,
    bytes: Vec<u8>,
}

struct X3dh {
    dh1: [u8; 32],
    dh2: [u8; 32],
    dh3: [u8; 32],
    dh4: Option<[u8; 32]>,
    ikm: Vec<u8>,
    sk: [u8; 32],
    ad: [u8; 64],
    session_id: [u8; 32],
}

struct Model {
    drawers: [Drawer; 2],
    alice: Identity,
    bob: Identity,
    spk: KeyPair,
    spk_signed_message: Vec<u8>,
    spk_signature: [u8; 64],
    opk: Option<KeyPair>,
    /// PQXDH only.
    pq: Option<PqModel>,
    bundle: Vec<u8>,
    ek: KeyPair,
    x3dh: X3dh,
    /// Every X25519 key pair of the scenario, by public key.
    keyring: HashMap<[u8; 32], [u8; 32]>,
    ratchets: [Option<Ratchet>; 2],
    roots: Vec<RootStep>,
    messages: Vec<Option<MessageRecord>>,
    /// Alice's ratchet key pairs, in the order generated.
    ratchet_keys: [Vec<KeyPair>; 2],
}

impl Model {
    /// Key generation, the bundle, and Alice's side of X3DH and of the ratchet
    /// initialisation (SPEC.md §2, §3.1-§3.3, §3.5, §4.3).
    fn new(s: &Scenario) -> Self {
        let mut a = Drawer::new(s.alice_seed);
        let mut b = Drawer::new(s.bob_seed);
        let alice = Identity::from_seed(a.draw("IdentityKeyPair::generate: IK_A seed".into()));
        let bob = Identity::from_seed(b.draw("IdentityKeyPair::generate: IK_B seed".into()));
        let spk = KeyPair::from_private(b.draw(format!(
            "SignedPreKey::generate (id {}): SPK_B secret",
            s.signed_prekey_id
        )));
        let spk_signed_message = cat(&[&[0x05], &spk.public]);
        let spk_signature = ed25519_sign(&bob.seed, &spk_signed_message);
        let opk = s.one_time_prekey_id.map(|id| {
            KeyPair::from_private(
                b.draw(format!("OneTimePreKey::generate (id {id}): OPK_B secret")),
            )
        });
        // PQXDH: the ML-KEM-768 prekey from its 64-byte seed, signed over
        // EncodeKEM = 0x0A || ek (SPEC.md §3.6).
        let pq_key = s.post_quantum.map(|spec| {
            let seed: [u8; KEM_SEED_LENGTH] = b.draw_bytes(format!(
                "PqPreKey::generate (id {}, {}): ML-KEM-768 seed d || z (64 bytes, one call)",
                spec.id,
                spec.kind.name()
            ));
            let public = kem::public_key(&seed);
            assert_eq!(public.len(), KEM_PUBLIC_KEY_LENGTH);
            assert!(kem_coefficients(&public).iter().all(|c| *c < KEM_Q));
            let signed_message = cat(&[&[KEM_ENCODING_PREFIX], &public]);
            let signature = ed25519_sign(&bob.seed, &signed_message);
            (spec, seed, public, signed_message, signature)
        });
        let (opk_flag, opk_id, opk_public) = match (s.one_time_prekey_id, &opk) {
            (Some(id), Some(k)) => (1u8, id, k.public),
            _ => (0u8, 0, [0u8; 32]),
        };
        let mut bundle = cat(&[
            &[0x01, if pq_key.is_some() { 0x11 } else { 0x10 }],
            &bob.ed25519_public,
            &s.signed_prekey_id.to_be_bytes(),
            &spk.public,
            &spk_signature,
            &[opk_flag],
            &opk_id.to_be_bytes(),
            &opk_public,
        ]);
        assert_eq!(bundle.len(), 171);
        if let Some((spec, _, public, _, signature)) = &pq_key {
            bundle.extend_from_slice(&spec.id.to_be_bytes());
            bundle.extend_from_slice(public);
            bundle.extend_from_slice(signature);
            assert_eq!(bundle.len(), 1423);
        }

        // Alice verifies the signatures strictly (§3.2, §3.6), then X3DH (§3.3).
        let verifying = VerifyingKey::from_bytes(&bob.ed25519_public).unwrap();
        verifying
            .verify_strict(&spk_signed_message, &Signature::from_bytes(&spk_signature))
            .unwrap();
        if let Some((_, _, _, signed_message, signature)) = &pq_key {
            verifying
                .verify_strict(signed_message, &Signature::from_bytes(signature))
                .unwrap();
        }
        let ek = KeyPair::from_private(a.draw("Session::initiate: EK_A secret".into()));
        // PQXDH: (CT, SS) = ML-KEM-768.Encaps_internal(ek, m) (§3.6).
        let pq = pq_key.map(|(spec, seed, public, signed_message, signature)| {
            let m = a.draw("Session::initiate: ML-KEM encapsulation randomness m".into());
            let (ciphertext, shared_secret) = kem::encapsulate(&public, &m).unwrap();
            PqModel {
                id: spec.id,
                kind: spec.kind,
                seed,
                public,
                signed_message,
                signature,
                m,
                ciphertext: ciphertext.try_into().unwrap(),
                shared_secret,
                store: Vec::new(),
            }
        });
        let dh1 = dh(&alice.x25519_private, &spk.public);
        let dh2 = dh(&ek.private, &bob.x25519_public);
        let dh3 = dh(&ek.private, &spk.public);
        let dh4 = opk.map(|k| dh(&ek.private, &k.public));
        let mut ikm = cat(&[&[0xFF; 32], &dh1, &dh2, &dh3]);
        if let Some(d) = &dh4 {
            ikm.extend_from_slice(d);
        }
        let info = match &pq {
            Some(pq) => {
                ikm.extend_from_slice(&pq.shared_secret);
                PQXDH_INFO
            }
            None => X3DH_INFO,
        };
        let sk = hkdf::<32>(&[0u8; 32], &ikm, info);
        let ad: [u8; 64] = cat(&[&alice.ed25519_public, &bob.ed25519_public])
            .try_into()
            .unwrap();
        let session_id: [u8; 32] = Sha256::digest(cat(&[
            SESSION_ID_LABEL,
            &alice.ed25519_public,
            &bob.ed25519_public,
            &ek.public,
        ]))
        .into();

        let mut keyring = HashMap::new();
        for k in [Some(spk), opk, Some(ek)].into_iter().flatten() {
            keyring.insert(k.public, k.private);
        }
        let initial = InitialFields {
            identity: alice.ed25519_public,
            base_key: ek.public,
            signed_prekey_id: s.signed_prekey_id,
            one_time_prekey_id: s.one_time_prekey_id,
            post_quantum: pq.as_ref().map(|pq| (pq.id, pq.ciphertext)),
        };
        let pq = pq.map(|mut pq| {
            pq.store = prekey_store_encoding(s, &spk, &spk_signature, opk.as_ref(), &pq);
            pq
        });
        let mut model = Model {
            drawers: [a, b],
            alice,
            bob,
            spk,
            spk_signed_message,
            spk_signature,
            opk,
            pq,
            bundle,
            ek,
            x3dh: X3dh {
                dh1,
                dh2,
                dh3,
                dh4,
                ikm,
                sk,
                ad,
                session_id,
            },
            keyring,
            ratchets: [
                Some(Ratchet {
                    rk: sk,
                    dhs: None,
                    dhr: Some(spk.public),
                    cks: None,
                    ckr: None,
                    ns: 0,
                    nr: 0,
                    pn: 0,
                    send_root: usize::MAX,
                    skipped: HashMap::new(),
                    initial: Some(initial),
                }),
                None,
            ],
            roots: Vec::new(),
            messages: (0..s.messages.len()).map(|_| None).collect(),
            ratchet_keys: [Vec::new(), Vec::new()],
        };
        // RatchetInitAlice: DHs fresh, (RK, CKs) = KDF_RK(SK, DH(DHs, SPK_B)).
        model.sending_half(Alice, "Session::initiate: Alice's first DHs secret".into());
        model
    }

    /// Generates a new `DHs` and derives a sending chain: `(RK, CKs) = KDF_RK(RK, DH(DHs, DHr))`.
    fn sending_half(&mut self, p: Party, purpose: String) {
        let key = KeyPair::from_private(self.drawers[p.index()].draw(purpose));
        self.keyring.insert(key.public, key.private);
        self.ratchet_keys[p.index()].push(key);
        let r = self.ratchets[p.index()].as_mut().unwrap();
        let dhr = r.dhr.unwrap();
        let dh_output = dh(&key.private, &dhr);
        let (rk_out, chain_key) = kdf_rk(&r.rk, &dh_output);
        self.roots.push(RootStep {
            sender: p,
            rk_in: r.rk,
            sender_key: key,
            receiver_key: KeyPair {
                private: self.keyring[&dhr],
                public: dhr,
            },
            dh_output,
            rk_out,
            chain_key,
        });
        r.rk = rk_out;
        r.dhs = Some(key);
        r.cks = Some(chain_key);
        r.ns = 0;
        r.send_root = self.roots.len() - 1;
    }

    /// SPEC.md §4.5 and the framing of §5.2 / §5.3.
    fn encrypt(&mut self, p: Party, index: usize, plaintext: &[u8]) {
        if self.ratchets[p.index()].as_ref().unwrap().cks.is_none() {
            self.sending_half(
                p,
                format!(
                    "Session::encrypt of message {index}: new DHs secret (completes the deferred DH ratchet step)"
                ),
            );
        }
        let ad = self.x3dh.ad;
        let r = self.ratchets[p.index()].as_mut().unwrap();
        let chain_key = r.cks.unwrap();
        let (message_key, next_chain_key) = kdf_ck(&chain_key);
        let ratchet_public = r.dhs.unwrap().public;
        let (pn, n) = (r.pn, r.ns);
        r.cks = Some(next_chain_key);
        r.ns += 1;
        let mut prefix = vec![0x01];
        match &r.initial {
            Some(fields) => {
                prefix.push(fields.message_type());
                prefix.extend_from_slice(&fields.encode());
            }
            None => prefix.push(0x01),
        }
        prefix.extend_from_slice(&ratchet_public);
        prefix.extend_from_slice(&pn.to_be_bytes());
        prefix.extend_from_slice(&n.to_be_bytes());
        let aad = cat(&[&ad, &prefix]);
        let (aes_key, aes_nonce) = message_cipher(&message_key);
        let sealed = aes_gcm_seal(&aes_key, &aes_nonce, &aad, plaintext);
        let bytes = cat(&[&prefix, &sealed]);
        self.messages[index] = Some(MessageRecord {
            sender: p,
            plaintext: plaintext.to_vec(),
            root_step: r.send_root,
            initial: r.initial,
            ratchet_public,
            pn,
            n,
            chain_key,
            message_key,
            next_chain_key,
            aes_key,
            aes_nonce,
            prefix,
            aad,
            bytes,
        });
    }

    /// SPEC.md §3.4 and §4.3 (Bob) followed by §4.6, for the message at `index`.
    fn decrypt(&mut self, p: Party, index: usize) {
        let record = self.messages[index].as_ref().unwrap();
        let bytes = record.bytes.clone();
        let expected = record.plaintext.clone();
        assert_eq!(bytes[0], 0x01);
        let (fields, header_at) = match bytes[1] {
            kind @ (0x02 | 0x03) => {
                let opk_flag = bytes[70];
                assert!(opk_flag <= 1);
                // Type 0x03 (PQXDH): PQ prekey id at 75, KEM ciphertext at 79..1167.
                let post_quantum = (kind == 0x03).then(|| {
                    (
                        u32_at(&bytes, 75),
                        bytes[79..79 + KEM_CIPHERTEXT_LENGTH].try_into().unwrap(),
                    )
                });
                let fields = InitialFields {
                    identity: arr32(&bytes[2..34]),
                    base_key: arr32(&bytes[34..66]),
                    signed_prekey_id: u32_at(&bytes, 66),
                    one_time_prekey_id: (opk_flag == 1).then(|| u32_at(&bytes, 71)),
                    post_quantum,
                };
                let header_at = if kind == 0x03 {
                    79 + KEM_CIPHERTEXT_LENGTH
                } else {
                    75
                };
                (Some(fields), header_at)
            }
            0x01 => (None, 2),
            other => panic!("type {other}"),
        };
        let dh_pub = arr32(&bytes[header_at..header_at + 32]);
        let pn = u32_at(&bytes, header_at + 32);
        let n = u32_at(&bytes, header_at + 36);
        let prefix = &bytes[..header_at + 40];
        let body = &bytes[header_at + 40..];

        if let Some(f) = &fields {
            assert_eq!(p, Bob, "only the responder receives initial messages");
            if self.ratchets[Bob.index()].is_none() {
                self.respond(f);
            }
            assert_eq!(f.identity, self.alice.ed25519_public);
            assert_eq!(f.base_key, self.ek.public);
            // Every initial message repeats the same PQ prekey id and KEM ciphertext (§3.6).
            assert_eq!(
                f.post_quantum.map(|(id, ct)| (id, ct.to_vec())),
                self.pq.as_ref().map(|pq| (pq.id, pq.ciphertext.to_vec()))
            );
        }
        let ad = self.x3dh.ad;
        let r = self.ratchets[p.index()].as_mut().unwrap();

        let mk = if let Some(mk) = r.skipped.remove(&(dh_pub, n)) {
            mk
        } else {
            if r.dhr != Some(dh_pub) {
                // SkipMessageKeys(PN) on the old chain, then the receiving half of DHRatchet.
                if let (Some(mut ck), Some(old)) = (r.ckr, r.dhr) {
                    while r.nr < pn {
                        let (mk, next) = kdf_ck(&ck);
                        r.skipped.insert((old, r.nr), mk);
                        ck = next;
                        r.nr += 1;
                    }
                }
                if r.cks.take().is_some() {
                    r.pn = r.ns;
                    r.ns = 0;
                }
                let dh_output = dh(&r.dhs.unwrap().private, &dh_pub);
                let (rk_out, chain_key) = kdf_rk(&r.rk, &dh_output);
                // The sender derived the same step: find it and compare.
                let step = self
                    .roots
                    .iter()
                    .position(|s| s.sender_key.public == dh_pub)
                    .unwrap();
                assert_eq!(self.roots[step].rk_in, r.rk);
                assert_eq!(self.roots[step].dh_output, dh_output);
                assert_eq!(self.roots[step].rk_out, rk_out);
                assert_eq!(self.roots[step].chain_key, chain_key);
                r.rk = rk_out;
                r.dhr = Some(dh_pub);
                r.ckr = Some(chain_key);
                r.nr = 0;
            }
            let mut ck = r.ckr.unwrap();
            assert!(n >= r.nr, "duplicate in the model");
            while r.nr < n {
                let (mk, next) = kdf_ck(&ck);
                r.skipped.insert((dh_pub, r.nr), mk);
                ck = next;
                r.nr += 1;
            }
            let (mk, next) = kdf_ck(&ck);
            r.ckr = Some(next);
            r.nr = n + 1;
            mk
        };
        let record = self.messages[index].as_ref().unwrap();
        assert_eq!(mk, record.message_key, "receiver's mk for message {index}");
        let (key, nonce) = message_cipher(&mk);
        let aad = cat(&[&ad, prefix]);
        let plaintext = aes_gcm_open(&key, &nonce, &aad, body).expect("model decryption");
        assert_eq!(plaintext, expected);
        if p == Alice {
            // A reply proves the responder has the session (§6.2).
            r.initial = None;
        }
    }

    /// Bob's side of X3DH (§3.4) and RatchetInitBob (§4.3).
    fn respond(&mut self, f: &InitialFields) {
        let ik_a = edwards_to_x25519(&f.identity);
        let dh1 = dh(&self.spk.private, &ik_a);
        let dh2 = dh(&self.bob.x25519_private, &f.base_key);
        let dh3 = dh(&self.spk.private, &f.base_key);
        let dh4 = f
            .one_time_prekey_id
            .map(|_| dh(&self.opk.unwrap().private, &f.base_key));
        assert_eq!(
            (dh1, dh2, dh3, dh4),
            (self.x3dh.dh1, self.x3dh.dh2, self.x3dh.dh3, self.x3dh.dh4)
        );
        let mut ikm = cat(&[&[0xFF; 32], &dh1, &dh2, &dh3]);
        if let Some(d) = &dh4 {
            ikm.extend_from_slice(d);
        }
        // PQXDH: SS = ML-KEM-768.Decaps(dk, CT) with the prekey the message names (§3.6).
        let info = match (&f.post_quantum, &self.pq) {
            (Some((id, ciphertext)), Some(pq)) => {
                assert_eq!(*id, pq.id);
                let shared_secret = kem::decapsulate(&pq.seed, ciphertext);
                assert_eq!(shared_secret, pq.shared_secret, "decapsulated SS");
                ikm.extend_from_slice(&shared_secret);
                PQXDH_INFO
            }
            (None, None) => X3DH_INFO,
            _ => panic!("initial message and bundle disagree on PQXDH"),
        };
        assert_eq!(ikm, self.x3dh.ikm);
        let sk = hkdf::<32>(&[0u8; 32], &ikm, info);
        assert_eq!(sk, self.x3dh.sk);
        self.ratchets[Bob.index()] = Some(Ratchet {
            rk: sk,
            dhs: Some(self.spk),
            dhr: None,
            cks: None,
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            send_root: usize::MAX,
            skipped: HashMap::new(),
            initial: None,
        });
    }

    fn run(s: &Scenario) -> Self {
        let mut model = Model::new(s);
        for op in s.script {
            match *op {
                Encrypt(p, i) => {
                    assert_eq!(s.messages[i].0, p);
                    model.encrypt(p, i, s.messages[i].1.as_bytes());
                }
                Respond(i) | Accept(i) => model.decrypt(Bob, i),
                Decrypt(p, i) => model.decrypt(p, i),
            }
        }
        model
    }

    fn message(&self, i: usize) -> &MessageRecord {
        self.messages[i].as_ref().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// The library, through its public API only
// ---------------------------------------------------------------------------------------

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
    /// PQXDH: Bob's prekey store, with which he accepts the session.
    store: Option<PreKeyStore>,
    /// PQXDH: the store's encoding as loaded (SPEC.md §7.5).
    store_bytes: Vec<u8>,
}

impl World {
    fn setup(s: &Scenario) -> Self {
        let mut alice_rng = ChaCha20Rng::seed_from_u64(s.alice_seed);
        let mut bob_rng = ChaCha20Rng::seed_from_u64(s.bob_seed);
        let alice_identity = IdentityKeyPair::generate(&mut alice_rng).unwrap();
        let bob_identity = IdentityKeyPair::generate(&mut bob_rng).unwrap();
        let spk = SignedPreKey::generate(&bob_identity, s.signed_prekey_id, &mut bob_rng).unwrap();
        let opk = s
            .one_time_prekey_id
            .map(|id| OneTimePreKey::generate(id, &mut bob_rng).unwrap());
        let (bundle, store, store_bytes) = match &s.post_quantum {
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
        // Alice uses the bundle as received over the network.
        let received = PreKeyBundle::from_bytes(&bundle).unwrap();
        let alice = Session::initiate(&alice_identity, &received, &mut alice_rng).unwrap();
        assert_eq!(alice.is_post_quantum(), s.post_quantum.is_some());
        World {
            bob_identity,
            spk,
            opk,
            bundle,
            alice_rng,
            bob_rng,
            alice,
            bob: None,
            wire: vec![None; s.messages.len()],
            store,
            store_bytes,
        }
    }

    /// Bob's `PreKeyStore::accept` (PQXDH): on success the store deletes the one-time
    /// prekeys the message used, or records its `EK_A` if it used none.
    fn accept(&mut self, message: &[u8]) -> Result<doubleratchet::Accepted, Error> {
        self.store
            .as_mut()
            .expect("accept needs a PQXDH scenario")
            .accept(&self.bob_identity, message)
    }

    /// Bob's `Session::respond` with the prekeys he still holds.
    fn respond(&mut self, message: &[u8]) -> Result<Session, Error> {
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
            self.opk = None; // deleted once used (SPEC.md §8)
        }
        Ok(accepted.session)
    }

    fn session(&mut self, p: Party) -> &mut Session {
        match p {
            Alice => &mut self.alice,
            Bob => self.bob.as_mut().unwrap(),
        }
    }

    fn apply(&mut self, s: &Scenario, op: Op) {
        match op {
            Encrypt(p, i) => {
                let pt = s.messages[i].1.as_bytes();
                let wire = match p {
                    Alice => self.alice.encrypt(pt, &mut self.alice_rng),
                    Bob => self.bob.as_mut().unwrap().encrypt(pt, &mut self.bob_rng),
                };
                self.wire[i] = Some(wire.unwrap());
            }
            Respond(i) => {
                let wire = self.wire[i].clone().unwrap();
                let session = self.respond(&wire).unwrap();
                self.bob = Some(session);
                // The plaintext is checked by the caller through `decrypted`.
            }
            Accept(i) => {
                let wire = self.wire[i].clone().unwrap();
                let accepted = self.accept(&wire).unwrap();
                assert_eq!(accepted.plaintext, s.messages[i].1.as_bytes());
                self.bob = Some(accepted.session);
            }
            Decrypt(p, i) => {
                let wire = self.wire[i].clone().unwrap();
                let pt = self.session(p).decrypt(&wire).unwrap();
                assert_eq!(pt, s.messages[i].1.as_bytes(), "library plaintext {i}");
            }
        }
    }

    fn replay(s: &Scenario, events: usize) -> Self {
        let mut world = World::setup(s);
        for op in &s.script[..events] {
            world.apply(s, *op);
        }
        world
    }
}

/// Runs the whole script through the library and checks the plaintext of `Respond` too.
fn run_library(s: &Scenario) -> World {
    let mut world = World::setup(s);
    for op in s.script {
        if let Accept(i) = *op {
            let wire = world.wire[i].clone().unwrap();
            let accepted = world.accept(&wire).unwrap();
            assert_eq!(accepted.plaintext, s.messages[i].1.as_bytes());
            assert_eq!(accepted.used_one_time_prekey, s.one_time_prekey_id);
            assert_eq!(
                accepted.used_post_quantum_prekey,
                s.post_quantum.map(|p| p.id)
            );
            assert!(accepted.session.is_post_quantum());
            world.bob = Some(accepted.session);
            library_pq::check_store_after_accept(s, world.store.as_ref().unwrap());
            continue;
        }
        if let Respond(i) = *op {
            let wire = world.wire[i].clone().unwrap();
            let spk = &world.spk;
            let opk = world.opk.as_ref();
            let accepted = Session::respond(
                &world.bob_identity,
                |id| (id == spk.id()).then_some(spk),
                |id| opk.filter(|k| k.id() == id),
                &wire,
            )
            .unwrap();
            assert_eq!(accepted.plaintext, s.messages[i].1.as_bytes());
            assert_eq!(accepted.used_one_time_prekey, s.one_time_prekey_id);
        }
        world.apply(s, *op);
    }
    world
}

/// The library's PQXDH API (public items only).
#[cfg(feature = "pqxdh")]
mod library_pq {
    use doubleratchet::{
        IdentityKeyPair, OneTimePreKey, PqPreKey, PqPreKeyKind, PreKeyBundle, PreKeyStore,
        SignedPreKey,
    };
    use rand_chacha::ChaCha20Rng;

    use super::{PqKind, PqSpec, Scenario};

    /// `PqPreKey::generate` (after the classical prekeys, from Bob's RNG), the PQXDH bundle,
    /// and Bob's prekey store holding the three keys. `PreKeyStore` issues its own ids, so
    /// the store is loaded from the keys' stored encodings (SPEC.md §7.3, §7.4, §7.7) in the
    /// §7.5 type `0x27` framing. Returns the bundle's bytes, the store and its encoding.
    pub(super) fn setup(
        spec: &PqSpec,
        bob: &IdentityKeyPair,
        spk: &SignedPreKey,
        opk: Option<&OneTimePreKey>,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<u8>, PreKeyStore, Vec<u8>) {
        let kind = match spec.kind {
            PqKind::OneTime => PqPreKeyKind::OneTime,
            PqKind::LastResort => PqPreKeyKind::LastResort,
        };
        let pq = PqPreKey::generate(bob, spec.id, kind, rng).unwrap();
        let bundle = PreKeyBundle::new(bob, spk, opk).with_post_quantum_prekey(&pq);
        assert_eq!(bundle.post_quantum_prekey_id(), Some(spec.id));

        let mut bytes = vec![0x01, 0x27];
        bytes.extend_from_slice(&spk.id().to_be_bytes());
        bytes.extend_from_slice(&(spk.id() + 1).to_be_bytes());
        bytes.extend_from_slice(&opk.map_or(1, |k| k.id() + 1).to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&spk.to_bytes());
        bytes.extend_from_slice(&u32::from(opk.is_some()).to_be_bytes());
        if let Some(k) = opk {
            bytes.extend_from_slice(&k.to_bytes());
        }
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&(pq.id() + 1).to_be_bytes());
        match kind {
            PqPreKeyKind::LastResort => {
                bytes.push(0x01);
                bytes.extend_from_slice(&pq.id().to_be_bytes());
            }
            _ => bytes.extend_from_slice(&[0u8; 5]),
        }
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&pq.to_bytes());
        let store = PreKeyStore::from_bytes(&bytes).unwrap();
        assert_eq!(&store.to_bytes()[..], &bytes[..], "store round trip");
        // The store publishes the same bundle.
        let published = store
            .pq_bundle(
                bob,
                opk.map(OneTimePreKey::id),
                (spec.kind == PqKind::OneTime).then_some(spec.id),
            )
            .unwrap();
        assert_eq!(published, bundle, "PreKeyStore::pq_bundle");
        (bundle.to_bytes(), store, bytes)
    }

    /// After a successful accept (SPEC.md §8): one-time prekeys of both kinds deleted; a
    /// last-resort key kept, with a replay record for the session.
    pub(super) fn check_store_after_accept(s: &Scenario, store: &PreKeyStore) {
        let spec = s.post_quantum.unwrap();
        if let Some(id) = s.one_time_prekey_id {
            assert!(store.one_time_prekey(id).is_none());
        }
        let one_time = spec.kind == PqKind::OneTime;
        assert_eq!(store.pq_prekey(spec.id).is_none(), one_time);
        let needs_record = s.one_time_prekey_id.is_none() && !one_time;
        assert_eq!(store.replay_records(), usize::from(needs_record));
    }
}

/// Without the `pqxdh` feature the PQXDH scenarios are skipped ([`supported`]).
#[cfg(not(feature = "pqxdh"))]
mod library_pq {
    use doubleratchet::{IdentityKeyPair, OneTimePreKey, PreKeyStore, SignedPreKey};
    use rand_chacha::ChaCha20Rng;

    use super::{PqSpec, Scenario};

    pub(super) fn setup(
        _: &PqSpec,
        _: &IdentityKeyPair,
        _: &SignedPreKey,
        _: Option<&OneTimePreKey>,
        _: &mut ChaCha20Rng,
    ) -> (Vec<u8>, PreKeyStore, Vec<u8>) {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn check_store_after_accept(_: &Scenario, _: &PreKeyStore) {
        unreachable!("PQXDH needs the pqxdh feature")
    }
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct Provenance {
    generator: &'static str,
    command: &'static str,
    date: &'static str,
    spec: &'static str,
    library: String,
    rng: &'static str,
    method: &'static str,
}

/// The provenance of the PQXDH files.
fn provenance_pq() -> Provenance {
    Provenance {
        spec: "SPEC.md, protocol profile v1 (PQXDH: sections 1-6, 3.6, 5.3 type 0x03, 5.4 type \
               0x11, 7.5 type 0x27, 7.7)",
        rng: "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every X25519/Ed25519 key \
              generation is one try_fill_bytes of 32 bytes, PqPreKey::generate one of 64 bytes \
              (the ML-KEM seed d || z), and Session::initiate draws the 32-byte ML-KEM \
              encapsulation randomness m between EK_A and the first ratchet key (SPEC.md 2.5)",
        method: "message bytes produced by the library's public API; every value recomputed \
                 independently from the SPEC.md v1 formulas with x25519-dalek, \
                 curve25519-dalek, ed25519-dalek, sha2, hkdf, hmac, aes-gcm and ml-kem \
                 (ML-KEM-768 KeyGen from the seed, Encaps_internal with m, Decaps), and \
                 asserted equal to the library's output before writing",
        ..provenance()
    }
}

fn provenance() -> Provenance {
    Provenance {
        generator: "examples/generate_vectors.rs",
        command: "cargo run --example generate_vectors",
        date: DATE,
        spec: "SPEC.md, protocol profile v1 (X3DH + Double Ratchet, sections 1-6)",
        library: format!("doubleratchet {}", env!("CARGO_PKG_VERSION")),
        rng: "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every key generation is one \
              try_fill_bytes of 32 bytes (SPEC.md 2.5)",
        method: "message bytes produced by the library's public API; every value recomputed \
                 independently from the SPEC.md v1 formulas with x25519-dalek, \
                 curve25519-dalek, ed25519-dalek, sha2, hkdf, hmac and aes-gcm, and asserted \
                 equal to the library's output before writing",
    }
}

#[derive(Serialize)]
struct Constants {
    x3dh_info: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pqxdh_info: Option<&'static str>,
    root_info: &'static str,
    message_info: &'static str,
    session_id_label: &'static str,
    x3dh_salt: String,
    x3dh_ikm_prefix: String,
    message_keys_salt: String,
    signature_prefix: String,
    chain_message_key_byte: String,
    chain_next_key_byte: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kem_encoding_prefix: Option<String>,
}

fn constants(post_quantum: bool) -> Constants {
    Constants {
        x3dh_info: "doubleratchet v1 X3DH",
        pqxdh_info: post_quantum.then_some("doubleratchet v1 PQXDH"),
        root_info: "doubleratchet v1 root",
        message_info: "doubleratchet v1 message keys",
        session_id_label: "doubleratchet v1 session id",
        x3dh_salt: hex(&[0u8; 32]),
        x3dh_ikm_prefix: hex(&[0xFFu8; 32]),
        message_keys_salt: hex(&[0u8; 32]),
        signature_prefix: hex(&[0x05]),
        chain_message_key_byte: hex(&[0x01]),
        chain_next_key_byte: hex(&[0x02]),
        kem_encoding_prefix: post_quantum.then(|| hex(&[KEM_ENCODING_PREFIX])),
    }
}

#[derive(Serialize, Clone)]
struct DrawJson {
    index: usize,
    purpose: String,
    bytes: String,
}

#[derive(Serialize)]
struct KeyPairJson {
    private: String,
    public: String,
}

#[derive(Serialize)]
struct IdentityJson {
    seed: String,
    ed25519_public: String,
    sha512_of_seed: String,
    x25519_private: String,
    x25519_public: String,
}

#[derive(Serialize)]
struct EventJson {
    step: usize,
    op: &'static str,
    party: &'static str,
    message: usize,
}

#[derive(Serialize)]
struct ScenarioJson {
    name: &'static str,
    description: &'static str,
    alice_rng_seed: u64,
    bob_rng_seed: u64,
    signed_prekey_id: u32,
    one_time_prekey_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_kind: Option<&'static str>,
    setup: Vec<&'static str>,
    events: Vec<EventJson>,
}

#[derive(Serialize)]
struct RngDrawsJson {
    alice: Vec<DrawJson>,
    bob: Vec<DrawJson>,
}

#[derive(Serialize)]
struct AliceJson {
    identity: IdentityJson,
    ephemeral: KeyPairJson,
    ratchet_keys: Vec<KeyPairJson>,
}

#[derive(Serialize)]
struct SignedPreKeyJson {
    id: u32,
    private: String,
    public: String,
    signed_message: String,
    signature: String,
}

#[derive(Serialize)]
struct OneTimePreKeyJson {
    id: u32,
    private: String,
    public: String,
}

#[derive(Serialize)]
struct PqPreKeyJson {
    id: u32,
    kind: &'static str,
    /// `d || z`, 64 bytes as drawn.
    seed: String,
    d: String,
    z: String,
    encapsulation_key: String,
    /// `EncodeKEM(PQPK) = 0x0A || ek`.
    signed_message: String,
    signature: String,
}

#[derive(Serialize)]
struct BobJson {
    identity: IdentityJson,
    signed_prekey: SignedPreKeyJson,
    one_time_prekey: Option<OneTimePreKeyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey: Option<PqPreKeyJson>,
    /// The stored prekey store (SPEC.md §7.5, type 0x27) Bob accepts with.
    #[serde(skip_serializing_if = "Option::is_none")]
    prekey_store: Option<String>,
    ratchet_keys: Vec<KeyPairJson>,
}

/// PQXDH's KEM step (SPEC.md §3.6).
#[derive(Serialize)]
struct PqxdhJson {
    post_quantum_prekey_id: u32,
    encapsulation_randomness_m: String,
    kem_ciphertext: String,
    shared_secret: String,
}

#[derive(Serialize)]
struct X3dhJson {
    dh1: String,
    dh2: String,
    dh3: String,
    dh4: Option<String>,
    ikm: String,
    sk: String,
    ad: String,
    session_id: String,
}

#[derive(Serialize)]
struct RootStepJson {
    index: usize,
    sender: &'static str,
    rk_in: String,
    sender_ratchet_private: String,
    sender_ratchet_public: String,
    receiver_ratchet_private: String,
    receiver_ratchet_public: String,
    dh_output: String,
    rk_out: String,
    chain_key: String,
}

#[derive(Serialize)]
struct InitialFieldsJson {
    identity_key: String,
    base_key: String,
    signed_prekey_id: u32,
    one_time_prekey_flag: u8,
    one_time_prekey_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kem_ciphertext: Option<String>,
}

#[derive(Serialize)]
struct MessageJson {
    index: usize,
    sender: &'static str,
    kind: &'static str,
    plaintext_utf8: String,
    plaintext: String,
    initial_fields: Option<InitialFieldsJson>,
    root_step: usize,
    ratchet_public: String,
    pn: u32,
    n: u32,
    chain_key: String,
    message_key: String,
    next_chain_key: String,
    aes_key: String,
    aes_nonce: String,
    prefix: String,
    aad: String,
    ciphertext: String,
    tag: String,
    bytes: String,
}

#[derive(Serialize)]
struct VectorFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: Constants,
    scenario: ScenarioJson,
    rng_draws: RngDrawsJson,
    alice: AliceJson,
    bob: BobJson,
    bundle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pqxdh: Option<PqxdhJson>,
    x3dh: X3dhJson,
    root_steps: Vec<RootStepJson>,
    messages: Vec<MessageJson>,
}

fn event_json(step: usize, op: Op) -> EventJson {
    let (op, party, message) = match op {
        Encrypt(p, i) => ("encrypt", p.name(), i),
        Respond(i) => ("respond", "bob", i),
        Accept(i) => ("accept", "bob", i),
        Decrypt(p, i) => ("decrypt", p.name(), i),
    };
    EventJson {
        step,
        op,
        party,
        message,
    }
}

/// The `setup` steps of a PQXDH file.
const PQ_SETUP: &[&str] = &[
    "alice_rng = ChaCha20Rng::seed_from_u64(alice_rng_seed); bob_rng = ChaCha20Rng::seed_from_u64(bob_rng_seed)",
    "IK_A = IdentityKeyPair::generate(alice_rng); IK_B = IdentityKeyPair::generate(bob_rng)",
    "SPK_B = SignedPreKey::generate(IK_B, signed_prekey_id, bob_rng)",
    "if one_time_prekey_id is not null: OPK_B = OneTimePreKey::generate(one_time_prekey_id, bob_rng)",
    "PQPK_B = PqPreKey::generate(IK_B, post_quantum_prekey_id, post_quantum_prekey_kind, bob_rng) (one 64-byte draw: the ML-KEM seed d || z)",
    "bundle = PreKeyBundle::new(IK_B, SPK_B, OPK_B).with_post_quantum_prekey(PQPK_B).to_bytes() (type 0x11); Alice parses it with PreKeyBundle::from_bytes",
    "Bob's store = PreKeyStore::from_bytes(bob.prekey_store): SPK_B, OPK_B and PQPK_B in the SPEC.md 7.5 type 0x27 encoding (PreKeyStore issues its own ids, so it is loaded rather than generated); PreKeyStore::pq_bundle gives the same bundle",
    "alice = Session::initiate(IK_A, bundle, alice_rng) (draws EK_A, then m, then the first ratchet key)",
    "then the events in order: encrypt uses the party's own rng; accept is PreKeyStore::accept(IK_B, message) on Bob's store and creates Bob's session (Session::respond refuses PQXDH messages); the store then deletes one-time prekeys of both kinds, or records EK_A if the message used none",
];

fn vector_file(s: &Scenario, m: &Model) -> VectorFile {
    let (protocol, api) = match &m.pq {
        Some(_) => (
            "PQXDH, SPEC.md 3.6",
            "Session::initiate / encrypt / PreKeyStore::accept / decrypt",
        ),
        None => (
            "SPEC.md protocol profile v1",
            "Session::initiate / encrypt / respond / decrypt",
        ),
    };
    let mut comment = vec![
        if m.pq.is_some() {
            format!(
                "Known-answer vectors for the doubleratchet crate, SPEC.md protocol profile v1 ({protocol}): {}.",
                s.name
            )
        } else {
            format!(
                "Known-answer vectors for the doubleratchet crate, {protocol}: {}.",
                s.name
            )
        },
        format!(
            "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); do not edit by hand."
        ),
        format!(
            "Secrets: rand_chacha 0.10 ChaCha20Rng::seed_from_u64({} = {:#x}) for Alice and seed_from_u64({} = {:#x}) for Bob; \
             each key generation draws 32 bytes with one try_fill_bytes call, in the order of rng_draws (SPEC.md 2.5).",
            s.alice_seed, s.alice_seed, s.bob_seed, s.bob_seed
        ),
        format!(
            "Every value below is computed from the SPEC.md v1 formulas with the primitive crates, independently \
             of the library; the generator asserted that each message's bytes equal the bytes the library's public \
             API produced ({api}) before writing this file."
        ),
        "Byte strings are lowercase hex. X25519 private keys are given as drawn (unclamped) except the \
         identity's x25519_private, which is clamp(SHA-512(seed)[0..32]). tests/vectors.rs checks this file."
            .into(),
    ];
    if m.pq.is_some() {
        comment[2] = format!(
            "Secrets: rand_chacha 0.10 ChaCha20Rng::seed_from_u64({} = {:#x}) for Alice and seed_from_u64({} = {:#x}) for Bob; \
             each X25519/Ed25519 key generation draws 32 bytes with one try_fill_bytes call, PqPreKey::generate draws the \
             64-byte ML-KEM seed d || z with one call, and Session::initiate draws EK_A, then the 32-byte ML-KEM \
             encapsulation randomness m, then the first ratchet key, in the order of rng_draws (SPEC.md 2.5).",
            s.alice_seed, s.alice_seed, s.bob_seed, s.bob_seed
        );
        comment.push(
            "PQXDH (SPEC.md 3.6): (CT, SS) = ML-KEM-768.Encaps_internal(ek, m); SK = HKDF(salt = 0x00^32, IKM = \
             0xFF^32 || DH1 || DH2 || DH3 [|| DH4] || SS, info = \"doubleratchet v1 PQXDH\", L = 32); the bundle \
             (type 0x11) carries Sig(IK_B, 0x0A || ek); every initial message (type 0x03) carries the PQ prekey id and CT."
                .into(),
        );
    }
    let root_steps = m
        .roots
        .iter()
        .enumerate()
        .map(|(index, r)| RootStepJson {
            index,
            sender: r.sender.name(),
            rk_in: hex(&r.rk_in),
            sender_ratchet_private: hex(&r.sender_key.private),
            sender_ratchet_public: hex(&r.sender_key.public),
            receiver_ratchet_private: hex(&r.receiver_key.private),
            receiver_ratchet_public: hex(&r.receiver_key.public),
            dh_output: hex(&r.dh_output),
            rk_out: hex(&r.rk_out),
            chain_key: hex(&r.chain_key),
        })
        .collect();
    let messages = (0..s.messages.len())
        .map(|index| {
            let r = m.message(index);
            let ct_len = r.plaintext.len();
            let body = &r.bytes[r.prefix.len()..];
            MessageJson {
                index,
                sender: r.sender.name(),
                kind: if r.initial.is_some() {
                    "initial"
                } else {
                    "normal"
                },
                plaintext_utf8: String::from_utf8(r.plaintext.clone()).unwrap(),
                plaintext: hex(&r.plaintext),
                initial_fields: r.initial.map(|f| InitialFieldsJson {
                    identity_key: hex(&f.identity),
                    base_key: hex(&f.base_key),
                    signed_prekey_id: f.signed_prekey_id,
                    one_time_prekey_flag: u8::from(f.one_time_prekey_id.is_some()),
                    one_time_prekey_id: f.one_time_prekey_id.unwrap_or(0),
                    post_quantum_prekey_id: f.post_quantum.map(|(id, _)| id),
                    kem_ciphertext: f.post_quantum.map(|(_, ct)| hex(&ct)),
                }),
                root_step: r.root_step,
                ratchet_public: hex(&r.ratchet_public),
                pn: r.pn,
                n: r.n,
                chain_key: hex(&r.chain_key),
                message_key: hex(&r.message_key),
                next_chain_key: hex(&r.next_chain_key),
                aes_key: hex(&r.aes_key),
                aes_nonce: hex(&r.aes_nonce),
                prefix: hex(&r.prefix),
                aad: hex(&r.aad),
                ciphertext: hex(&body[..ct_len]),
                tag: hex(&body[ct_len..]),
                bytes: hex(&r.bytes),
            }
        })
        .collect();
    let [alice_draws, bob_draws] = [0, 1].map(|p| m.drawers[p].draws.clone());
    VectorFile {
        comment,
        kind: "conversation",
        provenance: if m.pq.is_some() {
            provenance_pq()
        } else {
            provenance()
        },
        constants: constants(m.pq.is_some()),
        scenario: ScenarioJson {
            name: s.name,
            description: s.description,
            alice_rng_seed: s.alice_seed,
            bob_rng_seed: s.bob_seed,
            signed_prekey_id: s.signed_prekey_id,
            one_time_prekey_id: s.one_time_prekey_id,
            post_quantum_prekey_id: s.post_quantum.map(|p| p.id),
            post_quantum_prekey_kind: s.post_quantum.map(|p| p.kind.name()),
            setup: if m.pq.is_some() {
                PQ_SETUP.to_vec()
            } else {
                vec![
                "alice_rng = ChaCha20Rng::seed_from_u64(alice_rng_seed); bob_rng = ChaCha20Rng::seed_from_u64(bob_rng_seed)",
                "IK_A = IdentityKeyPair::generate(alice_rng); IK_B = IdentityKeyPair::generate(bob_rng)",
                "SPK_B = SignedPreKey::generate(IK_B, signed_prekey_id, bob_rng)",
                "if one_time_prekey_id is not null: OPK_B = OneTimePreKey::generate(one_time_prekey_id, bob_rng)",
                "bundle = PreKeyBundle::new(IK_B, SPK_B, OPK_B).to_bytes(); Alice parses it with PreKeyBundle::from_bytes",
                "alice = Session::initiate(IK_A, bundle, alice_rng)",
                "then the events in order: encrypt uses the party's own rng; respond is Session::respond(IK_B, SPK_B by id, OPK_B by id) and creates Bob's session; Bob deletes OPK_B once it is used",
            ]
            },
            events: s
                .script
                .iter()
                .enumerate()
                .map(|(step, op)| event_json(step, *op))
                .collect(),
        },
        rng_draws: RngDrawsJson {
            alice: alice_draws,
            bob: bob_draws,
        },
        alice: AliceJson {
            identity: m.alice.json(),
            ephemeral: m.ek.json(),
            ratchet_keys: m.ratchet_keys[0].iter().map(KeyPair::json).collect(),
        },
        bob: BobJson {
            identity: m.bob.json(),
            signed_prekey: SignedPreKeyJson {
                id: s.signed_prekey_id,
                private: hex(&m.spk.private),
                public: hex(&m.spk.public),
                signed_message: hex(&m.spk_signed_message),
                signature: hex(&m.spk_signature),
            },
            one_time_prekey: m.opk.map(|k| OneTimePreKeyJson {
                id: s.one_time_prekey_id.unwrap(),
                private: hex(&k.private),
                public: hex(&k.public),
            }),
            post_quantum_prekey: m.pq.as_ref().map(|pq| PqPreKeyJson {
                id: pq.id,
                kind: pq.kind.name(),
                seed: hex(&pq.seed),
                d: hex(&pq.seed[..32]),
                z: hex(&pq.seed[32..]),
                encapsulation_key: hex(&pq.public),
                signed_message: hex(&pq.signed_message),
                signature: hex(&pq.signature),
            }),
            prekey_store: m.pq.as_ref().map(|pq| hex(&pq.store)),
            ratchet_keys: m.ratchet_keys[1].iter().map(KeyPair::json).collect(),
        },
        bundle: hex(&m.bundle),
        pqxdh: m.pq.as_ref().map(|pq| PqxdhJson {
            post_quantum_prekey_id: pq.id,
            encapsulation_randomness_m: hex(&pq.m),
            kem_ciphertext: hex(&pq.ciphertext),
            shared_secret: hex(&pq.shared_secret),
        }),
        x3dh: X3dhJson {
            dh1: hex(&m.x3dh.dh1),
            dh2: hex(&m.x3dh.dh2),
            dh3: hex(&m.x3dh.dh3),
            dh4: m.x3dh.dh4.map(|d| hex(&d)),
            ikm: hex(&m.x3dh.ikm),
            sk: hex(&m.x3dh.sk),
            ad: hex(&m.x3dh.ad),
            session_id: hex(&m.x3dh.session_id),
        },
        root_steps,
        messages,
    }
}

// ---------------------------------------------------------------------------------------
// Rejection cases
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Clone)]
struct RejectCase {
    name: String,
    description: String,
    base_vector: &'static str,
    /// How many of the base vector's events to replay first (setup always runs).
    after_events: usize,
    /// `initiate` (Alice parses the bundle and calls Session::initiate), `respond` (Bob
    /// calls Session::respond with the prekeys he still holds) or `decrypt`.
    operation: &'static str,
    party: &'static str,
    input: String,
    expected_error: String,
    /// For `decrypt`: the base message that must still decrypt afterwards (the failed
    /// call changed nothing).
    then_decrypts: Option<usize>,
}

#[derive(Serialize)]
struct RejectFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    cases: Vec<RejectCase>,
}

fn xor_at(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= mask;
    out
}

fn replace_at(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + with.len()].copy_from_slice(with);
    out
}

/// Index of the first event after which message `i` has been sent and not yet received
/// by `receiver` in the base scenario.
fn before_receipt(s: &Scenario, receiver: Party, i: usize) -> usize {
    s.script
        .iter()
        .position(|op| match *op {
            Respond(j) | Accept(j) => receiver == Bob && j == i,
            Decrypt(p, j) => p == receiver && j == i,
            Encrypt(..) => false,
        })
        .unwrap()
}

fn after_event(s: &Scenario, target: fn(&Op) -> bool) -> usize {
    s.script.iter().position(target).unwrap() + 1
}

fn reject_cases(s: &Scenario, m: &Model) -> Vec<RejectCase> {
    let base = s.file;
    let mut cases = Vec::new();
    let mut add = |name: &str,
                   description: String,
                   after_events: usize,
                   operation: &'static str,
                   party: Party,
                   input: Vec<u8>,
                   expected_error: &str,
                   then_decrypts: Option<usize>| {
        cases.push(RejectCase {
            name: name.into(),
            description,
            base_vector: base,
            after_events,
            operation,
            party: party.name(),
            input: hex(&input),
            expected_error: expected_error.into(),
            then_decrypts,
        });
    };

    // Messages of the base conversation: 0 (Alice, initial), 1 (Alice, initial),
    // 2 (Bob's first reply), 3 (Alice, normal, new ratchet key).
    let m0 = &m.message(0).bytes;
    let m1 = &m.message(1).bytes;
    let m2 = &m.message(2).bytes;
    let m3 = &m.message(3).bytes;
    let at_m0 = before_receipt(s, Bob, 0);
    let at_m1 = before_receipt(s, Bob, 1);
    let at_m2 = before_receipt(s, Alice, 2);
    let at_m3 = before_receipt(s, Bob, 3);
    assert_eq!(at_m0, 2, "message 0 is the one Bob responds to");

    // --- flipped tag / ciphertext / authenticated header bytes -------------------------
    add(
        "initial_tag_bit_flipped",
        "message 0 with the last tag byte xor 0x01; Bob responds to it".into(),
        at_m0,
        "respond",
        Bob,
        xor_at(m0, m0.len() - 1, 0x01),
        "DecryptionFailed",
        None,
    );
    add(
        "initial_ciphertext_bit_flipped",
        "message 0 with the first ciphertext byte (offset 115) xor 0x80".into(),
        at_m0,
        "respond",
        Bob,
        xor_at(m0, 115, 0x80),
        "DecryptionFailed",
        None,
    );
    add(
        "initial_pn_changed",
        "message 0 with PN (offset 107..111) set to 1: the header is authenticated as AAD".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 107, &1u32.to_be_bytes()),
        "DecryptionFailed",
        None,
    );
    add(
        "second_initial_tag_bit_flipped",
        "message 1 (an initial message of Bob's existing session) with the first tag byte xor 0x01"
            .into(),
        at_m1,
        "decrypt",
        Bob,
        xor_at(m1, m1.len() - 16, 0x01),
        "DecryptionFailed",
        Some(1),
    );
    add(
        "normal_tag_bit_flipped",
        "message 2 (Bob's first reply) with the last tag byte xor 0x01; Alice decrypts it".into(),
        at_m2,
        "decrypt",
        Alice,
        xor_at(m2, m2.len() - 1, 0x01),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "normal_ciphertext_bit_flipped",
        "message 3 with the first ciphertext byte (offset 42) xor 0x01; Bob decrypts it".into(),
        at_m3,
        "decrypt",
        Bob,
        xor_at(m3, 42, 0x01),
        "DecryptionFailed",
        Some(3),
    );
    add(
        "normal_n_changed",
        "message 2 with N (offset 38..42) set to 1: a valid skip, but the wrong key and AAD".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 38, &1u32.to_be_bytes()),
        "DecryptionFailed",
        Some(2),
    );

    // --- wrong associated data: message 2 re-encrypted under its own key ---------------
    let r2 = m.message(2);
    let (key2, nonce2) = (r2.aes_key, r2.aes_nonce);
    let reseal = |aad: &[u8]| {
        cat(&[
            &r2.prefix,
            &aes_gcm_seal(&key2, &nonce2, aad, &r2.plaintext),
        ])
    };
    let swapped_ad = cat(&[&m.bob.ed25519_public, &m.alice.ed25519_public, &r2.prefix]);
    add(
        "wrong_ad_identities_swapped",
        "message 2 re-encrypted with its correct message key but AAD = IK_B || IK_A || prefix \
         (the identities in the wrong order)"
            .into(),
        at_m2,
        "decrypt",
        Alice,
        reseal(&swapped_ad),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "wrong_ad_without_prefix",
        "message 2 re-encrypted with its correct message key but AAD = IK_A || IK_B only (the \
         header bytes not authenticated)"
            .into(),
        at_m2,
        "decrypt",
        Alice,
        reseal(&m.x3dh.ad),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "wrong_ad_prefix_only",
        "message 2 re-encrypted with its correct message key but AAD = prefix only (no AD)".into(),
        at_m2,
        "decrypt",
        Alice,
        reseal(&r2.prefix),
        "DecryptionFailed",
        Some(2),
    );
    // Sanity: the correct AAD reproduces message 2 exactly.
    assert_eq!(&reseal(&r2.aad), m2);

    // --- truncation and length ---------------------------------------------------------
    add(
        "truncated_empty",
        "the empty string".into(),
        at_m2,
        "decrypt",
        Alice,
        Vec::new(),
        "Truncated",
        Some(2),
    );
    add(
        "truncated_in_header",
        "message 2 cut to its first 41 bytes (inside N)".into(),
        at_m2,
        "decrypt",
        Alice,
        m2[..41].to_vec(),
        "Truncated",
        Some(2),
    );
    add(
        "truncated_below_tag_length",
        "message 2 cut to 57 bytes: the 42-byte prefix and 15 bytes, shorter than a tag".into(),
        at_m2,
        "decrypt",
        Alice,
        m2[..57].to_vec(),
        "Truncated",
        Some(2),
    );
    add(
        "truncated_last_byte",
        "message 2 without its last byte (the body is still at least 16 bytes, so it parses; \
         the tag does not verify)"
            .into(),
        at_m2,
        "decrypt",
        Alice,
        m2[..m2.len() - 1].to_vec(),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "trailing_byte",
        "message 2 with one extra byte 0x00 appended".into(),
        at_m2,
        "decrypt",
        Alice,
        cat(&[m2, &[0x00]]),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "initial_truncated_in_x3dh_fields",
        "message 0 cut to its first 70 bytes (before the one-time prekey flag)".into(),
        at_m0,
        "respond",
        Bob,
        m0[..70].to_vec(),
        "Truncated",
        None,
    );

    // --- invalid public keys -------------------------------------------------------------
    for (label, u) in SMALL_ORDER_U {
        let u: [u8; 32] = unhex(u);
        add(
            &format!("low_order_ratchet_key_{}", hex(&u[..2])),
            format!(
                "message 2 with its ratchet key (offset 2..34) replaced by the small-order point {label}"
            ),
            at_m2,
            "decrypt",
            Alice,
            replace_at(m2, 2, &u),
            "InvalidPublicKey",
            Some(2),
        );
    }
    let mut p_plus_1 = [0xFFu8; 32];
    p_plus_1[0] = 0xEE;
    p_plus_1[31] = 0x7F;
    add(
        "non_canonical_ratchet_key_p_plus_1",
        "message 2 with its ratchet key replaced by u = p + 1 (not reduced mod p)".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 2, &p_plus_1),
        "InvalidPublicKey",
        Some(2),
    );
    add(
        "non_canonical_ratchet_key_high_bit",
        "message 2 with bit 255 of its ratchet key set".into(),
        at_m2,
        "decrypt",
        Alice,
        xor_at(m2, 33, 0x80),
        "InvalidPublicKey",
        Some(2),
    );
    add(
        "initial_low_order_ratchet_key",
        "message 0 with its ratchet key (offset 75..107) replaced by the order-8 point e0eb.."
            .into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 75, &unhex::<32>(SMALL_ORDER_U[2].1)),
        "InvalidPublicKey",
        None,
    );
    add(
        "initial_low_order_base_key",
        "message 0 with EK_A (offset 34..66) replaced by u = 0".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 34, &[0u8; 32]),
        "InvalidPublicKey",
        None,
    );
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    add(
        "initial_small_order_identity_key",
        "message 0 with IK_A (offset 2..34) replaced by the Edwards identity point (y = 1)".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 2, &identity_point),
        "InvalidPublicKey",
        None,
    );

    // --- framing -------------------------------------------------------------------------
    add(
        "unsupported_version",
        "message 2 with version byte 0x02".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 0, &[0x02]),
        "UnsupportedVersion(2)",
        Some(2),
    );
    add(
        "unknown_message_type",
        "message 2 with type byte 0xff (unassigned in SPEC.md 5.5)".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 1, &[0xFF]),
        "UnexpectedType(255)",
        Some(2),
    );
    add(
        "bundle_type_as_message",
        "message 2 with type byte 0x10 (the prekey bundle's type, not a message type)".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 1, &[0x10]),
        "UnexpectedType(16)",
        Some(2),
    );
    add(
        "initial_invalid_opk_flag",
        "message 0 with one-time prekey flag (offset 70) 0x02".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 70, &[0x02]),
        "InvalidEncoding",
        None,
    );

    // --- session-level -------------------------------------------------------------------
    add(
        "normal_message_to_respond",
        "message 2 (a normal message) given to Session::respond".into(),
        at_m0,
        "respond",
        Bob,
        m2.clone(),
        "NotInitialMessage",
        None,
    );
    add(
        "initial_unknown_signed_prekey",
        "message 0 with the signed prekey id (offset 66..70) changed to 0xdeadbeef".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 66, &0xDEAD_BEEFu32.to_be_bytes()),
        "UnknownSignedPreKey(3735928559)",
        None,
    );
    if let Some(id) = s.one_time_prekey_id {
        add(
            "initial_unknown_one_time_prekey",
            format!(
                "message 0 with the one-time prekey id (offset 71..75) changed to {}",
                id + 1
            ),
            at_m0,
            "respond",
            Bob,
            replace_at(m0, 71, &(id + 1).to_be_bytes()),
            &format!("UnknownOneTimePreKey({})", id + 1),
            None,
        );
        add(
            "initial_replayed_after_accept",
            "message 0 given to Session::respond again after Bob accepted it and deleted the \
             one-time prekey it used: a replay cannot create a second session"
                .into(),
            at_m0 + 1,
            "respond",
            Bob,
            m0.clone(),
            &format!("UnknownOneTimePreKey({id})"),
            None,
        );
    }
    add(
        "replayed_message",
        "message 1 decrypted a second time by Bob".into(),
        at_m1 + 1,
        "decrypt",
        Bob,
        m1.clone(),
        "DuplicateOrExpired",
        None,
    );
    add(
        "initial_message_to_initiator",
        "message 0 (Alice's own initial message) given to Alice's session".into(),
        at_m2,
        "decrypt",
        Alice,
        m0.clone(),
        "WrongSession",
        Some(2),
    );
    add(
        "reflected_own_message",
        "message 3 (Alice's own, carrying her current ratchet key) given back to Alice".into(),
        after_event(s, |op| matches!(op, Encrypt(Alice, 3))),
        "decrypt",
        Alice,
        m3.clone(),
        "DecryptionFailed",
        None,
    );
    add(
        "too_far_ahead",
        "message 2 with N set to 1001 (more than max_skip = 1000 keys ahead in a new chain); \
         rejected before any key is derived"
            .into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 38, &1001u32.to_be_bytes()),
        "TooFarAhead",
        Some(2),
    );

    add(
        "pn_too_far_ahead",
        "message 3 (a new ratchet key for Bob) with PN (offset 34..38) set to 1003: more than \
         max_skip = 1000 keys ahead of Bob's receiving chain (Nr = 2); rejected before any key \
         is derived"
            .into(),
        at_m3,
        "decrypt",
        Bob,
        replace_at(m3, 34, &1003u32.to_be_bytes()),
        "TooFarAhead",
        Some(3),
    );
    add(
        "ratchet_key_is_signed_prekey",
        "message 2 with its ratchet key replaced by SPK_B, Alice's initial DHr, which has no \
         receiving chain (SPEC.md 4.6 step 2)"
            .into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 2, &m.spk.public),
        "DecryptionFailed",
        Some(2),
    );
    add(
        "initial_from_own_identity",
        "message 0 with IK_A replaced by IK_B: Bob receiving an initial message from himself"
            .into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 2, &m.bob.ed25519_public),
        "WrongSession",
        None,
    );
    add(
        "initial_of_another_session",
        "message 1 with EK_A replaced by another valid key (the X25519 public key of the secret \
         0x42^32), given to Bob's existing session: it belongs to a different session"
            .into(),
        at_m1,
        "decrypt",
        Bob,
        replace_at(m1, 34, &x25519_public(&[0x42; 32])),
        "WrongSession",
        Some(1),
    );

    // --- bundle signature ----------------------------------------------------------------
    let bundle = &m.bundle;
    add(
        "bundle_signature_r_bit_flipped",
        "the base bundle with the first byte of the signature's R (offset 70) xor 0x01".into(),
        0,
        "initiate",
        Alice,
        xor_at(bundle, 70, 0x01),
        "InvalidSignature",
        None,
    );
    add(
        "bundle_signature_s_bit_flipped",
        "the base bundle with the first byte of the signature's S (offset 102) xor 0x01".into(),
        0,
        "initiate",
        Alice,
        xor_at(bundle, 102, 0x01),
        "InvalidSignature",
        None,
    );
    let without_prefix = ed25519_sign(&m.bob.seed, &m.spk.public);
    add(
        "bundle_signature_without_encode_prefix",
        "a valid Ed25519 signature by IK_B over SPK_B's 32 bytes without the 0x05 prefix".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 70, &without_prefix),
        "InvalidSignature",
        None,
    );
    let by_alice = ed25519_sign(&m.alice.seed, &m.spk_signed_message);
    add(
        "bundle_signature_by_other_identity",
        "a valid signature over 0x05 || SPK_B, but made with IK_A instead of IK_B".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 70, &by_alice),
        "InvalidSignature",
        None,
    );
    // S + L: the same signature modulo L, but not reduced; strict verification rejects it.
    let s_bytes: [u8; 32] = arr32(&m.spk_signature[32..]);
    let l_bytes: [u8; 32] = unhex(GROUP_ORDER_L);
    let mut s_plus_l = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s_bytes[i]) + u16::from(l_bytes[i]) + carry;
        s_plus_l[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(
        Scalar::from_bytes_mod_order(s_plus_l),
        Scalar::from_bytes_mod_order(s_bytes)
    );
    assert_eq!(Scalar::from_bytes_mod_order(l_bytes), Scalar::ZERO);
    add(
        "bundle_signature_s_not_reduced",
        "the base bundle's signature with S replaced by S + L (equal modulo L, not canonical)"
            .into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 102, &s_plus_l),
        "InvalidSignature",
        None,
    );
    let other_spk = x25519_public(&[0x42; 32]);
    add(
        "bundle_signed_prekey_swapped",
        "the base bundle with SPK_B (offset 38..70) replaced by another valid key (the X25519 \
         public key of the secret 0x42^32); the signature no longer matches"
            .into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 38, &other_spk),
        "InvalidSignature",
        None,
    );
    add(
        "bundle_low_order_signed_prekey",
        "the base bundle with SPK_B replaced by u = 1 (rejected when parsed)".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 38, &unhex::<32>(SMALL_ORDER_U[1].1)),
        "InvalidPublicKey",
        None,
    );
    add(
        "bundle_wrong_type",
        "the base bundle with type byte 0x01 (a normal message's type)".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 1, &[0x01]),
        "UnexpectedType(1)",
        None,
    );
    add(
        "bundle_truncated",
        "the base bundle without its last byte".into(),
        0,
        "initiate",
        Alice,
        bundle[..bundle.len() - 1].to_vec(),
        "Truncated",
        None,
    );
    add(
        "bundle_trailing_byte",
        "the base bundle with one extra byte 0x00 appended".into(),
        0,
        "initiate",
        Alice,
        cat(&[bundle, &[0x00]]),
        "TrailingData",
        None,
    );
    cases
}

/// PQXDH rejection cases: `a` is the one-time scenario, `b` the last-resort one.
fn pq_reject_cases(a: &Scenario, ma: &Model, b: &Scenario, mb: &Model) -> Vec<RejectCase> {
    let mut cases = Vec::new();
    #[allow(clippy::too_many_arguments)]
    fn case(
        base: &Scenario,
        name: &str,
        description: String,
        after_events: usize,
        operation: &'static str,
        party: Party,
        input: Vec<u8>,
        expected_error: &str,
        then_decrypts: Option<usize>,
    ) -> RejectCase {
        RejectCase {
            name: name.into(),
            description,
            base_vector: base.file,
            after_events,
            operation,
            party: party.name(),
            input: hex(&input),
            expected_error: expected_error.into(),
            then_decrypts,
        }
    }
    // Offsets of a type 0x03 message (SPEC.md 5.3) and a type 0x11 bundle (5.4).
    const PQ_ID_AT: usize = 75;
    const CT_AT: usize = 79;
    const HEADER_AT: usize = CT_AT + KEM_CIPHERTEXT_LENGTH; // 1167
    const BODY_AT: usize = HEADER_AT + 40; // 1207
    const BUNDLE_PQ_ID_AT: usize = 171;
    const BUNDLE_EK_AT: usize = 175;
    const BUNDLE_SIG_AT: usize = BUNDLE_EK_AT + KEM_PUBLIC_KEY_LENGTH; // 1359

    let pq = ma.pq.as_ref().unwrap();
    let (spk_id, opk_id) = (a.signed_prekey_id, a.one_time_prekey_id.unwrap());
    assert_eq!(pq.kind, PqKind::OneTime);
    let m0 = &ma.message(0).bytes;
    let m1 = &ma.message(1).bytes;
    assert_eq!(m0[1], 0x03);
    assert_eq!(u32_at(m0, PQ_ID_AT), pq.id);
    assert_eq!(&m0[CT_AT..HEADER_AT], &pq.ciphertext[..]);
    let at_m0 = before_receipt(a, Bob, 0);
    let at_m1 = before_receipt(a, Bob, 1);
    assert!(matches!(a.script[at_m0], Accept(0)));

    // --- the KEM ciphertext ------------------------------------------------------------
    cases.push(case(
        a,
        "pq_kem_ciphertext_bit_flipped",
        format!(
            "message 0 with the first KEM ciphertext byte (offset {CT_AT}) xor 0x01; Bob's store \
             accepts it: decapsulation gives an unrelated SS (implicit rejection) and the AAD \
             differs. The failed accept changes nothing: the store then accepts the genuine message"
        ),
        at_m0,
        "accept",
        Bob,
        xor_at(m0, CT_AT, 0x01),
        "DecryptionFailed",
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_kem_ciphertext_last_byte_flipped",
        format!(
            "message 0 with the last KEM ciphertext byte (offset {}) xor 0x80",
            HEADER_AT - 1
        ),
        at_m0,
        "accept",
        Bob,
        xor_at(m0, HEADER_AT - 1, 0x80),
        "DecryptionFailed",
        Some(0),
    ));
    // The same change with the ratchet part re-encrypted under Alice's genuine message key
    // and the altered prefix as AAD: only the KEM can make it fail.
    let r0 = ma.message(0);
    let altered_prefix = xor_at(&r0.prefix, CT_AT, 0x01);
    let altered_aad = cat(&[&ma.x3dh.ad, &altered_prefix]);
    let resealed = cat(&[
        &altered_prefix,
        &aes_gcm_seal(&r0.aes_key, &r0.aes_nonce, &altered_aad, &r0.plaintext),
    ]);
    let altered_ss = kem::decapsulate(&pq.seed, &altered_prefix[CT_AT..HEADER_AT]);
    assert_ne!(altered_ss, pq.shared_secret, "implicit rejection");
    assert!(aes_gcm_open(
        &r0.aes_key,
        &r0.aes_nonce,
        &altered_aad,
        &resealed[BODY_AT..]
    )
    .is_some());
    cases.push(case(
        a,
        "pq_kem_ciphertext_flipped_resealed",
        format!(
            "message 0 with the first KEM ciphertext byte (offset {CT_AT}) xor 0x01 and its ratchet \
             part re-encrypted under Alice's genuine message key with AAD = AD || the altered \
             prefix, so the AEAD is consistent: it fails only because Bob's decapsulation of the \
             altered ciphertext yields an unrelated SS ({}), hence another SK",
            hex(&altered_ss)
        ),
        at_m0,
        "accept",
        Bob,
        resealed,
        "DecryptionFailed",
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_second_initial_kem_ciphertext_bit_flipped",
        format!(
            "message 1 (an initial message of Bob's existing session) with the first KEM \
             ciphertext byte (offset {CT_AT}) xor 0x01: the session does not decapsulate again, \
             but the ciphertext is authenticated as AAD"
        ),
        at_m1,
        "decrypt",
        Bob,
        xor_at(m1, CT_AT, 0x01),
        "DecryptionFailed",
        Some(1),
    ));
    cases.push(case(
        a,
        "pq_second_initial_pq_prekey_id_changed",
        format!(
            "message 1 with the post-quantum prekey id (offset {PQ_ID_AT}..{CT_AT}) changed to {}, \
             given to Bob's existing session: the id is authenticated as AAD",
            pq.id + 1
        ),
        at_m1,
        "decrypt",
        Bob,
        replace_at(m1, PQ_ID_AT, &(pq.id + 1).to_be_bytes()),
        "DecryptionFailed",
        Some(1),
    ));

    // --- prekey ids and replay -------------------------------------------------------------
    cases.push(case(
        a,
        "pq_unknown_pq_prekey",
        format!(
            "message 0 with the post-quantum prekey id (offset {PQ_ID_AT}..{CT_AT}) changed to {}, \
             which Bob's store does not hold",
            pq.id + 1
        ),
        at_m0,
        "accept",
        Bob,
        replace_at(m0, PQ_ID_AT, &(pq.id + 1).to_be_bytes()),
        &format!("UnknownPqPreKey({})", pq.id + 1),
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_unknown_pq_prekey_signed_prekey_id",
        format!(
            "message 0 with the post-quantum prekey id changed to {spk_id}, the signed prekey's \
             id: post-quantum prekey ids are their own namespace"
        ),
        at_m0,
        "accept",
        Bob,
        replace_at(m0, PQ_ID_AT, &spk_id.to_be_bytes()),
        &format!("UnknownPqPreKey({spk_id})"),
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_initial_replayed_after_accept",
        format!(
            "message 0 given to Bob's store again after it accepted it and deleted both one-time \
             prekeys it used (classical {opk_id}, post-quantum {}): the classical one is looked up \
             first",
            pq.id
        ),
        at_m0 + 1,
        "accept",
        Bob,
        m0.clone(),
        &format!("UnknownOneTimePreKey({opk_id})"),
        None,
    ));
    cases.push(case(
        a,
        "pq_initial_to_session_respond",
        "message 0 given to Session::respond (with SPK_B and OPK_B by id), which has no \
         post-quantum prekeys and refuses every PQXDH message"
            .into(),
        at_m0,
        "respond",
        Bob,
        m0.clone(),
        &format!("UnknownPqPreKey({})", pq.id),
        None,
    ));

    // --- truncation ------------------------------------------------------------------------
    for (name, len, what, error) in [
        (
            "pq_initial_truncated_in_pq_prekey_id",
            77,
            "inside the post-quantum prekey id",
            "Truncated",
        ),
        (
            "pq_initial_truncated_in_kem_ciphertext",
            600,
            "inside the KEM ciphertext",
            "Truncated",
        ),
        (
            "pq_initial_truncated_at_classical_minimum",
            131,
            "the minimum length of a type 0x02 initial message, inside the KEM ciphertext",
            "Truncated",
        ),
        (
            "pq_initial_truncated_in_header",
            BODY_AT - 1,
            "inside N",
            "Truncated",
        ),
        (
            "pq_initial_truncated_below_tag_length",
            BODY_AT + 15,
            "the 1207-byte prefix and 15 bytes, shorter than a tag",
            "Truncated",
        ),
    ] {
        cases.push(case(
            a,
            name,
            format!("message 0 cut to its first {len} bytes ({what})"),
            at_m0,
            "accept",
            Bob,
            m0[..len].to_vec(),
            error,
            Some(0),
        ));
    }

    // --- the bundle's post-quantum part ----------------------------------------------------
    let bundle = &ma.bundle;
    assert_eq!(bundle[1], 0x11);
    assert_eq!(
        &bundle[BUNDLE_EK_AT..BUNDLE_SIG_AT],
        &pq.public[..],
        "bundle layout"
    );
    cases.push(case(
        a,
        "pq_bundle_signature_r_bit_flipped",
        format!(
            "the base bundle with the first byte of the post-quantum prekey signature's R \
             (offset {BUNDLE_SIG_AT}) xor 0x01"
        ),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_SIG_AT, 0x01),
        "InvalidSignature",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_signature_s_bit_flipped",
        format!(
            "the base bundle with the first byte of the post-quantum prekey signature's S \
             (offset {}) xor 0x01",
            BUNDLE_SIG_AT + 32
        ),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_SIG_AT + 32, 0x01),
        "InvalidSignature",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_signature_without_kem_prefix",
        "a valid Ed25519 signature by IK_B over the 1184-byte encapsulation key without the \
         0x0A prefix of EncodeKEM"
            .into(),
        0,
        "initiate",
        Alice,
        replace_at(
            bundle,
            BUNDLE_SIG_AT,
            &ed25519_sign(&ma.bob.seed, &pq.public),
        ),
        "InvalidSignature",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_signature_by_other_identity",
        "a valid signature over 0x0A || ek, but made with IK_A instead of IK_B".into(),
        0,
        "initiate",
        Alice,
        replace_at(
            bundle,
            BUNDLE_SIG_AT,
            &ed25519_sign(&ma.alice.seed, &pq.signed_message),
        ),
        "InvalidSignature",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_signature_is_signed_prekey_signature",
        "the post-quantum prekey signature replaced by the signed prekey's (valid) signature \
         over 0x05 || SPK_B"
            .into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, BUNDLE_SIG_AT, &ma.spk_signature),
        "InvalidSignature",
        None,
    ));
    let other_ek = kem::public_key(&[0x42; KEM_SEED_LENGTH]);
    assert!(kem_coefficients(&other_ek).iter().all(|c| *c < KEM_Q));
    cases.push(case(
        a,
        "pq_bundle_kem_key_swapped",
        "the base bundle with the encapsulation key replaced by another valid one (ML-KEM-768 \
         KeyGen from the seed 0x42^64); the signature no longer matches"
            .into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, BUNDLE_EK_AT, &other_ek),
        "InvalidSignature",
        None,
    ));
    let coefficients = kem_coefficients(&pq.public);
    for (name, index, value) in [
        ("pq_bundle_kem_key_coefficient_q", 0usize, KEM_Q),
        ("pq_bundle_kem_key_coefficient_4095", 767, 4095),
    ] {
        let bad = set_kem_coefficient(&pq.public, index, value);
        let decoded = kem_coefficients(&bad);
        assert_eq!(decoded[index], value);
        assert!((0..768)
            .filter(|i| *i != index)
            .all(|i| decoded[i] == coefficients[i]));
        assert!(
            kem::encapsulate(&bad, &[0u8; 32]).is_none(),
            "ml-kem accepts {name}"
        );
        cases.push(case(
            a,
            name,
            format!(
                "the base bundle with coefficient {index} of the encapsulation key's t vector (12 \
                 bits at bit offset {} of ek, bundle offset {}) set to {value}, not below q = 3329 \
                 (FIPS 203 7.2 modulus check; rejected when the bundle is parsed, before the \
                 signature is checked)",
                12 * index,
                BUNDLE_EK_AT + 3 * (index / 2)
            ),
            0,
            "initiate",
            Alice,
            replace_at(bundle, BUNDLE_EK_AT, &bad),
            "InvalidPublicKey",
            None,
        ));
    }
    cases.push(case(
        a,
        "pq_bundle_truncated",
        "the base bundle without its last byte".into(),
        0,
        "initiate",
        Alice,
        bundle[..bundle.len() - 1].to_vec(),
        "Truncated",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_truncated_to_classical_length",
        format!(
            "the base bundle cut to its first {BUNDLE_PQ_ID_AT} bytes (a classical bundle's length, \
             type still 0x11)"
        ),
        0,
        "initiate",
        Alice,
        bundle[..BUNDLE_PQ_ID_AT].to_vec(),
        "Truncated",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_as_classical_type",
        "the base bundle with type byte 0x10: a classical bundle followed by 1252 bytes".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 1, &[0x10]),
        "TrailingData",
        None,
    ));

    // --- last resort -----------------------------------------------------------------------
    let pq_b = mb.pq.as_ref().unwrap();
    assert_eq!(pq_b.kind, PqKind::LastResort);
    assert!(b.one_time_prekey_id.is_none());
    let accepted = match b.script.iter().find(|op| matches!(op, Accept(_))) {
        Some(Accept(i)) => *i,
        _ => unreachable!(),
    };
    let other = 1 - accepted;
    let ma_b = &mb.message(accepted).bytes;
    let at_b = before_receipt(b, Bob, accepted);
    cases.push(case(
        b,
        "pq_last_resort_replayed_after_accept",
        format!(
            "message {accepted}, from which Bob's store accepted the session, given to the store \
             again: it used no one-time prekey of either kind, so its EK_A was recorded (SPEC.md 8)"
        ),
        at_b + 1,
        "accept",
        Bob,
        ma_b.clone(),
        "DuplicateOrExpired",
        None,
    ));
    cases.push(case(
        b,
        "pq_last_resort_other_initial_to_store",
        format!(
            "message {other}, the session's other initial message (same EK_A), given to the store \
             instead of the session (SPEC.md 6.3 routes it by session id)"
        ),
        at_b + 1,
        "accept",
        Bob,
        mb.message(other).bytes.clone(),
        "DuplicateOrExpired",
        None,
    ));
    cases.push(case(
        b,
        "pq_last_resort_kem_ciphertext_bit_flipped",
        format!(
            "message {accepted} with the first KEM ciphertext byte (offset {CT_AT}) xor 0x01; the \
             failed accept records nothing, so the store then accepts the genuine message"
        ),
        at_b,
        "accept",
        Bob,
        xor_at(ma_b, CT_AT, 0x01),
        "DecryptionFailed",
        Some(accepted),
    ));
    cases.push(case(
        b,
        "pq_last_resort_unknown_pq_prekey",
        format!(
            "message {accepted} with the post-quantum prekey id changed to {}",
            pq_b.id + 1
        ),
        at_b,
        "accept",
        Bob,
        replace_at(ma_b, PQ_ID_AT, &(pq_b.id + 1).to_be_bytes()),
        &format!("UnknownPqPreKey({})", pq_b.id + 1),
        Some(accepted),
    ));
    cases
}

/// Runs one rejection case through the library; returns the error's name.
fn run_reject(s: &Scenario, case: &RejectCase, input: &[u8]) -> String {
    let mut world = World::replay(s, case.after_events);
    let result = match case.operation {
        "initiate" => {
            let mut rng = ChaCha20Rng::seed_from_u64(s.alice_seed);
            let alice = IdentityKeyPair::generate(&mut rng).unwrap();
            PreKeyBundle::from_bytes(input)
                .and_then(|b| Session::initiate(&alice, &b, &mut rng))
                .map(|_| ())
        }
        "respond" => world.respond(input).map(|_| ()),
        "accept" => {
            let r = world.accept(input).map(|_| ());
            if let Some(i) = case.then_decrypts {
                let genuine = world.wire[i].clone().unwrap();
                assert_eq!(
                    world.accept(&genuine).unwrap().plaintext,
                    s.messages[i].1.as_bytes(),
                    "{}: the store no longer accepts the genuine message",
                    case.name
                );
            }
            r
        }
        "decrypt" => {
            let party = if case.party == "alice" { Alice } else { Bob };
            let r = world.session(party).decrypt(input).map(|_| ());
            if let Some(i) = case.then_decrypts {
                let genuine = world.wire[i].clone().unwrap();
                assert_eq!(
                    world.session(party).decrypt(&genuine).unwrap(),
                    s.messages[i].1.as_bytes(),
                    "{}: the genuine message no longer decrypts",
                    case.name
                );
            }
            r
        }
        other => panic!("unknown operation {other}"),
    };
    match result {
        Ok(()) => "accepted".into(),
        Err(e) => format!("{e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut reject = Vec::new();
    let mut models: Vec<(&Scenario, Model)> = Vec::new();

    for s in SCENARIOS.iter().filter(|s| supported(s)) {
        let model = Model::run(s);
        let world = run_library(s);
        // The independent recomputation must agree with the library byte for byte.
        assert_same(&format!("{}: bundle", s.file), &model.bundle, &world.bundle);
        if let Some(pq) = &model.pq {
            assert_same(
                &format!("{}: prekey store", s.file),
                &pq.store,
                &world.store_bytes,
            );
            assert!(world.bob.as_ref().unwrap().is_post_quantum());
        }
        for i in 0..s.messages.len() {
            assert_same(
                &format!("{}: message {i}", s.file),
                &model.message(i).bytes,
                world.wire[i].as_ref().unwrap(),
            );
        }
        assert_eq!(world.alice.id(), world.bob.as_ref().unwrap().id());
        assert_same(
            &format!("{}: session id", s.file),
            &model.x3dh.session_id,
            world.alice.id().as_bytes(),
        );
        // The RNG streams were consumed identically (no hidden extra draw on either side).
        let mut next_model = [[0u8; 32]; 2];
        let mut next_library = [[0u8; 32]; 2];
        for p in [Alice, Bob] {
            model.drawers[p.index()]
                .rng
                .clone()
                .try_fill_bytes(&mut next_model[p.index()])
                .unwrap();
        }
        let mut world = world;
        world
            .alice_rng
            .try_fill_bytes(&mut next_library[0])
            .unwrap();
        world.bob_rng.try_fill_bytes(&mut next_library[1]).unwrap();
        assert_eq!(
            next_model, next_library,
            "{}: RNG draw counts differ",
            s.file
        );

        if s.file == "x3dh_ratchet_v1.json" {
            for case in reject_cases(s, &model) {
                let input = hex_decode(&case.input);
                let got = run_reject(s, &case, &input);
                assert_eq!(
                    got, case.expected_error,
                    "reject case {}: library returned {got}",
                    case.name
                );
                reject.push(case);
            }
        }
        let file = vector_file(s, &model);
        outputs.push((s.file.into(), to_json(&file)));
        eprintln!(
            "{}: {} messages agree with the library",
            s.file,
            s.messages.len()
        );
        models.push((s, model));
    }
    let by_file = |file: &str| {
        models
            .iter()
            .find(|(s, _)| s.file == file)
            .map(|(s, m)| (*s, m))
    };
    let pq_reject = match (
        by_file("pqxdh_ratchet_v1.json"),
        by_file("pqxdh_last_resort_v1.json"),
    ) {
        (Some((a, ma)), Some((b, mb))) => {
            let cases = pq_reject_cases(a, ma, b, mb);
            for case in &cases {
                let base = if case.base_vector == a.file { a } else { b };
                let got = run_reject(base, case, &hex_decode(&case.input));
                assert_eq!(
                    got, case.expected_error,
                    "reject case {}: library returned {got}",
                    case.name
                );
            }
            Some(cases)
        }
        _ => {
            eprintln!("built without the pqxdh feature: the PQXDH files are skipped");
            None
        }
    };
    let reject_file = RejectFile {
        comment: vec![
            "Inputs that an implementation of SPEC.md protocol profile v1 must reject, with the error \
             (the crate's Error variant, Debug form) it must reject them with."
                .into(),
            format!(
                "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); \
                 each case was checked against the library before writing; do not edit by hand."
            ),
            "Each case: replay the base vector's setup and its first after_events events, then apply \
             operation to input. initiate: Alice (identity from the base vector's alice seed) parses \
             the input as a bundle and calls Session::initiate. respond: Bob calls Session::respond \
             with the prekeys he still holds. decrypt: party's session decrypts input; afterwards \
             then_decrypts (if not null) names the genuine base message that must still decrypt."
                .into(),
            "Byte strings are lowercase hex. tests/vectors.rs checks this file.".into(),
        ],
        kind: "reject",
        provenance: provenance(),
        cases: reject,
    };
    eprintln!(
        "reject_v1.json: {} cases agree with the library",
        reject_file.cases.len()
    );
    outputs.push(("reject_v1.json".into(), to_json(&reject_file)));
    if let Some(cases) = pq_reject {
        let file = RejectFile {
            comment: vec![
                "PQXDH inputs (SPEC.md 3.6, 5.3 type 0x03, 5.4 type 0x11) that an implementation of SPEC.md \
                 protocol profile v1 must reject, with the error (the crate's Error variant, Debug form) it \
                 must reject them with."
                    .into(),
                format!(
                    "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); \
                     each case was checked against the library before writing; do not edit by hand."
                ),
                "Each case: replay the base vector's setup (including Bob's prekey store) and its first \
                 after_events events, then apply operation to input. initiate: Alice (identity from the base \
                 vector's alice seed) parses the input as a bundle and calls Session::initiate. accept: Bob's \
                 prekey store (PreKeyStore::accept) accepts input; afterwards then_decrypts (if not null) \
                 names the genuine base message the store must then still accept (a failed accept changes \
                 nothing). respond: Bob calls Session::respond with SPK_B and OPK_B by id. decrypt: party's \
                 session decrypts input; afterwards then_decrypts (if not null) names the genuine base \
                 message that must still decrypt."
                    .into(),
                "Byte strings are lowercase hex. tests/vectors.rs checks this file.".into(),
            ],
            kind: "reject",
            provenance: provenance_pq(),
            cases,
        };
        eprintln!(
            "reject_pqxdh_v1.json: {} cases agree with the library",
            file.cases.len()
        );
        outputs.push(("reject_pqxdh_v1.json".into(), to_json(&file)));
    }

    let mut differ = false;
    for (name, text) in &outputs {
        let path = dir.join(name);
        if check {
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            if on_disk != *text {
                eprintln!("{} differs from the generated vectors", path.display());
                differ = true;
            }
        } else {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
            eprintln!("wrote {}", path.display());
        }
    }
    if differ {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    text
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
