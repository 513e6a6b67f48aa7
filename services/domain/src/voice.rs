//! Which voice a request without one gets.

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
}
