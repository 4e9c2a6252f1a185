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

use common::read_metrics as metrics;

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
    // Every stored tensor's rounding statistics, the same on both devices.
    assert_eq!(g["tensors"], c["tensors"]);
    let tensors = g["tensors"].as_object().unwrap();
    for name in [
        "input",
        "fc1.act",
        "fc1.grad",
        "fc1.weight",
        "fc1.wgrad[bias]",
    ] {
        let t = &tensors[name];
        assert!(t["elements"].as_u64().unwrap() > 0, "{name}: {t}");
        for rate in ["overflow", "underflow", "nan"] {
            assert!(
                (0.0..=1.0).contains(&t[rate].as_f64().unwrap()),
                "{name}: {t}"
            );
        }
    }
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
    // fc1.weight: 32 x 784 e4m3 values = 25088 bytes, decided by hfp8.toml's first rule.
    assert!(
        text.lines().any(|l| l.starts_with("fc1.weight")
            && l.contains("rule 1 (*.weight)")
            && l.trim_end().ends_with("25088")),
        "{text}"
    );
    // The accumulator as the GEMMs use it: the map names none, so the hardware's fp32.
    assert!(
        text.lines().any(|l| l.starts_with("fc1.acc")
            && l.contains("fp32 (hardware sum)")
            && l.contains("no rule")),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
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
    let dir = tmp("bad");
    let map = dir.join("map.toml");
    std::fs::write(&map, "[[rule]]\nmatch = \"*.weigth\"\nformat = \"e4m3\"\n").unwrap();
    check(&["train", "--precision", map.to_str().unwrap()], "*.weigth");
    check(&["train", "--data", "/no/such/dir"], "no such folder");
    check(&["train", "--hidden", "0"], "--hidden");
    check(&["train", "--loss-scale", "static:3"], "power of two");
    check(&["train", "--loss-scale", "sometimes"], "--loss-scale");
    check(&["train", "--betas", "0.9"], "--betas");
    check(&["train", "--checkpoint-every", "5"], "--out");
    check(
        &["train", "--resume", "/no/such/checkpoint.safetensors"],
        "checkpoint",
    );
    check(&["train", "--test-size", "0"], "--test-size");
    // Hyper-parameters out of their range.
    check(&["train", "--lr=-1"], "--lr -1");
    check(&["train", "--lr", "nan"], "--lr NaN");
    check(&["train", "--momentum", "5"], "--momentum 5");
    check(&["train", "--weight-decay=-0.1"], "--weight-decay");
    check(&["train", "--optimizer", "adam", "--eps", "0"], "--eps");
    // A checkpoint file resumed with nowhere to write to.
    let file = dir.join("checkpoint.safetensors");
    std::fs::write(&file, b"x").unwrap();
    check(
        &["train", "--resume", file.to_str().unwrap()],
        "needs --out",
    );
    // A folder holding a run is not overwritten without --resume.
    let held = tmp("held");
    std::fs::write(held.join("metrics.jsonl"), "{}\n").unwrap();
    check(
        &["train", "--out", held.to_str().unwrap()],
        "already holds a run",
    );
    assert_eq!(
        std::fs::read_to_string(held.join("metrics.jsonl")).unwrap(),
        "{}\n"
    );
    // --overwrite replaces it: every file of the old run goes, the new run's are written.
    std::fs::write(held.join("summary.json"), "stale").unwrap();
    std::fs::write(held.join("checkpoint.prev.safetensors"), "stale").unwrap();
    let small = ["--epochs", "1", "--hidden", "8", "--train-size", "200"];
    let out = lowp(
        &[
            &["train", "--out", held.to_str().unwrap(), "--overwrite"],
            &small[..],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        metrics(&held).len(),
        1,
        "one epoch's metrics, not the old line"
    );
    let summary = std::fs::read_to_string(held.join("summary.json")).unwrap();
    assert!(summary.contains("packed_bytes"), "{summary}");
    assert!(!held.join("checkpoint.prev.safetensors").exists());
    check(
        &["train", "--out", "x", "--resume", "x", "--overwrite"],
        "cannot be used with",
    );
}

/// A run killed (SIGKILL) after a mid-epoch checkpoint and resumed with --resume ends with
/// the same state and metrics as the same run uninterrupted.
#[test]
fn a_killed_run_resumes_to_the_uninterrupted_result() {
    let dir = tmp("resume");
    let map = dir.join("map.toml");
    std::fs::write(&map, FIXED_MAP).unwrap();
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "--epochs",
            "4",
            "--hidden",
            "16",
            "--batch",
            "50",
            "--train-size",
            "600",
            "--test-size",
            "120",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--loss-scale",
            "dynamic:1024:3",
            "--precision",
            map.to_str().unwrap(),
            "--checkpoint-every",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut a = args(out);
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = lowp(&refs);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let straight = dir.join("straight");
    run(&[], &straight);
    // The interrupted run: killed once a mid-epoch checkpoint exists (12 steps an epoch,
    // one every 5 steps), so that the resumed run must restart inside an epoch. Should the
    // run have written an epoch-end checkpoint before the kill landed, kill a new one.
    let cut = dir.join("cut");
    let ckpt = cut.join("checkpoint.safetensors");
    let steps_per_epoch = 600 / 50;
    let mut at_kill = None;
    for _attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&cut);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lowp"))
            .args(args(&cut))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if let Ok((st, _)) = lowp::train::checkpoint::load(&ckpt)
                && st.step >= 5
            {
                child.kill().unwrap();
                child.wait().unwrap();
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it was killed"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let (st, _) = lowp::train::checkpoint::load(&ckpt).unwrap();
        if st.step % steps_per_epoch != 0 {
            at_kill = Some(st);
            break;
        }
    }
    let at_kill = at_kill.expect("no run was killed with a mid-epoch checkpoint in 5 tries");
    assert!(
        at_kill.step < 48 && at_kill.step % steps_per_epoch != 0,
        "checkpoint at step {}",
        at_kill.step
    );
    let text = run(&["--resume", cut.to_str().unwrap()], &cut);
    assert!(text.contains("resumed from"), "{text}");
    let (a, _) = lowp::train::checkpoint::load(&straight.join("checkpoint.safetensors")).unwrap();
    let (b, _) = lowp::train::checkpoint::load(&ckpt).unwrap();
    assert_eq!(a.step, 48);
    assert_eq!(a, b, "resumed state differs from the uninterrupted run's");
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut l| {
                l.as_object_mut().unwrap().remove("seconds");
                l
            })
            .collect()
    };
    assert_eq!(strip(metrics(&cut)), strip(metrics(&straight)));
    // Resuming with other settings is refused, naming the setting.
    let mut bad = args(&cut);
    bad.extend([
        "--resume".into(),
        cut.to_str().unwrap().into(),
        "--lr".into(),
        "0.5".into(),
    ]);
    let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
    let o = lowp(&refs);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--lr"));
}

/// Every example map resolves for both models (a `*_lenet` map for LeNet), master copies
/// included where it asks.
#[test]
fn every_example_map_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/precision");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let map = lowp::train::precision::PrecisionMap::parse(&text).unwrap();
        // A map named for a model may name that model's layers.
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let models: &[&str] = if name.ends_with("_lenet") {
            &["lenet"]
        } else {
            &["mlp", "lenet"]
        };
        for &model in models {
            let out = lowp(&[
                "train",
                "--model",
                model,
                "--precision",
                path.to_str().unwrap(),
                "--show-precision",
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout.contains(".master"), map.master, "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 5);
}

/// A cosine schedule decays the rate over the whole run (each epoch's JSON line says the
/// rate of its last step), and its checkpoint refuses a resume that changes the run's length.
#[test]
fn a_cosine_schedule_spans_the_run_and_fixes_its_length() {
    let dir = tmp("cosine");
    let args = |epochs: &str| -> Vec<String> {
        [
            "train",
            "--epochs",
            epochs,
            "--hidden",
            "16",
            "--batch",
            "50",
            "--lr",
            "0.05",
            "--lr-schedule",
            "cosine",
            "--out",
            dir.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let out = lowp(&refs(&args("2")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = metrics(&dir);
    let lr: Vec<f64> = lines.iter().map(|l| l["lr"].as_f64().unwrap()).collect();
    // Two epochs of S steps: the last step of epoch 1 is at t = (S - 1) / 2S, just under
    // half way (a rate just over half of 0.05); the run's last step is at (2S - 1) / 2S.
    assert!(lr[0] > 0.025 && lr[0] < 0.03, "{lr:?}");
    assert!(lr[1] > 0.0 && lr[1] < 0.001, "{lr:?}");
    let mut again = args("3");
    again.extend(["--resume".into(), dir.to_str().unwrap().into()]);
    let o = lowp(&refs(&again));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--epochs"));
}

/// A loss that turns NaN, or grows past 1000 times the run's first, stops the run with one
/// error line naming the step and the last good checkpoint: the latest one taken before
/// that step's weights (a checkpoint holds the weights after its step, whose loss only the
/// next step shows), put back in place, with finite weights.
#[test]
fn a_nan_loss_stops_the_run_and_names_the_last_good_checkpoint() {
    let dir = tmp("nan");
    let out = dir.join("run");
    // lr 1e6 with momentum: a loss of 1e12 at step 2 (it was NaN by step 5), before any
    // good checkpoint: the one there holds the weights that diverged, and says so.
    let o = lowp(&[
        "train",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--batch",
        "50",
        "--train-size",
        "600",
        "--test-size",
        "100",
        "--lr",
        "1e6",
        "--momentum",
        "0.9",
        "--checkpoint-every",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        err.contains("at step 2 (over") && err.contains("holds the weights that diverged"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
    // lr 10 with momentum: finite losses, then 3,351 (1,250 times the first) at step 6.
    let o = lowp(&[
        "train",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--batch",
        "50",
        "--train-size",
        "600",
        "--test-size",
        "100",
        "--lr",
        "10",
        "--momentum",
        "0.9",
        "--checkpoint-every",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let number_after = |what: &str| -> u64 {
        let at = line
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {line}"))
            + what.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let after_loss = &line[line.find("the loss became ").expect("the diverging loss")..];
    let diverged: u64 = after_loss[after_loss.find("at step ").unwrap() + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let good = number_after("the last good checkpoint (after step ");
    assert!(
        line.contains("training diverged") && line.contains("--resume"),
        "{line}"
    );
    // The checkpoint left in place is that one; its loss (at step good + 1) was finite.
    assert!(good < diverged, "{line}");
    let ckpt = out.join("checkpoint.safetensors");
    assert!(line.contains(ckpt.to_str().unwrap()), "{line}");
    let (st, _) = lowp::train::checkpoint::load(&ckpt).unwrap();
    assert_eq!(st.step, good);
    for t in st.tensors.iter().filter(|t| t.format == "fp32") {
        assert!(
            t.words.iter().all(|&w| f32::from_bits(w).is_finite()),
            "{} holds non-finite values",
            t.name
        );
    }
    // The metrics and curves up to the divergence: the epoch's steps before it.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(v["diverged_at_step"].as_u64(), Some(diverged), "{metrics}");
    assert_eq!(v["steps"].as_u64(), Some(diverged - 1), "{metrics}");
    assert!(v["train_loss"].as_f64().unwrap().is_finite(), "{metrics}");
    assert!(out.join("curves.svg").exists());
    // The advice can be followed: resumed with a smaller rate (into the same folder, which
    // --resume DIR goes on writing), the run finishes, with its curves.
    let o = lowp(&[
        "train",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--batch",
        "50",
        "--train-size",
        "600",
        "--test-size",
        "100",
        "--lr",
        "0.5",
        "--momentum",
        "0.9",
        "--checkpoint-every",
        "1",
        "--resume",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "{metrics}");
    assert!(out.join("curves.svg").exists());
}

/// A CIFAR-10 model trained through the command line on the real subset in ../shared:
/// ResNet-8, HFP8 map, two steps and an evaluation, with the metrics line, plot and
/// checkpoint a user gets.
#[test]
fn a_cifar_resnet_trains_through_the_cli() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/cifar10");
    assert!(
        std::path::Path::new(data).is_dir(),
        "the CIFAR-10 subset is not at {data}: the tests need ../shared beside the checkout"
    );
    let out = tmp("cifar").join("run");
    let map = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/precision/hfp8.toml");
    let o = lowp(&[
        "train",
        "--model",
        "resnet8",
        "--data",
        data,
        "--train-size",
        "16",
        "--test-size",
        "8",
        "--batch",
        "8",
        "--epochs",
        "1",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--precision",
        map,
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("16 train / 8 test images of [3, 32, 32], 10 classes"),
        "{text}"
    );
    let m = metrics(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["test_images"], 8);
    let loss = m[0]["train_loss"].as_f64().unwrap();
    // Ten classes at initialization: a cross-entropy near ln 10 = 2.3.
    assert!(loss.is_finite() && (1.0..5.0).contains(&loss), "{loss}");
    let acc = m[0]["test_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let (st, _) = lowp::train::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(st.step, 2);
    assert!(
        st.tensors
            .iter()
            .any(|t| t.name == "conv1.weight" && t.format == "e4m3")
    );
    // The plot of a one-epoch run: its title names model and map, each quantity has its
    // own labelled axis, and the single epoch shows as points.
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    for needle in [
        "resnet8",
        "map hfp8",
        ">loss<",
        ">accuracy<",
        ">learning rate<",
        ">epoch<",
        ">test accuracy<",
        "<circle",
    ] {
        assert!(svg.contains(needle), "curves.svg lacks {needle:?}");
    }
}

/// Resume compares content, not paths: the same precision map under another name, and the
/// data folder named another way, are accepted; an edited map is refused, naming it.
#[test]
fn resume_accepts_the_same_files_by_another_path() {
    let dir = tmp("paths");
    let (map, copy, edited) = (dir.join("a.toml"), dir.join("b.toml"), dir.join("c.toml"));
    std::fs::write(&map, FIXED_MAP).unwrap();
    std::fs::write(&copy, FIXED_MAP).unwrap();
    std::fs::write(&edited, format!("{FIXED_MAP}\n# edited\n")).unwrap();
    let out = dir.join("run");
    let mnist = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");
    // The same folder through a path with a "." in it.
    let mnist_again = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/./data/mnist");
    let run = |epochs: &str, map: &PathBuf, data: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--data",
            data,
            "--train-size",
            "100",
            "--test-size",
            "50",
            "--hidden",
            "8",
            "--batch",
            "50",
            "--epochs",
            epochs,
            "--precision",
        ];
        args.push(map.to_str().unwrap());
        if resume {
            args.extend(["--resume", out.to_str().unwrap()]);
        } else {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        lowp(&args)
    };
    let o = run("1", &map, mnist, false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run("2", &edited, mnist, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--precision"), "{err}");
    let o = run("2", &copy, mnist_again, true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
}

#[test]
fn plot_overlays_runs_and_names_bad_metrics() {
    let dir = tmp("plot");
    let line = |e: u32, acc: f64| {
        format!(
            "{{\"epoch\":{e},\"train_loss\":{},\"train_acc\":{acc},\"test_loss\":{},\"test_acc\":{acc}}}\n",
            2.0 / e as f64,
            2.5 / e as f64
        )
    };
    let (a, b) = (dir.join("fp32"), dir.join("other").join("fp32"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        a.join("metrics.jsonl"),
        line(1, 0.5) + &line(2, 0.7) + &line(3, 0.8),
    )
    .unwrap();
    // A one-epoch run whose second epoch diverged part way (no test figures).
    let partial =
        "{\"epoch\":2,\"steps\":3,\"train_loss\":9.0,\"train_acc\":0.1,\"diverged_at_step\":8}\n";
    std::fs::write(b.join("metrics.jsonl"), line(1, 0.25) + partial).unwrap();
    let svg = dir.join("runs.svg");
    let out = lowp(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    for label in ["test accuracy", "test loss", "train accuracy", "train loss"] {
        assert!(
            text.contains(&format!(">{label}</text>")),
            "no {label} panel"
        );
    }
    // Equal folder names are told apart by their paths: each run once per panel's legend.
    for name in [a.to_str().unwrap(), b.to_str().unwrap()] {
        let legend = format!(
            ">{}</text>",
            if name.len() > 20 {
                format!("…{}", &name[name.len() - 19..])
            } else {
                name.to_string()
            }
        );
        assert_eq!(text.matches(&legend).count(), 4, "{legend} in\n{text}");
    }
    assert_eq!(text.matches("<polyline").count(), 8);
    // 3 + 1 points in the test panels, 3 + 2 in the train panels.
    assert_eq!(text.matches("<circle").count(), 2 * 4 + 2 * 5);
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("0.8000") && report.contains("0.2500"),
        "{report}"
    );

    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("metrics.jsonl"), line(1, 0.5) + "{not json\n").unwrap();
    let out = lowp(&[
        "plot",
        bad.to_str().unwrap(),
        "--out",
        svg.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("metrics.jsonl:2"),
        "{err}"
    );
    let out = lowp(&["plot", dir.join("none").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("metrics.jsonl") && !err.contains("panicked"),
        "{err}"
    );
}

/// `--optimizer halp`: full-gradient passes every --inner steps (5, so one falls inside an
/// epoch of 12 and the epoch's end is not one), the settings recorded, a run stopped after
/// its first epoch and resumed ending where the straight run ends (centre, offset and full
/// gradient travel in the checkpoint), and clear refusals.
#[test]
fn halp_trains_resumes_exactly_and_refuses_bad_settings() {
    let dir = tmp("halp");
    let map = dir.join("map.toml");
    std::fs::write(
        &map,
        FIXED_MAP.replace("fixed(wl=16,fl=10)", "fixed(wl=12,fl=9)"),
    )
    .unwrap();
    let args = |out: &std::path::Path, epochs: &str| -> Vec<String> {
        [
            "train",
            "--epochs",
            epochs,
            "--hidden",
            "16",
            "--batch",
            "50",
            "--train-size",
            "600",
            "--test-size",
            "120",
            "--optimizer",
            "halp",
            "--inner",
            "5",
            "--lr",
            "0.1",
            "--precision",
            map.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = lowp(&refs);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let straight = dir.join("straight");
    run(args(&straight, "2"));
    let cut = dir.join("cut");
    run(args(&cut, "1"));
    let mut more = args(&cut, "2");
    more.extend(["--resume".into(), cut.to_str().unwrap().into()]);
    run(more);
    let (a, _) = lowp::train::checkpoint::load(&straight.join("checkpoint.safetensors")).unwrap();
    let (b, meta) = lowp::train::checkpoint::load(&cut.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.step, 24);
    assert_eq!(
        a, b,
        "the resumed HALP run's state differs from the straight run's"
    );
    assert_eq!(meta.get("optimizer").map(String::as_str), Some("halp"));
    assert_eq!(meta.get("inner").map(String::as_str), Some("5"));
    let m = metrics(&straight);
    assert_eq!(m.len(), 2);
    // It learns: ten classes (chance 0.1); measured 0.53 train and 0.225 test accuracy
    // (plain SGD under the same map: 0.43 and 0.28); 120 test images give a standard
    // error of 0.03 near chance.
    let (train_acc, test_acc) = (
        m[1]["train_acc"].as_f64().unwrap(),
        m[1]["test_acc"].as_f64().unwrap(),
    );
    assert!(
        train_acc > 0.3 && test_acc > 0.15,
        "HALP learned nothing: accuracy {train_acc} (train), {test_acc} (test)"
    );
    for (extra, needle) in [
        (vec!["--inner", "0"], "--inner"),
        (vec!["--weight-decay", "0.01"], "weight decay"),
        (
            vec!["--loss-scale", "dynamic:1024:3"],
            "dynamic loss scaling",
        ),
    ] {
        let mut a = args(&dir.join("bad"), "1");
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = lowp(&refs);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{extra:?}: {err}"
        );
    }
    let o = lowp(&["train", "--inner", "4"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--optimizer halp"),
        "{err}"
    );
}
