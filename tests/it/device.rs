//! The local device's prekey lifecycle (SPEC.md §8): the one-time prekey cap and eviction
//! of the oldest, rotation of the signed (and last-resort post-quantum) prekeys by
//! `maintain` with a grace period, a clock that goes backwards, and the device's identity
//! bound to everything it signs.

use doubleratchet::{
    Error, LocalDevice, OneTimePreKeyId, PreKeyBundle, PreKeyPolicy, SessionOptions,
    SignedPreKeyId, StoreNotice, DEFAULT_ONE_TIME_PREKEY_CAP,
};
use doubleratchet_test_support::server::Server;
use doubleratchet_test_support::{rng, FailingRng};
use rand_chacha::ChaCha20Rng;

const T0: u64 = 1_800_000_000;
const DAY: u64 = 24 * 60 * 60;

fn policy() -> PreKeyPolicy {
    PreKeyPolicy::default()
}

/// Starts a session from `bundle` and has `device` accept it.
fn accept(
    device: &mut LocalDevice,
    bundle: &PreKeyBundle,
    r: &mut ChaCha20Rng,
) -> Result<doubleratchet::Accepted, Error> {
    let contact = LocalDevice::new(T0, r).unwrap();
    let mut session = contact.initiate(bundle, &SessionOptions::new(), r)?;
    let message = session.encrypt(b"hello", r)?;
    device.accept(&message, &SessionOptions::new())
}

fn ids(device: &LocalDevice) -> Vec<OneTimePreKeyId> {
    device.one_time_prekeys().map(|k| k.id()).collect()
}

#[test]
fn generating_beyond_the_cap_evicts_the_oldest_and_reports_them() {
    let mut r = rng(20);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    assert_eq!(device.one_time_prekey_cap(), DEFAULT_ONE_TIME_PREKEY_CAP);
    device.set_one_time_prekey_cap(5).unwrap();
    let first = device.generate_one_time_prekeys(3, &mut r).unwrap();
    let old_bundle = device.bundle(Some(first.created[0])).unwrap();
    let second = device.generate_one_time_prekeys(4, &mut r).unwrap();
    assert_eq!(second.evicted, first.created[..2]);
    let mut expected = vec![first.created[2]];
    expected.extend(&second.created);
    assert_eq!(ids(&device), expected, "oldest first");

    // A session naming an evicted key is refused and changes nothing.
    let before = device.to_bytes();
    assert_eq!(
        accept(&mut device, &old_bundle, &mut r).err(),
        Some(Error::UnknownOneTimePreKey(first.created[0]))
    );
    assert_eq!(device.to_bytes(), before);

    // More than the cap in one call is refused whole.
    assert_eq!(
        device.generate_one_time_prekeys(6, &mut r).err(),
        Some(Error::StoreFull)
    );
    assert_eq!(device.to_bytes(), before);
    // Lowering the cap keeps what is held; the next generation evicts down to it.
    device.set_one_time_prekey_cap(2).unwrap();
    let third = device.generate_one_time_prekeys(1, &mut r).unwrap();
    assert_eq!(third.evicted, expected[..4]);
    assert_eq!(ids(&device), [expected[4], third.created[0]]);
    // The cap is stored.
    let reloaded = LocalDevice::from_bytes(&device.to_bytes()).unwrap();
    assert_eq!(reloaded.one_time_prekey_cap(), 2);
}

#[cfg(feature = "pqxdh")]
#[test]
fn post_quantum_one_time_prekeys_are_evicted_the_same_way() {
    let mut r = rng(21);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.set_one_time_prekey_cap(3).unwrap();
    let last_resort = device.rotate_pq_last_resort_prekey(T0, &mut r).unwrap();
    let first = device.generate_pq_one_time_prekeys(3, &mut r).unwrap();
    let second = device.generate_pq_one_time_prekeys(2, &mut r).unwrap();
    assert_eq!(second.evicted, first.created[..2]);
    let held: Vec<_> = device.pq_one_time_prekeys().map(|k| k.id()).collect();
    assert_eq!(
        held,
        [first.created[2], second.created[0], second.created[1]]
    );
    // The last-resort key is never evicted.
    assert!(device.pq_prekey(last_resort).is_some());
}

#[test]
fn maintain_rotates_after_the_policy_age_and_retires_after_the_grace_period() {
    let mut r = rng(22);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.generate_one_time_prekeys(2, &mut r).unwrap();
    let first = device.current_signed_prekey().id();
    let old_bundle = device.bundle(None).unwrap();
    let standby = device.standby_signed_prekey().unwrap().id();

    // Younger than the policy age: nothing to do, nothing changed.
    let report = device
        .maintain(T0 + 7 * DAY - 1, &policy(), &mut r)
        .unwrap();
    assert!(!report.needs_upload() && !report.changed);
    assert_eq!(device.current_signed_prekey().id(), first);

    // At the policy age: a fresh key created now becomes current; the standby stays.
    let rotated_at = T0 + 7 * DAY;
    let report = device.maintain(rotated_at, &policy(), &mut r).unwrap();
    let second = report.rotated_signed_prekey.unwrap();
    assert!(report.needs_upload() && report.changed);
    assert!(report.retired_signed_prekeys.is_empty());
    assert_eq!(device.current_signed_prekey().id(), second);
    assert_eq!(device.current_signed_prekey_created(), rotated_at);
    assert_ne!(second, standby);
    assert_eq!(
        device.standby_signed_prekey().map(|k| k.id()),
        Some(standby)
    );
    assert!(device.signed_prekey(first).is_some());

    // During the grace period the old key is still accepted.
    let report = device
        .maintain(rotated_at + 30 * DAY - 1, &policy(), &mut r)
        .unwrap();
    assert!(report.retired_signed_prekeys.is_empty());
    assert!(accept(&mut device, &old_bundle, &mut r).is_ok());
    // ...after it, the old key is retired and its sessions' replay records forgotten.
    let report = device
        .maintain(rotated_at + 30 * DAY, &policy(), &mut r)
        .unwrap();
    assert_eq!(report.retired_signed_prekeys, [first]);
    assert!(
        device.signed_prekey(second).is_some(),
        "replaced a second ago"
    );
    assert_eq!(
        accept(&mut device, &old_bundle, &mut r).err(),
        Some(Error::UnknownSignedPreKey(first))
    );
}

#[test]
fn a_clock_that_goes_backwards_rotates_the_published_keys_and_uploads_stay_accepted() {
    let mut r = rng(23);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    let mut server = Server::new();
    let set = device.upload_set().unwrap();
    server.upload(&set.to_bytes()).unwrap();
    device.mark_published(&set);
    let first = device.current_signed_prekey().id();
    // The app's clock is set back 100 days (a restore, a changed date). The current signed
    // prekey was created "in the future": its published creation time cannot change under
    // its id, so it is rotated, and the replacement is created at the new `now`.
    let back = T0 - 100 * DAY;
    let report = device.maintain(back, &policy(), &mut r).unwrap();
    assert!(report.clock_went_backwards && report.changed);
    let rotated = report.rotated_signed_prekey.expect("rotated");
    assert!(report.needs_upload());
    assert_ne!(rotated, first);
    assert_eq!(device.current_signed_prekey_created(), back);
    // The next set is accepted; had the creation time been moved back under the same id,
    // the server would refuse it (SPEC.md §8.5).
    let set = device.upload_set().unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Ok(()));
    assert_eq!(server.signed_prekey().unwrap().id(), rotated);
    // The replaced key stays accepted for the grace period, from the new clock.
    assert!(device.signed_prekey(first).is_some());

    // From here the ages count from the new clock: rotation waits the policy age.
    let report = device
        .maintain(back + 7 * DAY - 1, &policy(), &mut r)
        .unwrap();
    assert!(!report.clock_went_backwards && !report.changed);
    let report = device.maintain(back + 7 * DAY, &policy(), &mut r).unwrap();
    let second = device.current_signed_prekey().id();
    assert_eq!(report.rotated_signed_prekey, Some(second));

    // A replaced key's replacement time is clamped too, so its grace period is never cut
    // short by a clock going back and then forward again. Going back a day behind the
    // current key's creation rotates it again.
    let replaced_at = back + 7 * DAY;
    let report = device
        .maintain(replaced_at - DAY, &policy(), &mut r)
        .unwrap();
    assert!(report.clock_went_backwards);
    assert!(report.rotated_signed_prekey.is_some());
    let set = device.upload_set().unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Ok(()));
    let report = device
        .maintain(replaced_at - DAY + 30 * DAY - 1, &policy(), &mut r)
        .unwrap();
    assert!(!report.retired_signed_prekeys.contains(&rotated));
    assert!(device.signed_prekey(rotated).is_some());
    let report = device
        .maintain(replaced_at - DAY + 30 * DAY, &policy(), &mut r)
        .unwrap();
    assert!(report.retired_signed_prekeys.contains(&rotated));
    assert!(report.retired_signed_prekeys.contains(&second));
    assert!(device.signed_prekey(rotated).is_none() && device.signed_prekey(second).is_none());
}

#[test]
fn maintain_changes_nothing_when_the_rng_fails() {
    let mut r = rng(24);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    let before = device.to_bytes();
    for working_draws in 0..2 {
        let mut failing = FailingRng::new(working_draws);
        assert_eq!(
            device.maintain(T0 + 8 * DAY, &policy(), &mut failing).err(),
            Some(Error::RandomnessUnavailable)
        );
        assert_eq!(device.to_bytes(), before);
    }
}

#[test]
fn a_switch_inside_accept_is_stamped_and_retired_by_maintain() {
    let mut r = rng(25);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.set_replay_capacity(1).unwrap();
    let first = device.current_signed_prekey().id();
    let bundle = device.bundle(None).unwrap();
    // A session without a one-time prekey fills the current key's single replay record.
    let accepted = accept(&mut device, &bundle, &mut r).unwrap();
    let Some(StoreNotice::SignedPreKeySwitched { previous, current }) = accepted.notice else {
        panic!("expected a switch, got {:?}", accepted.notice);
    };
    assert_eq!(previous, first);
    assert_ne!(current, first);
    assert!(device.standby_signed_prekey().is_none());

    // `accept` has no clock: `maintain` stamps the replacement time and draws a standby.
    let stamped_at = T0 + DAY;
    let report = device.maintain(stamped_at, &policy(), &mut r).unwrap();
    assert!(report.replenished_standby && report.changed);
    assert!(
        !report.needs_upload(),
        "the switch already changed the current key"
    );
    let report = device
        .maintain(stamped_at + 30 * DAY - 1, &policy(), &mut r)
        .unwrap();
    assert!(report.retired_signed_prekeys.is_empty());
    let report = device
        .maintain(stamped_at + 30 * DAY, &policy(), &mut r)
        .unwrap();
    assert_eq!(report.retired_signed_prekeys, [first]);
}

#[test]
fn every_key_and_bundle_is_under_the_device_identity() {
    let mut r = rng(26);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.generate_one_time_prekeys(2, &mut r).unwrap();
    #[cfg(feature = "pqxdh")]
    device.rotate_pq_last_resort_prekey(T0, &mut r).unwrap();
    device.maintain(T0 + 8 * DAY, &policy(), &mut r).unwrap();
    // No call takes another identity: the bundles and the upload set all verify under the
    // device's own key, before and after a reload.
    for device in [
        &device,
        &LocalDevice::from_bytes(&device.to_bytes()).unwrap(),
    ] {
        let bundle = device.bundle(device.one_time_prekeys().next().map(|k| k.id()));
        let bundle = bundle.unwrap();
        assert_eq!(bundle.identity_key(), device.identity_key());
        assert_eq!(bundle.verify(), Ok(()));
        let set = device.upload_set().unwrap();
        assert_eq!(set.identity_key(), device.identity_key());
        #[cfg(feature = "pqxdh")]
        assert!(set.pq_last_resort_prekey().is_some());
    }
    // Another device's signed prekey cannot be paired with this identity.
    let other = LocalDevice::new(T0, &mut r).unwrap();
    let theirs = other.upload_set().unwrap();
    assert_eq!(
        PreKeyBundle::assemble(device.identity_key(), theirs.signed_prekey(), None).err(),
        Some(Error::InvalidSignature)
    );
    // Ids are the device's own newtypes: a signed prekey id is not a one-time prekey id.
    let id: SignedPreKeyId = device.current_signed_prekey().id();
    assert_eq!(device.signed_prekey(id).map(|k| k.id()), Some(id));
}
