//! Tests for manifest parsing and every validation rule.

use super::*;
use crate::testutil::{MINIMAL_MANIFEST, VALID_MANIFEST};

/// `MINIMAL_MANIFEST` with `extra` appended (top-level keys first, then tables).
fn with(extra: &str) -> String {
    format!("{MINIMAL_MANIFEST}\n{extra}")
}

/// `MINIMAL_MANIFEST` with one top-level line replaced.
fn replacing(from: &str, to: &str) -> String {
    assert!(MINIMAL_MANIFEST.contains(from), "{from:?} is not in the minimal manifest");
    MINIMAL_MANIFEST.replace(from, to)
}

/// The validation issues of a manifest that parses, as `path: message` strings.
fn issues(text: &str) -> Vec<String> {
    match Manifest::parse_toml(text) {
        Ok(_) => vec![],
        Err(ManifestError::Invalid(issues)) => issues.iter().map(ToString::to_string).collect(),
        Err(e @ ManifestError::Parse { .. }) => panic!("expected validation issues, got a parse error: {e}"),
    }
}

/// Asserts that exactly one issue is reported, at `path`, and that its message contains `needle`.
fn assert_issue(text: &str, path: &str, needle: &str) {
    let found = issues(text);
    assert_eq!(found.len(), 1, "expected one issue at {path}, got {found:?}");
    assert!(found[0].starts_with(&format!("{path}: ")), "expected the issue at {path}, got {found:?}");
    assert!(found[0].contains(needle), "expected {needle:?} in {found:?}");
}

/// The parse error of a manifest that does not parse: (line, message).
fn parse_error(text: &str) -> (Option<usize>, String) {
    match Manifest::parse_toml(text) {
        Err(ManifestError::Parse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// The table path of a parse error.
fn parse_error_path(text: &str) -> Option<String> {
    match Manifest::parse_toml(text) {
        Err(ManifestError::Parse { path, .. }) => path,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn minimal_manifest_parses_with_empty_lists() {
    let m = Manifest::parse_toml(MINIMAL_MANIFEST).unwrap();
    assert_eq!(m.id, "minimal");
    assert_eq!(m.category, Category::DataSync);
    assert!(m.api_versions.is_empty() && m.credentials.is_empty() && m.config.is_empty());
    assert!(m.allowed_hosts.is_empty() && m.webhook.is_none() && m.bundle.is_none());
    assert_eq!(m.default_api_version(), None);
}

#[test]
fn full_manifest_parses() {
    let m = Manifest::parse_toml(VALID_MANIFEST).unwrap();
    assert_eq!(m.semver().unwrap(), semver::Version::new(1, 2, 3));
    assert_eq!(m.default_api_version().map(|v| v.id.as_str()), Some("v2"));
    let v1 = m.api_version("v1").unwrap();
    assert_eq!(v1.status, ApiStatus::Deprecated);
    assert_eq!(v1.sunset, Some(Date { year: 2026, month: 6, day: 30 }));
    assert_eq!(m.credential("token").unwrap().kind, FieldType::Secret);
    assert_eq!(m.config_field("base_url").unwrap().default.as_deref(), Some("https://eu.acme.example"));
    let webhook = m.webhook.unwrap();
    assert_eq!((webhook.scheme, webhook.encoding), (WebhookScheme::HmacSha256, Some(SignatureEncoding::Hex)));
}

/// The first ```toml block of a file's `//!` documentation.
fn doc_toml_example(source: &str) -> String {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The example in the crate documentation is a valid manifest.
#[test]
fn crate_doc_example_parses() {
    let example = doc_toml_example(include_str!("../lib.rs"));
    assert!(example.contains("[webhook]"), "example not found in lib.rs");
    let m = Manifest::parse_toml(&example).unwrap();
    assert_eq!(m.id, "acme-pay");
    assert_eq!(m.config_field("capture_delay_hours").unwrap().default.as_deref(), Some("0"));
    assert_eq!(m.webhook.unwrap().tolerance_secs, Some(300));
    assert_eq!(m.bundle.unwrap().id, "acme");
}

/// The example in the guest SDK's documentation is a valid manifest.
#[test]
fn guest_sdk_doc_example_parses() {
    let example = doc_toml_example(include_str!("../../../guest-sdk/src/lib.rs"));
    let m = Manifest::parse_toml(&example).unwrap();
    assert_eq!(m.credential("api_key").map(|f| f.kind), Some(FieldType::Secret));
}

#[test]
fn reference_connector_manifests_parse() {
    let notify = Manifest::parse_toml(include_str!("../../../connectors-wasm/notify-webhook/connector.toml")).unwrap();
    assert_eq!((notify.id.as_str(), notify.category), ("notify-webhook", Category::NotificationProvider));
    assert_eq!(notify.allowed_hosts, ["{{config.webhook_url}}"]);
    assert!(notify.config_field("webhook_url").unwrap().required);
    assert!(!notify.credential("token").unwrap().required);

    let github = Manifest::parse_toml(include_str!("../../../connectors-wasm/github/connector.toml")).unwrap();
    assert_eq!((github.id.as_str(), github.category), ("github", Category::WebhookEndpoint));
    let webhook = github.webhook.unwrap();
    assert_eq!(webhook.header.as_deref(), Some("X-Hub-Signature-256"));
    assert_eq!(webhook.prefix.as_deref(), Some("sha256="));
    assert_eq!(webhook.secret, "webhook_secret");
}

// ---- parse errors ----

#[test]
fn unknown_top_level_field_is_named_with_its_line() {
    let (line, message) = parse_error(&replacing("provider = \"Nobody\"", "provider = \"Nobody\"\nhomepage = \"x\""));
    assert!(message.contains("unknown field `homepage`"), "{message}");
    assert_eq!(line, Some(7));
    let text = replacing("provider = \"Nobody\"", "provider = \"Nobody\"\nhomepage = \"x\"");
    assert_eq!(parse_error_path(&text), None);
    let err = Manifest::parse_toml(&text).unwrap_err().to_string();
    assert!(err.starts_with("invalid manifest: unknown field `homepage`, expected one of `id`, "), "{err}");
    assert!(err.ends_with(" (line 7, column 1)"), "{err}");
}

#[test]
fn unknown_field_in_a_credentials_entry_is_named() {
    let entry = "[[credentials]]\nkey = \"token\"\nlabel = \"Token\"\ntype = \"secret\"\n";
    let text = with(&format!("{entry}secret = true\n"));
    let (_, message) = parse_error(&text);
    assert!(message.contains("unknown field `secret`"), "{message}");
    assert_eq!(parse_error_path(&text).as_deref(), Some("credentials[0]"));
    let second =
        with(&format!("{entry}[[config]]\nkey = \"k\"\nlabel = \"K\"\ntype = \"text\"\n{entry}secret = true\n"));
    assert_eq!(parse_error_path(&second).as_deref(), Some("credentials[1]"));
    let err = Manifest::parse_toml(&second).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid manifest: credentials[1]: unknown field `secret`, expected one of `key`"),
        "{err}"
    );
}

#[test]
fn unknown_field_in_webhook_bundle_and_api_versions_is_named() {
    let webhook = with(
        "[[credentials]]\nkey = \"s\"\nlabel = \"S\"\ntype = \"secret\"\n\
         [webhook]\nscheme = \"hmac-sha256\"\nheader = \"X-Sig\"\nsecret = \"s\"\nencoding = \"hex\"\nalgo = \"x\"\n",
    );
    assert!(parse_error(&webhook).1.contains("unknown field `algo`"));
    assert_eq!(parse_error_path(&webhook).as_deref(), Some("webhook"));
    let bundle = with("[bundle]\nid = \"acme\"\ntitle = \"Acme\"\nshared = true\n");
    assert!(parse_error(&bundle).1.contains("unknown field `shared`"));
    assert_eq!(parse_error_path(&bundle).as_deref(), Some("bundle"));
    let api = with("[[api_versions]]\nid = \"v1\"\nlabel = \"V1\"\nstatus = \"stable\"\ndefault = true\nbeta = true\n");
    assert!(parse_error(&api).1.contains("unknown field `beta`"));
    assert_eq!(parse_error_path(&api).as_deref(), Some("api_versions[0]"));
}

#[test]
fn missing_required_field_is_named() {
    let (_, message) = parse_error(&replacing("title = \"Minimal\"\n", ""));
    assert!(message.contains("missing field `title`"), "{message}");
    let text = with("[[config]]\nkey = \"k\"\ntype = \"text\"\n");
    assert!(parse_error(&text).1.contains("missing field `label`"));
    assert_eq!(parse_error_path(&text).as_deref(), Some("config[0]"));
}

#[test]
fn unknown_category_lists_the_hubs() {
    let (_, message) = parse_error(&replacing("category = \"data-sync\"", "category = \"crm\""));
    assert!(message.contains("crm") && message.contains("payment-gateway"), "{message}");
}

#[test]
fn wrong_value_type_is_reported() {
    let (_, message) = parse_error(&replacing("version = \"0.1.0\"", "version = 1"));
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn toml_syntax_error_has_a_position() {
    let err = Manifest::parse_toml("id = \"x\"\ntitle = \n").unwrap_err();
    let ManifestError::Parse { line: Some(2), column: Some(_), .. } = err else { panic!("{err:?}") };
    assert!(err.to_string().contains(" (line 2, column "), "{err}");
}

#[test]
fn sunset_accepts_a_string_or_a_toml_date() {
    let version = |sunset: &str| {
        format!(
            "[[api_versions]]\nid = \"v2\"\nlabel = \"V2\"\nstatus = \"stable\"\ndefault = true\n\
             [[api_versions]]\nid = \"v1\"\nlabel = \"V1\"\nstatus = \"deprecated\"\nsunset = {sunset}\n"
        )
    };
    let expected = Some(Date { year: 2024, month: 2, day: 29 });
    for sunset in ["2024-02-29", "\"2024-02-29\""] {
        assert_eq!(Manifest::parse_toml(&with(&version(sunset))).unwrap().api_versions[1].sunset, expected);
    }
    for (bad, needle) in [
        ("2023-02-29", "day"),
        ("\"2023-02-29\"", "day 29 does not exist"),
        ("\"2023-13-01\"", "month 13"),
        ("\"30.06.2026\"", "expected YYYY-MM-DD"),
        ("2026-06-30T12:00:00Z", "without time"),
    ] {
        let (_, message) = parse_error(&with(&version(bad)));
        assert!(message.contains(needle), "{bad}: {message}");
    }
}

#[test]
fn config_defaults_accept_bare_scalars() {
    let text = with(
        "[[config]]\nkey = \"n\"\nlabel = \"N\"\ntype = \"number\"\ndefault = 2.5\n\
         [[config]]\nkey = \"i\"\nlabel = \"I\"\ntype = \"number\"\ndefault = -3\n\
         [[config]]\nkey = \"b\"\nlabel = \"B\"\ntype = \"boolean\"\ndefault = true\n",
    );
    let m = Manifest::parse_toml(&text).unwrap();
    let defaults: Vec<_> = m.config.iter().map(|f| f.default.as_deref().unwrap()).collect();
    assert_eq!(defaults, ["2.5", "-3", "true"]);
}

// ---- identity and metadata ----

#[test]
fn id_must_be_a_slug() {
    for bad in ["a", "Acme", "1acme", "acme_pay", "acme pay", "-acme", &"a".repeat(64)] {
        assert_issue(&replacing("id = \"minimal\"", &format!("id = {bad:?}")), "id", "is not a valid id");
    }
    for good in ["ab", "a-1", &format!("a{}", "b".repeat(62))] {
        assert_eq!(issues(&replacing("id = \"minimal\"", &format!("id = {good:?}"))), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn title_and_provider_must_be_short_single_line_text() {
    assert_issue(&replacing("title = \"Minimal\"", "title = \"  \""), "title", "must not be empty");
    let long = format!("title = \"{}\"", "x".repeat(MAX_TITLE_CHARS + 1));
    assert_issue(&replacing("title = \"Minimal\"", &long), "title", "at most 100");
    assert_issue(&replacing("title = \"Minimal\"", "title = \"Two\\nlines\""), "title", "control characters");
    assert_issue(&replacing("provider = \"Nobody\"", "provider = \"\""), "provider", "must not be empty");
}

#[test]
fn description_may_span_lines_but_not_be_empty_or_huge() {
    assert_eq!(
        issues(&replacing("description = \"Does nothing.\"", "description = \"One.\\nTwo.\"")),
        Vec::<String>::new()
    );
    assert_issue(
        &replacing("description = \"Does nothing.\"", "description = \"\""),
        "description",
        "must not be empty",
    );
    let long = format!("description = \"{}\"", "x".repeat(MAX_DESCRIPTION_CHARS + 1));
    assert_issue(&replacing("description = \"Does nothing.\"", &long), "description", "at most 2000");
}

#[test]
fn version_must_be_semver_without_build_metadata() {
    assert_issue(&replacing("version = \"0.1.0\"", "version = \"1.0\""), "version", "not a semantic version");
    assert_issue(&replacing("version = \"0.1.0\"", "version = \"1.0.0+abc\""), "version", "build metadata");
    assert_eq!(issues(&replacing("version = \"0.1.0\"", "version = \"1.0.0-rc.1\"")), Vec::<String>::new());
}

// ---- api versions ----

fn api_version(id: &str, status: &str, default: bool, extra: &str) -> String {
    format!("[[api_versions]]\nid = {id:?}\nlabel = \"Label\"\nstatus = {status:?}\ndefault = {default}\n{extra}")
}

#[test]
fn api_versions_need_exactly_one_default() {
    let none = with(&(api_version("v1", "stable", false, "") + &api_version("v2", "stable", false, "")));
    assert_issue(&none, "api_versions", "exactly one api version must have default = true");
    let two = with(&(api_version("v1", "stable", true, "") + &api_version("v2", "stable", true, "")));
    assert_issue(&two, "api_versions[1].default", "api_versions[0] is the default already");
}

#[test]
fn default_api_version_may_not_be_deprecated() {
    assert_issue(&with(&api_version("v1", "deprecated", true, "")), "api_versions[0].default", "may not be deprecated");
}

#[test]
fn api_version_ids_are_unique_and_well_formed() {
    let dup = with(&(api_version("v1", "stable", true, "") + &api_version("v1", "deprecated", false, "")));
    assert_issue(&dup, "api_versions[1].id", "duplicate api version \"v1\" (also api_versions[0])");
    assert_issue(&with(&api_version("v 1", "stable", true, "")), "api_versions[0].id", "not a valid api version id");
    assert_issue(&with(&api_version("", "stable", true, "")), "api_versions[0].id", "not a valid api version id");
}

#[test]
fn sunset_only_on_deprecated_versions() {
    let text = with(&api_version("v1", "stable", true, "sunset = 2030-01-01\n"));
    assert_issue(&text, "api_versions[0].sunset", "requires status = \"deprecated\"");
}

#[test]
fn api_version_label_must_not_be_empty() {
    let text = with("[[api_versions]]\nid = \"v1\"\nlabel = \"\"\nstatus = \"stable\"\ndefault = true\n");
    assert_issue(&text, "api_versions[0].label", "must not be empty");
}

// ---- credentials and config ----

fn field(list: &str, key: &str, kind: &str, extra: &str) -> String {
    format!("[[{list}]]\nkey = {key:?}\nlabel = \"Label\"\ntype = {kind:?}\n{extra}")
}

#[test]
fn duplicate_credential_key_is_named_with_its_path() {
    let text = with(&(field("credentials", "token", "secret", "") + &field("credentials", "token", "text", "")));
    assert_issue(&text, "credentials[1].key", "duplicate key \"token\" (also credentials[0].key)");
}

#[test]
fn duplicate_config_key_is_named_with_its_path() {
    let text = with(&(field("config", "region", "text", "") + &field("config", "region", "text", "")));
    assert_issue(&text, "config[1].key", "duplicate key \"region\"");
}

#[test]
fn field_keys_must_be_snake_case() {
    for bad in ["Token", "api-key", "1key", "", "a b", &"k".repeat(65)] {
        assert_issue(&with(&field("credentials", bad, "secret", "")), "credentials[0].key", "is not a valid key");
        assert_issue(&with(&field("config", bad, "text", "")), "config[0].key", "is not a valid key");
    }
}

#[test]
fn field_label_and_help_are_checked() {
    let text = with("[[config]]\nkey = \"k\"\nlabel = \"\"\ntype = \"text\"\n");
    assert_issue(&text, "config[0].label", "must not be empty");
    let help = format!("help = \"{}\"\n", "h".repeat(MAX_HELP_CHARS + 1));
    assert_issue(&with(&field("credentials", "k", "secret", &help)), "credentials[0].help", "at most 500");
}

#[test]
fn credentials_may_not_be_numbers_or_booleans_or_have_defaults() {
    assert_issue(&with(&field("credentials", "k", "number", "")), "credentials[0].type", "not allowed in credentials");
    assert_issue(&with(&field("credentials", "k", "boolean", "")), "credentials[0].type", "not allowed in credentials");
    let text = with(&field("credentials", "k", "text", "default = \"x\"\n"));
    assert_issue(&text, "credentials[0].default", "credentials cannot have a default value");
    for kind in ["secret", "text", "url"] {
        assert_eq!(issues(&with(&field("credentials", "k", kind, ""))), Vec::<String>::new(), "{kind}");
    }
    assert_issue(&with(&field("credentials", "k", "oauth2", "")), "credentials[0].type", "needs an [oauth2] table");
}

/// A client id, a client secret and the token credential, then `[oauth2]` with `table`.
fn oauth(table: &str) -> String {
    let mut text = String::new();
    text.push_str(&field("credentials", "client_id", "text", ""));
    text.push_str(&field("credentials", "client_secret", "secret", ""));
    text.push_str(&field("credentials", "account", "oauth2", ""));
    text.push_str(&field("config", "base_url", "url", ""));
    with(&format!("{text}[oauth2]\n{table}"))
}

const CODE_FLOW: &str =
    "authorize_url = \"https://auth.example/authorize\"\ntoken_url = \"https://auth.example/token\"\n";

#[test]
fn oauth2_code_flow_parses_with_defaults() {
    let m = Manifest::parse_toml(&oauth(&format!("{CODE_FLOW}scopes = [\"read\", \"write:all\"]\n"))).unwrap();
    let spec = m.oauth2.as_ref().unwrap();
    assert_eq!(spec.grant, OAuthGrant::AuthorizationCode);
    assert!(spec.uses_pkce());
    assert_eq!(spec.client_auth, ClientAuth::Basic);
    assert_eq!(spec.scope().as_deref(), Some("read write:all"));
    assert_eq!((spec.client_id_key(), spec.client_secret_key()), ("client_id", "client_secret"));
    assert_eq!(m.oauth2_field().map(|f| f.key.as_str()), Some("account"));
    let templated =
        "authorize_url = \"{{config.base_url}}/oauth/authorize\"\ntoken_url = \"{{config.base_url}}/oauth/token\"\n";
    assert_eq!(issues(&oauth(templated)), Vec::<String>::new());
    let cc =
        oauth("grant = \"client_credentials\"\ntoken_url = \"https://auth.example/token\"\nclient_auth = \"post\"\n");
    let m = Manifest::parse_toml(&cc).unwrap();
    assert!(!m.oauth2.as_ref().unwrap().uses_pkce());
}

#[test]
fn oauth2_rules_are_checked() {
    assert_issue(
        &oauth("token_url = \"https://auth.example/token\"\n"),
        "oauth2.authorize_url",
        "required by the authorization_code grant",
    );
    assert_issue(
        &oauth(&format!("grant = \"client_credentials\"\n{CODE_FLOW}")),
        "oauth2.authorize_url",
        "has no authorization step",
    );
    assert_issue(
        &oauth(&format!("{CODE_FLOW}revoke_url = \"ftp://auth.example\"\n")),
        "oauth2.revoke_url",
        "not an http(s) URL",
    );
    assert_issue(
        &oauth(&format!("{CODE_FLOW}client_id = \"app_id\"\n")),
        "oauth2.client_id",
        "names no declared credential \"app_id\"",
    );
    assert_issue(
        &oauth(&format!("{CODE_FLOW}client_secret = \"client_id\"\n")),
        "oauth2.client_secret",
        "must be a secret",
    );
    assert_issue(&oauth(&format!("{CODE_FLOW}scopes = [\"a b\"]\n")), "oauth2.scopes[0]", "not a scope token");
    assert_issue(
        &oauth(&format!("{CODE_FLOW}authorize_params = {{ state = \"x\" }}\n")),
        "oauth2.authorize_params.state",
        "set by the host",
    );
    assert_issue(
        &oauth(&format!("{CODE_FLOW}token_params = {{ grant_type = \"x\" }}\n")),
        "oauth2.token_params.grant_type",
        "set by the host",
    );
    assert_issue(
        &oauth("authorize_url = \"{{config.nope}}/a\"\ntoken_url = \"https://auth.example/token\"\n"),
        "oauth2.authorize_url",
        "names no declared config field",
    );
    // The table without the token credential, and two token credentials.
    let bare = with(&format!("{}[oauth2]\n{CODE_FLOW}", field("credentials", "client_id", "text", "")));
    assert_issue(&bare, "oauth2", "declare one credential of type \"oauth2\"");
    let two = oauth(CODE_FLOW).replace("[oauth2]", &format!("{}[oauth2]", field("credentials", "other", "oauth2", "")));
    assert_issue(&two, "credentials[3].type", "only one credential");
    // A public client (no secret declared) is fine for the code flow, not for client credentials.
    let public = with(&format!(
        "{}{}[oauth2]\n{CODE_FLOW}",
        field("credentials", "client_id", "text", ""),
        field("credentials", "account", "oauth2", "")
    ));
    assert_eq!(issues(&public), Vec::<String>::new());
    let cc = public.replace(CODE_FLOW, "grant = \"client_credentials\"\ntoken_url = \"https://auth.example/token\"\n");
    assert_issue(&cc, "oauth2.client_secret", "names no declared credential");
}

#[test]
fn rate_limits_are_checked() {
    let ok = with(
        "[[rate_limits]]\nrequests = 10\nper_seconds = 1\n[[rate_limits]]\nrequests = 1000\nper_seconds = 3600\nburst = 20\n",
    );
    let m = Manifest::parse_toml(&ok).unwrap();
    assert_eq!(m.rate_limits.len(), 2);
    assert_eq!((m.rate_limits[0].capacity(), m.rate_limits[1].capacity()), (10, 20));
    assert_issue(&with("[[rate_limits]]\nrequests = 0\nper_seconds = 1\n"), "rate_limits[0].requests", "at least 1");
    assert_issue(
        &with("[[rate_limits]]\nrequests = 1\nper_seconds = 0\n"),
        "rate_limits[0].per_seconds",
        "between 1 and",
    );
    assert_issue(
        &with("[[rate_limits]]\nrequests = 1\nper_seconds = 5\n[[rate_limits]]\nrequests = 2\nper_seconds = 5\n"),
        "rate_limits[1].per_seconds",
        "duplicate window",
    );
}

#[test]
fn config_may_not_hold_secrets() {
    assert_issue(&with(&field("config", "k", "secret", "")), "config[0].type", "declare it under [[credentials]]");
    assert_issue(&with(&field("config", "k", "oauth2", "")), "config[0].type", "not allowed in config");
}

#[test]
fn config_defaults_must_fit_the_type() {
    for (kind, bad, needle) in [
        ("number", "\"ten\"", "is not a number"),
        ("number", "\"inf\"", "is not a number"),
        ("boolean", "\"yes\"", "is not a boolean"),
        ("url", "\"example.com\"", "is not a URL"),
        ("url", "\"ftp://example.com\"", "is not an http(s) URL"),
    ] {
        let text = with(&field("config", "k", kind, &format!("default = {bad}\n")));
        assert_issue(&text, "config[0].default", needle);
    }
    for (kind, good) in
        [("number", "\"10\""), ("boolean", "false"), ("url", "\"https://x.example/a\""), ("text", "\"\"")]
    {
        let text = with(&field("config", "k", kind, &format!("default = {good}\n")));
        assert_eq!(issues(&text), Vec::<String>::new(), "{kind} {good}");
    }
}

// ---- allowed hosts ----

fn hosts(list: &str, config: &str) -> String {
    replacing("version = \"0.1.0\"", &format!("version = \"0.1.0\"\nallowed_hosts = {list}\n{config}"))
}

#[test]
fn allowed_hosts_entries_are_non_empty_without_whitespace_or_duplicates() {
    assert_issue(&hosts("[\"\"]", ""), "allowed_hosts[0]", "must not be empty");
    assert_issue(&hosts("[\"https://a.example\", \"https://a .example\"]", ""), "allowed_hosts[1]", "whitespace");
    assert_issue(&hosts("[\"a.example\", \"a.example\"]", ""), "allowed_hosts[1]", "duplicate entry");
}

#[test]
fn allowed_hosts_templates_name_declared_text_or_url_config() {
    let config = field("config", "shop", "text", "") + &field("config", "port", "number", "");
    let ok = hosts("[\"https://{{config.shop}}.myshopify.com\", \"{{ config.shop }}\"]", &config);
    assert_eq!(issues(&ok), Vec::<String>::new());
    assert_issue(&hosts("[\"{{config.missing}}\"]", &config), "allowed_hosts[0]", "names no declared config field");
    assert_issue(&hosts("[\"{{config.port}}\"]", &config), "allowed_hosts[0]", "names a number field");
    assert_issue(&hosts("[\"{{secret:token}}\"]", &config), "allowed_hosts[0]", "only {{config.KEY}} is supported");
    assert_issue(&hosts("[\"https://{{config.shop\"]", &config), "allowed_hosts[0]", "unterminated");
    assert_issue(&hosts("[\"https://shop}}.example\"]", &config), "allowed_hosts[0]", "without a matching");
    assert_issue(&hosts("[\"a}}{{config.shop}}\"]", &config), "allowed_hosts[0]", "without a matching");
}

// ---- webhook ----

fn webhook(extra: &str) -> String {
    format!(
        "[webhook]\nscheme = \"hmac-sha256\"\nheader = \"X-Signature\"\nsecret = \"signing\"\nencoding = \"base64\"\n{extra}"
    )
}

#[test]
fn webhook_secret_names_a_secret_credential() {
    let secret = field("credentials", "signing", "secret", "");
    assert_eq!(issues(&with(&(secret.clone() + &webhook("prefix = \"v1=\"\n")))), Vec::<String>::new());
    assert_issue(&with(&webhook("")), "webhook.secret", "names no credentials field");
    let text_field = field("credentials", "signing", "text", "");
    assert_issue(&with(&(text_field + &webhook(""))), "webhook.secret", "it must be \"secret\"");
    let in_config = field("config", "signing", "text", "");
    assert_issue(&with(&(in_config + &webhook(""))), "webhook.secret", "names no credentials field");
}

#[test]
fn webhook_headers_and_tolerance_are_checked() {
    let secret = field("credentials", "signing", "secret", "");
    let bad_header = with(&(secret.clone() + &webhook("")).replace("X-Signature", "X Signature"));
    assert_issue(&bad_header, "webhook.header", "not a valid HTTP header name");
    let bad_ts = with(&(secret.clone() + &webhook("timestamp_header = \"X:T\"\n")));
    assert_issue(&bad_ts, "webhook.timestamp_header", "not a valid HTTP header name");
    let no_ts = with(&(secret.clone() + &webhook("tolerance_secs = 300\n")));
    assert_issue(&no_ts, "webhook.tolerance_secs", "requires webhook.timestamp_header");
    let zero = with(&(secret.clone() + &webhook("timestamp_header = \"X-Ts\"\ntolerance_secs = 0\n")));
    assert_issue(&zero, "webhook.tolerance_secs", "greater than 0");
    let ok = with(&(secret + &webhook("timestamp_header = \"X-Ts\"\ntolerance_secs = 300\n")));
    assert_eq!(issues(&ok), Vec::<String>::new());
}

#[test]
fn unknown_webhook_scheme_or_encoding_is_a_parse_error() {
    let secret = field("credentials", "signing", "secret", "");
    let scheme = with(&(secret.clone() + &webhook("")).replace("hmac-sha256", "md5"));
    assert!(parse_error(&scheme).1.contains("unknown variant `md5`"));
    let encoding = with(&(secret + &webhook("")).replace("base64", "base32"));
    assert!(parse_error(&encoding).1.contains("unknown variant `base32`"));
}

/// A `[webhook]` table of `scheme` with the `signing` secret and `extra` lines.
fn webhook_of(scheme: &str, extra: &str) -> String {
    let secret = field("credentials", "signing", "secret", "");
    with(&format!("{secret}[webhook]\nscheme = \"{scheme}\"\nsecret = \"signing\"\n{extra}"))
}

#[test]
fn builtin_webhook_schemes_need_only_the_secret() {
    for scheme in ["standard-webhooks", "github", "stripe", "slack"] {
        let text = webhook_of(scheme, "");
        assert_eq!(issues(&text), Vec::<String>::new(), "{scheme}");
        let spec = Manifest::parse_toml(&text).unwrap().webhook.unwrap();
        assert_eq!(spec.scheme.as_str(), scheme);
        assert_eq!(spec.tolerance(), DEFAULT_TOLERANCE_SECS);
    }
    for scheme in ["standard-webhooks", "stripe", "slack"] {
        let spec = Manifest::parse_toml(&webhook_of(scheme, "tolerance_secs = 60\n")).unwrap().webhook.unwrap();
        assert_eq!(spec.tolerance(), 60);
    }
}

#[test]
fn builtin_webhook_schemes_reject_generic_fields() {
    for (line, path) in [
        ("header = \"X-Sig\"", "webhook.header"),
        ("prefix = \"v1=\"", "webhook.prefix"),
        ("encoding = \"hex\"", "webhook.encoding"),
        ("timestamp_header = \"X-Ts\"", "webhook.timestamp_header"),
        ("signed_content = \"{body}\"", "webhook.signed_content"),
        ("key_encoding = \"base64\"", "webhook.key_encoding"),
        ("separator = \",\"", "webhook.separator"),
    ] {
        assert_issue(&webhook_of("stripe", &format!("{line}\n")), path, "is fixed by scheme \"stripe\"");
    }
}

#[test]
fn github_scheme_has_no_replay_window() {
    let text = webhook_of("github", "tolerance_secs = 300\n");
    assert_issue(&text, "webhook.tolerance_secs", "signs no timestamp");
    assert_issue(&webhook_of("slack", "tolerance_secs = 0\n"), "webhook.tolerance_secs", "greater than 0");
}

#[test]
fn generic_hmac_requires_header_and_encoding() {
    let found = issues(&webhook_of("hmac", ""));
    assert_eq!(
        found,
        [
            "webhook.header: is required by scheme \"hmac\"",
            "webhook.encoding: is required by scheme \"hmac\" (hex or base64)"
        ]
    );
    let full = webhook_of(
        "hmac",
        "header = \"X-Sig\"\nencoding = \"base64\"\nkey_encoding = \"hex\"\nseparator = \" \"\n\
         timestamp_header = \"X-Ts\"\nsigned_content = \"{timestamp}.{header:X-Id}.{body}\"\ntolerance_secs = 60\n",
    );
    assert_eq!(issues(&full), Vec::<String>::new());
    let spec = Manifest::parse_toml(&full).unwrap().webhook.unwrap();
    assert_eq!(spec.key_encoding, Some(KeyEncoding::Hex));
    let content = SignedContent::parse(spec.signed_content.as_deref().unwrap()).unwrap();
    assert_eq!(
        content.parts(),
        [
            TemplatePart::Timestamp,
            TemplatePart::Literal(".".into()),
            TemplatePart::Header("X-Id".into()),
            TemplatePart::Literal(".".into()),
            TemplatePart::Body
        ]
    );
}

#[test]
fn generic_hmac_signed_content_is_checked() {
    let base = "header = \"X-Sig\"\nencoding = \"hex\"\n";
    let bad =
        |template: &str, extra: &str| webhook_of("hmac", &format!("{base}{extra}signed_content = \"{template}\"\n"));
    assert_issue(
        &bad("{timestamp}", "timestamp_header = \"X-Ts\"\n"),
        "webhook.signed_content",
        "does not contain {body}",
    );
    assert_issue(&bad("{bdy}", ""), "webhook.signed_content", "unknown placeholder {bdy}");
    assert_issue(&bad("{body", ""), "webhook.signed_content", "unterminated");
    assert_issue(&bad("body}", ""), "webhook.signed_content", "without a matching");
    assert_issue(&bad("{header:X Id}{body}", ""), "webhook.signed_content", "not name a valid HTTP header");
    assert_issue(&bad("{timestamp}.{body}", ""), "webhook.signed_content", "requires webhook.timestamp_header");
    // A timestamp header whose value is not signed protects nothing.
    assert_issue(&bad("{body}", "timestamp_header = \"X-Ts\"\n"), "webhook.signed_content", "must contain {timestamp}");
    assert_issue(
        &webhook_of("hmac", &format!("{base}timestamp_header = \"X-Ts\"\n")),
        "webhook.signed_content",
        "not authenticated",
    );
}

#[test]
fn generic_hmac_separator_is_checked() {
    let base = "header = \"X-Sig\"\nencoding = \"hex\"\n";
    assert_issue(&webhook_of("hmac", &format!("{base}separator = \"\"\n")), "webhook.separator", "must not be empty");
    assert_issue(
        &webhook_of("hmac", &format!("{base}prefix = \"v1,\"\nseparator = \",\"\n")),
        "webhook.separator",
        "also occurs in webhook.prefix",
    );
}

#[test]
fn unknown_key_encoding_is_a_parse_error() {
    let text = webhook_of("hmac", "header = \"X-Sig\"\nencoding = \"hex\"\nkey_encoding = \"base32\"\n");
    assert!(parse_error(&text).1.contains("unknown variant `base32`"));
}

#[test]
fn builtin_webhook_spec_round_trips_without_generic_fields() {
    let m = Manifest::parse_toml(&webhook_of("standard-webhooks", "tolerance_secs = 120\n")).unwrap();
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["webhook"],
        serde_json::json!({"scheme": "standard-webhooks", "secret": "signing", "tolerance_secs": 120})
    );
    assert_eq!(serde_json::from_value::<Manifest>(json).unwrap(), m);
}

// ---- bundle ----

#[test]
fn bundle_id_and_title_are_checked() {
    assert_issue(&with("[bundle]\nid = \"Acme\"\ntitle = \"Acme\"\n"), "bundle.id", "is not a valid id");
    assert_issue(&with("[bundle]\nid = \"acme\"\ntitle = \"\"\n"), "bundle.title", "must not be empty");
}

// ---- reporting ----

#[test]
fn every_violation_is_reported_at_once() {
    let text = replacing("id = \"minimal\"", "id = \"X\"").replace("version = \"0.1.0\"", "version = \"one\"")
        + "\n"
        + &field("credentials", "k", "secret", "")
        + &field("credentials", "k", "secret", "");
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:?}");
    let err = Manifest::parse_toml(&text).unwrap_err();
    assert_eq!(err.issues().len(), 3);
    let message = err.to_string();
    assert!(message.starts_with("invalid manifest: id: "), "{message}");
    assert!(message.contains("; version: ") && message.contains("; credentials[1].key: "), "{message}");
}

#[test]
fn validate_checks_a_manifest_built_in_code() {
    let mut m = Manifest::parse_toml(VALID_MANIFEST).unwrap();
    m.allowed_hosts.push("{{config.nope}}".into());
    let err = m.validate().unwrap_err();
    assert_eq!(err.issues()[0].path, "allowed_hosts[2]");
}

// ---- types ----

#[test]
fn category_names_round_trip() {
    for c in Category::ALL {
        assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()));
    }
    let err = "crm".parse::<Category>().unwrap_err();
    assert!(err.to_string().contains("unknown category \"crm\""));
}

#[test]
fn dates_follow_the_calendar() {
    assert!(Date::new(2000, 2, 29).is_ok());
    assert!(Date::new(1900, 2, 29).is_err());
    assert!(Date::new(2024, 4, 31).is_err());
    assert!(Date::new(2024, 0, 1).is_err());
    assert_eq!("2024-12-31".parse::<Date>().unwrap().to_string(), "2024-12-31");
    assert!("2024-1-01".parse::<Date>().is_err());
    assert!("2024-01-+1".parse::<Date>().is_err());
}

#[test]
fn json_uses_the_toml_field_names_and_round_trips() {
    let m = Manifest::parse_toml(VALID_MANIFEST).unwrap();
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["category"], "notification-provider");
    assert_eq!(json["api_versions"][1]["sunset"], "2026-06-30");
    assert_eq!(json["api_versions"][0].get("sunset"), None);
    assert_eq!(json["credentials"][0]["type"], "secret");
    assert_eq!(json["allowed_hosts"][1], "{{config.base_url}}");
    assert_eq!(json["webhook"]["scheme"], "hmac-sha256");
    assert_eq!(json.get("bundle"), None);
    let back: Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
    let toml_text = toml::to_string(&m).unwrap();
    assert_eq!(Manifest::parse_toml(&toml_text).unwrap(), m);
}

#[test]
fn json_rejects_unknown_fields_too() {
    let mut json = serde_json::to_value(Manifest::parse_toml(MINIMAL_MANIFEST).unwrap()).unwrap();
    json["extra"] = serde_json::json!(1);
    let err = serde_json::from_value::<Manifest>(json).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"));
}
