//! Under an all-fp32 map the GEMMs and convolutions accumulate in hardware f32 in any
//! order (tiles, split-K, fused multiply-add), so the GPU and the CPU reference trainer
//! may differ in the last bits; everything else (softmax, ReLU, max pooling, SGD,
//! quantization to fp32) is the same function on both sides.
//!
//! Each step is checked from a common state: the CPU trainer is restored from the GPU's
//! state, both take the step on the same batch, and every weight, bias and momentum of
//! each must lie within a derived bound E of the exact (real-number) step from that state,
//! so within 2E of each other. Most elements' bounds are below half of what the step moved
//! them (asserted), so a wrong or missing update falls outside. Checking each step of a
//! run this way tests the implementation of every step along the trajectory; a bound
//! carried across steps instead grows by the training map's Lipschitz constant every step
//! (about 10x here) and says nothing after a few steps, because training itself amplifies
//! last-bit differences.
//!
//! The bound, per element, with u = 2^-24 and gamma_n = n u / (1 - n u). Each side
//! computes with its own values x^ = x + d, |d| <= e:
//! - a sum of n products x y in any order (with or without fused multiply-add) is within
//!   sum (e_x |y| + (|x| + e_x) e_y) + gamma_n sum (|x| + e_x)(|y| + e_y) of the exact one;
//!   the bias is one more term, and a separate bias add one more rounding, u (|z| + e);
//! - ReLU is 1-Lipschitz; its backward pass keeps or drops a gradient as the exact step
//!   does unless the input is within its bound of 0, where the whole gradient counts;
//! - max pooling is 1-Lipschitz in the largest error of the window; its gradient goes to
//!   the exact maximum unless another input is within the two bounds of it, where every
//!   such candidate counts the whole gradient;
//! - softmax: logits within e of the exact ones give probabilities within p (e^{2e} - 1);
//!   the soft-float exp (8 ulp), the f32 sum and division add a relative 140 u + u |z - max|;
//!   the subtraction of the label and the 1 / B scaling round once each;
//! - SGD with momentum and weight decay: each product and sum rounds once (u of its result).
//!
//! The exact step is computed in f64 from the common state. Its own error is at most
//! n 2^-53 of a sum's magnitudes (2^-29 of that sum's gamma_n term) and 2^-50 of any
//! other value (2^-26 of its u term), so a factor 1 + 2^-20 on every bound covers it.

mod common;

use lowp::format::Format;
use lowp::reference::{Quantized, dequantize};
use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::{Layer, Model};
use lowp::train::plan::{Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

const U: f64 = 1.0 / 16_777_216.0;

/// Covers the f64 computation's own error (see the header).
const SLACK: f64 = 1.0 + 1.0 / 1_048_576.0;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Values of the exact step and a bound on either side's distance from them.
#[derive(Clone)]
struct T {
    v: Vec<f64>,
    e: Vec<f64>,
}

impl T {
    fn zeros(n: usize) -> T {
        T {
            v: vec![0.0; n],
            e: vec![0.0; n],
        }
    }
}

/// A sum of products x y whose factors carry errors, summed in f32 in any order.
#[derive(Clone, Copy, Default)]
struct Acc {
    v: f64,
    prop: f64,
    mag: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, x: f64, ex: f64, y: f64, ey: f64) {
        self.v += x * y;
        self.prop += ex * y.abs() + (x.abs() + ex) * ey;
        self.mag += (x.abs() + ex) * (y.abs() + ey);
        self.n += 1;
    }
    /// The exact sum and the bound: propagated error plus gamma_n of the magnitudes.
    fn done(&self) -> (f64, f64) {
        (self.v, self.prop + gamma(self.n) * self.mag)
    }
    /// As `done`, for a layer output whose bias may be added after the sum (one rounding).
    fn biased(&self) -> (f64, f64) {
        let (v, e) = self.done();
        (v, e + U * (v.abs() + e))
    }
}

fn finish(accs: &[Acc]) -> T {
    let (v, e) = accs.iter().map(Acc::done).unzip();
    T { v, e }
}

/// Convolution geometry of a `Layer::Conv2d` for a batch.
struct Conv {
    batch: usize,
    cin: usize,
    cout: usize,
    k: usize,
    pad: usize,
    stride: usize,
    hw: [usize; 2],
    out: [usize; 2],
}

impl Conv {
    /// Calls `f(x index, w index, y index)` for every product of the forward pass.
    fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [h, w] = self.hw;
        for n in 0..self.batch {
            for o in 0..self.cout {
                for oy in 0..self.out[0] {
                    for ox in 0..self.out[1] {
                        let yi = ((n * self.cout + o) * self.out[0] + oy) * self.out[1] + ox;
                        for c in 0..self.cin {
                            for ky in 0..self.k {
                                for kx in 0..self.k {
                                    let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xi =
                                        ((n * self.cin + c) * h + iy as usize) * w + ix as usize;
                                    let wi = ((o * self.cin + c) * self.k + ky) * self.k + kx;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn conv_of(layer: &Layer, batch: usize) -> Conv {
    let Layer::Conv2d {
        cin,
        cout,
        kernel,
        pad,
        stride,
        in_hw,
        ..
    } = layer
    else {
        unreachable!()
    };
    let o = |i: usize| (in_hw[i] + 2 * pad - kernel) / stride + 1;
    Conv {
        batch,
        cin: *cin,
        cout: *cout,
        k: *kernel,
        pad: *pad,
        stride: *stride,
        hw: *in_hw,
        out: [o(0), o(1)],
    }
}

/// The indices of max-pooling window `o` (plane-major output order), row order.
fn window(o: usize, planes_hw: [usize; 2], pool: usize) -> Vec<usize> {
    let [h, w] = planes_hw;
    let (oh, ow) = (h / pool, w / pool);
    let (plane, r, c) = (o / (oh * ow), (o % (oh * ow)) / ow, o % ow);
    let mut idx = Vec::new();
    for a in 0..pool {
        for b in 0..pool {
            idx.push(plane * h * w + (r * pool + a) * w + c * pool + b);
        }
    }
    idx
}

/// SGD hyper-parameters as the trainers hold them (f32 values).
#[derive(Clone, Copy)]
struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

/// The exact SGD update of one weight from gradient (g, eg): (new weight, its bound) and
/// (new momentum, its bound).
fn sgd(g: f64, eg: f64, w: f64, v: f64, s: Sgd) -> ((f64, f64), (f64, f64)) {
    let wd = s.weight_decay * w;
    let ge = g + wd;
    let ege = eg + U * wd.abs() + U * (ge.abs() + eg + U * wd.abs());
    let mv = s.momentum * v;
    let vn = mv + ge;
    let evn = ege + U * mv.abs() + U * (vn.abs() + ege + U * mv.abs());
    let st = s.lr * vn;
    let est = s.lr * evn + U * (st.abs() + s.lr * evn);
    let wn = w - st;
    ((wn, est + U * (wn.abs() + est)), (vn, evn))
}

/// One layer's parameters and momenta from the CPU trainer, in f64.
struct Params {
    w: Vec<f64>,
    b: Vec<f64>,
    vw: Vec<f64>,
    vb: Vec<f64>,
}

fn f64s(q: &Quantized) -> Vec<f64> {
    dequantize(q).iter().map(|&v| v as f64).collect()
}

/// The exact forward pass, loss gradient and backward pass of one step with bounds, and
/// every updated tensor (weights, biases and their momenta, by checkpoint name) with its
/// bound, each with the value it had before the step.
fn exact_step(
    model: &Model,
    params: &[Option<Params>],
    x: &[f32],
    labels: &[u32],
    s: Sgd,
) -> Vec<(String, T, Vec<f64>)> {
    let batch = labels.len();
    let mut act = T {
        v: x.iter().map(|&v| v as f64).collect(),
        e: vec![0.0; x.len()],
    };
    let mut inputs = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        inputs.push(act.clone());
        act = match layer {
            Layer::Linear {
                inputs: fi,
                outputs: fo,
                ..
            } => {
                let p = params[i].as_ref().unwrap();
                let mut out = T::zeros(batch * fo);
                for n in 0..batch {
                    for o in 0..*fo {
                        let mut acc = Acc::default();
                        for k in 0..*fi {
                            acc.add(act.v[n * fi + k], act.e[n * fi + k], p.w[o * fi + k], 0.0);
                        }
                        acc.add(1.0, 0.0, p.b[o], 0.0);
                        (out.v[n * fo + o], out.e[n * fo + o]) = acc.biased();
                    }
                }
                out
            }
            Layer::Conv2d { .. } => {
                let (g, p) = (conv_of(layer, batch), params[i].as_ref().unwrap());
                let per = g.out[0] * g.out[1];
                let mut accs = vec![Acc::default(); batch * g.cout * per];
                g.taps(|xi, wi, yi| accs[yi].add(act.v[xi], act.e[xi], p.w[wi], 0.0));
                let mut out = T::zeros(accs.len());
                for (yi, acc) in accs.iter_mut().enumerate() {
                    acc.add(1.0, 0.0, p.b[(yi / per) % g.cout], 0.0);
                    (out.v[yi], out.e[yi]) = acc.biased();
                }
                out
            }
            Layer::Relu { .. } => T {
                v: act.v.iter().map(|v| v.max(0.0)).collect(),
                e: act.e.clone(),
            },
            Layer::MaxPool2d {
                channels,
                pool,
                in_hw,
                ..
            } => {
                let outs = batch * channels * (in_hw[0] / pool) * (in_hw[1] / pool);
                let mut out = T::zeros(outs);
                for o in 0..outs {
                    let win = window(o, *in_hw, *pool);
                    out.v[o] = win.iter().map(|&j| act.v[j]).fold(f64::MIN, f64::max);
                    out.e[o] = win.iter().map(|&j| act.e[j]).fold(0.0, f64::max);
                }
                out
            }
            Layer::Flatten { .. } => act,
            other => panic!(
                "the bound covers Linear, Conv2d, ReLU, MaxPool2d and Flatten, not {}",
                other.name()
            ),
        };
    }
    // Loss gradient G = (softmax(z) - onehot) / B and its bound.
    let classes = act.v.len() / batch;
    let mut g = T::zeros(act.v.len());
    for (r, &label) in labels.iter().enumerate() {
        let row = &act.v[r * classes..(r + 1) * classes];
        let e = act.e[r * classes..(r + 1) * classes]
            .iter()
            .fold(0.0, |m: f64, v| m.max(*v));
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for (j, &zj) in row.iter().enumerate() {
            let p = (zj - m).exp() / sum;
            let t = p - (j as u32 == label) as u8 as f64;
            let theta = 140.0 * U + U * (zj - m).abs();
            let dp = p * ((2.0 * e).exp() - 1.0) + theta * p * (1.0 + (2.0 * e).exp());
            g.v[r * classes + j] = t / batch as f64;
            g.e[r * classes + j] = (dp * (1.0 + 4.0 * U) + 4.0 * U * t.abs()) / batch as f64;
        }
    }
    // Backward, last layer first, and the update of every layer with parameters.
    let mut updated = Vec::new();
    for (i, layer) in model.layers.iter().enumerate().rev() {
        let a = &inputs[i];
        let (dw, db, da) = match layer {
            Layer::Linear {
                inputs: fi,
                outputs: fo,
                ..
            } => {
                let p = params[i].as_ref().unwrap();
                let mut dw = vec![Acc::default(); fo * fi];
                let mut db = vec![Acc::default(); *fo];
                let mut da = vec![Acc::default(); batch * fi];
                for n in 0..batch {
                    for o in 0..*fo {
                        let (gv, ge) = (g.v[n * fo + o], g.e[n * fo + o]);
                        db[o].add(gv, ge, 1.0, 0.0);
                        for k in 0..*fi {
                            dw[o * fi + k].add(gv, ge, a.v[n * fi + k], a.e[n * fi + k]);
                            da[n * fi + k].add(gv, ge, p.w[o * fi + k], 0.0);
                        }
                    }
                }
                (Some(dw), Some(db), finish(&da))
            }
            Layer::Conv2d { .. } => {
                let (cg, p) = (conv_of(layer, batch), params[i].as_ref().unwrap());
                let per = cg.out[0] * cg.out[1];
                let mut dw = vec![Acc::default(); p.w.len()];
                let mut db = vec![Acc::default(); cg.cout];
                let mut da = vec![Acc::default(); a.v.len()];
                for (yi, (&gv, &ge)) in g.v.iter().zip(&g.e).enumerate() {
                    db[(yi / per) % cg.cout].add(gv, ge, 1.0, 0.0);
                }
                cg.taps(|xi, wi, yi| {
                    dw[wi].add(g.v[yi], g.e[yi], a.v[xi], a.e[xi]);
                    da[xi].add(g.v[yi], g.e[yi], p.w[wi], 0.0);
                });
                (Some(dw), Some(db), finish(&da))
            }
            Layer::Relu { .. } => {
                let mut da = T::zeros(a.v.len());
                for k in 0..a.v.len() {
                    let (z, ez) = (a.v[k], a.e[k]);
                    if z.abs() <= ez {
                        da.v[k] = if z > 0.0 { g.v[k] } else { 0.0 };
                        da.e[k] = g.v[k].abs() + g.e[k];
                    } else if z > 0.0 {
                        (da.v[k], da.e[k]) = (g.v[k], g.e[k]);
                    }
                }
                (None, None, da)
            }
            Layer::MaxPool2d { pool, in_hw, .. } => {
                let mut da = T::zeros(a.v.len());
                for o in 0..g.v.len() {
                    let win = window(o, *in_hw, *pool);
                    let best = win
                        .iter()
                        .copied()
                        .fold(win[0], |b, j| if a.v[j] > a.v[b] { j } else { b });
                    let floor = a.v[best] - a.e[best];
                    let rivals = win
                        .iter()
                        .filter(|&&j| j != best && a.v[j] + a.e[j] >= floor)
                        .count();
                    for &j in &win {
                        if j == best {
                            da.v[j] = g.v[o];
                        }
                        if rivals == 0 && j == best {
                            da.e[j] = g.e[o];
                        } else if rivals > 0 && (j == best || a.v[j] + a.e[j] >= floor) {
                            da.e[j] = g.v[o].abs() + g.e[o];
                        }
                    }
                }
                (None, None, da)
            }
            _ => (None, None, g.clone()),
        };
        if let (Some(dw), Some(db)) = (dw, db) {
            let p = params[i].as_ref().unwrap();
            let name = layer.name();
            for (what, accs, w, v) in [("weight", &dw, &p.w, &p.vw), ("bias", &db, &p.b, &p.vb)] {
                let (mut wn, mut vn) = (T::zeros(w.len()), T::zeros(w.len()));
                for k in 0..w.len() {
                    let (gv, ge) = accs[k].done();
                    ((wn.v[k], wn.e[k]), (vn.v[k], vn.e[k])) = sgd(gv, ge, w[k], v[k], s);
                }
                updated.push((format!("{name}.{what}"), wn, w.clone()));
                updated.push((format!("{name}.momentum.{what}"), vn, v.clone()));
            }
        }
        g = da;
    }
    updated
}

#[test]
fn fp32_steps_of_a_small_mlp_stay_within_the_derived_bound() {
    check(Model::mlp(12, &[10, 8], 4), 6, 5, 0.99);
}

#[test]
fn fp32_steps_with_reordered_sums_stay_within_the_derived_bound() {
    // Long enough dot products (300 inputs, batch 128) that split-K reorders the sums. The
    // first layer's 9,600 weight gradients each sum 128 products of random inputs that
    // mostly cancel, so gamma_128 of their magnitudes exceeds half the update for most of
    // them; the deeper layers and all momenta are checked tightly (43% of elements here).
    check(Model::mlp(300, &[32, 16], 4), 128, 3, 0.4);
}

#[test]
fn fp32_steps_of_a_small_cnn_stay_within_the_derived_bound() {
    check(small_cnn(), 16, 4, 0.99);
}

/// A CNN on 1 x 8 x 8 images: conv 3x3 (pad 1) to 4 channels, ReLU, 2x2 max pool, conv
/// 3x3 (pad 1, stride 2) to 6, ReLU, flatten, Linear to 4 classes.
fn small_cnn() -> Model {
    let layers = vec![
        Layer::Conv2d {
            name: "conv1".into(),
            cin: 1,
            cout: 4,
            kernel: 3,
            pad: 1,
            stride: 1,
            groups: 1,
            in_hw: [8, 8],
        },
        Layer::Relu {
            name: "relu1".into(),
            shape: vec![4, 8, 8],
        },
        Layer::MaxPool2d {
            name: "pool1".into(),
            channels: 4,
            pool: 2,
            in_hw: [8, 8],
        },
        Layer::Conv2d {
            name: "conv2".into(),
            cin: 4,
            cout: 6,
            kernel: 3,
            pad: 1,
            stride: 2,
            groups: 1,
            in_hw: [4, 4],
        },
        Layer::Relu {
            name: "relu2".into(),
            shape: vec![6, 2, 2],
        },
        Layer::Flatten {
            name: "flat".into(),
            len: 24,
        },
        Layer::Linear {
            name: "fc".into(),
            inputs: 24,
            outputs: 4,
        },
    ];
    Model::chain(&[1, 8, 8], layers)
}

/// Takes `steps` SGD steps on both trainers from a common state each step and checks
/// every weight, bias and momentum of both against the exact step's bound.
/// At least `min_checked` of the elements must have a bound below half their update.
fn check(model: Model, batch: usize, steps: u64, min_checked: f64) {
    let ctx = common::gpu();
    let config = TrainConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-3,
        ..Default::default()
    };
    let s = Sgd {
        lr: config.lr as f64,
        momentum: config.momentum as f64,
        weight_decay: config.weight_decay as f64,
    };
    let map = PrecisionMap::uniform(Format::FP32);
    let plan = Plan::new(model.clone(), &map, false, config, 9).unwrap();
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let classes = model.layers.last().unwrap().outputs() as u32;
    let (mut largest, mut steps_differing) = (0f64, 0);
    let (mut elements, mut checked) = (0usize, 0usize);
    for step in 0..steps {
        cpu.restore(&gpu.state().unwrap()).unwrap();
        let x = common::uniform(batch * model.inputs, 500 + step, 2.0);
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 7 + step as u32) % classes)
            .collect();
        let params: Vec<Option<Params>> = cpu
            .state
            .iter()
            .map(|st| {
                st.as_ref().map(|st| Params {
                    w: f64s(&st.w),
                    b: f64s(&st.b),
                    vw: f64s(&st.vw),
                    vb: f64s(&st.vb),
                })
            })
            .collect();
        let exact = exact_step(&model, &params, &x, &labels, s);
        cpu.step(&x, &labels);
        gpu.step(&x, &labels).unwrap();
        let (gs, cs) = (gpu.state().unwrap(), cpu.state());
        let words = |st: &lowp::train::checkpoint::TrainState, name: &str| -> Vec<f64> {
            let t = st.tensors.iter().find(|t| t.name == name).unwrap();
            t.words.iter().map(|&w| f32::from_bits(w) as f64).collect()
        };
        let mut differs = false;
        for (name, bound, before) in &exact {
            let (gv, cv) = (words(&gs, name), words(&cs, name));
            assert_eq!(
                (gv.len(), cv.len()),
                (bound.v.len(), bound.v.len()),
                "{name}"
            );
            for k in 0..gv.len() {
                let (x, e) = (bound.v[k], bound.e[k] * SLACK);
                // Each side within E of the exact step, so within 2E of each other.
                let gap = (gv[k] - cv[k]).abs();
                differs |= gap > 0.0;
                largest = largest.max(gap / (2.0 * e).max(f64::MIN_POSITIVE));
                assert!(
                    gap <= 2.0 * e,
                    "step {step}, {name}[{k}]: gpu {:e} cpu {:e}, bound {:e}",
                    gv[k],
                    cv[k],
                    2.0 * e
                );
                for (side, v) in [("gpu", gv[k]), ("cpu", cv[k])] {
                    assert!(
                        (v - x).abs() <= e,
                        "step {step}, {name}[{k}]: {side} {v:e}, exact {x:e} +- {e:e}"
                    );
                }
                // An element is checked meaningfully where its bound is below half of what
                // the step moved it: a wrong (or missing) update would fall outside it.
                elements += 1;
                checked += (e < 0.5 * (x - before[k]).abs()) as usize;
            }
        }
        steps_differing += differs as usize;
    }
    assert!(
        checked as f64 >= min_checked * elements as f64,
        "only {checked} of {elements} elements have a bound below half their update"
    );
    eprintln!(
        "steps where GPU and CPU differ: {steps_differing} of {steps}; largest gap / bound: \
         {largest:.3}; elements whose bound is below half their update: {checked} of {elements}"
    );
}
