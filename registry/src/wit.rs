//! The WIT package this host serves, `patchbay:connector@0.1.0`, as text: what `patchbay wit`
//! writes to a directory and `GET /v1/wit` returns, so a toolchain in any language builds against
//! exactly the interfaces the host provides.

use std::io;
use std::path::{Path, PathBuf};

/// One file of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitFile {
    /// The file name, e.g. `worlds.wit`.
    pub name: &'static str,
    /// Its text.
    pub text: &'static str,
}

/// Every file of the package, by name.
pub const FILES: &[WitFile] = &[
    WitFile { name: "capabilities.wit", text: include_str!("../../wit/capabilities.wit") },
    WitFile { name: "hubs.wit", text: include_str!("../../wit/hubs.wit") },
    WitFile { name: "lifecycle.wit", text: include_str!("../../wit/lifecycle.wit") },
    WitFile { name: "types.wit", text: include_str!("../../wit/types.wit") },
    WitFile { name: "worlds.wit", text: include_str!("../../wit/worlds.wit") },
];

/// Writes the package's files into `dir` (created when missing) and returns their paths. A file
/// of the same name is replaced; other files in `dir` are left alone.
pub fn write_to(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(FILES.len());
    for f in FILES {
        let path = dir.join(f.name);
        std::fs::write(&path, f.text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded files are the repository's `wit/` directory, file for file.
    #[test]
    fn files_are_the_wit_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = FILES.iter().map(|f| f.name).collect();
        assert_eq!(on_disk, embedded, "add every file of wit/ to FILES");
        for f in FILES {
            assert_eq!(std::fs::read_to_string(dir.join(f.name)).unwrap(), f.text, "{}", f.name);
            let header = format!("package {}@{};", crate::WIT_PACKAGE, crate::WIT_VERSION);
            assert!(f.text.starts_with(&header), "{} starts with `{header}`", f.name);
        }
    }

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("patchbay-wit-{}", std::process::id()));
        let paths = write_to(&dir.join("nested")).unwrap();
        assert_eq!(paths.len(), FILES.len());
        for (p, f) in paths.iter().zip(FILES) {
            assert_eq!(std::fs::read_to_string(p).unwrap(), f.text);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
