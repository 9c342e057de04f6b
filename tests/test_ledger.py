"""The ledger: hash chain over every field (fingerprints included), verify, export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from poster import config, fingerprint, ledger, store
from tests.conftest import artwork, copy_home, run_cli, stamped_home
from tests.servers import tsa as tsa_server


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


# -- rewrites that keep the chain consistent: caught by the time-stamped heads ---------------------
@pytest.fixture(scope="module")
def stamped(
    tmp_path_factory: pytest.TempPathFactory, tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]
) -> config.Config:
    """Two artworks posted to three targets each by real `poster run --once` runs against the
    local TSA: rows 1-6, time-stamped heads at rows 3 and 6."""
    return stamped_home(tmp_path_factory.mktemp("stamped") / "home", *tsa_pki, artworks=2)


def _rechain(conn: sqlite3.Connection, start: int) -> None:
    """What someone editing poster.db with the source at hand does: recompute every hash from
    row `start` on, so the chain is consistent again."""
    prev = conn.execute("SELECT row_hash FROM ledger WHERE seq = ?", (start - 1,)).fetchone()
    prev_hash = prev[0] if prev else ledger.GENESIS
    for row in conn.execute("SELECT * FROM ledger WHERE seq >= ? ORDER BY seq", (start,)).fetchall():
        fields = dict(row)
        new = hashlib.sha256(ledger.preimage(prev_hash, fields)).hexdigest()
        conn.execute(
            "UPDATE ledger SET prev_hash = ?, row_hash = ? WHERE seq = ?", (prev_hash, new, row["seq"])
        )
        prev_hash = new


def _swap(conn: sqlite3.Connection, a: int, b: int) -> None:
    cols = [c for c in ledger.HASHED_FIELDS if c != "seq"]
    ra = dict(conn.execute("SELECT * FROM ledger WHERE seq = ?", (a,)).fetchone())
    rb = dict(conn.execute("SELECT * FROM ledger WHERE seq = ?", (b,)).fetchone())
    conn.execute(f"UPDATE ledger SET mark_id = -mark_id WHERE seq IN ({a}, {b})")  # UNIQUE(mark_id)
    for seq, src in ((a, rb), (b, ra)):
        conn.execute(
            f"UPDATE ledger SET {', '.join(f'{c} = ?' for c in cols)} WHERE seq = ?",
            [src[c] for c in cols] + [seq],
        )


ATTACKS = {
    # the last row (row 6) deleted
    "delete the last row": (lambda c: c.execute("DELETE FROM ledger WHERE seq = 6"), 6, "row 6 is missing"),
    # the whole last batch deleted: the first missing row is named
    "delete the last batch": (
        lambda c: c.execute("DELETE FROM ledger WHERE seq >= 4"),
        4,
        "row 4 is missing",
    ),
    # a row's URL edited, every later hash recomputed
    "edit a row, recompute": (
        lambda c: (
            c.execute("UPDATE ledger SET url = 'https://evil.example/' WHERE seq = 2"),
            _rechain(c, 2),
        ),
        2,
        "row 2 differs from the ledger as time-stamped at",
    ),
    # two posts swapped (different artworks, different heads' segments), hashes recomputed
    "swap two rows, recompute": (lambda c: (_swap(c, 2, 5), _rechain(c, 2)), 2, "row 2 differs"),
    # two posts of the same batch swapped
    "swap within a batch": (lambda c: (_swap(c, 4, 5), _rechain(c, 4)), 4, "row 4 differs"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_consistent_rewrites_are_caught_by_the_time_stamped_heads(
    stamped: config.Config, tmp_path: Path, attack: str
) -> None:
    """Each rewrite leaves a chain that recomputes cleanly (the old check, without heads,
    says OK: the finding of issue 15), but `poster ledger verify` checks it against the
    time-stamped heads and names the first row that differs."""
    cfg = copy_home(stamped, tmp_path / "home")
    conn = store.connect(cfg.db_path)
    assert run_cli("ledger", "verify", cfg=cfg)[0] == 0
    change, first, message = ATTACKS[attack]
    with store.transaction(conn):
        change(conn)
    assert ledger.verify(conn).ok  # consistent: invisible to the chain alone
    conn.close()
    code, out, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0 and out == ""
    assert f"ledger check failed: {message}" in err, err
    assert f"row {first} " in err


def test_a_rewritten_head_record_still_names_a_row_at_or_before_the_head(
    stamped: config.Config, tmp_path: Path
) -> None:
    """The row hashes recorded with a head only help name the row: if they were rewritten
    too, the time-stamped hash itself still fails, at the head's row."""
    cfg = copy_home(stamped, tmp_path / "home")
    conn = store.connect(cfg.db_path)
    with store.transaction(conn):
        conn.execute("UPDATE ledger SET url = 'https://evil.example/' WHERE seq = 2")
        _rechain(conn, 2)
        rows = [r[0] for r in conn.execute("SELECT row_hash FROM ledger WHERE seq <= 3 ORDER BY seq")]
        old = conn.execute("SELECT digest FROM stamps WHERE kind = 'head' AND seq = 3").fetchone()[0]
        conn.execute("UPDATE stamps SET chain = ? WHERE seq = 3", (json.dumps([*rows[:2], old]),))
    conn.close()
    code, _, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0 and "row 3 differs" in err


def test_rows_after_the_last_head_are_reported_as_not_time_stamped(
    stamped: config.Config, tmp_path: Path
) -> None:
    cfg = copy_home(stamped, tmp_path / "home")
    conn = store.connect(cfg.db_path)
    with store.transaction(conn):
        ledger.append(conn, _entry(7))
    conn.close()
    code, out, _ = run_cli("ledger", "verify", cfg=cfg)
    assert code == 0 and "ledger OK: 7 rows" in out
    assert "matches 2 time-stamped head(s); rows 1-6 time-stamped at" in out
    assert "rows after 6 are not time-stamped yet" in out
