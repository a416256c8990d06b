//! Invoke measurements the `invoke` and `table` benchmarks share: a notify-webhook installation
//! with a sealed credential, its `health-check` invoked in process (the API's path without HTTP)
//! and over HTTP on many connections.

use std::time::{Duration, Instant};

use patchbay_services::Host;
use patchbay_services::installations::CreateInstallation;
use patchbay_services::quota::QuotaMode;
use serde_json::json;

/// A notify-webhook installation of tenant `bench` (which must exist) with a credential, warmed
/// up (compiled, cached); returns its id.
pub async fn setup(app: &Host) -> anyhow::Result<String> {
    let req: CreateInstallation = serde_json::from_value(json!({
        "connector": "notify-webhook", "name": "invoke-bench",
        "config": { "webhook_url": "https://hooks.example.com/x" }
    }))?;
    let view = app.installations.create("bench", req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = view.row.id.clone();
    app.installations
        .put_credentials(
            "bench",
            &id,
            json!({ "token": "bench-secret-value" }).as_object().unwrap_or(&Default::default()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    in_process(app, &id, 200).await?;
    Ok(id)
}

/// `iterations` sequential in-process invokes of `health-check`: each call's time, and the total.
pub async fn in_process(app: &Host, id: &str, iterations: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let mut samples = Vec::with_capacity(iterations);
    let wall = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        let (_, r) = app
            .installations
            .invoke("bench", id, "health-check", json!(null), QuotaMode::FailFast)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        r.outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
        samples.push(t.elapsed());
    }
    Ok((samples, wall.elapsed()))
}

/// `calls` invokes of `url` spread over `connections` tasks, each its own client (so its own
/// keep-alive connection); every call's time, and the total.
pub async fn over_http(
    url: &str,
    token: &str,
    connections: usize,
    calls: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (url, token) = (url.to_string(), token.to_string());
        let calls = calls.div_ceil(connections);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                let r = client.post(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(r.status().is_success(), "HTTP {}", r.status());
                r.bytes().await?;
                samples.push(t.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await??);
    }
    Ok((samples, wall.elapsed()))
}
