//! Helpers shared by the benchmarks.
#![allow(dead_code)]

use lowp::gpu::Encoder;
use lowp::gpu::GpuContext;
use lowp::gpu::timer::time_gpu;
use std::time::Duration;

/// GPU time per repetition of what `record` encodes, repeating until the measured span is
/// at least a quarter second so that per-submission overhead does not distort it.
pub fn per_rep(ctx: &GpuContext, mut record: impl FnMut(&mut Encoder)) -> Duration {
    let mut reps = 1u32;
    loop {
        let (t, _) = time_gpu(ctx, reps, &mut record).unwrap();
        if t >= Duration::from_millis(250) || reps >= 1 << 14 {
            return t / reps;
        }
        reps *= 4;
    }
}

/// Whether the adapter is a CPU (software) one, where benchmark sizes shrink.
pub fn is_cpu(ctx: &GpuContext) -> bool {
    ctx.info.device_type == wgpu::DeviceType::Cpu
}

/// Short criterion settings: the summary tables carry the figures.
pub fn config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}
