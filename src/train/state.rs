//! A trainer's state, written once for both engines: which parameter and optimizer-state
//! tensors a plan keeps (their checkpoint names, roundings and initial values), and the
//! whole state saved and restored through an engine's reads and writes of them.

use super::checkpoint::{CheckpointError, StoredTensor, TrainState};
use super::model::Layer;
use super::plan::Plan;
use crate::ops::optim::STEP_STATE_WORDS;
use crate::quant::QuantSpec;

/// What a kept tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The parameter as the forward pass reads it.
    Param,
    /// SGD's velocity, or Adam's first moment (`LAYER.momentum`).
    Velocity,
    /// Adam's second moment (`LAYER.moment2`).
    Moment2,
    /// The master copy (`LAYER.master`).
    Master,
}

/// One parameter or optimizer-state tensor a trainer keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The layer it belongs to.
    pub layer: usize,
    /// What it holds.
    pub role: Role,
    /// 0 for the weight's, 1 for the bias's.
    pub part: u32,
    /// Its name in checkpoints (`L.weight`, `L.momentum.bias`, ...).
    pub name: String,
    /// Elements.
    pub n: usize,
    /// Its shape (the weight's as the layer stores it; a bias is a vector).
    pub shape: Vec<usize>,
    /// The plan's tensor name and stream part its rounding comes from.
    tensor: (String, u32),
}

impl Role {
    /// Its name in checkpoints' metadata.
    pub fn name(self) -> &'static str {
        match self {
            Role::Param => "param",
            Role::Velocity => "momentum",
            Role::Moment2 => "moment2",
            Role::Master => "master",
        }
    }
}

impl Kept {
    /// Its rounding at step `step`.
    pub fn spec(&self, plan: &Plan, step: u64) -> QuantSpec {
        plan.spec(&self.tensor.0, step, self.tensor.1)
    }

    /// Words of packed codes and of scales it is stored in.
    pub fn words(&self, plan: &Plan) -> (usize, usize) {
        let spec = self.spec(plan, 0);
        (
            crate::format::packed_words(self.n, spec.format.bits()),
            crate::ops::quantize::scale_words(&spec, self.n),
        )
    }
}

/// Every tensor a plan keeps, in checkpoint order: per layer with weights `L.weight`,
/// `L.bias`, `L.momentum.weight`, `L.momentum.bias`, then `L.moment2.*` (Adam) and
/// `L.master.*` (master weights).
pub fn kept(plan: &Plan) -> Vec<Kept> {
    let mut v = Vec::new();
    for (i, l) in plan.model.layers.iter().enumerate() {
        let Some((nw, nb, _)) = l.param_sizes() else {
            continue;
        };
        let n = l.name();
        let mut roles = vec![(Role::Param, ""), (Role::Velocity, "momentum")];
        if plan.keeps_moment2() {
            roles.push((Role::Moment2, "moment2"));
        }
        if plan.master {
            roles.push((Role::Master, "master"));
        }
        for (role, suffix) in roles {
            for (part, what, len) in [(0, "weight", nw), (1, "bias", nb)] {
                let (name, tensor) = match role {
                    Role::Param => (format!("{n}.{what}"), (format!("{n}.{what}"), 0)),
                    _ => (
                        format!("{n}.{suffix}.{what}"),
                        (format!("{n}.{suffix}"), part),
                    ),
                };
                v.push(Kept {
                    layer: i,
                    role,
                    part,
                    name,
                    n: len,
                    shape: if part == 0 {
                        l.weight_shape()
                    } else {
                        vec![len]
                    },
                    tensor,
                });
            }
        }
    }
    v
}

/// Every kept tensor with its initial values: He-uniform weights (the model's
/// initialisation, a function of the seed), zero biases, velocities and moments, and master
/// copies equal to the parameters.
pub fn initial(plan: &Plan) -> Vec<(Kept, Vec<f32>)> {
    let mut params: Vec<Option<(Vec<f32>, Vec<f32>)>> = vec![None; plan.model.layers.len()];
    kept(plan)
        .into_iter()
        .map(|k| {
            let values = match k.role {
                Role::Param | Role::Master => {
                    let (w, b) = params[k.layer]
                        .get_or_insert_with(|| plan.model.init_params(k.layer, plan.seed));
                    if k.part == 0 { w.clone() } else { b.clone() }
                }
                _ => vec![0.0; k.n],
            };
            (k, values)
        })
        .collect()
}

/// An engine's access to what it keeps between steps.
pub trait Store {
    /// The engine's error.
    type Error;

    /// The error for a checkpoint that does not fit.
    fn mismatch(e: CheckpointError) -> Self::Error;
    /// The packed codes and scales of a kept tensor.
    fn read(&self, k: &Kept) -> Result<(Vec<u32>, Vec<u32>), Self::Error>;
    /// Replaces a kept tensor's codes and scales (of the sizes its rounding stores).
    fn write(&mut self, k: &Kept, words: &[u32], scales: &[u32]) -> Result<(), Self::Error>;
    /// A batch-norm layer's running mean and variance (f32 bits, mean first).
    fn read_running(&self, layer: usize) -> Result<Vec<u32>, Self::Error>;
    /// Replaces a batch-norm layer's running statistics.
    fn write_running(&mut self, layer: usize, words: &[u32]) -> Result<(), Self::Error>;
    /// The step state (loss scale, skip flag, Adam's bias corrections).
    fn read_step_state(&self) -> Result<[u32; STEP_STATE_WORDS], Self::Error>;
    /// Replaces the step state and the step count, after every other write.
    fn write_step(&mut self, words: &[u32; STEP_STATE_WORDS], step: u64)
    -> Result<(), Self::Error>;
}

/// A trainer's whole state at step `step`: every kept tensor, each batch-norm layer's
/// running statistics (`L.running`), the step state.
pub fn save<S: Store>(s: &S, plan: &Plan, step: u64) -> Result<TrainState, S::Error> {
    let mut tensors = Vec::new();
    for k in kept(plan) {
        let (words, scales) = s.read(&k)?;
        tensors.push(StoredTensor {
            format: k.spec(plan, 0).format.to_string(),
            role: k.role.name().into(),
            len: k.n,
            shape: k.shape,
            name: k.name,
            words,
            scales,
        });
    }
    for (i, l) in plan.model.layers.iter().enumerate() {
        if let Layer::BatchNorm2d { .. } = l {
            let words = s.read_running(i)?;
            tensors.push(StoredTensor {
                name: format!("{}.running", l.name()),
                role: "running".into(),
                format: "fp32".into(),
                len: words.len(),
                // The running mean's row, then the running variance's.
                shape: vec![2, words.len() / 2],
                words,
                scales: Vec::new(),
            });
        }
    }
    Ok(TrainState {
        step,
        loss_scale: s.read_step_state()?,
        tensors,
    })
}

/// Continues from a saved state of the same model, map and optimizer: every tensor must be
/// there under its name, format and size, and nothing is written unless all are.
pub fn restore<S: Store>(s: &mut S, plan: &Plan, st: &TrainState) -> Result<(), S::Error> {
    let bad = |msg: String| S::mismatch(CheckpointError::Mismatch(msg));
    let mut writes = Vec::new();
    for k in kept(plan) {
        let format = k.spec(plan, 0).format.to_string();
        let t = st.expect(&k.name, &format, k.n).map_err(S::mismatch)?;
        if t.shape != k.shape {
            return Err(bad(format!(
                "{} has shape {:?} there, this run {:?}",
                k.name, t.shape, k.shape
            )));
        }
        let (words, scales) = k.words(plan);
        if t.words.len() != words || t.scales.len() != scales {
            return Err(bad(format!(
                "{} has {} code words and {} scale words, this run {words} and {scales}",
                k.name,
                t.words.len(),
                t.scales.len()
            )));
        }
        writes.push((k, t));
    }
    let mut running = Vec::new();
    for (i, l) in plan.model.layers.iter().enumerate() {
        if let Layer::BatchNorm2d { shape, .. } = l {
            let c = shape[0];
            let name = format!("{}.running", l.name());
            let t = st.expect(&name, "fp32", 2 * c).map_err(S::mismatch)?;
            if t.words.len() != 2 * c {
                return Err(bad(format!(
                    "{name} has {} words, this run {}",
                    t.words.len(),
                    2 * c
                )));
            }
            running.push((i, t));
        }
    }
    crate::reference::optim::LossScaleState::check_words(st.loss_scale)
        .map_err(|e| bad(e.to_string()))?;
    for (k, t) in writes {
        s.write(&k, &t.words, &t.scales)?;
    }
    for (i, t) in running {
        s.write_running(i, &t.words)?;
    }
    s.write_step(&st.loss_scale, st.step)
}
