"""The ledger: hash chain over every field (fingerprints included), verify, export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from poster import config, fingerprint, ledger, store
from tests.conftest import artwork, run_cli


def _entry(n: int, **extra: object) -> ledger.Entry:
    im = artwork(seed=n)
    fields = {
        "variant_fp": fingerprint.of_image(im),
        "original_fp": fingerprint.of_image(im),
        "variant_thumb": fingerprint.thumbnail(im),
        **extra,
    }
    return ledger.Entry(
        mark_id=0x100000000000 + n,
        job_id=n,
        idx=0,
        target="x",
        adapter="local",
        url=f"https://example.org/{n}",
        media_url=None,
        remote_id=str(n),
        posted_at=f"2026-11-{n + 1:02d}T10:00:00+00:00",
        original_sha256="a" * 64,
        variant_sha256="b" * 64,
        render=ledger.canonical({"policy": "heavy", "steps": [{"use": "watermark", "seed": 1000 + n}]}),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = store.connect(tmp_path / "poster.db")
    with store.transaction(conn):
        for n in range(1, 6):
            ledger.append(conn, _entry(n))
    return conn


def test_chain_is_intact_after_appends(db: sqlite3.Connection) -> None:
    result = ledger.verify(db)
    assert result.ok and result.rows == 5
    rows = ledger.rows(db)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == ledger.GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["row_hash"] for i in range(1, 5))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("url", "'https://evil.example/'"),
        ("variant_fp", "x'00'"),  # a forged fingerprint would redirect perceptual traces
        ("original_fp", "zeroblob(208)"),
        ("variant_thumb", "x''"),
        ("render", "'{}'"),
        ("posted_at", "'2020-01-01T00:00:00+00:00'"),
    ],
)
def test_changing_any_field_is_detected_at_that_row(db: sqlite3.Connection, column: str, value: str) -> None:
    db.execute(f"UPDATE ledger SET {column} = {value} WHERE seq = 3")
    result = ledger.verify(db)
    assert not result.ok and result.first_bad == 3
    assert "row 3" in (result.problem or "")


def test_removed_row_is_detected(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM ledger WHERE seq = 2")
    result = ledger.verify(db)
    assert not result.ok and result.first_bad == 2 and "missing" in (result.problem or "")


def test_reordered_rows_are_detected(db: sqlite3.Connection) -> None:
    """Swapping two rows' contents (keeping seq) breaks the chain at the first swapped row."""
    a = dict(db.execute("SELECT * FROM ledger WHERE seq = 2").fetchone())
    b = dict(db.execute("SELECT * FROM ledger WHERE seq = 4").fetchone())
    for seq, src in ((2, b), (4, a)):
        db.execute(
            "UPDATE ledger SET mark_id = ?, url = ?, row_hash = ?, prev_hash = ? WHERE seq = ?",
            (src["mark_id"] + 10**9, src["url"], src["row_hash"], src["prev_hash"], seq),
        )
    result = ledger.verify(db)
    assert not result.ok and result.first_bad == 2


def test_export_has_contract_fields_seeds_and_prints(db: sqlite3.Connection) -> None:
    rows = ledger.rows(db)
    r = rows[0]
    for k in ("id", "target", "url", "posted_at", "original_sha256", "variant_sha256"):
        assert k in r
    assert r["id"] == "100000000001"
    assert r["seeds"] == {"0:watermark": 1001}
    assert len(bytes.fromhex(r["variant_fp"])) == fingerprint.FP_BYTES
    assert len(bytes.fromhex(r["variant_thumb"])) == fingerprint.THUMB_BYTES
    parsed = list(csv.DictReader(io.StringIO(ledger.to_csv(rows))))
    assert parsed[0]["id"] == "100000000001"
    assert json.loads(parsed[0]["seeds"]) == {"0:watermark": 1001}
    assert parsed[4]["variant_fp"] == rows[4]["variant_fp"]


def test_fingerprints_load_in_seq_order(db: sqlite3.Connection) -> None:
    seqs, variant, original = ledger.fingerprints(db)
    assert seqs == [1, 2, 3, 4, 5]
    assert variant[0] == fingerprint.of_image(artwork(seed=1))
    idx = fingerprint.Index.from_rows(seqs, variant, original)
    d, _, _ = idx.distances(fingerprint.query(artwork(seed=4)))
    assert int(idx.seqs[d.argmin()]) == 4 and d.min() == 0


def test_cli_verify_fails_naming_the_row(home: config.Config) -> None:
    conn = store.connect(home.db_path)
    with store.transaction(conn):
        for n in range(1, 4):
            ledger.append(conn, _entry(n))
    assert run_cli("ledger", "verify", cfg=home)[0] == 0
    conn.execute("UPDATE ledger SET variant_fp = x'00' WHERE seq = 2")
    conn.close()
    code, out, err = run_cli("ledger", "verify", cfg=home)
    assert code != 0 and "row 2" in err and out == ""
    code, out, _ = run_cli("ledger", "export", "--csv", cfg=home)
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 3


def test_cli_head_pins_the_chain(home: config.Config) -> None:
    conn = store.connect(home.db_path)
    with store.transaction(conn):
        for n in range(1, 3):
            ledger.append(conn, _entry(n))
    last = ledger.rows(conn)[-1]["row_hash"]
    code, out, _ = run_cli("ledger", "head", "--json", cfg=home)
    head = json.loads(out)
    assert code == 0 and head["row_hash"] == last and head["rows"] == 2 and head["seq"] == 2
    conn.execute("UPDATE ledger SET target = 'pixiv' WHERE seq = 1")
    conn.close()
    code, out, err = run_cli("ledger", "head", cfg=home)
    assert code != 0 and "row 1" in err
