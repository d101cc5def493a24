"""Text without spaces (#23): the tokenizer stage sees a CJK corpus and makes every ideograph a token of its own.

Reviews in the shape of the Chinese review set in docs/benchmarks.md, and English texts; WordPiece is trained for
real (the `tokenizers` library), saved and reloaded the way every later stage loads it.
"""

from __future__ import annotations

from transformers import AutoTokenizer

from tasks.data.text_script import cjk_share
from tasks.training.tokenizer import TokenizerConfig, _train_wordpiece, choose_cjk

CHINESE = [
    "质量很好，物流也快，非常满意",
    "这本书的内容很好，推荐购买",
    "质量太差了，非常失望，不推荐",
    "物流很慢，客服态度也不好",
    "酒店的服务很好，房间干净",
    "房间太小了，服务一般",
] * 5
ENGLISH = ["the delivery was fast and the quality is good", "terrible service, would not recommend"] * 5


def test_a_chinese_corpus_gets_one_token_per_ideograph(tmp_path):
    characters, why = choose_cjk(TokenizerConfig(), CHINESE)
    assert characters and "CJK ideographs" in why and "100%" in why
    tok = _train_wordpiece(CHINESE, TokenizerConfig(vocab_size=300, min_frequency=1), characters)
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    sentence = "质量很好，推荐"
    assert reloaded.tokenize(sentence) == list(sentence)


def test_subwords_keep_runs_of_ideographs_together(tmp_path):
    cfg = TokenizerConfig(vocab_size=300, min_frequency=1, cjk="subwords")
    characters, why = choose_cjk(cfg, CHINESE)
    assert not characters and why.startswith("tokenizer.cjk=subwords")
    tok = _train_wordpiece(CHINESE, cfg, characters)
    tok.save_pretrained(tmp_path)
    pieces = AutoTokenizer.from_pretrained(tmp_path).tokenize("质量很好，推荐")
    assert any(len(p.removeprefix("##")) > 1 for p in pieces), pieces  # the choice survives save and reload


def test_english_is_not_cjk_and_tokenizes_as_before():
    assert cjk_share(ENGLISH) == 0.0
    characters, why = choose_cjk(TokenizerConfig(), ENGLISH)
    assert characters and why.startswith("0.0% of the corpus's letters are CJK ideographs: text with spaces")
    cfg = TokenizerConfig(vocab_size=200, min_frequency=1)
    auto = _train_wordpiece(ENGLISH, cfg, characters)
    text = "the quality is terrible"
    assert auto.tokenize(text) == ["the", "quality", "is", "terrible"]
    assert cjk_share(["我喜欢 iPhone"]) == 3 / 9  # mixed text: ideographs among all letters
