//! Opening a SQLite database the way every database of the example is opened (each device's
//! and the relay's), and the checkpoint that follows commits replacing secret state.

use std::path::Path;

use rusqlite::Connection;

/// Opens (or creates) the database at `path` with the settings the example relies on.
///
/// * `secure_delete = ON`: SQLite overwrites deleted content with zeros instead of only
///   marking its space free. A session record, once rewritten, is a *deleted* row version:
///   without this, the old chain keys it held would stay readable in free pages of the file
///   until that space happened to be reused, and forward secrecy would end at the disk.
/// * `journal_mode = WAL`: a commit appends the new pages to the write-ahead log, readers
///   and the writer do not block each other, and a crash mid-transaction leaves the last
///   committed state (the uncommitted tail of the log is ignored on recovery).
///   The log, though, holds *page images*: every older version of a page written since the
///   last checkpoint, old chain keys included. So after each commit that replaces secret
///   state, [`checkpoint`] copies the log into the database and truncates it to zero bytes.
/// * `synchronous = FULL`: in WAL mode this syncs the log at every commit, so a committed
///   transaction survives a power cut. The client acknowledges a message to the relay only
///   after its commit, so a commit that could be lost (`NORMAL`) would lose the message.
/// * `foreign_keys = ON`: session records cannot outlive their contact.
///
/// What SQLite cannot promise: a journaling file system or an SSD's wear levelling may
/// keep old blocks of the file elsewhere. That is why every secret row is also sealed with
/// the device's storage key, which lives outside the database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    let secure: i64 = db.query_row("PRAGMA secure_delete = ON", [], |r| r.get(0))?;
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if secure != 1 || !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidQuery);
    }
    db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(db)
}

/// Copies the write-ahead log into the database file and truncates the log to zero bytes
/// (`wal_checkpoint(TRUNCATE)`): the page images of the rows just replaced (old session
/// records, the device before a one-time prekey was deleted) leave the log, and
/// `secure_delete` has already zeroed them in the database. Fails if the checkpoint could
/// not complete (another connection reading an older snapshot): the example keeps one
/// connection per database, so that never happens here.
pub fn checkpoint(db: &Connection) -> rusqlite::Result<()> {
    let (busy, log, copied): (i64, i64, i64) =
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 || log != copied {
        return Err(rusqlite::Error::InvalidQuery);
    }
    Ok(())
}

/// A `u64` (a prekey id, a time) as SQLite's signed 64-bit integer, bit for bit.
pub fn to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

/// The inverse of [`to_sql`].
pub fn from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}
