"""occbench: dataset + evaluation suite for offboard 3D semantic scene completion refinement."""
__version__ = "0.1.0"
