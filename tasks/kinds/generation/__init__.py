"""Generation: instruction data, a byte-level tokenizer and causal pretraining, instruction tuning (LoRA on a real
checkpoint), evaluation against the untuned model and retrieval, its gate, pyfunc and ONNX Runtime GenAI graphs."""
