//! Helpers shared by the fuzz targets.

/// Splits a fuzz input into a read pattern and the bytes "on the wire".
///
/// The first byte picks how the wire bytes are cut into reads, so the fuzzer explores chunk
/// boundaries as well as contents: a fixed read size (1 byte, a TS packet, 4 KiB, ...) or, for
/// bytes ≥ 0x80, a pseudo-random sequence of sizes seeded by that byte. The rest is the wire.
pub fn split_input(data: &[u8]) -> (Cuts, &[u8]) {
    match data.split_first() {
        Some((&pattern, wire)) => (Cuts::new(pattern), wire),
        None => (Cuts::new(0), data),
    }
}

/// Read sizes a socket might deliver; `usize::MAX` hands everything over in one read.
const FIXED: [usize; 16] = [
    usize::MAX,
    1,
    2,
    3,
    4,
    7,
    11,
    16,
    64,
    187,
    188,
    189,
    376,
    1000,
    1460,
    4096,
];

/// The sequence of read sizes picked by the input's first byte.
#[derive(Debug, Clone)]
pub struct Cuts {
    fixed: Option<usize>,
    state: u32,
}

impl Cuts {
    fn new(pattern: u8) -> Self {
        if pattern < 0x80 {
            Cuts {
                fixed: Some(FIXED[usize::from(pattern) % FIXED.len()]),
                state: 0,
            }
        } else {
            Cuts {
                fixed: None,
                // xorshift32 must not start at 0.
                state: u32::from(pattern).wrapping_mul(0x9e37_79b9) | 1,
            }
        }
    }

    /// The next read size (≥ 1).
    pub fn next_len(&mut self) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        1 + (x % 300) as usize
    }

    /// `wire` cut into reads of the chosen sizes.
    pub fn reads<'a>(mut self, mut wire: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        std::iter::from_fn(move || {
            if wire.is_empty() {
                return None;
            }
            let (read, rest) = wire.split_at(self.next_len().min(wire.len()));
            wire = rest;
            Some(read)
        })
    }
}
