//! A messenger on `doubleratchet`: two users and their devices, each device's whole state
//! in its own SQLite database, and an in-process relay (its own SQLite database) standing in
//! for the server; at the end, a three-device group with sender keys and a removal. See
//! README.md for what it shows, the schema and the write ordering.
//!
//! Run with `cargo run -p doubleratchet-messenger`. Every step is checked; the first
//! failed check prints what failed and exits with a non-zero status.

mod client;
mod db;
mod forge;
mod harness;
mod keystore;
mod relay;

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use doubleratchet::{
    DeviceId, DeviceLink, DeviceList, Error, LocalDevice, OsRng, SafetyNumber, Trust,
};

use crate::client::{Client, Crash, ListOutcome};
use crate::forge::{link_signature, Entry, Mallory};
use crate::harness::{
    check, check_eq, note, say, section, short_hex, step, Clock, Failure, Outcome,
};
use crate::keystore::Keystore;
use crate::relay::{Address, Queued, Relay, RelayError};

/// The app's clock at the start of the run (seconds since the Unix epoch).
const START: u64 = 1_790_000_000;

fn addresses(list: &[Address]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn texts(report: &client::SyncReport) -> Vec<&str> {
    report.delivered.iter().map(|m| m.text.as_str()).collect()
}

/// The devices a send reached, sorted.
fn posted_to(report: &client::SendReport) -> Vec<Address> {
    let mut out: Vec<Address> = report.posted.iter().map(|p| p.to.clone()).collect();
    out.sort_by_key(ToString::to_string);
    out
}

/// The messages a sync refused: sender and error.
fn refusals(report: &client::SyncReport) -> Vec<(Address, Option<Error>)> {
    report
        .dropped
        .iter()
        .map(|d| (d.from.clone(), d.error))
        .collect()
}

/// What `Client::stored_chains` found on disk: each member and how many chains it holds.
fn chains_held(stored: &[(String, usize, usize)]) -> Vec<(&str, usize)> {
    stored.iter().map(|(at, n, _)| (at.as_str(), *n)).collect()
}

/// Prints a device link's encoding (SPEC.md §9.4) field by field, as the QR code carries it.
fn show_link(bytes: &[u8; 134]) {
    for (range, field) in [
        (0..2, "version 0x02, type 0x17 (device link)"),
        (2..34, "account key"),
        (34..38, "device id"),
        (38..70, "identity key"),
        (70..102, "signature by the identity key"),
        (102..134, ""),
    ] {
        let len = range.len();
        let line = format!("      {:<64}  {field}", short_hex(&bytes[range], len));
        println!("{}", line.trim_end());
    }
}

fn run(dir: &Path) -> Outcome {
    let clock = Clock::new(START);
    let keystore = step("keystore", Keystore::open(dir.join("keystore")))?;
    let mut relay = step("open the relay", Relay::open(&dir.join("relay.sqlite3")))?;
    let one = DeviceId::new(1);
    let two = DeviceId::new(2);
    let (alice_1, bob_1, bob_2) = (
        Address::new("alice", one),
        Address::new("bob", one),
        Address::new("bob", two),
    );

    section("1. Registration and prekey upload");
    let mut alice = Client::register(
        dir,
        &keystore,
        "alice-phone",
        "alice",
        one,
        &mut relay,
        clock.now(),
    )?;
    let mut bob_phone = Client::register(
        dir,
        &keystore,
        "bob-phone",
        "bob",
        one,
        &mut relay,
        clock.now(),
    )?;
    let queued = step("queued", relay.queued(&bob_1))?;
    check_eq(
        "one-time prekeys the relay queues for bob#1",
        queued,
        Queued {
            classical: 5,
            post_quantum: 2,
        },
    )?;
    let again = step("upload again", bob_phone.upload_prekeys(&mut relay))?;
    check_eq(
        "a second upload (keys marked published) queues nothing more",
        again,
        queued,
    )?;

    section("2. Bob links his laptop to his account (QR codes both ways, a signed device link)");
    clock.advance(60);
    let mut bob_laptop = Client::create_unlinked(dir, &keystore, "bob-laptop", "bob", clock.now())?;
    let offer = bob_phone.offer_link()?;
    say(
        "bob-laptop",
        "scans it, signs its device link for that account and shows it as a QR code:",
    );
    let link = bob_laptop.sign_link(&offer);
    let scanned = link.to_bytes();
    show_link(&scanned);
    check_eq(
        "the link: type, account key, device id, identity key",
        (
            format!("{:#04x}", scanned[1]),
            *link.account_key(),
            link.device_id(),
            *link.identity_key(),
        ),
        (
            String::from("0x17"),
            offer.account_key,
            two,
            bob_laptop.identity_key(),
        ),
    )?;
    let mut misread = scanned;
    misread[37] ^= 1;
    check_eq(
        "the link misread in one bit of its device id does not parse",
        DeviceLink::from_bytes(&misread).map(|l| l.device_id()),
        Err(Error::InvalidSignature),
    )?;
    say("bob-phone", "scans the laptop's QR code");
    let list = bob_phone.add_linked_device(&mut relay, &offer, &scanned)?;
    check_eq(
        "the counter of the list bob-phone signed",
        list.counter(),
        2,
    )?;
    bob_laptop.complete_link(&mut relay, &offer)?;
    let list = step("bob's list", relay.device_list("bob"))?;
    let list = step("verify bob's list", DeviceList::from_bytes(&list))?;
    check(
        "bob's published list carries the laptop's own link",
        list.links().contains(&link),
    )?;
    check_eq("bob's list counter", list.counter(), 2)?;
    check_eq(
        "bob's devices",
        list.devices().map(|(id, _)| id.get()).collect::<Vec<_>>(),
        vec![1, 2],
    )?;
    check(
        "the laptop pinned the phone's account key",
        bob_laptop.account_key()? == bob_phone.account_key()?,
    )?;

    section("3. First contact: Alice writes to Bob (trust on first use, a session per device)");
    clock.advance(60);
    let sent = alice.send(&mut relay, "bob", "Hi Bob! It's Alice.", clock.now())?;
    let bob_contact = alice
        .contact("bob")
        .ok_or_else(|| Failure::new("alice", "no contact bob"))?;
    check_eq(
        "alice pinned bob's account key",
        *bob_contact.account_key(),
        bob_phone.account_key()?,
    )?;
    check_eq("trust", bob_contact.trust(), Trust::FirstUse)?;
    check_eq(
        "sessions alice started (device, post-quantum)",
        sent.initiated.clone(),
        vec![(bob_1.clone(), true), (bob_2.clone(), true)],
    )?;
    check_eq(
        "messages posted",
        addresses(&sent.posted.iter().map(|p| p.to.clone()).collect::<Vec<_>>()),
        vec!["bob#1".to_owned(), "bob#2".to_owned()],
    )?;
    check(
        "both are initial messages",
        sent.posted.iter().all(|p| p.initial),
    )?;
    check_eq(
        "one-time prekeys left at the relay for bob#1 (one handed out)",
        step("queued", relay.queued(&bob_1))?,
        Queued {
            classical: 4,
            post_quantum: 1,
        },
    )?;
    let got = bob_phone.sync(&mut relay, clock.now())?;
    check_eq("bob-phone reads", texts(&got), vec!["Hi Bob! It's Alice."])?;
    check("it started a new session", got.delivered[0].new_session)?;
    check_eq("from", got.delivered[0].from.clone(), alice_1.clone())?;
    check_eq(
        "bob-phone's write-ahead log after the commit and checkpoint (bytes)",
        bob_phone.wal_bytes(),
        0,
    )?;
    say("bob-laptop", "is offline; its copy waits at the relay");
    check_eq(
        "messages waiting for bob#2",
        step("pending", relay.pending(&bob_2))?,
        1,
    )?;

    section("4. Fan-out: Bob's phone answers Alice, with a copy to his own laptop");
    clock.advance(60);
    let sent = bob_phone.send(&mut relay, "alice", "Hi Alice! Got it.", clock.now())?;
    check_eq(
        "session started with bob's own laptop",
        sent.initiated.clone(),
        vec![(bob_2.clone(), true)],
    )?;
    check_eq(
        "posted to",
        addresses(&sent.posted.iter().map(|p| p.to.clone()).collect::<Vec<_>>()),
        vec!["alice#1".to_owned(), "bob#2".to_owned()],
    )?;
    check(
        "to alice a normal message (her session is answered), to the laptop an initial one",
        !sent.posted[0].initial && sent.posted[1].initial,
    )?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq("alice reads", texts(&got), vec!["Hi Alice! Got it."])?;
    let (alice_key, bob_key) = (alice.account_key()?, bob_phone.account_key()?);
    // Each screen shows the number of the key its contact pinned.
    let pinned_bob = alice
        .contact("bob")
        .map(|c| *c.account_key())
        .ok_or_else(|| Failure::new("alice", "no contact bob"))?;
    let pinned_alice = bob_phone
        .contact("alice")
        .map(|c| *c.account_key())
        .ok_or_else(|| Failure::new("bob-phone", "no contact alice"))?;
    check(
        "each pinned the other's real account key",
        pinned_bob == bob_key && pinned_alice == alice_key,
    )?;
    let on_alice = SafetyNumber::of_accounts(&alice_key, &pinned_bob);
    let on_bob = SafetyNumber::of_accounts(&bob_key, &pinned_alice);
    say(
        "alice-phone",
        format!("safety number with bob:   {}", on_alice.to_digits()),
    );
    say(
        "bob-phone",
        format!("safety number with alice: {}", on_bob.to_digits()),
    );
    check(
        "they compare them in person: equal",
        on_alice.to_digits() == on_bob.to_digits(),
    )?;
    check_eq(
        "alice marks bob verified (the key her screen showed)",
        alice.mark_verified("bob", &pinned_bob)?,
        Ok(()),
    )?;
    check_eq(
        "bob marks alice verified",
        bob_phone.mark_verified("alice", &pinned_alice)?,
        Ok(()),
    )?;
    check_eq(
        "alice's trust in bob",
        alice.contact("bob").map(|c| c.trust()),
        Some(Trust::Verified),
    )?;

    section("5. Out-of-order and lost messages");
    clock.advance(60);
    let mut to_phone = Vec::new();
    for i in 1..=4 {
        let sent = alice.send(&mut relay, "bob", &format!("burst {i}"), clock.now())?;
        let seq = sent
            .posted
            .iter()
            .find(|p| p.to == bob_1)
            .map(|p| p.seq)
            .ok_or_else(|| Failure::new("burst", "nothing posted to bob#1"))?;
        to_phone.push(seq);
    }
    step("lose", relay.lose(to_phone[1]))?;
    relay.faults.newest_first = true;
    say(
        "relay",
        "loses \"burst 2\" on its way to bob#1 and delivers the rest newest first",
    );
    let got = bob_phone.sync(&mut relay, clock.now())?;
    relay.faults.newest_first = false;
    check_eq(
        "bob-phone reads, in arrival order",
        texts(&got),
        vec!["burst 4", "burst 3", "burst 1"],
    )?;
    let skipped = bob_phone
        .contact("alice")
        .and_then(|c| c.record(one))
        .map(|r| r.stored_skipped_keys());
    check_eq(
        "skipped message keys held for the lost message",
        skipped,
        Some(1),
    )?;

    section("6. A crash between decrypt and commit, then a restart from disk");
    clock.advance(60);
    say("bob-laptop", "comes online with 6 messages waiting");
    check_eq(
        "messages waiting for bob#2",
        step("pending", relay.pending(&bob_2))?,
        6,
    )?;
    let crashed = bob_laptop.sync_then_crash(&mut relay, clock.now(), Crash::BeforeCommit)?;
    check(
        "the app crashed before committing",
        crashed.crashed && crashed.delivered.is_empty(),
    )?;
    check_eq(
        "messages still waiting at the relay (nothing was acknowledged)",
        step("pending", relay.pending(&bob_2))?,
        6,
    )?;
    let mut bob_laptop = Client::open(dir, &keystore, "bob-laptop")?;
    check_eq(
        "session records on bob-laptop's disk (the decrypted one was never committed)",
        bob_laptop.stored_records("alice")?,
        0,
    )?;
    bob_laptop.startup(&mut relay, clock.now())?;
    let got = bob_laptop.sync(&mut relay, clock.now())?;
    let want = vec![
        "Hi Bob! It's Alice.",
        "Hi Alice! Got it.",
        "burst 1",
        "burst 2",
        "burst 3",
        "burst 4",
    ];
    check_eq(
        "bob-laptop reads, after the restart",
        texts(&got),
        want.clone(),
    )?;
    check(
        "the first one started a new session again, from the one-time prekey still on disk",
        got.delivered[0].new_session,
    )?;
    check_eq(
        "the copy of bob-phone's message: from, conversation",
        (
            got.delivered[1].from.clone(),
            got.delivered[1].conversation.as_str(),
        ),
        (bob_1.clone(), "alice"),
    )?;
    let inbox = bob_laptop.inbox()?;
    check_eq(
        "bob-laptop's stored inbox: each message exactly once",
        inbox.iter().map(|(_, _, t)| t.as_str()).collect::<Vec<_>>(),
        want,
    )?;
    check_eq(
        "nothing left at the relay for bob#2",
        step("pending", relay.pending(&bob_2))?,
        0,
    )?;

    clock.advance(60);
    note("the laptop crashes again, this time after the commit and before the ack");
    alice.send(&mut relay, "bob", "Are you on the laptop now?", clock.now())?;
    let crashed = bob_laptop.sync_then_crash(&mut relay, clock.now(), Crash::BeforeAck)?;
    check("the app crashed after committing", crashed.crashed)?;
    let mut bob_laptop = Client::open(dir, &keystore, "bob-laptop")?;
    bob_laptop.startup(&mut relay, clock.now())?;
    let got = bob_laptop.sync(&mut relay, clock.now())?;
    check(
        "the relay delivered it again; it was recognised, not decrypted again",
        got.delivered.is_empty() && got.redelivered.len() == 1,
    )?;
    let count = bob_laptop
        .inbox()?
        .iter()
        .filter(|(_, _, t)| t == "Are you on the laptop now?")
        .count();
    check_eq("copies of that message in bob-laptop's inbox", count, 1)?;
    let got = bob_phone.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone reads",
        texts(&got),
        vec!["Are you on the laptop now?"],
    )?;

    section("7. Bob removes his laptop; the relay replays an old list; the laptop is refused");
    clock.advance(60);
    let list = bob_phone.remove_device(&mut relay, two)?;
    check_eq("bob's new list counter", list.counter(), 3)?;
    check_eq(
        "bob-phone's stored records for its own laptop",
        bob_phone.stored_records("bob")?,
        0,
    )?;
    match alice.refresh(&relay, "bob")? {
        ListOutcome::Updated { added, removed } => check_eq(
            "alice sees bob's devices removed",
            (added, removed),
            (vec![], vec![two]),
        )?,
        other => return Err(Failure::new("alice refreshes bob", format!("{other:?}"))),
    }
    check_eq(
        "alice's stored records for bob (the laptop's deleted)",
        alice.stored_records("bob")?,
        1,
    )?;
    relay.faults.serve_list_counter = Some(2);
    say(
        "relay",
        "now serves bob's list #2 again, the one with the laptop in it",
    );
    match alice.refresh(&relay, "bob")? {
        ListOutcome::Stale {
            offered,
            held,
            error,
        } => check_eq(
            "refused (offered, held, error)",
            (offered, held, error),
            (2, 3, Error::StaleDeviceList),
        )?,
        other => {
            return Err(Failure::new(
                "replayed list",
                format!("accepted: {other:?}"),
            ))
        }
    }
    let sent = alice.send(&mut relay, "bob", "Laptop gone?", clock.now())?;
    check_eq(
        "alice's message, sent while the relay replays, goes to",
        addresses(&sent.posted.iter().map(|p| p.to.clone()).collect::<Vec<_>>()),
        vec!["bob#1".to_owned()],
    )?;
    relay.faults.serve_list_counter = None;
    let got = bob_phone.sync(&mut relay, clock.now())?;
    check_eq("bob-phone reads", texts(&got), vec!["Laptop gone?"])?;
    note("the removed laptop (stolen, its app patched to skip its list checks) writes to alice");
    let sent = bob_laptop.compose(
        &mut relay,
        "alice",
        "It's Bob, on my laptop. Trust me.",
        clock.now(),
    )?;
    check_eq(
        "the relay refuses both copies (to alice, and to bob's phone)",
        sent.bounced
            .iter()
            .map(|b| (b.to.clone(), b.why.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (alice_1.clone(), "sender bob#2 is not a listed device"),
            (bob_1.clone(), "sender bob#2 is not a listed device"),
        ],
    )?;
    check("nothing was posted", sent.posted.is_empty())?;
    let body = sent.bounced[0].body.clone();
    say(
        "relay",
        "(compromised) injects it into alice's mailbox anyway, as from bob#2",
    );
    step("inject", relay.inject(&bob_2, &alice_1, &body))?;
    let inbox_before = alice.inbox()?.len();
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice refuses it",
        got.dropped
            .iter()
            .map(|d| (d.from.clone(), d.error))
            .collect::<Vec<_>>(),
        vec![(bob_2.clone(), Some(Error::UnknownDevice(two)))],
    )?;
    check_eq(
        "alice's inbox grew by",
        alice.inbox()?.len() - inbox_before,
        0,
    )?;
    drop(bob_laptop);

    section("8. Mallory tries to list Bob's phone in her own account");
    clock.advance(60);
    let mallory = Mallory::new()?;
    let mallory_key = mallory.account_key()?;
    let mallory_phone = step(
        "mallory's device",
        LocalDevice::new(clock.now(), &mut OsRng),
    )?;
    let her_link = mallory_phone.link(&mallory_key, one);
    let honest = mallory.sign_list(
        1,
        &[Entry {
            id: one,
            identity: *mallory_phone.identity_key(),
            link_signature: link_signature(&her_link),
        }],
    );
    check_eq(
        "mallory's list of her own device (her link) verifies: her list signatures are sound",
        DeviceList::from_bytes(&honest).map(|l| l.len()),
        Ok(1),
    )?;
    let bob_phone_key = bob_phone.identity_key();
    let bobs_list = step("bob's list", relay.device_list("bob"))?;
    let bobs_list = step("verify bob's list", DeviceList::from_bytes(&bobs_list))?;
    let bobs_link = bobs_list
        .links()
        .iter()
        .find(|l| l.device_id() == one)
        .copied()
        .ok_or_else(|| Failure::new("bob's list", "no device 1"))?;
    let claim = |link_signature| {
        mallory.sign_list(
            1,
            &[Entry {
                id: one,
                identity: bob_phone_key,
                link_signature,
            }],
        )
    };
    say(
        "mallory",
        format!(
            "signs a list of account \"mallory\" naming bob's phone identity {}…",
            short_hex(bob_phone_key.as_bytes(), 6)
        ),
    );
    check_eq(
        "with her own device's link signature in it: the list does not parse",
        DeviceList::from_bytes(&claim(link_signature(&her_link))).map(|l| l.len()),
        Err(Error::InvalidSignature),
    )?;
    let forged = claim(link_signature(&bobs_link));
    check_eq(
        "with bob's genuine link copied from his list (it names bob's account): refused too",
        DeviceList::from_bytes(&forged).map(|l| l.len()),
        Err(Error::InvalidSignature),
    )?;
    match relay.publish_list("mallory", &forged) {
        Err(RelayError::Invalid(error)) => check_eq(
            "an honest relay refuses to publish it",
            error,
            Error::InvalidSignature,
        )?,
        other => {
            return Err(Failure::new(
                "publish the forged list",
                format!("{other:?}"),
            ))
        }
    }
    step("plant", relay.plant_list("mallory", &forged))?;
    say("relay", "(compromised) serves it as mallory's list anyway");
    let sent = bob_phone.send(&mut relay, "alice", "Lunch tomorrow?", clock.now())?;
    let seq = sent
        .posted
        .iter()
        .find(|p| p.to == alice_1)
        .map(|p| p.seq)
        .ok_or_else(|| Failure::new("bob-phone", "nothing posted to alice#1"))?;
    let mallory_1 = Address::new("mallory", one);
    step("relabel", relay.relabel(seq, &mallory_1))?;
    say(
        "relay",
        "hands bob's message to alice as from mallory#1, bob's phone in mallory's list",
    );
    let inbox_before = alice.inbox()?.len();
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice refuses it: mallory's list does not verify",
        got.dropped
            .iter()
            .map(|d| (d.from.clone(), d.error))
            .collect::<Vec<_>>(),
        vec![(mallory_1.clone(), Some(Error::InvalidSignature))],
    )?;
    check_eq(
        "alice's inbox grew by",
        alice.inbox()?.len() - inbox_before,
        0,
    )?;
    let sent = alice.send(&mut relay, "mallory", "Hi Mallory?", clock.now())?;
    check_eq(
        "alice cannot write to mallory either (her list does not verify)",
        (sent.invalid_list, sent.posted.len()),
        (Some(Error::InvalidSignature), 0),
    )?;
    check(
        "alice has no contact mallory",
        alice.contact("mallory").is_none(),
    )?;

    section("9. Identity change: Bob reinstalls, with a new account key");
    clock.advance(3600);
    let old_bob_key = bob_phone.account_key()?;
    let old_path = bob_phone.path().to_path_buf();
    drop(bob_phone);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = old_path.clone().into_os_string();
        path.push(suffix);
        if Path::new(&path).exists() {
            step("wipe the old app", fs::remove_file(&path))?;
        }
    }
    step("wipe the old key", keystore.remove("bob-phone"))?;
    say(
        "bob-phone",
        "app deleted with its database and key; reinstalled",
    );
    let mut bob_new = Client::register(
        dir,
        &keystore,
        "bob-phone-new",
        "bob",
        one,
        &mut relay,
        clock.now(),
    )?;
    let new_bob_key = bob_new.account_key()?;
    let sent = alice.send(&mut relay, "bob", "Bob, are you there?", clock.now())?;
    let change = sent
        .blocked
        .ok_or_else(|| Failure::new("identity change", "not detected"))?;
    check("nothing was sent", sent.posted.is_empty())?;
    check_eq("the change: old key", *change.old_key(), old_bob_key)?;
    check_eq("the change: new key", *change.new_key(), new_bob_key)?;
    let (old, new) = change.safety_numbers(&alice_key);
    let rule = "-".repeat(80);
    println!();
    println!("      +{rule}+");
    for line in [
        String::from("bob's safety number has changed. bob may have reinstalled the app, or"),
        String::from("someone may be trying to intercept your messages. Compare the new number"),
        String::from("with bob in person before you continue."),
        format!("  was: {}", old.to_digits()),
        format!("  now: {}", new.to_digits()),
        String::from("                                        [ Accept new number ]  [ Not now ]"),
    ] {
        println!("      | {line:<78} |");
    }
    println!("      +{rule}+");
    println!();
    check(
        "the old number is the one alice and bob compared",
        old.to_digits() == on_alice.to_digits(),
    )?;
    check(
        "the new number is the one on bob's reinstalled phone",
        new.to_digits() == SafetyNumber::of_accounts(&new_bob_key, &alice_key).to_digits(),
    )?;
    check_eq(
        "until alice decides, her contact still pins",
        alice.contact("bob").map(|c| *c.account_key()),
        Some(old_bob_key),
    )?;
    say(
        "alice-phone",
        "alice compares the new number with bob in person: it matches; she accepts",
    );
    let compared = *change.new_key();
    alice.accept_identity_change("bob", change)?;
    check_eq(
        "alice's contact now pins",
        alice.contact("bob").map(|c| (*c.account_key(), c.trust())),
        Some((new_bob_key, Trust::FirstUse)),
    )?;
    check_eq(
        "alice's stored records for bob (the old phone's deleted)",
        alice.stored_records("bob")?,
        0,
    )?;
    check_eq(
        "a verification screen left open on the old number does not verify the new key",
        alice.mark_verified("bob", &old_bob_key)?,
        Err(Error::IdentityMismatch),
    )?;
    check_eq(
        "alice marks the new key verified (the number she compared)",
        alice.mark_verified("bob", &compared)?,
        Ok(()),
    )?;
    relay.faults.strip_post_quantum = true;
    say(
        "relay",
        "hands out bob's bundle with its post-quantum prekey stripped (a downgrade)",
    );
    let sent = alice.send(&mut relay, "bob", "Welcome back, Bob.", clock.now())?;
    check_eq(
        "refused (alice's contact remembers bob offered post-quantum prekeys)",
        sent.refused.clone(),
        vec![(bob_1.clone(), Error::PostQuantumRequired)],
    )?;
    check("nothing was sent", sent.posted.is_empty())?;
    relay.faults.strip_post_quantum = false;
    let sent = alice.send(&mut relay, "bob", "Welcome back, Bob.", clock.now())?;
    check_eq(
        "with the real bundle",
        sent.initiated.clone(),
        vec![(bob_1.clone(), true)],
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob's new phone reads",
        texts(&got),
        vec!["Welcome back, Bob."],
    )?;
    bob_new.send(
        &mut relay,
        "alice",
        "Thanks! New phone, same Bob.",
        clock.now(),
    )?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice reads",
        texts(&got),
        vec!["Thanks! New phone, same Bob."],
    )?;

    section("10. Everything restarts from disk");
    clock.advance(60);
    drop(alice);
    drop(bob_new);
    let mut alice = Client::open(dir, &keystore, "alice-phone")?;
    let mut bob_new = Client::open(dir, &keystore, "bob-phone-new")?;
    let started = alice.startup(&mut relay, clock.now())?;
    check_eq(
        "alice-phone adopts its account's published list (it already holds it)",
        started.adopted,
        Some(Ok(false)),
    )?;
    let started = bob_new.startup(&mut relay, clock.now())?;
    check_eq(
        "bob's new phone: adopted, messages left in the outbox to re-post",
        (started.adopted, started.reposted.posted.len()),
        (Some(Ok(false)), 0),
    )?;
    alice.send(
        &mut relay,
        "bob",
        "Still here after a restart?",
        clock.now(),
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob reads",
        texts(&got),
        vec!["Still here after a restart?"],
    )?;
    bob_new.send(&mut relay, "alice", "Yes.", clock.now())?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq("alice reads", texts(&got), vec!["Yes."])?;
    check_eq(
        "alice's inbox",
        alice
            .inbox()?
            .into_iter()
            .map(|(from, _, text)| format!("{from}: {text}"))
            .collect::<Vec<_>>(),
        vec![
            "bob#1: Hi Alice! Got it.".to_owned(),
            "bob#1: Thanks! New phone, same Bob.".to_owned(),
            "bob#1: Yes.".to_owned(),
        ],
    )?;
    check(
        "every device's write-ahead log is empty (checkpointed after its last commit)",
        alice.wal_bytes() == 0 && bob_new.wal_bytes() == 0,
    )?;

    section("11. A group with sender keys: Alice's phone, her new laptop and Bob's phone");
    clock.advance(60);
    let alice_2 = Address::new("alice", two);
    let mut alice_laptop =
        Client::create_unlinked(dir, &keystore, "alice-laptop", "alice", clock.now())?;
    let offer = alice.offer_link()?;
    say(
        "alice-laptop",
        "scans it and shows its signed device link; alice-phone scans that",
    );
    let link = alice_laptop.sign_link(&offer).to_bytes();
    alice.add_linked_device(&mut relay, &offer, &link)?;
    alice_laptop.complete_link(&mut relay, &offer)?;
    let (group, sent) = alice.create_group(
        &mut relay,
        "weekend",
        &[alice_2.clone(), bob_1.clone()],
        clock.now(),
    )?;
    check_eq(
        "alice-phone sends each member the member list and its distribution, each to that device only",
        posted_to(&sent),
        vec![alice_2.clone(), alice_2.clone(), bob_1.clone(), bob_1.clone()],
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone: member lists applied, distributions taken, texts",
        (
            got.memberships.len(),
            got.distributions.len(),
            got.delivered.len(),
        ),
        (1, 1, 0),
    )?;
    check_eq(
        "bob-phone sends its own distribution to",
        posted_to(&got.sent),
        vec![alice_1.clone(), alice_2.clone()],
    )?;
    let got = alice_laptop.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-laptop: member lists applied, distributions taken (alice's and bob's)",
        (got.memberships.len(), got.distributions.len()),
        (1, 2),
    )?;
    check_eq(
        "alice-laptop sends its own distribution to",
        posted_to(&got.sent),
        vec![alice_1.clone(), bob_1.clone()],
    )?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-phone takes the distributions of",
        addresses(
            &got.distributions
                .iter()
                .map(|d| d.0.clone())
                .collect::<Vec<_>>(),
        ),
        vec!["bob#1".to_owned(), "alice#2".to_owned()],
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone takes the distribution of",
        addresses(
            &got.distributions
                .iter()
                .map(|d| d.0.clone())
                .collect::<Vec<_>>(),
        ),
        vec!["alice#2".to_owned()],
    )?;
    check_eq(
        "alice-phone's member chains on disk (member, chains)",
        chains_held(&alice.stored_chains(&group)?),
        vec![("alice#2", 1), ("bob#1", 1)],
    )?;
    check_eq(
        "alice-laptop's",
        chains_held(&alice_laptop.stored_chains(&group)?),
        vec![("alice#1", 1), ("bob#1", 1)],
    )?;
    check_eq(
        "bob-phone's",
        chains_held(&bob_new.stored_chains(&group)?),
        vec![("alice#1", 1), ("alice#2", 1)],
    )?;

    note("each member writes once to the group; the relay fans each message out");
    let sent = alice.send_group(&mut relay, &group, "Hike on Saturday?", clock.now())?;
    check_eq(
        "alice-phone's message reaches",
        posted_to(&sent),
        vec![alice_2.clone(), bob_1.clone()],
    )?;
    let bodies = [&alice_2, &bob_1]
        .into_iter()
        .map(|at| {
            step("fetch", relay.fetch(at)).and_then(|m| {
                m.last()
                    .map(|e| e.body.clone())
                    .ok_or_else(|| Failure::new("fetch", "empty"))
            })
        })
        .collect::<Outcome<Vec<_>>>()?;
    check(
        "the relay put the same bytes in both mailboxes",
        bodies[0] == bodies[1],
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq("bob-phone reads", texts(&got), vec!["Hike on Saturday?"])?;
    let got = alice_laptop.sync(&mut relay, clock.now())?;
    check_eq("alice-laptop reads", texts(&got), vec!["Hike on Saturday?"])?;
    let sent = bob_new.send_group(&mut relay, &group, "I'm in.", clock.now())?;
    let held = sent
        .posted
        .iter()
        .find(|p| p.to == alice_1)
        .map(|p| p.seq)
        .ok_or_else(|| Failure::new("bob-phone", "nothing posted to alice#1"))?;
    bob_new.send_group(&mut relay, &group, "I'll bring the map.", clock.now())?;
    relay.faults.held_back.insert(held);
    say(
        "relay",
        "holds back bob's \"I'm in.\" on its way to alice#1",
    );
    alice_laptop.send_group(&mut relay, &group, "Me too, from my laptop.", clock.now())?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-phone reads",
        texts(&got),
        vec!["I'll bring the map.", "Me too, from my laptop."],
    )?;
    check_eq(
        "alice-phone's chains of bob#1 on disk: (member, chains, skipped keys)",
        alice
            .stored_chains(&group)?
            .into_iter()
            .find(|c| c.0 == "bob#1"),
        Some(("bob#1".to_owned(), 1, 1)),
    )?;

    note("all three devices restart from disk in the middle of the conversation");
    clock.advance(60);
    drop(alice);
    drop(alice_laptop);
    drop(bob_new);
    let mut alice = Client::open(dir, &keystore, "alice-phone")?;
    let mut alice_laptop = Client::open(dir, &keystore, "alice-laptop")?;
    let mut bob_new = Client::open(dir, &keystore, "bob-phone-new")?;
    for client in [&mut alice, &mut alice_laptop, &mut bob_new] {
        client.startup(&mut relay, clock.now())?;
    }
    relay.faults.held_back.clear();
    say("relay", "delivers the held-back message");
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-phone reads it, with the skipped key stored on disk",
        texts(&got),
        vec!["I'm in."],
    )?;
    check_eq(
        "alice-phone's chains of bob#1: the skipped key is used up",
        alice
            .stored_chains(&group)?
            .into_iter()
            .find(|c| c.0 == "bob#1"),
        Some(("bob#1".to_owned(), 1, 0)),
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone reads",
        texts(&got),
        vec!["Me too, from my laptop."],
    )?;
    let got = alice_laptop.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-laptop reads",
        texts(&got),
        vec!["I'm in.", "I'll bring the map."],
    )?;

    section(
        "12. Alice takes her laptop out of the group: everyone rotates; the laptop is shut out",
    );
    clock.advance(60);
    let (before, _) = alice.group_chain(&group)?;
    let sent = alice.remove_group_member(&mut relay, &group, &alice_2, clock.now())?;
    check(
        "alice-phone's sending chain is a new one",
        alice.group_chain(&group)?.0 != before,
    )?;
    check_eq(
        "the new member list and distribution go to",
        posted_to(&sent),
        vec![bob_1.clone(), bob_1.clone()],
    )?;
    check_eq(
        "alice-phone's member chains on disk (the laptop's deleted)",
        chains_held(&alice.stored_chains(&group)?),
        vec![("bob#1", 1)],
    )?;
    let (before, _) = bob_new.group_chain(&group)?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check(
        "bob-phone rotated its own sending chain on learning of the removal",
        bob_new.group_chain(&group)?.0 != before,
    )?;
    check_eq(
        "bob-phone's new distribution goes to alice#1 only, not to alice#2 (same account, not a member)",
        posted_to(&got.sent),
        vec![alice_1.clone()],
    )?;
    check_eq(
        "bob-phone's member chains on disk (alice#1's old and new chains; the laptop's deleted)",
        chains_held(&bob_new.stored_chains(&group)?),
        vec![("alice#1", 2)],
    )?;
    check_eq(
        "bob-phone's members",
        addresses(&bob_new.group_members(&group)?),
        vec!["alice#1".to_owned()],
    )?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-phone takes bob's new distribution",
        got.distributions.len(),
        1,
    )?;
    let sent = alice.send_group(
        &mut relay,
        &group,
        "The laptop is out. See you at 8.",
        clock.now(),
    )?;
    check_eq(
        "alice-phone's message reaches",
        posted_to(&sent),
        vec![bob_1.clone()],
    )?;
    step("copy", relay.copy_to(sent.posted[0].seq, &alice_2))?;
    say(
        "relay",
        "(compromised) copies it into alice#2's mailbox as well",
    );
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone reads",
        texts(&got),
        vec!["The laptop is out. See you at 8."],
    )?;
    let sent = bob_new.send_group(&mut relay, &group, "See you at 8.", clock.now())?;
    check_eq(
        "bob-phone's message reaches",
        posted_to(&sent),
        vec![alice_1.clone()],
    )?;
    step("copy", relay.copy_to(sent.posted[0].seq, &alice_2))?;
    say(
        "relay",
        "(compromised) copies it into alice#2's mailbox as well",
    );
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq("alice-phone reads", texts(&got), vec!["See you at 8."])?;
    let inbox_before = alice_laptop.inbox()?.len();
    let got = alice_laptop.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-laptop cannot decrypt them: it holds no distribution for the new chains",
        got.awaiting.clone(),
        vec![
            (alice_1.clone(), Error::UnknownChain),
            (bob_1.clone(), Error::UnknownChain),
        ],
    )?;
    check_eq(
        "alice-laptop's inbox grew by",
        alice_laptop.inbox()?.len() - inbox_before,
        0,
    )?;
    note("the laptop, not told it was removed, writes to the group");
    let sent = alice_laptop.send_group(&mut relay, &group, "Am I still in?", clock.now())?;
    check_eq(
        "the relay, which knows no group, delivers it to",
        posted_to(&sent),
        vec![alice_1.clone(), bob_1.clone()],
    )?;
    let got = alice.sync(&mut relay, clock.now())?;
    check_eq(
        "alice-phone refuses it",
        refusals(&got),
        vec![(alice_2.clone(), Some(Error::NotGroupMember))],
    )?;
    let got = bob_new.sync(&mut relay, clock.now())?;
    check_eq(
        "bob-phone refuses it",
        refusals(&got),
        vec![(alice_2.clone(), Some(Error::NotGroupMember))],
    )?;
    clock.advance(24 * 3600);
    let got = alice_laptop.sync(&mut relay, clock.now())?;
    check_eq(
        "a day later alice-laptop drops the two messages: their distributions never came",
        refusals(&got),
        vec![
            (alice_1.clone(), Some(Error::UnknownChain)),
            (bob_1.clone(), Some(Error::UnknownChain)),
        ],
    )?;
    check(
        "every device's write-ahead log is empty",
        [&alice, &alice_laptop, &bob_new]
            .iter()
            .all(|c| c.wal_bytes() == 0),
    )?;
    Ok(())
}

fn main() -> ExitCode {
    let started = Instant::now();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "doubleratchet-messenger-{}-{nanos}",
        std::process::id()
    ));
    println!(
        "Each device keeps its state in its own SQLite database under {}",
        dir.display()
    );
    let result = fs::create_dir(&dir)
        .map_err(|e| Failure::new("create the temporary directory", e))
        .and_then(|()| run(&dir));
    let cleanup = fs::remove_dir_all(&dir);
    match (result, cleanup) {
        (Ok(()), Ok(())) => {
            println!();
            println!(
                "All checks passed in {:.2?}; {} removed.",
                started.elapsed(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        (Err(failure), _) => {
            eprintln!();
            eprintln!("FAILED: {failure}");
            ExitCode::FAILURE
        }
        (Ok(()), Err(e)) => {
            eprintln!("FAILED: removing {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
