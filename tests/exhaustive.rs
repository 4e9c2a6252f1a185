//! Every code of every format of 16 bits or fewer decodes and re-encodes to itself.

use lowp::format::{FixedFormat, FloatFormat, Format, ScalarFormat, Specials};
use lowp::quant::{CANONICAL_NAN, ElementRounding, Rounding, round_element};

const MODES: [Rounding; 5] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Stochastic { bits: 16 },
    Rounding::Stochastic { bits: 3 },
];

/// Every float(e, m) of at most 16 bits under each special policy, and some odd biases.
fn small_floats() -> Vec<FloatFormat> {
    let mut v = Vec::new();
    for e in 1..=8u32 {
        for m in 0..=(15 - e) {
            for specials in [Specials::Ieee, Specials::Nan, Specials::None] {
                for subnormals in [true, false] {
                    for bias_shift in [0i32, 3, -2] {
                        let f = FloatFormat {
                            specials,
                            subnormals,
                            bias: FloatFormat::ieee(e, m).bias + bias_shift,
                            ..FloatFormat::ieee(e, m)
                        };
                        if f.validate().is_ok() && (bias_shift == 0 || (e + m) % 3 == 0) {
                            v.push(f);
                        }
                    }
                }
            }
        }
    }
    v
}

fn check_all_codes(el: ScalarFormat) -> usize {
    let bits = el.bits();
    let mut checked = 0;
    for code in 0..(1u32 << bits) {
        let v = el.decode_bits(code, 0);
        let is_nan = v & 0x7fff_ffff > 0x7f80_0000;
        // A finite code at 2^128 or above (a format whose top binade lies beyond f32, as
        // QPyTorch's E = 8 ones) has the f32 image ±Inf, which cannot round back to it.
        if let ScalarFormat::Float(f) = el {
            let mag = code & (f.sign_bit() - 1);
            let finite = match f.specials {
                Specials::Ieee => mag >> f.m != (1 << f.e) - 1,
                Specials::Nan => f.nan_code() != Some(mag),
                Specials::None => true,
            };
            if finite && (mag >> f.m) as i32 - f.bias >= 128 {
                assert_eq!(
                    v,
                    ((code & f.sign_bit() != 0) as u32 * 0x8000_0000) | 0x7f80_0000
                );
                checked += 1;
                continue;
            }
        }
        let expect = match el {
            _ if is_nan => {
                assert_eq!(v, CANONICAL_NAN, "{el:?} code {code:x}: NaN not canonical");
                None
            }
            ScalarFormat::Float(f) if !f.subnormals && (code & (f.sign_bit() - 1)) >> f.m == 0 => {
                // The zero exponent field only holds (signed) zero without subnormals.
                Some(code & f.sign_bit())
            }
            _ => Some(code),
        };
        for (i, rounding) in MODES.iter().enumerate() {
            let er = ElementRounding {
                rounding: *rounding,
                saturate: i % 2 == 0,
                scale_exp: 0,
            };
            let rand = code.wrapping_mul(0x9E37_79B9) ^ (i as u32) << 7;
            let r = round_element(&el, v, &er, rand);
            if v & 0x7fff_ffff == 0x7f80_0000 {
                // ±Inf re-encodes to itself unless saturating, where it clamps to ±max.
                let ScalarFormat::Float(f) = el else {
                    unreachable!()
                };
                let want = if er.saturate {
                    (code & f.sign_bit()) | f.max_code()
                } else {
                    code
                };
                assert_eq!(r.code, want, "{el:?} {rounding:?}: Inf code {code:x}");
                assert!(r.overflow, "{el:?}: Inf input must count as overflow");
                continue;
            }
            match expect {
                Some(c) => assert_eq!(
                    r.code, c,
                    "{el:?} {rounding:?}: code {code:x} -> {v:08x} -> {:x}",
                    r.code
                ),
                None => {
                    assert!(r.nan);
                    assert_eq!(el.decode_bits(r.code, 0), CANONICAL_NAN);
                }
            }
            assert!(
                !r.overflow && !r.underflow,
                "{el:?}: exact code {code:x} flagged"
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn named_formats_roundtrip_every_code() {
    let mut n = 0;
    for f in Format::named() {
        if f.bits() <= 16 {
            n += check_all_codes(f.element());
        }
    }
    // bf16, fp16 (2^16 each) plus e5m2, e4m3 (2^8), e3m2, e2m3 (2^6), e2m1 (2^4) and
    // the six MX element formats.
    assert!(n > 2 * 65536);
}

#[test]
fn general_floats_roundtrip_every_code() {
    let fs = small_floats();
    assert!(fs.len() > 300, "only {} formats", fs.len());
    for f in fs {
        check_all_codes(ScalarFormat::Float(f));
    }
}

#[test]
fn fixed_formats_roundtrip_every_code() {
    for wl in 1..=16 {
        for fl in [0, wl / 2, wl] {
            check_all_codes(ScalarFormat::Fixed(FixedFormat { wl, fl }));
        }
    }
}

#[test]
fn decoded_values_are_ordered_by_code() {
    // Positive codes of a float format are increasing in value up to the largest finite one.
    for f in small_floats().into_iter().filter(|f| f.subnormals) {
        let mut prev = -1.0f32;
        for code in 0..=f.max_code() {
            let v = f32::from_bits(f.decode_bits(code, 0));
            // Beyond f32 (a top binade at 2^128) every image is +Inf.
            let beyond = f.beyond_f32() && v == f32::INFINITY;
            assert!(
                v > prev || beyond,
                "{f:?}: code {code:x} = {v} after {prev}"
            );
            prev = v;
        }
    }
}
