"""Only the controller drives launchers and requesters (contracts §14), on the local cluster.

A tenant's Pod in another namespace, on the same node, tries every mutating call of the launcher
API and the requester's SPI against a bound, serving pair: without a token, with the
controller's token for another Pod, and with a token it signed under a CA of its own that claims
the controller's identity. Each is refused and nothing changes; the controller's own actuation
(cold here, then hot and warm) goes on.
`test_control_auth_off.py` shows the compatibility switch.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest

from contract import auth, keys
from contract.launcher import LAUNCHER_PORT
from contract.requester import PROBES_PORT, PROXY_CONFIG_PATH, SPI_PORT
from controlauth import controller_auth_from_dir
from localcluster.controlplane import LocalCluster
from localcluster.fma.controller_process import issue_control_credential
from localcluster.fma.environment import FmaEnvironment, controller_args, fma_environment
from localcluster.fma.manifests import CONTROL_TRUST_CONFIG_MAP, FMA_IMAGE, requester_template
from tests.e2e import inspect as i

LC: Final = "auth-lc"
MARKER: Final = "INTRUDER-WAS-HERE"

# The intruder: plain Python in a Pod, given its targets as JSON in argv[1]; it prints one JSON
# object {attempt: HTTP status}. It forges a token under a CA of its own that claims the
# controller's identity, with everything else right (audience, method, path, body hash).
INTRUDER: Final = r"""
import base64, datetime as dt, hashlib, json, secrets, sys, time
import httpx, jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

t = json.loads(sys.argv[1])
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fma-controller")])
now = dt.datetime.now(dt.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(1)
    .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    .add_extension(x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(t["identity"])]), False)
    .sign(key, hashes.SHA256()))

def forged(method, url, body, uid):
    path = httpx.URL(url).raw_path.decode()
    claims = {"aud": uid, "iat": int(time.time()), "exp": int(time.time()) + 60,
              "jti": secrets.token_hex(8), "htm": method, "htu": path,
              "bh": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()}
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    token = jwt.encode(claims, key, algorithm="ES256", headers={"typ": t["typ"], "x5c": x5c})
    return {"Authorization": "Bearer " + token}

L, S = t["launcher"] + "/v2/vllm/instances", t["spi"]
lu, ru = t["launcher_uid"], t["requester_uid"]
calls = {
    "create instance": ("PUT", L + "/evil", b'{"options": "--port 9"}', lu),
    "delete instance": ("DELETE", L + "/" + t["instance"], b"", lu),
    "delete all instances": ("DELETE", L, b"", lu),
    "become unready": ("POST", S + "/v1/become-unready", b"", ru),
    "append to the log": ("POST", S + "/v1/set-log?startPos=0", t["marker"].encode(), ru),
    "point the proxy elsewhere": ("PUT", S + t["proxy_path"], b'{"address": "::1", "port": 9}', ru),
}
results = {}
with httpx.Client(timeout=10) as http:
    for what, (method, url, body, uid) in calls.items():
        for how, headers in (("bare", {}), ("forged", forged(method, url, body, uid)),
                             ("stolen", {"Authorization": t["stolen"]})):
            headers = {**headers, "Content-Type": "application/json"}
            answer = http.request(method, url, content=body, headers=headers)
            results[what + " / " + how] = answer.status_code
print(json.dumps(results), flush=True)
"""


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FmaEnvironment]:
    workdir = tmp_path_factory.mktemp("e2e-auth")
    with fma_environment(cluster, workdir, nodes=1, gpus_per_node=2) as environment:
        environment.apply_launcher_config(LC, max_instances=2)
        for name, port in (("model-a", 8005), ("model-b", 8006), ("model-c", 8007)):
            environment.apply_isc(name, lc=LC, port=port)
        environment.start_controller(*controller_args())
        yield environment


def _ip(pod: dict[str, Any]) -> str:
    return str(pod["status"]["podIP"])


def _state(launcher: dict[str, Any], requester: dict[str, Any]) -> dict[str, Any]:
    """What an intruder would change: the instances, readiness, the proxy's target."""
    spi = f"http://{_ip(requester)}:{SPI_PORT}"
    with httpx.Client(timeout=10) as http:
        listed = http.get(f"http://{_ip(launcher)}:{LAUNCHER_PORT}/v2/vllm/instances").json()
        return {
            "instances": sorted(x["instance_id"] for x in listed["instances"]),
            "ready": http.get(f"http://{_ip(requester)}:{PROBES_PORT}/ready").status_code,
            "proxy": http.get(spi + PROXY_CONFIG_PATH).json(),
        }


def _intrude(env: FmaEnvironment, targets: dict[str, Any]) -> dict[str, int]:
    """Runs the intruder Pod in a namespace of its own; returns what it printed."""
    tenant = f"tenant-{secrets.token_hex(3)}"
    env.core.create_namespace({"metadata": {"name": tenant}})
    try:
        pod = {
            "metadata": {"name": "intruder"},
            "spec": {
                "nodeName": env.nodes[0],
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,  # a tenant needs no API access here
                "containers": [
                    {
                        "name": "intruder",
                        "image": FMA_IMAGE,
                        "command": ["python", "-c", INTRUDER, json.dumps(targets)],
                    }
                ],
            },
        }
        env.core.create_namespaced_pod(tenant, pod)

        def finished() -> str | None:
            phase = env.core.read_namespaced_pod("intruder", tenant).status.phase
            return str(phase) if phase in ("Succeeded", "Failed") else None

        phase = env.wait("the intruder Pod to finish", finished, timeout=60)
        log = env.core.read_namespaced_pod_log("intruder", tenant)
        assert phase == "Succeeded", log
        return dict(json.loads(log.strip().splitlines()[-1]))
    finally:
        env.core.delete_namespace(tenant)


def test_a_tenant_pod_can_neither_drive_a_launcher_nor_redirect_a_requester(
    env: FmaEnvironment,
) -> None:
    env.create_deployment("chat", requester_template("chat", node=env.nodes[0], isc="model-a"))
    requester = i.ready_requester(env, "chat", timeout=40)
    (launcher,) = [p for p in i.launchers(env, env.nodes[0]) if i.live(p)]
    instance = i.meta(launcher)["annotations"][keys.INSTANCE_ID]
    before = _state(launcher, requester)
    assert before["ready"] == 200 and instance in before["instances"]
    assert "Bearer ey" not in env.controllers[0].log()  # tokens never reach a log
    targets = {
        "launcher": f"http://{_ip(launcher)}:{LAUNCHER_PORT}",
        "spi": f"http://{_ip(requester)}:{SPI_PORT}",
        "proxy_path": PROXY_CONFIG_PATH,
        "instance": instance,
        "launcher_uid": i.meta(launcher)["uid"],
        "requester_uid": i.meta(requester)["uid"],
        "marker": MARKER,
        "identity": auth.CONTROLLER_IDENTITY_URI,
        "typ": auth.TOKEN_TYPE,
        "stolen": _token_for_another_pod(env),
    }
    results = _intrude(env, targets)
    assert len(results) == 18
    assert set(results.values()) == {401}, results
    assert _state(launcher, requester) == before  # nothing changed
    assert MARKER not in env.core.read_namespaced_pod_log(i.meta(requester)["name"], env.namespace)
    # The controller still drives both: hot (scale 0 -> 1), then warm (a second model in the
    # launcher that chat's sleeping instance leaves free).
    for replicas in (0, 1, 0):
        env.scale("chat", replicas)
        if replicas:
            i.ready_requester(env, "chat", timeout=40)
        else:
            env.wait("chat's requester gone", lambda: not i.requesters(env, "chat"))
    env.create_deployment("other", requester_template("other", node=env.nodes[0], isc="model-b"))
    i.ready_requester(env, "other", timeout=40)
    metrics = env.controllers[0].metrics()
    for path in ("cold", "hot", "warm"):
        assert i.metric(metrics, "fma_actuation_seconds_count", {"path": path}) >= 1, path


def test_a_ca_rotation_while_requesters_are_bound(env: FmaEnvironment) -> None:
    """The control CA and the controller's leaf are replaced (`fma-certs ensure-control
    --rotate-ca`) while a requester is being bound in the launcher created under the old CA and
    another wakes in a new requester Pod: the controller picks the files up without a restart,
    and both the old launcher (leaf -> cross-certificate -> old CA) and Pods made after the
    rotation (leaf -> new CA) accept its calls."""
    controller = env.controllers[0]
    assert controller.process is not None
    pid = controller.process.pid
    env.scale("other", 0)
    env.wait("other's requester gone", lambda: not i.requesters(env, "other"))
    old_bundle = (env.control_dir / auth.CA_FILE).read_text()
    # A third model in the old launcher (it holds two sleepers: one is deleted, one created),
    # and chat's wake in a fresh requester Pod, both under way while the files change.
    env.create_deployment("third", requester_template("third", node=env.nodes[0], isc="model-c"))
    issue_control_credential(env.control_dir, rotate_ca=True)
    new_bundle = (env.control_dir / auth.CA_FILE).read_text()
    assert new_bundle != old_bundle and new_bundle.count("BEGIN CERTIFICATE") == 2
    i.ready_requester(env, "third", timeout=60)

    def published() -> bool:  # the controller keeps the hand-written requesters' ConfigMap
        found = env.core.read_namespaced_config_map(CONTROL_TRUST_CONFIG_MAP, env.namespace)
        return bool(found.data[auth.CA_FILE] == new_bundle)

    env.wait("the new bundle in the trust ConfigMap", published, timeout=30)
    env.scale("third", 0)
    env.wait("third's requester gone", lambda: not i.requesters(env, "third"))
    env.scale("chat", 1)
    i.ready_requester(env, "chat", timeout=60)
    assert controller.process.running() and controller.process.pid == pid  # no restart
    assert "reloaded" in controller.log()
    assert i.violations(env) == []


def _token_for_another_pod(env: FmaEnvironment) -> str:
    """A genuine token of the controller, for a call to another Pod: as if sniffed on the way
    to a launcher the tenant does not target."""
    signer = controller_auth_from_dir(env.control_dir).signer
    return signer.authorization("PUT", "/v2/vllm/instances/evil", b"", "some-other-pod")
