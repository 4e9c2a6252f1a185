//! The training plan: every tensor's resolved precision, and how each is quantized at each
//! step (seeds and streams of its stochastic rounding). Shared by the GPU engine and the
//! CPU reference trainer, so that both round the same values the same way.

use super::model::Model;
use super::precision::{Assignment, PrecisionError, PrecisionMap};
use crate::accum::Accumulator;
use crate::quant::QuantSpec;
use std::collections::HashMap;

/// The optimizer of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Resolved precision of every tensor of a model.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The model.
    pub model: Model,
    /// Whether fp32-style master weights are kept (`LAYER.master`).
    pub master: bool,
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
        seed: u64,
    ) -> Result<Plan, PrecisionError> {
        let names = model.tensor_names(master);
        let resolved = map.resolve(&names)?;
        let assignments = resolved
            .into_iter()
            .enumerate()
            .map(|(i, (name, a, _))| (name, (a, i as u32)))
            .collect();
        Ok(Plan {
            model,
            master,
            seed,
            assignments,
        })
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
                chunk: 1,
            }
        }
    }

    /// The resolved map, for `--show-precision`: (name, format text, rounding, saturate).
    pub fn table(&self) -> Vec<(String, Assignment)> {
        self.model
            .tensor_names(self.master)
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
    /// Momentum.
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
    /// weight and a bias part (`.wgrad`, `.momentum`, `.master`) list both; `.acc` is not stored.
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

    /// Bytes per role under this plan, and under all-fp32 storage.
    pub fn memory(&self, batch: usize) -> (RoleBytes, RoleBytes) {
        let (mut planned, mut fp32) = (RoleBytes::default(), RoleBytes::default());
        for (name, part, n) in self.tensor_sizes(batch) {
            let bytes = self.spec(&name, 0, part).stored_bytes(n) as u64;
            let suffix = name.rsplit('.').next().unwrap_or("");
            for (r, b) in [(&mut planned, bytes), (&mut fp32, 4 * n as u64)] {
                match suffix {
                    "weight" | "bias" => r.weights += b,
                    "act" | "input" => r.activations += b,
                    "grad" | "wgrad" => r.gradients += b,
                    "momentum" => r.optimizer += b,
                    _ => r.master += b,
                }
            }
        }
        (planned, fp32)
    }
}

/// The convolution spec of a layer: stride 1, the layer's padding, the given accumulator
/// and output quantization.
pub fn conv_spec(
    pad: usize,
    acc: crate::accum::Accumulator,
    out: crate::quant::QuantSpec,
) -> crate::conv::Conv2dSpec {
    crate::conv::Conv2dSpec {
        stride: [1, 1],
        padding: [pad, pad],
        dilation: [1, 1],
        acc,
        out,
    }
}

/// The stored shape of layer `i`'s input for a batch.
pub fn in_shape(plan: &Plan, i: usize, batch: usize) -> Vec<usize> {
    let sample = if i == 0 {
        plan.model.input_shape.clone()
    } else {
        plan.model.layers[i - 1].sample_shape()
    };
    [vec![batch], sample].concat()
}
