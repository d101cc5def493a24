"""bench/decode_llm.py's own logic: which real prompts it times together, which graphs it builds, and which
teacher-forced positions count as answer tokens. No model is loaded."""

import pytest

from bench.decode_llm import answer_positions, speed_prompts, variants


class CharTokenizer:
    """One token per character; the chat template prefixes the user's turn with `<u>` (3 tokens)."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert messages[-1]["role"] == "user" and add_generation_prompt and not tokenize
        return "<u>" + messages[-1]["content"]

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [ord(c) for c in text]}


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "answer"}]


def test_speed_prompts_share_the_length_nearest_the_median_that_has_enough():
    chats = [chat("a" * n) for n in (1, 5, 5, 9, 9, 9, 20)]  # rendered: 4, 8, 8, 12, 12, 12, 23 tokens; median 12
    rows, texts = speed_prompts(CharTokenizer(), chats, 2)
    assert [len(r) for r in rows] == [12, 12] and texts == ["a" * 9] * 2
    rows, _ = speed_prompts(CharTokenizer(), chats[:3], 2)  # median 8: the pair of 5-character prompts
    assert [len(r) for r in rows] == [8, 8]


def test_speed_prompts_refuse_a_batch_no_length_can_fill():
    with pytest.raises(ValueError, match="no 3 of the 4 prompts share a token length"):
        speed_prompts(CharTokenizer(), [chat("a"), chat("bb"), chat("cc"), chat("ddd")], 3)


def test_variants_are_fp32_int8_and_each_option_set():
    built = variants(["accuracy_level=1", "accuracy_level=1,nodes_to_exclude=/lm_head/MatMul"])
    assert built["fp32"] == ("fp32", {}) and built["int8"] == ("int8", {})
    assert built["int8[accuracy_level=1]"] == ("int8", {"accuracy_level": "1"})
    assert built["int8[accuracy_level=1,nodes_to_exclude=/lm_head/MatMul]"][1]["nodes_to_exclude"] == "/lm_head/MatMul"
    with pytest.raises(ValueError, match="--int8-options 'accuracy_level'"):
        variants(["accuracy_level"])


def test_answer_positions_are_those_predicting_an_answer_token():
    labels = [-100, -100, -100, 7, 8, 2]  # three prompt tokens, then the answer (ending with eos)
    assert answer_positions(labels, -100).tolist() == [False, False, True, True, True, False]
