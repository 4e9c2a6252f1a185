//! `lowp plot`: the curves of several training runs overlaid, one colour per run.

use crate::plot::{Curve, PALETTE, Panel, svg};
use lowp::atomic_file::write_atomic;
use std::path::PathBuf;

/// Arguments of `lowp plot`.
#[derive(clap::Args)]
pub struct Args {
    /// Run folders (each holding the metrics.jsonl `lowp train --out` writes).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The chart to write.
    #[arg(long, default_value = "runs.svg")]
    out: PathBuf,
    /// The chart's title (default: the runs' folder names).
    #[arg(long)]
    title: Option<String>,
}

/// The quantities drawn, each in its own panel: (metrics key, axis label, axis fixed to [0, 1]).
const PANELS: [(&str, &str, bool); 4] = [
    ("test_acc", "test accuracy", true),
    ("test_loss", "test loss", false),
    ("train_acc", "train accuracy", true),
    ("train_loss", "train loss", false),
];

/// A legend label at most `max` characters long, keeping the end (where run names differ).
fn short(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        name.to_string()
    } else {
        let tail: String = name.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    let mut runs = Vec::new();
    for dir in &a.runs {
        let path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (a run folder holds the metrics.jsonl of `lowp train --out`)",
                path.display()
            )
        })?;
        let mut lines = Vec::new();
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            // A diverged run's last line covers only part of an epoch: drawn as its own point.
            if v["epoch"].as_u64().is_none() {
                return Err(format!("{}:{}: no epoch", path.display(), i + 1));
            }
            lines.push(v);
        }
        if lines.is_empty() {
            return Err(format!("{}: no epochs yet", path.display()));
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        runs.push((name, lines));
    }
    // Folders with equal names are told apart by the paths given.
    let names: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            if runs.iter().filter(|(m, _)| m == n).count() > 1 {
                a.runs[i].display().to_string()
            } else {
                n.clone()
            }
        })
        .collect();
    let panels: Vec<Panel> = PANELS
        .iter()
        .map(|&(key, label, unit)| Panel {
            label,
            unit,
            curves: runs
                .iter()
                .zip(&names)
                .enumerate()
                .map(|(i, ((_, lines), name))| {
                    // One value per epoch (a partial epoch's line replaces nothing before it).
                    let epochs = lines
                        .iter()
                        .filter_map(|l| l["epoch"].as_u64())
                        .max()
                        .unwrap_or(0);
                    let mut values = vec![f64::NAN; epochs as usize];
                    for l in lines {
                        let e = l["epoch"].as_u64().unwrap_or(1) as usize;
                        if let Some(v) = l[key].as_f64() {
                            values[e - 1] = v;
                        }
                    }
                    Curve {
                        name: short(name, 20),
                        colour: PALETTE[i % PALETTE.len()],
                        values,
                    }
                })
                .collect(),
        })
        .collect();
    let title = a
        .title
        .clone()
        .unwrap_or_else(|| format!("lowp plot: {}", short(&names.join(", "), 80)));
    write_atomic(&a.out, svg(&title, &panels).as_bytes())
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    println!(
        "{:<24} {:>6} {:>10} {:>10}",
        "run", "epochs", "test acc", "test loss"
    );
    for (name, (_, lines)) in names.iter().zip(&runs) {
        let last = lines.iter().rev().find(|l| l["test_acc"].is_number());
        let fig = |k: &str| {
            last.and_then(|l| l[k].as_f64())
                .map_or("-".into(), |v| format!("{v:.4}"))
        };
        println!(
            "{:<24} {:>6} {:>10} {:>10}",
            short(name, 24),
            lines
                .iter()
                .filter_map(|l| l["epoch"].as_u64())
                .max()
                .unwrap_or(0),
            fig("test_acc"),
            fig("test_loss")
        );
    }
    println!("wrote {}", a.out.display());
    Ok(())
}
