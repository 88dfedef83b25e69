"""Run a snippet where file permissions really apply, even when the tests run as root.

Root reads a ``chmod 000`` file anyway (CAP_DAC_OVERRIDE), so a permission test run as root
would pass without testing anything. The snippet runs in a child process; when the tests run as
root, the child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability bounding set
before it starts Python, so it stays root (and can still run an interpreter installed under
/root) but meets permission bits like any user. Where that cannot be done (no CAP_SETPCAP), the
test is skipped with the reason.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_capabilities() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(code: str, cwd: Path) -> str:
    """Run ``code`` with ``python -c`` where permission bits apply; return its stdout."""
    root = os.geteuid() == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        res = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=120, preexec_fn=_drop_file_capabilities if root else None)
    except (subprocess.SubprocessError, OSError) as e:
        if not root:
            raise
        pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE here: {e}")
    if res.returncode != 0:
        raise AssertionError(f"snippet failed ({res.returncode}):\n{res.stderr}")
    return res.stdout


def restore(d: Path) -> None:
    """Give every entry under ``d`` its permissions back, so it can be cleaned up."""
    d.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(d):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                p.chmod(0o755)
