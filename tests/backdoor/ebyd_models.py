"""The models of the EBYD tests, trained once per session (functools.cache): digits 3×16×16, SmallCNN width 8."""
import functools

from torch.utils.data import TensorDataset

from robustfast.backdoor.ebyd_setup import digits_setting

CUL_LR = 1e-3  # see the README: the spec's 1e-5 is for a ResNet-18 on CIFAR-10


@functools.cache
def setting(trigger, seed):
    return digits_setting(trigger, seed=seed)


def backdoored():
    return setting("badnets", 0)


def clean():
    return setting(None, 0)


def nc_data(s, per_class: int = 20) -> TensorDataset:
    """The first `per_class` test images of each class."""
    x, y = s.test.tensors
    keep = [i for c in range(10) for i in (y == c).nonzero().flatten()[:per_class].tolist()]
    return TensorDataset(x[keep], y[keep])
