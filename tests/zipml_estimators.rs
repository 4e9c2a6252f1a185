//! ZipML's estimators at a fixed model, by Monte Carlo over independent quantizations: the
//! double-sampling gradient's mean is the exact least-squares gradient, the naive one's is
//! the exact gradient plus D_a w (a ridge term, D_a the quantization variances), and the
//! two are told apart. Bounds: 6 standard errors per coordinate plus f32 rounding.

use lowp::levels::{Estimator, Levels, QuantizedMatrix, Samples};
use lowp::reference::linear::lsq_gradient;

#[test]
fn double_sampling_is_unbiased_and_naive_sampling_is_biased_by_the_variances() {
    let a = [0.37f32, -0.81, 0.05, 0.66, 1.0];
    let b = [0.4f32];
    let w = [2.5f32, -3.0, 1.5, 4.0, -1.0];
    let d = a.len();
    let levels: Vec<Levels> = (0..d)
        .map(|_| Levels::uniform(-1.0, 1.0, 2).unwrap())
        .collect();
    let n = 40_000;
    let (mut sum, mut sq) = ([[0f64; 5]; 2], [[0f64; 5]; 2]);
    for seed in 0..n {
        let q = QuantizedMatrix::new(&a, (1, d), levels.clone(), 2, seed);
        for (k, est) in [Estimator::Double, Estimator::Naive]
            .into_iter()
            .enumerate()
        {
            let g = lsq_gradient(&Samples::Quantized(&q, est), &b, &[0], &w);
            for c in 0..d {
                sum[k][c] += g[c] as f64;
                sq[k][c] += (g[c] as f64).powi(2);
            }
        }
    }
    let residual: f64 = a
        .iter()
        .zip(&w)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>()
        - b[0] as f64;
    let variance = |c: usize| {
        let v = levels[c].values();
        let (j, up) = levels[c].bracket(a[c]);
        (v[up] as f64 - a[c] as f64) * (a[c] as f64 - v[j] as f64)
    };
    let mut told_apart = 0;
    for c in 0..d {
        let exact = a[c] as f64 * residual;
        let biased = exact + variance(c) * w[c] as f64;
        let nf = n as f64;
        for (k, expected) in [(0, exact), (1, biased)] {
            let mean = sum[k][c] / nf;
            let sd = (sq[k][c] / nf - mean * mean).max(0.0).sqrt();
            // f32 arithmetic: each gradient within ~8 ulps of |terms| <= 1 * 12.
            let bound = 6.0 * sd / nf.sqrt() + 12.0 * 8.0 * 2f64.powi(-24);
            assert!(
                (mean - expected).abs() <= bound,
                "estimator {k}, coordinate {c}: mean {mean}, expected {expected}, bound {bound}"
            );
            if k == 1 && (mean - exact).abs() > bound {
                told_apart += 1;
            }
        }
    }
    // Every coordinate whose value is not on a level has a bias the test can see.
    let off_level = (0..d).filter(|&c| variance(c) > 0.01).count();
    assert!(off_level >= 3);
    assert_eq!(
        told_apart, off_level,
        "the naive bias shows where it is large"
    );
}

#[test]
fn quantized_samples_lie_on_the_bracketing_levels_and_count_their_bits() {
    let x: Vec<f32> = (0..60)
        .map(|i| ((i * 37 % 61) as f32 / 30.0) - 1.0)
        .collect();
    let levels = vec![Levels::uniform(-1.0, 1.0, 3).unwrap(); 3];
    let q = QuantizedMatrix::new(&x, (20, 3), levels.clone(), 2, 9);
    for i in 0..20 {
        for c in 0..3 {
            let v = x[i * 3 + c];
            let (j, up) = levels[c].bracket(v);
            let l = levels[c].values();
            for s in 0..2 {
                let got = q.value(i, c, s);
                assert!(got == l[j] || got == l[up], "{v} -> {got}");
            }
        }
    }
    // 8 levels: a 3-bit index, plus one bit for each of the two samples, per value.
    assert_eq!(q.index_bits(), 3);
    assert_eq!(q.bits_per_row(), 3 * (3 + 2));
}
