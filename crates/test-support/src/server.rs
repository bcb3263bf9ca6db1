//! A prekey server for one device that plays by SPEC.md §8.5, holding only public data:
//! it accepts an upload set whole or refuses it whole, hands out one bundle per request
//! consuming the oldest queued one-time prekey of each kind, falls back to the last-resort
//! keys when none remain, and hands out only bundles that verify.
//!
//! The integration tests play it against `LocalDevice`; the fuzz crate checks its
//! invariants under random operation sequences.

use std::collections::{BTreeSet, VecDeque};

#[cfg(feature = "pqxdh")]
use doubleratchet::PqPreKeyPublic;
use doubleratchet::{
    Error, IdentityKey, OneTimePreKeyId, OneTimePreKeyPublic, PreKeyBundle, SignedPreKeyPublic,
    UploadSet,
};

/// Why the server refused an upload set; a refused set changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The set did not parse (structure, keys, a repeated id, a signature).
    Parse(Error),
    /// The set is under another identity key than the device's (rule 1).
    Identity,
    /// The signed prekey has the current one's id with other bytes, or a replaced id
    /// (rule 2).
    SignedPreKey,
    /// The last-resort post-quantum prekey clashes with a held or replaced id (rule 3).
    LastResort,
    /// A one-time prekey of either kind has a held id with other bytes, or a post-quantum
    /// one has a last-resort key's id (rule 4).
    OneTimeId,
}

/// The server's state for one device (SPEC.md §8.5, "State per device").
#[derive(Default, Debug)]
pub struct Server {
    identity: Option<IdentityKey>,
    signed: Option<SignedPreKeyPublic>,
    replaced_signed: BTreeSet<u64>,
    one_time: VecDeque<OneTimePreKeyPublic>,
    /// One-time prekey ids handed out or dropped.
    gone: BTreeSet<u64>,
    #[cfg(feature = "pqxdh")]
    last_resort: Option<PqPreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    replaced_last_resort: BTreeSet<u64>,
    #[cfg(feature = "pqxdh")]
    pq_one_time: VecDeque<PqPreKeyPublic>,
    #[cfg(feature = "pqxdh")]
    pq_gone: BTreeSet<u64>,
}

impl Server {
    /// A server that holds nothing for the device yet.
    pub fn new() -> Self {
        Server::default()
    }

    /// Accepts the upload set `bytes` whole, or refuses it whole and changes nothing.
    pub fn upload(&mut self, bytes: &[u8]) -> Result<(), Refused> {
        let set = UploadSet::from_bytes(bytes).map_err(Refused::Parse)?;
        if self.identity.is_some_and(|ik| ik != *set.identity_key()) {
            return Err(Refused::Identity);
        }
        let signed = set.signed_prekey();
        let clashes = self
            .signed
            .as_ref()
            .is_some_and(|c| c.id() == signed.id() && c != signed);
        if clashes || self.replaced_signed.contains(&signed.id().to_u64()) {
            return Err(Refused::SignedPreKey);
        }
        let held = |k: &OneTimePreKeyPublic| self.one_time.iter().find(|h| h.id() == k.id());
        if set
            .one_time_prekeys()
            .iter()
            .any(|k| held(k).is_some_and(|h| h != k))
        {
            return Err(Refused::OneTimeId);
        }
        #[cfg(feature = "pqxdh")]
        self.check_pq(&set)?;

        self.identity = Some(*set.identity_key());
        if let Some(old) = self.signed.replace(signed.clone()) {
            if old.id() != signed.id() {
                self.replaced_signed.insert(old.id().to_u64());
            }
        }
        for key in set.one_time_prekeys() {
            let held = self.one_time.iter().any(|h| h.id() == key.id());
            if !held && !self.gone.contains(&key.id().to_u64()) {
                self.one_time.push_back(*key);
            }
        }
        #[cfg(feature = "pqxdh")]
        self.apply_pq(&set);
        Ok(())
    }

    /// Rules 3 and 4 for the post-quantum prekeys (one id space for both kinds).
    #[cfg(feature = "pqxdh")]
    fn check_pq(&self, set: &UploadSet) -> Result<(), Refused> {
        let last_resort_id = |id: u64| {
            self.replaced_last_resort.contains(&id)
                || self
                    .last_resort
                    .as_ref()
                    .is_some_and(|c| c.id().to_u64() == id)
        };
        if let Some(key) = set.pq_last_resort_prekey() {
            let id = key.id().to_u64();
            let clashes = self
                .last_resort
                .as_ref()
                .is_some_and(|c| c.id() == key.id() && c != key);
            if clashes
                || self.replaced_last_resort.contains(&id)
                || self.pq_gone.contains(&id)
                || self.pq_one_time.iter().any(|h| h.id() == key.id())
            {
                return Err(Refused::LastResort);
            }
        }
        for key in set.pq_one_time_prekeys() {
            let held = self.pq_one_time.iter().find(|h| h.id() == key.id());
            if held.is_some_and(|h| h != key) || last_resort_id(key.id().to_u64()) {
                return Err(Refused::OneTimeId);
            }
        }
        Ok(())
    }

    #[cfg(feature = "pqxdh")]
    fn apply_pq(&mut self, set: &UploadSet) {
        if let Some(key) = set.pq_last_resort_prekey() {
            if let Some(old) = self.last_resort.replace(key.clone()) {
                if old.id() != key.id() {
                    self.replaced_last_resort.insert(old.id().to_u64());
                }
            }
        }
        for key in set.pq_one_time_prekeys() {
            let held = self.pq_one_time.iter().any(|h| h.id() == key.id());
            if !held && !self.pq_gone.contains(&key.id().to_u64()) {
                self.pq_one_time.push_back(key.clone());
            }
        }
    }

    /// Hands out one bundle: the current signed prekey, the oldest queued one-time prekey
    /// (removed from the queue), and with PQXDH the oldest queued one-time post-quantum
    /// prekey or else the last-resort one. `None` when nothing is held for the device, or
    /// when the stored parts no longer verify under its identity key.
    pub fn bundle(&mut self) -> Option<PreKeyBundle> {
        let identity = self.identity?;
        let signed = self.signed.clone()?;
        let one_time = self.one_time.pop_front();
        if let Some(key) = &one_time {
            self.gone.insert(key.id().to_u64());
        }
        let bundle = PreKeyBundle::assemble(&identity, &signed, one_time.as_ref()).ok()?;
        #[cfg(feature = "pqxdh")]
        let bundle = match self.pq_one_time.pop_front() {
            Some(key) => {
                self.pq_gone.insert(key.id().to_u64());
                bundle.with_post_quantum(&key).ok()?
            }
            None => match &self.last_resort {
                Some(key) => bundle.with_post_quantum(key).ok()?,
                None => bundle,
            },
        };
        Some(bundle)
    }

    /// Drops queued one-time prekeys by id (the device reports the ones it evicted) and
    /// remembers their ids, as if handed out. Returns how many were queued.
    pub fn drop_one_time_prekeys(&mut self, ids: &[OneTimePreKeyId]) -> usize {
        let before = self.one_time.len();
        self.one_time.retain(|k| !ids.contains(&k.id()));
        self.gone.extend(ids.iter().map(|id| id.to_u64()));
        before - self.one_time.len()
    }

    /// How many one-time prekeys are queued (what a server reports to the device so that
    /// it uploads more in time).
    pub fn queued_one_time_prekeys(&self) -> usize {
        self.one_time.len()
    }

    /// How many one-time post-quantum prekeys are queued.
    #[cfg(feature = "pqxdh")]
    pub fn queued_pq_one_time_prekeys(&self) -> usize {
        self.pq_one_time.len()
    }

    /// The current signed prekey's public part, if any.
    pub fn signed_prekey(&self) -> Option<&SignedPreKeyPublic> {
        self.signed.as_ref()
    }

    /// Replaces the stored signed prekey part without any check, as corrupt storage would:
    /// for testing that such a server hands out nothing.
    pub fn corrupt_signed_prekey(&mut self, part: SignedPreKeyPublic) {
        self.signed = Some(part);
    }
}
