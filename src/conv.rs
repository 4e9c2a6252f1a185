//! 2-D convolution in NCHW layout: geometry, and each pass as a GEMM over virtual operands.
//!
//! - forward:         Y[n,o,oh,ow]  = sum over (c,kh,kw) of W[o,c,kh,kw] X[n,c,ih,iw]
//! - backward data:   dX[n,c,h,w]   = sum over (o,kh,kw) of W[o,c,kh,kw] dY[n,o,oh,ow]
//! - backward weight: dW[o,c,kh,kw] = sum over (n,oh,ow) of dY[n,o,oh,ow] X[n,c,ih,iw]
//!
//! with ih = oh*stride - pad + kh*dilation (likewise iw); taps outside the input read 0.
//! The GEMM's k index runs over the listed tuple in row-major order, which fixes the
//! accumulation order of the emulated accumulators. `shaders/lib/conv_index.wgsl` is the twin.

use crate::accum::{Accumulator, GemmError, GemmSpec};
use crate::format::Format;
use crate::quant::QuantSpec;

/// Which convolution pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    /// Y = conv(X, W): A = W, B = im2col(X).
    Forward,
    /// dX from dY: A = W viewed C x (O KH KW), B = dY gathered through the taps.
    BackwardData,
    /// dW from dY and X: A = dY viewed O x (N OH OW), B = im2col(X) transposed.
    BackwardWeight,
}

impl ConvPass {
    /// The id the kernels use.
    pub fn id(self) -> u32 {
        match self {
            ConvPass::Forward => 0,
            ConvPass::BackwardData => 1,
            ConvPass::BackwardWeight => 2,
        }
    }
}

/// Stride, padding, dilation, accumulator and output quantization of a convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dSpec {
    /// (vertical, horizontal) stride, >= 1.
    pub stride: [usize; 2],
    /// Zero padding on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, >= 1.
    pub dilation: [usize; 2],
    /// Channel groups, >= 1: output channel o sees only the input channels of its group
    /// (groups = C: depthwise). The weight is [O, C / groups, KH, KW].
    pub groups: usize,
    /// How products are summed.
    pub acc: Accumulator,
    /// The output's format, rounding and random stream.
    pub out: QuantSpec,
}

/// Every size of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels C.
    pub cin: usize,
    /// Input height H.
    pub h: usize,
    /// Input width W.
    pub w: usize,
    /// Output channels O.
    pub cout: usize,
    /// Kernel height KH.
    pub kh: usize,
    /// Kernel width KW.
    pub kw: usize,
    /// Output height OH.
    pub oh: usize,
    /// Output width OW.
    pub ow: usize,
    /// The spec's stride, padding and dilation.
    pub stride: [usize; 2],
    /// Zero padding.
    pub padding: [usize; 2],
    /// Tap spacing.
    pub dilation: [usize; 2],
    /// Channel groups (C and O are multiples of it).
    pub groups: usize,
    /// The group a GEMM view covers (each group is one GEMM of the same dimensions).
    pub group: usize,
}

fn four(s: &[usize], name: &str) -> Result<[usize; 4], GemmError> {
    match s {
        [a, b, c, d] if s.iter().all(|&x| x > 0) => Ok([*a, *b, *c, *d]),
        _ => Err(GemmError(format!(
            "{name} must be a non-empty 4-D NCHW tensor, got shape {s:?}"
        ))),
    }
}

impl Conv2dSpec {
    /// Stride 1, no padding, dilation 1, fp32 accumulation and output.
    pub fn new() -> Conv2dSpec {
        Conv2dSpec {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            acc: Accumulator::Fp32,
            out: QuantSpec::new(Format::FP32),
        }
    }

    /// The GEMM spec every pass runs with.
    pub fn gemm_spec(&self) -> GemmSpec {
        GemmSpec {
            trans_a: false,
            trans_b: false,
            acc: self.acc,
            out: self.out,
        }
    }

    fn out_size(&self, input: usize, kernel: usize, axis: usize) -> Result<usize, GemmError> {
        let (s, p, d) = (self.stride[axis], self.padding[axis], self.dilation[axis]);
        if s == 0 || d == 0 {
            return Err(GemmError("stride and dilation must be at least 1".into()));
        }
        let span = d * (kernel - 1) + 1;
        if input + 2 * p < span {
            return Err(GemmError(format!(
                "the kernel spans {span} pixels (dilation {d}), more than the padded input's {}",
                input + 2 * p
            )));
        }
        Ok((input + 2 * p - span) / s + 1)
    }

    /// The geometry of a forward pass of input `x` [N,C,H,W] with weight `w`
    /// [O,C/groups,KH,KW].
    pub fn geometry(&self, x: &[usize], w: &[usize]) -> Result<ConvGeometry, GemmError> {
        let [batch, cin, h, wd] = four(x, "the input")?;
        let [cout, wc, kh, kw] = four(w, "the weight")?;
        let groups = self.groups;
        if groups == 0 || cin % groups != 0 || cout % groups != 0 {
            return Err(GemmError(format!(
                "{groups} groups must divide both the {cin} input and the {cout} output channels"
            )));
        }
        if wc * groups != cin {
            return Err(GemmError(format!(
                "the weight has {wc} input channels a group, the input {cin} in {groups} groups"
            )));
        }
        Ok(ConvGeometry {
            batch,
            cin,
            h,
            w: wd,
            cout,
            kh,
            kw,
            oh: self.out_size(h, kh, 0)?,
            ow: self.out_size(wd, kw, 1)?,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups,
            group: 0,
        })
    }

    /// The geometry of a backward-data pass: `dy` [N,O,OH,OW], `w` [O,C/groups,KH,KW], input size (H, W).
    pub fn geometry_backward_data(
        &self,
        dy: &[usize],
        w: &[usize],
        input_hw: [usize; 2],
    ) -> Result<ConvGeometry, GemmError> {
        let [batch, o, _, _] = four(dy, "the output gradient")?;
        let [_, c, _, _] = four(w, "the weight")?;
        let c = c * self.groups;
        let g = self.geometry(&[batch, c, input_hw[0], input_hw[1]], w)?;
        if [batch, o, g.oh, g.ow] != [dy[0], dy[1], dy[2], dy[3]] || g.cout != o {
            return Err(GemmError(format!(
                "the output gradient has shape {dy:?}, the forward pass gives {:?}",
                [batch, g.cout, g.oh, g.ow]
            )));
        }
        Ok(g)
    }

    /// The geometry of a backward-weight pass: `dy` [N,O,OH,OW], `x` [N,C,H,W], kernel size (KH, KW).
    pub fn geometry_backward_weight(
        &self,
        dy: &[usize],
        x: &[usize],
        kernel: [usize; 2],
    ) -> Result<ConvGeometry, GemmError> {
        let [_, o, _, _] = four(dy, "the output gradient")?;
        let [_, c, _, _] = four(x, "the input")?;
        let c = c / self.groups.max(1);
        let g = self.geometry(x, &[o, c, kernel[0], kernel[1]])?;
        if [g.batch, o, g.oh, g.ow] != [dy[0], dy[1], dy[2], dy[3]] {
            return Err(GemmError(format!(
                "the output gradient has shape {dy:?}, the forward pass gives {:?}",
                [g.batch, o, g.oh, g.ow]
            )));
        }
        Ok(g)
    }
}

impl Default for Conv2dSpec {
    fn default() -> Conv2dSpec {
        Conv2dSpec::new()
    }
}

impl ConvGeometry {
    /// Input channels a group.
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    /// Output channels a group.
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    /// The same convolution's GEMM view of group `g`.
    pub fn for_group(&self, g: usize) -> ConvGeometry {
        ConvGeometry { group: g, ..*self }
    }

    /// `(m, n, k)` of the pass's GEMM view (of one group; every group's is the same).
    pub fn gemm_dims(&self, pass: ConvPass) -> (usize, usize, usize) {
        let taps = self.kh * self.kw;
        let (cin, cout) = (self.cin_g(), self.cout_g());
        match pass {
            ConvPass::Forward => (cout, self.batch * self.oh * self.ow, cin * taps),
            ConvPass::BackwardData => (cin, self.batch * self.h * self.w, cout * taps),
            ConvPass::BackwardWeight => (cout, cin * taps, self.batch * self.oh * self.ow),
        }
    }

    /// Checks a bias: only the forward pass takes one, with one value per output channel.
    pub fn check_bias(&self, pass: ConvPass, bias: Option<usize>) -> Result<(), GemmError> {
        match bias {
            Some(len) if pass != ConvPass::Forward || len != self.cout => Err(GemmError(format!(
                "a bias goes with the forward pass and has {} values (one per output channel), got {len} for {pass:?}",
                self.cout
            ))),
            _ => Ok(()),
        }
    }

    /// The shape the pass produces.
    pub fn out_shape(&self, pass: ConvPass) -> Vec<usize> {
        match pass {
            ConvPass::Forward => vec![self.batch, self.cout, self.oh, self.ow],
            ConvPass::BackwardData => vec![self.batch, self.cin, self.h, self.w],
            ConvPass::BackwardWeight => vec![self.cout, self.cin_g(), self.kh, self.kw],
        }
    }

    /// Flat index of X[nb, c, ih, iw] that output (oh, ow) sees through tap (kh, kw).
    pub fn input_flat(
        &self,
        nb: usize,
        c: usize,
        oh: usize,
        ow: usize,
        kh: usize,
        kw: usize,
    ) -> Option<usize> {
        let ih = (oh * self.stride[0] + kh * self.dilation[0]).checked_sub(self.padding[0])?;
        let iw = (ow * self.stride[1] + kw * self.dilation[1]).checked_sub(self.padding[1])?;
        (ih < self.h && iw < self.w).then(|| ((nb * self.cin + c) * self.h + ih) * self.w + iw)
    }

    /// Flat index of dY[nb, o, oh, ow] whose tap (kh, kw) reads input (ih, iw).
    pub fn output_flat(
        &self,
        nb: usize,
        o: usize,
        ih: usize,
        iw: usize,
        kh: usize,
        kw: usize,
    ) -> Option<usize> {
        let th = (ih + self.padding[0]).checked_sub(kh * self.dilation[0])?;
        let tw = (iw + self.padding[1]).checked_sub(kw * self.dilation[1])?;
        if th % self.stride[0] != 0 || tw % self.stride[1] != 0 {
            return None;
        }
        let (oh, ow) = (th / self.stride[0], tw / self.stride[1]);
        (oh < self.oh && ow < self.ow).then(|| ((nb * self.cout + o) * self.oh + oh) * self.ow + ow)
    }

    /// The first input and output channel of this view's group.
    fn group_base(&self) -> (usize, usize) {
        (self.group * self.cin_g(), self.group * self.cout_g())
    }

    /// Flat index in operand A of GEMM element (i, kk).
    pub fn flat_a(&self, pass: ConvPass, i: usize, kk: usize) -> usize {
        let taps = self.kh * self.kw;
        let sp = self.oh * self.ow;
        let (cin, (_, o0)) = (self.cin_g(), self.group_base());
        match pass {
            ConvPass::Forward => (o0 + i) * cin * taps + kk,
            ConvPass::BackwardData => ((o0 + kk / taps) * cin + i) * taps + kk % taps,
            ConvPass::BackwardWeight => ((kk / sp) * self.cout + o0 + i) * sp + kk % sp,
        }
    }

    /// Flat index in operand B of GEMM element (kk, j), or None where it reads zero.
    pub fn flat_b(&self, pass: ConvPass, kk: usize, j: usize) -> Option<usize> {
        let taps = self.kh * self.kw;
        let sp = self.oh * self.ow;
        let (c0, o0) = self.group_base();
        match pass {
            ConvPass::Forward => {
                let (r, p) = (kk % taps, j % sp);
                self.input_flat(
                    j / sp,
                    c0 + kk / taps,
                    p / self.ow,
                    p % self.ow,
                    r / self.kw,
                    r % self.kw,
                )
            }
            ConvPass::BackwardData => {
                let (r, hw) = (kk % taps, self.h * self.w);
                let q = j % hw;
                self.output_flat(
                    j / hw,
                    o0 + kk / taps,
                    q / self.w,
                    q % self.w,
                    r / self.kw,
                    r % self.kw,
                )
            }
            ConvPass::BackwardWeight => {
                let (r, p) = (j % taps, kk % sp);
                self.input_flat(
                    kk / sp,
                    c0 + j / taps,
                    p / self.ow,
                    p % self.ow,
                    r / self.kw,
                    r % self.kw,
                )
            }
        }
    }

    /// Flat index in the pass's output of GEMM element (i, j).
    pub fn out_index(&self, pass: ConvPass, i: usize, j: usize) -> usize {
        let (c0, o0) = self.group_base();
        match pass {
            ConvPass::Forward => {
                let sp = self.oh * self.ow;
                ((j / sp) * self.cout + o0 + i) * sp + j % sp
            }
            ConvPass::BackwardData => {
                let hw = self.h * self.w;
                ((j / hw) * self.cin + c0 + i) * hw + j % hw
            }
            ConvPass::BackwardWeight => (o0 + i) * self.cin_g() * self.kh * self.kw + j,
        }
    }

    /// The output channel of GEMM row `i` in a forward view (its bias's index).
    pub fn out_channel(&self, i: usize) -> usize {
        self.group_base().1 + i
    }
}

/// The geometry of max pooling: planes of `in_hw` pooled by non-overlapping `pool` x `pool`
/// windows (whole windows only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Number of planes (batch x channels).
    pub planes: usize,
    /// Input plane (height, width).
    pub in_hw: [usize; 2],
    /// Window size and stride.
    pub pool: usize,
}

impl Pool {
    /// Output plane (height, width).
    pub fn out_hw(&self) -> [usize; 2] {
        [self.in_hw[0] / self.pool, self.in_hw[1] / self.pool]
    }
}
