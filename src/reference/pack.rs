//! Dense bit-packing: element i at bits [i*w, (i+1)*w) of a little-endian u32 stream.

pub use crate::format::{pack, packed_words};

/// Unpacks `n` codes of `w` bits from packed words.
pub fn unpack(words: &[u32], w: u32, n: usize) -> Vec<u32> {
    assert!((1..=32).contains(&w), "code width must be 1..=32, got {w}");
    let mask = if w == 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << w) - 1
    };
    (0..n)
        .map(|i| {
            let bit = i * w as usize;
            let (word, off) = (bit / 32, bit % 32);
            let lo = words[word] as u64;
            let hi = if off + w as usize > 32 {
                (words[word + 1] as u64) << 32
            } else {
                0
            };
            (((lo | hi) >> off) & mask) as u32
        })
        .collect()
}
