//! patchbay's benchmarks, one target each (`cargo bench -p patchbay-benches --bench <name>`):
//! `call` (a fresh sandbox per call), `invoke` (the admin API's call path), `ingest` and
//! `ingress` (webhook ingress), `sync` (data sync into the records store), `fairness` (another
//! tenant's latency while one tenant floods the call slots). They print figures;
//! the README keeps the latest ones.
