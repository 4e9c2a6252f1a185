//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod sweep;

use lowp::gpu::Encoder;
use std::path::PathBuf;

/// The golden-vector folder `../shared/golden`, or a failure that says where it was looked for.
pub fn golden_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden");
    assert!(
        dir.is_dir(),
        "golden vectors not found at {}: the tests need ../shared beside the checkout",
        dir.display()
    );
    dir
}

/// Reads a golden CSV: header names and rows of hex words.
pub fn read_csv(name: &str) -> (Vec<String>, Vec<Vec<u32>>) {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .expect("empty csv")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|w| u32::from_str_radix(w, 16).unwrap_or_else(|_| panic!("bad hex '{w}'")))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Reads an MX blocks CSV (no header, comment lines start with '#').
pub fn read_blocks(name: &str) -> Vec<Vec<u32>> {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.split(',')
                .map(|w| u32::from_str_radix(w, 16).unwrap())
                .collect()
        })
        .collect()
}

/// Whether two f32 bit patterns agree, any NaN matching any NaN.
pub fn same_value(a: u32, b: u32) -> bool {
    let nan = |x: u32| x & 0x7fff_ffff > 0x7f80_0000;
    a == b || (nan(a) && nan(b))
}

/// A GPU context for a test, or a failure that says how to get a (software) GPU: a fork of
/// one device the test binary opens once, so that its tests compile each pipeline once
/// (compiling is most of a small test's time on lavapipe), each with its own buffers,
/// ledger and settings.
pub fn gpu() -> lowp::gpu::GpuContext {
    static DEVICE: std::sync::OnceLock<lowp::gpu::GpuContext> = std::sync::OnceLock::new();
    DEVICE.get_or_init(own_gpu).fork()
}

/// A GPU context on a device of its own, for tests that read device-wide figures (wgpu's
/// count of buffer memory), which other tests' buffers on a shared device would change.
pub fn own_gpu() -> lowp::gpu::GpuContext {
    match lowp::gpu::GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => panic!("this test needs a GPU adapter: {e}"),
    }
}

/// Test inputs that reach every path of the rounding code: ordinary values across the
/// exponent range, ties, subnormals, zeros, values near the format limits, ±Inf and NaN.
pub fn tricky_inputs(n: usize, seed: u64, max: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|i| {
            let r = next();
            let sign = if r & 1 == 1 { -1.0 } else { 1.0 };
            match (r >> 1) % 16 {
                0 => 0.0 * sign,
                1 => f32::from_bits((r >> 8) as u32 & 0x7f_ffff) * sign, // f32 subnormal
                2 => f32::INFINITY * sign,
                3 if i % 3 == 0 => f32::NAN,
                4 => max * sign * (1.0 + ((r >> 20) % 64) as f32 / 256.0),
                5 => {
                    // halfway between small integers scaled: exercises ties
                    ((r >> 20) % 64) as f32 * 0.5 * 2f32.powi(((r >> 40) % 20) as i32 - 10) * sign
                }
                _ => {
                    let m = 1.0 + ((r >> 16) as u32 & 0xff_ffff) as f32 / 16_777_216.0;
                    let e = ((r >> 44) % 80) as i32 - 50;
                    sign * m * 2f32.powi(e) * max.max(1.0).sqrt()
                }
            }
        })
        .collect()
}

/// `n` values uniform in [-scale, scale) from a seeded xorshift generator.
pub fn uniform(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
        })
        .collect()
}

/// Runs the `lowp` binary with `args`.
pub fn lowp(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lowp"))
        .args(args)
        .output()
        .expect("run lowp")
}

/// One GPU context per test binary whose dispatches put at most 2 workgroups along x, so
/// that kernels take their 2-D dispatch path even on small inputs, and whose kernels that
/// loop over their items take at most 3 workgroups (two rows of two, the last with no items),
/// so that their invocations take several items each beyond 768.
pub fn small_grid_gpu() -> &'static lowp::gpu::GpuContext {
    static CTX: std::sync::OnceLock<lowp::gpu::GpuContext> = std::sync::OnceLock::new();
    CTX.get_or_init(|| gpu().with_max_groups_x(2).with_item_groups(Some(3)))
}

/// Records what `f` encodes on `small_grid_gpu()` and submits it.
pub fn submit(f: impl FnOnce(&mut Encoder)) {
    let c = small_grid_gpu();
    let mut enc = Encoder::new(c);
    f(&mut enc);
    enc.submit();
}

/// The bit patterns of f32 values.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `tricky_inputs` with every non-finite value replaced by 0.5.
pub fn finite(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    tricky_inputs(n, seed, scale)
        .into_iter()
        .map(|v| if v.is_finite() { v } else { 0.5 })
        .collect()
}

/// Values that stress rounding: every exponent, subnormals, ±0, ±Inf, NaN, near-ties.
pub fn softfloat_operands() -> Vec<u32> {
    let mut v = vec![
        0,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        1,
        0x8000_0001,
        0x7f7f_ffff,
        0x0080_0000,
        0x007f_ffff,
    ];
    let mut s = 0x1234_5678_9abc_def1u64;
    for i in 0..3000u32 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let r = s as u32;
        v.push(match i % 4 {
            0 => r,                               // anything
            1 => (r & 0x8fff_ffff) | 0x3f00_0000, // near 1
            2 => r & 0x80ff_ffff,                 // subnormal or tiny
            _ => (r & 0xffff_0000) | (i & 1),     // few mantissa bits: exact sums, ties
        });
    }
    v
}

/// Conv 3x3 to 4 channels; depthwise 3x3 (stride 2) doubling the channels; grouped 1x1 in
/// 2 groups; global average pooling; linear.
pub const GROUPED_MODEL: &str = r#"
[[node]]
kind = "conv2d"
out_channels = 4
kernel = 3
pad = 1
[[node]]
kind = "relu"
[[node]]
name = "dw"
kind = "conv2d"
out_channels = 8
kernel = 3
pad = 1
stride = 2
groups = 4
[[node]]
kind = "batchnorm2d"
[[node]]
kind = "relu"
[[node]]
name = "pw"
kind = "conv2d"
out_channels = 6
kernel = 1
groups = 2
[[node]]
kind = "avgpool2d"
[[node]]
kind = "flatten"
[[node]]
kind = "linear"
out_features = "classes"
"#;

/// A small graph for [2, 8, 8] samples: one output read by three layers (two branches and
/// an option-A shortcut), a channel concatenation of the branches, an add of a node to
/// itself, and a concatenation of flat features with a layer computed from them.
#[allow(dead_code)]
pub const BRANCHED_MODEL: &str = r#"
[[node]]
name = "stem"
kind = "conv2d"
out_channels = 4
kernel = 3
pad = 1
[[node]]
name = "trunk"
kind = "relu"
[[node]]
name = "a"
kind = "conv2d"
out_channels = 4
kernel = 1
[[node]]
name = "b"
kind = "conv2d"
input = "trunk"
out_channels = 2
kernel = 3
pad = 1
[[node]]
kind = "batchnorm2d"
[[node]]
name = "b_relu"
kind = "relu"
[[node]]
name = "cat"
kind = "concat"
inputs = ["a", "b_relu"]
[[node]]
name = "join"
kind = "add"
inputs = ["cat", "trunk"]
[[node]]
name = "double"
kind = "add"
inputs = ["join", "join"]
[[node]]
kind = "maxpool2d"
pool = 4
[[node]]
name = "flat"
kind = "flatten"
[[node]]
name = "side"
kind = "linear"
out_features = 3
[[node]]
name = "side_relu"
kind = "relu"
[[node]]
name = "features"
kind = "concat"
inputs = ["flat", "side_relu"]
[[node]]
kind = "linear"
out_features = "classes"
"#;

/// The lines of a run folder's metrics.jsonl.
pub fn read_metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
