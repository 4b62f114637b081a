//! Record values: a 16-byte header (send time, sequence number) followed by
//! incompressible filler, so compression settings are not flattered.

/// Bytes at the start of each value: u64 send time in ns since the run's
/// start instant (little endian), then a u64 sequence number.
pub const HEADER_LEN: usize = 16;

const POOL_LEN: usize = 1 << 20;

pub struct Payloads {
    pool: Vec<u8>,
    buf: Vec<u8>,
    cursor: usize,
}

impl Payloads {
    pub fn new(size: usize, seed: u64) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let pool_len = POOL_LEN.max(size * 4);
        let mut pool = Vec::with_capacity(pool_len + 8);
        while pool.len() < pool_len {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            pool.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Payloads {
            pool,
            buf: vec![0; size],
            cursor: 0,
        }
    }

    /// The next value, stamped with `send_ns` and `seq`.
    pub fn next(&mut self, send_ns: u64, seq: u64) -> &[u8] {
        let n = self.buf.len();
        let filler = n - HEADER_LEN;
        if self.cursor + filler > self.pool.len() {
            self.cursor = 0;
        }
        self.buf[HEADER_LEN..].copy_from_slice(&self.pool[self.cursor..self.cursor + filler]);
        // An odd step keeps successive values from sharing alignment.
        self.cursor += 4099;
        self.buf[..8].copy_from_slice(&send_ns.to_le_bytes());
        self.buf[8..16].copy_from_slice(&seq.to_le_bytes());
        &self.buf
    }
}

/// The send time stamped by [`Payloads::next`], if the value has a header.
pub fn send_ns(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_header_and_varies_filler() {
        let mut p = Payloads::new(1024, 7);
        let a = p.next(42, 1).to_vec();
        let b = p.next(43, 2).to_vec();
        assert_eq!(a.len(), 1024);
        assert_eq!(send_ns(&a), Some(42));
        assert_eq!(send_ns(&b), Some(43));
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        for _ in 0..10_000 {
            assert_eq!(p.next(1, 1).len(), 1024);
        }
    }
}
