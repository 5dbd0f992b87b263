/*
 * test-vmstate.c - device-state descriptions (impl/vmstate): wire bytes of
 * every field type, round trips, version gates, subsections, the subsection
 * ambiguity against a re-statement of QEMU's rule, every truncation of a
 * multi-device stream, the JSON describers and the compatibility checker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "stream/stream.h"
#include "vmstate/vmstate.h"

#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

/* ---- helpers ---- */

typedef struct Bytes {
    uint8_t *data;
    size_t len;
} Bytes;

/* Save one description into memory; asserts success. */
static Bytes save_bytes(const VmsDescription *d, void *obj)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    int ret = vmstate_save(w, d, obj, &err);
    if (ret != 0)
        fail_msg("save %s: %s", d->name, err ? err->msg : "?");
    Bytes b;
    const uint8_t *p = mig_stream_mem_data(w, &b.len);
    b.data = malloc(b.len ? b.len : 1);
    memcpy(b.data, p, b.len);
    mig_stream_free(w);
    return b;
}

static int load_bytes(const VmsDescription *d, void *obj, int version, const void *buf, size_t len,
                      MigErr **errp)
{
    MigStream *r = mig_stream_new_mem_reader(buf, len);
    int ret = vmstate_load(r, d, obj, version, errp);
    mig_stream_free(r);
    return ret;
}

/* ---- every field type ---- */

typedef struct AllTypes {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    bool flag;
    uint8_t buf[3];
    int64_t timer;
    uint16_t pair[2];
    uint8_t n;
    uint32_t list[4];
} AllTypes;

static const VmsField all_fields[] = {
    VMS_U8(u8, AllTypes),
    VMS_U16(u16, AllTypes),
    VMS_U32(u32, AllTypes),
    VMS_U64(u64, AllTypes),
    VMS_I8(i8, AllTypes),
    VMS_I16(i16, AllTypes),
    VMS_I32(i32, AllTypes),
    VMS_I64(i64, AllTypes),
    VMS_BOOL(flag, AllTypes),
    VMS_BUFFER(buf, AllTypes),
    VMS_UNUSED(2),
    VMS_TIMER(timer, AllTypes),
    VMS_ARRAY(pair, AllTypes, VMS_TYPE_U16),
    VMS_U8(n, AllTypes),
    VMS_VARRAY(list, AllTypes, VMS_TYPE_U32, n),
    VMS_END,
};
static const VmsDescription all_desc = {
    .name = "all-types", .version_id = 1, .minimum_version_id = 1, .fields = all_fields};

static const AllTypes all_value = {
    .u8 = 0x12,
    .u16 = 0x3456,
    .u32 = 0x789abcde,
    .u64 = 0x0102030405060708ull,
    .i8 = -2,
    .i16 = -3,
    .i32 = -4,
    .i64 = -5,
    .flag = true,
    .buf = {'a', 'b', 'c'},
    .timer = -1,
    .pair = {0x1111, 0x2222},
    .n = 2,
    .list = {0xaabbccdd, 0x01020304, 9, 9},
};

static const uint8_t all_wire[] = {
    0x12,                                           /* u8 */
    0x34, 0x56,                                     /* u16, big-endian */
    0x78, 0x9a, 0xbc, 0xde,                         /* u32 */
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
    0xfe,                                           /* i8 -2 */
    0xff, 0xfd,                                     /* i16 -3 */
    0xff, 0xff, 0xff, 0xfc,                         /* i32 -4 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb, /* i64 -5 */
    0x01,                                           /* bool true */
    'a', 'b', 'c',                                  /* buffer[3], raw */
    0x00, 0x00,                                     /* unused(2): zeros */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* timer -1 = not armed */
    0x11, 0x11, 0x22, 0x22,                         /* pair[2], fixed u16 array */
    0x02,                                           /* n, the count of list */
    0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x02, 0x03, 0x04, /* list[0..n), no length on the wire */
};

static void test_vmstate_wire_bytes_every_type(void **state)
{
    (void)state;
    AllTypes obj = all_value;
    Bytes b = save_bytes(&all_desc, &obj);
    assert_int_equal(b.len, sizeof(all_wire));
    assert_memory_equal(b.data, all_wire, sizeof(all_wire));

    AllTypes back;
    memset(&back, 0, sizeof(back));
    back.list[2] = back.list[3] = 77; /* beyond the count: must stay */
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&all_desc, &back, 1, all_wire, sizeof(all_wire), &err), 0);
    assert_null(err);
    AllTypes want;
    memcpy(&want, &all_value, sizeof(want)); /* padding included */
    want.list[2] = want.list[3] = 77;
    assert_memory_equal(&back, &want, sizeof(want));
    free(b.data);
}

static void test_vmstate_bad_bool_and_count_leave_object_unchanged(void **state)
{
    (void)state;
    uint8_t wire[sizeof(all_wire)];
    AllTypes obj, before;
    memset(&obj, 0x5a, sizeof(obj));
    memcpy(&before, &obj, sizeof(obj));

    memcpy(wire, all_wire, sizeof(wire));
    wire[30] = 0x02; /* the bool */
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&all_desc, &obj, 1, wire, sizeof(wire), &err), -EPROTO);
    assert_string_equal(err->msg, "all-types: field flag: invalid bool value 2 at offset 30");
    assert_memory_equal(&obj, &before, sizeof(obj));
    mig_err_free(err);

    memcpy(wire, all_wire, sizeof(wire));
    wire[48] = 9; /* n: above list's capacity of 4 */
    err = NULL;
    assert_int_equal(load_bytes(&all_desc, &obj, 1, wire, sizeof(wire), &err), -EPROTO);
    assert_string_equal(err->msg,
                        "all-types: field list: count 9 exceeds capacity 4 (stream offset 49)");
    assert_memory_equal(&obj, &before, sizeof(obj));
    mig_err_free(err);
}

/* ---- nested structs, arrays of structs, pointers ---- */

typedef struct Desc {
    uint32_t addr;
    uint16_t len;
} Desc;

static const VmsField ring_desc_fields[] = {VMS_U32(addr, Desc), VMS_U16(len, Desc), VMS_END};
static const VmsDescription ring_desc_vmsd = {
    .name = "ring-desc", .version_id = 1, .minimum_version_id = 1, .fields = ring_desc_fields};

typedef struct Nic {
    uint8_t mac[6];
    Desc cur;
    Desc rx_ring[4];
    uint8_t ntx;
    Desc tx_ring[3];
    Desc *shadow; /* allocated by the device */
} Nic;

static const VmsField nic_fields[] = {
    VMS_BUFFER(mac, Nic),
    VMS_STRUCT(cur, Nic, ring_desc_vmsd, Desc),
    VMS_STRUCT_ARRAY(rx_ring, Nic, ring_desc_vmsd, Desc),
    VMS_U8(ntx, Nic),
    VMS_STRUCT_VARRAY(tx_ring, Nic, ring_desc_vmsd, Desc, ntx),
    VMS_STRUCT_POINTER(shadow, Nic, ring_desc_vmsd, Desc),
    VMS_END,
};
static const VmsDescription nic_vmsd = {
    .name = "fake-nic", .version_id = 1, .minimum_version_id = 1, .fields = nic_fields};

static void nic_fill(Nic *n, Desc *shadow, uint32_t seed)
{
    memset(n, 0, sizeof(*n));
    for (int i = 0; i < 6; i++)
        n->mac[i] = (uint8_t)(seed + i);
    n->cur = (Desc){seed * 7, (uint16_t)seed};
    for (int i = 0; i < 4; i++)
        n->rx_ring[i] = (Desc){seed + 0x100 * i, (uint16_t)(i + 1)};
    n->ntx = 2;
    for (int i = 0; i < 3; i++)
        n->tx_ring[i] = (Desc){seed + 0x1000 * i, (uint16_t)(10 + i)};
    *shadow = (Desc){0xdead0000 + seed, 0xbeef};
    n->shadow = shadow;
}

static void test_vmstate_round_trip_structs_arrays_pointer(void **state)
{
    (void)state;
    Desc sh_src, sh_dst = {0, 0};
    Nic src, dst;
    nic_fill(&src, &sh_src, 3);
    Bytes b = save_bytes(&nic_vmsd, &src);
    /* 6 mac + 6 cur + 4*6 rx + 1 ntx + 2*6 tx (only ntx of them) + 6 shadow */
    assert_int_equal(b.len, 6 + 6 + 24 + 1 + 12 + 6);
    memset(&dst, 0, sizeof(dst));
    dst.shadow = &sh_dst;
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&nic_vmsd, &dst, 1, b.data, b.len, &err), 0);
    assert_memory_equal(dst.mac, src.mac, 6);
    assert_memory_equal(&dst.cur, &src.cur, sizeof(Desc));
    assert_memory_equal(dst.rx_ring, src.rx_ring, sizeof(src.rx_ring));
    assert_int_equal(dst.ntx, 2);
    assert_memory_equal(dst.tx_ring, src.tx_ring, 2 * sizeof(Desc));
    assert_int_equal(dst.tx_ring[2].addr, 0); /* beyond ntx: not sent, not touched */
    assert_ptr_equal(dst.shadow, &sh_dst);    /* the pointer itself never travels */
    assert_int_equal(sh_dst.addr, 0xdead0003);
    assert_int_equal(sh_dst.len, 0xbeef);
    free(b.data);

    /* A NULL pointer member is a description/device bug, reported by name. */
    src.shadow = NULL;
    MigStream *w = mig_stream_new_mem_writer();
    assert_int_equal(vmstate_save(w, &nic_vmsd, &src, &err), -EINVAL);
    assert_string_equal(err->msg, "fake-nic: field shadow: NULL pointer member");
    size_t len = 99;
    mig_stream_mem_data(w, &len);
    assert_int_equal(len, 0); /* all or nothing */
    mig_err_free(err);
    mig_stream_free(w);
}

/* The same Nic, seed 3, byte by byte.  Structs carry no header of their
 * own: a nested description's fields follow the parent's in place, an array
 * of structs is its elements back to back, a var array sends only the first
 * `ntx` elements (and no length: ntx went earlier as an ordinary field), and
 * a pointer member sends the struct it points at, never the pointer. */
static const uint8_t nic_wire[] = {
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* mac[6], raw buffer */
    0x00, 0x00, 0x00, 0x15,             /* cur.addr (VMS_STRUCT) = 3 * 7 */
    0x00, 0x03,                         /* cur.len */
    0x00, 0x00, 0x00, 0x03,             /* rx_ring[0].addr (VMS_STRUCT_ARRAY, 4 elements) */
    0x00, 0x01,                         /* rx_ring[0].len */
    0x00, 0x00, 0x01, 0x03,             /* rx_ring[1].addr */
    0x00, 0x02,                         /* rx_ring[1].len */
    0x00, 0x00, 0x02, 0x03,             /* rx_ring[2].addr */
    0x00, 0x03,                         /* rx_ring[2].len */
    0x00, 0x00, 0x03, 0x03,             /* rx_ring[3].addr */
    0x00, 0x04,                         /* rx_ring[3].len */
    0x02,                               /* ntx, the count of tx_ring */
    0x00, 0x00, 0x00, 0x03,             /* tx_ring[0].addr (VMS_STRUCT_VARRAY, ntx of 3) */
    0x00, 0x0a,                         /* tx_ring[0].len */
    0x00, 0x00, 0x10, 0x03,             /* tx_ring[1].addr; tx_ring[2] is not sent */
    0x00, 0x0b,                         /* tx_ring[1].len */
    0xde, 0xad, 0x00, 0x03,             /* shadow->addr (VMS_STRUCT_POINTER) */
    0xbe, 0xef,                         /* shadow->len */
};

/* Which field each byte of a wire array belongs to: the path a load error
 * names when the stream ends inside it. */
typedef struct Span {
    const char *path;
    size_t len;
} Span;

static const Span nic_spans[] = {
    {"mac", 6},           {"cur.addr", 4},        {"cur.len", 2},
    {"rx_ring[0].addr", 4}, {"rx_ring[0].len", 2}, {"rx_ring[1].addr", 4},
    {"rx_ring[1].len", 2}, {"rx_ring[2].addr", 4}, {"rx_ring[2].len", 2},
    {"rx_ring[3].addr", 4}, {"rx_ring[3].len", 2}, {"ntx", 1},
    {"tx_ring[0].addr", 4}, {"tx_ring[0].len", 2}, {"tx_ring[1].addr", 4},
    {"tx_ring[1].len", 2}, {"shadow.addr", 4},     {"shadow.len", 2},
};

/* Every cut of `wire` fails with -EIO naming exactly the field the cut falls
 * in and the cut's offset, and leaves the object (`size` bytes at obj, plus
 * `extra` bytes at `extra_p`, e.g. a pointed-to struct) as it was. */
static void assert_every_cut_names_its_field(const VmsDescription *d, const uint8_t *wire,
                                             size_t len, const Span *spans, size_t nspans,
                                             void *obj, size_t size, void *extra_p, size_t extra)
{
    size_t total = 0;
    for (size_t i = 0; i < nspans; i++)
        total += spans[i].len;
    assert_int_equal(total, len);
    uint8_t *before = malloc(size), *before_x = malloc(extra ? extra : 1);
    memcpy(before, obj, size);
    if (extra)
        memcpy(before_x, extra_p, extra);
    size_t span = 0, span_start = 0;
    for (size_t cut = 0; cut < len; cut++) {
        while (cut >= span_start + spans[span].len)
            span_start += spans[span++].len;
        char want[256];
        snprintf(want, sizeof(want), "%s: field %s: truncated: stream ended at offset %zu",
                 d->name, spans[span].path, cut);
        MigErr *err = NULL;
        int ret = load_bytes(d, obj, d->version_id, wire, cut, &err);
        if (ret != -EIO || !err || strcmp(err->msg, want) != 0)
            fail_msg("cut %zu: got %d '%s', want -EIO '%s'", cut, ret, err ? err->msg : "",
                     want);
        assert_memory_equal(obj, before, size);
        if (extra)
            assert_memory_equal(extra_p, before_x, extra);
        mig_err_free(err);
    }
    free(before);
    free(before_x);
}

static void test_vmstate_wire_bytes_structs_arrays_pointer(void **state)
{
    (void)state;
    Desc sh_src;
    Nic src;
    nic_fill(&src, &sh_src, 3);
    Bytes b = save_bytes(&nic_vmsd, &src);
    assert_int_equal(b.len, sizeof(nic_wire));
    assert_memory_equal(b.data, nic_wire, sizeof(nic_wire));
    free(b.data);

    /* The expected bytes load back into a fresh object. */
    Desc sh_dst = {0, 0};
    Nic dst;
    memset(&dst, 0, sizeof(dst));
    dst.shadow = &sh_dst;
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&nic_vmsd, &dst, 1, nic_wire, sizeof(nic_wire), &err), 0);
    assert_null(err);
    assert_int_equal(dst.rx_ring[3].addr, 0x303);
    assert_int_equal(dst.tx_ring[1].len, 0x0b);
    assert_int_equal(sh_dst.addr, 0xdead0003);

    /* Truncated anywhere: the error names the struct member it hit. */
    Desc sh_t;
    Nic t;
    nic_fill(&t, &sh_t, 9);
    memset(&sh_t, 0, sizeof(sh_t)); /* padding too: the struct is compared whole */
    sh_t.addr = 0x1111;
    sh_t.len = 0x2222;
    assert_every_cut_names_its_field(&nic_vmsd, nic_wire, sizeof(nic_wire), nic_spans,
                                     MIG_ARRAY_SIZE(nic_spans), &t, sizeof(t), &sh_t,
                                     sizeof(sh_t));
}

/* ---- arrays counted by a 16-bit and a 32-bit field ---- */

typedef struct Counted {
    uint16_t n16;
    uint16_t a16[3];
    uint32_t n32;
    uint32_t w32[4];
    Desc d16[2]; /* counted by n16 too */
} Counted;

static const VmsField counted_fields[] = {
    VMS_U16(n16, Counted),
    VMS_VARRAY(a16, Counted, VMS_TYPE_U16, n16),
    VMS_U32(n32, Counted),
    VMS_VARRAY(w32, Counted, VMS_TYPE_U32, n32),
    VMS_STRUCT_VARRAY(d16, Counted, ring_desc_vmsd, Desc, n16),
    VMS_END,
};
static const VmsDescription counted_vmsd = {
    .name = "counted", .version_id = 1, .minimum_version_id = 1, .fields = counted_fields};

static const uint8_t counted_wire[] = {
    0x00, 0x02,             /* n16 = 2, big-endian like any u16 */
    0x0a, 0x0b,             /* a16[0] (VMS_COUNT_VAR16: n16 of 3) */
    0x0c, 0x0d,             /* a16[1]; a16[2] is not sent */
    0x00, 0x00, 0x00, 0x03, /* n32 = 3 */
    0x01, 0x02, 0x03, 0x04, /* w32[0] (VMS_COUNT_VAR32: n32 of 4) */
    0x05, 0x06, 0x07, 0x08, /* w32[1] */
    0x09, 0x0a, 0x0b, 0x0c, /* w32[2]; w32[3] is not sent */
    0x00, 0x00, 0x00, 0x64, /* d16[0].addr (struct var array counted by n16) */
    0x00, 0x01,             /* d16[0].len */
    0x00, 0x00, 0x00, 0xc8, /* d16[1].addr */
    0x00, 0x02,             /* d16[1].len */
};

static const Span counted_spans[] = {
    {"n16", 2},         {"a16[0]", 2},     {"a16[1]", 2},        {"n32", 4},
    {"w32[0]", 4},      {"w32[1]", 4},     {"w32[2]", 4},        {"d16[0].addr", 4},
    {"d16[0].len", 2},  {"d16[1].addr", 4}, {"d16[1].len", 2},
};

static void test_vmstate_wire_bytes_var16_var32_counts(void **state)
{
    (void)state;
    /* The macro picks the count kind from the count member's width. */
    assert_int_equal(counted_fields[1].count, VMS_COUNT_VAR16);
    assert_int_equal(counted_fields[3].count, VMS_COUNT_VAR32);
    assert_int_equal(counted_fields[4].count, VMS_COUNT_VAR16);

    Counted c = {.n16 = 2, .a16 = {0x0a0b, 0x0c0d, 0xeeee}, .n32 = 3,
                 .w32 = {0x01020304, 0x05060708, 0x090a0b0c, 0xeeeeeeee},
                 .d16 = {{100, 1}, {200, 2}}};
    Bytes b = save_bytes(&counted_vmsd, &c);
    assert_int_equal(b.len, sizeof(counted_wire));
    assert_memory_equal(b.data, counted_wire, sizeof(counted_wire));
    free(b.data);

    Counted back;
    memset(&back, 0x77, sizeof(back));
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&counted_vmsd, &back, 1, counted_wire, sizeof(counted_wire), &err),
                     0);
    assert_int_equal(back.n16, 2);
    assert_int_equal(back.a16[1], 0x0c0d);
    assert_int_equal(back.a16[2], 0x7777); /* beyond the count: untouched */
    assert_int_equal(back.n32, 3);
    assert_int_equal(back.w32[2], 0x090a0b0c);
    assert_int_equal(back.w32[3], 0x77777777);
    assert_int_equal(back.d16[1].addr, 200);

    /* Counts above capacity, in both widths, are bad input named by field;
     * 0x0100 would be 1 if the u16 were read with the wrong byte order. */
    uint8_t wire[sizeof(counted_wire)];
    Counted before;
    memcpy(&before, &back, sizeof(back));
    memcpy(wire, counted_wire, sizeof(wire));
    wire[0] = 0x01, wire[1] = 0x00;
    assert_int_equal(load_bytes(&counted_vmsd, &back, 1, wire, sizeof(wire), &err), -EPROTO);
    assert_string_equal(err->msg,
                        "counted: field a16: count 256 exceeds capacity 3 (stream offset 2)");
    assert_memory_equal(&back, &before, sizeof(back));
    mig_err_free(err), err = NULL;
    memcpy(wire, counted_wire, sizeof(wire));
    wire[6] = wire[7] = wire[8] = wire[9] = 0xff;
    assert_int_equal(load_bytes(&counted_vmsd, &back, 1, wire, sizeof(wire), &err), -EPROTO);
    assert_string_equal(err->msg, "counted: field w32: count 4294967295 exceeds capacity 4 "
                                  "(stream offset 10)");
    assert_memory_equal(&back, &before, sizeof(back));
    mig_err_free(err), err = NULL;

    assert_every_cut_names_its_field(&counted_vmsd, counted_wire, sizeof(counted_wire),
                                     counted_spans, MIG_ARRAY_SIZE(counted_spans), &back,
                                     sizeof(back), NULL, 0);
}

/* Every enum of the module has a name for each value and none beyond. */
static void test_vmstate_enum_name_tables(void **state)
{
    (void)state;
    const char *seen[VMS_TYPE__COUNT + VMS_COUNT__COUNT];
    size_t n = 0;
    for (int t = 0; t < VMS_TYPE__COUNT; t++) {
        const char *name = vmstate_type_name((VmsType)t);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        seen[n++] = name;
    }
    assert_string_equal(vmstate_type_name(VMS_TYPE__COUNT), "unknown");
    for (int c = 0; c < VMS_COUNT__COUNT; c++) {
        const char *name = vmstate_count_name((VmsCount)c);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        seen[n++] = name;
    }
    assert_string_equal(vmstate_count_name(VMS_COUNT__COUNT), "unknown");
    assert_string_equal(vmstate_count_name(VMS_COUNT_VAR16), "var16");
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (!strcmp(seen[i], seen[j]))
                fail_msg("name %s used twice", seen[i]);
    for (int l = 0; l < VMS_COMPAT__COUNT; l++)
        assert_string_not_equal(vmstate_compat_level_name((VmsCompatLevel)l), "unknown");

    /* A declaration with an out-of-range count kind is refused by name. */
    static const VmsField bad_fields[] = {
        {.name = "x", .offset = 0, .type = VMS_TYPE_U8, .size = 1, .count = VMS_COUNT__COUNT},
        VMS_END,
    };
    static const VmsDescription bad = {.name = "bad", .version_id = 1, .fields = bad_fields};
    uint8_t obj = 0;
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    assert_int_equal(vmstate_save(w, &bad, &obj, &err), -EINVAL);
    assert_string_equal(err->msg, "bad: field x: bad field declaration: count kind 5");
    mig_err_free(err);
    mig_stream_free(w);
}

/* ---- versions ---- */

typedef struct Rtc {
    uint32_t base;
    uint32_t period; /* since version 2 */
    uint8_t legacy;  /* only in streams where legacy_exists() says so */
} Rtc;

static const VmsField rtc_v1_fields[] = {VMS_U32(base, Rtc), VMS_END};
static const VmsDescription rtc_v1 = {
    .name = "fake-rtc", .version_id = 1, .minimum_version_id = 1, .fields = rtc_v1_fields};

static bool legacy_exists(void *obj, int version_id)
{
    (void)obj;
    return version_id < 2;
}

static const VmsField rtc_v2_fields[] = {
    VMS_U32(base, Rtc),
    VMS_U32_V(period, Rtc, 2),
    VMS_SCALAR_TEST(legacy, Rtc, VMS_TYPE_U8, legacy_exists),
    VMS_END,
};
static const VmsDescription rtc_v2 = {
    .name = "fake-rtc", .version_id = 2, .minimum_version_id = 1, .fields = rtc_v2_fields};

static void test_vmstate_version_gates_both_ways(void **state)
{
    (void)state;
    /* New description saves at version 2: period on the wire, legacy not. */
    Rtc r = {.base = 0x01020304, .period = 0x0a0b0c0d, .legacy = 0x77};
    Bytes b2 = save_bytes(&rtc_v2, &r);
    static const uint8_t want2[] = {
        0x01, 0x02, 0x03, 0x04, /* base */
        0x0a, 0x0b, 0x0c, 0x0d, /* period (version_id 2 <= 2) */
    };
    assert_int_equal(b2.len, sizeof(want2));
    assert_memory_equal(b2.data, want2, sizeof(want2));

    /* An old (version 1) stream carries base and legacy; into the new
     * description at version 1: period is gated out and keeps its value. */
    static const uint8_t old1[] = {
        0x00, 0x00, 0x00, 0x2a, /* base */
        0x05,                   /* legacy: field_exists(obj, 1) is true */
    };
    Rtc d = {.base = 1, .period = 99, .legacy = 0};
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&rtc_v2, &d, 1, old1, sizeof(old1), &err), 0);
    assert_int_equal(d.base, 42);
    assert_int_equal(d.period, 99);
    assert_int_equal(d.legacy, 5);

    /* The version 2 stream into the new description. */
    Rtc e = {0};
    assert_int_equal(load_bytes(&rtc_v2, &e, 2, b2.data, b2.len, &err), 0);
    assert_int_equal(e.base, 0x01020304);
    assert_int_equal(e.period, 0x0a0b0c0d);
    assert_int_equal(e.legacy, 0);
    free(b2.data);
}

static void test_vmstate_version_too_new_too_old(void **state)
{
    (void)state;
    static const uint8_t wire[] = {0, 0, 0, 1, 0, 0, 0, 2};
    Rtc r, before;
    memset(&r, 0, sizeof(r)); /* padding too: the object is compared bytewise */
    r.base = 7;
    r.period = 8;
    r.legacy = 9;
    memcpy(&before, &r, sizeof(r));
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&rtc_v1, &r, 2, wire, sizeof(wire), &err), -EINVAL);
    assert_string_equal(err->msg, "fake-rtc: incoming version 2 is too new for local version 1 "
                                  "(stream offset 0)");
    mig_err_free(err);
    err = NULL;
    static const VmsDescription rtc_min2 = {
        .name = "fake-rtc", .version_id = 3, .minimum_version_id = 2, .fields = rtc_v2_fields};
    assert_int_equal(load_bytes(&rtc_min2, &r, 1, wire, sizeof(wire), &err), -ENOTSUP);
    assert_string_equal(err->msg,
                        "fake-rtc: incoming version 1 is too old for local minimum version 2 "
                        "(stream offset 0)");
    assert_memory_equal(&r, &before, sizeof(r));
    mig_err_free(err);
}

/* ---- subsections ---- */

typedef struct Clock {
    uint32_t base;
    uint16_t ack;
    int pre_loads;
    int post_loads;
    int pre_saves;
} Clock;

static bool ack_needed(void *obj)
{
    return ((Clock *)obj)->ack != 0;
}

static const VmsField ack_fields[] = {VMS_U16(ack, Clock), VMS_END};
static const VmsDescription clock_ack = {.name = "fake-clock/ack",
                                         .version_id = 2,
                                         .minimum_version_id = 1,
                                         .fields = ack_fields,
                                         .needed = ack_needed};
static const VmsDescription *const clock_subs[] = {&clock_ack, NULL};

static int clock_pre_load(void *obj)
{
    Clock *c = obj;
    c->pre_loads++;
    c->ack = 0; /* what an absent subsection means */
    return 0;
}

static int clock_post_load(void *obj, int version_id)
{
    Clock *c = obj;
    c->post_loads++;
    return c->base == 0xbad ? -EINVAL : 0;
}

static int clock_pre_save(void *obj)
{
    ((Clock *)obj)->pre_saves++;
    return 0;
}

static const VmsField clock_fields[] = {VMS_U32(base, Clock), VMS_END};
static const VmsDescription clock_vmsd = {.name = "fake-clock",
                                          .version_id = 1,
                                          .minimum_version_id = 1,
                                          .fields = clock_fields,
                                          .subsections = clock_subs,
                                          .pre_save = clock_pre_save,
                                          .pre_load = clock_pre_load,
                                          .post_load = clock_post_load};

/* The same device without the pre_load reset, to show defaults are kept. */
static const VmsDescription clock_noreset = {.name = "fake-clock",
                                             .version_id = 1,
                                             .minimum_version_id = 1,
                                             .fields = clock_fields,
                                             .subsections = clock_subs};

static void test_vmstate_subsection_present(void **state)
{
    (void)state;
    Clock c = {.base = 42, .ack = 7};
    Bytes b = save_bytes(&clock_vmsd, &c);
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x2a, /* base */
        0x05,                   /* subsection marker */
        0x0e, 'f', 'a', 'k', 'e', '-', 'c', 'l', 'o', 'c', 'k', '/', 'a', 'c', 'k', /* name */
        0x00, 0x00, 0x00, 0x02, /* subsection version */
        0x00, 0x07,             /* ack */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    assert_int_equal(c.pre_saves, 1);
    Clock d = {0};
    assert_int_equal(load_bytes(&clock_vmsd, &d, 1, b.data, b.len, NULL), 0);
    assert_int_equal(d.base, 42);
    assert_int_equal(d.ack, 7);
    assert_int_equal(d.pre_loads, 1);
    assert_int_equal(d.post_loads, 1);
    free(b.data);
}

static void test_vmstate_subsection_absent_defaults(void **state)
{
    (void)state;
    Clock c = {.base = 42, .ack = 0};
    Bytes b = save_bytes(&clock_vmsd, &c);
    assert_int_equal(b.len, 4); /* not needed: not sent */
    Clock kept = {.ack = 5};
    assert_int_equal(load_bytes(&clock_noreset, &kept, 1, b.data, b.len, NULL), 0);
    assert_int_equal(kept.base, 42);
    assert_int_equal(kept.ack, 5); /* the destination's default stays */
    Clock reset = {.ack = 5};
    assert_int_equal(load_bytes(&clock_vmsd, &reset, 1, b.data, b.len, NULL), 0);
    assert_int_equal(reset.ack, 0); /* pre_load reset it */
    free(b.data);
}

/* A sender whose description (say, the one its machine type emits) always
 * writes fake-clock/ack: a stream without it is incomplete, and the load
 * fails naming the subsection and the offset, leaving the object as it was;
 * with the subsection it loads.  Without knowing the sender (vmstate_load),
 * the subsection may be absent (it has a needed() in the loader's own). */
static const VmsDescription clock_ack_always = {.name = "fake-clock/ack",
                                                .version_id = 2,
                                                .minimum_version_id = 1,
                                                .fields = ack_fields};
static const VmsDescription *const clock_subs_always[] = {&clock_ack_always, NULL};
static const VmsDescription clock_sender = {.name = "fake-clock",
                                            .version_id = 1,
                                            .minimum_version_id = 1,
                                            .fields = clock_fields,
                                            .subsections = clock_subs_always};

static void test_vmstate_subsection_the_sender_always_writes_is_required(void **state)
{
    (void)state;
    Clock c = {.base = 42, .ack = 0};
    Bytes full = save_bytes(&clock_sender, &c);
    assert_int_equal(full.len, 4 + 1 + 1 + 14 + 4 + 2); /* written although ack is 0 */
    Clock d = {.base = 1, .ack = 9};
    MigStream *r = mig_stream_new_mem_reader(full.data, 4); /* the subsection cut away */
    MigErr *err = NULL;
    assert_int_equal(vmstate_load_sent(r, &clock_vmsd, &clock_sender, &d, 1, &err), -EPROTO);
    assert_non_null(err);
    if (!strstr(err->msg, "subsection fake-clock/ack, which the sender always writes, is "
                          "missing at offset 4"))
        fail_msg("%s", err->msg);
    assert_int_equal(d.base, 1); /* unchanged */
    assert_int_equal(d.ack, 9);
    mig_err_free(err);
    mig_stream_free(r);
    r = mig_stream_new_mem_reader(full.data, full.len);
    assert_int_equal(vmstate_load_sent(r, &clock_vmsd, &clock_sender, &d, 1, NULL), 0);
    assert_int_equal(d.base, 42);
    mig_stream_free(r);
    assert_int_equal(load_bytes(&clock_vmsd, &d, 1, full.data, 4, NULL), 0);
    free(full.data);
}

/* vmstate_load_logged says which top-level subsections arrived (what the
 * destination compares with the source's VMDESCRIPTION): the ack
 * subsection when it was sent, nothing when it was not (needed() false),
 * and the VMDESCRIPTION names it only in the first case. */
static void test_vmstate_load_logged_names_the_subsections_that_came(void **state)
{
    (void)state;
    assert_int_equal(vmstate_subsection_index(&clock_vmsd, "fake-clock/ack"), 0);
    assert_int_equal(vmstate_subsection_index(&clock_vmsd, "fake-clock/other"), -1);
    Clock with = {.base = 42, .ack = 7}, without = {.base = 42, .ack = 0};
    Bytes a = save_bytes(&clock_vmsd, &with);
    Bytes b = save_bytes(&clock_vmsd, &without);
    json_t *da = vmstate_describe_vmdesc(&clock_vmsd, &with, NULL, 0);
    json_t *db = vmstate_describe_vmdesc(&clock_vmsd, &without, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(da, "subsections")), 1);
    assert_null(json_object_get(db, "subsections"));
    Clock d = {0};
    uint64_t got = 99;
    MigStream *r = mig_stream_new_mem_reader(a.data, a.len);
    assert_int_equal(vmstate_load_logged(r, &clock_vmsd, NULL, &d, 1, &got, NULL), 0);
    assert_int_equal(got, 1);
    mig_stream_free(r);
    got = 99;
    r = mig_stream_new_mem_reader(b.data, b.len);
    assert_int_equal(vmstate_load_logged(r, &clock_vmsd, NULL, &d, 1, &got, NULL), 0);
    assert_int_equal(got, 0);
    mig_stream_free(r);
    /* the ack subsection cut away: the load still succeeds (it has a
     * needed()), and says it did not get it */
    got = 99;
    r = mig_stream_new_mem_reader(a.data, 4);
    assert_int_equal(vmstate_load_logged(r, &clock_vmsd, NULL, &d, 1, &got, NULL), 0);
    assert_int_equal(got, 0);
    mig_stream_free(r);
    json_decref(da);
    json_decref(db);
    free(a.data);
    free(b.data);
}

static void test_vmstate_subsection_unknown_and_too_new(void **state)
{
    (void)state;
    static const uint8_t unknown[] = {
        0x00, 0x00, 0x00, 0x2a,                                         /* base */
        0x05, 0x0e, 'f', 'a', 'k', 'e', '-', 'c', 'l', 'o', 'c', 'k', '/', 'x', 'y', 'z', /* */
        0x00, 0x00, 0x00, 0x01, 0x00,
    };
    Clock c, before;
    memset(&c, 0, sizeof(c));
    c.base = 1;
    c.ack = 2;
    memcpy(&before, &c, sizeof(c));
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&clock_noreset, &c, 1, unknown, sizeof(unknown), &err), -ENOENT);
    assert_string_equal(err->msg, "fake-clock: unknown subsection fake-clock/xyz at offset 4");
    assert_memory_equal(&c, &before, sizeof(c));
    mig_err_free(err);

    static const uint8_t too_new[] = {
        0x00, 0x00, 0x00, 0x2a,
        0x05, 0x0e, 'f', 'a', 'k', 'e', '-', 'c', 'l', 'o', 'c', 'k', '/', 'a', 'c', 'k',
        0x00, 0x00, 0x00, 0x03, /* version 3 > local 2 */
        0x00, 0x07,
    };
    err = NULL;
    assert_int_equal(load_bytes(&clock_noreset, &c, 1, too_new, sizeof(too_new), &err), -EINVAL);
    assert_string_equal(err->msg, "fake-clock: subsection fake-clock/ack: incoming version 3 is "
                                  "too new for local version 2 (stream offset 24)");
    assert_memory_equal(&c, &before, sizeof(c));
    mig_err_free(err);

    /* A failing post_load rolls every described field back. */
    static const uint8_t bad[] = {0x00, 0x00, 0x0b, 0xad};
    Clock d = {.base = 5, .ack = 6};
    err = NULL;
    assert_int_equal(load_bytes(&clock_vmsd, &d, 1, bad, sizeof(bad), &err), -EINVAL);
    assert_string_equal(err->msg,
                        "fake-clock: post_load hook of fake-clock failed (stream offset 4)");
    assert_int_equal(d.base, 5);
    assert_int_equal(d.ack, 6); /* pre_load had reset it; restored */
    mig_err_free(err);
}

/* ---- the subsection ambiguity (docs/protocol-qemu-stream.md section 6) ---- */

/* QEMU 7.2's loop after a description's fields, re-stated for comparison:
 * 1 = it takes the bytes at p for a subsection (name in `out`), 0 = it
 * stops, -ENOENT = it fails the migration. */
static int qemu_rule(const uint8_t *p, size_t avail, const char *vmsd_name,
                     const char *const *declared, char out[256])
{
    if (avail < 2 || p[0] != 0x05)
        return 0;
    size_t len = p[1];
    if (len < strlen(vmsd_name) + 1 || avail < 2 + len)
        return 0;
    memcpy(out, p + 2, len);
    out[len] = '\0';
    if (strncmp(out, vmsd_name, strlen(vmsd_name)) != 0)
        return 0;
    for (size_t i = 0; declared && declared[i]; i++)
        if (strcmp(declared[i], out) == 0)
            return 1;
    return -ENOENT;
}

typedef struct Child {
    uint8_t x;
    uint8_t extra;
} Child;

static bool extra_needed(void *obj)
{
    return ((Child *)obj)->extra != 0;
}

static const VmsField ch_extra_fields[] = {VMS_U8(extra, Child), VMS_END};
static const VmsDescription ch_extra = {.name = "ch/extra",
                                        .version_id = 1,
                                        .minimum_version_id = 1,
                                        .fields = ch_extra_fields,
                                        .needed = extra_needed};
static const VmsDescription *const ch_subs[] = {&ch_extra, NULL};
static const char *const ch_sub_names[] = {"ch/extra", NULL};
static const VmsField ch_fields[] = {VMS_U8(x, Child), VMS_END};
static const VmsDescription ch_vmsd = {.name = "ch",
                                       .version_id = 1,
                                       .minimum_version_id = 1,
                                       .fields = ch_fields,
                                       .subsections = ch_subs};

typedef struct Amb {
    Child ch;
    uint32_t magic;
    uint8_t tail;
} Amb;

static const VmsField amb_fields[] = {
    VMS_STRUCT(ch, Amb, ch_vmsd, Child),
    VMS_U32(magic, Amb),
    VMS_U8(tail, Amb),
    VMS_END,
};
static const VmsDescription amb_vmsd = {
    .name = "amb", .version_id = 1, .minimum_version_id = 1, .fields = amb_fields};

static void test_vmstate_ambiguity_field_after_struct_fools_qemu(void **state)
{
    (void)state;
    /* magic's first byte is the marker, the next is a length that passes
     * QEMU's test (3 >= strlen("ch") + 1) and the name starts with "ch". */
    Amb src = {.ch = {.x = 7}, .magic = 0x05036368, .tail = '!'};
    Bytes b = save_bytes(&amb_vmsd, &src);
    static const uint8_t want[] = {
        0x07,                   /* ch.x; ch/extra not needed */
        0x05, 0x03, 'c', 'h',   /* magic 0x05036368 */
        '!',                    /* tail */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));

    /* QEMU's rule, after the nested "ch" (offset 1), takes "ch!" for a
     * subsection and fails the migration with ENOENT. */
    char name[256];
    assert_int_equal(qemu_rule(b.data + 1, b.len - 1, "ch", ch_sub_names, name), -ENOENT);
    assert_string_equal(name, "ch!");

    /* Ours loads it. */
    Amb dst = {0};
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&amb_vmsd, &dst, 1, b.data, b.len, &err), 0);
    assert_null(err);
    assert_int_equal(dst.ch.x, 7);
    assert_int_equal(dst.magic, 0x05036368);
    assert_int_equal(dst.tail, '!');
    free(b.data);

    /* With the child's subsection genuinely sent, both rules take it, and
     * the marker-like field after it still loads. */
    src.ch.extra = 9;
    b = save_bytes(&amb_vmsd, &src);
    static const uint8_t want2[] = {
        0x07,                                               /* ch.x */
        0x05, 0x08, 'c', 'h', '/', 'e', 'x', 't', 'r', 'a', /* subsection ch/extra */
        0x00, 0x00, 0x00, 0x01,                             /* its version */
        0x09,                                               /* ch.extra */
        0x05, 0x03, 'c', 'h',                               /* magic */
        '!',                                                /* tail */
    };
    assert_int_equal(b.len, sizeof(want2));
    assert_memory_equal(b.data, want2, sizeof(want2));
    assert_int_equal(qemu_rule(b.data + 1, b.len - 1, "ch", ch_sub_names, name), 1);
    /* after the subsection QEMU looks again at magic and fails */
    assert_int_equal(qemu_rule(b.data + 16, b.len - 16, "ch", ch_sub_names, name), -ENOENT);
    memset(&dst, 0, sizeof(dst));
    assert_int_equal(load_bytes(&amb_vmsd, &dst, 1, b.data, b.len, &err), 0);
    assert_int_equal(dst.ch.extra, 9);
    assert_int_equal(dst.magic, 0x05036368);
    assert_int_equal(dst.tail, '!');
    free(b.data);
}

/* The child's name is a prefix of the parent's: the parent's own subsection
 * passes QEMU's prefix test for the child. */
typedef struct Outer {
    Child dev;
    uint8_t y;
} Outer;

static const VmsDescription dev_vmsd = {.name = "dev",
                                        .version_id = 1,
                                        .minimum_version_id = 1,
                                        .fields = ch_fields,
                                        .subsections = ch_subs};
static const VmsField outer_x_fields[] = {VMS_U8(y, Outer), VMS_END};
static const VmsDescription outer_x = {
    .name = "dev-nic/x", .version_id = 1, .minimum_version_id = 1, .fields = outer_x_fields};
static const VmsDescription *const outer_subs[] = {&outer_x, NULL};
static const VmsField outer_fields[] = {VMS_STRUCT(dev, Outer, dev_vmsd, Child), VMS_END};
static const VmsDescription outer_vmsd = {.name = "dev-nic",
                                          .version_id = 1,
                                          .minimum_version_id = 1,
                                          .fields = outer_fields,
                                          .subsections = outer_subs};

static void test_vmstate_ambiguity_child_name_prefix_of_parent(void **state)
{
    (void)state;
    Outer src = {.dev = {.x = 3}, .y = 0x44};
    Bytes b = save_bytes(&outer_vmsd, &src);
    static const uint8_t want[] = {
        0x03,                                                /* dev.x */
        0x05, 0x09, 'd', 'e', 'v', '-', 'n', 'i', 'c', '/', 'x', /* the parent's subsection */
        0x00, 0x00, 0x00, 0x01,                              /* version */
        0x44,                                                /* y */
    };
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    char name[256];
    static const char *const dev_sub_names[] = {"ch/extra", NULL};
    assert_int_equal(qemu_rule(b.data + 1, b.len - 1, "dev", dev_sub_names, name), -ENOENT);
    assert_string_equal(name, "dev-nic/x");
    Outer dst = {0};
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&outer_vmsd, &dst, 1, b.data, b.len, &err), 0);
    assert_int_equal(dst.dev.x, 3);
    assert_int_equal(dst.y, 0x44);
    free(b.data);
}

/* The one undecidable case: the bytes after the struct spell exactly one of
 * its unsent subsections.  QEMU would silently misparse it; we refuse to
 * write it. */
typedef struct Amb3 {
    Child ch;
    uint8_t blob[16];
} Amb3;

static const VmsField amb3_fields[] = {
    VMS_STRUCT(ch, Amb3, ch_vmsd, Child),
    VMS_BUFFER(blob, Amb3),
    VMS_END,
};
static const VmsDescription amb3_vmsd = {
    .name = "amb3", .version_id = 1, .minimum_version_id = 1, .fields = amb3_fields};

static void test_vmstate_ambiguity_undecidable_refused_on_save(void **state)
{
    (void)state;
    Amb3 src = {.ch = {.x = 1},
                .blob = {0x05, 0x08, 'c', 'h', '/', 'e', 'x', 't', 'r', 'a', 0, 0, 0, 1, 0x33,
                         0x44}};
    char name[256];
    assert_int_equal(qemu_rule(src.blob, sizeof(src.blob), "ch", ch_sub_names, name), 1);
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    assert_int_equal(vmstate_save(w, &amb3_vmsd, &src, &err), -EPROTO);
    assert_string_equal(err->msg, "amb3: field ch: the bytes after it at offset 1 spell its "
                                  "subsection ch/extra; refusing an ambiguous stream");
    size_t len = 99;
    mig_stream_mem_data(w, &len);
    assert_int_equal(len, 0);
    mig_err_free(err);
    mig_stream_free(w);
    /* Once the subsection is really sent, the same blob is unambiguous. */
    src.ch.extra = 2;
    Bytes b = save_bytes(&amb3_vmsd, &src);
    Amb3 dst = {0};
    assert_int_equal(load_bytes(&amb3_vmsd, &dst, 1, b.data, b.len, NULL), 0);
    assert_memory_equal(&dst, &src, sizeof(src));
    free(b.data);
}

/* ---- every truncation of a multi-device stream ---- */

typedef struct Devices {
    Clock clock; /* with its subsection */
    Nic nic;     /* nested, arrays, pointer */
    Desc nic_shadow;
    AllTypes all;
} Devices;

static void devices_fill(Devices *d, uint32_t seed)
{
    memset(d, 0, sizeof(*d));
    d->clock.base = seed;
    d->clock.ack = (uint16_t)(seed + 1);
    nic_fill(&d->nic, &d->nic_shadow, seed);
    d->all = all_value;
    d->all.u32 = seed;
}

static void test_vmstate_every_truncation_fails_cleanly(void **state)
{
    (void)state;
    Devices src;
    devices_fill(&src, 0x11);
    MigStream *w = mig_stream_new_mem_writer();
    assert_int_equal(vmstate_save(w, &clock_noreset, &src.clock, NULL), 0);
    assert_int_equal(vmstate_save(w, &nic_vmsd, &src.nic, NULL), 0);
    assert_int_equal(vmstate_save(w, &all_desc, &src.all, NULL), 0);
    size_t total = 0;
    const uint8_t *data = mig_stream_mem_data(w, &total);

    for (size_t cut = 0; cut <= total; cut++) {
        Devices dst, before;
        devices_fill(&dst, 0x99);
        memcpy(&before, &dst, sizeof(dst));
        MigStream *r = mig_stream_new_mem_reader(data, cut);
        MigErr *err = NULL;
        const VmsDescription *descs[] = {&clock_noreset, &nic_vmsd, &all_desc};
        void *objs[] = {&dst.clock, &dst.nic, &dst.all};
        int failed = -1;
        for (int i = 0; i < 3 && failed < 0; i++)
            if (vmstate_load(r, descs[i], objs[i], 1, &err) < 0)
                failed = i;
        mig_stream_free(r);
        if (cut == total) {
            assert_int_equal(failed, -1);
            assert_memory_equal(&dst.all, &src.all, sizeof(src.all));
            continue;
        }
        if (failed < 0)
            fail_msg("truncation at %zu of %zu loaded without error", cut, total);
        assert_non_null(err);
        assert_int_equal(err->code, -EIO);
        if ((!strstr(err->msg, ": field ") && !strstr(err->msg, ": subsection ")) ||
            !strstr(err->msg, "stream ended at offset"))
            fail_msg("cut %zu: error names no field and offset: %s", cut, err->msg);
        /* the failed device is exactly as before */
        if (failed == 0)
            assert_memory_equal(&dst.clock, &before.clock, sizeof(Clock));
        if (failed == 1) {
            assert_memory_equal(&dst.nic, &before.nic, sizeof(Nic));
            assert_memory_equal(&dst.nic_shadow, &before.nic_shadow, sizeof(Desc));
        }
        if (failed == 2)
            assert_memory_equal(&dst.all, &before.all, sizeof(AllTypes));
        mig_err_free(err);
    }
    mig_stream_free(w);
}

static void test_vmstate_error_names_device_field_offset(void **state)
{
    (void)state;
    Desc shadow;
    Nic src;
    nic_fill(&src, &shadow, 5);
    Bytes b = save_bytes(&nic_vmsd, &src);
    /* cut inside rx_ring[3].len: 6 mac + 6 cur + 3*6 + 4 addr + 1 byte */
    size_t cut = 6 + 6 + 18 + 4 + 1;
    Nic dst;
    Desc dshadow = {1, 2};
    memset(&dst, 0, sizeof(dst));
    dst.shadow = &dshadow;
    MigErr *err = NULL;
    assert_int_equal(load_bytes(&nic_vmsd, &dst, 1, b.data, cut, &err), -EIO);
    assert_string_equal(err->msg, "fake-nic: field rx_ring[3].len: truncated: stream ended at offset 35");
    mig_err_free(err);
    free(b.data);
}

/* ---- fault points ---- */

static void test_vmstate_fault_points_change_nothing(void **state)
{
    (void)state;
#ifdef FIU_ENABLE
    fiu_init(0);
    Clock c, before;
    memset(&c, 0, sizeof(c));
    c.base = 42;
    c.ack = 7;
    memcpy(&before, &c, sizeof(c));
    MigStream *w = mig_stream_new_mem_writer();
    MigErr *err = NULL;
    fiu_enable("mig/vmstate/save", 1, NULL, 0);
    assert_int_equal(vmstate_save(w, &clock_vmsd, &c, &err), -EIO);
    fiu_disable("mig/vmstate/save");
    assert_string_equal(err->msg, "fake-clock: injected fault mig/vmstate/save");
    mig_err_free(err);
    size_t len = 99;
    mig_stream_mem_data(w, &len);
    assert_int_equal(len, 0);
    assert_memory_equal(&c, &before, sizeof(c)); /* pre_save did not run */
    mig_stream_free(w);

    Bytes b = save_bytes(&clock_vmsd, &c);
    Clock d, dbefore;
    memset(&d, 0, sizeof(d));
    d.base = 1;
    d.ack = 2;
    memcpy(&dbefore, &d, sizeof(d));
    err = NULL;
    fiu_enable("mig/vmstate/load", 1, NULL, 0);
    assert_int_equal(load_bytes(&clock_vmsd, &d, 1, b.data, b.len, &err), -EINVAL);
    fiu_disable("mig/vmstate/load");
    assert_memory_equal(&d, &dbefore, sizeof(d));
    mig_err_free(err);
    free(b.data);
#else
    skip(); /* built with FIU=0: the fault points compile to nothing */
#endif
}

/* ---- JSON describers ---- */

static void assert_json_equal_text(json_t *got, const char *want_text)
{
    json_error_t jerr;
    json_t *want = json_loads(want_text, 0, &jerr);
    if (!want)
        fail_msg("bad expected JSON: %s", jerr.text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT);
        fail_msg("JSON differs:\n got  %s\n want %s", g, want_text);
    }
    json_decref(want);
}

static void test_vmstate_describe_dump_shape(void **state)
{
    (void)state;
    json_t *j = vmstate_describe_dump(&clock_vmsd);
    assert_json_equal_text(
        j, "{\"Name\": \"fake-clock\", \"version_id\": 1, \"minimum_version_id\": 1,"
           " \"Description\": {\"name\": \"fake-clock\", \"version_id\": 1,"
           "  \"minimum_version_id\": 1,"
           "  \"Fields\": [{\"field\": \"base\", \"version_id\": 0, \"field_exists\": false,"
           "               \"size\": 4}],"
           "  \"Subsections\": [{\"name\": \"fake-clock/ack\", \"version_id\": 2,"
           "    \"minimum_version_id\": 1, \"Fields\": [{\"field\": \"ack\", \"version_id\": 0,"
           "    \"field_exists\": false, \"size\": 2}]}]}}");
    json_decref(j);
    j = vmstate_describe_dump_desc(&rtc_v2);
    assert_json_equal_text(
        j, "{\"name\": \"fake-rtc\", \"version_id\": 2, \"minimum_version_id\": 1, \"Fields\": ["
           " {\"field\": \"base\", \"version_id\": 0, \"field_exists\": false, \"size\": 4},"
           " {\"field\": \"period\", \"version_id\": 2, \"field_exists\": false, \"size\": 4},"
           " {\"field\": \"legacy\", \"version_id\": 0, \"field_exists\": true, \"size\": 1}]}");
    json_decref(j);
    j = vmstate_describe_dump_desc(&nic_vmsd);
    json_t *cur = json_array_get(json_object_get(j, "Fields"), 1);
    assert_json_equal_text(
        cur, "{\"field\": \"cur\", \"version_id\": 0, \"field_exists\": false, \"size\": 8,"
             " \"Description\": {\"name\": \"ring-desc\", \"version_id\": 1,"
             "  \"minimum_version_id\": 1, \"Fields\": ["
             "  {\"field\": \"addr\", \"version_id\": 0, \"field_exists\": false, \"size\": 4},"
             "  {\"field\": \"len\", \"version_id\": 0, \"field_exists\": false, \"size\": 2}]}}");
    json_decref(j);
}

static void test_vmstate_describe_vmdesc_shape(void **state)
{
    (void)state;
    Clock c = {.base = 1, .ack = 3};
    json_t *j = vmstate_describe_vmdesc(&clock_vmsd, &c, "fake-clock", 0);
    assert_json_equal_text(
        j, "{\"name\": \"fake-clock\", \"instance_id\": 0, \"vmsd_name\": \"fake-clock\","
           " \"version\": 1, \"fields\": [{\"name\": \"base\", \"type\": \"uint32\", \"size\": 4}],"
           " \"subsections\": [{\"vmsd_name\": \"fake-clock/ack\", \"version\": 2,"
           "   \"fields\": [{\"name\": \"ack\", \"type\": \"uint16\", \"size\": 2}]}]}");
    assert_int_equal(c.pre_saves, 0); /* describing runs no hook */
    json_decref(j);

    Desc shadow;
    Nic n;
    nic_fill(&n, &shadow, 1);
    j = vmstate_describe_vmdesc(&nic_vmsd, &n, "0000:00:03.0/fake-nic", 2);
    assert_json_equal_text(
        j,
        "{\"name\": \"0000:00:03.0/fake-nic\", \"instance_id\": 2, \"vmsd_name\": \"fake-nic\","
        " \"version\": 1, \"fields\": ["
        " {\"name\": \"mac\", \"type\": \"buffer\", \"size\": 6},"
        " {\"name\": \"cur\", \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"ring-desc\","
        "   \"version\": 1, \"fields\": [{\"name\": \"addr\", \"type\": \"uint32\", \"size\": 4},"
        "   {\"name\": \"len\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 6},"
        " {\"name\": \"rx_ring\", \"array_len\": 4, \"type\": \"struct\", \"struct\": {"
        "   \"vmsd_name\": \"ring-desc\", \"version\": 1, \"fields\": ["
        "   {\"name\": \"addr\", \"type\": \"uint32\", \"size\": 4},"
        "   {\"name\": \"len\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 6},"
        " {\"name\": \"ntx\", \"type\": \"uint8\", \"size\": 1},"
        " {\"name\": \"tx_ring\", \"array_len\": 2, \"type\": \"struct\", \"struct\": {"
        "   \"vmsd_name\": \"ring-desc\", \"version\": 1, \"fields\": ["
        "   {\"name\": \"addr\", \"type\": \"uint32\", \"size\": 4},"
        "   {\"name\": \"len\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 6},"
        " {\"name\": \"shadow\", \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"ring-desc\","
        "   \"version\": 1, \"fields\": [{\"name\": \"addr\", \"type\": \"uint32\", \"size\": 4},"
        "   {\"name\": \"len\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 6}]}");
    json_decref(j);

    AllTypes a = all_value;
    j = vmstate_describe_vmdesc(&all_desc, &a, NULL, 0);
    json_t *fields = json_object_get(j, "fields");
    assert_json_equal_text(json_array_get(fields, 10),
                           "{\"name\": \"unused\", \"type\": \"unused_buffer\", \"size\": 2}");
    assert_json_equal_text(json_array_get(fields, 11),
                           "{\"name\": \"timer\", \"type\": \"timer\", \"size\": 8}");
    assert_json_equal_text(json_array_get(fields, 14),
                           "{\"name\": \"list\", \"array_len\": 2, \"type\": \"uint32\", "
                           "\"size\": 4}");
    json_decref(j);
}

/* ---- the compatibility checker ---- */

static const char compat_base[] =
    "{\"vmschkmachine\": {\"Name\": \"mc-1.0\"},"
    " \"fake-nic\": {\"Name\": \"fake-nic\", \"version_id\": 2, \"minimum_version_id\": 1,"
    "  \"Description\": {\"name\": \"fake-nic\", \"version_id\": 2, \"minimum_version_id\": 1,"
    "   \"Fields\": ["
    "    {\"field\": \"ctrl\", \"version_id\": 0, \"field_exists\": false, \"size\": 4},"
    "    {\"field\": \"unused\", \"version_id\": 0, \"field_exists\": false, \"size\": 4},"
    "    {\"field\": \"ring\", \"version_id\": 0, \"field_exists\": false, \"size\": 8,"
    "     \"Description\": {\"name\": \"ring\", \"version_id\": 1, \"minimum_version_id\": 1,"
    "      \"Fields\": ["
    "       {\"field\": \"head\", \"version_id\": 0, \"field_exists\": false, \"size\": 4},"
    "       {\"field\": \"tail\", \"version_id\": 0, \"field_exists\": false, \"size\": 4}]}},"
    "    {\"field\": \"mac\", \"version_id\": 2, \"field_exists\": false, \"size\": 6}],"
    "   \"Subsections\": [{\"name\": \"fake-nic/mit\", \"version_id\": 1,"
    "    \"minimum_version_id\": 1, \"Fields\": ["
    "     {\"field\": \"timer\", \"version_id\": 0, \"field_exists\": false, \"size\": 8}]}]}},"
    " \"fake-serial\": {\"Name\": \"fake-serial\", \"version_id\": 1, \"minimum_version_id\": 1,"
    "  \"Description\": {\"name\": \"fake-serial\", \"version_id\": 1, \"minimum_version_id\": 1,"
    "   \"Fields\": [{\"field\": \"lsr\", \"version_id\": 0, \"field_exists\": false,"
    "    \"size\": 1}]}}}";

typedef struct Findings {
    int n;
    int level[32];
    int rule[32];
    char where[32][128];
    char line[32][512];
} Findings;

static void collect(const VmsCompatFinding *f, void *opaque)
{
    Findings *fs = opaque;
    if (fs->n >= 32)
        return;
    fs->level[fs->n] = f->level;
    fs->rule[fs->n] = f->rule;
    snprintf(fs->where[fs->n], sizeof(fs->where[0]), "%s:%s", f->section, f->where);
    char *line = vmstate_compat_format(f);
    snprintf(fs->line[fs->n], sizeof(fs->line[0]), "%s", line);
    free(line);
    fs->n++;
}

static json_t *nic_desc(json_t *doc)
{
    return json_object_get(json_object_get(doc, "fake-nic"), "Description");
}

static json_t *nic_field(json_t *doc, size_t i)
{
    return json_array_get(json_object_get(nic_desc(doc), "Fields"), i);
}

/* Run the checker on base vs mutated; returns the error count. */
static int run_compat(void (*mutate)(json_t *new_doc), Findings *fs)
{
    json_t *old_doc = json_loads(compat_base, 0, NULL);
    json_t *new_doc = json_deep_copy(old_doc);
    assert_non_null(old_doc);
    if (mutate)
        mutate(new_doc);
    memset(fs, 0, sizeof(*fs));
    MigErr *err = NULL;
    int ret = vmstate_check_compat(old_doc, new_doc, collect, fs, &err);
    if (ret < 0)
        fail_msg("checker refused: %s", err ? err->msg : "?");
    json_decref(old_doc);
    json_decref(new_doc);
    return ret;
}

/* Exactly one error, of `rule`, at `where`; prints the findings otherwise. */
static void expect_one(Findings *fs, int errors, int rule, const char *where)
{
    int found = 0;
    for (int i = 0; i < fs->n; i++)
        if (fs->level[i] == VMS_COMPAT_ERROR && fs->rule[i] == rule &&
            strcmp(fs->where[i], where) == 0)
            found++;
    if (errors != 1 || found != 1) {
        for (int i = 0; i < fs->n; i++)
            print_message("  %s\n", fs->line[i]);
        fail_msg("want one rule %d error at %s, got %d errors", rule, where, errors);
    }
}

static void mut_remove_section(json_t *d) { json_object_del(d, "fake-serial"); }
static void mut_version_lower(json_t *d)
{
    json_object_set_new(json_object_get(d, "fake-nic"), "version_id", json_integer(1));
}
static void mut_min_raised(json_t *d)
{
    json_t *s = json_object_get(d, "fake-nic");
    json_object_set_new(s, "version_id", json_integer(4));
    json_object_set_new(s, "minimum_version_id", json_integer(3));
}
static void mut_desc_name(json_t *d)
{
    json_object_set_new(nic_desc(d), "name", json_string("fake-nic2"));
}
static void mut_no_fields(json_t *d) { json_object_del(nic_desc(d), "Fields"); }
static void mut_rename_field(json_t *d)
{
    json_object_set_new(nic_field(d, 0), "field", json_string("control"));
}
static void mut_drop_last(json_t *d)
{
    json_array_remove(json_object_get(nic_desc(d), "Fields"), 3);
}
static void mut_unused_size(json_t *d)
{
    json_object_set_new(nic_field(d, 1), "size", json_integer(2));
}
static void mut_field_size(json_t *d)
{
    json_object_set_new(nic_field(d, 0), "size", json_integer(8));
}
static void mut_struct_no_desc(json_t *d) { json_object_del(nic_field(d, 2), "Description"); }
static void mut_sub_removed(json_t *d)
{
    json_object_set_new(nic_desc(d), "Subsections", json_array());
}
static void mut_field_added(json_t *d)
{
    json_array_append_new(json_object_get(nic_desc(d), "Fields"),
                          json_pack("{s:s, s:i, s:b, s:i}", "field", "flags", "version_id", 0,
                                    "field_exists", 0, "size", 4));
}
static void mut_nested_added_with_bump(json_t *d)
{
    json_t *ring = json_object_get(nic_field(d, 2), "Description");
    json_object_set_new(ring, "version_id", json_integer(2));
    json_array_append_new(json_object_get(ring, "Fields"),
                          json_pack("{s:s, s:i, s:b, s:i}", "field", "len", "version_id", 2,
                                    "field_exists", 0, "size", 4));
}

static void test_vmstate_compat_rules_1_to_10(void **state)
{
    (void)state;
    Findings fs;
    assert_int_equal(run_compat(NULL, &fs), 0);
    expect_one(&fs, run_compat(mut_remove_section, &fs), 1, "fake-serial:");
    expect_one(&fs, run_compat(mut_version_lower, &fs), 2, "fake-nic:");
    assert_true(strstr(fs.line[0], "version 2 in OLD is newer than NEW's 1") != NULL);
    expect_one(&fs, run_compat(mut_min_raised, &fs), 2, "fake-nic:");
    assert_true(strstr(fs.line[0], "below NEW's minimum 3") != NULL);
    expect_one(&fs, run_compat(mut_desc_name, &fs), 3, "fake-nic:");
    expect_one(&fs, run_compat(mut_no_fields, &fs), 4, "fake-nic:");
    expect_one(&fs, run_compat(mut_rename_field, &fs), 5, "fake-nic:ctrl");
    expect_one(&fs, run_compat(mut_drop_last, &fs), 6, "fake-nic:mac");
    expect_one(&fs, run_compat(mut_unused_size, &fs), 7, "fake-nic:unused");
    expect_one(&fs, run_compat(mut_field_size, &fs), 8, "fake-nic:ctrl");
    assert_string_equal(fs.line[0], "error: section \"fake-nic\": field \"ctrl\": size mismatch: "
                                    "4 bytes in OLD, 8 in NEW");
    expect_one(&fs, run_compat(mut_struct_no_desc, &fs), 9, "fake-nic:ring");
    expect_one(&fs, run_compat(mut_sub_removed, &fs), 10, "fake-nic:fake-nic/mit");
}

static void mut_field_added_with_bump(json_t *d)
{
    json_t *s = json_object_get(d, "fake-nic");
    json_object_set_new(s, "version_id", json_integer(3));
    json_object_set_new(nic_desc(d), "version_id", json_integer(3));
    json_array_append_new(json_object_get(nic_desc(d), "Fields"),
                          json_pack("{s:s, s:i, s:b, s:i}", "field", "flags", "version_id", 3,
                                    "field_exists", 0, "size", 4));
}
static void mut_new_subsection(json_t *d)
{
    json_array_append_new(json_object_get(nic_desc(d), "Subsections"),
                          json_pack("{s:s, s:i, s:i, s:[]}", "name", "fake-nic/new", "version_id",
                                    1, "minimum_version_id", 1, "Fields"));
}
static void mut_unused_replaced(json_t *d)
{
    json_t *fields = json_object_get(nic_desc(d), "Fields");
    json_array_remove(fields, 1);
    json_array_insert_new(fields, 1,
                          json_pack("{s:s, s:i, s:b, s:i}", "field", "b", "version_id", 0,
                                    "field_exists", 0, "size", 2));
    json_array_insert_new(fields, 1,
                          json_pack("{s:s, s:i, s:b, s:i}", "field", "a", "version_id", 0,
                                    "field_exists", 0, "size", 2));
}
static void mut_moved_into_struct(json_t *d)
{
    json_t *fields = json_object_get(nic_desc(d), "Fields");
    json_t *ctrl = json_deep_copy(json_array_get(fields, 0));
    json_t *regs = json_pack("{s:s, s:i, s:b, s:i, s:{s:s, s:i, s:i, s:[o]}}", "field", "regs",
                             "version_id", 0, "field_exists", 0, "size", 4, "Description", "name",
                             "regs", "version_id", 1, "minimum_version_id", 1, "Fields", ctrl);
    json_array_set_new(fields, 0, regs);
}

static void test_vmstate_compat_beyond_qemu(void **state)
{
    (void)state;
    Findings fs;
    /* A field appended without a version bump: QEMU's checker is silent. */
    expect_one(&fs, run_compat(mut_field_added, &fs), 11, "fake-nic:flags");
    /* With a bump the old stream never carries it: compatible. */
    assert_int_equal(run_compat(mut_field_added_with_bump, &fs), 0);
    /* A nested struct loads with NEW's own version: the bump does not help. */
    expect_one(&fs, run_compat(mut_nested_added_with_bump, &fs), 11, "fake-nic:ring.len");
    /* New subsections are fine, noted as info. */
    assert_int_equal(run_compat(mut_new_subsection, &fs), 0);
    assert_int_equal(fs.n, 1);
    assert_int_equal(fs.level[0], VMS_COMPAT_INFO);
    assert_string_equal(fs.where[0], "fake-nic:fake-nic/new");
    /* Tolerated like QEMU: padding replaced by fields, a field moved into a
     * sub-struct. */
    assert_int_equal(run_compat(mut_unused_replaced, &fs), 0);
    assert_int_equal(run_compat(mut_moved_into_struct, &fs), 0);
}

static void set_exists(json_t *field, bool on)
{
    json_object_set_new(field, "field_exists", json_boolean(on));
}
static void mut_ctrl_conditional(json_t *d) { set_exists(nic_field(d, 0), true); }
static void mut_ring_head_conditional(json_t *d)
{
    json_t *ring = json_object_get(nic_field(d, 2), "Description");
    set_exists(json_array_get(json_object_get(ring, "Fields"), 0), true);
}
static void mut_bump_nic(json_t *d)
{
    json_object_set_new(json_object_get(d, "fake-nic"), "version_id", json_integer(3));
    json_object_set_new(nic_desc(d), "version_id", json_integer(3));
}
static void mut_ctrl_conditional_with_bump(json_t *d)
{
    mut_bump_nic(d);
    mut_ctrl_conditional(d);
}

/* Base vs base with `old_mut` applied to OLD and `new_mut` to NEW. */
static int run_compat_pair(void (*old_mut)(json_t *), void (*new_mut)(json_t *), Findings *fs)
{
    json_t *old_doc = json_loads(compat_base, 0, NULL);
    json_t *new_doc = json_deep_copy(old_doc);
    if (old_mut)
        old_mut(old_doc);
    if (new_mut)
        new_mut(new_doc);
    memset(fs, 0, sizeof(*fs));
    MigErr *err = NULL;
    int ret = vmstate_check_compat(old_doc, new_doc, collect, fs, &err);
    if (ret < 0)
        fail_msg("checker refused: %s", err ? err->msg : "?");
    json_decref(old_doc);
    json_decref(new_doc);
    return ret;
}

static void expect_text(const Findings *fs, int i, const char *text)
{
    if (i >= fs->n || !strstr(fs->line[i], text))
        fail_msg("finding %d is '%s', want one containing '%s'", i, i < fs->n ? fs->line[i] : "",
                 text);
}

/* field_exists flips (rule 13): an error without a version change (either
 * way, top level and nested), info naming the version pair with one. */
static void test_vmstate_compat_field_exists_changes(void **state)
{
    (void)state;
    Findings fs;
    expect_one(&fs, run_compat(mut_ctrl_conditional, &fs), 13, "fake-nic:ctrl");
    expect_text(&fs, 0, "field \"ctrl\": field became conditional (field_exists) in NEW without "
                        "a version change");
    expect_one(&fs, run_compat_pair(mut_ctrl_conditional, NULL, &fs), 13, "fake-nic:ctrl");
    expect_text(&fs, 0, "field became unconditional in NEW without a version change: OLD sends "
                        "it only when its field_exists test says so");
    expect_one(&fs, run_compat(mut_ring_head_conditional, &fs), 13, "fake-nic:ring.head");

    /* With a bump the test may key on the version: info, not an error. */
    assert_int_equal(run_compat(mut_ctrl_conditional_with_bump, &fs), 0);
    assert_int_equal(fs.n, 1);
    assert_int_equal(fs.level[0], VMS_COMPAT_INFO);
    assert_int_equal(fs.rule[0], 13);
    expect_text(&fs, 0, "at version 2 -> 3: NEW's test must say yes for streams of version 2");
    assert_int_equal(run_compat_pair(mut_ctrl_conditional, mut_bump_nic, &fs), 0);
    assert_int_equal(fs.rule[0], 13);
    expect_text(&fs, 0, "became unconditional at version 2 -> 3");

    /* Unchanged conditional fields are no finding. */
    assert_int_equal(run_compat_pair(mut_ctrl_conditional, mut_ctrl_conditional, &fs), 0);
    assert_int_equal(fs.n, 0);
}

/* --help's scope names what the checker cannot see. */
static void test_vmstate_compat_scope_names_the_gaps(void **state)
{
    (void)state;
    const char *t = vmstate_compat_scope();
    const char *want[] = {"needed() semantics", "field_exists", "machine-type compat properties",
                          "array length changes", "Beyond QEMU's checker",
                          "VALIDATE", "Cannot detect"};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(want); i++)
        if (!strstr(t, want[i]))
            fail_msg("scope text lacks '%s'", want[i]);
}

static void test_vmstate_compat_malformed_input(void **state)
{
    (void)state;
    json_t *good = json_loads(compat_base, 0, NULL);
    json_t *bad = json_loads("{\"x\": {\"version_id\": 1, \"Description\": {\"name\": \"x\","
                             " \"version_id\": 1, \"Fields\": [{\"field\": \"a\","
                             " \"version_id\": 0, \"size\": \"4\"}]}}}",
                             0, NULL);
    MigErr *err = NULL;
    assert_int_equal(vmstate_check_compat(good, bad, NULL, NULL, &err), -EPROTO);
    assert_string_equal(err->msg,
                        "NEW: section \"x\".Description.Fields[0]: \"size\" is not an integer");
    mig_err_free(err);
    json_t *arr = json_array();
    err = NULL;
    assert_int_equal(vmstate_check_compat(arr, good, NULL, NULL, &err), -EPROTO);
    assert_string_equal(err->msg, "OLD: the top level is not an object");
    mig_err_free(err);
    json_decref(arr);
    json_decref(good);
    json_decref(bad);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vmstate_wire_bytes_every_type),
        cmocka_unit_test(test_vmstate_bad_bool_and_count_leave_object_unchanged),
        cmocka_unit_test(test_vmstate_round_trip_structs_arrays_pointer),
        cmocka_unit_test(test_vmstate_wire_bytes_structs_arrays_pointer),
        cmocka_unit_test(test_vmstate_wire_bytes_var16_var32_counts),
        cmocka_unit_test(test_vmstate_enum_name_tables),
        cmocka_unit_test(test_vmstate_version_gates_both_ways),
        cmocka_unit_test(test_vmstate_version_too_new_too_old),
        cmocka_unit_test(test_vmstate_subsection_present),
        cmocka_unit_test(test_vmstate_subsection_absent_defaults),
        cmocka_unit_test(test_vmstate_subsection_the_sender_always_writes_is_required),
        cmocka_unit_test(test_vmstate_load_logged_names_the_subsections_that_came),
        cmocka_unit_test(test_vmstate_subsection_unknown_and_too_new),
        cmocka_unit_test(test_vmstate_ambiguity_field_after_struct_fools_qemu),
        cmocka_unit_test(test_vmstate_ambiguity_child_name_prefix_of_parent),
        cmocka_unit_test(test_vmstate_ambiguity_undecidable_refused_on_save),
        cmocka_unit_test(test_vmstate_every_truncation_fails_cleanly),
        cmocka_unit_test(test_vmstate_error_names_device_field_offset),
        cmocka_unit_test(test_vmstate_fault_points_change_nothing),
        cmocka_unit_test(test_vmstate_describe_dump_shape),
        cmocka_unit_test(test_vmstate_describe_vmdesc_shape),
        cmocka_unit_test(test_vmstate_compat_rules_1_to_10),
        cmocka_unit_test(test_vmstate_compat_beyond_qemu),
        cmocka_unit_test(test_vmstate_compat_field_exists_changes),
        cmocka_unit_test(test_vmstate_compat_scope_names_the_gaps),
        cmocka_unit_test(test_vmstate_compat_malformed_input),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
