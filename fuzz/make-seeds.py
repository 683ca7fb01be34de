#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus (fuzz/corpus/<target>/) from the fixtures in
tests/data: GitHub's published payloads and the envelopes the Functions host builds from them
(shaped as tests/common/host.rs builds them). Run from the repository root."""
import json, os, urllib.parse

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = os.path.join(root, "tests", "data")
corpus = os.path.join(root, "fuzz", "corpus")

def write(target, name, content):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())

payloads = {}
for f in ["workflow_job__queued.payload.json", "workflow_job__in_progress.payload.json",
          "workflow_job__completed.success.with-organization.payload.json", "ping__payload.json"]:
    payloads[f] = open(os.path.join(data, f), "rb").read()

def http_envelope(body, headers):
    hs = dict(headers, Host="aci-runners-test.azurewebsites.net", **{"Content-Length": str(len(body))})
    req = {"Url": "https://aci-runners-test.azurewebsites.net/api/github/webhook", "Method": "POST", "Query": {},
           "Headers": {k: [v] for k, v in hs.items()}, "Params": {}, "Identities": [], "Body": body.decode()}
    meta = {"Query": {}, "Headers": hs, "sys": {"MethodName": "github-webhook", "UtcNow": "2026-11-28T12:00:00Z", "RandGuid": "0"}}
    return json.dumps({"Data": {"req": req}, "Metadata": meta}, separators=(",", ":"))

for name, body in payloads.items():
    event = "ping" if name.startswith("ping") else "workflow_job"
    write("host_envelope", "http-" + name, http_envelope(body, {"Content-Type": "application/json", "X-GitHub-Event": event,
                                                                 "X-Hub-Signature-256": "sha256=" + "0" * 64}))
    # webhook_delivery: first byte 0 = JSON, 1 = form
    write("webhook_delivery", "json-" + name, b"\x00" + body)
    write("webhook_delivery", "form-" + name, b"\x01" + b"payload=" + urllib.parse.quote_plus(body).encode())

messages = [
    {"op": "create", "runner": "aci-runner-4242", "repository": "Codertocat/Hello-World", "origin": "webhook", "job": 4242,
     "run": 2202229078, "attempt": 1, "labels": ["self-hosted", "linux", "x64", "aci"]},
    {"op": "create", "runner": "aci-runner-2202229078-1-e3b0c442", "repository": "octo-org/octo-repo", "origin": "workflow",
     "run": 2202229078, "attempt": 1, "labels": ["self-hosted", "linux", "x64", "aci", "run-42"]},
    {"op": "release", "runner": "aci-runner-4242", "repository": "Codertocat/Hello-World", "only_if_idle": True},
]
for i, m in enumerate(messages):
    text = json.dumps(m, separators=(",", ":"))
    write("queue_message", f"message-{i}.json", text)
    env = {"Data": {"request": json.dumps(text)}, "Metadata": {"DequeueCount": "1", "Id": "\"abc\"", "sys": {"MethodName": "provision"}}}
    write("host_envelope", f"queue-{i}.json", json.dumps(env, separators=(",", ":")))
write("host_envelope", "timer.json", '{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}')

# oidc_token: GitHub's documented token (header and claims) with a made-up signature, and the
# same with the algorithms an attacker would try.
import base64
def b64(v): return base64.urlsafe_b64encode(json.dumps(v, separators=(",", ":")).encode()).rstrip(b"=").decode()
doc = json.load(open(os.path.join(data, "oidc-example-token.docs.json")))
sig = base64.urlsafe_b64encode(b"\x00" * 256).rstrip(b"=").decode()
for name, alg in [("rs256", "RS256"), ("none", "none"), ("hs256", "HS256")]:
    header = dict(doc["header"], alg=alg)
    write("oidc_token", f"docs-{name}.jwt", f"{b64(header)}.{b64(doc['claims'])}.{sig}")
write("oidc_token", "two-parts.jwt", f"{b64(doc['header'])}.{b64(doc['claims'])}")
