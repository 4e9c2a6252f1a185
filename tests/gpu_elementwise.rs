//! The elementwise training kernels equal their CPU twins bit for bit.

mod common;

use lowp::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use lowp::ops::elementwise::*;
use lowp::reference::elementwise as cpu;

#[test]
fn relu_matches() {
    let c = common::small_grid_gpu();
    let mut x = common::tricky_inputs(1500, 3, 100.0);
    x[0] = -0.0;
    let g = common::tricky_inputs(1500, 4, 1.0);
    let (bx, bg) = (
        upload_f32(c, "x", &x).unwrap(),
        upload_f32(c, "g", &g).unwrap(),
    );
    let (y, dx) = (
        zeroed(c, "y", x.len()).unwrap(),
        zeroed(c, "dx", x.len()).unwrap(),
    );
    common::submit(|e| {
        record_relu_forward(c, e, &bx, &y, x.len()).unwrap();
        record_relu_backward(c, e, &bx, &bg, &dx, x.len()).unwrap();
    });
    assert_eq!(
        read_u32(c, &y, x.len()).unwrap(),
        common::bits(&cpu::relu_forward(&x))
    );
    assert_eq!(
        read_u32(c, &dx, x.len()).unwrap(),
        common::bits(&cpu::relu_backward(&x, &g))
    );
    assert_eq!(cpu::relu_forward(&[-0.0])[0].to_bits(), 0, "relu(-0) = +0");
}

#[test]
fn softmax_cross_entropy_matches() {
    let c = common::small_grid_gpu();
    for (rows, cols) in [(1, 1), (7, 10), (600, 10), (33, 3)] {
        let z: Vec<f32> = common::tricky_inputs(rows * cols, rows as u64, 30.0)
            .into_iter()
            .map(|v| {
                if v.is_finite() {
                    v.clamp(-80.0, 80.0)
                } else {
                    1.0
                }
            })
            .collect();
        let labels: Vec<u32> = (0..rows as u32)
            .map(|i| (i * 7 + 3) % cols as u32)
            .collect();
        let (bz, bl) = (
            upload_f32(c, "z", &z).unwrap(),
            upload_u32(c, "labels", &labels).unwrap(),
        );
        let (grad, loss, correct) = (
            zeroed(c, "g", rows * cols).unwrap(),
            zeroed(c, "loss", rows).unwrap(),
            zeroed(c, "ok", rows).unwrap(),
        );
        let out = XentOutputs {
            grad: &grad,
            loss: &loss,
            correct: &correct,
        };
        common::submit(|e| record_softmax_xent(c, e, &bz, &bl, &out, (rows, cols)).unwrap());
        let (rg, rloss, rcorrect) = cpu::softmax_xent(&z, &labels, (rows, cols));
        assert_eq!(
            read_u32(c, &grad, rows * cols).unwrap(),
            common::bits(&rg),
            "{rows}x{cols} gradient"
        );
        assert_eq!(read_u32(c, &correct, rows).unwrap(), rcorrect);
        // The loss uses each side's own f32 log: ln(s) + m - z agrees within a few ulp of
        // its largest term; allow 1e-5 of that plus 1e-6.
        for (i, l) in read_u32(c, &loss, rows).unwrap().iter().enumerate() {
            let (g, r) = (f32::from_bits(*l), rloss[i]);
            let scale = r.abs().max(
                z[i * cols..(i + 1) * cols]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs())),
            );
            assert!((g - r).abs() <= 1e-5 * scale + 1e-6, "row {i}: {g} vs {r}");
        }
        // Rows of the gradient sum to zero: sum p = 1 up to rounding (cols ulps of 1/rows).
        for i in 0..rows {
            let s: f64 = rg[i * cols..(i + 1) * cols].iter().map(|&v| v as f64).sum();
            assert!(
                s.abs() <= cols as f64 * 2e-7 / rows as f64 + 1e-7,
                "row {i} sums to {s}"
            );
        }
    }
}

#[test]
fn softmax_gradient_is_the_derivative_of_the_loss() {
    // The mean loss L(z) = (1/B) sum_i [ln sum_j e^z_ij - z_i,label], in f64; its central
    // difference with step 1e-3 has truncation error below 1e-6 here (third derivatives of
    // softmax are below 1), far inside the 1e-4 allowed.
    let (rows, cols) = (4, 5);
    let z: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.4)
        .collect();
    let labels = [0u32, 3, 4, 1];
    let loss = |z: &[f64]| -> f64 {
        (0..rows)
            .map(|i| {
                let r = &z[i * cols..(i + 1) * cols];
                r.iter().map(|v| v.exp()).sum::<f64>().ln() - r[labels[i] as usize]
            })
            .sum::<f64>()
            / rows as f64
    };
    let (g, _, _) = cpu::softmax_xent(&z, &labels, (rows, cols));
    for k in 0..rows * cols {
        let mut zp: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let mut zm = zp.clone();
        zp[k] += 1e-3;
        zm[k] -= 1e-3;
        let fd = (loss(&zp) - loss(&zm)) / 2e-3;
        assert!((fd - g[k] as f64).abs() < 1e-4, "dz[{k}]: {} vs {fd}", g[k]);
    }
}

#[test]
fn column_sums_match() {
    let c = common::small_grid_gpu();
    // Columns longer than a CPU adapter's 65,535 loop iterations per invocation.
    let long = common::uniform(3 * 2 * 40_000, 31, 2.0);
    let bl = upload_f32(c, "long", &long).unwrap();
    let lo = zeroed(c, "long sums", 2).unwrap();
    common::submit(|e| record_col_sum(c, e, &bl, &lo, (3, 2, 40_000)).unwrap());
    assert_eq!(
        read_u32(c, &lo, 2).unwrap(),
        common::bits(&cpu::col_sum(&long, (3, 2, 40_000)))
    );
    // Columns of one chunk (summed and stored by one dispatch), of whole vectors of four or
    // not, and of several chunks of vectors.
    for (rows, cols, inner) in [(129, 300, 1), (16, 3, 8), (5, 4, 3), (64, 2, 36)] {
        let gm = common::tricky_inputs(rows * cols * inner, 9, 2.0)
            .into_iter()
            .map(|v| if v.is_finite() { v } else { 0.5 })
            .collect::<Vec<_>>();
        let bg = upload_f32(c, "g", &gm).unwrap();
        let out = zeroed(c, "sum", cols).unwrap();
        let shape = (rows, cols, inner);
        common::submit(|e| record_col_sum(c, e, &bg, &out, shape).unwrap());
        assert_eq!(
            read_u32(c, &out, cols).unwrap(),
            common::bits(&cpu::col_sum(&gm, shape)),
            "{shape:?}"
        );
    }
}

#[test]
fn maxpool_matches_with_ties() {
    use lowp::conv::Pool;
    let c = common::small_grid_gpu();
    // Odd edges (a row left over); 2 x 2 windows tiling planes four wide (the backward pass
    // two windows an invocation), of whole rows of four or not.
    for (planes, in_hw) in [(7, [9, 10]), (5, [8, 12]), (3, [6, 6])] {
        let p = Pool {
            planes,
            in_hw,
            pool: 2,
        };
        let n = planes * in_hw[0] * in_hw[1];
        // Few distinct values, so windows hold ties: the first maximum must win on both sides.
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5) as f32 - 2.0).collect();
        let [oh, ow] = p.out_hw();
        let g = common::tricky_inputs(planes * oh * ow, 12, 1.0)
            .into_iter()
            .map(|v| if v.is_finite() { v } else { 1.0 })
            .collect::<Vec<_>>();
        let (bx, bg) = (
            upload_f32(c, "x", &x).unwrap(),
            upload_f32(c, "g", &g).unwrap(),
        );
        let (y, dx) = (
            zeroed(c, "y", g.len()).unwrap(),
            zeroed(c, "dx", x.len()).unwrap(),
        );
        common::submit(|e| {
            record_maxpool_forward(c, e, &bx, &y, &p).unwrap();
            record_maxpool_backward(c, e, &bx, &bg, &dx, &p).unwrap();
        });
        assert_eq!(
            read_u32(c, &y, g.len()).unwrap(),
            common::bits(&cpu::maxpool_forward(&x, &p)),
            "{p:?}"
        );
        assert_eq!(
            read_u32(c, &dx, x.len()).unwrap(),
            common::bits(&cpu::maxpool_backward(&x, &g, &p)),
            "{p:?}"
        );
        // Each window passes exactly one gradient.
        let routed = cpu::maxpool_backward(&x, &vec![1.0; g.len()], &p)
            .iter()
            .filter(|&&v| v == 1.0)
            .count();
        assert_eq!(routed, g.len());
    }
}

#[test]
fn mse_matches_and_its_gradient_is_the_derivative_of_the_loss() {
    let c = common::small_grid_gpu();
    let (rows, cols) = (300, 10);
    let z = common::tricky_inputs(rows * cols, 21, 3.0);
    let labels: Vec<u32> = (0..rows as u32).map(|i| (i * 7) % cols as u32).collect();
    let (bz, bl) = (
        upload_f32(c, "z", &z).unwrap(),
        upload_u32(c, "labels", &labels).unwrap(),
    );
    let (grad, loss, correct) = (
        zeroed(c, "grad", rows * cols).unwrap(),
        zeroed(c, "loss", rows).unwrap(),
        zeroed(c, "correct", rows).unwrap(),
    );
    let out = XentOutputs {
        grad: &grad,
        loss: &loss,
        correct: &correct,
    };
    common::submit(|e| record_mse(c, e, &bz, &bl, &out, (rows, cols)).unwrap());
    let (rg, rloss, rc) = cpu::mse(&z, &labels, (rows, cols));
    // Bit for bit, NaN and Inf rows included.
    assert_eq!(read_u32(c, &grad, rows * cols).unwrap(), common::bits(&rg));
    assert_eq!(read_u32(c, &loss, rows).unwrap(), common::bits(&rloss));
    assert_eq!(read_u32(c, &correct, rows).unwrap(), rc);
    // The mean loss L(z) = (1/B) sum_i (1/C) sum_j (z_ij - t_ij)^2 is quadratic, so its
    // central difference is exact up to rounding: in f64 with step 1e-3, within 1e-9.
    let (rows, cols) = (3, 4);
    let z: Vec<f32> = (0..rows * cols).map(|i| (i as f32 - 5.0) * 0.3).collect();
    let labels = [1u32, 0, 3];
    let loss = |z: &[f64]| -> f64 {
        let mut s = 0.0;
        for i in 0..rows {
            for j in 0..cols {
                let t = (j as u32 == labels[i]) as u8 as f64;
                s += (z[i * cols + j] - t).powi(2) / cols as f64;
            }
        }
        s / rows as f64
    };
    let (g, l, _) = cpu::mse(&z, &labels, (rows, cols));
    let zf: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    // Mean of the per-row losses is the loss (f32 rounding only).
    let mean = l.iter().map(|&v| v as f64).sum::<f64>() / rows as f64;
    assert!((mean - loss(&zf)).abs() <= 1e-6 * loss(&zf));
    for k in 0..rows * cols {
        let (mut zp, mut zm) = (zf.clone(), zf.clone());
        zp[k] += 1e-3;
        zm[k] -= 1e-3;
        let fd = (loss(&zp) - loss(&zm)) / 2e-3;
        // g is f32: within a few ulp of its value plus the f64 difference's 1e-9.
        assert!(
            (fd - g[k] as f64).abs() <= 1e-6 * fd.abs() + 1e-9,
            "dz[{k}]: {} vs {fd}",
            g[k]
        );
    }
}
