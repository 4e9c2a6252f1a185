//! Linear-model SGD throughput (ZipML): samples per second and bytes of sample data read
//! per epoch, fp32 samples against 2-, 4- and 8-bit level indices (double sampling), on
//! the GPU and on the CPU reference, least squares on a synthetic set.
//!
//! Bytes read per epoch count what the kernels load: every value of a row twice (for the
//! residual, then for the gradient), at 32 bits (fp32) or at its index width plus one up
//! bit per sample.

mod common;

use common::is_cpu;
use lowp::gpu::GpuContext;
use lowp::levels::{Estimator, Loss, QuantizedMatrix, Samples};
use lowp::methods::linear::{LevelKind, column_levels, synthetic_lsq};
use lowp::ops::linear::GpuLinear;
use lowp::reference::linear::{lsq_gradient, sgd_step};
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let (rows, cols, batch) = (20_000, 32, 256);
    let epochs = if is_cpu(&ctx) { 3 } else { 20 };
    let (t, _) = synthetic_lsq(rows, cols, 0.1, 1);
    let order = lowp::data::dataset::shuffled(rows, 1, 2);
    println!(
        "\nadapter: {} ({:?}, {:?}); least squares, {rows} rows x {cols} features, batch \
         {batch}, {epochs} timed epochs after one warm-up",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<16} {:>14} {:>14} {:>16} {:>14}",
        "samples", "GPU samples/s", "CPU samples/s", "bytes read/epoch", "of fp32"
    );
    let mut fp32_bytes = 0.0;
    for (name, est, bits) in [
        ("fp32", Estimator::Fp32, 0),
        ("double, 8 bits", Estimator::Double, 8),
        ("double, 4 bits", Estimator::Double, 4),
        ("naive, 4 bits", Estimator::Naive, 4),
        ("double, 2 bits", Estimator::Double, 2),
    ] {
        let q = (est != Estimator::Fp32).then(|| {
            let levels = column_levels(&t, bits, LevelKind::Uniform).unwrap();
            let samples = if est == Estimator::Double { 2 } else { 1 };
            QuantizedMatrix::new(&t.features, (rows, cols), levels, samples, 3)
        });
        let samples = match &q {
            Some(q) => Samples::Quantized(q, est),
            None => Samples::Fp32(&t.features, cols),
        };
        let row_bits = q.as_ref().map_or(32 * cols, |q| q.bits_per_row()) as f64;
        let bytes = 2.0 * rows as f64 * row_bits / 8.0;
        if fp32_bytes == 0.0 {
            fp32_bytes = bytes;
        }
        let mut gpu = GpuLinear::new(&ctx, &samples, &t.target, &Loss::Lsq).unwrap();
        gpu.epoch(&order, batch, 0.01).unwrap();
        let start = Instant::now();
        for _ in 0..epochs {
            gpu.epoch(&order, batch, 0.01).unwrap();
        }
        let gpu_rate = (epochs * rows) as f64 / start.elapsed().as_secs_f64();
        let mut w = vec![0f32; cols];
        let start = Instant::now();
        for _ in 0..epochs {
            for r in order.chunks(batch) {
                let g = lsq_gradient(&samples, &t.target, r, &w);
                sgd_step(&mut w, &g, 0.01);
            }
        }
        let cpu_rate = (epochs * rows) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{name:<16} {gpu_rate:>14.0} {cpu_rate:>14.0} {bytes:>16.0} {:>13.1}%",
            100.0 * bytes / fp32_bytes
        );
    }
}
