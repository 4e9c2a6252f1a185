//! The GPU training engine: every tensor packed in its planned format, each step recorded
//! into one command encoder and submitted once.

use super::checkpoint::{CheckpointError, TrainState};
use super::cpu::StepStats;
use super::engine::{Elem, Engine, Flow, Out, Pass, Svrg, T, TensorLog, UpdateSpecs, state_key};
use super::model::Layer;
use super::plan::{LossKind, Plan, RoleBytes};
use super::state::{self, Kept, Role, Store};
use crate::accum::GemmSpec;
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass};
use crate::gpu::Encoder;
use crate::gpu::buffers::{allocated_words, upload_as, zeroed_as};
use crate::gpu::memory::{DeviceBuffer, Purpose};
use crate::gpu::readback::Readback;
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::layer_geometry::{BatchNorm, Shortcut};
use crate::ops::batchnorm::{record_bn_backward, record_bn_forward, record_bn_stats};
use crate::ops::conv::{prepare_conv, record_conv};
use crate::ops::elementwise::{
    Loss, record_col_sum, record_loss, record_relu_backward, record_relu_forward,
};
use crate::ops::elementwise::{
    record_avgpool_backward, record_avgpool_forward, record_residual_forward, record_skip_backward,
};
use crate::ops::elementwise::{
    record_concat, record_convert, record_maxpool_backward, record_maxpool_forward,
};
use crate::ops::gemm::{prepare_gemm, record_view};
use crate::ops::optim::{
    Rule, STEP_STATE_WORDS, StepInputs, Stored, SvrgValue, loss_scale_state,
    record_loss_scale_update, record_sgd_weights, record_svrg, record_update,
};
use crate::ops::packed_io::{Dst, Src};
use crate::ops::quantize::{alloc_tensor, dequantize_into, record_quantize};
use crate::quant::{Exceptions, QuantSpec};
use crate::reference::batchnorm::BnStat;

/// A packed tensor, and, where its values cannot be rounded as the op that computes them
/// stores them, the f32 buffer they are computed in first. That buffer is shared by every
/// slot of the same role (see `VectorPool`): its contents live only from the op that
/// writes them to the quantization that reads them.
struct Slot {
    t: Tensor,
    f: Option<DeviceBuffer>,
    n: usize,
}

impl Slot {
    /// The f32 buffer this tensor is computed in before it is rounded.
    fn f32(&self) -> Result<&DeviceBuffer, GpuError> {
        self.f.as_ref().ok_or_else(|| {
            GpuError::Invalid(format!(
                "a {} tensor of {} values has no f32 buffer: its producer rounds as it stores",
                self.t.spec().format,
                self.n
            ))
        })
    }
}

/// The f32 buffers of the per-channel vectors that are summed before they are rounded
/// (batch norm's dgamma and dbeta) and of batch norm's decoded gamma and beta: two of the
/// largest bias (other bias gradients are rounded as their column sums are stored). Layer
/// outputs, gradients, weights and optimizer state have none: their kernels decode as they
/// load and round as they store. A vector's f32 values never outlive the op that rounds
/// them, so every layer shares the two.
struct VectorPool {
    /// [weight-side (gamma, dgamma), bias-side (beta, dbeta)].
    f: [DeviceBuffer; 2],
}

/// Where an optimizer step's new values are stored before they replace the old ones (the
/// step reads every old value for each new one it stores): per role ([`UPDATE_ROLES`]:
/// parameter, velocity, second moment, master copy), codes and scales as large as the
/// largest tensor of that role's.
struct UpdateOut {
    outs: Vec<(DeviceBuffer, DeviceBuffer)>,
}

impl UpdateOut {
    /// A tensor shaped like `slot`, rounded by `spec`, over role `role`'s scratch buffers.
    fn tensor(&self, role: usize, slot: &Slot, spec: &QuantSpec) -> Tensor {
        let (words, scales) = &self.outs[role];
        let scaled = slot.t.scales().map(|_| scales.clone());
        Tensor::from_parts(slot.t.shape().to_vec(), *spec, words.clone(), scaled)
    }
}

/// Records: a new value's codes and scales (in scratch) replace `slot`'s.
fn copy_over(e: &mut Encoder, out: &Tensor, slot: &Slot) {
    let words = 4 * crate::format::packed_words(slot.n, slot.t.spec().format.bits()) as u64;
    e.copy_buffer_to_buffer(out.words(), 0, slot.t.words(), 0, words);
    if let (Some(from), Some(to)) = (out.scales(), slot.t.scales()) {
        e.copy_buffer_to_buffer(from, 0, to, 0, to.size());
    }
}

/// The tensor-name suffixes of the roles an optimizer step stores, in `UpdateOut`'s order.
const UPDATE_ROLES: [&[&str]; 4] = [
    &["weight", "bias"],
    &["momentum"],
    &["moment2"],
    &["master"],
];

/// Parameters and optimizer state of one Linear layer.
struct LinearSlots {
    w: Slot,
    b: Slot,
    vw: Slot,
    vb: Slot,
    /// Adam's second moments of weights and biases.
    moment2: Option<(Slot, Slot)>,
    dw: Slot,
    db: Slot,
    master: Option<(Slot, Slot)>,
    /// HALP: the gradient at the centre on this step's batch, weights and biases (f32).
    centre_grad: Option<(DeviceBuffer, DeviceBuffer)>,
    /// The decoded bias for the forward GEMM; None where the bias's words are its f32
    /// values (fp32, unscaled), read as they are.
    bias_f32: Option<DeviceBuffer>,
}

/// Words of codes and of scales of the largest tensor whose name ends in one of `role`.
fn largest_of(plan: &Plan, role: &[&str]) -> (usize, usize) {
    let (mut words, mut scales) = (1, 1);
    for (name, part, n) in plan.tensor_sizes(1) {
        if !role.iter().any(|s| name.ends_with(&format!(".{s}"))) {
            continue;
        }
        let spec = plan.spec(&name, 0, part);
        words = words.max(crate::format::packed_words(n, spec.format.bits()));
        scales = scales.max(crate::ops::quantize::scale_words(&spec, n));
    }
    (words, scales)
}

/// A model training on the GPU.
pub struct GpuTrainer<'c> {
    ctx: &'c GpuContext,
    /// The plan.
    pub plan: Plan,
    batch: usize,
    input: Slot,
    acts: Vec<Slot>,
    grads: Vec<Slot>,
    params: Vec<Option<LinearSlots>>,
    labels: DeviceBuffer,
    loss: DeviceBuffer,
    correct: DeviceBuffer,
    /// A loss-scale state of scale 1 (evaluations).
    unit_scale: DeviceBuffer,
    stats: DeviceBuffer,
    /// Each log slot's own statistics buffer: a rounding that is not a gradient's counts
    /// straight into the next slot's (zero, as the end of each step leaves them), so that
    /// a step records no clear and no copy between its dispatches for it (each ends
    /// a compute pass); the end of the step copies them into the log and clears them.
    slot_stats: Vec<DeviceBuffer>,
    /// Exception counts of this step's gradient quantizers (loss scaling reads them).
    grad_stats: DeviceBuffer,
    /// Loss-scale state: [scale, skip, 1 / scale, good steps].
    loss_scale: DeviceBuffer,
    none: DeviceBuffer,
    readback: Readback,
    /// Per BatchNorm2d layer: its statistics ([6][C]: mean, inv, running mean, running var,
    /// dbeta, dgamma) and its decoded gamma and beta ([2][C]).
    bn: Vec<Option<(DeviceBuffer, DeviceBuffer)>>,
    /// Per layer whose output several layers read: the sum of its gradient's contributions
    /// so far (f32, shared where the sums' spans do not overlap).
    pending: Vec<Option<DeviceBuffer>>,
    update_out: UpdateOut,
    arrived: Vec<(u64, Vec<u32>)>,
    /// Samples that count in each submission on its way, oldest first.
    valid: std::collections::VecDeque<usize>,
    /// Each submission's roundings logged (in `log`'s slots, or counted on the host).
    logs: std::collections::VecDeque<Vec<LogEntry>>,
    /// The slots a step's roundings copy their statistics words into (4 words each).
    log: DeviceBuffer,
    /// Every stored tensor's roundings in the training steps that came back since
    /// it was last emptied.
    tensor_log: TensorLog,
    /// Steps taken.
    pub step: u64,
}

/// One rounding into a stored tensor that a step logs.
#[derive(Clone, Debug)]
struct LogEntry {
    /// The tensor's key (`T::key`, `state_key`).
    key: (String, u32),
    /// Elements rounded.
    n: usize,
    /// Counted on the host (the input), else in the next of the log's slots.
    host: Option<Exceptions>,
    /// The slot's counts are the step's gradients' so far (the counts of this rounding are
    /// the difference from the previous such slot); its amax word is this rounding's own.
    cumulative: bool,
    /// The rounding counted straight into its slot's own statistics buffer
    /// (`GpuTrainer::slot_stats`), copied into the log once, at the end of the step.
    own: bool,
}

/// Adds a step's logged roundings to `into`: `words` the log's slots as they came back.
fn add_log(into: &mut TensorLog, entries: &[LogEntry], words: &[u32]) {
    let (mut slot, mut before) = (0, [0u32; 3]);
    for e in entries {
        let exc = match e.host {
            Some(x) => x,
            None => {
                let Some(w) = words.get(4 * slot..4 * slot + 4) else {
                    break;
                };
                slot += 1;
                let mut c = [w[0], w[1], w[2]];
                if e.cumulative {
                    let now = c;
                    c = [0, 1, 2].map(|k| now[k].wrapping_sub(before[k]));
                    before = now;
                }
                Exceptions {
                    overflow: c[0] as u64,
                    underflow: c[1] as u64,
                    nan: c[2] as u64,
                    amax: f32::from_bits(w[3]),
                }
            }
        };
        into.entry(e.key.clone()).or_default().add(e.n, &exc);
    }
}

/// Notes in `log` a rounding of `n` elements into the tensor `key` whose statistics words
/// are in `stats`: `Shared(buffer)`, copied now into the next of the log's slots, or
/// `Own`, the next slot's own buffer, copied at the end of the step.
fn note_into(
    e: &mut Encoder,
    t: &GpuTrainer,
    log: &mut Vec<LogEntry>,
    (key, n): ((String, u32), usize),
    stats: Stats,
    cumulative: bool,
) {
    let k = device_entries(log) as u64;
    if 16 * (k + 1) <= t.log.size() {
        if let Stats::Shared(b) = stats {
            e.copy_buffer_to_buffer(b, 0, &t.log, 16 * k, 16);
        }
        log.push(LogEntry {
            key,
            n,
            host: None,
            cumulative,
            own: stats == Stats::Own,
        });
    }
}

/// Where a logged rounding's statistics words are.
#[derive(Clone, Copy, PartialEq)]
enum Stats<'b> {
    /// In the next log slot's own buffer (`GpuTrainer::slot_stats`).
    Own,
    /// In this buffer, to be copied into the log.
    Shared(&'b wgpu::Buffer),
}

/// The entries of `log` counted on the device (each in a slot of the log).
fn device_entries(log: &[LogEntry]) -> usize {
    log.iter().filter(|l| l.host.is_none()).count()
}

/// Slots of the statistics log: enough for every stored tensor written several times (a
/// HALP step writes an activation twice and a parameter three times).
fn log_slots(plan: &Plan) -> usize {
    4 * plan.tensor_sizes(1).len() + 64
}

/// The statistics of the last report.
fn last_of(mut v: Vec<Report>) -> Result<StepStats, GpuError> {
    v.pop()
        .map(|r| r.stats)
        .ok_or_else(|| GpuError::Readback("no statistics came back".into()))
}

/// What came back from one submission.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// The step it belonged to (for an evaluation: the steps taken before it).
    pub step: u64,
    /// A training step (else an evaluation).
    pub train: bool,
    /// Its statistics.
    pub stats: StepStats,
}

fn slot(
    ctx: &GpuContext,
    shape: &[usize],
    spec: &QuantSpec,
    f: Option<&DeviceBuffer>,
) -> Result<Slot, GpuError> {
    let t = alloc_tensor(ctx, shape, spec)?;
    let n = t.len();
    debug_assert!(
        f.is_none_or(|f| f.size() >= 4 * n as u64),
        "a pooled f32 buffer too small"
    );
    Ok(Slot {
        t,
        f: f.cloned(),
        n,
    })
}

impl<'c> GpuTrainer<'c> {
    /// Allocates every tensor for batches of `batch` samples and uploads the initial state
    /// (the same He-uniform weights as the CPU trainer, quantized on the GPU).
    pub fn new(ctx: &'c GpuContext, plan: Plan, batch: usize) -> Result<GpuTrainer<'c>, GpuError> {
        plan.config
            .loss_scale
            .validate()
            .map_err(GpuError::Invalid)?;
        let m = plan.model.clone();
        let ls = upload_as(
            ctx,
            Purpose::Other,
            "loss scale",
            &loss_scale_state(plan.config.loss_scale.initial()),
        )?;
        let most_b = m
            .layers
            .iter()
            .filter_map(Layer::param_sizes)
            .fold(1, |b, (_, nb, _)| b.max(nb));
        let pool = VectorPool {
            f: [
                zeroed_as(ctx, Purpose::Working, "gamma, dgamma f32", most_b)?,
                zeroed_as(ctx, Purpose::Working, "beta, bias gradient f32", most_b)?,
            ],
        };
        let update_out = UpdateOut {
            outs: UPDATE_ROLES
                .iter()
                .map(|role| {
                    let (words, scales) = largest_of(&plan, role);
                    Ok((
                        zeroed_as(ctx, Purpose::Working, "update codes", words)?,
                        zeroed_as(ctx, Purpose::Working, "update scales", scales)?,
                    ))
                })
                .collect::<Result<_, GpuError>>()?,
        };
        let mut t = GpuTrainer {
            ctx,
            batch,
            input: slot(
                ctx,
                &[vec![batch], m.input_shape.clone()].concat(),
                &plan.spec("input", 0, 0),
                None,
            )?,
            acts: Vec::new(),
            grads: Vec::new(),
            params: Vec::new(),
            labels: zeroed_as(ctx, Purpose::Other, "labels", batch)?,
            loss: zeroed_as(ctx, Purpose::Other, "loss", batch)?,
            correct: zeroed_as(ctx, Purpose::Other, "correct", batch)?,
            unit_scale: crate::ops::elementwise::unit_scale(ctx)?,
            stats: zeroed_as(ctx, Purpose::Other, "stats", 4)?,
            slot_stats: (0..log_slots(&plan))
                .map(|_| zeroed_as(ctx, Purpose::Other, "slot stats", 4))
                .collect::<Result<_, _>>()?,
            grad_stats: zeroed_as(ctx, Purpose::Other, "gradient stats", 4)?,
            loss_scale: ls,
            none: zeroed_as(ctx, Purpose::Other, "no scales", 1)?,
            readback: Readback::default(),
            bn: Vec::new(),
            pending: Vec::new(),
            update_out,
            arrived: Vec::new(),
            valid: Default::default(),
            logs: Default::default(),
            log: zeroed_as(ctx, Purpose::Other, "statistics log", 4 * log_slots(&plan))?,
            tensor_log: TensorLog::new(),
            step: 0,
            plan,
        };
        let mut enc = Encoder::new(ctx);
        for l in &m.layers {
            let n = l.name().to_string();
            let shape = [vec![batch], l.sample_shape()].concat();
            let act_spec = t.plan.spec(&format!("{n}.act"), 0, 0);
            t.acts.push(slot(ctx, &shape, &act_spec, None)?);
            let grad_spec = t.plan.spec(&format!("{n}.grad"), 0, 0);
            t.grads.push(slot(ctx, &shape, &grad_spec, None)?);
            let Some((_, nb, _)) = l.param_sizes() else {
                t.params.push(None);
                continue;
            };
            let ws = l.weight_shape();
            let p = |name: &str, part| t.plan.spec(&format!("{n}.{name}"), 0, part);
            // Batch norm sums dgamma and dbeta in f32 and decodes gamma and beta into its
            // own layout; other layers' bias gradients are rounded as their sums are stored.
            let bn = matches!(l, Layer::BatchNorm2d { .. });
            let [fw, fb] = &pool.f;
            let fw = bn.then_some(fw);
            let b = slot(ctx, &[nb], &p("bias", 0), bn.then_some(fb))?;
            let bias_f32 = match bn || b.t.spec().holds_f32() {
                true => None,
                false => Some(zeroed_as(ctx, Purpose::Working, "bias", nb)?),
            };
            let ls = LinearSlots {
                w: slot(ctx, &ws, &p("weight", 0), fw)?,
                b,
                vw: slot(ctx, &ws, &p("momentum", 0), None)?,
                vb: slot(ctx, &[nb], &p("momentum", 1), None)?,
                moment2: match t.plan.keeps_moment2() {
                    true => Some((
                        slot(ctx, &ws, &p("moment2", 0), None)?,
                        slot(ctx, &[nb], &p("moment2", 1), None)?,
                    )),
                    false => None,
                },
                dw: slot(ctx, &ws, &p("wgrad", 0), fw)?,
                db: slot(ctx, &[nb], &p("wgrad", 1), bn.then_some(fb))?,
                master: match t.plan.master {
                    true => Some((
                        slot(ctx, &ws, &p("master", 0), None)?,
                        slot(ctx, &[nb], &p("master", 1), None)?,
                    )),
                    false => None,
                },
                centre_grad: match t.plan.halp() {
                    true => Some((
                        zeroed_as(
                            ctx,
                            Purpose::Working,
                            "centre gradient",
                            ws.iter().product(),
                        )?,
                        zeroed_as(ctx, Purpose::Working, "centre gradient", nb)?,
                    )),
                    false => None,
                },
                bias_f32,
            };
            t.params.push(Some(ls));
        }
        // Every kept tensor's initial values, uploaded and rounded into it (the uploads
        // live until the encoder has run).
        let mut uploads = Vec::new();
        for (k, values) in state::initial(&t.plan) {
            let v = upload_as(
                ctx,
                Purpose::Other,
                "initial values",
                bytemuck::cast_slice(&values),
            )?;
            t.quantize(&mut enc, &v, t.kept_slot(&k), &k.spec(&t.plan, 0))?;
            uploads.push(v);
        }
        for l in &m.layers {
            t.bn.push(match l {
                Layer::BatchNorm2d { shape, .. } => Some((
                    upload_as(
                        ctx,
                        Purpose::Working,
                        "batch-norm stats",
                        &BnStat::new(shape[0]).words(),
                    )?,
                    zeroed_as(ctx, Purpose::Working, "gamma and beta", 2 * shape[0])?,
                )),
                _ => None,
            });
        }
        let (owner, words) = pending_buffers(&m, batch);
        let pool = words
            .iter()
            .map(|&w| zeroed_as(ctx, Purpose::Working, "pending gradient sum", w))
            .collect::<Result<Vec<_>, _>>()?;
        t.pending = owner.iter().map(|o| o.map(|k| pool[k].clone())).collect();
        enc.submit();
        ctx.wait()?;
        Ok(t)
    }

    /// Records: quantize the f32 buffer `src` into `dst` as `spec` says.
    fn quantize(
        &self,
        enc: &mut Encoder,
        src: &wgpu::Buffer,
        dst: &Slot,
        spec: &QuantSpec,
    ) -> Result<(), GpuError> {
        enc.clear_buffer(&self.stats, 0, None);
        self.quantize_counting(enc, src, dst, spec, &self.stats)
    }

    /// Records: quantize `src` into `dst`, adding its exception counts to `stats`.
    fn quantize_counting(
        &self,
        enc: &mut Encoder,
        src: &wgpu::Buffer,
        dst: &Slot,
        spec: &QuantSpec,
        stats: &wgpu::Buffer,
    ) -> Result<(), GpuError> {
        record_quantize(self.ctx, enc, src, spec, &dst.t, stats)
    }

    /// Records: decode `src` into the f32 buffer `dst`.
    fn decode(&self, enc: &mut Encoder, src: &Slot, dst: &wgpu::Buffer) -> Result<(), GpuError> {
        dequantize_into(self.ctx, enc, &src.t, dst)
    }

    /// Records `op` computing `slot`'s values, rounded into it with `spec` as they are
    /// stored, with `skip` (a residual shortcut's gradient) added first; a gradient's
    /// exceptions are counted for loss scaling, the others' in `own` (a log slot's own
    /// statistics buffer, zero) or, where that is None, in the shared buffer, cleared.
    fn produce<'s>(
        &'s self,
        enc: &mut Encoder,
        slot: &'s Slot,
        spec: &'s QuantSpec,
        (grad, skip, own): (bool, Option<&'s DeviceBuffer>, Option<&'s wgpu::Buffer>),
        op: impl FnOnce(&mut Encoder, Dst<'s>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let stats = match (grad, own) {
            (true, _) => {
                enc.clear_buffer(&self.grad_stats, 12, Some(4));
                &self.grad_stats
            }
            (false, Some(own)) => own,
            (false, None) => {
                enc.clear_buffer(&self.stats, 0, None);
                &self.stats
            }
        };
        let t = &slot.t;
        let add = skip.map(|b| &**b);
        op(
            enc,
            Dst::Packed {
                t,
                spec,
                stats,
                add,
            },
        )
    }

    /// Records a quantization of a gradient, counting its exceptions for loss scaling.
    fn quantize_grad(
        &self,
        enc: &mut Encoder,
        src: &wgpu::Buffer,
        dst: &Slot,
        spec: &QuantSpec,
    ) -> Result<(), GpuError> {
        // Counts accumulate over the step; the amax word is this tensor's own (a per-tensor
        // scale is taken from it).
        enc.clear_buffer(&self.grad_stats, 12, Some(4));
        self.quantize_counting(enc, src, dst, spec, &self.grad_stats)
    }

    /// The own statistics buffer of the log slot that a step's next logged rounding takes
    /// (`log` the step's entries so far); None where the log is full or the context says
    /// no (`GpuContext::slot_stats`).
    fn own_stats(&self, log: &[LogEntry]) -> Option<&wgpu::Buffer> {
        let on = self.ctx.slot_stats();
        self.slot_stats
            .get(device_entries(log))
            .filter(|_| on)
            .map(|b| &**b)
    }

    /// The slot of a step's tensor.
    fn slot(&self, t: T) -> &Slot {
        let params = |i: usize| {
            self.params[i]
                .as_ref()
                .expect("only layers with weights name weight tensors")
        };
        match t {
            T::Input => &self.input,
            T::Act(i) => &self.acts[i],
            T::Grad(i) => &self.grads[i],
            T::Weight(i) => &params(i).w,
            T::Bias(i) => &params(i).b,
            T::WeightGrad(i) => &params(i).dw,
            T::BiasGrad(i) => &params(i).db,
        }
    }

    /// One step on a batch (exactly `batch` samples), submitted as one command buffer;
    /// waits for it (and anything submitted before) and returns its statistics.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> Result<StepStats, GpuError> {
        self.submit(x, labels, true)?;
        last_of(self.readback_all()?)
    }

    /// Loss and correct count of a batch without training (forward pass only); waits.
    pub fn evaluate(&mut self, x: &[f32], labels: &[u32]) -> Result<StepStats, GpuError> {
        self.submit(x, labels, false)?;
        last_of(self.readback_all()?)
    }

    /// Records and submits a training step (`train`) or an evaluation of a batch, without
    /// waiting for it: its statistics come back later through `poll` or `readback_all`.
    /// The host runs at most [`GpuContext::in_flight`] submissions ahead of the GPU.
    pub fn submit(&mut self, x: &[f32], labels: &[u32], train: bool) -> Result<(), GpuError> {
        let pass = if train { Pass::Train } else { Pass::Evaluate };
        self.submit_pass(x, labels, pass)
    }

    /// Records and submits `pass` on a batch, like `submit` (a batch of HALP's
    /// full-gradient pass reports as an evaluation: it is not a step).
    pub fn submit_pass(&mut self, x: &[f32], labels: &[u32], pass: Pass) -> Result<(), GpuError> {
        let earlier = self.readback.limit(self.ctx, self.ctx.in_flight() - 1)?;
        self.arrived.extend(earlier);
        let (st, tag) = self.run(x, labels, pass)?;
        self.readback.push(tag, st.0, st.1);
        Ok(())
    }

    /// Statistics of the submissions that have finished, oldest first, without waiting.
    pub fn poll(&mut self) -> Result<Vec<Report>, GpuError> {
        let v = self.readback.poll(self.ctx)?;
        self.arrived.extend(v);
        Ok(self.reports())
    }

    /// Waits for every submission and returns their statistics, oldest first.
    pub fn readback_all(&mut self) -> Result<Vec<Report>, GpuError> {
        let v = self.readback.wait_all(self.ctx)?;
        self.arrived.extend(v);
        Ok(self.reports())
    }

    /// Every stored tensor's roundings (elements, exceptions, amax) in the training steps
    /// that came back since it was last emptied (`std::mem::take` empties it).
    pub fn tensor_log(&mut self) -> &mut TensorLog {
        &mut self.tensor_log
    }

    fn reports(&mut self) -> Vec<Report> {
        let batch = self.batch;
        let valid = &mut self.valid;
        let (logs, tensor_log) = (&mut self.logs, &mut self.tensor_log);
        self.arrived
            .drain(..)
            .map(|(tag, words)| {
                let n = valid.pop_front().unwrap_or(batch);
                let ls = &words[2 * batch..];
                let train = tag & 1 == 1;
                let entries = logs.pop_front().unwrap_or_default();
                if train {
                    add_log(tensor_log, &entries, &words[2 * batch + 8..]);
                }
                // Training: the scale this step used is 1 / (its recorded inverse).
                let scale = match train {
                    true => 1.0 / f32::from_bits(ls[2]),
                    false => f32::from_bits(ls[0]),
                };
                Report {
                    step: tag >> 1,
                    train,
                    stats: StepStats {
                        loss: words[..n].iter().map(|&w| f32::from_bits(w)).sum::<f32>() / n as f32,
                        correct: words[batch..batch + n].iter().sum::<u32>() as usize,
                        loss_scale: scale,
                        skipped: train && ls[1] != 0,
                        grad_exceptions: match train {
                            true => ls[4] as u64 + ls[6] as u64,
                            false => 0,
                        },
                    },
                }
            })
            .collect()
    }

    /// Bytes of GPU memory per role: (weights incl. biases, activations incl. input,
    /// gradients incl. weight gradients, optimizer state, master weights).
    pub fn stored_bytes(&self) -> RoleBytes {
        let mut r = RoleBytes::default();
        r.activations += self.input.t.stored_bytes();
        for (a, g) in self.acts.iter().zip(&self.grads) {
            r.activations += a.t.stored_bytes();
            r.gradients += g.t.stored_bytes();
        }
        for p in self.params.iter().flatten() {
            r.weights += p.w.t.stored_bytes() + p.b.t.stored_bytes();
            r.gradients += p.dw.t.stored_bytes() + p.db.t.stored_bytes();
            r.optimizer += p.vw.t.stored_bytes() + p.vb.t.stored_bytes();
            if let Some((mw, mb)) = &p.moment2 {
                r.optimizer += mw.t.stored_bytes() + mb.t.stored_bytes();
            }
            if let Some((mw, mb)) = &p.master {
                r.master += mw.t.stored_bytes() + mb.t.stored_bytes();
            }
        }
        r
    }

    /// Records and submits one step; returns its staging buffer and submission, and its tag.
    fn run(
        &mut self,
        x: &[f32],
        labels: &[u32],
        pass: Pass,
    ) -> Result<((DeviceBuffer, wgpu::SubmissionIndex), u64), GpuError> {
        // Every pass but an evaluation takes a full batch and runs the backward pass.
        let train = pass != Pass::Evaluate;
        let (ctx, s, batch) = (self.ctx, self.step, self.batch);
        let inputs = self.plan.model.inputs;
        let classes = self.plan.model.classes();
        let n = labels.len();
        // A training step takes exactly `batch` samples; an evaluation up to that many.
        if n == 0 || n > batch || (train && n != batch) || x.len() != n * inputs {
            return Err(GpuError::Invalid(format!(
                "a {} takes {}{batch} samples of {inputs} values, got {n} labels and {} values",
                if train { "training step" } else { "evaluation" },
                if train { "" } else { "1 to " },
                x.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(GpuError::Invalid(format!(
                "label {bad} is not below the model's {classes} classes"
            )));
        }
        let plan = &self.plan;
        // A short evaluation batch is padded with zeros (label 0); only the first n count.
        let padded;
        let xs = match n == batch {
            true => x,
            false => {
                padded = [x, &vec![0.0; (batch - n) * inputs]].concat();
                &padded[..]
            }
        };
        let mut ys = labels.to_vec();
        ys.resize(batch, 0);
        // The input is rounded here, by the CPU twin of the GPU quantize pass (the same
        // codes), so that only its packed codes travel and no f32 copy sits on the device.
        let input = &self.input.t;
        let q = crate::reference::quantize::quantize_repeating(xs, &plan.spec("input", s, 0));
        ctx.queue
            .write_buffer(input.words(), 0, bytemuck::cast_slice(&q.words));
        if let Some(scales) = input.scales() {
            let words = match q.spec.format.block() {
                Some(_) => q.scales,
                None => vec![q.scale_exp as u32],
            };
            ctx.queue
                .write_buffer(scales, 0, bytemuck::cast_slice(&words));
        }
        ctx.queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(&ys));
        let mut enc = Encoder::new(ctx);
        let e = &mut enc;
        e.clear_buffer(&self.grad_stats, 0, None);
        // The step, in the order train::layers gives.
        let input_entry = LogEntry {
            key: T::Input.key(plan),
            n: q.len,
            host: Some(q.exceptions),
            cumulative: false,
            own: false,
        };
        let mut step = GpuStep {
            t: self,
            e,
            log: vec![input_entry],
        };
        super::layers::run_pass(&mut step, plan, (batch, s), pass)?;
        let entries = std::mem::take(&mut step.log);
        let slots = device_entries(&entries);
        // The roundings counted in their slots' own buffers: into the log, then cleared
        // for the next step (together, after the step's dispatches).
        let own: Vec<usize> = entries
            .iter()
            .filter(|l| l.host.is_none())
            .enumerate()
            .filter_map(|(k, l)| l.own.then_some(k))
            .collect();
        for &k in &own {
            enc.copy_buffer_to_buffer(&self.slot_stats[k], 0, &self.log, 16 * k as u64, 16);
        }
        for &k in &own {
            enc.clear_buffer(&self.slot_stats[k], 0, None);
        }
        let mut sources = vec![
            (&*self.loss, batch),
            (&*self.correct, batch),
            (&*self.loss_scale, 4),
            (&*self.grad_stats, 4),
        ];
        if slots > 0 {
            sources.push((&*self.log, 4 * slots));
        }
        let st = Readback::stage(ctx, &mut enc, &sources);
        let index = enc.submit();
        self.valid.push_back(n);
        self.logs.push_back(entries);
        let step = pass == Pass::Train;
        let tag = (s << 1) | step as u64;
        self.step += step as u64;
        Ok(((st, index), tag))
    }

    /// The slot of a kept tensor.
    fn kept_slot(&self, k: &Kept) -> &Slot {
        let p = self.params[k.layer]
            .as_ref()
            .expect("a kept tensor's layer has weights");
        let pair = match k.role {
            Role::Param => Some((&p.w, &p.b)),
            Role::Velocity => Some((&p.vw, &p.vb)),
            Role::Moment2 => p.moment2.as_ref().map(|(w, b)| (w, b)),
            Role::Master => p.master.as_ref().map(|(w, b)| (w, b)),
        };
        let (w, b) = pair.expect("a plan keeps what its trainer holds");
        if k.part == 0 { w } else { b }
    }

    /// The trainer's whole state, read back from the GPU (after the work submitted so far).
    pub fn state(&self) -> Result<TrainState, GpuError> {
        state::save(self, &self.plan, self.step)
    }

    /// Continues from a saved state (of the same model, map and optimizer).
    pub fn restore(&mut self, st: &TrainState) -> Result<(), GpuError> {
        let plan = self.plan.clone();
        state::restore(self, &plan, st)
    }

    /// The packed codes of layer `i`'s weight and bias gradients from the last step.
    pub fn read_grads(&self, i: usize) -> Result<(Vec<u32>, Vec<u32>), GpuError> {
        let p = self.params[i]
            .as_ref()
            .ok_or_else(|| GpuError::Invalid(format!("layer {i} has no weights")))?;
        Ok((p.dw.t.read_words(self.ctx)?, p.db.t.read_words(self.ctx)?))
    }

    /// Bytes of the slots a step's rounding statistics are copied into on the device (read
    /// back with the step; 16 per rounding) and of each slot's own buffer they are counted in.
    pub fn statistics_bytes(&self) -> u64 {
        self.log.size() + self.slot_stats.iter().map(|b| b.size()).sum::<u64>()
    }

    /// The bound, in bytes, on the working buffers the trainer holds beside its packed
    /// tensors (`Purpose::Working`), from the model's shape and the plan: the pending sums
    /// of the gradients of outputs several layers read (f32, see `pending_buffers`), two of
    /// the largest bias (batch norm's gamma, beta and their gradients), each layer's
    /// decoded bias, 8 words a batch-norm channel, and the packed outputs of an optimizer
    /// step (`UpdateOut`: the codes and scales of the largest tensor of each role it
    /// stores). Layer outputs, gradients, weights and optimizer state have no f32 buffer:
    /// their kernels decode as they load and round as they store.
    pub fn working_bound(&self) -> u64 {
        let (m, batch) = (&self.plan.model, self.batch);
        // Each buffer in whole 16-byte vectors.
        let w = allocated_words;
        let pending: usize = pending_buffers(m, batch).1.iter().map(|&n| w(n)).sum();
        let (mut most_b, mut biases, mut bn) = (1, 0, 0);
        for l in &m.layers {
            if let Some((_, nb, _)) = l.param_sizes() {
                (most_b, biases) = (most_b.max(nb), biases + w(nb));
            }
            if let Layer::BatchNorm2d { shape, .. } = l {
                bn += w(6 * shape[0]) + w(2 * shape[0]);
            }
        }
        let update: usize = UPDATE_ROLES
            .iter()
            .map(|role| {
                let (words, scales) = largest_of(&self.plan, role);
                w(words) + w(scales)
            })
            .sum();
        let all = pending + 2 * w(most_b) + biases + bn + update;
        4 * all as u64
    }

    /// The bytes of every buffer alive on the trainer's device, by purpose, and the peak.
    pub fn device_memory(&self) -> crate::gpu::memory::MemoryReport {
        self.ctx.memory()
    }

    /// The trainer's device.
    pub fn device(&self) -> &wgpu::Device {
        &self.ctx.device
    }

    /// The packed codes of the last step's input (`None`) or of layer `i`'s output.
    pub fn read_activation(&self, i: Option<usize>) -> Result<Vec<u32>, GpuError> {
        let slot = match i {
            None => &self.input,
            Some(i) => self.acts.get(i).ok_or_else(|| no_layer(i))?,
        };
        slot.t.read_words(self.ctx)
    }

    /// The packed codes of the gradient of layer `i`'s output from the last step.
    pub fn read_output_grad(&self, i: usize) -> Result<Vec<u32>, GpuError> {
        let slot = self.grads.get(i).ok_or_else(|| no_layer(i))?;
        slot.t.read_words(self.ctx)
    }

    /// The packed codes of layer `i`'s weights and biases (for checks against the CPU trainer).
    pub fn read_params(&self, i: usize) -> Result<(Vec<u32>, Vec<u32>), GpuError> {
        let p = self.params[i]
            .as_ref()
            .ok_or_else(|| GpuError::Invalid(format!("layer {i} has no weights")))?;
        Ok((p.w.t.read_words(self.ctx)?, p.b.t.read_words(self.ctx)?))
    }
}

impl Store for GpuTrainer<'_> {
    type Error = GpuError;

    fn mismatch(e: CheckpointError) -> GpuError {
        GpuError::Invalid(e.to_string())
    }

    fn read(&self, k: &Kept) -> Result<(Vec<u32>, Vec<u32>), GpuError> {
        let s = self.kept_slot(k);
        Ok((s.t.read_words(self.ctx)?, s.t.read_scales(self.ctx)?))
    }

    fn write(&mut self, k: &Kept, words: &[u32], scales: &[u32]) -> Result<(), GpuError> {
        let s = self.kept_slot(k);
        let q = &self.ctx.queue;
        q.write_buffer(s.t.words(), 0, bytemuck::cast_slice(words));
        if let Some(b) = s.t.scales() {
            q.write_buffer(b, 0, bytemuck::cast_slice(scales));
        }
        Ok(())
    }

    fn read_running(&self, layer: usize) -> Result<Vec<u32>, GpuError> {
        let (stat, _) = self.bn[layer].as_ref().ok_or_else(|| no_layer(layer))?;
        // Rows 2 and 3 of the statistics: the running mean and variance.
        let all = crate::gpu::buffers::read_u32(self.ctx, stat, (stat.size() / 4) as usize)?;
        let c = all.len() / 6;
        Ok(all[2 * c..4 * c].to_vec())
    }

    fn write_running(&mut self, layer: usize, words: &[u32]) -> Result<(), GpuError> {
        let (stat, _) = self.bn[layer].as_ref().ok_or_else(|| no_layer(layer))?;
        let c = stat.size() / 24;
        let q = &self.ctx.queue;
        q.write_buffer(stat, 8 * c, bytemuck::cast_slice(words));
        Ok(())
    }

    fn read_step_state(&self) -> Result<[u32; STEP_STATE_WORDS], GpuError> {
        let ls = crate::gpu::buffers::read_u32(self.ctx, &self.loss_scale, STEP_STATE_WORDS)?;
        Ok(ls.try_into().expect("the step state's words"))
    }

    fn write_step(&mut self, words: &[u32; STEP_STATE_WORDS], step: u64) -> Result<(), GpuError> {
        let q = &self.ctx.queue;
        q.write_buffer(&self.loss_scale, 0, bytemuck::cast_slice(words));
        q.submit([]);
        self.ctx.wait()?;
        self.step = step;
        Ok(())
    }
}

/// The error for a layer index past the model's end.
fn no_layer(i: usize) -> GpuError {
    GpuError::Invalid(format!("the model has no layer {i}"))
}

/// The f32 buffers of the pending gradient sums: which buffer holds the sum for each
/// layer's output that several layers read (by layer), and each buffer's words. A sum is
/// pending from its latest reader's backward (layer i, where it starts) until its earliest
/// reader's (layer f, where it is added in and rounded); sums whose spans do not overlap
/// share a buffer as large as the largest of them (first fit, in backward order).
fn pending_buffers(
    m: &crate::train::model::Model,
    batch: usize,
) -> (Vec<Option<usize>>, Vec<usize>) {
    // (i, f, j) triples, latest start first: the order the backward pass meets them.
    let mut spans: Vec<(usize, usize, usize)> = (0..m.layers.len())
        .filter_map(|j| {
            let readers = m.consumers(j);
            (readers.len() > 1).then(|| (readers[readers.len() - 1].0, readers[0].0, j))
        })
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut owner = vec![None; m.layers.len()];
    // Per buffer: its words and the layer whose backward frees it (its last span's f).
    let mut buffers: Vec<(usize, usize)> = Vec::new();
    for (i, f, j) in spans {
        let words = batch * m.layers[j].outputs();
        // Free when the last span ended in a layer the backward pass reached before i.
        let k = match buffers.iter().position(|&(_, free_at)| free_at > i) {
            Some(k) => k,
            None => {
                buffers.push((0, usize::MAX));
                buffers.len() - 1
            }
        };
        buffers[k] = (buffers[k].0.max(words), f);
        owner[j] = Some(k);
    }
    (owner, buffers.into_iter().map(|(w, _)| w).collect())
}

/// The GPU engine during one step: the trainer's tensors, and the encoder its ops are
/// recorded into.
struct GpuStep<'a, 'c> {
    t: &'a GpuTrainer<'c>,
    e: &'a mut Encoder,
    /// The step's roundings into stored tensors, in order.
    log: Vec<LogEntry>,
}

impl<'a> GpuStep<'a, '_> {
    /// Records `op` writing `out`'s values: rounded as they are stored, or (a contribution
    /// to a gradient several layers feed) into the f32 sum pending for it.
    fn produce<'s>(
        &'s mut self,
        out: &'s Out,
        op: impl FnOnce(&mut Encoder, Dst<'s>) -> Result<(), GpuError>,
    ) -> Result<(), GpuError> {
        let t = self.t;
        let pending = || match out.t {
            T::Grad(j) => t.pending[j]
                .as_ref()
                .expect("a gradient several layers feed has a pending sum"),
            other => panic!("only output gradients have several contributions, not {other:?}"),
        };
        let slot = t.slot(out.t);
        let own = t.own_stats(&self.log).filter(|_| !out.grad);
        match out.flow {
            Flow::Store => t.produce(self.e, slot, &out.spec, (out.grad, None, own), op)?,
            Flow::Finish => {
                let skip = Some(pending());
                t.produce(self.e, slot, &out.spec, (out.grad, skip, own), op)?
            }
            Flow::Start => return op(self.e, Dst::F32(pending())),
            Flow::Add => return op(self.e, Dst::Accumulate(pending())),
        }
        let stats = match (out.grad, own) {
            (true, _) => Stats::Shared(&t.grad_stats),
            (false, Some(_)) => Stats::Own,
            (false, None) => Stats::Shared(&t.stats),
        };
        note_into(
            self.e,
            t,
            &mut self.log,
            (out.t.key(&t.plan), slot.n),
            stats,
            out.grad,
        );
        Ok(())
    }

    /// Records `t.quantize_grad` of `out`'s f32 values into its slot, and logs it.
    fn quantize_grad(&mut self, out: &Out) -> Result<(), GpuError> {
        let t = self.t;
        let slot = t.slot(out.t);
        t.quantize_grad(self.e, slot.f32()?, slot, &out.spec)?;
        let key = (out.t.key(&t.plan), slot.n);
        note_into(
            self.e,
            t,
            &mut self.log,
            key,
            Stats::Shared(&t.grad_stats),
            true,
        );
        Ok(())
    }

    /// The decoded bias of a forward GEMM or convolution, and its length.
    fn bias(&mut self, bias: Option<T>) -> Result<Option<(&'a wgpu::Buffer, usize)>, GpuError> {
        let Some(T::Bias(i)) = bias else {
            return Ok(None);
        };
        let t = self.t;
        let p = t.params[i].as_ref().expect("a layer with a bias");
        let f32s = match &p.bias_f32 {
            Some(f32s) => {
                t.decode(self.e, &p.b, f32s)?;
                &**f32s
            }
            None => p.b.t.words(),
        };
        Ok(Some((f32s, p.b.n)))
    }
}

impl<'a> Engine for GpuStep<'a, '_> {
    type Error = GpuError;

    fn gemm(
        &mut self,
        (a, ash): (T, &[usize]),
        (b, bsh): (T, &[usize]),
        bias: Option<T>,
        spec: &GemmSpec,
        out: Out,
    ) -> Result<(), GpuError> {
        let t = self.t;
        let ta = t.slot(a).t.reshaped(ash.to_vec());
        let tb = t.slot(b).t.reshaped(bsh.to_vec());
        let bias = self.bias(bias)?;
        let (view, params, _) = prepare_gemm(&ta, &tb, bias.map(|(_, n)| n), spec)?;
        let bias = bias.map_or(&*t.none, |(buf, _)| buf);
        self.produce(&out, |e, d| {
            record_view(t.ctx, e, &view, params, &ta, &tb, bias, d)
        })
    }

    fn conv(
        &mut self,
        pass: ConvPass,
        geo: &ConvGeometry,
        (a, b): (T, T),
        bias: Option<T>,
        spec: &Conv2dSpec,
        out: Out,
    ) -> Result<(), GpuError> {
        let t = self.t;
        let (ta, tb) = (&t.slot(a).t, &t.slot(b).t);
        let bias = self.bias(bias)?;
        let (view, params) = prepare_conv(pass, geo, ta, tb, bias.map(|(_, n)| n), spec)?;
        let bias = bias.map_or(&*t.none, |(buf, _)| buf);
        self.produce(&out, |e, d| {
            record_conv(t.ctx, e, &view, params, (ta, tb), bias, d)
        })
    }

    fn elementwise(&mut self, op: Elem, ins: &[T], n: usize, out: Out) -> Result<(), GpuError> {
        let (t, ctx) = (self.t, self.t.ctx);
        let x = &t.slot(ins[0]).t;
        let second = || &t.slot(ins[1]).t;
        self.produce(&out, |e, d| match op {
            Elem::Relu => record_relu_forward(ctx, e, x, d, n),
            Elem::ReluBackward => record_relu_backward(ctx, e, x, second(), d, n),
            Elem::Convert => record_convert(ctx, e, x, d, n),
            Elem::MaxPool(p) => record_maxpool_forward(ctx, e, x, d, &p),
            Elem::MaxPoolBackward(p) => record_maxpool_backward(ctx, e, x, second(), d, &p),
            Elem::AvgPool(p) => record_avgpool_forward(ctx, e, x, d, &p),
            Elem::AvgPoolBackward(p) => record_avgpool_backward(ctx, e, x, d, &p),
            Elem::Residual(sc) => record_residual_forward(ctx, e, (x, second()), d, &sc),
            Elem::MapBackward(sc) => record_skip_backward(ctx, e, x, d, &sc),
        })
    }

    fn col_sum(&mut self, g: T, shape: (usize, usize, usize), out: Out) -> Result<(), GpuError> {
        let (t, ctx) = (self.t, self.t.ctx);
        let g = &t.slot(g).t;
        self.produce(&out, |e, d| record_col_sum(ctx, e, g, d, shape))
    }

    fn batch_norm(
        &mut self,
        i: usize,
        x: T,
        geo: &BatchNorm,
        train: bool,
        out: Out,
    ) -> Result<(), GpuError> {
        let (t, ctx) = (self.t, self.t.ctx);
        let p = t.params[i]
            .as_ref()
            .expect("a batch-norm layer's gamma and beta");
        let (stat, gb) = t.bn[i].as_ref().expect("a batch-norm layer's statistics");
        t.decode(self.e, &p.w, p.w.f32()?)?;
        t.decode(self.e, &p.b, p.b.f32()?)?;
        let c = 4 * geo.channels as u64;
        self.e.copy_buffer_to_buffer(p.w.f32()?, 0, gb, 0, c);
        self.e.copy_buffer_to_buffer(p.b.f32()?, 0, gb, c, c);
        let x = &t.slot(x).t;
        record_bn_stats(ctx, self.e, x, stat, geo, train)?;
        self.produce(&out, |e, d| {
            record_bn_forward(ctx, e, x, (gb, stat), d, geo)
        })
    }

    fn batch_norm_backward(
        &mut self,
        i: usize,
        (x, g): (T, T),
        geo: &BatchNorm,
        dx: Option<Out>,
        (dw, db): (Out, Out),
    ) -> Result<(), GpuError> {
        let (t, ctx) = (self.t, self.t.ctx);
        let (stat, gb) = t.bn[i].as_ref().expect("a batch-norm layer's statistics");
        let xg = (&t.slot(x).t, &t.slot(g).t);
        match &dx {
            Some(dx) => self.produce(dx, |e, d| {
                record_bn_backward(ctx, e, xg, (gb, stat), d, geo)
            })?,
            None => {
                let unused = ctx.scratch("unused input gradient", t.slot(g).n)?;
                record_bn_backward(ctx, self.e, xg, (gb, stat), &unused, geo)?;
            }
        }
        let c = 4 * geo.channels as u64;
        let (sw, sb) = (t.slot(dw.t), t.slot(db.t));
        self.e.copy_buffer_to_buffer(stat, 5 * c, sw.f32()?, 0, c);
        self.e.copy_buffer_to_buffer(stat, 4 * c, sb.f32()?, 0, c);
        self.quantize_grad(&dw)?;
        self.quantize_grad(&db)
    }

    fn concat(&mut self, parts: &[(T, Shortcut)], out: Out) -> Result<(), GpuError> {
        let t = self.t;
        let parts: Vec<(Src, Shortcut)> = parts
            .iter()
            .map(|(p, sc)| (Src::Packed(&t.slot(*p).t), *sc))
            .collect();
        self.produce(&out, |e, d| record_concat(t.ctx, e, &parts, d))
    }

    fn loss(&mut self, out: Out, train: bool) -> Result<(), GpuError> {
        let (t, ctx) = (self.t, self.t.ctx);
        let plan = &t.plan;
        let last = plan.model.layers.len() - 1;
        let logits = &t.acts[last].t;
        let kind = match plan.config.loss {
            LossKind::CrossEntropy => Loss::SoftmaxXent,
            LossKind::Mse => Loss::Mse,
        };
        // The gradient is scaled by S in training (an evaluation's is not used).
        let scale = if train { &t.loss_scale } else { &t.unit_scale };
        let results = (&*t.loss, &*t.correct);
        let shape = (t.batch, plan.model.classes());
        self.produce(&out, |e, d| {
            record_loss(ctx, e, kind, (logits, &*t.labels), d, results, scale, shape)
        })
    }

    fn loss_scale_update(&mut self, s: u64) -> Result<(), GpuError> {
        let t = self.t;
        let c = t.plan.config;
        let ln_betas = c.adam(s).ln_betas();
        let ls = (&*t.loss_scale, &*t.grad_stats);
        record_loss_scale_update(t.ctx, self.e, ls.0, ls.1, c.loss_scale.dynamic(), ln_betas)
    }

    fn svrg(&mut self, i: usize, part: u32, op: Svrg, specs: &UpdateSpecs) -> Result<(), GpuError> {
        let (t, ctx, e, log) = (self.t, self.t.ctx, &mut *self.e, &mut self.log);
        let mut note = |e: &mut Encoder, role: &str, n: usize| {
            let key = (state_key(&t.plan, i, part, role), n);
            note_into(e, t, log, key, Stats::Shared(&t.stats), false)
        };
        let p = t.params[i].as_ref().expect("a layer with weights");
        let pick = |pair: &'a (Slot, Slot)| if part == 0 { &pair.0 } else { &pair.1 };
        let (param, z, grad) = match part {
            0 => (&p.w, &p.vw, &p.dw),
            _ => (&p.b, &p.vb, &p.db),
        };
        let missing = || GpuError::Invalid("HALP keeps a centre and a full gradient".into());
        let c = p.master.as_ref().map(pick).ok_or_else(missing)?;
        let full = p.moment2.as_ref().map(pick).ok_or_else(missing)?;
        let gc = p.centre_grad.as_ref().ok_or_else(missing)?;
        let gc: &wgpu::Buffer = if part == 0 { &gc.0 } else { &gc.1 };
        let spec = |s: Option<QuantSpec>| s.ok_or_else(missing);
        let (ls, n) = (&*t.loss_scale, param.n);
        // A value stored into `slot` straight, or through the role's scratch buffer when
        // the value reads the slot itself.
        let store = |e: &mut Encoder,
                     v: SvrgValue,
                     slot: &Slot,
                     sp: &QuantSpec,
                     scratch: Option<usize>|
         -> Result<(), GpuError> {
            e.clear_buffer(&t.stats, 0, None);
            let Some(role) = scratch else {
                let d = Dst::Packed {
                    t: &slot.t,
                    spec: sp,
                    stats: &t.stats,
                    add: None,
                };
                return record_svrg(ctx, e, &v, ls, n, d);
            };
            let out = t.update_out.tensor(role, slot, sp);
            let d = Dst::Packed {
                t: &out,
                spec: sp,
                stats: &t.stats,
                add: None,
            };
            record_svrg(ctx, e, &v, ls, n, d)?;
            copy_over(e, &out, slot);
            Ok(())
        };
        let (cs, zs, gs) = (Src::Packed(&c.t), Src::Packed(&z.t), Src::Packed(&grad.t));
        match op {
            Svrg::AtCentre | Svrg::AtPoint => {
                let v = match op {
                    Svrg::AtCentre => SvrgValue::Copy(cs),
                    _ => SvrgValue::Sum(cs, zs),
                };
                store(e, v, param, &specs.param, None)?;
                note(e, "param", n);
                Ok(())
            }
            Svrg::KeepCentreGrad => {
                record_svrg(ctx, e, &SvrgValue::Unscaled(gs, 1.0), ls, n, Dst::F32(gc))
            }
            Svrg::AddFull { inv, first } => {
                if first {
                    e.clear_buffer(full.t.words(), 0, None);
                }
                let d = Dst::Accumulate(full.t.words());
                record_svrg(ctx, e, &SvrgValue::Unscaled(gs, inv), ls, n, d)
            }
            Svrg::Step => {
                let v = SvrgValue::Step {
                    g: gs,
                    z: zs,
                    gc: Src::F32(gc),
                    full: Src::Packed(&full.t),
                    lr: t.plan.config.lr_at(specs.step),
                };
                store(e, v, z, &specs.velocity, Some(1))?;
                note(e, "momentum", n);
                Ok(())
            }
            Svrg::Recentre => {
                store(e, SvrgValue::Sum(cs, zs), c, &spec(specs.master)?, Some(3))?;
                note(e, "master", n);
                store(e, SvrgValue::Zero(zs), z, &specs.velocity, Some(1))?;
                note(e, "momentum", n);
                Ok(())
            }
        }
    }

    fn update(&mut self, i: usize, part: u32, specs: &UpdateSpecs) -> Result<(), GpuError> {
        let (t, ctx, e, log) = (self.t, self.t.ctx, &mut *self.e, &mut self.log);
        let (c, s) = (t.plan.config, specs.step);
        let p = t.params[i].as_ref().expect("a layer with weights");
        let pick = |pair: &'a (Slot, Slot)| if part == 0 { &pair.0 } else { &pair.1 };
        let (param, vel, grad) = if part == 0 {
            (&p.w, &p.vw, &p.dw)
        } else {
            (&p.b, &p.vb, &p.db)
        };
        let master = p.master.as_ref().map(pick);
        let moment2 = p.moment2.as_ref().map(pick);
        // The step reads the master copy where there is one; a skipped step stores the old
        // values, rounded again with this step's streams like an applied one.
        let ins = StepInputs {
            g: Src::Packed(&grad.t),
            w: Src::Packed(&master.unwrap_or(param).t),
            v: Src::Packed(&vel.t),
            moment2: moment2.map(|m| Src::Packed(&m.t)),
        };
        let rule = match moment2 {
            Some(_) => Rule::Adam(c.adam(s)),
            None => Rule::Sgd(c.sgd(s)),
        };
        // (what is stored, where, its rounding, its role in `UPDATE_ROLES`), in the order
        // they are computed: the weights last, as they may come from the others' new values.
        let mut stores = vec![(Stored::Velocity, vel, specs.velocity, 1)];
        if let (Some(m2), Some(spec)) = (moment2, specs.moment2) {
            stores.push((Stored::Moment2, m2, spec, 2));
        }
        if let (Some(m), Some(spec)) = (master, specs.master) {
            stores.push((Stored::Weights, m, spec, 3));
        }
        stores.push((Stored::Weights, param, specs.param, 0));
        // SGD without Nesterov whose velocity keeps every f32 value (fp32, no scale, no
        // saturation) takes its new weights from the new velocity as stored (w - lr v',
        // two operations an element); under a master copy that keeps every f32 value, the
        // new weights are the master's new values rounded (converted, no arithmetic).
        let lr = match rule {
            Rule::Sgd(s) if !s.nesterov && specs.velocity.holds_f32() => Some(s.lr),
            _ => None,
        };
        let from_master = specs.master.is_some_and(|m| m.holds_f32());
        // Every new value goes to a buffer of its own first (each store reads every old
        // value), then replaces the old one.
        let mut outs: Vec<Tensor> = Vec::new();
        for (which, slot, spec, role) in &stores {
            let out = t.update_out.tensor(*role, slot, spec);
            let own = t.own_stats(log);
            let stats = match own {
                Some(b) => b,
                None => {
                    e.clear_buffer(&t.stats, 0, None);
                    &t.stats
                }
            };
            let d = Dst::Packed {
                t: &out,
                spec,
                stats,
                add: None,
            };
            // outs[0] is the new velocity, the last one the new master where there is one.
            match (role, outs.last(), lr) {
                (0, Some(m), _) if from_master && master.is_some() => {
                    record_convert(ctx, e, m, d, slot.n)?
                }
                (0 | 3, _, Some(lr)) => {
                    let v_new = Src::Packed(&outs[0]);
                    record_sgd_weights(ctx, e, lr, (ins.w, v_new), &t.loss_scale, slot.n, d)?
                }
                _ => record_update(ctx, e, &rule, &ins, &t.loss_scale, slot.n, *which, d)?,
            }
            let name = ["param", "momentum", "moment2", "master"][*role];
            let key = (state_key(&t.plan, i, part, name), slot.n);
            let stats = own.map_or(Stats::Shared(&t.stats), |_| Stats::Own);
            note_into(e, t, log, key, stats, false);
            outs.push(out);
        }
        for ((_, slot, _, _), out) in stores.iter().zip(&outs) {
            copy_over(e, out, slot);
        }
        Ok(())
    }
}
