//! The format registry (SPEC.md §5.1, §5.5): every version byte, one per format family so
//! that each family can move on its own (profile v2 changed messages, bundles and storage,
//! not safety numbers), and every type byte. A unit test checks both tables of SPEC.md
//! against this file, in both directions.

/// Version byte of every message on the wire (types `0x01`..`0x06`, SPEC.md §5.2-§5.3).
pub const WIRE_VERSION: u8 = 0x02;
/// Version byte of prekey bundles (types `0x10`, `0x11`, SPEC.md §5.4).
pub const BUNDLE_VERSION: u8 = 0x02;
/// Version byte of every stored object and sealed blob (types `0x20`..`0x30`, SPEC.md §7).
/// From the 0.2.0 release on, every released storage version stays readable.
pub const STORAGE_VERSION: u8 = 0x02;
/// Version byte of a safety number's byte form (type `0x40`, SPEC.md §9.1).
pub const SAFETY_NUMBER_VERSION: u8 = 0x01;

/// Type byte of a normal message (SPEC.md §5.2).
pub(crate) const TYPE_NORMAL: u8 = 0x01;
/// Type byte of an initial (prekey) message (SPEC.md §5.3).
pub(crate) const TYPE_INITIAL: u8 = 0x02;
/// Type byte of a post-quantum (PQXDH) initial message (SPEC.md §5.3).
pub(crate) const TYPE_INITIAL_PQ: u8 = 0x03;
/// Type byte of a normal message with an encrypted header (SPEC.md §5.3, §4.8).
pub(crate) const TYPE_NORMAL_HE: u8 = 0x04;
/// Type byte of an initial message of a header-encrypted session.
pub(crate) const TYPE_INITIAL_HE: u8 = 0x05;
/// Type byte of a PQXDH initial message of a header-encrypted session.
pub(crate) const TYPE_INITIAL_PQ_HE: u8 = 0x06;
/// Type byte of a prekey bundle (SPEC.md §5.4).
pub(crate) const TYPE_BUNDLE: u8 = 0x10;
/// Type byte of a post-quantum (PQXDH) prekey bundle (SPEC.md §5.4).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const TYPE_BUNDLE_PQ: u8 = 0x11;
/// Object type byte of a stored session (SPEC.md §7.1).
pub(crate) const TYPE_SESSION: u8 = 0x20;
/// Object type byte of a stored identity key pair (SPEC.md §7.2).
pub(crate) const TYPE_IDENTITY: u8 = 0x21;
/// Object type byte of a stored signed prekey (SPEC.md §7.3).
pub(crate) const TYPE_SIGNED_PREKEY: u8 = 0x22;
/// Object type byte of a stored one-time prekey (SPEC.md §7.4).
pub(crate) const TYPE_ONE_TIME_PREKEY: u8 = 0x23;
/// Object type byte of a prekey store (SPEC.md §7.5).
pub(crate) const TYPE_PREKEY_STORE: u8 = 0x24;
/// Object type byte of a stored session agreed with PQXDH (SPEC.md §7.1).
pub(crate) const TYPE_SESSION_PQ: u8 = 0x25;
/// Object type byte of a stored post-quantum prekey (SPEC.md §7.7).
#[cfg_attr(not(feature = "pqxdh"), allow(dead_code))]
pub(crate) const TYPE_PQ_PREKEY: u8 = 0x26;
/// Object type byte of a stored header-encrypted session, classical or PQXDH (SPEC.md §7.1).
pub(crate) const TYPE_SESSION_HE: u8 = 0x28;
/// Object type byte of one journaled replay record (SPEC.md §8.4).
pub(crate) const TYPE_REPLAY_RECORD: u8 = 0x29;
/// Type byte of a sealed blob (SPEC.md §7.6).
pub(crate) const TYPE_SEALED: u8 = 0x30;
/// Type byte of a safety number's byte form (SPEC.md §9.1).
pub(crate) const TYPE_SAFETY_NUMBER: u8 = 0x40;
/// Retired type values: never written, never read, never reused (SPEC.md §5.5).
#[cfg(test)]
const RETIRED_TYPES: &[u8] = &[0x27];

/// The format families of SPEC.md §5.1, each with its own version byte.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Wire,
    Bundle,
    Storage,
    SafetyNumber,
}

/// Every type byte in use, with its family.
#[cfg(test)]
const TYPES: &[(u8, Family)] = &[
    (TYPE_NORMAL, Family::Wire),
    (TYPE_INITIAL, Family::Wire),
    (TYPE_INITIAL_PQ, Family::Wire),
    (TYPE_NORMAL_HE, Family::Wire),
    (TYPE_INITIAL_HE, Family::Wire),
    (TYPE_INITIAL_PQ_HE, Family::Wire),
    (TYPE_BUNDLE, Family::Bundle),
    (TYPE_BUNDLE_PQ, Family::Bundle),
    (TYPE_SESSION, Family::Storage),
    (TYPE_IDENTITY, Family::Storage),
    (TYPE_SIGNED_PREKEY, Family::Storage),
    (TYPE_ONE_TIME_PREKEY, Family::Storage),
    (TYPE_PREKEY_STORE, Family::Storage),
    (TYPE_SESSION_PQ, Family::Storage),
    (TYPE_PQ_PREKEY, Family::Storage),
    (TYPE_SESSION_HE, Family::Storage),
    (TYPE_REPLAY_RECORD, Family::Storage),
    (TYPE_SEALED, Family::Storage),
    (TYPE_SAFETY_NUMBER, Family::SafetyNumber),
];

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const SPEC: &str = include_str!("../SPEC.md");

    /// The rows of the Markdown table that follows the line starting with `heading`, as
    /// cells.
    fn table_after(heading: &str) -> Vec<Vec<&'static str>> {
        let mut lines = SPEC.lines().skip_while(|l| !l.starts_with(heading));
        lines.next();
        lines
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect()
    }

    /// The byte a cell starts with, written `` `0xNN` ``.
    fn hex_byte(cell: &str) -> Option<u8> {
        let hex = cell.strip_prefix("`0x")?.get(..2)?;
        u8::from_str_radix(hex, 16).ok()
    }

    /// The types a §5.1 family cell lists before any parenthesis: single values
    /// `` `0xNN` `` and ranges `` `0xAA` .. `0xBB` ``.
    fn listed_types(cell: &str) -> Vec<u8> {
        let listed = cell.split(" (").next().unwrap_or(cell);
        let mut types = Vec::new();
        for item in listed.split(", ") {
            let mut ends = item.split(" .. ").map(hex_byte);
            match (ends.next().flatten(), ends.next().flatten()) {
                (Some(lo), Some(hi)) => types.extend(lo..=hi),
                (Some(one), None) => types.push(one),
                _ => panic!("unreadable family cell {cell:?}"),
            }
        }
        types
    }

    /// SPEC.md §5.5's type registry lists exactly the types in use here, plus the retired.
    #[test]
    fn type_registry_matches_spec() {
        let rows = table_after("### 5.5 ");
        let mut spec: Vec<u8> = rows.iter().filter_map(|r| hex_byte(r[0])).collect();
        assert_eq!(spec.len(), rows.len(), "every row names one type byte");
        spec.sort_unstable();
        let mut ours: Vec<u8> = TYPES.iter().map(|(t, _)| *t).collect();
        ours.extend_from_slice(RETIRED_TYPES);
        ours.sort_unstable();
        assert_eq!(spec, ours);
        for retired in RETIRED_TYPES {
            let row = rows.iter().find(|r| hex_byte(r[0]) == Some(*retired));
            assert!(row.is_some_and(|r| r[1].starts_with("retired")));
        }
    }

    /// SPEC.md §5.1's version table gives each family's constant its value here, and lists
    /// exactly the types of that family (retired ones excepted).
    #[test]
    fn version_table_matches_spec() {
        let rows = table_after("Each format family has its own version byte");
        let families = [
            ("`WIRE_VERSION`", WIRE_VERSION, Family::Wire),
            ("`BUNDLE_VERSION`", BUNDLE_VERSION, Family::Bundle),
            ("`STORAGE_VERSION`", STORAGE_VERSION, Family::Storage),
            (
                "`SAFETY_NUMBER_VERSION`",
                SAFETY_NUMBER_VERSION,
                Family::SafetyNumber,
            ),
        ];
        assert_eq!(rows.len(), families.len());
        for (name, value, family) in families {
            let row = rows.iter().find(|r| r[3] == name);
            let row = row.unwrap_or_else(|| panic!("{name} has no row"));
            assert_eq!(hex_byte(row[2]), Some(value), "{name}");
            let mut listed = listed_types(row[1]);
            listed.retain(|t| !RETIRED_TYPES.contains(t));
            let ours: Vec<u8> = TYPES
                .iter()
                .filter(|(_, f)| *f == family)
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(listed, ours, "{name}");
        }
    }
}
