//! The `patchbay` binary: `serve` runs the host, `run` calls a connector component from a file,
//! `bench` measures the fresh-sandbox call path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use patchbay::capability::credentials::Secrets;
use patchbay::capability::http::{Cidr, NetworkPolicy};
use patchbay::capability::log::{MemoryOperationLog, TracingOperationLog};
use patchbay::runtime::calls;
use patchbay::{Installation, Limits, Runtime, RuntimeConfig, Scope, Services};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "patchbay", version, about = "Multi-tenant host for WebAssembly connector components")]
struct Cli {
    /// Log as JSON instead of human-readable lines.
    #[arg(long, global = true, env = "PATCHBAY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "PATCHBAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the database, keys and compiled-component cache.
        #[arg(long, env = "PATCHBAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Call one operation of a connector component from a file, print the result and its log.
    Run(RunArgs),
    /// Benchmark fresh-sandbox calls of a component's `health-check` export.
    Bench {
        /// The component (e.g. the trivial test component).
        component: PathBuf,
        /// Calls per thread count.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Path to the component (`.wasm`).
    component: PathBuf,
    /// Any exported function: `health-check`, `send`, `read-batch`, ...; qualify it with its
    /// interface (`notifications.send`) when two interfaces export the same name. An unknown
    /// name lists the available ones.
    operation: String,
    /// JSON object of the function's parameters, keyed by parameter name (see docs/json-mapping.md),
    /// e.g. `{"notification": {...}}`.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Configuration value `KEY=VALUE` (repeatable).
    #[arg(long = "config", value_parser = parse_kv)]
    config: Vec<(String, String)>,
    /// Secret `NAME=VALUE` (repeatable). Prefer `NAME=@file` or `NAME=env:VAR` to keep values out
    /// of shell history.
    #[arg(long = "secret", value_parser = parse_kv)]
    secrets: Vec<(String, String)>,
    /// Allowed egress destination pattern (repeatable), e.g. `https://api.stripe.com`.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Normally blocked network to allow anyway (repeatable), e.g. `127.0.0.1/32`.
    #[arg(long = "allow-network")]
    allow_networks: Vec<String>,
    /// Call deadline in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Memory cap in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// Fuel budget.
    #[arg(long)]
    fuel: Option<u64>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    if k.is_empty() {
        return Err("empty key".into());
    }
    Ok((k.to_string(), v.to_string()))
}

fn resolve_secret(v: &str) -> anyhow::Result<String> {
    if let Some(path) = v.strip_prefix('@') {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("reading secret file {path}"))?
            .trim_end()
            .to_string());
    }
    if let Some(var) = v.strip_prefix("env:") {
        return std::env::var(var).with_context(|| format!("secret environment variable {var} is not set"));
    }
    Ok(v.to_string())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs the command; returns the process exit code.
fn real_main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { listen, data_dir } => rt.block_on(serve(listen, data_dir)).map(|()| 0),
        Command::Run(args) => rt.block_on(run(args)),
        Command::Bench { component, iterations } => {
            let wasm = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
            let report = rt.block_on(patchbay::bench::run(&wasm, iterations))?;
            println!("{report}");
            Ok(0)
        }
    }
}

async fn serve(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let config = RuntimeConfig { cache_dir: Some(data_dir.join("cache")), ..RuntimeConfig::default() };
    let runtime = Runtime::new(config, Services { oplog: Arc::new(TracingOperationLog), ..Services::in_memory() })?;
    tracing::info!(pooling = runtime.pooling(), data_dir = %data_dir.display(), "runtime ready");
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, patchbay::api::router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await?;
    Ok(())
}

/// Prints the JSON of the function's result. Exit code 0 when the connector returned `ok`, 2 when
/// it returned its own error (`err`).
async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let wasm = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
    let networks = args
        .allow_networks
        .iter()
        .map(|n| n.parse::<Cidr>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let log = Arc::new(MemoryOperationLog::new(100_000));

    let config = RuntimeConfig {
        network: NetworkPolicy::allowing(networks),
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config, Services { oplog: log.clone(), ..Services::in_memory() })?;
    let component = runtime.load_async(wasm).await?;
    let mut secrets = Secrets::new();
    for (k, v) in &args.secrets {
        secrets.insert(k.clone(), resolve_secret(v)?);
    }
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        memory_bytes: args.memory_mib * 1024 * 1024,
        fuel: args.fuel,
        ..Limits::default()
    };
    let config: BTreeMap<String, String> = args.config.into_iter().collect();
    let scope = Scope::new("local", "cli");
    let inst = Installation::new(
        scope.clone(),
        args.component.display().to_string(),
        config,
        secrets,
        &args.allow_hosts,
        limits,
    )?;
    let input: serde_json::Value = serde_json::from_str(&args.input).context("--input is not valid JSON")?;
    let report = calls::invoke_json(&runtime, &component, &inst, &args.operation, input).await?;
    for e in log.entries(&scope) {
        let fields = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        eprintln!("[{:>5}] {:<6} {} {}", e.level.as_str(), format!("{:?}", e.source).to_lowercase(), e.message, fields);
    }
    eprintln!(
        "-- {:.3} ms, fuel {}, {} http request(s)",
        report.duration.as_secs_f64() * 1000.0,
        report.fuel_consumed.map(|f| f.to_string()).unwrap_or_else(|| "n/a".into()),
        report.http_requests
    );
    match report.outcome {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if v.get("err").is_some() { 2 } else { 0 })
        }
        Err(e) => bail!("{e}"),
    }
}
