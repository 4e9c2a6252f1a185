//! `lowp sweep`: a grid runs as one command; killed and rerun it has every run exactly once
//! with the results of an uninterrupted sweep; its shards merge to the same table; a run
//! that fails is recorded with its error and the others complete; merge and plot.

mod common;

use common::sweep::{fresh, grid, lowp, results, same, sweep};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_killed_sweep_resumes_and_shards_merge_to_the_same_results() {
    let dir = fresh("grid");
    let g = grid(&dir);
    let g = g.to_str().unwrap();
    // Uninterrupted, two at a time.
    let full = dir.join("full");
    sweep(&["run", g, "--out", full.to_str().unwrap(), "--jobs", "2"]);
    let whole = results(&full);
    assert_eq!(whole.len(), 4);
    let failed: Vec<_> = whole.values().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 2, "the two runs of the broken map fail");
    for r in &failed {
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("e9m9"), "the error names the bad format: {e}");
    }
    for r in whole.values().filter(|r| r["status"] == "ok") {
        assert!(r["test_acc"].as_f64().unwrap() > 0.0 && r["device_bytes"].as_u64().unwrap() > 0);
        assert_eq!(r["epochs"], 1);
    }
    // Killed after its second run, then rerun: every run once, the same results.
    let killed = dir.join("killed");
    let mut child = lowp()
        .args(["sweep", "run", g, "--out", killed.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = killed.join("results-0-of-1.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&file).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the sweep stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let part = results(&killed);
    assert!(
        (2..4).contains(&part.len()),
        "{} runs before the kill",
        part.len()
    );
    let out = sweep(&["run", g, "--out", killed.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{} recorded", part.len())),
        "the rerun skips what was recorded: {text}"
    );
    same(&results(&killed), &whole);
    // Shards 0/2 and 1/2 into one folder merge to the same table.
    let sharded = dir.join("sharded");
    for s in ["0/2", "1/2"] {
        sweep(&["run", g, "--out", sharded.to_str().unwrap(), "--shard", s]);
    }
    assert!(sharded.join("results-0-of-2.jsonl").exists());
    same(&results(&sharded), &whole);
    // Merge: one row per run; plot: the frontier of the runs that finished.
    sweep(&["merge", sharded.to_str().unwrap(), full.to_str().unwrap()]);
    let csv = std::fs::read_to_string(sharded.join("merged.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let md = std::fs::read_to_string(sharded.join("merged.md")).unwrap();
    assert!(md.starts_with("4 runs: 2 ok, 0 diverged, 2 failed"), "{md}");
    let out = sweep(&["plot", full.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 runs"));
    let svg = std::fs::read_to_string(full.join("pareto.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("device_bytes") && svg.contains("test_error"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_grid_with_a_setting_lowp_train_lacks_is_refused_before_any_run() {
    let dir = fresh("bad");
    let g = dir.join("grid.toml");
    std::fs::write(
        &g,
        "[train]\nepochs = 1\n[axes]\nlearning-rate = [0.1, 0.2]\n",
    )
    .unwrap();
    let out = lowp()
        .args(["sweep", "run", g.to_str().unwrap(), "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("learning-rate"), "{err}");
    assert!(!dir.join("out").join("runs").exists(), "nothing ran");
    for (text, want) in [
        ("[train]\nout = \"x\"\n", "the sweep's to set"),
        ("[axes]\nseed = []\n", "has no values"),
        (
            "[train]\nseed = 1\n[axes]\nseed = [1, 2]\n",
            "both a setting and an axis",
        ),
    ] {
        std::fs::write(&g, text).unwrap();
        let out = lowp()
            .args(["sweep", "run", g.to_str().unwrap(), "--out"])
            .arg(dir.join("out"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_that_diverges_is_recorded_as_diverged_with_its_partial_metrics() {
    let dir = fresh("diverged");
    let g = dir.join("grid.toml");
    std::fs::write(
        &g,
        "[train]\nhidden = \"16\"\nepochs = 1\nbatch = 50\ntrain-size = 600\ntest-size = 100\n\
         momentum = 0.9\n[axes]\nlr = [1e6]\n",
    )
    .unwrap();
    let out = dir.join("out");
    sweep(&["run", g.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let r = results(&out);
    let rec = r.values().next().unwrap();
    assert_eq!(rec["status"], "diverged", "{rec}");
    assert!(rec["error"].as_str().unwrap().contains("diverged"), "{rec}");
    assert_eq!(rec["epochs"], 1, "the partial epoch's metrics line: {rec}");
    let _ = std::fs::remove_dir_all(&dir);
}
