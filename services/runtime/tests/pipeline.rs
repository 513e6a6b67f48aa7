//! The runtime's moving parts against a real nats-server (JetStream): submission, the
//! stage-worker loop with stages of our own (each outcome a stage can have), and the voices
//! registry. The real stages run in `tests/system`; here each branch is driven on purpose.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use avatar_domain::{
    MouthCue, PhonemeTimeline, RenderRequest, RenderResult, RenderStatus, ValidSpec, VoiceInfo,
};
use avatar_runtime::config::{Env, PipelineConfig};
use avatar_runtime::jetstream::{Pipeline, Stage};
use avatar_runtime::job::{Job, Speech};
use avatar_runtime::record::RenderRecord;
use avatar_runtime::submit::{Submitted, submit, submit_recording};
use avatar_runtime::telemetry::Metrics;
use avatar_runtime::voices::{VoiceCheck, VoiceRegistry};
use avatar_runtime::worker::{Outcome, StageError, StageHandler, Worker};
use avatar_test_support::Nats;

async fn pipeline(nats: &Nats, max_deliver: u32) -> Pipeline {
    let vars = HashMap::from([
        ("NATS_URL".to_owned(), nats.url()),
        ("JOB_MAX_DELIVER".to_owned(), max_deliver.to_string()),
    ]);
    let mut env = Env::from_map(vars);
    let config = PipelineConfig::from_env(&mut env);
    env.finish().unwrap();
    tokio::time::timeout(Duration::from_secs(20), Pipeline::start(config, "test"))
        .await
        .expect("JetStream set up")
}

fn spec(text: &str) -> ValidSpec {
    RenderRequest {
        text: text.into(),
        ..Default::default()
    }
    .check(Some("en_US-test-voice"), |_| VoiceCheck::Known)
    .unwrap()
}

async fn record(pipeline: &Pipeline, id: &str) -> Option<RenderRecord> {
    let value = pipeline.renders.get(id).await.unwrap()?;
    Some(RenderRecord::from_bytes(&value).unwrap())
}

/// Waits until the record of `id` satisfies `done`, and returns it.
async fn wait_record(
    pipeline: &Pipeline,
    id: &str,
    done: impl Fn(&RenderRecord) -> bool,
) -> RenderRecord {
    for _ in 0..200 {
        if let Some(r) = record(pipeline, id).await
            && done(&r)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "record {id} never got there: {:?}",
        record(pipeline, id).await
    );
}

fn result(render_id: &str) -> RenderResult {
    RenderResult::completed(
        render_id.into(),
        "audio.ogg".into(),
        &PhonemeTimeline {
            sample_rate: 1000,
            total_samples: 1000,
            ..Default::default()
        },
        "",
        Default::default(),
        vec![MouthCue {
            t_ms: 0,
            viseme: "REST".into(),
            weight: 1.0,
        }],
        vec![],
        5,
    )
}

#[tokio::test]
async fn submission_queues_once_joins_what_is_under_way_and_serves_what_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let pipeline = pipeline(&nats, 5).await;

    let first = submit(&pipeline, spec("Hello there."), None).await.unwrap();
    let Submitted::Queued(queued, _) = &first else {
        panic!("a new render is queued: {first:?}");
    };
    assert_eq!(queued.status, RenderStatus::Pending);
    assert_eq!(pipeline.queue_depth(Stage::Tts).await.unwrap(), 1);

    // The same request again joins it: no second job.
    let again = submit(&pipeline, spec("  Hello there.\n"), None)
        .await
        .unwrap();
    let Submitted::InFlight(joined, _) = &again else {
        panic!("an identical render under way is joined: {again:?}");
    };
    assert_eq!(joined.submission, queued.submission);
    assert_eq!(pipeline.queue_depth(Stage::Tts).await.unwrap(), 1);
    assert_eq!(pipeline.pending_jobs().await.unwrap(), 1);

    // Completed: served from the record, nothing queued.
    let mut done = queued.clone();
    done.status = RenderStatus::Completed;
    done.result = Some(result(&done.render_id));
    pipeline
        .renders
        .put(&done.render_id, done.to_bytes())
        .await
        .unwrap();
    let cached = submit(&pipeline, spec("Hello there."), None).await.unwrap();
    assert!(matches!(cached, Submitted::Cached(_)), "{cached:?}");
    assert_eq!(pipeline.queue_depth(Stage::Tts).await.unwrap(), 1);

    // Failed: an identical request takes it over with a new submission and a new job.
    let mut failed = queued.clone();
    failed.status = RenderStatus::Failed;
    pipeline
        .renders
        .put(&failed.render_id, failed.to_bytes())
        .await
        .unwrap();
    let retried = submit(&pipeline, spec("Hello there."), None).await.unwrap();
    let Submitted::Queued(requeued, _) = &retried else {
        panic!("a failed render is submitted again: {retried:?}");
    };
    assert_ne!(requeued.submission, queued.submission);
    assert_eq!(pipeline.queue_depth(Stage::Tts).await.unwrap(), 2);
}

/// A stage of our own: what it does depends on the text.
struct Scripted(Stage);

impl StageHandler for Scripted {
    fn stage(&self) -> Stage {
        self.0
    }

    async fn process(&self, mut job: Job) -> Result<Outcome, StageError> {
        match (job.spec.text.as_str(), self.0) {
            ("Reject me.", _) => Err(StageError::Rejected {
                message: "nothing to say".into(),
                field: Some("text".into()),
            }),
            ("Fail me.", _) => Err(StageError::failed_because("the disk is on fire")),
            // Text to the tts stage, recordings to the align stage, nothing else.
            (_, Stage::Tts | Stage::Align)
                if job.recording.is_some() != (self.0 == Stage::Align) =>
            {
                Err(StageError::Rejected {
                    message: format!("the {} stage got the wrong kind of job", self.0.name()),
                    field: None,
                })
            }
            (_, Stage::Tts | Stage::Align) => {
                job.speech = Some(Speech {
                    run: "run1".into(),
                    audio_file: format!("{}-run1.ogg", job.render_id),
                    duration_ms: 1000,
                    timeline: PhonemeTimeline::default(),
                    text: None,
                });
                Ok(Outcome::Next(job))
            }
            (_, Stage::Lipsync) => {
                job.mouth_cues = Some(vec![]);
                Ok(Outcome::Next(job))
            }
            (_, Stage::Eyes) => Ok(Outcome::Completed(result(&job.render_id))),
        }
    }
}

#[tokio::test]
async fn the_worker_loop_passes_on_completes_rejects_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let pipeline = pipeline(&nats, 2).await;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    for stage in Stage::ALL {
        let worker = Worker {
            pipeline: pipeline.clone(),
            store: store.clone(),
            handler: Arc::new(Scripted(stage)),
            metrics: Metrics::new(stage.name()),
        };
        tokio::spawn(async move { worker.run().await });
    }

    let ok = submit(&pipeline, spec("All is well."), None).await.unwrap();
    let rejected = submit(&pipeline, spec("Reject me."), None).await.unwrap();
    let failing = submit(&pipeline, spec("Fail me."), None).await.unwrap();

    // Through the three stages to a completed record with the last stage's result.
    let id = &ok.record().render_id;
    let done = wait_record(&pipeline, id, RenderRecord::is_final).await;
    assert_eq!(done.status, RenderStatus::Completed, "{done:?}");
    assert_eq!(done.result.unwrap().render_id, *id);

    // A recording starts at the align stage and goes on through lipsync and eyes.
    let recording = avatar_runtime::record::Recording {
        audio_file: "x-recording.wav".into(),
        hint: Some("audio/wav".into()),
        spec: avatar_domain::RecordingRequest::default()
            .validate()
            .unwrap(),
    };
    let id = "b".repeat(64);
    submit_recording(&pipeline, &id, recording.clone(), None)
        .await
        .unwrap();
    let done = wait_record(&pipeline, &id, RenderRecord::is_final).await;
    assert_eq!(done.status, RenderStatus::Completed, "{done:?}");
    assert_eq!(done.recording, Some(recording));

    // Rejected: failed at once, naming the field, never retried.
    let id = &rejected.record().render_id;
    let done = wait_record(&pipeline, id, RenderRecord::is_final).await;
    assert_eq!(done.status, RenderStatus::Failed);
    let reason = done.reason();
    assert_eq!(reason.field.as_deref(), Some("text"));
    assert_eq!(reason.message, "nothing to say");

    // Failed attempts: retried until JOB_MAX_DELIVER, then the render fails with the reason.
    let id = &failing.record().render_id;
    let done = wait_record(&pipeline, id, RenderRecord::is_final).await;
    assert_eq!(done.status, RenderStatus::Failed);
    let reason = done.reason();
    assert_eq!(reason.field, None);
    assert_eq!(
        reason.message,
        "tts stage failed after 2 attempts: the disk is on fire"
    );

    // Nothing is left queued.
    for _ in 0..100 {
        if pipeline.pending_jobs().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs left: {}", pipeline.pending_jobs().await.unwrap());
}

fn voice(id: &str) -> VoiceInfo {
    VoiceInfo {
        voice_id: id.into(),
        language: "en_US".into(),
        language_name: None,
        sample_rate: 22050,
        quality: None,
    }
}

#[tokio::test]
async fn voices_are_known_while_announced_and_remembered_after() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let pipeline = pipeline(&nats, 5).await;

    let registry = VoiceRegistry::start(pipeline.clone()).await;
    assert_eq!(
        registry.check("en_US-joe-medium"),
        VoiceCheck::NoneAnnounced
    );

    // A worker announces its voice (live) and it is remembered (seen).
    let joe = voice("en_US-joe-medium");
    let live = serde_json::to_vec(&vec![joe.clone()]).unwrap();
    pipeline.voices.put("tts-1", live.into()).await.unwrap();
    let seen = serde_json::to_vec(&joe).unwrap();
    pipeline
        .voices_seen
        .put(&joe.voice_id, seen.into())
        .await
        .unwrap();
    let registry = VoiceRegistry::start(pipeline.clone()).await;
    assert_eq!(registry.check("en_US-joe-medium"), VoiceCheck::Known);
    assert_eq!(
        registry.check("xx_XX-nobody-medium"),
        VoiceCheck::Unknown {
            available: vec!["en_US-joe-medium".into()]
        }
    );
    assert_eq!(registry.counts(), (1, 1));
    assert_eq!(
        registry.default_voice(None).as_deref(),
        Some("en_US-joe-medium")
    );

    // The worker goes away: its voice is no longer live but still accepted.
    pipeline.voices.delete("tts-1").await.unwrap();
    for _ in 0..100 {
        if registry.check("en_US-joe-medium") == VoiceCheck::Remembered {
            assert_eq!(registry.counts(), (0, 1));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{:?}", registry.check("en_US-joe-medium"));
}
