//! What the soft-float arithmetic (`shaders/lib/softfloat*.wgsl`, bit-exact with
//! `src/softfloat.rs`) costs on this adapter, in each form the shader assembly can take:
//! the hardware's result gated lane by lane, gated a subgroup at a time, and through f64
//! (a CPU adapter's default; its conversions' subnormals built by hand, or the device's
//! where they keep them), next to the hardware's own f32 arithmetic (not bit-exact:
//! what the emulation is measured against). Each of 1 Mi invocations loads an f32 pair
//! (a, b) and runs 32 dependent steps of one operation: a sum s + b, a product s b, or batch
//! norm's step a + s b (a product then a sum, two roundings), then stores s. Wall clock per
//! dispatch of five in one submission, after a warm-up, the median of three.

mod common;

use common::{raw_kernel, raw_seconds};
use lowp::gpu::GpuContext;
use lowp::gpu::buffers::{upload_u32, zeroed};
use lowp::gpu::shader::assemble_with_spec;
use lowp::gpu::specialise::Specialisation;

/// Invocations per dispatch.
const N: u32 = 1 << 20;
/// Workgroup size.
const WG: u32 = 64;
/// Dependent steps per invocation.
const STEPS: u32 = 32;

/// The operations: name and one step of s (a and b the invocation's pair).
const OPS: [(&str, &str, &str); 3] = [
    ("sum", "sf_add(s, b)", "s + b"),
    ("product", "sf_mul(s, b)", "s * b"),
    ("product then sum", "sf_add(a, sf_mul(s, b))", "a + s * b"),
];

/// The kernel running `step` (on u32 bits, or on f32 values where `hardware`).
fn kernel(step: &str, hardware: bool) -> String {
    let (load, store) = match hardware {
        true => ("bitcast<f32>", "bitcast<u32>"),
        false => ("", ""),
    };
    format!(
        "@group(0) @binding(1) var<storage, read> lhs: array<u32>;
        @group(0) @binding(2) var<storage, read> rhs: array<u32>;
        @group(0) @binding(3) var<storage, read_write> res: array<u32>;
        @compute @workgroup_size({WG})
        fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
            let i = gid.x;
            let a = {load}(lhs[i]);
            let b = {load}(rhs[i]);
            var s = a;
            for (var t = 0u; t < {STEPS}u; t++) {{
                s = {step};
            }}
            res[i] = {store}(s);
        }}"
    )
}

fn main() {
    let ctx = GpuContext::new().expect("a GPU adapter (install Mesa's lavapipe)");
    // a: values of either sign over a few binades; b: near 1 (a product stays finite).
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let a: Vec<u32> = (0..N)
        .map(|_| ((next() - 0.5) * 8.0) as f32)
        .map(f32::to_bits)
        .collect();
    let b: Vec<u32> = (0..N)
        .map(|_| (0.99 + 0.02 * next()) as f32)
        .map(f32::to_bits)
        .collect();
    let (la, lb) = (
        upload_u32(&ctx, "a", &a).unwrap(),
        upload_u32(&ctx, "b", &b).unwrap(),
    );
    let out = zeroed(&ctx, "s", N as usize).unwrap();
    let form = |subgroups, f64_arith, f64_subnormals| Specialisation {
        subgroups,
        f64_arith,
        f64_subnormals,
        ..Default::default()
    };
    let mut forms = vec![("gated lane by lane", form(false, false, false))];
    if ctx.has_subgroups() {
        forms.push(("gated a subgroup at a time", form(true, false, false)));
    }
    if ctx.f64_softfloat() {
        forms.push(("f64, subnormals by hand", form(false, true, false)));
    }
    if ctx.f64_subnormals() {
        forms.push(("f64, device conversions", form(false, true, true)));
    }
    println!(
        "\nadapter: {} ({:?}, {:?}); {N} invocations x {STEPS} steps; ns a step an invocation",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    println!(
        "{:<20} {:<28} {:>9} {:>12}",
        "operation", "form", "ns", "of hardware"
    );
    for (op, soft, hard) in OPS {
        let time = |wgsl: &str| {
            let k = raw_kernel(
                &ctx,
                wgsl,
                vec![
                    (1, la.as_entire_binding()),
                    (2, lb.as_entire_binding()),
                    (3, out.as_entire_binding()),
                ],
            );
            raw_seconds(&ctx, &k, (N / WG, 1, 1), 1);
            let mut t: Vec<f64> = (0..3)
                .map(|_| raw_seconds(&ctx, &k, (N / WG, 1, 1), 5))
                .collect();
            t.sort_by(f64::total_cmp);
            t[1] * 1e9 / (N * STEPS) as f64
        };
        let hw = time(&kernel(hard, true));
        println!("{op:<20} {:<28} {hw:>9.3} {:>11.1}x", "hardware f32", 1.0);
        for (name, spec) in &forms {
            let src = assemble_with_spec(
                &["fmt", "rng", "quant", "softfloat"],
                "softfloat_speed",
                &kernel(soft, false),
                spec,
            );
            let ns = time(&src);
            println!("{op:<20} {name:<28} {ns:>9.3} {:>11.1}x", ns / hw);
        }
    }
}
