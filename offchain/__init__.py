"""xmargin's off-chain side: the exact margin mirror, the indexer, the keeper and the risk analytics."""

__version__ = "0.2.0"
