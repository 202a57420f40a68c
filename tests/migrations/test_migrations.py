"""The one migration chain: upgrade, downgrade and upgrade again on a real database."""

from __future__ import annotations

from typing import Any

import dramatiq_pg
import psycopg2

from alembic.script import ScriptDirectory

from domain import lexical
from domain.database import alembic_config, current_revision, downgrade, migrate

TABLES = {"projects", "repositories", "files", "chunks", "indexing_jobs", "indexing_batches", "worker_heartbeats",
          "embedding_cache"}


def _tables(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('public', 'dramatiq')")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


def test_upgrade_then_downgrade_then_upgrade_leaves_the_full_schema(empty_db: str) -> None:
    migrate(empty_db)
    assert {f"public.{t}" for t in TABLES} | {"dramatiq.queue"} <= _tables(empty_db)
    head = ScriptDirectory.from_config(alembic_config(empty_db)).get_current_head()
    assert head is not None
    assert current_revision(empty_db) == head
    downgrade(empty_db)
    assert _tables(empty_db) <= {"public.alembic_version"}
    migrate(empty_db)
    assert {f"public.{t}" for t in TABLES} | {"dramatiq.queue"} <= _tables(empty_db)


def test_upgrade_succeeds_where_the_dramatiq_schema_already_exists(empty_db: str) -> None:
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(dramatiq_pg.generate_init_sql())
        cur.execute("INSERT INTO dramatiq.queue (message_id, state, message) "
                    "VALUES (gen_random_uuid(), 'queued', '{}'::jsonb)")
    conn.close()
    migrate(empty_db)
    conn = psycopg2.connect(empty_db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dramatiq.queue")
        assert cur.fetchone()[0] == 1  # the existing queue and its message are kept
    conn.close()


def test_job_table_rejects_unknown_status_and_out_of_range_progress(empty_db: str) -> None:
    migrate(empty_db)
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        for column, value in (("status", "'lost'"), ("progress_percentage", "101")):
            try:
                cur.execute(f"INSERT INTO indexing_jobs (repo_path, repo_name, project_id, {column}) "
                            f"VALUES ('/r', 'r', 'p', {value})")
            except psycopg2.errors.CheckViolation:
                continue
            raise AssertionError(f"{column}={value} was accepted")
    conn.close()


def test_chunk_rows_with_768_dimension_vectors_stay_inline(empty_db: str) -> None:
    migrate(empty_db)
    conn = psycopg2.connect(empty_db)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO projects (id) VALUES ('p')")
            cur.execute("INSERT INTO repositories (project_id, root_path, name) VALUES ('p', '/r', 'r') RETURNING id")
            repo = cur.fetchone()[0]
            cur.execute("INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash) "
                        "VALUES (%s, 'a.py', 'python', 1, 1, 'h') RETURNING id", (repo,))
            file_id = cur.fetchone()[0]
            vector = "[" + ",".join(["0.036"] * 768) + "]"  # 1.5 kB as halfvec
            content = "".join(f"line_{n} = compute({n})\n" for n in range(40))  # ~1 kB
            cur.execute("""INSERT INTO chunks (file_id, repository_id, path, language, start_line, end_line, content,
                               content_hash, embedding, embedding_model)
                           VALUES (%s, %s, 'a.py', 'python', 1, 40, %s, 'h', %s::halfvec, 'm')""",
                        (file_id, repo, content, vector))
            cur.execute("SELECT pg_column_size(embedding), pg_column_compression(content) FROM chunks")
            assert cur.fetchone() == (4 + 4 + 768 * 2, None)  # stored whole (header, dims, halfs), uncompressed
            cur.execute("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'chunks'::regclass")
            assert cur.fetchone()[0] == 0  # nothing went to the TOAST table
    finally:
        conn.close()


def test_deleting_a_repository_still_deletes_its_chunks_through_their_files(empty_db: str) -> None:
    migrate(empty_db)
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        repo, file_id = _repository_with_a_file(cur)
        cur.execute("INSERT INTO chunks (file_id, repository_id, path, language, start_line, end_line, content, "
                    "content_hash, embedding, embedding_model) VALUES (%s, %s, 'a.py', 'python', 1, 1, 'x', 'h', "
                    "'[1,0]', 'm')", (file_id, repo))
        cur.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'chunks'::regclass AND contype = 'f'")
        assert cur.fetchone()[0] == 1  # only chunks.file_id: the file's cascade reaches the chunk
        cur.execute("DELETE FROM repositories WHERE id = %s", (repo,))
        cur.execute("SELECT count(*) FROM chunks")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_the_lexicon_migration_counts_the_chunks_already_stored(empty_db: str) -> None:
    """Existing repositories get their lexicon at once, not at their next job."""
    migrate(empty_db, "0009")
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        repo, file_id = _repository_with_a_file(cur)
        for lexemes in ("'parse':1 'date':2", "'parse':1A 'http':2"):
            cur.execute("INSERT INTO chunks (file_id, repository_id, path, language, start_line, end_line, content, "
                        "content_hash, embedding, embedding_model, lexemes) VALUES (%s, %s, 'a.py', 'python', 1, 1, "
                        "'x', 'h', '[1,0]', 'm', %s) RETURNING id", (file_id, repo, lexemes))
        last = cur.fetchone()[0]
    conn.close()
    migrate(empty_db)
    conn = psycopg2.connect(empty_db)
    with conn.cursor() as cur:
        cur.execute("SELECT lexeme, chunks, lexemes FROM lexicon ORDER BY lexeme")
        assert cur.fetchall() == [("", 2, 4), ("date", 1, 0), ("http", 1, 0), ("parse", 2, 0)]
        cur.execute("SELECT lexicon_through FROM repositories")
        assert cur.fetchone()[0] == last
    conn.close()


def test_the_lexicon_prior_migration_loads_the_shipped_counts_and_its_downgrade_drops_them(empty_db: str) -> None:
    migrate(empty_db, "0011")
    conn = psycopg2.connect(empty_db)
    with conn.cursor() as cur:
        cur.execute("SELECT lexeme, chunks FROM lexicon_prior")
        assert dict(cur.fetchall()) == dict(lexical.prior_counts())
    conn.close()
    downgrade(empty_db, "0010")
    assert "public.lexicon_prior" not in _tables(empty_db)


def test_the_definition_heads_migration_marks_every_file_changed(empty_db: str) -> None:
    """Its files' chunks were cut by the old chunker: the next job re-chunks them."""
    migrate(empty_db, "0011")
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        _repository_with_a_file(cur)
    migrate(empty_db, "0012")
    with conn.cursor() as cur:
        cur.execute("SELECT mtime_ns, content_hash FROM files")
        assert cur.fetchall() == [(-1, "")]
    conn.close()


def test_the_type_names_migration_marks_the_rust_go_and_cpp_files_changed(empty_db: str) -> None:
    """Their symbols were named by the old chunker (`impl Iterator for PeekNth<I>::next`); others' were not."""
    migrate(empty_db, "0012")
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        repo, _ = _repository_with_a_file(cur)
        for path, language in (("lib.rs", "rust"), ("mux.go", "go"), ("shape.cpp", "cpp")):
            cur.execute("INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash) "
                        "VALUES (%s, %s, %s, 1, 1, 'h')", (repo, path, language))
    migrate(empty_db, "0013")
    with conn.cursor() as cur:
        cur.execute("SELECT path, mtime_ns, content_hash FROM files ORDER BY path")
        assert cur.fetchall() == [("a.py", 1, "h"), ("lib.rs", -1, ""), ("mux.go", -1, ""), ("shape.cpp", -1, "")]
    conn.close()


def _repository_with_a_file(cur: Any) -> tuple[str, int]:
    """Project p, repository /r and its file a.py; their ids."""
    cur.execute("INSERT INTO projects (id) VALUES ('p')")
    cur.execute("INSERT INTO repositories (project_id, root_path, name) VALUES ('p', '/r', 'r') RETURNING id")
    repo = cur.fetchone()[0]
    cur.execute("INSERT INTO files (repository_id, path, language, size_bytes, mtime_ns, content_hash) "
                "VALUES (%s, 'a.py', 'python', 1, 1, 'h') RETURNING id", (repo,))
    return repo, cur.fetchone()[0]
