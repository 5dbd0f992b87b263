"""streamutil.py - independent facts about a QEMU migration stream, for tests
that check `migcert analyze` against it (docs/protocol-qemu-stream.md
sections 2-4, 7, 8).

Deliberately small: it reads the header, the configuration section and the
first RAM section header/footer only, plus the VMDESCRIPTION trailer from the
end, so that the tests do not share a parser with the code they test.
"""
import json
import re
import struct

MAGIC = b"QEVM"
SECTION_FOOTER = 0x7E
VMDESCRIPTION = 0x06
CONFIGURATION = 0x07
RAM_FLAG_MEM_SIZE = 0x04
RAM_FLAG_EOS = 0x10

OFFSET_RE = re.compile(r"offset[\s:=]*(0x[0-9a-fA-F]+|\d+)", re.IGNORECASE)


def vmdesc(data):
    """The trailing VMDESCRIPTION JSON (0x06, be32 len, len bytes at the very
    end) as a dict; None when the stream has no such trailer."""
    pos = len(data)
    while True:
        pos = data.rfind(bytes([VMDESCRIPTION]), 0, pos)
        if pos < 0 or len(data) - pos < 5:
            return None
        (n,) = struct.unpack_from(">I", data, pos + 1)
        if pos + 5 + n == len(data) and data[pos + 5:pos + 6] == b"{":
            try:
                return json.loads(data[pos + 5:])
            except ValueError:
                return None


class Layout:
    """Offsets of the first items of a QEMU 7.2 precopy stream."""

    def __init__(self, data):
        self.config = 8
        if data[0:4] != MAGIC or data[self.config] != CONFIGURATION:
            raise ValueError("not a QEMU v3 stream with a configuration section")
        (n,) = struct.unpack_from(">I", data, self.config + 1)
        self.machine = data[self.config + 5:self.config + 5 + n].decode()
        p = self.config + 5 + n
        self.ram_section = p                       # SECTION_START of "ram"
        assert data[p] == 0x01
        (self.ram_section_id,) = struct.unpack_from(">I", data, p + 1)
        idlen = data[p + 5]
        assert data[p + 6:p + 6 + idlen] == b"ram"
        self.ram_version = p + 6 + idlen + 4       # be32 version_id
        p = self.ram_version + 4
        (rec,) = struct.unpack_from(">Q", data, p)
        assert rec & RAM_FLAG_MEM_SIZE
        total = rec & ~0xFFF
        p += 8
        self.blocks = {}
        while sum(self.blocks.values()) < total:
            ln = data[p]
            name = data[p + 1:p + 1 + ln].decode()
            (length,) = struct.unpack_from(">Q", data, p + 1 + ln)
            self.blocks[name] = length
            p += 1 + ln + 8
        (rec,) = struct.unpack_from(">Q", data, p)
        assert rec == RAM_FLAG_EOS
        self.ram_footer = p + 8                    # 0x7e + be32 section id
        assert data[self.ram_footer] == SECTION_FOOTER


def offsets_in(text):
    """Every number that follows the word "offset" in text."""
    return [int(m.group(1), 0) for m in OFFSET_RE.finditer(text)]
