#!/bin/bash
# badtarget-events.sh: what a target tells iscsifs while it is mounted,
# and where it sends it to log in (tests/lib/badtarget.py), one case at a
# time:
#
#   login-redirect-temp  the first portal redirects temporarily to a second
#                        one: the mount works through the second; after a
#                        dropped connection the first is asked again
#   login-redirect-perm  the same, permanently: after the drop iscsifs logs
#                        in at the second portal directly
#   ua-capacity-changed  LUN 1 grows twice while mounted (CAPACITY DATA HAS
#                        CHANGED): stat shows each new size, the new blocks
#                        read and write as the target holds them
#   ua-luns-fail-once    LUN 2 appears, and the REPORT LUNS after the Unit
#                        Attention fails once (HARDWARE ERROR): the rescan
#                        is tried again and lun2 shows
#   ua-lun-swapped       LUN 1 becomes another logical unit (another serial
#                        number) and the target reports only REPORTED LUNS
#                        DATA HAS CHANGED: lun1 is replaced by a file of
#                        the new unit, a file of the old one kept open
#                        fails its reads
#                        (again, with a write through lun1 meeting the
#                        Unit Attention: it fails with EIO, the new unit
#                        untouched)
#   ua-lun-swapped-reset the same, reported as a power on of LUN 1 alone
#                        (POWER ON OCCURRED): the write through lun1 that
#                        meets it fails with EIO, the new unit untouched,
#                        and lun1 is replaced by a file of the new unit
#   ua-lun-swapped-novpd the same (POWER ON OCCURRED), the new unit refusing
#                        the VPD pages that named the old one: the same
#                        verdict, the write fails with EIO
#   ua-lun-swapped-busy  the same, a write through lun1 waiting out BUSY
#                        while lun1 is found to be another unit: when it
#                        goes again it fails with EIO
#   ua-reset-check-fails lun1 held after POWER ON OCCURRED, its check
#                        failing for longer than the rescan's tries: its
#                        I/O fails with EIO, and works again once a later
#                        check passes
#   ua-luns-fail-always  the same, every REPORT LUNS failing: the rescan is
#                        tried again, and unmounting while the next retry
#                        waits ends cleanly
#   ua-luns-cut          REPORT LUNS lists LUN 0 alone, though it says it
#                        holds two (REPORTED LUNS DATA HAS CHANGED): lun1
#                        stays, and a line says why nothing was removed
#   capacity-lie-once    the identity check of a reconnect sees LUN 1 1 MiB
#                        larger, once; the rescan reads the true size, and
#                        the next reconnect checks that one: lun1 reads on
#                        (before, it was taken for another unit: EIO)
#   blocksize-0-in-check the identity check of a reconnect meets block
#                        length 0 on LUN 1, every time: lun1 is unusable
#                        (EIO), lun0 reads on after one reconnect
#   vpd-fails-in-check   the identity check of a reconnect meets a HARDWARE
#                        ERROR on LUN 1's VPD pages: lun1 waits for the
#                        rescan's check, lun0 reads on after one reconnect
#   rc16-huge-fails      LUN 1 of 2^32 blocks or more; its READ CAPACITY(16)
#                        fails once after a reconnect and once after POWER
#                        ON OCCURRED: retried, lun1 reads on, same size
#   ua-on-report-luns    LUN 2 appears and LUN 0 grows, the REPORT LUNS
#                        that follows meeting LUN 0's CAPACITY DATA HAS
#                        CHANGED: lun0 takes its new size all the same
#   ua-luns-in-check     LUN 2 appears, and the identity check of the
#                        reconnect that follows meets REPORTED LUNS DATA
#                        HAS CHANGED: it passes it on, and lun2 shows
#   shrink-in-check      LUN 1 shrinks while a session is away, and the
#                        other's rescan takes the new size while the
#                        first's identity check runs: lun1 is not taken
#                        for another unit
#   deferred-in-check    the identity check of a reconnect meets a
#                        deferred error (a write acknowledged before was
#                        lost): the next fsync of lun1 fails with EIO
#   ua-blocksize-changed LUN 1 reports 4096-byte blocks instead of 512
#                        (CAPACITY DATA HAS CHANGED): its reads and writes
#                        fail with EIO, nothing reaches it; at the next
#                        LUN list its file is replaced by one in 4096-byte
#                        blocks, which reads and writes
#   ua-luns-changed      LUN 2 appears, goes, and comes back (REPORTED LUNS
#                        DATA HAS CHANGED): ls shows it, then not, then
#                        again; it reads as the target holds it, and a file
#                        of it kept open from before it went can neither
#                        write nor read the LUN that came back
#   async-logout         the target asks for a logout (Async Message): the
#                        read in flight completes, iscsifs logs out, logs in
#                        again after Time2Wait, and a read issued meanwhile
#                        waits and succeeds
#   rescans-many         a discovery mount of 6 targets, each open, whose
#                        LUN 2 appears at once, each REPORT LUNS then taking
#                        1 s: every directory shows lun2, reading as the
#                        target holds it, and the daemon never runs more
#                        than two rescan threads (RESCAN_THREADS), nor more
#                        than two threads over its threads at rest
#                        meanwhile (the rescans take turns on the rescan
#                        helpers; a thread per target before)
#   rescan-slow-one      two targets whose LUN 2 appears at once; the
#                        first answers REPORT LUNS only after 20 s: the
#                        second's lun2 shows within seconds all the same
#                        (its rescan does not queue behind the slow one on
#                        a single rescan helper), then the first's
#   opens-hung           a discovery mount of 4 targets, two of which never
#                        answer a login: while their opens wait (up to
#                        -o timeout), the directory and files of the target
#                        already open answer at once, and the fourth target
#                        opens, though one hung target was asked twice
#                        (its second request waits in the kernel, holding
#                        no helper; before, every lookup in a target
#                        directory went to one of two helper threads, both
#                        held by the hung logins)
#   luns-flap            two targets; the first's LUN 2 comes and goes at
#                        every command: it runs out of its share of LUN
#                        files, the second still opens (before, the first
#                        took every file the mount had room for)
#   rescans-storm        two targets; the first answers every command with
#                        CAPACITY DATA HAS CHANGED, again and again, so its
#                        rescan never settles: the second's new LUN 2
#                        still shows (the first takes turns with it on the
#                        rescan helper instead of keeping it), and the log
#                        keeps to its budget of lines per LUN (thousands of
#                        lines in seconds before)
#
# Each checks the counters and the one log line per event, that I/O works
# afterwards, and that unmounting exits 0 with no sanitizer report.
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

badtarget_setup
work=$TEST_TMPDIR/work
mkdir -p "$work"
ncases=0
MIB=1048576
# How long iscsifs may take to log in again after a drop: DefaultTime2Wait
# (2 s, +25% jitter) and a login, with a wide margin for a loaded machine.
RECONNECT_SECS=30

# selected CASE: true unless $BAD_CASES leaves CASE out; counts it.
selected() {
    if [[ -n ${BAD_CASES:-} && " $BAD_CASES " != *" $1 "* ]]; then
        return 1
    fi
    ncases=$((ncases + 1))
}

# finish CASE: the checks every case ends with, and the teardown.
finish() {
    check_alive
    check_lun0 "$work"
    bad_case_end "$1" "$work"
}

# read_matches FILE OFFSET LENGTH BACKING WHAT: LENGTH bytes of FILE at
# OFFSET read back as BACKING holds them.
read_matches() {
    bt dd if="$1" of="$work/got" bs=65536 iflag=skip_bytes,count_bytes skip="$2" \
        count="$3" status=none || fail "$5: read of $1 at $2 failed"
    slice "$4" "$2" "$3" >"$work/want"
    assert_same_file "$work/want" "$work/got" "$5"
}

# size_is FILE BYTES: FILE's st_size is BYTES now (for wait_true).
size_is() {
    [[ $(stat -c %s -- "$1" 2>/dev/null) == "$2" ]]
}

# fired_times CASE N: the target's log says CASE fired N times (for
# wait_true: counted anew each call).
fired_times() {
    [[ $(badtarget_count "fired $1 ") == "$2" ]]
}

# event N WHAT [CASE]: signal the target (SIGUSR1) for the change its case
# makes, and wait until it made it: CASE (default $case) fired N times in
# all; fail saying the target did not WHAT.
event() {
    kill -USR1 "$BAD_PID"
    wait_true 10 fired_times "${3:-$case}" "$1" || fail "$case: the target did not $2"
}

# names_are "NAME...": the mount shows exactly these entries now.
names_are() {
    [[ $(ls -1A "$BAD_MNT" 2>/dev/null | grep -vx '\.iscsifs' | sort | tr '\n' ' ') == "$1" ]]
}

# ---- redirects ----------------------------------------------------------

# redirect_case CASE: the two redirect cases; they differ in where the
# login after a dropped connection goes.
redirect_case() {
    local case=$1 port2 logins2 firsts
    selected "$case" || return 0
    port2=$(pick_port)
    badtarget_start "$case" --port2 "$port2"
    wait_for_port "$LOOPBACK4" "$port2" 10 "$BAD_PID" || fail "$case: port $port2 does not listen"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    # the login went to the first portal, was redirected, and ended at the
    # second; the LUNs are served from there
    assert_eq 1 "$(badtarget_count "fired $case ")" "$case: redirects at the mount"
    assert_eq 1 "$(badtarget_count "\\(port $port2\\): logged in")" "$case: logins at the second portal"
    assert_eq 0 "$(badtarget_count "\\(port $BAD_PORT\\): logged in")" "$case: logins at the first portal"
    check_lun0 "$work"
    assert_eq "127.0.0.1:$BAD_PORT" "$(getfattr --only-values -n user.iscsi.portal "$BAD_MNT/lun0" 2>/dev/null)" \
        "$case: the portal the mount shows (the configured one)"

    kill -USR1 "$BAD_PID"          # the target drops every connection
    wait_true "$RECONNECT_SECS" grep -q "reconnected to" "$ISCSIFS_LOG" ||
        fail "$case: no reconnect within ${RECONNECT_SECS}s: $(cat "$ISCSIFS_LOG")"
    check_log "session 0: reconnected to 127.0.0.1:$port2 "
    logins2=$(badtarget_count "\\(port $port2\\): logged in")
    firsts=$(badtarget_count "\\(port $BAD_PORT\\): from ")
    assert_eq 2 "$logins2" "$case: logins at the second portal after the drop"
    if [[ $case == login-redirect-temp ]]; then
        # temporary: that login only; the next asks the first portal again
        assert_eq 2 "$(badtarget_count "fired $case ")" "$case: redirects after the drop"
        assert_eq 2 "$firsts" "$case: connections to the first portal"
    else
        # permanent: later logins of the session go to the new portal
        assert_eq 1 "$(badtarget_count "fired $case ")" "$case: redirects after the drop"
        assert_eq 1 "$firsts" "$case: connections to the first portal"
    fi
    assert_eq 1 "$(session_stat 0 reconnects)" "$case: reconnects of session 0"
    read_matches "$BAD_MNT/lun1" $((3 * MIB)) 65536 "$BAD_LUN1" "$case: lun1 after the reconnect"
    finish "$case"
}

redirect_case login-redirect-temp
redirect_case login-redirect-perm

# ---- CAPACITY DATA HAS CHANGED --------------------------------------------

capacity_case() {
    local case=ua-capacity-changed opts=${1:-} size round ua_line
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg "sessions=1$opts"
    size=$(file_size "$BAD_LUN1")
    check_size "$BAD_MNT/lun1" "$size"
    for round in 1 2; do
        kill -USR1 "$BAD_PID"      # LUN 1 grows by 1 MiB
        wait_true 10 size_is "$BAD_LUN1" $((size + MIB)) || fail "$case: the target did not grow LUN 1"
        size=$((size + MIB))
        # the Unit Attention comes with the next command to LUN 1; the
        # command itself is retried and succeeds
        read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the read that got the Unit Attention"
        wait_true 10 size_is "$BAD_MNT/lun1" "$size" ||
            fail "$case: round $round: st_size is $(file_size "$BAD_MNT/lun1"), not $size"
        assert_eq "$round" "$(lun_stat lun1 unit_attentions)" "$case: unit_attentions of lun1"
        assert_eq "$round" "$(lun_stat lun1 retries)" "$case: retries of lun1"
        # the new megabyte reads as the target holds it, and takes writes
        read_matches "$BAD_MNT/lun1" $((size - MIB)) "$MIB" "$BAD_LUN1" "$case: the new blocks"
        head -c 131072 /dev/urandom >"$work/pattern"
        bt dd if="$work/pattern" of="$BAD_MNT/lun1" bs=131072 oflag=seek_bytes \
            seek=$((size - 131072)) conv=notrunc status=none || fail "$case: write to the new blocks failed"
        slice "$BAD_LUN1" $((size - 131072)) 131072 >"$work/after"
        assert_same_file "$work/pattern" "$work/after" "$case: the write to the new blocks on the target"
        # and past the new end nothing: a read returns 0 bytes
        assert_eq 0 "$(bt dd if="$BAD_MNT/lun1" bs=512 iflag=skip_bytes skip="$size" count=1 status=none | wc -c)" \
            "$case: bytes read at the new end"
    done
    assert_eq 2 "$(badtarget_count "fired $case ")" "$case: changes made"
    ua_line="target $BAD_IQN, lun1: UNIT ATTENTION: CAPACITY DATA HAS CHANGED \\(0x2a/0x09\\); reading the capacity again; retry 1 of 8"
    check_log "$ua_line"
    assert_eq 2 "$(grep -Ec -- "$ua_line" "$ISCSIFS_LOG")" "$case: log lines of the Unit Attentions"
    check_log "target $BAD_IQN, lun1: capacity changed from $((size - 2 * MIB)) to $((size - MIB)) bytes"
    check_log "target $BAD_IQN, lun1: capacity changed from $((size - MIB)) to $size bytes"
    check_size "$BAD_MNT/lun0" "$(file_size "$BAD_LUN0")"
    finish "$case"
}
capacity_case
# the same with -o cache (the page cache): before, the kernel's writeback
# cache kept the size it had, and st_size never showed the growth
capacity_case ,cache

# reconnects_are N: the log says "reconnected to" N times.
reconnects_are() {
    [[ $(grep -c "reconnected to " "$ISCSIFS_LOG") == "$1" ]]
}

# The identity check after a reconnect sees LUN 1 1 MiB larger (once: the
# target's READ CAPACITY(16) lies that one time), and the rescan it sets
# off reads the true size.  That is what the next reconnect must check:
# before, the pool kept the larger size, and the second reconnect found
# LUN 1 "shrank", took it for another unit, and its reads failed with EIO.
capacity_lie_case() {
    local case=capacity-lie-once size
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    size=$(file_size "$BAD_LUN1")
    event 1 "drop the connections"   # connections dropped; the next READ CAPACITY(16) lies
    wait_true "$RECONNECT_SECS" reconnects_are 1 || fail "$case: no reconnect after the first drop"
    check_log "target $BAD_IQN, lun1: capacity unchanged \\($size bytes\\)" 10
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the first reconnect"
    event 2 "drop the connections again"   # connections dropped again
    wait_true "$RECONNECT_SECS" reconnects_are 2 || fail "$case: no reconnect after the second drop"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the second reconnect"
    ! grep -q "shrank" "$ISCSIFS_LOG" || fail "$case: $(grep "shrank" "$ISCSIFS_LOG")"
    check_size "$BAD_MNT/lun1" "$size"
    finish "$case"
}
capacity_lie_case

# After a reconnect, READ CAPACITY of LUN 1 says block length 0, every
# time it is asked: the identity check takes LUN 1 for unusable (a file of
# it kept open fails its I/O with EIO) and lun0 reads on after one
# reconnect.  Before, the check dropped the connection for another round,
# again and again (every 2 s at most): the whole target waited.
check_unusable_case() {
    local case=blocksize-0-in-check old_fd
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    exec {old_fd}<"$BAD_MNT/lun1"
    event 1 "drop the connections"
    check_log "target $BAD_IQN, lun1: unusable data after the reconnect: .*block length 0.*; its I/O fails with EIO until remounted" 15
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: lun0 after the reconnect"
    if bt dd of=/dev/null bs=4096 count=1 iflag=direct status=none <&"$old_fd" 2>"$work/r.err"; then
        fail "$case: a read of the unusable lun1 succeeded"
    fi
    exec {old_fd}<&-
    grep -q "Input/output error" "$work/r.err" || fail "$case: the read failed otherwise: $(cat "$work/r.err")"
    sleep 3                    # (time for more rounds, were there any)
    reconnects_are 1 || fail "$case: $(grep -c "reconnected to " "$ISCSIFS_LOG") reconnects, not 1"
    finish "$case"
}
check_unusable_case

# After a reconnect, every VPD INQUIRY of LUN 1 fails (HARDWARE ERROR)
# until a second event: the identity check leaves lun1 to the rescan's
# check, as after a Unit Attention (its commands wait), and goes on, so
# lun0 reads after one reconnect; once the pages answer again, the
# rescan's check passes and the read of lun1 that waited succeeds.
# Before, the check dropped the connection again and again (every 2 s at
# most) and every LUN of the target waited.
check_fails_case() {
    local case=vpd-fails-in-check reader
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    event 1 "drop the connections and fail the VPD pages"
    check_log "target $BAD_IQN, lun1: HARDWARE ERROR: .* \\(CDB 0x12\\) in the identity check after the reconnect; its commands wait until it is checked" 15
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: lun0 after the reconnect"
    bt dd if="$BAD_MNT/lun1" of="$work/got1" bs=65536 count=1 iflag=direct status=none \
        2>"$work/r.err" &
    reader=$!
    sleep 3                    # (time for more rounds, were there any)
    reconnects_are 1 || fail "$case: $(grep -c "reconnected to " "$ISCSIFS_LOG") reconnects, not 1"
    event 2 "make the VPD pages answer again"
    wait "$reader" || fail "$case: the read of lun1 failed: $(cat "$work/r.err")"
    slice "$BAD_LUN1" 0 65536 >"$work/want"
    assert_same_file "$work/want" "$work/got1" "$case: lun1 once checked"
    finish "$case"
}
check_fails_case

# LUN 1 holds 2^32 blocks or more (READ CAPACITY(10) can only say
# 0xffffffff), and its READ CAPACITY(16) fails once after a reconnect,
# then once after POWER ON OCCURRED: what (10) says agrees with what the
# LUN was, and the failure is a failure, tried again; lun1 reads on, its
# size unchanged.  Before, the reconnect took LUN 1 for another unit
# ("capacity beyond READ CAPACITY(10)") and the Unit Attention's check for
# an unusable one: EIO until remounted.
rc16_huge_case() {
    local case=rc16-huge-fails size
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    size=$(($(file_size "$BAD_LUN1") + (1 << 32) * 512))
    check_size "$BAD_MNT/lun1" "$size"
    event 1 "drop the connections"
    wait_true "$RECONNECT_SECS" reconnects_are 1 || fail "$case: no reconnect after the drop"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the reconnect"
    event 2 "leave POWER ON OCCURRED on LUN 1"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the Unit Attention"
    (($(badtarget_count "READ CAPACITY\\(16\\) of LUN 1 fails: HARDWARE") == 2)) ||
        fail "$case: READ CAPACITY(16) did not fail twice: $(cat "$BAD_LOG")"
    check_size "$BAD_MNT/lun1" "$size"
    ! grep -E "another LUN|another logical unit|unusable" "$ISCSIFS_LOG" ||
        fail "$case: lun1 taken for another or unusable unit (above)"
    finish "$case"
}
rc16_huge_case

# The Unit Attention that says the LUN list changed is met by the identity
# check of a reconnect, not by a command of ours: the check sends its
# command again and passes the change on, the LUN list is read again and
# lun2 shows, without any I/O (before, the check took it and lun2 never
# showed).
luns_in_check_case() {
    local case=ua-luns-in-check lun2=$TEST_TMPDIR/bad-lun2.img
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    event 1 "add LUN 2 and drop the connections"
    wait_true "$RECONNECT_SECS" reconnects_are 1 || fail "$case: no reconnect after the drop"
    check_log "lun[01]: UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED \\(0x3f/0x0e\\) \\(CDB 0x[0-9a-f]+\\) in the identity check; sending it again" 10
    wait_true 10 names_are "lun0 lun1 lun2 " ||
        fail "$case: lun2 did not appear: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    check_log "target $BAD_IQN, lun2: new LUN of 2097152 bytes; its file is added"
    bt cmp "$BAD_MNT/lun2" "$lun2" || fail "$case: lun2 does not read as the target holds it"
    finish "$case"
}
luns_in_check_case

# A LUN shrinks while one session is away: the session still up meets
# CAPACITY DATA HAS CHANGED and its rescan takes the new size while the
# identity check of the other waits for READ CAPACITY.  That check
# compared with the size of before; its verdict ("shrank") is about a
# record that changed meanwhile and marks nothing (before, lun1 was taken
# for another unit: EIO until remounted).
shrink_in_check_case() {
    local case=shrink-in-check size
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=2
    size=$(file_size "$BAD_LUN1")
    event 1 "shrink LUN 1 and drop a connection"
    shrunk() {
        bt dd if="$BAD_MNT/lun1" of=/dev/null bs=4096 count=1 iflag=direct status=none
        size_is "$BAD_MNT/lun1" $((size - MIB))
    }
    wait_true 15 shrunk || fail "$case: st_size is $(file_size "$BAD_MNT/lun1"), not $((size - MIB))"
    wait_true 15 reconnects_are 1 || fail "$case: no reconnect after the drop"
    (($(badtarget_count "READ CAPACITY of LUN 1 answered in 3 s") == 1)) ||
        fail "$case: the identity check's READ CAPACITY was not the slow one: $(cat "$BAD_LOG")"
    sleep 4                    # its answer comes, and the check ends
    ! grep -q "another LUN after the reconnect" "$ISCSIFS_LOG" ||
        fail "$case: $(grep "another LUN after the reconnect" "$ISCSIFS_LOG")"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the check"
    read_matches "$BAD_MNT/lun1" $((size - MIB - 65536)) 65536 "$BAD_LUN1" "$case: the end of lun1"
    finish "$case"
}
shrink_in_check_case

# The identity check of a reconnect meets a deferred error: a write
# acknowledged on the connection lost did not reach the medium.  The
# check sends its command again, and the next fsync of lun1 fails with
# EIO, once (before, it succeeded: the loss was only a log line).
deferred_in_check_case() {
    local case=deferred-in-check
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    bt dd if=/dev/urandom of="$BAD_MNT/lun1" bs=65536 count=1 conv=notrunc status=none ||
        fail "$case: the write failed"
    event 1 "drop the connections, a deferred error pending"
    wait_true "$RECONNECT_SECS" reconnects_are 1 || fail "$case: no reconnect after the drop"
    check_log "lun1: deferred error of an earlier command: MEDIUM ERROR: WRITE ERROR \\(0x0c/0x00\\) \\(CDB 0x9e\\) in the identity check; sending it again" 10
    (($(badtarget_count "deferred error for CDB 0x9e on LUN 1") == 1)) ||
        fail "$case: the identity check's READ CAPACITY did not meet the deferred error: $(cat "$BAD_LOG")"
    bt "$PYTHON" - "$BAD_MNT/lun1" >"$TEST_TMPDIR/fsync.out" 2>&1 <<'EOF' ||
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.fsync(fd)
    sys.exit("the first fsync after the deferred error succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit("the first fsync failed with %s, not EIO" % e)
os.fsync(fd)
EOF
        fail "$case: $(cat "$TEST_TMPDIR/fsync.out")"
    check_log "target $BAD_IQN, lun1: the flush fails: a deferred error said data of an earlier write may be lost"
    finish "$case"
}
deferred_in_check_case

# A LUN that reports another logical block size: its file can no longer
# be addressed right, so its I/O fails from then on (before, the rescan
# logged the change and the file went on reading and writing in blocks of
# the old size) and nothing is written to it; LUN 0 is unaffected.
blocksize_case() {
    local case=ua-blocksize-changed
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    cp "$BAD_LUN1" "$work/lun1-before"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the read before the change"
    event 1 "change LUN 1"   # LUN 1 says 4096-byte blocks
    # the Unit Attention comes with the next command to LUN 1, which is
    # retried and succeeds; the rescan it sets off finds the new size
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the read that got the Unit Attention"
    check_log "target $BAD_IQN, lun1: the logical block size changed from 512 to 4096 bytes" 10
    if bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 iflag=direct status=none 2>/dev/null; then
        fail "$case: a read of lun1 succeeded after its block size changed"
    fi
    make_file "$work/junk" 64K random
    if bt dd if="$work/junk" of="$BAD_MNT/lun1" bs=65536 count=1 oflag=direct conv=notrunc \
        status=none 2>/dev/null; then
        fail "$case: a write to lun1 succeeded after its block size changed"
    fi
    assert_same_file "$work/lun1-before" "$BAD_LUN1" "$case: LUN 1 on the target after the refused write"
    # the next LUN list (the target says it changed) replaces the file of
    # the unusable LUN: probed anew, in 4096-byte blocks, it reads and
    # writes again (before this, its rescans failed, and were tried again,
    # at every change for the life of the mount)
    event 2 "report the change"   # REPORTED LUNS DATA HAS CHANGED
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the second Unit Attention"
    check_log "target $BAD_IQN, lun1: found to be another unit or unusable before; its file is replaced" 10
    check_log "target $BAD_IQN, lun1: new LUN of $(file_size "$BAD_LUN1") bytes; its file is added" 10
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the new lun1"
    bt dd if="$work/junk" of="$BAD_MNT/lun1" bs=65536 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: a write to the new lun1 failed"
    read_matches "$BAD_LUN1" 0 65536 "$work/junk" "$case: the write to the new lun1 on the target"
    ! grep -q "could not be read in\|cannot check it is the same unit" "$ISCSIFS_LOG" ||
        fail "$case: rescans failed: $(grep "could not be read in\|cannot check" "$ISCSIFS_LOG")"
    finish "$case"
}
blocksize_case

# A LUN list cut short of what the target says it holds: the rescan adds
# what it lists and removes nothing (before, lun1, missing from the cut
# list, lost its file).
luns_cut_case() {
    local case=ua-luns-cut
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    event 1 "cut its LUN list"   # REPORT LUNS lists LUN 0 alone from now on
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    check_log "target $BAD_IQN: its LUN list is cut short of what it says it holds; new LUNs are added, no file is removed" 10
    bad_check_names "lun0 lun1"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the cut list"
    finish "$case"
}
luns_cut_case

# LUN 1 becomes another logical unit under the same number, and the target
# says only that its LUN list changed (the list reads the same): the
# rescan checks each listed LUN's identity, so lun1 becomes a new file
# of the new unit and a file kept open from before fails its I/O (before,
# the old file went on, reading and writing the other unit).
lun_swapped_case() {
    local case=ua-lun-swapped lun2=$TEST_TMPDIR/bad-lun2.img old_fd
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    exec {old_fd}<"$BAD_MNT/lun1"
    event 1 "swap LUN 1"   # LUN 1 is another unit from now on
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    wait_true 10 size_is "$BAD_MNT/lun1" "$(file_size "$lun2")" ||
        fail "$case: lun1 is not the new unit's size: $(file_size "$BAD_MNT/lun1")"
    if dd of=/dev/null bs=65536 count=1 iflag=direct status=none <&"$old_fd" 2>/dev/null; then
        fail "$case: a read through the file of the unit that went succeeded"
    fi
    exec {old_fd}<&-
    bt cmp "$BAD_MNT/lun1" "$lun2" || fail "$case: the new lun1 does not read as the new unit holds it"
    check_log "target $BAD_IQN, lun1: another logical unit now \\(unit serial number .*\\); its file is replaced" 10
    finish "$case"
}
lun_swapped_case

# A target that gives CAPACITY DATA HAS CHANGED for LUN 0 to the REPORT
# LUNS its LUN list change (on LUN 1) sets off (ua-on-report-luns; SPC
# has REPORT LUNS carried out instead): the Unit Attention is not lost
# with the stand-in LUN that asks REPORT LUNS, so lun0 takes its new size
# beside the new lun2.  Before, lun2 showed and lun0 kept its old size.
ua_on_report_luns_case() {
    local case=ua-on-report-luns lun2=$TEST_TMPDIR/bad-lun2.img size
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    size=$(file_size "$BAD_LUN0")
    event 1 "grow LUN 0 and add LUN 2"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the read that got the Unit Attention"
    wait_true 10 names_are "lun0 lun1 lun2 " ||
        fail "$case: lun2 did not appear: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    wait_true 10 size_is "$BAD_MNT/lun0" $((size + MIB)) ||
        fail "$case: lun0 is $(file_size "$BAD_MNT/lun0") bytes, not $((size + MIB))"
    read_matches "$BAD_MNT/lun0" "$size" "$MIB" "$BAD_LUN0" "$case: lun0's new MiB"
    finish "$case"
}
ua_on_report_luns_case

# The write through lun1 is the command that meets the Unit Attention of
# a swap (CASE: ua-lun-swapped, REPORTED LUNS DATA HAS CHANGED; or
# ua-lun-swapped-reset, POWER ON OCCURRED on LUN 1 alone): lun1's commands
# wait while it is checked, and the write fails with EIO instead of going
# again to the unit now there.  Before, it was sent again at once and
# overwrote the first 64 KiB of the new unit; with POWER ON OCCURRED
# nothing else followed, and lun1 went on reading and writing the other
# unit.
# swap_start CASE: the start of the cases that swap LUN 1 for the unit
# held in SWAP_LUN2 (its md5sum in SWAP_SUM): 64 KiB to write in
# $work/junk, the mount, lun1 open as fd SWAP_FD, and the swap.
swap_start() {
    SWAP_LUN2=$TEST_TMPDIR/bad-lun2.img
    make_file "$SWAP_LUN2" 2M random
    SWAP_SUM=$(md5sum <"$SWAP_LUN2")
    head -c 65536 /dev/urandom >"$work/junk"
    badtarget_start "$1" --lun2 "$SWAP_LUN2"
    bad_mount_fg sessions=1
    exec {SWAP_FD}<>"$BAD_MNT/lun1"
    event 1 "swap LUN 1" "$1"   # LUN 1 is another unit from now on
}

# lun_swapped_write_case CASE [WHY]: WHY (a regular expression, by
# default the serial number that differs) is what the line that replaces
# lun1's file gives as the reason.
lun_swapped_write_case() {
    local case=$1 why=${2:-unit serial number .*} lun2 old_fd sum
    selected "$case" || return 0
    swap_start "$case"
    lun2=$SWAP_LUN2 sum=$SWAP_SUM old_fd=$SWAP_FD
    if bt dd if="$work/junk" bs=65536 count=1 conv=notrunc,fsync status=none \
        >&"$old_fd" 2>"$work/w.err"; then
        fail "$case: the write that met the Unit Attention succeeded"
    fi
    exec {old_fd}>&-
    grep -q "Input/output error" "$work/w.err" ||
        fail "$case: the write failed otherwise: $(cat "$work/w.err")"
    assert_eq "$sum" "$(md5sum <"$lun2")" "$case: the new unit's data"
    check_log "target $BAD_IQN, lun1: another logical unit now \\($why\\); its file is replaced" 10
    wait_true 10 size_is "$BAD_MNT/lun1" "$(file_size "$lun2")" ||
        fail "$case: lun1 is not the new unit's size: $(file_size "$BAD_MNT/lun1")"
    bt cmp "$BAD_MNT/lun1" "$lun2" || fail "$case: the new lun1 does not read as the new unit holds it"
    finish "$case"
}
lun_swapped_write_case ua-lun-swapped
lun_swapped_write_case ua-lun-swapped-reset
# The unit put in LUN 1's place refuses the VPD pages that named the old
# one (POWER ON OCCURRED on LUN 1): no proof of the same unit, so the same
# verdict.  Before, the check skipped the refused pages, took the new unit
# for the old one, and the write overwrote its first 64 KiB.
lun_swapped_write_case ua-lun-swapped-novpd "VPD page 0x80 it had is refused"

# A write through lun1 waits out BUSY while a read of lun0 meets REPORTED
# LUNS DATA HAS CHANGED, the LUN list is read again and lun1 is found to be
# another unit (its file replaced, the new unit probed): when the write
# goes again, it is the old file's, and fails with EIO.  Before, the new
# unit's record let it through and it overwrote the new unit's first
# 64 KiB once the BUSY ended.
lun_swapped_busy_case() {
    local case=ua-lun-swapped-busy lun2 old_fd sum writer
    selected "$case" || return 0
    swap_start "$case"     # (its writes of LUN 1 BUSY for 1.5 s from the first)
    lun2=$SWAP_LUN2 sum=$SWAP_SUM old_fd=$SWAP_FD
    bt dd if="$work/junk" bs=65536 count=1 conv=notrunc,fsync status=none \
        >&"$old_fd" 2>"$work/w.err" &
    writer=$!
    exec {old_fd}>&-
    wait_true 5 grep -q "BUSY for a WRITE of LUN 1" "$BAD_LOG" ||
        fail "$case: the write did not meet BUSY"
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    check_log "target $BAD_IQN, lun1: another logical unit now \\(unit serial number .*\\); its file is replaced" 10
    if wait "$writer"; then
        fail "$case: the write of the file whose unit went succeeded"
    fi
    grep -q "Input/output error" "$work/w.err" ||
        fail "$case: the write failed otherwise: $(cat "$work/w.err")"
    assert_eq "$sum" "$(md5sum <"$lun2")" "$case: the new unit's data"
    finish "$case"
}
lun_swapped_busy_case

# lun1 is held after a POWER ON OCCURRED, and its check cannot be done
# (every VPD INQUIRY of it fails) in the rescan's tries (about 31 s): the
# read that waited fails with EIO, and so does the next, at once; once the
# target answers again, the next check (every 10 s) passes and lun1 reads
# again.  Before (the first version of the hold), the LUN was marked
# unusable: EIO until remounted.
reset_check_fails_case() {
    local case=ua-reset-check-fails start ms
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    event 1 "fail the VPD pages"
    start=$(date +%s%N)
    if bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 iflag=direct status=none \
        2>"$work/r.err"; then
        fail "$case: the read that met the Unit Attention succeeded unchecked"
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    grep -q "Input/output error" "$work/r.err" || fail "$case: the read failed otherwise: $(cat "$work/r.err")"
    note "$case: the held read failed after $ms ms"
    check_log "target $BAD_IQN, lun1: it could not be checked to be the same unit after a Unit Attention; its I/O fails with EIO until it is" 5
    start=$(date +%s%N)
    if bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 iflag=direct status=none 2>/dev/null; then
        fail "$case: a read of lun1 succeeded before it was checked"
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    ((ms < 1000)) || fail "$case: the read after the give-up took $ms ms, not failing at once"
    event 2 "answer the VPD pages again"
    lun1_reads() {
        bt dd if="$BAD_MNT/lun1" of="$work/got" bs=65536 count=1 iflag=direct status=none \
            2>/dev/null && cmp -s -n 65536 "$work/got" "$BAD_LUN1"
    }
    start=$(date +%s%N)
    wait_true 40 lun1_reads ||
        fail "$case: lun1 does not read again after the target answers: $(tail -n 5 "$ISCSIFS_LOG")"
    note "$case: lun1 reads again $((($(date +%s%N) - start) / 1000000)) ms after the target answers"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the check"
    finish "$case"
}
reset_check_fails_case

# The REPORT LUNS that follows a REPORTED LUNS DATA HAS CHANGED fails
# once: the rescan is tried again a second later, and the new LUN shows
# (before, the change was lost until the target reported another).
luns_fail_once_case() {
    local case=ua-luns-fail-once lun2=$TEST_TMPDIR/bad-lun2.img
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    event 1 "add LUN 2"   # LUN 2 appears; the next REPORT LUNS fails
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    check_log "target $BAD_IQN: cannot read the LUN list again: .*Input/output error" 10
    wait_true 10 names_are "lun0 lun1 lun2 " ||
        fail "$case: lun2 did not show after the failed REPORT LUNS: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    assert_eq 1 "$(badtarget_count "REPORT LUNS fails")" "$case: REPORT LUNS failures"
    bt cmp "$BAD_MNT/lun2" "$lun2" || fail "$case: lun2 does not read as the target holds it"
    finish "$case"
}
luns_fail_once_case

# failed_lists_are N: the log says N times that the LUN list could not be
# read again.
failed_lists_are() {
    (($(grep -c "cannot read the LUN list again" "$ISCSIFS_LOG") >= $1))
}

# Every REPORT LUNS after the change fails: the rescan is tried again
# (after 1 s, then 2 s), and unmounting while a retry waits on its timer
# ends cleanly (target_free() disarms it on its loop; the sanitizer builds
# check nothing is left behind).
luns_fail_always_case() {
    local case=ua-luns-fail-always lun2=$TEST_TMPDIR/bad-lun2.img
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    event 1 "add LUN 2"            # every REPORT LUNS fails from now on
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    wait_true 10 failed_lists_are 2 || fail "$case: the failed rescan was not tried again"
    bad_check_names "lun0 lun1"
    finish "$case"             # a retry waits meanwhile: every list fails, and the
                               # last of the 5 retries is 15 s away
}
luns_fail_always_case

# The same, waited out: after 5 retries (1 + 2 + 4 + 8 + 16 s) the rescan
# gives up with one line, and asks no more; the next change the target
# reports (REPORT LUNS answering again) is read, and lun2 shows.
luns_give_up_case() {
    local case=ua-luns-fail-always lun2=$TEST_TMPDIR/bad-lun2.img lists
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2" --times 2
    bad_mount_fg sessions=1
    event 1 "add LUN 2"            # every REPORT LUNS fails from now on
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    check_log "target $BAD_IQN: the change it reported could not be read in 6 tries; it is read at the next change" 45
    assert_eq 6 "$(grep -c "cannot read the LUN list again" "$ISCSIFS_LOG")" "$case: rescans that failed"
    lists=$(badtarget_count "REPORT LUNS fails")
    sleep 3
    assert_eq "$lists" "$(badtarget_count "REPORT LUNS fails")" "$case: REPORT LUNS sent after the give-up"
    bad_check_names "lun0 lun1"
    event 2 "REPORT LUNS answers again"
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the second Unit Attention"
    wait_true 10 names_are "lun0 lun1 lun2 " ||
        fail "$case: lun2 did not appear after the next change: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    finish "$case"
}
luns_give_up_case

# ---- REPORTED LUNS DATA HAS CHANGED -------------------------------------

luns_case() {
    local case=ua-luns-changed lun2=$TEST_TMPDIR/bad-lun2.img ua_line old_fd
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start "$case" --lun2 "$lun2"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"

    event 1 "add LUN 2"   # LUN 2 appears
    # the Unit Attention comes with the next command, to any LUN
    read_matches "$BAD_MNT/lun0" 0 65536 "$BAD_LUN0" "$case: the read that got the Unit Attention"
    wait_true 10 names_are "lun0 lun1 lun2 " ||
        fail "$case: lun2 did not appear: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    bad_check_names "lun0 lun1 lun2"
    check_size "$BAD_MNT/lun2" "$(file_size "$lun2")"
    bt cmp "$BAD_MNT/lun2" "$lun2" || fail "$case: lun2 does not read as the target holds it"
    check_log "target $BAD_IQN, lun2: new LUN of 2097152 bytes; its file is added"
    assert_eq 1 "$(lun_stat lun0 unit_attentions)" "$case: unit_attentions of lun0"
    exec {old_fd}<>"$BAD_MNT/lun2"  # kept open while LUN 2 goes and comes back

    event 2 "remove LUN 2"   # LUN 2 goes
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: the read that got the second Unit Attention"
    wait_true 10 names_are "lun0 lun1 " ||
        fail "$case: lun2 did not go: $(ls -A "$BAD_MNT" | tr '\n' ' ')"
    bad_check_names "lun0 lun1"
    [[ ! -e $BAD_MNT/lun2 ]] || fail "$case: $BAD_MNT/lun2 still exists"
    check_log "target $BAD_IQN, lun2: the target no longer reports the LUN; its file is removed"
    assert_eq 1 "$(lun_stat lun1 unit_attentions)" "$case: unit_attentions of lun1"

    ua_line="target $BAD_IQN, lun[01]: UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED \\(0x3f/0x0e\\); reading the LUN list again; retry 1 of 8"
    assert_eq 2 "$(grep -Ec -- "$ua_line" "$ISCSIFS_LOG")" "$case: log lines of the Unit Attentions"

    event 3 "add LUN 2 again"   # and back again: a new file of the same name
    read_matches "$BAD_MNT/lun0" 65536 65536 "$BAD_LUN0" "$case: the read that got the third Unit Attention"
    wait_true 10 names_are "lun0 lun1 lun2 " || fail "$case: lun2 did not come back"
    # as far as the initiator knows another device: the file still open
    # from before writes nowhere (before, its write went to the new LUN 2)
    make_file "$work/junk" 64K random
    if dd if="$work/junk" bs=65536 count=1 conv=notrunc status=none >&"$old_fd" 2>/dev/null; then
        fail "$case: a write through a file of the LUN 2 that went succeeded"
    fi
    if dd of=/dev/null bs=65536 count=1 status=none <&"$old_fd" 2>/dev/null; then
        fail "$case: a read through a file of the LUN 2 that went succeeded"
    fi
    exec {old_fd}>&-
    bt cmp "$BAD_MNT/lun2" "$lun2" || fail "$case: lun2 does not read as the target holds it (again)"
    finish "$case"
}
luns_case

# ---- Async Message: logout requested ---------------------------------------

async_logout_case() {
    local case=async-logout start secs pid
    selected "$case" || return 0
    badtarget_start "$case"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    # The READ that makes the target ask (logout within 1 s) is answered:
    # it succeeds with the right data.
    read_matches "$BAD_MNT/lun1" $((2 * MIB)) 65536 "$BAD_LUN1" "$case: the read in flight"
    badtarget_fired "$case" || fail "$case: the target never asked for a logout"
    # A read issued now waits for the session to come back (DefaultTime2Wait)
    # and then succeeds: commands are held, not failed.
    start=$(date +%s.%N)
    bt dd if="$BAD_MNT/lun0" of="$work/held" bs=65536 count=1 status=none &
    pid=$!
    wait_true "$RECONNECT_SECS" grep -q "reconnected to" "$ISCSIFS_LOG" ||
        fail "$case: no new login within ${RECONNECT_SECS}s: $(cat "$ISCSIFS_LOG")"
    wait "$pid" || fail "$case: the read issued during the logout failed"
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    note "case $case: the read issued during the logout took ${secs}s"
    slice "$BAD_LUN0" 0 65536 >"$work/want"
    assert_same_file "$work/want" "$work/held" "$case: the read held during the logout"
    check_log "session 0: target requests logout within 1 s"
    check_log "session 0: logged out as the target asked"
    # iscsifs logged out itself (the target did not have to drop it)
    grep -q "logged out$" "$BAD_LOG" || fail "$case: the target saw no Logout: $(cat "$BAD_LOG")"
    ! grep -q "no logout after the Async Message" "$BAD_LOG" ||
        fail "$case: the target had to drop the connection"
    assert_eq 2 "$(badtarget_count ": logged in$")" "$case: logins at the target"
    assert_eq 1 "$(session_stat 0 reconnects)" "$case: reconnects of session 0"
    read_matches "$BAD_MNT/lun1" 0 65536 "$BAD_LUN1" "$case: lun1 after the new login"
    finish "$case"
}
async_logout_case

# dir_names DIR: the entries of DIR on one line, sorted (for wait_true).
dir_names() {
    bt ls -1A "$1" | sort | tr '\n' ' '
}

# threads_named PID NAME: how many threads of process PID are named NAME
# (their comm: the helper pools name theirs).
threads_named() {
    cat "/proc/$1/task/"*/comm 2>/dev/null | grep -cx -- "$2"
}

# lun2_everywhere DIR...: every DIR lists lun2.
lun2_everywhere() {
    local d
    for d in "$@"; do
        [[ -e $d/lun2 ]] || return 1
    done
}

many_targets_case() {
    local case=rescans-many ntargets=6 lun2=$TEST_TMPDIR/bad-lun2.img pid d
    local -a dirs=() readers=()
    local most=0 most_rescan=0 base n i limit
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start ua-luns-changed --lun2 "$lun2" --targets "$ntargets" --slow-rescan 1
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1,loops=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    pid=$(iscsifs_pids "$BAD_MNT")
    [[ $pid =~ ^[0-9]+$ ]] || fail "$case: no single iscsifs process for $BAD_MNT: '$pid'"
    dirs=("$BAD_MNT/$BAD_IQN")
    for ((i = 2; i <= ntargets; i++)); do
        dirs+=("$BAD_MNT/$BAD_IQN-$i")
    done
    for d in "${dirs[@]}"; do
        assert_eq "lun0 lun1 " "$(dir_names "$d")" "$case: LUN files of $d at the open"
    done

    # the threads at rest (main, the loop, a FUSE helper that opened the
    # targets until it leaves; and a sanitizer's own, if any)
    base=$(ls "/proc/$pid/task" | wc -l)
    event 1 "add LUN 2" ua-luns-changed   # LUN 2 appears on every target
    # the Unit Attention comes with the next command on each target's
    # session: one read each, all at once
    for d in "${dirs[@]}"; do
        bt dd if="$d/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none &
        readers+=($!)
    done
    # until every directory shows lun2 (6 rescans of over 1 s each, one
    # after the other), count the daemon's threads 10 times a second
    for ((i = 0; i < 600; i++)); do
        n=$(ls "/proc/$pid/task" | wc -l)
        ((n > most)) && most=$n
        n=$(threads_named "$pid" rescan)
        ((n > most_rescan)) && most_rescan=$n
        lun2_everywhere "${dirs[@]}" && break
        sleep 0.1
    done
    for i in "${readers[@]}"; do
        wait "$i" || fail "$case: a read that got the Unit Attention failed"
    done
    lun2_everywhere "${dirs[@]}" || fail "$case: lun2 missing after 60 s: $(ls -A "${dirs[@]}" | tr '\n' ' ')"
    (($(badtarget_count "REPORT LUNS answered in 1 s") >= ntargets)) ||
        fail "$case: fewer than $ntargets slow REPORT LUNS: $(grep -c 'REPORT LUNS' "$BAD_LOG")"
    # those and the rescan helpers, at most RESCAN_THREADS (2)
    limit=$((base + 2))
    note "case $case: at most $most threads ($most_rescan rescan) while $ntargets targets were rescanned, $base at rest"
    ((most_rescan >= 1 && most_rescan <= 2)) ||
        fail "$case: $most_rescan rescan threads while $ntargets targets were rescanned, not 1 or 2"
    ((most <= limit)) || fail "$case: $most threads while the targets were rescanned, over $base at rest + 2"
    for d in "${dirs[@]}"; do
        bt cmp -n 65536 "$d/lun2" "$lun2" || fail "$case: $d/lun2 does not read as the target holds it"
    done
    assert_eq "$ntargets" "$(grep -c "lun2: new LUN of 2097152 bytes; its file is added" "$ISCSIFS_LOG")" \
        "$case: LUN 2 added once per target"
    bad_case_close "$case" "$work"
}
many_targets_case

storm_case() {
    local case=rescans-storm lun2=$TEST_TMPDIR/bad-lun2.img hostile quiet reader
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start ua-luns-changed --lun2 "$lun2" --targets 2 --ua-storm "$BAD_IQN"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1,loops=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    hostile=$BAD_MNT/$BAD_IQN quiet=$BAD_MNT/$BAD_IQN-2
    assert_eq "lun0 lun1 " "$(dir_names "$hostile")" "$case: LUN files of $hostile at the open"
    assert_eq "lun0 lun1 " "$(dir_names "$quiet")" "$case: LUN files of $quiet at the open"

    event 1 "add LUN 2" ua-luns-changed   # LUN 2 appears on both; the storm begins
    # a read of the hostile target sets off its endless rescan (the read
    # itself may fail: every retry gets another Unit Attention)
    bt dd if="$hostile/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &
    reader=$!
    check_log "UNIT ATTENTION: CAPACITY DATA HAS CHANGED" 10
    sleep 1
    # the quiet target's change comes now, behind the hostile rescan
    bt dd if="$quiet/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none ||
        fail "$case: the read of $quiet that got the Unit Attention failed"
    wait_true 30 test -e "$quiet/lun2" ||
        fail "$case: $quiet/lun2 did not show while $hostile kept changing: $(ls -A "$quiet" | tr '\n' ' ')"
    bt cmp -n 65536 "$quiet/lun2" "$lun2" || fail "$case: $quiet/lun2 does not read as the target holds it"
    wait "$reader" 2>/dev/null
    # thousands of Unit Attentions in these seconds (thousands of lines
    # before the budgets): each LUN logs at most 20 lines per 10 s about
    # retries and 20 about commands that failed after them.  Seen: 40
    # lines, both budgets of the hostile LUN 0 in their first window.  The
    # bound allows three times that, for a loaded machine's slower run
    # (more windows) and the storm reaching the hostile LUN 1
    local lines
    lines=$(grep -c 'CAPACITY DATA HAS CHANGED' "$ISCSIFS_LOG")
    note "case $case: $lines storm lines; lun2 of the quiet target shown"
    ((lines <= 2 * 20 * 3)) ||
        fail "$case: $lines lines about the Unit Attentions: the log is not kept to its budget"
    bad_case_close "$case" "$work"
}
storm_case

# slow_report_luns SECS: the target has begun a REPORT LUNS answered in SECS s.
slow_report_luns() {
    (($(badtarget_count "REPORT LUNS answered in $1 s") >= 1))
}

slow_rescan_case() {
    local case=rescan-slow-one lun2=$TEST_TMPDIR/bad-lun2.img slow quiet reader t0 ms
    local slow_secs=20 quick_ms=8000
    selected "$case" || return 0
    make_file "$lun2" 2M random
    badtarget_start ua-luns-changed --lun2 "$lun2" --targets 2 \
        --slow-rescan "$slow_secs" --slow-rescan-only "$BAD_IQN"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1,loops=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    slow=$BAD_MNT/$BAD_IQN quiet=$BAD_MNT/$BAD_IQN-2
    assert_eq "lun0 lun1 " "$(dir_names "$slow")" "$case: LUN files of $slow at the open"
    assert_eq "lun0 lun1 " "$(dir_names "$quiet")" "$case: LUN files of $quiet at the open"
    event 1 "add LUN 2" ua-luns-changed   # LUN 2 appears on both
    # the slow target's Unit Attention first: its rescan begins, and its
    # REPORT LUNS is answered only after $slow_secs s
    bt dd if="$slow/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none ||
        fail "$case: the read of $slow that got the Unit Attention failed"
    wait_true 10 slow_report_luns "$slow_secs" ||
        fail "$case: the slow target's rescan did not begin"
    # then the quiet target's: its lun2 shows while the slow one waits
    t0=$(date +%s%N)
    bt dd if="$quiet/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none ||
        fail "$case: the read of $quiet that got the Unit Attention failed"
    wait_true 30 test -e "$quiet/lun2" || fail "$case: $quiet/lun2 never showed"
    ms=$((($(date +%s%N) - t0) / 1000000))
    note "case $case: $quiet/lun2 showed $ms ms after its Unit Attention, the slow rescan under way"
    ((ms < quick_ms)) ||
        fail "$case: $quiet/lun2 took $ms ms to show: its rescan waited for the slow one"
    bt cmp -n 65536 "$quiet/lun2" "$lun2" || fail "$case: $quiet/lun2 does not read as the target holds it"
    # the slow target's own change shows once its answer comes
    wait_true 60 test -e "$slow/lun2" || fail "$case: $slow/lun2 never showed"
    bt cmp -n 65536 "$slow/lun2" "$lun2" || fail "$case: $slow/lun2 does not read as the target holds it"
    bad_case_close "$case" "$work"
}
slow_rescan_case

# timed CMD...: run CMD (under bt), failing the case unless it succeeds;
# ELAPSED_MS is then how long it took, in ms.  (Not a $( ) function: a
# fail there would end only the subshell.)
timed() {
    local t0 t1
    t0=$(date +%s%N)
    bt "$@" >/dev/null || fail "$case: $* failed"
    t1=$(date +%s%N)
    ELAPSED_MS=$(((t1 - t0) / 1000000))
}

# held_logins N: the target holds N logins unanswered (or more).
held_logins() {
    (($(badtarget_count "login to .* held unanswered") >= $1))
}

# closed_logins N: the initiator closed N held logins.
closed_logins() {
    [[ $(badtarget_count "the initiator closed the held login") == "$1" ]]
}

# waits_on_fuse CMDLINE: a process running CMDLINE (exactly) waits in
# the kernel's FUSE code: for a reply, or for a request on the same
# directory to end first.
waits_on_fuse() {
    local pid wchan
    for pid in $(pgrep -xf -- "$1"); do
        wchan=$(cat "/proc/$pid/wchan" 2>/dev/null)
        [[ $wchan == fuse_* || $wchan == request_wait_answer ]] && return 0
    done
    return 1
}

hung_opens_case() {
    local case=opens-hung open=$BAD_MNT/$BAD_IQN fresh=$BAD_MNT/$BAD_IQN-4 ms n
    local hung_secs=15 quick_ms=5000 pid dir
    local -a hung=("$BAD_MNT/$BAD_IQN-2" "$BAD_MNT/$BAD_IQN-3") waiting=()
    selected "$case" || return 0
    badtarget_start none --targets 4 --hang-login "$BAD_IQN-2" --hang-login "$BAD_IQN-3"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o "sessions=1,timeout=$hung_secs"
    BAD_FG_PID=$ISCSIFS_FG_PID
    assert_eq "lun0 lun1 " "$(dir_names "$open")" "$case: LUN files of $open at the open"
    # the two hung targets are opened at once; their logins never end
    for dir in "${hung[@]}"; do
        bt ls "$dir" >/dev/null 2>&1 &
        waiting+=($!)
    done
    wait_true 10 held_logins 2 ||
        fail "$case: the logins to the hung targets did not come"
    # and a second request to the first: a lookup in its directory.  It
    # must not take a helper of its own while the listing's open hangs:
    # the kernel holds it until the listing is answered (fs_init() leaves
    # FUSE_CAP_PARALLEL_DIROPS off)
    bt stat "${hung[0]}/lun0" >/dev/null 2>&1 &
    waiting+=($!)
    wait_true 10 waits_on_fuse "stat ${hung[0]}/lun0" ||
        fail "$case: the lookup in ${hung[0]} is not waiting on the mount"
    # meanwhile the open target answers at once: a lookup, a listing, a
    # file's attributes and data
    timed ls "$open"
    ms=$ELAPSED_MS
    timed stat "$open/lun1"
    ms=$((ms + ELAPSED_MS))
    timed dd if="$open/lun0" of=/dev/null bs=64k count=4 status=none
    ms=$((ms + ELAPSED_MS))
    note "case $case: the open target answered in $ms ms while two logins hung"
    ((ms < quick_ms)) || fail "$case: the open target took $ms ms to answer while two logins hung"
    bt cmp -n 262144 "$open/lun1" "$BAD_LUN1" || fail "$case: $open/lun1 does not read as the target holds it"
    # and a target not opened yet opens, on the third helper
    timed ls "$fresh"
    note "case $case: a fourth target opened in $ELAPSED_MS ms while two logins hung, one of them asked twice"
    ((ELAPSED_MS < quick_ms)) ||
        fail "$case: opening $fresh took $ELAPSED_MS ms while two logins hung, one of them asked twice"
    assert_eq "lun0 lun1 " "$(dir_names "$fresh")" "$case: LUN files of $fresh"
    # all that while the hung logins were held, and the requests waited
    closed_logins 0 || fail "$case: a held login was closed before -o timeout ($hung_secs s)"
    for pid in "${waiting[@]}"; do
        kill -0 "$pid" 2>/dev/null || fail "$case: a request to a hung target ended before -o timeout"
    done
    pid=$(iscsifs_pids "$BAD_MNT")
    n=$(threads_named "$pid" opener)
    note "case $case: $n opener threads"
    ((n >= 2 && n <= 3)) || fail "$case: $n opener threads, not 2 or 3 (two held by the hung logins, FUSE_LOOP_HELPERS 3)"
    # the hung opens fail once -o timeout is up, never before, and so
    # does the lookup that waited for one of them
    for pid in "${waiting[@]}"; do
        if wait "$pid"; then
            fail "$case: a request to a hung target succeeded"
        fi
    done
    wait_true 10 closed_logins 2 ||
        fail "$case: $(badtarget_count "the initiator closed the held login") held logins closed by the initiator, not 2"
    check_log "$BAD_IQN-2: login failed: .* did not finish the login within $hung_secs s" 1
    check_log "$BAD_IQN-3: login failed: .* did not finish the login within $hung_secs s" 1
    bad_case_close "$case" "$work"
}
hung_opens_case

# A target whose LUN 2 comes and goes without end (badtarget.py
# --luns-flap): each return is a new file, and the files of LUNs gone
# stay in the inode table, which the targets of a discovery mount share.
# The flapping target runs out of its own share (MOUNT_TREE_MAX_LUNS_
# DISCOVERED, 256 files) and says so; the other target, not opened yet,
# still opens (before, the flapping target took the whole table, and the
# other's open failed with "too many LUN files").
flap_case() {
    local case=luns-flap lun2=$TEST_TMPDIR/bad-lun2.img i
    local flapping=$BAD_MNT/$BAD_IQN other=$BAD_MNT/$BAD_IQN-2
    selected "$case" || return 0
    make_file "$lun2" 1M random
    badtarget_start none --targets 2 --lun2 "$lun2" --luns-flap "$BAD_IQN"
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1
    BAD_FG_PID=$ISCSIFS_FG_PID
    assert_eq "lun0 lun1 " "$(dir_names "$flapping")" "$case: LUN files of $flapping at the open"
    kill -USR1 "$BAD_PID"          # LUN 2 of the first target flaps from now on
    # each read gets REPORTED LUNS DATA HAS CHANGED, whose rescan finds
    # LUN 2 come (a new file) or go
    for ((i = 1; i <= 1500; i++)); do
        dd if="$flapping/lun0" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null
        grep -q "too many LUN files" "$ISCSIFS_LOG" && break
    done
    note "case $case: $i reads until: $(grep -m1 "too many LUN files" "$ISCSIFS_LOG")"
    assert_eq "lun0 lun1 " "$(dir_names "$other")" "$case: LUN files of $other, opened after"
    check_log "target $BAD_IQN: too many LUN files \\(256 added, those of LUNs gone since included\\); lun2 not shown" 10
    bt cmp "$other/lun1" "$BAD_LUN1" || fail "$case: $other/lun1 does not read as the target holds it"
    bad_case_close "$case" "$work"
}
flap_case

((ncases > 0)) || fail "no case selected by BAD_CASES='${BAD_CASES:-}'"
note "ok: $ncases cases"
