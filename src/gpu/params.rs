//! The uniform parameters of the quantization kernels; mirrors `shaders/lib/params.wgsl`.

use crate::format::{BlockScale, ScalarFormat, Specials};
use crate::quant::{QuantSpec, Scaling};

/// A format flattened for the kernels (16 words, like WGSL's `Fmt`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FmtParams {
    kind: u32,
    bits: u32,
    m: u32,
    bias: i32,
    specials: u32,
    subnormals: u32,
    max_code: u32,
    top_field_exp: i32,
    sign_bit: u32,
    inf_code: u32,
    nan_code: u32,
    fl: u32,
    max_int: u32,
    min_int_mag: u32,
    emax: i32,
    max_bits: u32,
}

const NONE: u32 = u32::MAX;

/// The words of `Fmt` that are `i32` in WGSL: bias, top_field_exp, emax.
const FMT_SIGNED: [usize; 3] = [3, 7, 14];

impl FmtParams {
    /// This format as a WGSL `Fmt` constructor (every field a literal).
    pub fn wgsl(&self) -> String {
        let words: [u32; 16] = bytemuck::cast(*self);
        let fields: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, &w)| match FMT_SIGNED.contains(&i) {
                true => format!("{}i", w as i32),
                false => format!("{w}u"),
            })
            .collect();
        format!("Fmt({})", fields.join(", "))
    }
}

impl FmtParams {
    /// The parameters of an element format.
    pub fn new(f: &ScalarFormat) -> FmtParams {
        let common = FmtParams {
            bits: f.bits(),
            emax: f.emax(),
            max_bits: f.max().to_bits(),
            inf_code: NONE,
            nan_code: NONE,
            ..Default::default()
        };
        match f {
            ScalarFormat::Float(x) => FmtParams {
                kind: 0,
                m: x.m,
                bias: x.bias,
                specials: match x.specials {
                    Specials::Ieee => 0,
                    Specials::Nan => 1,
                    Specials::None => 2,
                },
                subnormals: x.subnormals as u32,
                max_code: x.max_code(),
                top_field_exp: x.top_field_exp(),
                sign_bit: x.sign_bit(),
                inf_code: x.inf_code().unwrap_or(NONE),
                nan_code: x.nan_code().unwrap_or(NONE),
                ..common
            },
            ScalarFormat::Fixed(x) => FmtParams {
                kind: 1,
                fl: x.fl,
                max_int: x.max_int(),
                min_int_mag: x.min_int_mag(),
                ..common
            },
        }
    }
}

/// One dispatch's parameters (32 words, like WGSL's `QuantParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantParams {
    fmt: FmtParams,
    n: u32,
    mode: u32,
    sr_bits: u32,
    saturate: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    scaling: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// Work items in this dispatch.
    pub count: u32,
    pad: [u32; 6],
}

impl QuantParams {
    /// Parameters for quantizing `n` elements as `spec` says.
    pub fn new(spec: &QuantSpec, n: usize) -> QuantParams {
        QuantParams {
            fmt: FmtParams::new(&spec.format.element()),
            n: n as u32,
            mode: spec.rounding.mode_id(),
            sr_bits: spec.rounding.sr_bits(),
            saturate: (spec.saturate || spec.format.block().is_some()) as u32,
            seed_lo: spec.seed as u32,
            seed_hi: (spec.seed >> 32) as u32,
            stream: spec.stream,
            scaling: scaling_id(spec),
            ..Default::default()
        }
    }
}

/// The kernels' scaling word: the kind in bits 0-3 (0 none, 1 per tensor, 2 E8M0 blocks,
/// 3 E4M3 blocks under an fp32 tensor scale) and a block format's block size from bit 8.
pub fn scaling_id(spec: &QuantSpec) -> u32 {
    match (spec.format.block(), spec.scaling) {
        (Some(b), _) => {
            let kind = match b.scale {
                BlockScale::E8m0 => 2,
                BlockScale::E4m3 => 3,
            };
            kind | b.size << 8
        }
        (None, Scaling::Tensor) => 1,
        (None, Scaling::None) => 0,
    }
}

/// A GEMM dispatch's parameters (71 words, like WGSL's `GemmParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    /// Format of A's elements.
    pub fa: FmtParams,
    /// Format of B's elements.
    pub fb: FmtParams,
    /// Format of the emulated accumulator.
    pub facc: FmtParams,
    /// Rows of op(A) and C.
    pub m: u32,
    /// Columns of op(B) and C.
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// A is stored transposed.
    pub trans_a: u32,
    /// B is stored transposed.
    pub trans_b: u32,
    /// A's scaling word (see [`scaling_id`]).
    pub a_scaling: u32,
    /// B's scaling.
    pub b_scaling: u32,
    /// 0 fp32, 1 exact integer, 2 emulated accumulator.
    pub mode: u32,
    /// Products per accumulator chunk.
    pub chunk: u32,
    /// Whether a bias vector is added.
    pub has_bias: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// Work items in this dispatch.
    pub count: u32,
    /// K slices summed by separate workgroups (split-K), 1 for none.
    pub splits: u32,
    /// Products per K slice.
    pub k_split: u32,
    /// Per-element kernels: the first product of this pass.
    pub k_begin: u32,
    /// Per-element kernels: one past the last product of this pass.
    pub k_end: u32,
    /// Panel kernels: the block this dispatch covers.
    pub blk: PanelBlock,
}

/// Parameter blocks whose dispatch grid is filled in when they are recorded.
pub trait DispatchParams: bytemuck::Pod {
    /// Stores the grid of a 1-D dispatch over `count` items.
    fn set_grid(&mut self, groups_x: u32, count: u32);

    /// The most iterations the loops of one work item may run beyond those of its one store
    /// and soft-float arithmetic (`dispatch::ITEM_SLACK` covers these): llvmpipe ends an
    /// invocation's loops after 65,535 iterations in all, so a kernel looping over its items
    /// takes fewer of them the longer each item's loops run.
    fn item_iterations(&self) -> u32 {
        4
    }
}

impl DispatchParams for QuantParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }
}

/// The block of a GEMM view one panel dispatch covers: rows [i0, i0 + pan_m), columns
/// [j0, j0 + pan_n) and products [k0, k0 + k) (panels padded past the view's edges); part
/// of the GEMM and convolution parameters (7 words, like WGSL's `PanelBlock`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PanelBlock {
    /// First row.
    pub i0: u32,
    /// First column.
    pub j0: u32,
    /// First product.
    pub k0: u32,
    /// Products.
    pub k: u32,
    /// Rows of the A panel.
    pub pan_m: u32,
    /// Columns of the B panel.
    pub pan_n: u32,
    /// The K slice (split-K index) of the block's first.
    pub slice0: u32,
}

/// Parameter blocks of GEMM-shaped dispatches, whose K may be split.
pub trait SplitParams: DispatchParams {
    /// Sets the number of K slices and their length.
    fn set_split(&mut self, splits: u32, k_split: u32);
    /// Sets the products [begin, end) a per-element pass covers.
    fn set_pass(&mut self, begin: u32, end: u32);
    /// Sets the block a panel kernel's dispatch covers.
    fn set_block(&mut self, b: &PanelBlock);
    /// Elements of the view's output (m x n).
    fn cells(&self) -> u32;
    /// Whether the view adds a bias.
    fn has_bias(&self) -> bool;
    /// Pipeline constants that specialise the kernel to these parameters' shape.
    fn constants(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Whether every four output columns from a multiple of 4 are four consecutive output
    /// words from a multiple of 4 (so a kernel may store them as one 16-byte vector).
    fn rows_in_quads(&self) -> bool;
    /// The width of the rows (of the output, or of dX) a convolution's forward or backward
    /// data pass, stride 1 without dilation, its kernel at most 5 wide, runs its columns
    /// along, so that the panel kernel's `thin` may read four neighbours of a row from rows
    /// of B's tensor (X, or dY: `SEGMENTS`); None for other views.
    fn segment_rows(&self) -> Option<u32> {
        None
    }
    /// For a backward data view that reads dY's rows in segments and whose kernel rows
    /// reach outside dY from at least a fifth of its (dX row, kernel row) pairs: its images
    /// and dX's height (the rows of each image its columns run along); None for other views.
    fn segment_images(&self) -> Option<(usize, usize)> {
        None
    }
    /// Whether the view is a convolution's weight gradient (its rows the output channels,
    /// its columns the kernel's taps, its K the batch's output pixels).
    fn weight_gradient(&self) -> bool {
        false
    }
    /// The kernel rows of a weight gradient whose input words a sliding window can serve
    /// (stride 1 and no dilation along the width, at most 8 taps a kernel row): each of a
    /// group's input channels' kernel rows, its taps neighbouring GEMM columns; None for
    /// other views.
    fn window_rows(&self) -> Option<usize> {
        None
    }
    /// How many GEMM views of the same dimensions the op is (convolution groups).
    fn groups(&self) -> u32 {
        1
    }
    /// The element format and scaling of operands A and B.
    fn operands(&self) -> [(FmtParams, u32); 2];
    /// The parameters of view `g`.
    fn with_group(self, _g: u32) -> Self {
        self
    }
}

impl SplitParams for GemmParams {
    fn cells(&self) -> u32 {
        self.m * self.n
    }

    /// Row i's column j is word i n + j.
    fn rows_in_quads(&self) -> bool {
        self.n.is_multiple_of(4)
    }

    fn has_bias(&self) -> bool {
        self.has_bias != 0
    }

    fn operands(&self) -> [(FmtParams, u32); 2] {
        [(self.fa, self.a_scaling), (self.fb, self.b_scaling)]
    }

    fn set_split(&mut self, splits: u32, k_split: u32) {
        self.splits = splits;
        self.k_split = k_split;
    }

    fn set_block(&mut self, b: &PanelBlock) {
        self.blk = *b;
    }

    fn set_pass(&mut self, begin: u32, end: u32) {
        self.k_begin = begin;
        self.k_end = end;
    }
}

impl SplitParams for ConvParams {
    fn cells(&self) -> u32 {
        self.m * self.n
    }

    /// Columns run over an image's output pixels (forward), its input pixels (backward
    /// data), or row-major (weight gradient, tap products), as `out_index` in
    /// shaders/lib/conv_index.wgsl: four from a multiple of 4 stay in one image's plane
    /// where its pixels are a multiple of 4.
    fn rows_in_quads(&self) -> bool {
        let run = match self.pass {
            0 => self.oh * self.ow,
            1 => self.h * self.w,
            _ => self.n,
        };
        run.is_multiple_of(4) && self.n.is_multiple_of(4)
    }

    fn segment_rows(&self) -> Option<u32> {
        let row = match self.pass {
            0 => self.ow,
            1 => self.w,
            _ => return None,
        };
        let plain = (self.stride_h, self.stride_w, self.dil_h, self.dil_w) == (1, 1, 1, 1);
        (plain && (1..=5).contains(&self.kw) && row >= 1).then_some(row)
    }

    /// (A fifth: LeNet-5's conv2, 20 of 70 pairs outside, ran 1.13x faster skipping them;
    /// ResNet-8's 3 x 3 layers, 2 of 24 or 96, about 7% slower, their quads run across
    /// images for little skipped.)
    fn segment_images(&self) -> Option<(usize, usize)> {
        let back = self.pass == 1 && self.segment_rows().is_some();
        let (h, kh, pad, oh) = (
            self.h as i64,
            self.kh as i64,
            self.pad_h as i64,
            self.oh as i64,
        );
        // Kernel row r reaches dY's row ih + pad - r: inside for r in [ih + pad - oh + 1, ih + pad].
        let inside: i64 = (0..h)
            .map(|ih| (ih + pad).min(kh - 1) - (ih + pad - oh + 1).max(0) + 1)
            .map(|n| n.max(0))
            .sum();
        let outside = h * kh - inside;
        (back && 5 * outside >= h * kh).then_some((self.batch as usize, self.h as usize))
    }

    fn weight_gradient(&self) -> bool {
        self.pass == 2
    }

    fn window_rows(&self) -> Option<usize> {
        let window = self.pass == 2
            && (self.stride_w, self.dil_w) == (1, 1)
            && (1..=8).contains(&self.kw)
            && self.kh >= 1;
        window.then(|| (self.cin / self.groups.max(1) * self.kh) as usize)
    }

    fn has_bias(&self) -> bool {
        self.has_bias != 0
    }

    fn operands(&self) -> [(FmtParams, u32); 2] {
        [(self.fa, self.a_scaling), (self.fb, self.b_scaling)]
    }

    fn set_split(&mut self, splits: u32, k_split: u32) {
        self.splits = splits;
        self.k_split = k_split;
    }

    fn set_block(&mut self, b: &PanelBlock) {
        self.blk = *b;
    }

    fn set_pass(&mut self, begin: u32, end: u32) {
        self.k_begin = begin;
        self.k_end = end;
    }

    fn groups(&self) -> u32 {
        self.groups.max(1)
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
        let geometry = [
            ("CV_CIN", self.cin),
            ("CV_CONV_PASS", self.pass),
            ("CV_COUT", self.cout),
            ("CV_DIL_H", self.dil_h),
            ("CV_DIL_W", self.dil_w),
            ("CV_GROUPS", self.groups.max(1)),
            ("CV_H", self.h),
            ("CV_K", self.k),
            ("CV_KH", self.kh),
            ("CV_KW", self.kw),
            ("CV_N", self.n),
            ("CV_OH", self.oh),
            ("CV_OW", self.ow),
            ("CV_PAD_H", self.pad_h),
            ("CV_PAD_W", self.pad_w),
            ("CV_STRIDE_H", self.stride_h),
            ("CV_STRIDE_W", self.stride_w),
            ("CV_W", self.w),
        ];
        std::iter::once(("CV", 1.0))
            .chain(geometry.into_iter().map(|(k, v)| (k, v as f64)))
            .collect()
    }

    fn with_group(self, g: u32) -> Self {
        ConvParams { group: g, ..self }
    }
}

impl DispatchParams for GemmParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }

    /// The split-K reduce adds each output's `splits` partial sums.
    fn item_iterations(&self) -> u32 {
        self.splits.max(4)
    }
}

/// A convolution dispatch's parameters (like WGSL's `ConvParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    /// Format of operand A's elements.
    pub fa: FmtParams,
    /// Format of operand B's elements.
    pub fb: FmtParams,
    /// Format of the emulated accumulator.
    pub facc: FmtParams,
    /// GEMM-view rows.
    pub m: u32,
    /// GEMM-view columns.
    pub n: u32,
    /// GEMM-view inner dimension.
    pub k: u32,
    /// 0 forward, 1 backward data, 2 backward weight.
    pub pass: u32,
    /// A's scaling word (see [`scaling_id`]).
    pub a_scaling: u32,
    /// B's scaling.
    pub b_scaling: u32,
    /// 0 fp32, 1 exact integer, 2 emulated accumulator.
    pub mode: u32,
    /// Products per accumulator chunk.
    pub chunk: u32,
    /// Whether a bias is added.
    pub has_bias: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// Work items in this dispatch.
    pub count: u32,
    /// Batch size N.
    pub batch: u32,
    /// Input channels C.
    pub cin: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels O.
    pub cout: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Vertical padding.
    pub pad_h: u32,
    /// Horizontal padding.
    pub pad_w: u32,
    /// Vertical dilation.
    pub dil_h: u32,
    /// Horizontal dilation.
    pub dil_w: u32,
    /// K slices summed by separate workgroups (split-K), 1 for none.
    pub splits: u32,
    /// Products per K slice.
    pub k_split: u32,
    /// Per-element kernels: the first product of this pass.
    pub k_begin: u32,
    /// Per-element kernels: one past the last product of this pass.
    pub k_end: u32,
    /// Channel groups.
    pub groups: u32,
    /// The group this dispatch computes.
    pub group: u32,
    /// Panel kernels: the block this dispatch covers.
    pub blk: PanelBlock,
    /// Padding: in a uniform, WGSL starts the member after a struct at a multiple of 16 bytes.
    pub blk_pad: u32,
    /// Tap products (pass 3): the first image of this chunk.
    pub img0: u32,
    /// Padding to WGSL's size of the struct (a multiple of 16 bytes).
    pub tail_pad: [u32; 3],
}

impl DispatchParams for ConvParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }

    /// The reduce adds `splits` partial sums an output, the tap sums KH KW products.
    fn item_iterations(&self) -> u32 {
        self.splits.max(self.kh.saturating_mul(self.kw)).max(4)
    }
}

/// Parameters of the linear-model kernels (16 words, like WGSL's `LinearParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    /// Features per row.
    pub cols: u32,
    /// First position of the batch in the epoch's row order.
    pub batch_start: u32,
    /// Rows in the batch.
    pub batch_len: u32,
    /// 0 fp32, 1 naive, 2 independent samples (double sampling, Chebyshev).
    pub mode: u32,
    /// Width of a level index.
    pub bits: u32,
    /// Up bits per value.
    pub samples: u32,
    /// Levels stored per column.
    pub per_col: u32,
    /// Step size (f32 bits).
    pub lr: u32,
    /// 1 / batch_len (f32 bits).
    pub inv: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// Work items in this dispatch.
    pub count: u32,
    /// 0 least squares, 1 logistic regression, 2 logistic through a polynomial, 3 hinge.
    pub task: u32,
    /// Degree of the polynomial (task 2).
    pub degree: u32,
    /// L2 coefficient (f32 bits; 0 for none).
    pub l2: u32,
    /// 1 where the gradient or the model is rounded through a format each step: `update`
    /// then writes the gradient out for `apply`, instead of stepping.
    pub rounded: u32,
}

impl DispatchParams for LinearParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }
}

/// Parameters of HALP's kernels (24 words, like WGSL's `HalpParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct HalpParams {
    /// Features per row.
    pub cols: u32,
    /// Gradient factors per row: 1, or the classes of softmax.
    pub outputs: u32,
    /// Work items in this dispatch.
    pub count: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// First position of the batch in the row order (full gradient: first row).
    pub start: u32,
    /// Rows in the batch (full gradient: rows in this run).
    pub len: u32,
    /// Where factors and the L2 term are taken: 0 the iterate, 1 centre + iterate, 2 centre.
    pub point: u32,
    /// 1: the step is SVRG's (less the centre's batch gradient, plus the full one).
    pub svrg: u32,
    /// Full gradient: 1 on the first run of rows.
    pub first: u32,
    /// Full gradient: 1 on the last run of rows.
    pub last: u32,
    /// Step size (f32 bits).
    pub lr: u32,
    /// 1 / rows (f32 bits).
    pub inv: u32,
    /// L2 coefficient (f32 bits; 0 for none).
    pub l2: u32,
    /// Bits of the grid's codes; 0 for no grid.
    pub bits: u32,
    /// The grid's step (f32 bits).
    pub scale: u32,
    /// Low word of the random counter of element 0 of this step.
    pub base_lo: u32,
    /// High word of that counter.
    pub base_hi: u32,
    /// Low word of the seed.
    pub seed_lo: u32,
    /// High word of the seed.
    pub seed_hi: u32,
    /// 0 least squares, 1 logistic regression, 2 softmax.
    pub task: u32,
    /// Epoch kernel: inner steps in this dispatch.
    pub steps: u32,
    /// Epoch kernel: rows per step.
    pub batch: u32,
    /// Epoch kernel: rows in the order.
    pub order_len: u32,
    /// Epoch kernel: the first step's index within the epoch.
    pub j0: u32,
}

impl DispatchParams for HalpParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }
}

/// Parameters of the elementwise training kernels (32 words, like WGSL's `ElemParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElemParams {
    /// Elements (or rows for per-row kernels).
    pub n: u32,
    /// Rows of a matrix operand.
    pub rows: u32,
    /// Columns of a matrix operand.
    pub cols: u32,
    /// Workgroups along x in this dispatch.
    pub groups_x: u32,
    /// Work items in this dispatch.
    pub count: u32,
    /// Learning rate (f32 bits).
    pub lr: u32,
    /// Momentum (f32 bits).
    pub mu: u32,
    /// Weight decay (f32 bits).
    pub wd: u32,
    /// 1 for Nesterov momentum.
    pub nesterov: u32,
    /// Scale of the loss gradient, 1 / batch (f32 bits).
    pub scale: u32,
    /// Column sums: values per (row, column).
    pub inner: u32,
    /// Pooling: input plane height.
    pub in_h: u32,
    /// Pooling: input plane width.
    pub in_w: u32,
    /// Pooling: output plane height.
    pub out_h: u32,
    /// Pooling: output plane width.
    pub out_w: u32,
    /// Pooling: window size and stride.
    pub pool: u32,
    /// Adam: 1 - beta1 (f32 bits; beta1 is `mu`).
    pub beta1c: u32,
    /// Adam: beta2 (f32 bits).
    pub beta2: u32,
    /// Adam: 1 - beta2 (f32 bits).
    pub beta2c: u32,
    /// Adam: epsilon (f32 bits).
    pub eps: u32,
    /// Step-state update: ln(beta1), for Adam's first bias correction (f32 bits).
    pub ln_beta1: u32,
    /// Loss-scale update: 1 for dynamic scaling.
    pub dynamic: u32,
    /// Loss-scale update: good steps before the scale doubles.
    pub interval: u32,
    /// Step-state update: ln(beta2), for Adam's second bias correction (f32 bits).
    pub ln_beta2: u32,
    /// Channel maps (shortcuts, concatenation windows): the output channel of source channel 0.
    pub offset: u32,
    /// Batch norm: M, the values a channel's statistics are taken over (f32 bits).
    pub bn_m: u32,
    /// Batch norm: M / (M - 1), the variance's unbiasing factor (f32 bits).
    pub bn_unbias: u32,
    /// Batch norm: 1 - momentum, the running statistics' keep factor (f32 bits).
    pub bn_keep: u32,
    /// Optimizer update: which value it stores (0 weights, 1 velocity or Adam's first
    /// moment, 2 Adam's second moment).
    pub which: u32,
    /// Unused (the struct stays a multiple of 16 bytes).
    pub reserved: [u32; 3],
}

impl DispatchParams for ElemParams {
    fn set_grid(&mut self, groups_x: u32, count: u32) {
        self.groups_x = groups_x;
        self.count = count;
    }

    /// Max pooling's backward finds a window's maximum, then stores every cell of it, each
    /// store with its own rounding's loops (16 iterations a cell allowed).
    fn item_iterations(&self) -> u32 {
        let cells = self.pool.saturating_mul(self.pool);
        cells
            .saturating_mul(16)
            .saturating_add(self.pool.saturating_mul(2))
            .max(4)
    }
}

/// A fused kernel's input format (20 words, like WGSL's `InFmt`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct InParams {
    fmt: FmtParams,
    scaling: u32,
    raw: u32,
    pad: [u32; 2],
}

impl InParams {
    /// Plain f32 words, read as they are.
    pub fn raw() -> InParams {
        InParams {
            raw: 1,
            ..Default::default()
        }
    }

    /// A tensor of `spec`, decoded as it is loaded.
    pub fn packed(spec: &QuantSpec) -> InParams {
        InParams {
            fmt: FmtParams::new(&spec.format.element()),
            scaling: scaling_id(spec),
            ..Default::default()
        }
    }

    /// The input's scaling word (see [`scaling_id`]).
    pub fn scaling(&self) -> u32 {
        self.scaling
    }

    /// Whether each element has a 32-bit word of its own and no scale (plain f32 words, or
    /// a 32-bit format), so four elements are one 16-byte vector.
    pub fn whole_words(&self) -> bool {
        self.raw != 0 || self.fmt.bits == 32 && self.scaling == 0
    }

    /// WGSL statements that set the fields of an `InFmt` named `f` to this input's.
    pub fn wgsl_fields(&self) -> String {
        format!(
            "f.fmt = {}; f.scaling = {}u; f.raw = {}u;",
            self.fmt.wgsl(),
            self.scaling,
            self.raw
        )
    }
}

/// A fused kernel's output format and rounding (28 words, like WGSL's `OutFmt`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OutParams {
    fmt: FmtParams,
    mode: u32,
    sr_bits: u32,
    saturate: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    phase: u32,
    scaling: u32,
    add: u32,
    pad: [u32; 3],
}

/// What a fused kernel's dispatch does with its output values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutPhase {
    /// Rounds and stores them (with the scales already computed, if the format scales).
    Store = 0,
    /// Stores the f32 values as they are.
    Raw = 1,
    /// Only gathers the amax the output's scales need.
    Amax = 2,
    /// Adds the f32 values to the f32 words already there.
    Accumulate = 3,
}

impl OutParams {
    /// The output's scaling word (see [`scaling_id`]).
    pub fn scaling(&self) -> u32 {
        self.scaling
    }

    /// Plain f32 words, stored as they are (`OutPhase::Raw`) or added to the words there
    /// (`OutPhase::Accumulate`).
    pub fn raw(phase: OutPhase) -> OutParams {
        OutParams {
            phase: phase as u32,
            ..Default::default()
        }
    }

    /// Rounded into a tensor of `spec` as it is stored (`OutPhase::Store`), or the amax
    /// pass before that of a scaled one (`OutPhase::Amax`); `add`: an f32 term is added to
    /// each value first.
    pub fn packed(spec: &QuantSpec, phase: OutPhase, add: bool) -> OutParams {
        let q = QuantParams::new(spec, 0);
        // Only stochastic rounding draws from the seed and stream: other outputs leave them
        // 0, so that their parameters are the same every step (one shared uniform, cached
        // bind groups) although a step's specs carry the step's seed.
        let draws = matches!(spec.rounding, crate::quant::Rounding::Stochastic { .. });
        let drawn = |v: u32| if draws { v } else { 0 };
        OutParams {
            fmt: q.fmt,
            mode: q.mode,
            sr_bits: q.sr_bits,
            saturate: q.saturate,
            seed_lo: drawn(q.seed_lo),
            seed_hi: drawn(q.seed_hi),
            stream: drawn(q.stream),
            phase: phase as u32,
            scaling: q.scaling,
            add: add as u32,
            pad: [0; 3],
        }
    }

    /// Whether each output element has a word of its own (plain f32 words, or a 32-bit
    /// format), so that stores need no atomics.
    pub fn exclusive_words(&self) -> bool {
        !self.rounds() || self.fmt.bits == 32
    }

    /// Whether four elements from a multiple of 4 fill whole words (codes of 8, 16, 24 or
    /// 32 bits, or plain f32 words), so that a kernel of four elements an invocation
    /// shares no word between invocations.
    pub fn quads_own_words(&self) -> bool {
        self.exclusive_words() || self.fmt.bits.is_multiple_of(8)
    }

    /// Whether values are rounded into a format (not plain f32 words).
    pub fn rounds(&self) -> bool {
        self.phase == OutPhase::Store as u32 || self.phase == OutPhase::Amax as u32
    }

    /// The words of its format and rounding: what [`OutParams::rounding_wgsl`] writes.
    pub fn rounding_words(&self) -> [u32; 20] {
        let mut w = [0u32; 20];
        w[..16].copy_from_slice(&bytemuck::cast::<FmtParams, [u32; 16]>(self.fmt));
        w[16..].copy_from_slice(&[self.mode, self.sr_bits, self.saturate, self.scaling]);
        w
    }

    /// The words of what a store does (its phase and addend flag): what
    /// [`OutParams::store_wgsl`] writes.
    pub fn store_words(&self) -> [u32; 2] {
        [self.phase, self.add]
    }

    /// WGSL statements that set the phase and addend flag of an `OutFmt` named `f`.
    pub fn store_wgsl(&self) -> String {
        format!("f.phase = {}u; f.add = {}u;", self.phase, self.add)
    }

    /// WGSL statements that set the format and rounding of an `OutFmt` named `f` (its
    /// seed, stream, phase and addend flag stay as they are).
    pub fn rounding_wgsl(&self) -> String {
        format!(
            "f.fmt = {}; f.mode = {}u; f.sr_bits = {}u; f.saturate = {}u; f.scaling = {}u;",
            self.fmt.wgsl(),
            self.mode,
            self.sr_bits,
            self.saturate,
            self.scaling
        )
    }
}

/// The packed operands of a fused kernel (108 words, like WGSL's `IoParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct IoParams {
    /// The output.
    pub out: OutParams,
    /// The first input.
    pub in0: InParams,
    /// The second input.
    pub in1: InParams,
    /// The third input.
    pub in2: InParams,
    /// The fourth input.
    pub in3: InParams,
}
