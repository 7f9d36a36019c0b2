"""The protocol's own margin math, as the contracts compute it: the exact integer mirror (:mod:`.exact`), the one
float evaluation of the formula over many accounts and scenarios (:mod:`.vector`), the keeper's screen built on it
(:mod:`.screen`), readers of the on-chain words (:mod:`.snapshot`), the option pricing mirror and its float twin
(:mod:`.optionmath`), and the parameter specs (:mod:`.params`, :mod:`.defaults`). The keeper, the indexer and the
tests stand on this package; the risk analytics (:mod:`offchain.risk`) use it and never the other way round."""
