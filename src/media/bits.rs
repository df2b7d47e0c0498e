//! Minimal MSB-first bit writer plus H.264 emulation-prevention helpers,
//! shared by the H.264 and AAC builders.

/// MSB-first bit writer, as both H.264 RBSPs and AAC raw_data_blocks need.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Bits already used in the last byte of `bytes` (0 means byte-aligned).
    used: u8,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if b {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Writes the low `n` bits of `value`, most significant first.
    pub(crate) fn bits(&mut self, n: u32, value: u64) {
        debug_assert!(n <= 64);
        for i in (0..n).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    /// Unsigned Exp-Golomb, ue(v).
    pub(crate) fn ue(&mut self, value: u32) {
        let v = u64::from(value) + 1;
        let len = 64 - v.leading_zeros();
        self.bits(len - 1, 0);
        self.bits(len, v);
    }

    /// Signed Exp-Golomb, se(v).
    pub(crate) fn se(&mut self, value: i32) {
        let mapped = if value > 0 {
            (value as u32) * 2 - 1
        } else {
            value.unsigned_abs() * 2
        };
        self.ue(mapped);
    }

    pub(crate) fn bit_len(&self) -> usize {
        if self.used == 0 {
            self.bytes.len() * 8
        } else {
            (self.bytes.len() - 1) * 8 + self.used as usize
        }
    }

    /// rbsp_trailing_bits(): a stop bit then zero bits up to the byte boundary.
    pub(crate) fn rbsp_trailing_bits(mut self) -> Vec<u8> {
        self.bit(true);
        self.bytes
    }

    /// Pads with zero bits to the byte boundary (AAC byte_alignment()).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Inserts emulation_prevention_three_byte so that the payload can never
/// contain a start code (00 00 00..03) once wrapped in a NAL unit.
pub(crate) fn escape_rbsp(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0usize;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation_prevention_three_byte again (NAL payload -> RBSP).
pub(crate) fn unescape_rbsp(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0usize;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Builds a complete NAL unit (header byte + escaped RBSP).
pub(crate) fn nal_unit(nal_ref_idc: u8, nal_unit_type: u8, rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 2);
    out.push((nal_ref_idc & 3) << 5 | (nal_unit_type & 0x1f));
    escape_rbsp(rbsp, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_codes() {
        let mut w = BitWriter::new();
        w.ue(0); // 1
        w.ue(1); // 010
        w.ue(3); // 00100
        w.se(-1); // ue(2) = 011
        w.se(1); // ue(1) = 010
        assert_eq!(w.bit_len(), 1 + 3 + 5 + 3 + 3);
        // 1010 0010 0011 010x
        assert_eq!(w.into_bytes(), vec![0b1010_0010, 0b0011_0100]);
    }

    #[test]
    fn escape_roundtrip() {
        let raw = [0u8, 0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 2, 7];
        let mut esc = Vec::new();
        escape_rbsp(&raw, &mut esc);
        assert_eq!(esc, vec![0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 3, 0, 0, 3, 2, 7]);
        assert_eq!(unescape_rbsp(&esc), raw);
    }

    #[test]
    fn trailing_bits_align() {
        let mut w = BitWriter::new();
        w.bits(3, 0b101);
        assert_eq!(w.rbsp_trailing_bits(), vec![0b1011_0000]);
        let mut w = BitWriter::new();
        w.bits(8, 0xAB);
        assert_eq!(w.rbsp_trailing_bits(), vec![0xAB, 0x80]);
    }
}
