"""The shared reader of artifact folders (vocoder, TTS model): each bad input refused in one line."""

import hashlib
import json

import pytest

from speechunits.data.artifact_config import read_hashed_bytes, read_typed_config


class Bad(ValueError):
    pass


def test_typed_config_refuses_each_bad_folder_with_its_reason(tmp_path):
    with pytest.raises(Bad, match="not a thing folder"):
        read_typed_config(tmp_path / "nope", "config.json", "t", 1, Bad, "thing")
    with pytest.raises(Bad, match="config.json: missing"):
        read_typed_config(tmp_path, "config.json", "t", 1, Bad, "thing")
    cfg = tmp_path / "config.json"
    for text, msg in (("{", "not valid JSON"), ("[1]", "expected a JSON object"),
                      ('{"type": "u", "format_version": 1}', "not a speechunits thing \\(type 'u'\\)"),
                      ('{"type": "t", "format_version": 2}', "format_version 2 is not 1")):
        cfg.write_text(text)
        with pytest.raises(Bad, match=msg):
            read_typed_config(tmp_path, "config.json", "t", 1, Bad, "thing")
    cfg.write_text(json.dumps({"type": "t", "format_version": 1, "x": 3}))
    assert read_typed_config(tmp_path, "config.json", "t", 1, Bad, "thing")["x"] == 3


def test_hashed_bytes_are_checked_before_use(tmp_path):
    f = tmp_path / "model.safetensors"
    with pytest.raises(Bad, match="model.safetensors: missing"):
        read_hashed_bytes(f, "0" * 64, Bad)
    f.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    assert read_hashed_bytes(f, good, Bad) == b"weights"
    f.write_bytes(b"weightz")
    with pytest.raises(Bad, match="does not match config.json .*changed or damaged"):
        read_hashed_bytes(f, good, Bad)
