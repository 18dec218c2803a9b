#!/bin/bash
# tgt-tuned.sh: tgtd tuned to MaxRecvDataSegmentLength=4096,
# MaxBurstLength=16384, FirstBurstLength=8192, InitialR2T=Yes,
# ImmediateData=No (and 4 KiB Data-In PDUs): every write is carried by R2Ts
# and many Data-Out PDUs.  Big sequential writes, random unaligned writes up
# to 1 MiB, end-of-file rules.  Then a target whose MaxBurstLength is below
# our FirstBurstLength (tgtd answers FirstBurstLength above it): it mounts,
# and writes carry immediate, unsolicited and solicited data.
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

# A second target on the same tgtd, with MaxBurstLength=4096 below our
# FirstBurstLength offer, InitialR2T=No and ImmediateData=Yes: tgtd answers
# FirstBurstLength=65536, above MaxBurstLength, which RFC 7143 13.14
# forbids.  The mount takes the values as negotiated, with a warning, and
# its writes (immediate and unsolicited data, then R2Ts of 4 KiB) reach the
# target (before, every login failed: "target negotiated FirstBurstLength=
# 65536 above MaxBurstLength=4096").
iqn2=$IQN_PREFIX:tuned-burst
tgt_add_target 2 "$iqn2"
make_file "$TEST_TMPDIR/burst.img" 16M random
tgt_add_lun 2 1 "$TEST_TMPDIR/burst.img"
tgt_allow_all 2
tgt_set_param 2 MaxBurstLength 4096
tgt_set_param 2 InitialR2T No
tgt_set_param 2 ImmediateData Yes
mount_iscsifs "$TGT_URL/$iqn2" "$mnt"
grep -q "warning: target negotiated FirstBurstLength=65536 above MaxBurstLength=4096 (RFC 7143 13.14); using them as negotiated" "$ISCSIFS_LOG" ||
    fail "no warning of FirstBurstLength above MaxBurstLength: $(cat "$ISCSIFS_LOG")"
for kv in max_burst_length=4096 first_burst_length=65536 initial_r2t=No immediate_data=Yes; do
    got=$(t getfattr --only-values -n "user.iscsi.${kv%%=*}" "$mnt/lun1") ||
        fail "getfattr user.iscsi.${kv%%=*} failed"
    assert_eq "${kv#*=}" "$got" "MaxBurstLength 4096 target: user.iscsi.${kv%%=*}"
done
check_dd_roundtrip "$mnt/lun1" "$TEST_TMPDIR/burst.img" "$TEST_TMPDIR/work2"
check_random "$mnt/lun1" "$TEST_TMPDIR/burst.img" 512 $((1 << 20))
unmount_iscsifs "$mnt"
note "ok"
