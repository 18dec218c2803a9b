#!/bin/bash
# badtarget-io.sh: a target that misbehaves on a command to its LUN 1
# (tests/lib/badtarget.py), one case at a time: malformed Data-In, R2Ts
# and responses (issue 4, "Hostile target input"), and slow or unhelpful
# answers (issue 5: no answer, BUSY, Unit Attention, Async Messages,
# a LUN reset that ends the commands of another session too), hole
# punches on a LUN with unaligned UNMAP granules (issue 12, punch_case),
# what status and sense mean (issue 12: SYNCHRONIZE CACHE refused, NO
# SENSE, deferred errors, a failed iSCSI response), immediate data and
# unsolicited Data-Out, StatSN gaps and a Logout Response that is not a
# success (issue 12), GET LBA STATUS answered right, refused and
# malformed (issue 14, lbas_case).
#
# For each case: mount (foreground, one session), read or write LUN 1 so
# that the case fires, and check that
#   - the I/O succeeds with the right data (after a reconnect) or fails
#     with EIO, as the case expects: never other data, never a hang;
#   - the iscsifs log names the violation (when the case is one);
#   - iscsifs is alive, LUN 0 reads and writes what the target holds, and
#     LUN 1 works again once the target behaves;
#   - unmounting logs out and exits 0; no sanitizer report.
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

# selected_case CASE: whether BAD_CASES (if set) names CASE; counts it.
selected_case() {
    [[ -n ${BAD_CASES:-} && " $BAD_CASES " != *" $1 "* ]] && return 1
    ncases=$((ncases + 1))
}

# io_case CASE OP EXPECT REGEX [opts=O] [stat=KEY=N] [tries=N] [log=REGEX]
# [fired=N]: run one case.
#   OP      read: 64 KiB from LUN 1; write: 128 KiB to LUN 1; fsync: that
#           write with fsync, twice
#   EXPECT  ok: the I/O succeeds (after a reconnect); eio: it fails with
#           EIO; eio-always: EIO and the target keeps misbehaving (LUN 1
#           is not tried again)
#   REGEX   what the iscsifs log must say ('' when nothing is owed)
#   opts=O  more -o options for the mount
#   stat=KEY=N  counter KEY of lun1 in .iscsifs/stats is N afterwards
#   sess=KEY=N  counter KEY of session 0 is N afterwards (may repeat)
#   log=REGEX   the log also has a line matching REGEX (may repeat)
#   fired=N     the case fired exactly N times in all
#   target=ARG  an argument of badtarget.py (may repeat)
#   target_log=REGEX  the target's log has a line matching REGEX once LUN 0
#           was used after the I/O (may repeat)
#   nolog=REGEX the log has no line matching REGEX (may repeat)
#   check=CMD   CMD (a function of this file) passes before the unmount
#   tries=N for a violation the initiator may miss by timing (the case
#           says why): the I/O is done again, up to N times in all, until
#           the log has REGEX; each must end as EXPECT says
io_case() {
    local case=$1 op=$2 expect=$3 re=$4 stat="" opts=sessions=1 tries=1 fired="" try off start
    local arg kv
    local -a sess=() logs=() targs=() tlogs=() nologs=() checks=()
    shift 4
    for arg in "$@"; do
        case $arg in
            opts=*) opts+=",${arg#opts=}" ;;
            stat=*) stat=${arg#stat=} ;;
            sess=*) sess+=("${arg#sess=}") ;;
            tries=*) tries=${arg#tries=} ;;
            log=*) logs+=("${arg#log=}") ;;
            fired=*) fired=${arg#fired=} ;;
            target=*) targs+=("${arg#target=}") ;;
            target_log=*) tlogs+=("${arg#target_log=}") ;;
            nolog=*) nologs+=("${arg#nolog=}") ;;
            check=*) checks+=("${arg#check=}") ;;
            *) fail "io_case: bad argument '$arg'" ;;
        esac
    done
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case" "${targs[@]}"
    bad_mount_fg "$opts"
    bad_check_names "lun0 lun1"
    for ((try = 1; try <= tries; try++)); do
        io_once "$case" "$op" "$expect"
        [[ -z $re ]] || grep -Eq -- "$re" "$ISCSIFS_LOG" && break
        ((try < tries)) && note "case $case: not detected this time (try $try); again"
    done
    [[ -n $re ]] && check_log "$re"
    for arg in "${logs[@]}"; do check_log "$arg"; done
    for arg in "${nologs[@]}"; do
        ! grep -Eq -- "$arg" "$ISCSIFS_LOG" ||
            fail "$case: a log line matches /$arg/: $(grep -E -- "$arg" "$ISCSIFS_LOG" | head -n 3)"
    done
    for arg in "${checks[@]}"; do "$arg" "$case"; done
    if [[ -n $stat ]]; then
        assert_eq "${stat#*=}" "$(lun_stat lun1 "${stat%%=*}")" "$case: ${stat%%=*} of lun1"
    fi
    for kv in "${sess[@]}"; do
        assert_eq "${kv#*=}" "$(session_stat 0 "${kv%%=*}")" "$case: ${kv%%=*} of session 0"
    done
    if [[ -n $fired ]]; then
        assert_eq "$fired" "$(badtarget_count "^badtarget: fired $case ")" "$case: times fired"
    fi
    check_alive
    check_lun0 "$work"
    # (after check_lun0: a check of the target may be about the next command)
    for arg in "${tlogs[@]}"; do
        (($(badtarget_count "$arg") > 0)) || fail "$case: no line of the target's log matches /$arg/: $(cat "$BAD_LOG")"
    done
    if [[ $expect != eio-always ]]; then
        # The target behaves again: LUN 1 must work again too.
        bt dd if="$BAD_MNT/lun1" of="$work/got" bs=65536 iflag=skip_bytes skip="$off" \
            count=1 status=none || fail "$case: lun1 does not work again"
        slice "$BAD_LUN1" "$off" 65536 >"$work/want"
        assert_same_file "$work/want" "$work/got" "$case: lun1 read again"
    fi
    bad_case_end "$case" "$work" "$start"
}

# io_once CASE OP EXPECT: the I/O of a case and the checks of its outcome
# (sets off, the offset used).
io_once() {
    local case=$1 op=$2 expect=$3
    off=$(((RANDOM % 16 + 4) * 131072))
    case $op in
        read)
            io_result dd if="$BAD_MNT/lun1" of="$work/got" bs=65536 iflag=skip_bytes \
                skip="$off" count=1 status=none
            ;;
        write | fsync)
            head -c 131072 /dev/urandom >"$work/pattern"
            slice "$BAD_LUN1" "$off" 131072 >"$work/before"
            local conv=notrunc n
            [[ $op == fsync ]] && conv+=,fsync
            for n in 1 2; do
                io_result dd if="$work/pattern" of="$BAD_MNT/lun1" bs=131072 \
                    oflag=seek_bytes seek="$off" conv="$conv" status=none
                [[ $op == fsync && $RESULT == ok ]] || break
            done
            ;;
    esac
    note "case $case: $op -> $RESULT${RESULT_ERR:+ ($RESULT_ERR)}"
    case $RESULT in
        ok | eio) ;;
        hang) fail "$case: the $op did not finish within ${BAD_IO_TIMEOUT}s" ;;
        *) fail "$case: the $op failed with something other than EIO: $RESULT_ERR" ;;
    esac
    [[ $RESULT == "${expect%-always}" ]] ||
        fail "$case: expected the $op to end '${expect%-always}', it ended '$RESULT'"
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"

    # Never other data: what a read returns is what the target holds; a
    # write that succeeded is on the target; one that failed left each
    # block old or new.
    if [[ $op == read && $RESULT == ok ]]; then
        slice "$BAD_LUN1" "$off" 65536 >"$work/want"
        assert_same_file "$work/want" "$work/got" "$case: data read from lun1"
    elif [[ $op != read && $RESULT == ok ]]; then
        slice "$BAD_LUN1" "$off" 131072 >"$work/after"
        assert_same_file "$work/pattern" "$work/after" "$case: lun1 on the target after the write"
    elif [[ $op != read ]]; then
        slice "$BAD_LUN1" "$off" 131072 >"$work/after"
        "$PYTHON" - "$work/before" "$work/pattern" "$work/after" <<'EOF' ||
import sys
old, new, now = (open(p, "rb").read() for p in sys.argv[1:])
for i in range(0, len(now), 512):
    if now[i:i + 512] not in (old[i:i + 512], new[i:i + 512]):
        sys.exit("block %d is neither the old nor the new data" % (i // 512))
EOF
            fail "$case: a failed write left other data on the target"
    fi
}

# failures_logged CASE: the read of the case was tried 8 times again; three
# more reads of LUN 1, each failing after 8 retries: their 24 lines about
# retries (over the LUN's budget of 20 per 10 s) leave out none of the
# four lines that say a read failed.
failures_logged() {
    local i
    assert_eq 8 "$(lun_stat lun1 retries)" "$1: retries of lun1"
    for i in 1 2 3; do
        ! bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 status=none 2>/dev/null ||
            fail "$1: read $i of LUN 1 succeeded"
    done
    assert_eq 32 "$(lun_stat lun1 retries)" "$1: retries of lun1 after three more reads"
    assert_eq 4 "$(grep -c "still after 8 retries" "$ISCSIFS_LOG")" "$1: lines saying a read failed"
}

# sum_session_stat KEY: counter KEY summed over sessions 0 and 1.
sum_session_stat() {
    echo $(($(session_stat 0 "$1") + $(session_stat 1 "$1")))
}

# two_reads CASE OPTS CMD...: mount with -o OPTS (and cmd_timeout=2);
# read 64 KiB of LUN 1 at one offset in the background, run CMD (the
# wait before the second), read 64 KiB at another; both must succeed
# with the data the target holds, and the LU reset of the case must have
# ended the first read alone.
two_reads() {
    local case=$1 opts=$2 off1=$((4 * 131072)) off2=$((12 * 131072)) pid1 rc1 rc2
    shift 2
    badtarget_start "$case"
    bad_mount_fg "$opts,cmd_timeout=2"
    bad_check_names "lun0 lun1"
    bt dd if="$BAD_MNT/lun1" of="$work/got1" bs=65536 iflag=skip_bytes skip="$off1" \
        count=1 status=none &
    pid1=$!
    "$@" || fail "$case: $* failed: $(cat "$BAD_LOG")"
    bt dd if="$BAD_MNT/lun1" of="$work/got2" bs=65536 iflag=skip_bytes skip="$off2" \
        count=1 status=none
    rc2=$?
    wait "$pid1"
    rc1=$?
    assert_eq "0 0" "$rc1 $rc2" "$case: exit status of the two reads"
    slice "$BAD_LUN1" "$off1" 65536 >"$work/want"
    assert_same_file "$work/want" "$work/got1" "$case: the first read"
    slice "$BAD_LUN1" "$off2" 65536 >"$work/want"
    assert_same_file "$work/want" "$work/got2" "$case: the second read"
    check_log "LUN 1 reset; 1 commands sent again"
}

# reset_case CASE REGEX [aborts=N]: two sessions; a read of LUN 1 that
# the target holds goes to one session, and 1.8 s later another, held
# too, to the other.  The first times out (2 s): its ABORT TASK is
# refused and the LU reset that follows ends both (the other as the case
# says: TASK ABORTED, or without a word).  Both reads must end with the
# right data, with one LU reset and no reconnect in all, and REGEX in the
# log for how the second came back.  One ABORT TASK in all: the second
# is back before it would time out on its own (unless the case expects
# aborts=N); one ABORT TASK SET unless the target said TASK ABORTED.
reset_case() {
    local case=$1 re=$2 aborts=1 start
    [[ ${3:-} == aborts=* ]] && aborts=${3#aborts=}
    selected_case "$case" || return 0
    start=$(date +%s)
    # one loop, both sessions on it: the second read goes to the other,
    # less loaded session (with a loop per session, a command stays on
    # its own loop's session until that one carries four more: pool.c
    # AWAY_TASKS)
    two_reads "$case" sessions=2,loops=1 sleep 1.8
    assert_eq 2 "$(badtarget_count "holding READ")" "$case: READs held by the target"
    check_log "$re"
    assert_eq "$aborts" "$(sum_session_stat aborts)" "$case: ABORT TASKs of both sessions"
    assert_eq 1 "$(sum_session_stat lu_resets)" "$case: LU resets of both sessions"
    assert_eq 0 "$(sum_session_stat reconnects)" "$case: reconnects of both sessions"
    if [[ $case != reset-tas ]]; then
        assert_eq 1 "$(sum_session_stat abort_task_sets)" "$case: ABORT TASK SETs"
    fi
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}

# late_reset_case: one session; a read of LUN 1 is held, its ABORT TASK
# refused, and the target answers the LU reset that follows only once a
# second read, sent after the reset, has come (case reset-late); it
# answers that read 0.3 s later.  The reset must end the first read
# alone: both end with the right data, and no reconnect (a second read
# taken for ended would be sent again, and its late answer then be for
# an unknown ITT).
# reset_reached: the target's log has the LU reset (BAD_LOG is the case's
# only once it started).
reset_reached() {
    grep -q "task management function 5 " "$BAD_LOG"
}

late_reset_case() {
    local case=reset-late start
    selected_case "$case" || return 0
    start=$(date +%s)
    two_reads "$case" sessions=1 wait_true 10 reset_reached
    badtarget_count "came after the LU RESET" >/dev/null ||
        fail "$case: the second read did not come after the reset: $(cat "$BAD_LOG")"
    assert_eq 1 "$(session_stat 0 lu_resets)" "$case: LU resets"
    assert_eq 0 "$(session_stat 0 reconnects)" "$case: reconnects"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}

# issue 12 item 1: hole punch on a LUN whose UNMAP granules are not
# aligned at 0.
# LUN 1 of case lbprz-pattern is thin, but its unmapped blocks read as
# its provisioning initialization pattern (0xff), not zeros (LBPRZ 010b in
# the LBP VPD page; SBC-4 says zeros only for xx1b): a zero range must
# read back as zeros, so it is written, not UNMAPped (before, iscsifs
# took any LBPRZ value for zeros, sent UNMAP, and the range read 0xff),
# and a hole, which UNMAP alone would make, is refused.
lbprz_case() {
    local case=lbprz-pattern start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    badtarget_fired "$case" || fail "$case: the target never sent its LBP page"
    bt fallocate --zero-range --keep-size --offset 1048576 --length 65536 "$BAD_MNT/lun1" ||
        fail "$case: zero range failed"
    head -c 65536 /dev/zero >"$work/zeros"
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=65536 skip=16 count=1 status=none ||
        fail "$case: reading the zero range failed"
    assert_same_file "$work/zeros" "$work/got" "$case: the zero range read through the mount"
    slice "$BAD_LUN1" 1048576 65536 >"$work/got"
    assert_same_file "$work/zeros" "$work/got" "$case: the zero range on the target"
    assert_eq 0 "$(badtarget_count "UNMAP LBA")" "$case: UNMAPs sent for a zero range"
    if bt fallocate --punch-hole --keep-size --offset 0 --length 65536 "$BAD_MNT/lun1" 2>/dev/null; then
        fail "$case: a hole was punched where unmapped blocks do not read as zeros"
    fi
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
lbprz_case

# punch_case: LUN 1 of case unmap-granularity is thin (UNMAP, LBPRZ) with
# UNMAP GRANULARITY 8, ALIGNMENT 7 and at most 20 blocks per UNMAP (not
# whole granules); the target deallocates whole granules only and leaves
# the rest of an UNMAP as it was.  Each hole below (the issue's, one
# below the first granule boundary, unaligned ones spanning granules, one
# exactly a granule) must return within PUNCH_TIMEOUT seconds and leave
# the target's backing file with exactly the hole zeroed and every other
# byte as it was; read through the mount too.  The UNMAPs iscsifs sends
# must be whole granules (the target logs any other), and the long holes
# must really be UNMAPped.
PUNCH_TIMEOUT=10
punch_case() {
    local case=unmap-granularity start range off len rc model=$work/model
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    badtarget_fired "$case" || fail "$case: the target never sent its Block Limits page"
    assert_eq hole "$(getfattr --only-values -n user.iscsi.discard "$BAD_MNT/lun1" 2>/dev/null)" \
        "$case: user.iscsi.discard of lun1"
    cp -- "$BAD_LUN1" "$model"
    # offset length: the issue's (blocks 1..4, before the first boundary,
    # 7); within one block; unaligned at both ends across granules; one
    # whole granule (blocks 7..14); 1 MiB from an odd byte
    for range in "512 2048" "5000 100" "1000 30000" "3584 4096" "$((65536 + 333)) 1048576"; do
        read -r off len <<<"$range"
        timeout -k 2 "$PUNCH_TIMEOUT" fallocate --punch-hole --keep-size --offset "$off" \
            --length "$len" "$BAD_MNT/lun1"
        rc=$?
        ((rc == 124 || rc == 137)) &&
            fail "$case: punching a hole at $off+$len did not return within ${PUNCH_TIMEOUT}s"
        ((rc == 0)) || fail "$case: punching a hole at $off+$len failed (exit status $rc)"
        "$PYTHON" - "$model" "$off" "$len" <<'PY' || fail "$case: cannot update the model"
import sys
path, off, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    f.write(bytes(length))
PY
        assert_same_file "$model" "$BAD_LUN1" "$case: the target's lun1 after a hole at $off+$len"
        bt dd if="$BAD_MNT/lun1" of="$work/got" bs=1M status=none || fail "$case: reading lun1 failed"
        assert_same_file "$model" "$work/got" "$case: lun1 read after a hole at $off+$len"
    done
    assert_eq 0 "$(badtarget_count "not whole granules")" "$case: UNMAPs not of whole granules"
    (($(badtarget_count "UNMAP LBA [0-9]+, (8|16) blocks$") >= 3)) ||
        fail "$case: the holes were not UNMAPped in whole granules: $(grep UNMAP "$BAD_LOG")"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}

# unmap-refused: LUN 1 says it takes UNMAP (thin, LBPRZ; no WRITE SAME)
# but refuses it: a hole, which only UNMAP can make there, fails with
# EOPNOTSUPP and one line, and UNMAP is not sent again (a second hole
# fails without one); zero ranges are written as zeros and read back as
# zeros (a zero range once failed with EOPNOTSUPP here though zeros could
# be written; it no longer goes by UNMAP at all).
unmap_refused_case() {
    local case=unmap-refused start model=$work/model i
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    cp -- "$BAD_LUN1" "$model"
    for i in 1 2; do
        if bt fallocate --punch-hole --keep-size --offset 0 --length 4096 "$BAD_MNT/lun1" 2>"$work/err"; then
            fail "$case: hole $i was punched without UNMAP"
        fi
        grep -Eq "(not |un)supported" "$work/err" || fail "$case: hole $i failed otherwise: $(cat "$work/err")"
    done
    assert_eq 1 "$(badtarget_count "fired $case ")" "$case: UNMAPs sent for two holes"
    check_log "target $BAD_IQN, lun1: UNMAP refused \\(Operation not supported\\), though the LUN says it takes it; not sent again"
    assert_same_file "$model" "$BAD_LUN1" "$case: the target's lun1 after the refused holes"
    for range in "5000 100000" "$((1 << 20)) $((1 << 20))"; do
        read -r off len <<<"$range"
        bt fallocate --zero-range --keep-size --offset "$off" --length "$len" "$BAD_MNT/lun1" ||
            fail "$case: zeroing $off+$len failed"
        "$PYTHON" -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    f.write(bytes(int(sys.argv[3])))' "$model" "$off" "$len" || fail "$case: cannot update the model"
        assert_same_file "$model" "$BAD_LUN1" "$case: the target's lun1 after zeroing $off+$len"
    done
    assert_eq 1 "$(badtarget_count "fired $case ")" "$case: UNMAPs sent in all"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
unmap_refused_case

# fill_aa CASE: 1 MiB of 0xaa at 1 MiB of the case's lun1, through the
# mount.
fill_aa() {
    "$PYTHON" -c 'import sys; sys.stdout.buffer.write(b"\xaa" * 1048576)' >"$work/aa"
    bt dd if="$work/aa" of="$BAD_MNT/lun1" bs=1M seek=1 oflag=direct conv=notrunc status=none ||
        fail "$1: writing 1 MiB of 0xaa failed"
}

# expect_zeros CASE AFTER: that MiB reads as zeros on the target and
# through the mount (AFTER names what made it so).
expect_zeros() {
    head -c 1048576 /dev/zero >"$work/zeros"
    slice "$BAD_LUN1" 1048576 1048576 >"$work/got"
    assert_same_file "$work/zeros" "$work/got" "$1: the target's lun1 after $2"
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=1M skip=1 count=1 iflag=direct status=none ||
        fail "$1: reading lun1 failed"
    assert_same_file "$work/zeros" "$work/got" "$1: lun1 read after $2"
}

# unmap-noop: LUN 1 says it takes UNMAP and WRITE SAME(16) (thin, LBPRZ)
# and answers every UNMAP with GOOD without deallocating anything, which
# SBC allows: an UNMAP is a request.  A hole and a zero range must read
# back as zeros all the same, so they go by WRITE SAME(16) with the UNMAP
# bit, which writes zeros where it does not deallocate (before, UNMAP was
# sent, fallocate succeeded and the old data stayed).
unmap_noop_case() {
    local case=unmap-noop start mode
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    badtarget_fired "$case" || fail "$case: the target never sent its LBP page"
    for mode in --punch-hole --zero-range; do
        fill_aa "$case"
        bt fallocate "$mode" --keep-size --offset 1048576 --length 1048576 "$BAD_MNT/lun1" ||
            fail "$case: fallocate $mode failed"
        expect_zeros "$case" "fallocate $mode"
    done
    (($(badtarget_count "WRITE SAME\(16\) LBA [0-9]+, [0-9]+ blocks, UNMAP") >= 2)) ||
        fail "$case: no WRITE SAME(16) with the UNMAP bit: $(grep -E 'UNMAP|WRITE SAME' "$BAD_LOG")"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
unmap_noop_case

# unmap-only-noop: LUN 1 takes UNMAP but not WRITE SAME (thin, LBPRZ) and
# answers every UNMAP with GOOD without deallocating anything.  A zero
# range is written as zeros, never trusted to UNMAP (before, it went by
# UNMAP, fallocate succeeded and the old data stayed).
unmap_only_noop_case() {
    local case=unmap-only-noop start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    badtarget_fired "$case" || fail "$case: the target never sent its LBP page"
    fill_aa "$case"
    bt fallocate --zero-range --keep-size --offset 1048576 --length 1048576 "$BAD_MNT/lun1" ||
        fail "$case: fallocate --zero-range failed"
    expect_zeros "$case" "the zero range"
    assert_eq 0 "$(badtarget_count "UNMAP of LUN 1")" "$case: UNMAPs sent for a zero range"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
unmap_only_noop_case

# write-same-residual: LUN 1 (thin, LBPWS) answers each WRITE SAME(16) with
# GOOD and its one block of data as residual: it took nothing.  The hole
# fails with EIO and one line naming the command, as a WRITE that took
# none of its data does (before, the residual was let pass for WRITE SAME
# as for tgtd's UNMAP, and fallocate succeeded with the old data left).
write_same_residual_case() {
    local case=write-same-residual start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    fill_aa "$case"
    if bt fallocate --punch-hole --keep-size --offset 1048576 --length 1048576 "$BAD_MNT/lun1" \
        2>"$work/err"; then
        fail "$case: the hole was reported punched though the target took no WRITE SAME data"
    fi
    grep -q "Input/output error" "$work/err" || fail "$case: the hole failed otherwise: $(cat "$work/err")"
    check_log "lun1: WRITE SAME\(16\) took 0 of 512 bytes \(GOOD status with residual 512\)"
    badtarget_fired "$case" || fail "$case: the target never sent its LBP page"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
write_same_residual_case

# punch_ok CASE: over 1 MiB of 0xaa at 1 MiB of the case's LUN 1, a hole
# must succeed and read back as zeros, on the target and through the
# mount.
punch_ok() {
    fill_aa "$1"
    bt fallocate --punch-hole --keep-size --offset 1048576 --length 1048576 "$BAD_MNT/lun1" ||
        fail "$1: punching the hole failed"
    expect_zeros "$1" "the hole"
}

# write-same-refused: LUN 1 says it takes WRITE SAME(16) and UNMAP (thin,
# LBPRZ) but refuses WRITE SAME: the hole is made again by UNMAP (before,
# it failed with EOPNOTSUPP although UNMAP could make it), and WRITE SAME
# is not sent again.
write_same_refused_case() {
    local case=write-same-refused start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    punch_ok "$case"
    punch_ok "$case"
    assert_eq 1 "$(badtarget_count "WRITE SAME\(16\) of LUN 1 refused")" "$case: WRITE SAMEs sent"
    (($(badtarget_count "UNMAP LBA") >= 2)) || fail "$case: the holes were not UNMAPped"
    check_log "target $BAD_IQN, lun1: WRITE SAME\(16\) refused \(Operation not supported\), though the LUN says it takes it; not sent again"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
write_same_refused_case

# write-same-only-refused: LUN 1 says it takes WRITE SAME(16) but not
# UNMAP (thin, LBPRZ) and refuses WRITE SAME: nothing else makes a hole
# there, so an unaligned hole fails with EOPNOTSUPP, and that must mean
# nothing changed: the WRITE SAME goes before the merged edge blocks,
# which are never sent (before, they went with it and the hole failed
# with its edges already zeroed).  A second hole fails without a WRITE
# SAME.
write_same_only_refused_case() {
    local case=write-same-only-refused start model=$work/model i
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    fill_aa "$case"
    cp -- "$BAD_LUN1" "$model"
    for i in 1 2; do
        if bt fallocate --punch-hole --keep-size --offset $(((1 << 20) + 100)) --length $((1 << 20)) \
            "$BAD_MNT/lun1" 2>"$work/err"; then
            fail "$case: hole $i was punched though the LUN refuses WRITE SAME and has no UNMAP"
        fi
        grep -Eq "(not |un)supported" "$work/err" || fail "$case: hole $i failed otherwise: $(cat "$work/err")"
        assert_same_file "$model" "$BAD_LUN1" "$case: the target's lun1 after refused hole $i"
    done
    badtarget_fired "$case" || fail "$case: the target never sent its LBP page"
    assert_eq 1 "$(badtarget_count "WRITE SAME\(16\) of LUN 1 refused")" "$case: WRITE SAMEs sent"
    check_log "target $BAD_IQN, lun1: WRITE SAME\(16\) refused \(Operation not supported\), though the LUN says it takes it; not sent again"
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=1M status=none || fail "$case: reading lun1 failed"
    assert_same_file "$model" "$work/got" "$case: lun1 read after the refused holes"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
write_same_only_refused_case

# unmap-residual: LUN 1 (thin, UNMAP, no WRITE SAME) answers each UNMAP it
# did with GOOD and the whole parameter list as residual, as tgtd does:
# the hole is made (UNMAP's data is a parameter list, not blocks).
unmap_residual_case() {
    local case=unmap-residual start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    punch_ok "$case"
    (($(badtarget_count "UNMAP of LUN 1 done; GOOD with residual") >= 1)) ||
        fail "$case: no UNMAP answered with a residual"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
unmap_residual_case

# read-hang, on a discovery mount of two targets with queue_depth=4: 30
# reads of 1 MiB of the first's lun1 hang (its first 4 commands fill the
# session's window until cmd_timeout, 5 s, aborts them and sends them
# again; the others wait behind them), holding the daemon's 24 MiB budget
# of read buffers; a 1 MiB read of the second target's lun0 waits for
# room 1 s at most, then goes (before, it waited until the hung reads
# ended).
budget_stall_case() {
    local case=read-hang start i t0 ms a b
    local -a pids=()
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case" --targets 2
    mount_iscsifs_fg "iscsi://$LOOPBACK4:$BAD_PORT/" "$BAD_MNT" -o sessions=1,queue_depth=4,cmd_timeout=5
    BAD_FG_PID=$ISCSIFS_FG_PID
    a=$BAD_MNT/$BAD_IQN b=$BAD_MNT/$BAD_IQN-2
    bt stat "$a/lun1" "$b/lun0" >/dev/null || fail "$case: the targets do not open"
    for ((i = 0; i < 30; i++)); do
        bt dd if="$a/lun1" of=/dev/null bs=1M count=1 skip=$((i % 4)) iflag=direct status=none &
        pids+=($!)
    done
    wait_true 10 eval '(($(badtarget_count "fired $case ") >= 4))' ||
        fail "$case: the reads of $a/lun1 did not reach the target (see $BAD_LOG)"
    sleep 0.5
    t0=$(date +%s%N)
    bt dd if="$b/lun0" of="$work/got" bs=1M count=1 iflag=direct status=none ||
        fail "$case: the read of $b/lun0 failed"
    ms=$((($(date +%s%N) - t0) / 1000000))
    note "case $case: the read of the other target took $ms ms"
    ((ms < 4000)) || fail "$case: the read of the other target took $ms ms, behind the hung reads"
    slice "$BAD_LUN0" 0 1048576 >"$work/want"
    assert_same_file "$work/want" "$work/got" "$case: the read of $b/lun0"
    for i in "${pids[@]}"; do
        wait "$i" || fail "$case: a read of $a/lun1 failed after its abort"
    done
    bad_case_close "$case" "$work" "$start"
}
budget_stall_case

# pings_answered CASE: while the target pings (case nop-in-ping), LUN 0
# is read again and again (for 10 s at most); then every ping the target
# sent was answered, within 5 s, by a well-formed NOP-Out.
pings_answered() {
    local case=$1 sent answered i until=$((SECONDS + 10))
    while ((SECONDS < until)); do
        grep -q "pings done" "$BAD_LOG" && break
        bt dd if="$BAD_MNT/lun0" of=/dev/null bs=65536 count=16 status=none ||
            fail "$case: read of lun0 failed while the target pinged"
    done
    grep -q "pings done" "$BAD_LOG" || fail "$case: the pings did not end: $(cat "$BAD_LOG")"
    for ((i = 0; i < 50; i++)); do
        sent=$(badtarget_count "ping TTT 0x[0-9a-f]+ sent")
        answered=$(badtarget_count "ping TTT 0x[0-9a-f]+ answered")
        ((sent == answered)) && break
        sleep 0.1
    done
    ((sent >= 10)) || fail "$case: only $sent pings sent: $(cat "$BAD_LOG")"
    assert_eq "$sent" "$answered" "$case: pings answered"
    assert_eq 0 "$(badtarget_count "bad NOP-Out")" "$case: bad answers: $(grep "bad NOP-Out" "$BAD_LOG")"
}

# async_lines_bounded CASE: the Async Messages of case async-flood (20000
# in a burst) made a line or two in the log, not one each.
async_lines_bounded() {
    local n
    n=$(grep -c "asynchronous event" "$ISCSIFS_LOG")
    ((n >= 1 && n <= 3)) || fail "$1: $n log lines about asynchronous events"
}

# rss_kb PID: the resident set of process PID, in KiB.
rss_kb() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}

# nop_flood_case: on a READ of LUN 1 the target sends NOP-In pings, each
# asking for an answer, as fast as it can for up to 10 s, and reads
# nothing meanwhile (case nop-flood).  The daemon's memory must stay
# bounded (its RSS grows by less than 100 MiB while the flood lasts), the
# connection be dropped with one line, and the read then succeed on a new
# connection with the data the target holds.
nop_flood_case() {
    local case=nop-flood start base rss max=0 pid1 rc i off=$((4 * 131072))
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    bad_check_names "lun0 lun1"
    base=$(rss_kb "$BAD_FG_PID")
    max=$base
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=65536 iflag=skip_bytes skip="$off" count=1 \
        status=none &
    pid1=$!
    # sampled until the flood ends (at the latest 10 s after it began)
    for ((i = 0; i < 150; i++)); do
        rss=$(rss_kb "$BAD_FG_PID")
        ((rss > max)) && max=$rss
        grep -q "flood ended" "$BAD_LOG" && break
        sleep 0.1
    done
    wait "$pid1"
    rc=$?
    note "case $case: RSS $((base / 1024)) MiB before the flood, at most $((max / 1024)) MiB during it; $(grep -o "flood ended.*" "$BAD_LOG")"
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    (((max - base) < 100 * 1024)) ||
        fail "$case: the daemon grew by $(((max - base) / 1024)) MiB during the flood"
    assert_eq 0 "$rc" "$case: exit status of the read"
    slice "$BAD_LUN1" "$off" 65536 >"$work/want"
    assert_same_file "$work/want" "$work/got" "$case: data read from lun1"
    check_log "keeps sending NOP-In pings while the answers to [0-9]+ are still unsent"
    assert_eq 1 "$(grep -c "NOP-In pings" "$ISCSIFS_LOG")" "$case: log lines about the flood"
    assert_eq 1 "$(session_stat 0 reconnects)" "$case: reconnects"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}

# The violation messages name what was wrong; a reconnect follows.
V='protocol error'

# framing
io_case dsl-over read ok "Data-In with a [0-9]+-byte data segment, over the [0-9]+ we accept"
io_case ahs read ok "$V: Data-In with a 16-byte AHS"
io_case bad-opcode read ok "$V: target sent opcode 0x1c"
# tasks and Data-In
io_case unknown-itt read ok "$V: Data-In for unknown ITT"
io_case stale-itt read ok "$V: Data-In for unknown ITT"
io_case dup-response read ok "$V: SCSI Response for unknown ITT"
io_case datain-overflow read ok "$V: Data-In offset [0-9]+ length [0-9]+ outside the 65536-byte buffer"
io_case datain-overflow-always read eio-always "outside the 65536-byte buffer.*|failed [0-9]+ connections"
io_case datain-wrap read ok "$V: Data-In offset 4294966784 length 1024 outside"
io_case datain-overlap read ok "$V: Data-In offset 0, expected 16384"
io_case datasn-order read ok "$V: Data-In DataSN 2, expected 1"
io_case status-no-f read ok "$V: Data-In with status but without the F bit"
io_case read-short read eio "READ returned 32768 of 65536 bytes"
# every READ short: 40 more reads of lun1 fail, and their lines keep to
# the LUN's budget of error lines (20 in 10 s); before, a line each
short_lines_bounded() {
    local i n
    for ((i = 0; i < 40; i++)); do
        bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 iflag=direct status=none 2>/dev/null &&
            fail "$1: read $i of lun1 succeeded"
    done
    n=$(grep -c "READ returned" "$ISCSIFS_LOG")
    ((n <= 21)) || fail "$1: $n lines about short READs for 41 reads (the budget is 20 in 10 s)"
}
io_case read-short-always read eio-always "READ returned 32768 of 65536 bytes" check=short_lines_bounded
# answered as done, though the data did not move as asked: EIO, never
# success (before, the read returned the other blocks' bytes; the writes
# reported success with nothing written)
io_case read-overflow read eio \
    "target $BAD_IQN, lun1: command 0x(28|88) of 65536 bytes answered with a residual overflow of 458752 bytes"
io_case write-overflow write eio \
    "target $BAD_IQN, lun1: command 0x(2a|8a) of 131072 bytes answered with a residual overflow of 917504 bytes"
for c in write-early-met write-early-recovered write-early-u0; do
    io_case "$c" write eio \
        "target $BAD_IQN, lun1: command 0x(2a|8a) answered as done when the target had asked for [0-9]+ of its 131072 bytes of data"
done
io_case datain-write write ok "$V: Data-In for ITT 0x[0-9a-f]+, which is not a read"
# a status-only Data-In (no data) saying GOOD for a write none of whose
# data was asked for: the connection is dropped and the write goes again
# (before, it was taken as the write's status and the LUN layer failed the
# write with EIO: "answered as done when the target had asked for 0 of its
# 131072 bytes")
io_case datain-write-status write ok "$V: Data-In for ITT 0x[0-9a-f]+, which is not a read" \
    sess=reconnects=1
# R2T
io_case r2t-beyond write ok "$V: R2T outside the transfer"
io_case r2t-beyond-always write eio-always "$V: R2T outside the transfer"
io_case r2t-wrap write ok "$V: R2T outside the transfer .*offset 4294967040, length 512"
io_case r2t-zero write ok "$V: R2T asking for 0 bytes"
io_case r2t-burst write ok "$V: R2T longer than MaxBurstLength"
io_case r2t-read read ok "$V: R2T for a task that is not a write"
# (the initiator can only see the excess R2Ts while the first burst is
# still being sent: under heavy load it may have sent it all, so the case
# fires up to three times)
io_case r2t-many write ok "$V: R2T beyond MaxOutstandingR2T" tries=3
# an R2T whose R2TSN skips one (an R2T lost): the connection is dropped
# and the write goes again (before, it was answered and the write
# succeeded as if nothing was missing)
io_case r2t-sn write ok "$V: R2T R2TSN 1, expected 0" sess=reconnects=1
io_case r2t-ttt write ok "$V: R2T with the reserved Target Transfer Tag"
# the same half asked for twice counts once: GOOD then is a lie, the write
# goes again on a new connection (before, it succeeded with half of it
# never sent)
io_case r2t-repeat write ok \
    "$V: GOOD status for a 131072-byte write of which the target asked for 65536 bytes" sess=reconnects=1
io_case r2t-unknown-itt write ok "$V: R2T for an unknown ITT"
# Reject, responses, sense
io_case reject-short read ok "target rejected a PDU \\(reason 0x09\\)"
io_case reject-reflected read ok "target rejected a SCSI Command \\(reason 0x09\\)"
io_case sense-long read ok "$V: SenseLength 200 in a 20-byte segment"
io_case sense-big read eio "MEDIUM ERROR: UNRECOVERED READ ERROR"
io_case logout-rsp read ok "$V: Logout Response without a Logout Request"
io_case tmf-rsp read ok "$V: unexpected Task Management Response"
io_case window-backwards read ok ""
# issue 5: slow and unhelpful targets
# cmd_timeout: ABORT TASK, then LOGICAL UNIT RESET, then a new connection
io_case no-answer read ok \
    "command 0x(28|88) \\(ITT 0x[0-9a-f]+\\) on LUN 1 aborted \\(function complete\\); sending it again" \
    opts=cmd_timeout=2 sess=timeouts=1 sess=aborts=1 sess=lu_resets=0 sess=reconnects=0
io_case abort-refused read ok "LUN 1 reset; 1 commands sent again" opts=cmd_timeout=2 \
    sess=aborts=1 sess=lu_resets=1 sess=reconnects=0
io_case reset-refused read ok \
    "answered LOGICAL UNIT RESET of LUN 1 with \"function rejected\"; reconnecting" \
    opts=cmd_timeout=2 sess=aborts=1 sess=lu_resets=1 sess=reconnects=1
io_case tmf-silent read ok "no answer to LOGICAL UNIT RESET of LUN 1 within 2 s" \
    opts=cmd_timeout=2 sess=aborts=1 sess=lu_resets=1 sess=reconnects=1
# A reset ends the commands of the other sessions too (reset_case)
reset_case reset-tas "target $BAD_IQN, lun1: SCSI status TASK ABORTED \(0x40\); retry 1 of 8 in 0 ms"
reset_case reset-silent "session [01]: ABORT TASK SET of LUN 1 ended 1 commands; sending them again"
# a target without ABORT TASK SET: the second read comes back through its
# own timeout and ABORT TASK ("task does not exist"), no reconnect
reset_case reset-set-refused \
    "answered ABORT TASK SET of LUN 1 with \"task management function not supported\"; its commands here wait for cmd_timeout" \
    aborts=2
late_reset_case
# BUSY and TASK SET FULL: retried after a pause (10 ms, doubling), one
# log line each; BUSY for ever: EIO after 8 retries (about 2.3 s)
io_case busy read ok "target $BAD_IQN, lun1: SCSI status BUSY \(0x08\); retry 3 of 8 in 40 ms" stat=retries=3
# NOT READY for an ALUA transition of 5 s, then the Unit Attention that
# ends it (as LIO sends): waited for (up to about 60 s), not failed after
# the 2.3 s that BUSY gets (before: EIO), nor at that Unit Attention
# (the retries of the transition counted against the 8 others get)
io_case alua-transition read ok \
    "target $BAD_IQN, lun1: NOT READY: LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION \\(0x04/0x0a\\); retry 9 of 66 in 1000 ms"
io_case task-set-full read ok "target $BAD_IQN, lun1: SCSI status TASK SET FULL \(0x28\); retry 3 of 8 in 40 ms" stat=retries=3
io_case busy-always read eio-always "target $BAD_IQN, lun1: SCSI status BUSY \(0x08\), still after 8 retries" \
    check=failures_logged
io_case unit-attention read ok "" stat=unit_attentions=1
io_case async-logout read ok "logged out as the target asked"
# a logout asked for within 65535 s, the Logout never answered: the wait
# for its answer is the keepalive's (noop_timeout), not the target's
# 18 hours (before, every I/O on the session waited for them)
io_case async-logout-silent read ok "" opts=noop_timeout=2 \
    "log=session 0: no answer to the Logout the target asked for; dropping the connection" \
    "log=session 0: reconnected to "
# a window the target never opens again (MaxCmdSN stays where it is, 64
# commands ahead): the command that finds it closed waits cmd_timeout,
# then the connection is dropped and the command goes on the next
# (before, it waited for ever: the pings kept the session up)
window_shut_case() {
    local case=window-shut start pid
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1,cmd_timeout=2
    bt dd if="$BAD_MNT/lun1" of=/dev/null bs=65536 count=1 iflag=direct status=none ||
        fail "$case: the read answered with the closed window failed"
    badtarget_fired "$case" || fail "$case: the target never closed the window (see $BAD_LOG)"
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=4096 count=100 iflag=direct status=none &
    pid=$!
    check_log "session 0: the CmdSN window stayed closed for 2 s while commands waited; dropping the connection" 10
    wait "$pid" || fail "$case: the reads that used up the window failed"
    slice "$BAD_LUN1" 0 409600 >"$work/want"
    assert_same_file "$work/want" "$work/got" "$case: the reads that used up the window"
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
window_shut_case
# (event 4 reaches the logout only through the renegotiation)
io_case async-renegotiate read ok "logged out as the target asked"
# the drop's Time2Wait (3 s) holds for that login instead of
# DefaultTime2Wait (2 s): the reconnect comes no sooner
io_case async-drop read ok "target announced it drops the connection \(Time2Wait 3 s\)" \
    "log=reconnected to .* after ([3-9]|[1-9][0-9]+)\.[0-9] s"
# issue 12 item 1: hole punch with an unmap granularity alignment
punch_case
# issue 12 item 6: one table decides what status and sense mean, for
# every command.  A SYNCHRONIZE CACHE refused as not supported: (16),
# then (10), each refused once; the LUN is then taken for one without a
# cache, and fsync succeeds without sending it again
# case_start CASE [OPTS]: the target of CASE started and mounted with
# sessions=1 (and OPTS); CASE_START is when.  case_end CASE: iscsifs is
# alive, LUN 0 works, the case ends.
case_start() {
    CASE_START=$(date +%s)
    badtarget_start "$1"
    bad_mount_fg "sessions=1${2:+,$2}"
}

case_end() {
    check_alive
    check_lun0 "$work"
    bad_case_end "$1" "$work" "$CASE_START"
}

# The window opens by one with each SCSI Response and each R2T; a write
# of lun1 gets its R2T 1 s late and its answer 2 s after its data
# (window-r2t): a read issued while the write took the only room waits
# for the window, and goes out once the write's R2T opened it (about 1 s).
# Before, the R2T kicked nobody: the read waited for the write's answer
# (about 3 s).
window_r2t_case() {
    local case=window-r2t writer start ms
    selected_case "$case" || return 0
    case_start "$case"
    head -c 65536 /dev/urandom >"$work/junk"
    bt dd if="$work/junk" of="$BAD_MNT/lun1" bs=65536 count=1 oflag=direct conv=notrunc \
        status=none &
    writer=$!
    wait_true 5 grep -q "its first R2T in 1 s" "$BAD_LOG" ||
        fail "$case: the write never came"
    start=$(date +%s%N)
    bt dd if="$BAD_MNT/lun0" of="$work/got" bs=4096 count=1 iflag=direct status=none ||
        fail "$case: the read of lun0 failed"
    ms=$((($(date +%s%N) - start) / 1000000))
    wait "$writer" || fail "$case: the write failed"
    cmp -s -n 4096 "$work/got" "$BAD_LUN0" || fail "$case: lun0 does not read as the target holds it"
    cmp -s -n 65536 "$work/junk" "$BAD_LUN1" || fail "$case: the write did not reach LUN 1"
    note "$case: the read took $ms ms while the write held the window"
    ((ms < 2000)) || fail "$case: the read waited $ms ms, for the write's answer"
    case_end "$case"
}
window_r2t_case

# write-lost-late: a write of lun1 costs four connections (its data taken,
# the connection closed without a status, each time), and each copy lands
# 1 s later; the target lets a login in only once the copies of the
# connection before have landed, as reinstating a session ends the old
# connection's tasks.  The write fails with EIO, but only once its session
# is back, so no copy of it can land after what comes next: the next write
# of the same block stays.  Before, it failed at the fourth loss, the next
# write went out on the other session at once, and the fourth copy landed
# over it a second later (the LUN held the failed write's data).
write_lost_late_case() {
    local case=write-lost-late
    selected_case "$case" || return 0
    case_start "$case" sessions=2
    head -c 4096 /dev/urandom >"$work/a"
    head -c 4096 /dev/urandom >"$work/b"
    if bt dd if="$work/a" of="$BAD_MNT/lun1" bs=4096 count=1 oflag=direct conv=notrunc \
        status=none 2>"$work/w.err"; then
        fail "$case: the write that cost four connections succeeded"
    fi
    grep -q "Input/output error" "$work/w.err" || fail "$case: the write failed otherwise: $(cat "$work/w.err")"
    check_log "command 0x[28]a on LUN 1 failed 4 connections; giving up once the session is back"
    bt dd if="$work/b" of="$BAD_MNT/lun1" bs=4096 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: the next write failed"
    sleep 2                    # (a copy still to land lands by then)
    assert_eq 4 "$(badtarget_count "the stale copy of WRITE ITT 0x[0-9a-f]+ landed")" \
        "$case: stale copies landed"
    slice "$BAD_LUN1" 0 4096 >"$work/got"
    assert_same_file "$work/b" "$work/got" "$case: lun1's first block after the next write"
    case_end "$case"
}
write_lost_late_case

# SIGTERM while a write is in flight (write-slow: each WRITE of lun1
# answered 2 s after its data came): the mount leaves the namespace at
# once, the open file is served until dd closes it (its write answered,
# its close's flush too), then iscsifs exits 0 with nothing mounted.
# Before, the unmount came first and aborted the FUSE connection: dd
# failed (Software caused connection abort) although its data reached
# the target.
sigterm_in_flight_case() {
    local case=write-slow writer rc
    selected_case "$case" || return 0
    case_start "$case"
    head -c 65536 /dev/urandom >"$work/junk"
    bt dd if="$work/junk" of="$BAD_MNT/lun1" bs=65536 count=1 oflag=direct conv=notrunc \
        status=none 2>"$work/w.err" &
    writer=$!
    wait_true 5 grep -q "its data came; answered in 2 s" "$BAD_LOG" || fail "$case: the write never came"
    kill -TERM "$BAD_FG_PID"
    wait "$writer" || fail "$case: the write in flight at SIGTERM failed: $(cat "$work/w.err")"
    cmp -s -n 65536 "$work/junk" "$BAD_LUN1" || fail "$case: the write did not reach LUN 1"
    wait "$BAD_FG_PID"
    rc=$?
    ((rc == 0)) || fail "$case: iscsifs exited with status $rc after SIGTERM: $(cat "$ISCSIFS_LOG")"
    ! mountpoint -q "$BAD_MNT" || fail "$case: still mounted after SIGTERM"
    _unregister_mount "$BAD_MNT"
    _unrecord_pid "$BAD_FG_PID"
    check_log "Terminated: unmounting"
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}
sigterm_in_flight_case

# not_mounted PATH: nothing is mounted on PATH (for wait_true).
not_mounted() {
    ! mountpoint -q "$1"
}

# not_running PID: process PID has ended (for wait_true).
not_running() {
    ! kill -0 "$1" 2>/dev/null
}

# SIGTERM with a file kept open: the mount leaves the namespace at once
# and the open file is still served; a second SIGTERM ends the wait for
# it, and a tmpfs mounted on the path meanwhile is left alone (iscsifs
# never unmounts by path what it took out of the namespace).  Before,
# the first SIGTERM aborted the connection (the open file's reads failed).
sigterm_held_open_case() {
    local case=sigterm-held-open fd rc
    selected_case "$case" || return 0
    badtarget_start none
    bad_mount_fg sessions=1
    exec {fd}<"$BAD_MNT/lun0"
    kill -TERM "$BAD_FG_PID"
    wait_true 5 not_mounted "$BAD_MNT" || fail "$case: still in the namespace after SIGTERM"
    check_log "Terminated: unmounting"
    _register_mount other "$BAD_MNT"
    mount -t tmpfs -o size=1m iscsifs-test "$BAD_MNT" || fail "$case: cannot mount a tmpfs"
    bt dd of="$work/got" bs=65536 count=1 iflag=direct status=none <&"$fd" ||
        fail "$case: a read of the file kept open failed after SIGTERM"
    cmp -s -n 65536 "$work/got" "$BAD_LUN0" || fail "$case: lun0 read otherwise than it holds"
    kill -TERM "$BAD_FG_PID"     # a second one: no more waiting
    wait_true 10 not_running "$BAD_FG_PID" || fail "$case: iscsifs still runs 10 s after a second SIGTERM"
    wait "$BAD_FG_PID"
    rc=$?
    exec {fd}<&-
    ((rc == 0)) || fail "$case: iscsifs exited with status $rc: $(cat "$ISCSIFS_LOG")"
    check_log "a second signal: the I/O of files of .* still open is cut off"
    mountpoint -q "$BAD_MNT" || fail "$case: the tmpfs mounted on the path afterwards was unmounted"
    umount "$BAD_MNT"
    _unregister_mount "$BAD_MNT"
    _unrecord_pid "$BAD_FG_PID"
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}
sigterm_held_open_case

# a write acknowledged, then the LUN turns write protected: fsync still
# sends SYNCHRONIZE CACHE (before, it returned 0 at once: the first
# write, maybe in the target's cache only, was never flushed)
protect_case() {
    local case=protect-after-write
    selected_case "$case" || return 0
    case_start "$case"
    bt "$PYTHON" - "$BAD_MNT/lun1" >"$work/protect.out" 2>&1 <<'EOF' || fail "$case: $(cat "$work/protect.out")"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"\x5a" * 65536, 0)
try:
    os.pwrite(fd, b"\xa5" * 65536, 65536)
    sys.exit("the second write succeeded")
except OSError as e:
    if e.errno != errno.EROFS:
        sys.exit("the second write failed with %s, not EROFS" % e)
os.fsync(fd)
EOF
    (($(badtarget_count "SYNCHRONIZE CACHE\(1[06]\) of LUN 1") > 0)) ||
        fail "$case: fsync sent no SYNCHRONIZE CACHE (target log: $(cat "$BAD_LOG"))"
    case_end "$case"
}
protect_case

# a target that answers our keepalive NOP-Outs with a Reject (it takes
# no pings): the connection stays, and I/O goes on (before, every Reject
# dropped the connection: a reconnect per keepalive, and the commands on
# the wire counted a lost connection each)
reject_ping_case() {
    local case=reject-ping
    selected_case "$case" || return 0
    case_start "$case" noop_interval=1,noop_timeout=2
    sleep 4
    (($(badtarget_count "fired $case ") >= 2)) ||
        fail "$case: fewer than 2 keepalives rejected in 4 s: $(cat "$BAD_LOG")"
    assert_eq 0 "$(session_stat 0 reconnects)" "$case: reconnects of session 0"
    check_log "session 0: target rejected a NOP-Out keepalive \\(reason 0x05; 0 more since the last line\\); the connection stays"
    check_alive
    check_lun0 "$work"
    assert_eq 0 "$(session_stat 0 reconnects)" "$case: reconnects of session 0 after I/O"
    bad_case_end "$case" "$work" "$CASE_START"
}
reject_ping_case

# the read of a read-modify-write refused with DATA PROTECT that is not
# write protection (LOGICAL UNIT ACCESS NOT AUTHORIZED): that write fails
# with EACCES, and the LUN is not taken for write protected (before, the
# write failed with EROFS and every later write too, the LUN marked
# read-only for the life of the mount)
access_denied_case() {
    local case=rmw-access-denied
    selected_case "$case" || return 0
    case_start "$case"
    head -c 4096 /dev/urandom >"$work/pattern"
    bt "$PYTHON" - "$BAD_MNT/lun1" "$work/pattern" >"$work/denied.out" 2>&1 <<'EOF' || fail "$case: $(cat "$work/denied.out")"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.pwrite(fd, b"\x5a" * 512, 100)
    sys.exit("the unaligned write succeeded")
except OSError as e:
    if e.errno != errno.EACCES:
        sys.exit("the unaligned write failed with %s, not EACCES" % e)
wp = os.getxattr(sys.argv[1], "user.iscsi.write_protected")
if wp != b"0":
    sys.exit("user.iscsi.write_protected is %r after the refused read" % wp)
with open(sys.argv[2], "rb") as f:
    os.pwrite(fd, f.read(), 8192)
os.fsync(fd)
EOF
    slice "$BAD_LUN1" 8192 4096 >"$work/after"
    assert_same_file "$work/pattern" "$work/after" "$case: lun1 on the target after the aligned write"
    check_log "target $BAD_IQN, lun1: DATA PROTECT: LOGICAL UNIT ACCESS NOT AUTHORIZED \\(0x74/0x71\\)"
    case_end "$case"
}
access_denied_case

# O_DSYNC writes on a LUN that does not take FUA: each goes without it,
# then SYNCHRONIZE CACHE, before the write returns.  fua-none: the LUN
# says so (no DPOFUA; before, the FUA bit went, and a LUN that ignores it
# acknowledged writes from its cache); fua-refused: it claims DPOFUA but
# refuses the FUA bit (before, every O_DSYNC write failed with EIO).
fua_case() {
    local case=$1 start seq
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    head -c 131072 /dev/urandom >"$work/pattern"
    bt dd if="$work/pattern" of="$BAD_MNT/lun1" bs=65536 count=2 oflag=dsync conv=notrunc \
        status=none || fail "$case: an O_DSYNC write failed"
    slice "$BAD_LUN1" 0 131072 >"$work/after"
    assert_same_file "$work/pattern" "$work/after" "$case: lun1 on the target after the write"
    # what LUN 1 got, but the refused WRITEs with FUA: each WRITE flushed
    seq=$(grep -Eo "(WRITE|SYNCHRONIZE CACHE\(1[06]\)) of LUN 1" "$BAD_LOG" | cut -d' ' -f1 | tr '\n' ' ')
    assert_eq "WRITE SYNCHRONIZE WRITE SYNCHRONIZE " "$seq" "$case: the commands of the two O_DSYNC writes"
    if [[ $case == fua-refused ]]; then
        check_log "target $BAD_IQN, lun1: WRITE with FUA refused; writes that must reach stable media are flushed with SYNCHRONIZE CACHE instead"
        assert_eq 1 "$(badtarget_count "WRITE with FUA of LUN 1")" "$case: WRITEs sent with FUA"
    else
        assert_eq 0 "$(badtarget_count "WRITE with FUA of LUN 1")" "$case: WRITEs sent with FUA"
    fi
    check_alive
    check_lun0 "$work"
    bad_case_end "$case" "$work" "$start"
}
fua_case fua-none
fua_case fua-refused
# a deferred error says a write acknowledged before did not reach the
# medium: the SYNCHRONIZE CACHE that met it is sent again, and the fsync
# fails with EIO all the same (before, it succeeded: the loss was only a
# log line)
io_case deferred-sync fsync eio \
    "target $BAD_IQN, lun1: the flush fails: a deferred error said data of an earlier write may be lost"
# the same deferred error met by the SYNCHRONIZE CACHE that stands in for
# FUA after an O_DSYNC write (the LUN does not take FUA): that write fails
# with EIO (before, the flush was sent again and the write succeeded: the
# loss waited for an fsync that an O_DSYNC writer need not call); the
# fsync of another file open meanwhile fails too
dsync_lost_case() {
    local case=deferred-sync
    selected_case "$case" || return 0
    case_start "$case"
    bt "$PYTHON" - "$BAD_MNT/lun1" >"$work/dsync.out" 2>&1 <<'EOF' || fail "$case: $(cat "$work/dsync.out")"
import errno, os, sys
path = sys.argv[1]
other = os.open(path, os.O_RDWR)
sync = os.open(path, os.O_RDWR | os.O_DSYNC)
try:
    os.pwrite(sync, os.urandom(65536), 0)
    sys.exit("the O_DSYNC write whose flush met the deferred error succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit("the O_DSYNC write failed otherwise: %s" % e)
try:
    os.fsync(other)
    sys.exit("the fsync of the file open meanwhile succeeded")
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit("the fsync of the file open meanwhile failed otherwise: %s" % e)
EOF
    check_log "target $BAD_IQN, lun1: a write that must reach stable media fails: a deferred error during it said data of an earlier write may be lost"
    case_end "$case"
}
dsync_lost_case

# the same deferred error, met by the fsync of one of two files open on
# lun1: each of them hears of it at its next fsync (EIO), once; a file
# opened after it does not.  Before, the first fsync took the news and
# the other file's returned 0 (its writer never learnt of the loss).
lost_per_file_case() {
    local case=deferred-sync
    selected_case "$case" || return 0
    case_start "$case"
    bt "$PYTHON" - "$BAD_MNT/lun1" >"$work/files.out" 2>&1 <<'EOF' || fail "$case: $(cat "$work/files.out")"
import errno, os, sys
path = sys.argv[1]
def fsync_err(fd):
    try:
        os.fsync(fd)
        return 0
    except OSError as e:
        return e.errno
a = os.open(path, os.O_RDWR)
b = os.open(path, os.O_RDWR)
os.pwrite(a, os.urandom(4096), 0)
got = [fsync_err(a), fsync_err(b), fsync_err(a), fsync_err(b)]
c = os.open(path, os.O_RDWR)
got.append(fsync_err(c))
want = [errno.EIO, errno.EIO, 0, 0, 0]
if got != want:
    sys.exit("fsync results (a, b, a again, b again, c opened after): %s, not %s" % (got, want))
EOF
    case_end "$case"
}
lost_per_file_case
io_case sync-unsupported fsync ok \
    "target $BAD_IQN, lun1: SYNCHRONIZE CACHE not supported; not sending it again" fired=2
# CHECK CONDITION with NO SENSE, or with no sense at all (a status on a
# Data-In cannot carry any): the data that came is not counted, the READ
# is sent again
io_case no-sense read ok \
    "target $BAD_IQN, lun1: NO SENSE: NO ADDITIONAL SENSE INFORMATION \(0x00/0x00\); retry 1 of 8 in 0 ms" \
    stat=retries=1
io_case datain-status-check read ok \
    "target $BAD_IQN, lun1: CHECK CONDITION without any sense data; retry 1 of 8 in 0 ms" \
    stat=retries=1
# ILLEGAL REQUEST with a sense code that has no rule of its own (26h/00h
# here) on a READ or a WRITE of the data path: EIO, the target's trouble,
# not EINVAL, which says the caller's arguments were wrong (before, the
# read and the write failed with "Invalid argument")
io_case read-illegal-other read eio \
    "target $BAD_IQN, lun1: ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST \(0x26/0x00\) \(CDB 0x(28|88)\)"
io_case write-illegal-other write eio \
    "target $BAD_IQN, lun1: ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST \(0x26/0x00\) \(CDB 0x(2a|8a)\)"
# a deferred error is an earlier command's: logged as an error, and this
# READ (which the target did not perform) is sent again
io_case deferred-error read ok \
    "error: target $BAD_IQN, lun1: deferred error of an earlier command: MEDIUM ERROR: WRITE ERROR \(0x0c/0x00\); retry 1 of 8 in 0 ms" \
    stat=retries=1
# a non-zero iSCSI response: the target failed the command; sent again,
# and EIO when it keeps failing, never a success
io_case response-failure read ok \
    "target $BAD_IQN, lun1: iSCSI response 0x01 \(target failure\); retry 1 of 8 in 0 ms" \
    stat=retries=1
io_case response-failure-always read eio-always \
    "target $BAD_IQN, lun1: iSCSI response 0x01 \(target failure\), still after 8 retries" \
    stat=retries=8
# the identity check after a reconnect reads the same table: READ
# CAPACITY(16) refused with INVALID FIELD IN CDB takes it to (10), as at
# the probe, instead of dropping the connection again and again
io_case rc16-invalid-field read ok "" opts=timeout=15 sess=reconnects=1 \
    "log=reconnected to "
# and so does READ CAPACITY(16) failing of itself (HARDWARE ERROR), which
# the probe also answers with (10) (before, the check dropped the
# connection at every reconnect, and the read failed at -o timeout)
io_case rc16-hardware-error read ok "" opts=timeout=15 sess=reconnects=1 \
    "log=reconnected to "

# issue 12: immediate data and unsolicited Data-Out (badtarget.py
# --unsolicited 32768: InitialR2T=No, ImmediateData=Yes, FirstBurstLength
# 32 KiB, the target's MaxRecvDataSegmentLength 8 KiB): a 128 KiB write
# sends 8 KiB immediate, 24 KiB in Data-Out unasked, the rest for R2Ts.
# Every write that succeeds must be on the target (io_once compares).
U=(target=--unsolicited=32768)
io_case unsol-good write ok "" "${U[@]}" sess=reconnects=0
# R2Ts for data already sent unasked: answered again, same bytes
io_case unsol-r2t-sent write ok "" "${U[@]}" sess=reconnects=0
io_case unsol-r2t-inside write ok "" "${U[@]}" sess=reconnects=0
# a GOOD status for a write whose data the target never asked for all of
# is a lie: the write is sent again on a new connection
io_case unsol-early-good write ok \
    "$V: GOOD status for a 131072-byte write of which the target asked for 32768 bytes" \
    "${U[@]}" sess=reconnects=1
# GOOD with the whole write as residual: the target took nothing; EIO
io_case unsol-early-short write eio "lun1: WRITE took 0 of 131072 bytes \(GOOD status with residual 131072\)" \
    "${U[@]}" sess=reconnects=0
# an error at once (legal: the target drops the rest): EIO, no reconnect
io_case unsol-early-error write eio "MEDIUM ERROR" "${U[@]}" sess=reconnects=0

# issue 12: StatSN gaps and repeats.  At ErrorRecoveryLevel 0 an
# initiator cannot ask for a missing status (SNACK needs level 1), and
# over TCP a status is not lost but by a lost connection: a gap is
# taken (ExpStatSN jumps), a repeat changes nothing, no reconnect.  The
# target checks the ExpStatSN of the next command.
io_case statsn-skip read ok "" sess=reconnects=0 "target_log=ExpStatSN [0-9]+ after the odd StatSN: right"
io_case statsn-repeat read ok "" sess=reconnects=0 "target_log=ExpStatSN [0-9]+ after the odd StatSN: right"

# issue 12: a Logout Response with a non-zero code (3, cleanup failed) at
# unmount: a line says so, and iscsifs still exits 0 (bad_unmount checks).
logout_case() {
    local case=logout-refused start
    selected_case "$case" || return 0
    start=$(date +%s)
    badtarget_start "$case"
    bad_mount_fg sessions=1
    check_lun0 "$work"
    bad_unmount
    badtarget_fired "$case" || fail "$case: the target never misbehaved (see $BAD_LOG)"
    check_log "session 0: logout answered with response 3 \\(cleanup failed\\)"
    check_no_sanitizer_report
    badtarget_stop
    note "case $case: ok ($(($(date +%s) - start)) s)"
    rm -f "$ISCSIFS_LOG" "$BAD_LOG" "$work"/*
}
logout_case

# issue 12, item 4: pings of the target, answered while I/O goes on, and a
# flood of them from a target that reads nothing
io_case nop-in-ping read ok "" sess=reconnects=0 check=pings_answered
nop_flood_case
# and lines about Async Messages: one a second at most
io_case async-flood read ok "target reported a SCSI asynchronous event" sess=reconnects=0 \
    check=async_lines_bounded
# issue 12, item 5: each task management request has its own ITT; a late
# answer to one that ended is ignored, not taken for the next one's
io_case tmf-late-abort read ok "LUN 1 reset; 1 commands sent again" opts=cmd_timeout=2 \
    sess=aborts=1 sess=lu_resets=1 sess=reconnects=0 \
    "log=late Task Management Response \\(ITT 0x[0-9a-f]+, \"function complete\"\\) to a request that ended; ignored" \
    "nolog=protocol error"
# the answer to ABORT TASK sent again 3000 times: each is ignored, and
# a line says so at most once a second (before, 3000 lines)
tmf_lines_bounded() {
    local n
    n=$(grep -c "late Task Management Response" "$ISCSIFS_LOG")
    ((n >= 1 && n <= 5)) || fail "$1: $n lines about late Task Management Responses (1 to 5 wanted)"
}
io_case tmf-replay read ok "" opts=cmd_timeout=2 sess=aborts=1 sess=reconnects=0 \
    "log=late Task Management Response \\(ITT 0x[0-9a-f]+, \"function complete\"\\) to a request that ended; ignored" \
    check=tmf_lines_bounded
# "task does not exist": the command never arrived (or its status is on
# its way): it is sent again, no LU reset, no reconnect
io_case tmf-no-task read ok \
    "command 0x(28|88) \\(ITT 0x[0-9a-f]+\\) on LUN 1 aborted \\(task does not exist\\); sending it again" \
    opts=cmd_timeout=2 sess=aborts=1 sess=lu_resets=0 sess=reconnects=0

# ... but a write whose status never came is not sent again on "task does
# not exist" (tmf-no-task-write: the target still holds it, and carries it
# out a second later unless an LU RESET ends it): the LUN is reset, which
# ends it for sure, then it goes again, and the next write of the same
# block stays.  Before, it went again at once, and the held copy landed a
# second later over the next write.
tmf_no_task_write_case() {
    local case=tmf-no-task-write
    selected_case "$case" || return 0
    case_start "$case" cmd_timeout=2
    head -c 4096 /dev/urandom >"$work/a"
    head -c 4096 /dev/urandom >"$work/b"
    bt dd if="$work/a" of="$BAD_MNT/lun1" bs=4096 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: the write failed"
    check_log "target answered ABORT TASK of ITT 0x[0-9a-f]+ with \"task does not exist\"; resetting LUN 1"
    bt dd if="$work/b" of="$BAD_MNT/lun1" bs=4096 count=1 oflag=direct conv=notrunc status=none ||
        fail "$case: the next write failed"
    sleep 2                    # (the held copy, were it still there, lands by then)
    (($(badtarget_count "the LU RESET ends the held WRITE") == 1)) ||
        fail "$case: the LU RESET did not end the held write: $(cat "$BAD_LOG")"
    slice "$BAD_LUN1" 0 4096 >"$work/got"
    assert_same_file "$work/b" "$work/got" "$case: lun1's first block after the next write"
    assert_eq 1 "$(session_stat 0 lu_resets)" "$case: lu_resets of session 0"
    case_end "$case"
}
tmf_no_task_write_case

# issue 14: GET LBA STATUS.  lbas_case CASE: LUN 1 is thin (LBPME=1,
# LBPRZ=1) and holds data at a few blocks, zeros elsewhere (the target
# calls a block mapped when it holds a non-zero byte).  lbas-good: the
# SEEK_DATA/SEEK_HOLE walk of lun1 shows exactly those blocks and nothing
# is logged; lbas-ua: a write of another initiator into a hole shows once
# its Unit Attention dropped the map.  Any other case (refused, or
# malformed descriptors): one log line says why, the file is all data (one
# extent, st_blocks the whole size, user.iscsi.provisioning says so), and
# reads the target's bytes.
# thin_lun1: save $BAD_LUN1 in $work/lun1-saved, then make it zeros but
# for data at a few blocks; $THIN_MAP is its map as seekmap.py prints it.
thin_lun1() {
    local size
    cp -- "$BAD_LUN1" "$work/lun1-saved"
    size=$(file_size "$BAD_LUN1")
    truncate -s 0 "$BAD_LUN1" && truncate -s "$size" "$BAD_LUN1"
    for range in "0 4096" "$((100 * 512)) 1536" "$((700 * 512)) 65536" "$((size - 512)) 512"; do
        read -r off len <<<"$range"
        head -c "$len" /dev/urandom | tr '\0' x |
            dd of="$BAD_LUN1" bs=512 oflag=seek_bytes seek="$off" conv=notrunc status=none
    done
    THIN_MAP="0 4096
$((100 * 512)) $((103 * 512))
$((700 * 512)) $((828 * 512))
$((size - 512)) $size"
}

# thin_case_start CASE: the start of a case on a thin LUN 1 (thin_lun1),
# the target started and mounted with one session; THIN_START is when it
# began.  thin_case_end CASE: lun1 reads as the target holds it, LUN 0
# works, LUN 1's data is put back, and the case ends.
thin_case_start() {
    THIN_START=$(date +%s)
    thin_lun1
    badtarget_start "$1"
    bad_mount_fg sessions=1
}

thin_case_end() {
    bt dd if="$BAD_MNT/lun1" of="$work/got" bs=1M status=none || fail "$1: reading lun1 failed"
    assert_same_file "$BAD_LUN1" "$work/got" "$1: lun1 read"
    check_lun0 "$work"
    cp -- "$work/lun1-saved" "$BAD_LUN1"
    bad_case_end "$1" "$work" "$THIN_START"
}

lbas_case() {
    local case=$1 map want size lines
    selected_case "$case" || return 0
    size=$(file_size "$BAD_LUN1")
    thin_case_start "$case"
    want=$THIN_MAP
    map=$(bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512) ||
        fail "$case: the SEEK_DATA/SEEK_HOLE walk of lun1 failed"
    if [[ $case == lbas-ua ]]; then
        # another initiator writes into a hole; its Unit Attention, met
        # by our next command, drops the map
        assert_eq "$want" "$map" "$case: the map of lun1 before"
        kill -USR1 "$BAD_PID"
        wait_true 5 badtarget_fired "$case" || fail "$case: the target did not write (see $BAD_LOG)"
        bt dd if="$BAD_MNT/lun1" of=/dev/null bs=512 count=1 status=none || fail "$case: read of lun1 failed"
        map=$(bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512)
        want="0 4096
$((100 * 512)) $((103 * 512))
$((700 * 512)) $((828 * 512))
$((2 << 20)) $(((2 << 20) + 4096))
$((size - 512)) $size"
        assert_eq "$want" "$map" "$case: the map of lun1 after the Unit Attention"
    fi
    [[ $case == lbas-ua ]] || badtarget_fired "$case" ||
        fail "$case: the target never answered GET LBA STATUS (see $BAD_LOG)"
    if [[ $case == lbas-good || $case == lbas-ua ]]; then
        assert_eq "$want" "$map" "$case: the map of lun1"
        assert_eq "thin lbprz=1" "$(getfattr --only-values -n user.iscsi.provisioning "$BAD_MNT/lun1")" \
            "$case: user.iscsi.provisioning"
        ! grep -q "GET LBA STATUS" "$ISCSIFS_LOG" || fail "$case: $(grep "GET LBA STATUS" "$ISCSIFS_LOG")"
    else
        assert_eq "0 $size" "$map" "$case: the map of lun1 (all data)"
        check_log "lun1: GET LBA STATUS (is not supported|.*: answer refused); the file reads as all data"
        # more seeks and a stat: still all data, and no second line
        bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512 >/dev/null ||
            fail "$case: the second walk failed"
        sleep 1.1
        assert_eq $((size / 512)) "$(stat -c %b "$BAD_MNT/lun1")" "$case: st_blocks of lun1"
        lines=$(grep -c "GET LBA STATUS" "$ISCSIFS_LOG")
        assert_eq 1 "$lines" "$case: lines about GET LBA STATUS in the log ($(grep "GET LBA STATUS" "$ISCSIFS_LOG"))"
        assert_eq "thin lbprz=1, all data" \
            "$(getfattr --only-values -n user.iscsi.provisioning "$BAD_MNT/lun1")" \
            "$case: user.iscsi.provisioning"
    fi
    thin_case_end "$case"
}
for c in lbas-good lbas-ua lbas-unsupported lbas-overlap lbas-order lbas-beyond lbas-zero lbas-more lbas-start; do
    lbas_case "$c"
done

# lbas-grown: LUN 1 grows by 1 MiB of data just before the first GET LBA
# STATUS is answered, and no Unit Attention says so.  That answer runs past
# the capacity we know: the capacity is read again, lun1 takes the new
# size, and its next walk shows the new data, holes kept (before, the
# answer was refused as malformed: all data at the old size for ever).
lun1_size_is() {
    [[ $(bt stat -c %s "$BAD_MNT/lun1") == "$1" ]]
}

lbas_grown_case() {
    local case=lbas-grown size map
    selected_case "$case" || return 0
    size=$(file_size "$BAD_LUN1")
    thin_case_start "$case"
    bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512 >/dev/null ||
        fail "$case: the first SEEK_DATA/SEEK_HOLE walk of lun1 failed"
    badtarget_fired "$case" || fail "$case: LUN 1 did not grow (see $BAD_LOG)"
    wait_true 10 lun1_size_is $((size + (1 << 20))) ||
        fail "$case: lun1 is $(bt stat -c %s "$BAD_MNT/lun1") bytes, not $((size + (1 << 20)))"
    map=$(bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512) ||
        fail "$case: the walk of the grown lun1 failed"
    assert_eq "${THIN_MAP% *} $((size + (1 << 20)))" "$map" "$case: the map of the grown lun1"
    assert_eq "thin lbprz=1" "$(getfattr --only-values -n user.iscsi.provisioning "$BAD_MNT/lun1")" \
        "$case: user.iscsi.provisioning"
    ! grep -q "GET LBA STATUS" "$ISCSIFS_LOG" || fail "$case: $(grep "GET LBA STATUS" "$ISCSIFS_LOG")"
    check_log "lun1: capacity changed from $size to $((size + (1 << 20))) bytes"
    thin_case_end "$case"
}
lbas_grown_case

# lbas-lag: GET LBA STATUS of LUN 1 describes its blocks as they were
# when the target started, not the writes it acknowledged since.  4 KiB
# written at 2 MiB through the mount, into a hole, must stay data for the
# SEEK_DATA/SEEK_HOLE walk, and a copy that skips holes (cp --sparse)
# must hold it (before, the first answer after the write made those
# blocks a hole in the map: the walk skipped them and the copy had zeros
# there).  The connection is dropped after the write (an event): the
# reconnect makes the map forget what the target said (a scan the file's
# open set off may have learnt it all before the write), so the target
# is surely asked, and lags, after the write; the runs we wrote are not
# forgotten with it.
lbas_lag_case() {
    local case=lbas-lag size map want at=$((2 << 20))
    selected_case "$case" || return 0
    size=$(file_size "$BAD_LUN1")
    thin_case_start "$case"
    head -c 4096 /dev/urandom >"$work/pattern"
    bt dd if="$work/pattern" of="$BAD_MNT/lun1" bs=4096 seek=$((at / 4096)) oflag=direct conv=notrunc \
        status=none || fail "$case: writing 4 KiB at $at failed"
    kill -USR1 "$BAD_PID"
    wait_true 30 grep -q "reconnected to " "$ISCSIFS_LOG" || fail "$case: no reconnect after the drop"
    bt "$PYTHON" - "$BAD_MNT/lun1" "$at" <<'PY' || fail "$case: SEEK_DATA does not find the data written"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
at = int(sys.argv[2])
for frm in (at, at - 65536):
    got = os.lseek(fd, frm, os.SEEK_DATA)
    if got != at:
        sys.exit("SEEK_DATA from %d answered %d, not %d" % (frm, got, at))
got = os.lseek(fd, at, os.SEEK_HOLE)
if got < at + 4096:
    sys.exit("SEEK_HOLE from %d answered %d, inside the data written" % (at, got))
PY
    badtarget_fired "$case" || fail "$case: no GET LBA STATUS answer lagged behind the write (see $BAD_LOG)"
    map=$(bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512) ||
        fail "$case: the SEEK_DATA/SEEK_HOLE walk of lun1 failed"
    want="0 4096
$((100 * 512)) $((103 * 512))
$((700 * 512)) $((828 * 512))
$at $((at + 4096))
$((size - 512)) $size"
    assert_eq "$want" "$map" "$case: the map of lun1 after the write"
    bt cp --sparse=always "$BAD_MNT/lun1" "$work/copy" || fail "$case: the sparse copy of lun1 failed"
    assert_same_file "$BAD_LUN1" "$work/copy" "$case: the sparse copy of lun1"
    ! grep -q "GET LBA STATUS" "$ISCSIFS_LOG" || fail "$case: $(grep "GET LBA STATUS" "$ISCSIFS_LOG")"
    thin_case_end "$case"
}
lbas_lag_case

# lbas-crumbs: every answer one block long: the scan that stat starts for
# st_blocks stops after 64 commands more than twice the extents it found,
# and no other starts (before, it went on a block at a time: 8192
# commands for this LUN, 2^40 for a big one); st_blocks stays the whole
# size, seeks still answer.
lbas_crumbs_case() {
    local case=lbas-crumbs size n
    selected_case "$case" || return 0
    size=$(file_size "$BAD_LUN1")
    thin_case_start "$case"
    for n in 1 2 3; do
        bt stat "$BAD_MNT/lun1" >/dev/null || fail "$case: stat of lun1 failed"
        sleep 1.5
    done
    badtarget_fired "$case" || fail "$case: GET LBA STATUS never answered in crumbs (see $BAD_LOG)"
    n=$(lun_stat lun1 lba_status_cmds)
    note "case $case: $n GET LBA STATUS commands"
    ((n <= 100)) || fail "$case: $n GET LBA STATUS commands for st_blocks"
    assert_eq $((size / 512)) "$(bt stat -c %b "$BAD_MNT/lun1")" "$case: st_blocks of lun1"
    bt "$PYTHON" "$top_srcdir/tests/lib/seekmap.py" "$BAD_MNT/lun1" 512 >/dev/null ||
        fail "$case: the SEEK_DATA/SEEK_HOLE walk of lun1 failed"
    thin_case_end "$case"
}
lbas_crumbs_case

((ncases > 0)) || fail "no case selected by BAD_CASES='${BAD_CASES:-}'"
note "ok: $ncases cases"
