//! Shared by the tts integration tests: the real voices directory and runtime.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use tts::{RuntimePaths, Voice, VoiceStore};

pub use avatar_test_support::{VOICE, voices_dir};

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
