//! The optimizer and loss-scale kernels equal their CPU twins bit for bit, through several
//! steps, on values that reach subnormals and large magnitudes (Adam's soft-float square
//! root and division included); the update on packed tensors equals decoding, the
//! reference step, and quantizing each new value with its own spec.

mod common;

use lowp::gpu::Encoder;
use lowp::gpu::GpuContext;
use lowp::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use lowp::ops::optim::*;
use lowp::ops::packed_io::{Dst, Src};
use lowp::quant::Exceptions;
use lowp::reference::optim as cpu;

// Not a multiple of 4: the last invocation takes its three elements one by one.
const N: usize = 1003;

/// Records one step on f32 buffers: each new value into a buffer of its own, then copied
/// over the old (the update reads every old value for each new one); with `from_velocity`
/// (SGD's step size), the new weights from the new velocity (`record_sgd_weights`).
fn f32_step(
    c: &GpuContext,
    e: &mut Encoder,
    rule: &Rule,
    (g, w, v, m2): (
        &wgpu::Buffer,
        &wgpu::Buffer,
        &wgpu::Buffer,
        Option<&wgpu::Buffer>,
    ),
    ls: &wgpu::Buffer,
    from_velocity: Option<f32>,
) {
    let ins = StepInputs {
        g: Src::F32(g),
        w: Src::F32(w),
        v: Src::F32(v),
        moment2: m2.map(Src::F32),
    };
    let mut stored = vec![(Stored::Weights, w), (Stored::Velocity, v)];
    if let Some(m2) = m2 {
        stored.push((Stored::Moment2, m2));
    }
    let outs: Vec<_> = stored
        .iter()
        .map(|_| zeroed(c, "new", N).unwrap())
        .collect();
    // The velocity first: the weights may come from its new value.
    for k in [1, 0, 2].into_iter().filter(|&k| k < stored.len()) {
        let (which, out) = (stored[k].0, &outs[k]);
        match (which, from_velocity) {
            (Stored::Weights, Some(lr)) => {
                let ins = (Src::F32(w), Src::F32(&outs[1]));
                record_sgd_weights(c, e, lr, ins, ls, N, Dst::F32(out)).unwrap()
            }
            _ => record_update(c, e, rule, &ins, ls, N, which, Dst::F32(out)).unwrap(),
        }
    }
    for ((_, old), new) in stored.iter().zip(&outs) {
        e.copy_buffer_to_buffer(new, 0, old, 0, 4 * N as u64);
    }
}

#[test]
fn sgd_matches_with_and_without_a_loss_scale() {
    let c = common::small_grid_gpu();
    // (Nesterov, loss scale, weight decay, new weights from the new velocity)
    let cases = [
        (false, 1.0f32, 5e-4, false),
        (true, 1024.0, 0.0, false),
        (false, 0.125, 5e-4, false),
        (false, 1024.0, 5e-4, true),
        (false, 1.0, 0.0, true),
    ];
    for (nesterov, scale, weight_decay, from_velocity) in cases {
        let mut g = common::finite(N, 9, 2.0);
        let (mut w, mut v) = (common::finite(N, 10, 1.0), common::finite(N, 11, 0.1));
        if weight_decay == 0.0 {
            // Without decay the step adds no wd w term (as torch.optim): a -0 gradient and
            // velocity keep the velocity -0, and an infinite weight leaves the velocity
            // finite (with the term, +0 and NaN).
            (g[0], v[0], w[0]) = (-0.0, -0.0, 1.0);
            w[1] = f32::INFINITY;
        }
        let s = Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay,
            nesterov,
        };
        let (bw, bv, bg) = (
            upload_f32(c, "w", &w).unwrap(),
            upload_f32(c, "v", &v).unwrap(),
            upload_f32(c, "g", &g).unwrap(),
        );
        let ls = upload_u32(c, "ls", &loss_scale_state(scale)).unwrap();
        common::submit(|e| {
            for _ in 0..3 {
                let from_velocity = from_velocity.then_some(s.lr);
                f32_step(
                    c,
                    e,
                    &Rule::Sgd(s),
                    (&bg, &bw, &bv, None),
                    &ls,
                    from_velocity,
                );
            }
        });
        let (mut rw, mut rv) = (w.clone(), v.clone());
        for _ in 0..3 {
            cpu::sgd(&g, &mut rw, &mut rv, 1.0 / scale, &s);
        }
        let case = format!(
            "nesterov {nesterov}, scale {scale}, wd {weight_decay}, from velocity {from_velocity}"
        );
        assert_eq!(
            read_u32(c, &bw, N).unwrap(),
            common::bits(&rw),
            "weights, {case}"
        );
        assert_eq!(
            read_u32(c, &bv, N).unwrap(),
            common::bits(&rv),
            "velocity, {case}"
        );
    }
}

#[test]
fn a_skipped_step_keeps_the_weights_and_velocity() {
    let c = common::small_grid_gpu();
    let (g, w, v) = (
        common::finite(N, 31, 2.0),
        common::finite(N, 32, 1.0),
        common::finite(N, 33, 0.1),
    );
    let mut state = loss_scale_state(8.0);
    state[1] = 1;
    let ls = upload_u32(c, "ls", &state).unwrap();
    let s = Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    for from_velocity in [None, Some(s.lr)] {
        let (bw, bv, bg) = (
            upload_f32(c, "w", &w).unwrap(),
            upload_f32(c, "v", &v).unwrap(),
            upload_f32(c, "g", &g).unwrap(),
        );
        common::submit(|e| {
            f32_step(
                c,
                e,
                &Rule::Sgd(s),
                (&bg, &bw, &bv, None),
                &ls,
                from_velocity,
            )
        });
        let case = format!("from velocity {from_velocity:?}");
        assert_eq!(
            read_u32(c, &bw, N).unwrap(),
            common::bits(&w),
            "weights, {case}"
        );
        assert_eq!(
            read_u32(c, &bv, N).unwrap(),
            common::bits(&v),
            "velocity, {case}"
        );
    }
}

#[test]
fn adam_matches_over_steps_with_bias_correction() {
    let c = common::small_grid_gpu();
    let g = common::finite(N, 12, 3.0);
    let w = common::finite(N, 13, 1.0);
    // Second moments from 0 (first steps) and from tiny values (subnormal square roots).
    let m = common::finite(N, 14, 0.1);
    let v: Vec<f32> = common::finite(N, 15, 1e-20)
        .iter()
        .map(|x| x.abs())
        .collect();
    for (scale, wd, eps) in [(1.0f32, 0.0f32, 1e-8f32), (256.0, 1e-2, 1e-6)] {
        let (bw, bm, bv, bg) = (
            upload_f32(c, "w", &w).unwrap(),
            upload_f32(c, "m", &m).unwrap(),
            upload_f32(c, "v", &v).unwrap(),
            upload_f32(c, "g", &g).unwrap(),
        );
        let ls = upload_u32(c, "ls", &loss_scale_state(scale)).unwrap();
        let a = AdamStep::new(1e-3, 0.9, 0.999, eps, wd);
        // Five steps, the third skipped (an overflow under dynamic scaling): four updates,
        // t = 1, 2, 3, 4, each with the step state's bias corrections.
        let stats: Vec<[u32; 4]> = (0..5)
            .map(|k| [(k == 2) as u32, 0, 0, 0x3f80_0000])
            .collect();
        let mut twin = cpu::LossScaleState::new(scale);
        let (mut rw, mut rm, mut rv) = (w.clone(), m.clone(), v.clone());
        for st in &stats {
            let bs = upload_u32(c, "stats", st).unwrap();
            common::submit(|e| {
                record_loss_scale_update(c, e, &ls, &bs, (true, 1000), a.ln_betas()).unwrap();
                f32_step(c, e, &Rule::Adam(a), (&bg, &bw, &bm, Some(&bv)), &ls, None);
            });
            let ex = Exceptions {
                overflow: st[0] as u64,
                ..Default::default()
            };
            twin.update(&ex, (true, 1000), a.ln_betas());
            if twin.skip == 0 {
                cpu::adam(&g, &mut rw, (&mut rm, &mut rv), &twin, &a);
            }
        }
        assert_eq!(twin.updates, 4);
        assert_eq!(read_u32(c, &ls, 8).unwrap(), twin.words().to_vec());
        let case = format!("scale {scale}, wd {wd}, eps {eps}");
        assert_eq!(
            read_u32(c, &bw, N).unwrap(),
            common::bits(&rw),
            "weights, {case}"
        );
        assert_eq!(read_u32(c, &bm, N).unwrap(), common::bits(&rm), "m, {case}");
        assert_eq!(read_u32(c, &bv, N).unwrap(), common::bits(&rv), "v, {case}");
        // The update moved the weights (the comparison is not of untouched buffers).
        assert!(rw.iter().zip(&w).filter(|(a, b)| a != b).count() > N / 2);
    }
}

#[test]
fn loss_scale_apply_and_update_match_their_twin() {
    let c = common::small_grid_gpu();
    // A run of exception counts: good, good, overflow, NaN, good x 3, at interval 2.
    let events: [(u32, u32); 7] = [(0, 0), (0, 0), (3, 0), (0, 1), (0, 0), (0, 0), (0, 0)];
    for dynamic in [true, false] {
        let ls = upload_u32(c, "ls", &loss_scale_state(1024.0)).unwrap();
        let mut twin = cpu::LossScaleState::new(1024.0);
        let x = common::finite(300, 16, 5.0);
        let bx = upload_f32(c, "x", &x).unwrap();
        let mut want = x.clone();
        for (k, &(overflow, nan)) in events.iter().enumerate() {
            let stats = upload_u32(c, "stats", &[overflow, 7, nan, 0x3f80_0000]).unwrap();
            common::submit(|e| {
                record_loss_scale_apply(c, e, &bx, &ls, x.len()).unwrap();
                record_loss_scale_update(c, e, &ls, &stats, (dynamic, 2), [-0.1, -0.001]).unwrap();
            });
            let s = f32::from_bits(twin.scale);
            want.iter_mut().for_each(|v| *v *= s);
            let ex = Exceptions {
                overflow: overflow as u64,
                underflow: 7,
                nan: nan as u64,
                amax: 1.0,
            };
            twin.update(&ex, (dynamic, 2), [-0.1, -0.001]);
            let got = read_u32(c, &ls, 8).unwrap();
            assert_eq!(got, twin.words().to_vec(), "dynamic {dynamic}, event {k}");
            assert_eq!(read_u32(c, &bx, x.len()).unwrap(), common::bits(&want));
        }
        let end = f32::from_bits(twin.scale);
        if dynamic {
            // 1024 -> 2048 (two good) -> 1024 -> 512 -> 1024 (two good), one good left over.
            assert_eq!(end, 1024.0);
            assert_eq!(twin.good, 1);
        } else {
            assert_eq!(end, 1024.0);
            assert_eq!(twin.skip, 0);
        }
    }
    // Scales stay within [2^-64, 2^64].
    let mut t = cpu::LossScaleState::new(2f32.powi(-64));
    let bad = Exceptions {
        overflow: 1,
        ..Default::default()
    };
    t.update(&bad, (true, 1), [-0.1, -0.001]);
    assert_eq!(f32::from_bits(t.scale), 2f32.powi(-64));
}

/// The step on packed tensors: each input decoded as it loads, each new value rounded into
/// its own format as it stores (stochastic, saturating, per-tensor scaled, MX), equal to
/// decoding, the reference step and quantizing, codes and scales; a skipped step stores the
/// old values rounded again.
#[test]
fn packed_updates_equal_decode_step_and_quantize() {
    use lowp::format::Format;
    use lowp::ops::quantize::alloc_tensor;
    use lowp::quant::{QuantSpec, Rounding, Scaling};
    use lowp::reference::{dequantize, quantize};
    let c = common::small_grid_gpu();
    let spec = |f: &str, rounding, scaling, stream| QuantSpec {
        rounding,
        scaling,
        saturate: true,
        seed: 0x0fed_cba9,
        stream,
        ..QuantSpec::new(f.parse::<Format>().unwrap())
    };
    let (n, sr) = (Rounding::Nearest, Rounding::Stochastic { bits: 12 });
    // (gradient, weights, velocity, second moment) as stored; the new weights, velocity
    // and second moment's roundings.
    let cases = [
        (
            [
                ("e5m2", Scaling::None),
                ("e4m3", Scaling::None),
                ("bf16", Scaling::None),
                ("fp32", Scaling::None),
            ],
            [
                ("e4m3", sr, Scaling::None),
                ("bf16", sr, Scaling::None),
                ("fp32", n, Scaling::None),
            ],
        ),
        (
            [
                ("mxfp8_e5m2", Scaling::None),
                ("fp32", Scaling::None),
                ("e5m2", Scaling::Tensor),
                ("fixed(wl=16,fl=15)", Scaling::None),
            ],
            [
                ("e4m3", n, Scaling::Tensor),
                ("mxfp6_e3m2", sr, Scaling::None),
                ("fixed(wl=16,fl=15)", sr, Scaling::None),
            ],
        ),
    ];
    let values = [
        common::finite(N, 21, 3.0),
        common::finite(N, 22, 1.0),
        common::finite(N, 23, 0.1),
        common::finite(N, 24, 1e-3)
            .iter()
            .map(|x| x.abs())
            .collect(),
    ];
    for (k, (ins, outs)) in cases.iter().enumerate() {
        for (adam, skip) in [(false, false), (true, false), (true, true), (false, true)] {
            let stored: Vec<_> = ins
                .iter()
                .zip(&values)
                .map(|((f, s), x)| {
                    let sp = spec(f, n, *s, 1);
                    let (t, _) = lowp::ops::quantize(c, x, &[N], &sp).unwrap();
                    (t, dequantize(&quantize(x, &sp)))
                })
                .collect();
            let rule = if adam {
                Rule::Adam(AdamStep::new(1e-2, 0.9, 0.99, 1e-6, 1e-3))
            } else {
                Rule::Sgd(Sgd {
                    lr: 0.1,
                    momentum: 0.9,
                    weight_decay: 1e-3,
                    nesterov: k == 1,
                })
            };
            let mut twin = cpu::LossScaleState::new(8.0);
            let ex = Exceptions {
                overflow: skip as u64,
                ..Default::default()
            };
            twin.update(&ex, (true, 1000), [-0.1, -0.01]);
            let ls = upload_u32(c, "ls", &twin.words()).unwrap();
            let (mut w, mut v, mut m2) = (
                stored[1].1.clone(),
                stored[2].1.clone(),
                stored[3].1.clone(),
            );
            if twin.skip == 0 {
                match rule {
                    Rule::Adam(a) => cpu::adam(&stored[0].1, &mut w, (&mut v, &mut m2), &twin, &a),
                    Rule::Sgd(s) => {
                        cpu::sgd(&stored[0].1, &mut w, &mut v, f32::from_bits(twin.inv), &s)
                    }
                }
            }
            let step = StepInputs {
                g: Src::Packed(&stored[0].0),
                w: Src::Packed(&stored[1].0),
                v: Src::Packed(&stored[2].0),
                moment2: adam.then_some(Src::Packed(&stored[3].0)),
            };
            let news = [
                (Stored::Weights, &w),
                (Stored::Velocity, &v),
                (Stored::Moment2, &m2),
            ];
            for (m, ((which, want), (f, r, s))) in news.iter().zip(outs).enumerate() {
                if *which == Stored::Moment2 && !adam {
                    continue;
                }
                let sp = spec(f, *r, *s, 10 + m as u32);
                let out = alloc_tensor(c, &[N], &sp).unwrap();
                let stats = zeroed(c, "stats", 4).unwrap();
                common::submit(|e| {
                    let d = Dst::Packed {
                        t: &out,
                        spec: &sp,
                        stats: &stats,
                        add: None,
                    };
                    record_update(c, e, &rule, &step, &ls, N, *which, d).unwrap();
                });
                let q = quantize(want, &sp);
                let case = format!("case {k}, adam {adam}, skip {skip}, {which:?} as {f}");
                assert_eq!(out.read_words(c).unwrap(), q.words, "{case}");
                let scales = out.read_scales(c).unwrap();
                match (sp.format.block(), sp.scaling) {
                    (Some(_), _) => assert_eq!(scales, q.scales, "{case}"),
                    (None, Scaling::Tensor) => {
                        assert_eq!(scales, vec![q.scale_exp as u32], "{case}")
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn svrg_values_on_packed_tensors_equal_decode_compute_and_quantize() {
    // Bit-centred SVRG's values (HALP in the neural trainer): the centre (fp32), the offset
    // (e4m3 with a per-tensor scale, or 8-bit fixed point), the gradients (e5m2, packed)
    // and the full gradient (fp32), under a loss scale of 8: each stored value equals the
    // twin's f32 values quantized with the same spec, codes and scales alike.
    use lowp::format::Format;
    use lowp::ops::quantize::alloc_tensor;
    use lowp::quant::{QuantSpec, Rounding, Scaling};
    use lowp::reference::{dequantize, quantize};
    let c = common::small_grid_gpu();
    let spec = |f: &str, rounding, scaling, stream| QuantSpec {
        rounding,
        scaling,
        saturate: true,
        seed: 0x51,
        stream,
        ..QuantSpec::new(f.parse::<Format>().unwrap())
    };
    let nearest = Rounding::Nearest;
    let sr = Rounding::Stochastic { bits: 12 };
    let ls = upload_u32(c, "ls", &loss_scale_state(8.0)).unwrap();
    let stored = |x: &[f32], sp: &QuantSpec| {
        let (t, _) = lowp::ops::quantize(c, x, &[N], sp).unwrap();
        (t, dequantize(&quantize(x, sp)))
    };
    for (zf, zs) in [
        ("e4m3", Scaling::Tensor),
        ("fixed(wl=8,fl=6)", Scaling::None),
    ] {
        let fp32 = spec("fp32", nearest, Scaling::None, 1);
        let (centre, cv) = stored(&common::finite(N, 31, 1.0), &fp32);
        let (z, zv) = stored(&common::finite(N, 32, 0.05), &spec(zf, sr, zs, 2));
        let (g, gv) = stored(
            &common::finite(N, 33, 4.0),
            &spec("e5m2", nearest, Scaling::None, 3),
        );
        let (gc, gcv) = stored(&common::finite(N, 34, 0.5), &fp32);
        let (full, fv) = stored(&common::finite(N, 35, 0.2), &fp32);
        let inv = 0.125f32;
        let cases = [
            (
                SvrgValue::Copy(Src::Packed(&centre)),
                cpu::SvrgValue::Copy(&cv),
            ),
            (
                SvrgValue::Sum(Src::Packed(&centre), Src::Packed(&z)),
                cpu::SvrgValue::Sum(&cv, &zv),
            ),
            (
                SvrgValue::Unscaled(Src::Packed(&g), 1.0 / 7.0),
                cpu::SvrgValue::Unscaled(&gv, 1.0 / 7.0),
            ),
            (
                SvrgValue::Step {
                    g: Src::Packed(&g),
                    z: Src::Packed(&z),
                    gc: Src::Packed(&gc),
                    full: Src::Packed(&full),
                    lr: 0.3,
                },
                cpu::SvrgValue::Step {
                    g: &gv,
                    z: &zv,
                    gc: &gcv,
                    full: &fv,
                    lr: 0.3,
                },
            ),
            (SvrgValue::Zero(Src::Packed(&z)), cpu::SvrgValue::Zero(N)),
        ];
        for (j, (gpu, twin)) in cases.iter().enumerate() {
            let want = cpu::svrg_value(twin, inv);
            // The offset's own format for the step and zero; the parameter's otherwise.
            let sp = match j {
                3 | 4 => spec(zf, sr, zs, 20 + j as u32),
                _ => spec("bf16", sr, Scaling::None, 20 + j as u32),
            };
            let out = alloc_tensor(c, &[N], &sp).unwrap();
            let stats = zeroed(c, "stats", 4).unwrap();
            common::submit(|e| {
                let d = Dst::Packed {
                    t: &out,
                    spec: &sp,
                    stats: &stats,
                    add: None,
                };
                record_svrg(c, e, gpu, &ls, N, d).unwrap();
            });
            let q = quantize(&want, &sp);
            assert_eq!(
                out.read_words(c).unwrap(),
                q.words,
                "offset {zf}, value {j}"
            );
            if zs == Scaling::Tensor && j >= 3 {
                assert_eq!(
                    out.read_scales(c).unwrap(),
                    vec![q.scale_exp as u32],
                    "value {j}"
                );
            }
        }
    }
}
