// `thin`'s sums for a stride-1 convolution without dilation (SEGMENTS, src/gpu/params.rs
// SplitParams::segment_rows), its forward pass or its backward data pass: a tall
// invocation's four columns are four neighbours of one row
// (of the output, or of dX), so for each channel and kernel row they read 3 + KW
// neighbouring words of one row of B's tensor (X, or dY), each loaded once here (a CPU
// adapter loads a lane-varying address at a time), instead of 4 KW gathers. The products
// run in K's order (channel, kernel row, kernel column), as `thin` sums them: the same
// sums. With 8 x 8 tiles (views of at most 8 rows, not TALL) an invocation's eight columns
// are two such quads, each in its own row (the same row under SKIP_ROWS), each with its own
// segment; rows not a multiple of 4 wide are padded to one (`segment_column`). A lane past the view loads nothing and
// still takes part in the subgroup's broadcasts of A.

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

// Where one quad of an invocation's columns reads its segment: whether it reads at all,
// the flat index of word 0 of its row of B's tensor, and its first word there.
struct Seg {
    ok: bool,
    row: u32,
    at: i32,
}

// Word t of segment `g` (of a row `width` words wide, running down for backward data).
fn seg_word(g: Seg, t: i32, width: u32) -> f32 {
    return segment_word(g.ok, g.row, g.at + select(t, -t, cv_conv_pass() == 1u), width);
}

// The sums after product k (block-relative) with the tap values b0 of the first quad of
// columns and (8 x 8 tiles) b1 of the second: A's rows from panel vector ia, spread across
// the subgroup where it can, as `thin` reads them.
fn segment_step(t: Tile, k: u32, ia: u32, q: u32, b0: vec4<f32>, b1: vec4<f32>) -> Tile {
    if (TALL) {
        return rank1_tall_at(t, k, ia, q, b0);
    }
    let a = thin_a(k, ia, q);
    return rank1(t, a.lo, a.hi, b0, b1);
}

// The sums after the KW products of one channel and kernel row (K from k, A's rows from
// panel vector ia): the first quad's segment words s_t = seg_word(g0, t), tap kw reading
// words kw to kw + 3; with 8 x 8 tiles (not TALL) the second quad's u_t from g1 alike.
fn segment_taps(c_in: Tile, k: u32, ia: u32, q: u32, g0: Seg, g1: Seg, width: u32) -> Tile {
    var c = c_in;
    let two = !TALL;
    let s0 = seg_word(g0, 0, width);
    let s1 = seg_word(g0, 1, width);
    let s2 = seg_word(g0, 2, width);
    let s3 = seg_word(g0, 3, width);
    var u0 = 0.0;
    var u1 = 0.0;
    var u2 = 0.0;
    var u3 = 0.0;
    if (two) {
        u0 = seg_word(g1, 0, width);
        u1 = seg_word(g1, 1, width);
        u2 = seg_word(g1, 2, width);
        u3 = seg_word(g1, 3, width);
    }
    c = segment_step(c, k, ia, q, segment_vec(vec4(s0, s1, s2, s3)), segment_vec(vec4(u0, u1, u2, u3)));
    if (cv_kw() > 1u) {
        let s4 = seg_word(g0, 4, width);
        var u4 = 0.0;
        if (two) {
            u4 = seg_word(g1, 4, width);
        }
        c = segment_step(c, k + 1u, ia, q, segment_vec(vec4(s1, s2, s3, s4)), segment_vec(vec4(u1, u2, u3, u4)));
        if (cv_kw() > 2u) {
            let s5 = seg_word(g0, 5, width);
            var u5 = 0.0;
            if (two) {
                u5 = seg_word(g1, 5, width);
            }
            c = segment_step(c, k + 2u, ia, q, segment_vec(vec4(s2, s3, s4, s5)), segment_vec(vec4(u2, u3, u4, u5)));
            if (cv_kw() > 3u) {
                let s6 = seg_word(g0, 6, width);
                var u6 = 0.0;
                if (two) {
                    u6 = seg_word(g1, 6, width);
                }
                c = segment_step(c, k + 3u, ia, q, segment_vec(vec4(s3, s4, s5, s6)), segment_vec(vec4(u3, u4, u5, u6)));
                if (cv_kw() > 4u) {
                    let s7 = seg_word(g0, 7, width);
                    var u7 = 0.0;
                    if (two) {
                        u7 = seg_word(g1, 7, width);
                    }
                    c = segment_step(c, k + 4u, ia, q, segment_vec(vec4(s4, s5, s6, s7)), segment_vec(vec4(u4, u5, u6, u7)));
                }
            }
        }
    }
    return c;
}

// The width of the rows the view's columns run along (the output's forward, dX's backward
// data), and that width padded to a multiple of 4: a view whose rows are not a multiple of
// 4 wide runs its columns over padded rows, so that each quad lies in one row (the
// padding's columns are summed and never stored); the others' padded rows are their rows.
fn seg_width() -> u32 {
    return select(cv_ow(), cv_w(), cv_conv_pass() == 1u);
}

fn seg_padded() -> u32 {
    return (seg_width() + 3u) / 4u * 4u;
}

// Images a block of backward data's quads takes under SKIP_ROWS: enough that the quads of a
// subgroup of 8 lanes (two quads a lane, one where TALL) lie in one row of dX, rows being
// seg_padded / 4 quads (src/ops/gemm.rs row_images).
fn row_images() -> u32 {
    let per_row = seg_padded() / 4u;
    return select(16u, 8u, TALL) >> min(countTrailingZeros(per_row), select(4u, 3u, TALL));
}

// The row (of the output forward, of dX backward; rows run over images) and the column
// within its padded row of padded column j (a multiple of 4): row by row, or under
// SKIP_ROWS (backward data) in blocks of row_images() images, each block dX row by dX row,
// each row's quads image by image (quads of images past the batch are past the view).
fn seg_quad(j: u32) -> vec2<u32> {
    if (!SKIP_ROWS || cv_conv_pass() != 1u) {
        return vec2(j / seg_padded(), j % seg_padded());
    }
    let per_row = seg_padded() / 4u;
    let span = row_images() * per_row;
    let u = j / 4u;
    let rem = u % (span * cv_h());
    let image = u / (span * cv_h()) * row_images() + rem % span / per_row;
    return vec2(image * cv_h() + rem / span, rem % per_row * 4u + j % 4u);
}

// The view's column of padded column j, and its row's end (from which `put` stores
// nothing).
fn segment_column(j: u32) -> vec2<u32> {
    let r = seg_quad(j);
    return vec2(r.x * seg_width() + r.y, (r.x + 1u) * seg_width());
}

// The quad of padded columns from j (a multiple of 4, so in one row): whether it is in the
// view, the flat index of its image's first channel (of the group) in B's tensor, its row
// (the output's forward, dX's backward data), and its segments' first word.
struct Quad {
    live: bool,
    base: u32,
    oh: u32,
    at: i32,
}

fn forward_quad(j: u32) -> Quad {
    let r = j / seg_padded();
    let plane = cv_h() * cv_w();
    let at = i32(j % seg_padded()) - i32(cv_pad_w());
    let live = r < G.n / cv_ow();
    return Quad(live, ((r / cv_oh()) * cv_cin() + c0()) * plane, r % cv_oh(), at);
}

// The segment of quad `u` for kernel row kh of the channel whose plane is `plane` words on.
fn forward_seg(u: Quad, plane: u32, kh: u32) -> Seg {
    let ih = i32(u.oh + kh) - i32(cv_pad_h());
    let ok = u.live && ih >= 0 && ih < i32(cv_h());
    return Seg(ok, u.base + plane + u32(ih) * cv_w(), u.at);
}

fn segment_sums(j: u32, q: u32, ia: u32) -> Tile {
    if (cv_conv_pass() == 1u) {
        return segment_sums_back(j, q, ia);
    }
    var c = Tile();
    let u0 = forward_quad(j);
    let u1 = forward_quad(j + 4u);
    var plane = 0u;
    var k = 0u;
    for (var ch = 0u; ch < cin_g(); ch++) {
        for (var kh = 0u; kh < cv_kh(); kh++) {
            c = segment_taps(c, k, ia, q, forward_seg(u0, plane, kh), forward_seg(u1, plane, kh), cv_w());
            k += cv_kw();
        }
        plane += cv_h() * cv_w();
    }
    return c;
}

// Backward data: column j is dX's (image, ih, iw), K the group's output channels' taps; tap
// (kh, kw) reads dY at (ih + pad_h - kh, iw + pad_w - kw). A quad of dX's columns as
// forward's: its image's first output channel (of the group) in dY, its dX row ih (in
// `oh`), and its segments' top word.
fn backward_quad(j: u32) -> Quad {
    let rq = seg_quad(j);
    let r = rq.x;
    let plane = cv_oh() * cv_ow();
    let top = i32(rq.y + cv_pad_w()) + 3;
    let live = r < G.n / cv_w();
    return Quad(live, ((r / cv_h()) * cv_cout() + o0()) * plane, r % cv_h(), top);
}

fn backward_seg(u: Quad, plane: u32, kh: u32) -> Seg {
    let oh = i32(u.oh + cv_pad_h()) - i32(kh);
    let ok = u.live && oh >= 0 && oh < i32(cv_oh());
    return Seg(ok, u.base + plane + u32(oh) * cv_ow(), u.at);
}

fn segment_sums_back(j: u32, q: u32, ia: u32) -> Tile {
    var c = Tile();
    let u0 = backward_quad(j);
    let u1 = backward_quad(j + 4u);
    // Kernel rows lo to hi - 1 reach inside dY from dX's row (the same row for both quads,
    // and for a whole subgroup, under SKIP_ROWS): the others' products are A's values times
    // the zeros outside dY, which leave a sum as it was unless A's value is infinite or NaN
    // (then NaN). Under SKIP_ROWS those rows only carry such NaNs into `nan`, added to the
    // sums at the end: the same values (a -0 sum may come out +0, as `put` stores it anyway).
    var lo = 0u;
    var hi = cv_kh();
    if (SKIP_ROWS) {
        let reach = i32(u0.oh + cv_pad_h());
        lo = u32(clamp(reach - i32(cv_oh()) + 1, 0, i32(cv_kh())));
        hi = u32(clamp(reach + 1, i32(lo), i32(cv_kh())));
    }
    // A zero the compiler cannot fold (x times a constant 0 may be folded to 0, losing NaN).
    let zero = vec4(select(0.0, 1.0, G.n == 0u));
    var nan = Rows16();
    let taps = cv_kh() * cv_kw();
    var plane = 0u;
    var k = 0u;
    for (var o = 0u; o < cv_cout() / cv_groups(); o++) {
        for (var t = 0u; t < lo * cv_kw(); t++) {
            nan = zero_products(nan, k + t, ia, q, zero);
        }
        for (var kh = lo; kh < hi; kh++) {
            c = segment_taps(c, k + kh * cv_kw(), ia, q, backward_seg(u0, plane, kh), backward_seg(u1, plane, kh), cv_ow());
        }
        for (var t = hi * cv_kw(); t < taps; t++) {
            nan = zero_products(nan, k + t, ia, q, zero);
        }
        k += taps;
        plane += cv_oh() * cv_ow();
    }
    // Without SKIP_ROWS every row was summed: nothing to add.
    if (!SKIP_ROWS) {
        return c;
    }
    return plus_rows(c, row_values(nan));
}

// One value for each of a tile's rows: 8 (a0, a1) or, TALL, 16.
struct Rows16 {
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
}

// `p` plus each row's A value of product k times `zero`, A's values read from its panel
// as `segment_step` reads them. Where the subgroup spreads A's values, lane q adds only its
// own rows' (q, and 8 + q where TALL, in p.a0.x and p.a0.y; `row_values` spreads them).
fn zero_products(p: Rows16, k: u32, ia: u32, q: u32, zero: vec4<f32>) -> Rows16 {
    let a = k * (PM / 4u) + ia;
    if (spreads_a()) {
        var own = vec2(panel_a(a + q / 4u)[q % 4u], 0.0);
        if (TALL) {
            own.y = panel_a(a + 2u + q / 4u)[q % 4u];
        }
        return Rows16(vec4(fma(own, zero.xy, p.a0.xy), 0.0, 0.0), p.a1, p.a2, p.a3);
    }
    if (TALL) {
        return Rows16(fma(panel_a(a), zero, p.a0), fma(panel_a(a + 1u), zero, p.a1), fma(panel_a(a + 2u), zero, p.a2), fma(panel_a(a + 3u), zero, p.a3));
    }
    return Rows16(fma(panel_a(a), zero, p.a0), fma(panel_a(a + 1u), zero, p.a1), p.a2, p.a3);
}

// Every row's value of sums gathered by `zero_products`.
fn row_values(p: Rows16) -> Rows16 {
    if (spreads_a()) {
        let lo = spread8(p.a0.x);
        let hi = spread8(p.a0.y);
        return Rows16(lo.lo, lo.hi, hi.lo, hi.hi);
    }
    return p;
}

// Tile `t` with each row's value of `p` added to its sums (rows as `put_quads` stores them).
fn plus_rows(t: Tile, p: Rows16) -> Tile {
    if (TALL) {
        return Tile(
            t.c00 + p.a0.x, t.c01 + p.a0.y, t.c10 + p.a0.z, t.c11 + p.a0.w,
            t.c20 + p.a1.x, t.c21 + p.a1.y, t.c30 + p.a1.z, t.c31 + p.a1.w,
            t.c40 + p.a2.x, t.c41 + p.a2.y, t.c50 + p.a2.z, t.c51 + p.a2.w,
            t.c60 + p.a3.x, t.c61 + p.a3.y, t.c70 + p.a3.z, t.c71 + p.a3.w,
        );
    }
    return Tile(
        t.c00 + p.a0.x, t.c01 + p.a0.x, t.c10 + p.a0.y, t.c11 + p.a0.y,
        t.c20 + p.a0.z, t.c21 + p.a0.z, t.c30 + p.a0.w, t.c31 + p.a0.w,
        t.c40 + p.a1.x, t.c41 + p.a1.x, t.c50 + p.a1.y, t.c51 + p.a1.y,
        t.c60 + p.a1.z, t.c61 + p.a1.z, t.c70 + p.a1.w, t.c71 + p.a1.w,
    );
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

// `thin`'s sums for a weight gradient of at most 16 rows, stride 1 and no dilation along the
// width, kernel rows of at most 8 taps (WINDOW, src/gpu/params.rs SplitParams::window_rows),
// stored: workgroup row `block` takes the view's rows 8 block to 8 block + 7 of the panel's
// block, invocation g kernel row g (input channel g / KH of the group, row g % KH),
// its taps the tile's columns. Over the slice's products (output pixels, in order), the
// taps of one output row read neighbouring input words: a window of eight, moved one word a
// product, loads one input word a product instead of KW gathers. Where subgroups of 8 can
// share values (BROADCAST, workgroups whole subgroups) lane q decodes A's row q from dY and
// shares it, so the view needs no A panel either. The products and their
// order are `thin`'s (or `main`'s over a packed panel): the same sums. The window's words
// past the kernel's width are summed into columns never stored.
fn window_tile(g: u32, q: u32, block: u32, k_begin: u32, k_end: u32, slice: u32) {
    var c = Tile();
    // The tile's first row, within the panel's block and within the view.
    let r0 = 8u * block;
    let i0 = G.blk.i0 + r0;
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
                a = spread8(window_a(i0 + q, fa + r));
            } else {
                let e = (k + r) * (PM / 4u) + r0 / 4u;
                a = Lanes8(panel_a(e), panel_a(e + 1u));
            }
            c = rank1(c, a.lo, a.hi, b0, b1);
            b0 = vec4(b0.yzw, b1.x);
            b1 = vec4(b1.yzw, segment_word(ok, row, iw + 8 + i32(r), cv_w()));
        }
        k += run;
    }
    col_end = (g + 1u) * cv_kw();
    put_tile(i0, g * cv_kw(), slice, c, false);
}
