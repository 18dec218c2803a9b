#!/usr/bin/python3
"""badtarget.py: a scripted misbehaving iSCSI target for the iscsifs tests.

It listens on 127.0.0.1:PORT, logs initiators in (AuthMethod=None, or
CHAP with --chap USER:SECRET, and mutual CHAP answered with --mutual
USER:SECRET; a Normal session, the operational keys answered sanely),
and serves one
target with two disk LUNs of 512-byte blocks:

    LUN 0  "good": always behaves.
    LUN 1  "bad":  behaves until a command hits it that the chosen case
           (--case NAME) is about; that command gets one malformed
           answer instead of the right one.

Both LUNs are served from RAM; their initial content is read from
--lun0/--lun1 FILE and every write is also written through to FILE, so a
test can compare what the initiator reads with what the target holds.

A case fires --times N times (default: the case's own, usually once),
counted over every connection of the process: after that the target
behaves again, so an initiator that drops the connection on a protocol
error and reconnects gets its command answered properly the second
time.  --times 0 fires forever.  Login and probe cases (which answer at
login, or answer REPORT LUNS / INQUIRY / READ CAPACITY) fire forever by
default.  Every firing is logged on stderr as "badtarget: fired CASE:
what was sent", so a test can check that the case really happened.

Negotiated on every session (what an initiator asking for the iscsifs
defaults gets): HeaderDigest=DataDigest=None, InitialR2T=Yes,
ImmediateData=No (every write goes through R2Ts), MaxBurstLength=65536,
MaxOutstandingR2T=1, MaxRecvDataSegmentLength=65536 (ours),
ErrorRecoveryLevel=0, CmdSN window of 64 (the cases r2t-many and
window-closed change some of these; see them).  With --unsolicited
BYTES: InitialR2T=No, ImmediateData=Yes, FirstBurstLength BYTES and our
MaxRecvDataSegmentLength 8192, so that a write brings immediate data and
unsolicited Data-Out before the R2Ts for the rest.  A discovery session
(SessionType=Discovery) gets a SendTargets answer naming this target.

A case may also act on an event the test sends with SIGUSR1 (trigger
"event", or the redirect cases): grow LUN 1 (ua-capacity-changed), add
or take away LUN 2 (ua-luns-changed: its content from --lun2 FILE), each
time with the Unit Attention such a change establishes, pending on every
connection then logged in and reported on its next command (CAPACITY
DATA HAS CHANGED on LUN 1; REPORTED LUNS DATA HAS CHANGED on any LUN,
cleared by REPORT LUNS); the redirect cases drop every connection
instead, so that the test sees where the initiator logs in again.

--targets N serves N targets (the --iqn name, then NAME-2 ... NAME-N),
all with the same LUNs and case, and SendTargets names them all: a
discovery mount then opens each.  --slow-rescan SECONDS answers every
REPORT LUNS after the first SIGUSR1 event only after SECONDS, so that the
initiator's rescans of the targets after a change overlap in time;
--slow-rescan-only NAME keeps that slowness to target NAME.
--hang-login NAME (may repeat) never answers a login to target NAME: the
connection is held until the initiator closes it.
--ua-storm NAME makes target NAME hostile once an event happened: every
command to it but INQUIRY, REPORT LUNS and REQUEST SENSE is answered with
the Unit Attention CAPACITY DATA HAS CHANGED, each time, so that the
initiator's rescan of it never finds the change settled.
--luns-flap NAME makes target NAME's LUN 2 (--lun2) come and go once an
event happened: each REPORT LUNS to it lists LUN 2 every other time, and
leaves REPORTED LUNS DATA HAS CHANGED pending for its next command to LUN
0, so that every read of LUN 0 sets off another rescan that finds another
list.

--port2 PORT opens a second listening port, served like the first: the
redirect cases send initiators that log in on the first port there, and
discovery-dup names it as a second portal of the target.
Log lines name the port of each connection ("conn 3 (port 20001): logged
in").

UNMAP is served on every LUN as a thin target that deallocates whole
granules only: the blocks of each whole granule (UNMAP GRANULARITY and
ALIGNMENT of case unmap-granularity on LUN 1, else one block) inside an
UNMAP descriptor read as zeros afterwards, and the rest of the
descriptor is left as it was (SBC allows both); each UNMAP is logged,
with "not whole granules" when it covers part of one.  Only case
unmap-granularity reports UNMAP support (LBP VPD page 0xB2), and it
refuses an UNMAP over the limits it reports (INVALID FIELD IN PARAMETER
LIST).

`badtarget.py --list` prints the cases with one line each.

Python 3 standard library only; one thread per connection.
"""

import argparse
import base64
import hashlib
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

BHS = 48
RESERVED = 0xFFFFFFFF
MASK = 0xFFFFFFFF
BLOCK = 512

# Opcodes, initiator to target
OP_NOP_OUT = 0x00
OP_SCSI_CMD = 0x01
OP_TMF_REQ = 0x02
OP_LOGIN_REQ = 0x03
OP_TEXT_REQ = 0x04
OP_DATA_OUT = 0x05
OP_LOGOUT_REQ = 0x06
# target to initiator
OP_NOP_IN = 0x20
OP_SCSI_RSP = 0x21
OP_TMF_RSP = 0x22
OP_LOGIN_RSP = 0x23
OP_TEXT_RSP = 0x24
OP_DATA_IN = 0x25
OP_LOGOUT_RSP = 0x26
OP_R2T = 0x31
OP_ASYNC = 0x32
OP_REJECT = 0x3F

F_BIT = 0x80
# Data-In flags
DI_OVER, DI_UNDER, DI_STATUS = 0x04, 0x02, 0x01

GOOD, CHECK_CONDITION, BUSY, TASK_SET_FULL, TASK_ABORTED = 0x00, 0x02, 0x08, 0x28, 0x40

# What we negotiate.
OUR_MRDSL = 65536
MAX_BURST = 65536
MAX_R2T = 1
# Time2Wait of the Async Message of case async-drop, seconds (more than
# the DefaultTime2Wait of 2 that iscsifs offers and the target accepts)
DROP_TIME2WAIT = 3
WINDOW = 64
DATA_IN_CHUNK = 16384
# Case unmap-granularity: LUN 1's UNMAP GRANULARITY, UNMAP GRANULARITY
# ALIGNMENT and MAXIMUM UNMAP LBA COUNT (not a whole number of granules)
UNMAP_GRANULARITY = 8
UNMAP_ALIGNMENT = 7
MAX_UNMAP_BLOCKS = 20
# --unsolicited: our MaxRecvDataSegmentLength, below FirstBurstLength so
# that a write brings immediate data and unsolicited Data-Out PDUs
UNSOL_MRDSL = 8192
# CHAP_A values and their hashlib names (--chap)
CHAP_ALGS = {5: "md5", 6: "sha1", 7: "sha256", 8: "sha3_256"}
# nop-flood: how long the flood lasts at most (the initiator should drop
# the connection long before), and NOP-Ins per send
FLOOD_SECONDS = 10
FLOOD_BATCH = 4096
# async-flood: Async Messages sent in one go
ASYNC_FLOOD = 20000
# alua-transition: how long LUN 1 is in its transition
TRANSITION_SECONDS = 5
# tmf-replay: copies of the ABORT TASK's answer sent after it
TMF_REPLAYS = 3000
# nop-in-ping: a ping every PING_EVERY_MS for PING_SECONDS
PING_EVERY_MS = 20
PING_SECONDS = 1

# The cases.  trigger: what makes a case fire
#   read1   a READ to LUN 1          write1  a WRITE to LUN 1
#   login   every login              probe   the probe command named
#   session every session, from login on
#   sync1   a SYNCHRONIZE CACHE to LUN 1
#   write2  a WRITE to LUN 1 after the first
#   fua1    a WRITE with FUA to LUN 1
#   unmap1  an UNMAP to LUN 1
#   event   each SIGUSR1 the test sends
#   relogin every login after the first SIGUSR1 (which drops every connection)
#   logout  every Logout Request
# times: default number of firings (0 = forever).
CASES = {
    # -- framing --------------------------------------------------------
    "dsl-over": ("read1", 1, "Data-In whose DataSegmentLength exceeds the initiator's MaxRecvDataSegmentLength"),
    "ahs": ("read1", 1, "Data-In with TotalAHSLength 4 and 16 bytes of garbage AHS"),
    "bad-opcode": ("read1", 1, "a PDU with reserved opcode 0x1c"),
    # -- tasks ------------------------------------------------------------
    "unknown-itt": ("read1", 1, "Data-In for an ITT the initiator never used"),
    "stale-itt": ("read1", 1, "the read answered, then Data-In for an earlier, completed ITT"),
    "dup-response": ("read1", 1, "the SCSI Response of the read sent twice"),
    "datain-overflow": ("read1", 1, "Data-In with offset+length past the end of the read buffer"),
    "datain-overflow-always": ("read1", 0, "datain-overflow on every READ of LUN 1"),
    "datain-wrap": ("read1", 1, "Data-In with offset 0xfffffe00 length 1024 (32-bit wrap)"),
    "datain-overlap": ("read1", 1, "Data-In PDUs that overlay [0,16K) twice and skip [16K,32K)"),
    "datasn-order": ("read1", 1, "Data-In PDUs with DataSN 0, 2, 1, 3"),
    "status-no-f": ("read1", 1, "the last Data-In with the S bit but without the F bit"),
    "datain-write": ("write1", 1, "Data-In carrying data for a WRITE"),
    "datain-write-status": ("write1", 1, "a WRITE answered at once with a status-only Data-In (S and F, no data) saying GOOD, none of its data asked for"),
    "read-short": ("read1", 1, "half the read data, then GOOD status"),
    "read-short-always": ("read1", 0, "every READ of LUN 1: half the read data, then GOOD status"),
    "read-overflow": ("read1", 1, "READ answered with as many bytes as asked, of other blocks, GOOD with the O bit (residual overflow 7 times the length)"),
    "write-slow": ("write1", 0, "every WRITE of LUN 1 answered 2 s after its data came"),
    "write-lost-late": ("write1", 4, "the first 4 WRITEs of LUN 1: all data taken, then the connection closed without a status; the data written 1 s later (a stale copy), and a login that comes meanwhile answered only after it (as a target that ends the old connection's tasks before it reinstates the session)"),
    "write-overflow": ("write1", 1, "WRITE whose data was all taken answered GOOD with the O bit (residual overflow 7 times the length): not written"),
    "write-early-met": ("write1", 1, "WRITE answered CONDITION MET at once, before any R2T: not written"),
    "write-early-recovered": ("write1", 1, "WRITE answered at once, before any R2T, with CHECK CONDITION, RECOVERED ERROR, RECOVERED DATA WITH RETRIES (17h/01h): not written"),
    "write-early-u0": ("write1", 1, "WRITE answered at once, before any R2T, GOOD with the U bit and a residual of 0: not written"),
    "r2t-beyond": ("write1", 1, "R2T with offset+length past the end of the write"),
    "r2t-beyond-always": ("write1", 0, "r2t-beyond on every WRITE to LUN 1"),
    "r2t-wrap": ("write1", 1, "R2T with offset 0xffffff00 length 512 (32-bit wrap)"),
    "r2t-zero": ("write1", 1, "R2T asking for 0 bytes"),
    "r2t-burst": ("write1", 1, "R2T asking for MaxBurstLength + 512 bytes"),
    "r2t-read": ("read1", 1, "R2T for a READ"),
    "r2t-many": ("write1", 3, "R2Ts for the whole write at once with MaxOutstandingR2T=1 (once per LBA)"),
    "r2t-repeat": ("write1", 1, "R2T for the first half of a WRITE, then the same half again (never the second), then GOOD"),
    "reject-ping": ("ping", 0, "every NOP-Out ping of the initiator's (its keepalive) answered with a Reject (reason 05h: command not supported) instead of a NOP-In"),
    "r2t-sn": ("write1", 1, "the R2Ts of a WRITE numbered from R2TSN 1 (the first, 0, never sent)"),
    "r2t-ttt": ("write1", 1, "R2T with the reserved Target Transfer Tag 0xffffffff"),
    "r2t-unknown-itt": ("write1", 1, "R2T for an ITT the initiator never used"),
    "reject-short": ("read1", 1, "Reject whose data segment is 20 bytes, not a header"),
    "reject-reflected": ("read1", 1, "Reject carrying the initiator's own SCSI Command header"),
    "sense-long": ("read1", 1, "CHECK CONDITION whose SenseLength runs past the data segment"),
    "sense-big": ("read1", 1, "CHECK CONDITION MEDIUM ERROR with 252 bytes of sense data"),
    "logout-rsp": ("read1", 1, "a Logout Response nobody asked for, with the ITT iscsifs uses for logout"),
    "tmf-rsp": ("read1", 1, "a Task Management Response nobody asked for"),
    "window-backwards": ("read1", 1, "responses whose ExpCmdSN/MaxCmdSN go backwards (MaxCmdSN < ExpCmdSN - 1)"),
    "window-shut": ("read1", 1, "from the READ on, that connection's MaxCmdSN stays where it is: once the initiator used the window granted, it is closed for good (pings answered)"),
    "window-closed": ("session", 0, "a window closed at login and after every command, opened by NOP-In 0.1 s later"),
    "window-r2t": ("session", 0, "a window closed at login, opened by NOP-In 0.1 s later; each command closes it, each SCSI Response and each R2T opens it by one; a WRITE of LUN 1 gets its first R2T 1 s late, and its answer 2 s after its data came"),
    # -- issue 12, immediate data and unsolicited Data-Out (--unsolicited):
    # InitialR2T=No, ImmediateData=Yes, FirstBurstLength below a write --
    "unsol-good": ("write1", 0, "nothing wrong: the write's first burst comes unasked (the control case)"),
    "unsol-r2t-sent": ("write1", 1, "an R2T for the first burst, which the initiator sends unasked"),
    "unsol-r2t-inside": ("write1", 1, "an R2T from the middle of the first burst to past its end"),
    "unsol-early-good": ("write1", 1, "GOOD status without residual at once, before the unsolicited "
                         "Data-Out came (and without asking for the rest)"),
    "unsol-early-short": ("write1", 1, "GOOD status at once with the whole write as residual (underflow): "
                          "the target took none of it"),
    "unsol-early-error": ("write1", 1, "CHECK CONDITION (MEDIUM ERROR) at once, before the unsolicited Data-Out came"),
    # -- issue 12, sequence numbers and logout ------------------------------
    "statsn-skip": ("read1", 1, "the READ's status with a StatSN 1000 ahead (a gap); the numbering goes on from there"),
    "statsn-repeat": ("read1", 1, "the READ's status with the StatSN of the status before it (a repeat)"),
    "logout-refused": ("logout", 0, "the Logout Response says 3, cleanup failed"),
    # -- issue 5: slow and unhelpful targets ----------------------------
    "no-answer": ("read1", 1, "the READ never answered (ABORT TASK answered: function complete)"),
    "abort-refused": ("read1", 1, "the READ never answered; ABORT TASK rejected, LU RESET complete"),
    "reset-refused": ("read1", 1, "the READ never answered; ABORT TASK not supported, LU RESET rejected"),
    "tmf-silent": ("read1", 1, "the READ never answered, nor any Task Management request"),
    "reset-tas": ("read1", 2, "two READs held unanswered; ABORT TASK rejected; the LU RESET ends a READ held on another connection with TASK ABORTED (TAS=1)"),
    "reset-silent": ("read1", 2, "two READs held unanswered; ABORT TASK rejected; the LU RESET ends a READ held on another connection without a word (TAS=0)"),
    "reset-set-refused": ("read1", 2, "as reset-silent, and ABORT TASK SET is not supported"),
    "reset-late": ("read1", 1, "the READ held; ABORT TASK rejected; the LU RESET answered only once a command sent after it arrived, which is answered 0.3 s later"),
    "busy": ("read1", 3, "BUSY status"),
    "alua-transition": ("read1", 0, "every READ of LUN 1 for %d s from the first: NOT READY, ASYMMETRIC ACCESS STATE TRANSITION (04h/0Ah); the first after: UNIT ATTENTION, ASYMMETRIC ACCESS STATE CHANGED (2Ah/06h), as LIO ends one" % TRANSITION_SECONDS),
    "task-set-full": ("read1", 3, "TASK SET FULL status"),
    "busy-always": ("read1", 0, "BUSY status on every READ of LUN 1"),
    "unit-attention": ("read1", 1, "CHECK CONDITION UNIT ATTENTION, POWER ON OCCURRED"),
    "async-logout": ("read1", 1, "Async Message: logout requested within 1 s; dropped 2 s later"),
    "async-logout-silent": ("read1", 1, "Async Message: logout requested within 65535 s; that connection's Logout Request is never answered (its pings are)"),
    "async-renegotiate": ("read1", 1, "Async Message: parameter renegotiation requested within 1 s"),
    "async-drop": ("read1", 1, "Async Message: the target drops the connection (Time2Wait 3 s), then does"),
    # -- issue 12 item 6: one rule for SCSI outcomes ----------------------
    "fua-refused": ("fua1", 0, "LUN 1 says it takes FUA (DPOFUA in MODE SENSE) but refuses every WRITE with FUA: ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h); its WRITEs and SYNCHRONIZE CACHEs logged"),
    "fua-none": ("fua1", 0, "LUN 1 says it does not take FUA (no DPOFUA in MODE SENSE, as every case); its WRITEs (a WRITE with FUA fires the case) and SYNCHRONIZE CACHEs logged"),
    "protect-after-write": ("write2", 0, "every WRITE to LUN 1 after the first refused: DATA PROTECT, WRITE PROTECTED (27h/00h); SYNCHRONIZE CACHE of LUN 1 logged"),
    "deferred-sync": ("sync1", 1, "SYNCHRONIZE CACHE of LUN 1 answered with a deferred error (response code 71h): MEDIUM ERROR, WRITE ERROR (an earlier write did not reach the medium)"),
    "sync-unsupported": ("sync1", 0, "SYNCHRONIZE CACHE(10) and (16) of LUN 1 refused: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h)"),
    "no-sense": ("read1", 1, "the READ's data garbled, then CHECK CONDITION with sense key NO SENSE"),
    "rmw-access-denied": ("read1", 1, "the READ refused: DATA PROTECT, LOGICAL UNIT ACCESS NOT AUTHORIZED (74h/71h)"),
    "read-illegal-other": ("read1", 1, "the READ refused: ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (26h/00h), a sense code the initiator has no rule of its own for"),
    "write-illegal-other": ("write1", 1, "WRITE answered at once, before any R2T: ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (26h/00h), a sense code the initiator has no rule of its own for"),
    "deferred-error": ("read1", 1, "CHECK CONDITION with a deferred error (response code 71h): MEDIUM ERROR, WRITE ERROR"),
    "datain-status-check": ("read1", 1, "the READ's data garbled, the last Data-In with S=1 and status CHECK CONDITION (no sense can ride there)"),
    "response-failure": ("read1", 1, "the READ's data garbled, then a SCSI Response with iSCSI response 0x01 (target failure) and status GOOD"),
    "response-failure-always": ("read1", 0, "response-failure on every READ of LUN 1"),
    "rc16-invalid-field": ("read1", 1, "READ CAPACITY(16) of LUN 1 always refused with INVALID FIELD IN CDB (24h/00h); the first READ of LUN 1 closes the connection, so the identity check after the reconnect meets the refusal"),
    "rc16-hardware-error": ("read1", 1, "READ CAPACITY(16) of LUN 1 always fails with HARDWARE ERROR (44h/00h), so the probe takes READ CAPACITY(10); the first READ of LUN 1 closes the connection, so the identity check after the reconnect meets the failure"),
    "probe-refused": ("probe", 0, "READ CAPACITY(16) and MODE SENSE(6) of LUN 1 refused: INVALID COMMAND OPERATION CODE (20h/00h)"),
    "capacity10-huge": ("probe", 0, "READ CAPACITY(16) of LUN 1 refused (20h/00h); READ CAPACITY(10) says 0xffffffff (2^32 blocks or more)"),
    "probe-fails-once-grow": ("probe", 1, "the standard INQUIRY of LUN 1 fails once, as probe-fails-once; an event (SIGUSR1) grows LUN 0 by 1 MiB with CAPACITY DATA HAS CHANGED"),
    "luns-fail-once": ("probe", 1, "REPORT LUNS fails once: HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h)"),
    "probe-fails-once": ("probe", 1, "the standard INQUIRY of LUN 1 fails once: HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h); LUN 0 probed before it"),
    # -- issue 12, items 4 and 5: pings and task management ---------------
    "nop-flood": ("read1", 1, "the READ unanswered; NOP-In pings (TTT set) as fast as possible for up to %d s, reading nothing meanwhile" % FLOOD_SECONDS),
    "nop-in-ping": ("read1", 1, "NOP-In pings (TTT set) before each Data-In of the READ and every %d ms for %d s; every answer checked" % (PING_EVERY_MS, PING_SECONDS)),
    "async-flood": ("read1", 1, "%d Async Messages (SCSI event) before the READ is answered" % ASYNC_FLOOD),
    "tmf-late-abort": ("read1", 1, "the READ never answered; ABORT TASK answered (function complete) only once the LU RESET came, then the LU RESET"),
    "tmf-replay": ("read1", 1, "the READ never answered; ABORT TASK answered (function complete), then that answer sent again %d times" % TMF_REPLAYS),
    "read-hang": ("read1", 4, "the first 4 READs of LUN 1 (of any target) never answered; ABORT TASK answered (function complete)"),
    "tmf-no-task": ("read1", 1, "the READ never answered; ABORT TASK answered \"task does not exist\""),
    "tmf-no-task-write": ("write1", 1, "the WRITE's data taken, the WRITE held unanswered; ABORT TASK answered \"task does not exist\", and the held WRITE carried out 1 s later unless an LU RESET ends it first"),
    # -- changes while mounted (SIGUSR1) ------------------------------------
    "capacity-lie-once": ("event", 2, "each event drops every connection; after the first, the next READ CAPACITY(16) of LUN 1 says 1 MiB more than it holds, once"),
    "ua-luns-in-check": ("event", 1, "LUN 2 added; every connection dropped, and REPORTED LUNS DATA HAS CHANGED pending on each that logs in after (the identity check meets it)"),
    "shrink-in-check": ("event", 1, "LUN 1 shrinks by 1 MiB and one connection is dropped; the next to log in answers its first READ CAPACITY 3 s late (its identity check), and as it logs in CAPACITY DATA HAS CHANGED goes pending on the others (their rescan takes the new size first)"),
    "deferred-in-check": ("event", 1, "every connection dropped; the first command to LUN 1 after that but INQUIRY and REPORT LUNS (the identity check's READ CAPACITY) answered with a deferred error (response code 71h): MEDIUM ERROR, WRITE ERROR"),
    "ua-capacity-changed": ("event", 0, "LUN 1 grows by 1 MiB; UNIT ATTENTION CAPACITY DATA HAS CHANGED"),
    "ua-luns-fail-once": ("event", 1, "LUN 2 appears; UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED, and the REPORT LUNS after it fails once: HARDWARE ERROR (44h/00h)"),
    "ua-luns-fail-always": ("event", 1, "LUN 2 appears; UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED, and every REPORT LUNS after it fails: HARDWARE ERROR (44h/00h); with --times 2, a second event makes REPORT LUNS answer again, with the same Unit Attention"),
    "ua-lun-swapped": ("event", 1, "LUN 1 becomes another logical unit (--lun2's data, another serial number and device identifier); UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED"),
    "ua-lun-swapped-reset": ("event", 1, "LUN 1 becomes another logical unit (--lun2's data, another serial number and device identifier); UNIT ATTENTION POWER ON OCCURRED on LUN 1 alone, as a unit that comes up reports"),
    "ua-lun-swapped-busy": ("event", 1, "LUN 1 becomes another logical unit (--lun2's data, another serial number and device identifier); UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED on LUN 0 alone; WRITEs of LUN 1 answered BUSY for 1.5 s from the first after the event"),
    "ua-reset-check-fails": ("event", 2, "UNIT ATTENTION POWER ON OCCURRED on LUN 1, and every INQUIRY of a VPD page of LUN 1 fails from now on: HARDWARE ERROR (44h/00h); a second event makes them answer again"),
    "ua-lun-swapped-novpd": ("event", 1, "LUN 1 becomes another logical unit (--lun2's data) that lists neither VPD page 0x80 nor 0x83 and refuses both: ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h); UNIT ATTENTION POWER ON OCCURRED on LUN 1 alone"),
    "vpd-fails-in-check": ("event", 2, "every connection dropped, and from then on every INQUIRY of a VPD page of LUN 1 fails: HARDWARE ERROR (44h/00h), so the identity check after the reconnect meets it; a second event makes them answer again"),
    "blocksize-0-in-check": ("event", 1, "every connection dropped; from then on READ CAPACITY(16) and (10) of LUN 1 say block length 0 (the identity check after the reconnect meets it)"),
    "rc16-huge-fails": ("event", 2, "READ CAPACITY(16) of LUN 1 says 2^32 blocks more than it holds (READ CAPACITY(10): 0xffffffff); the first event drops every connection, the second leaves UNIT ATTENTION POWER ON OCCURRED on LUN 1; after each, the next READ CAPACITY(16) of LUN 1 fails once: HARDWARE ERROR (44h/00h)"),
    "ua-on-report-luns": ("event", 1, "LUN 0 grows by 1 MiB and LUN 2 appears; REPORTED LUNS DATA HAS CHANGED pending for LUN 1, and CAPACITY DATA HAS CHANGED for LUN 0 given to the next REPORT LUNS (LUN 0), as no target should (SPC: REPORT LUNS is carried out despite a Unit Attention)"),
    "ua-luns-cut": ("event", 1, "REPORT LUNS from now on says it holds every LUN but lists LUN 0 alone; UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED"),
    "ua-blocksize-changed": ("event", 2, "READ CAPACITY of LUN 1 says 4096-byte blocks (the same bytes); UNIT ATTENTION CAPACITY DATA HAS CHANGED; a second event: READ and WRITE of LUN 1 address 4096-byte blocks too, REPORTED LUNS DATA HAS CHANGED"),
    "ua-luns-changed": ("event", 0, "LUN 2 appears (odd events) or goes (even); UNIT ATTENTION REPORTED LUNS DATA HAS CHANGED"),
    # -- probe (mount time) ---------------------------------------------
    "luns-short": ("probe", 0, "REPORT LUNS data of 4 bytes"),
    "luns-lying": ("probe", 0, "REPORT LUNS claiming 1000 LUNs, listing 2"),
    "luns-odd": ("probe", 0, "REPORT LUNS with LUN LIST LENGTH 13"),
    "luns-many": ("probe", 0, "REPORT LUNS listing 1100 LUNs (0 to 1099; all but 0 and 1 absent)"),
    "luns-huge": ("probe", 0, "REPORT LUNS listing 20000 LUNs (0 to 19999; all but 0 and 1 absent)"),
    "inquiry-lun-not-supported": ("probe", 0, "REPORT LUNS lists LUN 2 too, whose INQUIRY is answered ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h), not with qualifier 011b"),
    "inquiry-short": ("probe", 0, "standard INQUIRY of LUN 1: 3 bytes"),
    "inquiry-lying": ("probe", 0, "standard INQUIRY of LUN 1: ADDITIONAL LENGTH 250, 36 bytes sent"),
    "vpd-lying": ("probe", 0, "VPD pages of LUN 1 whose lengths run past the data"),
    "capacity-short": ("probe", 0, "READ CAPACITY(16) of LUN 1: 8 bytes"),
    "blocksize-0": ("probe", 0, "READ CAPACITY of LUN 1: block length 0"),
    "blocksize-odd": ("probe", 0, "READ CAPACITY of LUN 1: block length 1000"),
    "capacity-0": ("probe", 0, "READ CAPACITY(16) of LUN 1: last LBA 2^64-1 (0 blocks)"),
    "capacity-huge": ("probe", 0, "READ CAPACITY(16) of LUN 1: 2^60 blocks of 4096 bytes"),
    "opt-xfer-huge": ("probe", 0, "Block Limits of LUN 1: OPTIMAL TRANSFER LENGTH 0x800008 blocks (4 GiB + 4 KiB)"),
    # -- issue 14: GET LBA STATUS (LUN 1 thin: LBPME=1, LBPRZ=1 in READ
    # CAPACITY(16); a block is mapped when it holds a non-zero byte) --
    "lbas-good": ("lbas", 0, "GET LBA STATUS answered right (the control case)"),
    "lbas-unsupported": ("lbas", 0, "GET LBA STATUS refused: ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h)"),
    "lbas-overlap": ("lbas", 0, "GET LBA STATUS whose second descriptor starts one block inside the first"),
    "lbas-order": ("lbas", 0, "GET LBA STATUS with the second and third descriptors swapped (out of order)"),
    "lbas-beyond": ("lbas", 0, "GET LBA STATUS whose last descriptor runs 8 blocks past the capacity"),
    "lbas-zero": ("lbas", 0, "GET LBA STATUS with a descriptor of 0 blocks before the second"),
    "lbas-more": ("lbas", 0, "GET LBA STATUS sending one descriptor more than its PARAMETER DATA LENGTH declares"),
    "lbas-start": ("lbas", 0, "GET LBA STATUS whose first descriptor starts one block after the LBA asked"),
    "lbas-crumbs": ("lbas", 0, "GET LBA STATUS answered right, but with one descriptor of one block each time"),
    "lbas-lag": ("lbas", 0, "GET LBA STATUS of LUN 1 answered from its blocks as they were when the target "
                 "started: the writes acknowledged since are not seen (provisioning that lags behind the writes)"),
    "lbas-grown": ("lbas", 1, "LUN 1 grows by 1 MiB of data when the first GET LBA STATUS comes, with no Unit Attention"),
    "lbas-ua": ("event", 0, "GET LBA STATUS answered right; each SIGUSR1 writes 4 KiB of data at 2 MiB of LUN 1 "
                "(another initiator) and sets UNIT ATTENTION MODE PARAMETERS CHANGED (2Ah/01h) on every connection"),
    # -- issue 12 item 1: hole punch with an unmap granularity alignment --
    "lbprz-pattern": ("probe", 0, "LUN 1 thin (LBPU=1) whose unmapped blocks read as its provisioning initialization pattern, 0xff bytes (LBPRZ 010b in VPD 0xB2, clear in READ CAPACITY(16))"),
    "unmap-refused": ("unmap1", 0, "LUN 1 thin (LBPU=1, LBPRZ=1 in VPD 0xB2) refuses every UNMAP: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h)"),
    "write-same-residual": ("probe", 0, "LUN 1 thin (LBPU=1, LBPWS=1, LBPRZ=1 in VPD 0xB2) answers every WRITE SAME(16) with GOOD, the U bit and its whole block as residual (it took none of the data), and writes nothing"),
    "write-same-refused": ("probe", 0, "LUN 1 thin (LBPU=1, LBPWS=1, LBPRZ=1 in VPD 0xB2) refuses every WRITE SAME(16): ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h); its UNMAP works"),
    "write-same-only-refused": ("probe", 0, "LUN 1 thin (LBPWS=1, LBPRZ=1 in VPD 0xB2, no UNMAP) refuses every WRITE SAME(16): ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h)"),
    "unmap-residual": ("probe", 0, "LUN 1 thin (LBPU=1, LBPRZ=1 in VPD 0xB2) answers each UNMAP, which it does, with GOOD, the U bit and the whole parameter list as residual, as tgtd does"),
    "unmap-only-noop": ("probe", 0, "LUN 1 thin (LBPU=1, LBPRZ=1 in VPD 0xB2, no WRITE SAME) answers every UNMAP with GOOD and deallocates nothing"),
    "unmap-noop": ("probe", 0, "LUN 1 thin (LBPU=1, LBPWS=1, LBPRZ=1 in VPD 0xB2) answers every UNMAP with GOOD and deallocates nothing, as SBC lets a device server do; WRITE SAME(16) writes its block"),
    "unmap-granularity": ("probe", 0, "LUN 1 thin (LBPU=1, LBPRZ=1) with UNMAP GRANULARITY 8, ALIGNMENT 7 (UGAVALID=1), at most 20 blocks per UNMAP"),
    # -- login ----------------------------------------------------------
    "login-no-nul": ("login", 0, "login text whose last pair has no NUL"),
    "login-dsl-over": ("login", 0, "a 9000-byte Login Response data segment"),
    "login-long-key": ("login", 0, "a 9000-byte value, in two continued Login Responses"),
    "login-many-keys": ("login", 0, "3000 unknown keys in continued Login Responses"),
    "login-names": ("login", 0, "TargetAlias and TargetName with '/', '..' and control characters"),
    "login-loop": ("login", 0, "never leaves the security stage"),
    "login-slow": ("login", 0, "the first Login Response of every Normal session answered 4 s late"),
    "login-final-offer": ("login", 0, "the security-stage answer moves straight to the full feature phase (T=1, NSG 3) and offers HeaderDigest=CRC32C and DataDigest=CRC32C in it, which leaves no answer possible"),
    "login-skip-operational": ("login", 0, "the security-stage answer moves straight to the full feature phase (T=1, NSG 3): no operational stage, every key at its default"),
    "login-itt": ("login", 0, "a Login Response for another ITT"),
    "login-stage": ("login", 0, "a Login Response moving to stage 2"),
    "login-ahs": ("login", 0, "a Login Response with a garbage AHS"),
    "login-chap-operational": ("login", 0, "CHAP_A=5 among the keys of the operational stage's answer"),
    "login-transit-unasked": ("login", 0, "to the initiator's first request, which offers CHAP and stays in the security stage (T=0), AuthMethod=None with T=1 and NSG 3: the operational stage skipped"),
    "login-nop": ("login", 0, "a NOP-In instead of a Login Response"),
    "login-expcmdsn": ("login", 0, "the Login Response that ends the login says ExpCmdSN 7 above the login's CmdSN; commands below ExpCmdSN are then dropped unanswered, as RFC 7143 has a target do"),
    "login-redirect-loop": ("login", 0, "a temporary redirect to itself, every time (a loop)"),
    "login-redirect-temp": ("login", 0, "logins on the first port: a temporary redirect to --port2 (SIGUSR1 drops every connection)"),
    "login-redirect-perm": ("login", 0, "logins on the first port: a permanent redirect to --port2 (SIGUSR1 drops every connection)"),
    "login-drop": ("login", 2, "the connection closed after the first Login Request, twice"),
    "login-drop-always": ("login", 0, "the connection closed after the first Login Request, always"),
    # -- issue 12, CHAP (--chap, --mutual): hostile and legal CHAP values --
    "chap-good": ("login", 0, "one-way CHAP with MD5 and CHAP_C in hex (the control case)"),
    "chap-mutual": ("login", 0, "mutual CHAP with MD5 and CHAP_C in hex (the control case)"),
    "chap-c-base64": ("login", 0, "CHAP_C, and a mutual CHAP_R, in base64 (0b...), which RFC 7143 allows"),
    "chap-c-upper": ("login", 0, "CHAP_C as 0X and upper-case hex digits, which RFC 7143 allows"),
    "chap-c-long": ("login", 0, "a CHAP_C of 1025 bytes (RFC 7143: at most 1024)"),
    "chap-c-odd": ("login", 0, "a CHAP_C with an odd number of hex digits"),
    "chap-c-empty": ("login", 0, "CHAP_C=0x: a challenge without a digit"),
    "chap-c-blank": ("login", 0, "CHAP_C= with no value at all"),
    "chap-a-unoffered": ("login", 0, "CHAP_A naming an algorithm the initiator did not offer"),
    "chap-i-range": ("login", 0, "CHAP_I=256, out of 0..255"),
    "chap-r-wrong": ("login", 0, "mutual CHAP: the target's CHAP_R made with another secret"),
    "chap-skip-mutual": ("login", 0, "mutual CHAP: no CHAP_N/CHAP_R, straight on to the operational stage"),
    "chap-reflect": ("login", 0, "mutual CHAP: the response made with SHA-256 refused, then on the "
                     "initiator's next connection the initiator's own challenge sent back to it"),
    # -- discovery (SendTargets answers) ---------------------------------
    "discovery-good": ("discovery", 0, "a well-formed SendTargets answer (the control case)"),
    "discovery-slash": ("discovery", 0, "a TargetName with '/' and '..' components"),
    "discovery-dotdot": ("discovery", 0, "a TargetName that is '..'"),
    "discovery-ctl": ("discovery", 0, "a TargetName with control characters (ESC, BEL)"),
    # -- issue 12, items 8-10: names and numbers the target chooses ------
    "discovery-addr-ctl": ("discovery", 0, "our target's TargetAddress with control characters (ESC sequences, BEL)"),
    "discovery-pair-ctl": ("discovery", 0, "a SendTargets item that is not key=value, with control characters (ESC sequences, BEL)"),
    "discovery-ahs": ("discovery", 0, "the Text Response to SendTargets with a garbage 12-byte AHS"),
    "discovery-dsl-over": ("discovery", 0, "the Text Response to SendTargets in one PDU of over 300000 bytes (a TargetAlias of 300000), over the 262144 the initiator declared"),
    "login-redirect-ctl": ("login", 0, "a temporary redirect to a TargetAddress with control characters (ESC sequences, BEL)"),
    "discovery-dot-iscsifs": ("discovery", 0, "one more target named .iscsifs, the name of the statistics directory"),
    "tpg-failover-late": ("write1", 1, "the target listed at the first port (portal group 1) and at --port2 (portal group 2, as its logins there say); the first WRITE of LUN 1: data taken, connection closed without a status, the data written 4 s later (a stale copy: a login in portal group 2 does not end the session of group 1); from then on the first port closes every new connection"),
    "discovery-dup": ("discovery", 0, "our target listed twice: at the first port, then at --port2 and the first port again"),
    "alua-standby-port": ("standby", 0, "the first port is in ALUA standby: there every READ and WRITE of LUN 1 is answered at once with NOT READY, TARGET PORT IN STANDBY STATE (04/0B); the discovery lists --port2 too (portal group 2), where LUN 1 is served"),
    "luns-dup": ("probe", 0, "REPORT LUNS listing LUN 1 three times: 0x0001, 0x4001 (flat addressing), 0x0001"),
    # -- issue 12, items 2 and 3: logins and discoveries that never end -----
    "login-empty-continue": ("login", 0, "every Login Response C=1 with an empty data segment, forever"),
    "login-trickle": ("login", 0, "Login Responses C=1 with 4 bytes of text each, one every 0.3 s, forever"),
    "login-few-empty": ("login", 0, "4 empty C=1 Login Responses, 0.2 s apart, before each security-stage answer (slow but legal)"),
    "relogin-drop-0": ("relogin", 0, "after SIGUSR1 drops every connection: each that logs in after is dropped at once, by an Async Message with Time2Wait 0"),
    "relogin-empty-continue": ("relogin", 2, "after SIGUSR1 drops every connection: the next logins get empty C=1 Login Responses forever"),
    "discovery-nop": ("discovery", 0, "NOP-Ins instead of the SendTargets answer, forever; every other one asks for a NOP-Out"),
    "discovery-async": ("discovery", 0, "Async Messages (vendor specific) instead of the SendTargets answer, forever"),
    "discovery-trickle": ("discovery", 0, "the SendTargets answer in continued Text Responses of 4 bytes, one every 0.5 s, forever"),
    "discovery-nop-few": ("discovery", 0, "3 NOP-Ins before the SendTargets answer, the second asking for a NOP-Out, which must come first (legal)"),
}


def log(msg):
    sys.stderr.write("badtarget: %s\n" % msg)
    sys.stderr.flush()


def u32(b, off):
    return struct.unpack_from(">I", b, off)[0]


def put32(b, off, v):
    struct.pack_into(">I", b, off, v & MASK)


def put16(b, off, v):
    struct.pack_into(">H", b, off, v & 0xFFFF)


def sn_lt(a, b):
    """Serial number arithmetic (RFC 1982, 32 bits): a < b."""
    return a != b and ((b - a) & MASK) < 0x80000000


def bhs(opcode, flags=F_BIT):
    b = bytearray(BHS)
    b[0] = opcode
    b[1] = flags
    return b


def lun_field(lun):
    """8-byte LUN field, single level peripheral or flat addressing."""
    if lun < 256:
        return bytes([0, lun]) + bytes(6)
    return bytes([0x40 | (lun >> 8), lun & 0xFF]) + bytes(6)


def lun_number(field):
    method = field[0] >> 6
    if method == 0:
        return field[1] if field[0] == 0 else -1
    if method == 1:
        return ((field[0] & 0x3F) << 8) | field[1]
    return -1


def fixed_sense(key, asc, ascq, extra=0, deferred=False):
    s = bytearray(18 + extra)
    s[0] = 0x71 if deferred else 0x70
    s[2] = key
    s[7] = 10 + extra
    s[12] = asc
    s[13] = ascq
    return bytes(s)


def garbled(data):
    """@data with every byte inverted: what a read must never return."""
    return bytes(b ^ 0xFF for b in data)


class Pdu:
    """A received PDU: its BHS and data segment."""

    def __init__(self, head, data):
        self.bhs = head
        self.data = data
        self.opcode = head[0] & 0x3F
        self.immediate = bool(head[0] & 0x40)
        self.flags = head[1]
        self.itt = u32(head, 16)

    def u32(self, off):
        return u32(self.bhs, off)


# The cases that swap LUN 1 for another unit, and the Unit Attention each
# leaves pending: (LUN, None for any; ASC; ASCQ).
SWAP_UNIT_ATTENTION = {
    "ua-lun-swapped": (None, 0x3F, 0x0E),        # REPORTED LUNS DATA HAS CHANGED
    "ua-lun-swapped-reset": (1, 0x29, 0x01),     # POWER ON OCCURRED, on LUN 1
    "ua-lun-swapped-busy": (0, 0x3F, 0x0E),      # the same, on LUN 0 alone
    "ua-lun-swapped-novpd": (1, 0x29, 0x01),     # POWER ON OCCURRED, on LUN 1
}


# The cases whose WRITE of LUN 1 takes its data as any write does, and
# the mark on the task by which finish_write() then misbehaves.
WRITE_MARKS = {
    "write-overflow": "overflow",        # GOOD with the O bit, not written
    "write-slow": "slow",                # answered 2 s late
    "write-lost-late": "lost_late",      # connection closed, data lands later
    "tpg-failover-late": "lost_late",
    "tmf-no-task-write": "held",         # held unanswered
}


class Closed(Exception):
    """The initiator went away."""


class Lun:
    def __init__(self, number, path):
        self.number = number
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        if len(self.data) % BLOCK or not self.data:
            raise SystemExit("badtarget: %s: size must be a non-zero multiple of %d" % (path, BLOCK))
        self.blocks = len(self.data) // BLOCK
        self.reported_block = BLOCK   # what READ CAPACITY says (ua-blocksize-changed)
        self.io_block = BLOCK         # what READ and WRITE address (the same, a step later)
        self.generation = 0           # another logical unit under the same number (ua-lun-swapped)
        self.vpd_refused = False      # VPD pages 0x80 and 0x83 refused (ua-lun-swapped-novpd)
        self.lock = threading.Lock()

    def read(self, off, n):
        with self.lock:
            return bytes(self.data[off:off + n])

    def write(self, off, buf):
        with self.lock:
            self.data[off:off + len(buf)] = buf
            fd = os.open(self.path, os.O_WRONLY)
            try:
                os.pwrite(fd, buf, off)
            finally:
                os.close(fd)

    def shrink(self, n):
        """Take @n bytes off the end (the backing file too)."""
        with self.lock:
            del self.data[len(self.data) - n:]
            os.truncate(self.path, len(self.data))
            self.blocks = len(self.data) // BLOCK

    def grow(self, n):
        """Add @n random bytes at the end (the backing file too)."""
        more = os.urandom(n)
        with self.lock:
            off = len(self.data)
            self.data += more
            fd = os.open(self.path, os.O_WRONLY)
            try:
                os.pwrite(fd, more, off)
            finally:
                os.close(fd)
            self.blocks = len(self.data) // BLOCK


class Target:
    """What all connections share: the LUNs, the case and its counter."""

    def __init__(self, args):
        self.iqn = args.iqn
        # --targets: the names served, the first being --iqn
        self.names = [args.iqn] + ["%s-%d" % (args.iqn, i) for i in range(2, args.targets + 1)]
        self.slow_rescan = args.slow_rescan  # --slow-rescan seconds, or 0
        self.slow_rescan_only = args.slow_rescan_only  # --slow-rescan-only name, or None
        self.ua_storm = args.ua_storm        # --ua-storm target name, or None
        self.luns_flap = args.luns_flap      # --luns-flap target name, or None
        self.flap_lun = Lun(2, args.lun2) if args.luns_flap and args.lun2 else None
        self.flap_present = False            # lock: LUN 2 of --luns-flap listed last
        self.hang_login = set(args.hang_login or ())  # --hang-login: names never answered
        self.case = args.case
        self.trigger, default_times, self.what = CASES[args.case]
        self.times = default_times if args.times is None else args.times
        self.fired = 0
        self.luns = {0: Lun(0, args.lun0), 1: Lun(1, args.lun1)}
        # lbas-lag: LUN 1's bytes at the start, which its GET LBA STATUS describes
        self.lun1_at_start = bytes(self.luns[1].data) if self.case == "lbas-lag" else None
        self.lun2_path = args.lun2
        self.port2 = args.port2
        self.lock = threading.Lock()   # fired, next_tsih, conns, events
        self.next_tsih = 1
        self.verbose = args.verbose
        self.seen_cdbs = set()
        self.conns = set()             # connections in full feature phase
        self.held = []                 # reset-*: (Conn, Task) of the READs held
        self.events = 0                # SIGUSR1s so far
        self.fail_report_luns = False  # the next REPORT LUNS fails (ua-luns-fail-once)
        self.rc16_lie = False          # the next READ CAPACITY(16) of LUN 1 lies (capacity-lie-once)
        self.ua_on_login = []          # lock: (lun, asc, ascq) pending on each new connection
        self.deferred_pending = False  # lock: deferred-in-check: the next command to LUN 1 gets it
        self.slow_check_pending = False  # lock: shrink-in-check: the next connection to log in is slow
        self.swap_busy_until = None    # lock: ua-lun-swapped-busy: LUN 1's writes BUSY until then
        self.fail_vpd = False          # lock: ua-reset-check-fails: LUN 1's VPD INQUIRYs fail
        self.stale_writes = 0          # lock: write-lost-late: stale copies still to land
        self.port1_closed = False      # lock: tpg-failover-late: the first port closes connections
        self.stale_landed = threading.Condition(self.lock)  # ... and their count fell
        self.block_0 = False           # lock: blocksize-0-in-check: LUN 1's block length 0
        self.rc16_fails = False        # lock: rc16-huge-fails: the next READ CAPACITY(16) of LUN 1 fails
        self.lun1_writes = 0           # lock: WRITE commands to LUN 1 so far (write2)
        self.transition_until = None   # lock: alua-transition: when LUN 1's transition ends
        self.transition_told = False   # lock: alua-transition: its end was reported
        self.chap = args.chap           # --chap (user, secret) or None: CHAP required
        self.mutual = args.mutual       # --mutual (user, secret): how the target answers
        self.challenges = []            # CHAP_C values initiators sent (chap-reflect)
        self.first_burst = args.unsolicited  # --unsolicited FirstBurstLength, or 0

    def lun_numbers(self):
        with self.lock:
            return sorted(self.luns)

    def event(self):
        """SIGUSR1: the change the case makes (see the module's doc)."""
        with self.lock:
            self.events += 1
            n = self.events
            conns = list(self.conns)
        if self.case in ("login-redirect-temp", "login-redirect-perm", "relogin-empty-continue",
                         "relogin-drop-0", "lbas-lag"):
            log("event %d: dropping every connection (%d)" % (n, len(conns)))
            for c in conns:
                c.close()
            return
        if self.case == "probe-fails-once-grow":
            self.luns[0].grow(1 << 20)
            log("event %d: LUN 0 grew by 1 MiB; CAPACITY DATA HAS CHANGED pending on %d connections"
                % (n, len(conns)))
            for c in conns:
                c.add_ua(0, 0x2A, 0x09)
            return
        if self.luns_flap:
            flapping = [c for c in conns if c.target_name == self.luns_flap]
            log("event %d: LUN 2 of %s flaps from now on; REPORTED LUNS DATA HAS CHANGED pending on %d connections"
                % (n, self.luns_flap, len(flapping)))
            for c in flapping:
                c.add_ua(0, 0x3F, 0x0E)
        if self.trigger != "event":
            log("event %d: nothing to do for case %s" % (n, self.case))
            return
        if self.case == "capacity-lie-once":
            with self.lock:
                self.rc16_lie = n == 1
            if not self.fire("event", "dropping every connection (%d)%s" % (
                    len(conns), "; the next READ CAPACITY(16) of LUN 1 says 1 MiB more" if n == 1 else "")):
                return
            for c in conns:
                c.close()
        elif self.case == "ua-luns-in-check":
            lun2 = self.lun2()
            if self.fire("event", "LUN 2 added; dropping every connection (%d); UNIT ATTENTION 3f/0e "
                         "pending on each that logs in after" % len(conns)):
                with self.lock:
                    self.luns[2] = lun2
                    self.ua_on_login.append((None, 0x3F, 0x0E))
                for c in conns:
                    c.close()
        elif self.case == "shrink-in-check":
            victim = min(conns, key=lambda c: c.number, default=None)
            if victim and self.fire("event", "LUN 1 shrinks by 1 MiB; dropping %s" % victim.name):
                self.luns[1].shrink(1 << 20)
                with self.lock:
                    self.slow_check_pending = True
                victim.close()
        elif self.case == "deferred-in-check":
            self.drop_all(conns, "a deferred error pending for the next command to LUN 1",
                          "deferred_pending")
        elif self.case == "ua-capacity-changed":
            lun = self.luns[1]
            lun.grow(1 << 20)
            self.unit_attention(conns, "LUN 1 now %d blocks" % lun.blocks, 1, 0x2A, 0x09)
        elif self.case == "ua-luns-fail-always" and n > 1:
            with self.lock:
                self.fail_report_luns = False
            self.unit_attention(conns, "REPORT LUNS answers again", None, 0x3F, 0x0E)
        elif self.case in ("ua-luns-fail-once", "ua-luns-fail-always"):
            lun2 = self.lun2()
            with self.lock:
                self.luns[2] = lun2
                self.fail_report_luns = True
            self.unit_attention(conns, "LUN 2 added, the next REPORT LUNS to fail", None, 0x3F, 0x0E)
        elif self.case == "vpd-fails-in-check" and n > 1:
            if self.fire("event", "VPD INQUIRYs of LUN 1 answer again"):
                with self.lock:
                    self.fail_vpd = False
        elif self.case == "vpd-fails-in-check":
            self.drop_all(conns, "VPD INQUIRYs of LUN 1 fail from now on", "fail_vpd")
        elif self.case == "blocksize-0-in-check":
            self.drop_all(conns, "READ CAPACITY of LUN 1 says block length 0 from now on",
                          "block_0")
        elif self.case == "rc16-huge-fails" and n > 1:
            with self.lock:
                self.rc16_fails = True
            self.unit_attention(conns, "the next READ CAPACITY(16) of LUN 1 fails", 1, 0x29, 0x01)
        elif self.case == "rc16-huge-fails":
            self.drop_all(conns, "the next READ CAPACITY(16) of LUN 1 fails", "rc16_fails")
        elif self.case in SWAP_UNIT_ATTENTION:
            other = self.lun2(1)
            other.generation = 1
            other.vpd_refused = self.case == "ua-lun-swapped-novpd"
            with self.lock:
                self.luns[1] = other
            self.unit_attention(conns, "LUN 1 is another logical unit now",
                                *SWAP_UNIT_ATTENTION[self.case])
        elif self.case == "ua-reset-check-fails" and n > 1:
            if self.fire("event", "VPD INQUIRYs of LUN 1 answer again"):
                with self.lock:
                    self.fail_vpd = False
        elif self.case == "ua-reset-check-fails":
            with self.lock:
                self.fail_vpd = True
            self.unit_attention(conns, "VPD INQUIRYs of LUN 1 fail from now on", 1, 0x29, 0x01)
        elif self.case == "ua-luns-cut":
            self.unit_attention(conns, "REPORT LUNS cut short from now on", None, 0x3F, 0x0E)
        elif self.case == "ua-on-report-luns":
            self.luns[0].grow(1 << 20)
            with self.lock:
                self.luns[2] = self.lun2()
            if self.fire("event", "LUN 0 grew by 1 MiB, LUN 2 added; UNIT ATTENTION 3f/0e pending "
                         "for LUN 1 and 2a/09 for the next REPORT LUNS on %d connections" % len(conns)):
                for c in conns:
                    c.add_ua(1, 0x3F, 0x0E)
                    c.add_ua(0, 0x2A, 0x09, report_luns=True)
        elif self.case == "ua-blocksize-changed" and n > 1:
            self.luns[1].io_block = 4096
            self.unit_attention(conns, "LUN 1 now reads and writes 4096-byte blocks", None, 0x3F, 0x0E)
        elif self.case == "ua-blocksize-changed":
            self.luns[1].reported_block = 4096
            self.unit_attention(conns, "LUN 1 now has 4096-byte blocks", 1, 0x2A, 0x09)
        elif self.case == "lbas-ua":
            self.luns[1].write(2 << 20, os.urandom(4096).replace(b"\0", b"x"))
            self.unit_attention(conns, "4 KiB written at 2 MiB of LUN 1", 1, 0x2A, 0x01)
        elif self.case == "ua-luns-changed":
            with self.lock:
                if n % 2:
                    self.luns[2] = self.lun2()
                else:
                    self.luns.pop(2, None)
            self.unit_attention(conns, "LUN 2 %s" % ("added" if n % 2 else "removed"), None, 0x3F, 0x0E)

    def drop_all(self, conns, what, flag):
        """An event of the case (@what) fires, if it still may: attribute
        @flag becomes True, then every connection in @conns is dropped."""
        if not self.fire("event", "dropping every connection (%d); %s" % (len(conns), what)):
            return
        with self.lock:
            setattr(self, flag, True)
        for c in conns:
            c.close()

    def unit_attention(self, conns, what, lun, asc, ascq):
        """An event of the case (@what) fires, if it still may, and leaves
        the Unit Attention ASC/ASCQ (for @lun, None: any) pending on every
        connection in @conns."""
        if self.fire("event", "%s; UNIT ATTENTION %02x/%02x pending on %d connections"
                     % (what, asc, ascq, len(conns))):
            for c in conns:
                c.add_ua(lun, asc, ascq)

    def stale_write(self, conn, t, data, secs):
        """write-lost-late, tpg-failover-late: @data of WRITE @t, which
        came on @conn (closed now), lands @secs s later."""
        with self.lock:
            self.stale_writes += 1

        def land():
            time.sleep(secs)
            conn.execute(t, data)
            log("%s: the stale copy of WRITE ITT 0x%x landed" % (conn.name, t.itt))
            with self.lock:
                self.stale_writes -= 1
                self.stale_landed.notify_all()
        threading.Thread(target=land, daemon=True).start()

    def wait_stale(self, conn):
        """write-lost-late: a login waits until the stale copies landed."""
        with self.lock:
            if self.stale_writes:
                log("%s: login waits for %d stale writes to land" % (conn.name, self.stale_writes))
            self.stale_landed.wait_for(lambda: self.stale_writes == 0, timeout=10)

    def swap_busy(self):
        """ua-lun-swapped-busy: whether a WRITE of LUN 1 gets BUSY now:
        for 1.5 s from the first after the event."""
        with self.lock:
            if not self.events:
                return False
            now = time.monotonic()
            if self.swap_busy_until is None:
                self.swap_busy_until = now + 1.5
            return now < self.swap_busy_until

    def lun2(self, number=2):
        """A LUN @number holding --lun2's data (the cases that add or swap
        in a LUN need it)."""
        if not self.lun2_path:
            raise SystemExit("badtarget: case %s needs --lun2" % self.case)
        return Lun(number, self.lun2_path)

    def fire(self, trigger, what=None):
        """Whether the case fires now (and count it)."""
        if trigger != self.trigger:
            return False
        with self.lock:
            if self.times and self.fired >= self.times:
                return False
            self.fired += 1
            n = self.fired
        log("fired %s (%d): %s" % (self.case, n, what or self.what))
        return True

    def tsih(self):
        with self.lock:
            self.next_tsih = self.next_tsih % 0xFFFF + 1
            return self.next_tsih


class Task:
    """A SCSI command in progress on one connection."""

    def __init__(self, p):
        self.itt = p.itt
        self.lun = lun_number(p.bhs[8:16])
        self.edtl = p.u32(20)
        self.cmdsn = p.u32(24)
        self.cdb = bytes(p.bhs[32:48])
        self.read = bool(p.flags & 0x40)
        self.write = bool(p.flags & 0x20)
        self.header = bytes(p.bhs)
        self.buf = None
        self.delay = 0          # seconds its answer waits (--slow-rescan), the connection live
        self.next_off = 0
        self.r2tsn = 0
        self.bursts = {}
        self.have = None                # write: a byte per byte of the payload, 1 once it came
        self.unsolicited = 0            # write: bytes that came without an R2T (immediate too)
        self.overflow = False           # write: answered GOOD with the O bit, unwritten (write-overflow)
        self.lost_late = False          # write: connection closed once its data came (write-lost-late)
        self.held = False               # write: held unanswered once its data came (tmf-no-task-write)
        self.slow = False               # write: answered 2 s after its data came (write-slow)
        self.r2t_plan = None            # write: the (offset, length) of each R2T to send, in
                                        # order, then no more (r2t-repeat); None: as usual


class Conn:
    """One TCP connection: login, then full feature phase."""

    def __init__(self, target, sock, number):
        self.t = target
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.primary = self.port != target.port2
        self.number = number            # the order it connected in
        self.name = "conn %d (port %d)" % (number, self.port)
        self.pending_ua = []            # (LUN or None for any, ASC, ASCQ), under lock
        self.report_luns_ua = []        # the same, for the next REPORT LUNS (ua-on-report-luns)
        self.lock = threading.Lock()   # sending and the sequence numbers
        self.statsn = (0x1000 * (number + 1)) & MASK
        self.exp_cmdsn = 1
        self.window = WINDOW
        self.max_xmit = 8192            # the initiator's MaxRecvDataSegmentLength
        self.writes = {}
        self.done_itts = []
        self.next_ttt = 0x100
        self.closed = False
        self.late_reset = None          # reset-late: (answer, CmdSN) of the LU RESET held
        self.held_write = None          # tmf-no-task-write: (task, data) of the WRITE held
        self.slow_capacity = False      # shrink-in-check: its next READ CAPACITY answers 3 s late
        self.late_abort = None          # tmf-late-abort: the ABORT TASK answer held
        self.pings = {}                 # nop-in-ping: TTT -> LUN field of the pings unanswered
        self.next_ping_ttt = 0x70000000
        self.discovery = False
        self.target_name = None     # the TargetName it logged in to (a Normal session)
        self.first_burst = 0            # FirstBurstLength negotiated (--unsolicited)
        self.statsn_check = None        # statsn-*: the ExpStatSN the next command must carry
        self.silent_logout = False      # async-logout-silent: its Logout Request is not answered
        self.frozen_max = None          # window-shut: the MaxCmdSN every PDU carries from now on
        self.chap_step = "method"       # --chap: method, algorithms, response, done
        self.chap_alg = 5               # the CHAP_A chosen
        self.chap_id = 0                # our CHAP_I
        self.chap_c = b""               # our CHAP_C, decoded

    # ---- wire -------------------------------------------------------------

    def recv_exact(self, n):
        chunks = []
        while n > 0:
            try:
                c = self.sock.recv(min(n, 1 << 20))
            except OSError as e:
                raise Closed() from e
            if not c:
                raise Closed()
            chunks.append(c)
            n -= len(c)
        return b"".join(chunks)

    def recv_pdu(self):
        head = bytearray(self.recv_exact(BHS))
        ahs = head[4] * 4
        dlen = (head[5] << 16) | (head[6] << 8) | head[7]
        if ahs:
            self.recv_exact(ahs)
        data = self.recv_exact(dlen + (-dlen % 4))[:dlen] if dlen else b""
        p = Pdu(head, data)
        if self.t.verbose:
            log("%s: <- 0x%02x ITT 0x%x CmdSN %u len %d" % (self.name, p.opcode, p.itt,
                                                       p.u32(24), dlen))
        return p

    def send(self, b, data=b"", stat=None, window=None, dlen=None, ahs=b""):
        """Send BHS @b (+ @ahs) and @data.  @stat: None leaves the StatSN
        field alone, "next" puts the next StatSN there, "adv" also
        advances it.  @window: (ExpCmdSN, MaxCmdSN) to claim instead of the
        real ones; False leaves both fields alone.  @dlen: the
        DataSegmentLength to claim (default len(data))."""
        with self.lock:
            if stat:
                put32(b, 24, self.statsn)
                if stat == "adv":
                    self.statsn = (self.statsn + 1) & MASK
            if window is None and self.frozen_max is not None:
                window = (self.exp_cmdsn, self.frozen_max)
            if window is None:
                put32(b, 28, self.exp_cmdsn)
                put32(b, 32, self.exp_cmdsn + self.window - 1)
            elif window is not False:
                put32(b, 28, window[0])
                put32(b, 32, window[1])
            n = len(data) if dlen is None else dlen
            b[4] = len(ahs) // 4
            b[5:8] = n.to_bytes(3, "big")
            msg = bytes(b) + ahs + data + bytes(-len(data) % 4)
            if self.t.verbose:
                log("%s: -> 0x%02x ITT 0x%x StatSN %u ExpCmdSN %u MaxCmdSN %u len %d" % (
                    self.name, b[0] & 0x3F, u32(b, 16), u32(b, 24), u32(b, 28), u32(b, 32), n))
            try:
                self.sock.sendall(msg)
            except OSError as e:
                raise Closed() from e

    def add_ua(self, lun, asc, ascq, report_luns=False):
        """A Unit Attention for the next command of @lun (None: any);
        with @report_luns, for the next REPORT LUNS alone
        (ua-on-report-luns)."""
        with self.lock:
            if report_luns:
                self.report_luns_ua.append((lun, asc, ascq))
            else:
                self.pending_ua.append((lun, asc, ascq))

    def take_ua(self, t):
        """A Unit Attention pending for the command @t, taken off, or
        None.  INQUIRY, REPORT LUNS and REQUEST SENSE never get one;
        REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED."""
        op = t.cdb[0]
        with self.t.lock:
            storm = self.t.events and self.t.ua_storm and self.target_name == self.t.ua_storm
        with self.lock:
            if op == 0xA0 and self.report_luns_ua:
                return self.report_luns_ua.pop(0)
            if op == 0xA0:
                self.pending_ua = [u for u in self.pending_ua if u[1:] != (0x3F, 0x0E)]
            if op in (0x12, 0xA0, 0x03):
                return None
            if storm:
                return (t.lun, 0x2A, 0x09)   # --ua-storm: every command, every time
            for i, u in enumerate(self.pending_ua):
                if u[0] is None or u[0] == t.lun:
                    del self.pending_ua[i]
                    return u
        return None

    def take_deferred(self):
        """Whether a deferred error is pending (deferred-in-check), taken
        off."""
        with self.t.lock:
            pending = self.t.deferred_pending
            self.t.deferred_pending = False
        return pending

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def later(self, secs, fn):
        """Run @fn in @secs seconds on a thread of its own (ignoring a
        closed connection)."""
        def run():
            time.sleep(secs)
            try:
                fn()
            except (Closed, OSError):
                pass
        threading.Thread(target=run, daemon=True).start()

    # ---- login ------------------------------------------------------------

    @staticmethod
    def parse_text(data):
        pairs = []
        for item in bytes(data).split(b"\0"):
            if not item:
                continue
            k, _, v = item.partition(b"=")
            pairs.append((k.decode("latin-1"), v.decode("latin-1")))
        return pairs

    @staticmethod
    def text(pairs):
        return b"".join(("%s=%s" % kv).encode("latin-1") + b"\0" for kv in pairs)

    def answer_operational(self, pairs):
        out = []
        for k, v in pairs:
            if k in ("HeaderDigest", "DataDigest"):
                out.append((k, "None"))
            elif k == "MaxRecvDataSegmentLength":
                self.max_xmit = int(v, 0)
                # r2t-many: small Data-Out PDUs keep the first R2T
                # outstanding while the second arrives
                ours = 512 if self.t.case == "r2t-many" else OUR_MRDSL
                if self.t.first_burst:
                    ours = UNSOL_MRDSL
                out.append((k, str(ours)))
            elif k == "MaxConnections":
                out.append((k, "1"))
            elif k == "InitialR2T":
                out.append((k, "No" if self.t.first_burst and v == "No" else "Yes"))
            elif k == "ImmediateData":
                out.append((k, "Yes" if self.t.first_burst and v == "Yes" else "No"))
            elif k == "MaxBurstLength":
                mbl = 262144 if self.t.case == "r2t-many" else MAX_BURST
                out.append((k, str(min(int(v, 0), mbl))))
            elif k == "FirstBurstLength":
                fbl = min(int(v, 0), self.t.first_burst or MAX_BURST)
                if self.t.first_burst:
                    self.first_burst = fbl
                out.append((k, str(fbl)))
            elif k == "DefaultTime2Wait":
                out.append((k, v))
            elif k == "DefaultTime2Retain":
                out.append((k, "0"))
            elif k == "MaxOutstandingR2T":
                out.append((k, str(MAX_R2T)))
            elif k in ("DataPDUInOrder", "DataSequenceInOrder"):
                out.append((k, "Yes"))
            elif k == "ErrorRecoveryLevel":
                out.append((k, "0"))
            elif k in ("InitiatorName", "InitiatorAlias", "SessionType", "TargetName", "AuthMethod"):
                pass
            else:
                out.append((k, "NotUnderstood"))
        return out

    def login_rsp(self, req, flags, data=b"", status=(0, 0), tsih=0, itt=None,
                  dlen=None, ahs=b""):
        b = bhs(OP_LOGIN_RSP, flags)
        b[8:14] = req.bhs[8:14]
        put16(b, 14, tsih)
        put32(b, 16, req.itt if itt is None else itt)
        b[36], b[37] = status
        maxsn = self.exp_cmdsn - 1 if self.t.case in ("window-closed", "window-r2t") else \
            self.exp_cmdsn + self.window - 1
        self.send(b, data, stat="adv", window=(self.exp_cmdsn, maxsn), dlen=dlen, ahs=ahs)

    def login(self):
        """Run the login phase.  Returns True in full feature phase."""
        case = self.t.case
        bad = self.t.trigger == "login" or (self.t.trigger == "relogin" and self.t.events > 0)
        first = True
        while True:
            req = self.recv_pdu()
            if req.opcode != OP_LOGIN_REQ:
                log("%s: %s during login; closing" % (self.name, hex(req.opcode)))
                return False
            if first and case == "write-lost-late":
                self.t.wait_stale(self)
            if first and case == "tpg-failover-late" and self.primary:
                with self.t.lock:
                    closed = self.t.port1_closed
                if closed:
                    log("%s: the first port closes the connection" % self.name)
                    return False
            self.exp_cmdsn = req.u32(24)
            csg = (req.flags >> 2) & 3
            nsg = req.flags & 3
            transit = bool(req.flags & 0x80)
            pairs = self.parse_text(req.data)
            keys = dict(pairs)
            if first and bad and case in ("login-drop", "login-drop-always") and \
                    self.t.fire("login", "closing the connection after the first Login Request"):
                return False
            if csg == 0 and self.t.chap and not self.discovery and not first:
                if not self.chap_exchange(req, keys, transit, nsg):
                    return False
                continue
            if csg == 0:
                if first:
                    self.discovery = keys.get("SessionType") == "Discovery"
                    self.target_name = keys.get("TargetName")
                    if keys.get("SessionType", "Normal") not in ("Normal", "Discovery"):
                        self.login_rsp(req, 0, status=(2, 9))
                        return False
                    if not self.discovery and keys.get("TargetName") not in self.t.names:
                        log("%s: unknown target %r" % (self.name, keys.get("TargetName")))
                        self.login_rsp(req, 0, status=(2, 3))
                        return False
                    if not self.discovery and self.target_name in self.t.hang_login:
                        return self.hang(self.target_name)
                    if not self.discovery and case == "login-slow" and \
                            self.t.fire("login", "answering the login in 4 s"):
                        time.sleep(4)
                if first and self.t.chap and not self.discovery:
                    first = False
                    if not self.chap_exchange(req, keys, transit, nsg):
                        return False
                    continue
                answer = [("AuthMethod", "None")] if "AuthMethod" in keys else []
                if first:
                    group = "2" if case == "tpg-failover-late" and not self.primary else "1"
                    answer.append(("TargetPortalGroupTag", group))
                first = False
                if bad and self.login_misbehave(req, answer):
                    continue
                flags = 0
                if transit and nsg in (1, 3):
                    flags = 0x80 | nsg
                if bad and transit and case in ("login-final-offer", "login-skip-operational"):
                    flags = 0x80 | 3
                    if case == "login-final-offer":
                        answer += [("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]
                    self.t.fire("login", "to the full feature phase from the security stage%s" % (
                        " with HeaderDigest=CRC32C and DataDigest=CRC32C offered"
                        if case == "login-final-offer" else ""))
                if bad and not transit and case == "login-transit-unasked" and "AuthMethod" in keys:
                    flags = 0x80 | 3
                    self.t.fire("login", "AuthMethod=None and on to the full feature phase (T=1), "
                                "answering a request with T=0")
                self.login_rsp(req, flags, self.text(answer),
                               tsih=self.t.tsih() if flags & 3 == 3 else 0)
                if flags & 3 == 3:
                    return True
            elif csg == 1:
                answer = self.answer_operational(pairs)
                if bad and case == "login-chap-operational":
                    self.t.fire("login", "CHAP_A=5 in the operational stage")
                    answer.append(("CHAP_A", "5"))
                if bad and case == "login-names":
                    answer.append(("TargetAlias", "../../etc/\x01\x1b[31mevil\x7f/.."))
                    answer.append(("TargetName", "iqn.x/../../..\x02\x1b]0;pwned\x07"))
                    self.t.fire("login", "TargetAlias/TargetName with / .. and control characters")
                if transit and nsg == 3:
                    if bad and case == "login-expcmdsn":
                        self.exp_cmdsn = (self.exp_cmdsn + 7) & MASK
                        self.t.fire("login", "ExpCmdSN %u in the last Login Response" % self.exp_cmdsn)
                    self.login_rsp(req, 0x80 | 0x04 | 3, self.text(answer), tsih=self.t.tsih())
                    return True
                self.login_rsp(req, 0x04, self.text(answer))
            else:
                self.login_rsp(req, 0, status=(2, 0xB))
                return False

    def hang(self, name):
        """--hang-login: leave the login to @name unanswered, reading (and
        dropping) whatever comes until the initiator closes the
        connection.  Returns False."""
        log("%s: login to %s held unanswered" % (self.name, name))
        try:
            while True:
                self.recv_pdu()
        except (Closed, OSError):
            pass
        log("%s: the initiator closed the held login to %s" % (self.name, name))
        return False

    # ---- CHAP (--chap, --mutual; issue 12) ----------------------------------

    @staticmethod
    def chap_digest(alg, ident, secret, challenge):
        """H(CHAP_I || secret || CHAP_C) with the CHAP_A algorithm @alg."""
        h = hashlib.new(CHAP_ALGS[alg])
        h.update(bytes([ident]) + secret + challenge)
        return h.digest()

    @staticmethod
    def chap_decode(value):
        """A 0x-hex or 0b-base64 value (RFC 7143 6.1) into bytes, or None."""
        try:
            if value[:2] in ("0x", "0X"):
                return bytes.fromhex(value[2:])
            if value[:2] in ("0b", "0B"):
                return base64.b64decode(value[2:], validate=True)
        except ValueError:
            pass
        return None

    def chap_refuse(self, req, why):
        log("%s: CHAP: %s; authentication failed" % (self.name, why))
        self.login_rsp(req, 0, status=(2, 1))
        return False

    def chap_exchange(self, req, keys, transit, nsg):
        """One security-stage exchange with CHAP required (RFC 7143
        12.1.3): AuthMethod, then CHAP_A/I/C, then the initiator's
        CHAP_N/R checked and, when it challenges us, our own answer.  The
        chap-* cases spoil one value each.  Returns False when the login
        ends here."""
        case = self.t.case
        bad = self.t.trigger == "login"
        step = self.chap_step
        if step == "method":
            if "CHAP" not in keys.get("AuthMethod", "").split(","):
                return self.chap_refuse(req, "AuthMethod %r offers no CHAP" % keys.get("AuthMethod"))
            self.chap_step = "algorithms"
            self.login_rsp(req, 0, self.text([("AuthMethod", "CHAP"), ("TargetPortalGroupTag", "1")]))
            return True
        if step == "algorithms":
            offered = keys.get("CHAP_A", "").split(",")
            alg = "5"
            if bad and case == "chap-reflect" and not self.t.challenges and "7" in offered:
                alg = "7"      # SHA-256 first: refusing its response makes the initiator retry
            if bad and case == "chap-a-unoffered":
                alg = next((a for a in ("6", "7", "8", "5") if a not in offered), "200")
                self.t.fire("login", "CHAP_A=%s, the initiator offered %s" % (alg, ",".join(offered)))
            elif alg not in offered:
                return self.chap_refuse(req, "CHAP_A=%s has no algorithm we take" % ",".join(offered))
            self.chap_alg = int(alg)
            self.chap_id = os.urandom(1)[0]
            self.chap_c = os.urandom(16)
            ident, chal = str(self.chap_id), "0x" + self.chap_c.hex()
            if bad:
                if case == "chap-c-base64":
                    chal = "0b" + base64.b64encode(self.chap_c).decode()
                elif case == "chap-c-upper":
                    chal = "0X" + self.chap_c.hex().upper()
                elif case == "chap-c-long":
                    chal = "0x" + "ab" * 1025
                elif case == "chap-c-odd":
                    chal = chal[:-1]
                elif case == "chap-c-empty":
                    chal = "0x"
                elif case == "chap-c-blank":
                    chal = ""
                elif case == "chap-i-range":
                    ident = "256"
                elif case == "chap-reflect" and self.t.challenges:
                    chal = self.t.challenges[-1]
                    self.chap_c = self.chap_decode(chal)
                if case in ("chap-c-base64", "chap-c-upper", "chap-c-long", "chap-c-odd",
                            "chap-c-empty", "chap-c-blank", "chap-i-range") or \
                        (case == "chap-reflect" and self.t.challenges):
                    self.t.fire("login", "CHAP_I=%s CHAP_C=%s" % (ident, chal[:40]))
            self.chap_step = "response"
            self.login_rsp(req, 0, self.text([("CHAP_A", alg), ("CHAP_I", ident), ("CHAP_C", chal)]))
            return True
        if step != "response":
            return self.chap_refuse(req, "a security-stage request after CHAP ended")
        user, secret = self.t.chap
        got = self.chap_decode(keys.get("CHAP_R", ""))
        want = self.chap_digest(self.chap_alg, self.chap_id, secret, self.chap_c)
        if keys.get("CHAP_N") != user or got != want:
            return self.chap_refuse(req, "wrong CHAP_N or CHAP_R from %r" % keys.get("CHAP_N"))
        out = []
        if "CHAP_C" in keys:
            self.t.challenges.append(keys["CHAP_C"])
            if bad and case == "chap-reflect" and self.chap_alg == 7:
                return self.chap_refuse(req, "(chap-reflect) refusing the SHA-256 response; "
                                        "its challenge is kept")
            if not self.t.mutual:
                return self.chap_refuse(req, "the initiator challenges us, but no --mutual")
            tuser, tsecret = self.t.mutual
            ichal = self.chap_decode(keys["CHAP_C"])
            iid = int(keys.get("CHAP_I", "-1"))
            if ichal is None or not 0 <= iid <= 255:
                return self.chap_refuse(req, "malformed CHAP_I/CHAP_C from the initiator")
            if bad and case == "chap-r-wrong":
                tsecret = tsecret + b"-not"
                self.t.fire("login", "CHAP_R made with another secret")
            resp = self.chap_digest(self.chap_alg, iid, tsecret, ichal)
            rvalue = "0x" + resp.hex()
            if bad and case == "chap-c-base64":
                rvalue = "0b" + base64.b64encode(resp).decode()
            out = [("CHAP_N", tuser), ("CHAP_R", rvalue)]
            if bad and case == "chap-skip-mutual":
                out = []
                self.t.fire("login", "no CHAP_N/CHAP_R; on to the operational stage")
        if bad and case in ("chap-good", "chap-mutual") and bool(out) == (case == "chap-mutual"):
            self.t.fire("login", "CHAP with MD5 for %s%s" % (user, ", answered as " + out[0][1] if out else ""))
        self.chap_step = "done"
        self.login_rsp(req, 0x80 | nsg if transit else 0, self.text(out))
        return True

    def login_misbehave(self, req, answer):
        """The login cases, in the security stage.  Returns True when the
        target already answered (or keeps talking)."""
        case = self.t.case
        if case == "login-no-nul":
            self.t.fire("login")
            self.login_rsp(req, 0x80 | 1, self.text(answer)[:-1])
            return True
        if case == "login-dsl-over":
            self.t.fire("login")
            self.login_rsp(req, 0x80 | 1, self.text(answer + [("X-Big", "b" * 9000)]))
            return True
        if case == "login-long-key":
            self.t.fire("login")
            text = self.text(answer + [("X-Long-Key", "a" * 9000)])
            self.continued(req, text, 0x80 | 1)
            return True
        if case == "login-many-keys":
            self.t.fire("login")
            text = self.text(answer + [("X-Unknown-%04d" % i, "1") for i in range(3000)])
            self.continued(req, text, 0x80 | 1)
            return True
        if case == "login-loop":
            self.t.fire("login", "a security-stage answer without T")
            self.login_rsp(req, 0, self.text(answer))
            return True
        if case == "login-itt":
            self.t.fire("login")
            self.login_rsp(req, 0x80 | 1, self.text(answer), itt=req.itt ^ 0x5A5A)
            return True
        if case == "login-stage":
            self.t.fire("login")
            self.login_rsp(req, 0x80 | 2, self.text(answer))
            return True
        if case == "login-ahs":
            self.t.fire("login")
            self.login_rsp(req, 0x80 | 1, self.text(answer), ahs=b"\xde\xad\xbe\xef" * 3)
            return True
        if case == "login-redirect-loop":
            self.t.fire("login")
            addr = "%s:%d,1" % self.sock.getsockname()[:2]
            self.login_rsp(req, 0, self.text([("TargetAddress", addr)]), status=(1, 1))
            return True
        if case in ("login-redirect-temp", "login-redirect-perm") and self.primary:
            detail = 1 if case == "login-redirect-temp" else 2
            addr = "%s:%d,1" % (self.sock.getsockname()[0], self.t.port2)
            self.t.fire("login", "moved %s to %s" % ("temporarily" if detail == 1 else "permanently", addr))
            self.login_rsp(req, 0, self.text([("TargetAddress", addr)]), status=(1, detail))
            return True
        if case == "login-redirect-ctl":
            addr = "%s\x1b[2J\x1b]0;owned\x07:%d,1" % self.sock.getsockname()[:2]
            self.t.fire("login", "moved temporarily to an address with ESC sequences and BEL")
            self.login_rsp(req, 0, self.text([("TargetAddress", addr)]), status=(1, 1))
            return True
        if case in ("login-empty-continue", "relogin-empty-continue"):
            if not self.t.fire(self.t.trigger):
                return False
            while True:
                self.login_rsp(req, 0x40)           # C=1, CSG 0, no text
                req = self.next_login_req()
        if case == "login-trickle":
            self.t.fire("login")
            while True:
                time.sleep(0.3)
                self.login_rsp(req, 0x40, b"X-Tr")  # a piece of a key that never ends
                req = self.next_login_req()
        if case == "login-few-empty":
            self.t.fire("login", "4 empty continued Login Responses before the answer")
            for _ in range(4):
                time.sleep(0.2)
                self.login_rsp(req, 0x40)
                self.next_login_req()
            return False                            # then the answer
        if case == "login-nop":
            self.t.fire("login")
            b = bhs(OP_NOP_IN)
            put32(b, 16, RESERVED)
            put32(b, 20, RESERVED)
            self.send(b, stat="next")
            return True
        return False

    def next_login_req(self):
        """The next PDU, which must be a Login Request (else the
        connection is given up)."""
        req = self.recv_pdu()
        if req.opcode != OP_LOGIN_REQ:
            log("%s: %s during login; closing" % (self.name, hex(req.opcode)))
            raise Closed()
        return req

    def continued(self, req, text, last_flags):
        """Send @text in Login Responses of at most 8192 bytes, C=1 on all
        but the last; each continuation is asked for with an empty
        Login Request."""
        parts = [text[i:i + 8192] for i in range(0, len(text), 8192)]
        for i, part in enumerate(parts):
            if i:
                nxt = self.recv_pdu()
                if nxt.opcode != OP_LOGIN_REQ:
                    raise Closed()
                req = nxt
            self.login_rsp(req, last_flags if i == len(parts) - 1 else 0x40, part)

    # ---- full feature phase ----------------------------------------------

    def serve(self):
        if self.t.case in ("window-closed", "window-r2t"):
            self.t.fire("session")
            self.later(0.1, self.open_window)
        while True:
            p = self.recv_pdu()
            if p.opcode == OP_SCSI_CMD:
                self.scsi_cmd(p)
            elif p.opcode == OP_DATA_OUT:
                self.data_out(p)
            elif p.opcode == OP_NOP_OUT:
                if p.itt == RESERVED and p.u32(20) != RESERVED:
                    self.ping_answer(p)
                elif p.itt != RESERVED and self.t.case == "reject-ping" and \
                        self.t.fire("ping", "Reject of the NOP-Out ITT 0x%x" % p.itt):
                    b = bhs(OP_REJECT)
                    b[2] = 0x05
                    put32(b, 16, RESERVED)
                    self.send(b, bytes(p.bhs), stat="adv", window=self.cur_window())
                elif p.itt != RESERVED:
                    b = bhs(OP_NOP_IN)
                    b[8:16] = p.bhs[8:16]
                    put32(b, 16, p.itt)
                    put32(b, 20, RESERVED)
                    self.send(b, p.data, stat="adv", window=self.cur_window())
            elif p.opcode == OP_LOGOUT_REQ and self.silent_logout:
                log("%s: not answering the Logout Request" % self.name)
            elif p.opcode == OP_LOGOUT_REQ:
                b = bhs(OP_LOGOUT_RSP)
                put32(b, 16, p.itt)
                if self.t.fire("logout", "Logout Response 3 (cleanup failed)"):
                    b[2] = 3
                self.send(b, stat="adv", window=self.cur_window())
                log("%s: logged out" % self.name)
                self.close()
                return
            elif p.opcode == OP_TMF_REQ:
                function, case = p.bhs[1] & 0x7f, self.t.case
                log("%s: task management function %d for ITT 0x%x" % (self.name, function,
                                                                      p.u32(20)))
                if case == "tmf-silent":
                    continue
                b = bhs(OP_TMF_RSP)
                b[2] = 0
                if case in ("reset-tas", "reset-silent", "reset-set-refused", "reset-late"):
                    b[2] = self.reset_case_tmf(function, p)
                if case == "reset-late" and function == 5:
                    put32(b, 16, p.itt)
                    self.late_reset = (b, p.u32(24))
                    self.later(1.5, self.answer_late_reset)
                    continue
                if case == "tmf-late-abort" and function == 1:
                    put32(b, 16, p.itt)
                    self.late_abort = b
                    log("%s: holding the answer to ABORT TASK ITT 0x%x" % (self.name, p.itt))
                    continue
                if case == "tmf-late-abort" and function == 5 and self.late_abort:
                    log("%s: answering the ABORT TASK now, after the LU RESET (ITT 0x%x) came" % (
                        self.name, p.itt))
                    self.send(self.late_abort, stat="adv", window=self.cur_window())
                    self.late_abort = None
                if case == "tmf-no-task" and function == 1:
                    b[2] = 1
                if case == "tmf-no-task-write" and function == 1:
                    b[2] = 1
                    self.later(1.0, self.land_held_write)
                if case == "tmf-no-task-write" and function == 5:
                    with self.lock:
                        held, self.held_write = self.held_write, None
                    if held:
                        log("%s: the LU RESET ends the held WRITE ITT 0x%x" % (self.name, held[0].itt))
                if case == "abort-refused" and function == 1:
                    b[2] = 255
                elif case == "reset-refused":
                    b[2] = 5 if function == 1 else 255
                put32(b, 16, p.itt)
                self.send(b, stat="adv", window=self.cur_window())
                if case == "tmf-replay" and function == 1:
                    for _ in range(TMF_REPLAYS):
                        self.send(b, stat="adv", window=self.cur_window())
            elif p.opcode == OP_TEXT_REQ:
                if not p.immediate:
                    self.exp_cmdsn = (p.u32(24) + 1) & MASK
                if self.discovery and self.t.case in self.STALL_CASES:
                    self.stall_discovery(p)
                    continue
                keys = dict(self.parse_text(p.data))
                text = self.send_targets() if "SendTargets" in keys else b""
                b = bhs(OP_TEXT_RSP)
                put32(b, 16, p.itt)
                put32(b, 20, RESERVED)
                ahs = b""
                if self.t.case == "discovery-ahs" and "SendTargets" in keys:
                    ahs = bytes([0, 9, 0x7F, 0]) + b"\xaa" * 8   # length 9, a reserved type
                self.send(b, text, stat="adv", window=self.cur_window(), ahs=ahs)
            else:
                log("%s: rejecting opcode 0x%02x" % (self.name, p.opcode))
                b = bhs(OP_REJECT)
                b[2] = 0x04
                put32(b, 16, RESERVED)
                self.send(b, bytes(p.bhs), stat="adv")

    def land_held_write(self):
        """tmf-no-task-write: the held WRITE is carried out after all
        (unless an LU RESET ended it), its status never sent."""
        with self.lock:
            held, self.held_write = self.held_write, None
        if held:
            self.execute(held[0], held[1])
            log("%s: the held WRITE ITT 0x%x carried out" % (self.name, held[0].itt))

    def answer_late_reset(self):
        """reset-late: the LU RESET's answer, once (the first command sent
        after it, or 1.5 s)."""
        with self.t.lock:
            pending, self.late_reset = self.late_reset, None
        if pending:
            log("%s: answering the LU RESET now" % self.name)
            self.send(pending[0], stat="adv", window=self.cur_window())

    def reset_case_tmf(self, function, p):
        """reset-tas, reset-silent, reset-set-refused: what a task management function does
        to the READs held (SAM-5: a reset ends the tasks of every I_T
        nexus on the LUN; ABORT TASK SET those of this one).  Returns the
        TMF response code."""
        lun = lun_number(p.bhs[8:16])
        with self.t.lock:
            held = self.t.held
            if function == 1:       # ABORT TASK: refused while held here
                return 255 if any(c is self and t.itt == p.u32(20) for c, t in held) else 1
            if function not in (2, 5) or (function == 2 and self.t.case == "reset-set-refused"):
                return 5
            ended = [(c, t) for c, t in held if t.lun == lun and (function == 5 or c is self)]
            self.t.held = [h for h in held if h not in ended]
        for c, t in ended:
            if c is not self and function == 5 and self.t.case == "reset-tas":
                log("%s: READ ITT 0x%x ended by the reset from %s: TASK ABORTED" % (c.name, t.itt, self.name))
                c.respond(t, b"", TASK_ABORTED)
            else:
                log("%s: READ ITT 0x%x ended by %s from %s, without a word" % (
                    c.name, t.itt, "the reset" if function == 5 else "ABORT TASK SET", self.name))
        return 0

    # issue 12, item 3: discoveries that never end, and a slow one that does
    STALL_CASES = ("discovery-nop", "discovery-async", "discovery-trickle", "discovery-nop-few")

    def nop_in(self, ttt):
        """A NOP-In of our own; with @ttt other than RESERVED it asks for
        a NOP-Out."""
        b = bhs(OP_NOP_IN)
        put32(b, 16, RESERVED)
        put32(b, 20, ttt)
        self.send(b, stat="next", window=self.cur_window())

    def nop_out_answer(self, ttt):
        """Wait (2 s at most) for the NOP-Out answering NOP-In @ttt;
        whether it came."""
        ready, _, _ = select.select([self.sock], [], [], 2)
        if not ready:
            return False
        p = self.recv_pdu()
        ok = p.opcode == OP_NOP_OUT and p.itt == RESERVED and p.u32(20) == ttt
        log("%s: %s" % (self.name, "NOP-Out answer for TTT 0x%x" % ttt if ok else
                        "not a NOP-Out answer: opcode 0x%02x ITT 0x%x TTT 0x%x" % (
                            p.opcode, p.itt, p.u32(20))))
        return ok

    def stall_discovery(self, p):
        """The discovery cases of STALL_CASES, instead of the Text Response
        to SendTargets=All.  Never returns for the endless ones."""
        case = self.t.case
        self.t.fire("discovery")
        if case == "discovery-nop-few":
            for i in range(3):
                ttt = 0x7000 + i if i == 1 else RESERVED
                self.nop_in(ttt)
                if ttt != RESERVED and not self.nop_out_answer(ttt):
                    log("%s: no NOP-Out answer; no SendTargets answer either" % self.name)
                    return
            addr = "%s:%d,1" % self.sock.getsockname()[:2]
            b = bhs(OP_TEXT_RSP)
            put32(b, 16, p.itt)
            put32(b, 20, RESERVED)
            self.send(b, self.text([("TargetName", self.t.iqn), ("TargetAddress", addr)]),
                      stat="adv", window=self.cur_window())
            return
        n = 0
        while True:
            if case == "discovery-nop":
                # NOP-Out answers pile up unread: a few hundred bytes
                self.nop_in(0x8000 + n if n % 2 else RESERVED)
                time.sleep(0.01)
            elif case == "discovery-async":
                self.async_msg(255)               # vendor specific
                time.sleep(0.01)
            else:
                time.sleep(0.5)
                b = bhs(OP_TEXT_RSP, 0x40)        # C=1, F=0
                put32(b, 16, p.itt)
                put32(b, 20, 0x100 + n)           # TTT: ask with it for the rest
                self.send(b, b"Targ", stat="adv", window=self.cur_window())
                p = self.recv_pdu()               # the empty Text Request asking for more
            n += 1

    def send_targets(self):
        """The SendTargets=All answer: our target, and for the discovery
        cases one more whose name is hostile."""
        addr = "%s:%d,1" % self.sock.getsockname()[:2]
        pairs = []
        for name in self.t.names:
            pairs += [("TargetName", name), ("TargetAddress", addr)]
        bad = {
            "discovery-slash": "iqn.2026-11.org.evil:x/../../../etc",
            "discovery-dotdot": "..",
            "discovery-ctl": "iqn.2026-11.org.evil:\x1b[2J\x07bell",
        }.get(self.t.case)
        if self.t.trigger == "discovery" and self.t.fire("discovery"):
            host, port = self.sock.getsockname()[:2]
            if bad:
                pairs += [("TargetName", bad), ("TargetAddress", addr)]
            elif self.t.case == "discovery-addr-ctl":
                pairs[1] = ("TargetAddress", "%s\x1b]0;owned\x07\x1b[2J:%d,1" % (host, port))
            elif self.t.case == "discovery-dsl-over":
                pairs.insert(1, ("TargetAlias", "a" * 300000))
            elif self.t.case == "discovery-pair-ctl":
                return self.text(pairs) + b"\x1b]0;owned\x07\x1b[2J\0"
            elif self.t.case == "discovery-dot-iscsifs":
                pairs += [("TargetName", ".iscsifs"), ("TargetAddress", addr)]
            elif self.t.case == "discovery-dup":
                pairs += [("TargetName", self.t.iqn), ("TargetAddress", "%s:%d,2" % (host, self.t.port2)),
                          ("TargetAddress", addr)]
        if self.t.case == "tpg-failover-late":
            host = self.sock.getsockname()[0]
            pairs.insert(pairs.index(("TargetName", self.t.iqn)) + 2,
                         ("TargetAddress", "%s:%d,2" % (host, self.t.port2)))
        if self.t.case == "alua-standby-port":
            host = self.sock.getsockname()[0]
            pairs.insert(pairs.index(("TargetName", self.t.iqn)) + 2,
                         ("TargetAddress", "%s:%d,2" % (host, self.t.port2)))
        return self.text(pairs)

    def cur_window(self):
        """(ExpCmdSN, MaxCmdSN) to send: the real window, or a closed one."""
        if self.t.case in ("window-closed", "window-r2t"):
            return (self.exp_cmdsn, self.exp_cmdsn - 1)
        return None

    def one_slot(self):
        """window-r2t: the window an R2T or a SCSI Response claims, open
        by one command; else the usual one (cur_window())."""
        if self.t.case == "window-r2t":
            return (self.exp_cmdsn, self.exp_cmdsn)
        return self.cur_window()

    def open_window(self):
        """window-closed: an unsolicited NOP-In that opens the window by one."""
        b = bhs(OP_NOP_IN)
        put32(b, 16, RESERVED)
        put32(b, 20, RESERVED)
        self.send(b, stat="next", window=(self.exp_cmdsn, self.exp_cmdsn))

    def scsi_cmd(self, p):
        t = Task(p)
        if self.statsn_check is not None:
            self.check_exp_statsn(p.u32(28))
        if self.t.case == "login-expcmdsn" and not p.immediate and sn_lt(t.cmdsn, self.exp_cmdsn):
            log("%s: dropping CmdSN %u, below ExpCmdSN %u" % (self.name, t.cmdsn, self.exp_cmdsn))
            return
        if not p.immediate and not sn_lt(t.cmdsn + 1, self.exp_cmdsn):
            self.exp_cmdsn = (t.cmdsn + 1) & MASK
        ua = self.take_ua(t)
        if ua:
            log("%s: UNIT ATTENTION %02x/%02x for CDB 0x%02x on LUN %d" % (
                self.name, ua[1], ua[2], t.cdb[0], t.lun))
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x06, ua[1], ua[2]))
            return
        if self.t.case == "ua-lun-swapped-busy" and t.write and t.lun == 1 and self.t.swap_busy():
            log("%s: BUSY for a WRITE of LUN 1" % self.name)
            self.respond(t, b"", BUSY)
            return
        if t.lun == 1 and t.cdb[0] not in (0x12, 0xA0, 0x03) and self.take_deferred():
            log("%s: deferred error for CDB 0x%02x on LUN 1" % (self.name, t.cdb[0]))
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x03, 0x0C, 0x00, deferred=True))
            return
        if (self.t.case == "alua-standby-port" and self.primary and t.lun == 1 and
                t.cdb[0] in (0x28, 0x88, 0x2A, 0x8A) and self.t.fire("standby")):
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x02, 0x04, 0x0B))
            return
        if self.t.case == "window-closed":
            self.later(0.1, self.open_window)
        if t.write and t.lun == 1 and self.t.trigger == "fua1" and t.cdb[0] in (0x2A, 0x8A):
            fua = bool(t.cdb[1] & 0x08)
            log("%s: WRITE%s of LUN 1" % (self.name, " with FUA" if fua else ""))
            if fua and self.t.fire("fua1") and self.t.case == "fua-refused":
                self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x05, 0x24, 0x00))
                return
        if t.write and t.lun == 1 and self.t.trigger == "write2":
            with self.t.lock:
                self.t.lun1_writes += 1
                later = self.t.lun1_writes > 1
            if later and self.t.fire("write2"):
                self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x07, 0x27, 0x00))
                return
        if t.write and t.lun == 1 and t.cdb[0] in (0x2A, 0x8A):
            if self.bad_write(t, p.data):
                return
        if t.write:
            t.buf = bytearray(t.edtl)
            t.have = bytearray(t.edtl)
            self.writes[t.itt] = t
            self.take_data(t, 0, p.data)
            if self.first_burst:
                # the initiator sends up to FirstBurstLength unasked
                t.next_off = min(t.edtl, self.first_burst)
            if t.edtl == 0 or self.write_complete(t):
                self.finish_write(t)
            elif self.t.case == "window-r2t" and t.lun == 1:
                log("%s: WRITE ITT 0x%x of LUN 1: its first R2T in 1 s" % (self.name, t.itt))
                self.later(1.0, lambda: self.issue_r2ts(t))
            else:
                self.issue_r2ts(t)
            return
        if t.lun == 1 and t.cdb[0] in (0x28, 0x88) and self.bad_read(t):
            return
        status, data, sense = self.execute(t, None)
        late = self.late_reset
        if late and not sn_lt(t.cmdsn, late[1]):
            # sent after the reset: not part of it; its answer after the
            # reset's, as a target still running it would
            log("%s: command ITT 0x%x (CmdSN %d) came after the LU RESET (CmdSN %d)" % (
                self.name, t.itt, t.cmdsn, late[1]))
            self.answer_late_reset()
            self.later(0.3, lambda: self.respond(t, data, status, sense))
            return
        if t.delay:
            # a slow answer; the connection goes on meanwhile (NOP-Outs,
            # other commands)
            self.later(t.delay, lambda: self.respond(t, data, status, sense))
            return
        self.respond(t, data, status, sense)

    def check_exp_statsn(self, exp):
        """statsn-skip, statsn-repeat: the first command after the odd
        status acknowledges it: its ExpStatSN is the StatSN of that status
        plus one, neither behind (the gap not taken) nor ahead."""
        want = self.statsn_check
        self.statsn_check = None
        log("%s: ExpStatSN %u after the odd StatSN: %s (expected %u)" % (
            self.name, exp, "right" if exp == want else "WRONG", want))

    def issue_r2ts(self, t):
        if t.r2t_plan is not None:
            while len(t.bursts) < MAX_R2T and t.r2t_plan:
                self.r2t(t, *t.r2t_plan.pop(0))
            if not t.r2t_plan:
                t.next_off = t.edtl      # nothing more is asked for
            return
        while len(t.bursts) < MAX_R2T and t.next_off < t.edtl:
            length = min(MAX_BURST, t.edtl - t.next_off)
            self.r2t(t, t.next_off, length)
            t.next_off += length

    def r2t(self, t, offset, length, ttt=None, itt=None):
        if ttt is None:
            ttt = self.next_ttt
            self.next_ttt = (self.next_ttt + 1) & 0x7FFFFFFF
        t.bursts[ttt] = [offset, length]
        b = bhs(OP_R2T)
        b[8:16] = lun_field(max(t.lun, 0))
        put32(b, 16, t.itt if itt is None else itt)
        put32(b, 20, ttt)
        put32(b, 36, t.r2tsn)
        put32(b, 40, offset)
        put32(b, 44, length)
        t.r2tsn += 1
        self.send(b, stat="next", window=self.one_slot())

    def take_data(self, t, off, data, solicited=False):
        """Payload bytes of write @t at @off (immediate data or Data-Out)."""
        if data and off + len(data) <= len(t.buf):
            t.buf[off:off + len(data)] = data
            if t.have is not None:
                t.have[off:off + len(data)] = b"\1" * len(data)
            if not solicited:
                t.unsolicited += len(data)

    def write_complete(self, t):
        """Every byte of @t came, and no R2T is still being answered."""
        return t.next_off >= t.edtl and not t.bursts and \
            (t.have is None or t.have.count(0) == 0)

    def data_out(self, p):
        t = self.writes.get(p.itt)
        if not t:
            log("%s: Data-Out for unknown ITT 0x%x ignored" % (self.name, p.itt))
            return
        off = p.u32(40)
        ttt = p.u32(20)
        self.take_data(t, off, p.data, solicited=ttt != RESERVED)
        if ttt == RESERVED and p.flags & F_BIT and t.lun == 1:
            self.unsolicited_done(t)
        if p.flags & F_BIT:
            t.bursts.pop(ttt, None)
            if self.write_complete(t):
                self.finish_write(t)
            else:
                self.issue_r2ts(t)

    def finish_write(self, t):
        del self.writes[t.itt]
        if t.overflow:      # write-overflow: not written
            log("%s: WRITE ITT 0x%x: all %d bytes came; GOOD with the O bit, not written" % (
                self.name, t.itt, t.edtl))
            self.respond(t, b"", resid=(DI_OVER, 7 * t.edtl))
            return
        if t.held:
            log("%s: WRITE ITT 0x%x of LUN 1: data taken, held unanswered" % (self.name, t.itt))
            with self.lock:
                self.held_write = (t, bytes(t.buf))
            return
        if t.lost_late:
            secs = 4.0 if self.t.case == "tpg-failover-late" else 1.0
            log("%s: WRITE ITT 0x%x of LUN 1: data taken, connection closed; the data lands "
                "in %g s" % (self.name, t.itt, secs))
            self.t.stale_write(self, t, bytes(t.buf), secs)
            if self.t.case == "tpg-failover-late":
                with self.t.lock:
                    self.t.port1_closed = True
            self.close()
            return
        if self.t.case == "write-same-residual" and t.lun == 1 and t.cdb[0] == 0x93:
            log("%s: WRITE SAME(16) of LUN 1: GOOD, residual %d (none taken), nothing written" % (
                self.name, t.edtl))
            self.respond(t, b"", took=0)
            return
        status, _, sense = self.execute(t, bytes(t.buf))
        if self.t.case == "unmap-residual" and t.lun == 1 and t.cdb[0] == 0x42 and status == GOOD:
            log("%s: UNMAP of LUN 1 done; GOOD with residual %d" % (self.name, t.edtl))
            self.respond(t, b"", took=0)
            return
        if t.slow:
            log("%s: WRITE ITT 0x%x of LUN 1: its data came; answered in 2 s" % (self.name, t.itt))
            self.later(2.0, lambda: self.respond(t, b"", status, sense))
            return
        if self.t.case == "window-r2t" and t.lun == 1:
            log("%s: WRITE ITT 0x%x of LUN 1: its data came; answered in 2 s" % (self.name, t.itt))
            self.later(2.0, lambda: self.respond(t, b"", status, sense))
            return
        self.respond(t, b"", status, sense)

    def respond(self, t, data, status=GOOD, sense=b"", window=None, took=None, resid=None):
        """Data-In PDUs for @data (the status rides on the last one when
        GOOD), or a SCSI Response with @sense.  The residual is what a
        read leaves unsent; for a write, the bytes not taken when @took
        says how many were (else none); @resid, a pair of flags (DI_OVER,
        DI_UNDER) and a count, overrides it."""
        data = data[:t.edtl]
        n = len(data)
        resid_flags, residual = 0, 0
        moved = n if not t.write else t.edtl if took is None else took
        if moved < t.edtl:
            resid_flags, residual = DI_UNDER, t.edtl - moved
        if resid is not None:
            resid_flags, residual = resid
        chunk = min(DATA_IN_CHUNK, self.max_xmit)
        offs = list(range(0, n, chunk))
        collapse = status == GOOD and n > 0 and not sense
        if window is None:
            window = self.one_slot()
        for i, off in enumerate(offs):
            last = i == len(offs) - 1
            b = bhs(OP_DATA_IN, 0)
            put32(b, 16, t.itt)
            put32(b, 20, RESERVED)
            put32(b, 36, i)
            put32(b, 40, off)
            if last:
                b[1] |= F_BIT
                if collapse:
                    b[1] |= DI_STATUS | resid_flags
                    b[3] = status
                    put32(b, 44, residual)
            self.send(b, data[off:off + chunk], stat="adv" if last and collapse else None,
                      window=window)
        if not collapse:
            r = bhs(OP_SCSI_RSP, F_BIT | resid_flags)
            r[3] = status
            put32(r, 16, t.itt)
            put32(r, 36, len(offs))
            put32(r, 44, residual)
            seg = struct.pack(">H", len(sense)) + sense if sense else b""
            self.send(r, seg, stat="adv", window=window)
        self.done_itts = (self.done_itts + [t.itt])[-8:]

    # ---- SCSI -------------------------------------------------------------

    def execute(self, t, wdata):
        """Run the CDB of @t (@wdata: a write's payload).  Returns
        (status, data, sense)."""
        cdb = t.cdb
        op = cdb[0]
        bad_probe = self.t.trigger == "probe"
        case = self.t.case
        if op == 0x12 and (cdb[1] & 1) and t.lun == 1 and \
                case in ("ua-reset-check-fails", "vpd-fails-in-check"):
            with self.t.lock:
                fail = self.t.fail_vpd
            if fail:
                log("%s: VPD INQUIRY of LUN 1 fails: HARDWARE ERROR" % self.name)
                return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
        if op == 0xA0:     # REPORT LUNS
            if bad_probe and case == "luns-fail-once" and self.t.fire("probe"):
                return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
            with self.t.lock:
                fail = self.t.fail_report_luns
                self.t.fail_report_luns = fail and case == "ua-luns-fail-always"
            if fail:
                log("%s: REPORT LUNS fails: HARDWARE ERROR (%s)" % (self.name, case))
                return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
            with self.t.lock:
                slow = self.t.slow_rescan if self.t.events else 0
            if self.t.slow_rescan_only not in (None, self.target_name):
                slow = 0
            if slow:
                log("%s: REPORT LUNS answered in %g s (--slow-rescan)" % (self.name, slow))
                t.delay = slow
            lst = b"".join(lun_field(n) for n in self.t.lun_numbers())
            with self.t.lock:
                flap = self.t.events and self.t.flap_lun and self.target_name == self.t.luns_flap
                if flap:
                    self.t.flap_present = not self.t.flap_present
                    present = self.t.flap_present
            if flap:
                if present:
                    lst += lun_field(2)
                self.add_ua(0, 0x3F, 0x0E)    # for LUN 0's next command (after this answer)
            if bad_probe and case == "luns-short" and self.t.fire("probe"):
                return GOOD, struct.pack(">I", len(lst)), b""
            if bad_probe and case == "luns-lying" and self.t.fire("probe"):
                return GOOD, struct.pack(">II", 8 * 1000, 0) + lst, b""
            if bad_probe and case == "luns-many" and self.t.fire("probe"):
                lst = b"".join(lun_field(n) for n in range(1100))
            if bad_probe and case == "luns-huge" and self.t.fire("probe"):
                lst = b"".join(lun_field(n) for n in range(20000))
            if bad_probe and case == "inquiry-lun-not-supported" and self.t.fire("probe"):
                lst += lun_field(2)
            if bad_probe and case == "luns-dup" and self.t.fire("probe"):
                lst += bytes([0x40, 0x01]) + bytes(6) + lun_field(1)
            if bad_probe and case == "luns-odd" and self.t.fire("probe"):
                return GOOD, struct.pack(">II", 13, 0) + lst, b""
            if case == "ua-luns-cut" and self.t.fired:
                return GOOD, struct.pack(">II", len(lst), 0) + lst[:8], b""
            return GOOD, struct.pack(">II", len(lst), 0) + lst, b""
        with self.t.lock:
            lun = self.t.luns.get(t.lun)
            if lun is None and t.lun == 2 and self.target_name == self.t.luns_flap and \
                    self.t.flap_present:
                lun = self.t.flap_lun
        if lun is None:
            if op == 0x12 and case == "inquiry-lun-not-supported":
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x25, 0x00)
            if op == 0x12:
                return GOOD, bytes([0x7F]) + bytes(35), b""
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x25, 0x00)
        bad = bad_probe and t.lun == 1
        if op == 0x00:     # TEST UNIT READY
            return GOOD, b"", b""
        if op == 0x12:     # INQUIRY
            evpd, page = cdb[1] & 1, cdb[2]
            if bad and not evpd and case.startswith("probe-fails-once") and self.t.fire("probe"):
                return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
            if not evpd:
                d = bytearray(36)
                d[2], d[3], d[4], d[7] = 0x06, 0x02, 31, 0x02
                d[8:16] = b"ISCSIFS "
                d[16:32] = ("BADTARGET LUN%d" % t.lun).ljust(16).encode()
                d[32:36] = b"0001"
                if bad and case == "inquiry-short" and self.t.fire("probe"):
                    return GOOD, bytes(d[:3]), b""
                if bad and case == "inquiry-lying" and self.t.fire("probe"):
                    d[4] = 250
                return GOOD, bytes(d), b""
            serial = ("BAD%d-%d" % (t.lun, os.getpid()) +
                      ("-%d" % lun.generation if lun.generation else "")).encode()
            thin = t.lun == 1 and case in ("unmap-granularity", "lbprz-pattern", "unmap-refused",
                                           "unmap-noop", "write-same-residual", "write-same-refused",
                                           "unmap-residual", "unmap-only-noop", "write-same-only-refused")
            if lun.vpd_refused and page in (0x80, 0x83):
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            if page == 0x00 and lun.vpd_refused:
                return GOOD, bytes([0, 0, 0, 2, 0x00, 0xB0]), b""
            if page == 0x00:
                pages = bytes([0x00, 0x80, 0x83, 0xB0] + ([0xB2] if thin else []))
                return GOOD, bytes([0, 0, 0, len(pages)]) + pages, b""
            if page == 0x80:
                if bad and case == "vpd-lying" and self.t.fire("probe", "VPD 0x80 with PAGE LENGTH 0xffff"):
                    return GOOD, bytes([0, 0x80, 0xFF, 0xFF]) + serial, b""
                return GOOD, bytes([0, 0x80, 0, len(serial)]) + serial, b""
            if page == 0x83:
                naa = bytes([0x60, 0x01, 0x40, 0x5b, 0xad, 0x00, 0x00, t.lun]) + bytes(7) + \
                    bytes([lun.generation & 0xFF])
                desc = bytes([0x01, 0x03, 0, len(naa)]) + naa
                if bad and case == "vpd-lying" and self.t.fire("probe", "VPD 0x83 with a designator running past the page"):
                    desc = bytes([0x01, 0x03, 0, 200]) + naa
                    return GOOD, bytes([0, 0x83, 0xFF, 0xF0]) + desc, b""
                return GOOD, bytes([0, 0x83, 0, len(desc)]) + desc, b""
            if page == 0xB0:
                d = bytearray(64)
                d[1] = 0xB0
                put16(d, 2, 60)
                put32(d, 8, 2048)
                if bad and case == "opt-xfer-huge" and self.t.fire("probe"):
                    put32(d, 12, 0x800008)
                if thin and case in ("lbprz-pattern", "unmap-noop", "write-same-residual",
                                     "write-same-refused", "unmap-residual", "unmap-only-noop",
                                     "write-same-only-refused"):
                    put32(d, 20, 2048)               # MAXIMUM UNMAP LBA COUNT
                    put32(d, 24, 1)                  # MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
                    put32(d, 28, 1)                  # UNMAP GRANULARITY
                elif thin and self.t.fire("probe", "Block Limits: UNMAP GRANULARITY %d, ALIGNMENT %d (UGAVALID), "
                                        "MAXIMUM UNMAP LBA COUNT %d" % (UNMAP_GRANULARITY, UNMAP_ALIGNMENT,
                                                                       MAX_UNMAP_BLOCKS)):
                    put32(d, 20, MAX_UNMAP_BLOCKS)
                    put32(d, 24, 1)                  # MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
                    put32(d, 28, UNMAP_GRANULARITY)
                    put32(d, 32, 0x80000000 | UNMAP_ALIGNMENT)
                return GOOD, bytes(d), b""
            if page == 0xB2 and thin and case == "lbprz-pattern" and \
                    self.t.fire("probe", "VPD 0xB2: LBPU, LBPRZ 010b (unmapped blocks read as the pattern)"):
                return GOOD, bytes([0, 0xB2, 0, 4, 0, 0x88, 0x02, 0]), b""
            if page == 0xB2 and thin and case in ("unmap-noop", "write-same-residual", "write-same-refused") and \
                    self.t.fire("probe", "VPD 0xB2: LBPU, LBPWS, LBPRZ"):
                return GOOD, bytes([0, 0xB2, 0, 4, 0, 0xC4, 0x02, 0]), b""
            if page == 0xB2 and thin and case == "write-same-only-refused" and \
                    self.t.fire("probe", "VPD 0xB2: LBPWS, LBPRZ"):
                return GOOD, bytes([0, 0xB2, 0, 4, 0, 0x44, 0x02, 0]), b""
            if page == 0xB2 and thin and case in ("unmap-residual", "unmap-only-noop"):
                self.t.fire("probe", "VPD 0xB2: LBPU, LBPRZ")
            if page == 0xB2 and thin:
                # LBPU (UNMAP), LBPRZ; PROVISIONING TYPE 2 (thin)
                return GOOD, bytes([0, 0xB2, 0, 4, 0, 0x84, 0x02, 0]), b""
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
        lbas = case.startswith("lbas-") and t.lun == 1
        if op == 0x9E and cdb[1] & 0x1F == 0x12 and lbas:
            if case == "lbas-unsupported" and self.t.fire("lbas"):
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            return self.lba_status(t, lun)
        if op in (0x25, 0x9E):   # READ CAPACITY(10), (16)
            if self.slow_capacity and t.lun == 1:
                self.slow_capacity = False
                log("%s: READ CAPACITY of LUN 1 answered in 3 s" % self.name)
                t.delay = 3
            last, bs = lun.blocks - 1, BLOCK
            if lun.reported_block != BLOCK:
                last, bs = lun.blocks * BLOCK // lun.reported_block - 1, lun.reported_block
            if bad and op == 0x9E and case in ("probe-refused", "capacity10-huge") and \
                    self.t.fire("probe", "READ CAPACITY(16) refused"):
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)
            if op == 0x9E and t.lun == 1 and case == "rc16-invalid-field":
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            if op == 0x9E and t.lun == 1 and case == "capacity-lie-once":
                with self.t.lock:
                    lie, self.t.rc16_lie = self.t.rc16_lie, False
                if lie:
                    log("%s: READ CAPACITY(16) of LUN 1 says 1 MiB more (capacity-lie-once)" % self.name)
                    last += (1 << 20) // BLOCK
            if op == 0x9E and t.lun == 1 and case == "rc16-hardware-error":
                return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
            if t.lun == 1 and case == "rc16-huge-fails":
                last += 1 << 32
                with self.t.lock:
                    fails = op == 0x9E and self.t.rc16_fails
                    self.t.rc16_fails = self.t.rc16_fails and not fails
                if fails:
                    log("%s: READ CAPACITY(16) of LUN 1 fails: HARDWARE ERROR" % self.name)
                    return CHECK_CONDITION, b"", fixed_sense(0x04, 0x44, 0x00)
            if t.lun == 1 and case == "blocksize-0-in-check":
                with self.t.lock:
                    if self.t.block_0:
                        bs = 0
            if bad and op == 0x25 and case == "capacity10-huge" and \
                    self.t.fire("probe", "READ CAPACITY(10) says 0xffffffff"):
                last = MASK
            if bad and case in ("blocksize-0", "blocksize-odd") and self.t.fire("probe"):
                bs = 0 if case == "blocksize-0" else 1000
            if op == 0x25:
                return GOOD, struct.pack(">II", min(last, MASK), bs), b""
            if cdb[1] & 0x1F != 0x10:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            if bad and case == "capacity-short" and self.t.fire("probe"):
                return GOOD, struct.pack(">Q", last), b""
            if bad and case == "capacity-0" and self.t.fire("probe"):
                last = (1 << 64) - 1
            if bad and case == "capacity-huge" and self.t.fire("probe"):
                last, bs = (1 << 60) - 1, 4096
            if lbas:   # LBPME, LBPRZ
                return GOOD, struct.pack(">QI", last, bs) + bytes([0, 0, 0xC0]) + bytes(17), b""
            return GOOD, struct.pack(">QI", last, bs) + bytes(20), b""
        if op == 0x1A and t.lun == 1 and case == "fua-refused":
            return GOOD, bytes([3, 0, 0x10, 0]), b""      # DPOFUA
        if op == 0x1A:     # MODE SENSE(6)
            if bad and case == "probe-refused" and self.t.fire("probe", "MODE SENSE(6) refused"):
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)
            return GOOD, bytes([3, 0, 0, 0]), b""
        if op == 0x5A:     # MODE SENSE(10)
            return GOOD, bytes([0, 6, 0, 0, 0, 0, 0, 0]), b""
        if op in (0x35, 0x91):   # SYNCHRONIZE CACHE
            if t.lun == 1 and case == "deferred-sync" and self.t.fire("sync1"):
                return CHECK_CONDITION, b"", fixed_sense(0x03, 0x0C, 0x00, deferred=True)
            if t.lun == 1 and self.t.case in ("protect-after-write", "fua-refused", "fua-none"):
                log("%s: SYNCHRONIZE CACHE(%d) of LUN 1" % (self.name, 10 if op == 0x35 else 16))
            if t.lun == 1 and self.t.fire("sync1", "SYNCHRONIZE CACHE(%d) refused" % (
                    10 if op == 0x35 else 16)):
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)
            return GOOD, b"", b""
        if op == 0x42 and t.lun == 1 and case == "unmap-refused" and self.t.fire("unmap1"):
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)
        if op == 0x42 and t.lun == 1 and case in ("unmap-noop", "unmap-only-noop"):
            log("%s: UNMAP of LUN 1 answered GOOD, nothing deallocated" % self.name)
            return GOOD, b"", b""
        if op == 0x42:     # UNMAP
            return self.unmap(t, lun, wdata or b"")
        if op == 0x93 and t.lun == 1 and case in ("write-same-refused", "write-same-only-refused"):
            log("%s: WRITE SAME(16) of LUN 1 refused" % self.name)
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)
        if op == 0x93:     # WRITE SAME(16): its one block over every block of the range
            lba, blocks = struct.unpack_from(">Q", cdb, 2)[0], struct.unpack_from(">I", cdb, 10)[0]
            if wdata is None or len(wdata) != BLOCK or blocks == 0:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            if lba + blocks > lun.blocks:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x21, 0x00)
            log("%s: WRITE SAME(16) LBA %d, %d blocks%s" % (self.name, lba, blocks,
                                                          ", UNMAP" if cdb[1] & 0x08 else ""))
            lun.write(lba * BLOCK, wdata * blocks)
            return GOOD, b"", b""
        if op in (0x28, 0x88, 0x2A, 0x8A):
            if op in (0x28, 0x2A):
                lba, blocks = struct.unpack_from(">I", cdb, 2)[0], struct.unpack_from(">H", cdb, 7)[0]
            else:
                lba, blocks = struct.unpack_from(">Q", cdb, 2)[0], struct.unpack_from(">I", cdb, 10)[0]
            bs = lun.io_block             # (BLOCK but for ua-blocksize-changed)
            if (lba + blocks) * bs > lun.blocks * BLOCK:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x21, 0x00)
            if op in (0x28, 0x88):
                return GOOD, lun.read(lba * bs, blocks * bs), b""
            if wdata is None or len(wdata) != blocks * bs:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x24, 0x00)
            lun.write(lba * bs, wdata)
            return GOOD, b"", b""
        return CHECK_CONDITION, b"", fixed_sense(0x05, 0x20, 0x00)

    def lba_status(self, t, lun):
        """GET LBA STATUS on @lun (issue 14): one descriptor per run of
        blocks from the STARTING LBA to the end, mapped (0) when a block
        holds a non-zero byte, else deallocated (1); as many as the
        ALLOCATION LENGTH holds, PARAMETER DATA LENGTH counting them all.
        The lbas-* cases spoil the answer as their lines say."""
        start = struct.unpack_from(">Q", t.cdb, 2)[0]
        alloc = struct.unpack_from(">I", t.cdb, 10)[0]
        if self.t.case == "lbas-grown" and lun.number == 1 and self.t.fire("lbas"):
            lun.grow(1 << 20)
        if start >= lun.blocks:
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x21, 0x00)
        data = lun.read(start * BLOCK, (lun.blocks - start) * BLOCK)
        if self.t.case == "lbas-lag" and lun.number == 1:
            then = self.t.lun1_at_start[start * BLOCK:lun.blocks * BLOCK]
            if then != data:
                self.t.fire("lbas", "%s (from LBA %d: the blocks as they were at the start)" % (
                    self.t.what, start))
            data = then
        zero = bytes(BLOCK)
        descs = []
        for i in range(lun.blocks - start):
            state = 1 if data[i * BLOCK:(i + 1) * BLOCK] == zero else 0
            if descs and descs[-1][2] == state:
                descs[-1][1] += 1
            else:
                descs.append([start + i, 1, state])
        declared = len(descs)
        case = self.t.case
        if len(descs) >= 3 and case != "lbas-lag" and self.t.fire("lbas", "%s (from LBA %d, %d descriptors)" % (
                self.t.what, start, len(descs))):
            if case == "lbas-overlap":
                descs[1][0] -= 1
            elif case == "lbas-order":
                descs[1], descs[2] = descs[2], descs[1]
            elif case == "lbas-beyond":
                descs[-1][1] += 8
            elif case == "lbas-zero":
                descs.insert(1, [descs[1][0], 0, 1])
                declared += 1
            elif case == "lbas-more":
                declared -= 1
            elif case == "lbas-crumbs":
                descs, declared = [[start, 1, descs[0][2]]], 1
            elif case == "lbas-start" and descs[0][1] > 1:
                descs[0] = [descs[0][0] + 1, descs[0][1] - 1, descs[0][2]]
        body = b"".join(struct.pack(">QIB3x", lba, n, state) for lba, n, state in descs)
        room = max(0, (alloc - 8) // 16 * 16)
        if case == "lbas-more":
            room += 16     # the descriptor more than it declares
        return GOOD, (struct.pack(">I4x", 4 + 16 * declared) + body[:room])[:alloc], b""

    def unmap(self, t, lun, param):
        """UNMAP with parameter list @param on @lun: deallocate (zero) the
        whole granules of each descriptor, leave the rest; refuse more
        than case unmap-granularity reports (INVALID FIELD IN PARAMETER
        LIST)."""
        if len(param) < 8:
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x1A, 0x00)
        bd_len = struct.unpack_from(">H", param, 2)[0]
        if 8 + bd_len > len(param) or bd_len % 16:
            return CHECK_CONDITION, b"", fixed_sense(0x05, 0x26, 0x00)
        g, align, limit = 1, 0, None
        if t.lun == 1 and self.t.case == "unmap-granularity":
            g, align, limit = UNMAP_GRANULARITY, UNMAP_ALIGNMENT, MAX_UNMAP_BLOCKS
            if bd_len > 16:
                log("%s: UNMAP with %d descriptors, over the 1 reported" % (self.name, bd_len // 16))
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x26, 0x00)
        for off in range(8, 8 + bd_len, 16):
            lba, n = struct.unpack_from(">QI", param, off)
            if lba + n > lun.blocks:
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x21, 0x00)
            if limit is not None and n > limit:
                log("%s: UNMAP LBA %d, %d blocks: over the MAXIMUM UNMAP LBA COUNT %d" % (
                    self.name, lba, n, limit))
                return CHECK_CONDITION, b"", fixed_sense(0x05, 0x26, 0x00)
            first = lba + (align - lba) % g          # first boundary at or after lba
            whole = (lba + n - first) // g if first < lba + n else 0
            if n and (first != lba or whole * g != n):
                log("%s: UNMAP LBA %d, %d blocks: not whole granules of %d aligned at %d; "
                    "%d whole granules deallocated, the rest left" % (self.name, lba, n, g, align, whole))
            else:
                log("%s: UNMAP LBA %d, %d blocks" % (self.name, lba, n))
            if whole:
                fill = 0xFF if self.t.case == "lbprz-pattern" else 0   # what unmapped blocks read as
                lun.write(first * BLOCK, bytes([fill]) * (whole * g * BLOCK))
        return GOOD, b"", b""

    # ---- the misbehaviours --------------------------------------------------

    def data_in(self, t, off, data, datasn, flags=0, status=0, itt=None, dlen=None,
                ahs=b"", stat=None, window=None):
        b = bhs(OP_DATA_IN, flags)
        b[3] = status
        put32(b, 16, t.itt if itt is None else itt)
        put32(b, 20, RESERVED)
        put32(b, 36, datasn)
        put32(b, 40, off)
        self.send(b, data, stat=stat, window=window, dlen=dlen, ahs=ahs)

    def bad_read(self, t):
        """A READ of LUN 1: misbehave if the case says so.  Returns True
        when the command has been dealt with."""
        case = self.t.case
        if case == "alua-transition":
            with self.t.lock:
                if self.t.transition_until is None:
                    self.t.transition_until = time.monotonic() + TRANSITION_SECONDS
                during = time.monotonic() < self.t.transition_until
                tell = not during and not self.t.transition_told
                self.t.transition_told |= tell
            if tell:
                log("%s: READ ITT 0x%x: the transition ended; UNIT ATTENTION 2a/06" % (self.name, t.itt))
                self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x06, 0x2A, 0x06))
                return True
            if not during:
                return False
        if self.t.trigger != "read1" or not self.t.fire("read1"):
            return False
        _, data, _ = self.execute(t, None)
        n = len(data)
        c = DATA_IN_CHUNK
        fin = F_BIT | DI_STATUS
        if case == "dsl-over":
            over = self.max_xmit + 4
            self.data_in(t, 0, bytes(over), 0, fin, stat="adv")
        elif case == "ahs":
            self.data_in(t, 0, data, 0, fin, stat="adv", ahs=b"\xa5" * 16)
        elif case == "bad-opcode":
            b = bhs(0x1C)
            put32(b, 16, t.itt)
            self.send(b, stat="next")
        elif case == "unknown-itt":
            self.data_in(t, 0, data[:c], 0, 0, itt=t.itt ^ 0x55555000)
        elif case == "stale-itt":
            old = self.done_itts[-1] if self.done_itts else t.itt
            self.respond(t, data)
            self.data_in(t, 0, data[:4096], 0, 0, itt=old)
        elif case == "dup-response":
            for i, off in enumerate(range(0, n, c)):
                self.data_in(t, off, data[off:off + c], i, F_BIT if off + c >= n else 0)
            for _ in range(2):
                r = bhs(OP_SCSI_RSP)
                put32(r, 16, t.itt)
                put32(r, 36, (n + c - 1) // c)
                self.send(r, stat="adv")
        elif case in ("datain-overflow", "datain-overflow-always"):
            self.data_in(t, n - 512, data[:1024], 0, fin, stat="adv")
        elif case == "datain-wrap":
            self.data_in(t, 0xFFFFFE00, data[:1024], 0, fin, stat="adv")
        elif case == "datain-overlap":
            # [0,16K) twice, [16K,32K) never: the total is still n bytes
            plan = [0, 0] + list(range(2 * c, n, c))
            for i, off in enumerate(plan):
                last = i == len(plan) - 1
                self.data_in(t, off, data[off:off + c], i, fin if last else 0,
                             stat="adv" if last else None)
        elif case == "datasn-order":
            offs = list(range(0, n, c))
            order = [0, 2, 1] + list(range(3, len(offs)))
            for k, i in enumerate(order):
                last = k == len(order) - 1
                self.data_in(t, offs[i], data[offs[i]:offs[i] + c], i, fin if last else 0,
                             stat="adv" if last else None)
        elif case == "status-no-f":
            offs = list(range(0, n, c))
            for i, off in enumerate(offs):
                last = i == len(offs) - 1
                self.data_in(t, off, data[off:off + c], i, DI_STATUS if last else 0,
                             stat="adv" if last else None)
        elif case == "read-overflow":
            self.respond(t, bytes([0x5A]) * n, resid=(DI_OVER, 7 * n))
        elif case in ("read-short", "read-short-always"):
            half = n // 2
            b = bhs(OP_DATA_IN, fin | DI_UNDER)
            put32(b, 16, t.itt)
            put32(b, 20, RESERVED)
            put32(b, 44, n - half)
            self.send(b, data[:half], stat="adv")
        elif case == "r2t-read":
            self.r2t(t, 0, min(n, 4096))
        elif case == "reject-short":
            b = bhs(OP_REJECT)
            b[2] = 0x09
            put32(b, 16, RESERVED)
            self.send(b, t.header[:20], stat="adv")
        elif case == "reject-reflected":
            b = bhs(OP_REJECT)
            b[2] = 0x09
            put32(b, 16, RESERVED)
            self.send(b, t.header, stat="adv")
        elif case == "sense-long":
            r = bhs(OP_SCSI_RSP)
            r[3] = CHECK_CONDITION
            put32(r, 16, t.itt)
            self.send(r, struct.pack(">H", 200) + fixed_sense(0x03, 0x11, 0x00), stat="adv")
        elif case == "sense-big":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x03, 0x11, 0x00, extra=234))
        elif case == "logout-rsp":
            b = bhs(OP_LOGOUT_RSP)
            put32(b, 16, 0xFFFFFFFE)
            self.send(b, stat="adv")
            self.respond(t, data)
        elif case == "tmf-rsp":
            b = bhs(OP_TMF_RSP)
            put32(b, 16, 0x0BADBAD0)
            self.send(b, stat="adv")
            self.respond(t, data)
        elif case == "window-backwards":
            exp = self.exp_cmdsn
            # MaxCmdSN below ExpCmdSN - 1: both must be ignored
            self.respond(t, data, window=((exp + 100) & MASK, (exp - 10) & MASK))
            # a window that shrinks and goes backwards
            b = bhs(OP_NOP_IN)
            put32(b, 16, RESERVED)
            put32(b, 20, RESERVED)
            self.send(b, stat="next", window=((exp - 5) & MASK, (exp - 6) & MASK))
        elif case in ("no-answer", "abort-refused", "reset-refused", "tmf-silent"):
            log("%s: not answering READ ITT 0x%x" % (self.name, t.itt))
        elif case in ("reset-tas", "reset-silent", "reset-set-refused", "reset-late"):
            log("%s: holding READ ITT 0x%x" % (self.name, t.itt))
            with self.t.lock:
                self.t.held.append((self, t))
        elif case == "statsn-skip":
            with self.lock:
                self.statsn = (self.statsn + 1000) & MASK
                self.statsn_check = (self.statsn + 1) & MASK
            self.respond(t, data)
        elif case == "statsn-repeat":
            with self.lock:
                self.statsn = (self.statsn - 1) & MASK
                self.statsn_check = (self.statsn + 1) & MASK
            self.respond(t, data)
        elif case in ("busy", "busy-always"):
            self.respond(t, b"", BUSY)
        elif case == "alua-transition":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x02, 0x04, 0x0A))
        elif case == "task-set-full":
            self.respond(t, b"", TASK_SET_FULL)
        elif case == "unit-attention":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x06, 0x29, 0x01))
        elif case in ("rc16-invalid-field", "rc16-hardware-error"):
            self.close()
        elif case == "no-sense":
            self.respond(t, garbled(data), CHECK_CONDITION, fixed_sense(0x00, 0x00, 0x00))
        elif case == "rmw-access-denied":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x07, 0x74, 0x71))
        elif case == "deferred-error":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x03, 0x0C, 0x00, deferred=True))
        elif case == "read-illegal-other":
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x05, 0x26, 0x00))
        elif case == "datain-status-check":
            junk = garbled(data)
            offs = list(range(0, n, c))
            for i, off in enumerate(offs):
                last = i == len(offs) - 1
                self.data_in(t, off, junk[off:off + c], i, fin if last else 0,
                             status=CHECK_CONDITION if last else 0,
                             stat="adv" if last else None)
        elif case in ("response-failure", "response-failure-always"):
            junk = garbled(data)
            offs = list(range(0, n, c))
            for i, off in enumerate(offs):
                self.data_in(t, off, junk[off:off + c], i, F_BIT if i == len(offs) - 1 else 0)
            r = bhs(OP_SCSI_RSP)
            r[2] = 0x01            # Target Failure
            r[3] = GOOD
            put32(r, 16, t.itt)
            put32(r, 36, len(offs))
            self.send(r, stat="adv")
        elif case == "window-shut":
            self.frozen_max = (self.exp_cmdsn + self.window - 1) & MASK
            log("%s: MaxCmdSN stays %d from now on" % (self.name, self.frozen_max))
            self.respond(t, data)
        elif case == "async-logout-silent":
            self.silent_logout = True
            self.async_msg(1, param3=65535)
            self.respond(t, data)
        elif case in ("async-logout", "async-renegotiate"):
            self.async_msg(1 if case == "async-logout" else 4, param3=1)
            self.respond(t, data)
            self.later(2.5, self.drop_unless_logged_out)
        elif case == "async-drop":
            self.async_msg(2, param1=0, param2=DROP_TIME2WAIT)
            self.close()
        elif case in ("tmf-late-abort", "tmf-no-task", "tmf-replay", "read-hang"):
            log("%s: not answering READ ITT 0x%x" % (self.name, t.itt))
        elif case == "nop-flood":
            self.nop_flood(t)
        elif case == "async-flood":
            for _ in range(ASYNC_FLOOD):
                self.async_msg(0)
            self.respond(t, data)
        elif case == "nop-in-ping":
            threading.Thread(target=self.ping_every, daemon=True).start()
            for i, off in enumerate(range(0, n, c)):
                self.ping(t.lun)
                last = off + c >= n
                self.data_in(t, off, data[off:off + c], i, fin if last else 0,
                             stat="adv" if last else None)
        else:
            return False
        return True

    def nop_flood(self, t):
        """nop-flood: NOP-In pings, each asking for an answer, as fast as
        the socket takes them, for up to FLOOD_SECONDS, while this thread
        (the only reader) reads nothing.  Ends the connection."""
        batch = bytearray()
        with self.lock:
            for i in range(FLOOD_BATCH):
                b = bhs(OP_NOP_IN)
                b[8:16] = lun_field(t.lun)
                put32(b, 16, RESERVED)
                put32(b, 20, 0x10000 + i)
                put32(b, 24, self.statsn)
                put32(b, 28, self.exp_cmdsn)
                put32(b, 32, self.exp_cmdsn + self.window - 1)
                batch += b
        sent, start = 0, time.monotonic()
        log("%s: flooding NOP-In pings, reading nothing (READ ITT 0x%x unanswered)" % (self.name, t.itt))
        try:
            while time.monotonic() - start < FLOOD_SECONDS:
                self.sock.sendall(batch)
                sent += FLOOD_BATCH
        except OSError as e:
            log("%s: flood ended: the initiator closed the connection after %d NOP-Ins in %.1f s (%s)" % (
                self.name, sent, time.monotonic() - start, e))
            raise Closed() from e
        log("%s: flood ended: %d NOP-Ins in %d s, the connection still up; closing it" % (
            self.name, sent, FLOOD_SECONDS))
        self.close()

    def ping(self, lun):
        """nop-in-ping: a NOP-In asking for an answer (RFC 7143 11.19: no
        data, ITT reserved, TTT and LUN set)."""
        with self.lock:
            ttt = self.next_ping_ttt
            self.next_ping_ttt += 1
            self.pings[ttt] = bytes(lun_field(lun))
        b = bhs(OP_NOP_IN)
        b[8:16] = lun_field(lun)
        put32(b, 16, RESERVED)
        put32(b, 20, ttt)
        self.send(b, stat="next")
        log("%s: ping TTT 0x%x sent" % (self.name, ttt))

    def ping_every(self):
        """nop-in-ping: a ping every PING_EVERY_MS for PING_SECONDS, on LUN
        0 and 1 in turn, while the initiator goes on with its I/O."""
        n = PING_SECONDS * 1000 // PING_EVERY_MS
        try:
            for i in range(n):
                time.sleep(PING_EVERY_MS / 1000)
                self.ping(i % 2)
        except (Closed, OSError):
            log("%s: pings stopped: the connection ended" % self.name)
            return
        log("%s: pings done: %d every %d ms" % (self.name, n, PING_EVERY_MS))

    def ping_answer(self, p):
        """nop-in-ping: check a NOP-Out answering a ping: its TTT one we
        sent and not answered yet, the LUN echoed, ITT reserved, I and F
        set."""
        ttt = p.u32(20)
        with self.lock:
            lun = self.pings.pop(ttt, None)
        bad = []
        if lun is None:
            bad.append("TTT 0x%x is no ping unanswered" % ttt)
        elif bytes(p.bhs[8:16]) != lun:
            bad.append("LUN %s, sent %s" % (bytes(p.bhs[8:16]).hex(), lun.hex()))
        if not p.immediate:
            bad.append("no I bit")
        if not p.flags & F_BIT:
            bad.append("no F bit")
        if bad:
            log("%s: bad NOP-Out answering a ping: %s" % (self.name, "; ".join(bad)))
        else:
            log("%s: ping TTT 0x%x answered" % (self.name, ttt))

    def drop_unless_logged_out(self):
        if not self.closed:
            log("%s: no logout after the Async Message; dropping the connection" % self.name)
            self.close()

    def async_msg(self, event, param1=0, param2=0, param3=0):
        b = bhs(OP_ASYNC)
        put32(b, 16, RESERVED)
        b[36] = event
        put16(b, 38, param1)
        put16(b, 40, param2)
        put16(b, 42, param3)
        self.send(b, stat="adv")

    def bad_write(self, t, immediate):
        """A WRITE to LUN 1 (@immediate: its immediate data): misbehave if
        the case says so."""
        case = self.t.case
        if case.startswith("unsol-"):
            return self.unsol_write(t, immediate)
        if case == "r2t-many":
            # a command sent again after a reconnect is not fired at:
            # the same LBA is the same write
            if t.cdb in self.t.seen_cdbs:
                return False
            self.t.seen_cdbs.add(t.cdb)
        if self.t.trigger != "write1" or not self.t.fire("write1"):
            return False
        t.buf = bytearray(t.edtl)
        self.writes[t.itt] = t
        if case in ("r2t-beyond", "r2t-beyond-always"):
            self.r2t(t, max(t.edtl - 512, 0), 1024)
        elif case == "r2t-wrap":
            self.r2t(t, 0xFFFFFF00, 0x200)
        elif case == "r2t-zero":
            self.r2t(t, 0, 0)
        elif case == "r2t-burst":
            self.r2t(t, 0, MAX_BURST + 512)
        elif case == "r2t-many":
            # All at once, each well formed: only their number is wrong.
            # The initiator can only tell while it is still sending the
            # first burst (an R2T is outstanding until its last Data-Out
            # goes): so the first is half the write in 512-byte Data-Out
            # PDUs (this case declares MaxRecvDataSegmentLength=512), and
            # the rest follow in the same segment.
            first = max(BLOCK, t.edtl // 2 // BLOCK * BLOCK)
            piece = max(BLOCK, t.edtl // 16 // BLOCK * BLOCK)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            while t.next_off < t.edtl:
                length = min(first if t.next_off == 0 else piece, t.edtl - t.next_off)
                self.r2t(t, t.next_off, length)
                t.next_off += length
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        elif case == "r2t-repeat":
            half = max(BLOCK, min(MAX_BURST, t.edtl // 2) // BLOCK * BLOCK)
            t.r2t_plan = [(0, half), (0, half)]
            self.issue_r2ts(t)
        elif case == "r2t-sn":
            t.r2tsn = 1
            self.issue_r2ts(t)
        elif case == "r2t-ttt":
            length = min(MAX_BURST, t.edtl)
            self.r2t(t, 0, length, ttt=RESERVED)
            t.next_off = length
        elif case == "r2t-unknown-itt":
            self.r2t(t, 0, min(MAX_BURST, t.edtl), itt=t.itt ^ 0x55555000)
        elif case == "datain-write":
            self.data_in(t, 0, bytes(4096), 0, 0)
        elif case == "datain-write-status":
            del self.writes[t.itt]
            self.data_in(t, 0, b"", 0, F_BIT | DI_STATUS, GOOD, stat="adv",
                         window=self.one_slot())
            self.done_itts = (self.done_itts + [t.itt])[-8:]
        elif case == "write-early-met":
            del self.writes[t.itt]
            self.respond(t, b"", 0x04)
        elif case == "write-early-recovered":
            del self.writes[t.itt]
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x01, 0x17, 0x01))
        elif case == "write-illegal-other":
            del self.writes[t.itt]
            self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x05, 0x26, 0x00))
        elif case == "write-early-u0":
            del self.writes[t.itt]
            self.respond(t, b"", resid=(DI_UNDER, 0))
        elif case in WRITE_MARKS:
            # its data comes as for any write; finish_write() does what
            # the mark says
            del self.writes[t.itt]
            setattr(t, WRITE_MARKS[case], True)
            return False
        else:
            del self.writes[t.itt]
            return False
        return True

    def unsol_write(self, t, immediate):
        """The unsol-* cases (--unsolicited): a WRITE to LUN 1 that came
        with immediate data, unsolicited Data-Out following.  Returns True
        when the command has been dealt with."""
        case = self.t.case
        if case == "unsol-good" or not self.t.fire("write1"):
            return False
        fb = min(t.edtl, self.first_burst)
        log("%s: WRITE ITT 0x%x of %d bytes with %d bytes of immediate data" % (
            self.name, t.itt, t.edtl, len(immediate)))
        if case in ("unsol-early-good", "unsol-early-short", "unsol-early-error"):
            # answered at once; the Data-Out that follow are for an ITT
            # this target no longer knows, and are dropped
            if case == "unsol-early-good":
                r = bhs(OP_SCSI_RSP)        # no residual: all of it, it claims
                put32(r, 16, t.itt)
                self.send(r, stat="adv", window=self.cur_window())
                self.done_itts = (self.done_itts + [t.itt])[-8:]
            elif case == "unsol-early-short":
                self.respond(t, b"", took=0)  # GOOD, residual: all of it
            else:
                self.respond(t, b"", CHECK_CONDITION, fixed_sense(0x03, 0x0C, 0x00))
            return True
        t.buf = bytearray(t.edtl)
        t.have = bytearray(t.edtl)
        self.writes[t.itt] = t
        self.take_data(t, 0, immediate)
        if case == "unsol-r2t-sent":
            # the range the initiator sends unasked, asked for again
            self.r2t(t, 0, fb)
            t.next_off = fb
        elif case == "unsol-r2t-inside":
            # from the middle of the first burst to past its end
            off = fb // 2 // BLOCK * BLOCK
            length = min(MAX_BURST, t.edtl - off)
            self.r2t(t, off, length)
            t.next_off = off + length
        return True

    def unsolicited_done(self, t):
        """unsol-good: the last unsolicited Data-Out of a WRITE to LUN 1
        came."""
        if self.t.case == "unsol-good":
            self.t.fire("write1", "WRITE ITT 0x%x of %d bytes: %d bytes came unasked "
                        "(immediate data and Data-Out)" % (t.itt, t.edtl, t.unsolicited))

    # ---- the thread -------------------------------------------------------

    def run(self):
        try:
            if self.login():
                log("%s: logged in" % self.name)
                if self.t.case == "relogin-drop-0" and self.t.events and not self.discovery and \
                        self.t.fire("relogin", "Async Message: dropping the connection, Time2Wait 0"):
                    self.async_msg(2, param2=0)
                    self.close()
                    return
                with self.t.lock:
                    if self.t.slow_check_pending:
                        self.t.slow_check_pending = False
                        self.slow_capacity = True
                        for c in self.t.conns:
                            c.add_ua(1, 0x2A, 0x09)
                        log("%s: slow to answer READ CAPACITY; CAPACITY DATA HAS CHANGED "
                            "pending on %d other connections" % (self.name, len(self.t.conns)))
                    self.t.conns.add(self)
                    pending = list(self.t.ua_on_login)
                for lun, asc, ascq in pending:
                    self.add_ua(lun, asc, ascq)
                self.serve()
        except Closed:
            pass
        except Exception as e:     # keep serving other connections
            log("%s: %s: %s" % (self.name, type(e).__name__, e))
        finally:
            with self.t.lock:
                self.t.conns.discard(self)
            log("%s: closed" % self.name)
            try:
                self.sock.close()
            except OSError:
                pass


def user_secret(arg):
    """USER:SECRET into (USER, SECRET as bytes)."""
    user, sep, secret = arg.partition(":")
    if not sep or not user or not secret:
        raise argparse.ArgumentTypeError("expected USER:SECRET")
    return user, secret.encode()


def main():
    ap = argparse.ArgumentParser(description="a scripted misbehaving iSCSI target")
    ap.add_argument("--port", type=int, default=3260)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--iqn", default="iqn.2026-11.org.iscsifs.test:bad")
    ap.add_argument("--case", default="none")
    ap.add_argument("--times", type=int, default=None,
                    help="how often the case fires (0: always); default: the case's own")
    ap.add_argument("--lun0", help="initial content of LUN 0 (written through)")
    ap.add_argument("--lun1", help="initial content of LUN 1 (written through)")
    ap.add_argument("--lun2", help="content of LUN 2 when ua-luns-changed adds it")
    ap.add_argument("--port2", type=int, default=None,
                    help="a second listening port (where the redirect cases send initiators; discovery-dup's second portal)")
    ap.add_argument("--chap", type=user_secret, default=None, metavar="USER:SECRET",
                    help="require CHAP: the initiator must answer as USER with SECRET")
    ap.add_argument("--mutual", type=user_secret, default=None, metavar="USER:SECRET",
                    help="with --chap: answer an initiator's challenge as USER with SECRET")
    ap.add_argument("--unsolicited", type=int, default=0, metavar="BYTES",
                    help="negotiate InitialR2T=No, ImmediateData=Yes and FirstBurstLength BYTES")
    ap.add_argument("--targets", type=int, default=1, metavar="N",
                    help="serve N targets: --iqn, then --iqn-2 ... --iqn-N")
    ap.add_argument("--slow-rescan", type=float, default=0, metavar="SECONDS",
                    help="answer REPORT LUNS after SECONDS once an event (SIGUSR1) happened")
    ap.add_argument("--slow-rescan-only", metavar="NAME", default=None,
                    help="--slow-rescan for target NAME only")
    ap.add_argument("--ua-storm", metavar="NAME", default=None,
                    help="once an event (SIGUSR1) happened, every command to target NAME "
                         "(but INQUIRY, REPORT LUNS, REQUEST SENSE) gets CAPACITY DATA HAS CHANGED")
    ap.add_argument("--luns-flap", metavar="NAME", default=None,
                    help="once an event (SIGUSR1) happened, target NAME lists its LUN 2 (--lun2) "
                         "in every other REPORT LUNS, each followed by REPORTED LUNS DATA HAS CHANGED")
    ap.add_argument("--hang-login", metavar="NAME", action="append", default=[],
                    help="never answer a Normal session's login to target NAME (may repeat)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--verbose", action="store_true", help="log every PDU")
    args = ap.parse_args()
    CASES.setdefault("none", ("never", 0, "behave"))
    if args.list:
        for name, (trigger, times, what) in CASES.items():
            print("%-22s %-8s %s" % (name, trigger, what))
        return 0
    if args.case not in CASES:
        ap.error("unknown case %r (see --list)" % args.case)
    if not args.lun0 or not args.lun1:
        ap.error("--lun0 and --lun1 are required")
    if args.case in ("login-redirect-temp", "login-redirect-perm", "discovery-dup",
                     "alua-standby-port", "tpg-failover-late") and not args.port2:
        ap.error("case %s needs --port2" % args.case)
    if args.case.startswith("unsol-") and not args.unsolicited:
        ap.error("case %s needs --unsolicited" % args.case)
    if args.case.startswith("chap-") and not args.chap:
        ap.error("case %s needs --chap" % args.case)
    if args.case in ("chap-mutual", "chap-r-wrong", "chap-skip-mutual", "chap-reflect") and not args.mutual:
        ap.error("case %s needs --mutual" % args.case)
    target = Target(args)
    listeners = []
    for port in [args.port] + ([args.port2] if args.port2 else []):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((args.host, port))
        srv.listen(16)
        listeners.append(srv)
    # the handler runs on this thread, between the select() calls
    signal.signal(signal.SIGUSR1, lambda signum, frame: target.event())
    log("case %s (%s), listening on %s:%s" % (args.case, target.what, args.host,
                                              " and ".join(str(s.getsockname()[1]) for s in listeners)))
    n = 0
    while True:
        ready, _, _ = select.select(listeners, [], [])
        for srv in ready:
            sock, peer = srv.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(target, sock, n)
            log("%s: from %s:%d" % (c.name, peer[0], peer[1]))
            n += 1
            threading.Thread(target=c.run, daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
