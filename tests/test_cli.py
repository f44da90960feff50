"""The ``qa`` command end to end (in-process, real index)."""

from __future__ import annotations

import json

from qa import cli


def _env(monkeypatch, settings):
    monkeypatch.setenv("QA_SOURCES_DIR", str(settings.sources_dir))
    monkeypatch.setenv("QA_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("QA_CHUNK_SIZE", str(settings.chunk_size))
    monkeypatch.setenv("QA_CHUNK_OVERLAP", str(settings.chunk_overlap))


def test_build_then_search_json(monkeypatch, settings, capsys):
    _env(monkeypatch, settings)
    assert cli.main(["build", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["docs"] == 3 and summary["chunks"] > 0
    assert cli.main(["search", "Сколько технопарков в Москве?", "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "Сколько технопарков в Москве?"
    assert len(out["results"]) == 2
    r = out["results"][0]
    assert set(r) == {"doc_id", "chunk_id", "start", "end", "text", "score", "lang"}
    src = (settings.sources_dir / f"{r['doc_id']}.txt").read_text(encoding="utf-8")
    assert src[r["start"] : r["end"]] == r["text"]


def test_search_rebuilds_a_stale_index(monkeypatch, settings, capsys):
    _env(monkeypatch, settings)
    assert cli.main(["build"]) == 0
    capsys.readouterr()
    (settings.sources_dir / "delta.txt").write_text("Technopark Delta opened a wind tunnel in 2024.", encoding="utf-8")
    assert cli.main(["search", "wind tunnel", "--json"]) == 0
    captured = capsys.readouterr()
    assert "delta was added" in captured.err
    assert json.loads(captured.out)["results"][0]["doc_id"] == "delta"


def test_bad_input_exits_with_a_message(monkeypatch, settings, capsys):
    _env(monkeypatch, settings)
    assert cli.main(["search", "   "]) == 2
    assert "empty" in capsys.readouterr().err
    monkeypatch.setenv("QA_CHUNK_SIZE", "-5")
    assert cli.main(["search", "x"]) == 2
    assert "invalid settings" in capsys.readouterr().err
    monkeypatch.setenv("QA_CHUNK_SIZE", "300")
    monkeypatch.setenv("QA_SOURCES_DIR", str(settings.sources_dir / "nowhere"))
    assert cli.main(["build"]) == 1
    assert "no *.txt sources" in capsys.readouterr().err
