"""Which script a corpus is written in: CJK ideographs (text without spaces between words) or not.

Chinese and Japanese are written without spaces, so a whitespace pre-tokenizer would see a whole clause as one
"word"; BERT's Chinese models instead make every CJK ideograph a token of its own (`BertNormalizer`'s
`handle_chinese_chars`). The tokenizer stage measures the share to choose and to say why in its log.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

CJK_THRESHOLD = 0.3  # share of a corpus's letters; mixed Chinese-English product reviews sit far above it
SAMPLE = 5_000  # texts looked at: the share of a large corpus needs no more


def is_cjk_char(ch: str) -> bool:
    """The ranges BERT's tokenizer treats as Chinese characters (CJK Unified Ideographs and their extensions)."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def cjk_share(texts: Sequence[str], seed: int = 0) -> float:
    """The share of CJK ideographs among the letters (`str.isalpha`) of `texts`, on a sample of large corpora."""
    texts = list(texts)
    if len(texts) > SAMPLE:
        texts = random.Random(seed).sample(texts, SAMPLE)
    letters = cjk = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += is_cjk_char(ch)
    return cjk / letters if letters else 0.0
