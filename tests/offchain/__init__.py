"""Tests of the off-chain side.

pytest puts ``tests/`` first on ``sys.path`` (``tests/conftest.py`` has no package), so inside a test session the name
``offchain`` is this package, not the project's. Its search path includes the project's package of this checkout, so
``offchain.margin`` and the others resolve here and not through an installed (editable) copy of another checkout.
"""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "offchain"))
