//! Accounts with several devices (SPEC.md §7.9-§7.10, §9.3-§9.6), through the public API:
//!
//! - device-list rules (§9.4-§9.5): a replayed or equal-counter list is `StaleDeviceList`
//!   and changes nothing, the held list is `Unchanged`, a signature by another key or over
//!   any altered byte is `InvalidSignature`, a list under another account key is an
//!   `IdentityChange` that changes nothing until accepted (then pinned as first use; a
//!   stale change is refused), a removed device is refused in both directions and its
//!   record dropped, and the device cap and the strict parse (each rule with its error);
//!   lists are also built and signed by hand (ed25519-dalek, from the account's seed) to
//!   reach what the library never signs;
//! - fan-out (§9.6): one `Delivery` per listed device but the local one, by ascending id;
//!   a device without a sending session does not stop the others; the user's own other
//!   devices; a failing RNG changes nothing; the randomness drawn up front (44 bytes per
//!   device, in the call's order) is exactly what each encryption reads, and suffices across
//!   DH ratchet steps in every mode;
//! - identity changes with safety numbers; the post-quantum memory (with `pqxdh`); bundles
//!   of another identity;
//! - persistence: accounts and contacts round-trip byte for byte, records are put back with
//!   `restore_record` (and its refusals), sealed blobs bind their context, and hostile
//!   stored bytes give errors, never panics;
//! - a property test: random add/remove sequences fed to a contact in random order, with
//!   replays: the contact holds the highest-counter list it was given, and never a device
//!   that list removed.
//!
//! Every schedule is seeded; the module runs in a few seconds in a debug build.

use std::collections::BTreeSet;

use doubleratchet::rand_core::TryRng;
use doubleratchet::{
    encrypt_to_devices, Account, AccountKey, Contact, Delivery, DeviceId, DeviceList, DeviceUpdate,
    Error, ErrorKind, IdentityChange, IdentityKey, IdentityKeyPair, PreKeyBundle, Received,
    RecordLimits, SafetyNumber, SessionOptions, SessionRecord, StorageKey, Trust, BUNDLE_VERSION,
    MAX_DEVICES, STORAGE_VERSION,
};
use doubleratchet_test_support::record::Mode;
use doubleratchet_test_support::{hex, rng, text, ChaCha20Rng, FailingRng, ListedRng, Party};
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use rand_chacha::rand_core::Rng;

// ---------------------------------------------------------------------------------------
// Layouts (SPEC.md §7.9, §7.10, §9.4), written out here so that the tests check them
// ---------------------------------------------------------------------------------------

/// What a device list's signature covers, before the list's bytes (§9.4).
const DEVICE_LIST_LABEL: &[u8] = b"doubleratchet v2 device list";
const TYPE_DEVICE_LIST: u8 = 0x16;
const TYPE_ACCOUNT: u8 = 0x2C;
const TYPE_CONTACT: u8 = 0x2D;

/// A list without devices; one device; the longest list (16 devices).
const LIST_FIXED: usize = 107;
const LIST_ENTRY: usize = 36;
const MAX_LIST: usize = 683;
/// Offsets in a list: account key, counter, device count, the first device.
const LIST_ACCOUNT: usize = 2;
const LIST_COUNTER: usize = 34;
const LIST_COUNT: usize = 42;
const LIST_ENTRIES: usize = 43;
const SIGNATURE: usize = 64;

/// Offsets in a stored account: the seed, the list's length, the list; the largest.
const ACCOUNT_SEED: usize = 2;
const ACCOUNT_LIST_LEN: usize = 34;
const ACCOUNT_LIST: usize = 38;
const MAX_ACCOUNT: usize = 721;

/// Offsets in a stored contact: local identity, trust, post-quantum flag, limits, the
/// list's length, the list; the largest.
const CONTACT_LOCAL: usize = 2;
const CONTACT_TRUST: usize = 34;
const CONTACT_PQ: usize = 35;
const CONTACT_LIMITS: usize = 36;
const CONTACT_LIST_LEN: usize = 64;
const CONTACT_LIST: usize = 68;
const MAX_CONTACT: usize = 751;

/// Randomness drawn per target device of a fan-out (§9.6).
const FAN_OUT_RANDOM: usize = 44;

/// The app's clock for every call.
const NOW: u64 = 1_000;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn id(n: u32) -> DeviceId {
    DeviceId::new(n)
}

fn ids(list: &[u32]) -> Vec<DeviceId> {
    list.iter().copied().map(id).collect()
}

fn updated(added: &[u32], removed: &[u32]) -> DeviceUpdate {
    DeviceUpdate::Updated {
        added: ids(added),
        removed: ids(removed),
    }
}

/// A fresh identity key (of a device that never exists).
fn identity(r: &mut ChaCha20Rng) -> IdentityKey {
    *IdentityKeyPair::generate(r).unwrap().public_key()
}

/// The account key's Ed25519 seed, read from the storage encoding (§7.9, bytes 2..34).
fn seed_of(account: &Account) -> [u8; 32] {
    account.to_bytes()[ACCOUNT_SEED..ACCOUNT_SEED + 32]
        .try_into()
        .unwrap()
}

/// A list's devices as `(id, identity key bytes)`.
fn entries(list: &DeviceList) -> Vec<(u32, [u8; 32])> {
    list.devices()
        .map(|(d, k)| (d.get(), k.to_bytes()))
        .collect()
}

/// A list's device ids.
fn listed(list: &DeviceList) -> Vec<u32> {
    list.devices().map(|(d, _)| d.get()).collect()
}

/// A list's bytes before the signature (§9.4), with `count` written as given.
fn list_body(account: &[u8; 32], counter: u64, count: u8, devices: &[(u32, [u8; 32])]) -> Vec<u8> {
    let mut out = vec![BUNDLE_VERSION, TYPE_DEVICE_LIST];
    out.extend_from_slice(account);
    out.extend_from_slice(&counter.to_be_bytes());
    out.push(count);
    for (d, key) in devices {
        out.extend_from_slice(&d.to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The Ed25519 signature by `seed`'s key over `DEVICE_LIST_LABEL || body`.
fn list_signature(seed: &[u8; 32], body: &[u8]) -> [u8; 64] {
    let mut message = DEVICE_LIST_LABEL.to_vec();
    message.extend_from_slice(body);
    SigningKey::from_bytes(seed).sign(&message).to_bytes()
}

/// `body` with the signature of `seed`'s key appended.
fn sign_body(seed: &[u8; 32], mut body: Vec<u8>) -> Vec<u8> {
    let signature = list_signature(seed, &body);
    body.extend_from_slice(&signature);
    body
}

/// The account key of `seed`.
fn public_of(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// A list of `devices` (written in the order given) under `counter`, signed by `seed`'s key.
fn signed_list(seed: &[u8; 32], counter: u64, devices: &[(u32, [u8; 32])]) -> Vec<u8> {
    let body = list_body(&public_of(seed), counter, devices.len() as u8, devices);
    sign_body(seed, body)
}

/// The storage encoding of an account (§7.9) of `seed` holding `list` (bytes).
fn account_bytes(seed: &[u8; 32], list: &[u8]) -> Vec<u8> {
    let mut out = vec![STORAGE_VERSION, TYPE_ACCOUNT];
    out.extend_from_slice(seed);
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    out.extend_from_slice(list);
    out
}

/// A contact's own state and every record, byte for byte.
#[derive(PartialEq, Eq)]
struct Snapshot {
    contact: Vec<u8>,
    records: Vec<(DeviceId, Vec<u8>)>,
}

fn snapshot(contact: &Contact) -> Snapshot {
    Snapshot {
        contact: contact.to_bytes().to_vec(),
        records: contact
            .records()
            .map(|(d, r)| (d, r.to_bytes().to_vec()))
            .collect(),
    }
}

/// Asserts that `op` fails with `expected` and leaves `contact` (and its records)
/// byte-identical.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    contact: &mut Contact,
    expected: Error,
    op: impl FnOnce(&mut Contact) -> Result<T, Error>,
) {
    let before = snapshot(contact);
    let result = op(contact).map(|_| ());
    assert_eq!(result, Err(expected));
    assert!(
        snapshot(contact) == before,
        "refused with {expected:?} but changed the contact"
    );
}

/// A copy of `contact` through its storage encoding, with every record put back (also
/// through its encoding); checks that the copy stores the same bytes.
#[track_caller]
fn reloaded(contact: &Contact) -> Contact {
    let mut copy = Contact::from_bytes(&contact.to_bytes()).unwrap();
    for (d, record) in contact.records() {
        copy.restore_record(d, SessionRecord::from_bytes(&record.to_bytes()).unwrap())
            .unwrap();
    }
    assert!(
        snapshot(&copy) == snapshot(contact),
        "reloading changed the contact"
    );
    copy
}

/// One device of a user: its id in the account, its identity and prekey store.
struct Device {
    id: DeviceId,
    party: Party,
}

impl Device {
    fn new(n: u32, r: &mut ChaCha20Rng) -> Device {
        Device {
            id: id(n),
            party: Party::new(r),
        }
    }

    fn key(&self) -> &IdentityKey {
        self.party.identity.public_key()
    }
}

/// A user: an account and its devices (in the order they were added), with every list the
/// account signed, oldest first.
struct User {
    account: Account,
    devices: Vec<Device>,
    history: Vec<DeviceList>,
}

impl User {
    fn new(device_ids: &[u32], r: &mut ChaCha20Rng) -> User {
        let devices: Vec<Device> = device_ids.iter().map(|&n| Device::new(n, r)).collect();
        let mut account = Account::new(devices[0].id, devices[0].key(), r).unwrap();
        let mut history = vec![account.device_list().clone()];
        for d in &devices[1..] {
            history.push(account.add_device(d.id, d.key()).unwrap().clone());
        }
        User {
            account,
            devices,
            history,
        }
    }

    fn index(&self, n: u32) -> usize {
        self.devices.iter().position(|d| d.id == id(n)).unwrap()
    }

    fn device(&self, n: u32) -> &Device {
        &self.devices[self.index(n)]
    }

    fn list(&self) -> &DeviceList {
        self.account.device_list()
    }

    fn key(&self) -> &AccountKey {
        self.account.account_key()
    }

    /// Adds device `n` (a new identity); returns the new list.
    fn add(&mut self, n: u32, r: &mut ChaCha20Rng) -> DeviceList {
        let device = Device::new(n, r);
        let list = self
            .account
            .add_device(device.id, device.key())
            .unwrap()
            .clone();
        self.devices.push(device);
        self.history.push(list.clone());
        list
    }

    /// Removes device `n` from the list (the device keeps its keys); returns the new list.
    fn remove(&mut self, n: u32) -> DeviceList {
        let list = self.account.remove_device(id(n)).unwrap().clone();
        self.history.push(list.clone());
        list
    }
}

/// Alice's only device.
const ALICE: u32 = 1;
/// Bob's devices, in the order his account added them (not the id order).
const BOB: [u32; 3] = [30, 5, 17];
/// The same, by ascending id: the order of a list and of a fan-out.
const BOB_SORTED: [u32; 3] = [5, 17, 30];

/// Alice (one device, id 1) and Bob (devices 30, 5 and 17): Alice's device's contact for
/// Bob, and each of Bob's devices' contact for Alice.
struct Scene {
    r: ChaCha20Rng,
    mode: Mode,
    alice: User,
    bob: User,
    alice_view: Contact,
    /// In the order of `bob.devices`.
    bob_views: Vec<Contact>,
}

impl Scene {
    fn new(seed: u64, mode: Mode) -> Scene {
        let mut r = rng(seed);
        let alice = User::new(&[ALICE], &mut r);
        let bob = User::new(&BOB, &mut r);
        let alice_view =
            Contact::first_use(alice.devices[0].key(), bob.list(), RecordLimits::default())
                .unwrap();
        let bob_views = bob
            .devices
            .iter()
            .map(|d| Contact::first_use(d.key(), alice.list(), RecordLimits::default()).unwrap())
            .collect();
        Scene {
            r,
            mode,
            alice,
            bob,
            alice_view,
            bob_views,
        }
    }

    /// Alice has a session with every Bob device, each acknowledged by a reply.
    fn established(seed: u64, mode: Mode) -> Scene {
        let mut s = Scene::new(seed, mode);
        for n in BOB {
            s.initiate(n);
        }
        let deliveries = s.alice_sends(b"hello all");
        s.deliver(deliveries, b"hello all");
        for n in BOB {
            let reply = s.bob_sends(n, &text("bob", n as usize));
            let received = s.alice_receives(n, &reply).unwrap();
            assert_eq!(received.plaintext, text("bob", n as usize));
        }
        s
    }

    /// A freshly published bundle of Bob's device `n`, of the scene's mode.
    fn bundle(&mut self, n: u32) -> PreKeyBundle {
        let i = self.bob.index(n);
        self.mode
            .bundle(&mut self.bob.devices[i].party.store, &mut self.r)
    }

    /// Alice's device initiates a session with Bob's device `n`.
    fn initiate(&mut self, n: u32) {
        let bundle = self.bundle(n);
        self.alice_view
            .initiate(
                &self.alice.devices[0].party.store,
                id(n),
                &bundle,
                &self.mode.options(),
                NOW,
                &mut self.r,
            )
            .unwrap();
    }

    /// Alice's device fans `plaintext` out to Bob's devices.
    fn alice_sends(&mut self, plaintext: &[u8]) -> Vec<Delivery> {
        self.alice_view.encrypt(plaintext, &mut self.r).unwrap()
    }

    /// Bob's device `n` takes a message from Alice's device.
    fn bob_receives(&mut self, n: u32, message: &[u8]) -> Result<Received, Error> {
        let i = self.bob.index(n);
        let options = self.mode.options();
        self.bob_views[i].receive(
            &mut self.bob.devices[i].party.store,
            id(ALICE),
            message,
            &options,
            NOW,
        )
    }

    /// Every delivery that has a message decrypts on its Bob device to `plaintext`.
    #[track_caller]
    fn deliver(&mut self, deliveries: Vec<Delivery>, plaintext: &[u8]) {
        for delivery in deliveries {
            assert_eq!(delivery.account, *self.bob.key());
            if let Ok(message) = delivery.result {
                let received = self.bob_receives(delivery.device.get(), &message).unwrap();
                assert_eq!(received.plaintext, plaintext);
            }
        }
    }

    /// Bob's device `n` fans `plaintext` out to Alice's account: one message, to device 1.
    #[track_caller]
    fn bob_sends(&mut self, n: u32, plaintext: &[u8]) -> Vec<u8> {
        let i = self.bob.index(n);
        let mut deliveries = self.bob_views[i].encrypt(plaintext, &mut self.r).unwrap();
        assert_eq!(deliveries.len(), 1);
        let delivery = deliveries.remove(0);
        assert_eq!(delivery.account, *self.alice.key());
        assert_eq!(delivery.device, id(ALICE));
        delivery.result.unwrap()
    }

    /// Alice's device takes a message from Bob's device `n` (as the transport says).
    fn alice_receives(&mut self, n: u32, message: &[u8]) -> Result<Received, Error> {
        let options = self.mode.options();
        self.alice_view.receive(
            &mut self.alice.devices[0].party.store,
            id(n),
            message,
            &options,
            NOW,
        )
    }
}

/// The devices of a fan-out's deliveries, in order.
fn targets(deliveries: &[Delivery]) -> Vec<u32> {
    deliveries.iter().map(|d| d.device.get()).collect()
}

// ---------------------------------------------------------------------------------------
// Lists and accounts
// ---------------------------------------------------------------------------------------

#[test]
fn hand_signed_lists_match_the_library() {
    let mut r = rng(1);
    let bob = User::new(&BOB, &mut r);
    let seed = seed_of(&bob.account);
    let list = bob.list();
    assert_eq!(list.counter(), 3);
    assert_eq!(listed(list), BOB_SORTED);
    assert_eq!(list.len(), 3);
    assert!(!list.is_empty());
    assert_eq!(list.account_key(), bob.key());
    assert_eq!(public_of(&seed), bob.key().to_bytes());
    assert_eq!(
        AccountKey::from_bytes(bob.key().as_bytes()).unwrap(),
        *bob.key()
    );

    // The layout of §9.4, and Ed25519 signatures are deterministic: the hand-signed list is
    // the library's, byte for byte.
    let bytes = list.to_bytes();
    assert_eq!(bytes.len(), LIST_FIXED + 3 * LIST_ENTRY);
    assert_eq!(bytes[0], BUNDLE_VERSION);
    assert_eq!(bytes[1], TYPE_DEVICE_LIST);
    assert_eq!(&bytes[LIST_ACCOUNT..LIST_COUNTER], bob.key().as_bytes());
    assert_eq!(bytes[LIST_COUNT], 3);
    assert_eq!(bytes, signed_list(&seed, 3, &entries(list)));
    for (k, earlier) in bob.history.iter().enumerate() {
        assert_eq!(earlier.counter(), k as u64 + 1);
        assert_eq!(
            earlier.to_bytes(),
            signed_list(&seed, k as u64 + 1, &entries(earlier))
        );
    }

    let parsed = DeviceList::from_bytes(&bytes).unwrap();
    assert_eq!(parsed, *list);
    assert_eq!(parsed.to_bytes(), bytes);
    for d in &bob.devices {
        assert_eq!(list.identity(d.id), Some(d.key()));
        assert_eq!(list.device_of(d.key()), Some(d.id));
    }
    assert_eq!(list.identity(id(6)), None);
    assert_eq!(list.device_of(&identity(&mut r)), None);
}

#[test]
fn every_change_signs_a_list_with_the_next_counter() {
    let mut r = rng(2);
    let a = Device::new(7, &mut r);
    let b = Device::new(3, &mut r);
    assert_eq!(
        Account::new(id(7), a.key(), &mut FailingRng::new(0)).err(),
        Some(Error::RandomnessUnavailable)
    );
    let mut account = Account::new(id(7), a.key(), &mut r).unwrap();
    assert_eq!(account.device_list().counter(), 1);
    assert_eq!(listed(account.device_list()), [7]);

    let list = account.add_device(id(3), b.key()).unwrap().clone();
    assert_eq!(list.counter(), 2);
    assert_eq!(listed(&list), [3, 7]);
    assert_eq!(account.device_list(), &list);

    let before = account.to_bytes().to_vec();
    assert_eq!(
        account.remove_device(id(99)).err(),
        Some(Error::UnknownDevice(id(99)))
    );
    assert_eq!(
        Error::UnknownDevice(id(99)).kind(),
        ErrorKind::RefreshDevices
    );
    assert_eq!(account.to_bytes()[..], before[..]);

    assert_eq!(account.remove_device(id(7)).unwrap().counter(), 3);
    assert_eq!(listed(account.device_list()), [3]);
    // An account may remove every device: the empty list is valid.
    let empty = account.remove_device(id(3)).unwrap().clone();
    assert_eq!(empty.counter(), 4);
    assert!(empty.is_empty());
    assert_eq!(empty.to_bytes().len(), LIST_FIXED);
    assert_eq!(DeviceList::from_bytes(&empty.to_bytes()).unwrap(), empty);
    // A removed device can come back, under a new counter.
    assert_eq!(account.add_device(id(7), a.key()).unwrap().counter(), 5);

    // The account's Debug output never shows the seed.
    let seed = seed_of(&account);
    let debug = format!("{account:?}");
    assert!(!debug.contains(&hex::encode(&seed)), "{debug}");
}

#[test]
fn an_account_lists_at_most_max_devices() {
    let mut r = rng(3);
    let keys: Vec<IdentityKey> = (0..=MAX_DEVICES).map(|_| identity(&mut r)).collect();
    let mut account = Account::new(id(0), &keys[0], &mut r).unwrap();
    for (n, key) in keys.iter().enumerate().take(MAX_DEVICES).skip(1) {
        account.add_device(id(n as u32), key).unwrap();
    }
    assert_eq!(account.device_list().len(), MAX_DEVICES);
    assert_eq!(account.device_list().counter(), MAX_DEVICES as u64);
    // The longest list and the largest stored account (§5.8).
    assert_eq!(account.device_list().to_bytes().len(), MAX_LIST);
    assert_eq!(account.to_bytes().len(), MAX_ACCOUNT);
    let full = account.to_bytes().to_vec();
    assert_eq!(Account::from_bytes(&full).unwrap().to_bytes()[..], full[..]);

    assert_eq!(
        account.add_device(id(99), &keys[MAX_DEVICES]).err(),
        Some(Error::TooManyDevices)
    );
    assert_eq!(Error::TooManyDevices.kind(), ErrorKind::FixCall);
    assert_eq!(account.to_bytes()[..], full[..]);

    // Duplicates, at a list with room.
    account.remove_device(id(15)).unwrap();
    let before = account.to_bytes().to_vec();
    let account_key = IdentityKey::from_bytes(account.account_key().as_bytes()).unwrap();
    for (name, d, key) in [
        ("listed id", 3, keys[MAX_DEVICES]),
        ("listed identity key", 99, keys[3]),
        ("the account key", 99, account_key),
    ] {
        assert_eq!(
            account.add_device(id(d), &key).err(),
            Some(Error::DuplicateDevice),
            "{name}"
        );
        assert_eq!(account.to_bytes()[..], before[..], "{name}");
    }
    // A removed device's id and key are free again.
    assert_eq!(
        account.add_device(id(15), &keys[15]).unwrap().len(),
        MAX_DEVICES
    );

    // 17 devices signed by hand under the account key: the list is longer than the
    // longest, refused by its size before anything is read (§9.4: `TooLarge` first).
    let seed = seed_of(&account);
    let seventeen: Vec<(u32, [u8; 32])> = keys
        .iter()
        .enumerate()
        .map(|(n, k)| (n as u32, k.to_bytes()))
        .collect();
    let long = signed_list(&seed, 100, &seventeen);
    assert_eq!(long.len(), LIST_FIXED + 17 * LIST_ENTRY);
    assert_eq!(DeviceList::from_bytes(&long), Err(Error::TooLarge));
    assert_eq!(
        Account::from_bytes(&account_bytes(&seed, &long)).err(),
        Some(Error::TooLarge)
    );
    // A count of 17 within the size bound (16 entries follow) is `InvalidEncoding`.
    let body = list_body(&public_of(&seed), 100, 17, &seventeen[..16]);
    let counted = sign_body(&seed, body);
    assert_eq!(counted.len(), MAX_LIST);
    assert_eq!(
        DeviceList::from_bytes(&counted),
        Err(Error::InvalidEncoding)
    );
    // The same 16 entries with their true count are a valid list.
    let sixteen = signed_list(&seed, 100, &seventeen[..16]);
    assert_eq!(DeviceList::from_bytes(&sixteen).unwrap().len(), MAX_DEVICES);
}

#[test]
fn the_counter_ends_at_u64_max() {
    let mut r = rng(4);
    let seed = [7u8; 32];
    let a = identity(&mut r);
    let b = identity(&mut r);
    let list = signed_list(&seed, u64::MAX, &[(1, a.to_bytes())]);
    let mut account = Account::from_bytes(&account_bytes(&seed, &list)).unwrap();
    assert_eq!(account.device_list().counter(), u64::MAX);
    let before = account.to_bytes().to_vec();
    assert_eq!(account.add_device(id(2), &b).err(), Some(Error::StoreFull));
    assert_eq!(account.remove_device(id(1)).err(), Some(Error::StoreFull));
    assert_eq!(account.to_bytes()[..], before[..]);
    // One below the end still signs.
    let list = signed_list(&seed, u64::MAX - 1, &[(1, a.to_bytes())]);
    let mut account = Account::from_bytes(&account_bytes(&seed, &list)).unwrap();
    assert_eq!(account.add_device(id(2), &b).unwrap().counter(), u64::MAX);
}

#[test]
fn lists_are_parsed_strictly() {
    let mut r = rng(5);
    let seed = [0x42u8; 32];
    let account = public_of(&seed);
    let k: Vec<[u8; 32]> = (0..3).map(|_| identity(&mut r).to_bytes()).collect();
    let valid = signed_list(&seed, 9, &[(1, k[0]), (2, k[1]), (70_000, k[2])]);
    let list = DeviceList::from_bytes(&valid).unwrap();
    assert_eq!(listed(&list), [1, 2, 70_000]);
    assert_eq!(list.counter(), 9);
    assert_eq!(list.account_key().to_bytes(), account);
    // Counter 1 and an empty list are valid.
    assert!(DeviceList::from_bytes(&signed_list(&seed, 1, &[]))
        .unwrap()
        .is_empty());

    let weak = {
        // The identity point: a canonical encoding of small order.
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let mut trailing = valid.clone();
    trailing.push(0);
    let mut too_large = signed_list(
        &seed,
        9,
        &(0..16)
            .map(|n| (n, identity(&mut r).to_bytes()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(too_large.len(), MAX_LIST);
    assert!(DeviceList::from_bytes(&too_large).is_ok());
    too_large.push(0);
    let mut version = valid.clone();
    version[0] = 0x01;
    let mut kind = valid.clone();
    kind[1] = 0x15;
    let unsigned = {
        let mut v = valid.clone();
        let end = v.len();
        v[end - SIGNATURE..].copy_from_slice(&[0x11; SIGNATURE]);
        v
    };
    let count_short = {
        // A count of 3 over 2 entries and 20 more bytes: the third entry is cut short.
        let mut body = list_body(&account, 9, 3, &[(1, k[0]), (2, k[1])]);
        body.extend_from_slice(&[0x7f; 20]);
        body
    };
    let count_long = {
        // A count of 1 over 2 entries: bytes are left over.
        let body = list_body(&account, 9, 1, &[(1, k[0]), (2, k[1])]);
        sign_body(&seed, body)
    };

    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "ids not ascending",
            signed_list(&seed, 9, &[(2, k[1]), (1, k[0])]),
            Error::InvalidEncoding,
        ),
        (
            "id listed twice",
            signed_list(&seed, 9, &[(1, k[0]), (1, k[1])]),
            Error::InvalidEncoding,
        ),
        (
            "identity key listed twice",
            signed_list(&seed, 9, &[(1, k[0]), (2, k[0])]),
            Error::InvalidEncoding,
        ),
        (
            "identity key equal to the account key",
            signed_list(&seed, 9, &[(1, k[0]), (2, account)]),
            Error::InvalidEncoding,
        ),
        (
            "counter 0",
            signed_list(&seed, 0, &[(1, k[0])]),
            Error::InvalidEncoding,
        ),
        ("count beyond the entries", count_short, Error::Truncated),
        ("count below the entries", count_long, Error::TrailingData),
        ("trailing byte", trailing, Error::TrailingData),
        ("one byte above the longest", too_large, Error::TooLarge),
        ("above the longest", vec![0u8; 4096], Error::TooLarge),
        ("version", version, Error::UnsupportedVersion(0x01)),
        ("type", kind, Error::UnexpectedType(0x15)),
        (
            "account key of small order",
            sign_body(&seed, list_body(&weak, 9, 1, &[(1, k[0])])),
            Error::InvalidPublicKey,
        ),
        (
            "device key of small order",
            signed_list(&seed, 9, &[(1, k[0]), (2, weak)]),
            Error::InvalidPublicKey,
        ),
        ("signature of nothing", unsigned, Error::InvalidSignature),
        ("empty", vec![], Error::Truncated),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(DeviceList::from_bytes(&bytes), Err(expected), "{name}");
    }

    every_prefix_is_truncated(&valid, DeviceList::from_bytes);
}

#[test]
fn a_signature_by_another_key_or_over_other_bytes_is_refused() {
    let mut r = rng(6);
    let bob = User::new(&BOB, &mut r);
    let mallory = User::new(&[9], &mut r);
    let seed = seed_of(&bob.account);
    let mallory_seed = seed_of(&mallory.account);
    let bytes = bob.list().to_bytes();
    let signed = bytes.len() - SIGNATURE;

    // Bob's list with a signature by Mallory's key over the same bytes.
    let mut foreign = bytes.clone();
    foreign[signed..].copy_from_slice(&list_signature(&mallory_seed, &bytes[..signed]));
    assert_eq!(
        DeviceList::from_bytes(&foreign),
        Err(Error::InvalidSignature)
    );
    // Mallory's own list (validly signed) with its account key swapped for Bob's.
    let mut claimed = mallory.list().to_bytes();
    claimed[LIST_ACCOUNT..LIST_COUNTER].copy_from_slice(bob.key().as_bytes());
    assert_eq!(
        DeviceList::from_bytes(&claimed),
        Err(Error::InvalidSignature)
    );
    // Bob's key over the list without the label (another protocol's signature).
    let mut unlabelled = bytes.clone();
    let raw = SigningKey::from_bytes(&seed)
        .sign(&bytes[..signed])
        .to_bytes();
    unlabelled[signed..].copy_from_slice(&raw);
    assert_eq!(
        DeviceList::from_bytes(&unlabelled),
        Err(Error::InvalidSignature)
    );
    // Another list's signature.
    let mut swapped = bytes.clone();
    let older = bob.history[1].to_bytes();
    swapped[signed..].copy_from_slice(&older[older.len() - SIGNATURE..]);
    assert_eq!(
        DeviceList::from_bytes(&swapped),
        Err(Error::InvalidSignature)
    );

    // Every bit of the list flipped: never accepted, and refused with the error of where
    // the bit is.
    let entries_end = LIST_ENTRIES + 3 * LIST_ENTRY;
    every_bit_flip(&bytes, |byte, bit, flipped| {
        let e = DeviceList::from_bytes(flipped).unwrap_err();
        let expected: &[Error] = match byte {
            0 => &[Error::UnsupportedVersion(flipped[0])],
            1 => &[Error::UnexpectedType(flipped[1])],
            LIST_ACCOUNT..LIST_COUNTER => &[Error::InvalidPublicKey, Error::InvalidSignature],
            LIST_COUNTER..LIST_COUNT => &[Error::InvalidSignature],
            LIST_COUNT => &[
                Error::Truncated,
                Error::TrailingData,
                Error::InvalidEncoding,
                Error::InvalidPublicKey,
            ],
            b if b < entries_end && (b - LIST_ENTRIES) % LIST_ENTRY < 4 => {
                &[Error::InvalidSignature, Error::InvalidEncoding]
            }
            b if b < entries_end => &[Error::InvalidPublicKey, Error::InvalidSignature],
            _ => &[Error::InvalidSignature],
        };
        assert!(
            expected.contains(&e),
            "byte {byte} bit {bit}: {e:?}, expected one of {expected:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Contacts: the rules of §9.5
// ---------------------------------------------------------------------------------------

#[test]
fn a_contact_is_pinned_on_first_use_or_verified() {
    let mut r = rng(7);
    let alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&BOB, &mut r);
    let local = alice.devices[0].key();

    let contact = Contact::first_use(local, bob.list(), RecordLimits::default()).unwrap();
    assert_eq!(contact.trust(), Trust::FirstUse);
    assert_eq!(contact.account_key(), bob.key());
    assert_eq!(contact.local_identity(), local);
    assert_eq!(contact.device_list(), bob.list());
    assert_eq!(contact.limits(), RecordLimits::default());
    assert!(!contact.requires_post_quantum());
    assert_eq!(contact.records().count(), 0);

    let mut verified =
        Contact::verified(local, bob.key(), bob.list(), RecordLimits::default()).unwrap();
    assert_eq!(verified.trust(), Trust::Verified);
    assert_eq!(
        Contact::verified(local, alice.key(), bob.list(), RecordLimits::default()).err(),
        Some(Error::IdentityMismatch)
    );
    let bad = RecordLimits::default().with_max_archived(0);
    assert_eq!(
        Contact::first_use(local, bob.list(), bad).err(),
        Some(Error::InvalidLimits)
    );
    assert_eq!(
        Contact::verified(local, bob.key(), bob.list(), bad).err(),
        Some(Error::InvalidLimits)
    );

    let mut first = Contact::first_use(local, bob.list(), RecordLimits::default()).unwrap();
    first.mark_verified();
    assert_eq!(first.trust(), Trust::Verified);
    assert!(snapshot(&first) == snapshot(&verified));
    verified.mark_verified();
    assert_eq!(verified.trust(), Trust::Verified);
}

#[test]
fn replayed_and_equal_counter_lists_are_stale() {
    let mut s = Scene::established(10, Mode::Classical);
    let held = s.bob.list().clone();
    assert_eq!(held.counter(), 3);
    let stored = s.bob.account.to_bytes().to_vec();

    // The held list again, as the same value or parsed from its bytes: nothing to do.
    let before = snapshot(&s.alice_view);
    assert_eq!(
        s.alice_view.update_devices(&held),
        Ok(DeviceUpdate::Unchanged)
    );
    let copy = DeviceList::from_bytes(&held.to_bytes()).unwrap();
    assert_eq!(
        s.alice_view.update_devices(&copy),
        Ok(DeviceUpdate::Unchanged)
    );
    assert!(snapshot(&s.alice_view) == before);

    // A newer list is taken.
    let newer = s.bob.add(40, &mut s.r);
    assert_eq!(newer.counter(), 4);
    assert_eq!(s.alice_view.update_devices(&newer), Ok(updated(&[40], &[])));
    assert_eq!(s.alice_view.device_list(), &newer);

    // Every older list, replayed: stale, nothing changed.
    for old in &s.bob.history[..3] {
        assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
            c.update_devices(old)
        });
    }
    assert_eq!(Error::StaleDeviceList.kind(), ErrorKind::DropMessage);

    // An equal counter with other devices: the account restored from a copy stored before
    // device 40, then adding device 41, signs another list with counter 4.
    let mut rolled_back = Account::from_bytes(&stored).unwrap();
    let other = identity(&mut s.r);
    let fork = rolled_back.add_device(id(41), &other).unwrap().clone();
    assert_eq!(fork.counter(), newer.counter());
    assert_ne!(fork, newer);
    assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
        c.update_devices(&fork)
    });
    // The same by hand: counter 4 with the devices of counter 3.
    let seed = seed_of(&s.bob.account);
    let same_counter = DeviceList::from_bytes(&signed_list(&seed, 4, &entries(&held))).unwrap();
    assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
        c.update_devices(&same_counter)
    });

    // The contact still holds the newest list, and still reaches every device.
    assert_eq!(s.alice_view.device_list(), &newer);
    assert_eq!(
        s.alice_view.update_devices(&newer),
        Ok(DeviceUpdate::Unchanged)
    );
    let deliveries = s.alice_sends(b"after the replays");
    assert_eq!(targets(&deliveries), [5, 17, 30, 40]);
    assert_eq!(deliveries[3].result, Err(Error::NoSession));
    s.deliver(deliveries, b"after the replays");
}

#[test]
fn a_removed_device_is_refused_and_its_record_dropped() {
    let mut s = Scene::established(11, Mode::Classical);
    let before_removal = s.bob.list().clone();
    // A message device 17 sent before it was removed, and a copy of its record.
    let late = s.bob_sends(17, b"late");
    let saved = s.alice_view.record(id(17)).unwrap().to_bytes().to_vec();
    let kept: Vec<Vec<u8>> = [5, 30]
        .iter()
        .map(|&n| s.alice_view.record(id(n)).unwrap().to_bytes().to_vec())
        .collect();

    let list = s.bob.remove(17);
    assert_eq!(s.alice_view.update_devices(&list), Ok(updated(&[], &[17])));
    assert!(s.alice_view.record(id(17)).is_none());
    assert_eq!(
        s.alice_view
            .records()
            .map(|(d, _)| d.get())
            .collect::<Vec<_>>(),
        [5, 30]
    );
    for (n, bytes) in [5, 30].iter().zip(&kept) {
        assert_eq!(
            s.alice_view.record(id(*n)).unwrap().to_bytes()[..],
            bytes[..],
            "device {n}'s record changed"
        );
    }

    // Its messages and its bundles are refused, and nothing changes (nor Alice's store).
    let store = s.alice.devices[0].party.store.to_bytes().to_vec();
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(17)), |c| {
        c.receive(
            &mut s.alice.devices[0].party.store,
            id(17),
            &late,
            &SessionOptions::new(),
            NOW,
        )
    });
    assert_eq!(s.alice.devices[0].party.store.to_bytes()[..], store[..]);
    let bundle = s.bundle(17);
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(17)), |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(17),
            &bundle,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    // Its record, stored before, is not put back.
    let mut reloaded = Contact::from_bytes(&s.alice_view.to_bytes()).unwrap();
    assert_eq!(
        reloaded.restore_record(id(17), SessionRecord::from_bytes(&saved).unwrap()),
        Err(Error::UnknownDevice(id(17)))
    );

    // The list before the removal, replayed, does not bring it back.
    assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
        c.update_devices(&before_removal)
    });
    assert_eq!(s.alice_view.device_list().identity(id(17)), None);
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(17)), |c| {
        c.receive(
            &mut s.alice.devices[0].party.store,
            id(17),
            &late,
            &SessionOptions::new(),
            NOW,
        )
    });

    // The fan-out reaches the others only.
    let deliveries = s.alice_sends(b"without 17");
    assert_eq!(targets(&deliveries), [5, 30]);
    assert!(deliveries.iter().all(|d| d.result.is_ok()));
    s.deliver(deliveries, b"without 17");

    // Bob's device 17 is still in Bob's devices but Alice's view of it is gone: a new
    // session would need a list that lists it again.
    let key17 = *s.bob.device(17).key();
    let back = s.bob.account.add_device(id(17), &key17).unwrap().clone();
    assert_eq!(s.alice_view.update_devices(&back), Ok(updated(&[17], &[])));
    assert!(s.alice_view.record(id(17)).is_none());
    s.initiate(17);
    let deliveries = s.alice_sends(b"welcome back");
    assert_eq!(targets(&deliveries), [5, 17, 30]);
    s.deliver(deliveries, b"welcome back");
}

#[test]
fn an_id_reused_with_another_key_is_added_and_removed() {
    let mut s = Scene::established(12, Mode::Classical);
    let late = s.bob_sends(17, b"old device 17");
    let old_key = *s.bob.device(17).key();
    s.bob.remove(17);
    // Device 17 reinstalled with a new identity, under the same id.
    let index = s.bob.index(17);
    let mut old_device = s.bob.devices.remove(index);
    s.bob_views.remove(index);
    let list = s.bob.add(17, &mut s.r);
    assert_ne!(list.identity(id(17)), Some(&old_key));

    // Alice skips the intermediate list: 17 is both removed (the old key) and added.
    assert_eq!(
        s.alice_view.update_devices(&list),
        Ok(updated(&[17], &[17]))
    );
    assert!(s.alice_view.record(id(17)).is_none());
    // The old device's messages no longer reach a record: the new 17 has no session.
    let store = s.alice.devices[0].party.store.to_bytes().to_vec();
    assert_refused(&mut s.alice_view, Error::NoSession, |c| {
        c.receive(
            &mut s.alice.devices[0].party.store,
            id(17),
            &late,
            &SessionOptions::new(),
            NOW,
        )
    });
    assert_eq!(s.alice.devices[0].party.store.to_bytes()[..], store[..]);
    // A bundle of the old identity is refused for the new 17.
    let old_bundle = old_device.party.bundle(&mut s.r);
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(17),
            &old_bundle,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    let deliveries = s.alice_sends(b"to the new 17");
    assert_eq!(targets(&deliveries), [5, 17, 30]);
    assert_eq!(deliveries[1].result, Err(Error::NoSession));
}

#[test]
fn a_list_under_another_account_key_is_an_identity_change() {
    let mut s = Scene::established(13, Mode::Classical);
    s.alice_view.mark_verified();
    let old_key = *s.bob.key();
    let old_list = s.bob.list().clone();
    let before = snapshot(&s.alice_view);
    let records: Vec<(u32, Vec<u8>)> = [5, 30]
        .iter()
        .map(|&n| (n, s.alice_view.record(id(n)).unwrap().to_bytes().to_vec()))
        .collect();

    // Bob reinstalls his account: a new account key listing devices 30 and 5 (the same
    // identities), a new device 40, and not 17.
    let d40 = Device::new(40, &mut s.r);
    let mut reinstalled = Account::new(id(30), s.bob.device(30).key(), &mut s.r).unwrap();
    reinstalled
        .add_device(id(5), s.bob.device(5).key())
        .unwrap();
    let first_new = reinstalled.device_list().clone();
    reinstalled.add_device(id(40), d40.key()).unwrap();
    let new_list = reinstalled.device_list().clone();
    // Counters are per account key: the new lists are not higher than the held one.
    assert!(first_new.counter() < old_list.counter());
    assert_eq!(new_list.counter(), old_list.counter());

    let change = match s.alice_view.update_devices(&new_list).unwrap() {
        DeviceUpdate::IdentityChanged(change) => change,
        other => panic!("expected an identity change, got {other:?}"),
    };
    assert_eq!(change.old_key(), &old_key);
    assert_eq!(change.new_key(), reinstalled.account_key());
    assert_eq!(change.device_list(), &new_list);
    let debug = format!("{change:?}");
    assert!(debug.contains("IdentityChange"), "{debug}");

    // Nothing changed: the old key stays pinned and verified, the old devices reachable.
    assert!(snapshot(&s.alice_view) == before);
    assert_eq!(s.alice_view.account_key(), &old_key);
    assert_eq!(s.alice_view.trust(), Trust::Verified);
    assert_eq!(s.alice_view.device_list(), &old_list);
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(40)), |c| {
        c.receive(
            &mut s.alice.devices[0].party.store,
            id(40),
            b"anything",
            &SessionOptions::new(),
            NOW,
        )
    });
    // Every list under the new key is an identity change, whatever its counter.
    for list in [&first_new, &new_list] {
        let again = s.alice_view.update_devices(list).unwrap();
        assert!(
            matches!(&again, DeviceUpdate::IdentityChanged(c) if c.device_list() == list),
            "{again:?}"
        );
        assert!(snapshot(&s.alice_view) == before);
    }

    // Accepted: the new key is pinned on first use and its list taken; the records of the
    // devices listed with the same identity stay, 17's is dropped.
    assert_eq!(
        s.alice_view.accept_identity_change(change.clone()),
        Ok(updated(&[40], &[17]))
    );
    assert_eq!(s.alice_view.account_key(), reinstalled.account_key());
    assert_eq!(s.alice_view.trust(), Trust::FirstUse);
    assert_eq!(s.alice_view.device_list(), &new_list);
    assert!(s.alice_view.record(id(17)).is_none());
    for (n, bytes) in &records {
        assert_eq!(
            s.alice_view.record(id(*n)).unwrap().to_bytes()[..],
            bytes[..]
        );
    }

    // Accepted twice: stale, nothing changed.
    assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
        c.accept_identity_change(change.clone())
    });
    // The old key's list is now an identity change in turn.
    match s.alice_view.update_devices(&old_list).unwrap() {
        DeviceUpdate::IdentityChanged(back) => {
            assert_eq!(back.old_key(), reinstalled.account_key());
            assert_eq!(back.new_key(), &old_key);
        }
        other => panic!("expected an identity change, got {other:?}"),
    }
    // The new key's lists follow the counter rules.
    assert_refused(&mut s.alice_view, Error::StaleDeviceList, |c| {
        c.update_devices(&first_new)
    });
    let next = reinstalled.remove_device(id(40)).unwrap().clone();
    assert_eq!(s.alice_view.update_devices(&next), Ok(updated(&[], &[40])));

    // The sessions with 5 and 30 go on, under Bob's new account.
    s.bob.account = reinstalled;
    let deliveries = s.alice_sends(b"after the change");
    assert_eq!(targets(&deliveries), [5, 30]);
    s.deliver(deliveries, b"after the change");
}

#[test]
fn a_change_computed_against_an_earlier_state_is_stale() {
    let mut r = rng(14);
    let alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&BOB, &mut r);
    let mut contact =
        Contact::first_use(alice.devices[0].key(), bob.list(), RecordLimits::default()).unwrap();
    let k2 = User::new(&[5], &mut r);
    let k3 = User::new(&[5], &mut r);
    let change = |c: &mut Contact, list: &DeviceList| -> IdentityChange {
        match c.update_devices(list).unwrap() {
            DeviceUpdate::IdentityChanged(change) => change,
            other => panic!("expected an identity change, got {other:?}"),
        }
    };
    let to_k2 = change(&mut contact, k2.list());
    let to_k3 = change(&mut contact, k3.list());
    assert_eq!(to_k2.old_key(), to_k3.old_key());
    assert_eq!(
        contact.accept_identity_change(to_k3),
        Ok(updated(&[5], &[5, 17, 30]))
    );
    assert_eq!(contact.account_key(), k3.key());
    // The other change was computed against the key before: stale.
    assert_refused(&mut contact, Error::StaleDeviceList, |c| {
        c.accept_identity_change(to_k2.clone())
    });
    assert_eq!(contact.account_key(), k3.key());
    // A change computed from the current state is accepted.
    let now_to_k2 = change(&mut contact, k2.list());
    assert_eq!(now_to_k2.old_key(), k3.key());
    assert_eq!(
        contact.accept_identity_change(now_to_k2),
        Ok(updated(&[5], &[5]))
    );
    assert_eq!(contact.account_key(), k2.key());
}

#[test]
fn identity_changes_show_both_safety_numbers() {
    let mut r = rng(15);
    let alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&BOB, &mut r);
    let reinstalled = User::new(&[5], &mut r);
    let mut contact =
        Contact::first_use(alice.devices[0].key(), bob.list(), RecordLimits::default()).unwrap();
    let DeviceUpdate::IdentityChanged(change) = contact.update_devices(reinstalled.list()).unwrap()
    else {
        panic!("expected an identity change");
    };
    let own = alice.key();
    let (old, new) = change.safety_numbers(own);
    assert_eq!(old, SafetyNumber::of_accounts(own, bob.key()));
    assert_eq!(new, SafetyNumber::of_accounts(own, reinstalled.key()));
    assert_ne!(old, new);
    assert_ne!(old.to_digits(), new.to_digits());
    // The account numbers are the identity-key numbers of the account keys, symmetric.
    assert_eq!(old, SafetyNumber::of_accounts(bob.key(), own));
    let as_identity = |k: &AccountKey| IdentityKey::from_bytes(k.as_bytes()).unwrap();
    assert_eq!(
        old,
        SafetyNumber::new(&as_identity(own), &as_identity(bob.key()))
    );
}

#[test]
fn bundles_must_be_of_the_listed_identity() {
    let mut s = Scene::new(16, Mode::Classical);
    // Device 5's bundle offered for device 17.
    let bundle = s.bundle(5);
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(17),
            &bundle,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    // A bundle of an unlisted identity for a listed device.
    let mut stranger = Party::new(&mut s.r);
    let strange = stranger.bundle(&mut s.r);
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(5),
            &strange,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    // A device of another identity than the contact's local one.
    assert_refused(&mut s.alice_view, Error::WrongRecord, |c| {
        c.initiate(
            &stranger.store,
            id(5),
            &bundle,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    // An initial message from device 30, claimed by the transport to come from 5: refused
    // without a change, then taken from 30.
    let alice_bundle = s.alice.devices[0].party.bundle(&mut s.r);
    let i30 = s.bob.index(30);
    s.bob_views[i30]
        .initiate(
            &s.bob.devices[i30].party.store,
            id(ALICE),
            &alice_bundle,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
        .unwrap();
    let first = s.bob_sends(30, b"from 30");
    let store = s.alice.devices[0].party.store.to_bytes().to_vec();
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.receive(
            &mut s.alice.devices[0].party.store,
            id(5),
            &first,
            &SessionOptions::new(),
            NOW,
        )
    });
    assert_eq!(s.alice.devices[0].party.store.to_bytes()[..], store[..]);
    let received = s.alice_receives(30, &first).unwrap();
    assert_eq!(received.plaintext, b"from 30");
    assert!(received.new_session);
    // A normal message of 30's session claimed from 5 (with a session of its own): it does
    // not decrypt there, and nothing changes.
    s.initiate(5);
    let deliveries = s.alice_sends(b"to 5 and 30");
    s.deliver(deliveries, b"to 5 and 30");
    let normal = s.bob_sends(30, b"normal from 30");
    let before = snapshot(&s.alice_view);
    let result = s.alice_receives(5, &normal);
    assert!(result.is_err(), "{result:?}");
    assert!(snapshot(&s.alice_view) == before);
    assert_eq!(
        s.alice_receives(30, &normal).unwrap().plaintext,
        b"normal from 30"
    );
    // Not an unlisted device: the stranger's device id is not in the list at all.
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(99)), |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(99),
            &strange,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
}

#[cfg(feature = "pqxdh")]
#[test]
fn a_contact_that_offered_post_quantum_keys_must_keep_offering_them() {
    let mut s = Scene::new(17, Mode::PostQuantum);
    assert!(!s.alice_view.requires_post_quantum());
    s.initiate(5);
    assert!(s.alice_view.requires_post_quantum());
    assert_eq!(s.alice_view.to_bytes()[CONTACT_PQ], 1);

    // A classical bundle, for another device or the same one: refused, nothing changed.
    for n in [17, 5] {
        let i = s.bob.index(n);
        let classical = s.bob.devices[i].party.bundle(&mut s.r);
        assert!(!classical.is_post_quantum());
        assert_refused(&mut s.alice_view, Error::PostQuantumRequired, |c| {
            c.initiate(
                &s.alice.devices[0].party.store,
                id(n),
                &classical,
                &SessionOptions::new(),
                NOW,
                &mut s.r,
            )
        });
    }
    assert_eq!(Error::PostQuantumRequired.kind(), ErrorKind::DropMessage);

    // The memory survives storage, and an accepted identity change.
    let mut copy = reloaded(&s.alice_view);
    assert!(copy.requires_post_quantum());
    let i17 = s.bob.index(17);
    let classical = s.bob.devices[i17].party.bundle(&mut s.r);
    assert_refused(&mut copy, Error::PostQuantumRequired, |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(17),
            &classical,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    let mut other = Account::new(id(17), s.bob.device(17).key(), &mut s.r).unwrap();
    other.add_device(id(5), s.bob.device(5).key()).unwrap();
    let DeviceUpdate::IdentityChanged(change) = copy.update_devices(other.device_list()).unwrap()
    else {
        panic!("expected an identity change");
    };
    let _ = copy.accept_identity_change(change).unwrap();
    assert!(copy.requires_post_quantum());

    // A post-quantum bundle is still taken.
    s.initiate(30);
    // The app's override: classical bundles are taken again, until the next PQ bundle.
    s.alice_view.forget_post_quantum();
    assert!(!s.alice_view.requires_post_quantum());
    assert_eq!(s.alice_view.to_bytes()[CONTACT_PQ], 0);
    s.mode = Mode::Classical;
    s.initiate(17);
    assert!(!s.alice_view.requires_post_quantum());
    let deliveries = s.alice_sends(b"mixed");
    assert_eq!(targets(&deliveries), [5, 17, 30]);
    assert!(deliveries.iter().all(|d| d.result.is_ok()));
    s.deliver(deliveries, b"mixed");
    s.mode = Mode::PostQuantum;
    s.initiate(17);
    assert!(s.alice_view.requires_post_quantum());
}

// ---------------------------------------------------------------------------------------
// Fan-out (§9.6)
// ---------------------------------------------------------------------------------------

#[test]
fn fan_out_gives_one_delivery_per_device_by_ascending_id() {
    let mut s = Scene::new(20, Mode::Classical);
    // Sessions with 30 and 5, not 17.
    s.initiate(30);
    s.initiate(5);
    let deliveries = s.alice_sends(b"two of three");
    assert_eq!(targets(&deliveries), BOB_SORTED);
    for d in &deliveries {
        assert_eq!(d.account, *s.bob.key());
        let debug = format!("{d:?}");
        assert!(debug.contains("Delivery"), "{debug}");
    }
    assert_eq!(deliveries[1].result, Err(Error::NoSession));
    assert!(deliveries[0].result.is_ok() && deliveries[2].result.is_ok());
    assert!(s.alice_view.record(id(17)).is_none());
    // Each of the others decrypts on its own device, as a new session.
    for d in deliveries {
        if let Ok(message) = d.result {
            let received = s.bob_receives(d.device.get(), &message).unwrap();
            assert_eq!(received.plaintext, b"two of three");
            assert!(received.new_session);
        }
    }
    // Device 17 never got a message: its contact for Alice has no record.
    assert!(s.bob_views[s.bob.index(17)].record(id(ALICE)).is_none());

    // Replies, then a second fan-out on acknowledged sessions; then 17 joins.
    for n in [5, 30] {
        let reply = s.bob_sends(n, b"reply");
        assert_eq!(s.alice_receives(n, &reply).unwrap().plaintext, b"reply");
    }
    let deliveries = s.alice_sends(b"second");
    assert_eq!(deliveries[1].result, Err(Error::NoSession));
    s.deliver(deliveries, b"second");
    s.initiate(17);
    let deliveries = s.alice_sends(b"all three");
    assert!(deliveries.iter().all(|d| d.result.is_ok()));
    s.deliver(deliveries, b"all three");
}

#[test]
fn a_device_that_cannot_send_does_not_stop_the_others() {
    let mut s = Scene::established(21, Mode::Classical);
    // Device 17's record has no sending session (archived, as after a decryption-error
    // request). The contact gives no mutable access to a record, so the contact is rebuilt
    // from storage with that record.
    let mut rebuilt = Contact::from_bytes(&s.alice_view.to_bytes()).unwrap();
    for (d, record) in s.alice_view.records() {
        let mut copy = SessionRecord::from_bytes(&record.to_bytes()).unwrap();
        if d == id(17) {
            assert!(copy.archive_sending_session().is_some());
        }
        rebuilt.restore_record(d, copy).unwrap();
    }
    s.alice_view = rebuilt;
    let broken = s.alice_view.record(id(17)).unwrap().to_bytes().to_vec();

    let deliveries = s.alice_sends(b"despite 17");
    assert_eq!(targets(&deliveries), BOB_SORTED);
    assert_eq!(deliveries[1].result, Err(Error::NoSession));
    assert!(deliveries[0].result.is_ok() && deliveries[2].result.is_ok());
    assert_eq!(
        s.alice_view.record(id(17)).unwrap().to_bytes()[..],
        broken[..]
    );
    s.deliver(deliveries, b"despite 17");
    // The retired session still decrypts device 17's messages.
    let reply = s.bob_sends(17, b"from 17");
    assert_eq!(s.alice_receives(17, &reply).unwrap().plaintext, b"from 17");
}

#[test]
fn fan_out_to_own_devices_skips_the_local_one() {
    let mut r = rng(22);
    let mut alice = User::new(&[1, 2], &mut r);
    let mut bob = User::new(&BOB, &mut r);
    let limits = RecordLimits::default();
    let (a1, rest) = alice.devices.split_at_mut(1);
    let (a1, a2) = (&mut a1[0], &mut rest[0]);
    let mut to_bob = Contact::first_use(a1.key(), bob.list(), limits).unwrap();
    let mut own = Contact::verified(
        a1.key(),
        alice.account.account_key(),
        alice.account.device_list(),
        limits,
    )
    .unwrap();
    let mut a2_own = Contact::verified(
        a2.key(),
        alice.account.account_key(),
        alice.account.device_list(),
        limits,
    )
    .unwrap();
    let mut bob_views: Vec<Contact> = bob
        .devices
        .iter()
        .map(|d| Contact::first_use(d.key(), alice.account.device_list(), limits).unwrap())
        .collect();
    let options = SessionOptions::new();

    for d in bob.devices.iter_mut() {
        let bundle = d.party.bundle(&mut r);
        to_bob
            .initiate(&a1.party.store, d.id, &bundle, &options, NOW, &mut r)
            .unwrap();
    }
    // The local device is no target: initiating to it is a wrong call.
    let own_bundle = a1.party.bundle(&mut r);
    assert_refused(&mut own, Error::WrongRecord, |c| {
        c.initiate(&a1.party.store, id(1), &own_bundle, &options, NOW, &mut r)
    });
    let bundle = a2.party.bundle(&mut r);
    own.initiate(&a1.party.store, id(2), &bundle, &options, NOW, &mut r)
        .unwrap();

    let deliveries = encrypt_to_devices(&mut [&mut to_bob, &mut own], b"everyone", &mut r).unwrap();
    let got: Vec<(AccountKey, u32)> = deliveries
        .iter()
        .map(|d| (d.account, d.device.get()))
        .collect();
    let bob_key = *bob.account.account_key();
    let alice_key = *alice.account.account_key();
    assert_eq!(
        got,
        [(bob_key, 5), (bob_key, 17), (bob_key, 30), (alice_key, 2)]
    );
    for d in deliveries {
        let message = d.result.unwrap();
        let received = if d.account == alice_key {
            a2_own.receive(&mut a2.party.store, id(1), &message, &options, NOW)
        } else {
            let i = bob.index(d.device.get());
            bob_views[i].receive(
                &mut bob.devices[i].party.store,
                id(1),
                &message,
                &options,
                NOW,
            )
        };
        assert_eq!(received.unwrap().plaintext, b"everyone");
    }
    // The local device receiving from itself is a wrong call, as a record for it would be.
    assert_refused(&mut own, Error::WrongRecord, |c| {
        c.receive(&mut a1.party.store, id(1), b"to self", &options, NOW)
    });

    // The own contact alone, with only the local device left: no target, no delivery.
    let only_local = alice.account.remove_device(id(2)).unwrap().clone();
    assert_eq!(own.update_devices(&only_local), Ok(updated(&[], &[2])));
    assert!(own.encrypt(b"nobody", &mut r).unwrap().is_empty());
}

#[test]
fn a_failing_rng_changes_no_record() {
    for mode in [Mode::Classical, Mode::HeaderEncrypted] {
        let mut s = Scene::established(23, mode);
        // Each Bob device has also sent a message since Alice's last: the next send on
        // every session completes a DH ratchet step (the largest draw).
        let mut own = Contact::verified(
            s.alice.devices[0].key(),
            s.alice.key(),
            s.alice.list(),
            RecordLimits::default(),
        )
        .unwrap();
        let before = snapshot(&s.alice_view);
        let own_before = snapshot(&own);
        for working in [0, 1] {
            let mut failing = FailingRng::new(working);
            // With no draw at all, or after another draw used the only working one.
            if working == 1 {
                let mut b = [0u8; 1];
                failing.try_fill_bytes(&mut b).unwrap();
            }
            assert_eq!(
                s.alice_view.encrypt(b"lost", &mut failing).err(),
                Some(Error::RandomnessUnavailable),
                "{mode:?}"
            );
            assert_eq!(
                encrypt_to_devices(&mut [&mut s.alice_view, &mut own], b"lost", &mut failing).err(),
                Some(Error::RandomnessUnavailable),
                "{mode:?}"
            );
            assert!(snapshot(&s.alice_view) == before, "{mode:?}");
            assert!(snapshot(&own) == own_before, "{mode:?}");
        }
        assert_eq!(Error::RandomnessUnavailable.kind(), ErrorKind::RetryLater);
        // All the randomness is one draw: an RNG that serves one request suffices.
        let deliveries = s
            .alice_view
            .encrypt(b"one draw", &mut FailingRng::new(1))
            .unwrap();
        assert!(deliveries.iter().all(|d| d.result.is_ok()), "{mode:?}");
        s.deliver(deliveries, b"one draw");
    }
}

#[test]
fn each_device_reads_its_own_44_bytes_of_one_draw() {
    for mode in Mode::all() {
        let mut s = Scene::established(24, mode);
        // Make 17 record-less by a new list without it, then with it again: three targets,
        // two with sessions due a DH ratchet step, one without a session.
        let without = s.bob.remove(17);
        assert_eq!(
            s.alice_view.update_devices(&without),
            Ok(updated(&[], &[17]))
        );
        let key17 = *s.bob.device(17).key();
        let with = s.bob.account.add_device(id(17), &key17).unwrap().clone();
        assert_eq!(s.alice_view.update_devices(&with), Ok(updated(&[17], &[])));
        assert!(s.alice_view.record(id(17)).is_none());

        let mut copies: Vec<(DeviceId, SessionRecord)> = s
            .alice_view
            .records()
            .map(|(d, r)| (d, SessionRecord::from_bytes(&r.to_bytes()).unwrap()))
            .collect();
        let mut twin = s.r.clone();
        let deliveries = s.alice_sends(b"drawn once");
        let mut drawn = vec![0u8; 3 * FAN_OUT_RANDOM];
        twin.fill_bytes(&mut drawn);
        // The fan-out drew exactly that: the scene's RNG is where the twin is.
        assert_eq!(twin.next_u64(), s.r.clone().next_u64(), "{mode:?}");

        for (k, delivery) in deliveries.iter().enumerate() {
            let share = &drawn[k * FAN_OUT_RANDOM..(k + 1) * FAN_OUT_RANDOM];
            match copies.iter_mut().find(|(d, _)| *d == delivery.device) {
                Some((_, record)) => {
                    // The share is all it needs, and in header-encrypted mode all of it: a
                    // new ratchet key and a header nonce (the record is unchanged by the
                    // failure).
                    if mode.header_encrypted() {
                        assert_eq!(
                            record
                                .encrypt(
                                    b"drawn once",
                                    &mut ListedRng::new(&share[..FAN_OUT_RANDOM - 1])
                                )
                                .err(),
                            Some(Error::RandomnessUnavailable)
                        );
                    }
                    let again = record
                        .encrypt(b"drawn once", &mut ListedRng::new(share))
                        .unwrap();
                    assert_eq!(
                        delivery.result.as_ref().unwrap(),
                        &again,
                        "{mode:?}: device {}",
                        delivery.device
                    );
                }
                None => assert_eq!(delivery.result, Err(Error::NoSession), "{mode:?}"),
            }
        }
        s.deliver(deliveries, b"drawn once");
    }
}

#[test]
fn fan_out_randomness_suffices_across_ratchet_steps() {
    for mode in Mode::all() {
        let mut s = Scene::established(25, mode);
        for round in 0..8 {
            // Alice to every device, each device back: every send completes a DH ratchet
            // step, drawing a new ratchet key (and, header-encrypted, a nonce).
            let plaintext = text("alice", round);
            let deliveries = s.alice_sends(&plaintext);
            assert_eq!(targets(&deliveries), BOB_SORTED);
            assert!(
                deliveries.iter().all(|d| d.result.is_ok()),
                "{mode:?} round {round}: {deliveries:?}"
            );
            s.deliver(deliveries, &plaintext);
            for n in BOB {
                let reply = text(&format!("bob {n}"), round);
                let message = s.bob_sends(n, &reply);
                assert_eq!(s.alice_receives(n, &message).unwrap().plaintext, reply);
            }
        }
        // Two sends in a row: the second needs no new ratchet key.
        for round in 0..2 {
            let plaintext = text("again", round);
            let deliveries = s.alice_sends(&plaintext);
            assert!(deliveries.iter().all(|d| d.result.is_ok()), "{mode:?}");
            s.deliver(deliveries, &plaintext);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Persistence (§7.9, §7.10)
// ---------------------------------------------------------------------------------------

#[test]
fn accounts_round_trip_and_sign_on() {
    let mut r = rng(30);
    let mut bob = User::new(&BOB, &mut r);
    let stored = bob.account.to_bytes().to_vec();
    assert_eq!(stored.len(), ACCOUNT_LIST + bob.list().to_bytes().len());
    assert_eq!(stored[0], STORAGE_VERSION);
    assert_eq!(stored[1], TYPE_ACCOUNT);
    assert_eq!(
        u32::from_be_bytes(stored[ACCOUNT_LIST_LEN..ACCOUNT_LIST].try_into().unwrap()) as usize,
        bob.list().to_bytes().len()
    );
    assert_eq!(stored[ACCOUNT_LIST..], bob.list().to_bytes()[..]);
    let mut loaded = Account::from_bytes(&stored).unwrap();
    assert_eq!(loaded.to_bytes()[..], stored[..]);
    assert_eq!(loaded.account_key(), bob.key());
    assert_eq!(loaded.device_list(), bob.list());
    // The restored key signs as the original does.
    let new = identity(&mut r);
    let a = bob.account.add_device(id(77), &new).unwrap().clone();
    let b = loaded.add_device(id(77), &new).unwrap().clone();
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn contacts_round_trip_with_their_records() {
    for mode in Mode::all() {
        let mut s = Scene::established(31, mode);
        s.alice_view.mark_verified();
        let stored = s.alice_view.to_bytes().to_vec();
        let list = s.bob.list().to_bytes();
        assert_eq!(stored.len(), CONTACT_LIST + list.len());
        assert_eq!(stored[0], STORAGE_VERSION);
        assert_eq!(stored[1], TYPE_CONTACT);
        assert_eq!(
            &stored[CONTACT_LOCAL..CONTACT_TRUST],
            s.alice.devices[0].key().as_bytes()
        );
        assert_eq!(stored[CONTACT_TRUST], 1);
        assert_eq!(stored[CONTACT_PQ], u8::from(mode.post_quantum()));
        assert_eq!(
            u32::from_be_bytes(stored[CONTACT_LIST_LEN..CONTACT_LIST].try_into().unwrap()) as usize,
            list.len()
        );
        assert_eq!(stored[CONTACT_LIST..], list[..]);

        // Without records, then with each put back.
        let bare = Contact::from_bytes(&stored).unwrap();
        assert_eq!(bare.to_bytes()[..], stored[..]);
        assert_eq!(bare.records().count(), 0);
        assert_eq!(bare.trust(), Trust::Verified);
        let mut copy = reloaded(&s.alice_view);

        // The copy behaves as the original: the same ciphertexts from the same RNG.
        let mut twin = s.r.clone();
        let a = s.alice_view.encrypt(b"same", &mut s.r).unwrap();
        let b = copy.encrypt(b"same", &mut twin).unwrap();
        assert_eq!(targets(&a), targets(&b));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.result, y.result, "{mode:?}");
        }
        s.deliver(a, b"same");
    }
}

#[test]
fn restoring_records_checks_device_and_identities() {
    let mut s = Scene::established(32, Mode::Classical);
    let record = |s: &Scene, n: u32| {
        SessionRecord::from_bytes(&s.alice_view.record(id(n)).unwrap().to_bytes()).unwrap()
    };
    let mut copy = Contact::from_bytes(&s.alice_view.to_bytes()).unwrap();

    assert_refused(&mut copy, Error::UnknownDevice(id(99)), |c| {
        c.restore_record(id(99), record(&s, 5))
    });
    // Device 5's record under device 17's id.
    assert_refused(&mut copy, Error::WrongRecord, |c| {
        c.restore_record(id(17), record(&s, 5))
    });
    // A record of another local identity, for the listed device.
    let other_local = identity(&mut s.r);
    let foreign =
        SessionRecord::new(&other_local, s.bob.device(5).key(), RecordLimits::default()).unwrap();
    assert_refused(&mut copy, Error::WrongRecord, |c| {
        c.restore_record(id(5), foreign)
    });
    copy.restore_record(id(5), record(&s, 5)).unwrap();
    // A second record for one device.
    assert_refused(&mut copy, Error::WrongRecord, |c| {
        c.restore_record(id(5), record(&s, 5))
    });
    assert_eq!(Error::WrongRecord.kind(), ErrorKind::FixCall);
    // In any order.
    copy.restore_record(id(30), record(&s, 30)).unwrap();
    copy.restore_record(id(17), record(&s, 17)).unwrap();
    assert!(snapshot(&copy) == snapshot(&s.alice_view));
    // A record of the right identities but empty is accepted (it is the app's to keep).
    let mut bare = Contact::from_bytes(&s.alice_view.to_bytes()).unwrap();
    let empty = SessionRecord::new(
        s.alice.devices[0].key(),
        s.bob.device(5).key(),
        RecordLimits::default(),
    )
    .unwrap();
    bare.restore_record(id(5), empty).unwrap();
    let deliveries = bare.encrypt(b"empty", &mut s.r).unwrap();
    assert_eq!(deliveries[0].result, Err(Error::NoSession));
}

#[test]
fn sealed_accounts_and_contacts_open_only_in_their_place() {
    let mut s = Scene::established(33, Mode::Classical);
    let key = StorageKey::generate(&mut s.r).unwrap();
    let other_key = StorageKey::generate(&mut s.r).unwrap();

    let sealed = key.seal(&s.bob.account, b"account", &mut s.r).unwrap();
    let opened: Account = key.open(&sealed, b"account").unwrap();
    assert_eq!(opened.to_bytes()[..], s.bob.account.to_bytes()[..]);
    assert_eq!(
        key.open::<Account>(&sealed, b"contact bob").err(),
        Some(Error::DecryptionFailed)
    );
    assert_eq!(
        other_key.open::<Account>(&sealed, b"account").err(),
        Some(Error::DecryptionFailed)
    );
    assert_eq!(
        key.open::<Contact>(&sealed, b"account").err(),
        Some(Error::UnexpectedType(TYPE_ACCOUNT))
    );

    let sealed = key.seal(&s.alice_view, b"contact bob", &mut s.r).unwrap();
    let opened: Contact = key.open(&sealed, b"contact bob").unwrap();
    assert_eq!(opened.to_bytes()[..], s.alice_view.to_bytes()[..]);
    assert_eq!(opened.records().count(), 0);
    assert_eq!(
        key.open::<Contact>(&sealed, b"contact carol").err(),
        Some(Error::DecryptionFailed)
    );
    assert_eq!(
        key.open::<Account>(&sealed, b"contact bob").err(),
        Some(Error::UnexpectedType(TYPE_CONTACT))
    );
    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 0x01;
        assert!(
            key.open::<Contact>(&flipped, b"contact bob").is_err(),
            "byte {i}"
        );
    }
}

/// Every proper prefix of `stored` fails to load with `Truncated`.
#[track_caller]
fn every_prefix_is_truncated<T>(stored: &[u8], load: impl Fn(&[u8]) -> Result<T, Error>) {
    for len in 0..stored.len() {
        assert_eq!(
            load(&stored[..len]).err(),
            Some(Error::Truncated),
            "cut at {len}"
        );
    }
}

/// `check(byte, bit, flipped)` for every single-bit flip of `stored`.
fn every_bit_flip(stored: &[u8], mut check: impl FnMut(usize, u32, &[u8])) {
    for byte in 0..stored.len() {
        for bit in 0..8 {
            let mut flipped = stored.to_vec();
            flipped[byte] ^= 1 << bit;
            check(byte, bit, &flipped);
        }
    }
}

#[test]
fn hostile_stored_accounts_give_errors() {
    let mut r = rng(34);
    let bob = User::new(&BOB, &mut r);
    let stored = bob.account.to_bytes().to_vec();

    every_prefix_is_truncated(&stored, Account::from_bytes);
    // Every bit of the seed, the length, the list: never a panic, never accepted.
    every_bit_flip(&stored, |byte, bit, flipped| {
        let result = Account::from_bytes(flipped);
        assert!(result.is_err(), "byte {byte} bit {bit} accepted");
        if (ACCOUNT_SEED..ACCOUNT_LIST_LEN).contains(&byte) {
            // Another seed: the list is not under its key.
            assert_eq!(result.err(), Some(Error::InvalidEncoding));
        }
    });

    let seed = seed_of(&bob.account);
    let list = bob.list().to_bytes();
    let other = User::new(&[5], &mut r);
    let mut trailing = stored.clone();
    trailing.push(0);
    let mut long_len = stored.clone();
    long_len[ACCOUNT_LIST_LEN..ACCOUNT_LIST]
        .copy_from_slice(&(list.len() as u32 + 1).to_be_bytes());
    let mut short_len = stored.clone();
    short_len[ACCOUNT_LIST_LEN..ACCOUNT_LIST]
        .copy_from_slice(&(list.len() as u32 - 1).to_be_bytes());
    let mut huge_len = stored.clone();
    huge_len[ACCOUNT_LIST_LEN..ACCOUNT_LIST].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut broken_signature = stored.clone();
    let last = broken_signature.len() - 1;
    broken_signature[last] ^= 0x40;
    let mut version = stored.clone();
    version[0] = 0x01;
    let mut padded = stored.clone();
    padded.resize(MAX_ACCOUNT + 1, 0);
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "a list under another key",
            account_bytes(&seed, &other.list().to_bytes()),
            Error::InvalidEncoding,
        ),
        ("trailing byte", trailing, Error::TrailingData),
        ("length beyond the bytes", long_len, Error::Truncated),
        ("length short of the list", short_len, Error::Truncated),
        ("length u32::MAX", huge_len, Error::Truncated),
        (
            "broken signature",
            broken_signature,
            Error::InvalidSignature,
        ),
        ("version", version, Error::UnsupportedVersion(0x01)),
        ("above the largest", padded, Error::TooLarge),
        (
            "a contact",
            Contact::first_use(bob.devices[0].key(), other.list(), RecordLimits::default())
                .unwrap()
                .to_bytes()
                .to_vec(),
            Error::UnexpectedType(TYPE_CONTACT),
        ),
        (
            "a stored identity",
            IdentityKeyPair::generate(&mut r)
                .unwrap()
                .to_bytes()
                .to_vec(),
            Error::UnexpectedType(0x21),
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(Account::from_bytes(&bytes).err(), Some(expected), "{name}");
    }
}

#[test]
fn hostile_stored_contacts_give_errors() {
    let s = Scene::established(35, Mode::Classical);
    let stored = s.alice_view.to_bytes().to_vec();

    every_prefix_is_truncated(&stored, Contact::from_bytes);
    // Every bit: never a panic. The list's bits are never accepted; a flip elsewhere that
    // still loads is a valid contact of its own, stored as loaded.
    every_bit_flip(&stored, |byte, bit, flipped| {
        match Contact::from_bytes(flipped) {
            Ok(contact) => {
                assert!(
                    (CONTACT_LOCAL..CONTACT_LIST_LEN).contains(&byte),
                    "byte {byte} bit {bit} accepted"
                );
                assert_eq!(contact.to_bytes()[..], flipped[..], "byte {byte} bit {bit}");
            }
            Err(e) => {
                if (CONTACT_LIMITS..CONTACT_LIST_LEN).contains(&byte) {
                    assert_eq!(e, Error::InvalidLimits, "byte {byte} bit {bit}");
                }
                if byte == CONTACT_TRUST || byte == CONTACT_PQ {
                    assert_eq!(e, Error::InvalidEncoding, "byte {byte} bit {bit}");
                }
            }
        }
    });

    let with = |offset: usize, value: &[u8]| {
        let mut v = stored.clone();
        v[offset..offset + value.len()].copy_from_slice(value);
        v
    };
    let last = stored.len() - 1;
    let mut trailing = stored.clone();
    trailing.push(0);
    let mut padded = stored.clone();
    padded.resize(MAX_CONTACT + 1, 0);
    let list_len = (stored.len() - CONTACT_LIST) as u32;
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "broken list signature",
            with(last, &[stored[last] ^ 0x01]),
            Error::InvalidSignature,
        ),
        ("trust 2", with(CONTACT_TRUST, &[2]), Error::InvalidEncoding),
        (
            "post-quantum flag 2",
            with(CONTACT_PQ, &[2]),
            Error::InvalidEncoding,
        ),
        (
            "no archive",
            with(CONTACT_LIMITS, &[0, 0, 0, 0]),
            Error::InvalidLimits,
        ),
        (
            "local identity of small order",
            with(CONTACT_LOCAL, &weak),
            Error::InvalidPublicKey,
        ),
        (
            "length beyond the bytes",
            with(CONTACT_LIST_LEN, &(list_len + 1).to_be_bytes()),
            Error::Truncated,
        ),
        (
            "length short of the list",
            with(CONTACT_LIST_LEN, &(list_len - 1).to_be_bytes()),
            Error::Truncated,
        ),
        ("trailing byte", trailing, Error::TrailingData),
        ("above the largest", padded, Error::TooLarge),
        ("version", with(0, &[0x03]), Error::UnsupportedVersion(0x03)),
        (
            "an account",
            s.bob.account.to_bytes().to_vec(),
            Error::UnexpectedType(TYPE_ACCOUNT),
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(Contact::from_bytes(&bytes).err(), Some(expected), "{name}");
    }

    // The largest contact: a 16-device list.
    let mut r = rng(36);
    let ids16: Vec<u32> = (100..116).collect();
    let big = User::new(&ids16, &mut r);
    let contact = Contact::first_use(
        s.alice.devices[0].key(),
        big.list(),
        RecordLimits::default(),
    )
    .unwrap();
    assert_eq!(contact.to_bytes().len(), MAX_CONTACT);
    assert_eq!(
        Contact::from_bytes(&contact.to_bytes()).unwrap().to_bytes()[..],
        contact.to_bytes()[..]
    );
}

// ---------------------------------------------------------------------------------------
// Property: random histories fed in random order
// ---------------------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `ops` (add a new device, or remove the listed one at an index) on an account,
/// feeds the lists it signed to a contact in the order `feed` picks (with repeats), and
/// checks the contact against a model after every step.
fn histories(
    seed: u64,
    ops: &[(bool, Index)],
    feed: &[(Index, bool)],
) -> Result<(), TestCaseError> {
    let mut r = rng(seed);
    let local = identity(&mut r);
    let mut next = 0u32;
    let mut account = Account::new(id(next), &identity(&mut r), &mut r).unwrap();
    next += 1;
    let mut lists = vec![account.device_list().clone()];
    // The ids removed by the time each list was signed (ids are never reused).
    let mut removed_by = vec![BTreeSet::new()];
    let mut removed = BTreeSet::new();
    for (add, at) in ops {
        let len = account.device_list().len();
        if *add || len == 0 {
            let result = account.add_device(id(next), &identity(&mut r));
            if len == MAX_DEVICES {
                prop_assert_eq!(result.err(), Some(Error::TooManyDevices));
                continue;
            }
            result.unwrap();
            next += 1;
        } else {
            let (victim, _) = account.device_list().devices().nth(at.index(len)).unwrap();
            account.remove_device(victim).unwrap();
            removed.insert(victim.get());
        }
        lists.push(account.device_list().clone());
        removed_by.push(removed.clone());
    }
    for (k, list) in lists.iter().enumerate() {
        prop_assert_eq!(list.counter(), k as u64 + 1);
    }

    let first = feed[0].0.index(lists.len());
    let mut contact = Contact::first_use(&local, &lists[first], RecordLimits::default()).unwrap();
    let mut held = first;
    for (pick, reload) in &feed[1..] {
        let k = pick.index(lists.len());
        // As a contact gets it: from the list's bytes.
        let given = DeviceList::from_bytes(&lists[k].to_bytes()).unwrap();
        let before = contact.to_bytes().to_vec();
        let result = contact.update_devices(&given);
        if k > held {
            let old: BTreeSet<u32> = listed(&lists[held]).into_iter().collect();
            let new: BTreeSet<u32> = listed(&lists[k]).into_iter().collect();
            let added: Vec<u32> = new.difference(&old).copied().collect();
            let gone: Vec<u32> = old.difference(&new).copied().collect();
            prop_assert_eq!(result, Ok(updated(&added, &gone)));
            held = k;
        } else if k == held {
            prop_assert_eq!(result, Ok(DeviceUpdate::Unchanged));
            prop_assert_eq!(&contact.to_bytes()[..], &before[..]);
        } else {
            prop_assert_eq!(result, Err(Error::StaleDeviceList));
            prop_assert_eq!(&contact.to_bytes()[..], &before[..]);
        }
        if *reload {
            let bytes = contact.to_bytes();
            contact = Contact::from_bytes(&bytes).unwrap();
            prop_assert_eq!(&contact.to_bytes()[..], &bytes[..]);
        }
        // The highest counter given so far, and no device removed before it.
        prop_assert_eq!(contact.device_list(), &lists[held]);
        for d in listed(contact.device_list()) {
            prop_assert!(!removed_by[held].contains(&d), "device {} came back", d);
        }
        // A fan-out addresses exactly the listed devices (none has a session here).
        let deliveries = contact.encrypt(b"x", &mut rng(0)).unwrap();
        prop_assert_eq!(targets(&deliveries), listed(&lists[held]));
        prop_assert!(deliveries.iter().all(|d| d.result == Err(Error::NoSession)));
    }
    // The account itself round-trips at the end.
    let stored = account.to_bytes();
    prop_assert_eq!(
        &Account::from_bytes(&stored).unwrap().to_bytes()[..],
        &stored[..]
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn a_contact_holds_the_newest_list_it_was_given(
        seed in any::<u64>(),
        ops in prop::collection::vec((prop::bool::weighted(0.6), any::<Index>()), 1..28),
        feed in prop::collection::vec((any::<Index>(), prop::bool::weighted(0.2)), 1..40),
    ) {
        histories(seed, &ops, &feed)?;
    }
}
