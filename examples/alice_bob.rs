//! Alice and Bob, end to end: Bob publishes a prekey bundle, Alice starts a session from
//! it, and messages flow both ways, including lost and out-of-order ones. Bob stores his
//! session sealed under an app key between messages, as a messaging app would. Plaintexts
//! are padded, so short and longer messages look alike. Finally they verify each other
//! with safety numbers, and a substituted bundle is caught. Last, Carol and Dave keep their
//! sessions in session records: both initiate at once and the records converge on one
//! session, and when Dave loses his records a signed decryption-error request makes Carol
//! start a new session.
//!
//! Run with `cargo run --example alice_bob`. The program checks every step and exits with
//! a non-zero status if anything goes wrong.

use std::collections::BTreeMap;
use std::process::ExitCode;

use doubleratchet::SessionOptions;
use doubleratchet::{
    Error, LocalDevice, Message, OneTimePreKeyId, OsRng, PreKeyBundle, RecordLimits, ResetOutcome,
    SafetyNumber, ScanResult, Session, SessionRecord, StorageKey,
};

/// A failed step of the demo.
#[derive(Debug)]
enum DemoError {
    Protocol(&'static str, Error),
    Mismatch(&'static str),
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Protocol(step, e) => write!(f, "{step}: {e}"),
            DemoError::Mismatch(what) => write!(f, "unexpected result: {what}"),
        }
    }
}

/// Runs `result`, naming the step if it fails.
fn step<T>(what: &'static str, result: Result<T, Error>) -> Result<T, DemoError> {
    result.map_err(|e| DemoError::Protocol(what, e))
}

fn show(from: &str, to: &str, wire: &[u8], note: &str) {
    let kind = match Message::parse(wire) {
        Ok(Message::Initial(_)) => "initial",
        Ok(Message::Normal(_)) => "normal ",
        Ok(_) => "other  ",
        Err(_) => "invalid",
    };
    let n = Message::parse(wire)
        .map(|m| m.message_number().unwrap_or(0))
        .unwrap_or(0);
    println!(
        "  {from:>5} -> {to:<5} [{kind} N={n:<2} {:>3} bytes] {note}",
        wire.len()
    );
}

/// Lowercase hex, for printing ids.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The context Bob's app seals a session with: the contact it belongs to and its row key
/// (the session id). A blob opens only under the context it was sealed with.
fn session_context(contact: &str, row: &[u8; 32]) -> Vec<u8> {
    format!("alice_bob demo/sessions/{contact}/{}", hex(row)).into_bytes()
}

fn expect(what: &'static str, got: &[u8], want: &[u8]) -> Result<(), DemoError> {
    if got == want {
        println!("        {what}: \"{}\"", String::from_utf8_lossy(got));
        Ok(())
    } else {
        Err(DemoError::Mismatch(what))
    }
}

fn run() -> Result<(), DemoError> {
    let mut rng = OsRng;

    println!("1. Bob creates his identity and publishes a prekey bundle.");
    // The app's clock, in seconds since the Unix epoch; the device records when each signed
    // prekey was made so that `maintain` can rotate it later.
    let now = 1_790_000_000;
    let mut bob_store = step("bob device", LocalDevice::new(now, &mut rng))?;
    let bob = *bob_store.identity_key();
    let opk_ids: Vec<OneTimePreKeyId> = step(
        "one-time prekeys",
        bob_store.generate_one_time_prekeys(3, &mut rng),
    )?
    .created;
    let bundle_bytes = step("bundle", bob_store.bundle(opk_ids.first().copied()))?.to_bytes();
    println!(
        "   bundle: {} bytes, identity {:?}",
        bundle_bytes.len(),
        bob
    );

    println!("2. Alice fetches the bundle, verifies it and starts a session.");
    let alice = step("alice device", LocalDevice::new(now, &mut rng))?;
    let bundle = step("parse bundle", PreKeyBundle::from_bytes(&bundle_bytes))?;
    let mut a = step(
        "initiate",
        alice.initiate(&bundle, &SessionOptions::new(), &mut rng),
    )?;
    println!("   session id {:?}", a.id());

    println!("3. Alice sends two messages; the first is lost in transit.");
    let lost_first = step("encrypt", a.encrypt(b"Hi Bob, it's Alice.", &mut rng))?;
    show("alice", "bob", &lost_first, "(lost for now)");
    let second = step(
        "encrypt",
        a.encrypt(b"Did you get my first message?", &mut rng),
    )?;
    show("alice", "bob", &second, "");

    println!("4. Bob accepts the session from Alice's second message.");
    let accepted = step("accept", bob_store.accept(&second, &SessionOptions::new()))?;
    expect(
        "bob reads",
        &accepted.plaintext,
        b"Did you get my first message?",
    )?;
    if let Some(id) = accepted.used_one_time_prekey {
        println!("        one-time prekey {id} consumed and deleted");
    }
    let mut b = accepted.session;
    if b.id() != a.id() {
        return Err(DemoError::Mismatch("session ids differ"));
    }

    // Bob's app keeps its sessions sealed in a database, keyed by session id. Each blob is
    // sealed for its place: the contact and the row (the context is not stored).
    let app_key = step("storage key", StorageKey::generate(&mut rng))?;
    let mut database: BTreeMap<[u8; 32], Vec<u8>> = BTreeMap::new();
    let row = *b.id().as_bytes();
    database.insert(
        row,
        step(
            "seal",
            app_key.seal(&b, &session_context("alice", &row), &mut rng),
        )?,
    );
    println!(
        "   Bob stores the session sealed for (alice, row {}...): {} bytes",
        &hex(&row)[..16],
        database[&row].len()
    );
    // A blob copied into another contact's row does not open there.
    match app_key.open_session(&database[&row], &session_context("mallory", &row), &bob) {
        Err(Error::DecryptionFailed) => {
            println!("   (the same blob under Mallory's row context: refused)")
        }
        Err(e) => return Err(DemoError::Protocol("open under another context", e)),
        Ok(_) => {
            return Err(DemoError::Mismatch(
                "opened under another contact's context",
            ))
        }
    }

    println!("5. The lost first message finally arrives; Bob routes it by session id.");
    show("alice", "bob", &lost_first, "(late)");
    let route = match step("parse", Message::parse(&lost_first))? {
        Message::Initial(m) => m.session_id(&bob),
        _ => return Err(DemoError::Mismatch("expected an initial message")),
    };
    let sealed = database
        .get(route.as_bytes())
        .ok_or(DemoError::Mismatch("no stored session for that id"))?;
    // A stored session leaves out Bob's own identity key: he opens it with his key.
    let mut b_loaded: Session = step(
        "open",
        app_key.open_session(sealed, &session_context("alice", route.as_bytes()), &bob),
    )?;
    let late = step("decrypt late", b_loaded.decrypt(&lost_first))?;
    expect("bob reads", &late, b"Hi Bob, it's Alice.")?;
    b = b_loaded;

    println!("6. Bob replies; Alice now switches to normal messages.");
    let reply = step("encrypt", b.encrypt(b"Got both. Hello Alice!", &mut rng))?;
    show("bob", "alice", &reply, "");
    let pt = step("decrypt", a.decrypt(&reply))?;
    expect("alice reads", &pt, b"Got both. Hello Alice!")?;

    println!("7. Alice sends a burst of four; they arrive 4, 2, (3 lost), 1.");
    let burst: Vec<Vec<u8>> = (1..=4)
        .map(|i| a.encrypt(format!("burst message {i}").as_bytes(), &mut rng))
        .collect::<Result<_, _>>()
        .map_err(|e| DemoError::Protocol("encrypt burst", e))?;
    for (index, note) in [(3usize, "(arrives first)"), (1, ""), (0, "")] {
        show("alice", "bob", &burst[index], note);
        let pt = step("decrypt burst", b.decrypt(&burst[index]))?;
        let want = format!("burst message {}", index + 1);
        expect("bob reads", &pt, want.as_bytes())?;
    }
    println!(
        "        message 3 never arrives; Bob holds {} skipped key(s)",
        b.stored_skipped_keys()
    );

    println!("8. A replayed message and a tampered one are rejected; Bob's session is unchanged.");
    let before = b.to_bytes();
    match b.decrypt(&burst[0]) {
        Err(e) => println!("        replay rejected: {e}"),
        Ok(_) => return Err(DemoError::Mismatch("replay accepted")),
    }
    let mut tampered = burst[2].clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    match b.decrypt(&tampered) {
        Err(e) => println!("        tampered message rejected: {e}"),
        Ok(_) => return Err(DemoError::Mismatch("tampered message accepted")),
    }
    if b.to_bytes() != before {
        return Err(DemoError::Mismatch("rejected messages changed the session"));
    }

    println!("9. A few more rounds both ways, each a new DH ratchet step.");
    for round in 1..=3 {
        let text = format!("ping {round}");
        let m = step("encrypt", b.encrypt(text.as_bytes(), &mut rng))?;
        show("bob", "alice", &m, "");
        expect(
            "alice reads",
            &step("decrypt", a.decrypt(&m))?,
            text.as_bytes(),
        )?;
        let text = format!("pong {round}");
        let m = step("encrypt", a.encrypt(text.as_bytes(), &mut rng))?;
        show("alice", "bob", &m, "");
        expect(
            "bob reads",
            &step("decrypt", b.decrypt(&m))?,
            text.as_bytes(),
        )?;
    }

    println!("10. Lengths are hidden: a short and a longer message look alike on the wire.");
    let mut sizes = Vec::new();
    for text in ["ok", "see you at the station at nine, the usual platform"] {
        let m = step("encrypt", b.encrypt(text.as_bytes(), &mut rng))?;
        show("bob", "alice", &m, "");
        expect(
            "alice reads",
            &step("decrypt", a.decrypt(&m))?,
            text.as_bytes(),
        )?;
        sizes.push(m.len());
    }
    if sizes[0] != sizes[1] {
        return Err(DemoError::Mismatch("padded sizes differ"));
    }
    println!("        both padded to the same size (Padding::Padme, the default)");

    println!("11. Alice and Bob compare safety numbers in person: they match.");
    let on_alice = SafetyNumber::of_session(&a);
    let on_bob = SafetyNumber::of_session(&b);
    println!("        Alice's screen: {on_alice}");
    println!("        Bob's screen:   {on_bob}");
    if on_bob.compare_scanned(&on_alice.to_bytes()) != ScanResult::Match {
        return Err(DemoError::Mismatch("safety numbers differ"));
    }
    let pinned_bob = *a.remote_identity();
    println!("        Alice pins Bob's identity key.");

    println!("12. Later, the server hands Alice a substituted bundle for \"Bob\" (Mallory's).");
    let mallory_store = step("mallory device", LocalDevice::new(now, &mut rng))?;
    let substituted = step("mallory bundle", mallory_store.bundle(None))?;
    match alice.initiate(
        &substituted,
        &SessionOptions::new().pin(&pinned_bob),
        &mut rng,
    ) {
        Err(Error::IdentityMismatch) => {
            println!("        detected: the bundle's identity key is not the one pinned for Bob")
        }
        Err(e) => return Err(DemoError::Protocol("initiate (pinned)", e)),
        Ok(_) => return Err(DemoError::Mismatch("substituted bundle accepted")),
    }
    // Had Alice not pinned Bob's key, the safety numbers would expose the substitution.
    let mitm = step(
        "initiate",
        alice.initiate(&substituted, &SessionOptions::new(), &mut rng),
    )?;
    let alice_would_see = SafetyNumber::of_session(&mitm);
    println!("        Alice's screen with the substituted key: {alice_would_see}");
    match on_bob.compare_scanned(&alice_would_see.to_bytes()) {
        ScanResult::Mismatch => {
            println!("        Bob scans it: MISMATCH, do not trust this session")
        }
        _ => {
            return Err(DemoError::Mismatch(
                "substitution not visible in safety numbers",
            ))
        }
    }

    records(&mut rng, now)?;

    println!("All checks passed.");
    Ok(())
}

/// Steps 13-15: sessions held in session records (SPEC.md §6.6-§6.8), as an app keeps them.
fn records(rng: &mut OsRng, now: u64) -> Result<(), DemoError> {
    let options = SessionOptions::new();
    let limits = RecordLimits::default();
    let mut carol = step("carol device", LocalDevice::new(now, rng))?;
    let mut dave = step("dave device", LocalDevice::new(now, rng))?;
    let (c_id, d_id) = (*carol.identity_key(), *dave.identity_key());
    let mut carol_dave = step("record", SessionRecord::new(&c_id, &d_id, limits))?;
    let mut dave_carol = step("record", SessionRecord::new(&d_id, &c_id, limits))?;

    println!("13. Carol and Dave each start a session from the other's bundle at once.");
    let bundle = step("bundle", dave.bundle(None))?;
    step(
        "initiate",
        carol_dave.initiate(&carol, &bundle, &options, now, rng),
    )?;
    let bundle = step("bundle", carol.bundle(None))?;
    step(
        "initiate",
        dave_carol.initiate(&dave, &bundle, &options, now, rng),
    )?;
    for round in 0..3 {
        // Their messages cross every time; the records pick one sending session.
        let to_dave = step("encrypt", carol_dave.encrypt(b"hi Dave", rng))?;
        let to_carol = step("encrypt", dave_carol.encrypt(b"hi Carol", rng))?;
        show("carol", "dave", &to_dave, "crossing");
        show("dave", "carol", &to_carol, "crossing");
        let got = step(
            "receive",
            dave_carol.receive(&mut dave, &to_dave, &options, now),
        )?;
        expect("dave reads", &got.plaintext, b"hi Dave")?;
        let got = step(
            "receive",
            carol_dave.receive(&mut carol, &to_carol, &options, now),
        )?;
        expect("carol reads", &got.plaintext, b"hi Carol")?;
        let (c, d) = (carol_dave.sending_session(), dave_carol.sending_session());
        let same = c.map(Session::id) == d.map(Session::id);
        println!(
            "        after round {}: {} sessions each, same sending session: {same}",
            round + 1,
            carol_dave.len()
        );
        if !same {
            return Err(DemoError::Mismatch("records did not converge"));
        }
    }

    println!("14. Dave's phone is replaced and his records are lost: he cannot decrypt Carol.");
    let lost = step("encrypt", carol_dave.encrypt(b"still there?", rng))?;
    let mut dave_carol = step("record", SessionRecord::new(&d_id, &c_id, limits))?;
    match dave_carol.receive(&mut dave, &lost, &options, now) {
        Err(e) => println!("        dave: {e} ({:?})", e.kind()),
        Ok(_) => return Err(DemoError::Mismatch("a lost record decrypted")),
    }
    let request = step("request", dave_carol.decryption_error(&dave, &lost, now))?;
    println!(
        "        dave sends a signed decryption-error request ({} bytes)",
        request.len()
    );

    println!("15. Carol's record resets the broken session; she starts a new one.");
    match step(
        "handle",
        carol_dave.handle_decryption_error(&request, now + 5),
    )? {
        ResetOutcome::Reset(_) => println!("        carol: session reset"),
        _ => return Err(DemoError::Mismatch("request not acted on")),
    }
    match step(
        "replay",
        carol_dave.handle_decryption_error(&request, now + 7200),
    )? {
        ResetOutcome::Stale => println!("        the same request replayed later: ignored"),
        _ => return Err(DemoError::Mismatch("replayed request acted on")),
    }
    let bundle = step("bundle", dave.bundle(None))?;
    step(
        "initiate",
        carol_dave.initiate(&carol, &bundle, &options, now, rng),
    )?;
    let again = step("encrypt", carol_dave.encrypt(b"still there?", rng))?;
    show("carol", "dave", &again, "new session");
    let got = step(
        "receive",
        dave_carol.receive(&mut dave, &again, &options, now),
    )?;
    expect("dave reads", &got.plaintext, b"still there?")
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
