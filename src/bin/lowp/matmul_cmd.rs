//! `lowp matmul`: what a given low-precision GEMM gives, against the fp64 product.

use crate::args::{self, Device};
use lowp::accum::{Accumulator, GemmSpec};
use lowp::data::npy::{NpyArray, read_f32, write_f32};
use lowp::format::Format;
use lowp::quant::{Exceptions, QuantSpec, Rounding};
use std::path::{Path, PathBuf};

/// Arguments of `lowp matmul`.
#[derive(clap::Args)]
pub struct Args {
    /// A: an f32 .npy matrix (M x K, or K x M with --transpose-a).
    a: PathBuf,
    /// B: an f32 .npy matrix (K x N, or N x K with --transpose-b).
    b: PathBuf,
    /// Output: C as an f32 .npy matrix (M x N).
    output: PathBuf,
    /// Format A is quantized to (round to nearest even).
    #[arg(long, value_parser = args::format)]
    a_format: Format,
    /// Format B is quantized to (round to nearest even).
    #[arg(long, value_parser = args::format)]
    b_format: Format,
    /// Accumulator: fp32 (hardware), or FORMAT[:CHUNK] to round the running sum to FORMAT
    /// after every CHUNK products (default chunk 1).
    #[arg(long, default_value = "fp32", value_parser = |s: &str| s.parse::<Accumulator>().map_err(|e| e.to_string()))]
    acc: Accumulator,
    /// Format of C.
    #[arg(long, default_value = "fp32", value_parser = args::format)]
    out_format: Format,
    /// Rounding of C: nearest | nearest-away | toward-zero | stochastic[:K]
    #[arg(long, default_value = "nearest", value_parser = args::rounding)]
    rounding: Rounding,
    /// Clamp overflow in C to ±max.
    #[arg(long)]
    saturate: bool,
    /// Seed of C's stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use A transposed.
    #[arg(long)]
    transpose_a: bool,
    /// Use B transposed.
    #[arg(long)]
    transpose_b: bool,
    /// An f32 .npy vector of N values added to every row of C.
    #[arg(long)]
    bias: Option<PathBuf>,
    /// Run on the GPU or on the CPU reference.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
}

/// A matrix as C-order data plus whether it must be read transposed.
fn matrix(path: &Path, transpose: bool) -> Result<(Vec<f32>, Vec<usize>, bool), String> {
    let a = read_f32(path).map_err(|e| e.to_string())?;
    if a.shape.len() != 2 || a.data.is_empty() {
        return Err(format!(
            "{}: expected a non-empty 2-D matrix, got shape {:?}",
            path.display(),
            a.shape
        ));
    }
    // A Fortran-order r x c array is the C-order c x r array of its transpose.
    if a.fortran_order {
        Ok((a.data, vec![a.shape[1], a.shape[0]], !transpose))
    } else {
        Ok((a.data, a.shape, transpose))
    }
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    let (xa, sa, ta) = matrix(&a.a, a.transpose_a)?;
    let (xb, sb, tb) = matrix(&a.b, a.transpose_b)?;
    let bias = match &a.bias {
        Some(p) => Some(read_f32(p).map_err(|e| e.to_string())?.data),
        None => None,
    };
    let spec = GemmSpec {
        trans_a: ta,
        trans_b: tb,
        acc: a.acc,
        out: QuantSpec {
            rounding: a.rounding,
            saturate: a.saturate,
            seed: a.seed,
            stream: 3,
            ..QuantSpec::new(a.out_format)
        },
    };
    let (m, n, k) = spec
        .dims(&sa, &sb, bias.as_ref().map(Vec::len))
        .map_err(|e| e.to_string())?;
    let (qa, qb) = (QuantSpec::new(a.a_format), QuantSpec::new(a.b_format));
    let (c, exc, stored, device) = match a.device {
        Device::Cpu => {
            let (ra, rb) = (
                lowp::reference::quantize(&xa, &qa),
                lowp::reference::quantize(&xb, &qb),
            );
            let r = lowp::reference::gemm::gemm(&ra, &sa, &rb, &sb, bias.as_deref(), &spec)
                .map_err(|e| e.to_string())?;
            let stored = [ra.stored_bytes(), rb.stored_bytes(), r.out.stored_bytes()];
            (
                lowp::reference::dequantize(&r.out),
                r.out.exceptions,
                stored,
                "cpu reference".to_string(),
            )
        }
        Device::Gpu => {
            let ctx = args::gpu()?;
            let err = |e: lowp::gpu::GpuError| e.to_string();
            let (ta, _) = lowp::ops::quantize(&ctx, &xa, &sa, &qa).map_err(err)?;
            let (tb, _) = lowp::ops::quantize(&ctx, &xb, &sb, &qb).map_err(err)?;
            let (tc, exc) = lowp::ops::gemm(&ctx, &ta, &tb, bias.as_deref(), &spec).map_err(err)?;
            // The packed sizes, as the reference's (the device's buffers add under 16
            // bytes each: whole 16-byte vectors).
            let stored = [
                qa.stored_bytes(ta.len()),
                qb.stored_bytes(tb.len()),
                spec.out.stored_bytes(tc.len()),
            ];
            let c = lowp::ops::dequantize(&ctx, &tc).map_err(err)?;
            (c, exc, stored, format!("gpu ({})", ctx.info.name))
        }
    };
    // The output first: a report cut short (a closed pipe) must not lose it.
    let out = NpyArray {
        shape: vec![m, n],
        fortran_order: false,
        data: c,
    };
    write_f32(&a.output, &out).map_err(|e| e.to_string())?;
    report(
        &spec,
        (m, n, k),
        (&xa, &xb, bias.as_deref()),
        &out.data,
        &exc,
        stored,
        &device,
        (a.a_format, a.b_format),
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    spec: &GemmSpec,
    (m, n, k): (usize, usize, usize),
    (xa, xb, bias): (&[f32], &[f32], Option<&[f32]>),
    c: &[f32],
    exc: &Exceptions,
    stored: [usize; 3],
    device: &str,
    (fa, fb): (Format, Format),
) {
    // The fp64 product of the unquantized inputs.
    let (mut max_err, mut sq_err, mut sq_ref, mut skipped) = (0f64, 0f64, 0f64, 0usize);
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |b| b[j] as f64);
            for kk in 0..k {
                let a = xa[if spec.trans_a { kk * m + i } else { i * k + kk }] as f64;
                let b = xb[if spec.trans_b { j * k + kk } else { kk * n + j }] as f64;
                s += a * b;
            }
            let got = c[i * n + j] as f64;
            if !got.is_finite() || !s.is_finite() {
                skipped += 1;
                continue;
            }
            let e = (got - s).abs();
            max_err = max_err.max(e);
            sq_err += e * e;
            sq_ref += s * s;
        }
    }
    let counted = (m * n - skipped).max(1) as f64;
    println!(
        "C = op(A) op(B){}: {m}x{k} times {k}x{n}",
        if bias.is_some() { " + bias" } else { "" }
    );
    println!(
        "formats     A {fa}, B {fb}, accumulator {}, C {} ({})",
        spec.acc, spec.out.format, spec.out.rounding
    );
    println!("device      {device}");
    println!("error vs the fp64 product of the unquantized inputs:");
    println!("  max |err| {max_err:.6e}");
    println!("  rms err   {:.6e}", (sq_err / counted).sqrt());
    println!(
        "  relative  {:.6e} (Frobenius)",
        (sq_err / sq_ref.max(f64::MIN_POSITIVE)).sqrt()
    );
    if skipped > 0 {
        println!("  ({skipped} non-finite elements of C left out)");
    }
    println!(
        "C overflow {}, underflow {}, nan {}",
        exc.overflow, exc.underflow, exc.nan
    );
    println!(
        "stored      A {} + B {} + C {} bytes vs {} bytes fp32",
        stored[0],
        stored[1],
        stored[2],
        4 * (m * k + k * n + m * n)
    );
}
