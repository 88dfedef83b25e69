"""Downstream probes on tokens: layer attention, task heads (CTC, pooling), the benchmark."""
