# The two commands of the README. Both work on a fresh Debian machine with only
# Python: they make the virtual environment, install the project and the
# Debian packages they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DEBS := mosquitto socat
# chromium: the control-room page is tested in headless Chromium (Playwright drives it);
# fonts-wqy-microhei so the Chinese of its screenshots is not empty boxes.
TEST_DEBS := mosquitto influxdb victoria-metrics socat chromium fonts-wqy-microhei

.PHONY: demo test lint typecheck unit docs bench bench-modbus bench-alarms bench-ws bench-access clean venv

demo: $(VENV)/.demo
	./deploy/ensure-debs.sh $(DEMO_DEBS)
	$(BIN)/gateway demo $(DEMO_ARGS)

test: $(VENV)/.dev
	./deploy/ensure-debs.sh $(TEST_DEBS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m gateway.config.docs --check
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

docs: $(VENV)/.dev
	$(BIN)/python -m gateway.config.docs

bench: $(VENV)/.dev
	./deploy/ensure-debs.sh $(TEST_DEBS)
	$(BIN)/python bench/ingest.py

bench-modbus: $(VENV)/.dev
	$(BIN)/python bench/modbus_poll.py

bench-alarms: $(VENV)/.dev
	./deploy/ensure-debs.sh mosquitto
	$(BIN)/python bench/alarm_latency.py

bench-ws: $(VENV)/.dev
	./deploy/ensure-debs.sh mosquitto
	$(BIN)/python bench/ws_fanout.py

bench-access: $(VENV)/.dev
	./deploy/ensure-debs.sh socat
	$(BIN)/python bench/access.py

# python3 -m venv needs Debian's python3-venv; install it when it is missing.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  ./deploy/ensure-debs.sh python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo: $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e '.[all]'
	touch $@

$(VENV)/.dev: $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
