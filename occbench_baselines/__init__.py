"""Reference offboard methods of occbench. They plug in through the public `occbench.methods` entry points."""
