"""A seconds-long run of benchmarks/corpora.py on a four-file local corpus, so the script does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import ROOT, child_env, make_repo

CORPUS: dict[str, str | bytes] = {
    "pkg/geometry.py": (
        "def rectangle_area(width, height):\n"
        "    \"\"\"Multiply the width by the height of a rectangle to get the space it covers.\"\"\"\n"
        "    return width * height\n\n\n"
        # Long enough to be a chunk of its own, so a symbol hit needs the right lines, not just the file.
        "UNIT_NAMES = {\n" + "".join(f"    'unit_{n}': 'a unit of measure {n}',\n" for n in range(60)) + "}\n\n\n"
        "def circle_circumference(radius):\n"
        "    \"\"\"Return the length of the boundary of a circle from its radius, using pi.\"\"\"\n"
        "    return 2 * 3.14159 * radius\n"
    ),
    "pkg/text_tools.py": (
        "import re\n\n\n"
        "def slugify_title(title):\n"
        "    \"\"\"Turn a headline into a lowercase string safe for a web address segment.\"\"\"\n"
        "    return re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')\n"
    ),
    "web/dates.ts": (
        "/**\n"
        " * Work out which week of the year a calendar date falls in.\n"
        " *\n"
        " * @param value an ISO date\n"
        " */\n"
        "export function isoWeekNumber(value: string): number {\n"
        "  const day = new Date(Date.parse(value));\n"
        "  return Math.ceil((day.getTime() - new Date(day.getFullYear(), 0, 1).getTime()) / 604800000);\n"
        "}\n"
    ),
    "web/cart.ts": (
        "export class ShoppingCart {\n"
        "  private prices: number[] = [];\n\n"
        "  /** Add up the prices of every item put in the basket so far. */\n"
        "  totalPrice(): number {\n"
        "    return this.prices.reduce((sum, price) => sum + price, 0);\n"
        "  }\n"
        "}\n"
    ),
    "web/cart.d.ts": "export declare class ShoppingCart { totalPrice(): number }\n",  # dropped: a .d.ts
    "docs/notes.md": "# Notes\n\nNot named by the question file's include.\n",
}


def _question(qid: str, split: str, text: str, path: str, symbol: str, line: int) -> dict[str, Any]:
    return {"id": qid, "split": split, "question": text, "answers": [{"path": path, "symbol": symbol, "line": line}]}


QUESTIONS = {
    "corpus": "tiny", "source": {"include": ["pkg", "web"]}, "written": "for the smoke test",
    "questions": [
        _question("tiny-01", "dev", "rectangle area", "pkg/geometry.py", "rectangle_area", 1),
        _question("tiny-02", "dev", "make a url slug from a headline", "pkg/text_tools.py", "slugify_title", 4),
        _question("tiny-03", "test", "week number of a date", "web/dates.ts", "isoWeekNumber", 6),
        _question("tiny-04", "test", "sum of the prices in a shopping cart", "web/cart.ts",
                  "ShoppingCart.totalPrice", 5),
    ],
}


def _run(tmp_path: Path, fresh_db: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    corpus = make_repo(tmp_path / "tiny", CORPUS)
    questions = tmp_path / "tiny.json"
    questions.write_text(json.dumps(QUESTIONS), encoding="utf-8")
    out, rows = tmp_path / "corpora.json", tmp_path / "details.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/corpora.py", "--embedders", "hashing", "--corpus-dir", f"tiny={corpus}",
         "--questions", str(questions), "--json-out", str(out), "--details-out", str(rows),
         "--cache", str(tmp_path / "cache")],
        check=False, cwd=ROOT, env=child_env(fresh_db), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == report
    return report, json.loads(rows.read_text())


def test_corpora_benchmark_reports_fractions_and_finds_a_function_by_its_name(tmp_path: Path, fresh_db: str) -> None:
    report, rows = _run(tmp_path, fresh_db)
    sets = report["corpora"]["tiny"]["sets"]
    assert sets["questions"]["tree_files"] == 4  # the .d.ts and the file outside `include` are left out
    assert sets["questions"]["answer_problems"] == []
    assert sets["docstrings"]["queries"] >= 3
    results = report["results"]["tiny"]
    assert set(results["questions"]["hashing"]["hybrid"]) == {"dev", "test", "all"}
    # docstring queries are split by a checksum of their place: a half may be empty in a tiny corpus
    doc = results["docstrings"]["hashing"]["hybrid"]
    assert "all" in doc and set(doc) <= {"dev", "test", "all"}
    assert sum(doc[s]["queries"] for s in ("dev", "test") if s in doc) == doc["all"]["queries"]
    split_metrics = [(set_name, split, m) for set_name, by_set in results.items() for group in by_set.values()
                     for by_mode in group.values() for split, m in by_mode.items()]
    assert len(split_metrics) == 5 * 3 + 5 * len(doc)  # 3 modes and 2 baselines, by split
    for set_name, split, m in split_metrics:
        if set_name == "questions":
            assert m["queries"] == 2 if split in ("dev", "test") else m["queries"] >= 3
        assert all(0.0 <= v <= 1.0 for k, v in m.items() if k != "queries")
        assert m["file_r@1"] <= m["file_mrr@10"] <= m["file_r@10"]
    first = next(r for r in rows if r["id"] == "tiny-01")
    assert first["ranks"]["hashing/lexical"] == {"file": 1, "symbol": 1}
