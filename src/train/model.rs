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
        /// Shape of one sample (same in and out).
        shape: Vec<usize>,
    },
    /// 2-D convolution (NCHW), stride 1, square kernel, zero padding on every side.
    Conv2d {
        /// Layer name.
        name: String,
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Kernel size.
        kernel: usize,
        /// Zero padding.
        pad: usize,
        /// Input (height, width).
        in_hw: [usize; 2],
    },
    /// Max pooling over non-overlapping pool x pool windows.
    MaxPool2d {
        /// Layer name.
        name: String,
        /// Channels.
        channels: usize,
        /// Window size and stride.
        pool: usize,
        /// Input (height, width).
        in_hw: [usize; 2],
    },
}

impl Layer {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Layer::Linear { name, .. }
            | Layer::Relu { name, .. }
            | Layer::Conv2d { name, .. }
            | Layer::MaxPool2d { name, .. } => name,
        }
    }

    /// Shape of one sample's output.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            Layer::Linear { outputs, .. } => vec![*outputs],
            Layer::Relu { shape, .. } => shape.clone(),
            Layer::Conv2d {
                cout,
                kernel,
                pad,
                in_hw,
                ..
            } => {
                vec![
                    *cout,
                    in_hw[0] + 2 * pad + 1 - kernel,
                    in_hw[1] + 2 * pad + 1 - kernel,
                ]
            }
            Layer::MaxPool2d {
                channels,
                pool,
                in_hw,
                ..
            } => vec![*channels, in_hw[0] / pool, in_hw[1] / pool],
        }
    }

    /// Values of one sample's output.
    pub fn outputs(&self) -> usize {
        self.sample_shape().iter().product()
    }

    /// The pooling geometry of a MaxPool2d layer for a batch.
    pub fn pool_geometry(&self, batch: usize) -> Option<crate::conv::Pool> {
        match self {
            Layer::MaxPool2d {
                channels,
                pool,
                in_hw,
                ..
            } => Some(crate::conv::Pool {
                planes: batch * channels,
                in_hw: *in_hw,
                pool: *pool,
            }),
            _ => None,
        }
    }

    /// Whether the layer has weights.
    pub fn has_params(&self) -> bool {
        matches!(self, Layer::Linear { .. } | Layer::Conv2d { .. })
    }

    /// Element counts of the weight and the bias, and the weight's fan-in.
    pub fn param_sizes(&self) -> Option<(usize, usize, usize)> {
        match self {
            Layer::Linear {
                inputs, outputs, ..
            } => Some((inputs * outputs, *outputs, *inputs)),
            Layer::Conv2d {
                cin, cout, kernel, ..
            } => Some((cout * cin * kernel * kernel, *cout, cin * kernel * kernel)),
            _ => None,
        }
    }

    /// The stored shape of the weight.
    pub fn weight_shape(&self) -> Vec<usize> {
        match self {
            Layer::Linear {
                inputs, outputs, ..
            } => vec![*outputs, *inputs],
            Layer::Conv2d {
                cin, cout, kernel, ..
            } => vec![*cout, *cin, *kernel, *kernel],
            _ => Vec::new(),
        }
    }
}

/// A sequential classifier ending in logits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Values of one input sample.
    pub inputs: usize,
    /// The layers in order.
    pub layers: Vec<Layer>,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
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
                shape: vec![h],
            });
            width = h;
        }
        layers.push(Layer::Linear {
            name: format!("fc{}", hidden.len() + 1),
            inputs: width,
            outputs: classes,
        });
        Model {
            inputs,
            layers,
            input_shape: vec![inputs],
        }
    }

    /// LeNet-5 for images of `shape` (C, H, W): conv 5x5 (pad 2) to 6 channels, ReLU, 2x2
    /// max pool, conv 5x5 to 16, ReLU, pool, then 120, 84 and `classes` fully connected.
    pub fn lenet(shape: [usize; 3], classes: usize) -> Result<Model, String> {
        let [c, h, w] = shape;
        if h < 12 || w < 12 {
            return Err(format!(
                "LeNet needs images of at least 12 x 12, got {h} x {w}"
            ));
        }
        let mut layers = vec![Layer::Conv2d {
            name: "conv1".into(),
            cin: c,
            cout: 6,
            kernel: 5,
            pad: 2,
            in_hw: [h, w],
        }];
        let push_relu = |layers: &mut Vec<Layer>, name: &str| {
            let shape = layers.last().unwrap().sample_shape();
            layers.push(Layer::Relu {
                name: name.into(),
                shape,
            });
        };
        push_relu(&mut layers, "relu1");
        layers.push(Layer::MaxPool2d {
            name: "pool1".into(),
            channels: 6,
            pool: 2,
            in_hw: [h, w],
        });
        let s1 = layers.last().unwrap().sample_shape();
        layers.push(Layer::Conv2d {
            name: "conv2".into(),
            cin: 6,
            cout: 16,
            kernel: 5,
            pad: 0,
            in_hw: [s1[1], s1[2]],
        });
        push_relu(&mut layers, "relu2");
        let s2 = layers.last().unwrap().sample_shape();
        layers.push(Layer::MaxPool2d {
            name: "pool2".into(),
            channels: 16,
            pool: 2,
            in_hw: [s2[1], s2[2]],
        });
        let flat = layers.last().unwrap().outputs();
        for (i, (inputs, outputs)) in [(flat, 120), (120, 84), (84, classes)]
            .into_iter()
            .enumerate()
        {
            layers.push(Layer::Linear {
                name: format!("fc{}", i + 1),
                inputs,
                outputs,
            });
            if i < 2 {
                push_relu(&mut layers, &format!("relu{}", i + 3));
            }
        }
        Ok(Model {
            inputs: c * h * w,
            layers,
            input_shape: vec![c, h, w],
        })
    }

    /// Number of classes (outputs of the last layer).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(self.inputs, Layer::outputs)
    }

    /// Every tensor name the model has in training, in a fixed order: `input`, then per
    /// layer `.act`, `.grad`, and for layers with weights `.weight`, `.bias`, `.wgrad`,
    /// `.acc`, `.momentum`, (with Adam) `.moment2` and (with master weights) `.master`.
    pub fn tensor_names(&self, master: bool, adam: bool) -> Vec<String> {
        let mut v = vec!["input".to_string()];
        for l in &self.layers {
            let n = l.name();
            v.push(format!("{n}.act"));
            v.push(format!("{n}.grad"));
            if l.has_params() {
                for t in ["weight", "bias", "wgrad", "acc", "momentum"] {
                    v.push(format!("{n}.{t}"));
                }
                if adam {
                    v.push(format!("{n}.moment2"));
                }
                if master {
                    v.push(format!("{n}.master"));
                }
            }
        }
        v
    }

    /// Initial weights of a layer (He-uniform, from the counter-based generator: a function
    /// of the seed and the layer's position) and zero biases.
    pub fn init_params(&self, layer: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let (nw, nb, fan_in) = self.layers[layer]
            .param_sizes()
            .unwrap_or_else(|| panic!("layer {layer} has no weights"));
        let bound = (6.0 / fan_in as f64).sqrt();
        let w = (0..nw)
            .map(|i| {
                let u = random_bits(seed, 1000 + layer as u32, i as u64) as f64 / 4294967296.0;
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect();
        (w, vec![0.0; nb])
    }
}
