//! The `scopegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use scopegate::config::{LogFormat, Settings};
use scopegate::ground::path::PathRules;

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
        /// Gateway configuration file. Default: scopegate.yaml, unless --policy is given
        /// alone (then only the policy is checked).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Check this policy instead of the one the configuration names.
        #[arg(short, long)]
        policy: Option<PathBuf>,
        /// Also compare the policy with this OpenAPI document: operations no route covers,
        /// routes that match no operation.
        #[arg(long, value_name = "FILE")]
        openapi: Option<PathBuf>,
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
        /// Claims of the caller as a JSON object, e.g. '{"acr":"mfa","auth_time":1767225600}'
        /// (with --scopes, those become its `scope` claim).
        #[arg(long, conflicts_with = "token")]
        claims: Option<String>,
        /// Read the path as the gateway with this configuration does (its `paths` options).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the decision tests (`*.test.yaml`) in the given files or folders.
    Test {
        /// Test files, or folders searched for `*.test.yaml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Run the cases against this policy instead of the one each file names (e.g. one
        /// drawn from OpenAPI, to show it decides the same).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Read paths as the gateway with this configuration does (its `paths` options).
        #[arg(long)]
        config: Option<PathBuf>,
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

/// `scopegate policy …`.
#[derive(Subcommand)]
enum PolicyCommand {
    /// Write a policy drawn from an OpenAPI 3.0 document: a route per operation (id from
    /// operationId), scopes from its OAuth 2.0 `security:` (several items: any_of), and
    /// claims, authentication and dry_run from its `x-scopegate` extension.
    FromOpenapi {
        /// The OpenAPI document (YAML or JSON).
        openapi: PathBuf,
        /// Write the policy here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
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
            server.run();
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            policy,
            openapi,
        } => Ok(check(config, policy, openapi)),
        Command::Explain {
            policy,
            method,
            path,
            token,
            scopes,
            claims,
            config,
        } => explain(
            &policy,
            &path_rules(config.as_deref())?,
            &method,
            &path,
            Caller {
                token: token.as_deref(),
                scopes: scopes.as_deref(),
                claims: claims.as_deref(),
            },
        ),
        Command::Policy(PolicyCommand::FromOpenapi { openapi, output }) => {
            from_openapi(&openapi, output.as_deref())
        }
        Command::Test {
            paths,
            policy,
            config,
        } => decision_tests(&paths, policy.as_deref(), &path_rules(config.as_deref())?),
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

fn check(config: Option<PathBuf>, policy: Option<PathBuf>, openapi: Option<PathBuf>) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let config = match (config, &policy) {
        (Some(c), _) => Some(c),
        (None, Some(_)) => None,
        (None, None) => Some(PathBuf::from("scopegate.yaml")),
    };
    // The same compile step `run` takes: a file `check` accepts, `run` accepts too.
    let policy_path = match &config {
        None => policy,
        Some(config) => match Settings::load(config) {
            Ok(c) => Some(policy.unwrap_or(c.policy)),
            Err(errors) => {
                problems.extend(errors.iter().map(ToString::to_string));
                policy
            }
        },
    };
    let mut routes = None;
    if let Some(p) = &policy_path {
        match scopegate::policy::load(p) {
            Ok(policy) => {
                routes = Some(policy.routes().len());
                if let Some(doc) = &openapi {
                    match scopegate::policy::openapi::read(doc) {
                        Ok(doc) => {
                            problems.extend(scopegate::policy::openapi::compare(&policy, &doc))
                        }
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        let mut checked: Vec<String> = config.iter().map(|c| c.display().to_string()).collect();
        checked.extend(policy_path.map(|p| p.display().to_string()));
        checked.extend(openapi.map(|o| o.display().to_string()));
        println!(
            "ok: {} ({} routes)",
            checked.join(" and "),
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

/// Who `explain` decides for.
struct Caller<'a> {
    token: Option<&'a str>,
    scopes: Option<&'a str>,
    claims: Option<&'a str>,
}

/// The path readings of the gateway configured by `config`; the defaults without one.
fn path_rules(config: Option<&std::path::Path>) -> anyhow::Result<PathRules> {
    Ok(match config {
        Some(config) => load_settings(config)?.paths,
        None => PathRules::default(),
    })
}

fn explain(
    policy: &std::path::Path,
    rules: &PathRules,
    method: &str,
    path: &str,
    caller: Caller,
) -> anyhow::Result<ExitCode> {
    use scopegate::auth::identity::Identity;
    let compiled = scopegate::policy::load(policy).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid policy\n{}", lines.join("\n"))
    })?;
    type Claims = serde_json::Map<String, serde_json::Value>;
    let identity = match (caller.token, caller.claims, caller.scopes) {
        (Some(token), _, _) => {
            let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
                .context("cannot decode the token's claims")?;
            println!("token:           claims decoded WITHOUT signature verification");
            Some(Identity::offline_from_claims(&claims))
        }
        (None, Some(json), scopes) => {
            let mut claims: Claims =
                serde_json::from_str(json).context("--claims is not a JSON object")?;
            if let Some(scopes) = scopes {
                claims.insert("scope".into(), scopes.into());
            }
            Some(Identity::offline_from_claims(&claims))
        }
        (None, None, Some(s)) => {
            let scopes: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
            Some(Ok(Identity::offline(&scopes)))
        }
        (None, None, None) => None,
    };
    let e = scopegate::decision::explain::explain_for(
        &compiled,
        rules,
        &method.to_ascii_uppercase(),
        path,
        identity,
    );
    println!("{e}");
    Ok(if e.outcome == scopegate::decision::Outcome::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn from_openapi(
    openapi: &std::path::Path,
    output: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let doc = scopegate::policy::openapi::read(openapi).map_err(anyhow::Error::msg)?;
    let source = openapi
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let yaml = match scopegate::policy::openapi::policy_yaml(&doc, &source) {
        Ok(yaml) => yaml,
        Err(problems) => {
            for p in &problems {
                println!("{}: {p}", openapi.display());
            }
            println!("{} problem(s) found", problems.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    // What is written must load: a document the compiler refuses is reported here, not at
    // the gateway's next reload.
    if let Err(errors) = scopegate::policy::compile(yaml.as_bytes(), "(generated policy)") {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the generated policy does not compile\n{}",
            lines.join("\n")
        );
    }
    match output {
        Some(path) => std::fs::write(path, yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn decision_tests(
    paths: &[PathBuf],
    policy: Option<&std::path::Path>,
    rules: &PathRules,
) -> anyhow::Result<ExitCode> {
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
        let report = scopegate::decision::cases::run_case_file_against(file, policy, rules);
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
