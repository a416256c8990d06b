//! patchbay's benchmarks, one target each (`cargo bench -p patchbay-benches --bench <name>`):
//! `call` (a fresh sandbox per call), `invoke` (the admin API's call path), `ingest` and
//! `ingress` (webhook ingress), `sync` (data sync into the records store), `fairness` (another
//! tenant's latency while one tenant floods the call slots), `bytes` (large byte results),
//! `soak` (minutes of sustained ingest: throughput, WAL and database size, operation-log losses).
//! `table` runs the figures the host is held to beside their references (and, with
//! `PATCHBAY_BENCH_PREFILL`, again on a large store). They print figures; the README keeps the
//! latest ones.

pub mod invoking;
pub mod syncing;
pub mod webhooks;
