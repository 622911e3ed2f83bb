"""A FakeProvider and a tiny resource server in a process of their own, steered through stdin.

    python -m benchmarks._provider

The benchmark harness starts this, so that the provider's work (a Werkzeug server thread per
connection) does not compete with the measured code for the harness's GIL.

The resource server (``api_url``) answers any ``GET`` carrying ``Authorization: Bearer ...`` with
200 and a small JSON body, over keep-alive HTTP/1.1 (``http.server``, a thread per connection),
without checking the token: a downstream API that costs little, so that what the client library
spends around the call shows. The provider's own ``/api/notes`` checks the token (the refresh
benchmark uses it) but costs about 1.3 ms per call on its Werkzeug development server.

It prints one JSON line with the provider's URL, client credentials and ``api_url``, then answers
one JSON line per command line:

    {"op": "calls", "endpoint": "token", "grant_type": "refresh_token"}  -> {"result": 3}
    {"op": "set", "name": "access_token_ttl", "value": 3}                -> {"result": null}
    {"op": "issue_token"}                                                -> {"result": {...}}
    {"op": "stop"}                                                       -> the process exits

End of input stops it too.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from flask_oauth2_client.testing import FakeProvider

SETTABLE = {"access_token_ttl", "rotate_refresh_tokens"}


def answer(result: Any = None, error: str | None = None) -> None:
    sys.stdout.write(json.dumps({"result": result, "error": error}) + "\n")
    sys.stdout.flush()


class ResourceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # one write per response (flushed by http.server), not header + body: no
    disable_nagle_algorithm = True  # Nagle / delayed-ACK stall of 40 ms on a keep-alive connection

    def do_GET(self) -> None:
        ok = self.headers.get("Authorization", "").startswith("Bearer ")
        body = b'{"notes": ["one", "two"]}' if ok else b'{"error": "invalid_token"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if not ok:
            self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def main() -> int:
    resources = ThreadingHTTPServer(("127.0.0.1", 0), ResourceHandler)
    resources.daemon_threads = True
    threading.Thread(target=resources.serve_forever, daemon=True).start()
    with FakeProvider(rotate_refresh_tokens=True) as provider:
        answer(
            {
                "url": provider.url,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
                "api_url": f"http://127.0.0.1:{resources.server_address[1]}/notes",
            }
        )
        for line in sys.stdin:
            command = json.loads(line)
            op = command.get("op")
            try:
                if op == "stop":
                    answer()
                    break
                if op == "calls":
                    answer(provider.calls(command["endpoint"], grant_type=command.get("grant_type")))
                elif op == "set" and command.get("name") in SETTABLE:
                    setattr(provider, command["name"], command["value"])
                    answer()
                elif op == "issue_token":
                    answer(provider.issue_token())
                else:
                    answer(error=f"unknown command {line.strip()}")
            except Exception as exc:  # the harness shows it; the provider keeps serving
                answer(error=f"{type(exc).__name__}: {exc}")
    resources.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
