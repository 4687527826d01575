# The launcher image of the kind run (docs/e2e-kind.sh): fma's image plus fma's vLLM stand-in.
#
# fma's image holds the runtime packages only; the stand-in (localcluster/vllm_standin, which
# serves vLLM's HTTP API without a model) is part of the test rig, so this image adds it, with
# localcluster/ as the build context:
#
#   docker build --build-arg FMA_IMAGE=ghcr.io/llm-d/fma:e2e -t ghcr.io/llm-d/fma:e2e-standin \
#     -f docs/e2e-kind/standin-launcher.Dockerfile localcluster
#
# It lands in /app beside fma's packages, which every launcher Pod has on its PYTHONPATH, so
# `fma-launcher --instance-entry=localcluster.vllm_standin.cli:main` finds it.
ARG FMA_IMAGE=ghcr.io/llm-d/fma:e2e
FROM ${FMA_IMAGE}
COPY . /app/localcluster
