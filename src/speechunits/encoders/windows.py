"""Cutting long audio into overlapping windows and stitching their frames back together.

A transformer's memory grows with the square of the input length, so audio longer than a limit
is encoded window by window. The plan works in *frames*, not seconds, which is what makes the
stitching exact:

* every window starts on a multiple of the hop (320 samples), so its frame ``j`` *is* global
  frame ``start + j``: the CNN sees exactly the same samples as in a full-length run;
* all windows have the same length (the last one is moved back to end at the last frame), so
  they batch without padding, which group-norm models need;
* consecutive windows overlap, and each output frame is taken from the window where it sits
  furthest from an edge: the boundary between two windows is the middle of their overlap, so
  every kept frame has at least ``context`` frames of real audio on each side within its window
  (except at the ends of the utterance, where a full run has no context either);
* kept ranges tile ``[0, num_frames)`` exactly: no frame dropped, none doubled.

Example:
    >>> plan = plan_windows(num_frames=3000, window_frames=1500, context_frames=100)
    >>> [(w.start, w.stop, w.keep_start, w.keep_stop) for w in plan]
    [(0, 1500, 0, 1400), (1300, 2800, 1400, 2150), (1500, 3000, 2150, 3000)]
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` are computed; global frames ``[keep_start, keep_stop)`` are kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int

    def samples(self, window: int, hop: int) -> tuple[int, int]:
        """The sample range ``[a, b)`` whose frames are exactly ``[start, stop)``."""
        return self.start * hop, (self.stop - 1) * hop + window


def plan_windows(num_frames: int, window_frames: int, context_frames: int) -> list[Window]:
    """Windows of ``window_frames`` frames covering ``num_frames`` frames (one window if it fits).

    ``context_frames`` is the minimum context kept on each side of every kept frame inside its
    window; consecutive windows overlap by at least ``2 * context_frames``.
    """
    if num_frames <= 0:
        return []
    if num_frames <= window_frames:
        return [Window(0, num_frames, 0, num_frames)]
    if context_frames < 0 or window_frames - 2 * context_frames < 1:
        raise ValueError(
            f"window of {window_frames} frames cannot keep {context_frames} frames of context on each "
            "side: make the window longer or the overlap shorter"
        )
    step = window_frames - 2 * context_frames
    starts = list(range(0, num_frames - window_frames, step))
    starts.append(num_frames - window_frames)  # last window ends exactly at the last frame
    # Each boundary is the middle of the overlap between a window and the next.
    bounds = [0]
    for a, b in zip(starts, starts[1:]):
        bounds.append((b + a + window_frames) // 2)
    bounds.append(num_frames)
    return [Window(a, a + window_frames, bounds[i], bounds[i + 1]) for i, a in enumerate(starts)]
