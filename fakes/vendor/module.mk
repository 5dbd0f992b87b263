# fakes/vendor/module.mk - sample vendor plugins built from one source
# (fakes/vendor/src/vendor-gpu.c) with one -D each; good.so comes from the
# default rule (fakes/vendor/good.c).  broken-<rule>.so break exactly one
# rule of the ABI; the others exercise the loader and the certify sandbox
# (the hostile ones: fakes/vendor/src/vendor-gpu.c).

VENDOR_GPU_SRC := fakes/vendor/src/vendor-gpu.c
VENDOR_GPU_DEPS := $(VENDOR_GPU_SRC) fakes/devices/fake-gpu.c fakes/devices/fake-gpu.h include/migcert/device.h

vendor_flags_broken-stopcopy-to-precopy := -DFAKE_GPU_BROKEN_STOPCOPY_TO_PRECOPY
vendor_flags_broken-pending-never-zero := -DFAKE_GPU_BROKEN_PENDING_NEVER_ZERO
vendor_flags_broken-abort-loses-data := -DFAKE_GPU_BROKEN_ABORT_LOSES_DATA
vendor_flags_broken-reset-keeps-error := -DFAKE_GPU_BROKEN_RESET_KEEPS_ERROR
vendor_flags_broken-short-read := -DFAKE_GPU_BROKEN_SHORT_READ
vendor_flags_broken-accepts-truncated := -DFAKE_GPU_BROKEN_ACCEPTS_TRUNCATED
vendor_flags_broken-vmstate-description := -DVENDOR_BAD_VMSTATE
vendor_flags_good-v1 := -DVENDOR_V1
vendor_flags_bad-abi := -DVENDOR_ABI=99
vendor_flags_no-symbol := -DVENDOR_NO_SYMBOL
vendor_flags_crash-set-state := -DVENDOR_CRASH_SET_STATE
vendor_flags_hang-read := -DVENDOR_HANG_READ
vendor_flags_junk-fds := -DVENDOR_JUNK_FDS
vendor_flags_overrun-read := -DVENDOR_OVERRUN_READ
vendor_flags_fork-sleepers := -DVENDOR_FORK_SLEEPERS
vendor_flags_fork-crash := -DVENDOR_FORK_CRASH
vendor_flags_signal-parent := -DVENDOR_SIGNAL_PARENT
vendor_flags_overrun-resume-v1 := -DVENDOR_V1 -DVENDOR_OVERRUN_RESUME
vendor_flags_fd-hoard := -DVENDOR_HOARD_FDS

VENDOR_BROKEN := broken-stopcopy-to-precopy broken-pending-never-zero broken-abort-loses-data \
  broken-reset-keeps-error broken-short-read broken-accepts-truncated broken-vmstate-description
VENDOR_EXTRA := good-v1 bad-abi no-symbol crash-set-state hang-read
# hostile: each does what a process can and certify must survive (issue 12)
VENDOR_HOSTILE := junk-fds overrun-read fork-sleepers fork-crash signal-parent overrun-resume-v1 \
  fd-hoard
VENDOR_VARIANT_SOS := $(patsubst %,$(BUILD)/fakes/vendor/%.so,$(VENDOR_BROKEN) $(VENDOR_EXTRA) $(VENDOR_HOSTILE))

all: $(VENDOR_VARIANT_SOS)

$(VENDOR_VARIANT_SOS): $(BUILD)/fakes/vendor/%.so: $(VENDOR_GPU_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(vendor_flags_$*) -DVENDOR_NAME='"$*"' -shared -o $@ $(VENDOR_GPU_SRC)
