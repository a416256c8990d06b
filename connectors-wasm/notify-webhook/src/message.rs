//! Turning a `notification` into an incoming-webhook message body.
//!
//! The body follows Slack's incoming-webhook format, which Mattermost and others accept too:
//! `{"text": ..., "blocks"?: [...], "username"?, "icon_emoji"?, "channel"?}`.

use patchbay_sdk::ConnectorError;
use patchbay_sdk::notification_provider::Notification;
use serde::Serialize;
use serde_json::Value;

/// Optional overrides from the installation's configuration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub channel: Option<String>,
}

/// The JSON body posted to the webhook.
#[derive(Debug, Serialize, PartialEq)]
pub struct Message {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Builds the message: `*subject*`, a newline, then the text (or the HTML reduced to text).
/// `blocks` in `template-data` are passed through; with blocks, `text` is the fallback shown in
/// notifications.
pub fn build(notification: &Notification, overrides: Overrides) -> Result<Message, ConnectorError> {
    let body = match (&notification.text, &notification.html) {
        (Some(text), _) if !text.trim().is_empty() => Some(text.clone()),
        (_, Some(html)) if !html.trim().is_empty() => Some(html_to_text(html)),
        _ => None,
    };
    let subject = notification.subject.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let text = match (subject, body) {
        (Some(subject), Some(body)) => format!("*{subject}*\n{body}"),
        (Some(subject), None) => format!("*{subject}*"),
        (None, Some(body)) => body,
        (None, None) => String::new(),
    };
    let blocks = template_blocks(notification.template_data.as_deref())?;
    if text.is_empty() && blocks.is_none() {
        return Err(ConnectorError::invalid_input("the notification has no subject, text, html or template blocks"));
    }
    Ok(Message {
        text,
        blocks,
        username: overrides.username,
        icon_emoji: overrides.icon_emoji,
        channel: overrides.channel,
    })
}

/// `blocks` from the template data, when it is a JSON object that has them.
fn template_blocks(template_data: Option<&str>) -> Result<Option<Value>, ConnectorError> {
    let Some(raw) = template_data else {
        return Ok(None);
    };
    let data: Value = serde_json::from_str(raw)
        .map_err(|e| ConnectorError::invalid_input(format!("template-data is not valid JSON: {e}")))?;
    Ok(match data {
        Value::Object(mut map) => map.remove("blocks").filter(|b| !b.is_null()),
        _ => None,
    })
}

/// A crude HTML-to-text reduction: drops tags (and `<script>`/`<style>` content), turns line
/// and block breaks into newlines (paragraphs end up separated by one blank line) and decodes
/// common entities. `&amp;`, `&lt;` and `&gt;` stay
/// escaped, which is exactly how Slack expects them in message text.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(start) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..start]);
        }
        let Some(len) = rest[start..].find('>') else {
            // An unterminated tag: keep the text as it is.
            if skip_until.is_none() {
                out.push_str(&rest[start..]);
            }
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + len].trim().to_ascii_lowercase();
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let closing = tag.starts_with('/');
        match skip_until {
            Some(end) if closing && name == end => skip_until = None,
            Some(_) => {}
            None if !closing && (name == "script" || name == "style") => {
                skip_until = Some(if name == "script" { "script" } else { "style" });
            }
            None if is_line_break(&name) => out.push('\n'),
            None => {}
        }
        rest = &rest[start + len + 1..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = out.replace("&nbsp;", " ").replace("&quot;", "\"").replace("&#39;", "'").replace("&apos;", "'");
    collapse_blank_lines(&decoded)
}

/// Tags that end a line of text (`<br>`, and both ends of block elements).
fn is_line_break(tag: &str) -> bool {
    matches!(tag, "br" | "p" | "div" | "li" | "tr" | "table" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// Trims each line and keeps at most one empty line in a row.
fn collapse_blank_lines(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> Notification {
        Notification {
            to: vec![],
            cc: vec![],
            bcc: vec![],
            from: None,
            reply_to: None,
            subject: None,
            text: None,
            html: None,
            template_id: None,
            template_data: None,
            attachments: vec![],
            categories: vec![],
            send_at: None,
            metadata: vec![],
            idempotency_key: "k".into(),
        }
    }

    #[test]
    fn subject_is_bold_and_followed_by_text() {
        let n = Notification {
            subject: Some("Deploy finished".into()),
            text: Some("All green.".into()),
            html: Some("<p>ignored</p>".into()),
            ..notification()
        };
        let m = build(&n, Overrides::default()).expect("builds");
        assert_eq!(m.text, "*Deploy finished*\nAll green.");
        let json = serde_json::to_value(&m).expect("serializes");
        assert_eq!(json, serde_json::json!({"text": "*Deploy finished*\nAll green."}));
    }

    #[test]
    fn html_is_reduced_when_there_is_no_text() {
        let n = Notification {
            html: Some(
                "<html><style>p{color:red}</style><h1>Hi</h1><p>Order&nbsp;<b>#42</b> &amp; co<br>shipped</p></html>"
                    .into(),
            ),
            ..notification()
        };
        let m = build(&n, Overrides::default()).expect("builds");
        assert_eq!(m.text, "Hi\n\nOrder #42 &amp; co\nshipped");
    }

    #[test]
    fn blocks_and_overrides_pass_through() {
        let n = Notification {
            text: Some("fallback".into()),
            template_data: Some(r#"{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]}"#.into()),
            ..notification()
        };
        let overrides = Overrides {
            username: Some("patchbay".into()),
            icon_emoji: Some(":robot_face:".into()),
            channel: Some("#ops".into()),
        };
        let json = serde_json::to_value(build(&n, overrides).expect("builds")).expect("serializes");
        assert_eq!(json["blocks"][0]["type"], "section");
        assert_eq!(json["username"], "patchbay");
        assert_eq!(json["icon_emoji"], ":robot_face:");
        assert_eq!(json["channel"], "#ops");
    }

    #[test]
    fn empty_notification_is_rejected() {
        assert!(build(&notification(), Overrides::default()).is_err());
        let bad_json = Notification { text: Some("x".into()), template_data: Some("{nope".into()), ..notification() };
        assert!(build(&bad_json, Overrides::default()).is_err());
    }
}
