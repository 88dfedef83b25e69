"""A pre-training run's prediction head as a tokenizer: does the encoder predict its own targets
better than the features they came from?

    python scripts/head_tokenizer.py RUN_DIR OUT_DIR

HuBERT's head (``final_proj`` + one embedding per target cluster, logits = cosine / 0.1; written
by ``speechunits ssl pretrain`` as ``RUN/head.safetensors``) has exactly the structure of a Spin
codebook: a linear projection of the last layer, then the nearest L2-normalised codeword by
cosine. So the head is saved as a ``SpinQuantizer`` (``"method": "hubert prediction head"``) on
the run's encoder, and ``OUT_DIR`` is an ordinary tokenizer for ``speechunits eval``: its units are
the encoder's arg-max prediction of the iteration's targets (MFCC k-means for iteration 1) at
every frame. Used in docs/results.md ("The pre-training head as a quantizer").
"""

from __future__ import annotations

import argparse
from pathlib import Path


def head_tokenizer(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the tokenizer (run's encoder + its head as a cosine codebook) to ``out_dir``."""
    from speechunits.encoders import load_encoder
    from speechunits.encoders.pretrain import load_head
    from speechunits.quantizers.spin import SpinQuantizer
    from speechunits.tokenizer import Tokenizer

    run = Path(run_dir)
    enc = load_encoder(str(run / "encoder"))
    head = load_head(run)
    q = SpinQuantizer(head.final_proj.weight, head.final_proj.bias, head.label_embs, layer=enc.num_layers,
                      info={"method": "hubert prediction head", "run": run.name})
    Tokenizer(enc, q).save_pretrained(out_dir)
    return Path(out_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a `speechunits ssl pretrain` output folder (encoder/, head.safetensors)")
    p.add_argument("out_dir", help="tokenizer folder to write")
    a = p.parse_args()
    print(head_tokenizer(a.run_dir, a.out_dir))


if __name__ == "__main__":
    main()
