//! `lowp train`: GPU and CPU runs agree under an exact (fixed-point) map, the precision
//! table and memory report, metrics and plot files, and clear errors.

mod common;

use common::lowp;

use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lowp-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const FIXED_MAP: &str = r#"
default = { format = "fixed(wl=16,fl=10)" }
[[rule]]
match = "*.acc"
format = "fp32"
[[rule]]
match = "*.grad"
format = "fixed(wl=16,fl=14)"
rounding = "stochastic"
[[rule]]
match = "*.wgrad"
format = "fixed(wl=16,fl=13)"
"#;

fn metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn gpu_and_cpu_runs_agree_under_a_fixed_point_map() {
    let dir = tmp("fixed");
    let map = dir.join("map.toml");
    std::fs::write(&map, FIXED_MAP).unwrap();
    let mut runs = Vec::new();
    for device in ["gpu", "cpu"] {
        let out_dir = dir.join(device);
        let out = lowp(&[
            "train",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--batch",
            "50",
            "--lr",
            "0.05",
            "--precision",
            map.to_str().unwrap(),
            "--device",
            device,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("memory") && text.contains("epoch 1"),
            "{text}"
        );
        assert!(out_dir.join("curves.svg").is_file());
        runs.push(metrics(&out_dir));
    }
    let (g, c) = (&runs[0][0], &runs[1][0]);
    assert_eq!(
        g["train_acc"], c["train_acc"],
        "identical training, identical accuracy"
    );
    assert_eq!(g["test_acc"], c["test_acc"]);
    assert!(g["test_acc"].as_f64().unwrap() > 0.5, "it learns: {g}");
    // Losses come from each side's own f32 log of identical bits.
    let (gl, cl) = (
        g["train_loss"].as_f64().unwrap(),
        c["train_loss"].as_f64().unwrap(),
    );
    assert!((gl - cl).abs() <= 1e-5 * cl.abs() + 1e-6, "{gl} vs {cl}");
}

#[test]
fn show_precision_lists_every_tensor_and_its_bytes() {
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/precision/hfp8.toml");
    let out = lowp(&[
        "train",
        "--hidden",
        "32",
        "--batch",
        "10",
        "--precision",
        map.to_str().unwrap(),
        "--show-precision",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "input",
        "fc1.weight",
        "fc1.act",
        "relu1.grad",
        "fc2.wgrad",
        "e4m3",
        "e5m2",
        "total",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // fc1.weight: 32 x 784 e4m3 values = 25088 bytes.
    assert!(
        text.lines()
            .any(|l| l.starts_with("fc1.weight") && l.trim_end().ends_with("25088")),
        "{text}"
    );
}

#[test]
fn bad_training_requests_are_one_line_errors() {
    let check = |args: &[&str], needle: &str| {
        let out = lowp(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !err.contains("panicked") && err.contains(needle),
            "{args:?}: {err}"
        );
    };
    check(&["train", "--model", "resnet20"], "not built yet");
    let dir = tmp("bad");
    let map = dir.join("map.toml");
    std::fs::write(&map, "[[rule]]\nmatch = \"*.weigth\"\nformat = \"e4m3\"\n").unwrap();
    check(&["train", "--precision", map.to_str().unwrap()], "*.weigth");
    check(&["train", "--data", "/no/such/dir"], "no such folder");
    check(&["train", "--hidden", "0"], "--hidden");
}
