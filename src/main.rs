//! The `agent` binary: parse arguments, set up logging, run, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = agent::cli::Cli::parse();
    agent::logging::init(cli.global.verbose, cli.global.quiet);
    // Lists of problems read better unwrapped; miette honours NO_COLOR on its own.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(agent::Status::Usage.code());
        }
    };
    match runtime.block_on(agent::cli::run(cli)) {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            let code = error.exit_code();
            // The report may quote a server's message; never let it carry the key.
            let report = format!("{:?}", miette::Report::new(error));
            // A quoted source line can be a whole minified file: keep each line readable.
            let report = agent::text::clip_lines(&report, 400);
            eprintln!("{}", agent::logging::scrub(&report));
            ExitCode::from(code.code())
        }
    }
}
