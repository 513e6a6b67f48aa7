//! Live lip-sync over NATS core (not JetStream: a live stream is worth nothing later, so
//! nothing is stored or redelivered). The gateway asks an align worker to take a stream with
//! a request on [`OPEN_SUBJECT`] (a queue group: one worker answers), then sends the audio
//! (16 kHz, 16-bit) and the transcript on the stream's [`input_subject`], and forwards what
//! the worker publishes on its [`output_subject`] ([`avatar_domain::LiveMessage`] as JSON)
//! to the client. Messages between one publisher and one subscriber keep their order.

use serde::{Deserialize, Serialize};

use avatar_domain::VisemeSet;

/// Where a gateway asks for a worker to take a live stream.
pub const OPEN_SUBJECT: &str = "avatar.live.open";
/// The align workers' queue group on [`OPEN_SUBJECT`].
pub const OPEN_QUEUE: &str = "avatar-align-live";
/// The audio's sample rate on the input subject.
pub const LIVE_SAMPLE_RATE: u32 = 16_000;

pub fn input_subject(session: &str) -> String {
    format!("avatar.live.{session}.in")
}

pub fn output_subject(session: &str) -> String {
    format!("avatar.live.{session}.out")
}

/// A gateway's request for a worker to take a stream (it listens on the output subject
/// before asking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub session: String,
    pub viseme_set: VisemeSet,
}

/// A worker's answer: taken (it listens on the input subject already), or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenReply {
    pub taken: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How far behind the audio heard its `cues` are.
    #[serde(default)]
    pub lag_ms: u64,
}

/// What the gateway sends on the input subject.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveInput {
    /// Audio at [`LIVE_SAMPLE_RATE`], in [-1, 1] (sent as 16-bit PCM).
    Audio(Vec<f32>),
    /// More of the running transcript.
    Text(String),
    /// No more input.
    End,
}

impl LiveInput {
    /// The message: a tag byte (`a`, `t`, `e`), then little-endian samples or UTF-8 text.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Audio(samples) => {
                std::iter::once(b'a')
                    .chain(samples.iter().flat_map(|s| {
                        ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()
                    }))
                    .collect()
            }
            Self::Text(text) => std::iter::once(b't').chain(text.bytes()).collect(),
            Self::End => vec![b'e'],
        }
    }

    pub fn decode(message: &[u8]) -> Option<Self> {
        let (&tag, body) = message.split_first()?;
        match tag {
            b'a' if body.len() % 2 == 0 => Some(Self::Audio(
                body.chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect(),
            )),
            b't' => String::from_utf8(body.to_vec()).ok().map(Self::Text),
            b'e' if body.is_empty() => Some(Self::End),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_survive_the_wire_and_garbage_is_refused() {
        for input in [
            LiveInput::Audio(vec![0.0, 0.5, -0.5, -1.0]),
            LiveInput::Text("Hello, wörld ".into()),
            LiveInput::End,
        ] {
            let back = LiveInput::decode(&input.encode()).expect("decodes");
            match (&input, &back) {
                (LiveInput::Audio(a), LiveInput::Audio(b)) => {
                    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4));
                }
                _ => assert_eq!(input, back),
            }
        }
        for garbage in [&b""[..], b"a\x01", b"x", b"t\xff", b"eX"] {
            assert_eq!(LiveInput::decode(garbage), None, "{garbage:?}");
        }
    }
}
