//! Group messaging with sender keys (SPEC.md §11) in the app, over the same database, relay
//! and pairwise sessions as everything else.
//!
//! * **Storage.** Each group this device is in is a row of `groups`: the library's
//!   [`Group`] (this device's sending chain and the other member devices), sealed under a
//!   context naming the group id and the device that manages the member list. Each other
//!   member's chains are a row of `member_chains` keyed by (group, member identity key),
//!   sealed under a context naming both; a group message loads only its sender's row.
//! * **Control messages** travel as typed plaintexts of the pairwise sessions, to one device
//!   each: a member list (type 3), sent by the device that created the group, and a
//!   distribution (type 2), sent by every member to every other member. They are never
//!   fanned out to a user's other devices: a chain key goes to the one member device it is
//!   for ([`Contact::encrypt_to`]).
//! * **Group messages** are encrypted once and posted once; the relay puts the same bytes
//!   in every recipient's mailbox. The receiver takes the sender from the transport, finds
//!   its identity key in the sender account's verified device list, and decrypts with that
//!   member's chains; the signature proves the sender.
//! * **Write ordering.** A group message is committed with the group's advanced sending
//!   chain (and queued in `group_outbox`) before it leaves. What a device owes other members
//!   after a change (its distribution after joining or rotating, the member list after the
//!   manager changed it) is committed in `group_owed` with the change, then sent from there
//!   ([`Client::flush_owed`]), one transaction per message (the pairwise record, the outbox
//!   row, the owed row deleted).

use std::collections::BTreeMap;

use doubleratchet::rand_core::TryRng;
use doubleratchet::{
    Contact, DeviceId, Distribution, DistributionOutcome, Error, Group, GroupId, GroupMessage,
    IdentityKey, MemberChains, OsRng, StorageKey,
};
use rusqlite::{params, Connection, OptionalExtension};
use zeroize::Zeroizing;

use super::{
    at_relay, device_from_sql, put_contact, put_record, seal, sql, sql_device, start_session,
    Bounced, Client, Dropped, Incoming, Posted, SendReport, SyncReport, PAYLOAD_DISTRIBUTION,
    PAYLOAD_MEMBERS,
};
use crate::db;
use crate::harness::{say, short_hex, step, Failure, Outcome};
use crate::relay::{Address, Envelope, Relay, RelayError};

/// `group_owed.what`: the member list (only the managing device owes it).
const OWE_MEMBERS: i64 = 1;
/// `group_owed.what`: this device's distribution at its current iteration.
const OWE_DISTRIBUTION: i64 = 2;

/// How long a group message whose chain is unknown (`UnknownChain`) is kept at the relay,
/// waiting for its sender's distribution, before it is dropped.
const AWAIT_DISTRIBUTION_FOR: u64 = 24 * 3600;

/// A group as this device keeps it.
pub(super) struct GroupEntry {
    /// The name the managing device gave it (shown as `#name`).
    name: String,
    /// The device that manages the member list: only its member lists are taken.
    admin: Address,
    /// This device's sending chain and the other member devices.
    group: Group,
}

fn hex(bytes: &[u8]) -> String {
    short_hex(bytes, bytes.len())
}

/// A chain id as the transcript shows it.
fn chain_label(id: u64) -> String {
    format!("{}…", short_hex(&id.to_be_bytes(), 3))
}

/// The sealing context of a group row: the group id and its managing device, so that
/// neither the blob nor the plain `admin_*` columns can be moved or rewritten unnoticed.
fn group_context(id: &GroupId, admin: &Address) -> Vec<u8> {
    format!("group/{}/{admin}", hex(id.as_bytes())).into_bytes()
}

/// The sealing context of a member's chains: the group and the member device.
fn chains_context(id: &GroupId, member: &IdentityKey) -> Vec<u8> {
    format!("chains/{}/{}", hex(id.as_bytes()), hex(member.as_bytes())).into_bytes()
}

fn group_id_from_sql(bytes: &[u8]) -> Outcome<GroupId> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Failure::new("load", "a group id is not 32 bytes"))?;
    Ok(GroupId::from_bytes(bytes))
}

fn identity_from_sql(bytes: &[u8]) -> Outcome<IdentityKey> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Failure::new("load", "an identity key is not 32 bytes"))?;
    step("load an identity key", IdentityKey::from_bytes(&bytes))
}

fn parse_address(s: &str) -> Outcome<Address> {
    s.rsplit_once('#')
        .and_then(|(user, device)| Some(Address::new(user, DeviceId::new(device.parse().ok()?))))
        .ok_or_else(|| Failure::new("load", format!("not an address: {s}")))
}

fn join(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// Rows.

fn put_group(db: &Connection, key: &StorageKey, entry: &GroupEntry) -> Outcome {
    let id = entry.group.id();
    let sealed = seal(key, &entry.group, &group_context(id, &entry.admin))?;
    sql(
        "store a group",
        db.execute(
            "INSERT INTO groups (id, name, admin_user, admin_device, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed",
            params![
                id.as_bytes().as_slice(),
                entry.name,
                entry.admin.user,
                sql_device(entry.admin.device),
                sealed
            ],
        ),
    )
    .map(drop)
}

fn put_chains(db: &Connection, key: &StorageKey, chains: &MemberChains) -> Outcome {
    let (id, member) = (chains.group_id(), chains.member());
    let sealed = seal(key, chains, &chains_context(id, member))?;
    sql(
        "store a member's chains",
        db.execute(
            "INSERT INTO member_chains (group_id, member, sealed) VALUES (?1, ?2, ?3)
             ON CONFLICT (group_id, member) DO UPDATE SET sealed = excluded.sealed",
            params![
                id.as_bytes().as_slice(),
                member.as_bytes().as_slice(),
                sealed
            ],
        ),
    )
    .map(drop)
}

fn load_chains(
    db: &Connection,
    key: &StorageKey,
    id: &GroupId,
    member: &IdentityKey,
) -> Outcome<Option<MemberChains>> {
    let sealed: Option<Vec<u8>> = sql(
        "load a member's chains",
        db.query_row(
            "SELECT sealed FROM member_chains WHERE group_id = ?1 AND member = ?2",
            params![id.as_bytes().as_slice(), member.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .optional(),
    )?;
    sealed
        .map(|sealed| {
            step(
                "open a member's chains",
                key.open(&sealed, &chains_context(id, member)),
            )
        })
        .transpose()
}

/// A member left: its chains and what was owed to it are deleted.
fn forget_member(db: &Connection, id: &GroupId, member: &IdentityKey) -> Outcome {
    for table in ["member_chains", "group_owed"] {
        sql(
            "forget a member",
            db.execute(
                &format!("DELETE FROM {table} WHERE group_id = ?1 AND member = ?2"),
                params![id.as_bytes().as_slice(), member.as_bytes().as_slice()],
            ),
        )?;
    }
    Ok(())
}

fn owe(db: &Connection, id: &GroupId, member: &IdentityKey, what: i64) -> Outcome {
    sql(
        "owe a member",
        db.execute(
            "INSERT OR IGNORE INTO group_owed (group_id, member, what) VALUES (?1, ?2, ?3)",
            params![id.as_bytes().as_slice(), member.as_bytes().as_slice(), what],
        ),
    )
    .map(drop)
}

/// Every group of the device (`Client::open`), and how many member chains are stored.
pub(super) fn load_groups(
    db: &Connection,
    key: &StorageKey,
) -> Outcome<(BTreeMap<GroupId, GroupEntry>, usize)> {
    type Row = (Vec<u8>, String, String, i64, Vec<u8>);
    let rows: Vec<Row> = {
        let mut stmt = sql(
            "load groups",
            db.prepare("SELECT id, name, admin_user, admin_device, sealed FROM groups"),
        )?;
        let rows = sql(
            "load groups",
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            }),
        )?;
        sql("load groups", rows.collect())?
    };
    let mut groups = BTreeMap::new();
    for (id, name, user, device, sealed) in rows {
        let id = group_id_from_sql(&id)?;
        let admin = Address::new(&user, device_from_sql(device)?);
        let group: Group = step(
            "open a group",
            key.open(&sealed, &group_context(&id, &admin)),
        )?;
        if *group.id() != id {
            return Err(Failure::new(
                "open a group",
                "stored under another group id",
            ));
        }
        groups.insert(id, GroupEntry { name, admin, group });
    }
    let chains: i64 = sql(
        "count member chains",
        db.query_row("SELECT COUNT(*) FROM member_chains", [], |r| r.get(0)),
    )?;
    Ok((groups, usize::try_from(chains).unwrap_or(0)))
}

/// A group's member list as its managing device sends it (pairwise plaintext type 3):
/// the group id, its name and every member device, the sender and the recipient included.
pub(super) struct MembersNotice {
    group: GroupId,
    name: String,
    members: Vec<Address>,
}

impl MembersNotice {
    /// `3 || group id (32) || u8 len || name || u8 count || count × (u8 len || user ||
    /// u32 device)`. Names and counts are small in this run; a real app would use a proper
    /// encoding.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![PAYLOAD_MEMBERS];
        out.extend_from_slice(self.group.as_bytes());
        out.push(u8::try_from(self.name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.name.as_bytes());
        out.push(u8::try_from(self.members.len()).unwrap_or(u8::MAX));
        for at in &self.members {
            out.push(u8::try_from(at.user.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(at.user.as_bytes());
            out.extend_from_slice(&at.device.get().to_be_bytes());
        }
        out
    }

    /// The inverse of [`MembersNotice::encode`], after the type byte; strict.
    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        fn text(bytes: &[u8]) -> Option<(String, &[u8])> {
            let (&len, rest) = bytes.split_first()?;
            let (text, rest) = rest.split_at_checked(usize::from(len))?;
            Some((String::from_utf8(text.to_vec()).ok()?, rest))
        }
        let (group, rest) = bytes.split_first_chunk::<32>()?;
        let (name, rest) = text(rest)?;
        let (&count, mut rest) = rest.split_first()?;
        let mut members = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (user, after) = text(rest)?;
            let (device, after) = after.split_first_chunk::<4>()?;
            members.push(Address::new(
                &user,
                DeviceId::new(u32::from_be_bytes(*device)),
            ));
            rest = after;
        }
        rest.is_empty().then(|| MembersNotice {
            group: GroupId::from_bytes(*group),
            name,
            members,
        })
    }
}

/// What a received pairwise message brings, decided before its transaction and written in
/// it ([`write_effect`]).
pub(super) enum Effect {
    /// A text message for the inbox.
    Text { conversation: String, text: String },
    /// A distribution processed into its sender's chains (stored if a chain was added).
    Chains {
        chains: Box<MemberChains>,
        outcome: DistributionOutcome,
        name: String,
        chain_id: u64,
        iteration: u32,
    },
    /// A member list applied to the group (already changed in memory).
    Group(GroupChange),
    /// Refused: recorded as dropped.
    Refused {
        error: Option<Error>,
        reason: String,
    },
}

impl Effect {
    fn refused(error: Error) -> Self {
        Effect::Refused {
            error: Some(error),
            reason: error.to_string(),
        }
    }
}

/// A member list applied: what changed, and what this device now owes whom.
pub(super) struct GroupChange {
    id: GroupId,
    name: String,
    members: Vec<Address>,
    /// This device was not in the list: the group is deleted.
    left: bool,
    joined: bool,
    removed: Vec<IdentityKey>,
    /// Members owed this device's distribution.
    owed: Vec<IdentityKey>,
    /// The sending chain before and after (a removal rotates it).
    chains: (u64, u64),
}

/// Writes what a received pairwise message brought into its open transaction, with the
/// relay's sequence number (so that a redelivery is recognised).
pub(super) fn write_effect(
    tx: &Connection,
    key: &StorageKey,
    groups: &BTreeMap<GroupId, GroupEntry>,
    envelope: &Envelope,
    effect: &Effect,
    now: u64,
) -> Outcome {
    let from = &envelope.from;
    let control = |what: &str| {
        sql(
            "record the control message",
            tx.execute(
                "INSERT INTO control (relay_seq, from_user, from_device, what)
                 VALUES (?1, ?2, ?3, ?4)",
                params![envelope.seq, from.user, sql_device(from.device), what],
            ),
        )
        .map(drop)
    };
    match effect {
        Effect::Text { conversation, text } => sql(
            "store the message",
            tx.execute(
                "INSERT INTO inbox (relay_seq, from_user, from_device, conversation, body, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    envelope.seq,
                    from.user,
                    sql_device(from.device),
                    conversation,
                    text,
                    db::to_sql(now)
                ],
            ),
        )
        .map(drop),
        Effect::Chains {
            chains, outcome, ..
        } => {
            // Added and Advanced both changed the chains; only Known changed nothing.
            if !matches!(outcome, DistributionOutcome::Known) {
                put_chains(tx, key, chains)?;
            }
            control("distribution")
        }
        Effect::Group(change) => {
            if change.left {
                // The member chains and what was owed go with it (foreign keys).
                sql(
                    "leave a group",
                    tx.execute(
                        "DELETE FROM groups WHERE id = ?1",
                        [change.id.as_bytes().as_slice()],
                    ),
                )?;
            } else {
                let entry = groups
                    .get(&change.id)
                    .ok_or_else(|| Failure::new("store a group", "not held"))?;
                put_group(tx, key, entry)?;
                for member in &change.removed {
                    forget_member(tx, &change.id, member)?;
                }
                for member in &change.owed {
                    owe(tx, &change.id, member, OWE_DISTRIBUTION)?;
                }
            }
            control("members")
        }
        Effect::Refused { reason, .. } => sql(
            "record the drop",
            tx.execute(
                "INSERT INTO dropped (relay_seq, from_user, from_device, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![envelope.seq, from.user, sql_device(from.device), reason],
            ),
        )
        .map(drop),
    }
}

/// Stores what encrypting a pairwise message to `to` changed (the contact, the record) and
/// queues the ciphertext in the outbox, with `done` (the owed row deleted), in one
/// transaction.
fn queue_private(
    db: &mut Connection,
    key: &StorageKey,
    to: &Address,
    contact: &Contact,
    body: &[u8],
    done: impl FnOnce(&Connection) -> Outcome,
) -> Outcome {
    let tx = sql("begin", db.transaction())?;
    // Starting a session may have changed the contact (its post-quantum memory).
    put_contact(&tx, key, &to.user, contact)?;
    put_record(&tx, key, &to.user, contact, to.device)?;
    let mut client_id = [0u8; 16];
    step("message id", OsRng.try_fill_bytes(&mut client_id))?;
    sql(
        "queue in the outbox",
        tx.execute(
            "INSERT INTO outbox (client_id, to_user, to_device, body) VALUES (?1, ?2, ?3, ?4)",
            params![client_id.as_slice(), to.user, sql_device(to.device), body],
        ),
    )?;
    done(&tx)?;
    sql("commit", tx.commit())?;
    sql("checkpoint", db::checkpoint(db))
}

impl Client {
    /// The identity key of device `at`, from its account's verified device list (fetched
    /// once if the account or the device is unknown). The library's refusal (a list that
    /// does not verify, a device not listed) is returned as `Ok(Err(..))`.
    fn identity_of(&mut self, relay: &Relay, at: &Address) -> Outcome<Result<IdentityKey, Error>> {
        let listed = |client: &Self| {
            client
                .contacts
                .get(&at.user)
                .and_then(|c| c.device_list().identity(at.device))
                .copied()
        };
        if let Some(key) = listed(self) {
            return Ok(Ok(key));
        }
        if let super::ListOutcome::Invalid(error) = self.refresh(relay, &at.user)? {
            return Ok(Err(error));
        }
        Ok(listed(self).ok_or(Error::UnknownDevice(at.device)))
    }

    /// The address of the device with identity key `member`, from the lists held.
    fn address_of(&self, member: &IdentityKey) -> Option<Address> {
        self.contacts.iter().find_map(|(name, contact)| {
            contact
                .device_list()
                .device_of(member)
                .map(|id| Address::new(name, id))
        })
    }

    fn entry(&self, id: &GroupId) -> Outcome<&GroupEntry> {
        self.groups
            .get(id)
            .ok_or_else(|| Failure::new("group", "this device is not in it"))
    }

    /// The other member devices of group `id`, by address.
    pub fn group_members(&self, id: &GroupId) -> Outcome<Vec<Address>> {
        let mut out = self
            .entry(id)?
            .group
            .members()
            .iter()
            .map(|member| {
                self.address_of(member)
                    .ok_or_else(|| Failure::new("group", "a member is not a listed device"))
            })
            .collect::<Outcome<Vec<_>>>()?;
        out.sort_by_key(ToString::to_string);
        Ok(out)
    }

    /// This device's sending chain in group `id`: its id and next iteration.
    pub fn group_chain(&self, id: &GroupId) -> Outcome<(u64, u32)> {
        let group = &self.entry(id)?.group;
        Ok((group.chain_id(), group.iteration()))
    }

    /// The member chains of group `id` stored on disk: each member's address, the number of
    /// chains held and of skipped message keys stored.
    pub fn stored_chains(&self, id: &GroupId) -> Outcome<Vec<(String, usize, usize)>> {
        let members: Vec<Vec<u8>> = {
            let mut stmt = sql(
                "list member chains",
                self.db
                    .prepare("SELECT member FROM member_chains WHERE group_id = ?1"),
            )?;
            let rows = sql(
                "list member chains",
                stmt.query_map([id.as_bytes().as_slice()], |r| r.get(0)),
            )?;
            sql("list member chains", rows.collect())?
        };
        let mut out = Vec::new();
        for member in members {
            let member = identity_from_sql(&member)?;
            let chains = load_chains(&self.db, &self.key, id, &member)?
                .ok_or_else(|| Failure::new("member chains", "row vanished"))?;
            let at = self
                .address_of(&member)
                .map_or_else(|| hex(&member.as_bytes()[..6]), |a| a.to_string());
            out.push((at, chains.chain_ids().len(), chains.stored_skipped()));
        }
        out.sort();
        Ok(out)
    }

    /// Creates group `name` with the devices `members` (this device manages its member
    /// list): a random group id, a new `Group`, stored with what this device owes each
    /// member (the member list, then its distribution), which is then sent.
    pub fn create_group(
        &mut self,
        relay: &mut Relay,
        name: &str,
        members: &[Address],
        now: u64,
    ) -> Outcome<(GroupId, SendReport)> {
        let mut keys = Vec::with_capacity(members.len());
        for at in members {
            match self.identity_of(relay, at)? {
                Ok(key) => keys.push(key),
                Err(e) => return Err(Failure::new("create a group", format!("{at}: {e}"))),
            }
        }
        let mut bytes = [0u8; 32];
        step("group id", OsRng.try_fill_bytes(&mut bytes))?;
        let id = GroupId::from_bytes(bytes);
        let group = step(
            "new group",
            Group::new(id, self.device.identity_key(), &keys, &mut OsRng),
        )?;
        let entry = GroupEntry {
            name: name.to_owned(),
            admin: self.me.clone(),
            group,
        };
        let tx = sql("begin", self.db.transaction())?;
        put_group(&tx, &self.key, &entry)?;
        for key in &keys {
            owe(&tx, &id, key, OWE_MEMBERS)?;
            owe(&tx, &id, key, OWE_DISTRIBUTION)?;
        }
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        say(
            &self.label,
            format!(
                "created group #{name} (id {}…) with {}; its sending chain {}",
                short_hex(id.as_bytes(), 6),
                join(members),
                chain_label(entry.group.chain_id())
            ),
        );
        self.groups.insert(id, entry);
        let report = self.flush_owed(relay, now)?;
        Ok((id, report))
    }

    /// On the managing device: removes `member` from group `id`. The library rotates the
    /// sending chain; the member's chains are deleted; the new member list and the new
    /// distribution are owed to every remaining member, stored with the group, then sent.
    /// The removed device is not told.
    pub fn remove_group_member(
        &mut self,
        relay: &mut Relay,
        id: &GroupId,
        member: &Address,
        now: u64,
    ) -> Outcome<SendReport> {
        let identity = match self.identity_of(relay, member)? {
            Ok(key) => key,
            Err(e) => return Err(Failure::new("remove a member", format!("{member}: {e}"))),
        };
        let me = self.me.clone();
        let entry = self
            .groups
            .get_mut(id)
            .ok_or_else(|| Failure::new("remove a member", "not in the group"))?;
        if entry.admin != me {
            return Err(Failure::new(
                "remove a member",
                "this device does not manage it",
            ));
        }
        let before = entry.group.chain_id();
        // The returned distribution is the one `flush_owed` sends from the stored group.
        let _rotated = step(
            "remove the member",
            entry.group.remove_member(&identity, &mut OsRng),
        )?;
        let tx = sql("begin", self.db.transaction())?;
        put_group(&tx, &self.key, entry)?;
        forget_member(&tx, id, &identity)?;
        for key in entry.group.members() {
            owe(&tx, id, key, OWE_MEMBERS)?;
            owe(&tx, id, key, OWE_DISTRIBUTION)?;
        }
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        say(
            &self.label,
            format!(
                "removed {member} from #{}: its chains deleted; sending chain rotated {} -> {}",
                entry.name,
                chain_label(before),
                chain_label(entry.group.chain_id())
            ),
        );
        self.flush_owed(relay, now)
    }

    /// Encrypts `text` once for every member of group `id` and posts it once: the group
    /// (its sending chain advanced) is stored with the message in `group_outbox` before it
    /// leaves. What the device still owes members (its distribution) is sent first.
    pub fn send_group(
        &mut self,
        relay: &mut Relay,
        id: &GroupId,
        text: &str,
        now: u64,
    ) -> Outcome<SendReport> {
        self.flush_owed(relay, now)?;
        let recipients = self.group_members(id)?;
        let entry = self
            .groups
            .get_mut(id)
            .ok_or_else(|| Failure::new("send to a group", "not in the group"))?;
        let body = step(
            "encrypt for the group",
            entry.group.encrypt(text.as_bytes()),
        )?;
        let tx = sql("begin", self.db.transaction())?;
        put_group(&tx, &self.key, entry)?;
        let mut client_id = [0u8; 16];
        step("message id", OsRng.try_fill_bytes(&mut client_id))?;
        let recipients = recipients
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        sql(
            "queue in the group outbox",
            tx.execute(
                "INSERT INTO group_outbox (client_id, group_id, recipients, body)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    client_id.as_slice(),
                    id.as_bytes().as_slice(),
                    recipients,
                    body
                ],
            ),
        )?;
        sql(
            "store the sent message",
            tx.execute(
                "INSERT INTO sent (conversation, body, sent_at) VALUES (?1, ?2, ?3)",
                params![format!("#{}", entry.name), text, db::to_sql(now)],
            ),
        )?;
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        let mut report = SendReport::default();
        self.flush_outbox(relay, &mut report)?;
        Ok(report)
    }

    /// Posts the group outbox: each message once, with its recipients; the relay fans it
    /// out.
    pub(super) fn flush_group_outbox(
        &mut self,
        relay: &mut Relay,
        report: &mut SendReport,
    ) -> Outcome {
        // (row id, client id, group id, recipients, ciphertext)
        type Row = (i64, Vec<u8>, Vec<u8>, String, Vec<u8>);
        let rows: Vec<Row> = {
            let mut stmt = sql(
                "read the group outbox",
                self.db.prepare(
                    "SELECT id, client_id, group_id, recipients, body FROM group_outbox ORDER BY id",
                ),
            )?;
            let rows = sql(
                "read the group outbox",
                stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                }),
            )?;
            sql("read the group outbox", rows.collect())?
        };
        for (row, client_id, group_id, recipients, body) in rows {
            let to = recipients
                .split_whitespace()
                .map(parse_address)
                .collect::<Outcome<Vec<_>>>()?;
            let name = self
                .groups
                .get(&group_id_from_sql(&group_id)?)
                .map_or("?", |e| e.name.as_str());
            let (chain, iteration) = GroupMessage::parse(&body)
                .map(|m| (m.chain_id(), m.iteration()))
                .map_err(|e| Failure::new("group outbox", e))?;
            match relay.post_group(&self.me, &to, &client_id, &body) {
                Ok(results) => {
                    let mut fanned = Vec::new();
                    for (at, result) in results {
                        match result {
                            Ok(seq) => {
                                fanned.push(at.clone());
                                report.posted.push(Posted {
                                    seq,
                                    to: at,
                                    initial: false,
                                });
                            }
                            Err(why) => {
                                say(&self.label, format!("-> {at:<8} BOUNCED: {why}"));
                                report.bounced.push(Bounced {
                                    to: at,
                                    why,
                                    body: body.clone(),
                                });
                            }
                        }
                    }
                    say(
                        &self.label,
                        format!(
                            "-> #{name} group message (chain {}, iteration {iteration}), {} bytes, \
                             posted once; the relay fans it out to {}",
                            chain_label(chain),
                            body.len(),
                            join(&fanned)
                        ),
                    );
                }
                Err(RelayError::Refused(why)) => {
                    say(&self.label, format!("-> #{name} BOUNCED: {why}"));
                    for at in to {
                        report.bounced.push(Bounced {
                            to: at,
                            why: why.clone(),
                            body: body.clone(),
                        });
                    }
                }
                Err(e) => return Err(Failure::new("post to a group", e)),
            }
            sql(
                "empty the group outbox",
                self.db
                    .execute("DELETE FROM group_outbox WHERE id = ?1", [row]),
            )?;
        }
        Ok(())
    }

    /// Sends what the device owes other members (`group_owed`): the member list, then its
    /// distribution at the current iteration, each in the pairwise session with that one
    /// device (started from a bundle if needed), each committed with its owed row deleted;
    /// then posts the outbox. A row whose message could not be made stays for the next
    /// time.
    pub(super) fn flush_owed(&mut self, relay: &mut Relay, now: u64) -> Outcome<SendReport> {
        type Row = (Vec<u8>, Vec<u8>, i64);
        let rows: Vec<Row> = {
            let mut stmt = sql(
                "read what is owed",
                self.db.prepare(
                    "SELECT group_id, member, what FROM group_owed ORDER BY what, group_id, member",
                ),
            )?;
            let rows = sql(
                "read what is owed",
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))),
            )?;
            sql("read what is owed", rows.collect())?
        };
        let mut report = SendReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        for (group_id, member, what) in rows {
            let id = group_id_from_sql(&group_id)?;
            let member_key = identity_from_sql(&member)?;
            let done = |tx: &Connection| {
                sql(
                    "settle what is owed",
                    tx.execute(
                        "DELETE FROM group_owed WHERE group_id = ?1 AND member = ?2 AND what = ?3",
                        params![group_id, member, what],
                    ),
                )
                .map(drop)
            };
            let entry = self.entry(&id)?;
            let Some(to) = self.address_of(&member_key) else {
                say(
                    &self.label,
                    format!("a member of #{} is no longer a listed device", entry.name),
                );
                done(&self.db)?;
                continue;
            };
            let (payload, shown) = if what == OWE_MEMBERS {
                let mut members = self.group_members(&id)?;
                members.push(self.me.clone());
                members.sort_by_key(ToString::to_string);
                let shown = format!("the member list of #{} ({})", entry.name, join(&members));
                let notice = MembersNotice {
                    group: id,
                    name: entry.name.clone(),
                    members,
                };
                (Zeroizing::new(notice.encode()), shown)
            } else {
                let distribution = entry.group.distribution();
                (
                    distribution_payload(&distribution),
                    format!(
                        "its distribution for #{} (chain {}, from iteration {})",
                        entry.name,
                        chain_label(distribution.chain_id()),
                        distribution.iteration()
                    ),
                )
            };
            if self.send_private(relay, &to, &payload, now, &mut report, done)? {
                say(&self.label, format!("sends {to} {shown}"));
            } else {
                say(&self.label, format!("could not reach {to}: kept for later"));
            }
        }
        self.flush_outbox(relay, &mut report)?;
        Ok(report)
    }

    /// Encrypts `payload` for device `to` alone (starting a session from a bundle if it has
    /// none) and queues it in the outbox with `done`, in one transaction. Returns whether it
    /// was queued; why not is in `report`.
    fn send_private(
        &mut self,
        relay: &mut Relay,
        to: &Address,
        payload: &[u8],
        now: u64,
        report: &mut SendReport,
        done: impl FnOnce(&Connection) -> Outcome,
    ) -> Outcome<bool> {
        let mut contact = self
            .contacts
            .remove(&to.user)
            .ok_or_else(|| Failure::new("send", format!("unknown contact {}", to.user)))?;
        start_session(
            &self.label,
            &self.device,
            relay,
            to,
            &mut contact,
            now,
            report,
        );
        let result = match contact.encrypt_to(to.device, payload, &mut OsRng) {
            Ok(body) => {
                queue_private(&mut self.db, &self.key, to, &contact, &body, done).map(|()| true)
            }
            Err(e) => {
                report.failed.push((to.clone(), e.to_string()));
                Ok(false)
            }
        };
        self.contacts.insert(to.user.clone(), contact);
        result
    }

    /// A distribution from `sender` (the remote identity of the pairwise session that
    /// decrypted it), processed into a copy of its chains loaded from disk.
    pub(super) fn take_distribution(
        &mut self,
        sender: &IdentityKey,
        bytes: &[u8],
    ) -> Outcome<Effect> {
        let (id, chain_id, iteration) = match Distribution::from_bytes(bytes) {
            Ok(d) => (*d.group_id(), d.chain_id(), d.iteration()),
            Err(e) => return Ok(Effect::refused(e)),
        };
        let Some(entry) = self.groups.get(&id) else {
            // A distribution for a group this device is not in.
            return Ok(Effect::refused(Error::WrongGroup));
        };
        let mut chains = load_chains(&self.db, &self.key, &id, sender)?
            .unwrap_or_else(|| MemberChains::new(&id, sender));
        Ok(
            match entry.group.process_distribution(sender, bytes, &mut chains) {
                Ok(outcome) => Effect::Chains {
                    chains: Box::new(chains),
                    outcome,
                    name: entry.name.clone(),
                    chain_id,
                    iteration,
                },
                Err(e) => Effect::refused(e),
            },
        )
    }

    /// A member list from `from`: taken only from the device that manages the group (for a
    /// new group, the sender becomes it). Members are resolved to identity keys through
    /// their accounts' verified lists. A new group is made; for a known one, removed
    /// members are removed (each removal rotates the sending chain) and added ones added.
    /// The group is changed in memory here and stored by [`write_effect`].
    pub(super) fn apply_members(
        &mut self,
        relay: &Relay,
        from: &Address,
        notice: MembersNotice,
    ) -> Outcome<Effect> {
        let id = notice.group;
        if let Some(entry) = self.groups.get(&id) {
            if entry.admin != *from {
                return Ok(Effect::Refused {
                    error: None,
                    reason: format!(
                        "a member list for #{} not from the device that manages it",
                        entry.name
                    ),
                });
            }
        }
        if !notice.members.contains(&self.me) {
            return Ok(match self.groups.remove(&id) {
                Some(entry) => Effect::Group(GroupChange {
                    id,
                    name: entry.name,
                    members: notice.members,
                    left: true,
                    joined: false,
                    removed: Vec::new(),
                    owed: Vec::new(),
                    chains: (0, 0),
                }),
                None => Effect::Refused {
                    error: None,
                    reason: String::from("a member list without this device"),
                },
            });
        }
        let me = self.me.clone();
        let mut keys = Vec::new();
        for at in notice.members.iter().filter(|at| **at != me) {
            match self.identity_of(relay, at)? {
                Ok(key) => keys.push(key),
                Err(error) => {
                    return Ok(Effect::Refused {
                        error: Some(error),
                        reason: format!("member {at}: {error}"),
                    })
                }
            }
        }
        let own = self.identity_key();
        let Some(entry) = self.groups.get_mut(&id) else {
            let group = match Group::new(id, &own, &keys, &mut OsRng) {
                Ok(group) => group,
                Err(e) => return Ok(Effect::refused(e)),
            };
            let chain = group.chain_id();
            self.groups.insert(
                id,
                GroupEntry {
                    name: notice.name.clone(),
                    admin: from.clone(),
                    group,
                },
            );
            return Ok(Effect::Group(GroupChange {
                id,
                name: notice.name,
                members: notice.members,
                left: false,
                joined: true,
                removed: Vec::new(),
                owed: keys,
                chains: (chain, chain),
            }));
        };
        let current = entry.group.members().to_vec();
        let removed: Vec<IdentityKey> = current
            .iter()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        let added: Vec<IdentityKey> = keys
            .iter()
            .filter(|k| !current.contains(k))
            .copied()
            .collect();
        let before = entry.group.chain_id();
        for key in &removed {
            // Rotates: the removed member cannot read what this device sends next.
            let _rotated = step(
                "remove a member",
                entry.group.remove_member(key, &mut OsRng),
            )?;
        }
        for key in &added {
            let _distribution = step("add a member", entry.group.add_member(key))?;
        }
        // After a removal every remaining member needs the new chain; otherwise the new
        // members need the current one.
        let owed = if removed.is_empty() {
            added
        } else {
            entry.group.members().to_vec()
        };
        Ok(Effect::Group(GroupChange {
            id,
            name: entry.name.clone(),
            members: notice.members,
            left: false,
            joined: false,
            removed,
            owed,
            chains: (before, entry.group.chain_id()),
        }))
    }

    /// Shows a received control message (or a refused payload) after its commit.
    pub(super) fn report_effect(
        &self,
        from: &Address,
        effect: Effect,
        new_session: bool,
        report: &mut SyncReport,
    ) {
        let tag = if new_session { " [new session]" } else { "" };
        match effect {
            Effect::Text { .. } => {}
            Effect::Chains {
                outcome,
                name,
                chain_id,
                iteration,
                ..
            } => {
                let what = match outcome {
                    DistributionOutcome::Added { evicted: None } => String::from("added"),
                    DistributionOutcome::Added { evicted: Some(old) } => {
                        format!("added, chain {} evicted", chain_label(old))
                    }
                    DistributionOutcome::Known => String::from("known already, nothing changed"),
                    other => format!("{other:?}"),
                };
                say(
                    &self.label,
                    format!(
                        "<- {from} distribution for #{name}: chain {} from iteration {iteration}: \
                         {what}{tag}",
                        chain_label(chain_id)
                    ),
                );
                report.distributions.push((from.clone(), outcome));
            }
            Effect::Group(change) => {
                let what = if change.left {
                    String::from("this device is no longer a member: group deleted")
                } else if change.joined {
                    format!(
                        "joined, with its own sending chain {}",
                        chain_label(change.chains.1)
                    )
                } else if change.removed.is_empty() {
                    String::from("members added")
                } else {
                    format!(
                        "{} member(s) removed, their chains deleted; sending chain rotated {} -> {}",
                        change.removed.len(),
                        chain_label(change.chains.0),
                        chain_label(change.chains.1)
                    )
                };
                say(
                    &self.label,
                    format!(
                        "<- {from} member list of #{}: {}: {what}{tag}",
                        change.name,
                        join(&change.members)
                    ),
                );
                report.memberships.push(from.clone());
            }
            Effect::Refused { error, reason } => {
                say(
                    &self.label,
                    format!("<- {from} REFUSED: {reason}; dropped{tag}"),
                );
                report.dropped.push(Dropped {
                    from: from.clone(),
                    error,
                });
            }
        }
    }

    /// Processes a group message: the sender is the device the transport names, its
    /// identity key comes from its account's verified list, and the group decrypts with that
    /// member's chains (loaded from disk). The chains and the plaintext are committed
    /// together, then the message is acknowledged. A chain not held yet (`UnknownChain`)
    /// leaves the message at the relay until the distribution arrives, for at most
    /// [`AWAIT_DISTRIBUTION_FOR`].
    pub(super) fn receive_group(
        &mut self,
        relay: &mut Relay,
        envelope: &Envelope,
        now: u64,
        report: &mut SyncReport,
    ) -> Outcome {
        let from = &envelope.from;
        let sender = match self.identity_of(relay, from)? {
            Ok(key) => key,
            Err(error) => return self.drop_message(relay, envelope, error, report),
        };
        let message = match GroupMessage::parse(&envelope.body) {
            Ok(message) => message,
            Err(error) => return self.drop_message(relay, envelope, error, report),
        };
        let id = *message.group_id();
        let Some(entry) = self.groups.get(&id) else {
            // A group this device is not in.
            return self.drop_message(relay, envelope, Error::WrongGroup, report);
        };
        let mut chains = load_chains(&self.db, &self.key, &id, &sender)?
            .unwrap_or_else(|| MemberChains::new(&id, &sender));
        let plaintext = match entry.group.decrypt(&mut chains, &envelope.body) {
            Ok(plaintext) => plaintext,
            Err(Error::UnknownChain) => {
                return self.await_distribution(relay, envelope, now, report)
            }
            Err(error) => return self.drop_message(relay, envelope, error, report),
        };
        let text = String::from_utf8_lossy(&plaintext).into_owned();
        let conversation = format!("#{}", entry.name);
        let tx = sql("begin", self.db.transaction())?;
        put_chains(&tx, &self.key, &chains)?;
        sql(
            "store the message",
            tx.execute(
                "INSERT INTO inbox (relay_seq, from_user, from_device, conversation, body, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    envelope.seq,
                    from.user,
                    sql_device(from.device),
                    conversation,
                    text,
                    db::to_sql(now)
                ],
            ),
        )?;
        sql(
            "stop waiting",
            tx.execute("DELETE FROM awaiting WHERE relay_seq = ?1", [envelope.seq]),
        )?;
        sql("commit", tx.commit())?;
        sql("checkpoint", db::checkpoint(&self.db))?;
        at_relay("ack", relay.ack(&self.me, envelope.seq))?;
        say(
            &self.label,
            format!(
                "<- {from} in {conversation} (chain {}, iteration {}): \"{text}\"",
                chain_label(message.chain_id()),
                message.iteration()
            ),
        );
        report.delivered.push(Incoming {
            from: from.clone(),
            conversation,
            text,
            new_session: false,
        });
        Ok(())
    }

    /// A group message on a chain not held (`UnknownChain`, of kind `AwaitDistribution`):
    /// left at the relay, and its first sight recorded, until the sender's distribution
    /// arrives; dropped once it waited [`AWAIT_DISTRIBUTION_FOR`].
    fn await_distribution(
        &mut self,
        relay: &mut Relay,
        envelope: &Envelope,
        now: u64,
        report: &mut SyncReport,
    ) -> Outcome {
        let error = Error::UnknownChain;
        let since: Option<i64> = sql(
            "look up a waiting message",
            self.db
                .query_row(
                    "SELECT since FROM awaiting WHERE relay_seq = ?1",
                    [envelope.seq],
                    |r| r.get(0),
                )
                .optional(),
        )?;
        let since = match since {
            Some(since) => db::from_sql(since),
            None => {
                sql(
                    "wait for a distribution",
                    self.db.execute(
                        "INSERT INTO awaiting (relay_seq, since) VALUES (?1, ?2)",
                        params![envelope.seq, db::to_sql(now)],
                    ),
                )?;
                sql("checkpoint", db::checkpoint(&self.db))?;
                now
            }
        };
        if now.saturating_sub(since) >= AWAIT_DISTRIBUTION_FOR {
            // Waited long enough: the distribution is not coming.
            return self.drop_message(relay, envelope, error, report);
        }
        say(
            &self.label,
            format!(
                "<- {} group message on a chain it holds no distribution for: {error} ({error:?}, \
                 {:?}); left at the relay",
                envelope.from,
                error.kind()
            ),
        );
        report.awaiting.push((envelope.from.clone(), error));
        Ok(())
    }
}

/// A distribution as a pairwise plaintext (type 2), in a buffer zeroized on drop, allocated
/// once so that no copy of the chain key is left behind by a reallocation.
fn distribution_payload(distribution: &Distribution) -> Zeroizing<Vec<u8>> {
    let bytes = distribution.to_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(1 + bytes.len()));
    out.push(PAYLOAD_DISTRIBUTION);
    out.extend_from_slice(&bytes);
    out
}
