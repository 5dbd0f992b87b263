"""qmp.py - a small synchronous QMP client over a unix socket.

One driver for every QMP server the suite talks to: Debian's QEMU 7.2, our
own `migcert vm`, and the benchmark (ci/bench).  Only the standard library.

    with QMP.connect("/tmp/q.sock", timeout=10) as q:   # greeting + qmp_capabilities
        q.execute("migrate", uri="exec:cat > /tmp/f")     # -> the "return" value
        ev = q.wait_event("MIGRATION", timeout=30,
                          match=lambda e: e["data"]["status"] == "completed")

Protocol (docs/protocol-qemu-stream.md section 15): the server greets with {"QMP": {...}};
nothing but `qmp_capabilities` is accepted until it is sent.  Replies are
{"return": ...} or {"error": {"class", "desc"}}; asynchronous events
{"event", "data", "timestamp"} may arrive at any time, also between a command
and its reply: they are queued in `events` and handed out by wait_event /
get_events.  Argument names with dashes: pass a dict, e.g.
q.execute("migrate-set-parameters", **{"max-bandwidth": 10**12}) or
q.execute("migrate-set-parameters", args={"max-bandwidth": 10**12}).

An fd for a `fd:NAME` URI goes over with getfd (SCM_RIGHTS), as QEMU wants:

    q.getfd("mig", sock.fileno()); q.execute("migrate", uri="fd:mig")

Capabilities, as management negotiates them (docs/protocol-qemu-stream.md
section 12):

    enabled = negotiate_capabilities(src, dst, wanted=["events"])

asks both sides what they offer, enables the intersection on both and
returns it (a side without query-migrate-capabilities offers nothing).
"""
import collections
import json
import socket
import time

__all__ = ["QMP", "QMPError", "QMPTimeout", "QMPConnectionError", "offered_capabilities",
           "negotiate_capabilities"]


class QMPError(Exception):
    """The server answered a command with {"error": ...}."""

    def __init__(self, cmd, error):
        self.cmd = cmd
        self.error = error if isinstance(error, dict) else {"desc": str(error)}
        self.desc = self.error.get("desc", "")
        self.error_class = self.error.get("class", "")
        super().__init__(f"{cmd}: {self.error_class}: {self.desc}")


class QMPTimeout(Exception):
    """No reply or no matching event within the allowed time."""


class QMPConnectionError(Exception):
    """The socket could not be opened, closed early, or carried non-QMP bytes."""


class QMP:
    """A connected QMP session.  Not thread-safe; one command at a time."""

    def __init__(self, sock, *, cmd_timeout=30.0, greeting=None):
        self._sock = sock
        self._buf = b""
        self.cmd_timeout = cmd_timeout
        self.events = collections.deque()
        self.greeting = greeting
        self._next_id = 0

    # -- connection ------------------------------------------------------
    @classmethod
    def connect(cls, path, *, timeout=10.0, cmd_timeout=30.0, negotiate=True,
                alive=None):
        """Connect to the unix socket `path`, retrying until `timeout` seconds
        (the server may not have created or bound it yet), read the greeting and,
        when `negotiate`, send qmp_capabilities.  `alive` is an optional callable
        returning False once the server process has died, to fail fast."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                s.connect(str(path))
                break
            except OSError as e:
                s.close()
                last = e
            if alive is not None and not alive():
                raise QMPConnectionError(f"{path}: server exited before accepting ({last})")
            if time.monotonic() >= deadline:
                raise QMPConnectionError(f"{path}: cannot connect within {timeout}s ({last})")
            time.sleep(0.02)
        q = cls(s, cmd_timeout=cmd_timeout)
        try:
            msg = q._read_message(max(0.1, deadline - time.monotonic()))
            if "QMP" not in msg:
                raise QMPConnectionError(f"{path}: expected a QMP greeting, got {msg!r}")
            q.greeting = msg["QMP"]
            if negotiate:
                q.execute("qmp_capabilities")
        except BaseException:
            q.close()
            raise
        return q

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- wire ------------------------------------------------------------
    def _read_message(self, timeout):
        """Return the next JSON object from the socket (events included)."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError as e:
                    raise QMPConnectionError(f"not JSON from server: {line[:200]!r} ({e})")
                if not isinstance(msg, dict):
                    raise QMPConnectionError(f"not a JSON object from server: {line[:200]!r}")
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout(f"no message from server within {timeout}s")
            if self._sock is None:
                raise QMPConnectionError("connection is closed")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise QMPTimeout(f"no message from server within {timeout}s")
            except OSError as e:
                raise QMPConnectionError(f"connection lost: {e}")
            if not chunk:
                raise QMPConnectionError("server closed the connection")
            self._buf += chunk

    def send_raw(self, obj_or_bytes):
        """Send one message as is (a dict, or raw bytes for malformed-input tests)."""
        data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
        if not data.endswith(b"\n"):
            data += b"\n"
        if self._sock is None:
            raise QMPConnectionError("connection is closed")
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise QMPConnectionError(f"connection lost: {e}")

    def recv_reply(self, timeout=None):
        """Next non-event message (events go to the queue)."""
        timeout = self.cmd_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_message(max(0.0, deadline - time.monotonic()))
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    # -- commands --------------------------------------------------------
    def execute(self, cmd, args=None, *, timeout=None, fd=None, **kwargs):
        """Run `cmd` and return its "return" value; raise QMPError with the
        server's "desc" on an error reply, QMPTimeout when none comes.  `fd`
        goes along with the request (SCM_RIGHTS), as `getfd` wants it."""
        arguments = dict(args or {})
        arguments.update(kwargs)
        self._next_id += 1
        req = {"execute": cmd, "id": self._next_id}
        if arguments:
            req["arguments"] = arguments
        if fd is None:
            self.send_raw(req)
        else:
            try:
                socket.send_fds(self._sock, [json.dumps(req).encode() + b"\n"], [fd])
            except OSError as e:
                raise QMPConnectionError(f"connection lost: {e}")
        timeout = self.cmd_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.recv_reply(max(0.0, left))
            except QMPTimeout:
                raise QMPTimeout(f"{cmd}: no reply within {timeout}s")
            if "id" in msg and msg["id"] != req["id"]:
                continue  # a late reply to an earlier, timed-out command
            if "error" in msg:
                raise QMPError(cmd, msg["error"])
            if "return" in msg:
                return msg["return"]
            raise QMPConnectionError(f"{cmd}: unexpected reply {msg!r}")

    cmd = execute

    def getfd(self, name, fd):
        """Hand `fd` to the server under `name` (QMP getfd), for uri fd:NAME."""
        return self.execute("getfd", fdname=name, fd=fd)

    # -- events ----------------------------------------------------------
    def _pump(self, timeout):
        """Read one message into the event queue; False on timeout."""
        try:
            msg = self._read_message(timeout)
        except QMPTimeout:
            return False
        if "event" in msg:
            self.events.append(msg)
        return True

    def wait_event(self, name, timeout=30.0, match=None):
        """Return (and remove from the queue) the first event called `name`
        (any when None) for which match(event) is true, waiting up to
        `timeout` seconds; raise QMPTimeout otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in list(self.events):
                if (name is None or ev.get("event") == name) and (match is None or match(ev)):
                    self.events.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout(f"event {name} not seen within {timeout}s")
            self._pump(left)

    def get_events(self, wait=0.0):
        """Return and clear every queued event, after reading for `wait` s."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
        evs = list(self.events)
        self.events.clear()
        return evs

    # -- helpers used by migration tests and the benchmark ---------------
    def wait_migration(self, timeout=60.0, poll=0.005,
                       done=("completed", "failed", "cancelled")):
        """Poll query-migrate every `poll` s until its status is in `done`;
        return the last MigrationInfo."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.execute("query-migrate")
            if info.get("status") in done:
                return info
            if time.monotonic() >= deadline:
                raise QMPTimeout(f"migration still {info.get('status')!r} after {timeout}s")
            time.sleep(poll)


def _session(side):
    """A QMP session from a QMP or from an object holding one as `.qmp`
    (the tests' Vm, conftest's QmpProcess)."""
    q = getattr(side, "qmp", side)
    if not hasattr(q, "execute"):
        raise TypeError(f"not a QMP session: {side!r}")
    return q


def offered_capabilities(side):
    """The capability names `side` offers, in its order: every entry of its
    query-migrate-capabilities reply, enabled or not.  A server that does not
    know the command (CommandNotFound: QEMU before 1.2, migcert --release 1.0)
    offers the empty list, the protocol without optional features."""
    q = _session(side)
    try:
        caps = q.execute("query-migrate-capabilities")
    except QMPError as e:
        if e.error_class == "CommandNotFound":
            return []
        raise
    return [c["capability"] for c in caps]


def negotiate_capabilities(src, dst, wanted=None):
    """Management's rule (docs/protocol-qemu-stream.md section 12): query the
    capabilities both sides
    offer, take the intersection, and set exactly that on both sides with
    migrate-set-capabilities (state true for the common ones, false for every
    other capability the side offers, so nothing enabled earlier lingers).
    `wanted` (an iterable of names), when given, further limits what is
    enabled; None enables the whole intersection, behavioural capabilities
    such as pause-before-switchover included, so pass `wanted` unless that is
    what you mean (QEMU 7.2 offers capabilities that exclude each other, e.g.
    postcopy-ram and x-ignore-shared, and refuses the whole set with a
    QMPError).  A side that offers nothing is not sent
    migrate-set-capabilities (it may not know the command).

    Call it before the migration starts: a destination must then be waiting
    with `-incoming defer` (capabilities cannot change once an incoming
    migration is set up); the QMPError of the refusing side propagates.
    Returns the enabled names in the source's order."""
    sides = [_session(src), _session(dst)]
    offers = [offered_capabilities(q) for q in sides]
    common = set(offers[0]) & set(offers[1])
    if wanted is not None:
        if isinstance(wanted, str):
            wanted = [wanted]
        common &= set(wanted)
    enabled = [c for c in offers[0] if c in common]
    for q, offer in zip(sides, offers):
        if offer:
            q.execute("migrate-set-capabilities",
                      capabilities=[{"capability": c, "state": c in common} for c in offer])
    return enabled


def _main(argv):
    """qmp.py SOCKET COMMAND [NAME=VALUE ...] [--wait-migration] [--timeout S]
    Sends one command, prints its "return" as JSON; VALUE is JSON when it
    parses as JSON, else a string.  --wait-migration then polls query-migrate
    until the migration ends and prints the final MigrationInfo.
    Exit 0, 1 on an error reply or a failed migration, 2 on usage."""
    import sys
    wait = "--wait-migration" in argv
    argv = [a for a in argv if a != "--wait-migration"]
    timeout = 60.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 2:
        print(_main.__doc__, file=sys.stderr)
        return 2
    path, cmd, args = argv[0], argv[1], {}
    for a in argv[2:]:
        k, sep, v = a.partition("=")
        if not sep:
            print(f"qmp.py: argument {a!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        try:
            args[k] = json.loads(v)
        except ValueError:
            args[k] = v
    try:
        with QMP.connect(path, timeout=timeout, cmd_timeout=timeout) as q:
            print(json.dumps(q.execute(cmd, args)))
            if wait:
                info = q.wait_migration(timeout=timeout)
                print(json.dumps(info))
                return 0 if info.get("status") == "completed" else 1
    except QMPError as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        return 1
    except (QMPTimeout, QMPConnectionError) as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
