"""Hybrid CTC / attention unit-LM ASR: the CTC spans through packing, the loss against a brute-force
sum over alignments, training with the CTC weight, greedy CTC decoding, and the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("jiwer")

from speechunits.lm import TrainConfig, asr_examples, create_lm, evaluate_asr, train  # noqa: E402
from speechunits.lm.ctc import ctc_log_probs, ctc_loss_sum, ctc_transcribe, ctc_vocab  # noqa: E402
from speechunits.lm.ctc_decode import joint_transcribe  # noqa: E402
from speechunits.lm.packing import Example, collate, forward_logits, split_long  # noqa: E402
from speechunits.tokens import Units  # noqa: E402

from test_lm_asr import CHARS, K, one_thread  # noqa: E402,F401  (one_thread: autouse, one torch thread)
from test_lm_asr import corpus as _corpus  # noqa: E402


def corpus(n: int, seed: int) -> tuple[list[Units], dict[str, str]]:
    """test_lm_asr's corpus (unit i is letter i), transcripts in lower case to compare with decodes."""
    units, texts = _corpus(n, seed)
    return units, {k: v.lower() for k, v in texts.items()}


def test_spans_follow_the_units_through_packing_and_are_dropped_from_cut_windows():
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS)
    a, b = asr_examples(lm, [Units(np.array([0, 1, 2]), 50.0, utt_id="a"),
                             Units(np.array([3, 4]), 50.0, utt_id="b")], {"a": "abc", "b": "de"})
    assert a.ctc_span == (1, 4) and b.ctc_span == (1, 3)  # <s> [u u u] <|asr|> ...
    batch = collate([a, b], [[0, 1]], lm.pad_id)
    (r0, s0, e0, t0), (r1, s1, e1, t1) = batch.ctc
    assert (r0, s0, e0, r1, s1, e1) == (0, 1, 4, 0, len(a) + 1, len(a) + 3)
    assert batch.input_ids[0, s0:e0].tolist() == lm.unit_ids[[0, 1, 2]].tolist()
    assert batch.input_ids[0, s1:e1].tolist() == lm.unit_ids[[3, 4]].tolist()
    assert lm.tokenizer.decode(t0.tolist()) == "abc" and lm.tokenizer.decode(t1.tolist()) == "de"
    assert all(w.ctc_span is None for w in split_long([a], 5))  # a window has lost its prompt


def test_the_loss_is_minus_log_of_the_sum_over_alignments():
    lm = create_lm("unit-lm:tiny", k=K, seed=1, chars=CHARS)
    (ex,) = asr_examples(lm, [Units(np.array([0, 1, 2]), 50.0, utt_id="x")], {"x": "ab"})
    batch = collate([ex, Example(ex.ids)], [[0], [1]], lm.pad_id)  # the second row has no span
    logits = forward_logits(lm, batch)
    vocab = ctc_vocab(lm)
    assert vocab[0] == lm.pad_id and lm.tokenizer.decode(vocab[1:].tolist()) == CHARS
    lp = ctc_log_probs(logits[0, 1:4], vocab)  # the three unit positions
    a, b = 1 + CHARS.index("a"), 1 + CHARS.index("b")
    paths = []
    for path in itertools.product(range(len(vocab)), repeat=3):
        merged = [c for n, c in enumerate(path) if c and (n == 0 or c != path[n - 1])]
        if merged == [a, b]:
            paths.append(sum(lp[t, c] for t, c in enumerate(path)))
    assert len(paths) == 5  # aab abb _ab a_b ab_
    brute = -torch.logsumexp(torch.stack(paths), 0)
    assert torch.allclose(ctc_loss_sum(logits, batch, vocab), brute, atol=1e-5)
    assert ctc_loss_sum(logits, collate([Example(ex.ids)], [[0]], lm.pad_id), vocab).item() == 0.0


def test_ctc_training_reads_the_units_and_logs_its_loss(tmp_path):
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS + " ")
    train_units, train_texts = corpus(300, seed=0)
    test_units, test_texts = corpus(12, seed=1)
    cfg = TrainConfig(steps=150, batch_tokens=512, max_len=128, lr=3e-3, warmup_steps=10, seed=0,
                      save_every=0, progress=False, ctc_weight=0.5)
    train(lm, asr_examples(lm, train_units, train_texts), tmp_path / "asr", cfg)
    log = [json.loads(x) for x in (tmp_path / "asr" / "train_log.jsonl").read_text().splitlines()]
    ctc = [r["ctc_loss"] for r in log if "ctc_loss" in r]
    assert len(ctc) == 150 and ctc[-1] < 0.1 * ctc[0]
    res = evaluate_asr(lm, test_units, test_texts, decoder="ctc")
    assert res.cer == 0.0, res.utterances
    # the attention decoder, on half the gradient, learns too (an untrained one is near 100 %)
    assert evaluate_asr(lm, test_units, test_texts, num_beams=1).cer < 0.1
    assert ctc_transcribe(lm, test_units, batch_tokens=16) == ctc_transcribe(lm, test_units)  # batching


def test_bad_ctc_settings_are_refused(tmp_path):
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS)
    units, texts = corpus(4, seed=0)
    ex = asr_examples(lm, units, texts)
    cfg = dict(steps=1, batch_tokens=256, max_len=64, progress=False)
    with pytest.raises(ValueError, match=r"ctc_weight must be in \[0, 1\]"):
        train(lm, ex, tmp_path / "a", TrainConfig(**cfg, ctc_weight=1.5))
    with pytest.raises(ValueError, match="CTC spans"):  # pre-training examples have none
        train(lm, [Example(e.ids) for e in ex], tmp_path / "b", TrainConfig(**cfg, ctc_weight=0.3))
    with pytest.raises(ValueError, match="unit LM with ASR characters"):
        ctc_vocab(create_lm("unit-lm:tiny", k=K, seed=0, chars=None))
    train(lm, ex, tmp_path / "c", TrainConfig(**cfg, ctc_weight=0.3))
    with pytest.raises(ValueError, match="ctc_weight: 0.3 -> 0.5"):  # resume keeps the loss it began with
        train(lm, ex, tmp_path / "c", TrainConfig(**{**cfg, "steps": 2}, ctc_weight=0.5))


def test_cli_ctc_weight_eval_cer_and_ctc_decoder(tmp_path, capsys):
    from speechunits.cli import main
    from speechunits.lm import SpeechLM
    from speechunits.tokens import write_jsonl

    units, texts = corpus(40, seed=0)
    write_jsonl(tmp_path / "units.jsonl", units, {"frame_rate": 50.0, "k": K})
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    out = tmp_path / "asr"
    common = ["--units", str(tmp_path / "units.jsonl"), "--text", str(tmp_path / "text.jsonl")]
    assert main(["lm", "asr-train", *common, "--valid", str(tmp_path / "units.jsonl"), "--model", "unit-lm:tiny",
                 "--out", str(out), "--steps", "4", "--batch-tokens", "256", "--max-len", "128", "--ctc-weight",
                 "0.3", "--eval-every", "2", "--eval-cer", "5", "--no-progress"]) == 0
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert json.loads((out / "train_config.json").read_text())["config"]["ctc_weight"] == 0.3
    assert [r["step"] for r in log if "valid_cer_ctc" in r and "valid_cer" in r] == [2, 4]
    assert all("ctc_loss" in r for r in log if "loss" in r)
    capsys.readouterr()
    assert main(["lm", "asr-eval", "--model", str(out), *common, "--decoder", "ctc",
                 "--json", str(tmp_path / "asr.json")]) == 0
    got = [u["hyp"] for u in json.loads((tmp_path / "asr.json").read_text())["utterances"]]
    lm = SpeechLM.load(out)
    assert got == ctc_transcribe(lm, units)
    assert main(["lm", "asr-eval", "--model", str(out), *common, "--decoder", "joint", "--ctc-weight", "0.5",
                 "--beams", "2", "--json", str(tmp_path / "joint.json")]) == 0
    got = [u["hyp"] for u in json.loads((tmp_path / "joint.json").read_text())["utterances"]]
    assert got == joint_transcribe(lm, units, ctc_weight=0.5, num_beams=2)
    assert got != joint_transcribe(lm, units, ctc_weight=0.0, num_beams=2)  # the weight reached the decoder
    assert main(["lm", "asr-eval", "--model", str(out), *common, "--decoder", "ctc",
                 "--no-repeat-ngram-size", "3"]) != 0
    assert "for the attention decoder only" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["lm", "asr-train", *common, "--model", "unit-lm:tiny", "--out", str(tmp_path / "x"),
                 "--steps", "1", "--eval-cer", "5", "--no-progress"]) != 0
    assert "--eval-cer needs --valid" in capsys.readouterr().err
    (tmp_path / "other.jsonl").write_text(json.dumps({"id": "nobody", "text": "abc"}) + "\n")
    assert main(["lm", "asr-train", "--units", str(tmp_path / "units.jsonl"), "--text", str(tmp_path / "other.jsonl"),
                 "--valid", str(tmp_path / "units.jsonl"), "--model", "unit-lm:tiny", "--out", str(tmp_path / "y"),
                 "--steps", "1", "--no-progress"]) != 0
    assert "none of its 40 utterances has a transcript" in capsys.readouterr().err


def _collapse(path) -> tuple[int, ...]:
    return tuple(c for n, c in enumerate(path) if c and (n == 0 or c != path[n - 1]))


def test_prefix_scores_match_a_brute_force_sum_over_paths():
    from speechunits.lm.ctc_decode import CTCPrefixScorer

    T, C = 5, 3
    x = torch.log_softmax(torch.randn(T, C, generator=torch.Generator().manual_seed(0)), -1).double()
    prob: dict[tuple[int, ...], torch.Tensor] = {}
    for path in itertools.product(range(C), repeat=T):
        y = _collapse(path)
        p = x[torch.arange(T), list(path)].sum().exp()
        prob[y] = prob.get(y, 0.0) + p

    def prefix(h):  # P(the transcript starts with h)
        return sum(p for y, p in prob.items() if y[:len(h)] == h)

    scorer = CTCPrefixScorer(x[None])
    r_n, r_b = scorer.initial()
    psi, new_n, new_b = scorer.extend(r_n, r_b, torch.tensor([0]), torch.tensor([True]))
    assert torch.allclose(psi[0].exp(), torch.stack([prefix((c,)) for c in (1, 2)]))
    for c in (1, 2):  # one level deeper, through the repeat rule (c c needs a blank between)
        n1, b1 = new_n[:, c - 1], new_b[:, c - 1]
        assert torch.allclose(scorer.final(n1, b1).exp(), prob[(c,)])
        psi2, _, _ = scorer.extend(n1, b1, torch.tensor([c]), torch.tensor([False]))
        assert torch.allclose(psi2[0].exp(), torch.stack([prefix((c, d)) for d in (1, 2)]))


@pytest.fixture(scope="module")
def ctc_only(tmp_path_factory):
    """A tiny model trained with the CTC loss only (its attention decoder never trained)."""
    lm = create_lm("unit-lm:tiny", k=K, seed=0, chars=CHARS)
    train_units, train_texts = corpus(300, seed=0)
    cfg = TrainConfig(steps=100, batch_tokens=512, max_len=128, lr=3e-3, warmup_steps=10, seed=0,
                      save_every=0, progress=False, ctc_weight=1.0)
    train(lm, asr_examples(lm, train_units, train_texts), tmp_path_factory.mktemp("ctc"), cfg)
    return lm


def test_joint_decoding_uses_the_ctc_weight(ctc_only):
    """The attention-only beam (weight 0) of a model whose decoder never trained is wrong, the
    CTC-only one (weight 1) reads the units; the joint search with weight 0.9 follows CTC."""
    lm = ctc_only
    test_units, test_texts = corpus(8, seed=1)
    refs = [test_texts[u.utt_id] for u in test_units]
    assert ctc_transcribe(lm, test_units) == refs
    assert joint_transcribe(lm, test_units, ctc_weight=1.0, num_beams=3) == refs
    assert joint_transcribe(lm, test_units, ctc_weight=0.9, num_beams=3) == refs
    # batches of utterances of different lengths (padded frames, left-padded prompts) change nothing
    mixed = joint_transcribe(lm, test_units, ctc_weight=0.5, num_beams=3, batch_size=8)
    assert mixed == joint_transcribe(lm, test_units, ctc_weight=0.5, num_beams=3, batch_size=1)
    assert joint_transcribe(lm, test_units, ctc_weight=0.0, num_beams=3) != refs
    with pytest.raises(ValueError, match="ctc_weight must be in"):
        joint_transcribe(lm, test_units, ctc_weight=2.0)


def test_the_shared_prompt_cache_decodes_as_the_stock_cache(ctc_only, monkeypatch):
    from speechunits.lm import ctc_decode

    units, texts = corpus(9, seed=4)
    fast = joint_transcribe(ctc_only, units, ctc_weight=0.7, num_beams=4, batch_size=4)
    assert sum(h == texts[u.utt_id] for h, u in zip(fast, units)) >= 3  # real transcripts, not empty ones
    monkeypatch.setattr(ctc_decode, "SHARE_PROMPT", False)
    assert joint_transcribe(ctc_only, units, ctc_weight=0.7, num_beams=4, batch_size=4) == fast
