//! The CPU reference trainer: the same model, precision plan and step as the GPU engine,
//! on the CPU emulator, to cross-check it (and to train where there is no GPU).

use super::checkpoint::{CheckpointError, StoredTensor, TrainState, layer_state};
use super::model::Layer;
use super::plan::{LossKind, Plan};

/// A loss's gradient, per-row losses and per-row correct flags.
type LossParts = (Vec<f32>, Vec<f32>, Vec<u32>);
use super::plan::{conv_spec, in_shape};
use crate::accum::GemmSpec;
use crate::conv::ConvPass;
use crate::reference::batchnorm::{BnStat, bn_backward, bn_forward, bn_stats};
use crate::reference::conv::conv2d;
use crate::reference::elementwise::{
    avgpool_backward, avgpool_forward, residual_forward, skip_backward,
};
use crate::reference::elementwise::{
    col_sum, maxpool_backward, maxpool_forward, mse, relu_backward, relu_forward, softmax_xent,
};
use crate::reference::gemm::gemm;
use crate::reference::optim::{LossScaleState, adam, sgd};
use crate::reference::{Quantized, dequantize, quantize};

/// What one training step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy over the batch.
    pub loss: f32,
    /// Samples whose first maximum logit is their label.
    pub correct: usize,
    /// The loss scale the step used (1 without loss scaling).
    pub loss_scale: f32,
    /// Whether the update was skipped (its gradients overflowed under dynamic scaling).
    pub skipped: bool,
    /// Gradient elements that overflowed or were NaN in this step's quantizers.
    pub grad_exceptions: u64,
}

/// The stored state of one Linear layer.
#[derive(Clone, Debug)]
pub struct LinearState {
    /// Weights, out x in, in `LAYER.weight`'s format.
    pub w: Quantized,
    /// Biases in `LAYER.bias`'s format.
    pub b: Quantized,
    /// Velocity of the weights, `LAYER.momentum`.
    pub vw: Quantized,
    /// Velocity of the biases.
    pub vb: Quantized,
    /// Adam's second moments of weights and biases, `LAYER.moment2`.
    pub moment2: Option<(Quantized, Quantized)>,
    /// Master copies of weights and biases, `LAYER.master`, if kept.
    pub master: Option<(Quantized, Quantized)>,
}

/// A model's parameters and optimizer state on the CPU.
pub struct CpuTrainer {
    /// The plan.
    pub plan: Plan,
    /// Per layer: its state if it has weights.
    pub state: Vec<Option<LinearState>>,
    /// The loss-scale state.
    pub loss_scale: LossScaleState,
    /// Per layer: batch-norm statistics (running and last used), for BatchNorm2d layers.
    pub bn: Vec<Option<BnStat>>,
    /// Steps taken.
    pub step: u64,
}

impl CpuTrainer {
    /// Initial state: He-uniform weights, zero biases and velocities, quantized per the plan.
    pub fn new(plan: Plan) -> CpuTrainer {
        let state = plan
            .model
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.has_params().then(|| {
                    let n = l.name();
                    let (w, b) = plan.model.init_params(i, plan.seed);
                    let q = |v: &[f32], t: &str, part| {
                        quantize(v, &plan.spec(&format!("{n}.{t}"), 0, part))
                    };
                    LinearState {
                        w: q(&w, "weight", 0),
                        b: q(&b, "bias", 0),
                        vw: q(&vec![0.0; w.len()], "momentum", 0),
                        vb: q(&vec![0.0; b.len()], "momentum", 1),
                        moment2: plan.adam().then(|| {
                            (
                                q(&vec![0.0; w.len()], "moment2", 0),
                                q(&vec![0.0; b.len()], "moment2", 1),
                            )
                        }),
                        master: plan
                            .master
                            .then(|| (q(&w, "master", 0), q(&b, "master", 1))),
                    }
                })
            })
            .collect();
        let bn = plan
            .model
            .layers
            .iter()
            .map(|l| match l {
                Layer::BatchNorm2d { shape, .. } => Some(BnStat::new(shape[0])),
                _ => None,
            })
            .collect();
        CpuTrainer {
            bn,
            loss_scale: LossScaleState::new(plan.config.loss_scale.initial()),
            plan,
            state,
            step: 0,
        }
    }

    /// Every stored parameter and optimizer-state tensor with its checkpoint name.
    fn stored_mut(&mut self) -> Vec<(String, &mut Quantized)> {
        let layers = &self.plan.model.layers;
        let mut v = Vec::new();
        for (l, st) in layers.iter().zip(self.state.iter_mut()) {
            let Some(st) = st else { continue };
            let optional = [
                ("moment2", st.moment2.as_mut().map(|(w, b)| (w, b))),
                ("master", st.master.as_mut().map(|(w, b)| (w, b))),
            ];
            v.extend(layer_state(
                l.name(),
                (&mut st.w, &mut st.b),
                (&mut st.vw, &mut st.vb),
                optional,
            ));
        }
        v
    }

    /// The trainer's whole state.
    pub fn state(&mut self) -> TrainState {
        let (step, loss_scale) = (self.step, self.loss_scale.words());
        let tensors = self
            .stored_mut()
            .into_iter()
            .map(|(name, q)| StoredTensor {
                name,
                format: q.spec.format.to_string(),
                len: q.len,
                words: q.words.clone(),
                scales: match q.spec.scaling {
                    crate::quant::Scaling::Tensor if q.scales.is_empty() => {
                        vec![q.scale_exp as u32]
                    }
                    _ => q.scales.clone(),
                },
            })
            .collect::<Vec<_>>();
        let mut tensors = tensors;
        for (l, st) in self.plan.model.layers.iter().zip(&self.bn) {
            if let Some(st) = st {
                let words: Vec<u32> = (st.running_mean.iter().chain(&st.running_var))
                    .map(|v| v.to_bits())
                    .collect();
                tensors.push(StoredTensor {
                    name: format!("{}.running", l.name()),
                    format: "fp32".into(),
                    len: words.len(),
                    words,
                    scales: Vec::new(),
                });
            }
        }
        TrainState {
            step,
            loss_scale,
            tensors,
        }
    }

    /// Continues from a saved state (of the same model, map and optimizer).
    pub fn restore(&mut self, st: &TrainState) -> Result<(), CheckpointError> {
        for (name, q) in self.stored_mut() {
            let t = st.expect(&name, &q.spec.format.to_string(), q.len)?;
            if t.words.len() != q.words.len() {
                return Err(CheckpointError::Mismatch(format!(
                    "{name} has {} code words, this run {}",
                    t.words.len(),
                    q.words.len()
                )));
            }
            let tensor_scaled =
                q.spec.scaling == crate::quant::Scaling::Tensor && q.scales.is_empty();
            let want = if tensor_scaled { 1 } else { q.scales.len() };
            if t.scales.len() != want {
                return Err(CheckpointError::Mismatch(format!(
                    "{name} has {} scale words, this run {want}",
                    t.scales.len()
                )));
            }
            q.words = t.words.clone();
            if tensor_scaled {
                q.scale_exp = t.scales[0] as i32;
            } else {
                q.scales = t.scales.clone();
            }
        }
        let layers = self.plan.model.layers.clone();
        for (l, bn) in layers.iter().zip(self.bn.iter_mut()) {
            if let Some(b) = bn {
                let c = b.mean.len();
                let t = st.expect(&format!("{}.running", l.name()), "fp32", 2 * c)?;
                if t.words.len() != 2 * c {
                    return Err(CheckpointError::Mismatch(format!(
                        "{}.running has {} words, this run {}",
                        l.name(),
                        t.words.len(),
                        2 * c
                    )));
                }
                let v: Vec<f32> = t.words.iter().map(|&w| f32::from_bits(w)).collect();
                b.running_mean = v[..c].to_vec();
                b.running_var = v[c..].to_vec();
            }
        }
        LossScaleState::check_words(st.loss_scale).map_err(CheckpointError::Mismatch)?;
        self.loss_scale = LossScaleState::from_words(st.loss_scale);
        self.step = st.step;
        Ok(())
    }

    /// The run's loss: (gradient, per-row loss, per-row correct).
    fn loss(&self, z: &[f32], labels: &[u32], shape: (usize, usize)) -> LossParts {
        match self.plan.config.loss {
            LossKind::CrossEntropy => softmax_xent(z, labels, shape),
            LossKind::Mse => mse(z, labels, shape),
        }
    }

    /// The forward pass at step `s` (batch-norm statistics from the batch when `train`,
    /// updating `bn`'s running statistics): the quantized input and every layer's output.
    fn forward(
        &self,
        x: &[f32],
        batch: usize,
        s: u64,
        bn: &mut [Option<BnStat>],
        train: bool,
    ) -> (Quantized, Vec<Quantized>) {
        let plan = &self.plan;
        let layers = &plan.model.layers;
        let input = quantize(x, &plan.spec("input", s, 0));
        let mut acts: Vec<Quantized> = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            let prev = if i == 0 { &input } else { &acts[i - 1] };
            let n = l.name();
            let act_spec = plan.spec(&format!("{n}.act"), s, 0);
            let act = match l {
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let st = self.state[i].as_ref().unwrap();
                    let spec = GemmSpec {
                        trans_a: false,
                        trans_b: true,
                        acc: plan.accumulator(n),
                        out: act_spec,
                    };
                    let bias = dequantize(&st.b);
                    gemm(
                        prev,
                        &[batch, *inputs],
                        &st.w,
                        &[*outputs, *inputs],
                        Some(&bias),
                        &spec,
                    )
                    .unwrap()
                    .out
                }
                Layer::Conv2d { pad, stride, .. } => {
                    let st = self.state[i].as_ref().unwrap();
                    let spec = conv_spec((*pad, *stride), plan.accumulator(n), act_spec);
                    let g = spec
                        .geometry(&in_shape(plan, i, batch), &l.weight_shape())
                        .unwrap();
                    let bias = dequantize(&st.b);
                    conv2d(ConvPass::Forward, &g, &st.w, prev, Some(&bias), &spec)
                        .unwrap()
                        .out
                }
                Layer::MaxPool2d { .. } => {
                    let p = l.pool_geometry(batch).unwrap();
                    quantize(&maxpool_forward(&dequantize(prev), &p), &act_spec)
                }
                Layer::AvgPool2d { .. } => {
                    let p = l.pool_geometry(batch).unwrap();
                    quantize(&avgpool_forward(&dequantize(prev), &p), &act_spec)
                }
                Layer::Relu { .. } => quantize(&relu_forward(&dequantize(prev)), &act_spec),
                Layer::Flatten { .. } => quantize(&dequantize(prev), &act_spec),
                Layer::BatchNorm2d { .. } => {
                    let st = self.state[i].as_ref().unwrap();
                    let geo = layers[i].batch_norm(batch).unwrap();
                    let stat = bn[i].as_mut().unwrap();
                    let xin = dequantize(prev);
                    bn_stats(&xin, stat, &geo, train);
                    let y = bn_forward(&xin, &dequantize(&st.w), &dequantize(&st.b), stat, &geo);
                    quantize(&y, &act_spec)
                }
                Layer::Add { from, .. } => {
                    let sc = layers[i].shortcut(batch).unwrap();
                    let y = residual_forward(&dequantize(prev), &dequantize(&acts[*from]), &sc);
                    quantize(&y, &act_spec)
                }
            };
            acts.push(act);
        }
        (input, acts)
    }

    /// Loss and correct count of a batch without training.
    pub fn evaluate(&self, x: &[f32], labels: &[u32]) -> StepStats {
        let mut bn = self.bn.clone();
        let (_, acts) = self.forward(x, labels.len(), self.step, &mut bn, false);
        let classes = self.plan.model.classes();
        let (_, loss, correct) = self.loss(
            &dequantize(acts.last().unwrap()),
            labels,
            (labels.len(), classes),
        );
        StepStats {
            loss: loss.iter().sum::<f32>() / labels.len() as f32,
            correct: correct.iter().map(|&c| c as usize).sum(),
            loss_scale: f32::from_bits(self.loss_scale.scale),
            skipped: false,
            grad_exceptions: 0,
        }
    }

    /// One step on a batch of `labels.len()` samples.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> StepStats {
        let (s, batch) = (self.step, labels.len());
        let mut bn = std::mem::take(&mut self.bn);
        let (input, acts) = self.forward(x, batch, s, &mut bn, true);
        let plan = &self.plan;
        let layers = plan.model.layers.clone();
        // Loss.
        let last = layers.last().unwrap();
        let classes = last.outputs();
        let (mut g, loss, correct) =
            self.loss(&dequantize(acts.last().unwrap()), labels, (batch, classes));
        let scale = f32::from_bits(self.loss_scale.scale);
        g.iter_mut().for_each(|v| *v *= scale);
        let mut grad = quantize(&g, &plan.spec(&format!("{}.grad", last.name()), s, 0));
        // Exception counts of every gradient quantizer, for loss scaling.
        let mut grad_ex = grad.exceptions;
        // Backward. Each layer's input gradient is formed in f32, a pending residual-skip
        // gradient added to it, then quantized (as the GPU does).
        let mut grads: Vec<Option<(Quantized, Quantized)>> = vec![None; layers.len()];
        let mut skips: Vec<Option<Vec<f32>>> = vec![None; layers.len()];
        for i in (0..layers.len()).rev() {
            let l = &layers[i];
            let n = l.name();
            let x_in = if i == 0 { &input } else { &acts[i - 1] };
            let wgrad = |part| plan.spec(&format!("{n}.wgrad"), s, part);
            // The gradient of the layer's input, before quantization (None for layer 0).
            let mut dx: Option<Vec<f32>> = None;
            match l {
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let st = self.state[i].as_ref().unwrap();
                    let acc = plan.accumulator(n);
                    let wspec = GemmSpec {
                        trans_a: true,
                        trans_b: false,
                        acc,
                        out: wgrad(0),
                    };
                    let (gs, xs) = ([batch, *outputs], [batch, *inputs]);
                    let dw = gemm(&grad, &gs, x_in, &xs, None, &wspec).unwrap().out;
                    let db = quantize(
                        &col_sum(&dequantize(&grad), (batch, *outputs, 1)),
                        &wgrad(1),
                    );
                    grads[i] = Some((dw, db));
                    if i > 0 {
                        let xspec = GemmSpec {
                            trans_a: false,
                            trans_b: false,
                            acc,
                            out: wgrad(0),
                        };
                        let ws = [*outputs, *inputs];
                        dx = Some(gemm(&grad, &gs, &st.w, &ws, None, &xspec).unwrap().c);
                    }
                }
                Layer::Conv2d {
                    pad, stride, cout, ..
                } => {
                    let st = self.state[i].as_ref().unwrap();
                    let acc = plan.accumulator(n);
                    let wspec = conv_spec((*pad, *stride), acc, wgrad(0));
                    let g = wspec
                        .geometry(&in_shape(plan, i, batch), &l.weight_shape())
                        .unwrap();
                    let dw = conv2d(ConvPass::BackwardWeight, &g, &grad, x_in, None, &wspec)
                        .unwrap()
                        .out;
                    let sums = col_sum(&dequantize(&grad), (batch, *cout, g.oh * g.ow));
                    grads[i] = Some((dw, quantize(&sums, &wgrad(1))));
                    if i > 0 {
                        let r = conv2d(ConvPass::BackwardData, &g, &st.w, &grad, None, &wspec);
                        dx = Some(r.unwrap().c);
                    }
                }
                Layer::BatchNorm2d { .. } => {
                    let st = self.state[i].as_ref().unwrap();
                    let geo = layers[i].batch_norm(batch).unwrap();
                    let stat = bn[i].as_mut().unwrap();
                    let gamma = dequantize(&st.w);
                    let d = bn_backward(&dequantize(x_in), &dequantize(&grad), &gamma, stat, &geo);
                    let (dgamma, dbeta) = (stat.dgamma.clone(), stat.dbeta.clone());
                    grads[i] = Some((quantize(&dgamma, &wgrad(0)), quantize(&dbeta, &wgrad(1))));
                    dx = (i > 0).then_some(d);
                }
                Layer::MaxPool2d { .. } => {
                    let p = l.pool_geometry(batch).unwrap();
                    dx = (i > 0)
                        .then(|| maxpool_backward(&dequantize(x_in), &dequantize(&grad), &p));
                }
                Layer::AvgPool2d { .. } => {
                    let p = l.pool_geometry(batch).unwrap();
                    dx = (i > 0).then(|| avgpool_backward(&dequantize(&grad), &p));
                }
                Layer::Relu { .. } => {
                    dx = (i > 0).then(|| relu_backward(&dequantize(x_in), &dequantize(&grad)));
                }
                Layer::Flatten { .. } => dx = (i > 0).then(|| dequantize(&grad)),
                Layer::Add { from, .. } => {
                    let g = dequantize(&grad);
                    let sc = layers[i].shortcut(batch).unwrap();
                    skips[*from] = Some(skip_backward(&g, &sc));
                    dx = (i > 0).then_some(g);
                }
            }
            if let Some((dw, db)) = &grads[i] {
                grad_ex.merge(&dw.exceptions);
                grad_ex.merge(&db.exceptions);
            }
            if let Some(mut v) = dx {
                if let Some(sk) = skips[i - 1].take() {
                    v.iter_mut().zip(&sk).for_each(|(a, b)| *a += *b);
                }
                let out = plan.spec(&format!("{}.grad", layers[i - 1].name()), s, 0);
                grad = quantize(&v, &out);
                grad_ex.merge(&grad.exceptions);
            }
        }
        self.bn = bn;
        let ln_betas = plan.config.adam(s).ln_betas();
        (self.loss_scale).update(&grad_ex, plan.config.loss_scale.dynamic(), ln_betas);
        let (skip, inv) = (
            self.loss_scale.skip != 0,
            f32::from_bits(self.loss_scale.inv),
        );
        // Update (skipped when the loss scale says so; the stored tensors are rounded again
        // from the master copies either way, as on the GPU).
        let c = plan.config;
        for (i, l) in layers.iter().enumerate() {
            let Some((dw, db)) = grads[i].take() else {
                continue;
            };
            let n = l.name();
            let st = self.state[i].as_mut().unwrap();
            for (part, g) in [(0u32, dw), (1, db)] {
                let pick = |pair: &(Quantized, Quantized)| {
                    if part == 0 {
                        pair.0.clone()
                    } else {
                        pair.1.clone()
                    }
                };
                let (param, vel) = if part == 0 {
                    (&mut st.w, &mut st.vw)
                } else {
                    (&mut st.b, &mut st.vb)
                };
                let source = match &st.master {
                    Some(pair) => dequantize(&pick(pair)),
                    None => dequantize(param),
                };
                let (mut w, mut v) = (source, dequantize(vel));
                let mut v2 = st.moment2.as_ref().map(|p| dequantize(&pick(p)));
                let g = dequantize(&g);
                match (&mut v2, skip) {
                    (_, true) => {}
                    (Some(v2), false) => {
                        adam(&g, &mut w, (&mut v, v2), &self.loss_scale, &c.adam(s))
                    }
                    (None, false) => sgd(&g, &mut w, &mut v, inv, &c.sgd(s)),
                }
                let t = if part == 0 { "weight" } else { "bias" };
                *param = quantize(&w, &plan.spec(&format!("{n}.{t}"), s + 1, 0));
                *vel = quantize(&v, &plan.spec(&format!("{n}.momentum"), s + 1, part));
                if let (Some(pair), Some(v2)) = (st.moment2.as_mut(), &v2) {
                    let m2 = if part == 0 { &mut pair.0 } else { &mut pair.1 };
                    *m2 = quantize(v2, &plan.spec(&format!("{n}.moment2"), s + 1, part));
                }
                if let Some((mw, mb)) = st.master.as_mut() {
                    let m = if part == 0 { mw } else { mb };
                    *m = quantize(&w, &plan.spec(&format!("{n}.master"), s + 1, part));
                }
            }
        }
        self.step += 1;
        StepStats {
            loss: loss.iter().sum::<f32>() / batch as f32,
            correct: correct.iter().map(|&c| c as usize).sum(),
            loss_scale: scale,
            skipped: skip,
            grad_exceptions: grad_ex.overflow + grad_ex.nan,
        }
    }
}
