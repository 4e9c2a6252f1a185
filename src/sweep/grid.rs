//! A grid of trainings: base `lowp train` settings and axes whose product is the run list,
//! each run with a stable id from its resolved settings, split into shards.
//!
//! ```toml
//! [train]                      # every run's settings: `lowp train` options, long names
//! model = "lenet"
//! data = "../shared/data/mnist"
//! epochs = 2
//!
//! [axes]                       # the runs are the product of these values
//! precision = ["examples/precision/fp32.toml", "examples/precision/hfp8.toml"]
//! seed = [0, 1]
//! ```
//!
//! A value is a string, a number or a boolean (a flag: true gives `--flag`, false leaves it
//! out). The sweep gives each run its own `--out`, so neither `out` nor `resume` may be set.

use crate::digest::fnv64;
use std::collections::BTreeMap;
use std::path::Path;

/// A grid file that does not make a run list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GridError(pub String);

/// One setting's value.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A flag.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A real number.
    Float(f64),
    /// Text (a path, a name, a list like "256,128").
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s}"),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default)]
    train: BTreeMap<String, Value>,
    #[serde(default)]
    axes: BTreeMap<String, Vec<Value>>,
}

/// A parsed grid: the base settings and the axes, in key order (the first axis varies
/// slowest along the run list).
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Every run's settings.
    pub base: BTreeMap<String, Value>,
    /// Each axis: its setting and values.
    pub axes: Vec<(String, Vec<Value>)>,
}

/// One run of a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its position in the product of the axes (the first axis varies slowest).
    pub index: usize,
    /// A stable id: a digest of the resolved settings and of the files they name.
    pub id: String,
    /// The resolved settings, by option name.
    pub settings: BTreeMap<String, Value>,
}

impl Grid {
    /// Parses a grid's TOML text.
    pub fn parse(text: &str) -> Result<Grid, GridError> {
        let f: GridFile =
            toml::from_str(text).map_err(|e| GridError(format!("a grid file: {e}")))?;
        let grid = Grid {
            base: f.train,
            axes: f.axes.into_iter().collect(),
        };
        grid.check()?;
        Ok(grid)
    }

    /// Reads and parses a grid file.
    pub fn load(path: &Path) -> Result<Grid, GridError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GridError(format!("cannot read {}: {e}", path.display())))?;
        Grid::parse(&text).map_err(|e| GridError(format!("{}: {}", path.display(), e.0)))
    }

    fn check(&self) -> Result<(), GridError> {
        for key in self.base.keys().chain(self.axes.iter().map(|(k, _)| k)) {
            if key == "out" || key == "resume" {
                return Err(GridError(format!(
                    "`{key}` is the sweep's to set (each run writes its own folder)"
                )));
            }
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(GridError(format!(
                    "{key:?} is not an option name (use the long name, like train-size)"
                )));
            }
        }
        for (key, values) in &self.axes {
            if self.base.contains_key(key) {
                return Err(GridError(format!("`{key}` is both a setting and an axis")));
            }
            if values.is_empty() {
                return Err(GridError(format!("axis `{key}` has no values")));
            }
        }
        Ok(())
    }

    /// Every run, in order: the product of the axes over the base settings.
    pub fn runs(&self) -> Vec<Run> {
        let total: usize = self.axes.iter().map(|(_, v)| v.len()).product();
        (0..total)
            .map(|index| {
                let mut settings = self.base.clone();
                let mut rest = index;
                for (key, values) in self.axes.iter().rev() {
                    settings.insert(key.clone(), values[rest % values.len()].clone());
                    rest /= values.len();
                }
                Run {
                    index,
                    id: run_id(&settings),
                    settings,
                }
            })
            .collect()
    }
}

/// The runs of shard `i` of `n` (0-based): every n-th run from the i-th, a fixed split.
pub fn shard(runs: Vec<Run>, (i, n): (usize, usize)) -> Vec<Run> {
    runs.into_iter().filter(|r| r.index % n == i).collect()
}

/// Parses `I/N` (0 <= I < N).
pub fn parse_shard(text: &str) -> Result<(usize, usize), GridError> {
    let bad = || GridError(format!("--shard {text:?}: expected I/N with 0 <= I < N"));
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// A run's `lowp train` arguments (without `--out`), in option order.
pub fn train_args(settings: &BTreeMap<String, Value>) -> Vec<String> {
    let mut args = Vec::new();
    for (key, value) in settings {
        match value {
            Value::Bool(true) => args.push(format!("--{key}")),
            Value::Bool(false) => {}
            other => {
                args.push(format!("--{key}"));
                args.push(other.to_string());
            }
        }
    }
    args
}

/// The id of resolved settings: a digest of `key=value` lines in key order, each value
/// that names a file followed by a digest of the file's contents (an edited precision
/// map or model file makes another run).
pub fn run_id(settings: &BTreeMap<String, Value>) -> String {
    let mut text = String::new();
    for (key, value) in settings {
        text.push_str(&format!("{key}={value}"));
        if let Value::Text(s) = value
            && let Ok(bytes) = std::fs::read(s)
        {
            text.push_str(&format!("#{:016x}", fnv64(&bytes)));
        }
        text.push('\n');
    }
    format!("{:016x}", fnv64(text.as_bytes()))
}
