"""Path expansion (list, glob, folder) and acquisition dates from file names or metadata."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PathsLike", "date_from_metadata", "expand_paths", "parse_date"]

PathsLike = str | os.PathLike | Iterable[str | os.PathLike]

_GLOB_CHARS = re.compile(r"[*?\[]")
#: ``MOD11A1.A2019305...``: year + day of year after ``.A``.
_RE_DOY = re.compile(r"(?:^|[._])A(\d{4})(\d{3})(?=[._]|$)")
#: ``2017_01_19``, ``2017-01-19``, ``2017.01.19``.
_RE_YMD_SEP = re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})[-_.](\d{2})(?!\d)")
#: ``20170119`` (Landsat scene and product IDs: the first one is the acquisition date).
_RE_YMD = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
#: Metadata keys that may hold an acquisition date (GeoTIFF tags, HDF-EOS, Earth Engine).
_DATE_KEYS = (
    "DATE_ACQUIRED",
    "date_acquired",
    "ACQUISITION_DATE",
    "RANGEBEGINNINGDATE",
    "time",
    "datetime",
    "date",
    "system:time_start",
    "TIFFTAG_DATETIME",
)


def expand_paths(
    paths: PathsLike, suffixes: Sequence[str] = (".tif", ".tiff", ".hdf")
) -> list[Path]:
    """Turn a file, a folder, a glob pattern or a list of them into a sorted list of files.

    Parameters
    ----------
    paths : str, path-like or iterable of them
        Files, folders (every file with one of ``suffixes`` inside, not recursive) or glob
        patterns (``"data/LC08_*.tif"``).
    suffixes : sequence of str
        File endings taken from folders (case-insensitive).

    Returns
    -------
    list of pathlib.Path
        Existing files, sorted by name, without duplicates.

    Raises
    ------
    FileNotFoundError
        If a file, folder or pattern matches nothing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("b_2020_01_02.tif", "a_2020_01_01.tif", "notes.txt"):
    ...     _ = (d / n).write_text("")
    >>> [p.name for p in expand_paths(d)]
    ['a_2020_01_01.tif', 'b_2020_01_02.tif']
    >>> [p.name for p in expand_paths(str(d / "b_*.tif"))]
    ['b_2020_01_02.tif']
    """
    items: list[Any] = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise FileNotFoundError("no paths given: pass a file, a folder, a glob pattern or a list")
    found: list[Path] = []
    wanted = tuple(s.lower() for s in suffixes)
    for item in items:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            inside = sorted(
                q for q in p.iterdir() if q.is_file() and q.name.lower().endswith(wanted)
            )
            if not inside:
                raise FileNotFoundError(
                    f"folder {text!r} holds no files ending in {list(suffixes)}"
                )
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        elif _GLOB_CHARS.search(text):
            matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                raise FileNotFoundError(f"the pattern {text!r} matches no file")
            found.extend(matches)
        else:
            raise FileNotFoundError(f"no such file or folder: {text!r}")
    unique = sorted({q.resolve(): q for q in found}.values(), key=lambda q: (q.name, str(q)))
    return unique


def parse_date(name: str | os.PathLike) -> pd.Timestamp | None:
    """Acquisition date from a file name, or ``None`` when the name holds none.

    Recognised, in this order: MODIS ``.AYYYYDDD`` (year + day of year), ``YYYY_MM_DD`` /
    ``YYYY-MM-DD`` / ``YYYY.MM.DD``, then the first ``YYYYMMDD`` (Landsat scene and product
    IDs put the acquisition date before the processing date).

    Parameters
    ----------
    name : str or path-like
        A file name or path (only the last component is read).

    Returns
    -------
    pandas.Timestamp or None
        Midnight of the acquisition day.

    Examples
    --------
    >>> parse_date("LC08_199027_20170119.tif").date()
    datetime.date(2017, 1, 19)
    >>> parse_date("2017_01_19.tif").date()
    datetime.date(2017, 1, 19)
    >>> parse_date("MOD11A1.A2019305.h14v09.006.hdf").date()
    datetime.date(2019, 11, 1)
    >>> parse_date("LC08_L2SP_199027_20170119_20200905_02_T1_ST_B10.TIF").date()
    datetime.date(2017, 1, 19)
    >>> parse_date("scene.tif") is None
    True
    """
    base = Path(os.fspath(name)).name
    m = _RE_DOY.search(base)
    if m:
        year, doy = int(m.group(1)), int(m.group(2))
        if 1 <= doy <= 366:
            return pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=doy - 1)
    for rx in (_RE_YMD_SEP, _RE_YMD):
        for m in rx.finditer(base):
            try:
                return pd.Timestamp(
                    year=int(m.group(1)), month=int(m.group(2)), day=int(m.group(3))
                )
            except ValueError:
                continue
    return None


def date_from_metadata(tags: Mapping[str, Any]) -> pd.Timestamp | None:
    """Acquisition date from metadata tags (``DATE_ACQUIRED``, ``system:time_start``...).

    Parameters
    ----------
    tags : mapping
        GeoTIFF tags or HDF attributes.

    Returns
    -------
    pandas.Timestamp or None
        The date (time of day dropped), or ``None`` when no known key parses.

    Examples
    --------
    >>> date_from_metadata({"DATE_ACQUIRED": "2017-01-19"}).date()
    datetime.date(2017, 1, 19)
    >>> date_from_metadata({"system:time_start": "1484820000000"}).date()
    datetime.date(2017, 1, 19)
    >>> date_from_metadata({}) is None
    True
    """
    for key in _DATE_KEYS:
        if key not in tags:
            continue
        value = str(tags[key]).strip().strip('"')
        try:
            if key == "system:time_start" or re.fullmatch(r"\d{12,13}", value):
                ts = pd.Timestamp(int(float(value)), unit="ms")
            elif key == "TIFFTAG_DATETIME":
                ts = pd.Timestamp(pd.to_datetime(value, format="%Y:%m:%d %H:%M:%S"))
            else:
                ts = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            continue
        if ts is not pd.NaT:
            return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()
    return None
