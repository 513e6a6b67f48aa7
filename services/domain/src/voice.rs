//! Which voice a request without one gets, and the one path every render request is
//! validated by (the gateway, the controller and the offline renderer): the contract, the
//! default voice, the voices known, and the render id, computed once.

use crate::{FieldError, RenderRequest, RenderSpec, render_id};

/// The voice used when neither the request nor `DEFAULT_VOICE` names one, if it is available.
pub const CONTRACT_DEFAULT_VOICE: &str = "en_US-lessac-medium";

/// The default voice: `configured` if set, else [`CONTRACT_DEFAULT_VOICE`] if it is among
/// `available`, else the first available voice; `None` with nothing configured or available.
pub fn default_voice<'a>(
    configured: Option<&'a str>,
    available: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    configured.or_else(|| {
        available
            .clone()
            .into_iter()
            .find(|&v| v == CONTRACT_DEFAULT_VOICE)
            .or_else(|| available.into_iter().next())
    })
}

/// What the voices known say about one voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceCheck {
    /// A live worker speaks it.
    Known,
    /// No live worker speaks it now, but one did: its job waits for the next worker.
    Remembered,
    /// Neither live nor ever announced: a client's mistake.
    Unknown { available: Vec<String> },
    /// No voice was ever announced: nothing can be judged or rendered yet.
    NoneAnnounced,
}

/// Why a request cannot be rendered now, said once for every caller.
pub const NO_VOICES_YET: &str = "no tts worker has announced its voices yet";

/// A request checked against the contract and the voices: its spec and its render id.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    pub spec: RenderSpec,
    /// [`render_id`] of `spec`.
    pub id: String,
}

impl ValidSpec {
    /// A spec already valid (a record's, a stream segment's), with its id.
    pub fn new(spec: RenderSpec) -> Self {
        Self {
            id: render_id(&spec),
            spec,
        }
    }
}

/// Why a request was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The request's mistakes, each naming its field.
    Invalid(Vec<FieldError>),
    /// [`NO_VOICES_YET`]: nothing can be judged or rendered yet.
    NoVoicesYet,
}

impl RenderRequest {
    /// Validates the request: the contract (every problem at once), the default voice
    /// (`default_voice`, else [`CONTRACT_DEFAULT_VOICE`]) and the voice as `voices` knows it;
    /// the spec comes with its render id.
    pub fn check(
        &self,
        default_voice: Option<&str>,
        voices: impl FnOnce(&str) -> VoiceCheck,
    ) -> Result<ValidSpec, Refused> {
        let spec = self
            .validate(default_voice.unwrap_or(CONTRACT_DEFAULT_VOICE))
            .map_err(Refused::Invalid)?;
        match voices(&spec.voice_id) {
            VoiceCheck::Known | VoiceCheck::Remembered => Ok(ValidSpec::new(spec)),
            VoiceCheck::NoneAnnounced => Err(Refused::NoVoicesYet),
            VoiceCheck::Unknown { available } => Err(Refused::Invalid(vec![FieldError::new(
                "voice_id",
                format!(
                    "unknown voice {:?}; available: {}",
                    spec.voice_id,
                    available.join(", ")
                ),
            )])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_then_contract_then_first() {
        let voices = ["en_US-joe-medium", CONTRACT_DEFAULT_VOICE];
        assert_eq!(default_voice(Some("x"), voices), Some("x"));
        assert_eq!(default_voice(None, voices), Some(CONTRACT_DEFAULT_VOICE));
        assert_eq!(
            default_voice(None, ["en_US-joe-medium", "en_GB-alan-medium"]),
            Some("en_US-joe-medium")
        );
        assert_eq!(default_voice(None, []), None);
    }

    #[test]
    fn one_check_applies_the_default_the_contract_and_the_voices() {
        let request = |voice: Option<&str>, text: &str| RenderRequest {
            text: text.into(),
            voice_id: voice.map(Into::into),
            speed: None,
            viseme_set: None,
        };
        let valid = request(None, " Hi ")
            .check(None, |_| VoiceCheck::Known)
            .unwrap();
        assert_eq!(valid.spec.voice_id, CONTRACT_DEFAULT_VOICE);
        assert_eq!(valid.id, render_id(&valid.spec));
        let configured = request(None, "Hi").check(Some("x"), |_| VoiceCheck::Remembered);
        assert_eq!(configured.unwrap().spec.voice_id, "x");
        assert_eq!(
            request(None, "Hi").check(None, |_| VoiceCheck::NoneAnnounced),
            Err(Refused::NoVoicesYet)
        );
        let Err(Refused::Invalid(errors)) =
            request(Some("y"), "Hi").check(None, |_| VoiceCheck::Unknown {
                available: vec!["a".into(), "b".into()],
            })
        else {
            panic!("an unknown voice is the request's mistake");
        };
        assert_eq!(errors[0].field, "voice_id");
        assert_eq!(errors[0].message, "unknown voice \"y\"; available: a, b");
        // The contract before the voices: an empty text is named even with no voices.
        let Err(Refused::Invalid(errors)) =
            request(None, "").check(None, |_| VoiceCheck::NoneAnnounced)
        else {
            panic!("an empty text is the request's mistake");
        };
        assert_eq!(errors[0].field, "text");
    }
}
