// sf_mul and sf_add for any device: the hardware's f32 result where it is exact, else the
// integer path of softfloat.wgsl (sf_mul_exact, sf_add_exact).
// The hardware's a * b and a + b are correctly rounded (WGSL requires it), but a device may
// flush subnormal operands and results and need not keep infinities: sf_mul and sf_add take
// the hardware's result where operands and result are zero or normal (and a zero result is
// exact), and compute in integers only otherwise. The result goes through a branch, so no
// compiler fuses a product and a sum into one rounding. sf_all(ok) is written by the shader
// assembly: subgroupAll where the device has subgroups (and kernels are specialised), else
// false.
fn sf_mul(a: u32, b: u32) -> u32 {
    let r = bitcast<u32>(bitcast<f32>(a) * bitcast<f32>(b));
    let zero_operand = (a & 0x7fffffffu) == 0u || (b & 0x7fffffffu) == 0u;
    let ok = sf_plain(a) && sf_plain(b) && (sf_normal(r) || ((r & 0x7fffffffu) == 0u && zero_operand));
    // Where every lane takes the hardware's result, a branch the whole subgroup takes:
    // a CPU adapter (which runs both sides of a lane-divergent branch) skips the integer path.
    if (sf_all(ok)) {
        return r;
    }
    if (ok) {
        return r;
    }
    return sf_mul_exact(a, b);
}

fn sf_add(a: u32, b: u32) -> u32 {
    let r = bitcast<u32>(bitcast<f32>(a) + bitcast<f32>(b));
    // A zero sum is exact only from opposite operands (or zeros).
    let cancels = (a ^ b) == 0x80000000u || ((a | b) & 0x7fffffffu) == 0u;
    let ok = sf_plain(a) && sf_plain(b) && (sf_normal(r) || ((r & 0x7fffffffu) == 0u && cancels));
    if (sf_all(ok)) {
        return r;
    }
    if (ok) {
        return r;
    }
    return sf_add_exact(a, b);
}
