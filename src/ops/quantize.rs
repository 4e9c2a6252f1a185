//! Quantize, dequantize, fake-quantize and amax on the GPU.

use crate::format::packed_words;
use crate::gpu::Encoder;
use crate::gpu::buffers::{map_read, read_u32, staging, upload_f32, zeroed, zeroed_as};
use crate::gpu::dispatch::record;
use crate::gpu::memory::{DeviceBuffer, Purpose};
use crate::gpu::params::{QuantParams, scaling_id};
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::ops::elementwise::record_convert;
use crate::ops::packed_io::Dst;
use crate::quant::{Exceptions, QuantSpec};

pub use crate::gpu::tensor::scale_words;

/// Fails unless `spec` is valid and `n` elements fit the kernels' 32-bit indexing.
pub fn check_len(spec: &QuantSpec, n: usize) -> Result<(), GpuError> {
    spec.validate()
        .map_err(|e| GpuError::Invalid(e.to_string()))?;
    if n == 0 {
        return Err(GpuError::Invalid("cannot quantize an empty tensor".into()));
    }
    let bits = n as u64 * spec.format.bits() as u64;
    if bits >= 1 << 32 || n as u64 >= 1 << 32 {
        return Err(GpuError::TooLarge {
            what: format!("a tensor of {n} {} elements", spec.format),
            bytes: bits / 8,
            limit: (1u64 << 32) / 8,
        });
    }
    Ok(())
}

/// Records the passes that compute the scales `spec` needs (block scales, or the
/// per-tensor exponent from the tensor's amax) into `scales`.
pub fn record_scales(
    ctx: &GpuContext,
    enc: &mut Encoder,
    input: &wgpu::Buffer,
    n: usize,
    spec: &QuantSpec,
    scales: &wgpu::Buffer,
    stats: &wgpu::Buffer,
) -> Result<(), GpuError> {
    let p = QuantParams::new(spec, n);
    let n32 = n as u32;
    match scaling_id(spec) & 15 {
        3 => {
            // Each block's finite amax and the tensor's (word 0), then the scales.
            let blocks = spec.format.block().map_or(0, |b| b.blocks(n));
            let amax = ctx.scratch("block amax", 1 + blocks)?;
            enc.clear_buffer(&amax, 0, None);
            let b = [(1, input), (4, &*amax)];
            record(ctx, enc, "mx_scales", "block_amax", blocks as u32, p, &b)?;
            let words = scale_words(spec, n) as u32;
            let b = [(2, scales), (4, &*amax)];
            record(ctx, enc, "mx_scales", "e4m3", words, p, &b)?;
        }
        2 => {
            let words = scale_words(spec, n) as u32;
            record(
                ctx,
                enc,
                "mx_scales",
                "main",
                words,
                p,
                &[(1, input), (2, scales)],
            )?;
        }
        1 => {
            let groups = n32.div_ceil(4);
            record(
                ctx,
                enc,
                "amax",
                "amax",
                groups,
                p,
                &[(1, input), (7, stats)],
            )?;
            record(
                ctx,
                enc,
                "amax",
                "tensor_scale",
                1,
                p,
                &[(2, scales), (7, stats)],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Records the passes that round `t.len()` f32 values from `input` into the packed tensor
/// `t` as `spec` says (its scales first, where it has any), the exception counts and amax
/// added to `stats` ([overflow, underflow, nan, amax bits]; a scaled tensor's amax word is
/// its own). The words are cleared first: `t` may hold older codes. `input` holds whole
/// 16-byte vectors (as lowp's buffers do), read four values at a time.
pub fn record_quantize(
    ctx: &GpuContext,
    enc: &mut Encoder,
    input: &wgpu::Buffer,
    spec: &QuantSpec,
    t: &Tensor,
    stats: &wgpu::Buffer,
) -> Result<(), GpuError> {
    check_len(spec, t.len())?;
    let out = Dst::Packed {
        t,
        spec,
        stats,
        add: None,
    };
    record_convert(ctx, enc, input, out, t.len())
}

/// Records the pass that decodes the packed tensor `t` into the f32 buffer `out` (whole
/// 16-byte vectors, as lowp's buffers are).
pub fn dequantize_into(
    ctx: &GpuContext,
    enc: &mut Encoder,
    t: &Tensor,
    out: &wgpu::Buffer,
) -> Result<(), GpuError> {
    record_convert(ctx, enc, t, out, t.len())
}

/// Decodes the four stats words.
pub fn exceptions_from(stats: &[u32]) -> Exceptions {
    Exceptions {
        overflow: stats[0] as u64,
        underflow: stats[1] as u64,
        nan: stats[2] as u64,
        amax: f32::from_bits(stats[3]),
    }
}

/// Records the passes that round `n` f32 values of `input` through `spec`'s format and back
/// into `out` (the scales first, into `scales`; the exception counts added to `stats`).
pub fn record_fake_quantize(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (input, out): (&wgpu::Buffer, &wgpu::Buffer),
    n: usize,
    spec: &QuantSpec,
    scales: &wgpu::Buffer,
    stats: &wgpu::Buffer,
) -> Result<(), GpuError> {
    record_scales(ctx, enc, input, n, spec, scales, stats)?;
    let p = QuantParams::new(spec, n);
    record(
        ctx,
        enc,
        "fake_quantize",
        "main",
        (n as u32).div_ceil(4),
        p,
        &[(1, input), (2, out), (3, scales), (7, stats)],
    )
}

/// Rounds `x` through the format and back on the GPU, with the exception counts.
pub fn fake_quantize(
    ctx: &GpuContext,
    x: &[f32],
    spec: &QuantSpec,
) -> Result<(Vec<f32>, Exceptions), GpuError> {
    let n = x.len();
    check_len(spec, n)?;
    let input = upload_f32(ctx, "input", x)?;
    let out = zeroed(ctx, "output", n)?;
    let scales = zeroed(ctx, "scales", scale_words(spec, n))?;
    let stats = zeroed(ctx, "stats", 4)?;
    let mut enc = Encoder::new(ctx);
    record_fake_quantize(ctx, &mut enc, (&input, &out), n, spec, &scales, &stats)?;
    let st = staging(ctx, 16);
    enc.copy_buffer_to_buffer(&stats, 0, &st, 0, 16);
    enc.submit();
    let exc = exceptions_from(&map_read(ctx, &st)?);
    let y = read_u32(ctx, &out, n)?;
    Ok((y.into_iter().map(f32::from_bits).collect(), exc))
}

/// Quantizes f32 data of the given shape on the GPU.
pub fn quantize(
    ctx: &GpuContext,
    data: &[f32],
    shape: &[usize],
    spec: &QuantSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(GpuError::Invalid(format!(
            "shape {shape:?} holds {n} elements but {} values were given",
            data.len()
        )));
    }
    check_len(spec, n)?;
    let input = upload_f32(ctx, "input", data)?;
    quantize_buffer(ctx, &input, shape, spec)
}

/// A zeroed tensor of `shape` with buffers for its packed codes and the scales `spec` needs.
pub fn alloc_tensor(
    ctx: &GpuContext,
    shape: &[usize],
    spec: &QuantSpec,
) -> Result<Tensor, GpuError> {
    let n: usize = shape.iter().product();
    let words = zeroed_as(
        ctx,
        Purpose::Tensor,
        "codes",
        packed_words(n, spec.format.bits()),
    )?;
    let sw = scale_words(spec, n);
    let scales = if sw > 0 {
        Some(zeroed_as(ctx, Purpose::Tensor, "scales", sw)?)
    } else {
        None
    };
    Ok(Tensor::from_parts(shape.to_vec(), *spec, words, scales))
}

/// Quantizes `shape.product()` f32 values already in a GPU buffer.
pub fn quantize_buffer(
    ctx: &GpuContext,
    input: &wgpu::Buffer,
    shape: &[usize],
    spec: &QuantSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let n: usize = shape.iter().product();
    check_len(spec, n)?;
    let t = alloc_tensor(ctx, shape, spec)?;
    let stats = zeroed(ctx, "stats", 4)?;
    let mut enc = Encoder::new(ctx);
    record_quantize(ctx, &mut enc, input, spec, &t, &stats)?;
    let st = staging(ctx, 16);
    enc.copy_buffer_to_buffer(&stats, 0, &st, 0, 16);
    enc.submit();
    let exc = exceptions_from(&map_read(ctx, &st)?);
    Ok((t, exc))
}

/// Decodes a tensor to f32 on the GPU and reads it back.
pub fn dequantize(ctx: &GpuContext, t: &Tensor) -> Result<Vec<f32>, GpuError> {
    let out = dequantize_buffer(ctx, t)?;
    let y = read_u32(ctx, &out, t.len())?;
    Ok(y.into_iter().map(f32::from_bits).collect())
}

/// Decodes a tensor into a new f32 GPU buffer.
pub fn dequantize_buffer(ctx: &GpuContext, t: &Tensor) -> Result<DeviceBuffer, GpuError> {
    let out = zeroed(ctx, "decoded", t.len())?;
    let mut enc = Encoder::new(ctx);
    dequantize_into(ctx, &mut enc, t, &out)?;
    enc.submit();
    ctx.check()?;
    Ok(out)
}

/// Converts a tensor to another format on the GPU (decode, then quantize as `spec` says).
pub fn convert(
    ctx: &GpuContext,
    t: &Tensor,
    spec: &QuantSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let decoded = dequantize_buffer(ctx, t)?;
    quantize_buffer(ctx, &decoded, t.shape(), spec)
}

/// Largest |x| over the non-NaN values of `n` f32 values in a GPU buffer (±Inf counts).
pub fn amax(ctx: &GpuContext, input: &wgpu::Buffer, n: usize) -> Result<f32, GpuError> {
    if n == 0 {
        return Ok(0.0);
    }
    let stats = zeroed(ctx, "stats", 4)?;
    let mut enc = Encoder::new(ctx);
    let p = QuantParams::new(&QuantSpec::new(crate::format::Format::FP32), n);
    let groups = (n as u32).div_ceil(4);
    record(
        ctx,
        &mut enc,
        "amax",
        "amax",
        groups,
        p,
        &[(1, input), (7, &stats)],
    )?;
    enc.submit();
    Ok(f32::from_bits(read_u32(ctx, &stats, 4)?[3]))
}
