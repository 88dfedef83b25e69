"""A tokenizer directory is untrusted input: no code of its own runs, paths stay inside, every file
read is hashed, and a malformed config is a clear TokenizerError at load (issue 13, items 1-4)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import speechunits
from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer
from speechunits.security import UntrustedCodeError, reject_remote_code, safe_from_pretrained
from speechunits.tokenizer import Tokenizer, TokenizerError, sha256_file
from speechunits.tokenizer_config import UnhashedFilesWarning
from test_encoders_hf import TINY, build
from transformers import HubertConfig, HubertModel

SRC = Path(speechunits.__file__).resolve().parent


def _waves(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(8000 + 1000 * i)).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def mfcc_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mfcc") / "tok"
    fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=4, seed=0, n_init=1).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A tokenizer over a tiny random HuBERT stored in ``encoder/``."""
    root = tmp_path_factory.mktemp("hf")
    build("hubert", "group").save_pretrained(root / "model")
    tok = fit_tokenizer(load_encoder(str(root / "model")), _waves(), layers=[1], k=4, seed=0, n_init=1)
    tok.save_pretrained(root / "tok")
    shutil.rmtree(root / "model")
    return root / "tok"


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def edit_config(d: Path, change) -> dict:
    cfg = json.loads((d / "config.json").read_text())
    change(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    return cfg


def rehash(d: Path) -> None:
    """What an attacker does after tampering: list every file of the directory with its true sha256."""
    def change(cfg):
        cfg["files"] = {p.relative_to(d).as_posix(): sha256_file(p) for p in sorted(d.rglob("*"))
                        if p.is_file() and p != d / "config.json"}
    edit_config(d, change)


# -- 1. no code of the directory's own ever runs -----------------------------------------------------------

EVIL = """\
import os, pathlib
pathlib.Path(os.environ["EVIL_MARKER"]).write_text("the tokenizer directory's code ran")
from transformers import PretrainedConfig, PreTrainedModel
class EvilConfig(PretrainedConfig):
    model_type = "evilnet"
class EvilModel(PreTrainedModel):
    config_class = EvilConfig
"""
AUTO_MAP = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
            "AutoModelForCausalLM": "evil.EvilModel", "AutoTokenizer": ["evil.EvilConfig", None]}


def make_evil(folder: Path) -> Path:
    """A model folder whose config asks transformers to import its own evil.py (unknown model type)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    cfg.update(model_type="evilnet", auto_map=AUTO_MAP, architectures=["EvilModel"])
    cfg_path.write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(EVIL)
    return folder


def test_hostile_model_code_is_never_prompted_imported_or_copied(hf_dir, tmp_path):
    tok = copy(hf_dir, tmp_path / "tok")
    make_evil(tok / "encoder")
    rehash(tok)  # hashes are integrity, not trust: a hostile directory lists its own files
    lm = make_evil(tmp_path / "lm")
    (lm / "speechunits_lm.json").write_text(json.dumps({"format_version": 1, "kind": "unit-lm", "k": 4}))
    text_lm = make_evil(tmp_path / "text-lm")
    script = textwrap.dedent(f"""
        import json, sys
        from speechunits.tokenizer import Tokenizer
        from speechunits.encoders import HFEncoder
        from speechunits.lm.llm import load_text_lm
        from speechunits.lm.speech_lm import SpeechLM
        results = {{}}
        for name, call in [("tokenizer", lambda: Tokenizer.from_pretrained({str(tok)!r})),
                           ("encoder", lambda: HFEncoder.from_pretrained({str(tok / "encoder")!r})),
                           ("speech_lm", lambda: SpeechLM.load({str(lm)!r})),
                           ("text_lm", lambda: load_text_lm({str(text_lm)!r}))]:
            try:
                call()
                results[name] = "loaded"
            except Exception as e:
                results[name] = type(e).__name__ + ": " + str(e)
        print("RESULTS" + json.dumps(results))
    """)
    env = dict(os.environ, EVIL_MARKER=str(tmp_path / "marker"), HF_HOME=str(tmp_path / "hf"),
               HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, env=env, timeout=300)
    text = out.stdout + out.stderr
    assert "Do you wish to run the custom code" not in text  # nothing prompted
    assert not (tmp_path / "marker").exists()  # nothing imported
    copied = [p for p in (tmp_path / "modules").rglob("*") if p.is_file() and p.name != "__init__.py"]
    assert copied == []  # nothing copied into the HF modules cache
    results = json.loads(text.split("RESULTS", 1)[1].splitlines()[0])
    assert results["tokenizer"].startswith("TokenizerError") and "auto_map" in results["tokenizer"]
    assert "encoder/config.json" in results["tokenizer"]
    for name in ("encoder", "speech_lm", "text_lm"):
        assert results[name].startswith("UntrustedCodeError") and "auto_map" in results[name], results[name]


def test_safe_from_pretrained_checks_first_and_never_trusts(tmp_path, monkeypatch):
    calls = []

    class Loader:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            calls.append((args, kwargs))
            return "model"

    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "config.json").write_text('{"model_type": "hubert"}')
    assert safe_from_pretrained(Loader, clean, local_files_only=True) == "model"
    assert calls[-1] == ((str(clean),), {"local_files_only": True, "trust_remote_code": False})
    assert safe_from_pretrained(Loader, clean, base_model="base") == "model"  # peft's argument order
    assert calls[-1] == (("base", str(clean)), {"trust_remote_code": False})
    with pytest.raises(UntrustedCodeError, match="never allowed"):
        safe_from_pretrained(Loader, clean, trust_remote_code=True)
    # auto_map anywhere: a sub-config, the tokenizer's or an adapter's config
    for name, content in [("config.json", {"text_config": {"auto_map": {"AutoModel": "x.Y"}}}),
                          ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["x.T", None]}}),
                          ("adapter_config.json", {"auto_map": {"AutoModel": "x.Y"}})]:
            d = tmp_path / name.replace(".", "_")
            d.mkdir()
            (d / name).write_text(json.dumps(content))
            with pytest.raises(UntrustedCodeError, match=f"{name}: 'auto_map'"):
                safe_from_pretrained(Loader, d)
    # a hub name is checked in its cached snapshot, without the network
    snap = tmp_path / "cache" / "models--org--evil" / "snapshots" / ("a" * 40)
    make_evil(snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("a" * 40)
    n = len(calls)
    with pytest.raises(UntrustedCodeError, match="auto_map"):
        safe_from_pretrained(Loader, "org/evil", cache_dir=str(tmp_path / "cache"))
    assert len(calls) == n  # the loader never saw it
    reject_remote_code(clean)  # a clean folder passes


def test_every_transformers_and_peft_from_pretrained_goes_through_the_safe_loader():
    # Whatever loads a model (encoders, SSL pre-training, LMs, peft adapters) must use
    # security.safe_from_pretrained; a direct call would reopen the prompt / remote-code path.
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "security.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hf_names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.module or "").split(".")[0] in ("transformers", "peft") for a in node.names}
        hf_modules = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                      for a in node.names if a.name.split(".")[0] in ("transformers", "peft")}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
                base = node.func.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and (base.id in hf_names or base.id in hf_modules):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


# -- 2. paths stay inside the tokenizer directory ----------------------------------------------------------


def test_files_entries_must_stay_inside(mfcc_dir, tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 10)
    for name in (str(outside), "../secret.bin", "sub/../../secret.bin", "C:\\secret.bin"):
        d = copy(mfcc_dir, tmp_path / f"t{abs(hash(name))}")
        edit_config(d, lambda c, n=name: c["files"].update({n: sha256_file(outside)}))
        with pytest.raises(TokenizerError, match="config.json: field 'files.*expected a path relative"):
            Tokenizer.from_pretrained(d)


def test_symlinked_files_leading_out_are_refused(mfcc_dir, hf_dir, tmp_path):
    d = copy(mfcc_dir, tmp_path / "tok")
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(d / "quantizer.safetensors", elsewhere)
    (d / "quantizer.safetensors").symlink_to(elsewhere)  # same bytes, same hash, but outside
    with pytest.raises(TokenizerError, match="quantizer.safetensors: leads out of the tokenizer directory"):
        Tokenizer.from_pretrained(d)
    h = copy(hf_dir, tmp_path / "hf")  # the stored encoder folder itself a link out
    shutil.move(h / "encoder", tmp_path / "enc-outside")
    (h / "encoder").symlink_to(tmp_path / "enc-outside", target_is_directory=True)
    with pytest.raises(TokenizerError, match="encoder: leads out"):
        Tokenizer.from_pretrained(h)
    h2 = copy(hf_dir, tmp_path / "hf2")  # one file inside the stored encoder a link out
    weights = next(p for p in (h2 / "encoder").iterdir() if p.suffix == ".safetensors")
    shutil.copy(weights, tmp_path / "w.safetensors")
    weights.unlink()
    weights.symlink_to(tmp_path / "w.safetensors")
    with pytest.raises(TokenizerError, match=f"{weights.name}: leads out"):
        Tokenizer.from_pretrained(h2)


def test_stored_encoder_must_stay_inside(hf_dir, tmp_path):
    shutil.copytree(hf_dir / "encoder", tmp_path / "other-encoder")
    for stored in (str(tmp_path / "other-encoder"), "../other-encoder"):
        d = copy(hf_dir, tmp_path / f"t{len(stored)}")
        edit_config(d, lambda c, s=stored: c["encoder"].update(stored=s))
        with pytest.raises(TokenizerError, match="field 'encoder.stored' is .*expected a path relative"):
            Tokenizer.from_pretrained(d)


def test_hub_named_encoder_is_never_taken_from_the_current_folder(hf_dir, tmp_path, monkeypatch):
    d = copy(hf_dir, tmp_path / "tok")
    shutil.copytree(hf_dir / "encoder", tmp_path / "work" / "mymodel")
    edit_config(d, lambda c: (c["encoder"].pop("stored"), c["encoder"].update(name="mymodel")))
    rehash(d)
    shutil.rmtree(d / "encoder")
    rehash(d)
    monkeypatch.chdir(tmp_path / "work")  # "mymodel" exists here, but a config names hub models only
    with pytest.raises(OSError, match="'mymodel' is not a local directory and is not in the local Hugging Face cache"):
        Tokenizer.from_pretrained(d)
    assert Tokenizer.from_pretrained(d, encoder="mymodel").layers == [1]  # named by the caller: fine


# -- 3. every file read is covered by a hash ---------------------------------------------------------------


def test_missing_files_list_is_refused_unless_allowed(mfcc_dir, tmp_path):
    d = copy(mfcc_dir, tmp_path / "tok")
    edit_config(d, lambda c: c.pop("files"))
    with pytest.raises(TokenizerError, match="config.json: has no 'files' list; every file a tokenizer loads must be hashed"):
        Tokenizer.from_pretrained(d)
    with pytest.warns(UnhashedFilesWarning, match="has no 'files' list"):
        tok = Tokenizer.from_pretrained(d, allow_unhashed=True)
    assert tok.vocab_sizes == [4]


def test_files_list_must_cover_every_file_read(mfcc_dir, hf_dir, tmp_path):
    d = copy(mfcc_dir, tmp_path / "tok")
    (d / "notes.txt").write_text("not read by the loader")
    edit_config(d, lambda c: c.update(files={"notes.txt": sha256_file(d / "notes.txt")}))
    with pytest.raises(TokenizerError, match="does not cover quantizer.safetensors"):
        Tokenizer.from_pretrained(d)
    h = copy(hf_dir, tmp_path / "hf")
    (h / "encoder" / "extra.safetensors").write_bytes(b"\0" * 16)  # a stored-encoder file nobody hashed
    with pytest.raises(TokenizerError, match="does not cover encoder/extra.safetensors"):
        Tokenizer.from_pretrained(h)
    h2 = copy(hf_dir, tmp_path / "hf2")
    cfg = json.loads((h2 / "encoder" / "config.json").read_text())
    cfg["num_hidden_layers"] = 1  # tampered, and dropped from the list to hide it
    (h2 / "encoder" / "config.json").write_text(json.dumps(cfg))
    edit_config(h2, lambda c: c["files"].pop("encoder/config.json"))
    with pytest.raises(TokenizerError, match="does not cover encoder/config.json"):
        Tokenizer.from_pretrained(h2)


def test_referenced_encoder_needs_its_weights_hash(hf_dir, tmp_path):
    d = copy(hf_dir, tmp_path / "tok")
    edit_config(d, lambda c: (c["encoder"].pop("stored"), c["encoder"].pop("weights_sha256")))
    shutil.rmtree(d / "encoder")
    rehash(d)
    with pytest.raises(TokenizerError, match="field 'encoder.weights_sha256' is missing"):
        Tokenizer.from_pretrained(d, encoder=hf_dir / "encoder")
    with pytest.warns(UnhashedFilesWarning):
        assert Tokenizer.from_pretrained(d, encoder=hf_dir / "encoder", allow_unhashed=True).layers == [1]


# -- 4. malformed configs: a TokenizerError at load naming config.json, the field and the expected value ----


MALFORMED = {
    "no encoder": (lambda c: c.pop("encoder"), "field 'encoder' is missing; expected an object"),
    "no encoder name": (lambda c: c["encoder"].pop("name"), "field 'encoder.name' is missing; expected one of \\['mfcc', 'logmel'\\]"),
    "no window": (lambda c: c["encoder"].pop("window_samples"), "field 'encoder.window_samples' is missing; expected a positive integer"),
    "format 'one'": (lambda c: c.update(format_version="one"), "field 'format_version' is 'one'; expected an integer format version"),
    "dim mismatch": (lambda c: c["encoder"].update(dim=20), "field 'encoder.dim' is 20; expected 39, the dimension of the layer-0 codebook"),
    "encoder type": (lambda c: c["encoder"].update(type="magic"), "field 'encoder.type' is 'magic'; expected one of"),
    "layers": (lambda c: c.update(layers=[3]), "field 'layers' is \\[3\\]; expected the quantizer's layers \\[0\\]"),
    "no quantizer": (lambda c: c.pop("quantizer"), "field 'quantizer' is missing"),
    "bad hash": (lambda c: c["files"].update({"quantizer.safetensors": "abc"}), "field 'files' is .*expected an object mapping file names to sha256"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_is_a_clear_error_at_load(mfcc_dir, tmp_path, case):
    change, message = MALFORMED[case]
    d = copy(mfcc_dir, tmp_path / "tok")
    edit_config(d, change)
    with pytest.raises(TokenizerError, match=re.escape(f"{d / 'config.json'}: ") + message):
        Tokenizer.from_pretrained(d)


def test_hf_encoder_dimension_differing_from_the_codebook_is_refused_at_load(hf_dir, tmp_path):
    d = copy(hf_dir, tmp_path / "tok")
    # A consistent but different stored encoder: a wider HuBERT, saved over the old one.
    HubertModel(HubertConfig(**{**TINY, "hidden_size": 48, "feat_extract_norm": "group"})).save_pretrained(d / "encoder")
    edit_config(d, lambda c: c["encoder"].pop("weights_sha256"))
    rehash(d)
    with pytest.raises(TokenizerError, match="field 'encoder.dim' is 32 but the encoder .* has 48"):
        Tokenizer.from_pretrained(d)


def test_hub_model_from_the_cache_is_referenced_by_name_and_reloads(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "c" * 40
    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / commit
    build("hubert", "group").save_pretrained(snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    tok = fit_tokenizer(load_encoder("org/tiny"), _waves(), layers=[1], k=4, seed=0, n_init=1)
    tok.save_pretrained(tmp_path / "tok")
    cfg = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert cfg["encoder"]["name"] == "org/tiny" and "stored" not in cfg["encoder"]  # referenced, not copied
    assert not (tmp_path / "tok" / "encoder").exists()
    w = _waves()[1]
    assert np.array_equal(Tokenizer.from_pretrained(tmp_path / "tok").encode(w).ids, tok.encode(w).ids)


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and what the user sees, whether the CLI raises or prints its user errors."""
    from speechunits.cli import main

    try:
        rc, message = main(argv), ""
    except SystemExit as e:
        rc, message = (e.code if isinstance(e.code, int) else 2), str(e.code)
    except TokenizerError as e:
        rc, message = 2, str(e)
    captured = capsys.readouterr()
    return rc, message + captured.out + captured.err


def test_cli_flags_allow_unhashed_and_encoder(mfcc_dir, hf_dir, tmp_path, capsys):
    import soundfile as sf

    sf.write(tmp_path / "a.wav", _waves()[0], 16000)
    d = copy(mfcc_dir, tmp_path / "unhashed")
    edit_config(d, lambda c: c.pop("files"))
    rc, text = _cli(["tokenize", str(tmp_path / "a.wav"), "--tokenizer", str(d), "--out", str(tmp_path / "u1.jsonl"),
                     "--no-progress"], capsys)
    assert rc != 0 and "has no 'files' list" in text and not (tmp_path / "u1.jsonl").exists()
    with pytest.warns(UnhashedFilesWarning):
        rc, _ = _cli(["tokenize", str(tmp_path / "a.wav"), "--tokenizer", str(d), "--allow-unhashed",
                      "--out", str(tmp_path / "u2.jsonl"), "--no-progress"], capsys)
    assert rc == 0 and (tmp_path / "u2.jsonl").is_file()
    h = copy(hf_dir, tmp_path / "by-path")  # the encoder named by a path, not stored
    edit_config(h, lambda c: (c["encoder"].pop("stored"), c["encoder"].update(name=str(tmp_path / "model"))))
    shutil.move(h / "encoder", tmp_path / "model")
    rehash(h)
    rc, text = _cli(["tokenize", str(tmp_path / "a.wav"), "--tokenizer", str(h), "--out", str(tmp_path / "u3.jsonl"),
                     "--no-progress"], capsys)
    assert rc != 0 and "--encoder PATH" in text
    rc, _ = _cli(["tokenize", str(tmp_path / "a.wav"), "--tokenizer", str(h), "--encoder", str(tmp_path / "model"),
                  "--out", str(tmp_path / "u3.jsonl"), "--no-progress"], capsys)
    assert rc == 0 and (tmp_path / "u3.jsonl").is_file()
