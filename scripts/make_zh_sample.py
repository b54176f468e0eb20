#!/usr/bin/env python
"""Build the bundled Chinese / multilingual sample: real documentation pages and planted bad pages as WARC.

    python scripts/make_zh_sample.py [--shared ../shared] [--out sample/zh] [--per-package 6]

Real pages (../shared/data/zh/html and data/multilingual/html, Debian packages; licences in
sample/NOTICE): the first ``--per-package`` pages (by id) of each Chinese package and script, and a
few Japanese, Russian and Korean pages. Planted pages (written here, Apache-2.0 like the project):
gambling spam, repeated characters and lines, keyword stuffing, a mostly-English page that lid.176
calls Chinese, a too-short page and a page with contact details to mask. ``planted.json`` maps each
planted URL to the ``step:reason`` prefix that conf/pipelines/zh_baseline.yaml must give it (the
tests check it). Re-running gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lakesift.warcwrite import write_warc  # noqa: E402


def html(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><main><article><h1>{title}</h1>{body}</article></main></body></html>").encode()


PROSE = ["我们今天在图书馆学习中国历史，老师讲解了很多有趣的故事，同学们都认真地记录笔记，希望在考试中取得好成绩。",
         "这座城市的春天来得很早，街道两旁的树木已经发芽，公园里到处都是散步的老人和玩耍的孩子，空气中弥漫着花香。",
         "为了保护环境，政府出台了一系列新的政策，鼓励市民使用公共交通工具出行，并且减少一次性塑料制品的使用。",
         "研究人员发现，长期坚持适量运动不仅能够增强体质，还可以改善睡眠质量，缓解工作和学习带来的精神压力。"]

# url -> (page, the step:reason prefix zh_baseline.yaml gives it; None: kept)
PLANTED: dict[str, tuple[bytes, str | None]] = {
    "http://spam.example.cn/casino": (html(
        "澳门百家乐官方网站",
        "澳门百家乐在线娱乐城，真人荷官实时发牌，注册送彩金，六合彩开奖结果最快，时时彩计划稳赚不赔。",
        "北京赛车pk10计划，网上赌场信誉第一，体育投注返水最高，老虎机天天送彩金，欢迎代理加盟。", *PROSE),
        "blacklist_filter:blacklist:gambling"),
    "http://spam.example.cn/aaaa": (html("哈哈哈", *PROSE, "啊" * 300), "massive_web_repetition_filters:top_2gram"),
    "http://spam.example.cn/lines": (html("重复", *([PROSE[0]] * 6), *PROSE[1:]),
                                     "massive_web_repetition_filters:dup_line"),
    "http://spam.example.cn/keywords": (html("关键词", PROSE[0], "手机壳定制厂家批发价格便宜质量好" * 30),
                                        "massive_web_repetition_filters:top_"),
    "http://docs.example.com/mostly-english": (html(
        "安装指南中文说明", *(f"{z}：{e}" for z, e in zip(
            ["网络配置说明", "地址检查方法", "重启服务步骤", "编辑配置文件", "重新启动机器", "首先安装软件包"],
            ["Configure the network interface.", "Check the address with ip addr.", "Restart the service.",
             "Edit the config file.", "Reboot the machine now.", "Install the package first."], strict=True))),
        "cjk_ratio_filter:cjk_ratio<0.3"),
    "http://spam.example.cn/short": (html("短", "太短了。"), "page_length_filter:chars<201"),
    "http://blog.example.cn/contact": (html(
        "联系我们的编辑部", *PROSE, "如有疑问请发邮件至 editor@example.cn 或致电 138-1234-5678 与编辑部联系，"
        "我们会在三个工作日内回复您的来信，感谢您长期以来对本刊的关心和支持。"), None),
}


def index(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "index.jsonl").open(encoding="utf-8")]


def real_pages(shared: Path, per_package: int) -> list[tuple[str, bytes]]:
    zh = shared / "data" / "zh" / "html"
    by: dict[str, list] = {}
    for r in sorted(index(zh), key=lambda r: r["id"]):
        if r["bytes"] > 60_000:  # the single-page manuals (up to 400 KB) would make most of the sample
            continue
        if len(by.setdefault(f"{r['source_package']}/{r['lang']}", [])) < per_package:
            by[f"{r['source_package']}/{r['lang']}"].append(r)
    pages = [(r["id"], gzip.decompress((zh.parent / r["file"]).read_bytes())) for rs in by.values() for r in rs]
    ml = shared / "data" / "multilingual" / "html"
    rows = sorted(index(ml), key=lambda r: r["id"])
    for lang in ("ja", "ru", "ko"):
        pages += [(r["id"], gzip.decompress((ml.parent / r["file"]).read_bytes()))
                  for r in [x for x in rows if x["lang"] == lang][:4]]
    return pages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--out", default="sample/zh")
    ap.add_argument("--per-package", type=int, default=6)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    real = real_pages(Path(args.shared), args.per_package)
    path = os.path.join(args.out, "zh-sample-0000.warc.gz")
    n = write_warc(path, real + [(u, b) for u, (b, _) in PLANTED.items()])
    with open(os.path.join(args.out, "planted.json"), "w", encoding="utf-8") as fh:
        json.dump({u: why for u, (_, why) in PLANTED.items()}, fh, ensure_ascii=False, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"{path}: {n} pages ({len(real)} real, {len(PLANTED)} planted), {os.path.getsize(path) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
