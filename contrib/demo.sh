#!/bin/bash
# contrib/demo.sh: the README's first command.  On a fresh Debian machine
# (as root) it installs what is needed, builds iscsifs, starts a local demo
# target (tgtd on 127.0.0.1 with one thin-provisioned 256 MiB LUN kept in
# RAM, a file on /dev/shm), mounts it, and uses it the way a user would:
# lists the LUN, reads its SCSI identity from the xattrs, shows with du that
# the LUN file occupies only what was written, round-trips data with dd,
# copies the LUN file sparsely with cp, makes an ext4 filesystem on it,
# loop-mounts it, copies a tree in, checks it with e2fsck, and unmounts
# everything.
#
#   contrib/demo.sh          run the demo and clean up
#   contrib/demo.sh --keep   leave the target running and the LUN mounted
#                            (prints the commands that tear it down)
#
# Environment: DEMO_PORT (iSCSI port, default 13260), DEMO_DIR (default
# /tmp/iscsifs-demo), DEMO_SIZE (LUN size, default 256M), DEMO_CTL (tgtd
# control port number, default 73).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
port=${DEMO_PORT:-13260}
ctl=${DEMO_CTL:-73} # tgtd control port number (tgtadm -C)
dir=${DEMO_DIR:-/tmp/iscsifs-demo}
size=${DEMO_SIZE:-256M}
iqn=iqn.2026-11.org.iscsifs:demo
backing=/dev/shm/iscsifs-demo-lun1.img
mnt=$dir/mnt
fsmnt=$dir/fs
keep=0
[[ ${1:-} == --keep ]] && keep=1

step() { printf '\n\033[1m## %s\033[0m\n' "$*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}
show() {
    printf '$ %s\n' "$*"
    "$@"
}

[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages, starts a target and mounts"

tgtd_pid=
cleanup() {
    local rc=$?
    ((keep)) && [[ $rc -eq 0 ]] && return
    mountpoint -q "$fsmnt" 2>/dev/null && umount "$fsmnt"
    mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
    [[ -n $tgtd_pid ]] && kill -9 "$tgtd_pid" 2>/dev/null
    rm -f "$backing"
    rm -rf "$dir"
    return $rc
}
trap cleanup EXIT

step "install packages and build"
"$top/scripts/setup-debian.sh" demo
(
    cd "$top"
    [[ -x configure ]] || autoreconf -fi >/dev/null
    mkdir -p build
    cd build
    [[ -f Makefile ]] || ../configure >/dev/null
    make -j"$(nproc)" >/dev/null
) || die "build failed (run 'make' in $top/build to see why)"
iscsifs=$top/build/src/iscsifs
echo "built $iscsifs"

step "start a demo target: tgtd on 127.0.0.1:$port, LUN 1 = $size in RAM, thin-provisioned"
mountpoint -q "$mnt" 2>/dev/null && die "$mnt is still mounted from an earlier --keep run: fusermount3 -u $mnt"
mkdir -p "$mnt" "$fsmnt"
truncate -s "$size" "$backing"
tgtd -f --iscsi "portal=127.0.0.1:$port" -C "$ctl" >"$dir/tgtd.log" 2>&1 &
tgtd_pid=$!
disown "$tgtd_pid"
for _ in $(seq 50); do
    tgtadm -C "$ctl" --lld iscsi --mode target --op show >/dev/null 2>&1 && break
    sleep 0.1
done
tgtadm -C "$ctl" --lld iscsi --mode target --op new --tid 1 --targetname "$iqn" ||
    die "tgtd did not start (port $port in use? see $dir/tgtd.log)"
tgtadm -C "$ctl" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 \
    --backing-store "$backing"
# thin: the LUN reports LBPME=1 and LBPRZ=1 and answers GET LBA STATUS
# from the holes of its backing file
tgtadm -C "$ctl" --lld iscsi --mode logicalunit --op update --tid 1 --lun 1 \
    --params thin_provisioning=1
tgtadm -C "$ctl" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
echo "target $iqn is up"

step "mount it"
show "$iscsifs" "iscsi://127.0.0.1:$port/$iqn" "$mnt"
show ls -l "$mnt"
show getfattr -d "$mnt/lun1"

# du_lun: what the LUN file occupies.  The first stat starts reading the
# LUN's allocation (GET LBA STATUS) in the background and reports the
# whole size until it is known; the kernel keeps attributes for 1 s.
du_lun() {
    stat "$mnt/lun1" >/dev/null
    sleep 1.2
    show du -h --apparent-size "$mnt/lun1"
    show du -h "$mnt/lun1"
}

step "a thin LUN: the file occupies only what was written"
du_lun

step "write 64 MiB of random data with dd, read it back, compare"
head -c 64M /dev/urandom >"$dir/random.bin"
show dd if="$dir/random.bin" of="$mnt/lun1" bs=1M conv=notrunc,fsync status=progress
show dd if="$mnt/lun1" of="$dir/readback.bin" bs=1M count=64 status=none
show cmp "$dir/random.bin" "$dir/readback.bin"
echo "identical: the LUN holds what was written"
rm -f "$dir/random.bin" "$dir/readback.bin"
du_lun

step "copy the LUN file: cp skips its holes (SEEK_DATA/SEEK_HOLE)"
show cp --sparse=always "$mnt/lun1" "$dir/copy.img"
show cmp "$mnt/lun1" "$dir/copy.img"
show du -h --apparent-size "$dir/copy.img"
show du -h "$dir/copy.img"
rm -f "$dir/copy.img"

step "make an ext4 filesystem on the LUN file and loop-mount it"
show mkfs.ext4 -q -F "$mnt/lun1"
show mount -o loop "$mnt/lun1" "$fsmnt"
show cp -a "$top/src" "$top/include" "$fsmnt/"
show df -h "$fsmnt"
show diff -r "$top/src" "$fsmnt/src"
show umount "$fsmnt"
show e2fsck -fn "$mnt/lun1"

if ((keep)); then
    step "left running"
    echo "LUN file:   $mnt/lun1   (mount -o loop $mnt/lun1 $fsmnt)"
    echo "tear down:  fusermount3 -u $mnt; kill -9 $tgtd_pid; rm -f $backing"
    exit 0
fi

step "unmount (logs out) and stop the target"
show fusermount3 -u "$mnt"
echo "demo finished: all steps passed"
