// Round on store: a fused kernel's output element i, computed as f32 bits, rounded into the
// output's format with the same random word the quantize kernel would draw for it (so the
// codes are the same bits), its code ORed into the packed words (which the caller cleared:
// elements that share a word come from different invocations), its exceptions and |x|
// added to the output's counts. A raw output takes the f32 bits as they are (phase 1) or adds
// them, in soft-float, to the f32 word there (phase 3: a pending gradient). With IO.out.add
// an f32 term (a residual shortcut's gradient) is added to each value first, in soft-float.
// A scaled output is written in two dispatches of the same kernel: phase 2 only gathers the
// amax its scales need (per tensor: |x| into the counts' amax word; blocks: each block's
// finite amax into out_amax), then out_scales.wgsl computes the scales, then phase 0 rounds with them.

// out_words (binding 25) and out_word_store/load/or are written by the shader assembly:
// plain stores where each element owns its word, atomics where codes share words.
@group(0) @binding(26) var<storage, read_write> out_stats: array<atomic<u32>, 4>;
@group(0) @binding(27) var<storage, read> out_scales: array<u32>;
@group(0) @binding(28) var<storage, read_write> out_amax: array<atomic<u32>>;
@group(0) @binding(29) var<storage, read> out_addend: array<u32>;

// The amax words are raised with a load first, so that most elements write nothing.
fn store_out(i: u32, value: u32) {
    let f = out_fmt();
    var v = value;
    if (f.add != 0u) {
        v = sf_add(v, out_addend[i]);
    }
    if (f.phase == 1u) {
        out_word_store(i, v);
        return;
    }
    if (f.phase == 3u) {
        // Each element has one invocation: the load and store do not race.
        out_word_store(i, sf_add(out_word_load(i), v));
        return;
    }
    let mag = v & 0x7fffffffu;
    if (f.phase == 2u) {
        let kind = f.scaling & 15u;
        if (kind >= 2u) {
            // Block formats gather each block's finite amax; E4M3 blocks also the tensor's,
            // in word 0 before the blocks'.
            let b = i / (f.scaling >> 8u) + select(0u, 1u, kind == 3u);
            if (mag < 0x7f800000u && mag > atomicLoad(&out_amax[b])) {
                atomicMax(&out_amax[b], mag);
                if (kind == 3u && mag > atomicLoad(&out_amax[0])) {
                    atomicMax(&out_amax[0], mag);
                }
            }
        } else if (mag <= 0x7f800000u && mag > atomicLoad(&out_stats[3])) {
            atomicMax(&out_stats[3], mag);
        }
        return;
    }
    var sw = 0u;
    var tw = 0u;
    if (f.scaling != 0u) {
        sw = out_scales[scale_word_index(f.scaling, i)];
        tw = out_scales[0];
    }
    var rand = 0u;
    if (f.mode == 3u) {
        let r4 = random_block4(f.seed_lo, f.seed_hi, f.stream, i >> 2u);
        rand = r4[i & 3u];
    }
    let r = round_scaled(f.fmt, v, element_scale(f.scaling, sw, tw, i), f.mode, f.sr_bits, f.saturate != 0u, rand);
    let w = f.fmt.bits;
    if (w == 32u) {
        out_word_store(i, r.x);
    } else if (r.x != 0u) {
        let start = i * w;
        let wi = start / 32u;
        let off = start % 32u;
        out_word_or(wi, r.x << off);
        if (off + w > 32u) {
            out_word_or(wi + 1u, r.x >> (32u - off));
        }
    }
    if (r.y != 0u) {
        for (var c = 0u; c < 3u; c++) {
            if (((r.y >> c) & 1u) != 0u) {
                atomicAdd(&out_stats[c], 1u);
            }
        }
    }
    if (mag <= 0x7f800000u && mag > atomicLoad(&out_stats[3])) {
        atomicMax(&out_stats[3], mag);
    }
}

// `store_out` of elements i to i + 3 (i a multiple of 4, i + 3 within the tensor): plain f32
// words and pending gradients as one 16-byte vector; rounded into a format without scales
// whose four codes fill half a word (4 bits), one word (8 bits), two (16 bits) or each own
// one (32 bits), four roundings, one store (or OR) and the counts added once; else element
// by element.
fn store_out4(i: u32, value: vec4<u32>) {
    let f = out_fmt();
    let q = i / 4u;
    if (f.add == 0u && f.phase == 1u) {
        out_quad_store(q, value);
        return;
    }
    if (f.add == 0u && f.phase == 3u) {
        let o = out_quad_load(q);
        out_quad_store(q, vec4(sf_add(o.x, value.x), sf_add(o.y, value.y), sf_add(o.z, value.z), sf_add(o.w, value.w)));
        return;
    }
    let w = f.fmt.bits;
    // Loops over the four (not four inlined copies: each is another rounding to compile).
    if (f.add != 0u || f.phase != 0u || f.scaling != 0u || (w != 32u && w != 16u && w != 8u && w != 4u)) {
        for (var t = 0u; t < 4u; t++) {
            store_out(i + t, value[t]);
        }
        return;
    }
    let s = element_scale(0u, 0u, 0u, i);
    var rand = vec4(0u);
    if (f.mode == 3u) {
        rand = random_block4(f.seed_lo, f.seed_hi, f.stream, q);
    }
    var codes = vec4(0u);
    var flags = vec4(0u);
    for (var t = 0u; t < 4u; t++) {
        let r = round_scaled(f.fmt, value[t], s, f.mode, f.sr_bits, f.saturate != 0u, rand[t]);
        codes[t] = r.x;
        flags[t] = r.y;
    }
    if (w == 32u) {
        out_quad_store(q, codes);
    } else if (w == 16u) {
        out_word_store(2u * q, codes.x | (codes.y << 16u));
        out_word_store(2u * q + 1u, codes.z | (codes.w << 16u));
    } else if (w == 8u) {
        let word = codes.x | (codes.y << 8u) | (codes.z << 16u) | (codes.w << 24u);
        out_word_store(q, word);
    } else {
        // Half a word, the other half another invocation's: ORed in (the words were cleared).
        let half = codes.x | (codes.y << 4u) | (codes.z << 8u) | (codes.w << 12u);
        if (half != 0u) {
            out_word_or(q / 2u, half << (16u * (q % 2u)));
        }
    }
    if (any(flags != vec4(0u))) {
        for (var c = 0u; c < 3u; c++) {
            let b = (flags >> vec4(c)) & vec4(1u);
            let n = b.x + b.y + b.z + b.w;
            if (n != 0u) {
                atomicAdd(&out_stats[c], n);
            }
        }
    }
    // |x| of the four, NaNs left out (0 when all are NaN: nothing is raised).
    let mags = value & vec4(0x7fffffffu);
    let finite = select(vec4(0u), mags, mags <= vec4(0x7f800000u));
    let mag = max(max(finite.x, finite.y), max(finite.z, finite.w));
    if (mag > atomicLoad(&out_stats[3])) {
        atomicMax(&out_stats[3], mag);
    }
}
