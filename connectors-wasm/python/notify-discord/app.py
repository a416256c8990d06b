"""notify-discord: the `notification-provider` world of patchbay:connector@0.1.0, in Python.

Sends a notification as a message through a Discord channel webhook ("Execute Webhook",
POST /webhooks/{id}/{token}?wait=true) and reads a sent message back for `get-status`
(GET /webhooks/{id}/{token}/messages/{message.id}). Built with componentize-py:

    componentize-py -d <wit> -w notification-provider componentize app -o notify-discord.wasm

componentize-py generates the `wit_world` package at build time: each exported interface is a
class of this module named after the interface (`Lifecycle`, `Notifications`); a function whose
WIT result is `result<T, connector-error>` returns T or raises `Err(ConnectorError_...)`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.lifecycle import CredentialCheck, HealthReport, HealthStatus
from wit_world.exports.notifications import (
    DeliveryStatus,
    Notification,
    Receipt,
    StatusReport,
)
from wit_world.imports import credentials, http, log
from wit_world.imports.types import (
    ConnectorError_Permanent,
    ConnectorError_RateLimited,
    ConnectorError_Retryable,
    ConnectorError_Unauthorized,
    Failure,
    RateLimit,
)

# Discord's documented limits for a webhook message.
MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_USERNAME = 80


def permanent(code: str, message: str) -> Err:
    return Err(ConnectorError_Permanent(Failure(code, message)))


def retryable(code: str, message: str) -> Err:
    return Err(ConnectorError_Retryable(Failure(code, message)))


def webhook_url() -> str:
    """The configured webhook URL without query or fragment; raises a permanent error when unset."""
    url = (credentials.config("webhook_url") or "").strip()
    if not url:
        raise permanent("missing_config", "`webhook_url` is not set for this installation")
    lower = url.lower()
    if not (lower.startswith("https://") or lower.startswith("http://")) or any(c.isspace() for c in url):
        raise permanent("invalid_config", "`webhook_url` must be an absolute https URL")
    return url.split("#", 1)[0].split("?", 1)[0].rstrip("/")


def info(message: str, **fields: object) -> None:
    log.log(log.Level.INFO, message, [(k, str(v)) for k, v in fields.items()])


def warn(message: str, **fields: object) -> None:
    log.log(log.Level.WARN, message, [(k, str(v)) for k, v in fields.items()])


def from_http_error(e: object) -> Err:
    """The host refused or could not complete a request."""
    if isinstance(e, http.HttpError_Timeout):
        return retryable("timeout", "Discord did not answer in time")
    if isinstance(e, http.HttpError_ConnectionFailed):
        return retryable("connection_failed", e.value)
    if isinstance(e, http.HttpError_DestinationNotAllowed):
        return permanent("destination_not_allowed", e.value)
    if isinstance(e, http.HttpError_AddressBlocked):
        return permanent("address_blocked", e.value)
    if isinstance(e, http.HttpError_ResponseTooLarge):
        return permanent("response_too_large", f"the response exceeded the host's cap of {e.value} bytes")
    if isinstance(e, http.HttpError_TooManyRequests):
        return permanent("too_many_requests", f"the call's budget of {e.value} HTTP requests is spent")
    return permanent("invalid_request", str(getattr(e, "value", e)))


def send_request(method: http.Method, url: str, body: bytes | None) -> http.Response:
    headers = [("accept", "application/json")]
    if body is not None:
        headers.append(("content-type", "application/json"))
    try:
        return http.send(http.Request(method, url, headers, body, None, False))
    except Err as e:
        raise from_http_error(e.value)


def from_status(resp: http.Response) -> Err:
    """Discord's error answers: `{"code": 50006, "message": "Cannot send an empty message"}`;
    429 carries `retry_after` in seconds (body) and `Retry-After` (header)."""
    status = resp.status
    try:
        doc = json.loads(resp.body.decode("utf-8"))
    except ValueError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    detail = str(doc.get("message") or resp.body.decode("utf-8", "replace").strip())[:300]
    message = f"Discord answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        retry = doc.get("retry_after")
        if not isinstance(retry, (int, float)):
            header = next((v for k, v in resp.headers if k.lower() == "retry-after"), None)
            try:
                retry = float(header) if header is not None else 1.0
            except ValueError:
                retry = 1.0
        return Err(ConnectorError_RateLimited(RateLimit(max(0, int(retry * 1000)), message)))
    code = f"discord_{doc['code']}" if isinstance(doc.get("code"), int) else f"http_{status}"
    if status in (401, 403):
        return Err(ConnectorError_Unauthorized(Failure(code, message)))
    if status == 408 or 500 <= status <= 599:
        return retryable(code, message)
    return permanent(code, message)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_message(n: Notification) -> dict:
    """Execute Webhook's JSON body: plain `content`, or an embed when there is a subject or the
    text is longer than a message may be. Mentions are never parsed, so a notification cannot
    ping @everyone or a role."""
    text = (n.text or "").strip() or (n.html or "").strip()
    subject = (n.subject or "").strip()
    msg: dict = {"allowed_mentions": {"parse": []}}
    if subject or len(text) > MAX_CONTENT:
        embed = {"description": clip(text, MAX_DESCRIPTION)} if text else {}
        if subject:
            embed["title"] = clip(subject, MAX_TITLE)
        msg["embeds"] = [embed]
    elif text:
        msg["content"] = text
    else:
        raise permanent("invalid_input", "the notification has no subject, text or html")
    username = (credentials.config("username") or "").strip()
    if username:
        msg["username"] = clip(username, MAX_USERNAME)
    avatar = (credentials.config("avatar_url") or "").strip()
    if avatar:
        msg["avatar_url"] = avatar
    return msg


def is_snowflake(value: str) -> bool:
    return 0 < len(value) <= 20 and value.isascii() and value.isdigit()


class Lifecycle(exports.Lifecycle):
    def health_check(self) -> HealthReport:
        """GET on the webhook URL answers the webhook object when the URL (and its token) is valid."""
        try:
            url = webhook_url()
        except Err as e:
            return HealthReport(HealthStatus.UNHEALTHY, e.value.value.message)
        try:
            resp = send_request(http.Method.GET, url, None)
        except Err as e:
            return HealthReport(HealthStatus.DEGRADED, e.value.value.message)
        if 200 <= resp.status <= 299:
            return HealthReport(HealthStatus.HEALTHY, None)
        return HealthReport(HealthStatus.UNHEALTHY, f"Discord answered HTTP {resp.status} for the webhook")

    def validate_credentials(self) -> CredentialCheck:
        url = webhook_url()
        resp = send_request(http.Method.GET, url, None)
        if resp.status in (401, 403, 404):
            return CredentialCheck(False, None, f"Discord does not know this webhook (HTTP {resp.status})")
        if not 200 <= resp.status <= 299:
            raise from_status(resp)
        try:
            doc = json.loads(resp.body.decode("utf-8"))
        except ValueError:
            doc = {}
        name = doc.get("name") if isinstance(doc, dict) else None
        return CredentialCheck(True, name if isinstance(name, str) else None, None)


class Notifications(exports.Notifications):
    def send(self, notification: Notification) -> Receipt:
        url = webhook_url()
        if notification.attachments:
            warn("Discord webhooks take files only as multipart uploads; attachments dropped",
                 count=len(notification.attachments))
        body = json.dumps(build_message(notification), separators=(",", ":")).encode()
        resp = send_request(http.Method.POST, url + "?wait=true", body)
        if not 200 <= resp.status <= 299:
            raise from_status(resp)
        message_id = None
        try:
            doc = json.loads(resp.body.decode("utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("id"), str):
                message_id = doc["id"]
        except ValueError:
            pass
        info("Discord accepted the message", status=resp.status, id=message_id or "none")
        accepted = [r.address for r in (*notification.to, *notification.cc, *notification.bcc)]
        return Receipt(message_id, accepted or ["webhook"], [])

    def get_status(self, message_id: str) -> StatusReport:
        # A message id is a snowflake: digits only, so it cannot change the request's path.
        if not is_snowflake(message_id):
            raise permanent("invalid_input", "a Discord message id is a number (a snowflake)")
        resp = send_request(http.Method.GET, f"{webhook_url()}/messages/{message_id}", None)
        if resp.status == 404:
            return StatusReport(message_id, DeliveryStatus.UNKNOWN, "Discord has no such message (deleted, or sent by another webhook)", None)
        if not 200 <= resp.status <= 299:
            raise from_status(resp)
        return StatusReport(message_id, DeliveryStatus.DELIVERED, None, None)
