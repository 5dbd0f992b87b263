/*
 * fuzz-scenario.c - a libFuzzer target for the scenario loader
 * (harness/runner/scenario.h): the input is a scenario file's YAML, loaded
 * from memory; it must load or be refused with an error, never crash,
 * hang or leak.  Seeds: harness/fuzz/corpus/fuzz-scenario (make-seeds.py:
 * the scenario library).
 */
#include <stddef.h>
#include <stdint.h>

#include "runner/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MigErr *err = NULL;
    Scenario *s = scenario_load_data("fuzz.yaml", (const char *)data, size, &err);
    scenario_free(s);
    mig_err_free(err);
    return 0;
}
