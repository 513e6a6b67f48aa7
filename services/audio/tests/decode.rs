//! Files users bring, written by an independent encoder (ffmpeg), decoded with their timing
//! intact: a tone that starts at 500 ms and stops at 1500 ms must start and stop there in
//! what `decode` returns, whatever the container, codec, rate and channel count.

use std::path::Path;
use std::process::Command;

use avatar_audio::{DecodeError, decode, encode_ogg_opus, encode_wav};

const RATE: u32 = 22_050;

/// 2 s: silence, a 440 Hz tone from 0.5 s to 1.5 s, silence.
fn tone_burst() -> Vec<f32> {
    (0..2 * RATE as usize)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            if (0.5..1.5).contains(&t) {
                0.5 * (t * 440.0 * std::f32::consts::TAU).sin()
            } else {
                0.0
            }
        })
        .collect()
}

/// Where the signal is first and last louder than -20 dBFS (5 ms windows), in ms.
fn onset_and_offset(samples: &[f32], rate: u32) -> (f64, f64) {
    let window = rate as usize / 200;
    let loud: Vec<bool> = samples
        .chunks(window)
        .map(|w| (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt() > 0.1)
        .collect();
    let first = loud.iter().position(|&l| l).expect("a tone");
    let last = loud.iter().rposition(|&l| l).unwrap();
    let ms = |i: usize| (i * window) as f64 * 1000.0 / rate as f64;
    (ms(first), ms(last + 1))
}

fn ffmpeg(input: &Path, output: &Path, args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(args)
        .arg(output)
        .status()
        .expect("ffmpeg (scripts/setup_system.sh test)");
    assert!(status.success(), "ffmpeg {args:?}");
}

#[test]
fn every_format_decodes_with_its_timing() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("source.wav");
    std::fs::write(&wav, encode_wav(&tone_burst(), RATE)).unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("wav", &["-ar", "44100", "-ac", "2"], Some("audio/wav")),
        ("flac", &["-ar", "48000"], None),
        (
            "mp3",
            &["-ar", "44100", "-ac", "2", "-b:a", "96k"],
            Some("audio/mpeg"),
        ),
        (
            "ogg",
            &["-c:a", "libopus", "-b:a", "32k"],
            Some("audio/ogg"),
        ),
        (
            "webm",
            &["-c:a", "libopus", "-b:a", "32k"],
            Some("audio/webm"),
        ),
        ("oga", &["-c:a", "libvorbis", "-ar", "32000"], None),
        ("m4a", &["-c:a", "aac", "-b:a", "96k"], Some("audio/mp4")),
    ];
    for &(ext, args, hint) in cases {
        let file = dir.path().join(format!("tone.{ext}"));
        ffmpeg(&wav, &file, args);
        let bytes = std::fs::read(&file).unwrap();
        let audio =
            decode(&bytes, hint.or(Some(ext)), 60_000).unwrap_or_else(|e| panic!("{ext}: {e}"));
        let (on, off) = onset_and_offset(&audio.samples, audio.sample_rate);
        println!(
            "{ext:5} {} Hz, {} ch, {:>6}: tone {on:.0}-{off:.0} ms, {} ms long",
            audio.sample_rate,
            audio.channels,
            audio.codec,
            audio.duration_ms()
        );
        assert!(
            (on - 500.0).abs() <= 5.0,
            "{ext}: the tone starts at {on} ms"
        );
        assert!(
            (off - 1500.0).abs() <= 5.0,
            "{ext}: the tone ends at {off} ms"
        );
        // At most one codec frame of padding left at the end (AAC's is not trimmed: symphonia
        // does not read the MP4 edit list).
        assert!(
            audio.duration_ms().abs_diff(2000) <= 50,
            "{ext}: {} ms",
            audio.duration_ms()
        );
        assert!(!audio.is_silent());
        // Without a hint too: the content decides.
        assert!(decode(&bytes, None, 60_000).is_ok(), "{ext} without a hint");
    }
}

#[test]
fn our_own_ogg_opus_decodes_to_exactly_its_length() {
    let samples = tone_burst();
    let ogg = encode_ogg_opus(&samples, RATE, 24_000).unwrap();
    let audio = decode(&ogg, None, 60_000).unwrap();
    assert_eq!(audio.sample_rate, 48_000);
    assert_eq!(audio.samples.len(), samples.len() * 48_000 / RATE as usize);
    let (on, off) = onset_and_offset(&audio.samples, 48_000);
    assert!(
        (on - 500.0).abs() <= 5.0 && (off - 1500.0).abs() <= 5.0,
        "{on} {off}"
    );
}

#[test]
fn bad_files_are_named_not_decoded() {
    assert_eq!(
        decode(b"hello, not audio", None, 60_000),
        Err(DecodeError::NotAudio)
    );
    assert_eq!(
        decode(b"", Some("audio/wav"), 60_000),
        Err(DecodeError::NotAudio)
    );
    let long = encode_wav(&vec![0.1; 3 * RATE as usize], RATE);
    assert_eq!(
        decode(&long, None, 2_000),
        Err(DecodeError::TooLong { limit_ms: 2_000 })
    );
    let silent = decode(&encode_wav(&vec![0.0; RATE as usize], RATE), None, 60_000).unwrap();
    assert!(silent.is_silent());
    // A truncated file: what is there decodes, or it is refused; never a panic.
    let wav = encode_wav(&tone_burst(), RATE);
    for cut in [10, 44, 45, 1000, wav.len() / 2] {
        let _ = decode(&wav[..cut], None, 60_000);
    }
    let ogg = encode_ogg_opus(&tone_burst(), RATE, 24_000).unwrap();
    for cut in [30, 40, 100, ogg.len() / 2] {
        let _ = decode(&ogg[..cut], None, 60_000);
    }
}

/// Damaged uploads (bytes flipped, cut short, garbage spliced in) of every format: each is
/// decoded or refused with an error, never a panic or a hang.
#[test]
fn damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("source.wav");
    std::fs::write(&wav, encode_wav(&tone_burst(), RATE)).unwrap();
    let mut files = vec![
        encode_ogg_opus(&tone_burst(), RATE, 24_000).unwrap(),
        std::fs::read(&wav).unwrap(),
    ];
    for (ext, args) in [
        ("flac", &[][..]),
        ("mp3", &["-b:a", "64k"][..]),
        ("webm", &["-c:a", "libopus"][..]),
        ("m4a", &["-c:a", "aac"][..]),
        ("oga", &["-c:a", "libvorbis"][..]),
    ] {
        let file = dir.path().join(format!("tone.{ext}"));
        ffmpeg(&wav, &file, args);
        files.push(std::fs::read(&file).unwrap());
    }
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for original in &files {
        for round in 0..150 {
            let mut bytes = original.clone();
            match round % 3 {
                0 => {
                    for _ in 0..1 + next() % 16 {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] ^= 1 << (next() % 8);
                    }
                }
                1 => bytes.truncate((next() as usize) % bytes.len()),
                _ => {
                    let at = (next() as usize) % bytes.len();
                    let junk: Vec<u8> = (0..1 + next() % 512).map(|_| next() as u8).collect();
                    bytes.splice(at..at, junk);
                }
            }
            let _ = decode(&bytes, None, 60_000);
        }
    }
}
