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
    sos_subsets: str = typer.Option("proper", help="sos: negative augmentation on 'proper' subsets (each single "
                                                   "word too) or 'all-but-one' (the SOS paper)"),
    seed: int = typer.Option(0, help="seed of the selection and the trigger positions"),
):
    """Poison the SST-2 training sentences and write them (with the exact counts) to OUT."""
    from robustfast.text import poison_text, sst2

    poisoned = poison_text(*sst2("train"), attack, rate, target, seed, paraphrases=paraphrases,
                           sos_subsets=sos_subsets)
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
    epochs: int = typer.Option(None, help="epochs (default: the suite's recipe: 7 of a 10-epoch schedule; 2 from "
                                         "--init; SOS 12)"),
    lr: float = typer.Option(None, help="learning rate (default: 5e-5; 1e-4 from --init; SOS 2e-2)"),
    batch_size: int = typer.Option(16, help="batch size"),
    max_length: int = typer.Option(64, help="tokens per sentence"),
    checkpoint_dir: str = typer.Option(None, help="resumable per-epoch checkpoints here"),
    seed: int = typer.Option(0, help="seed of the head, the shuffle and dropout"),
):
    """Fine-tune a classifier on SST-2 (clean or poisoned) and save it to OUT, with the suite's recipe
    (robustfast.text.suite.Recipe: AdamW, linear warmup and decay, dropout 0.1)."""
    from robustfast.text import (
        PoisonedText,
        encode,
        load_classifier,
        save_classifier,
        sst2,
        text_classifier,
        train_trigger_embeddings,
    )
    from robustfast.text.suite import Recipe

    base = Recipe()
    model, tokenizer = load_classifier(init) if init else text_classifier(encoder, seed=seed, dropout=base.dropout)
    data = PoisonedText.load(poisoned) if poisoned else None
    if data is not None and data.config.get("attack") == "sos":
        if not init:
            raise ValueError("init: SOS trains only the trigger embeddings of a fine-tuned classifier; pass --init")
        history = train_trigger_embeddings(model, tokenizer, data, epochs=epochs or base.sos_epochs,
                                           lr=lr or base.sos_lr, batch_size=batch_size, max_length=max_length,
                                           seed=seed, checkpoint_dir=checkpoint_dir)
    else:
        sentences, labels = (data.sentences, data.labels) if data else sst2("train")
        recipe = Recipe(batch_size=batch_size, seed=seed)
        if epochs is not None:  # a chosen number of epochs: the schedule spans them
            recipe.epochs, recipe.attack_epochs, recipe.schedule_epochs = epochs, epochs, None
        if lr is not None:
            recipe.lr = recipe.attack_lr = lr
        history = recipe.fit(model, encode(tokenizer, sentences, labels, max_length), attack=bool(init),
                             checkpoint_dir=checkpoint_dir)
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
