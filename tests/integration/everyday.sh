#!/bin/bash
# everyday.sh: what a user meets besides the I/O path.
#
# - `iscsifs --help` and `--version` exit 0 on stdout; --help and the man
#   page name every option of DESIGN.md §1; the man page renders cleanly.
# - `make install DESTDIR=...` installs iscsifs, iscsifs.1, mount.iscsifs
#   and mount.fuse.iscsifs, and their page mount.iscsifs.8 under both
#   names; the helper drops the options meant for mount(8) and systemd
#   only (checked in its fake mode); the systemd units verify.
# - fstab: in a private mount namespace whose /sbin and bindir show what was
#   installed (nothing of the system is touched), `mount -a -T FSTAB` mounts
#   a type "iscsifs" line and a "fuse.iscsifs" line with an IPv6 source
#   through our helper, `mount -T FSTAB MNT` mounts one through the
#   system's mount.fuse3 alone, a bad line fails with iscsifs's one-line
#   reason; `umount` unmounts, logs out and ends each daemon.
# - syslog: in that namespace /dev/log is a socket of this test: the
#   daemons log "mounted" and, at umount, "unmounted" there, and a
#   successful mount prints nothing on the terminal.  Outside, with no
#   syslog at all, daemons run as well.
# - xattrs (`getfattr -d`) equal what tgtd was configured with: vendor,
#   product, revision, serial, block sizes, target, portal, LUN, write
#   protection.
# - IPv6: a tgtd listening on [::1] only: --list, the target form, the
#   discovery form, data written and read back.
# - SIGTERM (what `systemctl stop` sends) unmounts, logs out and exits.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
require_iscsifs
require_python
skip_unless tgtd tgtadm getfattr mount umount findmnt unshare nsenter make

# ---------------------------------------------------------------------------
# --help, --version, the man page

run_iscsifs --help
assert_eq 0 "$ISCSIFS_RC" "exit status of iscsifs --help"
help=$(t "$ISCSIFS" --help 2>/dev/null)
[[ -z $(t "$ISCSIFS" --help 2>&1 >/dev/null) ]] || fail "iscsifs --help writes to stderr"
run_iscsifs --version
assert_eq 0 "$ISCSIFS_RC" "exit status of iscsifs --version"
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$top_builddir/Makefile")
[[ $ISCSIFS_ERR == "iscsifs $version"* ]] ||
    fail "iscsifs --version says '$ISCSIFS_ERR', expected 'iscsifs $version ...'"

# DESIGN.md §1, every option.
design_options=(-f -d ro sessions= queue_depth= initiator= chap_user= chap_secret_file=
    target_user= target_secret_file= header_digest= data_digest= timeout= cache
    noop_interval= noop_timeout= cmd_timeout= --list --help --version)
# The page as make wrote it from doc/iscsifs.1.in (the version in its .TH).
man=$top_builddir/doc/iscsifs.1
[[ -f $man ]] || fail "the man page $man is missing"
man_text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man")
for o in "${design_options[@]}"; do
    grep -qE -- "(^|[ ,])$o" <<<"$help" || fail "iscsifs --help does not mention $o"
    grep -qE -- "(^|[ ,\"])$o" <<<"$man_text" || fail "the man page does not mention $o"
done
# Every -o option of --help is in the man page too.
while read -r o; do
    grep -qF -- "$o" <<<"$man_text" || fail "the man page lacks '$o' of --help"
done < <(grep -oE -- '-o [a-z_]+=?' <<<"$help" | sed 's/^-o //' | sort -u)
grep -qF "\"iscsifs $version\"" "$man" || fail "the man page's .TH does not say iscsifs $version"
for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
    grep -qx "\.SH \"\?$section\"\?" "$man" || fail "the man page has no $section section"
done
# The helper's page, mount.iscsifs(8), next to it.
man8=$top_builddir/doc/mount.iscsifs.8
[[ -f $man8 ]] || fail "the man page $man8 is missing"
grep -qF "\"iscsifs $version\"" "$man8" || fail "$man8's .TH does not say iscsifs $version"
if command -v man >/dev/null; then
    for page in "$man" "$man8"; do
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 t man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
        [[ -z $out ]] || fail "man --warnings complains about $page: $out"
    done
fi
note "--help, --version and the man page name every option"

# ---------------------------------------------------------------------------
# make install into a DESTDIR, the helper's option filter, the units

dest=$TEST_TMPDIR/dest
out=$(t env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top_builddir" install \
    DESTDIR="$dest" 2>&1) || fail "make install DESTDIR=$dest: $out"
inst_bin=$(find "$dest" -path '*/bin/iscsifs' -type f)
inst_helper=$(find "$dest" -name mount.iscsifs -type f)
inst_man=$(find "$dest" -path '*/man1/iscsifs.1' -type f)
[[ -x $inst_bin ]] || fail "make install put no iscsifs under $dest"
[[ -x $inst_helper ]] || fail "make install put no mount.iscsifs under $dest"
[[ -f $inst_man ]] || fail "make install put no man1/iscsifs.1 under $dest"
for page in mount.iscsifs.8 mount.fuse.iscsifs.8; do
    [[ -f $(dirname "$inst_man")/../man8/$page ]] || fail "make install put no man8/$page under $dest"
done
sbin_dest=$(dirname "$inst_helper")
bin_dest=$(dirname "$inst_bin")
bindir=${bin_dest#"$dest"}
assert_eq mount.iscsifs "$(readlink "$sbin_dest/mount.fuse.iscsifs")" \
    "mount.fuse.iscsifs installed as a link to mount.iscsifs"
sh -n "$inst_helper" || fail "mount.iscsifs is not valid sh"
command -v dash >/dev/null && { dash -n "$inst_helper" || fail "mount.iscsifs is not valid POSIX sh"; }

# helper_says TYPE ARGS...: what the installed helper (as mount.TYPE)
# would run, in its fake mode (-f), printed by -v.
helper_says() {
    local name=mount.$1
    shift
    t "$sbin_dest/$name" "$@" -f -v 2>&1
}
got=$(helper_says iscsifs 'iscsi://[::1]:3260/iqn.x:t' /mnt/t -n \
    -o defaults,_netdev,ro,auto,noauto,user,users,nouser,owner,group,nofail \
    -o x-systemd.automount,x-systemd.requires=a.service,comment=fstab,sessions=2,nosuid,nodev)
assert_eq "mount.iscsifs: running: iscsifs iscsi://[::1]:3260/iqn.x:t /mnt/t -o ro,sessions=2,nosuid,nodev" \
    "$got" "the helper's command for mount(8)-only options"
got=$(helper_says fuse.iscsifs 'iscsifs#iscsi://h/iqn.x:t' /mnt/t -o _netdev,defaults -t fuse.iscsifs)
assert_eq "mount.fuse.iscsifs: running: iscsifs iscsi://h/iqn.x:t /mnt/t" "$got" \
    "the helper's command for fuse.iscsifs with only mount(8) options"
"$sbin_dest/mount.iscsifs" >/dev/null 2>&1 && fail "the helper without arguments succeeded"

if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TEST_TMPDIR/units"
    # The unit runs iscsifs from systemd's PATH; verify checks it exists.
    sed "s|^ExecStart=iscsifs |ExecStart=$inst_bin |" "$top_srcdir/contrib/iscsifs@.service" \
        >"$TEST_TMPDIR/units/iscsifs@mnt-store.service"
    cp "$top_srcdir/contrib/mnt-store.mount" "$TEST_TMPDIR/units/"
    out=$(t systemd-analyze verify --man=no "$TEST_TMPDIR/units/iscsifs@mnt-store.service" \
        "$TEST_TMPDIR/units/mnt-store.mount" 2>&1) || fail "systemd-analyze verify: $out"
    [[ -z $out ]] || fail "systemd-analyze verify complains: $out"
fi
note "make install, the helper's options and the systemd units are right"

# ---------------------------------------------------------------------------
# Targets: tgtd on [::1] only, and tgtd on 127.0.0.1

# IPv6 must work here: a machine without ::1 fails this test, not skips it.
grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null ||
    fail "this machine has no IPv6 loopback address ::1 (IPv6 disabled?): IPv6 portals cannot be tested; enable it (sysctl net.ipv6.conf.lo.disable_ipv6=0)"

iqn6=$IQN_PREFIX:everyday6
tgt_start "" "$LOOPBACK6"
V6_CTRL=$TGT_CTRL V6_URL=$TGT_URL V6_PORT=$TGT_PORT
tgt_add_target 1 "$iqn6"
make_file "$TEST_TMPDIR/v6.img" 16M random
tgt_add_lun 1 1 "$TEST_TMPDIR/v6.img"
tgt_allow_all 1
tgt_add_target 2 "$iqn6-b"
make_file "$TEST_TMPDIR/v6b.img" 4M random
tgt_add_lun 2 1 "$TEST_TMPDIR/v6b.img"
tgt_allow_all 2

iqn=$IQN_PREFIX:everyday
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 16M random
make_file "$TEST_TMPDIR/lun2.img" 8M random
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img" 4096
tgt_add_lun 1 2 "$TEST_TMPDIR/lun2.img" 512 readonly
tgtadm_ --op update --mode logicalunit --tid 1 --lun 1 \
    --params vendor_id=EVRYDAY,product_id=LUNFILE-4K,product_rev=R2D2,scsi_sn=EVD0001
tgtadm_ --op update --mode logicalunit --tid 1 --lun 2 \
    --params vendor_id=EVRYDAY,product_id=LUNFILE-RO,product_rev=R2D3,scsi_sn=EVD0002
tgt_allow_all 1

# ---------------------------------------------------------------------------
# Private mount namespaces for mount(8)

# mount(8) runs helpers from /sbin only, with its own PATH: a namespace
# shows the installed files there instead of installing them on the system.
sbin_real=$(readlink -f /sbin)

# A syslog socket of our own: lines land in $syslog_out.
syslog_dir=$TEST_TMPDIR/syslog
syslog_out=$syslog_dir/messages
mkdir -p "$syslog_dir"
cat >"$syslog_dir/listen.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[3], "w").close()
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
EOF
: >"$syslog_out"
"$PYTHON" "$syslog_dir/listen.py" "$syslog_dir/log" "$syslog_out" "$syslog_dir/ready" \
    </dev/null >"$syslog_dir/listener.log" 2>&1 &
_record_pid target $! syslog-listener
for ((i = 0; i < 50; i++)); do [[ -e $syslog_dir/ready ]] && break; sleep 0.1; done
[[ -S $syslog_dir/log ]] || fail "the syslog listener did not start: $(cat "$syslog_dir/listener.log")"

# The script a new namespace runs first: $1 = "helpers" to show the
# installed mount helpers in /sbin, then the command.  Always: bindir shows
# the installed iscsifs; /dev/log is our syslog socket.
cat >"$TEST_TMPDIR/ns.sh" <<EOF
#!/bin/bash
set -e
if [[ \$1 == helpers ]]; then
    mount -t overlay overlay -o "lowerdir=$sbin_dest:$sbin_real" "$sbin_real"
fi
shift
[[ -d "$bindir" ]] || { echo "ns.sh: $bindir does not exist on this machine" >&2; exit 1; }
mount -t overlay overlay -o "lowerdir=$bin_dest:$bindir" "$bindir"
if [[ ! -e /dev/log ]]; then
    # no syslog on this machine: a read-only /dev with a log entry to bind on
    mount -t overlay overlay -o "lowerdir=$syslog_dir:/dev" /dev
fi
mount --bind "$syslog_dir/log" /dev/log
exec "\$@"
EOF

# in_new_ns helpers|nohelpers CMD...: run CMD in a new private mount
# namespace (see ns.sh).  Daemons started there keep it alive; reach it
# again with in_ns.
in_new_ns() {
    t unshare -m --propagation private bash "$TEST_TMPDIR/ns.sh" "$@"
}

# in_ns MNT CMD...: run CMD in the mount namespace of the iscsifs of MNT.
in_ns() {
    local mnt=$1 pid
    shift
    pid=$(iscsifs_pids "$mnt" | head -n1)
    [[ -n $pid ]] || fail "no iscsifs runs for $mnt"
    t nsenter -t "$pid" -m -- "$@"
}

# ns_umount MNT TID CTRL: umount MNT in its namespace; its iscsifs must
# exit within 30 s and target TID of the tgtd at control port CTRL must
# then have no session.
ns_umount() {
    local mnt=$1 pids out i
    pids=$(iscsifs_pids "$mnt")
    out=$(in_ns "$mnt" umount "$mnt" 2>&1) || fail "umount $mnt: $out"
    for ((i = 0; i < 300; i++)); do
        local alive=""
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ -z $alive ]] && break
        sleep 0.1
    done
    [[ -z $alive ]] || fail "iscsifs of $mnt still runs 30 s after umount"
    _unregister_mount "$mnt"
    TGT_CTRL=$3 tgt_wait_sessions "$2" 0 10
}

mnt_a=$TEST_TMPDIR/mnt-a    # type iscsifs, our helper, IPv4
mnt_b=$TEST_TMPDIR/mnt-b    # type fuse.iscsifs, our helper, IPv6
mnt_c=$TEST_TMPDIR/mnt-c    # type fuse.iscsifs, the system's mount.fuse3 alone
mnt_x=$TEST_TMPDIR/mnt-x    # a target that does not exist
mkdir -p "$mnt_a" "$mnt_b" "$mnt_c" "$mnt_x"
fstab=$TEST_TMPDIR/fstab
cat >"$fstab" <<EOF
# everyday.sh: the issue's fstab lines
$TGT_URL/$iqn  $mnt_a  iscsifs  _netdev,ro,sessions=2,nofail,x-systemd.device-timeout=10,comment=t  0 0
$V6_URL/$iqn6  $mnt_b  fuse.iscsifs  defaults,_netdev,sessions=1  0 0
$TGT_URL/$iqn  $mnt_c  fuse.iscsifs  noauto,_netdev,ro,sessions=3  0 0
$TGT_URL/$iqn:nosuchtarget  $mnt_x  fuse.iscsifs  noauto,_netdev  0 0
EOF
for m in "$mnt_a" "$mnt_b" "$mnt_c" "$mnt_x"; do _register_mount fuse "$m"; done

# --- mount -a through our helper (both types), syslog, xattrs, IPv6

out=$(in_new_ns helpers mount -v -a -T "$fstab" 2>&1) || fail "mount -a -T $fstab: $out"
printf '%s\n' "$out"
mountpoint -q "$mnt_a" && fail "$mnt_a is mounted outside the test's namespace"
in_ns "$mnt_a" mountpoint -q "$mnt_a" || fail "mount -a did not mount $mnt_a"
in_ns "$mnt_b" mountpoint -q "$mnt_b" || fail "mount -a did not mount $mnt_b"
in_ns "$mnt_a" mountpoint -q "$mnt_c" && fail "mount -a mounted the noauto line $mnt_c"
grep -qF "mount.iscsifs: running: iscsifs $TGT_URL/$iqn $mnt_a -o ro,sessions=2" <<<"$out" ||
    fail "type iscsifs did not run mount.iscsifs with ro,sessions=2 alone"
grep -qF "mount.fuse.iscsifs: running: iscsifs $V6_URL/$iqn6 $mnt_b -o rw,sessions=1" <<<"$out" ||
    fail "type fuse.iscsifs did not run mount.fuse.iscsifs with rw,sessions=1 alone"
# Success is silent: nothing but the helpers' -v lines and mount's own.
noise=$(grep -v -e ': running: ' -e ': successfully mounted$' -e ': ignored$' <<<"$out" || true)
[[ -z $noise ]] || fail "mounting printed more than mount -v does: $noise"

assert_eq "fuse.iscsifs" "$(in_ns "$mnt_a" findmnt -n -o FSTYPE "$mnt_a")" "type of $mnt_a"
in_ns "$mnt_a" findmnt -n -o OPTIONS "$mnt_a" | grep -qE '(^|,)ro(,|$)' ||
    fail "$mnt_a is not mounted read-only"
assert_eq "lun1 lun2" "$(in_ns "$mnt_a" ls "$mnt_a" | tr '\n' ' ' | sed 's/ $//')" \
    "files of $mnt_a"
assert_eq 444 "$(in_ns "$mnt_a" stat -c %a "$mnt_a/lun1")" "mode of lun1 with ro"
in_ns "$mnt_a" dd if=/dev/zero of="$mnt_a/lun1" bs=4096 count=1 conv=notrunc \
    status=none 2>/dev/null && fail "a write to the ro mount $mnt_a succeeded"
in_ns "$mnt_a" cmp "$mnt_a/lun1" "$TEST_TMPDIR/lun1.img" || fail "lun1 differs from its backing file"
assert_eq 2 "$(tgt_session_count 1)" "sessions of the sessions=2 mount"

# xattrs: what tgtd was told, as getfattr -d shows them.
xattrs_of() {    # FILE: "name=value" lines of user.iscsi.* (in mnt_a's namespace)
    in_ns "$mnt_a" getfattr -d --absolute-names -m '^user\.iscsi\.' "$1" |
        sed -n 's/^user\.iscsi\.\([a-z_]*\)="\(.*\)"$/\1=\2/p'
}
check_xattrs() {    # FILE NAME=VALUE...
    local file=$1 kv got
    shift
    got=$(xattrs_of "$file")
    for kv in "$@"; do
        grep -qxF -- "$kv" <<<"$got" ||
            fail "xattr ${kv%%=*} of $file: expected '${kv#*=}'; getfattr -d shows: $(tr '\n' ' ' <<<"$got")"
    done
}
check_xattrs "$mnt_a/lun1" vendor=EVRYDAY product=LUNFILE-4K revision=R2D2 serial=EVD0001 \
    block_size=4096 lun=1 target="$iqn" portal="$LOOPBACK4:$TGT_PORT" write_protected=0
check_xattrs "$mnt_a/lun2" vendor=EVRYDAY product=LUNFILE-RO revision=R2D3 serial=EVD0002 \
    block_size=512 lun=2 target="$iqn" write_protected=1
for name in vendor product revision serial device_id block_size physical_block_size \
    max_transfer target portal lun thin_provisioned write_protected; do
    grep -q "^$name=." <<<"$(xattrs_of "$mnt_a/lun1")" || fail "getfattr -d shows no $name"
done
pbs=$(xattrs_of "$mnt_a/lun1" | sed -n 's/^physical_block_size=//p')
((pbs >= 4096 && (pbs & (pbs - 1)) == 0)) ||
    fail "physical_block_size $pbs of a 4096-byte-block LUN"
note "mount -a: type iscsifs and fuse.iscsifs through our helper, ro, sessions, xattrs right"

# IPv6 through fstab: data written and read back.
check_xattrs "$mnt_b/lun1" portal="[::1]:$V6_PORT" target="$iqn6" lun=1
head -c 1048576 /dev/urandom >"$TEST_TMPDIR/chunk"
in_ns "$mnt_b" dd if="$TEST_TMPDIR/chunk" of="$mnt_b/lun1" bs=64k seek=16 conv=notrunc \
    status=none || fail "write to the IPv6 mount failed"
cp "$TEST_TMPDIR/v6.img" "$TEST_TMPDIR/v6.expect"
dd if="$TEST_TMPDIR/chunk" of="$TEST_TMPDIR/v6.expect" bs=64k seek=16 conv=notrunc status=none
in_ns "$mnt_b" cmp "$mnt_b/lun1" "$TEST_TMPDIR/v6.expect" ||
    fail "the IPv6 mount reads other data than written"
cmp "$TEST_TMPDIR/v6.img" "$TEST_TMPDIR/v6.expect" || fail "tgtd's backing file lacks the write"

# Syslog: each daemon said "mounted" there (daemon.info, identity iscsifs).
pid_a=$(iscsifs_pids "$mnt_a" | head -n1)
pid_b=$(iscsifs_pids "$mnt_b" | head -n1)
grep -qE "^<30>.*iscsifs\[$pid_a\]: mounted $iqn \(2 LUN files\) on $mnt_a" "$syslog_out" ||
    fail "no 'mounted' line of pid $pid_a in syslog: $(cat "$syslog_out")"
grep -qE "^<30>.*iscsifs\[$pid_b\]: mounted $iqn6 " "$syslog_out" ||
    fail "no 'mounted' line of pid $pid_b in syslog: $(cat "$syslog_out")"

ns_umount "$mnt_a" 1 "$TGT_CTRL"
ns_umount "$mnt_b" 1 "$V6_CTRL"
grep -qE "^<30>.*iscsifs\[$pid_a\]: unmounted $mnt_a" "$syslog_out" ||
    fail "no 'unmounted' line of pid $pid_a in syslog: $(cat "$syslog_out")"
grep -qE "^<30>.*iscsifs\[$pid_b\]: unmounted $mnt_b" "$syslog_out" ||
    fail "no 'unmounted' line of pid $pid_b in syslog: $(cat "$syslog_out")"
note "umount: both daemons logged out and exited; their log went to syslog:"
cat "$syslog_out"

# --- mount MNT through the system's mount.fuse3 alone (no helper of ours)

if [[ -x /sbin/mount.fuse3 || -x /sbin/mount.fuse ]]; then
    if [[ -e /sbin/mount.fuse.iscsifs ]]; then
        note "note: /sbin/mount.fuse.iscsifs exists on this system; mount(8) prefers it to mount.fuse3"
    fi
    out=$(in_new_ns nohelpers mount -T "$fstab" "$mnt_c" 2>&1) ||
        fail "mount -T $fstab $mnt_c (through mount.fuse3): $out"
    [[ -z $out ]] || fail "mount $mnt_c printed: $out"
    in_ns "$mnt_c" mountpoint -q "$mnt_c" || fail "$mnt_c is not mounted"
    assert_eq 444 "$(in_ns "$mnt_c" stat -c %a "$mnt_c/lun1")" "mode of lun1 with ro (mount.fuse3)"
    assert_eq 3 "$(tgt_session_count 1)" "sessions of the sessions=3 mount (mount.fuse3)"
    in_ns "$mnt_c" cmp "$mnt_c/lun2" "$TEST_TMPDIR/lun2.img" || fail "lun2 differs (mount.fuse3)"
    ns_umount "$mnt_c" 1 "$TGT_CTRL"
    note "mount MNT with type fuse.iscsifs works through mount.fuse3 alone"
else
    note "no mount.fuse3 on this system: type fuse.iscsifs needs our mount.fuse.iscsifs"
fi

# --- a failing fstab line: iscsifs's reason on mount's stderr, nothing mounted

out=$(in_new_ns helpers mount -T "$fstab" "$mnt_x" 2>&1) &&
    fail "mounting a target that does not exist succeeded: $out"
grep -q "iscsifs: login failed: target not found" <<<"$out" ||
    fail "mount of a missing target did not say why: $out"
[[ $(grep -c . <<<"$out") -le 2 ]] || fail "more than one line of reason: $out"
[[ -z $(iscsifs_pids "$mnt_x") ]] || fail "an iscsifs process is left for $mnt_x"
note "a bad fstab line fails with: $out"

# ---------------------------------------------------------------------------
# IPv6 directly; no syslog socket outside; SIGTERM stops a daemon

out=$(t "$ISCSIFS" --list "$V6_URL/" 2>&1) || fail "iscsifs --list $V6_URL/: $out"
printf '%s\n' "$out"
grep -qx "$iqn6" <<<"$out" || fail "--list over IPv6 does not show $iqn6"
grep -qF "portal [::1]:$V6_PORT" <<<"$out" || fail "--list over IPv6 does not show the portal [::1]:$V6_PORT"
# the target form prints the portal of the URL the same way
out=$(t "$ISCSIFS" --list "$V6_URL/$iqn6" 2>&1) || fail "iscsifs --list $V6_URL/$iqn6: $out"
grep -qxF "  portal [::1]:$V6_PORT" <<<"$out" ||
    fail "--list of $V6_URL/$iqn6 does not show the portal [::1]:$V6_PORT: $out"

mnt6=$TEST_TMPDIR/mnt6
mount_iscsifs "$V6_URL/$iqn6" "$mnt6" -o sessions=2
TGT_CTRL=$V6_CTRL
assert_eq 2 "$(tgt_session_count 1)" "IPv6 sessions"
assert_same_file "$mnt6/lun1" "$TEST_TMPDIR/v6.img" "lun1 over IPv6"
[[ -z $(cat "$ISCSIFS_LOG") ]] || fail "a successful daemonized mount printed: $(cat "$ISCSIFS_LOG")"
pid6=$(iscsifs_pids "$mnt6")
[[ $pid6 =~ ^[0-9]+$ ]] || fail "expected one iscsifs for $mnt6, found: $pid6"
kill -TERM "$pid6"
for ((i = 0; i < 300; i++)); do kill -0 "$pid6" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid6" 2>/dev/null && fail "iscsifs still runs 30 s after SIGTERM"
mountpoint -q "$mnt6" && fail "$mnt6 is still mounted after SIGTERM"
_unregister_mount "$mnt6"
tgt_wait_sessions 1 0 10
note "SIGTERM unmounted $mnt6, logged out and ended iscsifs"

# The discovery form over IPv6: a directory per target.
mount_iscsifs "$V6_URL/" "$mnt6"
assert_eq "$iqn6 $iqn6-b" "$(cd "$mnt6" && echo *)" "targets in $mnt6"
assert_same_file "$mnt6/$iqn6-b/lun1" "$TEST_TMPDIR/v6b.img" "lun1 of $iqn6-b over IPv6"
unmount_iscsifs "$mnt6"
note "ok"
