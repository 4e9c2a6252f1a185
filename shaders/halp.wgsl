// HALP and the methods it is measured against (SGD, LP-SGD, SVRG, LP-SVRG) for generalised
// linear models, in soft-float: the twin of src/reference/halp.rs. Weights are class-major
// (element e = k * cols + c). `factors` computes each batch row's gradient factors at the
// current point (least squares: a^T w - y; logistic: -y sigma(-y a^T w); softmax: p_k -
// [k = y]), one invocation per row; `full_grad` sums the factors cached at the centre over
// a run of rows into the full gradient, continuing an earlier run's sum; `step` takes one
// inner step for one weight element (the batch's rows in order) and rounds it onto the
// scaled fixed-point grid when there is one; `epoch` runs many steps in one workgroup,
// each a `factors` phase and a `step` phase between barriers (no dispatch per step).

struct HalpParams {
    cols: u32,
    outputs: u32,   // factors per row: 1, or the classes of softmax
    count: u32,
    groups_x: u32,
    start: u32,     // first position of the batch in `order` (full_grad: first row)
    len: u32,       // rows in the batch (full_grad: rows in this run)
    point: u32,     // where factors and the L2 term are taken: 0 iter, 1 centre + iter, 2 centre
    svrg: u32,      // 1: the step subtracts the centre's batch gradient and adds the full one
    first: u32,     // full_grad: 1 on the first run of rows
    last: u32,      // full_grad: 1 on the last run (scale by inv, add the L2 term)
    lr: u32,        // f32 bits
    inv: u32,       // f32 bits of 1 / rows
    l2: u32,        // f32 bits; 0 for none
    bits: u32,      // grid code bits; 0 for no grid
    scale: u32,     // f32 bits of the grid step
    base_lo: u32,   // random counter of element 0 of this step (64 bits)
    base_hi: u32,
    seed_lo: u32,
    seed_hi: u32,
    task: u32,      // 0 least squares, 1 logistic, 2 softmax
    steps: u32,     // epoch: inner steps in this dispatch
    batch: u32,     // epoch: rows per step
    order_len: u32, // epoch: rows in the order
    j0: u32,        // epoch: the first step's index within the epoch
}

@group(0) @binding(0) var<uniform> P: HalpParams;
@group(0) @binding(1) var<storage, read> x: array<u32>;       // f32 bits, rows x cols
@group(0) @binding(2) var<storage, read> y: array<u32>;       // f32 bits: target, +-1, or class
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> centre: array<u32>;
@group(0) @binding(5) var<storage, read_write> iter: array<u32>;
@group(0) @binding(6) var<storage, read_write> res: array<u32>;  // batch position x outputs
@group(0) @binding(7) var<storage, read_write> cres: array<u32>; // row x outputs, at the centre
@group(0) @binding(8) var<storage, read_write> full: array<u32>;
@group(0) @binding(9) var<storage, read_write> sat: array<atomic<u32>>;

const ONE: u32 = 0x3f800000u;
const SIGN: u32 = 0x80000000u;

// Weight e of the point the factors are taken at.
fn point_w(e: u32) -> u32 {
    if (P.point == 0u) {
        return iter[e];
    }
    if (P.point == 1u) {
        return sf_add(centre[e], iter[e]);
    }
    return centre[e];
}

// Row i times class k's weights, columns in order.
fn dot_row(i: u32, k: u32) -> u32 {
    var r = 0u;
    let w0 = k * P.cols;
    for (var c = 0u; c < P.cols; c++) {
        r = sf_add(r, sf_mul(x[i * P.cols + c], point_w(w0 + c)));
    }
    return r;
}

fn put(slot: u32, v: u32) {
    if (P.point == 2u) {
        cres[slot] = v;
    } else {
        res[slot] = v;
    }
}

fn got(slot: u32) -> u32 {
    if (P.point == 2u) {
        return cres[slot];
    }
    return res[slot];
}

@compute @workgroup_size(256)
fn factors(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, P.groups_x);
    if (t >= P.count) {
        return;
    }
    // At the centre the factors of every row are cached by row; otherwise by batch position.
    if (P.point != 2u) {
        row_factors(order[P.start + t], t * P.outputs);
    } else {
        row_factors(t, t * P.outputs);
    }
}

// Row i's factors at the point, into res (or cres at the centre) from `slot`.
fn row_factors(i: u32, slot: u32) {
    let yi = y[i];
    if (P.task == 0u) {
        put(slot, sf_add(dot_row(i, 0u), yi ^ SIGN));
        return;
    }
    if (P.task == 1u) {
        let z = sf_mul(yi, dot_row(i, 0u));
        let s = sf_div(ONE, sf_add(ONE, sf_exp(z)));
        put(slot, sf_mul(yi ^ SIGN, s));
        return;
    }
    // Softmax: the logits, their maximum, exp(z_k - max) and their sum, then p_k - [k = y].
    var m = 0u;
    for (var k = 0u; k < P.outputs; k++) {
        let z = dot_row(i, k);
        put(slot + k, z);
        if (k == 0u || order_key(z) > order_key(m)) {
            m = z;
        }
    }
    var s = 0u;
    for (var k = 0u; k < P.outputs; k++) {
        let e = sf_exp(sf_add(got(slot + k), m ^ SIGN));
        put(slot + k, e);
        s = sf_add(s, e);
    }
    let label = u32(bitcast<f32>(yi));
    for (var k = 0u; k < P.outputs; k++) {
        var p = sf_div(got(slot + k), s);
        if (k == label) {
            p = sf_add(p, ONE ^ SIGN);
        }
        put(slot + k, p);
    }
}

@compute @workgroup_size(256)
fn full_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = item_index(gid, P.groups_x);
    if (e >= P.count) {
        return;
    }
    let k = e / P.cols;
    let c = e % P.cols;
    var g = 0u;
    if (P.first == 0u) {
        g = full[e];
    }
    for (var t = 0u; t < P.len; t++) {
        let i = P.start + t;
        g = sf_add(g, sf_mul(x[i * P.cols + c], cres[i * P.outputs + k]));
    }
    if (P.last == 1u) {
        g = sf_mul(g, P.inv);
        if (P.l2 != 0u) {
            g = sf_add(g, sf_mul(P.l2, centre[e]));
        }
    }
    full[e] = g;
}

// The f32 bits of integer n (|n| < 2^24: exact).
fn int_bits(n: i32) -> u32 {
    return bitcast<u32>(f32(n));
}

// ScaledFixed::round of src/scaled_fixed.rs: t = v / delta; beyond +-max the grid's end
// (saturated when past it; NaN gives 0, saturated); else floor(t) + 1 with probability
// frac(t), frac(t) 2^24 compared with the top 24 bits of `rand`. Returns (code, saturated).
fn round_grid(v: u32, rand: u32) -> vec2<i32> {
    let t = sf_div(v, P.scale);
    let maxc = (1 << (P.bits - 1u)) - 1;
    let mb = int_bits(maxc);
    if (sf_is_nan(t)) {
        return vec2<i32>(0, 1);
    }
    let mag = t & 0x7fffffffu;
    let neg = (t >> 31u) == 1u;
    if (mag >= mb) {
        return vec2<i32>(select(maxc, -maxc, neg), select(0, 1, mag > mb));
    }
    if (mag == 0u) {
        return vec2<i32>(0, 0);
    }
    // floor(t), exactly: |t| < 2^23, so its exponent is below the significand's last bit.
    let sh = u32(-f32_exp2(mag));
    let sig = f32_sig(mag);
    var ip = 0u;
    var frac_bits = sig;
    if (sh < 32u) {
        ip = sig >> sh;
        frac_bits = sig & low_mask(sh);
    }
    var f = i32(ip);
    if (neg) {
        f = -f - select(0, 1, frac_bits != 0u);
    }
    let frac = sf_add(t, int_bits(f) ^ SIGN);
    // frac >= 0, so its bits order as its value; both sides are f32 values.
    let up = sf_mul(frac, 0x4b800000u) > int_bits(i32(rand >> 8u));
    return vec2<i32>(f + select(0, 1, up), 0);
}

@compute @workgroup_size(256)
fn step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = item_index(gid, P.groups_x);
    if (e >= P.count) {
        return;
    }
    step_element(e, P.start, P.len, P.inv, vec2<u32>(P.base_lo, P.base_hi));
}

// One inner step of weight element e over the `len` rows of the order from `start`; `base`
// is the random counter (low, high) of element 0.
fn step_element(e: u32, start: u32, len: u32, inv: u32, base: vec2<u32>) {
    let k = e / P.cols;
    let c = e % P.cols;
    var gi = 0u;
    var gc = 0u;
    for (var t = 0u; t < len; t++) {
        let i = order[start + t];
        let a = x[i * P.cols + c];
        gi = sf_add(gi, sf_mul(a, res[t * P.outputs + k]));
        if (P.svrg == 1u) {
            gc = sf_add(gc, sf_mul(a, cres[i * P.outputs + k]));
        }
    }
    gi = sf_mul(gi, inv);
    if (P.l2 != 0u) {
        gi = sf_add(gi, sf_mul(P.l2, point_w(e)));
    }
    var v = gi;
    if (P.svrg == 1u) {
        gc = sf_mul(gc, inv);
        if (P.l2 != 0u) {
            gc = sf_add(gc, sf_mul(P.l2, centre[e]));
        }
        v = sf_add(sf_add(gi, gc ^ SIGN), full[e]);
    }
    var w = sf_add(iter[e], sf_mul(P.lr, v) ^ SIGN);
    if (P.bits != 0u) {
        // Random word of element base + e (64-bit counter), as src/rng.rs's random_bits.
        let lo = base.x + e;
        let hi = base.y + select(0u, 1u, lo < e);
        let block = philox4x32_10(
            vec4<u32>((lo >> 2u) | (hi << 30u), hi >> 2u, 0x4a1fu, 0u),
            vec2<u32>(P.seed_lo, P.seed_hi),
        );
        let r = round_grid(w, block[lo & 3u]);
        w = sf_mul(int_bits(r.x), P.scale);
        if (r.y == 1) {
            atomicAdd(&sat[0], 1u);
        }
    }
    iter[e] = w;
}

// Invocations of the epoch kernel's workgroup, set per adapter class when the pipeline is
// made: 8 on a CPU adapter (one SIMD group, so a barrier costs nothing), 64 on a GPU.
override EPOCH_WG: u32 = 64u;

// `steps` inner steps from step j0 of the epoch, in one workgroup of EPOCH_WG invocations:
// each step's factors (a row per invocation), a barrier, its weight elements (strided over
// the invocations), a barrier. Step j's random counter starts at (base + j0 + j) * weights.
@compute @workgroup_size(EPOCH_WG)
fn epoch(@builtin(local_invocation_index) lid: u32) {
    let batches = (P.order_len + P.batch - 1u) / P.batch;
    let weights = P.cols * P.outputs;
    for (var j = 0u; j < P.steps; j++) {
        let first = ((P.j0 + j) % batches) * P.batch;
        let len = min(P.batch, P.order_len - first);
        for (var t = lid; t < len; t += EPOCH_WG) {
            row_factors(order[first + t], t * P.outputs);
        }
        storageBarrier();
        workgroupBarrier();
        let inv = sf_div(ONE, int_bits(i32(len)));
        // (step0 + j0 + j) * weights in 64 bits.
        let n_lo = P.base_lo + P.j0 + j;
        let n_hi = P.base_hi + select(0u, 1u, n_lo < P.base_lo);
        let prod = mulhilo(n_lo, weights);
        let base = vec2<u32>(prod.y, prod.x + n_hi * weights);
        for (var e = lid; e < weights; e += EPOCH_WG) {
            step_element(e, first, len, inv, base);
        }
        storageBarrier();
        workgroupBarrier();
    }
}
