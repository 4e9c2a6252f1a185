//! Timing GPU work with timestamp queries (wall clock where the adapter has none).

use super::buffers::{map_read, staging};
use super::context::GpuContext;
use super::encoder::Encoder;
use super::error::GpuError;
use std::time::{Duration, Instant};

/// Whether durations come from GPU timestamps or the host clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamp queries written on the command encoder.
    GpuTimestamps,
    /// Host wall clock around submit-and-wait.
    WallClock,
}

/// Times whatever `record` encodes, `reps` times in one submission.
pub fn time_gpu(
    ctx: &GpuContext,
    reps: u32,
    mut record: impl FnMut(&mut Encoder),
) -> Result<(Duration, Clock), GpuError> {
    let inside = ctx.device.features().contains(
        wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS,
    );
    let mut enc = Encoder::new(ctx);
    if !inside {
        ctx.wait()?;
        let t0 = Instant::now();
        for _ in 0..reps {
            record(&mut enc);
        }
        enc.submit();
        ctx.wait()?;
        return Ok((t0.elapsed(), Clock::WallClock));
    }
    let qs = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("timer"),
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timestamps"),
        size: 16,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let st = staging(ctx, 16);
    enc.write_timestamp(&qs, 0);
    for _ in 0..reps {
        record(&mut enc);
    }
    enc.write_timestamp(&qs, 1);
    enc.resolve_query_set(&qs, 0..2, &resolve, 0);
    enc.copy_buffer_to_buffer(&resolve, 0, &st, 0, 16);
    enc.submit();
    let w = map_read(ctx, &st)?;
    let ticks =
        ((w[3] as u64) << 32 | w[2] as u64).saturating_sub((w[1] as u64) << 32 | w[0] as u64);
    let ns = ticks as f64 * ctx.queue.get_timestamp_period() as f64;
    Ok((Duration::from_nanos(ns as u64), Clock::GpuTimestamps))
}
