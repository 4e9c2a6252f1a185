//! fp32-accumulated GEMMs and convolutions checked exactly: operands are small integers
//! (or e2m1 values, multiples of 1/2), so every product is a multiple of 1/4 and every
//! partial sum, in any order, is a multiple of 1/4 below 2^22 in magnitude: exact in f32.
//! Whatever order a tiling, split-K, f16 staging or vector loads add the products in, the
//! GPU must then equal the f64 product bit for bit. Dropping, doubling or misplacing a
//! single product changes the result, which the error-bound tests cannot see. These are
//! the workgroup-tiled kernels (chosen here on every adapter); the panel kernel of CPU
//! adapters has the same kind of test in tests/gpu_gemm_kernels.rs.

mod common;

use lowp::accum::{Accumulator, GemmSpec};
use lowp::conv::{Conv2dSpec, ConvPass};
use lowp::format::Format;
use lowp::gpu::GpuContext;
use lowp::gpu::tiles::Tiles;
use lowp::ops;
use lowp::ops::gemm::{f16_exact, k_splits, prepare_gemm, vector_staging};
use lowp::quant::{QuantSpec, Scaling};

/// The e2m1 grid: every value an FP4 E2M1 code holds.
const E2M1: [f32; 15] = [
    -6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
];

/// `n` values exactly representable in `format`: e2m1 grid values for 4-bit floats,
/// integers in [-3, 3] otherwise (exact in every other format used here).
fn exact_values(format: &str, n: usize, seed: u64) -> Vec<f32> {
    common::uniform(n, seed, 1.0)
        .into_iter()
        .map(|u| {
            let r = ((u + 1.0) * 0.5 * 7.0).floor().clamp(0.0, 6.0) as usize;
            if format == "e2m1" {
                E2M1[((u + 1.0) * 0.5 * 15.0).floor().clamp(0.0, 14.0) as usize]
            } else {
                r as f32 - 3.0
            }
        })
        .collect()
}

/// The f64 product op(A) op(B) + bias of row-major operands, checked exact in f32.
#[allow(clippy::too_many_arguments)]
fn exact_product(
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
) -> Vec<u32> {
    let mut c = vec![0u32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.get(j).copied().unwrap_or(0.0) as f64;
            for kk in 0..k {
                let x = if trans_a {
                    a[kk * m + i]
                } else {
                    a[i * k + kk]
                };
                let y = if trans_b {
                    b[j * k + kk]
                } else {
                    b[kk * n + j]
                };
                s += x as f64 * y as f64;
            }
            // Multiples of 1/4 below 2^22: exact in f32, so the cast loses nothing.
            assert!(s.abs() < (1 << 22) as f64 && (s * 4.0).fract() == 0.0);
            c[i * n + j] = (s as f32).to_bits();
        }
    }
    c
}

/// What one GEMM exercised: f16 staging, vector loads, split-K.
#[derive(Default)]
struct Seen {
    f16: usize,
    vector: usize,
    split: usize,
    gemms: usize,
}

/// Runs one GEMM on `ctx` and asserts it equals the exact product bit for bit.
#[allow(clippy::too_many_arguments)]
fn check(
    ctx: &GpuContext,
    (fa, fb): (&str, &str),
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    bias: bool,
    seed: u64,
    seen: &mut Seen,
    what: &str,
) {
    let q = |f: &str| QuantSpec {
        scaling: Scaling::None,
        ..QuantSpec::new(f.parse().unwrap())
    };
    let (qa, qb) = (q(fa), q(fb));
    let xa = exact_values(fa, m * k, seed);
    let xb = exact_values(fb, k * n, seed + 1);
    let bias = bias.then(|| exact_values("fp32", n, seed + 2));
    let sa = if trans_a { [k, m] } else { [m, k] };
    let sb = if trans_b { [n, k] } else { [k, n] };
    let spec = GemmSpec {
        trans_a,
        trans_b,
        acc: Accumulator::Fp32,
        out: QuantSpec::new(Format::FP32),
    };
    let (ta, _) = ops::quantize(ctx, &xa, &sa, &qa).unwrap();
    let (tb, _) = ops::quantize(ctx, &xb, &sb, &qb).unwrap();
    let (view, _, _) = prepare_gemm(&ta, &tb, bias.as_ref().map(Vec::len), &spec).unwrap();
    seen.gemms += 1;
    seen.f16 += (ctx.f16_staging() && f16_exact(&qa) && f16_exact(&qb)) as usize;
    seen.vector += (vector_staging(ctx, &view, &ta, &tb) != [0, 0]) as usize;
    seen.split += (k_splits(ctx, &view) > 1) as usize;
    let (tc, _) = ops::gemm(ctx, &ta, &tb, bias.as_deref(), &spec).unwrap();
    let got = tc.read_words(ctx).unwrap();
    let want = exact_product(
        &xa,
        &xb,
        bias.as_deref().unwrap_or(&[]),
        (m, n, k),
        trans_a,
        trans_b,
    );
    let differ: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    if let Some(&i) = differ.first() {
        panic!(
            "{what}: {fa} x {fb}, {m}x{n}x{k}, trans {trans_a}/{trans_b}: {} of {} outputs \
             differ from the exact product; C[{i}] = {} want {}",
            differ.len(),
            want.len(),
            f32::from_bits(got[i]),
            f32::from_bits(want[i])
        );
    }
}

/// [`check`] over several transposes, with bias.
fn check_all(
    ctx: &GpuContext,
    pair: (&str, &str),
    shape: (usize, usize, usize),
    transposes: &[(bool, bool)],
    seen: &mut Seen,
    what: &str,
) {
    for &trans in transposes {
        check(ctx, pair, shape, trans, true, 9, seen, what);
    }
}

/// A test context with f16 staging as asked, failing (not skipping) where the adapter
/// cannot stage in f16.
fn context(tiles: Tiles, f16: bool, vector: bool) -> GpuContext {
    let c = common::gpu().with_gemm_panels(false);
    assert!(
        c.f16_staging() || !f16,
        "this adapter lacks SHADER_F16, so f16 staging cannot be checked; \
         run on an adapter with it (lavapipe has it) or unset LOWP_GEMM_F16"
    );
    assert!(
        c.vector_loads() || !vector,
        "LOWP_GEMM_VEC=0 turns off the vector loads this test checks"
    );
    c.with_tiles(tiles)
        .unwrap()
        .with_f16_staging(f16)
        .with_vector_loads(vector)
}

/// Every tile preset (and an odd tiling), f16 staging on and off, vector loads on and
/// off: every transpose, with bias, on shapes that fill tiles and shapes that do not.
#[test]
fn every_tiling_and_staging_equals_the_exact_product() {
    let odd = Tiles {
        tm: 48,
        tn: 40,
        tk: 12,
        rm: 3,
        rn: 5,
    };
    let mut seen = Seen::default();
    for tiles in [Tiles::SMALL, Tiles::MEDIUM, Tiles::LARGE, odd] {
        for (f16, vector) in [(true, true), (true, false), (false, true), (false, false)] {
            let c = context(tiles, f16, vector);
            let what = format!("tiles {tiles:?}, f16 {f16}, vector loads {vector}");
            let transposes = [(false, false), (false, true), (true, false), (true, true)];
            for (p, pair) in [("fp32", "fp32"), ("e2m1", "e2m1"), ("bf16", "e2m1")]
                .into_iter()
                .enumerate()
            {
                // Every transpose of the first shape; one each, in turn, of the others.
                check_all(&c, pair, (37, 29, 45), &transposes, &mut seen, &what);
                for (s, shape) in [(64, 64, 16), (36, 28, 64), (131, 77, 203)]
                    .into_iter()
                    .enumerate()
                {
                    let trans = transposes[(s + p) % 4];
                    check(
                        &c,
                        pair,
                        shape,
                        trans,
                        s % 2 == 0,
                        s as u64,
                        &mut seen,
                        &what,
                    );
                }
            }
        }
    }
    // The comparisons reached what they claim to: f16 staging in a sixth of the GEMMs
    // (e2m1 x e2m1 with staging on), vector loads in 48 (shapes with a dimension of 4k, loads
    // on), split-K in some.
    assert!(
        seen.f16 * 6 == seen.gemms,
        "{} of {} staged in f16",
        seen.f16,
        seen.gemms
    );
    assert!(
        seen.vector >= 40,
        "only {} GEMMs used vector loads",
        seen.vector
    );
    assert!(seen.split > 0, "no GEMM here was split along K");
}

/// K = 20,000 over 3 x 5 outputs: the fp32 kernel splits K across workgroups and a second
/// pass adds the slices; every preset, both staging kinds, both operand kinds.
#[test]
fn split_k_equals_the_exact_product() {
    let mut seen = Seen::default();
    for tiles in [Tiles::SMALL, Tiles::MEDIUM, Tiles::LARGE] {
        for (f16, vector) in [(true, true), (false, false)] {
            let c = context(tiles, f16, vector);
            let what = format!("split-K, tiles {tiles:?}, f16 {f16}, vector loads {vector}");
            for pair in [("fp32", "fp32"), ("e2m1", "e2m1")] {
                for trans in [(false, true), (true, false)] {
                    let before = seen.split;
                    check(&c, pair, (3, 5, 20_000), trans, true, 7, &mut seen, &what);
                    assert_eq!(seen.split, before + 1, "{what}: K = 20,000 was not split");
                }
            }
        }
    }
}

/// The thin view of LeNet's first convolution as a GEMM, 6 x 12544 x 400: reshaped tiles.
#[test]
fn thin_view_equals_the_exact_product() {
    let c = common::gpu().with_gemm_panels(false);
    let fitted = c.tiles().fit(6, 12544, &c.device.limits());
    assert!(fitted.tm < c.tiles().tm, "6 x 12544 did not get thin tiles");
    let mut seen = Seen::default();
    for pair in [("fp32", "fp32"), ("e2m1", "bf16")] {
        check(
            &c,
            pair,
            (6, 12544, 400),
            (false, false),
            true,
            3,
            &mut seen,
            "thin view",
        );
    }
}

/// Convolution backward-weight at K = 6,400 (split-K), against exact f64 sums of the
/// direct loops; forward and backward-data of the same geometry too.
#[test]
fn split_k_convolution_backward_weight_is_exact() {
    let c = common::gpu().with_gemm_panels(false);
    let spec = Conv2dSpec {
        padding: [1, 1],
        ..Conv2dSpec::new()
    };
    let (xs, ws) = ([4, 2, 40, 40], [3, 2, 3, 3]);
    let g = spec.geometry(&xs, &ws).unwrap();
    let ys = [g.batch, g.cout, g.oh, g.ow];
    for (fx, fw, fdy) in [("fp32", "fp32", "fp32"), ("e2m1", "bf16", "e2m1")] {
        let x = exact_values(fx, xs.iter().product(), 1);
        let w = exact_values(fw, ws.iter().product(), 2);
        let dy = exact_values(fdy, ys.iter().product(), 3);
        let q = |f: &str| QuantSpec::new(f.parse().unwrap());
        let (tx, _) = ops::quantize(&c, &x, &xs, &q(fx)).unwrap();
        let (tw, _) = ops::quantize(&c, &w, &ws, &q(fw)).unwrap();
        let (tdy, _) = ops::quantize(&c, &dy, &ys, &q(fdy)).unwrap();
        for pass in [
            ConvPass::Forward,
            ConvPass::BackwardData,
            ConvPass::BackwardWeight,
        ] {
            let (a, b) = match pass {
                ConvPass::Forward => (&tw, &tx),
                ConvPass::BackwardData => (&tw, &tdy),
                ConvPass::BackwardWeight => (&tdy, &tx),
            };
            let (view, _) = ops::conv::prepare_conv(pass, &g, a, b, None, &spec).unwrap();
            if pass == ConvPass::BackwardWeight {
                assert_eq!(view.k, 6400);
                assert!(k_splits(&c, &view) > 1, "K = 6,400 was not split");
            }
            let (out, _) = match pass {
                ConvPass::Forward => ops::conv2d_forward(&c, &tx, &tw, None, &spec),
                ConvPass::BackwardData => {
                    ops::conv2d_backward_data(&c, &tdy, &tw, [g.h, g.w], &spec)
                }
                ConvPass::BackwardWeight => {
                    ops::conv2d_backward_weight(&c, &tdy, &tx, [g.kh, g.kw], &spec)
                }
            }
            .unwrap();
            let (exact, _) = lowp::reference::conv::conv2d_direct(pass, &g, &x, &w, &dy);
            let got = out.read_words(&c).unwrap();
            for (i, &e) in exact.iter().enumerate() {
                assert!(e.abs() < (1 << 22) as f64 && (e * 4.0).fract() == 0.0);
                assert_eq!(
                    got[i],
                    (e as f32).to_bits(),
                    "{pass:?} {fx}/{fw}/{fdy}: output {i} is {} not {e}",
                    f32::from_bits(got[i])
                );
            }
        }
    }
}

/// dot4I8Packed sums in i32: the host takes it while K 2^(wa-1) 2^(wb-1) < 2^31. At the
/// last K it allows (2^17 - 1 for 8-bit operands), the extreme codes -128 and 127 reach
/// sums within 16,384 of the i32 limits; one more K must go to the 64-bit kernel. Every
/// result is the exact integer rounded once to f32.
#[test]
fn dot4_at_the_edge_of_its_i32_range_is_exact() {
    use lowp::ops::gemm::Kernel;
    let c = common::gpu().with_gemm_panels(false);
    let q = QuantSpec::new("fixed(wl=8,fl=0)".parse().unwrap());
    // Rows of A: all -128, all 127, alternating; columns of B (stored [N, K]): all -128,
    // all 127, alternating the other way.
    let row = |r: usize, kk: usize| match r {
        0 => -128.0,
        1 => 127.0,
        _ if kk.is_multiple_of(2) => -128.0,
        _ => 127.0,
    };
    for (k, kernel) in [
        ((1 << 17) - 1, Kernel::TiledI8),
        (1 << 17, Kernel::PerElement),
    ] {
        let a: Vec<f32> = (0..3 * k).map(|i| row(i / k, i % k)).collect();
        let b: Vec<f32> = (0..3 * k)
            .map(|i| row(i / k, i % k + (i / k == 2) as usize))
            .collect();
        let spec = GemmSpec {
            trans_a: false,
            trans_b: true,
            acc: Accumulator::Fp32,
            out: QuantSpec::new(Format::FP32),
        };
        let (ta, _) = ops::quantize(&c, &a, &[3, k], &q).unwrap();
        let (tb, _) = ops::quantize(&c, &b, &[3, k], &q).unwrap();
        let (view, _, _) = prepare_gemm(&ta, &tb, None, &spec).unwrap();
        assert_eq!(view.kernel, kernel, "K = {k}");
        let (tc, _) = ops::gemm(&c, &ta, &tb, None, &spec).unwrap();
        let got = tc.read_words(&c).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: i64 = (0..k)
                    .map(|kk| a[i * k + kk] as i64 * b[j * k + kk] as i64)
                    .sum();
                if k < 1 << 17 {
                    // Within i32, and at the edge of it for -128 x -128.
                    assert!((-(1 << 31)..1 << 31).contains(&s), "{s}");
                    if i == 0 && j == 0 {
                        assert_eq!(s, (1 << 31) - 16_384);
                    }
                }
                assert_eq!(
                    got[i * 3 + j],
                    (s as f32).to_bits(),
                    "K = {k}, C[{i},{j}] = {} want {s}",
                    f32::from_bits(got[i * 3 + j])
                );
            }
        }
    }
}

/// A long K over enough output tiles that split-K does not cut it (128 x 128, 16 tiles of
/// 32 x 32 on a CPU adapter): llvmpipe ends a loop after 65,535 iterations, nested ones
/// counted, which once dropped the tail of K = 70,000 silently. Passes or slices bounded
/// in depth keep every product.
#[test]
fn long_k_over_many_tiles_equals_the_exact_product() {
    let c = common::gpu().with_gemm_panels(false);
    let mut seen = Seen::default();
    for pair in [("fp32", "fp32"), ("e2m1", "e2m1")] {
        check(
            &c,
            pair,
            (128, 128, 70_000),
            (false, true),
            false,
            1,
            &mut seen,
            "long K",
        );
    }
}
