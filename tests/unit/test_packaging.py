"""What `pip install .` gives: every third-party module the package imports is a declared dependency (the core list
for modules imported at load time or by the keeper, the ``risk`` extra for the optional ones), Brownie is not one, and
the ABIs shipped as package data are the build's."""
import ast
import json
import re
import sys
import tomllib
from pathlib import Path

from offchain.chain import CONTRACTS, build_abi

ROOT = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DISTRIBUTION = {"eth_abi": "eth-abi", "eth_account": "eth-account", "eth_utils": "eth-utils", "yaml": "pyyaml"}


def _requirement_names(reqs):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _imports():
    """Top-level third-party modules imported anywhere in offchain/ (optional() calls included)."""
    found = set()
    for path in (ROOT / "offchain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "optional"
                  and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("offchain", "__future__")}


def test_every_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    risk = _requirement_names(project["optional-dependencies"]["risk"])
    imported = {DISTRIBUTION.get(m, m).replace("_", "-").lower() for m in _imports()}
    assert {"web3", "numpy", "scipy", "pydantic"} <= imported, "the walk found too little to mean anything"
    assert imported <= core | risk, f"imported but not declared: {sorted(imported - core - risk)}"
    assert "eth-brownie" not in core and "brownie" not in imported, "the package must not need Brownie"


def test_shipped_abis_are_the_builds():
    """offchain/abi/ is written by `make build` (scripts/export_abis.py); a contract edit without it fails here."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from export_abis import SHIPPED, render

    assert set(CONTRACTS) < set(SHIPPED)
    for name in SHIPPED:
        built = build_abi(ROOT / "build" / "contracts", name)
        shipped = ROOT / "offchain" / "abi" / f"{name}.json"
        assert shipped.read_text() == render(built), f"{shipped} differs from the build: run `make build`"


def _functions(abi: list) -> set[tuple]:
    return {(i["name"], tuple(x["type"] for x in i["inputs"])) for i in abi if i["type"] == "function"}


def test_vault_and_extension_serve_exactly_the_interface():
    """ICrossMarginVault is served by CrossMarginVault and, through its fallback, VaultExtension: together they
    implement every function of the interface and nothing else (the compiler cannot check this for a pair)."""
    build = ROOT / "build" / "contracts"
    spec, vault, ext = (_functions(json.loads((build / f"{n}.json").read_text())["abi"])
                        for n in ("ICrossMarginVault", "CrossMarginVault", "VaultExtension"))
    assert vault | ext == spec, (spec - (vault | ext), (vault | ext) - spec)
    shared = vault & ext  # state getters both halves inherit from VaultBase; the vault answers them itself
    assert shared == {("riskParams", ()), ("oracle", ()), ("settlementToken", ()), ("settlementScale", ()),
                      ("operators", ("address", "address")), ("fundOperators", ("address",)),
                      ("venues", ("address",)), ("badDebt", ()), ("marginConfigPointer", ()),
                      ("optionMarkets", ())}, shared
    assert _functions(build_abi(build, "CrossMarginVault")) == spec
