"""fma installed on the local cluster: manifests, the webhook and the controller as processes.

What the demo (`hack/demo.py`), the benchmarks (`bench/`) and the end-to-end tests share:

- `manifests`: LauncherConfigs, ISCs, requesters and Deployments that run the repository's own
  code through the hollow kubelet's image map;
- `controller_process.ControllerProcess`: `fma-controller` as a process (start, kill, restart,
  metrics, logs);
- `webhook_process.Webhook`: `fma-webhook serve` over TLS, registered with `fma-webhook register`;
- `environment.fma_environment`: a namespace with hollow GPU nodes, `gpu-map`, the components'
  identities and RBAC, and the controllers started in it.
"""
