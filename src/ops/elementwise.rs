//! The elementwise and per-row kernels of training: ReLU, pooling, conversion, residual
//! shortcuts, the losses and column sums (bias gradients) read packed tensors (decoded as
//! they load) or f32 buffers, and all but the losses and sums write packed tensors (rounded
//! as they store) or f32 buffers. All use soft-float where they round, so they equal their
//! reference twins bit for bit.

use super::packed_io::{Dst, Src, record_parts, record_phases, whole_vectors};
use crate::conv::Pool;
use crate::gpu::Encoder;
use crate::gpu::dispatch::{record, record_with};
use crate::gpu::params::ElemParams;
use crate::gpu::{GpuContext, GpuError};
pub use crate::layer_geometry::{COL_SUM_CHUNK, Shortcut};

/// Records `entry` of a fused kernel over `count` items, with its own storage bindings
/// `own` and the packed operands `ins` and `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_io<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (kernel, entry): (&str, &str),
    count: usize,
    p: ElemParams,
    own: &[(u32, &wgpu::Buffer)],
    ins: &[Src<'a>],
    out: Option<Dst<'a>>,
) -> Result<(), GpuError> {
    let kernel = (kernel, entry, &[][..]);
    record_io_with(ctx, enc, kernel, Work::Items(count), p, own, ins, out)
}

/// Like [`record_io`], for an entry that takes four consecutive elements an invocation
/// (`p.n` of them in all; see [`Specialisation::quads`](crate::gpu::specialise::Specialisation)).
pub(crate) fn record_io_quads<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (kernel, entry): (&str, &str),
    p: ElemParams,
    own: &[(u32, &wgpu::Buffer)],
    ins: &[Src<'a>],
    out: Option<Dst<'a>>,
) -> Result<(), GpuError> {
    let kernel = (kernel, entry, &[][..]);
    record_io_with(ctx, enc, kernel, Work::Quads, p, own, ins, out)
}

/// What each invocation of a fused kernel takes.
#[derive(Clone, Copy)]
pub(crate) enum Work {
    /// One of `count` items.
    Items(usize),
    /// Four consecutive elements of `p.n`.
    Quads,
    /// One of `count` items, each loading or storing whole vectors of four elements
    /// (operands whose elements own 32-bit words declared as 16-byte vectors).
    QuadItems(usize),
}

/// Like [`record_io`], for a kernel with pipeline-overridable constants.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_io_with<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kernel: (&str, &str, &[(&str, f64)]),
    work: Work,
    p: ElemParams,
    own: &[(u32, &wgpu::Buffer)],
    ins: &[Src<'a>],
    out: Option<Dst<'a>>,
) -> Result<(), GpuError> {
    // Quads: one dispatch for the whole quads and, where E.n is not a multiple of 4, one
    // compiled with TAIL for the last elements (a CPU adapter runs a tail's code in every
    // invocation where the kernel has both).
    let (name, entry, constants) = kernel;
    let n = p.n as usize;
    if let Work::Quads = work {
        let srcs = ins.iter().filter_map(|s| match s {
            Src::F32(b) => Some(*b),
            Src::Packed(_) => None,
        });
        let dsts = out.into_iter().filter_map(|d| match d {
            Dst::F32(b) | Dst::Accumulate(b) => Some(b),
            Dst::Packed { add, .. } => add,
        });
        for b in srcs.chain(dsts) {
            whole_vectors(b, n)?;
        }
    }
    let parts: Vec<(usize, Vec<(&str, f64)>)> = match work {
        Work::Items(count) | Work::QuadItems(count) => vec![(count, constants.to_vec())],
        // (elements, invocations, TAIL)
        Work::Quads => [(n / 4, n / 4, 0.0), (n % 4, 1, 1.0)]
            .into_iter()
            .filter(|&(elements, _, _)| elements > 0)
            .map(|(_, count, tail)| {
                let mut c = constants.to_vec();
                c.push(("TAIL", tail));
                (count, c)
            })
            .collect(),
    };
    record_phases(ctx, enc, ins, out, |enc, io| {
        let mut b = own.to_vec();
        b.extend(io.bindings());
        let spec = match work {
            Work::Items(_) => io.spec(),
            Work::Quads | Work::QuadItems(_) => io.spec().with_quads(),
        };
        for (count, constants) in &parts {
            let kernel = (name, entry, constants.as_slice());
            record_with(ctx, enc, kernel, &spec, *count as u32, p, &b)?;
        }
        Ok(())
    })
}

fn count_params(n: usize) -> ElemParams {
    ElemParams {
        n: n as u32,
        ..Default::default()
    }
}

/// Records y = relu(x) over `n` values.
pub fn record_relu_forward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    y: impl Into<Dst<'a>>,
    n: usize,
) -> Result<(), GpuError> {
    let p = count_params(n);
    let (ins, out) = ([x.into()], Some(y.into()));
    record_io_quads(ctx, enc, ("relu", "forward"), p, &[], &ins, out)
}

/// Records dx = g where the forward input x was positive, else 0.
pub fn record_relu_backward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    g: impl Into<Src<'a>>,
    dx: impl Into<Dst<'a>>,
    n: usize,
) -> Result<(), GpuError> {
    let p = count_params(n);
    let (ins, out) = ([x.into(), g.into()], Some(dx.into()));
    record_io_quads(ctx, enc, ("relu", "backward"), p, &[], &ins, out)
}

/// Records y = x over `n` values, decoded from x's format and rounded into y's.
pub fn record_convert<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    y: impl Into<Dst<'a>>,
    n: usize,
) -> Result<(), GpuError> {
    let p = count_params(n);
    let (ins, out) = ([x.into()], Some(y.into()));
    record_io_quads(ctx, enc, ("relu", "convert"), p, &[], &ins, out)
}

/// Where a loss (softmax cross-entropy or MSE) writes: the outputs' gradient, per-row loss
/// and correctness.
pub struct XentOutputs<'a> {
    /// rows x cols gradient (p - onehot) / rows.
    pub grad: &'a wgpu::Buffer,
    /// Per-row loss (f32).
    pub loss: &'a wgpu::Buffer,
    /// Per-row 1 if the first maximum is the label.
    pub correct: &'a wgpu::Buffer,
}

/// The losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy: gradient (p - onehot) / rows, loss ln(sum e) + max - z_label.
    SoftmaxXent,
    /// Mean squared error against one-hot targets: gradient (z - onehot) 2 / (rows cols),
    /// loss sum((z - onehot)^2) / cols.
    Mse,
}

/// Records a loss of `rows` x `cols` outputs against u32 labels: its gradient times the
/// loss scale (the first word of `scale_state`) into `grad`, per-row loss and correctness
/// (first maximum is the label) into `(loss, correct)`.
#[allow(clippy::too_many_arguments)]
pub fn record_loss<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kind: Loss,
    (logits, labels): (impl Into<Src<'a>>, &wgpu::Buffer),
    grad: impl Into<Dst<'a>>,
    (loss, correct): (&wgpu::Buffer, &wgpu::Buffer),
    scale_state: &wgpu::Buffer,
    (rows, cols): (usize, usize),
) -> Result<(), GpuError> {
    let (kernel, p) = match kind {
        Loss::SoftmaxXent => (
            "softmax_xent",
            ElemParams {
                n: rows as u32,
                rows: rows as u32,
                cols: cols as u32,
                scale: (1.0f32 / rows as f32).to_bits(),
                ..Default::default()
            },
        ),
        Loss::Mse => (
            "mse",
            ElemParams {
                n: rows as u32,
                rows: rows as u32,
                cols: cols as u32,
                scale: (2.0f32 / (rows * cols) as f32).to_bits(),
                mu: (1.0f32 / cols as f32).to_bits(),
                ..Default::default()
            },
        ),
    };
    let b = [(2, labels), (4, loss), (5, correct), (6, scale_state)];
    let (ins, out) = ([logits.into()], Some(grad.into()));
    record_io(ctx, enc, (kernel, "main"), rows, p, &b, &ins, out)
}

/// Records softmax cross-entropy of `rows` x `cols` logits against u32 labels (no loss scale).
pub fn record_softmax_xent<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    logits: impl Into<Src<'a>>,
    labels: &wgpu::Buffer,
    out: &XentOutputs<'a>,
    shape: (usize, usize),
) -> Result<(), GpuError> {
    record_unscaled(
        ctx,
        enc,
        Loss::SoftmaxXent,
        (logits.into(), labels),
        out,
        shape,
    )
}

/// Records the mean squared error of `rows` x `cols` outputs against one-hot labels: the
/// gradient (z - onehot) 2 / (rows cols), per-row loss sum((z - onehot)^2) / cols, and
/// per-row correctness (first maximum is the label); no loss scale.
pub fn record_mse<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    logits: impl Into<Src<'a>>,
    labels: &wgpu::Buffer,
    out: &XentOutputs<'a>,
    shape: (usize, usize),
) -> Result<(), GpuError> {
    record_unscaled(ctx, enc, Loss::Mse, (logits.into(), labels), out, shape)
}

/// [`record_loss`] into f32 outputs, with a loss scale of 1.
fn record_unscaled<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    kind: Loss,
    inputs: (Src<'a>, &wgpu::Buffer),
    out: &XentOutputs<'a>,
    shape: (usize, usize),
) -> Result<(), GpuError> {
    let one = unit_scale(ctx)?;
    let res = (out.loss, out.correct);
    record_loss(ctx, enc, kind, inputs, out.grad, res, &one, shape)
}

/// A loss-scale state whose scale is 1.
pub fn unit_scale(ctx: &GpuContext) -> Result<crate::gpu::memory::DeviceBuffer, GpuError> {
    crate::gpu::buffers::upload_u32(ctx, "unit loss scale", &[1.0f32.to_bits(), 0])
}

/// Records the column sums of a `rows` x `cols` x `inner` array (chunked, see
/// `reference::elementwise::col_sum`) (in (row, inner) order) into `out`: f32 words, or
/// a packed tensor they are rounded into as they are stored.
pub fn record_col_sum<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    g: impl Into<Src<'a>>,
    out: impl Into<Dst<'a>>,
    shape: (usize, usize, usize),
) -> Result<(), GpuError> {
    record_col_sum_of(ctx, enc, ("partial", &[g.into()], None), out, shape)
}

/// Column sums in the same order of what `partial` (an entry of col_sum.wgsl) computes from
/// `ins` (and batch norm's statistics `stat`): the array itself, (x - mean)^2 or g xhat.
pub(crate) fn record_col_sum_of<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (partial, ins, stat): (&str, &[Src<'a>], Option<&wgpu::Buffer>),
    out: impl Into<Dst<'a>>,
    (rows, cols, inner): (usize, usize, usize),
) -> Result<(), GpuError> {
    let chunks = (rows * inner).div_ceil(COL_SUM_CHUNK).max(1);
    // `finish` loops over a column's chunks: within llvmpipe's 65,535-iteration loop limit.
    if chunks > u16::MAX as usize {
        return Err(GpuError::Invalid(format!(
            "a column sum over {} values exceeds the {} a column may hold",
            rows * inner,
            u16::MAX as usize * COL_SUM_CHUNK
        )));
    }
    let p = ElemParams {
        n: cols as u32,
        rows: rows as u32,
        cols: cols as u32,
        inner: inner as u32,
        ..Default::default()
    };
    // A column of one chunk: summed and stored by one dispatch (its values one at a time:
    // the output is stored one value at a time too).
    if chunks == 1 && partial == "partial" {
        let kernel = ("col_sum", "whole");
        return record_io(ctx, enc, kernel, cols, p, &[], ins, Some(out.into()));
    }
    let parts = ctx.scratch("column-sum chunks", chunks * cols)?;
    let count = chunks * cols;
    let mut own = vec![(2, &*parts)];
    own.extend(stat.map(|s| (5, s)));
    // Rows of whole vectors of four: each invocation loads four values at a time (its
    // chunk's start, a multiple of 1024, a multiple of 4 into a row).
    let quads = ctx.specialise() && inner.is_multiple_of(4) && COL_SUM_CHUNK.is_multiple_of(4);
    let (work, constants) = match quads {
        true => (Work::QuadItems(count), vec![("QUADS", 1.0)]),
        false => (Work::Items(count), vec![]),
    };
    let kernel = ("col_sum", partial, constants.as_slice());
    record_io_with(ctx, enc, kernel, work, p, &own, ins, None)?;
    let parts = [(1, &*parts)];
    let finish = ("col_sum", "finish");
    record_io(ctx, enc, finish, cols, p, &parts, &[], Some(out.into()))
}

/// A layer's shape as a kernel's pipeline constants (`flag` set, then each named value),
/// where the context compiles kernels for their operands (else none: the portable kernel
/// reads the shape from its parameters).
pub(crate) fn shape_constants(
    ctx: &GpuContext,
    flag: &'static str,
    shape: &[(&'static str, usize)],
) -> Vec<(&'static str, f64)> {
    if !ctx.specialise() {
        return Vec::new();
    }
    let values = shape.iter().map(|&(k, v)| (k, v as f64));
    std::iter::once((flag, 1.0)).chain(values).collect()
}

/// Max pooling's shape as its kernel's constants.
fn pool_constants(ctx: &GpuContext, p: &Pool) -> Vec<(&'static str, f64)> {
    let [oh, ow] = p.out_hw();
    let [h, w] = p.in_hw;
    let shape = [
        ("MP_POOL", p.pool),
        ("MP_IN_H", h),
        ("MP_IN_W", w),
        ("MP_OUT_H", oh),
        ("MP_OUT_W", ow),
    ];
    shape_constants(ctx, "MP", &shape)
}

fn pool_params(p: &Pool, n: usize) -> ElemParams {
    let [oh, ow] = p.out_hw();
    ElemParams {
        n: n as u32,
        in_h: p.in_hw[0] as u32,
        in_w: p.in_hw[1] as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        pool: p.pool as u32,
        ..Default::default()
    }
}

/// Records y = maxpool(x).
pub fn record_maxpool_forward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    y: impl Into<Dst<'a>>,
    p: &Pool,
) -> Result<(), GpuError> {
    let [oh, ow] = p.out_hw();
    let n = p.planes * oh * ow;
    let (ins, out) = ([x.into()], Some(y.into()));
    let constants = pool_constants(ctx, p);
    let e = ("maxpool", "forward", constants.as_slice());
    let params = pool_params(p, n);
    record_io_with(ctx, enc, e, Work::Items(n), params, &[], &ins, out)
}

/// Records dx: each output gradient routed to its window's first maximum in x.
pub fn record_maxpool_backward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    g: impl Into<Src<'a>>,
    dx: impl Into<Dst<'a>>,
    p: &Pool,
) -> Result<(), GpuError> {
    let (ins, out) = ([x.into(), g.into()], Some(dx.into()));
    let constants = pool_constants(ctx, p);
    let [h, w] = p.in_hw;
    // 2 x 2 windows tiling planes of a width of whole vectors (and a specialised kernel,
    // whose window loops unroll): two cells an invocation, each row of four values one store.
    if ctx.specialise() && p.pool == 2 && h % 2 == 0 && w % 4 == 0 {
        let pairs = p.planes * (h / 2) * (w / 4);
        let e = ("maxpool", "backward_pairs", constants.as_slice());
        let params = pool_params(p, p.planes * h * w);
        return record_io_with(ctx, enc, e, Work::QuadItems(pairs), params, &[], &ins, out);
    }
    // One work item per pool x pool cell of the input, partial cells at the edges included.
    let cells = p.planes * h.div_ceil(p.pool) * w.div_ceil(p.pool);
    let e = ("maxpool", "backward", constants.as_slice());
    let params = pool_params(p, cells);
    record_io_with(ctx, enc, e, Work::Items(cells), params, &[], &ins, out)
}

fn avg_params(p: &Pool, n: usize) -> ElemParams {
    ElemParams {
        scale: (1.0f32 / (p.pool * p.pool) as f32).to_bits(),
        ..pool_params(p, n)
    }
}

/// Records y = average pooling of x.
pub fn record_avgpool_forward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    y: impl Into<Dst<'a>>,
    p: &Pool,
) -> Result<(), GpuError> {
    let [oh, ow] = p.out_hw();
    let n = p.planes * oh * ow;
    let (ins, out) = ([x.into()], Some(y.into()));
    let e = ("avgpool", "forward");
    record_io(ctx, enc, e, n, avg_params(p, n), &[], &ins, out)
}

/// Records dx: each input gets its window's gradient over pool^2.
pub fn record_avgpool_backward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    g: impl Into<Src<'a>>,
    dx: impl Into<Dst<'a>>,
    p: &Pool,
) -> Result<(), GpuError> {
    let n = p.planes * p.in_hw[0] * p.in_hw[1];
    let (ins, out) = ([g.into()], Some(dx.into()));
    let e = ("avgpool", "backward");
    record_io(ctx, enc, e, n, avg_params(p, n), &[], &ins, out)
}

impl Shortcut {
    fn params(&self, n: usize) -> Result<ElemParams, GpuError> {
        let s = self.stride().map_err(GpuError::Invalid)?;
        Ok(ElemParams {
            n: n as u32,
            cols: self.out[0] as u32,
            rows: self.source[0] as u32,
            out_h: self.out[1] as u32,
            out_w: self.out[2] as u32,
            in_h: self.source[1] as u32,
            in_w: self.source[2] as u32,
            pool: s as u32,
            offset: self.offset as u32,
            ..Default::default()
        })
    }
}

/// A shortcut's map as its kernels' constants.
fn shortcut_constants(ctx: &GpuContext, p: &ElemParams) -> Vec<(&'static str, f64)> {
    let shape = [
        ("RS_COLS", p.cols as usize),
        ("RS_ROWS", p.rows as usize),
        ("RS_OUT_H", p.out_h as usize),
        ("RS_OUT_W", p.out_w as usize),
        ("RS_IN_H", p.in_h as usize),
        ("RS_IN_W", p.in_w as usize),
        ("RS_POOL", p.pool as usize),
    ];
    shape_constants(ctx, "RS", &shape)
}

/// Records y = a + shortcut(s) over a batch of outputs.
pub fn record_residual_forward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (a, s): (impl Into<Src<'a>>, impl Into<Src<'a>>),
    y: impl Into<Dst<'a>>,
    sc: &Shortcut,
) -> Result<(), GpuError> {
    let n = sc.batch * sc.out.iter().product::<usize>();
    let p = sc.params(n)?;
    let (ins, out) = ([a.into(), s.into()], Some(y.into()));
    let constants = shortcut_constants(ctx, &p);
    let kernel = ("residual", "forward", constants.as_slice());
    record_io_with(ctx, enc, kernel, Work::Items(n), p, &[], &ins, out)
}

/// Records y = the concatenation of `parts`: each source written where its map places it
/// (its channel window), one dispatch a part, the output rounded as one tensor.
pub fn record_concat<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    parts: &[(Src<'a>, Shortcut)],
    y: impl Into<Dst<'a>>,
) -> Result<(), GpuError> {
    let ins: Vec<[Src<'a>; 1]> = parts.iter().map(|(s, _)| [*s]).collect();
    let ins: Vec<&[Src<'a>]> = ins.iter().map(|s| &s[..]).collect();
    record_parts(ctx, enc, &ins, Some(y.into()), |enc, io, k| {
        let sc = &parts[k].1;
        let n = sc.batch * sc.source.iter().product::<usize>();
        let mut b = Vec::new();
        b.extend(io.bindings());
        let p = sc.params(n)?;
        let constants = shortcut_constants(ctx, &p);
        let kernel = ("residual", "place", constants.as_slice());
        record_with(ctx, enc, kernel, &io.spec(), n as u32, p, &b)
    })
}

/// Records ds: the gradient `g` of the outputs, taken back through the shortcut.
pub fn record_skip_backward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    g: impl Into<Src<'a>>,
    ds: impl Into<Dst<'a>>,
    sc: &Shortcut,
) -> Result<(), GpuError> {
    let n = sc.batch * sc.source.iter().product::<usize>();
    let p = sc.params(n)?;
    let (ins, out) = ([g.into()], Some(ds.into()));
    let constants = shortcut_constants(ctx, &p);
    let kernel = ("residual", "skip_backward", constants.as_slice());
    record_io_with(ctx, enc, kernel, Work::Items(n), p, &[], &ins, out)
}

/// Records y += g over `n` values.
pub fn record_accumulate(
    ctx: &GpuContext,
    enc: &mut Encoder,
    g: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: n as u32,
        ..Default::default()
    };
    record(
        ctx,
        enc,
        "residual",
        "accumulate",
        n as u32,
        p,
        &[(1, g), (3, y)],
    )
}
