//! Accounts with several devices (SPEC.md §7.9-§7.10, §9.3-§9.6), through the public API:
//!
//! - device-list rules (§9.4-§9.5): a replayed list is `StaleDeviceList`, another list with
//!   the held counter `ForkedDeviceList`, both changing nothing; the held list is
//!   `Unchanged`, a signature by another key or over any altered byte is
//!   `InvalidSignature`, a list under another account key is an `IdentityChange` that
//!   changes nothing until accepted (then pinned as first use; a change seen before the
//!   contact moved is refused), a removed device is refused in both directions and its
//!   record dropped, and the device cap and the strict parse (each rule with its error);
//!   lists are also built and signed by hand (ed25519-dalek, from the account's and the
//!   devices' seeds) to reach what the library never signs;
//! - device links (§9.4): every listed device's consent, so that no account can list
//!   another user's device identity key (the unknown-key share): a link by another key, for
//!   another account or another id is `InvalidSignature`, and `Account::add_device` refuses
//!   a link for another account; the link's own encoding and parse order;
//! - restored accounts (§9.3): `Account::adopt` of the newest published list, without which
//!   a restored account forks its counter;
//! - decryption-error requests through a contact (§6.8), and the post-quantum memory with
//!   no way around it;
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
    encrypt_to_devices, Account, AccountKey, Contact, Delivery, DeviceId, DeviceLink, DeviceList,
    DeviceUpdate, Error, ErrorKind, IdentityChange, IdentityKey, IdentityKeyPair, LocalDevice,
    PreKeyBundle, Received, RecordLimits, ResetOutcome, SafetyNumber, SessionOptions,
    SessionRecord, StorageKey, Trust, BUNDLE_VERSION, MAX_DEVICES, STORAGE_VERSION,
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
/// What a device link's signature covers, before the account key and the id (§9.4).
const DEVICE_LINK_LABEL: &[u8] = b"doubleratchet v2 device link";
const TYPE_DEVICE_LIST: u8 = 0x16;
const TYPE_DEVICE_LINK: u8 = 0x17;
const TYPE_IDENTITY: u8 = 0x21;
const TYPE_ACCOUNT: u8 = 0x2C;
const TYPE_CONTACT: u8 = 0x2D;

/// A list without devices; one device (id, identity key, link signature); the longest
/// list (16 devices).
const LIST_FIXED: usize = 107;
const LIST_ENTRY: usize = 100;
const MAX_LIST: usize = 1707;
/// Offsets in a list entry: the identity key, the link signature.
const ENTRY_KEY: usize = 4;
const ENTRY_LINK: usize = 36;
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
const MAX_ACCOUNT: usize = 1745;

/// Offsets in a stored contact: local identity, trust, post-quantum flag, limits, the
/// list's length, the list; the largest.
const CONTACT_LOCAL: usize = 2;
const CONTACT_TRUST: usize = 34;
const CONTACT_PQ: usize = 35;
const CONTACT_LIMITS: usize = 36;
const CONTACT_LIST_LEN: usize = 64;
const CONTACT_LIST: usize = 68;
const MAX_CONTACT: usize = 1775;

/// A device link (§9.4) and its offsets: account key, device id, identity key, signature.
const LINK_LENGTH: usize = 134;
const LINK_ACCOUNT: usize = 2;
const LINK_ID: usize = 34;
const LINK_IDENTITY: usize = 38;
const LINK_SIGNATURE: usize = 70;

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

/// A fresh Ed25519 seed: an identity (§7.2) known only to the test, to sign links by hand.
fn fresh_seed(r: &mut ChaCha20Rng) -> [u8; 32] {
    let mut seed = [0u8; 32];
    r.fill_bytes(&mut seed);
    seed
}

/// The Ed25519 seed of an identity key pair: bytes 2..34 of its storage encoding (§7.2).
fn seed_of_identity(pair: &IdentityKeyPair) -> [u8; 32] {
    pair.to_bytes()[2..34].try_into().unwrap()
}

/// The device of the identity `seed` (a prekey store around it), for the library's own
/// [`LocalDevice::link`].
fn device_of_seed(seed: &[u8; 32], r: &mut ChaCha20Rng) -> LocalDevice {
    let mut stored = vec![STORAGE_VERSION, TYPE_IDENTITY];
    stored.extend_from_slice(seed);
    LocalDevice::from_identity(IdentityKeyPair::from_bytes(&stored).unwrap(), 0, r).unwrap()
}

/// The link signature by `seed`'s key: `Sig(IK_d, DEVICE_LINK_LABEL || account || id)`.
fn link_signature(seed: &[u8; 32], account: &[u8; 32], id: u32) -> [u8; 64] {
    let mut message = DEVICE_LINK_LABEL.to_vec();
    message.extend_from_slice(account);
    message.extend_from_slice(&id.to_be_bytes());
    SigningKey::from_bytes(seed).sign(&message).to_bytes()
}

/// A link's encoding (§9.4) from its fields, as written.
fn link_bytes(account: &[u8; 32], id: u32, key: &[u8; 32], signature: &[u8; 64]) -> Vec<u8> {
    let mut out = vec![BUNDLE_VERSION, TYPE_DEVICE_LINK];
    out.extend_from_slice(account);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(signature);
    out
}

/// The link of the device of `seed` as device `id` of `account`, signed by hand and
/// parsed.
fn link_of(seed: &[u8; 32], account: &AccountKey, id: u32) -> DeviceLink {
    let signature = link_signature(seed, account.as_bytes(), id);
    DeviceLink::from_bytes(&link_bytes(
        account.as_bytes(),
        id,
        &public_of(seed),
        &signature,
    ))
    .unwrap()
}

/// A device of a hand-built list (§9.4): id, identity key, link signature.
type Entry = (u32, [u8; 32], [u8; 64]);

/// The entry of the device of `seed` as device `id` of `account`, with its true link.
fn entry(seed: &[u8; 32], account: &[u8; 32], id: u32) -> Entry {
    (id, public_of(seed), link_signature(seed, account, id))
}

/// The account key's Ed25519 seed, read from the storage encoding (§7.9, bytes 2..34).
fn seed_of(account: &Account) -> [u8; 32] {
    account.to_bytes()[ACCOUNT_SEED..ACCOUNT_SEED + 32]
        .try_into()
        .unwrap()
}

/// A list's devices as entries: id, identity key and link signature (read from the links'
/// encodings).
fn entries(list: &DeviceList) -> Vec<Entry> {
    list.links()
        .iter()
        .map(|l| {
            let bytes = l.to_bytes();
            (
                l.device_id().get(),
                l.identity_key().to_bytes(),
                bytes[LINK_SIGNATURE..].try_into().unwrap(),
            )
        })
        .collect()
}

/// A list's device ids.
fn listed(list: &DeviceList) -> Vec<u32> {
    list.devices().map(|(d, _)| d.get()).collect()
}

/// A list's bytes before the signature (§9.4), with `count` written as given.
fn list_body(account: &[u8; 32], counter: u64, count: u8, devices: &[Entry]) -> Vec<u8> {
    let mut out = vec![BUNDLE_VERSION, TYPE_DEVICE_LIST];
    out.extend_from_slice(account);
    out.extend_from_slice(&counter.to_be_bytes());
    out.push(count);
    for (d, key, link) in devices {
        out.extend_from_slice(&d.to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(link);
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

/// A list of `devices` (written in the order given, links as given) under `counter`,
/// signed by `seed`'s key.
fn signed_list(seed: &[u8; 32], counter: u64, devices: &[Entry]) -> Vec<u8> {
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

    /// The identity's Ed25519 seed, to sign by hand.
    fn seed(&self) -> [u8; 32] {
        seed_of_identity(&self.party.identity)
    }

    /// The device's consent to be its id in `account`, made by the library.
    fn link(&self, account: &AccountKey) -> DeviceLink {
        self.party.store.link(account, self.id)
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
        let mut account = Account::new(&devices[0].party.store, devices[0].id, r).unwrap();
        let mut history = vec![account.device_list().clone()];
        for d in &devices[1..] {
            let link = d.link(account.account_key());
            history.push(account.add_device(&link).unwrap().clone());
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
        let link = device.link(self.key());
        let list = self.account.add_device(&link).unwrap().clone();
        self.devices.push(device);
        self.history.push(list.clone());
        list
    }

    /// Lists device `n` again (removed before, its keys and link unchanged); returns the
    /// new list.
    fn readd(&mut self, n: u32) -> DeviceList {
        let link = self.device(n).link(self.key());
        let list = self.account.add_device(&link).unwrap().clone();
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

    // Each entry carries the device's link, signed by the device's identity key over the
    // label, the account key and its id: the link the device itself makes, whose encoding
    // is the hand-built one.
    for (k, (d, key, link)) in entries(list).iter().enumerate() {
        let offset = LIST_ENTRIES + k * LIST_ENTRY;
        assert_eq!(bytes[offset..offset + ENTRY_KEY], d.to_be_bytes());
        assert_eq!(&bytes[offset + ENTRY_KEY..offset + ENTRY_LINK], key);
        assert_eq!(&bytes[offset + ENTRY_LINK..offset + LIST_ENTRY], link);
        let device = bob.device(*d);
        assert_eq!(
            *link,
            link_signature(&device.seed(), bob.key().as_bytes(), *d)
        );
        let own = device.link(bob.key());
        assert_eq!(list.links()[k], own);
        assert_eq!(
            own.to_bytes()[..],
            link_bytes(bob.key().as_bytes(), *d, key, link)[..]
        );
    }

    let parsed = DeviceList::from_bytes(&bytes).unwrap();
    assert_eq!(parsed, *list);
    assert_eq!(parsed.to_bytes(), bytes);
    assert_eq!(parsed.links(), list.links());
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
        Account::new(&a.party.store, id(7), &mut FailingRng::new(0)).err(),
        Some(Error::RandomnessUnavailable)
    );
    let mut account = Account::new(&a.party.store, id(7), &mut r).unwrap();
    assert_eq!(account.device_list().counter(), 1);
    assert_eq!(listed(account.device_list()), [7]);
    // The first list carries the managing device's own link.
    assert_eq!(
        account.device_list().links(),
        [a.link(account.account_key())]
    );

    let link = b.link(account.account_key());
    assert_eq!(link.account_key(), account.account_key());
    assert_eq!(link.device_id(), id(3));
    assert_eq!(link.identity_key(), b.key());
    let list = account.add_device(&link).unwrap().clone();
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
    // A removed device can come back with its link, under a new counter.
    let link = a.link(account.account_key());
    assert_eq!(account.add_device(&link).unwrap().counter(), 5);

    // The account's Debug output never shows the seed.
    let seed = seed_of(&account);
    let debug = format!("{account:?}");
    assert!(!debug.contains(&hex::encode(&seed)), "{debug}");
}

#[test]
fn an_account_lists_at_most_max_devices() {
    let mut r = rng(3);
    let first = Device::new(0, &mut r);
    // Device n's identity seed; device 0 is the managing one.
    let mut seeds = vec![first.seed()];
    seeds.extend((0..MAX_DEVICES).map(|_| fresh_seed(&mut r)));
    let mut account = Account::new(&first.party.store, id(0), &mut r).unwrap();
    let key = *account.account_key();
    for (n, seed) in seeds.iter().enumerate().take(MAX_DEVICES).skip(1) {
        account.add_device(&link_of(seed, &key, n as u32)).unwrap();
    }
    assert_eq!(account.device_list().len(), MAX_DEVICES);
    assert_eq!(account.device_list().counter(), MAX_DEVICES as u64);
    // The longest list and the largest stored account (§5.8).
    assert_eq!(account.device_list().to_bytes().len(), MAX_LIST);
    assert_eq!(account.to_bytes().len(), MAX_ACCOUNT);
    let full = account.to_bytes().to_vec();
    assert_eq!(Account::from_bytes(&full).unwrap().to_bytes()[..], full[..]);

    // Full: a 17th device is refused; a link for another account is a wrong call before
    // that, and a duplicate is refused by the cap first (§10.1).
    let other_account = AccountKey::from_bytes(&public_of(&[9u8; 32])).unwrap();
    let account_seed = seed_of(&account);
    // The account key itself as a device: a link no parse gives, made by a device whose
    // identity is the account key pair.
    let as_device = device_of_seed(&account_seed, &mut r).link(&key, id(99));
    assert_eq!(as_device.identity_key().as_bytes(), key.as_bytes());
    for (name, link, expected) in [
        (
            "a new device",
            link_of(&seeds[MAX_DEVICES], &key, 99),
            Error::TooManyDevices,
        ),
        (
            "a link for another account",
            link_of(&seeds[MAX_DEVICES], &other_account, 99),
            Error::WrongRecord,
        ),
        (
            "a listed device",
            link_of(&seeds[3], &key, 3),
            Error::TooManyDevices,
        ),
    ] {
        assert_eq!(account.add_device(&link).err(), Some(expected), "{name}");
        assert_eq!(account.to_bytes()[..], full[..], "{name}");
    }
    assert_eq!(Error::TooManyDevices.kind(), ErrorKind::FixCall);

    // Duplicates, at a list with room.
    account.remove_device(id(15)).unwrap();
    let before = account.to_bytes().to_vec();
    for (name, link) in [
        ("listed id", link_of(&seeds[MAX_DEVICES], &key, 3)),
        ("listed identity key", link_of(&seeds[3], &key, 99)),
        ("the account key", as_device),
    ] {
        assert_eq!(
            account.add_device(&link).err(),
            Some(Error::DuplicateDevice),
            "{name}"
        );
        assert_eq!(account.to_bytes()[..], before[..], "{name}");
    }
    assert_eq!(Error::DuplicateDevice.kind(), ErrorKind::FixCall);
    // A removed device's id and key are free again.
    assert_eq!(
        account
            .add_device(&link_of(&seeds[15], &key, 15))
            .unwrap()
            .len(),
        MAX_DEVICES
    );

    // 17 devices signed by hand under the account key: the list is longer than the
    // longest, refused by its size before anything is read (§9.4: `TooLarge` first).
    let seed = account_seed;
    let seventeen: Vec<Entry> = seeds
        .iter()
        .enumerate()
        .map(|(n, s)| entry(s, key.as_bytes(), n as u32))
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
    let key = AccountKey::from_bytes(&public_of(&seed)).unwrap();
    let a = fresh_seed(&mut r);
    let b = fresh_seed(&mut r);
    let list = signed_list(&seed, u64::MAX, &[entry(&a, key.as_bytes(), 1)]);
    let mut account = Account::from_bytes(&account_bytes(&seed, &list)).unwrap();
    assert_eq!(account.device_list().counter(), u64::MAX);
    let before = account.to_bytes().to_vec();
    assert_eq!(
        account.add_device(&link_of(&b, &key, 2)).err(),
        Some(Error::StoreFull)
    );
    // The counter's room is checked first: before the link's account, before the device.
    let elsewhere = AccountKey::from_bytes(&public_of(&[8u8; 32])).unwrap();
    assert_eq!(
        account.add_device(&link_of(&b, &elsewhere, 2)).err(),
        Some(Error::StoreFull)
    );
    assert_eq!(
        account.add_device(&link_of(&a, &key, 1)).err(),
        Some(Error::StoreFull)
    );
    assert_eq!(account.remove_device(id(1)).err(), Some(Error::StoreFull));
    // A device not listed is refused before the counter.
    assert_eq!(
        account.remove_device(id(2)).err(),
        Some(Error::UnknownDevice(id(2)))
    );
    assert_eq!(account.to_bytes()[..], before[..]);
    // One below the end still signs.
    let list = signed_list(&seed, u64::MAX - 1, &[entry(&a, key.as_bytes(), 1)]);
    let mut account = Account::from_bytes(&account_bytes(&seed, &list)).unwrap();
    assert_eq!(
        account.add_device(&link_of(&b, &key, 2)).unwrap().counter(),
        u64::MAX
    );
}

#[test]
fn lists_are_parsed_strictly() {
    let mut r = rng(5);
    let seed = [0x42u8; 32];
    let account = public_of(&seed);
    // Three device seeds, and `e(i, d)`: device `i` as id `d`, with its true link.
    let k: Vec<[u8; 32]> = (0..3).map(|_| fresh_seed(&mut r)).collect();
    let e = |i: usize, d: u32| entry(&k[i], &account, d);
    let valid = signed_list(&seed, 9, &[e(0, 1), e(1, 2), e(2, 70_000)]);
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
            .map(|n| entry(&fresh_seed(&mut r), &account, n))
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
        let mut body = list_body(&account, 9, 3, &[e(0, 1), e(1, 2)]);
        body.extend_from_slice(&[0x7f; 20]);
        body
    };
    let count_long = {
        // A count of 1 over 2 entries: bytes are left over.
        let body = list_body(&account, 9, 1, &[e(0, 1), e(1, 2)]);
        sign_body(&seed, body)
    };
    // Entries whose link signature is not the device's consent to this entry.
    let (_, key1, link1) = e(1, 2);
    let elsewhere = public_of(&[0x43; 32]);
    let broken = |link: [u8; 64]| signed_list(&seed, 9, &[e(0, 1), (2, key1, link)]);
    let mut flipped_link = link1;
    flipped_link[10] ^= 0x04;
    // A fault in the encoding is found before any signature is checked.
    let bad_link_then_unsorted = signed_list(&seed, 9, &[(2, key1, [0; 64]), e(0, 1)]);
    let mut bad_link_then_trailing = broken([0; 64]);
    bad_link_then_trailing.push(0);
    let mut bad_link_and_bad_list_signature = broken([0; 64]);
    let end = bad_link_and_bad_list_signature.len();
    bad_link_and_bad_list_signature[end - 1] ^= 0x01;

    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "ids not ascending",
            signed_list(&seed, 9, &[e(1, 2), e(0, 1)]),
            Error::InvalidEncoding,
        ),
        (
            "id listed twice",
            signed_list(&seed, 9, &[e(0, 1), e(1, 1)]),
            Error::InvalidEncoding,
        ),
        (
            "identity key listed twice",
            signed_list(&seed, 9, &[e(0, 1), e(0, 2)]),
            Error::InvalidEncoding,
        ),
        (
            "identity key equal to the account key (its own link)",
            signed_list(&seed, 9, &[e(0, 1), entry(&seed, &account, 2)]),
            Error::InvalidEncoding,
        ),
        (
            "counter 0",
            signed_list(&seed, 0, &[e(0, 1)]),
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
            sign_body(&seed, list_body(&weak, 9, 1, &[e(0, 1)])),
            Error::InvalidPublicKey,
        ),
        (
            "device key of small order",
            signed_list(&seed, 9, &[e(0, 1), (2, weak, [0; 64])]),
            Error::InvalidPublicKey,
        ),
        (
            "device key of small order, then ids not ascending",
            signed_list(&seed, 9, &[e(0, 5), (2, weak, [0; 64])]),
            Error::InvalidPublicKey,
        ),
        ("signature of nothing", unsigned, Error::InvalidSignature),
        // The account signed each of these; a device's link does not verify.
        ("link of zeros", broken([0; 64]), Error::InvalidSignature),
        (
            "link with a bit flipped",
            broken(flipped_link),
            Error::InvalidSignature,
        ),
        (
            "link by another device's key",
            broken(link_signature(&k[2], &account, 2)),
            Error::InvalidSignature,
        ),
        (
            "link for another id",
            broken(link_signature(&k[1], &account, 3)),
            Error::InvalidSignature,
        ),
        (
            "link for another account",
            broken(link_signature(&k[1], &elsewhere, 2)),
            Error::InvalidSignature,
        ),
        (
            "link by the account key",
            broken(link_signature(&seed, &account, 2)),
            Error::InvalidSignature,
        ),
        (
            "link without the label",
            broken(
                SigningKey::from_bytes(&k[1])
                    .sign(&[&account[..], &2u32.to_be_bytes()].concat())
                    .to_bytes(),
            ),
            Error::InvalidSignature,
        ),
        (
            "link under the list's label",
            broken(
                SigningKey::from_bytes(&k[1])
                    .sign(&[DEVICE_LIST_LABEL, &account[..], &2u32.to_be_bytes()].concat())
                    .to_bytes(),
            ),
            Error::InvalidSignature,
        ),
        (
            "link with the id little-endian",
            broken(
                SigningKey::from_bytes(&k[1])
                    .sign(&[DEVICE_LINK_LABEL, &account[..], &2u32.to_le_bytes()].concat())
                    .to_bytes(),
            ),
            Error::InvalidSignature,
        ),
        (
            "bad link, then ids not ascending",
            bad_link_then_unsorted,
            Error::InvalidEncoding,
        ),
        (
            "bad link, then a trailing byte",
            bad_link_then_trailing,
            Error::TrailingData,
        ),
        (
            "bad link and bad list signature",
            bad_link_and_bad_list_signature,
            Error::InvalidSignature,
        ),
        ("empty", vec![], Error::Truncated),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(DeviceList::from_bytes(&bytes), Err(expected), "{name}");
    }
    // The true link under the same construction verifies (so each refusal above is the
    // link's).
    assert!(DeviceList::from_bytes(&broken(link1)).is_ok());
    // A device link is not a list.
    let link = link_bytes(&account, 2, &key1, &link1);
    assert_eq!(
        DeviceList::from_bytes(&link),
        Err(Error::UnexpectedType(TYPE_DEVICE_LINK))
    );

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
            b if b < entries_end && (b - LIST_ENTRIES) % LIST_ENTRY < ENTRY_KEY => {
                &[Error::InvalidSignature, Error::InvalidEncoding]
            }
            b if b < entries_end && (b - LIST_ENTRIES) % LIST_ENTRY < ENTRY_LINK => {
                &[Error::InvalidPublicKey, Error::InvalidSignature]
            }
            // A link's bytes, and the list's signature.
            _ => &[Error::InvalidSignature],
        };
        assert!(
            expected.contains(&e),
            "byte {byte} bit {bit}: {e:?}, expected one of {expected:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Device links: no account lists a device that did not consent (§9.4)
// ---------------------------------------------------------------------------------------

#[test]
fn device_links_round_trip_and_are_parsed_in_order() {
    let mut r = rng(37);
    let bob = User::new(&BOB, &mut r);
    let d = bob.device(17);
    let account = *bob.key().as_bytes();
    let key = d.key().to_bytes();
    let link = d.link(bob.key());
    assert_eq!(link.account_key(), bob.key());
    assert_eq!(link.device_id(), id(17));
    assert_eq!(link.identity_key(), d.key());
    // The layout of §9.4, signed deterministically: the hand-signed link is the device's.
    let bytes = link.to_bytes();
    assert_eq!(bytes.len(), LINK_LENGTH);
    assert_eq!(bytes[0], BUNDLE_VERSION);
    assert_eq!(bytes[1], TYPE_DEVICE_LINK);
    assert_eq!(bytes[LINK_ACCOUNT..LINK_ID], account);
    assert_eq!(bytes[LINK_ID..LINK_IDENTITY], 17u32.to_be_bytes());
    assert_eq!(bytes[LINK_IDENTITY..LINK_SIGNATURE], key);
    let signature = link_signature(&d.seed(), &account, 17);
    assert_eq!(bytes[LINK_SIGNATURE..], signature);
    assert_eq!(bytes[..], link_bytes(&account, 17, &key, &signature)[..]);
    let parsed = DeviceLink::from_bytes(&bytes).unwrap();
    assert_eq!(parsed, link);
    assert_eq!(parsed.to_bytes(), bytes);
    assert_eq!(link_of(&d.seed(), bob.key(), 17), link);
    // Draws no randomness: the same link every time; it is the one in Bob's list.
    assert_eq!(d.link(bob.key()), link);
    assert!(bob.list().links().contains(&link));
    assert_ne!(d.party.store.link(bob.key(), id(18)), link);
    let debug = format!("{link:?}");
    assert!(debug.contains("DeviceLink"), "{debug}");
    assert!(!debug.contains(&hex::encode(&d.seed())), "{debug}");

    // Every field, in the order of §9.4.
    let with = |offset: usize, value: &[u8]| {
        let mut v = bytes.to_vec();
        v[offset..offset + value.len()].copy_from_slice(value);
        v
    };
    let weak = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let mut trailing = bytes.to_vec();
    trailing.push(0);
    let account_seed = seed_of(&bob.account);
    let other = fresh_seed(&mut r);
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        ("one byte above", trailing, Error::TooLarge),
        (
            "above, of another version",
            vec![0x01; LINK_LENGTH + 1],
            Error::TooLarge,
        ),
        ("empty", vec![], Error::Truncated),
        ("version", with(0, &[0x01]), Error::UnsupportedVersion(0x01)),
        (
            "version, then type",
            with(0, &[0x03, TYPE_DEVICE_LIST]),
            Error::UnsupportedVersion(0x03),
        ),
        (
            "type (a list's)",
            with(1, &[TYPE_DEVICE_LIST]),
            Error::UnexpectedType(TYPE_DEVICE_LIST),
        ),
        (
            "type, then the account key",
            with(1, &[[0x15].as_slice(), &weak].concat()),
            Error::UnexpectedType(0x15),
        ),
        (
            "account key of small order",
            with(LINK_ACCOUNT, &weak),
            Error::InvalidPublicKey,
        ),
        (
            "account key of small order, cut short after it",
            with(LINK_ACCOUNT, &weak)[..LINK_IDENTITY].to_vec(),
            Error::InvalidPublicKey,
        ),
        (
            "cut in the id",
            bytes[..LINK_ID + 2].to_vec(),
            Error::Truncated,
        ),
        (
            "identity key of small order",
            with(LINK_IDENTITY, &weak),
            Error::InvalidPublicKey,
        ),
        (
            "identity key of small order, cut short after it",
            with(LINK_IDENTITY, &weak)[..LINK_SIGNATURE].to_vec(),
            Error::InvalidPublicKey,
        ),
        (
            "cut in the signature",
            bytes[..LINK_LENGTH - 1].to_vec(),
            Error::Truncated,
        ),
        (
            "identity key equal to the account key, signed by it",
            link_bytes(
                &account,
                17,
                &account,
                &link_signature(&account_seed, &account, 17),
            ),
            Error::InvalidEncoding,
        ),
        (
            "identity key equal to the account key, unsigned",
            link_bytes(&account, 17, &account, &[0; 64]),
            Error::InvalidEncoding,
        ),
        (
            "signature of zeros",
            with(LINK_SIGNATURE, &[0; 64]),
            Error::InvalidSignature,
        ),
        (
            "another id",
            with(LINK_ID, &18u32.to_be_bytes()),
            Error::InvalidSignature,
        ),
        (
            "another account",
            with(LINK_ACCOUNT, &public_of(&other)),
            Error::InvalidSignature,
        ),
        (
            "another identity",
            with(LINK_IDENTITY, &public_of(&other)),
            Error::InvalidSignature,
        ),
        (
            "signed by another key",
            with(LINK_SIGNATURE, &link_signature(&other, &account, 17)),
            Error::InvalidSignature,
        ),
        (
            "signed by the account key",
            with(LINK_SIGNATURE, &link_signature(&account_seed, &account, 17)),
            Error::InvalidSignature,
        ),
        (
            "signed under the list's label",
            with(
                LINK_SIGNATURE,
                &SigningKey::from_bytes(&d.seed())
                    .sign(&[DEVICE_LIST_LABEL, &account[..], &17u32.to_be_bytes()].concat())
                    .to_bytes(),
            ),
            Error::InvalidSignature,
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(DeviceLink::from_bytes(&input), Err(expected), "{name}");
    }
    every_prefix_is_truncated(&bytes, DeviceLink::from_bytes);
    // Every bit flipped: refused, with the error of where the bit is.
    every_bit_flip(&bytes, |byte, bit, flipped| {
        let e = DeviceLink::from_bytes(flipped).unwrap_err();
        let expected: &[Error] = match byte {
            0 => &[Error::UnsupportedVersion(flipped[0])],
            1 => &[Error::UnexpectedType(flipped[1])],
            LINK_ACCOUNT..LINK_ID | LINK_IDENTITY..LINK_SIGNATURE => {
                &[Error::InvalidPublicKey, Error::InvalidSignature]
            }
            _ => &[Error::InvalidSignature],
        };
        assert!(
            expected.contains(&e),
            "byte {byte} bit {bit}: {e:?}, expected one of {expected:?}"
        );
    });
    // A list is no link: too long, or (without devices) of another type.
    assert_eq!(
        DeviceLink::from_bytes(&bob.list().to_bytes()),
        Err(Error::TooLarge)
    );
    let empty = signed_list(&account_seed, 9, &[]);
    assert_eq!(empty.len(), LIST_FIXED);
    assert_eq!(
        DeviceLink::from_bytes(&empty),
        Err(Error::UnexpectedType(TYPE_DEVICE_LIST))
    );
}

#[test]
fn no_account_can_list_another_users_device() {
    let mut r = rng(38);
    let alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&BOB, &mut r);
    let mut mallory = User::new(&[9], &mut r);
    let m_seed = seed_of(&mallory.account);
    let m_key = *mallory.key().as_bytes();
    let victim = bob.device(5);
    let victim_key = victim.key().to_bytes();
    // Bob's device 5's link, as Bob's list publishes it.
    let (_, _, bobs_link) = entries(bob.list())
        .into_iter()
        .find(|(d, _, _)| *d == 5)
        .unwrap();
    assert_eq!(
        bobs_link,
        link_signature(&victim.seed(), bob.key().as_bytes(), 5)
    );

    // Mallory signs, with her own account key, a list of her device 9 and of Bob's device
    // 5's identity key (as her device 5), with each link she can come by. Her signature is
    // valid; the link is not Bob's device's consent to her account.
    let own = entries(mallory.list());
    let claim = |link: [u8; 64]| {
        let devices = [(5, victim_key, link), own[0]];
        signed_list(&m_seed, 2, &devices)
    };
    let cases: Vec<(&str, [u8; 64])> = vec![
        (
            "Bob's link for Bob's account, copied from his list",
            bobs_link,
        ),
        (
            "signed by Mallory's device",
            link_signature(&mallory.device(9).seed(), &m_key, 5),
        ),
        (
            "signed by Mallory's account key",
            link_signature(&m_seed, &m_key, 5),
        ),
        ("zeros", [0; 64]),
        // Bob's device consented to Mallory's account, but as device 6.
        (
            "Bob's link as another id",
            link_signature(&victim.seed(), &m_key, 6),
        ),
    ];
    for (name, link) in cases {
        let forged = claim(link);
        assert_eq!(
            DeviceList::from_bytes(&forged),
            Err(Error::InvalidSignature),
            "{name}"
        );
        // Nor from storage: an account or a contact holding the list does not load.
        assert_eq!(
            Account::from_bytes(&account_bytes(&m_seed, &forged)).err(),
            Some(Error::InvalidSignature),
            "{name}"
        );
        let mut contact = Contact::first_use(
            alice.devices[0].key(),
            mallory.list(),
            RecordLimits::default(),
        )
        .unwrap()
        .to_bytes()
        .to_vec();
        contact.truncate(CONTACT_LIST_LEN);
        contact.extend_from_slice(&(forged.len() as u32).to_be_bytes());
        contact.extend_from_slice(&forged);
        assert_eq!(
            Contact::from_bytes(&contact).err(),
            Some(Error::InvalidSignature),
            "{name}"
        );
    }
    // Only Bob's device's consent to Mallory's account as that id would do: the refusals
    // above are the links'.
    let consented = claim(link_signature(&victim.seed(), &m_key, 5));
    assert_eq!(
        DeviceList::from_bytes(&consented).unwrap().identity(id(5)),
        Some(victim.key())
    );

    // Nor can Mallory's account list it through the API: Bob's device's link names Bob's
    // account.
    let before = mallory.account.to_bytes().to_vec();
    let link = victim.link(bob.key());
    assert_eq!(
        mallory.account.add_device(&link).err(),
        Some(Error::WrongRecord)
    );
    assert_eq!(
        mallory.account.add_device(&bob.list().links()[0]).err(),
        Some(Error::WrongRecord)
    );
    assert_eq!(mallory.account.to_bytes()[..], before[..]);
    assert_eq!(Error::WrongRecord.kind(), ErrorKind::FixCall);
    // And the link cannot be re-targeted: its encoding with Mallory's account key, or with
    // another id, does not verify.
    let mut retargeted = link.to_bytes();
    retargeted[LINK_ACCOUNT..LINK_ID].copy_from_slice(&m_key);
    assert_eq!(
        DeviceLink::from_bytes(&retargeted),
        Err(Error::InvalidSignature)
    );
    let mut renumbered = link.to_bytes();
    renumbered[LINK_ID..LINK_IDENTITY].copy_from_slice(&6u32.to_be_bytes());
    assert_eq!(
        DeviceLink::from_bytes(&renumbered),
        Err(Error::InvalidSignature)
    );
    // Mallory's list still names only her device.
    assert_eq!(listed(mallory.list()), [9]);
}

// ---------------------------------------------------------------------------------------
// Restored accounts (§9.3)
// ---------------------------------------------------------------------------------------

#[test]
fn a_restored_account_adopts_the_newest_list_before_signing() {
    let mut r = rng(39);
    let alice = User::new(&[ALICE], &mut r);
    let mut bob = User::new(&BOB, &mut r);
    let local = alice.devices[0].key();
    let limits = RecordLimits::default();
    // Bob's account stored at counter 3; Alice's device has one contact holding that list.
    let old_copy = bob.account.to_bytes().to_vec();
    let mut behind = Contact::first_use(local, bob.list(), limits).unwrap();
    // Then Bob adds device 40 and publishes counter 4, which another contact takes.
    let published = bob.add(40, &mut r);
    assert_eq!(published.counter(), 4);
    let mut current = Contact::first_use(local, bob.list(), limits).unwrap();
    let d41 = Device::new(41, &mut r);
    let link41 = d41.link(bob.key());

    // Without adopting, the restored copy signs counter 4 again: a fork. The contact holding
    // the published list refuses it and stays as it was; a contact holding an older list
    // would take it, and lose device 40 (what adopting prevents).
    let mut forgetful = Account::from_bytes(&old_copy).unwrap();
    let fork = forgetful.add_device(&link41).unwrap().clone();
    assert_eq!(fork.counter(), 4);
    assert_eq!(listed(&fork), [5, 17, 30, 41]);
    assert_refused(&mut current, Error::ForkedDeviceList, |c| {
        c.update_devices(&fork)
    });
    assert_eq!(current.device_list(), &published);
    let mut misled = Contact::from_bytes(&behind.to_bytes()).unwrap();
    assert_eq!(misled.update_devices(&fork), Ok(updated(&[41], &[])));
    assert_eq!(misled.device_list().identity(id(40)), None);
    // Too late to adopt the published list: it is another list with the forked counter.
    let before = forgetful.to_bytes().to_vec();
    assert_eq!(forgetful.adopt(&published), Err(Error::ForkedDeviceList));
    assert_eq!(forgetful.to_bytes()[..], before[..]);

    // Restored again, the account adopts the published list first (fetched: its bytes).
    let mut restored = Account::from_bytes(&old_copy).unwrap();
    let before = restored.to_bytes().to_vec();
    let seed = seed_of(&restored);
    let fork3 = DeviceList::from_bytes(&signed_list(&seed, 3, &entries(&bob.history[1]))).unwrap();
    let held = restored.device_list().clone();
    let cases: [(&str, &DeviceList, Error); 3] = [
        ("another account's list", alice.list(), Error::WrongRecord),
        ("an older list", &bob.history[1], Error::StaleDeviceList),
        (
            "another list with the held counter",
            &fork3,
            Error::ForkedDeviceList,
        ),
    ];
    for (name, list, expected) in cases {
        assert_eq!(restored.adopt(list), Err(expected), "{name}");
        assert_eq!(restored.to_bytes()[..], before[..], "{name}");
    }
    assert_eq!(restored.adopt(&held), Ok(false));
    assert_eq!(restored.to_bytes()[..], before[..]);
    let fetched = DeviceList::from_bytes(&published.to_bytes()).unwrap();
    assert_eq!(restored.adopt(&fetched), Ok(true));
    assert_eq!(restored.device_list(), &published);
    // It is the account Bob lost, byte for byte.
    assert_eq!(restored.to_bytes()[..], bob.account.to_bytes()[..]);
    assert_eq!(restored.adopt(&published), Ok(false));
    assert_eq!(restored.adopt(&held), Err(Error::StaleDeviceList));

    // Adding device 41 now signs counter 5, with device 40: every contact takes it.
    let next = restored.add_device(&link41).unwrap().clone();
    assert_eq!(next.counter(), 5);
    assert_eq!(listed(&next), [5, 17, 30, 40, 41]);
    assert_eq!(current.update_devices(&next), Ok(updated(&[41], &[])));
    assert_eq!(current.device_list(), &next);
    assert_eq!(behind.update_devices(&next), Ok(updated(&[40, 41], &[])));
    // Even the misled contact comes back to device 40.
    assert_eq!(misled.update_devices(&next), Ok(updated(&[40], &[])));
    // The lost account would have signed the same list.
    assert_eq!(bob.account.add_device(&link41).unwrap(), &next);
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
    // The users compared the safety number of another key: nothing changes.
    assert_refused(&mut first, Error::IdentityMismatch, |c| {
        c.mark_verified(alice.key())
    });
    assert_eq!(first.trust(), Trust::FirstUse);
    assert_eq!(first.mark_verified(bob.key()), Ok(()));
    assert_eq!(first.trust(), Trust::Verified);
    assert!(snapshot(&first) == snapshot(&verified));
    assert_eq!(verified.mark_verified(bob.key()), Ok(()));
    assert_eq!(verified.trust(), Trust::Verified);
}

#[test]
fn replayed_lists_are_stale_and_equal_counter_lists_forked() {
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
    // device 40, then adding device 41, signs another list with counter 4: forked.
    let mut rolled_back = Account::from_bytes(&stored).unwrap();
    let other = fresh_seed(&mut s.r);
    let fork = rolled_back
        .add_device(&link_of(&other, s.bob.key(), 41))
        .unwrap()
        .clone();
    assert_eq!(fork.counter(), newer.counter());
    assert_ne!(fork, newer);
    assert_refused(&mut s.alice_view, Error::ForkedDeviceList, |c| {
        c.update_devices(&fork)
    });
    assert_eq!(Error::ForkedDeviceList.kind(), ErrorKind::VerifyIdentity);
    // The same by hand: counter 4 with the devices of counter 3.
    let seed = seed_of(&s.bob.account);
    let same_counter = DeviceList::from_bytes(&signed_list(&seed, 4, &entries(&held))).unwrap();
    assert_refused(&mut s.alice_view, Error::ForkedDeviceList, |c| {
        c.update_devices(&same_counter)
    });
    // The held list signed again by hand is the same bytes (Ed25519 is deterministic):
    // unchanged, not a fork.
    let resigned = DeviceList::from_bytes(&signed_list(&seed, 4, &entries(&newer))).unwrap();
    assert_eq!(resigned, newer);
    assert_eq!(
        s.alice_view.update_devices(&resigned),
        Ok(DeviceUpdate::Unchanged)
    );

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
    let back = s.bob.readd(17);
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
    s.alice_view.mark_verified(s.bob.key()).unwrap();
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
    let mut reinstalled = Account::new(&s.bob.device(30).party.store, id(30), &mut s.r).unwrap();
    let link5 = s.bob.device(5).link(reinstalled.account_key());
    reinstalled.add_device(&link5).unwrap();
    let first_new = reinstalled.device_list().clone();
    let link40 = d40.link(reinstalled.account_key());
    reinstalled.add_device(&link40).unwrap();
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
    let mut other = Account::new(&s.bob.device(17).party.store, id(17), &mut s.r).unwrap();
    let link5 = s.bob.device(5).link(other.account_key());
    other.add_device(&link5).unwrap();
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

#[test]
fn mark_verified_refuses_a_key_no_longer_pinned() {
    let mut r = rng(40);
    let alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&BOB, &mut r);
    let reinstalled = User::new(&[5], &mut r);
    let mut contact =
        Contact::first_use(alice.devices[0].key(), bob.list(), RecordLimits::default()).unwrap();
    // The verification screen showed Bob's key; meanwhile a change is seen but not
    // accepted: Bob's key is still the pinned one.
    let DeviceUpdate::IdentityChanged(change) = contact.update_devices(reinstalled.list()).unwrap()
    else {
        panic!("expected an identity change");
    };
    assert_eq!(contact.mark_verified(bob.key()), Ok(()));
    assert_eq!(contact.trust(), Trust::Verified);
    // The change accepted: first use again, and Bob's old key verifies nothing.
    let _ = contact.accept_identity_change(change).unwrap();
    assert_eq!(contact.trust(), Trust::FirstUse);
    assert_refused(&mut contact, Error::IdentityMismatch, |c| {
        c.mark_verified(bob.key())
    });
    assert_eq!(contact.trust(), Trust::FirstUse);
    assert_eq!(contact.to_bytes()[CONTACT_TRUST], 0);
    assert_eq!(Error::IdentityMismatch.kind(), ErrorKind::VerifyIdentity);
    // The new key, compared, is verified (and stored so).
    assert_eq!(contact.mark_verified(reinstalled.key()), Ok(()));
    assert_eq!(contact.trust(), Trust::Verified);
    assert_eq!(contact.to_bytes()[CONTACT_TRUST], 1);
}

#[test]
fn a_change_seen_before_a_newer_list_was_taken_is_stale() {
    let mut r = rng(41);
    let alice = User::new(&[ALICE], &mut r);
    let mut bob = User::new(&BOB, &mut r);
    let other = User::new(&[5], &mut r);
    let mut contact =
        Contact::first_use(alice.devices[0].key(), bob.list(), RecordLimits::default()).unwrap();
    let change = match contact.update_devices(other.list()).unwrap() {
        DeviceUpdate::IdentityChanged(change) => change,
        update => panic!("expected an identity change, got {update:?}"),
    };
    // The held list again and a replayed older one do not move the contact: the change is
    // still acceptable.
    assert_eq!(
        contact.update_devices(bob.list()),
        Ok(DeviceUpdate::Unchanged)
    );
    assert_refused(&mut contact, Error::StaleDeviceList, |c| {
        c.update_devices(&bob.history[0])
    });
    let mut copy = Contact::from_bytes(&contact.to_bytes()).unwrap();
    assert_eq!(
        copy.accept_identity_change(change.clone()),
        Ok(updated(&[5], &[5, 17, 30]))
    );
    assert_eq!(copy.account_key(), other.key());

    // A newer list under the old key taken since: the user decided on a state that is
    // gone. Refused, nothing changed.
    let newer = bob.add(40, &mut r);
    assert_eq!(contact.update_devices(&newer), Ok(updated(&[40], &[])));
    assert_refused(&mut contact, Error::StaleDeviceList, |c| {
        c.accept_identity_change(change.clone())
    });
    assert_eq!(contact.account_key(), bob.key());
    assert_eq!(contact.device_list(), &newer);
    // The same list seen again from the current state is a change that can be accepted.
    let again = match contact.update_devices(other.list()).unwrap() {
        DeviceUpdate::IdentityChanged(change) => change,
        update => panic!("expected an identity change, got {update:?}"),
    };
    assert_eq!(
        contact.accept_identity_change(again),
        Ok(updated(&[5], &[5, 17, 30, 40]))
    );
    assert_eq!(contact.account_key(), other.key());
}

#[test]
fn decryption_error_requests_go_through_the_contact() {
    let mut s = Scene::established(42, Mode::Classical);
    let i5 = s.bob.index(5);
    let i17 = s.bob.index(17);
    // A message to device 5 that device 5 cannot decrypt.
    let mut deliveries = s.alice_sends(b"lost on 5");
    assert_eq!(targets(&deliveries), BOB_SORTED);
    let mut failed = deliveries.remove(0).result.unwrap();
    let last = failed.len() - 1;
    failed[last] ^= 0x01;
    assert_eq!(
        s.bob_receives(5, &failed).err(),
        Some(Error::DecryptionFailed)
    );
    let to_17 = deliveries[0].result.clone().unwrap();
    s.deliver(deliveries, b"lost on 5");

    // Device 5 asks Alice's device for a new session.
    let bob5 = &s.bob.devices[i5].party.store;
    let request = s.bob_views[i5]
        .decryption_error(bob5, id(ALICE), &failed, NOW)
        .unwrap();
    assert_eq!(
        s.bob_views[i5]
            .decryption_error(bob5, id(99), &failed, NOW)
            .err(),
        Some(Error::UnknownDevice(id(99)))
    );
    // Another device's store: a wrong call.
    assert_eq!(
        s.bob_views[i5]
            .decryption_error(&s.bob.devices[i17].party.store, id(ALICE), &failed, NOW)
            .err(),
        Some(Error::WrongRecord)
    );

    // Alice's device: an unlisted device, or the request claimed from another listed
    // device, is refused without a change.
    assert_refused(&mut s.alice_view, Error::UnknownDevice(id(99)), |c| {
        c.handle_decryption_error(id(99), &request, NOW)
    });
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.handle_decryption_error(id(17), &request, NOW)
    });
    let mut truncated = request.clone();
    truncated.pop();
    assert_refused(&mut s.alice_view, Error::Truncated, |c| {
        c.handle_decryption_error(id(5), &truncated, NOW)
    });
    // From device 5: its sending session is archived.
    let sending = s
        .alice_view
        .record(id(5))
        .unwrap()
        .sending_session()
        .unwrap()
        .id();
    assert_eq!(
        s.alice_view.handle_decryption_error(id(5), &request, NOW),
        Ok(ResetOutcome::Reset(sending))
    );
    assert!(s
        .alice_view
        .record(id(5))
        .unwrap()
        .sending_session()
        .is_none());
    assert_eq!(
        s.alice_view.handle_decryption_error(id(5), &request, NOW),
        Ok(ResetOutcome::Stale)
    );
    let deliveries = s.alice_sends(b"no session with 5");
    assert_eq!(deliveries[0].result, Err(Error::NoSession));
    s.deliver(deliveries, b"no session with 5");

    // Contact::initiate again: a new session reaches device 5.
    s.initiate(5);
    let deliveries = s.alice_sends(b"new session");
    assert!(deliveries.iter().all(|d| d.result.is_ok()));
    for d in deliveries {
        let received = s.bob_receives(d.device.get(), &d.result.unwrap()).unwrap();
        assert_eq!(received.plaintext, b"new session");
        assert_eq!(received.new_session, d.device == id(5));
    }

    // A listed device without a record has no sending session: the request is checked,
    // and no record is made.
    let list = s.bob.remove(17);
    assert_eq!(s.alice_view.update_devices(&list), Ok(updated(&[], &[17])));
    let list = s.bob.readd(17);
    assert_eq!(s.alice_view.update_devices(&list), Ok(updated(&[17], &[])));
    let request17 = s.bob_views[i17]
        .decryption_error(&s.bob.devices[i17].party.store, id(ALICE), &to_17, NOW)
        .unwrap();
    let before = snapshot(&s.alice_view);
    assert_eq!(
        s.alice_view
            .handle_decryption_error(id(17), &request17, NOW),
        Ok(ResetOutcome::NotSending)
    );
    assert!(snapshot(&s.alice_view) == before);
    assert_refused(&mut s.alice_view, Error::IdentityMismatch, |c| {
        c.handle_decryption_error(id(17), &request, NOW)
    });

    // The local device itself is a wrong call, both ways.
    let mut own = Contact::verified(
        s.alice.devices[0].key(),
        s.alice.key(),
        s.alice.list(),
        RecordLimits::default(),
    )
    .unwrap();
    assert_eq!(
        own.decryption_error(&s.alice.devices[0].party.store, id(ALICE), &failed, NOW)
            .err(),
        Some(Error::WrongRecord)
    );
    assert_refused(&mut own, Error::WrongRecord, |c| {
        c.handle_decryption_error(id(ALICE), &request, NOW)
    });
}

#[cfg(feature = "pqxdh")]
#[test]
fn the_post_quantum_memory_outlives_an_archived_session() {
    let mut s = Scene::established(43, Mode::PostQuantum);
    assert!(s.alice_view.requires_post_quantum());
    // The sending session with device 5 archived (as after a decryption-error request):
    // the next session is still refused a classical bundle. The contact is the only way to
    // initiate (it gives no mutable access to a record).
    assert!(s.alice_view.archive_sending_session(id(5)).is_some());
    assert_eq!(s.alice_view.archive_sending_session(id(5)), None);
    assert_eq!(s.alice_view.archive_sending_session(id(99)), None);
    let i5 = s.bob.index(5);
    let classical = s.bob.devices[i5].party.bundle(&mut s.r);
    assert!(!classical.is_post_quantum());
    assert_refused(&mut s.alice_view, Error::PostQuantumRequired, |c| {
        c.initiate(
            &s.alice.devices[0].party.store,
            id(5),
            &classical,
            &SessionOptions::new(),
            NOW,
            &mut s.r,
        )
    });
    assert!(s
        .alice_view
        .record(id(5))
        .unwrap()
        .sending_session()
        .is_none());
    // A post-quantum bundle is taken.
    s.initiate(5);
    let deliveries = s.alice_sends(b"post-quantum again");
    assert!(deliveries.iter().all(|d| d.result.is_ok()));
    s.deliver(deliveries, b"post-quantum again");
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
    // request).
    let sending = s
        .alice_view
        .record(id(17))
        .unwrap()
        .sending_session()
        .unwrap()
        .id();
    assert_eq!(s.alice_view.archive_sending_session(id(17)), Some(sending));
    assert_eq!(s.alice_view.archive_sending_session(id(17)), None);
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
        let with = s.bob.readd(17);
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

#[test]
fn fan_out_without_targets_draws_no_randomness() {
    let mut r = rng(44);
    let mut alice = User::new(&[ALICE], &mut r);
    let bob = User::new(&[5], &mut r);
    let local = *alice.devices[0].key();
    let limits = RecordLimits::default();
    // The own account with only the local device; an account that removed every device.
    let mut own = Contact::verified(&local, alice.key(), alice.list(), limits).unwrap();
    let gone = alice.remove(ALICE);
    assert!(gone.is_empty());
    let mut to_nobody = Contact::first_use(&local, &gone, limits).unwrap();
    // An RNG that serves one draw: none of these calls takes it.
    let mut failing = FailingRng::new(1);
    assert!(own.encrypt(b"nobody", &mut failing).unwrap().is_empty());
    assert!(to_nobody
        .encrypt(b"nobody", &mut failing)
        .unwrap()
        .is_empty());
    assert!(encrypt_to_devices(&mut [], b"nobody", &mut failing)
        .unwrap()
        .is_empty());
    assert!(
        encrypt_to_devices(&mut [&mut own, &mut to_nobody], b"nobody", &mut failing)
            .unwrap()
            .is_empty()
    );
    let mut dead = FailingRng::new(0);
    assert!(own.encrypt(b"nobody", &mut dead).unwrap().is_empty());
    // One target: the draw is taken (the device has no session), then the RNG is spent.
    let mut to_bob = Contact::first_use(&local, bob.list(), limits).unwrap();
    let deliveries = encrypt_to_devices(
        &mut [&mut own, &mut to_bob, &mut to_nobody],
        b"x",
        &mut failing,
    )
    .unwrap();
    assert_eq!(targets(&deliveries), [5]);
    assert_eq!(deliveries[0].result, Err(Error::NoSession));
    assert_eq!(
        to_bob.encrypt(b"x", &mut failing).err(),
        Some(Error::RandomnessUnavailable)
    );
    assert_eq!(
        to_bob.encrypt(b"x", &mut dead).err(),
        Some(Error::RandomnessUnavailable)
    );
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
    let new = link_of(&fresh_seed(&mut r), bob.key(), 77);
    let a = bob.account.add_device(&new).unwrap().clone();
    let b = loaded.add_device(&new).unwrap().clone();
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn contacts_round_trip_with_their_records() {
    for mode in Mode::all() {
        let mut s = Scene::established(31, mode);
        s.alice_view.mark_verified(s.bob.key()).unwrap();
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
    let manager = LocalDevice::new(0, &mut r).unwrap();
    let mut account = Account::new(&manager, id(next), &mut r).unwrap();
    let key = *account.account_key();
    next += 1;
    let mut lists = vec![account.device_list().clone()];
    // The ids removed by the time each list was signed (ids are never reused).
    let mut removed_by = vec![BTreeSet::new()];
    let mut removed = BTreeSet::new();
    for (add, at) in ops {
        let len = account.device_list().len();
        if *add || len == 0 {
            let result = account.add_device(&link_of(&fresh_seed(&mut r), &key, next));
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

#[test]
fn encrypt_to_reaches_one_device_only() {
    let mut s = Scene::new(40, Mode::Classical);
    s.initiate(5);
    s.initiate(30);
    let before = snapshot(&s.alice_view);
    // Not listed, no record, and the contact unchanged by each refusal.
    assert_eq!(
        s.alice_view.encrypt_to(id(99), b"x", &mut s.r),
        Err(Error::UnknownDevice(id(99)))
    );
    assert_eq!(
        s.alice_view.encrypt_to(id(17), b"x", &mut s.r),
        Err(Error::NoSession)
    );
    assert!(snapshot(&s.alice_view) == before);
    // One message, for device 30 only: it decrypts there; device 5's record did not move.
    let five = s.alice_view.record(id(5)).unwrap().to_bytes().to_vec();
    let message = s
        .alice_view
        .encrypt_to(id(30), b"only 30", &mut s.r)
        .unwrap();
    assert_eq!(s.alice_view.record(id(5)).unwrap().to_bytes()[..], five[..]);
    assert_eq!(s.bob_receives(30, &message).unwrap().plaintext, b"only 30");
    assert!(s.bob_receives(5, &message).is_err());
    // The local device itself, when the contact is the user's own account.
    let local = *s.bob.devices[s.bob.index(5)].key();
    let mut own = Contact::first_use(&local, s.bob.list(), RecordLimits::default()).unwrap();
    assert_eq!(
        own.encrypt_to(id(5), b"x", &mut s.r),
        Err(Error::WrongRecord)
    );
}
