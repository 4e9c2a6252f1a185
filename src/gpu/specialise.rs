//! Operand formats compiled into a kernel: its format accessors return constants instead of
//! reading the uniform parameters, so the shader compiler folds each decode and rounding
//! down to the arithmetic of that format (one pipeline per combination of formats).

use super::params::{FmtParams, InParams, OutParams};

/// `sf_mul` and `sf_add` taking the hardware's f32 result where every lane of the subgroup
/// has it exact (`sf_all`), else lane by lane.
const SOFTFLOAT_GATE_SUBGROUP: &str = concat!(
    "fn sf_all(ok: bool) -> bool {\n    return subgroupAll(ok);\n}\n",
    include_str!("../../shaders/lib/softfloat_gate.wgsl")
);

/// `sf_mul` and `sf_add` taking the hardware's f32 result lane by lane where it is exact.
const SOFTFLOAT_GATE_LANE: &str = concat!(
    "fn sf_all(ok: bool) -> bool {\n    return false;\n}\n",
    include_str!("../../shaders/lib/softfloat_gate.wgsl")
);

/// The panel kernels' broadcast of A's values: lanes 0 to 7's values to every lane.
const LANES_BROADCAST: &str = "const BROADCAST: bool = true;\n\
fn spread8(v: f32) -> Lanes8 {\n\
    return Lanes8(\n\
        vec4(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u)),\n\
        vec4(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u)),\n\
    );\n\
}\n";

/// Without the broadcast (never called: `BROADCAST` is false).
const LANES_NONE: &str = "const BROADCAST: bool = false;\n\
fn spread8(v: f32) -> Lanes8 {\n\
    return Lanes8(vec4(v), vec4(v));\n\
}\n";

/// Output words each element owns, as 32-bit words.
const OUT_WORDS: &str = "@group(0) @binding(25) var<storage, read_write> out_words: array<u32>;
fn out_word_store(i: u32, v: u32) { out_words[i] = v; }
fn out_word_load(i: u32) -> u32 { return out_words[i]; }
fn out_word_or(i: u32, v: u32) { out_words[i] = out_words[i] | v; }
fn out_quad_store(q: u32, v: vec4<u32>) {
    out_words[4u * q] = v.x; out_words[4u * q + 1u] = v.y;
    out_words[4u * q + 2u] = v.z; out_words[4u * q + 3u] = v.w;
}
fn out_quad_load(q: u32) -> vec4<u32> {
    return vec4(out_words[4u * q], out_words[4u * q + 1u], out_words[4u * q + 2u], out_words[4u * q + 3u]);
}
";

/// Output words each element owns, as 16-byte vectors (a kernel of four elements an
/// invocation).
const OUT_QUADS: &str =
    "@group(0) @binding(25) var<storage, read_write> out_words: array<vec4<u32>>;
fn out_word_store(i: u32, v: u32) { out_words[i / 4u][i % 4u] = v; }
fn out_word_load(i: u32) -> u32 { return out_words[i / 4u][i % 4u]; }
fn out_word_or(i: u32, v: u32) { out_words[i / 4u][i % 4u] = out_words[i / 4u][i % 4u] | v; }
fn out_quad_store(q: u32, v: vec4<u32>) { out_words[q] = v; }
fn out_quad_load(q: u32) -> vec4<u32> { return out_words[q]; }
";

/// Output words that codes of several elements share, ORed atomically.
const OUT_ATOMICS: &str =
    "@group(0) @binding(25) var<storage, read_write> out_words: array<atomic<u32>>;
fn out_word_store(i: u32, v: u32) { atomicStore(&out_words[i], v); }
fn out_word_load(i: u32) -> u32 { return atomicLoad(&out_words[i]); }
fn out_word_or(i: u32, v: u32) { atomicOr(&out_words[i], v); }
fn out_quad_store(q: u32, v: vec4<u32>) {
    atomicStore(&out_words[4u * q], v.x); atomicStore(&out_words[4u * q + 1u], v.y);
    atomicStore(&out_words[4u * q + 2u], v.z); atomicStore(&out_words[4u * q + 3u], v.w);
}
fn out_quad_load(q: u32) -> vec4<u32> {
    return vec4(atomicLoad(&out_words[4u * q]), atomicLoad(&out_words[4u * q + 1u]),
        atomicLoad(&out_words[4u * q + 2u]), atomicLoad(&out_words[4u * q + 3u]));
}
";

/// Panels in storage buffers of 16-byte vectors.
const PANELS_BUFFERS: &str =
    "@group(0) @binding(12) var<storage, read_write> panel: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> pa: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> pb: array<vec4<f32>>;
fn panel_put(e: u32, v: vec4<f32>) { panel[e] = v; }
fn panel_a(e: u32) -> vec4<f32> { return pa[e]; }
fn panel_b(e: u32) -> vec4<f32> { return pb[e]; }
";

/// Texels a row of a panel texture holds (the divisor in [`PANELS_TEXTURES`]).
pub const PANEL_TEXELS: u32 = 1024;

/// Panels in rgba32float textures, vector e at texel (e % 1024, e / 1024): llvmpipe loads
/// a storage value lane by lane, inserting each into a vector through memory (a
/// store-forwarding stall per lane, ruinous on some CPUs), and fetches texels with vector
/// gathers.
const PANELS_TEXTURES: &str =
    "@group(0) @binding(12) var panel: texture_storage_2d<rgba32float, write>;
@group(0) @binding(13) var pa: texture_2d<f32>;
@group(0) @binding(14) var pb: texture_2d<f32>;
fn panel_texel(e: u32) -> vec2<u32> { return vec2(e % 1024u, e / 1024u); }
fn panel_put(e: u32, v: vec4<f32>) { textureStore(panel, panel_texel(e), v); }
fn panel_a(e: u32) -> vec4<f32> { return textureLoad(pa, panel_texel(e), 0); }
fn panel_b(e: u32) -> vec4<f32> { return textureLoad(pb, panel_texel(e), 0); }
";

/// `sf_mul` and `sf_add` through f64 (kernels then need the SHADER_F64 feature).
const SOFTFLOAT_F64: &str = include_str!("../../shaders/lib/softfloat_f64.wgsl");

/// `sf_mul` and `sf_add` through f64 with the device's own conversions.
const SOFTFLOAT_F64_NATIVE: &str = include_str!("../../shaders/lib/softfloat_f64_native.wgsl");

/// The formats one pipeline is compiled for; `None` reads that operand's format from the
/// dispatch's parameters at run time (the portable path, `LOWP_SPECIALISE=0` everywhere).
/// An accessor still reads the parameters it replaces (and the compiler drops the read), so
/// a kernel's bindings are the same whichever formats it is compiled for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Specialisation {
    /// The fused kernel's inputs in0 to in3.
    pub ins: [Option<InParams>; 4],
    /// The fused kernel's output format and rounding mode.
    pub out: Option<OutParams>,
    /// GEMM-shaped kernels' operands A and B: element format and scaling.
    pub operands: Option<[(FmtParams, u32); 2]>,
    /// Soft-float skips its integer path with one branch per subgroup where every lane
    /// has its hardware result (the device has subgroups).
    pub subgroups: bool,
    /// Soft-float multiplies and adds through f64 without a branch (a CPU adapter with
    /// f64), instead of taking the hardware's f32 result where it is exact.
    pub f64_arith: bool,
    /// Through f64 (`f64_arith`), with the device's f32 <-> f64 conversions, which keep
    /// subnormals (src/gpu/f64_probe.rs checked them), instead of conversions built by hand.
    pub f64_subnormals: bool,
    /// The panel kernels load A's values once per subgroup of 8 lanes and broadcast them
    /// (a CPU adapter whose subgroups are always 8 lanes).
    pub broadcast: bool,
    /// The kernel reads and writes four consecutive elements per invocation: operands
    /// whose elements own 32-bit words are declared as arrays of 16-byte vectors.
    pub quads: bool,
    /// The panel kernels keep their panels in rgba32float textures (a CPU adapter, which
    /// gathers a texel's 16 bytes with vector loads), not storage buffers.
    pub panel_textures: bool,
}

impl Specialisation {
    /// The same output and inputs, no operand formats (a kernel that only stores).
    pub fn io_only(&self) -> Specialisation {
        Specialisation {
            operands: None,
            ..*self
        }
    }

    /// The same, for a kernel of four elements an invocation.
    pub fn with_quads(&self) -> Specialisation {
        Specialisation {
            quads: true,
            ..*self
        }
    }

    /// Only the operand formats (a kernel that only decodes A and B), and where the panels
    /// live.
    pub fn operands_only(&self) -> Specialisation {
        Specialisation {
            operands: self.operands,
            panel_textures: self.panel_textures,
            ..Default::default()
        }
    }

    /// The same, the panels in textures (`on`) or storage buffers.
    pub fn with_panel_textures(&self, on: bool) -> Specialisation {
        Specialisation {
            panel_textures: on,
            ..*self
        }
    }

    /// The panel kernels' panel bindings (12: the panel `pack` writes; 13, 14: A's and B's
    /// panels) and their accessors: `panel_put(e, v)`, `panel_a(e)`, `panel_b(e)` for panel
    /// vector `e` (four f32 values).
    pub fn panels(&self) -> &'static str {
        if self.panel_textures {
            PANELS_TEXTURES
        } else {
            PANELS_BUFFERS
        }
    }

    /// Whether any operand may hold E4M3-scaled blocks (NVFP4): one of the formats fixed
    /// here has them, or none is fixed (the portable kernels read every format at run
    /// time). Decided from what [`Specialisation::key`] holds, so equal keys agree.
    pub fn e4m3_blocks(&self) -> bool {
        let e4m3 = |scaling: u32| scaling & 15 == 3;
        let out = self.out.filter(OutParams::rounds);
        let fixed =
            self.ins.iter().any(Option::is_some) || out.is_some() || self.operands.is_some();
        !fixed
            || self.ins.iter().flatten().any(|p| e4m3(p.scaling()))
            || out.is_some_and(|p| e4m3(p.scaling()))
            || self
                .operands
                .is_some_and(|o| o.iter().any(|(_, s)| e4m3(*s)))
    }

    /// The WGSL accessors of the fused operands' formats (`in0_fmt` to `in3_fmt`,
    /// `out_fmt`), for a kernel with `io_params`.
    pub fn io_accessors(&self) -> String {
        let mut src = String::new();
        for (k, spec) in self.ins.iter().enumerate() {
            src.push_str(&format!(
                "fn in{k}_fmt() -> InFmt {{\n    var f = IO.in{k};\n"
            ));
            if let Some(p) = spec {
                src.push_str(&format!("    {}\n", p.wgsl_fields()));
            }
            src.push_str("    return f;\n}\n");
        }
        src.push_str("fn out_fmt() -> OutFmt {\n    var f = IO.out;\n");
        // What the store does (raw, accumulate, amax or round; an addend or not), so that a
        // CPU adapter, which runs both sides of a branch, runs only that path.
        if let Some(p) = self.out {
            src.push_str(&format!("    {}\n", p.store_wgsl()));
        }
        if let Some(p) = self.out.filter(OutParams::rounds) {
            src.push_str(&format!("    {}\n", p.rounding_wgsl()));
        }
        src.push_str("    return f;\n}\n");
        src
    }

    /// The declaration of a fused kernel's output words and the functions that store,
    /// load and OR into them (one word, or four from a multiple of 4): plain where no two
    /// invocations share a word (the stores vectorise; 16-byte vectors for a kernel of
    /// [`quads`](Specialisation::quads)), atomic where they may (or the format is not
    /// known here).
    pub fn out_words(&self) -> &'static str {
        match (self.plain_out_words(), self.quads) {
            (true, true) => OUT_QUADS,
            (true, false) => OUT_WORDS,
            (false, _) => OUT_ATOMICS,
        }
    }

    /// Whether no two invocations store into one output word, so that its words need no
    /// atomics: each element owns its word, or the kernel takes four elements from a
    /// multiple of 4 an invocation and their codes fill whole words (8, 16 or 24 bits).
    fn plain_out_words(&self) -> bool {
        self.out
            .is_some_and(|p| p.exclusive_words() || (self.quads && p.quads_own_words()))
    }

    /// The declaration of input `k`'s words at binding `w` and the functions that load one
    /// word (`in{k}_word`) or four from a multiple of 4 (`in{k}_quad`): 16-byte vectors
    /// where the kernel takes [`quads`](Specialisation::quads) and each element owns a
    /// word, else 32-bit words.
    pub fn in_words(&self, k: usize, w: u32) -> String {
        let quads = self.quads && self.ins[k].is_some_and(|p| p.whole_words());
        let (ty, word, quad) = if quads {
            (
                "vec4<u32>",
                format!("in{k}_words[i / 4u][i % 4u]"),
                format!("in{k}_words[q]"),
            )
        } else {
            let at = |t: u32| format!("in{k}_words[4u * q + {t}u]");
            (
                "u32",
                format!("in{k}_words[i]"),
                format!("vec4({}, {}, {}, {})", at(0), at(1), at(2), at(3)),
            )
        };
        format!(
            "@group(0) @binding({w}) var<storage, read> in{k}_words: array<{ty}>;\n\
             fn in{k}_word(i: u32) -> u32 {{ return {word}; }}\n\
             fn in{k}_quad(q: u32) -> vec4<u32> {{ return {quad}; }}\n"
        )
    }

    /// Soft-float's `sf_mul` and `sf_add`: through f64 (with the device's conversions where
    /// `f64_subnormals`), or the hardware's f32 result gated
    /// by `sf_all` (a subgroup-wide test where the device has subgroups) with the integer
    /// path beside it.
    pub fn sf_arith(&self) -> &'static str {
        match (self.f64_arith, self.subgroups) {
            (true, _) if self.f64_subnormals => SOFTFLOAT_F64_NATIVE,
            (true, _) => SOFTFLOAT_F64,
            (false, true) => SOFTFLOAT_GATE_SUBGROUP,
            (false, false) => SOFTFLOAT_GATE_LANE,
        }
    }

    /// The panel kernels' `BROADCAST` and `spread8`: subgroup broadcasts, or a stub.
    pub fn lanes(&self) -> &'static str {
        if self.broadcast {
            LANES_BROADCAST
        } else {
            LANES_NONE
        }
    }

    /// The WGSL accessors of GEMM operands' formats (`fmt_a`, `fmt_b`, `scaling_a`,
    /// `scaling_b`), for a kernel with `operands`.
    pub fn operand_accessors(&self) -> String {
        let (fa, fb, sa, sb) = match self.operands {
            Some([(fa, sa), (fb, sb)]) => {
                (fa.wgsl(), fb.wgsl(), format!("{sa}u"), format!("{sb}u"))
            }
            None => (
                "G.fa".into(),
                "G.fb".into(),
                "G.a_scaling".into(),
                "G.b_scaling".into(),
            ),
        };
        let accessors = [
            ("fmt_a", "Fmt", fa),
            ("fmt_b", "Fmt", fb),
            ("scaling_a", "u32", sa),
            ("scaling_b", "u32", sb),
        ];
        accessors
            .iter()
            .map(|(name, ty, value)| format!("fn {name}() -> {ty} {{\n    return {value};\n}}\n"))
            .collect()
    }

    /// What distinguishes this specialisation's pipelines from others of the same kernel:
    /// the words its accessors are written from (built on every dispatch, so no text).
    pub fn key(&self) -> Vec<u32> {
        let mut k = Vec::with_capacity(128);
        let mut put = |words: Option<&[u32]>| match words {
            Some(w) => {
                k.push(1);
                k.extend_from_slice(w);
            }
            None => k.push(0),
        };
        for p in &self.ins {
            put(p.as_ref().map(bytemuck::bytes_of).map(bytemuck::cast_slice));
        }
        put(self.out.map(|p| p.store_words()).as_ref().map(|w| &w[..]));
        put(self
            .out
            .filter(OutParams::rounds)
            .map(|p| p.rounding_words())
            .as_ref()
            .map(|w| &w[..]));
        let operands = self.operands.map(|[(fa, sa), (fb, sb)]| {
            let mut w = Vec::with_capacity(34);
            for (f, s) in [(fa, sa), (fb, sb)] {
                w.extend_from_slice(&bytemuck::cast::<FmtParams, [u32; 16]>(f));
                w.push(s);
            }
            w
        });
        put(operands.as_deref());
        k.push(self.plain_out_words() as u32);
        k.push(self.subgroups as u32);
        k.push(self.f64_arith as u32);
        k.push(self.f64_subnormals as u32);
        k.push(self.broadcast as u32);
        k.push(self.quads as u32);
        k.push(self.panel_textures as u32);
        k
    }
}
