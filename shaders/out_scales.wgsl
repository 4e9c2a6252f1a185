// The scales of an output rounded as it is stored (see packed_store), from the amax its
// kernel's first phase gathered: `mx` packs four blocks' E8M0 bytes into each word (one
// invocation a word, as mx_scales.wgsl does from f32 values); `e4m3` writes the fp32 tensor
// scale (word 0) and four blocks' E4M3 bytes a word after it; `tensor` writes the
// per-tensor exponent (as amax.wgsl's tensor_scale does).

@group(0) @binding(26) var<storage, read_write> out_stats: array<u32, 4>;
@group(0) @binding(27) var<storage, read_write> scales_out: array<u32>;
@group(0) @binding(28) var<storage, read> block_amax: array<u32>;

@compute @workgroup_size(256)
fn mx(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, E.groups_x);
    if (t >= E.count) {
        return;
    }
    let size = IO.out.scaling >> 8u;
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        if ((4u * t + b) * size < E.n) {
            word |= u32(mx_scale_exp(block_amax[4u * t + b], IO.out.fmt.emax) + 127) << (8u * b);
        }
    }
    scales_out[t] = word;
}

// block_amax holds the tensor's finite amax in word 0, then each block's.
@compute @workgroup_size(256)
fn e4m3(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, E.groups_x);
    if (t >= E.count) {
        return;
    }
    let ts = e4m3_tensor_scale(block_amax[0], IO.out.fmt);
    if (t == 0u) {
        scales_out[0] = ts;
        return;
    }
    let size = IO.out.scaling >> 8u;
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        let blk = 4u * (t - 1u) + b;
        if (blk * size < E.n) {
            word |= e4m3_block_byte(block_amax[1u + blk], ts, IO.out.fmt) << (8u * b);
        }
    }
    scales_out[t] = word;
}

@compute @workgroup_size(1)
fn tensor() {
    if (E.n == 0u) {
        return;
    }
    scales_out[0] = bitcast<u32>(tensor_scale_exp(out_stats[3], IO.out.fmt));
}
