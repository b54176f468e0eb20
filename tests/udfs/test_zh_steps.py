"""Chinese text units, the Chinese steps (udfs/steps/zh.py) just inside and just outside each threshold
on literal Chinese strings, and routed pipelines (udfs/pipeline.py)."""

from __future__ import annotations

import zipfile

import pytest

from lakesift.config import ConfigError
from tests.conftest import REPO
from udfs.pipeline import build, load, override, resolve_routes
from udfs.steps import REGISTRY, Doc, get_units
from udfs.steps.zh import _OpenCC, char_repetition_ratio, traditional_share


def step(name, **params):
    cls = REGISTRY[name]
    return cls(cls.Params(**params))


def doc(text, units="zh"):
    return Doc(text, units=units)


# ------------------------------------------------------------------------------------------ units


def test_zh_units_count_han_characters_and_latin_words():
    u = get_units("zh")
    assert u.tokens("我们用Python 3写代码。") == ["我", "们", "用", "Python", "3", "写", "代", "码"]
    assert u.tokens("好，", ignore_punctuation=False) == ["好", "，"]
    assert u.ngram_words("中文abc") == ["中", "文", "abc"]
    assert u.words("我们在北京大学学习自然语言处理。") == ["我们", "在", "北京大学", "学习", "自然语言", "处理"]
    d = doc("我们的工作是在这里。")
    assert d.ft_word_count() == 9 and d.stop_word_count >= 3  # 我们 的 是 在 (jieba words)
    cjk = get_units("cjk")
    assert cjk.words("日本語のテキスト") == list("日本語のテキスト")


def test_page_length_and_word_removal_count_characters_on_zh_units():
    text = "这是一个句子。" * 10  # 60 Han characters
    assert step("page_length_filter", min_length=60, max_length=60).apply(doc(text)) is None
    assert step("page_length_filter", min_length=61).apply(doc(text)) == "words<61"
    assert step("page_length_filter", min_length=61).apply(doc(text, "default")) == "words<61"  # 10 "words"


# ---------------------------------------------------------------------------------- modifiers


def test_normalization_fullwidth_nfkc_invisible_punctuation_spaces():
    s = step("text_normalization_modifier")
    assert s.normalize("ＡＢＣ１２３＃") == "ABC123#"
    assert s.normalize("你好，世界！（测试）") == "你好，世界！（测试）"  # Chinese punctuation stays
    assert s.normalize("\u3000开头") == " 开头"
    assert s.normalize("ﬁne ｶﾀｶﾅ") == "fine カタカナ"  # ligature, half-width katakana
    assert s.normalize("x² ½ ①") == "x² ½ ①"  # not "safe": kept
    assert s.normalize("零\u200b宽\ufeff字\u00ad符\x07") == "零宽字符"
    assert s.normalize("a\r\nb\rc") == "a\nb\nc"
    assert s.normalize("中文,句子.结束") == "中文，句子。结束"
    assert s.normalize("version 1.2, ok") == "version 1.2, ok"  # ASCII context untouched
    assert s.normalize("太好了！！！真的？？") == "太好了！真的？"
    assert s.normalize("中 文  字") == "中文字" and s.normalize("中文 abc") == "中文 abc"
    assert step("text_normalization_modifier", nfkc="full", punctuation=False).normalize("你好，世界") == "你好,世界"
    d = doc("\u200b")
    assert s.apply(d) == "empty_after_modification"


def test_traditional_is_converted_or_tagged_never_dropped(shared):
    z = zipfile.ZipFile(shared / "data" / "text" / "nltk-corpora" / "udhr2.zip")
    hans = z.read("udhr2/cmn_hans.txt").decode()
    hant = z.read("udhr2/cmn_hant.txt").decode()
    changed = _OpenCC.get("t2s").pattern
    assert traditional_share(hans, changed)[0] == 0.0
    assert traditional_share(hant, changed)[0] > 0.2
    conv = step("chinese_convert_modifier")
    d = doc(hant)
    assert conv.apply(d) is None and d.meta["zh_converted"] and d.meta["zh_script"] == "hant"
    assert traditional_share(d.text, changed)[0] < 0.01 and "人人" in d.text
    d2 = doc(hans)
    assert conv.apply(d2) is None and d2.text == hans and d2.meta["zh_converted"] is False
    tag = step("chinese_convert_modifier", mode="tag")
    d3 = doc("這個們")
    assert tag.apply(d3) is None and d3.text == "這個們" and d3.meta["zh_script"] == "hant"
    d4 = doc("english only")
    assert tag.apply(d4) is None and d4.meta["zh_script"] is None


def test_boilerplate_lines_and_the_five_percent_rule():
    body = "这是正文的一段内容，讲述了一个完整的故事和它的来龙去脉。" * 4  # 112 characters
    page = f"{body}\n点击这里关注我们\n{body}\n上一篇：旧闻\n下一篇：新闻"
    s = step("boilerplate_line_modifier")
    d = doc(page)
    assert s.apply(d) is None and d.meta["boilerplate_lines"] == 3 and d.text == f"{body}\n{body}"
    long_line = "我们在文章里解释了为什么用户应该点击这里的按钮才能继续下一步操作，以及它会带来哪些变化和影响。"
    assert len(long_line) > 40
    d2 = doc(long_line)
    assert s.apply(d2) is None and d2.text == long_line  # a long line with a phrase is text
    pipe = build({"units": "zh", "steps": [
        {"func": "word_counter_enricher"}, {"func": "boilerplate_line_modifier"},
        {"func": "word_removal_ratio_filter", "max_removed_ratio": 0.05}]})
    # 208 body characters: removing a line of 10 is 10/218 = 4.6% (kept), of 12 is 12/220 = 5.5% (dropped)
    assert pipe.run(f"{body}\n{body}\n上一篇下一篇版权所有").kept
    assert pipe.run(f"{body}\n{body}\n上一篇下一篇版权所有啊啊").reason == "words_removed>0.05"


# -------------------------------------------------------------------------------------- filters


def test_cjk_ratio():
    s = step("cjk_ratio_filter", min_ratio=0.3, key="cjk_ratio")
    assert s.apply(doc("中文abcdefg")) == "cjk_ratio<0.3"   # 2 of 9
    d = doc("中文字abcdefg")                                  # 3 of 10
    assert s.apply(d) is None and d.meta["cjk_ratio"] == pytest.approx(0.3)
    assert s.apply(doc("中文字 a b c d e f g")) is None       # whitespace not counted
    assert step("cjk_ratio_filter", chars="cjk").apply(doc("ひらがなabcdef")) is None
    assert s.apply(doc("ひらがなabcdef")) == "cjk_ratio<0.3"


def test_mean_line_length():
    s = step("mean_line_length_filter", min_mean=10)
    assert s.apply(doc("一二三四五六七八九十\n一二三四五六七八九十")) is None      # 10
    assert s.apply(doc("一二三四五六七八九十\n一二三四五六七八九")) == "mean_line_length<10"  # 9.5
    assert s.apply(doc("")) == "no_lines"


def test_char_repetition_roots_ratio():
    assert char_repetition_ratio("短") == 0.0
    assert char_repetition_ratio("一二三四五六七八九十甲乙丙丁戊己庚辛壬癸") == 0.0  # no repeated 10-gram
    spam = "啊" * 40
    assert char_repetition_ratio(spam) == 1.0
    s = step("char_repetition_filter", n=10, max_ratio=0.5)
    assert s.apply(doc(spam)) == "char_repetition>0.5"
    assert s.apply(doc("人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。")) is None
    # 11 distinct 10-grams, the most frequent 3 times: sqrt(11) -> 3 n-grams taken, ratio just above / below
    text = "甲乙丙丁戊己庚辛壬癸" * 2
    r = char_repetition_ratio(text)
    assert step("char_repetition_filter", max_ratio=r).apply(doc(text)) is None
    assert step("char_repetition_filter", max_ratio=r - 1e-9).apply(doc(text)) == "char_repetition>" + format(r - 1e-9, "g")


def test_char_ngram_repetition_13():
    s = step("char_ngram_repetition_filter", n=13, max_share=0.5)
    block = "一二三四五六七八九十甲乙丙"  # 13 distinct characters
    unique = "子丑寅卯辰巳午未申酉戌亥天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏"
    assert s.apply(doc(block + block + unique[:26])) is None             # 26 of 52 in a repeated 13-gram: 0.5
    assert s.apply(doc(block + block + unique[:25])) == "dup_13char_ngram>0.5"  # 26 of 51
    assert s.apply(doc("短文")) is None
    assert s.apply(doc(f"{block} {block.upper()}\n{unique[:26]}")) is None  # whitespace removed first


def test_punctuation_run_and_symbols():
    s = step("zh_punctuation_filter", max_run=64)
    assert s.apply(doc("字" * 64 + "。" + "字" * 64)) is None
    assert s.apply(doc("字" * 65)) == "unpunctuated_run>64"
    assert s.apply(doc("字" * 40 + " abc " + "字" * 25)) == "unpunctuated_run>64"  # Latin does not break a run
    assert s.apply(doc("字" * 40 + "\n" + "字" * 40)) is None
    p = step("zh_punctuation_filter", max_run=None, min_punct_per_han=0.1)
    assert p.apply(doc("字" * 10 + "。")) is None and p.apply(doc("字" * 11 + "。")) == "punct_per_han<0.1"
    sym = step("special_char_ratio_filter", max_ratio=0.25)
    assert sym.apply(doc("★★文字文字文字")) is None              # 2 of 8
    assert sym.apply(doc("★★★文字文字文字")) == "special_chars>0.25"  # 3 of 9
    assert sym.apply(doc("蟀\ufffd\ufffd格")) == "special_chars>0.25"
    assert sym.apply(doc("，。！？1234")) is None                 # punctuation and digits do not count


def test_garble_needs_words_from_jieba():
    s = step("zh_garble_filter", min_chars_per_word=1.1, min_han=20)
    prose = "我们今天在图书馆学习中国历史，老师讲解了很多有趣的故事，同学们都认真地记录笔记。"
    assert s.apply(doc(prose)) is None
    garbled = "蟀鐨勪腑鏂囩綉椤垫枃瀛楀瘑鐮佷贡鐮佹樉绀洪敊璇鍦版柟鎵鎶"  # mis-decoded UTF-8 as GBK
    assert s.apply(doc(garbled)) == "chars_per_word<1.1"
    assert s.apply(doc("蟀鐨勪")) is None  # fewer than min_han Han characters pass


def test_gopher_repetition_takes_per_language_thresholds():
    text = "\n".join(["重复的一行文字"] * 3 + ["不同的一行", "另外一行", "第三行文字", "最后一行"])
    assert step("massive_web_repetition_filters").apply(doc(text)) == "dup_line_count>0.3"  # 3 of 7 lines
    assert step("massive_web_repetition_filters", dup_line_frac=0.43, dup_line_char_frac=1,
                dup_para_char_frac=1, dup_n_grams=[], top_n_grams=[]).apply(doc(text)) is None
    with pytest.raises(ValueError, match="top_n_grams"):
        step("massive_web_repetition_filters", top_n_grams=[[5, 0.1]])


# ------------------------------------------------------------------------------------- pipelines


def test_zh_baseline_loads_and_cleans_a_page(shared):
    pipe = load(REPO / "conf" / "pipelines" / "zh_baseline.yaml")
    assert pipe.units.name == "zh" and {"zh_traditional_share", "blacklist_hits", "pii_email"} <= set(pipe.columns())
    z = zipfile.ZipFile(shared / "data" / "text" / "nltk-corpora" / "udhr2.zip")
    hant = z.read("udhr2/cmn_hant.txt").decode()
    o = pipe.run(hant + "\n联系邮箱 someone@example.com 电话 13812345678")
    assert o.kept, (o.step, o.reason)
    assert o.meta["zh_converted"] and "<EMAIL>" in o.text and "<PHONE>" in o.text
    spam = "\n".join(["澳门百家乐在线娱乐城，真人荷官实时发牌，注册送彩金，六合彩开奖结果最快，时时彩计划稳赚不赔。",
                      "欢迎访问本站，我们提供最新最全的信息服务，每天都有大量用户在这里交流心得和分享经验。",
                      "本站的内容每天更新，涵盖了体育、娱乐、财经等各个方面，让您足不出户就能了解天下大事。",
                      "如果您有任何问题或者建议，请随时与我们的客服人员联系，我们将竭诚为您提供优质的服务。",
                      "我们的团队由一群热爱生活的年轻人组成，大家来自五湖四海，为了共同的目标走到了一起。"])
    o = pipe.run(spam)
    assert not o.kept and o.step == "blacklist_filter" and o.reason.startswith("blacklist:gambling")


def test_routed_pipeline_sends_each_language_to_its_branch(tmp_path):
    (tmp_path / "zh.yaml").write_text("name: zhp\nunits: zh\nsteps:\n  - func: page_length_filter\n    min_length: 5\n")
    (tmp_path / "other.yaml").write_text("name: o\nsteps:\n  - func: page_length_filter\n    min_length: 3\n")
    (tmp_path / "langs.yaml").write_text("ru:\n  set:\n    page_length_filter.min_length: 1\n")
    spec = {"name": "m", "steps": [], "route": {"by": "language", "branches": {"zh": "zh.yaml"},
                                                "default": "other.yaml", "languages": "langs.yaml"}}
    src = str(tmp_path / "m.yaml")
    pipe = build(resolve_routes(spec, src), src)
    assert pipe.step_ids == ["zh/page_length_filter", "ru/page_length_filter", "default/page_length_filter"]
    outs = pipe.run_batch(["五个汉字啊", "四个汉字", "один", "two words"],
                          metas=[{"language": "zh"}, {"language": "zh"}, {"language": "ru"}, {"language": "fr"}])
    assert [(o.kept, o.step, o.meta["route"]) for o in outs] == [
        (True, None, "zh"), (False, "zh/page_length_filter", "zh"), (True, None, "ru"),
        (False, "default/page_length_filter", "default")]
    assert [o.steps_ran for o in outs] == [[0], [0], [1], [2]]
    # the zh branch counts characters: "五个汉字啊" is 5 tokens there, 1 on the default units
    changed = override(resolve_routes(spec, src), ["zh/page_length_filter.min_length=6"], ["default/page_length_filter"])
    pipe2 = build(changed, src)
    assert pipe2.step_ids == ["zh/page_length_filter", "ru/page_length_filter"]
    assert not pipe2.run("五个汉字啊", meta={"language": "zh"}).kept
    assert pipe2.run("x", meta={"language": "fr"}).kept  # the default branch is now empty


def test_route_config_errors_are_clear(tmp_path):
    (tmp_path / "p.yaml").write_text("name: p\nsteps:\n  - func: page_length_filter\n")
    src = str(tmp_path / "m.yaml")

    def bad(route, match):
        with pytest.raises(ConfigError, match=match):
            build(resolve_routes({"name": "m", "steps": [], "route": route}, src), src)

    bad({"branches": {}, "default": "p.yaml"}, r"route.by")
    bad({"by": "language", "branches": {}}, r"route.default: required")
    bad({"by": "language", "branches": {"zh": "missing.yaml"}, "default": "p.yaml"}, r"'missing.yaml' not found")
    bad({"by": "language", "branches": {"zh": {"pipeline": "p.yaml", "sett": {}}}, "default": "p.yaml"},
        r"sett: unknown key")
    bad({"by": "language", "branchez": {}, "default": "p.yaml"}, r"branchez: unknown key")
    bad({"by": "language", "branches": {"zh": {"pipeline": "p.yaml", "skip": ["nope"]}}, "default": "p.yaml"},
        r"no step with id 'nope'")
    with pytest.raises(ConfigError, match=r"no branch 'xx'"):
        override(resolve_routes({"name": "m", "steps": [], "route": {"by": "language", "default": "p.yaml"}}, src),
                 ["xx/page_length_filter.min_length=3"], [], src)


def test_multilingual_yaml_loads_with_every_branch():
    pipe = load(REPO / "conf" / "pipelines" / "multilingual.yaml")
    assert {"zh", "en", "ja", "ru", "default"} <= set(pipe.route.branches)
    assert pipe.route.branches["ja"][2].name == "cjk" and pipe.route.branches["zh"][2].name == "zh"
    assert "en/quality" not in pipe.step_ids and "en/language_filter" in pipe.step_ids
    ru = dict(pipe.steps)["ru/massive_web_repetition_filters"]
    assert ru.p.dup_line_frac == 0.322 and ru.ngram_max[5] == 0.168
