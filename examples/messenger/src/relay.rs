//! The relay: an in-process stand-in for the messaging server, with a SQLite database of its
//! own. It holds only public data and ciphertexts:
//!
//! * each account's device list (the newest one it was given, and every older one: an
//!   attack step makes it serve an old one);
//! * each device's published prekeys, applied and handed out by the rules of SPEC.md §8.5
//!   (one-time prekeys queued, each handed out once, atomically);
//! * a mailbox per device: a message stays until the recipient device acknowledges it. A
//!   group message is posted once with its recipients, and the relay puts the same bytes in
//!   each recipient's mailbox ([`Relay::post_group`]); the relay knows no group, only who
//!   the sender addressed.
//!
//! How a real server authenticates the device that uploads or sends (a registration token,
//! a phone number check) is out of scope: the relay trusts the address a client names. The
//! clients never trust the relay: every list, bundle and message is verified end to end.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use doubleratchet::{
    DeviceId, DeviceList, OneTimePreKeyPublic, PqPreKeyPublic, PreKeyBundle, SignedPreKeyPublic,
    UploadSet,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::db::{self, from_sql, to_sql};

/// A device's address at the relay: its account (a user name, which the relay maps to the
/// account's device list) and its device id. Shown as `user#device`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The account's name at the relay.
    pub user: String,
    /// The device within the account.
    pub device: DeviceId,
}

impl Address {
    /// `user`'s device `device`.
    pub fn new(user: &str, device: DeviceId) -> Self {
        Address {
            user: user.to_owned(),
            device,
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.user, self.device)
    }
}

/// Why the relay refused a request.
#[derive(Debug)]
pub enum RelayError {
    /// A rule of the relay (SPEC.md §8.5, or the mailbox rules) refused it.
    Refused(String),
    /// The uploaded data did not parse or verify.
    Invalid(doubleratchet::Error),
    /// The relay's database failed.
    Database(rusqlite::Error),
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayError::Refused(why) => write!(f, "relay refused: {why}"),
            RelayError::Invalid(e) => write!(f, "relay refused invalid data: {e}"),
            RelayError::Database(e) => write!(f, "relay database: {e}"),
        }
    }
}

impl From<rusqlite::Error> for RelayError {
    fn from(e: rusqlite::Error) -> Self {
        RelayError::Database(e)
    }
}

impl From<doubleratchet::Error> for RelayError {
    fn from(e: doubleratchet::Error) -> Self {
        RelayError::Invalid(e)
    }
}

fn refused<T>(why: impl Into<String>) -> Result<T, RelayError> {
    Err(RelayError::Refused(why.into()))
}

/// What a mailbox entry is: the relay tells the recipient which decryption applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A message of a pairwise session, encrypted for this device alone.
    Direct,
    /// A group message (sender keys): the same bytes went to every recipient.
    Group,
}

impl Kind {
    fn to_sql(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Group => "group",
        }
    }

    fn from_sql(s: &str) -> Result<Self, RelayError> {
        match s {
            "direct" => Ok(Kind::Direct),
            "group" => Ok(Kind::Group),
            _ => refused("corrupt mailbox kind"),
        }
    }
}

/// A message waiting in a mailbox.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The relay's sequence number: unique, never reused; the recipient acknowledges by it
    /// and records it to recognise a message delivered twice.
    pub seq: i64,
    /// A pairwise or a group message.
    pub kind: Kind,
    /// Who sent it, as the relay says (the recipient checks it against the sender's
    /// device list and the session's identity key).
    pub from: Address,
    /// The ciphertext.
    pub body: Vec<u8>,
}

/// What [`Relay::post_group`] did for each recipient: the sequence number of its copy, or
/// why the relay refused it.
pub type FanOut = Vec<(Address, Result<i64, String>)>;

/// How many one-time prekeys the relay still queues for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Classical (X25519) one-time prekeys.
    pub classical: usize,
    /// Post-quantum (ML-KEM) one-time prekeys.
    pub post_quantum: usize,
}

/// Misbehaviour and network faults the run switches on to show the clients' defences.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Serve this older counter's list instead of the newest (a replayed list).
    pub serve_list_counter: Option<u64>,
    /// Hand out bundles without their post-quantum prekey (a downgrade).
    pub strip_post_quantum: bool,
    /// Deliver mailboxes newest first (out of order).
    pub newest_first: bool,
    /// Messages (sequence numbers) the network holds back: not delivered until taken out
    /// of the set, then delivered after the ones that overtook them.
    pub held_back: BTreeSet<i64>,
}

const KIND_SIGNED: &str = "signed";
const KIND_PQ_LAST_RESORT: &str = "pq-last-resort";
const KIND_ONE_TIME: &str = "one-time";
const KIND_PQ_ONE_TIME: &str = "pq-one-time";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    user        TEXT PRIMARY KEY,
    account_key BLOB NOT NULL,
    counter     INTEGER NOT NULL,
    list        BLOB NOT NULL              -- the newest device list, as published (signed)
);
CREATE TABLE IF NOT EXISTS list_history (   -- every list ever published (the attack serves one)
    user        TEXT NOT NULL,
    account_key BLOB NOT NULL,
    counter     INTEGER NOT NULL,
    list        BLOB NOT NULL,
    PRIMARY KEY (user, account_key, counter)
);
CREATE TABLE IF NOT EXISTS prekey_devices ( -- SPEC.md 8.5 'state per device'
    user           TEXT NOT NULL,
    device         INTEGER NOT NULL,
    identity       BLOB NOT NULL,
    signed         BLOB NOT NULL,          -- current signed prekey part (SPEC.md 5.9)
    pq_last_resort BLOB,                   -- current last-resort ML-KEM part (SPEC.md 5.11)
    PRIMARY KEY (user, device)
);
CREATE TABLE IF NOT EXISTS replaced_prekeys ( -- ids of signed / last-resort keys replaced
    user   TEXT NOT NULL,
    device INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    id     INTEGER NOT NULL,
    PRIMARY KEY (user, device, kind, id)
);
CREATE TABLE IF NOT EXISTS one_time_queue ( -- queued one-time prekeys, oldest first (seq)
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    user   TEXT NOT NULL,
    device INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    id     INTEGER NOT NULL,
    part   BLOB NOT NULL,
    UNIQUE (user, device, kind, id)
);
CREATE TABLE IF NOT EXISTS spent_one_time ( -- one-time ids handed out or dropped
    user   TEXT NOT NULL,
    device INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    id     INTEGER NOT NULL,
    PRIMARY KEY (user, device, kind, id)
);
CREATE TABLE IF NOT EXISTS mailbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    to_user     TEXT NOT NULL,
    to_device   INTEGER NOT NULL,
    from_user   TEXT NOT NULL,
    from_device INTEGER NOT NULL,
    client_id   BLOB NOT NULL,              -- the sender's id for the message: a resend is a no-op
    kind        TEXT NOT NULL,              -- 'direct' (pairwise) or 'group' (sender keys)
    body        BLOB NOT NULL,
    UNIQUE (from_user, from_device, client_id, to_user, to_device)
);
";

/// Queues `body` in `to`'s mailbox (a listed device), idempotent by the sender's
/// `client_id`; returns its sequence number.
fn deliver(
    db: &Connection,
    kind: Kind,
    from: &Address,
    to: &Address,
    client_id: &[u8],
    body: &[u8],
) -> Result<i64, RelayError> {
    if Relay::listed_identity(db, to)?.is_none() {
        return refused(format!("recipient {to} is not a listed device"));
    }
    db.execute(
        "INSERT OR IGNORE INTO mailbox
         (from_user, from_device, client_id, to_user, to_device, kind, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            from.user,
            device_sql(from.device),
            client_id,
            to.user,
            device_sql(to.device),
            kind.to_sql(),
            body
        ],
    )?;
    Ok(db.query_row(
        "SELECT seq FROM mailbox WHERE from_user = ?1 AND from_device = ?2
         AND client_id = ?3 AND to_user = ?4 AND to_device = ?5",
        params![
            from.user,
            device_sql(from.device),
            client_id,
            to.user,
            device_sql(to.device)
        ],
        |r| r.get(0),
    )?)
}

/// A device's stored identity key, signed prekey part and last-resort post-quantum part.
type HeldPrekeys = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn held_prekeys(
    db: &Connection,
    user: &str,
    device: i64,
) -> Result<Option<HeldPrekeys>, RelayError> {
    Ok(db
        .query_row(
            "SELECT identity, signed, pq_last_resort FROM prekey_devices
             WHERE user = ?1 AND device = ?2",
            params![user, device],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

/// The relay.
pub struct Relay {
    db: Connection,
    /// What the relay does wrong, switched on by the run.
    pub faults: Faults,
}

fn device_sql(id: DeviceId) -> i64 {
    i64::from(id.get())
}

impl Relay {
    /// Opens (or creates) the relay's database at `path`.
    pub fn open(path: &Path) -> Result<Self, RelayError> {
        let db = db::open(path)?;
        db.execute_batch(SCHEMA)?;
        Ok(Relay {
            db,
            faults: Faults::default(),
        })
    }

    /// Publishes `user`'s device list. The list must verify; under the account key the
    /// relay holds for `user`, its counter must be higher than the held one (a replayed
    /// upload is refused). A list under another account key re-registers the user (a real
    /// server would first check who registers: a phone number, an invitation): everything
    /// of the old account's devices is dropped. Devices that left the list lose their
    /// prekeys and mailboxes.
    pub fn publish_list(&mut self, user: &str, bytes: &[u8]) -> Result<(), RelayError> {
        let list = DeviceList::from_bytes(bytes)?;
        let key = list.account_key().to_bytes();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held: Option<(Vec<u8>, i64)> = tx
            .query_row(
                "SELECT account_key, counter FROM accounts WHERE user = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match held {
            Some((held_key, counter)) if held_key == key && from_sql(counter) >= list.counter() => {
                return refused(format!(
                    "list #{} is not newer than #{}",
                    list.counter(),
                    from_sql(counter)
                ));
            }
            Some((held_key, _)) if held_key == key => {}
            Some(_) => {
                // Re-registration under a new account key.
                for table in [
                    "prekey_devices",
                    "replaced_prekeys",
                    "one_time_queue",
                    "spent_one_time",
                ] {
                    tx.execute(&format!("DELETE FROM {table} WHERE user = ?1"), [user])?;
                }
                tx.execute("DELETE FROM mailbox WHERE to_user = ?1", [user])?;
            }
            None => {}
        }
        // Devices no longer listed, or listed with another identity key: drop their state.
        let devices: Vec<(i64, Vec<u8>)> = {
            let mut stmt =
                tx.prepare("SELECT device, identity FROM prekey_devices WHERE user = ?1")?;
            let rows = stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (device, identity) in devices {
            let listed = u32::try_from(device)
                .ok()
                .and_then(|d| list.identity(DeviceId::new(d)))
                .is_some_and(|k| k.as_bytes().as_slice() == identity.as_slice());
            if !listed {
                for table in [
                    "prekey_devices",
                    "replaced_prekeys",
                    "one_time_queue",
                    "spent_one_time",
                ] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE user = ?1 AND device = ?2"),
                        params![user, device],
                    )?;
                }
                tx.execute(
                    "DELETE FROM mailbox WHERE to_user = ?1 AND to_device = ?2",
                    params![user, device],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO list_history (user, account_key, counter, list) VALUES (?1, ?2, ?3, ?4)",
            params![user, key.as_slice(), to_sql(list.counter()), bytes],
        )?;
        tx.execute(
            "INSERT INTO accounts (user, account_key, counter, list) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user) DO UPDATE SET account_key = ?2, counter = ?3, list = ?4",
            params![user, key.as_slice(), to_sql(list.counter()), bytes],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Stores `bytes` as `user`'s newest list without verifying anything: what a
    /// compromised relay can do ([`Relay::publish_list`] refuses a list that does not
    /// verify). The clients verify every list they fetch.
    pub fn plant_list(&mut self, user: &str, bytes: &[u8]) -> Result<(), RelayError> {
        let key = bytes.get(2..34).unwrap_or_default();
        self.db.execute(
            "INSERT INTO accounts (user, account_key, counter, list) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (user) DO UPDATE SET account_key = ?2, counter = 0, list = ?3",
            params![user, key, bytes],
        )?;
        Ok(())
    }

    /// The device list of `user`: the newest, or with [`Faults::serve_list_counter`] an
    /// older one of the same account.
    pub fn device_list(&self, user: &str) -> Result<Vec<u8>, RelayError> {
        if let Some(counter) = self.faults.serve_list_counter {
            let old: Option<Vec<u8>> = self
                .db
                .query_row(
                    "SELECT h.list FROM list_history h JOIN accounts a
                     ON a.user = h.user AND a.account_key = h.account_key
                     WHERE h.user = ?1 AND h.counter = ?2",
                    params![user, to_sql(counter)],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(old) = old {
                return Ok(old);
            }
        }
        let list: Option<Vec<u8>> = self
            .db
            .query_row("SELECT list FROM accounts WHERE user = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        list.ok_or_else(|| RelayError::Refused(format!("no account {user}")))
    }

    /// The identity key the newest list of `at.user` gives device `at.device`.
    fn listed_identity(
        tx: &Connection,
        at: &Address,
    ) -> Result<Option<doubleratchet::IdentityKey>, RelayError> {
        let bytes: Option<Vec<u8>> = tx
            .query_row(
                "SELECT list FROM accounts WHERE user = ?1",
                [&at.user],
                |r| r.get(0),
            )
            .optional()?;
        let Some(bytes) = bytes else { return Ok(None) };
        let list = DeviceList::from_bytes(&bytes)?;
        Ok(list.identity(at.device).copied())
    }

    /// Applies an upload set from device `at` by the rules of SPEC.md §8.5, all or
    /// nothing, and returns how many one-time prekeys it now queues for the device. The
    /// device must be in its account's newest list under the set's identity key.
    pub fn upload(&mut self, at: &Address, bytes: &[u8]) -> Result<Queued, RelayError> {
        let set = UploadSet::from_bytes(bytes)?;
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if Self::listed_identity(&tx, at)?.as_ref() != Some(set.identity_key()) {
            return refused(format!(
                "{at} is not listed with this identity key in its account's newest list"
            ));
        }
        let (user, device) = (at.user.as_str(), device_sql(at.device));
        let held = held_prekeys(&tx, user, device)?;
        let known = |kind: &str, id: u64| -> Result<bool, RelayError> {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM replaced_prekeys WHERE user = ?1 AND device = ?2
                 AND kind = ?3 AND id = ?4",
                params![user, device, kind, to_sql(id)],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        };
        let spent_or_queued = |kind: &str, id: u64| -> Result<bool, RelayError> {
            let n: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM spent_one_time WHERE user = ?1 AND device = ?2
                         AND kind = ?3 AND id = ?4)
                      + (SELECT COUNT(*) FROM one_time_queue WHERE user = ?1 AND device = ?2
                         AND kind = ?3 AND id = ?4)",
                params![user, device, kind, to_sql(id)],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        };
        let signed = set.signed_prekey();
        let signed_bytes = signed.to_bytes();
        let last_resort = set.pq_last_resort_prekey();
        let mut replaces_signed = None;
        let mut replaces_last_resort = None;
        if let Some((identity, held_signed, held_last_resort)) = &held {
            // Rule 1: another identity key for the same device is another device.
            if identity.as_slice() != set.identity_key().as_bytes().as_slice() {
                return refused("another identity key for a known device");
            }
            // Rule 2: the signed prekey.
            let current = SignedPreKeyPublic::from_bytes(held_signed)?;
            if current.id() == signed.id() {
                if *held_signed != signed_bytes {
                    return refused("the current signed prekey's id with other bytes");
                }
            } else if known(KIND_SIGNED, signed.id().to_u64())? {
                return refused("a signed prekey that was already replaced (an old set)");
            } else {
                replaces_signed = Some(current.id().to_u64());
            }
            // Rule 3: the last-resort post-quantum prekey.
            if let Some(new) = last_resort {
                let id = new.id().to_u64();
                if spent_or_queued(KIND_PQ_ONE_TIME, id)? || known(KIND_PQ_LAST_RESORT, id)? {
                    return refused("a last-resort post-quantum prekey id already used");
                }
                if let Some(current) = held_last_resort {
                    let current = PqPreKeyPublic::from_bytes(current)?;
                    if current.id() == new.id() {
                        if current.to_bytes() != new.to_bytes() {
                            return refused("the last-resort prekey's id with other bytes");
                        }
                    } else {
                        replaces_last_resort = Some(current.id().to_u64());
                    }
                }
            }
        }
        // Rule 4: one-time prekeys held under the same id must be byte-identical; a
        // post-quantum one-time id must not be a last-resort id.
        let held_part = |kind: &str, id: u64| -> Result<Option<Vec<u8>>, RelayError> {
            Ok(tx
                .query_row(
                    "SELECT part FROM one_time_queue WHERE user = ?1 AND device = ?2
                     AND kind = ?3 AND id = ?4",
                    params![user, device, kind, to_sql(id)],
                    |r| r.get(0),
                )
                .optional()?)
        };
        for key in set.one_time_prekeys() {
            if held_part(KIND_ONE_TIME, key.id().to_u64())?.is_some_and(|p| p != key.to_bytes()) {
                return refused("a queued one-time prekey's id with other bytes");
            }
        }
        let current_last_resort = held
            .as_ref()
            .and_then(|h| h.2.as_ref())
            .map(|b| PqPreKeyPublic::from_bytes(b))
            .transpose()?
            .map(|k| k.id());
        for key in set.pq_one_time_prekeys() {
            let id = key.id().to_u64();
            if held_part(KIND_PQ_ONE_TIME, id)?.is_some_and(|p| p != key.to_bytes()) {
                return refused("a queued post-quantum one-time prekey's id with other bytes");
            }
            if current_last_resort == Some(key.id())
                || last_resort.is_some_and(|k| k.id() == key.id())
                || known(KIND_PQ_LAST_RESORT, id)?
            {
                return refused("a post-quantum one-time prekey with a last-resort id");
            }
        }
        // Apply.
        let last_resort_bytes = match last_resort {
            Some(k) => Some(k.to_bytes()),
            None => held.as_ref().and_then(|h| h.2.clone()),
        };
        tx.execute(
            "INSERT INTO prekey_devices (user, device, identity, signed, pq_last_resort)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user, device) DO UPDATE SET signed = ?4, pq_last_resort = ?5",
            params![
                user,
                device,
                set.identity_key().as_bytes().as_slice(),
                signed_bytes,
                last_resort_bytes
            ],
        )?;
        for (kind, id) in [
            (KIND_SIGNED, replaces_signed),
            (KIND_PQ_LAST_RESORT, replaces_last_resort),
        ] {
            if let Some(id) = id {
                tx.execute(
                    "INSERT OR IGNORE INTO replaced_prekeys (user, device, kind, id)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![user, device, kind, to_sql(id)],
                )?;
            }
        }
        let parts = set
            .one_time_prekeys()
            .iter()
            .map(|k| (KIND_ONE_TIME, k.id().to_u64(), k.to_bytes()))
            .chain(
                set.pq_one_time_prekeys()
                    .iter()
                    .map(|k| (KIND_PQ_ONE_TIME, k.id().to_u64(), k.to_bytes())),
            );
        for (kind, id, part) in parts {
            // Skipped if held (byte-identical, checked above) or handed out or dropped.
            if !spent_or_queued(kind, id)? {
                tx.execute(
                    "INSERT INTO one_time_queue (user, device, kind, id, part)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![user, device, kind, to_sql(id), part],
                )?;
            }
        }
        tx.commit()?;
        self.queued(at)
    }

    /// How many one-time prekeys of each kind the relay queues for device `at`.
    pub fn queued(&self, at: &Address) -> Result<Queued, RelayError> {
        let count = |kind: &str| -> Result<usize, RelayError> {
            let n: i64 = self.db.query_row(
                "SELECT COUNT(*) FROM one_time_queue WHERE user = ?1 AND device = ?2 AND kind = ?3",
                params![at.user, device_sql(at.device), kind],
                |r| r.get(0),
            )?;
            Ok(usize::try_from(n).unwrap_or(0))
        };
        Ok(Queued {
            classical: count(KIND_ONE_TIME)?,
            post_quantum: count(KIND_PQ_ONE_TIME)?,
        })
    }

    /// Hands out a bundle for device `at` (SPEC.md §8.5): the oldest queued one-time prekey
    /// of each kind is taken out of its queue in the same transaction, so no two requests
    /// get the same key; without a one-time post-quantum prekey, the last-resort one.
    pub fn bundle(&mut self, at: &Address) -> Result<Vec<u8>, RelayError> {
        let strip = self.faults.strip_post_quantum;
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (user, device) = (at.user.as_str(), device_sql(at.device));
        let held = held_prekeys(&tx, user, device)?;
        let Some((identity, signed, last_resort)) = held else {
            return refused(format!("no prekeys published for {at}"));
        };
        let identity: [u8; 32] = identity
            .try_into()
            .map_err(|_| RelayError::Refused("corrupt identity".into()))?;
        let identity = doubleratchet::IdentityKey::from_bytes(&identity)?;
        let signed = SignedPreKeyPublic::from_bytes(&signed)?;
        let take = |kind: &str| -> Result<Option<Vec<u8>>, RelayError> {
            let oldest: Option<(i64, i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, id, part FROM one_time_queue
                     WHERE user = ?1 AND device = ?2 AND kind = ?3 ORDER BY seq LIMIT 1",
                    params![user, device, kind],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((seq, id, part)) = oldest else {
                return Ok(None);
            };
            tx.execute("DELETE FROM one_time_queue WHERE seq = ?1", [seq])?;
            tx.execute(
                "INSERT OR IGNORE INTO spent_one_time (user, device, kind, id)
                 VALUES (?1, ?2, ?3, ?4)",
                params![user, device, kind, id],
            )?;
            Ok(Some(part))
        };
        let one_time = take(KIND_ONE_TIME)?
            .map(|p| OneTimePreKeyPublic::from_bytes(&p))
            .transpose()?;
        let mut bundle = PreKeyBundle::assemble(&identity, &signed, one_time.as_ref())?;
        if !strip {
            let pq = match take(KIND_PQ_ONE_TIME)? {
                Some(part) => Some(part),
                None => last_resort,
            };
            if let Some(pq) = pq {
                bundle = bundle.with_post_quantum(&PqPreKeyPublic::from_bytes(&pq)?)?;
            }
        }
        tx.commit()?;
        Ok(bundle.to_bytes())
    }

    /// Posts a message from `from` to `to`. Both must be listed devices (the relay keeps no
    /// mailbox for an unlisted device, and a removed device may no longer send). A message
    /// posted again with the same `client_id` (a resend after a lost response) is not
    /// queued twice. Returns the message's sequence number.
    pub fn post(
        &mut self,
        from: &Address,
        to: &Address,
        client_id: &[u8],
        body: &[u8],
    ) -> Result<i64, RelayError> {
        if Self::listed_identity(&self.db, from)?.is_none() {
            return refused(format!("sender {from} is not a listed device"));
        }
        deliver(&self.db, Kind::Direct, from, to, client_id, body)
    }

    /// Posts one group message from `from` to every device in `to`: the sender uploads it
    /// once and the relay puts the same bytes in each recipient's mailbox, in one
    /// transaction (a resend with the same `client_id` queues nothing twice). The sender
    /// must be a listed device; each recipient too, else that recipient alone is refused.
    /// The relay does not know the group: it cannot tell a member from a removed one, and
    /// does not need to (the members refuse what a removed device sends). Returns each
    /// recipient's sequence number, or why the relay refused it.
    pub fn post_group(
        &mut self,
        from: &Address,
        to: &[Address],
        client_id: &[u8],
        body: &[u8],
    ) -> Result<FanOut, RelayError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if Self::listed_identity(&tx, from)?.is_none() {
            return refused(format!("sender {from} is not a listed device"));
        }
        let mut out = Vec::with_capacity(to.len());
        for at in to {
            let result = match deliver(&tx, Kind::Group, from, at, client_id, body) {
                Ok(seq) => Ok(seq),
                Err(RelayError::Refused(why)) => Err(why),
                Err(e) => return Err(e),
            };
            out.push((at.clone(), result));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Puts a message in `to`'s mailbox as if `from` had sent it, with no check of the
    /// sender: what a compromised relay (or someone holding a removed device's credentials
    /// at a careless one) can do.
    pub fn inject(&mut self, from: &Address, to: &Address, body: &[u8]) -> Result<i64, RelayError> {
        deliver(&self.db, Kind::Direct, from, to, b"injected", body)
    }

    /// Copies message `seq` (its sender, kind and bytes) into `to`'s mailbox as well: what
    /// a compromised relay can do with a group message, to let a device the sender did not
    /// address try it. Returns the copy's sequence number.
    pub fn copy_to(&mut self, seq: i64, to: &Address) -> Result<i64, RelayError> {
        let (user, device, kind, body): (String, i64, String, Vec<u8>) = self.db.query_row(
            "SELECT from_user, from_device, kind, body FROM mailbox WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let device =
            u32::try_from(device).map_err(|_| RelayError::Refused("corrupt device id".into()))?;
        let from = Address::new(&user, DeviceId::new(device));
        let client_id = format!("copy of {seq}");
        deliver(
            &self.db,
            Kind::from_sql(&kind)?,
            &from,
            to,
            client_id.as_bytes(),
            &body,
        )
    }

    /// The messages waiting for device `to`, oldest first (newest first with
    /// [`Faults::newest_first`]), but those the network holds back
    /// ([`Faults::held_back`]). They stay until acknowledged.
    pub fn fetch(&self, to: &Address) -> Result<Vec<Envelope>, RelayError> {
        let order = if self.faults.newest_first {
            "DESC"
        } else {
            "ASC"
        };
        let mut stmt = self.db.prepare(&format!(
            "SELECT seq, kind, from_user, from_device, body FROM mailbox
             WHERE to_user = ?1 AND to_device = ?2 ORDER BY seq {order}"
        ))?;
        let rows = stmt.query_map(params![to.user, device_sql(to.device)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, user, device, body) = row?;
            if self.faults.held_back.contains(&seq) {
                continue;
            }
            let device = u32::try_from(device)
                .map_err(|_| RelayError::Refused("corrupt device id".into()))?;
            out.push(Envelope {
                seq,
                kind: Kind::from_sql(&kind)?,
                from: Address::new(&user, DeviceId::new(device)),
                body,
            });
        }
        Ok(out)
    }

    /// Device `to` acknowledges message `seq`: it is deleted.
    pub fn ack(&mut self, to: &Address, seq: i64) -> Result<(), RelayError> {
        self.db.execute(
            "DELETE FROM mailbox WHERE seq = ?1 AND to_user = ?2 AND to_device = ?3",
            params![seq, to.user, device_sql(to.device)],
        )?;
        Ok(())
    }

    /// Rewrites who sent message `seq`: what a compromised relay can do. The recipient
    /// checks the claimed sender against that account's device list.
    pub fn relabel(&mut self, seq: i64, from: &Address) -> Result<(), RelayError> {
        self.db.execute(
            "UPDATE mailbox SET from_user = ?1, from_device = ?2 WHERE seq = ?3",
            params![from.user, device_sql(from.device), seq],
        )?;
        Ok(())
    }

    /// The network loses message `seq`: it never arrives.
    pub fn lose(&mut self, seq: i64) -> Result<(), RelayError> {
        self.db
            .execute("DELETE FROM mailbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// How many messages wait for device `to`.
    pub fn pending(&self, to: &Address) -> Result<usize, RelayError> {
        let n: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM mailbox WHERE to_user = ?1 AND to_device = ?2",
            params![to.user, device_sql(to.device)],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
