//! Time per dispatch of the fused elementwise kernels (ReLU forward and backward, format
//! conversion) on LeNet-5's largest activation (64 x 6 x 28 x 28 values), as f32 words and
//! packed in fp32 (the fp32 map's tensors) and in the formats the HFP8 map stores
//! activations (e4m3) and gradients (e5m2) in, next to the same run's f32 buffer copy.
//! `LOWP_BENCH_CASE=TEXT` runs the cases whose label contains TEXT; `LOWP_BENCH_N=N` takes N
//! values instead (ResNet-8's 16-channel activations are 1,048,576 at batch 64).

mod common;

use common::per_rep;
use lowp::gpu::buffers::{upload_f32, zeroed};
use lowp::gpu::memory::DeviceBuffer;
use lowp::gpu::{Encoder, GpuContext, Tensor};
use lowp::ops::elementwise::{record_convert, record_relu_backward, record_relu_forward};
use lowp::ops::packed_io::{Dst, Src};
use lowp::ops::quantize::quantize;
use lowp::quant::QuantSpec;

/// An input: f32 words, or packed in `fmt`.
enum Input {
    F32(DeviceBuffer),
    Packed(Tensor),
}

impl Input {
    fn new(ctx: &GpuContext, x: &[f32], fmt: &str) -> Input {
        match fmt {
            "f32" => Input::F32(upload_f32(ctx, "x", x).unwrap()),
            _ => {
                let spec = QuantSpec::new(fmt.parse().unwrap());
                Input::Packed(quantize(ctx, x, &[x.len()], &spec).unwrap().0)
            }
        }
    }

    fn src(&self) -> Src<'_> {
        match self {
            Input::F32(b) => Src::F32(b),
            Input::Packed(t) => Src::Packed(t),
        }
    }

    fn bytes(&self, n: usize) -> usize {
        match self {
            Input::F32(_) => 4 * n,
            Input::Packed(t) => t.stored_bytes() as usize,
        }
    }
}

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    let n: usize = std::env::var("LOWP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 * 6 * 28 * 28);
    let only = std::env::var("LOWP_BENCH_CASE").ok();
    let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618).sin() * 3.0).collect();
    let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.377).cos() * 0.01).collect();
    let (copy_src, copy_dst) = (
        upload_f32(&ctx, "copy", &x).unwrap(),
        zeroed(&ctx, "copy", n).unwrap(),
    );
    let copy = per_rep(&ctx, |enc: &mut Encoder| {
        enc.copy_buffer_to_buffer(&copy_src, 0, &copy_dst, 0, 4 * n as u64)
    });
    println!(
        "\nadapter: {} ({:?}, {:?}); {n} elements; ms a dispatch",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!("{:<36} {:>9} {:>9}", "case", "ms", "GB/s");
    println!(
        "{:<36} {:>9.3} {:>9.2}",
        "f32 buffer copy",
        copy.as_secs_f64() * 1e3,
        8.0 * n as f64 / copy.as_secs_f64() / 1e9
    );
    let stats = zeroed(&ctx, "stats", 4).unwrap();
    let f32_out = zeroed(&ctx, "y", n).unwrap();
    // (kernel, x's format, g's format, output format)
    let cases = [
        ("relu forward", "f32", "", "f32"),
        ("relu forward", "fp32", "", "fp32"),
        ("relu backward", "fp32", "fp32", "fp32"),
        ("relu forward", "e4m3", "", "e4m3"),
        ("relu backward", "f32", "f32", "f32"),
        ("relu backward", "e4m3", "e5m2", "e5m2"),
        ("convert", "f32", "", "e4m3"),
        ("convert", "e4m3", "", "f32"),
    ];
    for (kernel, fx, fg, fy) in cases {
        let label = format!("{kernel} {fx} {fg} -> {fy}").replace("  ", " ");
        if only.as_ref().is_some_and(|o| !label.contains(o.as_str())) {
            continue;
        }
        let xi = Input::new(&ctx, &x, fx);
        let gi = (!fg.is_empty()).then(|| Input::new(&ctx, &g, fg));
        let spec = (fy != "f32").then(|| QuantSpec::new(fy.parse().unwrap()));
        let y = spec
            .as_ref()
            .map(|s| lowp::ops::quantize::alloc_tensor(&ctx, &[n], s).unwrap());
        let dst = || match (&y, &spec) {
            (Some(t), Some(spec)) => Dst::Packed {
                t,
                spec,
                stats: &stats,
                add: None,
            },
            _ => Dst::F32(&f32_out),
        };
        let t = per_rep(&ctx, |enc: &mut Encoder| {
            match (kernel, &gi) {
                ("relu forward", _) => record_relu_forward(&ctx, enc, xi.src(), dst(), n),
                ("relu backward", Some(gi)) => {
                    record_relu_backward(&ctx, enc, xi.src(), gi.src(), dst(), n)
                }
                _ => record_convert(&ctx, enc, xi.src(), dst(), n),
            }
            .unwrap()
        });
        let out_bytes = y.as_ref().map_or(4 * n, |t| t.stored_bytes() as usize);
        let bytes = xi.bytes(n) + gi.as_ref().map_or(0, |g| g.bytes(n)) + out_bytes;
        println!(
            "{:<36} {:>9.3} {:>9.2}",
            label,
            t.as_secs_f64() * 1e3,
            bytes as f64 / t.as_secs_f64() / 1e9
        );
    }
}
