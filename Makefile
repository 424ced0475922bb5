# cso.rds_hardening — every target installs what it is missing and is safe to re-run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON3     ?= python3
VENV_BIN    := $(CURDIR)/$(VENV)/bin
VENV_STAMP  := $(VENV)/.installed
CACHE_DIR   ?= /var/cache/cso-rds-hardening
export PATH := $(VENV_BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/lab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Wheels for Keystone's venv (keystone_db_auth: iam), installed on the hosts without network access;
# tests find them through this variable
KEYSTONE_WHEELS := $(CACHE_DIR)/wheels
KEYSTONE_WHEELS_REQUIREMENTS := roles/keystone_db/files/rds_iam_requirements.txt
RDS_IAM_PLUGIN_DIR := roles/keystone_db/files/rds_iam_sqlalchemy
export CSO_KEYSTONE_WHEELHOUSE := $(KEYSTONE_WHEELS)

# Debian packages for the lab: data plane, hosts, JDBC client, image build.
APT_PACKAGES := make git mariadb-server mariadb-client podman runc debootstrap socat nftables \
	iptables iproute2 uidmap libmariadb-java libmariadbd-dev gcc libc6-dev openjdk-17-jdk-headless haproxy
LAB := $(VENV_BIN)/python -m csolab
PYTEST := $(VENV_BIN)/pytest

# A layer that collects no test fails (pytest exits 5): a lost layer must not pass silently.
define run_pytest
	$(PYTEST) $(1)
endef

.PHONY: help setup system-deps venv keystone-wheels jdbc-drivers test test-unit test-lab test-integration test-hosts test-molecule \
	test-ee lint sanity ansible-lint lab-up lab-up-hosts lab-down lab-status demo build changelog clean

help:
	@echo "make demo        run phase 1 against the lab (sets everything up); PHASE=2 make demo: phases 1 and 2; PHASE=3: 1 to 3"
	@echo "make test        run every test layer (sets everything up)"
	@echo "make lint        ansible-lint (production profile) and ansible-test sanity"
	@echo "make lab-up | lab-up-hosts | lab-down | lab-status"
	@echo "make build       build the collection tarball"

setup: system-deps venv keystone-wheels jdbc-drivers

# The JDBC drivers the cso_db role installs (roles/cso_db/files/jdbc-drivers.lock), each checksum verified
JDBC_CACHE  ?= $(CACHE_DIR)/jars
jdbc-drivers:
	$(PYTHON3) roles/cso_db/files/fetch_jars.py --cache $(JDBC_CACHE) >/dev/null

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(VENV_BIN)/python || $(PYTHON3) -m venv $(VENV)
	$(VENV_BIN)/pip install -q --upgrade pip
	$(VENV_BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

# botocore and its dependencies as pinned (with hashes) for Keystone's Python (3.11, Debian 12),
# downloaded once and kept in $(CACHE_DIR); the plugin's own wheel is built from the role's sources.
keystone-wheels: venv $(KEYSTONE_WHEELS)/.downloaded $(KEYSTONE_WHEELS)/.plugin-built

$(KEYSTONE_WHEELS)/.downloaded: $(KEYSTONE_WHEELS_REQUIREMENTS)
	mkdir -p $(KEYSTONE_WHEELS)
	$(VENV_BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
		--require-hashes -r $(KEYSTONE_WHEELS_REQUIREMENTS) -d $(KEYSTONE_WHEELS)
	touch $@

$(KEYSTONE_WHEELS)/.plugin-built: $(RDS_IAM_PLUGIN_DIR)/pyproject.toml $(RDS_IAM_PLUGIN_DIR)/build_wheel.py \
		$(wildcard $(RDS_IAM_PLUGIN_DIR)/rds_iam_sqlalchemy/*.py)
	mkdir -p $(KEYSTONE_WHEELS)
	$(VENV_BIN)/python $(RDS_IAM_PLUGIN_DIR)/build_wheel.py --out $(KEYSTONE_WHEELS)
	touch $@

# Every layer, the host lab up once for all host layers, then the time table (scripts/run-tests).
test: setup
	PYTHON=$(VENV_BIN)/python scripts/run-tests

test-unit: venv
	$(call run_pytest,tests/unit -q)

test-lab: setup
	$(call run_pytest,tests/lab -q -m "not hosts")

test-integration: setup
	$(call run_pytest,tests/integration -q -m "not hosts")

test-hosts: setup
	$(call run_pytest,tests -q -m hosts)

test-molecule: setup
	PYTHON=$(VENV_BIN)/python scripts/run-molecule

test-ee: venv
	$(call run_pytest,tests/packaging -q)

lint: venv ansible-lint sanity

ansible-lint: venv
	ansible-lint --profile production

sanity: venv
	scripts/run-sanity

demo: setup
	scripts/demo

lab-up: setup
	$(LAB) up

lab-up-hosts: setup
	$(LAB) up --hosts

lab-down: venv
	$(LAB) down

lab-status: venv
	$(LAB) status

build: venv
	ansible-galaxy collection build --force --output-path build/

changelog: venv
	antsibull-changelog release

clean: lab-down
	rm -rf build context tests/output .pytest_cache
