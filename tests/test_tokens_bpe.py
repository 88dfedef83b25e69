"""BPE over units: training, exact round trips, save/load, errors, compression."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from speechunits.tokens import UnitBPE, Units, dedup, dedup_ids

K = 40


def _corpus(rng, n=300, k=K):
    """Structured sequences: words of 2-6 units from a small lexicon, with frame repeats."""
    lexicon = [rng.integers(0, k - 5, rng.integers(2, 7)) for _ in range(30)]  # units >= k-5 unseen
    seqs = []
    for _ in range(n):
        words = [lexicon[i] for i in rng.integers(0, len(lexicon), rng.integers(1, 12))]
        ids = np.concatenate(words)
        seqs.append(np.repeat(ids, rng.integers(1, 4, len(ids))))
    return seqs


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    seqs = _corpus(rng)
    return UnitBPE.train(seqs, vocab_size=120, k=K, seed=0), seqs


def test_vocab_includes_all_base_units(trained):
    bpe, _ = trained
    assert bpe.vocab_size == 120 and bpe.config["actual_vocab_size"] == 120
    # Every unit, including ids never seen in training, encodes and decodes.
    all_units = np.arange(K)
    assert np.array_equal(bpe.decode(bpe.encode(all_units)), all_units)


def test_exact_round_trip_random_and_structured(trained):
    bpe, seqs = trained
    rng = np.random.default_rng(5)
    tests = seqs[:50] + [rng.integers(0, K, int(n)) for n in rng.integers(0, 300, 50)]
    tests += [np.array([], dtype=np.int64), np.array([3]), np.full(17, 7)]
    encoded = bpe.encode_batch(tests)
    for s, e in zip(tests, encoded):
        assert e.dtype == np.int64
        assert np.array_equal(bpe.decode(e), dedup_ids(s)[0])  # dedup=True by default
        assert np.array_equal(bpe.encode(s), e)
    assert bpe.encode([]).shape == (0,) and bpe.decode([]).shape == (0,)


def test_round_trip_without_dedup_is_identity():
    rng = np.random.default_rng(1)
    seqs = _corpus(rng, n=150)
    bpe = UnitBPE.train(seqs, vocab_size=100, k=K, dedup=False)
    for s in seqs[:40] + [rng.integers(0, K, 123), np.array([], dtype=np.int64)]:
        assert np.array_equal(bpe.decode(bpe.encode(s)), s)


def test_units_input_uses_existing_durations(trained):
    bpe, seqs = trained
    u = Units(seqs[0], 50.0, utt_id="a")
    d = dedup(u)
    assert np.array_equal(bpe.encode(u), bpe.encode(d))
    assert np.array_equal(bpe.decode(bpe.encode(d)), d.ids)


def test_errors_name_the_problem(trained):
    bpe, _ = trained
    with pytest.raises(ValueError, match=r"outside \[0, 40\).*\[40, 99\].*position 1"):
        bpe.encode(np.array([1, 40, 2, 99]))
    with pytest.raises(ValueError, match="outside"):
        bpe.encode(np.array([-1]))
    with pytest.raises(ValueError, match="one codebook"):
        bpe.encode(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="BPE ids outside"):
        bpe.decode([0, 10_000])
    with pytest.raises(ValueError, match="training sequence 1"):
        UnitBPE.train([np.array([1]), np.array([5000])], vocab_size=50, k=10)
    with pytest.raises(ValueError, match="vocab_size"):
        UnitBPE.train([np.array([1])], vocab_size=5, k=10)


def test_save_load_identical(trained, tmp_path):
    bpe, seqs = trained
    bpe.save_pretrained(tmp_path / "bpe")
    assert {p.name for p in (tmp_path / "bpe").iterdir()} == {"tokenizer.json", "bpe_config.json"}
    tok = json.loads((tmp_path / "bpe" / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "BPE" and tok["normalizer"] is None and tok["pre_tokenizer"] is None
    back = UnitBPE.from_pretrained(tmp_path / "bpe")
    assert back.config == bpe.config
    for s in seqs[:30]:
        assert np.array_equal(back.encode(s), bpe.encode(s))
    with pytest.raises(FileNotFoundError, match="bpe_config.json"):
        UnitBPE.from_pretrained(tmp_path)
    # A config that promises more base units than the tokenizer has is refused on load.
    cfg = json.loads((tmp_path / "bpe" / "bpe_config.json").read_text())
    (tmp_path / "bpe" / "bpe_config.json").write_text(json.dumps({**cfg, "k": K + 5}))
    with pytest.raises(ValueError, match=r"tokenizer\.json: not a unit BPE tokenizer"):
        UnitBPE.from_pretrained(tmp_path / "bpe")


def test_training_is_deterministic_and_seeded_subset(trained, tmp_path):
    bpe, seqs = trained
    again = UnitBPE.train(seqs, vocab_size=120, k=K, seed=0)
    assert again.tokenizer.to_str() == bpe.tokenizer.to_str()
    a = UnitBPE.train(seqs, vocab_size=120, k=K, seed=1, max_sequences=100)
    b = UnitBPE.train(seqs, vocab_size=120, k=K, seed=1, max_sequences=100)
    assert a.tokenizer.to_str() == b.tokenizer.to_str()
    assert a.config["train_summary"]["num_sequences"] == 100


def test_compression_ratio(trained):
    bpe, seqs = trained
    stats = bpe.compression_stats(seqs)
    n_units = sum(len(dedup_ids(s)[0]) for s in seqs)
    assert stats["num_units"] == n_units and stats["num_frames"] == sum(map(len, seqs))
    assert stats["num_tokens"] == sum(len(bpe.encode(s)) for s in seqs)
    # The lexicon structure is learnable: BPE must compress well beyond 1 unit/token.
    assert bpe.compression_ratio(seqs) == pytest.approx(n_units / stats["num_tokens"])
    assert bpe.compression_ratio(seqs) > 2.0
    rng = np.random.default_rng(9)
    assert bpe.compression_ratio([rng.integers(0, K, 500)]) < bpe.compression_ratio(seqs)
