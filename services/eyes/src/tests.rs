use avatar_domain::{PhonemeTimeline, SentenceSpan, TimedPhoneme};

use super::*;

const RATE: u32 = 22050;

/// `sentences` sentences of `words` words each (0.3 s per word) with 0.5 s pauses between
/// them, as the synthesiser would time them.
fn speech(sentences: usize, words: usize) -> PhonemeTimeline {
    let mut t = PhonemeTimeline {
        sample_rate: RATE,
        ..Default::default()
    };
    let push = |t: &mut PhonemeTimeline, p: &str, ms: f64| {
        let start = t.total_samples;
        t.total_samples += (ms * f64::from(RATE) / 1000.0) as u64;
        t.phonemes.push(TimedPhoneme {
            phoneme: p.into(),
            start_sample: start,
            end_sample: t.total_samples,
        });
    };
    for _ in 0..sentences {
        let first = t.phonemes.len();
        let start = t.total_samples;
        push(&mut t, "^", 80.0);
        for _ in 0..words {
            push(&mut t, "a", 300.0);
            push(&mut t, " ", 0.0);
        }
        push(&mut t, ".", 350.0);
        push(&mut t, "$", 70.0);
        t.sentences.push(SentenceSpan {
            start_sample: start,
            end_sample: t.total_samples,
            first_phoneme: first,
            end_phoneme: t.phonemes.len(),
        });
    }
    t
}

fn of_type(events: &[EyeEvent], kind: EyeEventType) -> Vec<&EyeEvent> {
    events.iter().filter(|e| e.event_type == kind).collect()
}

#[test]
fn same_render_same_events_other_render_other_events() {
    let t = speech(6, 12);
    let a = eye_events(&t, "render-a");
    assert_eq!(a, eye_events(&t, "render-a"));
    assert_ne!(a, eye_events(&t, "render-b"));
}

#[test]
fn blinks_are_human() {
    // Over many renders of a minute of speech: 10 to 20 blinks a minute on average,
    // each 100 to 400 ms, never overlapping, all inside the audio.
    let t = speech(15, 12);
    let minutes = t.duration_ms() as f64 / 60_000.0;
    let mut total = 0;
    for i in 0..200 {
        let events = eye_events(&t, &format!("render-{i}"));
        let blinks = of_type(&events, EyeEventType::Blink);
        total += blinks.len();
        for b in &blinks {
            assert!((100..=400).contains(&b.duration_ms), "{b:?}");
            assert_eq!(b.direction, None);
            assert!(b.t_ms + b.duration_ms <= t.duration_ms(), "{b:?}");
        }
        for pair in blinks.windows(2) {
            assert!(
                pair[0].t_ms + pair[0].duration_ms < pair[1].t_ms,
                "overlap {pair:?}"
            );
        }
        for pair in events.windows(2) {
            assert!(pair[0].t_ms <= pair[1].t_ms, "unsorted");
        }
    }
    let per_minute = total as f64 / 200.0 / minutes;
    assert!(
        (10.0..=20.0).contains(&per_minute),
        "{per_minute} blinks a minute"
    );
}

#[test]
fn blinks_gather_at_sentence_ends() {
    // Pauses cover 350/4030 (under 9 %) of the time; far more blinks start in them.
    let t = speech(15, 12);
    let pauses = t.pauses(PAUSE_MIN_MS);
    let (mut in_pause, mut total) = (0, 0);
    for i in 0..200 {
        for b in of_type(&eye_events(&t, &format!("r{i}")), EyeEventType::Blink) {
            total += 1;
            let t_ms = b.t_ms as f64;
            if pauses.iter().any(|p| t_ms >= p.start_ms && t_ms < p.end_ms) {
                in_pause += 1;
            }
        }
    }
    let share = in_pause as f64 / total as f64;
    assert!(share > 0.4, "only {share:.2} of blinks in pauses");
}

#[test]
fn saccades_are_plausible() {
    let t = speech(15, 12);
    let mut directions = std::collections::HashSet::new();
    for i in 0..50 {
        let events = eye_events(&t, &format!("s{i}"));
        let saccades = of_type(&events, EyeEventType::Saccade);
        assert!(
            saccades.len() >= 10,
            "{} saccades in a minute",
            saccades.len()
        );
        for s in &saccades {
            assert!(
                (SACCADE_MS.0..=SACCADE_MS.1).contains(&s.duration_ms),
                "{s:?}"
            );
            assert!(s.t_ms + s.duration_ms <= t.duration_ms());
            directions.insert(format!("{:?}", s.direction.expect("a direction")));
        }
        for pair in saccades.windows(2) {
            assert!(
                pair[0].t_ms + pair[0].duration_ms < pair[1].t_ms,
                "overlap {pair:?}"
            );
        }
    }
    assert!(directions.len() >= 6, "{directions:?}");
}

#[test]
fn short_and_empty_clips() {
    let empty = PhonemeTimeline {
        sample_rate: RATE,
        ..Default::default()
    };
    assert!(eye_events(&empty, "x").is_empty());
    let short = speech(1, 1);
    for e in eye_events(&short, "y") {
        assert!(e.t_ms + e.duration_ms <= short.duration_ms());
    }
}

#[test]
fn a_stream_of_one_sentence_segments_blinks_like_one_render() {
    // 40 streams of 20 one-sentence segments (about 3.9 s each), stitched in stream time:
    // blinks at a human rate over the whole stream and never closer than the shortest gap.
    let segment = speech(1, 11);
    let length = segment.duration_ms();
    let (mut blinks, mut minutes) = (0usize, 0.0);
    for stream_no in 0..40 {
        let mut stream = Vec::new();
        for seq in 0..20u64 {
            let shifted = eye_events(&segment, &format!("s{stream_no}-{seq}"))
                .into_iter()
                .map(|mut e| {
                    e.t_ms += seq * length;
                    e
                });
            stitch(&mut stream, shifted);
        }
        let stream_blinks = of_type(&stream, EyeEventType::Blink);
        for pair in stream_blinks.windows(2) {
            assert!(
                (pair[1].t_ms - pair[0].t_ms) as f64 >= BLINK_MIN_GAP_MS,
                "double blink at a seam: {pair:?}"
            );
        }
        for pair in of_type(&stream, EyeEventType::Saccade).windows(2) {
            assert!(
                pair[1].t_ms >= pair[0].t_ms + pair[0].duration_ms,
                "{pair:?}"
            );
        }
        blinks += stream_blinks.len();
        minutes += (20 * length) as f64 / 60_000.0;
    }
    let rate = blinks as f64 / minutes;
    assert!((8.0..=22.0).contains(&rate), "{rate:.1} blinks a minute");
}
