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
#     lie is harmless), and serves LUN 0 correctly; a probe command
#     refused as not supported takes its fallback without an error line;
#     a discovered target whose open fails once (LUN 1's INQUIRY, or REPORT
#     LUNS) fails its first look with EIO, and the next open shows each
#     LUN once;
#   target names with '/', '..' and control characters: never a file
#     name, never raw in the log;
#   a CmdSN window closed at login and opened only by NOP-Ins: no hang;
#   redirects that go round in circles end with "too many redirects"; a
#   target that drops the connection during login is tried again within
#   the connect timeout, so a few drops still mount and endless ones end
#   in one line naming the cause and the tries;
#   (issue 12, items 2 and 3) a login or a discovery that never ends —
#   empty continued Login Responses, NOP-Ins or Async Messages instead of
#   the SendTargets answer, answers trickled in forever — fails the mount
#   and --list within -o timeout with one line naming the cause, also on
#   a reconnect, which then goes on to its next attempt; a target that is
#   only slow (a few empty continuations, a few NOP-Ins) still mounts.
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

# refused CASE REGEX [portal] [list] [opts=O] [target=ARG]: iscsifs must
# refuse to mount, cleanly.  With "portal", the URL names no target
# (discovery); with "list", `iscsifs --list URL` must fail the same way;
# opts=O adds -o options; target=ARG adds an argument of badtarget.py
# (may repeat).
refused() {
    local case=$1 re=$2 url lines portal=no list=no opts=sessions=1 arg label
    local -a targs=()
    shift 2
    for arg in "$@"; do
        case $arg in
            portal) portal=yes ;;
            list) list=yes ;;
            opts=*) opts+=",${arg#opts=}" ;;
            target=*) targs+=("${arg#target=}") ;;
            *) fail "refused: bad argument '$arg'" ;;
        esac
    done
    label=$case
    [[ $list == yes ]] && label="$case (--list)"
    selected "$case" || return 0
    badtarget_start "$case" "${targs[@]}"
    url=$BAD_URL
    [[ $portal == yes ]] && url="iscsi://$LOOPBACK4:$BAD_PORT/"
    _register_mount fuse "$BAD_MNT"
    if [[ $list == yes ]]; then
        run_iscsifs -o "$opts" --list "$url"
        # what --list printed of the target before its login failed
        ISCSIFS_ERR=$(grep -vx -e "$BAD_IQN" -e "  portal $LOOPBACK4:$BAD_PORT" <<<"$ISCSIFS_ERR")
    else
        run_iscsifs -o "$opts" "$url" "$BAD_MNT"
    fi
    note "case $label: exit $ISCSIFS_RC after ${ISCSIFS_SECS}s: $ISCSIFS_ERR"
    ((ISCSIFS_RC != 124 && ISCSIFS_RC != 137)) || fail "$label: iscsifs still running after ${ISCSIFS_START_TIMEOUT}s"
    ((ISCSIFS_RC != 0)) || fail "$label: iscsifs mounted"
    awk -v s="$ISCSIFS_SECS" -v m="$BAD_LOGIN_MAX_SECS" 'BEGIN { exit !(s <= m) }' ||
        fail "$label: took ${ISCSIFS_SECS}s (limit ${BAD_LOGIN_MAX_SECS}s)"
    lines=$(grep -c . <<<"$ISCSIFS_ERR")
    if [[ -z $ISCSIFS_WRAPPER ]]; then
        ((lines == 1)) || fail "$label: expected one line, got $lines: $ISCSIFS_ERR"
    fi
    grep -Eq -- "$re" <<<"$ISCSIFS_ERR" ||
        fail "$label: the message does not name the cause (/$re/): $ISCSIFS_ERR"
    # the message is printable text, whatever the target sent
    ! LC_ALL=C grep -q '[^[:print:]]' <<<"$ISCSIFS_ERR" ||
        fail "$label: unprintable bytes in the message"
    no_secret "$label: the message" <(printf '%s\n' "$ISCSIFS_ERR")
    ! mountpoint -q "$BAD_MNT" || fail "$label: $BAD_MNT is mounted"
    [[ -z $(iscsifs_pids "$BAD_MNT") ]] || fail "$label: an iscsifs process is left"
    _unregister_mount "$BAD_MNT"
    badtarget_fired "$case" || fail "$label: the target never misbehaved (see $BAD_LOG)"
    badtarget_stop
    rm -f "$BAD_LOG"
}

# mounted CASE "NAMES" REGEX [opts=O] [target=ARG] [quiet] [blksize=N]: iscsifs must
# mount and show exactly NAMES; the log must match REGEX ('' for
# nothing); LUN 0 works; a LUN 1 that is shown reads as the target holds
# it.  opts=O adds -o options, target=ARG an argument of badtarget.py
# (may repeat); with quiet, the log must have no error or warning line;
# blksize=N: st_blksize of lun1 is N.
mounted() {
    local case=$1 names=$2 re=$3 opts=sessions=1 quiet=no blksize= arg
    local -a targs=()
    shift 3
    for arg in "$@"; do
        case $arg in
            opts=*) opts+=",${arg#opts=}" ;;
            target=*) targs+=("${arg#target=}") ;;
            quiet) quiet=yes ;;
            blksize=*) blksize=${arg#blksize=} ;;
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
    [[ -z $blksize ]] || assert_eq "$blksize" "$(bt stat -c %o "$BAD_MNT/lun1")" "$case: st_blksize of lun1"
    ! LC_ALL=C grep -q '[^[:print:][:space:]]' "$ISCSIFS_LOG" ||
        fail "$case: unprintable bytes in the iscsifs log"
    if [[ $quiet == yes ]] && grep -E '^iscsifs: (error|warning): ' "$ISCSIFS_LOG"; then
        fail "$case: error or warning lines in the iscsifs log (above)"
    fi
    no_secret "$case: the iscsifs log" "$ISCSIFS_LOG"
    bad_case_close "$case" "$work"
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
# the login ends (T=1, NSG 3) in the security stage: legal, every key at
# its default; but not with offers of the target's in that last response
# (before, their outcome was taken, digests on, though the answer was
# never sent), nor when we insist on a digest that was never negotiated
# (before, the mount went on without it)
mounted login-skip-operational "lun0 lun1" ""
refused login-skip-operational "target ended the login without negotiating HeaderDigest, and we insist on CRC32C" opts=header_digest=crc32c
refused login-final-offer "target offered HeaderDigest in the response that ends the login, leaving no room for our answer \\(RFC 7143 11\\.13\\.1\\)"
refused login-redirect-loop "^iscsifs: login failed: too many redirects \(8; the last from 127\.0\.0\.1:[0-9]+ to 127\.0\.0\.1:[0-9]+\)$"
# drops during login: tried again (0.1 s, doubling) within the connect
# timeout, which -o timeout=4 makes 4 s
mounted login-drop "lun0 lun1" ""
refused login-drop-always "login failed: 127\.0\.0\.1:[0-9]+ closed the connection \([0-9]+ tries in [0-9.]+ s\)" opts=timeout=4
mounted login-names "lun0 lun1" ""
# CHAP keys belong to the security stage as any key to its stage (before,
# they were passed over in silence anywhere)
refused login-chap-operational "target sent CHAP_A=5 in the operational negotiation stage, where RFC 7143 does not allow it"
# the last Login Response expects a CmdSN 7 above the login's: commands
# are numbered from it (before, the target dropped every command below
# it: no LUN answered, the mount failed)
mounted login-expcmdsn "lun0 lun1" "warning: target expects CmdSN [0-9]+ after the login, not [0-9]+; numbering commands from [0-9]+"
mounted window-closed "lun0 lun1" ""

# discovery: hostile target names never become file names
# discovered_end CASE: LUN 0 of the discovered target reads as the target
# holds it, no unprintable byte in the log, the target was asked, unmount.
discovered_end() {
    local case=$1
    bt cmp "$BAD_MNT/$BAD_IQN/lun0" "$BAD_LUN0" || fail "$case: lun0 of the discovered target"
    ! LC_ALL=C grep -q '[^[:print:][:space:]]' "$ISCSIFS_LOG" ||
        fail "$case: unprintable bytes in the iscsifs log"
    badtarget_fired "$case" || fail "$case: SendTargets was never asked"
    bad_case_close "$case" "$work"
}

# discovered CASE [OPTS]: a discovery mount (-o sessions=1[,OPTS]) shows the
# target and its LUNs.
discovered() {
    local case=$1 got opts=sessions=1
    [[ -n ${2:-} ]] && opts+=",$2"
    selected "$case" || return 0
    badtarget_start "$case"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o "$opts"
    BAD_FG_PID=$ISCSIFS_FG_PID
    got=$(bt ls -1A "$BAD_MNT" | grep -vx '\.iscsifs' | tr '\n' ' ')
    assert_eq "$BAD_IQN " "$got" "$case: entries of the mount"
    got=$(bt ls -1A "$BAD_MNT/$BAD_IQN" | grep -vx '\.iscsifs' | sort | tr '\n' ' ')
    assert_eq "lun0 lun1 " "$got" "$case: entries of the target's directory"
    discovered_end "$case"
}
discovered discovery-good

# size_is FILE BYTES: FILE's st_size is BYTES now (for wait_true).
size_is() {
    [[ $(stat -c %s -- "$1" 2>/dev/null) == "$2" ]]
}

# reopened CASE REGEX [grow]: a discovery mount whose target's first open fails
# once: the first look into its directory fails with EIO and a line
# matching REGEX names the cause, the next after TARGET_RETRY_S (10 s)
# opens it, and it shows each LUN once.  probe-fails-once fails part way,
# after LUN 0 was probed (before, LUN 0's file from the failed open
# stayed and the second open added another: "lun0 lun0 lun1");
# luns-fail-once fails REPORT LUNS (before, the target opened with LUN 0
# alone, and LUN 1 never showed).
# With "grow", LUN 0 grows by 1 MiB between the two opens (a Unit Attention
# the second open takes): its file shows the new size (before, the size
# the failed open had read).
reopened() {
    local case=$1 re=$2 grow=${3:-} dir=$BAD_MNT/$BAD_IQN got size
    selected "$case" || return 0
    badtarget_start "$case"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    if got=$(bt ls -1A "$dir" 2>&1); then
        fail "$case: the first open succeeded: $got"
    fi
    [[ $got == *"Input/output error"* ]] || fail "$case: the first open failed with '$got', not EIO"
    check_log "$re" 1
    note "case $case: $(grep -Em1 -- "$re" "$ISCSIFS_LOG")"
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    size=$(file_size "$BAD_LUN0")
    if [[ $grow == grow ]]; then
        kill -USR1 "$BAD_PID"
        wait_true 10 size_is "$BAD_LUN0" $((size + 1048576)) || fail "$case: the target did not grow LUN 0"
        size=$((size + 1048576))
    fi
    sleep 10.5
    got=$(bt ls -1A "$dir" | sort | tr '\n' ' ')
    assert_eq "lun0 lun1 " "$got" "$case: entries of the target's directory once open"
    check_size "$dir/lun0" "$size"
    bt cmp "$dir/lun0" "$BAD_LUN0" || fail "$case: lun0 does not read as the target holds it"
    bt cmp "$dir/lun1" "$BAD_LUN1" || fail "$case: lun1 does not read as the target holds it"
    bad_case_close "$case" "$work"
}
reopened probe-fails-once "$BAD_IQN: lun1: .*failed: Input/output error"
reopened probe-fails-once-grow "$BAD_IQN: lun1: .*failed: Input/output error" grow
reopened luns-fail-once "$BAD_IQN: cannot list the LUNs of $BAD_IQN: .*failed: Input/output error"

# left_out CASE REGEX: the SendTargets answer names, beside this target,
# one that no directory can have: it is left out (REGEX in the log), and
# this one is mounted and reads.  Before, the whole discovery failed
# ("SendTargets: TargetName with byte 0x2f"): one odd name on a portal
# made every target on it unreachable.
left_out() {
    local case=$1 re=$2 got
    selected "$case" || return 0
    badtarget_start "$case"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    got=$(bt ls -1A "$BAD_MNT" | grep -vx '\.iscsifs' | tr '\n' ' ')
    assert_eq "$BAD_IQN " "$got" "$case: entries of the mount"
    check_log "$re"
    bt cmp "$BAD_MNT/$BAD_IQN/lun1" "$BAD_LUN1" || fail "$case: lun1 of the discovered target"
    discovered_end "$case"
}
left_out discovery-slash "SendTargets: target 'iqn\.2026-11\.org\.evil:x/\.\./\.\./\.\./etc' left out: no directory can have its name \(it has byte 0x2f\)"
left_out discovery-dotdot "SendTargets: target '\.\.' left out: no directory can have its name \(it is '\.' or '\.\.'\)"
left_out discovery-ctl "SendTargets: target 'iqn\.2026-11\.org\.evil:\?\[2J\?bell' left out: no directory can have its name \(it has byte 0x1b\)"

# issue 12, items 2 and 3: a login or a discovery that never ends.  With
# -o timeout=$BOUND_SECS (the deadline of each login and discovery) each
# fails within BOUND_SECS + 2 s, mount and --list alike; a target that
# sends only PDUs that carry nothing is failed at once by their cap.
# iscsifs itself gets BOUND_SECS + 12 s here: a hang (the code before)
# is reported as "still running", not waited for.
BOUND_SECS=3
# bounded CASE REGEX [ARG...]: refused, mount and --list, with those limits.
bounded() {
    local case=$1 re=$2
    shift 2
    ISCSIFS_START_TIMEOUT=$((BOUND_SECS + 12)) BAD_LOGIN_MAX_SECS=$((BOUND_SECS + 2)) \
        refused "$case" "$re" opts=timeout=$BOUND_SECS "$@"
    ISCSIFS_START_TIMEOUT=$((BOUND_SECS + 12)) BAD_LOGIN_MAX_SECS=$((BOUND_SECS + 2)) \
        refused "$case" "$re" opts=timeout=$BOUND_SECS list "$@"
}
bounded login-empty-continue "login failed: 127\.0\.0\.1:[0-9]+ sent more than 8 continued Login Responses without text \(C=1, empty\)$"
bounded login-trickle "login failed: 127\.0\.0\.1:[0-9]+ did not finish the login within $BOUND_SECS s$"
bounded discovery-nop "SendTargets: 127\.0\.0\.1:[0-9]+ sent more than 16 PDUs that carry nothing instead of the answer \(17 NOP-In, 0 Async Message, 0 continued" portal
bounded discovery-async "SendTargets: 127\.0\.0\.1:[0-9]+ sent more than 16 PDUs that carry nothing instead of the answer \(0 NOP-In, 17 Async Message, 0 continued" portal
bounded discovery-trickle "SendTargets: 127\.0\.0\.1:[0-9]+ did not finish the answer within $BOUND_SECS s$" portal
# slow but legal: the caps and the deadline refuse none of these
mounted login-few-empty "lun0 lun1" "" "opts=timeout=$BOUND_SECS"
# listed CASE [portal]: `iscsifs --list` of a slow but legal target shows
# both LUNs and exits 0.
listed() {
    local case=$1 url n
    selected "$case" || return 0
    badtarget_start "$case"
    url=$BAD_URL
    [[ ${2:-} == portal ]] && url="iscsi://$LOOPBACK4:$BAD_PORT/"
    ISCSIFS_START_TIMEOUT=$((BOUND_SECS + 12)) run_iscsifs -o timeout=$BOUND_SECS --list "$url"
    note "case $case (--list): exit $ISCSIFS_RC after ${ISCSIFS_SECS}s"
    ((ISCSIFS_RC == 0)) || fail "$case: --list failed ($ISCSIFS_RC): $ISCSIFS_ERR"
    for n in lun0 lun1; do
        grep -q "^  $n .*disk" <<<"$ISCSIFS_ERR" || fail "$case: --list does not show $n: $ISCSIFS_ERR"
    done
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    [[ $case != discovery-nop-few ]] || (($(badtarget_count "NOP-Out answer for TTT 0x7001") == 1)) ||
        fail "$case: the NOP-In asking for an answer got none (see $BAD_LOG)"
    badtarget_stop
    rm -f "$BAD_LOG"
}
listed login-few-empty
listed discovery-nop-few portal
discovered discovery-nop-few "timeout=$BOUND_SECS"

# relogin CASE: after a dropped connection (SIGUSR1) the target answers
# two logins with empty continued Login Responses forever: each reconnect
# attempt fails by the cap with its own log line, the third logs in, and
# I/O goes on.  -o timeout=30: I/O waits for it that long.
relogin() {
    local case=$1 start n
    selected "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1,timeout=30
    bad_check_names "lun0 lun1"
    check_lun0 "$work"
    kill -USR1 "$BAD_PID"          # the target drops every connection
    wait_true 25 grep -q "reconnected to" "$ISCSIFS_LOG" ||
        fail "$case: no reconnect within 25s: $(cat "$ISCSIFS_LOG")"
    for n in 1 2; do
        check_log "session 0: reconnect attempt $n: login failed: 127\.0\.0\.1:[0-9]+ sent more than 8 continued Login Responses without text"
    done
    assert_eq 2 "$(badtarget_count "fired $case ")" "$case: logins answered with empty continuations"
    assert_eq 1 "$(session_stat 0 reconnects)" "$case: reconnects of session 0"
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
relogin relogin-empty-continue

# Every connection dropped as soon as it logged in, each time with
# Time2Wait 0: the logins back off as the attempts of one outage do
# (0.5 s, 1 s, then 2 s apart); before, they followed each other without
# pause (hundreds a second, two log lines each).  Unmounting meanwhile
# ends cleanly.
relogin_drop_case() {
    local case=relogin-drop-0 start n
    selected "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    kill -USR1 "$BAD_PID"          # the target drops every connection
    wait_true 10 badtarget_fired "$case" || fail "$case: no login was dropped (see $BAD_LOG)"
    sleep 6
    n=$(badtarget_count "fired $case ")
    note "case $case: $n logins dropped in 6 s"
    ((n <= 10)) || fail "$case: $n logins in 6 s: the reconnects do not back off"
    bad_case_end "$case" "$work" "$start"
}
relogin_drop_case

# probe: REPORT LUNS
refused luns-short "REPORT LUNS data of 4 bytes"
mounted luns-lying "lun0 lun1" ""
refused luns-odd "LUN LIST LENGTH 13 is not a multiple of 8"
# more LUNs than a mount takes: the first 1024, and a line says so
mounted luns-many "lun0 lun1" "target $BAD_IQN reports 1100 LUNs; only the first 1024 are used"
# more LUNs than iscsifs reads (16384): read up to it, and said (before,
# the first 257 LUNs were used without a word)
mounted luns-huge "lun0 lun1" "target $BAD_IQN reports 20000 LUNs; only the first 1024 are used"
# a LUN listed, then refused as not supported instead of with qualifier
# 011b: no file for it, one line, the others mounted (before, the mount
# failed)
mounted inquiry-lun-not-supported "lun0 lun1" "lun2: ILLEGAL REQUEST: LOGICAL UNIT NOT SUPPORTED \\(0x25/0x00\\) \\(CDB 0x00\\)"
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
# 4 GiB + 4 KiB does not fit in 32 bits (it read as 4 KiB): no optimal
# size then, st_blksize is the block size
mounted opt-xfer-huge "lun0 lun1" "" quiet blksize=512
# issue 12 item 6: a command refused as not supported (INVALID COMMAND
# OPERATION CODE) while probing takes the fallback without a word:
# READ CAPACITY(10) for (16), MODE SENSE(10) for (6)
mounted probe-refused "lun0 lun1" "" quiet
# ... but when READ CAPACITY(10) says 0xffffffff, SBC-3 sends us to (16),
# which is refused: the capacity is unknown, the LUN skipped with a line
mounted capacity10-huge "lun0" "lun1: READ CAPACITY\(10\) says 2\^32 blocks or more, and READ CAPACITY\(16\).* is refused.*LUN skipped"

# --- issue 12, items 8-10: names and numbers the target chooses ---------

# list_refused CASE REGEX: `iscsifs --list` on the portal must fail with
# one printable line matching REGEX (the case's target started here).
list_refused() {
    local case=$1 re=$2 lines
    selected "$case" || return 0
    badtarget_start "$case"
    run_iscsifs --list "iscsi://$LOOPBACK4:$BAD_PORT/"
    note "case $case (--list): exit $ISCSIFS_RC: $ISCSIFS_ERR"
    ((ISCSIFS_RC != 0)) || fail "$case: --list succeeded: $ISCSIFS_ERR"
    lines=$(grep -c . <<<"$ISCSIFS_ERR")
    if [[ -z $ISCSIFS_WRAPPER ]]; then
        ((lines == 1)) || fail "$case: --list: expected one line, got $lines: $ISCSIFS_ERR"
    fi
    grep -Eq -- "$re" <<<"$ISCSIFS_ERR" || fail "$case: --list does not name the cause (/$re/): $ISCSIFS_ERR"
    ! LC_ALL=C grep -q '[^[:print:]]' <<<"$ISCSIFS_ERR" || fail "$case: unprintable bytes in --list's output"
    badtarget_fired "$case" || fail "$case: SendTargets was never asked"
    badtarget_stop
    rm -f "$BAD_LOG"
}

# discovered_mount CASE [ARG...]: start the case's target (ARGs passed to
# it) and mount its portal in the foreground, -o sessions=2.
discovered_mount() {
    badtarget_start "$@"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=2
    BAD_FG_PID=$ISCSIFS_FG_PID
}

# item 9: a target named .iscsifs is left out with a log line; the
# statistics directory stays reachable and the other target works.
discovered_dot_iscsifs() {
    local case=discovery-dot-iscsifs got want
    selected "$case" || return 0
    discovered_mount "$case"
    want=$(printf '%s\n' .iscsifs "$BAD_IQN" | sort | tr '\n' ' ')
    got=$(bt ls -1A "$BAD_MNT" | sort | tr '\n' ' ')
    assert_eq "$want" "$got" "$case: entries of the mount"
    check_log "SendTargets: target '\.iscsifs' left out: that name is the mount's own directory"
    bt cat "$BAD_MNT/$BAD_IQN/lun0" >/dev/null || fail "$case: lun0 of the discovered target"
    bt cat "$BAD_MNT/.iscsifs/stats" >"$work/stats" || fail "$case: .iscsifs/stats cannot be read"
    grep -q "target $BAD_IQN" "$work/stats" ||
        fail "$case: .iscsifs/stats does not show $BAD_IQN: $(head -c 400 "$work/stats")"
    discovered_end "$case"
}

# item 9: a TargetName listed twice (at another portal, then at the first
# again) is one directory whose sessions use both portals, each once.
discovered_dup() {
    local case=discovery-dup got port2 ports
    selected "$case" || return 0
    port2=$(pick_port)
    discovered_mount "$case" --port2 "$port2"
    got=$(bt ls -1A "$BAD_MNT" | grep -vx '\.iscsifs' | tr '\n' ' ')
    assert_eq "$BAD_IQN " "$got" "$case: entries of the mount"
    check_log "SendTargets: 1 TargetNames listed again \(the first: $BAD_IQN\); each is one target"
    bt cmp "$BAD_MNT/$BAD_IQN/lun1" "$BAD_LUN1" || fail "$case: lun1 of the discovered target"
    # two sessions, one per portal: logins on both ports
    ports=$(grep -oE "conn [0-9]+ \(port [0-9]+\): logged in" "$BAD_LOG" | grep -oE "port [0-9]+" | sort -u |
        tr '\n' ' ')
    [[ $ports == *"port $BAD_PORT "* && $ports == *"port $port2 "* ]] ||
        fail "$case: the sessions did not log in on both portals (logins on: $ports)"
    discovered_end "$case"
    # --list shows the target once, with its two portals
    badtarget_start "$case" --port2 "$port2"
    run_iscsifs --list "iscsi://$LOOPBACK4:$BAD_PORT/"
    ((ISCSIFS_RC == 0)) || fail "$case: --list failed: $ISCSIFS_ERR"
    assert_eq 1 "$(grep -cx "$BAD_IQN" <<<"$ISCSIFS_ERR")" "$case: --list lines naming the target"
    assert_eq 2 "$(grep -c '^  portal ' <<<"$ISCSIFS_ERR")" "$case: --list portal lines"
    badtarget_stop
    rm -f "$BAD_LOG"
}

# A target port in ALUA standby (case alua-standby-port: the first port
# answers every READ and WRITE of LUN 1 at once with NOT READY 04/0B, the
# second serves it): a discovery mount with two sessions, one per port.  8
# readers of 16 reads each and a writer: every read returns what the target
# holds, the write lands, none fails, and LUN 1 counts few retries: the
# commands that were on the standby session when it said so, once at the
# start and again each time its avoidance of 5 s ends (at most 8 readers
# or 8 pieces of the write each time).  Before, a command sent again after
# 04/0B went to the least-loaded session of its loop, which the standby
# one was (it answers at once): the first read failed after 8 retries
# there.
discovered_standby() {
    local case=alua-standby-port port2 i pids=() rc=0 retries t0 secs
    selected "$case" || return 0
    port2=$(pick_port)
    discovered_mount "$case" --port2 "$port2"
    t0=$(date +%s)
    bt cmp -n 65536 "$BAD_MNT/$BAD_IQN/lun1" "$BAD_LUN1" || fail "$case: the first read of lun1"
    for ((i = 0; i < 8; i++)); do
        (
            for ((j = 0; j < 16; j++)); do
                off=$(((RANDOM % 64) * 65536))
                dd if="$BAD_MNT/$BAD_IQN/lun1" of="$work/got.$i" bs=65536 iflag=skip_bytes,direct \
                    skip="$off" count=1 status=none || exit 1
                cmp -s "$work/got.$i" <(slice "$BAD_LUN1" "$off" 65536) || exit 2
            done
        ) &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=$?; done
    ((rc == 0)) || fail "$case: a reader failed (status $rc: 1 a read failed, 2 other data)"
    head -c 1048576 /dev/urandom >"$work/pattern"
    bt dd if="$work/pattern" of="$BAD_MNT/$BAD_IQN/lun1" bs=1048576 oflag=direct conv=notrunc \
        status=none || fail "$case: the write failed"
    slice "$BAD_LUN1" 0 1048576 >"$work/after"
    assert_same_file "$work/pattern" "$work/after" "$case: lun1 on the target after the write"
    check_log "target port in standby"
    retries=$(bt cat "$BAD_MNT/.iscsifs/stats" | awk '$1 == "lun" { cur = $2; next }
        $1 == "session" { cur = ""; next } cur ~ /lun1$/ && $1 == "retries" { print $2; exit }')
    secs=$(($(date +%s) - t0 + 1))
    note "$case: retries of lun1: $retries in about $secs s"
    [[ $retries =~ ^[0-9]+$ ]] || fail "$case: no retries counter for lun1"
    ((retries <= 8 * (secs / 5 + 2))) ||
        fail "$case: $retries retries of lun1 in $secs s (at most 8 per 5 s spell and 8 more)"
    discovered_end "$case"
}

# item 8: a TargetAddress with control characters is refused like a
# TargetName with them (a malformed answer), in one printable line: for a
# mount, for --list, and in a login redirect
refused discovery-addr-ctl "discovery on .*: SendTargets: TargetAddress with byte 0x1b$" portal
list_refused discovery-addr-ctl "^iscsifs: discovery on .*: SendTargets: TargetAddress with byte 0x1b$"
# an item that is not key=value is named without its control bytes (before,
# the error line carried the target's ESC sequences to the terminal)
refused discovery-pair-ctl "discovery on .*: SendTargets: '\?\]0;owned\?\?\[2J' is not key=value$" portal
list_refused discovery-pair-ctl "^iscsifs: discovery on .*: SendTargets: '\?\]0;owned\?\?\[2J' is not key=value$"
refused login-redirect-ctl "login failed: target moved temporarily, but TargetAddress with byte 0x1b"
# a SendTargets answer's header is checked as a login answer's is: no AHS,
# no data segment over what we declared (before, both were taken and the
# portal mounted)
refused discovery-ahs "discovery on .*: protocol error: Text Response with a 12-byte AHS; target PDUs carry none$" portal
refused discovery-dsl-over "discovery on .*: protocol error: Text Response with a 300[0-9]{3}-byte data segment, over the 262144 we accept$" portal
# item 9
discovered_dot_iscsifs
discovered_dup

# A write's connection is lost in portal group 1, and the session logs in
# again at the target's other portal, in group 2 (tpg-failover-late: the
# first port closes every connection after, and the write's stale copy
# lands on group 1 4 s after the loss).  To the target that login is
# another session, which does not end the first one: the write waits for
# the replacement timeout (-o timeout=8) before it goes again, so the
# stale copy lands before it, and the next write of the same block stays.
# Before, it went again as soon as the session was back in group 2, and
# the stale copy landed over the next write.
tpg_failover_case() {
    local case=tpg-failover-late port2 lun1 start secs
    selected "$case" || return 0
    port2=$(pick_port)
    badtarget_start "$case" --port2 "$port2"
    wait_for_port "$LOOPBACK4" "$port2" 10 "$BAD_PID" || fail "$case: port $port2 does not listen"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1,timeout=8
    BAD_FG_PID=$ISCSIFS_FG_PID
    lun1=$BAD_MNT/$BAD_IQN/lun1
    head -c 4096 /dev/urandom >"$work/a"
    head -c 4096 /dev/urandom >"$work/b"
    start=$(date +%s)
    bt dd if="$work/a" of="$lun1" bs=4096 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: the write failed"
    secs=$(($(date +%s) - start))
    check_log "session 0: reconnected to $LOOPBACK4:$port2 "
    check_log "session 0: logged in again in portal group 2; 1 writes lost in group 1 wait for the replacement timeout \\(8 s from their loss\\)"
    note "$case: the write took $secs s"
    bt dd if="$work/b" of="$lun1" bs=4096 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: the next write failed"
    wait_true 10 grep -q "the stale copy of WRITE ITT 0x[0-9a-f]* landed" "$BAD_LOG" ||
        fail "$case: the stale copy never landed: $(cat "$BAD_LOG")"
    slice "$BAD_LUN1" 0 4096 >"$work/got"
    assert_same_file "$work/b" "$work/got" "$case: lun1's first block after the next write"
    discovered_end "$case"
}
tpg_failover_case

# Ctrl-C during the start (login-slow: the login answered 4 s late): the
# SIGINT to the command's process group ends iscsifs, and nothing is
# mounted when the login would have answered.  Before, the child that
# mounts had a session of its own from the fork: the parent died at the
# Ctrl-C, and the child mounted 4 s later, unseen, its lines on the
# terminal after the prompt.
start_interrupted_case() {
    local case=login-slow pid
    selected "$case" || return 0
    badtarget_start "$case"
    _register_mount fuse "$BAD_MNT"
    # a process group of its own, as a shell's job has, with SIGINT as a
    # terminal's job gets it (a script's background command ignores it)
    "$PYTHON" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])' "$ISCSIFS" -o sessions=1 "$BAD_URL" "$BAD_MNT" 2>"$work/start.err" &
    pid=$!
    wait_true 5 grep -q "answering the login in 4 s" "$BAD_LOG" || fail "$case: no login came"
    kill -INT -- "-$pid"         # the whole group, as Ctrl-C does
    wait "$pid" 2>/dev/null
    sleep 5                      # (the login has answered by now)
    if mountpoint -q "$BAD_MNT"; then
        fusermount3 -u "$BAD_MNT"
        fail "$case: mounted after the Ctrl-C: $(cat "$work/start.err")"
    fi
    [[ -z $(iscsifs_pids "$BAD_MNT") ]] || fail "$case: iscsifs still runs after the Ctrl-C"
    badtarget_stop
    note "case $case: ok"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}
start_interrupted_case
discovered_standby
# item 10: LUN 1 listed three times (peripheral, flat, peripheral) is one
# file and one LUN; a log line says so
mounted luns-dup "lun0 lun1" "target $BAD_IQN lists a LUN more than once \(2 repeats, the first 0x4001000000000000\)"

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
refused chap-i-range "target sent CHAP_I=256: not a number 0\.\.255 \(decimal or 0x hex\)" "${ONEWAY[@]}"
refused chap-r-wrong "$M: wrong CHAP response for target user $chap_target_user" "${MUTUAL[@]}"
refused chap-skip-mutual "$M: it did not answer our challenge" "${MUTUAL[@]}"
refused chap-reflect "$M: it sent back our own CHAP challenge" "${MUTUAL[@]}"
# with CHAP to offer, our first request stays in the security stage (T=0);
# a target that answers it by leaving the stage, here straight to the full
# feature phase without the operational stage, breaks RFC 7143's rule
# for the T bit (before, the login succeeded with a warning, every
# operational parameter left at its default)
refused login-transit-unasked "protocol error: target leaves login stage 0, though our request did not ask to \(T=1 in answer to T=0\)" \
    "opts=chap_user=$chap_user,chap_secret_file=$TEST_TMPDIR/chap/secret"

((ncases > 0)) || fail "no case selected by BAD_CASES='${BAD_CASES:-}'"
note "ok: $ncases cases"
