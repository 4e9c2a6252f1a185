//! `lowp linear`: least squares, logistic regression or an SVM trained by SGD on samples
//! read at low precision (ZipML), or by HALP and the methods it is measured against.

use crate::plot::{Curve, PALETTE, Panel, write_curves};
use clap::ValueEnum;
use lowp::data::table::{Scaler, Table};
use lowp::format::Format;
use lowp::levels::Estimator;
use lowp::methods::halp::{HalpConfig, HalpEpoch, Method, train_halp};
use lowp::methods::linear::{
    EpochMetrics, LevelKind, LinearConfig, lsq_optimum, synthetic_lsq, train_linear,
};
use lowp::methods::optimum::{optimum, strong_convexity};
use lowp::quant::{QuantSpec, Rounding, Scaling};
use std::io::Write;
use std::path::PathBuf;

/// The objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// Least squares, (1/2N) sum (a^T w - b)^2.
    Lsq,
    /// Logistic regression on two classes (labels -1, +1) with an L2 term.
    Logistic,
    /// A support vector machine on two classes (labels -1, +1): the hinge with an L2 term.
    Svm,
    /// Softmax regression over every class (an image folder's, or a file's integer
    /// targets 0, 1, ...) with an L2 term; trains with --method.
    Softmax,
}

/// Arguments of `lowp linear`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A CSV file with a header row, a LIBSVM file (.libsvm or .svm: `label index:value ...`),
    /// an image folder with --classes, or "synthetic" (a linear set with a known optimum; for
    /// logistic regression its classes are the signs of the noisy target).
    #[arg(long, default_value = "synthetic")]
    data: String,
    /// The objective.
    #[arg(long, value_enum, default_value_t = Task::Lsq)]
    task: Task,
    /// The CSV column to predict (numeric); every other numeric column is a feature and
    /// every text column is one-hot encoded.
    #[arg(long)]
    target: Option<String>,
    /// With an image folder (MNIST, CIFAR-10) as --data: the two classes A,B to tell apart
    /// (A is -1, B is +1), every pixel a feature; or "all" (--task logistic): one model per
    /// class against the rest, and the multiclass prediction by the largest score (--task
    /// softmax takes every class without it).
    #[arg(long)]
    classes: Option<String>,
    /// Predict the natural log of the target (e.g. diamonds' price).
    #[arg(long)]
    log_target: bool,
    /// How samples are read: fp32, naive (one quantization), double (two independent ones;
    /// the default but for svm), chebyshev (logistic regression: degree + 1 independent
    /// ones), or refetch (svm, its default: one quantization, and the row read again at
    /// full precision where the margin is within its error band of the hinge).
    #[arg(long, value_parser = |s: &str| s.parse::<Estimator>())]
    estimator: Option<Estimator>,
    /// Train by sgd, lp-sgd, svrg, lp-svrg or halp, or several (comma-separated, or "all")
    /// side by side against one optimum (HALP's comparison: fp32 samples, the iterate in
    /// --bits-bit scaled fixed point for the lp- methods and halp); without it, ZipML's SGD
    /// on quantized samples.
    #[arg(long, value_delimiter = ',', value_parser = parse_method)]
    method: Vec<Vec<Method>>,
    /// The strong-convexity constant that scales HALP's grid (default: the L2 coefficient
    /// for logistic regression, the smallest eigenvalue of A^T A / N for least squares).
    #[arg(long, allow_negative_numbers = true)]
    mu: Option<f64>,
    /// Steps per epoch of --method (default: one pass over the training set).
    #[arg(long)]
    inner: Option<usize>,
    /// L2 coefficient of logistic and softmax regression and of the SVM.
    #[arg(long, default_value_t = 1e-3)]
    l2: f32,
    /// Degree of the Chebyshev estimator's polynomial (1 to 7).
    #[arg(long, default_value_t = 5)]
    degree: usize,
    /// The polynomial approximates sigma(-z) on [-R, R].
    #[arg(long, default_value_t = 4.0)]
    range: f32,
    /// What is held at low precision: data (the samples, as --estimator reads them), model
    /// (the weights, rounded through --model-format after every step) and grad (the
    /// gradient, rounded through --grad-format before the step), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "data", value_parser = ["data", "model", "grad"])]
    quantize: Vec<String>,
    /// The weights' format with --quantize model (any lowp format; a power-of-two scale per
    /// step from the weights' amax, stochastic rounding).
    #[arg(long, default_value = "fixed(wl=8,fl=7)", value_parser = |s: &str| s.parse::<Format>())]
    model_format: Format,
    /// The gradient's format with --quantize grad (scaled and rounded as the model's).
    #[arg(long, default_value = "fixed(wl=8,fl=7)", value_parser = |s: &str| s.parse::<Format>())]
    grad_format: Format,
    /// Bits of each level index (1 to 16); with --method, the bits of the low-precision
    /// iterate, several comma-separated to compare.
    #[arg(long, value_delimiter = ',', default_value = "4")]
    bits: Vec<u32>,
    /// How each column's levels are chosen: uniform or optimal (variance-optimal).
    #[arg(long, default_value = "uniform", value_parser = |s: &str| s.parse::<LevelKind>())]
    levels: LevelKind,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Step size.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Step size lr / epoch (removes the noise floor a constant step leaves).
    #[arg(long)]
    decay: bool,
    /// Draw the samples' rounding anew every epoch instead of once, so that the stored
    /// samples' own limit averages away (the full-precision data stays on the host).
    #[arg(long)]
    resample: bool,
    /// Share of the rows held out as the test set.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Rows of the synthetic set.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Features of the synthetic set (the intercept included).
    #[arg(long, default_value_t = 20)]
    features: usize,
    /// Seed of the split, the quantization and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train: gpu (the adapter lowp picks) or cpu (the reference; the same bits).
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    device: String,
    /// Folder for metrics.jsonl and curves.svg.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One method's name, or "all" of them.
fn parse_method(s: &str) -> Result<Vec<Method>, String> {
    if s == "all" {
        return Ok(vec![
            Method::Sgd,
            Method::LpSgd,
            Method::Svrg,
            Method::LpSvrg,
            Method::Halp,
        ]);
    }
    s.parse::<Method>().map(|m| vec![m])
}

fn check(a: &Args) -> Result<(), String> {
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(format!("--lr {}: a step size must be positive", a.lr));
    }
    if !(a.l2.is_finite() && a.l2 >= 0.0) {
        return Err(format!("--l2 {}: expected a coefficient >= 0", a.l2));
    }
    if a.epochs == 0 || a.batch == 0 {
        return Err("--epochs and --batch must be at least 1".into());
    }
    if !(0.0..1.0).contains(&a.test_fraction) {
        return Err(format!(
            "--test-fraction {}: expected a share in [0, 1)",
            a.test_fraction
        ));
    }
    if let Some(dir) = &a.out
        && dir.join("metrics.jsonl").exists()
    {
        return Err(format!(
            "{} already holds a run (metrics.jsonl): name another --out",
            dir.display()
        ));
    }
    Ok(())
}

/// The table to train on, before scaling.
fn load(a: &Args) -> Result<Table, String> {
    if a.data == "synthetic" {
        if a.task == Task::Softmax {
            return Err(
                "--task softmax needs classes: an image folder, or a CSV or LIBSVM file whose \
                 target holds class numbers 0, 1, ..."
                    .into(),
            );
        }
        if a.rows == 0 || a.features < 2 {
            return Err("a synthetic set needs --rows >= 1 and --features >= 2".into());
        }
        // The generator adds its own intercept; the scaler adds one again: drop its column.
        let (mut t, _) = synthetic_lsq(a.rows, a.features, 0.1, a.seed);
        if matches!(a.task, Task::Logistic | Task::Svm) {
            // Classes by the sign of the noisy linear target.
            t.target
                .iter_mut()
                .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 });
        }
        let d = t.cols();
        t.features = t
            .features
            .chunks(d)
            .flat_map(|r| r[..d - 1].to_vec())
            .collect();
        t.names.pop();
        return Ok(t);
    }
    let path = std::path::Path::new(&a.data);
    let all = a.classes.as_deref() == Some("all");
    if path.is_dir() && (a.task == Task::Softmax || all) {
        match a.task {
            Task::Softmax if a.classes.is_some() => {
                return Err(
                    "--task softmax takes every class of the folder: leave out --classes".into(),
                );
            }
            Task::Lsq => {
                return Err(
                    "--classes all trains one classifier per class against the rest (--task \
                     logistic or svm)"
                        .into(),
                );
            }
            _ => {}
        }
        let loaded = lowp::data::load_dir(path).map_err(|e| e.to_string())?;
        let mut sets = vec![&loaded.train];
        sets.extend(loaded.test.as_ref());
        return Table::from_all_images(&sets).map_err(|e| e.to_string());
    }
    if path.is_dir() {
        let spec = a.classes.as_deref().ok_or_else(|| {
            format!(
                "--data {}: an image folder needs the two classes to tell apart, --classes A,B",
                a.data
            )
        })?;
        let pair: Vec<u8> = spec
            .split(',')
            .map(|c| c.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("--classes {spec:?}: expected two class numbers, A,B"))?;
        let [ca, cb] = pair[..] else {
            return Err(format!(
                "--classes {spec:?}: expected two class numbers, A,B"
            ));
        };
        let loaded = lowp::data::load_dir(path).map_err(|e| e.to_string())?;
        let mut sets = vec![&loaded.train];
        sets.extend(loaded.test.as_ref());
        return Table::from_images(&sets, (ca, cb)).map_err(|e| e.to_string());
    }
    if a.classes.is_some() {
        return Err("--classes takes an image folder as --data".into());
    }
    let libsvm = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("libsvm" | "svm")
    );
    let target = if libsvm {
        "label"
    } else {
        a.target.as_deref().ok_or_else(|| {
            format!(
                "--data {}: name the column to predict with --target",
                a.data
            )
        })?
    };
    let mut t = if libsvm {
        Table::from_libsvm(path)
    } else {
        Table::from_csv(path, target)
    }
    .map_err(|e| e.to_string())?;
    if a.log_target {
        if let Some(v) = t.target.iter().find(|v| **v <= 0.0) {
            return Err(format!("--log-target: the target holds {v}, not positive"));
        }
        t.target.iter_mut().for_each(|v| *v = v.ln());
    }
    if a.task == Task::Softmax
        && let Some(y) = t
            .target
            .iter()
            .find(|&&y| !((0.0..1000.0).contains(&y) && y.fract() == 0.0))
    {
        return Err(format!(
            "--task softmax: the target {target:?} holds {y}; classes are numbered 0, 1, ... \
             (below 1000)"
        ));
    }
    if matches!(a.task, Task::Logistic | Task::Svm) {
        // Two classes: the lesser target is -1, the greater +1.
        let mut values: Vec<f32> = t.target.clone();
        values.sort_by(f32::total_cmp);
        values.dedup();
        if values.len() != 2 {
            return Err(format!(
                "--task {}: the target {:?} takes {} values; two classes are needed",
                if a.task == Task::Svm {
                    "svm"
                } else {
                    "logistic"
                },
                target,
                values.len()
            ));
        }
        t.target
            .iter_mut()
            .for_each(|v| *v = if *v == values[0] { -1.0 } else { 1.0 });
    }
    Ok(t)
}

/// ZipML's training settings from the arguments.
fn zipml_config(
    a: &Args,
    task: lowp::methods::linear::Task,
    estimator: Estimator,
    bits: u32,
) -> LinearConfig {
    LinearConfig {
        task,
        degree: a.degree,
        range: a.range,
        estimator,
        bits,
        levels: a.levels,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        decay: a.decay,
        seed: a.seed,
        resample: a.resample,
        model: rounded(a, "model", a.model_format),
        grad: rounded(a, "grad", a.grad_format),
    }
}

/// Where least-squares SGD ends on the samples a naive or double-sampling run stores (the
/// same levels, seed and samples), for 200 features or fewer (the solves grow as d^3);
/// none with --resample, whose samples change every epoch.
fn stored_limits(
    a: &Args,
    train: &Table,
    estimator: Estimator,
    bits: u32,
) -> Result<Option<lowp::methods::zipml_limits::Limits>, String> {
    let (n, d) = (train.rows(), train.cols());
    if a.task != Task::Lsq
        || !matches!(estimator, Estimator::Naive | Estimator::Double)
        || d > 200
        || a.resample
    {
        return Ok(None);
    }
    let levels =
        lowp::methods::linear::column_levels(train, bits, a.levels).map_err(|e| e.to_string())?;
    let q = lowp::levels::QuantizedMatrix::new(&train.features, (n, d), levels, 2, a.seed);
    Ok(Some(lowp::methods::zipml_limits::limits(train, &q)))
}

/// The model's and the gradient's formats where --quantize rounds them, for the header.
fn rounding_note(a: &Args) -> String {
    let mut parts = Vec::new();
    if let Some(s) = rounded(a, "model", a.model_format) {
        parts.push(format!("; the model rounded through {}", s.format));
    }
    if let Some(s) = rounded(a, "grad", a.grad_format) {
        parts.push(format!("; the gradient through {}", s.format));
    }
    parts.concat()
}

/// How --quantize rounds the model or the gradient through `format`, if it names `what`:
/// a power-of-two scale from the tensor's amax each step, stochastic rounding, saturating.
fn rounded(a: &Args, what: &str, format: Format) -> Option<QuantSpec> {
    a.quantize.iter().any(|q| q == what).then(|| QuantSpec {
        rounding: Rounding::Stochastic { bits: 23 },
        saturate: true,
        scaling: Scaling::Tensor,
        ..QuantSpec::new(format)
    })
}

/// `--out`'s metrics.jsonl, created with its folder.
fn metrics_file(a: &Args) -> Result<Option<std::fs::File>, String> {
    let Some(dir) = &a.out else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = dir.join("metrics.jsonl");
    std::fs::File::create(&p)
        .map(Some)
        .map_err(|e| format!("{}: {e}", p.display()))
}

pub fn run(a: &Args) -> Result<(), String> {
    check(a)?;
    let table = load(a)?;
    let order = lowp::data::dataset::shuffled(table.rows(), a.seed, 0x5b17);
    let n_test = (table.rows() as f64 * a.test_fraction).round() as usize;
    let (test_rows, train_rows) = order.split_at(n_test);
    if train_rows.is_empty() {
        return Err(format!(
            "{} rows with --test-fraction {} leave none to train on",
            table.rows(),
            a.test_fraction
        ));
    }
    let raw_train = table.select(train_rows);
    let scaler = Scaler::fit(&raw_train);
    let train = scaler.apply(&raw_train);
    let test = (n_test > 0).then(|| scaler.apply(&table.select(test_rows)));
    let task = match a.task {
        Task::Lsq => lowp::methods::linear::Task::Lsq,
        Task::Logistic => lowp::methods::linear::Task::Logistic { l2: a.l2 },
        Task::Svm => lowp::methods::linear::Task::Svm { l2: a.l2 },
        Task::Softmax => lowp::methods::linear::Task::Softmax {
            l2: a.l2,
            classes: table.target.iter().fold(0f32, |m, &y| m.max(y)) as usize + 1,
        },
    };
    let name = match a.task {
        Task::Lsq => "least squares",
        Task::Logistic => "logistic regression",
        Task::Svm => "SVM (hinge)",
        Task::Softmax => "softmax regression",
    };
    let data_low = a.quantize.iter().any(|q| q == "data");
    let default_estimator = match a.task {
        _ if !data_low => Estimator::Fp32,
        Task::Svm => Estimator::Refetch,
        _ => Estimator::Double,
    };
    if let Some(e) = a.estimator.filter(|&e| !data_low && e != Estimator::Fp32) {
        return Err(format!(
            "--estimator {e} reads quantized samples, but --quantize leaves out data: add it, \
             or use --estimator fp32"
        ));
    }
    if !a.method.is_empty() && a.quantize.iter().any(|q| q != "data") {
        return Err(
            "--quantize model,grad rounds ZipML's SGD; --method's low-precision \
                    iterate is set by --bits"
                .into(),
        );
    }
    if !a.method.is_empty() {
        if a.task == Task::Svm {
            return Err("--task svm trains with ZipML's estimators (--estimator \
                        fp32|naive|double|refetch), not --method: the hinge is not smooth, \
                        which HALP's and SVRG's analysis needs"
                .into());
        }
        let mut methods: Vec<Method> = Vec::new();
        for m in a.method.iter().flatten() {
            if !methods.contains(m) {
                methods.push(*m);
            }
        }
        return run_method(a, &methods, (task, name), (&train, test.as_ref()));
    }
    let [bits] = a.bits[..] else {
        return Err(format!(
            "--bits {:?}: ZipML's SGD takes one width (several are for --method)",
            a.bits
        ));
    };
    if a.task == Task::Softmax {
        return Err(
            "--task softmax trains with --method sgd|lp-sgd|svrg|lp-svrg|halp (ZipML's \
             estimators take lsq, logistic and svm)"
                .into(),
        );
    }
    if a.classes.as_deref() == Some("all") {
        let Some(test) = test.as_ref() else {
            return Err("--classes all needs a test set (--test-fraction above 0)".into());
        };
        let classes = table.target.iter().fold(0f32, |m, &y| m.max(y)) as usize + 1;
        let estimator = a.estimator.unwrap_or(default_estimator);
        println!(
            "one-vs-rest {name} on {} ({classes} classes, {} training rows, {} \
             test rows, {} features with the intercept); {estimator} samples, {bits} bits, {} \
             levels",
            a.data,
            train.rows(),
            test.rows(),
            train.cols(),
            a.levels
        );
        let cfg = zipml_config(a, task, estimator, bits);
        let ctx = match a.device.as_str() {
            "gpu" => Some(lowp::gpu::GpuContext::new().map_err(|e| e.to_string())?),
            _ => None,
        };
        return crate::one_vs_rest::run(
            &cfg,
            (&train, test),
            classes,
            ctx.as_ref(),
            (&a.data, a.out.as_deref()),
        );
    }
    let estimator = a.estimator.unwrap_or(default_estimator);
    // Least squares: the exact optimum, for the gap.
    let optimum = (a.task == Task::Lsq).then(|| lsq_optimum(&train).1);
    println!(
        "{name} on {} ({} training rows, {} test rows, {} features with the intercept); \
         {} samples, {} bits, {} levels{}",
        a.data,
        train.rows(),
        n_test,
        train.cols(),
        estimator,
        bits,
        a.levels,
        rounding_note(a)
    );
    if let Some(o) = optimum {
        println!("optimum_loss (exact, f64): {o:.6e}");
    }
    let limits = stored_limits(a, &train, estimator, bits)?;
    let limit = limits.map(|l| match estimator {
        Estimator::Naive => l.naive,
        _ => l.double,
    });
    if let Some(l) = limits {
        println!(
            "where SGD ends on these stored samples (exact, f64): naive gap {:.3e} (the ridge \
             problem naive sampling is biased toward: {:.3e}), double gap {:.3e}",
            l.naive, l.ridge, l.double
        );
    }
    let cfg = zipml_config(a, task, estimator, bits);
    let mut metrics = metrics_file(a)?;
    let bar = indicatif::ProgressBar::new(a.epochs as u64);
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut failed = None;
    let ctx = match a.device.as_str() {
        "gpu" => Some(lowp::gpu::GpuContext::new().map_err(|e| e.to_string())?),
        _ => None,
    };
    train_linear(&cfg, &train, test.as_ref(), ctx.as_ref(), |m, _| {
        let gap = optimum.map(|o| m.train_loss - o);
        bar.suspend(|| {
            println!(
                "epoch {:>3}  train_loss {:.6e}{}  test_loss {}{}  {:.0} bits/sample{}  {:.2}s",
                m.epoch,
                m.train_loss,
                gap.map_or(String::new(), |g| format!("  gap {g:.3e}")),
                m.test_loss.map_or("-".into(), |v| format!("{v:.6e}")),
                m.test_accuracy
                    .map_or(String::new(), |v| format!("  test_accuracy {v:.4}")),
                m.bits_per_sample,
                m.refetched
                    .map_or(String::new(), |r| format!(" ({r} rows refetched)")),
                m.seconds
            )
        });
        bar.inc(1);
        if let Some(f) = metrics.as_mut() {
            let mut line = serde_json::json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "test_loss": m.test_loss,
                "lr": m.lr,
                "bits_per_sample": m.bits_per_sample,
                "seconds": m.seconds,
            });
            if let (Some(o), Some(g)) = (optimum, gap) {
                line["optimum_loss"] = o.into();
                line["gap"] = g.into();
            }
            if let (Some(l), Some(lim)) = (limits, limit) {
                line["limit_gap"] = lim.into();
                line["ridge_gap"] = l.ridge.into();
            }
            if let Some(acc) = m.test_accuracy {
                line["test_accuracy"] = acc.into();
            }
            if let Some(r) = m.refetched {
                line["refetched"] = r.into();
            }
            if let Err(e) = writeln!(f, "{line}") {
                failed.get_or_insert(e.to_string());
            }
        }
        history.push(m.clone());
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(e) = failed {
        return Err(format!("writing metrics.jsonl: {e}"));
    }
    if let Some(dir) = &a.out {
        let mut loss = vec![
            Curve {
                name: "train".into(),
                colour: "#1f77b4",
                values: history.iter().map(|m| m.train_loss).collect(),
            },
            Curve {
                name: "test".into(),
                colour: "#ff7f0e",
                values: history
                    .iter()
                    .map(|m| m.test_loss.unwrap_or(f64::NAN))
                    .collect(),
            },
        ];
        let second = match optimum {
            Some(o) => {
                loss.push(Curve {
                    name: "optimum".into(),
                    colour: "#2ca02c",
                    values: vec![o; history.len()],
                });
                Panel {
                    label: "train loss - optimum",
                    unit: false,
                    curves: vec![Curve {
                        name: "gap".into(),
                        colour: "#d62728",
                        values: history.iter().map(|m| m.train_loss - o).collect(),
                    }],
                }
            }
            None => Panel {
                label: "test accuracy",
                unit: true,
                curves: vec![Curve {
                    name: "test".into(),
                    colour: "#ff7f0e",
                    values: history
                        .iter()
                        .map(|m| m.test_accuracy.unwrap_or(f64::NAN))
                        .collect(),
                }],
            },
        };
        let panels = [
            Panel {
                label: "loss",
                unit: false,
                curves: loss,
            },
            second,
        ];
        let title = format!(
            "{name}, {} — {} samples, {} bits, {} levels",
            a.data, estimator, bits, a.levels
        );
        write_curves(dir, &title, &panels)?;
    }
    Ok(())
}

/// An epoch's figures and its test accuracy (classification).
type Epoch = (HalpEpoch, Option<f64>);

/// One training of `lowp linear --method`: the method, its bits (None for fp32), and its
/// epochs' figures with the test loss and accuracy.
struct MethodRun {
    method: Method,
    bits: Option<u32>,
    history: Vec<Epoch>,
    error: Option<String>,
}

impl MethodRun {
    fn label(&self) -> String {
        match self.bits {
            Some(b) => format!("{} {b}-bit", self.method),
            None => format!("{} fp32", self.method),
        }
    }
}

/// `lowp linear --method`: HALP and the methods it is measured against, on the GPU or the
/// CPU reference, each against one f64 optimum, with the gap and the gradient's norm every
/// epoch; several methods and bit widths go side by side into one metrics file and chart.
fn run_method(
    a: &Args,
    methods: &[Method],
    (task, name): (lowp::methods::linear::Task, &str),
    (train, test): (&Table, Option<&Table>),
) -> Result<(), String> {
    if a.estimator.is_some_and(|e| e != Estimator::Fp32) {
        return Err(
            "--method trains on fp32 samples; --estimator belongs to ZipML's SGD \
                    (leave --method out)"
                .into(),
        );
    }
    if a.mu.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
        let m = a.mu.unwrap_or_default();
        return Err(format!("--mu {m}: expected a positive number"));
    }
    if a.inner == Some(0) {
        return Err("--inner must be at least 1".into());
    }
    if let Some(b) = a.bits.iter().find(|b| !(2..=24).contains(*b)) {
        return Err(format!(
            "--bits {b}: the low-precision iterate takes 2 to 24 bits"
        ));
    }
    let (mu, source) = match a.mu {
        Some(m) => (m, "--mu"),
        None => strong_convexity(train, task),
    };
    let (optimum, _, optimum_grad, solver) = optimum(train, task);
    let list = |v: Vec<String>| v.join(", ");
    println!(
        "{name} on {} ({} training rows, {} features with the intercept); {} at {} bits, \
         lr {}, batch {}; mu {mu:.6e} ({source}); optimum_loss {optimum:.12e} (f64 {solver}, \
         gradient norm there {optimum_grad:.1e})",
        a.data,
        train.rows(),
        train.cols(),
        list(methods.iter().map(|m| m.to_string()).collect()),
        list(a.bits.iter().map(|b| b.to_string()).collect()),
        a.lr,
        a.batch,
    );
    let mut runs: Vec<MethodRun> = Vec::new();
    for &method in methods {
        if method.low_precision() {
            runs.extend(a.bits.iter().map(|&b| MethodRun {
                method,
                bits: Some(b),
                history: Vec::new(),
                error: None,
            }));
        } else {
            runs.push(MethodRun {
                method,
                bits: None,
                history: Vec::new(),
                error: None,
            });
        }
    }
    let mut metrics = metrics_file(a)?;
    let bar = indicatif::ProgressBar::new((a.epochs * runs.len()) as u64);
    let mut failed = None;
    let ctx = match a.device.as_str() {
        "gpu" => Some(lowp::gpu::GpuContext::new().map_err(|e| e.to_string())?),
        _ => None,
    };
    for run in runs.iter_mut() {
        let label = run.label();
        let cfg = HalpConfig {
            method: run.method,
            task,
            bits: run.bits.unwrap_or(32),
            mu: Some(mu),
            inner: a.inner,
            epochs: a.epochs,
            batch: a.batch,
            lr: a.lr,
            seed: a.seed,
        };
        let history = &mut run.history;
        let result = train_halp(&cfg, train, optimum, ctx.as_ref(), |m, w| {
            let test_loss = test.map(|t| lowp::methods::optimum::objective(t, w, task));
            let test_accuracy = test.and_then(|t| lowp::methods::linear::accuracy_of(t, w, task));
            bar.suspend(|| {
                println!(
                    "{label:<14} epoch {:>3}  train_loss {:.9e}  gap {:.3e}  grad_norm {:.3e}{}{}  {:.2}s",
                    m.epoch,
                    m.train_loss,
                    m.gap,
                    m.grad_norm,
                    m.scale
                        .map_or(String::new(), |s| format!("  scale {s:.3e}")),
                    test_accuracy.map_or(String::new(), |v| format!("  test_accuracy {v:.4}")),
                    m.seconds
                )
            });
            bar.inc(1);
            if let Some(f) = metrics.as_mut() {
                let line = serde_json::json!({
                    "epoch": m.epoch,
                    "run": label,
                    "method": cfg.method.to_string(),
                    "bits": run.bits,
                    "train_loss": m.train_loss,
                    "optimum_loss": optimum,
                    "optimum_grad_norm": optimum_grad,
                    "device": a.device,
                    "gap": m.gap,
                    "grad_norm": m.grad_norm,
                    "mu": mu,
                    "scale": m.scale,
                    "saturated": m.saturated,
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                    "lr": a.lr,
                    "seconds": m.seconds,
                });
                if let Err(e) = writeln!(f, "{line}") {
                    failed.get_or_insert(e.to_string());
                }
            }
            history.push((m.clone(), test_accuracy));
        });
        if let Err(e) = result {
            bar.suspend(|| eprintln!("{label}: {e}"));
            run.error = Some(e.to_string());
        }
    }
    bar.finish_and_clear();
    if let Some(e) = failed {
        return Err(format!("writing metrics.jsonl: {e}"));
    }
    if runs.len() > 1 {
        println!(
            "\n{:<16} {:>12} {:>14} {:>10}",
            "run", "final gap", "test accuracy", "s/epoch"
        );
        for r in &runs {
            let last = r.history.last();
            let secs = r.history.iter().map(|(m, _)| m.seconds).sum::<f64>()
                / r.history.len().max(1) as f64;
            println!(
                "{:<16} {:>12} {:>14} {:>10.2}{}",
                r.label(),
                last.map_or("-".into(), |(m, _)| format!("{:.3e}", m.gap)),
                last.and_then(|(_, acc)| *acc)
                    .map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
                secs,
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ({e})"))
            );
        }
    }
    if let Some(dir) = &a.out {
        let curve = |i: usize, r: &MethodRun, f: &dyn Fn(&Epoch) -> f64| Curve {
            name: r.label(),
            colour: PALETTE[i % PALETTE.len()],
            values: r.history.iter().map(f).collect(),
        };
        let classify = runs
            .iter()
            .any(|r| r.history.iter().any(|(_, acc)| acc.is_some()));
        let panels = [
            Panel {
                label: "log10 (train loss - optimum)",
                unit: false,
                curves: runs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| curve(i, r, &|(m, _)| m.gap.max(1e-300).log10()))
                    .collect(),
            },
            match classify {
                true => Panel {
                    label: "test accuracy",
                    unit: true,
                    curves: runs
                        .iter()
                        .enumerate()
                        .map(|(i, r)| curve(i, r, &|(_, acc)| acc.unwrap_or(f64::NAN)))
                        .collect(),
                },
                false => Panel {
                    label: "train loss",
                    unit: false,
                    curves: runs
                        .iter()
                        .enumerate()
                        .map(|(i, r)| curve(i, r, &|(m, _)| m.train_loss))
                        .collect(),
                },
            },
        ];
        let title = format!(
            "{name}, {}: lr {}, batch {}, mu {mu:.2e}",
            a.data, a.lr, a.batch
        );
        write_curves(dir, &title, &panels)?;
    }
    match runs.iter().find_map(|r| r.error.clone()) {
        Some(e) if runs.len() == 1 => Err(e),
        Some(_) => Err("a run failed (see the table above)".into()),
        None => Ok(()),
    }
}
