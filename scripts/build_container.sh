#!/usr/bin/env bash
# Build the LOTUS image with podman, start it with a volume, check /_stcore/health and the first page, stop it,
# and print the figures docs/container.md reports (build time, image size, time to healthy).
#
#   scripts/build_container.sh                 # BASE: python:3.11-slim if it can be pulled, else a local Debian base
#   BASE=localhost/lotus-base:bookworm scripts/build_container.sh
#
# Where no registry is reachable, the base is built here: Debian bookworm by debootstrap (from the machine's own
# Debian mirror) with Python 3.11 in a venv on PATH, imported as localhost/lotus-base:bookworm. The image installs
# from the package index this machine's pip uses: its pip config files and the local folders they name are
# mounted read-only into the build. Run as root (rootful podman); see docs/container.md for this machine's quirks.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/lotus:dev}
BASE=${BASE:-}
LOCAL_BASE=localhost/lotus-base:bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PORT=${PORT:-8599}
VOLUME=${VOLUME:-lotus-check-data}
NAME=lotus-check-$$
# This machine runs containers inside a container: crun cannot drive its hybrid cgroups and raising rlimits is
# not permitted, so runc with rlimits at or below the host's (override RUNTIME / LIMITS elsewhere).
PODMAN=(podman --runtime "${RUNTIME:-runc}")
read -r -a LIMITS <<< "${LIMITS:---ulimit nofile=4096:4096 --ulimit nproc=4096:4096}"

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

build_local_base() {
  local root
  root=$(mktemp -d /var/tmp/lotus-base.XXXXXX)
  say "building $LOCAL_BASE with debootstrap from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" "$MIRROR" >&2
  chroot "$root" python3 -m venv /opt/python
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$LOCAL_BASE" >&2
  rm -rf "$root"
}

if [ -z "$BASE" ]; then
  if "${PODMAN[@]}" image exists docker.io/library/python:3.11-slim \
     || timeout 60 "${PODMAN[@]}" pull -q docker.io/library/python:3.11-slim >/dev/null 2>&1; then
    BASE=docker.io/library/python:3.11-slim
  else
    say "python:3.11-slim cannot be pulled (no registry reachable): using $LOCAL_BASE"
    "${PODMAN[@]}" image exists "$LOCAL_BASE" || build_local_base
    BASE=$LOCAL_BASE
  fi
fi

# the pip configuration of this machine (config files, constraints, local wheel folders and file:// indexes)
MOUNTS=()
for f in $(${PIP:-pip} config debug 2>/dev/null | sed -n 's/^ *\(\/[^,]*\), exists: True$/\1/p'); do
  MOUNTS+=(--volume "$f:$f:ro")
  for d in $(grep -oE '(file://)?/[^ ,"'"'"']+' "$f" | sed 's|^file://||; s|/simple/*$||'); do  # an index: its root
    [ -e "$d" ] && MOUNTS+=(--volume "$d:$d:ro")
  done
done
[ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ] && MOUNTS+=(--volume "$PIP_FIND_LINKS:$PIP_FIND_LINKS:ro")

say "building $IMAGE from $BASE"
t0=$(now)
"${PODMAN[@]}" build --format docker --network host "${LIMITS[@]}" "${MOUNTS[@]}" --build-arg "BASE=$BASE" -t "$IMAGE" . >&2
build_s=$(secs "$t0" "$(now)")
size=$("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Size}}')

"${PODMAN[@]}" volume exists "$VOLUME" && "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null
t1=$(now)
"${PODMAN[@]}" run -d --name "$NAME" "${LIMITS[@]}" -p "127.0.0.1:$PORT:8501" -v "$VOLUME:/var/lib/lotus" "$IMAGE" >/dev/null
trap '"${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
healthy=""
for _ in $(seq 1 240); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/_stcore/health")" = 200 ]; then
    healthy=$(secs "$t1" "$(now)"); break
  fi
  sleep 0.5
done
if [ -z "$healthy" ]; then
  "${PODMAN[@]}" logs "$NAME" | tail -20 >&2
  say "not healthy after 120 s"; exit 1
fi
page=$(curl -s "http://127.0.0.1:$PORT/")
grep -qi "<title>streamlit" <<< "$page" || { say "the first page is not Streamlit's"; exit 1; }
# the first page itself (the Overview), run by Streamlit's AppTest inside the container on its volume's store
t2=$(now)
"${PODMAN[@]}" exec "$NAME" python -c "
from streamlit.testing.v1 import AppTest
at = AppTest.from_file('app/streamlit_app.py', default_timeout=300).run()
assert not at.exception, at.exception
print(at.title[0].value if at.title else '')" >&2
first_page=$(secs "$t2" "$(now)")
if "${PODMAN[@]}" logs "$NAME" 2>&1 | grep -q Traceback; then "${PODMAN[@]}" logs "$NAME" >&2; say "the server logged a traceback"; exit 1; fi
user=$("${PODMAN[@]}" exec "$NAME" id -u)
store=$("${PODMAN[@]}" exec "$NAME" sh -c 'stat -c "%U %s" /var/lib/lotus/lotus.db')
"${PODMAN[@]}" stop -t 10 "$NAME" >/dev/null
printf '{"base": "%s", "build_s": %s, "image_bytes": %s, "healthy_s": %s, "first_page_s": %s, "uid": %s, "store": "%s"}\n' \
  "$BASE" "$build_s" "$size" "$healthy" "$first_page" "$user" "$store"
