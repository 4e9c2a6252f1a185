// Convolution (NCHW) addressing for the GEMM kernels: each pass is a GEMM over virtual
// operands (implicit im2col). Mirrors src/gpu/params.rs ConvParams and src/conv.rs.
//   pass 0, forward:         Y[n,o,oh,ow]  = sum_(c,kh,kw)  W[o,c,kh,kw] X[n,c,ih,iw]
//   pass 1, backward data:   dX[n,c,h,w]   = sum_(o,kh,kw)  W[o,c,kh,kw] dY[n,o,oh,ow]
//   pass 2, backward weight: dW[o,c,kh,kw] = sum_(n,oh,ow)  dY[n,o,oh,ow] X[n,c,ih,iw]
//   pass 3, tap products:    T[(c,kh,kw), (n,oh,ow)] = sum_o W[o,c,kh,kw] dY[n0+n,o,oh,ow]
//     for images n0 = G.img0 onwards (G.batch of them), stored row-major m x n; conv_taps
//     then adds each dX value's taps (src/ops/conv_taps.rs).
// with ih = oh*stride - pad + kh*dilation (likewise iw); out-of-range taps read zero.
// Grouped: each dispatch is group G.group's view, its channels offset by the group's first
// (c0 input, o0 output); W is [O, C / groups, KH, KW]; G.cin and G.cout count all groups.

struct ConvParams {
    fa: Fmt,
    fb: Fmt,
    facc: Fmt,
    m: u32,
    n: u32,
    k: u32,
    conv_pass: u32,
    a_scaling: u32,
    b_scaling: u32,
    mode: u32,
    chunk: u32,
    has_bias: u32,
    groups_x: u32,
    count: u32,
    batch: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    splits: u32,
    k_split: u32,
    k_begin: u32,   // per-element kernels: the first product of this pass
    k_end: u32,     // one past its last
    groups: u32,    // channel groups: each dispatch computes one group's GEMM view
    group: u32,     // this dispatch's group
    blk: PanelBlock, // panel kernels: the block this dispatch covers (operands.wgsl)
    // pass 3: the first image of this chunk (after a struct, a uniform's member starts at a
    // multiple of 16 bytes: Rust's ConvParams pads before it)
    @align(16) img0: u32,
}

@group(0) @binding(0) var<uniform> G: ConvParams;

// The geometry again as pipeline constants (src/gpu/params.rs ConvParams::constants): with
// CV set, the pipeline is specialised to one layer's shape, so its divisions are by
// constants, which compilers turn into multiplications.
override CV: bool = false;
override CV_CIN: u32 = 1u;
override CV_CONV_PASS: u32 = 1u;
override CV_COUT: u32 = 1u;
override CV_DIL_H: u32 = 1u;
override CV_DIL_W: u32 = 1u;
override CV_GROUPS: u32 = 1u;
override CV_H: u32 = 1u;
override CV_K: u32 = 1u;
override CV_KH: u32 = 1u;
override CV_KW: u32 = 1u;
override CV_N: u32 = 1u;
override CV_OH: u32 = 1u;
override CV_OW: u32 = 1u;
override CV_PAD_H: u32 = 1u;
override CV_PAD_W: u32 = 1u;
override CV_STRIDE_H: u32 = 1u;
override CV_STRIDE_W: u32 = 1u;
override CV_W: u32 = 1u;
fn cv_cin() -> u32 {
    if (CV) {
        return CV_CIN;
    }
    return G.cin;
}
fn cv_conv_pass() -> u32 {
    if (CV) {
        return CV_CONV_PASS;
    }
    return G.conv_pass;
}
fn cv_cout() -> u32 {
    if (CV) {
        return CV_COUT;
    }
    return G.cout;
}
fn cv_dil_h() -> u32 {
    if (CV) {
        return CV_DIL_H;
    }
    return G.dil_h;
}
fn cv_dil_w() -> u32 {
    if (CV) {
        return CV_DIL_W;
    }
    return G.dil_w;
}
fn cv_groups() -> u32 {
    if (CV) {
        return CV_GROUPS;
    }
    return G.groups;
}
fn cv_h() -> u32 {
    if (CV) {
        return CV_H;
    }
    return G.h;
}
fn cv_k() -> u32 {
    if (CV) {
        return CV_K;
    }
    return G.k;
}
fn cv_kh() -> u32 {
    if (CV) {
        return CV_KH;
    }
    return G.kh;
}
fn cv_kw() -> u32 {
    if (CV) {
        return CV_KW;
    }
    return G.kw;
}
fn cv_n() -> u32 {
    if (CV) {
        return CV_N;
    }
    return G.n;
}
fn cv_oh() -> u32 {
    if (CV) {
        return CV_OH;
    }
    return G.oh;
}
fn cv_ow() -> u32 {
    if (CV) {
        return CV_OW;
    }
    return G.ow;
}
fn cv_pad_h() -> u32 {
    if (CV) {
        return CV_PAD_H;
    }
    return G.pad_h;
}
fn cv_pad_w() -> u32 {
    if (CV) {
        return CV_PAD_W;
    }
    return G.pad_w;
}
fn cv_stride_h() -> u32 {
    if (CV) {
        return CV_STRIDE_H;
    }
    return G.stride_h;
}
fn cv_stride_w() -> u32 {
    if (CV) {
        return CV_STRIDE_W;
    }
    return G.stride_w;
}
fn cv_w() -> u32 {
    if (CV) {
        return CV_W;
    }
    return G.w;
}

// Flat index of X[nb, c, ih, iw] seen by output (oh, ow) through tap (kh, kw), or NONE.
fn input_flat(nb: u32, c: u32, oh: u32, ow: u32, kh: u32, kw: u32) -> u32 {
    let ih = i32(oh * cv_stride_h() + kh * cv_dil_h()) - i32(cv_pad_h());
    let iw = i32(ow * cv_stride_w() + kw * cv_dil_w()) - i32(cv_pad_w());
    if (ih < 0 || iw < 0 || ih >= i32(cv_h()) || iw >= i32(cv_w())) {
        return NONE;
    }
    return ((nb * cv_cin() + c) * cv_h() + u32(ih)) * cv_w() + u32(iw);
}

// Flat index of dY[nb, o, oh, ow] whose tap (kh, kw) reads input (ih, iw), or NONE.
fn output_flat(nb: u32, o: u32, ih: u32, iw: u32, kh: u32, kw: u32) -> u32 {
    let th = i32(ih + cv_pad_h()) - i32(kh * cv_dil_h());
    let tw = i32(iw + cv_pad_w()) - i32(kw * cv_dil_w());
    if (th < 0 || tw < 0 || u32(th) % cv_stride_h() != 0u || u32(tw) % cv_stride_w() != 0u) {
        return NONE;
    }
    let oh = u32(th) / cv_stride_h();
    let ow = u32(tw) / cv_stride_w();
    if (oh >= cv_oh() || ow >= cv_ow()) {
        return NONE;
    }
    return ((nb * cv_cout() + o) * cv_oh() + oh) * cv_ow() + ow;
}

fn cin_g() -> u32 {
    return cv_cin() / cv_groups();
}

fn c0() -> u32 {
    return G.group * cin_g();
}

fn o0() -> u32 {
    return G.group * (cv_cout() / cv_groups());
}

fn flat_a(i: u32, kk: u32) -> u32 {
    let taps = cv_kh() * cv_kw();
    switch cv_conv_pass() {
        case 0u: {
            return (o0() + i) * cv_k() + kk;
        }
        case 1u: {
            return ((o0() + kk / taps) * cin_g() + i) * taps + kk % taps;
        }
        case 3u: {
            return (o0() + kk) * cin_g() * taps + i;
        }
        default: {
            let sp = cv_oh() * cv_ow();
            return ((kk / sp) * cv_cout() + o0() + i) * sp + kk % sp;
        }
    }
}

fn flat_b(kk: u32, j: u32) -> u32 {
    let taps = cv_kh() * cv_kw();
    let sp = cv_oh() * cv_ow();
    switch cv_conv_pass() {
        case 0u: {
            let r = kk % taps;
            let p = j % sp;
            return input_flat(j / sp, c0() + kk / taps, p / cv_ow(), p % cv_ow(), r / cv_kw(), r % cv_kw());
        }
        case 1u: {
            let r = kk % taps;
            let hw = cv_h() * cv_w();
            let q = j % hw;
            return output_flat(j / hw, o0() + kk / taps, q / cv_w(), q % cv_w(), r / cv_kw(), r % cv_kw());
        }
        case 3u: {
            return ((G.img0 + j / sp) * cv_cout() + o0() + kk) * sp + j % sp;
        }
        default: {
            let r = j % taps;
            let p = kk % sp;
            return input_flat(kk / sp, c0() + j / taps, p / cv_ow(), p % cv_ow(), r / cv_kw(), r % cv_kw());
        }
    }
}

fn value_a(i: u32, kk: u32) -> u32 {
    let f = flat_a(i, kk);
    return decode_scaled(fmt_a(), code_a(f), scale_a(f));
}

fn value_b(kk: u32, j: u32) -> u32 {
    let f = flat_b(kk, j);
    if (f == NONE) {
        return 0u;
    }
    return decode_scaled(fmt_b(), code_b(f), scale_b(f));
}

// Four values along K, for the tiled kernel's grouped staging. Convolution views gather
// their operands, so src/ops/conv.rs always stages them value by value (VEC_A = VEC_B = 0).
fn group_a(i: u32, kk: u32) -> vec4<u32> {
    return vec4<u32>(value_a(i, kk), value_a(i, kk + 1u), value_a(i, kk + 2u), value_a(i, kk + 3u));
}

fn group_b(kk: u32, j: u32) -> vec4<u32> {
    return vec4<u32>(value_b(kk, j), value_b(kk + 1u, j), value_b(kk + 2u, j), value_b(kk + 3u, j));
}

fn int_a(i: u32, kk: u32) -> i32 {
    return fixed_int(fmt_a(), code_a(flat_a(i, kk)));
}

fn int_b(kk: u32, j: u32) -> i32 {
    let f = flat_b(kk, j);
    if (f == NONE) {
        return 0;
    }
    return fixed_int(fmt_b(), code_b(f));
}

fn out_index(i: u32, j: u32) -> u32 {
    switch cv_conv_pass() {
        case 0u: {
            let sp = cv_oh() * cv_ow();
            return ((j / sp) * cv_cout() + o0() + i) * sp + j % sp;
        }
        case 1u: {
            let hw = cv_h() * cv_w();
            return ((j / hw) * cv_cin() + c0() + i) * hw + j % hw;
        }
        case 3u: {
            return i * cv_n() + j;
        }
        default: {
            return (o0() + i) * cv_n() + j;
        }
    }
}

// The forward pass's bias is per output channel: GEMM row i of the group.
fn bias_at(i: u32, j: u32) -> u32 {
    return bias[o0() + i];
}
