//! The run loop: epochs of shuffled batches, evaluation on the test set, metrics lines,
//! checkpoints (with the one before kept until the next step proves it good), resume, and
//! divergence. The command line and the research methods drive training through it.

use super::checkpoint::{self, TrainState};
use super::cpu::CpuTrainer;
use super::engine::{Pass, TensorLog, decode_log, encode_log, merge_logs};
use super::gpu::{GpuTrainer, Report};
use super::plan::{OptimKind, TrainConfig};
use crate::data::{Dataset, shuffled};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A trainer on either engine.
pub enum Trainer<'c> {
    /// The GPU engine.
    Gpu(Box<GpuTrainer<'c>>),
    /// The CPU reference, and its reports not yet taken.
    Cpu(Box<CpuTrainer>, Vec<Report>),
}

impl Trainer<'_> {
    /// The CPU reference trainer.
    pub fn cpu(t: CpuTrainer) -> Trainer<'static> {
        Trainer::Cpu(Box::new(t), Vec::new())
    }

    /// Starts a training step or an evaluation; its statistics arrive through `poll`/`flush`.
    pub fn submit(&mut self, x: &[f32], y: &[u32], train: bool) -> Result<()> {
        let pass = if train { Pass::Train } else { Pass::Evaluate };
        self.submit_pass(x, y, pass)
    }

    /// Starts `pass` on a batch; its statistics arrive through `poll`/`flush` (a batch of
    /// HALP's full-gradient pass reports as an evaluation).
    pub fn submit_pass(&mut self, x: &[f32], y: &[u32], pass: Pass) -> Result<()> {
        match self {
            Trainer::Gpu(t) => Ok(t.submit_pass(x, y, pass)?),
            Trainer::Cpu(t, done) => {
                let step = t.step;
                let stats = t.pass(x, y, pass);
                let train = pass == Pass::Train;
                done.push(Report { step, train, stats });
                Ok(())
            }
        }
    }

    /// Statistics that have arrived, without waiting.
    pub fn poll(&mut self) -> Result<Vec<Report>> {
        match self {
            Trainer::Gpu(t) => Ok(t.poll()?),
            Trainer::Cpu(_, done) => Ok(std::mem::take(done)),
        }
    }

    /// Every outstanding statistic, waiting for the device.
    pub fn flush(&mut self) -> Result<Vec<Report>> {
        match self {
            Trainer::Gpu(t) => Ok(t.readback_all()?),
            Trainer::Cpu(_, done) => Ok(std::mem::take(done)),
        }
    }

    /// The whole state (after the work submitted so far).
    pub fn state(&mut self) -> Result<TrainState> {
        match self {
            Trainer::Gpu(t) => Ok(t.state()?),
            Trainer::Cpu(t, _) => Ok(t.state()),
        }
    }

    /// Every stored tensor's roundings in the training steps whose statistics have arrived
    /// since it was last emptied.
    pub fn tensor_log(&mut self) -> &mut TensorLog {
        match self {
            Trainer::Gpu(t) => t.tensor_log(),
            Trainer::Cpu(t, _) => t.tensor_log(),
        }
    }

    /// Continues from a saved state.
    pub fn restore(&mut self, st: &TrainState) -> Result<()> {
        match self {
            Trainer::Gpu(t) => Ok(t.restore(st)?),
            Trainer::Cpu(t, _) => Ok(t.restore(st)?),
        }
    }
}

/// How a run goes besides the model and data.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Epochs in all (a resumed run continues to this many).
    pub epochs: usize,
    /// Samples a step.
    pub batch: usize,
    /// The seed of the shuffles.
    pub seed: u64,
    /// Also checkpoint every this many steps (0: at the end of each epoch only).
    pub checkpoint_every: u64,
    /// The folder metrics.jsonl and the checkpoints go to.
    pub out: Option<PathBuf>,
    /// A checkpoint (or a run folder holding one) to continue from.
    pub resume: Option<PathBuf>,
    /// The settings a checkpoint records and a resume must match. A value of the form
    /// "name (hash)" matches another with the same hash: the same file by another path.
    pub settings: BTreeMap<String, String>,
    /// Loss scaling is on: report the scale and the skipped steps.
    pub loss_scaling: bool,
}

/// What a run reports as it goes (the command line shows a progress bar).
pub trait Progress {
    /// The run continues from `file` at step `step`.
    fn resumed(&mut self, _file: &Path, _step: u64) {}
    /// An epoch of `steps` steps starts, `done` of them already taken.
    fn epoch_start(&mut self, _epoch: usize, _steps: u64, _done: u64) {}
    /// Steps taken so far in the epoch, and the running figures.
    fn step(&mut self, _done: u64, _figures: &str) {}
    /// An epoch ended with this metrics line.
    fn epoch_end(&mut self, _line: &serde_json::Value) {}
    /// The run stopped within an epoch.
    fn abandon(&mut self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// Running sums of an epoch's training reports (kept in checkpoints for a mid-epoch resume).
#[derive(Clone, Copy, Debug, Default)]
struct EpochSums {
    loss: f64,
    correct: usize,
    skipped: u64,
}

/// Whether a saved setting matches this run's: equal, or naming the same content.
fn same_setting(saved: &str, now: &str) -> bool {
    let hash = |s: &str| {
        s.rfind(" (")
            .filter(|_| s.ends_with(')'))
            .map(|i| s[i..].to_string())
    };
    saved == now || (hash(saved).is_some() && hash(saved) == hash(now))
}

/// The checkpoint files of a run and the steps they hold.
struct Checkpoints<'a> {
    /// checkpoint.safetensors and checkpoint.prev.safetensors in the output folder.
    paths: Option<(PathBuf, PathBuf)>,
    settings: &'a BTreeMap<String, String>,
    /// Steps of the latest checkpoint and of the one before it.
    kept: [Option<u64>; 2],
}

impl Checkpoints<'_> {
    /// Saves the trainer's state with the epoch's running sums; the previous checkpoint is
    /// kept beside it (its weights are good until the next step's loss shows the new ones are).
    fn save(&mut self, trainer: &mut Trainer, sums: &EpochSums) -> Result<()> {
        let Some((path, prev)) = &self.paths else {
            return Ok(());
        };
        let st = trainer.state()?;
        let mut meta = self.settings.clone();
        meta.insert("epoch_loss".into(), format!("{:?}", sums.loss));
        meta.insert("epoch_correct".into(), sums.correct.to_string());
        meta.insert("epoch_skipped".into(), sums.skipped.to_string());
        meta.insert("epoch_tensors".into(), encode_log(trainer.tensor_log()));
        if path.exists() {
            // A whole file under the other name at every moment: link (or copy), and the
            // save below replaces `path` atomically.
            let _ = std::fs::remove_file(prev);
            if std::fs::hard_link(path, prev).is_err() {
                std::fs::copy(path, prev).map_err(|e| Error::io(prev, e))?;
            }
            self.kept[1] = self.kept[0];
        }
        checkpoint::save(path, &st, &meta)?;
        self.kept[0] = Some(st.step);
        Ok(())
    }

    /// The error for a loss that diverged at (0-based) step `r.step`: the last good
    /// checkpoint is the latest one taken before that step's weights, put back in place
    /// where it was the one before the latest.
    fn diverged(&self, r: &Report, why: &str) -> Error {
        let kept = self.kept;
        let good = kept.iter().flatten().copied().find(|&s| s < r.step);
        let note = match (good, &self.paths) {
            (Some(s), Some((p, prev))) => {
                let restored = kept[0] == Some(s) || std::fs::rename(prev, p).is_ok();
                let at = if restored { p } else { prev };
                format!(
                    "; the last good checkpoint (after step {s}) is {}{}",
                    at.display(),
                    if restored {
                        ", resume with --resume (a smaller --lr may be given)"
                    } else {
                        ""
                    }
                )
            }
            (None, Some((p, _))) if kept[0].is_some() => format!(
                "; {} holds the weights that diverged (no earlier checkpoint was kept)",
                p.display()
            ),
            _ => String::new(),
        };
        Error::Diverged(format!(
            "the loss became {} at step {}{why}: training diverged (try a smaller --lr, loss \
             scaling, or a wider gradient format){note}",
            r.stats.loss,
            r.step + 1
        ))
    }
}

/// Appends the metrics line of an epoch that diverged part of the way through.
fn write_partial(
    log: &mut Option<(std::fs::File, PathBuf)>,
    line: Option<serde_json::Value>,
) -> Result<()> {
    if let (Some((f, path)), Some(line)) = (log.as_mut(), line) {
        writeln!(f, "{line}").map_err(|e| Error::io(&*path, e))?;
    }
    Ok(())
}

/// A loss no classifier this run trains reaches without diverging: 1000 times its first
/// finite step's, and at least 1000.
fn divergence_limit(first: f32) -> f32 {
    (first.abs() * 1000.0).max(1000.0)
}

/// Trains for `opts.epochs` epochs (continuing a resumed run), evaluating on `test` after
/// each, writing a metrics line and a checkpoint per epoch; returns every epoch's metrics
/// line, the resumed run's earlier ones first. A loss that is not finite, or that exceeds
/// 1000 times the run's first, stops the run with `Error::Diverged`, naming the last good
/// checkpoint, after a metrics line for the part of the epoch before it (marked with
/// `diverged_at_step`).
pub fn run(
    trainer: &mut Trainer,
    (train, test): (&Dataset, &Dataset),
    config: &TrainConfig,
    opts: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<serde_json::Value>> {
    if opts.checkpoint_every > 0 && opts.out.is_none() {
        return Err(Error::Invalid(
            "--checkpoint-every needs --out (the folder the checkpoints go to)".into(),
        ));
    }
    let batch = opts.batch;
    let steps = (train.len() / batch.max(1)) as u64;
    if steps == 0 {
        return Err(Error::Invalid(format!(
            "--batch {batch} is larger than the {} training images",
            train.len()
        )));
    }
    // Resume: the state, the settings it was saved with, and the running sums of its epoch.
    let (mut start_step, mut carried) = (0u64, EpochSums::default());
    let mut kept_lines: Vec<serde_json::Value> = Vec::new();
    if let Some(p) = &opts.resume {
        let file = checkpoint::file_of(p);
        let (st, meta) = checkpoint::load(&file)?;
        for (k, v) in &opts.settings {
            // The learning rate may change (a diverged run resumes with a smaller one).
            // Recorded file contents are compared through their hashes in `model` and
            // `precision`.
            if k == "lr" || k.ends_with("_text") {
                continue;
            }
            // Checkpoints from before schedules existed trained at a constant rate.
            let absent = if k == "lr_schedule" {
                "constant"
            } else {
                "(none)"
            };
            let saved = meta.get(k).map_or(absent, String::as_str);
            if !same_setting(saved, v) {
                return Err(Error::Invalid(format!(
                    "{}: saved with --{} {saved}, but this run has {v}; resume with the same settings",
                    file.display(),
                    k.replace('_', "-")
                )));
            }
        }
        trainer.restore(&st)?;
        start_step = st.step;
        let num = |k: &str| meta.get(k).and_then(|v| v.parse::<f64>().ok());
        carried = EpochSums {
            loss: num("epoch_loss").unwrap_or(0.0),
            correct: num("epoch_correct").unwrap_or(0.0) as usize,
            skipped: num("epoch_skipped").unwrap_or(0.0) as u64,
        };
        // The epoch's tensor statistics so far (none in a checkpoint from before them).
        if let Some(log) = meta.get("epoch_tensors").and_then(|t| decode_log(t)) {
            merge_logs(trainer.tensor_log(), &log);
        }
        progress.resumed(&file, start_step);
        // Keep the metrics of the epochs finished before the checkpoint.
        if let Some(dir) = &opts.out
            && let Ok(text) = std::fs::read_to_string(dir.join("metrics.jsonl"))
        {
            let first = start_step / steps + 1;
            kept_lines = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["epoch"].as_u64().is_some_and(|e| e < first))
                .collect();
        }
    }
    let mut log = match &opts.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let path = dir.join("metrics.jsonl");
            let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            for v in &kept_lines {
                writeln!(f, "{v}").map_err(|e| Error::io(&path, e))?;
            }
            Some((f, path))
        }
        None => None,
    };
    let mut ckpt = Checkpoints {
        paths: opts.out.as_ref().map(|d| {
            (
                d.join("checkpoint.safetensors"),
                d.join("checkpoint.prev.safetensors"),
            )
        }),
        settings: &opts.settings,
        kept: [opts.resume.as_ref().map(|_| start_step), None],
    };
    let mut lines = kept_lines;
    let mut limit: Option<f32> = None;
    let first_epoch = (start_step / steps + 1) as usize;
    for epoch in first_epoch..=opts.epochs {
        let t0 = Instant::now();
        let order = shuffled(train.len(), opts.seed, epoch as u32);
        let begin = if epoch == first_epoch {
            start_step % steps
        } else {
            0
        };
        progress.epoch_start(epoch, steps, begin);
        let mut sums = if epoch == first_epoch {
            carried
        } else {
            EpochSums::default()
        };
        let mut scale = 1f32;
        let mut partial: Option<serde_json::Value> = None;
        let mut take = |reports: Vec<Report>,
                        sums: &mut EpochSums,
                        ckpt: &Checkpoints,
                        progress: &mut dyn Progress,
                        partial: &mut Option<serde_json::Value>|
         -> Result<()> {
            for r in reports {
                let loss = r.stats.loss;
                let why = match limit {
                    _ if !loss.is_finite() => Some(String::new()),
                    Some(l) if loss > l => {
                        Some(format!(" (over {l}, 1000 times the run's first loss)"))
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    progress.abandon();
                    // The epoch's metrics up to the step before, marked diverged.
                    let done = r.step % steps;
                    if done > 0 {
                        *partial = Some(serde_json::json!({
                            "epoch": epoch,
                            "steps": done,
                            "train_loss": sums.loss / done as f64,
                            "train_acc": sums.correct as f64 / (done as usize * batch) as f64,
                            "lr": config.lr_at(r.step.saturating_sub(1)),
                            "diverged_at_step": r.step + 1,
                        }));
                    }
                    return Err(ckpt.diverged(&r, &why));
                }
                limit.get_or_insert(divergence_limit(loss));
                sums.loss += loss as f64;
                sums.correct += r.stats.correct;
                sums.skipped += r.stats.skipped as u64;
                scale = r.stats.loss_scale;
                let done = r.step % steps + 1;
                let mut msg = format!(
                    "loss {:.4} acc {:.3}",
                    sums.loss / done as f64,
                    sums.correct as f64 / (done as usize * batch) as f64
                );
                if opts.loss_scaling {
                    msg += &format!(" scale {scale} skipped {}", sums.skipped);
                }
                progress.step(done, &msg);
            }
            Ok(())
        };
        for s in begin..steps {
            let global = (epoch as u64 - 1) * steps + s;
            if config.kind == OptimKind::Halp {
                let inner = if config.inner == 0 {
                    steps
                } else {
                    config.inner
                };
                if global.is_multiple_of(inner) {
                    // The steps before count first; the pass's own reports do not.
                    let taken = take(trainer.flush()?, &mut sums, &ckpt, progress, &mut partial);
                    write_partial(&mut log, partial.take())?;
                    taken?;
                    halp_full_pass(trainer, train, batch, steps)?;
                }
            }
            let idx = &order[s as usize * batch..(s as usize + 1) * batch];
            let (x, y) = batch_of(train, idx);
            trainer.submit(&x, &y, true)?;
            let taken = take(trainer.poll()?, &mut sums, &ckpt, progress, &mut partial);
            write_partial(&mut log, partial.take())?;
            taken?;
            let global = (epoch as u64 - 1) * steps + s + 1;
            if opts.checkpoint_every > 0
                && global.is_multiple_of(opts.checkpoint_every)
                && s + 1 < steps
            {
                let taken = take(trainer.flush()?, &mut sums, &ckpt, progress, &mut partial);
                write_partial(&mut log, partial.take())?;
                taken?;
                ckpt.save(trainer, &sums)?;
            }
        }
        let taken = take(trainer.flush()?, &mut sums, &ckpt, progress, &mut partial);
        write_partial(&mut log, partial.take())?;
        taken?;
        let tensors = tensor_rates(&std::mem::take(trainer.tensor_log()));
        let (test_loss, test_acc) = evaluate(trainer, test, batch)?;
        let tn = test.len();
        let secs = t0.elapsed().as_secs_f64();
        let n_train = steps as usize * batch;
        let mut line = serde_json::json!({
            "epoch": epoch,
            "train_loss": sums.loss / steps as f64,
            "train_acc": sums.correct as f64 / n_train as f64,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "test_images": tn,
            "seconds": secs,
            "lr": config.lr_at((epoch as u64 * steps).saturating_sub(1)),
        });
        if opts.loss_scaling {
            line["loss_scale"] = serde_json::json!(scale);
            line["skipped_steps"] = serde_json::json!(sums.skipped);
        }
        line["tensors"] = tensors;
        progress.epoch_end(&line);
        if let Some((f, path)) = log.as_mut() {
            writeln!(f, "{line}").map_err(|e| Error::io(&*path, e))?;
        }
        ckpt.save(trainer, &EpochSums::default())?;
        lines.push(line);
    }
    Ok(lines)
}

/// The metrics line's `tensors`: per stored tensor (`NAME`, or `NAME[bias]` for the bias
/// half of a weight/bias pair), the shares of its rounded elements that overflowed,
/// underflowed and were NaN over the epoch's training steps, their count, and the largest
/// |x| met before rounding (null where it was infinite).
fn tensor_rates(log: &TensorLog) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for ((name, part), s) in log {
        let [overflow, underflow, nan] = s.rates();
        let key = match part {
            0 => name.clone(),
            _ => format!("{name}[bias]"),
        };
        m.insert(
            key,
            serde_json::json!({
                "overflow": overflow,
                "underflow": underflow,
                "nan": nan,
                "amax": s.exceptions.amax,
                "elements": s.elements,
            }),
        );
    }
    serde_json::Value::Object(m)
}

/// HALP's full-gradient pass: every training batch in the set's order (`steps` of them),
/// the centre re-centred on the first; its reports are not steps and are dropped.
fn halp_full_pass(trainer: &mut Trainer, train: &Dataset, batch: usize, steps: u64) -> Result<()> {
    let inv = 1.0 / steps as f32;
    for b in 0..steps as usize {
        let idx: Vec<usize> = (b * batch..(b + 1) * batch).collect();
        let (x, y) = batch_of(train, &idx);
        trainer.submit_pass(&x, &y, Pass::HalpFull { first: b == 0, inv })?;
        trainer.poll()?;
    }
    trainer.flush()?;
    Ok(())
}

/// The images `idx` of `set` and their labels.
fn batch_of(set: &Dataset, idx: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let per = set.image_len();
    let x = idx
        .iter()
        .flat_map(|&i| set.images[i * per..(i + 1) * per].iter().copied())
        .collect();
    (x, idx.iter().map(|&i| set.labels[i] as u32).collect())
}

/// The mean loss and the accuracy on every image of `test`, in batches of at most `batch`
/// (the last may be short).
pub fn evaluate(trainer: &mut Trainer, test: &Dataset, batch: usize) -> Result<(f64, f64)> {
    let (mut tl, mut tc, tn) = (0f64, 0usize, test.len());
    let mut sizes = std::collections::VecDeque::new();
    let mut count = |reports: Vec<Report>, sizes: &mut std::collections::VecDeque<usize>| {
        for r in reports.into_iter().filter(|r| !r.train) {
            let n = sizes.pop_front().unwrap_or(0);
            tl += r.stats.loss as f64 * n as f64;
            tc += r.stats.correct;
        }
    };
    for start in (0..tn).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(tn)).collect();
        let (x, y) = batch_of(test, &idx);
        sizes.push_back(idx.len());
        trainer.submit(&x, &y, false)?;
        count(trainer.poll()?, &mut sizes);
    }
    count(trainer.flush()?, &mut sizes);
    Ok((tl / tn.max(1) as f64, tc as f64 / tn.max(1) as f64))
}
