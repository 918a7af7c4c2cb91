"""fcnkit: data, metrics, VGG-16 weights, training loop and figures for the FCN assignment."""
from .data import CLASS_NAMES, IGNORE_INDEX, N_CLASS, CMPFacade, cmp_splits, make_loaders, pad_collate, revert_input
from .metrics import ConfusionMatrix
from .train import evaluate, fit, load_checkpoint, save_checkpoint, seed_everything
from .vgg import copy_params_from_vgg16, get_upsampling_weight, load_vgg16

__version__ = "0.1.0"
__all__ = [
    "CLASS_NAMES", "IGNORE_INDEX", "N_CLASS", "CMPFacade", "cmp_splits", "make_loaders", "pad_collate", "revert_input",
    "ConfusionMatrix", "evaluate", "fit", "load_checkpoint", "save_checkpoint", "seed_everything",
    "copy_params_from_vgg16", "get_upsampling_weight", "load_vgg16",
]
