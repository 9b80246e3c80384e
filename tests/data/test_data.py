import pickle

import numpy as np
import pytest
import torch

from robustfast.data import cifar10, digits, digits_split, loader, synthetic


def test_digits_shapes_ranges_dtypes():
    train, test = digits("train"), digits("test")
    x, y = train.tensors
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(train) + len(test) == 1797 and len(test) == pytest.approx(0.2 * 1797, abs=10)
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    big = digits("test", size=32, channels=3)
    assert big.tensors[0].shape == (len(test), 3, 32, 32)
    assert big.tensors[0].min() >= 0 and big.tensors[0].max() <= 1
    assert torch.equal(big.tensors[0][:, 0], big.tensors[0][:, 2])
    assert torch.equal(big.tensors[1], test.tensors[1])


def test_digits_split_is_fixed_disjoint_and_stratified():
    a, b = digits("train"), digits("train")
    assert all(torch.equal(s, t) for s, t in zip(a.tensors, b.tensors, strict=True))
    train_idx, test_idx = digits_split(0)
    assert len(np.intersect1d(train_idx, test_idx)) == 0 and len(train_idx) + len(test_idx) == 1797
    for split in ("train", "test"):
        counts = torch.bincount(digits(split).tensors[1], minlength=10)
        assert (counts > 0).all() and counts.numel() == 10
    assert not np.array_equal(digits_split(1)[1], test_idx)


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        digits("valid")
    with pytest.raises(ValueError, match="channels"):
        digits(channels=2)
    with pytest.raises(ValueError, match="size"):
        digits(size=0)


def write_fake_cifar(folder, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_reads_python_batches(tmp_path, nested):
    batches = write_fake_cifar(tmp_path / "cifar-10-batches-py" if nested else tmp_path)
    train, test = cifar10(tmp_path, "train"), cifar10(tmp_path, "test")
    assert len(train) == 20 and len(test) == 4
    x, y = train.tensors
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    data, labels = batches["data_batch_2"]
    expected = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(x[4:8], expected) and y[4:8].tolist() == labels
    assert torch.equal(test.tensors[1], torch.tensor(batches["test_batch"][1]))


def test_cifar10_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*data_batch_5") as err:
        cifar10(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    write_fake_cifar(tmp_path).pop("test_batch")
    (tmp_path / "test_batch").unlink()
    cifar10(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="test_batch"):
        cifar10(tmp_path, "test")


class Payload:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_cifar10_refuses_arbitrary_objects(tmp_path):
    write_fake_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": Payload()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="print"):
        cifar10(tmp_path, "test")


def test_synthetic_is_reproducible():
    a, b, c = synthetic(16, seed=3), synthetic(16, seed=3), synthetic(16, seed=4)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])
    x, y = synthetic(5, shape=(1, 8, 8), classes=3).tensors
    assert x.shape == (5, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert y.dtype == torch.int64 and y.min() >= 0 and y.max() < 3


def test_loader_order_follows_seed():
    data = synthetic(32)

    def order(seed):
        return torch.cat([y for _, y in loader(data, 8, shuffle=True, seed=seed)])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
