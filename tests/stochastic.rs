//! Stochastic rounding is unbiased and always lands on one of the two neighbours.

use lowp::format::{Format, ScalarFormat};
use lowp::quant::{QuantSpec, Rounding};
use lowp::reference::fake_quantize;

/// For each x, SR(x) takes only x's two neighbours, and its mean over n draws is x.
///
/// With neighbours lo < x < hi and p = (x - lo) / (hi - lo), the mean of n draws has
/// standard deviation (hi - lo) * sqrt(p (1 - p) / n) <= (hi - lo) / (2 sqrt n).
/// We allow 6 such deviations (false-failure probability about 2e-9 per value), plus the
/// bias that k-bit rounding of p itself may add: at most 2^-(k+1) of a gap.
fn check_unbiased(fmt: &str, xs: &[f32], bits: u32) {
    let format: Format = fmt.parse().unwrap();
    let n = 20_000usize;
    for (t, &x) in xs.iter().enumerate() {
        let input = vec![x; n];
        // Neighbours: x rounded toward zero, and the next code away from zero.
        let el = format.element();
        let tz = lowp::reference::quantize(
            &[x],
            &QuantSpec {
                rounding: Rounding::TowardZero,
                ..QuantSpec::new(format)
            },
        );
        let code = lowp::reference::unpack(&tz.words, el.bits(), 1)[0];
        let away = match el {
            ScalarFormat::Float(_) => code + 1,
            ScalarFormat::Fixed(f) if x < 0.0 => code.wrapping_sub(1) & ((1u64 << f.wl) - 1) as u32,
            ScalarFormat::Fixed(_) => code + 1,
        };
        let a = f32::from_bits(el.decode_bits(code, 0));
        let b = f32::from_bits(el.decode_bits(away, 0));
        let (lo, hi) = (a.min(b), a.max(b));
        assert!(lo < x && x < hi, "{fmt}: {x} not between {lo} and {hi}");
        let spec = QuantSpec {
            rounding: Rounding::Stochastic { bits },
            seed: 1234 + t as u64,
            stream: 9,
            ..QuantSpec::new(format)
        };
        let (y, _) = fake_quantize(&input, &spec);
        let mut sum = 0f64;
        for v in &y {
            assert!(
                *v == lo || *v == hi,
                "{fmt}: SR({x}) = {v}, not {lo} or {hi}"
            );
            sum += *v as f64;
        }
        let mean = sum / n as f64;
        let gap = (hi - lo) as f64;
        let bound = 6.0 * gap / (2.0 * (n as f64).sqrt()) + gap * 2f64.powi(-(bits as i32 + 1));
        assert!(
            (mean - x as f64).abs() <= bound,
            "{fmt}: mean of SR({x}) = {mean}, off by {} > {bound}",
            (mean - x as f64).abs()
        );
    }
}

#[test]
fn stochastic_rounding_is_unbiased_for_floats() {
    let xs = [0.3f32, -0.3, 1.1, 3.3, -250.0, 0.0011, 1e-3, 17.7];
    check_unbiased("e4m3", &xs, 16);
    check_unbiased("e5m2", &xs, 16);
    check_unbiased("bf16", &[0.1f32, -3.3333, 1e-30], 16);
    check_unbiased("e2m1", &[0.3f32, 2.6, -4.9], 8);
}

#[test]
fn stochastic_rounding_is_unbiased_for_fixed_point() {
    check_unbiased("fixed(wl=8,fl=4)", &[0.3f32, -0.3, 1.03, -7.91], 16);
    check_unbiased("fixed(wl=16,fl=8)", &[0.001f32, -12.3456], 16);
}

#[test]
fn stochastic_rounding_is_reproducible() {
    let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
    let spec = QuantSpec {
        rounding: Rounding::Stochastic { bits: 16 },
        seed: 77,
        ..QuantSpec::new("e4m3".parse().unwrap())
    };
    assert_eq!(fake_quantize(&x, &spec).0, fake_quantize(&x, &spec).0);
    let other = QuantSpec { seed: 78, ..spec };
    assert_ne!(fake_quantize(&x, &spec).0, fake_quantize(&x, &other).0);
}
