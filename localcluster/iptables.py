"""Reading and removing kube-proxy's iptables chains in this network namespace.

`kube-proxy --cleanup` removes the chains it knows it owns, but on purpose keeps
KUBE-MARK-MASQ and KUBE-MARK-DROP (a real node's kubelet shares them) and, in 1.20, its
KUBE-PROXY-CANARY chains; without the `ipset` tool its IPVS part also fails. The local cluster
owns its namespace outright (see `localcluster.netns`), so after kube-proxy's own clean-up it
sweeps every remaining `KUBE-*` chain, and the jumps to them, with one `iptables-restore
--noflush` per table: the namespace ends as it began.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

PREFIX: Final = "KUBE-"
# Where Debian puts iptables; a non-login root shell may lack them on PATH.
_SBIN_DIRS: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# IPv4 is what the local cluster uses; IPv6 is swept too, since `--cleanup` touches both.
FAMILIES: Final = ("iptables", "ip6tables")
_JUMPS: Final = frozenset({"-j", "--jump", "-g", "--goto"})


def tool_path(environ: Mapping[str, str] | None = None) -> str:
    """PATH with the sbin directories appended: kube-proxy execs `iptables` from its PATH."""
    path = (environ if environ is not None else os.environ).get("PATH", os.defpath)
    parts = path.split(os.pathsep)
    return os.pathsep.join(parts + [d for d in _SBIN_DIRS if d not in parts])


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=tool_path())


def missing_tools() -> list[str]:
    """The iptables commands kube-proxy needs that are not installed."""
    needed = ("iptables", "iptables-save", "iptables-restore")
    return [name for name in needed if find_tool(name) is None]


@dataclass
class _Table:
    name: str
    chains: list[str] = field(default_factory=list)
    jumps: list[str] = field(default_factory=list)  # rules of other chains that jump to ours


def _jump_target(rule: str) -> str | None:
    tokens = shlex.split(rule)
    for flag, value in itertools.pairwise(tokens):
        if flag in _JUMPS:
            return value
    return None


def parse_save(text: str) -> list[_Table]:
    """The KUBE- chains of each table in `iptables-save` output, and the rules jumping to them
    from other chains."""
    tables: list[_Table] = []
    for line in text.splitlines():
        if line.startswith("*"):
            tables.append(_Table(line[1:]))
        elif line.startswith(":" + PREFIX) and tables:
            tables[-1].chains.append(line[1:].split()[0])
        elif line.startswith("-A ") and tables:
            chain = line.split()[1]
            target = _jump_target(line)
            if not chain.startswith(PREFIX) and target and target.startswith(PREFIX):
                tables[-1].jumps.append(line)
    return tables


def kube_chains(text: str) -> dict[str, list[str]]:
    """{table: [KUBE- chains]} of `iptables-save` output, tables without any left out."""
    return {t.name: t.chains for t in parse_save(text) if t.chains}


def sweep_script(text: str) -> str:
    """`iptables-restore --noflush` input that deletes every KUBE- chain in `text`.

    Per table: delete the jumps into our chains, declare (which flushes) every chain so no
    reference remains between them, then delete them. Empty when there is nothing to remove.
    """
    out: list[str] = []
    for table in parse_save(text):
        if not table.chains and not table.jumps:
            continue
        out.append(f"*{table.name}")
        out.extend("-D " + rule[len("-A ") :] for rule in table.jumps)
        out.extend(f":{chain} - [0:0]" for chain in table.chains)
        out.extend(f"-X {chain}" for chain in table.chains)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def save(family: str = "iptables") -> str | None:
    """`<family>-save` of every table, or None if that family's tools are not installed."""
    tool = find_tool(f"{family}-save")
    if tool is None:
        return None
    result = subprocess.run([tool], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout


def sweep(family: str = "iptables") -> None:
    """Removes every KUBE- chain of `family` in this network namespace."""
    text = save(family)
    script = sweep_script(text) if text is not None else ""
    restore = find_tool(f"{family}-restore")
    if script and restore is not None:
        subprocess.run(
            [restore, "--noflush"], input=script, text=True, check=True, capture_output=True
        )


def leftovers() -> dict[str, dict[str, list[str]]]:
    """{family: {table: [KUBE- chains]}} still present, for every installed family."""
    found: dict[str, dict[str, list[str]]] = {}
    for family in FAMILIES:
        text = save(family)
        chains = kube_chains(text) if text is not None else {}
        if chains:
            found[family] = chains
    return found
