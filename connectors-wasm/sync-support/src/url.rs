//! Small URL helpers: percent-encoding a path segment, origins, resolving a reference (a `Link`
//! header target) against the URL it came from, and parsing RFC 8288 `Link` headers.

/// Percent-encodes `segment` for use as one path segment (everything but RFC 3986 unreserved
/// characters is encoded, `/` included).
pub fn encode_path_segment(segment: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(segment.len());
    for &byte in segment.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// `scheme://host[:port]` of an absolute http(s) URL, lower-cased, without user info and without
/// the scheme's default port; `None` when `url` is not absolute http(s).
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_ascii_lowercase();
    if host_port.is_empty() {
        return None;
    }
    let (host, port) = if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        (&host_port[..=end], host_port[end + 1..].strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port.as_str(), None),
        }
    };
    let host_port = match port {
        Some(port) if !port.is_empty() && port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    Some(format!("{scheme}://{host_port}"))
}

/// Resolves `reference` (absolute, scheme-relative `//host/…`, absolute-path `/…`, query-only
/// `?…` or relative path) against the absolute URL `base`.
pub fn resolve(base: &str, reference: &str) -> Option<String> {
    let reference = reference.trim();
    if reference.contains("://") && origin(reference).is_some() {
        return Some(reference.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(net) = reference.strip_prefix("//") {
        return Some(format!("{scheme}://{net}"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let prefix = &base[..scheme.len() + 3 + authority_end];
    let path_and_query = &rest[authority_end..];
    let path = path_and_query.split(['?', '#']).next().unwrap_or_default();
    if reference.starts_with('/') {
        return Some(format!("{prefix}{reference}"));
    }
    if reference.starts_with('?') {
        let path = if path.is_empty() { "/" } else { path };
        return Some(format!("{prefix}{path}{reference}"));
    }
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Some(format!("{prefix}{dir}{reference}"))
}

/// The target of the first link with relation `rel` in `Link` header values (RFC 8288:
/// `<url>; rel="next", <url>; rel="last"`; `rel` may list several space-separated relations).
pub fn link_target<'a>(values: impl IntoIterator<Item = &'a str>, rel: &str) -> Option<String> {
    for value in values {
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = &after[..close];
            let params_and_more = &after[close + 1..];
            // The parameters run to the next `<` (commas inside quoted values are rare; a
            // following link always starts with `<`).
            let params = match params_and_more.find('<') {
                Some(next) => &params_and_more[..next],
                None => params_and_more,
            };
            if has_rel(params, rel) {
                return Some(target.trim().to_owned());
            }
            rest = params_and_more;
        }
    }
    None
}

fn has_rel(params: &str, rel: &str) -> bool {
    params.split(';').any(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("rel") {
            return false;
        }
        let value = value.trim().trim_end_matches(',').trim().trim_matches('"');
        value.split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case(rel))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_path_segment("My Table/2"), "My%20Table%2F2");
        assert_eq!(encode_path_segment("tbl_A-1.x~"), "tbl_A-1.x~");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https://API.example.com/v1?x=1").as_deref(), Some("https://api.example.com"));
        assert_eq!(origin("https://api.example.com:443/v1").as_deref(), Some("https://api.example.com"));
        assert_eq!(origin("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin("http://user:pw@h.test:80/x").as_deref(), Some("http://h.test"));
        assert_eq!(origin("http://[::1]:8080/x").as_deref(), Some("http://[::1]:8080"));
        assert_eq!(origin("ftp://h.test"), None);
        assert_eq!(origin("/relative"), None);
    }

    #[test]
    fn references_resolve() {
        let base = "http://h.test:81/api/v1/items?page=1";
        assert_eq!(resolve(base, "https://o.test/x").as_deref(), Some("https://o.test/x"));
        assert_eq!(resolve(base, "//o.test/x").as_deref(), Some("http://o.test/x"));
        assert_eq!(resolve(base, "/v2/items?page=2").as_deref(), Some("http://h.test:81/v2/items?page=2"));
        assert_eq!(resolve(base, "?page=2").as_deref(), Some("http://h.test:81/api/v1/items?page=2"));
        assert_eq!(resolve(base, "more?page=2").as_deref(), Some("http://h.test:81/api/v1/more?page=2"));
        assert_eq!(resolve("http://h.test", "?p=2").as_deref(), Some("http://h.test/?p=2"));
    }

    #[test]
    fn link_headers() {
        let github = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            link_target([github], "next").as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        assert_eq!(
            link_target([github], "last").as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=5")
        );
        assert_eq!(link_target([github], "prev"), None);
        assert_eq!(
            link_target(["</a?x=1>; rel=\"prev\"", "</b>; title=\"x\"; rel=\"start next\""], "next").as_deref(),
            Some("/b")
        );
        assert_eq!(link_target(["</b>;rel=next"], "next").as_deref(), Some("/b"));
        assert_eq!(link_target(["garbage"], "next"), None);
    }
}
