# harness/unit/module.mk - unit tests that link one runner file besides the
# libraries.  test-stream checks the text `migcert analyze` prints
# (harness/runner/analyze-print.c) with the analyzer's tests; it links that
# object alone, not librunner.a, whose heap-count.o would replace malloc.
$(BUILD)/unit/test-stream: $(BUILD)/obj/harness/unit/test-stream.o $(BUILD)/obj/harness/runner/analyze-print.o $(BUILD)/libsupport.a $(BUILD)/libmigcert.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libsupport.a $(BUILD)/libmigcert.a $(CMOCKA_LIBS) $(LDLIBS)
