//! GFLOP/s of GEMM and convolutions over packed operands, each next to the same run's fp32
//! figure. A GEMM of m x k by k x n counts 2mnk floating-point operations; a convolution
//! pass counts 2 N O OH OW C KH KW (every tap, padding included). `LOWP_BENCH_CASE=TEXT`
//! runs only the cases and operand formats whose "case operands" line contains TEXT;
//! `LOWP_BENCH_BATCH=N` runs the convolutions at batch N.

mod common;

use common::{config, is_cpu, per_rep};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lowp::accum::GemmSpec;
use lowp::conv::{Conv2dSpec, ConvPass};
use lowp::gpu::Encoder;
use lowp::gpu::buffers::{upload_f32, zeroed};
use lowp::gpu::{GpuContext, Tensor};
use lowp::ops::conv::prepare_conv;
use lowp::ops::gemm::{Kernel, prepare_gemm, record_view};
use lowp::quant::QuantSpec;
use std::time::Duration;

const FORMATS: [&str; 7] = [
    "fp32",
    "bf16",
    "e4m3",
    "e5m2",
    "e2m1",
    "mxfp8_e4m3",
    "fixed(wl=8,fl=4)",
];

fn tensor(ctx: &GpuContext, shape: &[usize], fmt: &str, seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.618 + seed as f32).sin())
        .collect();
    lowp::ops::quantize(ctx, &x, shape, &QuantSpec::new(fmt.parse().unwrap()))
        .unwrap()
        .0
}

fn gflops(flops: f64, d: Duration) -> f64 {
    flops / d.as_secs_f64() / 1e9
}

struct Row {
    case: String,
    format: String,
    gflops: Option<f64>,
}

/// Whether `LOWP_BENCH_CASE` (unset: everything) selects this case and operand format.
fn selected(case: &str, fmt: &str) -> bool {
    std::env::var("LOWP_BENCH_CASE").map_or(true, |only| format!("{case} {fmt}").contains(&only))
}

/// Under `LOWP_PROFILE=1`, clears the GPU time per kernel gathered so far and prints it
/// under `what` (None: discards it, such as criterion's runs, whose first dispatches
/// include lavapipe compiling the pipelines).
fn profile(ctx: &GpuContext, what: Option<&str>) {
    if let Some(p) = &ctx.profiler {
        let lines = p.take(ctx).unwrap();
        if let Some(what) = what {
            println!("{what}:\n{}", lowp::gpu::profile::format_profile(&lines));
        }
    }
}

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    println!("{}\n", ctx.report());
    let cpu = is_cpu(&ctx);
    let dummy_bias = upload_f32(&ctx, "bias", &[0.0]).unwrap();
    let mut rows: Vec<Row> = Vec::new();

    // Square GEMMs, plus one tall-skinny training shape (activations x weights).
    let mut shapes: Vec<(usize, usize, usize)> = if cpu {
        vec![(128, 128, 128), (256, 256, 256), (512, 512, 512)]
    } else {
        vec![(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096)]
    };
    shapes.push(if cpu {
        (2048, 64, 256)
    } else {
        (16384, 256, 1024)
    });
    for (m, n, k) in shapes {
        let case = format!("gemm {m}x{n}x{k}");
        let flops = 2.0 * (m * n * k) as f64;
        let out = zeroed(&ctx, "c", m * n).unwrap();
        let mut g = c.benchmark_group(&case);
        g.throughput(Throughput::Elements(flops as u64));
        for fmt in FORMATS.into_iter().filter(|f| selected(&case, f)) {
            let (a, b) = (tensor(&ctx, &[m, k], fmt, 1), tensor(&ctx, &[k, n], fmt, 2));
            let (view, params, _) = prepare_gemm(&a, &b, None, &GemmSpec::new()).unwrap();
            // The per-element exact kernel is slow: keep it to small sizes on a CPU adapter.
            if cpu && view.kernel == Kernel::PerElement && m * n * k > 1 << 24 {
                rows.push(Row {
                    case: case.clone(),
                    format: fmt.into(),
                    gflops: None,
                });
                continue;
            }
            let run = |enc: &mut Encoder| {
                record_view(&ctx, enc, &view, params, &a, &b, &dummy_bias, &out).unwrap()
            };
            g.bench_function(fmt, |bch| {
                bch.iter_custom(|iters| {
                    lowp::gpu::timer::time_gpu(&ctx, iters as u32, run)
                        .unwrap()
                        .0
                })
            });
            profile(&ctx, None);
            rows.push(Row {
                case: case.clone(),
                format: fmt.into(),
                gflops: Some(gflops(flops, per_rep(&ctx, run))),
            });
            profile(&ctx, Some(&format!("{case} {fmt}")));
        }
        g.finish();
    }

    // Convolutions: LeNet's second layer and CIFAR ResNets' 3x3 layers (64 channels; 16, whose
    // forward view reads its input rows; 32 and 64, and ResNet-8's stride-2 step from 32 to
    // 64), all three passes.
    // LOWP_BENCH_BATCH sets every layer's batch (a training step's, say); by default each
    // layer's own, a sixteenth of it on a CPU adapter.
    let batch_env: Option<usize> = std::env::var("LOWP_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok());
    let batch = |b: usize| match batch_env {
        Some(n) => n,
        None if cpu => b / 16,
        None => b,
    };
    let layers = [
        ("lenet conv1", [batch(128), 1, 28, 28], [6, 1, 5, 5], 2, 1),
        ("lenet conv2", [batch(128), 6, 14, 14], [16, 6, 5, 5], 0, 1),
        ("resnet 3x3", [batch(32), 64, 32, 32], [64, 64, 3, 3], 1, 1),
        ("resnet8 stem", [batch(64), 3, 32, 32], [16, 3, 3, 3], 1, 1),
        ("resnet8 3x3", [batch(64), 16, 32, 32], [16, 16, 3, 3], 1, 1),
        (
            "resnet8 32ch",
            [batch(64), 32, 16, 16],
            [32, 32, 3, 3],
            1,
            1,
        ),
        (
            "resnet8 32-64ch s2",
            [batch(64), 32, 16, 16],
            [64, 32, 3, 3],
            1,
            2,
        ),
        ("resnet8 64ch", [batch(64), 64, 8, 8], [64, 64, 3, 3], 1, 1),
    ];
    for (name, xs, ws, pad, stride) in layers {
        let spec = Conv2dSpec {
            padding: [pad, pad],
            stride: [stride, stride],
            ..Conv2dSpec::new()
        };
        let geo = spec.geometry(&xs, &ws).unwrap();
        let flops =
            2.0 * (geo.batch * geo.cout * geo.oh * geo.ow * geo.cin * geo.kh * geo.kw) as f64;
        let ys = [geo.batch, geo.cout, geo.oh, geo.ow];
        for pass in [
            ConvPass::Forward,
            ConvPass::BackwardData,
            ConvPass::BackwardWeight,
        ] {
            let case = format!("{name} {pass:?} x{xs:?} w{ws:?}");
            let size: usize = geo.out_shape(pass).iter().product();
            let out = zeroed(&ctx, "c", size).unwrap();
            let mut g = c.benchmark_group(&case);
            g.throughput(Throughput::Elements(flops as u64));
            let formats = ["fp32", "bf16", "e4m3", "mxfp8_e4m3"];
            for fmt in formats.into_iter().filter(|f| selected(&case, f)) {
                let (x, w, dy) = (
                    tensor(&ctx, &xs, fmt, 3),
                    tensor(&ctx, &ws, fmt, 4),
                    tensor(&ctx, &ys, fmt, 5),
                );
                let (a, b) = match pass {
                    ConvPass::Forward => (&w, &x),
                    ConvPass::BackwardData => (&w, &dy),
                    ConvPass::BackwardWeight => (&dy, &x),
                };
                let (view, params) = prepare_conv(pass, &geo, a, b, None, &spec).unwrap();
                let run = |enc: &mut Encoder| {
                    record_view(&ctx, enc, &view, params, a, b, &dummy_bias, &out).unwrap()
                };
                g.bench_function(fmt, |bch| {
                    bch.iter_custom(|iters| {
                        lowp::gpu::timer::time_gpu(&ctx, iters as u32, run)
                            .unwrap()
                            .0
                    })
                });
                profile(&ctx, None);
                rows.push(Row {
                    case: case.clone(),
                    format: fmt.into(),
                    gflops: Some(gflops(flops, per_rep(&ctx, run))),
                });
                profile(&ctx, Some(&format!("{case} {fmt}")));
            }
            g.finish();
        }
    }

    println!(
        "\nadapter: {} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<52} {:<18} {:>10} {:>9}",
        "case", "operands", "GFLOP/s", "of fp32"
    );
    // Each case's fp32 rate (a case filtered down to other operands has none: "-").
    let mut fp32: Option<(&str, f64)> = None;
    for r in &rows {
        if r.format == "fp32" {
            fp32 = r.gflops.map(|v| (r.case.as_str(), v));
        }
        let base = fp32.filter(|(case, v)| *case == r.case && *v > 0.0);
        match (r.gflops, base) {
            (Some(v), Some((_, b))) => println!(
                "{:<52} {:<18} {:>10.2} {:>8.0}%",
                r.case,
                r.format,
                v,
                100.0 * v / b
            ),
            (Some(v), None) => println!("{:<52} {:<18} {:>10.2} {:>9}", r.case, r.format, v, "-"),
            (None, _) => println!(
                "{:<52} {:<18} {:>10} {:>9}",
                r.case, r.format, "skipped", "-"
            ),
        }
    }
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
