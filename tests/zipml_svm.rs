//! The SVM under ZipML's estimators: refetching reads the hinge's side exactly (every row it
//! does not read again has its quantized margin on the same side of 1 as the exact f64
//! margin), its gradient's mean at a fixed model is the exact subgradient (Monte Carlo, 6
//! standard errors) while naive sampling's is told apart from it, and SGD approaches the
//! f64 optimum that dual coordinate descent finds (itself checked against perturbations).

use lowp::data::table::Table;
use lowp::levels::{Levels, QuantizedMatrix, Samples};
use lowp::methods::linear::{
    LevelKind, LinearConfig, Task, column_levels, synthetic_lsq, train_linear,
};
use lowp::methods::optimum::{objective, svm_optimum};
use lowp::reference::linear::{Loss, batch_gradient, row_factor};

/// The synthetic set with labels by the sign of its noisy target (+-1).
fn classes(n: usize, d: usize, seed: u64) -> (Table, Vec<f32>) {
    let (mut t, w) = synthetic_lsq(n, d, 0.3, seed);
    t.target
        .iter_mut()
        .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 });
    (t, w)
}

/// The exact margin y a^T w in f64 and sum |a_c w_c| (f32 rounding's scale).
fn margin(t: &Table, i: usize, w: &[f32]) -> (f64, f64) {
    let d = t.cols();
    let a = &t.features[i * d..(i + 1) * d];
    let z: f64 = a.iter().zip(w).map(|(&u, &v)| u as f64 * v as f64).sum();
    let s: f64 = a
        .iter()
        .zip(w)
        .map(|(&u, &v)| (u as f64 * v as f64).abs())
        .sum();
    (t.target[i] as f64 * z, s)
}

#[test]
fn refetching_reads_the_hinge_side_exactly() {
    let (n, d) = (1500, 12);
    let (t, w_star) = classes(n, d, 5);
    let loss = Loss::Hinge { l2: 0.0 };
    let mut by_bits = Vec::new();
    for bits in 1..=6 {
        for kind in [LevelKind::Uniform, LevelKind::Optimal] {
            let levels = column_levels(&t, bits, kind).unwrap();
            let q = QuantizedMatrix::new(&t.features, (n, d), levels, 1, bits as u64);
            let (mut refetched, mut naive_wrong) = (0, 0);
            // Models whose margins spread around 1: multiples of the generating weights.
            for scale in [0.5f32, 1.0, 2.0, 4.0] {
                let w: Vec<f32> = w_star.iter().map(|v| v * scale).collect();
                for i in 0..n {
                    let (m, s) = margin(&t, i, &w);
                    let exact = if m < 1.0 { -t.target[i] } else { 0.0 };
                    let refetch = Samples::Refetch(&q, &t.features);
                    let (r, full) = row_factor(&refetch, &t.target, i, &w, &loss);
                    refetched += full as usize;
                    // A row read again decides in f32 on its exact features: it may differ
                    // from the f64 side only within f32's rounding of the dot product,
                    // d 2^-24 sum |a_c w_c|. A row not read again must be exact.
                    let tie = (m - 1.0).abs() <= (d as f64 + 2.0) * 2f64.powi(-24) * s;
                    assert!(
                        r == exact || (full && tie),
                        "{bits} bits {kind}, scale {scale}, row {i}: margin {m}, factor {r}, \
                         refetched {full}"
                    );
                    let naive = Samples::Quantized(&q, lowp::levels::Estimator::Naive);
                    naive_wrong +=
                        (row_factor(&naive, &t.target, i, &w, &loss).0 != exact) as usize;
                }
            }
            // One bit keeps each column's two ends, and this data's values lie between them:
            // the band, sum_c 2 |w_c|, holds every margin, so every row is read again.
            let rows = 4 * n;
            assert!(
                refetched > 0 && (refetched < rows || bits == 1),
                "{bits} bits {kind}: {refetched} of {rows} rows refetched"
            );
            if bits <= 4 {
                assert!(naive_wrong > 0, "{bits} bits {kind}: naive never wrong");
            }
            by_bits.push((bits, kind, refetched));
        }
    }
    // The band narrows as the levels do: fewer refetches at 6 bits than at 1.
    for kind in [LevelKind::Uniform, LevelKind::Optimal] {
        let at = |b: u32| by_bits.iter().find(|e| e.0 == b && e.1 == kind).unwrap().2;
        assert!(
            at(6) * 4 < at(1),
            "{kind}: {} at 6 bits, {} at 1",
            at(6),
            at(1)
        );
    }
}

#[test]
fn refetching_is_unbiased_and_naive_sampling_is_not() {
    // Rows whose margins lie near 1 at this model, where a quantized margin can cross it.
    let a: [[f32; 4]; 3] = [
        [0.62, -0.35, 0.18, 1.0],
        [-0.27, 0.81, -0.44, 1.0],
        [0.05, 0.47, 0.93, 1.0],
    ];
    let y = [1.0f32, -1.0, 1.0];
    let w = [1.1f32, -0.4, 0.7, 0.2];
    let (n, d) = (a.len(), 4);
    let x: Vec<f32> = a.concat();
    let levels: Vec<Levels> = (0..d)
        .map(|c| match c + 1 == d {
            true => Levels::new(vec![1.0]).unwrap(),
            false => Levels::uniform(-1.0, 1.0, 2).unwrap(),
        })
        .collect();
    let loss = Loss::Hinge { l2: 0.0 };
    let rows: Vec<usize> = (0..n).collect();
    // The exact subgradient in f64.
    let mut exact = [0f64; 4];
    for i in 0..n {
        let m: f64 = y[i] as f64 * (0..d).map(|c| a[i][c] as f64 * w[c] as f64).sum::<f64>();
        if m < 1.0 {
            (0..d).for_each(|c| exact[c] -= y[i] as f64 * a[i][c] as f64 / n as f64);
        }
    }
    let trials = 40_000;
    let (mut sum, mut sq) = ([[0f64; 4]; 2], [[0f64; 4]; 2]);
    for seed in 0..trials {
        let q = QuantizedMatrix::new(&x, (n, d), levels.clone(), 1, seed);
        let samples = [
            Samples::Refetch(&q, &x),
            Samples::Quantized(&q, lowp::levels::Estimator::Naive),
        ];
        for (k, s) in samples.iter().enumerate() {
            let (g, _) = batch_gradient(s, &y, &rows, &w, &loss);
            for c in 0..d {
                sum[k][c] += g[c] as f64;
                sq[k][c] += (g[c] as f64).powi(2);
            }
        }
    }
    let nf = trials as f64;
    let mut told_apart = 0;
    for c in 0..d {
        for k in 0..2 {
            let mean = sum[k][c] / nf;
            let sd = (sq[k][c] / nf - mean * mean).max(0.0).sqrt();
            // Each gradient: 3 terms of size <= 1, in f32: within 4 ulps of 3.
            let bound = 6.0 * sd / nf.sqrt() + 3.0 * 4.0 * 2f64.powi(-24);
            if k == 0 {
                assert!(
                    (mean - exact[c]).abs() <= bound,
                    "refetch, coordinate {c}: mean {mean}, exact {}, bound {bound}",
                    exact[c]
                );
            } else if (mean - exact[c]).abs() > bound {
                told_apart += 1;
            }
        }
    }
    assert!(told_apart >= 1, "naive sampling's bias was not seen");
}

#[test]
fn sgd_approaches_the_dual_coordinate_descent_optimum() {
    let (t, _) = classes(1500, 8, 9);
    let l2 = 0.01;
    let task = Task::Svm { l2 };
    let (w_opt, best) = svm_optimum(&t, l2 as f64, 1e-12);
    let at = |w: &[f64]| {
        let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        objective(&t, &w32, task)
    };
    // The optimum is one: no perturbation of it (f32 weights, so steps of 1e-3 and 1e-2
    // that f32 resolves) lowers the objective beyond f32's rounding of the weights.
    let base = at(&w_opt);
    assert!((base - best).abs() <= 1e-6 * best, "{base} vs {best}");
    for k in 0..64u64 {
        let step = if k % 2 == 0 { 1e-3 } else { 1e-2 };
        let w: Vec<f64> = w_opt
            .iter()
            .enumerate()
            .map(|(c, v)| {
                let r = lowp::rng::random_bits(k, 3, c as u64) as f64 / 4294967296.0;
                v + step * (2.0 * r - 1.0)
            })
            .collect();
        assert!(
            at(&w) >= base - 1e-7,
            "direction {k}: {} below {base}",
            at(&w)
        );
    }
    // SGD with a decaying step, on fp32 and on 2-bit refetched samples, closes 98% of the
    // gap from w = 0 in 20 epochs.
    let start = objective(&t, &vec![0.0; t.cols()], task);
    for (estimator, bits) in [
        (lowp::levels::Estimator::Fp32, 32),
        (lowp::levels::Estimator::Refetch, 2),
    ] {
        let cfg = LinearConfig {
            task,
            degree: 0,
            range: 1.0,
            estimator,
            bits,
            levels: LevelKind::Uniform,
            epochs: 20,
            batch: 8,
            lr: 0.5,
            decay: true,
            seed: 1,
            model: None,
            grad: None,
            resample: false,
        };
        let w = train_linear(&cfg, &t, None, None, |_, _| {}).unwrap();
        let gap = objective(&t, &w, task) - best;
        assert!(
            gap >= -1e-7 && gap <= 0.02 * (start - best),
            "{estimator}: gap {gap} from {}",
            start - best
        );
    }
}
