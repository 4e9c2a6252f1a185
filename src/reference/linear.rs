//! Linear models on the CPU (the reference the GPU trainer is checked against): the
//! least-squares gradient of a batch under each ZipML estimator.

use crate::levels::Samples;

/// The mean least-squares gradient over `rows`, (1/B) sum_i Q1(a_i)(Q2(a_i)^T w - b_i),
/// in f32: each residual summed over the columns in order, then the rows' terms added in
/// order, products and sums rounded separately (no fused multiply-add), then times 1/B
/// (rounded to f32 first).
pub fn lsq_gradient(samples: &Samples, targets: &[f32], rows: &[usize], w: &[f32]) -> Vec<f32> {
    let d = samples.cols();
    let mut g = vec![0f32; d];
    let inv = 1.0 / rows.len().max(1) as f32;
    for &i in rows {
        let mut r = 0f32;
        for (c, &wc) in w.iter().enumerate() {
            r += samples.value(i, c, 1) * wc;
        }
        r -= targets[i];
        for (c, gc) in g.iter_mut().enumerate() {
            *gc += samples.value(i, c, 0) * r;
        }
    }
    g.iter_mut().for_each(|v| *v *= inv);
    g
}

/// One SGD step in f32: w <- w - lr g (product, then difference).
pub fn sgd_step(w: &mut [f32], g: &[f32], lr: f32) {
    for (wc, &gc) in w.iter_mut().zip(g) {
        *wc -= lr * gc;
    }
}
