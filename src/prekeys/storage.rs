//! The storage encoding of a local device (SPEC.md §7.5): identity, prekeys, replay
//! records, times and published state, every count bounded and every invariant checked
//! on load.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{Aged, LocalDevice, SignedEntry, Standby};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    IDENTITY_KEY_PAIR_LENGTH, MAX_ONE_TIME_PREKEYS, MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY,
    MAX_SIGNED_PREKEYS, ONE_TIME_PREKEY_LENGTH, SIGNED_PREKEY_LENGTH, STORE_REPLAY_RECORD_LENGTH,
    TYPE_IDENTITY, TYPE_LOCAL_DEVICE,
};
#[cfg(feature = "pqxdh")]
use crate::format::{MAX_PQ_LAST_RESORT_PREKEYS, MAX_PQ_ONE_TIME_PREKEYS, PQ_PREKEY_LENGTH};
#[cfg(feature = "pqxdh")]
use crate::ids::PqPreKeyId;
use crate::ids::SignedPreKeyId;
use crate::keys::{
    read_one_time_prekey, read_signed_prekey, write_one_time_prekey, write_signed_prekey,
    x25519_public_from_bytes, IdentityKeyPair,
};
#[cfg(feature = "pqxdh")]
use crate::pq::{PqPreKey, PqPreKeyKind};
use crate::seal::{read_stored_header, stored_reader, write_stored_header};

/// The width of an optional time: a flag byte and a u64.
const OPTIONAL_TIME: usize = 1 + 8;

fn put_time(out: &mut Vec<u8>, time: Option<u64>) {
    let bytes = time.map(u64::to_be_bytes);
    out.put_optional(bytes.as_ref().map(|b| &b[..]), 8);
}

fn read_time(r: &mut Reader<'_>) -> Result<Option<u64>, Error> {
    Ok(r.optional::<8>()?.map(u64::from_be_bytes))
}

impl LocalDevice {
    /// The storage encoding (SPEC.md §7.5), in a buffer wiped on drop: it holds every
    /// secret of the device.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_length()));
        write_stored_header(&mut out, TYPE_LOCAL_DEVICE);
        write_stored_header(&mut out, TYPE_IDENTITY);
        out.put(self.identity.seed());
        out.put_u32(self.replay_capacity);
        out.put_u32(self.one_time_cap);
        out.put_u64(self.next_sequence);
        out.put_u64(self.current.key.id().to_u64());
        // Every count is bounded by a MAX_* constant, far below u32::MAX.
        out.put_u32(1 + self.previous.len() as u32);
        let mut signed: Vec<&SignedEntry> = self.previous.values().map(|e| &**e).collect();
        signed.push(&self.current);
        signed.sort_unstable_by_key(|e| e.key.id());
        for entry in signed {
            write_signed_prekey(&mut out, &entry.key);
            out.put_u64(entry.created);
            put_time(&mut out, entry.superseded);
            out.put_u32(entry.records.len() as u32);
            for base_key in &entry.records {
                out.put(base_key);
            }
        }
        match &self.standby {
            Some(standby) => {
                out.put_u8(1);
                write_signed_prekey(&mut out, &standby.key);
                out.put_u64(standby.created);
            }
            None => out.put_optional(None, SIGNED_PREKEY_LENGTH + 8),
        }
        out.put_u32(self.one_time.len() as u32);
        for entry in self.one_time.values() {
            out.put_u64(entry.sequence);
            out.put_u8(u8::from(entry.published));
            write_one_time_prekey(&mut out, &entry.key);
        }
        self.write_post_quantum(&mut out);
        out
    }

    fn encoded_length(&self) -> usize {
        #[cfg(feature = "pqxdh")]
        let pq = self.pq.keys.len() * (9 + PQ_PREKEY_LENGTH + 8 + OPTIONAL_TIME);
        #[cfg(not(feature = "pqxdh"))]
        let pq = 0;
        2 + IDENTITY_KEY_PAIR_LENGTH
            + 4
            + 4
            + 8
            + 8
            + 4
            + (1 + self.previous.len()) * (SIGNED_PREKEY_LENGTH + 8 + OPTIONAL_TIME + 4)
            + self.replay_records() * STORE_REPLAY_RECORD_LENGTH
            + 1
            + SIGNED_PREKEY_LENGTH
            + 8
            + 4
            + self.one_time.len() * (9 + ONE_TIME_PREKEY_LENGTH)
            + OPTIONAL_TIME
            + 4
            + pq
    }

    #[cfg(feature = "pqxdh")]
    fn write_post_quantum(&self, out: &mut Vec<u8>) {
        put_time(out, self.pq.current_last_resort.map(PqPreKeyId::to_u64));
        out.put_u32(self.pq.keys.len() as u32);
        for (id, entry) in &self.pq.keys {
            out.put_u64(entry.sequence);
            out.put_u8(u8::from(entry.published));
            entry.key.write(out);
            let times = self.pq.last_resort_times.get(id);
            out.put_u64(times.map_or(0, |t| t.created));
            put_time(out, times.and_then(|t| t.superseded));
        }
    }

    #[cfg(not(feature = "pqxdh"))]
    fn write_post_quantum(&self, out: &mut Vec<u8>) {
        out.put_optional(None, 8);
        out.put_u32(0);
    }

    /// Loads a stored local device, validating every count, id, record, time and sequence
    /// number (SPEC.md §7.5).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Truncated`], [`Error::TrailingData`],
    /// [`Error::UnsupportedVersion`], [`Error::UnexpectedType`], [`Error::InvalidEncoding`]
    /// or [`Error::InvalidPublicKey`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = stored_reader(bytes)?;
        read_stored_header(&mut r, TYPE_LOCAL_DEVICE)?;
        read_stored_header(&mut r, TYPE_IDENTITY)?;
        let identity = IdentityKeyPair::from_seed(&Zeroizing::new(r.array::<32>()?));
        let replay_capacity = r.u32()?;
        let one_time_cap = r.u32()?;
        if replay_capacity == 0
            || replay_capacity > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY
            || one_time_cap == 0
            || one_time_cap as usize > MAX_ONE_TIME_PREKEYS
        {
            return Err(Error::InvalidEncoding);
        }
        let next_sequence = r.u64()?;
        let current_id = SignedPreKeyId::from_u64(r.u64()?);
        let (current, previous) = read_signed_entries(&mut r, current_id)?;
        let standby = match r.flag()? {
            true => Some(Standby {
                key: Box::new(read_signed_prekey(&mut r)?),
                created: r.u64()?,
            }),
            false => {
                zeros(&mut r, SIGNED_PREKEY_LENGTH + 8)?;
                None
            }
        };
        let mut device = LocalDevice {
            identity,
            current,
            previous,
            standby,
            one_time: BTreeMap::new(),
            next_sequence,
            replay_capacity,
            one_time_cap,
            #[cfg(feature = "pqxdh")]
            pq: super::PqKeys::default(),
        };
        if device
            .standby
            .as_ref()
            .is_some_and(|s| s.key.id().to_u64() == 0 || device.signed_entry(s.key.id()).is_some())
            || device.signed_count() > MAX_SIGNED_PREKEYS
        {
            return Err(Error::InvalidEncoding);
        }
        let mut sequences = BTreeSet::new();
        device.one_time = read_aged(
            &mut r,
            MAX_ONE_TIME_PREKEYS,
            next_sequence,
            &mut sequences,
            |r| {
                let key = read_one_time_prekey(r)?;
                Ok((key.id(), key))
            },
        )?;
        device.read_post_quantum(&mut r, &mut sequences)?;
        r.finish()?;
        Ok(device)
    }

    #[cfg(feature = "pqxdh")]
    fn read_post_quantum(
        &mut self,
        r: &mut Reader<'_>,
        sequences: &mut BTreeSet<u64>,
    ) -> Result<(), Error> {
        let current_last_resort = read_time(r)?.map(PqPreKeyId::from_u64);
        let max = MAX_PQ_ONE_TIME_PREKEYS + MAX_PQ_LAST_RESORT_PREKEYS;
        let mut times = BTreeMap::new();
        let keys = read_aged(r, max, self.next_sequence, sequences, |r| {
            let key = PqPreKey::read(r)?;
            let created = r.u64()?;
            let superseded = read_time(r)?;
            match key.kind() {
                PqPreKeyKind::OneTime if created != 0 || superseded.is_some() => {
                    return Err(Error::InvalidEncoding)
                }
                PqPreKeyKind::OneTime => {}
                PqPreKeyKind::LastResort => {
                    let current = current_last_resort == Some(key.id());
                    if current == superseded.is_some() {
                        return Err(Error::InvalidEncoding);
                    }
                    let t = super::Times {
                        created,
                        superseded,
                    };
                    times.insert(key.id(), t);
                }
            }
            Ok((key.id(), key))
        })?;
        self.pq = super::PqKeys {
            current_last_resort,
            keys,
            last_resort_times: times,
        };
        if self.pq.count(PqPreKeyKind::OneTime) > MAX_PQ_ONE_TIME_PREKEYS
            || self.pq.count(PqPreKeyKind::LastResort) > MAX_PQ_LAST_RESORT_PREKEYS
            || current_last_resort.is_some_and(|id| !self.pq.last_resort_times.contains_key(&id))
        {
            return Err(Error::InvalidEncoding);
        }
        Ok(())
    }

    /// A build without PQXDH loads a device only if its post-quantum part is empty.
    #[cfg(not(feature = "pqxdh"))]
    fn read_post_quantum(
        &mut self,
        r: &mut Reader<'_>,
        _sequences: &mut BTreeSet<u64>,
    ) -> Result<(), Error> {
        if r.optional::<8>()?.is_some() || r.u32()? != 0 {
            return Err(Error::InvalidEncoding);
        }
        Ok(())
    }
}

/// `n` bytes that must all be zero.
fn zeros(r: &mut Reader<'_>, n: usize) -> Result<(), Error> {
    match r.take(n)?.iter().all(|b| *b == 0) {
        true => Ok(()),
        false => Err(Error::InvalidEncoding),
    }
}

/// The accepted signed prekeys with their times and replay records: `s` (1 ..= 16), then
/// each signed prekey, strictly increasing by id, with its creation time, the time it was
/// replaced (absent for the current one), and `r` (at most
/// [`MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY`]) base keys, strictly increasing. The current
/// id must be among them.
#[allow(clippy::type_complexity)]
fn read_signed_entries(
    r: &mut Reader<'_>,
    current_id: SignedPreKeyId,
) -> Result<(Box<SignedEntry>, BTreeMap<SignedPreKeyId, Box<SignedEntry>>), Error> {
    let count = r.u32()? as usize;
    if count == 0 || count > MAX_SIGNED_PREKEYS {
        return Err(Error::InvalidEncoding);
    }
    let mut entries: BTreeMap<SignedPreKeyId, Box<SignedEntry>> = BTreeMap::new();
    for _ in 0..count {
        let key = read_signed_prekey(r)?;
        let last = entries.keys().next_back().map(|k| k.to_u64());
        check_increasing(key.id().to_u64(), last)?;
        let mut entry = SignedEntry::new(Box::new(key), r.u64()?);
        entry.superseded = read_time(r)?;
        if entry.key.id() == current_id && entry.superseded.is_some() {
            return Err(Error::InvalidEncoding);
        }
        let records = r.u32()?;
        if records > MAX_REPLAY_RECORDS_PER_SIGNED_PREKEY {
            return Err(Error::InvalidEncoding);
        }
        for _ in 0..records {
            let base_key: [u8; 32] = r.array()?;
            x25519_public_from_bytes(&base_key)?;
            if entry.records.last().is_some_and(|last| *last >= base_key) {
                return Err(Error::InvalidEncoding);
            }
            entry.records.insert(base_key);
        }
        entries.insert(entry.key.id(), entry);
    }
    let current = entries.remove(&current_id).ok_or(Error::InvalidEncoding)?;
    Ok((current, entries))
}

/// A count (at most `max`), then that many `sequence (u64) || published (u8) || key`,
/// strictly increasing by id, each sequence below `next_sequence` and distinct from every
/// other read.
fn read_aged<I: Copy + Ord + Into<u64>, K>(
    r: &mut Reader<'_>,
    max: usize,
    next_sequence: u64,
    sequences: &mut BTreeSet<u64>,
    mut read: impl FnMut(&mut Reader<'_>) -> Result<(I, K), Error>,
) -> Result<BTreeMap<I, Aged<K>>, Error> {
    let count = r.u32()? as usize;
    if count > max {
        return Err(Error::InvalidEncoding);
    }
    let mut keys = BTreeMap::new();
    for _ in 0..count {
        let sequence = r.u64()?;
        let published = r.flag()?;
        let (id, key) = read(r)?;
        check_increasing(id.into(), keys.keys().next_back().map(|k: &I| (*k).into()))?;
        if sequence >= next_sequence || !sequences.insert(sequence) {
            return Err(Error::InvalidEncoding);
        }
        let aged = Aged {
            sequence,
            published,
            key: Box::new(key),
        };
        keys.insert(id, aged);
    }
    Ok(keys)
}

/// Stored ids are never 0 and strictly increasing.
fn check_increasing(id: u64, last: Option<u64>) -> Result<(), Error> {
    if id == 0 || last.is_some_and(|last| last >= id) {
        return Err(Error::InvalidEncoding);
    }
    Ok(())
}
