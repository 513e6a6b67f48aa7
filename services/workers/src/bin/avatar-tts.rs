//! `avatar-tts`: the tts stage worker (see [`avatar_workers::tts`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    avatar_workers::tts::main().await
}
