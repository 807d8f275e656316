"""Graph config: the zh-CN plotly locale travels with the graph, never from a CDN."""

from __future__ import annotations

from widgets.graphs import graph_config


def test_english_graphs_use_plotly_defaults() -> None:
    config = graph_config("en")
    assert "locale" not in config and config["displaylogo"] is False


def test_chinese_graphs_carry_the_zh_cn_locale() -> None:
    config = graph_config("zh-CN", scrollZoom=False)
    assert config["locale"] == "zh-CN" and config["scrollZoom"] is False
    fmt = config["locales"]["zh-CN"]["format"]
    assert fmt["months"][0] == "一月" and fmt["shortDays"][0] == "周日"
    assert config["locales"]["zh-CN"]["dictionary"]["Autoscale"] == "自动缩放"
