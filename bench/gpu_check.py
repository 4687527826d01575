"""Device check (issue 15): fma's GPU paths on a real GPU, printed as one JSON object.

On CPU these paths are replaced by doubles, so a wrong index order (NVML's PCI order against
CUDA's fastest-first default), a unit error (MiB against bytes) or CUDA initialized before a fork
would reach users unseen. This script runs them where PyTorch, nvidia-ml-py and CUDA are
installed (vLLM is not needed: PyTorch acts where vLLM would):

- `discovery`: GPU UUIDs, indices, total and used memory through fma's own code (the
  launcher's `gpus.from_nvml`, the requester's `NvmlGpus`), against
  `nvidia-smi --query-gpu=index,uuid,memory.total,memory.used` and against `torch.cuda` under
  `CUDA_DEVICE_ORDER=PCI_BUS_ID`; then, per GPU, a process given the environment the launcher
  gives an instance (`child_env`) must see exactly that GPU as its device 0.
- `process_memory`: a child allocates and frees GPU memory; used memory (fma's reading, what
  the memory gate compares) and the per-process reading are taken at each step.
- `fork`: the real fork server (`launcher.forkserver`) with torch imported forks two children
  that each initialize CUDA and allocate; then a fork server that initialized CUDA must refuse
  to start, saying why.
- `copy`: the physical floor of a level-1 wake and sleep: 64 GiB host→device from pinned
  memory (chunked, so it fits any GPU) and back, in GB/s and seconds, against PCIe Gen5 x16.

Without CUDA it prints `{"skipped": "<reason>"}` and exits 0. Otherwise it exits 1 when a check
failed. This process never touches CUDA itself: every CUDA user is a child, so nothing here can
spoil a fork.

    .venv/bin/python bench/gpu_check.py [--copy-gib 64] [--alloc-mib 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PCIE_GEN5_X16_GBPS = 63.0
"""PCIe Gen5 x16, one direction, after 128b/130b encoding (32 GT/s on 16 lanes), GB/s."""
INIT_CUDA_ENV = "FMA_GPU_CHECK_INIT_CUDA"
"""Set for the fork server that must be refused: its sleep-mode probe then initializes CUDA."""
MIB = 1024 * 1024
GIB = 1024 * MIB


# --- What the fork server imports (`--entry bench.gpu_check:forked_instance`) -------------------


def sleep_mode_available() -> bool:
    """The fork server calls this once after importing the entry: here it imports torch (as
    vLLM's import would) and, only for the refusal check, initializes CUDA."""
    import torch

    if os.environ.get(INIT_CUDA_ENV) == "1":
        torch.cuda.init()  # type: ignore[no-untyped-call]
    return False


def forked_instance(argv: list[str]) -> int:
    """A forked child: initialize CUDA, allocate `argv[1]` MiB on device 0, report to `argv[0]`."""
    import torch

    out = Path(argv[0])
    mib = int(argv[1])
    torch.cuda.init()  # type: ignore[no-untyped-call]
    block = torch.empty(mib * MIB, dtype=torch.uint8, device="cuda:0")
    block.fill_(1)
    torch.cuda.synchronize()
    props = torch.cuda.get_device_properties(0)
    out.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "uuid": _torch_uuid(props),
                "allocated_mib": block.numel() // MIB,
                "sum_ok": int(block[:1024].sum().item()) == 1024,
            }
        )
    )
    return 0


# --- Child scripts (run with `python -c`, each its own CUDA process) -----------------------------

_TORCH_DEVICES = """
import json, torch
from bench.gpu_check import _torch_uuid
out = []
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    out.append({"index": i, "uuid": _torch_uuid(p), "name": p.name,
                "total_mib": p.total_memory // (1024 * 1024)})
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "devices": out}))
"""

_ALLOCATOR = """
import json, os, sys, torch
mib = int(sys.argv[1])
torch.zeros(1, device="cuda:0")  # the context: what every CUDA process holds
print(json.dumps({"step": "init", "pid": os.getpid()}), flush=True)
sys.stdin.readline()
block = torch.empty(mib * 1024 * 1024, dtype=torch.uint8, device="cuda:0")
block.fill_(1)
torch.cuda.synchronize()
print(json.dumps({"step": "allocated"}), flush=True)
sys.stdin.readline()
del block
torch.cuda.empty_cache()
torch.cuda.synchronize()
print(json.dumps({"step": "freed"}), flush=True)
sys.stdin.readline()
"""

_COPY = """
import json, sys, time, torch
total, chunk = int(sys.argv[1]), int(sys.argv[2])
host = torch.empty(chunk, dtype=torch.uint8, pin_memory=True)
host.fill_(7)
dev = torch.empty(chunk, dtype=torch.uint8, device="cuda:0")
rounds = max(total // chunk, 1)
dev.copy_(host, non_blocking=True); torch.cuda.synchronize()  # warm-up
start = time.perf_counter()
for _ in range(rounds):
    dev.copy_(host, non_blocking=True)
torch.cuda.synchronize()
h2d = time.perf_counter() - start
start = time.perf_counter()
for _ in range(rounds):
    host.copy_(dev, non_blocking=True)
torch.cuda.synchronize()
d2h = time.perf_counter() - start
moved = rounds * chunk
print(json.dumps({"bytes": moved, "chunk_bytes": chunk, "h2d_s": h2d, "d2h_s": d2h,
                  "intact": bool(host[:4096].eq(7).all().item())}))
"""


def _torch_uuid(props: Any) -> str | None:
    """`GPU-<uuid>` as NVML spells it, from torch's device properties (None if torch lacks it)."""
    value = getattr(props, "uuid", None)
    if value is None:
        return None
    text = str(value)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def _python(script: str, *args: str, env: dict[str, str], timeout: float = 300) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-800:]}"}
    return json.loads(lines[-1])


# --- Skip ------------------------------------------------------------------------------------


def skip_reason() -> str | None:  # noqa: PLR0911 - one reason per missing piece
    """Why the checks cannot run here, or None (checked cheapest first; no CUDA in this process)."""
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi on PATH: no NVIDIA driver here"
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except Exception as err:
        return f"NVML is not usable: {err}"
    if count == 0:
        return "NVML sees no GPU"
    probe = "import torch; print(int(torch.cuda.is_available()))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return "PyTorch did not answer torch.cuda.is_available() within 120 s"
    if done.returncode != 0:
        return f"PyTorch is not usable: {done.stderr.strip()[-300:]}"
    if done.stdout.strip() != "1":
        return "PyTorch has no CUDA (torch.cuda.is_available() is false)"
    return None


# --- Checks ------------------------------------------------------------------------------------


def _smi_gpus() -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=index,uuid,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            index, uuid, total, used = parts
            rows.append(
                {"index": int(index), "uuid": uuid, "total_mib": int(total), "used_mib": int(used)}
            )
    return rows


def _smi_apps() -> dict[int, int]:
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    apps = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            apps[int(parts[0])] = int(parts[1])
    return apps


def check_discovery(max_gpus: int) -> dict[str, Any]:
    """fma's NVML discovery against nvidia-smi and torch, and the instance environment."""
    from launcher.gpus import child_env, from_nvml
    from launcher.requester.gpus import NvmlGpus, nvml_total_mib, nvml_uuids

    smi = _smi_gpus()
    gpu_map = from_nvml()
    uuids = nvml_uuids() or ()
    import pynvml

    pynvml.nvmlInit()
    fma_used = NvmlGpus(tuple(uuids)).memory_used_mib()
    fma_total = {u: nvml_total_mib(u) for u in uuids}
    torch_pci = _python(_TORCH_DEVICES, env=_env(CUDA_DEVICE_ORDER="PCI_BUS_ID"))
    torch_default = _python(_TORCH_DEVICES, env=_env(CUDA_DEVICE_ORDER="FASTEST_FIRST"))
    smi_by_uuid = {row["uuid"]: row for row in smi}
    problems: list[str] = []
    if sorted(gpu_map.indices) != sorted(smi_by_uuid) or sorted(uuids) != sorted(smi_by_uuid):
        problems.append("the UUIDs differ between fma (launcher, requester) and nvidia-smi")
    for uuid, index in gpu_map.indices.items():
        row = smi_by_uuid.get(uuid)
        if row is None:
            continue
        if row["index"] != index:
            problems.append(f"{uuid}: fma index {index}, nvidia-smi {row['index']}")
        if abs(fma_total[uuid] - row["total_mib"]) > max(64, row["total_mib"] // 100):
            problems.append(f"{uuid}: total {fma_total[uuid]} MiB, nvidia-smi {row['total_mib']}")
        if abs(fma_used.get(uuid, -1) - row["used_mib"]) > 256:
            problems.append(f"{uuid}: used {fma_used.get(uuid)} MiB, nvidia-smi {row['used_mib']}")
    pci_order = [d.get("uuid") for d in torch_pci.get("devices", [])]
    nvml_order = sorted(gpu_map.indices, key=gpu_map.indices.__getitem__)
    if "error" in torch_pci:
        problems.append(f"torch: {torch_pci['error']}")
    elif None not in pci_order and pci_order != nvml_order:
        problems.append(f"torch's PCI_BUS_ID order {pci_order} is not NVML's {nvml_order}")
    instances = []
    for uuid in nvml_order[:max_gpus]:
        env = child_env({"CUDA_VISIBLE_DEVICES": gpu_map.visible_devices([uuid])})
        seen = _python(_TORCH_DEVICES, env=_env(**env))
        devices = seen.get("devices", [])
        got = devices[0].get("uuid") if devices else None
        agrees = len(devices) == 1 and got == uuid
        instances.append({"uuid": uuid, "env": env, "device0": got, "agrees": agrees})
        if not agrees:
            problems.append(f"an instance given {env} sees {got}, not {uuid}")
    return {
        "ok": not problems,
        "problems": problems,
        "fma_launcher_map": dict(gpu_map.indices),
        "fma_launcher_source": gpu_map.source,
        "fma_requester_uuids": list(uuids),
        "fma_used_mib": fma_used,
        "fma_total_mib": fma_total,
        "nvidia_smi": smi,
        "torch_pci_bus_id_order": torch_pci,
        "torch_default_order_uuids": [d.get("uuid") for d in torch_default.get("devices", [])],
        "default_order_agrees": [d.get("uuid") for d in torch_default.get("devices", [])]
        == nvml_order,
        "instance_env": instances,
    }


def check_process_memory(alloc_mib: int) -> dict[str, Any]:
    """Used and per-process memory while a child allocates `alloc_mib` and frees it."""
    from launcher.gpus import child_env, from_nvml
    from launcher.requester.gpus import NvmlGpus, nvml_process_memory_mib

    gpu_map = from_nvml()
    uuid = min(gpu_map.indices, key=gpu_map.indices.__getitem__)
    gpus = NvmlGpus((uuid,))
    env = _env(**child_env({"CUDA_VISIBLE_DEVICES": gpu_map.visible_devices([uuid])}))
    readings: dict[str, Any] = {"before": gpus.memory_used_mib()[uuid]}
    child = subprocess.Popen(
        [sys.executable, "-c", _ALLOCATOR, str(alloc_mib)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    pid = None
    try:
        for step in ("init", "allocated", "freed"):
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"the child exited before '{step}'")
            message = json.loads(line)
            pid = message.get("pid", pid)
            time.sleep(0.5)  # NVML's per-process accounting lags the allocation a little
            per_process = nvml_process_memory_mib(uuid)
            readings[step] = {
                "used_mib": gpus.memory_used_mib()[uuid],
                "nvml_processes_mib": per_process,
                "child_mib": per_process.get(pid) if pid is not None else None,
                "nvidia_smi_apps_mib": _smi_apps(),
            }
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(timeout=60)
    except Exception as err:
        child.kill()
        _, stderr = child.communicate()
        return {"ok": False, "error": f"{err}; {stderr[-800:]}", "readings": readings}
    time.sleep(0.5)
    readings["exited"] = gpus.memory_used_mib()[uuid]
    context = readings["init"]["used_mib"] - readings["before"]
    rise = readings["allocated"]["used_mib"] - readings["init"]["used_mib"]
    drop = readings["allocated"]["used_mib"] - readings["freed"]["used_mib"]
    problems = []
    if not alloc_mib * 0.95 <= rise <= alloc_mib + 1024:
        problems.append(f"allocating {alloc_mib} MiB raised used memory by {rise} MiB")
    if drop < alloc_mib * 0.95:
        problems.append(f"freeing {alloc_mib} MiB lowered used memory by only {drop} MiB")
    if abs(readings["exited"] - readings["before"]) > 256:
        problems.append(f"after exit used is {readings['exited']}, before {readings['before']}")
    child_mib = readings["allocated"]["child_mib"]
    return {
        "ok": not problems,
        "problems": problems,
        "gpu": uuid,
        "alloc_mib": alloc_mib,
        "child_pid": pid,
        "context_mib": context,
        "rise_mib": rise,
        "drop_mib": drop,
        "pid_visible_to_nvml": child_mib is not None,
        "child_mib_while_allocated": child_mib,
        "readings": readings,
    }


def _fork_server(extra_env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "launcher.forkserver",
            "--entry",
            "bench.gpu_check:forked_instance",
            "--parent",
            str(os.getpid()),
        ],
        env=_env(**extra_env),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events(server: subprocess.Popen[str], until: int, timeout: float) -> list[dict[str, Any]]:
    assert server.stdout is not None
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < until and time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        events.append(json.loads(line))
    return events


def check_fork(alloc_mib: int) -> dict[str, Any]:
    """The fork server forks CUDA-using children from a torch-importing, CUDA-free process,
    and refuses to serve once CUDA is initialized in it."""
    from launcher.forkserver import CUDA_REFUSAL
    from launcher.gpus import child_env, from_nvml

    gpu_map = from_nvml()
    uuid = min(gpu_map.indices, key=gpu_map.indices.__getitem__)
    env = child_env({"CUDA_VISIBLE_DEVICES": gpu_map.visible_devices([uuid])})
    problems: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="fma-gpu-check-"))
    server = _fork_server({})
    assert server.stdin is not None
    children: list[dict[str, Any]] = []
    try:
        ready = _events(server, 1, 180)
        if not ready or ready[0].get("event") != "ready":
            problems.append(f"the fork server did not become ready: {ready}")
        else:
            for n in (1, 2):
                request = {
                    "op": "start",
                    "ref": f"child-{n}",
                    "argv": [str(work / f"child-{n}.json"), str(alloc_mib)],
                    "env": env,
                    "log_path": str(work / f"child-{n}.log"),
                    "notes": [],
                }
                server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            events = _events(server, 4, 240)
            exits = {e["ref"]: e.get("exit_code") for e in events if e.get("event") == "exited"}
            for n in (1, 2):
                result_file = work / f"child-{n}.json"
                result = json.loads(result_file.read_text()) if result_file.exists() else {}
                log = (work / f"child-{n}.log").read_text()[-600:] if exits else ""
                ok = exits.get(f"child-{n}") == 0 and result.get("uuid") == uuid
                children.append(
                    {
                        "ref": f"child-{n}",
                        "exit_code": exits.get(f"child-{n}"),
                        "result": result,
                        "ok": ok,
                        "log_tail": "" if ok else log,
                    }
                )
                if not ok:
                    problems.append(f"child-{n} did not run CUDA on {uuid}: {result or log}")
    finally:
        server.kill()
        server.wait()
    refused = _fork_server({INIT_CUDA_ENV: "1"})
    try:
        answer = _events(refused, 1, 180)
        code = refused.wait(timeout=60)
    finally:
        refused.kill()
    said = answer[0] if answer else {}
    refusal_ok = (
        said.get("event") == "import_failed"
        and CUDA_REFUSAL in str(said.get("error"))
        and code == 1
    )
    if not refusal_ok:
        problems.append(f"a fork server with CUDA initialized was not refused: {said}, exit {code}")
    return {
        "ok": not problems,
        "problems": problems,
        "children": children,
        "refusal": {"event": said, "exit_code": code, "ok": refusal_ok},
    }


def check_copy(copy_gib: int) -> dict[str, Any]:
    """Pinned host→device and device→host of `copy_gib` GiB, in chunks that fit the GPU."""
    from launcher.gpus import child_env, from_nvml
    from launcher.requester.gpus import NvmlGpus, nvml_total_mib

    gpu_map = from_nvml()
    uuid = min(gpu_map.indices, key=gpu_map.indices.__getitem__)
    free_mib = nvml_total_mib(uuid) - NvmlGpus((uuid,)).memory_used_mib()[uuid]
    chunk = max(min(2 * GIB, free_mib * MIB // 4), 64 * MIB)
    env = _env(**child_env({"CUDA_VISIBLE_DEVICES": gpu_map.visible_devices([uuid])}))
    result = _python(_COPY, str(copy_gib * GIB), str(chunk), env=env, timeout=600)
    if "error" in result:
        return {"ok": False, **result}
    gb = result["bytes"] / 1e9
    h2d, d2h = gb / result["h2d_s"], gb / result["d2h_s"]
    return {
        "ok": bool(result["intact"]),
        "gib": result["bytes"] / GIB,
        "chunk_mib": result["chunk_bytes"] // MIB,
        "h2d_seconds": round(result["h2d_s"], 3),
        "h2d_gb_per_s": round(h2d, 2),
        "d2h_seconds": round(result["d2h_s"], 3),
        "d2h_gb_per_s": round(d2h, 2),
        "pcie_gen5_x16_gb_per_s": PCIE_GEN5_X16_GBPS,
        "h2d_of_pcie_gen5_x16": round(h2d / PCIE_GEN5_X16_GBPS, 3),
        "d2h_of_pcie_gen5_x16": round(d2h / PCIE_GEN5_X16_GBPS, 3),
    }


def _guarded(name: str, check: Any, *args: Any) -> dict[str, Any]:
    """One check's result; an exception is that check's failure, not the script's end."""
    started = time.monotonic()
    try:
        result: dict[str, Any] = check(*args)
    except Exception as err:
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    result["seconds"] = round(time.monotonic() - started, 2)
    print(f"gpu_check: {name} ok={result.get('ok')}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--copy-gib", type=int, default=64, help="GiB moved each way")
    parser.add_argument("--alloc-mib", type=int, default=4096, help="what each child allocates")
    parser.add_argument("--max-gpus", type=int, default=8, help="GPUs checked one by one")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(json.dumps({"skipped": reason}))
        return 0
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(handle)
    driver = pynvml.nvmlSystemGetDriverVersion()
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "gpus": pynvml.nvmlDeviceGetCount(),
        "driver": driver.decode() if isinstance(driver, bytes) else str(driver),
        "discovery": _guarded("discovery", check_discovery, args.max_gpus),
        "process_memory": _guarded("process_memory", check_process_memory, args.alloc_mib),
        "fork": _guarded("fork", check_fork, args.alloc_mib),
        "copy": _guarded("copy", check_copy, args.copy_gib),
    }
    out["ok"] = all(out[k]["ok"] for k in ("discovery", "process_memory", "fork", "copy"))
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
