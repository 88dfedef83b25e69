"""Unit-LM ASR: examples with the loss on the transcript only, constrained beam search, WER/CER."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("jiwer")

from speechunits.lm import (  # noqa: E402
    TrainConfig, asr_examples, create_lm, evaluate_asr, read_transcripts, train, transcribe,
)
from speechunits.lm.packing import IGNORE, collate  # noqa: E402
from speechunits.tokens import Units  # noqa: E402

K, CHARS = 6, "abcdef"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def corpus(n: int, seed: int) -> tuple[list[Units], dict[str, str]]:
    """Unit i is letter i: a trivially learnable mapping (upper case, to exercise normalisation)."""
    rng = np.random.default_rng(seed)
    units, texts = [], {}
    for i in range(n):
        ids = rng.integers(0, K, rng.integers(2, 6))
        ids = ids[np.r_[True, ids[1:] != ids[:-1]]]
        u = Units(np.repeat(ids, 2), 50.0, utt_id=f"{seed}_{i}")
        units.append(u)
        texts[u.utt_id] = "".join(CHARS[j] for j in ids).upper()
    return units, texts


def test_examples_put_the_loss_on_the_transcript_only():
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS + " ")
    u = Units(np.array([0, 0, 3]), 50.0, utt_id="x")
    (ex,) = asr_examples(lm, [u, Units(np.array([1]), 50.0, utt_id="no-text")], {"x": "Fa  d?"})
    text = lm.tokenizer.convert_tokens_to_ids(list("fa d"))
    assert ex.ids.tolist() == [1, *lm.unit_ids[[0, 3]].tolist(), lm.asr_id, *text, 2]
    b = collate([ex], [[0]], lm.pad_id)
    assert b.targets[b.targets != IGNORE].tolist() == [*text, 2]


def test_transcripts_file_formats(tmp_path):
    (tmp_path / "t.txt").write_text("a-1 HELLO WORLD\na-2\tBYE\n")
    (tmp_path / "t.jsonl").write_text('{"id": "a-1", "text": "hi", "path": "x.wav"}\n')
    assert read_transcripts(tmp_path / "t.txt") == {"a-1": "HELLO WORLD", "a-2": "BYE"}
    assert read_transcripts(tmp_path / "t.jsonl") == {"a-1": "hi"}


def test_decoder_emits_only_text_tokens():
    lm = create_lm("unit-lm:tiny", k=K, seed=3, chars=CHARS + " ")  # untrained: anything goes
    units, _ = corpus(4, seed=9)
    for hyp in transcribe(lm, units, num_beams=3, max_new_tokens=12):
        assert set(hyp) <= set(CHARS + " ") and "<" not in hyp


def test_asr_finetune_decodes_a_learnable_mapping(tmp_path):
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS + " ")
    train_units, train_texts = corpus(300, seed=0)
    test_units, test_texts = corpus(12, seed=1)
    cfg = TrainConfig(steps=150, batch_tokens=512, max_len=128, lr=3e-3, warmup_steps=10, seed=0,
                      save_every=0, progress=False)
    train(lm, asr_examples(lm, train_units, train_texts), tmp_path / "asr", cfg)
    res = evaluate_asr(lm, test_units, test_texts, num_beams=5)
    assert res.n_utterances == 12
    assert res.wer == 0.0 and res.cer == 0.0, res.utterances
    # batched (left-padded) beam search gives the one-at-a-time transcripts
    assert transcribe(lm, test_units, batch_size=1) == [u["hyp"] for u in res.utterances]


def test_punctuation_is_normalised_away_in_training_and_references(caplog):
    """Transcripts with punctuation give the same targets as without, with no 'dropped' warning,
    and WER is computed against normalised references (a punctuated reference is not an error)."""
    from speechunits.lm import normalize_text

    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS + " '")
    u = Units(np.array([0, 1, 2]), 50.0, utt_id="x")
    with caplog.at_level("WARNING"):
        plain = asr_examples(lm, [u], {"x": "abc dab"})[0].ids
        punct = asr_examples(lm, [u], {"x": "Abc, dab?!"})[0].ids
    assert plain.tolist() == punct.tolist()
    assert "dropped" not in caplog.text
    assert normalize_text("Abc, dab?!") == normalize_text("abc dab") == "abc dab"


def _repeats(text: str, n: int) -> bool:
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    return len(grams) != len(set(grams))


def test_no_repeat_ngram_size_stops_a_looping_decoder():
    """An untrained model loops; with n = 3 no three characters of a transcript occur twice, and
    the constraint is checked on the transcript, not on the unit prompt (which repeats freely)."""
    lm = create_lm("unit-lm:tiny", k=K, seed=3, chars=CHARS)  # no space: normalisation keeps every char
    units = [Units(np.tile([0, 1, 2], 8), 50.0, utt_id=f"u{i}") for i in range(3)]
    free = transcribe(lm, units, num_beams=2, max_new_tokens=30)
    assert any(_repeats(h, 3) for h in free), free  # 30 characters from 6 letters without a loop is unlikely
    held = transcribe(lm, units, num_beams=2, max_new_tokens=30, no_repeat_ngram_size=3)
    assert not any(_repeats(h, 3) for h in held), held
    assert all(len(h) >= 10 for h in held), held  # still decodes (the prompt's repeats ban nothing)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        transcribe(lm, units, no_repeat_ngram_size=-1)


def test_cli_asr_train_and_eval_with_the_repeat_guard(tmp_path, capsys):
    import json

    from speechunits.cli import main
    from speechunits.lm import SpeechLM
    from speechunits.tokens import write_jsonl

    units, texts = corpus(40, seed=0)
    write_jsonl(tmp_path / "units.jsonl", units, {"frame_rate": 50.0, "k": K})
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    out = tmp_path / "asr"
    assert main(["lm", "asr-train", "--units", str(tmp_path / "units.jsonl"), "--text", str(tmp_path / "text.jsonl"),
                 "--model", "unit-lm:tiny", "--out", str(out), "--steps", "3", "--batch-tokens", "256",
                 "--max-len", "128", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["lm", "asr-eval", "--model", str(out), "--units", str(tmp_path / "units.jsonl"), "--text",
                 str(tmp_path / "text.jsonl"), "--beams", "1", "--no-repeat-ngram-size", "3",
                 "--json", str(tmp_path / "asr.json")]) == 0
    got = [u["hyp"] for u in json.loads((tmp_path / "asr.json").read_text())["utterances"]]
    lm = SpeechLM.load(out)
    assert got == transcribe(lm, units, num_beams=1, no_repeat_ngram_size=3)
    assert got != transcribe(lm, units, num_beams=1)  # the flag reached the decoder
