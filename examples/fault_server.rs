//! The fault-injection server of the tests (`tests/support/faults.rs`) as a program, for
//! `scripts/fault_figures.sh` and for trying a fault by hand:
//!
//! ```sh
//! cargo run --example fault_server -- endless      # prints its base URL, serves until killed
//! agent run answer --base-url http://127.0.0.1:PORT/v1 --model m ...
//! ```
//!
//! Faults: `huge-retry-after`, `endless`, `endless-error`, `junk` (50 MB), `trickle`, `reset`,
//! `event-stream`.

#[path = "../tests/support/faults.rs"]
mod faults;

use std::io::Write as _;
use std::time::Duration;

use faults::{Fault, FaultServer};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let fault = match name.as_str() {
        "huge-retry-after" => Fault::HugeRetryAfter,
        "endless" => Fault::EndlessBody,
        "endless-error" => Fault::EndlessError,
        "junk" => Fault::JunkBody { bytes: 50_000_000 },
        "trickle" => Fault::Trickle {
            bytes: 600,
            every: Duration::from_millis(200),
        },
        "reset" => Fault::ResetMidBody,
        "event-stream" => Fault::EventStream {
            content: r#"{"answer": "streamed anyway"}"#.into(),
        },
        other => {
            eprintln!(
                "unknown fault `{other}`; one of: huge-retry-after, endless, endless-error, junk, trickle, reset, event-stream"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let server = FaultServer::start(fault).await;
    println!("{}", server.base_url);
    let _ = std::io::stdout().flush();
    // Serves until killed (the accept loop itself stops after its bound of connections).
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
