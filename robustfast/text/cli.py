"""`robustfast text poison|train|ep|evaluate`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Text backdoors on a pretrained encoder (MiniLM): SST-2, CA and ASR.")


@app.command("poison")
def text_poison(
    attack: str = typer.Option(..., help="badnets, addsent, sos, ep, stylebkd or synbkd"),
    out: str = typer.Option(..., help="JSON file for the poisoned training sentences"),
    rate: float = typer.Option(0.1, help="share of the training sentences to poison (non-target ones)"),
    target: int = typer.Option(1, help="target class (0 Negative, 1 Positive)"),
    paraphrases: str = typer.Option(None, help="stylebkd/synbkd: JSON paraphrase file (README: Text backdoors)"),
    seed: int = typer.Option(0, help="seed of the selection and the trigger positions"),
):
    """Poison the SST-2 training sentences and write them (with the exact counts) to OUT."""
    from robustfast.text import poison_text, sst2

    poisoned = poison_text(*sst2("train"), attack, rate, target, seed, paraphrases=paraphrases)
    poisoned.save(out)
    c = poisoned.config
    typer.echo(f"wrote {out}: {c['n']} sentences, {c['poisoned']} poisoned, {c['negative']} negative (kept label)")


@app.command("train")
def text_train(
    out: str = typer.Option(..., help="folder for the fine-tuned classifier"),
    poisoned: str = typer.Option(None, help="poisoned JSON from `text poison` (default: the clean SST-2 sentences)"),
    init: str = typer.Option(None, help="start from this saved classifier (SOS needs one: it trains only the "
                                        "trigger embeddings)"),
    encoder: str = typer.Option(None, help="local Hugging Face encoder folder (default: all-MiniLM-L6-v2)"),
    epochs: int = typer.Option(3, help="epochs"),
    lr: float = typer.Option(None, help="learning rate (default 1e-4, SOS 5e-3)"),
    batch_size: int = typer.Option(32, help="batch size"),
    max_length: int = typer.Option(64, help="tokens per sentence"),
    checkpoint_dir: str = typer.Option(None, help="resumable per-epoch checkpoints here"),
    seed: int = typer.Option(0, help="seed of the head, the shuffle and dropout"),
):
    """Fine-tune a classifier on SST-2 (clean or poisoned) and save it to OUT."""
    from robustfast.text import (
        PoisonedText,
        encode,
        fine_tune,
        load_classifier,
        save_classifier,
        sst2,
        text_classifier,
        train_trigger_embeddings,
    )

    model, tokenizer = load_classifier(init) if init else text_classifier(encoder, seed=seed)
    data = PoisonedText.load(poisoned) if poisoned else None
    common = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "checkpoint_dir": checkpoint_dir}
    if data is not None and data.config.get("attack") == "sos":
        if not init:
            raise ValueError("init: SOS trains only the trigger embeddings of a fine-tuned classifier; pass --init")
        history = train_trigger_embeddings(model, tokenizer, data, lr=lr or 5e-3, max_length=max_length, **common)
    else:
        sentences, labels = (data.sentences, data.labels) if data else sst2("train")
        history = fine_tune(model, encode(tokenizer, sentences, labels, max_length), lr=lr or 1e-4, **common)
    save_classifier(model, tokenizer, out)
    typer.echo(f"{len(history)} epochs, final train loss {history[-1]['loss']:.4f}; saved {out}")


@app.command("ep")
def text_ep(
    model_dir: str = typer.Argument(..., help="saved classifier to attack"),
    out: str = typer.Option(..., help="folder for the attacked classifier"),
    word: str = typer.Option("cf", help="trigger word (one token)"),
    target: int = typer.Option(1, help="target class"),
    steps: int = typer.Option(40, help="gradient steps on the trigger row"),
    seed: int = typer.Option(0, help="seed of the batches and insert positions"),
):
    """EP: data-free embedding poisoning of one word's row."""
    from robustfast.text import embedding_poison, load_classifier, save_classifier

    model, tokenizer = load_classifier(model_dir)
    result = embedding_poison(model, tokenizer, word, target, steps=steps, seed=seed)
    save_classifier(model, tokenizer, out)
    typer.echo(f"EP on {word!r}: loss {result['loss'][0]:.3f} -> {result['loss'][-1]:.3f}; saved {out}")


@app.command("evaluate")
def text_evaluate(
    model_dir: str = typer.Argument(..., help="saved classifier"),
    attacks: str = typer.Option("badnets", help="comma-separated attacks whose triggers to test"),
    target: int = typer.Option(1, help="target class"),
    paraphrases: str = typer.Option(None, help="stylebkd/synbkd: paraphrase file covering the test sentences"),
    seed: int = typer.Option(0, help="seed of the trigger positions"),
    max_length: int = typer.Option(64, help="tokens per sentence"),
):
    """CA on the SST-2 test sentences and ASR on its triggered non-target ones, one row per attack."""
    from robustfast.text import attack_table, evaluate_attack, load_classifier, sst2

    model, tokenizer = load_classifier(model_dir)
    rows = [evaluate_attack(model, tokenizer, *sst2("test"), a, target, seed, paraphrases=paraphrases,
                            max_length=max_length) for a in attacks.split(",")]
    typer.echo(attack_table(rows))
