//! `mock-llm`: an OpenAI-compatible Chat Completions mock that follows the reply script of the
//! reference `mock_llm.py` byte for byte (same chunks, bodies, statuses and timing rules), so
//! the integration tests and the benchmarks can drive chatkit-rs without a real model.
//!
//! * [`cli`]: the command line (the reference's options, plus `--workers` and
//!   `--http-versions`).
//! * [`script`]: which reply a request gets (the reply script).
//! * [`completion`]: the bytes of a reply: SSE chunks or one `chat.completion` object.
//! * [`hosted`]: the hosted tools of the Responses API (image generation, web and file
//!   search, code interpreter), with small real PNGs.
//! * [`responses`], [`transcription`]: extensions beyond the reference, `POST /v1/responses`
//!   and `POST /v1/audio/transcriptions` (the README describes every reply byte).
//! * [`server`]: routes, the request log, and aiohttp's statuses and error pages.
//! * [`json`]: JSON on serde_json, written as Python's `json.dumps` writes it.
//! * [`pytext`]: Python's `str`/`re` semantics the script depends on.
//!
//! On start it prints exactly one line, `listening on http://ADDR`, so a harness started with
//! `--port 0` can read the port.

mod cli;
mod completion;
mod hosted;
mod ids;
mod json;
mod pytext;
mod responses;
mod script;
mod server;
mod transcription;
mod unicode_tables;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = cli::Config::parse(); // a usage error exits 2, --help 0
    if !cli::is_loopback_host(&cfg.host) {
        eprintln!("mock-llm binds to loopback addresses only");
        return ExitCode::FAILURE;
    }
    match actix_web::rt::System::new().block_on(server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-llm: {err}");
            ExitCode::FAILURE
        }
    }
}
