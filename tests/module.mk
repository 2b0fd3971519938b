# Unit tests: tests/unit/<module>/[<room>/]test_<file>.c, one binary each,
# built as $(BUILD)/tests/<module>/[<room>/]test_<file>.
UNIT_SRCS := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/fuzz/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

# A test folder's helpers.c (shared test code) is linked into each of the
# folder's binaries: tests/unit/raft/helpers.c into $(BUILD)/tests/raft/test_*.
UNIT_HELPERS := $(shell find tests/unit -name helpers.c 2>/dev/null | sort)
$(foreach h,$(UNIT_HELPERS),$(eval \
	$(filter $(BUILD)/tests/$(patsubst tests/unit/%/helpers.c,%,$(h))/test_%,$(UNIT_BINS)): \
	$(BUILD)/obj/$(h:.c=.o)))
