//! The GPU training engine: every tensor packed in its planned format, each step recorded
//! into one command encoder and submitted once.

use super::cpu::StepStats;
use super::model::Layer;
use super::plan::conv_spec;
use super::plan::{Plan, RoleBytes, SgdConfig};
use crate::accum::GemmSpec;
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass};
use crate::gpu::buffers::{map_read, staging, zeroed};
use crate::gpu::params::SplitParams;
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::ops::conv::prepare_conv;
use crate::ops::elementwise::{
    Sgd, XentOutputs, record_col_sum, record_relu_backward, record_relu_forward, record_sgd,
    record_softmax_xent,
};
use crate::ops::elementwise::{record_maxpool_backward, record_maxpool_forward};
use crate::ops::gemm::{GemmView, prepare_gemm, record_view};
use crate::ops::quantize::{QuantizeTargets, alloc_tensor, dequantize_into, record_quantize};
use crate::quant::QuantSpec;

/// A packed tensor plus an f32 working copy of the same size.
struct Slot {
    t: Tensor,
    f: wgpu::Buffer,
    n: usize,
}

/// Parameters and optimizer state of one Linear layer.
struct LinearSlots {
    w: Slot,
    b: Slot,
    vw: Slot,
    vb: Slot,
    dw: Slot,
    db: Slot,
    master: Option<(Slot, Slot)>,
    /// The decoded bias for the forward GEMM.
    bias_f32: wgpu::Buffer,
}

/// A model training on the GPU.
pub struct GpuTrainer<'c> {
    ctx: &'c GpuContext,
    /// The plan.
    pub plan: Plan,
    sgd: SgdConfig,
    batch: usize,
    input: Slot,
    acts: Vec<Slot>,
    grads: Vec<Slot>,
    params: Vec<Option<LinearSlots>>,
    labels: wgpu::Buffer,
    loss: wgpu::Buffer,
    correct: wgpu::Buffer,
    xent_grad: wgpu::Buffer,
    scratch: wgpu::Buffer,
    scratch2: wgpu::Buffer,
    stats: wgpu::Buffer,
    none: wgpu::Buffer,
    /// Steps taken.
    pub step: u64,
}

fn slot(ctx: &GpuContext, shape: &[usize], spec: &QuantSpec) -> Result<Slot, GpuError> {
    let t = alloc_tensor(ctx, shape, spec)?;
    let n = t.len();
    Ok(Slot {
        t,
        f: zeroed(ctx, "f32", n)?,
        n,
    })
}

impl<'c> GpuTrainer<'c> {
    /// Allocates every tensor for batches of `batch` samples and uploads the initial state
    /// (the same He-uniform weights as the CPU trainer, quantized on the GPU).
    pub fn new(
        ctx: &'c GpuContext,
        plan: Plan,
        sgd: SgdConfig,
        batch: usize,
    ) -> Result<GpuTrainer<'c>, GpuError> {
        let m = plan.model.clone();
        let widest = m
            .layers
            .iter()
            .map(Layer::outputs)
            .chain([m.inputs])
            .max()
            .unwrap()
            * batch;
        let mut t = GpuTrainer {
            ctx,
            sgd,
            batch,
            input: slot(
                ctx,
                &[vec![batch], m.input_shape.clone()].concat(),
                &plan.spec("input", 0, 0),
            )?,
            acts: Vec::new(),
            grads: Vec::new(),
            params: Vec::new(),
            labels: zeroed(ctx, "labels", batch)?,
            loss: zeroed(ctx, "loss", batch)?,
            correct: zeroed(ctx, "correct", batch)?,
            xent_grad: zeroed(ctx, "xent grad", batch * m.classes())?,
            scratch: zeroed(ctx, "scratch", widest)?,
            scratch2: zeroed(ctx, "scratch", widest)?,
            stats: zeroed(ctx, "stats", 4)?,
            none: zeroed(ctx, "no scales", 1)?,
            step: 0,
            plan,
        };
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for (i, l) in m.layers.iter().enumerate() {
            let n = l.name().to_string();
            let shape = [vec![batch], l.sample_shape()].concat();
            t.acts
                .push(slot(ctx, &shape, &t.plan.spec(&format!("{n}.act"), 0, 0))?);
            t.grads
                .push(slot(ctx, &shape, &t.plan.spec(&format!("{n}.grad"), 0, 0))?);
            let Some((_, nb, _)) = l.param_sizes() else {
                t.params.push(None);
                continue;
            };
            let ws = l.weight_shape();
            let p = |name: &str, part| t.plan.spec(&format!("{n}.{name}"), 0, part);
            let (w0, b0) = m.init_params(i, t.plan.seed);
            let ls = LinearSlots {
                w: slot(ctx, &ws, &p("weight", 0))?,
                b: slot(ctx, &[nb], &p("bias", 0))?,
                vw: slot(ctx, &ws, &p("momentum", 0))?,
                vb: slot(ctx, &[nb], &p("momentum", 1))?,
                dw: slot(ctx, &ws, &p("wgrad", 0))?,
                db: slot(ctx, &[nb], &p("wgrad", 1))?,
                master: match t.plan.master {
                    true => Some((
                        slot(ctx, &ws, &p("master", 0))?,
                        slot(ctx, &[nb], &p("master", 1))?,
                    )),
                    false => None,
                },
                bias_f32: zeroed(ctx, "bias", nb)?,
            };
            ctx.queue
                .write_buffer(&ls.w.f, 0, bytemuck::cast_slice(&w0));
            ctx.queue
                .write_buffer(&ls.b.f, 0, bytemuck::cast_slice(&b0));
            t.quantize(&mut enc, &ls.w.f, &ls.w, &p("weight", 0))?;
            t.quantize(&mut enc, &ls.b.f, &ls.b, &p("bias", 0))?;
            t.quantize(&mut enc, &ls.vw.f, &ls.vw, &p("momentum", 0))?;
            t.quantize(&mut enc, &ls.vb.f, &ls.vb, &p("momentum", 1))?;
            if let Some((mw, mb)) = &ls.master {
                t.quantize(&mut enc, &ls.w.f, mw, &p("master", 0))?;
                t.quantize(&mut enc, &ls.b.f, mb, &p("master", 1))?;
            }
            t.params.push(Some(ls));
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        Ok(t)
    }

    /// Records: quantize the f32 buffer `src` into `dst` as `spec` says.
    fn quantize(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &Slot,
        spec: &QuantSpec,
    ) -> Result<(), GpuError> {
        enc.clear_buffer(&self.stats, 0, None);
        let targets = QuantizeTargets {
            words: dst.t.words(),
            scales: dst.t.scales().unwrap_or(&self.none),
            stats: &self.stats,
        };
        record_quantize(self.ctx, enc, src, dst.n, spec, &targets)
    }

    /// Records: decode `src` into the f32 buffer `dst`.
    fn decode(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &Slot,
        dst: &wgpu::Buffer,
    ) -> Result<(), GpuError> {
        dequantize_into(
            self.ctx,
            enc,
            src.t.words(),
            src.t.scales().unwrap_or(&self.none),
            src.n,
            src.t.spec(),
            dst,
        )
    }

    /// Records a GEMM of two packed tensors into `out` (its f32 copy, then quantized).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        enc: &mut wgpu::CommandEncoder,
        a: &Tensor,
        b: &Tensor,
        bias: Option<(&wgpu::Buffer, usize)>,
        spec: &GemmSpec,
        out: &Slot,
    ) -> Result<(), GpuError> {
        let (view, params, _) = prepare_gemm(a, b, bias.map(|(_, n)| n), spec)?;
        self.finish(enc, &view, params, (a, b), bias, out, &spec.out)
    }

    /// Records a prepared GEMM view's sums into `out`'s f32 copy, then quantizes them.
    #[allow(clippy::too_many_arguments)]
    fn finish<P: SplitParams>(
        &self,
        enc: &mut wgpu::CommandEncoder,
        view: &GemmView,
        params: P,
        (a, b): (&Tensor, &Tensor),
        bias: Option<(&wgpu::Buffer, usize)>,
        out: &Slot,
        out_spec: &QuantSpec,
    ) -> Result<(), GpuError> {
        let bias = bias.map_or(&self.none, |(buf, _)| buf);
        record_view(self.ctx, enc, view, params, a, b, bias, &out.f)?;
        self.quantize(enc, &out.f, out, out_spec)
    }

    /// Records a convolution pass of two packed tensors `(a, b)` (A and B of its GEMM view)
    /// into `out` (its f32 copy, then quantized).
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        enc: &mut wgpu::CommandEncoder,
        pass: ConvPass,
        geo: &ConvGeometry,
        (a, b): (&Tensor, &Tensor),
        bias: Option<(&wgpu::Buffer, usize)>,
        spec: &Conv2dSpec,
        out: &Slot,
    ) -> Result<(), GpuError> {
        let (view, params) = prepare_conv(pass, geo, a, b, bias.map(|(_, n)| n), spec)?;
        self.finish(enc, &view, params, (a, b), bias, out, &spec.out)
    }

    /// One step on a batch (exactly `batch` samples), submitted as one command buffer.
    pub fn step(&mut self, x: &[f32], labels: &[u32]) -> Result<StepStats, GpuError> {
        self.run(x, labels, true)
    }

    /// Loss and correct count of a batch without training (forward pass only).
    pub fn evaluate(&mut self, x: &[f32], labels: &[u32]) -> Result<StepStats, GpuError> {
        self.run(x, labels, false)
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
            if let Some((mw, mb)) = &p.master {
                r.master += mw.t.stored_bytes() + mb.t.stored_bytes();
            }
        }
        r
    }

    fn run(&mut self, x: &[f32], labels: &[u32], train: bool) -> Result<StepStats, GpuError> {
        let (ctx, s, batch) = (self.ctx, self.step, self.batch);
        if labels.len() != batch || x.len() != batch * self.plan.model.inputs {
            return Err(GpuError::Invalid(format!(
                "a step takes {batch} samples of {} values, got {} labels and {} values",
                self.plan.model.inputs,
                labels.len(),
                x.len()
            )));
        }
        let layers = self.plan.model.layers.clone();
        let plan = &self.plan;
        ctx.queue
            .write_buffer(&self.input.f, 0, bytemuck::cast_slice(x));
        ctx.queue
            .write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let e = &mut enc;
        self.quantize(e, &self.input.f, &self.input, &plan.spec("input", s, 0))?;
        // Forward.
        for (i, l) in layers.iter().enumerate() {
            let prev = if i == 0 {
                &self.input
            } else {
                &self.acts[i - 1]
            };
            let n = l.name();
            let act_spec = plan.spec(&format!("{n}.act"), s, 0);
            match l {
                Layer::Conv2d { pad, cout, .. } => {
                    let p = self.params[i].as_ref().unwrap();
                    self.decode(e, &p.b, &p.bias_f32)?;
                    let spec = conv_spec(*pad, plan.accumulator(n), act_spec);
                    let g = spec
                        .geometry(prev.t.shape(), p.w.t.shape())
                        .map_err(|e| GpuError::Invalid(e.0))?;
                    let bias = Some((&p.bias_f32, *cout));
                    self.conv(
                        e,
                        ConvPass::Forward,
                        &g,
                        (&p.w.t, &prev.t),
                        bias,
                        &spec,
                        &self.acts[i],
                    )?;
                }
                Layer::MaxPool2d { .. } => {
                    let p = l.pool_geometry(batch).unwrap();
                    self.decode(e, prev, &self.scratch)?;
                    record_maxpool_forward(ctx, e, &self.scratch, &self.acts[i].f, &p)?;
                    self.quantize(e, &self.acts[i].f, &self.acts[i], &act_spec)?;
                }
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let p = self.params[i].as_ref().unwrap();
                    self.decode(e, &p.b, &p.bias_f32)?;
                    let spec = GemmSpec {
                        trans_a: false,
                        trans_b: true,
                        acc: plan.accumulator(n),
                        out: act_spec,
                    };
                    self.gemm(
                        e,
                        &prev.t.reshaped(vec![batch, *inputs]),
                        &p.w.t,
                        Some((&p.bias_f32, *outputs)),
                        &spec,
                        &self.acts[i],
                    )?;
                }
                Layer::Relu { .. } => {
                    self.decode(e, prev, &self.scratch)?;
                    record_relu_forward(ctx, e, &self.scratch, &self.acts[i].f, prev.n)?;
                    self.quantize(e, &self.acts[i].f, &self.acts[i], &act_spec)?;
                }
            }
        }
        // Loss.
        let last = layers.len() - 1;
        let classes = layers[last].outputs();
        self.decode(e, &self.acts[last], &self.scratch)?;
        let out = XentOutputs {
            grad: &self.xent_grad,
            loss: &self.loss,
            correct: &self.correct,
        };
        record_softmax_xent(ctx, e, &self.scratch, &self.labels, &out, (batch, classes))?;
        self.quantize(
            e,
            &self.xent_grad,
            &self.grads[last],
            &plan.spec(&format!("{}.grad", layers[last].name()), s, 0),
        )?;
        // Backward.
        for i in (0..layers.len()).rev().filter(|_| train) {
            let n = layers[i].name();
            let x_in = if i == 0 {
                &self.input
            } else {
                &self.acts[i - 1]
            };
            let prev_grad =
                (i > 0).then(|| plan.spec(&format!("{}.grad", layers[i - 1].name()), s, 0));
            let g = &self.grads[i];
            match &layers[i] {
                Layer::Conv2d { pad, cout, .. } => {
                    let p = self.params[i].as_ref().unwrap();
                    let acc = plan.accumulator(n);
                    let wspec = conv_spec(*pad, acc, plan.spec(&format!("{n}.wgrad"), s, 0));
                    let geo = wspec
                        .geometry(x_in.t.shape(), p.w.t.shape())
                        .map_err(|e| GpuError::Invalid(e.0))?;
                    self.conv(
                        e,
                        ConvPass::BackwardWeight,
                        &geo,
                        (&g.t, &x_in.t),
                        None,
                        &wspec,
                        &p.dw,
                    )?;
                    self.decode(e, g, &self.scratch)?;
                    record_col_sum(
                        ctx,
                        e,
                        &self.scratch,
                        &p.db.f,
                        (batch, *cout, geo.oh * geo.ow),
                    )?;
                    self.quantize(e, &p.db.f, &p.db, &plan.spec(&format!("{n}.wgrad"), s, 1))?;
                    if let Some(out) = prev_grad {
                        let xspec = conv_spec(*pad, acc, out);
                        self.conv(
                            e,
                            ConvPass::BackwardData,
                            &geo,
                            (&p.w.t, &g.t),
                            None,
                            &xspec,
                            &self.grads[i - 1],
                        )?;
                    }
                }
                Layer::MaxPool2d { .. } => {
                    if let Some(out) = prev_grad {
                        let pl = layers[i].pool_geometry(batch).unwrap();
                        let dst = &self.grads[i - 1];
                        self.decode(e, x_in, &self.scratch)?;
                        self.decode(e, g, &self.scratch2)?;
                        record_maxpool_backward(
                            ctx,
                            e,
                            &self.scratch,
                            &self.scratch2,
                            &dst.f,
                            &pl,
                        )?;
                        self.quantize(e, &dst.f, dst, &out)?;
                    }
                }
                Layer::Linear {
                    inputs, outputs, ..
                } => {
                    let p = self.params[i].as_ref().unwrap();
                    let acc = plan.accumulator(n);
                    let wspec = GemmSpec {
                        trans_a: true,
                        trans_b: false,
                        acc,
                        out: plan.spec(&format!("{n}.wgrad"), s, 0),
                    };
                    self.gemm(
                        e,
                        &g.t,
                        &x_in.t.reshaped(vec![batch, *inputs]),
                        None,
                        &wspec,
                        &p.dw,
                    )?;
                    self.decode(e, g, &self.scratch)?;
                    record_col_sum(ctx, e, &self.scratch, &p.db.f, (batch, *outputs, 1))?;
                    self.quantize(e, &p.db.f, &p.db, &plan.spec(&format!("{n}.wgrad"), s, 1))?;
                    if let Some(out) = prev_grad {
                        let xspec = GemmSpec {
                            trans_a: false,
                            trans_b: false,
                            acc,
                            out,
                        };
                        self.gemm(e, &g.t, &p.w.t, None, &xspec, &self.grads[i - 1])?;
                    }
                }
                Layer::Relu { .. } => {
                    if let Some(out) = prev_grad {
                        let dst = &self.grads[i - 1];
                        self.decode(e, x_in, &self.scratch)?;
                        self.decode(e, g, &self.scratch2)?;
                        record_relu_backward(ctx, e, &self.scratch, &self.scratch2, &dst.f, g.n)?;
                        self.quantize(e, &dst.f, dst, &out)?;
                    }
                }
            }
        }
        // Update.
        let c = self.sgd;
        let sgd = Sgd {
            lr: c.lr,
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
        };
        for (i, l) in layers.iter().enumerate().filter(|_| train) {
            let Some(p) = self.params[i].as_ref() else {
                continue;
            };
            let n = l.name();
            for part in [0u32, 1] {
                let (param, vel, grad) = if part == 0 {
                    (&p.w, &p.vw, &p.dw)
                } else {
                    (&p.b, &p.vb, &p.db)
                };
                let master = p
                    .master
                    .as_ref()
                    .map(|(mw, mb)| if part == 0 { mw } else { mb });
                self.decode(e, master.unwrap_or(param), &param.f)?;
                self.decode(e, vel, &vel.f)?;
                self.decode(e, grad, &grad.f)?;
                record_sgd(ctx, e, &grad.f, &param.f, &vel.f, param.n, &sgd)?;
                let t = if part == 0 { "weight" } else { "bias" };
                self.quantize(
                    e,
                    &param.f,
                    param,
                    &plan.spec(&format!("{n}.{t}"), s + 1, 0),
                )?;
                self.quantize(
                    e,
                    &vel.f,
                    vel,
                    &plan.spec(&format!("{n}.momentum"), s + 1, part),
                )?;
                if let Some(m) = master {
                    self.quantize(
                        e,
                        &param.f,
                        m,
                        &plan.spec(&format!("{n}.master"), s + 1, part),
                    )?;
                }
            }
        }
        let st = staging(ctx, 8 * batch as u64);
        enc.copy_buffer_to_buffer(&self.loss, 0, &st, 0, 4 * batch as u64);
        enc.copy_buffer_to_buffer(&self.correct, 0, &st, 4 * batch as u64, 4 * batch as u64);
        ctx.queue.submit([enc.finish()]);
        let words = map_read(ctx, &st)?;
        self.step += train as u64;
        Ok(StepStats {
            loss: words[..batch]
                .iter()
                .map(|&w| f32::from_bits(w))
                .sum::<f32>()
                / batch as f32,
            correct: words[batch..].iter().sum::<u32>() as usize,
        })
    }

    /// The packed codes of layer `i`'s weights and biases (for checks against the CPU trainer).
    pub fn read_params(&self, i: usize) -> Result<(Vec<u32>, Vec<u32>), GpuError> {
        let p = self.params[i]
            .as_ref()
            .ok_or_else(|| GpuError::Invalid(format!("layer {i} has no weights")))?;
        Ok((p.w.t.read_words(self.ctx)?, p.b.t.read_words(self.ctx)?))
    }
}
