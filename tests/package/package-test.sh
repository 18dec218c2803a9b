#!/bin/bash
# tests/package/package-test.sh TARBALL: the Debian package, built from a
# release tarball, installed, used and purged.
#
#   make dist   (or make distcheck)   in a build directory, then, as root:
#   tests/package/package-test.sh BUILDDIR/iscsifs-VERSION.tar.gz
#
# - TARBALL is unpacked in a temporary directory (the tree this script
#   comes from is not touched) and `dpkg-buildpackage -us -uc -b` builds
#   iscsifs_DEBVERSION_ARCH.deb there; its file list (dpkg -c) holds the
#   daemon, the mount(8) helpers in /sbin, the man page, the systemd unit
#   and the documents; it depends on fuse3 and shared libraries only;
#   lintian reports no error (its output is shown).
# - `apt-get install ./iscsifs_*.deb` installs it; iscsifs --version says
#   the package's upstream version; the man page is found.
# - A tgtd of this test requires CHAP.  `mount -t iscsifs` with options as
#   an fstab line gives them (_netdev, nofail, chap_user=,
#   chap_secret_file= a mode-600 file) runs the installed helper and
#   daemon; a LUN file reads as the backing file, a write reads back and
#   lands in it; `umount` ends the daemon.  Then an fstab file with a
#   fuse.iscsifs line mounts read-only through mount.fuse.iscsifs.
# - `apt-get purge` leaves no file of the package (dpkg -L taken before)
#   and no directory that no other package owns.
#
# The package iscsifs must not be installed before: the test would
# replace it, so it fails instead.  It purges what it installed even when
# it fails half-way.  DEB_BUILD_JOBS sets the build's parallel jobs (2).
# shellcheck source=tests/lib/targets.sh

# The installed daemon is the one under test; a build may take minutes.
ISCSIFS=/usr/bin/iscsifs
: "${ISCSIFS_TEST_TIMEOUT:=1200}"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/lib/targets.sh"

# The package this test installed (purged at exit unless already done).
PKG_INSTALLED=0
PKG=iscsifs
APT_ENV=(env DEBIAN_FRONTEND=noninteractive)

package_cleanup() {
    local rc=$?
    if ((PKG_INSTALLED)); then
        "${APT_ENV[@]}" apt-get purge -y -qq "$PKG" >/dev/null 2>&1 ||
            echo "$TEST_NAME: warning: apt-get purge $PKG failed" >&2
    fi
    (exit "$rc")
    cleanup
}
trap package_cleanup EXIT

tarball=${1:-}
[[ -n $tarball ]] || fail "usage: package-test.sh TARBALL (made by make dist)"
[[ -f $tarball ]] || fail "no tarball $tarball (make dist makes it)"
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")
require_root
require_fuse
skip_unless dpkg-buildpackage dpkg-deb dpkg-parsechangelog lintian apt-get tgtd tgtadm \
    mount umount findmnt
if status=$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null) &&
    [[ $status != *not-installed* ]]; then
    fail "the package $PKG is on this machine already ($status): this test installs and purges its own; apt-get purge $PKG first"
fi

# ---------------------------------------------------------------------------
# Build

work=$TEST_TMPDIR/build
mkdir -p "$work"
# apt-get reads the .deb as user _apt when it can.
chmod 755 "$TEST_TMPDIR" "$work"
tar -xzf "$tarball" -C "$work" || fail "cannot unpack $tarball"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d)
[[ -d $src/debian ]] || fail "$tarball holds no debian/ directory"
debversion=$(cd "$src" && dpkg-parsechangelog -SVersion) || fail "dpkg-parsechangelog failed"
upstream=${debversion%-*}
arch=$(dpkg --print-architecture)
note "building $PKG $debversion ($arch) from $(basename "$tarball")"
start=$SECONDS
(cd "$src" && DEB_BUILD_OPTIONS="parallel=${DEB_BUILD_JOBS:-2}" \
    timeout -k 5 900 dpkg-buildpackage -us -uc -b) \
    >"$TEST_TMPDIR/dpkg-buildpackage.log" 2>&1 || {
    tail -n 60 "$TEST_TMPDIR/dpkg-buildpackage.log" >&2
    fail "dpkg-buildpackage -us -uc -b failed (log above)"
}
deb=$work/${PKG}_${debversion}_$arch.deb
[[ -f $deb ]] || fail "dpkg-buildpackage made no $(basename "$deb"): $(ls "$work")"
note "built $(basename "$deb") in $((SECONDS - start)) s"
# The unit tests ran inside the build (dh_auto_test), the others not.
grep -q '^PASS: tests/unit/' "$TEST_TMPDIR/dpkg-buildpackage.log" ||
    fail "the package build ran no unit test (dh_auto_test)"
! grep -q 'tests/integration/' "$TEST_TMPDIR/dpkg-buildpackage.log" ||
    fail "the package build ran integration tests"

# ---------------------------------------------------------------------------
# What the package holds

echo "---- dpkg -c $(basename "$deb")"
contents=$(dpkg -c "$deb") || fail "dpkg -c $deb failed"
printf '%s\n' "$contents"
# has PATH: fail unless the package holds PATH (a file, or "PATH -> TARGET").
has() {
    grep -qE -- " \./${1#/}( -> .*)?\$" <<<"$contents" || fail "the package lacks $1"
}
has /usr/bin/iscsifs
has /sbin/mount.iscsifs
has "/sbin/mount.fuse.iscsifs -> mount.iscsifs"
has /usr/share/man/man1/iscsifs.1.gz
has /usr/share/man/man8/mount.iscsifs.8.gz
has "/usr/share/man/man8/mount.fuse.iscsifs.8.gz -> mount.iscsifs.8.gz"
has /lib/systemd/system/iscsifs@.service
has /usr/share/doc/iscsifs/copyright
has /usr/share/doc/iscsifs/README.md.gz
has /usr/share/doc/iscsifs/NEWS.gz
has /usr/share/doc/iscsifs/examples/mnt-store.mount
! grep -qE ' \./usr/(local|include)/| \.a$|/tests/' <<<"$contents" ||
    fail "the package holds files it should not: $(grep -E ' \./usr/(local|include)/| \.a$|/tests/' <<<"$contents")"

depends=$(dpkg-deb -f "$deb" Depends)
note "Depends: $depends"
IFS=, read -r -a deps <<<"$depends"
for d in "${deps[@]}"; do
    d=${d# }
    name=${d%% *}
    [[ $name == fuse3 || $name == lib* ]] ||
        fail "the package depends on $d: only fuse3 and shared libraries are expected"
done
grep -qE '(^|, )fuse3(,|$| )' <<<"$depends" || fail "the package does not depend on fuse3"

echo "---- lintian $(basename "$deb")"
lint=$(t lintian --info "$deb" 2>&1)
printf '%s\n' "${lint:-(nothing)}"
! grep -q '^E: ' <<<"$lint" || fail "lintian reports errors (above)"

# ---------------------------------------------------------------------------
# Install

note "apt-get install $(basename "$deb")"
PKG_INSTALLED=1
out=$(cd "$work" && t "${APT_ENV[@]}" apt-get install -y -qq --no-install-recommends \
    "./$(basename "$deb")" 2>&1) || fail "apt-get install ./$(basename "$deb"): $out"
files=$(dpkg -L "$PKG") || fail "dpkg -L $PKG failed after the install"

got=$(t /usr/bin/iscsifs --version) || fail "iscsifs --version failed"
[[ $got == "iscsifs $upstream "* || $got == "iscsifs $upstream-"* ]] ||
    fail "iscsifs --version says '$got', the package is version $debversion"
note "$got"
if command -v man >/dev/null; then
    [[ $(man -w iscsifs 2>/dev/null) == /usr/share/man/man1/iscsifs.1.gz ]] ||
        fail "man -w iscsifs does not find the package's page: $(man -w iscsifs 2>&1)"
fi

# ---------------------------------------------------------------------------
# mount -t iscsifs, with CHAP from a secret file

iqn=$IQN_PREFIX:package
chap_user=pkguser
chap_secret=package-secret-42
tgt_start
make_file "$TEST_TMPDIR/lun1.img" 16M random
cp "$TEST_TMPDIR/lun1.img" "$TEST_TMPDIR/lun1.img.orig"
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
tgt_allow_all 1
tgt_set_chap 1 "$chap_user" "$chap_secret"
secret=$TEST_TMPDIR/chap.secret
make_secret_file "$secret" "$chap_secret"

# The system's PATH only: the helper must find the installed daemon, not
# a build's.
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin
mnt=$TEST_TMPDIR/mnt
mkdir -p "$mnt"
_register_mount fuse "$mnt"
opts=_netdev,nofail,sessions=2,chap_user=$chap_user,chap_secret_file=$secret
note "mount -t iscsifs -o $opts $TGT_URL/$iqn $mnt"
out=$(timeout -k 5 "$ISCSIFS_START_TIMEOUT" env PATH=$SYS_PATH \
    mount -t iscsifs -o "$opts" "$TGT_URL/$iqn" "$mnt" 2>&1 </dev/null) ||
    fail "mount -t iscsifs failed: $out"
[[ -z $out ]] || fail "mount -t iscsifs printed: $out"
mountpoint -q "$mnt" || fail "mount -t iscsifs succeeded but $mnt is not a mountpoint"
note "mounted: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS "$mnt")"
pids=$(iscsifs_pids "$mnt")
[[ -n $pids ]] || fail "no iscsifs process serves $mnt"
for p in $pids; do
    assert_eq /usr/bin/iscsifs "$(readlink "/proc/$p/exe")" "the daemon of the mount"
done

lun=$mnt/lun1
assert_eq $((16 * 1024 * 1024)) "$(file_size "$lun")" "size of $lun"
assert_same_file "$TEST_TMPDIR/lun1.img" "$lun" "the LUN file read whole"
head -c $((1024 * 1024 + 512)) /dev/urandom >"$TEST_TMPDIR/new.bin"
t dd if="$TEST_TMPDIR/new.bin" of="$lun" bs=64k seek=$((3 * 1024 * 1024 + 512)) \
    oflag=seek_bytes conv=notrunc,fsync status=none || fail "dd into $lun failed"
t dd if="$lun" of="$TEST_TMPDIR/back.bin" bs=64k skip=$((3 * 1024 * 1024 + 512)) \
    iflag=skip_bytes,count_bytes count=$((1024 * 1024 + 512)) status=none ||
    fail "dd from $lun failed"
assert_same_file "$TEST_TMPDIR/new.bin" "$TEST_TMPDIR/back.bin" "the write read back"
# The backing file and the LUN file hold the new bytes there and the old
# ones elsewhere.
cp "$TEST_TMPDIR/lun1.img.orig" "$TEST_TMPDIR/expected.img"
dd if="$TEST_TMPDIR/new.bin" of="$TEST_TMPDIR/expected.img" bs=64k \
    seek=$((3 * 1024 * 1024 + 512)) oflag=seek_bytes conv=notrunc status=none ||
    fail "cannot make the expected image"
assert_same_file "$TEST_TMPDIR/expected.img" "$TEST_TMPDIR/lun1.img" "the backing file after the write"
assert_same_file "$TEST_TMPDIR/expected.img" "$lun" "the LUN file after the write"
note "a LUN file read, written, read back and found in the backing file"

out=$(timeout 30 umount "$mnt" 2>&1) || fail "umount $mnt: $out"
_unregister_mount "$mnt"
wait_true 30 bash -c "for p in $pids; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0" ||
    fail "iscsifs (pid $pids) still runs 30 s after umount $mnt"
! mountpoint -q "$mnt" || fail "$mnt is still mounted after umount"

# An fstab line of type fuse.iscsifs: mount(8) runs mount.fuse.iscsifs.
fstab=$TEST_TMPDIR/fstab
printf '%s %s fuse.iscsifs noauto,_netdev,ro,chap_user=%s,chap_secret_file=%s 0 0\n' \
    "$TGT_URL/$iqn" "$mnt" "$chap_user" "$secret" >"$fstab"
_register_mount fuse "$mnt"
out=$(timeout -k 5 "$ISCSIFS_START_TIMEOUT" env PATH=$SYS_PATH \
    mount -T "$fstab" "$mnt" 2>&1 </dev/null) || fail "mount -T $fstab $mnt failed: $out"
mountpoint -q "$mnt" || fail "mount -T $fstab succeeded but $mnt is not a mountpoint"
pids=$(iscsifs_pids "$mnt")
assert_same_file "$TEST_TMPDIR/lun1.img" "$lun" "the LUN file through the fstab line"
[[ ! -w $lun ]] || fail "$lun is writable on a ro mount"
out=$(timeout 30 umount "$mnt" 2>&1) || fail "umount $mnt: $out"
_unregister_mount "$mnt"
wait_true 30 bash -c "for p in $pids; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0" ||
    fail "iscsifs (pid $pids) still runs 30 s after umount $mnt"
note "mount -t iscsifs and an fstab fuse.iscsifs line mount, umount ends the daemon"

# ---------------------------------------------------------------------------
# Purge

out=$(t "${APT_ENV[@]}" apt-get purge -y -qq "$PKG" 2>&1) || fail "apt-get purge $PKG: $out"
PKG_INSTALLED=0
status=$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null)
[[ -z $status || $status == *not-installed* ]] ||
    fail "after apt-get purge the package's status is '$status'"
left=()
while IFS= read -r f; do
    [[ -z $f || $f == /. ]] && continue
    # A directory (or, on a merged /usr, /sbin and /lib: links to one) may
    # stay where another package owns it; nothing else may.
    if [[ -d $f ]]; then
        dpkg-query -S "$f" >/dev/null 2>&1 || left+=("$f/ (a directory no package owns)")
    elif [[ -e $f || -L $f ]]; then
        left+=("$f")
    fi
done <<<"$files"
((${#left[@]} == 0)) || fail "apt-get purge left: ${left[*]}"
note "apt-get purge removed all $(wc -l <<<"$files") paths of the package"
