//! Shader assembly: WGSL has no #include, so a kernel is the library pieces it names plus its own file.

use super::specialise::Specialisation;
use std::sync::OnceLock;

/// The pieces of `shaders/lib/`, in dependency order.
const LIB: &[(&str, &str)] = &[
    (
        "elem_params",
        include_str!("../../shaders/lib/elem_params.wgsl"),
    ),
    ("fmt", include_str!("../../shaders/lib/fmt.wgsl")),
    (
        "quant_params",
        include_str!("../../shaders/lib/quant_params.wgsl"),
    ),
    ("rng", include_str!("../../shaders/lib/rng.wgsl")),
    ("quant", include_str!("../../shaders/lib/quant.wgsl")),
    (
        "io_params",
        include_str!("../../shaders/lib/io_params.wgsl"),
    ),
    (
        "packed_load",
        include_str!("../../shaders/lib/packed_load.wgsl"),
    ),
    (
        "packed_store",
        include_str!("../../shaders/lib/packed_store.wgsl"),
    ),
    (
        "softfloat",
        include_str!("../../shaders/lib/softfloat.wgsl"),
    ),
    ("scales", include_str!("../../shaders/lib/scales.wgsl")),
    ("stats", include_str!("../../shaders/lib/stats.wgsl")),
    ("operands", include_str!("../../shaders/lib/operands.wgsl")),
    (
        "gemm_index",
        include_str!("../../shaders/lib/gemm_index.wgsl"),
    ),
    (
        "conv_index",
        include_str!("../../shaders/lib/conv_index.wgsl"),
    ),
    ("lanes", include_str!("../../shaders/lib/lanes.wgsl")),
];

const QUANT_LIB: &[&str] = &[
    "fmt",
    "quant_params",
    "rng",
    "quant",
    "softfloat",
    "scales",
    "stats",
];
// The GEMM family rounds its output as it stores it; the elementwise kernels also decode
// their inputs as they load them (a kernel's layout holds only the bindings it uses).
const GEMM_LIB: &[&str] = &[
    "fmt",
    "rng",
    "quant",
    "io_params",
    "packed_store",
    "softfloat",
    "operands",
    "gemm_index",
    "lanes",
];
const ELEM_LIB: &[&str] = &[
    "fmt",
    "rng",
    "quant",
    "io_params",
    "packed_load",
    "packed_store",
    "softfloat",
    "elem_params",
];
const CONV_LIB: &[&str] = &[
    "fmt",
    "rng",
    "quant",
    "io_params",
    "packed_store",
    "softfloat",
    "operands",
    "conv_index",
    "lanes",
];
const GEMM_EXACT: &str = include_str!("../../shaders/gemm_exact.wgsl");
const GEMM_F32: &str = concat!(
    include_str!("../../shaders/register_tile.wgsl"),
    include_str!("../../shaders/gemm_f32.wgsl")
);
const GEMM_I8: &str = include_str!("../../shaders/gemm_i8.wgsl");
const GEMM_REDUCE: &str = include_str!("../../shaders/gemm_reduce.wgsl");
const GEMM_PANEL: &str = concat!(
    include_str!("../../shaders/register_tile.wgsl"),
    include_str!("../../shaders/gemm_panel.wgsl"),
    include_str!("../../shaders/gemm_segments.wgsl")
);
/// The panel kernel with convolution addressing, `thin` reading B from input rows.
const CONV_PANEL: &str = concat!(
    include_str!("../../shaders/register_tile.wgsl"),
    include_str!("../../shaders/gemm_panel.wgsl"),
    include_str!("../../shaders/conv_segments.wgsl")
);

/// The kernels: name, library pieces, source.
const KERNELS: &[(&str, &[&str], &str)] = &[
    (
        "fake_quantize",
        QUANT_LIB,
        include_str!("../../shaders/fake_quantize.wgsl"),
    ),
    ("amax", QUANT_LIB, include_str!("../../shaders/amax.wgsl")),
    (
        "mx_scales",
        QUANT_LIB,
        include_str!("../../shaders/mx_scales.wgsl"),
    ),
    ("gemm_exact", GEMM_LIB, GEMM_EXACT),
    ("gemm_f16", GEMM_LIB, GEMM_F32),
    ("gemm_f32", GEMM_LIB, GEMM_F32),
    ("gemm_i8", GEMM_LIB, GEMM_I8),
    ("gemm_reduce", GEMM_LIB, GEMM_REDUCE),
    ("gemm_panel", GEMM_LIB, GEMM_PANEL),
    // Convolutions run the GEMM bodies with convolution addressing.
    ("conv_exact", CONV_LIB, GEMM_EXACT),
    ("conv_f16", CONV_LIB, GEMM_F32),
    ("conv_f32", CONV_LIB, GEMM_F32),
    ("conv_i8", CONV_LIB, GEMM_I8),
    ("conv_reduce", CONV_LIB, GEMM_REDUCE),
    ("conv_panel", CONV_LIB, CONV_PANEL),
    (
        "conv_taps",
        CONV_LIB,
        include_str!("../../shaders/conv_taps.wgsl"),
    ),
    ("relu", ELEM_LIB, include_str!("../../shaders/relu.wgsl")),
    (
        "softmax_xent",
        ELEM_LIB,
        include_str!("../../shaders/softmax_xent.wgsl"),
    ),
    (
        "col_sum",
        ELEM_LIB,
        include_str!("../../shaders/col_sum.wgsl"),
    ),
    (
        "update",
        ELEM_LIB,
        include_str!("../../shaders/update.wgsl"),
    ),
    ("mse", ELEM_LIB, include_str!("../../shaders/mse.wgsl")),
    (
        "batchnorm",
        ELEM_LIB,
        include_str!("../../shaders/batchnorm.wgsl"),
    ),
    (
        "avgpool",
        ELEM_LIB,
        include_str!("../../shaders/avgpool.wgsl"),
    ),
    (
        "residual",
        ELEM_LIB,
        include_str!("../../shaders/residual.wgsl"),
    ),
    (
        "loss_scale",
        ELEM_LIB,
        include_str!("../../shaders/loss_scale.wgsl"),
    ),
    (
        "maxpool",
        ELEM_LIB,
        include_str!("../../shaders/maxpool.wgsl"),
    ),
    (
        "linear",
        &["fmt", "rng", "quant", "softfloat"],
        include_str!("../../shaders/linear.wgsl"),
    ),
    (
        "halp",
        &["fmt", "rng", "quant", "softfloat"],
        include_str!("../../shaders/halp.wgsl"),
    ),
    (
        "out_scales",
        &[
            "fmt",
            "rng",
            "quant",
            "softfloat",
            "io_params",
            "elem_params",
        ],
        include_str!("../../shaders/out_scales.wgsl"),
    ),
];

/// The full WGSL source of a kernel: its library pieces, then the kernel file.
pub fn assemble(kernel: &str) -> Option<String> {
    assemble_specialised(kernel, &Specialisation::default())
}

/// The WGSL source of a kernel compiled for the operand formats of `spec`.
pub fn assemble_specialised(kernel: &str, spec: &Specialisation) -> Option<String> {
    let (_, libs, body) = KERNELS.iter().find(|(n, _, _)| *n == kernel)?;
    // The tiled kernel stages its operands as `Stage`: f16 in the *_f16 kernels.
    // (Naga takes subgroup builtins without WGSL's `enable subgroups`, which it refuses.)
    let mut src = String::new();
    src.push_str(match kernel {
        k if k.ends_with("_f16") => "enable f16;\nalias Stage = f16;\n",
        k if k.ends_with("_f32") => "alias Stage = f32;\n",
        _ => "",
    });
    src.push_str(&assemble_pieces(libs, kernel, body, spec));
    Some(src)
}

/// A kernel's WGSL from the library pieces `libs` (names of `shaders/lib/` files, put in
/// dependency order) and a body of its own: how tests build kernels of their own.
pub fn assemble_with(libs: &[&str], name: &str, body: &str) -> String {
    assemble_pieces(libs, name, body, &Specialisation::default())
}

/// Like [`assemble_with`], compiled for `spec` (formats, soft-float's subgroup gate).
pub fn assemble_with_spec(libs: &[&str], name: &str, body: &str, spec: &Specialisation) -> String {
    assemble_pieces(libs, name, body, spec)
}

fn assemble_pieces(libs: &[&str], name: &str, body: &str, spec: &Specialisation) -> String {
    let pieces = LIB
        .iter()
        .filter(|(lib, _)| libs.contains(lib))
        .copied()
        .chain([(name, body)]);
    let mut src = String::new();
    for (name, text) in pieces {
        src.push_str("// ---- ");
        src.push_str(name);
        src.push_str(" ----\n");
        if name == "packed_load" {
            for (k, (w, s)) in INPUT_BINDINGS.iter().enumerate() {
                src.push_str(&spec.in_words(k, *w));
                let copy = text
                    .replace("$K", &k.to_string())
                    .replace("$W", &w.to_string())
                    .replace("$S", &s.to_string());
                src.push_str(&copy);
            }
        } else if name == "lanes" {
            src.push_str(text);
            src.push_str(spec.lanes());
        } else if name == "softfloat" {
            src.push_str(spec.sf_arith());
            src.push_str(text);
        } else if name == "quant" {
            src.push_str(text);
            // E4M3 block arithmetic where an operand may need it, else stubs (never called).
            if spec.e4m3_blocks() && libs.contains(&"softfloat") {
                src.push_str(BLOCK_E4M3);
            } else {
                src.push_str(BLOCK_E4M3_STUBS);
            }
        } else if text.contains(PANELS) {
            src.push_str(&text.replace(PANELS, spec.panels()));
        } else if name == "packed_store" {
            src.push_str(spec.out_words());
            src.push_str(text);
        } else {
            src.push_str(text);
        }
        // The format accessors: constants where `spec` fixes a format, else the parameters.
        match name {
            "io_params" => src.push_str(&spec.io_accessors()),
            "operands" => src.push_str(&spec.operand_accessors()),
            _ => {}
        }
        src.push('\n');
    }
    src
}

/// Where a kernel's text takes the panel declarations of its specialisation (the line's
/// end left as the checkout has it, LF or CRLF).
const PANELS: &str = "// $PANELS";

/// The soft-float scaling of E4M3-scaled blocks around rounding and decoding.
const BLOCK_E4M3: &str = include_str!("../../shaders/lib/block_e4m3.wgsl");

/// What replaces [`BLOCK_E4M3`] in a kernel none of whose operands has E4M3 blocks.
const BLOCK_E4M3_STUBS: &str = "
fn e4m3_prescale(v: u32, s: ElemScale) -> u32 {
    return v;
}
fn e4m3_postscale(v: u32, s: ElemScale) -> u32 {
    return v;
}
";

/// The bindings of a fused kernel's inputs: (codes, scales) of in0 to in3.
pub const INPUT_BINDINGS: [(u32, u32); 4] = [(21, 22), (23, 24), (30, 31), (32, 33)];

/// Entry points that keep the gated soft-float even where the context computes through f64:
/// the linear model's residual pass, whose loops over a row's values (bounds from its
/// parameters) lavapipe 22.3 compiles again for each new set of parameters once their
/// bodies have no branch (gpu_linear's tests: 9.7 s gated, 282 s through f64).
const GATED_SOFTFLOAT: &[(&str, &str)] = &[("linear", "residual")];

/// Whether `entry` of `kernel` may take soft-float's f64 form (see
/// [`GpuContext::f64_softfloat`](super::GpuContext::f64_softfloat)).
pub fn takes_f64_softfloat(kernel: &str, entry: &str) -> bool {
    !GATED_SOFTFLOAT.contains(&(kernel, entry))
}

/// Whether `entry` of `kernel` loops over its work items, so that a dispatch may have fewer
/// invocations than items: its entry point takes `num_workgroups` (fmt.wgsl's `item_run`).
pub fn loops_over_items(kernel: &str, entry: &str) -> bool {
    static LOOPING: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    LOOPING
        .get_or_init(|| {
            let mut found = Vec::new();
            for (name, _, source) in KERNELS {
                for (at, _) in source.match_indices("@compute") {
                    let rest = &source[at..];
                    let Some(f) = rest.find("fn ") else { continue };
                    let rest = &rest[f + 3..];
                    let sig = &rest[..rest.find('{').unwrap_or(rest.len())];
                    let entry = sig.split('(').next().unwrap_or("").trim();
                    if sig.contains("@builtin(num_workgroups)") {
                        found.push((*name, entry));
                    }
                }
            }
            found
        })
        .iter()
        .any(|&(k, e)| k == kernel && e == entry)
}

/// Whether a kernel needs the SHADER_F16 device feature.
pub fn needs_f16(kernel: &str) -> bool {
    kernel.ends_with("_f16")
}

/// Names of every kernel.
pub fn kernel_names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|(n, _, _)| *n)
}
