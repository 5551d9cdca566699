//! The `scopegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use scopegate::config::{LogFormat, Settings};

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "OAuth 2.0 bearer-token authorization gateway"
)]
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
    /// Explain offline what a policy decides for one request.
    Explain {
        /// Policy file.
        #[arg(short, long)]
        policy: PathBuf,
        /// HTTP method, e.g. GET.
        method: String,
        /// Request path, e.g. /timesheets/7.
        path: String,
        /// An access token: its claims are decoded WITHOUT verifying the signature.
        #[arg(long, conflicts_with = "scopes")]
        token: Option<String>,
        /// Scopes of the caller, space-separated.
        #[arg(long)]
        scopes: Option<String>,
    },
    /// Run the decision tests (`*.test.yaml`) in the given files or folders.
    Test {
        /// Test files, or folders searched for `*.test.yaml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the whole story on loopback: a development authorization server (for demos and
    /// tests only, never production), a demo Timesheets backend and the gateway in front.
    ///
    /// Without a command, starts all three (authorization server 127.0.0.1:9400, backend
    /// 127.0.0.1:9401, gateway 127.0.0.1:8080, admin 127.0.0.1:9090) with
    /// policies/timesheets.yaml from the working directory if it exists (edits reload live),
    /// else a built-in copy, and prints what to try. The development authorization server's
    /// users, passwords and client secret are public: for demos and tests only.
    #[cfg(feature = "demo")]
    Demo(scopegate::demo::DemoArgs),
}

/// mimalloc rather than glibc's malloc: the request path allocates small, short-lived
/// objects (header values, pingora's per-request state), and mimalloc serves those with
/// less CPU and without the fragmentation glibc showed after bursts of new tokens
/// (benches/README.md, "Findings").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            let settings = load_settings(&config)?;
            init_logging(settings.log_format);
            let server =
                scopegate::server::build(&settings, scopegate::server::RunOptions { upgrade })
                    .context("cannot start")?;
            tracing::info!(listen = %settings.listen, admin = %settings.admin_listen, upstream = %settings.upstream.url, "scopegate starting");
            server.run_forever();
        }
        Command::Check { config, policy } => Ok(check(&config, policy)),
        Command::Explain {
            policy,
            method,
            path,
            token,
            scopes,
        } => explain(&policy, &method, &path, token.as_deref(), scopes.as_deref()),
        Command::Test { paths } => decision_tests(&paths),
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            // Only the servers log: `demo login` keeps stdout for the token alone.
            if args.serves() {
                init_logging(LogFormat::Text);
            }
            scopegate::demo::execute(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_settings(path: &std::path::Path) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid configuration\n{}", lines.join("\n"))
    })
}

fn check(config: &std::path::Path, policy: Option<PathBuf>) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    // The same compile step `run` takes: a file `check` accepts, `run` accepts too.
    let policy_path = match Settings::load(config) {
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
            policy_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
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
        .with_env_filter(scopegate::ops::log_filter::cap_pingora(filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn explain(
    policy: &std::path::Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    scopes: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let compiled = scopegate::policy::load(policy).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid policy\n{}", lines.join("\n"))
    })?;
    let present: Option<Vec<String>> = match (token, scopes) {
        (Some(token), _) => {
            let claims: serde_json::Map<String, serde_json::Value> =
                jsonwebtoken::dangerous::insecure_decode_claims(token)
                    .context("cannot decode the token's claims")?;
            println!("token:           claims decoded WITHOUT signature verification");
            Some(scopegate::auth::identity::collect_scopes(
                &claims,
                &scopegate::auth::identity::DEFAULT_SCOPE_CLAIMS,
            ))
        }
        (None, Some(s)) => Some(s.split_ascii_whitespace().map(str::to_owned).collect()),
        (None, None) => None,
    };
    let e = scopegate::policy::explain::explain(
        &compiled,
        &method.to_ascii_uppercase(),
        path,
        present.as_deref(),
    );
    println!("{e}");
    Ok(if e.outcome == scopegate::decision::Outcome::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn decision_tests(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        anyhow::bail!("no *.test.yaml files found");
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let report = scopegate::policy::cases::run_case_file(file);
        for f in &report.failures {
            println!("FAIL {f}");
        }
        println!(
            "{}: {} passed, {} failed",
            file.display(),
            report.passed,
            report.failures.len()
        );
        passed += report.passed;
        failed += report.failures.len();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
