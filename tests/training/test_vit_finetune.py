"""robustfast.training.vit.finetune: LoRA adapters land on the attention's query and value projections and, with
the head, are all that trains; f₀ itself is never modified."""
import torch
from torch.utils.data import TensorDataset

from robustfast.models.vit import build_vit, wrap
from robustfast.training.vit import finetune


def test_lora_trains_only_the_adapters_and_the_head_and_leaves_f0_alone():
    f0 = wrap(build_vit(seed=5, num_hidden_layers=2)).eval()
    before = {k: v.clone() for k, v in f0.state_dict().items()}
    g = torch.Generator().manual_seed(6)
    data = TensorDataset(torch.rand(16, 3, 16, 16, generator=g), torch.arange(16) % 3)
    model = finetune(f0, data, "lora", lora_rank=2, epochs=2, lr=1e-2, batch_size=8, progress=False)
    adapters = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert len(adapters) == 2 * 2 * 2  # A and B on q and v of both blocks
    assert all(".q_proj." in n or ".v_proj." in n or ".query." in n or ".value." in n for n in adapters)
    tuned = {n: p for n, p in model.state_dict().items() if n.startswith("encoder.")}
    for name, value in before.items():
        base = "encoder." + name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        torch.testing.assert_close(tuned.get("encoder." + name, tuned.get(base)), value, rtol=0, atol=0)
        torch.testing.assert_close(f0.state_dict()[name], value, rtol=0, atol=0)
    assert all(v.abs().sum() > 0 for n, v in tuned.items() if "lora_B" in n)  # B starts at zero: it trained
