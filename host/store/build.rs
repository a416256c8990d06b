//! Reruns when a migration file is added: `sqlx::migrate!` embeds the files it saw with
//! `include_str!`, which tracks edits to them but not new files in the directory.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
