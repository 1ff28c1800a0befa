"""Label maps shipped as data files (``semantickitti.json``, ``kitti360.json``).

A :class:`LabelMap` converts between raw SemanticKITTI ids (what ``.label`` files hold) and
train ids (0 = empty, 1..C-1 classes, 255 = ignore), exactly like the official completion
LUT of semantic-kitti-api ``evaluate_completion.py``::

    lut = zeros(max(raw)+100); lut[raw] = learning_map[raw]; lut[lut == 0] = 255; lut[0] = 0
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from occbench.dataset_cards import label_map_names
from occbench.errors import FormatError

IGNORE = 255
AVAILABLE = label_map_names()  # ("semantickitti", "kitti360"): those of the protocols first, then other label map files


@dataclass(frozen=True, eq=False)
class LabelMap:
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    learning_map: dict[int, int]
    learning_map_inv: tuple[int, ...]
    colors_rgb: tuple[tuple[int, int, int], ...]
    voxel_frequencies: tuple[float, ...]
    static_classes: tuple[str, ...]
    raw_names: dict[int, str] = field(default_factory=dict)
    ignore_index: int = IGNORE

    @cached_property
    def lut(self) -> np.ndarray:
        """raw id -> train id (uint8), 255 for ignore; length max(raw)+100 like the official LUT."""
        return _build_lut(self.learning_map)

    @cached_property
    def inv_lut(self) -> np.ndarray:
        """train id -> raw id (uint16), length 256; 255 (ignore) maps to raw 0."""
        inv = np.zeros(256, np.uint16)
        inv[: self.num_classes] = self.learning_map_inv
        inv.flags.writeable = False
        return inv

    @cached_property
    def predictable_raw(self) -> np.ndarray:
        """Bool mask over raw ids (length of :attr:`lut`): True for the raw ids a prediction may hold, the keys of
        ``learning_map`` that the official LUT does not send to ignore (0 = empty, 10 = car, ...)."""
        ok = np.zeros(self.lut.size, bool)
        ok[[k for k in self.learning_map if self.lut[k] != IGNORE]] = True
        ok.flags.writeable = False
        return ok

    @property
    def static_ids(self) -> tuple[int, ...]:
        return tuple(self.class_names.index(n) for n in self.static_classes)

    @property
    def colors(self) -> np.ndarray:
        """(256, 3) uint8 RGB palette indexed by train id; ignore (255) is white."""
        pal = np.full((256, 3), 255, np.uint8)
        pal[: self.num_classes] = np.asarray(self.colors_rgb, np.uint8)
        return pal

    def class_weights(self) -> np.ndarray:
        """LMSCNet/MonoScene SSC class weights ``1 / ln(f + 0.001)``."""
        f = np.asarray(self.voxel_frequencies, np.float64)
        return 1.0 / np.log(f + 0.001)

    def to_train(self, raw: np.ndarray, path: str | Path | None = None) -> np.ndarray:
        """Map raw SemanticKITTI ids to train ids. Ids beyond the LUT raise :class:`FormatError`."""
        raw = np.asarray(raw)
        lut = self.lut
        if raw.size and int(raw.max()) >= lut.size:
            bad = np.unique(raw[raw >= lut.size])[:10].tolist()
            raise FormatError(path, f"raw {self.name} label ids < {lut.size}", f"ids {bad}")
        return lut[raw]

    def to_raw(self, train: np.ndarray, path: str | Path | None = None) -> np.ndarray:
        """Map train ids 0..C-1 to raw ids (uint16). Ids >= C raise :class:`FormatError`."""
        train = np.asarray(train)
        if train.size and int(train.max()) >= self.num_classes:
            bad = np.unique(train[train >= self.num_classes])[:10].tolist()
            raise FormatError(path, f"train ids 0..{self.num_classes - 1}", f"ids {bad}")
        return self.inv_lut[train]

    def unknown_raw_ids(self, raw: np.ndarray) -> np.ndarray:
        """Raw ids present in ``raw`` that are not keys of ``learning_map``."""
        present = np.unique(np.asarray(raw))
        known = np.fromiter(self.learning_map.keys(), np.int64)
        return present[~np.isin(present, known)]


def _build_lut(learning_map: dict[int, int]) -> np.ndarray:
    maxkey = max(learning_map)
    lut = np.zeros(maxkey + 100, np.int32)
    lut[list(learning_map.keys())] = list(learning_map.values())
    lut[lut == 0] = IGNORE
    lut[0] = 0
    out = lut.astype(np.uint8)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=None)
def load_label_map(name: str = "semantickitti") -> LabelMap:
    """Load a shipped label map: ``"semantickitti"`` (20 classes) or ``"kitti360"`` (19 classes)."""
    if name not in AVAILABLE:
        raise ValueError(f"unknown label map {name!r}; available: {', '.join(AVAILABLE)}")
    text = resources.files("occbench.labels").joinpath(f"{name}.json").read_text()
    d = json.loads(text)
    return LabelMap(
        name=d["name"],
        num_classes=int(d["num_classes"]),
        class_names=tuple(d["class_names"]),
        learning_map={int(k): int(v) for k, v in d["learning_map"].items()},
        learning_map_inv=tuple(int(v) for v in d["learning_map_inv"]),
        colors_rgb=tuple((int(r), int(g), int(b)) for r, g, b in d["colors_rgb"]),
        voxel_frequencies=tuple(float(f) for f in d["voxel_frequencies"]),
        static_classes=tuple(d["static_classes"]),
        raw_names={int(k): v for k, v in d["raw_names"].items()},
        ignore_index=int(d["ignore_index"]),
    )
