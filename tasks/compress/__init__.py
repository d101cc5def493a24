"""The compress stage: distillation and/or structured pruning of a fine-tuned encoder classifier, with a quality floor.

`stage.compress` is the plain function (teacher folder + prepared splits in, student folder + `CompressResult`
out); `candidates.compress_candidates` trains several students smallest first and keeps the first that passes the
floor; `training` runs the Trainer with resume; the methods themselves are in `models/compression/`.
"""

from tasks.compress.result import CompressResult
from tasks.compress.stage import compress

__all__ = ["CompressResult", "compress"]
