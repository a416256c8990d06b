//! The `patchbay` binary: `serve` runs the host; `tenant`, `key`, `connector`, `install`, `invoke`
//! and `logs` drive a running host over its admin API; `keys rotate` re-encrypts credentials;
//! `run` calls a connector component from a file; `bench` measures the fresh-sandbox call path;
//! `wit`, `connector pack` and `connector check` help connector authors offline.

mod author;
mod client;
mod scaffold;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use patchbay_core::Scope;
use patchbay_runtime::calls;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::capability::http::{Cidr, NetworkPolicy};
use patchbay_runtime::capability::log::MemoryOperationLog;
use patchbay_runtime::{Installation, Limits, RuntimeConfig, Services};
use patchbay_services::Host;
use patchbay_services::config::{Overrides, Settings};
use std::os::unix::fs::OpenOptionsExt;
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

/// Where the API is and who is calling (commands that talk to a running host).
#[derive(clap::Args, Clone)]
struct Remote {
    /// Base URL of the host.
    #[arg(long, global = true, env = "PATCHBAY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API token: the operator token or a tenant API key.
    #[arg(long, global = true, env = "PATCHBAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: admin API, catalog and runtime. Zero configuration needed.
    Serve(ServeArgs),
    /// Manage tenants (operator).
    Tenant {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage a tenant's API keys (operator).
    Key {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Upload, list, inspect and sign connectors.
    Connector {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Install a connector for the calling tenant.
    Install {
        #[command(flatten)]
        remote: Remote,
        /// Connector id.
        connector: String,
        /// Installation name (unique within the tenant).
        #[arg(long)]
        name: String,
        /// Version to pin (default: latest).
        #[arg(long)]
        version: Option<String>,
        /// API version (default: the connector's default).
        #[arg(long)]
        api_version: Option<String>,
        /// Configuration value `KEY=VALUE` (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        config: Vec<(String, String)>,
        /// Credential `NAME=VALUE` (repeatable); `NAME=@file` and `NAME=env:VAR` keep values out of shell history.
        #[arg(long = "credential", value_parser = parse_kv)]
        credentials: Vec<(String, String)>,
    },
    /// Call an operation of an installation with JSON input.
    Invoke {
        #[command(flatten)]
        remote: Remote,
        /// Installation id.
        installation: String,
        /// Operation: a function the connector's world exports, e.g. `send`, `health-check`.
        operation: String,
        /// JSON input: text, `@file`, or `-` for stdin.
        #[arg(long, default_value = "{}")]
        input: String,
    },
    /// Print an installation's operation log.
    Logs {
        #[command(flatten)]
        remote: Remote,
        /// Installation id.
        installation: String,
        /// Keep printing new entries.
        #[arg(long, short)]
        follow: bool,
        /// Minimum level: trace, debug, info, warn, error.
        #[arg(long)]
        level: Option<String>,
        /// RFC 3339 time, unix ms, or an age like `15m`.
        #[arg(long)]
        since: Option<String>,
    },
    /// Data sync: start runs and follow their progress, list runs, cancel and resume them.
    Sync {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Serve a sample data source to try syncs with: generated records as paginated JSON (REST)
    /// and as a CSV file.
    SampleSource {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Records to serve.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Approximate size of each record's JSON, in bytes.
        #[arg(long, default_value_t = 1024)]
        record_bytes: usize,
    },
    /// Credential master keys (runs against the data directory, while the host keeps serving).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Call one operation of a connector component from a file, print the result and its log.
    Run(RunArgs),
    /// Write the host's WIT package (the interfaces connectors are built against) to a directory.
    Wit {
        /// Directory to write the `.wit` files to (created when missing).
        #[arg(default_value = "wit")]
        dir: PathBuf,
    },
    /// Benchmark fresh-sandbox calls of any operation of a component (default `health-check`),
    /// with the input, configuration and secrets `run` takes, beside bare wasmtime.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [env: PATCHBAY_LISTEN; default 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the database, keys and compiled-component cache [env: PATCHBAY_DATA_DIR; default ./patchbay-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Settings file [env: PATCHBAY_CONFIG; default ./patchbay.toml when present].
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Start a sync run of an installation's entity.
    Run {
        /// Installation id.
        installation: String,
        /// Entity name (see `patchbay sync entities`).
        entity: String,
        /// `full` (from the beginning) or `incremental` (from the last successful run).
        #[arg(long, default_value = "full")]
        mode: String,
        /// Export instead of import: write these records (`<installation>/<entity>`) to the installation.
        #[arg(long, value_name = "INSTALLATION/ENTITY")]
        export_from: Option<String>,
        /// Show a progress bar until the run ends; exit 0 only if it succeeded.
        #[arg(long, short)]
        follow: bool,
    },
    /// Show a run and its progress.
    Show {
        /// Run id.
        run: String,
        /// Show a progress bar until the run ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// List runs, newest first.
    Ls {
        /// Only this installation's runs.
        #[arg(long)]
        installation: Option<String>,
        #[command(flatten)]
        paging: client::Paging,
    },
    /// Cancel a queued or running run (a running one stops after its current batch).
    Cancel {
        /// Run id.
        run: String,
    },
    /// Resume a failed or cancelled run from its last committed batch.
    Resume {
        /// Run id.
        run: String,
        /// Show a progress bar until the run ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// List the entities an installation's connector offers.
    Entities {
        /// Installation id.
        installation: String,
    },
    /// Page through an entity's records in change order.
    Records {
        /// Installation id.
        installation: String,
        /// Entity name.
        entity: String,
        /// Changes after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// Page size (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id: lower-case letters, digits and `-`.
        id: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants, by id.
    Ls {
        #[command(flatten)]
        paging: client::Paging,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key for a tenant; prints the token once.
    Create {
        /// Tenant id.
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated scopes: view, manage, credentials (default: all).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// Upload a component (operator: public catalog; tenant key: private). A compile that outlasts
    /// the upload goes on in the host; push waits for it and shows its progress.
    Push {
        /// The `.wasm` component.
        file: PathBuf,
        /// Return as soon as the host stored the component, without waiting for its compile.
        #[arg(long)]
        no_wait: bool,
    },
    /// List the catalog, by id.
    Ls {
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        paging: client::Paging,
    },
    /// Show a connector, or one version with its operations.
    Show { id: String, version: Option<String> },
    /// Generate an ed25519 publisher key pair (local).
    Keygen {
        /// Where to write the private key (PKCS#8, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a connector project: manifest, the host's WIT, every export stubbed, toolchain pins
    /// and a README (local).
    New {
        /// The connector id (also the directory, unless --dir).
        name: String,
        /// The hub world: payment-gateway, shipping-carrier, communication-channel,
        /// notification-provider, storage-provider, data-sync or webhook-endpoint.
        #[arg(long)]
        world: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: author::Lang,
        /// Where to create it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a connector project (Rust, Python or JavaScript, read from its files) with its
    /// language's toolchain and embed its connector.toml (local).
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Output file (default: `<dir>/<id>.wasm`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Embed (or replace) the manifest of any component, whatever built it (local).
    Pack {
        /// The `.wasm` component.
        file: PathBuf,
        /// The manifest (TOML); validated before it is embedded.
        #[arg(long, default_value = "connector.toml")]
        manifest: PathBuf,
        /// Output file (default: overwrite FILE).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a component as an upload would — manifest, imports, exports, linking — and print its
    /// operations, size and imports, with hints for known mistakes (local; exit 1 on a problem).
    Check {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Sign a component with a publisher key (local).
    Sign {
        file: PathBuf,
        /// Private key written by `connector keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Output file (default: overwrite FILE).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every credential under the active master key. With a key file, a new key is
    /// generated first; with PATCHBAY_MASTER_KEY, put the new key first in the list.
    Rotate {
        /// Data directory of the host [env: PATCHBAY_DATA_DIR].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Path to the component (`.wasm`).
    component: PathBuf,
    /// An operation — a function of `lifecycle` or of the connector's hub interface:
    /// `health-check`, `send`, `read-batch`, ...; qualify it with its interface
    /// (`notifications.send`) when two interfaces export the same name. An unknown name lists
    /// the available ones.
    operation: String,
    #[command(flatten)]
    call: CallArgs,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The component (`.wasm`), e.g. a reference connector.
    component: PathBuf,
    /// The operation to call, as `patchbay run` names it.
    #[arg(default_value = "health-check")]
    operation: String,
    /// Calls per thread count.
    #[arg(long, default_value_t = 20_000)]
    iterations: usize,
    #[command(flatten)]
    call: CallArgs,
}

/// What a call from the command line runs with: its input and an installation's settings.
#[derive(clap::Args)]
struct CallArgs {
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
    /// Test mode: answer the call's HTTP requests from these recorded exchanges (a JSON array of
    /// fixtures), never from the network.
    #[arg(long)]
    fixtures: Option<PathBuf>,
}

impl CallArgs {
    /// The input, the installation and the network policy these arguments describe for `wasm`.
    fn target(
        self,
        component: &std::path::Path,
        wasm: &[u8],
    ) -> anyhow::Result<(serde_json::Value, Installation, NetworkPolicy)> {
        let networks = self
            .allow_networks
            .iter()
            .map(|n| n.parse::<Cidr>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // The guest reads the secrets its manifest declares `guest_readable`, as on a host.
        let readable: Vec<String> =
            patchbay_registry::inspect(wasm, &patchbay_registry::PackageLimits { max_bytes: usize::MAX })
                .map(|p| p.manifest.credentials.into_iter().filter(|f| f.guest_readable).map(|f| f.key).collect())
                .unwrap_or_default();
        let mut secrets = Secrets::new();
        for (k, v) in &self.secrets {
            secrets.insert(k.clone(), resolve_secret(v)?);
        }
        let limits = Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mib * 1024 * 1024,
            fuel: self.fuel,
            ..Limits::default()
        };
        let config: BTreeMap<String, String> = self.config.into_iter().collect();
        let inst = Installation::new(
            Scope::new("local", "cli"),
            component.display().to_string(),
            config,
            secrets,
            &self.allow_hosts,
            limits,
        )?
        .with_guest_readable(readable);
        let inst = match &self.fixtures {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let fixtures = patchbay_runtime::capability::http::fixtures::Fixtures::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                inst.with_fixtures(Some(Arc::new(fixtures)))
            }
            None => inst,
        };
        let input: serde_json::Value = serde_json::from_str(&self.input).context("--input is not valid JSON")?;
        Ok((input, inst, NetworkPolicy::allowing(networks)))
    }
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
        Command::Serve(args) => rt.block_on(serve(args)).map(|()| 0),
        Command::SampleSource { listen, records, record_bytes } => {
            rt.block_on(sample_source(&listen, records, record_bytes))
        }
        Command::Run(args) => rt.block_on(run(args)),
        Command::Bench(BenchArgs { component, operation, iterations, call }) => {
            let wasm = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
            let (input, installation, network) = call.target(&component, &wasm)?;
            let target = patchbay_dev::bench::Target { operation, input, installation, network };
            let report = rt.block_on(patchbay_dev::bench::run_target(&wasm, target, iterations))?;
            println!("{report}");
            Ok(0)
        }
        Command::Keys { command: KeysCommand::Rotate { data_dir, config } } => rt.block_on(rotate(data_dir, config)),
        Command::Connector { command: ConnectorCommand::Keygen { out }, .. } => keygen(&out),
        Command::Connector { command: ConnectorCommand::Sign { file, key, out }, .. } => sign(&file, &key, out),
        Command::Connector { command: ConnectorCommand::Pack { file, manifest, out }, .. } => {
            author::pack(&file, &manifest, out)
        }
        Command::Connector { command: ConnectorCommand::Check { file }, .. } => rt.block_on(author::check(&file)),
        Command::Connector { command: ConnectorCommand::Build { dir, out }, .. } => author::build(&dir, out),
        Command::Connector { command: ConnectorCommand::New { name, world, lang, dir }, .. } => {
            scaffold::new(&name, &world, lang, dir.as_deref())
        }
        Command::Wit { dir } => author::wit(&dir),
        other => rt.block_on(remote(other)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(
        Overrides { config: args.config, listen: args.listen, data_dir: args.data_dir },
        &patchbay_services::config::ProcessEnv,
    )?;
    let mut settings = settings;
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    settings.listen = addr;
    let (host, startup) = Host::open(&settings).await?;
    host.spawn_workers(&settings, &startup.database);
    tracing::info!(
        pooling = host.status.pooling(),
        data_dir = %settings.data_dir.display(),
        database = %patchbay_services::config::redact_url(&startup.database),
        "host ready"
    );
    println!("patchbay {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    if let Some(token) = &startup.new_operator_token {
        println!("operator token (shown once, stored hashed): {token}");
    }
    if let Some(k) = &startup.key_file {
        println!("credential master key: {}", k.display());
    }
    println!("ready (Ctrl-C stops)");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let shutdown = host.clone();
    axum::serve(listener, patchbay_api::router(host))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await?;
    shutdown.flush().await;
    Ok(())
}

async fn rotate(data_dir: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<i32> {
    let settings =
        Settings::load(Overrides { config, listen: None, data_dir }, &patchbay_services::config::ProcessEnv)?;
    let rotated = patchbay_services::rotation::rotate_master_key(&settings).await?;
    if let Some(id) = &rotated.new_key {
        println!("new master key {id} is active");
    }
    println!("re-encrypted {} credential field(s) under key {}", rotated.report.reencrypted, rotated.active_key);
    Ok(0)
}

fn keygen(out: &std::path::Path) -> anyhow::Result<i32> {
    let generated = patchbay_registry::generate_keypair().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    use std::io::Write;
    f.write_all(&generated.pkcs8)?;
    println!("private key: {}", out.display());
    println!("trusted key (for PATCHBAY_TRUSTED_KEYS): {}", generated.trusted_entry());
    Ok(0)
}

fn sign(file: &std::path::Path, key: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<i32> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let pkcs8 = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let (pair, key_id) = patchbay_registry::keypair_from_pkcs8(&pkcs8)
        .map_err(|e| anyhow::anyhow!("{} is not an ed25519 PKCS#8 key: {e}", key.display()))?;
    let signed = patchbay_registry::sign(&wasm, &pair, &key_id);
    let out = out.unwrap_or_else(|| file.to_path_buf());
    std::fs::write(&out, signed).with_context(|| format!("writing {}", out.display()))?;
    println!("signed {} with key {key_id}", out.display());
    Ok(0)
}

/// `patchbay sample-source`: serves generated records until Ctrl-C.
async fn sample_source(listen: &str, records: usize, record_bytes: usize) -> anyhow::Result<i32> {
    use patchbay_dev::sample::{Dataset, SourceServer};
    let server = SourceServer::start_on(listen, Dataset::new(records, record_bytes, 1)).map_err(anyhow::Error::msg)?;
    let base = server.base_url();
    println!("sample source: {records} records of ~{record_bytes} bytes at {base}");
    println!("  JSON pages:  {base}/rest/cursor?limit=1000  (also /rest/page, /rest/offset, /rest/link)");
    println!("  CSV file:    {base}/files/data.csv");
    println!("install it (the host must allow loopback: PATCHBAY_EGRESS_ALLOW_NETWORKS=127.0.0.1/32):");
    println!(
        "  patchbay install rest-source --name sample --config base_url={base} --config path=/rest/cursor \\\n    \
         --config entity=products --config record_path=data --config pagination=cursor \\\n    \
         --config next_cursor_path=meta.next_cursor --config total_path=meta.total --config page_size=1000 \\\n    \
         --config cursor_field=updated_at --config since_param=updated_since"
    );
    println!("ready (Ctrl-C stops)");
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(0)
}

/// `patchbay sync …`.
async fn sync_command(c: &crate::client::Client, command: SyncCommand) -> anyhow::Result<i32> {
    use crate::client::{self, enc};
    let follow_or_print = |run: serde_json::Value, follow: bool| async move {
        if follow {
            let id = run["id"].as_str().unwrap_or_default().to_string();
            client::follow_sync(c, &id).await
        } else {
            client::print_json(&run);
            Ok(0)
        }
    };
    match command {
        SyncCommand::Run { installation, entity, mode, export_from, follow } => {
            let mut body = serde_json::json!({ "installation": installation, "entity": entity, "mode": mode });
            if let Some(from) = export_from {
                let Some((i, e)) = from.split_once('/') else {
                    bail!("--export-from takes <installation>/<entity>, got {from:?}");
                };
                body["direction"] = "export".into();
                body["source"] = serde_json::json!({ "installation": i, "entity": e });
            }
            let run = c.post("/v1/syncs", body).await?;
            follow_or_print(run, follow).await
        }
        SyncCommand::Show { run, follow } => {
            let v = c.get(&format!("/v1/syncs/{}", enc(&run))).await?;
            follow_or_print(v, follow).await
        }
        SyncCommand::Ls { installation, paging } => {
            let q = installation.map(|i| format!("?installation={}", enc(&i))).unwrap_or_default();
            let runs = c.list(&format!("/v1/syncs{q}"), "runs", &paging).await?;
            client::print_sync_runs(&runs);
            client::note_next_page(&runs);
            Ok(0)
        }
        SyncCommand::Cancel { run } => {
            client::print_json(&c.post(&format!("/v1/syncs/{}/cancel", enc(&run)), serde_json::json!({})).await?);
            Ok(0)
        }
        SyncCommand::Resume { run, follow } => {
            let v = c.post(&format!("/v1/syncs/{}/resume", enc(&run)), serde_json::json!({})).await?;
            follow_or_print(v, follow).await
        }
        SyncCommand::Entities { installation } => {
            client::print_json(&c.get(&format!("/v1/installations/{}/entities", enc(&installation))).await?);
            Ok(0)
        }
        SyncCommand::Records { installation, entity, since, limit } => {
            let path = format!(
                "/v1/installations/{}/records/{}?since={since}&limit={limit}",
                enc(&installation),
                enc(&entity)
            );
            client::print_json(&c.get(&path).await?);
            Ok(0)
        }
    }
}

/// Commands that talk to a running host.
async fn remote(command: Command) -> anyhow::Result<i32> {
    use crate::client::{self, Client, enc};
    let connect = |r: &Remote| Client::new(&r.url, r.token.clone());
    let result: anyhow::Result<i32> = async {
        match command {
            Command::Tenant { remote, command } => {
                let c = connect(&remote)?;
                match command {
                    TenantCommand::Create { id, name } => {
                        client::print_json(&c.post("/v1/tenants", serde_json::json!({ "id": id, "name": name })).await?)
                    }
                    TenantCommand::Ls { paging } => client::print_json(&c.list("/v1/tenants", "tenants", &paging).await?),
                }
            }
            Command::Key { remote, command: KeyCommand::Create { tenant, name, scopes } } => {
                let c = connect(&remote)?;
                let mut body = serde_json::json!({ "name": name });
                if !scopes.is_empty() {
                    body["scopes"] = serde_json::json!(scopes);
                }
                client::print_json(&c.post(&format!("/v1/tenants/{}/keys", enc(&tenant)), body).await?);
            }
            Command::Connector { remote, command } => {
                let c = connect(&remote)?;
                match command {
                    ConnectorCommand::Push { file, no_wait } => {
                        let wasm = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                        let mut v = c.upload("/v1/connectors", wasm).await?;
                        if v["state"] == "compiling" && !no_wait {
                            v = client::wait_compiled(&c, &v).await?;
                        }
                        client::print_json(&serde_json::json!({
                            "connector": v["connector"], "version": v["version"], "digest": v["digest"],
                            "state": v["state"], "state_message": v.get("state_message"),
                            "operations": v["operations"].as_array().map(|ops| ops.iter().map(|o| o["name"].clone()).collect::<Vec<_>>()),
                        }));
                        if v["state"] == "failed" {
                            return Ok(1);
                        }
                    }
                    ConnectorCommand::Ls { category, search, paging } => {
                        let mut q = Vec::new();
                        if let Some(cat) = category {
                            q.push(format!("category={}", enc(&cat)));
                        }
                        if let Some(s) = search {
                            q.push(format!("search={}", enc(&s)));
                        }
                        let path = if q.is_empty() { "/v1/connectors".to_string() } else { format!("/v1/connectors?{}", q.join("&")) };
                        let connectors = c.list(&path, "connectors", &paging).await?;
                        client::print_connectors(&connectors);
                        client::note_next_page(&connectors);
                    }
                    ConnectorCommand::Show { id, version } => {
                        let path = match version {
                            Some(v) => format!("/v1/connectors/{}/versions/{}", enc(&id), enc(&v)),
                            None => format!("/v1/connectors/{}", enc(&id)),
                        };
                        client::print_json(&c.get(&path).await?);
                    }
                    ConnectorCommand::Keygen { .. }
                    | ConnectorCommand::Sign { .. }
                    | ConnectorCommand::Pack { .. }
                    | ConnectorCommand::Build { .. }
                    | ConnectorCommand::New { .. }
                    | ConnectorCommand::Check { .. } => bail!("keygen, sign, build, pack and check run locally"),
                }
            }
            Command::Install { remote, connector, name, version, api_version, config, credentials } => {
                let c = connect(&remote)?;
                let body = serde_json::json!({
                    "connector": connector, "name": name, "version": version, "api_version": api_version,
                    "config": client::pairs_object(&config)?,
                });
                let inst = c.post("/v1/installations", body).await?;
                if !credentials.is_empty() {
                    let mut resolved = Vec::new();
                    for (k, v) in &credentials {
                        resolved.push((k.clone(), resolve_secret(v)?));
                    }
                    let id = inst["id"].as_str().unwrap_or_default();
                    c.put(&format!("/v1/installations/{}/credentials", enc(id)), client::pairs_object(&resolved)?).await?;
                }
                client::print_json(&inst);
            }
            Command::Invoke { remote, installation, operation, input } => {
                let c = connect(&remote)?;
                let input = client::read_input(&input)?;
                let out = c
                    .post(&format!("/v1/installations/{}/invoke/{}", enc(&installation), enc(&operation)), input)
                    .await?;
                client::print_json(&out);
            }
            Command::Logs { remote, installation, follow, level, since } => {
                let c = connect(&remote)?;
                client::logs(&c, &installation, level.as_deref(), since.as_deref(), follow).await?;
            }
            Command::Sync { remote, command } => {
                let c = connect(&remote)?;
                return sync_command(&c, command).await;
            }
            _ => bail!("local commands are handled before connecting"),
        }
        Ok(0)
    }
    .await;
    match result {
        Err(e) => match e.downcast_ref::<client::ApiFailure>() {
            Some(f) => {
                eprintln!("error: {f}");
                Ok(if f.code == "connector_error" { 2 } else { 1 })
            }
            None => Err(e),
        },
        ok => ok,
    }
}

/// Prints the JSON of the function's result. Exit code 0 when the connector returned `ok`, 2 when
/// it returned its own error (`err`).
async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let wasm = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
    let (input, inst, network) = args.call.target(&args.component, &wasm)?;
    let scope = inst.scope.clone();
    let log = Arc::new(MemoryOperationLog::new(100_000));
    let config = RuntimeConfig { network, max_concurrent_calls: 4, ..RuntimeConfig::default() };
    let runtime = author::local_runtime(config, Services { oplog: log.clone(), ..Services::in_memory() })?;
    let component = runtime.load_async(wasm).await?;
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
