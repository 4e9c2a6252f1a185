//! A sweep's results: one JSON line per finished run in its shard's file, read back,
//! merged (each run once) and written as a CSV table and a Markdown summary.

use super::grid::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It trained every epoch.
    Ok,
    /// Its loss diverged (the metrics up to there are kept).
    Diverged,
    /// It stopped with an error.
    Failed,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        })
    }
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The run's stable id.
    pub id: String,
    /// Its position in the grid.
    pub index: usize,
    /// Its resolved settings.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// How it ended.
    pub status: Status,
    /// The error, if it failed or diverged.
    pub error: Option<String>,
    /// The adapter it ran on.
    pub adapter: Option<String>,
    /// lowp's version.
    pub version: String,
    /// Epochs recorded in its metrics.
    pub epochs: usize,
    /// The last epoch's test accuracy.
    pub test_acc: Option<f64>,
    /// The last epoch's test loss.
    pub test_loss: Option<f64>,
    /// The last epoch's training loss.
    pub train_loss: Option<f64>,
    /// Its per-epoch metrics (metrics.jsonl).
    pub metrics: PathBuf,
    /// Packed tensor bytes.
    pub packed_bytes: Option<u64>,
    /// Device bytes at the end (every buffer).
    pub device_bytes: Option<u64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Record {
    /// A numeric field by name (`test_error` is 1 - test_acc), for tables and plots.
    pub fn number(&self, field: &str) -> Option<f64> {
        match field {
            "test_acc" => self.test_acc,
            "test_error" => self.test_acc.map(|a| 1.0 - a),
            "test_loss" => self.test_loss,
            "train_loss" => self.train_loss,
            "packed_bytes" => self.packed_bytes.map(|b| b as f64),
            "device_bytes" => self.device_bytes.map(|b| b as f64),
            "seconds" => Some(self.seconds),
            "epochs" => Some(self.epochs as f64),
            _ => None,
        }
    }
}

/// The fields `number` knows.
pub const NUMERIC: &[&str] = &[
    "test_acc",
    "test_error",
    "test_loss",
    "train_loss",
    "packed_bytes",
    "device_bytes",
    "seconds",
    "epochs",
];

/// A setting's value as JSON.
pub fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(x) => (*x).into(),
        Value::Text(s) => s.clone().into(),
    }
}

/// The results file of shard `i` of `n` in `dir`.
pub fn shard_file(dir: &Path, (i, n): (usize, usize)) -> PathBuf {
    dir.join(format!("results-{i}-of-{n}.jsonl"))
}

/// Appends one record as a line (written whole and flushed, so a killed sweep leaves
/// whole lines).
pub fn append(path: &Path, r: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// The records of one results file; a torn last line (a kill mid-write) is skipped.
pub fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Every record of every results file in the folders, each run once (where a run appears
/// twice, the later line wins), in grid order.
pub fn merge(dirs: &[PathBuf]) -> std::io::Result<Vec<Record>> {
    let mut by_id: BTreeMap<String, Record> = BTreeMap::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("results-") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        for f in files {
            for r in read(&f)? {
                by_id.insert(r.id.clone(), r);
            }
        }
    }
    let mut v: Vec<Record> = by_id.into_values().collect();
    v.sort_by_key(|r| (r.index, r.id.clone()));
    Ok(v)
}

/// The settings that differ between records (the grid's axes, as the results show them).
pub fn varying(records: &[Record]) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .flat_map(|r| r.settings.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            let first = records.first().and_then(|r| r.settings.get(k));
            records.iter().any(|r| r.settings.get(k) != first)
        })
        .collect()
}

fn text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The merged table as CSV: id, the varying settings, status and the measures.
pub fn csv(records: &[Record]) -> Result<String, csv::Error> {
    let keys = varying(records);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["id".to_string(), "index".into()];
    head.extend(keys.iter().cloned());
    head.extend(
        [
            "status",
            "test_acc",
            "test_loss",
            "train_loss",
            "packed_bytes",
            "device_bytes",
            "seconds",
            "epochs",
            "adapter",
            "version",
            "error",
        ]
        .map(String::from),
    );
    w.write_record(&head)?;
    for r in records {
        let mut row = vec![r.id.clone(), r.index.to_string()];
        row.extend(keys.iter().map(|k| text(r.settings.get(k))));
        row.extend([
            r.status.to_string(),
            opt(r.test_acc),
            opt(r.test_loss),
            opt(r.train_loss),
            opt(r.packed_bytes),
            opt(r.device_bytes),
            format!("{:.1}", r.seconds),
            r.epochs.to_string(),
            r.adapter.clone().unwrap_or_default(),
            r.version.clone(),
            r.error.clone().unwrap_or_default(),
        ]);
        w.write_record(&row)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The merged table as Markdown: the varying settings, status, test accuracy, bytes.
pub fn markdown(records: &[Record]) -> String {
    let keys = varying(records);
    let mut out = format!(
        "{} runs: {} ok, {} diverged, {} failed\n\n",
        records.len(),
        records.iter().filter(|r| r.status == Status::Ok).count(),
        records
            .iter()
            .filter(|r| r.status == Status::Diverged)
            .count(),
        records
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count(),
    );
    let mut head: Vec<String> = keys.clone();
    head.extend(
        [
            "status",
            "test acc",
            "packed bytes",
            "device bytes",
            "seconds",
        ]
        .map(String::from),
    );
    out.push_str(&format!("| {} |\n", head.join(" | ")));
    let align: Vec<&str> = head
        .iter()
        .enumerate()
        .map(|(i, _)| if i < keys.len() + 1 { "---" } else { "---:" })
        .collect();
    out.push_str(&format!("| {} |\n", align.join(" | ")));
    for r in records {
        let mut row: Vec<String> = keys.iter().map(|k| text(r.settings.get(k))).collect();
        let status = match &r.error {
            Some(e) if r.status == Status::Failed => {
                format!(
                    "failed: {}",
                    e.replace('|', "/").chars().take(80).collect::<String>()
                )
            }
            _ => r.status.to_string(),
        };
        row.push(status);
        row.push(
            r.test_acc
                .map(|a| format!("{:.2}%", 100.0 * a))
                .unwrap_or_default(),
        );
        row.push(opt(r.packed_bytes));
        row.push(opt(r.device_bytes));
        row.push(format!("{:.1}", r.seconds));
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}
