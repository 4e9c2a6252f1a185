//! `lowp sweep`: run a grid of trainings (or one shard of it), resumably, `--jobs` at a
//! time, each run a `lowp train` process with its own folder; merge the results of sweep
//! folders into one table; plot two measures with the Pareto frontier marked.

use clap::Parser;
use lowp::atomic_file::write_atomic;
use lowp::sweep::grid::{self, Grid, Run};
use lowp::sweep::pareto::frontier;
use lowp::sweep::results::{self, NUMERIC, Record, Status};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

/// What `lowp sweep` does.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run a grid file's trainings (or shard I of N of them); runs already recorded in the
    /// folder are skipped, so a killed sweep resumes where it stopped.
    Run(RunArgs),
    /// Merge the results of sweep folders into one table (merged.csv and merged.md).
    Merge(MergeArgs),
    /// Draw two measures of the runs as an SVG scatter, the Pareto frontier marked.
    Plot(PlotArgs),
}

/// Arguments of `lowp sweep run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The grid file (TOML: [train] settings and [axes]; see examples/sweeps).
    grid: PathBuf,
    /// The sweep's folder: runs/ID/ per run, results-I-of-N.jsonl per shard.
    #[arg(long)]
    out: PathBuf,
    /// Run only shard I of N (0-based): every N-th run from the I-th.
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// Runs at a time on this machine.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// List the runs (id, whether recorded, settings) without running them.
    #[arg(long)]
    list: bool,
}

/// Arguments of `lowp sweep merge`.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// Sweep folders (their results-*.jsonl files).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where merged.csv and merged.md go (default: the first folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `lowp sweep plot`.
#[derive(clap::Args)]
pub struct PlotArgs {
    /// Sweep folders.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The measure along x.
    #[arg(long, default_value = "device_bytes")]
    x: String,
    /// The measure along y.
    #[arg(long, default_value = "test_error")]
    y: String,
    /// The SVG file (default: pareto.svg in the first folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Average the runs that differ only in this setting (e.g. seed) into one point.
    #[arg(long)]
    mean_over: Option<String>,
}

/// `lowp train`'s options, to check a grid's settings before anything runs.
#[derive(Parser)]
#[command(name = "lowp train")]
struct TrainOnly {
    #[command(flatten)]
    _args: crate::train_cmd::Args,
}

/// Runs `lowp sweep`.
pub fn run(c: &Command) -> Result<(), String> {
    match c {
        Command::Run(a) => run_grid(a),
        Command::Merge(a) => merge(a),
        Command::Plot(a) => plot(a),
    }
}

/// The ids recorded in any results file of the folder.
fn recorded(dir: &Path) -> Result<BTreeSet<String>, String> {
    if !dir.exists() {
        return Ok(BTreeSet::new());
    }
    let all =
        results::merge(&[dir.to_path_buf()]).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(all.into_iter().map(|r| r.id).collect())
}

/// One line of settings: the axes' values.
fn describe(r: &Run, axes: &[String]) -> String {
    axes.iter()
        .map(|k| format!("{k}={}", r.settings[k]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_grid(a: &RunArgs) -> Result<(), String> {
    if a.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let shard = grid::parse_shard(&a.shard).map_err(|e| e.to_string())?;
    let grid = Grid::load(&a.grid).map_err(|e| e.to_string())?;
    let all = grid.runs();
    // Every run's settings must be `lowp train`'s, or none runs.
    for r in &all {
        let mut argv = vec!["lowp train".to_string()];
        argv.extend(grid::train_args(&r.settings));
        if let Err(e) = TrainOnly::try_parse_from(&argv) {
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return Err(format!(
                "{}: run {} ({}): {first}",
                a.grid.display(),
                r.index,
                grid::train_args(&r.settings).join(" ")
            ));
        }
    }
    let axes: Vec<String> = grid.axes.iter().map(|(k, _)| k.clone()).collect();
    let mine = grid::shard(all.clone(), shard);
    let done = recorded(&a.out)?;
    if a.list {
        for r in &mine {
            let state = if done.contains(&r.id) {
                "recorded"
            } else {
                "to run"
            };
            println!("{:>4} {} {state:<8} {}", r.index, r.id, describe(r, &axes));
        }
        return Ok(());
    }
    let todo: VecDeque<Run> = mine
        .iter()
        .filter(|r| !done.contains(&r.id))
        .cloned()
        .collect();
    println!(
        "grid {}: {} runs, shard {}/{} holds {}, {} recorded, {} to run, {} at a time",
        a.grid.display(),
        all.len(),
        shard.0,
        shard.1,
        mine.len(),
        mine.len() - todo.len(),
        todo.len(),
        a.jobs
    );
    std::fs::create_dir_all(a.out.join("runs")).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let file = results::shard_file(&a.out, shard);
    let total = todo.len();
    let queue = Arc::new(Mutex::new(todo));
    let (send, recv) = mpsc::channel::<Record>();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find lowp itself: {e}"))?;
    let workers: Vec<_> = (0..a.jobs.min(total.max(1)))
        .map(|_| {
            let (queue, send, exe, out) = (queue.clone(), send.clone(), exe.clone(), a.out.clone());
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().expect("the run queue").pop_front();
                    let Some(r) = next else { break };
                    if send.send(train_one(&exe, &out, &r)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(send);
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs  {elapsed} ({eta} left)",
        )
        .expect("a progress template"),
    );
    let mut counts = [0usize; 3];
    for rec in recv {
        results::append(&file, &rec).map_err(|e| format!("{}: {e}", file.display()))?;
        counts[rec.status as usize] += 1;
        let what = match (&rec.status, rec.test_acc) {
            (Status::Ok, Some(acc)) => format!("test acc {:.2}%", 100.0 * acc),
            (Status::Failed, _) => rec.error.clone().unwrap_or_default(),
            (s, _) => s.to_string(),
        };
        let run = mine
            .iter()
            .find(|r| r.id == rec.id)
            .expect("a run of this shard");
        let line = format!(
            "{:<8} {} {}  {what}  ({:.1} s)",
            rec.status.to_string(),
            rec.id,
            describe(run, &axes),
            rec.seconds
        );
        // Into a log (a batch job's) the bar is hidden: print the line itself.
        match bar.is_hidden() {
            true => println!("{line}"),
            false => bar.println(line),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for w in workers {
        w.join()
            .map_err(|_| "a sweep worker panicked".to_string())?;
    }
    println!(
        "{total} runs finished: {} ok, {} diverged, {} failed; results in {}",
        counts[0],
        counts[1],
        counts[2],
        file.display()
    );
    Ok(())
}

/// Trains one run in its own folder (emptied first: a killed run's remains), as a `lowp
/// train` process that dies with the sweep, and records how it ended.
fn train_one(exe: &Path, out: &Path, r: &Run) -> Record {
    let dir = out.join("runs").join(&r.id);
    let started = std::time::Instant::now();
    let mut record = Record {
        id: r.id.clone(),
        index: r.index,
        settings: r
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), results::json_value(v)))
            .collect(),
        status: Status::Failed,
        error: None,
        adapter: None,
        version: env!("CARGO_PKG_VERSION").into(),
        epochs: 0,
        test_acc: None,
        test_loss: None,
        train_loss: None,
        metrics: dir.join("metrics.jsonl"),
        packed_bytes: None,
        device_bytes: None,
        seconds: 0.0,
    };
    let status = (|| -> std::io::Result<std::process::ExitStatus> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("log.txt"))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("train")
            .args(grid::train_args(&r.settings))
            .arg("--out")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        cmd.status()
    })();
    record.seconds = started.elapsed().as_secs_f64();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&record.metrics)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    record.epochs = lines.len();
    if let Some(last) = lines.last() {
        let num = |k: &str| last.get(k).and_then(|v| v.as_f64());
        (record.test_acc, record.test_loss, record.train_loss) =
            (num("test_acc"), num("test_loss"), num("train_loss"));
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.json"))
        && let Ok(s) = serde_json::from_str::<serde_json::Value>(&text)
    {
        record.adapter = s["adapter"].as_str().map(String::from);
        record.packed_bytes = s["packed_bytes"].as_u64();
        record.device_bytes = s["device_bytes"].as_u64();
    }
    let diverged = lines
        .last()
        .is_some_and(|l| l.get("diverged_at_step").is_some());
    match status {
        Ok(s) if s.success() => record.status = Status::Ok,
        Ok(s) => {
            record.status = if diverged {
                Status::Diverged
            } else {
                Status::Failed
            };
            let log = std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default();
            record.error = Some(
                log.lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .map(|l| l.trim_start_matches("error:").trim().to_string())
                    .unwrap_or_else(|| format!("lowp train ended with {s}")),
            );
        }
        Err(e) => record.error = Some(format!("could not run lowp train: {e}")),
    }
    record
}

/// Makes the child die when the sweep does (Linux), so that a killed sweep leaves no run
/// writing into a folder its rerun will empty.
fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn merged(dirs: &[PathBuf]) -> Result<Vec<Record>, String> {
    for d in dirs {
        if !d.is_dir() {
            return Err(format!("{}: not a sweep folder", d.display()));
        }
    }
    let all = results::merge(dirs).map_err(|e| e.to_string())?;
    if all.is_empty() {
        return Err(format!(
            "no results in {} (a sweep writes results-I-of-N.jsonl)",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(all)
}

fn merge(a: &MergeArgs) -> Result<(), String> {
    let all = merged(&a.dirs)?;
    let out = a.out.clone().unwrap_or_else(|| a.dirs[0].clone());
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let csv = results::csv(&all).map_err(|e| e.to_string())?;
    let md = results::markdown(&all);
    for (name, text) in [("merged.csv", csv), ("merged.md", md.clone())] {
        write_atomic(&out.join(name), text.as_bytes())
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    print!("{md}");
    println!(
        "wrote {} and {}",
        out.join("merged.csv").display(),
        out.join("merged.md").display()
    );
    Ok(())
}

fn plot(a: &PlotArgs) -> Result<(), String> {
    for field in [&a.x, &a.y] {
        if !NUMERIC.contains(&field.as_str()) {
            return Err(format!(
                "{field:?} is not a measure (measures: {})",
                NUMERIC.join(", ")
            ));
        }
    }
    let all = merged(&a.dirs)?;
    let mut keys = results::varying(&all);
    if let Some(m) = &a.mean_over {
        if !keys.contains(m) {
            return Err(format!(
                "--mean-over {m}: not a setting the runs differ in ({})",
                keys.join(", ")
            ));
        }
        keys.retain(|k| k != m);
    }
    let runs: Vec<&Record> = all
        .iter()
        .filter(|r| r.number(&a.x).is_some() && r.number(&a.y).is_some())
        .collect();
    if runs.is_empty() {
        return Err(format!("no run has both {} and {}", a.x, a.y));
    }
    // One point per run, or per group of runs that differ only in --mean-over.
    let mut groups: Vec<(String, Vec<&Record>)> = Vec::new();
    for r in &runs {
        let label = keys
            .iter()
            .map(|k| match r.settings.get(k) {
                Some(serde_json::Value::String(s)) => short(s),
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        match groups
            .iter_mut()
            .find(|(l, _)| *l == label && a.mean_over.is_some())
        {
            Some((_, g)) => g.push(r),
            None => groups.push((label, vec![r])),
        }
    }
    let mean = |g: &[&Record], f: &str| {
        g.iter()
            .map(|r| r.number(f).unwrap_or(f64::NAN))
            .sum::<f64>()
            / g.len() as f64
    };
    let xy: Vec<(f64, f64)> = groups
        .iter()
        .map(|(_, g)| (mean(g, &a.x), mean(g, &a.y)))
        .collect();
    let front: BTreeSet<usize> = frontier(&xy).into_iter().collect();
    let points: Vec<crate::plot::Point> = groups
        .iter()
        .zip(&xy)
        .enumerate()
        .map(|(i, ((label, g), &(x, y)))| crate::plot::Point {
            x,
            y,
            label: match g.len() {
                1 => label.clone(),
                n => format!("{label} (mean of {n})"),
            },
            marked: front.contains(&i),
        })
        .collect();
    let title = match &a.mean_over {
        Some(m) => format!(
            "{} runs, averaged over {m}: {} against {} (Pareto frontier marked)",
            runs.len(),
            a.y,
            a.x
        ),
        None => format!(
            "{} runs: {} against {} (Pareto frontier marked)",
            runs.len(),
            a.y,
            a.x
        ),
    };
    let doc = crate::plot::scatter(&title, (&a.x, &a.y), &points);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.dirs[0].join("pareto.svg"));
    write_atomic(&out, doc.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "{} runs, {} points, {} on the frontier: wrote {}",
        runs.len(),
        points.len(),
        front.len(),
        out.display()
    );
    Ok(())
}

/// A setting's value in a label: a path's file stem.
fn short(s: &str) -> String {
    let p = Path::new(s);
    match (p.extension(), p.file_stem()) {
        (Some(_), Some(stem)) => stem.to_string_lossy().into_owned(),
        _ => s.to_string(),
    }
}
