// `thin`'s sums for a stride-1 convolution without dilation whose view's rows are a
// multiple of 4 wide (SEGMENTS, src/gpu/params.rs SplitParams::segments), its forward pass
// or its backward data pass: an invocation's four columns are four neighbours of one row
// (of the output, or of dX), so for each channel and kernel row they read 3 + KW
// neighbouring words of one row of B's tensor (X, or dY), each loaded once here (a CPU
// adapter loads a lane-varying address at a time), instead of 4 KW gathers. The products
// run in K's order (channel, kernel row, kernel column), as `thin` sums them: the same
// sums. A lane past the view (j >= n) loads nothing and still takes part in the subgroup's
// broadcasts of A.

// Word iw of a row of B's tensor `width` words wide whose word 0 has flat index `row` (iw
// may be negative: the sum wraps to the right index wherever iw is inside the row), as
// f32; zero outside the row or where `ok` is false.
fn segment_word(ok: bool, row: u32, iw: i32, width: u32) -> f32 {
    if (ok && iw >= 0 && iw < i32(width)) {
        let f = row + u32(iw);
        return bitcast<f32>(decode_scaled(fmt_b(), code_b(f), scale_b(f)));
    }
    return 0.0;
}

// Four B values of one tap: words t to t + 3 of a segment, in the view's column order.
// Forward, column j reads word iw0 + j + kw; backward data, word e + j - kw, so the segment
// runs down from s0 = word e + 3 and a tap's four words are reversed.
fn segment_vec(v: vec4<f32>) -> vec4<f32> {
    return select(v, v.wzyx, cv_conv_pass() == 1u);
}

// The sums after the KW products of one channel and kernel row (K from k, A's rows from
// panel vector ia): the segment's words s_t = word `at + dir t` of the row at `row` (`width` wide), tap kw reading words
// kw to kw + 3.
fn segment_taps(c_in: Tile, k: u32, ia: u32, q: u32, ok: bool, row: u32, at: i32, width: u32) -> Tile {
    var c = c_in;
    let d = select(1, -1, cv_conv_pass() == 1u);
    let s0 = segment_word(ok, row, at, width);
    let s1 = segment_word(ok, row, at + d, width);
    let s2 = segment_word(ok, row, at + 2 * d, width);
    let s3 = segment_word(ok, row, at + 3 * d, width);
    c = rank1_tall_at(c, k, ia, q, segment_vec(vec4(s0, s1, s2, s3)));
    if (cv_kw() > 1u) {
        let s4 = segment_word(ok, row, at + 4 * d, width);
        c = rank1_tall_at(c, k + 1u, ia, q, segment_vec(vec4(s1, s2, s3, s4)));
        if (cv_kw() > 2u) {
            let s5 = segment_word(ok, row, at + 5 * d, width);
            c = rank1_tall_at(c, k + 2u, ia, q, segment_vec(vec4(s2, s3, s4, s5)));
            if (cv_kw() > 3u) {
                let s6 = segment_word(ok, row, at + 6 * d, width);
                c = rank1_tall_at(c, k + 3u, ia, q, segment_vec(vec4(s3, s4, s5, s6)));
                if (cv_kw() > 4u) {
                    let s7 = segment_word(ok, row, at + 7 * d, width);
                    c = rank1_tall_at(c, k + 4u, ia, q, segment_vec(vec4(s4, s5, s6, s7)));
                }
            }
        }
    }
    return c;
}

fn segment_sums(j: u32, q: u32, ia: u32) -> Tile {
    if (cv_conv_pass() == 1u) {
        return segment_sums_back(j, q, ia);
    }
    var c = Tile();
    let live = j < G.n;
    let sp = cv_oh() * cv_ow();
    let p = j % sp;
    let oh = p / cv_ow();
    let iw0 = i32(p % cv_ow()) - i32(cv_pad_w());
    let plane = cv_h() * cv_w();
    var row0 = ((j / sp) * cv_cin() + c0()) * plane;
    var k = 0u;
    for (var ch = 0u; ch < cin_g(); ch++) {
        for (var kh = 0u; kh < cv_kh(); kh++) {
            let ih = i32(oh + kh) - i32(cv_pad_h());
            let ok = live && ih >= 0 && ih < i32(cv_h());
            c = segment_taps(c, k, ia, q, ok, row0 + u32(ih) * cv_w(), iw0, cv_w());
            k += cv_kw();
        }
        row0 += plane;
    }
    return c;
}

// Backward data: column j is dX's (image, ih, iw), K the group's output channels' taps; tap
// (kh, kw) reads dY at (ih + pad_h - kh, iw + pad_w - kw).
fn segment_sums_back(j: u32, q: u32, ia: u32) -> Tile {
    var c = Tile();
    let live = j < G.n;
    let hw = cv_h() * cv_w();
    let p = j % hw;
    let ih = p / cv_w();
    let top = i32(p % cv_w() + cv_pad_w()) + 3;
    let plane = cv_oh() * cv_ow();
    var row0 = ((j / hw) * cv_cout() + o0()) * plane;
    var k = 0u;
    for (var o = 0u; o < cv_cout() / cv_groups(); o++) {
        for (var kh = 0u; kh < cv_kh(); kh++) {
            let oh = i32(ih + cv_pad_h()) - i32(kh);
            let ok = live && oh >= 0 && oh < i32(cv_oh());
            c = segment_taps(c, k, ia, q, ok, row0 + u32(oh) * cv_ow(), top, cv_ow());
            k += cv_kw();
        }
        row0 += plane;
    }
    return c;
}

// A's value in row i of a weight gradient's view whose row 0 is dY's word f, as f32; zero
// past the view's rows.
fn window_a(i: u32, f: u32) -> f32 {
    if (i < G.m) {
        let fi = f + i * cv_oh() * cv_ow();
        return bitcast<f32>(decode_scaled(fmt_a(), code_a(fi), scale_a(fi)));
    }
    return 0.0;
}

// `thin`'s sums for a weight gradient of at most 8 rows, stride 1 and no dilation along the
// width, kernel rows of at most 8 taps (WINDOW, src/gpu/params.rs SplitParams::window_rows),
// stored: invocation g takes kernel row g (input channel g / KH of the group, row g % KH),
// its taps the tile's columns. Over the slice's products (output pixels, in order), the
// taps of one output row read neighbouring input words: a window of eight, moved one word a
// product, loads one input word a product instead of KW gathers. Where subgroups of 8 can
// share values (BROADCAST, workgroups whole subgroups) lane q decodes A's row q from dY and
// shares it, so the view needs no A panel either. The products and their
// order are `thin`'s (or `main`'s over a packed panel): the same sums. The window's words
// past the kernel's width are summed into columns never stored.
fn window_tile(g: u32, q: u32, k_begin: u32, k_end: u32, slice: u32) {
    var c = Tile();
    let spread = BROADCAST && WX % 8u == 0u;
    let live = g < cin_g() * cv_kh();
    let ch = c0() + g / cv_kh();
    let kh = g % cv_kh();
    let sp = cv_oh() * cv_ow();
    let plane = cv_h() * cv_w();
    var k = k_begin;
    loop {
        if (k >= k_end) {
            break;
        }
        let kk = G.blk.k0 + k;
        let p = kk % sp;
        let oh = p / cv_ow();
        let ow = p % cv_ow();
        let run = min(cv_ow() - ow, k_end - k);
        let ih = i32(oh * cv_stride_h() + kh * cv_dil_h()) - i32(cv_pad_h());
        let ok = live && ih >= 0 && ih < i32(cv_h());
        let row = ((kk / sp) * cv_cin() + ch) * plane + u32(ih) * cv_w();
        let iw = i32(ow) - i32(cv_pad_w());
        // dY's word of this output row in the view's row 0 (row i's is i OH OW further).
        let fa = ((kk / sp) * cv_cout() + o0()) * sp + p;
        var b0 = vec4(segment_word(ok, row, iw, cv_w()), segment_word(ok, row, iw + 1, cv_w()), segment_word(ok, row, iw + 2, cv_w()), segment_word(ok, row, iw + 3, cv_w()));
        var b1 = vec4(segment_word(ok, row, iw + 4, cv_w()), segment_word(ok, row, iw + 5, cv_w()), segment_word(ok, row, iw + 6, cv_w()), segment_word(ok, row, iw + 7, cv_w()));
        for (var r = 0u; r < run; r++) {
            // A's eight values: lane q of each subgroup decodes row q's from dY's words
            // and shares it, else from A's panel (the same words for every lane).
            var a: Lanes8;
            if (spread) {
                a = spread8(window_a(q, fa + r));
            } else {
                let e = (k + r) * (PM / 4u);
                a = Lanes8(panel_a(e), panel_a(e + 1u));
            }
            c = rank1(c, a.lo, a.hi, b0, b1);
            b0 = vec4(b0.yzw, b1.x);
            b1 = vec4(b1.yzw, segment_word(ok, row, iw + 8 + i32(r), cv_w()));
        }
        k += run;
    }
    col_end = (g + 1u) * cv_kw();
    put_tile(G.blk.i0, g * cv_kw(), slice, c, false);
}
