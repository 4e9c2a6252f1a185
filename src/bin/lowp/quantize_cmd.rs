//! `lowp quantize`: an f32 .npy array through a format, on the GPU or the CPU reference.

use lowp::data::npy::{NpyArray, read_f32, write_codes, write_f32, write_i32};
use lowp::format::Format;
use lowp::quant::{Exceptions, QuantSpec, Rounding, Scaling};
use lowp::reference::pack::unpack;
use std::path::PathBuf;

use crate::args::{self, Device};

/// Per-tensor scaling choice on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleArg {
    /// No scaling (MX formats still scale per block).
    None,
    /// One power-of-two scale for the whole tensor.
    Tensor,
}

/// Arguments of `lowp quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// Input: an f32 .npy array.
    input: PathBuf,
    /// Output: the quantized values as an f32 .npy array of the same shape.
    output: PathBuf,
    /// Target format (see `lowp formats`).
    #[arg(long, value_parser = args::format)]
    format: Format,
    /// nearest | nearest-away | toward-zero | stochastic[:K]
    #[arg(long, default_value = "nearest", value_parser = args::rounding)]
    rounding: Rounding,
    /// Clamp overflow to ±max instead of Inf/NaN.
    #[arg(long)]
    saturate: bool,
    /// Seed of the stochastic-rounding bits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Per-tensor power-of-two scaling.
    #[arg(long, value_enum, default_value_t = ScaleArg::None)]
    scale: ScaleArg,
    /// Also write the codes: an unsigned integer .npy array of the input's shape (uint8 up to
    /// 8 bits, uint16 up to 16, else uint32; fixed point in two's complement), and, for a
    /// format with scales, OUT_scales.npy beside it (block formats: each block's scale
    /// byte, E8M0 or E4M3, uint8, and for E4M3 blocks OUT_tensor_scale.npy, the fp32 tensor
    /// scale; per-tensor: the power-of-two exponent, int32).
    #[arg(long)]
    codes: Option<PathBuf>,
    /// Run on the GPU or on the CPU reference.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    let input = read_f32(&a.input).map_err(|e| e.to_string())?;
    let n = input.data.len();
    if n == 0 {
        return Err(format!("{}: the array is empty", a.input.display()));
    }
    let spec = QuantSpec {
        format: a.format,
        rounding: a.rounding,
        saturate: a.saturate,
        scaling: match a.scale {
            ScaleArg::None => Scaling::None,
            ScaleArg::Tensor => Scaling::Tensor,
        },
        seed: a.seed,
        stream: 0,
    };
    // The values, exceptions, stored bytes, device, and the packed codes and scale words.
    let (y, exc, stored, device, words, scales) = match a.device {
        Device::Cpu => {
            let q = lowp::reference::quantize(&input.data, &spec);
            let y = lowp::reference::dequantize(&q);
            let scales = match a.scale {
                ScaleArg::Tensor if spec.format.block().is_none() => vec![q.scale_exp as u32],
                _ => q.scales.clone(),
            };
            let stored = q.stored_bytes() as u64;
            (
                y,
                q.exceptions,
                stored,
                "cpu reference".into(),
                q.words,
                scales,
            )
        }
        Device::Gpu => {
            let ctx = args::gpu()?;
            let shape = [n];
            let (t, exc) =
                lowp::ops::quantize(&ctx, &input.data, &shape, &spec).map_err(|e| e.to_string())?;
            let y = lowp::ops::dequantize(&ctx, &t).map_err(|e| e.to_string())?;
            let (words, scales) = match &a.codes {
                Some(_) => (
                    t.read_words(&ctx).map_err(|e| e.to_string())?,
                    t.read_scales(&ctx).map_err(|e| e.to_string())?,
                ),
                None => (Vec::new(), Vec::new()),
            };
            let device = format!("gpu ({})", ctx.info.name);
            // The packed size, as the reference's (the device's buffers add under 16
            // bytes each: whole 16-byte vectors).
            let stored = spec.stored_bytes(n) as u64;
            (y, exc, stored, device, words, scales)
        }
    };
    // The output first: a report cut short (a closed pipe) must not lose it.
    let out = NpyArray {
        data: y,
        shape: input.shape.clone(),
        fortran_order: input.fortran_order,
    };
    write_f32(&a.output, &out).map_err(|e| e.to_string())?;
    if let Some(path) = &a.codes {
        let bits = spec.format.bits();
        let codes = unpack(&words, bits, n);
        write_codes(path, &input.shape, input.fortran_order, &codes, bits)
            .map_err(|e| e.to_string())?;
        let stem = path
            .file_stem()
            .map_or("codes".into(), |s| s.to_string_lossy().into_owned());
        let scales_path = path.with_file_name(format!("{stem}_scales.npy"));
        if let Some(b) = spec.format.block() {
            let blocks = b.blocks(n);
            let header = b.scale_header();
            write_codes(
                &scales_path,
                &[blocks],
                false,
                &unpack(&scales[header..], 8, blocks),
                8,
            )
            .map_err(|e| e.to_string())?;
            if header == 1 {
                let tensor = NpyArray {
                    data: vec![f32::from_bits(scales[0])],
                    shape: vec![1],
                    fortran_order: false,
                };
                write_f32(
                    &path.with_file_name(format!("{stem}_tensor_scale.npy")),
                    &tensor,
                )
                .map_err(|e| e.to_string())?;
            }
        } else if let Some(&e) = scales.first() {
            write_i32(&scales_path, &[1], &[e as i32]).map_err(|e| e.to_string())?;
        }
    }
    report(&spec, &input, &out.data, &exc, stored, &device);
    Ok(())
}

fn report(
    spec: &QuantSpec,
    input: &NpyArray,
    y: &[f32],
    exc: &Exceptions,
    stored: u64,
    device: &str,
) {
    let n = y.len();
    let (mut sum, mut count) = (0f64, 0usize);
    for (x, q) in input.data.iter().zip(y) {
        if x.is_finite() && q.is_finite() {
            let d = *x as f64 - *q as f64;
            sum += d * d;
            count += 1;
        }
    }
    let mse = if count > 0 {
        sum / count as f64
    } else {
        f64::NAN
    };
    println!(
        "format      {} ({} bits), rounding {}, saturate {}, scaling {}",
        spec.format,
        spec.format.bits(),
        spec.rounding,
        if spec.saturates() { "yes" } else { "no" },
        match spec.scaling {
            Scaling::None => "none",
            Scaling::Tensor => "per tensor",
        }
    );
    println!("device      {device}");
    let shape: Vec<String> = input.shape.iter().map(usize::to_string).collect();
    println!("elements    {n} (shape {})", shape.join(" x "));
    println!("overflow    {}", exc.overflow);
    println!("underflow   {}", exc.underflow);
    println!("nan         {}", exc.nan);
    println!("amax        {}", exc.amax);
    if count == n {
        println!("mse         {mse:.6e}");
    } else {
        println!("mse         {mse:.6e} (over the {count} elements finite before and after)");
    }
    println!(
        "stored      {stored} bytes vs {} bytes fp32 ({:.1}%)",
        4 * n,
        100.0 * stored as f64 / (4 * n) as f64
    );
}
