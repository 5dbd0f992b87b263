/*
 * good.c - the well-behaved sample vendor plugin (a v2 fake GPU with every
 * feature); build/fakes/vendor/good.so.  The broken variants come from the
 * same source with one -D each (fakes/vendor/module.mk).
 */
#include "src/vendor-gpu.c"
