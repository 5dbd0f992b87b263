/*
 * fiu-local.h - keeps libfiu an optional dependency of libmigcert.
 *
 * Built with FIU_ENABLE (the default for the harness: `make FIU=1`), the fault
 * macros come from libfiu's <fiu.h> and every registered point can fire.
 * Built without it (`make FIU=0`), they compile to nothing and libfiu's
 * headers and library are not needed at all.  Engine code does not call
 * these directly: it goes through the registry (faults.h, mig_fault_fire).
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

#endif
