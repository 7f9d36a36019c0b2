"""Gas of two lending peers, Morpho Blue and Aave v3, measured on the same chain as xmargin's ``make gas``.

    brownie run scripts/bench/gas_peers.py --network ganache-cli      (or: make gas-peers)

Compiles each peer from its npm sources with solc-js of its own version and its own settings
(``scripts/bench/peers/compile.js``; outputs cached in ``.cache/peers/`` by input hash):

  * Morpho Blue 1.0.0 (``@morpho-org/morpho-blue``): solc 0.8.19, via-IR, optimizer 999,999 runs, EVM paris, as its
    repository's foundry.toml (the package ships no compiler config);
  * Aave v3 core 1.19.3 (``@aave/core-v3``, protocol v3.0.2): solc 0.8.10, optimizer 100,000 runs, EVM london, as the
    package's own build-info.

Deploys them next to xmargin (``deploy_local``) on xmargin's test tokens (WBTC 8 decimals, WETH 18, USDC 6: the same
``TestToken`` for every protocol) and its Chainlink mock feeds (BTC/USD and ETH/USD, 8 decimals; one more mock at
1.00 for USDC/USD, which Aave's oracle needs):

  * Morpho Blue: ``Morpho`` with the package's ``IrmMock`` (utilisation as the APR; pure: the package has no production
    IRM; the production AdaptiveCurveIrm also reads and writes its rate at target and emits an event, an estimated
    +8,000 to +10,000 gas on each call that accrues interest: ``withdrawCollateral`` and ``liquidate``, not
    ``supplyCollateral``), and ``ChainlinkOracleAdapter`` (one BTC/USD feed read as Morpho's ChainlinkOracle reads
    its base feed, USDC taken at 1 USD); one market, WBTC collateral, USDC loan, LLTV 86%, no fee.
  * Aave v3: PoolAddressesProvider, ACLManager, Pool behind its InitializableImmutableAdminUpgradeabilityProxy (made by
    ``setPoolImpl``, as on mainnet; its libraries deployed and linked here), PoolConfigurator behind its proxy,
    AaveOracle over the Chainlink mocks (USD base, 8 decimals), reserves WBTC, WETH and USDC initialised through the
    configurator's ``initReserves`` (AToken, VariableDebtToken and StableDebtToken proxies), one
    DefaultReserveInterestRateStrategy per reserve, supply and borrow caps, reserve factors and a 10% liquidation
    protocol fee (``RESERVES``, mainnet-like); no RewardsController (it is in the periphery package, not in core:
    the incentives controller is the zero address, so token mints, burns and transfers make no incentives call), no
    eMode, no isolation mode, no price oracle sentinel (as on Ethereum).

Every reserve and the Morpho market have borrowers, so interest accrues in every call that accrues it.

Measurement, as ``scripts/bench/gas.py`` (``tx.gas_used``, which includes the 21,000 intrinsic gas and calldata; views
by ``eth_estimateGas`` of an ``eth_call``, which includes it too), under its conventions:
  * every measured transaction is a separate transaction, so it starts cold (EIP-2929), and chain time moves ``LATER``
    seconds before it, so each reserve or market it touches accrues interest inside it (Morpho's ``supplyCollateral``
    does not accrue interest at all, by design);
  * the actor already holds the token and gave a finite allowance (written on every pull); the pool or Morpho already
    holds the token; recipients of withdrawals and liquidations already hold the token they get (and Aave's treasury
    its aToken);
  * top-ups and withdrawals are by an account that already has collateral and an open borrow; first deposits by an
    account new to the protocol that already holds the token;
  * liquidations are partial, seizing about 20% of a collateral, after the prices were moved down until the position
    is just liquidatable (health ``TARGET_HEALTH``: Aave's health factor, Morpho's LLTV x collateral / debt); the
    liquidator already holds USDC; Aave's liquidation takes WETH for USDC, ``receiveAToken`` false, from an account of
    2 collaterals (WBTC, WETH) and 1 debt (USDC).

Writes ``scripts/bench/results/gas_peers.json`` (a flat object of integers) and logs a table; ``make gas-peers`` then
rewrites the README's and docs/gas.md's peer tables from it and gas.json (``scripts/bench/gas_table.py``).
"""
from __future__ import annotations

import json
import logging
import subprocess
import threading
import warnings
from fractions import Fraction
from pathlib import Path

from brownie import ZERO_ADDRESS, ChainlinkFeed, Contract, chain, web3
from eth_abi import encode

from scripts.bench.gas import LATER, Figures
from scripts.deploy import FEED_DECIMALS, deploy_local

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gas_peers.json"
COMPILE = HERE / "peers" / "compile.js"
WAD, RAY = 10**18, 10**27
USDC, WBTC, WETH = 10**6, 10**8, 10**18
TARGET_HEALTH = Fraction(97, 100)  # liquidations: prices moved until health is 0.97 (just liquidatable)
SEIZE_SHARE = Fraction(1, 5)  # liquidations seize about 20% of a collateral
MORPHO_LLTV = 86 * WAD // 100
# Aave reserves (mainnet-like): LTV, liquidation threshold, liquidation bonus (bps, 10,000 = none), reserve factor,
# supply and borrow caps (whole tokens), interest rate strategy (optimal usage, base, slope 1, slope 2 of the variable
# rate, as fractions; the stable rate is disabled).
AAVE_RESERVES = {
    "WBTC": (7000, 7500, 10650, 2000, 40_000, 28_000, (Fraction(45, 100), 0, Fraction(4, 100), 3)),
    "WETH": (8000, 8250, 10500, 1500, 1_800_000, 1_400_000, (Fraction(80, 100), 0, Fraction(38, 1000), Fraction(8, 10))),
    "USDC": (7700, 7900, 10450, 1000, 2_000_000_000, 1_500_000_000,
             (Fraction(90, 100), 0, Fraction(4, 100), Fraction(6, 10))),
}
LIQUIDATION_PROTOCOL_FEE = 1000  # 10% of the bonus to the treasury, as on mainnet
ORDER = ["morpho_supply_collateral", "morpho_supply_collateral_first", "morpho_withdraw_collateral", "morpho_liquidate",
         "aave_supply", "aave_supply_first", "aave_account_data_2_1", "aave_withdraw", "aave_liquidation_call"]


# ---------------------------------------------------------------------------------------------- compile and deploy
def compile_peers(*names: str) -> dict[str, dict]:
    """The compiled contracts of each peer: ``{peer: {name: {"abi", "bytecode", "linkReferences"}}}``."""
    out = subprocess.run(["node", str(COMPILE), *names], check=True, capture_output=True, text=True).stdout
    return {peer: json.loads(Path(path).read_text())["contracts"] for peer, path in json.loads(out).items()}


def link(bytecode: str, references: dict, libraries: dict[str, str]) -> str:
    """``bytecode`` with each library placeholder replaced by that library's address from ``libraries``."""
    for libs in references.values():
        for lib, spots in libs.items():
            if lib not in libraries:
                raise KeyError(f"library {lib} is not deployed yet")
            for spot in spots:
                start = 2 * spot["start"]
                bytecode = bytecode[:start] + libraries[lib][2:].lower() + bytecode[start + 2 * spot["length"]:]
    return bytecode


def deploy(build: dict, name: str, *args, sender, libraries: dict[str, str] | None = None):
    """Deploy contract ``name`` of a peer's build with constructor ``args``; a Brownie ``Contract`` at it."""
    c = build[name]
    ctor = next((x for x in c["abi"] if x["type"] == "constructor"), {"inputs": []})
    data = link(c["bytecode"], c["linkReferences"], libraries or {}) + \
        encode([i["type"] for i in ctor["inputs"]], list(args)).hex()
    tx = sender.transfer(data="0x" + data, silent=True)
    if not tx.contract_address:
        raise RuntimeError(f"deploying {name} failed")
    return Contract.from_abi(name, tx.contract_address, c["abi"])


def at(build: dict, name: str, address: str):
    return Contract.from_abi(name, address, build[name]["abi"])


class Peers(Figures):
    def __init__(self) -> None:
        super().__init__(RESULTS)
        self.tx = {"from": self.deployer}
        d = deploy_local(self.deployer, seed_fund=False)
        self.usdc, self.wbtc, self.weth = d.usdc, d.tokens[0], d.tokens[1]
        self.btc_feed, self.eth_feed = d.feeds[0], d.feeds[1]
        self.usdc_feed = ChainlinkFeed.deploy(FEED_DECIMALS, 10**FEED_DECIMALS, self.tx)
        self.builds = compile_peers("morpho", "aave")

    # ------------------------------------------------------------------ helpers
    def actor(self, label: str, holdings: dict | None = None):
        """A funded account with a fixed key (same addresses, so same calldata, on every run), holding ``holdings``
        ``{token: amount}``."""
        owner = self.key(f"peers {label}")
        self.deployer.transfer(owner, "1 ether", silent=True)
        for token, amount in (holdings or {}).items():
            token.mint(owner, amount, self.tx)
        return owner

    def measure(self, key: str, what: str, call, *args, sender) -> None:
        """One cold transaction after ``LATER`` seconds; its ``gas_used`` under ``key``."""
        chain.sleep(LATER)
        tx = call(*args, {"from": sender})
        if tx.status != 1:
            raise RuntimeError(f"{key}: the measured transaction reverted")
        self.record(key, tx.gas_used, what)

    @staticmethod
    def scale_feed(feed, factor: Fraction, sender) -> None:
        feed.updateAnswer(int(feed.latestRoundData()[1] * factor), {"from": sender})

    # ------------------------------------------------------------------ Morpho Blue
    def setup_morpho(self) -> None:
        b, tx = self.builds["morpho"], self.tx
        self.morpho = deploy(b, "Morpho", self.deployer.address, sender=self.deployer)
        irm = deploy(b, "IrmMock", sender=self.deployer)
        scale = 10 ** (36 + 6 - 8 - FEED_DECIMALS)  # loan decimals - collateral decimals - feed decimals
        oracle = deploy(b, "ChainlinkOracleAdapter", self.btc_feed.address, scale, sender=self.deployer)
        self.morpho.enableIrm(irm, tx)
        self.morpho.enableLltv(MORPHO_LLTV, tx)
        self.market = (self.usdc.address, self.wbtc.address, oracle.address, irm.address, MORPHO_LLTV)
        self.market_id = web3.keccak(encode(["address", "address", "address", "address", "uint256"], self.market))
        self.morpho.createMarket(self.market, tx)
        lender = self.actor("morpho lender", {self.usdc: 10_000_000 * USDC})
        self.usdc.approve(self.morpho, 10_000_000 * USDC, {"from": lender})
        self.morpho.supply(self.market, 10_000_000 * USDC, 0, lender, b"", {"from": lender})
        # The measured borrower (top-up, withdrawal) at 50% LTV, and the one liquidated, at 84%: 1 WBTC each.
        self.borrower = self.morpho_borrower("morpho borrower", Fraction(50, 100))
        self.victim = self.morpho_borrower("morpho victim", Fraction(84, 100))

    def morpho_borrower(self, label: str, ltv: Fraction):
        owner = self.actor(label, {self.wbtc: 2 * WBTC})
        self.wbtc.approve(self.morpho, WBTC, {"from": owner})
        self.morpho.supplyCollateral(self.market, WBTC, owner, b"", {"from": owner})
        self.wbtc.approve(self.morpho, WBTC // 2, {"from": owner})  # finite: half of what it still holds
        value = self.btc_feed.latestRoundData()[1] * USDC // 10**FEED_DECIMALS
        self.morpho.borrow(self.market, int(value * ltv), 0, owner, owner, {"from": owner})
        return owner

    def bench_morpho(self) -> None:
        m, b = self.morpho, self.borrower
        self.measure("morpho_supply_collateral", "supplyCollateral: top-up of 0.01 WBTC by a borrower (50% LTV)",
                     m.supplyCollateral, self.market, WBTC // 100, b, b"", sender=b)
        new = self.actor("morpho first", {self.wbtc: WBTC})
        self.wbtc.approve(m, WBTC // 2, {"from": new})
        self.measure("morpho_supply_collateral_first", "supplyCollateral: 0.01 WBTC, first in the market (new slot)",
                     m.supplyCollateral, self.market, WBTC // 100, new, b"", sender=new)
        self.measure("morpho_withdraw_collateral",
                     "withdrawCollateral: 0.01 WBTC with the borrow open (accrual, oracle, health check)",
                     m.withdrawCollateral, self.market, WBTC // 100, b, b, sender=b)
        self.bench_morpho_liquidation()

    def bench_morpho_liquidation(self) -> None:
        m, victim = self.morpho, self.victim
        answer = self.btc_feed.latestRoundData()[1]
        _, borrow_shares, collateral = m.position(self.market_id, victim)
        total_borrow_assets, total_borrow_shares = m.market(self.market_id)[2:4]
        debt = Fraction(borrow_shares * total_borrow_assets, total_borrow_shares)
        value = Fraction(collateral * answer * USDC, WBTC * 10**FEED_DECIMALS)  # in USDC units
        health = value * Fraction(MORPHO_LLTV, WAD) / debt
        if health <= 1:
            raise RuntimeError("the Morpho position is liquidatable before the price move")
        self.scale_feed(self.btc_feed, TARGET_HEALTH / health, self.deployer)
        liquidator = self.actor("morpho liquidator", {self.usdc: 100_000 * USDC, self.wbtc: WBTC})
        self.usdc.approve(m, 50_000 * USDC, {"from": liquidator})
        seized = int(collateral * SEIZE_SHARE)
        self.measure("morpho_liquidate", "liquidate: seize 20% of 1 WBTC at health 0.97 (accrual, oracle, repay)",
                     m.liquidate, self.market, victim, seized, 0, b"", sender=liquidator)
        self.btc_feed.updateAnswer(answer, self.tx)  # Aave starts from the original prices

    # ------------------------------------------------------------------ Aave v3
    def setup_aave(self) -> None:
        b, tx, me = self.builds["aave"], self.tx, self.deployer
        provider = deploy(b, "PoolAddressesProvider", "xmargin peers", me.address, sender=me)
        provider.setACLAdmin(me, tx)
        acl = deploy(b, "ACLManager", provider.address, sender=me)
        provider.setACLManager(acl, tx)
        acl.addPoolAdmin(me, tx)
        libs: dict[str, str] = {}
        for lib in ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic",
                    "FlashLoanLogic", "ConfiguratorLogic"):  # FlashLoanLogic links BorrowLogic
            libs[lib] = deploy(b, lib, sender=me, libraries=libs).address
        pool_impl = deploy(b, "Pool", provider.address, sender=me, libraries=libs)
        pool_impl.initialize(provider, tx)  # as the mainnet deployment does with its implementation
        provider.setPoolImpl(pool_impl, tx)
        self.pool = at(b, "Pool", provider.getPool())
        provider.setPoolConfiguratorImpl(deploy(b, "PoolConfigurator", sender=me, libraries=libs), tx)
        configurator = at(b, "PoolConfigurator", provider.getPoolConfigurator())
        tokens = {"WBTC": (self.wbtc, self.btc_feed), "WETH": (self.weth, self.eth_feed),
                  "USDC": (self.usdc, self.usdc_feed)}
        oracle = deploy(b, "AaveOracle", provider.address, [t.address for t, _ in tokens.values()],
                        [f.address for _, f in tokens.values()], ZERO_ADDRESS, ZERO_ADDRESS, 10**FEED_DECIMALS,
                        sender=me)
        provider.setPriceOracle(oracle, tx)
        impls = [deploy(b, name, self.pool.address, sender=me).address
                 for name in ("AToken", "StableDebtToken", "VariableDebtToken")]
        self.treasury = self.actor("aave treasury", {self.weth: 2 * WETH})
        inputs = []
        for symbol, (token, _) in tokens.items():
            optimal, base, slope1, slope2 = (int(x * RAY) for x in AAVE_RESERVES[symbol][6])
            strategy = deploy(b, "DefaultReserveInterestRateStrategy", provider.address, optimal, base, slope1,
                              slope2, 0, 0, 0, 0, 0, sender=me)
            inputs.append((*impls, token.decimals(), strategy.address, token.address, self.treasury.address,
                           ZERO_ADDRESS, f"Aave {symbol}", f"a{symbol}", f"Aave variable debt {symbol}",
                           f"variableDebt{symbol}", f"Aave stable debt {symbol}", f"stableDebt{symbol}", b""))
        configurator.initReserves(inputs, tx)
        for symbol, (token, _) in tokens.items():
            ltv, threshold, bonus, factor, supply_cap, borrow_cap, _ = AAVE_RESERVES[symbol]
            configurator.configureReserveAsCollateral(token, ltv, threshold, bonus, tx)
            configurator.setReserveBorrowing(token, True, tx)
            configurator.setReserveFactor(token, factor, tx)
            configurator.setSupplyCap(token, supply_cap, tx)
            configurator.setBorrowCap(token, borrow_cap, tx)
            configurator.setLiquidationProtocolFee(token, LIQUIDATION_PROTOCOL_FEE, tx)
        self.a_weth = at(b, "AToken", self.pool.getReserveData(self.weth)[8])
        # Liquidity in every reserve, and borrows in every reserve (so each accrues interest).
        lp = self.actor("aave lp", {self.wbtc: 100 * WBTC, self.weth: 2_000 * WETH, self.usdc: 10_000_000 * USDC})
        for token, amount in ((self.wbtc, 100 * WBTC), (self.weth, 2_000 * WETH), (self.usdc, 10_000_000 * USDC)):
            self.aave_supply(lp, token, amount)
        self.pool.borrow(self.wbtc, 10 * WBTC, 2, 0, lp, {"from": lp})
        self.pool.borrow(self.weth, 200 * WETH, 2, 0, lp, {"from": lp})
        self.aave_supply(self.treasury, self.weth, WETH)  # the treasury already holds aWETH
        # A day of interest, then one accruing touch of each reserve: its accrued-to-treasury amount is not 0, as on
        # mainnet between two mintToTreasury calls. Without it, whether the first measured call of a reserve created
        # that slot (20,000 gas) hung on seconds of wall-clock time between runs (aave_supply: 159,061 or 176,161).
        chain.sleep(86_400)
        for token, amount in ((self.wbtc, WBTC // 100), (self.weth, WETH // 100), (self.usdc, 100 * USDC)):
            token.mint(lp, amount, tx)
            self.aave_supply(lp, token, amount)
        # The measured account (2 collaterals, 1 debt; 50% of its borrowing power) and the one liquidated (98%).
        self.user = self.aave_account("aave user", Fraction(50, 100))
        self.victim_aave = self.aave_account("aave victim", Fraction(98, 100))

    def aave_supply(self, owner, token, amount: int) -> None:
        token.approve(self.pool, amount, {"from": owner})
        self.pool.supply(token, amount, owner, 0, {"from": owner})

    def aave_account(self, label: str, share: Fraction):
        """An account holding WBTC and WETH worth 30,000 USD each in Aave, borrowing `share` of its power in USDC."""
        btc = 30_000 * WBTC * 10**FEED_DECIMALS // self.btc_feed.latestRoundData()[1]
        eth = 30_000 * WETH * 10**FEED_DECIMALS // self.eth_feed.latestRoundData()[1]
        owner = self.actor(label, {self.wbtc: 2 * btc, self.weth: 2 * eth})
        self.aave_supply(owner, self.wbtc, btc)
        self.aave_supply(owner, self.weth, eth)
        available = self.pool.getUserAccountData(owner)[2]  # base currency, 8 decimals
        self.pool.borrow(self.usdc, int(available * share) * USDC // 10**FEED_DECIMALS, 2, 0, owner, {"from": owner})
        return owner

    def bench_aave(self) -> None:
        p, user = self.pool, self.user
        self.weth.approve(p, WETH, {"from": user})  # finite
        self.measure("aave_supply", "supply: top-up of 0.1 WETH by an account of 2 collaterals + 1 debt",
                     p.supply, self.weth, WETH // 10, user, 0, sender=user)
        new = self.actor("aave first", {self.weth: WETH})
        self.weth.approve(p, WETH // 2, {"from": new})
        self.measure("aave_supply_first", "supply: 0.1 WETH by an account new to the pool (enabled as collateral)",
                     p.supply, self.weth, WETH // 10, new, 0, sender=new)
        chain.sleep(LATER)
        chain.mine()
        self.record("aave_account_data_2_1", self.view_gas(p, "getUserAccountData", user),
                    "getUserAccountData: 2 collaterals (WBTC, WETH) + 1 debt (USDC); 3 oracle reads; estimate_gas")
        self.measure("aave_withdraw", "withdraw: 0.1 WETH with the USDC borrow open (health factor check)",
                     p.withdraw, self.weth, WETH // 10, user, sender=user)
        self.bench_aave_liquidation()

    def bench_aave_liquidation(self) -> None:
        p, victim = self.pool, self.victim_aave
        health = Fraction(p.getUserAccountData(victim)[5], WAD)
        for feed in (self.btc_feed, self.eth_feed):  # with USDC debt, health moves with the collateral prices
            self.scale_feed(feed, TARGET_HEALTH / health, self.deployer)
        # debt to cover for 20% of the WETH: seized = debt x USDC price x bonus / ETH price
        weth = self.a_weth.balanceOf(victim)
        eth_answer = self.eth_feed.latestRoundData()[1]
        bonus = Fraction(AAVE_RESERVES["WETH"][2], 10_000)
        debt = int(weth * SEIZE_SHARE * eth_answer * USDC / (WETH * 10**FEED_DECIMALS * bonus))
        if not health > 1 > Fraction(p.getUserAccountData(victim)[5], WAD):
            raise RuntimeError("the Aave account is not just liquidatable after the price move")
        liquidator = self.actor("aave liquidator", {self.usdc: 100_000 * USDC, self.weth: WETH})
        self.usdc.approve(p, 50_000 * USDC, {"from": liquidator})
        self.measure("aave_liquidation_call",
                     "liquidationCall: USDC debt for 20% of the WETH at health 0.97, receiveAToken false",
                     p.liquidationCall, self.weth, self.usdc, victim, debt, False, sender=liquidator)
        seized = Fraction(weth - self.a_weth.balanceOf(victim), weth)
        if not Fraction(19, 100) < seized < Fraction(21, 100):
            raise RuntimeError(f"the Aave liquidation seized {float(seized):.1%} of the WETH, not about 20%")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=r"rpc\.\w+ should not be called directly")
    p = Peers()
    p.setup_morpho()
    p.bench_morpho()
    p.setup_aave()
    p.bench_aave()
    p.in_order(ORDER)
    p.report("Peers measured side by side (transactions: gasUsed; views: eth_estimateGas; cold; interest accrued)")
    p.write()
    # Brownie snapshots the chain after each transaction, in a thread: let the last one end before the node stops.
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
