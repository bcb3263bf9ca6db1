//! The storage encoding of a session record (SPEC.md §7.8, type `0x2B`): the identities,
//! the limits, the §6.4 and §6.8 state, then each session's own storage encoding (§7.1)
//! with its time and retired flag, the sending session first.
//!
//! Loading checks each field in the order of SPEC.md §7.8's table, then what the record's
//! operations keep true: every session is between the record's two identities, ids are
//! distinct, the sending session is not retired, the archive and the skipped keys are
//! within the record's limits, and the last decrypting session is one of the record's.

use alloc::boxed::Box;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{Entry, RecordLimits, ResetMark, SessionRecord};
use crate::codec::{Reader, Writer};
use crate::error::Error;
use crate::format::{
    MAX_RECORD_SIZE, RECORD_ENTRY_OVERHEAD, RECORD_FIXED_LENGTH, STORAGE_VERSION,
    TYPE_SESSION_RECORD,
};
use crate::keys::IdentityKey;
use crate::seal::write_stored_header;
use crate::session::Session;
use crate::wire::read_version_and_type;
use crate::x3dh::SessionId;

impl SessionRecord {
    /// The storage encoding of the whole record (SPEC.md §7.8): every session with its
    /// skipped keys, the limits and the routing state. Store it after every call that
    /// changed the record.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // Each session's encoding first, so that the output is allocated once at its exact
        // size: a growing buffer would leave copies of the keys in freed memory.
        let sessions: Vec<Zeroizing<Vec<u8>>> = self
            .sending
            .iter()
            .chain(&self.archived)
            .map(|e| e.session.to_bytes())
            .collect();
        let len = RECORD_FIXED_LENGTH
            + sessions
                .iter()
                .map(|s| RECORD_ENTRY_OVERHEAD + s.len())
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        write_stored_header(&mut out, TYPE_SESSION_RECORD);
        out.put(self.local.as_bytes());
        out.put(self.remote.as_bytes());
        self.limits.write(&mut out);
        out.put_optional(
            self.last_decrypted.as_ref().map(|id| &id.as_bytes()[..]),
            32,
        );
        let reset = self.last_reset.map(|mark| {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&mark.request_time.to_be_bytes());
            bytes[8..].copy_from_slice(&mark.at.to_be_bytes());
            bytes
        });
        out.put_optional(reset.as_ref().map(|b| &b[..]), 16);
        out.put_u8(u8::from(self.sending.is_some()));
        // At most MAX_ARCHIVED_CAP, checked whenever the archive grows.
        out.put_u32(self.archived.len() as u32);
        for (entry, session) in self.sending.iter().chain(&self.archived).zip(&sessions) {
            entry.write(session, &mut out);
        }
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Loads a stored record, validating every field and every session (SPEC.md §7.8).
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`MAX_RECORD_SIZE`]; [`Error::Truncated`],
    /// [`Error::TrailingData`], [`Error::UnsupportedVersion`], [`Error::UnexpectedType`],
    /// [`Error::InvalidEncoding`], [`Error::InvalidPublicKey`], [`Error::InvalidLimits`],
    /// or any error of [`Session::from_bytes`] for a session inside.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(Error::TooLarge);
        }
        let mut r = Reader::new(bytes);
        read_version_and_type(&mut r, STORAGE_VERSION, TYPE_SESSION_RECORD)?;
        let local = IdentityKey::from_bytes(&r.array()?)?;
        let remote = IdentityKey::from_bytes(&r.array()?)?;
        if local == remote {
            return Err(Error::InvalidEncoding);
        }
        let limits = RecordLimits::read(&mut r)?;
        let last_decrypted = r.optional::<32>()?.map(SessionId::from_bytes);
        let last_reset = r.optional::<16>()?.map(|b| {
            let mut request_time = [0u8; 8];
            let mut at = [0u8; 8];
            request_time.copy_from_slice(&b[..8]);
            at.copy_from_slice(&b[8..]);
            ResetMark {
                request_time: u64::from_be_bytes(request_time),
                at: u64::from_be_bytes(at),
            }
        });
        let has_sending = r.flag()?;
        let count = r.u32()?;
        if count > limits.max_archived {
            return Err(Error::InvalidEncoding);
        }
        let sending = if has_sending {
            let entry = Entry::read(&mut r, &local, &remote)?;
            if entry.retired {
                return Err(Error::InvalidEncoding);
            }
            Some(entry)
        } else {
            None
        };
        let mut archived = Vec::new();
        for _ in 0..count {
            archived.push(Entry::read(&mut r, &local, &remote)?);
        }
        r.finish()?;
        let record = SessionRecord {
            local,
            remote,
            limits,
            sending,
            archived,
            last_decrypted,
            last_reset,
        };
        record.check_loaded()?;
        Ok(record)
    }

    /// What a record's operations keep true, checked on a loaded one.
    fn check_loaded(&self) -> Result<(), Error> {
        let ids: Vec<SessionId> = self.session_ids().collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(Error::InvalidEncoding);
            }
        }
        if let Some(last) = &self.last_decrypted {
            if !ids.contains(last) {
                return Err(Error::InvalidEncoding);
            }
        }
        if self.stored_skipped_keys() > self.limits.max_stored_skipped as usize {
            return Err(Error::InvalidEncoding);
        }
        Ok(())
    }
}

impl Entry {
    /// `created (u64) | retired (flag) | length (u32) | session (§7.1)`, with `session`
    /// this entry's session's encoding.
    fn write(&self, session: &[u8], out: &mut Vec<u8>) {
        out.put_u64(self.created);
        out.put_u8(u8::from(self.retired));
        // A stored session is at most MAX_STORED_SIZE bytes.
        out.put_u32(session.len() as u32);
        out.put(session);
    }

    /// One entry, whose session must be between `local` and `remote`.
    fn read(
        r: &mut Reader<'_>,
        local: &IdentityKey,
        remote: &IdentityKey,
    ) -> Result<Box<Self>, Error> {
        let created = r.u64()?;
        let retired = r.flag()?;
        let length = r.u32()? as usize;
        // The session's local identity is the record's (a stored session does not repeat
        // it); its stored remote identity must be the record's (checked by the loader,
        // byte for byte, in place of a second validation of the same key).
        let session = Session::from_record_bytes(r.take(length)?, local, remote)?;
        Ok(Entry::new(session, created, retired))
    }
}

impl RecordLimits {
    /// `max_archived (u32) | max_trials (u32) | max_stored_skipped (u32) |
    /// unacknowledged_after (u64) | reset_interval (u64)`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.put_u32(self.max_archived);
        out.put_u32(self.max_trials);
        out.put_u32(self.max_stored_skipped);
        out.put_u64(self.unacknowledged_after);
        out.put_u64(self.reset_interval);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let limits = RecordLimits {
            max_archived: r.u32()?,
            max_trials: r.u32()?,
            max_stored_skipped: r.u32()?,
            unacknowledged_after: r.u64()?,
            reset_interval: r.u64()?,
        };
        limits.validate()?;
        Ok(limits)
    }
}
