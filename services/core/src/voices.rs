//! The voices the tts workers announce, read from the voices bucket every few seconds; the
//! gateway and the controller check requests against them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::VoiceInfo;
use crate::jetstream::Pipeline;
use futures::StreamExt;

/// The voice used when neither the request nor `DEFAULT_VOICE` names one, if announced.
pub const CONTRACT_DEFAULT_VOICE: &str = "en_US-lessac-medium";
const REFRESH: Duration = Duration::from_secs(2);

pub enum VoiceCheck {
    Known,
    Unknown { available: Vec<String> },
    NoneAnnounced,
}

#[derive(Clone, Default)]
pub struct VoiceRegistry {
    voices: Arc<RwLock<Vec<VoiceInfo>>>,
}

impl VoiceRegistry {
    /// Starts refreshing from the bucket in the background.
    pub fn start(pipeline: Pipeline) -> Self {
        let registry = Self::default();
        let refreshing = registry.clone();
        tokio::spawn(async move {
            loop {
                match refreshing.read_all(&pipeline).await {
                    Ok(voices) => *refreshing.voices.write().expect("voices") = voices,
                    Err(e) => tracing::debug!(error = %e, "cannot read the voices bucket"),
                }
                tokio::time::sleep(REFRESH).await;
            }
        });
        registry
    }

    async fn read_all(&self, pipeline: &Pipeline) -> Result<Vec<VoiceInfo>, async_nats::Error> {
        let mut merged = BTreeMap::new();
        let mut keys = pipeline.voices.keys().await?;
        while let Some(key) = keys.next().await {
            let key = key?;
            if let Some(value) = pipeline.voices.get(&key).await?
                && let Ok(list) = serde_json::from_slice::<Vec<VoiceInfo>>(&value)
            {
                for voice in list {
                    merged.insert(voice.voice_id.clone(), voice);
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    pub fn list(&self) -> Vec<VoiceInfo> {
        self.voices.read().expect("voices").clone()
    }

    /// Whether a voice can be spoken, without copying the list.
    pub fn check(&self, voice_id: &str) -> VoiceCheck {
        let voices = self.voices.read().expect("voices");
        if voices.is_empty() {
            VoiceCheck::NoneAnnounced
        } else if voices.iter().any(|v| v.voice_id == voice_id) {
            VoiceCheck::Known
        } else {
            VoiceCheck::Unknown {
                available: voices.iter().map(|v| v.voice_id.clone()).collect(),
            }
        }
    }

    /// `configured`, else the contract's default if announced, else the first announced.
    pub fn default_voice(&self, configured: Option<&str>) -> Option<String> {
        if let Some(v) = configured {
            return Some(v.to_owned());
        }
        let voices = self.voices.read().expect("voices");
        voices
            .iter()
            .find(|v| v.voice_id == CONTRACT_DEFAULT_VOICE)
            .or(voices.first())
            .map(|v| v.voice_id.clone())
    }
}
