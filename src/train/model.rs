//! Models as graphs of layers: each layer reads the input or earlier layers' outputs; the
//! tensors each layer owns and their names.

use super::model_file::{ModelFile, Node, Width};
use crate::rng::random_bits;

/// Added to a batch-norm layer's variance.
pub const BN_EPS: f32 = 1e-5;
/// Weight of each batch's statistics in a batch-norm layer's running statistics.
pub const BN_MOMENTUM: f32 = 0.1;

/// What a layer reads: the model's input, or an earlier layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The input batch.
    Input,
    /// Layer i's output.
    Layer(usize),
}

/// One layer of a model.
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
    /// 2-D convolution (NCHW), square kernel, zero padding on every side.
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
        /// Stride.
        stride: usize,
        /// Channel groups (cin and cout multiples of it; cin groups: depthwise).
        groups: usize,
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
    /// Average pooling over non-overlapping pool x pool windows (global when pool = H = W).
    AvgPool2d {
        /// Layer name.
        name: String,
        /// Channels.
        channels: usize,
        /// Window size and stride.
        pool: usize,
        /// Input (height, width).
        in_hw: [usize; 2],
    },
    /// Batch normalization per channel (batch statistics in training, running statistics
    /// in evaluation); `.weight` is gamma, `.bias` is beta.
    BatchNorm2d {
        /// Layer name.
        name: String,
        /// Sample shape (C, H, W), same in and out.
        shape: [usize; 3],
    },
    /// Residual addition: its first source plus a shortcut from its second (identity, or
    /// option A: strided pixels, zero-padded channels).
    Add {
        /// Layer name.
        name: String,
        /// The shortcut's source's sample shape (C, H, W).
        source: [usize; 3],
        /// Sample shape (C, H, W) of the sum.
        shape: [usize; 3],
    },
    /// Concatenation of its sources along the first sample dimension (channels, or the
    /// features of flat samples).
    Concat {
        /// Layer name.
        name: String,
        /// Each source's channels (or features), in order.
        parts: Vec<usize>,
        /// The (height, width) every source shares; None for flat samples.
        hw: Option<[usize; 2]>,
    },
    /// Flattens a sample to one dimension (its values unchanged).
    Flatten {
        /// Layer name.
        name: String,
        /// Values per sample.
        len: usize,
    },
}

impl Layer {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Layer::Linear { name, .. }
            | Layer::Relu { name, .. }
            | Layer::Conv2d { name, .. }
            | Layer::MaxPool2d { name, .. }
            | Layer::AvgPool2d { name, .. }
            | Layer::BatchNorm2d { name, .. }
            | Layer::Add { name, .. }
            | Layer::Concat { name, .. }
            | Layer::Flatten { name, .. } => name,
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
                stride,
                in_hw,
                ..
            } => {
                vec![
                    *cout,
                    (in_hw[0] + 2 * pad - kernel) / stride + 1,
                    (in_hw[1] + 2 * pad - kernel) / stride + 1,
                ]
            }
            Layer::MaxPool2d {
                channels,
                pool,
                in_hw,
                ..
            }
            | Layer::AvgPool2d {
                channels,
                pool,
                in_hw,
                ..
            } => vec![*channels, in_hw[0] / pool, in_hw[1] / pool],
            Layer::BatchNorm2d { shape, .. } | Layer::Add { shape, .. } => shape.to_vec(),
            Layer::Flatten { len, .. } => vec![*len],
            Layer::Concat { parts, hw, .. } => {
                let c = parts.iter().sum();
                match hw {
                    Some([h, w]) => vec![c, *h, *w],
                    None => vec![c],
                }
            }
        }
    }

    /// Values of one sample's output.
    pub fn outputs(&self) -> usize {
        self.sample_shape().iter().product()
    }

    /// The pooling geometry of a pooling layer for a batch.
    pub fn pool_geometry(&self, batch: usize) -> Option<crate::conv::Pool> {
        match self {
            Layer::MaxPool2d {
                channels,
                pool,
                in_hw,
                ..
            }
            | Layer::AvgPool2d {
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

    /// The residual shortcut of an Add layer for a batch.
    pub fn shortcut(&self, batch: usize) -> Option<crate::ops::elementwise::Shortcut> {
        match self {
            Layer::Add { source, shape, .. } => Some(crate::layer_geometry::Shortcut::option_a(
                batch, *source, *shape,
            )),
            _ => None,
        }
    }

    /// The channel windows of a Concat layer's sources in its output, for a batch.
    pub fn windows(&self, batch: usize) -> Option<Vec<crate::layer_geometry::Shortcut>> {
        let Layer::Concat { parts, hw, .. } = self else {
            return None;
        };
        let [h, w] = hw.unwrap_or([1, 1]);
        let total = parts.iter().sum();
        let mut offset = 0;
        let windows = parts
            .iter()
            .map(|&c| {
                let sc = crate::layer_geometry::Shortcut::window(
                    batch,
                    [c, h, w],
                    [total, h, w],
                    offset,
                );
                offset += c;
                sc
            })
            .collect();
        Some(windows)
    }

    /// The batch-norm geometry of a BatchNorm2d layer for a batch.
    pub fn batch_norm(&self, batch: usize) -> Option<crate::ops::batchnorm::BatchNorm> {
        match self {
            Layer::BatchNorm2d { shape, .. } => Some(crate::ops::batchnorm::BatchNorm {
                batch,
                channels: shape[0],
                pixels: shape[1] * shape[2],
                eps: BN_EPS,
                momentum: BN_MOMENTUM,
            }),
            _ => None,
        }
    }

    /// Whether the layer has weights.
    pub fn has_params(&self) -> bool {
        matches!(
            self,
            Layer::Linear { .. } | Layer::Conv2d { .. } | Layer::BatchNorm2d { .. }
        )
    }

    /// Element counts of the weight and the bias, and the weight's fan-in.
    pub fn param_sizes(&self) -> Option<(usize, usize, usize)> {
        match self {
            Layer::Linear {
                inputs, outputs, ..
            } => Some((inputs * outputs, *outputs, *inputs)),
            Layer::Conv2d {
                cin,
                cout,
                kernel,
                groups,
                ..
            } => {
                let fan_in = cin / groups * kernel * kernel;
                Some((cout * fan_in, *cout, fan_in))
            }
            Layer::BatchNorm2d { shape, .. } => Some((shape[0], shape[0], 1)),
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
                cin,
                cout,
                kernel,
                groups,
                ..
            } => vec![*cout, cin / groups, *kernel, *kernel],
            Layer::BatchNorm2d { shape, .. } => vec![shape[0]],
            _ => Vec::new(),
        }
    }
}

/// A classifier ending in logits: layers in an order where each reads only earlier ones,
/// the last one's output the logits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Values of one input sample.
    pub inputs: usize,
    /// The layers in order.
    pub layers: Vec<Layer>,
    /// What each layer reads, in order (Add: the main path, then the shortcut's source;
    /// Concat: its parts).
    pub sources: Vec<Vec<Source>>,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
}

impl Model {
    /// A chain of layers, each reading the one before it (the first the input); the
    /// layers' shapes are taken as given (`ModelFile::build` infers and checks them).
    pub fn chain(input_shape: &[usize], layers: Vec<Layer>) -> Model {
        let sources = (0..layers.len())
            .map(|i| match i {
                0 => vec![Source::Input],
                _ => vec![Source::Layer(i - 1)],
            })
            .collect();
        Model {
            inputs: input_shape.iter().product(),
            layers,
            sources,
            input_shape: input_shape.to_vec(),
        }
    }

    /// An MLP: Linear and ReLU for each hidden width, then a Linear to `classes` logits.
    pub fn mlp(inputs: usize, hidden: &[usize], classes: usize) -> Model {
        let mut nodes = Vec::new();
        for (i, &h) in hidden.iter().enumerate() {
            nodes.push(linear(&format!("fc{}", i + 1), Width::Count(h)));
            nodes.push(Node::of("relu").named(format!("relu{}", i + 1)));
        }
        nodes.push(linear(&format!("fc{}", hidden.len() + 1), classes_width()));
        ModelFile { input: None, nodes }
            .build(&[inputs], classes)
            .expect("an MLP of positive widths builds")
    }

    /// LeNet-5 for images of `shape` (C, H, W): conv 5x5 (pad 2) to 6 channels, ReLU, 2x2
    /// max pool, conv 5x5 to 16, ReLU, pool, then 120, 84 and `classes` fully connected.
    pub fn lenet(shape: [usize; 3], classes: usize) -> Result<Model, String> {
        let [_, h, w] = shape;
        if h < 12 || w < 12 {
            return Err(format!(
                "LeNet needs images of at least 12 x 12, got {h} x {w}"
            ));
        }
        let pool = |name: &str| Node {
            pool: Some(2),
            ..Node::of("maxpool2d").named(name)
        };
        let nodes = vec![
            conv("conv1", 6, 5, (2, 1)),
            Node::of("relu").named("relu1"),
            pool("pool1"),
            conv("conv2", 16, 5, (0, 1)),
            Node::of("relu").named("relu2"),
            pool("pool2"),
            linear("fc1", Width::Count(120)),
            Node::of("relu").named("relu3"),
            linear("fc2", Width::Count(84)),
            Node::of("relu").named("relu4"),
            linear("fc3", classes_width()),
        ];
        ModelFile { input: None, nodes }
            .build(&shape, classes)
            .map_err(|e| e.0)
    }

    /// The CIFAR ResNet of He et al. (2016) with `blocks` basic blocks per stage (1:
    /// ResNet-8, 3: ResNet-20) for images of `shape`: conv 3x3 to 16 channels, BN, ReLU;
    /// stages of 16, 32, 64 channels (the 2nd and 3rd start with stride 2 and an option-A
    /// shortcut), each block conv-BN-ReLU-conv-BN, add, ReLU; global average pooling,
    /// flatten, and a Linear layer to `classes`. Convolutions keep their biases.
    pub fn resnet(blocks: usize, shape: [usize; 3], classes: usize) -> Result<Model, String> {
        let [_, h, w] = shape;
        if h < 4 || w < 4 || h % 4 != 0 || w % 4 != 0 || blocks == 0 {
            return Err(format!(
                "a ResNet needs images whose sides are multiples of 4, got {h} x {w}"
            ));
        }
        if h != w {
            return Err(format!(
                "a ResNet's global pooling needs square feature maps, got {h} x {w} images"
            ));
        }
        let mut nodes = vec![
            conv("conv1", 16, 3, (1, 1)),
            Node::of("batchnorm2d").named("bn1"),
            Node::of("relu").named("relu1"),
        ];
        let mut source = "relu1".to_string();
        for stage in 1..=3 {
            let planes = 16 << (stage - 1);
            for b in 1..=blocks {
                let stride = if stage > 1 && b == 1 { 2 } else { 1 };
                let p = format!("s{stage}b{b}");
                nodes.extend([
                    conv(&format!("{p}.conv1"), planes, 3, (1, stride)),
                    Node::of("batchnorm2d").named(format!("{p}.bn1")),
                    Node::of("relu").named(format!("{p}.relu1")),
                    conv(&format!("{p}.conv2"), planes, 3, (1, 1)),
                    Node::of("batchnorm2d").named(format!("{p}.bn2")),
                    Node {
                        shortcut: Some(source.clone()),
                        ..Node::of("add").named(format!("{p}.add"))
                    },
                    Node::of("relu").named(format!("{p}.relu2")),
                ]);
                source = format!("{p}.relu2");
            }
        }
        nodes.extend([
            Node::of("avgpool2d").named("pool"),
            Node::of("flatten").named("flatten"),
            linear("fc", classes_width()),
        ]);
        ModelFile { input: None, nodes }
            .build(&shape, classes)
            .map_err(|e| e.0)
    }

    /// The readers of layer `j`'s output: (layer, which of its sources), in order.
    pub fn consumers(&self, j: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for (i, srcs) in self.sources.iter().enumerate() {
            for (slot, s) in srcs.iter().enumerate() {
                if *s == Source::Layer(j) {
                    v.push((i, slot));
                }
            }
        }
        v
    }

    /// The sample shape a source holds.
    pub fn source_shape(&self, s: Source) -> Vec<usize> {
        match s {
            Source::Input => self.input_shape.clone(),
            Source::Layer(j) => self.layers[j].sample_shape(),
        }
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
        if let Layer::BatchNorm2d { .. } = self.layers[layer] {
            return (vec![1.0; nw], vec![0.0; nb]);
        }
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

/// A convolution node: `out` channels, a `kernel` x `kernel` window, (padding, stride).
fn conv(name: &str, out: usize, kernel: usize, (pad, stride): (usize, usize)) -> Node {
    Node {
        out_channels: Some(out),
        kernel: Some(kernel),
        pad: (pad > 0).then_some(pad),
        stride: (stride > 1).then_some(stride),
        ..Node::of("conv2d").named(name)
    }
}

/// A linear node of `outputs` features.
fn linear(name: &str, outputs: Width) -> Node {
    Node {
        out_features: Some(outputs),
        ..Node::of("linear").named(name)
    }
}

/// The data's classes as a linear node's outputs.
fn classes_width() -> Width {
    Width::Named("classes".into())
}
