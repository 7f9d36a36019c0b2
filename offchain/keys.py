"""The keeper's signing key: an encrypted JSON keystore (eth-account's or Brownie's ``~/.brownie/accounts/*.json``),
or, on a local development chain only, a plain key from an environment variable. Keys are never logged."""
from __future__ import annotations

import json
import logging

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .config import DEV_CHAIN_IDS, Settings
from .errors import KeyLoadError

log = logging.getLogger(__name__)


def load_signer(settings: Settings, chain_id: int) -> LocalAccount | None:
    """The configured signer, or None when no key is configured (allowed only with ``keeper.dry_run``)."""
    k = settings.keeper
    if k.keystore is not None and k.private_key_env is not None:
        raise KeyLoadError("set keeper.keystore or keeper.private_key_env, not both")
    if k.keystore is not None:
        return _from_keystore(settings)
    if k.private_key_env is not None:
        if chain_id not in DEV_CHAIN_IDS:
            raise KeyLoadError(f"keeper.private_key_env: a plain key is refused on chain {chain_id} (only local "
                               f"chains {sorted(DEV_CHAIN_IDS)}): use keeper.keystore")
        secret = settings.dev_private_key()
        assert secret is not None
        try:
            acct = Account.from_key(secret.get_secret_value())
        except (ValueError, TypeError):
            raise KeyLoadError(f"${k.private_key_env} is not a valid private key (64 hex digits)") from None
        log.info("signing as %s (development key from $%s)", acct.address, k.private_key_env)
        return acct
    if not k.dry_run:
        raise KeyLoadError("no signing key: set keeper.keystore (or keeper.private_key_env on a local chain), "
                           "or run with --dry-run")
    return None


def _from_keystore(settings: Settings) -> LocalAccount:
    k = settings.keeper
    path = k.keystore
    assert path is not None
    if not path.is_file():
        raise KeyLoadError(f"keeper.keystore: {path} does not exist")
    try:
        blob = json.loads(path.read_text())
    except ValueError:
        raise KeyLoadError(f"keeper.keystore: {path} is not a JSON keystore") from None
    password = settings.keystore_password()
    if password is None:
        raise KeyLoadError(f"keeper.keystore: set ${k.keystore_password_env} to the keystore's password")
    try:
        key = Account.decrypt(blob, password.get_secret_value())
    except ValueError:
        raise KeyLoadError(f"keeper.keystore: cannot decrypt {path} (wrong password in "
                           f"${k.keystore_password_env}?)") from None
    except (KeyError, TypeError):
        raise KeyLoadError(f"keeper.keystore: {path} is not an encrypted keystore") from None
    acct = Account.from_key(key)
    log.info("signing as %s (keystore %s)", acct.address, path)
    return acct
