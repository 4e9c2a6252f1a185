// The arithmetic of E4M3-scaled blocks (NVFP4) around an element's rounding and decoding.
// The shader assembly puts in stubs instead where no operand of a kernel has such blocks,
// so that kernels of other formats do not carry (and compile) the soft-float division.

// v / (block x tensor) as f32, zero (v's sign) where that scale is zero; ±Inf and NaN pass.
fn e4m3_prescale(v: u32, s: ElemScale) -> u32 {
    let mag = v & 0x7fffffffu;
    if (mag >= 0x7f800000u) {
        return v;
    }
    let d = sf_mul(s.block, s.tensor);
    if ((d & 0x7fffffffu) == 0u) {
        return v & 0x80000000u;
    }
    return sf_div(v, d);
}

// (v x block) x tensor as f32.
fn e4m3_postscale(v: u32, s: ElemScale) -> u32 {
    return sf_mul(sf_mul(v, s.block), s.tensor);
}
