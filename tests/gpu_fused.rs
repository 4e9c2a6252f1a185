//! The fused kernels read packed tensors (decoded as they load) and write packed tensors
//! (rounded as they store). Each equals its twin bit for bit: the elementwise kernels the
//! CPU reference (decode, the reference op, quantize with the output's spec), codes,
//! scales, exception counts and amax; batch norm and the GEMM family their own unfused paths (f32 sums, then
//! the quantize kernel), which tests/gpu_gemm*.rs hold to the reference.

mod common;

use lowp::accum::{Accumulator, GemmSpec};
use lowp::conv::Pool;
use lowp::format::Format;
use lowp::gpu::Encoder;
use lowp::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use lowp::gpu::{GpuContext, Tensor};
use lowp::ops::batchnorm::*;
use lowp::ops::elementwise::*;
use lowp::ops::gemm::{prepare_gemm, record_view};
use lowp::ops::packed_io::Dst;
use lowp::ops::quantize::alloc_tensor;
use lowp::quant::{Exceptions, QuantSpec, Rounding, Scaling};
use lowp::reference::batchnorm::BnStat;
use lowp::reference::elementwise as cpu;
use lowp::reference::quantize::{Quantized, dequantize, quantize};

fn spec(f: &str, rounding: Rounding, saturate: bool, scaling: Scaling) -> QuantSpec {
    QuantSpec {
        rounding,
        saturate,
        scaling,
        seed: 0x5eed_0001,
        stream: 5,
        ..QuantSpec::new(f.parse::<Format>().unwrap())
    }
}

/// Output specs: every rounding mode, saturation, codes that straddle words (6 and 5 bits),
/// a per-tensor scale, MX and NVFP4 blocks, and f32-wide codes.
fn out_specs() -> Vec<QuantSpec> {
    let sr = Rounding::Stochastic { bits: 13 };
    vec![
        spec("e5m2", sr, false, Scaling::None),
        spec("e4m3", Rounding::Nearest, true, Scaling::None),
        spec("e3m2", Rounding::NearestAway, false, Scaling::None),
        spec("fixed(wl=8,fl=4)", sr, false, Scaling::None),
        spec(
            "fixed(wl=5,fl=5)",
            Rounding::TowardZero,
            false,
            Scaling::None,
        ),
        spec("e4m3", sr, true, Scaling::Tensor),
        spec("mxfp4_e2m1", Rounding::Nearest, false, Scaling::None),
        spec("nvfp4", sr, false, Scaling::None),
        spec("fp32", Rounding::Nearest, false, Scaling::None),
        spec("bf16", sr, false, Scaling::None),
    ]
}

/// Input specs, taken in turn: plain, MX, per-tensor scaled, fixed point, f32, E4M3 blocks.
fn in_specs() -> Vec<QuantSpec> {
    let n = Rounding::Nearest;
    vec![
        spec("e4m3", n, true, Scaling::None),
        spec("mxfp8_e5m2", n, false, Scaling::None),
        spec("e5m2", n, false, Scaling::Tensor),
        spec("fixed(wl=8,fl=3)", n, false, Scaling::None),
        spec("fp32", n, false, Scaling::None),
        spec(
            "block(elem=e3m2,size=12,scale=e4m3)",
            n,
            false,
            Scaling::None,
        ),
    ]
}

/// A GPU tensor holding `x` quantized as `s`, and its values as the reference decodes them.
fn packed_input(c: &GpuContext, x: &[f32], s: &QuantSpec) -> (Tensor, Vec<f32>) {
    let (t, _) = lowp::ops::quantize(c, x, &[x.len()], s).unwrap();
    (t, dequantize(&quantize(x, s)))
}

/// The GPU's stored scales in the reference's layout.
fn expected_scales(q: &Quantized) -> Vec<u32> {
    match (q.spec.format.block(), q.spec.scaling) {
        (Some(_), _) => q.scales.clone(),
        (None, Scaling::Tensor) => vec![q.scale_exp as u32],
        _ => Vec::new(),
    }
}

/// Counts and amax as the kernels store them.
fn stats_words(e: &Exceptions) -> Vec<u32> {
    vec![
        e.overflow as u32,
        e.underflow as u32,
        e.nan as u32,
        e.amax.to_bits(),
    ]
}

/// The `k`-th of `parts` shares of the output specs: those whose index is `k` modulo
/// `parts`, so a loop over `parts` cases (the input specs, say) checks every output spec
/// once. Each pairing is another pipeline for lavapipe to compile, and the decode and the
/// rounding paths are independent, so the full cross product would add only compile time.
fn outs_for(k: usize, parts: usize) -> impl Iterator<Item = QuantSpec> {
    out_specs().into_iter().skip(k % parts).step_by(parts)
}

/// Runs `op` writing a packed output of `n` values under the `k`-th input spec's share of
/// the output specs ([`outs_for`]), and checks it against the reference quantization of
/// `want`.
fn check_output(
    c: &GpuContext,
    k: usize,
    what: &str,
    want: &[f32],
    op: impl Fn(&mut Encoder, Dst<'_>),
) {
    for s in outs_for(k, in_specs().len()) {
        let out = alloc_tensor(c, &[want.len()], &s).unwrap();
        let stats = zeroed(c, "stats", 4).unwrap();
        common::submit(|e| {
            op(
                e,
                Dst::Packed {
                    t: &out,
                    spec: &s,
                    stats: &stats,
                    add: None,
                },
            )
        });
        let q = quantize(want, &s);
        let f = s.format;
        assert_eq!(
            out.read_words(c).unwrap(),
            q.words,
            "{what} into {f}: codes"
        );
        assert_eq!(
            out.read_scales(c).unwrap(),
            expected_scales(&q),
            "{what} into {f}: scales"
        );
        assert_eq!(
            read_u32(c, &stats, 4).unwrap(),
            stats_words(&q.exceptions),
            "{what} into {f}: counts and amax"
        );
    }
}

#[test]
fn relu_and_convert_round_as_they_store() {
    let c = common::small_grid_gpu();
    for (k, si) in in_specs().iter().enumerate() {
        // Four elements an invocation, and a tail of three.
        let x = common::tricky_inputs(1003, 10 + k as u64, 60.0);
        let g = common::tricky_inputs(1003, 20 + k as u64, 2.0);
        let (tx, xd) = packed_input(c, &x, si);
        let (tg, gd) = packed_input(c, &g, &in_specs()[(k + 1) % 5]);
        let n = x.len();
        check_output(c, k, "relu", &cpu::relu_forward(&xd), |e, d| {
            record_relu_forward(c, e, &tx, d, n).unwrap()
        });
        check_output(
            c,
            k,
            "relu backward",
            &cpu::relu_backward(&xd, &gd),
            |e, d| record_relu_backward(c, e, &tx, &tg, d, n).unwrap(),
        );
        check_output(c, k, "convert", &xd, |e, d| {
            record_convert(c, e, &tx, d, n).unwrap()
        });
    }
}

#[test]
fn pooling_decodes_and_rounds_in_place_of_f32() {
    let c = common::small_grid_gpu();
    // 6 planes of 12 x 10 (odd window counts: MX blocks cut across planes and rows); 3 of
    // 6 x 12 (windows tiling planes four wide: two windows a backward invocation, rows of
    // four stored as vectors).
    for (k, si, p) in in_specs().iter().enumerate().flat_map(|(k, si)| {
        [(6, [12, 10]), (3, [6, 12])].map(|(planes, in_hw)| {
            let p = Pool {
                planes,
                in_hw,
                pool: 2,
            };
            (k, si, p)
        })
    }) {
        let n_in = p.planes * p.in_hw[0] * p.in_hw[1];
        let n_out = p.planes * p.out_hw()[0] * p.out_hw()[1];
        // Ties within windows: integers from a small set.
        let x: Vec<f32> = common::uniform(n_in, 30 + k as u64, 4.0)
            .iter()
            .map(|v| v.round())
            .collect();
        let g = common::tricky_inputs(n_out, 40 + k as u64, 3.0);
        let (tx, xd) = packed_input(c, &x, si);
        let (tg, gd) = packed_input(c, &g, &in_specs()[(k + 2) % 5]);
        check_output(c, k, "maxpool", &cpu::maxpool_forward(&xd, &p), |e, d| {
            record_maxpool_forward(c, e, &tx, d, &p).unwrap()
        });
        let want = cpu::maxpool_backward(&xd, &gd, &p);
        check_output(c, k, "maxpool backward", &want, |e, d| {
            record_maxpool_backward(c, e, &tx, &tg, d, &p).unwrap()
        });
        check_output(c, k, "avgpool", &cpu::avgpool_forward(&xd, &p), |e, d| {
            record_avgpool_forward(c, e, &tx, d, &p).unwrap()
        });
        check_output(
            c,
            k,
            "avgpool backward",
            &cpu::avgpool_backward(&gd, &p),
            |e, d| record_avgpool_backward(c, e, &tg, d, &p).unwrap(),
        );
    }
}

#[test]
fn losses_and_column_sums_decode_as_they_load() {
    let c = common::small_grid_gpu();
    let (rows, cols) = (37, 10);
    for (k, si) in in_specs().iter().enumerate() {
        let z = common::finite(rows * cols, 50 + k as u64, 8.0)
            .into_iter()
            .map(|v| v.clamp(-60.0, 60.0))
            .collect::<Vec<_>>();
        let (tz, zd) = packed_input(c, &z, si);
        let labels: Vec<u32> = (0..rows as u32)
            .map(|i| (i * 3 + 1) % cols as u32)
            .collect();
        let bl = upload_u32(c, "labels", &labels).unwrap();
        let (grad, loss, correct) = (
            zeroed(c, "grad", rows * cols).unwrap(),
            zeroed(c, "loss", rows).unwrap(),
            zeroed(c, "correct", rows).unwrap(),
        );
        let out = XentOutputs {
            grad: &grad,
            loss: &loss,
            correct: &correct,
        };
        common::submit(|e| record_softmax_xent(c, e, &tz, &bl, &out, (rows, cols)).unwrap());
        let (g, _, ok) = cpu::softmax_xent(&zd, &labels, (rows, cols));
        assert_eq!(read_u32(c, &grad, rows * cols).unwrap(), common::bits(&g));
        assert_eq!(read_u32(c, &correct, rows).unwrap(), ok);
        common::submit(|e| record_mse(c, e, &tz, &bl, &out, (rows, cols)).unwrap());
        let (g, l, _) = cpu::mse(&zd, &labels, (rows, cols));
        assert_eq!(read_u32(c, &grad, rows * cols).unwrap(), common::bits(&g));
        assert_eq!(read_u32(c, &loss, rows).unwrap(), common::bits(&l));
        // The gradient times a loss scale of 2^k, rounded as it is stored.
        let scale = 2f32.powi(3 * k as i32 - 4);
        let state = upload_u32(c, "loss scale", &[scale.to_bits(), 0]).unwrap();
        for (kind, (g, _, _)) in [
            (
                Loss::SoftmaxXent,
                cpu::softmax_xent(&zd, &labels, (rows, cols)),
            ),
            (Loss::Mse, cpu::mse(&zd, &labels, (rows, cols))),
        ] {
            let scaled: Vec<f32> = g.iter().map(|v| v * scale).collect();
            check_output(c, k, &format!("{kind:?} gradient"), &scaled, |e, d| {
                let io = ((&tz, &*bl), (&*loss, &*correct));
                record_loss(c, e, kind, io.0, d, io.1, &state, (rows, cols)).unwrap()
            });
        }
        // Column sums of a rows x cols x inner array.
        let sums = zeroed(c, "sums", cols).unwrap();
        let shape = (rows, 2, 5);
        common::submit(|e| record_col_sum(c, e, &tz, &sums, shape).unwrap());
        assert_eq!(
            read_u32(c, &sums, 2).unwrap(),
            common::bits(&cpu::col_sum(&zd, shape))
        );
    }
}

/// GEMM outputs rounded as they are stored equal the sums stored in f32 and then quantized,
/// on every path that stores them: the tiled kernel, split-K's reduction, the per-element
/// emulated accumulator and the dot4 integer kernel.
#[test]
fn gemm_outputs_round_as_they_store() {
    let c = &common::gpu();
    let fp8 = spec("e4m3", Rounding::Nearest, true, Scaling::None);
    let int8 = spec("fixed(wl=8,fl=4)", Rounding::Nearest, false, Scaling::None);
    let emulated = Accumulator::Emulated {
        format: "bf16".parse().unwrap(),
        chunk: 16,
    };
    // (m, n, k, operand spec, accumulator): tiled; split-K (a thin output, a long K);
    // per element; dot4.
    let cases = [
        (33, 70, 40, fp8, Accumulator::Fp32),
        (8, 8, 3000, fp8, Accumulator::Fp32),
        (9, 13, 50, fp8, emulated),
        (20, 24, 64, int8, Accumulator::Fp32),
    ];
    for (case, &(m, n, k, op_spec, acc)) in cases.iter().enumerate() {
        let (ta, _) = packed_input(c, &common::uniform(m * k, 60 + case as u64, 2.0), &op_spec);
        let (tb, _) = packed_input(c, &common::uniform(k * n, 70 + case as u64, 2.0), &op_spec);
        let (ta, tb) = (ta.reshaped(vec![m, k]), tb.reshaped(vec![k, n]));
        let bias = common::uniform(n, 80 + case as u64, 1.0);
        let bias_buf = upload_f32(c, "bias", &bias).unwrap();
        // Each path under its share of the output specs (all ten over the four paths).
        for out in outs_for(case, cases.len()) {
            let gs = GemmSpec {
                trans_a: false,
                trans_b: false,
                acc,
                out,
            };
            let (want, exc) = lowp::ops::gemm(c, &ta, &tb, Some(&bias), &gs).unwrap();
            let t = alloc_tensor(c, &[m, n], &out).unwrap();
            let stats = zeroed(c, "stats", 4).unwrap();
            let (view, params, _) = prepare_gemm(&ta, &tb, Some(n), &gs).unwrap();
            let mut enc = Encoder::new(c);
            let d = Dst::Packed {
                t: &t,
                spec: &out,
                stats: &stats,
                add: None,
            };
            record_view(c, &mut enc, &view, params, &ta, &tb, &bias_buf, d).unwrap();
            enc.submit();
            let what = format!("{m}x{n}x{k} into {}", out.format);
            assert_eq!(
                t.read_words(c).unwrap(),
                want.read_words(c).unwrap(),
                "{what}"
            );
            assert_eq!(
                t.read_scales(c).unwrap(),
                want.read_scales(c).unwrap(),
                "{what}"
            );
            assert_eq!(read_u32(c, &stats, 4).unwrap(), stats_words(&exc), "{what}");
        }
    }
}

/// Residual shortcuts read both operands packed and round as they store; the shortcut's
/// gradient is read packed into f32. A term added before rounding (a pending shortcut
/// gradient) gives the rounding of the soft-float sum.
#[test]
fn residual_shortcuts_and_added_terms_round_as_they_store() {
    let c = common::small_grid_gpu();
    let sc = Shortcut::option_a(3, [4, 6, 6], [8, 3, 3]);
    let (ns, no) = (3 * 4 * 6 * 6, 3 * 8 * 3 * 3);
    for (k, si) in in_specs().iter().enumerate() {
        let (ta, ad) = packed_input(c, &common::tricky_inputs(no, 90 + k as u64, 9.0), si);
        let s2 = &in_specs()[(k + 3) % 5];
        let (ts, sd) = packed_input(c, &common::tricky_inputs(ns, 95 + k as u64, 9.0), s2);
        check_output(
            c,
            k,
            "residual",
            &cpu::residual_forward(&ad, &sd, &sc),
            |e, d| record_residual_forward(c, e, (&ta, &ts), d, &sc).unwrap(),
        );
        let ds = zeroed(c, "ds", ns).unwrap();
        common::submit(|e| record_skip_backward(c, e, &ta, &ds, &sc).unwrap());
        assert_eq!(
            read_u32(c, &ds, ns).unwrap(),
            common::bits(&cpu::skip_backward(&ad, &sc))
        );
        // relu(x) + t, rounded once.
        let t = common::tricky_inputs(no, 99 + k as u64, 5.0);
        let bt = upload_f32(c, "term", &t).unwrap();
        let want: Vec<f32> = cpu::relu_forward(&ad)
            .iter()
            .zip(&t)
            .map(|(&y, &t)| f32::from_bits(lowp::softfloat::add(y.to_bits(), t.to_bits())))
            .collect();
        check_output(c, k, "relu plus a term", &want, |e, d| {
            let Dst::Packed { t, spec, stats, .. } = d else {
                unreachable!()
            };
            let d = Dst::Packed {
                t,
                spec,
                stats,
                add: Some(&bt),
            };
            record_relu_forward(c, e, &ta, d, no).unwrap()
        });
    }
}

/// Batch norm reads x and g packed and rounds y and dx as it stores them: the same
/// statistics and the same codes as the f32 kernels (tests/gpu_layers.rs holds those to
/// the CPU twin) on the decoded values, rounded after.
#[test]
fn batchnorm_decodes_and_rounds_in_place_of_f32() {
    let c = common::small_grid_gpu();
    // A channel's pixels not a multiple of 4 (element by element), then a multiple (four
    // elements of one channel an invocation).
    for (k, si) in in_specs().iter().enumerate() {
        let bn = BatchNorm {
            batch: 4,
            channels: 3,
            pixels: if k % 2 == 1 { 5 * 7 } else { 6 * 6 },
            eps: 1e-5,
            momentum: 0.1,
        };
        let n = bn.batch * bn.channels * bn.pixels;
        let gb = upload_f32(c, "gb", &[1.0, 0.5, -2.0, 0.0, 0.25, 3.0]).unwrap();
        let (tx, xd) = packed_input(c, &common::finite(n, 110 + k as u64, 4.0), si);
        let gs = &in_specs()[(k + 1) % 5];
        let (tg, gd) = packed_input(c, &common::finite(n, 120 + k as u64, 1.0), gs);
        let (bx, bg) = (
            upload_f32(c, "x", &xd).unwrap(),
            upload_f32(c, "g", &gd).unwrap(),
        );
        let words = BnStat::new(bn.channels).words();
        let (stat_f, stat_p) = (
            upload_u32(c, "stat", &words).unwrap(),
            upload_u32(c, "stat", &words).unwrap(),
        );
        let (y, dx) = (zeroed(c, "y", n).unwrap(), zeroed(c, "dx", n).unwrap());
        common::submit(|e| {
            record_bn_stats(c, e, &bx, &stat_f, &bn, true).unwrap();
            record_bn_forward(c, e, &bx, (&gb, &stat_f), &y, &bn).unwrap();
            record_bn_backward(c, e, (&bx, &bg), (&gb, &stat_f), &dx, &bn).unwrap();
        });
        let f32s = |b: &wgpu::Buffer| -> Vec<f32> {
            read_u32(c, b, n)
                .unwrap()
                .into_iter()
                .map(f32::from_bits)
                .collect()
        };
        let (want_y, want_dx) = (f32s(&y), f32s(&dx));
        common::submit(|e| record_bn_stats(c, e, &tx, &stat_p, &bn, true).unwrap());
        check_output(c, k, "batch norm", &want_y, |e, d| {
            record_bn_forward(c, e, &tx, (&gb, &stat_p), d, &bn).unwrap()
        });
        check_output(c, k, "batch norm backward", &want_dx, |e, d| {
            record_bn_backward(c, e, (&tx, &tg), (&gb, &stat_p), d, &bn).unwrap()
        });
        assert_eq!(
            read_u32(c, &stat_p, 6 * bn.channels).unwrap(),
            read_u32(c, &stat_f, 6 * bn.channels).unwrap(),
            "statistics and gradient sums"
        );
    }
}

/// A concatenation writes its output in one dispatch a part: each part decoded as it
/// loads, the whole output rounded as one tensor (a scaled output's amax over every part
/// before any is rounded), equal to the reference's placement then quantization. A map's
/// backward into a pending f32 sum (`Dst::Accumulate`) adds in soft-float.
#[test]
fn concatenation_rounds_as_one_tensor_and_pending_sums_add() {
    let c = common::small_grid_gpu();
    // Channels 3, 5 and 2 of 4 x 5 pixels (the windows straddle words of every width).
    let (batch, hw, parts) = (2, [4, 5], [3usize, 5, 2]);
    let total: usize = parts.iter().sum();
    let mut offset = 0;
    let mut maps = Vec::new();
    for &p in &parts {
        maps.push(Shortcut::window(
            batch,
            [p, hw[0], hw[1]],
            [total, hw[0], hw[1]],
            offset,
        ));
        offset += p;
    }
    let n_out = batch * total * hw[0] * hw[1];
    for k in 0..in_specs().len() {
        let mut want = vec![0f32; n_out];
        let mut tensors = Vec::new();
        for (m, sc) in maps.iter().enumerate() {
            let n = batch * sc.source.iter().product::<usize>();
            let s = &in_specs()[(k + m) % 5];
            let (t, d) = packed_input(
                c,
                &common::tricky_inputs(n, 200 + (5 * k + m) as u64, 9.0),
                s,
            );
            cpu::place(&d, sc, &mut want);
            tensors.push(t);
        }
        check_output(c, k, "concat", &want, |e, d| {
            let parts: Vec<_> = tensors
                .iter()
                .map(|t| t.into())
                .zip(maps.iter().copied())
                .collect();
            record_concat(c, e, &parts, d).unwrap()
        });
        // Each part's gradient window, summed into one pending f32 buffer.
        let g = common::tricky_inputs(n_out, 300 + k as u64, 9.0);
        let bg = upload_f32(c, "g", &g).unwrap();
        let np = batch * maps[0].source.iter().product::<usize>();
        let start = common::tricky_inputs(np, 310 + k as u64, 9.0);
        let sum = upload_f32(c, "sum", &start).unwrap();
        common::submit(|e| {
            record_skip_backward(c, e, &bg, Dst::Accumulate(&sum), &maps[0]).unwrap()
        });
        let want: Vec<u32> = start
            .iter()
            .zip(cpu::skip_backward(&g, &maps[0]))
            .map(|(a, b)| lowp::softfloat::add(a.to_bits(), b.to_bits()))
            .collect();
        assert_eq!(read_u32(c, &sum, np).unwrap(), want);
    }
}
