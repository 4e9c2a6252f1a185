//! The operands of the fused kernels: inputs decoded as they are loaded and outputs rounded
//! as they are stored, so that a layer reads and writes packed tensors with no f32 copy.

use crate::gpu::buffers::uniform;
use crate::gpu::memory::DeviceBuffer;
use crate::gpu::params::{InParams, IoParams, OutParams};
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::quant::{QuantSpec, Scaling};

/// Where a kernel reads an input from.
#[derive(Clone, Copy)]
pub enum Src<'a> {
    /// Plain f32 words.
    F32(&'a wgpu::Buffer),
    /// A packed tensor, decoded as it is loaded.
    Packed(&'a Tensor),
}

impl<'a> From<&'a wgpu::Buffer> for Src<'a> {
    fn from(b: &'a wgpu::Buffer) -> Src<'a> {
        Src::F32(b)
    }
}

impl<'a> From<&'a DeviceBuffer> for Src<'a> {
    fn from(b: &'a DeviceBuffer) -> Src<'a> {
        Src::F32(b)
    }
}

impl<'a> From<&'a Tensor> for Src<'a> {
    fn from(t: &'a Tensor) -> Src<'a> {
        Src::Packed(t)
    }
}

/// Where a kernel writes its output.
#[derive(Clone, Copy)]
pub enum Dst<'a> {
    /// Plain f32 words.
    F32(&'a wgpu::Buffer),
    /// A packed tensor, each value rounded as `spec` says as it is stored (the same codes
    /// as quantizing the f32 values with `spec`), its exceptions and amax added to `stats`
    /// ([overflow, underflow, nan, amax bits]). `spec` may not scale: a scale needs the
    /// whole tensor's amax (or a whole MX block's) before the first value is rounded.
    Packed {
        /// The tensor written.
        t: &'a Tensor,
        /// Its rounding (format, mode, random stream).
        spec: &'a QuantSpec,
        /// Where its counts go.
        stats: &'a wgpu::Buffer,
    },
}

impl<'a> From<&'a wgpu::Buffer> for Dst<'a> {
    fn from(b: &'a wgpu::Buffer) -> Dst<'a> {
        Dst::F32(b)
    }
}

impl<'a> From<&'a DeviceBuffer> for Dst<'a> {
    fn from(b: &'a DeviceBuffer) -> Dst<'a> {
        Dst::F32(b)
    }
}

/// Whether a tensor of `spec` can be rounded as it is stored (it has no scale).
pub fn stores_packed(spec: &QuantSpec) -> bool {
    spec.format.mx().is_none() && spec.scaling == Scaling::None
}

/// The bindings of one fused dispatch's operands: its parameters (binding 20), inputs
/// (21 to 24) and output (25, 26).
pub struct Io<'a> {
    params: DeviceBuffer,
    none: DeviceBuffer,
    no_counts: DeviceBuffer,
    ins: Vec<Src<'a>>,
    out: Option<Dst<'a>>,
}

impl<'a> Io<'a> {
    /// The operands `ins` (at most two) and `out`; records the clearing of a packed output
    /// narrower than a word (its codes are ORed in).
    pub fn new(
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        ins: &[Src<'a>],
        out: Option<Dst<'a>>,
    ) -> Result<Io<'a>, GpuError> {
        assert!(ins.len() <= 2, "a fused kernel has at most two inputs");
        let input = |s: Option<&Src>| match s {
            Some(Src::Packed(t)) => InParams::packed(t.spec()),
            _ => InParams::raw(),
        };
        let out_params = match out {
            Some(Dst::Packed { t, spec, .. }) => {
                if !stores_packed(spec) {
                    return Err(GpuError::Invalid(format!(
                        "a {} output is scaled, so it cannot be rounded as it is stored",
                        spec.format
                    )));
                }
                if spec.format != t.spec().format {
                    return Err(GpuError::Invalid(format!(
                        "rounding into {} does not fit a tensor stored as {}",
                        spec.format,
                        t.spec().format
                    )));
                }
                if spec.format.bits() < 32 {
                    enc.clear_buffer(t.words(), 0, None);
                }
                OutParams::packed(spec)
            }
            _ => OutParams::raw(),
        };
        let p = IoParams {
            out: out_params,
            in0: input(ins.first()),
            in1: input(ins.get(1)),
        };
        Ok(Io {
            params: uniform(ctx, &p),
            none: ctx.scratch("no scales", 1)?,
            no_counts: ctx.scratch("no counts", 4)?,
            ins: ins.to_vec(),
            out,
        })
    }

    /// The bindings, to append to the kernel's own.
    pub fn bindings(&self) -> Vec<(u32, &wgpu::Buffer)> {
        let mut v: Vec<(u32, &wgpu::Buffer)> = vec![(20, &self.params)];
        for (k, s) in self.ins.iter().enumerate() {
            let (words, scales) = match s {
                Src::F32(b) => (*b, &*self.none),
                Src::Packed(t) => (t.words(), t.scales().unwrap_or(&self.none)),
            };
            v.push((21 + 2 * k as u32, words));
            v.push((22 + 2 * k as u32, scales));
        }
        match self.out {
            Some(Dst::F32(b)) => v.extend([(25, b), (26, &*self.no_counts)]),
            Some(Dst::Packed { t, stats, .. }) => v.extend([(25, t.words()), (26, stats)]),
            None => {}
        }
        v
    }
}
