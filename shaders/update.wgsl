// One optimizer step of one parameter, in soft-float (bit-exact with the CPU twin), its
// operands decoded as they load: in0 the gradient g (times the loss scale S), in1 the
// weights w it starts from (the master copy where there is one), in2 the velocity (Adam's
// first moment m), in3 Adam's second moment v. A dispatch stores one value (E.which: 0 the
// new weights, 1 the new velocity or m, 2 the new v), rounded as it stores it, computing
// only what that value needs; a trainer dispatches once per tensor it keeps. When the
// loss-scale state (ls) skips the step, the stored values are the old ones.
//   sgd:  ge = g / S + wd w;  v' = mu v + ge;  u = nesterov ? ge + mu v' : v';  w' = w - lr u.
//   adam (L2 weight decay added to the gradient, as torch.optim.Adam):
//     ge = g / S + wd w;  m' = b1 m + (1 - b1) ge;  v' = b2 v + (1 - b2) ge^2;
//     w' = w - lr_t m' / (sqrt(v') bc2 + eps),  lr_t = lr / (1 - b1^t),  bc2 = 1 / sqrt(1 - b2^t),
//   t counting the updates applied: the step state (ls) holds 1 / (1 - b1^t) and bc2.

// Loss-scale state: [scale, skip, 1 / scale of this step, good steps, ...] (loss_scale.wgsl).
@group(0) @binding(4) var<storage, read> ls: array<u32, 8>;

// Each dispatch stores one value (E.which, the same for every element): it computes what
// that value needs, then stores through one call of store_out (each call site is another
// inlined copy of the rounding and packing to compile). A skipped step keeps the old
// values (selected, not branched: a CPU adapter runs both sides of a branch on a value it
// cannot see is the same for every element, as the skip flag read from a storage buffer).

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let skip = ls[1] != 0u;
    let wi = load1(i);
    let vi = load2(i);
    let ge = sf_add(sf_mul(load0(i), ls[2]), sf_mul(E.wd, wi));
    let vn = sf_add(sf_mul(E.mu, vi), ge);
    var out = select(vn, vi, skip);
    if (E.which != 1u) {
        var u = vn;
        if (E.nesterov != 0u) {
            u = sf_add(ge, sf_mul(E.mu, vn));
        }
        let wn = sf_add(wi, sf_mul(E.lr, u) ^ 0x80000000u);
        out = select(wn, wi, skip);
    }
    store_out(i, out);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let skip = ls[1] != 0u;
    let wi = load1(i);
    let mi = load2(i);
    let vi = load3(i);
    let ge = sf_add(sf_mul(load0(i), ls[2]), sf_mul(E.wd, wi));
    let mn = sf_add(sf_mul(E.mu, mi), sf_mul(E.beta1c, ge));
    var out = select(mn, mi, skip);
    if (E.which != 1u) {
        let vn = sf_add(sf_mul(E.beta2, vi), sf_mul(E.beta2c, sf_mul(ge, ge)));
        out = select(vn, vi, skip);
        if (E.which != 2u) {
            let denom = sf_add(sf_mul(sf_sqrt(vn), ls[6]), E.eps);
            let lr_t = sf_mul(E.lr, ls[5]);
            let wn = sf_add(wi, sf_mul(lr_t, sf_div(mn, denom)) ^ 0x80000000u);
            out = select(wn, wi, skip);
        }
    }
    store_out(i, out);
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
