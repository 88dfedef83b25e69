"""Atomic outputs: files written whole, folders swapped whole."""

from __future__ import annotations

from speechunits.data.atomic import atomic_write_text, replace_dir


def test_replace_dir_swaps_a_finished_folder_in_and_leaves_no_leftovers(tmp_path):
    final = tmp_path / "tok"
    for version in ("v1", "v2"):
        tmp = tmp_path / ".tok.tmp"
        tmp.mkdir()
        atomic_write_text(tmp / "config.json", version)
        (tmp / version).write_text("x")
        assert replace_dir(tmp, final) == final
        assert (final / "config.json").read_text() == version
        assert sorted(p.name for p in final.iterdir()) == ["config.json", version]  # nothing of the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no .tmp, no .old
