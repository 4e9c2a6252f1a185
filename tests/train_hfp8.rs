//! HFP8 training (`examples/precision/hfp8.toml`: e4m3 input, weights and activations,
//! e5m2 gradients, fp32 master weights, Adam) on the GPU, every step checked from the
//! trainer's own stored tensors: each stored value must be a rounding, into its tensor's
//! format, of a value within the derived error bound of the exact result of the step's
//! arithmetic on the stored inputs. Under fp32 accumulation in any order the GPU and the
//! CPU trainer may round a value near a rounding boundary apart, so this checks the GPU
//! against exact arithmetic instead of against the CPU.
//!
//! Bounds, per element (u = 2^-24, gamma_n = n u / (1 - n u)):
//! - a Linear output or input gradient: a sum of n products (and a bias added once) in
//!   f32 in any order is within gamma_(n+1) (sum |products| + |bias|) of the exact sum;
//! - a weight gradient: a sum over the batch (gamma_B), a bias gradient a column sum
//!   (gamma_B of the sum of magnitudes);
//! - the loss gradient (p - onehot) / B with p the soft-float softmax: x - max rounds
//!   (u |x - max| in exp's argument), exp within 3 ulp (6u), the sum gamma_C, the division
//!   u: p within p (13u + u |x_j - max| + u max_k |x_k - max| + gamma_C); p - 1 and the
//!   product with 1/B (itself rounded) add 3u of the result;
//! - ReLU (forward and backward) of a stored value is exact: equal, not bounded;
//! - the stored value must lie between the roundings of (exact - bound) and (exact + bound)
//!   (nearest rounding is monotonic); the test asserts that most such intervals admit a
//!   single grid value, so a wrong value cannot hide in a wide interval;
//! - the update: Adam from the stored master, moments and stored e5m2 gradient equals its
//!   twin bit for bit (tests/train_adam.rs checks Adam against textbook f64 Adam), and every
//!   stored weight is the nearest e4m3 rounding of its new master.

mod common;

use lowp::format::Format;
use lowp::quant::QuantSpec;
use lowp::reference::optim::{LossScaleState, adam};
use lowp::reference::{dequantize, quantize};
use lowp::train::checkpoint::TrainState;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::{Layer, Model};
use lowp::train::plan::{OptimKind, Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

const U: f64 = 1.0 / 16_777_216.0;

fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

/// Decodes `n` packed codes of `spec`'s format (no scales).
fn decode(words: &[u32], n: usize, spec: &QuantSpec) -> Vec<f64> {
    let q = lowp::reference::Quantized {
        spec: *spec,
        len: n,
        words: words.to_vec(),
        scales: Vec::new(),
        scale_exp: 0,
        exceptions: Default::default(),
    };
    dequantize(&q).iter().map(|&v| v as f64).collect()
}

fn state_values(st: &TrainState, name: &str) -> (Vec<u32>, String) {
    let t = st
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    (t.words.clone(), t.format.clone())
}

fn f32s(st: &TrainState, name: &str) -> Vec<f32> {
    let (w, f) = state_values(st, name);
    assert_eq!(f, "fp32", "{name}");
    w.iter().map(|&b| f32::from_bits(b)).collect()
}

/// Counts of checks, and of those whose interval admits one grid value only.
#[derive(Default)]
struct Tally {
    checked: usize,
    single: usize,
}

/// Asserts that `stored` values are roundings under `spec` of values within `bound[i]` of
/// `exact[i]`.
fn within(
    stored: &[f64],
    exact: &[f64],
    bound: &[f64],
    spec: &QuantSpec,
    what: &str,
    t: &mut Tally,
) {
    let down = |v: f64| {
        let f = v as f32;
        if f as f64 > v { f.next_down() } else { f }
    };
    let up = |v: f64| {
        let f = v as f32;
        if (f as f64) < v { f.next_up() } else { f }
    };
    let lo: Vec<f32> = exact.iter().zip(bound).map(|(e, b)| down(e - b)).collect();
    let hi: Vec<f32> = exact.iter().zip(bound).map(|(e, b)| up(e + b)).collect();
    let (qlo, qhi) = (
        dequantize(&quantize(&lo, spec)),
        dequantize(&quantize(&hi, spec)),
    );
    for i in 0..stored.len() {
        let (a, b) = (qlo[i] as f64, qhi[i] as f64);
        assert!(
            a <= stored[i] && stored[i] <= b,
            "{what}[{i}]: stored {} outside [{a}, {b}] (exact {}, bound {:e})",
            stored[i],
            exact[i],
            bound[i]
        );
        t.checked += 1;
        t.single += (a == b) as usize;
    }
}

#[test]
fn hfp8_steps_round_what_exact_arithmetic_gives_within_the_bound() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/precision/hfp8.toml");
    let map = PrecisionMap::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = TrainConfig {
        kind: OptimKind::Adam,
        lr: 1e-2,
        ..Default::default()
    };
    let model = Model::mlp(12, &[10, 8], 4);
    let plan = Plan::new(model.clone(), &map, map.master, config, 3).unwrap();
    assert!(plan.master, "hfp8.toml asks for master weights");
    let ctx = common::gpu();
    let (batch, classes) = (6, 4);
    let mut t = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
    let layers = &model.layers;
    let mut tally = Tally::default();
    for step in 0..4u64 {
        let s0 = t.state().unwrap();
        let x = common::uniform(batch * 12, step + 10, 3.0);
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 3 + step as u32) % 4)
            .collect();
        let report = t.step(&x, &labels).unwrap();
        assert!(!report.skipped && report.loss.is_finite());
        let s1 = t.state().unwrap();
        // The input: exactly its e4m3 rounding.
        let in_spec = plan.spec("input", step, 0);
        let input = t.read_activation(None).unwrap();
        assert_eq!(input, quantize(&x, &in_spec).words, "step {step}: input");
        // Forward: every stored activation.
        let mut acts: Vec<Vec<f64>> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let prev = if i == 0 {
                decode(&input, x.len(), &in_spec)
            } else {
                acts[i - 1].clone()
            };
            let spec = plan.spec(&format!("{}.act", l.name()), step, 0);
            let n_out = batch * l.sample_shape().iter().product::<usize>();
            let stored = decode(&t.read_activation(Some(i)).unwrap(), n_out, &spec);
            let what = format!("step {step}: {}.act", l.name());
            match l {
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let n = l.name();
                    let (ww, wf) = state_values(&s0, &format!("{n}.weight"));
                    assert_eq!(wf, "e4m3");
                    let w = decode(
                        &ww,
                        inputs * outputs,
                        &plan.spec(&format!("{n}.weight"), step, 0),
                    );
                    let b: Vec<f64> = f32s(&s0, &format!("{n}.bias"))
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let (mut exact, mut bound) = (Vec::new(), Vec::new());
                    for r in 0..batch {
                        for o in 0..*outputs {
                            let terms =
                                (0..*inputs).map(|k| prev[r * inputs + k] * w[o * inputs + k]);
                            let (sum, mag) =
                                terms.fold((b[o], b[o].abs()), |(s, m), p| (s + p, m + p.abs()));
                            exact.push(sum);
                            bound.push(gamma(inputs + 1) * mag);
                        }
                    }
                    within(&stored, &exact, &bound, &spec, &what, &mut tally);
                }
                Layer::Relu { .. } => {
                    for (k, (&v, &p)) in stored.iter().zip(&prev).enumerate() {
                        assert_eq!(v, p.max(0.0), "{what}[{k}]: ReLU of a stored value");
                    }
                }
                _ => unreachable!("an MLP"),
            }
            acts.push(stored);
        }
        // The loss gradient, then backward through every layer.
        let last = layers.len() - 1;
        let mut grads: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
        {
            let spec = plan.spec(&format!("{}.grad", layers[last].name()), step, 0);
            let stored = decode(&t.read_output_grad(last).unwrap(), batch * classes, &spec);
            let (mut exact, mut bound) = (Vec::new(), Vec::new());
            for r in 0..batch {
                let z = &acts[last][r * classes..(r + 1) * classes];
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                let spread = z.iter().map(|v| m - v).fold(0.0, f64::max);
                let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
                for (j, &v) in z.iter().enumerate() {
                    let p = (v - m).exp() / sum;
                    let g = (p - (j as u32 == labels[r]) as u8 as f64) / batch as f64;
                    exact.push(g);
                    let rel_p = 13.0 * U + U * (m - v) + U * spread + gamma(classes);
                    bound.push((p * rel_p) / batch as f64 + 3.0 * U * g.abs());
                }
            }
            within(
                &stored,
                &exact,
                &bound,
                &spec,
                &format!("step {step}: loss gradient"),
                &mut tally,
            );
            grads[last] = stored;
        }
        let state = LossScaleState::from_words(s1.loss_scale);
        for i in (0..layers.len()).rev() {
            let l = &layers[i];
            let n = l.name();
            let g = grads[i].clone();
            let x_in = if i == 0 {
                decode(&input, x.len(), &in_spec)
            } else {
                acts[i - 1].clone()
            };
            let in_len = x_in.len();
            let mut input_grad: Option<(Vec<f64>, Vec<f64>)> = None;
            match l {
                Layer::Relu { .. } => {
                    let exact: Vec<f64> = x_in
                        .iter()
                        .zip(&g)
                        .map(|(&a, &d)| if a > 0.0 { d } else { 0.0 })
                        .collect();
                    input_grad = Some((exact, vec![0.0; in_len]));
                }
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let (ww, _) = state_values(&s0, &format!("{n}.weight"));
                    let w = decode(
                        &ww,
                        inputs * outputs,
                        &plan.spec(&format!("{n}.weight"), step, 0),
                    );
                    if i > 0 {
                        let (mut exact, mut bound) = (Vec::new(), Vec::new());
                        for r in 0..batch {
                            for k in 0..*inputs {
                                let terms =
                                    (0..*outputs).map(|o| g[r * outputs + o] * w[o * inputs + k]);
                                let (s, m) =
                                    terms.fold((0.0, 0.0), |(s, m), p| (s + p, m + p.abs()));
                                exact.push(s);
                                bound.push(gamma(*outputs) * m);
                            }
                        }
                        input_grad = Some((exact, bound));
                    }
                    // Weight and bias gradients (e5m2), then the update and the new weights.
                    let (dw, db) = t.read_grads(i).unwrap();
                    let wspec = plan.spec(&format!("{n}.wgrad"), step, 0);
                    let bspec = plan.spec(&format!("{n}.wgrad"), step, 1);
                    let gw = decode(&dw, inputs * outputs, &wspec);
                    let gb = decode(&db, *outputs, &bspec);
                    let (mut ew, mut bw) = (Vec::new(), Vec::new());
                    for o in 0..*outputs {
                        for k in 0..*inputs {
                            let terms =
                                (0..batch).map(|r| g[r * outputs + o] * x_in[r * inputs + k]);
                            let (s, m) = terms.fold((0.0, 0.0), |(s, m), p| (s + p, m + p.abs()));
                            ew.push(s);
                            bw.push(gamma(batch) * m);
                        }
                    }
                    within(
                        &gw,
                        &ew,
                        &bw,
                        &wspec,
                        &format!("step {step}: {n}.wgrad"),
                        &mut tally,
                    );
                    let eb: Vec<f64> = (0..*outputs)
                        .map(|o| (0..batch).map(|r| g[r * outputs + o]).sum())
                        .collect();
                    let bb: Vec<f64> = (0..*outputs)
                        .map(|o| {
                            gamma(batch) * (0..batch).map(|r| g[r * outputs + o].abs()).sum::<f64>()
                        })
                        .collect();
                    within(
                        &gb,
                        &eb,
                        &bb,
                        &bspec,
                        &format!("step {step}: {n}.bias gradient"),
                        &mut tally,
                    );
                    for (part, grad) in [("weight", &gw), ("bias", &gb)] {
                        let mut w = f32s(&s0, &format!("{n}.master.{part}"));
                        let mut m = f32s(&s0, &format!("{n}.momentum.{part}"));
                        let mut v = f32s(&s0, &format!("{n}.moment2.{part}"));
                        let g32: Vec<f32> = grad.iter().map(|&v| v as f32).collect();
                        adam(
                            &g32,
                            &mut w,
                            (&mut m, &mut v),
                            &state,
                            &plan.config.adam(step),
                        );
                        let what = format!("step {step}: {n}.{part}");
                        assert_eq!(
                            w,
                            f32s(&s1, &format!("{n}.master.{part}")),
                            "{what}: master"
                        );
                        assert_eq!(m, f32s(&s1, &format!("{n}.momentum.{part}")), "{what}: m");
                        assert_eq!(v, f32s(&s1, &format!("{n}.moment2.{part}")), "{what}: v");
                        let spec = plan.spec(&format!("{n}.{part}"), step + 1, 0);
                        let (stored, format) = state_values(&s1, &format!("{n}.{part}"));
                        assert_eq!(format, spec.format.to_string(), "{what}");
                        assert_eq!(
                            stored,
                            quantize(&w, &spec).words,
                            "{what}: not the rounded master"
                        );
                    }
                }
                _ => unreachable!("an MLP"),
            }
            if let Some((exact, bound)) = input_grad {
                let spec = plan.spec(&format!("{}.grad", layers[i - 1].name()), step, 0);
                let stored = decode(&t.read_output_grad(i - 1).unwrap(), in_len, &spec);
                within(
                    &stored,
                    &exact,
                    &bound,
                    &spec,
                    &format!("step {step}: {}.grad", layers[i - 1].name()),
                    &mut tally,
                );
                grads[i - 1] = stored;
            }
        }
        // The stored e4m3 weights really are e4m3: at most 448 in magnitude, no NaN.
        for tensor in s1.tensors.iter().filter(|t| t.format == "e4m3") {
            let spec = QuantSpec::new("e4m3".parse::<Format>().unwrap());
            let v = decode(&tensor.words, tensor.len, &spec);
            assert!(v.iter().all(|x| x.abs() <= 448.0), "{}", tensor.name);
        }
    }
    eprintln!(
        "{} values checked, {} with a single admissible value",
        tally.checked, tally.single
    );
    assert!(
        tally.single * 10 >= tally.checked * 9,
        "{} of {}",
        tally.single,
        tally.checked
    );
}
