// Round on store: a fused kernel's output element i, computed as f32 bits, rounded into the
// output's format with the same random word the quantize kernel would draw for it (so the
// codes are the same bits), its code ORed into the packed words (which the caller cleared:
// elements that share a word come from different invocations), its exceptions and |x|
// added to the output's counts. A raw output takes the f32 bits as they are.

@group(0) @binding(25) var<storage, read_write> out_words: array<atomic<u32>>;
@group(0) @binding(26) var<storage, read_write> out_stats: array<atomic<u32>, 4>;

fn store_out(i: u32, v: u32) {
    let f = IO.out;
    if (f.raw != 0u) {
        atomicStore(&out_words[i], v);
        return;
    }
    var rand = 0u;
    if (f.mode == 3u) {
        let r4 = random_block4(f.seed_lo, f.seed_hi, f.stream, i >> 2u);
        rand = r4[i & 3u];
    }
    let r = round_element(f.fmt, v, 0, f.mode, f.sr_bits, f.saturate != 0u, rand);
    let w = f.fmt.bits;
    if (w == 32u) {
        atomicStore(&out_words[i], r.x);
    } else if (r.x != 0u) {
        let start = i * w;
        let wi = start / 32u;
        let off = start % 32u;
        atomicOr(&out_words[wi], r.x << off);
        if (off + w > 32u) {
            atomicOr(&out_words[wi + 1u], r.x >> (32u - off));
        }
    }
    if (r.y != 0u) {
        for (var c = 0u; c < 3u; c++) {
            if (((r.y >> c) & 1u) != 0u) {
                atomicAdd(&out_stats[c], 1u);
            }
        }
    }
    // The largest finite |x|: a load first, so that most elements need no atomic write.
    let mag = v & 0x7fffffffu;
    if (mag <= 0x7f800000u && mag > atomicLoad(&out_stats[3])) {
        atomicMax(&out_stats[3], mag);
    }
}
