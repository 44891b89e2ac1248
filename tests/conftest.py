"""Shared fixtures: a tiny dataset of real mp4 files in the CONVENTIONS.md layout (demo classes, 64x48)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """4 classes, 2 train + 1 val video per class, 64x48 frames: DIR with train.txt, val.txt, classes.txt."""
    from common.demo import demo_dataset
    return demo_dataset(str(tmp_path_factory.mktemp("tiny") / "data"), train_per_class=2, val_per_class=1,
                        width=64, height=48)
