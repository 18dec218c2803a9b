#!/bin/bash
# pool.sh: the session pool against both targets, with -o sessions=1 and
# -o sessions=8.  For each: the target sees that many sessions (tgtd);
# concurrent unaligned writers and readers verified against the backing
# file; fio --verify=crc32c with 8 jobs clean; with 8 sessions, 32 readers
# of 1 MiB at once read what the target holds, some waiting for room in
# the budget of read buffers; every session carried
# commands (the per-session counters iscsifs logs at unmount); and an
# unmount with writes in flight (lazy, as with a busy mount) lets every
# write finish, logs out every session and exits 0.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless fio

# check_sessions_used LOG N: the unmount log of a daemon with N sessions
# has a counter line for each, each with at least one command.
check_sessions_used() {
    local log=$1 n=$2 i cmds
    for ((i = 0; i < n; i++)); do
        cmds=$(sed -n "s/.*info: session $i: \([0-9]*\) commands.*/\1/p" "$log" | tail -n1)
        [[ -n $cmds ]] || { cat "$log" >&2; fail "no counters logged for session $i of $n"; }
        ((cmds > 0)) || { cat "$log" >&2; fail "session $i of $n carried no command"; }
    done
    note "all $n sessions carried commands: $(grep -o 'session [0-9]*: [0-9]* commands' "$log" | tr '\n' ' ')"
}

# check_unmount_in_flight MNT FILE BACKING N: start writers, detach the
# mount while they run, and check they all finish, the data landed, the
# daemon logged out N sessions and exited 0.
check_unmount_in_flight() {
    local mnt=$1 file=$2 backing=$3 n=$4 pid fg rc i
    fg=$(_fg_pid_of "$mnt")
    make_file "$TEST_TMPDIR/inflight.src" 64M random
    note "unmount with writes in flight"
    # 4 KiB synchronous writes over the whole LUN: 16384 round trips, a
    # second or more of work even at the fastest (they took 0.3 s for 16 MiB).
    t dd if="$TEST_TMPDIR/inflight.src" of="$file" bs=4k oflag=direct conv=notrunc \
        status=none &
    pid=$!
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || fail "the writer finished before the unmount: nothing was in flight"
    timeout 30 fusermount3 -uz "$mnt" || fail "fusermount3 -uz $mnt failed"
    _unregister_mount "$mnt"
    wait "$pid" || fail "a write in flight failed when $mnt was unmounted"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$fg" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$fg" 2>/dev/null && fail "iscsifs still running 30 s after the unmount"
    wait "$fg"
    rc=$?
    ((rc == 0)) || { cat "$ISCSIFS_LOG" >&2; fail "iscsifs exited with status $rc"; }
    cmp -n $((64 << 20)) "$TEST_TMPDIR/inflight.src" "$backing" ||
        fail "the writes in flight at unmount did not all reach the LUN"
    check_sessions_used "$ISCSIFS_LOG" "$n"
}

# check_read_budget FILE MNT BACKING: 32 readers at once, each reading
# 16 MiB of FILE with 1 MiB direct reads (32 reads of 1 MiB in flight,
# more than the daemon's 24 MiB budget of read buffers): some wait for
# room (read_waits in the statistics grows), and every byte reads as
# BACKING holds it.
check_read_budget() {
    local file=$1 mnt=$2 backing=$3 before after i rc=0
    local -a pids=()
    before=$(awk '$1 == "read_waits" { print $2 }' "$mnt/.iscsifs/stats")
    note "32 readers of 16 MiB with 1 MiB reads on $file"
    for ((i = 0; i < 32; i++)); do
        cmp <(t dd if="$file" bs=1M skip=$((i % 4 * 16)) count=16 iflag=direct status=none) \
            <(dd if="$backing" bs=1M skip=$((i % 4 * 16)) count=16 status=none) &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=1
    done
    ((rc == 0)) || fail "a reader of $file did not read what $backing holds"
    after=$(awk '$1 == "read_waits" { print $2 }' "$mnt/.iscsifs/stats")
    [[ -n $before && -n $after ]] || fail "no read_waits line in $mnt/.iscsifs/stats"
    ((after > before)) || fail "no read waited for room in the budget (read_waits $before, then $after)"
    note "reads that waited for room: $((after - before))"
}

for cfg in tgt512 istgt; do
    setup_config "$cfg" "$TEST_TMPDIR/$cfg"
    mnt=$TEST_TMPDIR/$cfg/mnt
    for n in 1 8; do
        note "$cfg with -o sessions=$n"
        mount_iscsifs_fg "$CFG_URL" "$mnt" -o "sessions=$n"
        [[ $cfg == tgt512 ]] && tgt_wait_sessions "$CFG_TID" "$n"
        WRITERS=8 READERS=4 check_concurrent "$mnt/$CFG_FILE" "$CFG_BACKING" "$CFG_BS"
        check_fio_verify "$mnt/$CFG_FILE"
        ((n == 8)) && check_read_budget "$mnt/$CFG_FILE" "$mnt" "$CFG_BACKING"
        check_unmount_in_flight "$mnt" "$mnt/$CFG_FILE" "$CFG_BACKING" "$n"
        [[ $cfg == tgt512 ]] && tgt_wait_sessions "$CFG_TID" 0
    done
done
note "ok"
