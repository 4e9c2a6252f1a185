//! The WGSL soft-float (`shaders/lib/softfloat.wgsl`) applied element by element on the GPU,
//! equal bit for bit to its twin `src/softfloat.rs`: add, mul, div, sqrt, exp and expm1 over the
//! operands of tests/softfloat.rs (subnormals, signed zeros, Inf, NaN, near-ties) paired in
//! windows, plus random pairs, about a million in all. The emulated accumulators, the
//! loss, batch norm and the optimizers rest on these functions; a device that flushes
//! subnormals or contracts to FMA must not change a bit of them.

mod common;

use lowp::gpu::buffers::{read_u32, upload_u32, zeroed};
use lowp::gpu::shader::assemble_with_spec;
use lowp::gpu::specialise::Specialisation;
use lowp::softfloat;

/// The test kernel: `out[i] = f(a[i], b[i])` for the function `J.op` names.
const APPLY: &str = r#"
struct Job { op: u32, count: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> J: Job;
@group(0) @binding(1) var<storage, read> lhs: array<u32>;
@group(0) @binding(2) var<storage, read> rhs: array<u32>;
@group(0) @binding(3) var<storage, read_write> res: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= J.count) {
        return;
    }
    let a = lhs[i];
    let b = rhs[i];
    switch J.op {
        case 0u: { res[i] = sf_add(a, b); }
        case 1u: { res[i] = sf_mul(a, b); }
        case 2u: { res[i] = sf_div(a, b); }
        case 3u: { res[i] = sf_sqrt(a); }
        case 4u: { res[i] = sf_exp(a); }
        case 5u: { res[i] = sf_expm1(a); }
        case 6u: { res[i] = sf_add_exact(a, b); }
        default: { res[i] = sf_mul_exact(a, b); }
    }
}
"#;

/// A soft-float function of one or two f32 bit patterns.
type Function = fn(u32, u32) -> u32;

/// The functions, in the kernel's `op` order, with their twins.
/// `add` and `mul` take the hardware's result where it is exact; `add_exact` and
/// `mul_exact` are their integer paths alone, on every operand.
const FUNCTIONS: [(&str, Function); 8] = [
    ("add", softfloat::add),
    ("mul", softfloat::mul),
    ("div", softfloat::div),
    ("sqrt", |a, _| softfloat::sqrt(a)),
    ("exp", |a, _| softfloat::exp(a)),
    ("expm1", |a, _| softfloat::expm1(a)),
    ("add_exact", softfloat::add),
    ("mul_exact", softfloat::mul),
];

/// The operand pairs: each operand with a window of 40 on either side, itself and its
/// negation; then random pairs, half of them with nearby exponents (cancellation, ties);
/// then exp's whole range in steps of 0.0137, and expm1's small arguments t ln(beta).
fn pairs() -> (Vec<u32>, Vec<u32>) {
    let ops = common::softfloat_operands();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, &x) in ops.iter().enumerate() {
        for &y in ops[i.saturating_sub(40)..(i + 40).min(ops.len())]
            .iter()
            .chain([&x, &(x ^ 0x8000_0000)])
        {
            a.push(x);
            b.push(y);
        }
    }
    let mut s = 0xdead_beef_cafe_f00du64;
    for i in 0..700_000u32 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let x = s as u32;
        let y = if i % 2 == 0 {
            (s >> 32) as u32
        } else {
            let e = ((x >> 23) & 0xff) as i32 + ((s >> 40) % 7) as i32 - 3;
            ((s >> 32) as u32 & 0x807f_ffff) | ((e.clamp(0, 254) as u32) << 23)
        };
        a.push(x);
        b.push(y);
    }
    let mut x = -104.0f32;
    while x < 89.0 {
        a.push(x.to_bits());
        b.push(1.0f32.to_bits());
        x += 0.0137;
    }
    for t in 1..3000 {
        for beta in [0.9f64, 0.99, 0.999, 0.9999] {
            a.push((t as f32 * beta.ln() as f32).to_bits());
            b.push(1.0f32.to_bits());
        }
    }
    (a, b)
}

/// Runs function `op` of the test kernel over the pairs on the GPU, its `sf_mul` and
/// `sf_add` in the form `form` names (subgroups: the fast path is taken a whole subgroup at a
/// time where every lane can, as specialised kernels do; f64: through f64).
fn on_gpu(
    ctx: &lowp::gpu::GpuContext,
    op: u32,
    (a, b): (&[u32], &[u32]),
    form: &Specialisation,
) -> Vec<u32> {
    let src = assemble_with_spec(
        &["fmt", "rng", "quant", "softfloat"],
        "softfloat_apply",
        APPLY,
        form,
    );
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("softfloat_apply"),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("softfloat_apply"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let n = a.len();
    let job_uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("job uniform"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let job: Vec<u8> = [op, n as u32, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    ctx.queue.write_buffer(&job_uniform, 0, &job);
    let (la, lb) = (
        upload_u32(ctx, "a", a).unwrap(),
        upload_u32(ctx, "b", b).unwrap(),
    );
    let out = zeroed(ctx, "results", n).unwrap();
    let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: job_uniform.as_entire_binding(),
            },
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
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups((n as u32).div_ceil(256), 1, 1);
    }
    ctx.queue.submit([enc.finish()]);
    read_u32(ctx, &out, n).unwrap()
}

#[test]
fn wgsl_softfloat_equals_its_rust_twin_bit_for_bit() {
    let ctx = common::gpu();
    let (a, b) = pairs();
    assert!(a.len() > 900_000, "{} pairs", a.len());
    // What the operands reach: subnormal, zero, infinite and NaN operands on both sides.
    let class = |x: u32| match x & 0x7fff_ffff {
        0 => 0,
        m if m < 0x0080_0000 => 1,
        0x7f80_0000 => 2,
        m if m > 0x7f80_0000 => 3,
        _ => 4,
    };
    let mut reached = [[false; 5]; 5];
    for (&x, &y) in a.iter().zip(&b) {
        reached[class(x)][class(y)] = true;
    }
    assert!(
        reached.iter().flatten().all(|&r| r),
        "some pairing of zero, subnormal, Inf, NaN and normal operands is missing"
    );
    // The random pairs are mostly normal (about 3 in 4 runs of 8 lanes are all normal), so
    // whole subgroups take the fast path; the special operands send theirs to the integer
    // path. Where the context computes through f64 (a CPU adapter with f64), that form too,
    // and where its probe found the device's conversions keep subnormals, the form with them.
    let form = |subgroups, f64_arith, f64_subnormals| Specialisation {
        subgroups,
        f64_arith,
        f64_subnormals,
        ..Default::default()
    };
    let mut forms = vec![("gate", form(false, false, false))];
    if ctx.has_subgroups() {
        forms.push(("subgroup gate", form(true, false, false)));
    }
    if ctx.f64_softfloat() {
        forms.push(("f64", form(false, true, false)));
    }
    if ctx.f64_subnormals() {
        forms.push(("f64, the device's conversions", form(false, true, true)));
    }
    for (op, (name, twin)) in FUNCTIONS.iter().enumerate() {
        for (form_name, form) in &forms {
            let got = on_gpu(&ctx, op as u32, (&a, &b), form);
            let differ: Vec<usize> = (0..a.len())
                .filter(|&i| got[i] != twin(a[i], b[i]))
                .collect();
            if let Some(&i) = differ.first() {
                panic!(
                    "{name} ({form_name}): {} of {} results differ from src/softfloat.rs; first: \
                 {name}({:08x}, {:08x}) = {:08x} on the GPU, {:08x} on the CPU",
                    differ.len(),
                    a.len(),
                    a[i],
                    b[i],
                    got[i],
                    twin(a[i], b[i])
                );
            }
        }
    }
}
