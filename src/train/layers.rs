//! Every layer kind's forward and backward, written once against [`Engine`]: which tensors
//! each reads and writes, in which formats, with which accumulators; and a step's order
//! (forward, loss, backward, loss scale, updates) with every tensor's rounding and random
//! stream. Both trainers run their steps through here.

use super::engine::{Elem, Engine, Flow, Out, T, UpdateSpecs};
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

/// Layer `i`'s forward pass at step `s` (batch-norm statistics from the batch when `train`).
pub fn forward<E: Engine>(
    e: &mut E,
    plan: &Plan,
    i: usize,
    (batch, s, train): (usize, u64, bool),
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
            let geo = l.batch_norm(batch).expect("a batch-norm layer");
            e.batch_norm(i, x, &geo, train, out)
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

/// One step at step number `s`: every layer's forward pass, the loss and, when training,
/// every layer's backward pass, the loss scale's update and every parameter's update (each
/// rounded with the next step's streams).
pub fn step<E: Engine>(
    e: &mut E,
    plan: &Plan,
    (batch, s, train): (usize, u64, bool),
) -> Result<(), E::Error> {
    let layers = &plan.model.layers;
    for i in 0..layers.len() {
        forward(e, plan, i, (batch, s, train))?;
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
    e.loss_scale_update(s)?;
    for (i, l) in layers.iter().enumerate().filter(|(_, l)| l.has_params()) {
        let n = l.name();
        let spec = |t: &str, part| plan.spec(&format!("{n}.{t}"), s + 1, part);
        for part in [0u32, 1] {
            let specs = UpdateSpecs {
                step: s,
                param: spec(if part == 0 { "weight" } else { "bias" }, 0),
                velocity: spec("momentum", part),
                moment2: plan.adam().then(|| spec("moment2", part)),
                master: plan.master.then(|| spec("master", part)),
            };
            e.update(i, part, &specs)?;
        }
    }
    Ok(())
}
