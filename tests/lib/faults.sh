# shellcheck shell=bash disable=SC2034,SC2154  # (FAULTIO_* are used by the tests; targets.sh sets the rest)
# tests/lib/faults.sh: the shell side of tests/lib/faultio.py, for the
# fault-injection tests (restart-tgt.sh, restart-istgt.sh, timeout.sh,
# proxy.sh).  Source after targets.sh.
#
#   faultio_start FILE BACKING ARG...   start `faultio.py run` in the
#                        background (ARG: --writers W --region B ...);
#                        sets FAULTIO_PID, FAULTIO_OUT, FAULTIO_STOP,
#                        FAULTIO_STATUS, FAULTIO_BACK
#   faultio_counts       print its status line: "OPS W0 W1 ..."
#   faultio_wait_ops N SECS WHAT   wait until N operations are done in all
#   faultio_wait_each C SECS WHAT  wait until every writer has done C more
#                        operations than at this call (all have resumed)
#   faultio_mark_back    record now as the moment the target is back
#   faultio_finish SECS  ask it to stop; it must end within SECS with
#                        success (everything verified); sets FAULTIO[key]
#                        from its key=value lines
#   (check_fio_verify FILE, fio --verify=crc32c with 8 jobs, is in checks.sh)
#   session_reconnects MNT       reconnects counted by all sessions
#   check_mount_alive MNT        the daemon runs and the mount answers
#   elapsed SINCE        seconds (one decimal) from SINCE (date +%s.%N)
#   secs_le A B          true if A <= B (decimals)
#   restart_check MNT FILE BACKING KILL RESTART [SESSIONS_FN]
#                        the target restart test (restart-*.sh): see below

FAULTIO_PY="$top_srcdir/tests/lib/faultio.py"
declare -A FAULTIO=()

# the checks shared with the other tests (check_fio_verify)
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"

# elapsed SINCE: seconds from SINCE (an epoch time with decimals) to now.
elapsed() {
    awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'
}

# secs_le A B: true if A <= B (numbers with decimals).
secs_le() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'
}

faultio_start() {
    local file=$1 backing=$2
    shift 2
    FAULTIO_OUT="$TEST_TMPDIR/faultio.out"
    FAULTIO_STOP="$TEST_TMPDIR/faultio.stop"
    FAULTIO_STATUS="$TEST_TMPDIR/faultio.status"
    FAULTIO_BACK="$TEST_TMPDIR/faultio.back"
    rm -f "$FAULTIO_STOP" "$FAULTIO_STATUS" "$FAULTIO_BACK"
    t "$PYTHON" "$FAULTIO_PY" run "$file" "$backing" --stop "$FAULTIO_STOP" \
        --status "$FAULTIO_STATUS" --seed "$RANDOM" "$@" >"$FAULTIO_OUT" 2>&1 &
    FAULTIO_PID=$!
    note "faultio: $* on $file (pid $FAULTIO_PID)"
}

faultio_counts() {
    cat "$FAULTIO_STATUS" 2>/dev/null || echo 0
}

# _faultio_alive WHAT: fail if faultio.py ended (it only ends on its own
# when something failed).
_faultio_alive() {
    local rc
    if ! kill -0 "$FAULTIO_PID" 2>/dev/null; then
        wait "$FAULTIO_PID"
        rc=$?
        cat "$FAULTIO_OUT" >&2
        fail "$1: the I/O ended early (status $rc): $(tail -n1 "$FAULTIO_OUT")"
    fi
}

faultio_wait_ops() {
    local want=$1 secs=$2 what=$3 i ops
    for ((i = 0; i < secs * 10; i++)); do
        _faultio_alive "$what"
        read -r ops _ < <(faultio_counts)
        ((ops >= want)) && return 0
        sleep 0.1
    done
    fail "$what: only ${ops:-0} operations done within $secs s (wanted $want)"
}

faultio_wait_each() {
    local more=$1 secs=$2 what=$3 i k ok
    local -a start now
    read -r -a start < <(faultio_counts)
    for ((i = 0; i < secs * 10; i++)); do
        _faultio_alive "$what"
        read -r -a now < <(faultio_counts)
        ok=1
        for ((k = 1; k < ${#start[@]}; k++)); do
            ((${now[k]:-0} >= ${start[k]} + more)) || ok=0
        done
        ((ok)) && return 0
        sleep 0.1
    done
    fail "$what: not every writer did $more more operations within $secs s (before: ${start[*]:1}; now: ${now[*]:1})"
}

faultio_mark_back() {
    date +%s.%N >"$FAULTIO_BACK"
}

faultio_finish() {
    local secs=$1 i rc line
    : >"$FAULTIO_STOP"
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$FAULTIO_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$FAULTIO_PID" 2>/dev/null &&
        fail "the I/O did not finish within $secs s of being stopped: $(faultio_counts)"
    wait "$FAULTIO_PID"
    rc=$?
    if ((rc != 0)); then
        cat "$FAULTIO_OUT" >&2
        fail "the I/O failed (status $rc): $(grep FAIL "$FAULTIO_OUT" | tail -n1)"
    fi
    FAULTIO=()
    while read -r line; do
        [[ $line == *=* ]] && FAULTIO[${line%%=*}]=${line#*=}
    done <"$FAULTIO_OUT"
    note "faultio: $(tr '\n' ' ' <"$FAULTIO_OUT")"
}

# session_reconnects MNT: the reconnects of all sessions of the mount
# (its statistics file).
session_reconnects() {
    awk '$1 == "reconnects" { n += $2 } END { print n + 0 }' "$1/.iscsifs/stats"
}

# check_mount_alive MNT: the foreground iscsifs of MNT runs, MNT is still
# a mountpoint and answers (its statistics file can be read).
check_mount_alive() {
    local mnt=$1 fg
    fg=$(_fg_pid_of "$mnt")
    [[ -n $fg ]] && { kill -0 "$fg" 2>/dev/null || fail "iscsifs (pid $fg) of $mnt died"; }
    mountpoint -q "$mnt" || fail "$mnt is no longer a mountpoint"
    timeout 10 cat "$mnt/.iscsifs/stats" >/dev/null || fail "$mnt does not answer"
}

# restart_check MNT FILE BACKING KILL RESTART [SESSIONS_FN]: the target
# restart test of the reliability issue, on the mounted LUN file FILE
# (its backing file BACKING, at least 40 MiB).  8 writers (4 MiB regions,
# up to 256 KiB unaligned writes) and 2 verifying readers run; once they
# are going, KILL (a function) kills the target with SIGKILL, 3 s later
# RESTART (a function) starts it again, configured as before.  Checked:
# every writer resumes and finishes with success; FILE and BACKING equal
# what was written, byte for byte; every writer had a write outstanding
# through the outage (its longest write lasted at least 2.5 s); the
# sessions reconnected (and SESSIONS_FN, if given, confirms the target
# sees them all again); then fio --verify=crc32c is clean.  Sets
# RECONNECT_LATENCY: seconds from the target being back (RESTART
# returned) to the first I/O completing.
restart_check() {
    local mnt=$1 file=$2 backing=$3 kill_fn=$4 restart_fn=$5 sessions_fn=${6:-}
    local before_ops killed_at
    faultio_start "$file" "$backing" --writers 8 --readers 2 --region $((4 << 20)) \
        --back "$TEST_TMPDIR/faultio.back"
    faultio_wait_ops 400 60 "writers before the kill"
    faultio_wait_each 5 30 "writers before the kill"
    read -r before_ops _ < <(faultio_counts)
    killed_at=$(date +%s.%N)
    "$kill_fn"
    sleep 3
    "$restart_fn"
    faultio_mark_back
    note "target back $(elapsed "$killed_at") s after the kill ($before_ops operations done before it)"
    # Every writer's blocked write completes and it goes on writing.
    faultio_wait_each 20 60 "writers after the restart"
    faultio_finish 60
    secs_le 2.5 "${FAULTIO[min_writer_max_latency]}" ||
        fail "a writer had no write outstanding during the outage (its longest took ${FAULTIO[min_writer_max_latency]} s): nothing was in flight"
    RECONNECT_LATENCY=${FAULTIO[reconnect_latency]}
    note "reconnect latency (target back -> first I/O done): $RECONNECT_LATENCY s; longest write ${FAULTIO[max_latency]} s"
    local n
    n=$(session_reconnects "$mnt")
    ((n >= 1)) || fail "no session counted a reconnect"
    note "$n reconnects counted"
    [[ -n $sessions_fn ]] && "$sessions_fn"
    check_mount_alive "$mnt"
    check_fio_verify "$file"
}
