//! Every layer's weight and bias gradients, as the GPU engine computes them in fp32, agree
//! with central finite differences of the loss the engine evaluates.
//!
//! Bound: the loss is an f32 mean of f32 per-sample losses, each within about 1e-6
//! relative of exact for these small nets, so each side of the difference carries an error
//! d <= 1e-6 |L| and the quotient (L+ - L-) / 2h carries d / h; the truncation error of a
//! central difference is h^2 |L'''| / 6, negligible next to that for h = 5e-4 on
//! piecewise-linear layers under a softmax. Allowed: 1.5 d / h + 2% of |g| (the 2% covers
//! the curvature of the softmax over the step). No checked weight may sit within h of a
//! ReLU or max-pool kink: a weight whose one-sided differences disagree beyond the bound
//! has one within h, and is skipped; at most a quarter may be (the data are fixed, so
//! the check is deterministic).

mod common;

use lowp::format::Format;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{LossKind, Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

/// Checks `per_tensor` weights of every weight and bias tensor.
/// `h` is the step of the central differences.
fn check(model: Model, batch: usize, loss: LossKind, per_tensor: usize, h: f64) {
    check_part(model, batch, loss, per_tensor, h, (0, 1));
}

/// [`check`] on part `k` of `parts` of the layers with parameters, taken two at a time in
/// turn (a convolution and its batch norm stay together), so that a large model's checks
/// run as tests side by side.
fn check_part(
    model: Model,
    batch: usize,
    loss: LossKind,
    per_tensor: usize,
    h: f64,
    (k, parts): (usize, usize),
) {
    let ctx = common::gpu();
    // lr 0, no momentum: a step computes gradients and leaves the weights as they are.
    let config = TrainConfig {
        loss,
        lr: 0.0,
        momentum: 0.0,
        ..Default::default()
    };
    let plan = Plan::new(
        model.clone(),
        &PrecisionMap::uniform(Format::FP32),
        false,
        config,
        3,
    )
    .unwrap();
    let mut t = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let x = common::uniform(batch * model.inputs, 41, 1.5);
    let y: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 7) % model.classes() as u32)
        .collect();
    t.step(&x, &y).unwrap();
    let base = t.state().unwrap();
    t.restore(&base).unwrap();
    let loss0 = t.step(&x, &y).unwrap().loss as f64;
    let d = 1e-6 * loss0.abs();
    // The absolute slack alone would let a zero gradient pass where |g| is below it: count
    // the checks whose finite difference is at least four times the slack, where a
    // gradient of zero (or of half the size) fails.
    let slack = 1.5 * d / h;
    let (mut checked, mut kinks, mut significant) = (0, 0, 0);
    let with_params = model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.has_params());
    let in_part = with_params
        .enumerate()
        .filter(|(j, _)| (j / 2) % parts == k)
        .map(|(_, il)| il);
    for (i, layer) in in_part {
        let (dw, db) = t.read_grads(i).unwrap();
        for (part, grads) in [("weight", dw), ("bias", db)] {
            let significant_before = significant;
            let name = format!("{}.{part}", layer.name());
            let at = base.tensors.iter().position(|s| s.name == name).unwrap();
            let n = grads.len();
            for k in (0..n).step_by((n / per_tensor).max(1)) {
                let mut loss_at = |delta: f64| {
                    let mut st = base.clone();
                    let w = f32::from_bits(st.tensors[at].words[k]) as f64 + delta;
                    st.tensors[at].words[k] = (w as f32).to_bits();
                    t.restore(&st).unwrap();
                    // A step at lr 0 reports the training-mode loss (batch-norm statistics
                    // from the batch, as the gradients assume) and changes no weight.
                    t.step(&x, &y).unwrap().loss as f64
                };
                let (lp, lm) = (loss_at(h), loss_at(-h));
                let fd = (lp - lm) / (2.0 * h);
                let g = f32::from_bits(grads[k]) as f64;
                let bound = slack + 0.02 * g.abs();
                // One-sided differences that disagree mean a kink lies within h: skip.
                if ((lp - loss0) / h - (loss0 - lm) / h).abs() > bound {
                    kinks += 1;
                    continue;
                }
                assert!(
                    (fd - g).abs() <= bound,
                    "{name}[{k}]: engine {g:e}, finite difference {fd:e}, bound {bound:e}"
                );
                checked += 1;
                significant += (fd.abs() >= 4.0 * slack) as usize;
            }
            // Every tensor has a checked gradient that a zeroed one would fail, except a
            // bias that batch norm subtracts out again: its exact gradient is zero.
            let normalized = matches!(
                model.layers.get(i + 1),
                Some(lowp::train::model::Layer::BatchNorm2d { .. })
            );
            assert!(
                significant > significant_before || (part == "bias" && normalized),
                "{name}: no checked gradient stands above 4x the slack {slack:e}"
            );
        }
    }
    eprintln!("{checked} checked, {significant} at least 4x the slack {slack:.1e}, {kinks} kinks");
    assert!(
        checked >= 20 && kinks * 4 <= checked,
        "{checked} gradients checked, {kinks} weights skipped beside a kink"
    );
    assert!(
        significant * 2 >= checked,
        "only {significant} of {checked} checked gradients stand above 4x the slack {slack:e}"
    );
}

#[test]
fn mlp_gradients_match_finite_differences() {
    check(
        Model::mlp(12, &[10, 8], 4),
        6,
        LossKind::CrossEntropy,
        7,
        4e-3,
    );
}

#[test]
fn mlp_gradients_under_mse_match_finite_differences() {
    check(Model::mlp(12, &[10, 8], 4), 6, LossKind::Mse, 7, 4e-3);
}

#[test]
fn lenet_gradients_match_finite_differences() {
    // Conv 5x5 pad 2, ReLU, max pool, conv, ReLU, max pool, three Linear layers.
    check(
        Model::lenet([1, 12, 12], 4).unwrap(),
        4,
        LossKind::CrossEntropy,
        7,
        4e-3,
    );
}

/// Batch norm, residual shortcuts (identity and option A), average pooling, flatten; the
/// layers in two halves, one a test.
fn resnet_gradients(half: usize) {
    check_part(
        Model::resnet(1, [2, 8, 8], 4).unwrap(),
        4,
        LossKind::CrossEntropy,
        3,
        1e-3,
        (half, 2),
    );
}

#[test]
fn resnet_gradients_match_finite_differences() {
    resnet_gradients(0);
}

#[test]
fn resnet_gradients_of_the_other_layers_match_finite_differences() {
    resnet_gradients(1);
}

#[test]
fn grouped_and_depthwise_convolution_gradients_match_finite_differences() {
    let model = lowp::train::model_file::ModelFile::parse(common::GROUPED_MODEL)
        .unwrap()
        .build(&[2, 8, 8], 4)
        .unwrap();
    check(model, 4, LossKind::CrossEntropy, 3, 1e-3);
}

#[test]
fn branched_model_gradients_match_finite_differences() {
    // Branches, an output read by three layers, concatenations, an add of a node to itself.
    let model = lowp::train::model_file::ModelFile::parse(common::BRANCHED_MODEL)
        .unwrap()
        .build(&[2, 8, 8], 4)
        .unwrap();
    check(model, 4, LossKind::CrossEntropy, 3, 1e-3);
}
