"""Unit LM: vocabulary, save/load, packing without leaks, batching, exact resume, scoring, learning."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from speechunits.lm import (  # noqa: E402
    Example, SpeechLM, TrainConfig, collate, create_lm, evaluate_nll, lm_examples, plan_batches,
    read_gold, score_pairs, sequence_nll, train, utterance_logprobs,
)
from speechunits.lm.packing import IGNORE, split_long, token_nll, verify_packing  # noqa: E402
from speechunits.lm.pairs import GoldFileError, match_files  # noqa: E402
from speechunits.lm.train import lr_at  # noqa: E402
from speechunits.tokens import Units, dedup, to_unit_text, write_jsonl  # noqa: E402

K = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and the CPU is shared with other jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lm() -> SpeechLM:
    return create_lm("unit-lm:tiny", k=K, seed=0)


def cyclic_corpus(n: int, seed: int, k: int = K, step: int = 1) -> list[Units]:
    """Strongly structured units: u[t+1] = u[t] + step (mod k), each unit held 1-3 frames."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        start, length = rng.integers(0, k), rng.integers(6, 20)
        ids = (start + step * np.arange(length)) % k
        frames = np.repeat(ids, rng.integers(1, 4, size=length))
        out.append(Units(frames, 50.0, utt_id=f"u{seed}_{i}"))
    return out


def test_tokenizer_and_model_round_trip(tmp_path, lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = np.array([3, 15, 0, 7])
    assert lm.tokenizer(to_unit_text(ids), add_special_tokens=False).input_ids == lm.unit_ids[ids].tolist()
    lm.save(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert tok.get_vocab() == lm.tokenizer.get_vocab()
    assert isinstance(model, type(lm.model)) and model.config.vocab_size == len(tok)
    x = torch.from_numpy(lm.encode_units(Units(np.array([1, 1, 2, 5]), 50.0)))[None]
    with torch.no_grad():
        assert torch.equal(model(x).logits, lm.model.eval()(x).logits)
    again = SpeechLM.load(tmp_path)
    assert again.kind == "unit-lm" and again.k == K and again.unit_ids.tolist() == lm.unit_ids.tolist()


def test_encode_dedups_frames_but_not_durations(lm):
    frames = Units(np.array([2, 2, 5, 5, 5, 2]), 50.0)
    assert lm.encode_units(frames).tolist() == [1] + lm.unit_ids[[2, 5, 2]].tolist() + [2]
    already = Units(np.array([2, 2]), 50.0, durations=np.array([1, 3]))  # e.g. BPE ids: keep
    assert lm.encode_units(already).tolist() == [1] + lm.unit_ids[[2, 2]].tolist() + [2]
    with pytest.raises(ValueError, match="outside"):
        lm.encode_units(np.array([K]))


def test_packing_does_not_leak_across_utterances(lm):
    verify_packing(lm)
    rng = np.random.default_rng(1)
    ex = [Example(lm.encode_units(rng.integers(0, K, n))) for n in (9, 4, 13)]
    lm.model.eval()
    with torch.no_grad():
        packed = token_nll(lm, collate(ex, [[0, 1, 2]], lm.pad_id, length=40))[0]
        t = 0
        for i, e in enumerate(ex):
            alone = token_nll(lm, collate(ex, [[i]], lm.pad_id))[0, : len(e) - 1]
            torch.testing.assert_close(packed[t:t + len(e) - 1], alone, rtol=0, atol=1e-5)
            t += len(e)
    # no target crosses an utterance boundary, and the padding tail is never scored
    b = collate(ex, [[0, 1, 2]], lm.pad_id, length=40)
    assert b.n_targets == sum(len(e) - 1 for e in ex)
    assert (b.targets[0, [10, 16]] == IGNORE).all() and (b.targets[0, 31:] == IGNORE).all()


def test_split_long_predicts_every_token_once():
    ex = Example(np.arange(100, 125), loss_start=3)
    parts = split_long([ex], 8)
    assert all(len(p) <= 8 for p in parts)
    b = collate(parts, [[i] for i in range(len(parts))], pad_id=0)
    got = sorted(b.targets[b.targets != IGNORE].tolist())
    assert got == list(range(103, 125))


@pytest.mark.parametrize("pack", [True, False])
def test_plan_batches_covers_epoch_deterministically(pack):
    lengths = np.random.default_rng(0).integers(3, 60, 300)
    plan = plan_batches(lengths, max_len=128, batch_tokens=512, pack=pack, seed=3, epoch=1)
    assert plan == plan_batches(lengths, 128, 512, pack, seed=3, epoch=1)
    assert plan != plan_batches(lengths, 128, 512, pack, seed=3, epoch=2)
    seen = sorted(i for batch in plan for row in batch for i in row)
    assert seen == list(range(300))
    for batch in plan:
        rows = [sum(lengths[i] for i in row) for row in batch]
        assert max(rows) <= 128
        assert (len(batch) * (128 if pack else max(rows))) <= 512 or len(batch) == 1
    if pack:
        real = lengths.sum()
        assert real / (sum(len(b) for b in plan) * 128) > 0.95  # packing wastes < 5% on padding


def test_lr_schedule():
    c = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1).resolved("unit-lm")
    assert lr_at(0, c) == pytest.approx(1e-4) and lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(55, c) == pytest.approx(0.55e-3) and lr_at(100, c) == pytest.approx(1e-4)


def _train_tiny(out, callback=None, steps=6, resume=True):
    lm = create_lm("unit-lm:tiny", k=K, seed=0)
    ex = lm_examples(lm, cyclic_corpus(40, seed=0))
    cfg = TrainConfig(steps=steps, batch_tokens=128, max_len=64, grad_accum=2, save_every=3,
                      log_every=2, seed=0, progress=False)
    return train(lm, ex, out, cfg, resume=resume, callback=callback)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full = _train_tiny(tmp_path / "full")

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 4:  # after the step-3 checkpoint, mid-way to the next one
            raise Killed

    with pytest.raises(Killed):
        _train_tiny(tmp_path / "cut", callback=kill)
    resumed = _train_tiny(tmp_path / "cut")
    assert resumed.losses == full.losses  # exact, not approximate
    log = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]
    a = SpeechLM.load(tmp_path / "full").model.state_dict()
    b = SpeechLM.load(tmp_path / "cut").model.state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(ValueError, match="cannot resume"):
        _train_tiny(tmp_path / "cut", steps=8)


def test_batched_scores_equal_one_at_a_time(lm):
    units = cyclic_corpus(30, seed=5)
    ex = [Example(lm.encode_units(u)) for u in units]
    batched = sequence_nll(lm, ex, batch_tokens=256)
    single = sequence_nll(lm, ex, batch_tokens=0)
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    lp_b, lp_s = utterance_logprobs(lm, units, 256), utterance_logprobs(lm, units, 0)
    np.testing.assert_allclose(lp_b, lp_s, rtol=0, atol=1e-4)


def test_read_gold_layouts(tmp_path):
    slm21 = ("id,filename,correct,voice,type\n"
             "7,dev/w1.wav,1,Alex,a\n7,dev/n1.wav,0,Alex,a\n7,dev/w1b.wav,1,Bob,a\n7,dev/n1b.wav,0,Bob,a\n"
             "8,dev/w2.wav,True,Alex,b\n8,dev/n2.wav,False,Alex,b\n8,dev/n3.wav,False,Alex,b\n")
    pairs = read_gold(io.StringIO("\ufeff" + slm21))
    assert [(p.correct, p.incorrect, p.type) for p in pairs] == [
        ("dev/w1.wav", "dev/n1.wav", "a"), ("dev/w1b.wav", "dev/n1b.wav", "a"),
        ("dev/w2.wav", "dev/n2.wav", "b"), ("dev/w2.wav", "dev/n3.wav", "b")]
    tsv = tmp_path / "gold.tsv"
    tsv.write_text("Correct\tIncorrect\nx.wav\ty.wav\n")
    assert [(p.correct, p.incorrect) for p in read_gold(tsv)] == [("x.wav", "y.wav")]
    with pytest.raises(GoldFileError, match="need columns"):
        read_gold(io.StringIO("name,label\na,1\n"))
    units = {u: Units(np.array([1]), 50.0, utt_id=u) for u in ("w1", "dev/n1", "n1")}
    assert match_files(["dev/w1.wav", "dev/n1.wav", "n1"], units) == {
        "dev/w1.wav": "w1", "dev/n1.wav": "dev/n1", "n1": "n1"}
    with pytest.raises(KeyError, match="no utterance"):
        match_files(["zz.wav"], units)


def test_training_lowers_nll_and_beats_chance_on_pairs(tmp_path):
    lm = create_lm("unit-lm:tiny", k=K, seed=0)
    train_units, test_units = cyclic_corpus(200, seed=1), cyclic_corpus(40, seed=2)
    before = evaluate_nll(lm, test_units)
    cfg = TrainConfig(steps=80, batch_tokens=512, max_len=128, lr=3e-3, warmup_steps=5, seed=0,
                      save_every=0, progress=False)
    train(lm, lm_examples(lm, train_units), tmp_path / "m", cfg)
    after = evaluate_nll(lm, test_units)
    assert after.per_token < 0.5 * before.per_token
    assert after.per_second == pytest.approx(after.total_nll / sum(u.duration_s for u in test_units))
    # incorrect member: the same units with the order broken (shuffled), same length
    rng = np.random.default_rng(0)
    units = {u.utt_id: u for u in test_units}
    gold = ["id,filename,correct"]
    for u in test_units:
        bad = Units(rng.permutation(dedup(u).ids), 50.0, utt_id=u.utt_id + "_bad")
        units[bad.utt_id] = bad
        gold += [f"{u.utt_id},{u.utt_id}.wav,1", f"{u.utt_id},{bad.utt_id}.wav,0"]
    res = score_pairs(lm, read_gold(io.StringIO("\n".join(gold))), units)
    assert res.n_pairs == 40 and res.accuracy_mean > 0.9 and res.accuracy_sum > 0.9


def test_keep_best_saves_the_model_of_the_lowest_validation_nll(tmp_path):
    """Train on u[t+1] = u[t] + 1 and validate on u[t+1] = u[t] + 3: the validation NLL first falls
    (the model learns which tokens are units) and then rises (it grows sure of the wrong rule), so
    the best model is an early one and differs from the final one."""
    lm = create_lm("unit-lm:tiny", k=K, seed=0)
    train_ex = lm_examples(lm, cyclic_corpus(200, seed=1))
    valid_units = cyclic_corpus(40, seed=2, step=3)
    cfg = TrainConfig(steps=60, batch_tokens=512, max_len=128, lr=3e-3, warmup_steps=5, seed=0,
                      eval_every=5, save_every=0, keep_best=True, progress=False)
    train(lm, train_ex, tmp_path / "m", cfg, valid=lm_examples(lm, valid_units))
    recs = [json.loads(x) for x in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    vals = [r for r in recs if "valid_nll" in r]
    best = min(vals, key=lambda r: r["valid_nll"])
    assert [r["step"] for r in vals if r.get("best")][-1] == best["step"] < vals[-1]["step"]
    marked = [r["valid_nll"] for r in vals if r.get("best")]
    assert marked == sorted(marked, reverse=True)  # each mark improves on the one before
    kept, final = SpeechLM.load(tmp_path / "m" / "best"), SpeechLM.load(tmp_path / "m")
    nll_kept = evaluate_nll(kept, valid_units).per_token
    assert nll_kept == pytest.approx(best["valid_nll"], rel=1e-4)
    assert evaluate_nll(final, valid_units).per_token > nll_kept + 0.1
    with pytest.raises(ValueError, match="keep_best needs a validation set"):
        train(create_lm("unit-lm:tiny", k=K, seed=0), train_ex, tmp_path / "n", cfg)

    # a run killed after the best point and resumed from its checkpoint marks the same records
    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 43:
            raise Killed

    cut = replace(cfg, save_every=20)
    with pytest.raises(Killed):
        train(create_lm("unit-lm:tiny", k=K, seed=0), train_ex, tmp_path / "cut", cut,
              valid=lm_examples(lm, valid_units), callback=kill)
    train(create_lm("unit-lm:tiny", k=K, seed=0), train_ex, tmp_path / "cut", cut, valid=lm_examples(lm, valid_units))
    again = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("best", False)) for r in again if "valid_nll" in r] == [
        (r["step"], r.get("best", False)) for r in vals]


def test_cli_train_eval_score(tmp_path, capsys):
    import argparse

    from speechunits.cli import lm as cli_lm

    def main(argv):  # only this verb group, as `speechunits` builds it
        parser = argparse.ArgumentParser(prog="speechunits")
        cli_lm.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        return args.func(args)

    cfg = {"frame_rate": 50.0, "k": K}
    write_jsonl(tmp_path / "train.jsonl", cyclic_corpus(30, seed=1), cfg)
    write_jsonl(tmp_path / "dev.jsonl", cyclic_corpus(6, seed=2), cfg)
    noisy = [Units(np.random.default_rng(i).integers(0, K, 12), 50.0, utt_id=f"n{i}") for i in range(6)]
    write_jsonl(tmp_path / "noisy.jsonl", noisy, cfg)
    out = tmp_path / "model"
    assert main(["lm", "train", "--units", str(tmp_path / "train.jsonl"), "--valid", str(tmp_path / "dev.jsonl"),
                 "--model", "unit-lm:tiny", "--out", str(out), "--steps", "3", "--batch-tokens", "256",
                 "--max-len", "128", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert main(["lm", "eval", "--model", str(out), "--units", str(tmp_path / "dev.jsonl"),
                 "--perturbed", str(tmp_path / "noisy.jsonl")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["clean"]["n_utterances"] == 6 and "gap_per_token" in res
    write_jsonl(tmp_path / "pairs.jsonl", cyclic_corpus(6, seed=2) + noisy, cfg)
    (tmp_path / "gold.csv").write_text("id,filename,correct\n1,u2_0.wav,1\n1,n0.wav,0\n2,u2_1.wav,1\n2,n1.wav,0\n")
    assert main(["lm", "score", "--model", str(out), "--units", str(tmp_path / "pairs.jsonl"),
                 "--gold", str(tmp_path / "gold.csv"), "--json", str(tmp_path / "score.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_pairs"] == 2 and 0 <= res["accuracy_sum"] <= 1
    assert len(json.loads((tmp_path / "score.json").read_text())["pairs"]) == 2


def test_cli_train_logs_a_zero_shot_learning_curve(tmp_path, capsys):
    from speechunits.cli import main

    cfg = {"frame_rate": 50.0, "k": K}
    write_jsonl(tmp_path / "train.jsonl", cyclic_corpus(200, seed=1), cfg)
    test_units = cyclic_corpus(30, seed=2)
    rng = np.random.default_rng(0)
    bad = [Units(rng.permutation(dedup(u).ids), 50.0, utt_id=u.utt_id + "_bad") for u in test_units]
    write_jsonl(tmp_path / "pairs.jsonl", test_units + bad, cfg)
    (tmp_path / "gold.csv").write_text("id,filename,correct\n" + "".join(
        f"{u.utt_id},{u.utt_id}.wav,1\n{u.utt_id},{b.utt_id}.wav,0\n" for u, b in zip(test_units, bad)))
    out = tmp_path / "m"
    assert main(["lm", "train", "--units", str(tmp_path / "train.jsonl"), "--model", "unit-lm:tiny", "--out", str(out),
                 "--steps", "60", "--batch-tokens", "512", "--max-len", "128", "--lr", "3e-3", "--warmup-steps", "5",
                 "--eval-every", "20", "--save-every", "0", "--no-progress",
                 "--pairs", f"order={tmp_path / 'pairs.jsonl'}:{tmp_path / 'gold.csv'}"]) == 0
    curve = [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "pairs_order" in r]
    assert [r["step"] for r in curve] == [20, 40, 60]
    assert curve[-1]["pairs_order"] > 0.9 and curve[-1]["pairs_order"] >= curve[0]["pairs_order"]
    assert json.loads(capsys.readouterr().out)["valid"]["pairs_order"] == curve[-1]["pairs_order"]
    assert main(["lm", "train", "--units", str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "x"),
                 "--pairs", "nonsense"]) == 2  # a usage error, before any training
    assert "expected NAME=UNITS:GOLD" in capsys.readouterr().err and not (tmp_path / "x").exists()
