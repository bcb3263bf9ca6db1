//! Golden files of the storage format: one file per persisted type at the current format
//! version, in `tests/golden/` (see its README.md).
//!
//! `golden_files` loads each file, checks that it re-encodes byte for byte, that the
//! objects fit together (the bundle and prekeys belong to the stored identity, both
//! sessions are the same session), and that each stored session still decrypts the
//! message stored next to it to the expected plaintext. A change to the storage format
//! that breaks these files needs a new format version, not new files.
//!
//! The files are generated deterministically from seeded RNGs by `generate` below. They are
//! written only when `DOUBLERATCHET_REGENERATE_GOLDEN=1` is set:
//!
//! ```text
//! DOUBLERATCHET_REGENERATE_GOLDEN=1 cargo test --test golden
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs;
use std::path::PathBuf;

use doubleratchet::{
    Error, IdentityKeyPair, OneTimePreKey, PreKeyBundle, PreKeyStore, Role, Session, SignedPreKey,
    StorageKey, BUNDLE_LENGTH, VERSION,
};
use support::{load, rng, stored};

/// The environment variable that makes `golden_files` rewrite the files.
const REGENERATE: &str = "DOUBLERATCHET_REGENERATE_GOLDEN";
/// Seed of the RNG that generates every key, session and message.
const SEED: u64 = 0x0060_1de7;
/// Seed of the RNG that draws the sealing nonce.
const SEAL_SEED: u64 = 0x5ea1;
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

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn read(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every golden file's content, from seeded RNGs only.
fn generate() -> Vec<(&'static str, Vec<u8>)> {
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

    vec![
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
    ]
}

fn rng_for_seal() -> rand_chacha::ChaCha20Rng {
    rng(SEAL_SEED)
}

fn regenerate() {
    let dir = golden_dir();
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in generate() {
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, &bytes).unwrap();
        fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

#[test]
fn golden_files() {
    if std::env::var(REGENERATE).as_deref() == Ok("1") {
        regenerate();
    }
    for name in FILES {
        let bytes = read(name);
        assert_eq!(
            bytes[0], VERSION,
            "{name}: not at the current format version"
        );
    }

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

    // The fresh initiator decrypts Bob's first reply.
    let initiator_bytes = read("session_initiator.bin");
    assert_eq!(initiator_bytes.len(), 296);
    let mut initiator = load(&initiator_bytes);
    assert_eq!(initiator.role(), Role::Initiator);
    assert!(initiator.awaiting_reply());
    assert_eq!(initiator.local_identity(), alice.public_key());
    assert_eq!(initiator.remote_identity(), bob.public_key());
    let reply = read("session_initiator.next_message.bin");
    assert_eq!(initiator.decrypt(&reply).unwrap(), INITIATOR_NEXT);
    assert!(!initiator.awaiting_reply());
    assert_eq!(initiator.decrypt(&reply), Err(Error::DuplicateOrExpired));

    // The responder with skipped keys decrypts a1-0 with one of them.
    let responder_bytes = read("session_responder_with_skipped.bin");
    assert_eq!(responder_bytes.len(), 296 + 68 * RESPONDER_SKIPPED);
    let mut responder = load(&responder_bytes);
    assert_eq!(responder.role(), Role::Responder);
    assert_eq!(responder.id(), initiator.id());
    assert_eq!(responder.local_identity(), bob.public_key());
    assert_eq!(responder.remote_identity(), alice.public_key());
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED);
    let next = read("session_responder_with_skipped.next_message.bin");
    assert_eq!(responder.decrypt(&next).unwrap(), RESPONDER_NEXT);
    assert_eq!(responder.stored_skipped_keys(), RESPONDER_SKIPPED - 1);
    assert_eq!(responder.decrypt(&next), Err(Error::DuplicateOrExpired));

    // The sealed session is the responder session, sealed under the fixed key.
    let sealed = read("sealed_session.bin");
    assert_eq!(sealed.len(), 15 + responder_bytes.len() + 16);
    let mut opened = storage_key().open::<Session>(&sealed).unwrap();
    assert_eq!(stored(&opened), responder_bytes);
    // Sealing is deterministic given the nonce RNG.
    assert_eq!(
        storage_key().seal(&opened, &mut rng_for_seal()).unwrap(),
        sealed
    );
    let next = read("sealed_session.next_message.bin");
    assert_eq!(opened.decrypt(&next).unwrap(), b"golden: a1-1");
    assert_eq!(
        StorageKey::from_bytes([0; 32])
            .open::<Session>(&sealed)
            .err(),
        Some(Error::DecryptionFailed)
    );
}

#[test]
fn golden_generator_is_deterministic() {
    let first = generate();
    let second = generate();
    assert_eq!(first.len(), FILES.len());
    for ((name, bytes), (name2, bytes2)) in first.iter().zip(&second) {
        assert_eq!(name, name2);
        assert_eq!(bytes, bytes2, "{name}");
    }
    let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, FILES);
}
