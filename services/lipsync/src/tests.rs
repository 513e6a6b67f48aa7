use std::collections::HashMap;

use avatar_domain::{PhonemeTimeline, SentenceSpan, TimedPhoneme};

use super::*;

const RATE: u32 = 22050;

/// A one-sentence timeline from (phoneme, milliseconds) pairs.
fn timeline(phonemes: &[(&str, f64)]) -> PhonemeTimeline {
    let mut t = PhonemeTimeline {
        sample_rate: RATE,
        ..Default::default()
    };
    for &(p, ms) in phonemes {
        let start = t.total_samples;
        t.total_samples += (ms * f64::from(RATE) / 1000.0).round() as u64;
        t.phonemes.push(TimedPhoneme {
            phoneme: p.into(),
            start_sample: start,
            end_sample: t.total_samples,
        });
    }
    t.sentences.push(SentenceSpan {
        start_sample: 0,
        end_sample: t.total_samples,
        first_phoneme: 0,
        end_phoneme: t.phonemes.len(),
    });
    t
}

/// "hello, mama" with plausible durations.
fn hello_mama() -> PhonemeTimeline {
    timeline(&[
        ("^", 120.0),
        ("h", 60.0),
        ("ə", 50.0),
        ("l", 60.0),
        ("ˈ", 0.0),
        ("o", 120.0),
        ("ʊ", 90.0),
        (",", 150.0),
        (" ", 10.0),
        ("m", 70.0),
        ("ˈ", 0.0),
        ("ɑ", 140.0),
        ("m", 60.0),
        ("ə", 100.0),
        (".", 200.0),
        ("$", 50.0),
    ])
}

fn cue_at(cues: &[MouthCue], t_ms: f64) -> &MouthCue {
    cues.iter()
        .rev()
        .find(|c| c.t_ms as f64 <= t_ms)
        .expect("a cue at or before t")
}

fn check_invariants(cues: &[MouthCue], t: &PhonemeTimeline, set: VisemeSet) {
    let rest = visemes::rest(set);
    assert_eq!(cues[0].t_ms, 0);
    assert_eq!(cues[0].viseme, rest, "{cues:?}");
    assert_eq!(cues.last().unwrap().viseme, rest, "{cues:?}");
    let vocabulary = visemes::vocabulary(set);
    for pair in cues.windows(2) {
        assert!(pair[0].t_ms < pair[1].t_ms, "not strictly sorted: {pair:?}");
        assert_ne!(pair[0].viseme, pair[1].viseme, "repeated cue: {pair:?}");
    }
    for c in cues {
        assert!(c.t_ms <= t.duration_ms(), "{c:?} after the end");
        assert!(
            vocabulary.contains(&c.viseme.as_str()),
            "{c:?} not in {set}"
        );
        assert!((0.0..=1.0).contains(&c.weight), "{c:?}");
    }
}

#[test]
fn bilabials_close_the_mouth_and_pauses_rest() {
    let t = hello_mama();
    for set in VisemeSet::ALL {
        let cues = mouth_cues(&t, set);
        check_invariants(&cues, &t, set);
        let closed = match set {
            VisemeSet::Basic => "REST",
            VisemeSet::Rhubarb => "A",
            VisemeSet::Oculus => "PP",
        };
        // Both m's close the lips fully.
        for m_ms in [695.0, 900.0] {
            let c = cue_at(&cues, m_ms);
            assert_eq!(
                (c.viseme.as_str(), c.weight),
                (closed, 1.0),
                "{set} at {m_ms}: {cues:?}"
            );
        }
        // The comma pause (500-660 ms) and the final period rest the mouth.
        assert_eq!(
            cue_at(&cues, 580.0).viseme,
            visemes::rest(set),
            "{set}: {cues:?}"
        );
        assert_eq!(
            cue_at(&cues, 1100.0).viseme,
            visemes::rest(set),
            "{set}: {cues:?}"
        );
        // The stressed open vowel of "mama" opens the mouth.
        let a = cue_at(&cues, 800.0);
        let open = match set {
            VisemeSet::Basic => "AA",
            VisemeSet::Rhubarb => "D",
            VisemeSet::Oculus => "aa",
        };
        assert_eq!(a.viseme, open, "{set}: {cues:?}");
        assert!(a.weight >= 0.9, "{a:?}");
    }
}

#[test]
fn stress_and_length_raise_the_weight() {
    let stressed = timeline(&[("^", 100.0), ("ˈ", 0.0), ("ɑ", 100.0), ("$", 100.0)]);
    let unstressed = timeline(&[("^", 100.0), ("ɑ", 100.0), ("$", 100.0)]);
    let long = timeline(&[("^", 100.0), ("ɑ", 200.0), ("$", 100.0)]);
    let weight = |t: &PhonemeTimeline| mouth_cues(t, VisemeSet::Basic)[1].weight;
    assert!(weight(&stressed) > weight(&unstressed) + 0.1);
    assert!(weight(&long) > weight(&unstressed) + 0.05);
    // A schwa opens less than a full "ah".
    let schwa = timeline(&[("^", 100.0), ("ə", 100.0), ("$", 100.0)]);
    assert!(weight(&schwa) < weight(&unstressed));
}

#[test]
fn very_short_sounds_blend_instead_of_flickering() {
    // "ɑ t ɑ" with a 12 ms t: no cue for the t, and the vowel does not stutter.
    let t = timeline(&[
        ("^", 100.0),
        ("ɑ", 150.0),
        ("t", 12.0),
        ("ɑ", 150.0),
        ("$", 100.0),
    ]);
    for set in VisemeSet::ALL {
        let cues = mouth_cues(&t, set);
        check_invariants(&cues, &t, set);
        assert_eq!(cues.len(), 3, "{set}: {cues:?}");
    }
    // Over a real-looking sentence, no cue but the closing rest lasts under MIN_CUE_MS.
    let t = hello_mama();
    for set in VisemeSet::ALL {
        let cues = mouth_cues(&t, set);
        for pair in cues.windows(2) {
            assert!(
                (pair[1].t_ms - pair[0].t_ms) as f64 >= MIN_CUE_MS - 1.0,
                "{set}: {pair:?}"
            );
        }
    }
}

#[test]
fn a_short_closure_is_lengthened_not_dropped() {
    // A 15 ms "b" between vowels still closes the lips, for at least MIN_CLOSURE_MS (a
    // frame), and not much longer: the vowels on either side are heard open.
    let t = timeline(&[
        ("^", 100.0),
        ("ɑ", 150.0),
        ("b", 15.0),
        ("ɑ", 150.0),
        ("$", 100.0),
    ]);
    let cues = mouth_cues(&t, VisemeSet::Rhubarb);
    let i = cues
        .iter()
        .position(|c| c.viseme == "A")
        .expect("a closure cue");
    let held = (cues[i + 1].t_ms - cues[i].t_ms) as f64;
    assert!(
        (MIN_CLOSURE_MS - 1.0..=MIN_CLOSURE_MS + 1.0).contains(&held),
        "{cues:?}"
    );
    // The b sounds at 250-265 ms; the closure is centred on it.
    assert!((245..=251).contains(&cues[i].t_ms), "{cues:?}");
}

#[test]
fn velars_take_the_vowel_shape() {
    // "key" vs "coo": the k shows the following vowel's shape.
    let key = timeline(&[
        ("^", 100.0),
        ("k", 60.0),
        ("ˈ", 0.0),
        ("i", 150.0),
        ("$", 100.0),
    ]);
    let coo = timeline(&[
        ("^", 100.0),
        ("k", 60.0),
        ("ˈ", 0.0),
        ("u", 150.0),
        ("$", 100.0),
    ]);
    let at_k = |t| mouth_cues(t, VisemeSet::Basic)[1].clone();
    assert_eq!(at_k(&key).viseme, "EE");
    assert_eq!(at_k(&coo).viseme, "OO");
}

#[test]
fn silence_only_and_empty_timelines_rest() {
    for t in [
        timeline(&[("^", 100.0), ("$", 50.0)]),
        PhonemeTimeline {
            sample_rate: RATE,
            ..Default::default()
        },
    ] {
        for set in VisemeSet::ALL {
            let cues = mouth_cues(&t, set);
            assert_eq!(cues.len(), 1, "{cues:?}");
            assert_eq!(cues[0].viseme, visemes::rest(set));
        }
    }
}

/// The voices directory the workspace's scripts fill.
fn voice_config() -> serde_json::Value {
    let dir = std::env::var("VOICES_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../voices").into());
    let path = format!("{dir}/en_US-joe-medium.onnx.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (scripts/download_voices.sh en_US-joe-medium)"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_symbol_of_the_phoneme_map_has_a_mouth() {
    let config = voice_config();
    let map: HashMap<String, serde_json::Value> =
        serde_json::from_value(config["phoneme_id_map"].clone()).unwrap();
    assert!(map.len() >= 150, "{}", map.len());
    let mut unclassified = Vec::new();
    for symbol in map.keys() {
        let mut chars = symbol.chars();
        let c = chars.next().unwrap();
        assert!(chars.next().is_none(), "multi-character symbol {symbol:?}");
        if phonetics::classify(c).is_none() {
            unclassified.push(format!("{c} U+{:04X}", c as u32));
        }
        // Each symbol in a vowel frame yields cues of every set's vocabulary.
        let t = timeline(&[
            ("^", 100.0),
            ("ɑ", 100.0),
            (symbol, 80.0),
            ("ɑ", 100.0),
            ("$", 100.0),
        ]);
        for set in VisemeSet::ALL {
            check_invariants(&mouth_cues(&t, set), &t, set);
        }
    }
    assert!(unclassified.is_empty(), "no mouth for: {unclassified:?}");
}

#[test]
fn every_viseme_of_every_set_is_reachable() {
    let config = voice_config();
    let map: HashMap<String, serde_json::Value> =
        serde_json::from_value(config["phoneme_id_map"].clone()).unwrap();
    for set in VisemeSet::ALL {
        let mut seen = std::collections::HashSet::new();
        for symbol in map.keys() {
            let t = timeline(&[("^", 100.0), ("ˈ", 0.0), (symbol, 150.0), ("$", 100.0)]);
            for c in mouth_cues(&t, set) {
                seen.insert(c.viseme);
            }
        }
        for v in visemes::vocabulary(set) {
            assert!(seen.contains(*v), "{set}: {v} never produced");
        }
    }
}

/// Live cues come in windows: laid end to end they hold the same shape at every moment as the
/// whole timeline's cues, each window opening with the shape held at its start.
#[test]
fn windows_of_a_timeline_hold_the_shapes_of_its_cues() {
    let t = hello_mama();
    let end = t.ms(t.total_samples) as u64;
    for set in VisemeSet::ALL {
        let whole = mouth_cues(&t, set);
        let offset = 500;
        let mut windows = Vec::new();
        let mut from = 0;
        for to in (0..=end + offset).step_by(70).skip(1).chain([end + offset]) {
            let w = window_cues(&t, set, offset, from, to);
            assert_eq!(
                w.first().map(|c| c.t_ms),
                Some(from),
                "{set}: window {from}..{to}"
            );
            assert!(w.iter().all(|c| (from..to).contains(&c.t_ms)));
            windows.extend(w);
            from = to;
        }
        for ms in (0..end + offset).step_by(5) {
            let expected = if ms < offset {
                visemes::rest(set)
            } else {
                cue_at(&whole, (ms - offset) as f64).viseme.as_str()
            };
            assert_eq!(
                cue_at(&windows, ms as f64).viseme,
                expected,
                "{set} at {ms} ms"
            );
        }
    }
}
