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

/// A map from a `source` [C, H, W] sample into an `out` [C, H, W] sample: every stride-th
/// pixel, the source's channels placed at a channel offset, zeros elsewhere. A residual
/// shortcut (identity, or option A of He et al. (2016): channels zero-padded evenly on both
/// sides) and a part of a channel concatenation (its window) are such maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortcut {
    /// Samples in the batch.
    pub batch: usize,
    /// Source (channels, height, width).
    pub source: [usize; 3],
    /// Output (channels, height, width).
    pub out: [usize; 3],
    /// The output channel of the source's channel 0.
    pub offset: usize,
}

impl Shortcut {
    /// A residual shortcut: identity, or option A (the source's channels in the middle).
    pub fn option_a(batch: usize, source: [usize; 3], out: [usize; 3]) -> Shortcut {
        Shortcut {
            batch,
            source,
            out,
            offset: out[0].saturating_sub(source[0]) / 2,
        }
    }

    /// A part of a channel concatenation: the source's channels at `offset`, same pixels.
    pub fn window(batch: usize, source: [usize; 3], out: [usize; 3], offset: usize) -> Shortcut {
        Shortcut {
            batch,
            source,
            out,
            offset,
        }
    }

    /// Values of the batch's source.
    pub fn source_len(&self) -> usize {
        self.batch * self.source.iter().product::<usize>()
    }

    /// The output element source element `i` maps to (with the pixel stride `stride`), or
    /// None where the map drops it.
    pub fn target(&self, i: usize, stride: usize) -> Option<usize> {
        let ([cs, hs, ws], [c, h, w]) = (self.source, self.out);
        let (n, ch, r, q) = (
            i / (cs * hs * ws),
            (i / (hs * ws)) % cs,
            (i % (hs * ws)) / ws,
            i % ws,
        );
        let kept = r % stride == 0 && q % stride == 0 && r / stride < h && q / stride < w;
        kept.then(|| ((n * c + ch + self.offset) * h + r / stride) * w + q / stride)
    }

    /// The pixel stride, checking the shapes fit: the source's channels within the output's
    /// from the offset, and an integer stride.
    pub fn stride(&self) -> Result<usize, String> {
        let ([cs, hs, ws], [c, h, w]) = (self.source, self.out);
        let s = hs / h.max(1);
        if cs + self.offset > c || h == 0 || s == 0 || hs != s * h || ws != s * w {
            return Err(format!(
                "a map from {:?} to {:?} (channel offset {}): needs the source's channels \
                 to fit from the offset and an integer stride",
                self.source, self.out, self.offset
            ));
        }
        Ok(s)
    }
}
