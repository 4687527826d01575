"""A container stand-in for the hollow-kubelet tests: an HTTP server on the Pod's own IP.

    python3 hollow_server.py [--port N] [--ignore-sigterm] [--exit-code N]

Binds $POD_IP:<port> (the container port), answers `GET /healthz` with 200 and `GET /info`
with its pid, argv and environment, so a test can see what the kubelet gave the process. With
`--exit-code N` it prints a line and exits at once with that code instead of serving.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            body = b"ok"
        elif self.path == "/info":
            body = json.dumps(
                {
                    "pid": os.getpid(),
                    "argv": sys.argv[1:],
                    "cwd": str(Path.cwd()),
                    "env": dict(os.environ),
                }
            ).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--exit-code", type=int, default=None)
    args, _ = parser.parse_known_args()
    if args.exit_code is not None:
        print(f"exiting with {args.exit_code}", flush=True)
        return int(args.exit_code)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    host = os.environ["POD_IP"]
    server = ThreadingHTTPServer((host, args.port), Handler)
    print(f"serving on {host}:{args.port} argv={sys.argv[1:]}", flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
