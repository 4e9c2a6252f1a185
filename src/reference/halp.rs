//! HALP's arithmetic on the CPU, the reference shaders/halp.wgsl is checked against: each
//! row's gradient factors for least squares, binary logistic and softmax regression, the
//! minibatch gradient from them, and the rounding of an iterate onto a scaled fixed-point
//! grid. f32 arithmetic in a fixed order (products and sums rounded separately), the
//! exponential and the grid's division and product in soft-float.

use crate::glm::{GRID_STREAM, Glm, InnerSteps, Rows};
use crate::reference::linear::sigmoid_neg;
use crate::rng::random_bits;
use crate::scaled_fixed::ScaledFixed;
use crate::softfloat;

fn dot(a: &[f32], w: &[f32]) -> f32 {
    let mut r = 0f32;
    for (&u, &v) in a.iter().zip(w) {
        r += u * v;
    }
    r
}

/// Row i's gradient factors at `w` into `out` (`glm.outputs()` of them): a^T w - y for
/// least squares; -y sigma(-y a^T w) for logistic regression; the hinge's subgradient -y
/// where y a^T w < 1, else 0, for the SVM; p_k - [k = y] for softmax,
/// with p the softmax of the logits less their largest (largest by `order_key`).
pub fn factors(rows: &Rows, i: usize, w: &[f32], glm: &Glm, out: &mut [f32]) {
    let a = rows.row(i);
    let y = rows.y[i];
    match glm {
        Glm::Lsq => out[0] = dot(a, w) - y,
        Glm::Logistic { .. } => out[0] = -y * sigmoid_neg(y * dot(a, w)),
        Glm::Svm { .. } => out[0] = if y * dot(a, w) < 1.0 { -y } else { 0.0 },
        Glm::Softmax { classes, .. } => {
            let d = rows.cols;
            let mut m = 0f32;
            for k in 0..*classes {
                out[k] = dot(a, &w[k * d..(k + 1) * d]);
                if k == 0
                    || softfloat::order_key(out[k].to_bits()) > softfloat::order_key(m.to_bits())
                {
                    m = out[k];
                }
            }
            let mut s = 0f32;
            for o in out.iter_mut().take(*classes) {
                *o = f32::from_bits(softfloat::exp((*o - m).to_bits()));
                s += *o;
            }
            for (k, o) in out.iter_mut().take(*classes).enumerate() {
                *o /= s;
                if k as f32 == y {
                    *o -= 1.0;
                }
            }
        }
    }
}

/// The mean gradient over the rows `batch`, given each batch row's factors by
/// `factor(position, row, output)`: g_kc = (1/B) sum_t a_(t)c r_tk, rows in order, then
/// times 1/B (rounded to f32 first), then plus l2 w_kc where l2 is not zero.
pub fn gradient(
    rows: &Rows,
    batch: &[usize],
    factor: impl Fn(usize, usize, usize) -> f32,
    w: &[f32],
    glm: &Glm,
) -> Vec<f32> {
    let d = rows.cols;
    let mut g = vec![0f32; d * glm.outputs()];
    for (t, &i) in batch.iter().enumerate() {
        let a = rows.row(i);
        for (k, gk) in g.chunks_mut(d.max(1)).enumerate() {
            let r = factor(t, i, k);
            for (gc, &ac) in gk.iter_mut().zip(a) {
                *gc += ac * r;
            }
        }
    }
    let inv = 1.0 / batch.len().max(1) as f32;
    let l2 = glm.l2();
    for (gc, &wc) in g.iter_mut().zip(w) {
        *gc *= inv;
        if l2 != 0.0 {
            *gc += l2 * wc;
        }
    }
    g
}

/// The factors of every row of `batch` at `w`, position-major.
pub fn batch_factors(rows: &Rows, batch: &[usize], w: &[f32], glm: &Glm) -> Vec<f32> {
    let m = glm.outputs();
    let mut out = vec![0f32; batch.len() * m];
    for (t, &i) in batch.iter().enumerate() {
        factors(rows, i, w, glm, &mut out[t * m..(t + 1) * m]);
    }
    out
}

/// The mean gradient over `batch` at `w` (`factors`, then `gradient`).
pub fn batch_gradient(rows: &Rows, batch: &[usize], w: &[f32], glm: &Glm) -> Vec<f32> {
    let m = glm.outputs();
    let f = batch_factors(rows, batch, w, glm);
    gradient(rows, batch, |t, _, k| f[t * m + k], w, glm)
}

/// Rounds every value of `v` onto `grid` in place with the random words of inner step
/// `step` (element e takes word `step * len + e` of `GRID_STREAM`); the saturations.
pub fn round_onto(v: &mut [f32], grid: &ScaledFixed, seed: u64, step: u64) -> u64 {
    let mut saturated = 0;
    let n = v.len() as u64;
    for (e, x) in v.iter_mut().enumerate() {
        let code = grid.round(*x, random_bits(seed, GRID_STREAM, step * n + e as u64));
        saturated += code.saturated as u64;
        *x = grid.value(code.k);
    }
    saturated
}

/// The centre of an SVRG epoch: its weights, every row's factors there (row-major), and the
/// full gradient (`gradient` over all rows in order).
#[derive(Clone, Debug)]
pub struct Centre {
    /// The centre's weights.
    pub w: Vec<f32>,
    /// Every row's factors at the centre.
    pub factors: Vec<f32>,
    /// The full gradient at the centre.
    pub full: Vec<f32>,
}

/// The centre at `w`, with its factors and full gradient.
pub fn centre(rows: &Rows, w: &[f32], glm: &Glm) -> Centre {
    let all: Vec<usize> = (0..rows.y.len()).collect();
    let m = glm.outputs();
    let factors = batch_factors(rows, &all, w, glm);
    let full = gradient(rows, &all, |_, i, k| factors[i * m + k], w, glm);
    Centre {
        w: w.to_vec(),
        factors,
        full,
    }
}

/// One epoch's inner steps from the iterate `start` (the twin of `ops::halp::GpuHalp::inner`;
/// `centre` is needed by SVRG's steps and an offset iterate): the iterate they end at and
/// the values the grid clamped.
pub fn inner(
    rows: &Rows,
    glm: &Glm,
    centre: Option<&Centre>,
    start: &[f32],
    s: &InnerSteps,
) -> (Vec<f32>, u64) {
    let m = glm.outputs();
    let batches = s.order.len().div_ceil(s.batch.max(1));
    let mut x = start.to_vec();
    let mut saturated = 0;
    for j in 0..s.steps {
        let first = (j % batches) * s.batch;
        let b = &s.order[first..(first + s.batch).min(s.order.len())];
        let at: Vec<f32> = match (s.offset, centre) {
            (true, Some(c)) => c.w.iter().zip(&x).map(|(c, z)| c + z).collect(),
            _ => x.clone(),
        };
        let f = batch_factors(rows, b, &at, glm);
        let gi = gradient(rows, b, |t, _, k| f[t * m + k], &at, glm);
        match (s.svrg, centre) {
            (true, Some(c)) => {
                let gc = gradient(rows, b, |_, i, k| c.factors[i * m + k], &c.w, glm);
                for (e, xe) in x.iter_mut().enumerate() {
                    *xe -= s.lr * (gi[e] - gc[e] + c.full[e]);
                }
            }
            _ => {
                for (xe, g) in x.iter_mut().zip(&gi) {
                    *xe -= s.lr * g;
                }
            }
        }
        if let Some(grid) = &s.grid {
            saturated += round_onto(&mut x, grid, s.seed, s.step0 + j as u64);
        }
    }
    (x, saturated)
}
