//! The golden files of the storage format (`tests/golden/`, see its README.md): their
//! generator, from seeded RNGs only, and the constants both the generator and the checks
//! in `tests/it/golden.rs` need. `tools/vectors` compares [`generate`]'s output with the
//! committed files byte for byte (and writes them with `--write`).
//!
//! Each group of files draws from its own RNG, so adding a group never changes the bytes
//! of another; the draws of the first group (`FILES`) must never change.

use std::fs;
use std::path::{Path, PathBuf};

use doubleratchet::{
    Error, IdentityKeyPair, OneTimePreKey, Padding, PreKeyStore, Session, SessionOptions,
    SignedPreKey, StorageKey, StoreNotice,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKey, PqPreKeyKind};
use rand_chacha::ChaCha20Rng;

use crate::rng::rng;
use crate::storage::{ratchet_view, stored};

/// Seed of the RNG that generates every key, session and message of the first generation
/// (`FILES`).
pub const SEED: u64 = 0x0060_1de7;
/// Seed of the RNG that draws the sealing nonce.
pub const SEAL_SEED: u64 = 0x5ea1;
/// Seed of the RNG of the header-encrypted files (keys, sessions, header nonces).
pub const HE_SEED: u64 = 0x0060_1de8;
/// Seed of the RNG that draws the sealing nonce of `he_sealed_session.bin` (not
/// `SEAL_SEED`: one nonce is never used twice under the fixed storage key).
pub const HE_SEAL_SEED: u64 = 0x5ea2;
/// Seed of the RNG of the post-quantum files.
#[cfg(feature = "pqxdh")]
pub const PQ_SEED: u64 = 0x0060_1de9;
/// Seed of the RNG of the files of sessions without padding (`PADDING_NONE_FILES`).
pub const PADDING_NONE_SEED: u64 = 0x0060_1dea;
/// Seed of the RNG of the prekey store files (`STORE_FILES`).
pub const STORE_SEED: u64 = 0x0060_1deb;
/// Seed of the RNG that draws the sealing nonce of `sealed_session_with_context.bin`.
pub const CONTEXT_SEAL_SEED: u64 = 0x5ea3;
/// Seed of the RNG that draws the sealing nonce of `sealed_prekey_store_with_context.bin`.
pub const STORE_SEAL_SEED: u64 = 0x5ea4;
/// The application context `sealed_session_with_context.bin` is sealed for (bound into
/// the associated data, not stored). `sealed_session.bin` and `he_sealed_session.bin` are
/// sealed with the empty context.
pub const SESSION_CONTEXT: &[u8] = b"golden: contacts/alice/session";
/// The application context of `sealed_prekey_store_with_context.bin`.
pub const STORE_CONTEXT: &[u8] = b"golden: bob/prekey store";
/// The replay capacity of `prekey_store_with_records.bin`.
pub const STORE_REPLAY_CAPACITY: u32 = 2;
/// The plaintext of `prekey_store_with_records.next_message.bin`.
pub const STORE_NEXT: &[u8] = b"golden store: next session";

/// The fixed storage key of `sealed_session.bin`: bytes 0x00, 0x01, ..., 0x1f.
pub fn storage_key() -> StorageKey {
    StorageKey::from_bytes(core::array::from_fn(|i| i as u8))
}

/// The plaintext of `session_initiator.next_message.bin` (Bob's first reply).
pub const INITIATOR_NEXT: &[u8] = b"golden: bob's first reply";
/// The plaintext of `session_responder_with_skipped.next_message.bin` (Alice's message
/// a1-0, whose key the stored responder session holds as a skipped key).
pub const RESPONDER_NEXT: &[u8] = b"golden: a1-0";
/// Skipped keys held by the stored responder session.
pub const RESPONDER_SKIPPED: usize = 6;

/// The plaintext of `he_session_responder_with_skipped.next_message.bin` (Alice's message
/// a1-0, in a chain that is no longer Bob's receiving chain).
pub const HE_NEXT: &[u8] = b"golden he: a1-0";
/// The plaintext of `he_sealed_session.next_message.bin` (Alice's initial message a0-0).
pub const HE_SEALED_NEXT: &[u8] = b"golden he: a0-0";
/// Skipped keys held by the stored header-encrypted responder session: a0-0, a0-2, a0-3,
/// a1-0, a1-1, a2-0 ...
pub const HE_SKIPPED: usize = 6;
/// ... from three chains, each with its header key stored.
pub const HE_HEADER_KEYS: usize = 3;

/// The plaintext of `padding_none_session_initiator.next_message.bin` (Bob's first reply,
/// sent without padding).
pub const PADDING_NONE_INITIATOR_NEXT: &[u8] = b"golden padding none: bob's first reply";
/// The plaintext of `padding_none_session_responder_with_skipped.next_message.bin` (Alice's
/// initial message a0-0, sent without padding, whose key the stored responder holds).
pub const PADDING_NONE_RESPONDER_NEXT: &[u8] = b"golden padding none: a0-0";

/// The plaintext of `pq_session_initiator.next_message.bin`.
#[cfg(feature = "pqxdh")]
pub const PQ_INITIATOR_NEXT: &[u8] = b"golden pq: bob's first reply";
/// The plaintext of `pq_session_responder.next_message.bin` (Alice's initial message a0-0,
/// whose key the stored responder session holds).
#[cfg(feature = "pqxdh")]
pub const PQ_RESPONDER_NEXT: &[u8] = b"golden pq: a0-0";
/// Skipped keys held by the stored PQXDH responder session (a0-0, a0-1).
#[cfg(feature = "pqxdh")]
pub const PQ_RESPONDER_SKIPPED: usize = 2;
/// The plaintext of `he_pq_session_initiator_with_skipped.next_message.bin` (Bob's message
/// b0-1, in a chain that is no longer Alice's receiving chain).
#[cfg(feature = "pqxdh")]
pub const HE_PQ_NEXT: &[u8] = b"golden pq he: b0-1";
/// Skipped keys held by the stored header-encrypted PQXDH initiator session: b0-0, b0-1,
/// b1-0, from two chains.
#[cfg(feature = "pqxdh")]
pub const HE_PQ_SKIPPED: usize = 3;
/// ... from two chains, each with its header key stored.
#[cfg(feature = "pqxdh")]
pub const HE_PQ_HEADER_KEYS: usize = 2;

/// The first generation of golden files (classical X3DH, Padmé).
pub const FILES: [&str; 13] = [
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
    "sealed_session_with_context.bin",
];

/// The header-encrypted files, generated without post-quantum keys.
pub const HE_FILES: [&str; 4] = [
    "he_session_responder_with_skipped.bin",
    "he_session_responder_with_skipped.next_message.bin",
    "he_sealed_session.bin",
    "he_sealed_session.next_message.bin",
];

/// The post-quantum files (the `pqxdh` feature).
#[cfg(feature = "pqxdh")]
pub const PQ_FILES: [&str; 11] = [
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

/// The prekey store files: replay records under two signed prekeys, a standby, one-time
/// prekeys with sequence numbers, and the store sealed with a context.
pub const STORE_FILES: [&str; 5] = [
    "prekey_store_with_records.bin",
    "prekey_store_with_records.replayed_message.bin",
    "prekey_store_with_records.full_message.bin",
    "prekey_store_with_records.next_message.bin",
    "sealed_prekey_store_with_context.bin",
];

/// The files of sessions whose padding policy is `Padding::None` (stored byte `0x00`).
pub const PADDING_NONE_FILES: [&str; 4] = [
    "padding_none_session_initiator.bin",
    "padding_none_session_initiator.next_message.bin",
    "padding_none_session_responder_with_skipped.bin",
    "padding_none_session_responder_with_skipped.next_message.bin",
];

/// Every file [`generate`] writes, in its order.
pub fn all_files() -> Vec<&'static str> {
    let mut files = FILES.to_vec();
    files.extend(HE_FILES);
    files.extend(PADDING_NONE_FILES);
    files.extend(STORE_FILES);
    #[cfg(feature = "pqxdh")]
    files.extend(PQ_FILES);
    files
}

/// `tests/golden/` of the main crate.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .components()
        .collect()
}

/// The committed golden file `name`.
pub fn read(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every golden file's content, from seeded RNGs only. Each group of files draws from its
/// own RNG, so adding a group never changes the bytes of another.
pub fn generate() -> Vec<(&'static str, Vec<u8>)> {
    let (alice, bob, mut files) = generate_classical();
    files.extend(generate_header_encrypted(&alice, &bob));
    files.extend(generate_padding_none(&alice, &bob));
    files.extend(generate_store(&alice, &bob));
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
    // Five one-time prekeys (sequence numbers 0..=4); the bundle names the second.
    let second = store.generate_one_time_prekeys(5, &mut rng).unwrap()[1].id();
    let bundle = store.bundle(&bob, Some(second)).unwrap();
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
    // The standby becomes current; the bundle's signed prekey stays accepted.
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
    let sealed = storage_key().seal(&b, b"", &mut rng_for_seal()).unwrap();
    let sealed_with_context = storage_key()
        .seal(&b, SESSION_CONTEXT, &mut rng_for_context_seal())
        .unwrap();

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
        ("sealed_session_with_context.bin", sealed_with_context),
    ];
    (alice, bob, files)
}

/// The RNG that draws the sealing nonce of `sealed_session.bin`.
pub fn rng_for_seal() -> ChaCha20Rng {
    rng(SEAL_SEED)
}

/// The RNG that draws the sealing nonce of `he_sealed_session.bin`.
pub fn rng_for_he_seal() -> ChaCha20Rng {
    rng(HE_SEAL_SEED)
}

/// The RNG that draws the sealing nonce of `sealed_session_with_context.bin`.
pub fn rng_for_context_seal() -> ChaCha20Rng {
    rng(CONTEXT_SEAL_SEED)
}

/// The files of `HE_FILES`: Bob's header-encrypted session (classical X3DH) holding
/// skipped keys of three of Alice's chains, and the same session sealed.
fn generate_header_encrypted(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(HE_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    let first = store.generate_one_time_prekeys(2, &mut rng).unwrap()[0].id();
    let bundle = store.bundle(bob, Some(first)).unwrap();
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
    let sealed = storage_key().seal(&b, b"", &mut rng_for_he_seal()).unwrap();
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
    let only = store.generate_one_time_prekeys(1, &mut rng).unwrap()[0].id();
    let bundle = store.bundle(bob, Some(only)).unwrap();
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

/// The files of `STORE_FILES`: Bob's prekey store with replay capacity 2, whose replay
/// records sit under two signed prekeys (the first filled, so the store switched to its
/// standby; a new standby was generated), with one-time prekeys of sequence numbers 0, 2,
/// 3, 4, 5 (the one of sequence number 1 was used); a recorded initial message, one the
/// full signed prekey refuses, and one the stored store accepts (filling the second signed
/// prekey); and the store sealed with a context.
fn generate_store(alice: &IdentityKeyPair, bob: &IdentityKeyPair) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(STORE_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    assert_eq!(store.set_replay_capacity(STORE_REPLAY_CAPACITY), Ok(None));
    let one_time: Vec<u64> = store
        .generate_one_time_prekeys(4, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    let first = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    // Three initial messages from a bundle without a one-time prekey: two fill the first
    // signed prekey's records, the third is refused.
    let without_opk = store.bundle(bob, None).unwrap();
    let initial = |text: &[u8], rng: &mut ChaCha20Rng| {
        let mut a = Session::initiate(alice, &without_opk, rng).unwrap();
        a.encrypt(text, rng).unwrap()
    };
    let r0 = initial(b"golden store: r0", &mut rng);
    let r1 = initial(b"golden store: r1", &mut rng);
    let full = initial(b"golden store: refused", &mut rng);
    assert_eq!(store.accept(bob, &r0).unwrap().notice, None);
    assert_eq!(
        store.accept(bob, &r1).unwrap().notice,
        Some(StoreNotice::SignedPreKeySwitched {
            previous: first,
            current: standby,
        })
    );
    assert_eq!(store.accept(bob, &full).err(), Some(Error::StoreFull));
    assert!(store.replenish_standby(bob, &mut rng).unwrap());
    // A record under the second signed prekey, and a session that uses the one-time
    // prekey of sequence number 1 (no record).
    let second = store.bundle(bob, None).unwrap();
    let mut a = Session::initiate(alice, &second, &mut rng).unwrap();
    let r2 = a.encrypt(b"golden store: r2", &mut rng).unwrap();
    assert_eq!(store.accept(bob, &r2).unwrap().notice, None);
    let with_opk = store.bundle(bob, Some(one_time[1])).unwrap();
    let mut a = Session::initiate(alice, &with_opk, &mut rng).unwrap();
    let m = a.encrypt(b"golden store: one-time", &mut rng).unwrap();
    assert_eq!(
        store.accept(bob, &m).unwrap().used_one_time_prekey,
        Some(one_time[1])
    );
    // Two more one-time prekeys: sequence numbers 4 and 5.
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    assert_eq!(store.replay_records(), 3);
    // The next session under the second signed prekey, which the stored store accepts.
    let mut a = Session::initiate(alice, &second, &mut rng).unwrap();
    let next = a.encrypt(STORE_NEXT, &mut rng).unwrap();
    let sealed = storage_key()
        .seal(&store, STORE_CONTEXT, &mut rng_for_store_seal())
        .unwrap();
    vec![
        ("prekey_store_with_records.bin", store.to_bytes().to_vec()),
        ("prekey_store_with_records.replayed_message.bin", r0),
        ("prekey_store_with_records.full_message.bin", full),
        ("prekey_store_with_records.next_message.bin", next),
        ("sealed_prekey_store_with_context.bin", sealed),
    ]
}

/// The RNG that draws the sealing nonce of `sealed_prekey_store_with_context.bin`.
pub fn rng_for_store_seal() -> ChaCha20Rng {
    rng(STORE_SEAL_SEED)
}

/// The files of `PQ_FILES`, all from one prekey store of Bob's with post-quantum keys.
#[cfg(feature = "pqxdh")]
fn generate_post_quantum(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(PQ_SEED);
    let mut store = PreKeyStore::new(bob, &mut rng).unwrap();
    // Three one-time prekeys (sequence numbers 0..=2); two one-time post-quantum prekeys
    // (3, 4) and a last-resort one (5).
    let one_time: Vec<u64> = store
        .generate_one_time_prekeys(3, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    let pq_one_time: Vec<u64> = store
        .generate_pq_one_time_prekeys(bob, 2, &mut rng)
        .unwrap()
        .iter()
        .map(|k| k.id())
        .collect();
    let last_resort_id = store.rotate_pq_last_resort_prekey(bob, &mut rng).unwrap();
    assert!(!pq_one_time.contains(&last_resort_id));
    // A stand-alone post-quantum prekey, signed by Bob's identity.
    let pq_prekey = PqPreKey::generate(bob, 9, PqPreKeyKind::LastResort, &mut rng).unwrap();
    let bundle = store
        .pq_bundle(bob, Some(one_time[0]), Some(pq_one_time[0]))
        .unwrap();

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
    let remaining = store
        .pq_bundle(bob, Some(one_time[1]), Some(pq_one_time[1]))
        .unwrap();
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
