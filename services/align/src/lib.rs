//! Lip-sync of audio we did not synthesise: a phoneme timeline for a recording (a person, or
//! another TTS engine), from a forced alignment of its transcript with pocketsphinx 5, or, with
//! no transcript, from recognising it first.
//!
//! ```text
//! Aligner::load(&AlignerConfig::from_env())?        once per process
//! avatar_audio::decode_recording(bytes, hint)?      -> DecodedAudio (any rate, mono)
//! aligner.align_recording(&audio, &spec.words)?     -> Alignment { timeline, text, .. }
//! lipsync::mouth_cues(&alignment.timeline, set)     as for synthesised speech
//! ```
//!
//! The timeline is in the audio's own samples and has the same shape as the synthesiser's:
//! one IPA code point per phoneme, silences as `_`, word breaks, sentence markers, and the
//! transcript's written words (`words`) and sentences, so mouth cues, word marks, subtitles and
//! eye events are made by the same code as for our own voice.
//!
//! With a transcript the alignment is forced: two passes (words, then phones) over the whole
//! recording. Words cmudict lacks (names, numbers, abbreviations) are pronounced by espeak-ng in
//! context and added to the dictionary in ARPAbet. If the phone pass fails, each word is
//! aligned on its own within the word pass's span; if even the word pass fails (the audio does
//! not say the transcript), the words are recognised instead and marked `aligned: false` with
//! a confidence. Without a transcript, recognition (pocketsphinx's en-us language model) then
//! alignment of what was recognised: best effort, every word marked `aligned: false`.

pub mod arpabet;
mod ffi;
mod live;
mod timeline;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use avatar_audio::DecodedAudio;
use avatar_domain::request::normalize_text;
use avatar_domain::{PhonemeTimeline, Words};
use ffi::{Api, Decoder, Segment, Setting};
use tts::{Phonemized, Phonemizer};

pub use avatar_domain::timings::{ExternalTimings, TimingsError, WordTime};
pub use live::{
    ENDPOINT_QUIET_MS, LIVE_LAG_MS, LiveEvent, LiveSession, MAX_UTTERANCE_MS, RunningTranscript,
    Utterance,
};
pub use timeline::ONSET_SHIFT_MS;

/// The aligner's sample rate: the acoustic model's.
pub const MODEL_SAMPLE_RATE: u32 = 16_000;
/// pocketsphinx's frame rate (10 ms frames).
const FRAMES_PER_SECOND: u32 = 100;
/// The espeak-ng voice that pronounces words cmudict lacks (the acoustic model is US English).
const ESPEAK_VOICE: &str = "en-us";

/// Where the aligner's native library and model are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignerConfig {
    /// `libpocketsphinx.so` (5.x).
    pub library: PathBuf,
    /// The directory holding `en-us/` (acoustic model `en-us/en-us`, `cmudict-en-us.dict`,
    /// `en-us.lm.bin`), as `scripts/setup_runtime.sh` installs it.
    pub model: PathBuf,
    /// espeak-ng, for words the dictionary lacks.
    pub runtime: tts::RuntimePaths,
}

impl AlignerConfig {
    /// Under `RUNTIME_DIR` (see [`tts::RuntimePaths::from_env`]), each overridable:
    /// `POCKETSPHINX_LIB`, `POCKETSPHINX_MODEL`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let runtime = tts::RuntimePaths::from_vars(&lookup);
        let dir = tts::runtime_dir(&lookup);
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            library: var("POCKETSPHINX_LIB").unwrap_or_else(|| dir.join("libpocketsphinx.so")),
            model: var("POCKETSPHINX_MODEL").unwrap_or_else(|| dir.join("pocketsphinx-model")),
            runtime,
        }
    }

    fn acoustic_model(&self) -> PathBuf {
        self.model.join("en-us/en-us")
    }
    fn dictionary(&self) -> PathBuf {
        self.model.join("en-us/cmudict-en-us.dict")
    }
    fn language_model(&self) -> PathBuf {
        self.model.join("en-us/en-us.lm.bin")
    }
    fn phone_model(&self) -> PathBuf {
        self.model.join("en-us/en-us-phone.lm.bin")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlignError {
    #[error(
        "cannot load pocketsphinx from {path}: {reason} (run scripts/setup_runtime.sh, or set POCKETSPHINX_LIB)"
    )]
    Load { path: PathBuf, reason: String },
    #[error(
        "pocketsphinx cannot start with the model in {path}: {reason} (run scripts/setup_runtime.sh, or set POCKETSPHINX_MODEL)"
    )]
    Model { path: PathBuf, reason: String },
    #[error("espeak-ng: {0}")]
    Phonemizer(String),
    #[error("the transcript has no words to align")]
    NoWords,
    #[error("resampling: {0}")]
    Resample(String),
}

/// How a word's timing was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WordSource {
    /// Forced alignment of the transcript: the word is known, only its timing was measured.
    Aligned,
    /// Recognised: the word itself is a guess, with the recogniser's posterior probability.
    Recognized { confidence: f32 },
}

/// A recording's timeline and the text its words index.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// In the recording's own samples and rate; `words` index [`Alignment::text`].
    pub timeline: PhonemeTimeline,
    /// The normalised transcript, or what was recognised.
    pub text: String,
    /// True when every word came from forced alignment of the transcript.
    pub forced: bool,
}

static API: OnceLock<Api> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// pocketsphinx and espeak-ng, loaded once; decoders are pooled, one per concurrent request.
pub struct Aligner {
    config: AlignerConfig,
    api: &'static Api,
    phonemizer: &'static Phonemizer,
    /// Idle decoders of each [`Kind`].
    pools: [Mutex<Vec<Decoder<'static>>>; 5],
}

/// The decoders the aligner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Forced alignment, pocketsphinx's default beams.
    Aligner,
    /// Forced alignment with beams wide enough for audio the default search loses.
    WideAligner,
    /// Forced alignment in 5 ms frames, for speech so fast that its phones are shorter than
    /// the three 10 ms frames a phone's model needs at least.
    FastAligner,
    /// Recognition with the en-us language model.
    Recognizer,
    /// A phone loop (the en-us phone language model), decoding as audio comes: live lip-sync.
    Phones,
}

/// A written word of the transcript and the dictionary entry it is aligned as.
#[derive(Debug, Clone)]
struct LexWord {
    text: Range<usize>,
    token: String,
    /// Its sentence (an index into the transcript's sentences).
    sentence: usize,
}

/// A text, its timed words and its sentences (byte ranges of the text).
type Transcribed = (String, Vec<TimedWord>, Vec<Range<usize>>);

/// A word with its place in the audio (frames) and phones, ready for the timeline.
#[derive(Debug, Clone)]
pub(crate) struct TimedWord {
    pub text: Range<usize>,
    pub sentence: usize,
    pub source: WordSource,
    /// ARPAbet phones and their frames `[start, end)`.
    pub phones: Vec<(String, u32, u32)>,
}

impl Aligner {
    /// Loads pocketsphinx and espeak-ng and checks that a decoder starts with the model.
    pub fn load(config: &AlignerConfig) -> Result<Self, AlignError> {
        let api = {
            let _guard = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
            match API.get() {
                Some(api) => api,
                None => {
                    let api = Api::load(&config.library).map_err(|reason| AlignError::Load {
                        path: config.library.clone(),
                        reason,
                    })?;
                    API.get_or_init(|| api)
                }
            }
        };
        let phonemizer = Phonemizer::load(&config.runtime.espeak_lib, &config.runtime.espeak_data)
            .map_err(|e| AlignError::Phonemizer(e.to_string()))?;
        let aligner = Self {
            config: config.clone(),
            api,
            phonemizer,
            pools: Default::default(),
        };
        let first = aligner.decoder(Kind::Aligner)?;
        aligner.pools[Kind::Aligner as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(first);
        Ok(aligner)
    }

    fn decoder(&self, kind: Kind) -> Result<Decoder<'static>, AlignError> {
        let hmm = self.config.acoustic_model();
        let dict = self.config.dictionary();
        let (lm_file, phone_file) = (self.config.language_model(), self.config.phone_model());
        let lm = (kind == Kind::Recognizer).then_some(lm_file.as_path());
        let phones = (kind == Kind::Phones).then_some(phone_file.as_path());
        let path = |p: Option<&Path>| p.map(|p| p.to_string_lossy().into_owned());
        let (lm_path, phones_path) = (path(lm), path(phones));
        let mut settings = vec![
            ("hmm", Setting::Str(hmm.to_str().unwrap_or_default())),
            ("dict", Setting::Str(dict.to_str().unwrap_or_default())),
            ("loglevel", Setting::Str("FATAL")),
            ("samprate", Setting::Float(f64::from(MODEL_SAMPLE_RATE))),
            // The whole recording's cepstral mean, not a running one carried over from the
            // previous request: the same audio aligns the same way whatever came before. Live
            // audio has no whole: its mean is a running one.
            (
                "cmn",
                Setting::Str(if kind == Kind::Phones {
                    "live"
                } else {
                    "batch"
                }),
            ),
        ];
        match &lm_path {
            Some(lm) => settings.push(("lm", Setting::Str(lm))),
            None => settings.push(("lm", Setting::Null)),
        }
        if let Some(phones) = &phones_path {
            // The settings of `../shared/reference/own-audio` (section 2c): phones stable
            // 110-140 ms after their onset in median, 200-270 ms at p90, at 20 ms chunks.
            settings.push(("allphone", Setting::Str(phones)));
            settings.push(("lw", Setting::Float(2.0)));
            for beam in ["beam", "pbeam"] {
                settings.push((beam, Setting::Float(1e-20)));
            }
        }
        if kind == Kind::WideAligner {
            for beam in ["beam", "pbeam", "wbeam"] {
                settings.push((beam, Setting::Float(1e-80)));
            }
        }
        if kind == Kind::FastAligner {
            settings.push(("frate", Setting::Int(2 * i64::from(FRAMES_PER_SECOND))));
        }
        for file in [&hmm.join("mdef"), &dict]
            .into_iter()
            .chain(lm.or(phones).map(Path::to_path_buf).as_ref())
        {
            if !file.exists() {
                return Err(AlignError::Model {
                    path: self.config.model.clone(),
                    reason: format!("{} is missing", file.display()),
                });
            }
        }
        Decoder::new(self.api, &settings).map_err(|reason| AlignError::Model {
            path: self.config.model.clone(),
            reason,
        })
    }

    /// An idle decoder of `kind` (a new one if none is idle), to [`Aligner::give_back`].
    fn take(&self, kind: Kind) -> Result<Decoder<'static>, AlignError> {
        let pool = &self.pools[kind as usize];
        let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match taken {
            Some(d) => Ok(d),
            None => self.decoder(kind),
        }
    }

    fn give_back(&self, kind: Kind, decoder: Decoder<'static>) {
        self.pools[kind as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(decoder);
    }

    /// Runs `f` with an idle decoder of `kind` (a new one if none is idle).
    fn with_decoder<T>(
        &self,
        kind: Kind,
        f: impl FnOnce(&mut Decoder<'static>) -> T,
    ) -> Result<T, AlignError> {
        let mut decoder = self.take(kind)?;
        let out = f(&mut decoder);
        self.give_back(kind, decoder);
        Ok(out)
    }

    /// The timeline of a recording from what is known of its words: force-aligned to a
    /// transcript, laid out in another engine's timings, or recognised.
    pub fn align_recording(
        &self,
        audio: &DecodedAudio,
        words: &Words,
    ) -> Result<Alignment, AlignError> {
        match words {
            Words::Unknown => self.align(audio, None),
            Words::Transcript(t) => self.align(audio, Some(t)),
            Words::Timed(t) => self.from_timings(audio.sample_rate, audio.samples.len() as u64, t),
        }
    }

    /// The timeline of `audio`, from a forced alignment of `transcript` when there is one.
    pub fn align(
        &self,
        audio: &DecodedAudio,
        transcript: Option<&str>,
    ) -> Result<Alignment, AlignError> {
        let pcm = to_model_pcm(audio)?;
        let text = transcript.map(normalize_text).unwrap_or_default();
        let (text, words, sentences, frame_rate) = if text.is_empty() {
            let (text, words, sentences) = self.recognize(&pcm)?;
            (text, words, sentences, FRAMES_PER_SECOND)
        } else {
            let phonemized = self
                .phonemizer
                .phonemize_marked(&text, ESPEAK_VOICE)
                .map_err(|e| AlignError::Phonemizer(e.to_string()))?;
            let sentences: Vec<Range<usize>> = phonemized
                .sentences
                .iter()
                .map(|s| s.text.clone())
                .collect();
            let mut aligned = None;
            // The default beams first; if the search loses the transcript, much wider ones,
            // then frames half as long (very fast speech).
            for kind in [Kind::Aligner, Kind::WideAligner, Kind::FastAligner] {
                let attempt = self.with_decoder(kind, |d| {
                    let lexicon = lexicon(d, &text, &phonemized);
                    if lexicon.is_empty() {
                        return Err(AlignError::NoWords);
                    }
                    Ok(force_align(d, &pcm, &lexicon).map(|words| (words, d.frame_rate())))
                })??;
                if attempt.is_some() {
                    aligned = attempt;
                    break;
                }
                tracing::info!(?kind, "forced alignment failed");
            }
            match aligned {
                Some((words, rate)) => (text, words, sentences, rate),
                None => {
                    tracing::info!("forced alignment failed; recognising the audio instead");
                    let (text, words, sentences) = self.recognize(&pcm)?;
                    (text, words, sentences, FRAMES_PER_SECOND)
                }
            }
        };
        let forced = words.iter().all(|w| w.source == WordSource::Aligned) && !words.is_empty();
        let timeline = timeline::build(
            audio.sample_rate,
            audio.samples.len() as u64,
            &words,
            &sentences,
            frame_rate,
            ONSET_SHIFT_MS,
        );
        Ok(Alignment {
            timeline,
            text,
            forced,
        })
    }

    /// The timeline of audio (`total` samples at `rate` Hz) whose words another engine has
    /// timed: each word's espeak-ng phonemes laid out within its span (vowels twice a
    /// consonant's share), nothing recognised. The words are marked aligned.
    pub fn from_timings(
        &self,
        rate: u32,
        total: u64,
        timings: &ExternalTimings,
    ) -> Result<Alignment, AlignError> {
        let text = &timings.text;
        let phonemized = self
            .phonemizer
            .phonemize_marked(text, ESPEAK_VOICE)
            .map_err(|e| AlignError::Phonemizer(e.to_string()))?;
        let (ipa, sentence_of) = word_phonemes(&phonemized);
        // The written words by the engine's word they fall in (espeak may split one in two).
        let mut groups: Vec<(usize, f64, f64, Vec<usize>)> = Vec::new();
        for (i, range) in phonemized.words.iter().enumerate() {
            let Some((w, start, end)) = timings.span_at(range.start) else {
                continue;
            };
            match groups.last_mut() {
                Some(g) if g.0 == w => g.3.push(i),
                _ => groups.push((w, start, end, vec![i])),
            }
        }
        // Boundaries in milliseconds: the engine's times are kept as they are.
        let frame = |ms: f64| ms.round() as u32;
        let mut words = Vec::new();
        for (_, start, end, members) in groups {
            let phones: Vec<Vec<String>> = members
                .iter()
                .map(|&i| {
                    arpabet::from_ipa(&ipa[i])
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .collect();
            let weight = |p: &str| if arpabet::is_vowel(p) { 2.0 } else { 1.0 };
            let total_weight: f64 = phones.iter().flatten().map(|p| weight(p)).sum();
            let mut at = 0.0;
            let ms_at = |w: f64| start + (end - start) * w / total_weight.max(1.0);
            for (&i, word_phones) in members.iter().zip(&phones) {
                let timed: Vec<(String, u32, u32)> = word_phones
                    .iter()
                    .map(|p| {
                        let from = frame(ms_at(at));
                        at += weight(p);
                        (p.clone(), from, frame(ms_at(at)))
                    })
                    .collect();
                words.push(TimedWord {
                    text: phonemized.words[i].clone(),
                    sentence: sentence_of[i],
                    source: WordSource::Aligned,
                    phones: timed,
                });
            }
        }
        let sentences: Vec<Range<usize>> = phonemized
            .sentences
            .iter()
            .map(|s| s.text.clone())
            .collect();
        let timeline = timeline::build(rate, total, &words, &sentences, 1000, 0);
        Ok(Alignment {
            forced: !timeline.words.is_empty(),
            timeline,
            text: text.clone(),
        })
    }

    /// Recognition with the en-us language model, then a phone alignment of the hypothesis.
    fn recognize(&self, pcm: &[i16]) -> Result<Transcribed, AlignError> {
        self.with_decoder(Kind::Recognizer, |d| {
            if !d.activate_default() || !d.decode(pcm) || d.hypothesis().is_none() {
                return (String::new(), Vec::new(), Vec::new());
            }
            let recognised: Vec<Segment> = d
                .segments()
                .into_iter()
                .filter(|s| !is_filler(&s.name))
                .collect();
            let phones = recognised_phones(d, pcm, &recognised);
            let mut text = String::new();
            let mut words = Vec::new();
            for (seg, phones) in recognised.iter().zip(phones) {
                let written = base_word(&seg.name);
                if !text.is_empty() {
                    text.push(' ');
                }
                let start = text.len();
                text.push_str(written);
                let phones = phones
                    .unwrap_or_else(|| dictionary_phones(d, &seg.name, seg.start, seg.frames));
                words.push(TimedWord {
                    text: start..text.len(),
                    sentence: 0,
                    source: WordSource::Recognized {
                        confidence: seg.probability.unwrap_or(0.0) as f32,
                    },
                    phones,
                });
            }
            let sentences = if text.is_empty() {
                Vec::new()
            } else {
                std::iter::once(0..text.len()).collect()
            };
            (text, words, sentences)
        })
    }
}

/// The transcript's written words with the dictionary tokens they are aligned as, each added
/// to `decoder`'s dictionary if new.
fn lexicon(decoder: &mut Decoder, text: &str, phonemized: &Phonemized) -> Vec<LexWord> {
    let (ipa, sentence_of) = word_phonemes(phonemized);
    phonemized
        .words
        .iter()
        .enumerate()
        .filter_map(|(i, range)| {
            let token = dictionary_token(decoder, &text[range.clone()], &ipa[i])?;
            Some(LexWord {
                text: range.clone(),
                token,
                sentence: sentence_of[i],
            })
        })
        .collect()
}

/// Quiet frames appended to the recording: a last word that runs to the very end of the file
/// (speech cut off, or a fast voice with no trailing silence) is otherwise lost by the search,
/// which needs frames past a word to end it.
const TAIL_PAD_SAMPLES: usize = MODEL_SAMPLE_RATE as usize * 3 / 10;

/// Each written word's espeak-ng phonemes, and the index of its sentence.
fn word_phonemes(phonemized: &Phonemized) -> (Vec<Vec<char>>, Vec<usize>) {
    let mut ipa: Vec<Vec<char>> = vec![Vec::new(); phonemized.words.len()];
    let mut sentence_of = vec![0; phonemized.words.len()];
    for (s, sentence) in phonemized.sentences.iter().enumerate() {
        for (&c, word) in sentence.phonemes.iter().zip(&sentence.word_of) {
            if let Some(w) = *word {
                ipa[w].push(c);
                sentence_of[w] = s;
            }
        }
    }
    (ipa, sentence_of)
}

/// The decoder's 16 kHz 16-bit input, dithered (a faint noise of a couple of LSB over
/// everything: digital silence, which other engines and edited recordings have, has no
/// spectrum, and its log energy throws the cepstral mean off), with [`TAIL_PAD_SAMPLES`] of the
/// same noise after it.
fn to_model_pcm(audio: &DecodedAudio) -> Result<Vec<i16>, AlignError> {
    let samples = avatar_audio::resample(&audio.samples, audio.sample_rate, MODEL_SAMPLE_RATE)
        .map_err(|e| AlignError::Resample(e.to_string()))?;
    let mut dither = Dither::default();
    Ok(samples
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0.0, TAIL_PAD_SAMPLES))
        .map(|s| dither.sample(s))
        .collect())
}

/// A faint, fixed noise of up to 2 LSB (xorshift), so that no stretch is digital silence.
struct Dither(u32);

impl Default for Dither {
    fn default() -> Self {
        Self(0x9e37_79b9)
    }
}

impl Dither {
    fn next(&mut self) -> f32 {
        let state = &mut self.0;
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        (*state % 5) as f32 - 2.0
    }

    /// `s` (in [-1, 1]) as a dithered 16-bit sample.
    fn sample(&mut self, s: f32) -> i16 {
        (s * 32767.0 + self.next()).clamp(-32768.0, 32767.0) as i16
    }
}

/// `pcm` with [`TAIL_PAD_SAMPLES`] of dithered silence after it, as every stretch the word pass
/// is given ends: a word cut right at its end otherwise cannot reach the search's final state.
fn with_tail_pad(pcm: &[i16]) -> Vec<i16> {
    let mut dither = Dither::default();
    pcm.iter()
        .copied()
        .chain((0..TAIL_PAD_SAMPLES).map(|_| dither.next() as i16))
        .collect()
}

/// cmudict's own entry for a plain word, else a new entry from espeak-ng's pronunciation.
fn dictionary_token(decoder: &mut Decoder, written: &str, ipa: &[char]) -> Option<String> {
    let plain: String = written
        .trim_matches(|c: char| !c.is_alphanumeric())
        .replace('’', "'")
        .to_lowercase();
    if !plain.is_empty()
        && plain.chars().all(|c| c.is_alphabetic() || c == '\'')
        && decoder.lookup(&plain).is_some()
    {
        return Some(plain);
    }
    let phones = arpabet::from_ipa(ipa);
    if phones.is_empty() {
        return None;
    }
    let token = format!("_{}", phones.to_lowercase().replace(' ', "_"));
    if decoder.lookup(&token).is_none() && !decoder.add_word(&token, &phones) {
        return None;
    }
    Some(token)
}

/// `<sil>`, `<s>`, `[NOISE]`, `+breath+` and the like: not words.
fn is_filler(name: &str) -> bool {
    name.is_empty()
        || name.starts_with('<')
        || name.starts_with('[')
        || name.starts_with('+')
        || name == "(NULL)"
}

/// `word(2)` (an alternate pronunciation) as `word`.
fn base_word(name: &str) -> &str {
    match name.find('(') {
        Some(i) if name.ends_with(')') && i > 0 => &name[..i],
        _ => name,
    }
}

fn phone_frames(phones: &[Segment]) -> Vec<(String, u32, u32)> {
    phones
        .iter()
        .map(|p| (p.name.clone(), p.start, p.start + p.frames))
        .collect()
}

/// A word's dictionary phones spread evenly over its frames: the last resort when no
/// alignment of it exists.
fn dictionary_phones(
    decoder: &mut Decoder,
    word: &str,
    start: u32,
    frames: u32,
) -> Vec<(String, u32, u32)> {
    let Some(pron) = decoder.lookup(word) else {
        return Vec::new();
    };
    let phones: Vec<&str> = pron.split_whitespace().collect();
    let n = phones.len() as u32;
    phones
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let i = i as u32;
            (
                (*p).to_owned(),
                start + frames * i / n,
                start + frames * (i + 1) / n,
            )
        })
        .collect()
}

/// Words then phones over the whole recording; per word within the word pass's spans if the
/// phone pass fails; `None` if the word pass fails.
fn force_align(decoder: &mut Decoder, pcm: &[i16], lexicon: &[LexWord]) -> Option<Vec<TimedWord>> {
    align_span(decoder, pcm, lexicon, 0)
}

/// How often a stretch is split where the word pass lost its way (each split halves the
/// transcript's remaining trouble; four is plenty for ten minutes).
const MAX_SPLITS: u32 = 4;

/// [`force_align`] of one stretch of audio. If the word pass ends inside the transcript (the
/// search lost the path: a part the model hears badly), the words it did find but the last
/// are aligned in the audio up to there, and the rest of the transcript in the rest of the
/// audio, each on its own.
fn align_span(
    decoder: &mut Decoder,
    pcm: &[i16],
    lexicon: &[LexWord],
    depth: u32,
) -> Option<Vec<TimedWord>> {
    let text: Vec<&str> = lexicon.iter().map(|w| w.token.as_str()).collect();
    if !decoder.set_align_text(&text.join(" ")) || !decoder.decode(pcm) {
        tracing::debug!("the word pass did not run");
        return None;
    }
    let found = decoder.hypothesis().is_some();
    let word_segments: Vec<Segment> = decoder
        .segments()
        .into_iter()
        .filter(|s| !is_filler(&s.name))
        .collect();
    let complete = found
        && word_segments.len() == lexicon.len()
        && word_segments
            .iter()
            .zip(lexicon)
            .all(|(s, w)| base_word(&s.name) == w.token);
    if !complete {
        let prefix = word_segments
            .iter()
            .zip(lexicon)
            .take_while(|(s, w)| base_word(&s.name) == w.token)
            .count();
        tracing::debug!(
            found = word_segments.len(),
            prefix,
            expected = lexicon.len(),
            "the word pass lost its way"
        );
        if depth >= MAX_SPLITS || prefix < 2 || prefix >= lexicon.len() {
            return None;
        }
        let keep = prefix - 1;
        let cut_frame = word_segments[keep - 1].start + word_segments[keep - 1].frames;
        let samples_per_frame = decoder.samples_per_frame();
        let cut = (cut_frame as usize * samples_per_frame).min(pcm.len());
        let left_pcm = with_tail_pad(&pcm[..cut]);
        let mut left = align_span(decoder, &left_pcm, &lexicon[..keep], depth + 1)?;
        let right = align_span(decoder, &pcm[cut..], &lexicon[keep..], depth + 1)?;
        left.extend(shifted(right, cut_frame));
        return Some(left);
    }
    let pieces = if pcm.len() > MAX_PHONE_PASS_SAMPLES {
        pieces(decoder, &word_segments, pcm.len())
    } else {
        Vec::new()
    };
    if pieces.len() > 1 {
        // A long stretch: the phone pass's memory grows with frames times states (2 GB for
        // four minutes in one pass), so it is aligned in pieces of at most 20 s, cut in
        // pauses between the words this pass found (one word pass over the whole, so the
        // time stays linear too).
        let mut out = Vec::with_capacity(lexicon.len());
        for piece in pieces {
            let words = align_span(decoder, &pcm[piece.samples], &lexicon[piece.words], depth)?;
            out.extend(shifted(words, piece.first_frame));
        }
        return Some(out);
    }
    let timed = |lex: &LexWord, phones| TimedWord {
        text: lex.text.clone(),
        sentence: lex.sentence,
        source: WordSource::Aligned,
        phones,
    };
    if decoder.set_alignment() && decoder.decode(pcm) {
        let aligned: Vec<Segment> = decoder
            .alignment()
            .into_iter()
            .filter(|w| !is_filler(&w.name))
            .collect();
        if aligned.len() == lexicon.len() {
            return Some(
                lexicon
                    .iter()
                    .zip(&aligned)
                    .map(|(lex, w)| timed(lex, phone_frames(&w.children)))
                    .collect(),
            );
        }
    }
    tracing::info!("the phone pass failed; aligning word by word");
    let samples_per_frame = decoder.samples_per_frame();
    Some(
        lexicon
            .iter()
            .zip(&word_segments)
            .map(|(lex, seg)| {
                let from = (seg.start as usize * samples_per_frame).min(pcm.len());
                let to = ((seg.start + seg.frames) as usize * samples_per_frame).min(pcm.len());
                let phones = align_word(decoder, &pcm[from..to], &lex.token)
                    .map(|phones| {
                        phones
                            .into_iter()
                            .map(|(p, s, e)| (p, s + seg.start, e + seg.start))
                            .collect()
                    })
                    .unwrap_or_else(|| {
                        dictionary_phones(decoder, &lex.token, seg.start, seg.frames)
                    });
                timed(lex, phones)
            })
            .collect(),
    )
}

/// The longest stretch whose phones are aligned in one pass: 20 s.
const MAX_PHONE_PASS_SAMPLES: usize = 20 * MODEL_SAMPLE_RATE as usize;

/// One piece of a long stretch: its words (indices into the stretch's), its samples, and the
/// frame it starts at (what its own frames are shifted by).
struct Piece {
    words: Range<usize>,
    samples: Range<usize>,
    first_frame: u32,
}

/// A stretch of `samples` samples whose words the word pass found (`words`, in frames of
/// `decoder`'s rate) as pieces cut at [`pauses_to_cut_at`]: one piece, the whole, when there
/// is nothing to cut.
fn pieces(decoder: &Decoder, words: &[Segment], samples: usize) -> Vec<Piece> {
    let per_frame = decoder.samples_per_frame();
    let at = |frame: u32| (frame as usize).saturating_mul(per_frame).min(samples);
    let bounds: Vec<(usize, u32)> = std::iter::once((0, 0))
        .chain(pauses_to_cut_at(words, decoder.frame_rate()))
        .chain(std::iter::once((words.len(), u32::MAX)))
        .collect();
    bounds
        .windows(2)
        .map(|b| Piece {
            words: b[0].0..b[1].0,
            samples: at(b[0].1)..at(b[1].1),
            first_frame: b[0].1,
        })
        .collect()
}

/// `words` aligned in a piece of audio, their frames moved to where that piece starts.
fn shifted(words: Vec<TimedWord>, frames: u32) -> impl Iterator<Item = TimedWord> {
    words.into_iter().map(move |mut w| {
        for p in &mut w.phones {
            p.1 += frames;
            p.2 += frames;
        }
        w
    })
}

/// Where to cut a long stretch whose words the word pass found (`words`, in frames of
/// `1 / frame_rate` s) into pieces of at most 20 s: in each window, the longest pause between
/// two words, pauses in its second half counting double (so pieces stay long). Each cut is the
/// number of words before it and its frame, the middle of that pause. Empty when there is
/// nothing to cut.
fn pauses_to_cut_at(words: &[Segment], frame_rate: u32) -> Vec<(usize, u32)> {
    let limit = (MAX_PHONE_PASS_SAMPLES / (MODEL_SAMPLE_RATE / frame_rate.max(1)) as usize) as u32;
    let end_of = |w: &Segment| w.start + w.frames;
    let Some(last) = words.last() else {
        return Vec::new();
    };
    let mut cuts = Vec::new();
    let mut from = 0u32;
    while end_of(last) > from + limit {
        let best = words
            .windows(2)
            .enumerate()
            .filter_map(|(i, pair)| {
                let (end, start) = (end_of(&pair[0]), pair[1].start.max(end_of(&pair[0])));
                (end > from && start <= from + limit).then_some((i + 1, end, start))
            })
            .max_by_key(|&(_, end, start)| {
                let gap = start - end + 1;
                if end > from + limit / 2 { 2 * gap } else { gap }
            });
        let Some((keep, end, start)) = best else {
            break;
        };
        if cuts.last().is_some_and(|&(k, _)| k >= keep) {
            break;
        }
        from = (end + start) / 2;
        cuts.push((keep, from));
    }
    cuts
}

/// The phones of recognised `words` (the recogniser's last decode of `pcm`), where their
/// alignment finds them: one phone pass over the hypothesis, or, beyond 20 s of audio (whose
/// single phone pass would take gigabytes), a word and a phone pass over each of its
/// [`pieces`].
fn recognised_phones(
    d: &mut Decoder,
    pcm: &[i16],
    words: &[Segment],
) -> Vec<Option<Vec<(String, u32, u32)>>> {
    let mut out = vec![None; words.len()];
    let fill = |out: &mut Vec<Option<_>>, first: usize, aligned: Vec<Segment>, offset: u32| {
        let aligned: Vec<Segment> = aligned
            .into_iter()
            .filter(|w| !is_filler(&w.name))
            .collect();
        for (k, w) in aligned.iter().enumerate() {
            if let Some(slot) = out.get_mut(first + k)
                && words
                    .get(first + k)
                    .is_some_and(|r| base_word(&r.name) == base_word(&w.name))
            {
                *slot = Some(
                    phone_frames(&w.children)
                        .into_iter()
                        .map(|(p, s, e)| (p, s + offset, e + offset))
                        .collect(),
                );
            }
        }
    };
    if pcm.len() <= MAX_PHONE_PASS_SAMPLES {
        if d.set_alignment() && d.decode(pcm) {
            let aligned = d.alignment();
            fill(&mut out, 0, aligned, 0);
        }
        return out;
    }
    for piece in pieces(d, words, pcm.len()) {
        let tokens: Vec<&str> = words[piece.words.clone()]
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        let audio = &pcm[piece.samples];
        if d.set_align_text(&tokens.join(" "))
            && d.decode(audio)
            && d.hypothesis().is_some()
            && d.set_alignment()
            && d.decode(audio)
        {
            let aligned = d.alignment();
            fill(&mut out, piece.words.start, aligned, piece.first_frame);
        }
    }
    out
}

/// The phones of one word in a short stretch of audio.
fn align_word(decoder: &mut Decoder, pcm: &[i16], token: &str) -> Option<Vec<(String, u32, u32)>> {
    if !decoder.set_align_text(token) || !decoder.decode(pcm) {
        return None;
    }
    decoder.hypothesis()?;
    if !decoder.set_alignment() || !decoder.decode(pcm) {
        return None;
    }
    let words = decoder.alignment();
    let word = words.iter().find(|w| !is_filler(&w.name))?;
    Some(phone_frames(&word.children))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_found_under_the_runtime_directory_or_where_the_variables_say() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        // espeak-ng elsewhere does not move pocketsphinx.
        let c = AlignerConfig::from_vars(vars(&[
            ("RUNTIME_DIR", "/rt"),
            ("ESPEAK_NG_LIB", "/x/e.so"),
        ]));
        assert_eq!(c.library, PathBuf::from("/rt/libpocketsphinx.so"));
        assert_eq!(c.model, PathBuf::from("/rt/pocketsphinx-model"));
        assert_eq!(
            c.acoustic_model(),
            PathBuf::from("/rt/pocketsphinx-model/en-us/en-us")
        );
        let c = AlignerConfig::from_vars(vars(&[
            ("HOME", "/home/u"),
            ("POCKETSPHINX_LIB", "/opt/ps.so"),
            ("POCKETSPHINX_MODEL", "/opt/model"),
        ]));
        assert_eq!(c.library, PathBuf::from("/opt/ps.so"));
        assert_eq!(
            c.dictionary(),
            PathBuf::from("/opt/model/en-us/cmudict-en-us.dict")
        );
        assert_eq!(
            c.runtime.espeak_lib,
            PathBuf::from("/home/u/.cache/avatar-pipeline/runtime/libespeak-ng.so")
        );
    }
}
