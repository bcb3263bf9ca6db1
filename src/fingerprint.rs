//! Safety numbers (SPEC.md §9.1): a fingerprint of a pair of identity keys that both
//! parties compute identically, shown as 60 digits for reading aloud and as a 66-byte
//! versioned form for a QR code, with a constant-time comparison of a scanned form.
//!
//! ```text
//! h_0     = SHA-512(SAFETY_NUMBER_LABEL || 0x00 0x01 || IK)
//! h_{i+1} = SHA-512(h_i || IK)                    for i < SAFETY_NUMBER_ITERATIONS
//! half(IK) = h_5200[0..32]
//! (first, second) = the two identity keys ordered by their 32 bytes, smaller first
//! bytes   = 0x01 || 0x40 || half(first) || half(second)                         (66 bytes)
//! digits  = for each half, its first 30 bytes as six 5-byte big-endian integers,
//!           each mod 100000 as 5 decimal digits: 12 groups of 5 digits
//! ```
//!
//! The iteration makes grinding for a key whose number matches a chosen one cost 5200
//! SHA-512 evaluations per candidate, on top of the 2^-100 chance per half of matching
//! the 100 displayed bits (2^-256 for the 256 bits of a half in the byte form).

use alloc::string::String;
use core::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::format::{SAFETY_NUMBER_VERSION, TYPE_SAFETY_NUMBER};
use crate::keys::IdentityKey;

use crate::format::SAFETY_NUMBER_LABEL;
pub use crate::format::{SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_LENGTH};
/// The version of the safety number construction, hashed into each half.
const CONSTRUCTION_VERSION: [u8; 2] = [0x00, 0x01];

/// The safety number of two identity keys (SPEC.md §9.1). The same on both sides,
/// whoever initiated.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    bytes: [u8; SAFETY_NUMBER_LENGTH],
}

/// The outcome of comparing a scanned safety number with the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[must_use = "a scan result says whether the safety numbers match"]
pub enum ScanResult {
    /// The scanned number is the local one: the two parties see the same keys.
    Match,
    /// Well formed and of this version, but different: someone sees a different key.
    Mismatch,
    /// The scanned number is of another version (given here); it cannot be compared.
    DifferentVersion(u8),
    /// Not a safety number: wrong length or type byte.
    Malformed,
}

fn half(key: &IdentityKey) -> [u8; 32] {
    let mut h = Sha512::new();
    h.update(SAFETY_NUMBER_LABEL);
    h.update(CONSTRUCTION_VERSION);
    h.update(key.as_bytes());
    let mut digest = h.finalize();
    for _ in 0..SAFETY_NUMBER_ITERATIONS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key.as_bytes());
        digest = h.finalize();
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

impl SafetyNumber {
    /// Computes the safety number of two identity keys, in either order.
    pub fn new(a: &IdentityKey, b: &IdentityKey) -> Self {
        let (first, second) = if a.as_bytes() <= b.as_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        let mut bytes = [0u8; SAFETY_NUMBER_LENGTH];
        bytes[0] = SAFETY_NUMBER_VERSION;
        bytes[1] = TYPE_SAFETY_NUMBER;
        bytes[2..34].copy_from_slice(&half(first));
        bytes[34..].copy_from_slice(&half(second));
        SafetyNumber { bytes }
    }

    /// The safety number of two accounts (SPEC.md §9.5): computed as for identity keys, from
    /// the account keys. Users of several devices compare this one number per contact.
    pub fn of_accounts(a: &crate::AccountKey, b: &crate::AccountKey) -> Self {
        Self::new(a.ed25519(), b.ed25519())
    }

    /// The safety number of a session: its local and remote identity keys.
    pub fn of_session(session: &crate::Session) -> Self {
        Self::new(session.local_identity(), session.remote_identity())
    }

    /// The 66-byte versioned form, to encode in a QR code.
    pub fn to_bytes(&self) -> [u8; SAFETY_NUMBER_LENGTH] {
        self.bytes
    }

    /// The 60 digits, in 12 groups of 5 separated by spaces.
    pub fn to_digits(&self) -> String {
        let mut out = String::with_capacity(12 * 6);
        for half in [&self.bytes[2..34], &self.bytes[34..]] {
            for chunk in half[..30].chunks_exact(5) {
                let mut wide = [0u8; 8];
                wide[3..].copy_from_slice(chunk);
                let group = u64::from_be_bytes(wide) % 100_000;
                if !out.is_empty() {
                    out.push(' ');
                }
                // Five digits, zero-padded.
                let mut digits = [b'0'; 5];
                let mut rest = group;
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (rest % 10) as u8;
                    rest /= 10;
                }
                out.extend(digits.iter().map(|&d| char::from(d)));
            }
        }
        out
    }

    /// Compares a scanned byte form with this one. The comparison of the two halves runs
    /// in constant time.
    pub fn compare_scanned(&self, scanned: &[u8]) -> ScanResult {
        let Some(&version) = scanned.first() else {
            return ScanResult::Malformed;
        };
        if version != SAFETY_NUMBER_VERSION {
            return ScanResult::DifferentVersion(version);
        }
        if scanned.len() != SAFETY_NUMBER_LENGTH || scanned[1] != TYPE_SAFETY_NUMBER {
            return ScanResult::Malformed;
        }
        if bool::from(self.bytes[2..].ct_eq(&scanned[2..])) {
            ScanResult::Match
        } else {
            ScanResult::Mismatch
        }
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({})", self.to_digits())
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_digits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::IdentityKeyPair;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn keys() -> (IdentityKey, IdentityKey, IdentityKey) {
        let mut rng = ChaCha20Rng::seed_from_u64(80);
        let a = *IdentityKeyPair::generate(&mut rng).unwrap().public_key();
        let b = *IdentityKeyPair::generate(&mut rng).unwrap().public_key();
        let c = *IdentityKeyPair::generate(&mut rng).unwrap().public_key();
        (a, b, c)
    }

    #[test]
    fn symmetric_and_key_dependent() {
        let (a, b, c) = keys();
        let ab = SafetyNumber::new(&a, &b);
        assert_eq!(ab, SafetyNumber::new(&b, &a));
        assert_ne!(ab, SafetyNumber::new(&a, &c));
        assert_ne!(ab, SafetyNumber::new(&c, &b));
        let digits = ab.to_digits();
        assert_eq!(digits.len(), 12 * 5 + 11);
        assert_eq!(digits.split(' ').count(), 12);
        assert!(digits
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    }

    #[test]
    fn scanned_comparison() {
        let (a, b, c) = keys();
        let ab = SafetyNumber::new(&a, &b);
        assert_eq!(
            ab.compare_scanned(&SafetyNumber::new(&b, &a).to_bytes()),
            ScanResult::Match
        );
        assert_eq!(
            ab.compare_scanned(&SafetyNumber::new(&a, &c).to_bytes()),
            ScanResult::Mismatch
        );
        let mut other_version = ab.to_bytes();
        other_version[0] = 2;
        assert_eq!(
            ab.compare_scanned(&other_version),
            ScanResult::DifferentVersion(2)
        );
        assert_eq!(ab.compare_scanned(&[]), ScanResult::Malformed);
        assert_eq!(
            ab.compare_scanned(&ab.to_bytes()[..65]),
            ScanResult::Malformed
        );
        let mut wrong_type = ab.to_bytes();
        wrong_type[1] = 0x41;
        assert_eq!(ab.compare_scanned(&wrong_type), ScanResult::Malformed);
        let mut flipped = ab.to_bytes();
        flipped[40] ^= 1;
        assert_eq!(ab.compare_scanned(&flipped), ScanResult::Mismatch);
    }
}
