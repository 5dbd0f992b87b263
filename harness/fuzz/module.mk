# harness/fuzz/module.mk - libFuzzer targets (clang only, not part of `all`).
# ci/lane-fuzz builds them into BUILD-fuzz with every object instrumented:
#   make CC=clang BUILD=build-fuzz CFLAGS='-O1 -g -fsanitize=fuzzer-no-link,address,undefined' fuzz-bins
# and runs each for a bounded number of inputs.  Run one by hand:
#   build-fuzz/fuzz/fuzz-spice -runs=100000 [CORPUS_DIR]
FUZZ_SRCS := $(sort $(wildcard harness/fuzz/fuzz-*.c))
FUZZ_BINS := $(FUZZ_SRCS:harness/fuzz/%.c=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: harness/fuzz/%.c $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_BINS)
