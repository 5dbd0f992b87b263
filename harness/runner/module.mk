# harness/runner/module.mk - the runner's pieces other than main.c as a
# library, so unit tests of the scenario loader, fault specs and executor can
# link them (the default unit rule links only libsupport.a + libmigcert.a).
RUNNER_LIB_OBJS := $(filter-out $(BUILD)/obj/harness/runner/main.o,$(RUNNER_OBJS))

$(BUILD)/librunner.a: $(RUNNER_LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^


# heap-count.o (the heap part of the resource oracle) replaces the malloc
# family: a binary that links librunner.a must have those definitions in its
# dynamic symbol table, or shared libraries (libc's own strdup, jansson, a
# dlopen'd plugin) would bind to glibc's and bypass the counters.  GNU ld
# already exports a definition that overrides one of a linked shared
# library; the flags say so explicitly instead of relying on it
# (test-heap-count checks the result).  `migcert` has -rdynamic.
HEAP_COUNT_SYMS := malloc free calloc realloc reallocarray memalign aligned_alloc \
  posix_memalign valloc pvalloc mmap mmap64 munmap mremap
HEAP_COUNT_LDFLAGS := $(foreach s,$(HEAP_COUNT_SYMS),-Wl,--export-dynamic-symbol=$(s))

RUNNER_UNIT_BINS := $(BUILD)/unit/test-scenario $(BUILD)/unit/test-releases $(BUILD)/unit/test-faults-spec \
  $(BUILD)/unit/test-heap-count $(BUILD)/unit/test-report $(BUILD)/unit/test-run-timeline \
  $(BUILD)/unit/test-certify-spice
$(RUNNER_UNIT_BINS): $(BUILD)/unit/%: $(BUILD)/obj/harness/unit/%.o $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HEAP_COUNT_LDFLAGS) -o $@ $< $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(CMOCKA_LIBS) $(LDLIBS)

# The suite version a certificate names (certify-report.c): `git describe`
# of the tree it was built from.  The stamp file changes only when the
# version does, so certify-report.o is rebuilt exactly then.
SUITE_VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/gen/suite-version: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(SUITE_VERSION)" ] || echo "$(SUITE_VERSION)" > $@
$(BUILD)/obj/harness/runner/certify-report.o: $(BUILD)/gen/suite-version
$(BUILD)/obj/harness/runner/certify-report.o: ALL_CFLAGS += -DMIGCERT_SUITE_VERSION='"$(SUITE_VERSION)"'
.PHONY: FORCE
FORCE:
