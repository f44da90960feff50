"""The index type chosen by size, and that each choice finds the exact neighbours
(Flat) or nearly all of them (IVF-PQ with refinement), checked against brute force."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from qa.ann import FLAT_MAX_FLOATS, AnnSpec, index_spec, make_index


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors around 2000 centres that gather in 100 topics (as passages do: a few
    near-duplicates, then related ones), and 200 queries not among them."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((100, dim)))
    centres = _unit(topics[rng.integers(0, 100, 2000)] + rng.standard_normal((2000, dim)) / np.sqrt(dim))

    def around(m: int) -> np.ndarray:
        return _unit(centres[rng.integers(0, 2000, m)] + 0.75 * rng.standard_normal((m, dim)) / np.sqrt(dim))

    return around(n), around(200)


def _truth(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def test_choice_by_size():
    assert index_spec(0, 512).exact
    assert index_spec(162, 512) == AnnSpec("Flat")  # today's bundled sentences
    assert index_spec(FLAT_MAX_FLOATS // 512, 512).exact
    small = index_spec(FLAT_MAX_FLOATS // 512 + 1, 512)
    assert small.factory.startswith("IVF") and ",PQ64," in small.factory and small.factory.endswith("Refine(Flat)")
    assert index_spec(100_000, 512).factory == "IVF1265,PQ64,Refine(Flat)"
    big = index_spec(1_000_000, 512)
    assert big.factory == "IVF4000,PQ64,Refine(SQ8)" and big.nprobe == 16 and big.k_factor == 16
    assert index_spec(10_000_000, 512).nprobe == 32
    # the Flat limit is a scan cost: fewer dimensions allow more vectors
    assert index_spec(100_000, 64).exact and not index_spec(100_000, 512).exact
    # too few vectors to train PQ codebooks, however many dimensions
    assert index_spec(5_000, 4096).exact and not index_spec(20_000, 4096).exact
    # sub-quantizers must divide the dimension
    assert ",PQ10," in index_spec(1_000_000, 100).factory


def test_flat_returns_exact_neighbours():
    rng = np.random.default_rng(1)
    x, q = _unit(rng.standard_normal((2000, 64))), _unit(rng.standard_normal((50, 64)))
    index = make_index(x)
    assert isinstance(index, faiss.IndexFlatIP)
    scores, ids = index.search(q, 10)
    np.testing.assert_array_equal(ids, _truth(x, q, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, axis=1), atol=1e-5)


@pytest.mark.parametrize("refine", ["Flat", "SQ8"])
def test_ivfpq_recall_against_brute_force(refine, tmp_path):
    x, q = _clustered(20_000, 128, seed=2)
    spec = index_spec(1_000_000, 128)  # force the large-corpus choice on a small set
    spec = AnnSpec(spec.factory.replace("IVF4000", "IVF566").replace("Refine(SQ8)", f"Refine({refine})"),
                   spec.nprobe, spec.k_factor)
    index = make_index(x, spec)
    assert isinstance(index, faiss.IndexRefine) and index.ntotal == len(x)
    for k in (10, 100):
        _, ids = index.search(q, k)
        assert _recall(ids, _truth(x, q, k)) >= 0.95, (refine, k)
    # retrieval and answering rescore with stored vectors: read back, they are (nearly) exact
    rows = np.arange(0, len(x), 97)
    err = np.abs(q @ (index.reconstruct_batch(rows) - x[rows]).T).max()
    assert err == 0.0 if refine == "Flat" else err < 5e-3
    np.testing.assert_allclose(index.reconstruct_n(100, 7), x[100:107], atol=0 if refine == "Flat" else 5e-3)
    # the search parameters travel with the file, also when it is memory-mapped
    path = tmp_path / "v.faiss"
    faiss.write_index(index, str(path))
    back = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    assert faiss.extract_index_ivf(back).nprobe == spec.nprobe
    assert faiss.downcast_index(back).k_factor == spec.k_factor
    np.testing.assert_array_equal(back.search(q, 10)[1], index.search(q, 10)[1])
