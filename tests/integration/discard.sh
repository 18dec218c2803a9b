#!/bin/bash
# discard.sh: fallocate on LUN files of tgtd, one thin-provisioned LUN
# (thin_provisioning=1: holes by WRITE SAME(16) with the UNMAP bit) and
# one thick LUN (no logical block provisioning).  A punched hole must
# read back as zeros with every byte around it intact, and on the thin
# LUN the backing file must lose the blocks; the thick LUN refuses a
# hole with EOPNOTSUPP and changes nothing; FALLOC_FL_ZERO_RANGE zeroes
# on both; blkdiscard on a loop device over the thin LUN file punches
# through to the target.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm fallocate losetup blkdiscard

# zero_model MODEL OFF LEN: zero bytes [OFF, OFF+LEN) of the model file.
zero_model() {
    "$PYTHON" - "$@" <<'PY' || fail "cannot update the model $1"
import sys
path, off, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'r+b') as f:
    f.seek(off)
    f.write(bytes(length))
PY
}

# expect_content FILE BACKING MODEL WHAT: the LUN file read through the
# mount and the target's backing file both equal the model.
expect_content() {
    assert_same_file "$1" "$3" "$4 (read through the mount)"
    assert_same_file "$2" "$3" "$4 (the target's backing file)"
}

# allocated_kib FILE: KiB the file really occupies.
allocated_kib() {
    du -k -- "$1" | cut -f1
}

iqn=$IQN_PREFIX:discard
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/thin.img" 32M random
make_file "$TEST_TMPDIR/thick.img" 32M random
tgt_add_lun 1 1 "$TEST_TMPDIR/thin.img"
tgtadm_ --op update --mode logicalunit --tid 1 --lun 1 --params thin_provisioning=1
tgt_add_lun 1 2 "$TEST_TMPDIR/thick.img"
tgt_allow_all 1
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$TGT_URL/$iqn" "$mnt"

for lun in 1 2; do
    file=$mnt/lun$lun
    [[ $lun == 1 ]] && backing=$TEST_TMPDIR/thin.img || backing=$TEST_TMPDIR/thick.img
    model=$TEST_TMPDIR/model$lun
    cp -- "$backing" "$model"
    expect_content "$file" "$backing" "$model" "lun$lun before"

    # Unaligned both ends, spanning whole blocks, MiBs long.
    off=1000 len=3000000
    if [[ $lun == 1 ]]; then
        before=$(allocated_kib "$backing")
        t fallocate --punch-hole --offset $off --length $len "$file" ||
            fail "punching a hole in thin lun1 failed"
        zero_model "$model" $off $len
        expect_content "$file" "$backing" "$model" "lun1 after a punched hole"
        after=$(allocated_kib "$backing")
        note "thin backing file: $before KiB allocated before the hole, $after KiB after"
        ((before - after >= 2048)) ||
            fail "the hole did not deallocate the target's blocks ($before -> $after KiB)"
    else
        out=$(t fallocate --punch-hole --offset $off --length $len "$file" 2>&1) &&
            fail "a hole in thick lun2 succeeded; it cannot read back as zeros there"
        note "thick lun2 refuses a hole: $out"
        # ... wherever it is asked (before: 0 at or past the end)
        t fallocate --punch-hole --offset $((32 * 1024 * 1024)) --length 4096 "$file" 2>/dev/null &&
            fail "a hole past the end of thick lun2 succeeded"
        expect_content "$file" "$backing" "$model" "lun2 after a refused hole"
    fi

    # Zero range: works on both; an unaligned range inside one block too.
    for range in "5000000 1234567" "7000001 100" "$((32 * 1024 * 1024 - 777)) 777"; do
        read -r off len <<<"$range"
        t fallocate --zero-range --keep-size --offset "$off" --length "$len" "$file" ||
            fail "zero range $off+$len on lun$lun failed"
        zero_model "$model" "$off" "$len"
        expect_content "$file" "$backing" "$model" "lun$lun after zeroing $off+$len"
    done

    # Past the end: the size cannot grow; with KEEP_SIZE it is clamped.
    t fallocate --offset $((32 * 1024 * 1024 - 4096)) --length 8192 "$file" 2>/dev/null &&
        fail "fallocate growing lun$lun succeeded"
    [[ $(file_size "$file") == $((32 * 1024 * 1024)) ]] || fail "lun$lun changed size"
done

# blkdiscard through a loop device: the loop driver punches holes in the file.
loopdev=$(losetup --find --show -- "$mnt/lun1") || fail "losetup on lun1 failed"
t blkdiscard --offset 16777216 --length 4194304 "$loopdev" || {
    losetup -d "$loopdev"
    fail "blkdiscard on a loop device over lun1 failed"
}
losetup -d "$loopdev"
zero_model "$TEST_TMPDIR/model1" 16777216 4194304
expect_content "$mnt/lun1" "$TEST_TMPDIR/thin.img" "$TEST_TMPDIR/model1" "lun1 after blkdiscard"

unmount_iscsifs "$mnt"
note "ok"
