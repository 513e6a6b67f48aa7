//! A recording a client uploads for lip-sync: which kind of file it is (to store and serve it
//! as what it is), and the one check of it against the contract's limits.

use avatar_domain::FieldError;
use avatar_domain::request::{MAX_AUDIO_BYTES, MAX_AUDIO_MS};

use crate::{DecodedAudio, SILENCE_DBFS, decode};

/// The kinds of audio file [`decode`] reads, told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Wav,
    Flac,
    Mp3,
    /// Ogg Opus or Ogg Vorbis.
    Ogg,
    /// WebM/Matroska (a browser's MediaRecorder writes Opus in it).
    WebM,
    /// MP4/M4A (AAC).
    Mp4,
    /// Raw AAC in ADTS frames.
    Aac,
}

impl Container {
    pub const ALL: [Container; 7] = [
        Container::Wav,
        Container::Flac,
        Container::Mp3,
        Container::Ogg,
        Container::WebM,
        Container::Mp4,
        Container::Aac,
    ];

    /// Which kind of file `bytes` begin, if any this service reads.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        let at = |i: usize, magic: &[u8]| bytes.get(i..i + magic.len()) == Some(magic);
        if at(0, b"RIFF") && at(8, b"WAVE") || at(0, b"RF64") {
            Some(Container::Wav)
        } else if at(0, b"fLaC") {
            Some(Container::Flac)
        } else if at(0, b"OggS") {
            Some(Container::Ogg)
        } else if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
            Some(Container::WebM)
        } else if at(4, b"ftyp") {
            Some(Container::Mp4)
        } else if at(0, b"ID3") {
            Some(Container::Mp3)
        } else {
            match bytes {
                // A frame sync; MPEG audio layers are 1-3, ADTS's layer bits are 0.
                [0xff, b, ..] if b & 0xe0 == 0xe0 && (b >> 1) & 3 != 0 => Some(Container::Mp3),
                [0xff, b, ..] if b & 0xf6 == 0xf0 => Some(Container::Aac),
                _ => None,
            }
        }
    }

    /// Its usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Wav => "wav",
            Container::Flac => "flac",
            Container::Mp3 => "mp3",
            Container::Ogg => "ogg",
            Container::WebM => "webm",
            Container::Mp4 => "m4a",
            Container::Aac => "aac",
        }
    }

    /// The kind of file an extension names.
    pub fn from_extension(extension: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.extension() == extension)
    }

    /// Its MIME type, as a browser needs it to play the file.
    pub fn mime(self) -> &'static str {
        match self {
            Container::Wav => "audio/wav",
            Container::Flac => "audio/flac",
            Container::Mp3 => "audio/mpeg",
            Container::Ogg => "audio/ogg",
            Container::WebM => "audio/webm",
            Container::Mp4 => "audio/mp4",
            Container::Aac => "audio/aac",
        }
    }
}

/// Checks an uploaded recording against the contract's limits and decodes it. Every error
/// names the `audio` field: empty, too large, not audio, an unsupported codec, damaged, too
/// long, or silent.
pub fn decode_recording(
    bytes: &[u8],
    hint: Option<&str>,
) -> Result<(DecodedAudio, Container), FieldError> {
    let invalid = |message: String| FieldError::new("audio", message);
    if bytes.is_empty() {
        return Err(invalid("is empty".into()));
    }
    if bytes.len() > MAX_AUDIO_BYTES {
        return Err(invalid(format!(
            "is {} bytes; at most {MAX_AUDIO_BYTES} are allowed",
            bytes.len()
        )));
    }
    let container =
        Container::sniff(bytes).ok_or_else(|| invalid(crate::DecodeError::NotAudio.to_string()))?;
    let audio = decode(bytes, hint, MAX_AUDIO_MS).map_err(|e| invalid(e.to_string()))?;
    if audio.is_silent() {
        return Err(invalid(format!(
            "is silent (no 20 ms louder than {SILENCE_DBFS} dBFS): nothing to lip-sync"
        )));
    }
    Ok((audio, container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let wav = crate::encode_wav(&[0.0; 100], 16_000);
        assert_eq!(Container::sniff(&wav), Some(Container::Wav));
        let ogg = crate::encode_ogg_opus(&[0.0; 4800], 48_000, 24_000).unwrap();
        assert_eq!(Container::sniff(&ogg), Some(Container::Ogg));
        assert_eq!(Container::sniff(b"fLaC\0\0"), Some(Container::Flac));
        assert_eq!(Container::sniff(b"ID3\x04"), Some(Container::Mp3));
        assert_eq!(Container::sniff(&[0xff, 0xfb, 0x90]), Some(Container::Mp3));
        assert_eq!(Container::sniff(&[0xff, 0xf1, 0x50]), Some(Container::Aac));
        assert_eq!(
            Container::sniff(b"\0\0\0\x20ftypM4A "),
            Some(Container::Mp4)
        );
        assert_eq!(
            Container::sniff(&[0x1a, 0x45, 0xdf, 0xa3, 1]),
            Some(Container::WebM)
        );
        assert_eq!(Container::sniff(b"{\"text\": \"hi\"}"), None);
        assert_eq!(Container::sniff(b""), None);
        for c in Container::ALL {
            assert_eq!(Container::from_extension(c.extension()), Some(c));
            assert!(c.mime().starts_with("audio/"));
        }
    }

    #[test]
    fn bad_recordings_name_the_audio_field() {
        let silent = crate::encode_wav(&[0.0; 16_000], 16_000);
        let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
        let tone = crate::encode_wav(&tone, 16_000);
        for (bytes, says) in [
            (Vec::new(), "empty"),
            (b"hello, this is text".to_vec(), "not an audio file"),
            (silent, "silent"),
            (tone[..40].to_vec(), ""),
            (vec![0u8; MAX_AUDIO_BYTES + 1], "bytes"),
        ] {
            let e = decode_recording(&bytes, None).unwrap_err();
            assert_eq!(e.field, "audio");
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
        let (audio, container) = decode_recording(&tone, Some("audio/wav")).unwrap();
        assert_eq!((audio.duration_ms(), container), (1000, Container::Wav));
    }
}
