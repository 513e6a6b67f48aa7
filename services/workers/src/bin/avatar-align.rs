//! `avatar-align`: the align stage worker, first for lip-sync of a recording (see
//! [`avatar_workers::align`]).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    avatar_workers::align::main().await
}
