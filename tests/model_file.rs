//! Models described as nodes (TOML): the example files equal the built-in models layer for
//! layer, train to the same bytes through the CLI, and bad descriptions are one clear error.

mod common;

use lowp::train::checkpoint::load;
use lowp::train::model::Model;
use lowp::train::model_file::ModelFile;

fn example(name: &str) -> ModelFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/models")
        .join(name);
    ModelFile::load(&path).unwrap()
}

#[test]
fn the_example_files_are_the_built_in_models() {
    let lenet = example("lenet.toml");
    for (shape, classes) in [([1, 28, 28], 10), ([3, 32, 32], 7), ([1, 12, 12], 2)] {
        assert_eq!(
            lenet.build(&shape, classes).unwrap(),
            Model::lenet(shape, classes).unwrap(),
            "LeNet on {shape:?}"
        );
    }
    let resnet8 = example("resnet8.toml");
    for (shape, classes) in [([3, 32, 32], 10), ([1, 16, 16], 4)] {
        assert_eq!(
            resnet8.build(&shape, classes).unwrap(),
            Model::resnet(1, shape, classes).unwrap(),
            "ResNet-8 on {shape:?}"
        );
    }
}

/// The same run through the CLI, with the built-in LeNet and with the TOML one: the same
/// checkpointed state, bit for bit (every weight and optimizer tensor, the step state),
/// and the same metrics; the settings differ only in the model's name.
#[test]
fn a_toml_model_trains_bit_for_bit_like_the_built_in_one() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mnist = format!("{root}/../shared/data/mnist");
    let file = format!("{root}/examples/models/lenet.toml");
    let dir = std::env::temp_dir().join(format!("lowp-model-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut checkpoints = Vec::new();
    for (k, model) in ["lenet", file.as_str()].iter().enumerate() {
        let out = dir.join(k.to_string());
        let o = common::lowp(&[
            "train",
            "--model",
            model,
            "--data",
            &mnist,
            "--train-size",
            "64",
            "--test-size",
            "32",
            "--batch",
            "32",
            "--epochs",
            "1",
            "--precision",
            &format!("{root}/examples/precision/hfp8.toml"),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (state, settings) = load(&out.join("checkpoint.safetensors")).unwrap();
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        // Seconds differ from run to run; everything else must not.
        let metrics: Vec<String> = metrics
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut()
                    .unwrap()
                    .retain(|k, _| !k.contains("seconds"));
                v.to_string()
            })
            .collect();
        // A model file's text is recorded besides: the same settings otherwise.
        let shared = settings.keys().filter(|k| *k != "model_text").count();
        checkpoints.push((state, shared, metrics));
    }
    let (a, b) = (&checkpoints[0], &checkpoints[1]);
    assert_eq!(a.0.step, b.0.step);
    assert_eq!(a.0.loss_scale, b.0.loss_scale);
    assert_eq!(a.0.tensors.len(), b.0.tensors.len());
    for (x, y) in a.0.tensors.iter().zip(&b.0.tensors) {
        assert_eq!(
            (&x.name, &x.words, &x.scales),
            (&y.name, &y.words, &y.scales)
        );
    }
    assert_eq!(a.1, b.1, "the same settings");
    assert_eq!(a.2, b.2, "the same metrics");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_descriptions_are_one_clear_error() {
    let cases = [
        ("[[node]]\nkind = \"dense\"", "unknown kind \"dense\""),
        ("[[node]]\nkind = \"linear\"", "needs `out_features`"),
        (
            "[[node]]\nkind = \"relu\"\nkernel = 3",
            "a relu node does not take `kernel`",
        ),
        (
            "[[node]]\nkind = \"linear\"\nout_features = 4\ncolour = 1",
            "unknown field",
        ),
        (
            "[[node]]\nkind = \"relu\"\n[[node]]\nkind = \"relu\"\ninput = \"input\"",
            "node \"relu1\": its output is never read",
        ),
        (
            "[[node]]\nkind = \"relu\"\ninput = \"relu2\"\n[[node]]\nkind = \"relu\"",
            "reads \"relu2\", which is not an earlier node",
        ),
        (
            "[[node]]\nkind = \"relu\"\n[[node]]\nkind = \"concat\"\ninputs = [\"relu1\"]",
            "two or more nodes",
        ),
        (
            "[[node]]\nkind = \"maxpool2d\"\npool = 2\n[[node]]\nkind = \"concat\"\n\
             inputs = [\"pool1\", \"input\"]",
            "all of the same height and width",
        ),
        (
            "[[node]]\nkind = \"relu\"\n[[node]]\nkind = \"add\"",
            "an add node reads `inputs = [main, shortcut]`",
        ),
        (
            "[[node]]\nkind = \"relu\"\n[[node]]\nkind = \"add\"\n\
             inputs = [\"relu1\", \"input\"]\nshortcut = \"input\"",
            "an add node reads",
        ),
        (
            "[[node]]\nkind = \"conv2d\"\nout_channels = 4\nkernel = 9",
            "does not fit 4 x 4 inputs",
        ),
        (
            "[[node]]\nkind = \"linear\"\nout_features = 5",
            "ends in 5 values",
        ),
        (
            "[[node]]\nkind = \"relu\"\n[[node]]\nkind = \"add\"\nshortcut = \"nope\"",
            "not an earlier node",
        ),
        (
            "input = [1, 8, 8]\n[[node]]\nkind = \"flatten\"",
            "the data has [1, 4, 4]",
        ),
        (
            "[[node]]\nname = \"x\"\nkind = \"relu\"\n[[node]]\nname = \"x\"\nkind = \"relu\"",
            "must be new",
        ),
        (
            "[[node]]\nkind = \"linear\"\nout_features = \"many\"",
            "\"classes\"",
        ),
        (
            "[[node]]\nkind = \"maxpool2d\"\npool = 5",
            "does not fit 4 x 4",
        ),
        (
            "[[node]]\nkind = \"conv2d\"\nout_channels = 3\nkernel = 1\ngroups = 2",
            "2 groups must divide",
        ),
    ];
    for (text, want) in cases {
        let e = ModelFile::parse(text)
            .and_then(|m| m.build(&[1, 4, 4], 16))
            .expect_err(text);
        assert!(
            e.0.contains(want),
            "{text:?} gave {:?}, wanted {want:?}",
            e.0
        );
    }
}

#[test]
fn the_branched_example_builds_with_its_branches() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/models/inception_mini.toml");
    let m = ModelFile::load(&path)
        .unwrap()
        .build(&[1, 28, 28], 10)
        .unwrap();
    // The pooled stem feeds three branches; their concatenation has 8 + 8 + 4 channels.
    let pool = m
        .layers
        .iter()
        .position(|l| l.name() == "stem_pool")
        .unwrap();
    assert_eq!(m.consumers(pool).len(), 3);
    let mixed = m.layers.iter().find(|l| l.name() == "mixed").unwrap();
    assert_eq!(mixed.sample_shape(), vec![20, 14, 14]);
    let weights: usize = m
        .layers
        .iter()
        .filter_map(|l| l.param_sizes())
        .map(|(w, b, _)| w + b)
        .sum();
    assert_eq!(weights, 11_098);
}
