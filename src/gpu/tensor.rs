//! The packed GPU tensor: shape, format, and its codes stored at the format's own width.

use super::buffers::{allocated_words, read_u32};
use super::memory::DeviceBuffer;
use super::params::scaling_id;
use super::{GpuContext, GpuError};
use crate::format::packed_words;
use crate::quant::QuantSpec;

/// A tensor held on the GPU in a (packed) number format.
pub struct Tensor {
    shape: Vec<usize>,
    spec: QuantSpec,
    len: usize,
    words: DeviceBuffer,
    scales: Option<DeviceBuffer>,
}

impl Tensor {
    /// Wraps buffers of packed codes and scales (the ops layer builds tensors).
    pub fn from_parts(
        shape: Vec<usize>,
        spec: QuantSpec,
        words: DeviceBuffer,
        scales: Option<DeviceBuffer>,
    ) -> Tensor {
        let len = shape.iter().product();
        Tensor {
            shape,
            spec,
            len,
            words,
            scales,
        }
    }

    /// The same stored tensor under another shape of as many elements (buffers shared).
    pub fn reshaped(&self, shape: Vec<usize>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            self.len,
            "a view must keep the element count"
        );
        Tensor {
            shape,
            spec: self.spec,
            len: self.len,
            words: self.words.clone(),
            scales: self.scales.clone(),
        }
    }

    /// The buffer of packed codes.
    pub fn words(&self) -> &wgpu::Buffer {
        &self.words
    }

    /// The scale buffer, if the tensor has scales.
    pub fn scales(&self) -> Option<&wgpu::Buffer> {
        self.scales.as_deref()
    }

    /// The packed code words, as stored.
    pub fn read_words(&self, ctx: &GpuContext) -> Result<Vec<u32>, GpuError> {
        read_u32(
            ctx,
            &self.words,
            packed_words(self.len, self.spec.format.bits()),
        )
    }

    /// The scale words (MX E8M0 bytes four to a word, or the per-tensor exponent); empty if none.
    pub fn read_scales(&self, ctx: &GpuContext) -> Result<Vec<u32>, GpuError> {
        match &self.scales {
            Some(s) => read_u32(ctx, s, scale_words(&self.spec, self.len)),
            None => Ok(Vec::new()),
        }
    }

    /// Bytes of GPU memory the tensor's codes and scales occupy.
    pub fn stored_bytes(&self) -> u64 {
        self.words.size() + self.scales.as_ref().map_or(0, |s| s.size())
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no elements (never true: empty tensors are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the tensor was quantized (its format among it).
    pub fn spec(&self) -> &QuantSpec {
        &self.spec
    }
}

/// Number of scale words a tensor of `n` elements needs under `spec`.
pub fn scale_words(spec: &QuantSpec, n: usize) -> usize {
    match (spec.format.block(), scaling_id(spec)) {
        (Some(b), _) => b.scale_words(n),
        (None, 1) => 1,
        _ => 0,
    }
}

/// Bytes a tensor of `n` elements of `spec` holds on the device: its packed codes and its
/// scale words, each buffer in whole 16-byte vectors (see [`allocated_words`]).
pub fn device_bytes(spec: &QuantSpec, n: usize) -> u64 {
    let scales = scale_words(spec, n);
    let buffer = |words: usize| 4 * allocated_words(words) as u64;
    buffer(packed_words(n, spec.format.bits())) + if scales > 0 { buffer(scales) } else { 0 }
}
