//! The voices the tts workers announce, read from the voices buckets every few seconds; the
//! gateway and the controller check requests against them.
//!
//! Two buckets: `avatar_voices` holds each live worker's voices and expires with the worker
//! ([`VOICES_TTL`]); `avatar_voices_seen` remembers every voice ever announced, for as long as
//! the render cache lives. With no worker live (all restarting, scaled to zero, or this gateway
//! just started), a request for a remembered voice is still a valid request: its job waits in
//! JetStream for the next worker instead of being refused.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::jetstream::Pipeline;
#[cfg(doc)]
use crate::jetstream::VOICES_TTL;
use async_nats::jetstream::kv;
pub use avatar_domain::VoiceCheck;
use avatar_domain::voice::default_voice;
use avatar_domain::{Refused, RenderRequest, ValidSpec, VoiceInfo};
use futures::StreamExt;

const REFRESH: Duration = Duration::from_secs(2);
/// How long the first read may take before a service starts anyway (it keeps refreshing).
const FIRST_READ: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Known {
    live: Vec<VoiceInfo>,
    remembered: Vec<VoiceInfo>,
}

#[derive(Clone, Default)]
pub struct VoiceRegistry {
    known: Arc<RwLock<Known>>,
}

impl VoiceRegistry {
    /// Reads both buckets once (for at most a few seconds), then keeps refreshing in the
    /// background.
    pub async fn start(pipeline: Pipeline) -> Self {
        let registry = Self::default();
        let _ = tokio::time::timeout(FIRST_READ, registry.refresh(&pipeline)).await;
        let refreshing = registry.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                refreshing.refresh(&pipeline).await;
            }
        });
        registry
    }

    async fn refresh(&self, pipeline: &Pipeline) {
        match read_bucket(&pipeline.voices).await {
            Ok(live) => {
                self.known
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .live = live
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the voices bucket"),
        }
        match read_bucket(&pipeline.voices_seen).await {
            Ok(remembered) => {
                self.known
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remembered = remembered
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the remembered voices"),
        }
    }

    /// The voices live workers speak.
    pub fn list(&self) -> Vec<VoiceInfo> {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .clone()
    }

    /// How many voices are live and how many are known at all (live or remembered).
    pub fn counts(&self) -> (usize, usize) {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        let all = known
            .remembered
            .iter()
            .chain(&known.live)
            .map(|v| v.voice_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        (known.live.len(), all)
    }

    /// Whether a voice can be spoken now, later, or not at all.
    pub fn check(&self, voice_id: &str) -> VoiceCheck {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if known.live.iter().any(|v| v.voice_id == voice_id) {
            VoiceCheck::Known
        } else if known.remembered.iter().any(|v| v.voice_id == voice_id) {
            VoiceCheck::Remembered
        } else if known.live.is_empty() && known.remembered.is_empty() {
            VoiceCheck::NoneAnnounced
        } else {
            let mut available: Vec<String> = known
                .live
                .iter()
                .chain(&known.remembered)
                .map(|v| v.voice_id.clone())
                .collect();
            available.sort();
            available.dedup();
            VoiceCheck::Unknown { available }
        }
    }

    /// The default voice ([`default_voice`]) among the voices known, live ones first.
    /// `request` validated against the contract and these voices, with `configured` (the
    /// service's `DEFAULT_VOICE`) or else the best voice known as the default.
    pub fn check_request(
        &self,
        request: &RenderRequest,
        configured: Option<&str>,
    ) -> Result<ValidSpec, Refused> {
        let default = self.default_voice(configured);
        request.check(default.as_deref(), |voice| self.check(voice))
    }

    pub fn default_voice(&self, configured: Option<&str>) -> Option<String> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        let ids = known
            .live
            .iter()
            .chain(&known.remembered)
            .map(|v| v.voice_id.as_str());
        default_voice(configured, ids).map(str::to_owned)
    }

    #[cfg(test)]
    fn with(live: &[&str], remembered: &[&str]) -> Self {
        let info = |id: &&str| VoiceInfo {
            voice_id: (*id).into(),
            language: "en_US".into(),
            language_name: None,
            sample_rate: 22050,
            quality: None,
        };
        Self {
            known: Arc::new(RwLock::new(Known {
                live: live.iter().map(info).collect(),
                remembered: remembered.iter().map(info).collect(),
            })),
        }
    }
}

/// Every value of a voices bucket, merged by voice id (a live entry is one worker's list,
/// a remembered entry one voice).
async fn read_bucket(bucket: &kv::Store) -> Result<Vec<VoiceInfo>, async_nats::Error> {
    let mut merged = BTreeMap::new();
    let mut keys = bucket.keys().await?;
    while let Some(key) = keys.next().await {
        let key = key?;
        if let Some(value) = bucket.get(&key).await? {
            let voices = serde_json::from_slice::<Vec<VoiceInfo>>(&value)
                .or_else(|_| serde_json::from_slice::<VoiceInfo>(&value).map(|v| vec![v]));
            for voice in voices.into_iter().flatten() {
                merged.insert(voice.voice_id.clone(), voice);
            }
        }
    }
    Ok(merged.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_remembered_unknown_and_nothing_at_all() {
        let registry = VoiceRegistry::with(&["a"], &["a", "b"]);
        assert_eq!(registry.check("a"), VoiceCheck::Known);
        assert_eq!(registry.check("b"), VoiceCheck::Remembered);
        assert_eq!(
            registry.check("c"),
            VoiceCheck::Unknown {
                available: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(registry.counts(), (1, 2));
        // Every worker gone: what was announced is still known.
        let registry = VoiceRegistry::with(&[], &["b"]);
        assert_eq!(registry.check("b"), VoiceCheck::Remembered);
        assert_eq!(registry.default_voice(None).as_deref(), Some("b"));
        assert!(matches!(registry.check("c"), VoiceCheck::Unknown { .. }));
        let registry = VoiceRegistry::with(&[], &[]);
        assert_eq!(registry.check("a"), VoiceCheck::NoneAnnounced);
        assert_eq!(registry.default_voice(None), None);
    }
}
