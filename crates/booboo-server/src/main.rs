use std::process::ExitCode;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOBOO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
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
