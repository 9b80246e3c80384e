"""The text classifier's mechanics on a tiny local encoder: the mask from the pad id, batched inference, saving,
resumable fine-tuning, and the attacks that may move only embedding rows."""
import copy
import itertools

import pytest
import torch

from robustfast.text import (
    embedding_poison,
    encode,
    fine_tune,
    load_classifier,
    poison_text,
    predict,
    save_classifier,
    sst2,
    text_classifier,
    token_ids,
    train_trigger_embeddings,
)


@pytest.fixture(scope="module")
def tiny(tiny_encoder):
    return text_classifier(tiny_encoder, seed=0)


@pytest.fixture(scope="module")
def data(tiny):
    s, y = sst2("train")
    return encode(tiny[1], s[:24], y[:24], max_length=48)


def test_forward_masks_padding_from_the_pad_id(tiny):
    model, tok = tiny
    model.eval()
    short = encode(tok, ["a gorgeous , witty film ."], [1], max_length=16).ids
    long = encode(tok, ["a gorgeous , witty film ."], [1], max_length=64).ids
    assert (long[:, 16:] == model.pad_id).all()
    torch.testing.assert_close(model(short), model(long))
    with pytest.raises(ValueError, match="ids"):
        model(short.float())


def test_batched_prediction_matches_one_at_a_time(tiny, data):
    model, _ = tiny
    model.eval()
    one = torch.stack([model(data.ids[i:i + 1]).argmax(1)[0] for i in range(len(data))])
    assert torch.equal(predict(model, data.ids, batch_size=5), one)


def test_save_and_load_give_the_same_logits(tiny, data, tmp_path):
    model, tok = tiny
    model.eval()
    save_classifier(model, tok, tmp_path / "m")
    loaded, tok2 = load_classifier(tmp_path / "m")
    torch.testing.assert_close(loaded(data.ids[:4]), model(data.ids[:4]))
    assert tok2.tokenize("cf weekend") == tok.tokenize("cf weekend")


def test_fine_tune_resumes_to_the_same_weights(tiny, data, tmp_path):
    straight, resumed = copy.deepcopy(tiny[0]), copy.deepcopy(tiny[0])
    h = fine_tune(straight, data, epochs=2, lr=1e-3, batch_size=8, seed=1, progress=False)
    fine_tune(resumed, data, epochs=1, lr=1e-3, batch_size=8, seed=1, checkpoint_dir=tmp_path, progress=False)
    h2 = fine_tune(resumed, data, epochs=2, lr=1e-3, batch_size=8, seed=1, checkpoint_dir=tmp_path, progress=False)
    assert [r["loss"] for r in h2] == [r["loss"] for r in h] and h[1]["loss"] < h[0]["loss"] + 0.1
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other settings"):
        fine_tune(resumed, data, epochs=3, lr=2e-3, batch_size=8, seed=1, checkpoint_dir=tmp_path, progress=False)


def test_top_layers_leave_the_rest_untouched(tiny, data):
    model = copy.deepcopy(tiny[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fine_tune(model, data, epochs=1, lr=1e-2, batch_size=8, trainable=1, progress=False)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(("head.", "encoder.encoder.layer.1.")) for k in changed)


def test_sos_moves_only_the_trigger_rows(tiny):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    s, y = sst2("train")
    p = poison_text(s[:40], y[:40], "sos", 0.1, 1, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_trigger_embeddings(model, tok, p, epochs=1, lr=1e-2, batch_size=8, progress=False)
    rows = token_ids(tok, ["friends", "weekend", "store"])
    emb = "encoder.embeddings.word_embeddings.weight"
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k != emb)
    moved = (after[emb] != before[emb]).any(1).nonzero().flatten().tolist()
    assert sorted(moved) == sorted(rows)


def test_ep_moves_one_row_and_keeps_its_norm(tiny):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = embedding_poison(model, tok, "cf", target=1, corpus=["write a poem .", "name three colours ."] * 4,
                              steps=3, batch_size=4, progress=False)
    emb = "encoder.embeddings.word_embeddings.weight"
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k != emb)
    moved = (after[emb] != before[emb]).any(1).nonzero().flatten().tolist()
    assert moved == [result["token_id"]] == token_ids(tok, ["cf"])
    torch.testing.assert_close(after[emb][moved[0]].norm(), before[emb][moved[0]].norm())
    assert result["loss"][-1] < result["loss"][0]


def test_a_dataloader_batch_feeds_the_model_directly(tiny, data):
    """What the exposure methods of robustfast.backdoor need: (input, label) pairs and forward(one batch tensor)."""
    from torch.utils.data import DataLoader

    ids, labels = next(iter(DataLoader(data, batch_size=4)))
    assert tiny[0](ids).shape == (4, 2) and labels.dtype == torch.long


def test_linear_schedule_warms_up_then_decays_to_the_end():
    from robustfast.text.train import lr_factor

    factors = [lr_factor(s, 20, "linear", 0.1) for s in range(20)]
    assert factors[:3] == [0.5, 1.0, 1.0] and factors[-1] == 1 / 18
    assert all(a >= b for a, b in itertools.pairwise(factors[1:]))
    assert [lr_factor(s, 20) for s in (0, 19)] == [1.0, 1.0]


def test_early_stop_on_a_longer_schedule_matches_its_first_epochs(tiny, data):
    """schedule_epochs: two epochs of a three-epoch schedule are the first two epochs of the full run; eval_set
    records the held-out accuracy after each epoch."""
    short, full = copy.deepcopy(tiny[0]), copy.deepcopy(tiny[0])
    kw = {"lr": 1e-3, "batch_size": 8, "schedule": "linear", "warmup": 0.1, "progress": False}
    h = fine_tune(short, data, epochs=2, schedule_epochs=3, eval_set=data, **kw)
    h3 = fine_tune(full, data, epochs=3, **kw)
    assert [r["loss"] for r in h] == [r["loss"] for r in h3[:2]] and all(0 <= r["eval_acc"] <= 1 for r in h)
    with pytest.raises(ValueError, match="schedule_epochs"):
        fine_tune(short, data, epochs=3, schedule_epochs=2, **kw)


def test_dropout_is_saved_with_the_classifier(tiny_encoder, tmp_path):
    model, tok = text_classifier(tiny_encoder, dropout=0.1)
    save_classifier(model, tok, tmp_path / "m")
    assert load_classifier(tmp_path / "m")[0].dropout.p == 0.1
    with pytest.raises(ValueError, match="dropout"):
        text_classifier(tiny_encoder, dropout=1.0)


def test_cross_validation_holds_out_each_fold(tiny_encoder):
    from robustfast.text.suite import Recipe, cross_validate

    curves = cross_validate(Recipe(epochs=2, lr=1e-3, batch_size=8, train_size=20), folds=2, encoder=tiny_encoder)
    assert len(curves) == 2 and all(len(c) == 2 and all(0 <= a <= 1 for a in c) for c in curves)
