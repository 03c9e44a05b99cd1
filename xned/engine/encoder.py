"""Tokenizer + ONNX Runtime encoder: one session per process, mentions pooled from
shared context windows.

``encoder/config.json``::

    {"model": "model.onnx", "tokenizer": "tokenizer.json", "pieces": "tokenizer.model",
     "max_length": 256, "pooling": "mention" | "mean" | "cls", "mention_weight": 0.5,
     "query_prefix": "query: ", "passage_prefix": "passage: ", "dim": 384}

Context encoding: a document is tokenized once (character offsets kept). Documents that
fit go through the encoder as one window; longer ones are cut into windows of
``max_length`` tokens placed on a grid of quarter-window steps, each mention using the
window where it is most central, so nearby mentions share one encoder pass. Windows from
all documents of a batch are sorted by length and run in batches; results are mapped
back to their mentions.
"""

from __future__ import annotations

import bisect
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xned.engine import layout as L
from xned.engine.bundle import REBUILD_HINT, read_json_object
from xned.engine.chunks import chunk_bounds, context_chunks, token_spans
from xned.engine.pieces import PieceTokenizer
from xned.engine.session import choose_providers, create_session
from xned.errors import BundleError

DEFAULT_CONFIG: dict[str, Any] = {
    "model": "model.onnx",
    "tokenizer": "tokenizer.json",
    "max_length": 256,
    "pooling": "mention",
    "mention_weight": 0.5,
    "query_prefix": "",
    "passage_prefix": "",
    "chunk_tokens": 128,
    "context_tokens": 32,
    "batch_tokens": 2048,  # 4096 held 77 MB more activations per process, no faster (measured)
}


def normalize_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def batch_independent(config: dict[str, Any]) -> bool:
    """Whether an encoder config describes a model whose rows do not affect each other: not
    quantized (no record, or method ``none``), or int8 with per-row activation scales
    (``xned export row-scales``). ``quantize_dynamic``'s per-batch scales are not."""
    quant = config.get("quantization")
    if not isinstance(quant, dict) or quant.get("method") in (None, "none"):
        return True
    return str(quant.get("activations", "")).startswith("per-row")


class Encoder:
    """Lazily creates its tokenizer and ``InferenceSession`` on first use."""

    def __init__(
        self,
        root: Path,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
    ):
        self.root = Path(root)
        cfg_path = self.root / L.ENCODER_CONFIG
        user = read_json_object(cfg_path, "Encoder config", max_bytes=1 << 20)
        self.config = {**DEFAULT_CONFIG, **user}

        def number(key: str, kind: type, low: float) -> Any:
            value = self.config[key]
            try:
                if isinstance(value, bool) or kind(value) != float(value) or kind(value) < low:
                    raise ValueError
                return kind(value)
            except (TypeError, ValueError):
                raise BundleError(
                    f"{cfg_path}: {key} = {value!r} is not a {kind.__name__} >= {low:g}; {REBUILD_HINT}."
                ) from None

        self.max_length = number("max_length", int, 8)
        self.pooling = str(self.config["pooling"])
        if self.pooling not in ("mention", "mean", "cls"):
            raise BundleError(f"{cfg_path}: unknown pooling {self.pooling!r} (mention, mean, cls).")
        self.mention_weight = number("mention_weight", float, 0)
        self.providers = providers
        self.threads = threads
        #: chunk length (tokens) for mention contexts and the token budget of one batch
        self.chunk_tokens = number("chunk_tokens", int, 8)
        self.context_tokens = number("context_tokens", int, 0)
        self.batch_tokens = number("batch_tokens", int, 8)
        self.batch_rows = batch_size  # fixed rows per batch instead of the token budget
        #: whether a row's output is independent of the other rows of its batch (float or
        #: per-row int8 models); an encoder quantized per batch runs one row at a time
        self.row_stable = batch_independent(self.config)
        if not self.row_stable:
            self.batch_rows = 1
            warnings.warn(
                f"The encoder {self.root} quantizes activations per batch, so a text's scores would "
                "depend on the texts batched with it; it runs one text at a time (slower). Make it "
                f"batch-independent once with: xned export row-scales {self.root}",
                RuntimeWarning,
                stacklevel=2,
            )
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._session_thread: threading.Thread | None = None
        self._session_error: BaseException | None = None
        self._inputs: set[str] = set()
        self._chosen: list[str] | None = None

    @property
    def providers_in_use(self) -> list[str]:
        """The execution providers of the session (once created), else those it will ask for."""
        if self._session is not None:
            return list(self._session.get_providers())
        return list(self._chosen or self.providers or ["CPUExecutionProvider"])

    def check_providers(self) -> None:
        """Resolve the execution providers now, so a missing one warns at load time. The
        tokenizer and the ONNX session themselves load on first use: a run whose mentions
        are all decided without context (or have no candidate) never pays for them."""
        if self.providers:
            self._chosen = choose_providers(self.providers)

    # -- lazy resources ---------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self._load_tokenizer()

    @property
    def session(self) -> Any:
        return self._load_session()

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            # The tokenizer is only ever needed to feed the session: create the session in a
            # thread meanwhile (ONNX Runtime releases the GIL while it loads; tokenizers
            # holds it), so a cold start pays max(tokenizer, session), not their sum.
            self._start_session_thread()

            # the SentencePiece form of the same tokenizer where the bundle has one: same ids,
            # a fifth of the memory (``xned.engine.pieces``)
            pieces = self.config.get("pieces")
            path = PieceTokenizer.path(self.root, pieces) if pieces else self.root / self.config["tokenizer"]
            if not path.is_file():
                raise BundleError(f"Tokenizer {path} is missing; {REBUILD_HINT}.")
            try:
                tok = PieceTokenizer(path) if pieces else Tokenizer.from_file(str(path))
            except Exception as exc:
                raise BundleError(f"Tokenizer {path} is unreadable ({exc}); {REBUILD_HINT}.") from None
            tok.no_padding()
            tok.no_truncation()
            specials = tok.encode("", add_special_tokens=True).ids
            self._cls = specials[:1]
            self._sep = specials[1:] if len(specials) > 1 else []
            self._pad_id = tok.token_to_id("<pad>")
            if self._pad_id is None:
                self._pad_id = tok.token_to_id("[PAD]") or 0
            self._tokenizer = tok
            self._prefix = {
                "query": tok.encode(self.config["query_prefix"], add_special_tokens=False).ids
                if self.config["query_prefix"]
                else [],
                "passage": tok.encode(self.config["passage_prefix"], add_special_tokens=False).ids
                if self.config["passage_prefix"]
                else [],
            }
        return self._tokenizer

    def prefetch(self) -> None:
        """Start creating the ONNX session in a thread now (it is otherwise created on first
        use, together with the tokenizer)."""
        self._start_session_thread()

    def _start_session_thread(self) -> None:
        with self._lock:
            if self._session is not None or self._session_thread is not None:
                return
            import onnxruntime  # noqa: F401  # imported here: an import in the thread would wait for the GIL

            def create() -> None:
                try:
                    self._create_session()
                except BaseException as exc:  # re-raised by _load_session in the caller's thread
                    self._session_error = exc

            # Not a daemon: the interpreter waits for it at exit. ONNX Runtime aborts the process
            # (SIGABRT) if it exits while a session is being created in another thread.
            self._session_thread = threading.Thread(target=create, name="xned-ort-session", daemon=False)
            self._session_thread.start()

    def _load_session(self) -> Any:
        if self._session is None:
            thread = self._session_thread
            if thread is not None:
                thread.join()
                if self._session_error is not None:
                    raise self._session_error
            else:
                with self._lock:
                    if self._session is None and self._session_thread is None:
                        self._create_session()
                if self._session is None:  # another thread started the load meanwhile
                    return self._load_session()
        return self._session

    def _create_session(self) -> None:
        if self._session is None:
            providers = self._chosen or choose_providers(self.providers)
            session = create_session(self.root / self.config["model"], self.threads, providers)
            self._inputs = {i.name for i in session.get_inputs()}
            self._session = session  # last: another thread may use it as soon as it is set

    @property
    def configured_dim(self) -> int | None:
        """The vector length ``config.json`` records (None where it records none); unlike
        ``dim``, it does not load the ONNX session."""
        dim = self.config.get("dim")
        return dim if isinstance(dim, int) and not isinstance(dim, bool) else None

    @property
    def dim(self) -> int:
        out = self.session.get_outputs()[0].shape
        return int(out[-1]) if isinstance(out[-1], int) else int(self.config.get("dim", 0))

    # -- running ----------------------------------------------------------------------------
    def _run(self, seqs: list[list[int]], reduce: Any = None) -> list[Any]:
        """For each id sequence, ``reduce(i, hidden)`` of its hidden states ``[len(seq), H]``
        (the states themselves without ``reduce``), in length-sorted batches. Reducing per
        batch keeps memory to one batch of states, whatever the number of sequences."""
        session = self.session
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[Any] = [None] * len(seqs)
        b = 0
        while b < len(order):
            # Length-sorted: the next rows are at least as long; take as many as the token
            # budget allows at the width of the longest of them.
            rows = 1
            if self.batch_rows:
                rows = self.batch_rows
            else:
                while b + rows < len(order) and (rows + 1) * len(seqs[order[b + rows]]) <= self.batch_tokens:
                    rows += 1
            idx = order[b : b + rows]
            b += rows
            width = max(len(seqs[i]) for i in idx)
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = seqs[i]
                mask[r, : len(seqs[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            feed = {k: v for k, v in feed.items() if k in self._inputs}
            hidden = session.run(None, feed)[0]
            for r, i in enumerate(idx):
                h = hidden[r, : len(seqs[i])]
                out[i] = h if reduce is None else reduce(i, h)
        return out

    def _wrap(self, body: list[int], kind: str) -> list[int]:
        return self._cls + self._prefix[kind] + body + self._sep

    def embed_texts(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Mean-pooled, L2-normalized embeddings of short texts (entity descriptions)."""
        tok = self.tokenizer
        room = self.max_length - len(self._cls) - len(self._sep) - len(self._prefix[kind])
        seqs = [self._wrap(e.ids[:room], kind) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
        if not seqs:
            return np.zeros((0, self.dim), np.float32)
        cls = self.pooling == "cls"
        pooled = np.stack(self._run(seqs, lambda _, h: h[0].copy() if cls else h.mean(axis=0)))
        return normalize_rows(pooled.astype(np.float32))

    def pool(self, h: np.ndarray, lead: int, a: int, b: int) -> np.ndarray:
        """The vector of the mention at body tokens ``[a, b)`` of one encoded sequence whose
        states are ``h`` (body from ``lead``): mention and context means, weighted."""
        if self.pooling == "cls":
            return h[0].copy()
        ctx = h.mean(axis=0)
        if self.pooling == "mean" or b <= a:
            return ctx
        men = h[lead + a : lead + b].mean(axis=0)
        w = self.mention_weight
        return w * normalize_rows(men) + (1 - w) * normalize_rows(ctx)

    def encode_documents(
        self,
        texts: Sequence[str],
        protect: Sequence[Sequence[tuple[int, int]]],
        visit: Any,
    ) -> list[list[Any]]:
        """Every token of every text through the encoder exactly once, in chunks of at most
        ``chunk_tokens`` whose cuts avoid the character spans ``protect[d]`` (candidate
        mentions). For each chunk, ``visit(d, offsets, h, lead)`` is called with the
        document index, the chunk's character offsets ``[n, 2]`` (one row per body token) and
        the states ``h`` of the wrapped sequence (body tokens from ``lead``); the results are
        returned per document in chunk order. Memory holds one batch of states."""
        tok = self.tokenizer
        room = self.max_length - len(self._cls) - len(self._sep) - len(self._prefix["query"])
        size = max(8, min(room, self.chunk_tokens))
        encs = tok.encode_batch(list(texts), add_special_tokens=False)
        seqs: list[list[int]] = []
        where: list[tuple[int, np.ndarray]] = []
        per_doc: list[list[int]] = []
        for d, (enc, spans) in enumerate(zip(encs, protect, strict=True)):
            ids = enc.ids
            offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            bounds = chunk_bounds(len(ids), token_spans(enc.offsets, spans) if len(ids) else [], size)
            mine = []
            for c0, c1 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                if c1 <= c0:
                    continue
                mine.append(len(seqs))
                seqs.append(self._wrap(list(ids[c0:c1]), "query"))
                where.append((d, offs[c0:c1]))
            per_doc.append(mine)
        lead = len(self._cls) + len(self._prefix["query"])
        results = self._run(seqs, lambda i, h: visit(where[i][0], where[i][1], h, lead)) if seqs else []
        return [[results[i] for i in mine] for mine in per_doc]

    def embed_mentions(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[np.ndarray]:
        """For each document, an L2-normalized ``[n_mentions, H]`` array of mention-in-context
        embeddings. ``spans[d]`` are character spans into ``texts[d]``.

        Each token goes through the encoder at most once: every mention gets
        ``context_tokens`` of context either side, overlapping ranges are merged and cut into
        chunks of at most ``chunk_tokens`` (``context_chunks``), and every mention is pooled
        from the chunk that holds it, batch by batch (memory holds one batch of states)."""
        tok = self.tokenizer
        room = self.max_length - len(self._cls) - len(self._sep) - len(self._prefix["query"])
        size = max(8, min(room, self.chunk_tokens))
        encs = tok.encode_batch(list(texts), add_special_tokens=False)
        assign: list[list[tuple[int, int, int]]] = []  # per doc: (chunk id, tok_a, tok_b) in the chunk
        seqs: list[list[int]] = []
        for enc, doc_spans in zip(encs, spans, strict=True):
            ids = enc.ids
            tok_spans = token_spans(enc.offsets, doc_spans)
            chunks = context_chunks(len(ids), tok_spans, size, self.context_tokens)
            starts = [c0 for c0, _ in chunks]
            first: dict[int, int] = {}
            per: list[tuple[int, int, int]] = []
            for a, b in tok_spans:
                c = bisect.bisect_right(starts, a) - 1
                c0, c1 = chunks[c]
                if c not in first:
                    first[c] = len(seqs)
                    seqs.append(self._wrap(list(ids[c0:c1]), "query"))
                per.append((first[c], a - c0, max(a + 1, min(b, c1)) - c0))
            assign.append(per)
        lead = len(self._cls) + len(self._prefix["query"])
        inside: list[list[tuple[int, int]]] = [[] for _ in seqs]  # per chunk: its mentions' token ranges
        for per in assign:
            for wid, a, b in per:
                inside[wid].append((a, b))

        def pool(i: int, h: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
            return {(a, b): self.pool(h, lead, a, b) for a, b in inside[i]}

        pooled = self._run(seqs, pool) if seqs else []
        dim = next((len(v) for d in pooled for v in d.values()), 0)
        results: list[np.ndarray] = []
        for per in assign:
            vecs = [pooled[wid][(a, b)] for wid, a, b in per]
            arr = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
            results.append(normalize_rows(arr))
        return results
