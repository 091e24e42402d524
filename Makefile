# The README's commands. Each sets up what a fresh Debian/Ubuntu machine lacks, then does its job:
#   make run    the packed dyno on embedded defaults (SQLite, a folder broker): no server to install
#   make test   every test: app, dyno behaviour, Terraform checks, browser demo, Ansible on a systemd VPS
SHELL := /bin/bash
.DEFAULT_GOAL := run
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 5000
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# apt waits for another apt (a second checkout's make, unattended-upgrades) instead of failing on its lock.
APT_GET := $(SUDO) apt-get -o DPkg::Lock::Timeout=600
# Debian packages the tests drive for real (the Molecule host's podman and debootstrap come from its own script;
# curl runs terraform/scripts/heroku-api.sh; wrk drives the benchmark's smoke run).
TEST_PACKAGES := redis-server postgresql openssl git chromium curl wrk

.PHONY: run test lint test-app test-vps system-packages checkov terraform-source terraform-tools bench

$(VENV)/.run-deps: requirements.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: requirements-dev.txt $(VENV)/.run-deps
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

system-packages:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi
	@# The tests start their own Redis and PostgreSQL on free ports; Debian's services are not needed.
	@for service in redis-server postgresql; do \
	  if command -v systemctl >/dev/null && systemctl is-active -q $$service 2>/dev/null; then \
	    $(SUDO) systemctl disable --now $$service >/dev/null 2>&1 || true; fi; done

# The command of a Procfile process type, read by the project's one Procfile reader (never restated here).
procfile = $$(python -m app.procfile Procfile $(1))

# Heroku's sequence, locally: the build (collectstatic), the release phase, then the `web` process type.
run: $(VENV)/.run-deps
	@cd $(CURDIR) && export PATH=$(BIN):$$PATH && \
	  python manage.py collectstatic --noinput >/dev/null && \
	  bash -c "$(call procfile,release)" && \
	  echo && echo "Double Boiler is starting at http://localhost:$(PORT)/  (Ctrl-C stops it)" && echo && \
	  PORT=$(PORT) exec bash -c "$(call procfile,web)"

# One after the other: the VPS verifiers drive load through the router while they deploy, and the app's
# tests beside them starved the 2-core machine (a 3 s database connect timed out during a deploy).
# (a recipe, not prerequisites, so `make -j test` keeps the order too).
test:
	$(MAKE) lint
	$(MAKE) test-app
	$(MAKE) test-vps

# Python lint and format (rules in ruff.toml) and shellcheck on the shell scripts.
lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/shellcheck .ci/run $$(git ls-files '*.sh')

test-app: system-packages $(VENV)/.dev-deps $(CHECKOV_VENV)/.deps terraform-tools
	cd $(CURDIR) && PATH=$(BIN):$$PATH python -m pytest

# The mini benchmark: the packed dyno against its peers (bare gunicorn, the seed-style stack, the split layout)
# and Celery's own ceiling, driven by wrk and a job load process; writes bench-report/report.md, report.json
# and bench.svg (about 5 minutes on 2 cores). `make test` runs a smoke run of it (tests/test_bench_smoke.py).
BENCH_PACKAGES := wrk redis-server
bench: $(VENV)/.dev-deps
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq --no-install-recommends $$missing; fi
	cd $(CURDIR) && PATH=$(BIN):$$PATH python -m bench

# The Ansible roles on real systemd hosts (rootful Podman): the default scenario on Debian 12 and split on
# Debian 13, run side by side (most of their time is spent waiting on apt, pip and systemd, not on the CPU),
# each with its own log in artifacts/ (printed when it fails). Images are built once and cached by content.
# A laptop without root skips with the reason; CI (CI=true) never skips: the image script fails loudly
# instead. The commit is pinned once, so a commit landing mid-run cannot break the idempotence check.
# Ansible reaches the hosts over ssh (molecule/shared/prepare.yml): the ssh client comes from Debian.
VPS_SCENARIOS := default split
VPS_PACKAGES := openssh-client
test-vps: $(VENV)/.dev-deps
	@if [ "$$(id -u)" != 0 ] && [ -z "$$CI" ]; then \
	  echo "SKIPPED test-vps: Molecule's Podman hosts need root (sudo make test-vps); CI runs them."; exit 0; fi; \
	missing=$$(for p in $(VPS_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq --no-install-recommends $$missing || exit 1; fi; \
	cd $(CURDIR) && export PATH=$(BIN):$$PATH && \
	ansible-lint ansible/ molecule/ && yamllint --strict ansible/ molecule/ .config/molecule/ && \
	molecule/build-test-image.sh --suite bookworm && molecule/build-test-image.sh --suite trixie && \
	export DOUBLE_BOILER_SOURCE_REF=$$(git rev-parse HEAD) && mkdir -p artifacts && \
	pids=""; for scenario in $(VPS_SCENARIOS); do \
	  { began=$$SECONDS; rm -f artifacts/playbooks-$$scenario.log; \
	    molecule test -s $$scenario > artifacts/molecule-$$scenario.log 2>&1; status=$$?; \
	    echo "molecule test -s $$scenario: exit $$status after $$((SECONDS - began)) s (log: artifacts/molecule-$$scenario.log)"; \
	    exit $$status; } & pids="$$pids $$!"; \
	done; \
	failed=0; for pid in $$pids; do wait $$pid || failed=1; done; \
	for scenario in $(VPS_SCENARIOS); do grep -a -E "➜ .*(Executing|Executed)|real|passed|failed" \
	  artifacts/molecule-$$scenario.log | tail -n 40 | sed "s/^/[$$scenario] /"; done; \
	if [ $$failed != 0 ]; then for scenario in $(VPS_SCENARIOS); do \
	  echo "===== artifacts/molecule-$$scenario.log (last 300 lines)"; tail -n 300 artifacts/molecule-$$scenario.log; done; \
	  for scenario in $(VPS_SCENARIOS); do \
	    echo "===== what failed in $$scenario: the failed checks and their assertions (CI shows the end of its log)"; \
	    grep -a -v RETRYING artifacts/molecule-$$scenario.log | \
	      grep -a -E -A2 " FAILED|│.{0,8} E  |\.py:[0-9]+: [A-Za-z]*Error|fatal: \[" | head -n 80; done; \
	  exit 1; fi

# checkov pins packaging<24, which pytest 9 (requirements-dev.txt) cannot share: it gets its own virtualenv.
$(CHECKOV_VENV)/.deps: terraform/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r terraform/requirements-checkov.txt
	@touch $@

# Terraform for the tests (tests/terraform_tools.py): terraform on PATH, else OpenTofu built from its Go module;
# the providers built from the Go module proxy into a filesystem mirror under ~/.cache/double-boiler, once per
# version. It says which module it could not have; the tests that need it then skip, naming it.
terraform-tools: $(VENV)/.run-deps
	cd $(CURDIR) && PATH=$(BIN):$$PATH:/usr/local/go/bin python -m tests.terraform_tools

# Static analysis of terraform/, offline (no Prisma Cloud account, no policy download).
checkov: $(CHECKOV_VENV)/.deps
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --directory terraform \
	  --framework terraform secrets --skip-download --compact --quiet

# The tarball Terraform's heroku_build uploads: the committed HEAD without the tooling (.gitattributes).
terraform-source:
	git archive --format=tar.gz --output terraform/source.tar.gz HEAD
