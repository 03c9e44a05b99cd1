"""The bundle layout: every file name the engine reads and the export tools write, with its
dtype and shape, in one place (the format itself is described in ``docs/reference/bundle-format.md``).

Readers check cheap invariants when they open a directory (array lengths against the trie
sizes, offsets spanning their arrays, vector rows within the vector count) and name the
file that breaks one; ``xned bundle verify`` checks every file's sha256.
"""

from __future__ import annotations

MANIFEST = "manifest.json"
FIELD_SEP = "\x1f"  # between the fields of one record: "label<SEP>description", "lang<SEP>key"
SCORING = "scoring.json"
ENCODER = "encoder"  # config.json, model.onnx, tokenizer.json
ENCODER_CONFIG = "config.json"
EXPERTS = "experts"
DETECTOR = "detector"  # optional: the trained mention detector head
KB = "kb"


class KBDir:
    """``kb/`` (and ``kb/overlay/``, the same layout for ``xned kb add``)."""

    META = "meta.json"  # counts, entity types, languages (keys per table), vector dim, prior rule
    BUILD = "build.json"  # the sources and options of the build (``xned kb compact`` replays it)
    ENTITIES = "entities"
    ALIASES = "aliases"  # one directory per language
    KEY_INDEX = "key_index"
    OVERLAY = "overlay"
    SOURCES = "kb_sources"  # beside kb/: the files given to ``xned kb add``
    DENSE_INDEX = "dense.usearch"  # usearch HNSW over the centred int8 entity vectors
    DENSE_MEAN = "dense_mean.npy"  # float32 [D], subtracted before indexing and search
    NAMES_INDEX = "names.usearch"  # usearch HNSW over the centred int8 vectors of entity labels alone
    NAMES_MEAN = "names_mean.npy"  # float32 [D], their mean (as DENSE_MEAN)
    #: ``<lang>.marisa``: "title<US>QID" keys, the Wikipedia titles (from Wikidata sitelinks)
    #: of the KB's entities in the languages of the Wikipedia dumps the build read; for
    #: training (``xned experts train`` maps a dump's links with it), not read at run time
    WIKI_TITLES = "wiki_titles"


class Entities:
    """``kb/entities/``: N entities; an entity's index is its key id in ``qids.marisa``."""

    QIDS = "qids.marisa"
    TEXT = "text.bin"  # UTF-8 "label\x1fdescription" records
    TEXT_OFFSETS = "text_offsets.npy"  # int64 [N+1] byte offsets into text.bin
    TYPE = "type.npy"  # int32 [N] index into meta["types"]
    POPULARITY = "popularity.npy"  # float32 [N] in [0, 1]
    VECTORS = "vectors.npy"  # int8 [M, D], M = N unless vector_rows.npy exists
    VECTOR_SCALES = "vector_scales.npy"  # float32 [M]: v = vectors * scale
    VECTOR_ROWS = "vector_rows.npy"  # int32 [N]: an entity's row in vectors.npy, -1 for none


class AliasTable:
    """``kb/aliases/<lang>/``: K alias keys, M (key, candidate) pairs."""

    KEYS = "keys.marisa"  # normalized alias keys; key id = trie id
    OFFSETS = "offsets.npy"  # int64 [K+1] candidate range per key id
    CANDS = "cands.npy"  # int32 [M] entity indices, best prior first
    PRIORS = "priors.npy"  # float32 [M] p(e | m), sum <= 1 per key
    LINK_PROB = "link_prob.npy"  # float32 [K] P(link | string occurs), NaN if unknown
    FOLD = "fold.marisa"  # accent-folded keys
    FOLD_OFFSETS = "fold_offsets.npy"  # int64 [F+1]
    FOLD_TARGETS = "fold_targets.npy"  # int32: key ids of keys.marisa
    # optional (``xned.engine.stems``): Snowball stem keys of the keys they differ from
    STEM_CONFIG = "stem.json"  # {"algorithm": "german"}
    STEM = "stem.marisa"
    STEM_OFFSETS = "stem_offsets.npy"  # int64 [S+1]
    STEM_TARGETS = "stem_targets.npy"  # int32: key ids of keys.marisa


class KeyIndex:
    """``kb/key_index/``: which languages' tables hold a key (or a key folding to it)."""

    LANGUAGES = "languages.json"  # table names; the int16 values below index it
    KEYS = "keys.marisa"
    OFFSETS = "offsets.npy"  # int64
    LANGS = "langs.npy"  # int16
    FOLD = "fold.marisa"
    FOLD_OFFSETS = "fold_offsets.npy"
    FOLD_LANGS = "fold_langs.npy"


class ExpertsDir:
    """``experts/``: one softmax per candidate set, shared by the alias keys that have it."""

    META = "meta.json"
    KEYS = "keys.marisa"  # "lang\x1fkey"
    KEY_MODEL = "key_model.npy"  # int32 [K] model of each key
    MODEL_OFFSETS = "model_offsets.npy"  # int64 [E+1] class range per model
    CLASSES = "classes.npy"  # int32 entity indices
    WEIGHTS = "weights.npy"  # int8 [classes, D]
    SCALES = "scales.npy"  # float32 [classes]
    BIAS = "bias.npy"  # float32 [classes], incl. the log frequency prior
    HUBNESS = "hubness.npy"  # float16 [N] per KB entity (optional)


class DetectorDir:
    """``detector/``: a token-classification head (O, B, I) on the encoder's token states."""

    META = "meta.json"  # labels, source languages, training data, min_score, measured figures
    W1 = "w1.npy"  # float32 [D, h], input standardization folded in
    B1 = "b1.npy"  # float32 [h]
    W2 = "w2.npy"  # float32 [h, 3]
    B2 = "b2.npy"  # float32 [3]
