//! Linear-model SGD throughput (ZipML): samples per second and bytes of sample data read
//! per epoch, fp32 samples against 2-, 4- and 8-bit level indices, on the GPU and on the
//! CPU reference; least squares (double sampling) and the SVM (refetching) on a synthetic
//! set.
//!
//! Bytes read per epoch count what the kernels load: every value of a row twice (for the
//! residual, then for the gradient), at 32 bits (fp32) or at its index width plus its
//! stored bits per value (up bits; refetching's on-a-level bit), and for the SVM each
//! refetched row's 32-bit values twice more.

mod common;

use common::is_cpu;
use lowp::gpu::GpuContext;
use lowp::levels::{Estimator, Loss, QuantizedMatrix, Samples};
use lowp::methods::linear::{LevelKind, column_levels, synthetic_lsq};
use lowp::ops::linear::GpuLinear;
use lowp::reference::linear::{batch_gradient, sgd_step};
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let (rows, cols, batch) = (20_000, 32, 256);
    let epochs = if is_cpu(&ctx) { 3 } else { 20 };
    let (t, _) = synthetic_lsq(rows, cols, 0.1, 1);
    let labels: Vec<f32> = t.target.iter().map(|&v| v.signum()).collect();
    let order = lowp::data::dataset::shuffled(rows, 1, 2);
    println!(
        "\nadapter: {} ({:?}, {:?}); {rows} rows x {cols} features, batch {batch}, {epochs} \
         timed epochs after one warm-up",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<24} {:>14} {:>14} {:>16} {:>10} {:>10}",
        "samples", "GPU samples/s", "CPU samples/s", "bytes read/epoch", "of fp32", "refetched"
    );
    let lsq = Loss::Lsq;
    let hinge = Loss::Hinge { l2: 1e-3 };
    let mut fp32_bytes = 0.0;
    for (name, loss, est, bits) in [
        ("lsq fp32", &lsq, Estimator::Fp32, 0),
        ("lsq double, 8 bits", &lsq, Estimator::Double, 8),
        ("lsq double, 4 bits", &lsq, Estimator::Double, 4),
        ("lsq naive, 4 bits", &lsq, Estimator::Naive, 4),
        ("lsq double, 2 bits", &lsq, Estimator::Double, 2),
        ("svm fp32", &hinge, Estimator::Fp32, 0),
        ("svm refetch, 8 bits", &hinge, Estimator::Refetch, 8),
        ("svm refetch, 4 bits", &hinge, Estimator::Refetch, 4),
        ("svm refetch, 2 bits", &hinge, Estimator::Refetch, 2),
    ] {
        let targets = if *loss == lsq { &t.target } else { &labels };
        let q = (est != Estimator::Fp32).then(|| {
            let levels = column_levels(&t, bits, LevelKind::Uniform).unwrap();
            let samples = if est == Estimator::Double { 2 } else { 1 };
            QuantizedMatrix::new(&t.features, (rows, cols), levels, samples, 3)
        });
        let samples = match &q {
            Some(q) if est == Estimator::Refetch => Samples::Refetch(q, &t.features),
            Some(q) => Samples::Quantized(q, est),
            None => Samples::Fp32(&t.features, cols),
        };
        let inside = (est == Estimator::Refetch) as usize * cols;
        let row_bits = q.as_ref().map_or(32 * cols, |q| q.bits_per_row() + inside) as f64;
        let mut gpu = GpuLinear::new(&ctx, &samples, targets, loss).unwrap();
        gpu.epoch(&order, batch, 0.01, 0).unwrap();
        let start = Instant::now();
        let mut refetched = 0;
        for e in 0..epochs {
            refetched += gpu.epoch(&order, batch, 0.01, e as u64).unwrap();
        }
        let gpu_rate = (epochs * rows) as f64 / start.elapsed().as_secs_f64();
        let refetched = refetched as f64 / epochs as f64;
        let bytes = 2.0 * (rows as f64 * row_bits + refetched * 32.0 * cols as f64) / 8.0;
        if est == Estimator::Fp32 {
            fp32_bytes = bytes;
        }
        let mut w = vec![0f32; cols];
        let start = Instant::now();
        for _ in 0..epochs {
            for r in order.chunks(batch) {
                let (g, _) = batch_gradient(&samples, targets, r, &w, loss);
                sgd_step(&mut w, &g, 0.01);
            }
        }
        let cpu_rate = (epochs * rows) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{name:<24} {gpu_rate:>14.0} {cpu_rate:>14.0} {bytes:>16.0} {:>9.1}% {:>10.0}",
            100.0 * bytes / fp32_bytes,
            refetched
        );
    }
}
