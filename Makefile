# atoll: one top-level Makefile; each module lists its sources in <dir>/module.mk.
#
#   make            build $(BUILD)/atoll (debug build in build/debug)
#   make run        install missing packages, build, start a node on 127.0.0.1:5000
#   make test       install, build, run every test (unit, integration, short fuzz)
#   make asan       the same suite under ASan + UBSan
#   make release    optimized build in build/release
#   make bench      atoll vs Debian's docker-registry, side by side
#   make image      OCI image of the release build in build/image/oci
#   make cluster    start a three-node cluster on loopback (Ctrl-C stops it)
#   make fuzz       longer libFuzzer runs of every target
#   make format / format-check / check-deps / clean
#   make jepsen / jepsen-soak   fault-injection suite (jepsen-style/, root)
#   make BUILD=build/bugs BUGS=1   a test build with deliberate bugs that
#                   ATOLL_TEST_BUG switches on (common/testbug.h)

BUILD   ?= build/debug
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
V       ?=
Q       := $(if $(V),,@)
WERROR  ?= -Werror
BUGS    ?=
PKGS    := libuv raft openssl jansson libcurl libprotobuf-c yaml-0.1 libxcrypt
LLHTTP  := /usr/share/llhttp

WARN := -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wvla -Wwrite-strings \
	-Wimplicit-fallthrough -Wundef \
	$(if $(findstring clang,$(CC)),,-Wno-format-truncation)
CFLAGS_ALL := -std=c11 $(OPT) $(SAN) -fno-strict-aliasing -pthread \
	$(if $(BUGS),-DATOLL_TEST_BUGS) \
	-I. -I$(BUILD)/gen -I/usr/share/include/llhttp \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

# Module source lists (X_SRCS) and allowed includes (X_ALLOW).
include common/module.mk
include proto/module.mk
include storage/module.mk
include raft/module.mk
include gossip/module.mk
include node/module.mk
include tests/module.mk

PROTO_GEN_C := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(wildcard $(PROTO_FILES)))
PROTO_GEN_H := $(PROTO_GEN_C:.c=.h)
LLHTTP_OBJS := $(patsubst %,$(BUILD)/obj/llhttp/%.o,llhttp api http)

# wildcard: a module still being written does not break the others' builds
LIB_SRCS := $(wildcard $(COMMON_SRCS) $(PROTO_SRCS) $(STORAGE_SRCS) \
	$(RAFT_SRCS) $(GOSSIP_SRCS) $(NODE_LIB_SRCS))
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) \
	$(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_GEN_C)) \
	$(LLHTTP_OBJS)
LIB      := $(BUILD)/libatoll.a
BIN      := $(BUILD)/atoll

.PHONY: all deps run test unit asan release bench bench-https bench-scale fuzz fuzz-short clean cluster image \
	format format-check check-deps
.DEFAULT_GOAL := all
.SECONDARY: $(PROTO_GEN_C) $(PROTO_GEN_H)

all: $(BIN)

$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen/proto --proto_path=proto $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -w -MMD -MP -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-unused-parameter -Wno-implicit-fallthrough \
		-Wno-missing-prototypes -MMD -MP -c $< -o $@

# Every object depends on generated protobuf headers existing first.
$(BUILD)/obj/%.o: %.c | $(PROTO_GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(WARN) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/node/main.o $(LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# Unit test binaries (tests/module.mk): the test, its folder's helpers, the
# library last.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS_ALL) -lcmocka

deps:
	@sh .ci/install-deps

run: deps
	@$(MAKE) --no-print-directory BUILD=build/release OPT="-O2 -g" all
	./build/release/atoll serve --listen 127.0.0.1:5000 --data-dir ./data

cluster: all
	sh tests/cluster.sh $(BUILD)/atoll

unit: $(BIN) $(UNIT_BINS)

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-build
	python3 tests/run.py --build $(BUILD)

asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

release:
	$(MAKE) BUILD=build/release OPT="-O2 -g" all

bench: deps
	@$(MAKE) --no-print-directory BUILD=build/release OPT="-O2 -g" all
	python3 tests/bench/run-bench build/release/atoll
	python3 tests/bench/https-bench build/release/atoll
	python3 tests/bench/edge-bench build/release/atoll
	python3 tests/bench/replication-bench build/release/atoll --reps 3
	python3 tests/bench/fetch-bench build/release/atoll --only proxy --warm-mb 1024
	python3 tests/bench/fetch-bench build/release/atoll --only pullthrough --warm-mb 1024

# A reproducible OCI image (no base image) of the release binary, its shared
# libraries and CA certificates, as an OCI layout (deploy/image/build-image).
image: release
	deploy/image/build-image build/release/atoll build/image/oci

# One node loaded with SCALE_TAGS tags (issue 16): memory, snapshot stalls,
# restart (tests/bench/scale; minutes and gigabytes at the default 1M).
SCALE_TAGS ?= 1000000
bench-scale: deps
	@$(MAKE) --no-print-directory BUILD=build/release OPT="-O2 -g" all
	python3 tests/bench/scale build/release/atoll --tags $(SCALE_TAGS)

# Only the HTTPS + authentication comparison (tests/bench/https-bench).
bench-https: deps
	@$(MAKE) --no-print-directory BUILD=build/release OPT="-O2 -g" all
	python3 tests/bench/https-bench build/release/atoll

# libFuzzer targets are built with clang into build/fuzz (their own build dir).
FUZZ_BUILD := build/fuzz
FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1

fuzz-build: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
		OPT="-g -O1" SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
		fuzz-targets

fuzz-targets: $(FUZZ_TARGETS)

$(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_ALL)

fuzz: fuzz-build
	python3 tests/run.py --build $(BUILD) --only fuzz --fuzz-seconds 300

# Fault-injection suite (jepsen-style/README.md): needs root (netns, iptables).
.PHONY: jepsen jepsen-soak
jepsen: all
	python3 jepsen-style/test_checkers.py
	python3 jepsen-style/test_nemesis_net.py
	python3 jepsen-style/run.py --tier short --atoll $(BIN)

jepsen-soak: all
	python3 jepsen-style/run.py --tier soak --atoll $(BIN) \
		--soak-minutes $${JEPSEN_SOAK_MINUTES:-30}

clean:
	rm -rf build

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h')
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

check-deps:
	@python3 .ci/check-deps

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
