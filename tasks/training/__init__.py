"""Training shared by the encoder kinds: Trainer settings and runs, distributed launch, the WordPiece tokenizer and
masked-LM pretraining."""
