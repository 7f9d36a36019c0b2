"""Write the ABIs the off-chain package needs into ``offchain/abi/<name>.json`` (package data) from Brownie's build
artifacts, so that an installed ``xmargin`` runs without a Brownie build folder. ``make build`` runs it after
compiling; ``tests/unit/test_packaging.py`` fails when the shipped ABIs differ from the build's.

    python scripts/export_abis.py [BUILD_DIR]      # default build/contracts
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from offchain.chain import CONTRACTS, build_abi  # noqa: E402
from offchain.errors import DeploymentError  # noqa: E402

# the protocol's contracts, and the local test token and mock feed the sandbox commands drive
SHIPPED = (*CONTRACTS, "TestToken", "ChainlinkFeed")

OUT = ROOT / "offchain" / "abi"


def render(abi: list) -> str:
    """The file text of one ABI (stable: the same ABI gives the same bytes)."""
    return json.dumps(abi, indent=1, sort_keys=True) + "\n"


def main(build: Path) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "__init__.py").write_text('"""Contract ABIs shipped with the package (written by scripts/export_abis.py)."""\n')
    for name in SHIPPED:
        try:
            abi = build_abi(build, name)
        except DeploymentError as e:
            raise SystemExit(str(e)) from None
        (OUT / f"{name}.json").write_text(render(abi))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "contracts")
