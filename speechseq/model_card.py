"""An export's model card, `assets/model_card.json`: what a user of a version needs to know
about it (what it is, its data, licence, metrics, how it decodes).

`export` writes the card; the modules that put decoding files into an export being made
(a word list, a language model, tuned smoothing) add their entry here, so that none of
them needs `export` (which imports them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speechseq.files import update_json_entries

CARD_FILE = "model_card.json"


def card_path(assets: str | Path) -> Path:
    """Where the card of the export whose `assets/` folder this is lies (or would lie)."""
    return Path(assets) / CARD_FILE


def update_card(assets: str | Path, entries: dict | None = None, drop: Sequence[str] = ()) -> None:
    """Set `entries` in the card and remove the keys in `drop`, atomically; an export
    without a card stays without one."""
    update_json_entries(card_path(assets), entries, drop)
