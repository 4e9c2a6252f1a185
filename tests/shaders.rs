//! Every kernel, assembled from its library pieces, parses and validates as WGSL (naga),
//! without needing a GPU.

use lowp::gpu::shader::{assemble, kernel_names, needs_f16};
use wgpu::naga;

#[test]
fn every_kernel_validates() {
    let mut n = 0;
    for k in kernel_names() {
        let src = assemble(k).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{k}: {}", e.emit_to_string(&src)));
        let caps = if needs_f16(k) {
            naga::valid::Capabilities::SHADER_FLOAT16
        } else {
            naga::valid::Capabilities::empty()
        };
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{k}: {}", e.emit_to_string(&src)));
        n += 1;
    }
    assert!(n >= 9);
}
