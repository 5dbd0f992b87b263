# harness/bench/module.mk - sim-bench: simulated migrations per core-minute
# (issue 5's speed goal), run by ci/bench.  It links the scenario executor
# (librunner.a, harness/runner/module.mk) like the runner's unit tests do,
# and exports its counted malloc family the same way (HEAP_COUNT_LDFLAGS).
SIM_BENCH := $(BUILD)/bench/sim-bench

$(SIM_BENCH): $(BUILD)/obj/harness/bench/sim-bench.o $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HEAP_COUNT_LDFLAGS) -o $@ $< $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

bench: $(SIM_BENCH)

# link-probe: the host's socketpair and vmsplice-pipe ceilings, measured
# beside the migrations (harness/bench/bench.py); plain C, no library.
LINK_PROBE := $(BUILD)/bench/link-probe

$(LINK_PROBE): $(BUILD)/obj/harness/bench/link-probe.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

bench: $(LINK_PROBE)

# glz-bench: GLZ bytes per image and encode speed on the fake-qxl workload
# (issue 11's GLZ figures), run by ci/bench.
GLZ_BENCH := $(BUILD)/bench/glz-bench

$(GLZ_BENCH): $(BUILD)/obj/harness/bench/glz-bench.o $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

bench: $(GLZ_BENCH)

# parse-time-TARGET: each libFuzzer target of harness/fuzz linked, without
# libFuzzer, to parse-time.c, which times its parser in-process
# (harness/bench/parser-bench.py: no process start-up in the figures).
PARSE_TIME_BINS := $(patsubst harness/fuzz/fuzz-%.c,$(BUILD)/bench/parse-time-%,$(sort $(wildcard harness/fuzz/fuzz-*.c)))

$(BUILD)/bench/parse-time-%: harness/bench/parse-time.c harness/fuzz/fuzz-%.c harness/fuzz/fuzz-machine.h harness/fuzz/fuzz-util.h $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HEAP_COUNT_LDFLAGS) -o $@ harness/bench/parse-time.c harness/fuzz/fuzz-$*.c $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

bench: $(PARSE_TIME_BINS)
