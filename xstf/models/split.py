"""Training samples of the deep models and the split of the pair dates by date.

A *sample* is a target pair date and its reference pair dates,
``(C_ref…, F_ref…, C_tgt) -> F_tgt``, the references chosen with
:func:`xstf.cube.reference_pairs` (the rule prediction uses too). The pair dates
are split into training, validation and test dates (never mixing a date between
them); training samples take their targets *and* references among the training
dates only, validation samples their references among the training dates, so no
validation or test date ever reaches the training loss. Patches, normalisation and
the torch Dataset are :mod:`xstf.models.data`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import cube as _cube
from ..errors import CubeError

__all__ = ["DEFAULT_SPLIT", "Sample", "Split", "samples", "split_dates"]

#: Default (validation, test) shares of the pair dates.
DEFAULT_SPLIT = (0.15, 0.15)


@dataclass(frozen=True)
class Sample:
    """One training/validation/test sample: a target pair date and its reference pair dates.

    Examples
    --------
    >>> import pandas as pd
    >>> s = Sample(pd.Timestamp("2021-02-01"), (pd.Timestamp("2021-01-16"),))
    >>> s.target.month
    2
    """

    target: pd.Timestamp
    refs: tuple[pd.Timestamp, ...]


@dataclass(frozen=True)
class Split:
    """Pair dates split into training, validation and test dates (disjoint, increasing).

    Examples
    --------
    >>> import pandas as pd
    >>> split_dates(pd.date_range("2021-01-01", periods=8, freq="16D")).val
    (Timestamp('2021-03-06 00:00:00'),)
    """

    train: tuple[pd.Timestamp, ...]
    val: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    def to_dict(self) -> dict[str, list[str]]:
        """ISO date strings per part (JSON-friendly, stored in the model's config)."""
        return {k: [d.isoformat() for d in getattr(self, k)] for k in ("train", "val", "test")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Iterable[Any]]) -> Split:
        """Inverse of :meth:`to_dict`."""
        return cls(*(tuple(pd.to_datetime(list(d.get(k, [])))) for k in ("train", "val", "test")))


def _dates(values: Iterable[Any], what: str) -> list[pd.Timestamp]:
    if isinstance(values, (str, pd.Timestamp, np.datetime64)):
        values = [values]
    try:
        return [pd.Timestamp(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"split[{what!r}] must be a list of dates: {err}") from None


def split_dates(
    pairs: Sequence[Any],
    split: Mapping[str, Any] | Sequence[float] | None = None,
    n_refs: int = 2,
) -> Split:
    """Split pair dates into training, validation and test dates.

    Parameters
    ----------
    pairs : sequence of datetime-like
        The cube's pair dates (:func:`xstf.cube.pair_dates`).
    split : dict, (float, float) or None
        Either explicit dates, ``{"train": [...], "val": [...], "test": [...]}``
        (``train`` defaults to the pairs not named elsewhere; every date must be a
        pair), or the ``(validation, test)`` shares of the pairs (default
        ``(0.15, 0.15)``; a positive share gives at least one date). With shares,
        the validation and test dates are spread evenly over the interior pairs
        (the first and last pairs stay in training so that targets are bracketed),
        alternating test, validation, test...; deterministic. With no validation
        date (``(0, 0)``, or a dict without ``"val"`` dates), :func:`xstf.models.fit`
        computes the validation loss on the training patches (and warns).
    n_refs : int
        Reference pairs per sample: training needs at least ``n_refs + 1`` dates.

    Returns
    -------
    Split

    Raises
    ------
    CubeError
        Too few pairs for the split (the counts are named), a date that is not a
        pair, or a date in two parts.

    Examples
    --------
    >>> import pandas as pd
    >>> pairs = pd.date_range("2021-01-01", periods=8, freq="16D")
    >>> s = split_dates(pairs)
    >>> len(s.train), len(s.val), len(s.test)
    (6, 1, 1)
    >>> s.test[0] in s.train
    False
    """
    pairs_idx = pd.DatetimeIndex(sorted(set(pd.DatetimeIndex(list(pairs)))))
    if isinstance(split, Mapping):
        train, val, test = _explicit_split(pairs_idx, split)
    else:
        train, val, test = _share_split(pairs_idx, split, n_refs)
    if len(train) < n_refs + 1:
        raise CubeError(
            f"the split leaves {len(train)} training pair(s) (of {len(pairs_idx)} pairs: "
            f"{len(val)} validation, {len(test)} test); training needs at least {n_refs + 1} "
            f"(a target and {n_refs} reference pair(s)). Add dates, lower min_coverage, or give "
            "fewer validation/test dates"
        )
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))


_Parts = tuple[list[pd.Timestamp], list[pd.Timestamp], list[pd.Timestamp]]


def _not_pairs(dates: Sequence[pd.Timestamp], pairs_idx: pd.DatetimeIndex) -> list[str]:
    return [str(d.date()) for d in dates if d not in pairs_idx]


def _explicit_split(pairs_idx: pd.DatetimeIndex, split: Mapping[str, Any]) -> _Parts:
    """(train, val, test) from explicit dates: every date a pair, each in one part only."""
    unknown = set(split) - {"train", "val", "test"}
    if unknown:
        raise ValueError(f"split keys must be 'train', 'val', 'test'; got {sorted(unknown)}")
    parts = {k: _dates(split[k], k) for k in ("val", "test") if k in split}
    for part, ds_ in parts.items():
        bad = _not_pairs(ds_, pairs_idx)
        if bad:
            raise CubeError(
                f"split[{part!r}] names date(s) {bad} that are not pairs of the cube "
                f"(pairs: {[str(d.date()) for d in pairs_idx]})"
            )
    val, test = parts.get("val", []), parts.get("test", [])
    if "train" in split:
        train = _dates(split["train"], "train")
        bad = _not_pairs(train, pairs_idx)
        if bad:
            raise CubeError(f"split['train'] names date(s) {bad} that are not pairs of the cube")
    else:
        train = [d for d in pairs_idx if d not in set(val) | set(test)]
    named = {"train": train, "val": val, "test": test}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = set(named[a]) & set(named[b])
        if both:
            raise CubeError(
                f"date(s) {sorted(str(d.date()) for d in both)} are in both split[{a!r}] and "
                f"split[{b!r}]: a date belongs to one part only"
            )
    return train, val, test


def _spread_positions(n_interior: int, k: int) -> list[int]:
    """``k`` distinct positions spread evenly over ``n_interior`` interior pairs, sorted."""
    if not k:
        return []
    pos = list(np.unique(np.round(np.linspace(0, n_interior - 1, k + 2)[1:-1]).astype(int)))
    extra = [i for i in range(n_interior) if i not in pos]
    while len(pos) < k:  # rounding merged positions: take the remaining ones in order
        pos.append(extra.pop(0))
    return sorted(int(p) for p in pos)


def _share_split(pairs_idx: pd.DatetimeIndex, split: Sequence[float] | None, n_refs: int) -> _Parts:
    """(train, val, test) from (validation, test) shares, spread over the interior pairs."""
    n = len(pairs_idx)
    shares = DEFAULT_SPLIT if split is None else tuple(float(s) for s in split)
    if len(shares) != 2 or any(s < 0 for s in shares) or sum(shares) >= 1:
        raise ValueError(
            f"split shares must be (validation, test), each >= 0, summing to < 1; got {split!r}"
        )
    n_val = max(1, round(shares[0] * n)) if shares[0] > 0 else 0
    n_test = max(1, round(shares[1] * n)) if shares[1] > 0 else 0
    interior = list(pairs_idx[1:-1])
    k = n_val + n_test
    if k > len(interior):
        raise CubeError(
            f"the cube has {n} pair(s); the split needs {n_val} validation + {n_test} test "
            f"date(s) among the {len(interior)} interior pair(s) plus at least {n_refs + 1} "
            f"training pairs. Add dates, lower min_coverage, or pass split=(0, 0) (no validation "
            "or test date) or explicit dates"
        )
    test: list[pd.Timestamp] = []
    val: list[pd.Timestamp] = []
    for j, p in enumerate(_spread_positions(len(interior), k)):
        (test if (j % 2 == 0 and len(test) < n_test) or len(val) >= n_val else val).append(
            interior[p]
        )
    train = [d for d in pairs_idx if d not in set(val) | set(test)]
    return train, val, test


def samples(
    targets: Iterable[Any], ref_pool: Iterable[Any], n_refs: int, rule: str = "bracket"
) -> list[Sample]:
    """One :class:`Sample` per target date, references from ``ref_pool`` by :func:`xstf.cube.reference_pairs`.

    A target present in ``ref_pool`` is never its own reference.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.date_range("2021-01-01", periods=4, freq="16D")
    >>> s = samples(d[1:2], d, 2)
    >>> [str(r.date()) for r in s[0].refs]
    ['2021-01-01', '2021-02-02']
    """
    pool = list(ref_pool)
    return [
        Sample(pd.Timestamp(t), tuple(_cube.reference_pairs(pool, t, n=n_refs, rule=rule)))  # type: ignore[arg-type]
        for t in targets
    ]
