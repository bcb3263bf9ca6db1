//! The post-quantum prekeys of a local device (PQXDH §3.2; SPEC.md §8): one-time ones,
//! generated in batches and evicted beyond the cap like classical ones, and last-resort
//! ones, rotated and retired on the same schedule as signed prekeys.

use alloc::boxed::Box;
use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use super::maintain::{clamp, Maintenance, PreKeyPolicy};
use super::{draw_id, evict_oldest, mark_published, Aged, Generated, LocalDevice, Times};
use crate::error::Error;
use crate::format::{MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS};
use crate::ids::{OneTimePreKeyId, PqPreKeyId};
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::x3dh::PreKeyBundle;

impl LocalDevice {
    /// Generates `count` one-time post-quantum prekeys with fresh random ids, signed by the
    /// device's identity, unpublished. Beyond the cap (the smaller of
    /// [`LocalDevice::one_time_prekey_cap`] and [`MAX_PQ_ONE_TIME_PREKEYS`]) the oldest
    /// one-time post-quantum prekeys are evicted first.
    ///
    /// # Errors
    /// [`Error::StoreFull`] if `count` alone exceeds the cap;
    /// [`Error::RandomnessUnavailable`]. On error nothing is added or evicted.
    pub fn generate_pq_one_time_prekeys<R: TryCryptoRng + ?Sized>(
        &mut self,
        count: usize,
        rng: &mut R,
    ) -> Result<Generated<PqPreKeyId>, Error> {
        let cap = self.cap(MAX_PQ_ONE_TIME_PREKEYS);
        if count > cap {
            return Err(Error::StoreFull);
        }
        self.check_sequence_room(count)?;
        // Staged boxed, so that moving them into the map leaves no copy in the Vec's buffer.
        let mut fresh: Vec<Box<PqPreKey>> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = draw_id(rng, PqPreKeyId::from_u64, |id| {
                self.pq.keys.contains_key(&id) || fresh.iter().any(|k| k.id() == id)
            })?;
            let kind = PqPreKeyKind::OneTime;
            fresh.push(Box::new(PqPreKey::generate(&self.identity, id, kind, rng)?));
        }
        let held = self.pq.count(PqPreKeyKind::OneTime);
        let excess = (held + count).saturating_sub(cap);
        let evicted = evict_oldest(&mut self.pq.keys, excess, |k| {
            k.kind() == PqPreKeyKind::OneTime
        });
        let created: Vec<PqPreKeyId> = fresh.iter().map(|k| k.id()).collect();
        for key in fresh {
            self.insert_pq(key);
        }
        Ok(Generated { created, evicted })
    }

    fn insert_pq(&mut self, key: Box<PqPreKey>) {
        let sequence = self.take_sequence();
        self.pq.keys.insert(key.id(), Aged::new(sequence, key));
    }

    /// Generates a new last-resort post-quantum prekey at `now` and makes it current. The
    /// previous one stays accepted until retired ([`LocalDevice::maintain`] retires it
    /// after the policy's grace period). Returns its id, to publish.
    ///
    /// # Errors
    /// [`Error::StoreFull`] beyond [`MAX_PQ_LAST_RESORT_PREKEYS`];
    /// [`Error::RandomnessUnavailable`]. On error the device is unchanged.
    pub fn rotate_pq_last_resort_prekey<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        rng: &mut R,
    ) -> Result<PqPreKeyId, Error> {
        if self.pq.count(PqPreKeyKind::LastResort) >= MAX_PQ_LAST_RESORT_PREKEYS {
            return Err(Error::StoreFull);
        }
        let key = self.draw_pq_last_resort(rng)?;
        Ok(self.install_last_resort(key, now))
    }

    fn draw_pq_last_resort<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<Box<PqPreKey>, Error> {
        self.check_sequence_room(1)?;
        let id = draw_id(rng, PqPreKeyId::from_u64, |id| {
            self.pq.keys.contains_key(&id)
        })?;
        let kind = PqPreKeyKind::LastResort;
        Ok(Box::new(PqPreKey::generate(&self.identity, id, kind, rng)?))
    }

    /// Makes `key` (generated at `now`) the current last-resort key; the previous one is
    /// superseded at `now`. Callers checked the sequence room and the count.
    fn install_last_resort(&mut self, key: Box<PqPreKey>, now: u64) -> PqPreKeyId {
        let id = key.id();
        if let Some(old) = self.pq.current_last_resort {
            if let Some(times) = self.pq.last_resort_times.get_mut(&old) {
                times.superseded = Some(now);
            }
        }
        self.insert_pq(key);
        let times = Times {
            created: now,
            superseded: None,
        };
        self.pq.last_resort_times.insert(id, times);
        self.pq.current_last_resort = Some(id);
        id
    }

    /// Stops accepting a last-resort post-quantum prekey. The current one cannot be
    /// retired. Returns whether a key was removed. (Replay records belong to signed
    /// prekeys: a replay naming a retired last-resort key fails with
    /// [`Error::UnknownPqPreKey`].)
    pub fn retire_pq_last_resort_prekey(&mut self, id: PqPreKeyId) -> bool {
        let retirable = self.pq.current_last_resort != Some(id)
            && self
                .pq_prekey(id)
                .is_some_and(|k| k.kind() == PqPreKeyKind::LastResort);
        if retirable {
            self.pq.last_resort_times.remove(&id);
        }
        retirable && self.pq.keys.remove(&id).is_some()
    }

    /// A post-quantum prekey (either kind) still accepted, by id.
    pub fn pq_prekey(&self, id: PqPreKeyId) -> Option<&PqPreKey> {
        self.pq.keys.get(&id).map(|e| &*e.key)
    }

    /// The current last-resort post-quantum prekey, if the device has one.
    pub fn current_pq_last_resort_prekey(&self) -> Option<&PqPreKey> {
        self.pq
            .current_last_resort
            .and_then(|id| self.pq_prekey(id))
    }

    /// The unused one-time post-quantum prekeys, oldest first.
    pub fn pq_one_time_prekeys(&self) -> impl Iterator<Item = &PqPreKey> + '_ {
        super::oldest_first(&self.pq.keys, |e| e.key.kind() == PqPreKeyKind::OneTime).into_iter()
    }

    /// The unused one-time post-quantum prekeys not yet marked published, oldest first.
    pub fn unpublished_pq_one_time_prekeys(&self) -> impl Iterator<Item = &PqPreKey> + '_ {
        super::oldest_first(&self.pq.keys, |e| {
            e.key.kind() == PqPreKeyKind::OneTime && !e.published
        })
        .into_iter()
    }

    /// Marks post-quantum prekeys published. Ids not held are skipped. Returns how many
    /// were newly marked.
    pub fn mark_pq_prekeys_published(&mut self, ids: &[PqPreKeyId]) -> usize {
        mark_published(&mut self.pq.keys, ids)
    }

    /// Deletes a one-time post-quantum prekey; returns whether it was present.
    pub fn remove_pq_one_time_prekey(&mut self, id: PqPreKeyId) -> bool {
        let one_time = self
            .pq_prekey(id)
            .is_some_and(|k| k.kind() == PqPreKeyKind::OneTime);
        one_time && self.pq.keys.remove(&id).is_some()
    }

    /// The PQXDH bundle of this device: [`LocalDevice::bundle`] plus the one-time
    /// post-quantum prekey `pq_one_time_id`, or with `None` the current last-resort one.
    ///
    /// # Errors
    /// [`Error::UnknownOneTimePreKey`], or [`Error::UnknownPqPreKey`] if the named one-time
    /// post-quantum prekey is not held or no last-resort one exists (id 0 then).
    pub fn pq_bundle(
        &self,
        one_time_id: Option<OneTimePreKeyId>,
        pq_one_time_id: Option<PqPreKeyId>,
    ) -> Result<PreKeyBundle, Error> {
        let pq = match pq_one_time_id {
            Some(id) => self
                .pq_prekey(id)
                .filter(|k| k.kind() == PqPreKeyKind::OneTime)
                .ok_or(Error::UnknownPqPreKey(id))?,
            None => self
                .current_pq_last_resort_prekey()
                .ok_or(Error::UnknownPqPreKey(PqPreKeyId::from_u64(0)))?,
        };
        Ok(self.bundle(one_time_id)?.with_post_quantum_prekey(pq))
    }

    /// Maintenance step 1 for the last-resort keys; returns whether a time was in the
    /// future.
    pub(super) fn settle_pq_times(&mut self, now: u64) -> bool {
        let current = self.pq.current_last_resort;
        let mut later = false;
        for (id, times) in self.pq.last_resort_times.iter_mut() {
            later |= clamp(&mut times.created, now);
            if Some(*id) != current {
                later |= clamp(times.superseded.get_or_insert(now), now);
            }
        }
        later
    }

    /// The last-resort key a due rotation installs, drawn before anything changes.
    pub(super) fn draw_last_resort<R: TryCryptoRng + ?Sized>(
        &self,
        now: u64,
        policy: &PreKeyPolicy,
        rng: &mut R,
    ) -> Result<Option<Box<PqPreKey>>, Error> {
        let due = self
            .pq
            .current_last_resort
            .and_then(|id| self.pq.last_resort_times.get(&id))
            .is_some_and(|t| super::maintain::rotation_due(t.created, now, policy));
        match due {
            true => Ok(Some(self.draw_pq_last_resort(rng)?)),
            false => Ok(None),
        }
    }

    /// Maintenance steps 2 and 3 for the last-resort keys: retire the due ones, then
    /// install `fresh`, retiring the longest-replaced ones first if the device is full.
    pub(super) fn maintain_last_resort(
        &mut self,
        now: u64,
        policy: &PreKeyPolicy,
        fresh: Option<Box<PqPreKey>>,
        report: &mut Maintenance,
    ) {
        let current = self.pq.current_last_resort;
        let mut replaced: Vec<(Option<u64>, PqPreKeyId)> = self
            .pq
            .last_resort_times
            .iter()
            .filter(|(id, _)| Some(**id) != current)
            .map(|(id, t)| (t.superseded, *id))
            .collect();
        replaced.sort_unstable();
        let full = self.pq.count(PqPreKeyKind::LastResort) >= MAX_PQ_LAST_RESORT_PREKEYS;
        for (i, (superseded, id)) in replaced.into_iter().enumerate() {
            let due = superseded.is_some_and(|t| now.saturating_sub(t) >= policy.retire_after);
            // The longest-replaced key also goes when a rotation needs its place.
            if due || (i == 0 && full && fresh.is_some()) {
                self.retire_pq_last_resort_prekey(id);
                report.retired_pq_last_resort_prekeys.push(id);
            }
        }
        if let Some(key) = fresh {
            if self.pq.count(PqPreKeyKind::LastResort) < MAX_PQ_LAST_RESORT_PREKEYS {
                report.rotated_pq_last_resort_prekey = Some(self.install_last_resort(key, now));
            }
        }
    }
}
