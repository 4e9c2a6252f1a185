//! Training step time and samples/s: the MLP, LeNet-5 and ResNet-8 at batch 64 under the
//! fp32 and HFP8 maps (`LOWP_BENCH_BATCH`, `LOWP_BENCH_MODEL=mlp|lenet|resnet8` to narrow,
//! `LOWP_BENCH_STEPS` timed steps).
//! With `LOWP_PROFILE=1` (timestamps) or `host` (wall clock, each dispatch alone), each
//! case's time per kernel too. With `LOWP_BENCH_AGAINST="NAME=VALUE ..."` (lowp's settings,
//! such as `LOWP_SEGMENTS=0`), each case also runs on a second context set that way, the two
//! trainers' steps alternated, and the bench prints each side's median step and the median
//! and middle half of the step-by-step ratios: a comparison that a noisy host's slow minutes
//! hit on both sides alike.
//!
//! Wall-clock time per step, from upload of the batch to the step's loss on the host, over
//! the built-in synthetic images (a step's cost does not depend on the pixels); ResNet-8 on
//! 3 x 32 x 32 images as for CIFAR-10.

mod common;

use common::is_cpu;
use lowp::data::synthetic::synthetic;
use lowp::format::Format;
use lowp::gpu::GpuContext;
use lowp::gpu::profile::format_profile;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;
use std::time::Instant;

fn main() {
    // LOWP_BENCH_BATCH sets the batch (64 by default).
    let batch_env = std::env::var("LOWP_BENCH_BATCH").ok();
    let batch_size: usize = batch_env.and_then(|b| b.parse().ok()).unwrap_or(64);
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let against = against();
    assert!(
        against.is_none() || ctx.profiler.is_none(),
        "LOWP_BENCH_AGAINST compares unprofiled steps (a profile times one side's dispatches alone): unset LOWP_PROFILE"
    );
    let other = against.as_ref().map(|(text, settings)| {
        let pairs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let c = GpuContext::with_settings(&pairs)
            .unwrap_or_else(|e| panic!("LOWP_BENCH_AGAINST={text:?}: {e}"));
        (text.clone(), c)
    });
    // The repository: where it was built, or (a binary carried elsewhere) the current folder.
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if built.exists() {
        built
    } else {
        std::path::Path::new(".")
    };
    let hfp8 = PrecisionMap::load(&root.join("examples/precision/hfp8.toml")).unwrap();
    let maps = [
        ("fp32", PrecisionMap::uniform(Format::FP32), false),
        ("hfp8 (+fp32 master)", hfp8, true),
    ];
    // A few steps on a CPU adapter, where a step takes up to seconds (LOWP_BENCH_STEPS sets it).
    let steps_env = std::env::var("LOWP_BENCH_STEPS").ok();
    let default_steps = if is_cpu(&ctx) { 3 } else { 50 };
    let steps: usize = steps_env
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_steps);
    let only = std::env::var("LOWP_BENCH_MODEL").unwrap_or_default();
    println!(
        "\nadapter: {} ({:?}, {:?}); batch {batch_size}, {steps} timed steps after one warm-up",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<10} {:<22} {:>12} {:>12} {:>12}",
        "model", "map", "ms/step", "samples/s", "of fp32"
    );
    for model_name in ["mlp", "lenet", "resnet8"] {
        if !only.is_empty() && only != model_name {
            continue;
        }
        let mut data = synthetic(batch_size * (steps + 1), 1);
        if model_name == "resnet8" {
            data.shape = [3, 32, 32];
            let n = batch_size * (steps + 1) * 3 * 32 * 32;
            data.images = (0..n).map(|i| ((i as f32) * 0.618).sin()).collect();
        }
        let per = data.image_len();
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let mut fp32_rate = 0.0;
        for (name, map, master) in &maps {
            let model = match model_name {
                "mlp" => Model::mlp(per, &[256, 128], data.classes),
                "lenet" => Model::lenet(data.shape, data.classes).unwrap(),
                _ => Model::resnet(1, data.shape, data.classes).unwrap(),
            };
            let plan = Plan::new(model, map, *master, TrainConfig::default(), 1).unwrap();
            let mut twin = other
                .as_ref()
                .map(|(_, c)| GpuTrainer::new(c, plan.clone(), batch_size).unwrap());
            let mut t = GpuTrainer::new(&ctx, plan, batch_size).unwrap();
            let batch = |s: usize| {
                (
                    &data.images[s * batch_size * per..(s + 1) * batch_size * per],
                    &labels[s * batch_size..(s + 1) * batch_size],
                )
            };
            let (x, y) = batch(0);
            t.step(x, y).unwrap();
            // Seconds a step, and the line comparing the other context's steps.
            let (per_step, against_line) = match (twin.as_mut(), &other) {
                (Some(twin), Some((text, _))) => {
                    twin.step(x, y).unwrap();
                    let (a, b) = paired_steps(&mut t, twin, steps, batch);
                    let mut ratios: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b / a).collect();
                    ratios.sort_by(f64::total_cmp);
                    let quarter = |q: usize| ratios[(q * (ratios.len() - 1)) / 4];
                    let line = format!(
                        "  {text:<31} {:>12.1}   (its step / this one, step by step: median {:.3}, middle half {:.3} to {:.3})",
                        median(&b) * 1e3,
                        quarter(2),
                        quarter(1),
                        quarter(3)
                    );
                    (median(&a), Some(line))
                }
                _ => {
                    if let Some(p) = &ctx.profiler {
                        p.take(&ctx).unwrap();
                    }
                    let start = Instant::now();
                    for s in 1..=steps {
                        let (x, y) = batch(s);
                        t.step(x, y).unwrap();
                    }
                    (start.elapsed().as_secs_f64() / steps as f64, None)
                }
            };
            let rate = batch_size as f64 / per_step;
            if fp32_rate == 0.0 {
                fp32_rate = rate;
            }
            println!(
                "{model_name:<10} {name:<22} {:>12.1} {rate:>12.1} {:>11.0}%",
                per_step * 1e3,
                100.0 * rate / fp32_rate
            );
            if let Some(line) = against_line {
                println!("{line}");
                continue;
            }
            if let Some(p) = &ctx.profiler {
                println!("{}", format_profile(&p.take(&ctx).unwrap()));
            }
        }
    }
}

/// `LOWP_BENCH_AGAINST`'s text and its settings (`NAME=VALUE`, separated by spaces), if set.
fn against() -> Option<(String, Vec<(String, String)>)> {
    let text = std::env::var("LOWP_BENCH_AGAINST").ok()?;
    if text.trim().is_empty() {
        return None;
    }
    let settings = text
        .split_whitespace()
        .map(|item| match item.split_once('=') {
            Some((n, v)) if n.starts_with("LOWP_") => (n.to_string(), v.to_string()),
            _ => {
                panic!("LOWP_BENCH_AGAINST={text:?}: expected LOWP_NAME=VALUE items, got {item:?}")
            }
        })
        .collect();
    Some((text, settings))
}

/// Seconds of each of `steps` steps of `a` and of `b`, alternated (each pair in turn order
/// swapped, so that neither side always runs first), on the batches `batch` gives.
fn paired_steps<'d>(
    a: &mut GpuTrainer,
    b: &mut GpuTrainer,
    steps: usize,
    batch: impl Fn(usize) -> (&'d [f32], &'d [u32]),
) -> (Vec<f64>, Vec<f64>) {
    let (mut ta, mut tb) = (vec![], vec![]);
    for s in 1..=steps {
        let (x, y) = batch(s);
        let timed = |t: &mut GpuTrainer| {
            let start = Instant::now();
            t.step(x, y).unwrap();
            start.elapsed().as_secs_f64()
        };
        if s % 2 == 0 {
            ta.push(timed(a));
            tb.push(timed(b));
        } else {
            tb.push(timed(b));
            ta.push(timed(a));
        }
    }
    (ta, tb)
}

/// The median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    (s[(n - 1) / 2] + s[n / 2]) / 2.0
}
