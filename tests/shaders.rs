//! Every kernel, assembled from its library pieces, parses and validates as WGSL (naga),
//! without needing a GPU.

use lowp::format::Format;
use lowp::gpu::params::{FmtParams, InParams, OutParams, OutPhase};
use lowp::gpu::shader::{assemble, assemble_specialised, kernel_names, needs_f16};
use lowp::gpu::specialise::Specialisation;
use lowp::quant::{QuantSpec, Rounding};
use wgpu::naga;

fn validate(k: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{k}: {}", e.emit_to_string(src)));
    let mut caps = naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::FLOAT64;
    if needs_f16(k) {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{k}: {}", e.emit_to_string(src)));
}

/// Every kernel also validates compiled for fixed formats: an MX input, a fixed-point one, a
/// raw one, a stochastic e5m2 output (its codes share words: atomic stores) or an fp32 one
/// (a word each: plain stores, or 16-byte vectors four elements an invocation), e4m3 and
/// MX GEMM operands, soft-float gated by subgroups
/// or through f64, the panel kernels' A values broadcast across subgroups or not, their
/// panels in storage buffers or textures.
#[test]
fn every_specialised_kernel_validates() {
    let spec = |f: &str| QuantSpec::new(f.parse::<Format>().unwrap());
    let e5m2 = QuantSpec {
        rounding: Rounding::Stochastic { bits: 23 },
        ..spec("e5m2")
    };
    let element = |f: &str| FmtParams::new(&f.parse::<Format>().unwrap().element());
    let s = Specialisation {
        ins: [
            Some(InParams::packed(&spec("mxfp8_e4m3"))),
            Some(InParams::packed(&spec("fixed(wl=8,fl=4)"))),
            Some(InParams::raw()),
            None,
        ],
        out: Some(OutParams::packed(&e5m2, OutPhase::Store, false)),
        operands: Some([(element("e4m3"), 0), (element("mxfp8_e4m3"), 2)]),
        subgroups: true,
        f64_arith: false,
        f64_subnormals: false,
        broadcast: false,
        quads: false,
        panel_textures: false,
    };
    // fp32 output, soft-float through f64, A's values broadcast and the panels in
    // textures (the CPU adapters' form).
    let fp32 = Specialisation {
        out: Some(OutParams::packed(&spec("fp32"), OutPhase::Store, false)),
        f64_arith: true,
        broadcast: true,
        panel_textures: true,
        ..s
    };
    // Four elements an invocation: the raw input and the fp32 output as 16-byte vectors.
    let quads = Specialisation {
        quads: true,
        ..fp32
    };
    // Through f64 with the device's conversions (a CPU adapter that keeps subnormals).
    let native = Specialisation {
        f64_subnormals: true,
        ..quads
    };
    for k in kernel_names() {
        for s in [&s, &fp32, &quads, &native] {
            let src = assemble_specialised(k, s).unwrap();
            if src.contains("fn out_fmt") || src.contains("fn fmt_a") {
                assert_ne!(src, assemble(k).unwrap(), "{k}: nothing specialised");
            }
            if src.contains("fn sf_mul(") {
                // The gate tests a whole subgroup (both specialisations have subgroups);
                // the f64 form has no gate.
                assert_eq!(src.contains("subgroupAll"), !s.f64_arith, "{k}");
                assert_eq!(
                    src.contains("fn sf_to_f64"),
                    s.f64_arith && !s.f64_subnormals,
                    "{k}: sf_mul's form"
                );
                assert_eq!(
                    src.contains("f32(f64(bitcast<f32>(a))"),
                    s.f64_subnormals,
                    "{k}: sf_mul's conversions"
                );
            }
            if src.contains("fn spread8(") {
                assert_eq!(src.contains("subgroupBroadcast"), s.broadcast, "{k}");
            }
            if src.contains("fn panel_a(") {
                assert!(
                    !src.contains("$PANELS"),
                    "{k}: the panels' placeholder left"
                );
                let textures = src.contains("pa: texture_2d<f32>");
                assert_eq!(textures, s.panel_textures, "{k}: the panels' bindings");
            }
            if src.contains("out_words") {
                let plain = src.contains("out_words: array<u32>");
                assert_eq!(plain, std::ptr::eq(s, &fp32), "{k}: out_words");
                let vectors = src.contains("out_words: array<vec4<u32>>");
                assert_eq!(vectors, s.quads, "{k}: out_words");
            }
            if src.contains("in2_words") {
                // Only the raw input owns its words; the MX and fixed-point ones share them.
                let vectors = src.contains("in2_words: array<vec4<u32>>");
                assert_eq!(vectors, s.quads, "{k}: in2_words");
                assert!(!src.contains("in0_words: array<vec4"), "{k}: in0_words");
            }
            validate(k, &src);
        }
    }
}

#[test]
fn every_kernel_validates() {
    let mut n = 0;
    for k in kernel_names() {
        validate(k, &assemble(k).unwrap());
        n += 1;
    }
    assert!(n >= 9);
}

/// The entry points that loop over their work items are the ones dispatched with fewer
/// workgroups than items (`loops_over_items`, read from the source): each takes
/// `num_workgroups` and starts with `item_run`, and no other entry point does either, so no
/// dispatch leaves items unrun. The hot elementwise entries and the panel packs loop.
#[test]
fn looping_entries_take_their_items_from_item_run() {
    use lowp::gpu::shader::loops_over_items;
    let mut looping = vec![];
    for k in kernel_names() {
        let module = naga::front::wgsl::parse_str(&assemble(k).unwrap()).unwrap();
        for ep in &module.entry_points {
            let takes_groups = ep.function.arguments.iter().any(|a| {
                matches!(
                    a.binding,
                    Some(naga::Binding::BuiltIn(naga::BuiltIn::NumWorkGroups))
                )
            });
            let runs = ep.function.body.iter().any(|s| {
                matches!(s, naga::Statement::Call { function, .. }
                    if module.functions[*function].name.as_deref() == Some("item_run"))
            });
            assert_eq!(takes_groups, runs, "{k}/{}", ep.name);
            assert_eq!(loops_over_items(k, &ep.name), runs, "{k}/{}", ep.name);
            if runs {
                looping.push(format!("{k}/{}", ep.name));
            }
        }
    }
    for hot in [
        "relu/forward",
        "relu/backward",
        "maxpool/forward",
        "maxpool/backward_pairs",
        "update/sgd",
        "conv_panel/pack",
        "gemm_panel/pack",
        "conv_taps/main",
        "conv_reduce/main",
    ] {
        assert!(looping.iter().any(|l| l == hot), "{hot}: {looping:?}");
    }
    assert!(!loops_over_items("conv_panel", "main"));
}
