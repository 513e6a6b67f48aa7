//! Eye events for a render: blinks and saccades that look alive.
//!
//! People blink about 10 to 20 times a minute while speaking, mostly at the ends of
//! sentences and in pauses, each blink lasting 100 to 400 ms; between blinks the gaze makes
//! small shifts (saccades) and returns, looking away more often when a new sentence starts.
//! The events are drawn from a generator seeded by the render id, so one render always gets
//! the same events and a cached render replays identically.

use avatar_domain::{EyeEvent, EyeEventType, Pause, PhonemeTimeline, SaccadeDirection};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};

/// Shortest and longest blink, in milliseconds.
pub const BLINK_MS: (u64, u64) = (100, 400);
/// Gap between blinks: at least this, plus an exponential wait with mean
/// [`BLINK_EXTRA_MEAN_MS`] (together about 15 blinks a minute).
const BLINK_MIN_GAP_MS: f64 = 1800.0;
const BLINK_EXTRA_MEAN_MS: f64 = 2200.0;
/// A scheduled blink within this distance of a pause moves into it.
const PAUSE_PULL_MS: f64 = 1200.0;
/// Pauses at least this long attract blinks.
const PAUSE_MIN_MS: f64 = 120.0;
/// Nothing happens in the first moment of a clip: the viewer has not settled yet.
const LEAD_IN_MS: f64 = 300.0;
/// Shortest and longest saccade (gaze away and back), in milliseconds.
pub const SACCADE_MS: (u64, u64) = (150, 900);
const SACCADE_MIN_GAP_MS: f64 = 1200.0;
const SACCADE_EXTRA_MEAN_MS: f64 = 1600.0;

/// The eye events of a render, sorted by time; blinks never overlap each other, saccades
/// never overlap each other, and every event ends within the audio.
pub fn eye_events(timeline: &PhonemeTimeline, render_id: &str) -> Vec<EyeEvent> {
    let mut rng = ChaCha8Rng::from_seed(Sha256::digest(render_id.as_bytes()).into());
    let duration = timeline.duration_ms() as f64;
    let pauses = timeline.pauses(PAUSE_MIN_MS);
    let mut events = blinks(&mut rng, duration, &pauses);
    events.extend(saccades(&mut rng, duration, &pauses));
    events.sort_by_key(|e| (e.t_ms, e.event_type == EyeEventType::Saccade));
    events
}

/// Appends the eye events of the next segment of a stream (already in stream time) to those
/// of the stream so far, keeping the rules of one render across the seam: a blink or saccade
/// closer to the one before it than the shortest gap between two (each segment was drawn on
/// its own, so its first blink may come just after the previous segment's last) is dropped.
/// Returns how many were dropped.
pub fn stitch(stream: &mut Vec<EyeEvent>, next: impl IntoIterator<Item = EyeEvent>) -> usize {
    let mut dropped = 0;
    for event in next {
        let (gap, kind) = match event.event_type {
            EyeEventType::Blink => (BLINK_MIN_GAP_MS, EyeEventType::Blink),
            EyeEventType::Saccade => (SACCADE_MIN_GAP_MS, EyeEventType::Saccade),
        };
        let too_close = stream
            .iter()
            .rev()
            .find(|e| e.event_type == kind)
            .is_some_and(|last| {
                (event.t_ms as f64) < last.t_ms as f64 + gap
                    || event.t_ms < last.t_ms + last.duration_ms
            });
        if too_close {
            dropped += 1;
        } else {
            stream.push(event);
        }
    }
    stream.sort_by_key(|e| (e.t_ms, e.event_type == EyeEventType::Saccade));
    dropped
}

/// Exponential wait with the given mean.
fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A roughly normal draw (sum of three uniforms) with the given mean and deviation.
fn normalish(rng: &mut ChaCha8Rng, mean: f64, deviation: f64) -> f64 {
    let sum: f64 = (0..3).map(|_| rng.random::<f64>()).sum();
    mean + (sum - 1.5) * 2.0 * deviation
}

fn blink_duration(rng: &mut ChaCha8Rng, in_pause: bool) -> u64 {
    let ms = if rng.random_bool(0.06) {
        // An occasional slow, relaxed blink.
        rng.random_range(250.0..380.0)
    } else {
        normalish(rng, if in_pause { 190.0 } else { 160.0 }, 30.0)
    };
    (ms.round() as u64).clamp(BLINK_MS.0, BLINK_MS.1)
}

fn blinks(rng: &mut ChaCha8Rng, duration: f64, pauses: &[Pause]) -> Vec<EyeEvent> {
    let mut events: Vec<EyeEvent> = Vec::new();
    // When the eyes are next free: after the last blink and a short recovery.
    let mut free_at = LEAD_IN_MS;
    let mut last_blink = f64::NEG_INFINITY;
    let mut next = LEAD_IN_MS + rng.random_range(0.0..BLINK_MIN_GAP_MS + BLINK_EXTRA_MEAN_MS);
    // Sentence ends with no blink for a while invite one.
    let mut sentence_breaks = pauses
        .iter()
        .filter(|p| p.sentence_break && p.start_ms > LEAD_IN_MS)
        .peekable();
    loop {
        while let Some(p) = sentence_breaks.peek() {
            if p.start_ms >= next {
                break;
            }
            let p = sentence_breaks.next().expect("peeked");
            if p.start_ms - last_blink > 2000.0 && rng.random_bool(0.7) {
                next = p.start_ms;
                break;
            }
        }
        if next >= duration {
            break;
        }
        // Drawn towards a nearby pause: blink just after it begins.
        let pause = pauses
            .iter()
            .filter(|p| p.start_ms >= free_at && (p.start_ms - next).abs() <= PAUSE_PULL_MS)
            .min_by(|a, b| {
                (a.start_ms - next)
                    .abs()
                    .total_cmp(&(b.start_ms - next).abs())
            });
        let t = match pause {
            Some(p) => p.start_ms + rng.random_range(30.0..120.0),
            None => next,
        }
        .max(free_at);
        let dur = blink_duration(rng, pause.is_some());
        if t + dur as f64 > duration {
            break;
        }
        events.push(blink(t, dur));
        last_blink = t;
        free_at = t + dur as f64 + 80.0;
        // Now and then a quick second blink.
        if rng.random_bool(0.08) {
            let t2 = free_at + rng.random_range(100.0..200.0);
            let dur2 = blink_duration(rng, false).min(220);
            if t2 + (dur2 as f64) <= duration {
                events.push(blink(t2, dur2));
                free_at = t2 + dur2 as f64 + 80.0;
            }
        }
        next = free_at.max(last_blink + BLINK_MIN_GAP_MS)
            + exponential(rng, BLINK_EXTRA_MEAN_MS).min(6000.0);
    }
    events
}

fn blink(t: f64, duration_ms: u64) -> EyeEvent {
    EyeEvent {
        t_ms: t.round() as u64,
        event_type: EyeEventType::Blink,
        duration_ms,
        direction: None,
    }
}

fn saccades(rng: &mut ChaCha8Rng, duration: f64, pauses: &[Pause]) -> Vec<EyeEvent> {
    use SaccadeDirection::*;
    // Mid-sentence: mostly sideways glances. Starting a sentence: looking up and away,
    // as people do while they formulate.
    const TALKING: [(SaccadeDirection, f64); 8] = [
        (Left, 0.25),
        (Right, 0.25),
        (UpLeft, 0.1),
        (UpRight, 0.1),
        (DownLeft, 0.1),
        (DownRight, 0.1),
        (Down, 0.05),
        (Up, 0.05),
    ];
    const THINKING: [(SaccadeDirection, f64); 8] = [
        (Left, 0.1),
        (Right, 0.1),
        (UpLeft, 0.25),
        (UpRight, 0.25),
        (DownLeft, 0.1),
        (DownRight, 0.1),
        (Down, 0.0),
        (Up, 0.1),
    ];
    let mut events = Vec::new();
    let mut t = LEAD_IN_MS + rng.random_range(200.0..SACCADE_MIN_GAP_MS + SACCADE_EXTRA_MEAN_MS);
    while t < duration {
        let after_break = pauses
            .iter()
            .any(|p| p.sentence_break && t >= p.start_ms && t - p.end_ms < 500.0);
        let table = if after_break { &THINKING } else { &TALKING };
        let mut pick = rng.random::<f64>() * table.iter().map(|(_, w)| w).sum::<f64>();
        let direction = table
            .iter()
            .find(|(_, w)| {
                pick -= w;
                pick < 0.0
            })
            .map_or(Left, |(d, _)| *d);
        let dur = ((SACCADE_MS.0 as f64 + exponential(rng, 250.0)).round() as u64)
            .clamp(SACCADE_MS.0, SACCADE_MS.1);
        if t + dur as f64 > duration {
            break;
        }
        events.push(EyeEvent {
            t_ms: t.round() as u64,
            event_type: EyeEventType::Saccade,
            duration_ms: dur,
            direction: Some(direction),
        });
        t += dur as f64 + SACCADE_MIN_GAP_MS + exponential(rng, SACCADE_EXTRA_MEAN_MS).min(5000.0);
    }
    events
}

#[cfg(test)]
mod tests;
