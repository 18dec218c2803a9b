#!/bin/bash
# scripts/setup-debian.sh: install what iscsifs needs on a Debian machine.
#
#   scripts/setup-debian.sh build   compiler, autotools, libfuse3, OpenSSL
#   scripts/setup-debian.sh demo    build + tgt (the demo's local target)
#   scripts/setup-debian.sh test    everything the test suite uses: both
#                                   targets, libiscsi tools, qemu-img,
#                                   fio, e2fsprogs, clang (fuzzing)
#   scripts/setup-debian.sh bench   test + nbdfuse, gnuplot (contrib/bench)
#
# Only missing packages are installed, so a second run costs a few
# dpkg queries.  Package postinst scripts are told not to start services
# (tgt and istgt ship daemons on port 3260; the tests start their own).
set -euo pipefail

BUILD_PKGS=(gcc make autoconf automake pkg-config libfuse3-dev fuse3
    libssl-dev)
DEMO_PKGS=(tgt e2fsprogs util-linux)
TEST_PKGS=(tgt istgt libiscsi-bin qemu-utils qemu-block-extra fio
    e2fsprogs attr util-linux python3 clang procps)
BENCH_PKGS=(nbdfuse gnuplot-nox)

die() {
    echo "setup-debian.sh: $*" >&2
    exit 1
}

case ${1:-} in
    build) want=("${BUILD_PKGS[@]}") ;;
    demo) want=("${BUILD_PKGS[@]}" "${DEMO_PKGS[@]}") ;;
    test) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    bench) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    *) die "usage: setup-debian.sh build|demo|test|bench" ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages)"
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian"

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "setup-debian.sh: all ${#want[@]} packages present"
    exit 0
fi

echo "setup-debian.sh: installing ${missing[*]}"
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
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
echo "setup-debian.sh: done"
