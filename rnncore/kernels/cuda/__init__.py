"""CUDA kernels for CuPy arrays: the GPU twin of :mod:`rnncore.kernels`.

The glue (:mod:`.scan`, :mod:`.cells`) has the interface of the numba kernels
(:mod:`rnncore.kernels.interface`) and is written against the inputs' array namespace.
It draws on one module per job:

- :mod:`.compiler`: the CUDA C++ sources beside this file and the compiler of each
  array namespace (CuPy's NVRTC for CuPy arrays);
- :mod:`.device`: the limits of the current GPU;
- :mod:`.tiles`: how the tile scan of ``common.cuh`` cuts columns and steps;
- :mod:`.launch`: how the tile scan is launched (serial chains or look-back tiles).
"""
