//! Linear models on the CPU (the reference the GPU trainer is checked against): the
//! least-squares gradient of a batch under each ZipML estimator.

use crate::levels::{Estimator, QuantizedMatrix};

/// The samples of a linear model's data as an estimator reads them.
pub enum Samples<'a> {
    /// Full precision, row-major rows x cols.
    Fp32(&'a [f32], usize),
    /// Quantized onto levels (one sample: naive; two: double sampling).
    Quantized(&'a QuantizedMatrix, Estimator),
}

impl Samples<'_> {
    /// Columns.
    pub fn cols(&self) -> usize {
        match self {
            Samples::Fp32(_, c) => *c,
            Samples::Quantized(q, _) => q.shape().1,
        }
    }

    /// Sample `s` (0: the gradient's factor, 1: the residual's) of value (i, c).
    fn value(&self, i: usize, c: usize, s: usize) -> f32 {
        match self {
            Samples::Fp32(x, cols) => x[i * cols + c],
            Samples::Quantized(q, Estimator::Double) => q.value(i, c, s),
            Samples::Quantized(q, _) => q.value(i, c, 0),
        }
    }
}

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
