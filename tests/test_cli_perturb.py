"""``speechunits perturb``: seeded distorted copies with the same ids, resumable, errors recorded."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from speechunits.audio import load
from speechunits.audio.perturb import measure_snr
from speechunits.cli import main
from unprivileged import restore, run_unprivileged


def _speechlike(seed: int, seconds: float = 1.5) -> np.ndarray:
    """Harmonic bursts with pauses: enough voiced energy for the P.56 active level."""
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 20 * seed
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    gate = (np.sin(2 * np.pi * 2.0 * t) > -0.3).astype(float)
    return (0.3 * x / np.abs(x).max() * gate).astype(np.float32)


def _dataset(tmp_path, n=4, broken=False):
    rows = []
    for i in range(n):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, _speechlike(i), 16000, subtype="PCM_16")
        rows.append({"id": f"u{i}", "path": p.name, "speaker": f"s{i % 2}", "text": f"utt {i}"})
    if broken:
        (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
        rows.append({"id": "bad", "path": "bad.wav"})
    man = tmp_path / "data.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return man


def test_writes_seeded_copies_with_same_ids_at_the_asked_snr(tmp_path):
    man = _dataset(tmp_path)
    out = tmp_path / "pert"
    assert main(["perturb", "--data", str(man), "--distortion", "white_10dB", "stretch_1.1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "white_10dB.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["u0", "u1", "u2", "u3"]
    assert rows[1]["speaker"] == "s1" and rows[1]["text"] == "utt 1"
    clean, noisy = load(tmp_path / "u2.wav"), load(out / rows[2]["path"])
    assert len(noisy) == len(clean)
    assert abs(measure_snr(clean, noisy) - 10.0) < 1.0  # PCM 16 rounding only
    stretched = load(out / "stretch_1.1" / "u0.wav")
    assert abs(len(stretched) / len(load(tmp_path / "u0.wav")) - 1 / 1.1) < 0.02
    # babble mixes other utterances of the dataset (loaded on demand) at the asked SNR
    assert main(["perturb", "--data", str(man), "--distortion", "babble_5dB", "--out", str(out)]) == 0
    assert abs(measure_snr(clean, load(out / "babble_5dB" / "u2.wav")) - 5.0) < 1.0
    record = json.loads((out / "white_10dB.json").read_text())
    assert record["distortion"]["params"]["snr_db"] == 10.0 and record["failed"] == 0

    # same seed -> identical files; another seed -> different noise
    again = tmp_path / "again"
    main(["perturb", "--data", str(man), "--distortion", "white_10dB", "--out", str(again)])
    assert (again / "white_10dB" / "u2.wav").read_bytes() == (out / "white_10dB" / "u2.wav").read_bytes()
    other = tmp_path / "other"
    main(["perturb", "--data", str(man), "--distortion", "white_10dB", "--out", str(other), "--seed", "1"])
    assert (other / "white_10dB" / "u2.wav").read_bytes() != (out / "white_10dB" / "u2.wav").read_bytes()


def test_loud_noise_is_scaled_not_clipped_and_bad_files_are_recorded(tmp_path, capsys):
    man = _dataset(tmp_path, broken=True)
    out = tmp_path / "pert"
    assert main(["perturb", "--data", str(man), "--distortion", "white_-10dB", "--out", str(out)]) == 1  # one failed
    ids = [json.loads(line)["id"] for line in (out / "white_-10dB.jsonl").read_text().splitlines()]
    assert ids == ["u0", "u1", "u2", "u3"]
    errors = [json.loads(line) for line in (out / "white_-10dB.errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["bad"] and "bad.wav" in errors[0]["path"]
    assert "skipped" in capsys.readouterr().err
    y, _ = sf.read(out / "white_-10dB" / "u0.wav")
    assert 0.95 < np.abs(y).max() <= 1.0  # scaled to just under full scale, no clipped run
    assert np.mean(np.abs(y) >= 0.999) < 1e-3


def test_unreadable_sub_folder_is_recorded_with_its_own_reason(tmp_path):
    """A folder scan's unreadable sub-folder is a failed entry "permission denied", not a file
    that "is a directory"; the readable files are done, babble never picks it, the exit is 1."""
    root = tmp_path / "data"
    for i, sub in enumerate(["a", "b", "c", "d", "locked/x"]):
        (root / sub).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / f"{sub}.wav", _speechlike(i, 0.5), 16000, subtype="PCM_16")
    (root / "locked").chmod(0)
    out = tmp_path / "pert"
    code = (
        "from speechunits.cli import main\n"
        f"print(main(['perturb', '--data', {str(root)!r}, '--distortion', 'white_10dB', 'babble_5dB', "
        f"'--out', {str(out)!r}]))\n"
    )
    try:
        rc = run_unprivileged(code, tmp_path).strip().splitlines()[-1]
    finally:
        restore(tmp_path)
    assert rc == "1"
    for name in ("white_10dB", "babble_5dB"):
        done = [json.loads(line)["id"] for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert done == ["a", "b", "c", "d"]
        errors = [json.loads(line) for line in (out / f"{name}.errors.jsonl").read_text().splitlines()]
        assert errors == [{"id": "locked/", "path": str(root / "locked"),
                           "reason": f"{root / 'locked'}: permission denied"}]
