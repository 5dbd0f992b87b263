"""gtkclient.py - spice-gtk 0.42 (SpiceClientGLib through Python GI) as a
real SPICE client in a child process, for tests against `migcert vm --spice`.

Run as a program it is the client: `/usr/bin/python3 gtkclient.py URI`
connects a SpiceSession, opens every channel the server lists and runs the
GLib main loop.  It reports its state as one JSON line on stdout whenever
something changed (coalesced: at most one line per main-loop idle), and
answers JSON commands read from stdin, one a line:
    {"op": "state"}               -> the state now
    {"op": "shot", "path": P, "head": N} -> the state, after writing display N's
                                     channel's primary surface to P as PPM
    {"op": "quit"}                -> disconnects and exits
Every reply is the state with "reply": the op (and "error" when it failed).

The state: channels opened (and closed, and their errors), display
(primary created, its size, invalidates, marks), playback (starts, frames,
and how many frame sequence numbers were skipped or repeated: the fake
sound card's frame n carries n, fakes/devices/fake-media.h), port (its
name, opened, bytes, and skips in the byte sequence n % 251), and the TCP
peers of the client's sockets (so a test sees which server it talks to).

The primary surface is read from the C struct: in spice-gtk 0.42 the GI
binding of SpiceDisplayPrimary reads its fields at the wrong offsets, so
spice_display_channel_get_primary is called through ctypes with the
struct as spice-gtk's channel-display.h lays it out (5 gint, a pointer,
a gboolean: 40 bytes on x86-64).

Imported, it gives GtkClient: the child as a subprocess, so a crash or a
hang of spice-gtk cannot take pytest down, and waits that end on a state
line (an event), with a generous deadline that only guards against a hang.
A thread reads the child's lines as they come, whatever the test is doing
meanwhile: a child whose pipe fills blocks in its write, its GLib loop
stops, and spice-gtk stops reading every channel (a test that waited on QMP
during a migration made the source's drain PINGs go unanswered that way):
    c = GtkClient(folder, "spice://127.0.0.1?port=5900")
    s = c.wait_for(lambda s: ..., "what")   # the first state that satisfies
    s = c.shot(path)                         # PPM of the client's primary
    c.stop()
"""
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

DEADLINE = 60.0
HERE = Path(__file__).resolve().parent

CHANNEL_NAMES = {1: "MAIN", 2: "DISPLAY", 3: "INPUTS", 4: "CURSOR", 5: "PLAYBACK", 6: "RECORD",
                 7: "TUNNEL", 8: "SMARTCARD", 9: "USBREDIR", 10: "PORT", 11: "WEBDAV"}
BYTE_PERIOD = 251  # fake-media.h: port byte n is n % 251


# ---------------------------------------------------------------- the parent side

class GtkClient:
    def __init__(self, folder, uri, name="gtk", debug=False):
        folder = Path(folder)
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, G_MESSAGES_DEBUG=os.environ.get("G_MESSAGES_DEBUG", ""))
        if debug:  # spice-gtk's debug log (SPICE_DEBUG=1), e.g. to see which decoder ran
            env.update(SPICE_DEBUG="1", G_MESSAGES_DEBUG="all")
        self.proc = subprocess.Popen(["/usr/bin/python3", str(HERE / "gtkclient.py"), uri],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=env)
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read_lines, daemon=True)
        self._reader.start()
        self.state = None

    def _read_lines(self):
        """The reader thread: every line of the child, then None at its end."""
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def log(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def _next(self, end):
        """The next line from the child, as a dict; fails at the deadline."""
        left = end - time.monotonic()
        assert left > 0, f"spice-gtk client: no answer in {DEADLINE:.0f}s\n{self.log()}"
        try:
            line = self._lines.get(timeout=left)
        except queue.Empty:
            raise AssertionError(f"spice-gtk client: no answer in {DEADLINE:.0f}s\n{self.log()}")
        if line is None:
            self._lines.put(None)  # every later call sees the end too
            raise AssertionError(f"spice-gtk client exited ({self.proc.wait()})\n{self.log()}")
        self.state = json.loads(line)
        return self.state

    def _send(self, **cmd):
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"spice-gtk client exited ({self.proc.wait()})\n{self.log()}")

    def request(self, op, **kw):
        """Send one command and return its reply (state lines in between are kept as self.state)."""
        end = time.monotonic() + DEADLINE
        self._send(op=op, **kw)
        while True:
            s = self._next(end)
            if s.get("reply") == op:
                return s

    def wait_for(self, pred, what="the condition", deadline=DEADLINE):
        """The first state (now, or a later one the child reports) for which pred holds."""
        end = time.monotonic() + deadline
        s = self.request("state")
        while not pred(s):
            try:
                s = self._next(end)
            except AssertionError as e:
                raise AssertionError(f"waiting for {what}: {e}\nlast state: {json.dumps(self.state)}")
        return s

    def shot(self, path, head=0):
        s = self.request("shot", path=str(path), head=head)
        assert "error" not in s, s["error"]
        return s

    def stop(self):
        if self.alive():
            try:
                self.request("quit")
            except AssertionError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


# ---------------------------------------------------------------- the child side

def tcp_peers():
    """Remote TCP ports of this process's connected sockets (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[9] in inodes and f[3] == "01":  # ESTABLISHED
                ports.append(int(f[2].rsplit(":", 1)[1], 16))
    return sorted(ports)


def child(uri):
    import ctypes

    # the replies get their own descriptor: GLib writes debug messages to stdout
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    import gi
    gi.require_version("SpiceClientGLib", "2.0")
    from gi.repository import GLib, GObject, SpiceClientGLib as Spice

    def on(obj, signal, cb):  # SpiceChannel.connect and SpiceSession.connect shadow GObject's
        GObject.Object.connect(obj, signal, cb)

    class Primary(ctypes.Structure):  # spice-gtk channel-display.h, SpiceDisplayPrimary
        _fields_ = [("format", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
                    ("stride", ctypes.c_int), ("shmid", ctypes.c_int),
                    ("data", ctypes.POINTER(ctypes.c_uint8)), ("marked", ctypes.c_int)]

    lib = ctypes.CDLL("libspice-client-glib-2.0.so.8")
    lib.spice_display_channel_get_primary.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(Primary)]
    lib.spice_display_channel_get_primary.restype = ctypes.c_int
    capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    capsule_pointer.restype = ctypes.c_void_p

    loop = GLib.MainLoop()
    session = Spice.Session()
    session.set_property("uri", uri)
    channels = []  # keep every channel object alive
    st = {"opened": [], "closed": [], "errors": [], "channel_events": 0,
          "display": {"primaries": 0, "width": 0, "height": 0, "invalidates": 0, "marks": 0},
          "playback": {"starts": 0, "frames": 0, "skips": 0, "repeats": 0, "next": None},
          "port": {"name": None, "opened": False, "bytes": 0, "skips": 0, "next": None},
          "peers": []}
    out = {"dirty": False, "idle": 0}
    display = {}  # channel id -> the DisplayChannel (one per head)

    def emit(extra=None):
        s = dict(st, peers=tcp_peers())
        if extra:
            s.update(extra)
        proto.write(json.dumps(s) + "\n")
        proto.flush()

    def flush():
        out["idle"] = 0
        if out["dirty"]:
            out["dirty"] = False
            emit()
        return False

    def changed():
        out["dirty"] = True
        if not out["idle"]:
            out["idle"] = GLib.idle_add(flush)

    def name_of(ch):
        return f"{CHANNEL_NAMES.get(ch.props.channel_type, ch.props.channel_type)}:{ch.props.channel_id}"

    def on_event(ch, event):
        st["channel_events"] += 1
        n = name_of(ch)
        if event == Spice.ChannelEvent.OPENED:
            st["opened"].append(n)
        elif event == Spice.ChannelEvent.CLOSED:
            st["closed"].append(n)
        else:
            st["errors"].append(f"{n}: {event.value_nick}")
        changed()

    def on_primary_create(ch, fmt, w, h, stride, shmid, data):
        st["display"].update(primaries=st["display"]["primaries"] + 1, width=w, height=h)
        changed()

    def on_invalidate(ch, x, y, w, h):
        st["display"]["invalidates"] += 1
        changed()

    def on_mark(ch, mark):
        st["display"]["marks"] += 1
        changed()

    def on_playback_start(ch, fmt, channels_, freq):
        st["playback"]["starts"] += 1
        st["playback"]["next"] = None  # a new stream (the target restarts playback)
        changed()

    def on_playback_data(ch, data, size):
        pb = st["playback"]
        pcm = ctypes.string_at(data, size)
        for i in range(0, size - 3, 4):
            seq = int.from_bytes(pcm[i:i + 2], "little") | int.from_bytes(pcm[i + 2:i + 4], "little") << 16
            if pb["next"] is not None and seq != pb["next"]:
                pb["skips" if seq > pb["next"] else "repeats"] += 1
            pb["next"] = seq + 1
            pb["frames"] += 1
        changed()

    def on_port_data(ch, data, size):
        pt = st["port"]
        for b in ctypes.string_at(data, size):
            if pt["next"] is not None and b != pt["next"]:
                pt["skips"] += 1
            pt["next"] = (b + 1) % BYTE_PERIOD
            pt["bytes"] += 1
        changed()

    def on_port_opened(ch, pspec):
        st["port"].update(name=ch.props.port_name, opened=bool(ch.props.port_opened))
        changed()

    def on_channel_new(sess, ch):
        channels.append(ch)
        on(ch, "channel-event", on_event)
        if isinstance(ch, Spice.DisplayChannel):
            display[ch.props.channel_id] = ch
            on(ch, "display-primary-create", on_primary_create)
            on(ch, "display-invalidate", on_invalidate)
            on(ch, "display-mark", on_mark)
        elif isinstance(ch, Spice.PlaybackChannel):
            on(ch, "playback-start", on_playback_start)
            on(ch, "playback-data", on_playback_data)
        elif isinstance(ch, Spice.PortChannel):
            on(ch, "port-data", on_port_data)
            on(ch, "notify::port-opened", on_port_opened)
        if not isinstance(ch, Spice.MainChannel):
            Spice.Channel.connect(ch)  # the main channel is connected by the session

    def write_shot(path, head=0):
        ch = display.get(head)
        if ch is None:
            return f"no display channel {head}"
        p = Primary()
        if not lib.spice_display_channel_get_primary(capsule_pointer(ch.__gpointer__, None), 0, ctypes.byref(p)):
            return "no primary surface"
        if p.format != 32:  # SPICE_SURFACE_FMT_32_xRGB
            return f"primary format {p.format}, expected 32 (xRGB)"
        raw = ctypes.string_at(p.data, p.stride * p.height)
        rgb = bytearray(3 * p.width * p.height)
        for y in range(p.height):
            row = raw[y * p.stride:y * p.stride + 4 * p.width]
            o = 3 * p.width * y
            rgb[o + 0:o + 3 * p.width:3] = row[2::4]  # little-endian xRGB: B, G, R, x
            rgb[o + 1:o + 3 * p.width:3] = row[1::4]
            rgb[o + 2:o + 3 * p.width:3] = row[0::4]
        with open(path, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (p.width, p.height) + bytes(rgb))
        return None

    def on_stdin(fd, cond):
        line = sys.stdin.readline()
        if not line:
            loop.quit()
            return False
        cmd = json.loads(line)
        op = cmd.get("op")
        extra = {"reply": op}
        if op == "shot":
            err = write_shot(cmd["path"], cmd.get("head", 0))
            if err:
                extra["error"] = err
        elif op == "quit":
            session.disconnect()
            emit(extra)
            loop.quit()
            return False
        elif op != "state":
            extra["error"] = f"unknown op {op!r}"
        emit(extra)
        return True

    on(session, "channel-new", on_channel_new)
    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    if not Spice.Session.connect(session):
        sys.stderr.write(f"gtkclient: spice_session_connect({uri}) refused\n")
        return 2
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(child(sys.argv[1]))
