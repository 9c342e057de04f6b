from __future__ import annotations

import sqlite3

from poster import config
from tests.conftest import run_cli


def test_damaged_database_is_a_one_line_error(home: config.Config) -> None:
    home.db_path.write_bytes(b"this is not a database " * 100)
    code, out, err = run_cli("status", cfg=home)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "poster.db: cannot use the database" in err and "backup" in err


def test_database_of_another_version_is_refused(home: config.Config) -> None:
    conn = sqlite3.connect(home.db_path)
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    code, _, err = run_cli("status", cfg=home)
    assert code == 2 and "different version of poster (database schema 99" in err


def test_database_and_folder_are_private(home: config.Config) -> None:
    run_cli("status", cfg=home)
    assert home.db_path.stat().st_mode & 0o077 == 0
    assert home.data_dir.stat().st_mode & 0o077 == 0
