"""Every string the screens show, in English and Chinese (zh-CN).

``t(key, lang, **values)`` looks a string up and fills its ``{placeholders}``. A key
missing in one language is a test failure (tests/test_i18n.py), never a silent
English fallback on a Chinese wall screen.
"""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["en", "zh-CN"]
LANGS: Final[tuple[Lang, ...]] = ("en", "zh-CN")
LANG_NAMES: Final[dict[Lang, str]] = {"en": "English", "zh-CN": "中文"}

CATALOGUE: Final[dict[Lang, dict[str, str]]] = {
    "en": {
        "app.title": "Order Tower",
        "page.overview": "Overview",
        "page.orders": "Orders",
        "page.stages": "Stages",
        "page.network": "Network",
        "page.emergency-room": "Emergency room",
        "page.insights": "Insights",
        "page.what-if": "What-if",
        "nav.language": "Language",
        "nav.theme": "Theme",
        "theme.light": "Light",
        "theme.dark": "Dark",
        "nav.kiosk": "Wall screen",
        "fresh.updated": "updated {age} ago",
        "fresh.no_data": "no events yet",
        "fresh.waiting": "connecting…",
        "stale.no_data": "STALE — no events received yet",
        "stale.old": "STALE — no new data for {age} (limit {limit})",
        "stale.unreachable": "STALE — the server does not answer; retrying",
        "age.s": "{n} s",
        "age.min": "{n} min",
        "age.h": "{n} h",
        "age.d": "{n} d",
        "coming.title": "{page} is coming",
        "coming.body": "This screen is not built yet. It will show: {what}",
        "coming.orders": "a filterable list of every order, and each order's stage Gantt and event timeline.",
        "coming.stages": "the stage Gantt across orders, and stage durations against their benchmark.",
        "coming.network": "the transit-hub heatmap, the hub map with lanes and load, stuck parcels.",
        "coming.emergency-room": "the triage queue of escalated exceptions with live countdowns.",
        "coming.insights": "top delay causes, stages over benchmark, supplier and carrier scorecards.",
        "coming.what-if": "what-if capacity experiments on a simulated copy of the network.",
        "kpi.in_flight": "Orders in flight",
        "kpi.shipped_today": "Shipped today",
        "kpi.on_time": "On time (delivered today)",
        "kpi.otif": "OTIF (due today)",
        "kpi.late": "Late",
        "kpi.at_risk": "At risk",
        "kpi.open_exceptions": "Open exceptions",
        "kpi.urgent": "Next response due",
        "kpi.none": "—",
        "kpi.no_deadline": "none open",
        "kpi.overdue": "overdue by {age}",
        "kpi.due_in": "in {age}",
        "funnel.title": "Order funnel — {flow}",
        "funnel.today": "Entered today",
        "funnel.yesterday": "Entered yesterday",
        "funnel.in_stage": "now in stage",
        "funnel.conversion": "conversion from previous stage",
        "funnel.drop_off": "drop-off from previous stage",
        "funnel.delivered": "Delivered",
        "funnel.now": "{n} now",
        "funnel.empty": "No orders entered this flow today or yesterday.",
        "ticker.title": "Latest exceptions",
        "ticker.empty": "No exceptions raised yet.",
        "status.triggered": "triggered",
        "status.acknowledged": "acknowledged",
        "status.snoozed": "snoozed",
        "status.resolved": "resolved",
        "status.closed": "closed",
        "status.cancelled": "cancelled",
    },
    "zh-CN": {
        "app.title": "订单控制塔",
        "page.overview": "总览",
        "page.orders": "订单",
        "page.stages": "阶段",
        "page.network": "网络",
        "page.emergency-room": "订单急诊室",
        "page.insights": "洞察",
        "page.what-if": "假设分析",
        "nav.language": "语言",
        "nav.theme": "主题",
        "theme.light": "浅色",
        "theme.dark": "深色",
        "nav.kiosk": "大屏模式",
        "fresh.updated": "{age}前更新",
        "fresh.no_data": "尚无事件",
        "fresh.waiting": "连接中…",
        "stale.no_data": "数据过期 — 尚未收到任何事件",
        "stale.old": "数据过期 — 已 {age} 没有新数据（上限 {limit}）",
        "stale.unreachable": "数据过期 — 服务器无响应，正在重试",
        "age.s": "{n} 秒",
        "age.min": "{n} 分钟",
        "age.h": "{n} 小时",
        "age.d": "{n} 天",
        "coming.title": "{page}即将上线",
        "coming.body": "此页面尚未完成。它将显示：{what}",
        "coming.orders": "可筛选的全部订单列表，以及每个订单的阶段甘特图和事件时间线。",
        "coming.stages": "跨订单的阶段甘特图，以及各阶段时长与基准的对比。",
        "coming.network": "中转枢纽热力图、含线路与负载的枢纽地图、滞留包裹。",
        "coming.emergency-room": "升级异常的分诊队列，带实时响应倒计时。",
        "coming.insights": "主要延误原因、超出基准的阶段、供应商与承运商评分卡。",
        "coming.what-if": "在网络的模拟副本上进行产能假设实验。",
        "kpi.in_flight": "在途订单",
        "kpi.shipped_today": "今日发货",
        "kpi.on_time": "准时率（今日送达）",
        "kpi.otif": "准时足量率（今日应达）",
        "kpi.late": "已延误",
        "kpi.at_risk": "有延误风险",
        "kpi.open_exceptions": "未结异常",
        "kpi.urgent": "最近响应时限",
        "kpi.none": "—",
        "kpi.no_deadline": "无未结异常",
        "kpi.overdue": "已超时 {age}",
        "kpi.due_in": "剩余 {age}",
        "funnel.title": "订单漏斗 — {flow}",
        "funnel.today": "今日进入",
        "funnel.yesterday": "昨日进入",
        "funnel.in_stage": "当前在此阶段",
        "funnel.conversion": "较上一阶段转化率",
        "funnel.drop_off": "较上一阶段流失",
        "funnel.delivered": "已送达",
        "funnel.now": "当前 {n}",
        "funnel.empty": "今日和昨日均无订单进入此流程。",
        "ticker.title": "最新异常",
        "ticker.empty": "尚无异常。",
        "status.triggered": "已触发",
        "status.acknowledged": "已确认",
        "status.snoozed": "已暂缓",
        "status.resolved": "已解决",
        "status.closed": "已关闭",
        "status.cancelled": "已取消",
    },
}


def _merge_page_strings() -> None:
    """Each page keeps its own strings in ``widgets/strings/<page>.py`` (``STRINGS``, a
    dict per language, keys prefixed with the page); they join the catalogue here."""
    import importlib
    import pkgutil

    from widgets import strings

    for module in pkgutil.iter_modules(strings.__path__):
        page: dict[Lang, dict[str, str]] = importlib.import_module(f"widgets.strings.{module.name}").STRINGS
        for lang in LANGS:
            clash = CATALOGUE[lang].keys() & page.get(lang, {}).keys()
            if clash:
                raise RuntimeError(f"widgets/strings/{module.name}.py: keys already defined: {sorted(clash)}")
            CATALOGUE[lang].update(page.get(lang, {}))


_merge_page_strings()

# Names of the shipped flows and stages (data/flows.toml); a flow or stage not listed
# here shows the name its configuration gives.
NAMES: Final[dict[Lang, dict[str, str]]] = {
    "en": {},
    "zh-CN": {
        "flow.ecommerce": "电商", "flow.manufacturing": "制造",
        "stage.paid": "已付款", "stage.picking": "拣货", "stage.packing": "打包",
        "stage.outbound": "出库", "stage.transit": "承运商运输", "stage.order_review": "订单审核",
        "stage.procurement": "原材料采购", "stage.scheduling": "生产排程",
        "stage.production": "生产", "stage.quality_check": "质检", "stage.shipping": "发运",
    },
}


def normalise_lang(value: object, *, default: Lang = "en") -> Lang:
    """``zh``, ``zh-cn``, ``zh_CN``, ``zh-Hans`` -> ``zh-CN``; ``en*`` -> ``en``; else default."""
    if not isinstance(value, str) or not value:
        return default
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return default


def t(key: str, lang: Lang, **values: object) -> str:
    """The string ``key`` in ``lang`` with its placeholders filled."""
    text = CATALOGUE[lang][key]
    return text.format(**values) if values else text


def name(kind: str, ident: str, lang: Lang, *, default: str) -> str:
    """A configured name (``kind`` "flow" or "stage") in ``lang``, else ``default``."""
    return NAMES[lang].get(f"{kind}.{ident}", default)


def age(seconds: float, lang: Lang) -> str:
    """A duration as people read it on a wall: 42 s, 5 min, 3 h, 2 d."""
    s = max(int(seconds), 0)
    if s < 120:
        return t("age.s", lang, n=s)
    if s < 2 * 3600:
        return t("age.min", lang, n=s // 60)
    if s < 2 * 86_400:
        return t("age.h", lang, n=s // 3600)
    return t("age.d", lang, n=s // 86_400)
