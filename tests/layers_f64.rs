//! The ResNet layers against f64 formulas written out here, not against their twins:
//! batch-norm forward (training and evaluation) and its running statistics, average
//! pooling, and the option-A residual shortcut. Each GPU result lies within the error
//! bound of its f32 arithmetic, derived next to the assertion (u = 2^-24, gamma_n =
//! n u / (1 - n u)); the shortcut's one addition is correctly rounded, so it is exact.

mod common;

use lowp::conv::Pool;
use lowp::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use lowp::ops::batchnorm::*;
use lowp::ops::elementwise::*;
use lowp::reference::batchnorm::BnStat;

const U: f64 = 1.0 / 16_777_216.0;

fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

fn f(words: &[u32]) -> Vec<f64> {
    words.iter().map(|&w| f32::from_bits(w) as f64).collect()
}

#[test]
fn batchnorm_forward_and_running_statistics_match_the_formulas() {
    let c = common::small_grid_gpu();
    // The second shape holds more values per channel (90,000) than a CPU adapter lets one
    // invocation loop over: the chunked sums must still be sums of every value.
    for (batch, pixels) in [(6, 7 * 5), (3, 30_000)] {
        let bn = BatchNorm {
            batch,
            channels: 3,
            pixels,
            eps: 1e-5,
            momentum: 0.1,
        };
        let n = batch * 3 * pixels;
        // Channels with means 3, -1 and 0.5 and spreads 4, 0.5 and 2.
        let x: Vec<f32> = common::uniform(n, 7, 1.0)
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let ch = (i / pixels) % 3;
                [3.0, -1.0, 0.5][ch] + [4.0, 0.5, 2.0][ch] * u
            })
            .collect();
        let (gm, bt) = ([1.0f32, 0.5, -2.0], [0.0f32, 0.25, 3.0]);
        let mut st = BnStat::new(3);
        st.running_mean = vec![0.5, -0.5, 0.0];
        st.running_var = vec![1.0, 2.0, 0.5];
        let (rm0, rv0) = (st.running_mean.clone(), st.running_var.clone());
        let gb: Vec<f32> = gm.iter().chain(&bt).copied().collect();
        let (bx, bgb) = (
            upload_f32(c, "x", &x).unwrap(),
            upload_f32(c, "gb", &gb).unwrap(),
        );
        let stat = upload_u32(c, "stat", &st.words()).unwrap();
        let y = zeroed(c, "y", n).unwrap();
        for train in [true, false] {
            common::submit(|e| {
                record_bn_stats(c, e, &bx, &stat, &bn, train).unwrap();
                record_bn_forward(c, e, &bx, (&bgb, &stat), &y, &bn).unwrap();
            });
            let got = f(&read_u32(c, &y, n).unwrap());
            let stats = BnStat::from_words(&read_u32(c, &stat, 18).unwrap(), 3);
            let m = (batch * pixels) as f64;
            for ch in 0..3 {
                let vals: Vec<f64> = (0..n)
                    .filter(|i| (i / pixels) % 3 == ch)
                    .map(|i| x[i] as f64)
                    .collect();
                let mean = vals.iter().sum::<f64>() / m;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
                let abs_sum = vals.iter().map(|v| v.abs()).sum::<f64>();
                // The mean: a sum of M values (any order), times a rounded 1/M.
                let e_mean = gamma(vals.len() + 2) * abs_sum / m;
                // The variance: (x - mean~)^2 summed; mean~ off by e_mean adds e_mean^2
                // (the cross term sums to zero), each square and the sum add gamma_(M+4).
                let e_var = gamma(vals.len() + 4) * (var + e_mean * e_mean) + e_mean * e_mean;
                let (mu, sigma2, e_mu, e_s2) = if train {
                    (mean, var, e_mean, e_var)
                } else {
                    // Evaluation uses the running statistics (as updated by training).
                    let rm = (1.0 - 0.1) * rm0[ch] as f64 + 0.1 * mean;
                    let rv = (1.0 - 0.1) * rv0[ch] as f64 + 0.1 * var * m / (m - 1.0);
                    let (e_rm, e_rv) = (
                        0.1 * e_mean + 3.0 * U * rm.abs().max(1.0) * 2.0,
                        0.1 * e_var * m / (m - 1.0) + 5.0 * U * rv * 2.0,
                    );
                    // Running statistics after the training pass, against the formula.
                    assert!(
                        (stats.running_mean[ch] as f64 - rm).abs() <= e_rm,
                        "running mean {ch}: {} vs {rm}",
                        stats.running_mean[ch]
                    );
                    assert!(
                        (stats.running_var[ch] as f64 - rv).abs() <= e_rv,
                        "running var {ch}: {} vs {rv}",
                        stats.running_var[ch]
                    );
                    (rm, rv, e_rm, e_rv)
                };
                let inv = 1.0 / (sigma2 + 1e-5).sqrt();
                // 1/sqrt(var + eps): half the variance's relative error, plus three roundings.
                let rel_inv = 0.5 * e_s2 / (sigma2 + 1e-5) + 3.0 * U;
                for (k, i) in (0..n).filter(|i| (i / pixels) % 3 == ch).enumerate() {
                    let d = x[i] as f64 - mu;
                    let want = gm[ch] as f64 * d * inv + bt[ch] as f64;
                    // y = gamma ((x - mean~) inv~) + beta: the error of mean~ and inv~
                    // carried through, two roundings on x - mean and the product, two more
                    // on gamma xhat and the sum.
                    let xhat = d * inv;
                    let bound = (gm[ch] as f64).abs()
                        * inv
                        * (d.abs() * (rel_inv + 3.0 * U) + e_mu * (1.0 + U))
                        + 2.0 * U * ((gm[ch] as f64 * xhat).abs() + want.abs());
                    if k < 3 || (got[i] - want).abs() > bound {
                        assert!(
                            (got[i] - want).abs() <= bound,
                            "train {train}, channel {ch}, y[{i}] = {} want {want}, bound {bound:e}",
                            got[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn average_pooling_is_the_window_mean() {
    let c = common::small_grid_gpu();
    for (planes, hw, pool) in [(5, [8, 8], 2), (3, [9, 7], 3), (2, [8, 8], 8)] {
        let p = Pool {
            planes,
            in_hw: hw,
            pool,
        };
        let n = planes * hw[0] * hw[1];
        let x = common::uniform(n, 3, 5.0);
        let [oh, ow] = p.out_hw();
        let bx = upload_f32(c, "x", &x).unwrap();
        let y = zeroed(c, "y", planes * oh * ow).unwrap();
        common::submit(|e| record_avgpool_forward(c, e, &bx, &y, &p).unwrap());
        let got = f(&read_u32(c, &y, planes * oh * ow).unwrap());
        for pl in 0..planes {
            for r in 0..oh {
                for q in 0..ow {
                    let window: Vec<f64> = (0..pool * pool)
                        .map(|k| {
                            let (a, b) = (r * pool + k / pool, q * pool + k % pool);
                            x[pl * hw[0] * hw[1] + a * hw[1] + b] as f64
                        })
                        .collect();
                    let want = window.iter().sum::<f64>() / (pool * pool) as f64;
                    // pool^2 - 1 additions, a rounded 1 / pool^2 and one multiplication.
                    let bound = gamma(pool * pool + 1)
                        * window.iter().map(|v| v.abs()).sum::<f64>()
                        / (pool * pool) as f64;
                    let at = (pl * oh + r) * ow + q;
                    assert!(
                        (got[at] - want).abs() <= bound,
                        "pool {pool}: y[{at}] = {} want {want}",
                        got[at]
                    );
                }
            }
        }
    }
}

#[test]
fn option_a_shortcut_adds_the_subsampled_zero_padded_source() {
    let c = common::small_grid_gpu();
    // Identity; stride 2 with 4 channels to 8 (2 zero channels each side); stride 1 with
    // 2 channels to 6.
    for (source, out) in [
        ([3, 4, 4], [3, 4, 4]),
        ([4, 8, 8], [8, 4, 4]),
        ([2, 5, 3], [6, 5, 3]),
    ] {
        let batch = 3;
        let sc = Shortcut::option_a(batch, source, out);
        let (na, ns) = (
            batch * out.iter().product::<usize>(),
            batch * source.iter().product::<usize>(),
        );
        let (a, s) = (common::uniform(na, 1, 3.0), common::uniform(ns, 2, 3.0));
        let (ba, bs) = (
            upload_f32(c, "a", &a).unwrap(),
            upload_f32(c, "s", &s).unwrap(),
        );
        let y = zeroed(c, "y", na).unwrap();
        common::submit(|e| record_residual_forward(c, e, (&ba, &bs), &y, &sc).unwrap());
        let got = read_u32(c, &y, na).unwrap();
        let stride = source[1] / out[1];
        let pad = (out[0] - source[0]) / 2;
        let mut from_source = 0;
        for nn in 0..batch {
            for ch in 0..out[0] {
                for r in 0..out[1] {
                    for q in 0..out[2] {
                        let i = ((nn * out[0] + ch) * out[1] + r) * out[2] + q;
                        let src = if (pad..pad + source[0]).contains(&ch) {
                            from_source += 1;
                            s[((nn * source[0] + ch - pad) * source[1] + r * stride) * source[2]
                                + q * stride]
                        } else {
                            0.0
                        };
                        // One IEEE f32 addition, correctly rounded.
                        let want = a[i] + src;
                        assert_eq!(got[i], want.to_bits(), "{source:?} -> {out:?}: y[{i}]");
                    }
                }
            }
        }
        assert_eq!(from_source, batch * source[0] * out[1] * out[2]);
    }
}
