#!/usr/bin/env bash
# End-to-end run of fma on a kind cluster, for users who have Docker (no GPU needed).
#
#   bash docs/e2e-kind.sh            # from the root of the fma source tree
#
# It creates a kind cluster, installs cert-manager, advertises fake GPUs on the node, builds
# fma's image from the Dockerfile and, for the launchers, that image plus fma's vLLM stand-in
# (docs/e2e-kind/standin-launcher.Dockerfile), loads both into kind, installs charts/fma with
# helm, then:
#   1. applies an ordinary vLLM Deployment and checks that the webhook stored its Pod as a
#      requester (launcher mode);
#   2. applies a LauncherConfig, an InferenceServerConfig and a requester Deployment, waits
#      until the requester is Ready (cold start: a launcher Pod forks fma's vLLM stand-in);
#   3. scales the Deployment to 0 (the instance is put to sleep, the launcher stays) and back
#      to 1, and shows the hot wake: the time to Ready, the new requester bound to the same
#      launcher Pod, and no new vLLM instance (still one `InstanceCreated` Event).
# The cluster is deleted at the end unless FMA_KIND_KEEP=1.
#
# Needs: docker, kind, kubectl >= 1.24 (for `kubectl patch --subresource`), helm >= 3.8, and
# network access to pull images and cert-manager's manifest.
# Settings (environment): FMA_KIND_CLUSTER (fma-e2e), FMA_KIND_KEEP (0), CERT_MANAGER_VERSION
# (v1.16.2), FMA_E2E_NAMESPACE (fma-e2e), FMA_SKIP_BUILD (0: set 1 to reuse a loaded image).
#
# The manifests live in docs/e2e-kind/. tests/docs/test_e2e_kind.py runs them on the local test
# cluster with the same controller, checks the helm values below against the chart, and runs
# `bash -n` and shellcheck on this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFESTS="$ROOT/docs/e2e-kind"
CLUSTER="${FMA_KIND_CLUSTER:-fma-e2e}"
KEEP="${FMA_KIND_KEEP:-0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.16.2}"
NS="${FMA_E2E_NAMESPACE:-fma-e2e}"
RELEASE_NS="fma-system"
IMAGE_REPOSITORY="ghcr.io/llm-d/fma"
IMAGE_TAG="e2e"
IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG"
STANDIN_IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG-standin"
STARTED="$(date +%s)"

step() { printf '\n[%4ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
fail() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

diagnose() {
  printf '\n--- diagnostics\n' >&2
  kubectl get pods -A -o wide >&2 || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp >&2 || true
  kubectl -n "$RELEASE_NS" logs deploy/fma-controller --tail=50 >&2 || true
  kubectl -n "$RELEASE_NS" logs deploy/fma-webhook --tail=50 >&2 || true
}

finish() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    diagnose
  fi
  if [[ "$KEEP" == "1" ]]; then
    printf '\nkept kind cluster %s (kind delete cluster --name %s)\n' "$CLUSTER" "$CLUSTER"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap finish EXIT

step "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "cert-manager $CERT_MANAGER_VERSION"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

step "two fake GPUs on every node (nvidia.com/gpu in the Node status, as a device plugin would)"
for node in $(kubectl get nodes -o name); do
  kubectl patch "$node" --subresource=status --type=merge \
    -p '{"status":{"capacity":{"nvidia.com/gpu":"2"},"allocatable":{"nvidia.com/gpu":"2"}}}'
  kubectl label "$node" nvidia.com/gpu.present=true --overwrite
done
kubectl get nodes -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu'

if [[ "${FMA_SKIP_BUILD:-0}" != "1" ]]; then
  step "images $IMAGE from the Dockerfile and $STANDIN_IMAGE (with the stand-in), loaded into kind"
  docker build -t "$IMAGE" "$ROOT"
  docker build -t "$STANDIN_IMAGE" --build-arg FMA_IMAGE="$IMAGE" \
    -f "$ROOT/docs/e2e-kind/standin-launcher.Dockerfile" "$ROOT/localcluster"
fi
kind load docker-image "$IMAGE" "$STANDIN_IMAGE" --name "$CLUSTER"

step "helm install charts/fma (served namespace $NS)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install fma "$ROOT/charts/fma" --namespace "$RELEASE_NS" --create-namespace \
  --set servedNamespace="$NS" \
  --set image.repository="$IMAGE_REPOSITORY" \
  --set image.tag="$IMAGE_TAG" \
  --set image.pullPolicy=IfNotPresent \
  --wait --timeout 5m
kubectl label namespace "$NS" fma.llm-d.ai/inject=enabled fma.llm-d.ai/served=true --overwrite
kubectl -n "$RELEASE_NS" get deploy,pods
# cert-manager's CA injector fills in the webhooks' caBundle shortly after the install.
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
  for _ in $(seq 60); do
    [[ -n "$(kubectl get "$kind" fma-webhook -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]] && break
    sleep 2
  done
  [[ -n "$(kubectl get "$kind" fma-webhook -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]] \
    || fail "$kind fma-webhook got no caBundle (is cert-manager's cainjector running?)"
done

step "the webhook stores an ordinary vLLM Pod as a requester"
kubectl -n "$NS" apply -f "$MANIFESTS/inferenceserverconfig.yaml" -f "$MANIFESTS/launcherconfig.yaml"
kubectl -n "$NS" apply -f "$MANIFESTS/vllm-deployment.yaml"
isc=""
for _ in $(seq 60); do
  isc="$(kubectl -n "$NS" get pods -l app=tiny-vllm \
    -o jsonpath='{.items[0].metadata.annotations.dual-pods\.llm-d\.ai/inference-server-config}' 2>/dev/null || true)"
  [[ -n "$isc" ]] && break
  sleep 1
done
[[ "$isc" == "tiny" ]] || fail "the vLLM Pod was not mutated (inference-server-config: '$isc')"
echo "Pod of tiny-vllm: requester in launcher mode, InferenceServerConfig $isc"
kubectl -n "$NS" delete -f "$MANIFESTS/vllm-deployment.yaml" --wait=true

step "cold start: a requester Deployment, a launcher Pod created for it"
kubectl -n "$NS" apply -f "$MANIFESTS/requester.yaml"
kubectl -n "$NS" rollout status deployment/tiny --timeout=300s
kubectl -n "$NS" get pods -o wide -L dual-pods.llm-d.ai/dual,dual-pods.llm-d.ai/sleeping

step "scale to 0: the instance sleeps, the launcher stays"
kubectl -n "$NS" scale deployment/tiny --replicas=0
for _ in $(seq 120); do
  [[ -z "$(kubectl -n "$NS" get pods -l app=tiny -o name)" ]] && break
  sleep 1
done
[[ -z "$(kubectl -n "$NS" get pods -l app=tiny -o name)" ]] || fail "the requester did not go away"
kubectl -n "$NS" wait --for=condition=Ready pod -l app.kubernetes.io/component=launcher --timeout=60s
kubectl -n "$NS" get pods -L dual-pods.llm-d.ai/sleeping
launcher="$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=launcher -o jsonpath='{.items[0].metadata.name}')"

step "scale to 1: hot wake"
begin="$(date +%s%N)"
kubectl -n "$NS" scale deployment/tiny --replicas=1
kubectl -n "$NS" rollout status deployment/tiny --timeout=120s
elapsed_ms="$((($(date +%s%N) - begin) / 1000000))"
bound="$(kubectl -n "$NS" get pods -l app=tiny -o jsonpath='{.items[0].metadata.labels.dual-pods\.llm-d\.ai/dual}')"
[[ "$bound" == "$launcher" ]] || fail "the requester is bound to '$bound', not to the sleeping launcher $launcher"
created="$(kubectl -n "$NS" get events --field-selector reason=InstanceCreated -o name | wc -l)"
[[ "$created" -eq 1 ]] || fail "$created InstanceCreated Events: the scale-up started an instance instead of a hot wake"
kubectl -n "$NS" get events --field-selector involvedObject.kind=Pod --sort-by=.lastTimestamp | tail -n 8
printf '\nhot wake: the requester was Ready %s ms after the scale-up\n' "$elapsed_ms"

step "done"
