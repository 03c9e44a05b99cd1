"""Vocabulary pruning: keep the tokenizer pieces a chosen set of languages and texts use.

Most of a multilingual encoder's int8 weight is its embedding matrix (mE5-small: 250k rows of
384). Pruning keeps:

- the special tokens, and every single-character piece (with and without the word-start
  marker) so any text in any script still tokenizes, at worst into characters;
- the ``keep_top`` pieces with the highest Unigram scores (the tokenizer's own estimate of
  how frequent a piece is over its whole multilingual training corpus): a floor for languages
  without a word list (Basque has none in ``wordfreq``);
- every piece the tokenizer emits on the *pruning corpus*: word-frequency lists of the given
  languages (``wordfreq``, top-N words, each also capitalized; words of unspaced scripts are
  joined into runs so they segment as in running text) and the lines of any given text files
  (e.g. all KB aliases and entity texts).

The rows are kept in their original order (specials keep ids 0..3), the Unigram vocabulary and
every id in ``tokenizer.json`` (added tokens, post-processor) are remapped, and the model's
word-embedding matrix is sliced to match. Because the Unigram model only loses pieces, any text
whose best segmentation uses kept pieces tokenizes exactly as before; other text falls back to
shorter pieces. ``max_vocab`` drops the rarest corpus pieces beyond a budget.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xned.config import MAX_WORDLIST_LINE_CHARS
from xned.errors import InputError
from xned.export import require

UNSPACED = {"zh", "ja", "th", "lo", "km", "my", "bo"}
EMBEDDING_KEYS = ("embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight")


def wordfreq_words(lang: str, n: int) -> list[str]:
    wordfreq = require("wordfreq")
    if lang not in wordfreq.available_languages(wordlist="best"):
        have = ", ".join(sorted(wordfreq.available_languages(wordlist="best")))
        raise InputError(f"--prune-vocab: wordfreq has no word list for {lang!r} (has: {have}); give a text file.")
    return list(wordfreq.top_n_list(lang, n, wordlist="best"))


def corpus(spec: Iterable[str], words_per_lang: int) -> Iterator[str]:
    """Texts for the pruning corpus: ``spec`` items are text files or comma-separated language codes."""
    for item in spec:
        path = Path(item)
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()[:MAX_WORDLIST_LINE_CHARS]
                    if line:
                        yield line
            continue
        langs = [x.strip() for x in item.split(",") if x.strip()]
        if not langs or not all(x.replace("-", "").isalnum() for x in langs):
            raise InputError(f"--prune-vocab {item!r} is neither a file nor a comma-separated list of language codes.")
        for lang in langs:
            words = wordfreq_words(lang, words_per_lang)
            if lang.split("-")[0] in UNSPACED:
                for i in range(0, len(words), 8):
                    yield "".join(words[i : i + 8])
            else:
                for w in words:
                    yield w
                    cap = w[:1].upper() + w[1:]
                    if cap != w:
                        yield cap


def select_pieces(
    tok_json: dict[str, Any], texts: Iterable[str], max_vocab: int | None = None, keep_top: int = 0
) -> list[int]:
    """Sorted ids of the pieces to keep (see module doc)."""
    from tokenizers import Tokenizer

    model = tok_json.get("model", {})
    if model.get("type") != "Unigram":
        raise InputError(f"--prune-vocab supports SentencePiece Unigram tokenizers; this one is {model.get('type')!r}.")
    vocab = model["vocab"]
    tok = Tokenizer.from_str(json.dumps(tok_json))
    tok.no_truncation()
    tok.no_padding()
    specials = {int(t["id"]) for t in tok_json.get("added_tokens", [])} | {int(model.get("unk_id") or 0)}
    chars = {i for i, (piece, _) in enumerate(vocab) if len(piece.lstrip("\u2581")) <= 1}
    counts: Counter[int] = Counter()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == 4096:
            for enc in tok.encode_batch(batch, add_special_tokens=False):
                counts.update(enc.ids)
            batch = []
    for enc in tok.encode_batch(batch, add_special_tokens=False):
        counts.update(enc.ids)
    ranked = sorted(range(len(vocab)), key=lambda i: (-float(vocab[i][1]), i))
    keep = specials | chars | set(ranked[:keep_top])
    extra = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if i not in keep]
    if max_vocab is not None:
        room = max_vocab - len(keep)
        if room < 0:
            raise InputError(f"--max-vocab {max_vocab} is below the {len(keep)} special and single-character pieces.")
        extra = extra[:room]
    return sorted(keep | set(extra))


def prune_tokenizer(tok_json: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    remap = {old: new for new, old in enumerate(keep)}
    out = json.loads(json.dumps(tok_json))
    vocab = tok_json["model"]["vocab"]
    out["model"]["vocab"] = [vocab[i] for i in keep]
    unk = tok_json["model"].get("unk_id")
    if unk is not None:
        out["model"]["unk_id"] = remap[int(unk)]
    for t in out.get("added_tokens", []):
        t["id"] = remap[int(t["id"])]
    post = out.get("post_processor") or {}
    for sp in (post.get("special_tokens") or {}).values():
        sp["ids"] = [remap[int(i)] for i in sp["ids"]]
    for key in ("cls", "sep"):  # RobertaProcessing / BertProcessing
        if isinstance(post.get(key), list) and len(post[key]) == 2:
            post[key][1] = remap[int(post[key][1])]
    return out


def prune_checkpoint(
    model_dir: Path,
    out_dir: Path,
    spec: list[str],
    *,
    words_per_lang: int = 30000,
    max_vocab: int | None = None,
    keep_top: int = 0,
) -> dict[str, Any]:
    """Write a pruned copy of the Hugging Face checkpoint ``model_dir`` to ``out_dir``."""
    safetensors_np = require("safetensors.numpy")
    tok_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    before = len(tok_json["model"]["vocab"])
    keep = select_pieces(tok_json, corpus(spec, words_per_lang), max_vocab, keep_top)
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        raise InputError(f"{model_dir} has no model.safetensors; --prune-vocab needs safetensors weights.")
    tensors = safetensors_np.load_file(str(weights_path))
    key = next((k for k in EMBEDDING_KEYS if k in tensors), None)
    if key is None:
        raise InputError(f"{weights_path}: no word-embedding tensor ({' or '.join(EMBEDDING_KEYS)}).")
    emb = tensors[key]
    if emb.shape[0] < before:
        raise InputError(f"{weights_path}: {emb.shape[0]} embedding rows but {before} tokenizer pieces.")
    tensors[key] = np.ascontiguousarray(emb[np.asarray(keep)])
    out_dir.mkdir(parents=True, exist_ok=True)
    safetensors_np.save_file(tensors, str(out_dir / "model.safetensors"))
    (out_dir / "tokenizer.json").write_text(
        json.dumps(prune_tokenizer(tok_json, keep), ensure_ascii=False), encoding="utf-8"
    )
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["vocab_size"] = len(keep)
    remap = {old: new for new, old in enumerate(keep)}
    for k in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(cfg.get(k), int) and cfg[k] in remap:
            cfg[k] = remap[cfg[k]]
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for name in ("tokenizer_config.json", "special_tokens_map.json", "NOTICE", "xned_provenance.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out_dir / name)
    return {
        "pieces_before": before,
        "pieces_after": len(keep),
        "embedding_rows_before": int(emb.shape[0]),
        "sources": [Path(s).name if Path(s).is_file() else s for s in spec],
        "words_per_lang": words_per_lang,
        "max_vocab": max_vocab,
        "keep_top": keep_top,
    }
