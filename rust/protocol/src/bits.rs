//! Byte and bit level primitives of the binary formats.
//!
//! - Varints are unsigned LEB128: 7 bits per byte, least significant group first, high bit set on
//!   every byte but the last; at most 10 bytes.
//! - The bit stream is least-significant-bit first: the first bit written is bit 0 of the first
//!   byte; an n-bit value is written from its bit 0 upwards.
//! - The "gamma" code of a value v ≥ 0 writes n zero bits, a one bit, then the low n bits of
//!   v + 1 − 2ⁿ, where n = ⌊log₂(v + 1)⌋. So 0 → `1`, 1 → `01`+`0`, 2 → `01`+`1`, 3 → `001`+`00`.
//! - Zigzag maps signed to unsigned: 0, −1, 1, −2, 2 … → 0, 1, 2, 3, 4 ….

/// Why a byte or bit stream could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError(pub &'static str);

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Sequential reader over bytes (the byte-aligned parts of the formats).
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// Starts at the first byte.
    pub fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, ReadError> {
        let byte = *self.bytes.get(self.pos).ok_or(ReadError("truncated"))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Reads a little-endian i16.
    pub fn i16_le(&mut self) -> Result<i16, ReadError> {
        Ok(i16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    /// Reads a little-endian f64.
    pub fn f64_le(&mut self) -> Result<f64, ReadError> {
        let end = self.pos.checked_add(8).ok_or(ReadError("truncated"))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(ReadError("truncated"))?;
        self.pos = end;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(slice);
        Ok(f64::from_le_bytes(raw))
    }

    /// Reads an unsigned LEB128 varint (at most 10 bytes, no overflow).
    pub fn varint(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            let group = u64::from(byte & 0x7f);
            if i == 9 && group > 1 {
                return Err(ReadError("varint overflows 64 bits"));
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError("varint longer than 10 bytes"))
    }
}

/// Writes a least-significant-bit-first bit stream.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    scratch: u64,
    scratch_bits: u32,
}

impl BitWriter {
    /// Continues after `prefix` (byte-aligned bytes already written).
    pub fn after(prefix: Vec<u8>) -> Self {
        BitWriter {
            bytes: prefix,
            scratch: 0,
            scratch_bits: 0,
        }
    }

    /// Writes the low `bits` bits of `value` (`bits` ≤ 32).
    pub fn bits(&mut self, value: u32, bits: u32) {
        debug_assert!(bits <= 32);
        if bits == 0 {
            return;
        }
        let masked = u64::from(value) & ((1u64 << bits) - 1);
        self.scratch |= masked << self.scratch_bits;
        self.scratch_bits += bits;
        while self.scratch_bits >= 8 {
            self.bytes.push(self.scratch as u8);
            self.scratch >>= 8;
            self.scratch_bits -= 8;
        }
    }

    /// Writes one bit.
    pub fn bit(&mut self, value: bool) {
        self.bits(u32::from(value), 1);
    }

    /// Writes `value` with the gamma code (see the module doc).
    pub fn gamma(&mut self, value: u64) {
        let v1 = value + 1; // value < u64::MAX in every use: ids, counts, zigzagged i32 deltas
        let n = 63 - v1.leading_zeros();
        // n zeros then a one: the one is bit n of a (n + 1)-bit field.
        self.bits_u64(1u64 << n, n + 1);
        self.bits_u64(v1 - (1u64 << n), n);
    }

    /// Writes a signed value as gamma(zigzag(value)).
    pub fn signed(&mut self, value: i64) {
        self.gamma(zigzag(value));
    }

    fn bits_u64(&mut self, value: u64, bits: u32) {
        if bits > 32 {
            self.bits(value as u32, 32);
            self.bits((value >> 32) as u32, bits - 32);
        } else {
            self.bits(value as u32, bits);
        }
    }

    /// Pads the last byte with zero bits and returns all bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.scratch_bits > 0 {
            self.bytes.push(self.scratch as u8);
        }
        self.bytes
    }
}

/// Reads a least-significant-bit-first bit stream.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    bit_pos: usize,
}

impl<'a> BitReader<'a> {
    /// Starts at bit 0 of `bytes[0]`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, bit_pos: 0 }
    }

    /// Reads `bits` (≤ 32) bits.
    pub fn bits(&mut self, bits: u32) -> Result<u32, ReadError> {
        debug_assert!(bits <= 32);
        let end = self.bit_pos + bits as usize;
        if end > self.bytes.len() * 8 {
            return Err(ReadError("bit stream truncated"));
        }
        let mut value = 0u64;
        let mut got = 0u32;
        while got < bits {
            let byte = self.bytes[self.bit_pos / 8];
            let offset = (self.bit_pos % 8) as u32;
            let take = (8 - offset).min(bits - got);
            let chunk = (u64::from(byte) >> offset) & ((1u64 << take) - 1);
            value |= chunk << got;
            got += take;
            self.bit_pos += take as usize;
        }
        Ok(value as u32)
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> Result<bool, ReadError> {
        Ok(self.bits(1)? == 1)
    }

    /// Reads a gamma-coded value (see the module doc); at most 63 leading zeros.
    pub fn gamma(&mut self) -> Result<u64, ReadError> {
        let mut n = 0u32;
        while !self.bit()? {
            n += 1;
            if n > 63 {
                return Err(ReadError("gamma code too long"));
            }
        }
        let low = if n > 32 {
            let lo = u64::from(self.bits(32)?);
            lo | (u64::from(self.bits(n - 32)?) << 32)
        } else {
            u64::from(self.bits(n)?)
        };
        Ok(((1u64 << n) - 1).wrapping_add(low))
    }

    /// Reads gamma(zigzag(value)).
    pub fn signed(&mut self) -> Result<i64, ReadError> {
        Ok(unzigzag(self.gamma()?))
    }

    /// Checks that only zero padding bits remain, up to the end of the bytes.
    pub fn finish(self) -> Result<(), ReadError> {
        let total = self.bytes.len() * 8;
        if total - self.bit_pos >= 8 {
            return Err(ReadError("trailing bytes after the message"));
        }
        let offset = self.bit_pos % 8;
        if offset != 0 && self.bytes[self.bit_pos / 8] >> offset != 0 {
            return Err(ReadError("non-zero padding bits"));
        }
        Ok(())
    }
}

/// 0, −1, 1, −2 … → 0, 1, 2, 3 ….
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_codes_match_the_documented_examples() {
        let mut w = BitWriter::default();
        w.gamma(0); // 1
        w.gamma(1); // 0 1 0
        w.gamma(3); // 0 0 1 0 0
        let bytes = w.finish();
        // Bits in write order: 1, 0,1,0, 0,0,1,0,0 → byte0 = bits0..7 = 1,0,1,0,0,0,1,0.
        assert_eq!(bytes, vec![0b0100_0101, 0b0000_0000]);
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.gamma(), Ok(0));
        assert_eq!(r.gamma(), Ok(1));
        assert_eq!(r.gamma(), Ok(3));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn bits_round_trip_over_many_widths() {
        let mut w = BitWriter::default();
        let mut expected = Vec::new();
        let mut x = 0x9e37_79b9u32;
        for width in 0..=32u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let value = if width == 32 {
                x
            } else {
                x & ((1 << width) - 1)
            };
            w.bits(value, width);
            expected.push((value, width));
        }
        for v in [
            0i64,
            -1,
            1,
            i32::MIN as i64,
            i32::MAX as i64,
            1 << 40,
            -(1 << 50),
        ] {
            w.signed(v);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for (value, width) in expected {
            assert_eq!(r.bits(width), Ok(value));
        }
        for v in [
            0i64,
            -1,
            1,
            i32::MIN as i64,
            i32::MAX as i64,
            1 << 40,
            -(1 << 50),
        ] {
            assert_eq!(r.signed(), Ok(v));
        }
        assert!(r.finish().is_ok());
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(ByteReader::new(&out).varint(), Ok(v));
        }
        let overlong = [0xffu8; 11];
        assert!(ByteReader::new(&overlong).varint().is_err());
        assert!(ByteReader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn reader_rejects_truncation_and_garbage_padding() {
        assert!(BitReader::new(&[]).bit().is_err());
        let mut r = BitReader::new(&[0b1111_0001]);
        assert_eq!(r.bit(), Ok(true));
        assert!(r.finish().is_err());
        // An all-zero byte never ends a gamma code within 64 bits of zeros.
        assert!(BitReader::new(&[0u8; 9]).gamma().is_err());
    }
}
