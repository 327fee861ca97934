"""Where jacrl's YAML files live: inside the wheel, or at the top of a source checkout.

The env specs (``envs/``) and agent presets (``agents/``) sit at the top of the repository
(docs/architecture.md, "Layout") so a user can read and add them; the wheel copies them to
``jacrl/_data/`` (``pyproject.toml``, hatch ``force-include``). An editable install has no
``_data`` folder, so we fall back to the checkout.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def data_dir(kind: str) -> Path:
    """Return the folder of shipped YAML files of ``kind`` (``"envs"`` or ``"agents"``).

    :param kind: which folder; the installed copy wins over the checkout's.
    :raises FileNotFoundError: when neither location exists (a broken install).
    """
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"jacrl's '{kind}' folder is missing: looked in {_PACKAGE_DIR / '_data' / kind} (wheel) "
        f"and {_PACKAGE_DIR.parent / kind} (source checkout). Reinstall jacrl."
    )
