//! CPU twins of the optimizer and loss-scale kernels (`ops::optim`), bit for bit: the same
//! IEEE binary32 operations in the same order.

use crate::optim::{AdamStep, STEP_STATE_WORDS, Sgd};
use crate::quant::Exceptions;
use crate::softfloat::{div, expm1, mul, sqrt};

/// The gradient a step takes: g inv_scale, plus wd w where the weight decay wd is not zero
/// (as torch.optim, which adds no term without decay: an infinite weight or a -0 gradient
/// then stays as it is).
fn decayed(g: f32, inv_scale: f32, wd: f32, w: f32) -> f32 {
    if wd == 0.0 {
        g * inv_scale
    } else {
        g * inv_scale + wd * w
    }
}

/// One SGD step in place on the gradient times `inv_scale`:
/// ge = g inv_scale (+ wd w); v' = mu v + ge; u = nesterov ? ge + mu v' : v'; w' = w - lr u.
pub fn sgd(g: &[f32], w: &mut [f32], v: &mut [f32], inv_scale: f32, s: &Sgd) {
    for i in 0..w.len() {
        let ge = decayed(g[i], inv_scale, s.weight_decay, w[i]);
        let vn = s.momentum * v[i] + ge;
        let u = if s.nesterov { ge + s.momentum * vn } else { vn };
        w[i] -= s.lr * u;
        v[i] = vn;
    }
}

/// One Adam step in place on the gradient times the step state's 1 / S:
/// ge = g / S (+ wd w); m' = b1 m + (1 - b1) ge; v' = b2 v + (1 - b2) ge^2;
/// w' = w - lr_t m' / (sqrt(v') bc2 + eps), lr_t = lr / (1 - b1^t) and bc2 from the state.
pub fn adam(
    g: &[f32],
    w: &mut [f32],
    (m, v): (&mut [f32], &mut [f32]),
    state: &LossScaleState,
    a: &AdamStep,
) {
    let inv_scale = f32::from_bits(state.inv);
    let lr_t = a.lr * f32::from_bits(state.lr_factor);
    let bc2 = f32::from_bits(state.bc2);
    for i in 0..w.len() {
        let ge = decayed(g[i], inv_scale, a.weight_decay, w[i]);
        let mn = a.beta1 * m[i] + a.beta1c * ge;
        let vn = a.beta2 * v[i] + a.beta2c * (ge * ge);
        let denom = vn.sqrt() * bc2 + a.eps;
        w[i] -= lr_t * (mn / denom);
        m[i] = mn;
        v[i] = vn;
    }
}

/// A value of bit-centred SVRG (HALP) for one parameter, the twin of
/// `ops::optim::record_svrg`: the f32 values it stores before they are rounded.
#[derive(Clone, Copy, Debug)]
pub enum SvrgValue<'a> {
    /// x itself.
    Copy(&'a [f32]),
    /// a + b.
    Sum(&'a [f32], &'a [f32]),
    /// (g inv_scale) factor.
    Unscaled(&'a [f32], f32),
    /// z - lr ((g inv_scale - gc) + full).
    Step {
        /// The gradient at the point (times S).
        g: &'a [f32],
        /// The offset.
        z: &'a [f32],
        /// The gradient at the centre.
        gc: &'a [f32],
        /// The full gradient.
        full: &'a [f32],
        /// The step size.
        lr: f32,
    },
    /// n zeros.
    Zero(usize),
}

/// The values of `v` with the step state's 1 / S `inv_scale`.
pub fn svrg_value(v: &SvrgValue, inv_scale: f32) -> Vec<f32> {
    match *v {
        SvrgValue::Copy(x) => x.to_vec(),
        SvrgValue::Sum(a, b) => a.iter().zip(b).map(|(x, y)| x + y).collect(),
        SvrgValue::Unscaled(g, f) => g.iter().map(|x| (x * inv_scale) * f).collect(),
        SvrgValue::Step { g, z, gc, full, lr } => (0..z.len())
            .map(|i| z[i] - lr * ((g[i] * inv_scale - gc[i]) + full[i]))
            .collect(),
        SvrgValue::Zero(n) => vec![0.0; n],
    }
}

/// The step state of `shaders/loss_scale.wgsl`: scale S (a power of two), whether this
/// step's update is skipped, 1 / S of this step, good steps since the last change, and
/// the updates applied with Adam's bias corrections for the last of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossScaleState {
    /// S as f32 bits.
    pub scale: u32,
    /// 1 when this step's update is skipped.
    pub skip: u32,
    /// 1 / S of this step as f32 bits.
    pub inv: u32,
    /// Good steps since the scale last changed.
    pub good: u32,
    /// Updates applied (steps not skipped): Adam's t.
    pub updates: u32,
    /// 1 / (1 - beta1^t) as f32 bits.
    pub lr_factor: u32,
    /// 1 / sqrt(1 - beta2^t) as f32 bits.
    pub bc2: u32,
}

impl LossScaleState {
    /// The state before the first step, with scale `scale` (a power of two).
    pub fn new(scale: f32) -> Self {
        let w = crate::optim::loss_scale_state(scale);
        Self::from_words(w)
    }

    /// The state from its words.
    pub fn from_words(w: [u32; STEP_STATE_WORDS]) -> Self {
        LossScaleState {
            scale: w[0],
            skip: w[1],
            inv: w[2],
            good: w[3],
            updates: w[4],
            lr_factor: w[5],
            bc2: w[6],
        }
    }

    /// Checks saved state words: a power-of-two scale within [2^-64, 2^64], its inverse, a
    /// 0/1 skip flag, and bias corrections of at least 1 once an update was applied.
    pub fn check_words(w: [u32; STEP_STATE_WORDS]) -> Result<(), String> {
        let power = |b: u32| b & 0x807f_ffff == 0;
        let (e, inv_e) = ((w[0] >> 23) & 0xff, (w[2] >> 23) & 0xff);
        // 1 / S of the last step: S then was this scale, or one doubling or halving away.
        let ok = power(w[0])
            && (63..=191).contains(&e)
            && w[1] <= 1
            && power(w[2])
            && (e - 1..=e + 1).contains(&(254u32.saturating_sub(inv_e)))
            && (w[4] == 0 || (f32::from_bits(w[5]) >= 1.0 && f32::from_bits(w[6]) >= 1.0))
            && w[7] == 0;
        if ok {
            Ok(())
        } else {
            Err(format!("loss-scale state {w:08x?} is not one lowp writes"))
        }
    }

    /// The state's words.
    pub fn words(&self) -> [u32; STEP_STATE_WORDS] {
        [
            self.scale,
            self.skip,
            self.inv,
            self.good,
            self.updates,
            self.lr_factor,
            self.bc2,
            0,
        ]
    }

    /// The update after a backward pass whose gradient quantizers saw `ex`; an update not
    /// skipped counts, with Adam's bias corrections from `ln_betas` (ln beta1, ln beta2).
    pub fn update(
        &mut self,
        ex: &Exceptions,
        (dynamic, interval): (bool, u32),
        ln_betas: [f32; 2],
    ) {
        let e = (self.scale >> 23) & 0xff;
        self.inv = (254 - e) << 23;
        // The kernel's counts are 32-bit; only zero versus nonzero matters here.
        let bad = ex.overflow + ex.nan != 0;
        self.skip = (bad && dynamic) as u32;
        if self.skip == 0 {
            self.updates += 1;
            let t = crate::quant::make_f32_bits(false, self.updates, 0);
            let c = |ln: f32| expm1(mul(t, ln.to_bits())) ^ 0x8000_0000;
            self.lr_factor = div(0x3f80_0000, c(ln_betas[0]));
            self.bc2 = div(0x3f80_0000, sqrt(c(ln_betas[1])));
        }
        if !dynamic {
            return;
        }
        if bad {
            self.scale = (e - 1).max(63) << 23;
            self.good = 0;
        } else if self.good + 1 >= interval.max(1) {
            self.scale = (e + 1).min(191) << 23;
            self.good = 0;
        } else {
            self.good += 1;
        }
    }
}
