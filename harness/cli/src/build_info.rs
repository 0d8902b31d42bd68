//! The results manifest's facts about this binary.

use edgebench_core::results::Manifest;

/// CPU features this binary was compiled for (`cfg(target_feature)`), as opposed to those the CPU has.
pub fn compiled_cpu_features() -> Vec<String> {
    let mut f = Vec::new();
    macro_rules! feat {
        ($($name:tt),*) => { $( if cfg!(target_feature = $name) { f.push($name.to_string()); } )* };
    }
    feat!("sse2", "sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512vnni", "neon", "dotprod", "i8mm");
    f
}

/// A manifest with everything known before the run starts.
pub fn manifest() -> Manifest {
    Manifest {
        edgebench_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("EDGEBENCH_GIT_COMMIT").into(),
        rustc: env!("EDGEBENCH_RUSTC").into(),
        target: env!("EDGEBENCH_TARGET").into(),
        profile: env!("EDGEBENCH_PROFILE").into(),
        cpu_features_compiled: compiled_cpu_features(),
        backend_versions: crate::backends::versions(),
        suite: Default::default(),
        command_line: std::env::args().collect(),
        resumed: Vec::new(),
    }
}
