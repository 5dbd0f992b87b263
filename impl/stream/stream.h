/*
 * stream.h - the buffered migration-stream codec and QEMU stream v3 framing.
 *
 * Owns: MigStream, a one-direction buffered codec over a MigTransport with
 * big-endian helpers, byte counters and a sticky first error (QEMU's
 * QEMUFile habit: after the first error every put/get does nothing, and
 * callers check once per section).  Also the v3 framing: file header,
 * configuration section, section START/PART/END/FULL headers with footers,
 * EOF and the VMDESCRIPTION trailer (docs/protocol-qemu-stream.md sections
 * 2-4 and 8).  And the page channel: pages a transport may carry beside the
 * byte stream (page flipping), as stream operations, so record formats never
 * talk to a transport and transports never know a record format.
 * Called by: impl/vmstate, impl/ram, impl/migration, the analyzer and tools.
 *
 * Non-blocking reads: engine readers run over non-blocking transports, so a
 * parser works in restartable units.  It calls mig_stream_mark() at the start
 * of a unit (a section header, a RAM record, a whole FULL section); when a get
 * finds no data yet (transport -EAGAIN) the stream becomes "starved", gets
 * return zeros, and the parser, seeing mig_stream_starved(), calls
 * mig_stream_rewind() and waits for the transport to be readable.  Nothing a
 * unit loaded may be committed before the unit completed.
 *
 * Non-blocking writes: puts only append to memory; mig_stream_flush() pushes
 * what the transport takes and reports -EAGAIN when bytes are left, so the
 * producer can wait for writability (backpressure) instead of blocking.
 * (When a put finds its buffer or iovec list full, it first offers the
 * queue to the transport, which takes what it can without blocking, and
 * grows the buffer only for the rest: memory stays bounded by what the
 * transport refused.  A failure there becomes the sticky error.)
 *
 * Error codes depart from docs/style.md section 3 on purpose in one place:
 * where QEMU 7.2's loader fails a stream with a given errno
 * (docs/protocol-qemu-stream.md section 9: bad magic, missing
 * configuration, machine type, footers -> -EINVAL; stream version ->
 * -ENOTSUP), the framing getters return the same errno, so
 * a failure reads the same whether QEMU or migcert loaded the stream and a
 * conformance case can compare the two.  Malformations QEMU has no errno
 * for are -EPROTO; a stream that ends inside an item is -EIO.
 */
#ifndef MIGCERT_STREAM_H
#define MIGCERT_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../common/common.h"
#include "../transport/transport.h"

/* Wire constants of stream v3.  Never renumbered: they are QEMU's. */
#define MIG_STREAM_MAGIC 0x5145564du /* "QEVM" */
#define MIG_STREAM_VERSION 3u

/* Section type bytes.  Exempt from the `<PREFIX>__COUNT` rule (docs/style.md
 * section 2): the values are QEMU's wire bytes, fixed and sparse (0x00-0x08,
 * then 0x7e), so
 * a __COUNT after the footer would be 0x7f, neither a count nor a byte any
 * table could be indexed with, and a reader might mistake it for one more
 * type.  The name table is mig_section_type_name(), a switch over the wire
 * values that returns NULL for every other byte (test-stream walks all 256).
 * Bump rule: none; a new type byte is a new QEMU stream feature and gets a
 * new value here, never a renumbering. */
enum MigSectionType {
    MIG_SECTION_EOF = 0x00,
    MIG_SECTION_START = 0x01,
    MIG_SECTION_PART = 0x02,
    MIG_SECTION_END = 0x03,
    MIG_SECTION_FULL = 0x04,
    MIG_SECTION_SUBSECTION = 0x05,
    MIG_SECTION_VMDESCRIPTION = 0x06,
    MIG_SECTION_CONFIGURATION = 0x07,
    MIG_SECTION_COMMAND = 0x08,
    MIG_SECTION_FOOTER = 0x7e,
};

typedef struct MigStream MigStream;

/* The stream does not own the transport; free the stream, then close t. */
MigStream *mig_stream_new_writer(MigTransport *t);
MigStream *mig_stream_new_reader(MigTransport *t);
/* A reader over a memory buffer (copied); for analyzers and tests. */
MigStream *mig_stream_new_mem_reader(const void *buf, size_t len);
/* Like mig_stream_new_mem_reader, without the copy: buf must outlive the
 * stream (the analyzer reads mmap'ed files this way). */
MigStream *mig_stream_new_mem_reader_borrow(const void *buf, size_t len);
/* Like mig_stream_new_mem_reader_borrow, with offsets (and every message
 * that quotes one) starting at `offset`: a reader over the tail of a larger
 * input that was read ahead (the analyzer does this with pipes). */
MigStream *mig_stream_new_mem_reader_borrow_at(const void *buf, size_t len, uint64_t offset);
/* A writer into memory; mig_stream_mem_data() returns what was written. */
MigStream *mig_stream_new_mem_writer(void);
const uint8_t *mig_stream_mem_data(MigStream *s, size_t *len);
void mig_stream_free(MigStream *s);

/* Sticky first error: 0 or a negative errno, and its message. */
int mig_stream_error(const MigStream *s);
const char *mig_stream_error_msg(const MigStream *s);
/* Record an error (first one wins); fmt names what was wrong. */
void mig_stream_set_error(MigStream *s, int err, const char *fmt, ...) MIG_PRINTF(3, 4);
/* Copy the sticky error into *errp (returns its code, 0 if none). */
int mig_stream_take_error(MigStream *s, MigErr **errp);
/* The one way a codec rejects what it read: record "<fmt> at offset <at>"
 * as the sticky error (unless one is already set: first error wins), copy
 * the sticky error into *errp and return its code.  `at` is where the bad
 * item starts, which may be before the current offset. */
int mig_stream_fail(MigStream *s, MigErr **errp, int err, uint64_t at, const char *fmt, ...)
    MIG_PRINTF(5, 6);
int mig_stream_vfail(MigStream *s, MigErr **errp, int err, uint64_t at, const char *fmt, va_list ap)
    MIG_PRINTF(5, 0);
/* The result of a run of getters, for codecs to check once per item: the
 * sticky error (copied into *errp), else -EAGAIN when the input starved,
 * else 0. */
int mig_stream_result(MigStream *s, MigErr **errp);

/* Bytes consumed by gets (reader) or produced by puts (writer) so far; the
 * "stream offset" that error messages quote. */
uint64_t mig_stream_offset(const MigStream *s);

/* ---- writer ---- */
void mig_stream_put_u8(MigStream *s, uint8_t v);
void mig_stream_put_be16(MigStream *s, uint16_t v);
void mig_stream_put_be32(MigStream *s, uint32_t v);
void mig_stream_put_be64(MigStream *s, uint64_t v);
void mig_stream_put_buffer(MigStream *s, const void *buf, size_t len);
/* Zero-copy: queue `buf` by reference; it must stay valid until the next
 * mig_stream_flush() returns 0. */
void mig_stream_put_buffer_ref(MigStream *s, const void *buf, size_t len);
/* Zero-copy for guest RAM: as mig_stream_put_buffer_ref, and moreover
 * `buf` stays mapped for as long as the transport lives, and the stream
 * format tolerates its bytes changing after the put (pre-copy sends a page
 * that changed again: the dirty log).  A transport may then hand the memory
 * itself to the kernel (MigTransportOps.writev_guest: a unix socket splices
 * the pages), so the peer reads the bytes they hold when it reads. */
void mig_stream_put_guest_ref(MigStream *s, const void *buf, size_t len);
/* u8 length + bytes, no NUL.  A string over 255 bytes is an error. */
void mig_stream_put_counted(MigStream *s, const char *str);
/* Push buffered bytes: 0 all out (the transport's own queue too:
 * MigTransportOps.flush), -EAGAIN bytes remain (wait for MIG_LOOP_OUT),
 * other negative errno = sticky error. */
int mig_stream_flush(MigStream *s);
/* Bytes put but not yet accepted by the transport. */
size_t mig_stream_pending(const MigStream *s);

/* ---- page channel (page flipping; docs/protocol-qemu-stream.md) ----
 * A transport may offer a channel for page bytes beside the byte stream
 * (the "local" transport: a pipe, transport.h); the stream asks it where a
 * page goes, and carries the page inline, in stream order, when it does not
 * offer one (every other backend, memory streams).  Either way the page's
 * bytes count in the writer's offsets, pending bytes and flushes, so
 * budgets and rates see a page as a page.
 * Writer: put the byte that opens the page channel (MIG_TRANSPORT_FD_MARKER;
 * the local transport attaches its pipe's read end to it).  An error (the
 * transport refused) becomes the sticky error. */
void mig_stream_put_page_channel(MigStream *s);
/* Writer: put `len` bytes of `page` by reference (valid until the next
 * mig_stream_flush() returns 0, as mig_stream_put_buffer_ref).  A page
 * channel carries them, and delivers them to the peer before stream byte
 * `ahead_of` (at or before this page's offset, and after the previous
 * page: where the record that names the page starts, so that a reader that
 * read the record finds its page).  An error becomes the sticky error. */
void mig_stream_put_page_ref(MigStream *s, const void *page, size_t len, uint64_t ahead_of);
/* Does the transport carry keyed pages of guest RAM as keys
 * (MigTransport.keyed_ram; impl/ram/ram.h)?  Writer: a keyed page may be put
 * by reference to its untouched memory.  Reader: a page may become a key
 * (the zero page's too) instead of bytes. */
bool mig_stream_carries_keys(const MigStream *s);
/* Do pages go through a page channel (true) or inline in the stream
 * (false)?  Fixed for a stream's life; for statistics that count the
 * stream's own bytes. */
bool mig_stream_has_page_channel(const MigStream *s);
/* Reader: read the byte that opens the page channel and accept the channel
 * that came with it.  0, -EAGAIN when starved (rewind, nothing consumed for
 * good), -EINVAL when the byte is not the marker, or the transport's error
 * (-EPROTO: no channel came with the byte).  Errors go to *errp only. */
int mig_stream_get_page_channel(MigStream *s, MigErr **errp);
/* Reader: the next page of `len` bytes into dst: from the page channel, or
 * inline from the stream.  0, -EAGAIN when starved (inline only: dst is
 * untouched, rewind), or an error (*errp; a page channel's errors are
 * final). */
int mig_stream_get_page(MigStream *s, void *dst, size_t len, MigErr **errp);
/* Reader: the next n pages from the page channel, straight into each iov's
 * memory (one system call for the run where the transport can); on a
 * stream without a channel, one mig_stream_get_page each.  0 or an error
 * as mig_stream_get_page (-EAGAIN only inline, before any page moved). */
int mig_stream_get_pagev(MigStream *s, const struct iovec *iov, int n, MigErr **errp);
/* ---- reading straight into place (the RAM loader; ram-section.c) ----
 * Reader: bytes read but not consumed yet. */
size_t mig_stream_buffered(const MigStream *s);
/* Read at most `bytes` beyond what a get needs (0: as much as the buffer
 * holds, the default).  A loader that reads most of the stream straight
 * into place (the RAM loader's direct reads) keeps the buffer from taking
 * what it would then have to copy out. */
void mig_stream_set_read_ahead(MigStream *s, size_t bytes);
/* Bytes the transport holds for this reader beyond what is buffered, or
 * -ENOTSUP when it cannot tell (memory streams, files). */
ssize_t mig_stream_readable(const MigStream *s);
/* Can mig_stream_readv_direct read (a transport with readv)? */
bool mig_stream_can_read_direct(const MigStream *s);
/* Reader with nothing buffered: read the next bytes straight into iov (one
 * transport readv) and consume them, reading up to `ahead` more bytes into
 * the buffer in the same call (read, not consumed: the next gets take them,
 * and a read that did not fill iov takes none).  Returns the bytes that went
 * into iov, -EAGAIN (the stream is starved: rewind), 0 at the transport's
 * end (the next get reports it), or the sticky error. */
ssize_t mig_stream_readv_direct_ahead(MigStream *s, const struct iovec *iov, int n, size_t ahead);
/* The same without reading ahead. */
static inline ssize_t mig_stream_readv_direct(MigStream *s, const struct iovec *iov, int n)
{
    return mig_stream_readv_direct_ahead(s, iov, n, 0);
}
/* Reader: give back `len` bytes consumed last (a direct read that went
 * further than the caller wanted), which the next gets return again, before
 * any bytes still buffered (what a direct read took ahead); the mark moves
 * to them. */
void mig_stream_unget(MigStream *s, const void *buf, size_t len);
/* Reader: a pointer to the next len bytes if the buffer already holds them
 * (nothing consumed, nothing read, never starves), else NULL. */
const void *mig_stream_peek_buffered(const MigStream *s, size_t len);

/* ---- passing fds (x-ram-share; docs/protocol-qemu-stream.md) ----
 * Writer: put one MIG_TRANSPORT_FD_MARKER byte that carries `fd` (SCM_RIGHTS
 * on a unix socket), in stream order: the flush writes what precedes it,
 * then the byte with the fd (transport send_fd), then what follows.  The
 * caller keeps `fd` open until the flush that sends it returns 0.  A stream
 * whose transport cannot pass fds (memory, file, pipe) sets a sticky
 * -ENOTSUP error. */
void mig_stream_put_fd(MigStream *s, int fd);
/* Reader: read the marker byte and take the fd that came with it: the fd
 * (the caller owns it), -EAGAIN when starved (rewind), -EPROTO (another
 * byte, or no fd came with it), -EEXIST (more than one came), or the
 * stream's error; errors go to *errp only. */
int mig_stream_get_fd(MigStream *s, MigErr **errp);

/* ---- reader ---- */
uint8_t mig_stream_get_u8(MigStream *s);
uint16_t mig_stream_get_be16(MigStream *s);
uint32_t mig_stream_get_be32(MigStream *s);
uint64_t mig_stream_get_be64(MigStream *s);
/* Read exactly len bytes (zeros on error/starvation). */
void mig_stream_get_buffer(MigStream *s, void *buf, size_t len);
/* Zero-copy get: consume len bytes and return a pointer to them inside the
 * stream's buffer, valid until the next call on s; NULL on error or when
 * starved.  (The RAM decoder hands pages out this way.) */
const void *mig_stream_get_view(MigStream *s, size_t len);
/* Consume and drop len bytes (a stream that ends first gets the usual
 * "stream ended at offset N" error). */
void mig_stream_skip(MigStream *s, uint64_t len);
/* Counted string into out (NUL-terminated); returns its length. */
size_t mig_stream_get_counted(MigStream *s, char out[256]);
/* Look at byte `at` past the current position without consuming; returns
 * -1 at EOF or when starved (no error is set). */
int mig_stream_peek_u8(MigStream *s, size_t at);
/* Look at up to len bytes at `at` without consuming; returns bytes copied. */
size_t mig_stream_peek(MigStream *s, void *buf, size_t len, size_t at);
/* True when no more bytes will ever come (EOF reached and buffer empty, or
 * a sticky error).  On a transport with nothing to read yet it returns false
 * and the stream becomes starved. */
bool mig_stream_at_eof(MigStream *s);
/* Once the transport said EOF (memory readers: always): the input's whole
 * length, bytes consumed plus bytes still buffered, and true; false while
 * more may come. */
bool mig_stream_input_length(const MigStream *s, uint64_t *len);

/* The fault gate of the stream's loop (impl/common/faults.h), for points
 * hit once per record; NULL for memory streams and where none is set. */
const MigFaultGate *mig_stream_fault_gate(const MigStream *s);
void mig_stream_mark(MigStream *s);
void mig_stream_rewind(MigStream *s);
bool mig_stream_starved(const MigStream *s);
/* Notes on the reader: peeks that find no data yet also make the stream
 * starved; rewind clears starvation (and, without a mark, goes nowhere).  A
 * mark keeps every byte from there on buffered until the next mark. */

/* Wire strings (idstrs, RAM block names, subsection names, machine types)
 * are bytes, not text.  Render `len` bytes of `in` for a message or JSON:
 * printable ASCII as is, a backslash as "\\", every other byte (control
 * bytes, NUL, >= 0x7f) as "\xNN".  Writes at most outsz bytes including
 * the NUL (cutting whole characters only) and returns out.  A counted string
 * (<= 255 bytes) always fits in MIG_STREAM_ESCAPED_MAX. */
#define MIG_STREAM_ESCAPED_MAX (255 * 4 + 1)
const char *mig_stream_escape(const void *in, size_t len, char *out, size_t outsz);

/* ---- v3 framing ---- */
typedef struct MigSectionHeader {
    uint8_t type;         /* enum MigSectionType */
    uint32_t section_id;  /* START/PART/END/FULL */
    char idstr[256];      /* START/FULL */
    uint32_t instance_id; /* START/FULL */
    uint32_t version_id;  /* START/FULL */
    uint64_t offset;      /* stream offset of the type byte */
} MigSectionHeader;

void mig_stream_put_file_header(MigStream *s);
/* CONFIGURATION: machine type, then the capabilities subsection when
 * ncaps > 0 (counted strings). */
void mig_stream_put_configuration(MigStream *s, const char *machine, const char *const *caps,
                                  size_t ncaps);
void mig_stream_put_section_header(MigStream *s, const MigSectionHeader *h);
void mig_stream_put_section_footer(MigStream *s, uint32_t section_id);
void mig_stream_put_eof(MigStream *s);
void mig_stream_put_vmdesc(MigStream *s, const char *json, size_t len);

int mig_stream_get_file_header(MigStream *s, MigErr **errp);
typedef struct MigStreamConfig {
    char machine[256];
    char caps[32][256];
    size_t ncaps;
    /* Other configuration subsections QEMU may send. */
    uint32_t target_page_bits; /* 0 = not sent */
    bool has_uuid;
    uint8_t uuid[16];
} MigStreamConfig;
int mig_stream_get_configuration(MigStream *s, MigStreamConfig *cfg, MigErr **errp);
/* Read the type byte and the header fields that go with it.  Unknown type
 * -> -EPROTO naming the byte and offset; an idstr holding a NUL byte (it
 * would be matched as the shorter name before it) -> -EPROTO naming it
 * escaped. */
int mig_stream_get_section_header(MigStream *s, MigSectionHeader *h, MigErr **errp);
/* Expect footer 0x7e + section_id; errors name `name` like QEMU does. */
int mig_stream_get_section_footer(MigStream *s, uint32_t section_id, const char *name,
                                  MigErr **errp);

/* Notes on the framing getters: each returns 0, -EAGAIN when the stream is
 * starved (nothing recorded; rewind and retry), or a negative errno; an
 * error is also made the stream's sticky error, and every message ends with
 * "at offset N".  mig_stream_get_section_header accepts EOF, START, PART,
 * END, FULL, COMMAND and VMDESCRIPTION; for COMMAND and VMDESCRIPTION only
 * the type byte is consumed (use the two getters below). */

/* After a VMDESCRIPTION type byte: be32 len + JSON.  *json is malloc'ed and
 * NUL-terminated (not on the wire).  More than MIG_STREAM_VMDESC_MAX bytes
 * is refused. */
#define MIG_STREAM_VMDESC_MAX (64u << 20)
int mig_stream_get_vmdesc(MigStream *s, char **json, size_t *len, MigErr **errp);
/* After a COMMAND type byte: be16 cmd, be16 len; the len data bytes are left
 * for the caller. */
int mig_stream_get_command(MigStream *s, uint16_t *cmd, uint16_t *len, MigErr **errp);
/* Name of a section type byte ("start", "full", ...) or NULL if unknown. */
const char *mig_section_type_name(uint8_t type);

#endif
