// f32 -> packed codes. One invocation writes one output word, rounding every element
// that overlaps it; an element is counted by the word its first bit lies in.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> words: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = item_index(gid, P.groups_x);
    var st = vec4<u32>(0u);
    if (j < P.count) {
        let w = P.fmt.bits;
        let base = j * 32u;
        let first = base / w;
        let last = min((base + 31u) / w, P.n - 1u);
        var word = 0u;
        var block = NONE;
        var rnd = vec4<u32>(0u);
        for (var i = first; i <= last; i++) {
            var rand = 0u;
            if (P.mode == 3u) {
                if ((i >> 2u) != block) {
                    block = i >> 2u;
                    rnd = random_block4(P.seed_lo, P.seed_hi, P.stream, block);
                }
                rand = rnd[i & 3u];
            }
            let v = x[i];
            let r = round_scaled(P.fmt, v, scale_of(i), P.mode, P.sr_bits, P.saturate != 0u, rand);
            let start = i * w;
            if (start >= base) {
                word |= r.x << (start - base);
                note(&st, r.y, v);
            } else {
                word |= r.x >> (base - start);
            }
        }
        words[j] = word;
    }
    flush_stats(st, lid);
}
