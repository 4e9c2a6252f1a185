// f32 -> format -> f32, four elements per invocation (one Philox call covers them).

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = item_index(gid, P.groups_x);
    var st = vec4<u32>(0u);
    if (j < P.count) {
        var rnd = vec4<u32>(0u);
        if (P.mode == 3u) {
            rnd = random_block4(P.seed_lo, P.seed_hi, P.stream, j);
        }
        for (var t = 0u; t < 4u; t++) {
            let i = 4u * j + t;
            if (i < P.n) {
                let se = scale_of(i);
                let v = x[i];
                let r = round_scaled(P.fmt, v, se, P.mode, P.sr_bits, P.saturate != 0u, rnd[t]);
                out[i] = decode_scaled(P.fmt, r.x, se);
                note(&st, r.y, v);
            }
        }
    }
    flush_stats(st, lid);
}
