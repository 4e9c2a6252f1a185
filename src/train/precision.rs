//! The precision map: which format, rounding and saturation each named tensor is held in.
//!
//! Tensor names: `LAYER.weight`, `LAYER.bias`, `LAYER.act` (the layer's output),
//! `LAYER.grad` (gradient of the loss with respect to the output), `LAYER.wgrad`,
//! `LAYER.momentum` (and Adam's `LAYER.second`), `LAYER.master`, `LAYER.acc` (the GEMM
//! accumulator), and `input`. A map is TOML:
//!
//! ```toml
//! default = { format = "fp32" }            # optional
//! [[rule]]
//! match = "*.weight"                        # glob: * any run, ? one character
//! format = "e4m3"
//! rounding = "nearest"                      # optional: nearest | nearest-away | toward-zero | stochastic[:K]
//! saturate = true                           # optional, default false
//! scale = "tensor"                          # optional: none | tensor
//!
//! [[rule]]
//! match = "*.acc"                           # the GEMM accumulators (fp32 unless a rule names them)
//! format = "fp16"
//! chunk = 32                                # optional: products summed in f32 between roundings (1)
//! ```
//!
//! Rules are tried in order and the first whose pattern matches a name decides; names no
//! rule matches take the default, except accumulators, which are fp32 unless a rule names
//! them. A rule that matches no tensor, or a tensor that neither a
//! rule nor a default covers, is an error that lists the names.

use super::glob::glob_match;
use crate::format::Format;
use crate::quant::{Rounding, Scaling};
use serde::Deserialize;
use std::path::Path;

/// How one tensor is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Its format.
    pub format: Format,
    /// How values are rounded into it.
    pub rounding: Rounding,
    /// Clamp overflow to ±max.
    pub saturate: bool,
    /// Per-tensor scaling.
    pub scaling: Scaling,
    /// Products summed in f32 between roundings to the format (accumulators only; None: 1).
    pub chunk: Option<usize>,
}

impl Assignment {
    /// `format`, nearest-even, non-saturating, unscaled.
    pub fn plain(format: Format) -> Assignment {
        Assignment {
            format,
            rounding: Rounding::Nearest,
            saturate: false,
            scaling: Scaling::None,
            chunk: None,
        }
    }
}

/// One ordered rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Glob over tensor names.
    pub pattern: String,
    /// What the matched tensors get.
    pub assign: Assignment,
}

/// A default and ordered rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecisionMap {
    /// What tensors no rule matches get, if anything.
    pub default: Option<Assignment>,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Whether the map asks for master weights (`master = true`; `LAYER.master` tensors).
    pub master: bool,
}

/// Why a precision map is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The TOML is malformed or has unknown keys.
    #[error("precision map: {0}")]
    Syntax(String),
    /// A value is not valid (format, rounding, scale).
    #[error("precision map, {place}: {message}")]
    Value {
        /// `default` or `rule N (PATTERN)`.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// Rules that match no tensor of the model.
    #[error("precision map: rule(s) {rules} match no tensor; the model's tensors are: {names}")]
    UnusedRules {
        /// The rules, as `N (PATTERN)`.
        rules: String,
        /// The model's tensor names.
        names: String,
    },
    /// A run setting the plan cannot use (e.g. a loss scale that is not a power of two).
    #[error("{0}")]
    Setting(String),
    /// Tensors no rule matches, with no default.
    #[error("precision map: no rule and no default covers {names}; add a rule or a default")]
    Unassigned {
        /// The uncovered names.
        names: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    master: bool,
    default: Option<EntrySpec>,
    #[serde(default, rename = "rule")]
    rules: Vec<EntrySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    #[serde(rename = "match")]
    pattern: Option<String>,
    format: String,
    rounding: Option<String>,
    saturate: Option<bool>,
    scale: Option<String>,
    chunk: Option<usize>,
}

impl EntrySpec {
    fn assignment(&self, place: &str) -> Result<Assignment, PrecisionError> {
        let err = |message: String| PrecisionError::Value {
            place: place.to_string(),
            message,
        };
        let format: Format = self
            .format
            .parse()
            .map_err(|e: crate::format::FormatError| err(e.to_string()))?;
        let rounding = match &self.rounding {
            Some(r) => r
                .parse()
                .map_err(|e: crate::quant::RoundingError| err(e.to_string()))?,
            None => Rounding::Nearest,
        };
        let scaling = match self.scale.as_deref() {
            None | Some("none") => Scaling::None,
            Some("tensor") => Scaling::Tensor,
            Some(other) => return Err(err(format!("scale = {other:?} is not none or tensor"))),
        };
        Ok(Assignment {
            format,
            rounding,
            saturate: self.saturate.unwrap_or(false),
            scaling,
            chunk: match self.chunk {
                Some(0) => {
                    return Err(err(
                        "chunk = 0: an accumulator sums at least 1 product between roundings"
                            .into(),
                    ));
                }
                c => c,
            },
        })
    }
}

impl PrecisionMap {
    /// Every tensor in `format` (nearest-even).
    pub fn uniform(format: Format) -> PrecisionMap {
        PrecisionMap {
            default: Some(Assignment::plain(format)),
            rules: Vec::new(),
            master: false,
        }
    }

    /// Parses a map from TOML text.
    pub fn parse(text: &str) -> Result<PrecisionMap, PrecisionError> {
        let spec: FileSpec = toml::from_str(text)
            .map_err(|e| PrecisionError::Syntax(e.to_string().trim().to_string()))?;
        let default = match &spec.default {
            Some(d) if d.pattern.is_some() => {
                return Err(PrecisionError::Value {
                    place: "default".into(),
                    message: "the default takes no match pattern".into(),
                });
            }
            Some(d) => Some(d.assignment("default")?),
            None => None,
        };
        let mut rules = Vec::new();
        for (i, r) in spec.rules.iter().enumerate() {
            let pattern = r.pattern.clone().ok_or_else(|| PrecisionError::Value {
                place: format!("rule {}", i + 1),
                message: "needs match = \"PATTERN\"".into(),
            })?;
            let assign = r.assignment(&format!("rule {} ({pattern})", i + 1))?;
            rules.push(Rule { pattern, assign });
        }
        Ok(PrecisionMap {
            default,
            rules,
            master: spec.master,
        })
    }

    /// Reads and parses a map file.
    pub fn load(path: &Path) -> Result<PrecisionMap, PrecisionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PrecisionError::Io(format!("{}: {e}", path.display())))?;
        PrecisionMap::parse(&text).map_err(|e| match e {
            PrecisionError::Syntax(m) => PrecisionError::Syntax(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Rules that decide no tensor because earlier rules decide every one they match, each
    /// as a sentence naming those rules.
    pub fn shadowed(&self, names: &[String]) -> Vec<String> {
        let first = |n: &String| self.rules.iter().position(|r| glob_match(&r.pattern, n));
        let mut out = Vec::new();
        for (j, r) in self.rules.iter().enumerate() {
            let matched: Vec<&String> =
                names.iter().filter(|n| glob_match(&r.pattern, n)).collect();
            if matched.is_empty() || matched.iter().any(|n| first(n) == Some(j)) {
                continue;
            }
            let mut by: Vec<usize> = matched.iter().filter_map(|n| first(n)).collect();
            by.sort();
            by.dedup();
            let by: Vec<String> = by
                .iter()
                .map(|&i| format!("rule {} ({})", i + 1, self.rules[i].pattern))
                .collect();
            out.push(format!(
                "rule {} ({}) decides nothing: {} decide{} every tensor it matches",
                j + 1,
                r.pattern,
                by.join(" and "),
                if by.len() == 1 { "s" } else { "" }
            ));
        }
        out
    }

    /// Assigns every name: `(name, assignment, index of the deciding rule or None for the default)`.
    pub fn resolve(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, Assignment, Option<usize>)>, PrecisionError> {
        let mut used = vec![false; self.rules.len()];
        let mut out = Vec::with_capacity(names.len());
        let mut uncovered = Vec::new();
        for name in names {
            match self.rules.iter().position(|r| glob_match(&r.pattern, name)) {
                Some(i) => {
                    used[i] = true;
                    out.push((name.clone(), self.rules[i].assign, Some(i)));
                }
                None => match self.default {
                    Some(d) => out.push((name.clone(), d, None)),
                    None => uncovered.push(name.as_str()),
                },
            }
        }
        // A rule whose pattern matches no name at all is a mistake (a typo, or a tensor the
        // model does not have); one shadowed by an earlier rule is fine.
        let unused: Vec<String> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(i, r)| !used[*i] && !names.iter().any(|n| glob_match(&r.pattern, n)))
            .map(|(i, r)| format!("{} ({})", i + 1, r.pattern))
            .collect();
        if !unused.is_empty() {
            return Err(PrecisionError::UnusedRules {
                rules: unused.join(", "),
                names: names.join(", "),
            });
        }
        if !uncovered.is_empty() {
            return Err(PrecisionError::Unassigned {
                names: uncovered.join(", "),
            });
        }
        Ok(out)
    }
}
