//! `avatar-render`: one render, offline, no server. Writes `OUT/audio.ogg` (or `.wav`) and
//! `OUT/render.json` in the HTTP API's completed-response shape (its word and sentence marks
//! located in the text as given), and with `--subtitles` `OUT/subtitles.vtt`.
//!
//! With `--audio FILE` it lip-syncs a recording instead (a person's, or another TTS
//! engine's): `--transcript` force-aligns the words; without one they are recognised (best
//! effort). `OUT/audio.<ext>` is then a copy of the file.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use avatar_domain::{RenderRequest, VisemeSet};
use avatar_render::{Engine, EngineConfig, RenderError};
use clap::Parser;
use tts::{AudioFormat, RuntimePaths};

/// Render text to speech audio, mouth cues and eye events, offline.
#[derive(Debug, Parser)]
#[command(name = "avatar-render", version)]
struct Args {
    /// The text to speak (1 to 5000 characters). Without --text or --text-file, stdin is read.
    #[arg(long, conflicts_with_all = ["text_file", "audio"])]
    text: Option<String>,
    /// Read the text from this file ('-' for stdin).
    #[arg(long, conflicts_with = "audio")]
    text_file: Option<PathBuf>,
    /// Lip-sync this recording instead of synthesising speech: WAV, FLAC, MP3, Ogg
    /// (Opus, Vorbis), WebM/Opus or M4A/AAC, any rate, mono or stereo, up to 10 minutes.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// What the recording says: its words are force-aligned (exact timing). Without it, the
    /// words are recognised (US English, best effort).
    #[arg(long, requires = "audio", conflicts_with = "transcript_file")]
    transcript: Option<String>,
    /// Read the transcript from this file.
    #[arg(long, requires = "audio", conflicts_with = "timings")]
    transcript_file: Option<PathBuf>,
    /// The speaking engine's own word timings for the recording, taken as they are (no
    /// recognition): ElevenLabs' character alignment, Azure word boundaries, or
    /// {"words": [{"word", "start", "end"}]} in seconds.
    #[arg(long, requires = "audio", conflicts_with = "transcript")]
    timings: Option<PathBuf>,
    /// Voice id: a NAME with NAME.onnx and NAME.onnx.json in the voices directory.
    #[arg(long, env = "DEFAULT_VOICE")]
    voice: Option<String>,
    /// Speech rate, 0.5 to 2.0.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    speed: f64,
    /// Viseme set of the mouth cues: basic, rhubarb or oculus.
    #[arg(long, default_value = "basic")]
    viseme_set: String,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Audio format: ogg (Opus) or wav.
    #[arg(long, env = "AUDIO_FORMAT", default_value = "ogg")]
    format: AudioFormat,
    /// Opus bitrate in bits per second.
    #[arg(long, env = "AUDIO_BITRATE", default_value_t = tts::audio::DEFAULT_BITRATE)]
    bitrate: u32,
    /// URL prefix for audio_url in render.json; without it, audio_url is the file name.
    #[arg(long)]
    audio_base_url: Option<String>,
    /// Also write OUT/timeline.json: every phoneme with its start and end in milliseconds.
    #[arg(long)]
    timeline: bool,
    /// Also write OUT/subtitles.vtt: WebVTT cues of at most two lines of 42 characters, with
    /// a timestamp tag before every word (as GET /v1/avatar/render/{id}/subtitles.vtt serves).
    #[arg(long)]
    subtitles: bool,
    /// Directory of Piper voices.
    #[arg(long, env = "VOICES_DIR", default_value = tts::DEFAULT_VOICES_DIR)]
    voices_dir: PathBuf,
    /// onnxruntime threads (default: all cores).
    #[arg(long, env = "TTS_THREADS")]
    threads: Option<usize>,
}

/// The command's log filter without `LOG_LEVEL`: quieter than the services', a command
/// prints only what went wrong.
const DEFAULT_LOG_LEVEL: &str = "warn";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_LEVEL)),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("avatar-render: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Render(message)) => {
            eprintln!("avatar-render: {message}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    /// The request is at fault (exit 2).
    Usage(String),
    /// The render failed (exit 1).
    Render(String),
}

fn run(args: Args) -> Result<(), Failure> {
    if let Some(audio) = &args.audio {
        return run_recording(&args, audio);
    }
    let text = match (&args.text, &args.text_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) if path.as_os_str() != "-" => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?,
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
            text
        }
    };
    let viseme_set: VisemeSet = args
        .viseme_set
        .parse()
        .map_err(|e: avatar_domain::FieldError| Failure::Usage(e.to_string()))?;
    let request = RenderRequest {
        text,
        voice_id: args.voice.clone(),
        speed: Some(args.speed),
        viseme_set: Some(viseme_set),
    };
    let threads = args.threads.unwrap_or_else(tts::default_threads);
    let engine = Engine::new(EngineConfig {
        voices_dir: args.voices_dir.clone(),
        runtime: RuntimePaths::from_env(),
        threads,
        audio_format: args.format,
        bitrate: args.bitrate,
        default_voice: args.voice.clone(),
    })
    .map_err(|e| Failure::Render(e.to_string()))?;
    // Check the request before loading a 60 MB voice for nothing; then load it apart from
    // the render, so processing_time_ms is the render alone.
    let spec = engine
        .validate(&request)
        .map_err(|e| Failure::Usage(e.to_string()))?
        .spec;
    let loading = std::time::Instant::now();
    engine
        .preload(&spec.voice_id)
        .map_err(|e| match RenderError::from(e) {
            e @ RenderError::Invalid(_) => Failure::Usage(e.to_string()),
            e => Failure::Render(e.to_string()),
        })?;
    let load_ms = loading.elapsed().as_millis();

    let file_name = |format: AudioFormat| format!("audio.{}", format.extension());
    let rendered = engine
        .render(&request, |_, format| match &args.audio_base_url {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), file_name(format)),
            None => file_name(format),
        })
        .map_err(|e| match e {
            RenderError::Invalid(_) => Failure::Usage(e.to_string()),
            RenderError::Tts(_) => Failure::Render(e.to_string()),
        })?;
    let file = file_name(rendered.audio.format);

    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(args.out.join(name), bytes).map_err(|e| {
            Failure::Render(format!(
                "cannot write {}: {e}",
                args.out.join(name).display()
            ))
        })
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Render(format!("cannot create {}: {e}", args.out.display())))?;
    write(&file, &rendered.audio.bytes)?;
    // The engine locates the marks in the normalised text; render.json's refer to the text as
    // given, and so do the subtitles made from them.
    let mut result = rendered.result;
    result.locate_marks_in(&request.text);
    let json = serde_json::to_vec_pretty(&result).expect("a render result serialises");
    write("render.json", &json)?;
    if args.subtitles {
        let vtt = avatar_domain::subtitles::webvtt(&request.text, &result.words, &result.sentences);
        write("subtitles.vtt", vtt.as_bytes())?;
    }
    if args.timeline {
        let t = &rendered.timeline;
        let phonemes: Vec<serde_json::Value> = t
            .phonemes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "phoneme": p.phoneme,
                    "start_ms": t.ms(p.start_sample),
                    "end_ms": t.ms(p.end_sample),
                })
            })
            .collect();
        let sentences: Vec<serde_json::Value> = t
            .sentences
            .iter()
            .map(|s| serde_json::json!({"start_ms": t.ms(s.start_sample), "end_ms": t.ms(s.end_sample)}))
            .collect();
        let json = serde_json::json!({"sample_rate": t.sample_rate, "total_samples": t.total_samples, "phonemes": phonemes, "sentences": sentences});
        write(
            "timeline.json",
            &serde_json::to_vec_pretty(&json).expect("JSON"),
        )?;
    }
    eprintln!(
        "avatar-render: voice {} loaded in {load_ms} ms; {} ms of speech, {} mouth cues, {} eye events rendered in {} ms -> {}",
        spec.voice_id,
        result.duration_ms,
        result.mouth_cues.len(),
        result.eye_events.len(),
        result.processing_time_ms,
        args.out.display()
    );
    Ok(())
}

/// `--audio`: lip-sync of a recording.
fn run_recording(args: &Args, path: &std::path::Path) -> Result<(), Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    let read = |file: &std::path::Path| {
        std::fs::read_to_string(file)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))
    };
    let transcript = match (&args.transcript, &args.transcript_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    let viseme_set: VisemeSet = args
        .viseme_set
        .parse()
        .map_err(|e: avatar_domain::FieldError| Failure::Usage(e.to_string()))?;
    let request = avatar_domain::RecordingRequest {
        transcript: transcript.clone(),
        timings: args.timings.as_deref().map(read).transpose()?,
        viseme_set: Some(viseme_set),
    };
    let invalid = |errors: Vec<avatar_domain::FieldError>| {
        Failure::Usage(
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    // Bad input is reported before the aligner loads.
    let spec = request.validate().map_err(invalid)?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (audio, container) = avatar_audio::decode_recording(&bytes, extension.as_deref())
        .map_err(|e| invalid(vec![e]))?;
    let aligner = avatar_align::Aligner::load(&avatar_align::AlignerConfig::from_env())
        .map_err(|e| Failure::Render(e.to_string()))?;
    let file = format!("audio.{}", container.extension());
    let mut done =
        avatar_render::lipsync_recording(&aligner, &bytes, &audio, &spec, |_| {
            match &args.audio_base_url {
                Some(base) => format!("{}/{file}", base.trim_end_matches('/')),
                None => file.clone(),
            }
        })
        .map_err(|e| match e {
            avatar_render::RecordingError::Invalid(_) => Failure::Usage(e.to_string()),
            e => Failure::Render(e.to_string()),
        })?;
    // Marks located in the transcript as given (the file's own line breaks, say).
    if let Some(t) = &transcript {
        done.result.locate_marks_in(t);
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Render(format!("cannot create {}: {e}", args.out.display())))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(args.out.join(name), bytes).map_err(|e| {
            Failure::Render(format!(
                "cannot write {}: {e}",
                args.out.join(name).display()
            ))
        })
    };
    write(&file, &bytes)?;
    let result = &done.result;
    write(
        "render.json",
        &serde_json::to_vec_pretty(result).expect("a render result serialises"),
    )?;
    if args.subtitles {
        let text = transcript.as_deref().unwrap_or(&done.text);
        let vtt = avatar_domain::subtitles::webvtt(text, &result.words, &result.sentences);
        write("subtitles.vtt", vtt.as_bytes())?;
    }
    eprintln!(
        "avatar-render: {} ms of audio {} ({} words), {} mouth cues, {} eye events in {} ms -> {}",
        result.duration_ms,
        if done.forced {
            "force-aligned to its transcript"
        } else {
            "recognised (best effort)"
        },
        result.words.len(),
        result.mouth_cues.len(),
        result.eye_events.len(),
        result.processing_time_ms,
        args.out.display()
    );
    Ok(())
}
