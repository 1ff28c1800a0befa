"""Dataset fingerprints: which ground truth a results file was scored on.

Datasets change under published numbers (SSCBench-KITTI360's test split shrank from 2,566 to 2,165 frames;
SemanticKITTI's frame counts changed with v1.1). Every results header records, under ``header.dataset.fingerprint``:

- ``files``: SHA-256 over the sorted lines ``<sequence>/<file name> <size in bytes>`` of the ground-truth files
  of the scored frames (``.label`` + ``.invalid``, or SSCBench's ``_1_1.npy``). Cheap: one ``stat`` per file.
- ``sequences``: the same hash per sequence, and ``frames``: how many frames of each were scored.
- ``content`` (only with ``evaluate --fingerprint-content``): SHA-256 over every scored frame's ground truth as the
  metric sees it (frame name, then the (256, 256, 32) uint8 train ids with 255 = ignored), in frame order. It reads
  every file, and it is the same for the two SSCBench-KITTI360 ground-truth forms when they hold the same labels.

Two rows of one dataset and split with different fingerprints were scored on different data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from occbench.errors import MissingDataError

FINGERPRINT_VERSION = 1


def _hexdigest(lines: list[str]) -> str:
    return hashlib.sha256("".join(f"{x}\n" for x in lines).encode()).hexdigest()


def _size(path: Path, sequence: str, scan: int) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise MissingDataError(path, f"ground truth of scan {scan} of sequence {sequence}") from None


def dataset_fingerprint(dataset: Any, frames: dict[str, list[int]], content: bool = False) -> dict[str, Any]:
    """Fingerprint of the ground truth of ``frames`` ({sequence name: scored scan numbers}) of ``dataset``."""
    per_seq: dict[str, str] = {}
    lines: list[str] = []
    for name in sorted(frames):
        seq = dataset[name]
        seq.require_poses(frames[name])  # a scored frame without a pose: an error naming sequence, frame and file
        entries = sorted(
            f"{name}/{p.name} {_size(p, name, t)}" for t in frames[name] for p in seq.frame(t).ground_truth_files()
        )
        per_seq[name] = _hexdigest(entries)
        lines += entries
    out: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "files": _hexdigest(lines),
        "sequences": per_seq,
        "frames": {k: len(v) for k, v in sorted(frames.items())},
        "content": None,
    }
    if content:
        h = hashlib.sha256()
        for name in sorted(frames):
            seq = dataset[name]
            for t in sorted(frames[name]):
                h.update(f"{name}/{t:06d}\n".encode())
                h.update(seq.frame(t).ground_truth().tobytes())
        out["content"] = h.hexdigest()
    return out


def short(fingerprint: dict[str, Any] | None) -> str | None:
    """The 12-character form shown on leaderboards (of ``files``; ``content`` is shown when present), or None."""
    if not fingerprint:
        return None
    s = str(fingerprint.get("files", ""))[:12]
    c = fingerprint.get("content")
    return f"{s} / {str(c)[:12]}" if c else s
