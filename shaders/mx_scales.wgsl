// Block scales from f32 values. `main` (E8M0): one invocation computes the four scale bytes
// of one word. E4M3 blocks take two passes: `block_amax` gathers each block's finite amax
// (into amax[1 + b]) and the tensor's (amax[0]); `e4m3` writes the fp32 tensor scale
// (word 0) and four blocks' bytes a word after it.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> scales_out: array<u32>;
@group(0) @binding(4) var<storage, read_write> amax: array<atomic<u32>>;

// The finite amax of elements [first, min(first + size, n)).
fn finite_amax(first: u32, size: u32) -> u32 {
    let end = min(first + size, P.n);
    var m = 0u;
    for (var i = first; i < end; i++) {
        let mag = x[i] & 0x7fffffffu;
        if (mag < 0x7f800000u) {
            m = max(m, mag);
        }
    }
    return m;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, P.groups_x);
    if (t >= P.count) {
        return;
    }
    let size = P.scaling >> 8u;
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        let first = (4u * t + b) * size;
        if (first < P.n) {
            word |= u32(mx_scale_exp(finite_amax(first, size), P.fmt.emax) + 127) << (8u * b);
        }
    }
    scales_out[t] = word;
}

@compute @workgroup_size(256)
fn block_amax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = item_index(gid, P.groups_x);
    if (b >= P.count) {
        return;
    }
    let m = finite_amax(b * (P.scaling >> 8u), P.scaling >> 8u);
    atomicStore(&amax[1u + b], m);
    atomicMax(&amax[0], m);
}

@compute @workgroup_size(256)
fn e4m3(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, P.groups_x);
    if (t >= P.count) {
        return;
    }
    let ts = e4m3_tensor_scale(atomicLoad(&amax[0]), P.fmt);
    if (t == 0u) {
        scales_out[0] = ts;
        return;
    }
    let size = P.scaling >> 8u;
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        let blk = 4u * (t - 1u) + b;
        if (blk * size < P.n) {
            word |= e4m3_block_byte(atomicLoad(&amax[1u + blk]), ts, P.fmt) << (8u * b);
        }
    }
    scales_out[t] = word;
}
