//! A cache of compiled compute pipelines, keyed by kernel and entry point.

use super::shader::assemble;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Compiled pipelines, built on first use.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<(String, String, String), Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// The pipeline of `entry` in `kernel` with the given overridable constants, compiled
    /// the first time it is asked for.
    pub fn get(
        &self,
        device: &wgpu::Device,
        kernel: &str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let key = (
            kernel.to_string(),
            entry.to_string(),
            format!("{constants:?}"),
        );
        if let Some(p) = self.map.lock().unwrap().get(&key) {
            return p.clone();
        }
        let src = assemble(kernel).unwrap_or_else(|| panic!("no kernel named {kernel}"));
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let p = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            }),
        );
        self.map.lock().unwrap().insert(key, p.clone());
        p
    }
}
