/*
 * fiu-local.h - keeps libfiu an optional dependency of libmigcert.
 *
 * Built with FIU_ENABLE (the default for the harness: `make FIU=1`), the fault
 * macros come from libfiu's <fiu.h> and every registered point can fire.
 * Built without it (`make FIU=0`), they compile to nothing and libfiu's
 * headers and library are not needed at all.
 */
#ifndef MIGCERT_FIU_LOCAL_H
#define MIGCERT_FIU_LOCAL_H

#ifdef FIU_ENABLE
#include <fiu.h>
#else
#define fiu_init(flags) 0
#define fiu_fail(name) 0
#define fiu_failinfo() NULL
#define fiu_do_on(name, action)
#define fiu_exit_on(name)
#define fiu_return_on(name, retval)
#endif

/*
 * fiu_return_errno_on(name, dflt): like fiu_return_on(name, -(dflt)), for
 * points whose errno a fault spec may choose (`errno=EPIPE`).  The harness's
 * injector sets the point's failnum to the chosen positive errno; a failnum
 * of 1 (what a plain fiu_enable passes) means "the registered errno", dflt.
 */
#ifdef FIU_ENABLE
#define fiu_return_errno_on(name, dflt)                                                            \
    do {                                                                                           \
        int fiu_failnum_ = fiu_fail(name);                                                         \
        if (fiu_failnum_)                                                                          \
            return fiu_failnum_ > 1 ? -fiu_failnum_ : -(dflt);                                     \
    } while (0)
#else
#define fiu_return_errno_on(name, dflt)
#endif

#endif
