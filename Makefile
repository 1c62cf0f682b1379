# varpod: `make demo` sets up and runs the main job, `make test` runs the tests.
# Both work on a fresh Debian 12 machine as root.

VENV    ?= .venv
PY      := $(VENV)/bin/python
# Debian's own python3 where it is 3.11 or later (built with PGO and LTO: it starts ~1 ms sooner
# and runs the daemon's Python 10-20 % faster than an unoptimised build earlier on PATH).
PYTHON  ?= $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
             && echo /usr/bin/python3 || echo python3)
VARPOD  := $(VENV)/bin/varpod
ROOTFS  ?= rootfs
IMAGE   ?= busybox-image.tar
SOCKET  ?= /run/varpod/varpod.sock
APT_PKGS := runc busybox-static python3-venv python3-dev iproute2 catatonit skopeo umoci docker-registry \
            containernetworking-plugins aardvark-dns iptables

.PHONY: deps setup dev demo test lint bench stop-daemon clean

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# A regular (not editable) install, as users get it: compiled bytecode and no
# import hook at start-up (the editable one costs the CLI ~11 ms per command).
# It is redone whenever the package's sources change.
PKG_SOURCES := pyproject.toml setup.py $(wildcard __init__.py core/*.py core/*/*.py rpc/*.py rpc/cli/*.py rpc/interfaces/* native/*.py native/src/*)

$(VENV)/.installed: $(PKG_SOURCES)
	$(MAKE) deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	rm -rf build varpod.egg-info
	$(PY) -m pip install -q '.[test]'
	rm -rf build varpod.egg-info
	# Builds run isolated (pyproject's build-system); the venv's own setuptools only puts a
	# .pth hook in every start-up: ~0.6 ms of each CLI command.
	$(PY) -m pip uninstall -q -y setuptools
	$(PY) -c 'import varpod.native as n; assert n.IMPLEMENTATION == "c", n.IMPORT_ERROR'
	touch $@

# For working on varpod itself: edits take effect without reinstalling.
dev: deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed

setup: deps $(VENV)/.installed

$(ROOTFS)/bin/busybox: | setup
	$(PY) tests/mkrootfs.py $(ROOTFS)

# The image the demo loads: busybox-static as an oci-archive, written offline (no registry
# is needed; `varpod pull` takes the same image from one).
$(IMAGE): | setup
	$(PY) tests/mkimage.py $(IMAGE)

# A daemon on its embedded defaults (/var/lib/varpod, /run/varpod), an image loaded,
# a container of it, and its logs streamed as they are written. The daemon keeps
# running afterwards for you to try the CLI; `make stop-daemon` stops it.
demo: setup $(ROOTFS)/bin/busybox $(IMAGE)
	@if ! $(VARPOD) --socket $(SOCKET) info >/dev/null 2>&1; then \
		echo "starting varpod serve (log: /tmp/varpod-serve.log)"; \
		setsid $(VARPOD) serve >/tmp/varpod-serve.log 2>&1 < /dev/null & \
		for i in $$(seq 100); do $(VARPOD) info >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	$(VARPOD) info
	$(VARPOD) load -i $(IMAGE)
	@$(VARPOD) rm -f demo >/dev/null 2>&1 || true
	$(VARPOD) run -d --name demo localhost/busybox /bin/sh -c \
		'for i in 1 2 3 4 5; do echo "hello from $$(hostname), line $$i"; sleep 0.4; done; echo done >&2'
	$(VARPOD) logs -f demo
	$(VARPOD) ps -a
	$(VARPOD) run --rm localhost/busybox /bin/echo hi
	$(VARPOD) rm demo

# The daemon `make demo` started, by the pid it wrote under its run root; never by name
# (a pattern also matches other users' daemons). A pid that is no longer a varpod
# daemon (a stale file after a crash, the pid reused) is left alone. Gone means no
# command line: exited, even if its parent has not reaped it yet.
RUN_ROOT ?= /run/varpod
stop-daemon:
	@pidfile=$(RUN_ROOT)/varpod.pid; \
	if [ ! -f $$pidfile ]; then echo "no varpod daemon to stop: $$pidfile is missing"; exit 0; fi; \
	pid=$$(cat $$pidfile); \
	if ! tr '\0' ' ' < /proc/$$pid/cmdline 2>/dev/null | grep -q 'varpod.* serve'; then \
		echo "$$pidfile is stale: pid $$pid is not a varpod daemon; removed"; rm -f $$pidfile; exit 0; fi; \
	kill -TERM $$pid; \
	alive() { [ -n "$$(tr -d '\0' < /proc/$$pid/cmdline 2>/dev/null)" ]; }; \
	for i in $$(seq 200); do alive || break; sleep 0.1; done; \
	if alive; then echo "varpod daemon $$pid did not stop within 20 s"; exit 1; fi; \
	echo "stopped the varpod daemon (pid $$pid)"

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

# Every figure of the README's performance section, from a fresh clone: the tables
# go to the terminal, one JSON object per benchmark to $(BENCH_OUT)/. About 45 min.
BENCH_OUT ?= bench-results
bench: setup
	mkdir -p $(BENCH_OUT)
	$(PY) benchmarks/bench_lifecycle.py --json > $(BENCH_OUT)/lifecycle.json
	$(PY) benchmarks/bench_streams.py --runs 5 --json > $(BENCH_OUT)/streams.json
	$(PY) benchmarks/bench_concurrency.py --json > $(BENCH_OUT)/concurrency.json
	$(PY) benchmarks/bench_copypaths.py --json > $(BENCH_OUT)/copypaths.json
	$(PY) benchmarks/bench_native.py --json > $(BENCH_OUT)/native.json
	$(PY) benchmarks/soak.py --json > $(BENCH_OUT)/soak.json
	$(PY) benchmarks/bench_images.py --json > $(BENCH_OUT)/images.json
	$(PY) benchmarks/bench_fs.py --json > $(BENCH_OUT)/fs.json
	$(PY) benchmarks/bench_net.py --json > $(BENCH_OUT)/net.json
	$(PY) benchmarks/bench_pods.py --json > $(BENCH_OUT)/pods.json

clean:
	rm -rf build *.egg-info native/_streamio*.so $(VENV)
