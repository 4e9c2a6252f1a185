//! Precision maps: glob matching, first-match resolution, errors that list names, and the
//! example maps shipped in examples/precision.

use lowp::format::Format;
use lowp::quant::{Rounding, Scaling};
use lowp::train::glob::glob_match;
use lowp::train::precision::{PrecisionError, PrecisionMap};

/// The tensor names of a small LeNet-style model trained with momentum and master weights.
fn names() -> Vec<String> {
    let mut v = vec!["input".to_string()];
    for layer in ["conv1", "conv2", "fc1", "fc2"] {
        for t in [
            "weight", "bias", "act", "grad", "wgrad", "momentum", "master", "acc",
        ] {
            v.push(format!("{layer}.{t}"));
        }
    }
    v
}

#[test]
fn globs() {
    assert!(glob_match("*.weight", "fc1.weight"));
    assert!(
        glob_match("*.weight", "block1.conv2.weight"),
        "* crosses dots"
    );
    assert!(!glob_match("*.weight", "fc1.wgrad"));
    assert!(glob_match("fc?.act", "fc2.act"));
    assert!(!glob_match("fc?.act", "fc12.act"));
    assert!(glob_match("*", ""));
    assert!(glob_match("conv*.*", "conv1.bias"));
    assert!(!glob_match("input", "input2"));
    assert!(glob_match("*a*b*c", "xxaxxbxxbxxc"));
    assert!(!glob_match("*a*b*c", "xxaxxbxxbxx"));
}

#[test]
fn first_matching_rule_decides() {
    let m = PrecisionMap::parse(
        r#"
        default = { format = "bf16" }
        [[rule]]
        match = "fc2.*"
        format = "fp32"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        rounding = "stochastic:8"
        saturate = true
        [[rule]]
        match = "*.grad"
        format = "e5m2"
        scale = "tensor"
        "#,
    )
    .unwrap();
    let r = m.resolve(&names()).unwrap();
    let get = |n: &str| r.iter().find(|(name, _, _)| name == n).unwrap().clone();
    assert_eq!(
        get("fc2.weight").1.format,
        Format::FP32,
        "the earlier rule wins"
    );
    assert_eq!(get("fc2.weight").2, Some(0));
    let w = get("conv1.weight").1;
    assert_eq!(
        (w.format.to_string(), w.rounding, w.saturate),
        ("e4m3".into(), Rounding::Stochastic { bits: 8 }, true)
    );
    assert_eq!(get("fc1.grad").1.scaling, Scaling::Tensor);
    assert_eq!(get("input").1.format.to_string(), "bf16");
    assert_eq!(get("input").2, None);
}

#[test]
fn errors_list_the_names() {
    let names = names();
    let e = PrecisionMap::parse("[[rule]]\nmatch = \"*.weigth\"\nformat = \"e4m3\"\n[[rule]]\nmatch = \"*\"\nformat = \"fp32\"").unwrap().resolve(&names).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PrecisionError::UnusedRules { .. }));
    assert!(
        text.contains("1 (*.weigth)") && text.contains("conv1.weight"),
        "{text}"
    );
    let e = PrecisionMap::parse("[[rule]]\nmatch = \"*.weight\"\nformat = \"e4m3\"")
        .unwrap()
        .resolve(&names)
        .unwrap_err();
    assert!(matches!(e, PrecisionError::Unassigned { .. }));
    assert!(
        e.to_string().contains("input") && e.to_string().contains("fc2.acc"),
        "{e}"
    );
    let e = PrecisionMap::parse("default = { format = \"e9m9\" }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("default") && e.contains("unknown format"), "{e}");
    let e = PrecisionMap::parse("[[rule]]\nmatch = \"x\"\nformat = \"e4m3\"\nrounding = \"up\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rule 1 (x)") && e.contains("unknown rounding"),
        "{e}"
    );
    let e = PrecisionMap::parse("[[rule]]\nformat = \"e4m3\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs match"), "{e}");
    let e = PrecisionMap::parse("[[rule]]\nmatch = \"x\"\nformat = \"e4m3\"\nsaturated = true")
        .unwrap_err()
        .to_string();
    assert!(e.contains("saturated"), "unknown keys are named: {e}");
    let e = PrecisionMap::parse("default = { format = \"fp32\", scale = \"block\" }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("scale"), "{e}");
    let e = PrecisionMap::load(std::path::Path::new("/no/such/map.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such/map.toml"), "{e}");
}

#[test]
fn example_maps_parse_and_resolve() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/precision");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let m = PrecisionMap::load(&path).unwrap_or_else(|e| panic!("{e}"));
        // A map named for a model (`*_lenet`) names that model's layers.
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let names = if stem.ends_with("_lenet") {
            lowp::train::model::Model::lenet([1, 28, 28], 10)
                .unwrap()
                .tensor_names(true, false)
        } else {
            names()
        };
        let r = m
            .resolve(&names)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(r.len(), names.len());
        n += 1;
    }
    assert!(n >= 5, "fp32, bf16, hfp8, e4m3, fp4");
    let hfp8 = PrecisionMap::load(&dir.join("hfp8.toml"))
        .unwrap()
        .resolve(&names())
        .unwrap();
    let get = |n: &str| {
        hfp8.iter()
            .find(|(name, _, _)| name == n)
            .unwrap()
            .1
            .format
            .to_string()
    };
    assert_eq!(
        (
            get("fc1.weight"),
            get("fc1.act"),
            get("fc1.grad"),
            get("fc1.master")
        ),
        ("e4m3".into(), "e4m3".into(), "e5m2".into(), "fp32".into())
    );
}

/// A map's default is for stored tensors: accumulators stay fp32 unless a rule names them
/// (examples/precision/e4m3.toml once accumulated in e4m3, rounding after every add), and
/// a rule asks only for what an emulated accumulator does, else a one-line error naming
/// the rule.
#[test]
fn accumulators_follow_rules_only() {
    use lowp::accum::Accumulator;
    use lowp::train::model::Model;
    use lowp::train::plan::{Plan, TrainConfig};
    let model = Model::lenet([1, 12, 12], 4).unwrap();
    let plan_of = |text: &str| {
        Plan::new(
            model.clone(),
            &PrecisionMap::parse(text).unwrap(),
            false,
            TrainConfig::default(),
            1,
        )
    };
    let e4m3 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/precision/e4m3.toml"
    ))
    .unwrap();
    let plan = plan_of(&e4m3).unwrap();
    assert_eq!(plan.accumulator("conv1"), Accumulator::Fp32);
    assert_eq!(
        plan.spec("conv1.weight", 0, 0).format,
        "e4m3".parse().unwrap()
    );
    let with_rule =
        "default = { format = \"e4m3\" }\n[[rule]]\nmatch = \"*.acc\"\nformat = \"bf16\"\n";
    assert_eq!(
        plan_of(with_rule).unwrap().accumulator("fc1"),
        Accumulator::Emulated {
            format: "bf16".parse().unwrap(),
            chunk: 1
        }
    );
    for (rule, needle) in [
        ("format = \"mxfp8_e4m3\"", "block format"),
        ("format = \"nvfp4\"", "block format"),
        (
            "format = \"fp16\"\nrounding = \"stochastic\"",
            "nearest even",
        ),
        ("format = \"fp16\"\nsaturate = true", "neither saturates"),
    ] {
        let text =
            format!("default = {{ format = \"fp32\" }}\n[[rule]]\nmatch = \"*.acc\"\n{rule}\n");
        let e = plan_of(&text).expect_err("refused").to_string();
        assert!(e.contains("rule 1") && e.contains(needle), "{e}");
    }
}

/// An accumulator rule's `chunk` reaches the GEMMs; a chunk anywhere else, of 0, or on the
/// hardware's fp32 sum is refused; a default does not reach accumulators.
#[test]
fn accumulator_rules_and_their_chunks() {
    use lowp::accum::Accumulator;
    use lowp::train::model::Model;
    use lowp::train::plan::{Plan, TrainConfig};
    let model = || Model::mlp(12, &[6], 3);
    let plan = |text: &str| {
        Plan::new(
            model(),
            &PrecisionMap::parse(text)?,
            false,
            TrainConfig::default(),
            0,
        )
    };
    let p = plan(
        r#"
        default = { format = "e4m3" }
        [[rule]]
        match = "fc1.acc"
        format = "bf16"
        chunk = 16
        "#,
    )
    .unwrap();
    assert_eq!(
        p.accumulator("fc1"),
        Accumulator::Emulated {
            format: "bf16".parse().unwrap(),
            chunk: 16
        }
    );
    assert_eq!(
        p.accumulator("fc2"),
        Accumulator::Fp32,
        "the default stops at accumulators"
    );
    for (text, needle) in [
        (
            "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.weight\"\nformat = \"e4m3\"\nchunk = 4",
            "only accumulators",
        ),
        (
            "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.acc\"\nformat = \"fp16\"\nchunk = 0",
            "chunk = 0",
        ),
        (
            "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.acc\"\nformat = \"fp32\"\nchunk = 8",
            "hardware",
        ),
        (
            "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.acc\"\nformat = \"mxfp8_e4m3\"",
            "MX",
        ),
        (
            "default = { format = \"fp32\" }\n[[rule]]\nmatch = \"*.acc\"\nformat = \"fp16\"\nsaturate = true",
            "saturates",
        ),
    ] {
        let e = match plan(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted:\n{text}"),
        };
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}

/// A rule every one of whose tensors an earlier rule decides is reported, naming those rules.
#[test]
fn shadowed_rules_are_named() {
    let map = PrecisionMap::parse(
        r#"
        default = { format = "fp32" }
        [[rule]]
        match = "conv*"
        format = "bf16"
        [[rule]]
        match = "fc*"
        format = "fp16"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        [[rule]]
        match = "conv1.bias"
        format = "e5m2"
        "#,
    )
    .unwrap();
    let warnings = map.shadowed(&names());
    assert_eq!(
        warnings,
        [
            "rule 3 (*.weight) decides nothing: rule 1 (conv*) and rule 2 (fc*) decide every tensor it matches",
            "rule 4 (conv1.bias) decides nothing: rule 1 (conv*) decides every tensor it matches"
        ]
    );
}
