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

#[test]
fn the_chebyshev_estimator_is_unbiased_for_its_polynomial() {
    use lowp::methods::linear::sigmoid_poly;
    use lowp::reference::linear::{Loss, batch_gradient};
    // Mean over 40,000 quantizations of -y Q0(a) P(z), each power z^k estimated by
    // prod_t<=k y Q_t(a)^T w: equals -y a P(y a^T w) computed exactly, within 6 standard
    // errors plus f32 rounding (terms below 4 in magnitude, a dozen roundings).
    let a = [0.37f32, -0.81, 0.05, 0.66, 1.0];
    let y = [-1.0f32];
    let w = [0.9f32, -0.7, 1.2, 0.4, -0.3];
    let d = a.len();
    let degree = 5;
    let poly = sigmoid_poly(degree, 4.0);
    let levels: Vec<Levels> = (0..d)
        .map(|_| Levels::uniform(-1.0, 1.0, 2).unwrap())
        .collect();
    let loss = Loss::Logistic {
        l2: 0.0,
        poly: Some(poly.clone()),
    };
    let n = 40_000;
    let (mut sum, mut sq) = ([0f64; 5], [0f64; 5]);
    for seed in 0..n {
        let q = QuantizedMatrix::new(&a, (1, d), levels.clone(), degree + 1, seed);
        let g = batch_gradient(
            &Samples::Quantized(&q, Estimator::Chebyshev),
            &y,
            &[0],
            &w,
            &loss,
        )
        .0;
        for c in 0..d {
            sum[c] += g[c] as f64;
            sq[c] += (g[c] as f64).powi(2);
        }
    }
    let z = y[0] as f64
        * a.iter()
            .zip(&w)
            .map(|(&x, &v)| x as f64 * v as f64)
            .sum::<f64>();
    let p: f64 = poly
        .iter()
        .enumerate()
        .map(|(k, &c)| c as f64 * z.powi(k as i32))
        .sum();
    for c in 0..d {
        let expected = -(y[0] as f64) * a[c] as f64 * p;
        let nf = n as f64;
        let mean = sum[c] / nf;
        let sd = (sq[c] / nf - mean * mean).max(0.0).sqrt();
        let bound = 6.0 * sd / nf.sqrt() + 12.0 * 4.0 * 2f64.powi(-24);
        assert!(
            (mean - expected).abs() <= bound,
            "coordinate {c}: mean {mean}, expected {expected}, bound {bound}"
        );
    }
}

#[test]
fn the_polynomial_approximates_the_sigmoid_on_its_range() {
    use lowp::methods::linear::sigmoid_poly;
    // Chebyshev interpolation of an analytic function converges geometrically in the
    // degree: the max error over [-R, R] falls with each added pair of terms, and at degree
    // 7 on [-4, 4] it is below 1% (sigma's poles at z = i pi bound the rate).
    let err = |degree: usize| {
        let p = sigmoid_poly(degree, 4.0);
        (0..=4000)
            .map(|i| {
                let z = -4.0 + 8.0 * i as f64 / 4000.0;
                let v: f64 = p
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| c as f64 * z.powi(k as i32))
                    .sum();
                (v - 1.0 / (1.0 + z.exp())).abs()
            })
            .fold(0f64, f64::max)
    };
    let (e1, e3, e5, e7) = (err(1), err(3), err(5), err(7));
    assert!(e3 < e1 && e5 < e3 && e7 < e5, "{e1} {e3} {e5} {e7}");
    assert!(e7 < 0.01, "degree 7: {e7}");
    // sigma(-0) = 1/2 exactly at the centre node's symmetry: the constant term.
    assert!((sigmoid_poly(5, 4.0)[0] - 0.5).abs() < 1e-6);
}
