"""The Bluesky adapter against a REAL PDS (npm @atproto/dev-env), not a mock."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest
import requests
from PIL import Image

from poster.platforms import adapter_class
from poster.platforms.base import Existence, PostStatus
from poster.platforms.bluesky import make_tid
from tests.platforms.conftest import image_bytes, make_post


def adapter(pds, tmp_path, **settings):
    cls = adapter_class("bluesky")
    return cls(
        "sky",
        {"adapter": "bluesky", "policy": "light", "api_base": pds["url"], **settings},
        {"HANDLE": pds["handle"], "APP_PASSWORD": pds["password"]},
        data_dir=tmp_path,
    )


def get_record(pds, uri):
    did, collection, rkey = uri.removeprefix("at://").split("/")
    r = requests.get(
        f"{pds['url']}/xrpc/com.atproto.repo.getRecord",
        params={"repo": did, "collection": collection, "rkey": rkey},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["value"]


def get_blob(pds, did, cid):
    r = requests.get(
        f"{pds['url']}/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": cid}, timeout=10
    )
    r.raise_for_status()
    return r.content


@pytest.mark.pds
def test_posts_image_with_alt_aspect_ratio_and_facets(pds, tmp_path):
    data = image_bytes("JPEG", size=(120, 80), exif=True)
    assert b"SecretCam" in data
    post = make_post(2, data=data, fmt="JPEG", caption="Evening rabbit #oc", tags=("rabbit", "oc"))
    a = adapter(pds, tmp_path)
    result = a.post(post)
    assert result.status is PostStatus.POSTED, result.reason
    assert result.url.startswith(f"https://bsky.app/profile/{pds['handle']}/post/")
    record = get_record(pds, result.remote_id)
    assert record["text"].startswith("Evening rabbit #oc")
    assert "#rabbit" in record["text"]
    tags = sorted(f["features"][0]["tag"] for f in record["facets"])
    assert tags == ["oc", "rabbit"]
    images = record["embed"]["images"]
    assert len(images) == 2
    assert images[0]["alt"] == "A white rabbit under an orange sky"
    assert images[0]["aspectRatio"] == {"width": 64, "height": 48}
    blob = get_blob(pds, pds["did"], images[0]["image"]["ref"]["$link"])
    assert b"SecretCam" not in blob  # EXIF stripped before upload
    with Image.open(io.BytesIO(blob)) as im:
        assert im.size == (120, 80)
        assert not im.getexif()


@pytest.mark.pds
def test_session_is_stored_private_and_reused(pds, tmp_path):
    a = adapter(pds, tmp_path)
    assert a.post(make_post(key="job-s1")).status is PostStatus.POSTED
    path = tmp_path / "state" / "bluesky-sky-session.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    session = json.loads(path.read_text())
    b = adapter(pds, tmp_path)  # a new process: no new login, the stored session is used
    calls = []
    orig = b.client.session.request

    def spy(method, url, **kw):
        calls.append(url)
        return orig(method, url, **kw)

    b.client.session.request = spy
    assert b.post(make_post(key="job-s2")).status is PostStatus.POSTED
    assert not any("createSession" in c for c in calls)
    assert json.loads(path.read_text())["did"] == session["did"]


@pytest.mark.pds
def test_expired_access_token_is_refreshed(pds, tmp_path):
    a = adapter(pds, tmp_path)
    a.check()
    path = tmp_path / "state" / "bluesky-sky-session.json"
    session = json.loads(path.read_text())
    session["accessJwt"] = session["accessJwt"][:-4] + "AAAA"  # invalid signature
    path.write_text(json.dumps(session))
    b = adapter(pds, tmp_path)
    result = b.post(make_post(key="job-refresh"))
    assert result.status is PostStatus.POSTED, result.reason


@pytest.mark.pds
def test_find_existing_and_no_duplicate(pds, tmp_path):
    a = adapter(pds, tmp_path)
    post = make_post(key="job-dup")
    # simulate a crash after the record key was chosen but before the create call
    a._remember(post.key, make_tid())
    assert a.find_existing(post) == (Existence.ABSENT, None)
    result = a.post(post)
    assert result.status is PostStatus.POSTED
    a._remember(post.key, result.remote_id.rsplit("/", 1)[1])  # crash after create
    existence, found = a.find_existing(post)
    assert existence is Existence.EXISTS and found.url == result.url
    again = a.post(post)  # a retry reuses the rkey: same post, not a second one
    assert again.remote_id == result.remote_id


@pytest.mark.pds
def test_wrong_password_is_fatal_and_masked(pds, tmp_path):
    cls = adapter_class("bluesky")
    a = cls(
        "sky",
        {"adapter": "bluesky", "policy": "light", "api_base": pds["url"]},
        {"HANDLE": pds["handle"], "APP_PASSWORD": "wrong-password-xyz"},
        data_dir=tmp_path,
    )
    result = a.post(make_post())
    assert result.status is PostStatus.FATAL
    assert "app password" in result.reason and "wrong-password-xyz" not in result.reason
    assert not a.check().ok


@pytest.mark.pds
def test_oversize_png_is_shrunk_under_two_megabytes(pds, tmp_path):
    import numpy as np

    noise = np.random.default_rng(1).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    assert buf.tell() > 2_000_000
    post = make_post(data=buf.getvalue(), key="job-big")
    a = adapter(pds, tmp_path)
    assert a.effective_capabilities().max_bytes == 2_000_000
    result = a.post(post)
    assert result.status is PostStatus.POSTED, result.reason
    record = get_record(pds, result.remote_id)
    size = record["embed"]["images"][0]["image"]["size"]
    assert size <= 2_000_000
    # dev-env 0.3.215 still has the pre-2026-04 limit of 1,000,000 bytes: the adapter
    # learned it from the PDS's answer and the render step will fit to it next time
    assert size <= a.effective_capabilities().max_bytes <= 2_000_000
