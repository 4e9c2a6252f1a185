//! `lowp linear` and `lowp levels` as a user runs them: metrics written per epoch, the
//! naive estimator's bias visible against double sampling, clean errors for bad input.

mod common;

use common::lowp;
use lowp::data::npy::{NpyArray, write_f32};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lowp-cli-linear-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `lowp linear ARGS --out DIR` into a fresh folder `name` and checks it succeeded:
/// its metrics lines, its output and the folder.
fn run_linear(name: &str, args: &[&str]) -> (Vec<serde_json::Value>, String, PathBuf) {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = vec!["linear"];
    all.extend(args);
    all.extend(["--out", dir.to_str().unwrap()]);
    let out = lowp(&all);
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (common::read_metrics(&dir), text, dir)
}

#[test]
fn double_sampling_closes_the_gap_that_naive_sampling_leaves() {
    // The synthetic set: 2000 rows, 7 features in [-1, 1] and an intercept, noise 0.1. At 2 bits the naive
    // estimator minimises a ridge problem whose penalty is the quantization variance (about
    // (2/3)^2 / 6 per value), far from the optimum; double sampling is unbiased.
    let mut gaps = Vec::new();
    for est in ["fp32", "naive", "double"] {
        let (l, _, dir) = run_linear(
            est,
            &[
                "--rows",
                "2000",
                "--features",
                "8",
                "--epochs",
                "4",
                "--bits",
                "2",
                "--estimator",
                est,
                "--lr",
                "0.1",
                "--decay",
            ],
        );
        assert_eq!(l.len(), 4);
        for (e, m) in l.iter().enumerate() {
            assert_eq!(m["epoch"], e + 1);
            for key in [
                "train_loss",
                "test_loss",
                "optimum_loss",
                "gap",
                "lr",
                "seconds",
            ] {
                assert!(m[key].is_number(), "{est}: {key} missing in {m}");
            }
        }
        let bits = l[0]["bits_per_sample"].as_f64().unwrap();
        // --features counts the intercept: 8 values at a 2-bit index plus 1 (naive) or 2
        // (double) up bits each.
        let want = match est {
            "fp32" => 32.0 * 8.0,
            "naive" => 8.0 * 3.0,
            _ => 8.0 * 4.0,
        };
        assert_eq!(bits, want, "{est}");
        assert!(dir.join("curves.svg").is_file());
        gaps.push(l[3]["gap"].as_f64().unwrap());
    }
    let [fp32, naive, double] = gaps[..] else {
        unreachable!()
    };
    assert!(
        fp32 >= -1e-9 && double >= -1e-9,
        "below the exact optimum: {gaps:?}"
    );
    assert!(
        naive > 10.0 * double,
        "naive {naive} against double {double}"
    );
}

#[test]
fn logistic_regression_reports_test_accuracy_for_every_estimator() {
    // Classes are the signs of the synthetic set's noisy linear target: separable up to the
    // noise, so every estimator at 3 bits classifies most test rows.
    for est in ["fp32", "naive", "double", "chebyshev"] {
        let (l, _, _) = run_linear(
            &format!("logistic-{est}"),
            &[
                "--task",
                "logistic",
                "--rows",
                "2000",
                "--features",
                "8",
                "--epochs",
                "3",
                "--bits",
                "3",
                "--estimator",
                est,
                "--lr",
                "0.5",
                "--decay",
            ],
        );
        assert_eq!(l.len(), 3);
        let acc = l[2]["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.8, "{est}: test accuracy {acc}");
        assert!(
            l[2].get("gap").is_none(),
            "no exact optimum for logistic regression"
        );
    }
}

#[test]
fn mnist_zeros_against_ones_from_two_bit_double_samples() {
    // ../shared/data/mnist's 10,000 images hold about 2,100 zeros and ones; a linear
    // classifier on their pixels separates them almost perfectly (above 99% in fp32).
    let mnist = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");
    assert!(
        std::path::Path::new(mnist).is_dir(),
        "{mnist} not found: the tests need ../shared"
    );
    let (l, _, _) = run_linear(
        "mnist01",
        &[
            "--data",
            mnist,
            "--classes",
            "0,1",
            "--task",
            "logistic",
            "--estimator",
            "double",
            "--bits",
            "2",
            "--epochs",
            "2",
            "--lr",
            "0.02",
            "--decay",
        ],
    );
    let acc = l[1]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.97, "test accuracy {acc}");
    // 784 pixels and the intercept, each at a 2-bit index and two up bits.
    assert_eq!(l[1]["bits_per_sample"].as_f64().unwrap(), 785.0 * 4.0);
    for (args, needle) in [
        (vec!["--classes", "0"], "expected two class numbers"),
        (vec!["--classes", "3,3"], "two different classes"),
        (vec!["--classes", "0,12"], "classes 0 to 9"),
        (vec![], "--classes A,B"),
    ] {
        let mut all = vec!["linear", "--data", mnist, "--task", "logistic"];
        all.extend(args);
        let out = lowp(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{all:?}: {err}"
        );
    }
}

#[test]
fn bad_linear_runs_fail_with_one_clear_line() {
    let cases: [(&[&str], &str); 12] = [
        (
            &["linear", "--lr", "50", "--epochs", "3", "--rows", "500"],
            "diverged",
        ),
        (&["linear", "--data", "x.csv"], "--target"),
        (
            &["linear", "--estimator", "triple"],
            "expected fp32, naive, double, chebyshev or refetch",
        ),
        (
            &["linear", "--estimator", "refetch", "--rows", "50"],
            "--task svm",
        ),
        (
            &["linear", "--task", "svm", "--estimator", "chebyshev"],
            "--task logistic",
        ),
        (
            &["linear", "--task", "svm", "--method", "halp"],
            "not --method",
        ),
        (
            &["linear", "--quantize", "model", "--estimator", "double"],
            "leaves out data",
        ),
        (
            &["linear", "--model-format", "fixed(wl=40,fl=0)"],
            "word length must be 1..=32",
        ),
        (
            &[
                "linear",
                "--bits",
                "0",
                "--estimator",
                "naive",
                "--rows",
                "50",
            ],
            "1 to 16 bits",
        ),
        (
            &["linear", "--estimator", "chebyshev", "--rows", "50"],
            "--task logistic",
        ),
        (&["linear", "--task", "logistic", "--l2=-1"], "--l2"),
        (
            &[
                "linear",
                "--task",
                "logistic",
                "--estimator",
                "chebyshev",
                "--degree",
                "9",
            ],
            "degree must be 1 to 7",
        ),
    ];
    for (args, needle) in cases {
        let out = lowp(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn levels_prints_uniform_and_optimal_levels_of_each_column() {
    let p = tmp("cols.npy");
    let data: Vec<f32> = (0..400)
        .map(|i| ((i * 7 % 100) as f32 / 100.0).powi(3))
        .collect();
    write_f32(
        &p,
        &NpyArray {
            shape: vec![200, 2],
            fortran_order: false,
            data,
        },
    )
    .unwrap();
    let out = lowp(&["levels", p.to_str().unwrap(), "--bits", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("uniform").count(), 2, "{text}");
    assert_eq!(text.matches("optimal (exact)").count(), 2, "{text}");
    // Each optimal variance is at most the uniform one above it.
    let variances: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("variance ").nth(1))
        .map(|v| v.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(variances.len(), 4);
    assert!(
        variances[1] <= variances[0] && variances[3] <= variances[2],
        "{variances:?}"
    );
}

#[test]
fn a_libsvm_file_trains_logistic_regression() {
    // Separable by the sign of the first feature.
    let p = tmp("sep.libsvm");
    let rows: String = (0..60)
        .map(|i| {
            let x = (i as f32 * 0.37).sin();
            let y = if x > 0.0 { "+1" } else { "-1" };
            format!("{y} 1:{x} 3:{}\n", (i as f32 * 0.11).cos())
        })
        .collect();
    std::fs::write(&p, rows).unwrap();
    let (l, text, _) = run_linear(
        "libsvm-run",
        &[
            "--data",
            p.to_str().unwrap(),
            "--task",
            "logistic",
            "--estimator",
            "double",
            "--bits",
            "3",
            "--epochs",
            "20",
            "--lr",
            "1",
            "--test-fraction",
            "0.25",
        ],
    );
    assert!(text.contains("4 features with the intercept"), "{text}");
    assert!(l[19]["test_accuracy"].as_f64().unwrap() >= 0.9, "{}", l[19]);
}

/// `--method halp` through the command line: the mu it used, every epoch's gap and
/// gradient norm against the recorded optimum, and clear refusals.
#[test]
fn halp_through_the_command_line_records_gap_and_gradient_norm() {
    let (l, text, dir) = run_linear(
        "halp",
        &[
            "--method",
            "halp",
            "--device",
            "cpu",
            "--bits",
            "8",
            "--batch",
            "1",
            "--lr",
            "0.02",
            "--epochs",
            "12",
            "--rows",
            "600",
            "--features",
            "6",
        ],
    );
    assert!(
        text.contains("the smallest eigenvalue of A^T A / N"),
        "{text}"
    );
    assert_eq!(l.len(), 12);
    let opt = l[0]["optimum_loss"].as_f64().unwrap();
    for m in &l {
        let (loss, gap) = (
            m["train_loss"].as_f64().unwrap(),
            m["gap"].as_f64().unwrap(),
        );
        // serde_json reads floats to within an ulp, not always exactly.
        assert!(
            (gap - (loss - opt)).abs() <= 4.0 * f64::EPSILON * loss,
            "{m}"
        );
        assert!(m["grad_norm"].as_f64().unwrap() >= 0.0 && m["scale"].as_f64().unwrap() > 0.0);
    }
    let (first, last) = (
        l[0]["gap"].as_f64().unwrap(),
        l[11]["gap"].as_f64().unwrap(),
    );
    assert!(last < 1e-9 * first, "gap {first:e} -> {last:e}");
    assert!(dir.join("curves.svg").exists());
    for (args, want) in [
        (
            vec!["--task", "softmax", "--method", "halp"],
            "needs classes",
        ),
        (
            vec![
                "--method",
                "halp",
                "--device",
                "cpu",
                "--estimator",
                "double",
            ],
            "fp32 samples",
        ),
        (vec!["--method", "halpp", "--device", "cpu"], "methods are"),
        (
            vec!["--method", "halp", "--device", "cpu", "--mu", "-1"],
            "--mu",
        ),
    ] {
        let mut all = vec!["linear", "--rows", "100", "--features", "3"];
        all.extend(args);
        let out = lowp(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{all:?}: {err}"
        );
    }
}

/// Softmax regression through the command line, on a CSV whose target holds class numbers:
/// the GPU and the CPU reference write the same losses, gaps and accuracies; the optimum is
/// L-BFGS's; without --method the command says softmax needs one.
#[test]
fn softmax_halp_on_the_gpu_and_the_cpu_writes_the_same_metrics() {
    let csv = tmp("three.csv");
    let mut text = String::from("a,b,c,label\n");
    for i in 0..240 {
        let (a, b, c) = (
            ((i * 37) % 101) as f32 / 50.0 - 1.0,
            ((i * 53) % 97) as f32 / 48.0 - 1.0,
            ((i * 11) % 89) as f32,
        );
        // Three classes from the larger of two scores and a margin, with some overlap.
        let label = if a + 0.3 * b > 0.4 {
            2
        } else if a - b < -0.2 {
            1
        } else {
            0
        };
        text.push_str(&format!("{a},{b},{c},{label}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let args = |device: &'static str| {
        vec![
            "--data",
            csv.to_str().unwrap(),
            "--target",
            "label",
            "--task",
            "softmax",
            "--l2",
            "0.01",
            "--method",
            "halp",
            "--bits",
            "12",
            "--batch",
            "4",
            "--lr",
            "0.1",
            "--epochs",
            "4",
            "--device",
            device,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let cpu_args = args("cpu");
    let gpu_args = args("gpu");
    let (cpu, text, _) = run_linear(
        "softmax-cpu",
        &cpu_args.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    let (gpu, _, _) = run_linear(
        "softmax-gpu",
        &gpu_args.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    assert!(
        text.contains("softmax regression") && text.contains("L-BFGS"),
        "{text}"
    );
    assert_eq!(cpu.len(), 4);
    for (c, g) in cpu.iter().zip(&gpu) {
        for key in [
            "train_loss",
            "gap",
            "grad_norm",
            "test_accuracy",
            "saturated",
            "scale",
        ] {
            assert_eq!(c[key], g[key], "{key}: {c} against {g}");
        }
    }
    let (first, last) = (
        cpu[0]["gap"].as_f64().unwrap(),
        cpu[3]["gap"].as_f64().unwrap(),
    );
    assert!(last < first && last >= -1e-12, "gap {first:e} -> {last:e}");
    let out = lowp(&[
        "linear",
        "--data",
        csv.to_str().unwrap(),
        "--target",
        "label",
        "--task",
        "softmax",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--method"), "{err}");
}

/// `--classes all`: MNIST's ten classes, each against the rest, by 2-bit double samples:
/// every binary model well above the share of its class's absence (about 0.9), the
/// multiclass prediction by the largest score far above chance, the metrics file holding a
/// line per class and epoch and the summary; least squares refuses it.
#[test]
fn one_vs_rest_over_mnist_classes() {
    let mnist = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");
    let (l, text, dir) = run_linear(
        "ovr",
        &[
            "--data",
            mnist,
            "--task",
            "logistic",
            "--classes",
            "all",
            "--estimator",
            "double",
            "--bits",
            "2",
            "--epochs",
            "1",
            "--lr",
            "0.02",
            "--device",
            "cpu",
        ],
    );
    let binary: Vec<f64> = text
        .lines()
        .filter(|t| t.contains("against the rest"))
        .map(|t| {
            let v = t.split("test accuracy ").nth(1).unwrap();
            v.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(binary.len(), 10, "{text}");
    // Each class is about a tenth of the 2,000 test images: always answering "not this
    // class" scores about 0.9; a learned model scores well above (measured 0.94-0.99).
    assert!(binary.iter().all(|&a| a > 0.92), "{binary:?}");
    assert_eq!(l.len(), 11);
    let all = l[10]["multiclass_test_accuracy"].as_f64().unwrap();
    // Measured 0.87 after two epochs; chance is 0.1.
    assert!(all > 0.8, "{all}");
    assert!(dir.join("curves.svg").exists());
    let out = lowp(&[
        "linear",
        "--data",
        mnist,
        "--task",
        "lsq",
        "--classes",
        "all",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--task logistic"),
        "{err}"
    );
}

#[test]
fn svm_refetches_rows_near_the_hinge_and_counts_their_bits() {
    // MNIST's 3s against 8s (1,587 training rows, 784 pixels and the intercept).
    let mnist = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");
    let run = |name: &str, est: &str| {
        run_linear(
            name,
            &[
                "--data",
                mnist,
                "--classes",
                "3,8",
                "--task",
                "svm",
                "--estimator",
                est,
                "--bits",
                "4",
                "--epochs",
                "2",
                "--lr",
                "0.02",
                "--decay",
                "--device",
                "cpu",
            ],
        )
    };
    let (l, text, _) = run("svm-refetch", "refetch");
    assert_eq!(l.len(), 2);
    let d = 785.0;
    for e in &l {
        let r = e["refetched"].as_f64().unwrap();
        // 4-bit indices, one up bit and the on-a-level bit per value, plus 32 bits a value
        // for each row read again, over the 1,587 training rows.
        let expected = d * 6.0 + 32.0 * d * r / 1587.0;
        let bits = e["bits_per_sample"].as_f64().unwrap();
        assert!(
            (bits - expected).abs() < 1e-6 * expected,
            "{bits} vs {expected}"
        );
        assert!(r < 1587.0, "{r}");
        // Two classes about equally common: chance is 0.5; measured 0.95.
        assert!(e["test_accuracy"].as_f64().unwrap() > 0.9, "{e}");
    }
    // The first epoch starts at w = 0, whose margins (0) are far from 1: some rows are not
    // read again, and once the model has grown some are.
    assert!(l[1]["refetched"].as_f64().unwrap() > 0.0, "{text}");
    assert!(text.contains("rows refetched"), "{text}");
    let (l, _, _) = run("svm-naive", "naive");
    assert!(l.iter().all(|e| e.get("refetched").is_none()));
    assert_eq!(l[0]["bits_per_sample"].as_f64().unwrap(), d * 5.0);
}

#[test]
fn model_and_gradient_rounded_through_formats() {
    // Least squares, 2,000 synthetic rows: 4-bit double samples, the weights in 8-bit and
    // the gradient in 6-bit fixed point (power-of-two scaled, stochastic rounding).
    let common = [
        "--rows", "2000", "--bits", "4", "--epochs", "4", "--lr", "0.1", "--decay", "--device",
        "cpu",
    ];
    let (plain, _, _) = run_linear("rounded-none", &common);
    let mut args = common.to_vec();
    args.extend([
        "--quantize",
        "data,model,grad",
        "--model-format",
        "fixed(wl=8,fl=7)",
        "--grad-format",
        "fixed(wl=6,fl=5)",
    ]);
    let (l, text, _) = run_linear("rounded-all", &args);
    assert!(
        text.contains("the model rounded through fixed(wl=8,fl=7)"),
        "{text}"
    );
    assert!(
        text.contains("the gradient through fixed(wl=6,fl=5)"),
        "{text}"
    );
    let gap = |l: &[serde_json::Value]| l.last().unwrap()["gap"].as_f64().unwrap();
    // The rounded run still learns: its gap is a small part of the loss at w = 0 (the
    // targets' variance, about 0.3 here; measured gap 2e-3), yet not the unrounded run's.
    assert!(gap(&l) < 0.02, "{}", gap(&l));
    assert_ne!(gap(&l), gap(&plain));
}

#[test]
fn stored_samples_report_their_limits_and_resampling_goes_below() {
    // 2-bit double samples of the synthetic set (2,000 rows), 12 epochs at lr / epoch.
    let args = [
        "--rows", "2000", "--bits", "2", "--epochs", "12", "--lr", "0.1", "--decay", "--device",
        "cpu",
    ];
    let (l, text, _) = run_linear("limits-stored", &args);
    assert!(
        text.contains("where SGD ends on these stored samples"),
        "{text}"
    );
    let last = l.last().unwrap();
    let limit = last["limit_gap"].as_f64().unwrap();
    let ridge = last["ridge_gap"].as_f64().unwrap();
    let gap = last["gap"].as_f64().unwrap();
    // Double sampling ends near its stored samples' limit, far below the naive estimator's
    // ridge bias.
    assert!(
        gap >= 0.8 * limit && gap <= 2.0 * limit,
        "{gap:e} vs {limit:e}"
    );
    assert!(ridge > 10.0 * limit, "{ridge:e} vs {limit:e}");
    let mut fresh = args.to_vec();
    fresh.push("--resample");
    let (l, _, _) = run_linear("limits-fresh", &fresh);
    let last = l.last().unwrap();
    assert!(last.get("limit_gap").is_none());
    let resampled = last["gap"].as_f64().unwrap();
    assert!(resampled < limit / 2.0, "{resampled:e} vs {limit:e}");
}
