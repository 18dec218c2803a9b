# shellcheck shell=bash disable=SC2034,SC2154  # (BAD_* are used by the tests; targets.sh sets the rest)
# tests/lib/badtarget.sh: the shell side of tests/lib/badtarget.py, the
# scripted misbehaving target.  Source after targets.sh (and checks.sh).
#
#   badtarget_setup              backing files for its two LUNs (once a test)
#   badtarget_start CASE [ARG]   start it with --case CASE on a picked port;
#                                sets BAD_PID, BAD_PORT, BAD_LOG, BAD_URL
#   badtarget_stop               kill it and forget its pid
#   badtarget_fired CASE         true if the case fired (its log says so)
#   bad_mount_fg OPTS            mount BAD_URL on BAD_MNT in the foreground
#   bad_unmount                  unmount it (exit status 0 checked)
#   bad_check_names "NAME..."    the mount shows exactly these LUN files
#   check_alive                  the foreground iscsifs still runs and the
#                                mount answers
#   check_log REGEX [SECS]       the iscsifs log has a line matching REGEX
#   check_no_sanitizer_report    no ASan/UBSan/LSan report in the log
#   bad_case_end CASE WORK [START]  the checks and teardown every case ends with
#   lun_stat LUN KEY             a counter of the statistics file
#   session_stat N KEY           a counter of session N in that file
#   badtarget_count REGEX        lines of the target's log matching REGEX
#   check_lun0 WORK              LUN 0 reads back what the target holds and
#                                a write through it lands there
#   bt CMD...                    CMD under a short timeout (BAD_IO_TIMEOUT)
#   io_result CMD...             run CMD; RESULT=ok, eio, hang or other
#                                (RESULT_ERR: its stderr)
#
# One target process per case: a case is chosen when it starts.  Pids of
# targets and foreground daemons that have ended are taken out of
# $TEST_TMPDIR/.pids, so that cleanup never signals a reused pid.

BADTARGET="$top_srcdir/tests/lib/badtarget.py"
BAD_IQN="$IQN_PREFIX:bad"
BAD_LUN0="$TEST_TMPDIR/bad-lun0.img"
BAD_LUN1="$TEST_TMPDIR/bad-lun1.img"
BAD_LUN_SIZE=4M
BAD_MNT="$TEST_TMPDIR/mnt"
# Seconds one command on the mount may take here: the slowest legitimate
# case (four reconnects of DefaultTime2Wait 2 s, or a command timeout) is
# well under it, a hang is not.
BAD_IO_TIMEOUT=${BAD_IO_TIMEOUT:-60}

# bt CMD...: CMD under timeout(1), BAD_IO_TIMEOUT seconds.
bt() {
    timeout -k 5 "$BAD_IO_TIMEOUT" "$@"
}

# _unrecord_pid PID: forget PID in .pids (it has been waited for).
_unrecord_pid() {
    local f="$TEST_TMPDIR/.pids"
    awk -v p="$1" '$2 != p' "$f" >"$f.new" && mv "$f.new" "$f"
}

badtarget_setup() {
    make_file "$BAD_LUN0" "$BAD_LUN_SIZE" random
    make_file "$BAD_LUN1" "$BAD_LUN_SIZE" random
    mkdir -p "$BAD_MNT"
}

# badtarget_start CASE [ARG...]: start badtarget.py --case CASE [ARG...]
# on 127.0.0.1 and wait until it listens.
badtarget_start() {
    local case=$1 port pid try
    shift
    for try in 1 2 3; do
        port=$(pick_port)
        BAD_LOG="$TEST_TMPDIR/badtarget.$case.log"
        "$PYTHON" "$BADTARGET" --port "$port" --case "$case" --iqn "$BAD_IQN" ${BAD_VERBOSE:+--verbose} \
            --lun0 "$BAD_LUN0" --lun1 "$BAD_LUN1" "$@" >"$BAD_LOG" 2>&1 </dev/null &
        pid=$!
        _record_pid target "$pid" badtarget
        if wait_for_port "$LOOPBACK4" "$port" 10 "$pid"; then
            BAD_PID=$pid BAD_PORT=$port
            BAD_URL="iscsi://$LOOPBACK4:$port/$BAD_IQN"
            return 0
        fi
        note "badtarget on port $port did not start (try $try):"
        cat "$BAD_LOG" >&2
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        _unrecord_pid "$pid"
    done
    fail "badtarget would not start"
}

badtarget_stop() {
    kill -KILL "$BAD_PID" 2>/dev/null
    wait "$BAD_PID" 2>/dev/null
    _unrecord_pid "$BAD_PID"
}

# badtarget_fired CASE: the case really happened.
badtarget_fired() {
    grep -q "^badtarget: fired $1 " "$BAD_LOG"
}

# bad_mount_fg OPTS: mount BAD_URL on BAD_MNT with -o OPTS, foreground.
bad_mount_fg() {
    mount_iscsifs_fg "$BAD_URL" "$BAD_MNT" -o "$1"
    BAD_FG_PID=$ISCSIFS_FG_PID
}

bad_unmount() {
    unmount_iscsifs "$BAD_MNT"
    _unrecord_pid "$BAD_FG_PID"
}

# bad_check_names "NAME...": the mount's root holds exactly these entries
# besides the .iscsifs directory of statistics, each a regular file.
bad_check_names() {
    local want got n
    want=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort | tr '\n' ' ')
    got=$(bt ls -1A "$BAD_MNT" | grep -vx '\.iscsifs' | sort | tr '\n' ' ') ||
        fail "ls $BAD_MNT failed"
    assert_eq "$want" "$got" "entries of $BAD_MNT"
    for n in $1; do
        [[ -f $BAD_MNT/$n ]] || fail "$BAD_MNT/$n is not a regular file"
    done
}

check_alive() {
    kill -0 "$BAD_FG_PID" 2>/dev/null || fail "iscsifs died (log: $(tail -n 5 "$ISCSIFS_LOG"))"
    bt stat "$BAD_MNT/lun0" >/dev/null || fail "the mount does not answer stat"
}

# check_log REGEX [SECS]: wait up to SECS (default 5) for a line of the
# iscsifs log to match REGEX (extended).
check_log() {
    local re=$1 secs=${2:-5} i
    for ((i = 0; i < secs * 10; i++)); do
        grep -Eq -- "$re" "$ISCSIFS_LOG" && return 0
        sleep 0.1
    done
    fail "no log line matches /$re/; the log: $(cat "$ISCSIFS_LOG")"
}

# lun_stat LUN KEY: print counter KEY of LUN (lun0, lun1) from the
# mount's statistics file, .iscsifs/stats.
lun_stat() {
    bt cat "$BAD_MNT/.iscsifs/stats" |
        awk -v l="$1" -v k="$2" '$1 == "lun" { cur = $2; next }
            $1 == "session" { cur = ""; next }
            cur == l && $1 == k { print $2; exit }'
}

# session_stat N KEY: print counter KEY of session N (0, 1, ...) from
# the statistics file.
session_stat() {
    bt cat "$BAD_MNT/.iscsifs/stats" |
        awk -v s="$1" -v k="$2" '$1 == "session" { cur = $2; next }
            $1 == "lun" { cur = ""; next }
            cur == s && $1 == k { print $2; exit }'
}

# badtarget_count REGEX: how many lines of the target's log match REGEX
# (extended).
badtarget_count() {
    grep -Ec -- "$1" "$BAD_LOG"
}

# bad_case_end CASE WORK [START]: how every case ends: iscsifs still
# runs and answers (check_alive), then bad_case_close.
bad_case_end() {
    check_alive
    bad_case_close "$@"
}

# bad_case_close CASE WORK [START]: no sanitizer report before or after
# the unmount (whose exit status is checked), the target stopped, the logs
# and the files of WORK removed; the note says how long the case took
# since START (seconds since the epoch), if given.  For a case that has
# checked the running iscsifs its own way (a discovery mount has no lun0
# at its top for check_alive).
bad_case_close() {
    local case=$1 work=$2 start=${3:-}
    check_no_sanitizer_report
    bad_unmount
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok${start:+ ($(($(date +%s) - start)) s)}"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}

check_no_sanitizer_report() {
    if grep -Eq 'runtime error:|AddressSanitizer|LeakSanitizer|ThreadSanitizer' "$ISCSIFS_LOG"; then
        fail "sanitizer report in the iscsifs log"
    fi
}

# io_result CMD...: run CMD (under bt); RESULT is ok, eio (it failed with
# "Input/output error"), hang (timed out) or other; RESULT_ERR its stderr.
io_result() {
    local rc
    RESULT_ERR=$(bt "$@" 2>&1 >/dev/null)
    rc=$?
    if ((rc == 0)); then
        RESULT=ok
    elif ((rc == 124 || rc == 137)); then
        RESULT=hang
    elif [[ $RESULT_ERR == *"Input/output error"* ]]; then
        RESULT=eio
    else
        RESULT=other
    fi
}

# slice FILE OFFSET LENGTH: print LENGTH bytes of FILE from OFFSET.
slice() {
    dd if="$1" bs=4096 iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

# check_lun0 WORK: LUN 0 still works: a write of 128 KiB lands on the
# target and reads back, and the whole LUN reads as the target holds it.
check_lun0() {
    local work=$1 off
    mkdir -p "$work"
    off=$(((RANDOM % 28) * 131072))
    head -c 131072 /dev/urandom >"$work/lun0-pattern"
    bt dd if="$work/lun0-pattern" of="$BAD_MNT/lun0" bs=131072 oflag=seek_bytes \
        seek="$off" conv=notrunc status=none || fail "write to lun0 failed"
    slice "$BAD_LUN0" "$off" 131072 >"$work/lun0-target"
    assert_same_file "$work/lun0-pattern" "$work/lun0-target" "lun0 write as the target holds it"
    bt dd if="$BAD_MNT/lun0" of="$work/lun0-all" bs=1M status=none || fail "read of lun0 failed"
    assert_same_file "$BAD_LUN0" "$work/lun0-all" "lun0 read"
    rm -f "$work"/lun0-*
}
