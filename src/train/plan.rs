//! The training plan: every tensor's resolved precision, and how each is quantized at each
//! step (seeds and streams of its stochastic rounding). Shared by the GPU engine and the
//! CPU reference trainer, so that both round the same values the same way.

use super::model::Model;
use super::precision::{Assignment, PrecisionError, PrecisionMap};
use crate::accum::Accumulator;
use crate::gpu::tensor::device_bytes;
use crate::quant::QuantSpec;
use std::collections::HashMap;

/// Which optimizer updates the weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptimKind {
    /// SGD with momentum (`LAYER.momentum`), weight decay and optional Nesterov.
    #[default]
    Sgd,
    /// Adam: first moment `LAYER.momentum`, second moment `LAYER.moment2`.
    Adam,
    /// Bit-centred SVRG (HALP): the centre in `LAYER.master` (fp32), the offset from it in
    /// `LAYER.momentum` (the weights' format), the full gradient at the centre in
    /// `LAYER.moment2` (fp32), re-centred every `TrainConfig::inner` steps.
    Halp,
}

/// The loss a run minimizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy.
    #[default]
    CrossEntropy,
    /// Mean squared error against one-hot targets.
    Mse,
}

/// Loss scaling: the loss gradient is multiplied by S before the backward pass and the
/// weight gradients divided by S in the update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LossScale {
    /// No scaling (S = 1).
    #[default]
    None,
    /// A fixed S (a power of two).
    Static(f32),
    /// S starts at `init` (a power of two); a step whose gradient quantizers overflow (or
    /// see NaN) is skipped and S halved; `interval` good steps in a row double S.
    Dynamic {
        /// Initial scale.
        init: f32,
        /// Good steps before the scale doubles.
        interval: u32,
    },
}

impl LossScale {
    /// The initial scale.
    pub fn initial(&self) -> f32 {
        match *self {
            LossScale::None => 1.0,
            LossScale::Static(s) => s,
            LossScale::Dynamic { init, .. } => init,
        }
    }

    /// Whether the scale adapts (and overflowing steps are skipped), with its interval.
    pub fn dynamic(&self) -> (bool, u32) {
        match *self {
            LossScale::Dynamic { interval, .. } => (true, interval),
            _ => (false, 1),
        }
    }

    /// Checks that the scale is a power of two within [2^-64, 2^64].
    pub fn validate(&self) -> Result<(), String> {
        let s = self.initial();
        let e = (s.to_bits() >> 23) & 0xff;
        if s.to_bits() & 0x807f_ffff != 0 || !(63..=191).contains(&e) {
            return Err(format!(
                "loss scale {s}: must be a power of two between 2^-64 and 2^64"
            ));
        }
        if let LossScale::Dynamic { interval: 0, .. } = self {
            return Err("dynamic loss scaling needs an interval of at least 1 step".into());
        }
        Ok(())
    }
}

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LrSchedule {
    /// The same rate every step.
    #[default]
    Constant,
    /// Cosine decay from the rate to 0 over `steps` steps: lr (1 + cos(pi t / steps)) / 2 at
    /// step t (0 from step `steps` on).
    Cosine {
        /// Steps the decay spans (a run's epochs times its steps per epoch).
        steps: u64,
    },
}

/// How a run trains: its loss, optimizer and hyper-parameters, and loss scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// The loss.
    pub loss: LossKind,
    /// SGD or Adam.
    pub kind: OptimKind,
    /// Learning rate (the peak, under a schedule).
    pub lr: f32,
    /// How the learning rate moves over the run.
    pub schedule: LrSchedule,
    /// SGD momentum.
    pub momentum: f32,
    /// Adam's first-moment decay.
    pub beta1: f32,
    /// Adam's second-moment decay.
    pub beta2: f32,
    /// Adam's epsilon.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// Loss scaling.
    pub loss_scale: LossScale,
    /// HALP: steps between full-gradient passes (0: one epoch).
    pub inner: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: LossKind::CrossEntropy,
            kind: OptimKind::Sgd,
            lr: 0.05,
            schedule: LrSchedule::Constant,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            nesterov: false,
            loss_scale: LossScale::None,
            inner: 0,
        }
    }
}

impl TrainConfig {
    /// The learning rate of the update that ends step `step` (counted from 0), computed on
    /// the host in f64 and rounded to f32 once, the same for both trainers.
    pub fn lr_at(&self, step: u64) -> f32 {
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine { steps } => {
                let t = step.min(steps) as f64 / steps.max(1) as f64;
                (self.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }

    /// The SGD constants for the update that ends step `step` (counted from 0).
    pub fn sgd(&self, step: u64) -> crate::ops::optim::Sgd {
        crate::ops::optim::Sgd {
            lr: self.lr_at(step),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
        }
    }

    /// Checks the hyper-parameters: a finite non-negative learning rate, momentum and betas in
    /// [0, 1), a finite non-negative weight decay, a finite positive epsilon, and the loss
    /// scaling's own rules; the error names the setting as the command line spells it.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: &str, v: f32, wants: &str| Err(format!("{what} {v} is not {wants}"));
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("--lr", self.lr, "a finite number at least 0");
        }
        for (what, v) in [
            ("--momentum", self.momentum),
            ("--betas (beta1)", self.beta1),
            ("--betas (beta2)", self.beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(what, v, "in [0, 1)");
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "--weight-decay",
                self.weight_decay,
                "a finite number at least 0",
            );
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("--eps", self.eps, "a finite number above 0");
        }
        if self.kind == OptimKind::Halp {
            if self.weight_decay != 0.0 {
                return Err(format!(
                    "--weight-decay {}: --optimizer halp steps without weight decay (give 0)",
                    self.weight_decay
                ));
            }
            if self.loss_scale.dynamic().0 {
                return Err(
                    "--optimizer halp takes no dynamic loss scaling (a skipped step would leave \
                     the offset and the centre's gradient apart); use none or a static scale"
                        .into(),
                );
            }
        }
        self.loss_scale.validate()
    }

    /// Adam's constants for the update that ends step `step` (counted from 0); the bias
    /// corrections come from the step state, which counts the updates applied.
    pub fn adam(&self, step: u64) -> crate::ops::optim::AdamStep {
        crate::ops::optim::AdamStep::new(
            self.lr_at(step),
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
        )
    }
}

/// Resolved precision of every tensor of a model.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The model.
    pub model: Model,
    /// Whether fp32-style master weights are kept (`LAYER.master`).
    pub master: bool,
    /// The optimizer.
    pub config: TrainConfig,
    /// Run seed.
    pub seed: u64,
    assignments: HashMap<String, (Assignment, u32)>,
}

impl Plan {
    /// Resolves `map` over the model's tensors.
    pub fn new(
        model: Model,
        map: &PrecisionMap,
        master: bool,
        config: TrainConfig,
        seed: u64,
    ) -> Result<Plan, PrecisionError> {
        config.validate().map_err(PrecisionError::Setting)?;
        let halp = config.kind == OptimKind::Halp;
        let master = master || halp;
        let names = model.tensor_names(master, config.kind != OptimKind::Sgd);
        let mut resolved = map.resolve(&names)?;
        if halp {
            // HALP holds its centre and full gradient in fp32 and its offset in the weights'
            // format (the bias's offset too), whatever the map says of those roles.
            let weights: HashMap<String, Assignment> = resolved
                .iter()
                .filter(|(n, _, _)| n.ends_with(".weight"))
                .map(|(n, a, _)| (n.trim_end_matches(".weight").to_string(), *a))
                .collect();
            for (name, a, _) in resolved.iter_mut() {
                let Some((layer, role)) = name.rsplit_once('.') else {
                    continue;
                };
                match role {
                    "master" | "moment2" => *a = Assignment::plain(crate::format::Format::FP32),
                    "momentum" => *a = weights[layer],
                    _ => {}
                }
            }
        }
        // Accumulators: fp32 unless a rule names them (a default means the stored
        // tensors), and a rule may ask only for what an emulated accumulator does: a
        // scalar format, rounded to nearest even after every addition, unscaled.
        for (name, a, rule) in resolved.iter_mut() {
            if !name.ends_with(".acc") {
                if let (Some(_), Some(r)) = (a.chunk, rule) {
                    return Err(PrecisionError::Setting(format!(
                        "precision map, rule {} gives {name} a chunk: only accumulators \
                         (LAYER.acc) sum in chunks",
                        *r + 1
                    )));
                }
                continue;
            }
            match rule {
                None => *a = Assignment::plain(crate::format::Format::FP32),
                Some(r) => {
                    let bad = |why: &str| {
                        Err(PrecisionError::Setting(format!(
                            "precision map, rule {} gives {name} {}: {why}",
                            *r + 1,
                            a.format
                        )))
                    };
                    if a.format.block().is_some() {
                        return bad(
                            "an accumulator holds one running sum, not a block format's (MX, NVFP4) blocks",
                        );
                    }
                    if a.rounding != crate::quant::Rounding::Nearest {
                        return bad("an accumulator rounds to nearest even (drop `rounding`)");
                    }
                    if a.saturate || a.scaling != crate::quant::Scaling::None {
                        return bad("an accumulator neither saturates nor scales");
                    }
                    if a.chunk.is_some() && a.format == crate::format::Format::FP32 {
                        return bad(
                            "an fp32 accumulator is the hardware's; a chunk applies to an \
                             emulated one (another format)",
                        );
                    }
                }
            }
        }
        let assignments = resolved
            .into_iter()
            .enumerate()
            .map(|(i, (name, a, _))| (name, (a, i as u32)))
            .collect();
        Ok(Plan {
            model,
            master,
            config,
            seed,
            assignments,
        })
    }

    /// Whether the run steps by Adam.
    pub fn adam(&self) -> bool {
        self.config.kind == OptimKind::Adam
    }

    /// Whether the run steps by HALP.
    pub fn halp(&self) -> bool {
        self.config.kind == OptimKind::Halp
    }

    /// Whether the run keeps `LAYER.moment2` tensors (Adam's second moments, HALP's full
    /// gradient).
    pub fn keeps_moment2(&self) -> bool {
        self.config.kind != OptimKind::Sgd
    }

    /// The assignment of a tensor.
    pub fn assignment(&self, name: &str) -> Assignment {
        self.assignments[name].0
    }

    /// How tensor `name` is quantized at `step`: its assignment, with random bits keyed by
    /// (run seed, step) and a stream per tensor (`part` separates a layer's weight and bias).
    pub fn spec(&self, name: &str, step: u64, part: u32) -> QuantSpec {
        let (a, id) = self.assignments[name];
        QuantSpec {
            format: a.format,
            rounding: a.rounding,
            saturate: a.saturate,
            scaling: a.scaling,
            seed: self.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            stream: id * 4 + part,
        }
    }

    /// The accumulator of a layer's GEMMs: fp32 if `LAYER.acc` is fp32, else that format
    /// with a rounding after every addition.
    pub fn accumulator(&self, layer: &str) -> Accumulator {
        let a = self.assignment(&format!("{layer}.acc"));
        if a.format == crate::format::Format::FP32 {
            Accumulator::Fp32
        } else {
            Accumulator::Emulated {
                format: a.format,
                chunk: a.chunk.unwrap_or(1),
            }
        }
    }

    /// The resolved map, for `--show-precision`: (name, format text, rounding, saturate).
    pub fn table(&self) -> Vec<(String, Assignment)> {
        self.model
            .tensor_names(self.master, self.keeps_moment2())
            .into_iter()
            .map(|n| {
                let a = self.assignment(&n);
                (n, a)
            })
            .collect()
    }
}

/// Stored bytes of a model's tensors by role, for a batch size: what the precision map
/// costs, next to what all-fp32 storage would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoleBytes {
    /// Weights and biases.
    pub weights: u64,
    /// Layer outputs and the input.
    pub activations: u64,
    /// Output and weight gradients.
    pub gradients: u64,
    /// Optimizer state: momentum, Adam's moments.
    pub optimizer: u64,
    /// Master weights.
    pub master: u64,
}

impl RoleBytes {
    /// All roles together.
    pub fn total(&self) -> u64 {
        self.weights + self.activations + self.gradients + self.optimizer + self.master
    }
}

impl Plan {
    /// Element counts of every stored tensor part: (name, part, elements). Names with a
    /// weight and a bias part (`.wgrad`, `.momentum`, `.moment2`, `.master`) list both; `.acc` is not stored.
    pub fn tensor_sizes(&self, batch: usize) -> Vec<(String, u32, usize)> {
        let mut v = vec![("input".to_string(), 0, batch * self.model.inputs)];
        for l in &self.model.layers {
            let n = l.name();
            v.push((format!("{n}.act"), 0, batch * l.outputs()));
            v.push((format!("{n}.grad"), 0, batch * l.outputs()));
            if let Some((w, b, _)) = l.param_sizes() {
                v.push((format!("{n}.weight"), 0, w));
                v.push((format!("{n}.bias"), 0, b));
                let mut pairs = vec!["wgrad", "momentum"];
                if self.keeps_moment2() {
                    pairs.push("moment2");
                }
                if self.master {
                    pairs.push("master");
                }
                for t in pairs {
                    v.push((format!("{n}.{t}"), 0, w));
                    v.push((format!("{n}.{t}"), 1, b));
                }
            }
        }
        v
    }

    /// Device bytes per role under this plan, and under all-fp32 storage (each tensor's
    /// buffers in whole 16-byte vectors).
    pub fn memory(&self, batch: usize) -> (RoleBytes, RoleBytes) {
        let (mut planned, mut fp32) = (RoleBytes::default(), RoleBytes::default());
        let fp32_spec = QuantSpec::new(crate::format::Format::FP32);
        for (name, part, n) in self.tensor_sizes(batch) {
            let bytes = device_bytes(&self.spec(&name, 0, part), n);
            let suffix = name.rsplit('.').next().unwrap_or("");
            for (r, b) in [
                (&mut planned, bytes),
                (&mut fp32, device_bytes(&fp32_spec, n)),
            ] {
                match suffix {
                    "weight" | "bias" => r.weights += b,
                    "act" | "input" => r.activations += b,
                    "grad" | "wgrad" => r.gradients += b,
                    "momentum" | "moment2" => r.optimizer += b,
                    _ => r.master += b,
                }
            }
        }
        (planned, fp32)
    }
}

/// The convolution spec of a layer: its padding and stride, the given accumulator and
/// output quantization.
pub fn conv_spec(
    (pad, stride): (usize, usize),
    acc: crate::accum::Accumulator,
    out: crate::quant::QuantSpec,
) -> crate::conv::Conv2dSpec {
    crate::conv::Conv2dSpec {
        stride: [stride, stride],
        padding: [pad, pad],
        dilation: [1, 1],
        groups: 1,
        acc,
        out,
    }
}

/// The stored shape of layer `i`'s (first) input for a batch.
pub fn in_shape(plan: &Plan, i: usize, batch: usize) -> Vec<usize> {
    let sample = plan.model.source_shape(plan.model.sources[i][0]);
    [vec![batch], sample].concat()
}
