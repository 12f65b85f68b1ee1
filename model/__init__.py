"""The Transformer in PyTorch, its tokenizer, data, training, evaluation and reference decoding."""
