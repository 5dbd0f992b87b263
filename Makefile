# migcert build.  `make` builds build/libmigcert.a and build/migcert;
# `make check` runs every test lane; `make run` runs the main job.
# Variables: CC (gcc|clang), BUILD (output folder), FIU (1: compile fault
# points in, the default for the harness; 0: libfiu not needed), COVERAGE=1.

CC ?= gcc
BUILD ?= build
FIU ?= 1
PY := /usr/bin/python3

PKGS := jansson libcrypto cmocka libcyaml spice-protocol
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs jansson libcrypto libcyaml 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

# -Wno-unused-parameter: vtable callbacks (loop, transport, device, QMP
# handlers) have fixed signatures and many ignore some of their arguments.
# -Wno-missing-field-initializers: command and argument tables end with
# designated or sentinel entries that rely on C's zero-fill (clang flags them).
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
# Include folders per layer (docs/architecture.md "Layers"): the engine sees
# impl/ and include/ only, the fakes add fakes/, the harness sees everything.
# ci/check-layers (make check) also checks the arrows between impl/ modules.
LAYER_INC := -Iimpl -Iinclude -Ifakes -Iharness
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -fPIC $(LAYER_INC) $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -ldl -lm
ifeq ($(FIU),1)
ALL_CFLAGS += -DFIU_ENABLE=1
LDLIBS += -lfiu
endif
# -Wno-format-truncation: at -O0 gcc knows less about string lengths and
# warns about snprintf calls into fixed buffers whose truncation the -O2
# build (which keeps the warning) accepts; with -Werror the coverage build
# then had no `migcert` and ran no scenario (ci/lane-full-coverage).
ifeq ($(COVERAGE),1)
ALL_CFLAGS += --coverage -O0 -Wno-format-truncation
LDLIBS += --coverage
endif

LIB_SRCS := $(sort $(wildcard impl/*/*.c))
SUPPORT_SRCS := $(sort $(wildcard harness/sim/*.c fakes/devices/*.c fakes/workload/*.c fakes/client/*.c))
RUNNER_SRCS := $(sort $(wildcard harness/runner/*.c))
UNIT_SRCS := $(sort $(wildcard harness/unit/test-*.c))
VENDOR_SRCS := $(sort $(wildcard fakes/vendor/*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(BUILD)/obj/%.o)
RUNNER_OBJS := $(RUNNER_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:harness/unit/%.c=$(BUILD)/unit/%)
VENDOR_SOS := $(VENDOR_SRCS:fakes/vendor/%.c=$(BUILD)/fakes/vendor/%.so)

.PHONY: all deps check check-full run unit unit-bins pytest bench valgrind coverage clean
all: $(BUILD)/libmigcert.a $(BUILD)/migcert $(VENDOR_SOS)

$(BUILD)/obj/impl/%.o: LAYER_INC := -Iimpl -Iinclude
$(BUILD)/obj/fakes/%.o: LAYER_INC := -Iimpl -Iinclude -Ifakes

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmigcert.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libsupport.a: $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/migcert: $(RUNNER_OBJS) $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	$(CC) $(ALL_CFLAGS) -rdynamic -o $@ $(RUNNER_OBJS) $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(LDLIBS)

$(BUILD)/unit/%: $(BUILD)/obj/harness/unit/%.o $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/fakes/vendor/%.so: $(BUILD)/obj/fakes/vendor/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $<

# Module-specific rules (extra binaries, plugin variants) live next to the code.
-include $(wildcard impl/*/module.mk fakes/*/module.mk harness/*/module.mk)

deps:
	@bash ci/deps

unit: all $(UNIT_BINS)
	@bash ci/lane-unit $(BUILD)

# the unit test binaries, built, not run (ci/lane-full-sanitizers)
unit-bins: all $(UNIT_BINS)

pytest: all
	@bash ci/lane-pytest $(BUILD)

# The CI job: every lane that fits in minutes; the summary line comes last.
# A broken file fails its own case (ci/lane-build uses make -k), not the whole run.
# Each lane ends with one line, "lane NAME: N passed, N failed in S s (C CPU s)".
# ci/lanes.py runs the lanes as jobs, two at a time (LANE_SLOTS), each as
# soon as what it needs is built, and prints a table of their times.
check: deps
	@rm -rf reports/out && mkdir -p reports/out
	@rc=0; $(PY) ci/lanes.py $(BUILD) || rc=1; \
	  $(PY) ci/summary.py reports/out --build $(BUILD) --exit-status $$rc

# The long job: everything in check plus the long lanes (ci/lane-full-*),
# then the HTML report (`migcert report`, docs/report.md): its path comes
# just before the last line.
check-full: deps
	@rm -rf reports/out && mkdir -p reports/out
	@rc=0; $(PY) ci/lanes.py --full $(BUILD) || rc=1; \
	  $(BUILD)/migcert report reports/out > reports/out/report.log 2>&1 || \
	    { rc=1; echo "report: migcert report failed (see reports/out/report.log)" >&2; }; \
	  $(PY) ci/summary.py reports/out --build $(BUILD) --exit-status $$rc \
	    --report reports/out/index.html

run: check-full

# Unit tests + a scenario sample under valgrind; lcov HTML into
# reports/out/coverage/ with a one-line summary (ci/lane-full-*).
valgrind: all $(UNIT_BINS)
	@mkdir -p reports/out && bash ci/lane-full-valgrind $(BUILD)

coverage:
	@mkdir -p reports/out && bash ci/lane-full-coverage $(BUILD)

bench: deps all
	@bash ci/bench $(BUILD)

clean:
	rm -rf $(BUILD) build-* reports/out

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
