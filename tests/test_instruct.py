"""Instruction tuning on discrete vs continuous speech input (downstream.instruct).

A tiny random Llama saved like a hub checkpoint (with a small word-level tokenizer) stands in for
SmolLM2 through the same loading path; the speech is generated tones in two classes, tokenized
by an MFCC k-means tokenizer fitted on them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from speechunits.cli import main  # noqa: E402
from speechunits.downstream.benchmark import user_task  # noqa: E402
from speechunits.downstream.instruct import (  # noqa: E402
    InstructLM, InstructSettings, SpeechAdapter, coverage_share, input_statistics, prepare_instruct,
    run_instruct_eval, score_answers, train_instruct)
from speechunits.encoders import load_encoder  # noqa: E402
from speechunits.fit import fit_tokenizer  # noqa: E402
from test_downstream import SR, voiced  # noqa: E402

WORDS = ["task", "speech", "answer", ":", ".", "which", "tone", "is", "it", "?", "low", "high", "a", "b"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tones (train 24 / test 8, labels low/high), an MFCC k-means tokenizer, a tiny text LLM."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("instruct")
    rows = {"train": [], "test": []}
    waves = []
    for i in range(32):
        cls = i % 2
        w = voiced(cls, SR * (1 + i % 3) // 2, seed=100 + i)  # 0.5, 1 or 1.5 s: padding gets exercised
        waves.append(w)
        sf.write(d / f"t{i}.wav", w, SR)
        rows["test" if i >= 24 else "train"].append(
            {"id": f"t{i}", "path": f"t{i}.wav", "label": ["low", "high"][cls], "prompt": "Which tone is it?"})
    for split, r in rows.items():
        (d / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r))
    tok = fit_tokenizer(load_encoder("mfcc"), waves[:24], layers=[0], k=16, seed=0)
    tok.save_pretrained(d / "tok")

    vocab = {"<unk>": 0, "<|endoftext|>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    # initializer_range 0.3: with the usual 0.02 the frozen random output layer cannot express a
    # confident prediction at all (logits within ~0.6 of each other), unlike any trained LLM's
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, eos_token_id=1,
                                 initializer_range=0.3)).save_pretrained(d / "llm")
    hf_tok.save_pretrained(d / "llm")
    tasks = [user_task(f"tones=classify:{d / 'train.jsonl'}:{d / 'test.jsonl'}")]
    data = prepare_instruct(tasks, tok, d / "work", progress=False)
    return d, tok, tasks, data


FAST = dict(batch=8, lr=3e-3, adapter_lr=3e-3, eval_every=10, patience=0, dev_max=8, progress=False)


def _model(setup, kind, **kw):
    from speechunits.downstream.instruct.run import _bpe, _feature_stats

    d, tok, _, data = setup
    bpe = _bpe(data["train"], 16, 24, d / "work" / "bpe", 0) if kind == "discrete" else None
    m = InstructLM.create(str(d / "llm"), kind, feat_dim=39, bpe=bpe, lora_r=4, lora_alpha=8, seed=0, **kw)
    if m.adapter is not None:
        m.adapter.set_stats(*_feature_stats(data["train"]))
    return m


def test_data_pairs_units_and_features_of_the_same_frames_with_the_manifest_prompt(setup):
    _, _, _, data = setup
    assert set(data) == {"train", "dev", "test:tones:test.jsonl"}
    assert len(data["train"]) + len(data["dev"]) == 24 and len(data["test:tones:test.jsonl"]) == 8
    it = data["train"][0]
    assert it.prompt == "Which tone is it?" and it.answer in ("low", "high")
    assert len(it.units()) == len(it.features()) and it.features().shape[1] == 39


def test_adapter_standardises_stacks_and_pads_the_last_group():
    a = SpeechAdapter(2, 4, stack=3)
    a.set_stats(np.array([10.0, 0.0]), np.array([2.0, 1.0]))
    with torch.no_grad():
        a.proj.weight.copy_(torch.eye(4, 6))
        a.proj.bias.zero_()
        y = a(torch.tensor([[12.0, 1.0], [10.0, 2.0], [14.0, 3.0], [8.0, 4.0]]))
    assert y.shape == (2, 4) and a.n_out(4) == 2
    # group 1 = frames 0-2 standardised and concatenated; group 2 = frame 3 then zeros
    torch.testing.assert_close(y, torch.tensor([[1.0, 1.0, 0.0, 2.0], [-1.0, 4.0, 0.0, 0.0]]))


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_a_padded_batch_scores_and_answers_as_each_example_alone(setup, kind):
    _, _, _, data = setup
    m = _model(setup, kind).eval()
    items = data["train"][:5]  # 0.5 to 1.5 s: different lengths
    encs = [m.encode(it) for it in items]
    assert len({m.speech_length(e.speech) for e in encs}) > 1
    with torch.no_grad():
        nll, n = m.answer_nll(encs)
        alone = [m.answer_nll([e]) for e in encs]
    torch.testing.assert_close(nll, sum(a for a, _ in alone), rtol=1e-4, atol=1e-4)
    assert n == sum(k for _, k in alone) == sum(len(e.answer) for e in encs)
    assert m.generate(items, max_new_tokens=3) == [m.generate([it], max_new_tokens=3)[0] for it in items]


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_both_inputs_learn_the_task_and_reload_through_the_real_path(setup, tmp_path, kind):
    _, _, _, data = setup
    m = _model(setup, kind)
    summary = train_instruct(m, data["train"], data["dev"], tmp_path / kind, InstructSettings(steps=60, **FAST))
    losses = [h["loss"] for h in json.loads((tmp_path / kind / "training" / "loss.json").read_text())["history"]]
    assert np.mean(losses[-10:]) < 0.25 * np.mean(losses[:5])  # it learns
    assert summary["best_dev_error"] == 0.0  # both tones answered right on dev
    loaded = InstructLM.load(tmp_path / kind)
    test = data["test:tones:test.jsonl"]
    assert loaded.generate(test) == [it.answer for it in test]
    saved = {p.name for p in (tmp_path / kind).iterdir()}
    assert ("speech_adapter.safetensors" in saved) == (kind == "continuous") and ("bpe" in saved) == (kind == "discrete")
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in (tmp_path / kind).rglob("*"))


def test_resume_continues_the_loss_curve_exactly(setup, tmp_path):
    _, _, _, data = setup
    s = InstructSettings(steps=6, **dict(FAST, eval_every=3, checkpoint_every=2))
    train_instruct(_model(setup, "continuous"), data["train"], data["dev"], tmp_path / "a", s)
    part = train_instruct(_model(setup, "continuous"), data["train"], data["dev"], tmp_path / "b", s, stop_at=4)
    assert not part["finished"] and not (tmp_path / "b" / "summary.json").exists()
    with pytest.raises(ValueError, match="settings"):
        train_instruct(_model(setup, "continuous"), data["train"], data["dev"], tmp_path / "b",
                       InstructSettings(steps=6, **dict(FAST, eval_every=3, checkpoint_every=2, lr=1e-3)))
    done = train_instruct(_model(setup, "continuous"), data["train"], data["dev"], tmp_path / "b", s)

    def losses(p):
        return [h["loss"] for h in json.loads((p / "training" / "loss.json").read_text())["history"]]

    assert done["finished"] and len(losses(tmp_path / "b")) == 6
    np.testing.assert_allclose(losses(tmp_path / "b"), losses(tmp_path / "a"), rtol=1e-5)
    assert done["dev_curve"] == json.loads((tmp_path / "a" / "summary.json").read_text())["dev_curve"]


def test_scores_and_token_statistics():
    assert score_answers("kws", ["low", "high"], ["Low.", "low"])["value"] == 0.5
    r = score_answers("pr", ["HH AY", "B IY"], ["hh ay", ""])
    assert r["metric"] == "per" and r["value"] == 0.5  # the empty answer deletes both phones
    assert score_answers("asr", ["the cat"], ["the cat"])["value"] == 0.0
    assert coverage_share(np.array([0] * 95 + [1, 2, 3, 4, 5])) == pytest.approx(1 / 6)


def test_input_statistics_count_positions_per_second_on_both_paths(setup):
    from speechunits.tokens.bpe import UnitBPE

    _, _, _, data = setup
    items = data["train"]
    bpe = UnitBPE.train([it.units() for it in items], vocab_size=24, k=16)
    st = input_statistics(items, bpe, stack=2, feat_dim=39)
    secs = sum(it.seconds for it in items)
    frames = sum(len(it.units()) for it in items)
    assert st["frames_per_second"] == pytest.approx(frames / secs)
    assert st["continuous"]["positions_per_second"] == pytest.approx(sum(-(-len(it.units()) // 2) for it in items) / secs)
    assert st["discrete"]["positions_per_second"] < st["dedup_units_per_second"] <= st["frames_per_second"]
    assert 0 < st["bpe"]["share_for_95pct_seen"] <= 1


def test_cli_instruct_and_instruct_eval_with_a_user_task(setup, tmp_path, capsys):
    d, _, _, _ = setup
    common = ["--tokenizer", str(d / "tok"), "--tasks", "", "--task", f"tones=classify:{d / 'train.jsonl'}:{d / 'test.jsonl'}",
              "--work", str(d / "work"), "--no-progress"]
    rc = main(["lm", "instruct", "--input", "discrete", *common, "--out", str(tmp_path / "m"), "--model", str(d / "llm"),
               "--bpe-size", "24", "--lora-r", "4", "--steps", "4", "--eval-every", "2", "--dev-max", "4"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["input_stats"]["bpe"]["vocabulary"] == 24
    rc = main(["lm", "instruct-eval", "--model", str(tmp_path / "m"), *common, "--out", str(tmp_path / "e")])
    assert rc == 0
    scores = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert scores["tests"]["tones"]["test.jsonl"]["examples"] == 8
    assert len((tmp_path / "e" / "answers.jsonl").read_text().splitlines()) == 8


def test_eval_refuses_another_tokenizer_and_a_malformed_model(setup, tmp_path):
    d, tok, tasks, data = setup
    m = _model(setup, "continuous")
    m.save(tmp_path / "m", extra={"speech_tokenizer": "not-this-one"})
    with pytest.raises(ValueError, match="another tokenizer"):
        run_instruct_eval(tmp_path / "m", tok, tasks, d / "work", progress=False)
    (tmp_path / "m" / "speechunits_instruct.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a speechunits instruction-tuned model"):
        InstructLM.load(tmp_path / "m")
    import types

    with pytest.raises(ValueError, match="single-layer"):  # checked before anything is encoded
        prepare_instruct(tasks, types.SimpleNamespace(layers=[2, 3]), tmp_path / "w", progress=False)


def test_a_user_phone_task_is_accepted_and_held_out_by_utterance(setup):
    d, _, _, _ = setup
    td = user_task(f"ph=pr:{d / 'train.jsonl'}")
    assert td.task == "pr" and len(td.train) == 22 and len(next(iter(td.tests.values()))) == 2  # 10 % held out
    with pytest.raises(ValueError, match="classify|transcribe|pr"):
        user_task(f"ph=sid:{d / 'train.jsonl'}")


def test_full_fine_tuning_trains_every_weight_and_reloads(setup, tmp_path):
    _, _, _, data = setup
    m = _model(setup, "continuous", full=True)
    n_all = sum(p.numel() for p in m.parameters())
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == n_all
    train_instruct(m, data["train"], data["dev"], tmp_path / "full", InstructSettings(steps=30, **FAST))
    assert (tmp_path / "full" / "model.safetensors").is_file() and not (tmp_path / "full" / "adapter_config.json").exists()
    loaded = InstructLM.load(tmp_path / "full")
    items = data["test:tones:test.jsonl"]
    assert loaded.generate(items) == InstructLM.load(tmp_path / "full").generate(items)
    with torch.no_grad():
        a = loaded.answer_nll([loaded.encode(it) for it in items])[0]
    assert float(a) / (2 * len(items)) < 1.0  # it learned (chance over the answer and eos is ~ln 20)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_the_speech_input_parameters_are_the_adapter_or_the_new_rows(setup, kind):
    from speechunits.downstream.instruct.train import is_speech_input_param

    m = _model(setup, kind)
    fast = {n: p for n, p in m.named_parameters() if p.requires_grad and is_speech_input_param(n)}
    rows = [p for n, p in fast.items() if "trainable_tokens_delta" in n]
    assert len(rows) == 2  # the test LLM is untied: the input and the output rows
    new_rows = (m.bpe.vocab_size if kind == "discrete" else 0) + 2  # the BPE tokens and the two markers
    assert all(r.shape[0] == new_rows for r in rows)
    assert any(n.startswith("adapter.") for n in fast) == (kind == "continuous")
    if kind == "discrete":  # the unit rows start distinct (noise over the mean)
        units = rows[0][: m.bpe.vocab_size].detach()
        assert torch.cdist(units, units).add(torch.eye(len(units)) * 1e9).min() > 0.05
    # everything else that trains is LoRA
    assert all("lora_" in n for n, p in m.named_parameters() if p.requires_grad and n not in fast)
