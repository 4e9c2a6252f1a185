//! CPU twins of the elementwise training kernels (`ops::elementwise`), bit for bit.

use crate::conv::Pool;
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

/// Mean squared error of rows x cols outputs against one-hot labels: (gradient
/// (z - onehot) 2 / (rows cols), per-row loss sum((z - onehot)^2) / cols, per-row correct).
pub fn mse(
    logits: &[f32],
    labels: &[u32],
    (rows, cols): (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let scale = 2.0f32 / (rows * cols) as f32;
    let inv_cols = 1.0f32 / cols as f32;
    let (mut grad, mut loss, mut correct) =
        (vec![0f32; rows * cols], vec![0f32; rows], vec![0u32; rows]);
    for i in 0..rows {
        let z = &logits[i * cols..(i + 1) * cols];
        let label = labels[i] as usize;
        let (mut m, mut arg, mut s) = (z[0], 0, 0f32);
        for (j, &v) in z.iter().enumerate() {
            if j > 0 && order_key(v.to_bits()) > order_key(m.to_bits()) {
                m = v;
                arg = j;
            }
            let d = if j == label { v - 1.0 } else { v };
            s += d * d;
            grad[i * cols + j] = d * scale;
        }
        loss[i] = s * inv_cols;
        correct[i] = (arg == label) as u32;
    }
    (grad, loss, correct)
}

/// Column sums of a rows x cols x inner array: each column's values in (row, inner) order
/// summed in chunks of `COL_SUM_CHUNK`, then the chunk sums in order.
pub fn col_sum(g: &[f32], (rows, cols, inner): (usize, usize, usize)) -> Vec<f32> {
    let chunk = crate::layer_geometry::COL_SUM_CHUNK;
    let total = rows * inner;
    (0..cols)
        .map(|j| {
            let mut s = 0f32;
            for q in 0..total.div_ceil(chunk).max(1) {
                let mut part = 0f32;
                for t in q * chunk..((q + 1) * chunk).min(total) {
                    part += g[((t / inner) * cols + j) * inner + t % inner];
                }
                s += part;
            }
            s
        })
        .collect()
}

/// Flat index of the first maximum of output `o`'s window.
fn window_argmax(x: &[f32], o: usize, p: &Pool) -> usize {
    let [oh_n, ow_n] = p.out_hw();
    let per = oh_n * ow_n;
    let (plane, oh, ow) = (o / per, (o % per) / ow_n, o % ow_n);
    let base = plane * p.in_hw[0] * p.in_hw[1];
    let mut best = base + oh * p.pool * p.in_hw[1] + ow * p.pool;
    for a in 0..p.pool {
        for b in 0..p.pool {
            let idx = base + (oh * p.pool + a) * p.in_hw[1] + ow * p.pool + b;
            if order_key(x[idx].to_bits()) > order_key(x[best].to_bits()) {
                best = idx;
            }
        }
    }
    best
}

/// Max pooling: each window's first maximum.
pub fn maxpool_forward(x: &[f32], p: &Pool) -> Vec<f32> {
    let [oh, ow] = p.out_hw();
    (0..p.planes * oh * ow)
        .map(|o| x[window_argmax(x, o, p)])
        .collect()
}

/// Max pooling's gradient: each output's gradient at its window's first maximum.
pub fn maxpool_backward(x: &[f32], g: &[f32], p: &Pool) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    let [oh, ow] = p.out_hw();
    for o in 0..p.planes * oh * ow {
        dx[window_argmax(x, o, p)] = g[o];
    }
    dx
}

/// Average pooling: each window summed in row order, times 1 / pool^2.
pub fn avgpool_forward(x: &[f32], p: &Pool) -> Vec<f32> {
    let [oh, ow] = p.out_hw();
    let [ih, iw] = p.in_hw;
    let inv = 1.0f32 / (p.pool * p.pool) as f32;
    (0..p.planes * oh * ow)
        .map(|o| {
            let (plane, r, c) = (o / (oh * ow), (o % (oh * ow)) / ow, o % ow);
            let mut s = 0f32;
            for a in 0..p.pool {
                for b in 0..p.pool {
                    s += x[plane * ih * iw + (r * p.pool + a) * iw + c * p.pool + b];
                }
            }
            s * inv
        })
        .collect()
}

/// Average pooling's gradient: each input gets its window's gradient times 1 / pool^2.
pub fn avgpool_backward(g: &[f32], p: &Pool) -> Vec<f32> {
    let [oh, ow] = p.out_hw();
    let [ih, iw] = p.in_hw;
    let inv = 1.0f32 / (p.pool * p.pool) as f32;
    (0..p.planes * ih * iw)
        .map(|i| {
            let (plane, r, c) = (i / (ih * iw), (i % (ih * iw)) / iw, i % iw);
            let (orow, ocol) = (r / p.pool, c / p.pool);
            if orow < oh && ocol < ow {
                g[(plane * oh + orow) * ow + ocol] * inv
            } else {
                0.0
            }
        })
        .collect()
}

/// y = a + shortcut(s) (see `ops::elementwise::Shortcut`).
pub fn residual_forward(a: &[f32], s: &[f32], sc: &crate::layer_geometry::Shortcut) -> Vec<f32> {
    let stride = sc.stride().expect("a valid shortcut");
    let ([cs, hs, ws], [c, h, w]) = (sc.source, sc.out);
    let off = sc.offset;
    (0..a.len())
        .map(|i| {
            let (n, ch, p) = (i / (c * h * w), (i / (h * w)) % c, i % (h * w));
            let v = if ch >= off && ch - off < cs {
                let (r, q) = ((p / w) * stride, (p % w) * stride);
                s[((n * cs + ch - off) * hs + r) * ws + q]
            } else {
                0.0
            };
            a[i] + v
        })
        .collect()
}

/// Writes the source `x` into `out` where the map places it (its window of a channel
/// concatenation), leaving the other values as they are.
pub fn place(x: &[f32], sc: &crate::layer_geometry::Shortcut, out: &mut [f32]) {
    let stride = sc.stride().expect("a valid map");
    for (i, v) in x.iter().enumerate().take(sc.source_len()) {
        if let Some(o) = sc.target(i, stride) {
            out[o] = *v;
        }
    }
}

/// The gradient of the shortcut's source from the output gradient `g`.
pub fn skip_backward(g: &[f32], sc: &crate::layer_geometry::Shortcut) -> Vec<f32> {
    let stride = sc.stride().expect("a valid shortcut");
    (0..sc.source_len())
        .map(|i| sc.target(i, stride).map_or(0.0, |o| g[o]))
        .collect()
}
