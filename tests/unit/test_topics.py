from __future__ import annotations

import pytest

from roadwatch.contract import (
    CameraTopic,
    NodeTopic,
    Topic,
    TopicError,
    camera_topic,
    node_topic,
    parse_topic,
    subscription,
)


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("roadwatch/v1/ql13/node-1/status", Topic("ql13", "node-1", NodeTopic.STATUS)),
        ("roadwatch/v1/ql13/node-1/config", Topic("ql13", "node-1", NodeTopic.CONFIG)),
        ("roadwatch/v1/ql13/node-1/receipt", Topic("ql13", "node-1", NodeTopic.RECEIPT)),
        (
            "roadwatch/v1/ql13/node-1/cam_2/violation",
            Topic("ql13", "node-1", CameraTopic.VIOLATION, "cam_2"),
        ),
        (
            "roadwatch/v1/ql13/node-1/cam_2/traffic",
            Topic("ql13", "node-1", CameraTopic.TRAFFIC, "cam_2"),
        ),
        (
            "roadwatch/v1/ql13/node-1/cam_2/signal",
            Topic("ql13", "node-1", CameraTopic.SIGNAL, "cam_2"),
        ),
    ],
)
def test_topics_round_trip(topic: str, parsed: Topic) -> None:
    assert parse_topic(topic) == parsed
    assert str(parsed) == topic


def test_builders() -> None:
    assert node_topic("s", "n", NodeTopic.STATUS) == "roadwatch/v1/s/n/status"
    assert camera_topic("s", "n", "c", CameraTopic.VIOLATION) == "roadwatch/v1/s/n/c/violation"
    assert subscription(CameraTopic.VIOLATION, share_group="central") == (
        "$share/central/roadwatch/v1/+/+/+/violation"
    )
    assert subscription(NodeTopic.STATUS, site="s") == "roadwatch/v1/s/+/status"


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("other/v1/s/n/status", "does not start"),
        ("roadwatch/v1/s/n/unknown", "unknown topic kind"),
        ("roadwatch/v1/s/n/c/status", "unknown topic kind"),
        ("roadwatch/v1/s/n/violation", "unknown topic kind"),
        ("roadwatch/v1/s/status", "levels"),
        ("roadwatch/v1/S/n/status", "not a valid topic level"),
        ("roadwatch/v1/s/+/status", "not a valid topic level"),
        ("roadwatch/v1/s/n/#/violation", "not a valid topic level"),
        ("roadwatch/v1/s\n/n/status", "not a valid topic level"),  # (a newline at the end)
    ],
)
def test_bad_topics_are_refused(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        parse_topic(topic)


def test_camera_topic_needs_camera() -> None:
    with pytest.raises(TopicError, match="needs a camera"):
        Topic("s", "n", CameraTopic.VIOLATION)
    with pytest.raises(TopicError, match="no camera level"):
        Topic("s", "n", NodeTopic.STATUS, "c")


def test_a_name_ending_in_a_newline_is_refused() -> None:
    """(``$`` in a pattern also matches before a final newline.) A site registered as
    ``ql13\n`` would be a broker user name the broker files cannot hold."""
    from roadwatch.contract import is_event_id, new_event_id

    with pytest.raises(TopicError, match="not a valid topic level"):
        Topic("ql13\n", "n", NodeTopic.STATUS)
    assert is_event_id(event_id := new_event_id()) and not is_event_id(event_id + "\n")
