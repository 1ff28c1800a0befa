"""Checks of a dataset tree that do not stop an evaluation but change what it scores: ground truth missing from
the every-``label_every``-th pattern of the full release, or present off it. Ground truth beyond the poses is an
error of the poses reader, not a warning: the poses must cover every scan."""

from __future__ import annotations

from occbench.datasets.base import SSCDataset


def _first(scans: list[int], n: int = 3) -> str:
    return ", ".join(f"{t:06d}" for t in scans[:n]) + (", ..." if len(scans) > n else "")


def dataset_warnings(dataset: SSCDataset) -> list[str]:
    """One line per finding, naming the sequence, the folder and the scans. Only sequences whose scored scans come
    from ground-truth files on the every-``label_every``-th pattern (SemanticKITTI layout, occbench-mini) are
    checked; a hidden test split has no ground truth to check."""
    out = []
    for seq in dataset.sequences:
        if seq.gt_voxel_dir is None or seq._frame_ids is not None:
            continue
        n, every = seq.num_scans, seq.label_every
        pattern = set(range(0, n, every))
        present = seq.ground_truth_scans
        on = [t for t in present if t in pattern]
        absent = sorted(pattern - set(present))
        off = [t for t in present if t not in pattern]
        where = f"dataset warning: sequence {seq.name}: ground truth in {seq.gt_voxel_dir}"
        if absent:
            out.append(
                f"{where} is incomplete: {len(on)} of the {len(pattern)} scans on the every-{every}th pattern of its "
                f"{n} poses are present, {len(absent)} absent (first absent: {_first(absent)}); only the "
                f"{len(seq.labelled_frames)} scans present are scored"
            )
        if off:
            out.append(
                f"{where}: {len(off)} file(s) off the every-{every}th pattern (first: {_first(off)}); they are scored"
            )
    return out
