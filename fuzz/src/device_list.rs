//! The `device_list` target: signed device lists (SPEC.md §9.4, type `0x16`) and a contact
//! taking them (§9.5).
//!
//! Every input is used twice:
//!
//! 1. as the encoding of a device list: `DeviceList::from_bytes` never panics and refuses
//!    exactly as a reading of §9.4 in field order predicts ([`expected_parse`]: `TooLarge`
//!    first, the framing errors, `InvalidPublicKey` for the account key or a device's,
//!    `InvalidEncoding` for a zero counter, more than `MAX_DEVICES` devices, ids not
//!    strictly ascending, an identity key listed twice or equal to the account key,
//!    `Truncated` / `TrailingData`; a structurally valid list is taken or
//!    `InvalidSignature`); what parses re-encodes to exactly the input and agrees with it
//!    field by field ([`check_list`]);
//! 2. as a list of operations ([`ListOp`], decoded with `arbitrary`) on two accounts, A and
//!    B (fixed keys, loaded from their stored encodings), and a [`Contact`] first seen
//!    through A's first list. The accounts add and remove devices (a pool of identity keys,
//!    the accounts' own keys among them, and ids that collide) and can be restored from an
//!    earlier stored encoding (they then sign counters they signed before, with other
//!    devices); the contact is given any list either account produced so far (old ones are
//!    replays), bytes of one altered, accepts identity changes it reported, gets session
//!    records put back, encrypts to its devices, is marked verified, and is stored and
//!    loaded (plain or sealed).
//!
//! It asserts, against a model written from SPEC.md §9.3-§9.6: an account's add or remove
//! succeeds or fails exactly as documented (`DuplicateDevice`, `TooManyDevices`,
//! `UnknownDevice`), a failure leaves its encoding unchanged, a new list has the next
//! counter and exactly the model's devices and parses back to itself, and a stored account
//! loads to the same bytes; the contact takes a list under its pinned key exactly when its
//! counter is higher than the held one's (the records of devices no longer listed with the
//! same identity key are dropped, and the update names exactly the devices added and
//! removed), says `Unchanged` for the held list itself and refuses every other list under
//! that key with `StaleDeviceList`, so that a replayed list never brings back a removed
//! device; a list under another key is an `IdentityChanged` carrying the pinned key, the
//! new key and the list, and nothing changes until the app accepts it; accepting pins the
//! new key (trust on first use) and takes its list, and a change computed against another
//! pinned key is `StaleDeviceList`; every refusal leaves the contact's encoding and its
//! records byte-identical; altered list bytes never parse; `restore_record` and fan-out
//! (`Contact::encrypt`: one delivery per listed device but the local one, in id order,
//! `NoSession` without a sending session, all or nothing when the RNG fails) follow their
//! documentation; and after every operation the contact's key, trust, list and records are
//! the model's and its encoding loads and stores again to the same bytes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use crate::prelude::*;
use doubleratchet::{
    Account, AccountKey, Contact, DeviceId, DeviceList, DeviceUpdate, IdentityChange, Trust,
    MAX_DEVICES,
};
use doubleratchet_test_support::device_of;
use doubleratchet_test_support::rng::FailingRng;

thread_local! {
    /// Encodings (lists, accounts, contacts) already checked to load and store again: the
    /// accounts are deterministic, so inputs reach the same lists over and over, and each
    /// check verifies a signature.
    static CHECKED: RefCell<HashSet<Vec<u8>>> = RefCell::new(HashSet::new());
}

/// The most encodings [`CHECKED`] remembers.
const MAX_CHECKED: usize = 8192;

/// Runs `check` on `bytes` unless it already passed on the same bytes in this process.
pub(crate) fn check_once(bytes: &[u8], check: impl FnOnce(&[u8])) {
    if CHECKED.with(|c| c.borrow().contains(bytes)) {
        return;
    }
    check(bytes);
    CHECKED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_CHECKED {
            c.insert(bytes.to_vec());
        }
    });
}

// ---------------------------------------------------------------------------------------
// The encoding (SPEC.md §9.4)
// ---------------------------------------------------------------------------------------

/// Type byte of a device list.
pub(crate) const TYPE_DEVICE_LIST: u8 = 0x16;
/// The account key.
pub(crate) const LIST_ACCOUNT: core::ops::Range<usize> = 2..34;
/// The counter (`u64`, big-endian).
pub(crate) const LIST_COUNTER: usize = 34;
/// The number of devices (`u8`).
pub(crate) const LIST_COUNT: usize = 42;
/// The first device: `id (u32) || identity key (32)` per device.
pub(crate) const LIST_ENTRIES: usize = 43;
pub(crate) const LIST_ENTRY: usize = 4 + 32;
pub(crate) const LIST_SIGNATURE: usize = 64;
/// The longest list: `MAX_DEVICES` devices (683 bytes).
pub(crate) const MAX_LIST_LENGTH: usize = LIST_ENTRIES + LIST_ENTRY * MAX_DEVICES + LIST_SIGNATURE;

/// What [`expected_parse`] says `DeviceList::from_bytes` must do.
#[derive(Debug)]
pub(crate) enum Expect {
    /// The list is well formed: it parses, or its signature does not verify.
    WellFormed,
    /// Refused with one of these errors.
    Refused(Vec<Error>),
}

/// SPEC.md §9.4 read in field order. Within one device, a parser may check the id's order
/// before or after reading and validating the identity key: both errors are allowed.
pub(crate) fn expected_parse(data: &[u8]) -> Expect {
    use Error::{
        InvalidEncoding, InvalidPublicKey, TooLarge, TrailingData, Truncated, UnexpectedType,
        UnsupportedVersion,
    };
    let refuse = |errors: &[Error]| Expect::Refused(errors.to_vec());
    if data.len() > MAX_LIST_LENGTH {
        return refuse(&[TooLarge]);
    }
    match data {
        [] | [BUNDLE_VERSION] => return refuse(&[Truncated]),
        [v, ..] if *v != BUNDLE_VERSION => return refuse(&[UnsupportedVersion(*v)]),
        [_, t, ..] if *t != TYPE_DEVICE_LIST => return refuse(&[UnexpectedType(*t)]),
        _ => {}
    }
    let Some(account) = data.get(LIST_ACCOUNT) else {
        return refuse(&[Truncated]);
    };
    let Ok(account) = IdentityKey::from_bytes(account.try_into().unwrap()) else {
        return refuse(&[InvalidPublicKey]);
    };
    if data.len() < LIST_COUNTER + 8 {
        return refuse(&[Truncated]);
    }
    if be_u64(data, LIST_COUNTER) == 0 {
        return refuse(&[InvalidEncoding]);
    }
    let Some(&count) = data.get(LIST_COUNT) else {
        return refuse(&[Truncated]);
    };
    let count = usize::from(count);
    if count > MAX_DEVICES {
        return refuse(&[InvalidEncoding]);
    }
    let mut ids: Vec<u32> = Vec::new();
    let mut keys: Vec<IdentityKey> = Vec::new();
    for i in 0..count {
        let at = LIST_ENTRIES + i * LIST_ENTRY;
        if data.len() < at + 4 {
            return refuse(&[Truncated]);
        }
        let id = be_u32(data, at);
        let ascending = ids.last().is_none_or(|last| *last < id);
        let Some(key) = data.get(at + 4..at + LIST_ENTRY) else {
            return refuse(if ascending {
                &[Truncated]
            } else {
                &[Truncated, InvalidEncoding]
            });
        };
        let Ok(key) = IdentityKey::from_bytes(key.try_into().unwrap()) else {
            return refuse(if ascending {
                &[InvalidPublicKey]
            } else {
                &[InvalidPublicKey, InvalidEncoding]
            });
        };
        if !ascending || key == account || keys.contains(&key) {
            return refuse(&[InvalidEncoding]);
        }
        ids.push(id);
        keys.push(key);
    }
    let end = LIST_ENTRIES + count * LIST_ENTRY + LIST_SIGNATURE;
    if data.len() < end {
        refuse(&[Truncated])
    } else if data.len() > end {
        refuse(&[TrailingData])
    } else {
        Expect::WellFormed
    }
}

/// `DeviceList::from_bytes(data)`, checked against [`expected_parse`] and, when it parses,
/// [`check_list`].
pub(crate) fn parse_checked(data: &[u8]) -> Result<DeviceList, Error> {
    let result = DeviceList::from_bytes(data);
    match (expected_parse(data), &result) {
        (Expect::WellFormed, Ok(list)) => check_list(list, data),
        (Expect::WellFormed, Err(e)) => {
            assert_eq!(*e, Error::InvalidSignature, "a well-formed list refused")
        }
        (Expect::Refused(allowed), r) => assert!(
            r.as_ref().is_err_and(|e| allowed.contains(e)),
            "device list: {:?}, expected one of {allowed:?}",
            r.as_ref().map(|_| ())
        ),
    }
    result
}

/// A parsed list agrees with its encoding `data` field by field, keeps SPEC.md §9.4's
/// rules, re-encodes to exactly `data`, and parses again to itself.
pub(crate) fn check_list(list: &DeviceList, data: &[u8]) {
    assert_eq!(
        list.to_bytes(),
        data,
        "a device list re-encodes differently"
    );
    assert!(data.len() <= MAX_LIST_LENGTH);
    assert_eq!(list.account_key().as_bytes()[..], data[LIST_ACCOUNT]);
    assert_eq!(list.account_key().to_bytes()[..], data[LIST_ACCOUNT]);
    assert_eq!(list.counter(), be_u64(data, LIST_COUNTER));
    assert!(list.counter() >= 1);
    assert_eq!(list.len(), usize::from(data[LIST_COUNT]));
    assert!(list.len() <= MAX_DEVICES);
    assert_eq!(list.is_empty(), data[LIST_COUNT] == 0);
    assert_eq!(list.devices().len(), list.len());
    let mut previous: Option<DeviceId> = None;
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    for (i, (id, key)) in list.devices().enumerate() {
        let at = LIST_ENTRIES + i * LIST_ENTRY;
        assert_eq!(id.get(), be_u32(data, at));
        assert_eq!(key.as_bytes()[..], data[at + 4..at + LIST_ENTRY]);
        assert!(previous.is_none_or(|p| p < id), "ids not ascending");
        previous = Some(id);
        assert!(seen.insert(*key.as_bytes()), "an identity key listed twice");
        assert_ne!(key.as_bytes(), list.account_key().as_bytes());
        assert_eq!(list.identity(id), Some(key));
        assert_eq!(list.device_of(key), Some(id));
    }
    let _ = format!("{list:?}");
    assert_eq!(list.clone(), *list);
    check_once(data, |data| {
        let again = DeviceList::from_bytes(data).unwrap();
        assert_eq!(again, *list);
    });
}

// ---------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------

/// The number of device identity keys in the pool. Key 0 is the contact's local device;
/// key 1 is a device the fixture has a session with (a prepared record).
pub(crate) const DEVICE_KEYS: usize = 18;
/// The device ids an operation picks from (modulo): small ones that collide, 0 and the
/// extremes.
pub(crate) const DEVICE_IDS: [u32; 20] = [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    0,
    0x8000_0000,
    u32::MAX,
];

/// Two accounts, a pool of device identities, and a session record of the local device's
/// with device key 1; all from fixed seeds.
pub(crate) struct ListFixture {
    /// The device identity keys; then (as keys 18 and 19 of an operation) the two accounts'
    /// keys as identity keys.
    pub(crate) keys: Vec<IdentityKey>,
    /// The contact's local device identity (key 0).
    pub(crate) local: IdentityKeyPair,
    /// Accounts A and B, stored (`0x2C`): A lists device 1 with key 1, B device 1 with key 2
    /// (counter 1 each).
    pub(crate) accounts: [Vec<u8>; 2],
    pub(crate) account_keys: [AccountKey; 2],
    /// The local device's record with device key 1 (`0x2B`): a sending session initiated
    /// from that device's bundle, awaiting a reply.
    pub(crate) record: Vec<u8>,
}

impl ListFixture {
    /// Key `i` of an operation: a device key, or (18, 19) account A's or B's key.
    pub(crate) fn key(&self, i: u8) -> IdentityKey {
        let i = usize::from(i) % (DEVICE_KEYS + 2);
        match i.checked_sub(DEVICE_KEYS) {
            None => self.keys[i],
            Some(a) => IdentityKey::from_bytes(self.account_keys[a].as_bytes()).unwrap(),
        }
    }

    /// A copy of account `b` (A or B) as the fixture made it: kept between inputs while
    /// unchanged ([`ListFixture::give_back`]), else loaded.
    fn take_account(&self, b: bool) -> Account {
        PREPARED
            .with(|p| p.borrow_mut()[usize::from(b)].take())
            .unwrap_or_else(|| self.account(b))
    }

    /// Keeps account `b` for the next input if it is still as the fixture made it.
    fn give_back(&self, b: bool, account: Account) {
        if *account.to_bytes() == *self.accounts[usize::from(b)] {
            PREPARED.with(|p| p.borrow_mut()[usize::from(b)] = Some(account));
        }
    }

    /// Account `b` (A or B), loaded.
    pub(crate) fn account(&self, b: bool) -> Account {
        let bytes = &self.accounts[usize::from(b)];
        let account = Account::from_bytes(bytes).unwrap();
        assert_eq!(*account.to_bytes(), **bytes);
        account
    }
}

thread_local! {
    /// The two accounts as the fixture made them, kept between inputs while unchanged.
    static PREPARED: RefCell<[Option<Account>; 2]> = const { RefCell::new([None, None]) };
}

pub(crate) fn list_fixture() -> &'static ListFixture {
    static FIXTURE: OnceLock<ListFixture> = OnceLock::new();
    FIXTURE.get_or_init(make_list_fixture)
}

fn make_list_fixture() -> ListFixture {
    let mut rng = rng(0xDE71_0001);
    let pairs: Vec<IdentityKeyPair> = (0..DEVICE_KEYS)
        .map(|_| IdentityKeyPair::generate(&mut rng).unwrap())
        .collect();
    let keys: Vec<IdentityKey> = pairs.iter().map(|p| *p.public_key()).collect();
    let a = Account::new(DeviceId::new(1), &keys[1], &mut rng).unwrap();
    let b = Account::new(DeviceId::new(1), &keys[2], &mut rng).unwrap();
    let account_keys = [*a.account_key(), *b.account_key()];
    assert_ne!(account_keys[0], account_keys[1]);
    for account in [&a, &b] {
        let list = account.device_list();
        assert_eq!(list.counter(), 1);
        assert_eq!(list.len(), 1);
        check_list(list, &list.to_bytes());
    }
    // The local device's session with device key 1, from that device's bundle.
    let local_device = device_of(&pairs[0], &mut rng).unwrap();
    let remote_device = device_of(&pairs[1], &mut rng).unwrap();
    let bundle = remote_device.bundle(None).unwrap();
    let mut record = SessionRecord::new(&keys[0], &keys[1], RecordLimits::default()).unwrap();
    record
        .initiate(&local_device, &bundle, &SessionOptions::new(), 0, &mut rng)
        .unwrap();
    let mut pairs = pairs.into_iter();
    ListFixture {
        keys,
        local: pairs.next().unwrap(),
        accounts: [a.to_bytes().to_vec(), b.to_bytes().to_vec()],
        account_keys,
        record: record.to_bytes().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// The stateful part
// ---------------------------------------------------------------------------------------

/// The most operations one input runs.
const MAX_LIST_OPS: usize = 48;
/// The most reloads of the contact one input makes (later ones do nothing).
const MAX_RELOADS: usize = 4;
/// The context the contact is sealed with.
const CONTACT_CONTEXT: &[u8] = b"fuzz: contact";

/// One operation of the stateful part. `b` picks account B rather than A; ids and keys are
/// picked modulo [`DEVICE_IDS`] and the key pool (`ListFixture::key`).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    /// The account adds device `id` with identity key `key` and signs a new list.
    Add {
        /// Account B rather than A.
        b: bool,
        /// Index into [`DEVICE_IDS`].
        id: u8,
        /// Index into the key pool (the last two: the accounts' keys).
        key: u8,
    },
    /// The account removes device `id` and signs a new list.
    Remove {
        /// Account B rather than A.
        b: bool,
        /// Index into [`DEVICE_IDS`].
        id: u8,
    },
    /// The contact is given list `list`: every list produced so far, in order (A's and B's
    /// first lists, then each new one).
    Feed {
        /// Index into the lists produced.
        list: u8,
    },
    /// The bytes of list `list` altered (`mode` 0: bit `at` flipped; 1: cut at `at`; 2: a
    /// byte appended) and parsed.
    Tamper {
        /// Index into the lists produced.
        list: u8,
        /// Bit or byte position (modulo the length).
        at: u16,
        /// Which alteration (modulo 3).
        mode: u8,
    },
    /// The app accepts identity change `change`: every change the contact reported, in
    /// order.
    Accept {
        /// Index into the changes reported.
        change: u8,
    },
    /// A stored record is put back for device `id`: `mode` 0 the listed device's (with a
    /// session for key 1, else empty), 1 another remote identity's, 2 another local
    /// identity's.
    Restore {
        /// Index into [`DEVICE_IDS`].
        id: u8,
        /// Which record (modulo 3).
        mode: u8,
    },
    /// Fan-out of a `len`-byte plaintext (with a failing RNG when `len % 16 == 15`).
    Encrypt {
        /// Plaintext length.
        len: u8,
    },
    /// The users compared safety numbers.
    MarkVerified,
    /// The contact is stored and loaded (sealed first, if `sealed`), its records stored and
    /// put back.
    Reload {
        /// Through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// The account is replaced by one of its earlier stored encodings (a restore from a
    /// backup): its next lists reuse counters it signed before.
    Rollback {
        /// Account B rather than A.
        b: bool,
        /// Index into the account's stored encodings, oldest first.
        snapshot: u8,
    },
}

/// The number of [`ListOp`] variants (for the seeds' encoder).
pub(crate) const LIST_OP_VARIANTS: u64 = 10;

/// Decodes the stateful part's operations from the input.
pub fn list_ops_from_bytes(data: &[u8]) -> Vec<ListOp> {
    decode_ops(data, MAX_LIST_OPS)
}

/// The model of one account: its key, counter and devices (by id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountModel {
    pub(crate) key: AccountKey,
    pub(crate) counter: u64,
    pub(crate) devices: BTreeMap<u32, IdentityKey>,
}

impl AccountModel {
    pub(crate) fn of(list: &DeviceList) -> AccountModel {
        AccountModel {
            key: *list.account_key(),
            counter: list.counter(),
            devices: list.devices().map(|(id, k)| (id.get(), *k)).collect(),
        }
    }

    /// The account's list agrees with the model.
    pub(crate) fn check(&self, account: &Account) {
        let list = account.device_list();
        assert_eq!(account.account_key(), &self.key);
        assert_eq!(*self, AccountModel::of(list), "the account's list");
    }

    /// What `add_device(id, key)` must do (SPEC.md §9.3, §9.4): the model after it, or the
    /// documented error.
    pub(crate) fn add(&self, id: u32, key: &IdentityKey) -> Result<AccountModel, Error> {
        if self.counter == u64::MAX {
            Err(Error::StoreFull)
        } else if self.devices.len() >= MAX_DEVICES {
            Err(Error::TooManyDevices)
        } else if self.devices.contains_key(&id)
            || self.devices.values().any(|k| k == key)
            || key.as_bytes() == self.key.as_bytes()
        {
            Err(Error::DuplicateDevice)
        } else {
            let mut next = self.clone();
            next.counter += 1;
            next.devices.insert(id, *key);
            Ok(next)
        }
    }

    /// What `remove_device(id)` must do.
    pub(crate) fn remove(&self, id: u32) -> Result<AccountModel, Error> {
        if !self.devices.contains_key(&id) {
            Err(Error::UnknownDevice(DeviceId::new(id)))
        } else if self.counter == u64::MAX {
            Err(Error::StoreFull)
        } else {
            let mut next = self.clone();
            next.counter += 1;
            next.devices.remove(&id);
            Ok(next)
        }
    }
}

/// Runs an account change (`add_device` or `remove_device`) expected to give `expected`:
/// its result agrees, and a new list parses back to itself and is the account's; a
/// failure leaves the encoding unchanged. Returns the new list. (Whether the account
/// stores and loads again is [`check_account_reloads`]'s, once per input.)
pub(crate) fn account_change(
    account: &mut Account,
    expected: Result<AccountModel, Error>,
    change: impl FnOnce(&mut Account) -> Result<DeviceList, Error>,
) -> Option<DeviceList> {
    let before = account.to_bytes().to_vec();
    let result = change(account);
    match (expected, result) {
        (Ok(model), Ok(list)) => {
            check_list(&list, &list.to_bytes());
            assert_eq!(&list, account.device_list());
            model.check(account);
            Some(list)
        }
        (Err(e), Err(got)) => {
            assert_eq!(got, e);
            assert_eq!(
                *account.to_bytes(),
                before,
                "a refused change changed the account"
            );
            None
        }
        (expected, got) => panic!(
            "account change: {:?}, expected {:?}",
            got.map(|l| l.counter()),
            expected.map(|m| m.counter)
        ),
    }
}

/// The stored account loads and stores again to the same bytes, with the same list.
pub(crate) fn check_account_reloads(account: &Account) {
    check_once(&account.to_bytes(), |stored| {
        let loaded = Account::from_bytes(stored).unwrap();
        assert_eq!(
            *loaded.to_bytes(),
            *stored,
            "an account re-encodes differently"
        );
        assert_eq!(loaded.device_list(), account.device_list());
    });
}

/// A contact's record, as the model sees it: its remote identity and whether it has a
/// sending session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordModel {
    pub(crate) remote: IdentityKey,
    pub(crate) sending: bool,
}

/// The model of a contact (SPEC.md §9.5).
#[derive(Clone, Debug)]
pub(crate) struct ContactModel {
    pub(crate) pinned: AccountKey,
    pub(crate) trust: Trust,
    pub(crate) list: DeviceList,
    pub(crate) records: BTreeMap<u32, RecordModel>,
    /// The highest counter taken under the pinned key since it was pinned.
    pub(crate) highest: u64,
}

impl ContactModel {
    /// The model of a contact without records.
    pub(crate) fn of(contact: &Contact) -> ContactModel {
        ContactModel {
            pinned: *contact.account_key(),
            trust: contact.trust(),
            list: contact.device_list().clone(),
            records: BTreeMap::new(),
            highest: contact.device_list().counter(),
        }
    }

    /// The update of taking `list` instead of the held one, and the model after it.
    fn replace(&mut self, list: &DeviceList) -> DeviceUpdate {
        let listed = |l: &DeviceList, id: DeviceId, key: &IdentityKey| l.identity(id) == Some(key);
        let added = list
            .devices()
            .filter(|(id, key)| !listed(&self.list, *id, key))
            .map(|(id, _)| id)
            .collect();
        let removed = self
            .list
            .devices()
            .filter(|(id, key)| !listed(list, *id, key))
            .map(|(id, _)| id)
            .collect();
        self.records
            .retain(|id, r| listed(list, DeviceId::new(*id), &r.remote));
        self.list = list.clone();
        DeviceUpdate::Updated { added, removed }
    }

    /// The contact's key, trust, list and records are the model's.
    pub(crate) fn check(&self, c: &Contact) {
        assert_eq!(*c.account_key(), self.pinned);
        assert_eq!(c.trust(), self.trust);
        assert_eq!(*c.device_list(), self.list);
        let records: Vec<(u32, IdentityKey, bool)> = c
            .records()
            .map(|(id, r)| {
                assert_eq!(r.local_identity(), c.local_identity());
                assert_eq!(
                    c.record(id).map(SessionRecord::remote_identity),
                    Some(r.remote_identity())
                );
                (
                    id.get(),
                    *r.remote_identity(),
                    r.sending_session().is_some(),
                )
            })
            .collect();
        let expected: Vec<(u32, IdentityKey, bool)> = self
            .records
            .iter()
            .map(|(id, r)| (*id, r.remote, r.sending))
            .collect();
        assert_eq!(records, expected, "the contact's records");
        for (id, remote, _) in &records {
            assert_eq!(
                c.device_list().identity(DeviceId::new(*id)),
                Some(remote),
                "a record of a device not listed with its key"
            );
        }
    }
}

/// The contact's encoding and its records' encodings: what a refusal must leave alone.
#[derive(PartialEq, Eq, Debug)]
pub(crate) struct Snapshot {
    contact: Vec<u8>,
    records: Vec<(u32, Vec<u8>)>,
}

pub(crate) fn snapshot(contact: &Contact) -> Snapshot {
    Snapshot {
        contact: contact.to_bytes().to_vec(),
        records: contact
            .records()
            .map(|(id, r)| (id.get(), r.to_bytes().to_vec()))
            .collect(),
    }
}

/// `update_devices(list)` against the model (SPEC.md §9.5): a list under another key is
/// reported (returned) and changes nothing; the held list is `Unchanged`; a list under the
/// pinned key with a counter not higher is `StaleDeviceList` and changes nothing (so a
/// replayed list never brings back a removed device); a higher one is taken, dropping the
/// records of devices no longer listed with their key.
pub(crate) fn feed_checked(
    contact: &mut Contact,
    m: &mut ContactModel,
    list: &DeviceList,
) -> Option<IdentityChange> {
    let before = snapshot(contact);
    let result = contact.update_devices(list);
    let mut reported = None;
    if *list.account_key() != m.pinned {
        match result {
            Ok(DeviceUpdate::IdentityChanged(change)) => {
                assert_eq!(*change.old_key(), m.pinned);
                assert_eq!(change.new_key(), list.account_key());
                assert_eq!(change.device_list(), list);
                let _ = format!("{change:?}");
                reported = Some(change);
            }
            other => panic!("a list under another key: {other:?}"),
        }
        assert_eq!(
            snapshot(contact),
            before,
            "an identity change changed the contact"
        );
    } else if *list == m.list {
        assert_eq!(result, Ok(DeviceUpdate::Unchanged));
        assert_eq!(
            snapshot(contact),
            before,
            "the held list changed the contact"
        );
    } else if list.counter() <= m.list.counter() {
        assert_eq!(result, Err(Error::StaleDeviceList));
        assert_eq!(
            snapshot(contact),
            before,
            "a stale list changed the contact"
        );
    } else {
        assert!(list.counter() > m.highest);
        m.highest = list.counter();
        let expected = m.replace(list);
        assert_eq!(result, Ok(expected));
    }
    m.check(contact);
    reported
}

/// `accept_identity_change(change)` against the model: a change computed against another
/// key than the pinned one is `StaleDeviceList` and changes nothing; otherwise the new key
/// is pinned (trust on first use) and its list taken, dropping the records of devices not
/// listed in it with their key.
pub(crate) fn accept_checked(contact: &mut Contact, m: &mut ContactModel, change: IdentityChange) {
    let before = snapshot(contact);
    let new_list = change.device_list().clone();
    let stale = *change.old_key() != m.pinned;
    let result = contact.accept_identity_change(change);
    if stale {
        assert_eq!(result, Err(Error::StaleDeviceList));
        assert_eq!(
            snapshot(contact),
            before,
            "a stale change changed the contact"
        );
    } else {
        let expected = m.replace(&new_list);
        m.pinned = *new_list.account_key();
        m.trust = Trust::FirstUse;
        m.highest = new_list.counter();
        assert_eq!(result, Ok(expected));
    }
    m.check(contact);
}

struct Harness {
    fx: &'static ListFixture,
    accounts: [Account; 2],
    models: [AccountModel; 2],
    /// Each account's stored encodings (after every change) with the model of each.
    snapshots: [Vec<(Vec<u8>, AccountModel)>; 2],
    /// Every list produced, in order.
    lists: Vec<DeviceList>,
    contact: Contact,
    model: ContactModel,
    /// Every identity change the contact reported.
    changes: Vec<IdentityChange>,
    rng: ChaCha20Rng,
    reloads: usize,
}

impl Harness {
    fn new() -> Harness {
        let fx = list_fixture();
        let accounts = [fx.take_account(false), fx.take_account(true)];
        let models = [
            AccountModel::of(accounts[0].device_list()),
            AccountModel::of(accounts[1].device_list()),
        ];
        let local = fx.local.public_key();
        let first = accounts[0].device_list().clone();
        let limits = RecordLimits::default();
        // A verified contact must be given a list under the verified key.
        assert_eq!(
            Contact::verified(local, &fx.account_keys[1], &first, limits).err(),
            Some(Error::IdentityMismatch)
        );
        let verified = Contact::verified(local, &fx.account_keys[0], &first, limits).unwrap();
        assert_eq!(verified.trust(), Trust::Verified);
        let contact = Contact::first_use(local, &first, limits).unwrap();
        let model = ContactModel {
            pinned: fx.account_keys[0],
            trust: Trust::FirstUse,
            list: first.clone(),
            records: BTreeMap::new(),
            highest: first.counter(),
        };
        let h = Harness {
            fx,
            snapshots: [
                vec![(fx.accounts[0].clone(), models[0].clone())],
                vec![(fx.accounts[1].clone(), models[1].clone())],
            ],
            lists: vec![first, accounts[1].device_list().clone()],
            accounts,
            models,
            contact,
            model,
            changes: Vec::new(),
            rng: rng(0xDE71_0002),
            reloads: 0,
        };
        h.check_contact();
        h
    }

    fn apply(&mut self, op: ListOp) {
        match op {
            ListOp::Add { b, id, key } => self.add(b, id, key),
            ListOp::Remove { b, id } => self.remove(b, id),
            ListOp::Feed { list } => {
                let list = self.lists[usize::from(list) % self.lists.len()].clone();
                self.feed(&list);
            }
            ListOp::Tamper { list, at, mode } => self.tamper(list, at, mode),
            ListOp::Accept { change } => self.accept(change),
            ListOp::Restore { id, mode } => self.restore(id, mode),
            ListOp::Encrypt { len } => self.encrypt(len),
            ListOp::MarkVerified => {
                self.contact.mark_verified();
                self.model.trust = Trust::Verified;
            }
            ListOp::Reload { sealed } => self.reload(sealed),
            ListOp::Rollback { b, snapshot } => {
                let i = usize::from(b);
                let (bytes, model) =
                    self.snapshots[i][usize::from(snapshot) % self.snapshots[i].len()].clone();
                let account = Account::from_bytes(&bytes).unwrap();
                assert_eq!(*account.to_bytes(), bytes);
                model.check(&account);
                self.accounts[i] = account;
                self.models[i] = model;
            }
        }
        self.check_contact();
        for i in 0..2 {
            self.models[i].check(&self.accounts[i]);
        }
    }

    /// An account's change against the model; a new list joins the lists produced and the
    /// account's encoding its snapshots.
    fn account_op(
        &mut self,
        i: usize,
        expected: Result<AccountModel, Error>,
        change: impl FnOnce(&mut Account) -> Result<DeviceList, Error>,
    ) {
        let model = expected.clone();
        if let Some(list) = account_change(&mut self.accounts[i], expected, change) {
            self.models[i] = model.unwrap();
            let stored = self.accounts[i].to_bytes().to_vec();
            self.snapshots[i].push((stored, self.models[i].clone()));
            self.lists.push(list);
        }
    }

    fn add(&mut self, b: bool, id: u8, key: u8) {
        let i = usize::from(b);
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let key = self.fx.key(key);
        let expected = self.models[i].add(id, &key);
        self.account_op(i, expected, |a| {
            a.add_device(DeviceId::new(id), &key).cloned()
        });
    }

    fn remove(&mut self, b: bool, id: u8) {
        let i = usize::from(b);
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let expected = self.models[i].remove(id);
        self.account_op(i, expected, |a| a.remove_device(DeviceId::new(id)).cloned());
    }

    /// The contact is given `list`.
    fn feed(&mut self, list: &DeviceList) {
        if let Some(change) = feed_checked(&mut self.contact, &mut self.model, list) {
            self.changes.push(change);
        }
    }

    fn tamper(&mut self, list: u8, at: u16, mode: u8) {
        let mut bytes = self.lists[usize::from(list) % self.lists.len()].to_bytes();
        let at = usize::from(at);
        let len = bytes.len();
        match mode % 3 {
            0 => bytes[at / 8 % len] ^= 1 << (at % 8),
            1 => bytes.truncate(at % bytes.len()),
            _ => bytes.push(at as u8),
        }
        // A forgery is taken as impossible: altered bytes of a signed list never parse.
        let result = parse_checked(&bytes);
        assert!(result.is_err(), "altered list bytes parsed");
    }

    fn accept(&mut self, change: u8) {
        if self.changes.is_empty() {
            return;
        }
        let change = self.changes[usize::from(change) % self.changes.len()].clone();
        accept_checked(&mut self.contact, &mut self.model, change);
    }

    fn restore(&mut self, id: u8, mode: u8) {
        let fx = self.fx;
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let local = *fx.local.public_key();
        let listed = self.model.list.identity(DeviceId::new(id)).copied();
        // The record to put back: the listed device's (or key 3's, for an unlisted id), or
        // one of another remote or local identity.
        let remote = listed.unwrap_or(fx.keys[3]);
        let other = |not: &[IdentityKey]| *fx.keys[3..].iter().find(|k| !not.contains(k)).unwrap();
        let (record, sending) = match mode % 3 {
            0 if remote == fx.keys[1] => (SessionRecord::from_bytes(&fx.record).unwrap(), true),
            0 => match SessionRecord::new(&local, &remote, self.contact.limits()) {
                Ok(r) => (r, false),
                Err(e) => {
                    // The local device itself is listed: it has no record.
                    assert_eq!(remote, local);
                    assert_eq!(e, Error::WrongRecord);
                    return;
                }
            },
            1 => {
                let wrong = other(&[remote, local]);
                (
                    SessionRecord::new(&local, &wrong, self.contact.limits()).unwrap(),
                    false,
                )
            }
            _ => {
                let wrong = other(&[remote, local]);
                (
                    SessionRecord::new(&wrong, &remote, self.contact.limits()).unwrap(),
                    false,
                )
            }
        };
        let right = record.remote_identity() == &remote && record.local_identity() == &local;
        let before = snapshot(&self.contact);
        let result = self.contact.restore_record(DeviceId::new(id), record);
        let expected = if listed.is_none() {
            Err(Error::UnknownDevice(DeviceId::new(id)))
        } else if !right || self.model.records.contains_key(&id) {
            Err(Error::WrongRecord)
        } else {
            Ok(())
        };
        assert_eq!(result, expected, "restore_record of device {id}");
        if result.is_ok() {
            self.model
                .records
                .insert(id, RecordModel { remote, sending });
        } else {
            assert_eq!(
                snapshot(&self.contact),
                before,
                "a refused record changed the contact"
            );
        }
    }

    fn encrypt(&mut self, len: u8) {
        let plaintext: Vec<u8> = (0..len).collect();
        let local = *self.fx.local.public_key();
        let targets: Vec<(DeviceId, IdentityKey)> = self
            .model
            .list
            .devices()
            .filter(|(_, k)| **k != local)
            .map(|(id, k)| (id, *k))
            .collect();
        if len % 16 == 15 {
            let before = snapshot(&self.contact);
            let result = self.contact.encrypt(&plaintext, &mut FailingRng::new(0));
            match result {
                Err(e) => assert_eq!(e, Error::RandomnessUnavailable),
                Ok(d) => assert!(
                    targets.is_empty() && d.is_empty(),
                    "fan-out without randomness"
                ),
            }
            assert_eq!(
                snapshot(&self.contact),
                before,
                "a failed fan-out changed the contact"
            );
            return;
        }
        let before = self.contact.to_bytes().to_vec();
        let deliveries = self.contact.encrypt(&plaintext, &mut self.rng).unwrap();
        assert_eq!(
            *self.contact.to_bytes(),
            before,
            "fan-out changed the contact's own state"
        );
        assert_eq!(
            deliveries.len(),
            targets.len(),
            "one delivery per listed device"
        );
        for (d, (id, _)) in deliveries.iter().zip(&targets) {
            let _ = format!("{d:?}");
            assert_eq!(d.account, self.model.pinned);
            assert_eq!(d.device, *id);
            match self.model.records.get(&id.get()) {
                Some(RecordModel { sending: true, .. }) => {
                    let wire = d.result.as_ref().expect("a device with a session");
                    // The prepared session awaits a reply: its messages are initial ones.
                    assert!(matches!(Message::parse(wire), Ok(Message::Initial(_))));
                }
                _ => assert_eq!(d.result.as_ref().err(), Some(&Error::NoSession)),
            }
        }
    }

    fn reload(&mut self, sealed: bool) {
        if self.reloads == MAX_RELOADS {
            return;
        }
        self.reloads += 1;
        let before = snapshot(&self.contact);
        let mut loaded = if sealed {
            let key = &fixture().storage_key;
            let blob = key
                .seal(&self.contact, CONTACT_CONTEXT, &mut self.rng)
                .unwrap();
            assert_eq!(
                key.open::<Contact>(&blob, b"").err(),
                Some(Error::DecryptionFailed)
            );
            key.open::<Contact>(&blob, CONTACT_CONTEXT).unwrap()
        } else {
            Contact::from_bytes(&before.contact).unwrap()
        };
        assert_eq!(
            *loaded.to_bytes(),
            before.contact,
            "a contact re-encodes differently"
        );
        assert_eq!(loaded.records().count(), 0);
        for (id, bytes) in &before.records {
            let record = SessionRecord::from_bytes(bytes).unwrap();
            assert_eq!(loaded.restore_record(DeviceId::new(*id), record), Ok(()));
        }
        assert_eq!(snapshot(&loaded), before, "a reloaded contact differs");
        self.contact = loaded;
    }

    /// The contact agrees with the model; its encoding loads and stores again.
    fn check_contact(&self) {
        let c = &self.contact;
        self.model.check(c);
        assert_eq!(c.local_identity(), self.fx.local.public_key());
        assert!(!c.requires_post_quantum());
        check_once(&c.to_bytes(), |bytes| {
            let loaded = Contact::from_bytes(bytes).unwrap();
            assert_eq!(
                *loaded.to_bytes(),
                *bytes,
                "a contact re-encodes differently"
            );
        });
    }
}

/// The target: the input as a device list, then as operations on two accounts and a
/// contact (see the module documentation).
pub fn device_list(data: &[u8]) {
    let _ = parse_checked(data);
    let mut h = Harness::new();
    for op in list_ops_from_bytes(data) {
        h.apply(op);
    }
    // The accounts' last states store and load again (earlier ones do when an input rolls
    // back to them).
    let _ = format!("{:?}", h.contact);
    let [a, b] = h.accounts;
    for (i, account) in [a, b].into_iter().enumerate() {
        check_account_reloads(&account);
        h.fx.give_back(i == 1, account);
    }
}
