//! Accepting sessions from initial messages (X3DH §3.4, PQXDH §3.4; SPEC.md §8.3-§8.4):
//! plan, then commit; replay records and the switch to the standby signed prekey; and
//! replacing every prekey after a restore (§8.2).

use alloc::collections::{BTreeMap, BTreeSet};
#[cfg(not(feature = "pqxdh"))]
use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use super::{LocalDevice, Restored, StoreNotice};
use crate::codec::Reader;
use crate::error::Error;
use crate::format::{
    MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY, REPLAY_RECORD_LENGTH, STORAGE_VERSION, TYPE_REPLAY_RECORD,
};
#[cfg(feature = "pqxdh")]
use crate::ids::PqPreKeyId;
use crate::ids::{OneTimePreKeyId, SignedPreKeyId};
use crate::keys::{x25519_public_from_bytes, IdentityKeyPair, X25519PublicKey};
#[cfg(feature = "pqxdh")]
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::session::{Accepted, ResponderKeys, Session, SessionOptions};
use crate::wire::{read_version_and_type, InitialFields, Message};

/// What accepting one initial message will change in the store, decided before the
/// session is created.
struct AcceptPlan {
    one_time: Option<OneTimePreKeyId>,
    #[cfg(feature = "pqxdh")]
    pq_one_time: Option<PqPreKeyId>,
    /// `(signed prekey, EK_A)` of a session that consumes no one-time prekey.
    record: Option<(SignedPreKeyId, [u8; 32])>,
}

impl AcceptPlan {
    /// Whether the plan deletes a one-time prekey (a switch is reported separately).
    fn changes_keys(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        let pq = self.pq_one_time.is_some();
        #[cfg(not(feature = "pqxdh"))]
        let pq = false;
        self.one_time.is_some() || pq
    }
}

/// One replay record (SPEC.md §8.3): the base key `EK_A` of a session accepted without a
/// one-time prekey, under the signed prekey it named. Public data (both are public keys or
/// ids); an app that journals records stores [`ReplayRecord::to_bytes`] per accept and
/// hands them back with [`LocalDevice::apply_replay_records`] (SPEC.md §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayRecord {
    signed_prekey_id: SignedPreKeyId,
    base_key: [u8; 32],
}

impl ReplayRecord {
    /// Length of the encoding: version, type `0x29`, signed prekey id (8), `EK_A` (32).
    pub const LENGTH: usize = REPLAY_RECORD_LENGTH;

    /// The signed prekey the session was accepted with.
    pub fn signed_prekey_id(&self) -> SignedPreKeyId {
        self.signed_prekey_id
    }

    /// The initiator's base key `EK_A`.
    pub fn base_key(&self) -> X25519PublicKey {
        X25519PublicKey::from_validated(self.base_key)
    }

    /// The storage encoding (SPEC.md §8.4): `version || 0x29 || signed prekey id (u64) ||
    /// EK_A (32)`. Journals are storage, so records carry the storage version like every
    /// stored object.
    pub fn to_bytes(&self) -> [u8; Self::LENGTH] {
        let mut out = [0u8; Self::LENGTH];
        out[0] = STORAGE_VERSION;
        out[1] = TYPE_REPLAY_RECORD;
        out[2..10].copy_from_slice(&self.signed_prekey_id.to_u64().to_be_bytes());
        out[10..].copy_from_slice(&self.base_key);
        out
    }

    /// Parses [`ReplayRecord::to_bytes`].
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::InvalidEncoding`] (id 0),
    /// [`Error::InvalidPublicKey`] (`EK_A` fails the X25519 validation of SPEC.md §2.2).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_REPLAY_RECORD)?;
        let signed_prekey_id = SignedPreKeyId::from_u64(r.u64()?);
        let base_key: [u8; 32] = r.array()?;
        r.finish()?;
        if signed_prekey_id.to_u64() == 0 {
            return Err(Error::InvalidEncoding);
        }
        x25519_public_from_bytes(&base_key)?;
        Ok(ReplayRecord {
            signed_prekey_id,
            base_key,
        })
    }
}

impl LocalDevice {
    /// Adds journaled replay records (SPEC.md §8.4) to a store loaded from an older write:
    /// records already held, and records of signed prekeys no longer held (retired since),
    /// are skipped, so replaying a journal twice is harmless. A record under the standby
    /// signed prekey proves the live store had switched to it: the switch is made first.
    /// If the current signed prekey is then full, the store switches as
    /// [`LocalDevice::accept`] would.
    ///
    /// # Errors
    /// [`Error::InvalidEncoding`] if a signed prekey would carry more than
    /// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`] records; the store is then unchanged.
    pub fn apply_replay_records(
        &mut self,
        records: &[ReplayRecord],
    ) -> Result<Option<StoreNotice>, Error> {
        // A record under the standby proves the live store had switched to it (the standby
        // takes no records): the switch is replayed first, even if the whole-store write
        // that should have followed it was lost.
        let standby_id = self.standby.as_ref().map(|s| s.key.id());
        let names_standby =
            standby_id.is_some_and(|id| records.iter().any(|r| r.signed_prekey_id == id));
        let none = BTreeSet::new();
        let mut added: BTreeMap<SignedPreKeyId, BTreeSet<[u8; 32]>> = BTreeMap::new();
        for record in records {
            let held = match self.signed_entry(record.signed_prekey_id) {
                Some(entry) => &entry.records,
                None if names_standby && standby_id == Some(record.signed_prekey_id) => &none,
                None => continue,
            };
            if held.contains(&record.base_key) {
                continue;
            }
            let fresh = added.entry(record.signed_prekey_id).or_default();
            fresh.insert(record.base_key);
            if held.len() + fresh.len() > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY as usize {
                return Err(Error::InvalidEncoding);
            }
        }
        if added.is_empty() {
            // Nothing new: the store is exactly what was written, switch state included.
            return Ok(None);
        }
        let switched = match (names_standby, self.standby.take()) {
            (true, Some(standby)) => {
                let previous = self.current.key.id();
                let current = self.install_signed(standby.key, standby.created, None, None);
                Some(StoreNotice::SignedPreKeySwitched { previous, current })
            }
            (_, standby) => {
                self.standby = standby;
                None
            }
        };
        for (id, fresh) in added {
            if let Some(entry) = self.signed_entry_mut(id) {
                entry.records.extend(fresh);
            }
        }
        Ok(self.switch_if_full().or(switched))
    }

    /// Accepts a session from an initial message (X3DH §3.4 or PQXDH §3.4) and, on success
    /// only, deletes the one-time prekeys it used ([`Accepted::used_one_time_prekey`],
    /// [`Accepted::used_post_quantum_prekey`]) or, if it used none, records its base key
    /// under the signed prekey it named, so that the same initial message is refused next
    /// time. A record that fills the current signed prekey switches the store to its
    /// standby ([`Accepted::notice`]).
    ///
    /// Plan, then commit: every check (SPEC.md §10.1) and the whole key agreement and
    /// first decryption happen before the store changes.
    ///
    /// # Errors
    /// Parse errors, [`Error::NotInitialMessage`], the option errors of
    /// [`SessionOptions`] (pin, PQXDH, header encryption, limits),
    /// [`Error::UnknownSignedPreKey`], [`Error::UnknownOneTimePreKey`],
    /// [`Error::UnknownPqPreKey`], [`Error::DuplicateOrExpired`] (a replayed initial message
    /// that consumed no one-time prekey), [`Error::StoreFull`] (its signed prekey carries
    /// [`LocalDevice::replay_capacity`] records), [`Error::WrongSession`], or any error of
    /// [`Session::decrypt`](crate::Session::decrypt). On error the store is unchanged.
    pub fn accept(&mut self, message: &[u8], options: &SessionOptions) -> Result<Accepted, Error> {
        let initial = match Message::parse(message)? {
            Message::Initial(m) => m,
            Message::Normal(_) => return Err(Error::NotInitialMessage),
        };
        let limits = options.check(
            &initial.fields.identity,
            initial.is_post_quantum(),
            initial.is_header_encrypted(),
        )?;
        let keys = self.responder_keys(&initial.fields)?;
        let plan = self.plan_accept(&initial.fields, &keys)?;
        let mut accepted = Session::accept_initial(
            &self.identity,
            &keys,
            &initial,
            limits,
            options.padding_policy(),
        )?;
        accepted.store_keys_changed = plan.changes_keys();
        accepted.replay_record = plan
            .record
            .map(|(signed_prekey_id, base_key)| ReplayRecord {
                signed_prekey_id,
                base_key,
            });
        accepted.notice = self.commit_accept(plan);
        accepted.store_keys_changed |= accepted.notice.is_some();
        Ok(accepted)
    }

    /// The prekeys an initial message names (SPEC.md §10.1: signed, one-time, post-quantum).
    fn responder_keys(&self, fields: &InitialFields<'_>) -> Result<ResponderKeys<'_>, Error> {
        let signed_prekey = self
            .signed_prekey(fields.signed_prekey_id)
            .ok_or(Error::UnknownSignedPreKey(fields.signed_prekey_id))?;
        let one_time_prekey = match fields.one_time_prekey_id {
            Some(id) => Some(
                self.one_time_prekey(id)
                    .ok_or(Error::UnknownOneTimePreKey(id))?,
            ),
            None => None,
        };
        #[cfg(feature = "pqxdh")]
        let post_quantum_prekey = match fields.post_quantum {
            Some((id, _)) => Some(self.pq_prekey(id).ok_or(Error::UnknownPqPreKey(id))?),
            None => None,
        };
        #[cfg(not(feature = "pqxdh"))]
        if let Some((id, _)) = fields.post_quantum {
            return Err(Error::UnknownPqPreKey(id));
        }
        Ok(ResponderKeys {
            signed_prekey,
            one_time_prekey,
            #[cfg(feature = "pqxdh")]
            post_quantum_prekey,
        })
    }

    /// Which one-time keys the session consumes, or the replay record it needs; refuses a
    /// recorded base key and a full signed prekey.
    fn plan_accept(
        &self,
        fields: &InitialFields<'_>,
        keys: &ResponderKeys<'_>,
    ) -> Result<AcceptPlan, Error> {
        #[cfg(feature = "pqxdh")]
        let pq_one_time = keys
            .post_quantum_prekey
            .filter(|k| k.kind() == PqPreKeyKind::OneTime)
            .map(PqPreKey::id);
        #[cfg(not(feature = "pqxdh"))]
        let pq_one_time: Option<u64> = None;
        let record = match (fields.one_time_prekey_id, pq_one_time) {
            (None, None) => Some((keys.signed_prekey.id(), fields.base_key)),
            _ => None,
        };
        if let Some((spk, base_key)) = record {
            let entry = self.signed_entry(spk).ok_or(Error::Internal)?;
            if entry.records.contains(&base_key) {
                return Err(Error::DuplicateOrExpired);
            }
            if entry.records.len() >= self.replay_capacity as usize {
                return Err(Error::StoreFull);
            }
        }
        Ok(AcceptPlan {
            one_time: fields.one_time_prekey_id,
            #[cfg(feature = "pqxdh")]
            pq_one_time,
            record,
        })
    }

    fn commit_accept(&mut self, plan: AcceptPlan) -> Option<StoreNotice> {
        if let Some(id) = plan.one_time {
            self.one_time.remove(&id);
        }
        #[cfg(feature = "pqxdh")]
        if let Some(id) = plan.pq_one_time {
            self.pq.keys.remove(&id);
        }
        let (spk, base_key) = plan.record?;
        self.signed_entry_mut(spk)?.records.insert(base_key);
        self.switch_if_full()
    }

    /// SPEC.md §8.3: once the current signed prekey carries `replay_capacity` records, the
    /// standby becomes current; without a standby the app is told to rotate.
    pub(super) fn switch_if_full(&mut self) -> Option<StoreNotice> {
        if self.current.records.len() < self.replay_capacity as usize {
            return None;
        }
        let previous = self.current.key.id();
        match self.standby.take() {
            Some(standby) => {
                let current = self.install_signed(standby.key, standby.created, None, None);
                Some(StoreNotice::SignedPreKeySwitched { previous, current })
            }
            None => Some(StoreNotice::SignedPreKeyFull { id: previous }),
        }
    }

    /// For a store the app knows it restored from an older copy (a backup, a crash before
    /// the last save): replaces every prekey, so that nothing the older copy revives can be
    /// used (SPEC.md §8.2). A new current and standby signed prekey; as many new one-time
    /// prekeys (and one-time post-quantum prekeys) as were held; a new last-resort
    /// post-quantum prekey if one was held. Every earlier prekey is dropped with its replay
    /// records: one-time prekeys the older copy revives, and signed prekeys whose records
    /// of sessions accepted after the copy was taken are lost.
    ///
    /// The app then publishes the ids in [`Restored`] and has the server drop every other
    /// prekey of this device. Initiators holding an earlier bundle get
    /// [`Error::UnknownSignedPreKey`] (or `UnknownOneTimePreKey`) and must fetch a new one.
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`]; [`Error::StoreFull`] only for a stored store
    /// crafted with its sequence counter near 2^64. The store is then unchanged.
    pub fn after_restore<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<Restored, Error> {
        #[cfg(feature = "pqxdh")]
        let pq_needed = self.pq.count(PqPreKeyKind::OneTime)
            + usize::from(self.pq.current_last_resort.is_some());
        #[cfg(not(feature = "pqxdh"))]
        let pq_needed = 0;
        // Checked before any draw, like every StoreFull (SPEC.md §2.5).
        self.check_sequence_room(self.one_time.len() + pq_needed)?;
        let identity = IdentityKeyPair::from_seed(self.identity.seed());
        let mut fresh = LocalDevice::from_identity(identity, now, rng)?;
        fresh.replay_capacity = self.replay_capacity;
        fresh.one_time_cap = self.one_time_cap;
        fresh.next_sequence = self.next_sequence;
        let count = self
            .one_time
            .len()
            .min(fresh.cap(super::MAX_ONE_TIME_PREKEYS));
        let one_time_prekeys = fresh.generate_one_time_prekeys(count, rng)?.created;
        #[cfg(feature = "pqxdh")]
        let (pq_one_time_prekeys, pq_last_resort_prekey) = {
            let count = self
                .pq
                .count(PqPreKeyKind::OneTime)
                .min(fresh.cap(super::MAX_PQ_ONE_TIME_PREKEYS));
            let ids = fresh.generate_pq_one_time_prekeys(count, rng)?.created;
            let last_resort = match self.pq.current_last_resort {
                Some(_) => Some(fresh.rotate_pq_last_resort_prekey(now, rng)?),
                None => None,
            };
            (ids, last_resort)
        };
        #[cfg(not(feature = "pqxdh"))]
        let (pq_one_time_prekeys, pq_last_resort_prekey) = (Vec::new(), None);
        let signed_prekey = fresh.current.key.id();
        *self = fresh;
        Ok(Restored {
            signed_prekey,
            one_time_prekeys,
            pq_one_time_prekeys,
            pq_last_resort_prekey,
        })
    }
}
