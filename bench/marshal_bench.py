"""Section `marshal`: the step runtime's save_value + load_value against each type's own format and dill.

Measured in this process, in a temporary folder under /tmp that is deleted afterwards. A sample is one save
followed by one load of the same value (from the page cache, as a local run reads it); ours writes a fresh
artifact directory each time, as a step does. Dirty pages are flushed (os.sync) before every sample.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import itertools
import os
import pickle
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill

from bench.common import Row, Section, Settings, timed
from kale_yaml.runtime import marshal

RoundTrip = Callable[[Any, Path], Any]  # (value, scratch folder) -> the value read back


@dataclass
class Case:
    name: str
    make: Callable[[], Any]
    natives: dict[str, RoundTrip]
    repeat: int
    dill_limit: float | None = None  # target for ours / dill, if any
    footprint: Callable[[Any], int] | None = None  # bytes the value takes in memory, for big values
    same: Callable[[Any, Any], bool] = field(default=lambda a, b: True)


def _ours(value: Any, folder: Path) -> Any:
    target = str(folder / "artifact")
    marshal.save_value("value", value, target)
    return marshal.load_value(target)


def _dill(value: Any, folder: Path) -> Any:
    with open(folder / "value.dill", "wb") as out:
        dill.dump(value, out)
    with open(folder / "value.dill", "rb") as back:
        return dill.load(back)


def _pickle(value: Any, folder: Path) -> Any:
    with open(folder / "value.pkl", "wb") as out:
        pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
    with open(folder / "value.pkl", "rb") as back:
        return pickle.load(back)


def _numpy(value: Any, folder: Path) -> Any:
    import numpy as np

    np.save(folder / "value.npy", value, allow_pickle=False)
    return np.load(folder / "value.npy", allow_pickle=False)


def _pandas(value: Any, folder: Path) -> Any:
    import pandas as pd

    value.to_pickle(folder / "value.pkl")
    return pd.read_pickle(folder / "value.pkl")


def _joblib(value: Any, folder: Path) -> Any:
    import joblib  # type: ignore[import-untyped]

    joblib.dump(value, folder / "value.joblib")
    return joblib.load(folder / "value.joblib")


def _array(megabytes: int) -> Callable[[], Any]:
    def make() -> Any:
        import numpy as np

        return np.random.default_rng(0).standard_normal(megabytes * 1024 * 1024 // 8)

    return make


def _frame(rows: int) -> Callable[[], Any]:
    def make() -> Any:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.standard_normal((rows, 19)), columns=[f"f{i}" for i in range(19)])
        frame["name"] = [f"customer-{i % 7919}-{i}" for i in range(rows)]
        return frame

    return make


def _estimator() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    features, labels = make_classification(n_samples=2000, n_features=20, random_state=0)
    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(features, labels)


def _objects() -> Any:
    """10,000 small records of builtins, dates and decimals, as a notebook might keep in a dict."""
    day = datetime.date(2024, 1, 1)
    return {
        f"order-{i}": {
            "id": i,
            "customer": f"customer-{i % 311}",
            "amount": decimal.Decimal(i) / 100,
            "when": day + datetime.timedelta(days=i % 365),
            "tags": ["new", "priority"] if i % 3 == 0 else ["repeat"],
            "score": i / 7,
            "dims": (i % 10, i % 7, i % 3),
        }
        for i in range(10_000)
    }


def _arrays_equal(a: Any, b: Any) -> bool:
    import numpy as np

    return bool(a.shape == b.shape and np.array_equal(a[:1000], b[:1000]) and a[-1] == b[-1])


def _frames_equal(a: Any, b: Any) -> bool:
    return bool(a.shape == b.shape and a.head(100).equals(b.head(100)) and a.tail(100).equals(b.tail(100)))


def _cases(settings: Settings) -> list[Case]:
    megabytes = 40 if settings.quick else 400
    rows = 200_000 if settings.quick else 1_000_000
    # Multiples of 6 and 24: every order of the 3 (or 4) contenders comes up equally often. The array's round
    # trips are short but spiky (first touch of fresh memory on this VM), so it gets more samples.
    array, big, small = settings.n(12, quick=3), settings.n(6, quick=1), settings.n(24, quick=3)
    return [
        Case(
            f"ndarray f64 {megabytes} MB",
            _array(megabytes),
            {"np.save/np.load": _numpy},
            array,
            same=_arrays_equal,
            footprint=lambda value: int(value.nbytes),
        ),
        Case(
            f"DataFrame {rows:,}x20, 1 str col",
            _frame(rows),
            {"to_pickle/read_pickle": _pandas},
            big,
            dill_limit=0.2,
            same=_frames_equal,
            footprint=lambda value: int(value.memory_usage(deep=True).sum()),
        ),
        Case(
            "RandomForest, 100 trees",
            _estimator,
            {"joblib.dump/load": _joblib, "pickle": _pickle},
            small,
            same=lambda a, b: type(a) is type(b) and len(a.estimators_) == len(b.estimators_),
        ),
        Case("dict of 10k small records", _objects, {"pickle": _pickle}, small, same=lambda a, b: a == b),
    ]


def run(settings: Settings, section: Section) -> None:
    with tempfile.TemporaryDirectory(prefix="kale-bench-marshal-", dir="/tmp") as tmp:
        root = Path(tmp)
        for case in _cases(settings):
            section.rows.extend(_measure(case, root))
            gc.collect()
    section.info["repeat"] = {case.name: case.repeat for case in _cases(settings)}


def _prefault(size: int) -> None:
    """Touch and free `size` bytes, so that the next sample's big allocations get memory this VM has backed.

    Memory freed a while ago goes back to the host; the first write to it then costs a fault per page. Which
    sample met such memory was chance, and for the 400 MB array it made a sample 2-5x slower (either side).
    """
    import numpy as np

    block = np.ones(size // 8)
    del block


def _measure(case: Case, root: Path) -> list[Row]:
    value = case.make()
    contenders: dict[str, RoundTrip] = {"ours": _ours, **case.natives, "dill": _dill}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    # Repetition r runs the contenders in the r-th permutation of their order. A rotation would not do: it
    # keeps the cyclic order, so one contender would always run right after dill, which frees the most memory,
    # and the state of memory it leaves is what the next one meets (see _prefault).
    orders = list(itertools.permutations(contenders))
    formats: set[str] = set()
    for repetition in range(case.repeat + 1):  # repetition 0 warms up (imports, first-touch) and checks
        order = orders[0] if repetition == 0 else orders[(repetition - 1) % len(orders)]
        for name in order:
            folder = root / f"{name.replace('/', '_')}-{repetition}"
            folder.mkdir()
            # Start every sample with no dirty pages: otherwise whoever comes after a 400 MB write pays for
            # its write-back (the kernel throttles writers), and the order decides the ratio.
            os.sync()
            gc.collect()
            if case.footprint is not None:
                _prefault(3 * case.footprint(value))
            back: list[Any] = []
            elapsed = timed(lambda: back.append(contenders[name](value, folder)))  # noqa: B023
            if repetition == 0:
                if not case.same(value, back[0]):
                    raise AssertionError(f"{case.name}: {name} did not round-trip the value")
                if name == "ours":
                    formats.update(f.partition(".")[2] for f in os.listdir(folder / "artifact"))
            else:
                samples[name].append(elapsed)
            back.clear()
            shutil.rmtree(folder)
    ours = samples["ours"]
    fmt = ", ".join(sorted(formats))
    best_native = min(case.natives, key=lambda name: statistics.median(samples[name]))
    rows = []
    for name in [*case.natives, "dill"]:
        if name == best_native:
            limit: float | None = 1.2
        elif name == "dill":
            limit = case.dill_limit
        else:
            limit = None
        row = Row(
            what=f"{case.name} vs {name}",
            ours=statistics.median(ours),
            baseline=statistics.median(samples[name]),
            baseline_name=name,
            ours_samples=ours,
            baseline_samples=samples[name],
            note=f"ours: .{fmt}",
        )
        if limit is not None:
            row.target = f"<= {limit:g}"
            row.met = row.ratio <= limit
        rows.append(row)
    return rows
