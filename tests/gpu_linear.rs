//! The GPU linear-model trainer against its CPU reference: the same weights, bit for bit,
//! after several epochs, for every estimator, uniform and optimal levels, batches that do
//! and do not divide the rows, and index widths from 1 to 5 bits.

mod common;

use lowp::levels::Estimator;
use lowp::methods::linear::{LevelKind, LinearConfig, synthetic_lsq, train_lsq};

#[test]
fn gpu_weights_equal_the_cpu_reference_bit_for_bit() {
    let ctx = common::gpu();
    let (train, _) = synthetic_lsq(301, 6, 0.3, 4);
    for (t, (estimator, bits, levels, batch)) in [
        (Estimator::Fp32, 4, LevelKind::Uniform, 16),
        (Estimator::Naive, 1, LevelKind::Uniform, 7),
        (Estimator::Double, 2, LevelKind::Uniform, 32),
        (Estimator::Double, 3, LevelKind::Optimal, 301),
        (Estimator::Naive, 5, LevelKind::Optimal, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = LinearConfig {
            estimator,
            bits,
            levels,
            epochs: 3,
            batch,
            lr: 0.05,
            decay: t % 2 == 0,
            seed: t as u64,
        };
        let (mut on_gpu, mut on_cpu) = (Vec::new(), Vec::new());
        let wg = train_lsq(&cfg, &train, None, Some(&ctx), |m, w| {
            on_gpu.push((m.train_loss, w.to_vec()))
        })
        .unwrap();
        let wc = train_lsq(&cfg, &train, None, None, |m, w| {
            on_cpu.push((m.train_loss, w.to_vec()))
        })
        .unwrap();
        let bits_of = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits_of(&wg), bits_of(&wc), "{cfg:?}");
        assert_eq!(on_gpu.len(), 3);
        for ((lg, g), (lc, c)) in on_gpu.iter().zip(&on_cpu) {
            assert_eq!(bits_of(g), bits_of(c), "{cfg:?}: an epoch's weights");
            assert_eq!(lg, lc);
        }
        // It learned something: the loss fell from that of w = 0.
        let zero = lowp::methods::linear::lsq_loss(&train, &vec![0.0; train.cols()]);
        assert!(on_cpu[2].0 < zero, "{cfg:?}: {} vs {zero}", on_cpu[2].0);
    }
}
