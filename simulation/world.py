"""The master data of a simulated network: customers, SKUs, suppliers, carrier names.

Made with Faker (``zh_CN`` and ``en_US``) and a numpy generator, both seeded from one
``SeedSequence``: the same scenario and seed give the same world, and no global
random state is touched. Customers live in real Chinese cities (drawn by a rough
population share) and each is routed to the scenario hub nearest to its city, so
every parcel has a destination hub.

Faker is slow per call, so it only fills small pools of name parts; numpy combines
them. A world of 5,000 customers takes a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from faker import Faker

from simulation.scenario import Hub, Scenario, supplier_id

#: Share of customers (and SKU brands, suppliers) with a Chinese name; the rest en_US.
ZH_SHARE = 0.85
#: Customers live around their city centre, scattered by this many degrees (~5 km).
SCATTER_DEG = 0.05
#: Size of each Faker pool of name parts; numpy combines them into full names.
POOL = 160


@dataclass(frozen=True, slots=True)
class City:
    """A real city: Chinese name, English name, province (region), centre, population."""

    name: str
    name_en: str
    region: str
    lat: float
    lon: float
    population_m: float  # rough urban population in millions: the customer weight


#: Major Chinese cities with real coordinates; customers are drawn by population.
CITIES: tuple[City, ...] = (
    City("上海", "Shanghai", "上海", 31.2304, 121.4737, 24.9),
    City("北京", "Beijing", "北京", 39.9042, 116.4074, 21.9),
    City("成都", "Chengdu", "四川", 30.5728, 104.0668, 21.2),
    City("广州", "Guangzhou", "广东", 23.1291, 113.2644, 18.8),
    City("深圳", "Shenzhen", "广东", 22.5431, 114.0579, 17.7),
    City("重庆", "Chongqing", "重庆", 29.5630, 106.5516, 16.0),
    City("天津", "Tianjin", "天津", 39.3434, 117.3616, 13.7),
    City("武汉", "Wuhan", "湖北", 30.5928, 114.3055, 13.7),
    City("西安", "Xi'an", "陕西", 34.3416, 108.9398, 13.0),
    City("苏州", "Suzhou", "江苏", 31.2989, 120.5853, 12.9),
    City("郑州", "Zhengzhou", "河南", 34.7466, 113.6254, 12.8),
    City("杭州", "Hangzhou", "浙江", 30.2741, 120.1551, 12.4),
    City("石家庄", "Shijiazhuang", "河北", 38.0428, 114.5149, 11.2),
    City("东莞", "Dongguan", "广东", 23.0207, 113.7518, 10.5),
    City("长沙", "Changsha", "湖南", 28.2282, 112.9388, 10.4),
    City("青岛", "Qingdao", "山东", 36.0671, 120.3826, 10.3),
    City("哈尔滨", "Harbin", "黑龙江", 45.8038, 126.5350, 9.9),
    City("合肥", "Hefei", "安徽", 31.8206, 117.2272, 9.6),
    City("佛山", "Foshan", "广东", 23.0215, 113.1214, 9.6),
    City("宁波", "Ningbo", "浙江", 29.8683, 121.5440, 9.6),
    City("南京", "Nanjing", "江苏", 32.0603, 118.7969, 9.5),
    City("济南", "Jinan", "山东", 36.6512, 117.1201, 9.4),
    City("沈阳", "Shenyang", "辽宁", 41.8057, 123.4315, 9.1),
    City("长春", "Changchun", "吉林", 43.8171, 125.3235, 9.1),
    City("南宁", "Nanning", "广西", 22.8170, 108.3665, 8.9),
    City("昆明", "Kunming", "云南", 24.8801, 102.8329, 8.5),
    City("福州", "Fuzhou", "福建", 26.0745, 119.2965, 8.4),
    City("无锡", "Wuxi", "江苏", 31.4912, 120.3119, 7.5),
    City("大连", "Dalian", "辽宁", 38.9140, 121.6147, 7.5),
    City("南昌", "Nanchang", "江西", 28.6820, 115.8579, 6.4),
    City("贵阳", "Guiyang", "贵州", 26.6470, 106.6302, 6.0),
    City("厦门", "Xiamen", "福建", 24.4798, 118.0894, 5.3),
    City("太原", "Taiyuan", "山西", 37.8706, 112.5489, 5.3),
    City("兰州", "Lanzhou", "甘肃", 36.0611, 103.8343, 4.4),
    City("乌鲁木齐", "Urumqi", "新疆", 43.8256, 87.6168, 4.1),
)

#: Display names of the usual Chinese express carriers, by scenario carrier id.
CARRIER_NAMES = {
    "sf": "顺丰速运 SF Express",
    "jd": "京东物流 JD Logistics",
    "zto": "中通快递 ZTO Express",
    "yto": "圆通速递 YTO Express",
    "sto": "申通快递 STO Express",
    "yunda": "韵达快递 Yunda Express",
    "ems": "中国邮政 EMS",
    "deppon": "德邦快递 Deppon",
    "jt": "极兔速递 J&T Express",
}

#: (Chinese, English) product names; a brand is put in front of them.
PRODUCTS = (
    ("T恤", "T-shirt"), ("连帽衫", "Hoodie"), ("运动鞋", "Sneakers"), ("双肩包", "Backpack"),
    ("陶瓷杯", "Ceramic mug"), ("台灯", "Desk lamp"), ("蓝牙耳机", "Earbuds"),
    ("手机壳", "Phone case"), ("保温杯", "Vacuum flask"), ("瑜伽垫", "Yoga mat"),
    ("电饭煲", "Rice cooker"), ("茶具", "Tea set"), ("笔记本", "Notebook"), ("雨伞", "Umbrella"),
    ("充电宝", "Power bank"), ("面霜", "Face cream"), ("洗发水", "Shampoo"),
    ("零食礼盒", "Snack box"), ("绿茶 250 g", "Green tea 250 g"), ("袜子 5 双", "Socks 5-pack"),
)
COLD_PRODUCTS = (
    ("鲜牛奶 1 L", "Fresh milk 1 L"), ("酸奶 6 杯", "Yogurt 6-pack"),
    ("三文鱼 300 g", "Salmon fillet 300 g"), ("冰淇淋", "Ice cream box"),
    ("大闸蟹 4 只", "Hairy crab 4-pack"), ("鲜切水果", "Fresh-cut fruit box"),
    ("速冻水饺 1 kg", "Frozen dumplings 1 kg"), ("牛排 250 g", "Beef steak 250 g"),
    ("奶酪 200 g", "Cheese 200 g"), ("鲜虾 500 g", "Fresh shrimp 500 g"),
)


@dataclass(frozen=True, slots=True)
class Customer:
    """A buyer; ``hub_id`` is the scenario hub its parcels are delivered from
    (the hub nearest its city; None when the scenario has no hubs)."""

    id: str
    name: str
    city: str
    region: str
    lat: float
    lon: float
    hub_id: str | None


@dataclass(frozen=True, slots=True)
class Supplier:
    id: str
    name: str
    city: str


@dataclass(frozen=True, slots=True)
class Sku:
    id: str
    name: str
    cold_chain: bool
    supplier_id: str


@dataclass(frozen=True, slots=True)
class CarrierBrand:
    """The display name of a scenario carrier (``id`` as in ``[[carriers]]``)."""

    id: str
    name: str


@dataclass(frozen=True)
class World:
    """The seeded master data of one scenario. Immutable; the tuples keep id order."""

    customers: tuple[Customer, ...]
    skus: tuple[Sku, ...]
    suppliers: tuple[Supplier, ...]
    carriers: tuple[CarrierBrand, ...]

    @cached_property
    def cold_skus(self) -> tuple[Sku, ...]:
        return tuple(s for s in self.skus if s.cold_chain)

    @cached_property
    def ambient_skus(self) -> tuple[Sku, ...]:
        return tuple(s for s in self.skus if not s.cold_chain)

    def carrier_name(self, carrier_id: str) -> str:
        for brand in self.carriers:
            if brand.id == carrier_id:
                return brand.name
        raise KeyError(carrier_id)


def locate(city: str) -> City:
    """A city of :data:`CITIES` by its Chinese or English name (case-insensitive)."""
    wanted = city.strip().casefold()
    for c in CITIES:
        if wanted in (c.name, c.name_en.casefold()):
            return c
    raise KeyError(city)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance."""
    p1, p2, dlon = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dlon)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def nearest_hub(lat: float, lon: float, hubs: Sequence[Hub]) -> Hub:
    """The hub closest to a point (ties: the first listed)."""
    if not hubs:
        raise ValueError("no hubs")
    return min(hubs, key=lambda h: distance_km(lat, lon, h.lat, h.lon))


def build_world(scenario: Scenario, seed: int) -> World:
    """The master data for ``scenario`` (sizes from ``scenario.master_data``), seeded."""
    streams = np.random.SeedSequence(seed).spawn(4)
    zh, en = Faker("zh_CN"), Faker("en_US")
    zh.seed_instance(int(streams[0].generate_state(1)[0]))
    en.seed_instance(int(streams[1].generate_state(1)[0]))
    rng = np.random.default_rng(streams[2])
    sizes = scenario.master_data
    suppliers = _suppliers(sizes.suppliers, zh, en, rng)
    return World(
        customers=_customers(sizes.customers, scenario.hubs, zh, en, rng),
        skus=_skus(sizes.skus, scenario.demand.cold_chain_share, suppliers, zh, en, rng),
        suppliers=suppliers,
        carriers=tuple(CarrierBrand(c.id, CARRIER_NAMES.get(c.id, c.id.upper())) for c in scenario.carriers),
    )


def _city_weights() -> np.ndarray:
    w = np.array([c.population_m for c in CITIES])
    return np.asarray(w / w.sum())


def _customers(
    n: int, hubs: Sequence[Hub], zh: Faker, en: Faker, rng: np.random.Generator
) -> tuple[Customer, ...]:
    # Chinese names are family name + given name, English ones given + family.
    zh_family = [zh.last_name() for _ in range(POOL)]
    zh_given = [zh.first_name() for _ in range(POOL)]
    en_given = [en.first_name() for _ in range(POOL)]
    en_family = [en.last_name() for _ in range(POOL)]
    hub_of_city = [nearest_hub(c.lat, c.lon, hubs).id if hubs else None for c in CITIES]
    city_idx = rng.choice(len(CITIES), size=n, p=_city_weights())
    is_zh = rng.random(n) < ZH_SHARE
    first, second = rng.integers(POOL, size=(2, n))
    scatter = rng.normal(0.0, SCATTER_DEG, size=(2, n))
    customers = []
    for i in range(n):
        c = CITIES[city_idx[i]]
        name = (zh_family[first[i]] + zh_given[second[i]] if is_zh[i]
                else f"{en_given[first[i]]} {en_family[second[i]]}")
        customers.append(Customer(
            id=f"CU-{i + 1:06d}", name=name, city=c.name, region=c.region,
            lat=round(c.lat + float(scatter[0, i]), 4), lon=round(c.lon + float(scatter[1, i]), 4),
            hub_id=hub_of_city[city_idx[i]],
        ))
    return tuple(customers)


def _suppliers(n: int, zh: Faker, en: Faker, rng: np.random.Generator) -> tuple[Supplier, ...]:
    city_idx = rng.choice(len(CITIES), size=n, p=_city_weights())
    is_zh = rng.random(n) < ZH_SHARE
    return tuple(
        Supplier(id=supplier_id(i), name=(zh if is_zh[i] else en).company(),
                 city=CITIES[city_idx[i]].name)
        for i in range(n)
    )


def _cold_count(n: int, share: float) -> int:
    """Cold SKUs in a catalogue of ``n``: about ``share`` of it, but at least one when
    there are cold-chain orders and one ambient SKU when there is room for both."""
    if share <= 0:
        return 0
    if n == 1:
        return 1 if share >= 0.5 else 0
    return min(n - 1, max(1, round(n * share)))


def _skus(
    n: int, cold_share: float, suppliers: Sequence[Supplier], zh: Faker, en: Faker, rng: np.random.Generator
) -> tuple[Sku, ...]:
    cold = np.zeros(n, dtype=bool)
    cold[rng.permutation(n)[:_cold_count(n, cold_share)]] = True
    is_zh = rng.random(n) < ZH_SHARE
    zh_brands = [zh.company_prefix() for _ in range(POOL // 4)]
    en_brands = [en.last_name() for _ in range(POOL // 4)]
    brand_idx = rng.integers(POOL // 4, size=n)
    product_idx = rng.integers(len(PRODUCTS) * len(COLD_PRODUCTS), size=n)
    supplier_idx = rng.integers(len(suppliers), size=n)
    skus = []
    for i in range(n):
        catalogue = COLD_PRODUCTS if cold[i] else PRODUCTS
        zh_name, en_name = catalogue[product_idx[i] % len(catalogue)]
        name = (f"{zh_brands[brand_idx[i]]}{zh_name}" if is_zh[i]
                else f"{en_brands[brand_idx[i]]} {en_name}")
        skus.append(Sku(id=f"SKU-{i + 1:05d}", name=name, cold_chain=bool(cold[i]),
                        supplier_id=suppliers[supplier_idx[i]].id))
    return tuple(skus)
