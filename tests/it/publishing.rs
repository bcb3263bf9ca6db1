//! Publishing prekeys through a server that holds only public data (SPEC.md §5.9-§5.12,
//! §8.5): a `LocalDevice` builds upload sets, the model server of
//! `doubleratchet_test_support::server` stores them and hands out one bundle per request,
//! and initiators start sessions the device accepts, down to the last-resort keys.

use doubleratchet::{
    Error, LocalDevice, OneTimePreKeyId, OneTimePreKeyPublic, PreKeyBundle, PreKeyPolicy,
    SessionOptions, SignedPreKeyPublic, UploadSet,
};
#[cfg(feature = "pqxdh")]
use doubleratchet::{PqPreKeyId, PqPreKeyPublic};
use doubleratchet_test_support::rng;
use doubleratchet_test_support::server::{Refused, Server};
use rand_chacha::ChaCha20Rng;

/// The app's clock at registration (seconds since the Unix epoch).
const T0: u64 = 1_800_000_000;
const DAY: u64 = 24 * 60 * 60;

/// A device with `one_time` one-time prekeys of each kind (and, with PQXDH, a last-resort
/// post-quantum prekey), registered with a new server; its keys marked published.
fn registered(one_time: usize, r: &mut ChaCha20Rng) -> (LocalDevice, Server) {
    let mut device = LocalDevice::new(T0, r).unwrap();
    device.generate_one_time_prekeys(one_time, r).unwrap();
    #[cfg(feature = "pqxdh")]
    {
        device.generate_pq_one_time_prekeys(one_time, r).unwrap();
        device.rotate_pq_last_resort_prekey(T0, r).unwrap();
    }
    let mut server = Server::new();
    publish(&mut device, &mut server);
    (device, server)
}

/// Uploads the device's set and, once the server has accepted it, marks it published.
fn publish(device: &mut LocalDevice, server: &mut Server) -> UploadSet {
    let set = device.upload_set().unwrap();
    server.upload(&set.to_bytes()).unwrap();
    device.mark_published(&set);
    set
}

/// What an initiator receives: the bundle's bytes, parsed as a client would.
fn fetch(server: &mut Server) -> PreKeyBundle {
    let bundle = server.bundle().expect("the server holds the device's keys");
    PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
}

/// A new contact starts a session from `bundle`; the device accepts it and both talk.
/// Returns the one-time prekeys the session used.
fn converse(
    device: &mut LocalDevice,
    bundle: &PreKeyBundle,
    r: &mut ChaCha20Rng,
) -> (Option<OneTimePreKeyId>, Option<u64>) {
    let contact = LocalDevice::new(T0, r).unwrap();
    let options = SessionOptions::new();
    let mut a = contact.initiate(bundle, &options, r).unwrap();
    let hello = a.encrypt(b"hello", r).unwrap();
    let mut accepted = device.accept(&hello, &options).unwrap();
    assert_eq!(accepted.plaintext, b"hello");
    assert_eq!(accepted.session.id(), a.id());
    let reply = accepted.session.encrypt(b"hi", r).unwrap();
    assert_eq!(a.decrypt(&reply).unwrap(), b"hi");
    #[cfg(feature = "pqxdh")]
    let pq = accepted.used_post_quantum_prekey.map(PqPreKeyId::to_u64);
    #[cfg(not(feature = "pqxdh"))]
    let pq = None;
    (accepted.used_one_time_prekey, pq)
}

#[test]
fn upload_assemble_initiate_accept_down_to_the_last_resort_keys() {
    let mut r = rng(1);
    let (mut device, mut server) = registered(3, &mut r);
    let classical: Vec<_> = device.one_time_prekeys().map(|k| k.id()).collect();
    assert_eq!(device.unpublished_one_time_prekeys().count(), 0);
    assert_eq!(server.queued_one_time_prekeys(), 3);
    #[cfg(feature = "pqxdh")]
    let (pq, last_resort) = {
        let pq: Vec<_> = device.pq_one_time_prekeys().map(|k| k.id()).collect();
        let last_resort = device.current_pq_last_resort_prekey().unwrap().id();
        (pq, last_resort)
    };

    for i in 0..5 {
        let bundle = fetch(&mut server);
        assert_eq!(bundle.identity_key(), device.identity_key());
        assert_eq!(
            bundle.signed_prekey_id(),
            device.current_signed_prekey().id()
        );
        let (used, used_pq) = converse(&mut device, &bundle, &mut r);
        // Each one-time prekey once, oldest first; then last resort (no one-time prekey).
        assert_eq!(used, classical.get(i).copied(), "bundle {i}");
        assert_eq!(bundle.one_time_prekey_id(), used);
        #[cfg(feature = "pqxdh")]
        assert_eq!(
            used_pq,
            Some(pq.get(i).copied().unwrap_or(last_resort).to_u64())
        );
        #[cfg(not(feature = "pqxdh"))]
        assert_eq!(used_pq, None);
    }
    // The used one-time prekeys are gone from the device; the last-resort ones stay.
    assert_eq!(device.one_time_prekeys().count(), 0);
    #[cfg(feature = "pqxdh")]
    {
        assert_eq!(device.pq_one_time_prekeys().count(), 0);
        assert_eq!(
            device.current_pq_last_resort_prekey().map(|k| k.id()),
            Some(last_resort)
        );
    }

    // Replenishing: the next set carries only the new keys, which the server queues.
    let new = device.generate_one_time_prekeys(2, &mut r).unwrap().created;
    let set = publish(&mut device, &mut server);
    let sent: Vec<_> = set.one_time_prekeys().iter().map(|k| k.id()).collect();
    assert_eq!(sent, new);
    assert_eq!(server.queued_one_time_prekeys(), 2);
    let (used, _) = converse(&mut device, &fetch(&mut server), &mut r);
    assert_eq!(used, Some(new[0]));
}

#[test]
fn a_set_sent_again_after_a_lost_confirmation_changes_nothing() {
    let mut r = rng(2);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.generate_one_time_prekeys(3, &mut r).unwrap();
    let mut server = Server::new();
    let set = device.upload_set().unwrap();
    server.upload(&set.to_bytes()).unwrap();
    // The confirmation was lost: the device has marked nothing and sends the same set.
    let again = device.upload_set().unwrap();
    assert_eq!(again.to_bytes(), set.to_bytes());
    assert_eq!(server.upload(&again.to_bytes()), Ok(()));
    assert_eq!(server.queued_one_time_prekeys(), 3);
    // A key handed out in between is not queued a second time.
    let first = fetch(&mut server).one_time_prekey_id().unwrap();
    assert_eq!(server.upload(&again.to_bytes()), Ok(()));
    assert_eq!(server.queued_one_time_prekeys(), 2);
    for _ in 0..2 {
        assert_ne!(fetch(&mut server).one_time_prekey_id(), Some(first));
    }
    assert_eq!(device.mark_published(&set), 3);
    assert_eq!(device.mark_published(&set), 0, "marking is idempotent");
    assert_eq!(device.upload_set().unwrap().one_time_prekeys().len(), 0);
}

#[test]
fn published_state_survives_storage_and_another_device_set_marks_nothing() {
    let mut r = rng(3);
    let (mut device, _) = registered(2, &mut r);
    let fresh = device.generate_one_time_prekeys(2, &mut r).unwrap().created;
    let device = LocalDevice::from_bytes(&device.to_bytes()).unwrap();
    let unpublished: Vec<_> = device
        .unpublished_one_time_prekeys()
        .map(|k| k.id())
        .collect();
    assert_eq!(unpublished, fresh);
    for key in device.one_time_prekeys() {
        let published = !fresh.contains(&key.id());
        assert_eq!(device.is_one_time_prekey_published(key.id()), published);
    }

    // Another device's set, even one naming the same ids, marks nothing here.
    let (other, _) = registered(2, &mut r);
    let mut device = device;
    let before = device.to_bytes();
    assert_eq!(device.mark_published(&other.upload_set().unwrap()), 0);
    assert_eq!(device.to_bytes(), before);
}

#[test]
fn evicted_keys_are_reported_and_dropped_by_the_server() {
    let mut r = rng(4);
    let mut device = LocalDevice::new(T0, &mut r).unwrap();
    device.set_one_time_prekey_cap(4).unwrap();
    let first = device.generate_one_time_prekeys(4, &mut r).unwrap();
    assert!(first.evicted.is_empty());
    let mut server = Server::new();
    publish(&mut device, &mut server);
    let second = device.generate_one_time_prekeys(2, &mut r).unwrap();
    assert_eq!(second.evicted, first.created[..2]);
    assert_eq!(server.drop_one_time_prekeys(&second.evicted), 2);
    publish(&mut device, &mut server);
    let expected: Vec<_> = first.created[2..]
        .iter()
        .chain(&second.created)
        .map(|id| Some(*id))
        .collect();
    let mut handed = Vec::new();
    for _ in 0..4 {
        let bundle = fetch(&mut server);
        handed.push(bundle.one_time_prekey_id());
        converse(&mut device, &bundle, &mut r);
    }
    assert_eq!(handed, expected);
}

#[test]
fn a_rotation_is_published_and_the_older_set_is_refused() {
    let mut r = rng(5);
    let (mut device, mut server) = registered(2, &mut r);
    let before_rotation = device.upload_set().unwrap().to_bytes();
    let old_bundle = fetch(&mut server);

    let report = device
        .maintain(T0 + 8 * DAY, &PreKeyPolicy::default(), &mut r)
        .unwrap();
    assert!(report.needs_upload() && report.changed);
    let rotated = report.rotated_signed_prekey.unwrap();
    let set = publish(&mut device, &mut server);
    assert_eq!(set.signed_prekey().id(), rotated);
    assert_eq!(set.signed_prekey().created(), T0 + 8 * DAY);
    assert_eq!(fetch(&mut server).signed_prekey_id(), rotated);
    // A delayed copy of the older set would roll the server back: refused whole.
    assert_eq!(server.upload(&before_rotation), Err(Refused::SignedPreKey));
    assert_eq!(server.signed_prekey().map(|s| s.id()), Some(rotated));
    // A bundle fetched before the rotation still works during the grace period.
    converse(&mut device, &old_bundle, &mut r);
}

#[test]
fn the_server_refuses_a_repeated_id_with_other_bytes_as_a_whole() {
    let mut r = rng(6);
    let (device, mut server) = registered(2, &mut r);
    let (other, _) = registered(2, &mut r);
    let held = device.one_time_prekeys().next().unwrap().id();
    // Another key under a held id, beside a new one.
    let mut clash = OneTimePreKeyPublic::from_key(other.one_time_prekeys().next().unwrap())
        .unwrap()
        .to_bytes();
    clash[2..10].copy_from_slice(&held.to_u64().to_be_bytes());
    let clash = OneTimePreKeyPublic::from_bytes(&clash).unwrap();
    let fresh = OneTimePreKeyPublic::from_key(other.one_time_prekeys().nth(1).unwrap()).unwrap();
    let signed = device.upload_set().unwrap().signed_prekey().clone();
    let set = UploadSet::new(device.identity_key(), signed.clone(), vec![fresh, clash]).unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Err(Refused::OneTimeId));
    assert_eq!(server.queued_one_time_prekeys(), 2, "nothing was queued");

    // The current signed prekey's id with another creation time.
    let retimed = SignedPreKeyPublic::from_key(device.current_signed_prekey(), T0 + 5).unwrap();
    let set = UploadSet::new(device.identity_key(), retimed, Vec::new()).unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Err(Refused::SignedPreKey));

    // A repeated id within one set does not even parse.
    let set = UploadSet::new(device.identity_key(), signed, vec![fresh, fresh]);
    assert_eq!(set.err(), Some(Error::InvalidEncoding));
}

#[cfg(feature = "pqxdh")]
#[test]
fn post_quantum_ids_share_one_space_at_the_server() {
    let mut r = rng(7);
    let (device, mut server) = registered(2, &mut r);
    let (other, _) = registered(2, &mut r);
    let signed = || device.upload_set().unwrap().signed_prekey().clone();
    let bare = || UploadSet::new(device.identity_key(), signed(), Vec::new()).unwrap();
    let with_id = |part: &PqPreKeyPublic, id: PqPreKeyId| {
        let mut bytes = part.to_bytes();
        bytes[2..10].copy_from_slice(&id.to_u64().to_be_bytes());
        PqPreKeyPublic::from_bytes(&bytes).unwrap()
    };
    // A one-time key of this device's under the held last-resort key's id (the signature
    // covers the key, not the id, so the set itself parses).
    let last_resort = device.current_pq_last_resort_prekey().unwrap().id();
    let own = PqPreKeyPublic::one_time(device.pq_one_time_prekeys().next().unwrap()).unwrap();
    let set = bare()
        .with_post_quantum(None, vec![with_id(&own, last_resort)])
        .unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Err(Refused::OneTimeId));
    // A new last-resort key under a held one-time key's id.
    let held = device.pq_one_time_prekeys().next().unwrap().id();
    let ours = device.current_pq_last_resort_prekey().unwrap();
    let fresh = PqPreKeyPublic::last_resort(ours, T0).unwrap();
    let set = bare()
        .with_post_quantum(Some(with_id(&fresh, held)), Vec::new())
        .unwrap();
    assert_eq!(server.upload(&set.to_bytes()), Err(Refused::LastResort));
    // Another device's keys are not signed by this identity: the set does not parse.
    let theirs = PqPreKeyPublic::one_time(other.pq_one_time_prekeys().next().unwrap()).unwrap();
    assert_eq!(
        bare().with_post_quantum(None, vec![theirs]).err(),
        Some(Error::InvalidSignature)
    );
    assert_eq!(server.queued_pq_one_time_prekeys(), 2);
}

#[test]
fn a_bundle_whose_signature_does_not_match_its_identity_is_refused() {
    let mut r = rng(8);
    let (device, mut server) = registered(1, &mut r);
    let (mallory, mut mallory_server) = registered(1, &mut r);
    let theirs = mallory.upload_set().unwrap().signed_prekey().clone();

    // Assembling Mallory's signed prekey under this device's identity fails.
    assert_eq!(
        PreKeyBundle::assemble(device.identity_key(), &theirs, None).err(),
        Some(Error::InvalidSignature)
    );
    // An upload set with its identity key swapped does not parse.
    let mut swapped = mallory.upload_set().unwrap().to_bytes();
    swapped[2..34].copy_from_slice(device.identity_key().as_bytes());
    assert_eq!(
        server.upload(&swapped),
        Err(Refused::Parse(Error::InvalidSignature))
    );
    // Another device's set, intact, is refused by this device's server.
    let mallory_set = mallory.upload_set().unwrap().to_bytes();
    assert_eq!(server.upload(&mallory_set), Err(Refused::Identity));
    // A bundle whose identity key was swapped in transit fails at the initiator.
    let mut bundle = fetch(&mut mallory_server).to_bytes();
    bundle[2..34].copy_from_slice(device.identity_key().as_bytes());
    let initiator = LocalDevice::new(T0, &mut r).unwrap();
    let refused = PreKeyBundle::from_bytes(&bundle).and_then(|b| {
        initiator
            .initiate(&b, &SessionOptions::new(), &mut r)
            .map(|_| ())
    });
    assert_eq!(refused, Err(Error::InvalidSignature));
    // A server whose stored signed prekey no longer verifies hands out nothing.
    server.corrupt_signed_prekey(theirs);
    assert!(server.bundle().is_none());
}
