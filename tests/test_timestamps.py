"""RFC 3161 time-stamps against a real TSA on 127.0.0.1 (`openssl ts -reply`, tests/servers/tsa.py):
tokens for originals and ledger heads through a real `poster run --once`, an unreachable TSA
that never holds up posting and is retried later, and TSA answers poster must refuse (wrong
imprint, untrusted signer, altered token, unparsable answer)."""

from __future__ import annotations

import hashlib
import re
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

from poster import cli, config, ledger, store, timestamps
from tests.conftest import PUBLIC_TSA_URLS, artwork, copy_home, run_cli, stamped_home, use_tsa
from tests.servers import tsa as tsa_server
from tests.servers.base import Response


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


# -- where trust in each default TSA comes from ---------------------------------------------------------
FREETSA_PIN = "a6379e7cecc05faa3cbf076013d745e327bbbaa38c0b9af22469d4701d18aabc"
IDENTRUST_PIN = "5d56499be4d2e08bcfcad08a3e38723d50503bde706948e42f55603019e528ae"


def test_the_default_tsas_and_the_source_of_each_root() -> None:
    """The table behind the defaults (poster/data/tsa/README.md): FreeTSA's root is fetched
    from FreeTSA and pinned by the fingerprint FreeTSA publishes (and authsign pins on PyPI);
    IdenTrust's is shipped, the copy in certifi (PyPI) and Debian's ca-certificates. No other
    certificate is shipped or trusted by default."""
    import certifi

    assert tuple(t.tsa_url for t in timestamps.DEFAULT_TSAS) == PUBLIC_TSA_URLS
    freetsa, identrust = timestamps.DEFAULT_TSAS
    assert freetsa.root == timestamps.PinnedRoot("https://freetsa.org/files/cacert.pem", FREETSA_PIN)
    assert identrust.root == timestamps.BundledRoot("identrust-commercial-root-ca-1.pem")
    shipped = sorted(p.name for p in timestamps.TRUST_DIR.glob("*.pem"))
    assert shipped == ["identrust-commercial-root-ca-1.pem"]
    (root,) = timestamps.bundled_anchors()
    assert timestamps.fingerprint(root) == IDENTRUST_PIN
    assert root.subject.rfc4514_string() == "CN=IdenTrust Commercial Root CA 1,O=IdenTrust,C=US"
    assert root.subject == root.issuer
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    shipped_text = (timestamps.TRUST_DIR / identrust.root.file).read_text()
    assert shipped_text in Path(certifi.where()).read_text()  # byte for byte the registry's copy


def _pin_local(
    monkeypatch: pytest.MonkeyPatch, tsa_url: str, root_url: str, root: Path
) -> timestamps.DefaultTsa:
    """Make the local TSA a default one whose root is fetched from `root_url` and pinned to
    `root`'s fingerprint, as FreeTSA's is."""
    pin = timestamps.fingerprint(x509.load_pem_x509_certificate(root.read_bytes()))
    entry = timestamps.DefaultTsa("local", tsa_url, timestamps.PinnedRoot(root_url, pin))
    monkeypatch.setattr(timestamps, "DEFAULT_TSAS", (entry,))
    return entry


def _trusting_nothing_extra(cfg: config.Config, *urls: str) -> config.Config:
    """`cfg` pointed at `urls`, with no tsa_ca_file: trust comes from the default TSAs alone."""
    text = "\n".join(ln for ln in cfg.path.read_text().splitlines() if not ln.startswith("tsa_ca_file"))
    listed = ", ".join(f'"{u}"' for u in urls)
    cfg.path.write_text(re.sub(r"(?m)^tsa_urls = .*$", f"tsa_urls = [{listed}]", text) + "\n")
    return config.load(cfg.path)


def test_a_pinned_root_is_fetched_once_checked_and_kept(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    drop: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """First use: the root is downloaded, accepted for its pinned fingerprint and kept in the
    data folder (private); the tokens verify against it, in this run, in the next process,
    in `ledger verify` and in a proof bundle, which carries it. It is downloaded only once."""
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)
    cfg = _trusting_nothing_extra(home, tsa.tsr_url)
    assert cfg.proof.tsa_ca_file is None
    drop("rabbit.png", artwork(seed=20))
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0, out + err
    assert out.count("time-stamped 1 (by local TSA)") == 2, out
    assert len(tsa.calls("GET", "/cacert.pem")) == 1
    kept = timestamps.root_path(cfg.data_dir, entry)
    assert kept.parent == cfg.data_dir / "state" / "tsa-roots"
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.parent.stat().st_mode & 0o777 == 0o700
    root = x509.load_pem_x509_certificate(tsa.pki.root.read_bytes())
    assert x509.load_pem_x509_certificates(kept.read_bytes()) == [root]
    assert timestamps.anchors(cfg) == timestamps.default_anchors(cfg.data_dir) == [root]  # (trace report)
    drop("hare.png", artwork(seed=21))
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)  # a new process: read from the data folder
    assert code == 0 and out.count("time-stamped 1 (by local TSA)") == 2, out + err
    assert len(tsa.calls("GET", "/cacert.pem")) == 1
    code, out, err = run_cli("ledger", "verify", cfg=cfg)
    assert code == 0 and "4 time-stamp token(s) verified" in out, out + err
    code, out, err = run_cli("proof", "rabbit.png", "--out", str(tmp_path / "bundle"), cfg=cfg)
    assert code == 0, out + err
    (carried,) = (tmp_path / "bundle" / "certs").glob("root-*.pem")
    assert x509.load_pem_x509_certificates(carried.read_bytes()) == [root]


def test_a_root_with_another_fingerprint_is_refused_and_the_stamps_wait(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki],
    drop: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The root URL serves another certificate (a changed root, or an altered download): it
    is refused with one loud line, nothing is kept, no token is asked for, the stamp waits
    and `status` and `doctor` say why; once the right root is served, a later round makes it."""
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)
    cfg = _trusting_nothing_extra(home, tsa.tsr_url)
    tsa.root_body = tsa_pki[1].root.read_bytes()  # the rogue PKI's root
    rogue = timestamps.fingerprint(x509.load_pem_x509_certificate(tsa.root_body))
    _drop_unposted(drop, "a", 22)
    code, out, err = run_cli("run", "--once", cfg=cfg)
    assert code == 0, out + err
    warning = [ln for ln in err.splitlines() if ln.startswith("poster: WARNING: 127.0.0.1: REFUSED")]
    assert len(warning) == 1  # then the usual "not made yet" line names it again, with the next try
    assert f"SHA-256 {rogue}, not the pinned {entry.root.sha256}" in warning[0]  # type: ignore[union-attr]
    assert tsa.answered == 0 and not timestamps.root_path(cfg.data_dir, entry).exists()
    (stamp,) = _stamps(cfg)
    assert stamp.state == "pending" and "REFUSED the root certificate" in (stamp.last_error or "")
    _code, out, _ = run_cli("status", cfg=cfg)
    assert "time-stamps: 1 waiting since" in out and "REFUSED the root certificate" in out
    code, out, _ = run_cli("doctor", cfg=cfg)
    assert code != 0 and "time-stamps (rfc3161): PROBLEM: 127.0.0.1: REFUSED the root certificate" in out
    tsa.root_body = tsa.pki.root.read_bytes()
    conn = store.connect(cfg.db_path)
    done = timestamps.Stamper(cfg).run(conn, at=store.now() + timedelta(minutes=2))
    conn.close()
    assert [s.kind for s in done.made] == ["original"]
    assert timestamps.root_path(cfg.data_dir, entry).exists()


def test_an_unreachable_root_url_makes_the_stamps_wait_and_a_later_round_fetches_it(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    drop: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    free_port: int,
) -> None:
    """Nobody answers at the root's URL: the TSA is skipped like an unreachable one (posting
    goes on, nothing is sent to the TSA, the reason is in `status`), then rests; a later
    round, with the root URL answering again, fetches the root and makes the stamps."""
    down = f"http://127.0.0.1:{free_port}/cacert.pem"
    _pin_local(monkeypatch, tsa.tsr_url, down, tsa.pki.root)
    cfg = _trusting_nothing_extra(home, tsa.tsr_url)
    drop("rabbit.png", artwork(seed=23))
    code, out, err = run_cli("run", "--once", "--now", cfg=cfg)
    assert code == 0 and out.count("posted ") == 3, out + err
    why = f"127.0.0.1: cannot fetch its root certificate from {down} (cannot connect)"
    assert f"time-stamps waiting: 1 ({why})" in out
    assert tsa.answered == 0
    assert sorted((s.kind, s.state) for s in _stamps(cfg)) == [("head", "pending"), ("original", "pending")]
    _code, out, _ = run_cli("status", cfg=cfg)
    assert "time-stamps: 2 waiting since" in out and why in out
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)  # the root URL is back
    conn = store.connect(cfg.db_path)
    stamper = timestamps.Stamper(cfg)
    later = stamper.run(conn, at=store.now() + timestamps.COOLDOWN + timedelta(seconds=5))
    conn.close()
    assert sorted(s.kind for s in later.made) == ["head", "original"]
    assert len(tsa.calls("GET", "/cacert.pem")) == 1 and timestamps.root_path(cfg.data_dir, entry).exists()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            Response(200, b"-----BEGIN CERTIFICATE-----\n" + b"A" * (64 * 1024)),
            "cannot fetch its root certificate from {url} (answer larger than 65536 bytes)",
        ),
        (
            Response(404, "<html>not found</html>"),
            "cannot fetch its root certificate from {url} (answered HTTP 404)",
        ),
        (
            Response(200, "<html>moved</html>"),
            "REFUSED what {url} sent: no certificate in it (the pinned root has SHA-256 {pin});"
            " skipped, tried again later",
        ),
    ],
)
def test_a_root_answer_that_is_no_certificate_is_refused(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    drop: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    answer: Response,
    reason: str,
) -> None:
    _drop_unposted(drop, "a", 24)
    assert run_cli("run", "--once", cfg=home)[0] == 0  # taken in, time-stamping off
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)
    cfg = _trusting_nothing_extra(home, tsa.tsr_url)
    tsa.fail("GET", r"/cacert\.pem", answer.status, body=answer.body)
    conn = store.connect(cfg.db_path)
    done = timestamps.Stamper(cfg).run(conn)
    conn.close()
    expected = reason.format(url=tsa.root_url, pin=entry.root.sha256)  # type: ignore[union-attr]
    assert [why for _s, why in done.waiting] == [f"127.0.0.1: {expected}"]
    assert tsa.answered == 0 and not timestamps.root_path(cfg.data_dir, entry).exists()


def test_a_changed_kept_root_is_not_trusted_and_doctor_fetches_it_again(
    home: config.Config,
    tsa: tsa_server.TsaServer,
    tsa_pki: tuple[tsa_server.Pki, tsa_server.Pki],
    drop: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kept root file was replaced (by another certificate): it is not trusted, so
    `ledger verify` fails and says the root is missing and how to get it; `poster doctor`
    fetches it again (pinned), after which the tokens verify."""
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)
    cfg = _trusting_nothing_extra(home, tsa.tsr_url)
    _drop_unposted(drop, "a", 25)
    assert run_cli("run", "--once", cfg=cfg)[0] == 0
    kept = timestamps.root_path(cfg.data_dir, entry)
    kept.write_bytes(tsa_pki[1].root.read_bytes())
    assert timestamps.anchors(cfg) == []
    code, _out, err = run_cli("ledger", "verify", cfg=cfg)
    assert code != 0 and "time-stamp of original" in err and "does not verify: no trust anchor" in err
    assert f"the root certificate of 127.0.0.1 is not in {kept.parent} (`poster doctor` fetches it)" in err
    assert "not the pinned root certificate of 127.0.0.1; ignored" in err
    code, out, _ = run_cli("doctor", cfg=cfg)
    assert "time-stamps (rfc3161): ok:" in out
    assert len(tsa.calls("GET", "/cacert.pem")) == 2
    assert run_cli("ledger", "verify", cfg=cfg)[0] == 0


def test_a_root_already_trusted_through_tsa_ca_file_is_not_fetched(
    home: config.Config, tsa: tsa_server.TsaServer, drop: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _pin_local(monkeypatch, tsa.tsr_url, tsa.root_url, tsa.pki.root)
    cfg = use_tsa(home, tsa.pki, tsa.tsr_url)  # the same root in tsa_ca_file
    _drop_unposted(drop, "a", 26)
    code, out, _ = run_cli("run", "--once", cfg=cfg)
    assert code == 0 and "time-stamped 1 (by local TSA)" in out
    assert tsa.calls("GET", "/cacert.pem") == [] and not timestamps.root_path(cfg.data_dir, entry).exists()


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
