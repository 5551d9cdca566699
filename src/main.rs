//! The `scopegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use scopegate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "scopegate", version, about = "OAuth 2.0 bearer-token authorization gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Gateway configuration file.
        #[arg(short, long, default_value = "scopegate.yaml")]
        config: PathBuf,
        /// Take the listening sockets over from a running scopegate, then send the old one
        /// SIGQUIT (zero-downtime upgrade; see README, Operations).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Check a configuration and its policy; print every problem with its location.
    Check {
        /// Gateway configuration file.
        #[arg(short, long, default_value = "scopegate.yaml")]
        config: PathBuf,
        /// Check this policy instead of the one the configuration names.
        #[arg(short, long)]
        policy: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    scopegate::install_crypto_provider();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scopegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, upgrade } => {
            let config = load_config(&config)?;
            init_logging(config.log_format);
            let server = scopegate::server::build(
                &config,
                scopegate::server::RunOptions { upgrade },
            )
            .context("cannot start")?;
            tracing::info!(listen = %config.listen, admin = %config.admin_listen, upstream = %config.upstream, "scopegate starting");
            server.run_forever();
        }
        Command::Check { config, policy } => Ok(check(&config, policy)),
    }
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid configuration\n{}", lines.join("\n"))
    })
}

fn check(config: &std::path::Path, policy: Option<PathBuf>) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let policy_path = match Config::load(config) {
        Ok(c) => Some(policy.unwrap_or(c.policy)),
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            policy
        }
    };
    let mut routes = None;
    if let Some(p) = &policy_path {
        match scopegate::policy::load(p) {
            Ok(policy) => routes = Some(policy.routes().len()),
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        println!(
            "ok: {} and {} ({} routes)",
            config.display(),
            policy_path.map(|p| p.display().to_string()).unwrap_or_default(),
            routes.unwrap_or(0)
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!("{} problem(s) found", problems.len());
        ExitCode::FAILURE
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
