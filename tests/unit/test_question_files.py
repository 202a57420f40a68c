"""The committed question sets of benchmarks/corpora.py: well formed and split in halves (corpora.py
itself checks each answer's line against the downloaded source: `answer_problems`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT

FILES = sorted((ROOT / "benchmarks" / "questions").glob("*.json"))


def test_every_corpus_that_corpora_py_runs_has_a_question_file() -> None:
    from benchmarks.corpora import CORPORA

    assert {f.stem for f in FILES} == set(CORPORA)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_question_file_holds_at_least_40_questions_split_into_dev_and_test_halves(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["corpus"] == path.stem
    assert {"registry", "package", "version", "root", "include"} <= set(data["source"])
    questions = data["questions"]
    ids = [q["id"] for q in questions]
    assert len(questions) >= 40 and len(set(ids)) == len(ids)
    splits = [q["split"] for q in questions]
    assert set(splits) == {"dev", "test"} and abs(splits.count("dev") - splits.count("test")) <= 1
    for q in questions:
        assert q["question"].strip() and q["answers"], q["id"]
        for a in q["answers"]:
            assert a["path"] and not a["path"].startswith("/") and a["symbol"] and int(a["line"]) >= 1, q["id"]
