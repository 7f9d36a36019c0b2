"""Fixtures of the adversarial catalogue (docs/SECURITY.md lists every case); helpers are in helpers.py."""
from __future__ import annotations

import pytest

from tests.adversarial.helpers import USDC, Ledger, deposit
from tests.conftest import Trader


@pytest.fixture
def ledger(protocol):
    """ledger(account_ids, addresses, tokens=None) -> Ledger: records every balance that an attack could move.
    Use as `with ledger(ids, addrs) as l: <attack>` then `l.assert_unchanged()`."""
    return lambda ids=(), addresses=(), tokens=None: Ledger(protocol, ids, addresses, tokens)


@pytest.fixture(scope="module")
def rich(protocol, deployer):
    """A well-capitalised counterparty (5,000,000 USDC) for every trade a test needs."""
    t = Trader(protocol.vault)
    deposit(protocol, deployer, t.id, protocol.usdc, 5_000_000 * USDC)
    return t
