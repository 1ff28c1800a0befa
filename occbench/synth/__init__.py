"""occbench-mini: the embedded, procedurally generated default data set (SemanticKITTI v1.1 layout).

>>> from occbench.synth import MiniConfig, generate_mini, default_mini_config
>>> manifest = generate_mini("/tmp/mini", default_mini_config())      # doctest: +SKIP

See docs/mini.md for the world, the simulated onboard models and what mini numbers can and cannot tell.
Names are imported on first use (the generator needs scipy; ``occbench synth --help`` does not).
"""

from __future__ import annotations

from occbench._lazy import lazy_exports

_CONFIG = "occbench.synth.config"
_EXPORTS = {
    **dict.fromkeys(
        [
            "GENERATOR_VERSION",
            "SIZES",
            "MiniConfig",
            "config_for_size",
            "default_mini_config",
            "small_mini_config",
            "tiny_mini_config",
        ],
        _CONFIG,
    ),
    **dict.fromkeys(["NAME", "generate_mini"], "occbench.synth.generate"),
    **dict.fromkeys(["default_mini_root", "ensure_mini"], "occbench.synth.cache"),
    "MODELS": "occbench.synth.onboard",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "GENERATOR_VERSION",
    "MODELS",
    "NAME",
    "SIZES",
    "MiniConfig",
    "config_for_size",
    "default_mini_config",
    "default_mini_root",
    "ensure_mini",
    "generate_mini",
    "small_mini_config",
    "tiny_mini_config",
]
