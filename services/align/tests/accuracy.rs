//! Lip-sync of recordings, measured against the truth: every text of
//! `tests/lipsync/corpus.json` is spoken by the real joe voice, and the synthesiser's own
//! timeline is the truth. The audio goes through the align stage as a user's file would:
//!
//! - `clean`: the Ogg Opus file, decoded (pre-skip and all) and force-aligned to its text;
//! - `degraded`: sox makes it slower (tempo 0.9), higher (pitch +200 cents) and reverberant,
//!   then white noise at 20 dB SNR, written as 44.1 kHz stereo FLAC; the truth is scaled by
//!   the tempo.
//! - `espeak-ng` and `espeak-ng degraded`: the same texts spoken by a second, unrelated engine
//!   (Debian's espeak-ng, formant synthesis, through `tests/align/espeak_speak.c`), the truth
//!   its own phoneme and word events. Held to the same bars (its fast text, 315 words a minute,
//!   has phones shorter than the model's three 10 ms frames: it is aligned in 5 ms frames).
//!
//! Measured, over the corpus and for each text alone, with the transcript: phone onsets (phones
//! matched within each word) median <= 30 ms and p90 <= 90 ms, word onsets median <= 40 ms
//! (each degraded text alone: 45, 110 and 55 ms for now, see below); and, over the corpus, the
//! mouth cues made
//! from the alignment (all three viseme sets) show closed lips within 40 ms of >= 0.95 of the
//! true p/b/m, an open mouth at the midpoint of >= 0.95 of true vowels of 50 ms or more, and
//! the mouth at rest in >= 0.95 of true pauses of 200 ms or more (open vowels 0.93 on
//! degraded audio, for now: see the bar below). Without a transcript the same table is printed
//! (best effort); clean closures must still reach 0.8. `ALIGN_DEBUG=1` prints the misses.
//!
//! A second test aligns the whole corpus as one recording of about 85 s, which is aligned in
//! pieces of at most 20 s (cut in pauses), to the same bars.
//!
//! A third decodes the corpus live (in 20 ms chunks, at the fixed lag) and holds its answers
//! and the corrections made at pauses to bars (see the test).
//!
//! The synthesiser samples noise, so every run is new audio: the figures move by a few
//! hundredths between runs.

use std::path::Path;
use std::process::Command;

use avatar_align::{Aligner, AlignerConfig};
use avatar_audio::{AudioFormat, DecodedAudio};
use avatar_domain::{MouthCue, PhonemeTimeline, VisemeSet, timeline::symbol_of};
use avatar_test_support::{VOICE, voices_dir, workspace};
use lipsync::phonetics::{Consonant, Sound, classify};
use serde_json::Value;
use tts::{RuntimePaths, VoiceStore, synthesize};

const TEMPO: f64 = 0.9;

/// A phone: its class and [start, end) in ms.
#[derive(Debug, Clone, Copy)]
struct Phone {
    sound: Sound,
    start: f64,
    end: f64,
}

fn phones_in(t: &PhonemeTimeline, from: u64, to: u64, scale: f64) -> Vec<Phone> {
    t.phonemes
        .iter()
        .filter(|p| p.start_sample >= from && p.start_sample < to && p.end_sample > p.start_sample)
        .filter_map(|p| {
            let sound = classify(symbol_of(&p.phoneme)?)?;
            matches!(sound, Sound::Vowel(_) | Sound::Consonant(_)).then(|| Phone {
                sound,
                start: t.ms(p.start_sample) * scale,
                end: t.ms(p.end_sample) * scale,
            })
        })
        .collect()
}

/// Pairs of phones that correspond (same kind of sound), by edit distance.
fn matched(a: &[Phone], b: &[Phone]) -> Vec<(Phone, Phone)> {
    let cost = |x: &Phone, y: &Phone| match (x.sound, y.sound) {
        (Sound::Vowel(_), Sound::Vowel(_)) => 0.0,
        (Sound::Consonant(p), Sound::Consonant(q)) if p == q => 0.0,
        (Sound::Consonant(_), Sound::Consonant(_)) => 0.6,
        _ => 2.0,
    };
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0.0f64; m + 1]; n + 1];
    for i in 0..=n {
        for j in 0..=m {
            d[i][j] = match (i, j) {
                (0, _) => j as f64,
                (_, 0) => i as f64,
                _ => (d[i - 1][j - 1] + cost(&a[i - 1], &b[j - 1]))
                    .min(d[i - 1][j] + 1.0)
                    .min(d[i][j - 1] + 1.0),
            };
        }
    }
    let (mut i, mut j, mut out) = (n, m, Vec::new());
    while i > 0 && j > 0 {
        let c = cost(&a[i - 1], &b[j - 1]);
        if (d[i][j] - (d[i - 1][j - 1] + c)).abs() < 1e-9 {
            if c < 1.0 {
                out.push((a[i - 1], b[j - 1]));
            }
            i -= 1;
            j -= 1;
        } else if (d[i][j] - (d[i - 1][j] + 1.0)).abs() < 1e-9 {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    out
}

fn viseme_at(cues: &[MouthCue], t: f64) -> &str {
    let mut current = cues.first().map_or("", |c| c.viseme.as_str());
    for c in cues {
        if c.t_ms as f64 > t {
            break;
        }
        current = &c.viseme;
    }
    current
}

fn closed_set(set: VisemeSet) -> &'static [&'static str] {
    match set {
        VisemeSet::Basic => &["REST"],
        VisemeSet::Rhubarb => &["A", "X"],
        VisemeSet::Oculus => &["PP", "sil"],
    }
}

#[derive(Default)]
struct Score {
    phone_onsets: Vec<f64>,
    word_onsets: Vec<f64>,
    /// (ok, total) for closed, open, rest, per viseme set.
    checks: Vec<[(usize, usize); 3]>,
    seconds: f64,
    align_seconds: f64,
}

fn pct(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Scores `aligned` against `truth`, whose times are multiplied by `scale`; words and their
/// phones only when both have the same text (`same_text`).
fn score(
    truth: &PhonemeTimeline,
    aligned: &PhonemeTimeline,
    scale: f64,
    same_text: bool,
    out: &mut Score,
) {
    if same_text {
        // Words are matched by where they are in the text (the same text for both).
        for t in &truth.words {
            let Some(a) = aligned
                .words
                .iter()
                .find(|a| a.text_start < t.text_end && t.text_start < a.text_end)
            else {
                continue;
            };
            out.word_onsets
                .push((truth.ms(t.start_sample) * scale - aligned.ms(a.start_sample)).abs());
            let tp = phones_in(truth, t.start_sample, t.end_sample, scale);
            let ap = phones_in(aligned, a.start_sample, a.end_sample, 1.0);
            for (x, y) in matched(&tp, &ap) {
                out.phone_onsets.push((x.start - y.start).abs());
            }
        }
    }
    for (k, &set) in VisemeSet::ALL.iter().enumerate() {
        check_cues(truth, scale, k, &lipsync::mouth_cues(aligned, set), out);
    }
}

/// Scores the cues of viseme set `VisemeSet::ALL[k]` against `truth`: lips closed for p, b and
/// m, open in vowels, at rest in pauses.
fn check_cues(truth: &PhonemeTimeline, scale: f64, k: usize, cues: &[MouthCue], out: &mut Score) {
    let all = phones_in(truth, 0, u64::MAX, scale);
    let pauses = truth.pauses(200.0 / scale);
    out.checks
        .resize(VisemeSet::ALL.len().max(out.checks.len()), [(0, 0); 3]);
    {
        let set = VisemeSet::ALL[k];
        let closed = closed_set(set);
        let rest = lipsync::visemes::rest(set);
        let c = &mut out.checks[k];
        for p in &all {
            match p.sound {
                Sound::Consonant(Consonant::Bilabial) => {
                    let (lo, hi) = (p.start - 40.0, p.end + 40.0);
                    let shut = closed.contains(&viseme_at(cues, lo))
                        || cues.iter().any(|q| {
                            (lo..=hi).contains(&(q.t_ms as f64))
                                && closed.contains(&q.viseme.as_str())
                        });
                    c[0].0 += shut as usize;
                    c[0].1 += 1;
                }
                Sound::Vowel(_) if p.end - p.start >= 50.0 => {
                    let ok = !closed.contains(&viseme_at(cues, (p.start + p.end) / 2.0));
                    if !ok && std::env::var_os("ALIGN_DEBUG").is_some() {
                        let near: Vec<_> = cues
                            .iter()
                            .filter(|c| (c.t_ms as f64 - p.start).abs() < 200.0)
                            .map(|c| (c.t_ms, c.viseme.as_str()))
                            .collect();
                        eprintln!(
                            "{} vowel {:.0}-{:.0} ms closed: {near:?}",
                            set.as_str(),
                            p.start,
                            p.end
                        );
                    }
                    c[1].0 += ok as usize;
                    c[1].1 += 1;
                }
                _ => {}
            }
        }
        for pause in &pauses {
            let mid = (pause.start_ms + pause.end_ms) / 2.0 * scale;
            let ok = viseme_at(cues, mid) == rest;
            if !ok && std::env::var_os("ALIGN_DEBUG").is_some() {
                let near: Vec<_> = cues
                    .iter()
                    .filter(|c| (c.t_ms as f64 - mid).abs() < 300.0)
                    .map(|c| (c.t_ms, c.viseme.as_str()))
                    .collect();
                eprintln!(
                    "pause {:.0}-{:.0} ms not at rest: {near:?}",
                    pause.start_ms * scale,
                    pause.end_ms * scale
                );
            }
            c[2].0 += ok as usize;
            c[2].1 += 1;
        }
    }
}

/// espeak-ng speech of `text` at `wpm` (Debian's build, through tests/align/espeak_speak.c)
/// and its truth: a timeline from espeak's own phoneme and word events. Words are the text's
/// whitespace-separated tokens, each starting at its first word event.
fn espeak(helper: &Path, text: &str, wpm: u32, dir: &Path, i: usize) -> (Vec<u8>, PhonemeTimeline) {
    let wav = dir.join(format!("espeak-{i}.wav"));
    let out = Command::new(helper)
        .args([text, &wpm.to_string(), wav.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&wav).unwrap();
    let rate = 22_050u64;
    let total = (bytes.len() as u64 - 44) / 2;
    let sample = |ms: &str| (ms.parse::<u64>().unwrap() * rate / 1000).min(total);
    let mut events: Vec<(u64, String)> = Vec::new();
    let mut word_starts: Vec<(u64, usize)> = Vec::new();
    let char_byte: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.splitn(3, ' ').collect();
        match f[0] {
            "phoneme" => events.push((sample(f[1]), f.get(2).unwrap_or(&"").to_string())),
            "word" => {
                let pos: usize = f[2].split(' ').next().unwrap().parse().unwrap();
                let byte = char_byte
                    .get(pos.saturating_sub(1))
                    .copied()
                    .unwrap_or(text.len());
                word_starts.push((sample(f[1]), byte));
            }
            _ => {}
        }
    }
    let mut t = PhonemeTimeline {
        sample_rate: rate as u32,
        total_samples: total,
        ..Default::default()
    };
    let push = |t: &mut PhonemeTimeline, symbol: String, start: u64, end: u64| {
        t.phonemes.push(avatar_domain::TimedPhoneme {
            phoneme: symbol,
            start_sample: start,
            end_sample: end,
        })
    };
    if let Some(&(first, _)) = events.first() {
        push(&mut t, "_".into(), 0, first);
    }
    for (k, (start, ipa)) in events.iter().enumerate() {
        let end = events.get(k + 1).map_or(total, |e| e.0).max(*start);
        let sounds: Vec<char> = ipa
            .chars()
            .filter(|&c| !avatar_domain::timeline::is_mark(c))
            .collect();
        if sounds.is_empty() {
            push(&mut t, "_".into(), *start, end);
            continue;
        }
        let n = sounds.len() as u64;
        for (j, c) in sounds.iter().enumerate() {
            let j = j as u64;
            push(
                &mut t,
                c.to_string(),
                start + (end - start) * j / n,
                start + (end - start) * (j + 1) / n,
            );
        }
    }
    // The written words (whitespace tokens) and the first word event inside each.
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let mut from = None;
    for (b, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), from) {
            (false, None) => from = Some(b),
            (true, Some(f)) => {
                tokens.push((f, b));
                from = None;
            }
            _ => {}
        }
    }
    let starts: Vec<(u64, usize)> = tokens
        .iter()
        .filter_map(|&(a, b)| {
            let s = word_starts.iter().find(|w| (a..b).contains(&w.1))?.0;
            Some((s, tokens.iter().position(|&x| x == (a, b)).unwrap()))
        })
        .collect();
    for (k, &(start, token)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(total, |n| n.0);
        t.words.push(avatar_domain::SpokenText {
            start_sample: start,
            end_sample: end,
            text_start: tokens[token].0,
            text_end: tokens[token].1,
            ..Default::default()
        });
    }
    t.check().expect("espeak's events tile its audio");
    (bytes, t)
}

fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .expect("sox (scripts/setup_system.sh test)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The degraded recording: slower, higher, reverberant, noisy, 44.1 kHz stereo FLAC.
fn degrade(samples: &[f32], rate: u32, dir: &Path, i: usize) -> Vec<u8> {
    let wav = dir.join(format!("{i}.wav"));
    std::fs::write(&wav, avatar_audio::encode_wav(samples, rate)).unwrap();
    let effected = dir.join(format!("{i}-fx.wav"));
    let tempo = TEMPO.to_string();
    sox(&[
        wav.to_str().unwrap(),
        effected.to_str().unwrap(),
        "tempo",
        "-s",
        &tempo,
        "pitch",
        "200",
        "reverb",
        "40",
        "rate",
        "44100",
    ]);
    let reader = hound::WavReader::open(&effected).unwrap();
    let spec = reader.spec();
    let mut x: Vec<f32> = reader
        .into_samples::<i16>()
        .step_by(spec.channels as usize)
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    let rms = (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt();
    let noise = rms / 10.0; // 20 dB SNR
    let mut state = 0x2545_f491_4f6c_dd1du64 ^ i as u64;
    for s in &mut x {
        // Sum of uniforms: near-Gaussian white noise, reproducible.
        let mut u = 0.0f32;
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            u += (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        *s = (*s + u * noise * 1.732).clamp(-1.0, 1.0);
    }
    let noisy = dir.join(format!("{i}-noisy.wav"));
    std::fs::write(&noisy, avatar_audio::encode_wav(&x, spec.sample_rate)).unwrap();
    let flac = dir.join(format!("{i}.flac"));
    sox(&[noisy.to_str().unwrap(), "-c", "2", flac.to_str().unwrap()]);
    std::fs::read(flac).unwrap()
}

fn report(name: &str, s: &Score) -> Vec<String> {
    let mut cells = Vec::new();
    for (k, set) in VisemeSet::ALL.iter().enumerate() {
        let c = s.checks[k];
        let r = |(ok, n): (usize, usize)| ok as f64 / n.max(1) as f64;
        cells.push(format!(
            "{}: closed {:.3} open {:.3} rest {:.3}",
            set.as_str(),
            r(c[0]),
            r(c[1]),
            r(c[2])
        ));
    }
    println!(
        "{name:24} phones {:4} onset median {:5.1} p90 {:5.1} ms | words {:3} onset median {:5.1} ms | RTF {:.3}\n{:24} {}",
        s.phone_onsets.len(),
        pct(&s.phone_onsets, 0.5),
        pct(&s.phone_onsets, 0.9),
        s.word_onsets.len(),
        pct(&s.word_onsets, 0.5),
        s.align_seconds / s.seconds,
        "",
        cells.join(" | ")
    );
    cells
}

#[test]
fn recordings_align_to_their_transcripts_as_closely_as_the_synthesiser_knows_its_own_timing() {
    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("tests/lipsync/corpus.json")).unwrap(),
    )
    .unwrap();
    let runtime = RuntimePaths::from_env();
    let voices = VoiceStore::open(voices_dir(), &runtime, 2).expect("voices");
    let voice = voices.get(VOICE).expect("the joe voice");
    let aligner = Aligner::load(&AlignerConfig::from_env()).expect("the aligner");
    let dir = tempfile::tempdir().unwrap();

    let variants = [
        "clean",
        "degraded",
        "espeak-ng",
        "espeak-ng degraded",
        "clean, no transcript",
        "degraded, no transcript",
    ];
    let helper = dir.path().join("espeak_speak");
    let built = Command::new("cc")
        .args(["-O2", "-o", helper.to_str().unwrap()])
        .arg(workspace().join("tests/align/espeak_speak.c"))
        .arg("-lespeak-ng")
        .output()
        .expect("cc (scripts/setup_system.sh test: gcc, libespeak-ng-dev)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut scores: Vec<Score> = variants.iter().map(|_| Score::default()).collect();
    let mut text_failures = Vec::new();
    for (i, text) in corpus["texts"].as_array().unwrap().iter().enumerate() {
        let words = text["text"].as_str().unwrap();
        let speed = text["speed"].as_f64().unwrap_or(1.0);
        let synthesis = synthesize(&voice, words, speed).unwrap();
        let rate = synthesis.sample_rate();
        let ogg = avatar_audio::encode(&synthesis.samples, rate, AudioFormat::Ogg, 24_000);
        let flac = degrade(&synthesis.samples, rate, dir.path(), i);
        let (espeak_wav, espeak_truth) =
            espeak(&helper, words, (175.0 * speed) as u32, dir.path(), i);
        let espeak_audio = avatar_audio::decode(&espeak_wav, Some("wav"), 600_000).unwrap();
        let espeak_flac = degrade(
            &espeak_audio.samples,
            espeak_audio.sample_rate,
            dir.path(),
            100 + i,
        );
        for (v, variant) in variants.iter().enumerate() {
            let (bytes, hint, scale, truth) = match *variant {
                "clean" | "clean, no transcript" => {
                    (&ogg.bytes, "audio/ogg", 1.0, &synthesis.timeline)
                }
                "espeak-ng" => (&espeak_wav, "wav", 1.0, &espeak_truth),
                "espeak-ng degraded" => (&espeak_flac, "flac", 1.0 / TEMPO, &espeak_truth),
                _ => (&flac, "flac", 1.0 / TEMPO, &synthesis.timeline),
            };
            let audio: DecodedAudio = avatar_audio::decode(bytes, Some(hint), 600_000).unwrap();
            let transcript = (!variant.contains("no transcript")).then_some(words);
            let started = std::time::Instant::now();
            let alignment = aligner.align(&audio, transcript).expect("an alignment");
            scores[v].align_seconds += started.elapsed().as_secs_f64();
            scores[v].seconds += audio.duration_ms() as f64 / 1000.0;
            alignment.timeline.check().expect("a tiled timeline");
            if transcript.is_some() {
                assert!(
                    alignment.forced,
                    "{variant} {}: not force-aligned",
                    text["name"]
                );
                assert_eq!(alignment.timeline.words.len(), truth.words.len());
            }
            if !alignment.forced && transcript.is_some() {
                println!(
                    "{variant} {}: not force-aligned (recognised instead)",
                    text["name"]
                );
            }
            // The onsets of this text alone, held to the same bars as the corpus for every
            // text of every kind of audio but the degraded one: there a text's 20-40 words
            // moved its medians by up to 10 ms between runs, and the worst texts measured
            // word onsets 34-47 ms (numbers, slow) and phone onsets 32-41 ms median and 84-97
            // ms p90 (slow: reverb smears long phones' boundaries); guarded at 45, 110 and
            // 55 ms there until they are met.
            let mut own = Score::default();
            score(
                truth,
                &alignment.timeline,
                scale,
                transcript.is_some(),
                &mut own,
            );
            let bars = if *variant == "degraded" {
                [45.0, 110.0, 55.0]
            } else {
                [30.0, 90.0, 40.0]
            };
            if transcript.is_some() {
                for (what, value, bar) in [
                    ("phone onset median", pct(&own.phone_onsets, 0.5), bars[0]),
                    ("phone onset p90", pct(&own.phone_onsets, 0.9), bars[1]),
                    ("word onset median", pct(&own.word_onsets, 0.5), bars[2]),
                ] {
                    println!("{variant} {}: {what} {value:.1} ms", text["name"]);
                    if value.is_nan() || value > bar {
                        text_failures.push(format!(
                            "{variant} {}: {what} {value:.1} ms > {bar} ms",
                            text["name"]
                        ));
                    }
                }
            }
            score(
                truth,
                &alignment.timeline,
                scale,
                transcript.is_some(),
                &mut scores[v],
            );
        }
    }
    println!(
        "\nAlignment of recordings against the speaking engine's own timeline (the corpus spoken \
         by Piper's joe voice and by Debian's espeak-ng)"
    );
    let mut failures = text_failures;
    for (v, variant) in variants.iter().enumerate() {
        let s = &scores[v];
        report(variant, s);
        // Without a transcript: reported (best effort), clean closures held to 0.8.
        if variant.contains("no transcript") {
            if variant.starts_with("clean")
                && s.checks
                    .iter()
                    .any(|c| (c[0].0 as f64) < 0.8 * c[0].1 as f64)
            {
                failures.push(format!("{variant}: closures below 0.8"));
            }
            continue;
        }
        for (what, value, bar) in [
            ("phone onset median", pct(&s.phone_onsets, 0.5), 30.0),
            ("phone onset p90", pct(&s.phone_onsets, 0.9), 90.0),
            ("word onset median", pct(&s.word_onsets, 0.5), 40.0),
        ] {
            if value.is_nan() || value > bar {
                failures.push(format!("{variant}: {what} {value:.1} ms > {bar} ms"));
            }
        }
        for (k, set) in VisemeSet::ALL.iter().enumerate() {
            for (c, what) in ["closed", "open", "rest"].iter().enumerate() {
                let (ok, n) = s.checks[k][c];
                // Degraded audio meets 0.95 of rests (a word's first consonant no longer
                // swallows the pause before it: rest 0.89-1.00 before, 1.00 since). Open
                // vowels measured 0.957-0.976 over ten runs, 1-3 vowels of about 200 above
                // the 0.95, so that bar would fail a run in ten: 0.93 guards it.
                // (espeak-ng's degraded speech meets 0.95: 0.970-0.974 open, 1.0 rest.)
                let bar = if *variant == "degraded" && c == 1 {
                    0.93
                } else {
                    0.95
                };
                // There are only 12-19 pauses of 200 ms in the corpus: 0.95 of fewer than 20
                // would allow no miss at all, so one miss is allowed there (the synthesiser's
                // noise makes every run new audio; rest measured 0.93-1.00 on clean audio).
                let one_miss = c == 2 && n < 20 && n - ok <= 1;
                if n == 0 || ((ok as f64) < bar * n as f64 && !one_miss) {
                    failures.push(format!("{variant} {}: {what} {ok}/{n}", set.as_str()));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "below the bars:\n{}",
        failures.join("\n")
    );
}

/// A recording longer than one phone pass (20 s): the whole corpus as one text, about a
/// minute and a half of speech. It is aligned in pieces cut in pauses the word pass found, and
/// must be as exact as the short texts are.
#[test]
fn a_long_recording_is_aligned_in_pieces_as_exactly_as_short_ones() {
    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("tests/lipsync/corpus.json")).unwrap(),
    )
    .unwrap();
    let text: Vec<&str> = corpus["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    let text = text.join("\n\n");
    let runtime = RuntimePaths::from_env();
    let voices = VoiceStore::open(voices_dir(), &runtime, 2).expect("voices");
    let voice = voices.get(VOICE).expect("the joe voice");
    let aligner = Aligner::load(&AlignerConfig::from_env()).expect("the aligner");
    let synthesis = synthesize(&voice, &text, 1.0).unwrap();
    let ogg = avatar_audio::encode(
        &synthesis.samples,
        synthesis.sample_rate(),
        AudioFormat::Ogg,
        24_000,
    );
    let audio = avatar_audio::decode(&ogg.bytes, Some("audio/ogg"), 600_000).unwrap();
    assert!(audio.duration_ms() > 60_000, "{} ms", audio.duration_ms());
    let started = std::time::Instant::now();
    let alignment = aligner.align(&audio, Some(&text)).expect("an alignment");
    let mut s = Score {
        align_seconds: started.elapsed().as_secs_f64(),
        seconds: audio.duration_ms() as f64 / 1000.0,
        ..Default::default()
    };
    alignment.timeline.check().expect("a tiled timeline");
    assert!(alignment.forced, "not force-aligned");
    assert_eq!(
        alignment.timeline.words.len(),
        synthesis.timeline.words.len()
    );
    score(&synthesis.timeline, &alignment.timeline, 1.0, true, &mut s);
    report("one long recording", &s);
    assert!(
        pct(&s.word_onsets, 0.5) <= 40.0,
        "word onsets {:?}",
        pct(&s.word_onsets, 0.5)
    );
    assert!(pct(&s.phone_onsets, 0.5) <= 30.0);
    assert!(pct(&s.phone_onsets, 0.9) <= 90.0);
    // The cuts must not lose a word's timing: none is off by more than 300 ms.
    let worst = s.word_onsets.iter().copied().fold(0.0, f64::max);
    assert!(worst <= 300.0, "a word {worst} ms off");
    for (k, set) in VisemeSet::ALL.iter().enumerate() {
        let (ok, n) = s.checks[k][0];
        assert!(ok as f64 >= 0.95 * n as f64, "{set}: closed {ok}/{n}");
    }
    // Without the transcript: recognised, its phones aligned piece by piece too, and the lips
    // still close for most p, b and m (best effort; 0.8 as for the short texts).
    let started = std::time::Instant::now();
    let heard = aligner.align(&audio, None).expect("a recognition");
    let mut s = Score {
        align_seconds: started.elapsed().as_secs_f64(),
        seconds: audio.duration_ms() as f64 / 1000.0,
        ..Default::default()
    };
    heard.timeline.check().expect("a tiled timeline");
    assert!(!heard.forced);
    assert!(heard.timeline.words.len() * 2 > synthesis.timeline.words.len());
    score(&synthesis.timeline, &heard.timeline, 1.0, false, &mut s);
    report("one long, no transcript", &s);
    let (ok, n) = s.checks[0][0];
    assert!(ok as f64 >= 0.8 * n as f64, "closed {ok}/{n}");
}

/// Silence in `t` from the end of its phonemes to `to`.
fn silence_to(t: &mut PhonemeTimeline, to: u64) {
    let start = t.phonemes.last().map_or(0, |p| p.end_sample);
    if to > start {
        t.phonemes.push(avatar_domain::TimedPhoneme {
            phoneme: "_".into(),
            start_sample: start,
            end_sample: to,
        });
    }
}

/// `part`'s phonemes and words appended to `t` at sample `at` (silence before it), its words
/// located `text_base` bytes further into `t`'s text.
fn append_at(t: &mut PhonemeTimeline, part: &PhonemeTimeline, at: u64, text_base: usize) {
    silence_to(t, at);
    t.phonemes
        .extend(part.phonemes.iter().map(|p| avatar_domain::TimedPhoneme {
            start_sample: p.start_sample + at,
            end_sample: p.end_sample + at,
            ..p.clone()
        }));
    t.words
        .extend(part.words.iter().map(|w| avatar_domain::SpokenText {
            start_sample: w.start_sample + at,
            end_sample: w.end_sample + at,
            text_start: w.text_start + text_base,
            text_end: w.text_end + text_base,
            ..w.clone()
        }));
}

/// Live lip-sync: the corpus spoken text after text, each followed by 800 ms of quiet, over a
/// faint noise floor, fed to a live session at 16 kHz in 20 ms chunks as a microphone would,
/// with the running transcript given a text at a time as its speech starts.
///
/// - The answers come at the fixed lag: after every chunk, cues cover the audio up to
///   [`LIVE_LAG_MS`] (and one update) ago, and never the audio heard less than that ago
///   (but at an utterance's end, when what follows is known quiet).
/// - The live cues (the phone loop: no words) rest in pauses and open the mouth in vowels.
/// - The corrections at pauses are force-aligned to the transcript, each using the words its
///   utterance spoke, all of them in the end, and meet the offline bars.
#[test]
fn live_audio_is_answered_at_a_fixed_lag_and_corrected_at_pauses() {
    use avatar_align::{LIVE_LAG_MS, LiveEvent, RunningTranscript};

    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("tests/lipsync/corpus.json")).unwrap(),
    )
    .unwrap();
    let runtime = RuntimePaths::from_env();
    let voices = VoiceStore::open(voices_dir(), &runtime, 2).expect("voices");
    let voice = voices.get(VOICE).expect("the joe voice");
    let aligner = Aligner::load(&AlignerConfig::from_env()).expect("the aligner");

    // The stream and its truth, at the voice's rate.
    let mut samples: Vec<f32> = Vec::new();
    let mut truth = PhonemeTimeline::default();
    let mut full_text = String::new();
    let mut text_starts: Vec<(u64, String)> = Vec::new();
    for text in corpus["texts"].as_array().unwrap() {
        let words = text["text"].as_str().unwrap();
        let speed = text["speed"].as_f64().unwrap_or(1.0);
        let s = synthesize(&voice, words, speed).unwrap();
        let rate = s.sample_rate();
        truth.sample_rate = rate;
        let at = samples.len() as u64;
        text_starts.push((at * 16_000 / u64::from(rate), format!("{words} ")));
        samples.extend_from_slice(&s.samples);
        append_at(&mut truth, &s.timeline, at, full_text.len());
        full_text.push_str(words);
        full_text.push(' ');
        samples.resize(samples.len() + rate as usize * 8 / 10, 0.0);
    }
    truth.total_samples = samples.len() as u64;
    silence_to(&mut truth, samples.len() as u64);
    truth.check().expect("the truth tiles the stream");
    let mut stream = avatar_audio::resample(&samples, truth.sample_rate, 16_000).unwrap();
    // A microphone's noise floor, about 60 dB below full scale.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for s in &mut stream {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *s += ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.002;
    }
    let seconds = stream.len() as f64 / 16_000.0;
    if std::env::var_os("ALIGN_DEBUG").is_some() {
        for (at, text) in &text_starts {
            eprintln!(
                "text at {:.2} s: {}",
                *at as f64 / 16e3,
                &text[..30.min(text.len())]
            );
        }
        eprintln!("stream {seconds:.2} s");
    }

    let mut live = aligner.live().expect("a live session");
    let mut transcript = RunningTranscript::default();
    let mut next_text = 0;
    let mut events = Vec::new();
    let mut live_cues: Vec<Vec<MouthCue>> = vec![Vec::new(); VisemeSet::ALL.len()];
    let mut corrections: Vec<(u64, u64, avatar_align::Alignment)> = Vec::new();
    let mut covered = 0u64;
    let (mut live_seconds, mut correct_seconds) = (0.0, 0.0);
    let lag = LIVE_LAG_MS * 16;
    let chunk = 320;
    for (i, piece) in stream.chunks(chunk).enumerate() {
        let heard = ((i + 1) * chunk).min(stream.len()) as u64;
        while next_text < text_starts.len() && text_starts[next_text].0 <= heard {
            transcript.push(&text_starts[next_text].1);
            next_text += 1;
        }
        let started = std::time::Instant::now();
        live.push(piece, &mut events);
        live_seconds += started.elapsed().as_secs_f64();
        let last = i + 1 == stream.len().div_ceil(chunk);
        if last {
            transcript.complete();
            live.finish(&mut events);
        }
        // Only an utterance's last answer (its end is known quiet) may reach past the lag.
        let ending: Vec<bool> = (0..events.len())
            .map(|i| matches!(events.get(i + 1), Some(LiveEvent::Ended(_))))
            .collect();
        for (event, ends_utterance) in events.drain(..).zip(ending) {
            let (from, to) = match &event {
                LiveEvent::Quiet { from, to } | LiveEvent::Speech { from, to, .. } => (*from, *to),
                LiveEvent::Ended(u) => {
                    let started = std::time::Instant::now();
                    let a = aligner
                        .align_utterance(u, &mut transcript)
                        .expect("a correction");
                    correct_seconds += started.elapsed().as_secs_f64();
                    let end = u.offset + u.audio.samples.len() as u64;
                    if std::env::var_os("ALIGN_DEBUG").is_some() {
                        eprintln!(
                            "utterance {:.2}-{:.2} s forced {}: {:?}; pending {:?}",
                            u.offset as f64 / 16e3,
                            end as f64 / 16e3,
                            a.forced,
                            a.text,
                            transcript.pending()
                        );
                    }
                    corrections.push((u.offset, end, a));
                    continue;
                }
            };
            assert_eq!(from, covered, "events tile the stream");
            assert!(to > from);
            covered = to;
            if let LiveEvent::Speech {
                offset, timeline, ..
            } = &event
            {
                assert!(
                    to + lag <= heard || ends_utterance,
                    "cues to {to} with only {heard} heard"
                );
                for (k, &set) in VisemeSet::ALL.iter().enumerate() {
                    live_cues[k].extend(lipsync::window_cues(
                        timeline,
                        set,
                        offset / 16,
                        from / 16,
                        to / 16,
                    ));
                }
            } else {
                for (k, &set) in VisemeSet::ALL.iter().enumerate() {
                    live_cues[k].push(MouthCue {
                        t_ms: from / 16,
                        viseme: lipsync::visemes::rest(set).into(),
                        weight: 1.0,
                    });
                }
            }
        }
        // The fixed lag: the answers are never further behind than the lag and one update.
        assert!(
            covered + lag + 100 * 16 + chunk as u64 >= heard,
            "{covered} covered of {heard} heard"
        );
    }
    assert_eq!(covered, stream.len() as u64, "the whole stream is answered");
    assert_eq!(transcript.pending().trim(), "", "every word is aligned");

    // The live answers alone (the phone loop, before any correction).
    let mut live_score = Score::default();
    for (k, cues) in live_cues.iter().enumerate() {
        check_cues(&truth, 1.0, k, cues, &mut live_score);
    }
    println!(
        "\nLive lip-sync of {seconds:.1} s of speech in 20 ms chunks: {} utterances, the phone \
         loop at {:.3} of real time, corrections at {:.3}",
        corrections.len(),
        live_seconds / seconds,
        correct_seconds / seconds
    );
    live_score.seconds = seconds;
    live_score.align_seconds = live_seconds;
    report("live, at the lag", &live_score);
    // The phone loop at the lag, before corrections: measured closed 0.87-0.93, open
    // 0.94-0.97, rest 1.00 over six runs (all three sets); held to 0.8 (the offline bar
    // without a transcript), 0.9 and 0.95.
    let mut failures = Vec::new();
    for (k, set) in VisemeSet::ALL.iter().enumerate() {
        for (c, (what, bar)) in [("closed", 0.8), ("open", 0.9), ("rest", 0.95)]
            .into_iter()
            .enumerate()
        {
            let (ok, n) = live_score.checks[k][c];
            if n == 0 || (ok as f64) < bar * n as f64 {
                failures.push(format!("live {}: {what} {ok}/{n}", set.as_str()));
            }
        }
    }

    // The corrections: one timeline of the stream from the utterances' alignments, and the
    // cues a client ends up with (the live ones, replaced where a correction came).
    let mut corrected = PhonemeTimeline {
        sample_rate: 16_000,
        total_samples: stream.len() as u64,
        ..Default::default()
    };
    let mut cursor = 0;
    let mut final_cues = live_cues.clone();
    for (offset, end, a) in &corrections {
        assert!(a.forced, "the utterance at {offset} was not force-aligned");
        let base = cursor
            + full_text[cursor..]
                .find(&a.text)
                .expect("the transcript's words");
        cursor = base + a.text.len();
        append_at(&mut corrected, &a.timeline, *offset, base);
        for (k, &set) in VisemeSet::ALL.iter().enumerate() {
            let (from, to) = (offset / 16, end / 16);
            let cues = &mut final_cues[k];
            cues.retain(|c| c.t_ms < from || c.t_ms >= to);
            let at = cues.partition_point(|c| c.t_ms < from);
            let window = lipsync::window_cues(&a.timeline, set, from, from, to);
            cues.splice(at..at, window);
        }
    }
    silence_to(&mut corrected, stream.len() as u64);
    corrected.check().expect("the corrections tile the stream");
    assert_eq!(
        corrected.words.len(),
        truth.words.len(),
        "every word is marked"
    );
    let mut s = Score {
        seconds,
        align_seconds: correct_seconds,
        ..Default::default()
    };
    score(&truth, &corrected, 1.0, true, &mut s);
    s.checks.clear();
    for (k, cues) in final_cues.iter().enumerate() {
        check_cues(&truth, 1.0, k, cues, &mut s);
    }
    report("live, corrected", &s);
    for (what, value, bar) in [
        ("phone onset median", pct(&s.phone_onsets, 0.5), 30.0),
        ("phone onset p90", pct(&s.phone_onsets, 0.9), 90.0),
        ("word onset median", pct(&s.word_onsets, 0.5), 40.0),
    ] {
        if value.is_nan() || value > bar {
            failures.push(format!("corrected: {what} {value:.1} ms > {bar} ms"));
        }
    }
    for (k, set) in VisemeSet::ALL.iter().enumerate() {
        for (c, what) in ["closed", "open", "rest"].iter().enumerate() {
            let (ok, n) = s.checks[k][c];
            // As offline: 0.95 of fewer than 20 pauses would allow no miss, so one is allowed
            // there (a run measured 17/18 rests, others 18/18).
            let one_miss = c == 2 && n < 20 && n - ok <= 1;
            if n == 0 || ((ok as f64) < 0.95 * n as f64 && !one_miss) {
                failures.push(format!("corrected {}: {what} {ok}/{n}", set.as_str()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "below the bars:\n{}",
        failures.join("\n")
    );
}
