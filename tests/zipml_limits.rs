//! The limits of ZipML's least-squares SGD on stored samples (`methods::zipml_limits`):
//! full-batch descent on the stored samples ends exactly at the computed stationary points,
//! the naive estimator's limit is the ridge problem's in expectation (20 seeds, 4 standard
//! errors), double sampling's limit is far below it, and drawing the samples anew every
//! epoch takes SGD below the stored samples' limit.

use lowp::levels::{Estimator, QuantizedMatrix};
use lowp::methods::linear::{
    LevelKind, LinearConfig, Task, column_levels, lsq_optimum, synthetic_lsq, train_linear,
};
use lowp::methods::zipml_limits::limits;

#[test]
fn descent_on_stored_samples_ends_at_their_limits() {
    let (n, d) = (400, 6);
    let (t, _) = synthetic_lsq(n, d, 0.3, 3);
    let best = lsq_optimum(&t).1;
    for bits in 1..=3 {
        for kind in [LevelKind::Uniform, LevelKind::Optimal] {
            let levels = column_levels(&t, bits, kind).unwrap();
            let seed = 5 + bits as u64;
            let q = QuantizedMatrix::new(&t.features, (n, d), levels, 2, seed);
            let l = limits(&t, &q);
            for (est, limit) in [(Estimator::Naive, l.naive), (Estimator::Double, l.double)] {
                // Full batches at a constant step: gradient descent on the stored samples,
                // which contracts to the stationary point (measured: equal to 7 digits).
                let cfg = LinearConfig {
                    task: Task::Lsq,
                    degree: 0,
                    range: 1.0,
                    estimator: est,
                    bits,
                    levels: kind,
                    epochs: 3000,
                    batch: n,
                    lr: 0.5,
                    decay: false,
                    seed,
                    model: None,
                    grad: None,
                    resample: false,
                };
                let mut last = f64::NAN;
                train_linear(&cfg, &t, None, None, |m, _| last = m.train_loss).unwrap();
                let gap = last - best;
                // f32 weights and f32 gradient sums: within 1e-4 of the limit (relative),
                // or 1e-9 absolute where the limit is near 0.
                assert!(
                    (gap - limit).abs() <= 1e-4 * limit + 1e-9,
                    "{bits} bits {kind} {est}: descent's gap {gap:e}, limit {limit:e}"
                );
            }
        }
    }
}

#[test]
fn the_naive_limit_is_the_ridge_prediction_and_double_sampling_lies_far_below() {
    let (n, d, seeds) = (20_000, 8, 20);
    let (t, _) = synthetic_lsq(n, d, 0.1, 3);
    for bits in [2, 3] {
        let levels = column_levels(&t, bits, LevelKind::Uniform).unwrap();
        let all: Vec<_> = (0..seeds)
            .map(|s| {
                limits(
                    &t,
                    &QuantizedMatrix::new(&t.features, (n, d), levels.clone(), 2, s),
                )
            })
            .collect();
        let ridge = all[0].ridge;
        let naive: Vec<f64> = all.iter().map(|l| l.naive).collect();
        let mean = naive.iter().sum::<f64>() / seeds as f64;
        let sd =
            (naive.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (seeds - 1) as f64).sqrt();
        // 4 standard errors of the 20 seeds' mean, plus 2% for the second-order term by
        // which a mean of losses exceeds the loss at the mean point (measured differences:
        // 0.9 and 2.3 standard errors, 0.6% and 3.1% of the prediction).
        let bound = 4.0 * sd / (seeds as f64).sqrt() + 0.02 * ridge;
        assert!(
            (mean - ridge).abs() <= bound,
            "{bits} bits: naive limits' mean {mean:e}, ridge {ridge:e}, bound {bound:e}"
        );
        // Double sampling's limit is the stored samples' noise, O(1/N): far below naive's.
        for l in &all {
            assert!(l.double < l.naive / 10.0, "{bits} bits: {l:?}");
        }
    }
}

#[test]
fn resampling_every_epoch_goes_below_the_stored_limit() {
    let (n, d) = (2000, 8);
    let (t, _) = synthetic_lsq(n, d, 0.1, 4);
    let best = lsq_optimum(&t).1;
    let levels = column_levels(&t, 2, LevelKind::Uniform).unwrap();
    let limit = limits(&t, &QuantizedMatrix::new(&t.features, (n, d), levels, 2, 1)).double;
    let gap = |resample: bool| {
        let cfg = LinearConfig {
            task: Task::Lsq,
            degree: 0,
            range: 1.0,
            estimator: Estimator::Double,
            bits: 2,
            levels: LevelKind::Uniform,
            epochs: 40,
            batch: 16,
            lr: 0.1,
            decay: true,
            seed: 1,
            model: None,
            grad: None,
            resample,
        };
        let mut last = f64::NAN;
        train_linear(&cfg, &t, None, None, |m, _| last = m.train_loss).unwrap();
        last - best
    };
    // Stored once, SGD ends at the stored samples' limit (within the 10% its decaying step
    // has not yet closed); drawn anew each epoch it averages 40 draws (measured: 1/50 of
    // the limit).
    let (stored, fresh) = (gap(false), gap(true));
    assert!(stored >= 0.9 * limit, "stored {stored:e}, limit {limit:e}");
    assert!(fresh < limit / 4.0, "resampled {fresh:e}, limit {limit:e}");
}
