//! GB/s of quantize and dequantize on the GPU, next to the same run's buffer-copy bandwidth.
//!
//! Bytes counted: everything a kernel must read and write (f32 input, packed codes,
//! scales); a copy of n f32 moves 8n bytes (read + write).

mod common;

use common::{config, is_cpu, per_rep};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lowp::gpu::Encoder;
use lowp::gpu::GpuContext;
use lowp::gpu::buffers::{upload_f32, zeroed};
use lowp::gpu::timer::{Clock, time_gpu};
use lowp::ops::quantize::{alloc_tensor, dequantize_into, record_quantize};
use lowp::quant::{QuantSpec, Rounding};
use std::time::Duration;

const CASES: [(&str, &str); 6] = [
    ("e4m3 nearest", "e4m3"),
    ("e4m3 stochastic", "e4m3"),
    ("bf16", "bf16"),
    ("e2m1", "e2m1"),
    ("fixed(wl=8,fl=4)", "fixed(wl=8,fl=4)"),
    ("mxfp8_e4m3", "mxfp8_e4m3"),
];

fn spec_of(label: &str, fmt: &str) -> QuantSpec {
    let mut s = QuantSpec::new(fmt.parse().unwrap());
    if label.contains("stochastic") {
        s.rounding = Rounding::Stochastic { bits: 16 };
        s.seed = 1;
    }
    s
}

/// Element count: large on a real GPU, small on a CPU adapter such as lavapipe.
fn size(ctx: &GpuContext) -> usize {
    let limit = ctx.device.limits().max_storage_buffer_binding_size as usize / 4;
    let want = if is_cpu(ctx) { 1 << 20 } else { 1 << 26 };
    want.min(limit)
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let n = size(&ctx);
    let clock = time_gpu(&ctx, 1, |_| {}).map(|(_, c)| c).unwrap();
    println!(
        "adapter: {} ({:?}, {:?}); {} elements; timing: {:?}",
        ctx.info.name, ctx.info.backend, ctx.info.device_type, n, clock
    );
    let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618).sin() * 200.0).collect();
    let input = upload_f32(&ctx, "x", &x).unwrap();
    let copy_dst = zeroed(&ctx, "copy", n).unwrap();
    let decoded = zeroed(&ctx, "decoded", n).unwrap();
    let stats = zeroed(&ctx, "stats", 4).unwrap();
    let mut summary = Vec::new();

    let mut g = c.benchmark_group("copy");
    g.throughput(Throughput::Bytes(8 * n as u64));
    let copy = |enc: &mut Encoder| enc.copy_buffer_to_buffer(&input, 0, &copy_dst, 0, 4 * n as u64);
    g.bench_function("f32 buffer copy", |b| {
        b.iter_custom(|iters| time_gpu(&ctx, iters as u32, copy).unwrap().0)
    });
    g.finish();
    let copy_time = per_rep(&ctx, copy);
    let copy_gbps = gbps(8 * n as u64, copy_time);

    for (label, fmt) in CASES {
        let spec = spec_of(label, fmt);
        let t = alloc_tensor(&ctx, &[n], &spec).unwrap();
        let packed = spec.stored_bytes(n) as u64;
        let q = |enc: &mut Encoder| record_quantize(&ctx, enc, &input, &spec, &t, &stats).unwrap();
        let dq = |enc: &mut Encoder| dequantize_into(&ctx, enc, &t, &decoded).unwrap();
        // MX reads its input twice (scales pass, then the quantize pass).
        let q_bytes = 4 * n as u64 * if spec.format.block().is_some() { 2 } else { 1 } + packed;
        let dq_bytes = packed + 4 * n as u64;
        let mut g = c.benchmark_group(format!("quantize {label}"));
        g.throughput(Throughput::Bytes(q_bytes));
        g.bench_function("quantize", |b| {
            b.iter_custom(|iters| time_gpu(&ctx, iters as u32, q).unwrap().0)
        });
        g.throughput(Throughput::Bytes(dq_bytes));
        g.bench_function("dequantize", |b| {
            b.iter_custom(|iters| time_gpu(&ctx, iters as u32, dq).unwrap().0)
        });
        g.finish();
        let tq = per_rep(&ctx, q);
        let tdq = per_rep(&ctx, dq);
        summary.push((label, gbps(q_bytes, tq), gbps(dq_bytes, tdq)));
    }

    println!(
        "\nadapter: {} ({:?}), n = {n}, clock {:?}",
        ctx.info.name, ctx.info.backend, clock
    );
    println!(
        "{:<20} {:>12} {:>8} {:>14} {:>8}",
        "format", "quantize", "of copy", "dequantize", "of copy"
    );
    println!("{:<20} {:>9.2} GB/s", "copy", copy_gbps);
    for (label, q, dq) in summary {
        println!(
            "{:<20} {:>7.2} GB/s {:>7.1}% {:>9.2} GB/s {:>7.1}%",
            label,
            q,
            100.0 * q / copy_gbps,
            dq,
            100.0 * dq / copy_gbps
        );
    }
    if clock == Clock::WallClock {
        println!("(wall-clock timing: the adapter has no timestamp queries inside encoders)");
    }
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
