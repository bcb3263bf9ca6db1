//! The golden files of the storage format and of the publishing formats (public prekey
//! parts and upload sets, SPEC.md §5.9-§5.12) (`tests/golden/`, see its README.md): their
//! generator, from seeded RNGs only, and the constants both the generator and the checks
//! in `tests/it/golden.rs` need. `tools/vectors` compares [`generate`]'s output with the
//! committed files byte for byte (and writes them with `--write`).
//!
//! Each group of files draws from its own RNG, so adding a group never changes the bytes
//! of another; the draws of the first group (`FILES`) must never change.

use std::fs;
use std::path::{Path, PathBuf};

use doubleratchet::{
    Account, DeviceId, Error, IdentityKeyPair, OneTimePreKey, OneTimePreKeyPublic, Padding,
    RecordLimits, RecordStatus, ResetOutcome, Session, SessionOptions, SessionRecord, SignedPreKey,
    SignedPreKeyPublic, StorageKey, StoreNotice, UploadSet,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{Contact, PqPreKey, PqPreKeyKind, PqPreKeyPublic};
use rand_chacha::ChaCha20Rng;

use crate::fixtures::device_of;
use crate::rng::rng;
use crate::storage::{ratchet_view, stored};
use doubleratchet::OneTimePreKeyId;
#[cfg(feature = "pqxdh")]
use doubleratchet::PqPreKeyId;
use doubleratchet::PreKeyPolicy;
use doubleratchet::SignedPreKeyId;

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
/// Seed of the RNG of the classical publishing files (`PUBLISH_FILES`): the second one-time
/// prekey of `upload_set.bin`.
pub const PUBLISH_SEED: u64 = 0x0060_1dec;
/// Seed of the RNG of the post-quantum publishing files (`PQ_PUBLISH_FILES`): the two
/// one-time post-quantum prekeys.
#[cfg(feature = "pqxdh")]
pub const PQ_PUBLISH_SEED: u64 = 0x0060_1ded;
/// The creation time the publishing files give the stand-alone signed prekey (2026-01-01
/// 00:00:00 UTC, seconds since the Unix epoch): not part of the key's stored form nor of
/// any bundle, only of its public part (SPEC.md §5.9).
pub const SIGNED_PREKEY_CREATED: u64 = 1_767_225_600;
/// The creation time the publishing files give the stand-alone last-resort post-quantum
/// prekey (a day after [`SIGNED_PREKEY_CREATED`], so that the two fields cannot be
/// confused), SPEC.md §5.11.
#[cfg(feature = "pqxdh")]
pub const LAST_RESORT_CREATED: u64 = SIGNED_PREKEY_CREATED + 86_400;
/// Ids of the keys the publishing files add to the stand-alone ones (signed prekey 7,
/// one-time prekey 42, last-resort post-quantum prekey 9): a second one-time prekey...
pub const PUBLISH_ONE_TIME_ID: u64 = 43;
/// ... and two one-time post-quantum prekeys.
#[cfg(feature = "pqxdh")]
pub const PUBLISH_PQ_ONE_TIME_IDS: [u64; 2] = [10, 11];
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
/// Seed of the RNG of the session record files (`RECORD_FILES`).
pub const RECORD_SEED: u64 = 0x0060_1dee;
/// Seed of the RNG that draws the sealing nonce of `sealed_session_record_with_context.bin`.
pub const RECORD_SEAL_SEED: u64 = 0x5ea5;
/// The application context of `sealed_session_record_with_context.bin`.
pub const RECORD_CONTEXT: &[u8] = b"golden: contacts/alice/record";
/// When the sessions of `session_record.bin` entered it (the app's time, seconds): the
/// first (plain, retired by a decryption-error request) at 2026-01-01 00:00:00 UTC, the
/// second (header-encrypted) an hour later, the third (the sending session) two hours
/// later.
pub const RECORD_CREATED: [u64; 3] = [1_767_225_600, 1_767_229_200, 1_767_232_800];
/// The decryption-error request `session_record.bin` acted on: the requester's time in it,
/// and the record's time when it acted. The record stores `(0, time it acted)`: the request
/// time is cleared when the sending session changes (SPEC.md §6.8).
pub const RECORD_RESET: (u64, u64) = (1_767_227_400, 1_767_228_000);
/// The plaintext of `session_record.next_message.bin` (Alice's message a0-0 of the sending
/// session, whose key the record holds as a skipped key).
pub const RECORD_NEXT: &[u8] = b"golden record: s3 a0-0";
/// The plaintext of `session_record.archived_message.bin` (Alice's message a0-0 of the
/// archived header-encrypted session, held as a skipped key with its chain's header key).
pub const RECORD_ARCHIVED_NEXT: &[u8] = b"golden record: s2 a0-0";
/// The plaintext of `session_record.retired_message.bin` (Alice's message a0-1 of the
/// retired session, the next of its current receiving chain).
pub const RECORD_RETIRED_NEXT: &[u8] = b"golden record: s1 a0-1";
/// Skipped keys held by `session_record.bin`: two in the sending session, two in the
/// archived header-encrypted one.
pub const RECORD_SKIPPED: usize = 4;
/// The limits of `session_record.bin`: every field differs from its default and from the
/// others, so that a field read in the wrong place cannot go unnoticed.
pub fn record_limits() -> RecordLimits {
    RecordLimits::default()
        .with_max_archived(8)
        .with_max_trials(2)
        .with_max_stored_skipped(100)
        .with_unacknowledged_after(7 * 86_400)
        .with_reset_interval(600)
}

/// Seed of the RNG of the account files (`ACCOUNT_FILES`): the account key's seed (its
/// first 32 bytes, `Account::new`'s one draw, SPEC.md §2.5), then the identities of Bob's
/// second and third devices.
pub const ACCOUNT_SEED: u64 = 0x0060_1def;
/// Seed of the RNG that draws the sealing nonce of `sealed_account_with_context.bin`.
pub const ACCOUNT_SEAL_SEED: u64 = 0x5ea6;
/// The application context of `sealed_account_with_context.bin`.
pub const ACCOUNT_CONTEXT: &[u8] = b"golden: bob/account";
/// The device id of Bob's device (`identity.bin`) in his account's list.
pub const BOB_DEVICE_ID: u32 = 0xB0B0_0001;
/// The device id of Bob's second device, below [`BOB_DEVICE_ID`] so that the list's order
/// (by ascending id) is not the order the devices were added in.
pub const BOB_SECOND_DEVICE_ID: u32 = 0x0000_0002;
/// The device id of Bob's third device, added and then removed again.
pub const BOB_REMOVED_DEVICE_ID: u32 = 0x7FFF_FFFF;
/// The counter of `account.bin`'s list: `Account::new` signs 1, then two devices added and
/// one removed.
pub const ACCOUNT_COUNTER: u64 = 4;
/// Seed of the RNG of the contact files (`CONTACT_FILES`): the two devices and the session
/// Alice's contact initiates.
pub const CONTACT_SEED: u64 = 0x0060_1df0;
/// Seed of the RNG that draws the sealing nonce of `sealed_contact_with_context.bin`.
pub const CONTACT_SEAL_SEED: u64 = 0x5ea7;
/// The application context of `sealed_contact_with_context.bin`.
pub const CONTACT_CONTEXT: &[u8] = b"golden: alice/contacts/bob";
/// When Alice's contact initiated the session with Bob's device (2026-01-01 00:00:00 UTC).
pub const CONTACT_INITIATED: u64 = 1_767_225_600;

/// Seed of the RNG of the group files (`GROUP_FILES`): the group id, the identities of
/// Carol and Dave (the group's other members), and every sending chain's 72 random bytes.
pub const GROUP_SEED: u64 = 0x0060_1df1;
/// Seed of the RNG that draws the sealing nonce of `sealed_group_with_context.bin`.
pub const GROUP_SEAL_SEED: u64 = 0x5ea8;
/// Seed of the RNG that draws the sealing nonce of `sealed_member_chains_with_context.bin`.
pub const MEMBER_CHAINS_SEAL_SEED: u64 = 0x5ea9;
/// The application context of `sealed_group_with_context.bin`.
pub const GROUP_CONTEXT: &[u8] = b"golden: groups/alice/group";
/// The application context of `sealed_member_chains_with_context.bin`.
pub const MEMBER_CHAINS_CONTEXT: &[u8] = b"golden: groups/bob/chains of alice";
/// The plaintext of `group.next_message.bin`: what `group.bin` encrypts next (Alice's a6-3,
/// deterministic: SPEC.md §11.3), which `member_chains.bin` decrypts as the next message
/// of its newest chain.
pub const GROUP_NEXT: &[u8] = b"golden group: a6-3";
/// The plaintext of `member_chains.next_message.bin` (Alice's a6-0, whose key
/// `member_chains.bin` holds as a skipped key).
pub const MEMBER_CHAINS_NEXT: &[u8] = b"golden group: a6-0";
/// Skipped keys held by `member_chains.bin`: a2-0 and a2-2 of chain a2, a6-0 and a6-1 of
/// chain a6.
pub const MEMBER_CHAINS_SKIPPED: usize = 4;

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

/// The session record files (SPEC.md §7.8, type `0x2B`): Bob's record with Alice's device
/// (a sending session, an archived header-encrypted one and an archived retired one,
/// skipped keys, the last decrypting session and the last reset), a message for each of
/// its sessions, and the record sealed with a context.
pub const RECORD_FILES: [&str; 5] = [
    "session_record.bin",
    "session_record.next_message.bin",
    "session_record.archived_message.bin",
    "session_record.retired_message.bin",
    "sealed_session_record_with_context.bin",
];

/// The account files (SPEC.md §7.9, type `0x2C`): Bob's account, holding the account key's
/// seed and the newest list it signed (Bob's device `identity.bin` and a second device),
/// and the account sealed with a context.
pub const ACCOUNT_FILES: [&str; 2] = ["account.bin", "sealed_account_with_context.bin"];

/// The contact files (SPEC.md §7.10, type `0x2D`): Alice's contact of Bob's account (the
/// list of `account.bin`, trust on first use, the post-quantum memory set by a session
/// initiated from a PQXDH bundle), and the contact sealed with a context. Generated with
/// the `pqxdh` feature only (setting the memory needs a PQXDH bundle); read by every build.
pub const CONTACT_FILES: [&str; 2] = ["contact.bin", "sealed_contact_with_context.bin"];

/// The classical publishing files (SPEC.md §5.9, §5.10, §5.12): the public parts of the
/// stand-alone signed and one-time prekeys, and an upload set without post-quantum prekeys
/// (that signed prekey, one-time prekeys 42 and 43).
pub const PUBLISH_FILES: [&str; 3] = [
    "signed_prekey_public.bin",
    "one_time_prekey_public.bin",
    "upload_set.bin",
];

/// The post-quantum publishing files (SPEC.md §5.11, §5.12; the `pqxdh` feature): a
/// public part of each kind (one-time prekey 10, and the stand-alone last-resort prekey 9),
/// and an upload set with post-quantum prekeys (signed prekey 7, one-time prekey 42,
/// last-resort prekey 9, one-time post-quantum prekeys 10 and 11).
#[cfg(feature = "pqxdh")]
pub const PQ_PUBLISH_FILES: [&str; 3] = [
    "pq_prekey_public_one_time.bin",
    "pq_prekey_public_last_resort.bin",
    "pq_upload_set.bin",
];

/// The group files (SPEC.md §7.11, §7.12, §11): Alice's group (type `0x2E`) with the next
/// message it encrypts, Bob's chains of Alice (type `0x2F`: five chains, one retired id,
/// skipped keys) with a message one of its skipped keys decrypts, and both sealed with a
/// context.
pub const GROUP_FILES: [&str; 6] = [
    "group.bin",
    "group.next_message.bin",
    "member_chains.bin",
    "member_chains.next_message.bin",
    "sealed_group_with_context.bin",
    "sealed_member_chains_with_context.bin",
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
    files.extend(PUBLISH_FILES);
    files.extend(RECORD_FILES);
    #[cfg(feature = "pqxdh")]
    files.extend(PQ_FILES);
    #[cfg(feature = "pqxdh")]
    files.extend(PQ_PUBLISH_FILES);
    files.extend(ACCOUNT_FILES);
    #[cfg(feature = "pqxdh")]
    files.extend(CONTACT_FILES);
    files.extend(GROUP_FILES);
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
    let publish = generate_publish(&bob, &files);
    files.extend(publish);
    files.extend(generate_record(&alice, &bob));
    #[cfg(feature = "pqxdh")]
    files.extend(generate_post_quantum(&alice, &bob));
    #[cfg(feature = "pqxdh")]
    {
        let publish = generate_pq_publish(&bob, &files);
        files.extend(publish);
    }
    files.extend(generate_account(&bob));
    #[cfg(feature = "pqxdh")]
    {
        let contact = generate_contact(&alice, &bob, &files);
        files.extend(contact);
    }
    files.extend(generate_group(&alice, &bob));
    files
}

/// The bytes of the file `name` among those generated so far.
fn generated<'a>(files: &'a [(&'static str, Vec<u8>)], name: &str) -> &'a [u8] {
    files
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| &bytes[..])
        .unwrap_or_else(|| panic!("{name} is generated after it is needed"))
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
    let mut store = device_of(&bob, &mut rng).unwrap();
    // Five one-time prekeys (sequence numbers 0..=4); the bundle names the second.
    let second = store
        .generate_one_time_prekeys(5, &mut rng)
        .unwrap()
        .created[1];
    let bundle = store.bundle(Some(second)).unwrap();
    // Stand-alone prekeys, signed by Bob's identity.
    let signed_prekey =
        SignedPreKey::generate(&bob, SignedPreKeyId::from_u64(7), &mut rng).unwrap();
    let one_time_prekey = OneTimePreKey::generate(OneTimePreKeyId::from_u64(42), &mut rng).unwrap();

    // Alice's fresh session, stored before she sends anything.
    let mut a = Session::initiate(&alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let session_initiator = stored(&a);
    // Alice's first chain: five initial messages; Bob accepts the fourth.
    let a0: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            a.encrypt(format!("golden: a0-{i}").as_bytes(), &mut rng)
                .unwrap()
        })
        .collect();
    let mut b = store
        .accept(&a0[3], &SessionOptions::new())
        .unwrap()
        .session;
    // The standby becomes current; the bundle's signed prekey stays accepted.
    store.rotate_signed_prekey(0, &mut rng).unwrap();
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
    let mut store = device_of(bob, &mut rng).unwrap();
    let first = store
        .generate_one_time_prekeys(2, &mut rng)
        .unwrap()
        .created[0];
    let bundle = store.bundle(Some(first)).unwrap();
    let options = SessionOptions::new().header_encryption();
    let mut a = Session::initiate(alice, &bundle, &options, &mut rng).unwrap();
    // Alice's first chain: four initial messages; Bob accepts a0-1 (keeping a0-0's key).
    let a0 = send(&mut a, "golden he: a0-", 4, &mut rng);
    let mut b = store
        .accept(&a0[1], &SessionOptions::new())
        .unwrap()
        .session;
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
    let mut store = device_of(bob, &mut rng).unwrap();
    let only = store
        .generate_one_time_prekeys(1, &mut rng)
        .unwrap()
        .created[0];
    let bundle = store.bundle(Some(only)).unwrap();
    let options = SessionOptions::new().padding(Padding::None);
    // Alice's fresh session, stored before she sends anything.
    let mut a = Session::initiate(alice, &bundle, &options, &mut rng).unwrap();
    assert_eq!(a.padding(), Padding::None);
    let initiator = stored(&a);
    // Two initial messages; Bob accepts a0-1 (keeping a0-0's key), also without padding.
    let a0 = send(&mut a, "golden padding none: a0-", 2, &mut rng);
    let mut b = store.accept(&a0[1], &options).unwrap().session;
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
    let mut store = device_of(bob, &mut rng).unwrap();
    assert_eq!(store.set_replay_capacity(STORE_REPLAY_CAPACITY), Ok(None));
    let one_time: Vec<OneTimePreKeyId> = store
        .generate_one_time_prekeys(4, &mut rng)
        .unwrap()
        .created;
    let first = store.current_signed_prekey().id();
    let standby = store.standby_signed_prekey().unwrap().id();
    // Three initial messages from a bundle without a one-time prekey: two fill the first
    // signed prekey's records, the third is refused.
    let without_opk = store.bundle(None).unwrap();
    let initial = |text: &[u8], rng: &mut ChaCha20Rng| {
        let mut a = Session::initiate(alice, &without_opk, &SessionOptions::new(), rng).unwrap();
        a.encrypt(text, rng).unwrap()
    };
    let r0 = initial(b"golden store: r0", &mut rng);
    let r1 = initial(b"golden store: r1", &mut rng);
    let full = initial(b"golden store: refused", &mut rng);
    assert_eq!(
        store.accept(&r0, &SessionOptions::new()).unwrap().notice,
        None
    );
    assert_eq!(
        store.accept(&r1, &SessionOptions::new()).unwrap().notice,
        Some(StoreNotice::SignedPreKeySwitched {
            previous: first,
            current: standby,
        })
    );
    assert_eq!(
        store.accept(&full, &SessionOptions::new()).err(),
        Some(Error::StoreFull)
    );
    assert!(store
        .maintain(0, &PreKeyPolicy::default(), &mut rng)
        .map(|m| m.replenished_standby)
        .unwrap());
    // A record under the second signed prekey, and a session that uses the one-time
    // prekey of sequence number 1 (no record).
    let second = store.bundle(None).unwrap();
    let mut a = Session::initiate(alice, &second, &SessionOptions::new(), &mut rng).unwrap();
    let r2 = a.encrypt(b"golden store: r2", &mut rng).unwrap();
    assert_eq!(
        store.accept(&r2, &SessionOptions::new()).unwrap().notice,
        None
    );
    let with_opk = store.bundle(Some(one_time[1])).unwrap();
    let mut a = Session::initiate(alice, &with_opk, &SessionOptions::new(), &mut rng).unwrap();
    let m = a.encrypt(b"golden store: one-time", &mut rng).unwrap();
    assert_eq!(
        store
            .accept(&m, &SessionOptions::new())
            .unwrap()
            .used_one_time_prekey,
        Some(one_time[1])
    );
    // Two more one-time prekeys: sequence numbers 4 and 5.
    store.generate_one_time_prekeys(2, &mut rng).unwrap();
    assert_eq!(store.replay_records(), 3);
    // The next session under the second signed prekey, which the stored store accepts.
    let mut a = Session::initiate(alice, &second, &SessionOptions::new(), &mut rng).unwrap();
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

/// The files of `RECORD_FILES`: Bob's session record with Alice's device, made by the
/// record's own operations.
///
/// 1. Bob initiates session s1 (X3DH, cleartext headers) from Alice's bundle; Alice accepts
///    it and replies; Bob's next message on it is one Alice cannot decrypt (she lost her
///    state, as far as the record knows): her decryption-error request archives s1 as
///    retired and sets the record's last reset.
/// 2. Bob initiates s2 (header-encrypted): the sending session. Alice sends three messages
///    on it; Bob receives the third, keeping the keys of the first two and their chain's
///    header key.
/// 3. Bob initiates s3 (cleartext headers): the sending session, s2 archived before s1.
///    Alice sends three messages on it; Bob receives the third, keeping the keys of the
///    first two; s3 is the last decrypting session.
///
/// The messages stored next to the record: s3's a0-0 (a skipped key of the sending
/// session), s2's a0-0 (a skipped key of the archived header-encrypted session) and s1's
/// a0-1 (the next message of the retired session's receiving chain).
fn generate_record(alice: &IdentityKeyPair, bob: &IdentityKeyPair) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(RECORD_SEED);
    let bob_device = device_of(bob, &mut rng).unwrap();
    let mut alice_device = device_of(alice, &mut rng).unwrap();
    let one_time = alice_device
        .generate_one_time_prekeys(3, &mut rng)
        .unwrap()
        .created;
    let mut record =
        SessionRecord::new(bob.public_key(), alice.public_key(), record_limits()).unwrap();
    let plain = SessionOptions::new();
    let he = SessionOptions::new().header_encryption();

    // s1: initiated, answered, then reset by Alice's request.
    let bundle = alice_device.bundle(Some(one_time[0])).unwrap();
    let s1 = record
        .initiate(&bob_device, &bundle, &plain, RECORD_CREATED[0], &mut rng)
        .unwrap();
    let initial = record.encrypt(b"golden record: s1 b0-0", &mut rng).unwrap();
    let mut a1 = alice_device.accept(&initial, &plain).unwrap().session;
    let reply = a1.encrypt(b"golden record: s1 a0-0", &mut rng).unwrap();
    assert_eq!(record.decrypt(&reply).unwrap(), b"golden record: s1 a0-0");
    assert_eq!(record.status(RECORD_CREATED[0]), RecordStatus::Ready);
    let lost = record.encrypt(b"golden record: s1 b1-0", &mut rng).unwrap();
    let alice_record = SessionRecord::new(
        alice.public_key(),
        bob.public_key(),
        RecordLimits::default(),
    )
    .unwrap();
    let request = alice_record
        .decryption_error(&alice_device, &lost, RECORD_RESET.0)
        .unwrap();
    assert_eq!(
        record.handle_decryption_error(&request, RECORD_RESET.1),
        Ok(ResetOutcome::Reset(s1))
    );
    assert_eq!(record.status(RECORD_RESET.1), RecordStatus::NoSession);

    // s2: header-encrypted; Bob keeps the keys of a0-0 and a0-1.
    let bundle = alice_device.bundle(Some(one_time[1])).unwrap();
    let s2 = record
        .initiate(&bob_device, &bundle, &he, RECORD_CREATED[1], &mut rng)
        .unwrap();
    let initial = record.encrypt(b"golden record: s2 b0-0", &mut rng).unwrap();
    let mut a2 = alice_device.accept(&initial, &he).unwrap().session;
    assert!(a2.is_header_encrypted());
    let a2_0 = send(&mut a2, "golden record: s2 a0-", 3, &mut rng);
    assert_eq!(record.decrypt(&a2_0[2]).unwrap(), b"golden record: s2 a0-2");

    // s3: the sending session; Bob keeps the keys of a0-0 and a0-1.
    let bundle = alice_device.bundle(Some(one_time[2])).unwrap();
    let s3 = record
        .initiate(&bob_device, &bundle, &plain, RECORD_CREATED[2], &mut rng)
        .unwrap();
    let initial = record.encrypt(b"golden record: s3 b0-0", &mut rng).unwrap();
    let mut a3 = alice_device.accept(&initial, &plain).unwrap().session;
    let a3_0 = send(&mut a3, "golden record: s3 a0-", 3, &mut rng);
    assert_eq!(record.decrypt(&a3_0[2]).unwrap(), b"golden record: s3 a0-2");

    let ids: Vec<_> = record.session_ids().collect();
    assert_eq!(ids, [s3, s2, s1]);
    assert_eq!(record.stored_skipped_keys(), RECORD_SKIPPED);
    assert_eq!(record.status(RECORD_CREATED[2]), RecordStatus::Ready);
    // The retired session's next message, on the chain Bob already receives.
    let retired = a1.encrypt(RECORD_RETIRED_NEXT, &mut rng).unwrap();
    let sealed = storage_key()
        .seal(&record, RECORD_CONTEXT, &mut rng_for_record_seal())
        .unwrap();
    vec![
        ("session_record.bin", record.to_bytes().to_vec()),
        ("session_record.next_message.bin", a3_0[0].clone()),
        ("session_record.archived_message.bin", a2_0[0].clone()),
        ("session_record.retired_message.bin", retired),
        ("sealed_session_record_with_context.bin", sealed),
    ]
}

/// The RNG that draws the sealing nonce of `sealed_session_record_with_context.bin`.
pub fn rng_for_record_seal() -> ChaCha20Rng {
    rng(RECORD_SEAL_SEED)
}

/// The files of `PQ_FILES`, all from one prekey store of Bob's with post-quantum keys.
#[cfg(feature = "pqxdh")]
fn generate_post_quantum(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(PQ_SEED);
    let mut store = device_of(bob, &mut rng).unwrap();
    // Three one-time prekeys (sequence numbers 0..=2); two one-time post-quantum prekeys
    // (3, 4) and a last-resort one (5).
    let one_time: Vec<OneTimePreKeyId> = store
        .generate_one_time_prekeys(3, &mut rng)
        .unwrap()
        .created;
    let pq_one_time: Vec<PqPreKeyId> = store
        .generate_pq_one_time_prekeys(2, &mut rng)
        .unwrap()
        .created;
    let last_resort_id = store.rotate_pq_last_resort_prekey(0, &mut rng).unwrap();
    assert!(!pq_one_time.contains(&last_resort_id));
    // A stand-alone post-quantum prekey, signed by Bob's identity.
    let pq_prekey = PqPreKey::generate(
        bob,
        PqPreKeyId::from_u64(9),
        PqPreKeyKind::LastResort,
        &mut rng,
    )
    .unwrap();
    let bundle = store
        .pq_bundle(Some(one_time[0]), Some(pq_one_time[0]))
        .unwrap();

    // Alice's fresh PQXDH session, stored before she sends anything; Bob accepts a0-2.
    let mut a = Session::initiate(alice, &bundle, &SessionOptions::new(), &mut rng).unwrap();
    let pq_initiator = stored(&a);
    let a0 = send(&mut a, "golden pq: a0-", 3, &mut rng);
    let mut b = store
        .accept(&a0[2], &SessionOptions::new())
        .unwrap()
        .session;
    let reply = b.encrypt(PQ_INITIATOR_NEXT, &mut rng).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), PQ_INITIATOR_NEXT);
    assert_eq!(b.stored_skipped_keys(), PQ_RESPONDER_SKIPPED);

    // A header-encrypted PQXDH session from the last-resort bundle (no one-time prekey of
    // either kind: the store keeps a replay record naming the last-resort key).
    let last_resort = store.pq_bundle(None, None).unwrap();
    let options = SessionOptions::new().header_encryption();
    let mut he_a = Session::initiate(alice, &last_resort, &options, &mut rng).unwrap();
    let he_first = he_a.encrypt(b"golden pq he: a0-0", &mut rng).unwrap();
    let mut he_b = store
        .accept(&he_first, &SessionOptions::new())
        .unwrap()
        .session;
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
    let classical = store.bundle(None).unwrap();
    let mut c = Session::initiate(alice, &classical, &SessionOptions::new(), &mut rng).unwrap();
    let m = c.encrypt(b"golden pq: classical", &mut rng).unwrap();
    let _accepted = store.accept(&m, &SessionOptions::new()).unwrap();
    assert_eq!(store.replay_records(), 2);

    // The initial message of a session from the remaining one-time keys, which the stored
    // store accepts (its keys are the ones published).
    let remaining = store
        .pq_bundle(Some(one_time[1]), Some(pq_one_time[1]))
        .unwrap();
    let mut next = Session::initiate(alice, &remaining, &SessionOptions::new(), &mut rng).unwrap();
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

/// The files of `PUBLISH_FILES`, from the stand-alone prekeys of the first generation
/// (read back from their generated encodings, so that this group draws nothing from the
/// first generation's RNG) and one more one-time prekey from its own RNG.
fn generate_publish(
    bob: &IdentityKeyPair,
    files: &[(&'static str, Vec<u8>)],
) -> Vec<(&'static str, Vec<u8>)> {
    let spk = SignedPreKey::from_bytes(generated(files, "signed_prekey.bin")).unwrap();
    let opk = OneTimePreKey::from_bytes(generated(files, "one_time_prekey.bin")).unwrap();
    let mut rng = rng(PUBLISH_SEED);
    let second =
        OneTimePreKey::generate(OneTimePreKeyId::from_u64(PUBLISH_ONE_TIME_ID), &mut rng).unwrap();
    let signed = SignedPreKeyPublic::from_key(&spk, SIGNED_PREKEY_CREATED).unwrap();
    let one_time = OneTimePreKeyPublic::from_key(&opk).unwrap();
    let set = UploadSet::new(
        bob.public_key(),
        signed.clone(),
        vec![one_time, OneTimePreKeyPublic::from_key(&second).unwrap()],
    )
    .unwrap();
    vec![
        ("signed_prekey_public.bin", signed.to_bytes()),
        ("one_time_prekey_public.bin", one_time.to_bytes()),
        ("upload_set.bin", set.to_bytes()),
    ]
}

/// The files of `PQ_PUBLISH_FILES`: the stand-alone last-resort post-quantum prekey of the
/// post-quantum group and two one-time post-quantum prekeys from this group's own RNG, in
/// an upload set with the stand-alone signed prekey and one-time prekey 42.
#[cfg(feature = "pqxdh")]
fn generate_pq_publish(
    bob: &IdentityKeyPair,
    files: &[(&'static str, Vec<u8>)],
) -> Vec<(&'static str, Vec<u8>)> {
    let spk = SignedPreKey::from_bytes(generated(files, "signed_prekey.bin")).unwrap();
    let opk = OneTimePreKey::from_bytes(generated(files, "one_time_prekey.bin")).unwrap();
    let last_resort = PqPreKey::from_bytes(generated(files, "pq_prekey.bin")).unwrap();
    assert_eq!(last_resort.kind(), PqPreKeyKind::LastResort);
    let mut rng = rng(PQ_PUBLISH_SEED);
    let one_time: Vec<PqPreKeyPublic> = PUBLISH_PQ_ONE_TIME_IDS
        .iter()
        .map(|id| {
            let id = PqPreKeyId::from_u64(*id);
            let key = PqPreKey::generate(bob, id, PqPreKeyKind::OneTime, &mut rng).unwrap();
            PqPreKeyPublic::one_time(&key).unwrap()
        })
        .collect();
    let last_resort = PqPreKeyPublic::last_resort(&last_resort, LAST_RESORT_CREATED).unwrap();
    let signed = SignedPreKeyPublic::from_key(&spk, SIGNED_PREKEY_CREATED).unwrap();
    let set = UploadSet::new(
        bob.public_key(),
        signed,
        vec![OneTimePreKeyPublic::from_key(&opk).unwrap()],
    )
    .unwrap()
    .with_post_quantum(Some(last_resort.clone()), one_time.clone())
    .unwrap();
    vec![
        ("pq_prekey_public_one_time.bin", one_time[0].to_bytes()),
        ("pq_prekey_public_last_resort.bin", last_resort.to_bytes()),
        ("pq_upload_set.bin", set.to_bytes()),
    ]
}

/// The files of `ACCOUNT_FILES`: Bob's account, made by the account's own operations. Its
/// key's seed is the first draw of this group's RNG (`Account::new`); Bob's device
/// (`identity.bin`) is its first device (counter 1); a second device is added (counter 2),
/// a third added (3) and removed again (4). Each device joins with its own link
/// (`LocalDevice::link`, SPEC.md §9.4), which the list carries.
fn generate_account(bob: &IdentityKeyPair) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = rng(ACCOUNT_SEED);
    // The devices' prekeys play no part: they are drawn from an RNG of their own.
    let mut device_rng = rng_for_account_devices();
    let bob_device = device_of(bob, &mut device_rng).unwrap();
    let mut account = Account::new(&bob_device, DeviceId::new(BOB_DEVICE_ID), &mut rng).unwrap();
    let second = IdentityKeyPair::generate(&mut rng).unwrap();
    let third = IdentityKeyPair::generate(&mut rng).unwrap();
    for (identity, id) in [
        (&second, BOB_SECOND_DEVICE_ID),
        (&third, BOB_REMOVED_DEVICE_ID),
    ] {
        let device = device_of(identity, &mut device_rng).unwrap();
        let link = device.link(account.account_key(), DeviceId::new(id));
        account.add_device(&link).unwrap();
    }
    account
        .remove_device(DeviceId::new(BOB_REMOVED_DEVICE_ID))
        .unwrap();
    assert_eq!(account.device_list().counter(), ACCOUNT_COUNTER);
    let sealed = storage_key()
        .seal(&account, ACCOUNT_CONTEXT, &mut rng_for_account_seal())
        .unwrap();
    vec![
        ("account.bin", account.to_bytes().to_vec()),
        ("sealed_account_with_context.bin", sealed),
    ]
}

/// The RNG the devices of `account.bin` draw their prekeys from (not part of the file).
pub fn rng_for_account_devices() -> ChaCha20Rng {
    rng(ACCOUNT_SEED ^ 0xde71ce)
}

/// The RNG that draws the sealing nonce of `sealed_account_with_context.bin`.
pub fn rng_for_account_seal() -> ChaCha20Rng {
    rng(ACCOUNT_SEAL_SEED)
}

/// The files of `CONTACT_FILES`: Alice's contact of Bob's account, from the list of
/// `account.bin` (read back, so that this group draws nothing from the account group's
/// RNG), trusted on first use, with the limits of `session_record.bin`; initiating a PQXDH
/// session with Bob's device (its last-resort bundle, no one-time prekey) sets the
/// post-quantum memory. The record that session made is not part of the contact (SPEC.md
/// §7.10).
#[cfg(feature = "pqxdh")]
fn generate_contact(
    alice: &IdentityKeyPair,
    bob: &IdentityKeyPair,
    files: &[(&'static str, Vec<u8>)],
) -> Vec<(&'static str, Vec<u8>)> {
    let account = Account::from_bytes(generated(files, "account.bin")).unwrap();
    let mut rng = rng(CONTACT_SEED);
    let alice_device = device_of(alice, &mut rng).unwrap();
    let mut bob_device = device_of(bob, &mut rng).unwrap();
    bob_device
        .rotate_pq_last_resort_prekey(0, &mut rng)
        .unwrap();
    let bundle = bob_device.pq_bundle(None, None).unwrap();
    let mut contact =
        Contact::first_use(alice.public_key(), account.device_list(), record_limits()).unwrap();
    assert!(!contact.requires_post_quantum());
    contact
        .initiate(
            &alice_device,
            DeviceId::new(BOB_DEVICE_ID),
            &bundle,
            &SessionOptions::new(),
            CONTACT_INITIATED,
            &mut rng,
        )
        .unwrap();
    assert!(contact.requires_post_quantum());
    let sealed = storage_key()
        .seal(&contact, CONTACT_CONTEXT, &mut rng_for_contact_seal())
        .unwrap();
    vec![
        ("contact.bin", contact.to_bytes().to_vec()),
        ("sealed_contact_with_context.bin", sealed),
    ]
}

/// The RNG that draws the sealing nonce of `sealed_contact_with_context.bin`.
pub fn rng_for_contact_seal() -> ChaCha20Rng {
    rng(CONTACT_SEAL_SEED)
}

/// The files of `GROUP_FILES`, made by the group operations themselves from this group's
/// own RNG: the group id (32 bytes), Carol's and Dave's identities, then Alice's group
/// (`Group::new` with members Bob, Carol, Dave: chain a1) and Bob's (members Alice, Carol,
/// Dave), each drawing its chain's 72 bytes, then each rotation's 72 bytes.
///
/// Bob takes a1's distribution. Alice rotates to a2 and sends a2-0..a2-3; Bob receives a2-3
/// and a2-1, keeping the keys of a2-0 and a2-2. Alice rotates to a3, a4, a5, then removes
/// Dave (rotating to a6); Bob takes each distribution, and a6's evicts a1 (its id
/// retired). Alice sends a6-0..a6-2; Bob receives a6-2, keeping a6-0 and a6-1. The stored
/// group is Alice's (chain a6 at iteration 3), the stored chains Bob's of Alice.
fn generate_group(alice: &IdentityKeyPair, bob: &IdentityKeyPair) -> Vec<(&'static str, Vec<u8>)> {
    use doubleratchet::rand_core::TryRng;
    use doubleratchet::{DistributionOutcome, Group, GroupId, MemberChains};

    let mut rng = rng(GROUP_SEED);
    let mut id = [0u8; 32];
    rng.try_fill_bytes(&mut id).unwrap();
    let id = GroupId::from_bytes(id);
    let carol = IdentityKeyPair::generate(&mut rng).unwrap();
    let dave = IdentityKeyPair::generate(&mut rng).unwrap();
    let (a, b, c, d) = (
        *alice.public_key(),
        *bob.public_key(),
        *carol.public_key(),
        *dave.public_key(),
    );
    let mut alice_group = Group::new(id, &a, &[b, c, d], &mut rng).unwrap();
    let bob_group = Group::new(id, &b, &[a, c, d], &mut rng).unwrap();
    let mut chains = MemberChains::new(&id, &a);
    let take = |distribution: &[u8], chains: &mut MemberChains| {
        bob_group
            .process_distribution(&a, distribution, chains)
            .unwrap()
    };
    let send = |group: &mut Group, chain: &str, count: usize| -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                group
                    .encrypt(format!("golden group: {chain}-{i}").as_bytes())
                    .unwrap()
            })
            .collect()
    };
    let a1 = alice_group.chain_id();
    let _ = take(&alice_group.distribution().to_bytes(), &mut chains);
    let a2 = alice_group.rotate(&mut rng).unwrap().to_bytes();
    let _ = take(&a2, &mut chains);
    let a2_messages = send(&mut alice_group, "a2", 4);
    for i in [3, 1] {
        assert_eq!(
            bob_group.decrypt(&mut chains, &a2_messages[i]).unwrap(),
            format!("golden group: a2-{i}").as_bytes()
        );
    }
    for _ in 0..3 {
        let next = alice_group.rotate(&mut rng).unwrap().to_bytes();
        let _ = take(&next, &mut chains);
    }
    let a6 = alice_group.remove_member(&d, &mut rng).unwrap().to_bytes();
    assert_eq!(
        take(&a6, &mut chains),
        DistributionOutcome::Added { evicted: Some(a1) }
    );
    let a6_messages = send(&mut alice_group, "a6", 3);
    assert_eq!(
        bob_group.decrypt(&mut chains, &a6_messages[2]).unwrap(),
        b"golden group: a6-2"
    );
    assert_eq!(chains.stored_skipped(), MEMBER_CHAINS_SKIPPED);
    assert_eq!(chains.chain_ids().len(), 5);
    assert_eq!(alice_group.iteration(), 3);
    let group_bytes = alice_group.to_bytes().to_vec();
    let sealed_group = storage_key()
        .seal(&alice_group, GROUP_CONTEXT, &mut rng_for_group_seal())
        .unwrap();
    let next = alice_group.encrypt(GROUP_NEXT).unwrap();
    let sealed_chains = storage_key()
        .seal(
            &chains,
            MEMBER_CHAINS_CONTEXT,
            &mut rng_for_member_chains_seal(),
        )
        .unwrap();
    vec![
        ("group.bin", group_bytes),
        ("group.next_message.bin", next),
        ("member_chains.bin", chains.to_bytes().to_vec()),
        ("member_chains.next_message.bin", a6_messages[0].clone()),
        ("sealed_group_with_context.bin", sealed_group),
        ("sealed_member_chains_with_context.bin", sealed_chains),
    ]
}

/// The RNG that draws the sealing nonce of `sealed_group_with_context.bin`.
pub fn rng_for_group_seal() -> ChaCha20Rng {
    rng(GROUP_SEAL_SEED)
}

/// The RNG that draws the sealing nonce of `sealed_member_chains_with_context.bin`.
pub fn rng_for_member_chains_seal() -> ChaCha20Rng {
    rng(MEMBER_CHAINS_SEAL_SEED)
}
