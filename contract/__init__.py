"""fma's wire contract in code: every name, port, path, wire model and rule that more than one
fma component (or the reference, or an existing cluster) must agree on, declared once.

This package sits at the bottom of the import graph (it imports nothing of fma but itself;
`crds` may import it), so the webhook, the controller, the launcher and the requester stub read
every shared name from one place. A test (tests/unit/test_contract_names.py) keeps the other
packages from spelling a `dual-pods.llm-d.ai/` key or a fixed port themselves.

- `contract.keys`: annotation, label and finalizer keys and their prefixes (contracts §2).
- `contract.objects`: the CRDs' group and version, container names, the GPU resource, the
  `gpu-map` ConfigMap, the controllers' names (§2.4, §3).
- `contract.launcher`: the launcher API's port, paths, `VllmConfig` and `InstanceState` (§5).
- `contract.requester`: the requester stub's ports, environment and SPI paths (§6).
- `contract.vllm`: the parts of vLLM's interface fma relies on (§7).
- `contract.rules`: checks the webhook and the controllers both make (routing keys, selectors,
  quantities), so admission and bind time decide alike.

docs/contracts.md states the contract in prose ("Where the names live in code" maps it here).
"""
