//! Shapes and host-computed constants of the elementwise layer kernels (batch norm,
//! residual shortcuts, column sums), shared by the GPU ops and their CPU twins.

/// Values per chunk of a column sum (`shaders/col_sum.wgsl`'s CHUNK).
pub const COL_SUM_CHUNK: usize = 1024;

/// The shape and constants of a batch-norm layer over a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Samples.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Pixels per channel plane.
    pub pixels: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Weight of the new batch statistics in the running ones.
    pub momentum: f32,
}

impl BatchNorm {
    /// Values each channel's statistics are taken over.
    pub fn count(&self) -> usize {
        self.batch * self.pixels
    }

    /// The constants, computed once on the host (and shared with the CPU twin):
    /// (1 / M, M, M / (M - 1), 1 - momentum).
    pub fn constants(&self) -> (f32, f32, f32, f32) {
        let m = self.count() as f64;
        let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
        (
            (1.0 / m) as f32,
            m as f32,
            unbias as f32,
            (1.0 - self.momentum as f64) as f32,
        )
    }
}

/// A residual shortcut from a `source` [C, H, W] sample to an `out` [C, H, W] sample:
/// identity, or every stride-th pixel with channels zero-padded evenly on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortcut {
    /// Samples in the batch.
    pub batch: usize,
    /// Source (channels, height, width).
    pub source: [usize; 3],
    /// Output (channels, height, width).
    pub out: [usize; 3],
}

impl Shortcut {
    /// The pixel stride, checking the shapes fit option A (more channels, integer stride).
    pub fn stride(&self) -> Result<usize, String> {
        let ([cs, hs, ws], [c, h, w]) = (self.source, self.out);
        let s = hs / h.max(1);
        if cs > c || (c - cs) % 2 != 0 || h == 0 || s == 0 || hs != s * h || ws != s * w {
            return Err(format!(
                "a shortcut from {:?} to {:?}: needs the same or evenly more channels and an integer stride",
                self.source, self.out
            ));
        }
        Ok(s)
    }
}
