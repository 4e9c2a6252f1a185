//! CPU twins of the optimizer and loss-scale kernels (`ops::optim`), bit for bit: the same
//! IEEE binary32 operations in the same order.

use crate::ops::optim::{AdamStep, Sgd};
use crate::quant::Exceptions;

/// One SGD step in place on the gradient times `inv_scale`:
/// ge = g inv_scale + wd w; v' = mu v + ge; u = nesterov ? ge + mu v' : v'; w' = w - lr u.
pub fn sgd(g: &[f32], w: &mut [f32], v: &mut [f32], inv_scale: f32, s: &Sgd) {
    for i in 0..w.len() {
        let ge = g[i] * inv_scale + s.weight_decay * w[i];
        let vn = s.momentum * v[i] + ge;
        let u = if s.nesterov { ge + s.momentum * vn } else { vn };
        w[i] -= s.lr * u;
        v[i] = vn;
    }
}

/// One Adam step in place on the gradient times `inv_scale`:
/// ge = g inv_scale + wd w; m' = b1 m + (1 - b1) ge; v' = b2 v + (1 - b2) ge^2;
/// w' = w - lr_t m' / (sqrt(v') bc2 + eps).
pub fn adam(
    g: &[f32],
    w: &mut [f32],
    (m, v): (&mut [f32], &mut [f32]),
    inv_scale: f32,
    a: &AdamStep,
) {
    for i in 0..w.len() {
        let ge = g[i] * inv_scale + a.weight_decay * w[i];
        let mn = a.beta1 * m[i] + a.beta1c * ge;
        let vn = a.beta2 * v[i] + a.beta2c * (ge * ge);
        let denom = vn.sqrt() * a.bc2 + a.eps;
        w[i] -= a.lr_t * (mn / denom);
        m[i] = mn;
        v[i] = vn;
    }
}

/// The loss-scale state of `shaders/loss_scale.wgsl`: scale S (a power of two), whether
/// this step's update is skipped, 1 / S of this step, and good steps since the last change.
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
}

impl LossScaleState {
    /// The state before the first step, with scale `scale` (a power of two).
    pub fn new(scale: f32) -> Self {
        let w = crate::ops::optim::loss_scale_state(scale);
        Self::from_words(w)
    }

    /// The state from its four words.
    pub fn from_words(w: [u32; 4]) -> Self {
        LossScaleState {
            scale: w[0],
            skip: w[1],
            inv: w[2],
            good: w[3],
        }
    }

    /// Checks saved state words: a power-of-two scale within [2^-64, 2^64], its inverse, a
    /// 0/1 skip flag.
    pub fn check_words(w: [u32; 4]) -> Result<(), String> {
        let power = |b: u32| b & 0x807f_ffff == 0;
        let (e, inv_e) = ((w[0] >> 23) & 0xff, (w[2] >> 23) & 0xff);
        // 1 / S of the last step: S then was this scale, or one doubling or halving away.
        let ok = power(w[0])
            && (63..=191).contains(&e)
            && w[1] <= 1
            && power(w[2])
            && (e - 1..=e + 1).contains(&(254u32.saturating_sub(inv_e)));
        if ok {
            Ok(())
        } else {
            Err(format!("loss-scale state {w:08x?} is not one lowp writes"))
        }
    }

    /// The state's four words.
    pub fn words(&self) -> [u32; 4] {
        [self.scale, self.skip, self.inv, self.good]
    }

    /// The update after a backward pass whose gradient quantizers saw `ex`.
    pub fn update(&mut self, ex: &Exceptions, dynamic: bool, interval: u32) {
        let e = (self.scale >> 23) & 0xff;
        self.inv = (254 - e) << 23;
        // The kernel's counts are 32-bit; only zero versus nonzero matters here.
        let bad = ex.overflow + ex.nan != 0;
        self.skip = (bad && dynamic) as u32;
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
