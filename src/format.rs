//! The version bytes of SPEC.md §5.1: one per format family, so that each family can move
//! on its own (profile v2 changed messages, bundles and storage, not safety numbers).

/// Version byte of every message on the wire (types `0x01`..`0x06`, SPEC.md §5.2-§5.3).
pub const WIRE_VERSION: u8 = 0x02;
/// Version byte of prekey bundles (types `0x10`, `0x11`, SPEC.md §5.4).
pub const BUNDLE_VERSION: u8 = 0x02;
/// Version byte of every stored object and sealed blob (types `0x20`..`0x30`, SPEC.md §7).
/// From the 0.2.0 release on, every released storage version stays readable.
pub const STORAGE_VERSION: u8 = 0x02;
/// Version byte of a safety number's byte form (type `0x40`, SPEC.md §9.1).
pub const SAFETY_NUMBER_VERSION: u8 = 0x01;
