//! Finding patchbay's custom sections in a component: the manifest at any nesting depth, the
//! signature among the top-level sections only.

use std::ops::Range;

use wasmparser::{BinaryReaderError, Parser, Payload};

use crate::{MANIFEST_SECTION, SIGNATURE_SECTION};

/// A top-level `patchbay:signature` section.
#[derive(Debug, Clone)]
pub(crate) struct SignatureSection<'a> {
    /// The section's contents after its name.
    pub(crate) data: &'a [u8],
    /// The whole section, from its id byte to its end.
    pub(crate) range: Range<usize>,
}

/// The patchbay custom sections of a binary.
#[derive(Debug, Default)]
pub(crate) struct Sections<'a> {
    /// Contents of every `patchbay:manifest` section, nested or not, in binary order.
    pub(crate) manifests: Vec<&'a [u8]>,
    /// Every top-level `patchbay:signature` section, in binary order.
    pub(crate) signatures: Vec<SignatureSection<'a>>,
}

/// Walks the whole binary, descending into nested modules and components.
pub(crate) fn scan(bytes: &[u8]) -> Result<Sections<'_>, BinaryReaderError> {
    let mut found = Sections::default();
    // Nesting depth: every module or component opens with `Version` and closes with `End`.
    let mut depth = 0usize;
    // End of the previous top-level section (sections are contiguous, so this is where the
    // next one's id byte sits).
    let mut top_end = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        match &payload {
            Payload::Version { range, .. } => {
                depth += 1;
                if depth == 1 {
                    top_end = range.end;
                }
                continue;
            }
            Payload::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Payload::CustomSection(reader) => {
                if reader.name() == MANIFEST_SECTION {
                    found.manifests.push(reader.data());
                }
                if depth == 1 && reader.name() == SIGNATURE_SECTION {
                    found.signatures.push(SignatureSection { data: reader.data(), range: top_end..reader.range().end });
                }
            }
            _ => {}
        }
        if depth == 1
            && let Some((_, range)) = payload.as_section()
        {
            top_end = range.end;
        }
    }
    Ok(found)
}

/// The names a component imports and exports at its top level, in binary order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentNames {
    /// e.g. `patchbay:connector/http@0.1.0`, `wasi:io/streams@0.2.6`.
    pub imports: Vec<String>,
    /// e.g. `patchbay:connector/lifecycle@0.1.0`.
    pub exports: Vec<String>,
}

/// Reads the top-level import and export names of a component without compiling it. `None` when
/// `bytes` is not a component whose sections can be read (a core module, malformed bytes): the
/// compiler's validation says what is wrong with those.
pub fn component_names(bytes: &[u8]) -> Option<ComponentNames> {
    let mut names = ComponentNames::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::Version { encoding: wasmparser::Encoding::Module, .. } if depth == 0 => return None,
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for e in reader.into_iter().flatten() {
                    names.exports.push(e.name.name.to_string());
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for i in reader.into_iter().flatten() {
                    names.imports.push(i.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(names)
}
