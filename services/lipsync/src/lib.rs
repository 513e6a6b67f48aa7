//! Mouth cues from the phoneme timeline.
//!
//! The synthesiser tells us exactly when each phoneme sounds ([`PhonemeTimeline`]), so
//! lip-sync needs no audio analysis: each phoneme is classified by what the mouth does
//! ([`phonetics`]), mapped into the requested viseme set ([`visemes`]), weighted by
//! stress and length, and smoothed so that very short sounds blend into their neighbours
//! instead of flickering. Lips still close for every p, b and m, and the mouth rests at
//! the start, in pauses and at the end.

pub mod phonetics;
mod smooth;
pub mod visemes;

use avatar_domain::timeline::symbol_of;
use avatar_domain::{MouthCue, PhonemeTimeline, VisemeSet};

use phonetics::{Consonant, Sound, Stress, Vowel, classify};
use smooth::smooth;

/// Shortest cue, in milliseconds: about three frames at 60 fps. Shorter sounds are folded
/// into a neighbour; closures never are (see [`MIN_CLOSURE_MS`]).
pub const MIN_CUE_MS: f64 = 40.0;
/// Shortest closure (p, b, m), about one frame at 50 to 60 fps: only a closure shorter than a
/// frame is lengthened, so that a renderer cannot skip it (docs/research/timing-measurements.md).
pub const MIN_CLOSURE_MS: f64 = 20.0;
/// A word break at least this long is a pause, and the mouth rests in it: shorter breaks are
/// sound, even at slow speeds (docs/research/timing-measurements.md).
pub const WORD_PAUSE_MS: f64 = 250.0;
/// Weight of a consonant that borrows the neighbouring vowel's shape, relative to the vowel.
const COARTICULATION: f32 = 0.6;

/// The mouth cues of a render, sorted by time, the first a rest at 0 and the last a rest.
pub fn mouth_cues(timeline: &PhonemeTimeline, set: VisemeSet) -> Vec<MouthCue> {
    let units = units(timeline);
    let mut segments = shapes(&units, set);
    smooth(&mut segments);
    cues(&segments, set)
}

/// The mouth cues of a stretch `[from_ms, to_ms)` of a stream, from the timeline of a part of
/// it that starts at `offset_ms` (live lip-sync: an utterance heard so far, or its correction).
/// Times are the stream's; the first cue, at `from_ms`, is the shape held there.
pub fn window_cues(
    timeline: &PhonemeTimeline,
    set: VisemeSet,
    offset_ms: u64,
    from_ms: u64,
    to_ms: u64,
) -> Vec<MouthCue> {
    if from_ms >= to_ms {
        return Vec::new();
    }
    // Before the timeline starts, the mouth rests.
    let mut out = vec![MouthCue {
        t_ms: from_ms,
        viseme: visemes::rest(set).into(),
        weight: 1.0,
    }];
    for cue in mouth_cues(timeline, set) {
        let t_ms = cue.t_ms + offset_ms;
        if t_ms >= to_ms {
            break;
        }
        let cue = MouthCue {
            t_ms: t_ms.max(from_ms),
            ..cue
        };
        match out.last_mut() {
            // Cues before the window only set the shape held at its start.
            Some(last) if cue.t_ms == from_ms && last.t_ms == from_ms => *last = cue,
            _ => out.push(cue),
        }
    }
    out
}

/// One sounding phoneme (or silence) with modifiers folded in.
#[derive(Debug, Clone)]
struct Unit {
    start: f64,
    end: f64,
    sound: Sound,
    stress: Option<Stress>,
    /// Consecutive units in one word share this; silences and word breaks advance it.
    word: usize,
}

/// Folds the timeline's symbols into sounding units. What each symbol without a sound of its
/// own gives its time to was measured against the audio (docs/lipsync-accuracy.md): a
/// stress mark sounds like the vowel it precedes (the vowel is already loud there), a length
/// mark or diacritic like the sound it follows, a short word break like the end of the word
/// before it.
fn units(t: &PhonemeTimeline) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::with_capacity(t.phonemes.len());
    let mut pending_stress = None;
    // Where the stress marks before the next sound began: that sound starts there.
    let mut pending_onset: Option<f64> = None;
    let mut word = 0;
    for p in &t.phonemes {
        let (start, end) = (t.ms(p.start_sample), t.ms(p.end_sample));
        let sound = symbol_of(&p.phoneme)
            .and_then(classify)
            .unwrap_or(Sound::Modifier);
        let sound = match sound {
            Sound::WordBreak if end - start >= WORD_PAUSE_MS => Sound::Silence,
            other => other,
        };
        match sound {
            Sound::Silence => {
                word += 1;
                let start = pending_onset.take().unwrap_or(start);
                match units.last_mut() {
                    Some(last) if last.sound == Sound::Silence => last.end = end,
                    _ => units.push(Unit {
                        start,
                        end,
                        sound,
                        stress: None,
                        word,
                    }),
                }
            }
            Sound::Stress(s) => {
                pending_stress = Some(s);
                pending_onset.get_or_insert(start);
                if units.is_empty() {
                    units.push(Unit {
                        start,
                        end,
                        sound: Sound::Silence,
                        stress: None,
                        word,
                    });
                    pending_onset = None;
                }
            }
            Sound::WordBreak | Sound::Modifier => {
                if sound == Sound::WordBreak {
                    word += 1;
                }
                if pending_onset.is_some() {
                    // After a stress mark: the time goes to the sound that follows.
                    continue;
                }
                match units.last_mut() {
                    Some(last) => last.end = end,
                    None => units.push(Unit {
                        start,
                        end,
                        sound: Sound::Silence,
                        stress: None,
                        word,
                    }),
                }
            }
            Sound::Vowel(_) | Sound::Consonant(_) => {
                let stress = match sound {
                    Sound::Vowel(_) => pending_stress.take(),
                    _ => None,
                };
                let start = pending_onset.take().unwrap_or(start);
                match units.last_mut() {
                    // An h after a pause is breath: the aligner hears the pause go on, and
                    // the mouth opens with the vowel that follows.
                    Some(last)
                        if last.sound == Sound::Silence
                            && sound == Sound::Consonant(Consonant::Glottal) =>
                    {
                        last.end = end;
                    }
                    // A doubled sound ("ææ", "tt") is one longer sound.
                    Some(last) if last.sound == sound && last.word == word => {
                        last.end = end;
                        last.stress = last.stress.or(stress);
                    }
                    _ => units.push(Unit {
                        start,
                        end,
                        sound,
                        stress,
                        word,
                    }),
                }
            }
        }
    }
    // Stress marks with no sound after them: the last unit takes their time.
    if pending_onset.is_some()
        && let (Some(last), Some(p)) = (units.last_mut(), t.phonemes.last())
    {
        last.end = t.ms(p.end_sample);
    }
    units
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rest,
    /// Lips closed (p, b, m): kept even when short.
    Closure,
    Open,
}

#[derive(Debug, Clone)]
struct Segment {
    start: f64,
    end: f64,
    viseme: &'static str,
    weight: f32,
    kind: Kind,
    /// Leading and trailing silence: never folded away.
    fixed: bool,
}

impl Segment {
    fn duration(&self) -> f64 {
        self.end - self.start
    }
}

fn vowel_shape(
    set: VisemeSet,
    v: Vowel,
    stress: Option<Stress>,
    duration_ms: f64,
) -> (&'static str, f32) {
    let stress_factor = match stress {
        Some(Stress::Primary) => 1.15,
        Some(Stress::Secondary) => 1.0,
        None => 0.85,
    };
    // Short vowels do not reach their full opening; long ones do.
    let length_factor = (0.65 + duration_ms / 300.0).clamp(0.7, 1.1) as f32;
    let weight = visemes::vowel_weight(v) * stress_factor * length_factor;
    (visemes::vowel(set, v), weight.clamp(0.1, 1.0))
}

fn shapes(units: &[Unit], set: VisemeSet) -> Vec<Segment> {
    let vowel_of = |u: &Unit| match u.sound {
        Sound::Vowel(v) => Some(vowel_shape(set, v, u.stress, u.end - u.start)),
        _ => None,
    };
    let last = units.len().saturating_sub(1);
    units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (viseme, weight, kind) = match u.sound {
                Sound::Vowel(_) => {
                    let (v, w) = vowel_of(u).expect("a vowel");
                    (v, w, Kind::Open)
                }
                Sound::Consonant(c) => match visemes::consonant(set, c) {
                    Some(v) => {
                        let kind = if c == Consonant::Bilabial {
                            Kind::Closure
                        } else {
                            Kind::Open
                        };
                        (v, visemes::consonant_weight(c), kind)
                    }
                    None => {
                        // Borrow the next vowel of the word, else the previous one.
                        let same_word = |j: &usize| units[*j].word == u.word;
                        let next = (i + 1..units.len())
                            .take_while(same_word)
                            .find_map(|j| vowel_of(&units[j]));
                        let prev = (0..i)
                            .rev()
                            .take_while(same_word)
                            .find_map(|j| vowel_of(&units[j]));
                        match next.or(prev) {
                            Some((v, w)) => (v, w * COARTICULATION, Kind::Open),
                            None => (
                                visemes::neutral_consonant(set),
                                visemes::consonant_weight(c),
                                Kind::Open,
                            ),
                        }
                    }
                },
                _ => (visemes::rest(set), 1.0, Kind::Rest),
            };
            Segment {
                start: u.start,
                end: u.end,
                viseme,
                weight,
                kind,
                fixed: u.sound == Sound::Silence && (i == 0 || i == last),
            }
        })
        .collect()
}

fn cues(segments: &[Segment], set: VisemeSet) -> Vec<MouthCue> {
    let mut cues: Vec<MouthCue> = vec![MouthCue {
        t_ms: 0,
        viseme: visemes::rest(set).into(),
        weight: 1.0,
    }];
    for s in segments {
        let cue = MouthCue {
            // Only the opening rest sits at 0.
            t_ms: (s.start.max(0.0).round() as u64).max(1),
            viseme: s.viseme.into(),
            weight: (s.weight * 100.0).round() / 100.0,
        };
        let last = cues.last_mut().expect("starts with a rest");
        if last.viseme == cue.viseme {
            last.weight = last.weight.max(cue.weight);
        } else if last.t_ms == cue.t_ms && last.t_ms > 0 {
            *last = cue;
        } else {
            cues.push(cue);
        }
    }
    if cues.last().is_some_and(|c| c.viseme != visemes::rest(set)) {
        let end = segments.last().map_or(0, |s| s.end.round() as u64);
        cues.push(MouthCue {
            t_ms: end.max(cues.last().map_or(0, |c| c.t_ms)),
            viseme: visemes::rest(set).into(),
            weight: 1.0,
        });
    }
    cues
}

#[cfg(test)]
mod tests;
