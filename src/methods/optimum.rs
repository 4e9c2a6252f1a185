//! The f64 side of the linear models: each objective and its gradient, the
//! strong-convexity constant, and the optimum a run's gap is measured from (conjugate
//! gradients for least squares, Newton's method for logistic regression, L-BFGS for
//! softmax regression).

use super::linear::{Task, logistic_loss, logistic_loss_f64, lsq_loss};
use crate::data::table::Table;

/// The strong-convexity constant of the objective and where it came from: the L2
/// coefficient for logistic regression, the smallest eigenvalue of A^T A / N (Jacobi, f64)
/// for least squares.
pub fn strong_convexity(t: &Table, task: Task) -> (f64, &'static str) {
    match task {
        Task::Logistic { l2 } | Task::Svm { l2 } | Task::Softmax { l2, .. } => {
            (l2 as f64, "the L2 coefficient")
        }
        Task::Lsq => (
            smallest_eigenvalue(&gram(t), t.cols()),
            "the smallest eigenvalue of A^T A / N",
        ),
    }
}

/// A^T A / N in f64, row-major d x d.
fn gram(t: &Table) -> Vec<f64> {
    let (n, d) = (t.rows(), t.cols());
    let mut g = vec![0f64; d * d];
    for a in t.features.chunks(d.max(1)).take(n) {
        for i in 0..d {
            for j in i..d {
                g[i * d + j] += a[i] as f64 * a[j] as f64;
            }
        }
    }
    let inv = 1.0 / n.max(1) as f64;
    for i in 0..d {
        for j in i..d {
            g[i * d + j] *= inv;
            g[j * d + i] = g[i * d + j];
        }
    }
    g
}

/// The smallest eigenvalue of the symmetric d x d matrix `a` (row-major), by cyclic Jacobi
/// rotations until the off-diagonal mass is below 1e-24 of the total.
pub fn smallest_eigenvalue(a: &[f64], d: usize) -> f64 {
    let mut a = a.to_vec();
    let total: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    for _ in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum();
        if off <= 1e-24 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..d).map(|i| a[i * d + i]).fold(f64::INFINITY, f64::min)
}

/// The objective at f32 weights, in f64 (softmax: class-major weights).
pub fn objective(t: &Table, w: &[f32], task: Task) -> f64 {
    match task {
        Task::Lsq => lsq_loss(t, w),
        Task::Logistic { l2 } => logistic_loss(t, w, l2),
        Task::Svm { .. } | Task::Softmax { .. } => {
            let w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            evaluate(t, &w, task, false).0
        }
    }
}

/// The objective and its gradient at f64 weights, in f64: least squares (1/2N) sum (a^T w -
/// y)^2; logistic (1/N) sum log(1 + exp(-y a^T w)) + (l2/2)|w|^2; the SVM's (1/N) sum
/// max(0, 1 - y a^T w) + (l2/2)|w|^2 with the subgradient -y a where y a^T w < 1; softmax (1/N) sum
/// (log sum_k exp(a^T w_k) - a^T w_y) + (l2/2)|w|^2. Rows are split over the CPU's threads.
pub fn value_and_gradient(t: &Table, w: &[f64], task: Task) -> (f64, Vec<f64>) {
    evaluate(t, w, task, true)
}

/// The objective and, when `grad`, its gradient (else an empty vector), in f64.
fn evaluate(t: &Table, w: &[f64], task: Task, grad: bool) -> (f64, Vec<f64>) {
    let (n, d) = (t.rows(), t.cols());
    let m = match task {
        Task::Softmax { classes, .. } => classes,
        _ => 1,
    };
    let part = |lo: usize, hi: usize| -> (f64, Vec<f64>) {
        let mut g = vec![0f64; if grad { d * m } else { 0 }];
        let mut z = vec![0f64; m];
        let mut loss = 0f64;
        for i in lo..hi {
            let a = &t.features[i * d..(i + 1) * d];
            let y = t.target[i] as f64;
            for (k, zk) in z.iter_mut().enumerate() {
                *zk = a
                    .iter()
                    .zip(&w[k * d..(k + 1) * d])
                    .map(|(&u, v)| u as f64 * v)
                    .sum();
            }
            match task {
                Task::Lsq => {
                    let r = z[0] - y;
                    loss += 0.5 * r * r;
                    z[0] = r;
                }
                Task::Logistic { .. } => {
                    let q = -y * z[0];
                    loss += q.max(0.0) + (-q.abs()).exp().ln_1p();
                    z[0] = -y / (1.0 + (y * z[0]).exp());
                }
                Task::Svm { .. } => {
                    let q = y * z[0];
                    loss += (1.0 - q).max(0.0);
                    z[0] = if q < 1.0 { -y } else { 0.0 };
                }
                Task::Softmax { .. } => {
                    let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = z.iter().map(|v| (v - top).exp()).sum();
                    let label = y as usize;
                    loss += top + s.ln() - z[label];
                    for (k, zk) in z.iter_mut().enumerate() {
                        *zk = (*zk - top).exp() / s - (k == label) as u8 as f64;
                    }
                }
            }
            for (k, &r) in z.iter().enumerate().filter(|_| grad) {
                for (gc, &ac) in g[k * d..(k + 1) * d].iter_mut().zip(a) {
                    *gc += ac as f64 * r;
                }
            }
        }
        (loss, g)
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|lo| s.spawn(move || part(lo, (lo + chunk).min(n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a gradient thread"))
            .collect()
    });
    let inv = 1.0 / n.max(1) as f64;
    let l2 = match task {
        Task::Lsq => 0.0,
        Task::Logistic { l2 } | Task::Svm { l2 } | Task::Softmax { l2, .. } => l2 as f64,
    };
    let mut g = vec![0f64; if grad { d * m } else { 0 }];
    let mut loss = 0f64;
    for (l, pg) in parts {
        loss += l;
        g.iter_mut().zip(&pg).for_each(|(a, b)| *a += b);
    }
    let ww: f64 = w.iter().map(|v| v * v).sum();
    g.iter_mut()
        .zip(w)
        .for_each(|(gc, &wc)| *gc = *gc * inv + l2 * wc);
    (loss * inv + 0.5 * l2 * ww, g)
}

/// The norm of the objective's gradient at f32 weights, in f64.
pub fn gradient_norm(t: &Table, w: &[f32], task: Task) -> f64 {
    let w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let g = value_and_gradient(t, &w, task).1;
    g.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The f64 optimum of the objective: its loss, its weights, the norm of the gradient there
/// and the solver's name.
pub fn optimum(t: &Table, task: Task) -> (f64, Vec<f64>, f64, &'static str) {
    let (w, loss, name) = match task {
        Task::Lsq => {
            let (w, l) = super::linear::lsq_optimum(t);
            (w, l, "conjugate gradients")
        }
        Task::Logistic { l2 } => {
            let (w, l) = logistic_optimum(t, l2);
            (w, l, "Newton")
        }
        Task::Svm { l2 } => {
            let (w, l) = svm_optimum(t, l2 as f64, 1e-10);
            (w, l, "dual coordinate descent")
        }
        Task::Softmax { .. } => {
            let (w, l) = lbfgs(t, task, 1e-9, 3000);
            (w, l, "L-BFGS")
        }
    };
    let g = value_and_gradient(t, &w, task).1;
    (loss, w, g.iter().map(|x| x * x).sum::<f64>().sqrt(), name)
}

/// Minimises the objective by L-BFGS (memory 20, backtracking to the Armijo condition) from
/// zero until the gradient's norm is below `gtol`, the loss stops falling, or `limit`
/// iterations: the weights and the loss there.
pub fn lbfgs(t: &Table, task: Task, gtol: f64, limit: usize) -> (Vec<f64>, f64) {
    let m = match task {
        Task::Softmax { classes, .. } => classes,
        _ => 1,
    };
    let n = t.cols() * m;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0f64; n];
    let (mut f, mut g) = value_and_gradient(t, &x, task);
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut stalled = 0;
    for _ in 0..limit {
        if dot(&g, &g).sqrt() < gtol {
            break;
        }
        // The two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, y, rho) in hist.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = hist
            .back()
            .map_or(1.0 / dot(&g, &g).sqrt().max(1e-300), |(s, y, _)| {
                dot(s, y) / dot(y, y)
            });
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let slope = -dot(&g, &q);
        if slope >= 0.0 {
            hist.clear();
            continue;
        }
        let mut step = 1.0;
        let (nx, nf, ng) = loop {
            let nx: Vec<f64> = x.iter().zip(&q).map(|(xi, di)| xi - step * di).collect();
            let (nf, ng) = value_and_gradient(t, &nx, task);
            if nf <= f + 1e-4 * step * slope || step < 1e-20 {
                break (nx, nf, ng);
            }
            step *= 0.5;
        };
        if nf >= f {
            stalled += 1;
            if stalled >= 3 {
                break;
            }
        } else {
            stalled = 0;
        }
        let s: Vec<f64> = nx.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = ng.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-300 {
            hist.push_back((s, y, 1.0 / sy));
            if hist.len() > 20 {
                hist.pop_front();
            }
        }
        if nf <= f {
            (x, f, g) = (nx, nf, ng);
        }
    }
    (x, f)
}

/// The optimum of L2-regularised logistic regression by Newton's method in f64 (Cholesky
/// solves of the exact Hessian) from zero, until the gradient's norm is below 1e-13 or 100
/// steps: the weights and the objective there.
pub fn logistic_optimum(t: &Table, l2: f32) -> (Vec<f64>, f64) {
    let (n, d) = (t.rows(), t.cols());
    let l2 = l2 as f64;
    let mut w = vec![0f64; d];
    let rows = || t.features.chunks(d.max(1)).zip(&t.target).take(n);
    for _ in 0..100 {
        let mut g = vec![0f64; d];
        let mut h = vec![0f64; d * d];
        for (a, &y) in rows() {
            let z: f64 = a.iter().zip(&w).map(|(&x, v)| x as f64 * v).sum();
            let s = 1.0 / (1.0 + (y as f64 * z).exp());
            let (r, c) = (-(y as f64) * s, s * (1.0 - s));
            for i in 0..d {
                g[i] += a[i] as f64 * r;
                for j in 0..=i {
                    h[i * d + j] += c * a[i] as f64 * a[j] as f64;
                }
            }
        }
        let inv = 1.0 / n.max(1) as f64;
        for i in 0..d {
            g[i] = g[i] * inv + l2 * w[i];
            for j in 0..=i {
                h[i * d + j] = h[i * d + j] * inv + if i == j { l2 } else { 0.0 };
            }
        }
        if g.iter().map(|x| x * x).sum::<f64>().sqrt() < 1e-13 {
            break;
        }
        let Some(step) = cholesky_solve(&h, &g, d) else {
            break;
        };
        w.iter_mut().zip(&step).for_each(|(wi, s)| *wi -= s);
    }
    let loss = logistic_loss_f64(t, &w, l2);
    (w, loss)
}

/// Solves H x = g for a symmetric positive definite H given by its lower triangle
/// (row-major d x d); None if H is not positive definite.
fn cholesky_solve(h: &[f64], g: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = h[i * d + i] - s;
                if v <= 0.0 {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (h[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    let mut y = vec![0f64; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (g[i] - s) / l[i * d + i];
    }
    let mut x = vec![0f64; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * d + i];
    }
    Some(x)
}

/// The SVM's f64 optimum, min (1/N) sum max(0, 1 - y a^T w) + (l2/2)|w|^2 (labels +-1), by
/// dual coordinate descent (Hsieh et al., ICML 2008) on the equivalent (1/2)|w|^2 + C sum
/// hinge, C = 1 / (N l2), until the duality gap is within `rel` of the objective (or 1,000
/// sweeps): the weights and the objective there. NaN where l2 is not positive (the hinge
/// alone has no unique minimum, and its linear program is not solved here).
pub fn svm_optimum(t: &Table, l2: f64, rel: f64) -> (Vec<f64>, f64) {
    let (n, d) = (t.rows(), t.cols());
    if l2.is_nan() || l2 <= 0.0 || n == 0 {
        return (vec![f64::NAN; d], f64::NAN);
    }
    let c = 1.0 / (n as f64 * l2);
    let row = |i: usize| &t.features[i * d..(i + 1) * d];
    let dot = |a: &[f32], w: &[f64]| a.iter().zip(w).map(|(&u, v)| u as f64 * v).sum::<f64>();
    let diag: Vec<f64> = (0..n)
        .map(|i| row(i).iter().map(|&u| (u as f64).powi(2)).sum())
        .collect();
    let mut alpha = vec![0f64; n];
    let mut w = vec![0f64; d];
    let objective = |w: &[f64]| {
        let hinge: f64 = (0..n)
            .map(|i| (1.0 - t.target[i] as f64 * dot(row(i), w)).max(0.0))
            .sum();
        0.5 * w.iter().map(|v| v * v).sum::<f64>() + c * hinge
    };
    for sweep in 0..1000 {
        for i in 0..n {
            if diag[i] == 0.0 {
                continue;
            }
            let y = t.target[i] as f64;
            let g = y * dot(row(i), &w) - 1.0;
            let next = (alpha[i] - g / diag[i]).clamp(0.0, c);
            let step = (next - alpha[i]) * y;
            if step != 0.0 {
                alpha[i] = next;
                w.iter_mut()
                    .zip(row(i))
                    .for_each(|(wc, &u)| *wc += step * u as f64);
            }
        }
        if sweep % 5 == 4 {
            let primal = objective(&w);
            let dual = alpha.iter().sum::<f64>() - 0.5 * w.iter().map(|v| v * v).sum::<f64>();
            if primal - dual <= rel * primal.abs().max(1e-300) {
                break;
            }
        }
    }
    let loss = l2 * objective(&w);
    (w, loss)
}

/// Solves the d x d system `m` x = `r` (row-major) in f64 by Gaussian elimination with
/// complete pivoting; where `m` is singular (pivots below 1e-13 of the largest, as one-hot
/// columns beside an intercept make it), the free unknowns are 0 (a solution when the
/// system is consistent).
pub fn solve(mut m: Vec<f64>, r: &[f64], d: usize) -> Vec<f64> {
    let mut r = r.to_vec();
    let mut cols: Vec<usize> = (0..d).collect();
    let scale = m.iter().fold(0f64, |a, v| a.max(v.abs()));
    let mut rank = d;
    for k in 0..d {
        let (mut pr, mut pc, mut best) = (k, k, 0f64);
        for i in k..d {
            for j in k..d {
                if m[i * d + j].abs() > best {
                    (pr, pc, best) = (i, j, m[i * d + j].abs());
                }
            }
        }
        if best <= 1e-13 * scale {
            rank = k;
            break;
        }
        for j in 0..d {
            m.swap(k * d + j, pr * d + j);
        }
        r.swap(k, pr);
        for i in 0..d {
            m.swap(i * d + k, i * d + pc);
        }
        cols.swap(k, pc);
        for i in k + 1..d {
            let f = m[i * d + k] / m[k * d + k];
            if f != 0.0 {
                for j in k..d {
                    m[i * d + j] -= f * m[k * d + j];
                }
                r[i] -= f * r[k];
            }
        }
    }
    let mut y = vec![0f64; d];
    for k in (0..rank).rev() {
        let s: f64 = (k + 1..rank).map(|j| m[k * d + j] * y[j]).sum();
        y[k] = (r[k] - s) / m[k * d + k];
    }
    let mut x = vec![0f64; d];
    for (k, &c) in cols.iter().enumerate() {
        x[c] = y[k];
    }
    x
}
