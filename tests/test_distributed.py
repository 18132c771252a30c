"""Scale-out: the deep-model prediction runs unchanged on a dask.distributed cluster.

(ESTARFM's distributed test lives in tests/test_estarfm.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

import xstf

pytest.importorskip("torch")
distributed = pytest.importorskip("dask.distributed")


@pytest.mark.slow
def test_predict_on_local_cluster_equals_threaded(tmp_path):
    ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    model = xstf.models.fit(ds, "edcstfn", epochs=1, patch_size=24, stride=12, progress=False)
    path = model.save(tmp_path / "m.pt")
    lazy = ds.chunk({"time": 1, "y": 24, "x": 48})
    targets = ds.stf.targets[[3, 30]]
    threaded = xstf.models.predict(lazy, path, targets=targets, tile=32, overlap=8).compute(
        scheduler="threads"
    )
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster),
    ):
        on_cluster = xstf.models.predict(lazy, path, targets=targets, tile=32, overlap=8).compute()
    assert np.isfinite(threaded.values).any()
    np.testing.assert_allclose(on_cluster.values, threaded.values, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(np.isnan(on_cluster.values), np.isnan(threaded.values))
