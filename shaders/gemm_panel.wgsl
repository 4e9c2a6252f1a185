// GEMM (or a convolution's GEMM view) with f32 accumulation for CPU adapters, in two steps.
// `pack` decodes a block of an operand (A with SIDE 0, B with SIDE 1) from its packed codes (with the
// view's addressing) into f32 panels: A's as [k][i] (pan_m values per k), B's as [k][j]
// (pan_n per k), zero beyond the view, so the product loop needs no bounds checks. `main`
// then multiplies the panels: a workgroup of up to 64 invocations (WX along N, WY along M) owns a
// (8 WY) x (8 WX) tile of C, each invocation 8 x 8 values held as sixteen vec4s, read with
// 16-byte loads and no workgroup memory (on a CPU adapter every lane-varying load is a
// scalar loop, workgroup memory included, so staging only adds barriers). Each sum runs
// over its K slice in order with fma; slices go to partial sums that gemm_reduce adds.

override WX: u32 = 8u;
override WY: u32 = 8u;
// K slices side by side in one workgroup of `main` (lid.z the slice within the group): a
// view narrower than a SIMD row of lanes (a 6 x 25 weight gradient's 4 invocations) fills
// the lanes with its slices, which it would otherwise run half empty, one group a slice.
override KS: u32 = 1u;
// The panel `pack` writes: A's (0) or B's (1), and its width (pan_m or pan_n), a constant
// so that its division is a multiplication.
override SIDE: u32 = 0u;
override PAN: u32 = 1u;
// Whether `main` and `thin` store partial sums (split K) and add a bias: constants, so
// that a CPU adapter (which runs both sides of a branch) runs only the path taken.
override SPLIT: bool = false;
override BIAS: bool = false;
// Whether every four output columns from a multiple of 4 are four consecutive output words
// from a multiple of 4, within the view (src/gpu/params.rs SplitParams::rows_in_quads):
// `put` then stores them as one vector.
override QUAD_OUT: bool = false;
// The block's panel widths (pan_m, pan_n) for `main` and `thin`: as constants, the panels'
// strides make a 512^3 product run in 42-51 ms a dispatch on lavapipe instead of 75-83.
override PM: u32 = 4u;
override PN: u32 = 4u;

// Panels: written by `pack` (binding 12, `panel_put`), read as vectors by `main` (13 and 14,
// `panel_a` and `panel_b`), in storage buffers or textures (src/gpu/specialise.rs).
// $PANELS

// Panel element e's value: row (or column) e % PAN of the block, product e / PAN.
fn panel_value(e: u32) -> f32 {
    let k = G.blk.k0 + e / PAN;
    var v = 0u;
    if (SIDE == 0u) {
        let i = G.blk.i0 + e % PAN;
        if (i < G.m && k < G.k) {
            v = value_a(i, k);
        }
    } else {
        let j = G.blk.j0 + e % PAN;
        if (j < G.n && k < G.k) {
            v = value_b(k, j);
        }
    }
    return bitcast<f32>(v);
}

// Panel vector e: elements 4e to 4e + 3 (PAN is a multiple of 4, so one product's).
fn pack_item(item: u32) {
    let e = item;
    var v = vec4(0.0);
    for (var t = 0u; t < 4u; t++) {
        v[t] = panel_value(4u * e + t);
    }
    panel_put(e, v);
}

@compute @workgroup_size(256)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, G.groups_x, nwg, G.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        pack_item(item);
    }
}

// The columns an invocation stores end here (a window's kernel row, WINDOW).
var<private> col_end: u32 = 0xffffffffu;

// Stores four sums of row `i`, columns j..j+3: the slice's partial sums, or the output
// (bias added) rounded into its format.
fn put(i: u32, j: u32, slice: u32, sums: vec4<f32>) {
    if (i >= G.m) {
        return;
    }
    let v = plus_zero4(sums);
    if (QUAD_OUT && !SPLIT) {
        if (j < G.n) {
            var s = v;
            if (BIAS) {
                for (var t = 0u; t < 4u; t++) {
                    s[t] = s[t] + bitcast<f32>(bias_at(i, j + t));
                }
            }
            store_out4(out_index(i, j), bitcast<vec4<u32>>(s));
        }
        return;
    }
    for (var t = 0u; t < 4u; t++) {
        let jt = j + t;
        if (jt < min(G.n, col_end)) {
            if (SPLIT) {
                c_out[(slice * G.m + i) * G.n + jt] = bitcast<u32>(v[t]);
            } else {
                var s = v[t];
                if (BIAS) {
                    s = s + bitcast<f32>(bias_at(i, jt));
                }
                store_out(out_index(i, jt), bitcast<u32>(s));
            }
        }
    }
}

// Whether a kernel spreads A's values from one load a lane: BROADCAST, and a workgroup's
// rows are whole subgroups of 8 consecutive invocations (WX a multiple of 8), so a
// subgroup shares its rows and their A values.
fn spreads_a() -> bool {
    return BROADCAST && WX % 8u == 0u && KS == 1u;
}

// A's eight values of product k from panel vectors v and v + 1, spread to every lane of the
// subgroup: lane q loads row q's (one load a lane instead of eight).
fn spread_a(k: u32, v: u32, q: u32) -> Lanes8 {
    return spread8(panel_a(k * (PM / 4u) + v + q / 4u)[q % 4u]);
}

// `rank1` at product k with A's rows spread from the subgroup's lanes (vectors `ia`,
// `ia + 1`; B's two vectors from `jb`, as in `main`).
fn rank1_spread(t: Tile, k: u32, ia: u32, q: u32, jb: u32) -> Tile {
    let a = spread_a(k, ia, q);
    let b = k * (PN / 4u) + jb;
    return rank1(t, a.lo, a.hi, panel_b(b), panel_b(b + 1u));
}

// Stores an invocation's sums, rows i..i+7 and columns j..j+7 (a `tall` tile: rows
// i..i+15, columns j..j+3, row r in field r), through two calls of `put` in a loop over
// the tile's pairs of fields, the sums moving up a pair each time: two inlined copies of
// the output's rounding, not sixteen (lavapipe compiles an entry point in 0.1 s instead of
// 1.2 s; each output format is another pipeline), and no indexing into an array of the
// sums (which cost a 192 x 6400 x 16 product 32 ms a dispatch on lavapipe, against 18 ms
// this way and 12 ms with sixteen copies).
fn put_tile(i: u32, j: u32, slice: u32, tile: Tile, tall: bool) {
    let end = col_end;
    put_quads(i, vec2(j, end), vec2(j + select(4u, 0u, tall), end), slice, tile, tall);
}

// `put_tile` with the tile's second quad of columns anywhere: quads from q0.x and q1.x,
// each storing nothing from column q0.y (q1.y) on (a short view's segments over padded
// rows put each quad in its own row).
fn put_quads(i: u32, q0: vec2<u32>, q1: vec2<u32>, slice: u32, tile: Tile, tall: bool) {
    var t = tile;
    let step = select(1u, 2u, tall);
    let di = select(0u, 1u, tall);
    for (var r = 0u; r < 8u; r++) {
        col_end = q0.y;
        put(i + step * r, q0.x, slice, t.c00);
        col_end = q1.y;
        put(i + step * r + di, q1.x, slice, t.c01);
        t.c00 = t.c10; t.c01 = t.c11; t.c10 = t.c20; t.c11 = t.c21;
        t.c20 = t.c30; t.c21 = t.c31; t.c30 = t.c40; t.c31 = t.c41;
        t.c40 = t.c50; t.c41 = t.c51; t.c50 = t.c60; t.c51 = t.c61;
        t.c60 = t.c70; t.c61 = t.c71;
    }
}

@compute @workgroup_size(WX, WY, KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let lx = lid.x;
    let ly = lid.y;
    let row = wid.y * (8u * WY) + ly * 8u; // within the panel
    let col = wid.x * (8u * WX) + lx * 8u;
    let sa = PM / 4u;
    let sb = PN / 4u;
    let ia = row / 4u;
    let jb = col / 4u;
    // The block's slice (a last group's lanes past the block's slices sum nothing and
    // store nothing).
    let slice = wid.z * KS + lid.z;
    let k_begin = slice * G.k_split;
    let k_end = min(G.blk.k, k_begin + G.k_split);
    var c = Tile();
    if (spreads_a()) {
        // A's values spread from one load a lane, four products a loop iteration.
        let q = lx % 8u;
        var k = k_begin;
        for (; k + 4u <= k_end; k += 4u) {
            c = rank1_spread(c, k, ia, q, jb);
            c = rank1_spread(c, k + 1u, ia, q, jb);
            c = rank1_spread(c, k + 2u, ia, q, jb);
            c = rank1_spread(c, k + 3u, ia, q, jb);
        }
        for (; k < k_end; k++) {
            c = rank1_spread(c, k, ia, q, jb);
        }
    } else {
        for (var k = k_begin; k < k_end; k++) {
            let a0 = panel_a(k * sa + ia);
            let a1 = panel_a(k * sa + ia + 1u);
            let b0 = panel_b(k * sb + jb);
            let b1 = panel_b(k * sb + jb + 1u);
            c = rank1(c, a0, a1, b0, b1);
        }
    }
    if (k_begin < G.blk.k) {
        put_tile(G.blk.i0 + row, G.blk.j0 + col, G.blk.slice0 + slice, c, false);
    }
}

// B's value (k, j) of the block, decoded from its packed codes; zero beyond the view.
fn gather_b(k: u32, j: u32) -> f32 {
    let kk = G.blk.k0 + k;
    if (j < G.n && kk < G.k) {
        return bitcast<f32>(value_b(kk, j));
    }
    return 0.0;
}

// A tall tile's sums after one k: row r's four sums plus A's value r (a0's four, then a1's,
// a2's, a3's) times B's four values b, each with one fma.
fn rank1_tall(t: Tile, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, b: vec4<f32>) -> Tile {
    return Tile(
        fma(vec4(a0.x), b, t.c00), fma(vec4(a0.y), b, t.c01),
        fma(vec4(a0.z), b, t.c10), fma(vec4(a0.w), b, t.c11),
        fma(vec4(a1.x), b, t.c20), fma(vec4(a1.y), b, t.c21),
        fma(vec4(a1.z), b, t.c30), fma(vec4(a1.w), b, t.c31),
        fma(vec4(a2.x), b, t.c40), fma(vec4(a2.y), b, t.c41),
        fma(vec4(a2.z), b, t.c50), fma(vec4(a2.w), b, t.c51),
        fma(vec4(a3.x), b, t.c60), fma(vec4(a3.y), b, t.c61),
        fma(vec4(a3.z), b, t.c70), fma(vec4(a3.w), b, t.c71),
    );
}

// Whether `thin` sums tall tiles (a constant): views of 9 to 16 rows, each invocation all
// sixteen rows of four columns, so that each B value is still gathered once (where `main`
// packs a B panel first, and two 8-row passes would gather it twice).
override TALL: bool = false;

// A tall tile's sums after product k (block-relative), its sixteen A values from the panel
// from vector `ia` (spread across the subgroup where it can) and B's four values b: `thin`'s step whether
// it gathers B or reads it from input rows, so both sum alike.
fn rank1_tall_at(t: Tile, k: u32, ia: u32, q: u32, b: vec4<f32>) -> Tile {
    if (spreads_a()) {
        let lo = spread_a(k, ia, q);
        let hi = spread_a(k, ia + 2u, q);
        return rank1_tall(t, lo.lo, lo.hi, hi.lo, hi.hi, b);
    }
    let a = k * (PM / 4u) + ia;
    return rank1_tall(t, panel_a(a), panel_a(a + 1u), panel_a(a + 2u), panel_a(a + 3u), b);
}

// An 8 x 8 tile's eight A values of product k (block-relative) from panel vector `ia`:
// spread across the subgroup where it can, else loaded in every lane.
fn thin_a(k: u32, ia: u32, q: u32) -> Lanes8 {
    if (spreads_a()) {
        return spread_a(k, ia, q);
    }
    let a = k * (PM / 4u) + ia;
    return Lanes8(panel_a(a), panel_a(a + 1u));
}

// Whether `thin` (tall tiles, or 8 x 8 tiles of a view of at most 8 rows; the view's whole
// K in one slice and one block: k_begin and k_end unused) reads B from its input rows in
// segments (segment_sums: conv_segments.wgsl)
// rather than gathering each value.
override SEGMENTS: bool = false;

// Whether `thin` sums a weight gradient of at most 16 rows (stride 1 along the width) through
// sliding windows of its input words (window_tile: conv_segments.wgsl), an invocation one
// kernel row's taps, a workgroup row 8 of the view's rows, rather than gathering each B value.
override WINDOW: bool = false;

// Whether a backward data view read in segments runs its quads of columns dX row by dX row
// across blocks of images (`seg_quad`, conv_segments.wgsl), its subgroups skipping together
// the kernel rows outside dY (CPU adapters: subgroups of 8 lanes).
override SKIP_ROWS: bool = false;

// The product for views of at most 8 rows (WY = 1, one invocation row), or 16 (TALL; or a
// weight gradient through windows, WINDOW, a workgroup row 8 of its rows): each
// B value is used by one invocation only, so `thin` gathers and decodes it here instead of
// reading a B panel, and the view needs no B `pack` pass (whose stores were half its cost).
// A's panel (loads the same for every lane) and the sums' order and stores are `main`'s.
@compute @workgroup_size(WX, 1)
fn thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let width = select(8u, 4u, TALL);
    let col = wid.x * (width * WX) + lid.x * width;
    // A workgroup's rows within the panel: a block of 16-row tall tiles (a weight gradient
    // of 17 to 32 rows) takes one 16-row block a workgroup row (WINDOW: 8 rows, its own).
    let row = wid.y * select(8u, 16u, TALL);
    let ia = row / 4u;
    let j = G.blk.j0 + col;
    let slice = wid.z;
    let k_begin = slice * G.k_split;
    let k_end = min(G.blk.k, k_begin + G.k_split);
    var c = Tile();
    // Every lane shares the block's rows, so A's values can be spread as in `main`.
    let q = lid.x % 8u;
    if (SEGMENTS) {
        // The columns run over rows padded to a multiple of 4: each quad's column of the
        // view and its row's end.
        let q0 = segment_column(j);
        let q1 = select(segment_column(j + 4u), q0, TALL);
        put_quads(G.blk.i0 + row, q0, q1, G.blk.slice0, segment_sums(j, q, ia), TALL);
        return;
    }
    if (WINDOW) {
        window_tile(wid.x * WX + lid.x, q, wid.y, k_begin, k_end, G.blk.slice0 + slice);
        return;
    }
    for (var k = k_begin; k < k_end; k++) {
        let b0 = vec4(gather_b(k, j), gather_b(k, j + 1u), gather_b(k, j + 2u), gather_b(k, j + 3u));
        if (TALL) {
            c = rank1_tall_at(c, k, ia, q, b0);
        } else {
            let a = thin_a(k, ia, q);
            let b1 = vec4(gather_b(k, j + 4u), gather_b(k, j + 5u), gather_b(k, j + 6u), gather_b(k, j + 7u));
            c = rank1(c, a.lo, a.hi, b0, b1);
        }
    }
    put_tile(G.blk.i0 + row, j, G.blk.slice0 + slice, c, TALL);
}
