//! The cost of a dispatch apart from its work: `DISPATCHES` ReLU passes over a few values,
//! recorded into one encoder, then submitted; CPU time to record, and wall time from the
//! first record to the finished queue, per dispatch.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use lowp::gpu::Encoder;
use lowp::gpu::GpuContext;
use lowp::gpu::buffers::{uniform, upload_f32, zeroed};
use lowp::ops::elementwise::record_relu_forward;
use std::time::{Duration, Instant};

/// Dispatches per measured encoder.
const DISPATCHES: usize = 500;

/// Values each dispatch touches (one workgroup).
const VALUES: usize = 64;

/// (record time, record-to-done time) of one encoder of DISPATCHES passes.
fn one_round(ctx: &GpuContext, x: &wgpu::Buffer, y: &wgpu::Buffer) -> (Duration, Duration) {
    let start = Instant::now();
    let mut enc = Encoder::new(ctx);
    for i in 0..DISPATCHES {
        // Alternate directions so that each pass depends on the one before.
        let (src, dst) = if i % 2 == 0 { (x, y) } else { (y, x) };
        record_relu_forward(ctx, &mut enc, src, dst, VALUES).unwrap();
    }
    let recorded = start.elapsed();
    enc.submit();
    ctx.wait().unwrap();
    (recorded, start.elapsed())
}

/// How the raw kernel's dispatches are recorded.
#[derive(Clone, Copy, Debug)]
enum Raw {
    /// Each in a compute pass of its own, one bind group for all.
    OwnPass,
    /// All in one pass, one bind group for all.
    SharedPass,
    /// All in one pass, each with a uniform buffer and bind group made for it (as lowp
    /// records a dispatch).
    FreshBindGroups,
}

/// Record-to-done time per dispatch of a trivial kernel (a uniform read, a storage update).
fn raw(ctx: &GpuContext, x: &wgpu::Buffer, mode: Raw) -> Duration {
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(
                "@group(0) @binding(0) var<uniform> u: vec4<f32>;
             @group(0) @binding(1) var<storage, read_write> x: array<f32>;
             @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
                 x[g.x] = max(x[g.x], u.x);
             }"
                .into(),
            ),
        });
    let p = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let make_bind = || {
        let u = uniform(ctx, &[0f32; 4]);
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: u.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: x.as_entire_binding(),
                },
            ],
        })
    };
    let bind = make_bind();
    let start = Instant::now();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    match mode {
        Raw::OwnPass => {
            for _ in 0..DISPATCHES {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&p);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
        Raw::SharedPass | Raw::FreshBindGroups => {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..DISPATCHES {
                pass.set_pipeline(&p);
                match mode {
                    Raw::FreshBindGroups => pass.set_bind_group(0, &make_bind(), &[]),
                    _ => pass.set_bind_group(0, &bind, &[]),
                }
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
    }
    ctx.queue.submit([enc.finish()]);
    ctx.wait().unwrap();
    start.elapsed() / DISPATCHES as u32
}

fn bench(c: &mut Criterion) {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let x = upload_f32(&ctx, "x", &[1.0; VALUES]).unwrap();
    let y = zeroed(&ctx, "y", VALUES).unwrap();
    one_round(&ctx, &x, &y);
    let modes = [Raw::OwnPass, Raw::SharedPass, Raw::FreshBindGroups];
    for mode in modes.iter().chain(&modes) {
        raw(&ctx, &x, *mode);
        let t: Duration = (0..10).map(|_| raw(&ctx, &x, *mode)).sum::<Duration>() / 10;
        println!(
            "raw, {mode:?}: {:.1} us per dispatch",
            t.as_secs_f64() * 1e6
        );
    }
    c.bench_function("relu x500, 64 values each", |b| {
        b.iter(|| one_round(&ctx, &x, &y))
    });
    let rounds = 10;
    let (mut rec, mut all) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let (r, a) = one_round(&ctx, &x, &y);
        rec += r;
        all += a;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (rounds * DISPATCHES) as f64;
    println!(
        "\nadapter: {} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "per dispatch: {:.1} us to record, {:.1} us recorded to done ({DISPATCHES} dispatches of {VALUES} values, mean of {rounds} encoders)",
        per(rec),
        per(all)
    );
}

criterion_group! { name = benches; config = common::config(); targets = bench }
criterion_main!(benches);
