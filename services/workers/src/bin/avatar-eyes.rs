//! `avatar-eyes`: the last stage worker (see [`avatar_workers::eyes`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    avatar_workers::main_of(
        "avatar-eyes",
        avatar_workers::config::EYES_METRICS_PORT,
        avatar_workers::eyes::EyesStage,
    )
    .await
}
