// Backward data by taps, second step: each dX value [n, c, h, w] of a chunk of images is the
// sum, over the taps (kh, kw) in order, of the tap product T[(c, kh, kw), (n, oh, ow)] of
// the output position that tap reads it from (conv_index.wgsl's pass 3 wrote T, binding 6);
// taps that reach no output add nothing. Rounded into the output as it is stored. One dX
// value per invocation; G holds the tap view's parameters (n = the chunk's OH OW columns).

fn main_item(item: u32) {
    let idx = item;
    let hw = cv_h() * cv_w();
    let per_image = cv_cin() * hw;
    let nb = idx / per_image;
    let c = (idx % per_image) / hw;
    let q = idx % hw;
    let ih = q / cv_w();
    let iw = q % cv_w();
    let taps = cv_kh() * cv_kw();
    let sp = cv_oh() * cv_ow();
    var s = 0.0;
    for (var r = 0u; r < taps; r++) {
        let kh = r / cv_kw();
        let kw = r % cv_kw();
        let th = i32(ih + cv_pad_h()) - i32(kh * cv_dil_h());
        let tw = i32(iw + cv_pad_w()) - i32(kw * cv_dil_w());
        if (th < 0 || tw < 0 || u32(th) % cv_stride_h() != 0u || u32(tw) % cv_stride_w() != 0u) {
            continue;
        }
        let oh = u32(th) / cv_stride_h();
        let ow = u32(tw) / cv_stride_w();
        if (oh >= cv_oh() || ow >= cv_ow()) {
            continue;
        }
        s = s + bitcast<f32>(c_out[(c * taps + r) * cv_n() + nb * sp + oh * cv_ow() + ow]);
    }
    store_out(G.img0 * per_image + idx, bitcast<u32>(s));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, G.groups_x, nwg, G.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        main_item(item);
    }
}
