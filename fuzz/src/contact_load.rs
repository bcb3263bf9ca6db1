//! The `contact_load` target: the storage encodings of accounts (SPEC.md §7.9, type `0x2C`)
//! and contacts (§7.10, type `0x2D`), plain and sealed.
//!
//! `Contact::from_bytes` and `Account::from_bytes` on the input, and `StorageKey::open` of
//! both with the `load` target's key and contexts: nothing panics; each refuses exactly as
//! a reading of its encoding in field order predicts (framing, the local identity key, the
//! trust and post-quantum bytes, the record limits, the embedded list's length and then the
//! embedded list's own error, trailing data; for an account, a list signed by another key
//! than the seed's); what loads stores again to exactly the input, agrees with it field by
//! field, loads as no other type, and reseals (a sealed blob opens with its context only,
//! as one type only); and a loaded object can be used: an account adds and removes devices
//! as its model says (`TooManyDevices`, `DuplicateDevice`, `UnknownDevice`, `StoreFull` at
//! the last counter) and signs lists that parse; a contact takes its own list as
//! `Unchanged`, reports the fixture's account A as an identity change (or takes or refuses
//! its lists by counter, if it pinned A), accepts the change, puts back records for its
//! devices, fans out (`NoSession` for each listed device but the local one), and every
//! state stores and loads again.

use crate::device_list::{
    accept_checked, account_change, adopt_checked, check_account_reloads, feed_checked,
    list_fixture, mark_verified_checked, parse_checked, AccountModel, ContactModel, DEVICE_IDS,
    DEVICE_KEYS,
};
use crate::prelude::*;
use doubleratchet::{
    Account, AccountKey, Contact, DeviceId, DeviceLink, DeviceList, Storable, Trust,
};
use doubleratchet_test_support::device_of;
use doubleratchet_test_support::rng::FailingRng;

/// Type bytes of a stored account and contact, and of a stored identity key pair.
pub(crate) const TYPE_ACCOUNT: u8 = 0x2C;
pub(crate) const TYPE_CONTACT: u8 = 0x2D;
const TYPE_IDENTITY: u8 = 0x21;

/// A stored account: `version || type || seed (32) || list length (u32) || list`.
pub(crate) const ACCOUNT_SEED: core::ops::Range<usize> = 2..34;
pub(crate) const ACCOUNT_LIST_LENGTH: usize = 34;
pub(crate) const ACCOUNT_LIST: usize = 38;
pub(crate) const MAX_ACCOUNT_SIZE: usize = ACCOUNT_LIST + crate::device_list::MAX_LIST_LENGTH;

/// A stored contact: `version || type || local identity (32) || trust || post-quantum flag
/// || limits (u32 max_archived, u32 max_trials, u32 max_stored_skipped, u64
/// unacknowledged_after, u64 reset_interval) || list length (u32) || list`.
pub(crate) const CONTACT_LOCAL: core::ops::Range<usize> = 2..34;
pub(crate) const CONTACT_TRUST: usize = 34;
pub(crate) const CONTACT_POST_QUANTUM: usize = 35;
pub(crate) const CONTACT_LIMITS: usize = 36;
pub(crate) const CONTACT_LIST_LENGTH: usize = 64;
pub(crate) const CONTACT_LIST: usize = 68;
pub(crate) const MAX_CONTACT_SIZE: usize = CONTACT_LIST + crate::device_list::MAX_LIST_LENGTH;

/// The errors of a stored object's header (SPEC.md §7): `TooLarge` above `max`, then the
/// version and type.
fn framing(data: &[u8], max: usize, kind: u8) -> Option<Error> {
    if data.len() > max {
        return Some(Error::TooLarge);
    }
    match data {
        [] | [STORAGE_VERSION] => Some(Error::Truncated),
        [v, ..] if *v != STORAGE_VERSION => Some(Error::UnsupportedVersion(*v)),
        [_, t, ..] if *t != kind => Some(Error::UnexpectedType(*t)),
        _ => None,
    }
}

/// The embedded list at `at` (`u32` length, then the list): `Truncated` if the length runs
/// past the input, else the list's own result (checked as the `device_list` target
/// checks it), and the end of the list.
fn embedded_list(data: &[u8], at: usize) -> Result<(DeviceList, usize), Error> {
    if data.len() < at + 4 {
        return Err(Error::Truncated);
    }
    let len = be_u32(data, at) as usize;
    let start = at + 4;
    if len > data.len() - start {
        return Err(Error::Truncated);
    }
    parse_checked(&data[start..start + len]).map(|list| (list, start + len))
}

/// The record limits at `at`.
fn limits_at(data: &[u8], at: usize) -> RecordLimits {
    RecordLimits::default()
        .with_max_archived(be_u32(data, at))
        .with_max_trials(be_u32(data, at + 4))
        .with_max_stored_skipped(be_u32(data, at + 8))
        .with_unacknowledged_after(be_u64(data, at + 12))
        .with_reset_interval(be_u64(data, at + 20))
}

/// What `Contact::from_bytes` must say (SPEC.md §7.10 read in field order): `Ok` when it
/// must load.
fn expected_contact(data: &[u8]) -> Result<(), Vec<Error>> {
    use Error::{InvalidEncoding, InvalidPublicKey, TrailingData, Truncated};
    if let Some(e) = framing(data, MAX_CONTACT_SIZE, TYPE_CONTACT) {
        return Err(vec![e]);
    }
    let Some(local) = data.get(CONTACT_LOCAL) else {
        return Err(vec![Truncated]);
    };
    if IdentityKey::from_bytes(local.try_into().unwrap()).is_err() {
        return Err(vec![InvalidPublicKey]);
    }
    for at in [CONTACT_TRUST, CONTACT_POST_QUANTUM] {
        match data.get(at) {
            None => return Err(vec![Truncated]),
            Some(0 | 1) => {}
            Some(_) => return Err(vec![InvalidEncoding]),
        }
    }
    if data.len() < CONTACT_LIST_LENGTH {
        return Err(vec![Truncated]);
    }
    if let Err(e) = limits_at(data, CONTACT_LIMITS).validate() {
        return Err(vec![e]);
    }
    let (_, end) = embedded_list(data, CONTACT_LIST_LENGTH).map_err(|e| vec![e])?;
    if data.len() > end {
        return Err(vec![TrailingData]);
    }
    Ok(())
}

/// The public key of the account key pair whose seed is at `ACCOUNT_SEED`.
fn seed_key(data: &[u8]) -> IdentityKey {
    let stored = [&[STORAGE_VERSION, TYPE_IDENTITY][..], &data[ACCOUNT_SEED]].concat();
    *IdentityKeyPair::from_bytes(&stored).unwrap().public_key()
}

/// What `Account::from_bytes` must say (SPEC.md §7.9): a list signed by another key than
/// the seed's is `InvalidEncoding`, checked before or after the trailing data.
fn expected_account(data: &[u8]) -> Result<(), Vec<Error>> {
    use Error::{InvalidEncoding, TrailingData, Truncated};
    if let Some(e) = framing(data, MAX_ACCOUNT_SIZE, TYPE_ACCOUNT) {
        return Err(vec![e]);
    }
    if data.len() < ACCOUNT_SEED.end {
        return Err(vec![Truncated]);
    }
    let (list, end) = embedded_list(data, ACCOUNT_LIST_LENGTH).map_err(|e| vec![e])?;
    let mismatch = list.account_key().as_bytes() != seed_key(data).as_bytes();
    match (data.len() > end, mismatch) {
        (true, true) => Err(vec![TrailingData, InvalidEncoding]),
        (true, false) => Err(vec![TrailingData]),
        (false, true) => Err(vec![InvalidEncoding]),
        (false, false) => Ok(()),
    }
}

/// A result agrees with what was expected; what loads is never `Internal`.
fn check_result<T>(what: &str, expected: Result<(), Vec<Error>>, result: &Result<T, Error>) {
    match (expected, result) {
        (Ok(()), Ok(_)) => {}
        (Ok(()), Err(e)) => panic!("a valid {what} refused: {e:?}"),
        (Err(allowed), Ok(_)) => panic!("{what} loaded, expected one of {allowed:?}"),
        (Err(allowed), Err(e)) => assert!(
            allowed.contains(e),
            "{what}: {e:?}, expected one of {allowed:?}"
        ),
    }
}

/// No other stored type loads `data`.
fn no_other_type(data: &[u8]) {
    assert!(!loads_as_session(data));
    assert!(IdentityKeyPair::from_bytes(data).is_err());
    assert!(SignedPreKey::from_bytes(data).is_err());
    assert!(OneTimePreKey::from_bytes(data).is_err());
    assert!(LocalDevice::from_bytes(data).is_err());
    assert!(SessionRecord::from_bytes(data).is_err());
    #[cfg(feature = "pqxdh")]
    assert!(PqPreKey::from_bytes(data).is_err());
}

/// A loaded contact agrees with its encoding `data` field by field.
fn check_contact_fields(c: &Contact, data: &[u8]) {
    assert_eq!(*c.to_bytes(), data, "a contact re-encodes differently");
    assert_eq!(c.local_identity().as_bytes()[..], data[CONTACT_LOCAL]);
    let trust = match data[CONTACT_TRUST] {
        0 => Trust::FirstUse,
        _ => Trust::Verified,
    };
    assert_eq!(c.trust(), trust);
    assert_eq!(c.requires_post_quantum(), data[CONTACT_POST_QUANTUM] == 1);
    assert_eq!(c.limits(), limits_at(data, CONTACT_LIMITS));
    assert_eq!(c.device_list().to_bytes(), data[CONTACT_LIST..]);
    assert_eq!(
        be_u32(data, CONTACT_LIST_LENGTH) as usize,
        data.len() - CONTACT_LIST
    );
    assert_eq!(c.account_key(), c.device_list().account_key());
    assert_eq!(c.records().count(), 0);
    let _ = format!("{c:?}");
}

/// A loaded account agrees with its encoding `data` field by field.
fn check_account_fields(a: &Account, data: &[u8]) {
    assert_eq!(*a.to_bytes(), data, "an account re-encodes differently");
    assert_eq!(a.account_key(), a.device_list().account_key());
    assert_eq!(a.account_key().as_bytes(), seed_key(data).as_bytes());
    assert_eq!(a.device_list().to_bytes(), data[ACCOUNT_LIST..]);
    assert_eq!(
        be_u32(data, ACCOUNT_LIST_LENGTH) as usize,
        data.len() - ACCOUNT_LIST
    );
    let _ = format!("{a:?}");
}

/// Seals `object` (whose encoding is `encoded`) again for `context`: it opens with that
/// context to the same encoding, with no other context (the other load context, the
/// context one byte longer), and as no other type.
fn check_reseal<T: Storable>(
    object: &T,
    encoded: &[u8],
    context: &[u8],
    open: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>, Error>,
) {
    let key = &fixture().storage_key;
    let blob = key.seal(object, context, &mut rng(4)).unwrap();
    let reopened =
        open(&blob, context).unwrap_or_else(|e| panic!("a fresh seal does not open: {e:?}"));
    assert_eq!(reopened, encoded);
    let longer = [context, &[0u8][..]].concat();
    for other in LOAD_CONTEXTS
        .iter()
        .copied()
        .filter(|c| *c != context)
        .chain([&longer[..]])
    {
        assert_eq!(
            open(&blob, other).err(),
            Some(Error::DecryptionFailed),
            "a sealed blob opened with another context"
        );
    }
    let opens = [
        opens_as_session(&blob, context),
        key.open::<IdentityKeyPair>(&blob, context).is_ok(),
        key.open::<SignedPreKey>(&blob, context).is_ok(),
        key.open::<OneTimePreKey>(&blob, context).is_ok(),
        key.open::<LocalDevice>(&blob, context).is_ok(),
        key.open::<SessionRecord>(&blob, context).is_ok(),
        key.open::<Account>(&blob, context).is_ok(),
        key.open::<Contact>(&blob, context).is_ok(),
        #[cfg(feature = "pqxdh")]
        key.open::<PqPreKey>(&blob, context).is_ok(),
    ];
    let count = opens.iter().filter(|o| **o).count();
    assert_eq!(count, 1, "a sealed blob opens as {count} types");
}

/// The target: see the module documentation.
pub fn contact_load(data: &[u8]) {
    let contact = Contact::from_bytes(data);
    check_result("contact", expected_contact(data), &contact);
    let account = Account::from_bytes(data);
    check_result("account", expected_account(data), &account);
    if contact.is_ok() || account.is_ok() {
        no_other_type(data);
    }
    if let Ok(c) = contact {
        check_contact_fields(&c, data);
        exercise_contact(c);
    }
    if let Ok(a) = account {
        check_account_fields(&a, data);
        exercise_account(a);
    }

    let key = &fixture().storage_key;
    let mut opened = 0;
    for context in LOAD_CONTEXTS {
        if let Ok(c) = key.open::<Contact>(data, context) {
            let bytes = c.to_bytes();
            assert_eq!(expected_contact(&bytes), Ok(()));
            check_contact_fields(&c, &bytes);
            check_reseal(&c, &bytes, context, |b, ctx| {
                key.open::<Contact>(b, ctx).map(|c| c.to_bytes().to_vec())
            });
            exercise_contact(c);
            opened += 1;
        }
        if let Ok(a) = key.open::<Account>(data, context) {
            let bytes = a.to_bytes();
            assert_eq!(expected_account(&bytes), Ok(()));
            check_account_fields(&a, &bytes);
            check_reseal(&a, &bytes, context, |b, ctx| {
                key.open::<Account>(b, ctx).map(|a| a.to_bytes().to_vec())
            });
            exercise_account(a);
            opened += 1;
        }
    }
    assert!(opened <= 1, "a sealed blob opens {opened} times");
}

/// A device id not in `model` (from [`DEVICE_IDS`]) and the index of a device key of the
/// pool not in it and not its account key (`ListFixture::key`).
fn fresh_device(model: &AccountModel) -> (u32, u8) {
    let fx = list_fixture();
    let id = *DEVICE_IDS
        .iter()
        .find(|id| !model.devices.contains_key(id))
        .unwrap();
    let key = fx.keys[..DEVICE_KEYS]
        .iter()
        .position(|k| {
            !model.devices.values().any(|d| d == k) && k.as_bytes() != model.key.as_bytes()
        })
        .unwrap();
    (id, u8::try_from(key).unwrap())
}

/// An account key of the fixture's other than `key`.
fn other_account(key: &AccountKey) -> AccountKey {
    let fx = list_fixture();
    *fx.account_keys.iter().find(|k| *k != key).unwrap()
}

/// Uses a loaded account: adds a fresh device, one with a listed id, one with a listed
/// identity key, one with the account key itself and one from a link made for another
/// account, removes an unlisted and a listed device, each against the model
/// ([`account_change`]: the documented errors, the account unchanged by a failure, new
/// lists with the next counter that parse back); adopts lists against the model (its own,
/// another account's, an older one, a fork with its counter, a newer one); the account
/// then stores and loads again.
fn exercise_account(mut a: Account) {
    let fx = list_fixture();
    let stored = a.to_bytes().to_vec();
    let mut model = AccountModel::of(a.device_list());
    model.check(&a);
    let account = model.key;
    let add = |a: &mut Account, model: &mut AccountModel, link: DeviceLink| {
        let expected = model.add(&link);
        let change = |a: &mut Account| a.add_device(&link).cloned();
        if account_change(a, expected.clone(), change).is_some() {
            *model = expected.unwrap();
        }
    };
    let remove = |a: &mut Account, model: &mut AccountModel, id: u32| {
        let expected = model.remove(id);
        let change = |a: &mut Account| a.remove_device(DeviceId::new(id)).cloned();
        if account_change(a, expected.clone(), change).is_some() {
            *model = expected.unwrap();
        }
    };
    let first = a.device_list().clone();
    // Its own list, and another account's.
    model = adopt_checked(&mut a, &model, &first);
    let foreign = fx
        .account(fx.account_keys[0] == account)
        .device_list()
        .clone();
    model = adopt_checked(&mut a, &model, &foreign);

    let (id, key) = fresh_device(&model);
    add(&mut a, &mut model, fx.link(key, &account, id));
    let (other_id, other_key) = fresh_device(&model);
    add(
        &mut a,
        &mut model,
        fx.link(other_key, &other_account(&account), other_id),
    );
    if let Some((&listed_id, &listed_key)) = model.devices.iter().next() {
        let (other_id, other_key) = fresh_device(&model);
        add(&mut a, &mut model, fx.link(other_key, &account, listed_id));
        let listed = fx
            .devices
            .iter()
            .find(|d| *d.identity_key() == listed_key)
            .map(|d| d.link(&account, DeviceId::new(other_id)));
        if let Some(link) = listed {
            add(&mut a, &mut model, link);
        }
        // A device whose identity key is the account key: its seed is in the stored
        // account (SPEC.md §7.9).
        let seed = [&[STORAGE_VERSION, 0x21][..], &stored[ACCOUNT_SEED]].concat();
        let own = device_of(&IdentityKeyPair::from_bytes(&seed).unwrap(), &mut rng(5)).unwrap();
        assert_eq!(own.identity_key().as_bytes(), account.as_bytes());
        add(
            &mut a,
            &mut model,
            own.link(&account, DeviceId::new(other_id)),
        );
        remove(&mut a, &mut model, listed_id);
    }
    let unlisted = *DEVICE_IDS
        .iter()
        .find(|id| !model.devices.contains_key(id))
        .unwrap();
    remove(&mut a, &mut model, unlisted);
    model.check(&a);
    check_account_reloads(&a);

    // Adopting: the list it started from is older; a copy restored from the stored bytes
    // adopts the newest list; another copy that signed another list with the same counter
    // is a fork for it.
    let newest = a.device_list().clone();
    model = adopt_checked(&mut a, &model, &first);
    let mut restored = Account::from_bytes(&stored).unwrap();
    let restored_model = AccountModel::of(restored.device_list());
    let adopted = adopt_checked(&mut restored, &restored_model, &newest);
    assert_eq!(adopted, model);
    if newest.counter() > first.counter() && first.counter() < u64::MAX {
        let mut forked = Account::from_bytes(&stored).unwrap();
        let mut forked_model = restored_model.clone();
        // A device the newest list does not hold, so that the lists differ.
        let key = fx.keys[..DEVICE_KEYS].iter().position(|k| {
            k.as_bytes() != account.as_bytes()
                && !forked_model.devices.values().any(|d| d == k)
                && !model.devices.values().any(|d| d == k)
        });
        let (id, _) = fresh_device(&forked_model);
        let link = key.map(|key| fx.link(u8::try_from(key).unwrap(), &account, id));
        let expected = link.as_ref().map(|link| forked_model.add(link));
        if let Some(fork) = link.zip(expected.clone()).and_then(|(link, expected)| {
            account_change(&mut forked, expected, |f| f.add_device(&link).cloned())
        }) {
            forked_model = expected.unwrap().unwrap();
            let mut copy = Account::from_bytes(&stored).unwrap();
            let _ = adopt_checked(&mut copy, &restored_model, &fork);
            // The account that went on from the same counter: a fork only if it is at the
            // fork's counter.
            model = adopt_checked(&mut a, &model, &fork);
            let _ = adopt_checked(&mut forked, &forked_model, &newest);
        }
    }
    model.check(&a);
}

/// Uses a loaded contact (see the module documentation): every step against the
/// `device_list` target's contact model, every state storing and loading again.
fn exercise_contact(mut c: Contact) {
    let fx = list_fixture();
    let mut model = ContactModel::of(&c);
    model.check(&c);
    let local = *c.local_identity();
    let reload = |c: &Contact| {
        let bytes = c.to_bytes();
        let loaded = Contact::from_bytes(&bytes).unwrap();
        assert_eq!(
            *loaded.to_bytes(),
            *bytes,
            "a contact re-encodes differently"
        );
    };

    // Its own list.
    let own = c.device_list().clone();
    assert_eq!(feed_checked(&mut c, &mut model, &own), (None, None));

    // Records for its devices (not the local one): put back once, refused twice; an
    // unlisted device refused.
    let devices: Vec<(DeviceId, IdentityKey)> =
        c.device_list().devices().map(|(i, k)| (i, *k)).collect();
    for &(id, key) in &devices {
        if key == local {
            continue;
        }
        let record = SessionRecord::new(&local, &key, c.limits()).unwrap();
        assert_eq!(c.restore_record(id, record), Ok(()));
        let again = SessionRecord::new(&local, &key, c.limits()).unwrap();
        assert_eq!(c.restore_record(id, again), Err(Error::WrongRecord));
        model.records.insert(
            id.get(),
            crate::device_list::RecordModel {
                remote: key,
                sending: false,
                reset: false,
            },
        );
    }
    if let Some(&unlisted) = DEVICE_IDS
        .iter()
        .find(|id| c.device_list().identity(DeviceId::new(**id)).is_none())
    {
        let key = if fx.keys[3] == local {
            fx.keys[4]
        } else {
            fx.keys[3]
        };
        let record = SessionRecord::new(&local, &key, c.limits()).unwrap();
        let unlisted = DeviceId::new(unlisted);
        assert_eq!(
            c.restore_record(unlisted, record),
            Err(Error::UnknownDevice(unlisted))
        );
        // The decryption-error calls name a listed device first.
        assert_eq!(
            c.decryption_error(&fx.devices[0], unlisted, &fx.failed, 0),
            Err(Error::UnknownDevice(unlisted))
        );
        assert_eq!(
            c.handle_decryption_error(unlisted, &fx.reset_request, 0),
            Err(Error::UnknownDevice(unlisted))
        );
        assert_eq!(c.archive_sending_session(unlisted), None);
    }
    // No record has a sending session: nothing to archive.
    let before = c.to_bytes().to_vec();
    for &(id, _) in &devices {
        assert_eq!(c.archive_sending_session(id), None);
    }
    assert_eq!(*c.to_bytes(), before);
    model.check(&c);

    // Fan-out: a delivery per listed device but the local one, none with a session.
    let before = c.to_bytes().to_vec();
    let deliveries = c.encrypt(b"fan-out", &mut rng(0xC0_0001)).unwrap();
    let targets: Vec<DeviceId> = devices
        .iter()
        .filter(|(_, k)| *k != local)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        deliveries.iter().map(|d| d.device).collect::<Vec<_>>(),
        targets
    );
    for d in &deliveries {
        assert_eq!(d.account, model.pinned);
        assert_eq!(d.result.as_ref().err(), Some(&Error::NoSession));
    }
    assert_eq!(*c.to_bytes(), before);
    // Without randomness: refused if there is a target, else the RNG is not called.
    let failed = c.encrypt(b"fan-out", &mut FailingRng::new(0));
    if targets.is_empty() {
        assert!(
            failed.is_ok_and(|d| d.is_empty()),
            "fan-out without a target"
        );
    } else {
        assert_eq!(failed.err(), Some(Error::RandomnessUnavailable));
    }
    assert_eq!(*c.to_bytes(), before);
    model.check(&c);

    // Account A's lists (counters 1 and 2, and a fork of 2 with another device): an
    // identity change (or, if the contact pinned A, taken or refused by counter);
    // accepting the last change pins A; then the fork is refused.
    let mut a = fx.account(false);
    let first = a.device_list().clone();
    let (id, key) = fresh_device(&AccountModel::of(&first));
    let link = fx.link(key, first.account_key(), id);
    let second = a.add_device(&link).unwrap().clone();
    let mut forked = fx.account(false);
    let mut with_second = AccountModel::of(&first);
    with_second.devices.insert(id, fx.key(key));
    let (_, fork_key) = fresh_device(&with_second);
    let fork_link = fx.link(fork_key, first.account_key(), id);
    let fork = forked.add_device(&fork_link).unwrap().clone();
    assert_eq!(fork.counter(), second.counter());
    assert_ne!(fork, second);
    let held = model.list.counter();
    let mut change = None;
    for list in [&second, &first] {
        change = feed_checked(&mut c, &mut model, list).0.or(change);
    }
    if let Some(change) = change {
        assert!(accept_checked(&mut c, &mut model, change.clone(), held));
        assert_eq!(c.account_key(), first.account_key());
        assert_eq!(c.trust(), Trust::FirstUse);
        for list in [&first, &second] {
            assert!(feed_checked(&mut c, &mut model, list).0.is_none());
        }
        // The contact moved on since the change was seen.
        assert!(!accept_checked(&mut c, &mut model, change, held));
    }
    let _ = feed_checked(&mut c, &mut model, &fork);
    reload(&c);

    // Trust and the post-quantum memory: only their bytes change. Another key than the
    // pinned one is refused.
    let other = other_account(c.account_key());
    mark_verified_checked(&mut c, &mut model, &other);
    let before = c.to_bytes().to_vec();
    let pinned = *c.account_key();
    mark_verified_checked(&mut c, &mut model, &pinned);
    c.forget_post_quantum();
    let after = c.to_bytes().to_vec();
    assert_eq!(after[CONTACT_TRUST], 1);
    assert_eq!(after[CONTACT_POST_QUANTUM], 0);
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        if i != CONTACT_TRUST && i != CONTACT_POST_QUANTUM {
            assert_eq!(x, y, "byte {i} changed");
        }
    }
    model.check(&c);
    reload(&c);
}
