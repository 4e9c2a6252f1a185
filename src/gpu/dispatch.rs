//! Recording one kernel dispatch: grid size, bind group and compute pass.

use super::context::GpuContext;
use super::encoder::Encoder;
use super::error::GpuError;
use super::params::DispatchParams;
use super::shader::{loops_over_items, takes_f64_softfloat};
use super::specialise::Specialisation;

/// A dispatch's storage buffers and texture views, each with its binding number.
pub type Bound<'a> = (
    &'a [(u32, &'a wgpu::Buffer)],
    &'a [(u32, &'a wgpu::TextureView)],
);

/// Invocations per workgroup of every 1-D kernel (WGSL's `WG`).
pub const WORKGROUP: u32 = 256;

/// Workgroups along x and y covering `count` work items.
pub fn grid(ctx: &GpuContext, count: u32) -> (u32, u32) {
    let groups = count.div_ceil(WORKGROUP).max(1);
    let gx = groups.min(ctx.max_groups_x());
    (gx, groups.div_ceil(gx))
}

/// The most work items one invocation of a looping kernel takes: enough to amortise an
/// invocation's setup, and few enough that llvmpipe's limit of 65,535 loop iterations an
/// invocation (every loop's counted) leaves each item 1,022 of its own.
pub const ITEMS_MOST: u32 = 64;

/// Loop iterations an item may spend beyond its `item_iterations`: a store's rounding
/// (random bits: 10 rounds; exception counts: 3) and soft-float's divisions and square
/// roots (27 and 26 steps) for each of four elements, with room to spare.
pub const ITEM_SLACK: u32 = 512;

/// Workgroups along x and y covering `count` work items of a kernel whose invocations loop
/// over their items (`shader::loops_over_items`), each item's loops running at most
/// `iterations` (and `ITEM_SLACK`): at most `ctx.item_groups()`, and never so few that an
/// invocation's items and their loops pass llvmpipe's loop limit (one item an invocation
/// where two would).
pub fn looping_grid(ctx: &GpuContext, count: u32, iterations: u32) -> (u32, u32) {
    let full = count.div_ceil(WORKGROUP).max(1);
    let per = ITEMS_MOST.min(u16::MAX as u32 / iterations.saturating_add(1 + ITEM_SLACK));
    let groups = match ctx.item_groups() {
        Some(most) if per >= 2 => {
            let least = count.div_ceil(WORKGROUP.saturating_mul(per)).max(1);
            full.min(most.max(least))
        }
        _ => full,
    };
    let gx = groups.min(ctx.max_groups_x());
    (gx, groups.div_ceil(gx))
}

/// Records `entry` of `kernel` over `count` work items with the given storage bindings
/// (binding 0 is the uniform `params`, filled in here with the grid).
pub fn record<P: DispatchParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: &str,
    entry: &str,
    count: u32,
    params: P,
    bindings: &[(u32, &wgpu::Buffer)],
) -> Result<(), GpuError> {
    let kernel = (kernel, entry, &[][..]);
    record_with(
        ctx,
        enc,
        kernel,
        &Specialisation::default(),
        count,
        params,
        bindings,
    )
}

/// Like [`record`], for a kernel with pipeline-overridable constants, compiled for the
/// operand formats of `spec`.
pub fn record_with<P: DispatchParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: (&str, &str, &[(&str, f64)]),
    spec: &Specialisation,
    count: u32,
    params: P,
    bindings: &[(u32, &wgpu::Buffer)],
) -> Result<(), GpuError> {
    record_with_textures(ctx, enc, kernel, spec, count, params, (bindings, &[]))
}

/// Like [`record_with`], with texture views bound beside the buffers.
pub fn record_with_textures<P: DispatchParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: (&str, &str, &[(&str, f64)]),
    spec: &Specialisation,
    count: u32,
    mut params: P,
    (bindings, textures): Bound<'_>,
) -> Result<(), GpuError> {
    let (gx, gy) = match loops_over_items(kernel.0, kernel.1) {
        true => looping_grid(ctx, count, params.item_iterations()),
        false => grid(ctx, count),
    };
    params.set_grid(gx, count);
    let grid = (gx, gy, 1);
    record_textured(ctx, enc, kernel, spec, grid, &params, (bindings, textures))
}

/// Records `entry` of `kernel` over an explicit grid of workgroups. A shader, pipeline or
/// binding error is returned here, by the call that caused it.
pub fn record_groups<P: bytemuck::Pod>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: &str,
    entry: &str,
    (gx, gy): (u32, u32),
    params: &P,
    bindings: &[(u32, &wgpu::Buffer)],
) -> Result<(), GpuError> {
    record_tiled(
        ctx,
        enc,
        (kernel, entry, &[]),
        &Specialisation::default(),
        (gx, gy, 1),
        params,
        bindings,
    )
}

/// Like [`record_groups`], for a kernel with pipeline-overridable constants, compiled for
/// the operand formats of `spec` (unless the context runs generic kernels).
pub fn record_tiled<P: bytemuck::Pod>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: (&str, &str, &[(&str, f64)]),
    spec: &Specialisation,
    grid: (u32, u32, u32),
    params: &P,
    bindings: &[(u32, &wgpu::Buffer)],
) -> Result<(), GpuError> {
    record_textured(ctx, enc, kernel, spec, grid, params, (bindings, &[]))
}

/// Like [`record_tiled`], with texture views bound beside the buffers.
pub fn record_textured<P: bytemuck::Pod>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (kernel, entry, constants): (&str, &str, &[(&str, f64)]),
    spec: &Specialisation,
    (gx, gy, gz): (u32, u32, u32),
    params: &P,
    (bindings, textures): Bound<'_>,
) -> Result<(), GpuError> {
    let spec = match ctx.specialise() {
        true => Specialisation {
            subgroups: ctx.has_subgroups(),
            broadcast: ctx.broadcast_lanes(),
            f64_arith: ctx.f64_softfloat() && takes_f64_softfloat(kernel, entry),
            f64_subnormals: ctx.f64_subnormals(),
            ..*spec
        },
        false => Specialisation {
            panel_textures: spec.panel_textures,
            ..Default::default()
        },
    };
    let slot = enc.params(params);
    // A kernel that loops over its items walks them in runs as wide as the context says.
    let mut looping = Vec::new();
    let constants = match loops_over_items(kernel, entry) {
        true => {
            looping.extend_from_slice(constants);
            looping.push(("RUN_LANES", ctx.run_lanes() as f64));
            &looping[..]
        }
        false => constants,
    };
    let pipeline = ctx
        .pipelines
        .get(&ctx.device, (kernel, entry, constants), &spec)
        .map_err(|e| GpuError::Device(format!("kernel {kernel}/{entry}: {e}")))?;
    let mut key = vec![(0, (*slot.buffer).clone(), slot.offset)];
    key.extend(bindings.iter().map(|(b, buf)| (*b, (*buf).clone(), 0)));
    let views = textures.iter().map(|(b, v)| (*b, (*v).clone())).collect();
    // A validation error in making the bind group is returned by the call that caused it;
    // a step whose bind groups are all cached opens no error scope.
    let bind = enc.bind_group(&pipeline, (key, views), || {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let uniform = wgpu::BufferBinding {
            buffer: &slot.buffer,
            offset: slot.offset,
            size: std::num::NonZeroU64::new(slot.size),
        };
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(uniform),
        }];
        entries.extend(bindings.iter().map(|(b, buf)| wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.as_entire_binding(),
        }));
        entries.extend(textures.iter().map(|(b, view)| wgpu::BindGroupEntry {
            binding: *b,
            resource: wgpu::BindingResource::TextureView(view),
        }));
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(GpuError::Device(format!("kernel {kernel}/{entry}: {e}"))),
            None => Ok(bind),
        }
    })?;
    let view = enc.view().map(str::to_owned);
    let label = || match &view {
        Some(view) => format!("{kernel}/{entry} {view}"),
        None => format!("{kernel}/{entry} {gx}x{gy}x{gz}"),
    };
    let host_timed = ctx.profiler.as_ref().filter(|p| p.is_host_timed());
    if host_timed.is_some() {
        enc.run_recorded(ctx)?;
    }
    let start = std::time::Instant::now();
    let timestamps = ctx.profiler.as_ref().and_then(|p| p.pass(label()));
    let pass = enc.compute_pass(kernel, timestamps);
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups(gx, gy, gz);
    if let Some(p) = host_timed {
        enc.run_recorded(ctx)?;
        p.add(label(), start.elapsed().as_secs_f64());
    }
    Ok(())
}
