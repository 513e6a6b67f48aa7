//! What a live lip-sync client sends, and the stream's limits (the OpenAPI document describes
//! them; the server's messages are [`avatar_domain::LiveMessage`]).

use serde::Deserialize;

use avatar_domain::{LiveFormat, LiveLimits, LiveMessage, VisemeSet};

use crate::parse::{BareMessage, TextMessage, parse_message};

/// The longest live stream, ms of audio: a recording's own limit.
pub const MAX_LIVE_AUDIO_MS: u64 = avatar_domain::request::MAX_AUDIO_MS;
/// All the transcript of one stream, characters: a text stream's own limit.
pub const MAX_TRANSCRIPT_CHARS: usize = crate::stream::MAX_STREAM_CHARS;
/// The largest message a client may send, bytes (an audio message of 20 to 100 ms is a few
/// KiB).
pub const MAX_LIVE_MESSAGE_BYTES: usize = crate::stream::MAX_MESSAGE_BYTES;
/// Messages waiting for a slow reader (cues come ten times a second).
pub(super) const OUTBOX: usize = 64;

pub(super) fn limits(idle_timeout_ms: u64) -> LiveLimits {
    LiveLimits {
        max_audio_ms: MAX_LIVE_AUDIO_MS,
        max_message_bytes: MAX_LIVE_MESSAGE_BYTES,
        max_transcript_chars: MAX_TRANSCRIPT_CHARS,
        idle_timeout_ms,
    }
}

/// What a client sends: `start` first (a JSON text message), then the audio as binary
/// messages as it is captured, `text` with more of the transcript whenever it is known (what
/// a speech recogniser or a script says was said; optional), and `end`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LiveClientMessage {
    /// Opens the stream: how the audio is sent, and the visemes wanted.
    Start {
        format: LiveFormat,
        /// Hz of the audio sent: required for `pcm16` (8000 to 192000); for `opus`,
        /// informational (48000 if left out).
        #[serde(default)]
        sample_rate: Option<u32>,
        /// 1 if left out; `pcm16` up to 8 interleaved, `opus` 1 or 2. Channels are mixed.
        #[serde(default)]
        channels: Option<u16>,
        #[serde(default)]
        viseme_set: Option<VisemeSet>,
        /// The transcript so far, if known (as a first `text`).
        #[serde(default)]
        transcript: Option<String>,
    },
    /// More of the transcript, appended to what came before.
    Text { text: String },
    /// No more audio: the last utterance is corrected, then `done` and the close.
    End,
}

/// A client message as read: `start`'s settings checked, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Client {
    Start(Start),
    Text(String),
    End,
}

/// A stream's settings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Start {
    pub format: LiveFormat,
    pub sample_rate: u32,
    pub channels: u16,
    pub viseme_set: VisemeSet,
    pub transcript: Option<String>,
}

/// A client message (as [`LiveClientMessage`] documents it), or an error naming the field at
/// fault.
pub(super) fn parse_client(text: &str) -> Result<Client, LiveMessage> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StartFields {
        #[serde(rename = "type")]
        _type: String,
        format: LiveFormat,
        #[serde(default)]
        sample_rate: Option<u32>,
        #[serde(default)]
        channels: Option<u16>,
        #[serde(default)]
        viseme_set: Option<VisemeSet>,
        #[serde(default)]
        transcript: Option<String>,
    }
    fn fields<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, LiveMessage> {
        parse_message(text)
            .map_err(|e| LiveMessage::error("invalid_message", e.to_string(), Some(&e.field)))
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        LiveMessage::error("invalid_message", format!("not JSON: {e}"), Some("body"))
    })?;
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some("start") => {
            let s = fields::<StartFields>(text)?;
            Start::checked(
                s.format,
                s.sample_rate,
                s.channels,
                s.viseme_set,
                s.transcript,
            )
            .map(Client::Start)
        }
        Some("text") => fields::<TextMessage>(text).map(|m| Client::Text(m.text)),
        Some("end") => fields::<BareMessage>(text).map(|_| Client::End),
        _ => Err(LiveMessage::error(
            "invalid_message",
            "`type` must be one of start, text, end (audio comes in binary messages)",
            Some("type"),
        )),
    }
}

impl Start {
    fn checked(
        format: LiveFormat,
        sample_rate: Option<u32>,
        channels: Option<u16>,
        viseme_set: Option<VisemeSet>,
        transcript: Option<String>,
    ) -> Result<Self, LiveMessage> {
        let sample_rate = match (format, sample_rate) {
            (_, Some(rate)) => rate,
            (LiveFormat::Opus, None) => 48_000,
            (LiveFormat::Pcm16, None) => {
                return Err(LiveMessage::error(
                    "invalid_message",
                    "sample_rate: required for pcm16 audio (the rate it was captured at)",
                    Some("sample_rate"),
                ));
            }
        };
        if let Some(t) = &transcript
            && t.chars().count() > MAX_TRANSCRIPT_CHARS
        {
            return Err(LiveMessage::error(
                "limit",
                format!("transcript: a stream takes at most {MAX_TRANSCRIPT_CHARS} characters"),
                Some("transcript"),
            ));
        }
        Ok(Self {
            format,
            sample_rate,
            channels: channels.unwrap_or(1),
            viseme_set: viseme_set.unwrap_or_default(),
            transcript,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str) -> Option<String> {
        match parse_client(text) {
            Err(LiveMessage::Error { field, .. }) => field,
            _ => None,
        }
    }

    fn start(text: &str) -> Start {
        match parse_client(text) {
            Ok(Client::Start(start)) => start,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn client_messages_are_read_and_every_mistake_names_its_field() {
        let pcm = start(r#"{"type":"start","format":"pcm16","sample_rate":44100}"#);
        assert_eq!(pcm.sample_rate, 44_100);
        assert_eq!((pcm.channels, pcm.viseme_set), (1, VisemeSet::Basic));
        let opus = start(r#"{"type":"start","format":"opus","viseme_set":"oculus"}"#);
        assert_eq!(
            (opus.sample_rate, opus.viseme_set),
            (48_000, VisemeSet::Oculus)
        );
        assert_eq!(
            parse_client(r#"{"type":"text","text":"Hello"}"#).unwrap(),
            Client::Text("Hello".into())
        );
        assert_eq!(parse_client(r#"{"type":"end"}"#).unwrap(), Client::End);
        // What is read is what the document describes.
        for message in [
            r#"{"type":"start","format":"pcm16","sample_rate":8000,"channels":2,"transcript":"Hi"}"#,
            r#"{"type":"text","text":"Hello"}"#,
            r#"{"type":"end"}"#,
        ] {
            serde_json::from_str::<LiveClientMessage>(message).expect(message);
        }
        for (message, expected) in [
            (r#"{"type":"start","format":"pcm16"}"#, "sample_rate"),
            (r#"{"type":"start","format":"mp3"}"#, "format"),
            (r#"{"type":"start"}"#, "format"),
            (
                r#"{"type":"start","format":"opus","sample_rate":-1}"#,
                "sample_rate",
            ),
            (
                r#"{"type":"start","format":"opus","channels":"two"}"#,
                "channels",
            ),
            (
                r#"{"type":"start","format":"opus","viseme_set":"x"}"#,
                "viseme_set",
            ),
            (
                r#"{"type":"start","format":"opus","voice_id":"x"}"#,
                "voice_id",
            ),
            (r#"{"type":"text"}"#, "text"),
            (r#"{"type":"text","text":7}"#, "text"),
            (r#"{"type":"end","now":true}"#, "now"),
            (r#"{"type":"flush"}"#, "type"),
            (r#"{"text":"x"}"#, "type"),
            (r#"[1]"#, "type"),
            ("not json", "body"),
        ] {
            assert_eq!(field(message).as_deref(), Some(expected), "{message}");
        }
        let long = format!(
            r#"{{"type":"start","format":"opus","transcript":"{}"}}"#,
            "a".repeat(MAX_TRANSCRIPT_CHARS + 1)
        );
        assert_eq!(field(&long).as_deref(), Some("transcript"));
    }
}
