//! Piper voices: the `NAME.onnx` + `NAME.onnx.json` pairs in the voices directory, loaded
//! once per voice and kept for the life of the process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use avatar_domain::VoiceInfo;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use serde::Deserialize;

use crate::espeak::Phonemizer;
use crate::ids::{BOS, EOS, PAD};
use crate::{RuntimePaths, TtsError};

/// A protobuf fragment `graph { output { name: "/Ceil_output_0" } }`. Appended to the model
/// bytes it merges into the model and exposes the VITS duration predictor's per-id frame
/// counts (frames of 256 samples) as a second output, so the phoneme timeline comes from the
/// very run that produced the audio.
const DURATIONS_OUTPUT_PATCH: [u8; 20] = [
    0x3a, 0x12, 0x62, 0x10, 0x0a, 0x0e, 0x2f, 0x43, 0x65, 0x69, 0x6c, 0x5f, 0x6f, 0x75, 0x74, 0x70,
    0x75, 0x74, 0x5f, 0x30,
];
const DURATIONS_OUTPUT: &str = "/Ceil_output_0";

/// The fields of a Piper `.onnx.json` voice config that synthesis uses.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    pub inference: InferenceConfig,
    #[serde(default)]
    pub phoneme_type: Option<String>,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub num_speakers: u32,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
    #[serde(default)]
    pub quality: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    pub code: String,
    #[serde(default)]
    pub name_english: Option<String>,
}

impl VoiceConfig {
    /// Reads and checks a voice config; errors name the file.
    pub fn read(path: &Path) -> Result<Self, TtsError> {
        let bytes = read_file(path)?;
        let config: VoiceConfig =
            serde_json::from_slice(&bytes).map_err(|e| TtsError::BadVoiceConfig {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let bad = |reason: &str| TtsError::BadVoiceConfig {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if config
            .phoneme_type
            .as_deref()
            .is_some_and(|t| t != "espeak")
        {
            return Err(bad("only espeak phoneme voices are supported"));
        }
        if config.audio.sample_rate == 0 {
            return Err(bad("audio.sample_rate is zero"));
        }
        for marker in [BOS, EOS, PAD] {
            if config.phoneme_id_map.get(marker).is_none_or(Vec::is_empty) {
                return Err(bad(&format!("phoneme_id_map lacks {marker:?}")));
            }
        }
        Ok(config)
    }

    fn info(&self, voice_id: &str) -> VoiceInfo {
        VoiceInfo {
            voice_id: voice_id.to_owned(),
            language: self
                .language
                .as_ref()
                .map(|l| l.code.clone())
                .unwrap_or_else(|| self.espeak.voice.clone()),
            language_name: self.language.as_ref().and_then(|l| l.name_english.clone()),
            sample_rate: self.audio.sample_rate,
            quality: self.audio.quality.clone(),
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TtsError> {
    std::fs::read(path).map_err(|e| TtsError::VoiceFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A loaded voice: its config and one onnxruntime session, reused for every render.
pub struct Voice {
    pub id: String,
    pub config: VoiceConfig,
    pub(crate) phonemizer: &'static Phonemizer,
    session: Mutex<Session>,
    audio_output: String,
    multi_speaker: bool,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One inference run: the waveform and the frames (of [`SAMPLES_PER_FRAME`]) each id got.
pub(crate) struct Inference {
    pub audio: Vec<f32>,
    pub frames: Vec<f32>,
}

/// Piper's VITS decoder turns one duration frame into this many samples.
pub(crate) const SAMPLES_PER_FRAME: u64 = 256;

impl Voice {
    pub fn info(&self) -> VoiceInfo {
        self.config.info(&self.id)
    }

    /// Runs the model on one sentence's ids with `[noise_scale, length_scale, noise_w]`.
    pub(crate) fn infer(&self, ids: &[i64], scales: [f32; 3]) -> Result<Inference, TtsError> {
        let inference_error = |e: ort::Error| TtsError::Inference {
            voice: self.id.clone(),
            reason: e.to_string(),
        };
        let n = ids.len();
        let mut inputs = ort::inputs![
            "input" => Tensor::from_array(([1usize, n], ids.to_vec())).map_err(inference_error)?,
            "input_lengths" => Tensor::from_array(([1usize], vec![n as i64])).map_err(inference_error)?,
            "scales" => Tensor::from_array(([3usize], scales.to_vec())).map_err(inference_error)?,
        ];
        if self.multi_speaker {
            let sid = Tensor::from_array(([1usize], vec![0i64])).map_err(inference_error)?;
            inputs.push(("sid".into(), sid.into()));
        }
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(inference_error)?;
        let (_, audio) = outputs[self.audio_output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(inference_error)?;
        let (_, frames) = outputs[DURATIONS_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(inference_error)?;
        Ok(Inference {
            audio: audio.to_vec(),
            frames: frames.to_vec(),
        })
    }
}

/// The voices directory when none is configured (`VOICES_DIR`).
pub const DEFAULT_VOICES_DIR: &str = "voices";

/// onnxruntime threads per synthesis when none are configured (`TTS_THREADS`): all cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The voices directory: lists the voice pairs in it and loads each voice once, on first use.
pub struct VoiceStore {
    dir: PathBuf,
    threads: usize,
    environment: ort::environment::Environment,
    phonemizer: &'static Phonemizer,
    loaded: Mutex<HashMap<String, VoiceSlot>>,
}

/// One voice's load, shared by everyone who asks for it while it loads.
type VoiceSlot = Arc<OnceLock<Result<Arc<Voice>, TtsError>>>;

static ORT_ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

impl VoiceStore {
    /// Loads the native runtime (onnxruntime, espeak-ng) and opens `dir`. `threads` is
    /// onnxruntime's intra-op thread count per inference.
    pub fn open(
        dir: impl Into<PathBuf>,
        runtime: &RuntimePaths,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(TtsError::VoicesDir(dir));
        }
        let phonemizer = Phonemizer::load(&runtime.espeak_lib, &runtime.espeak_data)?;
        let environment = {
            let mut env = ORT_ENVIRONMENT
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match env.as_ref() {
                Some(existing) => existing.clone(),
                None => {
                    let created = ort::init_from(&runtime.onnxruntime)
                        .map_err(|e| TtsError::OnnxRuntime {
                            path: runtime.onnxruntime.clone(),
                            reason: e.to_string(),
                        })?
                        .with_name("piper")
                        .build()
                        .map_err(|e| TtsError::OnnxRuntime {
                            path: runtime.onnxruntime.clone(),
                            reason: e.to_string(),
                        })?;
                    env.insert(created).clone()
                }
            }
        };
        Ok(Self {
            dir,
            threads: threads.max(1),
            environment,
            phonemizer,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The voices in the directory with a readable config, sorted by id. A pair with a
    /// broken config is left out here (and reported when someone asks for it).
    pub fn list(&self) -> Vec<VoiceInfo> {
        let mut found = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".onnx")) else {
                continue;
            };
            if avatar_domain::request::check_voice_id(id).is_err() {
                continue;
            }
            match VoiceConfig::read(&self.config_path(id)) {
                Ok(config) => {
                    found.insert(id.to_owned(), config.info(id));
                }
                Err(e) => tracing::warn!(voice = id, error = %e, "skipping voice"),
            }
        }
        found.into_values().collect()
    }

    fn model_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.onnx"))
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.onnx.json"))
    }

    /// The voice `id`, loading it on first use (concurrent first uses load it once). A
    /// failed load is not cached: the next call tries again, so a fixed file is picked up.
    pub fn get(&self, id: &str) -> Result<Arc<Voice>, TtsError> {
        if avatar_domain::request::check_voice_id(id).is_err() {
            return Err(self.unknown_voice(id));
        }
        let cell = {
            let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            loaded.entry(id.to_owned()).or_default().clone()
        };
        let result = cell.get_or_init(|| self.load(id).map(Arc::new)).clone();
        if result.is_err() {
            let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            if loaded.get(id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                loaded.remove(id);
            }
        }
        result
    }

    fn unknown_voice(&self, id: &str) -> TtsError {
        TtsError::UnknownVoice {
            voice: id.to_owned(),
            available: self.list().into_iter().map(|v| v.voice_id).collect(),
        }
    }

    fn session(&self, model: &[u8]) -> Result<Session, ort::Error> {
        Session::builder(&self.environment)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            // Memory patterns are planned per run shape; VITS shapes depend on the predicted
            // durations, so every run adds a plan and a long-lived process grows by about
            // 7 MB a render (measured: 222 MB -> 329 MB over 16 renders). Off, it stays flat
            // at the same speed.
            .with_memory_pattern(false)?
            .with_intra_threads(self.threads)?
            .with_inter_threads(1)?
            // Intra-op threads spin while a run is active (about 20 % faster on 2 cores than
            // blocking), but stop the moment it returns: spinning on after it would take the
            // cores from the Opus encoder and from the next stages' processes.
            .with_config_entry("session.force_spinning_stop", "1")?
            .commit_from_memory(model)
    }

    fn load(&self, id: &str) -> Result<Voice, TtsError> {
        let model_path = self.model_path(id);
        let config_path = self.config_path(id);
        if !model_path.exists() && !config_path.exists() {
            return Err(self.unknown_voice(id));
        }
        let config = VoiceConfig::read(&config_path)?;
        let started = std::time::Instant::now();
        let mut model = read_file(&model_path)?;
        model.extend_from_slice(&DURATIONS_OUTPUT_PATCH);
        let bad_model = |reason: String| TtsError::BadVoiceModel {
            path: model_path.clone(),
            reason,
        };
        let session = self.session(&model).map_err(|e| bad_model(e.to_string()))?;
        drop(model);

        let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input", "input_lengths", "scales"] {
            if !input_names.contains(&needed) {
                return Err(bad_model(format!("not a Piper model: no input {needed:?}")));
            }
        }
        let output_names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if !output_names.contains(&DURATIONS_OUTPUT) {
            return Err(bad_model(format!(
                "not a Piper VITS model: no tensor {DURATIONS_OUTPUT:?} for phoneme durations"
            )));
        }
        let audio_output = output_names
            .iter()
            .find(|n| **n != DURATIONS_OUTPUT)
            .ok_or_else(|| bad_model("no audio output".into()))?
            .to_string();
        let multi_speaker = input_names.contains(&"sid");
        tracing::info!(
            voice = id,
            ms = started.elapsed().as_millis() as u64,
            threads = self.threads,
            "voice loaded"
        );
        Ok(Voice {
            id: id.to_owned(),
            config,
            phonemizer: self.phonemizer,
            session: Mutex::new(session),
            audio_output,
            multi_speaker,
        })
    }
}
