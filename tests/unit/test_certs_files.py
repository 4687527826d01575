"""Certificates in a directory, and the `fma-certs` command line on files."""

from __future__ import annotations

import argparse
import json
import ssl
import stat
from pathlib import Path

import pytest

from certs.bundle import StoredMaterial
from certs.cli import main, parse_duration
from certs.files import ensure_directory, read_directory

NAMES = ["localhost"]


def test_ensure_writes_four_files_with_private_keys(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    outcome = ensure_directory(target, dns_names=NAMES, ip_addresses=["127.0.0.1"])
    assert sorted(p.name for p in target.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name, mode in (
        ("ca.key", 0o600),
        ("tls.key", 0o600),
        ("ca.crt", 0o644),
        ("tls.crt", 0o644),
    ):
        assert stat.S_IMODE((target / name).stat().st_mode) == mode
    assert read_directory(target) == outcome.certificates.material()


def test_files_make_a_working_tls_pair(tmp_path: Path) -> None:
    ensure_directory(tmp_path, dns_names=NAMES, ip_addresses=["127.0.0.1"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_ensure_is_idempotent_and_touches_nothing(tmp_path: Path) -> None:
    ensure_directory(tmp_path, dns_names=NAMES)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    outcome = ensure_directory(tmp_path, dns_names=NAMES)
    assert not outcome.changed
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


def test_leaf_reissue_keeps_the_ca_files(tmp_path: Path) -> None:
    ensure_directory(tmp_path, dns_names=NAMES)
    ca = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "ca.key").read_bytes()
    leaf = (tmp_path / "tls.crt").read_bytes()
    outcome = ensure_directory(tmp_path, dns_names=["other"])
    assert outcome.leaf_issued and not outcome.ca_rotated
    assert ((tmp_path / "ca.crt").read_bytes(), (tmp_path / "ca.key").read_bytes()) == ca
    assert (tmp_path / "tls.crt").read_bytes() != leaf


def test_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    assert read_directory(tmp_path / "none") == StoredMaterial()
    (tmp_path / "ca.crt").write_bytes(b"not pem")
    assert read_directory(tmp_path).ca_cert is None


def test_fresh_replaces_everything(tmp_path: Path) -> None:
    first = ensure_directory(tmp_path, dns_names=NAMES)
    second = ensure_directory(tmp_path, dns_names=NAMES, fresh=True)
    assert second.ca_rotated
    assert second.certificates.ca.cert_pem != first.certificates.ca.cert_pem
    assert (tmp_path / "ca.crt").read_bytes() == second.certificates.ca.cert_pem


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else {}), captured.err


def test_cli_create_ensure_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path)
    names = ["--service", "fma-webhook", "--namespace", "fma-system", "--ip-address", "127.0.0.1"]
    code, created, _ = run(capsys, "create", "--dir", target, *names)
    assert code == 0 and created["caRotated"] and created["leafIssued"]
    serving = created["serving"]
    assert isinstance(serving, dict)
    assert serving["dnsNames"][-1] == "fma-webhook.fma-system.svc.cluster.local"
    code, ensured, _ = run(capsys, "ensure", "--dir", target, *names)
    assert code == 0 and ensured["changed"] is False
    code, shown, _ = run(capsys, "show", "--dir", target)
    assert code == 0 and shown["serving"] == serving and shown["bundleCertificates"] == 1


def test_cli_create_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "create", "--dir", str(tmp_path), "--dns-name", "a")[0] == 0
    code, _, err = run(capsys, "create", "--dir", str(tmp_path), "--dns-name", "a")
    assert code == 1 and "already holds certificates" in err
    code, out, _ = run(capsys, "create", "--dir", str(tmp_path), "--dns-name", "a", "--force")
    assert code == 0 and out["caRotated"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ensure", "--dir", "d"], "give --service"),
        (["ensure", "--dir", "d", "--service", "s"], "--service needs --namespace"),
        (["ensure", "--dir", "d", "--dns-name", "a", "--renew-before", "400d"], "shorter than"),
        (["ensure", "--secret", "s", "--dns-name", "a"], "--secret needs --namespace"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / a) if a == "d" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "days", "seconds"),
    [("30d", 30, 0), ("12h", 0, 43200), ("1d12h", 1, 43200), ("90m", 0, 5400), ("15s", 0, 15)],
)
def test_durations(text: str, days: int, seconds: int) -> None:
    delta = parse_duration(text)
    assert (delta.days, delta.seconds) == (days, seconds)


@pytest.mark.parametrize("text", ["", "d", "1w", "1.5d", "-1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)
