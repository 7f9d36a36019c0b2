// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IVaultTypes} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {IOrderSettlement} from "../../contracts/interfaces/IOrderSettlement.sol";
import {OrderSettlement} from "../../contracts/OrderSettlement.sol";
import {Deploy, Protocol} from "./Deploy.sol";
import {Env, Vm} from "./Env.sol";

/// @title Gas snapshots of the protocol's main operations (docs/gas.md, "Gas snapshots in CI"): one test per key of
///        scripts/bench/gas.py, built the way gas.py builds it, each recording its measured call with
///        `snapshotGasLastCall` under gas.py's key in snapshots/GasSnapshot.json. `make gas-check` (part of
///        `make test`) fails when a figure differs from the committed file; `make gas-snapshot` rewrites it.
/// @notice Every call is cold, as every transaction of gas.py is: the contract runs with forge's isolation
///         (`isolate = true` below), so each top-level CALL of a test is a transaction of its own (fresh EIP-2929
///         access lists, SSTORE costs against the value at that transaction's start) and its recorded gas is that
///         transaction's gas used, the 21,000 intrinsic gas and the calldata included, as in gas.py's receipts.
///         STATICCALLs are not isolated, so the view is measured through a plain CALL (as `eth_estimateGas` sends
///         it). Isolation is set here only: the invariant campaign runs without it.
///         The deployment is the campaign's (tests/forge/Deploy.sol, its own risk set, a fifth asset and market, six
///         option series) plus an OrderSettlement with the local deployment's fees, not gas.py's `deploy_local`:
///         the figures are comparable to gas.json, not equal to it.
///         Each test also checks that its operation did what it should, so a call that stops working fails the test
///         instead of recording the gas of a revert.
/// forge-config: default.isolate = true
contract GasSnapshot {
    Vm internal constant VM = Env.VM;

    uint256 internal constant BTC = 0; // market 0 and collateral 0 (WBTC) are on asset 0
    uint256 internal constant ETH = 1; // market 1 and collateral 1 (WETH) are on asset 1
    uint256 internal constant WAD = 1e18;
    /// @dev gas.py's conventions: the shapes' collateral is doubled, every measured call comes LATER seconds after
    ///      the last touch of its markets, liquidations take 20% after a move to E/MM ~ 85%, orders expire in 2100.
    uint256 internal constant COLLATERAL_X = 2;
    uint256 internal constant LATER = 30;
    uint256 internal constant CLOSE_SHARE_PCT = 20;
    uint256 internal constant TARGET_HEALTH_PCT = 85;
    uint256 internal constant EXPIRY = 4_102_444_800;
    /// @dev The local deployment's venue fees (scripts/deploy.py MAKER_FEE_BPS, TAKER_FEE_BPS).
    uint256 internal constant MAKER_FEE_BPS = 2;
    uint256 internal constant TAKER_FEE_BPS = 5;

    Protocol internal p;
    OrderSettlement internal settlement;
    uint256 internal lp; // the counterparty of every setup trade (gas.py's LP)
    address internal keeper;
    address internal relayer;

    function setUp() public {
        VM.warp(Env.START_TIME);
        p = Deploy.protocol();
        settlement = new OrderSettlement(p.vault, p.params, MAKER_FEE_BPS, TAKER_FEE_BPS);
        p.vault.setVenue(address(settlement), true);
        // this contract funds every setup deposit (gas.py's deployer): plenty minted, approved once
        p.usdc.mint(address(this), 1e30);
        p.usdc.approve(address(p.vault), type(uint256).max);
        for (uint256 k; k < 4; ++k) {
            p.tokens[k].mint(address(this), 1e40);
            p.tokens[k].approve(address(p.vault), type(uint256).max);
        }
        lp = p.vault.accountId(address(this), 0);
        p.vault.deposit(lp, address(p.usdc), 100_000_000e6);
        keeper = VM.addr(_key("keeper"));
        relayer = VM.addr(_key("relayer"));
        p.usdc.mint(keeper, 1e6); // the keeper already holds the settlement token
    }

    // ------------------------------------------------------------------ collateral

    /// @notice `deposit`: a top-up of an existing WETH balance by the owner (account and vault already hold WETH).
    function test_deposit() public {
        (address owner, uint256 account) = _ownerA();
        uint256 before = p.vault.collateralOf(account, 1);
        VM.warp(block.timestamp + LATER);
        VM.prank(owner);
        p.vault.deposit(account, address(p.tokens[1]), WAD / 10);
        VM.snapshotGasLastCall("deposit");
        require(p.vault.collateralOf(account, 1) == before + WAD / 10, "deposit: WETH not credited");
    }

    /// @notice `deposit_first`: the same owner's first deposit into a new subaccount (its slots are created).
    function test_depositFirst() public {
        (address owner,) = _ownerA();
        uint256 fresh = p.vault.accountId(owner, 7);
        VM.warp(block.timestamp + LATER);
        VM.prank(owner);
        p.vault.deposit(fresh, address(p.tokens[1]), WAD / 10);
        VM.snapshotGasLastCall("deposit_first");
        (, uint256 collaterals) = p.vault.masksOf(fresh);
        require(p.vault.collateralOf(fresh, 1) == WAD / 10 && collaterals == 1 << 1, "deposit_first: not credited");
    }

    /// @notice `withdraw_2pos`: WETH out of the 2 collaterals x 2 positions account, IM check included (the owner,
    ///         the recipient, already holds WETH; the account holds USDC too, as in gas.py after its deposits).
    function test_withdraw2pos() public {
        (address owner, uint256 account) = _ownerA();
        p.vault.deposit(account, address(p.usdc), 1_000e6);
        uint256 before = p.vault.collateralOf(account, 1);
        uint256 held = p.tokens[1].balanceOf(owner);
        VM.warp(block.timestamp + LATER);
        VM.prank(owner);
        p.vault.withdraw(account, address(p.tokens[1]), WAD / 10, owner);
        VM.snapshotGasLastCall("withdraw_2pos");
        require(p.vault.collateralOf(account, 1) == before - WAD / 10, "withdraw: balance not debited");
        require(p.tokens[1].balanceOf(owner) == held + WAD / 10, "withdraw: WETH not paid");
    }

    // ------------------------------------------------------------------ views

    /// @notice `margin_view_2x2`: `vault.margin` of 2 collaterals (WBTC, WETH) x 2 positions (BTC long, ETH short).
    function test_marginView2x2() public {
        (, uint256 account) = _ownerA();
        VM.warp(block.timestamp + LATER);
        (bool ok, bytes memory out) = address(p.vault).call(abi.encodeCall(p.vault.margin, (account)));
        VM.snapshotGasLastCall("margin_view_2x2");
        require(ok, "margin view reverted");
        (int256 equity, uint256 maintenance, uint256 initial) = abi.decode(out, (int256, uint256, uint256));
        // both positions carry a requirement, and the account opened them at IM with its collateral doubled
        require(maintenance > 0 && initial > maintenance && equity > int256(initial), "margin view: unexpected");
    }

    // ------------------------------------------------------------------ trading

    /// @notice `settle_trade`: `OrderSettlement.settle` of two fresh EIP-712 signed orders, maker and taker each
    ///         holding USDC, WETH and a BTC position, opening ETH positions of 2 units at the oracle price. The ETH
    ///         market already trades (owner a's account holds a position there, as gas.py's portfolios do).
    function test_settleTrade() public {
        _ownerA();
        (uint256 makerKey, uint256 maker) = _signer("maker");
        (uint256 takerKey, uint256 taker) = _signer("taker");
        _traderWithBtc(maker, -30_000);
        _traderWithBtc(taker, 30_000);
        VM.warp(block.timestamp + LATER);
        uint256 size = 2 * WAD;
        _settle("settle_trade", makerKey, takerKey, ETH, size, p.oracle.price(Env.marketAsset(ETH)));
        (int256 makerEth,) = p.vault.positionOf(maker, ETH);
        (int256 takerEth,) = p.vault.positionOf(taker, ETH);
        require(makerEth == -int256(size) && takerEth == int256(size), "settle: positions not opened");
    }

    /// @notice `settle_option_trade`: two USDC-only accounts open a BTC call (series slot 0: 60k, 30 days) through
    ///         signed orders (instrument OPTION_BASE + slot) at its mark; both sides are checked at IM. The series
    ///         already trades (gas.py's option view account holds a long call in it, bought from an option LP).
    function test_settleOptionTrade() public {
        _optionHolder();
        (uint256 makerKey, uint256 maker) = _signer("option maker");
        (uint256 takerKey, uint256 taker) = _signer("option taker");
        p.vault.deposit(maker, address(p.usdc), 100_000e6);
        p.vault.deposit(taker, address(p.usdc), 100_000e6);
        VM.warp(block.timestamp + LATER);
        uint256 mark = p.options.mark(0);
        VM.warp(block.timestamp + LATER);
        _settle("settle_option_trade", makerKey, takerKey, settlement.OPTION_BASE() + 0, WAD, mark); // series slot 0
        require(p.options.sizeOf(maker, 0) == -int256(WAD) && p.options.sizeOf(taker, 0) == int256(WAD),
            "option settle: positions not opened");
    }

    // ------------------------------------------------------------------ liquidation

    /// @notice `liquidate_2pos`: 20% of each position of an account of 2 collaterals (WBTC, WETH) x 2 longs (BTC,
    ///         ETH) after BTC and ETH fall together to E/MM ~ 85%; the fund already holds both (gas.py `seed_fund`).
    function test_liquidate2pos() public {
        uint256 account = p.vault.accountId(VM.addr(_key("liq 2")), 0);
        _build2x2(account, 60_000, 40_000); // LIQ_2X2
        _seedFund();
        uint256[] memory assets = new uint256[](2);
        (assets[0], assets[1]) = (BTC, ETH);
        _crashToHealth(account, assets);
        (int256 btc,) = p.vault.positionOf(account, BTC);
        (int256 eth,) = p.vault.positionOf(account, ETH);
        uint256 fund = p.vault.fundAccount();
        (int256 fundBtc,) = p.vault.positionOf(fund, BTC);
        (int256 fundEth,) = p.vault.positionOf(fund, ETH);
        IVaultTypes.LiquidationItem[] memory items = new IVaultTypes.LiquidationItem[](2);
        items[0] = IVaultTypes.LiquidationItem(0, uint8(BTC), uint256(btc) * CLOSE_SHARE_PCT / 100);
        items[1] = IVaultTypes.LiquidationItem(0, uint8(ETH), uint256(eth) * CLOSE_SHARE_PCT / 100);
        uint256 taken = items[0].amount * p.oracle.price(BTC) / WAD + items[1].amount * p.oracle.price(ETH) / WAD;
        _requirePartial(account, taken);
        VM.warp(block.timestamp + LATER);
        VM.prank(keeper);
        p.vault.liquidate(account, items);
        VM.snapshotGasLastCall("liquidate_2pos");
        _requireMoved(account, BTC, btc, fundBtc, items[0].amount);
        _requireMoved(account, ETH, eth, fundEth, items[1].amount);
    }

    /// @notice `seize_collateral`: an account whose BTC long was closed at a loss (WETH collateral, no position, a
    ///         negative settlement balance) is taken to E/MM ~ 85% by an ETH fall; 20% of its WETH is seized.
    function test_seizeCollateral() public {
        uint256 account = p.vault.accountId(VM.addr(_key("seize")), 0);
        _deposit(account, 1, 30_000);
        _open(account, BTC, 60_000);
        p.feeds[BTC].updateAnswer(p.feeds[BTC].latestAnswer() * 3 / 4); // BTC -25%: the long loses 15,000 USD
        (int256 size,) = p.vault.positionOf(account, BTC);
        uint256 btcPrice = p.oracle.price(BTC);
        p.venue.trade(lp, account, BTC, uint256(size), btcPrice, 0); // closed (reduce-only: always allowed)
        (uint256 markets,) = p.vault.masksOf(account);
        require(markets == 0 && p.vault.settlementOf(account) < 0, "seize setup: a position or no debt left");
        _seedFund();
        uint256[] memory assets = new uint256[](1);
        assets[0] = ETH;
        _crashToHealth(account, assets);
        uint256 held = p.vault.collateralOf(account, 1);
        uint256 fundHeld = p.vault.collateralOf(p.vault.fundAccount(), 1);
        IVaultTypes.LiquidationItem[] memory items = new IVaultTypes.LiquidationItem[](1);
        items[0] = IVaultTypes.LiquidationItem(1, 1, held * CLOSE_SHARE_PCT / 100);
        _requirePartial(account, items[0].amount * p.oracle.price(ETH) / 10 ** Env.decimals(1));
        VM.warp(block.timestamp + LATER);
        VM.prank(keeper);
        p.vault.liquidate(account, items);
        VM.snapshotGasLastCall("seize_collateral");
        require(p.vault.collateralOf(account, 1) == held - items[0].amount, "seize: WETH not taken");
        require(p.vault.collateralOf(p.vault.fundAccount(), 1) == fundHeld + items[0].amount, "seize: fund not paid");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev gas.py's fixed-key accounts: the private key of `label` is keccak256("xmargin gas bench <label>"), so the
    ///      owners (and the calldata) are the same as in gas.py.
    function _key(string memory label) internal pure returns (uint256) {
        return uint256(keccak256(abi.encodePacked("xmargin gas bench ", label)));
    }

    /// @dev gas.py's `owner a` and its subaccount 0 in the VIEW_2X2 shape (BTC long 60,000, ETH short 40,000 USD);
    ///      the owner holds 10 WETH and allows the vault 5 (a finite allowance: every deposit writes it).
    function _ownerA() internal returns (address owner, uint256 account) {
        owner = VM.addr(_key("owner a"));
        account = p.vault.accountId(owner, 0);
        _build2x2(account, 60_000, -40_000);
        p.tokens[1].mint(owner, 10 * WAD);
        VM.prank(owner);
        p.tokens[1].approve(address(p.vault), 5 * WAD);
    }

    /// @dev gas.py's option view account (owner a's subaccount 3: the VIEW_2X2 shape) with 1 BTC call of series slot
    ///      0 bought at the mark from an option LP of its own (this contract's subaccount 2, USDC only).
    function _optionHolder() internal {
        uint256 optionLp = p.vault.accountId(address(this), 2);
        p.vault.deposit(optionLp, address(p.usdc), 100_000_000e6);
        uint256 account = p.vault.accountId(VM.addr(_key("owner a")), 3);
        _build2x2(account, 60_000, -40_000);
        p.venue.tradeOption(account, optionLp, 0, WAD, p.options.mark(0), 0);
    }

    /// @dev WBTC and WETH worth 30,000 USD each (times COLLATERAL_X), then a BTC and an ETH position of the given
    ///      signed USD notionals.
    function _build2x2(uint256 account, int256 btcUsd, int256 ethUsd) internal {
        _deposit(account, 0, 30_000 * COLLATERAL_X);
        _deposit(account, 1, 30_000 * COLLATERAL_X);
        _open(account, BTC, btcUsd);
        _open(account, ETH, ethUsd);
    }

    /// @dev A settle_trade side: 20,000 USDC, WETH worth 20,000 USD and a BTC position of `btcUsd` (signed).
    function _traderWithBtc(uint256 account, int256 btcUsd) internal {
        p.vault.deposit(account, address(p.usdc), 20_000e6);
        _deposit(account, 1, 20_000);
        _open(account, BTC, btcUsd);
    }

    /// @dev Deposits collateral `cid` worth `usd` (whole USD) at the oracle price into `account`.
    function _deposit(uint256 account, uint256 cid, uint256 usd) internal {
        uint256 amount = usd * WAD * 10 ** Env.decimals(cid) / p.oracle.price(cid); // collateral j is on asset j
        p.vault.deposit(account, address(p.tokens[cid]), amount);
    }

    /// @dev Trades `usd` of notional (signed: positive buys) in `market` against the LP at the oracle price, through
    ///      the unsigned TestVenue (gas.py `open`).
    function _open(uint256 account, uint256 market, int256 usd) internal {
        uint256 price = p.oracle.price(Env.marketAsset(market));
        uint256 size = (usd > 0 ? uint256(usd) : uint256(-usd)) * WAD * WAD / price;
        (uint256 buyer, uint256 seller) = usd > 0 ? (account, lp) : (lp, account);
        p.venue.trade(buyer, seller, market, size, price, 0);
    }

    /// @dev The insurance fund after earlier liquidations (gas.py `seed_fund`): a long of 1,000 USD in each of the
    ///      markets 0-3 and a balance of each collateral 0-3 worth 1,000 USD.
    function _seedFund() internal {
        uint256 fund = p.vault.fundAccount();
        for (uint256 k; k < 4; ++k) {
            _open(fund, k, 1_000);
            _deposit(fund, k, 1_000);
        }
    }

    /// @dev Moves the feeds of `assets` down by one common factor, bisected on the vault's own `margin`, to the
    ///      smallest factor (to 1e-9) that leaves E/MM at or above TARGET_HEALTH_PCT (gas.py `crash_to_health`).
    function _crashToHealth(uint256 account, uint256[] memory assets) internal {
        int256[] memory base = new int256[](assets.length);
        for (uint256 i; i < assets.length; ++i) {
            base[i] = p.feeds[assets[i]].latestAnswer();
        }
        uint256 lo = 1e8; // factors in 1e-9: [0.1, 1]
        uint256 hi = 1e9;
        require(_healthAtLeastTarget(account, assets, base, hi), "account unhealthy before the move");
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_healthAtLeastTarget(account, assets, base, mid)) hi = mid;
            else lo = mid;
        }
        _moveFeeds(assets, base, hi);
    }

    function _healthAtLeastTarget(uint256 account, uint256[] memory assets, int256[] memory base, uint256 factor)
        internal
        returns (bool)
    {
        _moveFeeds(assets, base, factor);
        (int256 equity, uint256 maintenance,) = p.vault.margin(account);
        return equity * 100 >= int256(maintenance * TARGET_HEALTH_PCT);
    }

    function _moveFeeds(uint256[] memory assets, int256[] memory base, uint256 factor) internal {
        for (uint256 i; i < assets.length; ++i) {
            p.feeds[assets[i]].updateAnswer(base[i] * int256(factor) / 1e9);
        }
    }

    /// @dev The account is below MM, not deep (a partial liquidation: maxTake below the gross), and `taken` (USD)
    ///      is within maxTake: what gas.py checks against the mirror's `max_take` before it sends a liquidation.
    function _requirePartial(uint256 account, uint256 taken) internal view {
        (int256 equity, uint256 maintenance, uint256 initial) = p.vault.margin(account);
        IVaultTypes.MarginDetail memory d = p.vault.marginDetail(account);
        uint256 gross;
        for (uint256 k; k < d.gross.length; ++k) {
            gross += d.gross[k];
        }
        (uint256 liq,) = p.params.liquidationConfig();
        uint256 allowed = p.vault.maxTake(equity, maintenance, initial, gross, liq);
        require(equity < int256(maintenance), "not liquidatable");
        require(taken > 0 && taken <= allowed && allowed < gross, "not a partial liquidation within maxTake");
    }

    /// @dev `amount` of the account's long in `market` (size `before`) passed to the fund (which held `fundBefore`).
    function _requireMoved(uint256 account, uint256 market, int256 before, int256 fundBefore, uint256 amount)
        internal
        view
    {
        (int256 size,) = p.vault.positionOf(account, market);
        (int256 fundSize,) = p.vault.positionOf(p.vault.fundAccount(), market);
        require(size == before - int256(amount), "liquidate: position not reduced");
        require(fundSize == fundBefore + int256(amount), "liquidate: the fund did not take the position");
    }

    /// @dev gas.py's fixed-key signer `label` and its subaccount 0.
    function _signer(string memory label) internal view returns (uint256 key, uint256 account) {
        key = _key(label);
        account = p.vault.accountId(VM.addr(key), 0);
    }

    /// @dev The relayer settles two fresh signed orders (nonces 1 and 2, as gas.py's first pair) filling `size` of
    ///      `instrument` at `price` between the accounts of `makerKey` (selling) and `takerKey`, recorded under `key`;
    ///      then both orders read as filled whole and the same signed pair cannot settle again.
    function _settle(string memory key, uint256 makerKey, uint256 takerKey, uint256 instrument, uint256 size,
        uint256 price) internal {
        IOrderSettlement.Order memory sell = IOrderSettlement.Order(
            p.vault.accountId(VM.addr(makerKey), 0), instrument, false, size, price, EXPIRY, 1);
        IOrderSettlement.Order memory buy = IOrderSettlement.Order(
            p.vault.accountId(VM.addr(takerKey), 0), instrument, true, size, price, EXPIRY, 2);
        bytes memory sellSig = _sign(sell, makerKey);
        bytes memory buySig = _sign(buy, takerKey);
        VM.prank(relayer);
        settlement.settle(sell, sellSig, buy, buySig, size);
        VM.snapshotGasLastCall(key);
        require(settlement.filledOf(sell) == size && settlement.filledOf(buy) == size, "settle: orders not filled");
        (bool replayed,) =
            address(settlement).call(abi.encodeCall(settlement.settle, (sell, sellSig, buy, buySig, size)));
        require(!replayed, "settle: a filled pair of orders settled again");
    }

    /// @dev An EIP-712 signature of `order` (the venue's own digest) by `key`, as 65 bytes r, s, v.
    function _sign(IOrderSettlement.Order memory order, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(key, settlement.hashOrder(order));
        return abi.encodePacked(r, s, v);
    }
}
