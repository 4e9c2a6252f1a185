//! The GPU training engine equals the CPU reference trainer, step after step, bit for bit
//! where every rounding is exact by construction (fixed point with exact integer GEMMs,
//! emulated accumulators, soft-float softmax and SGD).

mod common;

use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, SgdConfig};
use lowp::train::precision::PrecisionMap;

fn check(map_text: &str, master: bool, steps: usize) {
    check_model(Model::mlp(12, &[10, 8], 4), map_text, master, steps);
}

fn check_model(model: Model, map_text: &str, master: bool, steps: usize) {
    let ctx = common::gpu();
    let inputs = model.inputs;
    let map = PrecisionMap::parse(map_text).unwrap();
    let plan = Plan::new(model.clone(), &map, master, 77).unwrap();
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-3,
        nesterov: true,
    };
    let batch = 6;
    let mut cpu = CpuTrainer::new(plan.clone(), sgd);
    let mut gpu = GpuTrainer::new(&ctx, plan, sgd, batch).unwrap();
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
        let (ge, ce) = (
            gpu.evaluate(&x, &labels).unwrap(),
            cpu.evaluate(&x, &labels),
        );
        assert_eq!(ge.correct, ce.correct, "step {step}: evaluation");
        assert!((ge.loss - ce.loss).abs() <= 1e-5 * ce.loss.abs() + 1e-6);
    }
    // Training moved every layer's weights (the comparison above is not of frozen values).
    for (w0, st) in initial.iter().zip(cpu.state.iter().flatten()) {
        let changed = w0.iter().zip(&st.w.words).filter(|(a, b)| a != b).count();
        assert!(
            changed * 4 > w0.len(),
            "only {changed} of {} weight words changed",
            w0.len()
        );
    }
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

#[test]
fn lenet_training_is_bit_exact() {
    // LeNet-5 on 1 x 12 x 12 images: conv 5x5 pad 2, ReLU, pool, conv 5x5, ReLU, pool (to
    // 16 x 1 x 1), then 120, 84, 4: every layer kind, with exact 16-bit fixed point.
    let model = Model::lenet([1, 12, 12], 4).unwrap();
    check_model(
        model,
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
        format = "fixed(wl=16,fl=12)"
        "#,
        false,
        3,
    );
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
    );
}
