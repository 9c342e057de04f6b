"""RFC 3161 time-stamps against a real TSA on 127.0.0.1 (`openssl ts -reply`, tests/servers/tsa.py):
tokens for originals and ledger heads through a real `poster run --once`, an unreachable TSA
that never holds up posting and is retried later, and TSA answers poster must refuse (wrong
imprint, untrusted signer, altered token, unparsable answer)."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from poster import cli, config, ledger, store, timestamps
from tests.conftest import PUBLIC_TSA_URLS, artwork, copy_home, run_cli, stamped_home, use_tsa
from tests.servers import tsa as tsa_server

DATA = Path(__file__).parent / "data" / "tsa"


def _stamps(cfg: config.Config) -> list[timestamps.Stamp]:
    conn = store.connect(cfg.db_path)
    try:
        return timestamps.stamps(conn)
    finally:
        conn.close()


def _drop_unposted(drop: Callable[..., Path], name: str, seed: int) -> None:
    """An artwork planned for 2099: taken in (its original is time-stamped), never posted."""
    drop(f"{name}.png", artwork(seed=seed))
    drop(f"{name}.toml", b'at = "2099-01-01T00:00:00+00:00"\n')


def _openssl_verify(tsr: bytes, root: Path, tmp: Path, *what: str) -> str:
    (tmp / "t.tsr").write_bytes(tsr)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(tmp / "t.tsr"), *what, "-CAfile", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def posted(
    tmp_path_factory: pytest.TempPathFactory, tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]
) -> config.Config:
    """One artwork posted to three targets with its original and the ledger head stamped."""
    return stamped_home(tmp_path_factory.mktemp("posted") / "home", *tsa_pki)


@pytest.fixture
def free_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A local port that accepts connections and never answers (a TSA that hangs)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}/tsr"
    finally:
        s.close()


# -- the happy path, through a real `poster run --once` ------------------------------------------------
def test_run_once_stamps_the_original_and_the_ledger_head(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], tmp_path: Path
) -> None:
    """One artwork posted to three targets: one token for the original (its imprint is the
    original's SHA-256) and one for the ledger head after the batch (its imprint is row 3's
    hash). Both are checked here with `openssl ts -verify`, not with poster's own code."""
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    drop("rabbit.png", artwork(seed=3))
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, out + err
    assert out.count("time-stamped 1 (by local TSA)") == 2, out
    found = {s.kind: s for s in _stamps(cfg)}
    assert set(found) == {"original", "head"} and all(s.state == "stamped" for s in found.values())
    conn = store.connect(cfg.db_path)
    original_sha = conn.execute("SELECT sha256 FROM originals").fetchone()[0]
    rows = ledger.rows(conn)
    last = dict(conn.execute("SELECT * FROM ledger WHERE seq = 3").fetchone())
    conn.close()
    assert len(rows) == 3 and found["head"].seq == 3 and found["head"].digest == rows[-1]["row_hash"]
    assert found["original"].digest == original_sha
    assert found["head"].chain == tuple(r["row_hash"] for r in rows)  # the segment it pins
    # independent checks: OpenSSL against the TSA's root, with the original file itself and
    # with the row's preimage file
    original = next(cfg.archive.rglob("*.png"))
    assert "Verification: OK" in _openssl_verify(
        found["original"].token or b"", tsa.pki.root, tmp_path, "-data", str(original)
    )
    (tmp_path / "row3.txt").write_bytes(ledger.preimage(last["prev_hash"], last))
    assert "Verification: OK" in _openssl_verify(
        found["head"].token or b"", tsa.pki.root, tmp_path, "-data", str(tmp_path / "row3.txt")
    )
    assert found["original"].tsa_name == "local TSA" and found["original"].gen_time is not None
    assert tsa.answered == 2
    code, out, _ = run_cli("ledger", "verify", cfg=cfg)
    assert code == 0 and "matches 1 time-stamped head(s); rows 1-3 time-stamped at" in out
    assert "2 time-stamp token(s) verified" in out
    code, out, _ = run_cli("status", cfg=cfg)
    assert code == 0 and "time-stamps" not in out  # nothing waiting: nothing to say


def test_a_second_run_stamps_only_what_is_new(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path]
) -> None:
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    drop("a.png", artwork(seed=4))
    assert run_cli("run", "--once", "--now", cfg=cfg)[0] == 0
    assert run_cli("run", "--once", "--now", cfg=cfg)[0] == 0  # nothing new: no request
    assert tsa.answered == 2
    drop("b.png", artwork(seed=5))
    assert run_cli("run", "--once", "--now", cfg=cfg)[0] == 0
    heads = [s for s in _stamps(cfg) if s.kind == "head"]
    assert [h.seq for h in heads] == [3, 6] and tsa.answered == 4
    assert len(heads[1].chain) == 3  # rows 4-6: the rows since the previous head


def test_originals_taken_in_before_stamping_was_on_are_stamped_later(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path]
) -> None:
    """A data folder from before time-stamping (or with it switched off): the next run with a
    TSA stamps every original that has no token yet, and the ledger head."""
    drop("old.png", artwork(seed=6))
    assert run_cli("run", "--once", "--now", cfg=home)[0] == 0
    assert _stamps(home) == [] and tsa.answered == 0  # `tsa_urls = []`: nothing is sent
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    assert run_cli("run", "--once", cfg=cfg)[0] == 0
    assert sorted(s.kind for s in _stamps(cfg) if s.state == "stamped") == ["head", "original"]


def test_the_daemon_stamps_after_intake_and_after_posting(
    home: config.Config, tsa: tsa_server.TsaServer, tmp_path: Path
) -> None:
    """A real `poster run` subprocess: the original and the ledger head get their tokens
    without a restart, in the daemon's own ticks."""
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    text = cfg.path.read_text().replace("stable_seconds = 5.0", "stable_seconds = 0.0")
    cfg.path.write_text(text.replace("scan_interval = 30.0", "scan_interval = 1.0"))
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "poster", "--config", str(cfg.path), "run"], stdout=out, stderr=out
        )
    try:
        artwork((400, 300), seed=7).save(cfg.outbox / ".d.part", "PNG")
        (cfg.outbox / ".d.part").rename(cfg.outbox / "d.png")
        deadline = time.monotonic() + 120
        while sorted(s.kind for s in _stamps(cfg) if s.state == "stamped") != ["head", "original"]:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    head = next(s for s in _stamps(cfg) if s.kind == "head")
    assert head.seq == 3


# -- a TSA that does not answer --------------------------------------------------------------------------
def test_unreachable_tsa_never_stops_posting_and_is_retried_later(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], free_port: int
) -> None:
    """Nobody listens on the TSA's port: posting goes on, the stamps wait (status and doctor
    say so in one line each), and once a TSA answers a later round makes them."""
    down = f"http://127.0.0.1:{free_port}/tsr"
    cfg = use_tsa(home, tsa.pki, down)
    drop("rabbit.png", artwork(seed=8))
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, out + err
    assert out.count("posted ") == 3
    assert "time-stamps waiting: 1 (127.0.0.1: cannot connect)" in out
    waiting = _stamps(cfg)
    assert sorted(s.kind for s in waiting) == ["head", "original"]
    assert all(s.state == "pending" and s.token is None for s in waiting)
    code, out, _ = run_cli("status", cfg=cfg)
    line = [ln for ln in out.splitlines() if ln.startswith("time-stamps:")]
    assert len(line) == 1 and "2 waiting since" in line[0] and "cannot connect" in line[0]
    code, out, err = run_cli("doctor", cfg=cfg)
    assert code != 0 and "time-stamps (rfc3161): PROBLEM: 127.0.0.1: cannot connect" in out
    assert "time-stamping needs attention" in err and "targets need attention" not in err
    assert "2 waiting" in out
    # the TSA is back: a later round (the daemon's next tick, or the next `run --once` once
    # the backoff has passed) makes both stamps
    back = use_tsa(cfg, tsa.pki, down, tsa.tsr_url)
    conn = store.connect(back.db_path)
    soon = timestamps.Stamper(back).run(conn, at=store.now() + timedelta(seconds=30))
    assert soon.made == []  # not due yet: 1 minute backoff after the first failure; the
    # head was not even tried: the TSA was resting (COOLDOWN) after refusing the original
    later = timestamps.Stamper(back).run(conn, at=store.now() + timestamps.COOLDOWN + timedelta(seconds=5))
    conn.close()
    assert sorted(s.kind for s in later.made) == ["head", "original"]
    assert all(s.state == "stamped" and s.tsa_url == tsa.tsr_url for s in _stamps(back))
    code, out, _ = run_cli("doctor", cfg=back)
    assert "time-stamps (rfc3161): ok:" in out and "answered, token verified (local TSA)" in out


def test_a_tsa_that_hangs_costs_at_most_the_deadline_once(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    drop: Callable[..., Path],
    silent_server: str,
    free_port: int,
) -> None:
    """A TSA that accepts the connection and never answers: the round ends at its deadline,
    the stamps wait, and the same process skips that TSA for a while instead of waiting on
    it again (the daemon keeps its Stamper)."""
    _drop_unposted(drop, "a", 9)
    off = use_tsa(home, tsa.pki, f"http://127.0.0.1:{free_port}/tsr")
    assert run_cli("run", "--once", cfg=off)[0] == 0  # refused at once: one pending stamp
    cfg = use_tsa(off, tsa.pki, silent_server)
    conn = store.connect(cfg.db_path)
    stamper = timestamps.Stamper(cfg)
    started = time.monotonic()
    first = stamper.run(conn, at=store.now() + timedelta(minutes=5), deadline=1.0)
    took = time.monotonic() - started
    assert [why for _s, why in first.waiting] == ["127.0.0.1: no answer in time"]
    assert took < 10, took  # bounded by the round's deadline, not by READ_TIMEOUT per stamp
    again = stamper.run(conn, at=store.now() + timedelta(minutes=8), deadline=1.0)
    assert again.waiting == [] and again.made == []  # resting: not asked again yet
    pending = timestamps.stamps(conn, state="pending")
    conn.close()
    assert len(pending) == 1 and pending[0].attempts == 2


def test_a_503_is_retried_and_the_next_tsa_is_tried_first(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], free_port: int
) -> None:
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    tsa.fail("POST", "/tsr", 503, times=1)
    _drop_unposted(drop, "a", 10)
    code, out, _ = run_cli("run", "--once", cfg=cfg)
    assert code == 0 and "127.0.0.1: answered HTTP 503" in out
    # tried in order: the first URL refuses, the second answers
    cfg = use_tsa(cfg, tsa.pki, f"http://127.0.0.1:{free_port}/tsr", tsa.tsr_url)
    conn = store.connect(cfg.db_path)
    done = timestamps.Stamper(cfg).run(conn, at=store.now() + timedelta(minutes=2))
    conn.close()
    assert [s.kind for s in done.made] == ["original"] and done.made[0].tsa_url == tsa.tsr_url


def test_switched_off_sends_nothing(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path]
) -> None:
    assert home.proof.tsa_urls == ()
    drop("a.png", artwork(seed=11))
    assert run_cli("run", "--once", "--now", cfg=home)[0] == 0
    assert tsa.answered == 0 and _stamps(home) == []
    _code, out, _ = run_cli("doctor", cfg=home)
    assert "time-stamps (rfc3161): ok: time-stamping is off" in out


# -- answers poster must refuse ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong-imprint", "the token is for another hash (wrong message imprint)"),
        ("rogue", "signed by a certificate that does not chain to a trusted TSA root"),
        ("tamper", "the token's signature does not match its content (damaged or altered)"),
    ],
)
def test_a_bad_token_is_refused_and_not_stored(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], mode: str, reason: str
) -> None:
    """wrong-imprint: a valid token for another hash, with the request's nonce; rogue: a valid
    token from a PKI nobody configured; tamper: one signed byte changed in transit."""
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)
    tsa.mode = mode
    _drop_unposted(drop, "a", 12)
    code, _out, _ = run_cli("run", "--once", cfg=cfg)
    assert code == 0 and tsa.answered == 1
    (stamp,) = _stamps(cfg)
    assert stamp.state == "pending" and stamp.token is None
    assert stamp.last_error == f"127.0.0.1: {reason}"
    tsa.mode = "ok"  # the TSA behaves again: the retry stamps it
    conn = store.connect(cfg.db_path)
    done = timestamps.Stamper(cfg).run(conn, at=store.now() + timedelta(minutes=2))
    conn.close()
    assert len(done.made) == 1


def test_an_unparsable_answer_tries_the_next_tsa(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki],
    drop: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """rfc3161-client reads DER strictly: a token whose certificates are not in DER order
    (as `openssl ts -reply` writes them when the signer's certificate encodes larger than the
    chain's) cannot be read; poster says so and takes the next TSA's token."""
    unsorted = tsa_server.make_pki(tmp_path / "unsorted", "unsorted", sorted_set=False)
    with tsa_server.TsaServer(unsorted, tsa_pki[1]) as other:
        cfg = use_tsa(home, tsa.pki, other.tsr_url, tsa.tsr_url)  # type: ignore[attr-defined]
        _drop_unposted(drop, "a", 13)
        assert run_cli("run", "--once", cfg=cfg)[0] == 0
        assert other.answered == 1  # type: ignore[attr-defined]
    (stamp,) = _stamps(cfg)
    assert stamp.state == "stamped" and stamp.tsa_url == tsa.tsr_url


def test_a_changed_archive_is_not_time_stamped(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], free_port: int
) -> None:
    """The original in the archive no longer has the SHA-256 it was taken in with: stamping
    it now would vouch for other bytes, so the stamp is given up, with the reason."""
    cfg = use_tsa(home, tsa.pki, f"http://127.0.0.1:{free_port}/tsr")
    _drop_unposted(drop, "a", 14)
    assert run_cli("run", "--once", cfg=cfg)[0] == 0
    archived = next(cfg.archive.rglob("*.png"))
    archived.chmod(0o600)
    archived.write_bytes(archived.read_bytes() + b"\0")
    cfg = use_tsa(cfg, tsa.pki, tsa.tsr_url)
    conn = store.connect(cfg.db_path)
    done = timestamps.Stamper(cfg).run(conn, at=store.now() + timedelta(minutes=2))
    conn.close()
    assert len(done.failed) == 1 and "was changed" in done.failed[0][1]
    _code, out, _ = run_cli("status", cfg=cfg)
    assert "time-stamps: 1 given up: original" in out and "was changed" in out


# -- tokens checked again later ---------------------------------------------------------------------
def test_ledger_verify_checks_every_stored_token(posted: config.Config, tmp_path: Path) -> None:
    cfg = copy_home(posted, tmp_path / "home")
    conn = store.connect(cfg.db_path)
    token, digest = conn.execute("SELECT token, digest FROM stamps WHERE kind = 'original'").fetchone()
    changed = tsa_server.flip_imprint(token, bytes.fromhex(digest))
    conn.execute("UPDATE stamps SET token = ? WHERE kind = 'original'", (changed,))
    conn.close()
    code, _out, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0
    assert "time-stamp of original" in err and "signature does not match its content" in err


def test_ledger_verify_checks_the_imprint_against_the_recorded_hash(
    posted: config.Config, tmp_path: Path
) -> None:
    """A token moved onto another original (its recorded hash changed) no longer matches."""
    cfg = copy_home(posted, tmp_path / "home")
    conn = store.connect(cfg.db_path)
    conn.execute("UPDATE stamps SET digest = ? WHERE kind = 'original'", (hashlib.sha256(b"x").hexdigest(),))
    conn.close()
    code, _, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0 and "wrong message imprint" in err


def test_ledger_verify_needs_the_trust_anchor(posted: config.Config, tmp_path: Path) -> None:
    """Without the local TSA's root in tsa_ca_file, its tokens prove nothing to poster."""
    cfg = copy_home(posted, tmp_path / "home")
    assert run_cli("ledger", "verify", cfg=cfg)[0] == 0
    text = cfg.path.read_text()
    cfg.path.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("tsa_ca_file")))
    code, _, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0 and "does not chain to a trusted TSA root" in err


# -- trust anchors and defaults -------------------------------------------------------------------------
def test_bundled_roots_are_the_documented_ones() -> None:
    """The roots shipped for the default TSAs, pinned by fingerprint (poster/data/tsa/README.md
    says where each came from and how it was checked)."""
    roots = {
        c.fingerprint(hashes.SHA256()).hex(): c.subject.rfc4514_string() for c in timestamps.bundled_anchors()
    }
    assert roots == {
        "a6379e7cecc05faa3cbf076013d745e327bbbaa38c0b9af22469d4701d18aabc": (
            "C=DE,ST=Bayern,L=Wuerzburg,1.2.840.113549.1.9.1=busilezas@gmail.com,"
            "CN=www.freetsa.org,OU=Root CA,O=Free TSA"
        ),
        "5d56499be4d2e08bcfcad08a3e38723d50503bde706948e42f55603019e528ae": (
            "CN=IdenTrust Commercial Root CA 1,O=IdenTrust,C=US"
        ),
    }
    for cert in timestamps.bundled_anchors():
        assert cert.subject == cert.issuer
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_real_identrust_token_verifies_against_the_bundled_root() -> None:
    """A token IdenTrust's public TSA issued in March 2025 (tests/data/tsa/CREDITS.md), over
    SHA-512("hello"): poster's checks accept it with the bundled root only, its TSA
    certificate having expired since (the chain is checked at the token's time)."""
    answer = (DATA / "identrust-2025.tsr").read_bytes()
    token = timestamps.verify(answer, hashlib.sha512(b"hello").digest(), timestamps.bundled_anchors())
    assert token.tsa_name == "TrustID Timestamp Authority"
    assert token.gen_time.isoformat() == "2025-03-11T08:52:08+00:00"
    assert "IdenTrust Commercial Root CA 1" in token.anchor.subject.rfc4514_string()
    with pytest.raises(timestamps.TsaError, match="wrong message imprint"):
        timestamps.verify(answer, hashlib.sha512(b"hullo").digest(), timestamps.bundled_anchors())


def test_poster_init_writes_the_public_defaults_and_tests_never_use_them(tmp_path: Path) -> None:
    """The template a user gets names the documented public TSAs (the same as a config
    without [proof]); the test suite's homes are switched off (conftest)."""
    from importlib import resources

    template = resources.files("poster").joinpath("data/config.example.toml").read_text(encoding="utf-8")
    (tmp_path / "config.toml").write_text(template)
    import tomllib

    parsed = config.parse(tmp_path / "config.toml", tomllib.loads(template))
    assert (
        parsed.proof.tsa_urls
        == PUBLIC_TSA_URLS
        == ("https://freetsa.org/tsr", "http://timestamp.identrust.com")
    )
    assert config.load(cli.init_home(tmp_path / "h")).proof.tsa_urls == ()
    assert config.parse(tmp_path / "c.toml", {"targets": {"x": {"adapter": "local"}}}).proof.tsa_urls == ()


def test_proof_config_errors_name_the_key(tmp_path: Path) -> None:
    base = {"targets": {"x": {"adapter": "local"}}}
    with pytest.raises(config.ConfigError, match=r"proof\.tsa_urls: 'ftp://x/' is not an http"):
        config.parse(tmp_path / "c.toml", {**base, "proof": {"tsa_urls": ["ftp://x/"]}})
    with pytest.raises(config.ConfigError, match=r"proof\.tsa_ca_file: .*missing\.pem: cannot read"):
        config.parse(tmp_path / "c.toml", {**base, "proof": {"tsa_ca_file": "missing.pem"}})
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(config.ConfigError, match=r"not a PEM file of certificates|no certificates"):
        config.parse(tmp_path / "c.toml", {**base, "proof": {"tsa_ca_file": "bad.pem"}})
    with pytest.raises(config.ConfigError, match=r"proof\.tsa_url: unknown key"):
        config.parse(tmp_path / "c.toml", {**base, "proof": {"tsa_url": "https://x/"}})


def test_a_relative_ca_file_is_relative_to_the_config(
    tmp_path: Path, tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki]
) -> None:
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "ca.pem").write_bytes(tsa_pki[0].root.read_bytes())
    cfg = config.parse(
        tmp_path / "c.toml",
        {"targets": {"x": {"adapter": "local"}}, "proof": {"tsa_ca_file": "roots/ca.pem"}},
    )
    assert cfg.proof.tsa_ca_file == tmp_path / "roots" / "ca.pem"
    assert len(timestamps.anchors(cfg)) == len(timestamps.bundled_anchors()) + 1
