"""Offboard methods: the interface every method implements and the registry that finds them."""

from occbench.methods.base import OffboardMethod, OnboardSequence
from occbench.methods.options import OptionInfo, option_infos
from occbench.methods.registry import available_methods, load_method, method_class, parse_options, register_method

__all__ = [
    "OffboardMethod",
    "OnboardSequence",
    "OptionInfo",
    "available_methods",
    "option_infos",
    "load_method",
    "method_class",
    "parse_options",
    "register_method",
]
