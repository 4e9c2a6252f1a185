// Loss scaling on the GPU, so that no step waits for the host. The step state is eight
// words: [scale S (f32 bits, a power of two), skip this step's update, 1 / S of this step,
// good steps since the last change, updates applied t, 1 / (1 - beta1^t),
// 1 / sqrt(1 - beta2^t), 0] (Adam's bias corrections count applied updates, as PyTorch's
// GradScaler leaves a skipped step uncounted).
//   apply:  x *= S (the loss gradient, before the backward pass);
//   update: after the backward pass, from the gradient quantizers' exception counts
//           [overflow, underflow, nan, amax]: record 1 / S, skip = dynamic and (overflow or
//           NaN); dynamic scaling then halves S on overflow, or doubles it after `interval`
//           good steps, within [2^-64, 2^64]; an update not skipped counts, and the bias
//           corrections for it are 1 / -expm1(t ln beta1) and 1 / sqrt(-expm1(t ln beta2)).

@group(0) @binding(1) var<storage, read_write> x: array<u32>;
@group(0) @binding(4) var<storage, read_write> state: array<u32, 8>;
@group(0) @binding(5) var<storage, read> grad_stats: array<u32, 4>;

@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    x[i] = sf_mul(x[i], state[0]);
}

@compute @workgroup_size(1)
fn update() {
    let e = (state[0] >> 23u) & 0xffu; // biased exponent of S = 2^(e - 127)
    state[2] = (254u - e) << 23u;
    let bad = grad_stats[0] + grad_stats[2] != 0u;
    let skip = bad && E.dynamic != 0u;
    state[1] = select(0u, 1u, skip);
    if (!skip) {
        state[4] = state[4] + 1u;
        let t = make_f32_bits(false, state[4], 0);
        // 1 - beta^t for both betas through one call of sf_expm1 (each call is inlined).
        var ln_beta = array<u32, 2>(E.ln_beta1, E.ln_beta2);
        var c = array<u32, 2>(0u, 0u);
        for (var k = 0u; k < 2u; k++) {
            c[k] = sf_expm1(sf_mul(t, ln_beta[k])) ^ 0x80000000u;
        }
        state[5] = sf_div(0x3f800000u, c[0]);
        state[6] = sf_div(0x3f800000u, sf_sqrt(c[1]));
    }
    if (E.dynamic == 0u) {
        return;
    }
    if (bad) {
        state[0] = max(e - 1u, 63u) << 23u;
        state[3] = 0u;
    } else if (state[3] + 1u >= E.interval) {
        state[0] = min(e + 1u, 191u) << 23u;
        state[3] = 0u;
    } else {
        state[3] = state[3] + 1u;
    }
}
