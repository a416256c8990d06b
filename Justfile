# Convenience recipes; README's two commands are plain cargo.

# Run the host on the embedded defaults.
serve:
    cargo run --release -p patchbay -- serve

# Every test (builds the guest components first).
test:
    cargo test

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Build the reference connectors for wasm32-wasip2.
connectors:
    rustup target add wasm32-wasip2
    cargo build --release --target wasm32-wasip2 --manifest-path connectors-wasm/Cargo.toml

# Fresh-sandbox call benchmark.
bench:
    cargo bench -p patchbay-benches --bench call

# Admin API call-path benchmark (SQLite store, in process and over HTTP).
bench-invoke:
    cargo bench -p patchbay-benches --bench invoke
