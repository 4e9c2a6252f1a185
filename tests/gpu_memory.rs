//! The device-memory ledger counts every buffer lowp makes, by purpose, until its last
//! handle goes: checked against the sizes asked for, against wgpu's own count of buffer
//! memory (an independent figure from the backend's allocator), and, for a trainer,
//! against the packed tensor bytes its memory report gives.

mod common;

use lowp::format::Format;
use lowp::gpu::buffers::{staging, uniform, upload_as, zeroed_as};
use lowp::gpu::memory::{Purpose, wgpu_memory_bytes};
use lowp::train::gpu::GpuTrainer;
use lowp::train::model::Model;
use lowp::train::plan::{Plan, TrainConfig};
use lowp::train::precision::PrecisionMap;

#[test]
fn the_ledger_counts_every_buffer_until_its_last_handle_goes() {
    let c = common::own_gpu();
    c.wait().unwrap();
    let (before, hal_before) = (c.memory(), wgpu_memory_bytes(&c.device));
    let a = zeroed_as(&c, Purpose::Tensor, "a", 1000).unwrap();
    let b = upload_as(&c, Purpose::Working, "b", &[7; 300]).unwrap();
    let s = staging(&c, 64);
    let u = uniform(&c, &[1u32; 4]);
    let a2 = a.clone();
    let now = c.memory().since(&before);
    assert_eq!(now.of(Purpose::Tensor), 4000);
    assert_eq!(now.of(Purpose::Working), 1200);
    assert_eq!(now.of(Purpose::Staging), 64);
    assert_eq!(now.of(Purpose::Parameters), 16);
    assert_eq!(
        (now.total(), now.buffers),
        (5280, 4),
        "a clone is not another buffer"
    );
    // wgpu's own count: at least what was asked for (allocations round up).
    c.wait().unwrap();
    let hal = wgpu_memory_bytes(&c.device) - hal_before;
    assert!(hal >= 5280, "wgpu counts {hal} bytes for 5,280 asked");
    eprintln!("4 buffers of 5,280 bytes: wgpu counts {hal}");
    drop(a);
    assert_eq!(
        c.memory().since(&before).of(Purpose::Tensor),
        4000,
        "a clone lives"
    );
    drop((a2, b, s, u));
    let after = c.memory();
    assert_eq!(after.total(), before.total());
    assert_eq!(after.buffers, before.buffers);
}

/// A pooled texture (the panel kernels' panels on a CPU adapter) is counted by its texel
/// bytes while the context holds it, and wgpu's count of the device's memory covers it.
#[test]
fn the_ledger_counts_pooled_textures() {
    let c = common::own_gpu();
    c.wait().unwrap();
    let (before, hal_before) = (c.memory(), wgpu_memory_bytes(&c.device));
    let t = c.scratch_texture("test texture", 2500).unwrap().unwrap();
    assert_eq!(t.size(), (1024, 3), "2,500 texels in rows of 1,024");
    let now = c.memory().since(&before);
    assert_eq!(
        (now.of(Purpose::Temporary), now.buffers),
        (3 * 1024 * 16, 1)
    );
    let again = c.scratch_texture("test texture", 1000).unwrap().unwrap();
    assert_eq!(again.size(), (1024, 3), "the pooled texture, not another");
    assert_eq!(c.memory().since(&before).buffers, 1);
    c.wait().unwrap();
    let hal = wgpu_memory_bytes(&c.device) - hal_before;
    assert!(
        hal >= 3 * 1024 * 16,
        "wgpu counts {hal} bytes for 49,152 asked"
    );
    let taller = c.scratch_texture("test texture", 5000).unwrap().unwrap();
    assert_eq!(taller.size(), (1024, 5));
    assert_eq!(c.scratch_texture_rows("test texture"), Some(5));
    drop((t, again));
    let now = c.memory().since(&before);
    assert_eq!(
        (now.of(Purpose::Temporary), now.buffers),
        (5 * 1024 * 16, 1)
    );
    let rows = c.device.limits().max_texture_dimension_2d as usize + 1;
    assert!(
        c.scratch_texture("test texture", 1024 * rows)
            .unwrap()
            .is_none()
    );
}

/// A trainer's tensor buffers in the ledger are exactly the packed bytes its memory report
/// gives; wgpu's count of the device's buffer memory covers everything the ledger holds.
#[test]
fn a_trainers_tensor_bytes_are_its_reported_packed_bytes() {
    let c = common::own_gpu();
    let model = Model::lenet([1, 12, 12], 4).unwrap();
    let hfp8 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/precision/hfp8.toml"
    ))
    .unwrap();
    for map in [
        PrecisionMap::uniform(Format::FP32),
        PrecisionMap::parse(&hfp8).unwrap(),
    ] {
        let plan = Plan::new(model.clone(), &map, map.master, TrainConfig::default(), 1).unwrap();
        let before = c.memory();
        let t = GpuTrainer::new(&c, plan, 8).unwrap();
        let m = c.memory().since(&before);
        assert_eq!(
            m.of(Purpose::Tensor),
            t.stored_bytes().total(),
            "tensor buffers vs the packed bytes reported"
        );
        c.wait().unwrap();
        let all = c.memory().total();
        let hal = wgpu_memory_bytes(&c.device);
        assert!(hal >= all, "wgpu counts {hal} bytes, the ledger {all}");
        eprintln!(
            "{} tensors, {} working buffers, {} in all; wgpu counts {hal}",
            m.of(Purpose::Tensor),
            m.of(Purpose::Working),
            m.total()
        );
    }
}

/// Beside its packed tensors a trainer holds f32 buffers within the bound its code states
/// (`GpuTrainer::working_bound`: a few batch-sized buffers and the update's outputs, not an f32
/// copy of every tensor), and the ledger's total is packed bytes plus that plus a few
/// small buffers (labels, losses, statistics and the rounding statistics' slots).
#[test]
fn a_trainers_device_bytes_are_packed_bytes_plus_the_stated_working_bound() {
    let c = common::own_gpu();
    let hfp8 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/precision/hfp8.toml"
    ))
    .unwrap();
    for model in [
        Model::lenet([1, 12, 12], 4).unwrap(),
        Model::resnet(1, [3, 8, 8], 4).unwrap(),
    ] {
        for map in [
            PrecisionMap::uniform(Format::FP32),
            PrecisionMap::parse(&hfp8).unwrap(),
        ] {
            let config = TrainConfig {
                kind: lowp::train::plan::OptimKind::Adam,
                ..Default::default()
            };
            let plan = Plan::new(model.clone(), &map, map.master, config, 1).unwrap();
            let before = c.memory();
            let batch = 6;
            let t = GpuTrainer::new(&c, plan, batch).unwrap();
            let m = c.memory().since(&before);
            let (packed, bound) = (t.stored_bytes().total(), t.working_bound());
            let widest =
                4 * batch as u64 * model.layers.iter().map(|l| l.outputs()).max().unwrap() as u64;
            assert_eq!(m.of(Purpose::Tensor), packed);
            assert!(
                m.of(Purpose::Working) <= bound && m.of(Purpose::Working) >= 3 * widest,
                "f32 buffers {} against the bound {bound}",
                m.of(Purpose::Working)
            );
            // Labels, losses, statistics words and the rounding statistics' slots.
            let other = 4 * (3 * batch as u64 + 64) + t.statistics_bytes();
            assert!(m.of(Purpose::Other) <= other, "{m:?}");
            // The context's kernel parameters: the one chunk setting up the trainer fills
            // (a chunk holds 256 dispatches' parameters), and the operand parameters of the
            // conversions that round the initial values into the kept tensors, one buffer a
            // distinct rounding (`GpuContext::shared_uniform`; these maps have at most 8).
            let params = m.of(Purpose::Parameters);
            let operands = 8 * std::mem::size_of::<lowp::gpu::params::IoParams>() as u64;
            assert!(params <= lowp::gpu::param_ring::CHUNK + operands, "{m:?}");
            assert!(m.total() <= packed + bound + m.of(Purpose::Other) + params);
        }
    }
}
