"""The reader: multilingual-e5-small fine-tuned to pick an answer span, or none.

SQuAD 2.0-style: the network reads ``<s> question </s></s> window </s>`` and gives every
token a start and an end logit; the ``<s>`` token's pair is the "no answer" score. A span
scores ``start[i] + end[j]``; the margin of the best span over the no-answer score is what
the confidence is computed from. Windows of a passage overlap so that an answer near a
window's edge is read whole in one of them.

The shipped weights (``qa/models/reader.safetensors``) are every parameter but the
word-embedding table, which stays the package's own (``qa.e5``), frozen during training.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from qa.e5 import load_base, load_tokenizer
from qa.types import ModelFileError

if TYPE_CHECKING:  # transformers takes seconds to import; qa.e5 imports it where a model is built
    from transformers import BertModel

MODEL_DIR = Path(__file__).with_name("models")
WEIGHTS = MODEL_DIR / "reader.safetensors"
# Longest answer span read, in word pieces (SQuAD answers: 99% are within 30).
MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64


class ReaderModel(nn.Module):
    """The base encoder with a start/end head over its last layer."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert
        self.qa = nn.Linear(bert.config.hidden_size, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.qa(h).float()
        start, end = logits.unbind(-1)
        # padding can never be a start or an end
        neg = torch.finfo(start.dtype).min / 4
        return start.masked_fill(attention_mask == 0, neg), end.masked_fill(attention_mask == 0, neg)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What training changed: every parameter (the packed word table is a buffer)."""
        return {k: v.detach() for k, v in self.named_parameters()}


def new_model(base: Path | None = None, seed: int = 0) -> ReaderModel:
    torch.manual_seed(seed)
    return ReaderModel(load_base(base))


def save_weights(model: ReaderModel, path: Path, meta: dict[str, object]) -> None:
    """fp16 safetensors of the trained parameters (~42 MB), written atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.to(torch.float16).contiguous() for k, v in model.trained_state().items()}, str(tmp),
              metadata={k: json.dumps(v) for k, v in meta.items()})
    tmp.replace(path)


def _read_weights(weights: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not weights.is_file():
        raise ModelFileError(f"reader weights not found: {weights} (train them with `make train-reader`)")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"reader weights {weights} cannot be read: {e}") from e


def _check(weights: Path, state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> None:
    if set(state) != set(expected):
        missing, unexpected = sorted(set(expected) - set(state))[:3], sorted(set(state) - set(expected))[:3]
        raise ModelFileError(f"reader weights {weights} do not fit the model: missing {missing}, unexpected {unexpected}")
    for k, v in state.items():
        if tuple(v.shape) != expected[k] or not torch.isfinite(v).all():
            raise ModelFileError(f"reader weights {weights}: tensor {k} is damaged ({tuple(v.shape)})")


def check_weights(weights: Path = WEIGHTS) -> None:
    """Raise ModelFileError unless ``weights`` is a readable reader file of the right shapes
    (a check before the server starts its workers: the network is built on the meta device,
    for its parameters' names and shapes, without weights)."""
    from transformers import BertModel

    from qa.e5 import base_config, package_model_path, read_header

    config = base_config(read_header(package_model_path()))
    config.vocab_size = 1  # the word table is not in the file (it is the package's)
    with torch.device("meta"):
        model = ReaderModel(BertModel(config, add_pooling_layer=False))
    expected = {k: tuple(v.shape) for k, v in model.named_parameters()
                if not k.startswith("bert.embeddings.word_embeddings")}
    _check(weights, _read_weights(weights), expected)


def load_model(weights: Path = WEIGHTS, base: Path | None = None) -> ReaderModel:
    """The reader with its trained weights; a missing or damaged file is a ModelFileError."""
    state = _read_weights(weights)
    model = ReaderModel(load_base(base))
    _check(weights, state, {k: tuple(v.shape) for k, v in model.named_parameters()})
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.eval()


def weights_meta(weights: Path = WEIGHTS) -> dict[str, object]:
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


@dataclass(frozen=True)
class Window:
    """A piece of one text the reader reads: ``text[start:end]`` of text ``key``."""

    key: int
    start: int
    end: int


@dataclass(frozen=True)
class Span:
    """The best answer in one window: character offsets into its text, and its scores."""

    key: int
    start: int
    end: int
    score: float  # start + end logit of the span
    null: float  # the window's no-answer score

    @property
    def margin(self) -> float:
        return self.score - self.null


def best_spans(start: np.ndarray, end: np.ndarray, ctx: np.ndarray, top: int = 1,
               max_len: int = MAX_ANSWER_TOKENS) -> list[tuple[int, int, float]]:
    """The ``top`` (i, j, start[i] + end[j]) with i <= j < i + max_len, both in the context
    (``ctx`` marks the window's own tokens)."""
    s = np.where(ctx, start, -np.inf)
    e = np.where(ctx, end, -np.inf)
    n = len(s)
    scores = s[:, None] + e[None, :]
    i, j = np.indices((n, n))
    scores[(j < i) | (j >= i + max_len)] = -np.inf
    flat = np.argsort(scores, axis=None)[::-1][:top]
    out = []
    for f in flat:
        a, b = divmod(int(f), n)
        if np.isfinite(scores[a, b]):
            out.append((a, b, float(scores[a, b])))
    return out


class Reader:
    """The loaded reader: tokenizer, network (int8 or bf16), one lock-free call per read."""

    def __init__(self, model: ReaderModel, precision: str = "bf16", threads: int | None = None) -> None:
        self.tokenizer = load_tokenizer()
        self.precision = precision
        if threads:
            torch.set_num_threads(threads)
        # NumPy's BLAS on one thread in this process from now on (the question path's products
        # are small; bulk embedding sets its own threads per call): OpenBLAS's woken threads spin
        # ~0.1 s after a call on the cores this network needs next, which made a window read
        # right after a cross-lingual retrieval take ~120 ms instead of ~45
        threadpool_limits(1, user_api="blas")
        if precision == "int8":
            # Linear layers in int8 (the CPU's VNNI): ~1.4x faster than bf16 here, but it cost
            # 16 F1 points on XQuAD's gold paragraphs (EN 53.6 against 69.6 in fp32; bf16 69.0 on
            # the first 300): the FFN outputs' activations have outliers a per-tensor scale
            # flattens. Kept as a setting, not the default. torch 2.13 warns that this API
            # will move to torchao; it is what the pinned torch has.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        self.model = model.eval()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights: Path = WEIGHTS, precision: str = "bf16", threads: int | None = None) -> Reader:
        return cls(load_model(weights), precision, threads)

    def windows(self, text: str, key: int, question: str, max_tokens: int, stride: int) -> list[Window]:
        """``text`` cut into windows of at most ``max_tokens`` with the question, overlapping by
        ``stride`` tokens, each at token boundaries."""
        enc = self.tokenizer(question, text, truncation="only_second", max_length=max_tokens, stride=stride,
                             return_overflowing_tokens=True, return_offsets_mapping=True)
        out = []
        for k, offsets in enumerate(enc["offset_mapping"]):
            seq = enc.sequence_ids(k)
            spans = [o for o, s in zip(offsets, seq, strict=True) if s == 1]
            if spans:
                out.append(Window(key, spans[0][0], spans[-1][1]))
        return out

    def read(self, question: str, texts: Sequence[str], windows: Sequence[Window], top: int = 1) -> list[list[Span]]:
        """The ``top`` spans of each window (character offsets into ``texts[w.key]``)."""
        if not windows:
            return []
        q = cut_question(self.tokenizer, question)
        enc = self.tokenizer([q] * len(windows), [texts[w.key][w.start:w.end] for w in windows], padding=True,
                             truncation="only_second", max_length=512, return_offsets_mapping=True, return_tensors="pt")
        with self._lock, torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                                enabled=self.precision == "bf16"):
            start, end = self.model(enc["input_ids"], enc["attention_mask"])
        start_np, end_np = start.float().numpy(), end.float().numpy()
        offsets = enc["offset_mapping"].numpy()
        out: list[list[Span]] = []
        for k, w in enumerate(windows):
            ctx = np.array([s == 1 for s in enc.sequence_ids(k)])
            null = float(start_np[k, 0] + end_np[k, 0])
            spans: list[Span] = []
            # a few more than asked: an answer never runs across a line break (a paragraph or
            # a list item), so such spans are passed over
            for i, j, score in best_spans(start_np[k], end_np[k], ctx, top + 4):
                a, b = _trimmed(texts[w.key], w.start + int(offsets[k, i, 0]), w.start + int(offsets[k, j, 1]))
                if a < b and "\n" not in texts[w.key][a:b] and len(spans) < top:
                    spans.append(Span(w.key, a, b, score, null))
            out.append(spans)
        return out


def _trimmed(text: str, a: int, b: int) -> tuple[int, int]:
    """A span without the spaces a word piece's offsets may hold ("▁10" covers " 10") and
    without a clause's trailing comma, semicolon or colon."""
    while a < b and text[a].isspace():
        a += 1
    while a < b and (text[b - 1].isspace() or text[b - 1] in ",;:"):
        b -= 1
    return a, b


def cut_question(tokenizer, question: str) -> str:
    """The question cut to its last MAX_QUESTION_TOKENS pieces (a follow-up's history goes first
    and is what is cut)."""
    ids = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offs = ids["offset_mapping"]
    if len(offs) <= MAX_QUESTION_TOKENS:
        return question
    return question[offs[-MAX_QUESTION_TOKENS][0]:]


def cached_reader(weights: Path = WEIGHTS, precision: str = "bf16") -> Reader:
    """One loaded reader a process for a weights file (as it is on disk) and precision:
    a reindex or a second corpus shares it (loading costs seconds and ~150 MB)."""
    st = weights.stat() if weights.is_file() else None
    return _cached(weights.resolve(), precision, st.st_mtime_ns if st else 0, st.st_size if st else 0)


@functools.lru_cache(maxsize=2)
def _cached(weights: Path, precision: str, _mtime: int, _size: int) -> Reader:
    return Reader.load(weights, precision)
