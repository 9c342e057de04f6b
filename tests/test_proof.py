"""`poster proof`: the evidence bundle, checked the way a third party would: by running exactly
the commands its README.txt lists (openssl ts -verify, sha256sum, head), in the bundle's folder,
with nothing of poster's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from poster import config, proof, store
from poster.errors import InputError
from tests.conftest import artwork, run_cli, stamped_home, use_tsa
from tests.servers import tsa as tsa_server


@pytest.fixture(scope="module")
def stamped(
    tmp_path_factory: pytest.TempPathFactory, tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]
) -> config.Config:
    """Two artworks (art0.png, art1.png), each posted to x, pixiv and xfolio: rows 1-6,
    time-stamped heads at rows 3 and 6, both originals time-stamped."""
    return stamped_home(tmp_path_factory.mktemp("proof") / "home", *tsa_pki, artworks=2)


def _ids(cfg: config.Config) -> list[dict[str, object]]:
    code, out, _ = run_cli("ledger", "export", cfg=cfg)
    assert code == 0
    return json.loads(out)  # type: ignore[no-any-return]


def _commands(bundle: Path) -> list[str]:
    text = (bundle / "README.txt").read_text(encoding="utf-8")
    return [line[2:] for line in text.splitlines() if line.startswith("$ ")]


def _run(bundle: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A README command as a person would run it: a shell in the bundle's folder."""
    return subprocess.run(["bash", "-c", command], cwd=bundle, capture_output=True, text=True, check=False)


def _check_like_a_third_party(bundle: Path) -> dict[str, str]:
    """Run every command of README.txt; returns each command's output. Fails unless each
    openssl check says "Verification: OK", each sha256sum -c passes, every row file links
    to the one before it, and the posted copy's hash is the one in its ledger row."""
    outputs = {}
    for cmd in _commands(bundle):
        done = _run(bundle, cmd)
        outputs[cmd] = done.stdout + done.stderr
        assert done.returncode == 0, f"{cmd}\n{done.stdout}{done.stderr}"
        if cmd.startswith("openssl ts -verify"):
            assert "Verification: OK" in done.stdout, f"{cmd}\n{done.stdout}{done.stderr}"
            assert "Warning" not in done.stderr, done.stderr  # nothing to puzzle a reader
        if cmd.startswith("head -qn1"):
            rows = sorted((bundle / "ledger" / "rows").glob("*.txt"))
            firsts = done.stdout.split()
            hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in rows]
            assert firsts[1:] == hashes[:-1]  # each row file starts with the previous row's hash
        if cmd.startswith("sha256sum posts/"):
            digest = done.stdout.split()[0]
            rows_text = [p.read_text().splitlines()[1] for p in (bundle / "ledger" / "rows").glob("*.txt")]
            assert any(json.loads(r)["variant_sha256"] == digest for r in rows_text)
    return outputs


def test_bundle_for_a_post_checks_out_with_openssl_alone(stamped: config.Config, tmp_path: Path) -> None:
    """POST-ID = the hidden ID of the first post (row 1). The bundle holds the original's
    hash and token, rows 1-3 (up to the time-stamped head at row 3) and that head's token,
    the posted copy, and the certificates; README.txt's commands all pass."""
    post = _ids(stamped)[0]
    out = tmp_path / "bundle"
    code, stdout, stderr = run_cli("proof", str(post["id"]), "--out", str(out), cfg=stamped)
    assert code == 0, stdout + stderr
    assert stderr == ""  # no warnings: everything is time-stamped
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    sha = post["original_sha256"]
    assert files == sorted(
        [
            "README.txt",
            "SHA256SUMS",
            f"originals/{sha}.sha256",
            f"originals/{sha}.tsr",
            "ledger/rows/000001.txt",
            "ledger/rows/000002.txt",
            "ledger/rows/000003.txt",
            "ledger/chain.sha256",
            "ledger/head-000003.tsr",
            f"posts/{post['id']}.json",
            f"posts/{post['id']}.jpg",
            "certs/untrusted.pem",
            next(f for f in files if f.startswith("certs/root-local-root-CA-")),
        ]
    )
    outputs = _check_like_a_third_party(out)
    verifies = [c for c in outputs if c.startswith("openssl ts -verify")]
    assert len(verifies) == 2  # the original's token and the head's token
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "原画" in readme and "How to check" in readme and f"SHA-256 {sha}" in readme


def test_bundle_for_an_artwork_by_file_hash_or_name(stamped: config.Config, tmp_path: Path) -> None:
    """ARTWORK = the original file, its SHA-256, or its outbox name: all three give the
    artwork's original and its three posts (rows 4-6, pinned by the head at row 6)."""
    second = next(r for r in _ids(stamped) if r["seq"] == 4)
    conn = store.connect(stamped.db_path)
    archived = (
        stamped.data_dir
        / conn.execute(
            "SELECT archive_path FROM originals WHERE sha256 = ?", (second["original_sha256"],)
        ).fetchone()[0]
    )
    conn.close()
    outside = tmp_path / "my-copy-of-art1.png"
    shutil.copyfile(archived, outside)
    for n, ref in enumerate((str(outside), str(second["original_sha256"]), "art1.png")):
        out = tmp_path / f"b{n}"
        code, stdout, stderr = run_cli("proof", ref, "--out", str(out), cfg=stamped)
        assert code == 0, stdout + stderr
        assert sorted(p.name for p in (out / "ledger" / "rows").iterdir()) == [
            "000004.txt",
            "000005.txt",
            "000006.txt",
        ]
        assert [p.name for p in (out / "ledger").glob("head-*.tsr")] == ["head-000006.tsr"]
        assert len(list((out / "posts").glob("*.json"))) == 3
    _check_like_a_third_party(tmp_path / "b2")


def test_a_post_before_an_earlier_head_gets_the_chain_to_the_next_head(
    stamped: config.Config, tmp_path: Path
) -> None:
    """Row 2 is pinned by the head at row 3, not by the later one at row 6."""
    post = next(r for r in _ids(stamped) if r["seq"] == 2)
    out = tmp_path / "b"
    assert run_cli("proof", str(post["id"]), "--out", str(out), cfg=stamped)[0] == 0
    assert sorted(p.name for p in (out / "ledger" / "rows").iterdir()) == ["000002.txt", "000003.txt"]
    _check_like_a_third_party(out)


@pytest.mark.parametrize(
    ("target", "failing"),
    [
        ("ledger/rows/000002.txt", ["sha256sum -c SHA256SUMS", "sha256sum -c ledger/chain.sha256"]),
        ("ledger/rows/000003.txt", ["sha256sum -c SHA256SUMS", "sha256sum -c ledger/chain.sha256", "head-"]),
        ("originals/", ["sha256sum -c SHA256SUMS", "originals/"]),
    ],
)
def test_a_changed_bundle_fails_the_same_commands(
    stamped: config.Config, tmp_path: Path, target: str, failing: list[str]
) -> None:
    """One byte changed in a row file or a token: the README's own commands say so."""
    post = _ids(stamped)[1]  # row 2
    out = tmp_path / "b"
    assert run_cli("proof", str(post["id"]), "--out", str(out), cfg=stamped)[0] == 0
    path = next(
        p for p in sorted(out.rglob("*")) if p.is_file() and p.relative_to(out).as_posix().startswith(target)
    )
    if path.suffix == ".sha256":
        path = path.with_suffix(".tsr")
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.write_bytes(bytes(data))
    failed = []
    for cmd in _commands(out):
        done = _run(out, cmd)
        if done.returncode != 0 or (cmd.startswith("openssl") and "Verification: OK" not in done.stdout):
            failed.append(cmd)
    for expected in failing:
        assert any(expected in cmd for cmd in failed), (expected, failed)


def test_unknown_and_ambiguous_refs_are_one_line_errors(stamped: config.Config, tmp_path: Path) -> None:
    conn = store.connect(stamped.db_path)
    with pytest.raises(InputError, match="no posted copy has this hidden ID"):
        proof.resolve(conn, "0123456789ab")
    with pytest.raises(InputError, match="no original with SHA-256"):
        proof.resolve(conn, "ab" * 32)
    with pytest.raises(InputError, match="not a hidden ID"):
        proof.resolve(conn, "nothing-like-this.png")
    conn.close()
    code, out, err = run_cli("proof", "nope.png", "--out", str(tmp_path / "x"), cfg=stamped)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    code, _, err = run_cli("proof", "art0.png", "--out", str(tmp_path / "full"), cfg=stamped)
    assert code != 0 and "not empty" in err


def test_two_artworks_with_one_name_ask_for_the_hash(
    home: config.Config, tsa: tsa_server.TsaServer, tmp_path: Path
) -> None:
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    for seed in (1, 2):
        path = cfg.outbox / "same.png"
        artwork(seed=seed).save(path)

        os.utime(path, (0, 0))
        (cfg.outbox / "same.toml").write_text('at = "2099-01-01T00:00:00+00:00"\n')
        os.utime(cfg.outbox / "same.toml", (0, 0))
        assert run_cli("run", "--once", cfg=cfg)[0] == 0
    code, _, err = run_cli("proof", "same.png", "--out", str(tmp_path / "b"), cfg=cfg)
    assert code != 0 and "2 artworks have this name; give the original's SHA-256" in err
    # by hash: only the original, not posted yet; its token is enough for a bundle
    conn = store.connect(cfg.db_path)
    sha = conn.execute("SELECT sha256 FROM originals ORDER BY artwork_id LIMIT 1").fetchone()[0]
    conn.close()
    out = tmp_path / "b"
    code, _, err = run_cli("proof", sha, "--out", str(out), cfg=cfg)
    assert code == 0 and not (out / "ledger").exists()
    _check_like_a_third_party(out)


def test_nothing_time_stamped_yet_is_an_error(home: config.Config, tmp_path: Path) -> None:
    path = home.outbox / "a.png"
    artwork(seed=3).save(path)

    os.utime(path, (0, 0))
    assert run_cli("run", "--once", "--now", cfg=home)[0] == 0  # time-stamping off
    code, _out, err = run_cli("proof", "a.png", "--out", str(tmp_path / "b"), cfg=home)
    assert code != 0 and "nothing is time-stamped yet" in err
    assert not (tmp_path / "b").exists()
