//! Models described as nodes: a kind, its parameters and its inputs, each node named, the
//! shapes inferred from the input sample. A TOML file (`lowp train --model FILE.toml`) and
//! the built-in models are written this way.
//!
//! ```toml
//! input = [1, 28, 28]          # optional: the data's sample shape if absent
//!
//! [[node]]
//! name = "conv1"               # optional: the kind and a count (conv1, relu2, fc3, ...)
//! kind = "conv2d"
//! out_channels = 6
//! kernel = 5
//! pad = 2                      # default 0; stride defaults to 1
//!
//! [[node]]
//! kind = "add"                 # the previous node's output plus a shortcut
//! shortcut = "relu1"           # from this earlier node's output
//!
//! [[node]]
//! name = "branch"
//! kind = "conv2d"
//! input = "relu1"              # reads this earlier node (default: the node before)
//! out_channels = 4
//! kernel = 1
//!
//! [[node]]
//! kind = "concat"              # channels of its inputs, in order
//! inputs = ["add1", "branch"]
//!
//! [[node]]
//! kind = "linear"
//! out_features = "classes"     # or a number
//! ```
//!
//! A node reads the node before it (the first reads the input), or the earlier node (or
//! "input") its `input` names. `add` reads `inputs = [main, shortcut]`, or the node before
//! it (or `input`) plus the node its `shortcut` names; the shortcut is the identity or, for
//! fewer channels and a larger image, option A (strided pixels, zero-padded channels).
//! `concat` joins `inputs` (two or more, equal height and width, or all flat) along the
//! channels. A node's output may feed several nodes; every node but the last must feed
//! one. Kinds: linear, conv2d, relu, maxpool2d, avgpool2d (global without `pool`),
//! batchnorm2d, flatten, add, concat. conv2d takes `groups` (default 1; the input channels
//! for a depthwise convolution).

use super::model::{Layer, Model, Source};
use serde::Deserialize;
use std::collections::HashMap;

/// A model description that does not make a model (unknown kind or field, a missing or
/// misplaced parameter, shapes that do not fit, a graph lowp cannot run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelFileError(pub String);

fn err<T>(msg: String) -> Result<T, ModelFileError> {
    Err(ModelFileError(msg))
}

/// A Linear layer's outputs: a number, or the data's classes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Width {
    /// This many.
    Count(usize),
    /// The word "classes".
    Named(String),
}

/// One node of a model description.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its name (the prefix of its tensors' names in precision maps and checkpoints).
    pub name: Option<String>,
    /// linear, conv2d, relu, maxpool2d, avgpool2d, batchnorm2d, flatten, add or concat.
    pub kind: String,
    /// The node it reads (an earlier node, or "input"; default: the node before it).
    pub input: Option<String>,
    /// add: [main, shortcut]; concat: the nodes joined, in order.
    pub inputs: Option<Vec<String>>,
    /// linear: output features.
    pub out_features: Option<Width>,
    /// conv2d: output channels.
    pub out_channels: Option<usize>,
    /// conv2d: kernel size (square).
    pub kernel: Option<usize>,
    /// conv2d: zero padding on every side (default 0).
    pub pad: Option<usize>,
    /// conv2d: stride (default 1).
    pub stride: Option<usize>,
    /// conv2d: channel groups (default 1; the input channels: depthwise).
    pub groups: Option<usize>,
    /// maxpool2d, avgpool2d: window and stride (avgpool2d without it: global).
    pub pool: Option<usize>,
    /// add: the node whose output the shortcut takes.
    pub shortcut: Option<String>,
}

impl Node {
    /// A node of `kind` with no parameters set.
    pub fn of(kind: &str) -> Node {
        Node {
            kind: kind.into(),
            ..Node::default()
        }
    }

    /// The same node, named.
    pub fn named(mut self, name: impl Into<String>) -> Node {
        self.name = Some(name.into());
        self
    }
}

/// A model description: the input sample's shape (if fixed) and the nodes in order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// The input sample's shape, e.g. [1, 28, 28].
    pub input: Option<Vec<usize>>,
    /// The nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<Node>,
}

const KINDS: &[&str] = &[
    "linear",
    "conv2d",
    "relu",
    "maxpool2d",
    "avgpool2d",
    "batchnorm2d",
    "flatten",
    "add",
    "concat",
];

impl ModelFile {
    /// Parses a TOML description.
    pub fn parse(text: &str) -> Result<ModelFile, ModelFileError> {
        toml::from_str(text).map_err(|e| ModelFileError(format!("a model file: {e}")))
    }

    /// Reads and parses a TOML description.
    pub fn load(path: &std::path::Path) -> Result<ModelFile, ModelFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelFileError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ModelFileError(format!("{}: {}", path.display(), e.0)))
    }

    /// The model for samples of `shape` and `classes` classes: every node's shapes
    /// inferred, every parameter checked.
    pub fn build(&self, shape: &[usize], classes: usize) -> Result<Model, ModelFileError> {
        if let Some(want) = &self.input
            && want[..] != shape[..]
        {
            return err(format!(
                "the model takes samples of {want:?}, the data has {shape:?}"
            ));
        }
        if self.nodes.is_empty() {
            return err("a model needs at least one node".into());
        }
        let mut layers: Vec<Layer> = Vec::new();
        let mut sources: Vec<Vec<Source>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (k, node) in self.nodes.iter().enumerate() {
            let kind = node.kind.as_str();
            if !KINDS.contains(&kind) {
                return err(format!(
                    "node {}: unknown kind {kind:?} (kinds: {})",
                    k + 1,
                    KINDS.join(", ")
                ));
            }
            let count = counts.entry(kind).or_default();
            *count += 1;
            let name = node.name.clone().unwrap_or_else(|| {
                let stem = match kind {
                    "linear" => "fc",
                    "conv2d" => "conv",
                    "maxpool2d" | "avgpool2d" => "pool",
                    "batchnorm2d" => "bn",
                    other => other,
                };
                format!("{stem}{count}")
            });
            let at = |msg: String| ModelFileError(format!("node {name:?}: {msg}"));
            if name.is_empty() || name == "input" || index.contains_key(&name) {
                return Err(at("a name must be new, not empty and not \"input\"".into()));
            }
            node.check_fields(kind).map_err(&at)?;
            let lookup = |n: &String| -> Result<Source, ModelFileError> {
                match index.get(n) {
                    _ if n == "input" => Ok(Source::Input),
                    Some(&j) => Ok(Source::Layer(j)),
                    None => Err(at(format!(
                        "reads {n:?}, which is not an earlier node (nor \"input\")"
                    ))),
                }
            };
            let main = match (&node.input, k) {
                (Some(n), _) => lookup(n)?,
                (None, 0) => Source::Input,
                (None, _) => Source::Layer(k - 1),
            };
            let srcs: Vec<Source> = match (kind, &node.inputs, &node.shortcut) {
                ("add", Some(v), None) if v.len() == 2 && node.input.is_none() => {
                    vec![lookup(&v[0])?, lookup(&v[1])?]
                }
                ("add", None, Some(s)) => vec![main, lookup(s)?],
                ("add", ..) => {
                    return Err(at("an add node reads `inputs = [main, shortcut]`, or the \
                         node before it (or its `input`) and its `shortcut`"
                        .into()));
                }
                ("concat", Some(v), _) if v.len() >= 2 && node.input.is_none() => {
                    v.iter().map(lookup).collect::<Result<_, _>>()?
                }
                ("concat", ..) => {
                    return Err(at(
                        "a concat node reads `inputs`: two or more nodes (no `input`)".into(),
                    ));
                }
                _ => vec![main],
            };
            let shape_of = |s: &Source| match *s {
                Source::Input => shape.to_vec(),
                Source::Layer(j) => layers[j].sample_shape(),
            };
            let cur = shape_of(&srcs[0]);
            let spatial = |what: &str| -> Result<[usize; 3], ModelFileError> {
                match cur[..] {
                    [c, h, w] => Ok([c, h, w]),
                    _ => Err(at(format!("{what} needs (C, H, W) samples, got {cur:?}"))),
                }
            };
            let layer = match kind {
                "linear" => Layer::Linear {
                    name: name.clone(),
                    inputs: cur.iter().product(),
                    outputs: match node.out_features.as_ref() {
                        Some(Width::Count(n)) if *n > 0 => *n,
                        Some(Width::Named(s)) if s == "classes" => classes,
                        other => {
                            return Err(at(format!(
                                "out_features must be a positive number or \"classes\", got {other:?}"
                            )));
                        }
                    },
                },
                "conv2d" => {
                    let [c, h, w] = spatial("conv2d")?;
                    let (kernel, pad) = (node.kernel.unwrap_or(0), node.pad.unwrap_or(0));
                    let (stride, cout) = (node.stride.unwrap_or(1), node.out_channels.unwrap_or(0));
                    let groups = node.groups.unwrap_or(1);
                    if groups == 0 || c % groups != 0 || cout % groups != 0 {
                        return Err(at(format!(
                            "{groups} groups must divide both its {c} input and {cout} output \
                             channels"
                        )));
                    }
                    if kernel == 0 || stride == 0 || cout == 0 || kernel > h.min(w) + 2 * pad {
                        return Err(at(format!(
                            "a {kernel}x{kernel} kernel (stride {stride}, pad {pad}, {cout} \
                             channels) does not fit {h} x {w} inputs"
                        )));
                    }
                    Layer::Conv2d {
                        name: name.clone(),
                        cin: c,
                        cout,
                        kernel,
                        pad,
                        stride,
                        groups,
                        in_hw: [h, w],
                    }
                }
                "relu" => Layer::Relu {
                    name: name.clone(),
                    shape: cur.clone(),
                },
                "maxpool2d" | "avgpool2d" => {
                    let [c, h, w] = spatial(kind)?;
                    let pool = match (kind, node.pool) {
                        ("avgpool2d", None) if h == w => h,
                        (_, Some(p)) if p > 0 && p <= h.min(w) => p,
                        (_, p) => {
                            return Err(at(format!(
                                "pool {p:?} does not fit {h} x {w} inputs (global average \
                                 pooling needs square ones)"
                            )));
                        }
                    };
                    let (name, channels, in_hw) = (name.clone(), c, [h, w]);
                    match kind {
                        "maxpool2d" => Layer::MaxPool2d {
                            name,
                            channels,
                            pool,
                            in_hw,
                        },
                        _ => Layer::AvgPool2d {
                            name,
                            channels,
                            pool,
                            in_hw,
                        },
                    }
                }
                "batchnorm2d" => Layer::BatchNorm2d {
                    name: name.clone(),
                    shape: spatial("batchnorm2d")?,
                },
                "flatten" => Layer::Flatten {
                    name: name.clone(),
                    len: cur.iter().product(),
                },
                "add" => {
                    let s = shape_of(&srcs[1]);
                    let shape = spatial("add")?;
                    let Ok(source) = <[usize; 3]>::try_from(&s[..]) else {
                        return Err(at(format!(
                            "its shortcut needs (C, H, W) samples, got {s:?}"
                        )));
                    };
                    let sc = crate::layer_geometry::Shortcut::option_a(1, source, shape);
                    if (shape[0] - source[0].min(shape[0])) % 2 != 0 {
                        return Err(at(format!(
                            "a shortcut from {source:?} to {shape:?} pads an odd number of \
                             channels; option A pads evenly on both sides"
                        )));
                    }
                    sc.stride().map_err(&at)?;
                    Layer::Add {
                        name: name.clone(),
                        source,
                        shape,
                    }
                }
                _ => {
                    let shapes: Vec<Vec<usize>> = srcs.iter().map(shape_of).collect();
                    let hw = match &shapes[0][..] {
                        [_] => None,
                        [_, h, w] => Some([*h, *w]),
                        other => return Err(at(format!("cannot join samples of {other:?}"))),
                    };
                    if shapes
                        .iter()
                        .any(|s| s.len() != shapes[0].len() || s[1..] != shapes[0][1..])
                    {
                        return Err(at(format!(
                            "joins samples of {shapes:?}: all flat, or all of the same height \
                             and width"
                        )));
                    }
                    Layer::Concat {
                        name: name.clone(),
                        parts: shapes.iter().map(|s| s[0]).collect(),
                        hw,
                    }
                }
            };
            index.insert(name, k);
            layers.push(layer);
            sources.push(srcs);
        }
        // Every node but the last feeds another (an unread output would get no gradient).
        for (j, l) in layers.iter().enumerate().take(layers.len() - 1) {
            if !sources.iter().flatten().any(|s| *s == Source::Layer(j)) {
                return err(format!(
                    "node {:?}: its output is never read; only the last node ends the model",
                    l.name()
                ));
            }
        }
        let cur = layers.last().expect("at least one node").sample_shape();
        let outputs: usize = cur.iter().product();
        if outputs != classes {
            return err(format!(
                "the model ends in {outputs} values a sample, the data has {classes} classes"
            ));
        }
        Ok(Model {
            inputs: shape.iter().product(),
            layers,
            sources,
            input_shape: shape.to_vec(),
        })
    }
}

impl Node {
    /// Fails if a parameter `kind` needs is missing or one it does not take is set.
    fn check_fields(&self, kind: &str) -> Result<(), String> {
        let set = [
            ("out_features", self.out_features.is_some()),
            ("out_channels", self.out_channels.is_some()),
            ("kernel", self.kernel.is_some()),
            ("pad", self.pad.is_some()),
            ("stride", self.stride.is_some()),
            ("groups", self.groups.is_some()),
            ("pool", self.pool.is_some()),
            ("shortcut", self.shortcut.is_some()),
            ("inputs", self.inputs.is_some()),
        ];
        let (needs, takes): (&[&str], &[&str]) = match kind {
            "linear" => (&["out_features"], &[]),
            "conv2d" => (&["out_channels", "kernel"], &["pad", "stride", "groups"]),
            "maxpool2d" => (&["pool"], &[]),
            "avgpool2d" => (&[], &["pool"]),
            "add" => (&[], &["shortcut", "inputs"]),
            "concat" => (&["inputs"], &[]),
            _ => (&[], &[]),
        };
        for (field, present) in set {
            if needs.contains(&field) && !present {
                return Err(format!("a {kind} node needs `{field}`"));
            }
            if present && !needs.contains(&field) && !takes.contains(&field) {
                return Err(format!("a {kind} node does not take `{field}`"));
            }
        }
        Ok(())
    }
}
