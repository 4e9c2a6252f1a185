//! The `lowp` binary: formats table, quantize on GPU and CPU, and one-line errors for bad input.

mod common;

use common::lowp;

use lowp::data::npy::{NpyArray, read_f32, write_f32};
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use std::process::Output;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lowp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A failing run: non-zero exit, one line on stderr naming the problem, no panic.
fn assert_clean_failure(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
}

#[test]
fn formats_lists_and_describes() {
    let out = lowp(&["formats"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "fp32",
        "bf16",
        "e4m3",
        "e2m1",
        "mxfp4_e2m1",
        "mxint8",
        "nvfp4",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let out = lowp(&["formats", "float(e=5,m=4)"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("bias 15") && text.contains("max           63488"),
        "{text}"
    );
    assert_clean_failure(&lowp(&["formats", "float(e=0,m=3)"]), "e=0");
    let out = lowp(&["formats", "nvfp4"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("16 e2m1 elements share one E4M3 scale") && text.contains("4+8/16+32/tensor"),
        "{text}"
    );
}

#[test]
fn quantize_gives_the_same_output_on_gpu_and_cpu() {
    let x: Vec<f32> = (0..6000)
        .map(|i| ((i as f32) * 0.731).sin() * 300.0)
        .collect();
    let input = tmp("in.npy");
    write_f32(
        &input,
        &NpyArray {
            shape: vec![60, 100],
            fortran_order: false,
            data: x.clone(),
        },
    )
    .unwrap();
    for (fmt, extra) in [
        ("e4m3", vec!["--rounding", "stochastic", "--seed", "7"]),
        ("float(e=5,m=4)", vec!["--saturate"]),
        ("fixed(wl=8,fl=2)", vec!["--rounding", "stochastic:8"]),
        ("mxfp4_e2m1", vec![]),
        ("nvfp4", vec!["--rounding", "stochastic", "--seed", "3"]),
        (
            "e2m3",
            vec!["--scale", "tensor", "--rounding", "toward-zero"],
        ),
    ] {
        let (g, c) = (tmp("g.npy"), tmp("c.npy"));
        let (gc, cc) = (tmp("g_codes.npy"), tmp("c_codes.npy"));
        let mut args = vec!["quantize", s(&input), s(&g), "--format", fmt];
        args.extend(&extra);
        args.extend(["--codes", s(&gc)]);
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = String::from_utf8(out.stdout).unwrap();
        assert!(
            report.contains("mse") && report.contains("stored"),
            "{report}"
        );
        args[2] = s(&c);
        let at = args.iter().position(|a| *a == s(&gc)).unwrap();
        args[at] = s(&cc);
        args.extend(["--device", "cpu"]);
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (gy, cy) = (read_f32(&g).unwrap(), read_f32(&c).unwrap());
        assert_eq!(gy.shape, vec![60, 100]);
        assert_eq!(
            gy.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            cy.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{fmt}: gpu and cpu differ"
        );
        // Same report numbers apart from the device line.
        let cpu_report = String::from_utf8(out.stdout).unwrap();
        let strip = |r: &str| {
            r.lines()
                .filter(|l| !l.starts_with("device"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&report), strip(&cpu_report));
        // The codes: the same on both devices, in the narrowest unsigned dtype, and each
        // decodes (with its block's or the tensor's scale) to the value written.
        let format: lowp::format::Format = fmt.parse().unwrap();
        let read = |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let f = npyz::NpyFile::new(&bytes[..]).unwrap();
            let descr = f.dtype().descr().trim_matches('\'').to_string();
            let shape = f.shape().to_vec();
            let v: Vec<u32> = match &descr[1..] {
                "u1" => f
                    .into_vec::<u8>()
                    .unwrap()
                    .into_iter()
                    .map(u32::from)
                    .collect(),
                "u2" => f
                    .into_vec::<u16>()
                    .unwrap()
                    .into_iter()
                    .map(u32::from)
                    .collect(),
                "i4" => f
                    .into_vec::<i32>()
                    .unwrap()
                    .into_iter()
                    .map(|v| v as u32)
                    .collect(),
                other => panic!("{fmt}: codes as {other}"),
            };
            (descr, shape, v)
        };
        let scales = |p: &Path| {
            p.with_file_name(format!(
                "{}_scales.npy",
                p.file_stem().unwrap().to_str().unwrap()
            ))
        };
        let (descr, shape, codes) = read(&gc);
        assert_eq!(
            read(&cc),
            (descr.clone(), shape.clone(), codes.clone()),
            "{fmt}"
        );
        assert_eq!(shape, [60, 100]);
        let want = if format.bits() <= 8 { "|u1" } else { "<u2" };
        assert_eq!(descr, want, "{fmt}");
        let nvfp4 = fmt == "nvfp4";
        let scale = |i: usize| -> i32 {
            if nvfp4 {
                0
            } else if format.block().is_some() {
                read(&scales(&gc)).2[i / 32] as i32 - 127
            } else if extra.contains(&"tensor") {
                read(&scales(&gc)).2[0] as i32
            } else {
                assert!(!scales(&gc).exists() || extra.contains(&"tensor"));
                0
            }
        };
        // NVFP4: (e2m1 x its block's E4M3 scale) x the fp32 tensor scale, in f32.
        let tensor_scale = || {
            let p = gc.with_file_name("g_codes_tensor_scale.npy");
            read_f32(&p).unwrap().data[0]
        };
        for (i, (&code, y)) in codes.iter().zip(&gy.data).enumerate().step_by(7) {
            let v = if nvfp4 {
                let byte = read(&scales(&gc)).2[i / 16];
                let e4m3 = lowp::format::FloatFormat::E4M3.decode_bits(byte, 0);
                let e = f32::from_bits(format.element().decode_bits(code, 0));
                (e * f32::from_bits(e4m3) * tensor_scale()).to_bits()
            } else {
                format.element().decode_bits(code, scale(i))
            };
            assert_eq!(v, y.to_bits(), "{fmt}: code {code:#x} at {i}");
        }
        if format.block().is_some() || extra.contains(&"tensor") {
            assert!(
                read(&scales(&gc)) == read(&scales(&cc)),
                "{fmt}: scales differ"
            );
        }
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let out_path = tmp("never.npy");
    assert_clean_failure(
        &lowp(&[
            "quantize",
            "/no/such/file.npy",
            s(&out_path),
            "--format",
            "e4m3",
        ]),
        "No such file",
    );
    let f64_path = tmp("f64.npy");
    {
        let mut buf = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[3])
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend([1.0f64, 2.0, 3.0]).unwrap();
        w.finish().unwrap();
        std::fs::write(&f64_path, buf).unwrap();
    }
    assert_clean_failure(
        &lowp(&["quantize", s(&f64_path), s(&out_path), "--format", "e4m3"]),
        "float32",
    );
    let junk = tmp("junk.npy");
    std::fs::write(&junk, b"not an npy file at all").unwrap();
    assert_clean_failure(
        &lowp(&["quantize", s(&junk), s(&out_path), "--format", "e4m3"]),
        "not a valid .npy",
    );
    let ok = tmp("ok.npy");
    write_f32(
        &ok,
        &NpyArray {
            shape: vec![2],
            fortran_order: false,
            data: vec![1.0, 2.0],
        },
    )
    .unwrap();
    assert_clean_failure(
        &lowp(&["quantize", s(&ok), s(&out_path), "--format", "e9m9"]),
        "unknown format",
    );
    assert_clean_failure(
        &lowp(&[
            "quantize",
            s(&ok),
            s(&out_path),
            "--format",
            "e4m3",
            "--rounding",
            "up",
        ]),
        "unknown rounding",
    );
    assert!(!out_path.exists(), "no output may be written on failure");
}

/// `lowp info`'s output with the environment variable `var` set to `value`.
fn info_with(var: &str, value: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lowp"))
        .arg("info")
        .env(var, value)
        .output()
        .expect("run lowp")
}

/// `LOWP_SOFTFLOAT` chooses soft-float's form (`lowp info` says which); anything else is a
/// one-line error.
#[test]
fn softfloat_form_is_chosen_by_its_variable() {
    let info = |value: &str| info_with("LOWP_SOFTFLOAT", value);
    let gate = info("gate");
    assert!(gate.status.success());
    let text = String::from_utf8_lossy(&gate.stdout);
    assert!(text.contains("kernels: "), "{text}");
    assert!(!text.contains("through f64"), "{text}");
    // Where the adapter has f64 in shaders, f64 is taken; where not, it is refused.
    let f64 = info("f64");
    if text.contains("shader-f64: yes") {
        let text = String::from_utf8_lossy(&f64.stdout);
        assert!(text.contains("soft-float through f64"), "{text}");
    } else {
        assert_clean_failure(&f64, "no f64 in shaders");
    }
    assert_clean_failure(&info("f32"), "LOWP_SOFTFLOAT");
}

/// `LOWP_BROADCAST=0` turns the panel product's broadcast of A off (`lowp info` says when it
/// is on), `1` leaves it as the adapter allows (the default); anything else is a one-line
/// error.
#[test]
fn broadcast_is_turned_off_by_its_variable() {
    let info = |value: &str| info_with("LOWP_BROADCAST", value);
    let off = info("0");
    assert!(off.status.success());
    let text = String::from_utf8_lossy(&off.stdout);
    assert!(text.contains("kernels: "), "{text}");
    assert!(!text.contains("broadcast"), "{text}");
    // The default broadcasts on a CPU adapter whose subgroups are 8 lanes (lavapipe on an
    // AVX2 host), and the line says so.
    let on = info("");
    let text = String::from_utf8_lossy(&on.stdout);
    if text.contains("(Vulkan, Cpu)") || text.contains("CPU adapter") {
        let eight = text.contains("subgroups: yes, 8 lanes");
        assert_eq!(
            text.contains("broadcast across subgroups of 8"),
            eight,
            "{text}"
        );
    }
    let one = info("1");
    assert!(one.status.success());
    assert_eq!(String::from_utf8_lossy(&one.stdout), text);
    assert_clean_failure(&info("yes"), "LOWP_BROADCAST");
}

/// `LOWP_ITEM_GROUPS` caps the workgroups of the kernels that loop over their items (`lowp
/// info` says so; 0: one item an invocation); anything but a number is a one-line error.
#[test]
fn item_groups_are_set_by_their_variable() {
    let info = |value: &str| info_with("LOWP_ITEM_GROUPS", value);
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let five = info("5");
    assert!(five.status.success());
    assert!(
        text(&five).contains("per-item kernels: at most 5 workgroups"),
        "{}",
        text(&five)
    );
    let off = info("0");
    assert!(off.status.success());
    assert!(
        text(&off).contains("per-item kernels: one item an invocation"),
        "{}",
        text(&off)
    );
    // The default caps them on a CPU adapter only.
    let default = text(&info(""));
    let cpu = default.contains("(Vulkan, Cpu)") || default.contains("CPU adapter");
    assert_eq!(
        default.contains("per-item kernels: at most"),
        cpu,
        "{default}"
    );
    assert_clean_failure(&info("many"), "LOWP_ITEM_GROUPS");
}

/// `lowp info` says where stride-1 convolutions read their input in row segments (the panel
/// kernel's default), and `LOWP_SEGMENTS=0` turns it off.
#[test]
fn input_row_segments_are_turned_off_by_their_variable() {
    let info = |value: &str| info_with("LOWP_SEGMENTS", value);
    let on = info("");
    assert!(on.status.success());
    let text = String::from_utf8_lossy(&on.stdout);
    let panels = text.contains("decoded panels");
    assert_eq!(text.contains("read in row segments"), panels, "{text}");
    let off = info("0");
    let text = String::from_utf8_lossy(&off.stdout);
    assert!(text.contains("kernels: "), "{text}");
    assert!(!text.contains("read in row segments"), "{text}");
}

#[test]
fn matmul_runs_on_gpu_and_cpu() {
    let (m, k, n) = (13, 40, 7);
    let xa: Vec<f32> = (0..m * k)
        .map(|i| ((i as f32) * 0.37).sin() * 4.0)
        .collect();
    let xb: Vec<f32> = (0..k * n).map(|i| ((i as f32) * 0.11).cos()).collect();
    let (pa, pb, pbias) = (tmp("a.npy"), tmp("b.npy"), tmp("bias.npy"));
    write_f32(
        &pa,
        &NpyArray {
            shape: vec![m, k],
            fortran_order: false,
            data: xa,
        },
    )
    .unwrap();
    write_f32(
        &pb,
        &NpyArray {
            shape: vec![k, n],
            fortran_order: false,
            data: xb,
        },
    )
    .unwrap();
    write_f32(
        &pbias,
        &NpyArray {
            shape: vec![n],
            fortran_order: false,
            data: vec![0.5; n],
        },
    )
    .unwrap();
    for extra in [
        vec![
            "--a-format",
            "e4m3",
            "--b-format",
            "e5m2",
            "--acc",
            "fp16:4",
            "--out-format",
            "bf16",
        ],
        vec![
            "--a-format",
            "fixed(wl=8,fl=4)",
            "--b-format",
            "fixed(wl=8,fl=6)",
        ],
        vec![
            "--a-format",
            "mxfp8_e4m3",
            "--b-format",
            "bf16",
            "--acc",
            "bf16:1",
            "--bias",
            s(&pbias),
        ],
    ] {
        let (g, c) = (tmp("cg.npy"), tmp("cc.npy"));
        let mut args = vec!["matmul", s(&pa), s(&pb), s(&g)];
        args.extend(&extra);
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = String::from_utf8(out.stdout).unwrap();
        assert!(
            report.contains("max |err|") && report.contains("relative"),
            "{report}"
        );
        args[3] = s(&c);
        args.extend(["--device", "cpu"]);
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (gy, cy) = (read_f32(&g).unwrap(), read_f32(&c).unwrap());
        assert_eq!(gy.shape, vec![m, n]);
        // Exact accumulators (emulated, fixed-point) give identical bits on GPU and CPU.
        assert_eq!(
            gy.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            cy.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{extra:?}"
        );
    }
    let out = lowp(&[
        "matmul",
        s(&pa),
        s(&pa),
        s(&tmp("x.npy")),
        "--a-format",
        "e4m3",
        "--b-format",
        "e4m3",
    ]);
    assert_clean_failure(&out, "inner dimensions");
    let out = lowp(&[
        "matmul",
        s(&pa),
        s(&pb),
        s(&tmp("x.npy")),
        "--a-format",
        "e4m3",
        "--b-format",
        "e4m3",
        "--acc",
        "fp16:0",
    ]);
    assert_clean_failure(&out, "chunk");
}

fn write(path: &Path, shape: Vec<usize>, data: Vec<f32>) {
    let a = NpyArray {
        shape,
        fortran_order: false,
        data,
    };
    write_f32(path, &a).unwrap();
}

/// The value after `label` in a matmul report (`  max |err| 1.2e-3`).
fn reported(report: &str, label: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in {report}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `--transpose-a/-b` read A as [K, M] and B as [N, K]: with fixed-point operands (an exact
/// sum, rounded once) every transpose gives the f64 product of the inputs bit for bit. The
/// reported max, rms and relative errors equal those the test computes from the output
/// against an f64 product of the unquantized inputs.
#[test]
fn matmul_transposes_and_its_reported_error() {
    let (m, k, n) = (9, 23, 6);
    // Multiples of 1/16 in [-4, 4) and of 1/64 in [-1, 1): exact in fixed(8,4) and (8,6).
    let grid = |v: Vec<f32>, q: f32| v.iter().map(|x| (x * q).floor() / q).collect::<Vec<_>>();
    let a = grid(common::uniform(m * k, 1, 4.0), 16.0);
    let b = grid(common::uniform(k * n, 2, 1.0), 64.0);
    let transpose = |v: &[f32], rows: usize, cols: usize| {
        (0..cols * rows)
            .map(|i| v[(i % rows) * cols + i / rows])
            .collect::<Vec<_>>()
    };
    let exact = |a: &[f32], b: &[f32]| {
        (0..m * n)
            .map(|ij| {
                (0..k)
                    .map(|kk| a[ij / n * k + kk] as f64 * b[kk * n + ij % n] as f64)
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>()
    };
    let want: Vec<u32> = exact(&a, &b)
        .iter()
        .map(|&v| (v as f32).to_bits())
        .collect();
    let (pa, pb, pc) = (tmp("ta.npy"), tmp("tb.npy"), tmp("tc.npy"));
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (sa, da) = if ta {
            (vec![k, m], transpose(&a, m, k))
        } else {
            (vec![m, k], a.clone())
        };
        let (sb, db) = if tb {
            (vec![n, k], transpose(&b, k, n))
        } else {
            (vec![k, n], b.clone())
        };
        write(&pa, sa, da);
        write(&pb, sb, db);
        let mut args = vec![
            "matmul",
            s(&pa),
            s(&pb),
            s(&pc),
            "--a-format",
            "fixed(wl=8,fl=4)",
            "--b-format",
            "fixed(wl=8,fl=6)",
        ];
        if ta {
            args.push("--transpose-a");
        }
        if tb {
            args.push("--transpose-b");
        }
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = read_f32(&pc).unwrap();
        assert_eq!(c.shape, vec![m, n]);
        let got: Vec<u32> = c.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "transpose A {ta}, B {tb}");
        let report = String::from_utf8(out.stdout).unwrap();
        assert_eq!(reported(&report, "max |err|"), 0.0, "{report}");

        // Off-grid inputs in e4m3 x e5m2: the report's errors against an f64 product of the
        // unquantized inputs, recomputed here from the output file.
        let (a2, b2) = (
            common::uniform(m * k, 3, 4.0),
            common::uniform(k * n, 4, 1.0),
        );
        write(
            &pa,
            if ta { vec![k, m] } else { vec![m, k] },
            if ta { transpose(&a2, m, k) } else { a2.clone() },
        );
        write(
            &pb,
            if tb { vec![n, k] } else { vec![k, n] },
            if tb { transpose(&b2, k, n) } else { b2.clone() },
        );
        args[5] = "e4m3";
        args[7] = "e5m2";
        let out = lowp(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = String::from_utf8(out.stdout).unwrap();
        let c = read_f32(&pc).unwrap();
        let e = exact(&a2, &b2);
        let err: Vec<f64> = c
            .data
            .iter()
            .zip(&e)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .collect();
        let max = err.iter().cloned().fold(0.0, f64::max);
        let rms = (err.iter().map(|x| x * x).sum::<f64>() / (m * n) as f64).sqrt();
        let rel =
            (err.iter().map(|x| x * x).sum::<f64>() / e.iter().map(|x| x * x).sum::<f64>()).sqrt();
        // Printed with 7 significant digits: agreement to 1e-6 relative.
        for (label, mine) in [("max |err|", max), ("rms err", rms), ("relative", rel)] {
            let theirs = reported(&report, label);
            assert!(
                (theirs - mine).abs() <= 1e-6 * mine && mine > 1e-3,
                "transpose A {ta}, B {tb}: {label} reported {theirs}, computed {mine}"
            );
        }
    }
}

/// Output piped into a reader that stops at once (as `| head -1` does): no panic, and the
/// output file is written whole before the report.
#[test]
fn a_closed_pipe_ends_quietly_and_keeps_the_output() {
    let (input, output) = (tmp("pipe_in.npy"), tmp("pipe_out.npy"));
    write(&input, vec![1000], common::uniform(1000, 3, 4.0));
    for cmd in [
        vec!["quantize", s(&input), s(&output), "--format", "e4m3"],
        vec!["formats"],
    ] {
        let _ = std::fs::remove_file(&output);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lowp"))
            .args(&cmd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before anything is read
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{cmd:?}: {err}");
        if cmd[0] == "quantize" {
            let y = read_f32(&output).unwrap();
            assert_eq!(y.data.len(), 1000, "the output was written whole");
        }
    }
}
