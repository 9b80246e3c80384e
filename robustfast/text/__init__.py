"""Text backdoors on a pretrained encoder (all-MiniLM-L6-v2 by default): SST-2, fine-tuning, six attacks, CA/ASR.

    from robustfast.text import sst2, text_classifier, encode, fine_tune, poison_text, evaluate_attack

The classifier's forward takes token ids (B, L) and the data are TokenDatasets of (ids, label), so loops written
for one batch tensor, such as the backdoor exposure methods, take them as they are.
"""
from robustfast.text.data import CLASSES, TokenDataset, check_sentences, encode, sst2
from robustfast.text.embedding import embedding_poison, proxy_corpus, token_ids, train_trigger_embeddings
from robustfast.text.evaluate import asr, attack_table, clean_accuracy, evaluate_attack
from robustfast.text.model import (
    TextClassifier,
    load_classifier,
    load_tokenizer,
    minilm_dir,
    save_classifier,
    text_classifier,
)
from robustfast.text.poison import (
    ADDSENT,
    ATTACKS,
    EP_WORD,
    RARE_WORDS,
    SOS_WORDS,
    PoisonedText,
    load_paraphrases,
    poison_text,
    triggered_test,
)
from robustfast.text.train import accuracy, fine_tune, predict

__all__ = ["ADDSENT", "ATTACKS", "CLASSES", "EP_WORD", "RARE_WORDS", "SOS_WORDS", "PoisonedText", "TextClassifier",
           "TokenDataset", "accuracy", "asr", "attack_table", "check_sentences", "clean_accuracy", "embedding_poison",
           "encode", "evaluate_attack", "fine_tune", "load_classifier", "load_paraphrases", "load_tokenizer",
           "minilm_dir", "poison_text", "predict", "proxy_corpus", "save_classifier", "sst2", "text_classifier",
           "token_ids", "train_trigger_embeddings", "triggered_test"]
