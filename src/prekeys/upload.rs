//! What a device sends its server (SPEC.md §5.12, §8.5): the upload set built from the
//! device's own keys, and marking its one-time prekeys published once the server has
//! confirmed it.

use alloc::vec::Vec;

use super::LocalDevice;
use crate::error::Error;
use crate::format::MAX_UPLOAD_ONE_TIME_PREKEYS;
#[cfg(feature = "pqxdh")]
use crate::format::MAX_UPLOAD_PQ_PREKEYS;
#[cfg(feature = "pqxdh")]
use crate::publish::PqPreKeyPublic;
use crate::publish::{OneTimePreKeyPublic, SignedPreKeyPublic, UploadSet};

impl LocalDevice {
    /// The upload set (SPEC.md §5.12) that brings a server up to date with this device:
    /// its identity key, its current signed prekey with the time it was created, and the
    /// one-time prekeys not yet marked published, oldest first (at most
    /// [`MAX_UPLOAD_ONE_TIME_PREKEYS`](crate::MAX_UPLOAD_ONE_TIME_PREKEYS)). With PQXDH it
    /// also carries the current last-resort post-quantum prekey, if any, and the one-time
    /// post-quantum prekeys not yet published, oldest first (at most
    /// [`MAX_UPLOAD_PQ_PREKEYS`](crate::MAX_UPLOAD_PQ_PREKEYS); call again after
    /// [`LocalDevice::mark_published`] for the rest).
    ///
    /// Draws no randomness and changes nothing: send the set, and once the server has
    /// confirmed it, call [`LocalDevice::mark_published`]. A set sent again because the
    /// confirmation was lost is accepted again by a server that follows SPEC.md §8.5 and
    /// changes nothing there.
    ///
    /// # Errors
    /// [`Error::InvalidEncoding`] or [`Error::InvalidSignature`] only for a device whose
    /// keys are not its own (a corrupt stored device: the set is checked as a server
    /// would check it).
    pub fn upload_set(&self) -> Result<UploadSet, Error> {
        let signed = SignedPreKeyPublic::from_key(&self.current.key, self.current.created)?;
        let one_time = self
            .unpublished_one_time_prekeys()
            .take(MAX_UPLOAD_ONE_TIME_PREKEYS)
            .map(OneTimePreKeyPublic::from_key)
            .collect::<Result<Vec<_>, Error>>()?;
        let set = UploadSet::new(self.identity_key(), signed, one_time)?;
        #[cfg(feature = "pqxdh")]
        let set = {
            let last_resort = match self.pq.current_last_resort {
                Some(id) => {
                    let key = self.pq_prekey(id).ok_or(Error::Internal)?;
                    let times = self.pq.last_resort_times.get(&id).ok_or(Error::Internal)?;
                    Some(PqPreKeyPublic::last_resort(key, times.created)?)
                }
                None => None,
            };
            let one_time = self
                .unpublished_pq_one_time_prekeys()
                .take(MAX_UPLOAD_PQ_PREKEYS)
                .map(PqPreKeyPublic::one_time)
                .collect::<Result<Vec<_>, Error>>()?;
            set.with_post_quantum(last_resort, one_time)?
        };
        Ok(set)
    }

    /// Marks the one-time prekeys of `set` (classical and, with PQXDH, post-quantum)
    /// published: call it once the server has confirmed the set, so that the next
    /// [`LocalDevice::upload_set`] leaves them out. Returns how many were newly marked.
    ///
    /// Only this device's own keys are marked: a set under another identity key marks
    /// nothing, and a key the device no longer holds (used or evicted since) or holds with
    /// other key bytes under the same id is skipped.
    pub fn mark_published(&mut self, set: &UploadSet) -> usize {
        if set.identity_key() != self.identity_key() {
            return 0;
        }
        let one_time: Vec<_> = set
            .one_time_prekeys()
            .iter()
            .filter(|part| {
                self.one_time_prekey(part.id())
                    .is_some_and(|key| key.public_key() == part.public_key())
            })
            .map(OneTimePreKeyPublic::id)
            .collect();
        let marked = self.mark_one_time_prekeys_published(&one_time);
        #[cfg(feature = "pqxdh")]
        let marked = {
            let pq: Vec<_> = set
                .pq_one_time_prekeys()
                .iter()
                .filter(|part| {
                    self.pq_prekey(part.id())
                        .is_some_and(|key| key.public_key() == part.public_key())
                })
                .map(PqPreKeyPublic::id)
                .collect();
            marked + self.mark_pq_prekeys_published(&pq)
        };
        marked
    }
}
