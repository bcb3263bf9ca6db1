//! One device's messenger app. Everything it knows lives in its own SQLite database and is
//! loaded from there at start-up ([`Client::open`]); the in-memory objects are a cache of
//! the last commit. Secret rows are sealed with the device's storage key (kept in the
//! [`Keystore`], standing in for the OS keystore) under a context naming the row, so a blob
//! copied into another row does not open.
//!
//! Write ordering (SPEC.md §8.4, §6.5):
//!
//! * **Receiving**: the message is decrypted in memory; then *one transaction* writes the
//!   session record, then (when the message started a new session, consuming a one-time
//!   prekey) the device, then the plaintext with the relay's sequence number; then it
//!   commits, the WAL is checkpointed, and only then is the message acknowledged to the
//!   relay. A crash before the commit loses nothing (the relay still holds the message and
//!   the stored record can still decrypt it); a crash after the commit and before the ack
//!   gets the message delivered again, and the sequence number, stored in the same
//!   transaction, recognises it: delivered exactly once.
//! * **Sending**: the records that encrypted (and any new session, and the contact) are
//!   committed together with the ciphertexts in an outbox, before anything leaves; the
//!   outbox is then posted (each post is idempotent at the relay) and emptied. A crash in
//!   between re-posts the outbox at the next start.
//! * **Accounts**: the account is stored before its new list is published, so a crash never
//!   leaves a published list whose counter the stored account would sign again.
//! * **Groups** (`groups.rs`): a group message is committed with the group's advanced
//!   sending chain before it leaves (a group restored from an older copy would send an
//!   iteration twice); what a device owes other members (its distribution, a member list)
//!   is committed with the change that caused it and sent afterwards, like the outbox.

mod groups;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use doubleratchet::rand_core::TryRng;
use doubleratchet::{
    encrypt_to_devices, Account, AccountKey, Contact, DeviceId, DeviceLink, DeviceList,
    DeviceUpdate, DistributionOutcome, Error, GroupId, IdentityChange, IdentityKey, LocalDevice,
    Message, OsRng, PreKeyBundle, PreKeyPolicy, RecordLimits, RecordStatus, SessionOptions,
    SessionRecord, Storable, StorageKey, StoreNotice,
};
use rusqlite::{params, Connection, OptionalExtension};
use zeroize::Zeroizing;

use self::groups::{Effect, GroupEntry, MembersNotice};

use crate::db;
use crate::harness::{say, short_hex, step, Failure, Outcome};
use crate::keystore::Keystore;
use crate::relay::{Address, Envelope, Kind, Queued, Relay, RelayError};

/// How many one-time prekeys of each kind the device keeps queued at the relay, and below
/// how many it uploads more. Small numbers, so that the run shows a replenishment.
const ONE_TIME_TARGET: usize = 5;
const ONE_TIME_LOW: usize = 4;
const PQ_ONE_TIME_TARGET: usize = 2;
const PQ_ONE_TIME_LOW: usize = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (            -- who this device is (public)
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    user      TEXT NOT NULL,
    device    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS local_device (    -- the LocalDevice: identity key pair, prekeys
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    sealed    BLOB NOT NULL                  -- sealed, context 'device'
);
CREATE TABLE IF NOT EXISTS account (         -- the Account (primary device only)
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    sealed    BLOB NOT NULL                  -- sealed, context 'account'
);
CREATE TABLE IF NOT EXISTS contacts (        -- Contact state: pinned key, trust, list
    name   TEXT PRIMARY KEY,                 -- the account's name at the relay
    sealed BLOB NOT NULL                     -- sealed, context 'contact/<name>'
);
CREATE TABLE IF NOT EXISTS session_records ( -- one SessionRecord per (contact, device)
    contact TEXT NOT NULL REFERENCES contacts (name) ON DELETE CASCADE,
    device  INTEGER NOT NULL,
    sealed  BLOB NOT NULL,                   -- sealed, context 'record/<contact>/<device>'
    PRIMARY KEY (contact, device)
);
CREATE TABLE IF NOT EXISTS inbox (           -- received plaintexts, once each
    relay_seq    INTEGER PRIMARY KEY,        -- the relay's number: a redelivery is recognised
    from_user    TEXT NOT NULL,
    from_device  INTEGER NOT NULL,
    conversation TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (         -- relay messages refused, so never retried
    relay_seq   INTEGER PRIMARY KEY,
    from_user   TEXT NOT NULL,
    from_device INTEGER NOT NULL,
    reason      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (            -- the user's own messages
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    body         TEXT NOT NULL,
    sent_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (          -- ciphertexts committed but not yet posted
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id BLOB NOT NULL,
    to_user   TEXT NOT NULL,
    to_device INTEGER NOT NULL,
    body      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (          -- this device's Group in each group it is in
    id           BLOB PRIMARY KEY,           -- the 32-byte group id
    name         TEXT NOT NULL,
    admin_user   TEXT NOT NULL,              -- the device that manages the member list
    admin_device INTEGER NOT NULL,
    sealed       BLOB NOT NULL               -- sealed, context 'group/<id>/<admin>'
);
CREATE TABLE IF NOT EXISTS member_chains (   -- one MemberChains per (group, other member)
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member   BLOB NOT NULL,                  -- the member device's identity key
    sealed   BLOB NOT NULL,                  -- sealed, context 'chains/<group id>/<member>'
    PRIMARY KEY (group_id, member)
);
CREATE TABLE IF NOT EXISTS group_owed (      -- what this device owes a member, sent after commit
    group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member   BLOB NOT NULL,                  -- the member device's identity key
    what     INTEGER NOT NULL,               -- 1: the member list (admin), 2: the distribution
    PRIMARY KEY (group_id, member, what)
);
CREATE TABLE IF NOT EXISTS group_outbox (    -- group messages committed but not yet posted
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id  BLOB NOT NULL,
    group_id   BLOB NOT NULL,
    recipients TEXT NOT NULL,                -- 'user#device', space-separated
    body       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS control (         -- pairwise group control messages handled
    relay_seq   INTEGER PRIMARY KEY,         -- (a redelivery is recognised)
    from_user   TEXT NOT NULL,
    from_device INTEGER NOT NULL,
    what        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS awaiting (        -- group messages left at the relay until their
    relay_seq INTEGER PRIMARY KEY,           -- sender's distribution arrives (UnknownChain)
    since     INTEGER NOT NULL
);
";

const DEVICE_CONTEXT: &[u8] = b"device";
const ACCOUNT_CONTEXT: &[u8] = b"account";

fn contact_context(name: &str) -> Vec<u8> {
    format!("contact/{name}").into_bytes()
}

fn record_context(name: &str, device: DeviceId) -> Vec<u8> {
    format!("record/{name}/{device}").into_bytes()
}

fn sql_device(id: DeviceId) -> i64 {
    i64::from(id.get())
}

fn device_from_sql(v: i64) -> Outcome<DeviceId> {
    u32::try_from(v)
        .map(DeviceId::new)
        .map_err(|_| Failure::new("load", "device id out of range"))
}

fn sql<T>(what: &str, r: rusqlite::Result<T>) -> Outcome<T> {
    step(what, r)
}

fn at_relay<T>(what: &str, r: Result<T, RelayError>) -> Outcome<T> {
    step(what, r)
}

// Rows. Each writer takes the connection (or an open transaction) and the storage key.

fn seal<T: Storable>(key: &StorageKey, value: &T, context: &[u8]) -> Outcome<Vec<u8>> {
    step("seal", key.seal(value, context, &mut OsRng))
}

fn put_device(db: &Connection, key: &StorageKey, device: &LocalDevice) -> Outcome {
    let sealed = seal(key, device, DEVICE_CONTEXT)?;
    sql(
        "store the device",
        db.execute(
            "INSERT INTO local_device (singleton, sealed) VALUES (1, ?1)
             ON CONFLICT (singleton) DO UPDATE SET sealed = excluded.sealed",
            [sealed],
        ),
    )
    .map(drop)
}

fn put_account(db: &Connection, key: &StorageKey, account: &Account) -> Outcome {
    let sealed = seal(key, account, ACCOUNT_CONTEXT)?;
    sql(
        "store the account",
        db.execute(
            "INSERT INTO account (singleton, sealed) VALUES (1, ?1)
             ON CONFLICT (singleton) DO UPDATE SET sealed = excluded.sealed",
            [sealed],
        ),
    )
    .map(drop)
}

fn put_contact(db: &Connection, key: &StorageKey, name: &str, contact: &Contact) -> Outcome {
    let sealed = seal(key, contact, &contact_context(name))?;
    sql(
        "store a contact",
        db.execute(
            "INSERT INTO contacts (name, sealed) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
            params![name, sealed],
        ),
    )
    .map(drop)
}

fn put_record(
    db: &Connection,
    key: &StorageKey,
    name: &str,
    contact: &Contact,
    id: DeviceId,
) -> Outcome {
    let record = contact
        .record(id)
        .ok_or_else(|| Failure::new("store a record", format!("{name}#{id} has none")))?;
    let sealed = seal(key, record, &record_context(name, id))?;
    sql(
        "store a record",
        db.execute(
            "INSERT INTO session_records (contact, device, sealed) VALUES (?1, ?2, ?3)
             ON CONFLICT (contact, device) DO UPDATE SET sealed = excluded.sealed",
            params![name, sql_device(id), sealed],
        ),
    )
    .map(drop)
}

/// Stores a contact after a list update, deleting the records of the devices that left the
/// list, in one transaction; then checkpoints (the deleted records held session keys).
fn store_list_update(
    db: &mut Connection,
    key: &StorageKey,
    name: &str,
    contact: &Contact,
    removed: &[DeviceId],
) -> Outcome {
    let tx = sql("begin", db.transaction())?;
    put_contact(&tx, key, name, contact)?;
    for id in removed {
        sql(
            "delete a record",
            tx.execute(
                "DELETE FROM session_records WHERE contact = ?1 AND device = ?2",
                params![name, sql_device(*id)],
            ),
        )?;
    }
    sql("commit", tx.commit())?;
    sql("checkpoint", db::checkpoint(db))
}

/// The first byte of a pairwise plaintext: what the rest is. The client recognises each
/// type; a group's chain keys never travel as text.
const PAYLOAD_TEXT: u8 = 1;
/// A sender-key distribution (SPEC.md §11.2), for the one device it is sent to.
const PAYLOAD_DISTRIBUTION: u8 = 2;
/// A group's member list, from the device that manages it.
const PAYLOAD_MEMBERS: u8 = 3;

/// A text message's plaintext: the conversation it belongs to (the account it was sent to)
/// and the text. Fan-out encrypts one plaintext for every device, the sender's own other
/// devices included: they read the conversation from it.
fn encode_payload(conversation: &str, text: &str) -> Vec<u8> {
    let mut out = vec![PAYLOAD_TEXT];
    // Names are short (the run's own); a real app would use a proper encoding.
    out.push(u8::try_from(conversation.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(conversation.as_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// A pairwise plaintext, decoded.
enum Payload<'a> {
    /// A text message.
    Text { conversation: String, text: String },
    /// A distribution's bytes (borrowed from the zeroized plaintext).
    Distribution(&'a [u8]),
    /// A group's member list.
    Members(MembersNotice),
}

fn decode_payload(bytes: &[u8]) -> Option<Payload<'_>> {
    let (&kind, rest) = bytes.split_first()?;
    match kind {
        PAYLOAD_TEXT => {
            let (&len, rest) = rest.split_first()?;
            if rest.len() < usize::from(len) {
                return None;
            }
            let (conversation, text) = rest.split_at(usize::from(len));
            Some(Payload::Text {
                conversation: String::from_utf8(conversation.to_vec()).ok()?,
                text: String::from_utf8(text.to_vec()).ok()?,
            })
        }
        PAYLOAD_DISTRIBUTION => Some(Payload::Distribution(rest)),
        PAYLOAD_MEMBERS => MembersNotice::decode(rest).map(Payload::Members),
        _ => None,
    }
}

/// Starts a session with device `at` of `contact`, from a bundle the relay hands out, if
/// the device has no sending session or one never answered. Returns whether it started one;
/// a failure is put in `report`.
fn start_session(
    label: &str,
    device: &LocalDevice,
    relay: &mut Relay,
    at: &Address,
    contact: &mut Contact,
    now: u64,
    report: &mut SendReport,
) -> bool {
    let needs_session = match contact.record(at.device).map(|r| r.status(now)) {
        None | Some(RecordStatus::NoSession) => true,
        Some(RecordStatus::Unacknowledged { .. }) => true,
        Some(_) => false,
    };
    if !needs_session {
        return false;
    }
    let bundle = match relay.bundle(at) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.failed.push((at.clone(), e.to_string()));
            return false;
        }
    };
    let bundle = match PreKeyBundle::from_bytes(&bundle) {
        Ok(b) => b,
        Err(e) => {
            report.refused.push((at.clone(), e));
            return false;
        }
    };
    let options = SessionOptions::new();
    match contact.initiate(device, at.device, &bundle, &options, now, &mut OsRng) {
        Ok(_) => {
            say(
                label,
                format!(
                    "started a {} session with {at} from its bundle (one-time prekey: {})",
                    if bundle.is_post_quantum() {
                        "PQXDH"
                    } else {
                        "X3DH"
                    },
                    if bundle.one_time_prekey_id().is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                ),
            );
            report
                .initiated
                .push((at.clone(), bundle.is_post_quantum()));
            true
        }
        Err(e) => {
            say(label, format!("REFUSED the bundle for {at}: {e} ({e:?})"));
            report.refused.push((at.clone(), e));
            false
        }
    }
}

/// What the managing device shows in a QR code for the device it is linking: the account's
/// name, the id it gives the new device and the account key. The new device scans it, pins
/// the key as verified (the physical channel vouches for it) and signs its device link for
/// it.
#[derive(Clone, Debug)]
pub struct LinkOffer {
    /// The account's name at the relay.
    pub user: String,
    /// The id the managing device gives the new device.
    pub device: DeviceId,
    /// The account key, verified by the physical channel.
    pub account_key: AccountKey,
}

/// What a device list fetched from the relay did to a contact.
#[derive(Debug)]
pub enum ListOutcome {
    /// A contact first seen: its account key is now pinned (trust on first use).
    New,
    /// The list is the one held.
    Unchanged,
    /// A newer list, taken.
    Updated {
        /// Devices new to the list.
        added: Vec<DeviceId>,
        /// Devices that left it (their records deleted).
        removed: Vec<DeviceId>,
    },
    /// An older list (a replay): refused, the held one kept.
    Stale {
        /// The counter of the list the relay served.
        offered: u64,
        /// The counter of the list held.
        held: u64,
        /// The library's error.
        error: Error,
    },
    /// A list under another account key: nothing changed; the user must decide.
    IdentityChanged(IdentityChange),
    /// The relay served bytes that are no valid list (a bad signature, the account's or a
    /// device link's): nothing changed, and no contact is made from it.
    Invalid(Error),
}

/// One message posted to the relay.
#[derive(Debug)]
pub struct Posted {
    /// The relay's sequence number for it.
    pub seq: i64,
    /// The device it was sent to.
    pub to: Address,
    /// Whether it is an initial message (the session has no reply yet).
    pub initial: bool,
}

/// A ciphertext the relay refused to queue.
#[derive(Debug)]
pub struct Bounced {
    /// The device it was for.
    pub to: Address,
    /// The relay's reason.
    pub why: String,
    /// The ciphertext.
    pub body: Vec<u8>,
}

/// What [`Client::send`] did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Sending stopped before anything was encrypted: the contact's account key changed.
    pub blocked: Option<IdentityChange>,
    /// Sending stopped before anything was encrypted: the contact's list did not verify.
    pub invalid_list: Option<Error>,
    /// Sessions started, with whether each is post-quantum (PQXDH).
    pub initiated: Vec<(Address, bool)>,
    /// Devices the library refused to start a session with.
    pub refused: Vec<(Address, Error)>,
    /// Devices that got nothing, and why.
    pub failed: Vec<(Address, String)>,
    /// Messages the relay queued.
    pub posted: Vec<Posted>,
    /// Messages the relay refused.
    pub bounced: Vec<Bounced>,
}

/// What [`Client::startup`] did.
#[derive(Debug, Default)]
pub struct StartupReport {
    /// On the device that holds the account, what `Account::adopt` said of the account's
    /// newest published list: `Ok(false)` when the stored account already holds it.
    pub adopted: Option<Result<bool, Error>>,
    /// The outbox left by a crash, posted.
    pub reposted: SendReport,
}

/// A message delivered to the user.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The sending device.
    pub from: Address,
    /// The conversation (for a message from the user's own other device: whom it was
    /// sent to).
    pub conversation: String,
    /// The text.
    pub text: String,
    /// Whether it started a new session.
    pub new_session: bool,
}

/// A message refused.
#[derive(Debug)]
pub struct Dropped {
    /// The sending device, as the relay says.
    pub from: Address,
    /// The library's error, if it was one.
    pub error: Option<Error>,
}

/// What [`Client::sync`] did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Messages delivered, in the order processed.
    pub delivered: Vec<Incoming>,
    /// Messages refused (acknowledged, recorded, never retried).
    pub dropped: Vec<Dropped>,
    /// Messages already delivered before (a redelivery): acknowledged again, not decrypted.
    pub redelivered: Vec<i64>,
    /// Messages left at the relay until the user decides on an identity change.
    pub held: Vec<(Address, IdentityChange)>,
    /// Whether the app crashed during the sync (see [`Client::sync_then_crash`]).
    pub crashed: bool,
    /// Distributions taken into a member's chains: the device that sent it, the outcome.
    pub distributions: Vec<(Address, DistributionOutcome)>,
    /// Member lists applied, by the device that manages the group.
    pub memberships: Vec<Address>,
    /// Group messages left at the relay until their sender's distribution arrives
    /// (`UnknownChain`, of kind `AwaitDistribution`).
    pub awaiting: Vec<(Address, Error)>,
    /// What the device owed other members after the messages (its distribution after
    /// joining or rotating), sent in their pairwise sessions.
    pub sent: SendReport,
}

/// Where [`Client::sync_then_crash`] crashes, at the first message that decrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// After the message decrypted and its rows were written into the open transaction,
    /// before the commit: the transaction never commits.
    BeforeCommit,
    /// After the commit, before the message is acknowledged to the relay.
    BeforeAck,
}

/// One device's app.
pub struct Client {
    label: String,
    path: PathBuf,
    me: Address,
    db: Connection,
    key: StorageKey,
    device: LocalDevice,
    account: Option<Account>,
    /// Every contact by account name, the user's own account included (its other devices).
    contacts: BTreeMap<String, Contact>,
    /// Every group this device is in. Members' chains are loaded from disk when needed.
    groups: BTreeMap<GroupId, GroupEntry>,
    limits: RecordLimits,
}

impl Client {
    fn db_path(dir: &Path, label: &str) -> PathBuf {
        dir.join(format!("{label}.sqlite3"))
    }

    fn create(dir: &Path, keystore: &Keystore, label: &str, user: &str, now: u64) -> Outcome<Self> {
        let key = step("create the storage key", keystore.create(label))?;
        let path = Self::db_path(dir, label);
        let db = sql("open the database", db::open(&path))?;
        sql("create the schema", db.execute_batch(SCHEMA))?;
        let mut device = step("new device", LocalDevice::new(now, &mut OsRng))?;
        step(
            "one-time prekeys",
            device.generate_one_time_prekeys(ONE_TIME_TARGET, &mut OsRng),
        )?;
        step(
            "last-resort post-quantum prekey",
            device.rotate_pq_last_resort_prekey(now, &mut OsRng),
        )?;
        step(
            "post-quantum one-time prekeys",
            device.generate_pq_one_time_prekeys(PQ_ONE_TIME_TARGET, &mut OsRng),
        )?;
        put_device(&db, &key, &device)?;
        say(
            label,
            format!(
                "new device: identity {}…, {} one-time + {} post-quantum one-time prekeys, database {}",
                short_hex(device.identity_key().as_bytes(), 6),
                ONE_TIME_TARGET,
                PQ_ONE_TIME_TARGET,
                path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ),
        );
        Ok(Client {
            label: label.to_owned(),
            path,
            me: Address::new(user, DeviceId::new(0)),
            db,
            key,
            device,
            account: None,
            contacts: BTreeMap::new(),
            groups: BTreeMap::new(),
            limits: RecordLimits::default(),
        })
    }

    /// Registers a new account: a new device (id `device`) that holds the account, its
    /// list (#1) published and its prekeys uploaded.
    pub fn register(
        dir: &Path,
        keystore: &Keystore,
        label: &str,
        user: &str,
        device: DeviceId,
        relay: &mut Relay,
        now: u64,
    ) -> Outcome<Self> {
        let mut client = Self::create(dir, keystore, label, user, now)?;
        client.me.device = device;
        let account = step(
            "new account",
            Account::new(&client.device, device, &mut OsRng),
        )?;
        let me = step(
            "own contact",
            Contact::verified(
                client.device.identity_key(),
                account.account_key(),
                account.device_list(),
                client.limits,
            ),
        )?;
        // The account is stored before its list is published.
        let tx = sql("begin", client.db.transaction())?;
        sql(
            "store meta",
            tx.execute(
                "INSERT INTO meta (singleton, user, device) VALUES (1, ?1, ?2)",
                params![user, sql_device(device)],
            ),
        )?;
        put_account(&tx, &client.key, &account)?;
        put_contact(&tx, &client.key, user, &me)?;
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&client.db))?;
        let list = account.device_list().to_bytes();
        at_relay("publish the list", relay.publish_list(user, &list))?;
        say(
            label,
            format!(
                "registered account {user}: account key {}…, list #1 published",
                short_hex(account.account_key().as_bytes(), 6)
            ),
        );
        client.account = Some(account);
        client.contacts.insert(user.to_owned(), me);
        client.upload_prekeys(relay)?;
        Ok(client)
    }

    /// A new device of an existing account, before it is linked: it has its keys; it scans
    /// the managing device's [`LinkOffer`] and answers with its signed device link
    /// ([`Client::sign_link`]).
    pub fn create_unlinked(
        dir: &Path,
        keystore: &Keystore,
        label: &str,
        user: &str,
        now: u64,
    ) -> Outcome<Self> {
        Self::create(dir, keystore, label, user, now)
    }

    /// Loads the device named `label` from its database: what an app does at every start.
    pub fn open(dir: &Path, keystore: &Keystore, label: &str) -> Outcome<Self> {
        let key = step("load the storage key", keystore.load(label))?;
        let path = Self::db_path(dir, label);
        let db = sql("open the database", db::open(&path))?;
        let (user, device): (String, i64) = sql(
            "load meta",
            db.query_row("SELECT user, device FROM meta", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            }),
        )?;
        let sealed: Vec<u8> = sql(
            "load the device",
            db.query_row("SELECT sealed FROM local_device", [], |r| r.get(0)),
        )?;
        let device_state: LocalDevice = step("open the device", key.open(&sealed, DEVICE_CONTEXT))?;
        let account: Option<Vec<u8>> = sql(
            "load the account",
            db.query_row("SELECT sealed FROM account", [], |r| r.get(0))
                .optional(),
        )?;
        let account: Option<Account> = account
            .map(|sealed| step("open the account", key.open(&sealed, ACCOUNT_CONTEXT)))
            .transpose()?;
        let mut contacts = BTreeMap::new();
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt = sql(
                "load contacts",
                db.prepare("SELECT name, sealed FROM contacts"),
            )?;
            let rows = sql(
                "load contacts",
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))),
            )?;
            sql("load contacts", rows.collect())?
        };
        for (name, sealed) in rows {
            let contact: Contact =
                step("open a contact", key.open(&sealed, &contact_context(&name)))?;
            contacts.insert(name, contact);
        }
        let records: Vec<(String, i64, Vec<u8>)> = {
            let mut stmt = sql(
                "load records",
                db.prepare("SELECT contact, device, sealed FROM session_records"),
            )?;
            let rows = sql(
                "load records",
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))),
            )?;
            sql("load records", rows.collect())?
        };
        let count = records.len();
        for (name, id, sealed) in records {
            let id = device_from_sql(id)?;
            let record: SessionRecord = step(
                "open a record",
                key.open(&sealed, &record_context(&name, id)),
            )?;
            let contact = contacts
                .get_mut(&name)
                .ok_or_else(|| Failure::new("load records", format!("no contact {name}")))?;
            step("restore a record", contact.restore_record(id, record))?;
        }
        let (groups, chains) = groups::load_groups(&db, &key)?;
        say(
            label,
            format!(
                "started from disk: device, {}{} contact(s), {count} session record(s){}",
                if account.is_some() { "account, " } else { "" },
                contacts.len(),
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(", {} group(s), {chains} member chains", groups.len())
                }
            ),
        );
        Ok(Client {
            label: label.to_owned(),
            path,
            me: Address::new(&user, device_from_sql(device)?),
            db,
            key,
            device: device_state,
            account,
            contacts,
            groups,
            limits: RecordLimits::default(),
        })
    }

    /// What an app does after starting: on the device that holds the account, adopting
    /// the account's newest published list (in case the database was restored from an
    /// older copy, SPEC.md §9.3); prekey maintenance on the app's clock (rotations are due
    /// weekly: nothing in this run); re-posting an outbox left by a crash; topping up the
    /// relay's one-time prekeys.
    pub fn startup(&mut self, relay: &mut Relay, now: u64) -> Outcome<StartupReport> {
        let adopted = self.adopt_published(relay)?;
        let report = step(
            "maintain",
            self.device
                .maintain(now, &PreKeyPolicy::default(), &mut OsRng),
        )?;
        if report.changed {
            self.store_device()?;
        }
        if report.needs_upload() {
            self.upload_prekeys(relay)?;
        }
        let mut reposted = SendReport::default();
        self.flush_outbox(relay, &mut reposted)?;
        self.replenish(relay)?;
        Ok(StartupReport { adopted, reposted })
    }

    /// On the device that holds the account: fetches the account's newest published list
    /// and passes it to `Account::adopt` before the account signs anything, so that an
    /// account restored from an older copy never signs a counter it already used. A newer
    /// list is stored with the account and the own contact. A list the account refuses
    /// (older, forked, another account key: the relay misbehaves) changes nothing.
    fn adopt_published(&mut self, relay: &Relay) -> Outcome<Option<Result<bool, Error>>> {
        let Some(account) = self.account.as_mut() else {
            return Ok(None);
        };
        let held = account.device_list().counter();
        let bytes = at_relay("fetch own list", relay.device_list(&self.me.user))?;
        let adopted = DeviceList::from_bytes(&bytes)
            .and_then(|list| account.adopt(&list).map(|newer| (newer, list)));
        match adopted {
            Ok((false, _)) => {
                say(
                    &self.label,
                    format!(
                        "the relay's list for the account is its own #{held}: nothing to adopt"
                    ),
                );
                Ok(Some(Ok(false)))
            }
            Ok((true, list)) => {
                self.store_own_list(&list)?;
                say(
                    &self.label,
                    format!(
                        "the account was older (#{held}): adopted the published list #{}",
                        list.counter()
                    ),
                );
                Ok(Some(Ok(true)))
            }
            Err(error) => {
                say(
                    &self.label,
                    format!("REFUSED the relay's list for the account: {error}; keeping #{held}"),
                );
                Ok(Some(Err(error)))
            }
        }
    }

    /// This device's identity key.
    pub fn identity_key(&self) -> IdentityKey {
        *self.device.identity_key()
    }

    /// The account key of the user's own account.
    pub fn account_key(&self) -> Outcome<AccountKey> {
        self.contacts
            .get(&self.me.user)
            .map(|c| *c.account_key())
            .ok_or_else(|| Failure::new("own account", "not linked"))
    }

    /// The contact `name`, if known.
    pub fn contact(&self, name: &str) -> Option<&Contact> {
        self.contacts.get(name)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn store_device(&mut self) -> Outcome {
        put_device(&self.db, &self.key, &self.device)?;
        sql("checkpoint", db::checkpoint(&self.db))
    }

    /// Uploads the device's upload set, and marks its one-time prekeys published once the
    /// relay confirmed it (SPEC.md §8.5).
    pub fn upload_prekeys(&mut self, relay: &mut Relay) -> Outcome<Queued> {
        let set = step("upload set", self.device.upload_set())?;
        let queued = at_relay("upload prekeys", relay.upload(&self.me, &set.to_bytes()))?;
        if self.device.mark_published(&set) > 0 {
            self.store_device()?;
        }
        say(
            &self.label,
            format!(
                "uploaded prekeys: the relay queues {} one-time + {} post-quantum one-time prekeys",
                queued.classical, queued.post_quantum
            ),
        );
        Ok(queued)
    }

    /// Tops up the one-time prekeys the relay queues when they run low. Returns how many
    /// keys of each kind were generated.
    pub fn replenish(&mut self, relay: &mut Relay) -> Outcome<(usize, usize)> {
        let queued = at_relay("queued prekeys", relay.queued(&self.me))?;
        let classical = if queued.classical < ONE_TIME_LOW {
            ONE_TIME_TARGET - queued.classical
        } else {
            0
        };
        let post_quantum = if queued.post_quantum < PQ_ONE_TIME_LOW {
            PQ_ONE_TIME_TARGET - queued.post_quantum
        } else {
            0
        };
        if classical == 0 && post_quantum == 0 {
            return Ok((0, 0));
        }
        // With the default cap of 200 held keys and these targets nothing is ever evicted;
        // evicted ids would be reported to the relay with the upload (SPEC.md §8.5).
        let generated = step(
            "generate one-time prekeys",
            self.device.generate_one_time_prekeys(classical, &mut OsRng),
        )?;
        let generated_pq = step(
            "generate post-quantum one-time prekeys",
            self.device
                .generate_pq_one_time_prekeys(post_quantum, &mut OsRng),
        )?;
        if !generated.evicted.is_empty() || !generated_pq.evicted.is_empty() {
            return Err(Failure::new("replenish", "unexpected eviction"));
        }
        // The new keys are stored before the relay can hand them out.
        self.store_device()?;
        say(
            &self.label,
            format!(
                "prekeys low at the relay ({} + {} queued): generated {classical} + {post_quantum}",
                queued.classical, queued.post_quantum
            ),
        );
        self.upload_prekeys(relay)?;
        Ok((classical, post_quantum))
    }

    /// Starts linking a new device to the account this (managing) device holds: the
    /// [`LinkOffer`] to show in a QR code, with the next free device id. Nothing changes
    /// until the new device's link comes back ([`Client::add_linked_device`]).
    pub fn offer_link(&self) -> Outcome<LinkOffer> {
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| Failure::new("link", "this device does not hold the account"))?;
        let next = account
            .device_list()
            .devices()
            .map(|(id, _)| id.get())
            .max()
            .unwrap_or(0)
            + 1;
        let offer = LinkOffer {
            user: self.me.user.clone(),
            device: DeviceId::new(next),
            account_key: *account.account_key(),
        };
        say(
            &self.label,
            format!(
                "shows a QR code: account {}, account key {}…, device id {}",
                offer.user,
                short_hex(offer.account_key.as_bytes(), 6),
                offer.device
            ),
        );
        Ok(offer)
    }

    /// On the new device, after scanning `offer`: its device link (SPEC.md §9.4), this
    /// device's consent to be `offer.device` of the account, to show as a QR code.
    pub fn sign_link(&self, offer: &LinkOffer) -> DeviceLink {
        self.device.link(&offer.account_key, offer.device)
    }

    /// On the managing device: parses the link scanned from the new device's QR code,
    /// checks that it is for this account and the offered id, adds the device, stores the
    /// account, then publishes the new list.
    pub fn add_linked_device(
        &mut self,
        relay: &mut Relay,
        offer: &LinkOffer,
        scanned: &[u8],
    ) -> Outcome<DeviceList> {
        let link = step("parse the device link", DeviceLink::from_bytes(scanned))?;
        let account = self
            .account
            .as_mut()
            .ok_or_else(|| Failure::new("link", "this device does not hold the account"))?;
        if link.account_key() != account.account_key() {
            return Err(Failure::new(
                "link",
                "the device link is for another account",
            ));
        }
        if link.device_id() != offer.device {
            return Err(Failure::new(
                "link",
                format!(
                    "the device link is for device {}, not the offered {}",
                    link.device_id(),
                    offer.device
                ),
            ));
        }
        say(
            &self.label,
            format!(
                "the link verifies: signed by identity {}… for account key {}… (this account), device #{}",
                short_hex(link.identity_key().as_bytes(), 6),
                short_hex(link.account_key().as_bytes(), 6),
                link.device_id()
            ),
        );
        let list = step("add the device", account.add_device(&link))?.clone();
        self.own_list_changed(relay, &list)?;
        say(
            &self.label,
            format!(
                "linked device #{}: list #{} (with its link) signed and published",
                link.device_id(),
                list.counter()
            ),
        );
        Ok(list)
    }

    /// Removes a device from the account this (primary) device holds.
    pub fn remove_device(&mut self, relay: &mut Relay, id: DeviceId) -> Outcome<DeviceList> {
        let account = self
            .account
            .as_mut()
            .ok_or_else(|| Failure::new("remove", "this device does not hold the account"))?;
        let list = step("remove the device", account.remove_device(id))?.clone();
        self.own_list_changed(relay, &list)?;
        say(
            &self.label,
            format!(
                "removed device #{id}: list #{} signed and published",
                list.counter()
            ),
        );
        Ok(list)
    }

    /// After the account signed `list`: the account and the own contact are stored (one
    /// transaction), then the list is published.
    fn own_list_changed(&mut self, relay: &mut Relay, list: &DeviceList) -> Outcome {
        self.store_own_list(list)?;
        at_relay(
            "publish the list",
            relay.publish_list(&self.me.user, &list.to_bytes()),
        )
    }

    /// The own contact takes `list`, the account's new list; the account and the own
    /// contact are stored, and the records of removed devices deleted, in one transaction.
    fn store_own_list(&mut self, list: &DeviceList) -> Outcome {
        let user = self.me.user.clone();
        let me = self
            .contacts
            .get_mut(&user)
            .ok_or_else(|| Failure::new("own contact", "missing"))?;
        let removed = match step("own list", me.update_devices(list))? {
            DeviceUpdate::Updated { removed, .. } => removed,
            other => return Err(Failure::new("own list", format!("unexpected {other:?}"))),
        };
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| Failure::new("own list", "no account"))?;
        let tx = sql("begin", self.db.transaction())?;
        put_account(&tx, &self.key, account)?;
        put_contact(&tx, &self.key, &user, me)?;
        for id in &removed {
            sql(
                "delete a record",
                tx.execute(
                    "DELETE FROM session_records WHERE contact = ?1 AND device = ?2",
                    params![user, sql_device(*id)],
                ),
            )?;
        }
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))
    }

    /// Completes linking on the new device: the list the relay serves must be signed by the
    /// account key scanned from the managing device's QR code, and list this device under
    /// its identity key and the offered id.
    pub fn complete_link(&mut self, relay: &mut Relay, offer: &LinkOffer) -> Outcome {
        let bytes = at_relay("fetch own list", relay.device_list(&offer.user))?;
        let list = step("own list", DeviceList::from_bytes(&bytes))?;
        if list.identity(offer.device) != Some(self.device.identity_key()) {
            return Err(Failure::new(
                "link",
                "this device is not in the account's list",
            ));
        }
        let me = step(
            "own contact",
            Contact::verified(
                self.device.identity_key(),
                &offer.account_key,
                &list,
                self.limits,
            ),
        )?;
        self.me = Address::new(&offer.user, offer.device);
        let tx = sql("begin", self.db.transaction())?;
        sql(
            "store meta",
            tx.execute(
                "INSERT INTO meta (singleton, user, device) VALUES (1, ?1, ?2)",
                params![offer.user, sql_device(offer.device)],
            ),
        )?;
        put_contact(&tx, &self.key, &offer.user, &me)?;
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        say(
            &self.label,
            format!(
                "linked as {}: account key {}… pinned as verified (from the QR code), list #{}",
                self.me,
                short_hex(offer.account_key.as_bytes(), 6),
                list.counter()
            ),
        );
        self.contacts.insert(offer.user.clone(), me);
        self.upload_prekeys(relay)?;
        Ok(())
    }

    /// Fetches `user`'s device list from the relay and applies it to the contact: a new
    /// contact is pinned on first use; a newer list is taken (records of removed devices
    /// deleted); an older one is refused; one under another account key changes nothing
    /// and is returned for the user to decide.
    pub fn refresh(&mut self, relay: &Relay, user: &str) -> Outcome<ListOutcome> {
        if user == self.me.user && self.account.is_some() {
            // The primary device signs its own list: it never takes one from the relay.
            return Ok(ListOutcome::Unchanged);
        }
        let bytes = at_relay("fetch a list", relay.device_list(user))?;
        let list = match DeviceList::from_bytes(&bytes) {
            Ok(list) => list,
            Err(error) => {
                say(
                    &self.label,
                    format!("REFUSED {user}'s list: {error} ({error:?}); nothing changed"),
                );
                return Ok(ListOutcome::Invalid(error));
            }
        };
        let Some(contact) = self.contacts.get_mut(user) else {
            let contact = step(
                "new contact",
                Contact::first_use(self.device.identity_key(), &list, self.limits),
            )?;
            put_contact(&self.db, &self.key, user, &contact)?;
            sql("checkpoint", db::checkpoint(&self.db))?;
            say(
                &self.label,
                format!(
                    "new contact {user}: account key {}… pinned on first use (list #{}, {} device(s))",
                    short_hex(list.account_key().as_bytes(), 6),
                    list.counter(),
                    list.len()
                ),
            );
            self.contacts.insert(user.to_owned(), contact);
            return Ok(ListOutcome::New);
        };
        let held = contact.device_list().counter();
        match contact.update_devices(&list) {
            Ok(DeviceUpdate::Unchanged) => Ok(ListOutcome::Unchanged),
            Ok(DeviceUpdate::Updated { added, removed }) => {
                store_list_update(&mut self.db, &self.key, user, contact, &removed)?;
                say(
                    &self.label,
                    format!(
                        "{user}'s list #{held} -> #{}: added {added:?}, removed {removed:?}",
                        list.counter()
                    ),
                );
                if user == self.me.user
                    && !removed.is_empty()
                    && list.identity(self.me.device).is_none()
                {
                    say(&self.label, "this device was removed from its own account");
                }
                Ok(ListOutcome::Updated { added, removed })
            }
            Ok(DeviceUpdate::IdentityChanged(change)) => Ok(ListOutcome::IdentityChanged(change)),
            Ok(other) => Err(Failure::new("list update", format!("unexpected {other:?}"))),
            Err(error @ (Error::StaleDeviceList | Error::ForkedDeviceList)) => {
                say(
                    &self.label,
                    format!(
                        "REFUSED {user}'s list #{} (holding #{held}): {error} ({error:?})",
                        list.counter()
                    ),
                );
                Ok(ListOutcome::Stale {
                    offered: list.counter(),
                    held,
                    error,
                })
            }
            Err(e) => Err(Failure::new("list update", e)),
        }
    }

    /// The user accepted `change` for `user` after comparing safety numbers: the new
    /// account key is pinned and the records of the old devices deleted.
    pub fn accept_identity_change(&mut self, user: &str, change: IdentityChange) -> Outcome {
        let contact = self
            .contacts
            .get_mut(user)
            .ok_or_else(|| Failure::new("identity change", "unknown contact"))?;
        match step("accept the change", contact.accept_identity_change(change))? {
            DeviceUpdate::Updated { added, removed } => {
                store_list_update(&mut self.db, &self.key, user, contact, &removed)?;
                say(
                    &self.label,
                    format!(
                        "accepted {user}'s new account key {}…: devices {added:?} new, old records {removed:?} deleted",
                        short_hex(contact.account_key().as_bytes(), 6)
                    ),
                );
                Ok(())
            }
            other => Err(Failure::new(
                "identity change",
                format!("unexpected {other:?}"),
            )),
        }
    }

    /// The users compared the safety number of `compared` (the account key the
    /// verification screen showed) in person, and it matched. The library's refusal
    /// (`IdentityMismatch`: another key was pinned since the screen was shown) is returned
    /// as `Ok(Err(..))`, with nothing changed.
    pub fn mark_verified(
        &mut self,
        user: &str,
        compared: &AccountKey,
    ) -> Outcome<Result<(), Error>> {
        let contact = self
            .contacts
            .get_mut(user)
            .ok_or_else(|| Failure::new("verify", "unknown contact"))?;
        if let Err(error) = contact.mark_verified(compared) {
            say(
                &self.label,
                format!("NOT VERIFIED: {error} ({error:?}); {user} must be verified again"),
            );
            return Ok(Err(error));
        }
        put_contact(&self.db, &self.key, user, contact)?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        say(
            &self.label,
            format!(
                "{user}'s account key {}… marked verified",
                short_hex(compared.as_bytes(), 6)
            ),
        );
        Ok(Ok(()))
    }

    /// Sends `text` to `to`: refreshes both device lists (the contact's and the user's
    /// own), then [`Client::compose`]s. An identity change of the contact blocks sending.
    pub fn send(
        &mut self,
        relay: &mut Relay,
        to: &str,
        text: &str,
        now: u64,
    ) -> Outcome<SendReport> {
        let own = self.me.user.clone();
        match self.refresh(relay, to)? {
            ListOutcome::IdentityChanged(change) => {
                say(
                    &self.label,
                    format!("NOT SENT: {to}'s account key changed; the user must decide"),
                );
                return Ok(SendReport {
                    blocked: Some(change),
                    ..SendReport::default()
                });
            }
            ListOutcome::Invalid(error) if !self.contacts.contains_key(to) => {
                say(
                    &self.label,
                    format!("NOT SENT: {to}'s list does not verify"),
                );
                return Ok(SendReport {
                    invalid_list: Some(error),
                    ..SendReport::default()
                });
            }
            _ => {}
        }
        match self.refresh(relay, &own)? {
            ListOutcome::IdentityChanged(_) => {
                return Err(Failure::new("send", "own account key changed"))
            }
            ListOutcome::Invalid(error) => {
                return Err(Failure::new("send", format!("own list invalid: {error}")))
            }
            _ => {}
        }
        self.compose(relay, to, text, now)
    }

    /// Encrypts `text` to every device of `to` and of the user's own account (but this
    /// one) with the device lists held, starting sessions where needed, commits, then
    /// posts. (A stolen device's app, patched to skip [`Client::send`]'s list checks, would
    /// call this directly.)
    pub fn compose(
        &mut self,
        relay: &mut Relay,
        to: &str,
        text: &str,
        now: u64,
    ) -> Outcome<SendReport> {
        let own = self.me.user.clone();
        if to == own {
            return Err(Failure::new("send", "notes to self are not supported"));
        }
        let mut peer = self
            .contacts
            .remove(to)
            .ok_or_else(|| Failure::new("send", format!("unknown contact {to}")))?;
        let mut mine = self.contacts.remove(&own);
        let mut report = SendReport::default();
        let result = self.compose_with(
            relay,
            (to, &mut peer),
            (&own, mine.as_mut()),
            text,
            now,
            &mut report,
        );
        self.contacts.insert(to.to_owned(), peer);
        if let Some(mine) = mine {
            self.contacts.insert(own, mine);
        }
        result?;
        self.flush_outbox(relay, &mut report)?;
        Ok(report)
    }

    fn compose_with(
        &mut self,
        relay: &mut Relay,
        (to, peer): (&str, &mut Contact),
        (own, mine): (&str, Option<&mut Contact>),
        text: &str,
        now: u64,
        report: &mut SendReport,
    ) -> Outcome {
        let local = *self.device.identity_key();
        let mut targets: Vec<(&str, &mut Contact)> = vec![(to, peer)];
        if let Some(mine) = mine {
            targets.push((own, mine));
        }
        let mut touched: BTreeSet<(String, DeviceId)> = BTreeSet::new();
        // Start a session with every device that has none (or whose session was never
        // answered), from a bundle the relay hands out.
        for (name, contact) in targets.iter_mut() {
            let devices: Vec<DeviceId> = contact
                .device_list()
                .devices()
                .filter(|(_, key)| **key != local)
                .map(|(id, _)| id)
                .collect();
            for id in devices {
                let at = Address::new(name, id);
                if start_session(&self.label, &self.device, relay, &at, contact, now, report) {
                    touched.insert((name.to_string(), id));
                }
            }
        }
        let payload = encode_payload(to, text);
        let peer_key = *targets[0].1.account_key();
        let deliveries = {
            let mut contacts: Vec<&mut Contact> =
                targets.iter_mut().map(|(_, c)| &mut **c).collect();
            step(
                "encrypt",
                encrypt_to_devices(&mut contacts, &payload, &mut OsRng),
            )?
        };
        // One transaction: the contacts, every record that changed, the ciphertexts in the
        // outbox and the sent message. Nothing leaves before it commits.
        let tx = sql("begin", self.db.transaction())?;
        let mut outbox = Vec::new();
        for delivery in deliveries {
            let name = if delivery.account == peer_key {
                to
            } else {
                own
            };
            let at = Address::new(name, delivery.device);
            match delivery.result {
                Ok(body) => {
                    touched.insert((name.to_owned(), delivery.device));
                    outbox.push((at, body));
                }
                Err(e) => {
                    if !report.refused.iter().any(|(a, _)| *a == at)
                        && !report.failed.iter().any(|(a, _)| *a == at)
                    {
                        report.failed.push((at, e.to_string()));
                    }
                }
            }
        }
        for (name, contact) in &targets {
            put_contact(&tx, &self.key, name, contact)?;
        }
        for (name, id) in &touched {
            let contact = targets
                .iter()
                .find(|(n, _)| *n == name.as_str())
                .map(|(_, c)| &**c)
                .ok_or_else(|| Failure::new("store", "lost contact"))?;
            put_record(&tx, &self.key, name, contact, *id)?;
        }
        for (at, body) in &outbox {
            let mut client_id = [0u8; 16];
            step("message id", OsRng.try_fill_bytes(&mut client_id))?;
            sql(
                "queue in the outbox",
                tx.execute(
                    "INSERT INTO outbox (client_id, to_user, to_device, body) VALUES (?1, ?2, ?3, ?4)",
                    params![client_id.as_slice(), at.user, sql_device(at.device), body],
                ),
            )?;
        }
        if !outbox.is_empty() {
            sql(
                "store the sent message",
                tx.execute(
                    "INSERT INTO sent (conversation, body, sent_at) VALUES (?1, ?2, ?3)",
                    params![to, text, db::to_sql(now)],
                ),
            )?;
        }
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))
    }

    /// Posts the outbox (and the group outbox) to the relay, emptying it.
    fn flush_outbox(&mut self, relay: &mut Relay, report: &mut SendReport) -> Outcome {
        // (row id, client id, recipient user, recipient device, ciphertext)
        type Row = (i64, Vec<u8>, String, i64, Vec<u8>);
        let rows: Vec<Row> = {
            let mut stmt = sql(
                "read the outbox",
                self.db.prepare(
                    "SELECT id, client_id, to_user, to_device, body FROM outbox ORDER BY id",
                ),
            )?;
            let rows = sql(
                "read the outbox",
                stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                }),
            )?;
            sql("read the outbox", rows.collect())?
        };
        for (id, client_id, user, device, body) in rows {
            let to = Address::new(&user, device_from_sql(device)?);
            let initial = matches!(Message::parse(&body), Ok(Message::Initial(_)));
            match relay.post(&self.me, &to, &client_id, &body) {
                Ok(seq) => {
                    say(
                        &self.label,
                        format!(
                            "-> {to:<8} {} message, {} bytes",
                            if initial { "initial" } else { "normal " },
                            body.len()
                        ),
                    );
                    report.posted.push(Posted { seq, to, initial });
                }
                Err(RelayError::Refused(why)) => {
                    say(&self.label, format!("-> {to:<8} BOUNCED: {why}"));
                    report.bounced.push(Bounced { to, why, body });
                }
                Err(e) => return Err(Failure::new("post", e)),
            }
            sql(
                "empty the outbox",
                self.db.execute("DELETE FROM outbox WHERE id = ?1", [id]),
            )?;
        }
        self.flush_group_outbox(relay, report)?;
        // Not secret (ciphertexts), but the log is kept empty between operations.
        sql("checkpoint", db::checkpoint(&self.db))
    }

    /// Fetches and processes this device's mailbox.
    pub fn sync(&mut self, relay: &mut Relay, now: u64) -> Outcome<SyncReport> {
        self.sync_inner(relay, now, None)
    }

    /// As [`Client::sync`], but the app crashes at `crash` on the first message that
    /// decrypts: the client is consumed, and every in-memory state (the decrypted record,
    /// the device that consumed a one-time prekey, the plaintext) is dropped unwritten.
    pub fn sync_then_crash(
        mut self,
        relay: &mut Relay,
        now: u64,
        crash: Crash,
    ) -> Outcome<SyncReport> {
        let report = self.sync_inner(relay, now, Some(crash))?;
        say(
            &self.label,
            "*** CRASH: the app dies; its memory is gone ***",
        );
        drop(self);
        Ok(report)
    }

    fn sync_inner(
        &mut self,
        relay: &mut Relay,
        now: u64,
        crash: Option<Crash>,
    ) -> Outcome<SyncReport> {
        let mut report = SyncReport::default();
        loop {
            // A group message waiting for its distribution is tried again in a second pass
            // when a distribution arrived later in the same mailbox.
            report.awaiting.clear();
            let added = report.distributions.len();
            for envelope in at_relay("fetch the mailbox", relay.fetch(&self.me))? {
                if self.seen(&envelope)? {
                    say(
                        &self.label,
                        format!(
                            "<- {} message {} again: already stored, acknowledged without decrypting",
                            envelope.from, envelope.seq
                        ),
                    );
                    at_relay("ack", relay.ack(&self.me, envelope.seq))?;
                    report.redelivered.push(envelope.seq);
                    continue;
                }
                match envelope.kind {
                    Kind::Direct => {
                        if self.receive_one(relay, &envelope, now, crash, &mut report)? {
                            report.crashed = true;
                            return Ok(report);
                        }
                    }
                    Kind::Group => self.receive_group(relay, &envelope, now, &mut report)?,
                }
            }
            if report.awaiting.is_empty() || report.distributions.len() == added {
                break;
            }
        }
        report.sent = self.flush_owed(relay, now)?;
        Ok(report)
    }

    /// Whether the message was handled before (delivered, refused, or a control message).
    fn seen(&self, envelope: &Envelope) -> Outcome<bool> {
        let seen: i64 = sql(
            "look up the message",
            self.db.query_row(
                "SELECT (SELECT COUNT(*) FROM inbox WHERE relay_seq = ?1)
                      + (SELECT COUNT(*) FROM dropped WHERE relay_seq = ?1)
                      + (SELECT COUNT(*) FROM control WHERE relay_seq = ?1)",
                [envelope.seq],
                |r| r.get(0),
            ),
        )?;
        Ok(seen > 0)
    }

    /// Refuses a message for `error`: records its sequence number (so it is never retried),
    /// then acknowledges it.
    fn drop_message(
        &mut self,
        relay: &mut Relay,
        envelope: &Envelope,
        error: Error,
        report: &mut SyncReport,
    ) -> Outcome {
        let from = &envelope.from;
        let tx = sql("begin", self.db.transaction())?;
        sql(
            "stop waiting",
            tx.execute("DELETE FROM awaiting WHERE relay_seq = ?1", [envelope.seq]),
        )?;
        sql(
            "record the drop",
            tx.execute(
                "INSERT INTO dropped (relay_seq, from_user, from_device, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    envelope.seq,
                    from.user,
                    sql_device(from.device),
                    error.to_string()
                ],
            ),
        )?;
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        at_relay("ack", relay.ack(&self.me, envelope.seq))?;
        say(
            &self.label,
            format!(
                "<- {from} REFUSED: {error} ({error:?}, {:?}); dropped",
                error.kind()
            ),
        );
        report.dropped.push(Dropped {
            from: from.clone(),
            error: Some(error),
        });
        Ok(())
    }

    /// Processes one message; returns whether the app crashed.
    fn receive_one(
        &mut self,
        relay: &mut Relay,
        envelope: &Envelope,
        now: u64,
        crash: Option<Crash>,
        report: &mut SyncReport,
    ) -> Outcome<bool> {
        let from = &envelope.from;
        if !self.contacts.contains_key(&from.user) {
            if let ListOutcome::Invalid(error) = self.refresh(relay, &from.user)? {
                // No contact is made from a list that does not verify: the message is
                // refused with the list's error.
                self.drop_message(relay, envelope, error, report)?;
                return Ok(false);
            }
        }
        let mut refreshed = false;
        let received = loop {
            let contact = self
                .contacts
                .get_mut(&from.user)
                .ok_or_else(|| Failure::new("receive", "no contact"))?;
            let options = SessionOptions::new();
            match contact.receive(&mut self.device, from.device, &envelope.body, &options, now) {
                Ok(received) => break received,
                // The sender's device is not in the list held, or its identity is not the
                // listed one: the list may be out of date. Fetch it once and retry.
                Err(Error::UnknownDevice(_) | Error::IdentityMismatch) if !refreshed => {
                    refreshed = true;
                    if let ListOutcome::IdentityChanged(change) = self.refresh(relay, &from.user)? {
                        say(
                            &self.label,
                            format!(
                                "<- {from} held: {}'s account key changed; the user must decide",
                                from.user
                            ),
                        );
                        report.held.push((from.clone(), change));
                        return Ok(false);
                    }
                }
                Err(error) => {
                    self.drop_message(relay, envelope, error, report)?;
                    return Ok(false);
                }
            }
        };
        // The sender of a group control message is the remote identity of the pairwise
        // session that decrypted it, never a field of the message.
        let sender = self
            .contacts
            .get(&from.user)
            .and_then(|c| c.record(from.device))
            .map(|r| *r.remote_identity())
            .ok_or_else(|| Failure::new("receive", "no record"))?;
        let mut received = received;
        // A distribution carries a chain key: the plaintext is zeroized when dropped.
        let plaintext = Zeroizing::new(std::mem::take(&mut received.plaintext));
        let own = from.user == self.me.user;
        let effect = match decode_payload(&plaintext) {
            Some(Payload::Text { conversation, text }) if own || conversation == self.me.user => {
                Effect::Text { conversation, text }
            }
            Some(Payload::Text { .. }) | None => Effect::Refused {
                error: None,
                reason: String::from("malformed or misaddressed payload"),
            },
            Some(Payload::Distribution(bytes)) => self.take_distribution(&sender, bytes)?,
            Some(Payload::Members(notice)) => self.apply_members(relay, from, notice)?,
        };
        let contact = self
            .contacts
            .get(&from.user)
            .ok_or_else(|| Failure::new("receive", "no contact"))?;
        // One transaction: the record first, then the device if the message started a new
        // session (SPEC.md §8.4: never the device alone), and what the message brought with
        // the relay's sequence number (SPEC.md §6.5: once the record is saved the message is
        // refused as already received, so its content must not be saved later): the
        // plaintext, or a member's chains, or the group's new state.
        let tx = sql("begin", self.db.transaction())?;
        put_record(&tx, &self.key, &from.user, contact, from.device)?;
        if received.new_session {
            put_device(&tx, &self.key, &self.device)?;
        }
        groups::write_effect(&tx, &self.key, &self.groups, envelope, &effect, now)?;
        if crash == Some(Crash::BeforeCommit) {
            say(
                &self.label,
                format!(
                    "<- {from} decrypted{} and written into the open transaction, not committed",
                    if received.new_session {
                        " (new session: a one-time prekey consumed in memory)"
                    } else {
                        ""
                    }
                ),
            );
            // Dropping the transaction rolls it back, as SQLite's recovery does after a
            // real crash.
            drop(tx);
            return Ok(true);
        }
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        if crash == Some(Crash::BeforeAck) {
            say(
                &self.label,
                format!("<- {from} decrypted and committed; crashing before the ack"),
            );
            return Ok(true);
        }
        at_relay("ack", relay.ack(&self.me, envelope.seq))?;
        let (conversation, text) = match effect {
            Effect::Text { conversation, text } => (conversation, text),
            other => {
                self.report_effect(from, other, received.new_session, report);
                self.after_receive(relay, received.notice, received.new_session, now)?;
                return Ok(false);
            }
        };
        let contact = self
            .contacts
            .get(&from.user)
            .ok_or_else(|| Failure::new("receive", "no contact"))?;
        let post_quantum = contact
            .record(from.device)
            .and_then(|r| r.sessions().find(|s| s.id() == received.session_id))
            .is_some_and(|s| s.is_post_quantum());
        let shown = if own {
            format!("(my device) to {conversation}")
        } else {
            String::from("to me")
        };
        say(
            &self.label,
            format!(
                "<- {from} {shown}: \"{text}\"{}{}",
                if received.new_session {
                    " [new session]"
                } else {
                    ""
                },
                if post_quantum { " [PQXDH]" } else { "" }
            ),
        );
        report.delivered.push(Incoming {
            from: from.clone(),
            conversation,
            text,
            new_session: received.new_session,
        });
        self.after_receive(relay, received.notice, received.new_session, now)?;
        Ok(false)
    }

    /// After a message's commit: acts on the device's store notice, and tops up one-time
    /// prekeys after a new session consumed one.
    fn after_receive(
        &mut self,
        relay: &mut Relay,
        notice: Option<StoreNotice>,
        new_session: bool,
        now: u64,
    ) -> Outcome {
        if let Some(notice) = notice {
            // The current signed prekey's replay records filled (SPEC.md §8.3): act on the
            // notice after persisting, persist again, upload the new signed prekey.
            match notice {
                StoreNotice::SignedPreKeySwitched { .. } => {
                    step(
                        "maintain",
                        self.device
                            .maintain(now, &PreKeyPolicy::default(), &mut OsRng),
                    )?;
                }
                _ => {
                    step("rotate", self.device.rotate_signed_prekey(now, &mut OsRng))?;
                }
            }
            self.store_device()?;
            self.upload_prekeys(relay)?;
        }
        if new_session {
            self.replenish(relay)?;
        }
        Ok(())
    }

    /// Every delivered message, oldest first: (sender, conversation, text).
    pub fn inbox(&self) -> Outcome<Vec<(String, String, String)>> {
        let mut stmt = sql(
            "read the inbox",
            self.db.prepare(
                "SELECT from_user, from_device, conversation, body FROM inbox ORDER BY relay_seq",
            ),
        )?;
        let rows = sql(
            "read the inbox",
            stmt.query_map([], |r| {
                Ok((
                    format!("{}#{}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?),
                    r.get(2)?,
                    r.get(3)?,
                ))
            }),
        )?;
        sql("read the inbox", rows.collect())
    }

    /// The size of the database's write-ahead log: 0 after every checkpoint.
    pub fn wal_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    /// How many session records of `contact` are stored on disk.
    pub fn stored_records(&self, contact: &str) -> Outcome<usize> {
        let n: i64 = sql(
            "count records",
            self.db.query_row(
                "SELECT COUNT(*) FROM session_records WHERE contact = ?1",
                [contact],
                |r| r.get(0),
            ),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
