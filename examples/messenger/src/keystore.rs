//! Where each device's storage key lives. In a real app this is the operating system's
//! keystore (the Android Keystore, the iOS/macOS Keychain, the Windows DPAPI, a TPM-backed
//! store): the key never sits next to the database it protects, so a copy of the database
//! file alone (a backup, a synced folder, a stolen disk image) opens nothing. Here a file
//! per device in a directory of its own stands in for it; it survives a crash of the app
//! like the OS keystore does.

use std::fs;
use std::io;
use std::path::PathBuf;

use doubleratchet::rand_core::TryRng;
use doubleratchet::{OsRng, StorageKey};

/// The stand-in keystore: one 32-byte key per device name.
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore in `dir` (created if missing).
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Keystore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// Generates and keeps a new storage key for device `name`.
    pub fn create(&self, name: &str) -> io::Result<StorageKey> {
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| io::Error::other(e.to_string()))?;
        fs::write(self.path(name), bytes)?;
        let key = StorageKey::from_bytes(bytes);
        bytes.fill(0);
        Ok(key)
    }

    /// The storage key of device `name`.
    pub fn load(&self, name: &str) -> io::Result<StorageKey> {
        let mut bytes: [u8; 32] = fs::read(self.path(name))?
            .try_into()
            .map_err(|_| io::Error::other("a stored key is not 32 bytes"))?;
        let key = StorageKey::from_bytes(bytes);
        bytes.fill(0);
        Ok(key)
    }

    /// Deletes the key of device `name` (the app was uninstalled): its database, should a
    /// copy survive, can no longer be opened.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }
}
