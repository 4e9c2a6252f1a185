// sf_mul and sf_add through f64 with the device's own conversions, for a CPU adapter whose
// f32 <-> f64 conversions keep subnormals (checked against src/softfloat.rs when the
// context opens, src/gpu/f64_probe.rs; else softfloat_f64.wgsl builds them by hand).
// Bit for bit the integer path's, by the arguments of softfloat_f64.wgsl: a product of two
// f32 values is exact in f64, and a sum rounded to f64 then to f32 is the correctly
// rounded f32 sum; f64 carries infinities and NaN through, and the conversion to f32
// rounds (ties to even) into the subnormal range and overflows to infinity. What the
// conversions cannot give is kept here: NaN results are the canonical NaN, and zeros take
// IEEE's signs (a product's from its operands, a sum's -0 only from two -0) whatever a
// compiler allowed to ignore signed zeros did.

fn sf_mul(a: u32, b: u32) -> u32 {
    let r = bitcast<u32>(f32(f64(bitcast<f32>(a)) * f64(bitcast<f32>(b))));
    let m = r & 0x7fffffffu;
    let signed = select(r, (a ^ b) & 0x80000000u, m == 0u);
    return select(signed, CANONICAL_NAN, m > 0x7f800000u);
}

fn sf_add(a: u32, b: u32) -> u32 {
    let r = bitcast<u32>(f32(f64(bitcast<f32>(a)) + f64(bitcast<f32>(b))));
    let m = r & 0x7fffffffu;
    let signed = select(r, a & b & 0x80000000u, m == 0u);
    return select(signed, CANONICAL_NAN, m > 0x7f800000u);
}
