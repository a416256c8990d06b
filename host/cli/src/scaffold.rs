//! `patchbay connector new`: a buildable connector project in Rust, Python or JavaScript for any
//! hub world — the manifest, the host's WIT, a source file with every export stubbed (each
//! answers a `permanent` error with code `unsupported` until written), the toolchain pins and a
//! README with the build, check and run commands. The stubs are generated from the WIT itself, so
//! they always match the interfaces the host provides.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use wit_parser::{Resolve, Type, TypeDefKind, WorldItem, WorldKey};

use crate::author::Lang;

/// The pinned Python toolchain (componentize-py, hash-checked).
const PYTHON_REQUIREMENTS: &str = include_str!("../../../connectors-wasm/python/requirements.txt");
/// The pinned JavaScript toolchain (componentize-js, jco, preview2-shim).
const JS_PACKAGE: &str = include_str!("../../../connectors-wasm/js/package.json");
const JS_LOCK: &str = include_str!("../../../connectors-wasm/js/package-lock.json");

/// One exported function, as the stubs need it.
struct Func {
    /// WIT name, e.g. `get-status`.
    name: String,
    /// Parameter names (WIT) and their Rust types.
    params: Vec<(String, String)>,
    /// The Rust type of the result.
    result: String,
}

/// One exported interface: `lifecycle` or the hub's.
struct Export {
    /// WIT name, e.g. `notifications`.
    name: String,
    funcs: Vec<Func>,
}

fn upper_camel(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

fn snake(kebab: &str) -> String {
    let s = kebab.replace('-', "_");
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&s.as_str()) { format!("{s}_") } else { s }
}

fn camel(kebab: &str) -> String {
    let upper = upper_camel(kebab);
    let mut c = upper.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

/// The Rust type wit-bindgen generates for `ty` in an export of `world`.
fn rust_type(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "i8".into(),
        Type::S16 => "i16".into(),
        Type::S32 => "i32".into(),
        Type::S64 => "i64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "String".into(),
        Type::ErrorContext => "wit_bindgen::ErrorContext".into(),
        Type::Id(id) => {
            let def = &resolve.types[*id];
            if let Some(name) = &def.name {
                let module = match def.owner {
                    wit_parser::TypeOwner::Interface(i) => {
                        let iface = &resolve.interfaces[i];
                        let pkg = iface.package.map(|p| &resolve.packages[p].name);
                        let path = match pkg {
                            Some(p) => format!(
                                "{}::{}::{}",
                                snake(&p.namespace),
                                snake(&p.name),
                                snake(iface.name.as_deref().unwrap_or(""))
                            ),
                            None => snake(iface.name.as_deref().unwrap_or("")),
                        };
                        if is_exported_interface(resolve, i) { format!("exports::{path}") } else { path }
                    }
                    _ => String::new(),
                };
                return if module.is_empty() { upper_camel(name) } else { format!("{module}::{}", upper_camel(name)) };
            }
            match &def.kind {
                TypeDefKind::List(t) => format!("Vec<{}>", rust_type(resolve, t)),
                TypeDefKind::Option(t) => format!("Option<{}>", rust_type(resolve, t)),
                TypeDefKind::Result(r) => format!(
                    "Result<{}, {}>",
                    r.ok.as_ref().map_or("()".into(), |t| rust_type(resolve, t)),
                    r.err.as_ref().map_or("()".into(), |t| rust_type(resolve, t))
                ),
                TypeDefKind::Tuple(t) => {
                    format!("({})", t.types.iter().map(|t| rust_type(resolve, t)).collect::<Vec<_>>().join(", "))
                }
                TypeDefKind::Type(t) => rust_type(resolve, t),
                _ => "_".into(),
            }
        }
    }
}

/// Whether the interface is one the connector exports (its types live under `exports::`).
fn is_exported_interface(resolve: &Resolve, id: wit_parser::InterfaceId) -> bool {
    resolve
        .worlds
        .iter()
        .any(|(_, w)| w.exports.values().any(|item| matches!(item, WorldItem::Interface { id: i, .. } if *i == id)))
        && !resolve
            .worlds
            .iter()
            .any(|(_, w)| w.imports.values().any(|item| matches!(item, WorldItem::Interface { id: i, .. } if *i == id)))
}

/// The interfaces `world` exports, with their functions, read from the WIT in `wit_dir`.
fn exports_of(wit_dir: &Path, world: &str) -> anyhow::Result<Vec<Export>> {
    let mut resolve = Resolve::new();
    let (pkg, _) = resolve.push_dir(wit_dir).with_context(|| format!("parsing the WIT in {}", wit_dir.display()))?;
    let world_id = resolve.select_world(&[pkg], Some(world))?;
    let mut out = Vec::new();
    for (key, item) in &resolve.worlds[world_id].exports {
        let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item) else { continue };
        let iface = &resolve.interfaces[*id];
        let funcs = iface
            .functions
            .values()
            .map(|f| Func {
                name: f.name.clone(),
                params: f.params.iter().map(|p| (p.name.clone(), rust_type(&resolve, &p.ty))).collect(),
                result: f.result.as_ref().map_or("()".into(), |t| rust_type(&resolve, t)),
            })
            .collect();
        out.push(Export { name: iface.name.clone().unwrap_or_default(), funcs });
    }
    Ok(out)
}

fn manifest(id: &str, world: &str) -> String {
    format!(
        r#"# The connector's manifest: every field is described in docs/manifest.md. `patchbay connector
# build` embeds it into the component.
id = "{id}"
title = "{id}"
description = "Describe what {id} connects to and what it does."
category = "{world}"
provider = "The provider's name"
version = "0.1.0"
# The only destinations the connector may reach; `{{{{config.KEY}}}}` names a url config field.
allowed_hosts = ["https://api.example.com"]

[[credentials]]
key = "api_key"
label = "API key"
type = "secret"
help = "Send it with the header `authorization: Bearer {{{{secret:api_key}}}}`: the host fills it in."
"#
    )
}

fn rust_source(world: &str, exports: &[Export]) -> String {
    let mut s = format!(
        r#"//! A `{world}` connector. Every operation answers `unsupported` until it is written.

wit_bindgen::generate!({{
    path: "wit",
    world: "patchbay:connector/{world}",
    generate_all,
}});

use patchbay::connector::types::{{ConnectorError, Failure}};

struct Component;

/// The error an operation answers until it is written.
fn unsupported(operation: &str) -> ConnectorError {{
    ConnectorError::Permanent(Failure {{ code: "unsupported".into(), message: format!("{{operation}} is not implemented yet") }})
}}
"#
    );
    for e in exports {
        let _ = write!(s, "\nimpl exports::patchbay::connector::{}::Guest for Component {{\n", snake(&e.name));
        for f in &e.funcs {
            let params: Vec<String> = f.params.iter().map(|(n, t)| format!("_{}: {t}", snake(n))).collect();
            let _ = write!(
                s,
                "    fn {}({}) -> {} {{\n        Err(unsupported(\"{}\"))\n    }}\n",
                snake(&f.name),
                params.join(", "),
                f.result,
                f.name
            );
        }
        s.push_str("}\n");
    }
    s.push_str("\nexport!(Component);\n");
    s
}

fn python_source(world: &str, exports: &[Export]) -> String {
    let mut s = format!(
        r#""""A `{world}` connector. Every operation raises `unsupported` until it is written.

componentize-py generates the `wit_world` package when it builds: each exported interface is a
class here named after it; a function returns its `ok` value or raises `Err(ConnectorError_...)`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import credentials, http, log  # noqa: F401 (what the host lends)
from wit_world.imports.types import ConnectorError_Permanent, Failure


def unsupported(operation: str) -> Err:
    """The error an operation answers until it is written."""
    return Err(ConnectorError_Permanent(Failure("unsupported", f"{{operation}} is not implemented yet")))
"#
    );
    for e in exports {
        let _ = write!(s, "\n\nclass {}(exports.{}):\n", upper_camel(&e.name), upper_camel(&e.name));
        for (i, f) in e.funcs.iter().enumerate() {
            let params: String = f.params.iter().map(|(n, _)| format!(", {}", n.replace('-', "_"))).collect();
            if i > 0 {
                s.push('\n');
            }
            let _ = write!(
                s,
                "    def {}(self{params}):\n        raise unsupported(\"{}\")\n",
                f.name.replace('-', "_"),
                f.name
            );
        }
    }
    s
}

fn js_source(world: &str, exports: &[Export]) -> String {
    let mut s = format!(
        r#"// A `{world}` connector. Every operation throws `unsupported` until it is written.
//
// Exported interfaces are named exports with camelCase functions; a function returns its `ok`
// value or throws the error value (`{{ tag: 'permanent', val: {{ code, message }} }}`).

// What the host lends, e.g.:
// import {{ send }} from 'patchbay:connector/http@0.1.0';
// import {{ config, hasSecret }} from 'patchbay:connector/credentials@0.1.0';

/** The error an operation throws until it is written. */
const unsupported = (operation) => ({{
  tag: 'permanent',
  val: {{ code: 'unsupported', message: `${{operation}} is not implemented yet` }},
}});
"#
    );
    for e in exports {
        let _ = write!(s, "\nexport const {} = {{\n", camel(&e.name));
        for f in &e.funcs {
            let params: Vec<String> = f.params.iter().map(|(n, _)| format!("_{}", camel(n))).collect();
            let _ = write!(
                s,
                "  {}({}) {{\n    throw unsupported('{}');\n  }},\n",
                camel(&f.name),
                params.join(", "),
                f.name
            );
        }
        s.push_str("};\n");
    }
    s
}

fn readme(id: &str, world: &str, lang: Lang) -> String {
    let setup = match lang {
        Lang::Rust => "rustup target add wasm32-wasip2",
        Lang::Python => "python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.txt",
        Lang::Js => "npm ci",
    };
    format!(
        "# {id}\n\nA `{world}` connector for patchbay.\n\n```sh\n{setup}       # once\npatchbay connector build            # → {id}.wasm, manifest embedded\npatchbay connector check {id}.wasm  # what the host will say on upload\npatchbay run {id}.wasm health-check  # call an operation locally\n```\n\n`wit/` holds the host's interfaces (`patchbay wit wit/` refreshes them); `connector.toml` is the\nmanifest (docs/manifest.md).\n"
    )
}

/// `patchbay connector new NAME --world WORLD --lang LANG [--dir DIR]`.
pub(crate) fn new(name: &str, world: &str, lang: Lang, dir: Option<&Path>) -> anyhow::Result<i32> {
    let category: patchbay_registry::Category = world.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let world = category.world();
    let id_ok = name.len() >= 2
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        bail!("{name:?} cannot be a connector id: 2-63 lower-case letters, digits and `-`, starting with a letter");
    }
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| Path::new(name).to_path_buf());
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty; pick another --dir", dir.display());
    }
    let wit = dir.join("wit");
    patchbay_registry::wit::write_to(&wit).with_context(|| format!("writing {}", wit.display()))?;
    let exports = exports_of(&wit, world)?;
    let text = manifest(name, world);
    // The template must be a manifest the host accepts.
    patchbay_registry::Manifest::parse_toml(&text).context("the generated manifest")?;
    let mut files: Vec<(&str, String)> = vec![("connector.toml", text), ("README.md", readme(name, world, lang))];
    match lang {
        Lang::Rust => {
            files.push((
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwit-bindgen = {{ version = \"0.61.1\", default-features = false, features = [\"macros\", \"realloc\"] }}\n\n[profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n\n# A project of its own, even inside another cargo workspace.\n[workspace]\n"
                ),
            ));
            files.push(("src/lib.rs", rust_source(world, &exports)));
            files.push((".gitignore", "/target\n*.wasm\n".into()));
        }
        Lang::Python => {
            files.push(("app.py", python_source(world, &exports)));
            files.push(("requirements.txt", PYTHON_REQUIREMENTS.into()));
            files.push((".gitignore", ".venv/\n__pycache__/\n*.wasm\n".into()));
        }
        Lang::Js => {
            let mut package: serde_json::Value = serde_json::from_str(JS_PACKAGE)?;
            package["name"] = name.into();
            package["description"] = format!("A {world} connector for patchbay").into();
            package["scripts"] = serde_json::json!({ "build": "patchbay connector build" });
            let mut lock: serde_json::Value = serde_json::from_str(JS_LOCK)?;
            lock["name"] = name.into();
            lock["packages"][""]["name"] = name.into();
            files.push(("app.js", js_source(world, &exports)));
            files.push(("package.json", serde_json::to_string_pretty(&package)? + "\n"));
            files.push(("package-lock.json", serde_json::to_string_pretty(&lock)? + "\n"));
            files.push((".gitignore", "node_modules/\n*.wasm\n".into()));
        }
    }
    for (file, content) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({:?}, world {world}):", dir.display(), lang);
    for (file, _) in &files {
        println!("  {file}");
    }
    println!("  wit/ (the host's interfaces)");
    println!("next: cd {} && see README.md", dir.display());
    Ok(0)
}
