//! Prekey ids (SPEC.md §8.1): random 64-bit values drawn by the local device, never 0 in a
//! store, carried in bundles, upload sets and initial messages. One type per kind of
//! prekey, so a signed prekey id cannot be passed where a one-time prekey id is meant.
//!
//! An id read from the network may be any value (0 included): it names a key the
//! responder either holds or does not.

use core::fmt;

macro_rules! prekey_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// The id with this 64-bit value (as encoded big-endian on the wire).
            #[must_use]
            pub const fn from_u64(value: u64) -> Self {
                $name(value)
            }

            /// The 64-bit value of this id.
            #[must_use]
            pub const fn to_u64(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                $name(value)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

prekey_id!(
    /// The id of a signed prekey (X3DH `SPK`).
    SignedPreKeyId
);
prekey_id!(
    /// The id of a one-time prekey (X3DH `OPK`).
    OneTimePreKeyId
);
prekey_id!(
    /// The id of a post-quantum prekey (PQXDH `PQSPK` or `PQOPK`), one-time or last-resort:
    /// both kinds share one id space.
    PqPreKeyId
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn ids_round_trip_and_print_their_kind() {
        let id = SignedPreKeyId::from_u64(u64::MAX);
        assert_eq!(id.to_u64(), u64::MAX);
        assert_eq!(format!("{id:?}"), "SignedPreKeyId(18446744073709551615)");
        assert_eq!(format!("{}", OneTimePreKeyId::from_u64(7)), "7");
        assert_eq!(format!("{:?}", PqPreKeyId::from_u64(0)), "PqPreKeyId(0)");
    }
}
