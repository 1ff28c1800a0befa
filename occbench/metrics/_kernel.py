"""Compiled one-pass counting kernels (numba) of :class:`SSCMetric`: train ids and raw ids, any invalid mask form.

A kernel visits the grid once, column by column (``Z`` voxels, file order: 32 on KITTI, a constant of the
compiled ``count_train`` / ``count_raw``; ``count_train_z`` / ``count_raw_z`` take ``Z``, a multiple of 8 up to
64), and adds one to ``counts[cell(column), gt + 1, pred]`` for each evaluated voxel. It is exact by construction
(integer increments) and tested to give the same counts as the pure-numpy kernel of ``ssc.py`` (the fallback when
numba is absent). Everything happens inside the compiled loop, with no full-size intermediate array:

* labels are read as 64-bit words (8 train ids or 4 raw ids a word); a column whose words are all zero in
  both grids (empty/empty) is counted at once, and inside other columns zero words and zero voxels are too;
* raw ids are mapped with the 64 Ki-entry LUTs inside the loop;
* the invalid mask is read either as one byte per voxel or **bit-packed as on disk** (``.invalid``, MSB
  first: voxel ``i`` is bit ``7 - (i & 7)`` of byte ``i >> 3``, ``np.packbits`` order), ``Z`` bits a column,
  so the 32 KiB file is never unpacked.

Why numba: the numpy kernel needs several full passes and a bincount (~10 ms a frame for three ranges); this
pass over the 4 MiB (raw ids) of each grid runs at about memory speed (~1 ms a frame, 2 cores, loaded).
The kernels release the GIL (``nogil``), so frames can be read by other threads while one is counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# numba's dispatchers are typed loosely (a call's signature is only known once compiled): Any
njit: Any
try:  # numba is a declared dependency; the fallback keeps occbench importable without it
    from occbench._numba_startup import prepare

    prepare()  # numba imported without yaml and scipy; cached kernels load without its registries (see there)
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None

# how the invalid mask is given to a kernel
INV_NONE = 0  # no mask (``inv`` is a dummy of 8 bytes)
INV_BYTES = 1  # one byte per voxel, 0 or 1, (N,)
INV_PACKED = 2  # bit-packed, MSB first, (N / 8,) - the SemanticKITTI ``.invalid`` file as it is

_U = np.uint64
_PACK8 = _U(0x8040201008040201)  # (8 bytes of 0/1) * _PACK8 >> 56 = those 8 flags packed MSB first

if njit is not None:

    @intrinsic
    def _popcount(typingctx, x):  # pragma: no cover - compiled
        """Number of set bits of a uint64 (LLVM ``ctpop``: one ``popcnt`` instruction on x86-64)."""
        if x != types.uint64:
            return None
        return types.uint64(types.uint64), lambda context, builder, sig, args: builder.ctpop(args[0])

    def _zeros_codegen(dtype: Any, ndim: int) -> Any:
        """Code that allocates a C-contiguous ``ndim`` array of ``dtype`` zeros from numba's runtime, as ``np.zeros``
        does, inline: ``np.zeros`` in a kernel calls numba's implementation functions of ``numba.np.arrayobj``, so
        that loading the kernel from numba's cache imports that module to rebuild their environments (about 20 ms
        a command; the same happens for ``view``, ``reshape`` and a slice assignment, which the kernels avoid)."""
        arrty = types.Array(dtype, ndim, "C")

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            from numba.core import cgutils
            from numba.np.arrayobj import make_array, populate_array  # at compile time only

            intp = context.get_value_type(types.intp)
            shape = [context.cast(builder, a, t, types.intp) for a, t in zip(args, sig.args)]
            itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(dtype)))
            strides = [itemsize]
            for n in reversed(shape[1:]):
                strides.insert(0, builder.mul(strides[0], n))
            size = itemsize
            for n in shape:
                size = builder.mul(size, n)
            align = context.get_constant(types.uint32, context.get_preferred_array_alignment(dtype))
            meminfo = context.nrt.meminfo_alloc_aligned(builder, size, align)
            data = context.nrt.meminfo_data(builder, meminfo)
            data = builder.bitcast(data, context.get_data_type(dtype).as_pointer())
            ary = make_array(arrty)(context, builder)
            populate_array(
                ary,
                data=data,
                shape=cgutils.pack_array(builder, shape, ty=intp),
                strides=cgutils.pack_array(builder, strides, ty=intp),
                itemsize=itemsize,
                meminfo=meminfo,
            )
            cgutils.memset(builder, ary.data, size, 0)
            return ary._getvalue()

        return arrty, codegen

    @intrinsic
    def zeros_int64(typingctx, n):  # pragma: no cover - compiled
        """``np.zeros(n, np.int64)`` in a kernel, without numba's array implementations (see ``_zeros_codegen``)."""
        if not isinstance(n, types.Integer):
            return None
        arrty, codegen = _zeros_codegen(types.int64, 1)
        return arrty(n), codegen

    @intrinsic
    def zeros_int32_2d(typingctx, n0, n1):  # pragma: no cover - compiled
        """``np.zeros((n0, n1), np.int32)`` in a kernel (see ``zeros_int64``)."""
        if not (isinstance(n0, types.Integer) and isinstance(n1, types.Integer)):
            return None
        arrty, codegen = _zeros_codegen(types.int32, 2)
        return arrty(n0, n1), codegen

    @intrinsic
    def copy_items(typingctx, dst, d0, src, s0, n):  # pragma: no cover - compiled
        """``dst[d0 : d0 + n] = src[s0 : s0 + n]`` for 1-D C-contiguous arrays of one dtype (the caller keeps the
        bounds), one ``memcpy``: a slice assignment's shape check formats its message with numba's string code
        (``numba.cpython.unicode``), which loading the kernel would then import."""
        ok = isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype
        if not (ok and dst.ndim == src.ndim == 1 and dst.layout == src.layout == "C"):
            return None

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            from numba.core import cgutils
            from numba.np.arrayobj import make_array  # at compile time only

            darr = make_array(sig.args[0])(context, builder, args[0])
            sarr = make_array(sig.args[2])(context, builder, args[2])
            d = cgutils.get_item_pointer(context, builder, sig.args[0], darr, [args[1]], wraparound=False)
            s = cgutils.get_item_pointer(context, builder, sig.args[2], sarr, [args[3]], wraparound=False)
            n = context.cast(builder, args[4], sig.args[4], types.intp)
            itemsize = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
            cgutils.raw_memcpy(builder, d, s, n, itemsize)
            return context.get_dummy_value()

        return types.none(dst, d0, src, s0, n), codegen

else:  # pragma: no cover - the pure-Python kernels' allocations where numba is missing

    def _zeros_int64_py(n):
        return np.zeros(n, np.int64)

    def _zeros_int32_2d_py(n0, n1):
        return np.zeros((n0, n1), np.int32)

    def _copy_items_py(dst, d0, src, s0, n):
        dst[d0 : d0 + n] = src[s0 : s0 + n]

    zeros_int64, zeros_int32_2d = _zeros_int64_py, _zeros_int32_2d_py  # type: ignore[assignment]
    copy_items = _copy_items_py  # type: ignore[assignment]


def _column_bits(inv, i64, inv_mode, col, NB):  # pragma: no cover - compiled below
    """Invalid flags of the ``Z = 8 NB`` voxels of column ``col`` as one word: bit ``Z - 1 - k`` = voxel ``Z col + k``
    (KITTI: NB = 4 bytes, a 32-bit word; ``NB`` a constant where the caller's is, so the loops unroll)."""
    b = col * NB
    if NB == 4:  # KITTI's columns of 32 voxels, written out (a loop of 4 here compiles to slower code)
        if inv_mode == INV_PACKED:  # 4 bytes, MSB first = big-endian
            return (_U(inv[b]) << _U(24)) | (_U(inv[b + 1]) << _U(16)) | (_U(inv[b + 2]) << _U(8)) | _U(inv[b + 3])
        if inv_mode == INV_BYTES:  # 4 words of 8 one-byte flags
            return (
                (((i64[b] * _PACK8) >> _U(56)) << _U(24))
                | (((i64[b + 1] * _PACK8) >> _U(56)) << _U(16))
                | (((i64[b + 2] * _PACK8) >> _U(56)) << _U(8))
                | ((i64[b + 3] * _PACK8) >> _U(56))
            )
        return _U(0)
    acc = _U(0)
    if inv_mode == INV_PACKED:  # NB bytes, MSB first = big-endian
        for k in range(NB):
            acc = (acc << _U(8)) | _U(inv[b + k])
    elif inv_mode == INV_BYTES:  # NB words of 8 one-byte flags
        for k in range(NB):
            acc = (acc << _U(8)) | ((i64[b + k] * _PACK8) >> _U(56))
    return acc


def _count_py(  # pragma: no cover - compiled below
    p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, V, WPC
):
    """Add a frame into ``counts[cell, gs, pred]``; return ``(bad, unmapped)``: ``bad`` the number of voxels with a
    malformed ground truth or an invalid prediction at an evaluated voxel (0 on success; then
    ``counts[:, 1:, :]`` is complete), ``unmapped`` the number of prediction ids that ``p_lut`` maps to no class,
    at any voxel (every non-zero prediction voxel is visited; a voxel of malformed ground truth is left at once,
    so ``unmapped`` is exact when ``bad`` is 0).

    ``p``, ``g``: flat (N,) uint8 train ids or uint16 raw ids (same dtype), ``V`` voxels a 64-bit word;
    ``p64``, ``g64``, ``i64``: ``p``, ``g`` and ``inv`` as uint64 words (:func:`words`: views made by the caller, so
    that the cached kernel's code refers to no numba implementation of ``view``, whose module loading it would
    import: see ``_zeros_codegen``),
    ``WPC`` = Z / V words a column of ``Z`` voxels (the grid's height: 32 on KITTI; a multiple of 8, at most 64).
    ``p_lut``: id -> train id (>= C: not a valid prediction); ``g_lut``: id -> gs = 0 not evaluated (ignore),
    c + 1 class c, > C malformed. ``code``: (N / Z,) cell per column.
    ``counts``: (n_cells, C + 1, C) int64; row ``gs = 0`` is scratch for voxels that are not evaluated.
    Voxels 0 in both grids (the empty/empty pairs) are not visited: a column adds ``n00`` = its voxels that
    are not invalid minus the visited ones that are not invalid (both invalid policies drop an invalid
    empty ground truth).
    """
    Z = WPC * V
    NB = Z // 8
    bad = 0
    unmapped = 0
    for col in range(code.shape[0]):
        c = code[col]
        w0 = col * WPC
        acc = _U(0)
        for w in range(w0, w0 + WPC):
            acc |= p64[w] | g64[w]
        ib = _column_bits(inv, i64, inv_mode, col, NB)
        n00 = Z - np.int64(_popcount(ib))
        if acc != 0:
            for w in range(w0, w0 + WPC):
                if (p64[w] | g64[w]) == 0:
                    continue
                for i in range(w * V, w * V + V):
                    gi = g[i]
                    pi = p[i]
                    if (gi | pi) == 0:
                        continue
                    iv = np.int64((ib >> _U(Z - 1 - (i - col * Z))) & _U(1))
                    n00 -= 1 - iv
                    gs = g_lut[gi]
                    if gs > C:
                        bad += 1
                        continue
                    if iv != 0 and (not empty_only or gs == 1):
                        gs = 0
                    pv = p_lut[pi]
                    if pv >= C:
                        unmapped += 1
                        if gs != 0:
                            bad += 1
                            continue
                        pv = 0
                    counts[c, gs, pv] += 1
        counts[c, 1, 0] += n00
    return bad, unmapped


def _count_train_py(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts):  # pragma: no cover
    """uint8 train ids, columns of 32 voxels (the KITTI grid): 8 voxels a word (constants, so that the compiler
    unrolls the voxel and column loops)."""
    return _count(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, 8, 4)


def _count_raw_py(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts):  # pragma: no cover
    """uint16 raw ids (what ``.label`` files hold), columns of 32 voxels: 4 voxels a word."""
    return _count(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, 4, 8)


def _count_train_z_py(  # pragma: no cover - compiled below
    p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, Z
):
    """uint8 train ids, columns of ``Z`` voxels (a grid of another height; ``Z`` a multiple of 8, at most 64)."""
    return _count(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, 8, Z // 8)


def _count_raw_z_py(  # pragma: no cover - compiled below
    p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, Z
):
    """uint16 raw ids, columns of ``Z`` voxels."""
    return _count(p, g, inv, p64, g64, i64, inv_mode, empty_only, code, C, p_lut, g_lut, counts, 4, Z // 4)


def _count_unmapped_py(p, p64, lut, C):  # pragma: no cover - compiled below
    """Number of ids in ``p`` (flat uint16 raw ids; ``p64``: as uint64 words, :func:`words`) that ``lut`` does not map
    to a train id ``0..C-1``, at any voxel (a submission's validity, not only where it is evaluated). Words of 4 zero
    ids (raw 0 = empty) are skipped."""
    n = 0
    for w in range(p64.size):
        if p64[w] == 0:
            continue
        for i in range(4 * w, 4 * w + 4):
            if lut[p[i]] >= C:
                n += 1
    return n


if njit is not None:
    _column_bits = njit(inline="always")(_column_bits)
    _count = njit(inline="always", boundscheck=False)(_count_py)
    count_train = njit(cache=True, nogil=True, boundscheck=False)(_count_train_py)
    count_raw = njit(cache=True, nogil=True, boundscheck=False)(_count_raw_py)
    count_train_z = njit(cache=True, nogil=True, boundscheck=False)(_count_train_z_py)
    count_raw_z = njit(cache=True, nogil=True, boundscheck=False)(_count_raw_z_py)
    count_unmapped = njit(cache=True, nogil=True, boundscheck=False)(_count_unmapped_py)
else:  # pragma: no cover
    count_train = count_raw = count_train_z = count_raw_z = None
    count_unmapped = _count_unmapped_py
AVAILABLE = count_train is not None


def words(a: np.ndarray) -> np.ndarray:
    """A flat contiguous array (its size in bytes a multiple of 8) as uint64 words, a view: what the kernels read
    8 bytes at a time."""
    return a.view(np.uint64)


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``. The kernels are always called with read-only label and mask arrays, so
    that arrays backed by read-only memory maps of the files (``occbench.io.voxels.map_label``) and ordinary
    arrays share one compiled specialisation instead of one per combination."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the specialisations ``SSCMetric`` uses, outside of timed code."""
    if AVAILABLE:
        z8 = readonly(np.zeros(32 * 4, np.uint8))
        z16 = readonly(np.zeros(32 * 4, np.uint16))
        lut8 = np.zeros(256, np.uint8)
        lut16 = np.zeros(1 << 16, np.uint8)
        code = np.zeros(4, np.uint8)
        counts = np.zeros((1, 3, 2), np.int64)
        inv = readonly(np.zeros(16, np.uint8))
        count_train(z8, z8, inv, words(z8), words(z8), words(inv), INV_PACKED, False, code, 2, lut8, lut8, counts)
        count_raw(z16, z16, inv, words(z16), words(z16), words(inv), INV_PACKED, False, code, 2, lut16, lut16, counts)
