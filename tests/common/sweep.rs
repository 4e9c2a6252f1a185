//! Helpers of the sweep tests (tests/cli_sweep.rs, tests/slurm.rs): a small grid, running
//! `lowp sweep`, reading results and comparing two sweeps' runs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn lowp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lowp"));
    c.env(
        "WGPU_BACKEND",
        std::env::var("WGPU_BACKEND").unwrap_or("vulkan".into()),
    );
    c
}

pub fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lowp-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A grid of 2 maps (a broken one, then HFP8) x 2 seeds of a small MLP on the built-in data:
/// the broken runs fail at once, so a sweep killed after its second result still has a
/// training to run.
pub fn grid(dir: &Path) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let bad = dir.join("broken.toml");
    std::fs::write(&bad, "default = { format = \"e9m9\" }\n").unwrap();
    let text = format!(
        "[train]\nhidden = \"16\"\nepochs = 1\ntrain-size = 192\ntest-size = 64\nbatch = 32\n\n\
         [axes]\nprecision = [\"{}\", \"{root}/examples/precision/hfp8.toml\"]\n\
         seed = [0, 1]\n",
        bad.display()
    );
    let g = dir.join("grid.toml");
    std::fs::write(&g, text).unwrap();
    g
}

pub fn sweep(args: &[&str]) -> std::process::Output {
    let out = lowp().arg("sweep").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "lowp sweep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every results line of a sweep folder, by run id (each must appear once).
pub fn results(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut by_id = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("results-") && name.ends_with(".jsonl")) {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            assert!(
                by_id.insert(id.clone(), v).is_none(),
                "run {id} recorded twice"
            );
        }
    }
    by_id
}

/// What a run measured, without its timing and folder.
pub fn measured(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("metrics");
    v
}

/// The metrics lines of a run without their timings.
pub fn metrics(v: &serde_json::Value) -> Vec<serde_json::Value> {
    std::fs::read_to_string(v["metrics"].as_str().unwrap())
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut m: serde_json::Value = serde_json::from_str(l).unwrap();
            m.as_object_mut()
                .unwrap()
                .retain(|k, _| !k.contains("seconds"));
            m
        })
        .collect()
}

pub fn same(a: &BTreeMap<String, serde_json::Value>, b: &BTreeMap<String, serde_json::Value>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same runs"
    );
    for (id, ra) in a {
        assert_eq!(measured(ra), measured(&b[id]), "run {id}");
        assert_eq!(metrics(ra), metrics(&b[id]), "run {id}'s metrics");
    }
}
