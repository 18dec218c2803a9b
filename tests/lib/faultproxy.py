#!/usr/bin/python3
"""faultproxy.py: a TCP proxy that injects network faults, for the tests.

It sits between iscsifs and a real target: it listens on
127.0.0.1:PORT, and for every connection it accepts it opens one to the
target and copies bytes both ways.  What it does to those bytes is its
mode, which a test changes while I/O runs.

    faultproxy.py serve --listen PORT --target HOST:PORT --control SOCKET
    faultproxy.py ctl SOCKET COMMAND [ARG...]

`serve` runs the proxy in the foreground (log lines on stdout); it
listens as soon as it prints "listening".  `ctl` sends one COMMAND to a
running proxy through its control socket (a UNIX stream socket, one line
in, one line out), prints the answer and exits 0 when it starts with
"ok".  Commands:

    pass                forward everything at once (the initial mode)
    drop [N] [rst]      without N: close both sides of every open
                        connection now.  With N: each open connection
                        forwards N more bytes from the target to the
                        initiator (so the cut falls inside a PDU, short
                        of the PDU's end, unless N happens to end one)
                        and is then closed on both sides.  rst: close
                        with a TCP reset instead of a FIN.  One-shot: the
                        mode stays what it was, new connections pass.
    blackhole           stop forwarding in both directions without
                        closing anything: bytes stay in the socket
                        buffers, the peers see silence.  New connections
                        are accepted and connected to the target but get
                        nothing through either.  Ended by another mode;
                        then whatever was held is forwarded.
    trickle BPS         forward at most BPS bytes per second in each
                        direction of each connection, in small pieces
    bytewise [US]       forward one byte per send(2) (TCP_NODELAY, so one
                        byte a segment), sleeping US microseconds (default
                        20) after each
    hold SECS           the oldest open connection gets stuck at the next
                        SCSI write command the initiator sends on it
                        (what came before that command is forwarded):
                        from that command on, nothing is forwarded either
                        way any more, but what the initiator sends is
                        still read and kept.  Once the
                        initiator closes its end (it gave up on the
                        connection), the kept bytes are delivered to the
                        target SECS seconds later, on the target's side
                        of that connection, which is then closed: a flow
                        whose bytes arrive late, after the sender gave up
                        on it, as TCP retransmits them when a path comes
                        back.  One-shot; new connections pass.
    reset-login K       the next K connections accepted are reset during
                        login: the initiator's first bytes (its Login
                        Request) go to the target, and when the target's
                        first answer comes back both sides are reset
                        (RST) instead of it being forwarded.  Independent
                        of the mode.
    status              answer "ok mode=... open=N accepted=N drops=N
                        resets=N held=N gaveup=N late=BYTES late_writes=N
                        t2i=BYTES i2t=BYTES" (held: connections stuck by
                        hold; gaveup: of those, closed by the initiator;
                        late: bytes delivered late; late_writes: SCSI
                        write commands among them (no digests assumed);
                        t2i: target to initiator)

When the target cannot be reached, an accepted connection is reset at
once (the initiator sees ECONNRESET, as close to "connection refused" as
a listening proxy gets).  When one side of a connection closes, the
proxy closes both (iSCSI never half-closes).

Thread model: one thread accepts, one serves the control socket, and two
copy each connection (one per direction).  Proxy.lock protects the mode,
the counters and the set of open connections; each Conn's own lock
protects its one-shot state (drop countdown, reset, closed).

Python 3 standard library only.
"""

import argparse
import os
import select
import socket
import struct
import sys
import threading
import time

CHUNK = 65536


def log(msg):
    print("faultproxy %s: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class PduScanner:
    """Follows the PDU boundaries of one direction of a connection (no
    digests assumed), to say what a stretch of it holds."""

    def __init__(self):
        self.head = bytearray()   # the start of a BHS not complete yet
        self.skip = 0             # bytes of the current PDU's AHS and data left

    def feed(self, data, stop_at_write=False):
        """Scan @data; returns (descriptions of the PDUs that start in it,
        number of them that are SCSI Commands that write (W bit)).  With
        @stop_at_write, the scan stops at the first such command whose
        header starts in @data and returns its offset in @data instead
        (None when there is none: all of @data was scanned)."""
        out = []
        writes = 0
        pos = 0
        while pos < len(data):
            if self.skip:
                n = min(self.skip, len(data) - pos)
                self.skip -= n
                pos += n
                continue
            start = pos - len(self.head)   # where this BHS began in @data
            n = min(48 - len(self.head), len(data) - pos)
            self.head += data[pos:pos + n]
            pos += n
            if len(self.head) < 48:
                break
            bhs, self.head = bytes(self.head), bytearray()
            op = bhs[0] & 0x3F
            dlen = int.from_bytes(bhs[5:8], "big")
            self.skip = 4 * bhs[4] + ((dlen + 3) & ~3)
            if stop_at_write and op == 0x01 and bhs[1] & 0x20 and start >= 0:
                # rewind: the caller keeps this command, from its first byte
                self.skip = 0
                return start
            what = {0x00: "NOP-Out", 0x01: "SCSI", 0x03: "Login", 0x05: "Data-Out",
                    0x06: "Logout"}.get(op, "op 0x%02x" % op)
            if op == 0x01:
                what += " CDB 0x%02x" % bhs[32]
                if bhs[1] & 0x20:
                    writes += 1
            if len(out) < 20:
                out.append("%s CmdSN %d +%d" % (what, int.from_bytes(bhs[24:28], "big"), dlen))
        if stop_at_write:
            return None
        return out, writes


class Conn:
    """One proxied connection: the initiator's socket and the target's.

    Both sockets are non-blocking and every wait is a select() of at most
    0.1 s that then looks at `closed`, so closing never has to wake a
    blocked thread.  The sockets are closed by the last of the two copy
    threads to stop (so no thread ever uses a closed descriptor), with a
    zero linger, i.e. a TCP reset, when `rst` was asked for."""

    def __init__(self, proxy, num, client, server):
        self.proxy = proxy
        self.num = num
        self.client = client          # to the initiator
        self.server = server          # to the target
        self.lock = threading.Lock()  # protects the fields below
        self.closed = False           # ending: the copy threads stop
        self.rst = False              # end with a reset, not a FIN
        self.pumps = 2                # copy threads still running
        self.drop_after = None        # bytes t2i still to forward before a drop
        self.drop_rst = False         # that drop resets instead of closing
        self.reset_login = False      # reset when the target first answers
        self.hold_secs = None         # hold: stuck; deliver late after this delay
        self.hold_armed = None        # hold asked: the delay, until the next
                                      # write command makes it hold_secs
        self.kept = bytearray()       # hold: what the initiator sent meanwhile
        self.i2t_pdus = PduScanner()  # PDU boundaries initiator to target

    def close(self, rst=False):
        """End the connection (FIN, or a reset with @rst); idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.rst = rst
        if not rst:
            for s in (self.client, self.server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.proxy.forget(self)

    def pump_done(self):
        """A copy thread stops; the last one closes the sockets."""
        self.close()
        with self.lock:
            self.pumps -= 1
            last = self.pumps == 0
            rst = self.rst
        if not last:
            return
        for s in (self.client, self.server):
            try:
                if rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass


class Proxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.lock = threading.Lock()  # protects everything below
        self.mode = "pass"            # pass, blackhole, trickle, bytewise
        self.arg = 0                  # trickle: bytes/s; bytewise: microseconds
        self.reset_login_left = 0     # connections still to reset during login
        self.conns = set()            # open Conns
        self.accepted = 0
        self.drops = 0
        self.resets = 0
        self.held = 0
        self.gaveup = 0
        self.late = 0
        self.late_writes = 0
        self.t2i = 0
        self.i2t = 0

    def forget(self, conn):
        with self.lock:
            self.conns.discard(conn)

    def current_mode(self):
        with self.lock:
            return self.mode, self.arg

    # ---- copying ----

    def send_all(self, conn, dst, data):
        """Write all of @data to non-blocking @dst; False if the conn ended."""
        view = memoryview(data)
        while view:
            if conn.closed:
                return False
            try:
                _, w, _ = select.select([], [dst], [], 0.1)
                if not w:
                    continue
                n = dst.send(view)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return False
            view = view[n:]
        return True

    def deliver(self, conn, dst, data, t2i):
        """Forward @data to @dst as the mode says; False if the conn ended."""
        pos = 0
        while pos < len(data):
            if conn.closed:
                return False
            mode, arg = self.current_mode()
            if mode == "blackhole":
                time.sleep(0.02)
                continue
            if mode == "trickle":
                end = min(len(data), pos + max(1, arg // 50))
                pause = (end - pos) / float(arg)
            elif mode == "bytewise":
                end = pos + 1
                pause = arg / 1e6
            else:
                end = len(data)
                pause = 0
            if not self.send_all(conn, dst, data[pos:end]):
                return False
            with self.lock:
                if t2i:
                    self.t2i += end - pos
                else:
                    self.i2t += end - pos
            pos = end
            if pause:
                time.sleep(pause)
        return True

    def deliver_late(self, conn):
        """hold: the initiator gave up on @conn; deliver what it sent."""
        with self.lock:
            self.gaveup += 1
        log("conn %d: the initiator closed it; delivering its %d kept bytes to "
            "the target in %.1f s" % (conn.num, len(conn.kept), conn.hold_secs))
        time.sleep(conn.hold_secs)
        what, writes = conn.i2t_pdus.feed(conn.kept)
        log("conn %d: kept PDUs: %s" % (conn.num, ", ".join(what) or "none (the rest of one)"))
        if self.send_all(conn, conn.server, conn.kept):
            with self.lock:
                self.late += len(conn.kept)
                self.late_writes += writes
            log("conn %d: %d bytes delivered late" % (conn.num, len(conn.kept)))
        time.sleep(0.5)          # let the target read them before the FIN

    def pump(self, conn, src, dst, t2i):
        """Copy one direction of @conn until either side ends."""
        try:
            while not conn.closed:
                mode, _ = self.current_mode()
                if mode == "blackhole" or (t2i and conn.hold_secs is not None):
                    time.sleep(0.02)
                    continue
                try:
                    r, _, _ = select.select([src], [], [], 0.1)
                    if not r:
                        continue
                    data = src.recv(CHUNK)
                except BlockingIOError:
                    continue
                except (OSError, ValueError):
                    data = b""
                if conn.hold_secs is not None and not t2i:
                    if not data:
                        self.deliver_late(conn)
                        break
                    conn.kept += data
                    continue
                if not data:
                    break
                if t2i:
                    with conn.lock:
                        reset = conn.reset_login
                        cut = conn.drop_after
                        if cut is not None and cut < len(data):
                            conn.drop_after = None
                        elif cut is not None:
                            conn.drop_after = cut - len(data)
                            cut = None
                    if reset:
                        with self.lock:
                            self.resets += 1
                        log("conn %d: reset during login (%d bytes of the "
                            "target's answer withheld)" % (conn.num, len(data)))
                        conn.close(rst=True)
                        break
                    if cut is not None:
                        if cut:
                            self.deliver(conn, dst, data[:cut], t2i)
                        with self.lock:
                            self.drops += 1
                        log("conn %d: dropped after %d bytes of a %d-byte chunk "
                            "from the target%s" % (conn.num, cut, len(data),
                                                   " (reset)" if conn.drop_rst else ""))
                        conn.close(rst=conn.drop_rst)
                        break
                if not t2i and conn.hold_armed is not None:
                    at = conn.i2t_pdus.feed(data, stop_at_write=True)
                    if at is not None:
                        # the hold begins with this write command
                        if at and not self.deliver(conn, dst, data[:at], t2i):
                            break
                        log("conn %d: held at a write command" % conn.num)
                        conn.hold_secs = conn.hold_armed
                        conn.kept += data[at:]
                        continue
                elif not t2i:
                    conn.i2t_pdus.feed(data)
                if not self.deliver(conn, dst, data, t2i):
                    break
        finally:
            conn.pump_done()

    # ---- accepting ----

    def serve_conn(self, client):
        with self.lock:
            self.accepted += 1
            num = self.accepted
            reset = self.reset_login_left > 0
            if reset:
                self.reset_login_left -= 1
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError as e:
            log("conn %d: target %s:%d unreachable (%s); resetting"
                % (num, self.target[0], self.target[1], e))
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        conn = Conn(self, num, client, server)
        conn.reset_login = reset
        with self.lock:
            self.conns.add(conn)
        log("conn %d: open%s" % (num, " (to be reset during login)" if reset else ""))
        threading.Thread(target=self.pump, args=(conn, client, server, False),
                         daemon=True).start()
        threading.Thread(target=self.pump, args=(conn, server, client, True),
                         daemon=True).start()

    def accept_loop(self, lsock):
        while True:
            client, _ = lsock.accept()
            threading.Thread(target=self.serve_conn, args=(client,), daemon=True).start()

    # ---- control ----

    def command(self, words):
        if not words:
            return "error: empty command"
        cmd, args = words[0], words[1:]
        try:
            if cmd == "pass" and not args:
                self.set_mode("pass", 0)
            elif cmd == "blackhole" and not args:
                self.set_mode("blackhole", 0)
            elif cmd == "trickle" and len(args) == 1 and int(args[0]) > 0:
                self.set_mode("trickle", int(args[0]))
            elif cmd == "bytewise" and len(args) <= 1:
                self.set_mode("bytewise", int(args[0]) if args else 20)
            elif cmd == "hold" and len(args) == 1 and float(args[0]) >= 0:
                with self.lock:
                    conns = sorted(self.conns, key=lambda c: c.num)
                if not conns:
                    return "error: no open connection to hold"
                conns[0].hold_armed = float(args[0])
                with self.lock:
                    self.held += 1
                log("conn %d: to be held at its next write command" % conns[0].num)
            elif cmd == "reset-login" and len(args) == 1 and int(args[0]) >= 0:
                with self.lock:
                    self.reset_login_left = int(args[0])
                log("the next %s connections are reset during login" % args[0])
            elif cmd == "drop" and len(args) <= 2:
                rst = "rst" in args
                nums = [a for a in args if a != "rst"]
                if len(nums) > 1 or (nums and int(nums[0]) < 0):
                    return "error: usage: drop [N] [rst]"
                with self.lock:
                    conns = list(self.conns)
                if nums:
                    for c in conns:
                        with c.lock:
                            c.drop_after = int(nums[0])
                            c.drop_rst = rst
                    log("%d connections drop after %s more bytes from the target"
                        % (len(conns), nums[0]))
                else:
                    for c in conns:
                        c.close(rst=rst)
                    with self.lock:
                        self.drops += len(conns)
                    log("dropped %d connections%s" % (len(conns), " (reset)" if rst else ""))
            elif cmd == "status" and not args:
                pass
            else:
                return "error: unknown command or bad arguments: %s" % " ".join(words)
        except ValueError:
            return "error: not a number in: %s" % " ".join(words)
        with self.lock:
            return ("ok mode=%s%s open=%d accepted=%d drops=%d resets=%d held=%d "
                    "gaveup=%d late=%d late_writes=%d t2i=%d i2t=%d"
                    % (self.mode, ":%d" % self.arg if self.arg else "", len(self.conns),
                       self.accepted, self.drops, self.resets, self.held, self.gaveup,
                       self.late, self.late_writes, self.t2i, self.i2t))

    def set_mode(self, mode, arg):
        with self.lock:
            self.mode, self.arg = mode, arg
        log("mode %s%s" % (mode, " %d" % arg if arg else ""))

    def control_loop(self, csock):
        while True:
            c, _ = csock.accept()
            try:
                c.settimeout(5)
                line = b""
                while not line.endswith(b"\n"):
                    b = c.recv(1024)
                    if not b:
                        break
                    line += b
                answer = self.command(line.decode(errors="replace").split())
                c.sendall(answer.encode() + b"\n")
            except OSError:
                pass
            finally:
                c.close()


def cmd_serve(a):
    host, _, port = a.target.rpartition(":")
    proxy = Proxy(host.strip("[]"), int(port))
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((a.host, a.listen))
    lsock.listen(64)
    if os.path.exists(a.control):
        os.unlink(a.control)
    csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    csock.bind(a.control)
    csock.listen(8)
    threading.Thread(target=proxy.control_loop, args=(csock,), daemon=True).start()
    log("listening on %s:%d, forwarding to %s, control socket %s"
        % (a.host, a.listen, a.target, a.control))
    proxy.accept_loop(lsock)


def cmd_ctl(a):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(a.socket)
    s.sendall((" ".join(a.words) + "\n").encode())
    answer = b""
    while not answer.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            break
        answer += b
    text = answer.decode(errors="replace").strip()
    print(text)
    return 0 if text.startswith("ok") else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve")
    sp.add_argument("--listen", type=int, required=True, help="port to listen on")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sp.add_argument("--target", required=True, help="HOST:PORT of the real target")
    sp.add_argument("--control", required=True, help="path of the control socket")
    sp = sub.add_parser("ctl")
    sp.add_argument("socket")
    sp.add_argument("words", nargs="+")
    a = p.parse_args()
    if a.cmd == "serve":
        cmd_serve(a)
        return 0
    return cmd_ctl(a)


if __name__ == "__main__":
    sys.exit(main())
