//! Golden files of the storage format: one file per persisted type at the current format
//! version (profile v2: storage, bundle and wire version `0x02`), in `tests/golden/` (see
//! its README.md).
//!
//! `golden_files` loads each file, checks that it re-encodes byte for byte, that the
//! objects fit together (the bundle and prekeys belong to the stored identity, both
//! sessions are the same session), and that each stored session still decrypts the
//! message stored next to it to the expected plaintext. A change to the storage format
//! that breaks these files needs a new format version, not new files.
//!
//! `header_encrypted_golden_files` does the same for the header-encrypted session (type
//! `0x28`, flags `0x02`) and its sealed form; `post_quantum_golden_files` (with the `pqxdh`
//! feature) for the PQXDH sessions (type `0x25`, and type `0x28` with flags `0x03`), the
//! post-quantum prekey (`0x26`), the prekey store with post-quantum keys and replay records
//! (`0x27`) and the PQXDH bundle (`0x11`); `padding_none_golden_files` for sessions whose
//! padding policy is `Padding::None` (stored padding byte `0x00`; every other stored
//! session has the default, Padmé, `0x01`).
//!
//! The files are generated deterministically from seeded RNGs by `generate` below. They are
//! written only when `DOUBLERATCHET_REGENERATE_GOLDEN=1` is set:
//!
//! ```text
//! DOUBLERATCHET_REGENERATE_GOLDEN=1 cargo test -j2 --test golden
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::path::PathBuf;
use std::sync::Once;

use doubleratchet::{
    Error, IdentityKeyPair, Message, OneTimePreKey, Padding, PreKeyBundle, PreKeyStore, Role,
    Session, SessionOptions, SignedPreKey, StorageKey, BUNDLE_LENGTH, BUNDLE_VERSION,
    PADME_MINIMUM, STORAGE_VERSION, WIRE_VERSION,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind, PQ_BUNDLE_LENGTH};
use rand_chacha::ChaCha20Rng;
use support::{load, ratchet_view, rng, stored};

/// The environment variable that makes the tests rewrite the files first (`prepare`).
const REGENERATE: &str = "DOUBLERATCHET_REGENERATE_GOLDEN";
/// Seed of the RNG that generates every key, session and message of the first generation
/// (`FILES`).
const SEED: u64 = 0x0060_1de7;
/// Seed of the RNG that draws the sealing nonce.
const SEAL_SEED: u64 = 0x5ea1;
/// Seed of the RNG of the header-encrypted files (keys, sessions, header nonces).
const HE_SEED: u64 = 0x0060_1de8;
/// Seed of the RNG that draws the sealing nonce of `he_sealed_session.bin` (not
/// `SEAL_SEED`: one nonce is never used twice under the fixed storage key).
const HE_SEAL_SEED: u64 = 0x5ea2;
/// Seed of the RNG of the post-quantum files.
#[cfg(feature = "pqxdh")]
const PQ_SEED: u64 = 0x0060_1de9;
/// Seed of the RNG of the files of sessions without padding (`PADDING_NONE_FILES`).
const PADDING_NONE_SEED: u64 = 0x0060_1dea;

/// The format version every golden file is at: storage (SPEC.md §7), bundle (§5.4) and
/// wire (§5.2-§5.3) version `0x02` of profile v2. (The v1 files were dropped with v1,
/// which was never released.)
const FORMAT_VERSION: u8 = 0x02;

/// A stored session's layout (SPEC.md §7.1) up to its padding byte: version, type, role,
/// the identities and `EK_A` (3 x 32), the pending flag and prekey ids (1 + 4 + 1 + 4), the
/// limits (4 + 4). Type `0x28` has a flags byte after the role, and a PQXDH session
/// awaiting its reply the post-quantum prekey id and KEM ciphertext (4 + 1088) before the
/// limits.
const PADDING_OFFSET: usize = 3 + 3 * 32 + 10 + 8;
/// The stored padding byte of each policy.
const PADDING_NONE_BYTE: u8 = 0x00;
const PADDING_PADME_BYTE: u8 = 0x01;
/// Length of the AEAD tag after every message body.
const TAG: usize = 16;
/// Every golden plaintext is shorter than 64 bytes, so Padmé (the default policy) pads it
/// to the 64-byte minimum (SPEC.md §4.9): every such body is 64 + 16 bytes on the wire.
const PADME_BODY: usize = 64 + TAG;
/// The fixed storage key of `sealed_session.bin`: bytes 0x00, 0x01, ..., 0x1f.
fn storage_key() -> StorageKey {
    StorageKey::from_bytes(core::array::from_fn(|i| i as u8))
}

/// The plaintext of `session_initiator.next_message.bin` (Bob's first reply).
const INITIATOR_NEXT: &[u8] = b"golden: bob's first reply";
/// The plaintext of `session_responder_with_skipped.next_message.bin` (Alice's message
/// a1-0, whose key the stored responder session holds as a skipped key).
const RESPONDER_NEXT: &[u8] = b"golden: a1-0";
/// Skipped keys held by the stored responder session.
const RESPONDER_SKIPPED: usize = 6;

/// The plaintext of `he_session_responder_with_skipped.next_message.bin` (Alice's message
/// a1-0, in a chain that is no longer Bob's receiving chain).
const HE_NEXT: &[u8] = b"golden he: a1-0";
/// The plaintext of `he_sealed_session.next_message.bin` (Alice's initial message a0-0).
const HE_SEALED_NEXT: &[u8] = b"golden he: a0-0";
/// Skipped keys held by the stored header-encrypted responder session: a0-0, a0-2, a0-3,
/// a1-0, a1-1, a2-0 ...
const HE_SKIPPED: usize = 6;
/// ... from three chains, each with its header key stored.
const HE_HEADER_KEYS: usize = 3;

/// The plaintext of `padding_none_session_initiator.next_message.bin` (Bob's first reply,
/// sent without padding).
const PADDING_NONE_INITIATOR_NEXT: &[u8] = b"golden padding none: bob's first reply";
/// The plaintext of `padding_none_session_responder_with_skipped.next_message.bin` (Alice's
/// initial message a0-0, sent without padding, whose key the stored responder holds).
const PADDING_NONE_RESPONDER_NEXT: &[u8] = b"golden padding none: a0-0";

/// The plaintext of `pq_session_initiator.next_message.bin`.
#[cfg(feature = "pqxdh")]
const PQ_INITIATOR_NEXT: &[u8] = b"golden pq: bob's first reply";
/// The plaintext of `pq_session_responder.next_message.bin` (Alice's initial message a0-0,
/// whose key the stored responder session holds).
#[cfg(feature = "pqxdh")]
const PQ_RESPONDER_NEXT: &[u8] = b"golden pq: a0-0";
/// Skipped keys held by the stored PQXDH responder session (a0-0, a0-1).
#[cfg(feature = "pqxdh")]
const PQ_RESPONDER_SKIPPED: usize = 2;
/// The plaintext of `he_pq_session_initiator_with_skipped.next_message.bin` (Bob's message
/// b0-1, in a chain that is no longer Alice's receiving chain).
#[cfg(feature = "pqxdh")]
const HE_PQ_NEXT: &[u8] = b"golden pq he: b0-1";
/// Skipped keys held by the stored header-encrypted PQXDH initiator session: b0-0, b0-1,
/// b1-0, from two chains.
#[cfg(feature = "pqxdh")]
const HE_PQ_SKIPPED: usize = 3;
#[cfg(feature = "pqxdh")]
const HE_PQ_HEADER_KEYS: usize = 2;

const FILES: [&str; 12] = [
    "session_initiator.bin",
    "session_initiator.next_message.bin",
    "session_responder_with_skipped.bin",
    "session_responder_with_skipped.next_message.bin",
    "identity.bin",
    "signed_prekey.bin",
    "one_time_prekey.bin",
    "prekey_store.bin",
    "bundle.bin",
    "sealed_session.bin",
    "sealed_session.next_message.bin",
    "alice_identity.bin",
];

/// The header-encrypted files, generated without post-quantum keys.
const HE_FILES: [&str; 4] = [
    "he_session_responder_with_skipped.bin",
    "he_session_responder_with_skipped.next_message.bin",
    "he_sealed_session.bin",
    "he_sealed_session.next_message.bin",
];

/// The post-quantum files (the `pqxdh` feature).
#[cfg(feature = "pqxdh")]
const PQ_FILES: [&str; 11] = [
    "pq_prekey.bin",
    "pq_bundle.bin",
    "pq_session_initiator.bin",
    "pq_session_initiator.next_message.bin",
    "pq_session_responder.bin",
    "pq_session_responder.next_message.bin",
    "he_pq_session_initiator_with_skipped.bin",
    "he_pq_session_initiator_with_skipped.next_message.bin",
    "pq_prekey_store.bin",
    "pq_prekey_store.replayed_message.bin",
    "pq_prekey_store.next_message.bin",
];

/// The files of sessions whose padding policy is `Padding::None` (stored byte `0x00`).
const PADDING_NONE_FILES: [&str; 4] = [
    "padding_none_session_initiator.bin",
    "padding_none_session_initiator.next_message.bin",
    "padding_none_session_responder_with_skipped.bin",
    "padding_none_session_responder_with_skipped.next_message.bin",
];

/// Every file `generate` writes, in its order.
fn all_files() -> Vec<&'static str> {
    let mut files = FILES.to_vec();
    files.extend(HE_FILES);
    files.extend(PADDING_NONE_FILES);
    #[cfg(feature = "pqxdh")]
    files.extend(PQ_FILES);
    files
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn read(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every golden file's content, from seeded RNGs only. Each group of files draws from its
/// own RNG, so adding a group never changes the bytes of another.
fn generate() -> Vec<(&'static str, Vec<u8>)> {
    let (alice, bob, mut files) = generate_classical();
    files.extend(generate_header_encrypted(&alice, &bob));
    files.extend(generate_padding_none(&alice, &bob));
    #[cfg(feature = "pqxdh")]
    files.extend(generate_post_quantum(&alice, &bob));
    files
}

/// `count` messages from `session`, with plaintexts `{prefix}{i}`.
fn send(session: &mut Session, prefix: &str, count: usize, rng: &mut ChaCha20Rng) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            session
                .encrypt(format!("{prefix}{i}").as_bytes(), rng)
                .unwrap()
        })
        .collect()
}

/// The files of `FILES` (the first generation of golden files; its draws must never
/// change), and the two identities, which the later groups reuse.
fn generate_classical() -> (
    IdentityKeyPair,
    IdentityKeyPair,
    Vec<(&'static str, Vec<u8>)>,
) {
    let mut rng = rng(SEED);
    let alice = IdentityKeyPair::generate(&mut rng).unwrap();
    let bob = IdentityKeyPair::generate(&mut rng).unwrap();
    let mut store = PreKeyStore::new(&bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(5, &mut rng).unwrap();
    let bundle = store.bundle(&bob, Some(2)).unwrap();
    // Stand-alone prekeys, signed by Bob's identity.
    let signed_prekey = SignedPreKey::generate(&bob, 7, &mut rng).unwrap();
    let one_time_prekey = OneTimePreKey::generate(42, &mut rng).unwrap();

    // Alice's fresh session, stored before she sends anything.
    let mut a = Session::initiate(&alice, &bundle, &mut rng).unwrap();
    let session_initiator = stored(&a);
    // Alice's first chain: five initial messages; Bob accepts the fourth.
    let a0: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            a.encrypt(format!("golden: a0-{i}").as_bytes(), &mut rng)
                .unwrap()
        })
        .collect();
    let mut b = store.accept(&bob, &a0[3]).unwrap().session;
    store.rotate_signed_prekey(&bob, &mut rng).unwrap();
    // Bob's first reply, which Alice's fresh stored session can decrypt.
    let reply = b.encrypt(INITIATOR_NEXT, &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), INITIATOR_NEXT);
    // Alice's second chain; Bob receives only a1-2, keeping the keys of a0-0, a0-1, a0-2,
    // a0-4, a1-0 and a1-1.
    let a1: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            a.encrypt(format!("golden: a1-{i}").as_bytes(), &mut rng)
                .unwrap()
        })
        .collect();
    assert_eq!(b.decrypt(&a1[2]).unwrap(), b"golden: a1-2");
    assert_eq!(b.stored_skipped_keys(), RESPONDER_SKIPPED);
    let sealed = storage_key().seal(&b, &mut rng_for_seal()).unwrap();

    let files = vec![
        ("session_initiator.bin", session_initiator),
        ("session_initiator.next_message.bin", reply),
        ("session_responder_with_skipped.bin", stored(&b)),
        (
            "session_responder_with_skipped.next_message.bin",
            a1[0].clone(),
        ),
        ("identity.bin", bob.to_bytes().to_vec()),
        ("signed_prekey.bin", signed_prekey.to_bytes().to_vec()),
        ("one_time_prekey.bin", one_time_prekey.to_bytes().to_vec()),
        ("prekey_store.bin", store.to_bytes().to_vec()),
        ("bundle.bin", bundle.to_bytes()),
        ("sealed_session.bin", sealed),
        ("sealed_session.next_message.bin", a1[1].clone()),
        ("alice_identity.bin", alice.to_bytes().to_vec()),
    ];
    (alice, bob, files)
}

fn rng_for_seal() -> ChaCha20Rng {
    rng(SEAL_SEED)
}

fn rng_for_he_seal() -> ChaCha20Rng {
    rng(HE_SEAL_SEED)
}

/// The files of `HE_FILES`: Bob's header-encrypted session (classical X3DH) holding
/// skipped keys of three of Alice's chains, and the same session sealed.
fn generate_header_encrypted(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(HE_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    let bundle = store.bundle(bob, Some(1)).unwrap();
    let options = SessionOptions::new().header_encryption();
    let mut a = Session::initiate_with(alice, &bundle, &options, &mut rng).unwrap();
    // Alice's first chain: four initial messages; Bob accepts a0-1 (keeping a0-0's key).
    let a0 = send(&mut a, "golden he: a0-", 4, &mut rng);
    let mut b = store.accept(bob, &a0[1]).unwrap().session;
    let reply = b.encrypt(b"golden he: b0-0", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"golden he: b0-0");
    // Alice's second chain: Bob receives only a1-2, keeping a0-2, a0-3 (end of the first
    // chain), a1-0 and a1-1.
    let a1 = send(&mut a, "golden he: a1-", 3, &mut rng);
    assert_eq!(b.decrypt(&a1[2]).unwrap(), b"golden he: a1-2");
    let reply = b.encrypt(b"golden he: b1-0", &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"golden he: b1-0");
    // Alice's third chain: Bob receives a2-1, keeping a2-0.
    let a2 = send(&mut a, "golden he: a2-", 2, &mut rng);
    assert_eq!(b.decrypt(&a2[1]).unwrap(), b"golden he: a2-1");
    assert_eq!(b.stored_skipped_keys(), HE_SKIPPED);
    assert_eq!(
        ratchet_view(&stored(&b)).header_key_chains.len(),
        HE_HEADER_KEYS
    );
    let sealed = storage_key().seal(&b, &mut rng_for_he_seal()).unwrap();
    vec![
        ("he_session_responder_with_skipped.bin", stored(&b)),
        (
            "he_session_responder_with_skipped.next_message.bin",
            a1[0].clone(),
        ),
        ("he_sealed_session.bin", sealed),
        ("he_sealed_session.next_message.bin", a0[0].clone()),
    ]
}

/// The files of `PADDING_NONE_FILES`: Alice's and Bob's sessions (classical X3DH) with the
/// padding policy `Padding::None`, and messages they sent without padding.
fn generate_padding_none(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(PADDING_NONE_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    store.generate_one_time_prekeys(1, &mut rng).unwrap();
    let bundle = store.bundle(bob, Some(1)).unwrap();
    let options = SessionOptions::new().padding(Padding::None);
    // Alice's fresh session, stored before she sends anything.
    let mut a = Session::initiate_with(alice, &bundle, &options, &mut rng).unwrap();
    assert_eq!(a.padding(), Padding::None);
    let initiator = stored(&a);
    // Two initial messages; Bob accepts a0-1 (keeping a0-0's key), also without padding.
    let a0 = send(&mut a, "golden padding none: a0-", 2, &mut rng);
    let mut b = store.accept_with(bob, &a0[1], &options).unwrap().session;
    assert_eq!(b.padding(), Padding::None);
    assert_eq!(b.stored_skipped_keys(), 1);
    // Bob's first reply, which Alice's fresh stored session can decrypt.
    let reply = b.encrypt(PADDING_NONE_INITIATOR_NEXT, &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), PADDING_NONE_INITIATOR_NEXT);
    vec![
        ("padding_none_session_initiator.bin", initiator),
        ("padding_none_session_initiator.next_message.bin", reply),
        (
            "padding_none_session_responder_with_skipped.bin",
            stored(&b),
        ),
        (
            "padding_none_session_responder_with_skipped.next_message.bin",
            a0[0].clone(),
        ),
    ]
}

/// The files of `PQ_FILES`, all from one prekey store of Bob's with post-quantum keys.
#[cfg(feature = "pqxdh")]
fn generate_post_quantum(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(PQ_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    // One-time prekeys 1..=3; one-time post-quantum prekeys 1, 2 and the last-resort 3.
    store.generate_one_time_prekeys(3, &mut rng).unwrap();
    store
        .generate_pq_one_time_prekeys(bob, 2, &mut rng)
        .unwrap();
    assert_eq!(
        store.rotate_pq_last_resort_prekey(bob, &mut rng).unwrap(),
        3
    );
    // A stand-alone post-quantum prekey, signed by Bob's identity.
    let pq_prekey = PqPreKey::generate(bob, 9, PqPreKeyKind::LastResort, &mut rng).unwrap();
    let bundle = store.pq_bundle(bob, Some(1), Some(1)).unwrap();

    // Alice's fresh PQXDH session, stored before she sends anything; Bob accepts a0-2.
    let mut a = Session::initiate(alice, &bundle, &mut rng).unwrap();
    let pq_initiator = stored(&a);
    let a0 = send(&mut a, "golden pq: a0-", 3, &mut rng);
    let mut b = store.accept(bob, &a0[2]).unwrap().session;
    let reply = b.encrypt(PQ_INITIATOR_NEXT, &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), PQ_INITIATOR_NEXT);
    assert_eq!(b.stored_skipped_keys(), PQ_RESPONDER_SKIPPED);

    // A header-encrypted PQXDH session from the last-resort bundle (no one-time prekey of
    // either kind: the store keeps a replay record naming the last-resort key).
    let last_resort = store.pq_bundle(bob, None, None).unwrap();
    let options = SessionOptions::new().header_encryption();
    let mut he_a = Session::initiate_with(alice, &last_resort, &options, &mut rng).unwrap();
    let he_first = he_a.encrypt(b"golden pq he: a0-0", &mut rng).unwrap();
    let mut he_b = store.accept(bob, &he_first).unwrap().session;
    // Bob's first chain: Alice receives b0-2, keeping b0-0 and b0-1; she replies.
    let b0 = send(&mut he_b, "golden pq he: b0-", 3, &mut rng);
    assert_eq!(he_a.decrypt(&b0[2]).unwrap(), b"golden pq he: b0-2");
    let m = he_a.encrypt(b"golden pq he: a1-0", &mut rng).unwrap();
    assert_eq!(he_b.decrypt(&m).unwrap(), b"golden pq he: a1-0");
    // Bob's second chain: Alice receives b1-1, keeping b1-0.
    let b1 = send(&mut he_b, "golden pq he: b1-", 2, &mut rng);
    assert_eq!(he_a.decrypt(&b1[1]).unwrap(), b"golden pq he: b1-1");
    assert_eq!(he_a.stored_skipped_keys(), HE_PQ_SKIPPED);

    // A classical session from a bundle without a one-time prekey: a second replay record,
    // naming no post-quantum key.
    let classical = store.bundle(bob, None).unwrap();
    let mut c = Session::initiate(alice, &classical, &mut rng).unwrap();
    let m = c.encrypt(b"golden pq: classical", &mut rng).unwrap();
    store.accept(bob, &m).unwrap();
    assert_eq!(store.replay_records(), 2);

    // The initial message of a session from the remaining one-time keys, which the stored
    // store accepts (its keys are the ones published).
    let remaining = store.pq_bundle(bob, Some(2), Some(2)).unwrap();
    let mut next = Session::initiate(alice, &remaining, &mut rng).unwrap();
    let next_message = next.encrypt(b"golden pq: next session", &mut rng).unwrap();

    vec![
        ("pq_prekey.bin", pq_prekey.to_bytes().to_vec()),
        ("pq_bundle.bin", bundle.to_bytes()),
        ("pq_session_initiator.bin", pq_initiator),
        ("pq_session_initiator.next_message.bin", reply),
        ("pq_session_responder.bin", stored(&b)),
        ("pq_session_responder.next_message.bin", a0[0].clone()),
        ("he_pq_session_initiator_with_skipped.bin", stored(&he_a)),
        (
            "he_pq_session_initiator_with_skipped.next_message.bin",
            b0[1].clone(),
        ),
        ("pq_prekey_store.bin", store.to_bytes().to_vec()),
        ("pq_prekey_store.replayed_message.bin", he_first),
        ("pq_prekey_store.next_message.bin", next_message),
    ]
}

fn regenerate() {
    let dir = golden_dir();
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in generate() {
        if fs::read(dir.join(name)).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, &bytes).unwrap();
        fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// Regenerates the files once per test run if asked to, before any test reads them.
fn prepare() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var(REGENERATE).as_deref() == Ok("1") {
            regenerate();
        }
    });
}

/// The version byte a golden file starts with: its format family's (SPEC.md §5.1).
fn family_version(name: &str) -> u8 {
    if name.ends_with("_message.bin") {
        WIRE_VERSION
    } else if name.contains("bundle") {
        BUNDLE_VERSION
    } else {
        STORAGE_VERSION
    }
}

/// Reads the files of a group and checks that they are at the current format version,
/// which is the one the files pin.
fn check_versions(names: &[&str]) {
    prepare();
    assert_eq!(
        [STORAGE_VERSION, BUNDLE_VERSION, WIRE_VERSION],
        [FORMAT_VERSION; 3],
        "the golden files pin version 0x02 of storage, bundles and messages"
    );
    for name in names {
        let bytes = read(name);
        assert_eq!(
            bytes[0],
            family_version(name),
            "{name}: not at the current format version"
        );
        assert_eq!(bytes[0], FORMAT_VERSION, "{name}");
    }
}

/// Checks that `bytes` parse as a message that encodes back to the same bytes, of type
/// `kind`.
fn check_message(name: &str, bytes: &[u8], kind: u8) {
    assert_eq!(bytes[1], kind, "{name}: message type");
    assert_eq!(Message::parse(bytes).unwrap().to_bytes(), bytes, "{name}");
}

/// Checks that the message's body (encoded plaintext and tag, SPEC.md §4.9) is `body`
/// bytes long.
fn check_body(name: &str, bytes: &[u8], body: usize) {
    assert_eq!(
        Message::parse(bytes).unwrap().ciphertext_len(),
        body,
        "{name}: body length"
    );
}

/// The offset of a stored session's padding byte (see `PADDING_OFFSET`).
fn padding_offset(bytes: &[u8]) -> usize {
    let (flags, post_quantum) = match bytes[1] {
        0x20 => (0, false),
        0x25 => (0, true),
        0x28 => (1, bytes[3] == 0x03),
        other => panic!("not a stored session: type {other:#04x}"),
    };
    let awaiting = bytes[3 + flags + 3 * 32] == 1;
    let pending_pq = if post_quantum && awaiting {
        4 + 1088
    } else {
        0
    };
    PADDING_OFFSET + flags + pending_pq
}

/// Checks a loaded session's padding policy against the byte stored for it.
fn check_padding(name: &str, bytes: &[u8], session: &Session, padding: Padding) {
    let byte = match padding {
        Padding::None => PADDING_NONE_BYTE,
        Padding::Padme => PADDING_PADME_BYTE,
        other => panic!("{name}: no stored byte known for {other:?}"),
    };
    assert_eq!(bytes[padding_offset(bytes)], byte, "{name}: padding byte");
    assert_eq!(session.padding(), padding, "{name}: padding policy");
}

#[test]
fn golden_files() {
    check_versions(&FILES);

    // Keys and the store: load and re-encode byte for byte.
    let identity_bytes = read("identity.bin");
    assert_eq!(identity_bytes.len(), 34);
    let bob = IdentityKeyPair::from_bytes(&identity_bytes).unwrap();
    assert_eq!(&bob.to_bytes()[..], &identity_bytes[..]);
    let alice_bytes = read("alice_identity.bin");
    let alice = IdentityKeyPair::from_bytes(&alice_bytes).unwrap();
    assert_eq!(&alice.to_bytes()[..], &alice_bytes[..]);

    let spk_bytes = read("signed_prekey.bin");
    assert_eq!(spk_bytes.len(), 102);
    let spk = SignedPreKey::from_bytes(&spk_bytes).unwrap();
    assert_eq!(&spk.to_bytes()[..], &spk_bytes[..]);
    assert_eq!(spk.id(), 7);

    let opk_bytes = read("one_time_prekey.bin");
    assert_eq!(opk_bytes.len(), 38);
    let opk = OneTimePreKey::from_bytes(&opk_bytes).unwrap();
    assert_eq!(&opk.to_bytes()[..], &opk_bytes[..]);
    assert_eq!(opk.id(), 42);
    // The stand-alone prekeys are signed by the stored identity.
    PreKeyBundle::new(&bob, &spk, Some(&opk)).verify().unwrap();

    let store_bytes = read("prekey_store.bin");
    let store = PreKeyStore::from_bytes(&store_bytes).unwrap();
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    assert_eq!(store.current_signed_prekey().unwrap().id(), 2);
    assert!(store.signed_prekey(1).is_some());
    let one_time: Vec<u32> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(
        one_time,
        [1, 3, 4, 5],
        "one-time prekey 2 was used by the session"
    );

    let bundle_bytes = read("bundle.bin");
    assert_eq!(bundle_bytes.len(), BUNDLE_LENGTH);
    let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();
    assert_eq!(bundle.to_bytes(), bundle_bytes);
    bundle.verify().unwrap();
    assert_eq!(bundle.identity_key(), bob.public_key());
    assert_eq!(bundle.signed_prekey_id(), 1);
    assert_eq!(bundle.one_time_prekey_id(), Some(2));

    // The fresh initiator (default padding, Padmé) decrypts Bob's first reply.
    let initiator_bytes = read("session_initiator.bin");
    assert_eq!(initiator_bytes.len(), 297);
    let mut initiator = load(&initiator_bytes);
    check_padding("initiator", &initiator_bytes, &initiator, Padding::Padme);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());
    let reply = read("session_initiator.next_message.bin");
    check_message("reply", &reply, 0x01);
    assert_eq!(PADME_MINIMUM, 64);
    check_body("reply", &reply, PADME_BODY);
    assert_eq!(initiator.decrypt(&reply).unwrap(), INITIATOR_NEXT);
    assert!(!initiator.awaiting_reply());
    assert_eq!(initiator.decrypt(&reply), Err(Error::DuplicateOrExpired));

    // The responder with skipped keys decrypts a1-0 with one of them.
    let responder_bytes = read("session_responder_with_skipped.bin");
    assert_eq!(responder_bytes.len(), 297 + 68 * RESPONDER_SKIPPED);
    let mut responder = load(&responder_bytes);
    check_padding("responder", &responder_bytes, &responder, Padding::Padme);
    assert_eq!(responder.role(), Role::Responder);
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.local_identity(), bob.public_key());
    assert_eq!(responder.remote_identity(), alice.public_key());
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED);
    let next = read("session_responder_with_skipped.next_message.bin");
    check_message("responder next message", &next, 0x01);
    check_body("responder next message", &next, PADME_BODY);
    assert_eq!(responder.decrypt(&next).unwrap(), RESPONDER_NEXT);
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED - 1);
    assert_eq!(responder.decrypt(&next), Err(Error::DuplicateOrExpired));

    // The sealed session is the responder session, sealed under the fixed key.
    let sealed = read("sealed_session.bin");
    assert_eq!(sealed.len(), 15 + responder_bytes.len() + 16);
    assert_eq!(sealed[..3], [FORMAT_VERSION, 0x30, 0x20]);
    let mut opened = storage_key().open::<Session>(&sealed).unwrap();
    assert_eq!(stored(&opened), responder_bytes);
    // Sealing is deterministic given the nonce RNG.
    assert_eq!(
        storage_key().seal(&opened, &mut rng_for_seal()).unwrap(),
        sealed
    );
    let next = read("sealed_session.next_message.bin");
    check_body("sealed next message", &next, PADME_BODY);
    assert_eq!(opened.decrypt(&next).unwrap(), b"golden: a1-1");
    assert_eq!(
        StorageKey::from_bytes([0; 32])
            .open::<Session>(&sealed)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

#[test]
fn header_encrypted_golden_files() {
    check_versions(&HE_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // Bob's header-encrypted session: type 0x28, flags 0x02 (X3DH, header encryption).
    let session_bytes = read("he_session_responder_with_skipped.bin");
    assert_eq!(session_bytes[1], 0x28);
    assert_eq!(session_bytes[3], 0x02);
    // SPEC.md §7.1: 432 bytes, 68 per skipped key, 64 per skipped-chain header key.
    assert_eq!(
        session_bytes.len(),
        432 + 68 * HE_SKIPPED + 64 * HE_HEADER_KEYS
    );
    let mut session = load(&session_bytes);
    check_padding("he session", &session_bytes, &session, Padding::Padme);
    assert!(session.is_header_encrypted());
    assert!(!session.is_post_quantum());
    assert_eq!(session.role(), Role::Responder);
    assert!(!session.awaiting_reply());
    assert_eq!(session.local_identity(), bob.public_key());
    assert_eq!(session.remote_identity(), alice.public_key());
    assert_eq!(session.stored_skipped_keys(), HE_SKIPPED);
    // Three chains of Alice's have keys: the first and second (ended), and the current one.
    let view = ratchet_view(&session_bytes);
    let mut chains: Vec<[u8; 32]> = view.skipped.iter().map(|(dh, _)| *dh).collect();
    chains.dedup();
    assert_eq!(view.header_key_chains, chains);
    let numbers: Vec<u32> = view.skipped.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 2, 3, 0, 1, 0]);

    // a1-0 is of the second chain: its header decrypts under that chain's stored header
    // key, its body with the stored message key.
    let next = read("he_session_responder_with_skipped.next_message.bin");
    check_message("he next message", &next, 0x04);
    check_body("he next message", &next, PADME_BODY);
    assert_eq!(session.decrypt(&next).unwrap(), HE_NEXT);
    assert_eq!(session.stored_skipped_keys(), HE_SKIPPED - 1);
    // The chain still has a key (a1-1), so its header key is kept: a replay is a duplicate.
    let before = stored(&session);
    assert_eq!(session.decrypt(&next), Err(Error::DuplicateOrExpired));
    assert_eq!(stored(&session), before);

    // The sealed session is the same session, sealed under the fixed key.
    let sealed = read("he_sealed_session.bin");
    assert_eq!(sealed.len(), 15 + session_bytes.len() + 16);
    assert_eq!(sealed[1], 0x30);
    assert_eq!(
        sealed[2], 0x20,
        "every session is sealed as object type 0x20"
    );
    let mut opened = storage_key().open::<Session>(&sealed).unwrap();
    assert_eq!(stored(&opened), session_bytes);
    assert_eq!(
        storage_key().seal(&opened, &mut rng_for_he_seal()).unwrap(),
        sealed
    );
    // a0-0, an initial message (type 0x05) of the first chain, kept since the session began.
    let next = read("he_sealed_session.next_message.bin");
    check_message("he sealed next message", &next, 0x05);
    check_body("he sealed next message", &next, PADME_BODY);
    assert_eq!(opened.decrypt(&next).unwrap(), HE_SEALED_NEXT);
    assert_eq!(opened.stored_skipped_keys(), HE_SKIPPED - 1);
    assert_eq!(
        StorageKey::from_bytes([0; 32])
            .open::<Session>(&sealed)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

#[test]
fn padding_none_golden_files() {
    check_versions(&PADDING_NONE_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();
    // Without padding a body is the plaintext, the 0x80 end marker and the tag.
    let unpadded = |plaintext: &[u8]| plaintext.len() + 1 + TAG;

    // Alice's fresh session with the policy Padding::None: type 0x20, 297 bytes, padding
    // byte 0x00.
    let initiator_bytes = read("padding_none_session_initiator.bin");
    assert_eq!(initiator_bytes.len(), 297);
    assert_eq!(initiator_bytes[1], 0x20);
    let initiator = load(&initiator_bytes);
    check_padding("initiator", &initiator_bytes, &initiator, Padding::None);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());

    // Its first message is a0-0, byte for byte (a fresh initiator's first send draws no
    // randomness), without padding; Bob's stored session holds its key.
    let a0 = read("padding_none_session_responder_with_skipped.next_message.bin");
    check_message("a0-0", &a0, 0x02);
    check_body("a0-0", &a0, unpadded(PADDING_NONE_RESPONDER_NEXT));
    let mut sender = load(&initiator_bytes);
    assert_eq!(
        sender
            .encrypt(PADDING_NONE_RESPONDER_NEXT, &mut rng(0))
            .unwrap(),
        a0
    );
    // The same session with the padding byte 0x01 is the same session with Padmé: the
    // same message padded to 64 bytes, and back to Padding::None the very same bytes.
    let padme_bytes = {
        let mut b = initiator_bytes.clone();
        b[PADDING_OFFSET] = PADDING_PADME_BYTE;
        b
    };
    let mut padme = load(&padme_bytes);
    check_padding("initiator as Padmé", &padme_bytes, &padme, Padding::Padme);
    let padded = padme
        .encrypt(PADDING_NONE_RESPONDER_NEXT, &mut rng(0))
        .unwrap();
    check_body("a0-0 padded", &padded, PADME_BODY);
    let framing = a0.len() - unpadded(PADDING_NONE_RESPONDER_NEXT);
    assert_eq!(
        padded[..framing],
        a0[..framing],
        "the same framing and header"
    );
    let mut back = load(&padme_bytes);
    back.set_padding(Padding::None);
    assert_eq!(stored(&back), initiator_bytes);

    // Bob's first reply, sent without padding, decrypts at the stored initiator.
    let mut initiator = initiator;
    let reply = read("padding_none_session_initiator.next_message.bin");
    check_message("reply", &reply, 0x01);
    check_body("reply", &reply, unpadded(PADDING_NONE_INITIATOR_NEXT));
    assert_eq!(
        initiator.decrypt(&reply).unwrap(),
        PADDING_NONE_INITIATOR_NEXT
    );
    assert!(!initiator.awaiting_reply());
    assert_eq!(initiator.padding(), Padding::None);

    // Bob's session with the policy Padding::None, holding the key of a0-0.
    let responder_bytes = read("padding_none_session_responder_with_skipped.bin");
    assert_eq!(responder_bytes.len(), 297 + 68);
    assert_eq!(responder_bytes[1], 0x20);
    let mut responder = load(&responder_bytes);
    check_padding("responder", &responder_bytes, &responder, Padding::None);
    assert_eq!(responder.role(), Role::Responder);
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.local_identity(), bob.public_key());
    assert_eq!(responder.stored_skipped_keys(), 1);
    // The receiver's policy plays no part in decoding: a copy of it decrypts the padded
    // form of a0-0 (the same message key) to the same plaintext.
    assert_eq!(
        load(&responder_bytes).decrypt(&padded).unwrap(),
        PADDING_NONE_RESPONDER_NEXT
    );
    assert_eq!(responder.decrypt(&a0).unwrap(), PADDING_NONE_RESPONDER_NEXT);
    assert_eq!(responder.stored_skipped_keys(), 0);
    assert_eq!(responder.decrypt(&a0), Err(Error::DuplicateOrExpired));
    // Its next message is unpadded too.
    let m = responder
        .encrypt(b"golden padding none: b0-1", &mut rng(1))
        .unwrap();
    check_body("b0-1", &m, unpadded(b"golden padding none: b0-1"));
    assert_eq!(initiator.decrypt(&m).unwrap(), b"golden padding none: b0-1");
}

#[cfg(feature = "pqxdh")]
#[test]
fn post_quantum_golden_files() {
    check_versions(&PQ_FILES);
    let alice = IdentityKeyPair::from_bytes(&read("alice_identity.bin")).unwrap();
    let bob = IdentityKeyPair::from_bytes(&read("identity.bin")).unwrap();

    // The stand-alone post-quantum prekey: type 0x26, 135 bytes, signed by Bob.
    let pq_bytes = read("pq_prekey.bin");
    assert_eq!(pq_bytes.len(), 135);
    assert_eq!(pq_bytes[1], 0x26);
    let pq_prekey = PqPreKey::from_bytes(&pq_bytes).unwrap();
    assert_eq!(&pq_prekey.to_bytes()[..], &pq_bytes[..]);
    assert_eq!(pq_prekey.id(), 9);
    assert_eq!(pq_prekey.kind(), PqPreKeyKind::LastResort);
    let spk = SignedPreKey::from_bytes(&read("signed_prekey.bin")).unwrap();
    PreKeyBundle::new(&bob, &spk, None)
        .with_post_quantum_prekey(&pq_prekey)
        .verify()
        .unwrap();

    // The PQXDH bundle Alice used: type 0x11, one-time prekey 1, post-quantum prekey 1.
    let bundle_bytes = read("pq_bundle.bin");
    assert_eq!(bundle_bytes.len(), PQ_BUNDLE_LENGTH);
    assert_eq!(bundle_bytes[1], 0x11);
    let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();
    assert_eq!(bundle.to_bytes(), bundle_bytes);
    bundle.verify().unwrap();
    assert!(bundle.is_post_quantum());
    assert_eq!(bundle.identity_key(), bob.public_key());
    assert_eq!(bundle.one_time_prekey_id(), Some(1));
    assert_eq!(bundle.post_quantum_prekey_id(), Some(1));

    // Alice's fresh PQXDH session (type 0x25, 1389 bytes: it repeats the KEM ciphertext
    // while awaiting a reply) decrypts Bob's first reply.
    let initiator_bytes = read("pq_session_initiator.bin");
    assert_eq!(initiator_bytes.len(), 1389);
    assert_eq!(initiator_bytes[1], 0x25);
    let mut initiator = load(&initiator_bytes);
    // The padding byte follows the KEM ciphertext and the limits.
    assert_eq!(padding_offset(&initiator_bytes), 117 + 4 + 1088);
    check_padding("pq initiator", &initiator_bytes, &initiator, Padding::Padme);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.is_post_quantum());
    assert!(!initiator.is_header_encrypted());
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());
    let reply = read("pq_session_initiator.next_message.bin");
    check_message("pq reply", &reply, 0x01);
    check_body("pq reply", &reply, PADME_BODY);
    assert_eq!(initiator.decrypt(&reply).unwrap(), PQ_INITIATOR_NEXT);
    assert!(!initiator.awaiting_reply());
    // No longer awaiting a reply: the ciphertext is gone from the stored form.
    assert_eq!(stored(&initiator).len(), 297);
    assert_eq!(initiator.decrypt(&reply), Err(Error::DuplicateOrExpired));

    // Bob's PQXDH session (type 0x25, responder) decrypts a0-0, an initial message (type
    // 0x03) whose key it holds.
    let responder_bytes = read("pq_session_responder.bin");
    assert_eq!(responder_bytes[1], 0x25);
    assert_eq!(responder_bytes.len(), 297 + 68 * PQ_RESPONDER_SKIPPED);
    let mut responder = load(&responder_bytes);
    check_padding("pq responder", &responder_bytes, &responder, Padding::Padme);
    assert_eq!(responder.role(), Role::Responder);
    assert!(responder.is_post_quantum());
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.stored_skipped_keys(), PQ_RESPONDER_SKIPPED);
    let next = read("pq_session_responder.next_message.bin");
    check_message("pq initial message", &next, 0x03);
    check_body("pq initial message", &next, PADME_BODY);
    assert_eq!(responder.decrypt(&next).unwrap(), PQ_RESPONDER_NEXT);
    assert_eq!(responder.decrypt(&next), Err(Error::DuplicateOrExpired));

    // Alice's header-encrypted PQXDH session: type 0x28, flags 0x03.
    let he_bytes = read("he_pq_session_initiator_with_skipped.bin");
    assert_eq!(he_bytes[1], 0x28);
    assert_eq!(he_bytes[3], 0x03);
    assert_eq!(
        he_bytes.len(),
        432 + 68 * HE_PQ_SKIPPED + 64 * HE_PQ_HEADER_KEYS
    );
    let mut he = load(&he_bytes);
    check_padding("he pq session", &he_bytes, &he, Padding::Padme);
    assert!(he.is_header_encrypted());
    assert!(he.is_post_quantum());
    assert_eq!(he.role(), Role::Initiator);
    assert!(!he.awaiting_reply());
    assert_eq!(he.local_identity(), alice.public_key());
    let view = ratchet_view(&he_bytes);
    let numbers: Vec<u32> = view.skipped.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 1, 0]);
    assert_eq!(
        view.header_key_chains,
        [view.skipped[0].0, view.skipped[2].0]
    );
    let next = read("he_pq_session_initiator_with_skipped.next_message.bin");
    check_message("he pq next message", &next, 0x04);
    check_body("he pq next message", &next, PADME_BODY);
    assert_eq!(he.decrypt(&next).unwrap(), HE_PQ_NEXT);
    assert_eq!(he.stored_skipped_keys(), HE_PQ_SKIPPED - 1);
    assert_eq!(he.decrypt(&next), Err(Error::DuplicateOrExpired));

    // Bob's store: type 0x27 (replay records and post-quantum keys).
    let store_bytes = read("pq_prekey_store.bin");
    assert_eq!(store_bytes[1], 0x27);
    let mut store = PreKeyStore::from_bytes(&store_bytes).unwrap();
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    assert_eq!(store.replay_records(), 2);
    let one_time: Vec<u32> = store.one_time_prekeys().map(OneTimePreKey::id).collect();
    assert_eq!(one_time, [2, 3], "one-time prekey 1 was used");
    let pq_one_time: Vec<u32> = store.pq_one_time_prekeys().map(PqPreKey::id).collect();
    assert_eq!(pq_one_time, [2], "post-quantum prekey 1 was used");
    assert_eq!(
        store.pq_prekey(3).map(PqPreKey::kind),
        Some(PqPreKeyKind::LastResort)
    );
    // The store publishes the same last-resort key it was stored with.
    let last_resort = store.pq_bundle(&bob, None, None).unwrap();
    assert_eq!(last_resort.post_quantum_prekey_id(), Some(3));
    last_resort.verify().unwrap();
    // The replay record survived: the initial message of the header-encrypted PQXDH session,
    // made from the last-resort key, cannot make a second session.
    let replayed = read("pq_prekey_store.replayed_message.bin");
    check_message("replayed initial message", &replayed, 0x06);
    check_body("replayed initial message", &replayed, PADME_BODY);
    assert_eq!(
        store.accept(&bob, &replayed).err(),
        Some(Error::DuplicateOrExpired)
    );
    assert_eq!(&store.to_bytes()[..], &store_bytes[..]);
    // The stored keys are the published ones: a new PQXDH session from one-time prekey 2
    // and post-quantum prekey 2 is accepted, and both keys are then deleted.
    let message = read("pq_prekey_store.next_message.bin");
    check_message("next session's initial message", &message, 0x03);
    check_body("next session's initial message", &message, PADME_BODY);
    let accepted = store.accept(&bob, &message).unwrap();
    assert_eq!(accepted.plaintext, b"golden pq: next session");
    assert_eq!(accepted.used_one_time_prekey, Some(2));
    assert_eq!(accepted.used_post_quantum_prekey, Some(2));
    assert!(accepted.session.is_post_quantum());
    assert_eq!(store.pq_one_time_prekeys().count(), 0);
    assert_eq!(
        store.accept(&bob, &message).err(),
        Some(Error::UnknownOneTimePreKey(2))
    );
}

#[test]
fn golden_generator_is_deterministic() {
    let first = generate();
    let second = generate();
    assert_eq!(first.len(), all_files().len());
    for ((name, bytes), (name2, bytes2)) in first.iter().zip(&second) {
        assert_eq!(name, name2);
        assert_eq!(bytes, bytes2, "{name}");
    }
    let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, all_files());
}
