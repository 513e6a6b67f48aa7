//! Real synthesis with the joe voice: audio, timeline and encoded files.

mod common;

use std::process::Command;

use tts::{AudioFormat, TtsError, audio, synthesize};

const TEXT: &str = "The quick brown fox jumps over the lazy dog. Did it land safely? Yes, \
                    it did; everyone cheered!";

#[test]
fn timeline_tiles_the_audio_exactly() {
    let voice = common::joe();
    let s = synthesize(&voice, TEXT, 1.0).unwrap();
    let t = &s.timeline;
    t.check().unwrap();
    assert_eq!(t.sample_rate, 22050);
    assert_eq!(t.total_samples as usize, s.samples.len());
    // One run per sentence, and the durations came from that run: every phoneme owns whole
    // frames of 256 samples, summing to exactly the sentence's audio.
    assert_eq!(t.sentences.len(), 3, "{:?}", t.sentences);
    for p in &t.phonemes {
        assert_eq!((p.end_sample - p.start_sample) % 256, 0, "{p:?}");
    }
    for span in &t.sentences {
        assert_eq!(t.phonemes[span.first_phoneme].phoneme, "^");
        assert_eq!(t.phonemes[span.end_phoneme - 1].phoneme, "$");
    }
    // Vowels (and their length marks) take time; the audio is speech-length (about 6 s).
    let ms = s.duration_ms();
    assert!((3000..12000).contains(&ms), "{ms} ms");
    let vowel_ms: f64 = t
        .phonemes
        .iter()
        .filter(|p| "aeiouæɑɐɒɔəɚɛɜɪʊʌː".contains(p.phoneme.as_str()))
        .map(|p| t.ms(p.end_sample) - t.ms(p.start_sample))
        .sum();
    assert!(vowel_ms > ms as f64 * 0.2, "vowels {vowel_ms} of {ms} ms");
    // Peak-normalised per sentence like Piper, and not silent.
    let peak = s.samples.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((0.99..=1.0).contains(&peak), "peak {peak}");
}

#[test]
fn speed_scales_the_length() {
    let voice = common::joe();
    let text = "Speaking faster makes the sentence noticeably shorter than before.";
    // Durations are random per run (noise_w): compare means of a few runs, not single runs
    // (one run at speed 2 came out at 0.654 of one at speed 1).
    let mean = |speed: f64| {
        (0..4)
            .map(|_| synthesize(&voice, text, speed).unwrap().duration_ms() as f64)
            .sum::<f64>()
            / 4.0
    };
    let (normal, fast, slow) = (mean(1.0), mean(2.0), mean(0.5));
    assert!(
        (0.35..0.65).contains(&(fast / normal)),
        "{fast} vs {normal}"
    );
    assert!((1.6..2.4).contains(&(slow / normal)), "{slow} vs {normal}");
}

#[test]
fn nothing_to_speak_is_a_client_error() {
    let voice = common::joe();
    let err = synthesize(&voice, "?!...;:,", 1.0).unwrap_err();
    assert_eq!(err, TtsError::NothingToSpeak);
    assert_eq!(err.field(), Some("text"));
}

#[test]
fn hard_inputs_render() {
    let voice = common::joe();
    for text in [
        "😀🎉🚀",
        "Москва 東京 Αθήνα",
        &"Supercalifragilisticexpialidocious".repeat(30),
        "Tab\there, bell\u{7} and nul\u{0} after",
        "Dr. Smith paid $1,234.56 on 3/14/2025 at 10:30 a.m. -- really?",
    ] {
        let s = synthesize(&voice, text, 1.0).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        s.timeline.check().unwrap();
        assert!(s.duration_ms() > 200, "{text:?}");
    }
}

#[test]
fn a_long_sentence_is_split_but_complete() {
    let voice = common::joe();
    // One 1,400-character sentence of clauses: synthesised in pieces, timeline intact.
    let text = "and then the rain came down over the hills, ".repeat(32) + "and stopped.";
    let s = synthesize(&voice, &text, 1.0).unwrap();
    s.timeline.check().unwrap();
    assert!(s.timeline.sentences.len() > 1);
    assert!(s.duration_ms() > 60_000, "{} ms", s.duration_ms());
}

fn probe_duration_ms(path: &std::path::Path) -> f64 {
    let probe = avatar_test_support::probe(path);
    if path.extension().unwrap() == "ogg" {
        assert_eq!((probe.codec.as_str(), probe.sample_rate), ("opus", 48000));
    } else {
        assert_eq!(
            (probe.codec.as_str(), probe.sample_rate),
            ("pcm_s16le", 22050)
        );
    }
    assert_eq!(probe.channels, 1);
    probe.duration_ms
}

#[test]
fn encoded_files_pass_independent_decoders() {
    let voice = common::joe();
    let s = synthesize(&voice, TEXT, 1.0).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let ogg = audio::encode(&s.samples, s.sample_rate(), AudioFormat::Ogg, 24_000);
    assert_eq!(ogg.format, AudioFormat::Ogg);
    let ogg_path = dir.path().join("speech.ogg");
    std::fs::write(&ogg_path, &ogg.bytes).unwrap();
    let probed = probe_duration_ms(&ogg_path);
    assert!(
        (probed - s.duration_ms() as f64).abs() <= 20.0,
        "ffprobe {probed} ms vs {} ms",
        s.duration_ms()
    );
    // About 3 KB per second of speech at 24 kbit/s.
    let per_second = ogg.bytes.len() as f64 / (s.duration_ms() as f64 / 1000.0);
    assert!((2000.0..4500.0).contains(&per_second), "{per_second} B/s");

    let info = Command::new("opusinfo")
        .arg(&ogg_path)
        .output()
        .expect("opusinfo (apt-get install opus-tools)");
    let report = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{report}");
    assert!(
        !report.contains("WARNING") && !report.contains("ERROR"),
        "{report}"
    );
    assert!(report.contains("Pre-skip: 312"), "{report}");

    // opusdec applies pre-skip and end trimming: the decoded PCM is the synthesised length.
    let wav_path = dir.path().join("decoded.wav");
    let dec = Command::new("opusdec")
        .args(["--quiet", "--rate", "48000"])
        .arg(&ogg_path)
        .arg(&wav_path)
        .status()
        .unwrap();
    assert!(dec.success());
    let decoded = hound::WavReader::open(&wav_path).unwrap().duration() as f64 / 48.0;
    assert!(
        (decoded - s.duration_ms() as f64).abs() <= 20.0,
        "opusdec {decoded} ms vs {} ms",
        s.duration_ms()
    );

    let wav = audio::encode(&s.samples, s.sample_rate(), AudioFormat::Wav, 24_000);
    let wav_file = dir.path().join("speech.wav");
    std::fs::write(&wav_file, &wav.bytes).unwrap();
    let probed = probe_duration_ms(&wav_file);
    assert!((probed - s.duration_ms() as f64).abs() <= 1.0, "{probed}");
}

#[test]
fn a_voice_loads_once_and_is_reused() {
    let store = common::store();
    let a = store.get(common::VOICE).unwrap();
    let b = store.get(common::VOICE).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    // Concurrent first uses share one load too.
    let fresh =
        tts::VoiceStore::open(common::voices_dir(), &tts::RuntimePaths::from_env(), 1).unwrap();
    let voices: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fresh.get(common::VOICE).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        voices
            .windows(2)
            .all(|w| std::sync::Arc::ptr_eq(&w[0], &w[1]))
    );
}

#[test]
fn encoding_alongside_synthesis_matches_the_timeline() {
    let voice = common::joe();
    let (s, audio) = tts::synthesize_encoded(&voice, TEXT, 1.0, AudioFormat::Ogg, 24_000).unwrap();
    assert_eq!(audio.format, AudioFormat::Ogg);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.ogg");
    std::fs::write(&path, &audio.bytes).unwrap();
    let probed = probe_duration_ms(&path);
    assert!(
        (probed - s.duration_ms() as f64).abs() <= 20.0,
        "{probed} vs {}",
        s.duration_ms()
    );
    let (s, audio) = tts::synthesize_encoded(&voice, TEXT, 1.0, AudioFormat::Wav, 24_000).unwrap();
    assert_eq!(audio.format, AudioFormat::Wav);
    let reader = hound::WavReader::new(std::io::Cursor::new(audio.bytes)).unwrap();
    assert_eq!(reader.len() as u64, s.timeline.total_samples);
}

#[test]
fn listing_and_unknown_voices() {
    let store = common::store();
    let voices = store.list();
    let joe = voices
        .iter()
        .find(|v| v.voice_id == common::VOICE)
        .expect("joe listed");
    assert_eq!(joe.language, "en_US");
    assert_eq!(joe.sample_rate, 22050);
    match store.get("en_XX-nobody-medium").unwrap_err() {
        TtsError::UnknownVoice { voice, available } => {
            assert_eq!(voice, "en_XX-nobody-medium");
            assert!(available.contains(&common::VOICE.to_string()));
        }
        other => panic!("{other}"),
    }
    assert!(matches!(
        store.get("../etc/passwd"),
        Err(TtsError::UnknownVoice { .. })
    ));
}

#[test]
fn broken_voice_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        std::fs::read(common::voices_dir().join(format!("{}.onnx.json", common::VOICE))).unwrap();
    // A config with a model that is not a model.
    std::fs::write(dir.path().join("fake.onnx.json"), &config).unwrap();
    std::fs::write(dir.path().join("fake.onnx"), vec![7u8; 4096]).unwrap();
    // A model whose config is not JSON.
    std::fs::write(dir.path().join("badjson.onnx.json"), b"{not json").unwrap();
    std::fs::write(dir.path().join("badjson.onnx"), b"x").unwrap();
    // A config whose model is missing.
    std::fs::write(dir.path().join("nomodel.onnx.json"), &config).unwrap();
    let store = tts::VoiceStore::open(dir.path(), &tts::RuntimePaths::from_env(), 1).unwrap();

    let err = store.get("fake").unwrap_err();
    assert!(matches!(err, TtsError::BadVoiceModel { .. }), "{err}");
    assert!(err.to_string().contains("fake.onnx"), "{err}");
    let err = store.get("badjson").unwrap_err();
    assert!(matches!(err, TtsError::BadVoiceConfig { .. }), "{err}");
    assert!(err.to_string().contains("badjson.onnx.json"), "{err}");
    let err = store.get("nomodel").unwrap_err();
    assert!(matches!(err, TtsError::VoiceFile { .. }), "{err}");
    assert!(err.to_string().contains("nomodel.onnx"), "{err}");
    // The listing keeps voices with a readable config and leaves the broken one out.
    let listed: Vec<String> = store.list().into_iter().map(|v| v.voice_id).collect();
    assert_eq!(listed, ["fake"]);
}

/// The written words of a synthesis run's text, as its marks locate them.
fn word_texts<'a>(t: &avatar_domain::PhonemeTimeline, text: &'a str) -> Vec<&'a str> {
    t.words
        .iter()
        .map(|w| &text[w.text_start..w.text_end])
        .collect()
}

#[test]
fn words_and_sentences_are_located_in_the_text_and_timed_in_order() {
    let voice = common::joe();
    let text = "Dr. Smith paid $1,234.56 at 9:45pm, see https://example.com/a?b=1 — in the \
                end of the day. Café naïve 😀 東京, then “quoted” words… end!";
    let s = synthesize(&voice, text, 1.0).unwrap();
    let t = &s.timeline;
    let words = word_texts(t, text);
    assert_eq!(
        words,
        [
            "Dr.",
            "Smith",
            "paid",
            "$1,234.56",
            "at",
            "9:45pm",
            "see",
            "https://example.com/a?b=1",
            // espeak speaks these pairs as one word each (its word list), "end" on its own.
            "in the",
            "end",
            "of the",
            "day",
            "Café",
            "naïve",
            "😀",
            "東",
            "京",
            "then",
            "quoted",
            "words",
            "end"
        ]
    );
    // In order, inside the audio, each with sound.
    let mut last_end = 0;
    for w in &t.words {
        assert!(w.start_sample >= last_end, "{w:?} starts before {last_end}");
        assert!(w.end_sample > w.start_sample, "{w:?}");
        assert!(w.end_sample <= t.total_samples);
        last_end = w.end_sample;
    }
    // A written word spoken as several is one mark spanning all of them: the amount takes
    // much longer than "at".
    let ms = |i: usize| t.ms(t.words[i].end_sample) - t.ms(t.words[i].start_sample);
    assert!(
        ms(3) > 4.0 * ms(4),
        "$1,234.56 {} ms, at {} ms",
        ms(3),
        ms(4)
    );
    // Sentences: espeak ends one after "Dr." before a capital, and at "day." and "end!".
    let sentences: Vec<&str> = t
        .spoken_sentences
        .iter()
        .map(|s| &text[s.text_start..s.text_end])
        .collect();
    assert_eq!(sentences.len(), 3, "{sentences:?}");
    assert_eq!(sentences[0], "Dr.");
    assert!(sentences[1].starts_with("Smith paid") && sentences[1].ends_with("day."));
    // An ellipsis ends a clause, not a sentence.
    assert!(sentences[2].starts_with("Café") && sentences[2].ends_with("end!"));
    for pair in t.spoken_sentences.windows(2) {
        assert!(pair[0].end_sample <= pair[1].start_sample, "{pair:?}");
    }
}
