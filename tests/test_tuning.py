"""The phrase model's fit (qa/tuning.py) on made-up candidate groups: it learns the feature
that marks the best candidate and reaches the optimum of its objective."""

import numpy as np

from qa.spans import SPAN_BASE
from qa.tuning import SpanGroup, _matrix, fit_spans, span_vocab


def _groups(n: int = 40, seed: int = 0) -> list[SpanGroup]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        x = rng.normal(size=(5, len(SPAN_BASE)))
        best = int(rng.integers(5))
        x[:, SPAN_BASE.index("d1")] = 0.0
        x[best, SPAN_BASE.index("d1")] = 1.0  # the one feature that tells the answer
        f1 = np.full(5, 0.1)
        f1[best] = 1.0
        out.append(SpanGroup(f"a{k % 4}", "other", "what", x, f1, 0.0, np.arange(5), np.arange(5)))
    return out


def test_fit_picks_the_candidate_the_telling_feature_marks():
    train, test = _groups(seed=0), _groups(seed=1)
    vocab = span_vocab(train)
    w = fit_spans(train, vocab)
    assert w[vocab["d1"]] > 0 and abs(w[vocab["d1"]]) == np.abs(w).max()
    hits = [g.f1[int(np.argmax(_matrix(g, vocab) @ w))] == 1.0 for g in test]
    assert np.mean(hits) >= 0.9


def test_fit_reaches_the_optimum():
    groups = _groups()
    vocab = span_vocab(groups)
    w = fit_spans(groups, vocab, l2=0.01)
    # at the optimum of softmax loss + l2/2 |w|^2 the gradient vanishes: l2 * w equals
    # the mean over groups of X^T (target - p)
    grad = 0.01 * w
    for g in groups:
        x = _matrix(g, vocab)
        s = x @ w
        p = np.exp(s - s.max())
        p /= p.sum()
        grad += x.T @ (p - (g.f1 == g.f1.max())) / len(groups)
    assert np.abs(grad).max() < 1e-4
