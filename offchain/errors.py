"""One exception tree for the off-chain side. The CLI maps each branch to an exit code and a one-line message."""
from __future__ import annotations

import importlib
from types import ModuleType


class XMarginError(Exception):
    """Root of every error the off-chain library raises on purpose."""

    exit_code = 1


class ConfigError(XMarginError):
    """A missing or invalid setting; the message names the field and the fix."""

    exit_code = 2


class KeyLoadError(XMarginError):
    """The signing key could not be loaded (missing keystore, wrong password, key refused on this chain)."""

    exit_code = 3


class ChainUnavailable(XMarginError):
    """No RPC endpoint answered (after retries and failover)."""

    exit_code = 4


class DeploymentError(XMarginError):
    """The deployments file or the build artifacts do not describe the chain we are connected to."""

    exit_code = 5


def optional(module: str, purpose: str) -> ModuleType:
    """Import ``module``, a dependency of the ``risk`` extra, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs {module.split('.')[0]}: pip install 'xmargin[risk]'") from None
