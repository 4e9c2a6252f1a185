//! Training step time and samples/s: LeNet-5 at batch 128 under the fp32 and HFP8 maps.
//!
//! Wall-clock time per step, from upload of the batch to the step's loss on the host, over
//! the built-in synthetic images (the step's cost does not depend on the pixels).

mod common;

use common::is_cpu;
use lowp::data::synthetic::synthetic;
use lowp::format::Format;
use lowp::gpu::GpuContext;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;
use std::time::Instant;

const BATCH: usize = 128;

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let hfp8 = PrecisionMap::load(&root.join("examples/precision/hfp8.toml")).unwrap();
    let maps = [
        ("fp32", PrecisionMap::uniform(Format::FP32), false),
        ("hfp8 (+fp32 master)", hfp8, true),
    ];
    // A few steps on a CPU adapter, where a LeNet step takes seconds.
    let steps = if is_cpu(&ctx) { 3 } else { 50 };
    let data = synthetic(BATCH * (steps + 1), 1);
    let per = data.image_len();
    let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
    println!(
        "\nadapter: {} ({:?}, {:?}); LeNet-5, batch {BATCH}, {steps} timed steps after one warm-up",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12}",
        "map", "ms/step", "samples/s", "of fp32"
    );
    let mut fp32_rate = 0.0;
    for (name, map, master) in maps {
        let model = Model::lenet(data.shape, data.classes).unwrap();
        let plan = Plan::new(model, &map, master, TrainConfig::default(), 1).unwrap();
        let mut t = GpuTrainer::new(&ctx, plan, BATCH).unwrap();
        let batch = |s: usize| {
            (
                &data.images[s * BATCH * per..(s + 1) * BATCH * per],
                &labels[s * BATCH..(s + 1) * BATCH],
            )
        };
        let (x, y) = batch(0);
        t.step(x, y).unwrap();
        let start = Instant::now();
        for s in 1..=steps {
            let (x, y) = batch(s);
            t.step(x, y).unwrap();
        }
        let per_step = start.elapsed().as_secs_f64() / steps as f64;
        let rate = BATCH as f64 / per_step;
        if fp32_rate == 0.0 {
            fp32_rate = rate;
        }
        println!(
            "{name:<22} {:>12.1} {rate:>12.1} {:>11.0}%",
            per_step * 1e3,
            100.0 * rate / fp32_rate
        );
    }
}
