// `thin`'s sums for a forward convolution of stride 1 without dilation whose output rows
// are a multiple of 4 wide (SEGMENTS, src/gpu/params.rs SplitParams::segments): an
// invocation's four columns are four neighbours of one output row, so for each input
// channel and kernel row they read 3 + KW neighbouring input words, each loaded once here
// (a CPU adapter loads a lane-varying address at a time), instead of 4 KW gathers. The
// products run in K's order (channel, kernel row, kernel column), as `thin` sums them:
// the same sums. A lane past the view (j >= n) loads nothing and still takes part in the
// subgroup's broadcasts of A.

// Input word iw of an input row whose word 0 has flat index `row` (iw may be negative:
// the sum wraps to the right index wherever iw is inside the row), as f32; zero outside the
// row or where `ok` is false.
fn segment_word(ok: bool, row: u32, iw: i32) -> f32 {
    if (ok && iw >= 0 && iw < i32(cv_w())) {
        let f = row + u32(iw);
        return bitcast<f32>(decode_scaled(fmt_b(), code_b(f), scale_b(f)));
    }
    return 0.0;
}

fn segment_sums(j: u32, q: u32) -> Tile {
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
            let row = row0 + u32(ih) * cv_w();
            // Words 0..3 serve kernel column 0; column kw adds word 3 + kw.
            let s0 = segment_word(ok, row, iw0);
            let s1 = segment_word(ok, row, iw0 + 1);
            let s2 = segment_word(ok, row, iw0 + 2);
            let s3 = segment_word(ok, row, iw0 + 3);
            c = rank1_tall_at(c, k, 0u, q, vec4(s0, s1, s2, s3));
            if (cv_kw() > 1u) {
                let s4 = segment_word(ok, row, iw0 + 4);
                c = rank1_tall_at(c, k + 1u, 0u, q, vec4(s1, s2, s3, s4));
                if (cv_kw() > 2u) {
                    let s5 = segment_word(ok, row, iw0 + 5);
                    c = rank1_tall_at(c, k + 2u, 0u, q, vec4(s2, s3, s4, s5));
                    if (cv_kw() > 3u) {
                        let s6 = segment_word(ok, row, iw0 + 6);
                        c = rank1_tall_at(c, k + 3u, 0u, q, vec4(s3, s4, s5, s6));
                        if (cv_kw() > 4u) {
                            let s7 = segment_word(ok, row, iw0 + 7);
                            c = rank1_tall_at(c, k + 4u, 0u, q, vec4(s4, s5, s6, s7));
                        }
                    }
                }
            }
            k += cv_kw();
        }
        row0 += plane;
    }
    return c;
}
