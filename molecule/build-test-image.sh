#!/usr/bin/env bash
# Prepare this machine as a rootful Podman host and build a local Debian systemd image (Debian 12
# bookworm or Debian 13 trixie, from the same mirror) that Molecule's podman driver boots as a stand-in
# "VPS". No container registry is reachable from the test machines, so the image is made here with
# debootstrap; each host fix below says which failure it prevents (the error crun or apt gave without it).
#
# Usage: molecule/build-test-image.sh [--suite bookworm|trixie] [--rebuild] [--no-smoke] [--help]   (as root, on Debian)
#   --suite      the Debian release to build (default bookworm)
#   --rebuild    build the image again even if an image of the same content exists
#   --no-smoke   skip the final boot check (a container that must reach "running"/"degraded")
# Environment:
#   DOUBLE_BOILER_TEST_IMAGE   image name       (default localhost/double-boiler-debian12:latest, -debian13 for trixie)
#   DEBIAN_MIRROR              Debian mirror    (default: the mirror of the host's apt sources; it serves both)
#   BUILD_DIR                  scratch folder   (default /var/tmp/double-boiler-test-image-<suite>; emptied after)
#
# Idempotent. The host fixes (cgroup v1 mounts, podman ulimits) are redone on every run because the
# mounts vanish at reboot; debootstrap runs only when no image of the same content (this script, the
# suite and the package list, hashed into a label) exists, or --rebuild is given.
set -euo pipefail

SUITE=bookworm
rebuild=0
smoke=1
while (($#)); do
  case "$1" in
    --suite) SUITE="${2:?--suite needs bookworm or trixie}"; shift ;;
    --rebuild) rebuild=1 ;;
    --no-smoke) smoke=0 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-test-image: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$SUITE" in
  bookworm) DEBIAN_VERSION=12 ;;
  trixie) DEBIAN_VERSION=13 ;;
  *) echo "build-test-image: --suite must be bookworm or trixie, not '$SUITE'" >&2; exit 2 ;;
esac
IMAGE="${DOUBLE_BOILER_TEST_IMAGE:-localhost/double-boiler-debian$DEBIAN_VERSION:latest}"
BUILD_DIR="${BUILD_DIR:-/var/tmp/double-boiler-test-image-$SUITE}"
# A bare Debian with systemd, as a fresh VPS has it, plus what Ansible needs (python3, python3-apt,
# sudo) and what the tests reach it with (openssh-server). Nothing the roles should install themselves.
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,openssh-server,ca-certificates,procps
CONTAINERS_CONF=/etc/containers/containers.conf
# crun fails with "setrlimit RLIMIT_NOFILE: Operation not permitted" without CAP_SYS_RESOURCE when the
# defaults exceed our own limits; nproc must stay below 50000 here.
ULIMITS='default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
# What the image is made of: a change to this script, the suite or the packages builds a new one.
CONTENT=$(cat "$0" <(echo "$SUITE $PACKAGES") | sha256sum | cut -c1-16)
LABEL=io.double-boiler.content

log() { printf '[build-test-image] %s\n' "$*"; }
die() { printf '[build-test-image] ERROR: %s\n' "$*" >&2; exit 1; }

# Run a step and print how long it took.
step() {
  local name="$1"; shift
  local t0; t0=$(date +%s%N)
  log "$name ..."
  "$@"
  log "$name: done in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (rootful podman, debootstrap, cgroup mounts); try: sudo $0"
  [[ -r /etc/os-release ]] || die "no /etc/os-release: this script supports Debian hosts only"
  local id
  # shellcheck disable=SC1091
  id=$(. /etc/os-release && echo "${ID:-}")
  [[ $id == debian ]] || die "host is '${id:-unknown}', not Debian: apt packages and mirror detection assume Debian 12"
}

install_host_packages() {
  local missing=() pkg
  for pkg in debootstrap podman; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  else
    log "debootstrap and podman already installed"
  fi
}

# Hybrid cgroups: crun refuses to start ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2") while a controller is attached to the v2 mount. Attaching each such controller to its own
# v1 hierarchy detaches it from v2. Runtime state, lost at reboot: redone on every run.
fix_cgroups() {
  local unified=/sys/fs/cgroup/unified controller controllers
  if [[ ! -r $unified/cgroup.controllers ]]; then
    log "no hybrid cgroup layout (no $unified): nothing to do"
    return
  fi
  read -ra controllers <"$unified/cgroup.controllers" || true  # read fails on an empty file
  ((${#controllers[@]})) || log "no controller left on cgroup v2"
  for controller in "${controllers[@]}"; do
    if mountpoint -q "/sys/fs/cgroup/$controller"; then
      log "cgroup controller $controller already mounted as v1"
      continue
    fi
    mkdir -p "/sys/fs/cgroup/$controller"
    mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller"
    log "mounted cgroup controller $controller as v1"
  done
  [[ -z $(cat "$unified/cgroup.controllers") ]] || die "controllers still on cgroup v2: $(cat "$unified/cgroup.controllers")"
}

# Podman's default rlimits exceed what this sandbox may set (no CAP_SYS_RESOURCE).
fix_ulimits() {
  mkdir -p "$(dirname "$CONTAINERS_CONF")"
  if [[ ! -e $CONTAINERS_CONF ]]; then
    printf '# Written by molecule/build-test-image.sh\n[containers]\n%s\n' "$ULIMITS" >"$CONTAINERS_CONF"
  elif grep -q '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONTAINERS_CONF"; then
    sed -i "s|^[[:space:]]*default_ulimits[[:space:]]*=.*|$ULIMITS|" "$CONTAINERS_CONF"
  elif grep -q '^\[containers\]' "$CONTAINERS_CONF"; then
    sed -i "/^\[containers\]/a $ULIMITS" "$CONTAINERS_CONF"
  else
    printf '\n[containers]\n%s\n' "$ULIMITS" >>"$CONTAINERS_CONF"
  fi
  log "$CONTAINERS_CONF: $(grep '^default_ulimits' "$CONTAINERS_CONF")"
}

# The mirror the host itself uses for bookworm (and for bookworm-security, if any), so the build goes
# through whatever this network allows.
host_repo_uri() {
  # shellcheck disable=SC2016  # $(…) are apt's format fields, not shell
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null | awk -v s="$1" '$1 == s { print $2; exit }'
}

# The mirror for a suite: the host's source for it, else the host's Debian mirror (it serves every release).
mirror_for() {
  local uri
  uri=$(host_repo_uri "$1")
  # shellcheck disable=SC1091  # the host's own os-release
  [[ -n $uri ]] || uri=$(host_repo_uri "$(. /etc/os-release && echo "$VERSION_CODENAME")${1#"$SUITE"}")
  echo "$uri"
}

debootstrap_rootfs() {
  local mirror="${DEBIAN_MIRROR:-$(mirror_for "$SUITE")}"
  [[ -n $mirror ]] || die "no Debian source in the host's apt sources; set DEBIAN_MIRROR"
  log "mirror: $mirror"
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$BUILD_DIR/rootfs" "$mirror"
}

configure_rootfs() {
  local root="$BUILD_DIR/rootfs" mirror security
  mirror="${DEBIAN_MIRROR:-$(mirror_for "$SUITE")}"
  security="$(mirror_for "$SUITE-security")"

  # Apt sources as a fresh Debian install writes them (deb822), on the host's mirrors.
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$SUITE" "$SUITE"
    [[ -z $security ]] ||
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$security" "$SUITE"
  } >"$root/etc/apt/sources.list.d/debian.sources"

  # HTTPS from inside the container goes through the same (intercepting) path as the host's: trust the
  # host's extra CAs, or pip/get_url fail with CERTIFICATE_VERIFY_FAILED.
  if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" update-ca-certificates

  # Populated lists: with empty ones, `apt: update_cache: true, cache_valid_time: N` believes the cache
  # is fresh and then finds no package.
  chroot "$root" apt-get update -q
  chroot "$root" apt-get clean

  # Each container gets its own machine id (systemd writes one at first boot when the file is empty).
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
}

import_image() {
  local tarball="$BUILD_DIR/rootfs.tar" old=""
  old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  tar -C "$BUILD_DIR/rootfs" --numeric-owner -cf "$tarball" .
  # Import moves the name onto the new image (`podman rmi -f` first would delete running containers).
  podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
    --change "LABEL $LABEL=$CONTENT" "$tarball" "$IMAGE"
  # Drop the previous image unless a container still uses it (plain rmi refuses then).
  [[ -z $old ]] || podman rmi "$old" >/dev/null 2>&1 || true
  rm -rf "$BUILD_DIR"
}

# Boot the image once the way Molecule will (SYS_ADMIN, or sandboxed units fail with 226/NAMESPACE).
smoke_test() {
  local name="double-boiler-smoke-$$" state=""
  podman run -d --rm --name "$name" --cap-add SYS_ADMIN --systemd always "$IMAGE" >/dev/null
  # shellcheck disable=SC2064
  trap "podman rm -f -t 0 $name >/dev/null 2>&1 || true" EXIT
  # Right after start the bus socket may not exist yet ("Failed to connect to bus"): retry until systemd
  # answers, then let it wait for the boot to finish.
  for _ in $(seq 60); do
    state=$(podman exec "$name" timeout 60 systemctl is-system-running --wait 2>/dev/null || true)
    [[ -z $state || $state == offline ]] || break
    sleep 1
  done
  log "systemd in the container says: $state"
  podman rm -f -t 0 "$name" >/dev/null
  trap - EXIT
  [[ $state == running || $state == degraded ]] || die "image did not boot: systemd state '$state'"
}

main() {
  local t0=$SECONDS
  preflight
  step "install debootstrap and podman" install_host_packages
  step "mount hybrid cgroup controllers as v1" fix_cgroups
  step "set podman default ulimits" fix_ulimits
  if [[ $rebuild -eq 0 ]] &&
    [[ $(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null) == "$CONTENT" ]]; then
    log "image $IMAGE of this content ($CONTENT) exists: build skipped (use --rebuild to redo it)"
  else
    step "debootstrap $SUITE minbase" debootstrap_rootfs
    step "configure rootfs (apt sources, CAs, apt lists, machine-id)" configure_rootfs
    step "tar and podman import as $IMAGE" import_image
  fi
  if [[ $smoke -eq 1 ]]; then
    step "boot check" smoke_test
  fi
  log "ready: $IMAGE (total $((SECONDS - t0)) s)"
}

main
