"""mfql: a faithful PyTorch reproduction pipeline of MeanFlow-QL (arXiv 2511.13035)."""

import os
import warnings

# Headless MuJoCo by default (set before ogbench / dm_control import their GL backend): EGL renders the pixel
# tasks' frames offscreen, through Mesa's software renderer where there is no GPU.
if not os.environ.get("MUJOCO_GL"):
    os.environ["MUJOCO_GL"] = "egl"
# gymnasium warns on every float64 Box bound of the OGBench / Adroit spaces; the cast is harmless.
warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
warnings.filterwarnings("ignore", message=".*The DISPLAY environment variable is missing.*")

__version__ = "0.1.0"
