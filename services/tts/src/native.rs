//! Where the native libraries the tts stage loads at run time live.

use std::path::PathBuf;

/// The onnxruntime library and the espeak-ng build (library and data) the tts stage
/// loads at start-up. `scripts/setup_runtime.sh` puts all three under one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    pub onnxruntime: PathBuf,
    pub espeak_lib: PathBuf,
    pub espeak_data: PathBuf,
}

impl RuntimePaths {
    /// The files under one runtime directory, named as `scripts/setup_runtime.sh` names them.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            onnxruntime: dir.join("libonnxruntime.so"),
            espeak_lib: dir.join("libespeak-ng.so"),
            espeak_data: dir.join("espeak-ng-data"),
        }
    }

    /// `RUNTIME_DIR` (default `~/.cache/avatar-pipeline/runtime`), with each file
    /// overridable: `ORT_DYLIB_PATH`, `ESPEAK_NG_LIB`, `ESPEAK_NG_DATA`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`RuntimePaths::from_env`] with the variables from `lookup`.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let defaults = Self::in_dir(runtime_dir(&lookup));
        Self {
            onnxruntime: var("ORT_DYLIB_PATH").unwrap_or(defaults.onnxruntime),
            espeak_lib: var("ESPEAK_NG_LIB").unwrap_or(defaults.espeak_lib),
            espeak_data: var("ESPEAK_NG_DATA").unwrap_or(defaults.espeak_data),
        }
    }
}

/// The directory `scripts/setup_runtime.sh` installs the native runtime into: `RUNTIME_DIR`,
/// by default `~/.cache/avatar-pipeline/runtime`, with the variables from `lookup`.
pub fn runtime_dir(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let var = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("RUNTIME_DIR").unwrap_or_else(|| {
        var("HOME")
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".cache/avatar-pipeline/runtime")
    })
}
