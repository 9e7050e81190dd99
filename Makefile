# datasync: builds libdatasync, datasync-consumer, datasync, the tests and benchmarks.
#
#   make              libraries and programs into $(BUILD)/
#   make test         every test: unit, schema agreement, integration (real services)
#   make chaos        the chaos run: faults while three servers sync, then a checker
#                     (CLUSTER=1: on a 3-node RabbitMQ cluster with quorum queues)
#   make demo         three servers end to end on 127.0.0.1 (CAPTURE=1: emitted by datasync-capture)
#   make bench        benchmarks (real services), then single node against 3-node cluster
#   make install      PREFIX=/usr/local DESTDIR= (PREFIX=/usr: /etc, multiarch lib)
#   make install-runtime  only what runs: programs, .so, example configuration
#   make deps         installs the Debian packages that are missing
#   make bench-deps   the same, and what only the benchmarks need (PHP)
#
# CFLAGS/LDFLAGS are the user's; the project's own flags live in DS_*.

DS_VERSION_MAJOR := $(shell sed -n 's/^\#define DS_VERSION_MAJOR \([0-9]*\)/\1/p' include/datasync.h)
DS_VERSION_MINOR := $(shell sed -n 's/^\#define DS_VERSION_MINOR \([0-9]*\)/\1/p' include/datasync.h)
DS_VERSION_PATCH := $(shell sed -n 's/^\#define DS_VERSION_PATCH \([0-9]*\)/\1/p' include/datasync.h)
DS_VERSION := $(DS_VERSION_MAJOR).$(DS_VERSION_MINOR).$(DS_VERSION_PATCH)

PREFIX ?= /usr/local
DESTDIR ?=
# PREFIX=/usr is the system's own layout (a package): configuration in /etc,
# not /usr/etc, and libraries in the multiarch directory when the compiler
# names one (Debian: /usr/lib/x86_64-linux-gnu).
ifeq ($(PREFIX),/usr)
SYSCONFDIR ?= /etc
MULTIARCH := $(shell $(or $(CC),cc) -print-multiarch 2>/dev/null)
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
else
SYSCONFDIR ?= $(PREFIX)/etc
LIBDIR ?= $(PREFIX)/lib
endif
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# systemd looks in <prefix>/lib/{systemd/system,sysusers.d,tmpfiles.d}
# whatever LIBDIR is.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

BUILD ?= build
CC ?= cc
AR ?= ar
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
LDFLAGS ?=

# libdatasync needs only these; the consumer and the CLI add the MySQL client.
LIB_PKGS := librabbitmq json-c zlib
SERVER_PKGS := libmariadb
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LIB_PKGS) $(SERVER_PKGS) 2>/dev/null)
LIB_LIBS := $(shell $(PKG_CONFIG) --libs $(LIB_PKGS) 2>/dev/null)
SERVER_LIBS := $(shell $(PKG_CONFIG) --libs $(SERVER_PKGS) 2>/dev/null)
DEP_LIBS := $(LIB_LIBS) $(SERVER_LIBS)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
# datasync-consumer's metrics endpoint (libmicrohttpd, required), and
# sd_notify for systemd's Type=notify and watchdog (libsystemd, optional:
# without it consumer/notify.c compiles to no-ops). SYSTEMD=0 leaves it out.
CONSUMER_PKGS := libmicrohttpd
ifneq ($(SYSTEMD),0)
ifeq ($(shell $(PKG_CONFIG) --exists libsystemd 2>/dev/null && echo yes),yes)
CONSUMER_PKGS += libsystemd
CONSUMER_DEFS := -DDS_HAVE_SYSTEMD
endif
endif
# Without sd_notify the unit cannot wait for READY=1 nor feed a watchdog.
UNIT_NO_NOTIFY := $(if $(CONSUMER_DEFS),,-e 's/^Type=notify/Type=exec/' -e '/^NotifyAccess=/d' -e '/^WatchdogSec=/d')
CONSUMER_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(CONSUMER_PKGS) 2>/dev/null) $(CONSUMER_DEFS)
CONSUMER_LIBS := $(shell $(PKG_CONFIG) --libs $(CONSUMER_PKGS) 2>/dev/null)

DS_WARN := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Wshadow -Wformat=2
ifeq ($(WERROR),1)
DS_WARN += -Werror
endif
DS_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -fPIC -fvisibility=hidden \
	-DDS_BUILDING_LIBRARY -Iinclude -Icommon -I$(BUILD)/gen $(DS_WARN) $(DEP_CFLAGS) -MMD -MP
# Tests and benchmarks reach into every part; the product's own folders do not.
TEST_CFLAGS := -Iproducer -Iconsumer -Icli -Itests/lib
DS_LDLIBS := $(DEP_LIBS) -pthread

ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2);
endif

SONAME := libdatasync.so.$(DS_VERSION_MAJOR)
LIB_SO := $(BUILD)/libdatasync.so.$(DS_VERSION)
LIB_A := $(BUILD)/libdatasync.a

# libdatasync: the producer and the parts of common/ that a host process needs,
# named one by one so that nothing server-side (the MySQL client) slips in.
LIB_COMMON_SRC := common/amqp_util.c common/base64.c common/clockfile.c common/config.c \
	common/confirms.c common/error.c common/event.c common/ids.c common/log.c
# Helpers that only the consumer and the CLI link: they talk to MySQL or
# declare the broker's topology, which a host application never does.
SERVER_COMMON_SRC := common/daemon.c common/logsink.c common/mysql_util.c common/topology.c
COMMON_SRC := $(sort $(wildcard common/*.c))
ifneq ($(filter-out $(LIB_COMMON_SRC) $(SERVER_COMMON_SRC),$(COMMON_SRC)),)
$(error common/ files in neither LIB_COMMON_SRC nor SERVER_COMMON_SRC: $(filter-out $(LIB_COMMON_SRC) $(SERVER_COMMON_SRC),$(COMMON_SRC)))
endif
PRODUCER_SRC := $(sort $(wildcard producer/*.c))
CONSUMER_SRC := $(sort $(wildcard consumer/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
CAPTURE_SRC := $(sort $(wildcard capture/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
ITEST_SRC := $(sort $(wildcard tests/integration/test_*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c tests/chaos/*.c))
# Modules of the chaos tools (no main of their own).
CHAOS_LIB_SRC := $(sort $(wildcard tests/chaos/lib/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_LIB_SRC := $(sort $(wildcard bench/lib/*.c))
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ := $(call obj,$(LIB_COMMON_SRC) $(PRODUCER_SRC))
SERVER_A := $(BUILD)/libdsserver.a
# The consumer's and CLI's own modules, minus main, so tests can link them.
CONSUMER_LIB_OBJ := $(call obj,$(filter-out consumer/main.c,$(CONSUMER_SRC)))
CLI_LIB_OBJ := $(call obj,$(filter-out cli/main.c,$(CLI_SRC)))

UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITEST_BIN := $(patsubst tests/integration/%.c,$(BUILD)/itests/%,$(ITEST_SRC))
TOOL_BIN := $(addprefix $(BUILD)/tools/,$(notdir $(TOOL_SRC:.c=)))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

PROGRAMS := $(if $(wildcard consumer/main.c),$(BUILD)/datasync-consumer) $(if $(wildcard cli/main.c),$(BUILD)/datasync)
PROGRAMS += $(if $(wildcard capture/main.c),$(BUILD)/datasync-capture)

all: $(LIB_SO) $(LIB_A) $(PROGRAMS) $(EXAMPLE_BIN) $(BUILD)/datasync.pc

$(BUILD)/obj/%.o: %.c
	$(call say,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(DS_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(call obj,$(PRODUCER_SRC)): DS_CFLAGS += -Iproducer
$(call obj,$(CONSUMER_SRC)): DS_CFLAGS += $(CONSUMER_CFLAGS)
$(call obj,$(UNIT_SRC) $(ITEST_SRC) $(TOOL_SRC) $(CHAOS_LIB_SRC) $(BENCH_SRC) tests/lib/itest.c): DS_CFLAGS += $(TEST_CFLAGS) $(CONSUMER_DEFS)
$(call obj,$(BENCH_SRC) $(BENCH_LIB_SRC)): DS_CFLAGS += -Ibench/lib

$(LIB_A): $(LIB_OBJ)
	$(call say,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

# An internal archive, never installed: server-side helpers of common/.
$(SERVER_A): $(call obj,$(SERVER_COMMON_SRC))
	$(call say,AR,$@)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=producer/libdatasync.map \
		-Wl,--as-needed $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS) -pthread
	@ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	@ln -sf $(SONAME) $(BUILD)/libdatasync.so

# The metadata tables' SQL is written once, in schemas/, and compiled into the
# consumer as a C string so the file and the daemon can never disagree.
$(BUILD)/gen/meta_sql.h: schemas/datasync-meta.sql
	$(call say,GEN,$@)
	@mkdir -p $(dir $@)
	$(Q){ echo '/* Generated from schemas/datasync-meta.sql by the Makefile. */'; \
	  echo 'static const char DS_META_SQL[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(call obj,$(CONSUMER_SRC) $(CLI_SRC)): $(BUILD)/gen/meta_sql.h

$(BUILD)/datasync-consumer: $(call obj,$(CONSUMER_SRC)) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS) $(CONSUMER_LIBS)

# datasync-capture: libdatasync's producer fed from the binlog.
$(BUILD)/datasync-capture: $(call obj,$(CAPTURE_SRC)) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS)

$(BUILD)/datasync: $(call obj,$(CLI_SRC)) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS)

# The capture's unit tests link its modules (all but main).
CAPTURE_LIB_OBJ := $(call obj,$(filter-out capture/main.c,$(CAPTURE_SRC)))
$(call obj,$(wildcard tests/unit/test_capture_*.c)): DS_CFLAGS += -Icapture
$(BUILD)/tests/test_capture_%: $(BUILD)/obj/tests/unit/test_capture_%.o $(CAPTURE_LIB_OBJ) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS) $(CMOCKA_LIBS)

# Test programs link the consumer's and CLI's modules too, so a test can reach them.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(CONSUMER_LIB_OBJ) $(CLI_LIB_OBJ) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS) $(CONSUMER_LIBS) $(CMOCKA_LIBS)

$(BUILD)/itests/%: $(BUILD)/obj/tests/integration/%.o $(call obj,tests/lib/itest.c tests/lib/cluster.c tests/lib/support.c) \
		$(CONSUMER_LIB_OBJ) $(CLI_LIB_OBJ) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS) $(CONSUMER_LIBS) $(CMOCKA_LIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/chaos/%.o $(call obj,tests/lib/support.c) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS)

# The checker links the chaos tools' modules (its view of the SQL-only
# writer and its datasync-capture), before the archives they draw on.
$(BUILD)/tools/chaos_check: $(BUILD)/obj/tests/chaos/chaos_check.o $(call obj,$(CHAOS_LIB_SRC) tests/lib/support.c) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS)

# Examples link the shared library as a host would, through datasync.h only
# (the demo application writes its own rows, hence the MySQL client).
$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB_SO)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -L$(BUILD) -ldatasync -Wl,-rpath,'$$ORIGIN/..' $(SERVER_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(call obj,$(BENCH_LIB_SRC)) $(CONSUMER_LIB_OBJ) $(call obj,tests/lib/support.c) $(SERVER_A) $(LIB_A)
	$(call say,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(DS_LDLIBS) $(CONSUMER_LIBS)

# The .pc file names PREFIX, LIBDIR and INCLUDEDIR: pc-vars changes when they
# do, so `make install PREFIX=...` after a plain `make` installs the right one.
PC_VARS := $(PREFIX):$(LIBDIR):$(INCLUDEDIR):$(DS_VERSION)
$(BUILD)/pc-vars: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PC_VARS)' | cmp -s - $@ || echo '$(PC_VARS)' > $@

$(BUILD)/datasync.pc: include/datasync.pc.in Makefile $(BUILD)/pc-vars
	$(call say,GEN,$@)
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(DS_VERSION)|' \
		-e 's|@LIBS_PRIVATE@|$(LIB_LIBS)|' $< > $@

build-tests: all $(UNIT_BIN) $(ITEST_BIN) $(TOOL_BIN) $(BENCH_BIN)

# The README's test command: unit tests, then the schema agreement check, then
# the integration tests against private RabbitMQ and MariaDB instances.
# On a fresh machine the packages come first: a sub-make then builds with
# the pkg-config flags they bring.
test: deps
	$(Q)$(MAKE) --no-print-directory build-tests
	$(Q)BUILD=$(BUILD) tests/run.sh

# The chaos run with its checker: faults for 120 s (CHAOS_ARGS="--duration
# 300 --seed 42" to change); make test runs a 30 s version. CLUSTER=1: on a
# 3-node RabbitMQ cluster with quorum queues, with member kills (the
# clients' node, a queue leader), restarts and partitions (not in make test:
# it needs four more minutes and three more broker nodes).
chaos: deps
	$(Q)$(MAKE) --no-print-directory build-tests
	$(Q)BUILD=$(BUILD) tests/chaos/run.sh $(if $(filter 1,$(CLUSTER)),--cluster) $(CHAOS_ARGS)

test-unit: build-tests
	$(Q)BUILD=$(BUILD) tests/run.sh unit

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) CAPTURE=$(CAPTURE) scripts/demo.sh

bench: bench-deps all $(BENCH_BIN)
	$(Q)BUILD=$(BUILD) bench/run.sh

deps:
	$(Q)scripts/install-deps.sh

bench-deps:
	$(Q)scripts/install-deps.sh --bench

# The man pages are written with the default paths (/usr/local/...): the
# installed ones name where this install puts things. Longest paths first.
# The systemd units: the capture's only when it is built.
UNITS := packaging/systemd/datasync-consumer@.service \
	$(if $(wildcard capture/main.c),packaging/systemd/datasync-capture@.service)
MAN_PATHS := -e 's|/usr/local/lib/systemd/system|$(SYSTEMDUNITDIR)|g' \
	-e 's|/usr/local/lib/sysusers.d|$(SYSUSERSDIR)|g' \
	-e 's|/usr/local/lib/tmpfiles.d|$(TMPFILESDIR)|g' \
	-e 's|/usr/local/etc|$(SYSCONFDIR)|g' \
	-e 's|/usr/local/sbin|$(SBINDIR)|g' -e 's|/usr/local/bin|$(BINDIR)|g'

# What runs: the programs, the shared library under its soname and the
# example configuration. The Dockerfile's runtime image holds only this.
install-runtime: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(SYSCONFDIR)/datasync
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libdatasync.so.$(DS_VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(if $(wildcard cli/main.c),install -m 755 $(BUILD)/datasync $(DESTDIR)$(BINDIR)/)
	$(if $(wildcard consumer/main.c),install -m 755 $(BUILD)/datasync-consumer $(DESTDIR)$(SBINDIR)/)
	$(if $(wildcard capture/main.c),install -m 755 $(BUILD)/datasync-capture $(DESTDIR)$(SBINDIR)/)
	install -m 644 datasync.conf.example $(DESTDIR)$(SYSCONFDIR)/datasync/datasync.conf.example

# Everything: what runs, then what building against libdatasync needs
# (header, static library, .pc, the -ldatasync link), man pages, systemd files.
install: install-runtime
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libdatasync.so
	install -m 644 include/datasync.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(BUILD)/datasync.pc $(DESTDIR)$(PKGCONFIGDIR)/
	for page in $(wildcard docs/*.[1-8]); do \
		sec=$${page##*.}; install -d $(DESTDIR)$(MANDIR)/man$$sec; \
		sed $(MAN_PATHS) $$page > $(DESTDIR)$(MANDIR)/man$$sec/$${page##*/}; \
		chmod 644 $(DESTDIR)$(MANDIR)/man$$sec/$${page##*/}; done
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	for unit in $(notdir $(UNITS)); do \
		sed -e 's|^ExecStart=/usr/local/sbin/|ExecStart=$(SBINDIR)/|' $(UNIT_NO_NOTIFY) packaging/systemd/$$unit \
			> $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; done
	install -m 644 packaging/sysusers.d/datasync.conf $(DESTDIR)$(SYSUSERSDIR)/datasync.conf
	install -m 644 packaging/tmpfiles.d/datasync.conf $(DESTDIR)$(TMPFILESDIR)/datasync.conf
	# For a DBA to create the metadata tables when the consumer may not.
	install -d $(DESTDIR)$(DATADIR)/datasync
	install -m 644 schemas/datasync-meta.sql $(DESTDIR)$(DATADIR)/datasync/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdatasync.a $(DESTDIR)$(LIBDIR)/libdatasync.so* \
		$(DESTDIR)$(INCLUDEDIR)/datasync.h $(DESTDIR)$(PKGCONFIGDIR)/datasync.pc \
		$(DESTDIR)$(BINDIR)/datasync $(DESTDIR)$(SBINDIR)/datasync-consumer \
		$(DESTDIR)$(SBINDIR)/datasync-capture \
		$(DESTDIR)$(SYSCONFDIR)/datasync/datasync.conf.example \
		$(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(notdir $(UNITS))) \
		$(DESTDIR)$(SYSUSERSDIR)/datasync.conf $(DESTDIR)$(TMPFILESDIR)/datasync.conf \
		$(DESTDIR)$(DATADIR)/datasync/datasync-meta.sql
	-rmdir $(DESTDIR)$(DATADIR)/datasync 2>/dev/null
	for page in $(notdir $(wildcard docs/*.[1-8])); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${page##*.}/$$page; done

FORMAT_FILES = $(COMMON_SRC) $(PRODUCER_SRC) $(CONSUMER_SRC) $(CLI_SRC) $(EXAMPLE_SRC) \
	$(wildcard include/*.h common/*.h producer/*.h consumer/*.h cli/*.h tests/*/*.[ch] bench/*.c bench/lib/*.[ch])
FORMAT_FILES += $(CAPTURE_SRC) $(wildcard capture/*.h)

format:
	clang-format -i $(FORMAT_FILES)

# CI runs this: the committed .clang-format decides layout.
format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD)

.PHONY: all build-tests test test-unit chaos demo bench bench-deps deps install install-runtime uninstall format format-check clean FORCE
FORCE:
.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
