#!/bin/bash
# badinput.sh: every start-up failure of the issue's point 5.  For each
# bad input iscsifs must exit non-zero, within BADINPUT_MAX_SECS seconds
# (default 20), print one line on stderr that names the cause (checked
# with a keyword), and leave nothing mounted and no process behind.
#
#   bad or unsupported URL, bad port, no such host, connection refused,
#   unknown target, no such LUN, mountpoint missing / not a directory /
#   busy / already mounted by iscsifs, login rejected (initiator not in the
#   target's ACL; target requires CHAP), -o loops out of range.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm iscsi-inq

BADINPUT_MAX_SECS=${BADINPUT_MAX_SECS:-20}

# The targets: one good, one whose ACL admits another initiator only, one
# that requires CHAP.
iqn=$IQN_PREFIX:good
acl_iqn=$IQN_PREFIX:acl
chap_iqn=$IQN_PREFIX:chap
tgt_start
make_file "$TEST_TMPDIR/good.img" 8M random
make_file "$TEST_TMPDIR/acl.img" 8M
make_file "$TEST_TMPDIR/chap.img" 8M
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$TEST_TMPDIR/good.img"
tgt_allow_all 1
tgt_add_target 2 "$acl_iqn"
tgt_add_lun 2 1 "$TEST_TMPDIR/acl.img"
tgt_allow_initiator 2 "$IQN_PREFIX:somebody-else"
tgt_add_target 3 "$chap_iqn"
tgt_add_lun 3 1 "$TEST_TMPDIR/chap.img"
tgt_allow_all 3
tgt_set_chap 3 alice alice-secret-123

# The target side is as intended, as libiscsi sees it.
timeout 20 iscsi-inq "$TGT_URL/$iqn/1" >/dev/null 2>&1 ||
    fail "libiscsi cannot log in to the good target"
timeout 20 iscsi-inq "$TGT_URL/$acl_iqn/1" >/dev/null 2>&1 &&
    fail "the ACL target admitted libiscsi's initiator"
timeout 20 iscsi-inq -i "$IQN_PREFIX:somebody-else" "$TGT_URL/$acl_iqn/1" >/dev/null 2>&1 ||
    fail "the ACL target refused its allowed initiator"
timeout 20 iscsi-inq "$TGT_URL/$chap_iqn/1" >/dev/null 2>&1 &&
    fail "the CHAP target admitted an initiator without CHAP"
timeout 20 iscsi-inq "iscsi://alice%alice-secret-123@$LOOPBACK4:$TGT_PORT/$chap_iqn/1" \
    >/dev/null 2>&1 || fail "the CHAP target refused the right secret"
refused_port=$(pick_port)     # reserved, nothing listens there
[[ -n $refused_port ]] || fail "no free port"

require_iscsifs

# mount_count MNT: how many mounts sit exactly on MNT.
mount_count() {
    awk -v m="$1" '$5 == m { n++ } END { print n + 0 }' /proc/self/mountinfo
}

n=0
# expect_failure DESC REGEX WHERE MNT ARG...: run `iscsifs ARG...` and
# check the rules above.  WHERE is "free" (MNT must not be a mountpoint
# afterwards) or "keep" (the mounts on MNT must be as before).
expect_failure() {
    local desc=$1 re=$2 where=$3 mnt=$4 before lines pids_before
    shift 4
    n=$((n + 1))
    before=$(mount_count "$mnt")
    pids_before=$(iscsifs_pids "$mnt")
    # An unexpected success must be cleaned up.
    [[ $where == free ]] && _register_mount fuse "$mnt"
    run_iscsifs "$@"
    note "$desc: exit $ISCSIFS_RC after ${ISCSIFS_SECS}s: $ISCSIFS_ERR"
    if ((ISCSIFS_RC == 124 || ISCSIFS_RC == 137)); then
        fail "$desc: iscsifs still running after ${ISCSIFS_START_TIMEOUT}s"
    fi
    ((ISCSIFS_RC != 0)) || fail "$desc: iscsifs exited 0"
    ((ISCSIFS_RC != 126 && ISCSIFS_RC != 127)) || fail "$desc: could not run $ISCSIFS"
    awk -v s="$ISCSIFS_SECS" -v m="$BADINPUT_MAX_SECS" 'BEGIN { exit !(s <= m) }' ||
        fail "$desc: took ${ISCSIFS_SECS}s (limit ${BADINPUT_MAX_SECS}s)"
    lines=$(grep -c . <<<"$ISCSIFS_ERR")
    ((lines >= 1)) || fail "$desc: no message"
    if [[ -z $ISCSIFS_WRAPPER ]]; then
        ((lines == 1)) || fail "$desc: expected one line, got $lines: $ISCSIFS_ERR"
    fi
    grep -Eiq -- "$re" <<<"$ISCSIFS_ERR" ||
        fail "$desc: the message does not name the cause (/$re/): $ISCSIFS_ERR"
    case $where in
        free) ! mountpoint -q "$mnt" 2>/dev/null || fail "$desc: $mnt is mounted" ;;
        keep) assert_eq "$before" "$(mount_count "$mnt")" "$desc: mounts on $mnt" ;;
    esac
    assert_eq "$pids_before" "$(iscsifs_pids "$mnt")" "$desc: iscsifs processes for $mnt"
}

m=$TEST_TMPDIR/mnt
mkdir -p "$m"
good=$TGT_URL/$iqn

expect_failure "unsupported URL scheme" 'scheme|url|iscsi://' free "$m" "http://$LOOPBACK4/$iqn" "$m"
expect_failure "URL without a host" 'host|url' free "$m" "iscsi:///$iqn" "$m"
expect_failure "junk instead of a URL" 'url|invalid' free "$m" "not-a-url" "$m"
expect_failure "non-numeric LUN in the URL" 'lun|url' free "$m" "$good/one" "$m"
expect_failure "port out of range" 'port' free "$m" "iscsi://$LOOPBACK4:99999/$iqn" "$m"
expect_failure "port 0" 'port' free "$m" "iscsi://$LOOPBACK4:0/$iqn" "$m"
expect_failure "non-numeric port" 'port|url' free "$m" "iscsi://$LOOPBACK4:32a0/$iqn" "$m"
expect_failure "no such host" 'host|resolv|name|not known' free "$m" \
    "iscsi://no-such-host.invalid/$iqn" "$m"
expect_failure "connection refused" 'refused' free "$m" \
    "iscsi://$LOOPBACK4:$refused_port/$iqn" "$m"
expect_failure "unknown target" 'target|not found' free "$m" \
    "$TGT_URL/$IQN_PREFIX:no-such-target" "$m"
expect_failure "no such LUN" 'lun' free "$m" "$good/7" "$m"
expect_failure "mountpoint missing" 'mount|exist|no such|director' free "$TEST_TMPDIR/nonexistent" \
    "$good" "$TEST_TMPDIR/nonexistent"
# issue 13: the number of event loops
expect_failure "-o loops=0" 'loops' free "$m" -o loops=0 "$good" "$m"
expect_failure "-o loops=65 (more than 64)" 'loops' free "$m" -o loops=65 "$good" "$m"
# numbers are read whole (before, fuse_opt's %u took "4x" for 4, wrapped
# -1 to 4294967295 and 2^32 + 1 to 1, and no line said so)
expect_failure "-o sessions=4x" 'sessions=4x: not a number' free "$m" -o sessions=4x "$good" "$m"
expect_failure "-o timeout=-1" 'timeout=-1: not a number' free "$m" -o timeout=-1 "$good" "$m"
expect_failure "-o sessions=4294967297 (1 in 32 bits)" 'sessions=4294967297: more than' free "$m" \
    -o sessions=4294967297 "$good" "$m"
expect_failure "-o noop_timeout over a day" 'noop_timeout=1431656: more than 86400 seconds' free "$m" \
    -o noop_timeout=1431656 "$good" "$m"
# an option FUSE does not know fails before any login, in one line (before:
# after the login, in two lines, libfuse's and ours)
expect_failure "unknown -o option" "unknown option.*no_such_opt" free "$m" -o no_such_opt "$good" "$m"
expect_failure "unknown -o option, portal unreachable" "unknown option.*no_such_opt" free "$m" \
    -o no_such_opt "iscsi://$LOOPBACK4:$refused_port/$iqn" "$m"
# one line for a missing argument too (before: the line and the whole usage)
expect_failure "no MOUNTPOINT" 'missing MOUNTPOINT' free "$m" "$good"
# --list names no LUN (before: it listed every LUN of the target)
expect_failure "--list with a LUN" 'not a LUN' free "$m" --list "$good/7"
# an initiator name cut to 223 bytes would log in as another (before: cut
# without a word); an empty one fails before any login
expect_failure "-o initiator over 223 bytes" 'initiator.*223' free "$m" \
    -o "initiator=iqn.2026-12.org.example:$(printf 'a%.0s' {1..230})" "$good" "$m"
expect_failure "-o initiator= empty" 'initiator.*empty' free "$m" -o initiator= "$good" "$m"
# a secret file that is a FIFO fails at once (before: start-up waited for
# a writer for ever)
mkfifo -m 600 "$TEST_TMPDIR/secret-fifo"
expect_failure "secret file is a FIFO" 'not a regular file' free "$m" \
    -o "chap_user=alice,chap_secret_file=$TEST_TMPDIR/secret-fifo" "$TGT_URL/$chap_iqn" "$m"
: >"$TEST_TMPDIR/a-file"
expect_failure "mountpoint is a file" 'director|mount' free "$TEST_TMPDIR/a-file" \
    "$good" "$TEST_TMPDIR/a-file"
expect_failure "login rejected: initiator not in the ACL" \
    'login|reject|denied|not allowed|authori|not found' free "$m" "$TGT_URL/$acl_iqn" "$m"
expect_failure "login rejected: target requires CHAP" \
    'auth|chap|login|reject|denied' free "$m" "$TGT_URL/$chap_iqn" "$m"

# Busy mountpoints.
busy=$TEST_TMPDIR/busy
mkdir -p "$busy"
_register_mount other "$busy"
mount -t tmpfs -o size=1m iscsifs-test "$busy" || fail "cannot mount a tmpfs"
expect_failure "mountpoint busy (a tmpfs is mounted there)" 'busy|already|mounted|mountpoint' keep \
    "$busy" "$good" "$busy"
umount "$busy"
# ... also where /proc/self/mountinfo escapes the path (before: a space
# hid the mount, and iscsifs mounted over it)
busy="$TEST_TMPDIR/busy with space"
mkdir -p "$busy"
_register_mount other "$busy"
mount -t tmpfs -o size=1m iscsifs-test "$busy" || fail "cannot mount a tmpfs"
expect_failure "busy mountpoint with a space in its path" 'busy|already|mounted|mountpoint' keep \
    "$busy" "$good" "$busy"
umount "$busy"

mount_iscsifs "$good" "$m"
expect_failure "mountpoint already mounted by iscsifs" 'busy|already|mounted|mountpoint' keep \
    "$m" "$good" "$m"
check_sz=$(file_size "$m/lun1")
assert_eq $((8 << 20)) "$check_sz" "size of lun1 on the first mount"
unmount_iscsifs "$m"
tgt_wait_sessions 1 0 10

note "ok: $n bad inputs refused"
