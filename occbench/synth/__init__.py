"""occbench-mini: the embedded, procedurally generated default data set (SemanticKITTI v1.1 layout).

>>> from occbench.synth import MiniConfig, generate_mini, default_mini_config
>>> manifest = generate_mini("/tmp/mini", default_mini_config())      # doctest: +SKIP

See docs/mini.md for the world, the simulated onboard models and what mini numbers can and cannot tell.
"""
from __future__ import annotations

from occbench.synth.config import (GENERATOR_VERSION, SIZES, MiniConfig, config_for_size, default_mini_config,
                                   small_mini_config, tiny_mini_config)
from occbench.synth.generate import NAME, default_mini_root, ensure_mini, generate_mini
from occbench.synth.onboard import MODELS

__all__ = ["GENERATOR_VERSION", "MODELS", "NAME", "SIZES", "MiniConfig", "config_for_size", "default_mini_config",
           "default_mini_root", "ensure_mini", "generate_mini", "small_mini_config", "tiny_mini_config"]
