//! Whether the CUDA libraries candle opens at run time are here, asked before candle is: a binary built with
//! `ci/candle-cuda-loading.sh` starts without them, and cudarc panics on first use of one it cannot find.

use edgebench_core::BackendError;

/// The libraries cudarc opens for candle's CUDA device (driver first), each with the names tried, newest first.
const LIBRARIES: [(&str, &[&str]); 5] = [
    ("the CUDA driver", &["libcuda.so.1", "libcuda.so"]),
    ("cuBLAS", &["libcublas.so.13", "libcublas.so.12", "libcublas.so"]),
    ("cuBLASLt", &["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]),
    ("cuRAND", &["libcurand.so.10", "libcurand.so"]),
    ("NVRTC", &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]),
];

/// The first of `names` the dynamic loader opens, or the loader's answer for the first name.
fn first_loadable(names: &[&str]) -> Result<(), String> {
    let mut first_error = None;
    for name in names {
        // SAFETY: these are NVIDIA's libraries (or the C library in tests); opening one runs only its initialisers.
        match unsafe { libloading::Library::new(*name) } {
            Ok(_) => return Ok(()),
            Err(e) => {
                // libloading's own message is "dlopen failed"; the loader's reason is its source.
                let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
                first_error.get_or_insert(why);
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

/// `Ok` when every library candle's CUDA device needs opens; otherwise why not, as a skipped cell's reason.
pub(crate) fn check() -> Result<(), BackendError> {
    check_libraries(&LIBRARIES)
}

fn check_libraries(libraries: &[(&str, &[&str])]) -> Result<(), BackendError> {
    let (driver, rest) = libraries.split_first().expect("the driver is listed first");
    if let Err(e) = first_loadable(driver.1) {
        return Err(BackendError::Unsupported(format!("no CUDA driver here: {} cannot be opened ({e})", driver.1[0])));
    }
    let missing: Vec<String> = rest
        .iter()
        .filter(|(_, names)| first_loadable(names).is_err())
        .map(|(what, names)| format!("{what} ({})", names.join(" / ")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BackendError::Unsupported(format!(
            "the CUDA driver is here but not {}: install CUDA's libraries or put them on LD_LIBRARY_PATH",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_driver_and_absent_libraries_are_named() {
        let none: &[&str] = &["libedgebench-absent-driver.so.1"];
        let libc: &[&str] = &["libedgebench-absent.so.1", "libc.so.6"];
        let e = check_libraries(&[("the CUDA driver", none), ("cuBLAS", libc)]).unwrap_err();
        assert!(
            matches!(&e, BackendError::Unsupported(m) if m.starts_with("no CUDA driver here: libedgebench-absent-driver.so.1")),
            "{e}"
        );
        let e = check_libraries(&[("the CUDA driver", libc), ("cuBLAS", libc), ("cuRAND", none)]).unwrap_err();
        assert!(
            matches!(&e, BackendError::Unsupported(m) if m.contains("not cuRAND (libedgebench-absent-driver.so.1)") && !m.contains("cuBLAS")),
            "{e}"
        );
        assert!(check_libraries(&[("the CUDA driver", libc), ("cuBLAS", libc)]).is_ok());
    }
}
