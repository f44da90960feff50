"""The FAISS index type for a set of vectors, chosen by its size from measurements.

Inner product on L2-normalized vectors (= cosine) everywhere. The numbers behind the
rule are in bench/results/scale.md (``python bench/scale.py``: synthetic vectors around
real USE vectors, the XQuAD questions as queries, 2 cores) and docs/scaling.md; the
requirement was recall@10 and @100 >= 0.95 against exact search, single-query p50
<= 20 ms and index memory <= 2 GB at 1M vectors:

- Flat (exact) costs ~0.14 us per 512-d vector a query (p50 13 ms at 100k, 144 ms at
  1M). It is kept while a scan stays under ~3 ms, which covers every corpus the service
  has today (hundreds of vectors) and needs no training.
- IVF-PQ with a refine step wins above that: at 1M it met the target at p50 0.6-1.7 ms
  and built in ~50 s. HNSW (M=32, efConstruction 80) built 2.5x slower, needed
  efSearch 1024-1536 (p50 2.6-3.8 ms) and 2.3 GB, or missed recall@10 with 8-bit
  vectors: questions sit far from every passage (top-1 cosine ~0.52, top-100 ~0.46),
  little contrast for a graph walk. IVF-PQ alone stays at 0.46 (k=10) and 0.65 (k=100):
  64-byte codes cannot order neighbours that close, so the refine step is not optional.
- The refine step re-ranks with the full vectors (Flat) while they take <= 1 GB, then
  with 8-bit ones: at 1M, Flat refine is 2.1 GB and 8-bit 0.6 GB, same recall.
  qa/retrieval.py and qa/answering.py read stored vectors back (``reconstruct``) for
  exact rescoring: the Flat refine returns them exactly, the 8-bit one within 3.2e-3 of
  any cosine (measured), below the score gaps that matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

# Flat while n * dim stays under this: 20,480 vectors of 512 dims, a ~3 ms scan.
FLAT_MAX_FLOATS = 20_480 * 512
# and below this many vectors whatever the dimension: each PQ codebook has 256 entries and
# faiss wants ~39 training vectors an entry
FLAT_MIN_IVF = 10_000
# The refine step keeps full vectors up to this many bytes, 8-bit codes above.
FLAT_REFINE_MAX_BYTES = 1 << 30
# Searched lists and refine factor: recall@10 and @100 >= 0.95 at 100k and 1M (measured);
# beyond 1M (not measured) twice the lists, as the lists a neighbourhood spans grow.
NPROBE = 16
NPROBE_ABOVE_1M = 32
K_FACTOR = 16
# Coarse k-means: 10 iterations on 32 vectors a list (faiss: 25 on up to 256), to bound
# the build, which the k-means dominates; the recall above was measured with these.
KMEANS_ITER = 10
TRAIN_PER_LIST = 32
SEED = 1234


@dataclass(frozen=True)
class AnnSpec:
    """An index choice: a faiss ``index_factory`` string and its search parameters."""

    factory: str
    nprobe: int | None = None
    k_factor: int | None = None

    @property
    def exact(self) -> bool:
        return self.factory == "Flat"

    def to_json(self) -> dict[str, object]:
        return {"factory": self.factory, "nprobe": self.nprobe, "k_factor": self.k_factor}


def index_spec(n_vectors: int, dim: int) -> AnnSpec:
    """The index for ``n_vectors`` vectors of ``dim`` dimensions (see the module docstring)."""
    if n_vectors * dim <= FLAT_MAX_FLOATS or n_vectors < FLAT_MIN_IVF:
        return AnnSpec("Flat")
    nlist = max(1, round(4 * math.sqrt(n_vectors)))
    # 8 dimensions a sub-quantizer (PQ64 for 512): m must divide dim
    m = max([x for x in range(1, dim // 8 + 1) if dim % x == 0], default=1)
    refine = "Flat" if n_vectors * dim * 4 <= FLAT_REFINE_MAX_BYTES else "SQ8"
    nprobe = NPROBE if n_vectors <= 1_000_000 else NPROBE_ABOVE_1M
    return AnnSpec(f"IVF{nlist},PQ{m},Refine({refine})", nprobe=min(nprobe, nlist), k_factor=K_FACTOR)


def set_search_params(index: faiss.Index, spec: AnnSpec) -> None:
    """Apply ``spec``'s search parameters (``write_index`` stores them with the index)."""
    if spec.nprobe is not None:
        faiss.extract_index_ivf(index).nprobe = spec.nprobe
    if spec.k_factor is not None:
        refine = faiss.downcast_index(index)
        if not isinstance(refine, faiss.IndexRefine):  # only a Refine(...) stage re-ranks k_factor x k
            raise TypeError(f"k_factor is a parameter of a Refine index, not of {type(refine).__name__}")
        refine.k_factor = spec.k_factor


def make_index(vectors: np.ndarray, spec: AnnSpec | None = None) -> faiss.Index:
    """An inner-product index over ``vectors`` (float32, L2-normalized), trained, filled
    and with its search parameters set; ``spec`` defaults to ``index_spec`` of the size."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    spec = spec or index_spec(n, dim)
    if spec.exact:
        flat = faiss.IndexFlatIP(dim)  # what index_factory("Flat") builds, under its own class
        flat.add(vectors)
        return flat
    index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = KMEANS_ITER
        ivf.cp.min_points_per_centroid = 5
        pq = faiss.downcast_index(ivf)  # extract_index_ivf answers with the base class
        if isinstance(pq, faiss.IndexIVFPQ):
            # index_factory turns on polysemous training (codes for Hamming filtering, which
            # is not used): ~30x the rest of the PQ training
            pq.do_polysemous_training = False  # type: ignore[attr-defined]  # a field faiss's stubs leave out
        rows = min(n, TRAIN_PER_LIST * ivf.nlist)
        train = vectors if rows == n else vectors[np.random.default_rng(SEED).choice(n, rows, replace=False)]
        index.train(train)
    index.add(vectors)
    set_search_params(index, spec)
    return index
