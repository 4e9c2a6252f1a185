//! Adam in the GPU trainer against a textbook f64 Adam with PyTorch's semantics, from a
//! common state every step: g' = g / S + wd w, m = b1 m + (1 - b1) g',
//! v = b2 v + (1 - b2) g'^2, w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
//! where t counts the updates applied: a step that dynamic loss scaling skips (its
//! gradients overflowed) leaves w, m, v and t alone, as torch.cuda.amp.GradScaler skips
//! optimizer.step(). The gradient is the trainer's own (stored in e5m2, read back), so the
//! check is of the update alone; the hyper-parameters are the f32 values the trainer holds.
//!
//! Bound per element (u = 2^-24), first order in u, from the f32 operations the update
//! makes: g' within 2u (|g/S| + |wd w|); m within 4u (|b1 m| + |(1 - b1) g'|) + (1 - b1)
//! e_g'; v within 5u (|b2 v| + |(1 - b2) g'^2|) + 2 (1 - b2) |g'| e_g'; the step state's
//! 1 / (1 - b1^t) within 21u (ln b1 and t ln b1 rounded, expm1 within 7 ulp, a division)
//! and 1 / sqrt(1 - b2^t) within 13u; the denominator sqrt(v) bc2 + eps within
//! e_v / (2 v) + 16u of itself; the step q = lr_t m / d within |q| (24u + e_d / d) +
//! lr_t e_m / d; w - q one more rounding. A factor 1.01 covers the second-order terms.

mod common;

use lowp::format::Format;
use lowp::train::checkpoint::TrainState;
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{LossScale, OptimKind, Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

const U: f64 = 1.0 / 16_777_216.0;

const MAP: &str = r#"
    default = { format = "fp32" }
    [[rule]]
    match = "*.grad"
    format = "e5m2"
    [[rule]]
    match = "*.wgrad"
    format = "e5m2"
"#;

fn values(st: &TrainState, name: &str) -> Vec<f64> {
    let t = st
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(t.format, "fp32", "{name}");
    t.words.iter().map(|&w| f32::from_bits(w) as f64).collect()
}

/// Decodes `n` packed e5m2 codes.
fn e5m2(words: &[u32], n: usize) -> Vec<f64> {
    let f = "e5m2".parse::<Format>().unwrap().element();
    (0..n)
        .map(|i| {
            let code = (words[i / 4] >> (8 * (i % 4))) & 0xff;
            f32::from_bits(f.decode_bits(code, 0)) as f64
        })
        .collect()
}

#[test]
fn adam_steps_equal_textbook_adam_and_skipped_steps_do_not_count() {
    let config = TrainConfig {
        kind: OptimKind::Adam,
        lr: 1e-2,
        weight_decay: 1e-3,
        loss_scale: LossScale::Dynamic {
            init: 2f32.powi(20),
            interval: 2,
        },
        ..Default::default()
    };
    let model = Model::mlp(12, &[10, 8], 4);
    let plan = Plan::new(
        model.clone(),
        &PrecisionMap::parse(MAP).unwrap(),
        false,
        config,
        7,
    )
    .unwrap();
    let (lr, b1, b2, eps, wd) = (
        config.lr as f64,
        config.beta1 as f64,
        config.beta2 as f64,
        config.eps as f64,
        config.weight_decay as f64,
    );
    let ctx = common::gpu();
    let batch = 6;
    let mut t = GpuTrainer::new(&ctx, plan, batch).unwrap();
    let (mut applied, mut skipped_after_update, mut checked, mut tight) = (0u32, 0, 0, 0);
    for step in 0..12u64 {
        let x = common::uniform(batch * model.inputs, step, 2.0);
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i + step as u32) % 4).collect();
        let before = t.state().unwrap();
        let report = t.step(&x, &labels).unwrap();
        let after = t.state().unwrap();
        let inv_s = f32::from_bits(after.loss_scale[2]) as f64;
        if report.skipped {
            skipped_after_update += (applied > 0) as usize;
        } else {
            applied += 1;
        }
        // The step state counts updates applied, not steps.
        assert_eq!(after.loss_scale[4], applied, "step {step}: updates counted");
        for (i, layer) in model.layers.iter().enumerate() {
            if !layer.has_params() {
                continue;
            }
            let (dw, db) = t.read_grads(i).unwrap();
            for (part, words) in [("weight", dw), ("bias", db)] {
                let name = format!("{}.{part}", layer.name());
                let (w0, m0, v0) = (
                    values(&before, &name),
                    values(&before, &format!("{}.momentum.{part}", layer.name())),
                    values(&before, &format!("{}.moment2.{part}", layer.name())),
                );
                let (w1, m1, v1) = (
                    values(&after, &name),
                    values(&after, &format!("{}.momentum.{part}", layer.name())),
                    values(&after, &format!("{}.moment2.{part}", layer.name())),
                );
                if report.skipped {
                    assert_eq!((&w1, &m1, &v1), (&w0, &m0, &v0), "step {step}: skipped");
                    continue;
                }
                let g = e5m2(&words, w0.len());
                let tt = applied as i32;
                let (c1, c2) = (1.0 - b1.powi(tt), 1.0 - b2.powi(tt));
                for k in 0..w0.len() {
                    let ge = g[k] * inv_s + wd * w0[k];
                    let m = b1 * m0[k] + (1.0 - b1) * ge;
                    let v = b2 * v0[k] + (1.0 - b2) * ge * ge;
                    let d = (v / c2).sqrt() + eps;
                    let q = lr * (m / c1) / d;
                    let w = w0[k] - q;
                    let e_ge = 2.0 * U * ((g[k] * inv_s).abs() + (wd * w0[k]).abs());
                    let e_m = 4.0 * U * ((b1 * m0[k]).abs() + ((1.0 - b1) * ge).abs())
                        + (1.0 - b1) * e_ge;
                    let e_v = 5.0 * U * ((b2 * v0[k]).abs() + (1.0 - b2) * ge * ge)
                        + 2.0 * (1.0 - b2) * ge.abs() * e_ge;
                    let e_d = d * (e_v / (2.0 * v.max(f64::MIN_POSITIVE)) + 16.0 * U);
                    let lr_t = lr / c1;
                    let e_q = q.abs() * (24.0 * U + e_d / d) + lr_t * e_m / d;
                    let e_w = 1.01 * (e_q + U * w.abs());
                    let what = format!("step {step} (t = {tt}): {name}[{k}]");
                    assert!(
                        (m1[k] - m).abs() <= 1.01 * e_m,
                        "{what}: m {} vs {m}",
                        m1[k]
                    );
                    assert!(
                        (v1[k] - v).abs() <= 1.01 * e_v,
                        "{what}: v {} vs {v}",
                        v1[k]
                    );
                    assert!(
                        (w1[k] - w).abs() <= e_w,
                        "{what}: w {} vs {w}, bound {e_w:e}",
                        w1[k]
                    );
                    checked += 1;
                    // A bound well below the step itself: a wrong t or lr would fail.
                    tight += (e_w < 0.01 * q.abs()) as usize;
                }
            }
        }
    }
    eprintln!(
        "{applied} updates, {skipped_after_update} skips after the first, {tight} of {checked} \
         bounds below 1% of the step"
    );
    assert!(
        skipped_after_update > 0 && applied >= 4,
        "{applied} updates applied, {skipped_after_update} skips after the first"
    );
    assert!(
        tight * 10 >= checked * 9,
        "only {tight} of {checked} bounds below 1% of their step"
    );
}
