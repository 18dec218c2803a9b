# shellcheck shell=bash disable=SC2034,SC2154  # (CFG_* are used by the tests; targets.sh sets the rest)
# tests/lib/checks.sh: target configurations and the checks the
# integration tests run on a mounted LUN.  Source after targets.sh.
#
# Configurations (setup_config NAME DIR) start a real target on 127.0.0.1
# with one LUN of random content and set:
#   CFG_NAME     the configuration's name
#   CFG_URL      the URL to mount (target form: iscsi://host:port/IQN)
#   CFG_FILE     the name of the checked LUN's file in the mount (lun1, lun0)
#   CFG_LUN_URL  that LUN's URL for libiscsi/qemu (iscsi://host:port/IQN/N)
#   CFG_BACKING  the target's backing file of that LUN
#   CFG_SIZE     its capacity in bytes; CFG_BS its logical block size
#   CFG_TID      tgtd target id (tgt* configurations)
#
#   tgt512    tgtd, defaults, 512-byte blocks (LUN 1, 64 MiB)
#   tgt4k     tgtd, 4096-byte blocks (LUN 1, 32 MiB)
#   tgttuned  tgtd with MaxRecvDataSegmentLength=4096, MaxBurstLength=16384,
#             FirstBurstLength=8192, InitialR2T=Yes, ImmediateData=No (and
#             MaxXmitDataSegmentLength=4096, so Data-In comes in 4 KiB
#             PDUs too) (LUN 1, 32 MiB)
#   istgt     istgt with InitialR2T Yes, ImmediateData No,
#             MaxOutstandingR2T 4, FirstBurstLength 8192, MaxBurstLength
#             16384 (LUN 0, 64 MiB)
#
# ALL_CONFIGS lists them; a test may honour $CONFIGS to run a subset.

ALL_CONFIGS="tgt512 tgt4k tgttuned istgt"

# The issue's tuned parameters, as tgtadm names and libiscsi reports them.
TUNED_PARAMS=(MaxRecvDataSegmentLength=4096 MaxBurstLength=16384
    FirstBurstLength=8192 InitialR2T=Yes ImmediateData=No)

# setup_config NAME DIR: start configuration NAME with files under DIR.
setup_config() {
    local name=$1 dir=$2 kv
    mkdir -p "$dir"
    CFG_NAME=$name
    case $name in
        tgt512 | tgt4k | tgttuned)
            skip_unless tgtd tgtadm iscsi-readcapacity16
            local iqn="$IQN_PREFIX:$name" bs=512 size=64M
            [[ $name == tgt4k ]] && bs=4096 size=32M
            [[ $name == tgttuned ]] && size=32M
            tgt_start
            CFG_TID=1
            tgt_add_target 1 "$iqn"
            CFG_BACKING="$dir/$name-lun1.img"
            make_file "$CFG_BACKING" "$size" random
            tgt_add_lun 1 1 "$CFG_BACKING" "$bs"
            tgt_allow_all 1
            if [[ $name == tgttuned ]]; then
                for kv in "${TUNED_PARAMS[@]}" MaxXmitDataSegmentLength=4096; do
                    tgt_set_param 1 "${kv%%=*}" "${kv#*=}"
                done
            fi
            CFG_URL="$TGT_URL/$iqn" CFG_FILE=lun1 CFG_LUN_URL="$TGT_URL/$iqn/1"
            CFG_BS=$bs CFG_SIZE=$(to_bytes "$size")
            ;;
        istgt)
            skip_unless istgt iscsi-readcapacity16
            CFG_BACKING="$dir/istgt-lun0.img"
            make_file "$CFG_BACKING" 64M random
            istgt_start auto "$dir/istgt" target=disk "lun0=$CFG_BACKING"
            CFG_URL="$ISTGT_URL/$ISTGT_IQN" CFG_FILE=lun0
            CFG_LUN_URL="$ISTGT_URL/$ISTGT_IQN/0"
            CFG_BS=512 CFG_SIZE=$(to_bytes 64M)
            ;;
        *) fail "setup_config: unknown configuration '$name'" ;;
    esac
    # What an independent initiator sees must be what we configured.
    assert_lun "$CFG_LUN_URL" "$CFG_SIZE" "$CFG_BS"
    if [[ $name == tgttuned ]]; then
        assert_negotiated "$CFG_LUN_URL" "${TUNED_PARAMS[@]}"
    elif [[ $name == istgt ]]; then
        assert_negotiated "$CFG_LUN_URL" InitialR2T=Yes ImmediateData=No \
            FirstBurstLength=8192 MaxBurstLength=16384
    fi
    note "configuration $name: $CFG_LUN_URL, $CFG_SIZE bytes, $CFG_BS-byte blocks"
}

# rwcheck SUBCOMMAND ARGS...: run tests/integration/rwcheck.py under t.
rwcheck() {
    t "$PYTHON" "$RWCHECK" "$@" || fail "rwcheck $1 ${2:-} failed"
}

# check_names MNT "NAME..." : the mount lists exactly these entries (any
# order), each a regular file, besides the statistics directory .iscsifs
# that the root of every mount has (README: "Statistics").
check_names() {
    local mnt=$1 want got n
    if mountpoint -q "$mnt"; then
        [[ -f $mnt/.iscsifs/stats ]] || fail "$mnt/.iscsifs/stats is missing"
    fi
    want=$(tr ' ' '\n' <<<"$2" | grep -v '^$' | sort | tr '\n' ' ')
    got=$(t ls -1A "$mnt" | grep -vx '\.iscsifs' | sort | tr '\n' ' ') || fail "ls $mnt failed"
    assert_eq "$want" "$got" "entries of $mnt"
    for n in $2; do
        [[ -f $mnt/$n ]] || fail "$mnt/$n is not a regular file"
    done
}

# check_size FILE BYTES: FILE's st_size is BYTES.
check_size() {
    assert_eq "$2" "$(file_size "$1")" "st_size of $1"
}

# check_blksize FILE BS: st_blksize of FILE is a non-zero multiple of BS.
check_blksize() {
    local b
    b=$(stat -c %o -- "$1")
    ((b > 0 && b % $2 == 0)) || fail "st_blksize of $1 is $b, not a multiple of $2"
}

# check_dd_roundtrip FILE BACKING WORK: write random data over all of FILE
# with dd (1 MiB blocks, conv=notrunc,fsync); the backing file must equal
# it; reading FILE back with dd, with 1 MiB and with odd 12800-byte blocks,
# must give it back.
check_dd_roundtrip() {
    local file=$1 backing=$2 work=$3 size
    size=$(file_size "$file")
    mkdir -p "$work"
    make_file "$work/dd-src" "$size" random
    note "dd: writing $size bytes to $file"
    t dd if="$work/dd-src" of="$file" bs=1M conv=notrunc,fsync status=none ||
        fail "dd to $file failed"
    assert_same_file "$work/dd-src" "$backing" "backing file after dd to $file"
    t dd if="$file" of="$work/dd-out" bs=1M status=none || fail "dd from $file failed"
    assert_same_file "$work/dd-src" "$work/dd-out" "dd (bs=1M) read of $file"
    t dd if="$file" of="$work/dd-out" bs=12800 status=none || fail "dd from $file failed"
    assert_same_file "$work/dd-src" "$work/dd-out" "dd (bs=12800) read of $file"
    rm -f "$work/dd-src" "$work/dd-out"
}

# check_random FILE BACKING BS [MAXLEN] [SEED]: random unaligned writes and
# reads through FILE equal the model and the backing file.
check_random() {
    note "random unaligned I/O on $1"
    rwcheck random "$1" "$2" --bs "$3" --max-len "${4:-307200}" \
        --seed "${5:-$RANDOM}" --ops "${RWCHECK_OPS:-400}"
}

# check_edges FILE BS: end-of-file, ENOSPC and truncate rules.
check_edges() {
    note "end-of-file rules on $1"
    rwcheck edges "$1" --bs "$2"
}

# check_readonly FILE BACKING: FILE is 0444 and refuses writes with EROFS.
check_readonly() {
    note "read-only rules on $1"
    rwcheck readonly "$1" "$2"
}

# check_concurrent FILE BACKING BS: concurrent writers on distinct (but
# block-sharing) ranges and concurrent readers.
check_concurrent() {
    note "concurrent writers and readers on $1"
    rwcheck concurrent "$1" "$2" --bs "$3" --writers "${WRITERS:-4}" \
        --readers "${READERS:-3}" --ops "${RWCHECK_OPS:-200}" --seed "$RANDOM"
}

# make_tree DIR: a small directory tree with files of awkward sizes,
# nested directories, a symlink and an empty file.
make_tree() {
    local d=$1 s i=0
    mkdir -p "$d/a/b/c" "$d/empty-dir"
    for s in 0 1 511 512 513 4095 4096 4097 65537 1048583 3145728; do
        i=$((i + 1))
        head -c "$s" /dev/urandom >"$d/f$i-$s"
        head -c "$((s / 3))" /dev/urandom >"$d/a/b/c/g$i"
    done
    for i in $(seq 1 50); do echo "small file $i" >"$d/a/s$i.txt"; done
    ln -s ../f2-1 "$d/a/link"
    cp -a "$top_srcdir/tests" "$d/copy-of-tests"
}

# check_ext4 FILE WORK: mkfs.ext4 on FILE, mount -o loop, copy a tree,
# unmount, e2fsck -fn must be clean, mount again and compare the tree.
check_ext4() {
    local file=$1 work=$2 out
    skip_unless mkfs.ext4 e2fsck losetup
    mkdir -p "$work"
    make_tree "$work/tree"
    note "mkfs.ext4 on $file"
    out=$(t mkfs.ext4 -q -F "$file" 2>&1) || fail "mkfs.ext4 $file: $out"
    mount_loop "$file" "$work/m"
    t cp -a "$work/tree" "$work/m/" || fail "copying a tree to ext4 on $file failed"
    t sync -f "$work/m" || fail "sync of ext4 on $file failed"
    umount_loop "$work/m"
    out=$(t e2fsck -fn "$file" 2>&1) || fail "e2fsck -fn $file is not clean: $out"
    note "e2fsck -fn clean"
    mount_loop "$file" "$work/m" -o ro
    out=$(t diff -r --no-dereference "$work/tree" "$work/m/tree" 2>&1) ||
        fail "tree differs after remount: $out"
    umount_loop "$work/m"
    note "ext4 on $file: tree intact after remount"
}

# check_qemu_img FILE LUN_URL BACKING WORK: what the mount reads equals
# what qemu-img (libiscsi, a second initiator) reads of the same LUN, in
# both directions of writing.
check_qemu_img() {
    local file=$1 url=$2 backing=$3 work=$4 out
    skip_unless qemu-img qemu-io
    mkdir -p "$work"
    # Writes through the mount at unaligned offsets ...
    make_file "$work/chunk" 300007 random
    t dd if="$work/chunk" of="$file" bs=65536 oflag=seek_bytes seek=1234567 \
        conv=notrunc,fsync status=none || fail "dd to $file failed"
    t dd if="$work/chunk" of="$file" bs=4096 oflag=seek_bytes \
        seek=$(($(file_size "$file") - 300007)) conv=notrunc,fsync status=none ||
        fail "dd to the end of $file failed"
    # ... are what qemu-img reads.
    note "qemu-img convert $url"
    out=$(t qemu-img convert -f raw -O raw "$url" "$work/q.img" 2>&1) ||
        fail "qemu-img convert $url: $out"
    assert_same_file "$work/q.img" "$file" "qemu-img convert of $url vs the mount"
    assert_same_file "$work/q.img" "$backing" "qemu-img convert of $url vs backing file"
    # Writes by qemu-io are what the mount reads (no cache by default).
    out=$(t qemu-io -f raw -c 'write -P 0x5a 777 99999' -c 'flush' "$url" 2>&1) ||
        fail "qemu-io write to $url: $out"
    head -c 99999 /dev/zero | tr '\0' '\132' >"$work/pattern"
    t dd if="$file" of="$work/readback" bs=4096 iflag=skip_bytes,count_bytes \
        skip=777 count=99999 status=none || fail "dd from $file failed"
    assert_same_file "$work/pattern" "$work/readback" "mount read of qemu-io's write"
    out=$(t qemu-img compare -f raw -F raw "$url" "$file" 2>&1) ||
        fail "qemu-img compare $url $file: $out"
    rm -f "$work/q.img"
}

# check_fio_verify FILE: 8 jobs of 4 KiB random writes on distinct 2 MiB
# regions, each verified (crc32c) after writing.
check_fio_verify() {
    note "fio --verify=crc32c --numjobs=8 on $1"
    t fio --name=verify --filename="$1" --direct=1 --ioengine=psync --rw=randwrite \
        --bs=4k --size=2M --offset_increment=2M --numjobs=8 --verify=crc32c \
        --do_verify=1 --verify_fatal=1 --verify_state_save=0 --group_reporting \
        --output="$TEST_TMPDIR/fio.out" ||
        { cat "$TEST_TMPDIR/fio.out" >&2; fail "fio --verify on $1 failed"; }
    grep -q "err= 0" "$TEST_TMPDIR/fio.out" ||
        { cat "$TEST_TMPDIR/fio.out" >&2; fail "fio reported errors on $1"; }
}
