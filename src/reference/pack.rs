//! Dense bit-packing: element i at bits [i*w, (i+1)*w) of a little-endian u32 stream.

pub use crate::format::packed_words;

/// Packs `w`-bit codes (1..=32) densely into u32 words.
pub fn pack(codes: &[u32], w: u32) -> Vec<u32> {
    assert!((1..=32).contains(&w), "code width must be 1..=32, got {w}");
    let mask = if w == 32 { u32::MAX } else { (1u32 << w) - 1 };
    let mut words = vec![0u32; packed_words(codes.len(), w)];
    for (i, &c) in codes.iter().enumerate() {
        let c = (c & mask) as u64;
        let bit = i * w as usize;
        let (word, off) = (bit / 32, bit % 32);
        let v = c << off;
        words[word] |= v as u32;
        if off + w as usize > 32 {
            words[word + 1] |= (v >> 32) as u32;
        }
    }
    words
}

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
