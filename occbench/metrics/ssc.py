"""Streaming semantic scene completion metric (official SemanticKITTI / SSCBench definitions), range-stratified.

State: one integer confusion matrix per *cell* ``(range level, distance bin)``. Every frame is counted in
ONE pass: each (x, y) column of the grid has a precomputed cell code, the nested range crops are sums of
disjoint levels, the distance bins are the other axis. States merge by addition.

Per frame the kernel never touches voxels that are empty in both prediction and ground truth one by one:
the two grids are read as 64-bit words (8 train ids or 4 raw ids per word), only words holding something
non-zero are gathered, and the empty/empty count of the rest is recovered exactly from the per-cell number
of not-invalid voxels. See ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from occbench.errors import FormatError
from occbench.grid import KITTI, Grid
from occbench.labels import load_label_map
from occbench.metrics import _kernel
from occbench.metrics.base import Metric
from occbench.metrics.frame import FrameArrays, as_frame_arrays
from occbench.metrics.protocol import EvalProtocol, get_protocol, range_key

_BYTE_SUM = np.uint64(0x0101010101010101)
# word used to skip empty/empty voxels, by label itemsize (uint8 train ids, uint16 raw ids): 4 voxels a word
_WORD_DTYPE = {1: np.uint32, 2: np.uint64}
_NO_INV = np.zeros(8, np.uint8)  # placeholder mask for the kernels (never read with INV_NONE)
_NO_INV.flags.writeable = False


class Layout:
    """Cell code of every (x, y) column: ``code = level * n_bins + distance_bin``.

    ``level`` is the index of the smallest range crop holding the column (``len(ranges)`` if none);
    ``distance_bin = floor(hypot(x_c, y_c) / bin_width)`` of the column centre in the LiDAR frame.
    """

    def __init__(self, ranges: tuple[float, ...], bin_width: float, grid: Grid = KITTI):
        self.grid = grid
        self.ranges = grid.check_ranges(ranges)
        self.bin_width = float(bin_width)
        level = grid.range_levels(self.ranges)
        self.n_levels = int(level.max()) + 1
        xc, yc = grid.column_centres()
        dist = np.hypot(xc, yc)
        dbin = np.floor(dist / self.bin_width).astype(np.int64)
        self.n_bins = int(dbin.max()) + 1
        self.bin_edges = self.bin_width * np.arange(self.n_bins + 1)
        self.n_cells = self.n_levels * self.n_bins
        code = level * self.n_bins + dbin
        dt = np.uint8 if self.n_cells <= 256 else np.uint16
        self.code = code.astype(dt).reshape(-1)  # (X * Y,) per column, C order over (x, y)
        self.code.flags.writeable = False
        self.columns_per_cell = np.bincount(self.code, minlength=self.n_cells).astype(np.int64)
        self._col_order = np.argsort(self.code, kind="stable")
        self._nonempty_cells = np.flatnonzero(self.columns_per_cell)
        self._cell_starts = np.searchsorted(self.code[self._col_order], self._nonempty_cells)

    def sum_per_cell(self, per_column: np.ndarray) -> np.ndarray:
        """Sum a per-column (X * Y,) integer array over the columns of each cell -> (n_cells,) int64."""
        out = np.zeros(self.n_cells, np.int64)
        out[self._nonempty_cells] = np.add.reduceat(per_column[self._col_order], self._cell_starts)
        return out


def _column_invalid_counts(inv_u8: np.ndarray, grid: Grid) -> np.ndarray:
    """Number of invalid voxels (0/1 bytes) in each column of the grid (KITTI: 65,536 columns of 32 voxels)."""
    v = inv_u8.view(np.uint64).reshape(grid.num_columns, grid.shape[2] // 8)
    s = v.sum(axis=1, dtype=np.uint64)  # per byte lane: <= Z / 8 <= 8, no carry
    return ((s * _BYTE_SUM) >> np.uint64(56)).astype(np.int64)  # sum of the 8 bytes (<= Z <= 64)


def _word_byte_sums(words: np.ndarray) -> np.ndarray:
    """Sum of the 8 bytes of each uint64 (each byte 0/1)."""
    return ((words * _BYTE_SUM) >> np.uint64(56)).astype(np.int64)


class SSCMetric(Metric):
    """Streaming SSC metric over a confusion matrix accumulated across all frames of a split.

    Identical in definition to the reference implementation named by the protocol
    (``semantickitti-ssc``: semantic-kitti-api ``evaluate_completion.py``; ``sscbench-kitti360-ssc``:
    SSCBench/MonoScene ``SSCMetrics``). A voxel is evaluated iff its ground truth is not ``ignore_index`` and it
    is not invalid (see ``EvalProtocol.invalid_policy``). Confusion rows are predictions, columns ground truth.

    Frames are grids of the protocol's grid (``protocol.grid``: shape, range crops, distance of the columns from
    the sensor; KITTI's 256 x 256 x 32 by default), whose height must be a multiple of 8 voxels up to 64 (the
    kernels read columns as whole 64-bit words).

    Args:
        protocol: a :class:`EvalProtocol` or its id.
        ranges: range crops in metres; default ``protocol.ranges`` (12.8, 25.6, 51.2).
        distance_bin_width: width of the finer distance bins; default ``protocol.distance_bin_width``.

    States (:class:`~occbench.metrics.base.Metric`): ``_counts`` ``[cell, gt, pred]`` and ``n_frames``.
    """

    _counts: np.ndarray  # declared states (add_state)
    n_frames: int

    higher_is_better = True

    def __init__(
        self,
        protocol: EvalProtocol | str = "semantickitti-ssc",
        ranges: tuple[float, ...] | None = None,
        distance_bin_width: float | None = None,
    ):
        super().__init__(protocol)
        p = self.protocol
        self.grid = p.grid
        if self.grid.shape[2] % 8 or not 8 <= self.grid.shape[2] <= 64:
            raise ValueError(
                f"SSCMetric counts columns of whole 64-bit words: grid {self.grid.name} of height "
                f"{self.grid.shape[2]} voxels, expected a multiple of 8 from 8 to 64"
            )
        self.layout = Layout(
            tuple(ranges) if ranges is not None else p.ranges,
            distance_bin_width if distance_bin_width is not None else p.distance_bin_width,
            p.grid,
        )
        self.ranges = self.layout.ranges
        C = p.num_classes
        self.num_classes = C
        if p.ignore_index != 255:
            raise ValueError(
                f"SSCMetric requires ignore_index 255 (uint8 wrap-around), protocol {p.tag} has {p.ignore_index}"
            )
        self.add_state("_counts", np.zeros((self.layout.n_cells, C, C), np.int64))  # [cell, gt, pred]
        self.add_state("n_frames", 0)
        nkeys = self.layout.n_cells * (C + 1) * C
        self._nkeys = nkeys
        self._key_dtype = np.uint16 if nkeys <= 1 << 16 else np.int64
        self._code_k = self.layout.code.astype(self._key_dtype)
        # gt value -> state: class c -> c + 1, ignore -> 0, anything else -> 255 (malformed)
        g = np.full(256, 255, np.uint8)
        g[:C] = np.arange(1, C + 1, dtype=np.uint8)
        g[p.ignore_index] = 0
        self._g_lut_train = g
        pl = np.full(256, 255, np.uint8)  # prediction train id -> itself if valid, else 255 (error if evaluated)
        pl[:C] = np.arange(C, dtype=np.uint8)
        self._p_lut_train = pl
        self._raw_luts: tuple[np.ndarray, np.ndarray] | None = None
        self.use_compiled = True  # False forces the numpy kernel (tests compare the two)

    # ------------------------------------------------------------------ accumulation
    def update_frame(self, pred: np.ndarray, frame: FrameArrays) -> None:
        """Add one frame: ``pred`` against ``frame`` (:class:`~occbench.metrics.FrameArrays`).

        Args:
            pred: the prediction, a grid of the protocol's grid shape: train ids ``0..C-1`` (uint8 is the fast
                path; any integer dtype is accepted), or with ``frame.labels == "raw"`` raw label ids (uint16, what
                ``.label`` files hold). Values outside ``0..C-1`` (raw: ids the label map does not map to a class)
                are an error at evaluated voxels and ignored elsewhere.
            frame: ``frame.ground_truth`` (train ids or ``ignore_index``; raw ids with ``labels="raw"``, mapped with
                the protocol's label map like the official script: raw 0 = empty, unmapped ids = ignore),
                ``frame.invalid`` (optional; bit-packed as on disk is read by the compiled kernel without
                unpacking) and ``frame.name`` (error messages). The pose is not used.
        """
        frame = as_frame_arrays(frame)
        if frame.ground_truth is None:
            raise ValueError(f"SSCMetric scores against ground truth: frame {frame.name or '(unnamed)'} has none")
        if frame.labels == "raw":
            self._update_raw(pred, frame.ground_truth, frame.invalid, name=frame.name, batch=False)
        else:
            self._update(pred, frame.ground_truth, frame.invalid, name=frame.name, batch=False)

    def _update(
        self,
        pred: np.ndarray,
        gt: np.ndarray,
        invalid: np.ndarray | None = None,
        *,
        name: str | None = None,
        batch: bool = True,
    ) -> None:
        """Add one frame or (``batch``) a batch ``(B, X, Y, Z)`` of train ids (``invalid``: as :class:`FrameArrays`
        holds it, or one mask per frame of the batch)."""
        pred, gt, batched = self._check_shapes(pred, gt, batch)
        mode, inv = self._prep_invalid(invalid, pred.shape[0], name)
        for b in range(pred.shape[0]):
            nm = name if not batched else f"{name or 'batch'}[{b}]"
            ib = None if inv is None else inv[b]
            p8 = self._to_u8(pred[b], "prediction", nm, gt=gt[b], inv=None if ib is None else (mode, ib))
            g8 = self._to_u8(gt[b], "ground truth", nm)
            self._count(p8, g8, mode, ib, None, self._g_lut_train, nm)

    def _update_raw(
        self,
        pred_raw: np.ndarray,
        gt_raw: np.ndarray,
        invalid: np.ndarray | None = None,
        *,
        name: str | None = None,
        batch: bool = True,
        refuse_unmapped: bool = False,
    ) -> bool:
        """Add one frame (or a batch) of raw label ids; the compiled kernel maps them and reads a bit-packed mask
        inside its one pass, with no full-size intermediate array. ``refuse_unmapped``: see :meth:`_count`; returns
        whether every frame was added."""
        pred_raw, gt_raw, batched = self._check_shapes(pred_raw, gt_raw, batch)
        mode, inv = self._prep_invalid(invalid, pred_raw.shape[0], name)
        p_lut, g_lut = self._raw_lookup()
        added = True
        for b in range(pred_raw.shape[0]):
            nm = name if not batched else f"{name or 'batch'}[{b}]"
            p16 = self._to_u16(pred_raw[b], "raw prediction", nm)
            g16 = self._to_u16(gt_raw[b], "raw ground truth", nm)
            ib = None if inv is None else inv[b]
            added &= self._count(p16, g16, mode, ib, p_lut, g_lut, nm, refuse_unmapped)
        return added

    def add_checked_raw(self, pred_raw: np.ndarray, frame: FrameArrays) -> bool | None:
        """Add one frame of raw ids (``frame.labels == "raw"``) unless its prediction holds an id that the
        protocol's label map does not map to a class, at any voxel (a submission's files, checked as they are
        scored), all in the compiled kernel's one pass. Returns True (added), False (nothing added: such ids, or a
        malformed frame; :meth:`update_frame` says which, precisely), or None where the compiled kernel is not
        available (nothing added)."""
        frame = as_frame_arrays(frame)
        if not (self.use_compiled and _kernel.AVAILABLE) or frame.labels != "raw" or frame.ground_truth is None:
            return None
        return self._update_raw(
            pred_raw, frame.ground_truth, frame.invalid, name=frame.name, batch=False, refuse_unmapped=True
        )

    def _raw_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._raw_luts is None:
            lm = load_label_map(self.protocol.label_map)
            lut = np.asarray(lm.lut)
            if lut[0] != 0 or (lut[1:] == 0).any():
                raise AssertionError("label map LUT must map only raw 0 to empty")  # pragma: no cover
            p = np.full(1 << 16, 255, np.uint8)
            p[: lut.size] = lut
            g = np.full(1 << 16, 255, np.uint8)
            g[: lut.size] = self._g_lut_train[lut]
            self._raw_luts = (p, g)
        return self._raw_luts

    def _check_shapes(self, pred: np.ndarray, gt: np.ndarray, batch: bool) -> tuple[np.ndarray, np.ndarray, bool]:
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise FormatError(None, "prediction and ground truth of the same shape", f"{pred.shape} and {gt.shape}")
        shape = self.grid.shape
        if pred.shape == shape:
            return pred[None], gt[None], False
        if batch and pred.ndim == 4 and pred.shape[1:] == shape:
            return pred, gt, True
        if not batch:
            raise FormatError(None, f"a grid {shape} (one frame)", f"shape {pred.shape}")
        raise FormatError(None, f"a grid {shape} or a batch (B, {', '.join(map(str, shape))})", f"shape {pred.shape}")

    def _prep_invalid(self, invalid: np.ndarray | None, n: int, name: str | None) -> tuple[int, np.ndarray | None]:
        """-> ``(mode, (n, L) uint8 C-contiguous)``: ``_kernel.INV_PACKED`` (L = N / 8, bits MSB first),
        ``_kernel.INV_BYTES`` (L = N, 0/1) or ``(_kernel.INV_NONE, None)``."""
        if invalid is None:
            return _kernel.INV_NONE, None
        inv = np.asarray(invalid)
        shape, nv = self.grid.shape, self.grid.num_voxels
        packed = nv // 8
        if inv.dtype == np.uint8 and inv.shape in ((packed,), (n, packed)):
            return _kernel.INV_PACKED, np.ascontiguousarray(inv).reshape(n, packed)
        if inv.shape not in (shape, (n, *shape), (nv,), (n, nv)):
            if inv.ndim == 1 or (inv.ndim == 2 and inv.shape[0] == n and inv.dtype == np.uint8):
                raise FormatError(
                    name,
                    f"an invalid mask of {nv:,} voxels per frame: bit-packed as on disk, "
                    f"{packed:,} uint8 bytes (MSB first), or one flag per voxel, {nv:,} values",
                    f"{inv.shape[-1]:,} values of dtype {inv.dtype}" + (f" for {n} frames" if inv.ndim == 2 else ""),
                )
            raise FormatError(
                name,
                f"invalid mask of shape {shape} (or bit-packed ({packed},) uint8)",
                f"shape {inv.shape} dtype {inv.dtype}",
            )
        if inv.dtype != np.bool_:
            inv = inv != 0
        return _kernel.INV_BYTES, np.ascontiguousarray(inv).reshape(n, nv).view(np.uint8)

    @staticmethod
    def _unpacked(mode: int, inv: np.ndarray) -> np.ndarray:
        """One frame's mask as (N,) uint8 0/1 (unpacks a bit-packed one: numpy kernel and error paths only)."""
        return np.unpackbits(inv) if mode == _kernel.INV_PACKED else inv

    def _to_u8(
        self,
        a: np.ndarray,
        what: str,
        name: str | None,
        gt: np.ndarray | None = None,
        inv: tuple[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        if a.dtype == np.uint8:
            return np.ascontiguousarray(a).reshape(-1)
        if a.dtype.kind not in "ui":
            raise FormatError(name, f"integer train ids for the {what}", f"dtype {a.dtype}")
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return np.ascontiguousarray(a, dtype=np.uint8).reshape(-1)
        out_of_byte = (a < 0) | (a > 255)
        if gt is None:  # ground truth: any value outside 0..C-1 / ignore is malformed
            vals = np.unique(a[out_of_byte])[:10].tolist()
            raise FormatError(
                name, f"{what} train ids 0..{self.num_classes - 1} or {self.protocol.ignore_index}", f"values {vals}"
            )
        mask = np.asarray(gt) != self.protocol.ignore_index
        if inv is not None:
            mask &= self._unpacked(*inv).reshape(self.grid.shape) == 0
        bad = out_of_byte & mask
        if bad.any():
            self._raise_pred(np.unique(a[bad]), int(bad.sum()), name)
        a = np.where(out_of_byte, 0, a)  # outside the mask: never evaluated
        return a.astype(np.uint8).reshape(-1)

    @staticmethod
    def _to_u16(a: np.ndarray, what: str, name: str | None) -> np.ndarray:
        if a.dtype == np.uint16:
            return np.ascontiguousarray(a).reshape(-1)
        if a.dtype.kind not in "ui":
            raise FormatError(name, f"integer raw label ids for the {what}", f"dtype {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise FormatError(name, f"{what} raw ids in 0..65535", f"values in {int(a.min())}..{int(a.max())}")
        return np.ascontiguousarray(a, dtype=np.uint16).reshape(-1)

    def _raise_pred(self, vals: np.ndarray, count: int, name: str | None, raw: bool = False) -> None:
        C = self.num_classes
        v = [int(x) for x in np.asarray(vals)[:10]]
        if raw:
            raise FormatError(
                name,
                f"raw prediction ids that map to train ids 0..{C - 1} ({self.protocol.label_map} learning_map) "
                "at evaluated voxels",
                f"raw ids {v} (mapping to ignore or unknown) at {count} evaluated voxels",
            )
        raise FormatError(
            name, f"prediction train ids 0..{C - 1} at evaluated voxels", f"values {v} at {count} evaluated voxels"
        )

    def _count(
        self,
        p: np.ndarray,
        g: np.ndarray,
        mode: int,
        inv: np.ndarray | None,
        p_lut: np.ndarray | None,
        g_lut: np.ndarray,
        name: str | None,
        refuse_unmapped: bool = False,
    ) -> bool:
        """Count one frame: the compiled kernel when numba is present, else (or to raise the precise error
        of a malformed frame) the numpy kernel. Either adds the whole frame or nothing. ``refuse_unmapped``
        (compiled kernel only): a frame whose prediction holds an id ``p_lut`` maps to no class at any voxel, or
        that the kernel finds malformed, is not added and nothing is raised: returns False (True: added)."""
        if self.use_compiled and _kernel.AVAILABLE:
            C = self.num_classes
            fresh = self._scratch()
            ro, words = _kernel.readonly, _kernel.words
            kp, kg, ki = ro(p), ro(g), ro(inv) if inv is not None else _NO_INV
            args = (
                kp,
                kg,
                ki,
                words(kp),
                words(kg),
                words(ki),
                mode,
                self.protocol.invalid_policy == "mask-empty-only",
                self.layout.code,
                C,
            )
            Z = self.grid.shape[2]
            if Z == 32:  # the KITTI grid: columns of 32 voxels compiled in as constants
                if p_lut is None:
                    bad, unmapped = _kernel.count_train(*args, self._p_lut_train, g_lut, fresh)
                else:
                    bad, unmapped = _kernel.count_raw(*args, p_lut, g_lut, fresh)
            elif p_lut is None:
                bad, unmapped = _kernel.count_train_z(*args, self._p_lut_train, g_lut, fresh, Z)
            else:
                bad, unmapped = _kernel.count_raw_z(*args, p_lut, g_lut, fresh, Z)
            if refuse_unmapped and (bad or unmapped):
                return False
            if bad == 0:
                self._counts += fresh[:, 1:, :]
                self.n_frames += 1
                return True
            # fall through: the numpy kernel raises the precise error (nothing was added)
        elif refuse_unmapped:
            raise ValueError("refuse_unmapped needs the compiled kernel")
        self._count_numpy(p, g, None if inv is None else self._unpacked(mode, inv), p_lut, g_lut, name)
        return True

    def _scratch(self) -> np.ndarray:
        """Zeroed (n_cells, C + 1, C) int64 counts for one frame (kept between frames, not pickled)."""
        buf = self.__dict__.get("_fresh")
        if buf is None:
            buf = self._fresh = np.zeros((self.layout.n_cells, self.num_classes + 1, self.num_classes), np.int64)
        else:
            buf.fill(0)
        return buf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_fresh", None)
        return state

    def _count_numpy(
        self,
        p: np.ndarray,
        g: np.ndarray,
        inv: np.ndarray | None,
        p_lut: np.ndarray | None,
        g_lut: np.ndarray,
        name: str | None,
    ) -> None:
        """The one-pass numpy kernel. ``p``/``g``: flat C-contiguous uint8 (train ids) or uint16 (raw ids)."""
        C = self.num_classes
        wdt = _WORD_DTYPE[p.itemsize]
        W = wdt().itemsize // p.itemsize  # voxels per word
        Z = self.grid.shape[2]
        wpc = Z // W  # words a column: word index // wpc = column index
        wp = p.view(wdt)
        wg = g.view(wdt)
        nzw = np.flatnonzero(wp | wg)  # words holding any non-empty voxel in pred or gt
        P = wp[nzw].view(p.dtype).reshape(-1, W)
        G = wg[nzw].view(g.dtype).reshape(-1, W)
        if p_lut is None:  # train ids: c -> c + 1, ignore (255) -> 0 by uint8 wrap-around
            GS = G + np.uint8(1)
        else:
            GS = np.take(g_lut, G)  # raw ids -> 0 = not evaluated, c + 1 = class c, 255 = malformed
        if GS.size and GS.max() > C:
            vals = np.unique(G[GS > C])[:10].tolist()
            what = (
                "raw ground-truth ids known to the label map"
                if p_lut is not None
                else f"ground-truth train ids 0..{C - 1} or {self.protocol.ignore_index}"
            )
            raise FormatError(name, what, f"values {vals}")
        cell = self._code_k[nzw // wpc]
        if inv is not None:
            Iw = inv.view({8: np.uint64, 4: np.uint32, 2: np.uint16}[W])[nzw]
            Inv = Iw.view(np.uint8).reshape(-1, W)
            Ieff = Inv * (GS == 1) if self.protocol.invalid_policy == "mask-empty-only" else Inv
            GS = GS * (1 - Ieff)
        Pt = np.take(p_lut, P) if p_lut is not None else P
        if Pt.size and Pt.max() >= C:
            bad = (Pt >= C) & (GS != 0)
            if bad.any():
                self._raise_pred(np.unique(P[bad]), int(bad.sum()), name, raw=p_lut is not None)
            Pt = np.where(Pt >= C, 0, Pt).astype(np.uint8)
        key = (cell[:, None] * (C + 1) + GS) * C + Pt
        bc = np.bincount(key.reshape(-1), minlength=self._nkeys).reshape(self.layout.n_cells, C + 1, C)
        self._counts += bc[:, 1:, :]
        # empty/empty voxels of the skipped words: every not-invalid voxel there is (pred 0, gt 0)
        n_words = np.bincount(cell, minlength=self.layout.n_cells)
        if inv is None:
            notinv = Z * self.layout.columns_per_cell
            inv_in_words: int | np.ndarray = 0
        else:
            notinv = Z * self.layout.columns_per_cell - self.layout.sum_per_cell(_column_invalid_counts(inv, self.grid))
            isum = _word_byte_sums(Iw.astype(np.uint64))
            inv_in_words = np.bincount(cell, weights=isum, minlength=self.layout.n_cells).astype(np.int64)
        self._counts[:, 0, 0] += notinv - (W * n_words - inv_in_words)
        self.n_frames += 1

    # ------------------------------------------------------------------ state
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "ranges": [float(r) for r in self.ranges],
            "distance_bin_width": self.layout.bin_width,
        }

    def _empty_like(self) -> "SSCMetric":
        return SSCMetric(self.protocol, self.ranges, self.layout.bin_width)

    @classmethod
    def from_state_dict(cls, d: dict[str, Any], protocol: EvalProtocol | None = None) -> "SSCMetric":
        """The metric of a :meth:`state_dict` (under ``protocol``, default the one its settings name)."""
        settings = d.get("settings") if isinstance(d, dict) else None
        if not isinstance(settings, dict) or not {"protocol", "ranges", "distance_bin_width"} <= set(settings):
            raise FormatError(
                None, "an SSCMetric state_dict (settings: protocol, ranges, distance_bin_width)", f"{str(d)[:80]}"
            )
        pid, _, version = str(settings["protocol"]).partition("@")
        proto = protocol if protocol is not None else get_protocol(pid)
        if (proto.id, proto.version) != (pid, version):
            raise ValueError(f"state was computed under {settings['protocol']}, not {proto.tag}")
        return cls(proto, tuple(settings["ranges"]), float(settings["distance_bin_width"])).load_state_dict(d)

    # ------------------------------------------------------------------ results
    def confusion(self, range_m: float | None = None) -> np.ndarray:
        """(C, C) int64 confusion of a range crop (default: the largest), rows = prediction, cols = gt."""
        cells = self._cells_of_range(range_m)
        return self._counts[cells].sum(axis=0).T.copy()

    def _cells_of_range(self, range_m: float | None) -> np.ndarray:
        L = self.layout
        if range_m is None:
            li = len(self.ranges) - 1
        else:
            matches = [i for i, r in enumerate(self.ranges) if abs(r - float(range_m)) < 1e-9]
            if not matches:
                raise ValueError(f"range {range_m} m was not evaluated; ranges: {self.ranges}")
            li = matches[0]
        return np.arange((li + 1) * L.n_bins)

    def compute(self) -> dict[str, dict[str, Any]]:
        """Metrics of every range, as fractions in 0..1: ``{"12.8": {...}, "25.6": {...}, "51.2": {...}}``."""
        return {range_key(r): scores_from_confusion(self.confusion(r), self.protocol) for r in self.ranges}

    def distance_curve(self, range_m: float | None = None, cumulative: bool = False) -> dict[str, Any]:
        """IoU / mIoU / precision / recall per distance bin (horizontal distance of the voxel column centre
        from the sensor, bins of ``distance_bin_width``), restricted to a range crop (default: the largest).

        ``cumulative=True`` gives the metrics of all voxels closer than each bin's upper edge.
        Bins without evaluated voxels follow the protocol's rules (IoU NaN or 0, class IoUs 0).
        """
        L = self.layout
        cells = self._cells_of_range(range_m)
        per_bin = self._counts.reshape(L.n_levels, L.n_bins, self.num_classes, self.num_classes)
        n_lv = cells.size // L.n_bins
        cb = per_bin[:n_lv].sum(axis=0)  # (n_bins, gt, pred)
        if cumulative:
            cb = np.cumsum(cb, axis=0)
        rows = [scores_from_confusion(cb[k].T, self.protocol) for k in range(L.n_bins)]
        names = self.protocol.class_names
        return {
            "range": range_key(self.ranges[n_lv - 1] if n_lv <= len(self.ranges) else self.ranges[-1]),
            "cumulative": cumulative,
            "bin_edges_m": [float(x) for x in L.bin_edges],
            "distance": "horizontal distance from the sensor to the voxel column centre",
            "n_evaluated": [r["n_evaluated"] for r in rows],
            "iou": [r["iou"] for r in rows],
            "miou": [r["miou"] for r in rows],
            "precision": [r["precision"] for r in rows],
            "recall": [r["recall"] for r in rows],
            "per_class_iou": {n: [r["per_class_iou"][n] for r in rows] for n in names},
        }


def ssc_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    protocol: EvalProtocol | str = "semantickitti-ssc",
    invalid: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """One-shot :class:`SSCMetric`: the scores of every range of the frame (the protocol's grid shape,
    ``(256, 256, 32)`` on KITTI) or the batch ``(B, 256, 256, 32)`` of train ids ``pred`` against ``gt``
    (``invalid``: as :class:`~occbench.metrics.FrameArrays` holds it, or one mask per frame of a batch)."""
    m = SSCMetric(protocol)
    m._update(pred, gt, invalid)  # a batch too
    return m.compute()


def scores_from_confusion(conf: np.ndarray, protocol: EvalProtocol) -> dict[str, Any]:
    """Official scores of a (C, C) confusion matrix (rows = prediction, cols = ground truth), as fractions."""
    conf = np.asarray(conf, np.int64)
    tp_c = np.diag(conf)
    fp_c = conf.sum(axis=1) - tp_c
    fn_c = conf.sum(axis=0) - tp_c
    iou_c = tp_c / (tp_c + fp_c + fn_c + protocol.iou_epsilon)
    miou = float(iou_c[list(protocol.miou_classes)].mean())
    tp = int(conf[1:, 1:].sum())
    fp = int(conf[1:, 0].sum())
    fn = int(conf[0, 1:].sum())
    if protocol.completion_rule == "semantic-kitti-api":
        eps = protocol.pr_epsilon
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        iou = tp / (tp + fp + fn) if (tp + fp + fn) > 0 else float("nan")
    else:  # SSCMetrics: all three 0 when tp == 0
        if tp != 0:
            precision, recall, iou = tp / (tp + fp), tp / (tp + fn), tp / (tp + fp + fn)
        else:
            precision = recall = iou = 0.0
    return {
        "iou": float(iou),
        "precision": float(precision),
        "recall": float(recall),
        "miou": miou,
        "per_class_iou": {n: float(v) for n, v in zip(protocol.class_names, iou_c)},
        "n_evaluated": int(conf.sum()),
    }
