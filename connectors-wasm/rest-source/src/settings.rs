//! The installation's configuration, read once per call and checked.

use patchbay_sdk::ConnectorError;
use sync_support::json::{Path, PrimaryKey};

/// How the API pages through its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// `?page=N&per_page=S`, first page 1.
    Page,
    /// `?offset=O&limit=S`.
    Offset,
    /// `?cursor=C&limit=S`, the next cursor read from the body.
    Cursor,
    /// The next page's URL in a `Link: <…>; rel="next"` header.
    Link,
    /// One request returns everything.
    None,
}

/// Every configuration value, with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base_url: String,
    pub origin: String,
    pub path: String,
    pub entity: String,
    pub record_path: Path,
    pub primary_key: PrimaryKey,
    pub pagination: Pagination,
    pub page_size: u32,
    pub page_size_param: String,
    pub page_param: String,
    pub offset_param: String,
    pub cursor_param: String,
    pub next_cursor_path: Option<Path>,
    pub total_path: Option<Path>,
    pub deleted_field: Option<Path>,
    pub cursor_field: Option<Path>,
    pub since_param: Option<String>,
    pub auth_header: String,
    pub query: Option<String>,
}

/// Largest accepted `page_size`.
pub const MAX_PAGE_SIZE: u32 = 10_000;

fn invalid(message: impl Into<String>) -> ConnectorError {
    ConnectorError::permanent("invalid_config", message)
}

impl Settings {
    /// Reads the configuration through `get` (the host's `config` in the component).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConnectorError> {
        let value = |key: &str| get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let base_url = value("base_url")
            .ok_or_else(|| ConnectorError::permanent("missing_config", "configuration value `base_url` is not set"))?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        let origin = sync_support::url::origin(&base_url)
            .ok_or_else(|| invalid("`base_url` must be an absolute http(s) URL"))?;
        if base_url.contains(['?', '#']) {
            return Err(invalid("`base_url` may not contain a query or fragment; use `query` for static parameters"));
        }
        let path = value("path")
            .ok_or_else(|| ConnectorError::permanent("missing_config", "configuration value `path` is not set"))?;
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        if path.contains(['?', '#']) {
            return Err(invalid("`path` may not contain a query or fragment; use `query` for static parameters"));
        }
        let entity = value("entity").unwrap_or_else(|| {
            path.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("records").to_owned()
        });
        let pagination = match value("pagination").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("link") => Pagination::Link,
            Some("page") => Pagination::Page,
            Some("offset") => Pagination::Offset,
            Some("cursor") => Pagination::Cursor,
            Some("none") => Pagination::None,
            Some(other) => {
                return Err(invalid(format!("`pagination` must be page, offset, cursor, link or none, not `{other}`")));
            }
        };
        let page_size = match value("page_size") {
            None => 100,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => return Err(invalid(format!("`page_size` must be a whole number from 1 to {MAX_PAGE_SIZE}"))),
            },
        };
        let page_size_param = value("page_size_param").unwrap_or_else(|| {
            match pagination {
                Pagination::Page | Pagination::Link | Pagination::None => "per_page",
                Pagination::Offset | Pagination::Cursor => "limit",
            }
            .to_owned()
        });
        let next_cursor_path = value("next_cursor_path").map(|p| Path::parse(&p));
        if pagination == Pagination::Cursor && next_cursor_path.is_none() {
            return Err(invalid("cursor pagination needs `next_cursor_path` (e.g. `meta.next_cursor`)"));
        }
        let cursor_field = value("cursor_field").map(|p| Path::parse(&p));
        let since_param = value("since_param");
        let query = value("query").map(|q| q.trim_start_matches(['?', '&']).to_owned()).filter(|q| !q.is_empty());
        Ok(Settings {
            base_url,
            origin,
            path,
            entity,
            record_path: Path::parse(&value("record_path").unwrap_or_default()),
            primary_key: PrimaryKey::parse(&value("primary_key").unwrap_or_else(|| "id".to_owned())),
            pagination,
            page_size,
            page_size_param,
            page_param: value("page_param").unwrap_or_else(|| "page".to_owned()),
            offset_param: value("offset_param").unwrap_or_else(|| "offset".to_owned()),
            cursor_param: value("cursor_param").unwrap_or_else(|| "cursor".to_owned()),
            next_cursor_path,
            total_path: value("total_path").map(|p| Path::parse(&p)),
            deleted_field: value("deleted_field").map(|p| Path::parse(&p)),
            cursor_field,
            since_param,
            auth_header: value("auth_header").unwrap_or_else(|| "authorization".to_owned()).to_ascii_lowercase(),
            query,
        })
    }

    /// Whether incremental reads are possible (`cursor_field` and `since_param` both set).
    pub fn supports_incremental(&self) -> bool {
        self.cursor_field.is_some() && self.since_param.is_some()
    }

    /// `base_url` + `path` + `?query` and the given parameters (percent-encoded).
    pub fn url(&self, params: &[(&str, String)]) -> String {
        let mut url = format!("{}{}", self.base_url, self.path);
        let mut separator = '?';
        if let Some(query) = &self.query {
            url.push(separator);
            url.push_str(query);
            separator = '&';
        }
        if !params.is_empty() {
            url.push(separator);
            url.push_str(&patchbay_sdk::http::form_urlencode(params));
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults() {
        let s = Settings::from_lookup(lookup(&[("base_url", "https://api.example.com/"), ("path", "v1/items")]))
            .expect("valid");
        assert_eq!(s.base_url, "https://api.example.com");
        assert_eq!(s.path, "/v1/items");
        assert_eq!(s.entity, "items");
        assert_eq!(s.pagination, Pagination::Link);
        assert_eq!(s.page_size, 100);
        assert_eq!(s.page_size_param, "per_page");
        assert!(s.record_path.is_root());
        assert!(!s.supports_incremental());
        assert_eq!(s.url(&[("per_page", "5".to_owned())]), "https://api.example.com/v1/items?per_page=5");
    }

    #[test]
    fn rejects_bad_values() {
        for pairs in [
            &[("path", "/x")][..],
            &[("base_url", "ftp://x"), ("path", "/x")],
            &[("base_url", "https://x.test"), ("path", "/x"), ("pagination", "pages")],
            &[("base_url", "https://x.test"), ("path", "/x"), ("page_size", "0")],
            &[("base_url", "https://x.test"), ("path", "/x"), ("pagination", "cursor")],
            &[("base_url", "https://x.test"), ("path", "/x?a=1")],
        ] {
            let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let get = move |k: &str| owned.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            assert!(Settings::from_lookup(get).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn static_query_comes_first() {
        let s = Settings::from_lookup(lookup(&[
            ("base_url", "http://127.0.0.1:8080"),
            ("path", "/rest/offset"),
            ("pagination", "offset"),
            ("query", "?a=1&b=x%20y"),
        ]))
        .expect("valid");
        assert_eq!(s.page_size_param, "limit");
        assert_eq!(
            s.url(&[("offset", "10".to_owned()), ("limit", "5".to_owned())]),
            "http://127.0.0.1:8080/rest/offset?a=1&b=x%20y&offset=10&limit=5"
        );
    }
}
