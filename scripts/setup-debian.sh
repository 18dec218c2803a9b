#!/bin/bash
# scripts/setup-debian.sh: install what iscsifs needs on a Debian machine.
#
#   scripts/setup-debian.sh build   compiler, autotools, libfuse3, OpenSSL
#   scripts/setup-debian.sh demo    build + tgt (the demo's local target),
#                                   attr (getfattr, the demo's identity step)
#   scripts/setup-debian.sh package build + what makes and checks the
#                                   Debian package (debhelper, dpkg-dev,
#                                   fakeroot, lintian)
#   scripts/setup-debian.sh test    everything the test suite uses: both
#                                   targets, libiscsi tools, qemu-img,
#                                   fio, e2fsprogs, clang (fuzzing), and
#                                   the package list (.ci/run builds and
#                                   installs the package)
#   scripts/setup-debian.sh bench   test + nbdfuse, gnuplot, iproute2
#                                   (contrib/bench, contrib/scale)
#
# Only missing packages are installed, so a second run costs a few
# dpkg queries.  Package postinst scripts are told not to start services
# (tgt and istgt ship daemons on port 3260; the tests start their own).
set -euo pipefail

BUILD_PKGS=(gcc make autoconf automake pkg-config libfuse3-dev fuse3
    libssl-dev)
DEMO_PKGS=(tgt e2fsprogs util-linux attr)
TEST_PKGS=(tgt istgt libiscsi-bin qemu-utils qemu-block-extra fio
    e2fsprogs attr util-linux python3 clang procps)
BENCH_PKGS=(gnuplot-nox iproute2)
# dpkg-buildpackage (dpkg-dev), dh with autoreconf (debhelper pulls in
# dh-autoreconf), lintian; build-essential is what dpkg-buildpackage
# checks for.
PACKAGE_PKGS=(build-essential debhelper dpkg-dev fakeroot lintian)
# nbdfuse has its own package in newer Debian releases; bookworm ships it
# in libnbd-bin.  The first of these that apt knows is installed.
NBDFUSE_PKGS=(nbdfuse libnbd-bin)

die() {
    echo "setup-debian.sh: $*" >&2
    exit 1
}

case ${1:-} in
    build) want=("${BUILD_PKGS[@]}") ;;
    demo) want=("${BUILD_PKGS[@]}" "${DEMO_PKGS[@]}") ;;
    package) want=("${BUILD_PKGS[@]}" "${PACKAGE_PKGS[@]}") ;;
    test) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${PACKAGE_PKGS[@]}") ;;
    bench) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${PACKAGE_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    *) die "usage: setup-debian.sh build|demo|package|test|bench" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages)"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian"

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
# bench: one of NBDFUSE_PKGS, chosen once the package lists are fresh.
want_nbdfuse=0
if [[ $1 == bench ]] && ! command -v nbdfuse >/dev/null; then
    want_nbdfuse=1
fi
if ((${#missing[@]} == 0 && !want_nbdfuse)); then
    echo "setup-debian.sh: all ${#want[@]} packages present"
    exit 0
fi

# Keep package scripts from starting tgtd/istgt as system services.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
trap '[[ $made_policy == 1 ]] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
if ((want_nbdfuse)); then
    nbd_pkg=""
    # The policy is read whole before it is matched: under pipefail, grep -q
    # leaving at its first match would fail the pipe with apt-cache's SIGPIPE.
    for p in "${NBDFUSE_PKGS[@]}"; do
        policy_text=$(apt-cache policy "$p" 2>/dev/null || true)
        [[ $policy_text == *$'\n  Candidate: '[^\(]* ]] && { nbd_pkg=$p; break; }
    done
    [[ -n $nbd_pkg ]] || die "no package of ${NBDFUSE_PKGS[*]} is available (nbdfuse)"
    missing+=("$nbd_pkg")
fi
echo "setup-debian.sh: installing ${missing[*]}"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
echo "setup-debian.sh: done"
