# harness/runner/module.mk - the runner's pieces other than main.c as a
# library, so unit tests of the scenario loader, fault specs and executor can
# link them (the default unit rule links only libsupport.a + libmigcert.a).
RUNNER_LIB_OBJS := $(filter-out $(BUILD)/obj/harness/runner/main.o,$(RUNNER_OBJS))

$(BUILD)/librunner.a: $(RUNNER_LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

RUNNER_UNIT_BINS := $(BUILD)/unit/test-scenario $(BUILD)/unit/test-releases $(BUILD)/unit/test-faults-spec
$(RUNNER_UNIT_BINS): $(BUILD)/unit/%: $(BUILD)/obj/harness/unit/%.o $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librunner.a $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(CMOCKA_LIBS) $(LDLIBS)
