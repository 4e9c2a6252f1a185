//! HALP's GPU inner loop against its CPU reference: the same weights, bit for bit, and the
//! same saturation counts, for every method on least squares, logistic and softmax
//! regression, batches that do and do not divide the rows, more steps than batches, and
//! grids from 3 to 20 bits; and the grid's stochastic rounding of awkward values (ties,
//! subnormals, the grid's ends, infinities, NaN) equal on both.

mod common;

use lowp::glm::{Glm, InnerSteps, Rows};
use lowp::methods::halp::{HalpConfig, Method, train_halp};
use lowp::methods::linear::{Task, synthetic_lsq};
use lowp::ops::halp::GpuHalp;
use lowp::scaled_fixed::ScaledFixed;

/// A table for `task`: 5 features and an intercept; logistic labels from the target's sign;
/// three softmax classes from the target's tercile.
fn table(task: Task, rows: usize) -> lowp::data::table::Table {
    let (mut t, _) = synthetic_lsq(rows, 6, 0.3, 21);
    match task {
        Task::Lsq => {}
        Task::Logistic { .. } | Task::Svm { .. } => t
            .target
            .iter_mut()
            .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 }),
        Task::Softmax { .. } => t.target.iter_mut().for_each(|v| {
            *v = if *v < -0.3 {
                0.0
            } else if *v < 0.3 {
                1.0
            } else {
                2.0
            }
        }),
    }
    t
}

#[test]
fn every_method_on_the_gpu_equals_the_cpu_reference_bit_for_bit() {
    let ctx = common::gpu();
    let tasks = [
        Task::Lsq,
        Task::Logistic { l2: 0.01 },
        Task::Softmax {
            l2: 0.02,
            classes: 3,
        },
    ];
    let methods = [
        Method::Sgd,
        Method::LpSgd,
        Method::Svrg,
        Method::LpSvrg,
        Method::Halp,
    ];
    // Over all cases, some epochs saturate and some do not: both grid paths are compared.
    let (mut clamped, mut clean) = (0, 0);
    for (j, task) in tasks.into_iter().enumerate() {
        let t = table(task, 97);
        for (k, method) in methods.into_iter().enumerate() {
            let case = j * 5 + k;
            let cfg = HalpConfig {
                method,
                task,
                bits: [3, 8, 12, 20][case % 4],
                // A small mu widens the grid; a large one narrows it until values saturate.
                mu: Some([0.05, 0.5, 5.0][case % 3]),
                inner: [None, Some(40)][case % 2],
                epochs: 3,
                batch: [7, 1, 97, 16][case % 4],
                lr: 0.05,
                seed: case as u64,
            };
            let mut seen = [Vec::new(), Vec::new()];
            for (side, gpu) in [None, Some(&ctx)].into_iter().enumerate() {
                let out = train_halp(&cfg, &t, 0.0, gpu, |m, w| {
                    let bits: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
                    seen[side].push((bits, m.saturated, m.scale.map(f32::to_bits)));
                });
                assert!(out.is_ok(), "{task:?} {method}: {out:?}");
            }
            assert_eq!(seen[0].len(), 3);
            for (_, sat, scale) in &seen[0] {
                if scale.is_some() {
                    if *sat > 0 { clamped += 1 } else { clean += 1 }
                }
            }
            assert!(
                seen[0] == seen[1],
                "{task:?} {method} ({cfg:?}): the GPU's weights, saturations or grid differ"
            );
        }
    }
    assert!(
        clamped > 0 && clean > 0,
        "{clamped} epochs clamped, {clean} not"
    );
}

#[test]
fn the_grid_rounds_awkward_values_alike_on_both() {
    // One row of zero features and a zero step size: a step leaves each value as it is and
    // rounds it onto the grid, so the iterate after one step is the rounding itself. (An
    // infinite or NaN value would make every factor NaN through 0 * inf; the grid's NaN
    // and infinity cases are the reference's own tests.)
    let ctx = common::gpu();
    let scale = 0.375f32;
    let grid = ScaledFixed::new(scale, 6).unwrap(); // codes -31 ..= 31
    let mut values = vec![
        0.0,
        -0.0,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::MIN_POSITIVE,
        -1e-39,
        0.1875, // a tie
        -0.1875,
        31.0 * scale,
        31.5 * scale,
        -31.0 * scale,
        -40.0,
        1e30,
        3.0 * scale,
        -7.0 * scale,
    ];
    for i in 0..200 {
        values.push(((i as f32) * 0.731).sin() * 13.0);
    }
    let d = values.len();
    let zeros = vec![0f32; d];
    let rows = Rows {
        x: &zeros,
        cols: d,
        y: &[0.0],
    };
    let mut gpu = GpuHalp::new(&ctx, &rows, &Glm::Lsq).unwrap();
    for seed in 0..4u64 {
        let steps = InnerSteps {
            order: &[0],
            batch: 1,
            steps: 1,
            lr: 0.0,
            svrg: false,
            offset: false,
            grid: Some(grid),
            seed,
            step0: seed * 1_000_003,
        };
        let (cpu_w, cpu_sat) =
            lowp::reference::halp::inner(&rows, &Glm::Lsq, None, &values, &steps);
        let (gpu_w, gpu_sat) = gpu.inner(&values, &steps).unwrap();
        let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&cpu_w), bits(&gpu_w), "seed {seed}");
        assert_eq!(cpu_sat, gpu_sat);
        // Saturated: every value beyond 31 delta = 11.625 (31.5 delta, -40, 1e30 and the
        // sines' peaks), counted independently in f64.
        let beyond = values.iter().filter(|v| (v.abs() as f64) > 11.625).count() as u64;
        assert!(beyond >= 3);
        assert_eq!(cpu_sat, beyond);
    }
}
