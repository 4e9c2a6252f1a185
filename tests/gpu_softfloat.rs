//! The WGSL soft-float (`shaders/lib/softfloat.wgsl`) applied element by element on the GPU,
//! equal bit for bit to its twin `src/softfloat.rs`: add, mul, div, sqrt, exp and expm1 over the
//! operands of tests/softfloat.rs (subnormals, signed zeros, Inf, NaN, near-ties) paired in
//! windows, plus random pairs, about a million in all. The emulated accumulators, the
//! loss, batch norm and the optimizers rest on these functions; a device that flushes
//! subnormals or contracts to FMA must not change a bit of them.

mod common;

use lowp::gpu::f64_probe::soft_float_pairs;
use lowp::gpu::specialise::Specialisation;
use lowp::softfloat;

/// A soft-float function of one or two f32 bit patterns.
type Function = fn(u32, u32) -> u32;

/// The functions as WGSL expressions of a pair (a, b), with their twins.
/// `add` and `mul` take the hardware's result where it is exact; `add_exact` and
/// `mul_exact` are their integer paths alone, on every operand.
const FUNCTIONS: [(&str, &str, Function); 8] = [
    ("add", "sf_add(a, b)", softfloat::add),
    ("mul", "sf_mul(a, b)", softfloat::mul),
    ("div", "sf_div(a, b)", softfloat::div),
    ("sqrt", "sf_sqrt(a)", |a, _| softfloat::sqrt(a)),
    ("exp", "sf_exp(a)", |a, _| softfloat::exp(a)),
    ("expm1", "sf_expm1(a)", |a, _| softfloat::expm1(a)),
    ("add_exact", "sf_add_exact(a, b)", softfloat::add),
    ("mul_exact", "sf_mul_exact(a, b)", softfloat::mul),
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
    // lavapipe keeps subnormals through f64 (CI's device): unless LOWP_SOFTFLOAT chooses a
    // form, its probe must take the device's conversions, so that a fault in that form
    // fails here rather than going unnoticed as a probe's refusal.
    let chosen = std::env::var("LOWP_SOFTFLOAT").is_ok_and(|v| !v.is_empty());
    if ctx.info.name.starts_with("llvmpipe") && ctx.f64_softfloat() && !chosen {
        assert!(
            ctx.f64_subnormals(),
            "the f64 probe refused the device's conversions on lavapipe"
        );
    }
    if ctx.f64_subnormals() {
        forms.push(("f64, the device's conversions", form(false, true, true)));
    }
    // Every function in one kernel a form, one dispatch over the pairs.
    let steps: Vec<&str> = FUNCTIONS.iter().map(|f| f.1).collect();
    for (form_name, form) in &forms {
        let results = soft_float_pairs(&ctx, &steps, form, (&a, &b))
            .unwrap()
            .expect("the device compiles the soft-float kernel");
        for ((name, _, twin), got) in FUNCTIONS.iter().zip(&results) {
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

#[test]
fn pair_runner_reads_each_step_at_its_place_for_any_count() {
    // Buffers hold whole vectors of four words: counts of 1, 3 and 5 pairs with two steps
    // put each step's results where the host reads them.
    let ctx = common::gpu();
    for n in [1usize, 3, 5] {
        let a: Vec<u32> = (0..n).map(|i| (1.5f32 + i as f32).to_bits()).collect();
        let b: Vec<u32> = (0..n)
            .map(|i| (0.25f32 * (i + 1) as f32).to_bits())
            .collect();
        let got = soft_float_pairs(
            &ctx,
            &["sf_add(a, b)", "sf_mul(a, b)"],
            &Specialisation::default(),
            (&a, &b),
        )
        .unwrap()
        .expect("the device compiles the soft-float kernel");
        for i in 0..n {
            assert_eq!(got[0][i], softfloat::add(a[i], b[i]), "{n} pairs, sum {i}");
            assert_eq!(
                got[1][i],
                softfloat::mul(a[i], b[i]),
                "{n} pairs, product {i}"
            );
        }
    }
}
