"""The glossary (labkit/course/glossary.csv and labkit.course.glossary): complete, unambiguous, searchable."""
import re
import unicodedata

import pytest

from labkit.course import glossary

ROWS = glossary.load()

# (en, zh) of every term the chapters use; each must be in the glossary exactly like this.
REQUIRED = [
    ("synchronous communication", "同步通信"),
    ("asynchronous communication", "异步通信"),
    ("hybrid communication", "混合模式"),
    ("request-response", "请求-响应"),
    ("remote procedure call (RPC)", "远程过程调用"),
    ("REST API", "REST API"),
    ("protocol", "协议"),
    ("message queue", "消息队列"),
    ("publish-subscribe (pub/sub)", "发布-订阅"),
    ("event-driven", "事件驱动"),
    ("dead-letter queue", "死信队列"),
    ("acknowledgement (ack)", "消息确认"),
    ("prefetch", "预取"),
    ("peak shaving", "流量削峰"),
    ("domain event", "领域事件"),
    ("exchange", "交换机"),
    ("routing key", "路由键"),
    ("at-least-once delivery", "至少一次投递"),
    ("poison message", "毒消息"),
    ("competing consumers", "竞争消费者"),
    ("Protocol Buffers (Protobuf)", "协议缓冲区"),
    ("multiplexing", "多路复用"),
    ("polling", "轮询"),
    ("server push", "服务器推送"),
    ("server-sent events (SSE)", "服务器发送事件"),
    ("content negotiation", "内容协商"),
    ("event sourcing", "事件溯源"),
    ("command query responsibility segregation (CQRS)", "命令查询职责分离"),
    ("serialization", "序列化"),
    ("timeout", "超时"),
    ("retry", "重试"),
    ("exponential backoff", "指数退避"),
    ("jitter", "抖动"),
    ("idempotent", "幂等"),
    ("circuit breaker", "熔断器"),
    ("circuit breaking", "熔断"),
    ("bulkhead", "舱壁"),
    ("deadline propagation", "截止时间传播"),
    ("rate limiting", "限流"),
    ("graceful degradation (service degradation)", "服务降级"),
    ("backpressure", "背压"),
    ("load balancing", "负载均衡"),
    ("API gateway", "API网关"),
    ("service mesh", "服务网格"),
    ("connection pool", "连接池"),
    ("batching", "批处理"),
    ("cache", "缓存"),
    ("latency", "延迟"),
    ("tail latency", "尾延迟"),
    ("long-tail latency", "长尾延迟"),
    ("percentile", "百分位数"),
    ("hedged request", "对冲请求"),
    ("Little's law", "利特尔法则"),
    ("fan-out", "扇出"),
    ("throughput", "吞吐量"),
    ("availability", "可用性"),
    ("observability", "可观测性"),
    ("distributed tracing", "分布式追踪"),
    ("thundering herd", "惊群效应"),
    ("single-flight", "请求合并"),
    ("utilisation", "利用率"),
    ("load shedding", "负载削减"),
    ("error budget", "错误预算"),
    ("burn rate", "消耗速率"),
    ("traceparent", "traceparent"),
    ("critical path", "关键路径"),
    ("tail sampling", "尾部采样"),
]


def test_there_are_about_forty_terms_or_more():
    assert len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["en"])
def test_every_row_has_all_four_fields(row):
    assert set(row) == set(glossary.FIELDS)
    for field in glossary.FIELDS:
        assert row[field].strip(), f"{row['en'] or row['zh']}: empty {field}"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["en"])
def test_every_row_is_well_formed(row):
    assert re.search(r"[\u4e00-\u9fff]", row["zh"]) or row["zh"] == row["en"], row
    assert not re.search(r"[\u4e00-\u9fff]", row["pinyin"]), f"pinyin holds Chinese: {row}"
    definition = row["definition"]
    assert definition[:1].isupper() and definition.endswith("."), definition
    assert len(definition) <= 140, f"not one short sentence: {definition}"


def test_the_file_is_utf8_with_the_four_columns():
    text = glossary.PATH.read_bytes().decode("utf-8")          # raises if not UTF-8
    assert text.splitlines()[0] == "en,zh,pinyin,definition"
    assert unicodedata.normalize("NFC", text) == text


@pytest.mark.parametrize("field", ["en", "zh"])
def test_no_duplicate_terms(field):
    seen = [glossary._norm(r[field]) for r in ROWS]
    dupes = sorted({t for t in seen if seen.count(t) > 1})
    assert not dupes, f"duplicate {field} terms: {dupes}"


def test_no_name_points_at_two_terms():
    owner = {}
    for row in ROWS:
        for key in glossary.keys(row):
            assert owner.setdefault(key, row["en"]) == row["en"], \
                f"{key!r} names both {owner[key]!r} and {row['en']!r}"


@pytest.mark.parametrize("en,zh", REQUIRED, ids=[en for en, _ in REQUIRED])
def test_every_term_the_chapters_use_is_present(en, zh):
    row = glossary.lookup(en, ROWS)
    assert (row["en"], row["zh"]) == (en, zh)


@pytest.mark.parametrize("name,en", [("熔断器", "circuit breaker"), ("service degradation",
                                     "graceful degradation (service degradation)"),
                                     ("服务降级", "graceful degradation (service degradation)"),
                                     ("长尾延迟", "long-tail latency")])
def test_the_chapter_terms_are_found_by_either_name(name, en):
    assert glossary.lookup(name, ROWS)["en"] == en


def test_older_chinese_names_are_still_searchable():
    assert [r["en"] for r in glossary.search("断路器", ROWS)] == ["circuit breaker"]
    assert "graceful degradation (service degradation)" in [r["en"] for r in glossary.search("降级", ROWS)]


def test_percentile_is_defined_as_at_least_as_slow():
    # p99: 99 % of calls are at least as fast, 1 % at least as slow ("slower than" is wrong
    # when several calls tie at the p99 value).
    text = glossary.lookup("percentile", ROWS)["definition"]
    assert "at least as slow" in text and "at least as fast" in text and "slower than" not in text


def test_littles_law_is_stated_for_long_run_averages():
    assert "average" in glossary.lookup("Little's law", ROWS)["definition"]


def test_lookup_works_both_ways():
    by_zh = glossary.lookup("熔断", ROWS)
    assert by_zh["en"] == "circuit breaking"
    assert glossary.lookup("circuit breaking", ROWS) is by_zh
    assert glossary.lookup("消息队列", ROWS)["en"] == "message queue"
    assert glossary.lookup("Message Queue", ROWS)["zh"] == "消息队列"


def test_lookup_finds_abbreviations_and_ignores_spaces():
    assert glossary.lookup("CQRS", ROWS)["zh"] == "命令查询职责分离"
    assert glossary.lookup("rpc", ROWS)["zh"] == "远程过程调用"
    assert glossary.lookup("pub/sub", ROWS)["zh"] == "发布-订阅"
    assert glossary.lookup("API 网关", ROWS)["en"] == "API gateway"


@pytest.mark.parametrize("typo,suggestion", [("circut breaker", "circuit breaker"),
                                             ("exponential backof", "exponential backoff"),
                                             ("重式", "重试"),
                                             ("queue", "message queue")])
def test_unknown_term_raises_key_error_with_a_suggestion(typo, suggestion):
    with pytest.raises(KeyError) as err:
        glossary.lookup(typo, ROWS)
    message = str(err.value)
    assert "not in the glossary" in message and suggestion in message


def test_a_term_with_nothing_close_points_to_show():
    with pytest.raises(KeyError, match=r"glossary\.show\(\)"):
        glossary.lookup("xyzzy", ROWS)


def test_search_filters_any_field_case_insensitively():
    hits = glossary.search("QUEUE", ROWS)
    assert {r["en"] for r in hits} >= {"message queue", "dead-letter queue"}
    assert all("queue" in " ".join(r.values()).lower() for r in hits)
    assert glossary.search("重试", ROWS)[0]["en"] == "retry"
    assert glossary.search(None, ROWS) == ROWS


def test_show_prints_an_aligned_table_outside_ipython(capsys):
    glossary.show("retry")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{len(glossary.search('retry'))} terms matching 'retry'")
    assert out[1].split()[:4] == ["en", "zh", "pinyin", "definition"]
    # CJK characters take two columns: the pinyin column starts at the same place on each line
    starts = {glossary._width(line[:line.index(row["pinyin"])])
              for line in out[3:] for row in glossary.search("retry") if row["pinyin"] in line}
    assert len(starts) == 1


def test_html_table_escapes_and_has_every_row():
    rows = [{"en": "a<b", "zh": "甲", "pinyin": "jiǎ", "definition": "A & B."}]
    table = glossary.to_html(rows)
    assert "a&lt;b" in table and "A &amp; B." in table and table.count("<tr>") == 2


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ships inside labkit"):
        glossary.load(tmp_path / "nope.csv")


def test_wrong_columns_are_refused(tmp_path):
    bad = tmp_path / "g.csv"
    bad.write_text("english,chinese\nretry,重试\n", encoding="utf-8")
    with pytest.raises(ValueError, match="columns must be"):
        glossary.load(bad)
