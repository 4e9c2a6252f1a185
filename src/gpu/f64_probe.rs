//! Whether soft-float's native f64 form (shaders/lib/softfloat_f64_native.wgsl: the
//! device's own f32 <-> f64 conversions, which must keep f32 subnormals and round into them
//! as IEEE does) gives src/softfloat.rs's bits on a device: run there over operand pairs
//! around zero, the subnormal range and its ties, the least normals, overflow, infinities and
//! NaN, and compared. Vulkan lets a device flush f32 subnormals; lavapipe keeps them. Also
//! the runner of soft-float expressions over operand pairs that the twin test uses.

use super::buffers::{read_u32, upload_u32, zeroed};
use super::shader::assemble_with_spec;
use super::specialise::Specialisation;
use super::{Encoder, GpuContext, GpuError};
use crate::softfloat;

/// The operands, each paired with every other (and itself): zeros, subnormals (the least,
/// odd ones, the largest, a half of the range), the least normals and their neighbours,
/// powers of two whose products with subnormals fall on the subnormal range's ties, values
/// near one, the largest finite values, infinities, and NaN with payloads.
const OPERANDS: [u32; 34] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x0000_0002,
    0x0000_0003,
    0x8000_0001,
    0x0040_0000,
    0x0040_0001,
    0x007f_ffff,
    0x807f_ffff,
    0x0080_0000,
    0x0080_0001,
    0x8080_0000,
    0x0100_0001,
    0x2000_0000, // 2^-63
    0x3380_0000, // 2^-24
    0x3400_0000, // 2^-23
    0x3e80_0000, // 0.25
    0x3f00_0000, // 0.5
    0x3f00_0001,
    0x3f40_0000, // 0.75
    0x3f80_0000, // 1
    0x3f80_0001,
    0x3fc0_0000, // 1.5
    0xbf80_0000,
    0x4b80_0000, // 2^24
    0x7f00_0000, // 2^127
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0x7f80_0001,
    0xffc0_0001,
];

/// Whether soft-float's native f64 form gives src/softfloat.rs's bits on `ctx`'s device for
/// every pair of [`OPERANDS`] (false where the device refuses its kernel).
pub fn keeps_subnormals(ctx: &GpuContext) -> Result<bool, GpuError> {
    let (a, b): (Vec<u32>, Vec<u32>) = OPERANDS
        .iter()
        .flat_map(|&x| OPERANDS.iter().map(move |&y| (x, y)))
        .unzip();
    let spec = Specialisation {
        f64_arith: true,
        f64_subnormals: true,
        ..Default::default()
    };
    let Some(got) = soft_float_pairs(ctx, &["sf_add(a, b)", "sf_mul(a, b)"], &spec, (&a, &b))?
    else {
        return Ok(false);
    };
    Ok(a.iter().zip(&b).enumerate().all(|(i, (&x, &y))| {
        got[0][i] == softfloat::add(x, y) && got[1][i] == softfloat::mul(x, y)
    }))
}

/// Each of `steps` (WGSL expressions of a pair's f32 bits `a` and `b` through soft-float,
/// assembled in `spec`'s form) over every pair (a[i], b[i]) on `ctx`'s device, one kernel and
/// one dispatch: a result vector a step, or None where the device refuses the kernel.
pub fn soft_float_pairs(
    ctx: &GpuContext,
    steps: &[&str],
    spec: &Specialisation,
    (a, b): (&[u32], &[u32]),
) -> Result<Option<Vec<Vec<u32>>>, GpuError> {
    let (n, r) = (a.len().min(b.len()), steps.len());
    let stores: String = steps
        .iter()
        .enumerate()
        .map(|(t, e)| format!("    res[{t}u * N + i] = {e};\n"))
        .collect();
    let body = format!(
        "// The pairs (the buffers hold whole vectors of four words, perhaps a few more).
const N: u32 = {n}u;
@group(0) @binding(1) var<storage, read> lhs: array<u32>;
@group(0) @binding(2) var<storage, read> rhs: array<u32>;
@group(0) @binding(3) var<storage, read_write> res: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= N) {{
        return;
    }}
    let a = lhs[i];
    let b = rhs[i];
{stores}}}
"
    );
    let libs = ["fmt", "rng", "quant", "softfloat"];
    let src = assemble_with_spec(&libs, "soft-float pairs", &body, spec);
    // A kernel the device refuses is None, not an error left in the device's slot: a
    // refused shader or pipeline is a validation error or, from the backend, an internal one.
    let internal = ctx.device.push_error_scope(wgpu::ErrorFilter::Internal);
    let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("soft-float pairs"),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("soft-float pairs"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let refused = pollster::block_on(validation.pop()).is_some();
    if pollster::block_on(internal.pop()).is_some() || refused {
        return Ok(None);
    }
    let (la, lb) = (
        upload_u32(ctx, "soft-float pairs a", &a[..n])?,
        upload_u32(ctx, "soft-float pairs b", &b[..n])?,
    );
    let out = zeroed(ctx, "soft-float pairs results", r * n)?;
    let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("soft-float pairs"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 1,
                resource: la.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: lb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: out.as_entire_binding(),
            },
        ],
    });
    // Rows of at most 32,768 workgroups of 64 (within every device's grid).
    let groups = (n as u32).div_ceil(64).max(1);
    let (gx, gy) = (groups.min(1 << 15), groups.div_ceil(1 << 15));
    let mut enc = Encoder::new(ctx);
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
    enc.submit();
    let got = read_u32(ctx, &out, r * n)?;
    Ok(Some(
        (0..r).map(|t| got[t * n..(t + 1) * n].to_vec()).collect(),
    ))
}
