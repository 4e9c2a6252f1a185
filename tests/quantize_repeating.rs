//! The host's rounding of repeating values (`quantize_repeating`, each distinct value rounded
//! once) against the reference quantizer it stands in for: the same codes, scales and
//! exception counts, bit for bit, for every kind of format and rounding.

use lowp::format::Format;
use lowp::quant::{QuantSpec, Rounding, Scaling};
use lowp::reference::quantize::{quantize, quantize_repeating};

/// Values as a trainer's inputs are (a few hundred distinct pixel values, normalised) and
/// then every kind of special and more distinct values than the table has slots (so that
/// values meet in a slot and must be told apart by their bits).
fn inputs() -> Vec<f32> {
    let mut x: Vec<f32> = (0..20_000)
        .map(|i| ((i * 7919 % 256) as f32 / 255.0 - 0.1307) / 0.3081)
        .collect();
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffa0_0001),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0003),
        1e-30,
        -448.0,
        449.0,
        65504.0,
        1e10,
    ]);
    let mut state = 0x1234_5678_9abc_def0u64;
    for _ in 0..30_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let bits = (state >> 32) as u32;
        // Spread over magnitudes that every format overflows, underflows and keeps.
        let v = f32::from_bits(bits);
        x.push(if v.is_finite() {
            v
        } else {
            (bits >> 9) as f32 * 1e-3
        });
    }
    // The repeating values again, after the table has been churned.
    x.extend((0..5_000).map(|i| ((i * 31 % 256) as f32 / 255.0 - 0.5) * 3.0));
    x
}

#[test]
fn repeating_rounding_equals_the_reference_for_every_kind_of_spec() {
    let x = inputs();
    let formats = [
        "fp32",
        "bf16",
        "fp16",
        "e4m3",
        "e5m2",
        "e2m1",
        "float(e=4,m=3,bias=11,specials=none)",
        "float(e=6,m=9,subnormals=false)",
        "fixed(wl=8,fl=4)",
        "fixed(wl=32,fl=0)",
        "mxfp8_e4m3",
        "mxint8",
    ];
    let roundings = [
        Rounding::Nearest,
        Rounding::NearestAway,
        Rounding::TowardZero,
        Rounding::Stochastic { bits: 8 },
    ];
    let mut cases = 0;
    for f in formats {
        let format: Format = f.parse().unwrap();
        for rounding in roundings {
            for (saturate, scaling) in [
                (false, Scaling::None),
                (true, Scaling::None),
                (false, Scaling::Tensor),
            ] {
                let spec = QuantSpec {
                    rounding,
                    saturate,
                    scaling,
                    seed: 7,
                    stream: 3,
                    ..QuantSpec::new(format)
                };
                let (want, got) = (quantize(&x, &spec), quantize_repeating(&x, &spec));
                let what = format!("{f} {rounding:?} saturate {saturate} {scaling:?}");
                if let Some(w) = got.words.iter().zip(&want.words).position(|(a, b)| a != b) {
                    panic!("{what}: packed word {w} differs");
                }
                assert_eq!(got, want, "{what}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, formats.len() * roundings.len() * 3);
}
