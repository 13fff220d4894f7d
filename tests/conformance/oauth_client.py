#!/usr/bin/env python3
"""The client the MCP conformance suite drives: codemode itself, end to end.

The suite runs ``oauth_client.py <server URL>`` (``MCP_CONFORMANCE_SCENARIO`` and, for
pre-registration, ``MCP_CONFORMANCE_CONTEXT`` in the environment). This script does what an
operator and a consenting user would:

1. starts ``codemode serve`` (the binary in ``CODEMODE_BIN``) on a loopback port with a fresh
   database;
2. adds the server as an HTTP client through the operator API (``auth_type: "oauth"``, with the
   pre-registered client id and secret when the context has them);
3. while codemode answers that the client waits for authorization, opens its ``authorize_url``
   as a browser would: the test authorization server consents at once and redirects to
   codemode's ``/api/oauth/callback``, which finishes the exchange and connects the client;
4. calls each of the server's tools through ``POST /v1/mcp/tool/execute``; when a call fails
   because the server asked for more scope, the client waits for its operator again (a caller
   is never given the operator's link): the script, as the operator, reads the new
   ``authorize_url`` from ``GET /api/mcp/clients``, authorizes, and calls again;
5. stops codemode. The exit status is 0 when every tool call succeeded.

Only the Python standard library is used, so the suite needs nothing installed.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# The Client ID Metadata Document URL the suite's CIMD scenario expects codemode to present.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
# Authorizations tried for one client before giving up (the suite's retry limit is 3).
MAX_AUTHORIZATIONS = 4
DEADLINE_S = 25


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def request(method, url, body=None, follow=True):
    """(status, headers, body text) of one HTTP request; errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=20) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def log(*parts):
    print("[codemode-conformance]", *parts, file=sys.stderr, flush=True)


def start_codemode(workdir):
    config = os.path.join(workdir, "codemode.json")
    with open(config, "w") as f:
        json.dump({"oauth": {"client_metadata_url": CLIENT_METADATA_URL}}, f)
    process = subprocess.Popen(
        [os.environ["CODEMODE_BIN"], "serve", "--port", "0", "--log-json",
         "--config", config, "--db", os.path.join(workdir, "codemode.db")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in process.stdout:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", {})
        if fields.get("message") == "codemode is listening":
            port = fields["address"].rsplit(":", 1)[1]
            # Keep reading its log, so it never blocks on a full pipe; shown with ours.
            threading.Thread(target=lambda: [sys.stderr.write(l) for l in process.stdout],
                             daemon=True).start()
            return process, f"http://localhost:{port}"
    raise SystemExit("codemode exited before listening")


def authorize(authorize_url):
    """Opens the authorization URL as a consenting user's browser: the authorization server
    redirects to codemode's callback, which is then loaded."""
    status, headers, _ = request("GET", authorize_url, follow=False)
    location = headers.get("location") if headers else None
    if status not in (301, 302, 303, 307) or not location:
        log("the authorization server did not redirect:", status)
        return False
    status, _, text = request("GET", location)
    log("callback:", status, text[text.find('id="outcome">'):][:160])
    return status == 200


def client_status(base):
    _, _, text = request("GET", f"{base}/api/mcp/clients")
    return next(c for c in json.loads(text) if c["name"] == "conformance")


def main():
    server_url = sys.argv[-1]
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    workdir = tempfile.mkdtemp(prefix="codemode-conformance-")
    process, base = start_codemode(workdir)
    signal.signal(signal.SIGTERM, lambda *_: (process.terminate(), sys.exit(1)))
    try:
        client = {"name": "conformance", "connection_type": "http",
                  "connection_string": server_url, "auth_type": "oauth"}
        if context.get("client_id"):
            client["oauth_config"] = {"client_id": context["client_id"],
                                      "client_secret": context.get("client_secret")}
        status, _, text = request("POST", f"{base}/api/mcp/client", client)
        log("add:", status, text[:300])
        authorizations = 0
        state = client_status(base)
        while state["state"] in ("pending_authorization", "needs_reauth") \
                and state.get("authorize_url") and authorizations < MAX_AUTHORIZATIONS:
            authorizations += 1
            authorize(state["authorize_url"])
            state = client_status(base)
        log("client:", state["state"], state.get("last_error") or "", state.get("tools"))
        if state["state"] != "connected":
            return 1
        ok = True
        for tool in state["tools"]:
            arguments = {"a": 1, "b": 2} if tool == "add_numbers" else {}
            call = {"id": "1", "type": "function",
                    "function": {"name": f"conformance-{tool}", "arguments": json.dumps(arguments)}}
            for _ in range(MAX_AUTHORIZATIONS):
                status, _, text = request("POST", f"{base}/v1/mcp/tool/execute", call)
                log("call", tool, status, text[:300])
                waiting = client_status(base).get("authorize_url")
                if status != 200 and waiting and authorizations < MAX_AUTHORIZATIONS:
                    authorizations += 1
                    authorize(waiting)
                    continue
                break
            ok = ok and status == 200
        return 0 if ok else 1
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    signal.alarm(DEADLINE_S)
    sys.exit(main())
