//! Shader assembly: WGSL has no #include, so a kernel is the shared library pieces plus its own file.

/// The pieces of `shaders/lib/` every kernel is assembled with, in dependency order.
const LIB: [(&str, &str); 5] = [
    ("params.wgsl", include_str!("../../shaders/lib/params.wgsl")),
    ("rng.wgsl", include_str!("../../shaders/lib/rng.wgsl")),
    ("quant.wgsl", include_str!("../../shaders/lib/quant.wgsl")),
    ("scales.wgsl", include_str!("../../shaders/lib/scales.wgsl")),
    ("stats.wgsl", include_str!("../../shaders/lib/stats.wgsl")),
];

/// The kernels, by name.
const KERNELS: [(&str, &str); 5] = [
    ("quantize", include_str!("../../shaders/quantize.wgsl")),
    ("dequantize", include_str!("../../shaders/dequantize.wgsl")),
    (
        "fake_quantize",
        include_str!("../../shaders/fake_quantize.wgsl"),
    ),
    ("amax", include_str!("../../shaders/amax.wgsl")),
    ("mx_scales", include_str!("../../shaders/mx_scales.wgsl")),
];

/// The full WGSL source of a kernel: library pieces, then the kernel file.
pub fn assemble(kernel: &str) -> Option<String> {
    let body = KERNELS.iter().find(|(n, _)| *n == kernel)?.1;
    let mut src = String::new();
    for (name, text) in LIB.iter().copied().chain([(kernel, body)]) {
        src.push_str("// ---- ");
        src.push_str(name);
        src.push_str(" ----\n");
        src.push_str(text);
        src.push('\n');
    }
    Some(src)
}

/// Names of every kernel.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|(n, _)| *n)
}
