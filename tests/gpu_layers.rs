//! The ResNet layers' kernels (batch normalization, average pooling, residual shortcuts)
//! equal their CPU twins bit for bit, and their backward passes are the derivatives of
//! their forward passes (finite differences in f64 for batch norm; exact adjoint identities
//! for the linear layers).

mod common;

use lowp::conv::Pool;
use lowp::gpu::buffers::{read_u32, upload_f32, upload_u32, zeroed};
use lowp::ops::batchnorm::*;
use lowp::ops::elementwise::*;
use lowp::reference::batchnorm::{BnStat, bn_backward, bn_forward, bn_stats};
use lowp::reference::elementwise as cpu;

#[test]
fn batchnorm_matches_its_twin_in_training_and_evaluation() {
    // A small layer, and one whose channels hold more values (90,000) than a CPU adapter
    // lets one invocation loop over (65,535): the sums must be chunked to come out right.
    for (batch, pixels) in [(5, 7 * 6), (3, 30_000)] {
        batchnorm_case(BatchNorm {
            batch,
            channels: 3,
            pixels,
            eps: 1e-5,
            momentum: 0.1,
        });
    }
}

fn batchnorm_case(bn: BatchNorm) {
    let c = common::small_grid_gpu();
    let n = bn.batch * bn.channels * bn.pixels;
    let x = common::finite(n, 1, 4.0);
    let g = common::finite(n, 2, 1.0);
    let gamma = vec![1.0f32, 0.5, -2.0];
    let beta = vec![0.0f32, 0.25, 3.0];
    let mut st = BnStat::new(bn.channels);
    st.running_var = vec![1.0, 2.0, 0.5];
    let gb: Vec<f32> = gamma.iter().chain(&beta).copied().collect();
    let (bx, bg, bgb) = (
        upload_f32(c, "x", &x).unwrap(),
        upload_f32(c, "g", &g).unwrap(),
        upload_f32(c, "gb", &gb).unwrap(),
    );
    let stat = upload_u32(c, "stat", &st.words()).unwrap();
    let (y, dx) = (zeroed(c, "y", n).unwrap(), zeroed(c, "dx", n).unwrap());
    for (round, train) in [(0, true), (1, true), (2, false)] {
        common::submit(|e| {
            record_bn_stats(c, e, &bx, &stat, &bn, train).unwrap();
            record_bn_forward(c, e, &bx, (&bgb, &stat), &y, &bn).unwrap();
            record_bn_backward(c, e, (&bx, &bg), (&bgb, &stat), &dx, &bn).unwrap();
        });
        bn_stats(&x, &mut st, &bn, train);
        let ry = bn_forward(&x, &gamma, &beta, &st, &bn);
        let rdx = bn_backward(&x, &g, &gamma, &mut st, &bn);
        let what = format!("round {round}, training {train}");
        assert_eq!(
            read_u32(c, &stat, 6 * bn.channels).unwrap(),
            st.words(),
            "stats, {what}"
        );
        assert_eq!(read_u32(c, &y, n).unwrap(), common::bits(&ry), "y, {what}");
        assert_eq!(
            read_u32(c, &dx, n).unwrap(),
            common::bits(&rdx),
            "dx, {what}"
        );
        if round == 0 {
            // Into a gradient that already holds values (an accumulating store): each dx
            // added once, the last n % 4 included (they are a dispatch of their own).
            let acc0 = common::finite(n, 3, 1.0);
            let acc = upload_f32(c, "acc", &acc0).unwrap();
            common::submit(|e| {
                let d = lowp::ops::packed_io::Dst::Accumulate(&acc);
                record_bn_backward(c, e, (&bx, &bg), (&bgb, &stat), d, &bn).unwrap();
            });
            let want: Vec<f32> = acc0.iter().zip(&rdx).map(|(a, d)| a + d).collect();
            let got = read_u32(c, &acc, n).unwrap();
            assert_eq!(got, common::bits(&want), "dx added to a gradient, {what}");
        }
    }
}

#[test]
fn batchnorm_backward_is_the_derivative_of_its_forward() {
    // L = sum r_i y_i with y the training-mode batch norm, in f64; central differences with
    // step 1e-4 have truncation error O(h^2 |L'''|) below 1e-6 here; the twin's f32 dx
    // carries about 1e-6 relative error: allowed 1e-4 absolute + 1e-3 relative.
    let bn = BatchNorm {
        batch: 3,
        channels: 2,
        pixels: 4,
        eps: 1e-5,
        momentum: 0.1,
    };
    let n = bn.batch * bn.channels * bn.pixels;
    let x: Vec<f32> = (0..n).map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.3).collect();
    let r: Vec<f32> = (0..n).map(|i| ((i * 17 % 7) as f32 - 3.0) * 0.2).collect();
    let (gamma, beta) = ([1.5f32, -0.7], [0.1f32, 0.2]);
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
        let mut l = 0.0;
        for c in 0..bn.channels {
            let idx: Vec<usize> = (0..bn.batch)
                .flat_map(|b| (0..bn.pixels).map(move |p| (b * bn.channels + c) * bn.pixels + p))
                .collect();
            let m = idx.len() as f64;
            let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / m;
            for &i in &idx {
                let y = gamma[c] * (x[i] - mean) / (var + bn.eps as f64).sqrt() + beta[c];
                l += r[i] as f64 * y;
            }
        }
        l
    };
    let mut st = BnStat::new(bn.channels);
    bn_stats(&x, &mut st, &bn, true);
    let dx = bn_backward(&x, &r, &gamma, &mut st, &bn);
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (gf, bf) = (gamma.map(|v| v as f64), beta.map(|v| v as f64));
    let h = 1e-4;
    let close = |fd: f64, got: f32, what: String| {
        assert!(
            (fd - got as f64).abs() <= 1e-4 + 1e-3 * fd.abs(),
            "{what}: {got} vs {fd}"
        );
    };
    for k in 0..n {
        let (mut p, mut m) = (xf.clone(), xf.clone());
        p[k] += h;
        m[k] -= h;
        close(
            (loss(&p, &gf, &bf) - loss(&m, &gf, &bf)) / (2.0 * h),
            dx[k],
            format!("dx[{k}]"),
        );
    }
    for c in 0..bn.channels {
        let (mut p, mut m) = (gf, gf);
        p[c] += h;
        m[c] -= h;
        let fd = (loss(&xf, &p, &bf) - loss(&xf, &m, &bf)) / (2.0 * h);
        close(fd, st.dgamma[c], format!("dgamma[{c}]"));
        let (mut p, mut m) = (bf, bf);
        p[c] += h;
        m[c] -= h;
        let fd = (loss(&xf, &gf, &p) - loss(&xf, &gf, &m)) / (2.0 * h);
        close(fd, st.dbeta[c], format!("dbeta[{c}]"));
    }
}

#[test]
fn average_pooling_matches_and_is_its_own_adjoint() {
    let c = common::small_grid_gpu();
    let p = Pool {
        planes: 7,
        in_hw: [9, 8],
        pool: 4,
    };
    let [oh, ow] = p.out_hw();
    let (nin, nout) = (p.planes * 72, p.planes * oh * ow);
    let x = common::finite(nin, 3, 10.0);
    let g = common::finite(nout, 4, 1.0);
    let (bx, bg) = (
        upload_f32(c, "x", &x).unwrap(),
        upload_f32(c, "g", &g).unwrap(),
    );
    let (y, dx) = (zeroed(c, "y", nout).unwrap(), zeroed(c, "dx", nin).unwrap());
    common::submit(|e| {
        record_avgpool_forward(c, e, &bx, &y, &p).unwrap();
        record_avgpool_backward(c, e, &bg, &dx, &p).unwrap();
    });
    let (ry, rdx) = (cpu::avgpool_forward(&x, &p), cpu::avgpool_backward(&g, &p));
    assert_eq!(read_u32(c, &y, nout).unwrap(), common::bits(&ry));
    assert_eq!(read_u32(c, &dx, nin).unwrap(), common::bits(&rdx));
    // <g, A x> = <A^T g, x> for the linear map A, in f64 on small integers (exact).
    let xi: Vec<f32> = (0..nin).map(|i| (i % 5) as f32).collect();
    let gi: Vec<f32> = (0..nout).map(|i| (i % 3) as f32).collect();
    let lhs: f64 = cpu::avgpool_forward(&xi, &p)
        .iter()
        .zip(&gi)
        .map(|(a, b)| (*a * *b) as f64)
        .sum();
    let rhs: f64 = cpu::avgpool_backward(&gi, &p)
        .iter()
        .zip(&xi)
        .map(|(a, b)| (*a * *b) as f64)
        .sum();
    assert_eq!(lhs, rhs);
}

#[test]
fn residual_shortcuts_match_and_are_adjoint() {
    let c = common::small_grid_gpu();
    for (source, out) in [
        ([4, 6, 6], [4, 6, 6]),
        ([4, 6, 6], [8, 3, 3]),
        ([2, 8, 4], [6, 4, 2]),
    ] {
        let sc = Shortcut::option_a(3, source, out);
        let (ns, no) = (
            3 * source.iter().product::<usize>(),
            3 * out.iter().product::<usize>(),
        );
        let (a, s, g) = (
            common::finite(no, 5, 3.0),
            common::finite(ns, 6, 3.0),
            common::finite(no, 7, 1.0),
        );
        let (ba, bs, bg) = (
            upload_f32(c, "a", &a).unwrap(),
            upload_f32(c, "s", &s).unwrap(),
            upload_f32(c, "g", &g).unwrap(),
        );
        let (y, ds) = (zeroed(c, "y", no).unwrap(), zeroed(c, "ds", ns).unwrap());
        let acc = upload_f32(c, "acc", &a).unwrap();
        common::submit(|e| {
            record_residual_forward(c, e, (&ba, &bs), &y, &sc).unwrap();
            record_skip_backward(c, e, &bg, &ds, &sc).unwrap();
            record_accumulate(c, e, &bg, &acc, no).unwrap();
        });
        let (ry, rds) = (
            cpu::residual_forward(&a, &s, &sc),
            cpu::skip_backward(&g, &sc),
        );
        assert_eq!(
            read_u32(c, &y, no).unwrap(),
            common::bits(&ry),
            "{source:?} -> {out:?}"
        );
        assert_eq!(
            read_u32(c, &ds, ns).unwrap(),
            common::bits(&rds),
            "{source:?} -> {out:?}"
        );
        let sum: Vec<f32> = a.iter().zip(&g).map(|(x, y)| x + y).collect();
        assert_eq!(read_u32(c, &acc, no).unwrap(), common::bits(&sum));
        // <g, shortcut(s)> = <skip_backward(g), s>: both pick the same products (exact on
        // small integers).
        let zeros = vec![0f32; no];
        let si: Vec<f32> = (0..ns).map(|i| (i % 7) as f32).collect();
        let gi: Vec<f32> = (0..no).map(|i| (i % 5) as f32).collect();
        let lhs: f64 = cpu::residual_forward(&zeros, &si, &sc)
            .iter()
            .zip(&gi)
            .map(|(p, q)| (*p * *q) as f64)
            .sum();
        let rhs: f64 = cpu::skip_backward(&gi, &sc)
            .iter()
            .zip(&si)
            .map(|(p, q)| (*p * *q) as f64)
            .sum();
        assert_eq!(lhs, rhs, "{source:?} -> {out:?}");
        if source == out {
            assert_eq!(rds, g, "the identity shortcut passes the gradient through");
        }
    }
    let bad = Shortcut::option_a(1, [8, 4, 4], [4, 2, 2]);
    assert!(bad.stride().is_err());
}
