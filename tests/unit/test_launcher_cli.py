"""Command-line flags, and the control authentication the launcher insists on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contract import auth
from launcher.cli import parse_args
from launcher.settings import DEFAULT_ENTRY, Settings
from tests.controlkit import control_kit


def test_defaults_match_the_reference_where_it_has_them() -> None:
    settings = parse_args([])
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 8001, "info")
    assert (settings.mock_gpus, settings.mock_gpu_count) == (False, 8)
    assert (settings.start_timeout, settings.stop_grace) == (600.0, 10.0)
    assert settings.instance_entry == DEFAULT_ENTRY
    assert settings == Settings(), "every flag defaults to its Settings default"


def _launcher(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`fma-launcher --port 0`, stopped at once if it starts (a bad port keeps it from serving)."""
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", "--mock-gpus", "--port", "-1"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_launcher_will_not_serve_an_open_api_unless_told(tmp_path: Path) -> None:
    """Secure by default: without the control bundle the launcher exits 2 naming the fix."""
    refused = _launcher({})
    assert refused.returncode == 2
    assert auth.TRUST_ENV in refused.stderr and f"{auth.MODE_ENV}=off" in refused.stderr
    kit = control_kit(tmp_path / "control")
    no_uid = _launcher({auth.TRUST_ENV: kit.auth.trust_pem()})
    assert no_uid.returncode == 2 and auth.POD_UID_ENV in no_uid.stderr
    for env in (kit.env("launcher-uid"), {auth.MODE_ENV: auth.MODE_OFF}):
        started = _launcher(env)  # past the check: it fails only on the impossible port
        assert auth.TRUST_ENV not in started.stderr, started.stderr
