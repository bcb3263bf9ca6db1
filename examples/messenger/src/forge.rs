//! Mallory's workbench: device lists (SPEC.md §9.4) written byte by byte and signed with
//! her own account key by a plain Ed25519 library. The library itself signs a list only
//! through an `Account`, which lists only devices whose link it was given; Mallory, who
//! wants to list a device that never consented, needs neither.

use doubleratchet::rand_core::TryRng;
use doubleratchet::{AccountKey, DeviceId, DeviceLink, IdentityKey, OsRng, BUNDLE_VERSION};
use ed25519_dalek::{Signer, SigningKey};

use crate::harness::{step, Outcome};

/// What an account key's list signature covers first (SPEC.md §1, §9.4).
const DEVICE_LIST_LABEL: &[u8] = b"doubleratchet v2 device list";
/// The device list's type byte (SPEC.md §9.4).
const TYPE_DEVICE_LIST: u8 = 0x16;
/// Where a link's signature starts in its 134-byte encoding (SPEC.md §9.4).
const LINK_SIGNATURE_OFFSET: usize = 70;

/// One device of a forged list: its id, its identity key, and whatever 64 bytes Mallory
/// puts where the device's link signature belongs.
pub struct Entry {
    /// The device id.
    pub id: DeviceId,
    /// The identity key the list names.
    pub identity: IdentityKey,
    /// The link signature, genuine or not.
    pub link_signature: [u8; 64],
}

/// Mallory, with an account key of her own.
pub struct Mallory {
    account: SigningKey,
}

impl Mallory {
    /// Mallory with a fresh account key.
    pub fn new() -> Outcome<Self> {
        let mut seed = [0u8; 32];
        step("mallory's seed", OsRng.try_fill_bytes(&mut seed))?;
        Ok(Mallory {
            account: SigningKey::from_bytes(&seed),
        })
    }

    /// Her account key, as contacts would pin it.
    pub fn account_key(&self) -> Outcome<AccountKey> {
        step(
            "mallory's account key",
            AccountKey::from_bytes(&self.account.verifying_key().to_bytes()),
        )
    }

    /// A list of her account with counter `counter` naming `devices` (sorted by id by the
    /// caller), with a valid account signature over it.
    pub fn sign_list(&self, counter: u64, devices: &[Entry]) -> Vec<u8> {
        let mut out = vec![BUNDLE_VERSION, TYPE_DEVICE_LIST];
        out.extend_from_slice(&self.account.verifying_key().to_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
        out.push(u8::try_from(devices.len()).unwrap_or(u8::MAX));
        for entry in devices {
            out.extend_from_slice(&entry.id.get().to_be_bytes());
            out.extend_from_slice(entry.identity.as_bytes());
            out.extend_from_slice(&entry.link_signature);
        }
        let mut signed = DEVICE_LIST_LABEL.to_vec();
        signed.extend_from_slice(&out);
        out.extend_from_slice(&self.account.sign(&signed).to_bytes());
        out
    }
}

/// The signature of a link: the last 64 bytes of its encoding.
pub fn link_signature(link: &DeviceLink) -> [u8; 64] {
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&link.to_bytes()[LINK_SIGNATURE_OFFSET..]);
    signature
}
