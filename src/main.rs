/// mimalloc instead of glibc's malloc: malloc/free and their consolidation were about a sixth
/// of the server's CPU under load; with mimalloc the server spends 12-25% less CPU per turn
/// (benches/README.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use chatkit_server::cli::{Cli, Command};
use chatkit_server::http::panics;
use chatkit_server::settings::Settings;
use chatkit_server::startup::StartError;
use chatkit_server::{auth, startup, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            for warning in &settings.warnings {
                eprintln!("warning: {warning}");
            }
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Command::DevToken(args) => {
            let extra = args.extra_claims(&settings.auth.admin_claim, &settings.auth.admin_value);
            match auth::mint_dev_token_with(&settings.auth, &args.sub, args.ttl, extra) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Migrate => {
            let telemetry = telemetry::init(&settings.log, &settings.telemetry);
            let code = run(async move {
                let database = startup::Database::open(&settings).await?;
                database.close();
                Ok(())
            });
            telemetry.shutdown();
            code
        }
        Command::Serve => {
            let telemetry = telemetry::init(&settings.log, &settings.telemetry);
            panics::install_hook();
            let code = run(startup::serve(settings));
            // The spans still queued go to the collector (bounded in time).
            telemetry.shutdown();
            code
        }
    }
}

fn run(fut: impl std::future::Future<Output = Result<(), StartError>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, on stderr (where the log goes too).
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
