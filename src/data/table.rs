//! A feature table for linear models: rows of numeric features and a target, read from a
//! CSV file with a header row (numeric columns as they are, each text column one-hot
//! encoded), scaled per column to [-1, 1] and given an intercept.

use super::DataError;
use std::path::Path;

/// Rows of features (row-major) with their targets and the features' names.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Feature values, rows x names.len(), row-major.
    pub features: Vec<f32>,
    /// One target per row.
    pub target: Vec<f32>,
    /// Feature names: a numeric column's header, or `column=value` for a one-hot column.
    pub names: Vec<String>,
}

impl Table {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.target.len()
    }

    /// Feature columns.
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// Reads a CSV file with a header row; `target` names the target column, which must be
    /// numeric. Every other column whose every value is a number is a feature; any other
    /// column is one-hot encoded (one feature per distinct value, in sorted order).
    pub fn from_csv(path: &Path, target: &str) -> Result<Table, DataError> {
        let bad = |why: String| DataError::Format(path.to_path_buf(), why);
        let mut reader = csv::Reader::from_path(path).map_err(|e| match e.kind() {
            csv::ErrorKind::Io(_) => match e.into_kind() {
                csv::ErrorKind::Io(io) => DataError::Io(path.to_path_buf(), io),
                _ => unreachable!(),
            },
            _ => bad(e.to_string()),
        })?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let t = header.iter().position(|h| h == target).ok_or_else(|| {
            bad(format!(
                "no column named {target:?}; the columns are {}",
                header.join(", ")
            ))
        })?;
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
        for (r, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            if record.len() != header.len() {
                return Err(bad(format!(
                    "row {} has {} fields, the header {}",
                    r + 2,
                    record.len(),
                    header.len()
                )));
            }
            for (c, v) in record.iter().enumerate() {
                let v = v.trim();
                if v.is_empty() {
                    return Err(bad(format!(
                        "row {}, column {:?} is empty: fill or drop missing values first",
                        r + 2,
                        header[c]
                    )));
                }
                cells[c].push(v.to_string());
            }
        }
        let rows = cells[0].len();
        if rows == 0 {
            return Err(bad("no rows after the header".into()));
        }
        // A number that is finite as an f32 (1e39 is not).
        let number = |s: &str| s.parse::<f32>().ok().filter(|v| v.is_finite());
        let target_values: Vec<f32> = cells[t]
            .iter()
            .enumerate()
            .map(|(r, s)| {
                number(s).ok_or_else(|| {
                    bad(format!(
                        "row {}: the target {target:?} is {s:?}, not a number finite in f32",
                        r + 2
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        // Each feature column: its name and its values, row by row.
        let mut columns: Vec<(String, Vec<f32>)> = Vec::new();
        for (c, name) in header.iter().enumerate() {
            if c == t {
                continue;
            }
            let parsed: Option<Vec<f64>> = cells[c].iter().map(|s| s.parse::<f64>().ok()).collect();
            match parsed {
                Some(values) => {
                    if let Some(r) = values.iter().position(|v| !(*v as f32).is_finite()) {
                        return Err(bad(format!(
                            "row {}, column {name:?}: {} is not a number finite in f32",
                            r + 2,
                            cells[c][r]
                        )));
                    }
                    columns.push((name.clone(), values.iter().map(|&v| v as f32).collect()))
                }
                None => {
                    let mut cats: Vec<&String> = cells[c].iter().collect();
                    cats.sort();
                    cats.dedup();
                    for cat in cats {
                        let values = cells[c].iter().map(|s| (s == cat) as u8 as f32).collect();
                        columns.push((format!("{name}={cat}"), values));
                    }
                }
            }
        }
        if columns.is_empty() {
            return Err(bad(format!(
                "no feature columns: the file holds only the target {target:?}"
            )));
        }
        let mut features = vec![0f32; rows * columns.len()];
        for (c, (_, values)) in columns.iter().enumerate() {
            for (r, &v) in values.iter().enumerate() {
                features[r * columns.len() + c] = v;
            }
        }
        Ok(Table {
            features,
            target: target_values,
            names: columns.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// Reads a LIBSVM text file: a line per row, `label index:value ...` with 1-based
    /// feature indices in increasing order (absent features are 0); the label is the target.
    pub fn from_libsvm(path: &Path) -> Result<Table, DataError> {
        let bad = |line: usize, why: String| {
            DataError::Format(path.to_path_buf(), format!("line {line}: {why}"))
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
        let mut rows: Vec<(f32, Vec<(usize, f32)>)> = Vec::new();
        let mut width = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut tokens = line.split_whitespace();
            let label = tokens.next().unwrap_or("");
            let label: f32 = label
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| bad(n + 1, format!("the label {label:?} is not a number")))?;
            let mut feats = Vec::new();
            let mut last = 0;
            for tok in tokens {
                let (i, v) = tok
                    .split_once(':')
                    .ok_or_else(|| bad(n + 1, format!("{tok:?} is not index:value")))?;
                let i: usize = i.parse().ok().filter(|&i| i > last).ok_or_else(|| {
                    bad(
                        n + 1,
                        format!("index {i:?}: expected increasing indices from 1"),
                    )
                })?;
                let v: f32 = v
                    .parse()
                    .ok()
                    .filter(|v: &f32| v.is_finite())
                    .ok_or_else(|| bad(n + 1, format!("value {v:?} is not a finite number")))?;
                last = i;
                width = width.max(i);
                feats.push((i - 1, v));
            }
            rows.push((label, feats));
        }
        if rows.is_empty() || width == 0 {
            return Err(DataError::Format(
                path.to_path_buf(),
                "no rows with features".into(),
            ));
        }
        let mut features = vec![0f32; rows.len() * width];
        for (r, (_, feats)) in rows.iter().enumerate() {
            for &(i, v) in feats {
                features[r * width + i] = v;
            }
        }
        Ok(Table {
            features,
            target: rows.iter().map(|(l, _)| *l).collect(),
            names: (1..=width).map(|i| format!("f{i}")).collect(),
        })
    }

    /// The rows `pick` selects, in that order.
    pub fn select(&self, pick: &[usize]) -> Table {
        let d = self.cols();
        Table {
            features: pick
                .iter()
                .flat_map(|&r| self.features[r * d..(r + 1) * d].iter().copied())
                .collect(),
            target: pick.iter().map(|&r| self.target[r]).collect(),
            names: self.names.clone(),
        }
    }
}

impl Table {
    /// Two classes of an image set as a table: every pixel a feature, class `a` labelled
    /// -1 and class `b` +1, the other images left out (in the set's order).
    pub fn from_images(
        sets: &[&super::dataset::Dataset],
        (a, b): (u8, u8),
    ) -> Result<Table, DataError> {
        let first = sets
            .first()
            .ok_or_else(|| DataError::Mismatch("no images".into()))?;
        for &c in &[a, b] {
            if c as usize >= first.classes {
                return Err(DataError::Mismatch(format!(
                    "class {c}: {} has classes 0 to {}",
                    first.name,
                    first.classes - 1
                )));
            }
        }
        if a == b {
            return Err(DataError::Mismatch(format!(
                "--classes {a},{b}: name two different classes"
            )));
        }
        let t = image_rows(sets, |l| {
            (l == a || l == b).then_some(if l == a { -1.0 } else { 1.0 })
        })?;
        if t.target.is_empty() {
            return Err(DataError::Mismatch(format!(
                "{}: no images of class {a} or {b}",
                first.name
            )));
        }
        Ok(t)
    }
}

impl Table {
    /// Every image of an image set as a table: every pixel a feature, the class index
    /// (0, 1, ...) the target, in the sets' order.
    pub fn from_all_images(sets: &[&super::dataset::Dataset]) -> Result<Table, DataError> {
        image_rows(sets, |l| Some(l as f32))
    }
}

/// The images of `sets` whose label `target` keeps, in order, with the target it gives;
/// every pixel a feature.
fn image_rows(
    sets: &[&super::dataset::Dataset],
    target: impl Fn(u8) -> Option<f32>,
) -> Result<Table, DataError> {
    let first = sets
        .first()
        .ok_or_else(|| DataError::Mismatch("no images".into()))?;
    let per = first.image_len();
    let mut t = Table {
        features: Vec::new(),
        target: Vec::new(),
        names: (0..per).map(|i| format!("pixel{i}")).collect(),
    };
    for s in sets {
        if s.image_len() != per {
            return Err(DataError::Mismatch(format!(
                "{}: images of {} values beside {per}",
                s.name,
                s.image_len()
            )));
        }
        for (i, &l) in s.labels.iter().enumerate() {
            if let Some(y) = target(l) {
                t.features
                    .extend_from_slice(&s.images[i * per..(i + 1) * per]);
                t.target.push(y);
            }
        }
    }
    Ok(t)
}

/// Per-column scaling to [-1, 1] by a training set's minimum and maximum (a constant
/// column maps to 0), then an intercept feature of 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaler {
    /// Each column's minimum.
    pub min: Vec<f32>,
    /// Each column's maximum.
    pub max: Vec<f32>,
}

impl Scaler {
    /// The scaling that maps `t`'s columns onto [-1, 1].
    pub fn fit(t: &Table) -> Scaler {
        let d = t.cols();
        let (mut min, mut max) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
        for row in t.features.chunks(d.max(1)) {
            for (c, &v) in row.iter().enumerate() {
                min[c] = min[c].min(v);
                max[c] = max[c].max(v);
            }
        }
        Scaler { min, max }
    }

    /// `t` scaled (values of other sets may fall outside [-1, 1]), with the intercept as its
    /// last feature, named "intercept".
    pub fn apply(&self, t: &Table) -> Table {
        let d = t.cols();
        let mut features = Vec::with_capacity(t.rows() * (d + 1));
        for row in t.features.chunks(d.max(1)).take(t.rows()) {
            for (c, &v) in row.iter().enumerate() {
                let (lo, hi) = (self.min[c] as f64, self.max[c] as f64);
                let s = if hi > lo {
                    2.0 * (v as f64 - lo) / (hi - lo) - 1.0
                } else {
                    0.0
                };
                features.push(s as f32);
            }
            features.push(1.0);
        }
        let mut names = t.names.clone();
        names.push("intercept".into());
        Table {
            features,
            target: t.target.clone(),
            names,
        }
    }
}
