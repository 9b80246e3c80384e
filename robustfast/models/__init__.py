"""Image classifiers (ResNet-18, PreAct-ResNet-18, WideResNet with per-stage depth and width, a small CNN),
the Normalized wrapper, and safetensors save/load."""
from robustfast.models.io import load_model, save_model
from robustfast.models.normalized import Normalized
from robustfast.models.resnet import PreActResNet18, ResNet18
from robustfast.models.small_cnn import SmallCNN
from robustfast.models.wide_resnet import WideResNet, wrn34_10, wrn34_12, wrn34_20, wrn34_r

__all__ = ["Normalized", "PreActResNet18", "ResNet18", "SmallCNN", "WideResNet", "load_model", "save_model",
           "wrn34_10", "wrn34_12", "wrn34_20", "wrn34_r"]
