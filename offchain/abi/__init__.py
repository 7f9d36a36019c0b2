"""Contract ABIs shipped with the package (written by scripts/export_abis.py)."""
