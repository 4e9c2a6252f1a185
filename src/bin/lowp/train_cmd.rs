//! `lowp train`: train a model with every tensor in the format its precision map gives.

use crate::args::{self, Device};
use lowp::data::{Dataset, load_dir, shuffled, synthetic::synthetic};
use lowp::format::Format;
use lowp::train::cpu::{CpuTrainer, StepStats};
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, RoleBytes, SgdConfig};
use lowp::train::precision::PrecisionMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The models `lowp train` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    /// Multi-layer perceptron (hidden widths from --hidden).
    Mlp,
    /// LeNet-5 (two 5x5 convolutions with max pooling, then 120, 84, classes).
    Lenet,
    /// CIFAR ResNet-8 (not built yet).
    Resnet8,
    /// CIFAR ResNet-20 (not built yet).
    Resnet20,
}

/// The optimizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerArg {
    /// SGD with momentum, weight decay and optional Nesterov.
    Sgd,
    /// Adam (not built yet).
    Adam,
}

/// Arguments of `lowp train`.
#[derive(clap::Args)]
pub struct Args {
    /// The model.
    #[arg(long, value_enum, default_value_t = ModelArg::Mlp)]
    model: ModelArg,
    /// A folder with MNIST/Fashion-MNIST IDX files or CIFAR-10 binaries (default: a built-in synthetic set).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training images when the data has no separate test set (the rest are the test set; default 80%).
    #[arg(long)]
    train_size: Option<usize>,
    /// Precision map (TOML); default: everything fp32.
    #[arg(long)]
    precision: Option<PathBuf>,
    /// Keep master weights (`LAYER.master` in the map).
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
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Sgd)]
    optimizer: OptimizerArg,
    /// Hidden widths of the MLP.
    #[arg(long, default_value = "256,128")]
    hidden: String,
    /// Seed of initialization, shuffling, splitting and stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for metrics.jsonl and curves.svg.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Train on the GPU or on the CPU reference.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
}

enum Trainer<'c> {
    Gpu(Box<GpuTrainer<'c>>),
    Cpu(CpuTrainer),
}

impl Trainer<'_> {
    fn step(&mut self, x: &[f32], y: &[u32], train: bool) -> Result<StepStats, String> {
        match (self, train) {
            (Trainer::Gpu(t), true) => t.step(x, y).map_err(|e| e.to_string()),
            (Trainer::Gpu(t), false) => t.evaluate(x, y).map_err(|e| e.to_string()),
            (Trainer::Cpu(t), true) => Ok(t.step(x, y)),
            (Trainer::Cpu(t), false) => Ok(t.evaluate(x, y)),
        }
    }
}

fn data(a: &Args) -> Result<(Dataset, Dataset), String> {
    let (mut train, mut test) = match &a.data {
        None => synthetic(7000, a.seed).split(6000, a.seed)?,
        Some(dir) => {
            let l = load_dir(dir).map_err(|e| e.to_string())?;
            match l.test {
                Some(test) => (l.train, test),
                None => {
                    let n = a.train_size.unwrap_or(l.train.len() * 4 / 5);
                    l.train.split(n, a.seed)?
                }
            }
        }
    };
    let stats = train.channel_stats();
    train.normalize(&stats);
    test.normalize(&stats);
    Ok((train, test))
}

fn show(r: &RoleBytes, fp32: &RoleBytes, when: &str) {
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!("memory ({when}): bytes stored vs all-fp32");
    for (name, a, b) in [
        ("weights", r.weights, fp32.weights),
        ("activations", r.activations, fp32.activations),
        ("gradients", r.gradients, fp32.gradients),
        ("optimizer", r.optimizer, fp32.optimizer),
        ("master", r.master, fp32.master),
        ("total", r.total(), fp32.total()),
    ] {
        println!("  {name:<12} {a:>12} {b:>12}  {:5.1}%", pct(a, b));
    }
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    if matches!(a.model, ModelArg::Resnet8 | ModelArg::Resnet20) {
        let name = format!("{:?}", a.model).to_lowercase();
        return Err(format!(
            "--model {name} is not built yet; use --model mlp or lenet"
        ));
    }
    if a.optimizer != OptimizerArg::Sgd {
        return Err("--optimizer adam is not built yet; use --optimizer sgd".into());
    }
    if a.batch == 0 || a.epochs == 0 {
        return Err("--batch and --epochs must be at least 1".into());
    }
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
    let (train, test) = data(a)?;
    let model = match a.model {
        ModelArg::Lenet => Model::lenet(train.shape, train.classes)?,
        _ => Model::mlp(train.image_len(), &hidden, train.classes),
    };
    let map = match &a.precision {
        Some(p) => PrecisionMap::load(p).map_err(|e| e.to_string())?,
        None => PrecisionMap::uniform(Format::FP32),
    };
    let plan = Plan::new(model, &map, a.master, a.seed).map_err(|e| e.to_string())?;
    if a.show_precision {
        let sizes = plan.tensor_sizes(a.batch);
        println!(
            "{:<16} {:<26} {:<14} {:<9} {:>10}",
            "tensor", "format", "rounding", "saturate", "bytes"
        );
        for (name, asg) in plan.table() {
            let bytes: usize = sizes
                .iter()
                .filter(|(n, _, _)| *n == name)
                .map(|(n, p, e)| plan.spec(n, 0, *p).stored_bytes(*e))
                .sum();
            println!(
                "{name:<16} {:<26} {:<14} {:<9} {bytes:>10}",
                asg.format.to_string(),
                asg.rounding.to_string(),
                asg.saturate
            );
        }
        let (r, fp32) = plan.memory(a.batch);
        show(&r, &fp32, &format!("batch {}", a.batch));
        return Ok(());
    }
    let sgd = SgdConfig {
        lr: a.lr,
        momentum: a.momentum,
        weight_decay: a.weight_decay,
        nesterov: a.nesterov,
    };
    let ctx;
    let mut trainer = match a.device {
        Device::Cpu => Trainer::Cpu(CpuTrainer::new(plan.clone(), sgd)),
        Device::Gpu => {
            ctx = args::gpu()?;
            println!("device: {}", ctx.info.name);
            let t = GpuTrainer::new(&ctx, plan.clone(), sgd, a.batch).map_err(|e| e.to_string())?;
            Trainer::Gpu(Box::new(t))
        }
    };
    let (planned, fp32) = plan.memory(a.batch);
    match &trainer {
        Trainer::Gpu(t) => show(&t.stored_bytes(), &fp32, "GPU buffers"),
        Trainer::Cpu(_) => show(&planned, &fp32, "planned"),
    }
    println!(
        "data: {} train / {} test images of {:?}, {} classes",
        train.len(),
        test.len(),
        train.shape,
        train.classes
    );
    let mut log = match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Some(
                std::fs::File::create(dir.join("metrics.jsonl"))
                    .map_err(|e| format!("{}: {e}", dir.display()))?,
            )
        }
        None => None,
    };
    let per = train.image_len();
    let steps = train.len() / a.batch;
    if steps == 0 {
        return Err(format!(
            "--batch {} is larger than the {} training images",
            a.batch,
            train.len()
        ));
    }
    let (mut curve_loss, mut curve_acc) = (Vec::new(), Vec::new());
    for epoch in 1..=a.epochs {
        let t0 = Instant::now();
        let order = shuffled(train.len(), a.seed, epoch as u32);
        let bar = indicatif::ProgressBar::new(steps as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        let (mut loss, mut correct) = (0f64, 0usize);
        for s in 0..steps {
            let idx = &order[s * a.batch..(s + 1) * a.batch];
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| train.images[i * per..(i + 1) * per].iter().copied())
                .collect();
            let y: Vec<u32> = idx.iter().map(|&i| train.labels[i] as u32).collect();
            let st = trainer.step(&x, &y, true)?;
            if !st.loss.is_finite() {
                bar.abandon();
                return Err(format!(
                    "the loss became {} at epoch {epoch}, step {s}: training diverged (try a smaller --lr, or a wider gradient format)",
                    st.loss
                ));
            }
            loss += st.loss as f64;
            correct += st.correct;
            bar.set_message(format!(
                "loss {:.4} acc {:.3}",
                loss / (s + 1) as f64,
                correct as f64 / ((s + 1) * a.batch) as f64
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (mut tl, mut tc, mut tn) = (0f64, 0usize, 0usize);
        for s in 0..test.len() / a.batch {
            let idx: Vec<usize> = (s * a.batch..(s + 1) * a.batch).collect();
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| test.images[i * per..(i + 1) * per].iter().copied())
                .collect();
            let y: Vec<u32> = idx.iter().map(|&i| test.labels[i] as u32).collect();
            let st = trainer.step(&x, &y, false)?;
            tl += st.loss as f64 * a.batch as f64;
            tc += st.correct;
            tn += a.batch;
        }
        let secs = t0.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "epoch": epoch,
            "train_loss": loss / steps as f64,
            "train_acc": correct as f64 / (steps * a.batch) as f64,
            "test_loss": tl / tn.max(1) as f64,
            "test_acc": tc as f64 / tn.max(1) as f64,
            "test_images": tn,
            "seconds": secs,
        });
        println!(
            "epoch {epoch}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} ({tn} images) | {secs:.1} s",
            loss / steps as f64,
            correct as f64 / (steps * a.batch) as f64,
            tl / tn.max(1) as f64,
            tc as f64 / tn.max(1) as f64
        );
        if let Some(f) = log.as_mut() {
            writeln!(f, "{line}").map_err(|e| e.to_string())?;
        }
        curve_loss.push(loss / steps as f64);
        curve_acc.push(tc as f64 / tn.max(1) as f64);
    }
    if let Trainer::Gpu(t) = &trainer {
        show(&t.stored_bytes(), &fp32, "end, GPU buffers");
    }
    if let Some(dir) = &a.out {
        let doc = crate::plot::svg(
            "lowp train",
            &[
                ("train loss", "#c0392b", curve_loss),
                ("test accuracy", "#2471a3", curve_acc),
            ],
        );
        std::fs::write(dir.join("curves.svg"), doc)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        println!(
            "wrote {} and {}",
            dir.join("metrics.jsonl").display(),
            dir.join("curves.svg").display()
        );
    }
    Ok(())
}
