//! Counter-based random bits: Philox-4x32-10 keyed by (seed, stream, element index).
//!
//! One Philox call gives four 32-bit words, used for four consecutive elements:
//! element `i` takes word `i % 4` of the block with counter `(i / 4, i >> 34, stream, 0)`
//! and key `(seed low, seed high)`. The WGSL twin is `shaders/lib/rng.wgsl`.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox-4x32 with 10 rounds.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The 32 random bits of element `index` of stream `stream` under `seed`.
pub fn random_bits(seed: u64, stream: u32, index: u64) -> u32 {
    let block = philox4x32_10(
        [(index >> 2) as u32, (index >> 34) as u32, stream, 0],
        [seed as u32, (seed >> 32) as u32],
    );
    block[(index & 3) as usize]
}

/// Random bits for a run of elements starting at `start`, one Philox call per four.
pub fn random_block(seed: u64, stream: u32, start: u64, out: &mut [u32]) {
    let mut cached = (u64::MAX, [0u32; 4]);
    for (j, o) in out.iter_mut().enumerate() {
        let i = start + j as u64;
        if i >> 2 != cached.0 {
            cached = (
                i >> 2,
                philox4x32_10(
                    [(i >> 2) as u32, (i >> 34) as u32, stream, 0],
                    [seed as u32, (seed >> 32) as u32],
                ),
            );
        }
        *o = cached.1[(i & 3) as usize];
    }
}
