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
        binary_sha256: binary_sha256(),
        resumed: Vec::new(),
    }
}

/// SHA-256 of the running binary (`/proc/self/exe`), which a leaderboard matches against the versions it accepts;
/// `None` when the file cannot be read (then `submit` refuses to sign the results).
pub fn binary_sha256() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    edgebench_models::registry::sha256_file(&exe).ok()
}
