#!/bin/bash
# badtarget-login.sh: a target that misbehaves at login or in what it
# answers while iscsifs probes its LUNs (tests/lib/badtarget.py), one case
# at a time (issue 4, "Hostile target input").
#
#   login cases: iscsifs exits non-zero within BAD_LOGIN_MAX_SECS seconds
#     with one line on stderr naming the violation, and leaves nothing
#     mounted and no process behind;
#   probe cases: lying REPORT LUNS / INQUIRY / READ CAPACITY data for LUN
#     1 either make iscsifs refuse to mount in the same clean way, or it
#     mounts, skips LUN 1 with a log line saying why (or shows it when the
#     lie is harmless), and serves LUN 0 correctly;
#   target names with '/', '..' and control characters: never a file
#     name, never raw in the log;
#   a CmdSN window closed at login and opened only by NOP-Ins: no hang;
#   redirects that go round in circles end with "too many redirects"; a
#   target that drops the connection during login is tried again within
#   the connect timeout, so a few drops still mount and endless ones end
#   in one line naming the cause and the tries;
#   CHAP (issue 12): one-way and mutual CHAP mount, with CHAP_C in hex,
#   0X upper-case hex and base64; a CHAP_C too long, odd, empty or blank,
#   a CHAP_A not offered, a CHAP_I out of range, a wrong mutual CHAP_R, a
#   target that skips its mutual answer, and one that reflects our own
#   challenge each end in one line naming the cause, with no secret in
#   it or in the log.
# $BAD_CASES may name a subset of the cases (for debugging).
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
# shellcheck source=tests/lib/badtarget.sh
. "$top_srcdir/tests/lib/badtarget.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
require_iscsifs

BAD_LOGIN_MAX_SECS=${BAD_LOGIN_MAX_SECS:-20}
badtarget_setup
work=$TEST_TMPDIR/work
mkdir -p "$work"
ncases=0
# the CHAP credentials of the chap-* cases (no_secret looks for both
# secrets in every message and log, of every case)
chap_user=alice chap_secret=alice-secret-1234
chap_target_user=badtarget chap_target_secret=target-secret-5678

# selected CASE: true unless $BAD_CASES leaves CASE out; counts it.
selected() {
    if [[ -n ${BAD_CASES:-} && " $BAD_CASES " != *" $1 "* ]]; then
        return 1
    fi
    ncases=$((ncases + 1))
}

# no_secret WHAT FILE: none of the CHAP secrets of these tests is in FILE.
no_secret() {
    local s
    for s in "$chap_secret" "$chap_target_secret"; do
        [[ -n $s ]] || fail "no_secret: no secret to look for"
        ! grep -qF -- "$s" "$2" || fail "$1 shows a CHAP secret"
    done
}

# refused CASE REGEX [portal] [opts=O] [target=ARG]: iscsifs must refuse
# to mount, cleanly.  With "portal", the URL names no target (discovery);
# opts=O adds -o options; target=ARG adds an argument of badtarget.py
# (may repeat).
refused() {
    local case=$1 re=$2 url lines portal=no opts=sessions=1 arg
    local -a targs=()
    shift 2
    for arg in "$@"; do
        case $arg in
            portal) portal=yes ;;
            opts=*) opts+=",${arg#opts=}" ;;
            target=*) targs+=("${arg#target=}") ;;
            *) fail "refused: bad argument '$arg'" ;;
        esac
    done
    selected "$case" || return 0
    badtarget_start "$case" "${targs[@]}"
    url=$BAD_URL
    [[ $portal == yes ]] && url="iscsi://$LOOPBACK4:$BAD_PORT/"
    _register_mount fuse "$BAD_MNT"
    run_iscsifs -o "$opts" "$url" "$BAD_MNT"
    note "case $case: exit $ISCSIFS_RC after ${ISCSIFS_SECS}s: $ISCSIFS_ERR"
    ((ISCSIFS_RC != 124 && ISCSIFS_RC != 137)) || fail "$case: iscsifs still running after ${ISCSIFS_START_TIMEOUT}s"
    ((ISCSIFS_RC != 0)) || fail "$case: iscsifs mounted"
    awk -v s="$ISCSIFS_SECS" -v m="$BAD_LOGIN_MAX_SECS" 'BEGIN { exit !(s <= m) }' ||
        fail "$case: took ${ISCSIFS_SECS}s (limit ${BAD_LOGIN_MAX_SECS}s)"
    lines=$(grep -c . <<<"$ISCSIFS_ERR")
    if [[ -z $ISCSIFS_WRAPPER ]]; then
        ((lines == 1)) || fail "$case: expected one line, got $lines: $ISCSIFS_ERR"
    fi
    grep -Eq -- "$re" <<<"$ISCSIFS_ERR" ||
        fail "$case: the message does not name the cause (/$re/): $ISCSIFS_ERR"
    # the message is printable text, whatever the target sent
    ! LC_ALL=C grep -q '[^[:print:]]' <<<"$ISCSIFS_ERR" ||
        fail "$case: unprintable bytes in the message"
    no_secret "$case: the message" <(printf '%s\n' "$ISCSIFS_ERR")
    ! mountpoint -q "$BAD_MNT" || fail "$case: $BAD_MNT is mounted"
    [[ -z $(iscsifs_pids "$BAD_MNT") ]] || fail "$case: an iscsifs process is left"
    _unregister_mount "$BAD_MNT"
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    badtarget_stop
    rm -f "$BAD_LOG"
}

# mounted CASE "NAMES" REGEX [opts=O] [target=ARG]: iscsifs must mount
# and show exactly NAMES; the log must match REGEX ('' for nothing); LUN
# 0 works; a LUN 1 that is shown reads as the target holds it.  opts=O
# adds -o options, target=ARG an argument of badtarget.py (may repeat).
mounted() {
    local case=$1 names=$2 re=$3 opts=sessions=1 arg
    local -a targs=()
    shift 3
    for arg in "$@"; do
        case $arg in
            opts=*) opts+=",${arg#opts=}" ;;
            target=*) targs+=("${arg#target=}") ;;
            *) fail "mounted: bad argument '$arg'" ;;
        esac
    done
    selected "$case" || return 0
    badtarget_start "$case" "${targs[@]}"
    bad_mount_fg "$opts"
    bad_check_names "$names"
    [[ -n $re ]] && check_log "$re"
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    check_alive
    check_lun0 "$work"
    if [[ " $names " == *" lun1 "* ]]; then
        check_size "$BAD_MNT/lun1" "$(file_size "$BAD_LUN1")"
        bt dd if="$BAD_MNT/lun1" of="$work/lun1" bs=1M status=none || fail "$case: read of lun1 failed"
        assert_same_file "$BAD_LUN1" "$work/lun1" "$case: lun1"
    fi
    ! LC_ALL=C grep -q '[^[:print:][:space:]]' "$ISCSIFS_LOG" ||
        fail "$case: unprintable bytes in the iscsifs log"
    no_secret "$case: the iscsifs log" "$ISCSIFS_LOG"
    check_no_sanitizer_report
    bad_unmount
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}

V='protocol error'

# login
refused login-no-nul "does not end in a NUL"
refused login-dsl-over "$V: Login Response with a [0-9]+-byte data segment, over the 8192"
refused login-long-key "9000-byte value for X-Long-Key"
refused login-many-keys "more than 64 keys we do not understand"
refused login-loop "no agreement after 32 exchanges"
refused login-itt "$V: Login Response for ITT"
refused login-stage "$V: target moves login from stage 0 to 2"
refused login-ahs "$V: Login Response with a 12-byte AHS"
refused login-nop "$V: NOP-In during login"
refused login-redirect-loop "^iscsifs: login failed: too many redirects \(8; the last from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+\)$"
# drops during login: tried again (0.1 s, doubling) within the connect
# timeout, which -o timeout=4 makes 4 s
mounted login-drop "lun0 lun1" ""
refused login-drop-always "login failed: 127\.0\.0\.1:[0-9]+ closed the connection \([0-9]+ tries in [0-9.]+ s\)" opts=timeout=4
mounted login-names "lun0 lun1" ""
mounted window-closed "lun0 lun1" ""

# discovery: hostile target names never become file names
discovered() {
    local case=discovery-good got
    selected "$case" || return 0
    badtarget_start "$case"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    got=$(bt ls -1A "$BAD_MNT" | grep -vx '\.iscsifs' | tr '\n' ' ')
    assert_eq "$BAD_IQN " "$got" "$case: entries of the mount"
    got=$(bt ls -1A "$BAD_MNT/$BAD_IQN" | grep -vx '\.iscsifs' | sort | tr '\n' ' ')
    assert_eq "lun0 lun1 " "$got" "$case: entries of the target's directory"
    bt cmp "$BAD_MNT/$BAD_IQN/lun0" "$BAD_LUN0" || fail "$case: lun0 of the discovered target"
    badtarget_fired "$case" || fail "$case: SendTargets was never asked"
    check_no_sanitizer_report
    bad_unmount
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG"
}
discovered
refused discovery-slash "discovery on .*: SendTargets: TargetName with byte 0x2f" portal
refused discovery-dotdot "discovery on .*: SendTargets: TargetName '\.\.'" portal
refused discovery-ctl "discovery on .*: SendTargets: TargetName with byte 0x1b" portal

# probe: REPORT LUNS
refused luns-short "REPORT LUNS data of 4 bytes"
mounted luns-lying "lun0 lun1" ""
refused luns-odd "LUN LIST LENGTH 13 is not a multiple of 8"
# more LUNs than a mount takes: the first 1024, and a line says so
mounted luns-many "lun0 lun1" "target $BAD_IQN reports 1100 LUNs; only the first 1024 are used"
# probe: INQUIRY, VPD
mounted inquiry-short "lun0" "lun1: .*INQUIRY data of 3 bytes.*skipped"
mounted inquiry-lying "lun0 lun1" ""
mounted vpd-lying "lun0 lun1" ""
# probe: READ CAPACITY
mounted capacity-short "lun0" "lun1: .*READ CAPACITY\\(16\\) data of 8 bytes.*skipped"
mounted blocksize-0 "lun0" "lun1: .*logical block length 0 is not a power of two.*skipped"
mounted blocksize-odd "lun0" "lun1: .*logical block length 1000 is not a power of two.*skipped"
mounted capacity-0 "lun0" "lun1: .*capacity of 0 blocks.*skipped"
mounted capacity-huge "lun0" "lun1: .*more than a file can hold.*skipped"

# issue 12: CHAP (badtarget.py --chap, --mutual).  The secrets are in
# mode-600 files; no_secret checks that neither is in a message or log.
mkdir -p "$TEST_TMPDIR/chap"
make_secret_file "$TEST_TMPDIR/chap/secret" "$chap_secret"
make_secret_file "$TEST_TMPDIR/chap/target-secret" "$chap_target_secret"
ONEWAY=("opts=chap_user=$chap_user,chap_secret_file=$TEST_TMPDIR/chap/secret"
    "target=--chap=$chap_user:$chap_secret")
MUTUAL=("${ONEWAY[@]}"
    "opts=target_user=$chap_target_user,target_secret_file=$TEST_TMPDIR/chap/target-secret"
    "target=--mutual=$chap_target_user:$chap_target_secret")
M='target failed mutual authentication'
# the legal forms mount: hex, 0X with upper-case digits, base64
mounted chap-good "lun0 lun1" "" "${ONEWAY[@]}"
mounted chap-mutual "lun0 lun1" "" "${MUTUAL[@]}"
mounted chap-c-upper "lun0 lun1" "" "${ONEWAY[@]}"
mounted chap-c-base64 "lun0 lun1" "" "${MUTUAL[@]}"
# hostile values: one line naming the value, no secret
refused chap-c-long "target sent a 1025-byte CHAP_C, over the 1024 RFC 7143 allows" "${ONEWAY[@]}"
refused chap-c-odd "target sent CHAP_C with an odd number of hex digits \(31\)" "${ONEWAY[@]}"
refused chap-c-empty "target sent an empty CHAP_C" "${ONEWAY[@]}"
refused chap-c-blank "target sent CHAP_C=: neither 0x-hex nor 0b-base64" "${ONEWAY[@]}"
refused chap-a-unoffered "authentication failed: target chose CHAP_A=6, not the 5 we offered" "${ONEWAY[@]}"
refused chap-i-range "target sent CHAP_I=256: not a decimal 0\.\.255" "${ONEWAY[@]}"
refused chap-r-wrong "$M: wrong CHAP response for target user $chap_target_user" "${MUTUAL[@]}"
refused chap-skip-mutual "$M: it did not answer our challenge" "${MUTUAL[@]}"
refused chap-reflect "$M: it sent back our own CHAP challenge" "${MUTUAL[@]}"

((ncases > 0)) || fail "no case selected by BAD_CASES='${BAD_CASES:-}'"
note "ok: $ncases cases"
