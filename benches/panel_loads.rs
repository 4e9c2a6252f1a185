//! What the panel product (8 x 8 sums per invocation, 8 x 8 invocations, a 512^3 f32 GEMM)
//! reaches on this adapter reading its panels from storage buffers or from rgba32float
//! textures, the two alternated five times: the measurement behind the choice of loads for
//! a CPU adapter's kernels (llvmpipe loads a storage value lane by lane, a texel with a
//! vector gather). Wall clock of one submission of 5 dispatches after a warm-up.

mod common;

use common::{raw_kernel, raw_seconds};
use lowp::gpu::GpuContext;

/// The GEMM's size (m = n = k).
const N: u32 = 512;

/// The kernel, its panels A [k][i] and B [k][j] in textures or storage buffers.
fn kernel(textures: bool) -> String {
    let decl = if textures {
        "@group(0) @binding(1) var ta: texture_2d<f32>;
         @group(0) @binding(2) var tb: texture_2d<f32>;"
    } else {
        "@group(0) @binding(1) var<storage, read> ta: array<vec4<f32>>;
         @group(0) @binding(2) var<storage, read> tb: array<vec4<f32>>;"
    };
    let load = |t: &str, x: &str| match textures {
        true => format!("textureLoad({t}, vec2<u32>({x}, k), 0)"),
        false => format!("{t}[k * {}u + {x}]", N / 4),
    };
    let (mut vars, mut body, mut puts) = (String::new(), String::new(), String::new());
    for r in 0..8 {
        let a = format!("a{}.{}", r / 4, ["x", "y", "z", "w"][r % 4]);
        vars += &format!("var c{r}0 = vec4<f32>(0.0); var c{r}1 = vec4<f32>(0.0);\n");
        body += &format!("c{r}0 = fma(vec4({a}), b0, c{r}0); c{r}1 = fma(vec4({a}), b1, c{r}1);\n");
        puts += &format!(
            "c[(row + {r}u) * {w}u + col / 4u] = c{r}0; c[(row + {r}u) * {w}u + col / 4u + 1u] = c{r}1;\n",
            w = N / 4
        );
    }
    let (a0, a1) = (load("ta", "ia"), load("ta", "ia + 1u"));
    let (b0, b1) = (load("tb", "jb"), load("tb", "jb + 1u"));
    format!(
        "{decl}
        @group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
        @compute @workgroup_size(8, 8)
        fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
            let row = wid.y * 64u + lid.y * 8u;
            let col = wid.x * 64u + lid.x * 8u;
            let ia = row / 4u;
            let jb = col / 4u;
            {vars}
            for (var k = 0u; k < {N}u; k++) {{
                let a0 = {a0}; let a1 = {a1}; let b0 = {b0}; let b1 = {b1};
                {body}
            }}
            {puts}
        }}"
    )
}

fn main() {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let d = &ctx.device;
    let texture = || {
        common::texture(
            &ctx,
            "panel",
            (N / 4, N),
            wgpu::TextureFormat::Rgba32Float,
            wgpu::TextureUsages::TEXTURE_BINDING,
        )
        .create_view(&Default::default())
    };
    let buffer = || {
        d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("panel"),
            size: (N * N * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (ta, tb) = (texture(), texture());
    let (ba, bb, out) = (buffer(), buffer(), buffer());
    println!(
        "adapter: {} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    let mut best = [0.0f64; 2];
    for round in 0..10 {
        let textures = round % 2 == 1;
        let (a, b) = match textures {
            true => (
                wgpu::BindingResource::TextureView(&ta),
                wgpu::BindingResource::TextureView(&tb),
            ),
            false => (ba.as_entire_binding(), bb.as_entire_binding()),
        };
        let resources = vec![(1, a), (2, b), (3, out.as_entire_binding())];
        let kernel = raw_kernel(&ctx, &kernel(textures), resources);
        let run = |reps: u32| raw_seconds(&ctx, &kernel, (N / 64, N / 64, 1), reps);
        run(1);
        let gflops = 2.0 * (N as f64).powi(3) / run(5) / 1e9;
        best[textures as usize] = best[textures as usize].max(gflops);
        println!(
            "{N}^3 f32, panels in {}: {gflops:.2} GFLOP/s",
            if textures {
                "textures"
            } else {
                "storage buffers"
            }
        );
    }
    println!(
        "best of 5: storage buffers {:.2}, textures {:.2} GFLOP/s",
        best[0], best[1]
    );
}
