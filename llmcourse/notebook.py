"""Notebook set-up shared by every chapter: seeding, quiet libraries, rounded printing.

A chapter's second cell calls ``setup()``. It makes every run print the same numbers: the
random generators are seeded, tensors and arrays print with 4 decimals, and the progress
bars and advisory warnings that transformers writes to stderr (which would differ from run to
run) are switched off.
"""

from __future__ import annotations

import os
import random
import sys
import warnings

import numpy as np

from llmcourse.validation import non_negative_int

__all__ = ["seed_everything", "setup", "rounded"]


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's generators."""
    import torch

    non_negative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0) -> None:
    """Seed everything, print 4 decimals, and silence progress bars and library chatter."""
    import matplotlib
    import torch

    if "google.colab" not in sys.modules:  # the course runs offline; Colab may use the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tqdm.auto (imported by transformers) warns when ipywidgets is absent: not the reader's
    # problem.
    warnings.filterwarnings("ignore", message="IProgress not found")
    seed_everything(seed)
    np.set_printoptions(precision=4, suppress=True)
    torch.set_printoptions(precision=4, sci_mode=False)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is optional for the early chapters
        pass
    from llmcourse.plotting import apply_style

    apply_style()
    matplotlib.rcParams["figure.max_open_warning"] = 0
    try:  # in Jupyter: figures at twice the resolution, shown at the same size (sharp on HiDPI)
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("retina")
    except ImportError:
        pass


def rounded(value, digits: int = 4):
    """Round a number, or every number inside lists, tuples and dicts, for stable printing."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v, digits) for v in value)
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float):
        return round(value, digits)
    return value
