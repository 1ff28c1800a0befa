"""Pictures of SSC grids (bird's-eye and 3D voxel views, error views), city maps and plots of results files.

Modules: :mod:`~occbench.render.bev` (bird's-eye views, error categories), :mod:`~occbench.render.voxels3d` (the
headless 3D voxel rasteriser), :mod:`~occbench.render.frame` (the frame figure), :mod:`~occbench.render.citymap`
(streamed city maps), :mod:`~occbench.render.plots` (plots of results files), :mod:`~occbench.render.sources`
(where the grids come from: ground truth, onboard, prediction folders, a method run), :mod:`~occbench.render.figure`
(deterministic PNG writing, legends).
"""

from occbench.metrics.worldmetric import decode_world_keys  # noqa: F401  (public here too)
from occbench.render.bev import (
    EMPTY_RGB,  # noqa: F401
    UNKNOWN_RGB,  # noqa: F401
    bev_image,  # noqa: F401
    city_map_images,  # noqa: F401
    error_bev,  # noqa: F401
    error_image,  # noqa: F401
    error_labels,  # noqa: F401
    top_labels,  # noqa: F401
)
from occbench.render.figure import panel  # noqa: F401
from occbench.render.plots import autolabel_plot, class_bars, distance_plot  # noqa: F401
