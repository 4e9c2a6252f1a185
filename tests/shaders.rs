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
    let caps = if needs_f16(k) {
        naga::valid::Capabilities::SHADER_FLOAT16
    } else {
        naga::valid::Capabilities::empty()
    };
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{k}: {}", e.emit_to_string(src)));
}

/// Every kernel also validates compiled for fixed formats: an MX input, a fixed-point one, a
/// raw one, a stochastic e5m2 output, e4m3 and MX GEMM operands.
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
    };
    for k in kernel_names() {
        let src = assemble_specialised(k, &s).unwrap();
        if src.contains("fn out_fmt") || src.contains("fn fmt_a") {
            assert_ne!(src, assemble(k).unwrap(), "{k}: nothing specialised");
        }
        validate(k, &src);
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
