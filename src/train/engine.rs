//! The seam between the layers and the machines that run them: the GPU engine records
//! kernels, the CPU engine calls the reference twins. A layer's forward and backward are
//! written once (`train::layers`) against this interface.

use super::plan::Plan;
use crate::accum::GemmSpec;
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass, Pool};
use crate::layer_geometry::{BatchNorm, Shortcut};
use crate::quant::{Exceptions, QuantSpec};
use std::collections::BTreeMap;

/// A tensor of a training step, by its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    /// The quantized input batch.
    Input,
    /// Layer i's output.
    Act(usize),
    /// The gradient of layer i's output.
    Grad(usize),
    /// Layer i's weight (batch norm: gamma).
    Weight(usize),
    /// Layer i's bias (batch norm: beta).
    Bias(usize),
    /// The gradient of layer i's weight.
    WeightGrad(usize),
    /// The gradient of layer i's bias.
    BiasGrad(usize),
}

impl T {
    /// The stored tensor's name in a precision map, and its part (0, or 1 for the bias half
    /// of `LAYER.wgrad`), in `plan`'s model.
    pub fn key(self, plan: &Plan) -> (String, u32) {
        let n = |i: usize| plan.model.layers[i].name();
        match self {
            T::Input => ("input".into(), 0),
            T::Act(i) => (format!("{}.act", n(i)), 0),
            T::Grad(i) => (format!("{}.grad", n(i)), 0),
            T::Weight(i) => (format!("{}.weight", n(i)), 0),
            T::Bias(i) => (format!("{}.bias", n(i)), 0),
            T::WeightGrad(i) => (format!("{}.wgrad", n(i)), 0),
            T::BiasGrad(i) => (format!("{}.wgrad", n(i)), 1),
        }
    }
}

/// The key of layer `layer`'s optimizer state `role` (momentum, moment2, master; "param"
/// for the weight or bias itself), part 0 (weight) or 1 (bias).
pub fn state_key(plan: &Plan, layer: usize, part: u32, role: &str) -> (String, u32) {
    let n = plan.model.layers[layer].name();
    match role {
        "param" => (
            format!("{n}.{}", if part == 0 { "weight" } else { "bias" }),
            0,
        ),
        _ => (format!("{n}.{role}"), part),
    }
}

/// One stored tensor's roundings over some steps: the elements rounded, their exceptions,
/// and the largest |x| met before rounding (over the non-NaN values).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TensorStats {
    /// Elements rounded.
    pub elements: u64,
    /// Their exceptions and amax.
    pub exceptions: Exceptions,
}

impl TensorStats {
    /// Adds a rounding of `n` elements with its exceptions.
    pub fn add(&mut self, n: usize, e: &Exceptions) {
        self.elements += n as u64;
        self.exceptions.merge(e);
    }

    /// Overflow, underflow and NaN counts per element rounded.
    pub fn rates(&self) -> [f64; 3] {
        let n = self.elements.max(1) as f64;
        let e = &self.exceptions;
        [
            e.overflow as f64 / n,
            e.underflow as f64 / n,
            e.nan as f64 / n,
        ]
    }
}

/// Statistics per stored tensor, by its key (`T::key`, `state_key`), in name order.
pub type TensorLog = BTreeMap<(String, u32), TensorStats>;

/// Adds every tensor's statistics in `from` to `into`.
pub fn merge_logs(into: &mut TensorLog, from: &TensorLog) {
    for (k, v) in from {
        into.entry(k.clone())
            .or_default()
            .add(v.elements as usize, &v.exceptions);
    }
}

/// A log as text (one line per tensor: name, part, elements, overflow, underflow, nan and
/// the amax's bits, tab-separated), exact, for a checkpoint's metadata.
pub fn encode_log(log: &TensorLog) -> String {
    log.iter()
        .map(|((name, part), s)| {
            let e = &s.exceptions;
            format!(
                "{name}\t{part}\t{}\t{}\t{}\t{}\t{}\n",
                s.elements,
                e.overflow,
                e.underflow,
                e.nan,
                e.amax.to_bits()
            )
        })
        .collect()
}

/// `encode_log`'s text back (None where it is not that text).
pub fn decode_log(text: &str) -> Option<TensorLog> {
    let mut log = TensorLog::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, part, n, o, u, nan, amax] = f[..] else {
            return None;
        };
        let num = |s: &str| s.parse::<u64>().ok();
        let stats = TensorStats {
            elements: num(n)?,
            exceptions: Exceptions {
                overflow: num(o)?,
                underflow: num(u)?,
                nan: num(nan)?,
                amax: f32::from_bits(amax.parse().ok()?),
            },
        };
        log.insert((name.to_string(), part.parse().ok()?), stats);
    }
    Some(log)
}

/// How one contribution to a gradient reaches it. The gradient of an output that several
/// layers read is their contributions' sum: the first the backward pass meets starts an
/// f32 sum pending for that output, later ones add to it, and the last is added to it and
/// rounded into the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The only contribution: rounded and stored.
    Store,
    /// The first of several: held as the pending f32 sum.
    Start,
    /// Neither first nor last: added to the pending sum.
    Add,
    /// The last of several: added to the pending sum, rounded and stored.
    Finish,
}

/// Where an op's values go: the tensor, its rounding, whether its exceptions count for
/// loss scaling (a gradient), and how a gradient's contribution joins the others.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// The tensor written.
    pub t: T,
    /// Its rounding.
    pub spec: QuantSpec,
    /// A gradient: its exceptions count for loss scaling.
    pub grad: bool,
    /// How the values join the tensor's other contributions.
    pub flow: Flow,
}

/// An elementwise or windowed op of a layer.
#[derive(Clone, Copy, Debug)]
pub enum Elem {
    /// y = max(x, 0) of [x].
    Relu,
    /// dx = g where x > 0 of [x, g].
    ReluBackward,
    /// The values of [x], rounded into another format.
    Convert,
    /// Max pooling of [x].
    MaxPool(Pool),
    /// Max pooling's backward of [x, g].
    MaxPoolBackward(Pool),
    /// Average pooling of [x].
    AvgPool(Pool),
    /// Average pooling's backward of [g].
    AvgPoolBackward(Pool),
    /// y = a + shortcut(s) of [a, s].
    Residual(Shortcut),
    /// The gradient of a map's source (a shortcut's, or a concatenation part's) from the
    /// gradient of its output, of [g].
    MapBackward(Shortcut),
}

/// What the layers ask of an engine during one step.
pub trait Engine {
    /// The engine's error.
    type Error;

    /// C = op(A) op(B) (+ the bias tensor) into `out`; A and B viewed in the given shapes.
    fn gemm(
        &mut self,
        a: (T, &[usize]),
        b: (T, &[usize]),
        bias: Option<T>,
        spec: &GemmSpec,
        out: Out,
    ) -> Result<(), Self::Error>;

    /// One pass of a convolution with operands (A, B) of its GEMM view, into `out`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        pass: ConvPass,
        geo: &ConvGeometry,
        ab: (T, T),
        bias: Option<T>,
        spec: &Conv2dSpec,
        out: Out,
    ) -> Result<(), Self::Error>;

    /// An elementwise or windowed op of `ins` into `out` (`n` output values).
    fn elementwise(&mut self, op: Elem, ins: &[T], n: usize, out: Out) -> Result<(), Self::Error>;

    /// The column sums of `g` viewed as (rows, cols, inner), into `out` (a bias gradient).
    fn col_sum(&mut self, g: T, shape: (usize, usize, usize), out: Out) -> Result<(), Self::Error>;

    /// Batch norm of layer `i` on `x` (statistics of the batch when `train`), into `out`.
    fn batch_norm(
        &mut self,
        i: usize,
        x: T,
        geo: &BatchNorm,
        train: bool,
        out: Out,
    ) -> Result<(), Self::Error>;

    /// Batch norm's backward of layer `i`: dgamma and dbeta, and dx unless `dx` is None.
    fn batch_norm_backward(
        &mut self,
        i: usize,
        xg: (T, T),
        geo: &BatchNorm,
        dx: Option<Out>,
        grads: (Out, Out),
    ) -> Result<(), Self::Error>;

    /// The concatenation of `parts`, each placed by its map (its channel window), into `out`.
    fn concat(&mut self, parts: &[(T, Shortcut)], out: Out) -> Result<(), Self::Error>;

    /// The run's loss of the last layer's output against the step's labels (per-sample
    /// losses and correct flags kept for the step's statistics), its gradient, times the
    /// loss scale when `train`, into `out`.
    fn loss(&mut self, out: Out, train: bool) -> Result<(), Self::Error>;

    /// After the backward pass of step `s`: the loss scale's update from the gradients'
    /// exception counts (this step's skip flag and 1 / S, the next step's S, Adam's bias
    /// corrections for the update if it is not skipped).
    fn loss_scale_update(&mut self, s: u64) -> Result<(), Self::Error>;

    /// Layer `i`'s weight (`part` 0) or bias (1) and its optimizer state updated from its
    /// gradient (unless the loss scale skips the step), each rounded into its spec.
    fn update(&mut self, i: usize, part: u32, specs: &UpdateSpecs) -> Result<(), Self::Error>;

    /// Layer `i`'s weight (`part` 0) or bias (1): one value of bit-centred SVRG, rounded
    /// into its spec in `specs` (the parameter's, the offset's in `velocity`, the full
    /// gradient's in `moment2`, the centre's in `master`).
    fn svrg(
        &mut self,
        i: usize,
        part: u32,
        op: Svrg,
        specs: &UpdateSpecs,
    ) -> Result<(), Self::Error>;
}

/// What one submission to a trainer runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pass {
    /// A training step (the optimizer's update; HALP's two gradients and offset step).
    Train,
    /// An evaluation: the forward pass and the loss only.
    Evaluate,
    /// One batch of HALP's full-gradient pass (not a step): on the first batch the centre
    /// takes the offset; every batch adds its share, 1 / batches, of the gradient.
    HalpFull {
        /// The pass's first batch.
        first: bool,
        /// 1 / batches of the pass.
        inv: f32,
    },
}

/// A value of bit-centred SVRG (HALP) for one parameter: c the centre (fp32, `LAYER.master`),
/// z the offset (`LAYER.momentum`, the weights' format), full the full gradient at the
/// centre (fp32, `LAYER.moment2`), gc the gradient at the centre on this step's batch (a
/// working buffer), g the gradient just computed (over the loss scale S).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Svrg {
    /// The parameter takes the centre: w <- c.
    AtCentre,
    /// The parameter takes the point: w <- c + z.
    AtPoint,
    /// The gradient at the centre is kept: gc <- g / S.
    KeepCentreGrad,
    /// The full gradient gains a batch's share: full <- (first ? 0 : full) + (g / S) inv.
    AddFull {
        /// 1 / batches of the pass.
        inv: f32,
        /// The pass's first batch.
        first: bool,
    },
    /// The offset steps: z <- z - lr ((g / S - gc) + full).
    Step,
    /// Re-centring: c <- c + z, z <- 0.
    Recentre,
}

/// The roundings of one parameter's update at step `step`: the parameter, its velocity (or
/// Adam's first moment), Adam's second moment and the master copy, where the run has them.
#[derive(Clone, Copy, Debug)]
pub struct UpdateSpecs {
    /// The step whose gradient is applied (its learning rate and Adam's bias corrections).
    pub step: u64,
    /// The parameter as stored.
    pub param: QuantSpec,
    /// Velocity, or Adam's first moment.
    pub velocity: QuantSpec,
    /// Adam's second moment.
    pub moment2: Option<QuantSpec>,
    /// The master copy.
    pub master: Option<QuantSpec>,
}
