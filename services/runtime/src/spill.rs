//! Messages stay small whatever the text: what a stage hands on (the phoneme timeline, the
//! mouth cues) and what the last stage writes (the full result, into the render record) go
//! into the object store when they would not fit in a NATS message, and travel by reference,
//! as audio always does.
//!
//! 5,000 characters of CJK text (each spelled out by the English voice) make a timeline of
//! some 10^5 phonemes: megabytes of JSON, over NATS's default 1 MB `max_payload` for the job
//! message and for a KV value alike. Ordinary requests stay inline (no extra round trip).

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::jetstream::{Pipeline, Stage};
use crate::job::Job;
use crate::record::RenderRecord;
use avatar_domain::{MouthCue, PhonemeTimeline, RenderResult};

/// The largest message (job or record) sent inline: a quarter of the server's
/// `max_payload`, and never more than 256 KiB.
pub fn inline_budget(pipeline: &Pipeline) -> usize {
    (pipeline.client.server_info().max_payload / 4).clamp(16 * 1024, 256 * 1024)
}

/// What did not fit in a job message.
#[derive(Debug, Default, Serialize, Deserialize)]
struct JobPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeline: Option<PhonemeTimeline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mouth_cues: Option<Vec<MouthCue>>,
}

/// Why a spilled object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("a stored payload is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The object key of a job's spilled payload: one render, one submission, one synthesis
/// run, one stage (nothing a client sends becomes a path).
fn payload_key(job: &Job, stage: Stage) -> Path {
    let run = job.speech.as_ref().map_or("-", |s| s.run.as_str());
    Path::from(format!(
        "payloads/{}-{}-{}-{}.json",
        job.render_id,
        job.submission,
        run,
        stage.name()
    ))
}

/// The object key of a completed result too large for its record.
fn result_key(record: &RenderRecord) -> Path {
    Path::from(format!(
        "records/{}-{}.json",
        record.render_id, record.submission
    ))
}

/// The job message for `stage`: inline if it fits in `budget`, else with the timeline and
/// cues moved to the object store and `payload_file` naming them.
pub async fn job_message(
    store: &Arc<dyn ObjectStore>,
    job: &Job,
    stage: Stage,
    budget: usize,
) -> Result<Vec<u8>, SpillError> {
    let inline = serde_json::to_vec(job)?;
    if inline.len() <= budget {
        return Ok(inline);
    }
    let mut small = job.clone();
    let payload = JobPayload {
        timeline: small
            .speech
            .as_mut()
            .map(|s| std::mem::take(&mut s.timeline)),
        mouth_cues: small.mouth_cues.take(),
    };
    let key = payload_key(job, stage);
    store
        .put(&key, serde_json::to_vec(&payload)?.into())
        .await?;
    small.payload_file = Some(key.to_string());
    tracing::debug!(bytes = inline.len(), %key, "job payload stored beside the audio");
    Ok(serde_json::to_vec(&small)?)
}

/// Puts a spilled job's timeline and cues back (nothing to do for an inline job).
pub async fn restore_job(store: &Arc<dyn ObjectStore>, job: &mut Job) -> Result<(), SpillError> {
    let Some(key) = job.payload_file.take() else {
        return Ok(());
    };
    let bytes = store.get(&Path::from(key)).await?.bytes().await?;
    let payload: JobPayload = serde_json::from_slice(&bytes)?;
    if let (Some(speech), Some(timeline)) = (job.speech.as_mut(), payload.timeline) {
        speech.timeline = timeline;
    }
    if payload.mouth_cues.is_some() {
        job.mouth_cues = payload.mouth_cues;
    }
    Ok(())
}

/// A completed record ready for the KV bucket: the result inline if the record fits in
/// `budget`, else stored beside the audio with `result_file` naming it.
pub async fn store_large_result(
    store: &Arc<dyn ObjectStore>,
    record: &mut RenderRecord,
    budget: usize,
) -> Result<(), SpillError> {
    if record.to_bytes().len() <= budget {
        return Ok(());
    }
    let Some(result) = record.result.take() else {
        return Ok(());
    };
    let key = result_key(record);
    store.put(&key, serde_json::to_vec(&result)?.into()).await?;
    record.result_file = Some(key.to_string());
    Ok(())
}

/// A completed record's result, wherever it is.
pub async fn load_result(
    store: &Arc<dyn ObjectStore>,
    record: &RenderRecord,
) -> Result<Option<RenderResult>, SpillError> {
    if let Some(result) = &record.result {
        return Ok(Some(result.clone()));
    }
    let Some(key) = &record.result_file else {
        return Ok(None);
    };
    let bytes = store.get(&Path::from(key.as_str())).await?.bytes().await?;
    Ok(Some(serde_json::from_slice(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Speech;
    use avatar_domain::{RenderSpec, TimedPhoneme, VisemeSet};

    fn job(phonemes: usize) -> Job {
        let spec = RenderSpec {
            text: "x".into(),
            voice_id: "v".into(),
            speed: 1.0,
            viseme_set: VisemeSet::Basic,
        };
        let record = RenderRecord::pending("a".repeat(64), spec, "s".into());
        let mut job = Job::from_record(&record, 1);
        job.speech = Some(Speech {
            run: "r".into(),
            audio_file: "a.ogg".into(),
            duration_ms: 1,
            timeline: PhonemeTimeline {
                sample_rate: 22050,
                total_samples: 256 * phonemes as u64,
                phonemes: (0..phonemes as u64)
                    .map(|i| TimedPhoneme {
                        phoneme: "ɪ".into(),
                        start_sample: 256 * i,
                        end_sample: 256 * (i + 1),
                    })
                    .collect(),
                ..Default::default()
            },
            text: None,
        });
        job
    }

    #[tokio::test]
    async fn large_jobs_travel_by_reference_and_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let small = job(10);
        let message = job_message(&store, &small, Stage::Lipsync, 4096)
            .await
            .unwrap();
        assert_eq!(serde_json::from_slice::<Job>(&message).unwrap(), small);

        let large = job(100_000);
        let message = job_message(&store, &large, Stage::Lipsync, 4096)
            .await
            .unwrap();
        assert!(message.len() < 4096, "{} bytes", message.len());
        let mut received: Job = serde_json::from_slice(&message).unwrap();
        assert!(received.payload_file.is_some());
        restore_job(&store, &mut received).await.unwrap();
        assert_eq!(received, large);
    }
}
