"""NXQL subset of the Nuxeo stand-in and its translation into OpenSearch queries."""

from __future__ import annotations

import pytest

from nxprovision_lab.standins.nuxeo.runtime import nxql


def test_select_all() -> None:
    assert nxql.parse("SELECT * FROM Document").to_search() == {"match_all": {}}


def test_title_equality_and_type() -> None:
    q = nxql.parse("SELECT * FROM File WHERE dc:title = 'It''s here'")
    assert q.to_search() == {
        "bool": {"must": [{"terms": {"ecm:primaryType": ["File"]}}, {"term": {"dc:title": "It's here"}}]}
    }


def test_fulltext_and_and_or_not() -> None:
    q = nxql.parse(
        "select * from Document where ecm:fulltext = 'hello world' AND "
        "(ecm:primaryType = 'File' OR NOT ecm:isTrashed = 1)"
    )
    assert q.where == {
        "bool": {
            "must": [
                {
                    "simple_query_string": {
                        "query": "hello world",
                        "fields": ["ecm:fulltext"],
                        "default_operator": "and",
                    }
                },
                {
                    "bool": {
                        "should": [
                            {"term": {"ecm:primaryType": "File"}},
                            {"bool": {"must_not": [{"term": {"ecm:isTrashed": True}}]}},
                        ],
                        "minimum_should_match": 1,
                    }
                },
            ]
        }
    }


def test_other_operators_and_order() -> None:
    q = nxql.parse(
        "SELECT * FROM Document WHERE ecm:path STARTSWITH '/a/' AND dc:title LIKE 'x%_' AND "
        "ecm:uuid IN ('1', '2') AND dc:created >= TIMESTAMP '2025-01-01 00:00:00' AND "
        "dc:source IS NULL AND dc:title <> 'z' ORDER BY dc:title DESC, dc:created"
    )
    must = q.where["bool"]["must"]
    assert must[0] == {"prefix": {"ecm:path": "/a/"}}
    assert must[1] == {"wildcard": {"dc:title": {"value": "x*?", "case_insensitive": False}}}
    assert must[2] == {"terms": {"ecm:uuid": ["1", "2"]}}
    assert must[3] == {"range": {"dc:created": {"gte": "2025-01-01T00:00:00"}}}
    assert must[4] == {"bool": {"must_not": [{"exists": {"field": "dc:source"}}]}}
    assert must[5] == {"bool": {"must_not": [{"term": {"dc:title": "z"}}]}}
    assert q.sort() == [{"dc:title": {"order": "desc"}}, {"dc:created": {"order": "asc"}}]


@pytest.mark.parametrize(
    "bad",
    [
        "SELECT FROM Document",
        "SELECT * FROM Document WHERE",
        "SELECT * FROM Document WHERE dc:title = ",
        "SELECT * FROM Document WHERE ecm:fulltext > 'x'",
        "SELECT * FROM Document WHERE dc:title = 'x' garbage",
    ],
)
def test_errors(bad: str) -> None:
    with pytest.raises(nxql.NXQLError):
        nxql.parse(bad)
