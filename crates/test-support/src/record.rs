//! The storage encoding of a session record (SPEC.md §7.8, type `0x2B`) seen from outside:
//! the offsets of its fixed fields and a reader and writer of its entries. Tests use it to
//! look at the archived sessions (a [`SessionRecord`] shows only its sending session), to
//! send on an archived session, and to build the hostile records a loader must refuse.
//!
//! ```text
//! version | 0x2B | IK_local (32) | IK_remote (32)
//! | max_archived (u32) | max_trials (u32) | max_stored_skipped (u32)
//! | unacknowledged_after (u64) | reset_interval (u64)
//! | last_decrypted: flag | session id (32, zero when absent)
//! | last_reset: flag | request time (u64) | at (u64) (zero when absent)
//! | has_sending (flag) | archived count (u32)
//! | entries, the sending one first: created (u64) | retired (flag) | length (u32) | session (§7.1)
//! ```

use doubleratchet::{
    Error, IdentityKey, LocalDevice, PreKeyBundle, Session, SessionId, SessionOptions,
    SessionRecord,
};
use rand_chacha::ChaCha20Rng;

use crate::wire::{get_u32, get_u64};

/// The object type byte of a stored record.
pub const TYPE_SESSION_RECORD: u8 = 0x2B;
/// The local identity key.
pub const LOCAL: usize = 2;
/// The remote identity key.
pub const REMOTE: usize = 34;
/// `max_archived` (u32).
pub const MAX_ARCHIVED: usize = 66;
/// `max_trials` (u32).
pub const MAX_TRIALS: usize = 70;
/// `max_stored_skipped` (u32).
pub const MAX_STORED_SKIPPED: usize = 74;
/// `unacknowledged_after` (u64).
pub const UNACKNOWLEDGED_AFTER: usize = 78;
/// `reset_interval` (u64).
pub const RESET_INTERVAL: usize = 86;
/// The flag of the last decrypting session; its id follows.
pub const LAST_DECRYPTED: usize = 94;
/// The flag of the last reset; its request time (u64) and time (u64) follow.
pub const LAST_RESET: usize = 127;
/// Whether the first entry is the sending session.
pub const HAS_SENDING: usize = 144;
/// The number of archived entries (u32).
pub const ARCHIVED_COUNT: usize = 145;
/// The first entry; also the length of a record without sessions.
pub const ENTRIES: usize = 149;
/// An entry before its session's encoding: created (u64), retired (flag), length (u32).
pub const ENTRY_OVERHEAD: usize = 13;

/// One stored entry of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// When the session was added to the record (the app's time).
    pub created: u64,
    /// Whether the session may never send again.
    pub retired: bool,
    /// The session's own storage encoding (SPEC.md §7.1).
    pub session: Vec<u8>,
}

impl StoredEntry {
    /// The entry's session, loaded for the device whose identity key is `local` (the
    /// record's local identity).
    pub fn load(&self, local: &IdentityKey) -> Session {
        Session::from_bytes(&self.session, local).unwrap()
    }
}

/// A stored record split into its fixed fields and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The first [`ENTRIES`] bytes, as stored.
    pub fixed: Vec<u8>,
    /// The entries in stored order: the sending session first (if the flag says so), then
    /// the archived ones, most recently used first.
    pub entries: Vec<StoredEntry>,
}

impl StoredRecord {
    /// Splits a well-formed encoding; panics on anything unexpected.
    #[track_caller]
    pub fn parse(bytes: &[u8]) -> StoredRecord {
        assert_eq!(bytes[1], TYPE_SESSION_RECORD, "not a stored record");
        let fixed = bytes[..ENTRIES].to_vec();
        let count = usize::from(bytes[HAS_SENDING] == 1) + get_u32(bytes, ARCHIVED_COUNT) as usize;
        let mut at = ENTRIES;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let created = get_u64(bytes, at);
            let retired = match bytes[at + 8] {
                0 => false,
                1 => true,
                other => panic!("retired flag {other}"),
            };
            let length = get_u32(bytes, at + 9) as usize;
            let start = at + ENTRY_OVERHEAD;
            entries.push(StoredEntry {
                created,
                retired,
                session: bytes[start..start + length].to_vec(),
            });
            at = start + length;
        }
        assert_eq!(at, bytes.len(), "bytes after the last entry");
        StoredRecord { fixed, entries }
    }

    /// The record's encoding, split.
    pub fn of(record: &SessionRecord) -> StoredRecord {
        StoredRecord::parse(&record.to_bytes())
    }

    /// The fixed fields followed by the entries, as they are (the flag and the count are
    /// not recomputed: a test may make them disagree on purpose).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.fixed.clone();
        for entry in &self.entries {
            out.extend_from_slice(&entry.created.to_be_bytes());
            out.push(u8::from(entry.retired));
            out.extend_from_slice(&(entry.session.len() as u32).to_be_bytes());
            out.extend_from_slice(&entry.session);
        }
        out
    }

    /// Loads [`StoredRecord::to_bytes`].
    pub fn load(&self) -> Result<SessionRecord, Error> {
        SessionRecord::from_bytes(&self.to_bytes())
    }

    /// Whether the first entry is the sending session.
    pub fn has_sending(&self) -> bool {
        self.fixed[HAS_SENDING] == 1
    }

    /// Sets the flag of the sending session and the archived count to match the entries.
    pub fn set_counts(&mut self, has_sending: bool) {
        self.fixed[HAS_SENDING] = u8::from(has_sending);
        let archived = self.entries.len() - usize::from(has_sending);
        self.fixed[ARCHIVED_COUNT..ENTRIES].copy_from_slice(&(archived as u32).to_be_bytes());
    }

    /// The record's local identity key (the one its sessions are loaded with).
    pub fn local(&self) -> IdentityKey {
        IdentityKey::from_bytes(self.fixed[LOCAL..LOCAL + 32].try_into().unwrap()).unwrap()
    }

    /// The session of entry `i`, loaded.
    pub fn session(&self, i: usize) -> Session {
        self.entries[i].load(&self.local())
    }

    /// Every session, loaded, in stored order.
    pub fn sessions(&self) -> Vec<Session> {
        let local = self.local();
        self.entries.iter().map(|e| e.load(&local)).collect()
    }

    /// The index of the entry of session `id`.
    pub fn position(&self, id: SessionId) -> Option<usize> {
        let local = self.local();
        self.entries.iter().position(|e| e.load(&local).id() == id)
    }
}

/// The key agreement and header mode of the sessions a test makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// X3DH, cleartext headers.
    Classical,
    /// X3DH, encrypted headers.
    HeaderEncrypted,
    /// PQXDH, cleartext headers.
    #[cfg(feature = "pqxdh")]
    PostQuantum,
    /// PQXDH, encrypted headers.
    #[cfg(feature = "pqxdh")]
    PostQuantumHeaderEncrypted,
}

impl Mode {
    /// Every mode this build has.
    pub fn all() -> Vec<Mode> {
        #[cfg(feature = "pqxdh")]
        return vec![
            Mode::Classical,
            Mode::HeaderEncrypted,
            Mode::PostQuantum,
            Mode::PostQuantumHeaderEncrypted,
        ];
        #[cfg(not(feature = "pqxdh"))]
        return vec![Mode::Classical, Mode::HeaderEncrypted];
    }

    /// Whether sessions of this mode encrypt their headers.
    pub fn header_encrypted(self) -> bool {
        match self {
            Mode::Classical => false,
            Mode::HeaderEncrypted => true,
            #[cfg(feature = "pqxdh")]
            Mode::PostQuantum => false,
            #[cfg(feature = "pqxdh")]
            Mode::PostQuantumHeaderEncrypted => true,
        }
    }

    /// Whether sessions of this mode are agreed with PQXDH.
    pub fn post_quantum(self) -> bool {
        match self {
            Mode::Classical | Mode::HeaderEncrypted => false,
            #[cfg(feature = "pqxdh")]
            Mode::PostQuantum | Mode::PostQuantumHeaderEncrypted => true,
        }
    }

    /// The options an initiator makes a session of this mode with (the responder follows
    /// the initial message, and the bundle decides PQXDH).
    pub fn options(self) -> SessionOptions {
        if self.header_encrypted() {
            SessionOptions::new().header_encryption()
        } else {
            SessionOptions::new()
        }
    }

    /// A freshly published bundle of `device` with a new one-time prekey (and, in a
    /// post-quantum mode, a new one-time post-quantum prekey), as a contact receives it:
    /// through its encoding.
    pub fn bundle(self, device: &mut LocalDevice, rng: &mut ChaCha20Rng) -> PreKeyBundle {
        let one_time = device.generate_one_time_prekeys(1, rng).unwrap().created[0];
        let bundle = match self {
            #[cfg(feature = "pqxdh")]
            Mode::PostQuantum | Mode::PostQuantumHeaderEncrypted => {
                let pq = device.generate_pq_one_time_prekeys(1, rng).unwrap().created[0];
                device.pq_bundle(Some(one_time), Some(pq)).unwrap()
            }
            _ => device.bundle(Some(one_time)).unwrap(),
        };
        PreKeyBundle::from_bytes(&bundle.to_bytes()).unwrap()
    }
}
