//! Every parser and loader fed random and mutated input (proptest): format, rounding and
//! accumulator text, precision maps (resolved over a model), model files (built for a
//! data shape), sweep grids (expanded), .npy, IDX (plain and gzipped), CIFAR-10 batches,
//! CSV and LIBSVM tables, checkpoints. Each gives a typed error or a result, never a panic.
//! Mutations start from a valid input and replace, insert, delete and truncate bytes,
//! biased toward the characters each syntax uses, so most cases get past the first check.
//! Deeper searches: `LOWP_FUZZ_SCALE=50 LOWP_FUZZ_SEED=N cargo test --test fuzz_parsers`.

use lowp::train::checkpoint::{self, StoredTensor, TrainState};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// `cases` cases (times LOWP_FUZZ_SCALE, default 1) from a fixed seed (LOWP_FUZZ_SEED,
/// default 1), so that CI runs the same inputs every time; run with other seeds and more
/// cases to search further. Nothing is written to proptest-regressions.
fn config(cases: u32) -> ProptestConfig {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    ProptestConfig {
        cases: cases * env("LOWP_FUZZ_SCALE", 1) as u32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(env("LOWP_FUZZ_SEED", 1)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A scratch file of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lowp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Bytes each text syntax is made of (and a few it is not).
const TEXT: &[u8] = b"0123456789-+.eE=,()[]{}\"'#*:?\n \tabcdefghijklmnopqrstuvwxyz_\x00\xff";

/// One edit: (kind, where as a fraction of the length, the byte).
type Edit = (u8, f64, u8);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((0u8..4, 0.0f64..1.0, any::<u8>()), 1..8)
}

/// `seed` with `edits` applied: 0 replaces a byte, 1 inserts one, 2 deletes one, 3
/// truncates; with `text`, bytes are drawn from [`TEXT`] (half of the time).
fn mutate(seed: &[u8], edits: &[Edit], text: bool) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(kind, at, b) in edits {
        let b = if text && b & 1 == 0 {
            TEXT[b as usize / 2 % TEXT.len()]
        } else {
            b
        };
        let i = ((v.len() as f64) * at) as usize;
        match kind {
            0 if i < v.len() => v[i] = b,
            1 => v.insert(i.min(v.len()), b),
            2 if i < v.len() => {
                v.remove(i);
            }
            3 => v.truncate(i),
            _ => {}
        }
    }
    v
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const FORMATS: [&str; 8] = [
    "float(e=5,m=4,bias=11,specials=none,subnormals=false)",
    "fixed(wl=12,fl=4)",
    "mxfp4_e2m1",
    "e4m3",
    "float(e=8,m=7,specials=none)",
    "stochastic:12",
    "nearest-away",
    "bf16:32",
];

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn format_rounding_and_accumulator_text(i in 0usize..8, e in edits()) {
        let t = text_of(&mutate(FORMATS[i].as_bytes(), &e, true));
        if let Ok(f) = t.parse::<lowp::format::Format>() {
            // A format that parses describes itself and round-trips through its text.
            let _ = f.properties();
            prop_assert_eq!(f.to_string().parse::<lowp::format::Format>().unwrap(), f);
        }
        let _ = t.parse::<lowp::quant::Rounding>();
        let _ = t.parse::<lowp::accum::Accumulator>();
    }

    #[test]
    fn random_text_everywhere(t in "\\PC{0,80}") {
        let _ = t.parse::<lowp::format::Format>();
        let _ = t.parse::<lowp::quant::Rounding>();
        let _ = t.parse::<lowp::accum::Accumulator>();
        let _ = lowp::train::precision::PrecisionMap::parse(&t);
        let _ = lowp::train::model_file::ModelFile::parse(&t);
        let _ = lowp::sweep::grid::Grid::parse(&t);
        let _ = lowp::sweep::grid::parse_shard(&t);
    }
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn precision_maps_resolve_or_say_why(i in 0usize..3, e in edits(), adam in any::<bool>()) {
        use lowp::train::plan::{OptimKind, Plan, TrainConfig};
        let file = ["hfp8.toml", "e4m3.toml", "fp4.toml"][i];
        let seed = std::fs::read(root().join("examples/precision").join(file)).unwrap();
        let t = text_of(&mutate(&seed, &e, true));
        if let Ok(map) = lowp::train::precision::PrecisionMap::parse(&t) {
            let config = TrainConfig {
                kind: if adam { OptimKind::Adam } else { OptimKind::Sgd },
                lr: 0.1,
                ..TrainConfig::default()
            };
            let model = lowp::train::model::Model::mlp(20, &[8], 3);
            if let Ok(plan) = Plan::new(model, &map, map.master, config, 1) {
                let _ = plan.memory(4);
                let names: Vec<String> = plan.table().into_iter().map(|(n, _)| n).collect();
                let _ = map.shadowed(&names);
            }
        }
    }

    #[test]
    fn model_files_build_or_say_why(i in 0usize..3, e in edits(), hw in 1usize..40, classes in 1usize..12) {
        let file = ["lenet.toml", "resnet8.toml", "inception_mini.toml"][i];
        let seed = std::fs::read(root().join("examples/models").join(file)).unwrap();
        let t = text_of(&mutate(&seed, &e, true));
        if let Ok(m) = lowp::train::model_file::ModelFile::parse(&t) {
            for shape in [[1, hw, hw], [3, 32, 32], [1, 28, 28]] {
                if let Ok(model) = m.build(&shape, classes) {
                    let _ = model.tensor_names(true, true);
                }
            }
        }
    }

    #[test]
    fn grids_expand_or_say_why(e in edits()) {
        let seed = std::fs::read(root().join("examples/sweeps/lenet_maps.toml")).unwrap();
        let t = text_of(&mutate(&seed, &e, true));
        if let Ok(g) = lowp::sweep::grid::Grid::parse(&t) {
            let _ = g.runs();
        }
    }
}

/// A small valid .npy file's bytes.
fn npy_seed() -> Vec<u8> {
    let p = scratch("seed.npy");
    let a = lowp::data::npy::NpyArray {
        shape: vec![3, 5],
        fortran_order: false,
        data: (0..15).map(|i| i as f32 * 0.5 - 3.0).collect(),
    };
    lowp::data::npy::write_f32(&p, &a).unwrap();
    std::fs::read(&p).unwrap()
}

/// IDX images (3 of 4 x 5) and labels.
fn idx_seed(labels: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if labels {
        v.extend(0x0000_0801u32.to_be_bytes());
        v.extend(3u32.to_be_bytes());
        v.extend([1, 7, 3]);
    } else {
        v.extend(0x0000_0803u32.to_be_bytes());
        for d in [3u32, 4, 5] {
            v.extend(d.to_be_bytes());
        }
        v.extend((0..60).map(|i| (i * 7) as u8));
    }
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small checkpoint: packed e4m3, MX and fixed-point tensors with scales.
fn checkpoint_seed() -> Vec<u8> {
    let p = scratch("seed.safetensors");
    let t =
        |name: &str, format: &str, len: usize, words: Vec<u32>, scales: Vec<u32>| StoredTensor {
            name: name.into(),
            role: "param".into(),
            format: format.into(),
            len,
            shape: vec![len],
            words,
            scales,
        };
    let st = TrainState {
        step: 12,
        loss_scale: [0x3f80_0000, 0, 0x3f80_0000, 3, 0, 0, 0, 0],
        tensors: vec![
            t("a.weight", "e4m3", 6, vec![0x0403_0201, 0x0605], vec![]),
            t(
                "a.bias",
                "mxfp4_e2m1",
                40,
                vec![0x1234_5678; 5],
                vec![0x0000_7f80],
            ),
            t(
                "b.weight",
                "fixed(wl=12,fl=4)",
                3,
                vec![0xabc_def, 0x123],
                vec![5],
            ),
        ],
    };
    let meta = [("model".to_string(), "mlp".to_string())].into();
    checkpoint::save(&p, &st, &meta).unwrap();
    std::fs::read(&p).unwrap()
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn binary_files_load_or_say_why(which in 0usize..7, e in edits(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let seed = match which {
            0 => npy_seed(),
            1 => idx_seed(false),
            2 => idx_seed(true),
            3 => gz(&idx_seed(false)),
            4 => {
                let mut v = vec![3u8];
                v.extend((0..3072).map(|i| i as u8));
                v.extend(v.clone());
                v
            }
            5 => checkpoint_seed(),
            _ => raw.clone(),
        };
        let bytes = if which == 6 { raw } else { mutate(&seed, &e, false) };
        let p = scratch(&format!("case{which}"));
        std::fs::write(&p, &bytes).unwrap();
        let _ = lowp::data::npy::read_f32(&p);
        let _ = lowp::data::idx::read_images(&p);
        let _ = lowp::data::idx::read_labels(&p);
        let _ = lowp::data::cifar::read_batch(&p);
        if let Ok((state, meta)) = checkpoint::load(&p) {
            // What loads exports, and saves back to a file that loads to the same state.
            let _ = lowp::train::export::export(&state, &meta, lowp::train::export::ExportAs::Fp32);
            let again = scratch("again.safetensors");
            checkpoint::save(&again, &state, &meta).unwrap();
            prop_assert_eq!(checkpoint::load(&again).unwrap().0, state);
        }
    }

    #[test]
    fn tables_load_or_say_why(libsvm in any::<bool>(), e in edits(), target in 0usize..3) {
        let (seed, name): (&[u8], &str) = if libsvm {
            (b"1 1:0.5 3:-2\n-1 2:1e3 3:0.25\n0.5 1:7\n", "t.libsvm")
        } else {
            (b"carat,cut,price\n0.23,Ideal,326\n0.21,Premium,326\n0.29,Good,334\n", "t.csv")
        };
        let p = scratch(name);
        std::fs::write(&p, mutate(seed, &e, true)).unwrap();
        let t = if libsvm {
            lowp::data::table::Table::from_libsvm(&p)
        } else {
            lowp::data::table::Table::from_csv(&p, ["price", "cut", "carat"][target])
        };
        if let Ok(t) = t {
            prop_assert!(t.cols() > 0 || t.rows() == 0);
        }
    }
}
