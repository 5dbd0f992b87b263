# impl/device/module.mk - the pkg-config file of the vendor ABI:
# $(BUILD)/migcert.pc with Cflags -I<prefix>/include (prefix: this tree
# unless MIGCERT_PREFIX says otherwise).

MIGCERT_PREFIX ?= $(CURDIR)

all: $(BUILD)/migcert.pc

$(BUILD)/migcert.pc: include/migcert/migcert.pc.in include/migcert/device.h
	@mkdir -p $(dir $@)
	abi=$$(sed -n 's/^#define MIGCERT_DEVICE_ABI_VERSION \([0-9]*\)u.*/\1/p' include/migcert/device.h); \
	sed -e 's|@PREFIX@|$(MIGCERT_PREFIX)|' -e "s|@ABI@|$$abi|" $< > $@
