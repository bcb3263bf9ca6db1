//! Scheduled rotation and retirement of signed and last-resort prekeys (SPEC.md §8),
//! driven by the app's clock: this crate has none (`no_std`), so every call takes `now`,
//! seconds since the Unix epoch.

use alloc::vec::Vec;

use rand_core::TryCryptoRng;

use alloc::boxed::Box;

use super::{LocalDevice, SignedEntry, Standby};
use crate::error::Error;
use crate::format::MAX_SIGNED_PREKEYS;
#[cfg(feature = "pqxdh")]
use crate::ids::PqPreKeyId;
use crate::ids::SignedPreKeyId;
use crate::keys::SignedPreKey;

/// When [`LocalDevice::maintain`] rotates and retires keys. The defaults rotate the signed
/// prekey (and the last-resort post-quantum prekey) weekly and keep a replaced one
/// accepted for 30 days, long enough for a bundle fetched before the rotation to be used
/// by an initiator who was offline.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreKeyPolicy {
    /// Rotate the current signed (and last-resort post-quantum) prekey once it is this
    /// many seconds old.
    pub rotate_after: u64,
    /// Retire a replaced signed (or last-resort post-quantum) prekey this many seconds
    /// after it was replaced.
    pub retire_after: u64,
}

impl Default for PreKeyPolicy {
    fn default() -> Self {
        PreKeyPolicy {
            rotate_after: 7 * DAY,
            retire_after: 30 * DAY,
        }
    }
}

impl PreKeyPolicy {
    /// The policy with these ages, in seconds.
    pub fn new(rotate_after: u64, retire_after: u64) -> Self {
        PreKeyPolicy {
            rotate_after,
            retire_after,
        }
    }
}

const DAY: u64 = 24 * 60 * 60;

/// What [`LocalDevice::maintain`] did. When [`Maintenance::needs_upload`], publish the
/// device's current prekeys again.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// The new current signed prekey, if it was rotated.
    pub rotated_signed_prekey: Option<SignedPreKeyId>,
    /// The signed prekeys retired (no longer accepted). Nothing to tell the server: it
    /// serves only the signed prekey of the last upload set (SPEC.md §8.5).
    pub retired_signed_prekeys: Vec<SignedPreKeyId>,
    /// Whether a standby signed prekey was generated (after a switch used the last one).
    pub replenished_standby: bool,
    /// The new current last-resort post-quantum prekey, if it was rotated.
    #[cfg(feature = "pqxdh")]
    pub rotated_pq_last_resort_prekey: Option<PqPreKeyId>,
    /// The last-resort post-quantum prekeys retired.
    #[cfg(feature = "pqxdh")]
    pub retired_pq_last_resort_prekeys: Vec<PqPreKeyId>,
    /// Whether a stored time was later than `now`: the clock went backwards (a restored
    /// device, a changed date). Those times were set to `now`, so the ages restart; no
    /// key was rotated or retired because of it.
    pub clock_went_backwards: bool,
    /// Whether the device changed at all (a key rotated, retired or generated, or a stored
    /// time set): persist it then. Also true when only times were settled, which changes
    /// nothing to publish.
    pub changed: bool,
}

impl Maintenance {
    /// Whether a key to publish changed: upload the current signed prekey (and last-resort
    /// post-quantum prekey) again.
    pub fn needs_upload(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        let pq = self.rotated_pq_last_resort_prekey.is_some();
        #[cfg(not(feature = "pqxdh"))]
        let pq = false;
        self.rotated_signed_prekey.is_some() || pq
    }
}

/// Sets a time later than `now` to `now`; returns whether it did.
pub(super) fn clamp(time: &mut u64, now: u64) -> bool {
    let later = *time > now;
    if later {
        *time = now;
    }
    later
}

impl SignedEntry {
    /// Clamps the times to `now` and stamps an unknown supersession with `now`; returns
    /// whether a time was in the future.
    fn settle_times(&mut self, now: u64, is_current: bool) -> bool {
        let mut later = clamp(&mut self.created, now);
        if !is_current {
            let superseded = self.superseded.get_or_insert(now);
            later |= clamp(superseded, now);
        }
        later
    }

    fn retire_due(&self, now: u64, policy: &PreKeyPolicy) -> bool {
        self.superseded
            .is_some_and(|t| now.saturating_sub(t) >= policy.retire_after)
    }
}

/// Whether a current key created at `created` is due for rotation at `now` (SPEC.md §8):
/// old enough, or created "in the future" (the clock went backwards). Its creation time is
/// published with it, so it cannot be moved back to `now` under the same id: a server
/// would refuse the next upload set (SPEC.md §8.5). A fresh key created at `now` replaces
/// it instead.
pub(super) fn rotation_due(created: u64, now: u64, policy: &PreKeyPolicy) -> bool {
    created > now || now - created >= policy.rotate_after
}

impl LocalDevice {
    /// Keeps the device's prekeys fresh (SPEC.md §8); call it at start-up and then
    /// daily, with the app's clock. In this order:
    ///
    /// 1. every stored time later than `now` is set to `now` (the clock went backwards:
    ///    [`Maintenance::clock_went_backwards`]), and a signed prekey that a switch inside
    ///    [`LocalDevice::accept`] replaced gets `now` as the time it was replaced;
    /// 2. replaced signed (and last-resort post-quantum) prekeys replaced at least
    ///    `retire_after` ago are retired;
    /// 3. the current signed prekey is rotated if it is at least `rotate_after` old or was
    ///    created after `now` (its published creation time cannot change; first
    ///    retiring the longest-replaced ones if [`MAX_SIGNED_PREKEYS`] would be exceeded),
    ///    likewise the last-resort post-quantum prekey, and a missing standby is generated.
    ///
    /// A clock that jumps forward rotates and retires early, as time passing would; one
    /// that jumps back behind the current keys' creation rotates them (they were created
    /// "in the future") and delays retirement by at most the jump. After a rotation, publish the
    /// device's prekeys again ([`Maintenance::needs_upload`]).
    ///
    /// # Errors
    /// [`Error::RandomnessUnavailable`]; [`Error::StoreFull`] only for a stored device
    /// crafted with its post-quantum keys or sequence counter at their limits. On error the
    /// device is unchanged.
    pub fn maintain<R: TryCryptoRng + ?Sized>(
        &mut self,
        now: u64,
        policy: &PreKeyPolicy,
        rng: &mut R,
    ) -> Result<Maintenance, Error> {
        // Every draw first, on the side: an RNG failure leaves the device as it was.
        let rotate = rotation_due(self.current.created, now, policy);
        let (next, standby) = self.draw_signed(rotate, now, rng)?;
        #[cfg(feature = "pqxdh")]
        let fresh_pq = self.draw_last_resort(now, policy, rng)?;
        let unstamped = self.has_unstamped_times();
        let mut report = Maintenance {
            clock_went_backwards: self.settle_times(now),
            ..Maintenance::default()
        };
        self.retire_signed(now, policy, &mut report);
        self.make_room_for(
            usize::from(next.is_some()) + usize::from(standby.is_some()),
            &mut report,
        );
        report.replenished_standby = standby.is_some();
        match next {
            Some(next) => {
                let standby = self.standby.take().or(standby);
                report.rotated_signed_prekey =
                    Some(self.install_signed(next, now, Some(now), standby));
            }
            None => self.standby = self.standby.take().or(standby),
        }
        #[cfg(feature = "pqxdh")]
        self.maintain_last_resort(now, policy, fresh_pq, &mut report);
        #[cfg(feature = "pqxdh")]
        let pq_changed = !report.retired_pq_last_resort_prekeys.is_empty();
        #[cfg(not(feature = "pqxdh"))]
        let pq_changed = false;
        report.changed = unstamped
            || report.clock_went_backwards
            || report.replenished_standby
            || report.needs_upload()
            || !report.retired_signed_prekeys.is_empty()
            || pq_changed;
        Ok(report)
    }

    /// Whether a replaced key lacks the time it was replaced (a switch inside
    /// [`LocalDevice::accept`], which has no clock): step 1 of `maintain` stamps it.
    fn has_unstamped_times(&self) -> bool {
        #[cfg(feature = "pqxdh")]
        let pq = {
            let current = self.pq.current_last_resort;
            self.pq
                .last_resort_times
                .iter()
                .any(|(id, t)| Some(*id) != current && t.superseded.is_none())
        };
        #[cfg(not(feature = "pqxdh"))]
        let pq = false;
        pq || self.previous.values().any(|e| e.superseded.is_none())
    }

    /// The keys maintenance may install, drawn before anything changes: a new current
    /// signed prekey if `rotate`, and a new standby if there is none.
    fn draw_signed<R: TryCryptoRng + ?Sized>(
        &self,
        rotate: bool,
        now: u64,
        rng: &mut R,
    ) -> Result<(Option<Box<SignedPreKey>>, Option<Standby>), Error> {
        let next = match rotate {
            true => Some(self.fresh_signed_prekey(None, rng)?),
            false => None,
        };
        let standby = match self.standby {
            Some(_) => None,
            None => Some(Standby {
                key: self.fresh_signed_prekey(next.as_ref().map(|k| k.id()), rng)?,
                created: now,
            }),
        };
        Ok((next, standby))
    }

    /// Step 1 of [`LocalDevice::maintain`] for the signed prekeys (and the post-quantum
    /// ones): returns whether a time was in the future.
    fn settle_times(&mut self, now: u64) -> bool {
        let mut later = self.current.settle_times(now, true);
        for entry in self.previous.values_mut() {
            later |= entry.settle_times(now, false);
        }
        if let Some(standby) = &mut self.standby {
            later |= clamp(&mut standby.created, now);
        }
        #[cfg(feature = "pqxdh")]
        {
            later |= self.settle_pq_times(now);
        }
        later
    }

    fn retire_signed(&mut self, now: u64, policy: &PreKeyPolicy, report: &mut Maintenance) {
        let due: Vec<SignedPreKeyId> = self
            .previous
            .iter()
            .filter(|(_, e)| e.retire_due(now, policy))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.previous.remove(&id);
            report.retired_signed_prekeys.push(id);
        }
    }

    /// Retires the longest-replaced signed prekeys until `adding` more fit under
    /// [`MAX_SIGNED_PREKEYS`].
    fn make_room_for(&mut self, adding: usize, report: &mut Maintenance) {
        while self.signed_count() + adding > MAX_SIGNED_PREKEYS {
            let oldest = self
                .previous
                .iter()
                .min_by_key(|(id, e)| (e.superseded, **id))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.previous.remove(&id);
                    report.retired_signed_prekeys.push(id);
                }
                None => break,
            }
        }
    }
}
