//! Builds the reference connectors (`connectors-wasm/`) for wasm32-wasip2 and copies them to
//! `$OUT_DIR/connectors/`, where `app::catalog` embeds them: `patchbay serve` publishes them to
//! the catalog on start. The building itself lives in `build-support/guests.rs`.

#[path = "../../build-support/guests.rs"]
mod guests;

use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(guests::env_var("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .and_then(|host| host.parent())
        .expect("the services crate lives in host/ of the repository")
        .to_path_buf();
    let out_dir = PathBuf::from(guests::env_var("OUT_DIR")).join("connectors");
    fs::create_dir_all(&out_dir).expect("create $OUT_DIR/connectors");
    let workspace = guests::Workspace::open(&root, "connectors-wasm");
    guests::watch(&manifest_dir, &root, std::slice::from_ref(&workspace));
    guests::ensure_wasm_target();
    for (name, path) in workspace.build(&guests::guests_target_dir(&root)) {
        let file = format!("{}.wasm", name.replace('-', "_"));
        fs::copy(&path, out_dir.join(&file)).unwrap_or_else(|e| panic!("copy {} to OUT_DIR: {e}", path.display()));
    }
}
