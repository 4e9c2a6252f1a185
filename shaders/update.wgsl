// One optimizer step of one parameter, in soft-float (bit-exact with the CPU twin), its
// operands decoded as they load: in0 the gradient g (times the loss scale S), in1 the
// weights w it starts from (the master copy where there is one), in2 the velocity (Adam's
// first moment m), in3 Adam's second moment v. A dispatch stores one value (E.which: 0 the
// new weights, 1 the new velocity or m, 2 the new v), rounded as it stores it, computing
// only what that value needs; a trainer dispatches once per tensor it keeps. When the
// loss-scale state (ls) skips the step, the stored values are the old ones.
//   sgd:  ge = g / S (+ wd w where wd is not zero, as torch.optim);  v' = mu v + ge;  u = nesterov ? ge + mu v' : v';  w' = w - lr u.
//   adam (L2 weight decay added to the gradient, as torch.optim.Adam):
//     ge = g / S (+ wd w);  m' = b1 m + (1 - b1) ge;  v' = b2 v + (1 - b2) ge^2;
//     w' = w - lr_t m' / (sqrt(v') bc2 + eps),  lr_t = lr / (1 - b1^t),  bc2 = 1 / sqrt(1 - b2^t),
//   t counting the updates applied: the step state (ls) holds 1 / (1 - b1^t) and bc2.

// What an optimizer step's dispatch stores and how, compiled into its pipeline: a CPU
// adapter runs the block behind a branch even where every invocation skips it, so a
// velocity read from the parameters would still compute the new weights. WHICH is the
// value stored (E.which), DECAY whether the weight decay is not zero, NESTEROV SGD's.
override WHICH: u32 = 0u;
override DECAY: bool = true;
override NESTEROV: bool = false;

// Loss-scale state: [scale, skip, 1 / scale of this step, good steps, ...] (loss_scale.wgsl).
@group(0) @binding(4) var<storage, read> ls: array<u32, 8>;

// Each dispatch stores one value (E.which, the same for every element): it computes what
// that value needs, then stores through one call of store_out (each call site is another
// inlined copy of the rounding and packing to compile). A skipped step keeps the old
// values (selected, not branched: a CPU adapter runs both sides of a branch on a value it
// cannot see is the same for every element, as the skip flag read from a storage buffer).

// The gradient a step takes: g / S, plus wd w where the weight decay is not zero.
fn decayed(g: u32, wi: u32) -> u32 {
    var ge = sf_mul(g, ls[2]);
    if (DECAY) {
        ge = sf_add(ge, sf_mul(E.wd, wi));
    }
    return ge;
}

// The value WHICH of one element's SGD step (g, w, v its decoded operands).
fn sgd_value(g: u32, wi: u32, vi: u32, skip: bool) -> u32 {
    let ge = decayed(g, wi);
    let vn = sf_add(sf_mul(E.mu, vi), ge);
    var out = select(vn, vi, skip);
    if (WHICH != 1u) {
        var u = vn;
        if (NESTEROV) {
            u = sf_add(ge, sf_mul(E.mu, vn));
        }
        let wn = sf_add(wi, sf_mul(E.lr, u) ^ 0x80000000u);
        out = select(wn, wi, skip);
    }
    return out;
}

// The value WHICH of one element's Adam step.
fn adam_value(g: u32, wi: u32, mi: u32, vi: u32, skip: bool) -> u32 {
    let ge = decayed(g, wi);
    let mn = sf_add(sf_mul(E.mu, mi), sf_mul(E.beta1c, ge));
    var out = select(mn, mi, skip);
    if (WHICH != 1u) {
        let vn = sf_add(sf_mul(E.beta2, vi), sf_mul(E.beta2c, sf_mul(ge, ge)));
        out = select(vn, vi, skip);
        if (WHICH != 2u) {
            let denom = sf_add(sf_mul(sf_sqrt(vn), ls[6]), E.eps);
            let lr_t = sf_mul(E.lr, ls[5]);
            let wn = sf_add(wi, sf_mul(lr_t, sf_div(mn, denom)) ^ 0x80000000u);
            out = select(wn, wi, skip);
        }
    }
    return out;
}

// Each invocation takes elements 4q to 4q + 3, the rule a loop over the four (one inlined
// copy of the soft-float to compile); the last E.n % 4 are a TAIL dispatch's, one by one
// (elem_params.wgsl).
fn sgd_item(item: u32) {
    let i = 4u * item;
    let skip = ls[1] != 0u;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            let g = load4_0(i);
            let w = load4_1(i);
            let v = load4_2(i);
            var out = vec4(0u);
            for (var t = 0u; t < 4u; t++) {
                out[t] = sgd_value(g[t], w[t], v[t], skip);
            }
            store_out4(i, out);
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, sgd_value(load0(t), load1(t), load2(t), skip));
    }
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        sgd_item(item);
    }
}

fn adam_item(item: u32) {
    let i = 4u * item;
    let skip = ls[1] != 0u;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            let g = load4_0(i);
            let w = load4_1(i);
            let m = load4_2(i);
            let v = load4_3(i);
            var out = vec4(0u);
            for (var t = 0u; t < 4u; t++) {
                out[t] = adam_value(g[t], w[t], m[t], v[t], skip);
            }
            store_out4(i, out);
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, adam_value(load0(t), load1(t), load2(t), load3(t), skip));
    }
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        adam_item(item);
    }
}

// SGD's new weights from its new velocity v' as stored (in1; exact where the velocity keeps
// every f32 value, and without Nesterov, where u = v'): w - lr v', the old w (in0) where the
// step is skipped; two operations an element instead of the whole rule.
fn sgd_from_velocity(wi: u32, vn: u32, skip: bool) -> u32 {
    return select(sf_add(wi, sf_mul(E.lr, vn) ^ 0x80000000u), wi, skip);
}

fn sgd_weights_item(item: u32) {
    let i = 4u * item;
    let skip = ls[1] != 0u;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            let w = load4_0(i);
            let v = load4_1(i);
            var out = vec4(0u);
            for (var t = 0u; t < 4u; t++) {
                out[t] = sgd_from_velocity(w[t], v[t], skip);
            }
            store_out4(i, out);
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, sgd_from_velocity(load0(t), load1(t), skip));
    }
}

@compute @workgroup_size(256)
fn sgd_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        sgd_weights_item(item);
    }
}

// Bit-centred SVRG (HALP), one value of one parameter a dispatch (E.which, uniform):
//   svrg1 (in0):  0  in0 (the centre, rounded as the parameter);  3  (in0 / S) E.mu (a
//                 gradient kept, E.mu = 1; a share of the full gradient, E.mu = 1 / batches);
//                 5  zero (the offset after re-centring).
//   svrg2 (in0, in1):  in0 + in1 (the centre plus the offset).
//   svrg4 (in0 g, in1 z, in2 gc, in3 full):  z - lr ((g / S - gc) + full), the offset's step.
@compute @workgroup_size(256)
fn svrg1(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    var out = 0u;
    if (E.which != 5u) {
        out = load0(i);
        if (E.which != 0u) {
            out = sf_mul(sf_mul(out, ls[2]), E.mu);
        }
    }
    store_out(i, out);
}

@compute @workgroup_size(256)
fn svrg2(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    store_out(i, sf_add(load0(i), load1(i)));
}

@compute @workgroup_size(256)
fn svrg4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let d = sf_add(sf_add(sf_mul(load0(i), ls[2]), load2(i) ^ 0x80000000u), load3(i));
    store_out(i, sf_add(load1(i), sf_mul(E.lr, d) ^ 0x80000000u));
}
