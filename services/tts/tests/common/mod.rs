//! Shared by the tts integration tests: the real voices directory and runtime.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tts::{RuntimePaths, Voice, VoiceStore};

pub const VOICE: &str = "en_US-joe-medium";

/// `VOICES_DIR`, or the workspace's `voices/` that `scripts/download_voices.sh` fills.
pub fn voices_dir() -> PathBuf {
    std::env::var_os("VOICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../voices")))
}

pub fn store() -> &'static VoiceStore {
    static STORE: OnceLock<VoiceStore> = OnceLock::new();
    STORE.get_or_init(|| {
        VoiceStore::open(voices_dir(), &RuntimePaths::from_env(), 2).unwrap_or_else(|e| {
            panic!("{e} (the tests need `make setup`: scripts/setup_runtime.sh and the joe voice)")
        })
    })
}

pub fn joe() -> Arc<Voice> {
    store()
        .get(VOICE)
        .expect("the joe voice (scripts/download_voices.sh en_US-joe-medium)")
}
