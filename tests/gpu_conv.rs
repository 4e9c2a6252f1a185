//! Convolutions (forward, backward data, backward weight) on the GPU against the
//! GEMM-based CPU reference (bit for bit where the accumulation is exact) and the
//! direct-loop f64 reference (within the fp32 error bound), plus gradient checks; plain,
//! grouped and depthwise.

mod common;

use lowp::conv::{Conv2dSpec, ConvGeometry, ConvPass};
use lowp::gpu::{GpuContext, Tensor};
use lowp::quant::{QuantSpec, Rounding};
use lowp::{ops, reference};
use std::sync::OnceLock;

fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(common::gpu)
}

/// (x shape, kernel (O, KH, KW), stride, padding, dilation, groups)
type Geo = (
    [usize; 4],
    [usize; 3],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    usize,
);

const GEOS: [Geo; 9] = [
    ([2, 3, 7, 6], [4, 3, 3], [1, 1], [1, 1], [1, 1], 1),
    ([1, 2, 9, 8], [3, 3, 2], [2, 1], [0, 2], [1, 2], 1),
    ([2, 1, 5, 5], [2, 1, 1], [1, 1], [0, 0], [1, 1], 1), // 1x1 kernel, K = 1
    ([1, 2, 3, 3], [1, 3, 3], [1, 1], [0, 0], [1, 1], 1), // 1x1 output
    ([1, 3, 11, 10], [5, 5, 3], [2, 3], [2, 1], [1, 1], 1),
    ([3, 2, 6, 7], [2, 2, 2], [3, 2], [1, 0], [2, 1], 1),
    // Grouped: 2 groups of 2 input and 3 output channels.
    ([2, 4, 7, 6], [6, 3, 3], [1, 1], [1, 1], [1, 1], 2),
    // Depthwise (MobileNet's): one channel a group, stride 2.
    ([2, 3, 8, 9], [3, 3, 3], [2, 2], [1, 1], [1, 1], 3),
    // Depthwise with a channel multiplier of 2, dilated, and a grouped 1x1.
    ([1, 2, 7, 7], [4, 3, 2], [1, 2], [2, 0], [2, 1], 2),
];

struct Run {
    g: ConvGeometry,
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
    qx: QuantSpec,
    qw: QuantSpec,
    qdy: QuantSpec,
}

fn setup(geo: &Geo, formats: [&str; 3], spec: &Conv2dSpec, seed: u64) -> Run {
    let (xs, [o, kh, kw], .., groups) = *geo;
    let g = spec.geometry(&xs, &[o, xs[1] / groups, kh, kw]).unwrap();
    let x = common::uniform(xs.iter().product(), seed, 2.0);
    let w = common::uniform(o * xs[1] / groups * kh * kw, seed + 1, 1.0);
    let dy = common::uniform(g.batch * g.cout * g.oh * g.ow, seed + 2, 1.5);
    let q = |f: &str| QuantSpec::new(f.parse().unwrap());
    Run {
        g,
        x,
        w,
        dy,
        qx: q(formats[0]),
        qw: q(formats[1]),
        qdy: q(formats[2]),
    }
}

fn spec_of(geo: &Geo) -> Conv2dSpec {
    Conv2dSpec {
        stride: geo.2,
        padding: geo.3,
        dilation: geo.4,
        groups: geo.5,
        ..Conv2dSpec::new()
    }
}

/// Runs `pass` on the GPU and the GEMM-based reference; returns (gpu words, reference result).
fn both(
    r: &Run,
    pass: ConvPass,
    spec: &Conv2dSpec,
    bias: Option<&[f32]>,
) -> (Vec<u32>, reference::gemm::GemmResult) {
    let c = ctx();
    let g = &r.g;
    let t = |v: &[f32], shape: &[usize], q: &QuantSpec| -> (Tensor, reference::Quantized) {
        (
            ops::quantize(c, v, shape, q).unwrap().0,
            reference::quantize(v, q),
        )
    };
    let xs = [g.batch, g.cin, g.h, g.w];
    let ws = [g.cout, g.cin_g(), g.kh, g.kw];
    let ys = [g.batch, g.cout, g.oh, g.ow];
    let (tx, rx) = t(&r.x, &xs, &r.qx);
    let (tw, rw) = t(&r.w, &ws, &r.qw);
    let (tdy, rdy) = t(&r.dy, &ys, &r.qdy);
    let (out, rr) = match pass {
        ConvPass::Forward => (
            ops::conv2d_forward(c, &tx, &tw, bias, spec).unwrap(),
            reference::conv::conv2d(pass, g, &rw, &rx, bias, spec).unwrap(),
        ),
        ConvPass::BackwardData => (
            ops::conv2d_backward_data(c, &tdy, &tw, [g.h, g.w], spec).unwrap(),
            reference::conv::conv2d(pass, g, &rw, &rdy, None, spec).unwrap(),
        ),
        ConvPass::BackwardWeight => (
            ops::conv2d_backward_weight(c, &tdy, &tx, [g.kh, g.kw], spec).unwrap(),
            reference::conv::conv2d(pass, g, &rdy, &rx, None, spec).unwrap(),
        ),
    };
    assert_eq!(out.0.shape(), g.out_shape(pass).as_slice());
    (out.0.read_words(c).unwrap(), rr)
}

const PASSES: [ConvPass; 3] = [
    ConvPass::Forward,
    ConvPass::BackwardData,
    ConvPass::BackwardWeight,
];

#[test]
fn exact_accumulation_equals_the_gemm_based_reference() {
    let mut t = 0u64;
    for geo in &GEOS {
        for (formats, acc) in [
            (
                ["fixed(wl=8,fl=5)", "fixed(wl=8,fl=6)", "fixed(wl=12,fl=8)"],
                "fp32",
            ),
            (["e4m3", "e5m2", "bf16"], "fp16:1"),
            (["mxfp6_e2m3", "bf16", "e4m3"], "bf16:4"),
            (["fp32", "nvfp4", "fixed(wl=8,fl=4)"], "float(e=6,m=7):3"),
        ] {
            let mut spec = spec_of(geo);
            spec.acc = acc.parse().unwrap();
            if t % 2 == 1 {
                spec.out = QuantSpec {
                    rounding: Rounding::Stochastic { bits: 10 },
                    seed: t,
                    ..QuantSpec::new("e5m2".parse().unwrap())
                };
            }
            let r = setup(geo, formats, &spec, t);
            for pass in PASSES {
                let bias =
                    (pass == ConvPass::Forward).then(|| common::uniform(r.g.cout, t + 9, 1.0));
                let (gpu, rr) = both(&r, pass, &spec, bias.as_deref());
                assert_eq!(gpu, rr.out.words, "{pass:?} {geo:?} {formats:?} acc {acc}");
            }
            t += 1;
        }
    }
}

#[test]
fn fp32_accumulation_is_within_the_bound_of_the_direct_loops() {
    // Each output is a sum of K products (plus one bias addition): |err| <= gamma_(K+1)
    // (sum |products| + |bias|), gamma_j = j u / (1 - j u), u = 2^-24; the f64 direct
    // loops add at most K 2^-53 sum |products|.
    let u = 2f64.powi(-24);
    for (t, geo) in GEOS.iter().enumerate() {
        let spec = spec_of(geo);
        let r = setup(geo, ["bf16", "e4m3", "fp16"], &spec, 50 + t as u64);
        let dec = |v: &[f32], q: &QuantSpec| reference::dequantize(&reference::quantize(v, q));
        let (x, w, dy) = (dec(&r.x, &r.qx), dec(&r.w, &r.qw), dec(&r.dy, &r.qdy));
        for pass in PASSES {
            let (_, _, k) = r.g.gemm_dims(pass);
            let bias = (pass == ConvPass::Forward).then(|| common::uniform(r.g.cout, 7, 1.0));
            let (gpu, rr) = both(&r, pass, &spec, bias.as_deref());
            let (exact, mag) = reference::conv::conv2d_direct(pass, &r.g, &x, &w, &dy);
            let per_channel = r.g.oh * r.g.ow;
            for (i, (&e, &m)) in exact.iter().zip(&mag).enumerate() {
                let b = bias
                    .as_ref()
                    .map_or(0.0, |b| b[(i / per_channel) % r.g.cout] as f64);
                let gamma = (k + 1) as f64 * u / (1.0 - (k + 1) as f64 * u);
                let bound = gamma * (m + b.abs()) + k as f64 * 2f64.powi(-53) * m;
                let got = f32::from_bits(gpu[i]) as f64;
                assert!(
                    (got - e - b).abs() <= bound,
                    "{pass:?} {geo:?} [{i}]: gpu {got}, exact {}, bound {bound}",
                    e + b
                );
                let cpu = rr.c[i] as f64;
                assert!(
                    (cpu - e - b).abs() <= bound,
                    "{pass:?} {geo:?} [{i}]: reference {cpu} outside the bound"
                );
            }
        }
    }
}

#[test]
fn backward_passes_pass_a_finite_difference_check() {
    // L(X, W) = sum Y * G with Y = conv(X, W), in f64 from the direct loops. L is linear in
    // each element, so (L(x + h) - L(x - h)) / (2h) is dL/dx up to f64 rounding; the GPU's
    // fp32 gradient must match it within gamma_K sum |products| (plus a 1e-9 relative slack
    // for the f64 differences).
    let u = 2f64.powi(-24);
    for (t, geo) in GEOS.iter().enumerate() {
        let spec = spec_of(geo);
        let r = setup(geo, ["fp32", "fp32", "fp32"], &spec, 90 + t as u64);
        let loss = |x: &[f32], w: &[f32]| -> f64 {
            let (y, _) = reference::conv::conv2d_direct(ConvPass::Forward, &r.g, x, w, &[]);
            y.iter().zip(&r.dy).map(|(a, b)| a * *b as f64).sum()
        };
        let (dx, _) = both(&r, ConvPass::BackwardData, &spec, None);
        let (dw, _) = both(&r, ConvPass::BackwardWeight, &spec, None);
        let (_, mag_dx) =
            reference::conv::conv2d_direct(ConvPass::BackwardData, &r.g, &r.x, &r.w, &r.dy);
        let (_, mag_dw) =
            reference::conv::conv2d_direct(ConvPass::BackwardWeight, &r.g, &r.x, &r.w, &r.dy);
        let h = 0.25f32;
        let check = |grad: &[u32],
                     mag: &[f64],
                     k: usize,
                     i: usize,
                     lp: f64,
                     lm: f64,
                     step: f64,
                     what: &str| {
            let fd = (lp - lm) / step;
            let got = f32::from_bits(grad[i]) as f64;
            let bound =
                k as f64 * u / (1.0 - k as f64 * u) * mag[i] + 1e-9 * (lp.abs() + lm.abs()) / step;
            assert!(
                (got - fd).abs() <= bound,
                "{geo:?} {what}[{i}]: gpu {got}, finite difference {fd}, bound {bound}"
            );
        };
        let kx = r.g.gemm_dims(ConvPass::BackwardData).2;
        for i in (0..r.x.len()).step_by(7) {
            let (mut xp, mut xm) = (r.x.clone(), r.x.clone());
            xp[i] += h;
            xm[i] -= h;
            let step = xp[i] as f64 - xm[i] as f64;
            check(
                &dx,
                &mag_dx,
                kx,
                i,
                loss(&xp, &r.w),
                loss(&xm, &r.w),
                step,
                "dX",
            );
        }
        let kw = r.g.gemm_dims(ConvPass::BackwardWeight).2;
        for i in (0..r.w.len()).step_by(3) {
            let (mut wp, mut wm) = (r.w.clone(), r.w.clone());
            wp[i] += h;
            wm[i] -= h;
            let step = wp[i] as f64 - wm[i] as f64;
            check(
                &dw,
                &mag_dw,
                kw,
                i,
                loss(&r.x, &wp),
                loss(&r.x, &wm),
                step,
                "dW",
            );
        }
    }
}

#[test]
fn bad_convolutions_are_errors() {
    let c = ctx();
    let q = QuantSpec::new(lowp::format::Format::FP32);
    let (x, _) = ops::quantize(c, &[1.0; 2 * 3 * 4 * 4], &[2, 3, 4, 4], &q).unwrap();
    let (w, _) = ops::quantize(c, &[1.0; 5 * 2 * 3 * 3], &[5, 2, 3, 3], &q).unwrap();
    let e = ops::conv2d_forward(c, &x, &w, None, &Conv2dSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("input channels"), "{e}");
    let (big, _) = ops::quantize(c, &[1.0; 3 * 5 * 5], &[1, 3, 5, 5], &q).unwrap();
    let e = ops::conv2d_forward(c, &x, &big, None, &Conv2dSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("spans"), "{e}");
    let (w3, _) = ops::quantize(c, &[1.0; 2 * 3 * 3 * 3], &[2, 3, 3, 3], &q).unwrap();
    let e = ops::conv2d_forward(c, &x, &w3, Some(&[1.0; 3]), &Conv2dSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("bias"), "{e}");
    let (dy, _) = ops::quantize(c, &[1.0; 2 * 2 * 3 * 3], &[2, 2, 3, 3], &q).unwrap();
    let e = ops::conv2d_backward_data(c, &dy, &w3, [4, 4], &Conv2dSpec::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("output gradient"), "{e}");
    let e = ops::conv2d_backward_weight(
        c,
        &dy,
        &x,
        [3, 3],
        &Conv2dSpec {
            stride: [0, 1],
            ..Conv2dSpec::new()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("stride"), "{e}");
}

#[test]
fn split_k_backward_weight_is_within_the_bound() {
    // Backward weight of a 3 x 2 x 3 x 3 kernel over a 4 x 2 x 40 x 40 input: a GEMM view of
    // 3 x 18 outputs and K = 6400, which the fp32 kernel splits across workgroups. Bound as
    // in fp32_accumulation_is_within_the_bound_of_the_direct_loops.
    let u = 2f64.powi(-24);
    let geo: Geo = ([4, 2, 40, 40], [3, 3, 3], [1, 1], [1, 1], [1, 1], 1);
    let spec = spec_of(&geo);
    let r = setup(&geo, ["bf16", "e4m3", "fp16"], &spec, 7);
    let dec = |v: &[f32], q: &QuantSpec| reference::dequantize(&reference::quantize(v, q));
    let (x, w, dy) = (dec(&r.x, &r.qx), dec(&r.w, &r.qw), dec(&r.dy, &r.qdy));
    let pass = ConvPass::BackwardWeight;
    let k = r.g.gemm_dims(pass).2;
    assert_eq!(k, 6400);
    let (gpu, _) = both(&r, pass, &spec, None);
    let (exact, mag) = reference::conv::conv2d_direct(pass, &r.g, &x, &w, &dy);
    let gamma = k as f64 * u / (1.0 - k as f64 * u);
    for (i, (&e, &m)) in exact.iter().zip(&mag).enumerate() {
        let got = f32::from_bits(gpu[i]) as f64;
        let bound = gamma * m + k as f64 * 2f64.powi(-53) * m;
        assert!(
            (got - e).abs() <= bound,
            "dW[{i}]: {got} vs {e}, bound {bound}"
        );
    }
}

/// The stats words (overflow, underflow, NaN counts, amax bits) a packed output's store
/// gathers, as the reference quantization counts them.
fn stats_words(e: &lowp::quant::Exceptions) -> Vec<u32> {
    let n = |x: u64| x as u32;
    vec![n(e.overflow), n(e.underflow), n(e.nan), e.amax.to_bits()]
}

#[test]
fn backward_data_by_taps_equals_its_twin_bit_for_bit() {
    // Backward data passes with fewer tap products than im2col values (valid, strided,
    // dilated), run by taps and rounded into their output as they store: f32 (the sums'
    // bits), e5m2 with stochastic rounding, and a per-tensor scaled e4m3 (two phases), each
    // against the twin's f32 values quantized by the reference. The operands (fp32 W, bf16
    // dY) make products that f32 rounds, so the order of the sums shows, and whether the
    // multiply-adds round once or twice (the twin takes either: WGSL's `fma` allows both). The last case's panel budget cuts its
    // five images into chunks of three and two. On a GPU (no panel kernel) the tiled
    // kernel's order differs: there the bound of fp32_accumulation_is_within_the_bound_of_
    // the_direct_loops applies, and this test checks the route is taken.
    use lowp::gpu::buffers::{read_u32, zeroed};
    use lowp::ops::conv::{prepare_conv, record_conv};
    use lowp::ops::conv_taps::tap_chunk;
    use lowp::ops::packed_io::Dst;
    use lowp::quant::Scaling;
    let geos: [(Geo, usize); 4] = [
        (
            ([2, 3, 9, 9], [4, 3, 3], [1, 1], [0, 0], [1, 1], 1),
            1 << 20,
        ),
        (
            ([2, 3, 8, 8], [5, 3, 3], [2, 2], [1, 1], [1, 1], 1),
            1 << 20,
        ),
        (
            ([1, 2, 9, 8], [3, 3, 2], [2, 1], [0, 2], [1, 2], 1),
            1 << 20,
        ),
        (([5, 3, 9, 9], [4, 3, 3], [1, 1], [0, 0], [1, 1], 1), 4096),
    ];
    let outs = [
        QuantSpec::new("fp32".parse().unwrap()),
        QuantSpec {
            rounding: Rounding::Stochastic { bits: 13 },
            seed: 77,
            ..QuantSpec::new("e5m2".parse().unwrap())
        },
        QuantSpec {
            scaling: Scaling::Tensor,
            saturate: true,
            ..QuantSpec::new("e4m3".parse().unwrap())
        },
    ];
    for (t, (geo, words)) in geos.iter().enumerate() {
        let c = &ctx().fork().with_panel_words(*words);
        let spec = spec_of(geo);
        let r = setup(geo, ["fp32", "fp32", "bf16"], &spec, 300 + t as u64);
        let g = &r.g;
        let dec = |v: &[f32], q: &QuantSpec| reference::dequantize(&reference::quantize(v, q));
        let (w, dy) = (dec(&r.w, &r.qw), dec(&r.dy, &r.qdy));
        let twins = [false, true].map(|f| reference::conv::backward_data_by_taps(g, &w, &dy, f));
        let tw = ops::quantize(c, &r.w, &[g.cout, g.cin, g.kh, g.kw], &r.qw)
            .unwrap()
            .0;
        let tdy = ops::quantize(c, &r.dy, &[g.batch, g.cout, g.oh, g.ow], &r.qdy)
            .unwrap()
            .0;
        let pass = ConvPass::BackwardData;
        let (view, params) = prepare_conv(pass, g, &tw, &tdy, None, &spec).unwrap();
        let chunk = tap_chunk(c, &view, &params);
        let want_chunk = if *words == 4096 { 3 } else { g.batch };
        assert_eq!(chunk, Some(want_chunk), "{geo:?}: the pass runs by taps");
        // The twin whose multiply-adds round as this device's do (the f32 output first).
        let mut twin = &twins[0];
        for out in &outs {
            let dx = lowp::ops::quantize::alloc_tensor(c, &[twin.len()], out).unwrap();
            let stats = zeroed(c, "stats", 4).unwrap();
            let none = zeroed(c, "no bias", 1).unwrap();
            let mut enc = lowp::gpu::Encoder::new(c);
            let d = Dst::Packed {
                t: &dx,
                spec: out,
                stats: &stats,
                add: None,
            };
            record_conv(c, &mut enc, &view, params, (&tw, &tdy), &none, d).unwrap();
            enc.submit();
            if out.format == lowp::format::Format::Float(lowp::format::FloatFormat::FP32) {
                let got = dx.read_words(c).unwrap();
                twin = &twins[(got != common::bits(&twins[0])) as usize];
            }
            let q = reference::quantize(twin, out);
            let what = format!("{geo:?} into {}", out.format);
            if c.gemm_panels() {
                assert_eq!(dx.read_words(c).unwrap(), q.words, "{what}: codes");
                if out.scaling == Scaling::Tensor {
                    let scale = vec![q.scale_exp as u32];
                    assert_eq!(dx.read_scales(c).unwrap(), scale, "{what}: scale");
                }
                assert_eq!(
                    read_u32(c, &stats, 4).unwrap(),
                    stats_words(&q.exceptions),
                    "{what}: counts and amax"
                );
            }
        }
    }
}
