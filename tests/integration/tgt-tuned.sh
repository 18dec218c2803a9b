#!/bin/bash
# tgt-tuned.sh: tgtd tuned to MaxRecvDataSegmentLength=4096,
# MaxBurstLength=16384, FirstBurstLength=8192, InitialR2T=Yes,
# ImmediateData=No (and 4 KiB Data-In PDUs): every write is carried by R2Ts
# and many Data-Out PDUs.  Big sequential writes, random unaligned writes up
# to 1 MiB, end-of-file rules.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm iscsi-readcapacity16 iscsi-inq

setup_config tgttuned "$TEST_TMPDIR"   # checks the negotiation with libiscsi

require_iscsifs
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$CFG_URL" "$mnt"
check_names "$mnt" "$CFG_FILE"
check_size "$mnt/$CFG_FILE" "$CFG_SIZE"
assert_same_file "$mnt/$CFG_FILE" "$CFG_BACKING" "initial content"
check_dd_roundtrip "$mnt/$CFG_FILE" "$CFG_BACKING" "$TEST_TMPDIR/work"
check_random "$mnt/$CFG_FILE" "$CFG_BACKING" "$CFG_BS" $((1 << 20))
check_edges "$mnt/$CFG_FILE" "$CFG_BS"
# the negotiated session, as the extended attributes show it
for kv in target_max_recv_data_segment_length=4096 max_burst_length=16384 \
    first_burst_length=Irrelevant initial_r2t=Yes immediate_data=No \
    header_digest=None data_digest=None auth_method=None error_recovery_level=0 \
    sessions=4; do
    got=$(t getfattr --only-values -n "user.iscsi.${kv%%=*}" "$mnt/$CFG_FILE") ||
        fail "getfattr user.iscsi.${kv%%=*} failed"
    assert_eq "${kv#*=}" "$got" "user.iscsi.${kv%%=*}"
done
unmount_iscsifs "$mnt"
note "ok"
