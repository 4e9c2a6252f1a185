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

/// A WGSL kernel's `main` as a raw wgpu pipeline with its bind group 0 (the benches that
/// measure what a kind of load costs, apart from lowp's kernels).
pub fn raw_kernel(
    ctx: &GpuContext,
    wgsl: &str,
    resources: Vec<(u32, wgpu::BindingResource)>,
) -> (wgpu::ComputePipeline, wgpu::BindGroup) {
    let d = &ctx.device;
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("raw kernel"),
        source: wgpu::ShaderSource::Wgsl(wgsl.into()),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("raw kernel"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let entries: Vec<_> = resources
        .into_iter()
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("raw kernel"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    (pipeline, bind)
}

/// Wall-clock seconds per dispatch of `reps` dispatches over `groups` in one compute pass
/// and one submission, waited for.
pub fn raw_seconds(
    ctx: &GpuContext,
    (pipeline, bind): &(wgpu::ComputePipeline, wgpu::BindGroup),
    groups: (u32, u32, u32),
    reps: u32,
) -> f64 {
    let t0 = std::time::Instant::now();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind, &[]);
        for _ in 0..reps {
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
    }
    ctx.queue.submit([enc.finish()]);
    ctx.wait().unwrap();
    t0.elapsed().as_secs_f64() / reps as f64
}

/// A 2-D texture of `width` x `height` texels of `format` for the load benches.
pub fn texture(
    ctx: &GpuContext,
    label: &str,
    (width, height): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}
