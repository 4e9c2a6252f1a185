//! `lowp export` and `lowp eval`: a trained run's parameters read back by the safetensors
//! crate in their own dtypes and shapes, decoded by an independent formula and equal to
//! the f32 export; a checkpoint evaluated to exactly the test figures the run reported.

mod common;

use common::{lowp, read_metrics};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// Every kind of storage: MX (F8_E4M3 codes and F8_E8M0 block scales), fixed point as
/// integers, a per-tensor scaled fixed point, bf16, e5m2 and a format with no dtype.
const MIXED_MAP: &str = r#"
default = { format = "fp32" }
[[rule]]
match = "fc1.weight"
format = "mxfp8_e4m3"
[[rule]]
match = "fc2.weight"
format = "fixed(wl=8,fl=6)"
saturate = true
[[rule]]
match = "fc3.weight"
format = "float(e=3,m=4)"
saturate = true
[[rule]]
match = "fc1.bias"
format = "bf16"
[[rule]]
match = "fc2.bias"
format = "e5m2"
[[rule]]
match = "fc3.bias"
format = "fixed(wl=12,fl=8)"
saturate = true
scale = "tensor"
"#;

/// An IEEE-style binary float's value from its bits: `e` exponent bits, `m` mantissa bits
/// (no special values reached by the trained weights checked here).
fn float_value(bits: u32, e: u32, m: u32) -> f64 {
    let sign = if bits >> (e + m) & 1 == 1 { -1.0 } else { 1.0 };
    let field = (bits >> m) & ((1 << e) - 1);
    let mant = (bits & ((1 << m) - 1)) as f64;
    let bias = (1i32 << (e - 1)) - 1;
    let v = if field == 0 {
        mant * 2f64.powi(1 - bias - m as i32)
    } else {
        (1.0 + mant / 2f64.powi(m as i32)) * 2f64.powi(field as i32 - bias)
    };
    sign * v
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f64> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect()
}

fn s(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A fresh folder `name` holding `map.toml` with `map_text`, and the folder of a one-epoch
/// MLP (784-16-8-10) run under it on `train` / `test` synthetic images.
fn trained_run(name: &str, map_text: &str, train: &str, test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("lowp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("map.toml");
    std::fs::write(&map, map_text).unwrap();
    let run = dir.join("run");
    let out = lowp(&[
        "train",
        "--epochs",
        "1",
        "--hidden",
        "16,8",
        "--train-size",
        train,
        "--test-size",
        test,
        "--precision",
        &s(&map),
        "--out",
        &s(&run),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, run)
}

/// The bytes of `lowp export RUN --as stored` and `--as fp32`, written in `dir`.
fn exports(dir: &Path, run: &Path) -> (Vec<u8>, Vec<u8>) {
    let (stored, fp32) = (dir.join("stored.safetensors"), dir.join("fp32.safetensors"));
    for (file, how) in [(&stored, "stored"), (&fp32, "fp32")] {
        let out = lowp(&["export", &s(run), &s(file), "--as", how]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        std::fs::read(&stored).unwrap(),
        std::fs::read(&fp32).unwrap(),
    )
}

#[test]
fn exported_parameters_load_in_their_dtypes_and_eval_repeats_the_runs_figures() {
    let (dir, run) = trained_run("export", MIXED_MAP, "640", "500");
    let map = dir.join("map.toml");
    let last = read_metrics(&run).pop().unwrap();
    // The run folder records what ran: the map's text and each tensor's resolved rounding.
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("settings.json")).unwrap()).unwrap();
    assert_eq!(settings["settings"]["precision_text"], MIXED_MAP);
    let resolved = |t: &str| {
        settings["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["tensor"] == t)
            .unwrap_or_else(|| panic!("no {t} in {settings}"))
            .clone()
    };
    assert_eq!(resolved("fc1.weight")["format"], "mxfp8_e4m3");
    assert_eq!(resolved("fc3.bias")["scaling"], "tensor");
    assert_eq!(resolved("fc2.weight")["saturate"], true);

    // eval: the same test loss and accuracy as the run's last epoch, on either engine, and
    // with the map file gone (the checkpoint records its text).
    std::fs::remove_file(&map).unwrap();
    for device in ["gpu", "cpu"] {
        let out = lowp(&["eval", &s(&run), "--json", "--device", device]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for k in ["test_acc", "test_images"] {
            assert_eq!(v[k], last[k], "{device}: {k}");
        }
        let (got, want) = (
            v["test_loss"].as_f64().unwrap(),
            last["test_loss"].as_f64().unwrap(),
        );
        if device == "gpu" {
            assert_eq!(got, want, "the run's own engine repeats its loss exactly");
        } else {
            // The CPU reference's exp and log are not the GPU's (WGSL allows exp an error
            // of 3 + 2|x| ulps), and it sums in another order: a few f32 ulps per sample.
            assert!(
                (got - want).abs() <= 1e-5 * want,
                "cpu: test_loss {got} vs {want}"
            );
        }
        assert_eq!(v["step"], 10);
    }

    // export: f32 values, and the stored codes in their dtypes, both readable by the crate.
    let (sb, fb) = exports(&dir, &run);
    let (st, ft) = (
        SafeTensors::deserialize(&sb).unwrap(),
        SafeTensors::deserialize(&fb).unwrap(),
    );
    let shapes = [
        ("fc1.weight", Dtype::F8_E4M3, vec![16, 784]),
        ("fc1.bias", Dtype::BF16, vec![16]),
        ("fc2.weight", Dtype::I8, vec![8, 16]),
        ("fc2.bias", Dtype::F8_E5M2, vec![8]),
        ("fc3.weight", Dtype::U8, vec![10, 8]),
        ("fc3.bias", Dtype::I16, vec![10]),
    ];
    let mut names: Vec<String> = ft.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "fc3.bias",
            "fc3.weight"
        ],
        "the f32 export holds the parameters only"
    );
    for (name, dtype, shape) in &shapes {
        let t = st.tensor(name).unwrap();
        assert_eq!((t.dtype(), t.shape()), (*dtype, &shape[..]), "{name}");
        assert_eq!(ft.tensor(name).unwrap().shape(), &shape[..], "{name}");
    }
    // Each stored tensor decoded here, by the formats' definitions, equals the f32 export.
    let bytes = |name: &str| st.tensor(name).unwrap().data().to_vec();
    let block_scales = bytes("fc1.weight.block_scales");
    assert_eq!(block_scales.len(), 16 * 784 / 32);
    let scale_exp = i32::from_le_bytes(bytes("fc3.bias.scale_exp")[..4].try_into().unwrap());
    let decoded: [(&str, Vec<f64>); 5] = [
        (
            "fc1.weight",
            bytes("fc1.weight")
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    float_value(b as u32, 4, 3) * 2f64.powi(block_scales[i / 32] as i32 - 127)
                })
                .collect(),
        ),
        (
            "fc1.bias",
            bytes("fc1.bias")
                .chunks_exact(2)
                .map(|c| float_value(u16::from_le_bytes([c[0], c[1]]) as u32, 8, 7))
                .collect(),
        ),
        (
            "fc2.weight",
            bytes("fc2.weight")
                .iter()
                .map(|&b| b as i8 as f64 / 64.0)
                .collect(),
        ),
        (
            "fc2.bias",
            bytes("fc2.bias")
                .iter()
                .map(|&b| float_value(b as u32, 5, 2))
                .collect(),
        ),
        (
            "fc3.bias",
            bytes("fc3.bias")
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64 / 256.0 * 2f64.powi(scale_exp))
                .collect(),
        ),
    ];
    for (name, want) in decoded {
        assert_eq!(f32s(&ft, name), want, "{name}");
    }
    // The format without a dtype: codes that fit its 8 bits, the format in the metadata.
    let (_, header) = SafeTensors::read_metadata(&sb).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["format.fc3.weight"], "float(e=3,m=4)");
    assert_eq!(meta["format.fc1.weight"], "mxfp8_e4m3");
    let codes = bytes("fc3.weight");
    let values: Vec<f64> = codes
        .iter()
        .map(|&c| {
            // e3m4 with IEEE specials: bias 3; no trained weight reaches Inf or NaN.
            assert!(c >> 4 & 7 != 7, "a special code");
            float_value(c as u32, 3, 4)
        })
        .collect();
    assert_eq!(f32s(&ft, "fc3.weight"), values);

    // Equal states give equal files.
    let again = dir.join("again.safetensors");
    let out = lowp(&["export", &s(&run), &s(&again), "--as", "stored"]);
    assert!(out.status.success());
    assert!(
        std::fs::read(&again).unwrap() == sb,
        "equal states, different exports"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// NVFP4 weights export as E2M1 codes (U8, one a byte), F8_E4M3 block scales (one per 16)
/// and an F32 tensor scale; decoded here by the formats' definitions, (e2m1 x scale) x
/// tensor scale in f32, they equal the f32 export, and the checkpoint evaluates as the run.
#[test]
fn nvfp4_weights_export_with_e4m3_block_scales_and_a_tensor_scale() {
    let map =
        "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.weight\"\nformat = \"nvfp4\"\n";
    let (dir, run) = trained_run("export-nv", map, "320", "200");
    let last = read_metrics(&run).pop().unwrap();
    let out = lowp(&["eval", &s(&run), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["test_acc"], last["test_acc"]);
    assert_eq!(v["test_loss"], last["test_loss"]);
    let (sb, fb) = exports(&dir, &run);
    let (st, ft) = (
        SafeTensors::deserialize(&sb).unwrap(),
        SafeTensors::deserialize(&fb).unwrap(),
    );
    for (name, shape) in [
        ("fc1.weight", [16, 784]),
        ("fc2.weight", [8, 16]),
        ("fc3.weight", [10, 8]),
    ] {
        let n = shape[0] * shape[1];
        let codes = st.tensor(name).unwrap();
        assert_eq!(
            (codes.dtype(), codes.shape()),
            (Dtype::U8, &shape[..]),
            "{name}"
        );
        let scales = st.tensor(&format!("{name}.block_scales")).unwrap();
        assert_eq!(
            (scales.dtype(), scales.shape()),
            (Dtype::F8_E4M3, &[n.div_ceil(16)][..]),
            "{name}"
        );
        let ts = f32s(&st, &format!("{name}.tensor_scale"));
        assert_eq!(ts.len(), 1, "{name}");
        let want: Vec<f64> = codes
            .data()
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                assert!(c < 16, "{name}: code {c} wider than 4 bits");
                let scale = float_value(scales.data()[i / 16] as u32, 4, 3) as f32;
                ((float_value(c as u32, 2, 1) as f32 * scale) * ts[0] as f32) as f64
            })
            .collect();
        assert_eq!(f32s(&ft, name), want, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
