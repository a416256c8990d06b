// Verifies captured webhook requests with the reference `standardwebhooks` library from npm, as an
// independent check of patchbay's standard-webhooks connector (tests/all/standard_webhooks.rs).
//
// Usage: node verify-standard-webhooks.mjs [input.json]    (reads stdin without an argument)
//
// Input:  {"secret": "whsec_...", "requests": [{"name": "...", "headers": {"webhook-id": "...",
//          "webhook-timestamp": "...", "webhook-signature": "..."}, "body_base64": "..."}]}
// Output: one JSON line per request on stdout, {"name", "ok": true, "payload": <parsed body>} or
//         {"name", "ok": false, "error": "..."}.
// Exit:   0 when every request verifies, 1 when any does not, 2 for unusable input (including no
//         requests at all, so an empty capture cannot pass).

import { readFileSync } from "node:fs";
import standardwebhooks from "standardwebhooks";

const { Webhook } = standardwebhooks;

function fail(message) {
  console.error(`verify-standard-webhooks: ${message}`);
  process.exit(2);
}

let input;
try {
  input = JSON.parse(readFileSync(process.argv[2] ?? 0, "utf8"));
} catch (e) {
  fail(`cannot read the input JSON: ${e.message}`);
}
if (typeof input?.secret !== "string" || !Array.isArray(input.requests) || input.requests.length === 0) {
  fail('expected {"secret": "whsec_...", "requests": [ ...at least one... ]}');
}

let webhook;
try {
  webhook = new Webhook(input.secret);
} catch (e) {
  fail(`unusable secret: ${e.message}`);
}

let failures = 0;
input.requests.forEach((request, index) => {
  const name = request.name ?? `request ${index}`;
  try {
    // The raw bytes as received: the signature covers them exactly.
    const body = Buffer.from(request.body_base64 ?? "", "base64");
    const payload = webhook.verify(body, request.headers ?? {});
    console.log(JSON.stringify({ name, ok: true, payload }));
  } catch (e) {
    failures += 1;
    console.log(JSON.stringify({ name, ok: false, error: `${e.name}: ${e.message}` }));
  }
});

console.error(`verify-standard-webhooks: ${input.requests.length - failures} of ${input.requests.length} verified`);
process.exit(failures === 0 ? 0 : 1);
