"""needs-attention/: held artworks, kept whole with a bilingual reason file, listed for
`status`; poster's own stale notes are tidied once the artwork is taken."""

from __future__ import annotations

from pathlib import Path

from poster import attention, config
from poster.attention import Kind


def test_hold_moves_the_files_and_writes_the_reason(home: config.Config) -> None:
    image, side = home.outbox / "a.png", home.outbox / "a.toml"
    image.write_bytes(b"image")
    side.write_bytes(b"sidecar")
    where = attention.hold(home, [image, side], "a.toml: rating: bad", Kind.SIDECAR)
    assert where == attention.folder(home) / "a.png"
    assert where.read_bytes() == b"image" and (where.parent / "a.toml").read_bytes() == b"sidecar"
    assert not image.exists() and not side.exists()
    note = (where.parent / "a.png.reason.txt").read_text(encoding="utf-8")
    assert "a.toml: rating: bad" in note
    assert "What to do: Fix the sidecar" in note and "対処:" in note
    [item] = attention.items(home)
    assert (item.name, item.reason, item.path) == ("a.png", "a.toml: rating: bad", where)


def test_a_folder_is_held_whole_and_listed_with_a_slash(home: config.Config) -> None:
    folder = home.outbox / "set"
    folder.mkdir()
    (folder / "1.png").write_bytes(b"1")
    attention.hold(home, [folder], "set/2.png: is a symbolic link", Kind.LINK, is_folder=True)
    [item] = attention.items(home)
    assert item.name == "set/" and (item.path / "1.png").read_bytes() == b"1"


def test_a_reason_file_without_its_artwork_is_not_listed_and_is_tidied(home: config.Config) -> None:
    image = home.outbox / "b.png"
    image.write_bytes(b"b")
    held = attention.hold(home, [image], "b.png: not an image", Kind.IMAGE)
    held.rename(image)  # the user moved it back
    assert attention.items(home) == []
    attention.tidy(home, "b.png")  # taken in: poster's note about it is stale
    assert list(attention.folder(home).iterdir()) == []


def test_reason_text_escapes_names_from_outside(tmp_path: Path) -> None:
    text = attention.reason_text(["a\n\x1b[2J.png"], "a\n\x1b[2J.png: bad", Kind.IMAGE, tmp_path, {})
    assert "\x1b" not in text and "a\\n\\x1b[2J.png: bad" in text
