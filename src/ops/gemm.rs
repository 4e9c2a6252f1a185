//! GEMM on the GPU over packed operands: C = op(A) op(B) (+ bias), quantized to its format.

use super::packed_io::{Dst, Io, record_phases};
use super::quantize::quantize_buffer;
use crate::accum::{Accumulator, GemmMode, GemmSpec};
use crate::format::Format;
use crate::gpu::Encoder;
use crate::gpu::buffers::{upload_f32, zeroed};
use crate::gpu::dispatch::{record_textured, record_tiled, record_with, record_with_textures};
use crate::gpu::params::{FmtParams, GemmParams, PanelBlock, SplitParams, scaling_id};
use crate::gpu::specialise::Specialisation;
use crate::gpu::tiles::Tiles;
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::quant::{Exceptions, QuantSpec};

/// Which kernel runs a GEMM-shaped dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Tiled f32 accumulation.
    TiledF32,
    /// Tiled f32 accumulation with operands staged as f16 (every value exact in f16).
    TiledF16,
    /// Tiled exact integer accumulation with dot4I8Packed (fixed point of at most 8 bits).
    TiledI8,
    /// One invocation per output: exact 64-bit integer or emulated accumulation.
    PerElement,
    /// f32 accumulation over operands decoded into f32 panels, 8 x 8 sums per invocation
    /// (CPU adapters).
    Panel,
}

/// A GEMM-shaped dispatch: kernel family ("gemm" or "conv"), kernel, the view's rows and columns.
#[derive(Clone, Copy, Debug)]
pub struct GemmView {
    /// "gemm" or "conv": the addressing the kernel is assembled with.
    pub family: &'static str,
    /// The kernel that runs it.
    pub kernel: Kernel,
    /// Rows of the view.
    pub m: usize,
    /// Columns of the view.
    pub n: usize,
    /// Inner dimension of the view.
    pub k: usize,
    /// How each operand's stored values run in groups of four a vector load can read:
    /// 0 none, 1 along K, 2 along M (A) or N (B). Convolution views gather: always 0.
    pub groups: [u32; 2],
}

/// Whether every value a tensor of `spec` holds is exact in f16 (so staging it as f16 loses
/// nothing): no per-tensor or MX scale, and a value grid within f16's normal range: at
/// most 11 significant bits, quantum at least 2^-14, magnitude at most 65504.
pub fn f16_exact(spec: &QuantSpec) -> bool {
    if spec.scaling != crate::quant::Scaling::None {
        return false;
    }
    match spec.format {
        Format::Float(f) => {
            let max = f32::from_bits(f.decode_bits(f.max_code(), 0));
            // Every nonzero value at least f16's smallest normal, 2^-14: WGSL lets devices
            // flush f16 subnormals.
            let quantum = f.emin() - f.m as i32; // exponent of the smallest step
            f.m <= 10 && quantum >= -14 && max <= 65504.0
        }
        Format::Fixed(x) => x.wl <= 12 && x.fl <= 14 && (x.wl as i32 - 1 - x.fl as i32) <= 15,
        Format::Block(_) => false,
    }
}

/// Products per pass of a per-element kernel on a CPU adapter: llvmpipe ends any shader loop
/// after 65,535 iterations, so longer sums run as several passes that carry their state.
const PASS: usize = 32768;

/// How many K slices a tiled f32 GEMM of `groups` output tiles is split into: enough
/// workgroups to occupy the device, each slice at least four K tiles deep.
fn split_count(ctx: &GpuContext, groups: usize, k: usize, tk: usize) -> usize {
    let target = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        16
    } else {
        512
    };
    if groups >= target {
        return 1;
    }
    (target / groups.max(1)).min(k / (4 * tk)).clamp(1, 64)
}

/// Tile steps (K / TK) one dispatch of a tiled kernel may take on a CPU adapter. llvmpipe
/// ends a shader loop after 65,535 iterations and counts those of the loops nested in it:
/// with 32 x 32 x 16 tiles the K loop stopped after about 4,370 steps (fp32, about 15
/// nested iterations a step) and 5,461 (dot4, 12 a step), silently dropping the rest of
/// the sum. 256 steps leave room for 255 nested iterations a step, beyond any tiling's.
const CPU_TILE_STEPS: usize = 256;

/// The deepest K one dispatch of a tiled kernel takes: all of it, except on CPU adapters.
fn max_depth(ctx: &GpuContext, tiles: &Tiles) -> usize {
    if ctx.info.device_type == wgpu::DeviceType::Cpu {
        CPU_TILE_STEPS * tiles.tk as usize
    } else {
        usize::MAX
    }
}

/// The K slices of a tiled f32 view on tiles `tiles`: (how many, K per slice).
fn slices(ctx: &GpuContext, view: &GemmView, tiles: &Tiles) -> (usize, usize) {
    let tk = tiles.tk as usize;
    let splits = match view.kernel {
        Kernel::TiledF32 | Kernel::TiledF16 => {
            let groups = view.n.div_ceil(tiles.tn as usize) * view.m.div_ceil(tiles.tm as usize);
            split_count(ctx, groups, view.k, tk)
        }
        _ => 1,
    };
    let k_split = view
        .k
        .div_ceil(splits)
        .next_multiple_of(tk)
        .min(max_depth(ctx, tiles));
    (view.k.div_ceil(k_split.max(1)).max(1), k_split)
}

/// How many K slices (split-K) the tiled kernel runs a view in on `ctx`; 1 for no split.
pub fn k_splits(ctx: &GpuContext, view: &GemmView) -> usize {
    let tiles = ctx.tiles().fit(view.m, view.n, &ctx.device.limits());
    slices(ctx, view, &tiles).0
}

impl GemmView {
    /// The view of a GEMM-shaped pass with operand formats `fa`, `fb`, inner dimension `k`.
    pub fn new(
        family: &'static str,
        mode: GemmMode,
        fa: &Format,
        fb: &Format,
        (m, n, k): (usize, usize, usize),
    ) -> GemmView {
        let kernel = match (mode, fa, fb) {
            (GemmMode::Fp32, _, _) => Kernel::TiledF32,
            (GemmMode::ExactInteger, Format::Fixed(x), Format::Fixed(y))
                if x.wl <= 8 && y.wl <= 8 && (k as u64) << (x.wl + y.wl - 2) < 1 << 31 =>
            {
                Kernel::TiledI8
            }
            _ => Kernel::PerElement,
        };
        GemmView {
            family,
            kernel,
            m,
            n,
            k,
            groups: [0, 0],
        }
    }

    /// The vector-load groups of a plain GEMM's operands: along the dimension each is stored
    /// contiguously in, where its codes are 4, 8, 16 or 32 bits wide (four of them fill an
    /// aligned part of a 16-byte vector, within one scale block where blocks are multiples
    /// of four) and that dimension is a multiple of four (a group never straddles two rows).
    fn with_groups(mut self, fa: &Format, fb: &Format, spec: &GemmSpec) -> GemmView {
        let group = |f: &Format, (dir, extent): (u32, usize)| {
            let blocks_whole = f.block().is_none_or(|b| b.size % 4 == 0);
            if matches!(f.bits(), 4 | 8 | 16 | 32) && extent % 4 == 0 && blocks_whole {
                dir
            } else {
                0
            }
        };
        let a = if spec.trans_a {
            (2, self.m)
        } else {
            (1, self.k)
        };
        let b = if spec.trans_b {
            (1, self.k)
        } else {
            (2, self.n)
        };
        self.groups = [group(fa, a), group(fb, b)];
        self
    }

    fn kernel_name(&self) -> String {
        let suffix = match self.kernel {
            Kernel::TiledF32 => "f32",
            Kernel::TiledF16 => "f16",
            Kernel::TiledI8 => "i8",
            Kernel::PerElement => "exact",
            Kernel::Panel => "panel",
        };
        format!("{}_{suffix}", self.family)
    }
}

/// The id of a mode in the kernels' parameters.
pub(crate) fn mode_id(mode: GemmMode) -> u32 {
    match mode {
        GemmMode::Fp32 => 0,
        GemmMode::ExactInteger => 1,
        GemmMode::Emulated => 2,
    }
}

/// The accumulator format's parameters and chunk (zeros for fp32).
pub(crate) fn acc_params(acc: &Accumulator) -> (FmtParams, u32) {
    match acc {
        Accumulator::Emulated { format, chunk } => (
            FmtParams::new(&format.element()),
            (*chunk).min(u32::MAX as usize) as u32,
        ),
        Accumulator::Fp32 => (FmtParams::default(), 0),
    }
}

/// Checks a GEMM of `a` and `b` and builds its dispatch: `(view, params, k)`.
pub fn prepare_gemm(
    a: &Tensor,
    b: &Tensor,
    bias_len: Option<usize>,
    spec: &GemmSpec,
) -> Result<(GemmView, GemmParams, usize), GpuError> {
    let invalid = |e: crate::accum::GemmError| GpuError::Invalid(e.0);
    let (m, n, k) = spec.dims(a.shape(), b.shape(), bias_len).map_err(invalid)?;
    let mode = spec
        .mode(&a.spec().format, &b.spec().format, k)
        .map_err(invalid)?;
    let (facc, chunk) = acc_params(&spec.acc);
    let params = GemmParams {
        fa: FmtParams::new(&a.spec().format.element()),
        fb: FmtParams::new(&b.spec().format.element()),
        facc,
        m: m as u32,
        n: n as u32,
        k: k as u32,
        trans_a: spec.trans_a as u32,
        trans_b: spec.trans_b as u32,
        a_scaling: scaling_id(a.spec()),
        b_scaling: scaling_id(b.spec()),
        mode: mode_id(mode),
        chunk,
        has_bias: bias_len.is_some() as u32,
        ..Default::default()
    };
    let (fa, fb) = (&a.spec().format, &b.spec().format);
    let view = GemmView::new("gemm", mode, fa, fb, (m, n, k)).with_groups(fa, fb, spec);
    Ok((view, params, k))
}

/// Multiplies two packed tensors on the GPU; returns C (shape m x n) and its exception counts.
pub fn gemm(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&[f32]>,
    spec: &GemmSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let (view, params, _) = prepare_gemm(a, b, bias.map(<[f32]>::len), spec)?;
    finish_view(ctx, bias, &[view.m, view.n], &spec.out, |enc, bias, c| {
        record_view(ctx, enc, &view, params, a, b, bias, c)
    })
}

/// How a tiled f32 GEMM view stages its operands (the kernel's VEC_A and VEC_B): its
/// vector groups where vector loads are on, the tile's extent along the group is a
/// multiple of 4 and the operand's buffer holds at least one 16-byte vector (a binding's
/// minimum); 0 (value by value) otherwise, and always for convolutions and other kernels.
pub fn vector_staging(ctx: &GpuContext, view: &GemmView, a: &Tensor, b: &Tensor) -> [u32; 2] {
    let tiles = ctx.tiles().fit(view.m, view.n, &ctx.device.limits());
    staging_in(ctx, view, &tiles, a, b)
}

/// [`vector_staging`] for the tiles a dispatch already fitted.
fn staging_in(
    ctx: &GpuContext,
    view: &GemmView,
    tiles: &Tiles,
    a: &Tensor,
    b: &Tensor,
) -> [u32; 2] {
    let tiled = matches!(view.kernel, Kernel::TiledF32 | Kernel::TiledF16);
    if !tiled || view.family != "gemm" || !ctx.vector_loads() {
        return [0, 0];
    }
    let fits = |dir: u32, other: u32, words: &wgpu::Buffer| {
        let extent = if dir == 1 { tiles.tk } else { other };
        if extent % 4 == 0 && words.size() >= 16 {
            dir
        } else {
            0
        }
    };
    [
        fits(view.groups[0], tiles.tm, a.words()),
        fits(view.groups[1], tiles.tn, b.words()),
    ]
}

/// Records a GEMM view's sums (bias added) into `c`: f32 words (m x n), or a packed tensor
/// each sum is rounded into as it is stored.
#[allow(clippy::too_many_arguments)]
pub fn record_view<'c, P: SplitParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    view: &GemmView,
    params: P,
    a: &Tensor,
    b: &Tensor,
    bias: &wgpu::Buffer,
    c: impl Into<Dst<'c>>,
) -> Result<(), GpuError> {
    // A profile names the view's dispatches by its size.
    let named = ctx.profiler.is_some() && enc.view().is_none();
    if named {
        let (f, m, n, k) = (view.family, view.m, view.n, view.k);
        enc.set_view(Some(format!("{f} {m}x{n}x{k}")));
    }
    // A grouped convolution is one view per group, each writing its own outputs.
    let recorded = record_phases(ctx, enc, &[], Some(c.into()), |enc, io| {
        for g in 0..params.groups() {
            record_view_io(ctx, enc, view, params.with_group(g), (a, b), bias, io)?;
        }
        Ok(())
    });
    if named {
        enc.set_view(None);
    }
    recorded
}

/// Records a GEMM view's sums into the output of `io`.
fn record_view_io<P: SplitParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    view: &GemmView,
    params: P,
    (a, b): (&Tensor, &Tensor),
    bias: &wgpu::Buffer,
    io: &Io,
) -> Result<(), GpuError> {
    let mut params = params;
    let (m, n) = (view.m, view.n);
    let cells = m as u64 * n as u64;
    let tiles = ctx.tiles().fit(m, n, &ctx.device.limits());
    if cells >= 1 << 32
        || m.div_ceil(tiles.tm as usize) > u16::MAX as usize
        || n.div_ceil(tiles.tn as usize) > u16::MAX as usize
    {
        return Err(GpuError::TooLarge {
            what: format!("a {m}x{n} GEMM result"),
            bytes: cells * 4,
            limit: u32::MAX as u64,
        });
    }
    let none = ctx.scratch("no scales", 1)?;
    let mut bindings: Vec<(u32, &wgpu::Buffer)> = vec![
        (1, a.words()),
        (2, a.scales().unwrap_or(&none)),
        (3, b.words()),
        (4, b.scales().unwrap_or(&none)),
        (5, bias),
    ];
    bindings.extend(io.bindings());
    let spec = Specialisation {
        operands: Some(params.operands()),
        ..io.spec()
    };
    let mut view = *view;
    if view.kernel == Kernel::TiledF32 && ctx.gemm_panels() {
        view.kernel = Kernel::Panel;
        return record_panels(ctx, enc, &view, params, (a, b), bias, (io, &spec));
    }
    if view.kernel == Kernel::TiledF32
        && ctx.f16_staging()
        && f16_exact(a.spec())
        && f16_exact(b.spec())
    {
        view.kernel = Kernel::TiledF16;
    }
    let name = view.kernel_name();
    match view.kernel {
        Kernel::PerElement => {
            // Passes of at most PASS products on CPU adapters (their loop limit), one elsewhere.
            let k = view.k;
            let pass = if ctx.info.device_type == wgpu::DeviceType::Cpu {
                PASS
            } else {
                k.max(1)
            };
            // The running state between passes (a placeholder when one pass does it all).
            let words = if k > pass { 2 * cells as usize } else { 1 };
            let state = ctx.scratch("accumulator state", words)?;
            let mut with_state = bindings;
            with_state.push((9, &state));
            for begin in (0..k.max(1)).step_by(pass) {
                params.set_pass(begin as u32, (begin + pass).min(k) as u32);
                let kernel = (name.as_str(), "main", &[][..]);
                record_with(ctx, enc, kernel, &spec, cells as u32, params, &with_state)?;
            }
            Ok(())
        }
        tiled => {
            let (gx, gy) = (n.div_ceil(tiles.tn as usize), m.div_ceil(tiles.tm as usize));
            let mut constants = tiles.constants(tiled == Kernel::TiledI8).to_vec();
            constants.extend(params.constants());
            let vector_none;
            if tiled != Kernel::TiledI8 && view.family == "gemm" {
                // Bindings 10 and 11 are part of this kernel's layout even when unused.
                vector_none = ctx.scratch("no vector view", 4)?;
                let [va, vb] = staging_in(ctx, &view, &tiles, a, b);
                constants.push(("VEC_A", va as f64));
                constants.push(("VEC_B", vb as f64));
                bindings.push((10, if va != 0 { a.words() } else { &vector_none }));
                bindings.push((11, if vb != 0 { b.words() } else { &vector_none }));
            }
            if tiled == Kernel::TiledI8 {
                // Passes that carry the i32 sums (the kernel's `state`), each within
                // max_depth; one pass where the whole K fits.
                let depth = max_depth(ctx, &tiles).min(view.k.max(1));
                let words = if view.k > depth { cells as usize } else { 1 };
                let state = ctx.scratch("dot4 running sums", words)?;
                bindings.push((9, &state));
                for begin in (0..view.k.max(1)).step_by(depth) {
                    params.set_pass(begin as u32, (begin + depth).min(view.k) as u32);
                    record_tiled(
                        ctx,
                        enc,
                        (&name, "main", &constants),
                        &spec,
                        (gx as u32, gy as u32, 1),
                        &params,
                        &bindings,
                    )?;
                }
                return Ok(());
            }
            let (splits, k_split) = slices(ctx, &view, &tiles);
            params.set_split(splits as u32, k_split as u32);
            let grid = (gx as u32, gy as u32, splits as u32);
            if splits == 1 {
                // The partial sums' binding is part of the layout, unused without a split.
                let no_partials = ctx.scratch("no partial sums", 1)?;
                bindings.push((6, &no_partials));
                return record_tiled(
                    ctx,
                    enc,
                    (&name, "main", &constants),
                    &spec,
                    grid,
                    &params,
                    &bindings,
                );
            }
            // Partial sums per slice, then one pass adds them in slice order (and the bias).
            let partial = ctx.scratch("split-K partial sums", splits * m * n)?;
            // The kernel's layout holds the output's bindings, unused with a split.
            let mut split_bindings = bindings.clone();
            split_bindings.push((6, &partial));
            record_tiled(
                ctx,
                enc,
                (&name, "main", &constants),
                &spec,
                grid,
                &params,
                &split_bindings,
            )?;
            record_reduce(ctx, enc, view.family, params, bias, &partial, io)
        }
    }
}

/// Invocations per workgroup of the panel kernel at most, each owning 8 x 8 sums.
const PANEL_LANES: usize = 64;
/// Sums per invocation along each side of the panel kernel's register tile.
const PANEL_R: usize = 8;

/// The most rows of a weight gradient that `thin` reads through sliding windows, in blocks
/// of 8 rows, each block a workgroup row re-reading the windows.
const WINDOW_ROWS_MOST: usize = 16;

/// Products one K slice of the panel kernel takes at most: llvmpipe ends a shader loop after
/// 65,535 iterations.
const PANEL_SLICE: usize = 32768;

/// The panel kernel's workgroup shape for an `m` x `n` view: (invocations along N, along
/// M), as many along N as its columns fill (eight each), as many along M as its rows fill
/// in what is left, then balanced while the rows overflow the tile; a view smaller than
/// one tile gets a smaller workgroup, no wider than its columns (a weight gradient's 144
/// columns, 18 invocations wide, not 32: the B panel and the products a third narrower).
pub fn panel_lanes(m: usize, n: usize) -> (usize, usize) {
    let fill = |extent: usize, most: usize| extent.div_ceil(PANEL_R).clamp(1, most);
    let mut wx = fill(n, PANEL_LANES);
    let mut wy = fill(m, PANEL_LANES / wx);
    while wx > 8 && PANEL_R * wy < m {
        wx = (wx / 2).max(8);
        wy = fill(m, PANEL_LANES / wx);
    }
    (wx, wy)
}

/// K slices a workgroup of `main` takes side by side: a workgroup of `lanes` invocations
/// fewer than one SIMD row of lanes (8, a CPU adapter's) fills it with slices where K is
/// split into `splits`; else one.
pub fn slices_per_group(lanes: usize, splits: usize) -> usize {
    if splits > 1 && lanes < 8 {
        (8 / lanes).min(splits)
    } else {
        1
    }
}

/// How a view is cut for the panel kernel: the blocks' rows, columns and products, and the
/// K slices (split-K) of its sums: (block rows, block columns, block products, slice length,
/// slices in all). The two panels of a block hold at most `words` f32 words of data
/// (their buffers, rounded up to powers of two, at most twice that).
pub fn panel_blocks(
    ctx: &GpuContext,
    (m, n, k): (usize, usize, usize),
    words: usize,
) -> (usize, usize, usize, usize, usize) {
    let (wx, wy) = panel_lanes(m, n);
    let (tm, tn) = (PANEL_R * wy, PANEL_R * wx);
    let k = k.max(1);
    let (mut bm, mut bn) = (m.max(1).next_multiple_of(tm), n.max(1).next_multiple_of(tn));
    // Within the grid's limits, then within the panels' budget: halve the larger side.
    let most = ctx.max_groups_x() as usize;
    bm = bm.min(most * tm);
    bn = bn.min(most * tn);
    while (bm + bn) * k > words && (bm > tm || bn > tn) {
        if bn >= bm && bn > tn {
            bn = (bn / 2).next_multiple_of(tn);
        } else {
            bm = (bm / 2).next_multiple_of(tm);
        }
    }
    // Split K for parallelism where a block has few tiles, within llvmpipe's loop limit:
    // each block (the panels' budget deep) into that many slices of 256 products or more,
    // so that a view deeper than one block does not run its blocks one workgroup at a time.
    let tiles = (bm / tm) * (bn / tn);
    let depth = words / (bm + bn);
    let target = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        16
    } else {
        512
    };
    let splits = if tiles >= target {
        1
    } else {
        (target / tiles).min(k / 256).clamp(1, 64)
    };
    let k_split = k
        .div_ceil(splits)
        .min(PANEL_SLICE)
        .min((depth / splits).max(depth.min(256)))
        .max(1);
    let bk = if (bm + bn) * k <= words {
        k
    } else {
        (words / (bm + bn) / k_split).max(1) * k_split
    };
    (bm, bn, bk, k_split, k.div_ceil(k_split))
}

/// Whether the panel kernel's `thin` takes an `m` x `n` view of `(wx, wy)` invocations as
/// tall tiles: 9 to 16 rows, each invocation sixteen rows of four columns, enough columns to
/// fill a workgroup of 64, or (where [`GpuContext::narrow_tall`]) fewer, a workgroup as wide
/// as the view (a weight gradient's; their K split across workgroups).
fn tall_view(ctx: &GpuContext, (m, n): (usize, usize), (wx, wy): (usize, usize)) -> bool {
    tall_tiles((m, n), (wx, wy), ctx.narrow_tall()) && ctx.thin_panels()
}

/// Whether an `m` x `n` view of `(wx, wy)` invocations has the shape of tall tiles: 9 to 16
/// rows, wide enough to fill a workgroup of 64 or (`narrow`) as wide as the view.
fn tall_tiles((m, n): (usize, usize), (wx, wy): (usize, usize), narrow: bool) -> bool {
    let wide = 2 * wx == PANEL_LANES && n > PANEL_R * PANEL_LANES / 2;
    let narrow = narrow && 2 * wx < PANEL_LANES;
    wy == 2 && m <= 2 * PANEL_R && (wide || narrow)
}

/// The workgroup shape of `thin` for a view of `(m, n, k)` (parameters `params`) that runs
/// as 16-row blocks of tall tiles (where [`GpuContext::tall_blocks`]), each workgroup row
/// one block, B read once per block instead of packed once in a panel (which a CPU adapter
/// stores lane by lane): a weight gradient of 17 to 32 rows, B gathered (twice measured
/// 1.0-2x faster on lavapipe 22.3, four times 0.5-0.8x), or a view of 17 to 64 rows that
/// reads its input rows in segments; None for other views.
fn row_blocks<P: SplitParams>(
    ctx: &GpuContext,
    params: &P,
    (m, n, k): (usize, usize, usize),
) -> Option<(usize, usize)> {
    let rows = 2 * PANEL_R;
    let lanes = panel_lanes(rows, n);
    let (_, _, bk, _, splits) = panel_blocks(ctx, (m, n, k), ctx.panel_words());
    let gathered = params.weight_gradient() && (rows + 1..=2 * rows).contains(&m);
    let segments = reads_rows(ctx, params, (bk, k, splits)) && (rows + 1..=4 * rows).contains(&m);
    let view = gathered || segments;
    (ctx.tall_blocks() && ctx.thin_panels() && view && tall_tiles((rows, n), lanes, true))
        .then_some(lanes)
}

/// Whether `ctx` is a CPU adapter (llvmpipe's subgroups: 8 lanes).
fn cpu_adapter(ctx: &GpuContext) -> bool {
    ctx.info.device_type == wgpu::DeviceType::Cpu
}

/// Images a block of a backward data view whose quads run row by row (`seg_quad` in
/// conv_segments.wgsl) takes, for rows of `per_row` quads: enough that a subgroup's quads (8
/// lanes, two quads a lane, one where `tall`) all lie in one row of dX.
fn row_images(per_row: usize, tall: bool) -> usize {
    let quads: usize = if tall { 8 } else { 16 };
    let mut g = (quads, per_row.max(1));
    while g.1 != 0 {
        g = (g.1, g.0 % g.1);
    }
    quads / g.0
}

/// Whether an `m` x `n` view is short: at most 8 rows (one invocation row of 8 x 8 tiles),
/// wide enough to fill a workgroup of the panel kernel, which `thin` runs, B gathered or
/// read from input rows.
fn short_view(ctx: &GpuContext, (m, n): (usize, usize)) -> bool {
    let (wx, wy) = panel_lanes(m, n);
    ctx.thin_panels() && wy == 1 && m <= PANEL_R && wx == PANEL_LANES
}

/// Whether the panel kernel runs an `m` x `n` view of depth `k` (parameters `params`) with
/// `thin`, B read in the product (no B panel): views of at most 8 rows filling a workgroup,
/// weight gradients through sliding windows, tall views, and views in 16-row blocks of tall
/// tiles (see `row_blocks`).
pub fn gathers_b<P: SplitParams>(
    ctx: &GpuContext,
    (m, n, k): (usize, usize, usize),
    params: &P,
) -> bool {
    let (wx, wy) = panel_lanes(m, n);
    short_view(ctx, (m, n))
        || window_rows(ctx, params, m).is_some()
        || tall_view(ctx, (m, n), (wx, wy))
        || row_blocks(ctx, params, (m, n, k)).is_some()
}

/// The kernel rows of a weight gradient of `m` rows (parameters `params`) that `thin` reads
/// through sliding windows of its input words (where [`GpuContext::windows`]): at most 16
/// rows (a workgroup row of `thin` 8 of them), each invocation one kernel row's taps (at most
/// 8), one input word loaded a product instead of a gathered B value; None for other views.
/// (16 rows: LeNet-5's conv2 6.6-6.8 -> 10.4-10.5 GFLOP/s, ResNet-8's 16-channel 3 x 3 4.5
/// -> 7.5 on lavapipe 22.3; 32 and 64 rows ran slower than tall tiles and packed panels.)
fn window_rows<P: SplitParams>(ctx: &GpuContext, params: &P, m: usize) -> Option<usize> {
    let on = ctx.windows() && ctx.thin_panels() && m <= WINDOW_ROWS_MOST;
    params.window_rows().filter(|&rows| on && rows >= 1)
}

/// Whether a tall or short view of blocks `bk` deep (of `k`) in `splits` slices reads B
/// from its input rows in segments in `thin` (SEGMENTS, shaders/conv_segments.wgsl): a
/// stride-1 convolution's forward or backward data pass (see
/// [`SplitParams::segment_rows`]), its K one block and one slice, its columns over its
/// rows padded to a multiple of 4 wide. Each input word is then loaded once per
/// invocation, not once per kernel column (a 16-channel 3 x 3 layer 1.3-2x on lavapipe
/// 22.3, within the noise on 25.0 but MXFP8's 1.5x). Views
/// of at most 8 rows read two quads of columns an invocation, each in its own row, in 8 x 8
/// tiles (LeNet-5's first layer forward 1.2-1.4x in f32, 2.1x in E4M3 on lavapipe 22.3;
/// made tall instead, 16 rows of which 10 empty, it ran slower).
fn reads_rows<P: SplitParams>(
    ctx: &GpuContext,
    params: &P,
    (bk, k, splits): (usize, usize, usize),
) -> bool {
    ctx.segments() && params.segment_rows().is_some() && splits == 1 && bk == k.max(1)
}

/// Whether the panel kernel's `thin` reads the B operand of view `view` (parameters
/// `params`) from its input rows on `ctx` (see [`SplitParams::segment_rows`]).
pub fn reads_input_rows<P: SplitParams>(ctx: &GpuContext, view: &GemmView, params: &P) -> bool {
    let (m, n, k) = (view.m, view.n, view.k);
    let (_, _, bk, _, splits) = panel_blocks(ctx, (m, n, k), ctx.panel_words());
    ctx.gemm_panels()
        && view.kernel == Kernel::TiledF32
        && (tall_view(ctx, (m, n), panel_lanes(m, n))
            || row_blocks(ctx, params, (m, n, k)).is_some()
            || short_view(ctx, (m, n)))
        && reads_rows(ctx, params, (bk, k, splits))
}

/// Records a view with the panel kernel: per block, decode A's and B's panels, multiply
/// them (straight into the output, or into per-slice partial sums that the reduce pass adds
/// in slice order with the bias).
fn record_panels<P: SplitParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    view: &GemmView,
    mut params: P,
    (a, b): (&Tensor, &Tensor),
    bias: &wgpu::Buffer,
    (io, spec): (&Io, &Specialisation),
) -> Result<(), GpuError> {
    let (m, n, k) = (view.m, view.n, view.k);
    let none = ctx.scratch("no scales", 1)?;
    // `pack` only decodes the operands; `main` only stores the output.
    let packs = spec.operands_only();
    let (bm, bn, bk, k_split, splits) = panel_blocks(ctx, (m, n, k), ctx.panel_words());
    // A view in 16-row blocks (a weight gradient, or a view reading input rows in
    // segments) keeps the view's K blocks and slices (so its sums run in the same order as
    // packed), its block's rows and columns whole tall tiles.
    let blocks = row_blocks(ctx, &params, (m, n, k));
    let (wx, wy) = blocks.unwrap_or_else(|| panel_lanes(m, n));
    // A weight gradient read through windows takes all its columns in one dispatch, an
    // invocation a kernel row, a workgroup a K slice of 8 of its rows.
    let windows = window_rows(ctx, &params, m);
    let (bm, bn) = match (blocks, windows) {
        (Some((wx, wy)), _) => (
            bm.min(m.max(1)).next_multiple_of(PANEL_R * wy),
            bn.next_multiple_of(PANEL_R * wx),
        ),
        (None, Some(_)) => (bm, n.max(1).next_multiple_of(PANEL_R * wx)),
        (None, None) => (bm, bn),
    };
    // Where subgroups of 8 share values, it decodes A's values from dY too (no A panel),
    // so its K is one block.
    let spread = windows.is_some() && ctx.broadcast_lanes();
    let bk = if spread { k.max(1) } else { bk };
    let a_words = if spread { 4 } else { bm * bk };
    params.set_split(splits as u32, k_split as u32);
    let name = view.kernel_name();
    // Views of at most one invocation row of sums, wide enough to fill whole workgroups,
    // gather B in the product (`thin`), with no B panel (narrower ones, such as a weight
    // gradient's 25 columns, measured faster packed: their few lanes gather alone; on a CPU
    // adapter such weight gradients read their inputs through sliding windows instead).
    // Views of 9 to 16 rows, two invocation rows high, gather B too where they fill a
    // workgroup of twice as many invocations, each sixteen rows of four columns
    // (`thin` with TALL), and on a CPU adapter where they are narrower (a weight
    // gradient's 144 or 150 columns where windows are off, K split across workgroups: llvmpipe stores a B
    // panel's values lane by lane, a scalar store a channel).
    // Weight gradients of 17 to 32 rows too, in 16-row blocks (`thin`'s workgroup rows).
    let tall = windows.is_none() && (blocks.is_some() || tall_view(ctx, (m, n), (wx, wy)));
    let short = short_view(ctx, (m, n));
    let segments = (tall || short) && reads_rows(ctx, &params, (bk, k, splits));
    // Segments run their columns over rows padded to a multiple of 4 wide
    // (`segment_column` in conv_segments.wgsl): `cols` of them, more than `n` where the
    // rows are not, or where blocks of images pass the batch (those store value by value).
    // On a CPU adapter a backward data view's quads run dX row by dX row across blocks of
    // images (`seg_quad`), so that a subgroup skips together the kernel rows outside dY;
    // not where the blocks would add more than an eighth of the batch's images (each runs
    // the whole product, and the rows skipped save at most a few kernel rows in KH).
    let per_row = params
        .segment_rows()
        .map_or(1, |w| (w as usize).div_ceil(4));
    let images = params.segment_images().filter(|&(batch, _)| {
        let extra = batch.next_multiple_of(row_images(per_row, tall)) - batch;
        segments && cpu_adapter(ctx) && 8 * extra <= batch
    });
    let cols = match (params.segment_rows(), images) {
        (Some(w), Some((batch, h))) if segments => {
            let padded = (w as usize).next_multiple_of(4);
            batch.next_multiple_of(row_images(padded / 4, tall)) * h * padded
        }
        (Some(w), None) if segments => n / w as usize * (w as usize).next_multiple_of(4),
        _ => n,
    };
    let padded = cols != n;
    // The segment path ignores the slice's K range: one block, one slice, sixteen rows (8
    // in a short view).
    debug_assert!(!segments || (bk == k.max(1) && splits == 1 && bm.is_multiple_of(PANEL_R)));
    let thin = gathers_b(ctx, (m, n, k), &params);
    // `thin` keeps no B panel, so its columns need not fit the panels' budget: it takes
    // them all in one dispatch (within the grid's limit), not in blocks each of a few
    // workgroups (LeNet-5's conv2 backward data: 8 dispatches of 3.5 workgroups each).
    let bn = match thin && windows.is_none() {
        true => cols
            .max(1)
            .next_multiple_of(PANEL_R * wx)
            .min(ctx.max_groups_x() as usize * PANEL_R * wx),
        false => bn,
    };
    // One texture (a CPU adapter) or buffer per panel, grown to the largest view's (within
    // PANEL_WORDS together).
    let textures = match ctx.panel_textures() {
        true => {
            let pa = ctx.scratch_texture("GEMM panel A", a_words / 4)?;
            let pb = match thin {
                true => pa.clone(), // not bound: `thin` has no B panel
                false => ctx.scratch_texture("GEMM panel B", bn * bk / 4)?,
            };
            pa.zip(pb)
        }
        false => None,
    };
    let spec = &spec.with_panel_textures(textures.is_some());
    let packs = packs.with_panel_textures(textures.is_some());
    let panels = match &textures {
        Some(_) => None,
        None => Some((
            ctx.scratch("GEMM panel A", a_words)?,
            ctx.scratch("GEMM panel B", if thin { 1 } else { bn * bk })?,
        )),
    };
    let partial = ctx.scratch(
        "split-K partial sums",
        if splits > 1 { splits * m * n } else { 1 },
    )?;
    let mut main_bindings = vec![(5, bias), (6, &*partial)];
    // `thin` reads A's words too (a weight gradient through windows decodes its A values).
    let mut thin_bindings = vec![
        (1, a.words()),
        (2, a.scales().unwrap_or(&none)),
        (3, b.words()),
        (4, b.scales().unwrap_or(&none)),
        (5, bias),
        (6, &*partial),
    ];
    let (mut main_textures, mut thin_textures) = (vec![], vec![]);
    match (&panels, &textures) {
        (Some((pa, pb)), _) => {
            main_bindings.extend([(13, &**pa), (14, &**pb)]);
            thin_bindings.push((13, &**pa));
        }
        (None, Some((ta, tb))) => {
            main_textures.extend([(13, ta.view()), (14, tb.view())]);
            thin_textures.push((13, ta.view()));
        }
        (None, None) => unreachable!("panels in buffers where not in textures"),
    }
    main_bindings.extend(io.bindings());
    thin_bindings.extend(io.bindings());
    // Every kernel of the view is specialised to the layer (a convolution's indices divide
    // by its constants): `pack` and `thin` decode operands, `main` places its sums (the tap
    // products' main 20-25% faster on lavapipe for 4 more of ResNet-8's 170 pipelines).
    let store = [
        ("SPLIT", (splits > 1) as u32 as f64),
        ("BIAS", params.has_bias() as u32 as f64),
    ];
    // Whole rows of four output words: `main` and `thin` store each four sums as one
    // vector (and round them together), compiled with the output's words as 16-byte vectors.
    let quads = params.rows_in_quads() && splits == 1 && windows.is_none() && !padded;
    let ks = slices_per_group(wx * wy, splits);
    let constants = [
        ("WX", wx as f64),
        ("WY", wy as f64),
        ("KS", ks as f64),
        store[0],
        store[1],
        ("QUAD_OUT", quads as u32 as f64),
    ];
    let main_spec = match quads {
        true => spec.io_only().with_quads(),
        false => spec.io_only(),
    };
    let layer = params.constants();
    let mut thin_constants = layer.clone();
    // A window's workgroup is its kernel rows (at most 64; whole subgroups of 8 where they
    // share A's values), every lane in one slice, so that A's values are the same for every
    // lane (2.8-3.2 GFLOP/s on LeNet-5's first weight gradient with A's panel, against 2.2
    // with two slices side by side in the lanes).
    let thin_lanes = match windows {
        Some(rows) if spread => rows.next_multiple_of(8).min(PANEL_LANES),
        Some(rows) => rows.min(PANEL_LANES),
        None if tall => 2 * wx,
        None => wx,
    };
    thin_constants.extend([("WX", thin_lanes as f64), store[0], store[1]]);
    thin_constants.push(("TALL", tall as u32 as f64));
    thin_constants.push(("SEGMENTS", segments as u32 as f64));
    thin_constants.push(("WINDOW", windows.is_some() as u32 as f64));
    thin_constants.push(("SKIP_ROWS", images.is_some() as u32 as f64));
    thin_constants.push(("QUAD_OUT", quads as u32 as f64));
    let thin_spec = match quads {
        true => spec.with_quads(),
        false => *spec,
    };
    let with_side = |side: u32, pan: usize| {
        let mut c = layer.clone();
        c.extend([("SIDE", side as f64), ("PAN", pan as f64)]);
        c
    };
    // `pack` reads both operands' bindings whichever panel it writes.
    let operands = [
        (1, a.words()),
        (2, a.scales().unwrap_or(&none)),
        (3, b.words()),
        (4, b.scales().unwrap_or(&none)),
    ];
    let mut pack_bindings = [operands.to_vec(), operands.to_vec()];
    let mut pack_textures = [vec![], vec![]];
    match (&panels, &textures) {
        (Some((pa, pb)), _) => {
            pack_bindings[0].push((12, &**pa));
            pack_bindings[1].push((12, &**pb));
        }
        (None, Some((ta, tb))) => {
            pack_textures[0].push((12, ta.view()));
            pack_textures[1].push((12, tb.view()));
        }
        (None, None) => unreachable!("panels in buffers where not in textures"),
    }
    // A view's last block along M or N is cut to the tiles that reach its edge (its panel
    // narrower, so `pack` is compiled for that width too).
    let (tm, tn) = (PANEL_R * wy, PANEL_R * wx);
    let width = |extent: usize, start: usize, most: usize, tile: usize| {
        most.min(extent.max(1) - start).next_multiple_of(tile)
    };
    for k0 in (0..k.max(1)).step_by(bk) {
        let kb = bk.min(k.max(1) - k0);
        for i0 in (0..m.max(1)).step_by(bm) {
            let mb = width(m, i0, bm, tm);
            let mut block = PanelBlock {
                i0: i0 as u32,
                j0: 0,
                k0: k0 as u32,
                k: kb as u32,
                pan_m: mb as u32,
                pan_n: bn as u32,
                slice0: (k0 / k_split) as u32,
            };
            params.set_block(&block);
            let pack_a = with_side(0, mb);
            let kernel = (name.as_str(), "pack", pack_a.as_slice());
            if !spread {
                record_with_textures(
                    ctx,
                    enc,
                    kernel,
                    &packs,
                    (mb * kb / 4) as u32,
                    params,
                    (&pack_bindings[0], &pack_textures[0]),
                )?;
            }
            for j0 in (0..cols.max(1)).step_by(bn) {
                let nb = width(cols, j0, bn, tn);
                block.j0 = j0 as u32;
                block.pan_n = nb as u32;
                params.set_block(&block);
                // `thin` takes a slice a workgroup, `main` KS of them.
                let slices = kb.div_ceil(k_split);
                let grid = |per_group: usize| {
                    let z = slices.div_ceil(per_group) as u32;
                    ((nb / tn) as u32, (mb / tm) as u32, z)
                };
                // The panels' widths are the product's constants too.
                let widths = [("PM", mb as f64), ("PN", nb as f64)];
                if thin {
                    let mut thin_constants = thin_constants.clone();
                    thin_constants.push(widths[0]);
                    let grid = match windows {
                        Some(rows) => {
                            let (_, _, z) = grid(1);
                            let y = mb.div_ceil(PANEL_R) as u32;
                            (rows.div_ceil(thin_lanes) as u32, y, z)
                        }
                        None => grid(1),
                    };
                    record_textured(
                        ctx,
                        enc,
                        (&name, "thin", &thin_constants),
                        &thin_spec,
                        grid,
                        &params,
                        (&thin_bindings, &thin_textures),
                    )?;
                    continue;
                }
                let pack_b = with_side(1, nb);
                let kernel = (name.as_str(), "pack", pack_b.as_slice());
                record_with_textures(
                    ctx,
                    enc,
                    kernel,
                    &packs,
                    (nb * kb / 4) as u32,
                    params,
                    (&pack_bindings[1], &pack_textures[1]),
                )?;
                let mut constants = constants.to_vec();
                constants.extend(widths);
                constants.extend(layer.iter().copied());
                record_textured(
                    ctx,
                    enc,
                    (&name, "main", &constants),
                    &main_spec,
                    grid(ks),
                    &params,
                    (&main_bindings, &main_textures),
                )?;
            }
        }
    }
    if splits == 1 {
        return Ok(());
    }
    record_reduce(ctx, enc, view.family, params, bias, &partial, io)
}

/// Records the pass that adds the K slices' partial sums in slice order, then the bias,
/// into the output of `io`.
fn record_reduce<P: SplitParams>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    family: &str,
    params: P,
    bias: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    io: &Io,
) -> Result<(), GpuError> {
    let cells = params.cells();
    let reduce = format!("{family}_reduce");
    let mut bindings = vec![(5, bias), (6, partial)];
    bindings.extend(io.bindings());
    let layer = params.constants();
    record_with(
        ctx,
        enc,
        (&reduce, "main", &layer),
        &io.spec(),
        cells,
        params,
        &bindings,
    )
}

/// Runs `record` (a GEMM-shaped pass writing f32 sums, given the bias buffer) and quantizes
/// its sums into a tensor of `out_shape`.
pub(crate) fn finish_view(
    ctx: &GpuContext,
    bias: Option<&[f32]>,
    out_shape: &[usize],
    out: &QuantSpec,
    record: impl FnOnce(&mut Encoder, &wgpu::Buffer, &wgpu::Buffer) -> Result<(), GpuError>,
) -> Result<(Tensor, Exceptions), GpuError> {
    let c = zeroed(ctx, "gemm sums", out_shape.iter().product())?;
    let bias_buf = upload_f32(ctx, "bias", bias.unwrap_or(&[0.0]))?;
    let mut enc = Encoder::new(ctx);
    record(&mut enc, &bias_buf, &c)?;
    enc.submit();
    quantize_buffer(ctx, &c, out_shape, out)
}
