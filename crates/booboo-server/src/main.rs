use std::process::ExitCode;

fn main() -> ExitCode {
    // The server logs sqlx's slow-statement warnings for its operator; a
    // one-shot command (backup, export, user …) prints its answer or one
    // line of error, not a busy machine's timings.
    let serving = std::env::args().skip(1).any(|a| a == "serve");
    let default = if serving { "info,sqlx=warn,tower_http=warn" } else { "info,sqlx=error,tower_http=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOBOO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match booboo_server::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("booboo: {reason}");
            ExitCode::FAILURE
        }
    }
}
