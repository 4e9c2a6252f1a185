//! Models as layer lists: the tensors each layer owns and their names.

use crate::rng::random_bits;

/// One layer of a sequential model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// y = x W^T + b, W stored out x in.
    Linear {
        /// Layer name (prefix of its tensors' names).
        name: String,
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
    /// y = max(x, 0).
    Relu {
        /// Layer name.
        name: String,
        /// Features (same in and out).
        features: usize,
    },
}

impl Layer {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Layer::Linear { name, .. } | Layer::Relu { name, .. } => name,
        }
    }

    /// Features of one sample's output.
    pub fn outputs(&self) -> usize {
        match self {
            Layer::Linear { outputs, .. } => *outputs,
            Layer::Relu { features, .. } => *features,
        }
    }

    /// Whether the layer has weights.
    pub fn has_params(&self) -> bool {
        matches!(self, Layer::Linear { .. })
    }
}

/// A sequential classifier ending in logits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Features of one input sample.
    pub inputs: usize,
    /// The layers in order.
    pub layers: Vec<Layer>,
}

impl Model {
    /// An MLP: Linear and ReLU for each hidden width, then a Linear to `classes` logits.
    pub fn mlp(inputs: usize, hidden: &[usize], classes: usize) -> Model {
        let mut layers = Vec::new();
        let mut width = inputs;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Layer::Linear {
                name: format!("fc{}", i + 1),
                inputs: width,
                outputs: h,
            });
            layers.push(Layer::Relu {
                name: format!("relu{}", i + 1),
                features: h,
            });
            width = h;
        }
        layers.push(Layer::Linear {
            name: format!("fc{}", hidden.len() + 1),
            inputs: width,
            outputs: classes,
        });
        Model { inputs, layers }
    }

    /// Number of classes (outputs of the last layer).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(self.inputs, Layer::outputs)
    }

    /// Every tensor name the model has in training, in a fixed order: `input`, then per
    /// layer `.act`, `.grad`, and for layers with weights `.weight`, `.bias`, `.wgrad`,
    /// `.acc`, `.momentum` and (with master weights) `.master`.
    pub fn tensor_names(&self, master: bool) -> Vec<String> {
        let mut v = vec!["input".to_string()];
        for l in &self.layers {
            let n = l.name();
            v.push(format!("{n}.act"));
            v.push(format!("{n}.grad"));
            if l.has_params() {
                for t in ["weight", "bias", "wgrad", "acc", "momentum"] {
                    v.push(format!("{n}.{t}"));
                }
                if master {
                    v.push(format!("{n}.master"));
                }
            }
        }
        v
    }

    /// Initial weights of a Linear layer (He-uniform, from the counter-based generator:
    /// a function of the seed and the layer's position) and zero biases.
    pub fn init_linear(&self, layer: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let Layer::Linear {
            inputs, outputs, ..
        } = &self.layers[layer]
        else {
            panic!("layer {layer} has no weights")
        };
        let bound = (6.0 / *inputs as f64).sqrt();
        let w = (0..inputs * outputs)
            .map(|i| {
                let u = random_bits(seed, 1000 + layer as u32, i as u64) as f64 / 4294967296.0;
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect();
        (w, vec![0.0; *outputs])
    }
}
