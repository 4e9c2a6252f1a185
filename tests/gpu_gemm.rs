//! GPU GEMM against the CPU reference: bit for bit for fixed-point operands and every
//! emulated accumulator; within the standard error bound for fp32 accumulation.

mod common;

use lowp::accum::{Accumulator, GemmSpec};
use lowp::format::Format;
use lowp::gpu::GpuContext;
use lowp::quant::{QuantSpec, Rounding, Scaling};
use lowp::{ops, reference};
use std::sync::OnceLock;

fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| common::gpu().with_max_groups_x(5))
}

struct Case {
    fa: &'static str,
    fb: &'static str,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    bias: bool,
}

/// Runs one GEMM on both sides; returns (gpu output bits, reference result, decoded A, decoded B).
fn run(
    c: &Case,
    spec: &GemmSpec,
    seed: u64,
) -> (Vec<u32>, reference::gemm::GemmResult, Vec<f32>, Vec<f32>) {
    let g = ctx();
    let a_shape = if c.trans_a { [c.k, c.m] } else { [c.m, c.k] };
    let b_shape = if c.trans_b { [c.n, c.k] } else { [c.k, c.n] };
    let qa = QuantSpec {
        scaling: Scaling::None,
        ..QuantSpec::new(c.fa.parse().unwrap())
    };
    let qb = QuantSpec::new(c.fb.parse::<Format>().unwrap());
    let xa = common::uniform(c.m * c.k, seed, 3.0);
    let xb = common::uniform(c.k * c.n, seed + 1, 2.0);
    let bias = c.bias.then(|| common::uniform(c.n, seed + 2, 5.0));
    let (ta, _) = ops::quantize(g, &xa, &a_shape, &qa).unwrap();
    let (tb, _) = ops::quantize(g, &xb, &b_shape, &qb).unwrap();
    let (ra, rb) = (reference::quantize(&xa, &qa), reference::quantize(&xb, &qb));
    let (tc, exc) = ops::gemm(g, &ta, &tb, bias.as_deref(), spec).unwrap();
    assert_eq!(tc.shape(), &[c.m, c.n]);
    let r = reference::gemm::gemm(&ra, &a_shape, &rb, &b_shape, bias.as_deref(), spec).unwrap();
    let words = tc.read_words(g).unwrap();
    if spec.acc != Accumulator::Fp32
        || matches!(
            (c.fa.parse().unwrap(), c.fb.parse().unwrap()),
            (Format::Fixed(_), Format::Fixed(_))
        )
    {
        assert_eq!(
            exc, r.out.exceptions,
            "{} x {}: exception counts",
            c.fa, c.fb
        );
    }
    (
        words,
        r,
        reference::dequantize(&ra),
        reference::dequantize(&rb),
    )
}

const SHAPES: [(usize, usize, usize); 5] = [
    (37, 29, 45),
    (1, 1, 1),
    (65, 3, 1),
    (2, 130, 7),
    (64, 64, 16),
];

#[test]
fn fixed_point_operands_are_exact() {
    for (t, &(m, n, k)) in SHAPES.iter().enumerate() {
        for (fa, fb) in [
            ("fixed(wl=8,fl=4)", "fixed(wl=8,fl=2)"),
            ("fixed(wl=16,fl=10)", "fixed(wl=4,fl=1)"),
            ("fixed(wl=24,fl=20)", "fixed(wl=24,fl=3)"),
        ] {
            let case = Case {
                fa,
                fb,
                m,
                n,
                k,
                trans_a: t % 2 == 1,
                trans_b: t % 3 == 1,
                bias: t % 2 == 0,
            };
            let spec = GemmSpec {
                trans_a: case.trans_a,
                trans_b: case.trans_b,
                ..GemmSpec::new()
            };
            let (gpu, r, _, _) = run(&case, &spec, t as u64);
            assert_eq!(gpu, r.out.words, "{fa} x {fb} {m}x{n}x{k}");
        }
    }
}

#[test]
fn emulated_accumulators_are_bit_exact() {
    let accs = [
        "fp16:1",
        "bf16:4",
        "e5m2:1",
        "float(e=6,m=9):8",
        "fp32:1",
        "e4m3:32",
        "fixed(wl=16,fl=8):2",
    ];
    let ops_fmts = [
        ("e4m3", "e5m2"),
        ("bf16", "bf16"),
        ("mxfp8_e4m3", "fp16"),
        ("fixed(wl=8,fl=4)", "e2m1"),
        ("mxfp4_e2m1", "mxint8"),
        ("nvfp4", "block(elem=e4m3,size=12,scale=e4m3)"),
    ];
    let mut t = 0;
    for acc in accs {
        for (fa, fb) in ops_fmts {
            let (m, n, k) = SHAPES[t % SHAPES.len()];
            let case = Case {
                fa,
                fb,
                m,
                n,
                k: k + 40,
                trans_a: t % 2 == 0,
                trans_b: t % 3 == 0,
                bias: t % 2 == 1,
            };
            let out = if t % 3 == 0 {
                QuantSpec {
                    rounding: Rounding::Stochastic { bits: 12 },
                    seed: t as u64,
                    ..QuantSpec::new("e4m3".parse().unwrap())
                }
            } else {
                QuantSpec::new(Format::FP32)
            };
            let spec = GemmSpec {
                trans_a: case.trans_a,
                trans_b: case.trans_b,
                acc: acc.parse().unwrap(),
                out,
            };
            let (gpu, r, _, _) = run(&case, &spec, 100 + t as u64);
            assert_eq!(
                gpu,
                r.out.words,
                "acc {acc}: {fa} x {fb} {m}x{n}x{}",
                k + 40
            );
            t += 1;
        }
    }
}

#[test]
fn fp32_accumulation_is_within_the_error_bound() {
    // (3, 5, 20000): one output tile and a long K, which the kernel splits across workgroups
    // (split-K); the bound holds for any order of summation.
    // |C - exact| <= gamma_K * sum_k |a||b| (+ |bias| for the bias addition, which is one
    // more rounded addition: gamma_(K+1)), gamma_j = j u / (1 - j u), u = 2^-24. The exact
    // value is the f64 sum of exact f64 products, itself within K 2^-53 sum|a||b|.
    let u = 2f64.powi(-24);
    let mut t = 0;
    for (fa, fb) in [
        ("fp32", "fp32"),
        ("bf16", "e4m3"),
        ("e2m1", "mxfp8_e4m3"),
        ("fixed(wl=8,fl=4)", "fp16"),
        ("float(e=5,m=4)", "mxfp6_e3m2"),
        ("nvfp4", "fp16"),
    ] {
        for &(m, n, k) in SHAPES.iter().chain(&[(70, 66, 300), (3, 5, 20_000)]) {
            let case = Case {
                fa,
                fb,
                m,
                n,
                k,
                trans_a: t % 2 == 1,
                trans_b: t % 3 == 2,
                bias: t % 2 == 0,
            };
            let spec = GemmSpec {
                trans_a: case.trans_a,
                trans_b: case.trans_b,
                ..GemmSpec::new()
            };
            let (gpu, r, va, vb) = run(&case, &spec, 200 + t);
            let bias = case.bias.then(|| common::uniform(n, 200 + t + 2, 5.0));
            let gamma = |j: usize| j as f64 * u / (1.0 - j as f64 * u);
            for i in 0..m {
                for j in 0..n {
                    let (mut exact, mut mag) = (0f64, 0f64);
                    for kk in 0..k {
                        let a = va[if case.trans_a { kk * m + i } else { i * k + kk }] as f64;
                        let b = vb[if case.trans_b { j * k + kk } else { kk * n + j }] as f64;
                        exact += a * b;
                        mag += (a * b).abs();
                    }
                    let bj = bias.as_ref().map_or(0.0, |b| b[j] as f64);
                    let bound = gamma(k + 1) * (mag + bj.abs()) + k as f64 * 2f64.powi(-53) * mag;
                    let got = f32::from_bits(gpu[i * n + j]) as f64;
                    assert!(
                        (got - exact - bj).abs() <= bound,
                        "{fa} x {fb} {m}x{n}x{k} C[{i},{j}] = {got}, exact {}, bound {bound}",
                        exact + bj
                    );
                    let reference = r.c[i * n + j] as f64;
                    assert!(
                        (reference - exact - bj).abs() <= bound,
                        "reference outside the bound"
                    );
                }
            }
            t += 1;
        }
    }
}

#[test]
fn bad_gemms_are_errors() {
    let g = ctx();
    let q = QuantSpec::new(Format::FP32);
    let (a, _) = ops::quantize(g, &[1.0; 6], &[2, 3], &q).unwrap();
    let (b, _) = ops::quantize(g, &[1.0; 8], &[4, 2], &q).unwrap();
    let e = ops::gemm(g, &a, &b, None, &GemmSpec::new()).err().unwrap();
    assert!(e.to_string().contains("inner dimensions"), "{e}");
    let (v, _) = ops::quantize(g, &[1.0; 3], &[3], &q).unwrap();
    let e = ops::gemm(g, &v, &a, None, &GemmSpec::new()).err().unwrap();
    assert!(e.to_string().contains("2-D"), "{e}");
    let (bt, _) = ops::quantize(g, &[1.0; 6], &[3, 2], &q).unwrap();
    let e = ops::gemm(g, &a, &bt, Some(&[1.0; 3]), &GemmSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("bias"), "{e}");
    let wide = QuantSpec::new("fixed(wl=32,fl=0)".parse().unwrap());
    let (wa, _) = ops::quantize(g, &[1.0; 6], &[2, 3], &wide).unwrap();
    let (wb, _) = ops::quantize(g, &[1.0; 6], &[3, 2], &wide).unwrap();
    let e = ops::gemm(g, &wa, &wb, None, &GemmSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("64-bit"), "{e}");
    assert!("mxfp8_e4m3:4".parse::<Accumulator>().is_err());
    assert!("fp16:0".parse::<Accumulator>().is_err());
    assert_eq!(
        "bf16:8".parse::<Accumulator>().unwrap().to_string(),
        "bf16:8"
    );
    assert_eq!(
        "float(e=5,m=4)".parse::<Accumulator>().unwrap().to_string(),
        "float(e=5,m=4):1"
    );
}

#[test]
fn eight_bit_fixed_point_takes_the_dot4_kernel() {
    use lowp::accum::GemmMode;
    use lowp::ops::gemm::{GemmView, Kernel};
    let f = |t: &str| t.parse::<Format>().unwrap();
    let view = |a: &str, b: &str, k: usize| {
        GemmView::new("gemm", GemmMode::ExactInteger, &f(a), &f(b), (4, 4, k)).kernel
    };
    assert_eq!(
        view("fixed(wl=8,fl=4)", "fixed(wl=8,fl=0)", 1000),
        Kernel::TiledI8
    );
    assert_eq!(
        view("fixed(wl=5,fl=4)", "fixed(wl=3,fl=0)", 1000),
        Kernel::TiledI8
    );
    // K 2^7 2^7 >= 2^31 would overflow the i32 sums: the 64-bit kernel takes it.
    assert_eq!(
        view("fixed(wl=8,fl=4)", "fixed(wl=8,fl=0)", 1 << 17),
        Kernel::PerElement
    );
    assert_eq!(
        view("fixed(wl=16,fl=4)", "fixed(wl=8,fl=0)", 10),
        Kernel::PerElement
    );
}

#[test]
fn every_tiling_gives_the_same_exact_results_and_stays_in_bound() {
    use lowp::gpu::tiles::Tiles;
    let odd = Tiles {
        tm: 48,
        tn: 40,
        tk: 12,
        rm: 3,
        rn: 5,
    };
    for tiles in [Tiles::SMALL, Tiles::MEDIUM, Tiles::LARGE, odd] {
        let g = common::gpu()
            .with_gemm_panels(false)
            .with_tiles(tiles)
            .unwrap();
        assert_eq!(g.tiles(), tiles);
        for (fa, fb, (m, n, k)) in [
            ("fixed(wl=8,fl=4)", "fixed(wl=6,fl=2)", (131, 77, 203)),
            ("e4m3", "bf16", (97, 130, 61)),
        ] {
            let (qa, qb) = (
                QuantSpec::new(fa.parse().unwrap()),
                QuantSpec::new(fb.parse().unwrap()),
            );
            let (xa, xb) = (
                common::uniform(m * k, 1, 3.0),
                common::uniform(k * n, 2, 2.0),
            );
            let bias = common::uniform(n, 3, 1.0);
            let (ta, _) = ops::quantize(&g, &xa, &[m, k], &qa).unwrap();
            let (tb, _) = ops::quantize(&g, &xb, &[k, n], &qb).unwrap();
            let (tc, _) = ops::gemm(&g, &ta, &tb, Some(&bias), &GemmSpec::new()).unwrap();
            let (ra, rb) = (reference::quantize(&xa, &qa), reference::quantize(&xb, &qb));
            let r =
                reference::gemm::gemm(&ra, &[m, k], &rb, &[k, n], Some(&bias), &GemmSpec::new())
                    .unwrap();
            let got = tc.read_words(&g).unwrap();
            if fa.starts_with("fixed") {
                assert_eq!(got, r.out.words, "{tiles:?}: exact integer GEMM differs");
            } else {
                // Both are fp32 sums of the same exact products in different orders: each is
                // within gamma_(K+1) (sum |a||b| + |bias|) of the exact value, so within twice that of each other.
                let (va, vb) = (reference::dequantize(&ra), reference::dequantize(&rb));
                let u = 2f64.powi(-24);
                let gamma = (k + 1) as f64 * u / (1.0 - (k + 1) as f64 * u);
                for i in 0..m {
                    for j in 0..n {
                        let mag: f64 = (0..k)
                            .map(|kk| (va[i * k + kk] as f64 * vb[kk * n + j] as f64).abs())
                            .sum::<f64>()
                            + (bias[j] as f64).abs();
                        let (x, y) = (f32::from_bits(got[i * n + j]) as f64, r.c[i * n + j] as f64);
                        assert!(
                            (x - y).abs() <= 2.0 * gamma * mag,
                            "{tiles:?} C[{i},{j}]: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
    let g = common::gpu();
    assert!(
        g.with_tiles(Tiles {
            tm: 64,
            tn: 64,
            tk: 6,
            rm: 4,
            rn: 4
        })
        .is_err(),
        "tk must be a multiple of 4"
    );
}

/// Exact and emulated accumulation over K = 70,000 products: longer than a CPU adapter lets
/// one invocation loop (65,535), so the sum runs in passes that carry their state; chunk 7
/// straddles the pass boundary. Bit for bit with the reference.
#[test]
fn per_element_sums_longer_than_a_cpu_adapters_loop_limit() {
    let bf16: Format = "bf16".parse().unwrap();
    let fp16: Format = "fp16".parse().unwrap();
    for (fa, fb, acc) in [
        (
            "e4m3",
            "e4m3",
            Accumulator::Emulated {
                format: fp16,
                chunk: 7,
            },
        ),
        (
            "fixed(wl=12,fl=6)",
            "fixed(wl=12,fl=6)",
            Accumulator::Emulated {
                format: bf16,
                chunk: 1,
            },
        ),
        ("fixed(wl=16,fl=8)", "fixed(wl=16,fl=8)", Accumulator::Fp32),
    ] {
        let c = Case {
            m: 3,
            n: 2,
            k: 70_000,
            fa,
            fb,
            trans_a: false,
            trans_b: true,
            bias: true,
        };
        let spec = GemmSpec {
            trans_a: c.trans_a,
            trans_b: c.trans_b,
            acc,
            out: QuantSpec::new(Format::FP32),
        };
        let (words, r, _, _) = run(&c, &spec, 11);
        assert_eq!(words, r.out.words, "{fa} x {fb}, {acc:?}");
    }
}

/// Staging f16-exact operands as f16 (SHADER_F16) gives the f32 kernel's bits exactly:
/// GEMMs and a convolution view, with and without split-K; formats f16 cannot hold exactly
/// (bf16, MX) keep the f32 kernel.
#[test]
fn f16_staging_equals_f32_staging() {
    let on = common::gpu().with_gemm_panels(false);
    assert!(
        on.f16_staging(),
        "this adapter lacks SHADER_F16 (or LOWP_GEMM_F16=0 is set), so f16 staging cannot be \
         checked; lavapipe and most GPUs have it"
    );
    let off = common::gpu()
        .with_gemm_panels(false)
        .with_f16_staging(false);
    for (fa, fb, exact) in [
        ("e4m3", "e3m2", true),
        ("e2m1", "fixed(wl=8,fl=4)", true),
        ("e5m2", "e4m3", false), // e5m2's subnormals are f16 subnormals, which may flush
        ("bf16", "e4m3", false),
        ("mxfp8_e4m3", "e4m3", false),
    ] {
        let (qa, qb) = (
            QuantSpec::new(fa.parse().unwrap()),
            QuantSpec::new(fb.parse().unwrap()),
        );
        assert_eq!(
            lowp::ops::gemm::f16_exact(&qa) && lowp::ops::gemm::f16_exact(&qb),
            exact,
            "{fa} x {fb}"
        );
        for (m, n, k) in [(37, 29, 45), (3, 5, 20_000), (64, 64, 16)] {
            let xa = common::uniform(m * k, 5, 3.0);
            let xb = common::uniform(k * n, 6, 2.0);
            let spec = GemmSpec {
                trans_a: false,
                trans_b: true,
                acc: Accumulator::Fp32,
                out: QuantSpec::new(Format::FP32),
            };
            let result = |c: &GpuContext| {
                let (ta, _) = ops::quantize(c, &xa, &[m, k], &qa).unwrap();
                let (tb, _) = ops::quantize(c, &xb, &[n, k], &qb).unwrap();
                let (tc, _) = ops::gemm(c, &ta, &tb, None, &spec).unwrap();
                tc.read_words(c).unwrap()
            };
            assert_eq!(result(&on), result(&off), "{fa} x {fb}, {m}x{n}x{k}");
        }
    }
}

/// Reading operands in 16-byte groups gives the bits of value-by-value staging: every
/// transpose, 4-, 8-, 16- and 32-bit codes, MX blocks, a 6-bit format and shapes that are
/// not multiples of four (which stage value by value), buffers shorter than one 16-byte
/// vector, and split-K.
#[test]
fn vector_loads_equal_value_by_value_staging() {
    let on = common::gpu().with_gemm_panels(false);
    assert!(
        on.vector_loads(),
        "LOWP_GEMM_VEC=0 turns off what this test checks"
    );
    let off = common::gpu()
        .with_gemm_panels(false)
        .with_vector_loads(false);
    let (mut grouped, mut directions) = (0, [false; 6]);
    for (fa, fb) in [
        ("fp32", "fp32"),
        ("bf16", "e4m3"),
        ("e2m1", "fixed(wl=8,fl=4)"),
        ("mxfp8_e4m3", "mxfp4_e2m1"),
        ("e3m2", "fp16"),
        ("nvfp4", "block(elem=e2m1,size=8,scale=e8m0)"),
    ] {
        let (qa, qb) = (
            QuantSpec::new(fa.parse().unwrap()),
            QuantSpec::new(fb.parse().unwrap()),
        );
        // (3, 4, 4) and (4, 4, 12): 16-bit A of 24 bytes and 4-bit operands of 24 bytes end
        // inside their second 16-byte vector, which the kernel reads value by value.
        let shapes = [
            (36, 28, 64),
            (1, 4, 4),
            (3, 4, 4),
            (4, 4, 12),
            (37, 29, 45),
            (4, 8, 8192),
        ];
        for (m, n, k) in shapes {
            for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
                let xa = common::uniform(m * k, 5, 3.0);
                let xb = common::uniform(k * n, 6, 2.0);
                let spec = GemmSpec {
                    trans_a,
                    trans_b,
                    acc: Accumulator::Fp32,
                    out: QuantSpec::new(Format::FP32),
                };
                let sa = if trans_a { [k, m] } else { [m, k] };
                let sb = if trans_b { [n, k] } else { [k, n] };
                let result = |c: &GpuContext| {
                    let (ta, _) = ops::quantize(c, &xa, &sa, &qa).unwrap();
                    let (tb, _) = ops::quantize(c, &xb, &sb, &qb).unwrap();
                    let (view, _, _) =
                        lowp::ops::gemm::prepare_gemm(&ta, &tb, None, &spec).unwrap();
                    let (tc, _) = ops::gemm(c, &ta, &tb, None, &spec).unwrap();
                    (view.groups, tc.read_words(c).unwrap())
                };
                let ((groups, got), (_, want)) = (result(&on), result(&off));
                grouped += groups.iter().filter(|&&g| g != 0).count();
                directions[groups[0] as usize] = true;
                directions[3 + groups[1] as usize] = true;
                let differ = got.iter().zip(&want).filter(|(g, w)| g != w).count();
                assert!(
                    got.len() == want.len() && differ == 0,
                    "{fa} x {fb}, {m}x{n}x{k}, trans {trans_a}/{trans_b}, groups {groups:?}: \
                     {differ} of {} outputs differ",
                    want.len()
                );
            }
        }
    }
    // Most operands above are read in groups, both operands in both directions: the
    // comparison is not vacuous.
    assert!(grouped >= 40, "only {grouped} operands were read in groups");
    assert_eq!(directions, [true; 6], "A: none/K/M, B: none/K/N");
}
