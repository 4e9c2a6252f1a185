//! HALP's inner loop against fp32 SVRG's: samples per second of the inner steps (the
//! epoch's centre and full gradient excluded), HALP and LP-SVRG at 8 bits, on the GPU and on
//! the CPU reference, for least squares (20,000 rows x 32 features, batch 1) and softmax
//! regression (10 classes, 785 features like MNIST's pixels, batch 16).

mod common;

use common::is_cpu;
use lowp::glm::{Glm, InnerSteps, Rows};
use lowp::gpu::GpuContext;
use lowp::methods::linear::synthetic_lsq;
use lowp::ops::halp::GpuHalp;
use lowp::reference::halp::{centre, inner};
use lowp::scaled_fixed::ScaledFixed;
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let scale = if is_cpu(&ctx) { 1 } else { 10 };
    println!(
        "\nadapter: {} ({:?}, {:?}); inner steps only, one warm-up run first",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<34} {:>14} {:>14} {:>12}",
        "problem, method", "GPU samples/s", "CPU samples/s", "GPU / CPU"
    );
    let (lsq, _) = synthetic_lsq(20_000, 32, 0.1, 1);
    let (mut pix, _) = synthetic_lsq(2_000, 785, 0.1, 2);
    pix.target
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i % 10) as f32);
    let softmax = Glm::Softmax {
        l2: 1e-4,
        classes: 10,
    };
    for (problem, t, glm, batch, steps) in [
        ("least squares", &lsq, Glm::Lsq, 1, 1_000 * scale),
        ("softmax, 10 classes", &pix, softmax, 16, 40 * scale),
    ] {
        let rows = Rows {
            x: &t.features,
            cols: t.cols(),
            y: &t.target,
        };
        let weights = t.cols() * glm.outputs();
        let start: Vec<f32> = (0..weights)
            .map(|i| (i as f32 * 0.37).sin() * 0.01)
            .collect();
        let order = lowp::data::dataset::shuffled(t.rows(), 1, 2);
        let mut gpu = GpuHalp::new(&ctx, &rows, &glm).unwrap();
        let c = centre(&rows, &start, &glm);
        gpu.set_centre(&start).unwrap();
        let grid = ScaledFixed::new(1e-4, 8).unwrap();
        for (method, svrg_grid, offset) in [
            ("svrg, fp32", None, false),
            ("lp-svrg, 8 bits", Some(grid), false),
            ("halp, 8 bits", Some(grid), true),
        ] {
            let s = InnerSteps {
                order: &order,
                batch,
                steps,
                lr: 1e-3,
                svrg: true,
                offset,
                grid: svrg_grid,
                seed: 3,
                step0: 0,
            };
            let from = if offset {
                vec![0f32; weights]
            } else {
                start.clone()
            };
            gpu.inner(&from, &s).unwrap();
            let t0 = Instant::now();
            gpu.inner(&from, &s).unwrap();
            let gpu_rate = (steps * batch) as f64 / t0.elapsed().as_secs_f64();
            inner(&rows, &glm, Some(&c), &from, &s);
            let t0 = Instant::now();
            inner(&rows, &glm, Some(&c), &from, &s);
            let cpu_rate = (steps * batch) as f64 / t0.elapsed().as_secs_f64();
            println!(
                "{:<34} {gpu_rate:>14.0} {cpu_rate:>14.0} {:>12.2}",
                format!("{problem}, {method}"),
                gpu_rate / cpu_rate
            );
        }
    }
}
