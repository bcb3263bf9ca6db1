//! Strict fixed-width byte reading shared by the wire format and the storage format
//! (SPEC.md §5 "Encoding conventions").
//!
//! Integers are big-endian and fixed-width, keys are raw 32 bytes, and a reader must be
//! consumed exactly: [`Reader::finish`] rejects trailing bytes. Reading never allocates.

use crate::error::Error;

/// A cursor over untrusted bytes. Every read is bounds-checked and fails with
/// [`Error::Truncated`] rather than panicking.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.rest.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A presence flag: `0x00` absent, `0x01` present, anything else is malformed.
    pub(crate) fn flag(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::InvalidEncoding),
        }
    }

    /// An optional fixed-size field: a flag byte, then `N` bytes that must be all zero when
    /// the flag says absent (so every value has exactly one encoding).
    pub(crate) fn optional<const N: usize>(&mut self) -> Result<Option<[u8; N]>, Error> {
        let present = self.flag()?;
        let body = self.array::<N>()?;
        if present {
            Ok(Some(body))
        } else if body.iter().all(|b| *b == 0) {
            Ok(None)
        } else {
            Err(Error::InvalidEncoding)
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The unread bytes, consuming the reader.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// Succeeds only if every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingData)
        }
    }
}

/// Appends the fixed-width encodings that [`Reader`] reads.
pub(crate) trait Writer {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    fn put_optional(&mut self, field: Option<&[u8]>, width: usize) {
        match field {
            Some(bytes) => {
                self.put_u8(1);
                self.put(bytes);
            }
            None => {
                self.put_u8(0);
                for _ in 0..width {
                    self.put_u8(0);
                }
            }
        }
    }
}

impl Writer for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn reads_fixed_width_big_endian() {
        let mut r = Reader::new(&[1, 0, 0, 1, 0, 0xAA]);
        assert_eq!(r.u32().unwrap(), 0x0100_0001);
        assert_eq!(r.u8().unwrap(), 0);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8().unwrap(), 0xAA);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn truncation_and_trailing_data_are_errors() {
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(Error::Truncated));
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(Error::TrailingData));
    }

    #[test]
    fn optional_fields_have_one_encoding() {
        let mut v = Vec::new();
        v.put_optional(None, 4);
        v.put_optional(Some(&[9, 9, 9, 9]), 4);
        let mut r = Reader::new(&v);
        assert_eq!(r.optional::<4>().unwrap(), None);
        assert_eq!(r.optional::<4>().unwrap(), Some([9; 4]));
        // Absent with non-zero padding, and an unknown flag value.
        assert_eq!(
            Reader::new(&[0, 0, 0, 1, 0]).optional::<4>(),
            Err(Error::InvalidEncoding)
        );
        assert_eq!(
            Reader::new(&[2, 0, 0, 0, 0]).optional::<4>(),
            Err(Error::InvalidEncoding)
        );
    }
}
