//! Live lip-sync: audio decoded as it comes (a phone loop, chunk by chunk), answered at a fixed
//! lag, and each utterance aligned again when the speaker pauses (with the running transcript
//! where there is one).
//!
//! A [`LiveSession`] takes 16 kHz samples in any chunking and answers [`LiveEvent`]s in order:
//! together their spans `[from, to)` tile the audio heard so far up to [`LIVE_LAG_MS`] ago.
//! An utterance starts where the energy rises above the noise floor and ends after
//! [`ENDPOINT_QUIET_MS`] of quiet (or at [`MAX_UTTERANCE_MS`]); its [`Utterance`] is then handed
//! out for [`Aligner::align_utterance`], whose timeline replaces what the phone loop said.

use std::collections::VecDeque;

use avatar_audio::DecodedAudio;
use avatar_domain::request::normalize_text;
use avatar_domain::timeline::PhonemeTimeline;

use crate::ffi::Decoder;
use crate::{
    AlignError, Aligner, Alignment, Dither, ESPEAK_VOICE, FRAMES_PER_SECOND, Kind,
    MODEL_SAMPLE_RATE, ONSET_SHIFT_MS, TimedWord, WordSource, is_filler, lexicon, timeline,
    to_model_pcm,
};

/// How far behind the audio heard the live cues are: a phone's identity is settled 110-140 ms
/// (median) to 200-270 ms (p90) after it starts (`../shared/reference/own-audio`, 2c).
pub const LIVE_LAG_MS: u64 = 250;
/// The quiet that ends an utterance (and starts its correction).
pub const ENDPOINT_QUIET_MS: u64 = 300;
/// An utterance without a pause is cut here, so that corrections keep coming.
pub const MAX_UTTERANCE_MS: u64 = 20_000;
/// How often the phone loop's answer is read (at most).
const UPDATE_MS: u64 = 100;
/// Audio kept before the first voiced frame: a word's soft onset (a fricative, a breath).
const PREROLL_MS: u64 = 200;
/// The energy detector's frame: 10 ms.
const FRAME: usize = MODEL_SAMPLE_RATE as usize / 100;
/// A frame is voiced this far above the noise floor...
const VOICED_ABOVE_FLOOR_DB: f32 = 15.0;
/// ... and above this level, whatever the floor.
const VOICED_MIN_DBFS: f32 = -55.0;
/// How fast the noise floor rises when the level stays above it (per frame).
const FLOOR_RISE_DB: f32 = 0.05;

const fn samples(ms: u64) -> u64 {
    ms * MODEL_SAMPLE_RATE as u64 / 1000
}

/// An utterance the phone loop has done with, to align again.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Its first sample in the session (16 kHz).
    pub offset: u64,
    /// Its audio, 16 kHz.
    pub audio: DecodedAudio,
}

/// What a live session says about the audio, in session samples (16 kHz).
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Nobody speaks in `[from, to)`.
    Quiet { from: u64, to: u64 },
    /// The phone loop's best answer for `[from, to)` of an utterance starting at `offset`:
    /// `timeline` covers the utterance from its start (sample 0 is `offset`) to `to`.
    Speech {
        offset: u64,
        timeline: PhonemeTimeline,
        from: u64,
        to: u64,
    },
    /// The utterance ended (its last [`LiveEvent::Speech`] came just before).
    Ended(Utterance),
}

/// A level detector with a noise floor that follows the quietest frames.
#[derive(Debug, Default)]
struct Vad {
    floor: Option<f32>,
}

impl Vad {
    fn voiced(&mut self, frame: &[f32]) -> bool {
        let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
        let db = (10.0 * energy.max(1e-10).log10()).max(-100.0);
        // The floor follows the quietest frames down at once and rises slowly, slower still
        // while someone speaks: speech dips to the floor within every second or two (stop
        // closures, gaps between words), so it cannot lift the floor to itself.
        let floor = match self.floor {
            Some(f) if db > f + VOICED_ABOVE_FLOOR_DB => f + FLOOR_RISE_DB / 5.0,
            Some(f) if db >= f => f + FLOOR_RISE_DB,
            _ => db,
        };
        self.floor = Some(floor);
        db > floor + VOICED_ABOVE_FLOOR_DB && db > VOICED_MIN_DBFS
    }
}

/// The utterance being heard.
struct Open {
    offset: u64,
    audio: Vec<f32>,
    /// The session sample after the last voiced frame.
    last_voiced: u64,
}

/// One live stream's decoding (one decoder, held until the session is dropped).
pub struct LiveSession<'a> {
    aligner: &'a Aligner,
    decoder: Option<Decoder<'static>>,
    dither: Dither,
    vad: Vad,
    /// Samples short of a whole frame.
    partial: Vec<f32>,
    /// The quiet audio before an utterance (at most [`PREROLL_MS`]).
    preroll: VecDeque<f32>,
    open: Option<Open>,
    /// Samples heard (whole frames).
    heard: u64,
    /// Samples the events so far cover.
    emitted: u64,
}

impl Aligner {
    /// A live session on a phone-loop decoder of its own.
    pub fn live(&self) -> Result<LiveSession<'_>, AlignError> {
        Ok(LiveSession {
            aligner: self,
            decoder: Some(self.take(Kind::Phones)?),
            dither: Dither::default(),
            vad: Vad::default(),
            partial: Vec::new(),
            preroll: VecDeque::new(),
            open: None,
            heard: 0,
            emitted: 0,
        })
    }

    /// The timeline of an ended utterance: force-aligned to the words of `transcript` it
    /// holds (which are then taken from it), or recognised if it holds none of them (or has
    /// none). The timeline is in the utterance's own samples (16 kHz).
    pub fn align_utterance(
        &self,
        utterance: &Utterance,
        transcript: &mut RunningTranscript,
    ) -> Result<Alignment, AlignError> {
        let (text, complete) = transcript.candidates();
        if text.is_empty() {
            return self.align(&utterance.audio, None);
        }
        let pcm = to_model_pcm(&utterance.audio)?;
        let phonemized = self
            .phonemizer
            .phonemize_marked(&text, ESPEAK_VOICE)
            .map_err(|e| AlignError::Phonemizer(e.to_string()))?;
        // The word pass over the transcript read as far as the audio goes: its best partial
        // path ends at the last word spoken.
        let spoken_end = self.with_decoder(Kind::WideAligner, |d| {
            let mut lexicon = lexicon(d, &text, &phonemized);
            if !complete {
                lexicon.pop();
            }
            let tokens: Vec<&str> = lexicon.iter().map(|w| w.token.as_str()).collect();
            if tokens.is_empty() || !d.set_align_text(&tokens.join(" ")) || !d.start() {
                return None;
            }
            let fed = d.feed(&pcm);
            let spoken = if fed {
                d.segments().iter().filter(|s| !is_filler(&s.name)).count()
            } else {
                0
            };
            d.end();
            let last = spoken.min(lexicon.len()).checked_sub(1)?;
            Some(lexicon[last].text.end)
        })?;
        let Some(end) = spoken_end else {
            return self.align(&utterance.audio, None);
        };
        let alignment = self.align(&utterance.audio, Some(&text[..end]))?;
        if alignment.forced {
            transcript.consume(&text, end);
        }
        Ok(alignment)
    }
}

/// The transcript of a live stream as it arrives, less what utterances have already used.
#[derive(Debug, Clone, Default)]
pub struct RunningTranscript {
    pending: String,
    /// No more text will come: the last word is whole.
    complete: bool,
}

impl RunningTranscript {
    /// More of the transcript (pieces join as they are: `"wor"` then `"ld"` is one word).
    pub fn push(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// No more text will come.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// The text not yet spoken.
    pub fn pending(&self) -> &str {
        &self.pending
    }

    /// The normalised pending text, and whether its last word is whole (text ending in a
    /// space or punctuation, or a finished transcript).
    fn candidates(&self) -> (String, bool) {
        let whole = self.complete
            || self
                .pending
                .chars()
                .last()
                .is_some_and(|c| c.is_whitespace() || c.is_ascii_punctuation());
        (normalize_text(&self.pending), whole)
    }

    /// `text[..end]` (of the normalised pending text) was spoken.
    fn consume(&mut self, text: &str, end: usize) {
        let trailing = self.pending.ends_with(char::is_whitespace);
        // The punctuation closing the last word spoken went with it.
        let mut rest = text[end..]
            .trim_start_matches(|c: char| c.is_whitespace() || ".,;:!?)]}\"'”’…".contains(c))
            .to_owned();
        if trailing && !rest.is_empty() {
            rest.push(' ');
        }
        self.pending = rest;
    }
}

impl LiveSession<'_> {
    /// Samples heard so far (16 kHz).
    pub fn heard(&self) -> u64 {
        self.heard + self.partial.len() as u64
    }

    /// Takes more audio (16 kHz, in [-1, 1]); appends what can be said about it to `events`.
    pub fn push(&mut self, samples: &[f32], events: &mut Vec<LiveEvent>) {
        self.partial.extend_from_slice(samples);
        let whole = self.partial.len() / FRAME * FRAME;
        let frames: Vec<f32> = self.partial.drain(..whole).collect();
        for frame in frames.chunks(FRAME) {
            self.frame(frame, events);
        }
    }

    /// The stream ended: what is left is said, an open utterance ends.
    pub fn finish(&mut self, events: &mut Vec<LiveEvent>) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.is_empty() {
            self.frame(&rest, events);
        }
        if self.open.is_some() {
            self.end_utterance(events);
        } else if self.heard > self.emitted {
            self.quiet_to(self.heard, events);
        }
    }

    fn frame(&mut self, frame: &[f32], events: &mut Vec<LiveEvent>) {
        let voiced = self.vad.voiced(frame);
        let start = self.heard;
        self.heard += frame.len() as u64;
        if self.open.is_none() {
            if !voiced {
                self.preroll.extend(frame);
                let excess = self
                    .preroll
                    .len()
                    .saturating_sub(samples(PREROLL_MS) as usize);
                self.preroll.drain(..excess);
                let horizon = self.heard.saturating_sub(samples(LIVE_LAG_MS));
                if horizon >= self.emitted + samples(UPDATE_MS) {
                    self.quiet_to(horizon, events);
                }
                return;
            }
            let offset = start
                .saturating_sub(self.preroll.len() as u64)
                .max(self.emitted);
            let keep = (start - offset) as usize;
            let skip = self.preroll.len() - keep;
            let preroll: Vec<f32> = self.preroll.drain(..).skip(skip).collect();
            self.quiet_to(offset, events);
            if let Some(d) = self.decoder.as_mut() {
                d.start();
            }
            self.open = Some(Open {
                offset,
                audio: Vec::new(),
                last_voiced: self.heard,
            });
            self.feed(&preroll);
        }
        self.feed(frame);
        let heard = self.heard;
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if voiced {
            open.last_voiced = heard;
        }
        if heard - open.last_voiced >= samples(ENDPOINT_QUIET_MS)
            || heard - open.offset >= samples(MAX_UTTERANCE_MS)
        {
            self.end_utterance(events);
            return;
        }
        let horizon = heard.saturating_sub(samples(LIVE_LAG_MS));
        if horizon >= self.emitted + samples(UPDATE_MS) && horizon > open.offset {
            self.speech_to(horizon, events);
        }
    }

    fn feed(&mut self, samples: &[f32]) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.audio.extend_from_slice(samples);
        let pcm: Vec<i16> = samples.iter().map(|&s| self.dither.sample(s)).collect();
        if let Some(d) = self.decoder.as_mut() {
            d.feed(&pcm);
        }
    }

    fn quiet_to(&mut self, to: u64, events: &mut Vec<LiveEvent>) {
        if to > self.emitted {
            events.push(LiveEvent::Quiet {
                from: self.emitted,
                to,
            });
            self.emitted = to;
        }
    }

    /// The phone loop's answer up to `to` (a session sample inside the open utterance).
    fn speech_to(&mut self, to: u64, events: &mut Vec<LiveEvent>) {
        let (Some(open), Some(decoder)) = (self.open.as_ref(), self.decoder.as_mut()) else {
            return;
        };
        let offset = open.offset;
        let timeline = phone_timeline(decoder, to - offset);
        events.push(LiveEvent::Speech {
            offset,
            timeline,
            from: self.emitted,
            to,
        });
        self.emitted = to;
    }

    fn end_utterance(&mut self, events: &mut Vec<LiveEvent>) {
        if let Some(d) = self.decoder.as_mut() {
            d.end();
        }
        let heard = self.heard;
        self.speech_to(heard, events);
        if let Some(open) = self.open.take() {
            events.push(LiveEvent::Ended(Utterance {
                offset: open.offset,
                audio: DecodedAudio {
                    sample_rate: MODEL_SAMPLE_RATE,
                    samples: open.audio,
                    channels: 1,
                    codec: "pcm".into(),
                },
            }));
        }
    }
}

impl Drop for LiveSession<'_> {
    fn drop(&mut self) {
        if let Some(mut d) = self.decoder.take() {
            if self.open.is_some() {
                d.end();
            }
            self.aligner.give_back(Kind::Phones, d);
        }
    }
}

/// The phone loop's best path as a timeline of `total` samples: each run of phones between
/// silences is one (unwritten) word.
fn phone_timeline(decoder: &mut Decoder, total: u64) -> PhonemeTimeline {
    let per_frame = decoder.samples_per_frame() as u64;
    let mut words: Vec<TimedWord> = Vec::new();
    let mut in_word = false;
    for seg in decoder.segments() {
        let start = u64::from(seg.start) * per_frame;
        if start >= total {
            break;
        }
        let end_frame = seg.start + seg.frames;
        let end_frame = end_frame.min((total / per_frame.max(1)) as u32);
        if seg.name == "SIL" || is_filler(&seg.name) {
            in_word = false;
            continue;
        }
        let phone = (seg.name.clone(), seg.start, end_frame.max(seg.start + 1));
        match words.last_mut() {
            Some(w) if in_word => w.phones.push(phone),
            _ => words.push(TimedWord {
                text: 0..0,
                sentence: 0,
                source: WordSource::Aligned,
                phones: vec![phone],
            }),
        }
        in_word = true;
    }
    timeline::build(
        MODEL_SAMPLE_RATE,
        total,
        &words,
        &[],
        FRAMES_PER_SECOND,
        ONSET_SHIFT_MS,
    )
}
