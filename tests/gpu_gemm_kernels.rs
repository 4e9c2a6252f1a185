//! Every kernel that sums in f32 (the workgroup-tiled one, decoded panels, and panels cut
//! into small blocks and K chunks) against the CPU reference, bit for bit, on operands
//! whose every product and partial sum is exact in f32 (small integers): any order of
//! summation then gives the exact sum, so a wrong index, a lost or doubled block, slice or
//! padding value shows as a wrong bit. GEMMs with every transpose (K beyond llvmpipe's
//! loop limit included) and convolutions of every pass, plain and grouped.

mod common;

use lowp::accum::GemmSpec;
use lowp::conv::{Conv2dSpec, ConvPass};
use lowp::gpu::GpuContext;
use lowp::quant::QuantSpec;
use lowp::{ops, reference};

/// The contexts under test: tiled (this adapter's tiles, and a discrete GPU's 8 x 8
/// register tiles), panels (in textures on a CPU adapter), panels of at most 4096 words in
/// storage buffers.
fn contexts() -> Vec<(&'static str, GpuContext)> {
    let large = lowp::gpu::tiles::Tiles::LARGE;
    vec![
        ("tiled", common::gpu().with_gemm_panels(false)),
        (
            "tiled 8 x 8",
            common::gpu()
                .with_gemm_panels(false)
                .with_tiles(large)
                .unwrap(),
        ),
        ("panels", common::gpu().with_gemm_panels(true)),
        (
            "small panels",
            common::gpu()
                .with_gemm_panels(true)
                .with_panel_textures(false)
                .with_panel_words(4096)
                .with_max_groups_x(7),
        ),
    ]
}

/// Operands in formats `fa` and `fb`, and a GEMM rounding its output to `fc`.
fn specs(fa: &str, fb: &str, fc: &str) -> (QuantSpec, QuantSpec, GemmSpec) {
    let q = |f: &str| QuantSpec::new(f.parse().unwrap());
    let spec = GemmSpec {
        out: q(fc),
        ..GemmSpec::new()
    };
    (q(fa), q(fb), spec)
}

/// `n` integers in [-r, r] (as f32), from `seed`.
fn ints(n: usize, seed: u64, r: i32) -> Vec<f32> {
    common::uniform(n, seed, r as f32 + 0.499)
        .into_iter()
        .map(f32::round)
        .collect()
}

/// GEMMs of integers on each context from `contexts()[kernels]`: every partial sum exact.
fn gemms_of_integers(kernels: std::ops::Range<usize>) {
    // |sum| <= K * 4 * 3 < 2^24 for K < 1.3M: every partial sum is an exact f32.
    let shapes = [
        (1, 1, 1),
        (6, 25, 3000),    // thin and deep, like a convolution's weight gradient
        (6, 5000, 25),    // wide, like a forward convolution
        (67, 45, 33),     // edges in every direction
        (130, 9, 70_000), // K past the 65,535-iteration loop limit
        (3, 200, 1),
    ];
    for (name, ctx) in &contexts()[kernels] {
        for (t, &shape) in shapes.iter().enumerate() {
            check_gemm(name, ctx, shape, t);
        }
    }
}

#[test]
fn gemms_of_integers_are_exact_with_the_tiled_kernel() {
    gemms_of_integers(0..2);
}

#[test]
fn gemms_of_integers_are_exact_with_the_panel_kernel() {
    gemms_of_integers(2..4);
}

/// One GEMM of integers (transposes and operands from `t`) against the CPU reference, in
/// fp32 and in E4M3 and 4-bit fixed point operands.
fn check_gemm(name: &str, ctx: &GpuContext, (m, n, k): (usize, usize, usize), t: usize) {
    let (ta_, tb_) = (t % 2 == 1, !t.is_multiple_of(3));
    for (fa, fb, fc) in [
        ("fp32", "fp32", "fp32"),
        ("e4m3", "fixed(wl=4,fl=0)", "e4m3"),
    ] {
        let spec = GemmSpec {
            trans_a: ta_,
            trans_b: tb_,
            out: QuantSpec::new(fc.parse().unwrap()),
            ..GemmSpec::new()
        };
        let a_shape = if ta_ { [k, m] } else { [m, k] };
        let b_shape = if tb_ { [n, k] } else { [k, n] };
        let (xa, xb) = (ints(m * k, t as u64, 4), ints(k * n, 50 + t as u64, 3));
        let bias: Vec<f32> = ints(n, 99, 20);
        let (qa, qb) = (
            QuantSpec::new(fa.parse().unwrap()),
            QuantSpec::new(fb.parse().unwrap()),
        );
        let (ta, _) = ops::quantize(ctx, &xa, &a_shape, &qa).unwrap();
        let (tb, _) = ops::quantize(ctx, &xb, &b_shape, &qb).unwrap();
        let (tc, exc) = ops::gemm(ctx, &ta, &tb, Some(&bias), &spec).unwrap();
        let (ra, rb) = (reference::quantize(&xa, &qa), reference::quantize(&xb, &qb));
        let r = reference::gemm::gemm(&ra, &a_shape, &rb, &b_shape, Some(&bias), &spec).unwrap();
        assert_eq!(
            tc.read_words(ctx).unwrap(),
            r.out.words,
            "{name}: {fa} x {fb} -> {fc}, {m}x{n}x{k}, trans {ta_} {tb_}"
        );
        assert_eq!(exc, r.out.exceptions, "{name}: {m}x{n}x{k} exceptions");
    }
}

#[test]
fn views_whose_last_panel_block_is_cut_short_are_exact() {
    // Panels of so many words cut these views into blocks of several tiles, the last along
    // M (the first view) or N (the second) fewer tiles than the others.
    let views = [((700, 100, 100), 40_000), ((6, 2100, 100), 110_000)];
    for (t, &((m, n, k), words)) in views.iter().enumerate() {
        let ctx = common::gpu().with_gemm_panels(true).with_panel_words(words);
        let (wx, wy) = ops::gemm::panel_lanes(m, n);
        let (bm, bn, ..) = ops::gemm::panel_blocks(&ctx, (m, n, k), words);
        let (tm, tn) = (8 * wy, 8 * wx);
        let cut = |extent: usize, block: usize, tile: usize| {
            extent > block && (extent % block).next_multiple_of(tile) < block
        };
        assert!(
            cut(m, bm, tm) || cut(n, bn, tn),
            "{m}x{n}x{k}: blocks {bm} x {bn} of tiles {tm} x {tn} leave no short last block"
        );
        check_gemm(&format!("panels of {words} words"), &ctx, (m, n, k), t);
    }
}

#[test]
fn convolutions_of_integers_are_exact_with_every_kernel() {
    // (x shape, O, kernel, stride, padding, groups)
    let geos: [([usize; 4], usize, usize, usize, usize, usize); 4] = [
        ([4, 3, 12, 11], 6, 3, 1, 1, 1),
        ([2, 4, 9, 9], 8, 5, 2, 2, 1),
        ([3, 6, 7, 8], 6, 3, 1, 1, 3),   // grouped
        ([1, 2, 30, 30], 4, 1, 1, 0, 2), // 1x1, grouped
    ];
    for (name, ctx) in contexts() {
        for (t, &(xs, o, kk, stride, pad, groups)) in geos.iter().enumerate() {
            let spec = Conv2dSpec {
                stride: [stride; 2],
                padding: [pad; 2],
                groups,
                ..Conv2dSpec::new()
            };
            let ws = [o, xs[1] / groups, kk, kk];
            let g = spec.geometry(&xs, &ws).unwrap();
            let ys = [g.batch, g.cout, g.oh, g.ow];
            let q = QuantSpec::new("fp32".parse().unwrap());
            let x = ints(xs.iter().product(), 10 + t as u64, 4);
            let w = ints(ws.iter().product(), 20 + t as u64, 3);
            let dy = ints(ys.iter().product(), 30 + t as u64, 3);
            let up = |v: &[f32], s: &[usize]| ops::quantize(&ctx, v, s, &q).unwrap().0;
            let (tx, tw, tdy) = (up(&x, &xs), up(&w, &ws), up(&dy, &ys));
            let (rx, rw, rdy) = (
                reference::quantize(&x, &q),
                reference::quantize(&w, &q),
                reference::quantize(&dy, &q),
            );
            let bias = ints(o, 5, 9);
            for pass in [
                ConvPass::Forward,
                ConvPass::BackwardData,
                ConvPass::BackwardWeight,
            ] {
                let (got, want) = match pass {
                    ConvPass::Forward => (
                        ops::conv2d_forward(&ctx, &tx, &tw, Some(&bias), &spec),
                        reference::conv::conv2d(pass, &g, &rw, &rx, Some(&bias), &spec),
                    ),
                    ConvPass::BackwardData => (
                        ops::conv2d_backward_data(&ctx, &tdy, &tw, [g.h, g.w], &spec),
                        reference::conv::conv2d(pass, &g, &rw, &rdy, None, &spec),
                    ),
                    ConvPass::BackwardWeight => (
                        ops::conv2d_backward_weight(&ctx, &tdy, &tx, [g.kh, g.kw], &spec),
                        reference::conv::conv2d(pass, &g, &rdy, &rx, None, &spec),
                    ),
                };
                assert_eq!(
                    got.unwrap().0.read_words(&ctx).unwrap(),
                    want.unwrap().out.words,
                    "{name}: {xs:?} {pass:?}"
                );
            }
        }
    }
}

/// The panel products that gather B themselves (`thin`, views of at most 8 rows, and
/// compiled `TALL`, 9 to 16 rows, that fill a workgroup) sum in `main`'s order, so on
/// real-valued operands (where the order shows in the bits) they equal the B-panel path bit
/// for bit: GEMMs of 6, 12 and 16 rows and convolutions' forward and backward-data views of
/// 6 and 16 channels, f32 and packed operands, the last block cut short.
#[test]
fn the_thin_products_equal_the_b_panel_path_bit_for_bit() {
    assert_eq!(ops::gemm::panel_lanes(6, 2100), (64, 1), "a thin view");
    assert_eq!(
        ops::gemm::panel_lanes(12, 2100),
        (32, 2),
        "a tall thin view"
    );
    assert_eq!(
        ops::gemm::panel_lanes(16, 2100),
        (32, 2),
        "a tall thin view"
    );
    // Backward data as its im2col view (not by taps), whose rows are the input channels.
    let panels = || {
        common::gpu()
            .with_gemm_panels(true)
            .with_panel_words(110_000)
            .with_tap_sums(false)
    };
    let (on, off) = (panels(), panels().with_thin_panels(false));
    assert!(on.thin_panels() && !off.thin_panels());
    for (fa, fb, fc) in [("fp32", "fp32", "fp32"), ("e4m3", "e5m2", "bf16")] {
        let (qa, qb, spec) = specs(fa, fb, fc);
        for m in [6, 12, 16] {
            let (n, k) = (2100, 100);
            let (xa, xb) = (
                common::uniform(m * k, 1, 2.0),
                common::uniform(k * n, 2, 2.0),
            );
            let bias = common::uniform(n, 3, 1.0);
            let run = |ctx: &GpuContext| {
                let (ta, _) = ops::quantize(ctx, &xa, &[m, k], &qa).unwrap();
                let (tb, _) = ops::quantize(ctx, &xb, &[k, n], &qb).unwrap();
                let (tc, _) = ops::gemm(ctx, &ta, &tb, Some(&bias), &spec).unwrap();
                tc.read_words(ctx).unwrap()
            };
            assert_eq!(run(&on), run(&off), "GEMM {m} rows, {fa} x {fb} -> {fc}");
        }
        // Forward (c output channels) and backward data (c input channels) over 28 x 28.
        let conv = Conv2dSpec {
            out: spec.out,
            ..Conv2dSpec::new()
        };
        for c in [6, 16] {
            let (x, w) = (
                common::uniform(4 * c * 28 * 28, 4, 1.0),
                common::uniform(c * c * 25, 5, 0.5),
            );
            let bias = common::uniform(c, 3, 1.0);
            let dy = common::uniform(4 * c * 24 * 24, 6, 1.0);
            let run_conv = |ctx: &GpuContext| {
                let (tx, _) = ops::quantize(ctx, &x, &[4, c, 28, 28], &qa).unwrap();
                let (tw, _) = ops::quantize(ctx, &w, &[c, c, 5, 5], &qb).unwrap();
                let (tdy, _) = ops::quantize(ctx, &dy, &[4, c, 24, 24], &qa).unwrap();
                let (y, _) = ops::conv2d_forward(ctx, &tx, &tw, Some(&bias), &conv).unwrap();
                let (dx, _) = ops::conv2d_backward_data(ctx, &tdy, &tw, [28, 28], &conv).unwrap();
                (y.read_words(ctx).unwrap(), dx.read_words(ctx).unwrap())
            };
            assert_eq!(
                run_conv(&on),
                run_conv(&off),
                "convolution of {c} channels, {fa} x {fb} -> {fc}"
            );
        }
    }
}

/// Where the adapter broadcasts A's values across subgroups (a CPU adapter with subgroups
/// of 8), the panel kernels that do (`main` with whole subgroups in a row of the workgroup,
/// four products an iteration and the rest one by one; `thin`, tall or not) give the same
/// bits as loading A in every lane: the same sums in the same order, on real-valued
/// operands where the order shows. Shapes: 64 x 64 (a workgroup of 8 x 8 invocations) with
/// K = 37 (a remainder) and K = 1030 (split into slices of 258), thin (6 rows) and tall
/// (12 rows) views, and the thin view's rows through `main`.
#[test]
fn broadcast_a_values_equal_loading_them_in_every_lane() {
    let panels = || common::gpu().with_gemm_panels(true);
    if !panels().broadcast_lanes() {
        eprintln!("this adapter does not broadcast A's values: nothing to compare");
        return;
    }
    assert_eq!(ops::gemm::panel_lanes(64, 64), (8, 8));
    assert_eq!(ops::gemm::panel_lanes(6, 2100), (64, 1));
    for thin in [true, false] {
        let on = panels().with_thin_panels(thin);
        let off = panels().with_thin_panels(thin).with_broadcast_lanes(false);
        assert!(!off.broadcast_lanes());
        for (m, n, k) in [
            (64, 64, 37),
            (64, 64, 1030),
            (6, 2100, 101),
            (12, 2100, 101),
        ] {
            let (xa, xb) = (
                common::uniform(m * k, 7, 2.0),
                common::uniform(k * n, 8, 2.0),
            );
            let bias = common::uniform(n, 9, 1.0);
            let q = QuantSpec::new("fp32".parse().unwrap());
            let run = |ctx: &GpuContext| {
                let (ta, _) = ops::quantize(ctx, &xa, &[m, k], &q).unwrap();
                let (tb, _) = ops::quantize(ctx, &xb, &[k, n], &q).unwrap();
                let (tc, _) = ops::gemm(ctx, &ta, &tb, Some(&bias), &GemmSpec::new()).unwrap();
                tc.read_words(ctx).unwrap()
            };
            assert_eq!(run(&on), run(&off), "{m}x{n}x{k}, thin {thin}");
        }
    }
}

/// Panels in textures (a CPU adapter's default) give the same bits as panels in storage
/// buffers: the same values reach the same sums. Real-valued operands (the order of the
/// sums shows), fp32, 8-bit and 6-bit codes (some across two words, with MX block scales), A's values scaled into the subnormal range with B's scaled up (a texel
/// path that flushed subnormals changes every sum), infinities and a NaN among them, -0;
/// a 64 x 64 view (K 1030: slices), thin and tall views, packed operands, convolutions
/// (forward, backward data as its im2col view, weight gradient), and small panel budgets
/// (many blocks through one texture).
#[test]
fn panels_in_textures_equal_panels_in_buffers_bit_for_bit() {
    let panels = |words: usize| {
        common::gpu()
            .with_gemm_panels(true)
            .with_panel_words(words)
            .with_tap_sums(false)
    };
    for words in [lowp::gpu::context::PANEL_WORDS, 8192] {
        let (on, off) = (
            panels(words).with_panel_textures(true),
            panels(words).with_panel_textures(false),
        );
        let formats = [
            ("fp32", "fp32", "fp32"),
            ("e4m3", "e5m2", "bf16"),
            ("e3m2", "mxfp6_e2m3", "fp32"), // 6-bit codes across words, block scales
        ];
        for (fa, fb, fc) in formats {
            let q = |f: &str| QuantSpec::new(f.parse().unwrap());
            let spec = GemmSpec {
                out: q(fc),
                ..GemmSpec::new()
            };
            for (m, n, k) in [
                (64, 64, 1030),
                (6, 2100, 101),
                (12, 2100, 101),
                (67, 45, 33),
            ] {
                let mut xa: Vec<f32> = common::uniform(m * k, 11, 2.0);
                let mut xb: Vec<f32> = common::uniform(k * n, 12, 2.0);
                if fa == "fp32" {
                    // Subnormal A values times B values of about 2^100.
                    xa.iter_mut().step_by(3).for_each(|v| *v *= 1e-39);
                    xb.iter_mut().step_by(3).for_each(|v| *v *= 1e30);
                    (xa[5], xa[7], xb[9], xb[2]) =
                        (f32::INFINITY, -0.0, f32::NEG_INFINITY, f32::NAN);
                }
                let bias = common::uniform(n, 13, 1.0);
                let run = |ctx: &GpuContext| {
                    let (ta, _) = ops::quantize(ctx, &xa, &[m, k], &q(fa)).unwrap();
                    let (tb, _) = ops::quantize(ctx, &xb, &[k, n], &q(fb)).unwrap();
                    let (tc, _) = ops::gemm(ctx, &ta, &tb, Some(&bias), &spec).unwrap();
                    tc.read_words(ctx).unwrap()
                };
                let (t, b) = (run(&on), run(&off));
                assert!(
                    t.iter().zip(&b).all(|(x, y)| common::same_value(*x, *y)),
                    "{m}x{n}x{k}, {fa} x {fb} -> {fc}, {words} panel words"
                );
            }
            let conv = Conv2dSpec {
                out: spec.out,
                ..Conv2dSpec::new()
            };
            let c = 6;
            let (x, w) = (
                common::uniform(4 * c * 20 * 20, 14, 1.0),
                common::uniform(16 * c * 25, 15, 0.5),
            );
            let dy = common::uniform(4 * 16 * 16 * 16, 16, 1.0);
            let run_conv = |ctx: &GpuContext| {
                let (tx, _) = ops::quantize(ctx, &x, &[4, c, 20, 20], &q(fa)).unwrap();
                let (tw, _) = ops::quantize(ctx, &w, &[16, c, 5, 5], &q(fb)).unwrap();
                let (tdy, _) = ops::quantize(ctx, &dy, &[4, 16, 16, 16], &q(fa)).unwrap();
                let (y, _) = ops::conv2d_forward(ctx, &tx, &tw, None, &conv).unwrap();
                let (dx, _) = ops::conv2d_backward_data(ctx, &tdy, &tw, [20, 20], &conv).unwrap();
                let (dw, _) = ops::conv2d_backward_weight(ctx, &tdy, &tx, [5, 5], &conv).unwrap();
                [y, dx, dw].map(|t| t.read_words(ctx).unwrap())
            };
            assert_eq!(
                run_conv(&on),
                run_conv(&off),
                "convolutions, {fa} x {fb} -> {fc}, {words} panel words"
            );
        }
        // The panels did go in textures on one context and not on the other: the pool
        // holds A's and B's panel textures only where they did.
        for panel in ["GEMM panel A", "GEMM panel B"] {
            assert!(
                on.scratch_texture_rows(panel).is_some(),
                "{panel}: no texture"
            );
            assert_eq!(off.scratch_texture_rows(panel), None, "{panel}: a texture");
        }
    }
}

/// The portable kernels (every format from the parameters, `LOWP_SPECIALISE=0`) take the
/// panels in textures too, with the same bits as in buffers: a 64 x 64 x 1030 product and
/// a thin view, fp32 and e4m3 operands.
#[test]
fn portable_kernels_take_panels_in_textures_bit_for_bit() {
    let panels = |on: bool| {
        common::gpu()
            .with_gemm_panels(true)
            .with_specialise(false)
            .with_panel_textures(on)
    };
    let (on, off) = (panels(true), panels(false));
    for f in ["fp32", "e4m3"] {
        let q = QuantSpec::new(f.parse().unwrap());
        for (m, n, k) in [(64, 64, 1030), (6, 2100, 101)] {
            let (xa, xb) = (
                common::uniform(m * k, 17, 2.0),
                common::uniform(k * n, 18, 2.0),
            );
            let run = |ctx: &GpuContext| {
                let (ta, _) = ops::quantize(ctx, &xa, &[m, k], &q).unwrap();
                let (tb, _) = ops::quantize(ctx, &xb, &[k, n], &q).unwrap();
                let (tc, _) = ops::gemm(ctx, &ta, &tb, None, &GemmSpec::new()).unwrap();
                tc.read_words(ctx).unwrap()
            };
            assert_eq!(run(&on), run(&off), "{m}x{n}x{k} {f}, portable kernels");
        }
    }
    assert!(
        on.scratch_texture_rows("GEMM panel A").is_some(),
        "no panel texture"
    );
    assert_eq!(
        off.scratch_texture_rows("GEMM panel A"),
        None,
        "a panel texture"
    );
}

/// A view narrower than a SIMD row of lanes (6 x 25: 4 invocations) whose K is split takes
/// its slices side by side in one workgroup of `main`; its sums are the same slices added in
/// the same order as a wide view's (6 x 128: 16 invocations, a slice a workgroup) with the
/// same A, the same K slices and B's first 25 columns, so its columns equal those bit for
/// bit. Real-valued operands (the order shows): fp32, and e4m3 x e5m2 rounded to bf16; K
/// 4096 (16 slices, two a workgroup) and 1380 (5 slices: the last workgroup's second lane
/// has none), and K 4096 through a small panel budget (two K blocks).
#[test]
fn slices_side_by_side_equal_a_slice_a_workgroup_bit_for_bit() {
    let ctx = common::gpu().with_gemm_panels(true).with_thin_panels(false);
    let (m, narrow, wide) = (6, 25, 128);
    assert_eq!(ops::gemm::panel_lanes(m, narrow), (4, 1), "4 invocations");
    assert_eq!(ops::gemm::panel_lanes(m, wide), (16, 1), "16 invocations");
    for (k, slices) in [(4096, 16), (1380, 5)] {
        check_slices_side_by_side(&ctx, (m, k, narrow, wide), slices, false);
    }
    // Panels of 81,920 words: the narrow view in two K blocks (the second's slices from 8).
    let small = ctx.with_panel_words(81_920);
    check_slices_side_by_side(&small, (m, 4096, narrow, wide), 16, true);
}

/// One shape of [`slices_side_by_side_equal_a_slice_a_workgroup_bit_for_bit`].
fn check_slices_side_by_side(
    ctx: &GpuContext,
    (m, k, narrow, wide): (usize, usize, usize, usize),
    slices: usize,
    blocks: bool,
) {
    let cut = |n| ops::gemm::panel_blocks(ctx, (m, n, k), ctx.panel_words());
    let (b_narrow, b_wide) = (cut(narrow), cut(wide));
    assert_eq!(b_narrow.4, slices, "K split: {b_narrow:?}");
    assert_eq!(ops::gemm::slices_per_group(4, slices), 2, "two a workgroup");
    assert_eq!(
        ops::gemm::slices_per_group(16, slices),
        1,
        "one a workgroup"
    );
    // The same slices along K (the blocks, whole slices each, may differ).
    assert_eq!(
        (b_narrow.3, b_narrow.4),
        (b_wide.3, b_wide.4),
        "the same slices along K"
    );
    assert_eq!(b_narrow.2 < k, blocks, "K in blocks: {b_narrow:?}");
    let xa = common::uniform(m * k, 11, 2.0);
    let xb_wide = common::uniform(k * wide, 12, 2.0);
    let xb: Vec<f32> = (0..k)
        .flat_map(|r| xb_wide[r * wide..r * wide + narrow].to_vec())
        .collect();
    for (fa, fb, fc) in [("fp32", "fp32", "fp32"), ("e4m3", "e5m2", "bf16")] {
        let (qa, qb, spec) = specs(fa, fb, fc);
        let run = |xb: &[f32], n: usize| {
            let (ta, _) = ops::quantize(ctx, &xa, &[m, k], &qa).unwrap();
            let (tb, _) = ops::quantize(ctx, xb, &[k, n], &qb).unwrap();
            let (tc, _) = ops::gemm(ctx, &ta, &tb, None, &spec).unwrap();
            ops::dequantize(ctx, &tc).unwrap()
        };
        let (c_narrow, c_wide) = (run(&xb, narrow), run(&xb_wide, wide));
        for i in 0..m {
            for j in 0..narrow {
                let (x, y) = (c_narrow[i * narrow + j], c_wide[i * wide + j]);
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "C[{i}][{j}], K {k}, {fa} x {fb} -> {fc}: {x} narrow, {y} wide"
                );
            }
        }
    }
}

/// A convolution layer: x shape, (O, KH, KW), padding, groups.
type Layer = ([usize; 4], [usize; 3], [usize; 2], usize);

/// A layer's convolution (its padding and groups, rounding into `gspec`'s output), weight
/// shape and geometry.
fn conv_of(layer: &Layer, gspec: &GemmSpec) -> (Conv2dSpec, [usize; 4], lowp::conv::ConvGeometry) {
    strided_conv_of(layer, [1, 1], gspec)
}

/// [`conv_of`] with strides `stride`.
fn strided_conv_of(
    (xs, [o, kh, kw], padding, groups): &Layer,
    stride: [usize; 2],
    gspec: &GemmSpec,
) -> (Conv2dSpec, [usize; 4], lowp::conv::ConvGeometry) {
    let spec = Conv2dSpec {
        stride,
        padding: *padding,
        groups: *groups,
        out: gspec.out,
        ..Conv2dSpec::new()
    };
    let ws = [*o, xs[1] / groups, *kh, *kw];
    let g = spec.geometry(xs, &ws).unwrap();
    (spec, ws, g)
}

/// A forward view of a stride-1 convolution of at most 16 output channels a group (or 17 to
/// 64, in 16-row blocks) reads B from its input rows in segments in `thin` (each input word
/// once per invocation), its columns over its output rows padded to a multiple of 4 wide,
/// and gives the same bits as gathering every value: the same values, summed in K's order.
/// Real-valued operands (the order shows), in f32; e4m3 weights with e2m1 inputs (codes
/// sharing words) into bf16; bf16 weights with MX-scaled inputs into e5m2. Layers: ResNet's
/// 3 x 3 (padding 1, rows 32 wide), 5 x 5 with padding 2, a 2 x 4 kernel with unequal
/// padding, 1 x 1, a 3 x 2 kernel whose padding reaches left of the row, two groups of 12
/// channels, views of 32, 64 and two groups of 20 rows (16-row blocks, the last part empty),
/// short views of 8 x 8 tiles, each invocation two quads of columns in their own rows:
/// LeNet-5's first layer (6 rows), two groups of 4, and 5 rows of a 3 x 2 kernel whose
/// quads start in different rows; and views whose rows are not a multiple of 4 wide:
/// LeNet-5's second layer (rows of 10), 32 rows in blocks and 5 rows in 8 x 8 tiles (rows of
/// 9, a tile's quads in two rows). Bias on every one; each at least 324 output pixels (a
/// view fills a workgroup). The first two again (f32) through a 65,536-word panel budget
/// (blocks of 256 columns along N, the second's last cut to 64) and with A loaded in every
/// lane instead of broadcast (the other branch of the A loads).
#[test]
fn input_rows_equal_gathered_values_bit_for_bit() {
    let context = |p: usize, segments: bool| {
        // Narrow tall views and 16-row blocks too (a CPU adapter's defaults), so that every
        // adapter takes these views through segments.
        let c = common::gpu()
            .with_gemm_panels(true)
            .with_narrow_tall(true)
            .with_tall_blocks(true)
            .with_segments(segments);
        match p {
            1 => c.with_panel_words(1 << 16),
            2 => c.with_broadcast_lanes(false),
            _ => c,
        }
    };
    let layers: [Layer; 15] = [
        ([4, 16, 32, 32], [16, 3, 3], [1, 1], 1),
        ([4, 5, 12, 12], [12, 5, 5], [2, 2], 1),
        ([4, 3, 20, 11], [9, 2, 4], [1, 0], 1),
        ([2, 7, 16, 16], [16, 1, 1], [0, 0], 1),
        ([4, 4, 9, 15], [10, 3, 2], [1, 1], 1),
        ([2, 8, 16, 16], [24, 3, 3], [1, 1], 2),
        ([2, 8, 16, 16], [32, 3, 3], [1, 1], 1),
        ([8, 6, 8, 8], [64, 3, 3], [1, 1], 1),
        ([2, 6, 16, 16], [40, 5, 5], [2, 2], 2),
        ([4, 1, 28, 28], [6, 5, 5], [2, 2], 1),
        ([2, 4, 16, 16], [8, 3, 3], [1, 1], 2),
        ([5, 3, 9, 11], [5, 3, 2], [1, 1], 1),
        ([8, 6, 14, 14], [16, 5, 5], [0, 0], 1),
        ([4, 8, 9, 9], [32, 3, 3], [1, 1], 1),
        ([8, 2, 9, 9], [5, 3, 3], [1, 1], 1),
    ];
    let formats = [
        ("fp32", "fp32", "fp32"),
        ("e4m3", "e2m1", "bf16"),
        ("bf16", "mxfp8_e4m3", "e5m2"),
    ];
    for (p, label) in ["default", "small panels", "A in every lane"]
        .iter()
        .enumerate()
    {
        let (on, off) = (context(p, true), context(p, false));
        let (formats, layers) = match p {
            0 => (&formats[..], &layers[..]),
            _ => (&formats[..1], &layers[..2]),
        };
        for (fw, fx, fy) in formats {
            let (qw, qx, gspec) = specs(fw, fx, fy);
            for (t, layer) in layers.iter().enumerate() {
                let (xs, [o, ..], padding, _) = layer;
                let (spec, ws, g) = conv_of(layer, &gspec);
                let x = common::uniform(xs.iter().product(), 20 + t as u64, 2.0);
                let w = common::uniform(ws.iter().product(), 30 + t as u64, 1.0);
                let bias = common::uniform(*o, 40 + t as u64, 1.0);
                let run = |ctx: &GpuContext| {
                    let (tx, _) = ops::quantize(ctx, &x, xs, &qx).unwrap();
                    let (tw, _) = ops::quantize(ctx, &w, &ws, &qw).unwrap();
                    let (view, params) =
                        ops::conv::prepare_conv(ConvPass::Forward, &g, &tw, &tx, Some(*o), &spec)
                            .unwrap();
                    let rows = ops::gemm::reads_input_rows(ctx, &view, &params);
                    let (y, _) = ops::conv2d_forward(ctx, &tx, &tw, Some(&bias), &spec).unwrap();
                    (rows, y.read_words(ctx).unwrap())
                };
                let ((rows_on, y_on), (rows_off, y_off)) = (run(&on), run(&off));
                let layer =
                    format!("{label}: {xs:?} * {ws:?}, padding {padding:?}, {fw} x {fx} -> {fy}");
                assert!(
                    rows_on && !rows_off,
                    "{layer}: the input rows are read on one side only"
                );
                assert_eq!(y_on, y_off, "{layer}");
            }
        }
    }
}

/// A backward data view of a stride-1 convolution of at most 16 input channels a group (or
/// 17 to 64 in blocks) reads dY from its rows in segments in `thin`, a tap's four
/// neighbouring columns from four words running down the row, and gives the bits of
/// gathering every value (tap sums off on both sides, so that every layer runs as its
/// view). Layers: ResNet's 16-channel 3 x 3, 5 x 5 with padding 2, a 2 x 4 kernel with
/// unequal padding, 1 x 1, 3 x 2 with padding reaching past both ends of dY's rows, padding
/// 0 (taps off dY's edges), two groups of 12, views of 32, 64 and two groups of 20 rows
/// (16-row blocks), short views of 8 x 8 tiles (6 input channels of a 5 x 5 kernel,
/// two groups of 4), and over rows padded to a multiple of 4: 12 channels of rows 10 wide
/// (padding 0, batch 15: on a CPU adapter its quads run in blocks of 8 images, one past the
/// batch),
/// LeNet-5's second layer (6 channels of rows 14 wide, 5 x 5, padding 0); in f32 (four
/// layers again with an infinite and a NaN weight, A's values spread and loaded in every
/// lane), and in the forward test's packed
/// formats on four of them. On a CPU adapter the segments skip the kernel rows outside dY,
/// their quads run row by row across blocks of images (SKIP_ROWS), where a fifth of the
/// (dX row, kernel row) pairs reach outside: here the layers of 5 x 5 with padding 0 and
/// the batch of 15.
#[test]
fn backward_data_from_output_rows_equals_gathered_values_bit_for_bit() {
    let context = |segments: bool| {
        common::gpu()
            .with_gemm_panels(true)
            .with_narrow_tall(true)
            .with_tall_blocks(true)
            .with_tap_sums(false)
            .with_segments(segments)
    };
    let layers: [Layer; 14] = [
        ([4, 16, 32, 32], [16, 3, 3], [1, 1], 1),
        ([4, 12, 12, 12], [5, 5, 5], [2, 2], 1),
        ([4, 10, 20, 12], [9, 2, 4], [1, 0], 1),
        ([2, 16, 16, 16], [7, 1, 1], [0, 0], 1),
        ([4, 9, 9, 16], [4, 3, 2], [1, 1], 1),
        ([4, 12, 14, 16], [6, 5, 5], [0, 0], 1),
        ([2, 24, 16, 16], [8, 3, 3], [1, 1], 2),
        ([2, 32, 16, 16], [8, 3, 3], [1, 1], 1),
        ([8, 64, 8, 8], [16, 3, 3], [1, 1], 1),
        ([4, 40, 12, 12], [6, 3, 3], [1, 1], 2),
        ([4, 6, 14, 16], [16, 5, 5], [2, 2], 1),
        ([2, 8, 16, 16], [8, 3, 3], [1, 1], 2),
        ([15, 12, 10, 10], [6, 3, 3], [0, 0], 1),
        ([4, 6, 14, 14], [16, 5, 5], [0, 0], 1),
    ];
    let formats = [
        ("fp32", "fp32", "fp32"),
        ("e4m3", "e2m1", "bf16"),
        ("bf16", "mxfp8_e4m3", "e5m2"),
    ];
    let (on, off) = (context(true), context(false));
    let every_lane = context(true).with_broadcast_lanes(false);
    for (f, (fw, fy, fx)) in formats.into_iter().enumerate() {
        let (qw, qy, gspec) = specs(fw, fy, fx);
        for (t, layer) in layers.iter().enumerate() {
            // The packed formats on ResNet's layer, 5 x 5, a 32-row view and a short one
            // (each layer and format is another pipeline to compile).
            if f > 0 && ![0, 1, 7, 10].contains(&t) {
                continue;
            }
            let (xs, _, padding, _) = layer;
            let (spec, ws, g) = conv_of(layer, &gspec);
            let ys = [xs[0], ws[0], g.oh, g.ow];
            let dy = common::uniform(ys.iter().product(), 50 + t as u64, 2.0);
            let finite = common::uniform(ws.iter().product(), 60 + t as u64, 1.0);
            // In f32, four layers again with an infinite and a NaN weight, on kernel rows
            // that reach outside dY from some of dX's rows (their zeros' products are NaN).
            let mut poisoned = finite.clone();
            let at = |o: usize, c: usize, kh: usize, kw: usize| {
                ((o * ws[1] + c) * ws[2] + kh) * ws[3] + kw
            };
            poisoned[at(0, 0, ws[2] - 1, 0)] = f32::INFINITY;
            poisoned[at(ws[0] - 1, ws[1].min(2) - 1, 0, ws[3] - 1)] = f32::NAN;
            let nonfinite = f == 0 && [0, 5, 12, 13].contains(&t);
            for w in [finite, poisoned].iter().take(1 + nonfinite as usize) {
                let run = |ctx: &GpuContext| {
                    let (tdy, _) = ops::quantize(ctx, &dy, &ys, &qy).unwrap();
                    let (tw, _) = ops::quantize(ctx, w, &ws, &qw).unwrap();
                    let (view, params) =
                        ops::conv::prepare_conv(ConvPass::BackwardData, &g, &tw, &tdy, None, &spec)
                            .unwrap();
                    let rows = ops::gemm::reads_input_rows(ctx, &view, &params);
                    let hw = [xs[2], xs[3]];
                    let (dx, _) = ops::conv2d_backward_data(ctx, &tdy, &tw, hw, &spec).unwrap();
                    (rows, dx.read_words(ctx).unwrap())
                };
                let ((rows_on, dx_on), (rows_off, dx_off)) = (run(&on), run(&off));
                let layer = format!("{xs:?} * {ws:?}, padding {padding:?}, {fw} x {fy} -> {fx}");
                assert!(
                    rows_on && !rows_off,
                    "{layer}: dY's rows are read on one side only"
                );
                assert_eq!(dx_on, dx_off, "{layer}");
                if w.iter().any(|v| !v.is_finite()) {
                    let nan = dx_on.iter().filter(|&&v| v == 0x7fc0_0000).count();
                    assert!(0 < nan && nan < dx_on.len(), "{layer}: {nan} NaNs");
                    // The skipped rows' weights loaded in every lane, not spread.
                    let (_, dx_lanes) = run(&every_lane);
                    assert_eq!(dx_lanes, dx_off, "{layer}, A in every lane");
                }
            }
        }
    }
}

/// Narrow views of 9 to 16 rows (weight gradients: O x C KH KW, K = N OH OW) run as tall
/// tiles gathering B in `thin`, K split across workgroups, and give the bits of packing B's
/// panel for `main`: the same values summed in the same order. Layers: ResNet-8's 16-channel
/// 3 x 3 (144 columns, K 4,096), LeNet-5's conv2 (150), 12 channels of 5 x 3 x 3 (45
/// columns, padding 0), and two groups of 12 from 10 channels each (90 columns).
#[test]
fn narrow_tall_views_equal_packed_panels_bit_for_bit() {
    // Windows off: they would take these views (at most 16 rows) first.
    let panels = || common::gpu().with_gemm_panels(true).with_windows(false);
    let (on, off) = (
        panels().with_narrow_tall(true),
        panels().with_narrow_tall(false),
    );
    let layers: [Layer; 4] = [
        ([4, 16, 32, 32], [16, 3, 3], [1, 1], 1),
        ([8, 6, 14, 14], [16, 5, 5], [0, 0], 1),
        ([4, 5, 12, 12], [12, 3, 3], [0, 0], 1),
        ([2, 20, 10, 10], [24, 3, 3], [1, 1], 2),
    ];
    assert_gathered_weight_gradients_equal_packed((&on, &off), &layers.map(|l| (l, [1, 1])));
}

/// Weight gradients of 17 to 32 rows run as two 16-row blocks of tall tiles gathering B
/// (one block a workgroup row of `thin`) and give the bits of packing B's panel for `main`.
/// Layers: ResNet-8's 16 to 32 channels (stride 2, 32 x 144) and 32 to 32 (32 x 288), and
/// rows not a multiple of 16: 17 channels of 4 x 5 x 5 (padding 2), 24 of 5 x 3 x 3 (45
/// columns, padding 0), two groups of 20. A weight gradient of 33 rows packs B.
#[test]
fn weight_gradients_in_row_blocks_equal_packed_panels_bit_for_bit() {
    let (on, off) = (
        common::gpu().with_gemm_panels(true).with_tall_blocks(true),
        common::gpu().with_gemm_panels(true).with_tall_blocks(false),
    );
    let layers: [Layer; 5] = [
        ([2, 16, 16, 16], [32, 3, 3], [1, 1], 1),
        ([2, 32, 8, 8], [32, 3, 3], [1, 1], 1),
        ([2, 4, 8, 8], [17, 5, 5], [2, 2], 1),
        ([3, 5, 9, 9], [24, 3, 3], [0, 0], 1),
        ([2, 20, 10, 10], [40, 3, 3], [1, 1], 2),
    ];
    assert_gathered_weight_gradients_equal_packed((&on, &off), &layers.map(|l| (l, [1, 1])));
    let wide: Layer = ([2, 4, 8, 8], [33, 3, 3], [1, 1], 1);
    let (q, _, gspec) = specs("fp32", "fp32", "fp32");
    let (spec, _, g) = conv_of(&wide, &gspec);
    let (x, dy) = (vec![1.0; 2 * 4 * 64], vec![1.0; 2 * 33 * 64]);
    let (tx, _) = ops::quantize(&on, &x, &wide.0, &q).unwrap();
    let (tg, _) = ops::quantize(&on, &dy, &[2, 33, 8, 8], &q).unwrap();
    let (view, params) =
        ops::conv::prepare_conv(ConvPass::BackwardWeight, &g, &tg, &tx, None, &spec).unwrap();
    assert!(
        !ops::gemm::gathers_b(&on, (view.m, view.n, view.k), &params),
        "33 rows: B packed"
    );
}

/// Weight gradients of at most 16 rows, stride 1 along the width, run as `thin` reading
/// their inputs through sliding windows (an invocation a kernel row's taps, a workgroup row
/// 8 of the view's rows) and give the bits of packing B's panel for `main`: the same values
/// summed in the same order. Layers: LeNet-5's conv1 (6 x 25, padding 2, rows 28 wide),
/// LeNet-5's conv2 (16 x 150: two blocks of 8 rows), 12 rows (the second block's last 4 past
/// the view), kernel rows of 8 taps (padding 3, the window past both edges), 1 x 1, 72
/// kernel rows (two workgroups of `thin`), two groups of 4 channels, and stride 2 down the
/// height. Where they are off, B is packed. A's values are shared across subgroups (no A
/// panel) by default, read from A's panel without the broadcast, and the view is cut into
/// many K blocks with small panels.
#[test]
fn weight_gradients_through_windows_equal_packed_panels_bit_for_bit() {
    let panels = || common::gpu().with_gemm_panels(true);
    let small = || panels().with_panel_textures(false).with_panel_words(4096);
    let layers: [(Layer, [usize; 2]); 8] = [
        (([4, 1, 28, 28], [6, 5, 5], [2, 2], 1), [1, 1]),
        (([2, 6, 14, 14], [16, 5, 5], [0, 0], 1), [1, 1]),
        (([2, 3, 9, 9], [12, 3, 3], [1, 1], 1), [1, 1]),
        (([2, 2, 12, 12], [5, 3, 8], [1, 3], 1), [1, 1]),
        (([2, 7, 8, 8], [5, 1, 1], [0, 0], 1), [1, 1]),
        (([1, 24, 6, 6], [3, 3, 3], [1, 1], 1), [1, 1]),
        (([2, 6, 10, 10], [8, 3, 3], [1, 1], 2), [1, 1]),
        (([2, 3, 11, 9], [7, 3, 4], [1, 2], 1), [2, 1]),
    ];
    // Off, a view of 9 to 16 rows packs B rather than gathering it in tall tiles.
    let off = || panels().with_windows(false).with_narrow_tall(false);
    let (on, off) = (panels().with_windows(true), off());
    assert_gathered_weight_gradients_equal_packed((&on, &off), &layers);
    let on = panels().with_windows(true).with_broadcast_lanes(false);
    assert_gathered_weight_gradients_equal_packed((&on, &off), &layers[..5]);
    let small_off = small().with_windows(false).with_narrow_tall(false);
    let (on, off) = (small().with_windows(true), small_off);
    assert_gathered_weight_gradients_equal_packed((&on, &off), &layers[..5]);
}

/// Asserts that each layer's weight gradient (with its strides) gathers B on context `on`
/// and packs it on `off`, with the same bits: f32 (the order shows), e4m3 x e2m1 into bf16,
/// bf16 x MXFP8 into e5m2.
fn assert_gathered_weight_gradients_equal_packed(
    (on, off): (&GpuContext, &GpuContext),
    layers: &[(Layer, [usize; 2])],
) {
    let formats = [
        ("fp32", "fp32", "fp32"),
        ("e4m3", "e2m1", "bf16"),
        ("bf16", "mxfp8_e4m3", "e5m2"),
    ];
    for (fg, fx, fw) in formats {
        let (qg, qx, gspec) = specs(fg, fx, fw);
        for (t, (layer, stride)) in layers.iter().enumerate() {
            let (xs, [o, kh, kw], padding, _) = layer;
            let (spec, ws, g) = strided_conv_of(layer, *stride, &gspec);
            let ys = [xs[0], *o, g.oh, g.ow];
            let x = common::uniform(xs.iter().product(), 50 + t as u64, 2.0);
            let dy = common::uniform(ys.iter().product(), 60 + t as u64, 1.0);
            let run = |ctx: &GpuContext| {
                let (tx, _) = ops::quantize(ctx, &x, xs, &qx).unwrap();
                let (tg, _) = ops::quantize(ctx, &dy, &ys, &qg).unwrap();
                let (view, params) =
                    ops::conv::prepare_conv(ConvPass::BackwardWeight, &g, &tg, &tx, None, &spec)
                        .unwrap();
                let gathers = ops::gemm::gathers_b(ctx, (view.m, view.n, view.k), &params);
                let (dw, _) =
                    ops::conv2d_backward_weight(ctx, &tg, &tx, [*kh, *kw], &spec).unwrap();
                (gathers, dw.read_words(ctx).unwrap())
            };
            let ((tall_on, w_on), (tall_off, w_off)) = (run(on), run(off));
            let layer = format!(
                "{xs:?}, dW {ws:?}, padding {padding:?}, stride {stride:?}, {fg} x {fx} -> {fw}"
            );
            assert!(tall_on && !tall_off, "{layer}: B gathered on one side only");
            let differ = w_on.iter().zip(&w_off).filter(|(a, b)| a != b).count();
            let first = w_on.iter().zip(&w_off).position(|(a, b)| a != b);
            assert_eq!(
                (w_on.len(), differ),
                (w_off.len(), 0),
                "{layer}: words differ, the first at {first:?}"
            );
        }
    }
}
