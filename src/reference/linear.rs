//! Linear models on the CPU (the reference the GPU trainer is checked against): the batch
//! gradient of least squares, L2-regularised logistic regression and the SVM's hinge under
//! each ZipML estimator, and the SGD step.

pub use crate::levels::Loss;
use crate::levels::Samples;
use crate::softfloat;

/// The dot product of sample `s` of row `i` with `w`, columns in order.
fn dot(samples: &Samples, i: usize, s: usize, w: &[f32]) -> f32 {
    let mut r = 0f32;
    for (c, &wc) in w.iter().enumerate() {
        r += samples.value(i, c, s) * wc;
    }
    r
}

/// The dot product of row `i` at full precision with `w`, columns in order.
fn dot_full(samples: &Samples, i: usize, w: &[f32]) -> Option<f32> {
    let mut r = 0f32;
    for (c, &wc) in w.iter().enumerate() {
        r += samples.full(i, c)? * wc;
    }
    Some(r)
}

/// The error band of row `i`'s quantized margin against `w`: sum_c |w_c| (l_j+1 - l_j)
/// bounds |(Q(a) - a)^T w|, and (d + 2) 2^-23 of sum_c |w_c Q(a_c)| more covers f32's
/// rounding of both dot products and of the band itself (Higham's gamma_d), the whole
/// times 1 + (d + 2) 2^-23; columns in order, f32 products and sums rounded separately.
pub fn refetch_band(q: &crate::levels::QuantizedMatrix, i: usize, w: &[f32]) -> f32 {
    let (mut band, mut size) = (0f32, 0f32);
    for (c, &wc) in w.iter().enumerate() {
        band += wc.abs() * q.gap(i, c);
        size += (wc * q.value(i, c, 0)).abs();
    }
    let eps = (w.len() + 2) as f32 * f32::EPSILON;
    (band + size * eps) * (1.0 + eps)
}

/// sigma(-z) = 1 / (1 + exp(z)) in soft-float (the GPU's exp), rounded step by step.
pub fn sigmoid_neg(z: f32) -> f32 {
    let e = softfloat::exp(z.to_bits());
    f32::from_bits(softfloat::div(
        1f32.to_bits(),
        softfloat::add(1f32.to_bits(), e),
    ))
}

/// The scalar that multiplies row i's gradient factor Q0(a_i): Q(a)^T w - b for least
/// squares; -y sigma(-y Q(a)^T w) for logistic regression, or -y P(y Q_1(a)^T w, ...) with
/// the k-th power of z estimated by prod_t<=k y Q_t(a)^T w; -y where the hinge's margin
/// y Q(a)^T w is below 1, else 0. The flag says the row was read again at full precision
/// (refetching: the margin lay within `refetch_band` of 1), so the factor multiplies a_i.
pub fn row_factor(
    samples: &Samples,
    targets: &[f32],
    i: usize,
    w: &[f32],
    loss: &Loss,
) -> (f32, bool) {
    let y = targets[i];
    let r = match loss {
        Loss::Lsq => dot(samples, i, 1, w) - y,
        Loss::Logistic { poly: None, .. } => -y * sigmoid_neg(y * dot(samples, i, 1, w)),
        Loss::Logistic {
            poly: Some(coef), ..
        } => {
            let (mut p, mut prod) = (coef[0], 1f32);
            for (k, &ck) in coef.iter().enumerate().skip(1) {
                prod *= y * dot(samples, i, k, w);
                p += ck * prod;
            }
            -y * p
        }
        Loss::Hinge { .. } => return hinge_factor(samples, y, i, w),
    };
    (r, false)
}

/// The hinge's factor of row i (`row_factor`), refetching the row where the samples allow.
fn hinge_factor(samples: &Samples, y: f32, i: usize, w: &[f32]) -> (f32, bool) {
    let mut m = y * dot(samples, i, 1, w);
    let mut full = false;
    if let Samples::Refetch(q, _) = samples
        && (m - 1.0).abs() <= refetch_band(q, i, w)
        && let Some(z) = dot_full(samples, i, w)
    {
        m = y * z;
        full = true;
    }
    (if m < 1.0 { -y } else { 0.0 }, full)
}

/// The mean gradient over `rows`, (1/B) sum_i Q0(a_i) r_i (+ l2 w), in f32: each row's
/// factor r_i (`row_factor`) first, then the rows' terms added in order, products and sums
/// rounded separately (no fused multiply-add), then times 1/B (rounded to f32 first), then
/// the L2 term where it is not zero. A row read again at full precision (refetching)
/// multiplies its factor by a_i; the count of such rows comes back beside the gradient.
pub fn batch_gradient(
    samples: &Samples,
    targets: &[f32],
    rows: &[usize],
    w: &[f32],
    loss: &Loss,
) -> (Vec<f32>, usize) {
    let factor = |i| row_factor(samples, targets, i, w, loss);
    gradient_from_factors(samples, rows, factor, w, loss)
}

/// `batch_gradient` with each row's factor r_i and full-precision flag given (e.g. cached
/// at a fixed point): the same arithmetic in the same order.
pub fn gradient_from_factors(
    samples: &Samples,
    rows: &[usize],
    factor: impl Fn(usize) -> (f32, bool),
    w: &[f32],
    loss: &Loss,
) -> (Vec<f32>, usize) {
    let d = samples.cols();
    let mut g = vec![0f32; d];
    let inv = 1.0 / rows.len().max(1) as f32;
    let mut refetched = 0;
    for &i in rows {
        let (r, full) = factor(i);
        refetched += full as usize;
        for (c, gc) in g.iter_mut().enumerate() {
            let a = match full {
                true => samples.full(i, c).unwrap_or(f32::NAN),
                false => samples.value(i, c, 0),
            };
            *gc += a * r;
        }
    }
    let l2 = match loss {
        Loss::Logistic { l2, .. } | Loss::Hinge { l2 } => *l2,
        Loss::Lsq => 0.0,
    };
    for (gc, &wc) in g.iter_mut().zip(w) {
        *gc *= inv;
        if l2 != 0.0 {
            *gc += l2 * wc;
        }
    }
    (g, refetched)
}

/// The mean least-squares gradient over `rows`, (1/B) sum_i Q1(a_i)(Q2(a_i)^T w - b_i)
/// (`batch_gradient` with `Loss::Lsq`).
pub fn lsq_gradient(samples: &Samples, targets: &[f32], rows: &[usize], w: &[f32]) -> Vec<f32> {
    batch_gradient(samples, targets, rows, w, &Loss::Lsq).0
}

/// One SGD step in f32: w <- w - lr g (product, then difference).
pub fn sgd_step(w: &mut [f32], g: &[f32], lr: f32) {
    for (wc, &gc) in w.iter_mut().zip(g) {
        *wc -= lr * gc;
    }
}
