//! Regenerates the known-answer test vectors of protocol profile v2 in `tests/vectors/`:
//!
//! * `x3dh_ratchet_v2.json`: X3DH with a one-time prekey, then a short in-order
//!   conversation (two initial messages, a reply, a DH ratchet step on each side), with
//!   plaintexts of 63 and 64 bytes on either side of the first Padmé bucket edge.
//! * `x3dh_ratchet_no_opk_v2.json`: X3DH without a one-time prekey, with out-of-order
//!   delivery (an initial message overtaken by the next one, a message skipped within a
//!   chain, and one left behind in a chain the receiver has already ratcheted away from);
//!   Alice's session pads nothing (`SessionOptions::new().padding(Padding::None)`).
//! * `reject_v2.json`: inputs that must be rejected, with the expected error.
//! * `pqxdh_ratchet_v2.json`: PQXDH (SPEC.md §3.6) with a one-time classical prekey and a
//!   one-time ML-KEM-768 prekey, then a short in-order conversation.
//! * `pqxdh_last_resort_v2.json`: PQXDH without a classical one-time prekey, with a
//!   last-resort ML-KEM-768 prekey; Bob accepts the session from the second initial message.
//! * `reject_pqxdh_v2.json`: PQXDH inputs that must be rejected, with the expected error.
//! * `x3dh_he_v2.json`: X3DH with a one-time prekey in header-encrypted mode (SPEC.md §4.8),
//!   with out-of-order delivery: skipped keys stored under header keys, in the current chain
//!   and through `PN` in a chain the receiver has ratcheted away from, used afterwards.
//! * `pqxdh_he_v2.json`: PQXDH (one-time ML-KEM-768 prekey, no classical one-time prekey)
//!   in header-encrypted mode; a key skipped in an old chain is used after a ratchet step.
//! * `reject_he_v2.json`: header-encrypted inputs that must be rejected, with the expected
//!   error; every case also checks that the receiver still takes the genuine message.
//! * `padding_v2.json`: the plaintext encoding of SPEC.md §4.9 (v2): plaintext length ->
//!   encoded length under both policies (`padme`, `none`) with the edge cases up to
//!   `MAX_PLAINTEXT_SIZE`, encoding examples, and decoding examples (valid and invalid).
//!
//! [`generate`] returns the files; `main.rs` compares them with the files on disk
//! (`cargo run -p doubleratchet-vectors`, exit status 1 on any difference) or writes them
//! (`-- --write`). The files' provenance still names this generator's former place,
//! `examples/generate_vectors.rs` (`cargo run --example generate_vectors`): the strings are
//! kept so that the committed files stay byte for byte what they are. The PQXDH files
//! need the `pqxdh` feature (on by default); without it they are neither written nor checked
//! (nor are `reject_he_v2.json`, which has PQXDH cases, `padding_v2.json`, whose
//! longest-message check uses a PQXDH session, and `prekey_store_v2.json`, whose store holds
//! post-quantum prekeys; their other cases are still run).
//!
//! Profile v2 (the team's written v2 decisions, SPEC.md v2): the v2 labels, one
//! version byte per format family (wire `0x02`, bundle `0x02`, storage `0x02`),
//! `ENCRYPT(mk, pt, AAD) = AES-256-GCM-SIV(key = mk, nonce = 0x00^12, AAD, encode(pt))`
//! (no per-message HKDF), `HENCRYPT` and sealing with AES-256-GCM-SIV, the plaintext
//! encoding (`pt || 0x80 || 0x00..`, Padmé above a 64-byte minimum, or policy none), and a
//! padding-policy byte in the stored session after `max_stored_skipped`.
//!
//! Every secret comes from `ChaCha20Rng::seed_from_u64` (rand_chacha 0.10) with the seeds
//! in [`SCENARIOS`]: one generator for Alice, one for Bob, each drawn from only by its owner.
//! The program drives the library's **public** API to produce the messages, and
//! independently recomputes every value from the SPEC.md v2 formulas with the primitive
//! crates (x25519-dalek, curve25519-dalek, ed25519-dalek, sha2, hkdf, hmac, aes-gcm-siv,
//! and ml-kem for PQXDH's KEM), including every message's bytes. It writes nothing unless the
//! two agree byte for byte, and it checks each rejection case against the library before
//! writing it. It also builds each party's stored session (SPEC.md §7.1) from its own model
//! after setup and after every event and requires it to equal the library's
//! `Session::to_bytes`, so the whole ratchet state (in header-encrypted mode `HKs`, `HKr`,
//! `NHKs`, `NHKr` and the stored header keys too, and the padding policy) is checked, not
//! only the messages.
//!
//! Header-encrypted scenarios (SPEC.md §4.8) initiate with
//! `SessionOptions::new().header_encryption()`; the model derives `(HKA, NHKB)` from `SK`,
//! uses `KDF_RK_HE` for every root step, draws each message's 12-byte header nonce after any
//! new ratchet key (SPEC.md §2.5), seals the header with AES-256-GCM-SIV under `HKs` with
//! `AAD_h = AD || the bytes before it`, and decrypts by trial decryption in the order stored
//! header keys, `HKr`, `NHKr`.
//!
//! Profile v2 part 2: every prekey id is a `u64` (bundles of 179 / 1435 bytes, initial
//! messages, the stored session's pending block, stored prekeys); the scenarios use
//! full-width ids, distinct for every key. The model also keeps its own local device
//! ([`StoreModel`]: the identity, replay records per signed prekey, the standby signed
//! prekey, sequence numbers, times, published flags, the one-time cap, the stored layout of
//! type `0x2A`) and writes
//! * `prekey_store_v2.json`: a device generated from a seeded RNG at given times (every id
//!   recomputed from the draws), a flood of last-resort initial messages at replay capacity
//!   3 (records, the switch to the standby, `StoreFull`), and stored devices that must not
//!   load.
//!
//! Three files have modules of their own: `decryption_error_v2.json` ([`records`], SPEC.md
//! §6.8), `device_list_v2.json` ([`device_lists`], SPEC.md §9.4: signed device lists
//! and device links built from the SPEC.md tables with `ed25519-dalek` and compared with
//! what the library's `Account` signs and `LocalDevice::link` makes, and rejects checked
//! against independent parsers of §9.4) and `group_v2.json` ([`groups`], SPEC.md §11: the
//! sender-key chain step, distributions, group messages, the stored group and member
//! chains of §7.11-§7.12 and receiving, from an independent model of the SPEC.md text,
//! compared with what the library does from the model's own bytes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Without PQXDH the prekey store (whose PQXDH stores and store file are skipped) is unused.
#![cfg_attr(not(feature = "pqxdh"), allow(dead_code))]

mod device_lists;
mod groups;
mod records;

use std::collections::HashMap;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use doubleratchet::{
    Error, IdentityKeyPair, LocalDevice, OneTimePreKey, Padding, PreKeyBundle, Session,
    SessionOptions, SignedPreKey, StoreNotice,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{OneTimePreKeyId, PqPreKeyId};
use doubleratchet_test_support::bundle_of;
use doubleratchet_test_support::hex::{decode as hex_decode, decode_array as unhex, encode as hex};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{SeedableRng, TryRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

/// The date recorded in every file's provenance.
const DATE: &str = "2026-12-02";
/// The generator and command the files name as their producer: the former ones, kept byte
/// for byte so that moving the generator into `tools/vectors` left the committed files
/// unchanged. Change them (and `DATE`) with the next regeneration that changes the files
/// anyway.
const GENERATOR: &str = "examples/generate_vectors.rs";
/// See [`GENERATOR`].
const COMMAND: &str = "cargo run --example generate_vectors";

// SPEC.md §1 constants (profile v2; there is no MESSAGE_INFO any more).
const X3DH_INFO: &[u8] = b"doubleratchet v2 X3DH";
const ROOT_INFO: &[u8] = b"doubleratchet v2 root";
const SESSION_ID_LABEL: &[u8] = b"doubleratchet v2 session id";
const PQXDH_INFO: &[u8] = b"doubleratchet v2 PQXDH";
const HEADER_KEYS_INFO: &[u8] = b"doubleratchet v2 header keys";
const ROOT_HE_INFO: &[u8] = b"doubleratchet v2 root HE";

// Profile v2: one version byte per format family.
/// Messages (types `0x01`..`0x06`).
const WIRE_VERSION: u8 = 0x02;
/// Prekey bundles (types `0x10`, `0x11`).
const BUNDLE_VERSION: u8 = 0x02;
/// Stored objects (types `0x20`..`0x28`) and sealed blobs (`0x30`).
const STORAGE_VERSION: u8 = 0x02;

// SPEC.md §4.1 (v2): ENCRYPT is AES-256-GCM-SIV under the message key with a zero nonce.
const MESSAGE_NONCE: [u8; 12] = [0u8; 12];
const TAG_LENGTH: usize = 16;

// SPEC.md §4.9 (v2): the plaintext encoding.
/// The byte that ends every plaintext before its padding.
const END_MARKER: u8 = 0x80;
/// Padmé's minimum: every encoded plaintext under policy `padme` is at least this long.
const PADME_MINIMUM: usize = 64;
/// SPEC.md §5.6.
const MAX_MESSAGE_SIZE: usize = 1 << 20;
/// The prefix of a header-encrypted PQXDH initial message (type `0x06`), the longest framing
/// (profile v2 part 2: `2 + 81 + 8 + 1088 + 68`).
const LONGEST_PREFIX: usize = 1247;
/// `MAX_MESSAGE_SIZE - 1247 - 16 = 1 047 313`.
const MAX_ENCODED_PLAINTEXT: usize = MAX_MESSAGE_SIZE - LONGEST_PREFIX - TAG_LENGTH;
/// `MAX_ENCODED_PLAINTEXT - 1 = 1 047 312` (the end marker takes one byte).
const MAX_PLAINTEXT_SIZE: usize = MAX_ENCODED_PLAINTEXT - 1;

// SPEC.md §5.3 (profile v2 part 2: every prekey id is a u64, 8 bytes big-endian): the
// offsets of an initial message's fields.
/// `IK_A` at 2..34.
const IK_A_AT: usize = 2;
/// `EK_A` at 34..66.
const EK_A_AT: usize = 34;
/// The signed prekey id at 66..74.
const SPK_ID_AT: usize = 66;
/// The one-time prekey flag at 74.
const OPK_FLAG_AT: usize = 74;
/// The one-time prekey id at 75..83.
const OPK_ID_AT: usize = 75;
/// The end of the X3DH fields (81 bytes after the version and type bytes): the header of a
/// type `0x02` message (or the sealed header of a type `0x05`), or the post-quantum prekey
/// id of a type `0x03` / `0x06` at 83..91.
const X3DH_END: usize = 83;
/// Type `0x03` / `0x06`: the post-quantum prekey id at 83..91.
const PQ_ID_AT: usize = X3DH_END;
/// Type `0x03` / `0x06`: the KEM ciphertext at 91..1179.
const CT_AT: usize = PQ_ID_AT + 8;
/// Type `0x03` / `0x06`: the end of the KEM ciphertext (the header's offset), 1179.
const PQ_END: usize = CT_AT + KEM_CIPHERTEXT_LENGTH;
/// A type `0x02` message's prefix: `2 + 81 + 40 = 123`.
const INITIAL_PREFIX: usize = X3DH_END + 40;

// SPEC.md §5.4 (profile v2 part 2): the offsets of a prekey bundle's fields.
/// The signed prekey id at 34..42.
const BUNDLE_SPK_ID_AT: usize = 34;
/// `SPK_B` at 42..74.
const BUNDLE_SPK_AT: usize = 42;
/// The signed prekey's signature at 74..138 (`R` at 74, `S` at 106).
const BUNDLE_SIG_AT: usize = 74;
/// The one-time prekey flag at 138, its id at 139..147, the key at 147..179.
const BUNDLE_OPK_FLAG_AT: usize = 138;
/// A type `0x10` bundle: 179 bytes.
const BUNDLE_LENGTH: usize = 179;
/// A type `0x11` bundle: `179 + 8 + 1184 + 64 = 1435` bytes.
const PQ_BUNDLE_LENGTH: usize = BUNDLE_LENGTH + 8 + 1184 + 64;

// SPEC.md §4.8, §5.3: header encryption.
const HEADER_NONCE_LENGTH: usize = 12;
/// `nonce(12) || encrypted header(40) || header tag(16)`.
const SEALED_HEADER_LENGTH: usize = HEADER_NONCE_LENGTH + 40 + 16;

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
    /// (`LocalDevice::accept`; `Session::respond` refuses PQXDH messages).
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
    id: u64,
    kind: PqKind,
}

/// A session's padding policy (SPEC.md §4.9, v2): a sender-side, per-session setting,
/// stored with the session (§7.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pad {
    /// `min(padme(max(L, 64)), MAX_ENCODED_PLAINTEXT)`, the default.
    Padme,
    /// No padding beyond the end marker.
    None,
}

impl Pad {
    /// The stored session's padding byte (SPEC.md §7.1, v2).
    fn byte(self) -> u8 {
        match self {
            Pad::None => 0x00,
            Pad::Padme => 0x01,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pad::Padme => "padme",
            Pad::None => "none",
        }
    }

    /// The library's name for the policy.
    fn library(self) -> Padding {
        match self {
            Pad::Padme => Padding::Padme,
            Pad::None => Padding::None,
        }
    }
}

struct Scenario {
    file: &'static str,
    name: &'static str,
    description: &'static str,
    alice_seed: u64,
    bob_seed: u64,
    /// Bob's prekey ids (u64, SPEC.md §5, profile v2 part 2): full-width values, distinct
    /// for every key of every scenario, so that a field read at the wrong width or offset
    /// shows.
    signed_prekey_id: u64,
    one_time_prekey_id: Option<u64>,
    /// PQXDH: Bob's post-quantum prekey (`None`: classical X3DH).
    post_quantum: Option<PqSpec>,
    /// Header-encrypted mode (SPEC.md §4.8): Alice initiates with
    /// `SessionOptions::new().header_encryption()`; Bob follows the initial message.
    header_encryption: bool,
    /// Alice's padding policy: `Pad::None` initiates with
    /// `SessionOptions::new().padding(Padding::None)`. Bob's sessions keep the default
    /// (`Pad::Padme`).
    alice_padding: Pad,
    /// Sender and plaintext of each message, by index.
    messages: &'static [(Party, &'static str)],
    script: &'static [Op],
}

use Op::{Accept, Decrypt, Encrypt, Respond};
use Party::{Alice, Bob};

/// A plaintext of exactly 1000 bytes (`L = 1001`: Padmé's `E = 9`, `S = 4`, `z = 5`, so the
/// encoded plaintext is 1024 bytes).
const LONG_PLAINTEXT: &str = concat!(
    "Reply received: new ratchet key, normal message of exactly 1000 bytes ",
    "(L = 1001; Padme: E = 9, S = 4, z = 5, so 1024 bytes encoded). ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "Padding hides a message's exact length; Padme rounds it up. ",
    "This is byte one thousand:.",
);

const SCENARIOS: [Scenario; 6] = [
    Scenario {
        file: "x3dh_ratchet_v2.json",
        name: "x3dh_with_one_time_prekey_in_order",
        description: "X3DH with a one-time prekey (DH1..DH4). Alice sends two initial messages; \
            Bob accepts the first and decrypts the second, replies (completing his deferred DH \
            ratchet step); Alice decrypts the reply and sends (her DH ratchet step, a normal \
            message with PN = 2, a plaintext of 63 bytes, encoded in 64); Bob replies twice (his \
            second DH ratchet step; the first reply has 64 bytes, encoded in 72, the second an \
            empty plaintext, encoded in 64). Both sessions pad with Padme (the default). Delivery \
            is in order.",
        alice_seed: 0xA11CE,
        bob_seed: 0xB0B,
        signed_prekey_id: 0x0123_4567_89AB_CDEF,
        one_time_prekey_id: Some(0xF0E1_D2C3_B4A5_9687),
        post_quantum: None,
        header_encryption: false,
        alice_padding: Pad::Padme,
        messages: &[
            (Alice, "Hi Bob, this is Alice. (initial message 1 of 2)"),
            (
                Alice,
                "Still waiting for your reply. (initial message 2 of 2)",
            ),
            (Bob, "Hi Alice! Bob here."),
            // 63 bytes: L = 64, exactly the Padmé minimum.
            (
                Alice,
                "Got your reply: a new ratchet key, and exactly 63 bytes (L=64).",
            ),
            // 64 bytes: L = 65, the first length past the minimum, padded to 72.
            (
                Bob,
                "And this one starts mine: exactly 64 bytes, so L = 65, padded 72",
            ),
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
        file: "x3dh_ratchet_no_opk_v2.json",
        name: "x3dh_without_one_time_prekey_out_of_order",
        description: "X3DH without a one-time prekey (DH1..DH3 only; the initial messages carry \
            OPK flag 0 and id 0). Bob receives Alice's second initial message first (message 0's \
            key is stored as skipped) and then the first. Later Alice receives Bob's message 4 \
            but not 5, ratchets, and receives Bob's message 7 from his next chain (PN = 2), \
            which stores message 5's key; message 5 then arrives last. Alice's session pads \
            nothing (SessionOptions::new().padding(Padding::None)): her plaintexts are encoded \
            as pt || 0x80 (63 bytes in 64, 64 bytes in 65); Bob's session pads with Padme (62 \
            bytes in 64, 65 bytes in 72), and each decodes the other's.",
        alice_seed: 0xA11CE2,
        bob_seed: 0xB0B2,
        signed_prekey_id: 0x1122_3344_5566_7788,
        one_time_prekey_id: None,
        post_quantum: None,
        header_encryption: false,
        alice_padding: Pad::None,
        messages: &[
            (Alice, "First initial message (delivered second)."),
            (Alice, "Second initial message (delivered first)."),
            (Bob, "Reply 1."),
            // Policy none: 63 bytes, encoded in 64 (as Padmé would).
            (
                Alice,
                "Alice, new ratchet key; policy none: 63 bytes, encoded in 64 ..",
            ),
            // Padmé: 62 bytes (L = 63), padded to the 64-byte minimum.
            (
                Bob,
                "Bob, new ratchet key, N = 0: 62 bytes, Padme pads it to 64 ...",
            ),
            (Bob, "Bob, same chain, N = 1 (delivered last)."),
            // Policy none: 64 bytes, encoded in 65 (Padmé would give 72).
            (
                Alice,
                "Alice again, another ratchet key, PN = 1: 64 bytes; encoded: 65.",
            ),
            // Padmé: 65 bytes (L = 66), padded to 72.
            (
                Bob,
                "Bob, third ratchet key, PN = 2: 65 bytes, L = 66, Padme pads: 72.",
            ),
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
        file: "pqxdh_ratchet_v2.json",
        name: "pqxdh_with_one_time_prekeys_in_order",
        description: "PQXDH (SPEC.md 3.6) with a one-time classical prekey (DH1..DH4) and a \
            one-time ML-KEM-768 prekey: SK = HKDF(IKM = 0xFF^32 || DH1 || DH2 || DH3 || DH4 || SS, \
            info = PQXDH_INFO). Alice sends two initial messages of type 0x03 (the same PQ prekey \
            id and KEM ciphertext in both); Bob accepts the first with LocalDevice::accept \
            (deleting both one-time prekeys) and decrypts the second, replies (completing his \
            deferred DH ratchet step); Alice decrypts the reply and sends a normal message with a \
            new ratchet key (PN = 2) and a plaintext of 1000 bytes (L = 1001, which Padme pads \
            to 1024); Bob replies from his next ratchet key (PN = 1). Delivery is in order.",
        alice_seed: 0xA11CE3,
        bob_seed: 0xB0B3,
        signed_prekey_id: 0x2B7E_1516_28AE_D2A6,
        one_time_prekey_id: Some(0xABF7_1588_09CF_4F3C),
        post_quantum: Some(PqSpec {
            id: 0x7631_4A55_9D21_0E05,
            kind: PqKind::OneTime,
        }),
        header_encryption: false,
        alice_padding: Pad::Padme,
        messages: &[
            (
                Alice,
                "Hi Bob, post-quantum Alice here. (initial message 1 of 2)",
            ),
            (Alice, "Same KEM ciphertext again. (initial message 2 of 2)"),
            (Bob, "Hi Alice! PQXDH session accepted."),
            (Alice, LONG_PLAINTEXT),
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
        file: "pqxdh_last_resort_v2.json",
        name: "pqxdh_last_resort_without_one_time_prekey",
        description: "PQXDH (SPEC.md 3.6) without a classical one-time prekey (DH1..DH3; OPK flag \
            0, id 0) and with a last-resort ML-KEM-768 prekey: SK = HKDF(IKM = 0xFF^32 || DH1 || \
            DH2 || DH3 || SS, info = PQXDH_INFO). Alice sends two initial messages of type 0x03; \
            Bob's prekey store accepts the session from the second (it keeps the last-resort \
            prekey and records EK_A against replay, SPEC.md 8) and then decrypts the first from a \
            skipped key; Bob replies; Alice decrypts the reply and sends a normal message with a \
            new ratchet key (PN = 2); Bob replies from his next ratchet key (PN = 1), with a \
            plaintext whose last byte is 0x00 (the decoder strips only the zeros after the end \
            marker).",
        alice_seed: 0xA11CE4,
        bob_seed: 0xB0B4,
        signed_prekey_id: 0x3243_F6A8_885A_308D,
        one_time_prekey_id: None,
        post_quantum: Some(PqSpec {
            id: 0x9E37_79B9_7F4A_7C15,
            kind: PqKind::LastResort,
        }),
        header_encryption: false,
        alice_padding: Pad::Padme,
        messages: &[
            (Alice, "First PQXDH initial message (delivered second)."),
            (Alice, "Second PQXDH initial message (delivered first)."),
            (Bob, "Accepted with my last-resort KEM key."),
            (Alice, "Alice, new ratchet key."),
            (
                Bob,
                "Bob, new ratchet key; this plaintext ends in a NUL byte:\0",
            ),
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
    Scenario {
        file: "x3dh_he_v2.json",
        name: "x3dh_header_encrypted_out_of_order",
        description:
            "X3DH with a one-time prekey (DH1..DH4) in header-encrypted mode (SPEC.md 4.8): \
            every header is sealed, HENCRYPT(HK, DHs || PN || N) with a 12-byte random nonce, and \
            KDF_RK_HE (info doubleratchet v2 root HE, 96 bytes) replaces KDF_RK. Bob accepts the \
            session from Alice's second initial message (type 0x05; NHKr = HKA opens it; message \
            0's key is stored under the header key HKA) and then decrypts the first through that \
            stored header key. Bob sends five messages in his first chain; Alice receives N = 0 \
            (NHKr), N = 2 (HKr; N = 1's key is stored under HKr) and N = 3 (opened by the stored \
            header key, then decrypted in the current chain), ratchets (PN = 2), and receives \
            Bob's next chain (PN = 5), which stores N = 4's key of the old chain; N = 4 and then \
            N = 1 of the old chain arrive after that ratchet step and are opened by the stored \
            header key, which is forgotten once its chain has no key left. Finally Alice's third \
            ratchet key (PN = 1). Alice's second-chain message has 100 bytes (L = 101, padded to \
            104).",
        alice_seed: 0xA11CE5,
        bob_seed: 0xB0B5,
        signed_prekey_id: 0x6A09_E667_F3BC_C908,
        one_time_prekey_id: Some(0xBB67_AE85_84CA_A73B),
        post_quantum: None,
        header_encryption: true,
        alice_padding: Pad::Padme,
        messages: &[
            (
                Alice,
                "First header-encrypted initial message (delivered second).",
            ),
            (
                Alice,
                "Second header-encrypted initial message (delivered first).",
            ),
            (Bob, "Bob, first chain, N = 0."),
            (Bob, "Bob, first chain, N = 1 (delivered last)."),
            (Bob, "Bob, first chain, N = 2 (skips N = 1)."),
            (
                Bob,
                "Bob, first chain, N = 3 (opened by a stored header key).",
            ),
            (
                Bob,
                "Bob, first chain, N = 4 (skipped through PN, delivered after a ratchet step).",
            ),
            // 100 bytes: L = 101, which Padmé pads to 104.
            (
                Alice,
                "Alice, second ratchet key, PN = 2: a plaintext of exactly 100 bytes, L = 101, Padme pads it to 104..",
            ),
            (Bob, "Bob, second ratchet key, PN = 5."),
            (Alice, "Alice, third ratchet key, PN = 1."),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Respond(1),
            Decrypt(Bob, 0),
            Encrypt(Bob, 2),
            Encrypt(Bob, 3),
            Encrypt(Bob, 4),
            Encrypt(Bob, 5),
            Encrypt(Bob, 6),
            Decrypt(Alice, 2),
            Decrypt(Alice, 4),
            Decrypt(Alice, 5),
            Encrypt(Alice, 7),
            Decrypt(Bob, 7),
            Encrypt(Bob, 8),
            Decrypt(Alice, 8),
            Decrypt(Alice, 6),
            Decrypt(Alice, 3),
            Encrypt(Alice, 9),
            Decrypt(Bob, 9),
        ],
    },
    Scenario {
        file: "pqxdh_he_v2.json",
        name: "pqxdh_header_encrypted_out_of_order",
        description:
            "PQXDH (SPEC.md 3.6) without a classical one-time prekey (DH1..DH3) and with a \
            one-time ML-KEM-768 prekey, in header-encrypted mode (SPEC.md 4.8). Alice sends two \
            initial messages of type 0x06 (the same PQ prekey id and KEM ciphertext; the sealed \
            header's AAD_h covers them); Bob's LocalDevice::accept takes the first (NHKr = HKA \
            opens it) and he decrypts the second (HKr); Bob sends two messages; Alice receives \
            N = 1 first (NHKr; N = 0's key is stored under the new HKr = NHKB), ratchets (PN = 2), \
            receives Bob's next chain (PN = 2; its plaintext ends in the byte 0x80, the UTF-8 \
            encoding of U+0080 being c2 80, so the encoded plaintext has two 0x80 bytes before its \
            padding), and only then N = 0 of the old chain, opened by the stored header key.",
        alice_seed: 0xA11CE6,
        bob_seed: 0xB0B6,
        signed_prekey_id: 0x3C6E_F372_FE94_F82B,
        one_time_prekey_id: None,
        post_quantum: Some(PqSpec {
            id: 0xA54F_F53A_5F1D_36F1,
            kind: PqKind::OneTime,
        }),
        header_encryption: true,
        alice_padding: Pad::Padme,
        messages: &[
            (Alice, "Header-encrypted PQXDH initial message 1 of 2."),
            (Alice, "Header-encrypted PQXDH initial message 2 of 2."),
            (
                Bob,
                "Bob, first chain, N = 0 (delivered after a ratchet step).",
            ),
            (Bob, "Bob, first chain, N = 1 (delivered first)."),
            (Alice, "Alice, second ratchet key, PN = 2."),
            (
                Bob,
                "Bob, second ratchet key, PN = 2; ends in U+0080 (UTF-8 c2 80): \u{80}",
            ),
        ],
        script: &[
            Encrypt(Alice, 0),
            Encrypt(Alice, 1),
            Accept(0),
            Decrypt(Bob, 1),
            Encrypt(Bob, 2),
            Encrypt(Bob, 3),
            Decrypt(Alice, 3),
            Encrypt(Alice, 4),
            Decrypt(Bob, 4),
            Encrypt(Bob, 5),
            Decrypt(Alice, 5),
            Decrypt(Alice, 2),
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

/// `KDF_RK_HE(rk, dh) -> (rk', ck, nhk)` (SPEC.md §4.8).
fn kdf_rk_he(rk: &[u8; 32], dh_out: &[u8; 32]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let okm = hkdf::<96>(rk, dh_out, ROOT_HE_INFO);
    (arr32(&okm[..32]), arr32(&okm[32..64]), arr32(&okm[64..]))
}

/// An optional field of SPEC.md §5.1: flag `0x00` and zeros, or `0x01` and the value.
fn put_optional<const N: usize>(out: &mut Vec<u8>, value: Option<[u8; N]>) {
    match value {
        Some(v) => {
            out.push(0x01);
            out.extend_from_slice(&v);
        }
        None => {
            out.push(0x00);
            out.extend_from_slice(&[0u8; N]);
        }
    }
}

/// `KDF_CK(ck) -> (mk, ck')`.
fn kdf_ck(ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    (hmac(ck, &[0x01]), hmac(ck, &[0x02]))
}

/// AES-256-GCM-SIV (RFC 8452): `ciphertext || 16-byte tag`.
fn siv_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let out = Aes256GcmSiv::new_from_slice(key)
        .unwrap()
        .encrypt(&Nonce::from(*nonce), Payload { msg: pt, aad })
        .unwrap();
    assert_eq!(out.len(), pt.len() + TAG_LENGTH);
    out
}

/// The inverse of [`siv_seal`]: `None` if the tag does not verify.
fn siv_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    Aes256GcmSiv::new_from_slice(key)
        .unwrap()
        .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad })
        .ok()
}

/// `ENCRYPT(mk, encoded, AAD)` (SPEC.md §4.1, v2): AES-256-GCM-SIV with key `mk` and the
/// zero nonce, over the already encoded plaintext.
fn message_seal(mk: &[u8; 32], aad: &[u8], encoded: &[u8]) -> Vec<u8> {
    siv_seal(mk, &MESSAGE_NONCE, aad, encoded)
}

/// `DECRYPT(mk, ct, AAD)`: the encoded plaintext, or `None` if the tag does not verify.
fn message_open(mk: &[u8; 32], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    siv_open(mk, &MESSAGE_NONCE, aad, ct)
}

/// Padmé (SPEC.md §4.9, v2), for `L >= 2`: `E = floor(log2 L)`, `S = floor(log2 E) + 1`,
/// `z = E - S`; `L` rounded up to a multiple of `2^z`. Returns `(E, S, z, padme(L))`.
fn padme_steps(l: usize) -> (u32, u32, u32, usize) {
    assert!(l >= 2);
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let z = e - s;
    let low = (1usize << z) - 1;
    (e, s, z, (l + low) & !low)
}

fn padme(l: usize) -> usize {
    padme_steps(l).3
}

/// The length of `encode(pt, policy)` for a plaintext of `len` bytes (SPEC.md §4.9, v2).
fn encoded_length(len: usize, policy: Pad) -> usize {
    let l = len + 1;
    match policy {
        Pad::None => l,
        Pad::Padme => padme(l.max(PADME_MINIMUM)).min(MAX_ENCODED_PLAINTEXT),
    }
}

/// `encode(pt, policy) = pt || 0x80 || 0x00^(P - L)` (SPEC.md §4.9, v2).
fn encode(pt: &[u8], policy: Pad) -> Vec<u8> {
    assert!(pt.len() <= MAX_PLAINTEXT_SIZE);
    let mut out = cat(&[pt, &[END_MARKER]]);
    out.resize(encoded_length(pt.len(), policy), 0x00);
    out
}

/// `decode(x)`: strip every trailing `0x00`; the byte then last must be `0x80`, which is
/// dropped. `None` (the library's `DecryptionFailed`) otherwise, or if nothing is left.
fn decode(x: &[u8]) -> Option<Vec<u8>> {
    let end = x.iter().rposition(|b| *b != 0x00)?;
    (x[end] == END_MARKER).then(|| x[..end].to_vec())
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

/// A prekey id (SPEC.md §5, profile v2 part 2): 8 bytes big-endian.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
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

/// The X3DH fields of an initial message (SPEC.md §5.3, bytes 2..83: u64 prekey ids), and
/// for PQXDH (type `0x03`) the post-quantum prekey id and KEM ciphertext (bytes 83..1179).
#[derive(Clone, Copy)]
struct InitialFields {
    identity: [u8; 32],
    base_key: [u8; 32],
    signed_prekey_id: u64,
    one_time_prekey_id: Option<u64>,
    post_quantum: Option<(u64, [u8; KEM_CIPHERTEXT_LENGTH])>,
}

impl InitialFields {
    /// The message type: `0x03` for PQXDH, `0x02` otherwise; header-encrypted (SPEC.md
    /// §5.3), `0x06` and `0x05`.
    fn message_type(&self, header_encrypted: bool) -> u8 {
        match (self.post_quantum.is_some(), header_encrypted) {
            (true, false) => 0x03,
            (false, false) => 0x02,
            (true, true) => 0x06,
            (false, true) => 0x05,
        }
    }

    /// The fields of an initial message (SPEC.md §5.3, profile v2 part 2): `IK_A` at 2,
    /// `EK_A` at 34, the signed prekey id at 66..74, the one-time prekey flag at 74 and id at
    /// 75..83 (zero when absent), and for PQXDH the post-quantum prekey id at 83..91 and the
    /// KEM ciphertext at 91..1179. Returns the fields and the header's offset.
    fn parse(bytes: &[u8], post_quantum: bool) -> (Self, usize) {
        let opk_flag = bytes[OPK_FLAG_AT];
        assert!(opk_flag <= 1);
        if opk_flag == 0 {
            assert_eq!(u64_at(bytes, OPK_ID_AT), 0, "an absent id is zero");
        }
        let fields = InitialFields {
            identity: arr32(&bytes[IK_A_AT..EK_A_AT]),
            base_key: arr32(&bytes[EK_A_AT..SPK_ID_AT]),
            signed_prekey_id: u64_at(bytes, SPK_ID_AT),
            one_time_prekey_id: (opk_flag == 1).then(|| u64_at(bytes, OPK_ID_AT)),
            post_quantum: post_quantum.then(|| {
                (
                    u64_at(bytes, PQ_ID_AT),
                    bytes[CT_AT..PQ_END].try_into().unwrap(),
                )
            }),
        };
        (fields, if post_quantum { PQ_END } else { X3DH_END })
    }

    fn encode(&self) -> Vec<u8> {
        let (flag, id) = match self.one_time_prekey_id {
            Some(id) => (1u8, id),
            None => (0u8, 0u64),
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
    id: u64,
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
    /// Bob's local device holding IK_B, SPK_B, OPK_B and this key (type `0x2A`), as loaded.
    store: Vec<u8>,
    /// The store after `LocalDevice::accept` (one-time prekeys deleted, or a replay record).
    store_after_accept: Vec<u8>,
    /// The model of Bob's store.
    store_model: Option<StoreModel>,
}

/// The maximum (and default) replay capacity of one signed prekey (profile v2 part 2).
const MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY: u32 = 1024;
/// At most 16 signed prekeys: current, previous and standby together.
const MAX_SIGNED_PREKEYS: usize = 16;
/// The most one-time prekeys a device holds, whatever its cap.
const MAX_ONE_TIME_PREKEYS: usize = 16_384;
/// The most one-time post-quantum prekeys a device holds, whatever its cap.
const MAX_PQ_ONE_TIME_PREKEYS: usize = 1024;
/// The most last-resort post-quantum prekeys a device holds (current and replaced).
const MAX_PQ_LAST_RESORT_PREKEYS: usize = 16;
/// A new device's one-time prekey cap (issue 15 decisions: `DEFAULT_ONE_TIME_PREKEY_CAP`).
const DEFAULT_ONE_TIME_PREKEY_CAP: u32 = 200;
/// How many times `draw_id` draws before `RandomnessUnavailable`.
const ID_DRAWS: usize = 16;
/// The type byte of the stored local device (issue 15 decisions: identity, prekeys and
/// publishing state in one object).
const TYPE_LOCAL_DEVICE: u8 = 0x2A;
/// The type byte of the prekey store before the local device (v2 part 2, never released):
/// retired.
const TYPE_RETIRED_PREKEY_STORE: u8 = 0x24;
/// The type byte of the stored identity key pair (SPEC.md §7.2).
const TYPE_IDENTITY: u8 = 0x21;
/// The stored signed prekey (`0x02 | 0x22 | id(8) | secret(32) | sig(64)`), 106 bytes.
const STORED_SIGNED_PREKEY_LENGTH: usize = 106;
/// Offsets in a stored local device: after `0x02 0x2A` and the stored identity
/// (`0x02 0x21 seed`), the replay capacity, the one-time cap, the next sequence number and
/// the current signed prekey id.
const DEVICE_REPLAY_CAPACITY_AT: usize = 2 + 34;
const DEVICE_ONE_TIME_CAP_AT: usize = DEVICE_REPLAY_CAPACITY_AT + 4;
const DEVICE_NEXT_SEQUENCE_AT: usize = DEVICE_ONE_TIME_CAP_AT + 4;
const DEVICE_CURRENT_ID_AT: usize = DEVICE_NEXT_SEQUENCE_AT + 8;
/// The length of a new device: the header through the current id, one signed prekey
/// (106 + created 8 + superseded 9 + record count 4), the standby (1 + 106 + 8), the
/// one-time count, the last-resort flag and id, the post-quantum count.
const NEW_DEVICE_LENGTH: usize =
    DEVICE_CURRENT_ID_AT + 8 + 4 + (106 + 8 + 9 + 4) + (1 + 106 + 8) + 4 + 9 + 4;

/// A signed prekey of the store model: its X25519 secret as drawn and its signature over
/// `0x05 || SPK` (SPEC.md §2.3).
#[derive(Clone)]
struct SignedKeyModel {
    secret: [u8; 32],
    signature: [u8; 64],
}

impl SignedKeyModel {
    fn new(identity: &Identity, secret: [u8; 32]) -> Self {
        let public = x25519_public(&secret);
        SignedKeyModel {
            secret,
            signature: ed25519_sign(&identity.seed, &cat(&[&[0x05], &public])),
        }
    }

    fn public(&self) -> [u8; 32] {
        x25519_public(&self.secret)
    }

    /// The stored signed prekey, type `0x22` (SPEC.md §7.3, u64 id): 106 bytes.
    fn encode(&self, id: u64) -> Vec<u8> {
        let out = cat(&[
            &[STORAGE_VERSION, 0x22],
            &id.to_be_bytes(),
            &self.secret,
            &self.signature,
        ]);
        assert_eq!(out.len(), STORED_SIGNED_PREKEY_LENGTH);
        out
    }
}

/// An accepted signed prekey with its times (the app's clock, seconds since the Unix epoch:
/// when it was generated, and when it stopped being current, `None` while current and after
/// a switch inside `accept`, which has no clock) and its replay records (the `EK_A` of each
/// session accepted with it that consumed no one-time prekey), kept sorted.
#[derive(Clone)]
struct SignedEntryModel {
    key: SignedKeyModel,
    created: u64,
    superseded: Option<u64>,
    records: std::collections::BTreeSet<[u8; 32]>,
}

impl SignedEntryModel {
    fn new(key: SignedKeyModel, created: u64) -> Self {
        SignedEntryModel {
            key,
            created,
            superseded: None,
            records: Default::default(),
        }
    }
}

/// The standby signed prekey with its generation time.
#[derive(Clone)]
struct StandbyModel {
    id: u64,
    key: SignedKeyModel,
    created: u64,
}

/// A one-time prekey of the store model: the sequence number that orders keys by age,
/// whether the app marked it published, and its secret as drawn.
#[derive(Clone, Copy)]
struct OneTimeModel {
    sequence: u64,
    published: bool,
    secret: [u8; 32],
}

/// A post-quantum prekey of the store model (SPEC.md §7.7), with its sequence number and
/// published flag; a last-resort one also has times, as a signed prekey.
#[derive(Clone)]
struct PqKeyModel {
    sequence: u64,
    published: bool,
    kind: PqKind,
    seed: [u8; KEM_SEED_LENGTH],
    signature: [u8; 64],
    /// Last-resort keys only (0 and `None` for one-time keys).
    created: u64,
    superseded: Option<u64>,
}

/// What the store tells the app after an accept (`StoreNotice`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NoticeModel {
    /// The current signed prekey's records filled and the standby became current.
    Switched { previous: u64, current: u64 },
    /// The current signed prekey's records filled and there was no standby.
    Full { id: u64 },
}

/// The responder's local device as the team's v2 part 2 and issue 15 decisions describe it
/// (SPEC.md §8, stored as type `0x2A`), written from those decisions alone: the identity
/// key pair, signed prekeys (the current one and previous ones, each with its times and
/// replay records), a standby signed prekey with its time, one-time prekeys and
/// post-quantum prekeys with sequence numbers and published flags, the replay capacity,
/// the one-time prekey cap and the sequence counter.
#[derive(Clone)]
struct StoreModel {
    identity_seed: [u8; 32],
    replay_capacity: u32,
    one_time_cap: u32,
    next_sequence: u64,
    current: u64,
    /// Every accepted signed prekey (current and previous), by id.
    signed: std::collections::BTreeMap<u64, SignedEntryModel>,
    standby: Option<StandbyModel>,
    /// One-time prekeys by id.
    one_time: std::collections::BTreeMap<u64, OneTimeModel>,
    pq_current_last_resort: Option<u64>,
    pq: std::collections::BTreeMap<u64, PqKeyModel>,
}

/// `draw_id` (decisions part 2): 8 bytes from the RNG in one call, read big-endian; drawn
/// again if 0 or `taken`; `RandomnessUnavailable` after 16 draws.
fn draw_id(drawer: &mut Drawer, purpose: &str, taken: impl Fn(u64) -> bool) -> u64 {
    for attempt in 0..ID_DRAWS {
        let id = u64::from_be_bytes(drawer.draw_bytes::<8>(format!(
            "{purpose}: id (8 bytes, big-endian; draw {attempt})"
        )));
        if id != 0 && !taken(id) {
            return id;
        }
    }
    panic!("RandomnessUnavailable");
}

/// The ids of the `excess` oldest (lowest sequence) entries of `keys` that pass `among`,
/// oldest first: the keys a generation beyond the cap evicts.
fn oldest<V>(
    keys: &std::collections::BTreeMap<u64, V>,
    excess: usize,
    sequence: impl Fn(&V) -> u64,
    among: impl Fn(&V) -> bool,
) -> Vec<u64> {
    let mut by_age: Vec<(u64, u64)> = keys
        .iter()
        .filter(|(_, v)| among(v))
        .map(|(id, v)| (sequence(v), *id))
        .collect();
    by_age.sort_unstable();
    by_age.into_iter().take(excess).map(|(_, id)| id).collect()
}

impl StoreModel {
    /// A device of `identity` holding exactly the given keys, created at time 0, without
    /// records, standby or anything published, with the default replay capacity and
    /// one-time cap; sequence numbers in the order given (the one-time prekey, then the
    /// post-quantum prekey), `next_sequence` one past the last.
    fn holding(
        identity: &Identity,
        signed: (u64, SignedKeyModel),
        one_time: Option<(u64, [u8; 32])>,
        pq: Option<(u64, PqKind, [u8; KEM_SEED_LENGTH], [u8; 64])>,
    ) -> Self {
        let mut store = StoreModel {
            identity_seed: identity.seed,
            replay_capacity: MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
            one_time_cap: DEFAULT_ONE_TIME_PREKEY_CAP,
            next_sequence: 0,
            current: signed.0,
            signed: [(signed.0, SignedEntryModel::new(signed.1, 0))].into(),
            standby: None,
            one_time: Default::default(),
            pq_current_last_resort: None,
            pq: Default::default(),
        };
        if let Some((id, secret)) = one_time {
            let sequence = store.take_sequence();
            store.one_time.insert(
                id,
                OneTimeModel {
                    sequence,
                    published: false,
                    secret,
                },
            );
        }
        if let Some((id, kind, seed, signature)) = pq {
            let sequence = store.take_sequence();
            store.pq.insert(
                id,
                PqKeyModel {
                    sequence,
                    published: false,
                    kind,
                    seed,
                    signature,
                    created: 0,
                    superseded: None,
                },
            );
            if kind == PqKind::LastResort {
                store.pq_current_last_resort = Some(id);
            }
        }
        store
    }

    fn take_sequence(&mut self) -> u64 {
        self.next_sequence += 1;
        self.next_sequence - 1
    }

    /// Whether `id` names a signed prekey held: current, previous or standby.
    fn signed_taken(&self, id: u64) -> bool {
        self.signed.contains_key(&id) || self.standby.as_ref().is_some_and(|s| s.id == id)
    }

    /// How many signed prekeys are held: current, previous and standby.
    fn signed_count(&self) -> usize {
        self.signed.len() + usize::from(self.standby.is_some())
    }

    /// A fresh signed prekey: its id (not 0, not held, not `also_taken`), then its secret.
    fn draw_signed(
        &self,
        identity: &Identity,
        purpose: &str,
        also_taken: Option<u64>,
        drawer: &mut Drawer,
    ) -> (u64, SignedKeyModel) {
        let id = draw_id(drawer, purpose, |id| {
            self.signed_taken(id) || also_taken == Some(id)
        });
        let key = SignedKeyModel::new(identity, drawer.draw(format!("{purpose}: secret")));
        (id, key)
    }

    /// `LocalDevice::from_identity(IK, now, rng)` (and `LocalDevice::new` after drawing the
    /// identity): current id, current secret, standby id, standby secret; both created at
    /// `now`; nothing else held; the default replay capacity and one-time cap.
    fn new(identity: &Identity, now: u64, drawer: &mut Drawer) -> Self {
        let mut store = StoreModel {
            identity_seed: identity.seed,
            replay_capacity: MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
            one_time_cap: DEFAULT_ONE_TIME_PREKEY_CAP,
            next_sequence: 0,
            current: 0,
            signed: Default::default(),
            standby: None,
            one_time: Default::default(),
            pq_current_last_resort: None,
            pq: Default::default(),
        };
        let (current, key) = store.draw_signed(
            identity,
            "LocalDevice::from_identity: current signed prekey",
            None,
            drawer,
        );
        let (standby, standby_key) = store.draw_signed(
            identity,
            "LocalDevice::from_identity: standby signed prekey",
            Some(current),
            drawer,
        );
        store.current = current;
        store
            .signed
            .insert(current, SignedEntryModel::new(key, now));
        store.standby = Some(StandbyModel {
            id: standby,
            key: standby_key,
            created: now,
        });
        store
    }

    /// `generate_one_time_prekeys(count)`: per key its id (not 0, not held, not in the
    /// batch), then its secret; then the oldest held keys (by sequence, published or not)
    /// beyond the cap are evicted; the new keys get sequence numbers in generation order,
    /// unpublished. Returns the new ids and the evicted ones, oldest first.
    fn generate_one_time_prekeys(
        &mut self,
        count: usize,
        drawer: &mut Drawer,
    ) -> (Vec<u64>, Vec<u64>) {
        let cap = (self.one_time_cap as usize).min(MAX_ONE_TIME_PREKEYS);
        assert!(count <= cap, "StoreFull");
        let mut batch: Vec<(u64, [u8; 32])> = Vec::new();
        for i in 0..count {
            let purpose = format!("generate_one_time_prekeys({count}): key {i}");
            let id = draw_id(drawer, &purpose, |id| {
                self.one_time.contains_key(&id) || batch.iter().any(|(b, _)| *b == id)
            });
            let secret = drawer.draw(format!("{purpose}: secret"));
            batch.push((id, secret));
        }
        let excess = (self.one_time.len() + count).saturating_sub(cap);
        let evicted = oldest(&self.one_time, excess, |k| k.sequence, |_| true);
        for id in &evicted {
            self.one_time.remove(id);
        }
        for (id, secret) in &batch {
            let sequence = self.take_sequence();
            self.one_time.insert(
                *id,
                OneTimeModel {
                    sequence,
                    published: false,
                    secret: *secret,
                },
            );
        }
        (batch.iter().map(|(id, _)| *id).collect(), evicted)
    }

    /// `set_one_time_prekey_cap(cap)` for `cap` in 1..=16384: nothing is evicted now.
    fn set_one_time_prekey_cap(&mut self, cap: u32) {
        assert!((1..=MAX_ONE_TIME_PREKEYS as u32).contains(&cap));
        self.one_time_cap = cap;
    }

    /// `mark_one_time_prekeys_published(ids)`: held ones are marked; returns how many were
    /// not marked before.
    fn mark_one_time_prekeys_published(&mut self, ids: &[u64]) -> usize {
        let mut marked = 0;
        for id in ids {
            if let Some(key) = self.one_time.get_mut(id) {
                marked += usize::from(!key.published);
                key.published = true;
            }
        }
        marked
    }

    /// `mark_pq_prekeys_published(ids)`, as for the one-time prekeys (either kind).
    fn mark_pq_prekeys_published(&mut self, ids: &[u64]) -> usize {
        let mut marked = 0;
        for id in ids {
            if let Some(key) = self.pq.get_mut(id) {
                marked += usize::from(!key.published);
                key.published = true;
            }
        }
        marked
    }

    /// A post-quantum prekey of `kind` from its 64-byte seed, signed over `0x0A || ek`.
    fn pq_key(identity: &Identity, kind: PqKind, seed: [u8; KEM_SEED_LENGTH]) -> PqKeyModel {
        let ek = kem::public_key(&seed);
        PqKeyModel {
            sequence: 0,
            published: false,
            kind,
            seed,
            signature: ed25519_sign(&identity.seed, &cat(&[&[KEM_ENCODING_PREFIX], &ek])),
            created: 0,
            superseded: None,
        }
    }

    /// `generate_pq_one_time_prekeys(count)`: per key its id (not 0, not held by the
    /// post-quantum keys of either kind, not in the batch), then its 64-byte seed; then the
    /// oldest one-time post-quantum keys beyond the cap (the smaller of the device's and
    /// 1024) are evicted. Returns the new ids and the evicted ones.
    fn generate_pq_one_time_prekeys(
        &mut self,
        identity: &Identity,
        count: usize,
        drawer: &mut Drawer,
    ) -> (Vec<u64>, Vec<u64>) {
        let cap = (self.one_time_cap as usize).min(MAX_PQ_ONE_TIME_PREKEYS);
        assert!(count <= cap, "StoreFull");
        let mut batch: Vec<(u64, PqKeyModel)> = Vec::new();
        for i in 0..count {
            let purpose = format!("generate_pq_one_time_prekeys({count}): key {i}");
            let id = draw_id(drawer, &purpose, |id| {
                self.pq.contains_key(&id) || batch.iter().any(|(b, _)| *b == id)
            });
            let seed = drawer.draw_bytes::<KEM_SEED_LENGTH>(format!(
                "{purpose}: ML-KEM-768 seed d || z (64 bytes, one call)"
            ));
            batch.push((id, Self::pq_key(identity, PqKind::OneTime, seed)));
        }
        let one_time = |k: &PqKeyModel| k.kind == PqKind::OneTime;
        let held = self.pq.values().filter(|k| one_time(k)).count();
        let excess = (held + count).saturating_sub(cap);
        let evicted = oldest(&self.pq, excess, |k| k.sequence, one_time);
        for id in &evicted {
            self.pq.remove(id);
        }
        let ids = batch.iter().map(|(id, _)| *id).collect();
        for (id, mut key) in batch {
            key.sequence = self.take_sequence();
            self.pq.insert(id, key);
        }
        (ids, evicted)
    }

    /// `rotate_pq_last_resort_prekey(now)`: a new last-resort key (id, then seed), created
    /// at `now`, made current; the previous current one is superseded at `now`.
    fn rotate_pq_last_resort_prekey(
        &mut self,
        identity: &Identity,
        now: u64,
        drawer: &mut Drawer,
    ) -> u64 {
        let last_resort = self
            .pq
            .values()
            .filter(|k| k.kind == PqKind::LastResort)
            .count();
        assert!(last_resort < MAX_PQ_LAST_RESORT_PREKEYS, "StoreFull");
        let purpose = "rotate_pq_last_resort_prekey";
        let id = draw_id(drawer, purpose, |id| self.pq.contains_key(&id));
        let seed = drawer.draw_bytes::<KEM_SEED_LENGTH>(format!(
            "{purpose}: ML-KEM-768 seed d || z (64 bytes, one call)"
        ));
        if let Some(old) = self.pq_current_last_resort {
            self.pq.get_mut(&old).unwrap().superseded = Some(now);
        }
        let mut key = Self::pq_key(identity, PqKind::LastResort, seed);
        key.sequence = self.take_sequence();
        key.created = now;
        self.pq.insert(id, key);
        self.pq_current_last_resort = Some(id);
        id
    }

    /// `rotate_signed_prekey(now)` (issue 15): a new key (id, secret) created at `now`
    /// becomes current; the standby is kept, or without one a new standby (id, secret) is
    /// drawn too, created at `now`. The old current one stays accepted, superseded at `now`.
    fn rotate_signed_prekey(&mut self, identity: &Identity, now: u64, drawer: &mut Drawer) -> u64 {
        let needed = if self.standby.is_some() { 1 } else { 2 };
        assert!(
            self.signed_count() + needed <= MAX_SIGNED_PREKEYS,
            "StoreFull"
        );
        let (id, key) = self.draw_signed(
            identity,
            "rotate_signed_prekey: new current signed prekey",
            None,
            drawer,
        );
        if self.standby.is_none() {
            let (standby, standby_key) = self.draw_signed(
                identity,
                "rotate_signed_prekey: new standby signed prekey",
                Some(id),
                drawer,
            );
            self.standby = Some(StandbyModel {
                id: standby,
                key: standby_key,
                created: now,
            });
        }
        self.signed.get_mut(&self.current).unwrap().superseded = Some(now);
        self.signed.insert(id, SignedEntryModel::new(key, now));
        self.current = id;
        id
    }

    /// `retire_signed_prekey(id)`: a previous one (never current, never standby) is removed
    /// with its replay records.
    fn retire_signed_prekey(&mut self, id: u64) -> bool {
        id != self.current && self.signed.remove(&id).is_some()
    }

    /// `set_replay_capacity(n)` for `n` in 1..=1024; switches if the current one is full.
    fn set_replay_capacity(&mut self, capacity: u32) -> Option<NoticeModel> {
        assert!((1..=MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY).contains(&capacity));
        self.replay_capacity = capacity;
        self.switch_if_full()
    }

    /// Once the current signed prekey carries `replay_capacity` records: the standby becomes
    /// current, keeping its creation time (the old current a previous one, with no time it
    /// was superseded: the switch has no clock), or without a standby the app is told.
    fn switch_if_full(&mut self) -> Option<NoticeModel> {
        let previous = self.current;
        if self.signed[&previous].records.len() < self.replay_capacity as usize {
            return None;
        }
        match self.standby.take() {
            Some(standby) => {
                self.signed.insert(
                    standby.id,
                    SignedEntryModel::new(standby.key, standby.created),
                );
                self.current = standby.id;
                Some(NoticeModel::Switched {
                    previous,
                    current: standby.id,
                })
            }
            None => Some(NoticeModel::Full { id: previous }),
        }
    }

    /// The store's part of `LocalDevice::accept` for a genuine initial message: the
    /// prekey lookups (signed, one-time, post-quantum), then for a session that consumes no
    /// one-time prekey of either kind the replay checks (a recorded `EK_A`:
    /// `DuplicateOrExpired`; a full signed prekey: `StoreFull`); on success the one-time
    /// keys are deleted, or `EK_A` is recorded under the signed prekey named (and a full
    /// current signed prekey switches). Errors in the library's `Debug` form.
    fn accept(&mut self, f: &InitialFields) -> Result<Option<NoticeModel>, String> {
        if !self.signed.contains_key(&f.signed_prekey_id) {
            return Err(format!(
                "UnknownSignedPreKey(SignedPreKeyId({}))",
                f.signed_prekey_id
            ));
        }
        if let Some(id) = f.one_time_prekey_id {
            if !self.one_time.contains_key(&id) {
                return Err(format!("UnknownOneTimePreKey(OneTimePreKeyId({id}))"));
            }
        }
        let pq_kind = match &f.post_quantum {
            Some((id, _)) => match self.pq.get(id) {
                Some(k) => Some(k.kind),
                None => return Err(format!("UnknownPqPreKey(PqPreKeyId({id}))")),
            },
            None => None,
        };
        let consumes_one_time = f.one_time_prekey_id.is_some() || pq_kind == Some(PqKind::OneTime);
        if !consumes_one_time {
            let records = &self.signed[&f.signed_prekey_id].records;
            if records.contains(&f.base_key) {
                return Err("DuplicateOrExpired".into());
            }
            if records.len() >= self.replay_capacity as usize {
                return Err("StoreFull".into());
            }
        }
        if let Some(id) = f.one_time_prekey_id {
            self.one_time.remove(&id);
        }
        if let (Some((id, _)), Some(PqKind::OneTime)) = (&f.post_quantum, pq_kind) {
            self.pq.remove(id);
        }
        if consumes_one_time {
            return Ok(None);
        }
        self.signed
            .get_mut(&f.signed_prekey_id)
            .unwrap()
            .records
            .insert(f.base_key);
        Ok(self.switch_if_full())
    }

    /// The stored local device, type `0x2A` (issue 15 decisions; layout of SPEC.md §7.5
    /// extended): `0x02 | 0x2A | 0x02 0x21 identity seed (32) | replay capacity u32 |
    /// one-time cap u32 | next sequence u64 | current id u64 | s u32 | s x (0x22 signed
    /// prekey | created u64 | superseded (flag, u64; absent: 9 zero bytes) | r u32 | r x
    /// EK_A) | standby (flag, 0x22 signed prekey, created u64; absent: 115 zero bytes) |
    /// t u32 | t x (sequence u64 | published u8 | 0x23 one-time prekey) | last-resort
    /// (flag, id u64) | q u32 | q x (sequence u64 | published u8 | 0x26 post-quantum prekey
    /// | created u64 | superseded (flag, u64))`, every list by increasing id, the records by
    /// increasing `EK_A`. One-time post-quantum keys have created 0 and no superseded time.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            STORAGE_VERSION,
            TYPE_LOCAL_DEVICE,
            STORAGE_VERSION,
            TYPE_IDENTITY,
        ];
        out.extend_from_slice(&self.identity_seed);
        out.extend_from_slice(&self.replay_capacity.to_be_bytes());
        out.extend_from_slice(&self.one_time_cap.to_be_bytes());
        out.extend_from_slice(&self.next_sequence.to_be_bytes());
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&(self.signed.len() as u32).to_be_bytes());
        for (id, entry) in &self.signed {
            out.extend_from_slice(&entry.key.encode(*id));
            out.extend_from_slice(&entry.created.to_be_bytes());
            put_optional(&mut out, entry.superseded.map(u64::to_be_bytes));
            out.extend_from_slice(&(entry.records.len() as u32).to_be_bytes());
            for ek in &entry.records {
                out.extend_from_slice(ek);
            }
        }
        match &self.standby {
            Some(standby) => {
                out.push(0x01);
                out.extend_from_slice(&standby.key.encode(standby.id));
                out.extend_from_slice(&standby.created.to_be_bytes());
            }
            None => out.extend_from_slice(&[0u8; 1 + STORED_SIGNED_PREKEY_LENGTH + 8]),
        }
        out.extend_from_slice(&(self.one_time.len() as u32).to_be_bytes());
        for (id, key) in &self.one_time {
            out.extend_from_slice(&key.sequence.to_be_bytes());
            out.push(u8::from(key.published));
            out.extend_from_slice(&[STORAGE_VERSION, 0x23]);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&key.secret);
        }
        put_optional(&mut out, self.pq_current_last_resort.map(u64::to_be_bytes));
        out.extend_from_slice(&(self.pq.len() as u32).to_be_bytes());
        for (id, key) in &self.pq {
            out.extend_from_slice(&key.sequence.to_be_bytes());
            out.push(u8::from(key.published));
            out.extend_from_slice(&[STORAGE_VERSION, 0x26]);
            out.extend_from_slice(&id.to_be_bytes());
            out.push(key.kind.byte());
            out.extend_from_slice(&key.seed);
            out.extend_from_slice(&key.signature);
            out.extend_from_slice(&key.created.to_be_bytes());
            put_optional(&mut out, key.superseded.map(u64::to_be_bytes));
        }
        out
    }
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
    /// `MKSKIPPED`: `(ratchet key, N) -> mk`, in insertion order (SPEC.md §4.4, §7.1).
    skipped: Skipped,
    /// Present while the initiator awaits its first reply (SPEC.md §6.2).
    initial: Option<InitialFields>,
    /// Header-encrypted mode only (SPEC.md §4.8).
    he: Option<HeaderKeys>,
    /// The session's padding policy for the plaintexts it sends (SPEC.md §4.9, v2).
    padding: Pad,
}

/// `MKSKIPPED` in the order its keys were inserted (the order SPEC.md §7.1 stores them).
#[derive(Default)]
struct Skipped {
    entries: Vec<([u8; 32], u32, [u8; 32])>,
}

impl Skipped {
    fn insert(&mut self, (dh, n): ([u8; 32], u32), mk: [u8; 32]) {
        assert!(self.get(&dh, n).is_none(), "a skipped key is derived once");
        self.entries.push((dh, n, mk));
    }

    fn get(&self, dh: &[u8; 32], n: u32) -> Option<[u8; 32]> {
        self.entries
            .iter()
            .find(|(d, m, _)| d == dh && *m == n)
            .map(|(_, _, mk)| *mk)
    }

    fn remove(&mut self, (dh, n): &([u8; 32], u32)) -> Option<[u8; 32]> {
        let at = self
            .entries
            .iter()
            .position(|(d, m, _)| d == dh && m == n)?;
        Some(self.entries.remove(at).2)
    }

    fn has_chain(&self, dh: &[u8; 32]) -> bool {
        self.entries.iter().any(|(d, _, _)| d == dh)
    }
}

/// The header-encryption state of SPEC.md §4.8 ([DR] §4.3): `HKs`, `HKr`, `NHKs`, `NHKr`
/// and the `(HK, ratchet key)` pairs of earlier chains with stored skipped keys.
#[derive(Clone)]
struct HeaderKeys {
    hks: Option<[u8; 32]>,
    hkr: Option<[u8; 32]>,
    nhks: [u8; 32],
    nhkr: [u8; 32],
    pairs: Vec<([u8; 32], [u8; 32])>,
}

/// The header-key state of one party after one event, as listed in the file.
struct HeaderKeyState {
    /// `None`: after setup (Alice's `Session::initiate`).
    after_event: Option<usize>,
    party: Party,
    keys: HeaderKeys,
    /// `MKSKIPPED` then, oldest first.
    skipped: Vec<([u8; 32], u32, [u8; 32])>,
    /// For a decryption: which header key opened the sealed header.
    opened_with: Option<String>,
}

/// A sealed header (SPEC.md §4.8) and what it was made from.
#[derive(Clone)]
struct SealedHeader {
    header_key: [u8; 32],
    nonce: [u8; HEADER_NONCE_LENGTH],
    /// `DHs || PN || N`.
    plaintext: [u8; 40],
    /// `AAD_h = AD || the framing before the sealed header`.
    aad: Vec<u8>,
    /// `nonce || AES-256-GCM-SIV(HK, nonce, AAD_h, plaintext)`.
    sealed: [u8; SEALED_HEADER_LENGTH],
}

/// `HENCRYPT(hk, (dh, pn, n), AAD_h)` with the given nonce (AES-256-GCM-SIV, v2).
fn seal_header(
    hk: &[u8; 32],
    nonce: &[u8; HEADER_NONCE_LENGTH],
    dh_pub: &[u8; 32],
    pn: u32,
    n: u32,
    aad: &[u8],
) -> SealedHeader {
    let plaintext: [u8; 40] = cat(&[dh_pub, &pn.to_be_bytes(), &n.to_be_bytes()])
        .try_into()
        .unwrap();
    let sealed = cat(&[nonce, &siv_seal(hk, nonce, aad, &plaintext)]);
    SealedHeader {
        header_key: *hk,
        nonce: *nonce,
        plaintext,
        aad: aad.to_vec(),
        sealed: sealed.try_into().unwrap(),
    }
}

/// `HDECRYPT(hk, sealed, AAD_h)`: `(dh, pn, n)`, or `None` if the tag does not verify.
fn open_header(hk: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<([u8; 32], u32, u32)> {
    let nonce: [u8; HEADER_NONCE_LENGTH] = sealed[..HEADER_NONCE_LENGTH].try_into().unwrap();
    let header = siv_open(hk, &nonce, aad, &sealed[HEADER_NONCE_LENGTH..])?;
    assert_eq!(header.len(), 40);
    Some((
        arr32(&header[..32]),
        u32_at(&header, 32),
        u32_at(&header, 36),
    ))
}

struct RootStep {
    sender: Party,
    rk_in: [u8; 32],
    sender_key: KeyPair,
    receiver_key: KeyPair,
    dh_output: [u8; 32],
    rk_out: [u8; 32],
    chain_key: [u8; 32],
    /// Header-encrypted mode: the third output of `KDF_RK_HE`, the next header key.
    next_header_key: Option<[u8; 32]>,
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
    /// The sender's padding policy, and `encode(plaintext, policy)` (SPEC.md §4.9, v2).
    padding: Pad,
    encoded: Vec<u8>,
    /// Header-encrypted mode: the sealed header.
    header: Option<SealedHeader>,
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
    /// Header-encrypted mode: `(HKA, NHKB)` (SPEC.md §4.8).
    header_keys: Option<([u8; 32], [u8; 32])>,
    /// Header-encrypted mode: each party's header keys after setup and after each event.
    header_states: Vec<HeaderKeyState>,
    /// Which header key opened the last decrypted message's header.
    last_opened: Option<String>,
    /// The acting party's stored session (SPEC.md §7.1) after setup and after each event.
    snapshots: Vec<(Party, Vec<u8>)>,
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
            _ => (0u8, 0u64, [0u8; 32]),
        };
        let mut bundle = cat(&[
            &[BUNDLE_VERSION, if pq_key.is_some() { 0x11 } else { 0x10 }],
            &bob.ed25519_public,
            &s.signed_prekey_id.to_be_bytes(),
            &spk.public,
            &spk_signature,
            &[opk_flag],
            &opk_id.to_be_bytes(),
            &opk_public,
        ]);
        assert_eq!(bundle.len(), BUNDLE_LENGTH);
        assert_eq!(u64_at(&bundle, BUNDLE_SPK_ID_AT), s.signed_prekey_id);
        assert_eq!(&bundle[BUNDLE_SPK_AT..BUNDLE_SIG_AT], &spk.public);
        assert_eq!(bundle[BUNDLE_OPK_FLAG_AT], opk_flag);
        if let Some((spec, _, public, _, signature)) = &pq_key {
            bundle.extend_from_slice(&spec.id.to_be_bytes());
            bundle.extend_from_slice(public);
            bundle.extend_from_slice(signature);
            assert_eq!(bundle.len(), PQ_BUNDLE_LENGTH);
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
                store_after_accept: Vec::new(),
                store_model: None,
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
        // Header-encrypted mode: (HKA, NHKB) from SK (SPEC.md §4.8).
        let header_keys = s
            .header_encryption
            .then(|| split(&hkdf::<64>(&[0u8; 32], &sk, HEADER_KEYS_INFO)));

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
        // Bob's device (loaded, type 0x2A): IK_B, SPK_B (no records, no standby), OPK_B with
        // sequence 0 if any, then the post-quantum prekey with the next sequence.
        let pq = pq.map(|mut pq| {
            let model = StoreModel::holding(
                &bob,
                (
                    s.signed_prekey_id,
                    SignedKeyModel {
                        secret: spk.private,
                        signature: spk_signature,
                    },
                ),
                s.one_time_prekey_id.zip(opk.map(|k| k.private)),
                Some((pq.id, pq.kind, pq.seed, pq.signature)),
            );
            assert_eq!(model.signed[&s.signed_prekey_id].key.public(), spk.public);
            pq.store = model.encode();
            pq.store_model = Some(model);
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
                    skipped: Skipped::default(),
                    initial: Some(initial),
                    // RatchetInitAliceHE: HKs = HKA, NHKr = NHKB; NHKs from KDF_RK_HE below.
                    he: header_keys.map(|(hka, nhkb)| HeaderKeys {
                        hks: Some(hka),
                        hkr: None,
                        nhks: [0u8; 32],
                        nhkr: nhkb,
                        pairs: Vec::new(),
                    }),
                    padding: s.alice_padding,
                }),
                None,
            ],
            roots: Vec::new(),
            messages: (0..s.messages.len()).map(|_| None).collect(),
            ratchet_keys: [Vec::new(), Vec::new()],
            header_keys,
            header_states: Vec::new(),
            last_opened: None,
            snapshots: Vec::new(),
        };
        // RatchetInitAlice: DHs fresh, (RK, CKs) = KDF_RK(SK, DH(DHs, SPK_B));
        // header-encrypted: (RK, CKs, NHKs) = KDF_RK_HE(SK, DH(DHs, SPK_B)).
        model.sending_half(Alice, "Session::initiate: Alice's first DHs secret".into());
        model.record(None, Alice);
        model
    }

    /// Records the party's stored session and, in header-encrypted mode, its header keys.
    fn record(&mut self, after_event: Option<usize>, p: Party) {
        let snapshot = self.stored_session(p);
        self.snapshots.push((p, snapshot));
        let opened_with = self.last_opened.take();
        let r = self.ratchets[p.index()].as_ref().unwrap();
        if let Some(he) = &r.he {
            self.header_states.push(HeaderKeyState {
                after_event,
                party: p,
                keys: he.clone(),
                skipped: r.skipped.entries.clone(),
                opened_with,
            });
        }
    }

    /// The party's session in the storage format of SPEC.md §7.1 (type `0x20`, `0x25` or,
    /// header-encrypted, `0x28`), with the default limits. Profile v2: version `0x02`, the
    /// state flags byte (role, pending fields, chain keys present), no local identity key,
    /// and the padding byte (`0x00` none, `0x01` Padmé) right after `max_stored_skipped`.
    fn stored_session(&self, p: Party) -> Vec<u8> {
        let r = self.ratchets[p.index()].as_ref().unwrap();
        let pq = self.pq.is_some();
        let kind = match (&r.he, pq) {
            (Some(_), _) => 0x28,
            (None, true) => 0x25,
            (None, false) => 0x20,
        };
        // The local identity key is not stored: the loading device passes its own.
        let remote = match p {
            Alice => &self.bob,
            Bob => &self.alice,
        };
        // State flags: 0x01 responder, 0x02 awaiting reply, 0x04 one-time prekey id stored,
        // 0x08 CKs stored, 0x10 CKr stored.
        let mut state = if p == Alice { 0x00 } else { 0x01 };
        if let Some(f) = &r.initial {
            state |= 0x02;
            if f.one_time_prekey_id.is_some() {
                state |= 0x04;
            }
        }
        if r.cks.is_some() {
            state |= 0x08;
        }
        if r.ckr.is_some() {
            state |= 0x10;
        }
        let mut out = vec![STORAGE_VERSION, kind, state];
        if r.he.is_some() {
            out.push(0x02 | u8::from(pq));
        }
        out.extend_from_slice(&remote.ed25519_public);
        out.extend_from_slice(&self.ek.public);
        if let Some(f) = &r.initial {
            out.extend_from_slice(&f.signed_prekey_id.to_be_bytes());
            if let Some(id) = f.one_time_prekey_id {
                out.extend_from_slice(&id.to_be_bytes());
            }
            if let Some((id, ciphertext)) = &f.post_quantum {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(ciphertext);
            }
        }
        out.extend_from_slice(&1000u32.to_be_bytes());
        out.extend_from_slice(&2000u32.to_be_bytes());
        out.push(r.padding.byte());
        out.extend_from_slice(&r.rk);
        out.extend_from_slice(&r.dhs.unwrap().private);
        out.extend_from_slice(&r.dhr.unwrap());
        for key in [r.cks, r.ckr].into_iter().flatten() {
            out.extend_from_slice(&key);
        }
        out.extend_from_slice(&r.ns.to_be_bytes());
        out.extend_from_slice(&r.nr.to_be_bytes());
        out.extend_from_slice(&r.pn.to_be_bytes());
        out.extend_from_slice(&(r.skipped.entries.len() as u32).to_be_bytes());
        for (dh_pub, n, mk) in &r.skipped.entries {
            out.extend_from_slice(dh_pub);
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(mk);
        }
        if let Some(he) = &r.he {
            put_optional(&mut out, he.hks);
            put_optional(&mut out, he.hkr);
            out.extend_from_slice(&he.nhks);
            out.extend_from_slice(&he.nhkr);
            out.extend_from_slice(&(he.pairs.len() as u32).to_be_bytes());
            for (hk, dh_pub) in &he.pairs {
                out.extend_from_slice(hk);
                out.extend_from_slice(dh_pub);
            }
        }
        out
    }

    /// Generates a new `DHs` and derives a sending chain: `(RK, CKs) = KDF_RK(RK, DH(DHs, DHr))`.
    fn sending_half(&mut self, p: Party, purpose: String) {
        let key = KeyPair::from_private(self.drawers[p.index()].draw(purpose));
        self.keyring.insert(key.public, key.private);
        self.ratchet_keys[p.index()].push(key);
        let r = self.ratchets[p.index()].as_mut().unwrap();
        let dhr = r.dhr.unwrap();
        let dh_output = dh(&key.private, &dhr);
        // Header-encrypted mode: (RK, CKs, NHKs) = KDF_RK_HE(RK, DH(DHs, DHr)).
        let (rk_out, chain_key, next_header_key) = match &mut r.he {
            Some(he) => {
                let (rk_out, chain_key, nhk) = kdf_rk_he(&r.rk, &dh_output);
                he.nhks = nhk;
                (rk_out, chain_key, Some(nhk))
            }
            None => {
                let (rk_out, chain_key) = kdf_rk(&r.rk, &dh_output);
                (rk_out, chain_key, None)
            }
        };
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
            next_header_key,
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
        // Header-encrypted mode: the 12-byte header nonce, drawn after any DHs (SPEC.md §2.5).
        let header_encrypted = self.ratchets[p.index()].as_ref().unwrap().he.is_some();
        let header_nonce = header_encrypted.then(|| {
            self.drawers[p.index()].draw_bytes::<HEADER_NONCE_LENGTH>(format!(
                "Session::encrypt of message {index}: 12-byte header nonce (header-encrypted mode, one call)"
            ))
        });
        let ad = self.x3dh.ad;
        let r = self.ratchets[p.index()].as_mut().unwrap();
        let chain_key = r.cks.unwrap();
        let (message_key, next_chain_key) = kdf_ck(&chain_key);
        let ratchet_public = r.dhs.unwrap().public;
        let (pn, n) = (r.pn, r.ns);
        r.cks = Some(next_chain_key);
        r.ns += 1;
        let mut prefix = vec![WIRE_VERSION];
        match &r.initial {
            Some(fields) => {
                prefix.push(fields.message_type(header_encrypted));
                prefix.extend_from_slice(&fields.encode());
            }
            None => prefix.push(if header_encrypted { 0x04 } else { 0x01 }),
        }
        let header = match &header_nonce {
            // HENCRYPT(HKs, header, AAD_h = AD || the framing so far) (SPEC.md §4.8).
            Some(nonce) => {
                let hks = r.he.as_ref().unwrap().hks.unwrap();
                let header =
                    seal_header(&hks, nonce, &ratchet_public, pn, n, &cat(&[&ad, &prefix]));
                prefix.extend_from_slice(&header.sealed);
                Some(header)
            }
            None => {
                prefix.extend_from_slice(&ratchet_public);
                prefix.extend_from_slice(&pn.to_be_bytes());
                prefix.extend_from_slice(&n.to_be_bytes());
                None
            }
        };
        let aad = cat(&[&ad, &prefix]);
        // ENCRYPT(mk, encode(pt, policy), AAD) (SPEC.md §4.1, §4.9, v2).
        let padding = r.padding;
        let encoded = encode(plaintext, padding);
        let sealed = message_seal(&message_key, &aad, &encoded);
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
            padding,
            encoded,
            header,
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
        assert_eq!(bytes[0], WIRE_VERSION);
        if matches!(bytes[1], 0x04..=0x06) {
            self.decrypt_he(p, index);
            return;
        }
        let (fields, header_at) = match bytes[1] {
            kind @ (0x02 | 0x03) => {
                let (fields, header_at) = InitialFields::parse(&bytes, kind == 0x03);
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
        let aad = cat(&[&ad, prefix]);
        let encoded = message_open(&mk, &aad, body).expect("model decryption");
        assert_eq!(
            encoded, record.encoded,
            "encoded plaintext of message {index}"
        );
        // The receiver decodes whatever the sender's policy was (SPEC.md §4.9).
        let plaintext = decode(&encoded).expect("model decoding");
        assert_eq!(plaintext, expected);
        if p == Alice {
            // A reply proves the responder has the session (§6.2).
            r.initial = None;
        }
    }

    /// SPEC.md §4.8 decryption of a header-encrypted message (types `0x04`-`0x06`), with
    /// §3.4 / §4.8 initialisation for Bob's first message.
    fn decrypt_he(&mut self, p: Party, index: usize) {
        let record = self.messages[index].as_ref().unwrap();
        let bytes = record.bytes.clone();
        let expected = record.plaintext.clone();
        let kind = bytes[1];
        let (fields, header_at) = match kind {
            0x05 | 0x06 => {
                let (fields, header_at) = InitialFields::parse(&bytes, kind == 0x06);
                (Some(fields), header_at)
            }
            0x04 => (None, 2),
            other => panic!("type {other}"),
        };
        let sealed = &bytes[header_at..header_at + SEALED_HEADER_LENGTH];
        let prefix = &bytes[..header_at + SEALED_HEADER_LENGTH];
        let body = &bytes[header_at + SEALED_HEADER_LENGTH..];
        if let Some(f) = &fields {
            assert_eq!(p, Bob, "only the responder receives initial messages");
            if self.ratchets[Bob.index()].is_none() {
                self.respond(f);
            }
            assert_eq!(f.identity, self.alice.ed25519_public);
            assert_eq!(f.base_key, self.ek.public);
            assert_eq!(
                f.post_quantum.map(|(id, ct)| (id, ct.to_vec())),
                self.pq.as_ref().map(|pq| (pq.id, pq.ciphertext.to_vec()))
            );
        }
        let ad = self.x3dh.ad;
        // AAD_h = AD || the framing before the sealed header; AAD = AD || prefix.
        let header_aad = cat(&[&ad, &bytes[..header_at]]);
        let aad = cat(&[&ad, prefix]);
        let r = self.ratchets[p.index()].as_mut().unwrap();
        let mut he = r.he.clone().unwrap();

        // 1. The header keys of chains with stored skipped keys, oldest first.
        let mut from_pair = None;
        for (i, (hk, dh_pub)) in he.pairs.iter().enumerate() {
            if let Some(header) = open_header(hk, sealed, &header_aad) {
                assert_eq!(header.0, *dh_pub, "a stored header key names its chain");
                from_pair = Some((i, header));
                break;
            }
        }
        let mut staged_pairs = Vec::new();
        let (opened_with, mk) = match from_pair {
            Some((i, (dh_pub, _, n))) if r.skipped.get(&dh_pub, n).is_some() => {
                let mk = r.skipped.remove(&(dh_pub, n)).unwrap();
                (format!("skipped_header_key_{i}"), mk)
            }
            _ => {
                // 2. HKr (current chain), then NHKr (next chain).
                let (opened_with, (dh_pub, pn, n), next) = match from_pair {
                    Some((i, header)) => {
                        assert_eq!(Some(header.0), r.dhr, "duplicate in the model");
                        (format!("skipped_header_key_{i}"), header, false)
                    }
                    None => match he.hkr.and_then(|hk| open_header(&hk, sealed, &header_aad)) {
                        Some(header) => ("HKr".to_owned(), header, false),
                        None => (
                            "NHKr".to_owned(),
                            open_header(&he.nhkr, sealed, &header_aad).expect("NHKr opens"),
                            true,
                        ),
                    },
                };
                // 3. The header key and the ratchet key agree on the chain.
                assert_eq!(r.dhr == Some(dh_pub), !next, "chain of message {index}");
                if next {
                    // SkipMessageKeys(PN) on the old chain, under its header key HKr.
                    if let (Some(mut ck), Some(old)) = (r.ckr, r.dhr) {
                        if pn > r.nr {
                            while r.nr < pn {
                                let (mk, next_ck) = kdf_ck(&ck);
                                r.skipped.insert((old, r.nr), mk);
                                ck = next_ck;
                                r.nr += 1;
                            }
                            if let Some(hkr) = he.hkr {
                                staged_pairs.push((hkr, old));
                            }
                        }
                    }
                    if r.cks.take().is_some() {
                        r.pn = r.ns;
                        r.ns = 0;
                    }
                    // DHRatchetHE: (RK, CKr, NHKr) = KDF_RK_HE(RK, DH(DHs, dh));
                    // HKs = NHKs, HKr = NHKr.
                    let dh_output = dh(&r.dhs.unwrap().private, &dh_pub);
                    let (rk_out, chain_key, nhk) = kdf_rk_he(&r.rk, &dh_output);
                    let step = self
                        .roots
                        .iter()
                        .position(|s| s.sender_key.public == dh_pub)
                        .unwrap();
                    assert_eq!(self.roots[step].rk_in, r.rk);
                    assert_eq!(self.roots[step].dh_output, dh_output);
                    assert_eq!(self.roots[step].rk_out, rk_out);
                    assert_eq!(self.roots[step].chain_key, chain_key);
                    assert_eq!(self.roots[step].next_header_key, Some(nhk));
                    he.hks = Some(he.nhks);
                    he.hkr = Some(he.nhkr);
                    he.nhkr = nhk;
                    r.rk = rk_out;
                    r.dhr = Some(dh_pub);
                    r.ckr = Some(chain_key);
                    r.nr = 0;
                }
                let mut ck = r.ckr.unwrap();
                assert!(n >= r.nr, "duplicate in the model");
                let skips = n > r.nr;
                while r.nr < n {
                    let (mk, next_ck) = kdf_ck(&ck);
                    r.skipped.insert((dh_pub, r.nr), mk);
                    ck = next_ck;
                    r.nr += 1;
                }
                if skips {
                    if let Some(hkr) = he.hkr {
                        staged_pairs.push((hkr, dh_pub));
                    }
                }
                let (mk, next_ck) = kdf_ck(&ck);
                r.ckr = Some(next_ck);
                r.nr = n + 1;
                (opened_with, mk)
            }
        };
        // The chains' header keys, once each, at most MAX_SKIPPED_HEADER_KEYS = 32; a pair
        // whose chain has no stored key left is forgotten.
        for (hk, dh_pub) in staged_pairs {
            if !he.pairs.iter().any(|(_, d)| *d == dh_pub) {
                he.pairs.push((hk, dh_pub));
            }
        }
        assert!(he.pairs.len() <= 32);
        he.pairs.retain(|(_, d)| r.skipped.has_chain(d));
        r.he = Some(he);

        let record = self.messages[index].as_ref().unwrap();
        assert_eq!(mk, record.message_key, "receiver's mk for message {index}");
        let encoded = message_open(&mk, &aad, body).expect("model decryption");
        assert_eq!(
            encoded, record.encoded,
            "encoded plaintext of message {index}"
        );
        let plaintext = decode(&encoded).expect("model decoding");
        assert_eq!(plaintext, expected);
        if p == Alice {
            r.initial = None;
        }
        self.last_opened = Some(opened_with);
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
            skipped: Skipped::default(),
            initial: None,
            // RatchetInitBobHE: NHKs = NHKB, NHKr = HKA, from Bob's own SK (SPEC.md §4.8).
            he: self.header_keys.map(|keys| {
                let (hka, nhkb) = split(&hkdf::<64>(&[0u8; 32], &sk, HEADER_KEYS_INFO));
                assert_eq!((hka, nhkb), keys, "Bob's initial header keys");
                HeaderKeys {
                    hks: None,
                    hkr: None,
                    nhks: nhkb,
                    nhkr: hka,
                    pairs: Vec::new(),
                }
            }),
            // Session::respond and LocalDevice::accept give the default policy.
            padding: Pad::Padme,
        });
    }

    fn run(s: &Scenario) -> Self {
        let mut model = Model::new(s);
        for (step, op) in s.script.iter().enumerate() {
            let party = match *op {
                Encrypt(p, i) => {
                    assert_eq!(s.messages[i].0, p);
                    model.encrypt(p, i, s.messages[i].1.as_bytes());
                    p
                }
                Respond(i) => {
                    model.decrypt(Bob, i);
                    Bob
                }
                Accept(i) => {
                    model.decrypt(Bob, i);
                    // The store's bookkeeping (decisions part 2): one-time keys deleted, or
                    // EK_A recorded under the signed prekey; the default capacity is far off.
                    let bytes = &model.message(i).bytes;
                    let (fields, _) = InitialFields::parse(bytes, matches!(bytes[1], 0x03 | 0x06));
                    let pq = model.pq.as_mut().unwrap();
                    let store = pq.store_model.as_mut().unwrap();
                    assert_eq!(store.accept(&fields), Ok(None));
                    pq.store_after_accept = store.encode();
                    Bob
                }
                Decrypt(p, i) => {
                    model.decrypt(p, i);
                    p
                }
            };
            model.record(Some(step), party);
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
    store: Option<LocalDevice>,
    /// PQXDH: the store's encoding as loaded (SPEC.md §7.5).
    store_bytes: Vec<u8>,
    /// PQXDH: `LocalDevice::to_bytes` after the accept.
    store_after_accept: Vec<u8>,
}

impl World {
    fn setup(s: &Scenario) -> Self {
        let mut alice_rng = ChaCha20Rng::seed_from_u64(s.alice_seed);
        let mut bob_rng = ChaCha20Rng::seed_from_u64(s.bob_seed);
        let alice_identity = IdentityKeyPair::generate(&mut alice_rng).unwrap();
        let bob_identity = IdentityKeyPair::generate(&mut bob_rng).unwrap();
        let spk =
            SignedPreKey::generate(&bob_identity, s.signed_prekey_id.into(), &mut bob_rng).unwrap();
        let opk = s
            .one_time_prekey_id
            .map(|id| OneTimePreKey::generate(id.into(), &mut bob_rng).unwrap());
        let (bundle, store, store_bytes) = match &s.post_quantum {
            Some(spec) => {
                let (bundle, store, bytes) =
                    library_pq::setup(spec, &bob_identity, &spk, opk.as_ref(), &mut bob_rng);
                (bundle, Some(store), bytes)
            }
            None => (
                bundle_of(&bob_identity, &spk, opk.as_ref()).to_bytes(),
                None,
                Vec::new(),
            ),
        };
        // Alice uses the bundle as received over the network; with the default options
        // (Padmé, no header encryption) through `Session::initiate`.
        let received = PreKeyBundle::from_bytes(&bundle).unwrap();
        let alice = if s.header_encryption || s.alice_padding != Pad::Padme {
            let mut options = SessionOptions::new();
            if s.header_encryption {
                options = options.header_encryption();
            }
            if s.alice_padding != Pad::Padme {
                options = options.padding(s.alice_padding.library());
            }
            Session::initiate(&alice_identity, &received, &options, &mut alice_rng).unwrap()
        } else {
            Session::initiate(
                &alice_identity,
                &received,
                &SessionOptions::new(),
                &mut alice_rng,
            )
            .unwrap()
        };
        assert_eq!(alice.is_post_quantum(), s.post_quantum.is_some());
        assert_eq!(alice.is_header_encrypted(), s.header_encryption);
        assert_eq!(alice.padding(), s.alice_padding.library());
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
            store_after_accept: Vec::new(),
        }
    }

    /// Bob's `LocalDevice::accept` (PQXDH): on success the store deletes the one-time
    /// prekeys the message used, or records its `EK_A` if it used none.
    fn accept(&mut self, message: &[u8]) -> Result<doubleratchet::Accepted, Error> {
        self.store
            .as_mut()
            .expect("accept needs a PQXDH scenario")
            .accept(message, &SessionOptions::new())
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
            &SessionOptions::new(),
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
/// Returns the world and the acting party's stored session after setup and each event.
fn run_library(s: &Scenario) -> (World, Vec<(Party, Vec<u8>)>) {
    let mut world = World::setup(s);
    let mut snapshots = vec![(Alice, world.alice.to_bytes().to_vec())];
    for op in s.script {
        let party = match *op {
            Encrypt(p, _) | Decrypt(p, _) => p,
            Respond(_) | Accept(_) => Bob,
        };
        if let Accept(i) = *op {
            let wire = world.wire[i].clone().unwrap();
            let accepted = world.accept(&wire).unwrap();
            assert_eq!(accepted.plaintext, s.messages[i].1.as_bytes());
            assert_eq!(
                accepted.used_one_time_prekey.map(u64::from),
                s.one_time_prekey_id
            );
            assert_eq!(
                accepted.used_post_quantum_prekey.map(u64::from),
                s.post_quantum.map(|p| p.id)
            );
            assert!(accepted.session.is_post_quantum());
            assert_eq!(accepted.session.is_header_encrypted(), s.header_encryption);
            assert_eq!(
                accepted.session.padding(),
                Padding::Padme,
                "the default policy"
            );
            assert_eq!(accepted.notice, None, "the default capacity is far off");
            world.bob = Some(accepted.session);
            library_pq::check_store_after_accept(s, world.store.as_ref().unwrap());
            world.store_after_accept = world.store.as_ref().unwrap().to_bytes().to_vec();
            snapshots.push((Bob, world.session(Bob).to_bytes().to_vec()));
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
                &SessionOptions::new(),
            )
            .unwrap();
            assert_eq!(accepted.plaintext, s.messages[i].1.as_bytes());
            assert_eq!(
                accepted.used_one_time_prekey.map(u64::from),
                s.one_time_prekey_id
            );
            // The responder follows the mode of the initial message (SPEC.md §4.8), and pads
            // with the default policy whatever the initiator's (SPEC.md §4.9).
            assert_eq!(accepted.session.is_header_encrypted(), s.header_encryption);
            assert_eq!(
                accepted.session.padding(),
                Padding::Padme,
                "the default policy"
            );
        }
        world.apply(s, *op);
        snapshots.push((party, world.session(party).to_bytes().to_vec()));
    }
    (world, snapshots)
}

/// The library's PQXDH API (public items only).
#[cfg(feature = "pqxdh")]
mod library_pq {
    use doubleratchet::{
        IdentityKeyPair, LocalDevice, OneTimePreKey, PqPreKey, PqPreKeyKind, SignedPreKey,
    };
    use doubleratchet_test_support::pq_bundle_of;
    use rand_chacha::ChaCha20Rng;

    use super::{PqKind, PqSpec, Scenario, STORAGE_VERSION};

    /// `PqPreKey::generate` (after the classical prekeys, from Bob's RNG), the PQXDH bundle,
    /// and Bob's local device holding IK_B and the three keys. `LocalDevice` draws its own
    /// random ids, so the device is loaded from the keys' stored encodings (SPEC.md §7.2,
    /// §7.3, §7.4, §7.7) in the type `0x2A` framing (replay capacity 1024, one-time cap 200,
    /// every time 0, nothing published, no records, no standby, sequence 0 for the one-time
    /// prekey if any, the next for the post-quantum prekey). Returns the bundle's bytes, the
    /// device and its encoding.
    pub(super) fn setup(
        spec: &PqSpec,
        bob: &IdentityKeyPair,
        spk: &SignedPreKey,
        opk: Option<&OneTimePreKey>,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<u8>, LocalDevice, Vec<u8>) {
        let kind = match spec.kind {
            PqKind::OneTime => PqPreKeyKind::OneTime,
            PqKind::LastResort => PqPreKeyKind::LastResort,
        };
        let pq = PqPreKey::generate(bob, spec.id.into(), kind, rng).unwrap();
        let bundle = pq_bundle_of(bob, spk, opk, &pq);
        assert_eq!(bundle.post_quantum_prekey_id(), Some(spec.id.into()));

        let mut bytes = vec![STORAGE_VERSION, 0x2A];
        bytes.extend_from_slice(&bob.to_bytes()); // 0x02 0x21 seed
        bytes.extend_from_slice(&1024u32.to_be_bytes()); // replay capacity
        bytes.extend_from_slice(&200u32.to_be_bytes()); // one-time prekey cap
        let next_sequence = u64::from(opk.is_some()) + 1;
        bytes.extend_from_slice(&next_sequence.to_be_bytes());
        bytes.extend_from_slice(&spk.id().to_u64().to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&spk.to_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes()); // created
        bytes.extend_from_slice(&[0u8; 9]); // not superseded: it is current
        bytes.extend_from_slice(&0u32.to_be_bytes()); // no replay records
        bytes.extend_from_slice(&[0u8; 1 + 106 + 8]); // no standby
        bytes.extend_from_slice(&u32::from(opk.is_some()).to_be_bytes());
        if let Some(k) = opk {
            bytes.extend_from_slice(&0u64.to_be_bytes()); // sequence
            bytes.push(0x00); // not published
            bytes.extend_from_slice(&k.to_bytes());
        }
        match kind {
            PqPreKeyKind::LastResort => {
                bytes.push(0x01);
                bytes.extend_from_slice(&pq.id().to_u64().to_be_bytes());
            }
            _ => bytes.extend_from_slice(&[0u8; 9]),
        }
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&(next_sequence - 1).to_be_bytes());
        bytes.push(0x00); // not published
        bytes.extend_from_slice(&pq.to_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes()); // created
        bytes.extend_from_slice(&[0u8; 9]); // current last-resort, or one-time: no superseded
        let store = LocalDevice::from_bytes(&bytes).unwrap();
        assert_eq!(&store.to_bytes()[..], &bytes[..], "store round trip");
        // The store publishes the same bundle.
        let published = store
            .pq_bundle(
                opk.map(OneTimePreKey::id),
                (spec.kind == PqKind::OneTime).then_some(spec.id.into()),
            )
            .unwrap();
        assert_eq!(published, bundle, "LocalDevice::pq_bundle");
        (bundle.to_bytes(), store, bytes)
    }

    /// After a successful accept (SPEC.md §8): one-time prekeys of both kinds deleted; a
    /// last-resort key kept, with a replay record for the session.
    pub(super) fn check_store_after_accept(s: &Scenario, store: &LocalDevice) {
        let spec = s.post_quantum.unwrap();
        if let Some(id) = s.one_time_prekey_id {
            assert!(store.one_time_prekey(id.into()).is_none());
        }
        let one_time = spec.kind == PqKind::OneTime;
        assert_eq!(store.pq_prekey(spec.id.into()).is_none(), one_time);
        let needs_record = s.one_time_prekey_id.is_none() && !one_time;
        assert_eq!(store.replay_records(), usize::from(needs_record));
    }
}

/// Without the `pqxdh` feature the PQXDH scenarios are skipped ([`supported`]).
#[cfg(not(feature = "pqxdh"))]
mod library_pq {
    use doubleratchet::{IdentityKeyPair, LocalDevice, OneTimePreKey, SignedPreKey};
    use rand_chacha::ChaCha20Rng;

    use super::{PqSpec, Scenario};

    pub(super) fn setup(
        _: &PqSpec,
        _: &IdentityKeyPair,
        _: &SignedPreKey,
        _: Option<&OneTimePreKey>,
        _: &mut ChaCha20Rng,
    ) -> (Vec<u8>, LocalDevice, Vec<u8>) {
        unreachable!("PQXDH needs the pqxdh feature")
    }

    pub(super) fn check_store_after_accept(_: &Scenario, _: &LocalDevice) {
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
    method_crates: &'static str,
}

/// What every file's `method` says the generator recomputed with which crates.
const METHOD_CRATES: &str = "x25519-dalek, curve25519-dalek, ed25519-dalek, sha2, hkdf, hmac, \
    aes-gcm-siv (ENCRYPT = AES-256-GCM-SIV(mk, 0x00^12, AAD, encode(pt)) and the plaintext \
    encoding pt || 0x80 || 0x00.. of SPEC.md 4.9 recomputed independently)";

/// The provenance of the PQXDH files.
fn provenance_pq() -> Provenance {
    Provenance {
        spec: "SPEC.md, protocol profile v2 (PQXDH: sections 1-6, 3.6, 4.9, 5.3 type 0x03, 5.4 \
               type 0x11, 7.1 type 0x25, the local device type 0x2A, 7.7, 8.3; u64 prekey ids)",
        rng: "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every X25519/Ed25519 key \
              generation is one try_fill_bytes of 32 bytes, PqPreKey::generate one of 64 bytes \
              (the ML-KEM seed d || z), and Session::initiate draws the 32-byte ML-KEM \
              encapsulation randomness m between EK_A and the first ratchet key (SPEC.md 2.5)",
        method: "message bytes produced by the library's public API; every value recomputed \
                 independently from the SPEC.md v2 formulas with the crates named in \
                 method_crates and ml-kem (ML-KEM-768 KeyGen from the seed, Encaps_internal \
                 with m, Decaps), and asserted equal to the library's output before writing: \
                 every message, the bundle, Bob's local device as loaded and after the accept \
                 (type 0x2A), and each party's whole stored session (SPEC.md 7.1) \
                 after every event",
        ..provenance()
    }
}

/// The provenance of the header-encrypted files.
fn provenance_he(post_quantum: bool) -> Provenance {
    let base = if post_quantum {
        provenance_pq()
    } else {
        provenance()
    };
    Provenance {
        spec: if post_quantum {
            "SPEC.md, protocol profile v2 (header encryption: sections 2.5, 4.8, 4.9, 5.3 type \
             0x06, 7.1 type 0x28; PQXDH: 3.6, 5.4 type 0x11, the local device type 0x2A, 7.7; u64 \
             prekey ids)"
        } else {
            "SPEC.md, protocol profile v2 (header encryption: sections 2.5, 4.8, 4.9, 5.3 types \
             0x04 and 0x05, 7.1 type 0x28)"
        },
        rng: if post_quantum {
            "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every X25519/Ed25519 key \
             generation is one try_fill_bytes of 32 bytes, PqPreKey::generate one of 64 bytes \
             (the ML-KEM seed d || z), Session::initiate draws the 32-byte ML-KEM encapsulation \
             randomness m between EK_A and the first ratchet key, and in header-encrypted mode \
             every Session::encrypt draws the 12-byte header nonce with one try_fill_bytes, \
             after the new ratchet key of a deferred DH ratchet step (SPEC.md 2.5)"
        } else {
            "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every key generation is one \
             try_fill_bytes of 32 bytes, and in header-encrypted mode every Session::encrypt \
             draws the 12-byte header nonce with one try_fill_bytes, after the new ratchet key \
             of a deferred DH ratchet step (SPEC.md 2.5)"
        },
        method: if post_quantum {
            "message bytes produced by the library's public API; every value recomputed \
             independently from the SPEC.md v2 formulas with the crates named in method_crates \
             and ml-kem (header keys, KDF_RK_HE, each sealed header under its header key with \
             AAD_h and AES-256-GCM-SIV), and asserted equal to the library's output before \
             writing: every message, and each party's whole stored session (SPEC.md 7.1 type \
             0x28: root, chain and header keys, counters, padding policy, skipped message keys \
             and their header keys) after every event"
        } else {
            "message bytes produced by the library's public API; every value recomputed \
             independently from the SPEC.md v2 formulas with the crates named in method_crates \
             (header keys, KDF_RK_HE, each sealed header under its header key with AAD_h and \
             AES-256-GCM-SIV), and asserted equal to the library's output before writing: every \
             message, and each party's whole stored session (SPEC.md 7.1 type 0x28: root, chain \
             and header keys, counters, padding policy, skipped message keys and their header \
             keys) after every event"
        },
        ..base
    }
}

fn provenance() -> Provenance {
    Provenance {
        generator: GENERATOR,
        command: COMMAND,
        date: DATE,
        spec: "SPEC.md, protocol profile v2 (X3DH + Double Ratchet, sections 1-6; 4.1 ENCRYPT \
               with AES-256-GCM-SIV, 4.9 plaintext encoding, 7.1 with the padding byte; u64 \
               prekey ids in 5.3, 5.4 and 7.1)",
        library: format!("doubleratchet {}", library_version()),
        rng: "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); every key generation is one \
              try_fill_bytes of 32 bytes (SPEC.md 2.5)",
        method: "message bytes produced by the library's public API; every value recomputed \
                 independently from the SPEC.md v2 formulas with the crates named in \
                 method_crates, and asserted equal to the library's output before writing: \
                 every message, the bundle, and each party's whole stored session (SPEC.md \
                 7.1) after every event",
        method_crates: METHOD_CRATES,
    }
}

#[derive(Serialize)]
struct Constants {
    x3dh_info: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pqxdh_info: Option<&'static str>,
    root_info: &'static str,
    session_id_label: &'static str,
    x3dh_salt: String,
    x3dh_ikm_prefix: String,
    signature_prefix: String,
    chain_message_key_byte: String,
    chain_next_key_byte: String,
    /// Profile v2: one version byte per format family.
    wire_version: String,
    bundle_version: String,
    storage_version: String,
    /// `ENCRYPT` (SPEC.md §4.1, v2).
    aead: &'static str,
    message_nonce: String,
    /// The plaintext encoding (SPEC.md §4.9, v2).
    end_marker: String,
    padme_minimum: usize,
    max_encoded_plaintext: usize,
    max_plaintext_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    kem_encoding_prefix: Option<String>,
    /// Header-encrypted files only (SPEC.md §4.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    header_keys_info: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_keys_salt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_he_info: Option<&'static str>,
}

fn constants(post_quantum: bool, header_encryption: bool) -> Constants {
    Constants {
        x3dh_info: "doubleratchet v2 X3DH",
        pqxdh_info: post_quantum.then_some("doubleratchet v2 PQXDH"),
        root_info: "doubleratchet v2 root",
        session_id_label: "doubleratchet v2 session id",
        x3dh_salt: hex(&[0u8; 32]),
        x3dh_ikm_prefix: hex(&[0xFFu8; 32]),
        signature_prefix: hex(&[0x05]),
        chain_message_key_byte: hex(&[0x01]),
        chain_next_key_byte: hex(&[0x02]),
        wire_version: hex(&[WIRE_VERSION]),
        bundle_version: hex(&[BUNDLE_VERSION]),
        storage_version: hex(&[STORAGE_VERSION]),
        aead: "AES-256-GCM-SIV (RFC 8452), 12-byte nonce, 16-byte tag appended",
        message_nonce: hex(&MESSAGE_NONCE),
        end_marker: hex(&[END_MARKER]),
        padme_minimum: PADME_MINIMUM,
        max_encoded_plaintext: MAX_ENCODED_PLAINTEXT,
        max_plaintext_size: MAX_PLAINTEXT_SIZE,
        kem_encoding_prefix: post_quantum.then(|| hex(&[KEM_ENCODING_PREFIX])),
        header_keys_info: header_encryption.then_some("doubleratchet v2 header keys"),
        header_keys_salt: header_encryption.then(|| hex(&[0u8; 32])),
        root_he_info: header_encryption.then_some("doubleratchet v2 root HE"),
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
    signed_prekey_id: u64,
    one_time_prekey_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    header_encryption: bool,
    /// Each party's padding policy (SPEC.md §4.9, v2): `padme` or `none`.
    alice_padding: &'static str,
    bob_padding: &'static str,
    setup: Vec<String>,
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
    id: u64,
    private: String,
    public: String,
    signed_message: String,
    signature: String,
}

#[derive(Serialize)]
struct OneTimePreKeyJson {
    id: u64,
    private: String,
    public: String,
}

#[derive(Serialize)]
struct PqPreKeyJson {
    id: u64,
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
    /// The stored local device (type `0x2A`) Bob accepts with.
    #[serde(skip_serializing_if = "Option::is_none")]
    prekey_store: Option<String>,
    /// The store after `LocalDevice::accept`: one-time prekeys deleted, or `EK_A` recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    prekey_store_after_accept: Option<String>,
    ratchet_keys: Vec<KeyPairJson>,
}

/// PQXDH's KEM step (SPEC.md §3.6).
#[derive(Serialize)]
struct PqxdhJson {
    post_quantum_prekey_id: u64,
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
    /// Header-encrypted files: `nhk`, the third output of `KDF_RK_HE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_header_key: Option<String>,
}

#[derive(Serialize)]
struct InitialFieldsJson {
    identity_key: String,
    base_key: String,
    signed_prekey_id: u64,
    one_time_prekey_flag: u8,
    one_time_prekey_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_id: Option<u64>,
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
    /// The sender's padding policy and `encode(plaintext, policy)` (SPEC.md §4.9, v2).
    padding: &'static str,
    encoded_plaintext: String,
    initial_fields: Option<InitialFieldsJson>,
    root_step: usize,
    ratchet_public: String,
    pn: u32,
    n: u32,
    chain_key: String,
    message_key: String,
    next_chain_key: String,
    /// Header-encrypted files: the sealed header (SPEC.md §4.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_header: Option<SealedHeaderJson>,
    prefix: String,
    aad: String,
    ciphertext: String,
    tag: String,
    bytes: String,
}

#[derive(Serialize)]
struct SealedHeaderJson {
    /// `HKs` of the sender, the header key of the message's chain.
    header_key: String,
    /// The 12 bytes drawn from the sender's RNG.
    nonce: String,
    /// `DHs || PN || N`.
    plaintext: String,
    /// `AAD_h = AD || every byte of the message before the sealed header`.
    aad: String,
    encrypted_header: String,
    tag: String,
    /// `nonce || encrypted_header || tag`, the 68 bytes on the wire.
    sealed: String,
}

/// Header encryption (SPEC.md §4.8): the initial header keys and every party's header-key
/// state over time.
#[derive(Serialize)]
struct HeaderEncryptionJson {
    /// `HKA`, `NHKB` = the two halves of `HKDF(0x00^32, SK, HEADER_KEYS_INFO, 64)`.
    hka: String,
    nhkb: String,
    /// The header key of each root step's sending chain: `HKA` for step 0, `NHKB` for
    /// step 1, the `next_header_key` of step `j - 2` for step `j`.
    chain_header_keys: Vec<String>,
    states: Vec<HeaderKeyStateJson>,
}

#[derive(Serialize)]
struct HeaderKeyStateJson {
    /// The event after which the state holds; `null` for Alice after `Session::initiate`.
    after_event: Option<usize>,
    party: &'static str,
    /// For a decryption: `HKr`, `NHKr` or `skipped_header_key_<i>` (the `i`-th stored pair
    /// before the event).
    opened_with: Option<String>,
    hks: Option<String>,
    hkr: Option<String>,
    nhks: String,
    nhkr: String,
    /// The stored `(header key, ratchet key)` pairs, oldest first.
    skipped_header_keys: Vec<SkippedHeaderKeyJson>,
    /// `MKSKIPPED`, oldest first.
    skipped_message_keys: Vec<SkippedMessageKeyJson>,
}

#[derive(Serialize)]
struct SkippedHeaderKeyJson {
    header_key: String,
    ratchet_key: String,
}

#[derive(Serialize)]
struct SkippedMessageKeyJson {
    ratchet_key: String,
    n: u32,
    message_key: String,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    header_encryption: Option<HeaderEncryptionJson>,
    root_steps: Vec<RootStepJson>,
    messages: Vec<MessageJson>,
}

fn header_encryption_json(m: &Model, hka: [u8; 32], nhkb: [u8; 32]) -> HeaderEncryptionJson {
    let chain_header_keys: Vec<[u8; 32]> = (0..m.roots.len())
        .map(|j| match j {
            0 => hka,
            1 => nhkb,
            j => m.roots[j - 2].next_header_key.unwrap(),
        })
        .collect();
    // Each message's header is sealed under its chain's header key.
    for r in m.messages.iter().flatten() {
        assert_eq!(
            r.header.as_ref().unwrap().header_key,
            chain_header_keys[r.root_step]
        );
    }
    let chain_header_keys = chain_header_keys.iter().map(|k| hex(k)).collect();
    let states = m
        .header_states
        .iter()
        .map(|st| HeaderKeyStateJson {
            after_event: st.after_event,
            party: st.party.name(),
            opened_with: st.opened_with.clone(),
            hks: st.keys.hks.map(|k| hex(&k)),
            hkr: st.keys.hkr.map(|k| hex(&k)),
            nhks: hex(&st.keys.nhks),
            nhkr: hex(&st.keys.nhkr),
            skipped_header_keys: st
                .keys
                .pairs
                .iter()
                .map(|(hk, dh_pub)| SkippedHeaderKeyJson {
                    header_key: hex(hk),
                    ratchet_key: hex(dh_pub),
                })
                .collect(),
            skipped_message_keys: st
                .skipped
                .iter()
                .map(|(dh_pub, n, mk)| SkippedMessageKeyJson {
                    ratchet_key: hex(dh_pub),
                    n: *n,
                    message_key: hex(mk),
                })
                .collect(),
        })
        .collect();
    HeaderEncryptionJson {
        hka: hex(&hka),
        nhkb: hex(&nhkb),
        chain_header_keys,
        states,
    }
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

/// The `setup` steps of a PQXDH file. The bundle step still names `PreKeyBundle::new`,
/// now crate-internal (the generator builds the same bytes from the public parts with
/// `PreKeyBundle::assemble`, see `doubleratchet_test_support::pq_bundle_of`): the strings
/// are kept so that the committed files stay byte for byte what they are, like
/// [`GENERATOR`]; change them with the next regeneration that changes the files anyway.
const PQ_SETUP: &[&str] = &[
    "alice_rng = ChaCha20Rng::seed_from_u64(alice_rng_seed); bob_rng = ChaCha20Rng::seed_from_u64(bob_rng_seed)",
    "IK_A = IdentityKeyPair::generate(alice_rng); IK_B = IdentityKeyPair::generate(bob_rng)",
    "SPK_B = SignedPreKey::generate(IK_B, signed_prekey_id, bob_rng)",
    "if one_time_prekey_id is not null: OPK_B = OneTimePreKey::generate(one_time_prekey_id, bob_rng)",
    "PQPK_B = PqPreKey::generate(IK_B, post_quantum_prekey_id, post_quantum_prekey_kind, bob_rng) (one 64-byte draw: the ML-KEM seed d || z)",
    "bundle = PreKeyBundle::new(IK_B, SPK_B, OPK_B).with_post_quantum_prekey(PQPK_B).to_bytes() (type 0x11); Alice parses it with PreKeyBundle::from_bytes",
    "Bob's device = LocalDevice::from_bytes(bob.prekey_store): IK_B, SPK_B, OPK_B and PQPK_B in the local device encoding, type 0x2A (replay capacity 1024, one-time prekey cap 200, next sequence = the number of keys below, SPK_B current, created at time 0, with no replay records, no standby, OPK_B with sequence 0, PQPK_B with the next sequence and created at time 0 if last-resort, nothing marked published, the current last-resort id if PQPK_B is last-resort); LocalDevice draws its own random ids, so it is loaded rather than generated; LocalDevice::pq_bundle gives the same bundle",
    "alice = Session::initiate(IK_A, bundle, &SessionOptions::new(), alice_rng) (draws EK_A, then m, then the first ratchet key)",
    "then the events in order: encrypt uses the party's own rng; accept is LocalDevice::accept(message, &SessionOptions::new()) on Bob's device and creates Bob's session (Session::respond refuses PQXDH messages); the store then deletes one-time prekeys of both kinds, or records EK_A under SPK_B if the message used none (Accepted::notice is None: the capacity is far off); LocalDevice::to_bytes then gives bob.prekey_store_after_accept",
];

/// A file's `setup` steps; header-encrypted files initiate with
/// `SessionOptions::new().header_encryption()`, and a scenario whose Alice pads nothing with
/// `SessionOptions::new().padding(Padding::None)`.
fn setup_steps(s: &Scenario, steps: Vec<&'static str>) -> Vec<String> {
    let mut options = String::from("SessionOptions::new()");
    if s.header_encryption {
        options.push_str(".header_encryption()");
    }
    if s.alice_padding == Pad::None {
        options.push_str(".padding(Padding::None)");
    }
    let initiate = "alice = Session::initiate(IK_A, bundle, &SessionOptions::new(), alice_rng)";
    let mut out: Vec<String> = steps
        .into_iter()
        .map(|step| match step.strip_prefix(initiate) {
            Some(rest) if options != "SessionOptions::new()" => {
                format!("alice = Session::initiate(IK_A, bundle, &{options}, alice_rng){rest}")
            }
            _ => step.to_owned(),
        })
        .collect();
    if s.header_encryption {
        out.push(
            "header-encrypted mode (SPEC.md 4.8): every Session::encrypt draws a 12-byte header nonce from the sender's rng \
             after any new ratchet key; Bob's session follows the mode of the initial message (type 0x05 or 0x06)"
                .into(),
        );
    }
    out.push(format!(
        "padding (SPEC.md 4.9): Alice's session pads with policy {} ({}); Bob's session, made by {}, has the default \
         policy padme; each decodes whatever the other's policy was",
        s.alice_padding.name(),
        if s.alice_padding == Pad::Padme {
            "the default"
        } else {
            "SessionOptions::padding(Padding::None)"
        },
        if s.post_quantum.is_some() {
            "LocalDevice::accept"
        } else {
            "Session::respond"
        },
    ));
    out
}

fn vector_file(s: &Scenario, m: &Model) -> VectorFile {
    let (protocol, api) = match &m.pq {
        Some(_) => (
            "PQXDH, SPEC.md 3.6",
            "Session::initiate / encrypt / LocalDevice::accept / decrypt",
        ),
        None => (
            "SPEC.md protocol profile v2",
            "Session::initiate / encrypt / respond / decrypt",
        ),
    };
    let mut comment = vec![
        if m.pq.is_some() {
            format!(
                "Known-answer vectors for the doubleratchet crate, SPEC.md protocol profile v2 ({protocol}): {}.",
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
            "Every value below is computed from the SPEC.md v2 formulas with the primitive crates, independently \
             of the library; the generator asserted that each message's bytes equal the bytes the library's public \
             API produced ({api}) before writing this file."
        ),
        "Byte strings are lowercase hex. X25519 private keys are given as drawn (unclamped) except the \
         identity's x25519_private, which is clamp(SHA-512(seed)[0..32]). tests/vectors.rs checks this file."
            .into(),
        "Profile v2 (SPEC.md 4.1, 4.9): ENCRYPT(mk, pt, AAD) = AES-256-GCM-SIV(key = mk, nonce = 0x00^12, AAD, \
         encode(pt)), output ciphertext || 16-byte tag; encode(pt) = pt || 0x80 || 0x00^(P - L) with L = len(pt) + 1 \
         and P = L (policy none) or min(padme(max(L, 64)), 1047313) (policy padme); each message lists the sender's \
         padding policy and its encoded_plaintext, which the ciphertext is as long as. Version bytes: wire 0x02, \
         bundle 0x02, storage 0x02. Prekey ids (profile v2 part 2) are u64, 8 bytes big-endian, in bundles (179 \
         bytes, PQXDH 1435), initial messages and storage; JSON gives them as integers up to 2^64 - 1."
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
             0xFF^32 || DH1 || DH2 || DH3 [|| DH4] || SS, info = \"doubleratchet v2 PQXDH\", L = 32); the bundle \
             (type 0x11) carries Sig(IK_B, 0x0A || ek); every initial message (type 0x03) carries the PQ prekey id and CT."
                .into(),
        );
    }
    if s.header_encryption {
        let api = if m.pq.is_some() {
            "Session::initiate(.., &SessionOptions::new().header_encryption(), ..) / encrypt / \
             LocalDevice::accept / decrypt"
        } else {
            "Session::initiate(.., &SessionOptions::new().header_encryption(), ..) / encrypt / \
             respond / decrypt"
        };
        comment[3] = format!(
            "Every value below is computed from the SPEC.md v2 formulas with the primitive crates, independently \
             of the library; the generator asserted that each message's bytes equal the bytes the library's public \
             API produced ({api}) before writing this file."
        );
        comment[0] = format!(
            "Known-answer vectors for the doubleratchet crate, SPEC.md protocol profile v2 (header encryption, \
             SPEC.md 4.8{}): {}.",
            if m.pq.is_some() { "; PQXDH, SPEC.md 3.6" } else { "" },
            s.name
        );
        comment.push(
            "Header encryption (SPEC.md 4.8): (HKA, NHKB) = HKDF(salt = 0x00^32, IKM = SK, info = \"doubleratchet v2 \
             header keys\", L = 64); KDF_RK_HE(rk, dh) = HKDF(salt = rk, IKM = dh, info = \"doubleratchet v2 root HE\", \
             L = 96) -> (rk', ck, nhk) replaces KDF_RK; each header is sealed as nonce || AES-256-GCM-SIV(HKs, nonce, AAD_h, \
             DHs || PN || N) with a 12-byte nonce drawn from the sender's RNG after any new ratchet key (SPEC.md 2.5) and \
             AAD_h = AD || the message bytes before the sealed header; the body's AAD is AD || every byte before the \
             ciphertext, sealed header included. Types 0x04 (normal), 0x05 (initial), 0x06 (PQXDH initial)."
                .into(),
        );
        comment.push(
            "header_encryption.states lists, after setup and after every event, the acting party's HKs, HKr, NHKs, NHKr, \
             the stored (header key, ratchet key) pairs of chains with skipped keys, MKSKIPPED, and for a decryption which \
             key opened the header; the generator checked each state against the library's stored session (SPEC.md 7.1, \
             type 0x28)."
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
            next_header_key: r.next_header_key.map(|k| hex(&k)),
        })
        .collect();
    let messages = (0..s.messages.len())
        .map(|index| {
            let r = m.message(index);
            let ct_len = r.encoded.len();
            let body = &r.bytes[r.prefix.len()..];
            assert_eq!(body.len(), ct_len + TAG_LENGTH);
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
                padding: r.padding.name(),
                encoded_plaintext: hex(&r.encoded),
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
                sealed_header: r.header.as_ref().map(|h| SealedHeaderJson {
                    header_key: hex(&h.header_key),
                    nonce: hex(&h.nonce),
                    plaintext: hex(&h.plaintext),
                    aad: hex(&h.aad),
                    encrypted_header: hex(&h.sealed[HEADER_NONCE_LENGTH..HEADER_NONCE_LENGTH + 40]),
                    tag: hex(&h.sealed[HEADER_NONCE_LENGTH + 40..]),
                    sealed: hex(&h.sealed),
                }),
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
        provenance: if s.header_encryption {
            provenance_he(m.pq.is_some())
        } else if m.pq.is_some() {
            provenance_pq()
        } else {
            provenance()
        },
        constants: constants(m.pq.is_some(), s.header_encryption),
        scenario: ScenarioJson {
            name: s.name,
            description: s.description,
            alice_rng_seed: s.alice_seed,
            bob_rng_seed: s.bob_seed,
            signed_prekey_id: s.signed_prekey_id,
            one_time_prekey_id: s.one_time_prekey_id,
            post_quantum_prekey_id: s.post_quantum.map(|p| p.id),
            post_quantum_prekey_kind: s.post_quantum.map(|p| p.kind.name()),
            header_encryption: s.header_encryption,
            alice_padding: s.alice_padding.name(),
            bob_padding: Pad::Padme.name(),
            setup: setup_steps(
                s,
                if m.pq.is_some() {
                    PQ_SETUP.to_vec()
                } else {
                    vec![
                "alice_rng = ChaCha20Rng::seed_from_u64(alice_rng_seed); bob_rng = ChaCha20Rng::seed_from_u64(bob_rng_seed)",
                "IK_A = IdentityKeyPair::generate(alice_rng); IK_B = IdentityKeyPair::generate(bob_rng)",
                "SPK_B = SignedPreKey::generate(IK_B, signed_prekey_id, bob_rng)",
                "if one_time_prekey_id is not null: OPK_B = OneTimePreKey::generate(one_time_prekey_id, bob_rng)",
                // Names the now crate-internal `PreKeyBundle::new`, kept byte for byte (see
                // `PQ_SETUP`).
                "bundle = PreKeyBundle::new(IK_B, SPK_B, OPK_B).to_bytes(); Alice parses it with PreKeyBundle::from_bytes",
                "alice = Session::initiate(IK_A, bundle, &SessionOptions::new(), alice_rng)",
                "then the events in order: encrypt uses the party's own rng; respond is Session::respond(IK_B, SPK_B by id, OPK_B by id) and creates Bob's session; Bob deletes OPK_B once it is used",
            ]
                },
            ),
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
            prekey_store_after_accept: m.pq.as_ref().map(|pq| hex(&pq.store_after_accept)),
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
        header_encryption: m
            .header_keys
            .map(|(hka, nhkb)| header_encryption_json(m, hka, nhkb)),
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

/// Message `r` with its body replaced by `ENCRYPT` under its genuine message key and AAD
/// of `encoded` (SPEC.md §4.1, v2): the tag verifies, so only decoding can fail.
fn rebody(r: &MessageRecord, encoded: &[u8]) -> Vec<u8> {
    cat(&[&r.prefix, &message_seal(&r.message_key, &r.aad, encoded)])
}

/// Message `r`'s plaintext followed by zero bytes up to its genuine encoded length, without
/// the `0x80` end marker (SPEC.md §4.9): it does not decode.
fn without_end_marker(r: &MessageRecord) -> Vec<u8> {
    let mut encoded = r.plaintext.clone();
    encoded.resize(r.encoded.len(), 0x00);
    assert!(decode(&encoded).is_none(), "it decodes");
    encoded
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

/// A prekey id that no store of these vectors holds (full width, like every id here).
const UNKNOWN_ID: u64 = 0xDEAD_BEEF_0BAD_F00D;

/// SPEC.md §2.2: a canonical u-coordinate (bit 255 clear, below p = 2^255 - 19) that is not
/// one of the five canonical small-order points.
fn x25519_public_valid(u: &[u8]) -> bool {
    let at_least_p = u[31] == 0x7F && u[1..31].iter().all(|b| *b == 0xFF) && u[0] >= 0xED;
    u[31] & 0x80 == 0 && !at_least_p && SMALL_ORDER_U.iter().all(|(_, h)| hex(u) != *h)
}

/// The first error of the sequential bundle parse of SPEC.md §10.1 (profile v2 part 2
/// layout, no size check before the fields), or `None` if `b` parses: version, type,
/// `IK_B` (taken from a genuine bundle here, so only its presence is checked), the signed
/// prekey id (8), `SPK_B` (§2.2), the signature (64), the one-time prekey flag, its id (8)
/// and key (32: zero when absent, §2.2 when present); type `0x11`: the post-quantum prekey
/// id (8), the encapsulation key (1184, every coefficient below q), the signature (64);
/// then bytes left. Also returns what each field read.
fn bundle_parse_error(b: &[u8]) -> (Option<&'static str>, Vec<String>) {
    let mut notes = Vec::new();
    let mut at = 0usize;
    let mut take = |n: usize, notes: &mut Vec<String>, what: &str| -> Option<(usize, usize)> {
        if b.len() < at + n {
            notes.push(format!(
                "{what} needs bytes {at}..{}, but the input has {}",
                at + n,
                b.len()
            ));
            return None;
        }
        at += n;
        Some((at - n, at))
    };
    macro_rules! field {
        ($n:expr, $what:expr) => {
            match take($n, &mut notes, $what) {
                Some((from, to)) => &b[from..to],
                None => return (Some("Truncated"), notes),
            }
        };
    }
    // (The inputs given here keep the genuine version and type bytes.)
    assert_eq!(field!(1, "the version")[0], BUNDLE_VERSION);
    let kind = field!(1, "the type")[0];
    assert!(kind == 0x10 || kind == 0x11);
    let _identity = field!(32, "IK_B");
    let id = field!(8, "the signed prekey id");
    notes.push(format!("signed prekey id {}", hex(id)));
    let spk = field!(32, "SPK_B");
    if !x25519_public_valid(spk) {
        notes.push(format!("SPK_B {} fails SPEC.md 2.2", hex(spk)));
        return (Some("InvalidPublicKey"), notes);
    }
    notes.push(format!("SPK_B {} passes SPEC.md 2.2", hex(spk)));
    let _signature = field!(64, "the signature");
    let flag = field!(1, "the one-time prekey flag")[0];
    notes.push(format!("one-time prekey flag {flag:#04x}"));
    if flag > 1 {
        return (Some("InvalidEncoding"), notes);
    }
    let opk = field!(40, "the one-time prekey id and key");
    if flag == 0 && opk.iter().any(|x| *x != 0) {
        return (Some("InvalidEncoding"), notes);
    }
    if flag == 1 && !x25519_public_valid(&opk[8..]) {
        return (Some("InvalidPublicKey"), notes);
    }
    if kind == 0x11 {
        let _id = field!(8, "the post-quantum prekey id");
        let ek = field!(KEM_PUBLIC_KEY_LENGTH, "the encapsulation key");
        if kem_coefficients(ek).iter().any(|c| *c >= KEM_Q) {
            return (Some("InvalidPublicKey"), notes);
        }
        let _signature = field!(64, "the post-quantum signature");
    }
    if at != b.len() {
        return (Some("TrailingData"), notes);
    }
    (None, notes)
}

/// The base bundle in the layout of profile v2 part 1 (SPEC.md 5.4 before u64 ids): the same
/// keys and signatures with 4-byte ids (the low 32 bits of each id), 171 bytes (type `0x10`)
/// or 1423 (type `0x11`), under the same version byte `0x02`.
fn part1_layout_bundle(s: &Scenario, m: &Model) -> Vec<u8> {
    let low = |id: u64| (id as u32).to_be_bytes();
    let (flag, opk_id, opk_public) = match (s.one_time_prekey_id, &m.opk) {
        (Some(id), Some(k)) => (1u8, low(id), k.public),
        _ => (0u8, [0u8; 4], [0u8; 32]),
    };
    let mut out = cat(&[
        &[BUNDLE_VERSION, m.bundle[1]],
        &m.bob.ed25519_public,
        &low(s.signed_prekey_id),
        &m.spk.public,
        &m.spk_signature,
        &[flag],
        &opk_id,
        &opk_public,
    ]);
    assert_eq!(out.len(), 171);
    if let Some(pq) = &m.pq {
        out.extend_from_slice(&low(pq.id));
        out.extend_from_slice(&pq.public);
        out.extend_from_slice(&pq.signature);
        assert_eq!(out.len(), 1423);
    }
    out
}

/// A reject case for [`part1_layout_bundle`]: its expected error follows from
/// [`bundle_parse_error`], which the description explains.
fn part1_layout_description(s: &Scenario, m: &Model) -> (Vec<u8>, String, &'static str) {
    let bundle = part1_layout_bundle(s, m);
    let (error, notes) = bundle_parse_error(&bundle);
    let error = error.expect("a part 1 bundle does not parse as part 2");
    let description = format!(
        "the base bundle in the layout of profile v2 part 1 ({} bytes: the same keys and \
         signatures, 4-byte prekey ids = the low 32 bits of this file's ids, version byte still \
         0x02), read with the part 2 layout (u64 ids), field by field as SPEC.md 10.1 orders it \
         (no size check before the fields): {}: {error}",
        bundle.len(),
        notes.join("; ")
    );
    (bundle, description, error)
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
        format!("message 0 with the first ciphertext byte (offset {INITIAL_PREFIX}) xor 0x80"),
        at_m0,
        "respond",
        Bob,
        xor_at(m0, INITIAL_PREFIX, 0x80),
        "DecryptionFailed",
        None,
    );
    add(
        "initial_pn_changed",
        format!(
            "message 0 with PN (offset {}..{}) set to 1: the header is authenticated as AAD",
            X3DH_END + 32,
            X3DH_END + 36
        ),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, X3DH_END + 32, &1u32.to_be_bytes()),
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
    let reseal = |aad: &[u8]| cat(&[&r2.prefix, &message_seal(&r2.message_key, aad, &r2.encoded)]);
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

    // --- the plaintext encoding (SPEC.md 4.9, v2): authenticated bodies that do not decode
    // Each body is encrypted under the genuine message key with the genuine AAD, so the tag
    // verifies; only decoding can fail, and it must commit nothing.
    let pt2 = &r2.plaintext;
    assert_eq!(r2.padding, Pad::Padme);
    let padded = |mut body: Vec<u8>| {
        body.resize(r2.encoded.len(), 0x00);
        body
    };
    for (name, encoded, what) in [
        (
            "body_without_end_marker",
            padded(pt2.clone()),
            format!(
                "the plaintext followed by {} zero bytes (the genuine encoded length, {}), without \
                 the 0x80 end marker",
                r2.encoded.len() - pt2.len(),
                r2.encoded.len()
            ),
        ),
        (
            "body_unpadded_without_end_marker",
            pt2.clone(),
            format!(
                "the bare {}-byte plaintext, without end marker or padding (its last byte is {:#04x})",
                pt2.len(),
                pt2[pt2.len() - 1]
            ),
        ),
        (
            "body_all_zero",
            vec![0x00; r2.encoded.len()],
            format!(
                "{} zero bytes: nothing is left once the trailing zeros are stripped",
                r2.encoded.len()
            ),
        ),
        (
            "body_empty",
            Vec::new(),
            "nothing (an empty encoded plaintext: the message is 58 bytes, the tag only)".into(),
        ),
        (
            "body_nonzero_after_end_marker",
            padded(cat(&[pt2, &[END_MARKER, 0x01]])),
            "the plaintext, the end marker, then 0x01 and zero bytes: after stripping the \
             trailing zeros the last byte is 0x01, not 0x80"
                .into(),
        ),
        (
            "body_end_marker_then_ff",
            padded(cat(&[pt2, &[END_MARKER], &[0xFF]])),
            "the plaintext, the end marker, 0xff, then zero bytes".into(),
        ),
    ] {
        assert!(decode(&encoded).is_none(), "{name} decodes");
        let input = rebody(r2, &encoded);
        assert_eq!(
            message_open(&r2.message_key, &r2.aad, &input[r2.prefix.len()..]),
            Some(encoded.clone()),
            "{name}: the tag verifies"
        );
        add(
            name,
            format!(
                "message 2 with its body re-encrypted under its genuine message key and AAD (so \
                 the tag verifies) over an encoded plaintext that does not decode (SPEC.md 4.9): \
                 {what}; nothing is committed, and the genuine message then decrypts"
            ),
            at_m2,
            "decrypt",
            Alice,
            input,
            "DecryptionFailed",
            Some(2),
        );
    }
    for (name, i, at, operation) in [
        ("initial_body_without_end_marker", 0, at_m0, "respond"),
        (
            "second_initial_body_without_end_marker",
            1,
            at_m1,
            "decrypt",
        ),
    ] {
        let r = m.message(i);
        let what = if operation == "respond" {
            "given to Session::respond: no session is created and the one-time prekey is kept, \
             so Bob then accepts the genuine message"
        } else {
            "given to Bob's session"
        };
        add(
            name,
            format!(
                "message {i} (initial) with its body re-encrypted under Alice's genuine message key \
                 and AAD over the plaintext and zero padding without the 0x80 end marker, {what}"
            ),
            at,
            operation,
            Bob,
            rebody(r, &without_end_marker(r)),
            "DecryptionFailed",
            Some(i),
        );
    }

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
        format!("message 0 cut to its first {OPK_FLAG_AT} bytes (before the one-time prekey flag)"),
        at_m0,
        "respond",
        Bob,
        m0[..OPK_FLAG_AT].to_vec(),
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
        format!(
            "message 0 with its ratchet key (offset {X3DH_END}..{}) replaced by the order-8 point e0eb..",
            X3DH_END + 32
        ),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, X3DH_END, &unhex::<32>(SMALL_ORDER_U[2].1)),
        "InvalidPublicKey",
        None,
    );
    add(
        "initial_low_order_base_key",
        "message 0 with EK_A (offset 34..66) replaced by u = 0".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, EK_A_AT, &[0u8; 32]),
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
        "message 2 with version byte 0x01 (profile v1): a v1 message is not read".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 0, &[0x01]),
        "UnsupportedVersion(1)",
        Some(2),
    );
    add(
        "unsupported_version_future",
        "message 2 with version byte 0x03".into(),
        at_m2,
        "decrypt",
        Alice,
        replace_at(m2, 0, &[0x03]),
        "UnsupportedVersion(3)",
        Some(2),
    );
    add(
        "initial_unsupported_version",
        "message 0 with version byte 0x01 (profile v1), given to Session::respond".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, 0, &[0x01]),
        "UnsupportedVersion(1)",
        Some(0),
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
        format!("message 0 with one-time prekey flag (offset {OPK_FLAG_AT}) 0x02"),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, OPK_FLAG_AT, &[0x02]),
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
        format!(
            "message 0 with the signed prekey id (offset {SPK_ID_AT}..{OPK_FLAG_AT}) changed to \
             {UNKNOWN_ID:#018x} (= {UNKNOWN_ID})"
        ),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, SPK_ID_AT, &UNKNOWN_ID.to_be_bytes()),
        &format!("UnknownSignedPreKey(SignedPreKeyId({UNKNOWN_ID}))"),
        None,
    );
    if let Some(id) = s.one_time_prekey_id {
        add(
            "initial_unknown_one_time_prekey",
            format!(
                "message 0 with the one-time prekey id (offset {OPK_ID_AT}..{X3DH_END}) changed to {}",
                id + 1
            ),
            at_m0,
            "respond",
            Bob,
            replace_at(m0, OPK_ID_AT, &(id + 1).to_be_bytes()),
            &format!("UnknownOneTimePreKey(OneTimePreKeyId({}))", id + 1),
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
            &format!("UnknownOneTimePreKey(OneTimePreKeyId({id}))"),
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

    // A plain-header initial message whose N > max_skip or N = 2^32 - 1 is TooFarAhead
    // before any X3DH work, but after the prekey lookups and the own-identity check.
    let n_at = X3DH_END + 36; // N of a type 0x02 message: 119..123
    add(
        "initial_n_too_far_ahead",
        format!(
            "message 0 with N (offset {n_at}..{}) set to 1001, more than max_skip = 1000, given to \
             Session::respond: rejected before any X3DH work, nothing is created and the one-time \
             prekey is kept",
            n_at + 4
        ),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, n_at, &1001u32.to_be_bytes()),
        "TooFarAhead",
        Some(0),
    );
    add(
        "initial_n_max",
        "message 0 with N set to 2^32 - 1, given to Session::respond".into(),
        at_m0,
        "respond",
        Bob,
        replace_at(m0, n_at, &u32::MAX.to_be_bytes()),
        "TooFarAhead",
        Some(0),
    );
    add(
        "initial_n_too_far_ahead_unknown_signed_prekey",
        format!(
            "message 0 with N set to 1001 and the signed prekey id changed to {UNKNOWN_ID:#018x}: \
             the prekey lookup comes first"
        ),
        at_m0,
        "respond",
        Bob,
        replace_at(
            &replace_at(m0, n_at, &1001u32.to_be_bytes()),
            SPK_ID_AT,
            &UNKNOWN_ID.to_be_bytes(),
        ),
        &format!("UnknownSignedPreKey(SignedPreKeyId({UNKNOWN_ID}))"),
        Some(0),
    );
    add(
        "initial_n_too_far_ahead_from_own_identity",
        "message 0 with N set to 1001 and IK_A replaced by IK_B: WrongSession for the own \
         identity comes first"
            .into(),
        at_m0,
        "respond",
        Bob,
        replace_at(
            &replace_at(m0, n_at, &1001u32.to_be_bytes()),
            IK_A_AT,
            &m.bob.ed25519_public,
        ),
        "WrongSession",
        Some(0),
    );
    add(
        "second_initial_n_too_far_ahead",
        "message 1 with N set to 1002, given to Bob's existing session: a current-chain message \
         1001 keys ahead of Nr = 1, more than max_skip = 1000"
            .into(),
        at_m1,
        "decrypt",
        Bob,
        replace_at(m1, n_at, &1002u32.to_be_bytes()),
        "TooFarAhead",
        Some(1),
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
        replace_at(m0, IK_A_AT, &m.bob.ed25519_public),
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
        replace_at(m1, EK_A_AT, &x25519_public(&[0x42; 32])),
        "WrongSession",
        Some(1),
    );

    // --- bundle signature ----------------------------------------------------------------
    let bundle = &m.bundle;
    add(
        "bundle_signature_r_bit_flipped",
        format!("the base bundle with the first byte of the signature's R (offset {BUNDLE_SIG_AT}) xor 0x01"),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_SIG_AT, 0x01),
        "InvalidSignature",
        None,
    );
    add(
        "bundle_signature_s_bit_flipped",
        format!(
            "the base bundle with the first byte of the signature's S (offset {}) xor 0x01",
            BUNDLE_SIG_AT + 32
        ),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_SIG_AT + 32, 0x01),
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
        replace_at(bundle, BUNDLE_SIG_AT, &without_prefix),
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
        replace_at(bundle, BUNDLE_SIG_AT, &by_alice),
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
        replace_at(bundle, BUNDLE_SIG_AT + 32, &s_plus_l),
        "InvalidSignature",
        None,
    );
    let other_spk = x25519_public(&[0x42; 32]);
    add(
        "bundle_signed_prekey_swapped",
        format!(
            "the base bundle with SPK_B (offset {BUNDLE_SPK_AT}..{BUNDLE_SIG_AT}) replaced by another \
             valid key (the X25519 public key of the secret 0x42^32); the signature no longer matches"
        ),
        0,
        "initiate",
        Alice,
        replace_at(bundle, BUNDLE_SPK_AT, &other_spk),
        "InvalidSignature",
        None,
    );
    add(
        "bundle_low_order_signed_prekey",
        "the base bundle with SPK_B replaced by u = 1 (rejected when parsed)".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, BUNDLE_SPK_AT, &unhex::<32>(SMALL_ORDER_U[1].1)),
        "InvalidPublicKey",
        None,
    );
    add(
        "bundle_v1_version",
        "the base bundle with version byte 0x01 (profile v1)".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 0, &[0x01]),
        "UnsupportedVersion(1)",
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
    let (part1, description, error) = part1_layout_description(s, m);
    add(
        "bundle_v2_part1_layout",
        description,
        0,
        "initiate",
        Alice,
        part1,
        error,
        None,
    );
    cases
}

/// Rejection cases on the out-of-order base `x3dh_ratchet_no_opk_v2.json`: bodies that do
/// not decode (SPEC.md §4.9) or do not authenticate, for messages whose keys are stored as
/// skipped keys; the stored key must survive the failure.
fn skipped_reject_cases(s: &Scenario, m: &Model) -> Vec<RejectCase> {
    let case =
        |name: &str, description: String, i: usize, receiver: Party, input: Vec<u8>| RejectCase {
            name: name.into(),
            description,
            base_vector: s.file,
            after_events: before_receipt(s, receiver, i),
            operation: "decrypt",
            party: receiver.name(),
            input: hex(&input),
            expected_error: "DecryptionFailed".into(),
            then_decrypts: Some(i),
        };
    let (r0, r5) = (m.message(0), m.message(5));
    assert_eq!((r0.sender, r0.padding), (Alice, Pad::None));
    assert_eq!((r5.sender, r5.padding), (Bob, Pad::Padme));
    vec![
        case(
            "skipped_key_body_without_end_marker",
            format!(
                "message 0 (Alice's first initial message, policy none, whose key Bob stored as \
                 skipped when he accepted the session from message 1) with its body re-encrypted \
                 under the genuine message key and AAD over the plaintext and one zero byte in \
                 place of the end marker ({} bytes): the stored key is found, the tag verifies, \
                 decoding fails, and the key is kept",
                r0.encoded.len()
            ),
            0,
            Bob,
            rebody(r0, &without_end_marker(r0)),
        ),
        case(
            "skipped_key_tag_bit_flipped",
            "message 0 with the last tag byte xor 0x01: the stored skipped key is found, the tag \
             does not verify, and the key is kept"
                .into(),
            0,
            Bob,
            xor_at(&r0.bytes, r0.bytes.len() - 1, 0x01),
        ),
        case(
            "old_chain_skipped_key_body_without_end_marker",
            "message 5 (Bob's, whose key Alice stored through PN when she ratcheted to his next \
             chain) with its body re-encrypted under the genuine message key and AAD over the \
             plaintext and zero padding without the end marker: the key is kept"
                .into(),
            5,
            Alice,
            rebody(r5, &without_end_marker(r5)),
        ),
    ]
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
    // Offsets of a type 0x03 message (SPEC.md 5.3; PQ_ID_AT = 83, CT_AT = 91) and a type
    // 0x11 bundle (5.4), profile v2 part 2.
    const HEADER_AT: usize = PQ_END; // 1179
    const BODY_AT: usize = HEADER_AT + 40; // 1219
    const BUNDLE_PQ_ID_AT: usize = BUNDLE_LENGTH; // 179
    const BUNDLE_EK_AT: usize = BUNDLE_PQ_ID_AT + 8; // 187
    const BUNDLE_PQ_SIG_AT: usize = BUNDLE_EK_AT + KEM_PUBLIC_KEY_LENGTH; // 1371

    let pq = ma.pq.as_ref().unwrap();
    let (spk_id, opk_id) = (a.signed_prekey_id, a.one_time_prekey_id.unwrap());
    assert_eq!(pq.kind, PqKind::OneTime);
    let m0 = &ma.message(0).bytes;
    let m1 = &ma.message(1).bytes;
    assert_eq!(m0[1], 0x03);
    assert_eq!(u64_at(m0, PQ_ID_AT), pq.id);
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
        &message_seal(&r0.message_key, &altered_aad, &r0.encoded),
    ]);
    let altered_ss = kem::decapsulate(&pq.seed, &altered_prefix[CT_AT..HEADER_AT]);
    assert_ne!(altered_ss, pq.shared_secret, "implicit rejection");
    assert!(message_open(&r0.message_key, &altered_aad, &resealed[BODY_AT..]).is_some());
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

    // --- the plaintext encoding (SPEC.md 4.9, v2) -------------------------------------------
    cases.push(case(
        a,
        "pq_initial_body_without_end_marker",
        "message 0 with its body re-encrypted under Alice's genuine message key and AAD over the \
         plaintext and zero padding without the 0x80 end marker: the tag verifies, decoding \
         fails; the failed accept changes nothing (no one-time prekey deleted), so the store \
         then accepts the genuine message"
            .into(),
        at_m0,
        "accept",
        Bob,
        rebody(r0, &without_end_marker(r0)),
        "DecryptionFailed",
        Some(0),
    ));

    // --- N bounds before any PQXDH work (v2) --------------------------------------------------
    const N_AT: usize = HEADER_AT + 36; // 1215
    let far = |input: &[u8]| replace_at(input, N_AT, &1001u32.to_be_bytes());
    cases.push(case(
        a,
        "pq_initial_n_too_far_ahead",
        format!(
            "message 0 with N (offset {N_AT}..{BODY_AT}) set to 1001, more than max_skip = 1000: \
             TooFarAhead before any X3DH or KEM work; the store then accepts the genuine message"
        ),
        at_m0,
        "accept",
        Bob,
        far(m0),
        "TooFarAhead",
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_initial_n_too_far_ahead_kem_ciphertext_flipped",
        format!(
            "message 0 with N set to 1001 and the first KEM ciphertext byte (offset {CT_AT}) xor \
             0x01: the bound is checked before decapsulation"
        ),
        at_m0,
        "accept",
        Bob,
        far(&xor_at(m0, CT_AT, 0x01)),
        "TooFarAhead",
        Some(0),
    ));
    cases.push(case(
        a,
        "pq_initial_n_too_far_ahead_unknown_pq_prekey",
        format!(
            "message 0 with N set to 1001 and the post-quantum prekey id changed to {}: the \
             prekey-store checks come first",
            pq.id + 1
        ),
        at_m0,
        "accept",
        Bob,
        far(&replace_at(m0, PQ_ID_AT, &(pq.id + 1).to_be_bytes())),
        &format!("UnknownPqPreKey(PqPreKeyId({}))", pq.id + 1),
        Some(0),
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
        &format!("UnknownPqPreKey(PqPreKeyId({}))", pq.id + 1),
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
        &format!("UnknownPqPreKey(PqPreKeyId({spk_id}))"),
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
        &format!("UnknownOneTimePreKey(OneTimePreKeyId({opk_id}))"),
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
        &format!("UnknownPqPreKey(PqPreKeyId({}))", pq.id),
        None,
    ));

    // --- truncation ------------------------------------------------------------------------
    for (name, len, what, error) in [
        (
            "pq_initial_truncated_in_pq_prekey_id",
            PQ_ID_AT + 4,
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
            INITIAL_PREFIX + 16,
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
            "the 1219-byte prefix and 15 bytes, shorter than a tag",
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
        &bundle[BUNDLE_EK_AT..BUNDLE_PQ_SIG_AT],
        &pq.public[..],
        "bundle layout"
    );
    cases.push(case(
        a,
        "pq_bundle_signature_r_bit_flipped",
        format!(
            "the base bundle with the first byte of the post-quantum prekey signature's R \
             (offset {BUNDLE_PQ_SIG_AT}) xor 0x01"
        ),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_PQ_SIG_AT, 0x01),
        "InvalidSignature",
        None,
    ));
    cases.push(case(
        a,
        "pq_bundle_signature_s_bit_flipped",
        format!(
            "the base bundle with the first byte of the post-quantum prekey signature's S \
             (offset {}) xor 0x01",
            BUNDLE_PQ_SIG_AT + 32
        ),
        0,
        "initiate",
        Alice,
        xor_at(bundle, BUNDLE_PQ_SIG_AT + 32, 0x01),
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
            BUNDLE_PQ_SIG_AT,
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
            BUNDLE_PQ_SIG_AT,
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
        replace_at(bundle, BUNDLE_PQ_SIG_AT, &ma.spk_signature),
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
        "pq_bundle_v1_version",
        "the base bundle with version byte 0x01 (profile v1)".into(),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 0, &[0x01]),
        "UnsupportedVersion(1)",
        None,
    ));
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
        format!(
            "the base bundle with type byte 0x10: a classical bundle followed by {} bytes",
            PQ_BUNDLE_LENGTH - BUNDLE_LENGTH
        ),
        0,
        "initiate",
        Alice,
        replace_at(bundle, 1, &[0x10]),
        "TrailingData",
        None,
    ));
    let (part1, description, error) = part1_layout_description(a, ma);
    cases.push(case(
        a,
        "pq_bundle_v2_part1_layout",
        description,
        0,
        "initiate",
        Alice,
        part1,
        error,
        None,
    ));

    // --- id 0 (profile v2 part 2: 0 is never an id, so a store holds none) ------------------
    // The message parse does not look at a present id's value (SPEC.md 10.1); the store's
    // lookups, in the order signed, one-time, post-quantum, then find nothing.
    for (name, at, what, error) in [
        (
            "pq_initial_signed_prekey_id_zero",
            SPK_ID_AT,
            "the signed prekey id",
            "UnknownSignedPreKey(SignedPreKeyId(0))",
        ),
        (
            "pq_initial_one_time_prekey_id_zero",
            OPK_ID_AT,
            "the one-time prekey id; its flag stays 0x01",
            "UnknownOneTimePreKey(OneTimePreKeyId(0))",
        ),
        (
            "pq_initial_pq_prekey_id_zero",
            PQ_ID_AT,
            "the post-quantum prekey id",
            "UnknownPqPreKey(PqPreKeyId(0))",
        ),
    ] {
        cases.push(case(
            a,
            name,
            format!(
                "message 0 with bytes {at}..{} ({what}) set to 0, given to Bob's store: 0 is \
                 never an id, so the store holds no such key; the parse does not check a present \
                 id's value (SPEC.md 10.1), the lookup fails, and the store then accepts the \
                 genuine message",
                at + 8
            ),
            at_m0,
            "accept",
            Bob,
            replace_at(m0, at, &0u64.to_be_bytes()),
            error,
            Some(0),
        ));
    }

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
        "pq_last_resort_replayed_n_too_far_ahead",
        format!(
            "message {accepted} given to the store again after it accepted it, with N (offset \
             {N_AT}) set to 1001: the replay check comes before the N bound"
        ),
        at_b + 1,
        "accept",
        Bob,
        far(ma_b),
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
        &format!("UnknownPqPreKey(PqPreKeyId({}))", pq_b.id + 1),
        Some(accepted),
    ));
    cases
}

/// Message `r` (header-encrypted) with its sealed header replaced by
/// `HENCRYPT(hk, (dh, pn, n), aad_h)` under the genuine nonce, and its body re-encrypted
/// under the genuine message key with `body_aad` (default: `AD || the new prefix`), so that
/// only the altered part can make it fail.
#[allow(clippy::too_many_arguments)]
fn reseal(
    m: &Model,
    r: &MessageRecord,
    hk: &[u8; 32],
    dh_pub: &[u8; 32],
    pn: u32,
    n: u32,
    aad_h: &[u8],
    body_aad: Option<&[u8]>,
) -> Vec<u8> {
    let genuine = r.header.as_ref().unwrap();
    let framing = &r.prefix[..r.prefix.len() - SEALED_HEADER_LENGTH];
    let header = seal_header(hk, &genuine.nonce, dh_pub, pn, n, aad_h);
    let prefix = cat(&[framing, &header.sealed]);
    let aad = body_aad.map_or_else(|| cat(&[&m.x3dh.ad, &prefix]), <[u8]>::to_vec);
    cat(&[&prefix, &message_seal(&r.message_key, &aad, &r.encoded)])
}

/// Header-encrypted rejection cases: `x` is the X3DH header-encrypted scenario, `pq` the
/// PQXDH one (if this build has PQXDH), `plain` the classical `x3dh_ratchet_v2.json`.
fn he_reject_cases(
    (x, mx): (&Scenario, &Model),
    pq: Option<(&Scenario, &Model)>,
    (plain, mplain): (&Scenario, &Model),
) -> Vec<RejectCase> {
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
        // Every header-encrypted case checks that the receiver still works afterwards.
        assert!(then_decrypts.is_some(), "{name}");
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
    let mut cases = Vec::new();
    let ad = mx.x3dh.ad;
    let msg = |i: usize| mx.message(i);
    let wire = |i: usize| mx.message(i).bytes.clone();
    let hk_of = |i: usize| msg(i).header.as_ref().unwrap().header_key;
    let at = |p: Party, i: usize| before_receipt(x, p, i);
    // Type 0x04 layout (SPEC.md 5.3): version, type, sealed header at 2..70, body at 70.
    const SEALED_AT: usize = 2;
    const BODY_AT: usize = SEALED_AT + SEALED_HEADER_LENGTH; // 70
                                                             // Type 0x05: the sealed header at 83..151 (profile v2 part 2: u64 prekey ids).
    const INITIAL_SEALED_AT: usize = X3DH_END;
    const INITIAL_BODY_AT: usize = INITIAL_SEALED_AT + SEALED_HEADER_LENGTH; // 151

    // Messages of the base conversation (see its description): 0, 1 Alice's initial
    // messages (Bob accepts from 1, then 0 is opened by the stored header key HKA); 2..6
    // Bob's first chain (Alice receives 2, 4, 5, then after two ratchet steps 6 and 3);
    // 7 Alice's second chain; 8 Bob's second chain; 9 Alice's third chain.
    let m0 = wire(0);
    let m1 = wire(1);
    let m2 = wire(2);
    for (i, kind) in [(0, 0x05), (1, 0x05), (2, 0x04), (7, 0x04), (8, 0x04)] {
        assert_eq!(msg(i).bytes[1], kind, "message {i} type");
    }
    assert_eq!(at(Bob, 1), 2);
    assert!(matches!(x.script[2], Respond(1)));
    let at2 = at(Alice, 2);

    // --- the sealed header of a normal message (type 0x04): nonce, ciphertext, tag ------
    for (name, offset, mask, what) in [
        (
            "he_header_nonce_bit_flipped",
            SEALED_AT,
            0x01,
            "the first header nonce byte",
        ),
        (
            "he_header_nonce_last_byte_flipped",
            SEALED_AT + 11,
            0x80,
            "the last header nonce byte",
        ),
        (
            "he_header_ciphertext_bit_flipped",
            SEALED_AT + 12,
            0x01,
            "the first byte of the encrypted header (inside the encrypted ratchet key)",
        ),
        (
            "he_header_ciphertext_counter_bit_flipped",
            SEALED_AT + 12 + 39,
            0x01,
            "the last byte of the encrypted header (inside the encrypted N)",
        ),
        (
            "he_header_tag_bit_flipped",
            SEALED_AT + 52,
            0x01,
            "the first header tag byte",
        ),
        (
            "he_header_tag_last_byte_flipped",
            SEALED_AT + 67,
            0x80,
            "the last header tag byte",
        ),
    ] {
        cases.push(case(
            x,
            name,
            format!(
                "message 2 (type 0x04, Bob's first reply; Alice's NHKr opens it) with {what} (offset \
                 {offset}) xor {mask:#04x}: no header key authenticates the sealed header"
            ),
            at2,
            "decrypt",
            Alice,
            xor_at(&m2, offset, mask),
            "DecryptionFailed",
            Some(2),
        ));
    }
    cases.push(case(
        x,
        "he_body_tag_bit_flipped",
        "message 2 with the last byte of the body's tag xor 0x01: the header opens under NHKr and \
         the DH ratchet step is planned, but the body does not authenticate, so nothing is committed"
            .into(),
        at2,
        "decrypt",
        Alice,
        xor_at(&m2, m2.len() - 1, 0x01),
        "DecryptionFailed",
        Some(2),
    ));
    cases.push(case(
        x,
        "he_unsupported_version",
        "message 2 with version byte 0x01 (profile v1): rejected before any header key is tried"
            .into(),
        at2,
        "decrypt",
        Alice,
        replace_at(&m2, 0, &[0x01]),
        "UnsupportedVersion(1)",
        Some(2),
    ));
    cases.push(case(
        x,
        "he_body_without_end_marker",
        "message 2 with its genuine sealed header and its body re-encrypted under its genuine \
         message key and AAD over the plaintext and zero padding without the 0x80 end marker \
         (SPEC.md 4.9): the header opens under NHKr, the DH ratchet step is planned, the tag \
         verifies, decoding fails, and nothing is committed"
            .into(),
        at2,
        "decrypt",
        Alice,
        rebody(msg(2), &without_end_marker(msg(2))),
        "DecryptionFailed",
        Some(2),
    ));
    cases.push(case(
        x,
        "he_body_ciphertext_bit_flipped",
        format!("message 2 with the first body ciphertext byte (offset {BODY_AT}) xor 0x01"),
        at2,
        "decrypt",
        Alice,
        xor_at(&m2, BODY_AT, 0x01),
        "DecryptionFailed",
        Some(2),
    ));

    // --- associated data of the header and of the body ----------------------------------
    let r2 = msg(2);
    let h2 = r2.header.as_ref().unwrap();
    let (dh2, pn2, n2) = (r2.ratchet_public, r2.pn, r2.n);
    assert_eq!(
        reseal(mx, r2, &h2.header_key, &dh2, pn2, n2, &h2.aad, None),
        m2,
        "reseal reproduces message 2"
    );
    let framing2 = &m2[..SEALED_AT];
    for (name, aad_h, what) in [
        (
            "he_header_aad_without_ad",
            framing2.to_vec(),
            "AAD_h = the framing only (no AD)",
        ),
        (
            "he_header_aad_without_framing",
            ad.to_vec(),
            "AAD_h = AD only (version and type not authenticated)",
        ),
        (
            "he_header_aad_identities_swapped",
            cat(&[&mx.bob.ed25519_public, &mx.alice.ed25519_public, framing2]),
            "AAD_h = IK_B || IK_A || framing (the identities in the wrong order)",
        ),
    ] {
        cases.push(case(
            x,
            name,
            format!(
                "message 2 with its header re-sealed under its genuine header key and nonce but with \
                 {what}, and its body re-encrypted under its genuine message key with AAD = AD || the \
                 new prefix: only the header's associated data is wrong"
            ),
            at2,
            "decrypt",
            Alice,
            reseal(mx, r2, &h2.header_key, &dh2, pn2, n2, &aad_h, None),
            "DecryptionFailed",
            Some(2),
        ));
    }
    cases.push(case(
        x,
        "he_body_aad_without_sealed_header",
        "message 2 with its body re-encrypted under its genuine message key with AAD = AD || \
         version || type, leaving out the sealed header (SPEC.md 4.8: the body's AAD covers every \
         byte before the ciphertext); the header still opens"
            .into(),
        at2,
        "decrypt",
        Alice,
        reseal(
            mx,
            r2,
            &h2.header_key,
            &dh2,
            pn2,
            n2,
            &h2.aad,
            Some(&cat(&[&ad, framing2])),
        ),
        "DecryptionFailed",
        Some(2),
    ));

    // --- what the header says, authenticated under the right key -----------------------
    cases.push(case(
        x,
        "he_header_n_too_far_ahead",
        "message 2 with its header re-sealed under its genuine header key (Alice's NHKr) with N = \
         1001, more than max_skip = 1000 in a new chain; rejected before any key is derived"
            .into(),
        at2,
        "decrypt",
        Alice,
        reseal(mx, r2, &h2.header_key, &dh2, pn2, 1001, &h2.aad, None),
        "TooFarAhead",
        Some(2),
    ));
    for (label, index) in [("u = 0", 0usize), ("order 8 (e0eb..)", 2)] {
        let u: [u8; 32] = unhex(SMALL_ORDER_U[index].1);
        cases.push(case(
            x,
            &format!("he_header_low_order_ratchet_key_{}", hex(&u[..2])),
            format!(
                "message 2 with its header re-sealed under its genuine header key with the ratchet key \
                 replaced by the small-order point {label}: validated once the header is decrypted"
            ),
            at2,
            "decrypt",
            Alice,
            reseal(mx, r2, &h2.header_key, &u, pn2, n2, &h2.aad, None),
            "InvalidPublicKey",
            Some(2),
        ));
    }
    let mut high_bit = dh2;
    high_bit[31] |= 0x80;
    cases.push(case(
        x,
        "he_header_non_canonical_ratchet_key",
        "message 2 with its header re-sealed under its genuine header key with bit 255 of the \
         ratchet key set"
            .into(),
        at2,
        "decrypt",
        Alice,
        reseal(mx, r2, &h2.header_key, &high_bit, pn2, n2, &h2.aad, None),
        "InvalidPublicKey",
        Some(2),
    ));
    let alice_first = mx.ratchet_keys[Alice.index()][0].public;
    cases.push(case(
        x,
        "he_header_own_ratchet_key",
        "message 2 with its header re-sealed under its genuine header key (Alice's NHKr) carrying \
         Alice's own current ratchet key: one of her own messages reflected back"
            .into(),
        at2,
        "decrypt",
        Alice,
        reseal(mx, r2, &h2.header_key, &alice_first, pn2, n2, &h2.aad, None),
        "DecryptionFailed",
        Some(2),
    ));
    cases.push(case(
        x,
        "he_next_header_key_with_current_ratchet_key_spk",
        "message 2 with its header re-sealed under its genuine header key (Alice's NHKr, the next \
         chain) carrying SPK_B, Alice's current DHr: a next-chain header must carry a new ratchet key"
            .into(),
        at2,
        "decrypt",
        Alice,
        reseal(mx, r2, &h2.header_key, &mx.spk.public, pn2, n2, &h2.aad, None),
        "DecryptionFailed",
        Some(2),
    ));
    let at4 = at(Alice, 4);
    let r4 = msg(4);
    let h4 = r4.header.as_ref().unwrap();
    let bob_second = msg(8).ratchet_public;
    assert_ne!(bob_second, r4.ratchet_public);
    cases.push(case(
        x,
        "he_header_key_ratchet_key_mismatch",
        "message 4 (N = 2 of Bob's first chain) with its header re-sealed under its genuine header \
         key, Alice's HKr, but carrying Bob's second ratchet key (a valid key): HKr names the current \
         chain, the ratchet key another (SPEC.md 4.8 step 3)"
            .into(),
        at4,
        "decrypt",
        Alice,
        reseal(
            mx,
            r4,
            &h4.header_key,
            &bob_second,
            r4.pn,
            r4.n,
            &h4.aad,
            None,
        ),
        "DecryptionFailed",
        Some(4),
    ));
    let alice_nhkr = msg(8).header.as_ref().unwrap().header_key;
    cases.push(case(
        x,
        "he_next_header_key_with_current_ratchet_key",
        "message 4 with its genuine header (Bob's current ratchet key, N = 2) re-sealed under \
         Alice's NHKr (the header key of Bob's next chain): NHKr names the next chain, the ratchet \
         key the current one"
            .into(),
        at4,
        "decrypt",
        Alice,
        reseal(
            mx,
            r4,
            &alice_nhkr,
            &r4.ratchet_public,
            r4.pn,
            r4.n,
            &h4.aad,
            None,
        ),
        "DecryptionFailed",
        Some(4),
    ));
    let at5 = at(Alice, 5);
    let r5 = msg(5);
    let h5 = r5.header.as_ref().unwrap();
    assert_eq!(h5.header_key, hk_of(4));
    cases.push(case(
        x,
        "he_stored_header_key_ratchet_key_mismatch",
        "message 5 with its header re-sealed under its genuine header key, which Alice also holds \
         as a stored (header key, ratchet key) pair for message 3's skipped key, but carrying Bob's \
         second ratchet key: the stored pair opens it and names another chain (SPEC.md 4.8 step 1)"
            .into(),
        at5,
        "decrypt",
        Alice,
        reseal(
            mx,
            r5,
            &h5.header_key,
            &bob_second,
            r5.pn,
            r5.n,
            &h5.aad,
            None,
        ),
        "DecryptionFailed",
        Some(5),
    ));
    let at8 = at(Alice, 8);
    let r8 = msg(8);
    let h8 = r8.header.as_ref().unwrap();
    cases.push(case(
        x,
        "he_header_pn_too_far_ahead",
        "message 8 (Bob's second chain) with its header re-sealed under its genuine header key \
         (Alice's NHKr) with PN = 1005: more than max_skip = 1000 keys ahead of Alice's receiving \
         chain (Nr = 4); rejected before any key is derived"
            .into(),
        at8,
        "decrypt",
        Alice,
        reseal(
            mx,
            r8,
            &h8.header_key,
            &r8.ratchet_public,
            1005,
            r8.n,
            &h8.aad,
            None,
        ),
        "TooFarAhead",
        Some(8),
    ));

    // --- initial messages (type 0x05) ---------------------------------------------------
    let at_m1 = at(Bob, 1);
    for (name, offset, mask, what) in [
        (
            "he_initial_header_nonce_bit_flipped",
            INITIAL_SEALED_AT,
            0x01,
            "the first header nonce byte",
        ),
        (
            "he_initial_header_ciphertext_bit_flipped",
            INITIAL_SEALED_AT + 12,
            0x01,
            "the first byte of the encrypted header",
        ),
        (
            "he_initial_header_tag_bit_flipped",
            INITIAL_SEALED_AT + 67,
            0x01,
            "the last header tag byte",
        ),
    ] {
        cases.push(case(
            x,
            name,
            format!(
                "message 1 (type 0x05) given to Session::respond with {what} (offset {offset}) xor \
                 {mask:#04x}: HKA from the agreed SK does not open it. The failed respond changes \
                 nothing: Bob then accepts the genuine message (the one-time prekey is still there)"
            ),
            at_m1,
            "respond",
            Bob,
            xor_at(&m1, offset, mask),
            "DecryptionFailed",
            Some(1),
        ));
    }
    cases.push(case(
        x,
        "he_initial_body_without_end_marker",
        "message 1 given to Session::respond with its body re-encrypted under Alice's genuine \
         message key and AAD over the plaintext and zero padding without the end marker: no \
         session is created and the one-time prekey is kept"
            .into(),
        at_m1,
        "respond",
        Bob,
        rebody(msg(1), &without_end_marker(msg(1))),
        "DecryptionFailed",
        Some(1),
    ));
    cases.push(case(
        x,
        "he_initial_body_tag_bit_flipped",
        "message 1 given to Session::respond with the last body tag byte xor 0x01".into(),
        at_m1,
        "respond",
        Bob,
        xor_at(&m1, m1.len() - 1, 0x01),
        "DecryptionFailed",
        Some(1),
    ));
    let at_m0 = at(Bob, 0);
    cases.push(case(
        x,
        "he_second_initial_signed_prekey_id_changed",
        "message 0 (an initial message of Bob's existing session, whose key Bob stored under the \
         header key HKA) with the signed prekey id (offset 66..74) changed to 0xdeadbeef0badf00d: the \
         session does not look the id up, but AAD_h covers it"
            .into(),
        at_m0,
        "decrypt",
        Bob,
        replace_at(&m0, SPK_ID_AT, &UNKNOWN_ID.to_be_bytes()),
        "DecryptionFailed",
        Some(0),
    ));
    cases.push(case(
        x,
        "he_second_initial_header_ciphertext_bit_flipped",
        format!(
            "message 0 with the first encrypted header byte (offset {}) xor 0x01, given to Bob's \
             session: the stored header key does not open it, and the stored message key survives",
            INITIAL_SEALED_AT + 12
        ),
        at_m0,
        "decrypt",
        Bob,
        xor_at(&m0, INITIAL_SEALED_AT + 12, 0x01),
        "DecryptionFailed",
        Some(0),
    ));
    cases.push(case(
        x,
        "he_second_initial_body_tag_bit_flipped",
        "message 0 with the last body tag byte xor 0x01, given to Bob's session: the stored header \
         key opens the header and the stored message key is found, but the body does not \
         authenticate; the key is not deleted"
            .into(),
        at_m0,
        "decrypt",
        Bob,
        xor_at(&m0, m0.len() - 1, 0x01),
        "DecryptionFailed",
        Some(0),
    ));

    // --- skipped keys under stored header keys ------------------------------------------
    for (i, what) in [
        (6, "N = 4 of Bob's first chain, whose key was stored through PN after Alice's ratchet step"),
        (3, "N = 1 of Bob's first chain, whose key was stored when N = 2 arrived"),
    ] {
        let w = wire(i);
        cases.push(case(
            x,
            &format!("he_skipped_key_{i}_header_tag_bit_flipped"),
            format!(
                "message {i} ({what}) with the first header tag byte (offset {}) xor 0x01",
                SEALED_AT + 52
            ),
            at(Alice, i),
            "decrypt",
            Alice,
            xor_at(&w, SEALED_AT + 52, 0x01),
            "DecryptionFailed",
            Some(i),
        ));
        cases.push(case(
            x,
            &format!("he_skipped_key_{i}_body_without_end_marker"),
            format!(
                "message {i} ({what}) with its body re-encrypted under its genuine message key and \
                 AAD over the plaintext and zero padding without the end marker: the stored header \
                 key opens the header, the stored message key is found and the tag verifies, \
                 decoding fails, and the key is kept"
            ),
            at(Alice, i),
            "decrypt",
            Alice,
            rebody(msg(i), &without_end_marker(msg(i))),
            "DecryptionFailed",
            Some(i),
        ));
        cases.push(case(
            x,
            &format!("he_skipped_key_{i}_body_tag_bit_flipped"),
            format!(
                "message {i} ({what}) with the last body tag byte xor 0x01: the stored header key \
                 opens the header and the stored message key is found, but it is not deleted"
            ),
            at(Alice, i),
            "decrypt",
            Alice,
            xor_at(&w, w.len() - 1, 0x01),
            "DecryptionFailed",
            Some(i),
        ));
    }

    // --- the mode is the session's: header-encrypted vs plain -----------------------------
    let plain_m1 = &mplain.message(1).bytes;
    let plain_m2 = &mplain.message(2).bytes;
    assert_eq!((plain_m1[1], plain_m2[1]), (0x02, 0x01));
    cases.push(case(
        plain,
        "he_message_to_plain_session",
        format!(
            "message 2 of {} (type 0x04, header-encrypted) given to Alice's plain session of this \
             base vector, before it receives its own message 2",
            x.file
        ),
        before_receipt(plain, Alice, 2),
        "decrypt",
        Alice,
        m2.clone(),
        "WrongSession",
        Some(2),
    ));
    cases.push(case(
        x,
        "plain_message_to_he_session",
        format!(
            "message 2 of {} (type 0x01, plain header) given to Alice's header-encrypted session",
            plain.file
        ),
        at2,
        "decrypt",
        Alice,
        plain_m2.clone(),
        "WrongSession",
        Some(2),
    ));
    let relabelled_he = cat(&[
        &[WIRE_VERSION, 0x05],
        &plain_m1[2..X3DH_END],
        &m1[INITIAL_SEALED_AT..INITIAL_BODY_AT],
        &plain_m1[INITIAL_PREFIX..],
    ]);
    cases.push(case(
        plain,
        "he_initial_to_plain_session",
        format!(
            "message 1 of this base vector (an initial message of Bob's plain session: same IK_A and \
             EK_A) with type 0x05 and its 40-byte header replaced by a 68-byte sealed header (that of \
             message 1 of {}): a header-encrypted initial message given to Bob's plain session",
            x.file
        ),
        before_receipt(plain, Bob, 1),
        "decrypt",
        Bob,
        relabelled_he,
        "WrongSession",
        Some(1),
    ));
    let r0 = msg(0);
    let relabelled_plain = cat(&[
        &[WIRE_VERSION, 0x02],
        &m0[2..INITIAL_SEALED_AT],
        &r0.ratchet_public,
        &r0.pn.to_be_bytes(),
        &r0.n.to_be_bytes(),
        &m0[INITIAL_BODY_AT..],
    ]);
    cases.push(case(
        x,
        "plain_initial_to_he_session",
        "message 0 (an initial message of Bob's header-encrypted session) with type 0x02 and its \
         sealed header replaced by the same header in the clear (Alice's ratchet key, PN, N): a \
         plain initial message with the session's IK_A and EK_A given to Bob's header-encrypted \
         session"
            .into(),
        at_m0,
        "decrypt",
        Bob,
        relabelled_plain,
        "WrongSession",
        Some(0),
    ));

    // --- replays --------------------------------------------------------------------------
    let after_encrypt = |p: Party, i: usize| {
        x.script
            .iter()
            .position(|op| matches!(op, Encrypt(q, j) if *q == p && *j == i))
            .unwrap()
            + 1
    };
    cases.push(case(
        x,
        "he_replayed_current_chain_message",
        "message 1 given to Bob's session again, after Bob decrypted message 0 (so no header key is \
         stored) and Alice sent message 7: HKr opens it, the current chain, N = 1 < Nr = 2"
            .into(),
        after_encrypt(Alice, 7),
        "decrypt",
        Bob,
        m1.clone(),
        "DuplicateOrExpired",
        Some(7),
    ));
    cases.push(case(
        x,
        "he_replayed_current_chain_message_via_stored_header_key",
        "message 4 given to Alice again after message 5: the stored (header key, ratchet key) pair \
         of message 3's skipped key opens it first; its key is not stored and its ratchet key is \
         DHr, so it is in the current chain, N = 2 < Nr = 4"
            .into(),
        at5 + 1,
        "decrypt",
        Alice,
        wire(4),
        "DuplicateOrExpired",
        Some(3),
    ));
    cases.push(case(
        x,
        "he_replayed_old_chain_message",
        "message 4 given to Alice again after she ratcheted to Bob's second chain: the stored pair \
         of Bob's first chain (keys of messages 3 and 6 stored) opens it; its key is not stored and \
         its chain is no longer current"
            .into(),
        at8 + 1,
        "decrypt",
        Alice,
        wire(4),
        "DuplicateOrExpired",
        Some(6),
    ));
    cases.push(case(
        x,
        "he_replayed_skipped_message",
        "message 6 given to Alice again after it was decrypted with its stored key, which was then \
         deleted (message 3's key keeps the stored header key)"
            .into(),
        at(Alice, 6) + 1,
        "decrypt",
        Alice,
        wire(6),
        "DuplicateOrExpired",
        Some(3),
    ));
    cases.push(case(
        x,
        "he_replayed_after_header_keys_forgotten",
        "message 0 given to Bob's session again after it ratcheted to Alice's second chain: HKA is \
         neither HKr, NHKr nor a stored header key any more, so nothing opens the header"
            .into(),
        after_encrypt(Alice, 9),
        "decrypt",
        Bob,
        m0.clone(),
        "DecryptionFailed",
        Some(9),
    ));
    cases.push(case(
        x,
        "he_reflected_own_message",
        "message 7 (Alice's own, sealed under her HKs) given back to Alice: none of her receiving \
         header keys opens it"
            .into(),
        after_encrypt(Alice, 7),
        "decrypt",
        Alice,
        wire(7),
        "DecryptionFailed",
        Some(6),
    ));

    // --- truncation -----------------------------------------------------------------------
    for (name, len, what, error) in [
        (
            "he_truncated_in_sealed_header",
            SEALED_AT + 40,
            "inside the sealed header",
            "Truncated",
        ),
        (
            "he_truncated_after_sealed_header",
            BODY_AT,
            "the 70-byte prefix and no body",
            "Truncated",
        ),
        (
            "he_truncated_below_tag_length",
            BODY_AT + 15,
            "the 70-byte prefix and 15 bytes, shorter than a tag",
            "Truncated",
        ),
        (
            "he_truncated_at_plain_minimum",
            58,
            "the minimum length of a type 0x01 message, inside the sealed header",
            "Truncated",
        ),
        (
            "he_truncated_last_byte",
            m2.len() - 1,
            "without its last byte (the body still has 16 bytes, so it parses; the header opens, \
             the tag does not verify)",
            "DecryptionFailed",
        ),
    ] {
        cases.push(case(
            x,
            name,
            format!("message 2 cut to its first {len} bytes ({what})"),
            at2,
            "decrypt",
            Alice,
            m2[..len].to_vec(),
            error,
            Some(2),
        ));
    }
    cases.push(case(
        x,
        "he_trailing_byte",
        "message 2 with one extra byte 0x00 appended (part of the body: the tag does not verify)"
            .into(),
        at2,
        "decrypt",
        Alice,
        cat(&[&m2, &[0x00]]),
        "DecryptionFailed",
        Some(2),
    ));
    for (name, len, what) in [
        (
            "he_initial_truncated_in_sealed_header",
            INITIAL_SEALED_AT + 40,
            "inside the sealed header",
        ),
        (
            "he_initial_truncated_below_tag_length",
            INITIAL_BODY_AT + 15,
            "the 151-byte prefix and 15 bytes",
        ),
    ] {
        cases.push(case(
            x,
            name,
            format!("message 1 cut to its first {len} bytes ({what}), given to Session::respond"),
            at_m1,
            "respond",
            Bob,
            m1[..len].to_vec(),
            "Truncated",
            Some(1),
        ));
    }

    // --- PQXDH, type 0x06 ---------------------------------------------------------------------
    if let Some((p, mp)) = pq {
        const PQ_SEALED_AT: usize = PQ_END; // 1179
        const PQ_BODY_AT: usize = PQ_SEALED_AT + SEALED_HEADER_LENGTH; // 1247
        let q0 = mp.message(0).bytes.clone();
        let q1 = mp.message(1).bytes.clone();
        assert_eq!((q0[1], q1[1]), (0x06, 0x06));
        let at_q0 = before_receipt(p, Bob, 0);
        assert!(matches!(p.script[at_q0], Accept(0)));
        for (name, input, what, error) in [
            (
                "pq_he_kem_ciphertext_bit_flipped",
                xor_at(&q0, CT_AT, 0x01),
                "the first KEM ciphertext byte (offset 91) xor 0x01: another SS, so another SK and \
                 another HKA, and AAD_h differs"
                    .to_owned(),
                "DecryptionFailed",
            ),
            (
                "pq_he_initial_header_nonce_bit_flipped",
                xor_at(&q0, PQ_SEALED_AT, 0x01),
                format!("the first header nonce byte (offset {PQ_SEALED_AT}) xor 0x01"),
                "DecryptionFailed",
            ),
            (
                "pq_he_initial_header_tag_bit_flipped",
                xor_at(&q0, PQ_BODY_AT - 1, 0x01),
                format!("the last header tag byte (offset {}) xor 0x01", PQ_BODY_AT - 1),
                "DecryptionFailed",
            ),
            (
                "pq_he_initial_body_tag_bit_flipped",
                xor_at(&q0, q0.len() - 1, 0x01),
                "the last body tag byte xor 0x01".to_owned(),
                "DecryptionFailed",
            ),
            (
                "pq_he_initial_truncated_in_sealed_header",
                q0[..PQ_SEALED_AT + 34].to_vec(),
                format!("cut to its first {} bytes (inside the sealed header)", PQ_SEALED_AT + 34),
                "Truncated",
            ),
            (
                "pq_he_initial_truncated_below_tag_length",
                q0[..PQ_BODY_AT + 15].to_vec(),
                format!(
                    "cut to its first {} bytes (the 1247-byte prefix and 15 bytes)",
                    PQ_BODY_AT + 15
                ),
                "Truncated",
            ),
        ] {
            cases.push(case(
                p,
                name,
                format!(
                    "message 0 (type 0x06) given to Bob's prekey store (LocalDevice::accept) with \
                     {what}. The failed accept changes nothing: the store then accepts the genuine \
                     message"
                ),
                at_q0,
                "accept",
                Bob,
                input,
                error,
                Some(0),
            ));
        }
        cases.push(case(
            p,
            "pq_he_initial_body_without_end_marker",
            "message 0 (type 0x06) given to Bob's prekey store with its body re-encrypted under \
             Alice's genuine message key and AAD over the plaintext and zero padding without the \
             end marker: the failed accept changes nothing, so the store then accepts the genuine \
             message"
                .into(),
            at_q0,
            "accept",
            Bob,
            rebody(mp.message(0), &without_end_marker(mp.message(0))),
            "DecryptionFailed",
            Some(0),
        ));
        cases.push(case(
            p,
            "pq_he_second_initial_kem_ciphertext_bit_flipped",
            "message 1 (type 0x06, an initial message of Bob's existing session) with the first KEM \
             ciphertext byte (offset 91) xor 0x01: the session does not decapsulate again, but AAD_h \
             covers the ciphertext"
                .into(),
            before_receipt(p, Bob, 1),
            "decrypt",
            Bob,
            xor_at(&q1, CT_AT, 0x01),
            "DecryptionFailed",
            Some(1),
        ));
        let after_q4 = p
            .script
            .iter()
            .position(|op| matches!(op, Encrypt(Alice, 4)))
            .unwrap()
            + 1;
        cases.push(case(
            p,
            "pq_he_replayed_current_chain_message",
            "message 1 given to Bob's session again (after Alice sent message 4): HKr opens it, \
             the current chain, N = 1 < Nr = 2"
                .into(),
            after_q4,
            "decrypt",
            Bob,
            q1.clone(),
            "DuplicateOrExpired",
            Some(4),
        ));
        let q2 = mp.message(2).bytes.clone();
        let at_q2 = before_receipt(p, Alice, 2);
        cases.push(case(
            p,
            "pq_he_skipped_key_header_tag_bit_flipped",
            "message 2 (N = 0 of Bob's first chain, its key stored under the header key NHKB and \
             delivered after Alice's ratchet steps) with the first header tag byte (offset 54) xor 0x01"
                .into(),
            at_q2,
            "decrypt",
            Alice,
            xor_at(&q2, 54, 0x01),
            "DecryptionFailed",
            Some(2),
        ));
        cases.push(case(
            p,
            "pq_he_skipped_key_body_tag_bit_flipped",
            "message 2 with the last body tag byte xor 0x01: the stored header key and message key \
             are found, the body does not authenticate, and the key is kept"
                .into(),
            at_q2,
            "decrypt",
            Alice,
            xor_at(&q2, q2.len() - 1, 0x01),
            "DecryptionFailed",
            Some(2),
        ));
    }
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
                .and_then(|b| Session::initiate(&alice, &b, &SessionOptions::new(), &mut rng))
                .map(|_| ())
        }
        "respond" => {
            let r = world.respond(input).map(|_| ());
            if let Some(i) = case.then_decrypts {
                // The failed respond changed nothing: Bob accepts the genuine message.
                let genuine = world.wire[i].clone().unwrap();
                let spk = &world.spk;
                let opk = world.opk.as_ref();
                let accepted = Session::respond(
                    &world.bob_identity,
                    |id| (id == spk.id()).then_some(spk),
                    |id| opk.filter(|k| k.id() == id),
                    &genuine,
                    &SessionOptions::new(),
                )
                .unwrap();
                assert_eq!(
                    accepted.plaintext,
                    s.messages[i].1.as_bytes(),
                    "{}: Bob no longer accepts the genuine message",
                    case.name
                );
            }
            r
        }
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
// The plaintext encoding (SPEC.md §4.9, v2)
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct PaddingConstants {
    end_marker: String,
    padme_minimum: usize,
    max_message_size: usize,
    /// The prefix of a header-encrypted PQXDH initial message (type `0x06`).
    longest_prefix: usize,
    tag_length: usize,
    /// `max_message_size - longest_prefix - tag_length`.
    max_encoded_plaintext: usize,
    /// `max_encoded_plaintext - 1`.
    max_plaintext_size: usize,
}

#[derive(Serialize)]
struct PaddingLengthJson {
    plaintext_length: usize,
    /// `L = plaintext_length + 1`.
    l: usize,
    /// Padmé's input `max(L, 64)`, its `E`, `S`, `z`, and `padme(max(L, 64))` before the cap.
    padme_input: usize,
    e: u32,
    s: u32,
    z: u32,
    padme: usize,
    /// `min(padme, max_encoded_plaintext)`.
    encoded_length_padme: usize,
    /// `L`.
    encoded_length_none: usize,
}

/// A plaintext one byte above `MAX_PLAINTEXT_SIZE`: `TooLarge`, and the failed encrypt
/// changes nothing and draws nothing, so the party's next message is byte for byte the
/// base's genuine message `then_encrypts`.
#[derive(Serialize)]
struct TooLargeJson {
    base_vector: &'static str,
    after_events: usize,
    party: &'static str,
    description: &'static str,
    plaintext_length: usize,
    /// The policy set with `Session::set_padding` for the failed call (then set back).
    policy: &'static str,
    expected_error: &'static str,
    then_encrypts: usize,
}

/// A stored session (SPEC.md §7.1, v2) and its padding byte.
#[derive(Serialize)]
struct StoredPaddingJson {
    base_vector: &'static str,
    /// After setup (0) or after that many events.
    after_events: usize,
    party: &'static str,
    description: &'static str,
    stored_type: String,
    policy: &'static str,
    /// The offset of the padding byte: right after `max_stored_skipped`.
    padding_offset: usize,
    length: usize,
    session: String,
    /// The session with one byte changed, and the error `Session::from_bytes` gives.
    rejected: Vec<StoredRejectJson>,
}

#[derive(Serialize)]
struct StoredRejectJson {
    name: &'static str,
    offset: usize,
    byte: String,
    expected_error: &'static str,
}

#[derive(Serialize)]
struct EncodeExampleJson {
    policy: &'static str,
    plaintext: String,
    encoded: String,
}

#[derive(Serialize)]
struct DecodeExampleJson {
    name: &'static str,
    description: &'static str,
    encoded: String,
    /// The decoded plaintext, or `null` if `encoded` does not decode.
    plaintext: Option<String>,
    /// `DecryptionFailed` if it does not decode, else `null`.
    expected_error: Option<&'static str>,
}

/// The library checks of the lengths, encode and too-large sections: Alice's first
/// messages (type `0x02`, 123-byte prefix) of the base vector.
#[derive(Serialize)]
struct EncodeBaseJson {
    base_vector: &'static str,
    description: &'static str,
    /// The byte every plaintext of the lengths section repeats.
    plaintext_byte: String,
}

/// Where the decode examples are checked through the library.
#[derive(Serialize)]
struct DecodeBaseJson {
    base_vector: &'static str,
    message: usize,
    after_events: usize,
    party: &'static str,
    description: &'static str,
}

/// The longest plaintext in the longest framing.
#[derive(Serialize)]
struct LongestMessageJson {
    base_vector: &'static str,
    description: &'static str,
    plaintext_byte: String,
    plaintext_length: usize,
    policy: &'static str,
    encoded_length: usize,
    message_length: usize,
    message_sha256: String,
}

#[derive(Serialize)]
struct PaddingFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: PaddingConstants,
    encode_base: EncodeBaseJson,
    lengths: Vec<PaddingLengthJson>,
    too_large: Vec<TooLargeJson>,
    encode_examples: Vec<EncodeExampleJson>,
    decode_base: DecodeBaseJson,
    decode_examples: Vec<DecodeExampleJson>,
    longest_message: LongestMessageJson,
    stored_sessions: Vec<StoredPaddingJson>,
}

/// The plaintext lengths of the lengths section: both sides of the 64-byte minimum, of
/// Padmé's first buckets and of its cap.
const PADDING_LENGTHS: &[usize] = &[
    0,
    1,
    2,
    61,
    62,
    63,
    64,
    65,
    71,
    72,
    100,
    127,
    128,
    1000,
    1023,
    1024,
    65_535,
    1_032_191,
    1_032_192,
    MAX_PLAINTEXT_SIZE - 1,
    MAX_PLAINTEXT_SIZE,
];

/// The byte the plaintexts of the lengths and longest-message checks repeat.
const PLAINTEXT_BYTE: u8 = 0x61;

/// The model's and the library's next message of Alice's session with `policy`: they must
/// agree byte for byte. Returns the message.
fn encrypt_both(
    model: &mut Model,
    world: &mut World,
    pt: &[u8],
    policy: Pad,
    what: &str,
) -> Vec<u8> {
    model.ratchets[Alice.index()].as_mut().unwrap().padding = policy;
    world.alice.set_padding(policy.library());
    assert_eq!(world.alice.padding(), policy.library());
    model.encrypt(Alice, 0, pt);
    let library = world.alice.encrypt(pt, &mut world.alice_rng).unwrap();
    let independent = &model.message(0).bytes;
    if independent != &library {
        assert_same(what, independent, &library);
    }
    library
}

/// The scenario and model of a file.
fn by_file<'a>(models: &'a [(&'a Scenario, Model)], file: &str) -> (&'a Scenario, &'a Model) {
    models
        .iter()
        .find(|(s, _)| s.file == file)
        .map(|(s, m)| (*s, m))
        .unwrap()
}

/// The too-large cases: Alice awaiting her reply, with either policy; Bob with a pending DH
/// ratchet step (his next encrypt draws a ratchet key); in header-encrypted mode (a header
/// nonce draw, and with a pending step both draws); and the longest framing.
fn too_large_cases(models: &[(&Scenario, Model)]) -> Vec<TooLargeJson> {
    let case = |file: &'static str,
                after_events: usize,
                party: Party,
                policy: Pad,
                then_encrypts: usize,
                description: &'static str| {
        let (s, _) = by_file(models, file);
        assert_eq!(s.messages[then_encrypts].0, party);
        assert!(
            matches!(s.script[after_events], Encrypt(p, i) if p == party && i == then_encrypts)
        );
        TooLargeJson {
            base_vector: s.file,
            after_events,
            party: party.name(),
            description,
            plaintext_length: MAX_PLAINTEXT_SIZE + 1,
            policy: policy.name(),
            expected_error: "TooLarge",
            then_encrypts,
        }
    };
    vec![
        case(
            "x3dh_ratchet_v2.json",
            0,
            Alice,
            Pad::Padme,
            0,
            "Alice after setup (awaiting her reply), policy padme",
        ),
        case(
            "x3dh_ratchet_v2.json",
            0,
            Alice,
            Pad::None,
            0,
            "Alice after setup, policy none (set with Session::set_padding, then set back)",
        ),
        case(
            "x3dh_ratchet_v2.json",
            4,
            Bob,
            Pad::Padme,
            2,
            "Bob after accepting the session, with his DH ratchet step pending: the failed \
             encrypt draws no ratchet key",
        ),
        case(
            "x3dh_he_v2.json",
            0,
            Alice,
            Pad::Padme,
            0,
            "header-encrypted Alice after setup: the failed encrypt draws no header nonce",
        ),
        case(
            "x3dh_he_v2.json",
            4,
            Bob,
            Pad::None,
            2,
            "header-encrypted Bob with his DH ratchet step pending, policy none: neither a \
             ratchet key nor a header nonce is drawn",
        ),
        case(
            "pqxdh_he_v2.json",
            0,
            Alice,
            Pad::Padme,
            0,
            "header-encrypted PQXDH Alice after setup (the longest framing, 1247 bytes)",
        ),
    ]
}

/// Stored sessions (SPEC.md §7.1, v2) with either padding byte, in each layout: the model's
/// snapshot equals the library's `Session::to_bytes`, loads with its policy, and a padding
/// byte other than 0x00 / 0x01 or the v1 version byte is rejected.
fn stored_sessions(models: &[(&Scenario, Model)]) -> Vec<StoredPaddingJson> {
    [
        (
            "x3dh_ratchet_no_opk_v2.json",
            0,
            Alice,
            "Alice after setup: policy none (type 0x20, awaiting her reply, no skipped keys)",
        ),
        (
            "x3dh_ratchet_no_opk_v2.json",
            3,
            Bob,
            "Bob after accepting the session from message 1 (3 events), holding message 0's \
             skipped key (type 0x20, the default policy padme)",
        ),
        (
            "pqxdh_ratchet_v2.json",
            0,
            Alice,
            "PQXDH Alice after setup (type 0x25, awaiting her reply: the post-quantum prekey id \
             and KEM ciphertext precede the limits)",
        ),
        (
            "x3dh_he_v2.json",
            0,
            Alice,
            "header-encrypted Alice after setup (type 0x28: the flags byte moves every later \
             offset by one)",
        ),
    ]
    .into_iter()
    .map(|(file, after_events, party, description)| {
        let (s, m) = by_file(models, file);
        let (p, bytes) = &m.snapshots[after_events];
        assert_eq!(*p, party);
        let policy = if party == Alice {
            s.alice_padding
        } else {
            Pad::Padme
        };
        let stored_type = bytes[1];
        let state = bytes[2];
        let awaiting = state & 0x02 != 0;
        let awaiting_pq = stored_type == 0x25 && awaiting;
        assert_eq!(awaiting, party == Alice && after_events == 0);
        // The pending fields: signed prekey id, one-time prekey id if flagged, PQXDH's id
        // and KEM ciphertext.
        let pending = if awaiting {
            8 + if state & 0x04 != 0 { 8 } else { 0 }
                + if awaiting_pq {
                    8 + KEM_CIPHERTEXT_LENGTH
                } else {
                    0
                }
        } else {
            0
        };
        // version, type, state flags (+ the flags byte of 0x28), remote identity key,
        // EK_A, the pending fields, the limits (8).
        let padding_offset = 3 + usize::from(stored_type == 0x28) + 64 + pending + 8;
        assert_eq!(bytes[padding_offset], policy.byte());
        // The lengths of SPEC.md v2 §7.1: 188 + 32 per chain key + the pending fields + 68
        // per skipped key, and 135 more with header encryption (no header-key pairs here).
        let chains = usize::from(state & 0x08 != 0) + usize::from(state & 0x10 != 0);
        let fixed = 188 + 32 * chains + pending;
        let length = bytes.len();
        match stored_type {
            0x20 | 0x25 => assert!(length >= fixed && (length - fixed) % 68 == 0),
            0x28 => assert_eq!(length, fixed + 135),
            other => panic!("stored session {other:?}"),
        }
        // The library's stored session is the model's, and loads with its policy.
        let mut world = World::replay(s, after_events);
        assert_same(
            &format!("{file}: stored session"),
            bytes,
            &world.session(party).to_bytes(),
        );
        let local = world.session(party).local_identity().to_owned();
        let loaded = Session::from_bytes(bytes, &local).unwrap();
        assert_eq!(loaded.padding(), policy.library());
        assert_eq!(&loaded.to_bytes()[..], &bytes[..]);
        let rejected = [
            ("padding_byte_2", padding_offset, 0x02, "InvalidEncoding"),
            ("padding_byte_ff", padding_offset, 0xFF, "InvalidEncoding"),
            ("version_v1", 0, 0x01, "UnsupportedVersion(1)"),
        ]
        .into_iter()
        .map(|(name, offset, byte, expected_error)| {
            let input = replace_at(bytes, offset, &[byte]);
            let got = Session::from_bytes(&input, &local).map(|_| ());
            assert_eq!(
                got.map_err(|e| format!("{e:?}")),
                Err(expected_error.to_owned()),
                "{file}: stored session {name}"
            );
            StoredRejectJson {
                name,
                offset,
                byte: hex(&[byte]),
                expected_error,
            }
        })
        .collect();
        StoredPaddingJson {
            base_vector: s.file,
            after_events,
            party: party.name(),
            description,
            stored_type: hex(&[stored_type]),
            policy: policy.name(),
            padding_offset,
            length: bytes.len(),
            session: hex(bytes),
            rejected,
        }
    })
    .collect()
}

fn padding_file(models: &[(&Scenario, Model)]) -> PaddingFile {
    let (plain, mplain) = by_file(models, "x3dh_ratchet_v2.json");
    let (longest, mlongest) = by_file(models, "pqxdh_he_v2.json");

    // --- plaintext length -> encoded length, checked through Alice's session ----------
    let mut model = Model::new(plain);
    let mut world = World::setup(plain);
    let prefix_length = mplain.message(0).prefix.len();
    assert_eq!(prefix_length, INITIAL_PREFIX, "type 0x02 framing");
    let lengths = PADDING_LENGTHS
        .iter()
        .map(|&len| {
            let l = len + 1;
            let input = l.max(PADME_MINIMUM);
            let (e, s, z, padme) = padme_steps(input);
            let row = PaddingLengthJson {
                plaintext_length: len,
                l,
                padme_input: input,
                e,
                s,
                z,
                padme,
                encoded_length_padme: padme.min(MAX_ENCODED_PLAINTEXT),
                encoded_length_none: l,
            };
            let pt = vec![PLAINTEXT_BYTE; len];
            for (policy, expected) in [
                (Pad::Padme, row.encoded_length_padme),
                (Pad::None, row.encoded_length_none),
            ] {
                assert_eq!(encoded_length(len, policy), expected);
                let wire = encrypt_both(
                    &mut model,
                    &mut world,
                    &pt,
                    policy,
                    &format!("padding: {len}-byte plaintext, policy {}", policy.name()),
                );
                assert_eq!(wire.len(), prefix_length + expected + TAG_LENGTH);
            }
            row
        })
        .collect();

    // --- too large: TooLarge, and the failed encrypt changes nothing --------------------
    let too_large = too_large_cases(models)
        .into_iter()
        .inspect(|case| {
            let (s, m) = by_file(models, case.base_vector);
            let party = if case.party == "alice" { Alice } else { Bob };
            let mut world = World::replay(s, case.after_events);
            let session = world.session(party);
            let own = session.padding();
            session.set_padding(if case.policy == "none" {
                Padding::None
            } else {
                Padding::Padme
            });
            let (session, rng) = match party {
                Alice => (&mut world.alice, &mut world.alice_rng),
                Bob => (world.bob.as_mut().unwrap(), &mut world.bob_rng),
            };
            let got = session.encrypt(&vec![PLAINTEXT_BYTE; case.plaintext_length], rng);
            assert_eq!(
                got.map(|_| ()).map_err(|e| format!("{e:?}")),
                Err(case.expected_error.to_owned()),
                "{}",
                case.description
            );
            session.set_padding(own);
            let i = case.then_encrypts;
            assert_eq!(s.messages[i].0, party);
            let next = session.encrypt(s.messages[i].1.as_bytes(), rng).unwrap();
            assert_same(
                &format!("the message after TooLarge: {}", case.description),
                &m.message(i).bytes,
                &next,
            );
        })
        .collect();

    // --- encode examples: the encoded bytes, read back with the message key --------------
    let examples: [(Pad, &[u8]); 8] = [
        (Pad::None, b""),
        (Pad::Padme, b""),
        (Pad::None, b"hello"),
        (Pad::Padme, b"hello"),
        (Pad::Padme, b"ends in zero\x00"),
        (Pad::Padme, b"ends in 0x80 \xc2\x80"),
        (Pad::Padme, &[0x61; 63]),
        (Pad::Padme, &[0x61; 64]),
    ];
    let encode_examples = examples
        .iter()
        .map(|&(policy, pt)| {
            // A fresh session each time: its first message has message 0's key and AAD.
            let mut model = Model::new(plain);
            let mut world = World::setup(plain);
            let wire = encrypt_both(
                &mut model,
                &mut world,
                pt,
                policy,
                "padding: encode example",
            );
            let r0 = mplain.message(0);
            assert_eq!(model.message(0).message_key, r0.message_key);
            let encoded = message_open(&r0.message_key, &r0.aad, &wire[prefix_length..]).unwrap();
            assert_eq!(encoded, encode(pt, policy));
            assert_eq!(decode(&encoded).as_deref(), Some(pt));
            EncodeExampleJson {
                policy: policy.name(),
                plaintext: hex(pt),
                encoded: hex(&encoded),
            }
        })
        .collect();

    // --- decode examples, through message 2 of the base, re-encrypted ------------------
    let r2 = mplain.message(2);
    let at = before_receipt(plain, Alice, 2);
    let hello = b"hello";
    let zeros = |n: usize| vec![0u8; n];
    let decode_cases: Vec<(&'static str, &'static str, Vec<u8>)> = vec![
        (
            "marker_only",
            "policy none's encoding of the empty plaintext",
            vec![END_MARKER],
        ),
        (
            "padme_empty",
            "Padme's encoding of the empty plaintext: the marker and 63 zero bytes",
            cat(&[&[END_MARKER], &zeros(63)]),
        ),
        (
            "unpadded",
            "policy none's encoding of \"hello\"",
            cat(&[hello, &[END_MARKER]]),
        ),
        (
            "off_bucket_padding",
            "\"hello\", the marker and 3 zero bytes: any amount of zero padding decodes, not only \
             Padme's lengths",
            cat(&[hello, &[END_MARKER], &zeros(3)]),
        ),
        (
            "plaintext_ends_in_zeros",
            "\"hello\" and two zero bytes, then the marker and zero padding: only the zeros after \
             the marker are stripped",
            cat(&[hello, &zeros(2), &[END_MARKER], &zeros(56)]),
        ),
        (
            "plaintext_ends_in_marker_byte",
            "\"hello\" and 0x80, then the marker and zero padding: only the last 0x80 is dropped",
            cat(&[hello, &[END_MARKER, END_MARKER], &zeros(57)]),
        ),
        (
            "plaintext_is_marker_bytes",
            "0x80 0x80 and the marker: the plaintext is 0x80 0x80",
            vec![END_MARKER; 3],
        ),
        ("empty", "nothing: there is no marker", Vec::new()),
        (
            "all_zero",
            "64 zero bytes: nothing is left after stripping",
            zeros(64),
        ),
        (
            "no_marker",
            "\"hello\" and 59 zero bytes",
            cat(&[hello, &zeros(59)]),
        ),
        (
            "no_marker_no_padding",
            "\"hello\": its last byte is 0x6f",
            hello.to_vec(),
        ),
        (
            "nonzero_after_marker",
            "\"hello\", the marker, 0x01 and zero padding",
            cat(&[hello, &[END_MARKER, 0x01], &zeros(57)]),
        ),
        (
            "ff_after_marker",
            "\"hello\", the marker, then 0xff: after stripping nothing, the last byte is 0xff",
            cat(&[hello, &[END_MARKER, 0xFF]]),
        ),
        (
            "marker_then_zeros_then_one",
            "the marker, 62 zero bytes and 0x01",
            cat(&[&[END_MARKER], &zeros(62), &[0x01]]),
        ),
    ];
    let decode_examples = decode_cases
        .into_iter()
        .map(|(name, description, encoded)| {
            let plaintext = decode(&encoded);
            let mut world = World::replay(plain, at);
            let got = world.alice.decrypt(&rebody(r2, &encoded));
            match &plaintext {
                Some(pt) => assert_eq!(got.as_ref().ok(), Some(pt), "decode example {name}"),
                None => {
                    assert_eq!(
                        got.map_err(|e| format!("{e:?}")),
                        Err("DecryptionFailed".to_owned()),
                        "decode example {name}"
                    );
                    let genuine = world.alice.decrypt(&r2.bytes).unwrap();
                    assert_eq!(genuine, r2.plaintext, "decode example {name}: then");
                }
            }
            DecodeExampleJson {
                name,
                description,
                encoded: hex(&encoded),
                expected_error: plaintext.is_none().then_some("DecryptionFailed"),
                plaintext: plaintext.map(|p| hex(&p)),
            }
        })
        .collect();

    // --- the longest plaintext in the longest framing ------------------------------------
    let mut model = Model::new(longest);
    let mut world = World::setup(longest);
    let pt = vec![PLAINTEXT_BYTE; MAX_PLAINTEXT_SIZE];
    let wire = encrypt_both(
        &mut model,
        &mut world,
        &pt,
        Pad::Padme,
        "padding: the longest message",
    );
    let q0 = mlongest.message(0);
    assert_eq!(q0.prefix.len(), LONGEST_PREFIX);
    assert_eq!(model.message(0).message_key, q0.message_key);
    assert_eq!(wire.len(), MAX_MESSAGE_SIZE);
    assert_eq!(
        wire,
        cat(&[
            &q0.prefix,
            &message_seal(&q0.message_key, &q0.aad, &encode(&pt, Pad::Padme))
        ])
    );
    // Bob's store accepts it.
    let accepted = world.accept(&wire).unwrap();
    assert_eq!(accepted.plaintext, pt, "the longest message decrypts");
    let longest_message = LongestMessageJson {
        base_vector: longest.file,
        description: "Alice's first message of the base vector's setup (a header-encrypted PQXDH \
                      initial message, type 0x06, with the 1247-byte prefix and the message key and \
                      AAD of the base's message 0), with a plaintext of max_plaintext_size bytes \
                      (Padme: the cap, max_encoded_plaintext): exactly max_message_size bytes; \
                      Bob's prekey store accepts it",
        plaintext_byte: hex(&[PLAINTEXT_BYTE]),
        plaintext_length: MAX_PLAINTEXT_SIZE,
        policy: Pad::Padme.name(),
        encoded_length: MAX_ENCODED_PLAINTEXT,
        message_length: wire.len(),
        message_sha256: hex(&Sha256::digest(&wire)),
    };

    PaddingFile {
        comment: vec![
            "The plaintext encoding of SPEC.md protocol profile v2 (section 4.9): encode(pt, policy) = pt || 0x80 || \
             0x00^(P - L) with L = len(pt) + 1, P = L for policy none and P = min(padme(max(L, 64)), \
             max_encoded_plaintext) for policy padme (the default); padme(L) = L rounded up to a multiple of 2^z, \
             E = floor(log2 L), S = floor(log2 E) + 1, z = E - S. decode(x): strip every trailing 0x00, the byte then \
             last must be 0x80 (else DecryptionFailed), drop it."
                .into(),
            format!(
                "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); every \
                 value was checked against the library before writing; do not edit by hand."
            ),
            "lengths and too_large: each plaintext (plaintext_length copies of plaintext_byte) was encrypted by \
             Alice's session of encode_base (after its setup, one message after another, the policy set with \
             Session::set_padding), and the message was plaintext_length's encoded length + 123 + 16 bytes, equal to \
             the independent model's message byte for byte; a plaintext above max_plaintext_size is TooLarge and \
             changes nothing (the next message is the one the model sends next)."
                .into(),
            "encode_examples: each was the first message of a fresh encode_base session (so under the message key and \
             AAD of that file's message 0); decrypting its body with that key gives encoded. decode_examples: encoded \
             is encrypted under the message key and AAD of decode_base's message (so the tag verifies) and decrypted \
             by its party's session after the base's first after_events events: plaintext, or DecryptionFailed and \
             the genuine message then still decrypts."
                .into(),
            "Byte strings are lowercase hex. tests/vectors.rs checks this file.".into(),
        ],
        kind: "padding",
        provenance: Provenance {
            spec: "SPEC.md, protocol profile v2 (4.9 plaintext encoding, 5.6 size limits, 4.1 ENCRYPT)",
            ..provenance()
        },
        constants: PaddingConstants {
            end_marker: hex(&[END_MARKER]),
            padme_minimum: PADME_MINIMUM,
            max_message_size: MAX_MESSAGE_SIZE,
            longest_prefix: LONGEST_PREFIX,
            tag_length: TAG_LENGTH,
            max_encoded_plaintext: MAX_ENCODED_PLAINTEXT,
            max_plaintext_size: MAX_PLAINTEXT_SIZE,
        },
        encode_base: EncodeBaseJson {
            base_vector: plain.file,
            description: "Alice's session after the base vector's setup; every message is an initial \
                          message (type 0x02, 123-byte prefix)",
            plaintext_byte: hex(&[PLAINTEXT_BYTE]),
        },
        lengths,
        too_large,
        encode_examples,
        decode_base: DecodeBaseJson {
            base_vector: plain.file,
            message: 2,
            after_events: at,
            party: Alice.name(),
            description: "message 2 (Bob's first reply, type 0x01) with its body replaced by \
                          AES-256-GCM-SIV(mk, 0x00^12, AAD, encoded) under its own message key and AAD",
        },
        decode_examples,
        longest_message,
        stored_sessions: stored_sessions(models),
    }
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

/// The plaintexts placed at the Padmé bucket edges (and the long one) have the lengths
/// their scenarios' descriptions state.
fn check_plaintext_lengths() {
    for (file, index, len) in [
        ("x3dh_ratchet_v2.json", 3, 63),
        ("x3dh_ratchet_v2.json", 4, 64),
        ("x3dh_ratchet_v2.json", 5, 0),
        ("x3dh_ratchet_no_opk_v2.json", 3, 63),
        ("x3dh_ratchet_no_opk_v2.json", 4, 62),
        ("x3dh_ratchet_no_opk_v2.json", 6, 64),
        ("x3dh_ratchet_no_opk_v2.json", 7, 65),
        ("pqxdh_ratchet_v2.json", 3, 1000),
        ("x3dh_he_v2.json", 7, 100),
    ] {
        let s = SCENARIOS.iter().find(|s| s.file == file).unwrap();
        assert_eq!(s.messages[index].1.len(), len, "{file}: message {index}");
    }
    // The expected encodings of SPEC.md §4.9's examples.
    for (len, padme) in [(0, 64), (63, 64), (64, 72), (100, 104), (1000, 1024)] {
        assert_eq!(
            encoded_length(len, Pad::Padme),
            padme,
            "padme of {len} bytes"
        );
        assert_eq!(encoded_length(len, Pad::None), len + 1);
    }
    assert_eq!(MAX_ENCODED_PLAINTEXT, 1_047_313);
    assert_eq!(MAX_PLAINTEXT_SIZE, 1_047_312);
    assert_eq!(MAX_PLAINTEXT_SIZE, doubleratchet::MAX_PLAINTEXT_SIZE);
    assert_eq!(
        encoded_length(MAX_PLAINTEXT_SIZE, Pad::Padme),
        MAX_ENCODED_PLAINTEXT
    );
}

// ---------------------------------------------------------------------------------------
// The local device (issue 15: SPEC.md §2.5 id draws, stored type 0x2A, §8)
// ---------------------------------------------------------------------------------------

/// Bob's RNG seed in `prekey_store_v2.json`.
const STORE_BOB_SEED: u64 = 0x5702E;
/// Alice's RNG seed in `prekey_store_v2.json` (the initiator of every flood message).
const STORE_ALICE_SEED: u64 = 0xA11CE7;
/// The replay capacity of the flood scenario.
const FLOOD_CAPACITY: u32 = 3;
/// The app's clock when Bob's device is created: 2026-12-02T00:00:00Z, seconds since the
/// Unix epoch. Later calls pass later times.
const STORE_T0: u64 = 1_796_169_600;
const HOUR: u64 = 60 * 60;
const DAY: u64 = 24 * HOUR;
/// The one-time prekey cap the generated device ends with (the default is 200).
const GENERATED_ONE_TIME_CAP: u32 = 4;

#[derive(Serialize)]
struct NoticeJson {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
}

impl NoticeModel {
    fn json(self) -> NoticeJson {
        match self {
            NoticeModel::Switched { previous, current } => NoticeJson {
                kind: "signed_prekey_switched",
                previous: Some(previous),
                current: Some(current),
                id: None,
            },
            NoticeModel::Full { id } => NoticeJson {
                kind: "signed_prekey_full",
                previous: None,
                current: None,
                id: Some(id),
            },
        }
    }
}

#[derive(Serialize)]
struct StoreStepJson {
    step: usize,
    /// The call, on Bob's device.
    call: String,
    /// The call's number argument, if any: the count of `generate_*`, the capacity of
    /// `set_replay_capacity`, the cap of `set_one_time_prekey_cap`, the id of
    /// `retire_signed_prekey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    argument: Option<u64>,
    /// The ids passed to `mark_one_time_prekeys_published` or `mark_pq_prekeys_published`.
    #[serde(skip_serializing_if = "Option::is_none")]
    argument_ids: Option<Vec<u64>>,
    /// The time passed (`now`, seconds since the Unix epoch), for the calls that take one.
    #[serde(skip_serializing_if = "Option::is_none")]
    now: Option<u64>,
    /// `accept`: the index of the message in `flood.messages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<usize>,
    /// The ids the call returned (new keys in the order returned; `Generated::created`),
    /// if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_ids: Option<Vec<u64>>,
    /// `generate_*`: `Generated::evicted`, the oldest keys evicted to stay within the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    evicted_ids: Option<Vec<u64>>,
    /// `mark_*_published`: how many keys were newly marked.
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_count: Option<usize>,
    /// `retire_signed_prekey`: whether a key was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    returned: Option<bool>,
    /// `accept` that fails: the error (`Debug` form); the device is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_error: Option<String>,
    /// A successful `accept`: `Accepted::used_one_time_prekey` and
    /// `used_post_quantum_prekey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    used_one_time_prekey: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_post_quantum_prekey: Option<u64>,
    /// A successful `accept` or `set_replay_capacity`: the notice (null: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<Option<NoticeJson>>,
    /// The device after the call: its current and standby signed prekey ids, its replay
    /// records over all signed prekeys, and its `LocalDevice::to_bytes` (type `0x2A`).
    current_signed_prekey: u64,
    standby_signed_prekey: Option<u64>,
    replay_records: usize,
    store_length: usize,
    store: String,
}

#[derive(Serialize)]
struct FloodMessageJson {
    index: usize,
    /// Where Alice's bundle came from: Bob's device right after flood step
    /// `made_after_flood_step`.
    bundle_from: String,
    made_after_flood_step: usize,
    signed_prekey_id: u64,
    one_time_prekey_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_quantum_prekey_kind: Option<&'static str>,
    /// `EK_A`: the X25519 public key of Alice's drawn secret (the replay record it makes).
    base_key: String,
    plaintext_utf8: String,
    bytes: String,
}

#[derive(Serialize)]
struct LoadRejectJson {
    name: String,
    description: String,
    /// The device it was made from: a step of `generated` or `flood`.
    from: String,
    input: String,
    expected_error: String,
}

#[derive(Serialize)]
struct StoreConstants {
    storage_version: String,
    store_type: String,
    retired_store_types: Vec<String>,
    identity_type: String,
    signed_prekey_type: String,
    one_time_prekey_type: String,
    post_quantum_prekey_type: String,
    max_replay_records_per_signed_prekey: u32,
    max_signed_prekeys: usize,
    default_one_time_prekey_cap: u32,
    max_one_time_prekeys: usize,
    id_draws: usize,
    new_store_length: usize,
}

#[derive(Serialize)]
struct GeneratedStoreJson {
    description: String,
    bob_rng_seed: u64,
    bob_identity: IdentityJson,
    /// Every draw from Bob's RNG, in order (ids are 8 bytes read big-endian).
    rng_draws: Vec<DrawJson>,
    steps: Vec<StoreStepJson>,
}

#[derive(Serialize)]
struct FloodJson {
    description: String,
    alice_rng_seed: u64,
    alice_identity: IdentityJson,
    alice_rng_draws: Vec<DrawJson>,
    /// Bob's draws during the flood (`rotate_signed_prekey`), continuing `generated.rng_draws`.
    bob_rng_draws: Vec<DrawJson>,
    messages: Vec<FloodMessageJson>,
    steps: Vec<StoreStepJson>,
}

#[derive(Serialize)]
struct StoreFile {
    #[serde(rename = "_comment")]
    comment: Vec<String>,
    kind: &'static str,
    provenance: Provenance,
    constants: StoreConstants,
    generated: GeneratedStoreJson,
    flood: FloodJson,
    load_rejects: Vec<LoadRejectJson>,
}

/// The library's notice in the model's terms.
fn notice_model(n: Option<StoreNotice>) -> Option<NoticeModel> {
    n.map(|n| match n {
        StoreNotice::SignedPreKeySwitched { previous, current } => NoticeModel::Switched {
            previous: previous.to_u64(),
            current: current.to_u64(),
        },
        StoreNotice::SignedPreKeyFull { id } => NoticeModel::Full { id: id.to_u64() },
        other => panic!("unknown notice {other:?}"),
    })
}

/// Ids as the model and the file hold them.
fn plain_ids<I: Into<u64>>(ids: Vec<I>) -> Vec<u64> {
    ids.into_iter().map(Into::into).collect()
}

/// What a flood message's bundle offers.
#[derive(Clone, Copy)]
enum Offer {
    /// `device.bundle(None)`: last resort, X3DH.
    LastResort,
    /// `device.bundle(Some(one_time_ids[i]))`, the `i`-th oldest one-time prekey held
    /// after the generated steps.
    OneTime(usize),
    /// `device.pq_bundle(None, None)`: the current last-resort ML-KEM key.
    PqLastResort,
    /// `device.pq_bundle(None, Some(pq_one_time_ids[i]))`.
    PqOneTime(usize),
}

/// One step of the flood, after the generated device.
#[derive(Clone, Copy)]
enum FloodOp {
    SetCapacity(u32),
    /// Alice makes message `i` from a bundle of the device as it is now.
    Make(usize, Offer),
    Accept(usize),
    /// `rotate_signed_prekey(now)`.
    Rotate(u64),
    /// Retire the signed prekey that message `i` names.
    RetireNamedBy(usize),
}

const FLOOD: &[FloodOp] = &[
    FloodOp::SetCapacity(FLOOD_CAPACITY),
    FloodOp::Make(0, Offer::LastResort),
    FloodOp::Make(1, Offer::LastResort),
    FloodOp::Make(2, Offer::PqLastResort),
    FloodOp::Make(3, Offer::LastResort),
    FloodOp::Make(4, Offer::OneTime(0)),
    FloodOp::Accept(0),
    FloodOp::Accept(1),
    FloodOp::Accept(2),
    FloodOp::Accept(3),
    FloodOp::Accept(0),
    FloodOp::Accept(4),
    FloodOp::Make(5, Offer::PqOneTime(0)),
    FloodOp::Make(6, Offer::LastResort),
    FloodOp::Make(7, Offer::LastResort),
    FloodOp::Make(8, Offer::LastResort),
    FloodOp::Make(9, Offer::LastResort),
    FloodOp::Accept(5),
    FloodOp::Accept(6),
    FloodOp::Accept(7),
    FloodOp::Accept(8),
    FloodOp::Accept(9),
    FloodOp::Rotate(STORE_T0 + 14 * DAY),
    FloodOp::RetireNamedBy(0),
    FloodOp::Accept(3),
];

/// The held keys of `map` by age (sequence), oldest first, that pass `keep`.
fn by_age<V>(
    map: &std::collections::BTreeMap<u64, V>,
    sequence: impl Fn(&V) -> u64,
    keep: impl Fn(&V) -> bool,
) -> Vec<u64> {
    oldest(map, map.len(), sequence, keep)
}

/// The device's state summary and bytes, after a step; the model's encoding must equal the
/// library's, and the library's accessors must tell what the model holds.
#[cfg(feature = "pqxdh")]
fn store_step(
    step: usize,
    call: String,
    model: &StoreModel,
    library: &LocalDevice,
) -> StoreStepJson {
    let bytes = model.encode();
    assert_same(
        &format!("local device after {call}"),
        &bytes,
        &library.to_bytes(),
    );
    assert_eq!(library.current_signed_prekey().id().to_u64(), model.current);
    assert_eq!(
        library.current_signed_prekey_created(),
        model.signed[&model.current].created
    );
    assert_eq!(
        library.standby_signed_prekey().map(|k| k.id().to_u64()),
        model.standby.as_ref().map(|s| s.id)
    );
    let previous: Vec<u64> = model
        .signed
        .keys()
        .copied()
        .filter(|id| *id != model.current)
        .collect();
    assert_eq!(
        library
            .previous_signed_prekeys()
            .map(|k| k.id().to_u64())
            .collect::<Vec<_>>(),
        previous
    );
    let records = model.signed.values().map(|e| e.records.len()).sum();
    assert_eq!(library.replay_records(), records);
    assert_eq!(library.replay_capacity(), model.replay_capacity);
    assert_eq!(library.one_time_prekey_cap(), model.one_time_cap);
    // One-time prekeys of both kinds, oldest first, and the unpublished ones.
    let one_time = |k: &OneTimeModel| k.sequence;
    assert_eq!(
        library
            .one_time_prekeys()
            .map(|k| k.id().to_u64())
            .collect::<Vec<_>>(),
        by_age(&model.one_time, one_time, |_| true)
    );
    assert_eq!(
        library
            .unpublished_one_time_prekeys()
            .map(|k| k.id().to_u64())
            .collect::<Vec<_>>(),
        by_age(&model.one_time, one_time, |k| !k.published)
    );
    let pq = |k: &PqKeyModel| k.sequence;
    let pq_one_time = |k: &PqKeyModel| k.kind == PqKind::OneTime;
    assert_eq!(
        library
            .pq_one_time_prekeys()
            .map(|k| k.id().to_u64())
            .collect::<Vec<_>>(),
        by_age(&model.pq, pq, pq_one_time)
    );
    assert_eq!(
        library
            .unpublished_pq_one_time_prekeys()
            .map(|k| k.id().to_u64())
            .collect::<Vec<_>>(),
        by_age(&model.pq, pq, |k| pq_one_time(k) && !k.published)
    );
    assert_eq!(
        library
            .current_pq_last_resort_prekey()
            .map(|k| k.id().to_u64()),
        model.pq_current_last_resort
    );
    // The model's encoding loads, and gives itself back.
    assert_same(
        &format!("local device round trip after {call}"),
        &LocalDevice::from_bytes(&bytes).unwrap().to_bytes(),
        &bytes,
    );
    StoreStepJson {
        step,
        call,
        argument: None,
        argument_ids: None,
        now: None,
        message: None,
        returned_ids: None,
        evicted_ids: None,
        returned_count: None,
        returned: None,
        expected_error: None,
        used_one_time_prekey: None,
        used_post_quantum_prekey: None,
        notice: None,
        current_signed_prekey: model.current,
        standby_signed_prekey: model.standby.as_ref().map(|s| s.id),
        replay_records: records,
        store_length: bytes.len(),
        store: hex(&bytes),
    }
}

/// `prekey_store_v2.json`: a local device generated from a seeded RNG (ids recomputed from
/// the draws) at given times, and a flood of last-resort initial messages at a small replay
/// capacity.
#[cfg(feature = "pqxdh")]
fn prekey_store_file() -> StoreFile {
    // --- generated -------------------------------------------------------------------------
    let mut bob_rng = ChaCha20Rng::seed_from_u64(STORE_BOB_SEED);
    let mut b = Drawer::new(STORE_BOB_SEED);
    let bob = IdentityKeyPair::generate(&mut bob_rng).unwrap();
    let bob_model = Identity::from_seed(b.draw("IdentityKeyPair::generate: IK_B seed".into()));
    assert_eq!(bob.public_key().as_bytes(), &bob_model.ed25519_public);
    let mut steps = Vec::new();

    // The device owns a copy of IK_B; Alice's bundles are checked against `bob`.
    let copy = IdentityKeyPair::from_bytes(&bob.to_bytes()).unwrap();
    let now = STORE_T0;
    let mut store = LocalDevice::from_identity(copy, now, &mut bob_rng).unwrap();
    assert_eq!(store.identity_key(), bob.public_key());
    let mut model = StoreModel::new(&bob_model, now, &mut b);
    let mut st = store_step(
        0,
        "LocalDevice::from_identity(IK_B, now, rng)".into(),
        &model,
        &store,
    );
    st.now = Some(now);
    st.returned_ids = Some(vec![model.current, model.standby.as_ref().unwrap().id]);
    assert_eq!(st.store_length, NEW_DEVICE_LENGTH, "a new device");
    steps.push(st);

    let generated = store.generate_one_time_prekeys(3, &mut bob_rng).unwrap();
    let (first_ids, evicted) = model.generate_one_time_prekeys(3, &mut b);
    assert_eq!(
        plain_ids(generated.created),
        first_ids,
        "one-time prekey ids"
    );
    assert_eq!(plain_ids(generated.evicted), evicted);
    assert!(evicted.is_empty());
    let mut st = store_step(
        1,
        "generate_one_time_prekeys(3, rng)".into(),
        &model,
        &store,
    );
    st.argument = Some(3);
    st.returned_ids = Some(first_ids.clone());
    st.evicted_ids = Some(evicted);
    steps.push(st);

    let marked_ids = first_ids[..2].to_vec();
    let ids: Vec<OneTimePreKeyId> = marked_ids.iter().map(|id| (*id).into()).collect();
    let marked = store.mark_one_time_prekeys_published(&ids);
    assert_eq!(marked, model.mark_one_time_prekeys_published(&marked_ids));
    assert_eq!(marked, 2);
    let mut st = store_step(
        2,
        "mark_one_time_prekeys_published(ids)".into(),
        &model,
        &store,
    );
    st.argument_ids = Some(marked_ids);
    st.returned_count = Some(marked);
    steps.push(st);

    let generated = store.generate_pq_one_time_prekeys(1, &mut bob_rng).unwrap();
    let (pq_one_time_ids, evicted) = model.generate_pq_one_time_prekeys(&bob_model, 1, &mut b);
    assert_eq!(
        plain_ids(generated.created),
        pq_one_time_ids,
        "PQ one-time prekey ids"
    );
    assert_eq!(plain_ids(generated.evicted), evicted);
    let mut st = store_step(
        3,
        "generate_pq_one_time_prekeys(1, rng)".into(),
        &model,
        &store,
    );
    st.argument = Some(1);
    st.returned_ids = Some(pq_one_time_ids.clone());
    st.evicted_ids = Some(evicted);
    steps.push(st);

    let now = STORE_T0 + HOUR;
    let first_last_resort = store
        .rotate_pq_last_resort_prekey(now, &mut bob_rng)
        .unwrap()
        .to_u64();
    assert_eq!(
        first_last_resort,
        model.rotate_pq_last_resort_prekey(&bob_model, now, &mut b)
    );
    let mut st = store_step(
        4,
        "rotate_pq_last_resort_prekey(now, rng)".into(),
        &model,
        &store,
    );
    st.now = Some(now);
    st.returned_ids = Some(vec![first_last_resort]);
    steps.push(st);

    let marked_ids = vec![pq_one_time_ids[0], first_last_resort];
    let ids: Vec<PqPreKeyId> = marked_ids.iter().map(|id| (*id).into()).collect();
    let marked = store.mark_pq_prekeys_published(&ids);
    assert_eq!(marked, model.mark_pq_prekeys_published(&marked_ids));
    assert_eq!(marked, 2);
    let mut st = store_step(5, "mark_pq_prekeys_published(ids)".into(), &model, &store);
    st.argument_ids = Some(marked_ids);
    st.returned_count = Some(marked);
    steps.push(st);

    let now = STORE_T0 + 7 * DAY;
    let standby_before = model.standby.as_ref().unwrap().id;
    let id = store
        .rotate_signed_prekey(now, &mut bob_rng)
        .unwrap()
        .to_u64();
    assert_eq!(id, model.rotate_signed_prekey(&bob_model, now, &mut b));
    assert_ne!(id, standby_before, "a fresh key becomes current");
    assert_eq!(
        model.standby.as_ref().map(|s| s.id),
        Some(standby_before),
        "the standby is kept"
    );
    let mut st = store_step(6, "rotate_signed_prekey(now, rng)".into(), &model, &store);
    st.now = Some(now);
    st.returned_ids = Some(vec![id]);
    steps.push(st);

    let id = store
        .rotate_pq_last_resort_prekey(now, &mut bob_rng)
        .unwrap()
        .to_u64();
    assert_eq!(
        id,
        model.rotate_pq_last_resort_prekey(&bob_model, now, &mut b)
    );
    let mut st = store_step(
        7,
        "rotate_pq_last_resort_prekey(now, rng)".into(),
        &model,
        &store,
    );
    st.now = Some(now);
    st.returned_ids = Some(vec![id]);
    steps.push(st);

    store
        .set_one_time_prekey_cap(GENERATED_ONE_TIME_CAP)
        .unwrap();
    model.set_one_time_prekey_cap(GENERATED_ONE_TIME_CAP);
    let mut st = store_step(
        8,
        format!("set_one_time_prekey_cap({GENERATED_ONE_TIME_CAP})"),
        &model,
        &store,
    );
    st.argument = Some(u64::from(GENERATED_ONE_TIME_CAP));
    steps.push(st);

    let generated = store.generate_one_time_prekeys(2, &mut bob_rng).unwrap();
    let (ids, evicted) = model.generate_one_time_prekeys(2, &mut b);
    assert_eq!(plain_ids(generated.created), ids, "one-time prekey ids");
    assert_eq!(plain_ids(generated.evicted), evicted);
    assert_eq!(
        evicted,
        [first_ids[0]],
        "the oldest (published) one is evicted"
    );
    let mut st = store_step(
        9,
        "generate_one_time_prekeys(2, rng)".into(),
        &model,
        &store,
    );
    st.argument = Some(2);
    st.returned_ids = Some(ids);
    st.evicted_ids = Some(evicted);
    steps.push(st);
    let generated_draws = b.draws.len();
    let generated_store = model.encode();
    let generated_model = model.clone();
    let last_generated = format!("generated step {}", steps.len() - 1);
    // The one-time prekeys held, oldest first.
    let one_time_ids = by_age(&model.one_time, |k| k.sequence, |_| true);

    // --- flood -----------------------------------------------------------------------------
    let mut alice_rng = ChaCha20Rng::seed_from_u64(STORE_ALICE_SEED);
    let mut a = Drawer::new(STORE_ALICE_SEED);
    let alice = IdentityKeyPair::generate(&mut alice_rng).unwrap();
    let alice_model = Identity::from_seed(a.draw("IdentityKeyPair::generate: IK_A seed".into()));
    assert_eq!(alice.public_key().as_bytes(), &alice_model.ed25519_public);
    let mut messages: Vec<FloodMessageJson> = Vec::new();
    let mut wire: Vec<Vec<u8>> = Vec::new();
    let mut flood_steps = Vec::new();
    let mut after_switch = None;
    for op in FLOOD {
        let step = flood_steps.len();
        match *op {
            FloodOp::SetCapacity(n) => {
                let notice = store.set_replay_capacity(n).unwrap();
                assert_eq!(notice_model(notice), model.set_replay_capacity(n));
                let mut st = store_step(step, format!("set_replay_capacity({n})"), &model, &store);
                st.argument = Some(u64::from(n));
                st.notice = Some(notice_model(notice).map(NoticeModel::json));
                flood_steps.push(st);
            }
            FloodOp::Make(i, offer) => {
                assert_eq!(messages.len(), i);
                let (bundle, what, opk, pq) = match offer {
                    Offer::LastResort => (
                        store.bundle(None).unwrap(),
                        "device.bundle(None)".to_owned(),
                        None,
                        None,
                    ),
                    Offer::OneTime(k) => (
                        store.bundle(Some(one_time_ids[k].into())).unwrap(),
                        format!("device.bundle(Some({}))", one_time_ids[k]),
                        Some(one_time_ids[k]),
                        None,
                    ),
                    Offer::PqLastResort => (
                        store.pq_bundle(None, None).unwrap(),
                        "device.pq_bundle(None, None)".to_owned(),
                        None,
                        Some((model.pq_current_last_resort.unwrap(), PqKind::LastResort)),
                    ),
                    Offer::PqOneTime(k) => (
                        store
                            .pq_bundle(None, Some(pq_one_time_ids[k].into()))
                            .unwrap(),
                        format!("device.pq_bundle(None, Some({}))", pq_one_time_ids[k]),
                        None,
                        Some((pq_one_time_ids[k], PqKind::OneTime)),
                    ),
                };
                let received = PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap();
                let plaintext = format!("Flood message {i}.");
                let mut session =
                    Session::initiate(&alice, &received, &SessionOptions::new(), &mut alice_rng)
                        .unwrap();
                let bytes = session
                    .encrypt(plaintext.as_bytes(), &mut alice_rng)
                    .unwrap();
                // The model: Alice's draws (SPEC.md 2.5) and the X3DH fields the message
                // must carry: the device's current signed prekey and the offered keys.
                let ek = a.draw(format!("Session::initiate (message {i}): EK_A secret"));
                if pq.is_some() {
                    a.draw(format!(
                        "Session::initiate (message {i}): ML-KEM encapsulation randomness m"
                    ));
                }
                a.draw(format!("Session::initiate (message {i}): first DHs secret"));
                let (fields, _) = InitialFields::parse(&bytes, pq.is_some());
                assert_eq!(bytes[1], if pq.is_some() { 0x03 } else { 0x02 });
                assert_eq!(fields.identity, alice_model.ed25519_public);
                assert_eq!(fields.base_key, x25519_public(&ek));
                assert_eq!(fields.signed_prekey_id, model.current);
                assert_eq!(fields.one_time_prekey_id, opk);
                assert_eq!(fields.post_quantum.map(|(id, _)| id), pq.map(|(id, _)| id));
                messages.push(FloodMessageJson {
                    index: i,
                    bundle_from: format!("{what} (current signed prekey {})", model.current),
                    made_after_flood_step: step - 1,
                    signed_prekey_id: fields.signed_prekey_id,
                    one_time_prekey_id: opk,
                    post_quantum_prekey_id: pq.map(|(id, _)| id),
                    post_quantum_prekey_kind: pq.map(|(_, kind)| kind.name()),
                    base_key: hex(&fields.base_key),
                    plaintext_utf8: plaintext,
                    bytes: hex(&bytes),
                });
                wire.push(bytes);
            }
            FloodOp::Accept(i) => {
                let (fields, _) = InitialFields::parse(&wire[i], wire[i][1] == 0x03);
                let expected = model.accept(&fields);
                let got = store.accept(&wire[i], &SessionOptions::new());
                let mut st = store_step(
                    step,
                    "accept(message, &SessionOptions::new())".into(),
                    &model,
                    &store,
                );
                st.message = Some(i);
                match (expected, got) {
                    (Ok(notice), Ok(accepted)) => {
                        assert_eq!(notice_model(accepted.notice), notice, "notice of {i}");
                        assert_eq!(accepted.plaintext, messages[i].plaintext_utf8.as_bytes());
                        let used_one_time = accepted.used_one_time_prekey.map(u64::from);
                        let used_pq = accepted.used_post_quantum_prekey.map(u64::from);
                        assert_eq!(used_one_time, fields.one_time_prekey_id);
                        assert_eq!(used_pq, fields.post_quantum.map(|(id, _)| id));
                        st.used_one_time_prekey = used_one_time;
                        st.used_post_quantum_prekey = used_pq;
                        if matches!(notice, Some(NoticeModel::Switched { .. })) {
                            after_switch = Some(step);
                        }
                        st.notice = Some(notice.map(NoticeModel::json));
                    }
                    (Err(e), Err(got)) => {
                        assert_eq!(format!("{got:?}"), e, "accept of message {i}");
                        st.expected_error = Some(e);
                    }
                    (e, got) => panic!(
                        "DISAGREEMENT on accepting flood message {i}: model {e:?}, library {:?}",
                        got.map(|a| a.notice)
                    ),
                }
                flood_steps.push(st);
            }
            FloodOp::Rotate(now) => {
                assert!(
                    model.standby.is_none(),
                    "the flood rotates without a standby"
                );
                let id = store
                    .rotate_signed_prekey(now, &mut bob_rng)
                    .unwrap()
                    .to_u64();
                assert_eq!(id, model.rotate_signed_prekey(&bob_model, now, &mut b));
                let mut st = store_step(
                    step,
                    "rotate_signed_prekey(now, rng)".into(),
                    &model,
                    &store,
                );
                st.now = Some(now);
                st.returned_ids = Some(vec![id]);
                flood_steps.push(st);
            }
            FloodOp::RetireNamedBy(i) => {
                let id = u64_at(&wire[i], SPK_ID_AT);
                let removed = store.retire_signed_prekey(id.into());
                assert_eq!(removed, model.retire_signed_prekey(id));
                let mut st =
                    store_step(step, format!("retire_signed_prekey({id})"), &model, &store);
                st.argument = Some(id);
                st.returned = Some(removed);
                flood_steps.push(st);
            }
        }
    }
    // Every step type of interest happened.
    assert!(after_switch.is_some());
    let outcomes: Vec<&str> = flood_steps
        .iter()
        .filter_map(|s| s.expected_error.as_deref())
        .collect();
    assert_eq!(
        outcomes,
        [
            "StoreFull",
            "DuplicateOrExpired",
            "StoreFull",
            &format!(
                "UnknownSignedPreKey(SignedPreKeyId({}))",
                u64_at(&wire[3], SPK_ID_AT)
            )
        ]
    );
    // No hidden draws on either side.
    for (name, mut library, drawer) in [("Bob", bob_rng, &b), ("Alice", alice_rng, &a)] {
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        library.try_fill_bytes(&mut x).unwrap();
        drawer.rng.clone().try_fill_bytes(&mut y).unwrap();
        assert_eq!(x, y, "{name}'s RNG draw counts differ");
    }
    let flood_store = model.encode();

    // --- stored devices that must not load ----------------------------------------------------
    let load_rejects = store_load_rejects(
        (&last_generated, &generated_store, &generated_model),
        &flood_store,
        &model,
    );
    for case in &load_rejects {
        let got = match LocalDevice::from_bytes(&hex_decode(&case.input)) {
            Ok(_) => "loaded".to_owned(),
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(got, case.expected_error, "load reject {}", case.name);
    }

    let mut bob_draws = b.draws;
    let flood_bob_draws = bob_draws.split_off(generated_draws);
    StoreFile {
        comment: vec![
            "Known-answer vectors for the doubleratchet crate's local device (LocalDevice: the identity key \
             pair and its prekeys), SPEC.md protocol profile v2 with the issue 15 decisions (random u64 prekey \
             ids, SPEC.md 2.5 and 8.1; the stored device, type 0x2A; creation and supersession times, \
             published flags and the one-time prekey cap; replay records per signed prekey, the standby \
             signed prekey and the switch, SPEC.md 8.3)."
                .into(),
            format!(
                "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); do \
                 not edit by hand."
            ),
            "generated: Bob's RNG (rand_chacha 0.10 ChaCha20Rng::seed_from_u64(bob_rng_seed)) draws IK_B's seed, \
             then each step's keys: an id is one 8-byte try_fill_bytes read big-endian (drawn again if 0 or taken), \
             then the key material (32 bytes, or the 64-byte ML-KEM seed d || z), in the order of rng_draws; each \
             step lists its arguments (now: the app's clock, seconds since the Unix epoch), what it returned and \
             LocalDevice::to_bytes after it. Every id, key, signature, sequence number, time, flag and stored \
             byte was recomputed from the draws by the generator's own model of the device, independently of \
             the library, and asserted equal to the library's before writing."
                .into(),
            format!(
                "flood: the generated device, then set_replay_capacity({FLOOD_CAPACITY}); Alice (her own seeded RNG) \
                 makes initial messages from bundles Bob's device publishes and Bob's device accepts them: a \
                 session that consumes no one-time prekey of either kind records EK_A under the signed prekey it \
                 names; once the current one carries {FLOOD_CAPACITY} records the standby becomes current \
                 (signed_prekey_switched; it keeps its creation time, and the replaced key has no supersession \
                 time until the next maintain: accept has no clock), without a standby the device says \
                 signed_prekey_full; a signed prekey at capacity refuses further last-resort messages \
                 (StoreFull) but not those that consume a one-time prekey; a recorded EK_A is \
                 DuplicateOrExpired first; rotate_signed_prekey(now) without a standby draws a new current \
                 and a new standby; retiring a signed prekey drops its records (UnknownSignedPreKey). A failed \
                 accept changes nothing."
            ),
            "load_rejects: stored devices (made from the devices above) that LocalDevice::from_bytes must \
             refuse, with the error (the crate's Error variant, Debug form). Byte strings are lowercase hex; \
             ids and times are JSON integers up to 2^64 - 1. tests/it/vectors.rs checks this file."
                .into(),
        ],
        kind: "prekey_store",
        provenance: Provenance {
            spec: "SPEC.md, protocol profile v2 part 2 and the issue 15 decisions (2.5 id draws, 7.2, 7.3, \
                   7.4, 7.7, the local device type 0x2A replacing the prekey store type 0x24, 8, 8.1, 8.3, \
                   8.5, 10.1 loading a device)",
            rng: "rand_chacha 0.10 ChaCha20Rng::seed_from_u64(seed); an id draw is one try_fill_bytes of \
                  8 bytes (big-endian), an X25519 secret or Ed25519 seed one of 32 bytes, an ML-KEM seed one \
                  of 64 bytes (SPEC.md 2.5)",
            method: "the library's public API (LocalDevice::from_identity, generate_one_time_prekeys, \
                     mark_one_time_prekeys_published, generate_pq_one_time_prekeys, \
                     rotate_pq_last_resort_prekey, mark_pq_prekeys_published, rotate_signed_prekey, \
                     set_one_time_prekey_cap, set_replay_capacity, bundle, pq_bundle, accept, \
                     retire_signed_prekey, to_bytes, from_bytes; Session::initiate and encrypt for \
                     Alice) produced every value; the generator's independent model of the device \
                     (from the team's written v2 part 2 and issue 15 decisions) recomputed every id, \
                     stored device, notice and error, and each was asserted equal before writing",
            ..provenance_pq()
        },
        constants: StoreConstants {
            storage_version: hex(&[STORAGE_VERSION]),
            store_type: hex(&[TYPE_LOCAL_DEVICE]),
            retired_store_types: vec![hex(&[TYPE_RETIRED_PREKEY_STORE]), hex(&[0x27])],
            identity_type: hex(&[TYPE_IDENTITY]),
            signed_prekey_type: hex(&[0x22]),
            one_time_prekey_type: hex(&[0x23]),
            post_quantum_prekey_type: hex(&[0x26]),
            max_replay_records_per_signed_prekey: MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
            max_signed_prekeys: MAX_SIGNED_PREKEYS,
            default_one_time_prekey_cap: DEFAULT_ONE_TIME_PREKEY_CAP,
            max_one_time_prekeys: MAX_ONE_TIME_PREKEYS,
            id_draws: ID_DRAWS,
            new_store_length: NEW_DEVICE_LENGTH,
        },
        generated: GeneratedStoreJson {
            description: format!(
                "IK_B = IdentityKeyPair::generate(rng); device = LocalDevice::from_identity(IK_B, \
                 {STORE_T0}, rng) (a current and a standby signed prekey, both created at that time); \
                 generate_one_time_prekeys(3); mark_one_time_prekeys_published(the first two); \
                 generate_pq_one_time_prekeys(1); rotate_pq_last_resort_prekey(now + 1 hour); \
                 mark_pq_prekeys_published(the one-time and the last-resort post-quantum prekey); \
                 rotate_signed_prekey(now + 7 days) (a fresh key becomes current, the first one is \
                 superseded then, the standby is kept); rotate_pq_last_resort_prekey(now + 7 days) \
                 (the first last-resort key is superseded then); \
                 set_one_time_prekey_cap({GENERATED_ONE_TIME_CAP}); generate_one_time_prekeys(2) \
                 (the oldest one-time prekey, published, is evicted). Sequence numbers: the first \
                 three one-time prekeys 0, 1, 2, the one-time post-quantum prekey 3, the last-resort \
                 ones 4 and 5, the last two one-time prekeys 6 and 7."
            ),
            bob_rng_seed: STORE_BOB_SEED,
            bob_identity: bob_model.json(),
            rng_draws: bob_draws,
            steps,
        },
        flood: FloodJson {
            description: format!(
                "Continues from the last generated device (Bob's RNG continues too). Messages 0-4 are made \
                 while the signed prekey of the generated rotation is current, 5-9 after the switch to the \
                 standby; message 2 is PQXDH with the current last-resort ML-KEM key (no one-time prekey of \
                 either kind: it makes a record), message 5 PQXDH with the one-time ML-KEM key (consumes \
                 it: no record), message 4 X3DH with the oldest one-time prekey held; the others X3DH \
                 last-resort. Replay capacity {FLOOD_CAPACITY}; the rotation is at {}.",
                STORE_T0 + 14 * DAY
            ),
            alice_rng_seed: STORE_ALICE_SEED,
            alice_identity: alice_model.json(),
            alice_rng_draws: a.draws,
            bob_rng_draws: flood_bob_draws,
            messages,
            steps: flood_steps,
        },
        load_rejects,
    }
}

impl StoreModel {
    /// The offset of the standby field in [`StoreModel::encode`].
    fn standby_at(&self) -> usize {
        DEVICE_CURRENT_ID_AT
            + 8
            + 4
            + self
                .signed
                .values()
                .map(|e| STORED_SIGNED_PREKEY_LENGTH + 8 + 9 + 4 + 32 * e.records.len())
                .sum::<usize>()
    }
}

/// Stored devices that must not load (SPEC.md 7.5, 10.1): every one is a valid device with
/// one field changed, so the first failing check is the changed field's.
fn store_load_rejects(
    (last_generated, generated, generated_model): (&str, &[u8], &StoreModel),
    flood: &[u8],
    flood_model: &StoreModel,
) -> Vec<LoadRejectJson> {
    let mut cases = Vec::new();
    let mut add = |name: &str, description: String, from: &str, input: Vec<u8>, error: &str| {
        cases.push(LoadRejectJson {
            name: name.into(),
            description,
            from: from.into(),
            input: hex(&input),
            expected_error: error.into(),
        })
    };
    let last_flood = "the last flood step";
    add(
        "store_retired_type_0x24",
        "the generated device with type byte 0x24 (the prekey store of v2 part 2, never released, \
         retired by the local device)"
            .into(),
        last_generated,
        replace_at(generated, 1, &[TYPE_RETIRED_PREKEY_STORE]),
        "UnexpectedType(36)",
    );
    add(
        "store_retired_type_0x27",
        "the generated device with type byte 0x27 (the retired store type of profile v1 and v2 part 1)"
            .into(),
        last_generated,
        replace_at(generated, 1, &[0x27]),
        "UnexpectedType(39)",
    );
    add(
        "store_v1_version",
        "the generated device with version byte 0x01".into(),
        last_generated,
        replace_at(generated, 0, &[0x01]),
        "UnsupportedVersion(1)",
    );
    add(
        "store_identity_type",
        "the generated device with the type byte of its identity key pair (offset 3) 0x22, a \
         signed prekey's"
            .into(),
        last_generated,
        replace_at(generated, 3, &[0x22]),
        "UnexpectedType(34)",
    );
    add(
        "store_replay_capacity_zero",
        format!(
            "the generated device with replay capacity (offset {DEVICE_REPLAY_CAPACITY_AT}..{}) 0",
            DEVICE_REPLAY_CAPACITY_AT + 4
        ),
        last_generated,
        replace_at(generated, DEVICE_REPLAY_CAPACITY_AT, &0u32.to_be_bytes()),
        "InvalidEncoding",
    );
    add(
        "store_replay_capacity_1025",
        "the generated device with replay capacity 1025, above MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY"
            .into(),
        last_generated,
        replace_at(generated, DEVICE_REPLAY_CAPACITY_AT, &1025u32.to_be_bytes()),
        "InvalidEncoding",
    );
    add(
        "store_one_time_cap_zero",
        format!(
            "the generated device with one-time prekey cap (offset {DEVICE_ONE_TIME_CAP_AT}..{}) 0",
            DEVICE_ONE_TIME_CAP_AT + 4
        ),
        last_generated,
        replace_at(generated, DEVICE_ONE_TIME_CAP_AT, &0u32.to_be_bytes()),
        "InvalidEncoding",
    );
    let above = MAX_ONE_TIME_PREKEYS as u32 + 1;
    add(
        "store_one_time_cap_above_max",
        format!(
            "the generated device with one-time prekey cap {above}, above MAX_ONE_TIME_PREKEYS"
        ),
        last_generated,
        replace_at(generated, DEVICE_ONE_TIME_CAP_AT, &above.to_be_bytes()),
        "InvalidEncoding",
    );
    add(
        "store_current_id_not_held",
        format!(
            "the generated device with the current signed prekey id (offset {DEVICE_CURRENT_ID_AT}..{}) \
             set to {UNKNOWN_ID}, which names none of its signed prekeys",
            DEVICE_CURRENT_ID_AT + 8
        ),
        last_generated,
        replace_at(generated, DEVICE_CURRENT_ID_AT, &UNKNOWN_ID.to_be_bytes()),
        "InvalidEncoding",
    );
    add(
        "store_truncated",
        "the generated device without its last byte".into(),
        last_generated,
        generated[..generated.len() - 1].to_vec(),
        "Truncated",
    );
    add(
        "store_trailing_byte",
        "the generated device with one byte 0x00 appended".into(),
        last_generated,
        cat(&[generated, &[0x00]]),
        "TrailingData",
    );
    // Changes made on the models, then encoded: each breaks exactly one rule.
    let mut m = generated_model.clone();
    let current = m.current;
    m.signed.get_mut(&current).unwrap().superseded = Some(STORE_T0 + 7 * DAY);
    add(
        "store_current_superseded",
        format!(
            "the generated device with its current signed prekey {current} given a supersession \
             time: only replaced keys carry one"
        ),
        last_generated,
        m.encode(),
        "InvalidEncoding",
    );
    let mut m = generated_model.clone();
    let current_last_resort = m.pq_current_last_resort.unwrap();
    m.pq.get_mut(&current_last_resort).unwrap().superseded = Some(STORE_T0 + 7 * DAY);
    add(
        "store_current_last_resort_superseded",
        format!(
            "the generated device with its current last-resort post-quantum prekey \
             {current_last_resort} given a supersession time"
        ),
        last_generated,
        m.encode(),
        "InvalidEncoding",
    );
    let mut m = generated_model.clone();
    let (&pq_one_time, _) =
        m.pq.iter()
            .find(|(_, k)| k.kind == PqKind::OneTime)
            .unwrap();
    m.pq.get_mut(&pq_one_time).unwrap().created = STORE_T0;
    add(
        "store_pq_one_time_created",
        format!(
            "the generated device with its one-time post-quantum prekey {pq_one_time} given a \
             creation time: one-time keys carry none (0)"
        ),
        last_generated,
        m.encode(),
        "InvalidEncoding",
    );
    // The published flag of the first one-time prekey (by id): 2.
    let (&first, _) = generated_model.one_time.iter().next().unwrap();
    let key_at = generated
        .windows(10)
        .position(|w| w == cat(&[&[STORAGE_VERSION, 0x23], &first.to_be_bytes()]))
        .unwrap();
    assert_eq!(
        generated[key_at - 1],
        u8::from(generated_model.one_time[&first].published)
    );
    add(
        "store_published_flag_2",
        format!(
            "the generated device with the published flag of one-time prekey {first} (offset {}) \
             set to 2: a flag is 0 or 1",
            key_at - 1
        ),
        last_generated,
        replace_at(generated, key_at - 1, &[0x02]),
        "InvalidEncoding",
    );
    let mut m = generated_model.clone();
    m.standby = None;
    let at = m.standby_at() + 1 + STORED_SIGNED_PREKEY_LENGTH;
    add(
        "store_absent_standby_not_zero",
        format!(
            "the generated device without its standby, the absent standby's creation time \
             (offset {at}..{}) not zero: an absent field is all zero",
            at + 8
        ),
        last_generated,
        replace_at(&m.encode(), at, &STORE_T0.to_be_bytes()),
        "InvalidEncoding",
    );
    let mut m = flood_model.clone();
    let standby_id = m.standby.as_ref().unwrap().id;
    let current = m.current;
    m.standby.as_mut().unwrap().id = current;
    add(
        "store_standby_id_is_current_id",
        format!(
            "the last flood device with the standby's id {standby_id} replaced by the current signed \
             prekey's id {current} (the signature does not cover the id): a standby id must differ \
             from every accepted one"
        ),
        last_flood,
        m.encode(),
        "InvalidEncoding",
    );
    let mut m = flood_model.clone();
    let (&first, &entry) = m.one_time.iter().next().unwrap();
    m.one_time.remove(&first);
    m.one_time.insert(0, entry);
    add(
        "store_one_time_prekey_id_zero",
        format!(
            "the last flood device with its first one-time prekey's id {first} replaced by 0 (still \
             the first by id): 0 is never an id"
        ),
        last_flood,
        m.encode(),
        "InvalidEncoding",
    );
    let mut m = flood_model.clone();
    let highest = m
        .one_time
        .values()
        .map(|k| k.sequence)
        .chain(m.pq.values().map(|k| k.sequence))
        .max()
        .unwrap();
    m.next_sequence = highest;
    add(
        "store_sequence_not_below_next",
        format!(
            "the last flood device with the next sequence number (offset {DEVICE_NEXT_SEQUENCE_AT}..{}) \
             set to {highest}, the sequence number a held key carries: every sequence number must be \
             below it",
            DEVICE_NEXT_SEQUENCE_AT + 8
        ),
        last_flood,
        m.encode(),
        "InvalidEncoding",
    );
    let mut m = flood_model.clone();
    let sequences: Vec<u64> = m.one_time.values().map(|k| k.sequence).collect();
    assert!(sequences.len() >= 2);
    let second = *m.one_time.keys().nth(1).unwrap();
    m.one_time.get_mut(&second).unwrap().sequence = sequences[0];
    add(
        "store_duplicate_sequence",
        format!(
            "the last flood device with its second one-time prekey's sequence number set to the \
             first one's ({}): sequence numbers are distinct",
            sequences[0]
        ),
        last_flood,
        m.encode(),
        "InvalidEncoding",
    );
    // Two replay records of one signed prekey, swapped: no longer increasing.
    let (spk, entry) = flood_model
        .signed
        .iter()
        .find(|(_, e)| e.records.len() >= 2)
        .unwrap();
    let records: Vec<[u8; 32]> = entry.records.iter().copied().collect();
    let at = flood.windows(32).position(|w| w == records[0]).unwrap();
    assert_eq!(&flood[at + 32..at + 64], &records[1]);
    let swapped = replace_at(&replace_at(flood, at, &records[1]), at + 32, &records[0]);
    add(
        "store_replay_records_not_increasing",
        format!(
            "the last flood device with the first two replay records of signed prekey {spk} (offsets \
             {at} and {}) swapped: records are strictly increasing",
            at + 32
        ),
        last_flood,
        swapped,
        "InvalidEncoding",
    );
    let small_order: [u8; 32] = unhex(SMALL_ORDER_U[1].1);
    add(
        "store_replay_record_small_order",
        format!(
            "the last flood device with the first replay record of signed prekey {spk} (offset {at}) \
             replaced by u = 1 (SPEC.md 2.2)"
        ),
        last_flood,
        replace_at(flood, at, &small_order),
        "InvalidPublicKey",
    );
    cases
}

/// Every vector file this build can produce, `(file name in tests/vectors/, contents)`,
/// after checking each against the library and the independent model (a disagreement
/// panics: nothing is returned that the two do not agree on).
pub(crate) fn generate() -> Vec<(String, String)> {
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut models: Vec<(&Scenario, Model)> = Vec::new();
    check_plaintext_lengths();

    for s in SCENARIOS.iter().filter(|s| supported(s)) {
        let model = Model::run(s);
        let (world, snapshots) = run_library(s);
        // The whole session state, as stored (SPEC.md §7.1), after setup and every event:
        // root, chain and header keys, counters, skipped keys and their header keys.
        assert_eq!(snapshots.len(), model.snapshots.len());
        for (k, ((p, library), (q, independent))) in
            snapshots.iter().zip(&model.snapshots).enumerate()
        {
            assert_eq!(p, q);
            assert_same(
                &format!(
                    "{}: {}'s stored session after {}",
                    s.file,
                    p.name(),
                    if k == 0 {
                        "setup".to_owned()
                    } else {
                        format!("event {}", k - 1)
                    }
                ),
                independent,
                library,
            );
        }
        // The independent recomputation must agree with the library byte for byte.
        assert_same(&format!("{}: bundle", s.file), &model.bundle, &world.bundle);
        if let Some(pq) = &model.pq {
            assert_same(
                &format!("{}: prekey store", s.file),
                &pq.store,
                &world.store_bytes,
            );
            assert_same(
                &format!("{}: prekey store after accept", s.file),
                &pq.store_after_accept,
                &world.store_after_accept,
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
    // Plain rejection cases: the in-order base, and skipped keys of the out-of-order one.
    let reject = {
        let (s, m) = by_file("x3dh_ratchet_v2.json").unwrap();
        let (o, mo) = by_file("x3dh_ratchet_no_opk_v2.json").unwrap();
        let mut cases = reject_cases(s, m);
        cases.extend(skipped_reject_cases(o, mo));
        for case in &cases {
            let base = if case.base_vector == s.file { s } else { o };
            let got = run_reject(base, case, &hex_decode(&case.input));
            assert_eq!(
                got, case.expected_error,
                "reject case {}: library returned {got}",
                case.name
            );
        }
        cases
    };
    let pq_reject = match (
        by_file("pqxdh_ratchet_v2.json"),
        by_file("pqxdh_last_resort_v2.json"),
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
    // Header-encrypted rejection cases (X3DH base; PQXDH base with the pqxdh feature).
    let he_reject = {
        let x = by_file("x3dh_he_v2.json").unwrap();
        let plain = by_file("x3dh_ratchet_v2.json").unwrap();
        let pq = by_file("pqxdh_he_v2.json");
        let cases = he_reject_cases(x, pq, plain);
        for case in &cases {
            let base = [Some(x), Some(plain), pq]
                .into_iter()
                .flatten()
                .find(|(s, _)| s.file == case.base_vector)
                .unwrap()
                .0;
            let got = run_reject(base, case, &hex_decode(&case.input));
            assert_eq!(
                got, case.expected_error,
                "reject case {}: library returned {got}",
                case.name
            );
        }
        // Without PQXDH the file would lack its type 0x06 cases: checked, not written.
        pq.is_some().then_some(cases)
    };
    let reject_file = RejectFile {
        comment: vec![
            "Inputs that an implementation of SPEC.md protocol profile v2 must reject, with the error \
             (the crate's Error variant, Debug form) it must reject them with."
                .into(),
            format!(
                "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); \
                 each case was checked against the library before writing; do not edit by hand."
            ),
            "Each case: replay the base vector's setup and its first after_events events, then apply \
             operation to input. initiate: Alice (identity from the base vector's alice seed) parses \
             the input as a bundle and calls Session::initiate. respond: Bob calls Session::respond \
             with the prekeys he still holds; afterwards then_decrypts (if not null) names the genuine \
             base message Bob must then still accept with Session::respond. decrypt: party's session \
             decrypts input; afterwards then_decrypts (if not null) names the genuine base message \
             that must still decrypt (a failed call changes nothing, SPEC.md 4.7)."
                .into(),
            "Some inputs re-encrypt a message's body under its genuine message key with its genuine \
             AAD (AES-256-GCM-SIV, zero nonce) over an encoded plaintext that does not decode \
             (SPEC.md 4.9: no 0x80 end marker after the zero padding is stripped): the tag verifies, \
             and only decoding makes them fail."
                .into(),
            "Byte strings are lowercase hex. tests/vectors.rs checks this file.".into(),
        ],
        kind: "reject",
        provenance: provenance(),
        cases: reject,
    };
    eprintln!(
        "reject_v2.json: {} cases agree with the library",
        reject_file.cases.len()
    );
    outputs.push(("reject_v2.json".into(), to_json(&reject_file)));
    if let Some(cases) = pq_reject {
        let file = RejectFile {
            comment: vec![
                "PQXDH inputs (SPEC.md 3.6, 5.3 type 0x03, 5.4 type 0x11) that an implementation of SPEC.md \
                 protocol profile v2 must reject, with the error (the crate's Error variant, Debug form) it \
                 must reject them with."
                    .into(),
                format!(
                    "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); \
                     each case was checked against the library before writing; do not edit by hand."
                ),
                "Each case: replay the base vector's setup (including Bob's prekey store) and its first \
                 after_events events, then apply operation to input. initiate: Alice (identity from the base \
                 vector's alice seed) parses the input as a bundle and calls Session::initiate. accept: Bob's \
                 prekey store (LocalDevice::accept) accepts input; afterwards then_decrypts (if not null) \
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
            "reject_pqxdh_v2.json: {} cases agree with the library",
            file.cases.len()
        );
        outputs.push(("reject_pqxdh_v2.json".into(), to_json(&file)));
    }

    if let Some(cases) = he_reject {
        let file = RejectFile {
            comment: vec![
                "Header-encrypted inputs (SPEC.md 4.8, 5.3 types 0x04, 0x05, 0x06) that an implementation of SPEC.md \
                 protocol profile v2 must reject, with the error (the crate's Error variant, Debug form) it must \
                 reject them with."
                    .into(),
                format!(
                    "Produced on {DATE} by examples/generate_vectors.rs (cargo run --example generate_vectors); \
                     each case was checked against the library before writing; do not edit by hand."
                ),
                "Each case: replay the base vector's setup (header-encrypted bases: Alice initiates with \
                 SessionOptions::new().header_encryption(); PQXDH bases: Bob's prekey store as in that file) and \
                 its first after_events events, then apply operation to input. respond: Bob calls \
                 Session::respond with the prekeys he still holds. accept: Bob's prekey store calls \
                 LocalDevice::accept. decrypt: party's session decrypts input. Every case names in then_decrypts \
                 the genuine base message that must still be accepted (respond, accept) or decrypt (decrypt) \
                 afterwards: a failed call changes nothing (SPEC.md 4.7)."
                    .into(),
                "Some inputs re-seal a header under its genuine header key and nonce (and re-encrypt the body \
                 under the genuine message key with AAD = AD || the new prefix), so that only the altered \
                 header field or associated data makes them fail. Byte strings are lowercase hex. \
                 tests/vectors.rs checks this file."
                    .into(),
            ],
            kind: "reject",
            provenance: provenance_he(true),
            cases,
        };
        eprintln!(
            "reject_he_v2.json: {} cases agree with the library",
            file.cases.len()
        );
        outputs.push(("reject_he_v2.json".into(), to_json(&file)));
    } else {
        eprintln!(
            "built without the pqxdh feature: reject_he_v2.json is neither written nor checked"
        );
    }

    // The plaintext encoding; its longest-message check needs a PQXDH session.
    match by_file("pqxdh_he_v2.json") {
        Some(_) => {
            let file = padding_file(&models);
            eprintln!(
                "padding_v2.json: {} lengths, {} encode and {} decode examples agree with the library",
                file.lengths.len(),
                file.encode_examples.len(),
                file.decode_examples.len()
            );
            outputs.push(("padding_v2.json".into(), to_json(&file)));
        }
        _ => eprintln!(
            "built without the pqxdh feature: padding_v2.json is neither written nor checked"
        ),
    }

    // The prekey store (profile v2 part 2); its store holds post-quantum prekeys.
    #[cfg(feature = "pqxdh")]
    {
        let file = prekey_store_file();
        eprintln!(
            "prekey_store_v2.json: {} generated steps, {} flood steps, {} load rejects agree with \
             the library",
            file.generated.steps.len(),
            file.flood.steps.len(),
            file.load_rejects.len()
        );
        outputs.push(("prekey_store_v2.json".into(), to_json(&file)));
    }
    #[cfg(not(feature = "pqxdh"))]
    eprintln!(
        "built without the pqxdh feature: prekey_store_v2.json is neither written nor checked"
    );
    outputs.push(records::generate());
    outputs.push(device_lists::generate());
    outputs.push(groups::generate());

    outputs
}

/// The main crate's version, from its manifest (this tool is a package of its own, so
/// `CARGO_PKG_VERSION` is not the library's).
fn library_version() -> &'static str {
    const MANIFEST: &str = include_str!("../../../Cargo.toml");
    let package = MANIFEST
        .split("\n[package]\n")
        .nth(1)
        .expect("the main crate's manifest has a [package] table");
    package
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the [package] table has a version")
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    text
}
