"""Run statistics as nested dicts of counts that merge by addition (the combiner of the whole build)."""
from __future__ import annotations

MAX_EXAMPLES = 20


def merge(a: dict, b: dict) -> dict:
    """Adds ``b`` into a copy of ``a``: numbers add, dicts merge recursively, lists concatenate (capped)."""
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = merge(out[k], v)
        elif isinstance(v, list):
            out[k] = (out[k] + v)[:MAX_EXAMPLES]
        else:
            out[k] = out[k] + v
    return out


def merge_all(items) -> dict:
    total: dict = {}
    for item in items:
        total = merge(total, item)
    return total


def bump(d: dict, *path_and_amount) -> None:
    """``bump(d, 'a', 'b', 3)`` adds 3 to ``d['a']['b']``."""
    *path, key, amount = path_and_amount
    for p in path:
        d = d.setdefault(p, {})
    d[key] = d.get(key, 0) + amount
