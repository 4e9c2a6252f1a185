//! Buffer helpers: upload, zeroed storage, uniforms, readback and size checks. Every buffer
//! is made here and counted in its context's ledger (`gpu::memory`) under its purpose.

use super::context::GpuContext;
use super::encoder::Encoder;
use super::error::GpuError;
use super::memory::{DeviceBuffer, Purpose};
use wgpu::util::DeviceExt;

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Fails with `TooLarge` if `bytes` exceed what one storage binding may hold.
pub fn check_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<(), GpuError> {
    let l = ctx.device.limits();
    let limit = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
    if bytes > limit {
        return Err(GpuError::TooLarge {
            what: what.to_string(),
            bytes,
            limit,
        });
    }
    Ok(())
}

/// A storage buffer for `purpose` holding `words`.
pub fn upload_as(
    ctx: &GpuContext,
    purpose: Purpose,
    label: &str,
    words: &[u32],
) -> Result<DeviceBuffer, GpuError> {
    check_size(ctx, label, words.len() as u64 * 4)?;
    // Whole 16-byte vectors (see `allocated_words`), zeros after the words.
    let padded;
    let data: &[u32] = if words.len() == allocated_words(words.len()) {
        words
    } else {
        padded = [words, &vec![0; allocated_words(words.len()) - words.len()]].concat();
        &padded
    };
    let b = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: STORAGE,
        });
    Ok(DeviceBuffer::track(b, purpose, &ctx.ledger))
}

/// A storage buffer holding `words` (counted as `Purpose::Other`).
pub fn upload_u32(ctx: &GpuContext, label: &str, words: &[u32]) -> Result<DeviceBuffer, GpuError> {
    upload_as(ctx, Purpose::Other, label, words)
}

/// A storage buffer holding f32 values (counted as `Purpose::Other`).
pub fn upload_f32(ctx: &GpuContext, label: &str, xs: &[f32]) -> Result<DeviceBuffer, GpuError> {
    upload_as(ctx, Purpose::Other, label, bytemuck::cast_slice(xs))
}

/// The words a storage buffer asked to hold `words` takes: whole 16-byte vectors, at
/// least one (a kernel of four elements an invocation reads and writes 32-bit operands as
/// arrays of vec4, whose length rounds down).
pub fn allocated_words(words: usize) -> usize {
    words.max(1).next_multiple_of(4)
}

/// A zero-filled storage buffer for `purpose` of `words` u32 words (at least one).
pub fn zeroed_as(
    ctx: &GpuContext,
    purpose: Purpose,
    label: &str,
    words: usize,
) -> Result<DeviceBuffer, GpuError> {
    let bytes = allocated_words(words) as u64 * 4;
    check_size(ctx, label, bytes)?;
    let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: STORAGE,
        mapped_at_creation: false,
    });
    Ok(DeviceBuffer::track(b, purpose, &ctx.ledger))
}

/// A zero-filled storage buffer of `words` u32 words (counted as `Purpose::Other`).
pub fn zeroed(ctx: &GpuContext, label: &str, words: usize) -> Result<DeviceBuffer, GpuError> {
    zeroed_as(ctx, Purpose::Other, label, words)
}

/// A uniform buffer holding `value`.
pub fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, value: &T) -> DeviceBuffer {
    let b = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    DeviceBuffer::track(b, Purpose::Parameters, &ctx.ledger)
}

/// A staging buffer a copy can land in and be mapped for reading.
pub fn staging(ctx: &GpuContext, bytes: u64) -> DeviceBuffer {
    let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("staging"),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    DeviceBuffer::track(b, Purpose::Staging, &ctx.ledger)
}

/// Maps a staging buffer (after its copy was submitted) and returns its words.
pub fn map_read(ctx: &GpuContext, staging: &wgpu::Buffer) -> Result<Vec<u32>, GpuError> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.wait()?;
    rx.recv()
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let words = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, u32>(&view).to_vec()
    };
    staging.unmap();
    Ok(words)
}

/// Reads the first `words` words of a storage buffer back to the CPU.
pub fn read_u32(ctx: &GpuContext, buf: &wgpu::Buffer, words: usize) -> Result<Vec<u32>, GpuError> {
    let bytes = (words.max(1) * 4) as u64;
    let st = staging(ctx, bytes);
    let mut enc = Encoder::new(ctx);
    enc.copy_buffer_to_buffer(buf, 0, &st, 0, bytes);
    enc.submit();
    let mut out = map_read(ctx, &st)?;
    out.truncate(words);
    Ok(out)
}
