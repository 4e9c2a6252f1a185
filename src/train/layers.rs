//! Every layer kind's forward and backward, written once against [`Engine`]: which tensors
//! each reads and writes, in which formats, with which accumulators; and a step's order
//! (forward, loss, backward, loss scale, updates) with every tensor's rounding and random
//! stream. Both trainers run their steps through here.

use super::engine::{Elem, Engine, Flow, Out, Pass, Svrg, T, UpdateSpecs};
use super::model::{Layer, Source};
use super::plan::{Plan, conv_spec, in_shape};
use crate::accum::GemmSpec;
use crate::conv::{Conv2dSpec, ConvPass};

/// The tensor a source names.
fn tensor(s: Source) -> T {
    match s {
        Source::Input => T::Input,
        Source::Layer(j) => T::Act(j),
    }
}

/// Where the gradient of layer `i`'s source `slot` goes at step `s` (None for the input,
/// whose gradient no one needs): that output's gradient, and how this contribution joins
/// those of its other readers (in backward order: the latest reader first).
fn source_grad(plan: &Plan, i: usize, slot: usize, s: u64) -> Option<Out> {
    let Source::Layer(j) = plan.model.sources[i][slot] else {
        return None;
    };
    let readers = plan.model.consumers(j);
    let at = readers
        .iter()
        .position(|&r| r == (i, slot))
        .expect("a layer reads its sources");
    let flow = match (readers.len(), at) {
        (1, _) => Flow::Store,
        (_, 0) => Flow::Finish,
        (m, a) if a + 1 == m => Flow::Start,
        _ => Flow::Add,
    };
    Some(Out {
        t: T::Grad(j),
        spec: plan.spec(&format!("{}.grad", plan.model.layers[j].name()), s, 0),
        grad: true,
        flow,
    })
}

/// What a pass is for, as batch norm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An evaluation: the running statistics normalise, and no backward pass runs.
    Evaluate,
    /// A training step: the batch's statistics normalise and move the running ones.
    Train,
    /// A gradient only (HALP's at the centre, and its full-gradient pass): the batch's
    /// statistics normalise, and the running ones stay as they are.
    Gradient,
}

/// Layer `i`'s forward pass at step `s` (batch-norm statistics as `mode` says).
pub fn forward<E: Engine>(
    e: &mut E,
    plan: &Plan,
    i: usize,
    (batch, s, mode): (usize, u64, Mode),
) -> Result<(), E::Error> {
    let l = &plan.model.layers[i];
    let n = l.name();
    let srcs = &plan.model.sources[i];
    let x = tensor(srcs[0]);
    let out = Out {
        t: T::Act(i),
        spec: plan.spec(&format!("{n}.act"), s, 0),
        grad: false,
        flow: Flow::Store,
    };
    let values = batch * l.outputs();
    match l {
        Layer::Linear {
            inputs, outputs, ..
        } => {
            let spec = GemmSpec {
                trans_a: false,
                trans_b: true,
                acc: plan.accumulator(n),
                out: out.spec,
            };
            let (a, b) = (
                (x, &[batch, *inputs][..]),
                (T::Weight(i), &[*outputs, *inputs][..]),
            );
            e.gemm(a, b, Some(T::Bias(i)), &spec, out)
        }
        Layer::Conv2d {
            pad,
            stride,
            groups,
            ..
        } => {
            let spec = Conv2dSpec {
                groups: *groups,
                ..conv_spec((*pad, *stride), plan.accumulator(n), out.spec)
            };
            let geo = geometry(plan, i, batch, &spec);
            let ab = (T::Weight(i), x);
            e.conv(ConvPass::Forward, &geo, ab, Some(T::Bias(i)), &spec, out)
        }
        Layer::MaxPool2d { .. } => {
            let p = l.pool_geometry(batch).expect("a pooling layer");
            e.elementwise(Elem::MaxPool(p), &[x], values, out)
        }
        Layer::AvgPool2d { .. } => {
            let p = l.pool_geometry(batch).expect("a pooling layer");
            e.elementwise(Elem::AvgPool(p), &[x], values, out)
        }
        Layer::Relu { .. } => e.elementwise(Elem::Relu, &[x], values, out),
        Layer::Flatten { .. } => e.elementwise(Elem::Convert, &[x], values, out),
        Layer::BatchNorm2d { .. } => {
            let mut geo = l.batch_norm(batch).expect("a batch-norm layer");
            if mode == Mode::Gradient {
                // Momentum 0: the running statistics are left as they are.
                geo.momentum = 0.0;
            }
            e.batch_norm(i, x, &geo, mode != Mode::Evaluate, out)
        }
        Layer::Add { .. } => {
            let sc = l.shortcut(batch).expect("a residual layer");
            e.elementwise(Elem::Residual(sc), &[x, tensor(srcs[1])], values, out)
        }
        Layer::Concat { .. } => {
            let windows = l.windows(batch).expect("a concatenation");
            let parts: Vec<(T, _)> = srcs.iter().map(|&s| tensor(s)).zip(windows).collect();
            e.concat(&parts, out)
        }
    }
}

/// The geometry of convolution layer `i` at a batch size.
fn geometry(
    plan: &Plan,
    i: usize,
    batch: usize,
    spec: &crate::conv::Conv2dSpec,
) -> crate::conv::ConvGeometry {
    let l = &plan.model.layers[i];
    spec.geometry(&in_shape(plan, i, batch), &l.weight_shape())
        .expect("a model's convolutions fit its shapes")
}

/// Layer `i`'s backward pass at step `s`: from the gradient of its output, its weight and
/// bias gradients and its sources' gradients (the input's excepted), each contribution
/// joining those of the sources' other readers.
pub fn backward<E: Engine>(
    e: &mut E,
    plan: &Plan,
    i: usize,
    (batch, s): (usize, u64),
) -> Result<(), E::Error> {
    let model = &plan.model;
    let l = &model.layers[i];
    let n = l.name();
    let srcs = &model.sources[i];
    let (x, g) = (tensor(srcs[0]), T::Grad(i));
    let wgrad = |part, t| Out {
        t,
        spec: plan.spec(&format!("{n}.wgrad"), s, part),
        grad: true,
        flow: Flow::Store,
    };
    // The weight and bias gradients (of the layers that have weights).
    let grads = || (wgrad(0, T::WeightGrad(i)), wgrad(1, T::BiasGrad(i)));
    // Where the first source's gradient goes, and its values.
    let dx = source_grad(plan, i, 0, s);
    let size = |slot: usize| batch * model.source_shape(srcs[slot]).iter().product::<usize>();
    let values = size(0);
    match l {
        Layer::Linear {
            inputs, outputs, ..
        } => {
            let (acc, (dw, db)) = (plan.accumulator(n), grads());
            let (gs, xs, ws) = ([batch, *outputs], [batch, *inputs], [*outputs, *inputs]);
            let wspec = GemmSpec {
                trans_a: true,
                trans_b: false,
                acc,
                out: dw.spec,
            };
            e.gemm((g, &gs), (x, &xs), None, &wspec, dw)?;
            e.col_sum(g, (batch, *outputs, 1), db)?;
            if let Some(dx) = dx {
                let spec = GemmSpec {
                    trans_a: false,
                    trans_b: false,
                    acc,
                    out: dx.spec,
                };
                e.gemm((g, &gs), (T::Weight(i), &ws), None, &spec, dx)?;
            }
            Ok(())
        }
        Layer::Conv2d {
            pad,
            stride,
            cout,
            groups,
            ..
        } => {
            let (acc, (dw, db)) = (plan.accumulator(n), grads());
            let spec = |out| Conv2dSpec {
                groups: *groups,
                ..conv_spec((*pad, *stride), acc, out)
            };
            let wspec = spec(dw.spec);
            let geo = geometry(plan, i, batch, &wspec);
            e.conv(ConvPass::BackwardWeight, &geo, (g, x), None, &wspec, dw)?;
            e.col_sum(g, (batch, *cout, geo.oh * geo.ow), db)?;
            if let Some(dx) = dx {
                let dspec = spec(dx.spec);
                let wg = (T::Weight(i), g);
                e.conv(ConvPass::BackwardData, &geo, wg, None, &dspec, dx)?;
            }
            Ok(())
        }
        Layer::BatchNorm2d { .. } => {
            let geo = l.batch_norm(batch).expect("a batch-norm layer");
            e.batch_norm_backward(i, (x, g), &geo, dx, grads())
        }
        Layer::MaxPool2d { .. } => match dx {
            Some(dx) => {
                let p = l.pool_geometry(batch).expect("a pooling layer");
                e.elementwise(Elem::MaxPoolBackward(p), &[x, g], values, dx)
            }
            None => Ok(()),
        },
        Layer::AvgPool2d { .. } => match dx {
            Some(dx) => {
                let p = l.pool_geometry(batch).expect("a pooling layer");
                e.elementwise(Elem::AvgPoolBackward(p), &[g], values, dx)
            }
            None => Ok(()),
        },
        Layer::Relu { .. } => match dx {
            Some(dx) => e.elementwise(Elem::ReluBackward, &[x, g], values, dx),
            None => Ok(()),
        },
        Layer::Flatten { .. } => match dx {
            Some(dx) => e.elementwise(Elem::Convert, &[g], values, dx),
            None => Ok(()),
        },
        Layer::Add { .. } => {
            // The shortcut's source's gradient: the output's taken back through the map;
            // the main path's: the output's.
            let sc = l.shortcut(batch).expect("a residual layer");
            if let Some(ds) = source_grad(plan, i, 1, s) {
                e.elementwise(Elem::MapBackward(sc), &[g], size(1), ds)?;
            }
            match dx {
                Some(dx) => e.elementwise(Elem::Convert, &[g], values, dx),
                None => Ok(()),
            }
        }
        Layer::Concat { .. } => {
            // Each part's gradient is its window of the output's; the last part first.
            let windows = l.windows(batch).expect("a concatenation");
            for (slot, sc) in windows.into_iter().enumerate().rev() {
                if let Some(d) = source_grad(plan, i, slot, s) {
                    e.elementwise(Elem::MapBackward(sc), &[g], size(slot), d)?;
                }
            }
            Ok(())
        }
    }
}

/// Every layer's forward pass and the loss at step number `s` and, when training, every
/// layer's backward pass.
fn passes<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s, mode): (usize, u64, Mode),
) -> Result<(), E::Error> {
    let train = mode != Mode::Evaluate;
    let layers = &plan.model.layers;
    for i in 0..layers.len() {
        forward(e, plan, i, (batch, s, mode))?;
    }
    let last = layers.len() - 1;
    let out = Out {
        t: T::Grad(last),
        spec: plan.spec(&format!("{}.grad", layers[last].name()), s, 0),
        grad: true,
        flow: Flow::Store,
    };
    e.loss(out, train)?;
    if !train {
        return Ok(());
    }
    for i in (0..layers.len()).rev() {
        backward(e, plan, i, (batch, s))?;
    }
    Ok(())
}

/// The roundings of layer `l`'s `part` (0 weight, 1 bias) when step `s` updates it: each
/// stored value rounded with the next step's streams.
fn update_specs(plan: &Plan, l: &Layer, s: u64, part: u32) -> UpdateSpecs {
    let n = l.name();
    let spec = |t: &str, part| plan.spec(&format!("{n}.{t}"), s + 1, part);
    UpdateSpecs {
        step: s,
        param: spec(if part == 0 { "weight" } else { "bias" }, 0),
        velocity: spec("momentum", part),
        moment2: plan.keeps_moment2().then(|| spec("moment2", part)),
        master: plan.master.then(|| spec("master", part)),
    }
}

/// One step at step number `s`: every layer's forward pass, the loss and, when training,
/// every layer's backward pass, the loss scale's update and every parameter's update (each
/// rounded with the next step's streams).
pub fn step<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s, train): (usize, u64, bool),
) -> Result<(), E::Error> {
    let mode = if train { Mode::Train } else { Mode::Evaluate };
    passes(e, plan, (batch, s, mode))?;
    if !train {
        return Ok(());
    }
    e.loss_scale_update(s)?;
    each_param(e, plan, s, |e, i, part, specs| e.update(i, part, specs))
}

/// What `pass` runs at step `s` on a batch of `batch`: a training step (the optimizer's
/// update, or HALP's step when the plan trains by HALP), an evaluation, or a batch of
/// HALP's full-gradient pass.
pub fn run_pass<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s): (usize, u64),
    pass: Pass,
) -> Result<(), E::Error> {
    match pass {
        Pass::Train if plan.halp() => halp_step(e, plan, (batch, s)),
        Pass::Train => step(e, plan, (batch, s, true)),
        Pass::Evaluate => step(e, plan, (batch, s, false)),
        Pass::HalpFull { first, inv } => halp_full(e, plan, (batch, s), (first, inv)),
    }
}

/// `f` on every parameter (weights, then biases, layer by layer) with its roundings at
/// step `s`.
fn each_param<E: Engine>(
    e: &mut E,
    plan: &Plan,
    s: u64,
    mut f: impl FnMut(&mut E, usize, u32, &UpdateSpecs) -> Result<(), E::Error>,
) -> Result<(), E::Error> {
    for (i, l) in plan
        .model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.has_params())
    {
        for part in [0u32, 1] {
            f(e, i, part, &update_specs(plan, l, s, part))?;
        }
    }
    Ok(())
}

/// `op` of bit-centred SVRG on every parameter at step `s`.
fn each_svrg<E: Engine>(e: &mut E, plan: &Plan, s: u64, op: Svrg) -> Result<(), E::Error> {
    each_param(e, plan, s, |e, i, part, specs| e.svrg(i, part, op, specs))
}

/// One step of bit-centred SVRG (HALP) at step number `s`: the gradient at the centre on
/// the batch, then at the point (centre plus offset), the offset's step, and the
/// parameters left at the new point (for evaluation and the next step's statistics).
pub fn halp_step<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s): (usize, u64),
) -> Result<(), E::Error> {
    each_svrg(e, plan, s, Svrg::AtCentre)?;
    passes(e, plan, (batch, s, Mode::Gradient))?;
    each_svrg(e, plan, s, Svrg::KeepCentreGrad)?;
    each_svrg(e, plan, s, Svrg::AtPoint)?;
    passes(e, plan, (batch, s, Mode::Train))?;
    each_svrg(e, plan, s, Svrg::Step)?;
    each_svrg(e, plan, s, Svrg::AtPoint)
}

/// One batch of HALP's full-gradient pass before step `s`: on the first batch the centre
/// takes the offset (re-centring) and the parameters the centre; every batch adds its
/// gradient, over the pass's batches, to the full gradient.
pub fn halp_full<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s): (usize, u64),
    (first, inv): (bool, f32),
) -> Result<(), E::Error> {
    if first {
        each_svrg(e, plan, s, Svrg::Recentre)?;
        each_svrg(e, plan, s, Svrg::AtCentre)?;
    }
    passes(e, plan, (batch, s, Mode::Gradient))?;
    each_svrg(e, plan, s, Svrg::AddFull { inv, first })
}
