"""A tiny random causal language model saved to a folder, for the ``lm:`` decoder tests.

A byte-level BPE tokenizer trained on a few captions (``tokenizers``) and a 2-layer GPT-2 (or
Llama) with random weights, both written with ``save_pretrained``: what ``lm:<folder>`` loads.
Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "a red circle moves to the left",
    "a blue square spins in place slowly",
    "a green ring grows on dark ground",
    "a white bar drifts up then stops",
    "two yellow dots bounce and cross",
    "the small triangle falls down quickly",
    "an orange disc slides to the right",
    "a purple star shrinks then fades",
]


def save_tiny_lm(
    folder: Path, arch: str = "gpt2", seed: int = 0, width: int = 32, steps: int = 150, texts: list[str] | None = None
) -> Path:
    """Write a tiny random causal LM and its tokenizer to ``folder``; return it.

    The tokenizer and the model learn ``texts`` (default :data:`CORPUS`): the model is
    "pretrained" for ``steps`` Adam steps on them (a language prior a
    visual prefix can then steer, as with a real model); ``steps=0`` leaves it random.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(texts or CORPUS)
    bpe.train_from_iterator(texts * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(seed)
    size = len(tokenizer)
    eos = tokenizer.eos_token_id
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=size, n_positions=128, n_embd=width, n_layer=2, n_head=2, bos_token_id=eos, eos_token_id=eos
        )
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=size,
            hidden_size=width,
            intermediate_size=2 * width,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            bos_token_id=eos,
            eos_token_id=eos,
        )
        model = LlamaForCausalLM(config)
    _pretrain(model, tokenizer, steps, texts)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _pretrain(model, tokenizer, steps: int, texts: list[str]) -> None:
    """Causal-LM training on the corpus: each caption after an end-of-text token, then one."""
    import torch

    if steps <= 0:
        return
    eos = tokenizer.eos_token_id
    rows = [[eos, *tokenizer(text, add_special_tokens=False)["input_ids"][:100], eos] for text in texts]
    width = max(map(len, rows))
    ids = torch.tensor([row + [eos] * (width - len(row)) for row in rows])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
