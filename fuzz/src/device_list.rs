//! The `device_list` target: signed device lists (SPEC.md §9.4, type `0x16`), device links
//! (§9.4, type `0x17`), accounts signing lists (§9.3) and a contact taking them (§9.5).
//!
//! Every input is used three times:
//!
//! 1. as the encoding of a device list: `DeviceList::from_bytes` never panics and refuses
//!    exactly as a reading of §9.4 in field order predicts ([`expected_parse`]: `TooLarge`
//!    first, the framing errors, `InvalidPublicKey` for the account key or a device's,
//!    `InvalidEncoding` for a zero counter, more than `MAX_DEVICES` devices, ids not
//!    strictly ascending, an identity key listed twice or equal to the account key,
//!    `Truncated` / `TrailingData`; a structurally valid list is taken or
//!    `InvalidSignature`); what parses re-encodes to exactly the input, agrees with it
//!    field by field, and carries for each device the link that device signed
//!    ([`check_list`]);
//! 2. as the encoding of a device link: `DeviceLink::from_bytes` likewise
//!    ([`expected_link`]: `TooLarge`, framing, the account key, the identity key,
//!    `Truncated`, then `InvalidEncoding` for an identity key equal to the account key; a
//!    well-formed link is taken or `InvalidSignature`, and a link taken of a pool device is
//!    exactly the one that device signs);
//! 3. as a list of operations ([`ListOp`], decoded with `arbitrary`) on two accounts, A and
//!    B (fixed keys, loaded from their stored encodings), and a [`Contact`] first seen
//!    through A's first list. The accounts add devices from their links (a pool of device
//!    identities, the accounts' own keys among them, ids that collide, and links made for
//!    the other account) and remove devices, can be restored from an earlier stored
//!    encoding (then, unless they adopt their newest published list, they sign counters
//!    they signed before, with other devices) and adopt any list; the contact is given any
//!    list either account produced so far (old ones are replays, others forks), bytes of
//!    one altered, accepts identity changes it reported, gets session records put back,
//!    encrypts to its devices, makes and handles decryption-error requests, archives
//!    sending sessions, is marked verified, and is stored and loaded (plain or sealed).
//!
//! It asserts, against a model written from SPEC.md §9.3-§9.6: an account's add, remove or
//! adopt succeeds or fails exactly as documented (`StoreFull`, `WrongRecord`,
//! `TooManyDevices`, `DuplicateDevice`, `UnknownDevice`, `StaleDeviceList`,
//! `ForkedDeviceList`), a failure leaves its encoding unchanged, a new list has the next
//! counter and exactly the model's devices and parses back to itself, and a stored account
//! loads to the same bytes; the contact takes a list under its pinned key exactly when its
//! counter is higher than the held one's (the records of devices no longer listed with the
//! same identity key are dropped, and the update names exactly the devices added and
//! removed), says `Unchanged` for the held list itself, refuses a lower counter with
//! `StaleDeviceList` and another list with the held counter with `ForkedDeviceList`; while
//! an account never signed a counter twice (every restore followed by `adopt`), a device
//! the contact saw removed never comes back unless the account added it again; a list
//! under another key is an `IdentityChanged` carrying the pinned key, the new key and the
//! list, and nothing changes until the app accepts it; accepting pins the new key (trust
//! on first use) and takes its list, and a change seen under another pinned key or another
//! held counter is `StaleDeviceList`; `mark_verified` takes only the pinned key; every
//! refusal leaves the contact's encoding and its records byte-identical; altered list
//! bytes never parse; `restore_record`, the decryption-error calls, `archive_sending_session`
//! and fan-out (`Contact::encrypt`: one delivery per listed device but the local one, in id
//! order, `NoSession` without a sending session, all or nothing when the RNG fails, the RNG
//! not called without a target) follow their documentation; and after every operation the
//! contact's key, trust, list and records are the model's and its encoding loads and
//! stores again to the same bytes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use crate::prelude::*;
use doubleratchet::{
    Account, AccountKey, Contact, DeviceId, DeviceLink, DeviceList, DeviceUpdate, IdentityChange,
    Trust, MAX_DEVICES,
};
use doubleratchet_test_support::device_of;
use doubleratchet_test_support::rng::FailingRng;

thread_local! {
    /// Encodings (lists, accounts, contacts) already checked to load and store again: the
    /// accounts are deterministic, so inputs reach the same lists over and over, and each
    /// check verifies signatures.
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
// The encodings (SPEC.md §9.4)
// ---------------------------------------------------------------------------------------

/// Type byte of a device list.
pub(crate) const TYPE_DEVICE_LIST: u8 = 0x16;
/// The account key.
pub(crate) const LIST_ACCOUNT: core::ops::Range<usize> = 2..34;
/// The counter (`u64`, big-endian).
pub(crate) const LIST_COUNTER: usize = 34;
/// The number of devices (`u8`).
pub(crate) const LIST_COUNT: usize = 42;
/// The first device: `id (u32) || identity key (32) || link signature (64)` per device.
pub(crate) const LIST_ENTRIES: usize = 43;
/// A device's identity key within its entry.
pub(crate) const ENTRY_KEY: core::ops::Range<usize> = 4..36;
/// A device's link signature within its entry.
pub(crate) const ENTRY_LINK: core::ops::Range<usize> = 36..100;
pub(crate) const LIST_ENTRY: usize = 4 + 32 + 64;
pub(crate) const LIST_SIGNATURE: usize = 64;
/// The longest list: `MAX_DEVICES` devices (1 707 bytes).
pub(crate) const MAX_LIST_LENGTH: usize = LIST_ENTRIES + LIST_ENTRY * MAX_DEVICES + LIST_SIGNATURE;

/// Type byte of a device link.
pub(crate) const TYPE_DEVICE_LINK: u8 = 0x17;
/// A device link: `version || type || account key (32) || id (u32) || identity key (32) ||
/// signature (64)`, 134 bytes.
pub(crate) const LINK_ACCOUNT: core::ops::Range<usize> = 2..34;
pub(crate) const LINK_ID: usize = 34;
pub(crate) const LINK_IDENTITY: core::ops::Range<usize> = 38..70;
pub(crate) const LINK_SIGNATURE: core::ops::Range<usize> = 70..134;
pub(crate) const LINK_LENGTH: usize = 134;

/// What [`expected_parse`] and [`expected_link`] say a parser must do.
#[derive(Debug)]
pub(crate) enum Expect {
    /// The encoding is well formed: it parses, or a signature does not verify.
    WellFormed,
    /// Refused with one of these errors.
    Refused(Vec<Error>),
}

/// The errors of a version and type byte, for type `kind`.
fn framing(data: &[u8], kind: u8) -> Option<Error> {
    match data {
        [] | [BUNDLE_VERSION] => Some(Error::Truncated),
        [v, ..] if *v != BUNDLE_VERSION => Some(Error::UnsupportedVersion(*v)),
        [_, t, ..] if *t != kind => Some(Error::UnexpectedType(*t)),
        _ => None,
    }
}

/// SPEC.md §9.4 read in field order. Within one device, a parser may check the id's order
/// before or after reading and validating the identity key: both errors are allowed. The
/// duplicate and account-key checks come before the device's link signature is read.
pub(crate) fn expected_parse(data: &[u8]) -> Expect {
    use Error::{InvalidEncoding, InvalidPublicKey, TooLarge, TrailingData, Truncated};
    let refuse = |errors: &[Error]| Expect::Refused(errors.to_vec());
    if data.len() > MAX_LIST_LENGTH {
        return refuse(&[TooLarge]);
    }
    if let Some(e) = framing(data, TYPE_DEVICE_LIST) {
        return refuse(&[e]);
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
        let Some(key) = data.get(at + ENTRY_KEY.start..at + ENTRY_KEY.end) else {
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
        if data.len() < at + LIST_ENTRY {
            return refuse(&[Truncated]);
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
/// rules, re-encodes to exactly `data`, and parses again to itself; each device's link is
/// its entry's, for the list's account, parses from its own encoding and, for a device of
/// the fixture's pool, is exactly the link that device signs.
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
    assert_eq!(list.links().len(), list.len());
    let mut previous: Option<DeviceId> = None;
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    for (i, ((id, key), link)) in list.devices().zip(list.links()).enumerate() {
        let at = LIST_ENTRIES + i * LIST_ENTRY;
        assert_eq!(id.get(), be_u32(data, at));
        assert_eq!(
            key.as_bytes()[..],
            data[at + ENTRY_KEY.start..at + ENTRY_KEY.end]
        );
        assert!(previous.is_none_or(|p| p < id), "ids not ascending");
        previous = Some(id);
        assert!(seen.insert(*key.as_bytes()), "an identity key listed twice");
        assert_ne!(key.as_bytes(), list.account_key().as_bytes());
        assert_eq!(list.identity(id), Some(key));
        assert_eq!(list.device_of(key), Some(id));
        assert_eq!(link.account_key(), list.account_key());
        assert_eq!(link.device_id(), id);
        assert_eq!(link.identity_key(), key);
        assert_eq!(
            link.to_bytes()[LINK_SIGNATURE],
            data[at + ENTRY_LINK.start..at + ENTRY_LINK.end]
        );
    }
    let _ = format!("{list:?}");
    assert_eq!(list.clone(), *list);
    check_once(data, |data| {
        let again = DeviceList::from_bytes(data).unwrap();
        assert_eq!(again, *list);
        for link in list.links() {
            let bytes = link.to_bytes();
            assert_eq!(DeviceLink::from_bytes(&bytes).as_ref(), Ok(link));
            check_pool_link(link);
        }
    });
}

/// A link with a pool device's identity key is exactly the link that device signs (Ed25519
/// signatures are deterministic, and a forgery is taken as impossible).
fn check_pool_link(link: &DeviceLink) {
    let fx = list_fixture();
    if let Some(device) = fx
        .devices
        .iter()
        .find(|d| d.identity_key() == link.identity_key())
    {
        assert_eq!(
            device.link(link.account_key(), link.device_id()),
            *link,
            "a link of a pool device it did not sign"
        );
    }
}

/// SPEC.md §9.4's device link read in field order.
pub(crate) fn expected_link(data: &[u8]) -> Expect {
    use Error::{InvalidEncoding, InvalidPublicKey, TooLarge, Truncated};
    let refuse = |errors: &[Error]| Expect::Refused(errors.to_vec());
    if data.len() > LINK_LENGTH {
        return refuse(&[TooLarge]);
    }
    if let Some(e) = framing(data, TYPE_DEVICE_LINK) {
        return refuse(&[e]);
    }
    let Some(account) = data.get(LINK_ACCOUNT) else {
        return refuse(&[Truncated]);
    };
    let Ok(account) = IdentityKey::from_bytes(account.try_into().unwrap()) else {
        return refuse(&[InvalidPublicKey]);
    };
    let Some(identity) = data.get(LINK_IDENTITY) else {
        return refuse(&[Truncated]);
    };
    let Ok(identity) = IdentityKey::from_bytes(identity.try_into().unwrap()) else {
        return refuse(&[InvalidPublicKey]);
    };
    if data.len() < LINK_LENGTH {
        return refuse(&[Truncated]);
    }
    if identity == account {
        return refuse(&[InvalidEncoding]);
    }
    Expect::WellFormed
}

/// `DeviceLink::from_bytes(data)` against [`expected_link`]; a link that parses agrees
/// with `data` field by field and re-encodes to it, and is a pool device's own if its
/// identity key is one.
pub(crate) fn link_checked(data: &[u8]) -> Result<DeviceLink, Error> {
    let result = DeviceLink::from_bytes(data);
    match (expected_link(data), &result) {
        (Expect::WellFormed, Ok(link)) => {
            assert_eq!(link.to_bytes()[..], *data, "a link re-encodes differently");
            assert_eq!(link.account_key().as_bytes()[..], data[LINK_ACCOUNT]);
            assert_eq!(link.device_id().get(), be_u32(data, LINK_ID));
            assert_eq!(link.identity_key().as_bytes()[..], data[LINK_IDENTITY]);
            assert_ne!(
                link.identity_key().as_bytes(),
                link.account_key().as_bytes()
            );
            let _ = format!("{link:?}");
            check_pool_link(link);
        }
        (Expect::WellFormed, Err(e)) => {
            assert_eq!(*e, Error::InvalidSignature, "a well-formed link refused")
        }
        (Expect::Refused(allowed), r) => assert!(
            r.as_ref().is_err_and(|e| allowed.contains(e)),
            "device link: {:?}, expected one of {allowed:?}",
            r.as_ref().map(|_| ())
        ),
    }
    result
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

/// The time of the requests of [`ListFixture::request`] and [`ListFixture::reset_request`].
pub(crate) const REQUEST_TIME: u64 = 100;

/// Two accounts, a pool of devices, a session record of the local device's with device key
/// 1, and decryption-error requests between the two; all from fixed seeds.
pub(crate) struct ListFixture {
    /// The device identity keys; then (as keys 18 and 19 of an operation) the two accounts'
    /// keys as identity keys.
    pub(crate) keys: Vec<IdentityKey>,
    /// A device of each key of [`ListFixture::key`] (20: the pool, then a device whose
    /// identity key is account A's key, and one with B's), to sign links.
    pub(crate) devices: Vec<LocalDevice>,
    /// The contact's local device identity (key 0).
    pub(crate) local: IdentityKeyPair,
    /// Accounts A and B, stored (`0x2C`): A lists device 1 with key 1, B device 1 with key 2
    /// (counter 1 each).
    pub(crate) accounts: [Vec<u8>; 2],
    pub(crate) account_keys: [AccountKey; 2],
    /// The local device's record with device key 1 (`0x2B`): a sending session initiated
    /// from that device's bundle, awaiting a reply.
    pub(crate) record: Vec<u8>,
    /// An initial message of device key 1 to the local device, which the local device
    /// cannot decrypt (for `Contact::decryption_error`).
    pub(crate) failed: Vec<u8>,
    /// The local device's request about `failed` (SPEC.md §6.8) at [`REQUEST_TIME`]:
    /// deterministic (an Ed25519 signature).
    pub(crate) request: Vec<u8>,
    /// Device key 1's request about the local device's message in the session of
    /// `record`, at [`REQUEST_TIME`]: it names that session.
    pub(crate) reset_request: Vec<u8>,
}

impl ListFixture {
    /// Key `i` of an operation: a device key, or (18, 19) account A's or B's key.
    pub(crate) fn key(&self, i: u8) -> IdentityKey {
        *self.devices[usize::from(i) % (DEVICE_KEYS + 2)].identity_key()
    }

    /// The link the device of key `i` ([`ListFixture::key`]) signs as device `id` of
    /// `account`.
    pub(crate) fn link(&self, i: u8, account: &AccountKey, id: u32) -> DeviceLink {
        self.devices[usize::from(i) % (DEVICE_KEYS + 2)].link(account, DeviceId::new(id))
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
    let mut devices: Vec<LocalDevice> = pairs
        .iter()
        .map(|p| device_of(p, &mut rng).unwrap())
        .collect();
    let a = Account::new(&devices[1], DeviceId::new(1), &mut rng).unwrap();
    let b = Account::new(&devices[2], DeviceId::new(1), &mut rng).unwrap();
    let account_keys = [*a.account_key(), *b.account_key()];
    assert_ne!(account_keys[0], account_keys[1]);
    let accounts = [a.to_bytes().to_vec(), b.to_bytes().to_vec()];
    for (account, stored) in [&a, &b].into_iter().zip(&accounts) {
        let list = account.device_list();
        assert_eq!(list.counter(), 1);
        assert_eq!(list.len(), 1);
        assert_eq!(DeviceList::from_bytes(&list.to_bytes()).as_ref(), Ok(list));
        // A device whose identity key is the account key (its seed is in the stored
        // account, SPEC.md §7.9).
        let seed = [&[STORAGE_VERSION, 0x21][..], &stored[2..34]].concat();
        let pair = IdentityKeyPair::from_bytes(&seed).unwrap();
        assert_eq!(
            pair.public_key().as_bytes(),
            account.account_key().as_bytes()
        );
        devices.push(device_of(&pair, &mut rng).unwrap());
    }
    // The local device's session with device key 1, from that device's bundle, with one
    // message sent; device key 1's request about it.
    let (local_device, remote_device) = (&devices[0], &devices[1]);
    let bundle = remote_device.bundle(None).unwrap();
    let mut record = SessionRecord::new(&keys[0], &keys[1], RecordLimits::default()).unwrap();
    record
        .initiate(local_device, &bundle, &SessionOptions::new(), 0, &mut rng)
        .unwrap();
    let sent = record.encrypt(b"sent", &mut rng).unwrap();
    let remote_record = SessionRecord::new(&keys[1], &keys[0], RecordLimits::default()).unwrap();
    let reset_request = remote_record
        .decryption_error(remote_device, &sent, REQUEST_TIME)
        .unwrap();
    // Device key 1's own session with the local device: its first message, and the local
    // device's request about it.
    let mut theirs = SessionRecord::new(&keys[1], &keys[0], RecordLimits::default()).unwrap();
    theirs
        .initiate(
            remote_device,
            &local_device.bundle(None).unwrap(),
            &SessionOptions::new(),
            0,
            &mut rng,
        )
        .unwrap();
    let failed = theirs.encrypt(b"failed", &mut rng).unwrap();
    let request = SessionRecord::new(&keys[0], &keys[1], RecordLimits::default())
        .unwrap()
        .decryption_error(local_device, &failed, REQUEST_TIME)
        .unwrap();
    let mut pairs = pairs.into_iter();
    ListFixture {
        keys,
        devices,
        local: pairs.next().unwrap(),
        accounts,
        account_keys,
        record: record.to_bytes().to_vec(),
        failed,
        request,
        reset_request,
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
/// The app's time of `Contact::handle_decryption_error`.
const HANDLE_TIME: u64 = 200;

/// One operation of the stateful part. `b` picks account B rather than A; ids and keys are
/// picked modulo [`DEVICE_IDS`] and the key pool (`ListFixture::key`).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    /// The device of key `key` signs its link as device `id` of the account (of the other
    /// account, if `other`), and the account adds it and signs a new list.
    Add {
        /// Account B rather than A.
        b: bool,
        /// Index into [`DEVICE_IDS`].
        id: u8,
        /// Index into the key pool (the last two: the accounts' keys).
        key: u8,
        /// The link is made for the other account (`WrongRecord`).
        other: bool,
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
    /// The users compared safety numbers: the screen showed account A's key (B's if `b`).
    MarkVerified {
        /// The screen showed B's key.
        b: bool,
    },
    /// The contact is stored and loaded (sealed first, if `sealed`), its records stored and
    /// put back.
    Reload {
        /// Through `StorageKey::seal` / `open`.
        sealed: bool,
    },
    /// The account is replaced by one of its earlier stored encodings (a restore from a
    /// backup); with `adopt`, it then adopts the newest list it published (the last it
    /// signed), as SPEC.md §9.3 says; without, its next lists reuse counters it signed
    /// before.
    Rollback {
        /// Account B rather than A.
        b: bool,
        /// Index into the account's stored encodings, oldest first.
        snapshot: u8,
        /// `Account::adopt` of the account's last list afterwards.
        adopt: bool,
    },
    /// The account adopts list `list` (any list produced so far).
    Adopt {
        /// Account B rather than A.
        b: bool,
        /// Index into the lists produced.
        list: u8,
    },
    /// `Contact::decryption_error` for device `id` about the fixture's message of device
    /// key 1.
    DecryptionError {
        /// Index into [`DEVICE_IDS`].
        id: u8,
    },
    /// `Contact::handle_decryption_error` of device key 1's request (about the prepared
    /// session) as if from device `id`.
    HandleDecryptionError {
        /// Index into [`DEVICE_IDS`].
        id: u8,
    },
    /// `Contact::archive_sending_session` of device `id`.
    Archive {
        /// Index into [`DEVICE_IDS`].
        id: u8,
    },
}

/// The number of [`ListOp`] variants (for the seeds' encoder).
pub(crate) const LIST_OP_VARIANTS: u64 = 14;

/// Decodes the stateful part's operations from the input.
pub fn list_ops_from_bytes(data: &[u8]) -> Vec<ListOp> {
    decode_ops(data, MAX_LIST_OPS)
}

/// The model of one account: its key, counter and devices (by id). Ed25519 signatures are
/// deterministic, so the model determines the list's bytes: two lists are the same exactly
/// when their models are.
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

    /// What `add_device(link)` must do (SPEC.md §9.3, §9.4, §10.1): the model after it, or
    /// the documented error.
    pub(crate) fn add(&self, link: &DeviceLink) -> Result<AccountModel, Error> {
        let (id, key) = (link.device_id().get(), link.identity_key());
        if self.counter == u64::MAX {
            Err(Error::StoreFull)
        } else if *link.account_key() != self.key {
            Err(Error::WrongRecord)
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

    /// What `adopt(published)` must do (SPEC.md §9.3): whether the list is newer, with the
    /// model after it, or the documented error.
    pub(crate) fn adopt(&self, published: &DeviceList) -> Result<(bool, AccountModel), Error> {
        let other = AccountModel::of(published);
        if other.key != self.key {
            Err(Error::WrongRecord)
        } else if other == *self {
            Ok((false, other))
        } else if other.counter < self.counter {
            Err(Error::StaleDeviceList)
        } else if other.counter == self.counter {
            Err(Error::ForkedDeviceList)
        } else {
            Ok((true, other))
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

/// `account.adopt(published)` against its model: the documented result, the account's
/// list the published one when it was newer, and unchanged otherwise. Returns the model
/// after it.
pub(crate) fn adopt_checked(
    account: &mut Account,
    model: &AccountModel,
    published: &DeviceList,
) -> AccountModel {
    let before = account.to_bytes().to_vec();
    let expected = model.adopt(published);
    let result = account.adopt(published);
    match expected {
        Ok((newer, after)) => {
            assert_eq!(result, Ok(newer), "adopt of {published:?}");
            assert_eq!(account.device_list(), published);
            if !newer {
                assert_eq!(*account.to_bytes(), before, "adopting the held list");
            }
            after.check(account);
            after
        }
        Err(e) => {
            assert_eq!(result, Err(e), "adopt of {published:?}");
            assert_eq!(
                *account.to_bytes(),
                before,
                "a refused adopt changed the account"
            );
            model.check(account);
            model.clone()
        }
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

/// A contact's record, as the model sees it: its remote identity, whether it has a
/// sending session, and whether it acted on the fixture's reset request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordModel {
    pub(crate) remote: IdentityKey,
    pub(crate) sending: bool,
    pub(crate) reset: bool,
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
/// pinned key with a lower counter is `StaleDeviceList` (so a replayed list never brings
/// back a removed device), another with the held counter `ForkedDeviceList`, and neither
/// changes anything; a higher one is taken, dropping the records of devices no longer
/// listed with their key. Returns the change reported, and the update of a list taken.
pub(crate) fn feed_checked(
    contact: &mut Contact,
    m: &mut ContactModel,
    list: &DeviceList,
) -> (Option<IdentityChange>, Option<DeviceUpdate>) {
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
    } else if list.counter() < m.list.counter() {
        assert_eq!(result, Err(Error::StaleDeviceList));
        assert_eq!(
            snapshot(contact),
            before,
            "a stale list changed the contact"
        );
    } else if list.counter() == m.list.counter() {
        assert_eq!(result, Err(Error::ForkedDeviceList));
        assert_eq!(
            snapshot(contact),
            before,
            "a forked list changed the contact"
        );
    } else {
        assert!(list.counter() > m.highest);
        m.highest = list.counter();
        let expected = m.replace(list);
        assert_eq!(result.as_ref(), Ok(&expected));
        m.check(contact);
        return (None, Some(expected));
    }
    m.check(contact);
    (reported, None)
}

/// `accept_identity_change(change)` against the model, for a change reported while the
/// contact held a list with counter `held`: a change seen under another pinned key or
/// another held counter is `StaleDeviceList` and changes nothing; otherwise the new key is
/// pinned (trust on first use) and its list taken, dropping the records of devices not
/// listed in it with their key. Returns whether it was accepted.
pub(crate) fn accept_checked(
    contact: &mut Contact,
    m: &mut ContactModel,
    change: IdentityChange,
    held: u64,
) -> bool {
    let before = snapshot(contact);
    let new_list = change.device_list().clone();
    let stale = *change.old_key() != m.pinned || held != m.list.counter();
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
    !stale
}

/// `mark_verified(compared)` against the model: only the pinned key is taken (trust
/// verified); another is `IdentityMismatch` and changes nothing.
pub(crate) fn mark_verified_checked(
    contact: &mut Contact,
    m: &mut ContactModel,
    compared: &AccountKey,
) {
    let before = snapshot(contact);
    let result = contact.mark_verified(compared);
    if *compared == m.pinned {
        assert_eq!(result, Ok(()));
        m.trust = Trust::Verified;
    } else {
        assert_eq!(result, Err(Error::IdentityMismatch));
        assert_eq!(
            snapshot(contact),
            before,
            "a refused mark changed the contact"
        );
    }
    m.check(contact);
}

/// What the harness knows of one account's history, for the properties of restores
/// (SPEC.md §9.3).
#[derive(Clone, Debug, Default)]
struct History {
    /// The highest counter the account signed.
    max_signed: u64,
    /// The account signed a counter it had signed before (restored without adopting its
    /// newest list): a contact may then take back a removed device.
    reused: bool,
    /// Every device added with a successful `add_device`: the counter of the list, the id
    /// and the identity key.
    added: Vec<(u64, u32, IdentityKey)>,
    /// The last list the account signed: what the server holds.
    published: Option<DeviceList>,
}

struct Harness {
    fx: &'static ListFixture,
    accounts: [Account; 2],
    models: [AccountModel; 2],
    histories: [History; 2],
    /// Each account's stored encodings (after every change) with the model of each.
    snapshots: [Vec<(Vec<u8>, AccountModel)>; 2],
    /// Every list produced, in order.
    lists: Vec<DeviceList>,
    contact: Contact,
    model: ContactModel,
    /// Devices the contact saw removed under the pinned key, with the counter of the list
    /// that removed them (cleared when another key is pinned: its counters start afresh).
    gone: BTreeMap<(u32, [u8; 32]), u64>,
    /// Every identity change the contact reported, with the counter it held then.
    changes: Vec<(IdentityChange, u64)>,
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
        let histories = [0, 1].map(|i| History {
            max_signed: 1,
            reused: false,
            added: vec![(
                1,
                1,
                *accounts[i]
                    .device_list()
                    .identity(DeviceId::new(1))
                    .unwrap(),
            )],
            published: Some(accounts[i].device_list().clone()),
        });
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
            histories,
            contact,
            model,
            gone: BTreeMap::new(),
            changes: Vec::new(),
            rng: rng(0xDE71_0002),
            reloads: 0,
        };
        h.check_contact();
        h
    }

    fn apply(&mut self, op: ListOp) {
        match op {
            ListOp::Add { b, id, key, other } => self.add(b, id, key, other),
            ListOp::Remove { b, id } => self.remove(b, id),
            ListOp::Feed { list } => {
                let list = self.lists[usize::from(list) % self.lists.len()].clone();
                self.feed(&list);
            }
            ListOp::Tamper { list, at, mode } => self.tamper(list, at, mode),
            ListOp::Accept { change } => self.accept(change),
            ListOp::Restore { id, mode } => self.restore(id, mode),
            ListOp::Encrypt { len } => self.encrypt(len),
            ListOp::MarkVerified { b } => {
                let key = self.fx.account_keys[usize::from(b)];
                mark_verified_checked(&mut self.contact, &mut self.model, &key);
            }
            ListOp::Reload { sealed } => self.reload(sealed),
            ListOp::Rollback { b, snapshot, adopt } => self.rollback(b, snapshot, adopt),
            ListOp::Adopt { b, list } => {
                let list = self.lists[usize::from(list) % self.lists.len()].clone();
                self.adopt(usize::from(b), &list);
            }
            ListOp::DecryptionError { id } => self.decryption_error(id),
            ListOp::HandleDecryptionError { id } => self.handle_decryption_error(id),
            ListOp::Archive { id } => self.archive(id),
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
    ) -> Option<DeviceList> {
        let model = expected.clone();
        let list = account_change(&mut self.accounts[i], expected, change)?;
        self.models[i] = model.unwrap();
        self.push_snapshot(i);
        let history = &mut self.histories[i];
        if list.counter() <= history.max_signed {
            history.reused = true;
        }
        history.max_signed = history.max_signed.max(list.counter());
        history.published = Some(list.clone());
        self.lists.push(list.clone());
        Some(list)
    }

    /// Keeps the account's stored encoding with its model (what a rollback restores).
    fn push_snapshot(&mut self, i: usize) {
        let stored = self.accounts[i].to_bytes().to_vec();
        self.snapshots[i].push((stored, self.models[i].clone()));
    }

    fn add(&mut self, b: bool, id: u8, key: u8, other: bool) {
        let i = usize::from(b);
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let link = self
            .fx
            .link(key, &self.fx.account_keys[i ^ usize::from(other)], id);
        let expected = self.models[i].add(&link);
        if let Some(list) = self.account_op(i, expected, |a| a.add_device(&link).cloned()) {
            self.histories[i]
                .added
                .push((list.counter(), id, *link.identity_key()));
        }
    }

    fn remove(&mut self, b: bool, id: u8) {
        let i = usize::from(b);
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let expected = self.models[i].remove(id);
        self.account_op(i, expected, |a| a.remove_device(DeviceId::new(id)).cloned());
    }

    /// The account is restored from one of its stored encodings and, with `adopt`, adopts
    /// the last list it published.
    fn rollback(&mut self, b: bool, snapshot: u8, adopt: bool) {
        let i = usize::from(b);
        let (bytes, model) =
            self.snapshots[i][usize::from(snapshot) % self.snapshots[i].len()].clone();
        let account = Account::from_bytes(&bytes).unwrap();
        assert_eq!(*account.to_bytes(), bytes);
        model.check(&account);
        self.accounts[i] = account;
        self.models[i] = model;
        if adopt {
            let published = self.histories[i].published.clone().unwrap();
            self.adopt(i, &published);
            // With the newest list adopted, the account's next list has a counter it
            // never signed.
            if !self.histories[i].reused {
                assert_eq!(self.models[i].counter, self.histories[i].max_signed);
            }
        }
    }

    /// Account `i` adopts `list`, against the model.
    fn adopt(&mut self, i: usize, list: &DeviceList) {
        let before = self.models[i].clone();
        self.models[i] = adopt_checked(&mut self.accounts[i], &before, list);
        if self.models[i] != before {
            self.push_snapshot(i);
        }
    }

    /// The contact is given `list`. While the list's account never signed a counter twice,
    /// a device the contact saw removed comes back only if the account added it again
    /// after the list that removed it.
    fn feed(&mut self, list: &DeviceList) {
        let held = self.model.list.counter();
        let previous = self.model.list.clone();
        let (change, update) = feed_checked(&mut self.contact, &mut self.model, list);
        if let Some(change) = change {
            self.changes.push((change, held));
        }
        if let Some(DeviceUpdate::Updated { added, removed }) = update {
            let account = self
                .fx
                .account_keys
                .iter()
                .position(|k| k == list.account_key())
                .unwrap();
            let history = &self.histories[account];
            for id in added {
                let key = *list.identity(id).unwrap();
                if let Some(removed_at) = self.gone.remove(&(id.get(), *key.as_bytes())) {
                    assert!(
                        history.reused
                            || history.added.iter().any(|(c, i, k)| {
                                *i == id.get()
                                    && *k == key
                                    && *c > removed_at
                                    && *c <= list.counter()
                            }),
                        "device {id} came back without being added again"
                    );
                }
            }
            for id in removed {
                let key = *previous.identity(id).unwrap();
                self.gone
                    .insert((id.get(), *key.as_bytes()), list.counter());
            }
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
        let (change, held) = self.changes[usize::from(change) % self.changes.len()].clone();
        if accept_checked(&mut self.contact, &mut self.model, change, held) {
            // The new key's counters start afresh (SPEC.md §9.5).
            self.gone.clear();
        }
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
            self.model.records.insert(
                id,
                RecordModel {
                    remote,
                    sending,
                    reset: false,
                },
            );
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
            if targets.is_empty() {
                // No target: the RNG is not called.
                assert!(
                    result.is_ok_and(|d| d.is_empty()),
                    "fan-out without a target"
                );
            } else {
                assert_eq!(result.err(), Some(Error::RandomnessUnavailable));
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

    /// `Contact::decryption_error` for device `id` about the fixture's initial message of
    /// device key 1: `UnknownDevice` for a device not listed, `WrongRecord` for the local
    /// device, `IdentityMismatch` for a device listed with another key than key 1 (the
    /// message names its sender), else the request the fixture made; the contact does not
    /// change.
    fn decryption_error(&mut self, id: u8) {
        let fx = self.fx;
        let id = DeviceId::new(DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()]);
        let before = snapshot(&self.contact);
        let result = self
            .contact
            .decryption_error(&fx.devices[0], id, &fx.failed, REQUEST_TIME);
        let expected = match self.model.list.identity(id) {
            None => Err(Error::UnknownDevice(id)),
            Some(k) if k == fx.local.public_key() => Err(Error::WrongRecord),
            Some(k) if *k == fx.keys[1] => Ok(fx.request.clone()),
            Some(_) => Err(Error::IdentityMismatch),
        };
        assert_eq!(result, expected, "decryption_error for device {id}");
        assert_eq!(
            snapshot(&self.contact),
            before,
            "decryption_error changed the contact"
        );
    }

    /// `Contact::handle_decryption_error` of device key 1's request about the prepared
    /// session, as if from device `id`: `UnknownDevice` for a device not listed,
    /// `WrongRecord` for the local device, `IdentityMismatch` for a device listed with
    /// another key; from key 1, the record's outcome (SPEC.md §6.8): `Reset` of the
    /// prepared sending session the first time, `Stale` after that, `NotSending` without
    /// that session. Only `Reset` changes the contact.
    fn handle_decryption_error(&mut self, id: u8) {
        let fx = self.fx;
        let id = DeviceId::new(DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()]);
        let before = snapshot(&self.contact);
        let result = self
            .contact
            .handle_decryption_error(id, &fx.reset_request, HANDLE_TIME);
        let record = self.model.records.get(&id.get()).copied();
        match self.model.list.identity(id) {
            None => assert_eq!(result, Err(Error::UnknownDevice(id))),
            Some(k) if k == fx.local.public_key() => assert_eq!(result, Err(Error::WrongRecord)),
            Some(k) if *k != fx.keys[1] => assert_eq!(result, Err(Error::IdentityMismatch)),
            Some(_) => match record {
                Some(r) if r.reset => assert_eq!(result, Ok(ResetOutcome::Stale)),
                Some(r) if r.sending => {
                    assert!(
                        matches!(result, Ok(ResetOutcome::Reset(_))),
                        "reset request: {result:?}"
                    );
                    let r = self.model.records.get_mut(&id.get()).unwrap();
                    r.sending = false;
                    r.reset = true;
                    return;
                }
                _ => assert_eq!(result, Ok(ResetOutcome::NotSending)),
            },
        }
        assert_eq!(
            snapshot(&self.contact),
            before,
            "handle_decryption_error changed the contact without a reset"
        );
    }

    /// `Contact::archive_sending_session` of device `id`: the sending session's id if the
    /// device has one (the next message needs a new session), else `None` and nothing
    /// changes.
    fn archive(&mut self, id: u8) {
        let id = DEVICE_IDS[usize::from(id) % DEVICE_IDS.len()];
        let before = snapshot(&self.contact);
        let sending_id = self
            .contact
            .record(DeviceId::new(id))
            .and_then(|r| r.sending_session().map(|_| ()));
        let result = self.contact.archive_sending_session(DeviceId::new(id));
        match self.model.records.get_mut(&id) {
            Some(r) if r.sending => {
                assert!(sending_id.is_some());
                assert!(result.is_some(), "no sending session archived for {id}");
                r.sending = false;
            }
            _ => {
                assert_eq!(result, None);
                assert_eq!(
                    snapshot(&self.contact),
                    before,
                    "archiving nothing changed the contact"
                );
            }
        }
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

/// The target: the input as a device list and as a device link, then as operations on two accounts and a
/// contact (see the module documentation).
pub fn device_list(data: &[u8]) {
    let _ = parse_checked(data);
    let _ = link_checked(data);
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
