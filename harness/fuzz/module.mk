# harness/fuzz/module.mk - libFuzzer targets (clang only, not part of `all`),
# one per parser: fuzz-stream (destination stream loader), fuzz-analyze,
# fuzz-devices (vmstate and device sections), fuzz-qmp, fuzz-scenario,
# fuzz-compat (check-compat JSON), fuzz-spice.  Their seed corpus is checked
# in under harness/fuzz/corpus/TARGET (harness/fuzz/make-seeds.py rebuilds
# it from real inputs; record-spice.py alone re-records fuzz-spice's SPICE
# sessions).  ci/lane-fuzz builds them into BUILD-fuzz with every
# object instrumented:
#   make CC=clang BUILD=build-fuzz CFLAGS='-O1 -g -fsanitize=fuzzer-no-link,address,undefined' fuzz-bins
# `make fuzz` (FUZZ_SECONDS per target, default 60) and `make check` (a fixed
# number of inputs from a fixed seed) run them.  Run one by hand:
#   build-fuzz/fuzz/fuzz-spice -runs=100000 harness/fuzz/corpus/fuzz-spice
FUZZ_SRCS := $(sort $(wildcard harness/fuzz/fuzz-*.c))
FUZZ_BINS := $(FUZZ_SRCS:harness/fuzz/%.c=$(BUILD)/fuzz/%)
# librunner.a (harness/runner/module.mk): the scenario loader
$(BUILD)/fuzz/%: harness/fuzz/%.c harness/fuzz/fuzz-machine.h harness/fuzz/fuzz-util.h $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

.PHONY: fuzz-bins fuzz
fuzz-bins: $(FUZZ_BINS)

fuzz: deps
	@mkdir -p reports/out && FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash ci/lane-fuzz $(BUILD)
