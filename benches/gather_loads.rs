//! What a gather (each invocation reads one value at an address that differs across lanes)
//! costs on this adapter from a storage buffer and from an r32float texture, alternated
//! five times: wall clock of one submission of 5 dispatches over 4 Mi values after a warm-up.

mod common;

use common::{raw_kernel, raw_seconds, texture};
use lowp::gpu::GpuContext;

/// Values gathered per dispatch.
const N: u32 = 1 << 22;
/// The texture's width in texels.
const W: u32 = 4096;

/// The kernel: out[e] = src[e ^ 3] (lanes permuted in fours, local but divergent).
fn kernel(texture: bool) -> String {
    let (decl, load) = if texture {
        (
            "@group(0) @binding(1) var src: texture_2d<f32>;",
            format!("textureLoad(src, vec2<u32>(s % {W}u, s / {W}u), 0).x"),
        )
    } else {
        (
            "@group(0) @binding(1) var<storage, read> src: array<f32>;",
            "src[s]".to_string(),
        )
    };
    format!(
        "{decl}
        @group(0) @binding(2) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(256)
        fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
            let e = gid.x;
            let s = e ^ 3u;
            out[e] = {load};
        }}"
    )
}

fn main() {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let d = &ctx.device;
    let tex = texture(
        &ctx,
        "gather source",
        (W, N / W),
        wgpu::TextureFormat::R32Float,
        wgpu::TextureUsages::TEXTURE_BINDING,
    )
    .create_view(&Default::default());
    let buffer = || {
        d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gather"),
            size: (N * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (src, out) = (buffer(), buffer());
    println!(
        "adapter: {} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    let mut best = [f64::MAX; 2];
    for round in 0..10 {
        let texture = round % 2 == 1;
        let s = match texture {
            true => wgpu::BindingResource::TextureView(&tex),
            false => src.as_entire_binding(),
        };
        let kernel = raw_kernel(
            &ctx,
            &kernel(texture),
            vec![(1, s), (2, out.as_entire_binding())],
        );
        let run = |reps: u32| raw_seconds(&ctx, &kernel, (N / 256, 1, 1), reps);
        run(1);
        let ns = run(5) / N as f64 * 1e9;
        best[texture as usize] = best[texture as usize].min(ns);
        let from = if texture {
            "a texture"
        } else {
            "a storage buffer"
        };
        println!("gather from {from}: {ns:.2} ns per value");
    }
    println!(
        "best of 5: storage buffer {:.2}, texture {:.2} ns per value",
        best[0], best[1]
    );
}
