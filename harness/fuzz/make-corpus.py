#!/usr/bin/python3
"""make-corpus.py DIR - seed inputs for fuzz-spice (harness/fuzz/fuzz-spice.c):
well-formed messages for each of its three modes, so that the fuzzer starts
from bytes that reach past the framing.  Written fresh by ci/lane-fuzz.

Layouts follow docs/protocol-spice.md: mini header = u16 type, u32 size;
little-endian bodies.
"""
import struct
import sys
from pathlib import Path


def mini(msg_type, body):
    return struct.pack("<HI", msg_type, len(body)) + body


def draw_base(surface, top, left, bottom, right):
    return struct.pack("<IiiiiB", surface, top, left, bottom, right, 0)


def seeds():
    # mode 0: decoders - MAIN_INIT body, DRAW_COPY body, a link message
    yield bytes([0, 1]) + struct.pack("<H", 103) + struct.pack("<8I", 1, 1, 1, 1, 0, 10, 0, 0)
    pixels = bytes(range(32))
    image = struct.pack("<QBBII", 7, 0, 1, 4, 2) + struct.pack("<BBIIII", 8, 4, 4, 2, 16, 0) + pixels
    copy = draw_base(0, 0, 0, 2, 4) + struct.pack("<I", 57) + struct.pack("<iiii", 0, 0, 2, 4) + \
        struct.pack("<HB", 8, 0) + bytes(13) + image
    yield bytes([0, 2]) + struct.pack("<H", 304) + copy
    yield bytes([0, 1, 0, 0]) + b"REDQ" + struct.pack("<III", 2, 2, 26) + \
        struct.pack("<IBBIII", 0, 1, 0, 1, 1, 18) + struct.pack("<II", 0xd, 0xf)
    # mode 1: the server - main ATTACH_CHANNELS, display DISPLAY_INIT, record data
    yield bytes([1, 0]) + mini(104, b"") + mini(105, struct.pack("<H", 2))
    yield bytes([1, 1]) + mini(1, struct.pack("<I", 1)) + mini(101, struct.pack("<BqBi", 1, 1000, 1, 1000))
    yield bytes([1, 5]) + mini(102, struct.pack("<IH", 0, 1)) + mini(101, struct.pack("<I", 0) + bytes(16))
    yield bytes([1, 6]) + mini(101, struct.pack("<I", 0) + b"hello")
    # mode 2: the client (mini headers: 0x80) - display surfaces and drawing
    surf = mini(314, struct.pack("<5I", 0, 4, 2, 32, 1))
    fill = mini(302, draw_base(0, 0, 0, 1, 2) + struct.pack("<BIH", 1, 0xff00ff, 8) + bytes(13))
    yield bytes([2, 0x81]) + surf + fill + mini(304, copy) + mini(102, b"")
    yield bytes([2, 0x80]) + mini(103, struct.pack("<8I", 1, 1, 1, 1, 0, 10, 0, 0)) + \
        mini(104, struct.pack("<IBB", 1, 2, 0))
    yield bytes([2, 0x82]) + mini(103, struct.pack("<IHII", 2, 1, 48000, 0)) + \
        mini(101, struct.pack("<I", 0) + bytes(8))
    # mode 3: the GLZ decoder - the encoder's third image unchanged (it
    # refers to the two before it), and a header alone
    yield bytes([3, 1]) + bytes(8)
    yield bytes([3, 0]) + struct.pack("<I", 33) + struct.pack(">II", 0x20205a4c, 0x10001) + \
        bytes([0x18]) + struct.pack(">IIIQI", 16, 8, 64, 2, 2)


def main(argv):
    out = Path(argv[1] if len(argv) > 1 else "corpus")
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds()):
        (out / f"seed-{i:02d}").write_bytes(s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
