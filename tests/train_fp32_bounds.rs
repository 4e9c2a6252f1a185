//! Under an all-fp32 map the GEMMs accumulate in hardware f32 in any order (tiles, split-K,
//! fused multiply-add), so the GPU and the CPU reference trainer may differ in the last
//! bits; everything else (softmax, ReLU, SGD, quantization to fp32) is the same function on
//! both sides. This test carries a running error bound through several SGD steps of an MLP
//! and asserts every GPU weight within it of the CPU's. The bound is worst case (gamma_K
//! for every dot product, e^{2e} through the softmax), so it compounds fast: it must stay
//! below half the weights' movement (able to catch a wrong update), which holds for three
//! steps of a 12-10-8-4 MLP and one step of a 300-32-16-4 MLP at batch 128.
//!
//! The bound, elementwise, with u = 2^-24 and gamma_K = K u / (1 - K u):
//! - a GEMM whose inputs carry errors E_A, E_B: |A^ B^ - A B| <= E_A |B| + (|A| + E_A) E_B,
//!   plus each side's own rounding, gamma_K (|A| + E_A)(|B| + E_B) each (any order);
//!   the bias add rounds once more on each side (u of the result each);
//! - ReLU is 1-Lipschitz; its backward pass passes or drops a gradient the same way on
//!   both sides unless the input is within its error of 0 (then the whole gradient counts);
//! - softmax: logits within e of each other give probabilities within p (e^{2e} - 1); the
//!   soft-float exp (8 ulp), the f32 sum and division add a relative 140 u + u |z - max|
//!   on each side; the subtraction of the label and the 1 / B scaling round once each;
//! - SGD without momentum: w' = w - lr g, each side rounding the product and the difference.
//!
//! Magnitudes come from an f64 copy of the model run on the CPU trainer's weights.

mod common;

use lowp::format::Format;
use lowp::reference::dequantize;
use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

const U: f64 = 1.0 / 16_777_216.0;

fn gamma(k: usize) -> f64 {
    k as f64 * U / (1.0 - k as f64 * U)
}

/// A row-major matrix of f64.
#[derive(Clone)]
struct M {
    r: usize,
    c: usize,
    v: Vec<f64>,
}

impl M {
    fn zeros(r: usize, c: usize) -> M {
        M {
            r,
            c,
            v: vec![0.0; r * c],
        }
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        self.v[i * self.c + j]
    }
    fn abs(&self) -> M {
        M {
            v: self.v.iter().map(|x| x.abs()).collect(),
            ..*self
        }
    }
    fn plus(&self, o: &M) -> M {
        M {
            v: self.v.iter().zip(&o.v).map(|(a, b)| a + b).collect(),
            ..*self
        }
    }
    /// self (r x k) times o^T (c x k): r x c.
    fn mul_t(&self, o: &M) -> M {
        let mut out = M::zeros(self.r, o.r);
        for i in 0..self.r {
            for j in 0..o.r {
                out.v[i * o.r + j] = (0..self.c).map(|k| self.at(i, k) * o.at(j, k)).sum();
            }
        }
        out
    }
    fn t(&self) -> M {
        let mut out = M::zeros(self.c, self.r);
        for i in 0..self.r {
            for j in 0..self.c {
                out.v[j * self.r + i] = self.at(i, j);
            }
        }
        out
    }
}

/// Error bound of the product A B^T (k-long dots) from input errors, both sides' rounding.
fn gemm_bound(a: &M, ea: &M, b: &M, eb: &M) -> M {
    let k = a.c;
    let (aa, ab) = (a.abs().plus(ea), b.abs().plus(eb));
    let prop = ea.mul_t(&b.abs()).plus(&aa.mul_t(eb));
    let round = aa.mul_t(&ab);
    M {
        v: prop
            .v
            .iter()
            .zip(&round.v)
            .map(|(p, r)| p + 2.0 * gamma(k) * r)
            .collect(),
        ..prop
    }
}

#[test]
fn fp32_training_of_a_small_mlp_stays_within_the_derived_bound() {
    check(12, &[10, 8], 6, 3);
}

#[test]
fn fp32_training_with_reordered_sums_stays_within_the_derived_bound() {
    // Long enough dot products (300 inputs, batch 128) that split-K reorders the sums; the
    // worst-case bound stays meaningful for one step at this size.
    check(300, &[32, 16], 128, 1);
}

/// Trains `steps` steps of an MLP on both sides and checks every weight against the bound.
fn check(inputs: usize, hidden: &[usize], batch: usize, steps: u64) {
    let ctx = common::gpu();
    let lr = 0.1f64;
    let model = Model::mlp(inputs, hidden, 4);
    let config = TrainConfig {
        lr: lr as f32,
        momentum: 0.0,
        ..Default::default()
    };
    let plan = Plan::new(
        model.clone(),
        &PrecisionMap::uniform(Format::FP32),
        false,
        config,
        9,
    )
    .unwrap();
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let linear: Vec<usize> = (0..model.layers.len())
        .filter(|&i| model.layers[i].has_params())
        .collect();
    // Bounds on |w_gpu - w_cpu| and |b_gpu - b_cpu| per Linear layer.
    let mut ew: Vec<M> = Vec::new();
    let mut eb: Vec<M> = Vec::new();
    for &i in &linear {
        let (_, nb, fan) = model.layers[i].param_sizes().unwrap();
        ew.push(M::zeros(nb, fan));
        eb.push(M::zeros(1, nb));
    }
    let (mut largest_gap, mut steps_differing) = (0f64, 0);
    let mut initial: Vec<M> = Vec::new();
    for step in 0..steps {
        let x = common::uniform(batch * inputs, 500 + step, 2.0);
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i + step as u32) % 4).collect();
        // The CPU weights before the step, in f64.
        let ws: Vec<(M, M)> = linear
            .iter()
            .map(|&i| {
                let st = cpu.state[i].as_ref().unwrap();
                let (nb, fan) = (ew[ws_index(&linear, i)].r, ew[ws_index(&linear, i)].c);
                let w = dequantize(&st.w).iter().map(|&v| v as f64).collect();
                let b = dequantize(&st.b).iter().map(|&v| v as f64).collect();
                (
                    M {
                        r: nb,
                        c: fan,
                        v: w,
                    },
                    M { r: 1, c: nb, v: b },
                )
            })
            .collect();
        if step == 0 {
            initial = ws.iter().map(|(w, _)| w.clone()).collect();
        }
        // Forward in f64 with error bounds: inputs (a), pre-activations (z).
        let mut a = M {
            r: batch,
            c: inputs,
            v: x.iter().map(|&v| v as f64).collect(),
        };
        let mut ea = M::zeros(batch, inputs);
        let mut saved = Vec::new(); // (a, ea, z, ez) per Linear
        for (l, (w, b)) in ws.iter().enumerate() {
            let mut z = a.mul_t(w);
            let mut ez = gemm_bound(&a, &ea, w, &ew[l]);
            for r in 0..batch {
                for o in 0..w.r {
                    let k = r * w.r + o;
                    z.v[k] += b.v[o];
                    ez.v[k] += eb[l].v[o];
                    ez.v[k] += 2.0 * U * (z.v[k].abs() + ez.v[k]);
                }
            }
            saved.push((a.clone(), ea.clone(), z.clone(), ez.clone()));
            // ReLU (not after the last layer).
            a = M {
                v: z.v.iter().map(|&v| v.max(0.0)).collect(),
                ..z
            };
            ea = ez;
        }
        // Loss gradient G = (softmax(z) - onehot) / B and its bound.
        let (z, ez) = (&saved.last().unwrap().2, &saved.last().unwrap().3);
        let classes = z.c;
        let mut g = M::zeros(batch, classes);
        let mut eg = M::zeros(batch, classes);
        for (r, &label) in labels.iter().enumerate() {
            let row = &z.v[r * classes..(r + 1) * classes];
            let e = (0..classes).map(|j| ez.at(r, j)).fold(0.0, f64::max);
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for (j, &zj) in row.iter().enumerate() {
                let p = (zj - m).exp() / s;
                let t = p - (j as u32 == label) as u8 as f64;
                let theta = 140.0 * U + U * (zj - m).abs();
                let dp = p * ((2.0 * e).exp() - 1.0) + theta * p * (1.0 + (2.0 * e).exp());
                g.v[r * classes + j] = t / batch as f64;
                eg.v[r * classes + j] = (dp * (1.0 + 4.0 * U) + 4.0 * U * t.abs()) / batch as f64;
            }
        }
        // Backward and the SGD update bound, last layer first.
        let mut new_ew = ew.clone();
        let mut new_eb = eb.clone();
        for l in (0..linear.len()).rev() {
            let (w, _) = &ws[l];
            let (a_in, ea_in, _, _) = &saved[l];
            // dW = G^T a (batch-long dots): as (G^T)(a^T)^T.
            let (gt, egt) = (g.t(), eg.t());
            let (at, eat) = (a_in.t(), ea_in.t());
            let dw = gt.mul_t(&at);
            let edw = gemm_bound(&gt, &egt, &at, &eat);
            let mut db = M::zeros(1, w.r);
            let mut edb = M::zeros(1, w.r);
            for o in 0..w.r {
                let (s, es, mag): (f64, f64, f64) = (0..batch).fold((0.0, 0.0, 0.0), |acc, r| {
                    (
                        acc.0 + g.at(r, o),
                        acc.1 + eg.at(r, o),
                        acc.2 + g.at(r, o).abs() + eg.at(r, o),
                    )
                });
                db.v[o] = s;
                edb.v[o] = es + 2.0 * gamma(batch) * mag;
            }
            // w' = w - lr dw: the product and the difference round on each side.
            let update = |e: &M, d: &M, ed: &M, p: &M| -> M {
                M {
                    v: (0..e.v.len())
                        .map(|k| {
                            let step = lr * (d.v[k].abs() + ed.v[k]);
                            e.v[k]
                                + lr * ed.v[k] * (1.0 + U)
                                + 2.0 * U * step
                                + 2.0 * U * (p.v[k].abs() + e.v[k] + step)
                        })
                        .collect(),
                    ..*e
                }
            };
            new_ew[l] = update(&ew[l], &dw, &edw, w);
            new_eb[l] = update(&eb[l], &db, &edb, &ws[l].1);
            if l > 0 {
                // dA = G W (out-long dots), then through the previous ReLU.
                let da = g.mul_t(&w.t());
                let eda = gemm_bound(&g, &eg, &w.t(), &ew[l].t());
                let (_, _, zp, ezp) = &saved[l - 1];
                g = M {
                    v: (0..da.v.len())
                        .map(|k| if zp.v[k] > 0.0 { da.v[k] } else { 0.0 })
                        .collect(),
                    ..da
                };
                eg = M {
                    v: (0..da.v.len())
                        .map(|k| {
                            if zp.v[k].abs() <= ezp.v[k] {
                                da.v[k].abs() + eda.v[k]
                            } else if zp.v[k] > 0.0 {
                                eda.v[k]
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                    ..da
                };
            }
        }
        ew = new_ew;
        eb = new_eb;
        cpu.step(&x, &labels);
        gpu.step(&x, &labels).unwrap();
        let mut differs = false;
        for (l, &i) in linear.iter().enumerate() {
            let st = cpu.state[i].as_ref().unwrap();
            let (gw, gb) = gpu.read_params(i).unwrap();
            for (codes, cpu_codes, bound, what) in [
                (&gw, &st.w.words, &ew[l], "weight"),
                (&gb, &st.b.words, &eb[l], "bias"),
            ] {
                for (k, (&gc, &cc)) in codes.iter().zip(cpu_codes).enumerate() {
                    let (gv, cv) = (f32::from_bits(gc) as f64, f32::from_bits(cc) as f64);
                    let gap = (gv - cv).abs();
                    differs |= gap > 0.0;
                    largest_gap = largest_gap.max(gap / bound.v[k].max(f64::MIN_POSITIVE));
                    assert!(
                        gap <= bound.v[k],
                        "step {step}, layer {i} {what}[{k}]: gpu {gv:e} cpu {cv:e}, bound {:e}",
                        bound.v[k]
                    );
                }
            }
        }
        steps_differing += differs as usize;
        // The bound stays below half of what the steps move the weights, so a GPU that
        // updated wrongly (or not at all) would fall outside it: the check is not vacuous.
        for (l, &i) in linear.iter().enumerate() {
            let now = dequantize(&cpu.state[i].as_ref().unwrap().w);
            let moved = now
                .iter()
                .zip(&initial[l].v)
                .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            let emax = ew[l].v.iter().fold(0f64, |m, v| m.max(*v));
            assert!(
                emax < 0.5 * moved,
                "step {step}: bound {emax:e}, weights moved {moved:e}"
            );
        }
    }
    eprintln!(
        "steps where GPU and CPU differ: {steps_differing} of {steps}; largest gap / bound: {largest_gap:.3}"
    );
}

fn ws_index(linear: &[usize], i: usize) -> usize {
    linear.iter().position(|&j| j == i).unwrap()
}
