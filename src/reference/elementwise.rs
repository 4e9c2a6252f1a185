//! CPU twins of the elementwise training kernels (`ops::elementwise`), bit for bit.

use crate::quant::CANONICAL_NAN;
use crate::softfloat::{exp, order_key};

fn positive(b: u32) -> bool {
    b >> 31 == 0 && b != 0 && b <= 0x7f80_0000
}

/// y = relu(x): NaN stays NaN, -0 becomes +0.
pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|v| {
            let b = v.to_bits();
            if b & 0x7fff_ffff > 0x7f80_0000 {
                f32::from_bits(CANONICAL_NAN)
            } else if positive(b) {
                *v
            } else {
                0.0
            }
        })
        .collect()
}

/// dx = g where x > 0, else +0.
pub fn relu_backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(g)
        .map(|(x, g)| if positive(x.to_bits()) { *g } else { 0.0 })
        .collect()
}

/// Softmax cross-entropy of rows x cols logits: (gradient (p - onehot)/rows, per-row loss, per-row correct).
pub fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    (rows, cols): (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let scale = 1.0f32 / rows as f32;
    let (mut grad, mut loss, mut correct) =
        (vec![0f32; rows * cols], vec![0f32; rows], vec![0u32; rows]);
    for i in 0..rows {
        let z = &logits[i * cols..(i + 1) * cols];
        let (mut m, mut arg) = (z[0], 0);
        for (j, v) in z.iter().enumerate().skip(1) {
            if order_key(v.to_bits()) > order_key(m.to_bits()) {
                m = *v;
                arg = j;
            }
        }
        let e = |v: f32| f32::from_bits(exp((v - m).to_bits()));
        let s = z.iter().fold(0f32, |s, &v| s + e(v));
        let label = labels[i] as usize;
        for (j, &v) in z.iter().enumerate() {
            let p = e(v) / s;
            grad[i * cols + j] = (if j == label { p - 1.0 } else { p }) * scale;
        }
        loss[i] = s.ln() + m - z[label];
        correct[i] = (arg == label) as u32;
    }
    (grad, loss, correct)
}

/// Column sums of a rows x cols matrix, in row order.
pub fn col_sum(g: &[f32], (rows, cols): (usize, usize)) -> Vec<f32> {
    (0..cols)
        .map(|j| (0..rows).fold(0f32, |s, i| s + g[i * cols + j]))
        .collect()
}

/// One SGD step in place: ge = g + wd w; v' = mu v + ge; u = nesterov ? ge + mu v' : v'; w' = w - lr u.
pub fn sgd(g: &[f32], w: &mut [f32], v: &mut [f32], lr: f32, mu: f32, wd: f32, nesterov: bool) {
    for i in 0..w.len() {
        let ge = g[i] + wd * w[i];
        let vn = mu * v[i] + ge;
        let u = if nesterov { ge + mu * vn } else { vn };
        w[i] -= lr * u;
        v[i] = vn;
    }
}
