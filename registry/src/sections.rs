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
