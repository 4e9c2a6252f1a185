//! `lowp train`: train a model with every tensor in the format its precision map gives.

use crate::args::{self, Device};
use lowp::atomic_file::write_atomic;
use lowp::data::{Dataset, load_dir, synthetic::synthetic};
use lowp::format::Format;
use lowp::gpu::memory::{MemoryReport, Purpose, wgpu_memory_bytes};
use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::model_file::ModelFile;
use lowp::train::plan::{LossKind, LossScale, LrSchedule, OptimKind, Plan, RoleBytes, TrainConfig};
use lowp::train::precision::PrecisionMap;
use lowp::train::run::{self, RunOptions, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The model `lowp train` trains: a built-in one, or one described in a TOML file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelArg {
    /// Multi-layer perceptron (hidden widths from --hidden).
    Mlp,
    /// LeNet-5 (two 5x5 convolutions with max pooling, then 120, 84, classes).
    Lenet,
    /// CIFAR ResNet-8 (He et al. 2016: one basic block per stage, option-A shortcuts).
    Resnet8,
    /// CIFAR ResNet-20 (three basic blocks per stage).
    Resnet20,
    /// A model file (nodes, their kinds, parameters and inputs; see examples/models).
    File(PathBuf),
}

impl ModelArg {
    /// The model's name: the built-in's, or the file's stem.
    fn name(&self) -> String {
        match self {
            ModelArg::File(p) => p
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// Parses `--model`: a built-in's name or a `.toml` file.
fn model_arg(text: &str) -> Result<ModelArg, String> {
    Ok(match text {
        "mlp" => ModelArg::Mlp,
        "lenet" => ModelArg::Lenet,
        "resnet8" => ModelArg::Resnet8,
        "resnet20" => ModelArg::Resnet20,
        f if f.ends_with(".toml") => ModelArg::File(PathBuf::from(f)),
        other => {
            return Err(format!(
                "{other:?} is neither a built-in model (mlp, lenet, resnet8, resnet20) nor a \
                 .toml model file"
            ));
        }
    })
}

/// The losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LossArg {
    /// Softmax cross-entropy.
    Xent,
    /// Mean squared error against one-hot targets.
    Mse,
}

/// The optimizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerArg {
    /// SGD with momentum, weight decay and optional Nesterov.
    Sgd,
    /// Adam (first moment `.momentum`, second moment `.moment2`).
    Adam,
    /// Bit-centred SVRG (HALP): an fp32 centre and full gradient, the offset from the
    /// centre in the weights' format, a full-gradient pass every --inner steps.
    Halp,
}

/// Learning-rate schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// The same rate every step.
    Constant,
    /// Cosine decay from --lr to 0 over the whole run (all epochs).
    Cosine,
}

/// Arguments of `lowp train`.
#[derive(clap::Args)]
pub struct Args {
    /// The model: mlp, lenet, resnet8, resnet20, or a model file FILE.toml (see
    /// examples/models).
    #[arg(long, default_value = "mlp", value_parser = model_arg)]
    model: ModelArg,
    /// A folder with MNIST/Fashion-MNIST IDX files or CIFAR-10 binaries (default: a built-in synthetic set).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training images: with no separate test set, the rest are the test set (default 80%,
    /// or 6000 of the 7000 synthetic images); with one, a seeded subset of the training set.
    #[arg(long)]
    train_size: Option<usize>,
    /// Use at most this many test images (default: all).
    #[arg(long)]
    test_size: Option<usize>,
    /// Precision map (TOML); default: everything fp32.
    #[arg(long)]
    precision: Option<PathBuf>,
    /// Keep master weights (`LAYER.master` in the map; also when the map says `master = true`).
    #[arg(long)]
    master: bool,
    /// Print the resolved precision map with each tensor's stored bytes, and stop.
    #[arg(long)]
    show_precision: bool,
    /// Passes over the training set.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Learning-rate schedule over the run.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Constant)]
    lr_schedule: ScheduleArg,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Adam's moment decays, beta1,beta2.
    #[arg(long, default_value = "0.9,0.999")]
    betas: String,
    /// Adam's epsilon.
    #[arg(long, default_value_t = 1e-8)]
    eps: f32,
    /// Loss scaling: none, static:S, or dynamic[:INIT[:INTERVAL]] (S, INIT powers of two;
    /// dynamic defaults to 65536 and 200 steps). Dynamic scaling skips steps whose gradient
    /// quantizers overflow and halves the scale.
    #[arg(long, default_value = "none")]
    loss_scale: String,
    /// Also checkpoint every N steps (a checkpoint is always written at each epoch's end when
    /// --out is given).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Also build the all-fp32 trainer of the same model and batch first, to report its
    /// device memory beside this run's (it needs that memory for a moment).
    #[arg(long)]
    fp32_baseline: bool,
    /// Continue from a checkpoint (a .safetensors file, or a folder holding
    /// checkpoint.safetensors) with the same settings.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Loss.
    #[arg(long, value_enum, default_value_t = LossArg::Xent)]
    loss: LossArg,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    optimizer: OptimizerArg,
    /// --optimizer halp: steps between full-gradient passes (default: one epoch).
    #[arg(long)]
    inner: Option<u64>,
    /// Hidden widths of the MLP.
    #[arg(long, default_value = "256,128")]
    hidden: String,
    /// Seed of initialization, shuffling, splitting and stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for metrics.jsonl, curves.svg and checkpoint.safetensors.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run the --out folder already holds (its metrics, plot, summary and
    /// checkpoints) instead of refusing to.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Train on the GPU or on the CPU reference.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
}

/// The files a run writes into its folder (what --overwrite removes).
const RUN_FILES: [&str; 6] = [
    "metrics.jsonl",
    "settings.json",
    "checkpoint.safetensors",
    "checkpoint.prev.safetensors",
    "curves.svg",
    "summary.json",
];

/// Parses `--loss-scale`.
fn loss_scale(text: &str) -> Result<LossScale, String> {
    let bad = || {
        format!(
            "--loss-scale {text:?}: expected none, static:S or dynamic[:INIT[:INTERVAL]] (S and INIT powers of two)"
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    let num = |s: &str| s.trim().parse::<f32>().map_err(|_| bad());
    let ls = match parts[..] {
        ["none"] => LossScale::None,
        ["static", s] => LossScale::Static(num(s)?),
        ["dynamic"] => LossScale::Dynamic {
            init: 65536.0,
            interval: 200,
        },
        ["dynamic", s] => LossScale::Dynamic {
            init: num(s)?,
            interval: 200,
        },
        ["dynamic", s, n] => LossScale::Dynamic {
            init: num(s)?,
            interval: n.trim().parse().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    };
    ls.validate()
        .map_err(|e| format!("--loss-scale {text:?}: {e}"))?;
    Ok(ls)
}

/// Parses `--betas`.
fn betas(text: &str) -> Result<(f32, f32), String> {
    let v: Vec<f32> = text
        .split(',')
        .map(|s| s.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--betas {text:?}: expected two numbers like 0.9,0.999"))?;
    match v[..] {
        [b1, b2] if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) => Ok((b1, b2)),
        _ => Err(format!(
            "--betas {text:?}: expected two numbers in [0, 1) like 0.9,0.999"
        )),
    }
}

/// The settings a checkpoint must share with the run that resumes it.
fn run_settings(a: &Args, src: &Sources) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    // The files' contents, so that `lowp eval` rebuilds the run without them.
    if let Some(t) = &src.model {
        m.insert("model_text".into(), t.clone());
    }
    if let Some(t) = &src.map {
        m.insert("precision_text".into(), t.clone());
    }
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put(
        "model",
        match &a.model {
            ModelArg::File(p) => format!("{} ({:016x})", p.display(), content_hash(p)),
            other => other.name(),
        },
    );
    put("hidden", a.hidden.clone());
    put(
        "data",
        // The folder itself, whichever path names it.
        a.data.as_ref().map_or("synthetic".into(), |d| {
            std::fs::canonicalize(d)
                .unwrap_or_else(|_| d.clone())
                .display()
                .to_string()
        }),
    );
    put(
        "train_size",
        a.train_size.map_or("all".into(), |n| n.to_string()),
    );
    put(
        "test_size",
        a.test_size.map_or("all".into(), |n| n.to_string()),
    );
    put("batch", a.batch.to_string());
    put("seed", a.seed.to_string());
    put("loss", format!("{:?}", a.loss).to_lowercase());
    put("optimizer", format!("{:?}", a.optimizer).to_lowercase());
    if let Some(t) = a.inner {
        put("inner", t.to_string());
    }
    put("lr", a.lr.to_string());
    put("lr_schedule", format!("{:?}", a.lr_schedule).to_lowercase());
    if a.lr_schedule == ScheduleArg::Cosine {
        // The decay spans the whole run, so its length is part of the schedule.
        put("epochs", a.epochs.to_string());
    }
    put("momentum", a.momentum.to_string());
    put("betas", a.betas.clone());
    put("eps", a.eps.to_string());
    put("weight_decay", a.weight_decay.to_string());
    put("nesterov", a.nesterov.to_string());
    put("loss_scale", a.loss_scale.clone());
    put("master", a.master.to_string());
    put(
        "precision",
        // The map's content (FNV-1a of its text), so that an edited map is not resumed silently.
        a.precision.as_ref().map_or("fp32".into(), |p| {
            format!("{} ({:016x})", p.display(), content_hash(p))
        }),
    );
    put("device", format!("{:?}", a.device).to_lowercase());
    m
}

fn data(a: &Args) -> Result<(Dataset, Dataset), String> {
    let (mut train, mut test) = match &a.data {
        None => synthetic(7000, a.seed).split(a.train_size.unwrap_or(6000), a.seed)?,
        Some(dir) => {
            let l = load_dir(dir).map_err(|e| e.to_string())?;
            match l.test {
                Some(test) => match a.train_size {
                    // A seeded subset of the training set.
                    Some(n) if n < l.train.len() => (l.train.split(n, a.seed)?.0, test),
                    _ => (l.train, test),
                },
                None => {
                    let n = a.train_size.unwrap_or(l.train.len() * 4 / 5);
                    l.train.split(n, a.seed)?
                }
            }
        }
    };
    if let Some(n) = a.test_size {
        if n == 0 {
            return Err("--test-size must be at least 1".into());
        }
        if n < test.len() {
            let keep: Vec<usize> = (0..n).collect();
            test = test.subset(&keep, &test.name.clone());
        }
    }
    let stats = train.channel_stats();
    train.normalize(&stats);
    test.normalize(&stats);
    Ok((train, test))
}

/// `a` as a percentage of `b`, or blank where `b` is 0.
fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        String::new()
    } else {
        format!("{:5.1}%", 100.0 * a as f64 / b as f64)
    }
}

fn show(r: &RoleBytes, fp32: &RoleBytes, when: &str) {
    println!("memory ({when}): bytes stored vs all-fp32");
    for (name, a, b) in [
        ("weights", r.weights, fp32.weights),
        ("activations", r.activations, fp32.activations),
        ("gradients", r.gradients, fp32.gradients),
        ("optimizer", r.optimizer, fp32.optimizer),
        ("master", r.master, fp32.master),
        ("total", r.total(), fp32.total()),
    ] {
        println!("  {name:<12} {a:>12} {b:>12}  {}", pct(a, b));
    }
}

/// Prints the device memory a trainer's buffers take, by purpose, next to the all-fp32
/// trainer's, and what wgpu counts for every buffer on the device.
fn show_device(ours: &MemoryReport, fp32: Option<&MemoryReport>, when: &str, wgpu_bytes: u64) {
    let zero = MemoryReport::default();
    match fp32 {
        Some(_) => println!("device memory ({when}): bytes of every buffer, this map vs all-fp32"),
        None => println!(
            "device memory ({when}): bytes of every buffer (--fp32-baseline adds the fp32 run's)"
        ),
    }
    let row = |name: &str, a: u64, b: u64| match fp32 {
        Some(_) => println!("  {name:<20} {a:>12} {b:>12}  {}", pct(a, b)),
        None => println!("  {name:<20} {a:>12}"),
    };
    let base = fp32.unwrap_or(&zero);
    for p in Purpose::ALL {
        let (a, b) = (ours.of(p), base.of(p));
        if a + b > 0 {
            row(p.name(), a, b);
        }
    }
    row("total", ours.total(), base.total());
    println!(
        "  wgpu counts {wgpu_bytes} bytes of buffer memory on the device (every buffer, its own included)"
    );
}

/// The plot's title: model, precision map, optimizer and batch.
fn plot_title(a: &Args) -> String {
    let map = a
        .precision
        .as_ref()
        .and_then(|p| p.file_stem())
        .map_or("fp32".into(), |s| s.to_string_lossy().into_owned());
    format!(
        "lowp train: {}, map {map}, {}, lr {}, batch {}",
        a.model.name(),
        format!("{:?}", a.optimizer).to_lowercase(),
        a.lr,
        a.batch
    )
}

/// The plot's panels from the metrics lines: losses, accuracies, the learning rate, and the
/// loss scale where the run scaled its loss.
fn plot_panels(lines: &[serde_json::Value]) -> Vec<crate::plot::Panel> {
    use crate::plot::{Curve, Panel};
    let of = |key: &str| -> Vec<f64> {
        lines
            .iter()
            .map(|l| l[key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let curve = |name: &str, colour, key: &str| Curve {
        name: name.into(),
        colour,
        values: of(key),
    };
    let mut panels = vec![
        Panel {
            label: "loss",
            unit: false,
            curves: vec![
                curve("train loss", "#c0392b", "train_loss"),
                curve("test loss", "#e67e22", "test_loss"),
            ],
        },
        Panel {
            label: "accuracy",
            unit: true,
            curves: vec![
                curve("train accuracy", "#2471a3", "train_acc"),
                curve("test accuracy", "#1e8449", "test_acc"),
            ],
        },
        Panel {
            label: "learning rate",
            unit: false,
            curves: vec![curve("learning rate", "#555555", "lr")],
        },
    ];
    if lines.iter().any(|l| l.get("loss_scale").is_some()) {
        panels.push(Panel {
            label: "loss scale",
            unit: false,
            curves: vec![curve("loss scale", "#7d3c98", "loss_scale")],
        });
    }
    panels
}

/// The texts of the model file and the precision map a run names.
#[derive(Default)]
pub struct Sources {
    /// The model file's text (a built-in model has none).
    pub model: Option<String>,
    /// The precision map's text (the all-fp32 default has none).
    pub map: Option<String>,
}

impl Sources {
    /// Reads the files `a` names.
    fn read(a: &Args) -> Result<Sources, String> {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        Ok(Sources {
            model: match &a.model {
                ModelArg::File(p) => Some(read(p)?),
                _ => None,
            },
            map: a.precision.as_ref().map(read).transpose()?,
        })
    }
}

/// The precision map `a` names (all fp32 without one).
fn map_of(a: &Args, src: &Sources) -> Result<PrecisionMap, String> {
    Ok(match (&a.precision, &src.map) {
        (Some(p), Some(text)) => {
            PrecisionMap::parse(text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        _ => PrecisionMap::uniform(Format::FP32),
    })
}

/// Prints `--show-precision`: each tensor's resolved storage, the rule that decided it and
/// its bytes at the batch size, accumulators as the GEMMs use them, shadowed rules, memory.
fn show_precision(plan: &Plan, map: &PrecisionMap, batch: usize) {
    let sizes = plan.tensor_sizes(batch);
    let names: Vec<String> = plan.table().into_iter().map(|(n, _)| n).collect();
    let rules = map.resolve(&names).unwrap_or_default();
    println!(
        "{:<16} {:<28} {:<14} {:<8} {:<7} {:<22} {:>10}",
        "tensor", "format", "rounding", "saturate", "scaling", "decided by", "bytes"
    );
    for (name, asg) in plan.table() {
        let bytes: usize = sizes
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(n, p, e)| plan.spec(n, 0, *p).stored_bytes(*e))
            .sum();
        let rule = rules.iter().find(|(n, _, _)| *n == name).and_then(|r| r.2);
        let by = match rule {
            Some(i) => format!("rule {} ({})", i + 1, map.rules[i].pattern),
            None if name.ends_with(".acc") => "no rule: fp32".into(),
            None => "default".into(),
        };
        let format = match name.strip_suffix(".acc").map(|l| plan.accumulator(l)) {
            Some(lowp::accum::Accumulator::Fp32) => "fp32 (hardware sum)".to_string(),
            Some(lowp::accum::Accumulator::Emulated { format, chunk }) => {
                format!("{format}, chunk {chunk}")
            }
            None => asg.format.to_string(),
        };
        let scaling = match asg.scaling {
            lowp::quant::Scaling::None => "none",
            lowp::quant::Scaling::Tensor => "tensor",
        };
        println!(
            "{name:<16} {format:<28} {:<14} {:<8} {scaling:<7} {by:<22} {bytes:>10}",
            asg.rounding.to_string(),
            asg.saturate
        );
    }
    println!(
        "LAYER.acc is the accumulator of the layer's GEMMs (forward, backward data, weight \
         gradient): fp32 unless a rule names it (a default does not reach it); an emulated one \
         sums `chunk` products in f32, then rounds the sum to its format"
    );
    for w in map.shadowed(&names) {
        println!("warning: {w}");
    }
    let (r, fp32) = plan.memory(batch);
    show(&r, &fp32, &format!("batch {batch}"));
}

/// The training plan `a` describes, for the data set `train`.
pub fn plan_of(a: &Args, train: &Dataset, src: &Sources) -> Result<Plan, String> {
    let hidden: Vec<usize> = a
        .hidden
        .split(',')
        .map(|s| s.trim().parse::<usize>().ok().filter(|&h| h > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            format!(
                "--hidden {:?}: expected positive widths like 256,128",
                a.hidden
            )
        })?;
    let model = match &a.model {
        ModelArg::Lenet => Model::lenet(train.shape, train.classes)?,
        ModelArg::Resnet8 => Model::resnet(1, train.shape, train.classes)?,
        ModelArg::Resnet20 => Model::resnet(3, train.shape, train.classes)?,
        ModelArg::File(p) => ModelFile::parse(src.model.as_deref().unwrap_or_default())
            .and_then(|m| m.build(&train.shape, train.classes))
            .map_err(|e| format!("{}: {e}", p.display()))?,
        _ => Model::mlp(train.image_len(), &hidden, train.classes),
    };
    let map = map_of(a, src)?;
    let (beta1, beta2) = betas(&a.betas)?;
    let config = TrainConfig {
        loss: match a.loss {
            LossArg::Xent => LossKind::CrossEntropy,
            LossArg::Mse => LossKind::Mse,
        },
        kind: match a.optimizer {
            OptimizerArg::Sgd => OptimKind::Sgd,
            OptimizerArg::Adam => OptimKind::Adam,
            OptimizerArg::Halp => OptimKind::Halp,
        },
        lr: a.lr,
        schedule: match a.lr_schedule {
            ScheduleArg::Constant => LrSchedule::Constant,
            ScheduleArg::Cosine => LrSchedule::Cosine {
                steps: (train.len() / a.batch) as u64 * a.epochs as u64,
            },
        },
        momentum: a.momentum,
        beta1,
        beta2,
        eps: a.eps,
        weight_decay: a.weight_decay,
        nesterov: a.nesterov,
        loss_scale: loss_scale(&a.loss_scale)?,
        inner: match (a.optimizer, a.inner) {
            (_, Some(0)) => return Err("--inner must be at least 1".into()),
            (OptimizerArg::Halp, t) => t.unwrap_or(0),
            (_, Some(_)) => return Err("--inner belongs to --optimizer halp".into()),
            (_, None) => 0,
        },
    };
    let master = a.master || map.master;
    Plan::new(model, &map, master, config, a.seed).map_err(|e| e.to_string())
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    if a.batch == 0 || a.epochs == 0 {
        return Err("--batch and --epochs must be at least 1".into());
    }
    // A resumed run writes somewhere: into the run folder it resumes, or into --out.
    if let (Some(r), None) = (&a.resume, &a.out)
        && r.is_file()
    {
        return Err(format!(
            "--resume {}: a checkpoint file needs --out DIR, the folder the continued run writes \
             to (or resume its run folder, which the run goes on writing)",
            r.display()
        ));
    }
    // A folder that holds a run is continued with --resume, or replaced only when asked.
    if let (Some(dir), None) = (&a.out, &a.resume) {
        if a.overwrite {
            for f in RUN_FILES
                .into_iter()
                .map(|f| dir.join(f))
                .filter(|f| f.exists())
            {
                std::fs::remove_file(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            }
        }
        let held: Vec<&str> = ["metrics.jsonl", "checkpoint.safetensors"]
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .collect();
        if !held.is_empty() {
            return Err(format!(
                "{} already holds a run ({}): continue it with --resume {}, name another --out, \
                 or replace it with --overwrite",
                dir.display(),
                held.join(", "),
                dir.display()
            ));
        }
    }
    let src = Sources::read(a)?;
    let (train, test) = data(a)?;
    let plan = plan_of(a, &train, &src)?;
    let config = plan.config;
    let map = map_of(a, &src)?;
    if a.show_precision {
        show_precision(&plan, &map, a.batch);
        return Ok(());
    }
    let names: Vec<String> = plan.table().into_iter().map(|(n, _)| n).collect();
    for w in map.shadowed(&names) {
        eprintln!("warning: precision map: {w}");
    }
    let started = std::time::Instant::now();
    let ctx;
    let mut adapter = "the CPU reference".to_string();
    let mut device_fp32: Option<MemoryReport> = None;
    let mut trainer = match a.device {
        Device::Cpu => Trainer::cpu(CpuTrainer::new(plan.clone())),
        Device::Gpu => {
            ctx = args::gpu()?;
            println!("device: {}", ctx.info.name);
            adapter = format!(
                "{} ({:?}, {:?})",
                ctx.info.name, ctx.info.backend, ctx.info.device_type
            );
            // The all-fp32 trainer of the same model and batch, built to be measured first.
            if a.fp32_baseline {
                let plan32 = Plan::new(
                    plan.model.clone(),
                    &PrecisionMap::uniform(Format::FP32),
                    false,
                    plan.config,
                    a.seed,
                )
                .map_err(|e| e.to_string())?;
                let before = ctx.memory();
                let t32 = GpuTrainer::new(&ctx, plan32, a.batch).map_err(|e| e.to_string())?;
                device_fp32 = Some(ctx.memory().since(&before));
                drop(t32);
            }
            ctx.ledger.reset_peak();
            let before = ctx.memory();
            let t = GpuTrainer::new(&ctx, plan.clone(), a.batch).map_err(|e| e.to_string())?;
            let ours = ctx.memory().since(&before);
            let fp32 = device_fp32.as_ref();
            show_device(&ours, fp32, "start", wgpu_memory_bytes(&ctx.device));
            Trainer::Gpu(Box::new(t))
        }
    };
    let (planned, fp32) = plan.memory(a.batch);
    match &trainer {
        Trainer::Gpu(t) => show(&t.stored_bytes(), &fp32, "GPU buffers"),
        Trainer::Cpu(..) => show(&planned, &fp32, "planned"),
    }
    println!(
        "data: {} train / {} test images of {:?}, {} classes",
        train.len(),
        test.len(),
        train.shape,
        train.classes
    );
    let opts = RunOptions {
        epochs: a.epochs,
        batch: a.batch,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        // A resumed run folder goes on being written unless --out says otherwise.
        out: a
            .out
            .clone()
            .or_else(|| a.resume.clone().filter(|p| p.is_dir())),
        resume: a.resume.clone(),
        settings: run_settings(a, &src),
        loss_scaling: a.loss_scale != "none",
    };
    if let Some(dir) = &opts.out {
        write_settings(dir, &opts.settings, &plan)?;
    }
    let mut bar = Bar::default();
    let result = run::run(&mut trainer, (&train, &test), &config, &opts, &mut bar);
    // The curves so far, also of a run that diverged.
    if let Some(dir) = &opts.out {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if !lines.is_empty() || result.is_ok() {
            let doc = crate::plot::svg(&plot_title(a), &plot_panels(&lines));
            write_atomic(&dir.join("curves.svg"), doc.as_bytes())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    // What the run was, for sweeps and for the record: written whatever the outcome.
    if let Some(dir) = &opts.out {
        let (packed, device) = match &trainer {
            Trainer::Gpu(t) => (t.stored_bytes().total(), Some(t.device_memory())),
            Trainer::Cpu(..) => (planned.total(), None),
        };
        let summary = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "adapter": adapter,
            "packed_bytes": packed,
            "device_bytes": device.as_ref().map(|d| d.total()),
            "peak_device_bytes": device.as_ref().map(|d| d.peak),
            "seconds": started.elapsed().as_secs_f64(),
            "error": result.as_ref().err().map(|e| e.to_string()),
        });
        let text = serde_json::to_string_pretty(&summary).expect("a JSON value");
        write_atomic(&dir.join("summary.json"), (text + "\n").as_bytes())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let lines = result.map_err(|e| e.to_string())?;
    if lines.len() >= a.epochs && bar.epochs == 0 {
        println!(
            "the run had already finished its {} epochs; nothing to do (raise --epochs to go on)",
            a.epochs
        );
    }
    if let Trainer::Gpu(t) = &trainer {
        show(&t.stored_bytes(), &fp32, "end, GPU buffers");
        let now = t.device_memory();
        let when = match device_fp32 {
            Some(_) => "end, all buffers alive; fp32 as built",
            None => "end, all buffers alive",
        };
        show_device(
            &now,
            device_fp32.as_ref(),
            when,
            wgpu_memory_bytes(t.device()),
        );
        println!("  peak while training   {:>12}", now.peak);
    }
    if let Some(dir) = &opts.out {
        println!(
            "wrote {} and {}",
            dir.join("metrics.jsonl").display(),
            dir.join("curves.svg").display()
        );
    }
    Ok(())
}

/// The progress bar of an epoch and its summary line.
#[derive(Default)]
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    /// Epochs run by this process.
    epochs: usize,
}

impl run::Progress for Bar {
    fn resumed(&mut self, file: &std::path::Path, step: u64) {
        println!("resumed from {} at step {step}", file.display());
    }

    fn epoch_start(&mut self, epoch: usize, steps: u64, done: u64) {
        let bar = indicatif::ProgressBar::new(steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn step(&mut self, done: u64, figures: &str) {
        if let Some(b) = &self.bar {
            b.set_message(figures.to_string());
            b.set_position(done);
        }
    }

    fn epoch_end(&mut self, line: &serde_json::Value) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.epochs += 1;
        let f = |k: &str| line[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "epoch {}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} ({} images) | {:.1} s",
            line["epoch"],
            f("train_loss"),
            f("train_acc"),
            f("test_loss"),
            f("test_acc"),
            line["test_images"],
            f("seconds")
        );
    }

    fn abandon(&mut self) {
        if let Some(b) = self.bar.take() {
            b.abandon();
        }
    }
}

/// FNV-1a of a file's bytes (of nothing if it cannot be read), so that an edited file is
/// not resumed silently.
fn content_hash(p: &std::path::Path) -> u64 {
    lowp::digest::fnv64(&std::fs::read(p).unwrap_or_default())
}

/// `lowp train`'s arguments alone, to parse a recorded run's.
#[derive(clap::Parser)]
struct Recorded {
    #[command(flatten)]
    args: Args,
}

/// The arguments and files of the run a checkpoint's settings record, with its data
/// replaced by `data` where given.
pub fn args_from_record(
    meta: &BTreeMap<String, String>,
    data: Option<&std::path::Path>,
) -> Result<(Args, Sources), String> {
    let get = |k: &str| {
        meta.get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("the checkpoint does not record its run's {k}"))
    };
    // A recorded file is "PATH (HASH)"; its text is recorded beside it.
    let path = |v: &str| v.rfind(" (").map_or(v, |i| &v[..i]).to_string();
    let mut argv: Vec<String> = vec!["lowp train".into()];
    let mut opt = |k: &str, v: String| {
        argv.push(format!("--{}", k.replace('_', "-")));
        argv.push(v);
    };
    opt("model", path(get("model")?));
    for k in [
        "hidden",
        "batch",
        "seed",
        "loss",
        "optimizer",
        "lr",
        "lr_schedule",
        "momentum",
        "betas",
        "eps",
        "weight_decay",
        "loss_scale",
    ] {
        opt(k, get(k)?.to_string());
    }
    for k in ["epochs", "inner"] {
        if let Some(v) = meta.get(k) {
            opt(k, v.clone());
        }
    }
    for k in ["train_size", "test_size"] {
        match get(k)? {
            "all" => {}
            n => opt(k, n.to_string()),
        }
    }
    match (data, get("data")?) {
        (Some(d), _) => opt("data", d.display().to_string()),
        (None, "synthetic") => {}
        (None, d) => opt("data", d.to_string()),
    }
    if get("precision")? != "fp32" {
        opt("precision", path(get("precision")?));
    }
    for flag in ["nesterov", "master"] {
        if get(flag)? == "true" {
            argv.push(format!("--{flag}"));
        }
    }
    let args = <Recorded as clap::Parser>::try_parse_from(&argv)
        .map_err(|e| format!("the checkpoint's settings are not a run lowp can rebuild: {e}"))?
        .args;
    let src = Sources {
        model: meta.get("model_text").cloned(),
        map: meta.get("precision_text").cloned(),
    };
    if matches!(args.model, ModelArg::File(_)) && src.model.is_none()
        || args.precision.is_some() && src.map.is_none()
    {
        return Err("the checkpoint does not record its model file's or map's text".into());
    }
    Ok((args, src))
}

/// The data sets `a` trains and tests on (normalized by the training set's statistics).
pub fn data_of(a: &Args) -> Result<(Dataset, Dataset), String> {
    data(a)
}

impl Args {
    /// The samples per step.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// Writes `settings.json` into the run folder: the command line, every setting (with the
/// map's and model file's text) and each tensor's resolved format, rounding and scaling.
fn write_settings(
    dir: &std::path::Path,
    settings: &BTreeMap<String, String>,
    plan: &Plan,
) -> Result<(), String> {
    let tensors: Vec<serde_json::Value> = plan
        .table()
        .into_iter()
        .map(|(name, a)| {
            serde_json::json!({
                "tensor": name,
                "format": a.format.to_string(),
                "rounding": a.rounding.to_string(),
                "saturate": a.saturate,
                "scaling": match a.scaling {
                    lowp::quant::Scaling::None => "none",
                    lowp::quant::Scaling::Tensor => "tensor",
                },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "settings": settings,
        "master_weights": plan.master,
        "tensors": tensors,
    });
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(&doc).expect("a JSON value") + "\n";
    write_atomic(&dir.join("settings.json"), text.as_bytes())
        .map_err(|e| format!("{}: {e}", dir.display()))
}
