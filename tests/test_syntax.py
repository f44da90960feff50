"""The sentence parses stored in the index and the phrase model's syntax features."""

from __future__ import annotations

import numpy as np

from qa.spans import SPAN_BASE, _subtrees, span_matrix
from qa.syntax import ENTS, POS, Parse, SyntaxTable, parse_texts
from qa.text import word_tokens

EN = "The factory was transferred to Technopolis Moscow in 2012."
RU = "Мэр Москвы Сергей Собянин открыл новый корпус."


def _words(text: str, p: Parse) -> list[str]:
    return [text[a:b] for a, b in zip(p.start.tolist(), p.end.tolist(), strict=True)]


def test_both_languages_are_parsed_with_offsets_into_the_text():
    en, ru, blank = parse_texts([EN, RU, "  "])
    assert _words(EN, en)[:3] == ["The", "factory", "was"]
    assert _words(RU, ru)[:4] == ["Мэр", "Москвы", "Сергей", "Собянин"]
    assert len(blank) == 0
    for p in (en, ru):
        # one root, every other head a token of the sentence
        assert (p.head == -1).sum() == 1
        assert ((p.head >= -1) & (p.head < len(p))).all()
    assert POS[en.pos[1]] == "NOUN" and POS[en.pos[en.head[1]]] == "VERB"
    names = {RU[a:b]: ENTS[t] for a, b, t in ru.ents.tolist()}
    assert names.get("Сергей Собянин") == "PER"


def test_table_slices_a_range_with_its_own_offsets_and_heads():
    text = EN + " " + EN
    p = parse_texts([EN])[0]
    table = SyntaxTable.from_parses([(0, 0, p), (0, len(EN) + 1, p), (1, 0, p)])
    second = table.parse(0, len(EN) + 1, len(text))
    assert _words(EN, second) == _words(EN, p)
    assert (second.head == p.head).all() and (second.ents == p.ents).all()
    both = table.parse(0, 0, len(text))
    assert len(both) == 2 * len(p)
    # a head outside the range reads as none: the tokens of half a sentence keep no stale index
    half = table.parse(0, 0, 20)
    assert ((half.head >= -1) & (half.head < len(half))).all()
    assert len(table.parse(2, 0, 10)) == 0


def test_subtrees_survive_a_cycle():
    # a parser gives no tree guarantee: 0 -> 1 -> 0
    p = Parse(start=np.array([0, 4]), end=np.array([3, 8]), pos=np.array([1, 4]), head=np.array([1, 0]),
              dep=np.zeros(2, dtype=np.int32), ents=np.zeros((0, 3), dtype=np.int32))
    whole, _stripped = _subtrees(p)
    assert len(whole) == 2


def test_syntax_columns_mark_constituents_entities_and_tree_distance():
    text = RU
    p = parse_texts([text])[0]
    tokens = word_tokens(text)
    # the question's word is "открыл" (opened): who opened the building?
    matched = {i for i, (a, b, _s) in enumerate(tokens) if text[a:b] == "открыл"}
    first, last, x = span_matrix(text, tokens, matched, p)
    col = {n: i for i, n in enumerate(SPAN_BASE)}

    def row(phrase: str) -> np.ndarray:
        a = text.index(phrase)
        k = next(k for k in range(len(first)) if tokens[first[k]][0] == a and tokens[last[k]][1] == a + len(phrase))
        return x[k]

    name = row("Сергей Собянин")
    assert name[col["ent_eq"]] == 1 and name[col["ent_PER"]] == 1 and name[col["const"]] == 1
    subject = row("Мэр Москвы Сергей Собянин")
    assert subject[col["const"]] == 1 and subject[col["onehead"]] == 1 and subject[col["hd_subj"]] == 1
    assert subject[col["par_m"]] == 1 and subject[col["td1"]] == 1
    assert row("Москвы Сергей")[col["const"]] == 0
    # without a parse (the default) the syntax columns stay empty
    _f, _l, bare = span_matrix(text, tokens, matched)
    assert not bare[:, col["const"]:].any()


def test_parsing_apart_gives_the_same_parses_and_leaves_the_caller_without_parsers():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qa.syntax import parse_texts\n"
        f"a = parse_texts([{EN!r}, {RU!r}], apart=True)\n"
        "print(len(a[0]), len(a[1]), int(a[1].ents.shape[0]), 'spacy' in sys.modules, 'natasha' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    here = parse_texts([EN, RU])
    assert out.split() == [str(len(here[0])), str(len(here[1])), str(here[1].ents.shape[0]), "False", "False"]
