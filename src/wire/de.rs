//! A serde deserializer for postcard's format: the reading half of
//! [`ser`](super::ser), accepting and refusing exactly what postcard 1.x's
//! own deserializer does (the tests compare the two on valid values and on
//! random bytes, for every serde data model type).
//!
//! Why not postcard's: its reader is generic over an input "flavor" and
//! reports errors as a bare enum that drops every custom message; this
//! one reads a slice, keeps messages (a handle's "index out of range" comes
//! back as such), knows its position (a pool chunk's results are read with
//! one decoder, each value's end checked against the outcome table), and
//! inlines into the caller's loop. It reads pool results, pool headers and
//! control envelopes; channel messages (`wire::decode`) are still read by
//! postcard, see there why.
//!
//! Safe code only: malformed input is an error, never a panic.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// Why bytes did not decode.
#[derive(Debug)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

#[cold]
fn fail<T>(why: &str) -> Result<T, DecodeError> {
    Err(DecodeError(why.to_owned()))
}

/// Reads values from a slice, front to back.
pub(crate) struct Decoder<'de> {
    input: &'de [u8],
    /// How far it has read.
    at: usize,
}

impl<'de> Decoder<'de> {
    pub(crate) fn new(input: &'de [u8]) -> Self {
        Decoder { input, at: 0 }
    }

    /// How many bytes it has read.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'de [u8] {
        self.input.get(self.at..).unwrap_or_default()
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.input.get(self.at) {
            Some(&b) => {
                self.at += 1;
                Ok(b)
            }
            None => fail("the message ended in the middle of a value"),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], DecodeError> {
        let taken = self
            .at
            .checked_add(n)
            .and_then(|end| self.input.get(self.at..end));
        match taken {
            Some(head) => {
                self.at += n;
                Ok(head)
            }
            None => fail("the message ended in the middle of a value"),
        }
    }

    /// A LEB128 varint of a `bits`-bit integer (at most 64), as postcard
    /// reads one: at most `ceil(bits / 7)` bytes, the last of which may not
    /// carry bits past the width.
    #[inline]
    fn varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        let max = bits.div_ceil(7);
        let last_max = (1u8 << (bits % 7)) - 1;
        let mut out = 0u64;
        for i in 0..max {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == max - 1 && b > last_max {
                    return fail("a varint too large for its type");
                }
                return Ok(out);
            }
        }
        fail("a varint longer than its type allows")
    }

    #[inline(never)]
    fn varint_u64_near_end(&mut self) -> Result<u64, DecodeError> {
        self.varint(64)
    }

    /// [`varint`](Self::varint) of a `u128`.
    fn varint_u128(&mut self) -> Result<u128, DecodeError> {
        let mut out = 0u128;
        for i in 0..19 {
            let b = self.byte()?;
            out |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == 18 && b > 3 {
                    return fail("a varint too large for its type");
                }
                return Ok(out);
            }
        }
        fail("a varint longer than its type allows")
    }

    #[inline]
    fn varint_u64(&mut self) -> Result<u64, DecodeError> {
        // With 10 bytes or more left (most of a message), one bounds check
        // for the whole; near the end, byte by byte, out of line (kept
        // small, this inlines into a caller's loop over values).
        let Some(s) = self.input.get(self.at..self.at.wrapping_add(10)) else {
            return self.varint_u64_near_end();
        };
        let mut out = 0u64;
        for (i, &b) in s.iter().enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // The bytes read are used up, refused or not (as postcard
                // and the byte-by-byte path do: a `Deserialize` that goes
                // on after an error reads on from the same place).
                self.at += i + 1;
                if i == 9 && b > 1 {
                    return fail("a varint too large for its type");
                }
                return Ok(out);
            }
        }
        self.at += 10;
        fail("a varint longer than its type allows")
    }

    #[inline]
    fn length(&mut self) -> Result<usize, DecodeError> {
        #[cfg(target_pointer_width = "64")]
        let n = self.varint_u64()?;
        #[cfg(not(target_pointer_width = "64"))]
        let n = self.varint(usize::BITS)?;
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => fail("a length too large for this machine"),
        }
    }

    #[inline]
    fn variant(&mut self) -> Result<u32, DecodeError> {
        Ok(self.varint(32)? as u32)
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        fail("the format does not describe itself: the type must be known")
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            _ => fail("a bool that is neither 0 nor 1"),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_i8(self.byte()? as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let z = self.varint(16)? as u16;
        v.visit_i16((z >> 1) as i16 ^ -((z & 1) as i16))
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let z = self.varint(32)? as u32;
        v.visit_i32((z >> 1) as i32 ^ -((z & 1) as i32))
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let z = self.varint_u64()?;
        v.visit_i64((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let z = self.varint_u128()?;
        v.visit_i128((z >> 1) as i128 ^ -((z & 1) as i128))
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u8(self.byte()?)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u16(self.varint(16)? as u16)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u32(self.varint(32)? as u32)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u64(self.varint_u64()?)
    }

    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u128(self.varint_u128()?)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let b = self.take(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(b);
        v.visit_f64(f64::from_le_bytes(buf))
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        // As postcard: up to 4 bytes of UTF-8, of which the first char.
        let n = self.length()?;
        if n > 4 {
            return fail("a char longer than 4 bytes");
        }
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c) => v.visit_char(c),
            None => fail("a char that is not UTF-8"),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let n = self.length()?;
        match std::str::from_utf8(self.take(n)?) {
            Ok(s) => v.visit_borrowed_str(s),
            Err(_) => fail("a string that is not UTF-8"),
        }
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(v)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let n = self.length()?;
        v.visit_borrowed_bytes(self.take(n)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(v)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => v.visit_some(self),
            _ => fail("an Option tag that is neither 0 nor 1"),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let len = self.length()?;
        v.visit_seq(Items { de: self, len })
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DecodeError> {
        v.visit_seq(Items { de: self, len })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, v)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let len = self.length()?;
        v.visit_map(Items { de: self, len })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(fields.len(), v)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        fail("the format has no identifiers: the type must be known")
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        fail("the format cannot skip a value of unknown type")
    }
}

/// The elements of a sequence, tuple or map (`len` of them left).
struct Items<'a, 'de> {
    de: &'a mut Decoder<'de>,
    len: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // As postcard: no promise past the bytes there are.
        (self.de.input.len().saturating_sub(self.de.at) >= self.len).then_some(self.len)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let index = self.variant()?;
        let v = seed.deserialize(index.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    #[inline]
    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, len, v)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), v)
    }
}

#[cfg(test)]
mod tests;
