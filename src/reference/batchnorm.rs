//! CPU twin of `ops::batchnorm` (2-D batch normalization, NCHW), bit for bit: the same
//! IEEE binary32 operations in the same order.

use super::elementwise::col_sum;
use crate::layer_geometry::BatchNorm;

/// Per-channel state of a batch-norm layer: the six rows of the GPU's `stat` buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStat {
    /// Mean used by the last forward pass.
    pub mean: Vec<f32>,
    /// 1 / sqrt(var + eps) used by the last forward pass.
    pub inv: Vec<f32>,
    /// Running mean.
    pub running_mean: Vec<f32>,
    /// Running (unbiased) variance.
    pub running_var: Vec<f32>,
    /// Sum of the output gradient (dbeta) from the last backward pass.
    pub dbeta: Vec<f32>,
    /// Sum of the output gradient times xhat (dgamma) from the last backward pass.
    pub dgamma: Vec<f32>,
}

impl BnStat {
    /// Fresh state for `c` channels: running mean 0, running variance 1.
    pub fn new(c: usize) -> BnStat {
        BnStat {
            mean: vec![0.0; c],
            inv: vec![0.0; c],
            running_mean: vec![0.0; c],
            running_var: vec![1.0; c],
            dbeta: vec![0.0; c],
            dgamma: vec![0.0; c],
        }
    }

    /// The GPU buffer's layout: the six rows one after another.
    pub fn words(&self) -> Vec<u32> {
        [
            &self.mean,
            &self.inv,
            &self.running_mean,
            &self.running_var,
            &self.dbeta,
            &self.dgamma,
        ]
        .iter()
        .flat_map(|r| r.iter().map(|v| v.to_bits()))
        .collect()
    }

    /// From the GPU buffer's layout.
    pub fn from_words(w: &[u32], c: usize) -> BnStat {
        let row = |k: usize| {
            w[k * c..(k + 1) * c]
                .iter()
                .map(|&b| f32::from_bits(b))
                .collect()
        };
        BnStat {
            mean: row(0),
            inv: row(1),
            running_mean: row(2),
            running_var: row(3),
            dbeta: row(4),
            dgamma: row(5),
        }
    }
}

/// Per-channel sums in the chunked order of `col_sum`.
fn channel_sums(v: &[f32], bn: &BatchNorm) -> Vec<f32> {
    col_sum(v, (bn.batch, bn.channels, bn.pixels))
}

/// The statistics: from the batch `x` (updating the running ones) when training, else the
/// running ones.
pub fn bn_stats(x: &[f32], st: &mut BnStat, bn: &BatchNorm, train: bool) {
    let (inv_m, _, unbias, keep) = bn.constants();
    if !train {
        for c in 0..bn.channels {
            st.mean[c] = st.running_mean[c];
            st.inv[c] = 1.0 / (st.running_var[c] + bn.eps).sqrt();
        }
        return;
    }
    st.mean = channel_sums(x, bn).iter().map(|s| s * inv_m).collect();
    let sq: Vec<f32> = (0..x.len())
        .map(|i| {
            let d = x[i] - st.mean[(i / bn.pixels) % bn.channels];
            d * d
        })
        .collect();
    for (c, sum) in channel_sums(&sq, bn).into_iter().enumerate() {
        let var = sum * inv_m;
        st.inv[c] = 1.0 / (var + bn.eps).sqrt();
        // Momentum 0 leaves the running statistics as they are (a gradient-only pass).
        if bn.momentum.to_bits() != 0 {
            st.running_mean[c] = keep * st.running_mean[c] + bn.momentum * st.mean[c];
            st.running_var[c] = keep * st.running_var[c] + bn.momentum * (var * unbias);
        }
    }
}

/// y = gamma (x - mean) inv + beta.
pub fn bn_forward(x: &[f32], gamma: &[f32], beta: &[f32], st: &BnStat, bn: &BatchNorm) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let c = (i / bn.pixels) % bn.channels;
            let xhat = (x[i] - st.mean[c]) * st.inv[c];
            gamma[c] * xhat + beta[c]
        })
        .collect()
}

/// The backward pass: sets dbeta and dgamma in `st` and returns dx.
pub fn bn_backward(
    x: &[f32],
    g: &[f32],
    gamma: &[f32],
    st: &mut BnStat,
    bn: &BatchNorm,
) -> Vec<f32> {
    let (inv_m, m, _, _) = bn.constants();
    let chan = |i: usize| (i / bn.pixels) % bn.channels;
    let xhat = |i: usize| (x[i] - st.mean[chan(i)]) * st.inv[chan(i)];
    let gx: Vec<f32> = (0..x.len()).map(|i| g[i] * xhat(i)).collect();
    let (dbeta, dgamma) = (channel_sums(g, bn), channel_sums(&gx, bn));
    let dx = (0..x.len())
        .map(|i| {
            let c = chan(i);
            let t = (m * g[i] - dbeta[c]) - xhat(i) * dgamma[c];
            let k = gamma[c] * st.inv[c] * inv_m;
            k * t
        })
        .collect();
    st.dbeta = dbeta;
    st.dgamma = dgamma;
    dx
}
