//! The operands of the fused kernels: inputs decoded as they are loaded and outputs rounded
//! as they are stored, so that a layer reads and writes packed tensors with no f32 copy.

use crate::format::BlockScale;
use crate::gpu::Encoder;
use crate::gpu::dispatch::record;
use crate::gpu::memory::DeviceBuffer;
use crate::gpu::params::{ElemParams, InParams, IoParams, OutParams, OutPhase};
use crate::gpu::shader::INPUT_BINDINGS;
use crate::gpu::specialise::Specialisation;
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
    /// Plain f32 words, each value added (in soft-float) to the word there.
    Accumulate(&'a wgpu::Buffer),
    /// A packed tensor, each value rounded as `spec` says as it is stored (the same codes
    /// as quantizing the f32 values with `spec`), its exceptions and amax added to `stats`
    /// ([overflow, underflow, nan, amax bits]; a scaled output's amax word is its own).
    Packed {
        /// The tensor written.
        t: &'a Tensor,
        /// Its rounding (format, mode, random stream).
        spec: &'a QuantSpec,
        /// Where its counts go.
        stats: &'a wgpu::Buffer,
        /// f32 terms added to the values before they are rounded (a residual shortcut's
        /// gradient), one per element.
        add: Option<&'a wgpu::Buffer>,
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

/// Fails unless the f32 buffer `buffer` holds `n` values in whole 16-byte vectors (as
/// lowp's buffers do): a kernel of four elements an invocation reads and writes them as
/// vectors, and would miss the values past the last whole one.
pub fn whole_vectors(buffer: &wgpu::Buffer, n: usize) -> Result<(), GpuError> {
    let need = 4 * crate::gpu::buffers::allocated_words(n) as u64;
    if buffer.size() < need {
        return Err(GpuError::Invalid(format!(
            "an operand of {n} f32 values needs a buffer of {need} bytes (whole 16-byte \
             vectors), not {}",
            buffer.size()
        )));
    }
    Ok(())
}

/// Whether a tensor of `spec` is rounded as it is stored in one pass (it has no scale;
/// a scaled one takes an amax pass first, see [`record_phases`]).
pub fn stores_packed(spec: &QuantSpec) -> bool {
    spec.format.block().is_none() && spec.scaling == Scaling::None
}

/// The bindings of one fused dispatch's operands: its parameters (binding 20), inputs
/// (21 to 24) and output (25 to 28).
pub struct Io<'a> {
    params: DeviceBuffer,
    none: DeviceBuffer,
    no_counts: DeviceBuffer,
    no_amax: DeviceBuffer,
    /// A block output's amax words (its amax pass and its scales pass).
    amax: Option<DeviceBuffer>,
    ins: Vec<Src<'a>>,
    out: Option<Dst<'a>>,
    spec: Specialisation,
}

impl<'a> Io<'a> {
    /// The operands `ins` (at most four) and `out` of a dispatch in `phase`; when `clear`,
    /// records the clearing of a packed output narrower than a word before it is stored
    /// (its codes are ORed in).
    fn new(
        ctx: &GpuContext,
        enc: &mut Encoder,
        (ins, out): (&[Src<'a>], Option<Dst<'a>>),
        (phase, clear): (OutPhase, bool),
        amax: Option<DeviceBuffer>,
    ) -> Result<Io<'a>, GpuError> {
        assert!(ins.len() <= 4, "a fused kernel has at most four inputs");
        let input = |s: Option<&Src>| match s {
            Some(Src::Packed(t)) => InParams::packed(t.spec()),
            _ => InParams::raw(),
        };
        let out_params = match out {
            Some(Dst::Packed { t, spec, add, .. }) => {
                if spec.format != t.spec().format || spec.scaling != t.spec().scaling {
                    return Err(GpuError::Invalid(format!(
                        "rounding into {} does not fit a tensor stored as {}",
                        spec.format,
                        t.spec().format
                    )));
                }
                if clear && phase == OutPhase::Store && spec.format.bits() < 32 {
                    // Only the tensor's words: its buffer may be a larger shared one.
                    let words = crate::format::packed_words(t.len(), spec.format.bits());
                    enc.clear_buffer(t.words(), 0, Some(4 * words as u64));
                }
                OutParams::packed(spec, phase, add.is_some())
            }
            Some(Dst::Accumulate(_)) => OutParams::raw(OutPhase::Accumulate),
            _ => OutParams::raw(OutPhase::Raw),
        };
        let p = IoParams {
            out: out_params,
            in0: input(ins.first()),
            in1: input(ins.get(1)),
            in2: input(ins.get(2)),
            in3: input(ins.get(3)),
        };
        let mut spec = Specialisation {
            out: out.map(|_| out_params),
            ..Default::default()
        };
        for (slot, src) in spec.ins.iter_mut().zip(ins) {
            *slot = Some(input(Some(src)));
        }
        Ok(Io {
            spec,
            params: ctx.shared_uniform(&p),
            none: ctx.scratch("no scales", 1)?,
            no_counts: ctx.scratch("no counts", 4)?,
            no_amax: ctx.scratch("no block amax", 1)?,
            amax,
            ins: ins.to_vec(),
            out,
        })
    }

    /// The formats of these operands, to compile the kernel for.
    pub fn spec(&self) -> Specialisation {
        self.spec
    }

    /// The bindings, to append to the kernel's own.
    pub fn bindings(&self) -> Vec<(u32, &wgpu::Buffer)> {
        let mut v: Vec<(u32, &wgpu::Buffer)> = vec![(20, &self.params)];
        for (s, (bw, bs)) in self.ins.iter().zip(INPUT_BINDINGS) {
            let (words, scales) = match s {
                Src::F32(b) => (*b, &*self.none),
                Src::Packed(t) => (t.words(), t.scales().unwrap_or(&self.none)),
            };
            v.push((bw, words));
            v.push((bs, scales));
        }
        let amax = self.amax.as_deref().unwrap_or(&self.no_amax);
        match self.out {
            Some(Dst::F32(b) | Dst::Accumulate(b)) => v.extend([
                (25, b),
                (26, &*self.no_counts),
                (27, &*self.none),
                (29, &*self.none),
            ]),
            Some(Dst::Packed { t, stats, add, .. }) => v.extend([
                (25, t.words()),
                (26, stats),
                (27, t.scales().unwrap_or(&self.none)),
                (29, add.unwrap_or(&self.none)),
            ]),
            None => return v,
        }
        v.push((28, amax));
        v
    }
}

/// Records `dispatch` (a fused kernel reading `ins` and writing `out`) once, or, when
/// `out` is a scaled tensor, twice: first to gather the amax its scales need (the whole
/// tensor's, or each MX block's), then, after a pass that computes the scales from it, to
/// round and store. The values are computed twice instead of held in f32 in between.
pub fn record_phases<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    ins: &[Src<'a>],
    out: Option<Dst<'a>>,
    mut dispatch: impl FnMut(&mut Encoder, &Io<'a>) -> Result<(), GpuError>,
) -> Result<(), GpuError> {
    record_parts(ctx, enc, &[ins], out, |e, io, _| dispatch(e, io))
}

/// Like [`record_phases`] for an output that several dispatches write disjoint parts of,
/// dispatch `k` reading `parts[k]`: the output is cleared once, and a scaled output's amax
/// is gathered over every part before any is rounded.
pub fn record_parts<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    parts: &[&[Src<'a>]],
    out: Option<Dst<'a>>,
    mut dispatch: impl FnMut(&mut Encoder, &Io<'a>, usize) -> Result<(), GpuError>,
) -> Result<(), GpuError> {
    let mut each = |enc: &mut Encoder,
                    phase: OutPhase,
                    amax: &Option<DeviceBuffer>|
     -> Result<Option<Io<'a>>, GpuError> {
        let mut last = None;
        for (k, ins) in parts.iter().enumerate() {
            let io = Io::new(ctx, enc, (ins, out), (phase, k == 0), amax.clone())?;
            dispatch(enc, &io, k)?;
            last = Some(io);
        }
        Ok(last)
    };
    let scaled = match out {
        Some(Dst::Packed { t, spec, stats, .. }) if !stores_packed(spec) => Some((t, spec, stats)),
        _ => None,
    };
    let Some((t, spec, stats)) = scaled else {
        let phase = match out {
            Some(Dst::Packed { .. }) => OutPhase::Store,
            _ => OutPhase::Raw,
        };
        return each(enc, phase, &None).map(|_| ());
    };
    let scales = t
        .scales()
        .ok_or_else(|| GpuError::Invalid(format!("a {} tensor without scales", spec.format)))?;
    let n = t.len();
    let block = spec.format.block();
    let amax = match block {
        Some(b) => {
            // E4M3 blocks gather the tensor's finite amax in a word before the blocks'.
            let blocks = ctx.scratch("block amax", b.scale_header() + b.blocks(n))?;
            enc.clear_buffer(&blocks, 0, None);
            Some(blocks)
        }
        None => {
            // The per-tensor amax gathers in the counts' amax word.
            enc.clear_buffer(stats, 12, Some(4));
            None
        }
    };
    let Some(io) = each(enc, OutPhase::Amax, &amax)? else {
        return Ok(());
    };
    let p = ElemParams {
        n: n as u32,
        ..Default::default()
    };
    match (&amax, block) {
        (Some(blocks), Some(bf)) => {
            let words = bf.scale_words(n);
            let entry = match bf.scale {
                BlockScale::E8m0 => "mx",
                BlockScale::E4m3 => "e4m3",
            };
            let b = [(20, &*io.params), (27, scales), (28, &**blocks)];
            record(ctx, enc, "out_scales", entry, words as u32, p, &b)?;
        }
        _ => {
            let b = [(20, &*io.params), (26, stats), (27, scales)];
            record(ctx, enc, "out_scales", "tensor", 1, p, &b)?;
        }
    }
    each(enc, OutPhase::Store, &amax).map(|_| ())
}
