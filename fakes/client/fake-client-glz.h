/*
 * fake-client-glz.h - the fake client's GLZ decoder and window
 * (fake-client-glz.c).  Public for the fuzz target and tests.
 */
#ifndef MIGCERT_FAKE_CLIENT_GLZ_H
#define MIGCERT_FAKE_CLIENT_GLZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

typedef struct FakeGlzWindow FakeGlzWindow;

FakeGlzWindow *fake_glz_window_new(void);
void fake_glz_window_free(FakeGlzWindow *w);
/* Drop every image (a semi-seamless switch, switch-host: a new dictionary). */
void fake_glz_window_clear(FakeGlzWindow *w);
size_t fake_glz_window_count(const FakeGlzWindow *w);
uint64_t fake_glz_window_decoded(const FakeGlzWindow *w);
/* Decode the LZ_RGBData of a GLZ_RGB image of width × height (`payload`,
 * len bytes: u32 data_size, then the stream) into *out (width × height
 * pixels 0x00RRGGBB, the caller frees); the image joins the window.
 * -EPROTO with the reason on anything malformed (the window unchanged). */
int fake_glz_decode(FakeGlzWindow *w, const uint8_t *payload, size_t len, uint32_t width, uint32_t height,
                    uint32_t **out, MigErr **errp);

#endif
