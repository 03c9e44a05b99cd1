"""Cross-lingual retrieval check: do translations retrieve each other through the encoder?

For each target language the English items and their translations are embedded (mean-pooled,
with the encoder's query prefix on both sides, as E5 does for symmetric tasks); top-1 is the
share of items whose nearest neighbour on the other side is their own translation, averaged
over both directions. Two probes: 12 everyday sentences and 15 entity names per language,
written for this check (not taken from any evaluation set).

The control is the same ONNX graph with every weight matrix replaced by random values of the
same shape and scale (seeded): same tokenizer, same architecture, no training. Whatever the
control scores is what token overlap alone buys.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xned.engine.encoder import Encoder
from xned.export import require

if TYPE_CHECKING:
    from xned.engine.encoder import Encoder

LANGS = ("es", "zh", "ja", "eu", "de")

SENTENCES: dict[str, list[str]] = {
    "en": [
        "The river flooded the village after three days of heavy rain.",
        "My grandmother bakes bread every Sunday morning.",
        "The museum will be closed for renovation until next spring.",
        "Scientists discovered a new species of frog in the rainforest.",
        "The train to the airport leaves every fifteen minutes.",
        "The children are playing football in the park.",
        "The government announced higher taxes on tobacco.",
        "She forgot her umbrella at the restaurant.",
        "The hospital needs more nurses and doctors.",
        "The concert was cancelled because of the storm.",
        "He learned to play the guitar when he was ten years old.",
        "Prices of apartments in the city centre keep rising.",
    ],
    "es": [
        "El río inundó el pueblo después de tres días de lluvia intensa.",
        "Mi abuela hace pan todos los domingos por la mañana.",
        "El museo estará cerrado por reformas hasta la próxima primavera.",
        "Los científicos descubrieron una nueva especie de rana en la selva tropical.",
        "El tren al aeropuerto sale cada quince minutos.",
        "Los niños están jugando al fútbol en el parque.",
        "El gobierno anunció impuestos más altos sobre el tabaco.",
        "Ella olvidó su paraguas en el restaurante.",
        "El hospital necesita más enfermeras y médicos.",
        "El concierto fue cancelado a causa de la tormenta.",
        "Aprendió a tocar la guitarra cuando tenía diez años.",
        "Los precios de los pisos en el centro de la ciudad siguen subiendo.",
    ],
    "de": [
        "Der Fluss überschwemmte das Dorf nach drei Tagen starken Regens.",
        "Meine Großmutter backt jeden Sonntagmorgen Brot.",
        "Das Museum bleibt bis zum nächsten Frühjahr wegen Renovierung geschlossen.",
        "Wissenschaftler entdeckten im Regenwald eine neue Froschart.",
        "Der Zug zum Flughafen fährt alle fünfzehn Minuten.",
        "Die Kinder spielen im Park Fußball.",
        "Die Regierung kündigte höhere Steuern auf Tabak an.",
        "Sie hat ihren Regenschirm im Restaurant vergessen.",
        "Das Krankenhaus braucht mehr Pflegekräfte und Ärzte.",
        "Das Konzert wurde wegen des Sturms abgesagt.",
        "Er lernte Gitarre spielen, als er zehn Jahre alt war.",
        "Die Wohnungspreise in der Innenstadt steigen weiter.",
    ],
    "zh": [
        "连续下了三天大雨后，河水淹没了村庄。",
        "我奶奶每个星期天早上都烤面包。",
        "博物馆将因装修关闭到明年春天。",
        "科学家在热带雨林中发现了一种新的青蛙。",
        "去机场的火车每十五分钟一班。",
        "孩子们正在公园里踢足球。",
        "政府宣布提高烟草税。",
        "她把雨伞忘在餐厅了。",
        "医院需要更多的护士和医生。",
        "音乐会因暴风雨被取消了。",
        "他十岁时学会了弹吉他。",
        "市中心的公寓价格持续上涨。",
    ],
    "ja": [
        "三日間の大雨の後、川が氾濫して村が浸水した。",
        "祖母は毎週日曜日の朝にパンを焼きます。",
        "博物館は改装のため来年の春まで閉館します。",
        "科学者たちは熱帯雨林で新種のカエルを発見した。",
        "空港行きの電車は十五分ごとに出発します。",
        "子どもたちは公園でサッカーをしています。",
        "政府はたばこ税の引き上げを発表した。",
        "彼女はレストランに傘を忘れた。",
        "その病院にはもっと多くの看護師と医師が必要だ。",
        "嵐のためコンサートは中止された。",
        "彼は十歳のときにギターを弾けるようになった。",
        "市の中心部のマンション価格は上がり続けている。",
    ],
    "eu": [
        "Hiru egunez euri zaparrada egin ondoren, ibaiak herria urpean utzi zuen.",
        "Nire amonak ogia egiten du igande goizero.",
        "Museoa itxita egongo da berritze lanengatik datorren udaberrira arte.",
        "Zientzialariek igel espezie berri bat aurkitu zuten oihan tropikalean.",
        "Aireporturako trena hamabost minuturo irteten da.",
        "Haurrak futbolean ari dira parkean.",
        "Gobernuak tabakoaren gaineko zerga handiagoak iragarri zituen.",
        "Aterkia jatetxean ahaztu zuen.",
        "Ospitaleak erizain eta mediku gehiago behar ditu.",
        "Kontzertua bertan behera geratu zen ekaitzaren ondorioz.",
        "Hamar urte zituela ikasi zuen gitarra jotzen.",
        "Hiriaren erdiguneko etxebizitzen prezioek gora egiten jarraitzen dute.",
    ],
}

# en, es, de, zh, ja, eu
_NAMES = [
    ("Germany", "Alemania", "Deutschland", "德国", "ドイツ", "Alemania"),
    ("United States", "Estados Unidos", "Vereinigte Staaten", "美国", "アメリカ合衆国", "Ameriketako Estatu Batuak"),
    ("London", "Londres", "London", "伦敦", "ロンドン", "Londres"),
    ("Japan", "Japón", "Japan", "日本", "日本", "Japonia"),
    ("Spain", "España", "Spanien", "西班牙", "スペイン", "Espainia"),
    ("European Union", "Unión Europea", "Europäische Union", "欧洲联盟", "欧州連合", "Europar Batasuna"),
    ("United Nations", "Naciones Unidas", "Vereinte Nationen", "联合国", "国際連合", "Nazio Batuak"),
    ("Moscow", "Moscú", "Moskau", "莫斯科", "モスクワ", "Mosku"),
    ("Switzerland", "Suiza", "Schweiz", "瑞士", "スイス", "Suitza"),
    ("Mediterranean Sea", "Mar Mediterráneo", "Mittelmeer", "地中海", "地中海", "Mediterraneo itsasoa"),
    ("China", "China", "China", "中国", "中国", "Txina"),
    ("Greece", "Grecia", "Griechenland", "希腊", "ギリシャ", "Grezia"),
    ("Egypt", "Egipto", "Ägypten", "埃及", "エジプト", "Egipto"),
    ("Mount Everest", "Monte Everest", "Mount Everest", "珠穆朗玛峰", "エベレスト", "Everest mendia"),
    ("Pacific Ocean", "Océano Pacífico", "Pazifischer Ozean", "太平洋", "太平洋", "Ozeano Barea"),
]
NAMES: dict[str, list[str]] = {
    lang: [row[i] for row in _NAMES] for i, lang in enumerate(("en", "es", "de", "zh", "ja", "eu"))
}


def _top1(a: np.ndarray, b: np.ndarray) -> float:
    sims = a @ b.T
    gold = np.arange(len(a))
    return float(((sims.argmax(1) == gold).mean() + (sims.argmax(0) == gold).mean()) / 2)


def _embed(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return np.asarray(encoder.embed_texts(texts, kind="query"), dtype=np.float32)


def score(encoder: Encoder, langs: tuple[str, ...] = LANGS) -> dict[str, dict[str, float]]:
    """Top-1 retrieval per language and probe (``sentences``, ``names``) for an engine Encoder."""
    out: dict[str, dict[str, float]] = {}
    for probe_name, probe in (("sentences", SENTENCES), ("names", NAMES)):
        en = _embed(encoder, probe["en"])
        out[probe_name] = {lang: _top1(en, _embed(encoder, probe[lang])) for lang in langs}
        out[probe_name]["mean"] = float(np.mean([out[probe_name][lang] for lang in langs]))
    return out


def randomized_copy(encoder_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """Copy an encoder directory with every >=2-d weight replaced by seeded random values."""

    onnx = require("onnx")
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    shutil.copytree(encoder_dir, out_dir, dirs_exist_ok=True)
    model = onnx.load(str(encoder_dir / "model.onnx"))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim < 2:
            continue
        if arr.dtype == np.int8:
            new = rng.integers(-127, 128, arr.shape).astype(np.int8)
        elif arr.dtype == np.uint8:
            new = rng.integers(0, 256, arr.shape).astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.floating):
            new = (rng.standard_normal(arr.shape) * float(arr.std() or 0.02)).astype(arr.dtype)
        else:
            continue
        init.CopyFrom(numpy_helper.from_array(new, init.name))
    onnx.save(model, str(out_dir / "model.onnx"))
    return out_dir


def check(encoder_dir: Path, *, control: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Scores for the encoder and (optionally) its random-init control."""

    report: dict[str, Any] = {"encoder": score(Encoder(encoder_dir, threads=threads))}
    if control:
        with tempfile.TemporaryDirectory(prefix="xned-control-") as tmp:
            ctrl = randomized_copy(Path(encoder_dir), Path(tmp) / "enc")
            report["control"] = score(Encoder(ctrl, threads=threads))
    return report


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| model | probe | " + " | ".join(f"en<->{x}" for x in LANGS) + " | mean |",
        "|---" * (len(LANGS) + 3) + "|",
    ]
    for model, probes in report.items():
        for probe, vals in probes.items():
            rows.append(f"| {model} | {probe} | " + " | ".join(f"{vals[x]:.2f}" for x in (*LANGS, "mean")) + " |")
    return "\n".join(rows)
