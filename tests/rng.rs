//! Philox-4x32-10 against the Random123 known-answer vectors, and basic uniformity.

use lowp::rng::{philox4x32_10, random_bits, random_block};

#[test]
fn philox_known_answers() {
    assert_eq!(
        philox4x32_10([0, 0, 0, 0], [0, 0]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox4x32_10(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn block_equals_single_draws() {
    let mut out = vec![0; 37];
    random_block(0xdead_beef_1234, 7, 5, &mut out);
    for (j, &o) in out.iter().enumerate() {
        assert_eq!(o, random_bits(0xdead_beef_1234, 7, 5 + j as u64));
    }
}

#[test]
fn bits_are_uniform() {
    // Each of the 32 bit positions is set with probability 1/2. Over n = 2^16 draws the
    // count has standard deviation sqrt(n)/2 = 128; 6 sigma (768) bounds a false failure
    // at about 1e-9 per position.
    let n = 1u64 << 16;
    let mut counts = [0u64; 32];
    for i in 0..n {
        let r = random_bits(42, 3, i);
        for (b, c) in counts.iter_mut().enumerate() {
            *c += ((r >> b) & 1) as u64;
        }
    }
    for (b, c) in counts.iter().enumerate() {
        assert!(
            (*c as i64 - (n / 2) as i64).abs() < 768,
            "bit {b}: {c} of {n}"
        );
    }
    // Different streams and seeds give different bits.
    assert_ne!(random_bits(42, 3, 0), random_bits(42, 4, 0));
    assert_ne!(random_bits(42, 3, 0), random_bits(43, 3, 0));
}
