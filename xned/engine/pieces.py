"""The encoder's tokenizer as a SentencePiece model (``tokenizer.model``): the same pieces,
ids and normalization as the Unigram ``tokenizer.json`` it is converted from
(``xned.export.encoder.pieces``), in about a fifth of the memory (34 vs 171 MB for 180,000
pieces) and loaded faster. It answers the few calls the encoder makes of a ``tokenizers``
``Tokenizer``: ``encode_batch`` / ``encode`` with ids and character offsets, and
``token_to_id``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine.bundle import REBUILD_HINT
from xned.errors import BundleError

BOS, EOS = 0, 2  # <s> and </s> of XLM-R style vocabularies, as in the converted model


@dataclass
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character offsets into the text, end exclusive


class PieceTokenizer:
    def __init__(self, path: Path):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self._space = self.sp.piece_to_id("▁")

    @staticmethod
    def path(root: Path, name: Any) -> Path:
        """The model file ``name`` of the encoder directory ``root`` (a bare file name)."""
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise BundleError(f"{root / 'config.json'}: pieces = {name!r} is not a file name; {REBUILD_HINT}.")
        return root / name

    def token_to_id(self, piece: str) -> int | None:
        i = int(self.sp.piece_to_id(piece))
        return None if i == self.sp.unk_id() and piece != self.sp.id_to_piece(i) else i

    def no_padding(self) -> None:  # the ``tokenizers`` calls the encoder makes: nothing to do here
        pass

    def no_truncation(self) -> None:
        pass

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoded:
        enc = self.encode_batch([text], add_special_tokens=False)[0]
        if add_special_tokens:
            end = len(text)
            return Encoded([BOS, *enc.ids, EOS], [(0, 0), *enc.offsets, (end, end)])
        return enc

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[Encoded]:
        if add_special_tokens:
            return [self.encode(t) for t in texts]
        # SentencePiece sums a path's scores in float32 over its whole input, so in a long text
        # a near-tie between two segmentations of a word can go the other way than in
        # ``tokenizers`` (float64, word by word): texts are cut after whitespace into parts of
        # a few hundred characters (no piece spans whitespace, so the pieces are the same)
        parts: list[str] = []
        starts: list[list[int]] = []
        for t in texts:
            cuts = _cuts(t)
            starts.append(cuts)
            parts += [t[a:b] for a, b in zip(cuts, [*cuts[1:], len(t)], strict=True)]
        # one call per part: the list form of ``encode`` starts a thread pool on every call
        # (a short sentence 30 us against 4; 7 ms seen on a machine at load 5); 64 news
        # documents take 9.5 ms this way against 8.7, beside about a second of encoder
        protos = (self.sp.encode(part, return_type="proto") for part in parts)
        out = []
        for t, cuts in zip(texts, starts, strict=True):
            ids: list[int] = []
            offsets: list[tuple[int, int]] = []
            for a, b in zip(cuts, [*cuts[1:], len(t)], strict=True):
                i, o = self._pieces(t, a, b, next(protos))
                ids += i
                offsets += o
            stripped = t.rstrip()  # the tokenizers pipeline keeps one "▁" for whitespace ending
            if stripped != t:  # a text; SentencePiece strips it
                at = len(stripped) if stripped else len(t) - 1
                ids.append(self._space)
                offsets.append((at, at + 1))
            out.append(Encoded(ids, offsets))
        return out

    @staticmethod
    def _pieces(full: str, a: int, b: int, proto: Any) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character offsets in ``full`` of the pieces of its part ``[a, b)``."""
        text = full[a:b]
        pieces = proto.pieces
        ids = [p.id for p in pieces]
        begin = np.fromiter((p.begin for p in pieces), np.int64, count=len(pieces))
        end = np.fromiter((p.end for p in pieces), np.int64, count=len(pieces))
        if not text.isascii():  # byte offsets -> character offsets
            raw = np.frombuffer(text.encode("utf-8"), np.uint8)
            chars = np.concatenate([[0], np.cumsum((raw & 0xC0) != 0x80)])
            begin, end = chars[begin], chars[end]
        begin += a
        end += a
        # a lone "▁" (before a word it does not join) covers the space before it in
        # ``tokenizers``, or the word's first character at the start; SentencePiece gives it
        # an empty range
        for k in np.flatnonzero(begin == end).tolist():
            at = int(begin[k])
            if at > 0 and full[at - 1].isspace():
                begin[k] = at - 1
            elif at < len(full):
                end[k] = at + 1
        return ids, list(zip(begin.tolist(), end.tolist(), strict=True))


PART_CHARS = 256
_AFTER_SPACE = re.compile(r"\s(?=\S)")


def _cuts(text: str) -> list[int]:
    """Start offsets of the parts of ``text``: at least ``PART_CHARS`` characters each, each
    after the first starting at a non-space character that follows whitespace."""
    cuts = [0]
    while len(text) - cuts[-1] > PART_CHARS:
        m = _AFTER_SPACE.search(text, cuts[-1] + PART_CHARS)
        if m is None:
            break
        cuts.append(m.end())
    return cuts
