//! The offline renderer as a user runs it: the `avatar-render` command with the real joe
//! voice, checked by the files it writes and by independent decoders.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use avatar_domain::{EyeEventType, RenderResult, RenderStatus, VisemeSet};

use avatar_test_support::{VOICE, voices_dir};

const PARAGRAPH: &str = "The old lighthouse keeper climbed the spiral stairs every evening. \
    He polished the great lens until it shone, and he watched the fishing boats come home \
    across the bay. Some nights the fog rolled in so thick that he could barely see his own \
    hands; still, he kept the lamp burning.";

fn avatar_render(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_avatar-render"))
        .args(args)
        .env("VOICES_DIR", voices_dir())
        .env("DEFAULT_VOICE", VOICE)
        .env_remove("AUDIO_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn render_ok(args: &[&str], stdin: Option<&str>) -> RenderResult {
    let out = avatar_render(args, stdin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    read_result(Path::new(dir))
}

fn read_result(dir: &Path) -> RenderResult {
    let json = std::fs::read_to_string(dir.join("render.json")).unwrap();
    // Exactly the contract's fields plus viseme_set, nothing else.
    avatar_test_support::assert_result_fields(&serde_json::from_str(&json).unwrap());
    serde_json::from_str(&json).unwrap()
}

/// Decodes with opusdec (applies pre-skip and end trimming) and returns 48 kHz samples.
fn decode_ogg(path: &Path) -> Vec<f32> {
    let wav = path.with_extension("decoded.wav");
    let status = Command::new("opusdec")
        .args(["--quiet", "--rate", "48000", "--float"])
        .arg(path)
        .arg(&wav)
        .status()
        .expect("opusdec (apt-get install opus-tools)");
    assert!(status.success());
    let mut reader = hound::WavReader::open(&wav).unwrap();
    match reader.spec().sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => reader
            .samples::<i16>()
            .map(|s| f32::from(s.unwrap()) / 32768.0)
            .collect(),
    }
}

fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

fn check_timing_invariants(r: &RenderResult, rest: &str) {
    assert_eq!(r.status, RenderStatus::Completed);
    assert_eq!(r.render_id.len(), 64);
    assert!(!r.cached);
    let cues = &r.mouth_cues;
    assert_eq!((cues[0].t_ms, cues[0].viseme.as_str()), (0, rest));
    assert_eq!(cues.last().unwrap().viseme, rest);
    for pair in cues.windows(2) {
        assert!(pair[0].t_ms < pair[1].t_ms, "{pair:?}");
    }
    for c in cues {
        assert!(c.t_ms <= r.duration_ms);
        assert!((0.0..=1.0).contains(&c.weight));
    }
    for e in &r.eye_events {
        assert!(e.t_ms + e.duration_ms <= r.duration_ms, "{e:?}");
    }
}

#[test]
fn renders_a_paragraph_in_sync_with_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let r = render_ok(&["--text", PARAGRAPH, "--timeline", "--out", out], None);
    check_timing_invariants(&r, "REST");
    assert_eq!(r.audio_url, "audio.ogg");
    assert_eq!(r.viseme_set, VisemeSet::Basic);
    assert!(r.mouth_cues.len() > 100, "{}", r.mouth_cues.len());
    assert!(
        r.eye_events
            .iter()
            .any(|e| e.event_type == EyeEventType::Blink)
    );

    // The decoded audio is as long as duration_ms says.
    let pcm = decode_ogg(&dir.path().join("audio.ogg"));
    let decoded_ms = pcm.len() as f64 / 48.0;
    assert!(
        (decoded_ms - r.duration_ms as f64).abs() <= 20.0,
        "{decoded_ms} vs {}",
        r.duration_ms
    );

    // The timeline is the decoded audio's: silent where it says pause, loud where it
    // says vowel. And the mouth rests in every pause.
    let timeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("timeline.json")).unwrap())
            .unwrap();
    let window = |from: f64, to: f64| {
        let (a, b) = ((from * 48.0) as usize, (to * 48.0) as usize);
        &pcm[a.min(pcm.len())..b.min(pcm.len())]
    };
    let speech = rms(&pcm);
    let (mut pauses, mut vowels, mut loud_vowels) = (0, 0, 0);
    let mut vowel_levels = Vec::new();
    let mut max_pause = 0f32;
    let mut silent_run: Option<(f64, f64)> = None;
    let mut check_pause = |(start, end): (f64, f64)| {
        if end - start < 100.0 {
            return;
        }
        let level = rms(window(start + 30.0, end - 30.0));
        max_pause = max_pause.max(level);
        assert!(
            level < speech * 0.2,
            "pause at {start}-{end} ms has level {level} (speech {speech})"
        );
        let mid = ((start + end) / 2.0) as u64;
        let cue = r.mouth_cues.iter().rev().find(|c| c.t_ms <= mid).unwrap();
        assert_eq!(
            cue.viseme, "REST",
            "mouth not at rest in the pause at {start} ms"
        );
        pauses += 1;
    };
    for p in timeline["phonemes"].as_array().unwrap() {
        let (phoneme, start, end) = (
            p["phoneme"].as_str().unwrap(),
            p["start_ms"].as_f64().unwrap(),
            p["end_ms"].as_f64().unwrap(),
        );
        let silent = [".", ",", ";", "$", "^"].contains(&phoneme)
            || (phoneme == " " && silent_run.is_some());
        if silent {
            silent_run = Some((silent_run.map_or(start, |r| r.0), end));
        } else if let Some(run) = silent_run.take() {
            check_pause(run);
        }
        if "aeiouæɑɔɛɪʊʌ".contains(phoneme) && phoneme.chars().count() == 1 && end - start >= 50.0
        {
            vowels += 1;
            let level = rms(window(start, end));
            vowel_levels.push(level);
            if level > speech * 0.4 {
                loud_vowels += 1;
            }
        }
    }
    assert!(pauses >= 4, "only {pauses} pauses");
    // Most vowels are clearly voiced (unstressed ones are quieter), and far above the
    // pauses.
    vowel_levels.sort_by(f32::total_cmp);
    let median_vowel = vowel_levels[vowel_levels.len() / 2];
    assert!(
        vowels >= 15 && loud_vowels * 4 >= vowels * 3,
        "{loud_vowels} of {vowels} vowels loud"
    );
    assert!(
        median_vowel > max_pause * 3.0,
        "median vowel {median_vowel}, loudest pause {max_pause}"
    );

    // An independent decoder accepts the file.
    let probe = avatar_test_support::probe(&dir.path().join("audio.ogg"));
    assert_eq!(probe.codec, "opus");
}

#[test]
fn every_viseme_set_and_wav() {
    for (set, rest) in [("rhubarb", "X"), ("oculus", "sil")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let r = render_ok(
            &[
                "--text",
                "Bob moved five feet.",
                "--viseme-set",
                set,
                "--format",
                "wav",
                "--out",
                out,
            ],
            None,
        );
        check_timing_invariants(&r, rest);
        assert_eq!(r.viseme_set.as_str(), set);
        assert_eq!(r.audio_url, "audio.wav");
        let reader = hound::WavReader::open(dir.path().join("audio.wav")).unwrap();
        let ms = reader.duration() as f64 * 1000.0 / reader.spec().sample_rate as f64;
        assert!((ms - r.duration_ms as f64).abs() <= 1.0);
        // "Bob moved" closes the lips; "five feet" puts teeth on the lip.
        let has = |v: &str| r.mouth_cues.iter().any(|c| c.viseme == v);
        match set {
            "rhubarb" => assert!(has("A") && has("G"), "{:?}", r.mouth_cues),
            _ => assert!(has("PP") && has("FF"), "{:?}", r.mouth_cues),
        }
    }
}

#[test]
fn text_from_stdin_and_file_and_audio_base_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let from_stdin = render_ok(
        &["--out", out.to_str().unwrap()],
        Some("Reading from standard input."),
    );
    let file = dir.path().join("text.txt");
    std::fs::write(&file, "Reading from standard input.\n").unwrap();
    let out2 = dir.path().join("b");
    let from_file = render_ok(
        &[
            "--text-file",
            file.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
            "--audio-base-url",
            "https://cdn.example/r1/",
        ],
        None,
    );
    // Same normalised text, same render id.
    assert_eq!(from_stdin.render_id, from_file.render_id);
    assert_eq!(from_file.audio_url, "https://cdn.example/r1/audio.ogg");
    // Subtitles only when asked for.
    assert!(!out.join("subtitles.vtt").exists());
}

#[test]
fn subtitles_and_word_marks_follow_the_text_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let text = "  Hello there,\r\nfriend & co! A second sentence follows the first one, and it \
                is long enough to need more than one line.\n";
    let r = render_ok(
        &[
            "--text",
            text,
            "--subtitles",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    // render.json's marks index the text as given (JavaScript's `text.slice(start, end)`).
    let units: Vec<u16> = text.encode_utf16().collect();
    assert!(r.words.len() >= 20, "{:?}", r.words);
    assert_eq!(r.sentences.len(), 2, "{:?}", r.sentences);
    assert_eq!(r.words[0].start, 2);
    for word in &r.words {
        assert_eq!(
            String::from_utf16_lossy(&units[word.start..word.end]),
            word.text
        );
    }
    // The subtitles show that text, whitespace collapsed, a timestamp tag per word but each
    // cue's first, and no cue across the two sentences.
    let vtt = std::fs::read_to_string(out.join("subtitles.vtt")).unwrap();
    assert_eq!(
        vtt,
        avatar_domain::subtitles::webvtt(text, &r.words, &r.sentences)
    );
    let body = vtt.strip_prefix("WEBVTT\n\n").expect("header");
    let cues: Vec<&str> = body.split("\n\n").filter(|c| !c.is_empty()).collect();
    assert!(cues.len() >= 3, "{vtt}");
    assert_eq!(vtt.matches("-->").count(), cues.len(), "{vtt}");
    let tags = vtt.matches('<').count();
    assert_eq!(tags + cues.len(), r.words.len(), "{vtt}");
    let shown: Vec<String> = cues
        .iter()
        .map(|cue| {
            let lines: Vec<&str> = cue.lines().skip(2).collect();
            assert!(lines.len() <= 2, "{cue}");
            let mut shown = String::new();
            for line in &lines {
                let mut plain = String::new();
                let mut in_tag = false;
                for c in line.chars() {
                    match c {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => plain.push(c),
                        _ => {}
                    }
                }
                let plain = plain.replace("&amp;", "&");
                assert!(plain.chars().count() <= 42, "{line}");
                if !shown.is_empty() {
                    shown.push(' ');
                }
                shown += &plain;
            }
            shown
        })
        .collect();
    assert_eq!(
        shown.join(" "),
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert!(shown.iter().any(|cue| cue.ends_with("co!")), "{shown:?}");
}

#[test]
fn hard_texts_render() {
    for text in [
        "😀🎉🚀",
        "Москва 東京 Αθήνα",
        "Tab\there, bell\u{7} and nul\u{1} after.",
        &"Pneumonoultramicroscopic".repeat(20),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = render_ok(
            &["--text", text, "--out", dir.path().to_str().unwrap()],
            None,
        );
        check_timing_invariants(&r, "REST");
        assert!(r.duration_ms > 300, "{text:?}");
    }
}

/// Runs a render that must be refused: exit status 2, a message naming the field, no files.
fn refused(args: &[&str], field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut all = args.to_vec();
    all.extend(["--out", out_dir.to_str().unwrap()]);
    let out = avatar_render(&all, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(field), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out_dir.join("render.json").exists());
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    let long = "a".repeat(5001);
    refused(&["--text", ""], "text:");
    refused(&["--text", "  \n\t "], "text:");
    refused(&["--text", &long], "5001");
    refused(&["--text", "?!...;:,"], "text:");
    refused(&["--text", "hi", "--speed", "0.49"], "speed:");
    refused(&["--text", "hi", "--speed", "2.01"], "speed:");
    refused(&["--text", "hi", "--speed", "NaN"], "speed:");
    refused(
        &["--text", "hi", "--voice", "en_XX-nobody-low"],
        "voice_id:",
    );
    refused(
        &["--text", "hi", "--voice", "../../etc/passwd"],
        "voice_id:",
    );
    refused(&["--text", "hi", "--viseme-set", "disney"], "viseme_set:");
    // 5000 characters after trimming are fine.
    let dir = tempfile::tempdir().unwrap();
    let padded = format!("  {}  ", "la ".repeat(1666) + "la");
    assert_eq!(padded.trim().chars().count(), 5000);
    let r = render_ok(
        &["--text", &padded, "--out", dir.path().to_str().unwrap()],
        None,
    );
    assert!(r.duration_ms > 60_000);
}

#[test]
fn a_voice_file_that_is_not_a_model_is_named() {
    let voices = tempfile::tempdir().unwrap();
    avatar_test_support::broken_voice(voices.path(), "broken");
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_avatar-render"))
        .args(["--text", "hi", "--voice", "broken", "--out"])
        .arg(out.path())
        .env("VOICES_DIR", voices.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken.onnx"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Our own speech of `text` as a WAV file under `dir`: the render and its directory.
fn speak_wav(dir: &Path, text: &str) -> (RenderResult, std::path::PathBuf) {
    let spoken = dir.join("spoken");
    let out = spoken.to_str().unwrap();
    let result = render_ok(&["--text", text, "--format", "wav", "--out", out], None);
    (result, spoken)
}

/// `--audio`: a recording in (here our own speech, written as WAV and as MP3 by ffmpeg, an
/// independent encoder), force-aligned to its transcript; the same result shape out, words
/// marked aligned, the marks located in the transcript as given.
#[test]
fn lipsyncs_a_recording_with_and_without_its_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let text = "My mother baked a batch of maple muffins, and Bob put them in a basket.";
    let (synthesized, spoken) = speak_wav(dir.path(), text);
    let wav = spoken.join("audio.wav");
    let mp3 = dir.path().join("speech.mp3");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-ac", "2", "-ar", "44100", "-b:a", "128k"])
        .arg(&mp3)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    for (name, file) in [("wav", &wav), ("mp3", &mp3)] {
        let out = dir.path().join(name);
        let r = render_ok(
            &[
                "--audio",
                file.to_str().unwrap(),
                "--transcript",
                text,
                "--viseme-set",
                "rhubarb",
                "--subtitles",
                "--out",
                out.to_str().unwrap(),
            ],
            None,
        );
        check_timing_invariants(&r, "X");
        assert_eq!(r.viseme_set, VisemeSet::Rhubarb);
        assert!(out.join(format!("audio.{name}")).is_file());
        assert!(
            r.duration_ms.abs_diff(synthesized.duration_ms) < 30,
            "{name}: {} ms of {} ms",
            r.duration_ms,
            synthesized.duration_ms
        );
        // Every written word, force-aligned: in median within 40 ms of when the synthesiser
        // said it, none off by more than 100 ms.
        assert_eq!(r.words.len(), synthesized.words.len(), "{name}");
        let mut offsets = Vec::new();
        for (w, truth) in r.words.iter().zip(&synthesized.words) {
            assert_eq!(
                (w.text.as_str(), w.start, w.end),
                (truth.text.as_str(), truth.start, truth.end)
            );
            assert_eq!(w.aligned, Some(true));
            let offset = w.t_ms.abs_diff(truth.t_ms);
            assert!(
                offset <= 100,
                "{name}: {:?} at {} ms, said at {} ms",
                w.text,
                w.t_ms,
                truth.t_ms
            );
            offsets.push(offset);
        }
        offsets.sort();
        assert!(
            offsets[offsets.len() / 2] <= 40,
            "{name}: word onsets off by {offsets:?} ms"
        );
        // Lips close for the b and m of "Bob" and "muffins".
        assert!(
            r.mouth_cues.iter().filter(|c| c.viseme == "A").count() >= 6,
            "{name}"
        );
        assert!(
            std::fs::read_to_string(out.join("subtitles.vtt"))
                .unwrap()
                .contains("muffins")
        );
    }
    // Without a transcript the words are recognised: marked so, with a confidence, and the
    // recognised text comes with the result.
    let out = dir.path().join("recognised");
    let out_s = out.to_str().unwrap();
    let cli = avatar_render(&["--audio", wav.to_str().unwrap(), "--out", out_s], None);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("render.json")).unwrap()).unwrap();
    let transcript = json["transcript"]
        .as_str()
        .expect("the recognised transcript");
    assert!(
        transcript.contains("muffins") || transcript.contains("basket"),
        "{transcript}"
    );
    let words = json["words"].as_array().unwrap();
    assert!(words.len() >= 8, "{json}");
    for w in words {
        assert_eq!(w["aligned"], false);
        let c = w["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
    }
}

#[test]
fn a_bad_recording_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let not_audio = dir.path().join("notes.wav");
    std::fs::write(&not_audio, "these are my notes, not a recording").unwrap();
    let silent = dir.path().join("silent.wav");
    std::fs::write(
        &silent,
        avatar_audio::encode_wav(&vec![0.0; 16_000], 16_000),
    )
    .unwrap();
    let missing = dir.path().join("missing.wav");
    // Timings whose words hold more text than the contract's 5000 characters.
    let long = dir.path().join("long.json");
    let words: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"word": "words", "start": i as f64, "end": i as f64 + 0.5}))
        .collect();
    std::fs::write(&long, serde_json::json!({ "words": words }).to_string()).unwrap();
    let tone = dir.path().join("tone.wav");
    let samples: Vec<f32> = (0..16_000).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
    std::fs::write(&tone, avatar_audio::encode_wav(&samples, 16_000)).unwrap();
    for (args, field) in [
        (vec!["--audio", not_audio.to_str().unwrap()], "audio"),
        (vec!["--audio", silent.to_str().unwrap()], "silent"),
        (vec!["--audio", missing.to_str().unwrap()], "cannot read"),
        (
            vec!["--audio", silent.to_str().unwrap(), "--transcript", "  "],
            "transcript",
        ),
        (
            vec![
                "--audio",
                tone.to_str().unwrap(),
                "--timings",
                long.to_str().unwrap(),
            ],
            "timings",
        ),
    ] {
        refused(&args, field);
    }
}

/// `--timings`: another engine's own word times (here the synthesiser's, written as OpenAI's
/// `verbose_json` words) are taken as they are: the word marks are those times, and the
/// mouth closes for the bilabials inside the words.
#[test]
fn takes_another_engines_word_timings_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Maybe the amber plums will be ripe by Monday.";
    let (synthesized, spoken) = speak_wav(dir.path(), text);
    let words: Vec<serde_json::Value> = synthesized
        .words
        .iter()
        .map(|w| {
            serde_json::json!({
                "word": w.text,
                "start": w.t_ms as f64 / 1000.0,
                "end": w.end_ms as f64 / 1000.0,
            })
        })
        .collect();
    let timings = dir.path().join("timings.json");
    std::fs::write(&timings, serde_json::json!({ "words": words }).to_string()).unwrap();
    let out = dir.path().join("timed");
    let cli = avatar_render(
        &[
            "--audio",
            spoken.join("audio.wav").to_str().unwrap(),
            "--timings",
            timings.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let r: RenderResult =
        serde_json::from_str(&std::fs::read_to_string(out.join("render.json")).unwrap()).unwrap();
    check_timing_invariants(&r, "REST");
    // The engine's words joined by spaces: the text the marks index.
    assert_eq!(
        r.transcript.as_deref(),
        Some("Maybe the amber plums will be ripe by Monday")
    );
    assert_eq!(r.words.len(), synthesized.words.len());
    for (w, truth) in r.words.iter().zip(&synthesized.words) {
        assert_eq!(w.text, truth.text);
        assert!(w.t_ms.abs_diff(truth.t_ms) <= 10, "{w:?} vs {truth:?}");
        assert!(w.end_ms.abs_diff(truth.end_ms) <= 10, "{w:?} vs {truth:?}");
    }
    // m, b, p, m, b, b, m: the lips meet inside the words that have them.
    let closures = r.mouth_cues.iter().filter(|c| c.viseme == "REST").count();
    assert!(closures >= 6, "{:?}", r.mouth_cues);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"words": [{"word": "a"}]}"#).unwrap();
    refused(
        &[
            "--audio",
            spoken.join("audio.wav").to_str().unwrap(),
            "--timings",
            bad.to_str().unwrap(),
        ],
        "timings",
    );
}
