#!/usr/bin/env bash
# The kernels of the test matrix: Debian 12's own (6.1) and its 6.12 LTS
# backport, the newest cloud build of each line that apt knows, and Debian
# 11's 5.10, older than xcap supports (the matrix checks that xcap refuses
# it in one line); downloaded with `apt-get download` (5.10 from bullseye,
# through an apt configuration of its own in the cache) and unpacked with
# `dpkg-deb -x` (nothing is installed on the host).
#
#   scripts/kernels.sh fetch        # download and unpack what is missing
#   scripts/kernels.sh dir 6.1      # the unpacked tree of a line (or "host")
#   scripts/kernels.sh lines        # the lines of the matrix
#
# Trees live in $XCAP_KERNELS (default ~/.cache/xcap/kernels), one folder per
# package, each with boot/vmlinuz-VERSION and lib/modules/VERSION.
set -euo pipefail

CACHE=${XCAP_KERNELS:-$HOME/.cache/xcap/kernels}
LINES=(6.1 6.12 5.10)

# The apt package-name pattern of a line (cloud flavour: small, and it has
# virtio, virtiofs and BTF).
pattern_of() {
  case $1 in
    6.1) echo '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' ;;
    6.12) echo '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64$' ;;
    5.10) echo '^linux-image-5\.10\.0-[0-9]+-cloud-amd64(-unsigned)?$' ;;
    *) echo "kernels: unknown kernel line '$1' (known: ${LINES[*]})" >&2; return 2 ;;
  esac
}

# apt with the host's sources, or (5.10) with bullseye's alone, its lists
# kept in the cache.
apt_for() {
  if [[ $1 == 5.10 ]]; then
    local dir=$CACHE/.apt-bullseye
    mkdir -p "$dir/lists/partial"
    echo "deb http://deb.debian.org/debian bullseye main" >"$dir/sources.list"
    echo -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
      -o Dir::State::Lists="$dir/lists"
  fi
}

newest_package() {
  local pat
  pat=$(pattern_of "$1") || return
  # shellcheck disable=SC2046
  apt-cache $(apt_for "$1") pkgnames linux-image- 2>/dev/null | { grep -E "$pat" || true; } | sort -V | tail -1
}

# The newest tree already unpacked for a line, if any.
unpacked() {
  local pat
  pat=$(pattern_of "$1") || return
  for d in "$CACHE"/linux-image-*; do
    [[ -d $d ]] && basename "$d"
  done | { grep -E "$pat" || true; } | sort -V | tail -1
}

fetch_line() {
  local line=$1 pkg
  pkg=$(newest_package "$line")
  if [[ -z $pkg ]]; then
    # shellcheck disable=SC2046
    apt-get $(apt_for "$line") -o APT::Sandbox::User=root update -qq >/dev/null 2>&1
    pkg=$(newest_package "$line")
  fi
  if [[ -z $pkg ]]; then
    # Offline, or the archive dropped the line: an older tree still serves.
    if [[ -n $(unpacked "$line") ]]; then return 0; fi
    echo "kernels: apt knows no package for Linux $line" >&2
    return 1
  fi
  [[ -f $CACHE/$pkg/.complete ]] && return 0
  echo "kernels: fetching $pkg" >&2
  local tmp
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  # apt's sandbox user cannot write to root's cache: download as root.
  # shellcheck disable=SC2046
  (cd "$tmp" && apt-get $(apt_for "$line") download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  rm -rf "${CACHE:?}/$pkg"
  dpkg-deb -x "$tmp"/*.deb "$CACHE/$pkg"
  rm -rf "$tmp"
  local version
  version=$(basename "$(ls "$CACHE/$pkg"/boot/vmlinuz-*)")
  version=${version#vmlinuz-}
  depmod -b "$CACHE/$pkg" "$version"
  touch "$CACHE/$pkg/.complete"
}

case ${1:-} in
  fetch)
    mkdir -p "$CACHE"
    for line in "${LINES[@]}"; do fetch_line "$line"; done
    ;;
  dir)
    line=${2:?usage: kernels.sh dir LINE}
    tree=$(unpacked "$line")
    if [[ -z $tree ]]; then
      echo "kernels: Linux $line is not fetched (run scripts/kernels.sh fetch)" >&2
      exit 1
    fi
    echo "$CACHE/$tree"
    ;;
  lines)
    echo "${LINES[*]}"
    ;;
  *)
    echo "usage: scripts/kernels.sh fetch | dir LINE | lines" >&2
    exit 2
    ;;
esac
