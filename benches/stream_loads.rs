//! What a streaming load (invocation q reads 16-byte vector q and writes it doubled) costs on
//! this adapter, seven ways, alternated three times: each lane loading its own vector from a
//! storage buffer; a subgroup-sized workgroup loading its eight vectors at addresses the
//! same in every lane (outside any branch or loop) and each lane keeping its own with
//! selects; each lane fetching its texel from an rgba32float texture; each lane loading
//! vector q % 4096 of a 64 KiB uniform buffer (a source that stays in cache, unlike the
//! others' 16 MiB: what the load itself costs); each lane loading its vector as four f32
//! words (what a load costs: per word or per vector); and two ways to a sum of five words,
//! x[q..q+4] + x[q+4], that neighbouring lanes share: five word loads a lane, or one load a
//! lane and four subgroup shuffles (the neighbours' words, as a convolution's lanes can
//! share an input row's). Wall clock of one submission of 5 dispatches over 1 Mi vectors
//! after a warm-up. (llvmpipe 22.3 loads a storage value whose address differs across
//! lanes lane by lane, through the stack, and one the same in every lane, outside control
//! flow, once; a uniform value as a gather; lavapipe 25.0 loads storage values without the
//! stall.)

mod common;

use common::{raw_kernel, raw_seconds, texture};
use lowp::gpu::GpuContext;

/// Vectors per dispatch.
const N: u32 = 1 << 20;
/// The texture's width in texels.
const W: u32 = 1024;

/// Chunks of eight vectors a workgroup of the uniform way takes.
const CHUNKS: u32 = 8;
/// Workgroups along x of every dispatch.
const GX: u32 = 1024;

/// The ways to load.
const WAYS: [&str; 7] = [
    "lane by lane",
    "uniform and selected",
    "texture",
    "uniform buffer",
    "four words",
    "five words",
    "a word and four shuffles",
];
/// Vectors the uniform buffer holds (64 KiB, the binding size llvmpipe allows): lane q
/// reads vector q % UNIFORM_VECTORS.
const UNIFORM_VECTORS: u32 = 4096;

/// The kernel for way `w` of [`WAYS`].
fn kernel(w: usize) -> String {
    let out = "@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;";
    match w {
        0 => format!(
            "@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
            {out}
            @compute @workgroup_size(64)
            fn main(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {{
                let q = (wid.y * {GX}u + wid.x) * 64u + lid.x;
                out[q] = 2.0 * src[q];
            }}"
        ),
        1 => {
            // Eight chunks of eight vectors a workgroup, unrolled (a loop would be control
            // flow, where llvmpipe loads lane by lane again).
            let mut body = String::new();
            for c in 0..CHUNKS {
                let base = format!("(((wid.y * {GX}u + wid.x) * {CHUNKS}u + {c}u) * 8u)");
                for t in 0..8 {
                    body.push_str(&format!("let v{c}_{t} = src[{base} + {t}u];\n"));
                }
                body.push_str(&format!("var v{c} = v{c}_0;\n"));
                for t in 1..8 {
                    body.push_str(&format!("v{c} = select(v{c}, v{c}_{t}, lid.x == {t}u);\n"));
                }
                body.push_str(&format!("out[{base} + lid.x] = 2.0 * v{c};\n"));
            }
            format!(
                "@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
                {out}
                @compute @workgroup_size(8)
                fn main(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {{
                    {body}
                }}"
            )
        }
        4..=6 => {
            // Lane q's words 4q..4q+3 (four words), or q..q+4 (the other two).
            let sum = match w {
                4 => "vec4(src[4u * q], src[4u * q + 1u], src[4u * q + 2u], src[4u * q + 3u])",
                5 => "vec4(src[q], src[q + 1u], src[q + 2u], src[q + 3u]) + src[q + 4u]",
                _ => {
                    "vec4(v, subgroupShuffleDown(v, 1u), subgroupShuffleDown(v, 2u), \
                     subgroupShuffleDown(v, 3u)) + subgroupShuffleDown(v, 4u)"
                }
            };
            // Lane q's own word, which the shuffles pass on (only that way loads it).
            let own = if w == 6 { "let v = src[q];" } else { "" };
            format!(
                "@group(0) @binding(1) var<storage, read> src: array<f32>;
                {out}
                @compute @workgroup_size(64)
                fn main(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {{
                    let q = (wid.y * {GX}u + wid.x) * 64u + lid.x;
                    {own}
                    out[q] = 2.0 * {sum};
                }}"
            )
        }
        3 => format!(
            "@group(0) @binding(1) var<uniform> src: array<vec4<f32>, {UNIFORM_VECTORS}>;
            {out}
            @compute @workgroup_size(64)
            fn main(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {{
                let q = (wid.y * {GX}u + wid.x) * 64u + lid.x;
                out[q] = 2.0 * src[q % {UNIFORM_VECTORS}u];
            }}"
        ),
        _ => format!(
            "@group(0) @binding(1) var src: texture_2d<f32>;
            {out}
            @compute @workgroup_size(64)
            fn main(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {{
                let q = (wid.y * {GX}u + wid.x) * 64u + lid.x;
                out[q] = 2.0 * textureLoad(src, vec2(q % {W}u, q / {W}u), 0);
            }}"
        ),
    }
}

fn main() {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let d = &ctx.device;
    let tex = texture(
        &ctx,
        "stream source",
        (W, N / W),
        wgpu::TextureFormat::Rgba32Float,
        wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
    );
    let texture = tex.clone();
    let tex = tex.create_view(&Default::default());
    let buffer = || {
        d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stream"),
            size: (N * 16) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (src, out) = (buffer(), buffer());
    let copy_src = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("copy source"),
        size: (N * 16) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    println!(
        "adapter: {} ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    let mut best = [f64::MAX; WAYS.len()];
    let ubo = d.create_buffer(&wgpu::BufferDescriptor {
        label: Some("stream uniform source"),
        size: (UNIFORM_VECTORS * 16) as u64,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    for round in 0..3 * WAYS.len() {
        let w = round % WAYS.len();
        if w == 6 && !ctx.has_subgroups() {
            continue; // no shuffles on this device
        }
        let s = match w {
            2 => wgpu::BindingResource::TextureView(&tex),
            3 => ubo.as_entire_binding(),
            _ => src.as_entire_binding(),
        };
        let kernel = raw_kernel(&ctx, &kernel(w), vec![(1, s), (2, out.as_entire_binding())]);
        let groups = if w == 1 { N / 8 / CHUNKS } else { N / 64 };
        let run = |reps: u32| raw_seconds(&ctx, &kernel, (GX, groups / GX, 1), reps);
        run(1);
        let ns = run(5) / N as f64 * 1e9;
        best[w] = best[w].min(ns);
        println!("{}: {ns:.2} ns per vector", WAYS[w]);
    }
    // What filling the texture from a buffer costs (one copy of every vector).
    let copy = |reps: u32| {
        let t0 = std::time::Instant::now();
        let mut enc = d.create_command_encoder(&Default::default());
        for _ in 0..reps {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &copy_src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(16 * W),
                        rows_per_image: None,
                    },
                },
                texture.as_image_copy(),
                texture.size(),
            );
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait().unwrap();
        t0.elapsed().as_secs_f64() / reps as f64 / N as f64 * 1e9
    };
    copy(1);
    println!("copy buffer to texture: {:.2} ns per vector", copy(5));
    let best: Vec<String> = WAYS
        .iter()
        .zip(best)
        .map(|(way, ns)| match ns < f64::MAX {
            true => format!("{way} {ns:.2}"),
            false => format!("{way} n/a"),
        })
        .collect();
    println!("best of 3: {} ns per vector", best.join(", "));
}
