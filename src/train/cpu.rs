//! The CPU reference trainer: the same model, precision plan and step as the GPU engine,
//! on the CPU emulator, to cross-check it (and to train where there is no GPU).

use super::checkpoint::{CheckpointError, TrainState};
use super::model::Layer;
use super::plan::{LossKind, Plan};
use super::state::{self, Kept, Role, Store};

/// A loss's gradient, per-row losses and per-row correct flags.
type LossParts = (Vec<f32>, Vec<f32>, Vec<u32>);
use super::engine::{Elem, Engine, Flow, Out, Pass, Svrg, T, TensorLog, UpdateSpecs, state_key};
use super::layers;
use crate::accum::{GemmError, GemmSpec};
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass};
use crate::layer_geometry::{BatchNorm, Shortcut};
use crate::ops::optim::STEP_STATE_WORDS;
use crate::quant::Exceptions;
use crate::quant::QuantSpec;
use crate::reference::batchnorm::{BnStat, bn_backward, bn_forward, bn_stats};
use crate::reference::conv::conv2d_values;
use crate::reference::elementwise::{
    avgpool_backward, avgpool_forward, place, residual_forward, skip_backward,
};
use crate::reference::elementwise::{
    col_sum, maxpool_backward, maxpool_forward, mse, relu_backward, relu_forward, softmax_xent,
};
use crate::reference::gemm::gemm_values;
use crate::reference::optim::{LossScaleState, SvrgValue, adam, sgd, svrg_value};
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
    /// HALP: the gradient at the centre on this step's batch, weights and biases (f32,
    /// a working value, not kept).
    pub centre_grad: (Vec<f32>, Vec<f32>),
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
    /// Every stored tensor's roundings in the training steps since it was last emptied.
    tensor_log: TensorLog,
}

impl LinearState {
    /// A kept tensor of this layer.
    fn get(&self, role: Role, part: u32) -> Option<&Quantized> {
        let pair = match role {
            Role::Param => Some((&self.w, &self.b)),
            Role::Velocity => Some((&self.vw, &self.vb)),
            Role::Moment2 => self.moment2.as_ref().map(|(w, b)| (w, b)),
            Role::Master => self.master.as_ref().map(|(w, b)| (w, b)),
        }?;
        Some(if part == 0 { pair.0 } else { pair.1 })
    }

    /// A kept tensor of this layer, to write.
    fn get_mut(&mut self, role: Role, part: u32) -> Option<&mut Quantized> {
        let pair = match role {
            Role::Param => Some((&mut self.w, &mut self.b)),
            Role::Velocity => Some((&mut self.vw, &mut self.vb)),
            Role::Moment2 => self.moment2.as_mut().map(|(w, b)| (w, b)),
            Role::Master => self.master.as_mut().map(|(w, b)| (w, b)),
        }?;
        Some(if part == 0 { pair.0 } else { pair.1 })
    }
}

impl CpuTrainer {
    /// Initial state: He-uniform weights, zero biases and velocities, quantized per the plan.
    pub fn new(plan: Plan) -> CpuTrainer {
        let mut kept: std::collections::HashMap<(usize, Role, u32), Quantized> =
            state::initial(&plan)
                .into_iter()
                .map(|(k, v)| ((k.layer, k.role, k.part), quantize(&v, &k.spec(&plan, 0))))
                .collect();
        let mut take = |i, role, part| kept.remove(&(i, role, part));
        let state = (0..plan.model.layers.len())
            .map(|i| {
                let mut pair = |role| Some((take(i, role, 0)?, take(i, role, 1)?));
                let (w, b) = pair(Role::Param)?;
                let (vw, vb) = pair(Role::Velocity)?;
                Some(LinearState {
                    w,
                    b,
                    vw,
                    vb,
                    moment2: pair(Role::Moment2),
                    master: pair(Role::Master),
                    centre_grad: Default::default(),
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
            tensor_log: TensorLog::new(),
        }
    }

    /// A kept tensor.
    fn kept_mut(&mut self, k: &Kept) -> &mut Quantized {
        self.state[k.layer]
            .as_mut()
            .and_then(|st| st.get_mut(k.role, k.part))
            .expect("a plan keeps what its trainer holds")
    }

    /// The trainer's whole state.
    pub fn state(&mut self) -> TrainState {
        let plan = self.plan.clone();
        match state::save(self, &plan, self.step) {
            Ok(st) => st,
            Err(e) => unreachable!("the CPU trainer's reads do not fail: {e}"),
        }
    }

    /// Continues from a saved state (of the same model, map and optimizer).
    pub fn restore(&mut self, st: &TrainState) -> Result<(), CheckpointError> {
        let plan = self.plan.clone();
        state::restore(self, &plan, st)
    }

    /// Loss and correct count of a batch without training.
    pub fn evaluate(&self, x: &[f32], labels: &[u32]) -> StepStats {
        // An evaluation changes nothing: it runs on copies of the state it reads.
        let (mut state, mut bn, mut ls) = (self.state.clone(), self.bn.clone(), self.loss_scale);
        let step = self.step;
        let parts = (&mut state[..], &mut bn[..], &mut ls);
        let run = run_step(&self.plan, parts, (x, labels), (step, Pass::Evaluate));
        StepStats {
            loss: run.results.0.iter().sum::<f32>() / labels.len() as f32,
            correct: run.results.1.iter().map(|&c| c as usize).sum(),
            loss_scale: f32::from_bits(self.loss_scale.scale),
            skipped: false,
            grad_exceptions: 0,
        }
    }

    /// Every stored tensor's roundings (elements, exceptions, amax) in the training steps
    /// since it was last emptied (`std::mem::take` empties it).
    pub fn tensor_log(&mut self) -> &mut TensorLog {
        &mut self.tensor_log
    }

    /// One step on a batch of `labels.len()` samples.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> StepStats {
        self.pass(x, labels, Pass::Train)
    }

    /// A training step, or a batch of HALP's full-gradient pass (which is not a step), on
    /// a batch of `labels.len()` samples; an evaluation goes to `evaluate`.
    pub fn pass(&mut self, x: &[f32], labels: &[u32], pass: Pass) -> StepStats {
        if pass == Pass::Evaluate {
            return self.evaluate(x, labels);
        }
        let s = self.step;
        let scale = f32::from_bits(self.loss_scale.scale);
        let parts = (&mut self.state[..], &mut self.bn[..], &mut self.loss_scale);
        let run = run_step(&self.plan, parts, (x, labels), (s, pass));
        let (loss, correct) = run.results;
        let grad_ex = run.exceptions;
        if pass == Pass::Train {
            super::engine::merge_logs(&mut self.tensor_log, &run.log);
        }
        self.step += (pass == Pass::Train) as u64;
        StepStats {
            loss: loss.iter().sum::<f32>() / labels.len() as f32,
            correct: correct.iter().map(|&c| c as usize).sum(),
            loss_scale: scale,
            skipped: self.loss_scale.skip != 0,
            grad_exceptions: grad_ex.overflow + grad_ex.nan,
        }
    }
}

/// Runs step `s` (training, or an evaluation) on a batch, in train::layers' order, on the
/// given state; returns the step's tensors and statistics.
fn run_step<'a>(
    plan: &'a Plan,
    (state, bn, loss_scale): (
        &'a mut [Option<LinearState>],
        &'a mut [Option<BnStat>],
        &'a mut LossScaleState,
    ),
    (x, labels): (&[f32], &'a [u32]),
    (s, pass): (u64, Pass),
) -> CpuStep<'a> {
    let input = quantize(x, &plan.spec("input", s, 0));
    let mut run = CpuStep::new(plan, (state, bn, loss_scale), input, labels);
    layers::run_pass(&mut run, plan, (labels.len(), s), pass)
        .expect("a model's layers fit its shapes");
    run
}

/// The CPU engine during one step: the trainer's parameters, batch-norm statistics and
/// loss scale, and the step's tensors.
struct CpuStep<'a> {
    plan: &'a Plan,
    state: &'a mut [Option<LinearState>],
    bn: &'a mut [Option<BnStat>],
    loss_scale: &'a mut LossScaleState,
    labels: &'a [u32],
    /// Per-sample losses and correct flags.
    results: (Vec<f32>, Vec<u32>),
    input: Quantized,
    acts: Vec<Option<Quantized>>,
    grads: Vec<Option<Quantized>>,
    /// Per layer: its weight and bias gradients.
    wgrads: Vec<(Option<Quantized>, Option<Quantized>)>,
    /// Per layer: the sum of its output gradient's contributions so far, when several
    /// layers read it (f32).
    pending: Vec<Option<Vec<f32>>>,
    /// The gradient quantizers' exception counts.
    exceptions: Exceptions,
    /// Every stored tensor's roundings this step.
    log: TensorLog,
}

impl<'a> CpuStep<'a> {
    fn new(
        plan: &'a Plan,
        (state, bn, loss_scale): (
            &'a mut [Option<LinearState>],
            &'a mut [Option<BnStat>],
            &'a mut LossScaleState,
        ),
        input: Quantized,
        labels: &'a [u32],
    ) -> Self {
        let n = state.len();
        let mut log = TensorLog::new();
        let e = log.entry(T::Input.key(plan)).or_default();
        e.add(input.len, &input.exceptions);
        CpuStep {
            plan,
            state,
            bn,
            loss_scale,
            labels,
            results: (Vec::new(), Vec::new()),
            input,
            acts: vec![None; n],
            grads: vec![None; n],
            wgrads: vec![(None, None); n],
            pending: vec![None; n],
            exceptions: Exceptions::default(),
            log,
        }
    }

    /// A tensor of the step.
    fn get(&self, t: T) -> &Quantized {
        let param = |i: usize| self.state[i].as_ref().expect("a layer with weights");
        fn set(q: Option<&Quantized>) -> &Quantized {
            q.expect("a tensor is written before it is read")
        }
        match t {
            T::Input => &self.input,
            T::Act(i) => set(self.acts[i].as_ref()),
            T::Grad(i) => set(self.grads[i].as_ref()),
            T::Weight(i) => &param(i).w,
            T::Bias(i) => &param(i).b,
            T::WeightGrad(i) => set(self.wgrads[i].0.as_ref()),
            T::BiasGrad(i) => set(self.wgrads[i].1.as_ref()),
        }
    }

    /// A tensor's decoded values.
    fn values(&self, t: T) -> Vec<f32> {
        dequantize(self.get(t))
    }

    /// Rounds `v` into `out`, counting a gradient's exceptions; a gradient's contribution
    /// starts, adds to, or is added to and ends the sum pending for it, as `out.flow` says.
    fn put(&mut self, out: Out, mut v: Vec<f32>) {
        if out.flow != Flow::Store {
            let T::Grad(j) = out.t else {
                panic!("only output gradients have several contributions");
            };
            let pending = &mut self.pending[j];
            match out.flow {
                Flow::Start => {
                    *pending = Some(v);
                    return;
                }
                Flow::Add => {
                    let p = pending.as_mut().expect("a started gradient sum");
                    p.iter_mut().zip(&v).for_each(|(a, b)| *a += *b);
                }
                _ => {
                    let p = pending.take().expect("a started gradient sum");
                    v.iter_mut().zip(&p).for_each(|(a, b)| *a += *b);
                }
            }
            if out.flow != Flow::Finish {
                return;
            }
        }
        let q = quantize(&v, &out.spec);
        if out.grad {
            self.exceptions.merge(&q.exceptions);
        }
        self.note(out.t.key(self.plan), &q);
        let slot = match out.t {
            T::Act(i) => &mut self.acts[i],
            T::Grad(i) => &mut self.grads[i],
            T::WeightGrad(i) => &mut self.wgrads[i].0,
            T::BiasGrad(i) => &mut self.wgrads[i].1,
            other => panic!("a step does not write {other:?}"),
        };
        *slot = Some(q);
    }
}

impl Engine for CpuStep<'_> {
    type Error = GemmError;

    fn gemm(
        &mut self,
        (a, ash): (T, &[usize]),
        (b, bsh): (T, &[usize]),
        bias: Option<T>,
        spec: &GemmSpec,
        out: Out,
    ) -> Result<(), GemmError> {
        let bias = bias.map(|t| self.values(t));
        let c = gemm_values(self.get(a), ash, self.get(b), bsh, bias.as_deref(), spec)?;
        self.put(out, c);
        Ok(())
    }

    fn conv(
        &mut self,
        pass: ConvPass,
        geo: &ConvGeometry,
        (a, b): (T, T),
        bias: Option<T>,
        spec: &Conv2dSpec,
        out: Out,
    ) -> Result<(), GemmError> {
        let bias = bias.map(|t| self.values(t));
        let c = conv2d_values(pass, geo, self.get(a), self.get(b), bias.as_deref(), spec)?;
        self.put(out, c);
        Ok(())
    }

    fn elementwise(&mut self, op: Elem, ins: &[T], _n: usize, out: Out) -> Result<(), GemmError> {
        let x = self.values(ins[0]);
        let second = || self.values(ins[1]);
        let y = match op {
            Elem::Relu => relu_forward(&x),
            Elem::ReluBackward => relu_backward(&x, &second()),
            Elem::Convert => x,
            Elem::MaxPool(p) => maxpool_forward(&x, &p),
            Elem::MaxPoolBackward(p) => maxpool_backward(&x, &second(), &p),
            Elem::AvgPool(p) => avgpool_forward(&x, &p),
            Elem::AvgPoolBackward(p) => avgpool_backward(&x, &p),
            Elem::Residual(sc) => residual_forward(&x, &second(), &sc),
            Elem::MapBackward(sc) => skip_backward(&x, &sc),
        };
        self.put(out, y);
        Ok(())
    }

    fn col_sum(&mut self, g: T, shape: (usize, usize, usize), out: Out) -> Result<(), GemmError> {
        let sums = col_sum(&self.values(g), shape);
        self.put(out, sums);
        Ok(())
    }

    fn batch_norm(
        &mut self,
        i: usize,
        x: T,
        geo: &BatchNorm,
        train: bool,
        out: Out,
    ) -> Result<(), GemmError> {
        let (xin, gamma, beta) = (
            self.values(x),
            self.values(T::Weight(i)),
            self.values(T::Bias(i)),
        );
        let stat = self.bn[i]
            .as_mut()
            .expect("a batch-norm layer's statistics");
        bn_stats(&xin, stat, geo, train);
        let y = bn_forward(&xin, &gamma, &beta, stat, geo);
        self.put(out, y);
        Ok(())
    }

    fn batch_norm_backward(
        &mut self,
        i: usize,
        (x, g): (T, T),
        geo: &BatchNorm,
        dx: Option<Out>,
        (dw, db): (Out, Out),
    ) -> Result<(), GemmError> {
        let (xin, gin, gamma) = (self.values(x), self.values(g), self.values(T::Weight(i)));
        let stat = self.bn[i]
            .as_mut()
            .expect("a batch-norm layer's statistics");
        let d = bn_backward(&xin, &gin, &gamma, stat, geo);
        let (dgamma, dbeta) = (stat.dgamma.clone(), stat.dbeta.clone());
        self.put(dw, dgamma);
        self.put(db, dbeta);
        if let Some(dx) = dx {
            self.put(dx, d);
        }
        Ok(())
    }

    fn concat(&mut self, parts: &[(T, Shortcut)], out: Out) -> Result<(), GemmError> {
        let sc = &parts[0].1;
        let mut y = vec![0f32; sc.batch * sc.out.iter().product::<usize>()];
        for (t, sc) in parts {
            place(&self.values(*t), sc, &mut y);
        }
        self.put(out, y);
        Ok(())
    }

    fn loss(&mut self, out: Out, train: bool) -> Result<(), GemmError> {
        let z = self.values(T::Act(self.acts.len() - 1));
        let shape = (self.labels.len(), z.len() / self.labels.len().max(1));
        let (mut g, loss, correct): LossParts = match self.plan.config.loss {
            LossKind::CrossEntropy => softmax_xent(&z, self.labels, shape),
            LossKind::Mse => mse(&z, self.labels, shape),
        };
        self.results = (loss, correct);
        if train {
            let scale = f32::from_bits(self.loss_scale.scale);
            g.iter_mut().for_each(|v| *v *= scale);
            self.put(out, g);
        }
        Ok(())
    }

    fn loss_scale_update(&mut self, s: u64) -> Result<(), GemmError> {
        let c = self.plan.config;
        let ln_betas = c.adam(s).ln_betas();
        self.loss_scale
            .update(&self.exceptions, c.loss_scale.dynamic(), ln_betas);
        Ok(())
    }

    fn svrg(
        &mut self,
        i: usize,
        part: u32,
        op: Svrg,
        specs: &UpdateSpecs,
    ) -> Result<(), GemmError> {
        self.svrg_value(i, part, op, specs);
        Ok(())
    }

    fn update(&mut self, i: usize, part: u32, specs: &UpdateSpecs) -> Result<(), GemmError> {
        let (c, s) = (self.plan.config, specs.step);
        let (skip, inv) = (
            self.loss_scale.skip != 0,
            f32::from_bits(self.loss_scale.inv),
        );
        let g = match part {
            0 => self.wgrads[i].0.take(),
            _ => self.wgrads[i].1.take(),
        };
        let g = dequantize(&g.expect("the backward pass wrote the gradient"));
        let st = self.state[i].as_mut().expect("a layer with weights");
        let pick = |pair: &(Quantized, Quantized)| {
            if part == 0 {
                pair.0.clone()
            } else {
                pair.1.clone()
            }
        };
        // The update reads the master copy where there is one; it is skipped when the loss
        // scale says so, and the stored tensors are rounded again either way.
        let source = match &st.master {
            Some(pair) => dequantize(&pick(pair)),
            None => dequantize(if part == 0 { &st.w } else { &st.b }),
        };
        let vel = if part == 0 { &mut st.vw } else { &mut st.vb };
        let (mut w, mut v) = (source, dequantize(vel));
        let mut v2 = st.moment2.as_ref().map(|p| dequantize(&pick(p)));
        match (&mut v2, skip) {
            (_, true) => {}
            (Some(v2), false) => adam(&g, &mut w, (&mut v, v2), self.loss_scale, &c.adam(s)),
            (None, false) => sgd(&g, &mut w, &mut v, inv, &c.sgd(s)),
        }
        let mut noted = Vec::new();
        *vel = quantize(&v, &specs.velocity);
        noted.push(("momentum", (vel.len, vel.exceptions)));
        let param = if part == 0 { &mut st.w } else { &mut st.b };
        *param = quantize(&w, &specs.param);
        noted.push(("param", (param.len, param.exceptions)));
        if let (Some(pair), Some(v2), Some(spec)) = (st.moment2.as_mut(), &v2, &specs.moment2) {
            let m2 = if part == 0 { &mut pair.0 } else { &mut pair.1 };
            *m2 = quantize(v2, spec);
            noted.push(("moment2", (m2.len, m2.exceptions)));
        }
        if let (Some((mw, mb)), Some(spec)) = (st.master.as_mut(), &specs.master) {
            let m = if part == 0 { mw } else { mb };
            *m = quantize(&w, spec);
            noted.push(("master", (m.len, m.exceptions)));
        }
        for (role, counts) in noted {
            self.note_counts((i, part), role, counts);
        }
        Ok(())
    }
}

impl CpuStep<'_> {
    /// Adds a rounding into a stored tensor to the step's log under `key`.
    fn note(&mut self, key: (String, u32), q: &Quantized) {
        self.log.entry(key).or_default().add(q.len, &q.exceptions);
    }

    /// `note` of a rounding's element count and exceptions, for layer `i`'s `part` of the
    /// state `role`.
    fn note_counts(&mut self, (i, part): (usize, u32), role: &str, (n, e): (usize, Exceptions)) {
        let key = state_key(self.plan, i, part, role);
        self.log.entry(key).or_default().add(n, &e);
    }

    /// Adds layer `i`'s rounded `part` of the state `role` to the step's log.
    fn note_state(&mut self, (i, part): (usize, u32), role: &str, q: &Quantized) {
        self.note(state_key(self.plan, i, part, role), q);
    }

    /// One value of bit-centred SVRG for layer `i`'s `part` (see `Engine::svrg`).
    fn svrg_value(&mut self, i: usize, part: u32, op: Svrg, specs: &UpdateSpecs) {
        let inv_s = f32::from_bits(self.loss_scale.inv);
        let g = match op {
            Svrg::KeepCentreGrad | Svrg::AddFull { .. } | Svrg::Step => {
                let q = if part == 0 {
                    &self.wgrads[i].0
                } else {
                    &self.wgrads[i].1
                };
                dequantize(q.as_ref().expect("the backward pass wrote the gradient"))
            }
            _ => Vec::new(),
        };
        let st = self.state[i].as_mut().expect("a layer with weights");
        let pick = |pair: &Option<(Quantized, Quantized)>| {
            let (w, b) = pair
                .as_ref()
                .expect("HALP keeps a centre and a full gradient");
            if part == 0 { w.clone() } else { b.clone() }
        };
        // The centre and offset, decoded only for the values that read them.
        let (c, z) = match op {
            Svrg::AtCentre | Svrg::AtPoint | Svrg::Step | Svrg::Recentre => (
                dequantize(&pick(&st.master)),
                dequantize(if part == 0 { &st.vw } else { &st.vb }),
            ),
            _ => Default::default(),
        };
        let spec = |s: Option<QuantSpec>| s.expect("HALP's specs");
        match op {
            Svrg::AtCentre | Svrg::AtPoint => {
                let v = match op {
                    Svrg::AtCentre => svrg_value(&SvrgValue::Copy(&c), inv_s),
                    _ => svrg_value(&SvrgValue::Sum(&c, &z), inv_s),
                };
                let q = quantize(&v, &specs.param);
                *(if part == 0 { &mut st.w } else { &mut st.b }) = q.clone();
                self.note_state((i, part), "param", &q);
            }
            Svrg::KeepCentreGrad => {
                let v = svrg_value(&SvrgValue::Unscaled(&g, 1.0), inv_s);
                *(if part == 0 {
                    &mut st.centre_grad.0
                } else {
                    &mut st.centre_grad.1
                }) = v;
            }
            Svrg::AddFull { inv, first } => {
                let share = svrg_value(&SvrgValue::Unscaled(&g, inv), inv_s);
                let pair = st.moment2.as_mut().expect("HALP keeps a full gradient");
                let full = if part == 0 { &mut pair.0 } else { &mut pair.1 };
                let old = dequantize(full);
                let v: Vec<f32> = match first {
                    true => share.iter().map(|x| 0.0 + x).collect(),
                    false => old.iter().zip(&share).map(|(a, b)| a + b).collect(),
                };
                *full = quantize(&v, &spec(specs.moment2));
            }
            Svrg::Step => {
                let full = dequantize(&pick(&st.moment2));
                let gc = if part == 0 {
                    &st.centre_grad.0
                } else {
                    &st.centre_grad.1
                };
                let step = SvrgValue::Step {
                    g: &g,
                    z: &z,
                    gc,
                    full: &full,
                    lr: self.plan.config.lr_at(specs.step),
                };
                let v = svrg_value(&step, inv_s);
                let q = quantize(&v, &specs.velocity);
                *(if part == 0 { &mut st.vw } else { &mut st.vb }) = q.clone();
                self.note_state((i, part), "momentum", &q);
            }
            Svrg::Recentre => {
                let v = svrg_value(&SvrgValue::Sum(&c, &z), inv_s);
                let pair = st.master.as_mut().expect("HALP keeps a centre");
                let centre = quantize(&v, &spec(specs.master));
                *(if part == 0 { &mut pair.0 } else { &mut pair.1 }) = centre.clone();
                let n = z.len();
                let zero = svrg_value(&SvrgValue::Zero(n), inv_s);
                let offset = quantize(&zero, &specs.velocity);
                *(if part == 0 { &mut st.vw } else { &mut st.vb }) = offset.clone();
                self.note_state((i, part), "master", &centre);
                self.note_state((i, part), "momentum", &offset);
            }
        }
    }
}

impl Store for CpuTrainer {
    type Error = CheckpointError;

    fn mismatch(e: CheckpointError) -> CheckpointError {
        e
    }

    fn read(&self, k: &Kept) -> Result<(Vec<u32>, Vec<u32>), CheckpointError> {
        let q = self.state[k.layer]
            .as_ref()
            .and_then(|st| st.get(k.role, k.part))
            .expect("a plan keeps what its trainer holds");
        let scales = match q.spec.scaling {
            crate::quant::Scaling::Tensor if q.scales.is_empty() => vec![q.scale_exp as u32],
            _ => q.scales.clone(),
        };
        Ok((q.words.clone(), scales))
    }

    fn write(&mut self, k: &Kept, words: &[u32], scales: &[u32]) -> Result<(), CheckpointError> {
        let q = self.kept_mut(k);
        q.words = words.to_vec();
        if q.spec.scaling == crate::quant::Scaling::Tensor && q.spec.format.block().is_none() {
            q.scale_exp = scales[0] as i32;
        } else {
            q.scales = scales.to_vec();
        }
        Ok(())
    }

    fn read_running(&self, layer: usize) -> Result<Vec<u32>, CheckpointError> {
        let b = self.bn[layer].as_ref().expect("a batch-norm layer");
        Ok((b.running_mean.iter().chain(&b.running_var))
            .map(|v| v.to_bits())
            .collect())
    }

    fn write_running(&mut self, layer: usize, words: &[u32]) -> Result<(), CheckpointError> {
        let b = self.bn[layer].as_mut().expect("a batch-norm layer");
        let c = b.mean.len();
        let v: Vec<f32> = words.iter().map(|&w| f32::from_bits(w)).collect();
        b.running_mean = v[..c].to_vec();
        b.running_var = v[c..].to_vec();
        Ok(())
    }

    fn read_step_state(&self) -> Result<[u32; STEP_STATE_WORDS], CheckpointError> {
        Ok(self.loss_scale.words())
    }

    fn write_step(
        &mut self,
        words: &[u32; STEP_STATE_WORDS],
        step: u64,
    ) -> Result<(), CheckpointError> {
        self.loss_scale = LossScaleState::from_words(*words);
        self.step = step;
        Ok(())
    }
}
