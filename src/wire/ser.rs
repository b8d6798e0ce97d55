//! A serde serializer that writes postcard's format, byte for byte, with
//! no intermediate buffer.
//!
//! Why not postcard's own: it writes every integer as a varint into a
//! zeroed stack array, then hands that slice to its output ("flavor"),
//! which copies it: a function call, a 10-byte clear and a copy of a few
//! bytes per integer. For a pool `map` of a million small integers, that
//! was a third of all the CPU time, on both sides. Here a varint is
//! written straight into the output's spare room. Decoding stays
//! postcard's: the bytes are the same (checked against postcard in the
//! tests, for every serde data model type).
//!
//! The format (postcard 1.x): `u8`/`i8`/`bool` as one byte; wider
//! integers as LEB128 varints (signed ones zigzagged first); floats as
//! little-endian bits; `char` and `str` as a varint length and their
//! UTF-8 bytes, bytes as a varint length and the bytes; `Option` as a 0/1 tag; enum variants as a varint index;
//! sequences and maps with a varint length first (which must be known);
//! structs, tuples and unit types as their fields alone.

use serde::ser::{self, Serialize};
use std::fmt;
use std::mem::MaybeUninit;

/// Why a value could not be encoded.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The output is a fixed buffer, and the value does not fit.
    Full,
    /// The value's `Serialize` failed, or asked for what the format cannot
    /// write (a sequence of unknown length).
    Custom(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Full => f.write_str("the value does not fit in its buffer"),
            EncodeError::Custom(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(msg.to_string())
    }
}

/// Where encoded bytes go.
pub(crate) trait Out {
    fn put_u8(&mut self, b: u8) -> Result<(), EncodeError>;
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;
    /// A LEB128 varint: seven bits a byte, low bits first, the high bit of
    /// every byte but the last set.
    fn put_varint(&mut self, v: u64) -> Result<(), EncodeError>;
}

impl Out for Vec<u8> {
    #[inline]
    fn put_u8(&mut self, b: u8) -> Result<(), EncodeError> {
        self.push(b);
        Ok(())
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn put_varint(&mut self, mut v: u64) -> Result<(), EncodeError> {
        // A u64 takes at most 10 bytes (64 / 7, rounded up).
        self.reserve(10);
        let len = self.len();
        // SAFETY: there is room for 10 more bytes past `len`, and the loop
        // writes at most 10: one per 7 bits of `v` (64 bits: 9 while
        // `v >= 0x80`, then the last). The bytes up to the new length are
        // initialized by these writes.
        unsafe {
            let start = self.as_mut_ptr().add(len);
            let mut p = start;
            while v >= 0x80 {
                p.write(v as u8 | 0x80);
                p = p.add(1);
                v >>= 7;
            }
            p.write(v as u8);
            let written = p.offset_from(start) as usize + 1;
            self.set_len(len + written);
        }
        Ok(())
    }
}

/// A fixed buffer, filled from the start: [`EncodeError::Full`] past its
/// end. Uninitialized at first (a message encoded on the stack does not
/// pay for clearing 512 bytes: a `memset` call, a sixth of a queue
/// producer's time on small messages).
pub(crate) struct Fixed<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    at: usize,
}

impl<'a> Fixed<'a> {
    pub(crate) fn new(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        Fixed { buf, at: 0 }
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> &[u8] {
        let head = &self.buf[..self.at];
        // SAFETY: every byte below `at` was written (`at` only grows past
        // bytes just written), and `MaybeUninit<u8>` has `u8`'s layout.
        unsafe { std::slice::from_raw_parts(head.as_ptr().cast::<u8>(), head.len()) }
    }
}

impl Out for Fixed<'_> {
    #[inline]
    fn put_u8(&mut self, b: u8) -> Result<(), EncodeError> {
        let slot = self.buf.get_mut(self.at).ok_or(EncodeError::Full)?;
        slot.write(b);
        self.at += 1;
        Ok(())
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.at.checked_add(bytes.len()).ok_or(EncodeError::Full)?;
        let dst = self.buf.get_mut(self.at..end).ok_or(EncodeError::Full)?;
        for (d, &b) in dst.iter_mut().zip(bytes) {
            d.write(b);
        }
        self.at = end;
        Ok(())
    }

    #[inline]
    fn put_varint(&mut self, mut v: u64) -> Result<(), EncodeError> {
        while v >= 0x80 {
            self.put_u8(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.put_u8(v as u8)
    }
}

/// Writes a serde value in postcard's format to `O`.
pub(crate) struct Encoder<'a, O: Out> {
    pub(crate) out: &'a mut O,
}

/// Encodes `value` onto the end of `out`.
#[inline]
pub(crate) fn encode_to<T: Serialize + ?Sized, O: Out>(
    value: &T,
    out: &mut O,
) -> Result<(), EncodeError> {
    value.serialize(&mut Encoder { out })
}

impl<O: Out> Encoder<'_, O> {
    #[inline]
    fn varint_u128(&mut self, mut v: u128) -> Result<(), EncodeError> {
        while v >= 0x80 {
            self.out.put_u8(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.out.put_u8(v as u8)
    }

    #[inline]
    fn length(&mut self, len: Option<usize>) -> Result<(), EncodeError> {
        let len = len.ok_or_else(|| {
            EncodeError::Custom("a sequence or map must say its length to be encoded".to_owned())
        })?;
        self.out.put_varint(len as u64)
    }
}

impl<O: Out> ser::Serializer for &mut Encoder<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.put_u8(u8::from(v))
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.out.put_u8(v as u8)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.out
            .put_varint(u64::from(((v << 1) ^ (v >> 15)) as u16))
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.out
            .put_varint(u64::from(((v << 1) ^ (v >> 31)) as u32))
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        self.out.put_varint(((v << 1) ^ (v >> 63)) as u64)
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        self.varint_u128(((v << 1) ^ (v >> 127)) as u128)
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.put_u8(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.out.put_varint(u64::from(v))
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.out.put_varint(u64::from(v))
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.out.put_varint(v)
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        self.varint_u128(v)
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.put(&v.to_bits().to_le_bytes())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.put(&v.to_bits().to_le_bytes())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.out.put_varint(v.len() as u64)?;
        self.out.put(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.out.put_varint(v.len() as u64)?;
        self.out.put(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.put_u8(0)
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.put_u8(1)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.out.put_varint(u64::from(variant_index))
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.out.put_varint(u64::from(variant_index))?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        self.length(len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.out.put_varint(u64::from(variant_index))?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncodeError> {
        self.length(len)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        // As a tuple variant: the index, then the fields.
        self.serialize_tuple_variant(name, variant_index, variant, len)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        // Formatted once, into a string of its own: its length goes first.
        use fmt::Write;
        let mut s = String::new();
        write!(s, "{value}").map_err(|_| EncodeError::Custom("a Display impl failed".into()))?;
        self.serialize_str(&s)
    }
}

/// The parts of compound values: each element or field in order, nothing
/// around them (a length, if any, went first).
macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ty)?) => {
        impl<O: Out> ser::$trait for &mut Encoder<'_, O> {
            type Ok = ();
            type Error = EncodeError;

            #[inline]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_key: $key,)?
                value: &T,
            ) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, &'static str);
compound!(SerializeStructVariant, serialize_field, &'static str);

impl<O: Out> ser::SerializeMap for &mut Encoder<'_, O> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(&mut **self)
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
