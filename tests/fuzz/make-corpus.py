#!/usr/bin/env python3
"""make-corpus.py: write the seed corpus of the libFuzzer harnesses.

Each harness gets a few small, valid inputs in tests/fuzz/corpus/<harness>/
(formats are described at the top of each tests/fuzz/fuzz_<harness>.c), so
that fuzzing starts from the shapes a real target sends.  The files are
committed; run this again after changing an input format:

    python3 tests/fuzz/make-corpus.py [CORPUS_DIR]

It rewrites only the files it generates, so regression seeds added by hand
(named regress-*) stay.
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- wire helpers -------------------------------------------------------

LOGIN_ITT = 0x10000000


def crc32c(data):
    """CRC32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def be24(v):
    return struct.pack(">I", v)[1:]


def bhs(opcode, flags=0, b2=0, b3=0, ahs_len=0, data_len=0, lun=b"\0" * 8,
        itt=0xFFFFFFFF, rest=b""):
    """A 48-byte BHS: bytes 0-19 from the arguments, 20-47 from @rest."""
    h = bytes([opcode, flags, b2, b3, ahs_len]) + be24(data_len) + lun
    h += struct.pack(">I", itt)
    rest = rest.ljust(28, b"\0")
    assert len(rest) == 28
    return h + rest


def pad(data):
    return data + b"\0" * (-len(data) % 4)


def pdu(header, data=b"", header_digest=False, data_digest=False):
    """A whole PDU: header (data length patched in), digests, padding."""
    header = header[:5] + be24(len(data)) + header[8:]
    out = header
    if header_digest:
        out += struct.pack("<I", crc32c(header))
    if data:
        out += pad(data)
        if data_digest:
            out += struct.pack("<I", crc32c(pad(data)))
    return out


def text(*pairs):
    return b"".join(k.encode() + b"=" + v.encode() + b"\0" for k, v in pairs)


def sn3(statsn, exp_cmdsn, max_cmdsn):
    return struct.pack(">III", statsn, exp_cmdsn, max_cmdsn)


# ---- target PDUs ----------------------------------------------------------

def login_rsp(csg, nsg, transit, data, statsn=0, cont=False, status=(0, 0),
              tsih=0, itt=LOGIN_ITT):
    flags = (csg << 2) | (nsg if transit else 0)
    if transit:
        flags |= 0x80
    if cont:
        flags |= 0x40
    rest = struct.pack(">I", 0) + sn3(statsn, 1, 1) + bytes(status)
    isid_tsih = bytes([0x80, 0x12, 0x34, 0x56, 0x78, 0x00]) + struct.pack(">H", tsih)
    h = bytes([0x23, flags, 0, 0, 0]) + be24(0) + isid_tsih + struct.pack(">I", itt)
    return pdu(h + rest.ljust(28, b"\0"), data)


def scsi_rsp(itt, status=0, response=0, flags=0x80, statsn=1, sense=b"",
             residual=0, **kw):
    rest = struct.pack(">I", 0) + sn3(statsn, 2, 64) + struct.pack(">III", 0, 0, residual)
    data = struct.pack(">H", len(sense)) + sense if sense else b""
    return pdu(bhs(0x21, flags, response, status, itt=itt, rest=rest), data, **kw)


def data_in(itt, data, offset=0, datasn=0, final=True, status=None, statsn=1, **kw):
    flags = 0x80 if final else 0
    st = 0
    if status is not None:
        flags |= 0x01
        st = status
    rest = struct.pack(">I", 0xFFFFFFFF) + sn3(statsn, 2, 64) + \
        struct.pack(">III", datasn, offset, 0)
    return pdu(bhs(0x25, flags, 0, st, itt=itt, rest=rest), data, **kw)


def r2t(itt, offset, length, r2tsn=0, ttt=0x100, statsn=1, **kw):
    rest = struct.pack(">I", ttt) + sn3(statsn, 2, 64) + \
        struct.pack(">III", r2tsn, offset, length)
    return pdu(bhs(0x31, 0x80, itt=itt, rest=rest), b"", **kw)


def nop_in(itt=0xFFFFFFFF, ttt=0xFFFFFFFF, statsn=1, data=b"", **kw):
    rest = struct.pack(">I", ttt) + sn3(statsn, 2, 64)
    return pdu(bhs(0x20, 0x80, itt=itt, rest=rest), data, **kw)


def async_msg(event, statsn=1, **kw):
    rest = struct.pack(">I", 0) + sn3(statsn, 2, 64) + bytes([event, 0]) + \
        struct.pack(">HHH", 0, 0, 5)
    return pdu(bhs(0x32, 0x80, rest=rest), b"", **kw)


def reject(reason, rejected, statsn=1, **kw):
    rest = struct.pack(">I", 0) + sn3(statsn, 2, 64) + struct.pack(">I", 0)
    return pdu(bhs(0x3F, 0x80, reason, rest=rest), rejected, **kw)


def logout_rsp(itt=0xFFFFFFFE, response=0, statsn=1, **kw):
    rest = struct.pack(">I", 0) + sn3(statsn, 2, 64)
    return pdu(bhs(0x26, 0x80, response, itt=itt, rest=rest), b"", **kw)


def tmf_rsp(itt, response=0, statsn=1, **kw):
    rest = struct.pack(">I", 0) + sn3(statsn, 2, 64)
    return pdu(bhs(0x22, 0x80, response, itt=itt, rest=rest), b"", **kw)


def text_rsp(data, itt=1, statsn=1, **kw):
    rest = struct.pack(">I", 0xFFFFFFFF) + sn3(statsn, 2, 64)
    return pdu(bhs(0x24, 0x80, itt=itt, rest=rest), data, **kw)


# ---- SCSI data ----------------------------------------------------------------

def fixed_sense(key, asc, ascq, info=None, code=0x70):
    s = bytearray(18)
    s[0] = code | (0x80 if info is not None else 0)
    s[2] = key
    if info is not None:
        s[3:7] = struct.pack(">I", info)
    s[7] = 10
    s[12] = asc
    s[13] = ascq
    return bytes(s)


def descriptor_sense(key, asc, ascq, info=None, code=0x72):
    descs = b""
    if info is not None:
        descs = bytes([0x00, 0x0A, 0x80, 0]) + struct.pack(">Q", info)
    return bytes([code, key, asc, ascq, 0, 0, 0, len(descs)]) + descs


def inquiry_std():
    d = bytearray(36)
    d[0] = 0x00
    d[2] = 0x06
    d[3] = 0x02
    d[4] = 31
    d[5] = 0x10
    d[7] = 0x02
    d[8:16] = b"LIO-ORG "
    d[16:32] = b"disk0           "
    d[32:36] = b"4.0 "
    return bytes(d)


def vpd(page, body):
    return bytes([0, page]) + struct.pack(">H", len(body)) + body


def vpd83():
    naa = bytes([0x01, 0x03, 0, 16]) + bytes.fromhex("6001405abcdef0123456789abcdef012")
    t10 = bytes([0x02, 0x01, 0, 24]) + b"LIO-ORG disk0-uuid-12345"
    name = bytes([0x03, 0x08, 0, 32]) + b"iqn.2003-01.org.example:t1".ljust(32, b"\0")
    port = bytes([0x01, 0x14, 0, 4]) + struct.pack(">I", 1)
    return vpd(0x83, naa + t10 + name + port)


def vpd_b0():
    body = bytearray(60)
    body[2:4] = struct.pack(">H", 8)          # optimal granularity (byte 6)
    body[4:8] = struct.pack(">I", 8192)       # max transfer (byte 8)
    body[8:12] = struct.pack(">I", 128)       # optimal transfer (byte 12)
    body[16:20] = struct.pack(">I", 0xFFFFFFFF)  # max unmap LBA count (byte 20)
    body[20:24] = struct.pack(">I", 1)
    body[24:28] = struct.pack(">I", 8)
    body[28:32] = struct.pack(">I", 0x80000000)
    body[32:40] = struct.pack(">Q", 65536)
    return vpd(0xB0, bytes(body))


def rc16(last_lba, block_size, lbppbe=0, lbpme=True):
    d = struct.pack(">QI", last_lba, block_size) + bytes([0, lbppbe])
    d += struct.pack(">H", (0x8000 if lbpme else 0) | 0x4000)
    return d.ljust(32, b"\0")


def report_luns(luns):
    body = b"".join(struct.pack(">Q", l) for l in luns)
    return struct.pack(">I", len(body)) + b"\0" * 4 + body


# ---- corpora ------------------------------------------------------------------

def corpus_pdu():
    login = login_rsp(0, 1, True, text(("AuthMethod", "None"), ("TargetPortalGroupTag", "1")))
    rsp = scsi_rsp(0x1000, status=2, sense=fixed_sense(5, 0x24, 0))
    din = data_in(0x1000, b"\xab" * 512, status=0)
    yield "login-rsp", bytes([0x08]) + login
    yield "scsi-rsp-sense", bytes([0x08]) + rsp
    yield "data-in", bytes([0x08]) + din
    yield "r2t-nop-async", bytes([0x08]) + r2t(0x2001, 0, 4096) + nop_in(ttt=7) + async_msg(0)
    yield "reject", bytes([0x08]) + reject(0x09, bhs(0x01, 0x80, itt=0x1000))
    yield "digests", bytes([0x0B]) + pdu(bhs(0x25, 0x81, rest=b""), b"\x11" * 100, True, True) + \
        scsi_rsp(0x3002, header_digest=True, data_digest=True) + \
        nop_in(itt=0xFFFFFFFD, header_digest=True, data_digest=True, data=b"ping")
    ahs = bytes([0x21, 0x80, 0, 0, 2]) + be24(0) + bytes(40)
    yield "ahs", bytes([0x0C]) + ahs + bytes(8)
    yield "discard", bytes([0x28]) + text_rsp(text(("TargetName", "iqn.x"), ("TargetAddress", "10.0.0.1:3260,1")))


def corpus_pdu_rx():
    # fuzz_pdu_rx.c: the flags byte of fuzz_pdu (bit 6: the two-step
    # receive), then the seed of the pieces, then the same streams
    for name, data in corpus_pdu():
        two_step = 0x40 if name in ("login-rsp", "ahs") else 0
        yield name, bytes([data[0] | two_step, 0x5D]) + data[1:]
    big = data_in(0x1000, bytes(range(256)) * 32, status=0, header_digest=True, data_digest=True)
    yield "big-data-in", bytes([0x0F | 0x20, 0x11]) + big + big


OPER_ANSWER = text(
    ("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxConnections", "1"),
    ("InitialR2T", "Yes"), ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"), ("MaxBurstLength", "1048576"),
    ("FirstBurstLength", "65536"), ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"), ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"))
SEC_ANSWER = text(("TargetAlias", "fuzz target"), ("TargetPortalGroupTag", "1"),
                  ("AuthMethod", "None"))


def record(stage, data):
    return bytes([stage]) + struct.pack(">H", len(data)) + data


def corpus_text():
    yield "normal", bytes([0x20]) + record(0, SEC_ANSWER) + record(1, OPER_ANSWER)
    crc = OPER_ANSWER.replace(b"HeaderDigest=None", b"HeaderDigest=CRC32C") \
                     .replace(b"DataDigest=None", b"DataDigest=CRC32C")
    yield "digests", bytes([0x3A]) + record(0, SEC_ANSWER) + record(1, crc)
    yield "discovery", bytes([0x01]) + record(0, text(("AuthMethod", "None"))) + \
        record(1, text(("HeaderDigest", "None"), ("DataDigest", "None"),
                       ("MaxRecvDataSegmentLength", "8192"))) + \
        record(3, text(("TargetName", "iqn.2003-01.org.example:t1"),
                       ("TargetAddress", "192.0.2.1:3260,1"),
                       ("TargetAddress", "[2001:db8::1]:3260,2")))
    target_offers = text(("MaxBurstLength", "0x10000"), ("IFMarker", "No"),
                         ("OFMarkInt", "1~65535"), ("X-com.example.vendor", "1"),
                         ("TaskReporting", "RFC3720,ResponseFence"),
                         ("iSCSIProtocolLevel", "2"), ("DataPDUInOrder", "No"))
    yield "target-offers", bytes([0x60]) + record(0, SEC_ANSWER) + \
        record(1, target_offers) + record(1, OPER_ANSWER.replace(b"MaxBurstLength=1048576\0", b""))
    yield "reject-answers", bytes([0x00]) + record(0, SEC_ANSWER) + \
        record(1, text(("HeaderDigest", "NotUnderstood"), ("DataDigest", "Reject"),
                       ("MaxConnections", "Irrelevant"))) + record(1, OPER_ANSWER)
    # a value of 8200 bytes: over the 8191 a key=value pair may have
    yield "long-value", bytes([0x20]) + record(0, SEC_ANSWER) + \
        record(1, text(("X-com.example.blob", "v" * 8200)))
    yield "chap-skipped", bytes([0x00]) + record(0, text(("AuthMethod", "None"),
                                                        ("CHAP_A", "5"), ("CHAP_I", "1"),
                                                        ("CHAP_C", "0x0102030405")))


def corpus_login():
    sec = login_rsp(0, 1, True, SEC_ANSWER, tsih=0)
    oper = login_rsp(1, 3, True, OPER_ANSWER, statsn=1, tsih=5)
    yield "normal", bytes([0x20]) + sec + oper
    # the target skips the operational stage
    yield "skip-oper", bytes([0x00]) + login_rsp(0, 3, True, SEC_ANSWER, tsih=5)
    # a response continued over two PDUs
    half = len(OPER_ANSWER) // 2
    yield "continued", bytes([0x20]) + sec + \
        login_rsp(1, 0, False, OPER_ANSWER[:half], statsn=1, cont=True) + \
        login_rsp(1, 3, True, OPER_ANSWER[half:], statsn=2, tsih=5)
    # one exchange in the operational stage without T, then with T
    yield "two-exchanges", bytes([0x3A]) + sec + \
        login_rsp(1, 0, False, text(("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"),
                                    ("MaxConnections", "1")), statsn=1) + \
        login_rsp(1, 3, True, OPER_ANSWER[OPER_ANSWER.index(b"InitialR2T"):], statsn=2, tsih=5)
    # a value of 9000 bytes across a continued response
    big = text(("X-com.example.blob", "w" * 9000))
    yield "long-value", bytes([0x20]) + sec + \
        login_rsp(1, 0, False, big[:8192], statsn=1, cont=True) + \
        login_rsp(1, 3, True, big[8192:], statsn=2, tsih=5)
    # a target that never lets the login end
    yield "endless", bytes([0x00]) + sec + b"".join(
        login_rsp(1, 0, False, b"", statsn=1 + i) for i in range(33))
    yield "not-found", bytes([0x00]) + login_rsp(0, 0, False, b"", status=(2, 3))
    yield "redirect", bytes([0x00]) + login_rsp(0, 0, False, text(("TargetAddress", "192.0.2.9:3260,1")),
                                                 status=(1, 1))
    yield "discovery", bytes([0x01]) + login_rsp(0, 1, True, text(("AuthMethod", "None"))) + \
        login_rsp(1, 3, True, text(("HeaderDigest", "None"), ("DataDigest", "None"),
                                   ("MaxRecvDataSegmentLength", "65536")), statsn=1, tsih=3)


def corpus_sense():
    yield "fixed-illegal", bytes([160, 0x02]) + fixed_sense(5, 0x24, 0)
    yield "fixed-medium-info", bytes([160, 0x02]) + fixed_sense(3, 0x11, 0, info=0x1234)
    yield "fixed-deferred", bytes([40, 0x02]) + fixed_sense(6, 0x29, 0, code=0x71)
    yield "desc-info", bytes([160, 0x02]) + descriptor_sense(3, 0x11, 0, info=0x123456789)
    yield "desc-deferred", bytes([10, 0x08]) + descriptor_sense(7, 0x27, 7, code=0x73)
    yield "not-ready", bytes([160, 0x28]) + fixed_sense(2, 0x3a, 0)


def corpus_scsi():
    yield "report-luns", bytes([16]) + report_luns([0, 1 << 48, 0x4123 << 48])
    yield "inquiry", bytes([64]) + inquiry_std()
    yield "vpd00", bytes([64]) + vpd(0x00, bytes([0x00, 0x80, 0x83, 0xB0, 0xB2]))
    yield "vpd80", bytes([64]) + vpd(0x80, b"  beaf1234567890  ")
    yield "vpd83", bytes([80]) + vpd83()
    yield "vpdb0", bytes([64]) + vpd_b0()
    yield "vpdb2", bytes([64]) + vpd(0xB2, bytes([0, 0xE4, 0x02, 0]))
    yield "rc10", bytes([8]) + struct.pack(">II", 0x1FFFFF, 512)
    yield "rc10-big", bytes([8]) + struct.pack(">II", 0xFFFFFFFF, 4096)
    yield "rc16", bytes([8]) + rc16(0x3FFFFFFFF, 4096, lbppbe=3)
    yield "mode6", bytes([8]) + bytes([3, 0, 0x80, 0])
    yield "mode10", bytes([8]) + struct.pack(">H", 6) + bytes([0, 0x80, 0, 0, 0, 0])


def lba_status_seed(start, capacity, alloc, room, descs, declared=None):
    """A fuzz_lbastatus input: the question, then the answer with
    @descs (LBA, blocks, status) and PARAMETER DATA LENGTH for @declared
    descriptors (default: all)."""
    n = len(descs) if declared is None else declared
    body = b"".join(struct.pack(">QIB3x", lba, blocks, st) for lba, blocks, st in descs)
    return struct.pack(">QQHB", start, capacity, alloc, room) + struct.pack(">I4x", 4 + 16 * n) + body


def corpus_lbastatus():
    yield "tgtd-thin", lba_status_seed(0, 131072, 4104, 255, [
        (0, 8, 0), (8, 2392, 1), (2400, 24, 0), (2424, 128640, 1), (131064, 8, 0)])
    yield "from-middle", lba_status_seed(100, 1000, 4104, 255, [(100, 50, 2), (150, 850, 0)])
    yield "truncated", lba_status_seed(0, 1000, 40, 255, [(0, 10, 1), (10, 10, 0)], declared=5)
    yield "overlap", lba_status_seed(0, 1000, 4104, 255, [(0, 10, 0), (9, 10, 1)])
    yield "gap", lba_status_seed(0, 1000, 4104, 255, [(0, 10, 0), (11, 10, 1)])
    yield "beyond", lba_status_seed(0, 1000, 4104, 255, [(0, 990, 0), (990, 20, 1)])
    yield "zero", lba_status_seed(0, 1000, 4104, 255, [(0, 10, 0), (10, 0, 1), (10, 5, 1)])
    yield "more", lba_status_seed(0, 1000, 4104, 255, [(0, 10, 0), (10, 10, 1)], declared=1)


def corpus_session():
    # task indexes (replaced by their ITTs): 0 READ 4096, 1 WRITE 8192,
    # 2 READ 512, 3 no data, 4 WRITE 65536
    plain = bytes([0x0C, 0x1C, 0x24])   # ImmediateData, InitialR2T; 8K, 4 R2Ts; bursts 8K
    pdus = data_in(0, b"\x5a" * 4096, status=0, statsn=1)
    pdus += r2t(1, 4096, 4096, statsn=2)
    pdus += scsi_rsp(1, statsn=2)
    pdus += data_in(2, b"\x11" * 256, final=False, statsn=3)
    pdus += data_in(2, b"\x22" * 256, offset=256, datasn=1, statsn=3)
    pdus += scsi_rsp(2, statsn=3)
    pdus += scsi_rsp(3, status=2, sense=fixed_sense(6, 0x29, 0), statsn=4)
    pdus += nop_in(ttt=0x55, statsn=5)
    pdus += r2t(4, 4096, 8192, statsn=5)
    pdus += r2t(4, 12288, 8192, r2tsn=1, statsn=5)
    pdus += async_msg(0, statsn=5)
    yield "all-tasks", plain + pdus
    # the same with digests, framed by the harness (so no digests here)
    yield "digests", bytes([0x0F, 0x1C, 0x24]) + pdus
    # fill mode: Data-In of 4096 bytes of which 64 come from the input
    fill_din = bhs(0x25, 0x81, 0, 0, data_len=4096, itt=0,
                   rest=struct.pack(">I", 0xFFFFFFFF) + sn3(1, 2, 64) + struct.pack(">III", 0, 0, 0))
    yield "fill", bytes([0x24, 0x04, 0x24]) + fill_din + b"\x77" * 64 + scsi_rsp(3, statsn=2)
    # unsolicited data: InitialR2T=No
    yield "unsolicited", bytes([0x04, 0x0C, 0x2C]) + r2t(4, 32768, 8192) + scsi_rsp(4) + \
        scsi_rsp(1, status=0, flags=0x82, residual=100)
    yield "reject", bytes([0x04, 0x04, 0x24]) + reject(0x09, bhs(0x01, 0x80, itt=0))
    yield "logout", bytes([0x04, 0x04, 0x24]) + scsi_rsp(3) + logout_rsp()
    yield "async-drop", bytes([0x04, 0x04, 0x24]) + async_msg(2)
    # regression (stop_session() lost a task): the SCSI Response of task 4
    # arrives while the TX thread still has 64 Data-Outs of 512 bytes to
    # send for its R2Ts, then the connection ends; done() was never called
    yield "regress-answered-then-dropped", bytes([0x0C, 0x18, 0x24]) + \
        r2t(4, 8192, 8192) + r2t(4, 16384, 8192, r2tsn=1) + \
        r2t(4, 24576, 8192, r2tsn=2) + r2t(4, 32768, 8192, r2tsn=3) + scsi_rsp(4)
    # logout mode: a logout while tasks 1, 2 and 4 are outstanding, and
    # one the target never answers
    yield "logout-mode", bytes([0x4C, 0x1C, 0x24]) + data_in(0, b"\x33" * 4096, status=0) + \
        scsi_rsp(3, statsn=2) + logout_rsp(statsn=3) + scsi_rsp(2, statsn=4)
    yield "logout-mode-digests", bytes([0x4F, 0x1C, 0x24]) + scsi_rsp(3) + logout_rsp(statsn=2)
    yield "logout-unanswered", bytes([0x4C, 0x1C, 0x24]) + scsi_rsp(3) + nop_in(ttt=9)
    # CmdSN window: closed (nothing submitted), then room for two commands
    yield "window-closed", bytes([0x0C, 0x3C, 0x24]) + nop_in(statsn=0)
    yield "window-two", bytes([0x0C, 0x7C, 0x24]) + data_in(0, b"\x44" * 4096, status=0) + \
        scsi_rsp(1, statsn=2)
    # tick mode (byte 3 bit 0): the tasks time out at once; ITTs 5, 6, ...
    # are the session's task management requests in order.  ABORT TASK
    # complete; rejected, then the LU RESET complete; "task does not
    # exist"; an answer to the abort after the reset went
    tick = bytes([0x8C, 0x1C, 0x24, 0x01])
    yield "tick-abort", tick + scsi_rsp(3) + tmf_rsp(5, statsn=2) + scsi_rsp(2, statsn=3)
    yield "tick-reset", tick + scsi_rsp(3) + tmf_rsp(5, 255, statsn=2) + tmf_rsp(6, statsn=3)
    yield "tick-no-task", tick + tmf_rsp(5, 1) + tmf_rsp(6, 1, statsn=2)
    yield "tick-late", tick + scsi_rsp(3) + tmf_rsp(5, 255, statsn=2) + tmf_rsp(6, statsn=3) + \
        tmf_rsp(5, statsn=4)
    # verify mode (byte 3 bit 1): the identity check of LUN 0 (serial
    # SERIAL01, the device id of vpd83(), 8192 blocks of 512 bytes) and
    # LUN 1 (4096-byte blocks, 1024 of them); ITT k is its k-th command
    verify = bytes([0x8C, 0x1C, 0x24, 0x02])
    yield "verify-same", verify + data_in(0, vpd(0x80, b"SERIAL01"), status=0) + \
        data_in(1, vpd83(), status=0, statsn=2) + data_in(2, rc16(8191, 512), status=0, statsn=3) + \
        data_in(3, rc16(1023, 4096), status=0, statsn=4)
    yield "verify-other", verify + data_in(0, vpd(0x80, b"OTHER..."), status=0) + \
        scsi_rsp(1, status=2, sense=fixed_sense(6, 0x29, 0), statsn=2) + \
        scsi_rsp(2, status=2, sense=fixed_sense(5, 0x20, 0), statsn=3) + \
        data_in(3, struct.pack(">II", 8191, 512), status=0, statsn=4)
    yield "verify-busy-tmf", verify + scsi_rsp(0, status=8) + tmf_rsp(5, 1, statsn=2)
    # raw mode: the bytes go on the wire as they are (ITT of task 3)
    yield "raw", bytes([0x14, 0x04, 0x24]) + scsi_rsp(0x4003) + nop_in(itt=0xFFFFFFFD)


def corpus_discovery():
    yield "two-targets", text(
        ("TargetName", "iqn.2003-01.org.example:disk1"),
        ("TargetAddress", "192.0.2.1:3260,1"),
        ("TargetAddress", "[2001:db8::1]:3261,2"),
        ("TargetName", "iqn.2003-01.org.example:disk2"),
        ("TargetAlias", "second"),
        ("TargetAddress", "portal.example.com"))
    yield "no-address", text(("TargetName", "eui.0123456789abcdef"))
    yield "unterminated", text(("TargetName", "iqn.x"))[:-1]
    yield "bad-names", text(("TargetName", "a/b")) + text(("TargetName", ".."))
    yield "many-portals", text(("TargetName", "iqn.y")) + b"".join(
        text(("TargetAddress", "10.0.0.%d:%d,%d" % (i, 3260 + i, i))) for i in range(10))


CORPORA = {
    "pdu": corpus_pdu,
    "pdu_rx": corpus_pdu_rx,
    "text": corpus_text,
    "login": corpus_login,
    "sense": corpus_sense,
    "scsi": corpus_scsi,
    "lbastatus": corpus_lbastatus,
    "session": corpus_session,
    "discovery": corpus_discovery,
}


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    total = 0
    for name, gen in CORPORA.items():
        d = os.path.join(top, name)
        os.makedirs(d, exist_ok=True)
        for seed, data in gen():
            with open(os.path.join(d, seed), "wb") as f:
                f.write(data)
            total += len(data)
    print("wrote %d bytes of seeds under %s" % (total, top))


if __name__ == "__main__":
    main()
