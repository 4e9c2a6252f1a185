//! The GPU training engine equals the CPU reference trainer, step after step, bit for bit
//! where every rounding is exact by construction (fixed point with exact integer GEMMs,
//! emulated accumulators, soft-float softmax and SGD).

mod common;

use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{LossKind, LossScale, LrSchedule, OptimKind, Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

/// SGD with Nesterov momentum and weight decay, no loss scaling.
fn sgd() -> TrainConfig {
    TrainConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-3,
        nesterov: true,
        ..Default::default()
    }
}

fn check(map_text: &str, master: bool, steps: usize) {
    check_model(Model::mlp(12, &[10, 8], 4), map_text, master, steps, sgd());
}

/// Trains `steps` steps on the CPU and the GPU and compares every step; returns
/// (steps skipped by loss scaling, distinct loss scales seen).
fn check_model(
    model: Model,
    map_text: &str,
    master: bool,
    steps: usize,
    config: TrainConfig,
) -> (usize, usize) {
    let ctx = common::gpu();
    let inputs = model.inputs;
    let map = PrecisionMap::parse(map_text).unwrap();
    let plan = Plan::new(model.clone(), &map, master, config, 77).unwrap();
    let batch = 6;
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let (mut skipped, mut scales) = (0, Vec::new());
    let initial: Vec<Vec<u32>> = cpu
        .state
        .iter()
        .flatten()
        .map(|s| s.w.words.clone())
        .collect();
    // The memory report's figures are the sums of the GPU buffers' real sizes.
    let (planned, fp32) = cpu.plan.memory(batch);
    assert_eq!(gpu.stored_bytes(), planned);
    assert!(
        planned.total() < fp32.total(),
        "{planned:?} vs fp32 {fp32:?}"
    );
    for step in 0..steps {
        let x = common::uniform(batch * inputs, step as u64, 2.0);
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 3 + step as u32) % model.classes() as u32)
            .collect();
        let c = cpu.step(&x, &labels);
        let g = gpu.step(&x, &labels).unwrap();
        assert_eq!(g.correct, c.correct, "step {step}: correct counts");
        assert_eq!(
            (g.loss_scale, g.skipped, g.grad_exceptions),
            (c.loss_scale, c.skipped, c.grad_exceptions),
            "step {step}: loss scaling (scale, skipped, gradient exceptions)"
        );
        skipped += c.skipped as usize;
        if !scales.contains(&c.loss_scale) {
            scales.push(c.loss_scale);
        }
        // Each side takes its own f32 log of the same bits: agree to a few ulp of the loss.
        assert!(
            (g.loss - c.loss).abs() <= 1e-5 * c.loss.abs() + 1e-6,
            "step {step}: loss {} vs {}",
            g.loss,
            c.loss
        );
        for (i, st) in cpu.state.iter().enumerate() {
            let Some(st) = st else { continue };
            let (w, b) = gpu.read_params(i).unwrap();
            assert_eq!(w, st.w.words, "step {step}: layer {i} weights differ");
            assert_eq!(b, st.b.words, "step {step}: layer {i} biases differ");
        }
        assert!(
            c.loss.is_finite() && c.loss > 0.0,
            "step {step}: loss {}",
            c.loss
        );
        // Evaluation of a short batch (padded on the GPU) counts only its own samples.
        let short = batch - 1 - step % 2;
        let (ge, ce) = (
            gpu.evaluate(&x[..short * inputs], &labels[..short])
                .unwrap(),
            cpu.evaluate(&x[..short * inputs], &labels[..short]),
        );
        assert_eq!(ge.correct, ce.correct, "step {step}: evaluation");
        assert!((ge.loss - ce.loss).abs() <= 1e-5 * ce.loss.abs() + 1e-6);
    }
    // The whole state agrees: momenta, Adam's second moments, master copies, loss scale.
    assert_eq!(
        gpu.state().unwrap(),
        cpu.state(),
        "state after {steps} steps"
    );
    // So do the roundings' statistics: every stored tensor, once per training step (the
    // evaluations between the steps do not count), its exceptions and amax equal.
    let (gs, cs) = (
        std::mem::take(gpu.tensor_log()),
        std::mem::take(cpu.tensor_log()),
    );
    assert_eq!(gs, cs, "tensor statistics after {steps} steps");
    for (name, part, n) in cpu.plan.tensor_sizes(batch) {
        let s = cs.get(&(name.clone(), part));
        let s = s.unwrap_or_else(|| panic!("{name} part {part}: no statistics"));
        assert_eq!(s.elements, (steps * n) as u64, "{name} part {part}");
    }
    assert_eq!(cs.len(), cpu.plan.tensor_sizes(batch).len());
    // Training moved every layer's weights (the comparison above is not of frozen values).
    for (w0, st) in initial.iter().zip(cpu.state.iter().flatten()) {
        let changed = w0.iter().zip(&st.w.words).filter(|(a, b)| a != b).count();
        assert!(
            changed * 4 > w0.len(),
            "only {changed} of {} weight words changed",
            w0.len()
        );
    }
    (skipped, scales.len())
}

#[test]
fn sixteen_bit_fixed_point_training_is_bit_exact() {
    check(
        r#"
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
        "#,
        false,
        4,
    );
}

#[test]
fn eight_bit_fixed_point_training_is_bit_exact() {
    check(
        r#"
        default = { format = "fixed(wl=16,fl=12)" }
        [[rule]]
        match = "*.acc"
        format = "fp32"
        [[rule]]
        match = "input"
        format = "fixed(wl=8,fl=5)"
        [[rule]]
        match = "*.weight"
        format = "fixed(wl=8,fl=6)"
        rounding = "stochastic"
        [[rule]]
        match = "*.act"
        format = "fixed(wl=8,fl=4)"
        [[rule]]
        match = "*.grad"
        format = "fixed(wl=8,fl=7)"
        rounding = "stochastic:8"
        "#,
        false,
        4,
    );
}

#[test]
fn fp8_training_with_emulated_accumulators_is_bit_exact() {
    check(
        r#"
        default = { format = "bf16" }
        [[rule]]
        match = "*.acc"
        format = "fp16"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        rounding = "stochastic"
        saturate = true
        [[rule]]
        match = "input"
        format = "e4m3"
        [[rule]]
        match = "*.grad"
        format = "e5m2"
        [[rule]]
        match = "*.master"
        format = "fp32"
        "#,
        true,
        4,
    );
}

/// Accumulators that sum 8 (fc1) or 3 (the rest) products in f32 between roundings to
/// fp16 (`chunk` in the map), in the forward, backward-data and weight-gradient GEMMs.
#[test]
fn chunked_accumulators_are_bit_exact() {
    check(
        r#"
        default = { format = "bf16" }
        [[rule]]
        match = "fc1.acc"
        format = "fp16"
        chunk = 8
        [[rule]]
        match = "*.acc"
        format = "fp16"
        chunk = 3
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        saturate = true
        "#,
        false,
        3,
    );
}

#[test]
fn lenet_training_is_bit_exact() {
    // LeNet-5 on 1 x 12 x 12 images: conv 5x5 pad 2, ReLU, pool, conv 5x5, ReLU, pool (to
    // 16 x 1 x 1), then 120, 84, 4: every layer kind, with exact 16-bit fixed point.
    let model = Model::lenet([1, 12, 12], 4).unwrap();
    check_model(model, FIXED16, false, 3, sgd());
}

#[test]
fn lenet_with_fp8_and_emulated_accumulators_is_bit_exact() {
    let model = Model::lenet([1, 12, 12], 4).unwrap();
    check_model(
        model,
        r#"
        default = { format = "bf16" }
        [[rule]]
        match = "*.acc"
        format = "bf16"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        rounding = "stochastic"
        [[rule]]
        match = "*.grad"
        format = "e5m2"
        "#,
        false,
        3,
        sgd(),
    );
}

/// fp8 storage with fp16 accumulators under Adam and dynamic loss scaling started far too
/// high (2^20), so that e5m2 gradients overflow: steps are skipped and the scale halves,
/// identically on both sides.
const FP8_ADAM_MAP: &str = r#"
    default = { format = "bf16" }
    [[rule]]
    match = "*.acc"
    format = "fp16"
    [[rule]]
    match = "*.weight"
    format = "e4m3"
    rounding = "stochastic"
    saturate = true
    [[rule]]
    match = "*.grad"
    format = "e5m2"
    [[rule]]
    match = "*.wgrad"
    format = "e5m2"
    [[rule]]
    match = "*.master"
    format = "fp32"
    [[rule]]
    match = "*.moment2"
    format = "fp32"
"#;

fn adam_dynamic() -> TrainConfig {
    TrainConfig {
        kind: OptimKind::Adam,
        lr: 1e-2,
        weight_decay: 1e-4,
        loss_scale: LossScale::Dynamic {
            init: 2f32.powi(20),
            interval: 2,
        },
        ..Default::default()
    }
}

#[test]
fn adam_with_dynamic_loss_scaling_is_bit_exact() {
    let (skipped, scales) = check_model(
        Model::mlp(12, &[10, 8], 4),
        FP8_ADAM_MAP,
        true,
        10,
        adam_dynamic(),
    );
    // The test exercises both branches: overflowing steps skipped, the scale moved.
    assert!((1..10).contains(&skipped), "{skipped} of 10 steps skipped");
    assert!(scales >= 3, "only {scales} distinct loss scales");
}

#[test]
fn static_loss_scaling_is_bit_exact() {
    let config = TrainConfig {
        loss_scale: LossScale::Static(256.0),
        ..sgd()
    };
    // SGD keeps no second moments, so the map's `*.moment2` rule would match nothing.
    let map = FP8_ADAM_MAP.replace("match = \"*.moment2\"", "match = \"*.momentum\"");
    let (skipped, scales) = check_model(Model::mlp(12, &[10, 8], 4), &map, true, 3, config);
    assert_eq!((skipped, scales), (0, 1));
}

#[test]
fn a_cosine_schedule_is_bit_exact() {
    // 5 steps of a 4-step decay: the rate falls every step, then stays at 0.
    let config = TrainConfig {
        schedule: LrSchedule::Cosine { steps: 4 },
        ..sgd()
    };
    let rates: Vec<f32> = (0..5).map(|s| config.lr_at(s)).collect();
    assert_eq!(rates[0], 0.1);
    assert!(
        rates.windows(2).all(|w| w[1] < w[0] || w[1] == 0.0),
        "{rates:?}"
    );
    assert!(
        (rates[2] - 0.05).abs() < 1e-8 && rates[4] == 0.0,
        "{rates:?}"
    );
    let map = FP8_ADAM_MAP.replace("match = \"*.moment2\"", "match = \"*.momentum\"");
    check_model(Model::mlp(12, &[10, 8], 4), &map, true, 5, config);
}

#[test]
fn restoring_a_saved_state_continues_exactly() {
    // 6 steps straight, against 3 steps, a checkpoint file, a fresh trainer restored from
    // it, and 3 more steps: the same final state, bit for bit.
    let ctx = common::gpu();
    let model = Model::mlp(12, &[10, 8], 4);
    let map = PrecisionMap::parse(FP8_ADAM_MAP).unwrap();
    let plan = Plan::new(model.clone(), &map, true, adam_dynamic(), 5).unwrap();
    let batch = 6;
    let data = |step: usize| {
        let x = common::uniform(batch * 12, 100 + step as u64, 2.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| (i + step as u32) % 4).collect();
        (x, y)
    };
    let mut straight = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
    for s in 0..6 {
        let (x, y) = data(s);
        straight.step(&x, &y).unwrap();
    }
    let mut first = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
    for s in 0..3 {
        let (x, y) = data(s);
        first.step(&x, &y).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("lowp-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checkpoint.safetensors");
    let meta = [("note".to_string(), "test".to_string())].into();
    lowp::train::checkpoint::save(&path, &first.state().unwrap(), &meta).unwrap();
    drop(first);
    let (saved, meta_back) = lowp::train::checkpoint::load(&path).unwrap();
    assert_eq!(meta_back, meta);
    assert_eq!(saved.step, 3);
    // One bit flipped anywhere in the tensor data, or a byte in the header's numbers, and
    // the file is refused as damaged (or unreadable), never resumed.
    let good = std::fs::read(&path).unwrap();
    // The same state saved again gives the same bytes (the header's keys are sorted).
    let again = dir.join("again.safetensors");
    lowp::train::checkpoint::save(&again, &saved, &meta).unwrap();
    assert!(
        std::fs::read(&again).unwrap() == good,
        "equal states, different files"
    );
    let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
    let damaged = dir.join("damaged.safetensors");
    let mut refused = 0;
    for at in (header..good.len())
        .step_by(97)
        .chain([header + 1, good.len() - 1])
    {
        for bit in [0, 7] {
            let mut bytes = good.clone();
            bytes[at] ^= 1 << bit;
            std::fs::write(&damaged, &bytes).unwrap();
            let e = lowp::train::checkpoint::load(&damaged).expect_err("a damaged file resumed");
            assert!(e.to_string().contains("damaged"), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 20);
    let mut resumed = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
    resumed.restore(&saved).unwrap();
    for s in 3..6 {
        let (x, y) = data(s);
        resumed.step(&x, &y).unwrap();
    }
    assert_eq!(resumed.state().unwrap(), straight.state().unwrap());
    // The CPU trainer restores the same file to the same continuation.
    let mut cpu = CpuTrainer::new(plan.clone());
    cpu.restore(&saved).unwrap();
    for s in 3..6 {
        let (x, y) = data(s);
        cpu.step(&x, &y);
    }
    assert_eq!(cpu.state(), straight.state().unwrap());
    // A checkpoint of another map is refused with the tensor named.
    let other = Plan::new(
        model,
        &PrecisionMap::parse("default = { format = \"fp32\" }").unwrap(),
        true,
        adam_dynamic(),
        5,
    )
    .unwrap();
    let err = GpuTrainer::new(&ctx, other, batch)
        .unwrap()
        .restore(&saved)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc1.weight") || err.contains("weight"),
        "{err}"
    );
    // A checkpoint whose last tensor is short is refused, and nothing of it is written:
    // both trainers keep the state they had.
    let mut short = saved.clone();
    short.tensors.last_mut().unwrap().words.pop();
    let before = (resumed.state().unwrap(), cpu.state());
    assert!(resumed.restore(&short).is_err());
    assert!(cpu.restore(&short).is_err());
    assert_eq!((resumed.state().unwrap(), cpu.state()), before);
    assert_ne!(before.0, saved, "the trainers moved on from the checkpoint");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mse_training_is_bit_exact() {
    let config = TrainConfig {
        loss: LossKind::Mse,
        ..sgd()
    };
    let map = r#"
        default = { format = "fixed(wl=16,fl=10)" }
        [[rule]]
        match = "*.acc"
        format = "fp32"
        [[rule]]
        match = "*.grad"
        format = "fixed(wl=16,fl=14)"
        rounding = "stochastic"
    "#;
    check_model(Model::mlp(12, &[10, 8], 4), map, false, 4, config);
}

/// A ResNet-8 on 2 x 8 x 8 images: every ResNet layer (stride-2 convolutions, batch norm,
/// identity and option-A shortcuts, global average pooling, flatten), exact 16-bit fixed
/// point: the GPU equals the CPU step after step, running statistics included.
#[test]
fn resnet_training_is_bit_exact() {
    let model = Model::resnet(1, [2, 8, 8], 4).unwrap();
    let map = r#"
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
        format = "fixed(wl=16,fl=12)"
    "#;
    check_model(model, map, false, 3, sgd());
}

/// The same ResNet in bf16 with fp8 weights and bf16 emulated accumulators under Adam.
#[test]
fn resnet_with_fp8_adam_is_bit_exact() {
    let model = Model::resnet(1, [2, 8, 8], 4).unwrap();
    let map = r#"
        default = { format = "bf16" }
        [[rule]]
        match = "*.acc"
        format = "bf16"
        [[rule]]
        match = "*bn?.weight"
        format = "bf16"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        saturate = true
        [[rule]]
        match = "*.grad"
        format = "e5m2"
    "#;
    // Batch-norm scales start at 1 and keep bf16, so that three steps move them.
    let config = TrainConfig {
        kind: OptimKind::Adam,
        lr: 1e-2,
        ..Default::default()
    };
    check_model(model, map, true, 3, config);
}

/// Gradients with per-tensor scales (as `examples/precision/e4m3.toml` has): each
/// gradient's scale comes from its own largest value, on both sides.
#[test]
fn tensor_scaled_gradients_are_bit_exact() {
    check_model(
        Model::lenet([1, 12, 12], 4).unwrap(),
        r#"
        default = { format = "bf16" }
        [[rule]]
        match = "*.acc"
        format = "fp16"
        [[rule]]
        match = "*.grad"
        format = "e4m3"
        saturate = true
        scale = "tensor"
        [[rule]]
        match = "*.wgrad"
        format = "e5m2"
        scale = "tensor"
        [[rule]]
        match = "*.weight"
        format = "e4m3"
        saturate = true
        "#,
        false,
        3,
        sgd(),
    );
}

/// The shipped `examples/precision/fp4.toml` (MXFP4 weights and activations, MXFP8 E5M2
/// gradients, fp32 masters) on LeNet, with an emulated fp16 accumulator added so that every
/// rounding is defined: MX operands in every convolution and GEMM, GPU equal to CPU.
#[test]
fn lenet_under_the_example_fp4_map_is_bit_exact() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/precision/fp4.toml");
    let map = std::fs::read_to_string(path).unwrap()
        + "\n[[rule]]\nmatch = \"*.acc\"\nformat = \"fp16\"\n";
    check_model(Model::lenet([1, 12, 12], 4).unwrap(), &map, true, 3, sgd());
}

/// The shipped `examples/precision/nvfp4.toml` (NVFP4 weights, activations and
/// stochastically rounded gradients: E4M3 block scales under fp32 tensor scales) on LeNet
/// and an MLP, with an fp16 accumulator so every rounding is defined: GPU equal to CPU.
#[test]
fn lenet_and_mlp_under_the_example_nvfp4_map_are_bit_exact() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/precision/nvfp4.toml");
    let map = std::fs::read_to_string(path).unwrap()
        + "\n[[rule]]\nmatch = \"*.acc\"\nformat = \"fp16\"\n";
    check_model(Model::lenet([1, 12, 12], 4).unwrap(), &map, true, 2, sgd());
    check_model(Model::mlp(40, &[24, 18], 5), &map, true, 3, sgd());
}

/// ResNet-20 as He et al. build it for CIFAR-10 (3 x 32 x 32, three stages of three
/// blocks, 16/32/64 channels, option-A shortcuts): 19 convolutions and one Linear layer,
/// 268,336 weights (conv 267,696 + fc 640, He et al.'s 0.27M); one step on the GPU equals
/// the CPU reference's under exact 16-bit fixed point.
#[test]
fn resnet20_is_built_and_steps_bit_exact() {
    use lowp::train::model::Layer;
    // At 16 x 16 rather than CIFAR's 32 x 32: the same layers and weights (average pooling
    // ends the network), a quarter of the CPU reference's work.
    let model = Model::resnet(3, [3, 16, 16], 10).unwrap();
    let (mut convs, mut linears, mut weights) = (0, 0, 0);
    for l in &model.layers {
        match l {
            Layer::Conv2d {
                cin, cout, kernel, ..
            } => {
                convs += 1;
                weights += cin * cout * kernel * kernel;
            }
            Layer::Linear {
                inputs, outputs, ..
            } => {
                linears += 1;
                weights += inputs * outputs;
            }
            _ => {}
        }
    }
    assert_eq!((convs, linears, weights), (19, 1, 268_336));
    let map = r#"
        default = { format = "fixed(wl=16,fl=10)" }
        [[rule]]
        match = "*.acc"
        format = "fp32"
        [[rule]]
        match = "*.grad"
        format = "fixed(wl=16,fl=14)"
        [[rule]]
        match = "*.wgrad"
        format = "fixed(wl=16,fl=12)"
    "#;
    let plan = Plan::new(model, &PrecisionMap::parse(map).unwrap(), false, sgd(), 5).unwrap();
    let ctx = common::gpu();
    let batch = 2;
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let before = cpu.state();
    let x = common::uniform(batch * 3 * 16 * 16, 1, 2.0);
    let labels = [3, 7];
    let (c, g) = (cpu.step(&x, &labels), gpu.step(&x, &labels).unwrap());
    assert!(c.loss.is_finite() && (g.loss - c.loss).abs() <= 1e-5 * c.loss.abs());
    let after = cpu.state();
    assert_eq!(
        gpu.state().unwrap(),
        after,
        "ResNet-20 state after one step"
    );
    let moved = before
        .tensors
        .iter()
        .zip(&after.tensors)
        .filter(|(a, b)| {
            a.name.ends_with(".weight") && !a.name.contains("momentum") && a.words != b.words
        })
        .count();
    assert_eq!(
        moved,
        20 + 19,
        "every weight tensor (convolutions, batch norms, fc) moved"
    );
}

/// A small MobileNet-style model (a depthwise 3x3 with a channel multiplier, a grouped 1x1,
/// batch norm) described as nodes: the GPU equals the CPU reference bit for bit.
#[test]
fn grouped_and_depthwise_convolutions_train_bit_exact() {
    let model = lowp::train::model_file::ModelFile::parse(common::GROUPED_MODEL)
        .unwrap()
        .build(&[2, 8, 8], 4)
        .unwrap();
    check_model(model, FIXED16, false, 3, sgd());
}

/// A model with branches, several readers of one output (their gradients summed),
/// channel and feature concatenation: the GPU equals the CPU reference bit for bit.
#[test]
fn branched_models_train_bit_exact() {
    let model = lowp::train::model_file::ModelFile::parse(common::BRANCHED_MODEL)
        .unwrap()
        .build(&[2, 8, 8], 4)
        .unwrap();
    check_model(model, FIXED16, false, 3, sgd());
}

/// Exact 16-bit fixed point for weights and activations, stochastic rounding of the
/// gradients, fp32 accumulators (exact for these operands).
const FIXED16: &str = r#"
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
    format = "fixed(wl=16,fl=12)"
"#;

#[test]
fn halp_training_is_bit_exact() {
    // Bit-centred SVRG: a full-gradient pass over three batches, then steps from the
    // centre, a second pass (re-centring), more steps; weights in 8-bit fixed point with
    // stochastic rounding (the offset too), a per-tensor scaled e4m3 bias, a static loss
    // scale of 4. After every pass and step the whole state (centre, offset, full gradient,
    // parameters) agrees, and the offset holds 8-bit codes of a nonzero step.
    use lowp::train::engine::Pass;
    let ctx = common::gpu();
    let model = Model::mlp(12, &[10, 8], 4);
    let map = PrecisionMap::parse(
        r#"
        default = { format = "fixed(wl=16,fl=12)" }
        [[rule]]
        match = "*.acc"
        format = "fp32"
        [[rule]]
        match = "*.weight"
        format = "fixed(wl=8,fl=6)"
        rounding = "stochastic"
        [[rule]]
        match = "*.bias"
        format = "e4m3"
        scale = "tensor"
        [[rule]]
        match = "*.grad"
        format = "fixed(wl=16,fl=14)"
        rounding = "stochastic"
        "#,
    )
    .unwrap();
    let config = TrainConfig {
        kind: OptimKind::Halp,
        lr: 0.2,
        loss_scale: LossScale::Static(4.0),
        ..Default::default()
    };
    let plan = Plan::new(model.clone(), &map, false, config, 5).unwrap();
    assert!(plan.master && plan.keeps_moment2());
    assert_eq!(
        plan.spec("fc1.momentum", 0, 1).format,
        plan.spec("fc1.weight", 0, 0).format
    );
    let batch = 6;
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let data = |k: u64| {
        let x = common::uniform(batch * model.inputs, k, 2.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| (i * 3 + k as u32) % 4).collect();
        (x, y)
    };
    let full = |cpu: &mut CpuTrainer, gpu: &mut GpuTrainer| {
        for b in 0..3u64 {
            let (x, y) = data(100 + b);
            let pass = Pass::HalpFull {
                first: b == 0,
                inv: 1.0 / 3.0,
            };
            cpu.pass(&x, &y, pass);
            gpu.submit_pass(&x, &y, pass).unwrap();
            gpu.readback_all().unwrap();
        }
        assert_eq!(gpu.state().unwrap(), cpu.state(), "after a full pass");
    };
    for round in 0..2 {
        full(&mut cpu, &mut gpu);
        for k in 0..3u64 {
            let (x, y) = data(round * 10 + k);
            let c = cpu.step(&x, &y);
            let g = gpu.step(&x, &y).unwrap();
            assert_eq!(g.correct, c.correct);
            assert_eq!(gpu.state().unwrap(), cpu.state(), "round {round}, step {k}");
        }
    }
    // The offset moved off zero (its codes are not all zero) and steps were counted.
    let st = cpu.state.iter().flatten().next().unwrap();
    assert!(st.vw.words.iter().any(|&w| w != 0));
    assert_eq!(cpu.step, 6);
    // The roundings' statistics agree: the steps' two gradients, the offset's steps and the
    // re-centrings (the full passes are not steps and do not count).
    let stats = std::mem::take(cpu.tensor_log());
    assert_eq!(std::mem::take(gpu.tensor_log()), stats);
    let offset = stats.keys().find(|k| k.0.ends_with(".momentum")).unwrap();
    assert!(stats[offset].elements > 0, "{stats:?}");
}

#[test]
fn tensor_statistics_count_what_the_formats_do() {
    // The input in e4m3 (largest finite 448, overflowing from 464 up) fed values up to
    // 1,000: its statistics against an independent count of the same values; without
    // saturation the overflows are infinities, whose NaNs the statistics then show
    // downstream, with it every later tensor stays finite.
    for saturate in [false, true] {
        let ctx = common::gpu();
        let model = Model::mlp(12, &[8], 4);
        let text = format!(
            "default = {{ format = \"fp32\" }}\n[[rule]]\nmatch = \"input\"\n\
             format = \"e4m3\"\nsaturate = {saturate}\n"
        );
        let map = PrecisionMap::parse(&text).unwrap();
        let plan = Plan::new(model, &map, false, sgd(), 5).unwrap();
        let batch = 6;
        let mut gpu = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
        let mut cpu = CpuTrainer::new(plan);
        let (mut amax, mut over_lo, mut over_hi, mut underflow) = (0f32, 0u64, 0u64, 0u64);
        for step in 0..3u64 {
            let x: Vec<f32> = common::uniform(batch * 12, step, 2.0)
                .iter()
                .enumerate()
                .map(|(i, v)| match i % 3 {
                    0 => v * 500.0,
                    1 => v * 1e-4,
                    _ => *v,
                })
                .collect();
            for v in &x {
                amax = amax.max(v.abs());
                // e4m3's smallest subnormal is 2^-9: below half of it rounds to zero.
                underflow += (*v != 0.0 && v.abs() < 2f32.powi(-10)) as u64;
                // Past 448 overflows once it rounds above it: from 464 surely.
                over_lo += (v.abs() >= 464.0) as u64;
                over_hi += (v.abs() > 448.0) as u64;
            }
            let labels: Vec<u32> = (0..batch as u32).map(|i| i % 4).collect();
            cpu.step(&x, &labels);
            gpu.step(&x, &labels).unwrap();
        }
        let stats = std::mem::take(cpu.tensor_log());
        assert_eq!(std::mem::take(gpu.tensor_log()), stats);
        let input = &stats[&("input".to_string(), 0)];
        let e = &input.exceptions;
        assert_eq!(input.elements, 3 * 6 * 12);
        assert_eq!(e.amax, amax);
        assert!(
            over_lo > 0 && (over_lo..=over_hi).contains(&e.overflow),
            "{e:?}"
        );
        assert_eq!((e.underflow, e.nan), (underflow, 0));
        let act = &stats[&("fc1.act".to_string(), 0)];
        match saturate {
            // Infinite inputs make every first-layer output NaN.
            false => assert_eq!(act.rates()[2], 1.0, "{act:?}"),
            // fp32 rounds nothing away: no exceptions, and an amax of its own.
            true => {
                let a = &act.exceptions;
                assert_eq!((a.overflow, a.underflow, a.nan), (0, 0, 0));
                assert!(a.amax > 0.0 && a.amax.is_finite());
            }
        }
    }
}

#[test]
fn halp_moves_batch_norm_running_statistics_once_a_step() {
    // ResNet-8 on 2 x 8 x 8 images trained by HALP: the full-gradient pass and
    // the gradient at the centre normalise with their batches' statistics but leave the
    // running ones alone; each step moves them once, from the point's batch. GPU and CPU
    // agree on all of it.
    use lowp::train::engine::Pass;
    use lowp::train::model::Layer;
    let ctx = common::gpu();
    let model = Model::resnet(1, [2, 8, 8], 4).unwrap();
    let k = model
        .layers
        .iter()
        .position(|l| matches!(l, Layer::BatchNorm2d { .. }))
        .expect("a batch-norm layer");
    let map = PrecisionMap::parse(FIXED16).unwrap();
    let config = TrainConfig {
        kind: OptimKind::Halp,
        lr: 0.05,
        ..Default::default()
    };
    let plan = Plan::new(model.clone(), &map, false, config, 3).unwrap();
    let batch = 4;
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut gpu = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let data = |k: u64| {
        let x = common::uniform(batch * model.inputs, k, 2.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| (i + k as u32) % 4).collect();
        (x, y)
    };
    let bn = |cpu: &CpuTrainer| {
        cpu.bn[k]
            .clone()
            .expect("the first batch norm's statistics")
    };
    let before = bn(&cpu);
    for b in 0..2u64 {
        let (x, y) = data(10 + b);
        let pass = Pass::HalpFull {
            first: b == 0,
            inv: 0.5,
        };
        cpu.pass(&x, &y, pass);
        gpu.submit_pass(&x, &y, pass).unwrap();
        gpu.readback_all().unwrap();
    }
    let after_pass = bn(&cpu);
    assert_eq!(after_pass.running_mean, before.running_mean);
    assert_eq!(after_pass.running_var, before.running_var);
    assert_eq!(gpu.state().unwrap(), cpu.state(), "after the full pass");
    let (x, y) = data(20);
    cpu.step(&x, &y);
    gpu.step(&x, &y).unwrap();
    let st = bn(&cpu);
    // From a running mean of 0, one update is exactly momentum times the batch's mean (the
    // last forward pass's: the point's).
    let momentum = model.layers[k].batch_norm(batch).unwrap().momentum;
    assert!(before.running_mean.iter().all(|&m| m == 0.0));
    let once: Vec<f32> = st.mean.iter().map(|&m| momentum * m).collect();
    assert_eq!(st.running_mean, once);
    assert!(st.running_mean.iter().any(|&m| m != 0.0));
    assert_eq!(gpu.state().unwrap(), cpu.state(), "after a step");
}

/// Steps and evaluations submitted without waiting (`submit`, up to `LOWP_IN_FLIGHT` on their
/// way: 1, 2 and 3) come back in order, each with the statistics the CPU trainer gives for
/// it, and end in the CPU trainer's state; a bad depth is a typed error.
#[test]
fn steps_submitted_ahead_come_back_in_order_and_exact() {
    use lowp::gpu::{GpuContext, GpuError};
    let model = Model::mlp(12, &[10, 8], 4);
    let map = PrecisionMap::parse(FIXED16).unwrap();
    let plan = Plan::new(model.clone(), &map, false, sgd(), 11).unwrap();
    let batch = 6;
    let data = |k: u64| {
        let x = common::uniform(batch * model.inputs, k, 2.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| (i * 5 + k as u32) % 4).collect();
        (x, y)
    };
    // The CPU trainer's statistics of five steps with an evaluation after each.
    let mut cpu = CpuTrainer::new(plan.clone());
    let mut want = Vec::new();
    for k in 0..5u64 {
        let (x, y) = data(k);
        want.push((true, cpu.step(&x, &y)));
        want.push((false, cpu.evaluate(&x, &y)));
    }
    for depth in ["1", "2", "3"] {
        let ctx = GpuContext::with_settings(&[("LOWP_IN_FLIGHT", depth)]).unwrap();
        assert_eq!(ctx.in_flight().to_string(), depth);
        let mut gpu = GpuTrainer::new(&ctx, plan.clone(), batch).unwrap();
        let mut got = Vec::new();
        for k in 0..5u64 {
            let (x, y) = data(k);
            gpu.submit(&x, &y, true).unwrap();
            gpu.submit(&x, &y, false).unwrap();
            got.extend(gpu.poll().unwrap());
        }
        got.extend(gpu.readback_all().unwrap());
        let steps: Vec<u64> = got.iter().map(|r| r.step).collect();
        assert_eq!(steps, [0, 1, 1, 2, 2, 3, 3, 4, 4, 5], "depth {depth}");
        for (k, (r, (train, c))) in got.iter().zip(&want).enumerate() {
            let g = &r.stats;
            assert_eq!(
                (r.train, g.correct),
                (*train, c.correct),
                "depth {depth}, {k}"
            );
            // Each side takes its own f32 log of the same bits: a few ulp of the loss.
            let close = (g.loss - c.loss).abs() <= 1e-5 * c.loss.abs() + 1e-6;
            assert!(close, "depth {depth}, {k}: loss {} vs {}", g.loss, c.loss);
        }
        assert_eq!(gpu.state().unwrap(), cpu.state(), "depth {depth}: state");
    }
    for bad in ["0", "65", "many"] {
        match GpuContext::with_settings(&[("LOWP_IN_FLIGHT", bad)]) {
            Err(GpuError::Invalid(e)) => assert!(e.contains("LOWP_IN_FLIGHT"), "{e}"),
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("LOWP_IN_FLIGHT={bad} was taken"),
        }
    }
}
