"""Rerun's usage analytics, off for the project's own runs (make demo, the tests).

Rerun (its SDK, viewer and CLI) reads its analytics switch from one place only:
$XDG_CONFIG_HOME/rerun/analytics.json, the file `rerun analytics disable` writes. Rather
than change a user's own settings, the project's runs point XDG_CONFIG_HOME at a folder of
their own that holds the switch turned off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def rerun_analytics_off(config_home: Path, env: dict | None = None) -> dict[str, str]:
    """Write `config_home/rerun/analytics.json` with analytics disabled and return `env`
    (default: this process's environment) with XDG_CONFIG_HOME = config_home."""
    config_home = Path(config_home).resolve()
    config = config_home / "rerun" / "analytics.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "analytics_enabled": False,
                "analytics_id": "regiond-runs",
                "metadata": {},
                "config_file_path": str(config),
                "data_dir_path": str(config_home / "rerun" / "analytics-data"),
            }
        )
    )
    return {**(os.environ if env is None else env), "XDG_CONFIG_HOME": str(config_home)}
