//! The GPU linear-model trainer against its CPU reference: the same weights, bit for bit,
//! after several epochs, for least squares, logistic regression and the SVM, every estimator
//! (Chebyshev and refetching included, with the same rows refetched), uniform and optimal
//! levels, batches that do and do not divide the rows, and index widths from 1 to 5 bits.

mod common;

use lowp::levels::Estimator;
use lowp::methods::linear::{LevelKind, LinearConfig, Task, synthetic_lsq, train_linear};

#[test]
fn gpu_weights_equal_the_cpu_reference_bit_for_bit() {
    let ctx = common::gpu();
    let (train, _) = synthetic_lsq(301, 6, 0.3, 4);
    let mut classes = train.clone();
    classes
        .target
        .iter_mut()
        .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 });
    let logistic = Task::Logistic { l2: 0.01 };
    let svm = Task::Svm { l2: 0.01 };
    // The SVM's features on a grid of 0.25, so that many values sit on a level (no error
    // band) and others between two.
    let mut discrete = classes.clone();
    discrete
        .features
        .iter_mut()
        .for_each(|v| *v = (*v * 4.0).round() / 4.0);
    let mut refetched = 0;
    for (t, (task, estimator, bits, levels, batch)) in [
        (Task::Lsq, Estimator::Fp32, 4, LevelKind::Uniform, 16),
        (Task::Lsq, Estimator::Naive, 1, LevelKind::Uniform, 7),
        (Task::Lsq, Estimator::Double, 2, LevelKind::Uniform, 32),
        (Task::Lsq, Estimator::Double, 3, LevelKind::Optimal, 301),
        (Task::Lsq, Estimator::Naive, 5, LevelKind::Optimal, 1),
        (logistic, Estimator::Fp32, 4, LevelKind::Uniform, 16),
        (logistic, Estimator::Naive, 2, LevelKind::Uniform, 9),
        (logistic, Estimator::Double, 3, LevelKind::Optimal, 32),
        (logistic, Estimator::Chebyshev, 3, LevelKind::Uniform, 20),
        (svm, Estimator::Fp32, 4, LevelKind::Uniform, 16),
        (svm, Estimator::Naive, 2, LevelKind::Uniform, 9),
        (svm, Estimator::Double, 3, LevelKind::Optimal, 32),
        (svm, Estimator::Refetch, 1, LevelKind::Uniform, 7),
        (svm, Estimator::Refetch, 3, LevelKind::Optimal, 1),
        (svm, Estimator::Refetch, 5, LevelKind::Uniform, 301),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = LinearConfig {
            resample: t % 3 == 1,
            task,
            degree: 3 + t % 3,
            range: 4.0,
            estimator,
            bits,
            levels,
            epochs: 3,
            batch,
            lr: 0.05,
            decay: t % 2 == 0,
            seed: t as u64,
            model: None,
            grad: None,
        };
        let data = match task {
            Task::Lsq => &train,
            Task::Svm { .. } => &discrete,
            _ => &classes,
        };
        let (mut on_gpu, mut on_cpu) = (Vec::new(), Vec::new());
        let wg = train_linear(&cfg, data, None, Some(&ctx), |m, w| {
            on_gpu.push((m.train_loss, w.to_vec(), m.refetched))
        })
        .unwrap();
        let wc = train_linear(&cfg, data, None, None, |m, w| {
            on_cpu.push((m.train_loss, w.to_vec(), m.refetched))
        })
        .unwrap();
        let bits_of = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits_of(&wg), bits_of(&wc), "{cfg:?}");
        assert_eq!(on_gpu.len(), 3);
        for ((lg, g, rg), (lc, c, rc)) in on_gpu.iter().zip(&on_cpu) {
            assert_eq!(bits_of(g), bits_of(c), "{cfg:?}: an epoch's weights");
            assert_eq!(lg, lc);
            assert_eq!(rg, rc, "{cfg:?}: rows refetched");
            assert_eq!(rc.is_some(), estimator == Estimator::Refetch);
        }
        if estimator == Estimator::Refetch {
            // Not every row is read again (the first step's margins are 0, far from 1).
            let r: u64 = on_cpu.iter().map(|e| e.2.unwrap()).sum();
            assert!(r < 3 * 301, "{cfg:?}: {r} rows refetched");
            refetched += r;
        }
        // It learned something: the objective fell below that of w = 0.
        let mut zero = None;
        train_linear(
            &LinearConfig {
                lr: 0.0,
                epochs: 1,
                ..cfg.clone()
            },
            data,
            None,
            None,
            |m, _| zero = Some(m.train_loss),
        )
        .unwrap();
        let zero = zero.unwrap();
        assert!(on_cpu[2].0 < zero, "{cfg:?}: {} vs {zero}", on_cpu[2].0);
    }
    assert!(refetched > 0, "some rows were refetched");
}

#[test]
fn rounded_model_and_gradient_equal_the_cpu_reference() {
    use lowp::quant::{QuantSpec, Rounding, Scaling};
    let ctx = common::gpu();
    let (train, _) = synthetic_lsq(203, 6, 0.3, 8);
    let mut classes = train.clone();
    classes
        .target
        .iter_mut()
        .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 });
    let spec = |f: &str| QuantSpec {
        rounding: Rounding::Stochastic { bits: 23 },
        saturate: true,
        scaling: Scaling::Tensor,
        ..QuantSpec::new(f.parse().unwrap())
    };
    for (t, (task, estimator, model, grad)) in [
        (
            Task::Lsq,
            Estimator::Double,
            Some("fixed(wl=8,fl=7)"),
            Some("fixed(wl=6,fl=5)"),
        ),
        (
            Task::Logistic { l2: 0.01 },
            Estimator::Naive,
            None,
            Some("e4m3"),
        ),
        (
            Task::Svm { l2: 0.01 },
            Estimator::Refetch,
            Some("e5m2"),
            None,
        ),
        (Task::Lsq, Estimator::Fp32, Some("mxfp8_e4m3"), Some("bf16")),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = LinearConfig {
            task,
            degree: 3,
            range: 4.0,
            estimator,
            bits: 3,
            levels: LevelKind::Uniform,
            epochs: 2,
            batch: 16,
            lr: 0.1,
            decay: t % 2 == 0,
            seed: t as u64,
            model: model.map(spec),
            grad: grad.map(spec),
            resample: false,
        };
        let data = if task == Task::Lsq { &train } else { &classes };
        let wg = train_linear(&cfg, data, None, Some(&ctx), |_, _| {}).unwrap();
        let wc = train_linear(&cfg, data, None, None, |_, _| {}).unwrap();
        let bits_of = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits_of(&wg), bits_of(&wc), "{cfg:?}");
        assert!(wc.iter().any(|&v| v != 0.0), "{cfg:?}: it moved");
        // The weights are the format's values: rounding them to nearest changes nothing.
        if let Some(m) = cfg.model {
            let nearest = QuantSpec {
                rounding: Rounding::Nearest,
                ..m
            };
            let (again, _) = lowp::reference::quantize::fake_quantize(&wc, &nearest);
            assert_eq!(bits_of(&again), bits_of(&wc), "{cfg:?}");
        }
        // Without the rounding the same run ends elsewhere: the formats were applied.
        let plain = LinearConfig {
            model: None,
            grad: None,
            ..cfg.clone()
        };
        let wp = train_linear(&plain, data, None, None, |_, _| {}).unwrap();
        assert_ne!(bits_of(&wp), bits_of(&wc), "{cfg:?}");
    }
}
