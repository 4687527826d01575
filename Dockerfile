# syntax=docker/dockerfile:1
#
# One image for every fma component. Its console scripts are on PATH: fma-webhook,
# fma-controller, fma-certs, fma-requester (the stub the webhook puts into mutated Pods) and
# fma-launcher. The Helm chart (charts/fma) runs all of them from this image. A LauncherConfig
# written for the reference image runs unchanged too: its `python3 launcher.py` in `/app` is
# launcher/reference_main.py, which runs fma-launcher with the same flags.
#
# Only the runtime distribution is installed: pyproject.toml's packages, without the local
# cluster, the vLLM stand-in and the test doubles (devtools/), which .dockerignore also keeps
# out of the build context.
#
#   docker build -t ghcr.io/llm-d/fma:0.1.0 .
#
# Launcher Pods (LauncherConfig templates) also need vLLM. Either start from vLLM's image, which
# brings a CUDA, PyTorch and vLLM stack that fit each other (recommended):
#
#   docker build --build-arg BASE_IMAGE=vllm/vllm-openai:<version> -t ghcr.io/llm-d/fma:0.1.0-vllm .
#
# or add vLLM from PyPI on top of the slim base (the package's `vllm` extra; a much larger image):
#
#   docker build --build-arg EXTRAS=vllm -t ghcr.io/llm-d/fma:0.1.0-vllm .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Extras of the fma package to install with it, e.g. `vllm`.
ARG EXTRAS=""
# The non-root identity; charts/fma's podSecurityContext runs as the same numbers.
ARG UID=10001
ARG GID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# .dockerignore keeps tests, docs, charts, the dev tools and local state out of the context. The
# runtime packages' source stays in /app: launcher Pods get PYTHONPATH=/app (contracts §4.2), and
# there the `launcher/` package, not the /app/launcher.py entry, is what `import launcher` finds.
COPY . /app
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && rm -rf build ./*.egg-info \
    && cp launcher/reference_main.py /app/launcher.py \
    && for script in fma-webhook fma-controller fma-certs fma-requester fma-launcher; do \
         command -v "$script" >/dev/null || { echo "missing console script $script" >&2; exit 1; }; \
       done \
    && groupadd --system --gid "${GID}" fma \
    && useradd --system --uid "${UID}" --gid "${GID}" --home-dir /app --no-create-home \
         --shell /usr/sbin/nologin fma

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER ${UID}:${GID}

LABEL org.opencontainers.image.title="fma" \
      org.opencontainers.image.description="Fast model actuation for vLLM on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"

# Every Deployment and Pod names its command; without one the image explains itself.
CMD ["fma-webhook", "--help"]
