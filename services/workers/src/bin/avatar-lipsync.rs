//! `avatar-lipsync`: the lipsync stage worker (see [`avatar_workers::lipsync`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    avatar_workers::main_of(
        "avatar-lipsync",
        avatar_workers::config::LIPSYNC_METRICS_PORT,
        avatar_workers::lipsync::LipsyncStage,
    )
    .await
}
