//! `lowp linear --task logistic|svm --classes all`: one binary classifier per class (that
//! class +1, every other -1) under ZipML's estimators, and the multiclass prediction by the
//! largest of the ten scores.

use crate::plot::{Curve, PALETTE, Panel, write_curves};
use lowp::data::table::Table;
use lowp::methods::linear::{LinearConfig, accuracy, accuracy_of, train_linear};
use std::io::Write;
use std::path::Path;

/// The table with class `k` labelled +1 and every other class -1.
fn binary(t: &Table, k: usize) -> Table {
    Table {
        target: t
            .target
            .iter()
            .map(|&y| if y as usize == k { 1.0 } else { -1.0 })
            .collect(),
        ..t.clone()
    }
}

/// Trains `classes` one-vs-rest models with `cfg` on `train` (targets the class numbers),
/// printing each model's test accuracy and the multiclass one; with `out`, metrics.jsonl
/// (a line per class and epoch, then a summary line) and curves.svg.
pub fn run(
    cfg: &LinearConfig,
    (train, test): (&Table, &Table),
    classes: usize,
    gpu: Option<&lowp::gpu::GpuContext>,
    (data, out): (&str, Option<&Path>),
) -> Result<(), String> {
    let mut metrics = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let p = dir.join("metrics.jsonl");
            Some(std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let bar = indicatif::ProgressBar::new((classes * cfg.epochs) as u64);
    let mut ws = Vec::with_capacity(classes);
    let mut curves = Vec::with_capacity(classes);
    let mut failed = None;
    for k in 0..classes {
        let (tk, sk) = (binary(train, k), binary(test, k));
        let mut accs = Vec::new();
        let mut refetched = None;
        let w = train_linear(cfg, &tk, Some(&sk), gpu, |m, _| {
            bar.inc(1);
            accs.push(m.test_accuracy.unwrap_or(f64::NAN));
            if let Some(r) = m.refetched {
                *refetched.get_or_insert(0) += r;
            }
            if let Some(f) = metrics.as_mut() {
                let mut line = serde_json::json!({
                    "class": k,
                    "epoch": m.epoch,
                    "train_loss": m.train_loss,
                    "test_loss": m.test_loss,
                    "test_accuracy": m.test_accuracy,
                    "bits_per_sample": m.bits_per_sample,
                    "seconds": m.seconds,
                });
                if let Some(r) = m.refetched {
                    line["refetched"] = r.into();
                }
                if let Err(e) = writeln!(f, "{line}") {
                    failed.get_or_insert(e.to_string());
                }
            }
        })
        .map_err(|e| format!("class {k} against the rest: {e}"))?;
        bar.suspend(|| {
            println!(
                "class {k} against the rest: test accuracy {:.4} (binary, sign of a^T w){}",
                accuracy(&sk, &w),
                refetched.map_or(String::new(), |r| format!(
                    "; {r} rows refetched over {} epochs ({:.1}% of the rows read)",
                    cfg.epochs,
                    100.0 * r as f64 / (cfg.epochs * tk.rows()).max(1) as f64
                ))
            )
        });
        curves.push(Curve {
            name: format!("class {k}"),
            colour: PALETTE[k % PALETTE.len()],
            values: accs,
        });
        ws.push(w);
    }
    bar.finish_and_clear();
    // The class of the largest score: softmax's prediction over the models' weights.
    let stacked: Vec<f32> = ws.concat();
    let task = lowp::methods::linear::Task::Softmax { l2: 0.0, classes };
    let all = accuracy_of(test, &stacked, task).unwrap_or(f64::NAN);
    println!(
        "{classes} classes by the largest score: test accuracy {all:.4} ({} test rows)",
        test.rows()
    );
    if let Some(f) = metrics.as_mut() {
        let line = serde_json::json!({"classes": classes, "multiclass_test_accuracy": all});
        if let Err(e) = writeln!(f, "{line}") {
            failed.get_or_insert(e.to_string());
        }
    }
    if let Some(e) = failed {
        return Err(format!("writing metrics.jsonl: {e}"));
    }
    if let Some(dir) = out {
        let panels = [Panel {
            label: "test accuracy (binary)",
            unit: true,
            curves,
        }];
        let title = format!(
            "one-vs-rest {}, {data}: {} samples, {} bits; {classes} classes {:.2}%",
            match cfg.task {
                lowp::methods::linear::Task::Svm { .. } => "SVM",
                _ => "logistic regression",
            },
            cfg.estimator,
            cfg.bits,
            100.0 * all
        );
        write_curves(dir, &title, &panels)?;
    }
    Ok(())
}
